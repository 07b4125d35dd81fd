//! The producer keys a policy may name beside signify and minisign keys: OpenPGP keyrings,
//! Sigstore identities and managed keys (with the Sigstore instances whose trust roots they
//! are judged against), and the Debian repository rules. docs/POLICY.md describes the fields.

use std::sync::Arc;

use crate::io::digest::Digest;
use crate::producer::openpgp::{Fingerprint, Keyring};
use crate::producer::sigstore::{InstanceOptions, Signer, TrustRoot};
use crate::producer::TrustFile;

/// Largest keyring or trusted root file a policy may name.
pub const MAX_TRUST_FILE_BYTES: u64 = 8 << 20;

/// An OpenPGP key of the policy: a keyring, perhaps narrowed to some primary fingerprints.
#[derive(Clone, Debug)]
pub struct OpenPgpKey {
    /// The keyring, parsed (narrowed to `fingerprints` when any are given).
    pub keyring: Keyring,
    /// The primary fingerprints it was narrowed to (empty: every certificate in the file).
    pub fingerprints: Vec<Fingerprint>,
    /// Whether SHA-1 binding self-signatures are accepted for these keys.
    pub allow_sha1_bindings: bool,
    /// The keyring file, for the mirror and `policy check`.
    pub file: TrustFile,
}

/// A Sigstore signer of the policy: an identity (issuer and subject) or a managed key, on an
/// instance (a `[sigstore.<name>]` trust root).
#[derive(Clone, Debug)]
pub struct SigstoreKey {
    /// The `[sigstore.<name>]` it is judged against.
    pub instance: String,
    /// Who must have signed.
    pub signer: Signer,
}

/// What kind of producer key a `[keys.<name>]` entry is, beside signify/minisign.
#[derive(Clone, Debug)]
pub enum ProducerKeyKind {
    /// `openpgp = "keyring"`.
    OpenPgp(OpenPgpKey),
    /// `sigstore = "<instance>"`.
    Sigstore(SigstoreKey),
}

/// A named producer key.
#[derive(Clone, Debug)]
pub struct ProducerKey {
    /// Its name in the policy.
    pub name: String,
    /// What it is.
    pub kind: ProducerKeyKind,
}

/// A Sigstore instance: `[sigstore.<name>]`.
#[derive(Clone, Debug)]
pub struct SigstoreInstance {
    /// Its name in the policy.
    pub name: String,
    /// The trusted root, parsed.
    pub root: TrustRoot,
    /// Whether transparency-log proofs and SCTs are required.
    pub options: InstanceOptions,
    /// The `trusted_root.json`, for the mirror and `policy check`.
    pub file: TrustFile,
}

/// What to do with pool files no verified index lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uncovered {
    /// Reject the bundle (the default).
    Reject,
    /// Accept it and report each such file.
    Report,
}

/// How a release file's `Valid-Until` is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidUntil {
    /// A release file past its `Valid-Until` (at the policy clock) rejects.
    Enforce,
    /// It is reported (the default): apt inside will refuse it unless told otherwise.
    Report,
    /// It is not mentioned.
    Ignore,
}

/// `[[repository]] kind = "debian"`: a Debian-style archive tree in the bundle.
#[derive(Clone, Debug)]
pub struct RepositoryRule {
    /// The tree holding `dists/` and `pool/`, an entry path prefix without a trailing `/`.
    pub root: String,
    /// The OpenPGP keys whose signatures make a release file valid (any one suffices).
    pub keys: Vec<String>,
    /// The suites (directories under `dists/`) the rule verifies.
    pub suites: Vec<String>,
    /// Pool files no verified index lists.
    pub uncovered: Uncovered,
    /// How `Valid-Until` is treated.
    pub valid_until: ValidUntil,
}

impl RepositoryRule {
    /// The path of `rel` under the tree.
    pub fn path_of(&self, rel: &str) -> String {
        if self.root.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.root)
        }
    }

    /// The part of an entry path under the tree, if it is in it.
    pub fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.root.is_empty() {
            Some(path)
        } else {
            path.strip_prefix(self.root.as_str())?.strip_prefix('/')
        }
    }
}

/// What a `[[revoked]]` entry names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// A signify/minisign key id (every key with this id).
    KeyId(crate::keys::KeyId),
    /// An OpenPGP primary or signing key fingerprint.
    Fingerprint(Fingerprint),
    /// A Sigstore certificate subject (SAN), exactly.
    San(String),
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revoked::KeyId(id) => write!(f, "key id {id}"),
            Revoked::Fingerprint(fp) => write!(f, "OpenPGP fingerprint {fp}"),
            Revoked::San(san) => write!(f, "Sigstore identity {san:?}"),
        }
    }
}

/// A trust file's bytes with the name it is kept under in the mirror.
pub(super) fn trust_file(name: &str, origin: &str, bytes: Vec<u8>, extension: &str) -> TrustFile {
    TrustFile {
        name: name.to_owned(),
        origin: origin.to_owned(),
        stored_as: format!("{}.{extension}", Digest::of(&bytes).to_hex()),
        bytes: Arc::new(bytes),
    }
}
