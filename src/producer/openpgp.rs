//! OpenPGP producer signatures: detached `.asc`/`.sig` files and clearsigned files (Debian
//! `InRelease`), verified offline against operator-supplied keyrings.
//!
//! The verification is Sequoia's (`sequoia-openpgp`, the pure-Rust RustCrypto backend), the
//! library Debian's APT verifies archives with (`sqv`), under its `StandardPolicy`:
//!
//! - the policy clock is [`Times::reference`], never the system clock: hash and key-size
//!   cutoffs are evaluated then, so a clock set back cannot re-admit SHA-1;
//! - the signing key must be valid (bound to its certificate, alive, not revoked, able to
//!   sign) at the signature's *creation* time, not "now": a Debian key that expired after it
//!   signed an `InRelease` still vouches for it. Hard revocations (compromised, unspecified)
//!   reach back; soft ones (retired, superseded) do not;
//! - a signature created after [`Times::not_after`] is bad: it cannot postdate the bundle
//!   carrying it;
//! - SHA-1, MD5 and RIPEMD-160 *data* signatures are always bad. SHA-1 *binding*
//!   self-signatures (what ties a key to its certificate) are accepted only for keyrings
//!   parsed with `allow_sha1_bindings` (old upstream keys such as GNU hello's need it).
//!
//! Sequoia is LGPL-2.0-or-later, so it sits behind the cargo feature `openpgp` (on by
//! default). Built without it, every parser here returns [`OpenPgpError::Unsupported`].

use std::fmt;
use std::str::FromStr;

use super::Times;
use crate::clock;

mod clearsigned;
#[cfg(not(feature = "openpgp"))]
mod disabled;
#[cfg(feature = "openpgp")]
mod sequoia;
#[cfg(all(test, feature = "openpgp"))]
mod tests;

#[cfg(not(feature = "openpgp"))]
use disabled as imp;
#[cfg(feature = "openpgp")]
use sequoia as imp;

/// Largest keyring file accepted.
pub const KEYRING_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Most certificates one keyring may hold.
pub const KEYRING_MAX_CERTS: usize = 64;
/// Largest detached signature file accepted (16 signatures of any size OpenPGP uses fit).
pub const SIGNATURE_MAX_BYTES: usize = 256 * 1024;
/// Most signature packets one signature file may hold.
pub const SIGNATURE_MAX_PACKETS: usize = 16;
/// Largest clearsigned file accepted (a Debian `InRelease` is 50-250 KB).
pub const CLEARSIGNED_MAX_BYTES: usize = 32 * 1024 * 1024;

/// A primary or subkey fingerprint: 40 (v4) or 64 (v6) uppercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The uppercase hex digits, without spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` is hex and a fingerprint's length; `text` is already upper case.
    fn check(text: String) -> Result<Fingerprint, OpenPgpError> {
        let problem = if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some("it holds a character that is not a hex digit")
        } else if text.len() != 40 && text.len() != 64 {
            Some("a fingerprint has 40 hex digits (v4 keys) or 64 (v6 keys)")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(OpenPgpError::BadFingerprint { text, problem }),
            None => Ok(Fingerprint(text)),
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Fingerprint {
    type Err = OpenPgpError;

    /// Hex digits in either case, spaces allowed between them (as `gpg --fingerprint` prints).
    fn from_str(text: &str) -> Result<Fingerprint, OpenPgpError> {
        Fingerprint::check(text.chars().filter(|c| *c != ' ').collect::<String>().to_ascii_uppercase())
    }
}

/// Certificates (OpenPGP public keys) an operator trusts for some producer.
#[derive(Clone, Debug)]
pub struct Keyring {
    inner: imp::Keyring,
}

impl Keyring {
    /// Binary or ASCII-armoured keyring (one or more certificates). `only`: keep just these primary
    /// fingerprints (empty: all; a listed fingerprint not present is an error). `allow_sha1_bindings`:
    /// accept SHA-1 *binding* self-signatures for this keyring (never SHA-1 data signatures).
    pub fn parse(bytes: &[u8], only: &[Fingerprint], allow_sha1_bindings: bool) -> Result<Keyring, OpenPgpError> {
        Ok(Keyring { inner: imp::Keyring::parse(bytes, only, allow_sha1_bindings)? })
    }

    /// What each certificate is, for `policy check` and reports.
    pub fn certs(&self) -> Vec<CertInfo> {
        self.inner.certs()
    }
}

/// One certificate of a keyring, described.
///
/// Expiry and revocation are as of the certificate's newest self-signature (no clock is
/// read here): what the certificate says about itself, under the keyring's hash rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The primary key's fingerprint.
    pub fingerprint: Fingerprint,
    /// The user IDs, as the certificate states them: unauthenticated labels, not identities.
    pub user_ids: Vec<String>,
    /// When the primary key was created.
    pub created: u64,
    /// When the certificate expires, if it does.
    pub expires: Option<u64>,
    /// Whether the certificate carries a revocation in force.
    pub revoked: bool,
    /// Some binding self-signature uses SHA-1: signatures made while only such bindings tied
    /// the signing key to the certificate verify only with `allow_sha1_bindings`.
    pub needs_sha1_bindings: bool,
}

/// An `.asc`/`.sig` file: one or more signature packets over some data.
#[derive(Clone, Debug)]
pub struct DetachedSignature {
    inner: imp::Signatures,
}

impl DetachedSignature {
    /// An `.asc`/`.sig` file: armoured or binary, one or more signature packets, nothing else.
    pub fn parse(bytes: &[u8]) -> Result<DetachedSignature, OpenPgpError> {
        Ok(DetachedSignature { inner: imp::Signatures::parse(bytes)? })
    }

    /// Issuer fingerprints (or key ids when only those are given), hex uppercase, for reports:
    /// one per signature packet, in file order.
    pub fn issuers(&self) -> Vec<String> {
        self.inner.issuers()
    }

    /// A verifier the signed data is then pushed through, in order.
    pub fn verifier(&self, keyrings: &[(String, Keyring)], times: Times) -> DetachedVerifier {
        DetachedVerifier { inner: imp::Verifier::new(&self.inner, keyrings, times) }
    }
}

/// Checks a detached signature while the data streams past: [`update`](Self::update) with the
/// data in order, then [`finish`](Self::finish). Memory stays bounded whatever the data's size.
pub struct DetachedVerifier {
    inner: imp::Verifier,
}

impl DetachedVerifier {
    /// The next bytes of the signed data.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// One verdict per signature packet, in file order.
    pub fn finish(self) -> Vec<PgpCheck> {
        self.inner.finish()
    }
}

/// One verdict per signature packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgpCheck {
    /// The signature's issuer as it names itself (fingerprint, else key id), for reports.
    pub issuer: String,
    /// What the signature proves.
    pub outcome: PgpOutcome,
}

/// What one signature proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgpOutcome {
    /// Made by a key of one of the keyrings, valid then, over exactly this data.
    Good(PgpSigner),
    /// By a key in one of the keyrings, but it does not hold (bad maths, SHA-1/MD5 data signature,
    /// key not valid/expired/revoked at the signature's creation time, created after times.not_after ...).
    Bad {
        /// The keyring's name (as given with it).
        keyring: String,
        /// The primary fingerprint of the certificate the issuer names.
        fingerprint: Fingerprint,
        /// Why it does not hold.
        problem: PgpProblem,
    },
    /// By no key of the keyrings.
    UnknownKey,
}

/// Who made a good signature, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgpSigner {
    /// The keyring's name (as given with it).
    pub keyring: String,
    /// The certificate's primary fingerprint.
    pub primary: Fingerprint,
    /// The key that signed: the primary or a subkey.
    pub signing_key: Fingerprint,
    /// The certificate's primary user ID then: an unauthenticated label.
    pub user_id: Option<String>,
    /// The signature's creation time.
    pub created: u64,
    /// The data hash, e.g. "SHA256".
    pub hash: String,
    /// When the signing key (or its certificate) expires, per the self-signatures in force
    /// when it signed.
    pub key_expires: Option<u64>,
    /// The key was bound to its certificate then only by SHA-1 self-signatures (accepted
    /// because the keyring allows them).
    pub sha1_binding: bool,
}

/// Why a signature by a known key does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgpProblem {
    /// The data hash is SHA-1, MD5 or RIPEMD-160, all open to collisions.
    #[error("{hash} data signature: refused (collision attacks); ask the producer for a SHA-256 signature")]
    WeakDataHash {
        /// The hash's common name ("SHA-1").
        hash: String,
    },
    /// Created after [`Times::not_after`].
    #[error(
        "signed {}, after the latest signing time accepted ({}: the bundle's creation time plus the clock skew); a producer signature cannot postdate the bundle carrying it",
        clock::format(*created),
        clock::format(*not_after)
    )]
    Postdated {
        /// The signature's creation time.
        created: u64,
        /// The latest time accepted.
        not_after: u64,
    },
    /// The key was tied to its certificate at signing time only by SHA-1 self-signatures,
    /// and the keyring does not allow them.
    #[error(
        "key {key} was bound to its certificate when it signed ({}) only by SHA-1 self-signatures, refused for this keyring; if you trust this certificate's old bindings, allow SHA-1 bindings for this keyring (allow_sha1_bindings; SHA-1 data signatures stay refused)",
        clock::format(*created)
    )]
    Sha1Binding {
        /// The signing key (primary or subkey).
        key: Fingerprint,
        /// The signature's creation time.
        created: u64,
    },
    /// The key was not usable at the signature's creation time: not bound, expired, revoked,
    /// or not a signing key.
    #[error("key {key} was not valid when it signed ({}): {reason}", clock::format(*created))]
    KeyNotValid {
        /// The signing key (primary or subkey), or the primary when no key of the
        /// certificate is bound.
        key: Fingerprint,
        /// The signature's creation time.
        created: u64,
        /// Sequoia's account.
        reason: String,
    },
    /// The signature does not verify over these bytes: the data or the signature changed,
    /// or they are not a pair.
    #[error("the signature by key {key} does not match these bytes ({detail}): the file or the signature was changed, or they are not a pair")]
    Mismatch {
        /// The signing key.
        key: Fingerprint,
        /// Sequoia's account.
        detail: String,
    },
    /// The policy refuses the signature itself (an expired signature, a weak key).
    #[error("the signature by key {key} is refused: {reason}")]
    BadSignature {
        /// The signing key.
        key: Fingerprint,
        /// Sequoia's account.
        reason: String,
    },
    /// The verification itself failed before reaching a verdict.
    #[error("the signature could not be checked: {reason}")]
    Unverifiable {
        /// What went wrong.
        reason: String,
    },
}

/// A clearsigned file (Debian InRelease): the signed text (dash-unescaped, as the signer signed it) and
/// one verdict per signature. Err only when the file is not exactly one clearsigned message.
pub fn verify_clearsigned(
    bytes: &[u8],
    keyrings: &[(String, Keyring)],
    times: Times,
) -> Result<(Vec<u8>, Vec<PgpCheck>), OpenPgpError> {
    if bytes.len() > CLEARSIGNED_MAX_BYTES {
        return Err(OpenPgpError::ClearsignedTooLarge { size: bytes.len() });
    }
    clearsigned::check_framing(bytes)?;
    imp::verify_clearsigned(bytes, keyrings, times)
}

/// Release + Release.gpg convenience: DetachedSignature::parse + verifier + update + finish.
// Without the feature the verifier type is uninhabited (parse always fails first), which
// the compiler reports as unreachable code.
#[cfg_attr(not(feature = "openpgp"), allow(unreachable_code, unused_variables, unused_mut))]
pub fn verify_detached(
    sig: &[u8],
    data: &[u8],
    keyrings: &[(String, Keyring)],
    times: Times,
) -> Result<Vec<PgpCheck>, OpenPgpError> {
    let mut verifier = DetachedSignature::parse(sig)?.verifier(keyrings, times);
    verifier.update(data);
    Ok(verifier.finish())
}

/// Why a keyring, a signature file or a clearsigned file was refused as input.
///
/// These say what is wrong with the bytes; the caller adds which file it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenPgpError {
    /// Built without the `openpgp` feature.
    #[error("this airlock was built without OpenPGP support (cargo feature `openpgp`)")]
    Unsupported,
    /// A fingerprint in the policy is malformed.
    #[error("fingerprint {text:?}: {problem}")]
    BadFingerprint {
        /// The text, spaces removed, upper-cased.
        text: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The keyring is larger than [`KEYRING_MAX_BYTES`].
    #[error(
        "keyring of {size} bytes is too large (at most {KEYRING_MAX_BYTES}); narrow it to the producer's certificates"
    )]
    KeyringTooLarge {
        /// Its size.
        size: usize,
    },
    /// The keyring holds more than [`KEYRING_MAX_CERTS`] certificates.
    #[error("keyring holds more than {KEYRING_MAX_CERTS} certificates; narrow it to the producer's certificates")]
    TooManyCerts,
    /// The keyring holds no certificate.
    #[error("keyring holds no OpenPGP certificate (expected a binary or ASCII-armoured public key file)")]
    EmptyKeyring,
    /// A certificate of the keyring cannot be read.
    #[error("keyring: certificate {position} cannot be read ({reason}); a keyring is a binary or ASCII-armoured OpenPGP public key file, as gpg --export [--armor] writes")]
    BadCert {
        /// 1-based position in the file.
        position: usize,
        /// Sequoia's account.
        reason: String,
    },
    /// The keyring holds secret key material.
    #[error("keyring: certificate {fingerprint} includes secret key material; give only the public certificate (gpg --export {fingerprint})")]
    SecretKeyMaterial {
        /// The certificate.
        fingerprint: Fingerprint,
    },
    /// A fingerprint the keyring was narrowed to is not the primary of any of its certificates.
    #[error("keyring has no certificate with primary fingerprint {fingerprint}; its certificates are {present}")]
    NotInKeyring {
        /// The fingerprint asked for.
        fingerprint: Fingerprint,
        /// The primary fingerprints present, comma-separated.
        present: String,
    },
    /// The signature file is larger than [`SIGNATURE_MAX_BYTES`].
    #[error("signature file of {size} bytes is too large (at most {SIGNATURE_MAX_BYTES})")]
    SignatureTooLarge {
        /// Its size.
        size: usize,
    },
    /// The signature file is neither binary OpenPGP nor one armoured signature block.
    #[error("not an OpenPGP signature file: {problem}")]
    NotASignatureFile {
        /// What was found instead.
        problem: String,
    },
    /// A packet of the signature file is not a signature.
    #[error("packet {position} of the signature file is a {found}, not a signature: a detached signature file holds only signature packets (was a key or a message given as the signature?)")]
    NotASignature {
        /// 1-based position.
        position: usize,
        /// The packet kind found.
        found: String,
    },
    /// A signature packet cannot be read.
    #[error("signature {position} cannot be read: {reason}")]
    BadSignaturePacket {
        /// 1-based position.
        position: usize,
        /// Sequoia's account.
        reason: String,
    },
    /// A signature is not over data (binary or text), e.g. a key certification.
    #[error("signature {position} is a {kind} signature, not a signature over a file (binary or text)")]
    NotADataSignature {
        /// 1-based position.
        position: usize,
        /// The signature type found.
        kind: String,
    },
    /// A signature states no creation time, so it cannot be judged at one.
    #[error("signature {position} has no creation time")]
    NoCreationTime {
        /// 1-based position.
        position: usize,
    },
    /// The signature file holds no signature.
    #[error("the signature file holds no signature")]
    NoSignatures,
    /// The signature file holds more than [`SIGNATURE_MAX_PACKETS`] signatures.
    #[error("the signature file holds more than {SIGNATURE_MAX_PACKETS} signatures")]
    TooManySignatures,
    /// The clearsigned file is larger than [`CLEARSIGNED_MAX_BYTES`].
    #[error("clearsigned file of {size} bytes is too large (at most {CLEARSIGNED_MAX_BYTES})")]
    ClearsignedTooLarge {
        /// Its size.
        size: usize,
    },
    /// The file is not exactly one clearsigned message.
    #[error("not a single clearsigned message: line {line}: {problem}")]
    NotClearsigned {
        /// 1-based line number.
        line: usize,
        /// What is wrong there.
        problem: &'static str,
    },
    /// The clearsigned message's signatures cannot be read.
    #[error("clearsigned message cannot be read: {reason}")]
    BadClearsigned {
        /// Sequoia's account.
        reason: String,
    },
}
