//! `mirror show`: a past import, read back from what the mirror kept of it after the media
//! is gone (docs/FORMAT.md §9, "Showing a past import").
//!
//! Every import keeps its bundle's head under `.airlock/bundles/<manifest-sha256>/`
//! (`manifest.cbor`, `signatures/<keyid>.sig`, `SHA256SUMS.sig`, and `trust/` when producer
//! rules used keyrings or trust roots) and names it in a log record. [`show`] lists both
//! sides, writing nothing and holding only the shared lock (`readonly.rs`), so it works on
//! a read-only mount or an evidence copy:
//!
//! - each kept head is read as hostile input: its manifest must hash to its directory's
//!   name, or nothing of it is shown ([`HeadProblem::ManifestMismatch`]); a signature file
//!   must be named by the key id it carries;
//! - the log is read as evidence (`scan_log`): a damaged log still lists the imports it
//!   records, and its breaks are reported;
//! - signatures are checked only against keys the caller gives ([`KeptImport::check`]):
//!   the mirror keeps no bundle-signer public keys, so without them what can be said is what
//!   the log recorded at import time.

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::path::Path;

use super::log::{record_imports, BundleSummary};
use super::plain::{self, Want};
use super::readonly::{shared_lock, ReadLock};
use super::recover_log::scan_log;
use super::{check_format, open_checked};
use crate::error::{Error, Result};
use crate::format::manifest::{self, Limits, Manifest};
use crate::format::sums::sums_match;
use crate::format::{MAX_SIGNATURES, MAX_SIGNATURE_BYTES};
use crate::io::digest::Digest;
use crate::keys::{self, KeyId, Signature};
use crate::policy::{Policy, SignatureStatus};

/// The shortest manifest digest prefix `mirror show` accepts.
pub const MIN_DIGEST_PREFIX: usize = 8;

/// Everything `mirror show` knows about a mirror's imports.
#[derive(Debug)]
pub struct MirrorShow {
    /// How the mirror was held while it was read.
    pub lock: ReadLock,
    /// How many lines the log has.
    pub log_lines: usize,
    /// Where the log breaks (its Display text each), empty when intact.
    pub log_breaks: Vec<String>,
    /// Every import: those the log records, in log order, then kept heads no record names.
    pub imports: Vec<KeptImport>,
}

impl MirrorShow {
    /// Whether everything shown is intact: the log and every kept head.
    pub fn is_intact(&self) -> bool {
        self.log_breaks.is_empty() && self.imports.iter().all(|i| i.head.is_ok())
    }

    /// The one import `selector` names; an unknown or ambiguous one is an error naming the
    /// candidates.
    pub fn select(&self, selector: &Selector) -> std::result::Result<&KeptImport, ShowError> {
        let found: Vec<&KeptImport> = self.imports.iter().filter(|i| selector.matches(i)).collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(ShowError::Unknown {
                selector: selector.to_string(),
                known: self.imports.iter().map(KeptImport::label).collect(),
            }),
            many => Err(ShowError::Ambiguous {
                selector: selector.to_string(),
                candidates: many.iter().map(|i| i.label()).collect(),
            }),
        }
    }
}

/// One import: what the log recorded and what the mirror kept.
#[derive(Debug)]
pub struct KeptImport {
    /// The manifest digest (hex): the kept head's directory name, or the log's.
    pub digest: String,
    /// The log record that names it, if one does.
    pub logged: Option<Logged>,
    /// The kept head, or why it cannot be shown.
    pub head: std::result::Result<KeptHead, HeadProblem>,
}

/// What the log recorded about an import.
#[derive(Clone, Debug)]
pub struct Logged {
    /// The record's 1-based line.
    pub line: usize,
    /// The record's time (Unix seconds, the importing machine's clock).
    pub time: u64,
    /// The bundle file as given to `import` (none for imports a recovery restated).
    pub source: Option<String>,
    /// The bundle as recorded (its `signers`: the trusted keys whose signatures verified).
    pub bundle: BundleSummary,
}

/// A kept head whose manifest hashes to its directory's name.
#[derive(Debug)]
pub struct KeptHead {
    /// The exact manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// The manifest, decoded.
    pub manifest: Manifest,
    /// Each file under `signatures/`, in name order.
    pub signatures: Vec<KeptSignature>,
    /// `SHA256SUMS.sig`, if it is there.
    pub sums: Option<Vec<u8>>,
    /// Whether the checksum list is exactly the one derived from the manifest (its
    /// signature is checked by [`KeptImport::check`]).
    pub sums_match_manifest: bool,
    /// Files under `trust/` (keyrings and trust roots producer rules used), by name.
    pub trust_files: Vec<String>,
}

/// A file under a kept head's `signatures/`.
#[derive(Debug)]
pub struct KeptSignature {
    /// Its name (`<keyid>.sig`), as found.
    pub file: String,
    /// The signature, or why it cannot be used.
    pub signature: std::result::Result<Signature, SignatureFileProblem>,
}

/// Why a kept head cannot be shown. Nothing of such a head is trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadProblem {
    /// The log records the import but its kept head is not there.
    #[error("the log records this import, but its kept head .airlock/bundles/{digest}/ is missing")]
    Missing {
        /// The digest the log names.
        digest: String,
    },
    /// A directory under `bundles/` whose name is not a manifest digest.
    #[error("is not named by a manifest digest (64 lowercase hex digits); airlock never made it")]
    NotADigest,
    /// The manifest does not hash to the directory's name: it was changed after import.
    #[error(
        "manifest.cbor hashes to {actual}, not to its directory's name: the kept head was changed after the \
         import, and nothing in it is shown; restore .airlock/bundles/ from a backup of the mirror"
    )]
    ManifestMismatch {
        /// What the file hashes to.
        actual: String,
    },
    /// The manifest hashes right but does not decode (a manifest no airlock imports).
    #[error("manifest.cbor does not decode: {0}")]
    Undecodable(String),
    /// A file of the head is larger than any bundle's member can be.
    #[error("{file} is larger than {limit} bytes, more than any bundle's head member can hold")]
    TooLarge {
        /// The file, relative to the kept head.
        file: &'static str,
        /// The limit.
        limit: u64,
    },
    /// `signatures/` holds more files than a bundle can have signatures.
    #[error("signatures/ holds {count} files; a bundle has at most {MAX_SIGNATURES} signatures")]
    TooManySignatures {
        /// How many it holds.
        count: usize,
    },
    /// A file of the head cannot be read, or is a link or special file.
    #[error("{0}")]
    Unreadable(Box<Error>),
}

impl HeadProblem {
    /// A stable name for the problem (JSON `head_state`).
    pub fn kind(&self) -> &'static str {
        match self {
            HeadProblem::Missing { .. } => "missing",
            HeadProblem::NotADigest => "not_a_digest",
            HeadProblem::ManifestMismatch { .. } => "manifest_mismatch",
            HeadProblem::Undecodable(_) => "undecodable",
            HeadProblem::TooLarge { .. } | HeadProblem::TooManySignatures { .. } => "too_large",
            HeadProblem::Unreadable(_) => "unreadable",
        }
    }
}

/// Why a file under `signatures/` cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFileProblem {
    /// Not a signify signature file.
    #[error("not a signify signature: {0}")]
    Malformed(String),
    /// The file's name is not `<keyid>.sig` of the key id it carries.
    #[error("carries key id {key_id}, but is named {file:?}: renamed after the import")]
    Misnamed {
        /// The key id inside.
        key_id: KeyId,
        /// The file's name.
        file: String,
    },
    /// Larger than a signature file can be.
    #[error("larger than {MAX_SIGNATURE_BYTES} bytes, more than a signature file can be")]
    TooLarge,
    /// It cannot be read, or is a link or special file.
    #[error("{0}")]
    Unreadable(Box<Error>),
}

impl SignatureFileProblem {
    /// A stable name for the problem (JSON `status`).
    pub fn kind(&self) -> &'static str {
        match self {
            SignatureFileProblem::Malformed(_) => "malformed",
            SignatureFileProblem::Misnamed { .. } => "misnamed",
            SignatureFileProblem::TooLarge => "too_large",
            SignatureFileProblem::Unreadable(_) => "unreadable",
        }
    }
}

/// How `mirror show` names one import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// A manifest digest, or a prefix of one (at least [`MIN_DIGEST_PREFIX`] hex digits).
    Digest(String),
    /// A sequence number, in one channel (`CHANNEL:SEQ`) or in whichever channel has it.
    Sequence {
        /// The channel, when given.
        channel: Option<String>,
        /// The sequence number.
        sequence: u64,
    },
}

impl Selector {
    /// Reads what an auditor typed: `CHANNEL:SEQ`; a bare `SEQ` of fewer than
    /// [`MIN_DIGEST_PREFIX`] digits; or a manifest digest or a prefix of one, at least
    /// [`MIN_DIGEST_PREFIX`] hex digits.
    pub fn parse(text: &str) -> std::result::Result<Selector, ShowError> {
        let bad = || ShowError::BadSelector { selector: text.to_owned() };
        if let Some((channel, seq)) = text.rsplit_once(':') {
            let sequence = seq.parse::<u64>().map_err(|_| bad())?;
            if channel.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            return Ok(Selector::Sequence { channel: Some(channel.to_owned()), sequence });
        }
        if !text.is_empty() && text.len() < MIN_DIGEST_PREFIX && text.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Selector::Sequence { channel: None, sequence: text.parse().map_err(|_| bad())? });
        }
        if (MIN_DIGEST_PREFIX..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Selector::Digest(text.to_ascii_lowercase()));
        }
        Err(bad())
    }

    fn matches(&self, import: &KeptImport) -> bool {
        match self {
            Selector::Digest(prefix) => import.digest.starts_with(prefix.as_str()),
            Selector::Sequence { channel, sequence } => import
                .channel_sequence()
                .is_some_and(|(c, s)| s == *sequence && channel.as_deref().is_none_or(|wanted| wanted == c)),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Digest(d) => f.write_str(d),
            Selector::Sequence { channel: Some(c), sequence } => write!(f, "{c}:{sequence}"),
            Selector::Sequence { channel: None, sequence } => write!(f, "{sequence}"),
        }
    }
}

/// Why `mirror show` cannot pick an import (exit 2: the operator typed something else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShowError {
    /// Not a form `mirror show` reads.
    #[error(
        "{selector:?} names no import: give a manifest digest or a unique prefix of at least {MIN_DIGEST_PREFIX} \
         hex digits, CHANNEL:SEQUENCE, or a bare SEQUENCE (run `airlock mirror show DIR` to list them)"
    )]
    BadSelector {
        /// What was typed.
        selector: String,
    },
    /// No import matches.
    #[error("no import of this mirror matches {selector:?}; it holds: {}", list(known))]
    Unknown {
        /// What was typed.
        selector: String,
        /// Every import, as `CHANNEL:SEQ <digest>`.
        known: Vec<String>,
    },
    /// More than one import matches.
    #[error("{selector:?} matches {} imports: {}; give more of the digest, or CHANNEL:SEQUENCE", candidates.len(), list(candidates))]
    Ambiguous {
        /// What was typed.
        selector: String,
        /// The imports it matches, as `CHANNEL:SEQ <digest>`.
        candidates: Vec<String>,
    },
}

/// A list for a message: at most 20 items, and how many more.
fn list(items: &[String]) -> String {
    const SHOWN: usize = 20;
    if items.is_empty() {
        return "no imports".to_owned();
    }
    let mut text = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

impl KeptImport {
    /// The channel and sequence: the kept manifest's, or the log's when the head cannot be
    /// shown.
    pub fn channel_sequence(&self) -> Option<(&str, u64)> {
        match (&self.head, &self.logged) {
            (Ok(h), _) => Some((h.manifest.channel.as_str(), h.manifest.sequence)),
            (Err(_), Some(l)) => Some((l.bundle.channel.as_str(), l.bundle.sequence)),
            (Err(_), None) => None,
        }
    }

    /// `CHANNEL:SEQ <digest>`, or the digest alone when neither is known.
    pub fn label(&self) -> String {
        match self.channel_sequence() {
            Some((c, s)) => format!("{c}:{s} {}", self.digest),
            None => self.digest.clone(),
        }
    }

    /// The kept head's path relative to the mirror root.
    pub fn kept_path(&self) -> String {
        format!(".airlock/bundles/{}", self.digest)
    }

    /// Checks the kept signatures and checksum list against `policy`, as `verify` checks a
    /// bundle's (FORMAT.md §8 steps 2 and 4) but deciding nothing: `None` when the head
    /// cannot be shown.
    pub fn check(&self, policy: &Policy) -> Option<HeadCheck> {
        let head = self.head.as_ref().ok()?;
        let usable: Vec<Signature> =
            head.signatures.iter().filter_map(|s| s.signature.as_ref().ok().cloned()).collect();
        let m = &head.manifest;
        let report = policy.evaluate_head(&head.manifest_bytes, &usable, &m.channel, m.created);
        let rule_keys = policy.channel_rule(&m.channel).map(|r| &r.trust);
        let signatures = report
            .signatures
            .iter()
            .map(|(id, status)| {
                let key = policy.keys().iter().find(|k| k.key.key_id() == *id);
                SignatureVerdict {
                    key_id: *id,
                    status: status.clone(),
                    name: key.map(|k| k.name.clone()).filter(|n| *n != id.to_string()),
                    against: key.map(|k| k.origin.clone()),
                }
            })
            .collect();
        let counted = |id: KeyId| report.signatures.iter().any(|(k, s)| *k == id && *s == SignatureStatus::Valid);
        let sums = match &head.sums {
            None => SumsVerdict::Missing,
            Some(bytes) => match keys::parse_embedded(bytes) {
                Err(e) => SumsVerdict::Malformed(e.to_string()),
                Ok((_, message)) if !sums_match(m, message) => SumsVerdict::DoesNotMatchManifest,
                Ok((sig, message)) => match rule_keys.and_then(|t| t.key(sig.key_id())) {
                    Some(key) if counted(sig.key_id()) => match key.verify(message, &sig) {
                        Ok(()) => SumsVerdict::Verified { key_id: sig.key_id() },
                        Err(_) => SumsVerdict::BadSignature { key_id: sig.key_id() },
                    },
                    _ => SumsVerdict::SignerNotCounted { key_id: sig.key_id() },
                },
            },
        };
        Some(HeadCheck {
            against: policy.origin().to_owned(),
            threshold_met: report.threshold_met(),
            accepted: report.accepted(),
            valid: report.valid_signers.len(),
            required: report.threshold,
            rule: report.rule.clone(),
            signatures,
            sums,
        })
    }
}

/// What the kept signatures come to against the keys given ([`KeptImport::check`]).
#[derive(Debug)]
pub struct HeadCheck {
    /// What they were checked against: the policy file, or `--trust`.
    pub against: String,
    /// Whether enough distinct trusted keys signed validly.
    pub threshold_met: bool,
    /// Whether `verify` would accept these signatures: the threshold is met and no
    /// signature by a trusted key fails.
    pub accepted: bool,
    /// Distinct trusted keys whose signatures verify.
    pub valid: usize,
    /// How many the channel's rule requires (0 without a rule).
    pub required: usize,
    /// The rule that applied (`*`, a channel name), or none.
    pub rule: Option<String>,
    /// Each usable kept signature.
    pub signatures: Vec<SignatureVerdict>,
    /// The checksum list.
    pub sums: SumsVerdict,
}

impl HeadCheck {
    /// Whether the head passes as `verify` would pass it: signatures accepted, and the
    /// checksum list verified.
    pub fn passes(&self) -> bool {
        self.accepted && matches!(self.sums, SumsVerdict::Verified { .. })
    }
}

/// One kept signature against the keys given.
#[derive(Debug)]
pub struct SignatureVerdict {
    /// The key id it claims.
    pub key_id: KeyId,
    /// What became of it.
    pub status: SignatureStatus,
    /// The policy's name for the key, when it has one besides the key id.
    pub name: Option<String>,
    /// The key file (or `inline`, `--trust`) it was checked against; `None` for a key the
    /// policy does not hold.
    pub against: Option<String>,
}

/// The kept checksum list against the keys given.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SumsVerdict {
    /// Exactly the manifest's, signed by a counted signer whose signature verifies.
    Verified {
        /// Its signer.
        key_id: KeyId,
    },
    /// There is no `SHA256SUMS.sig`.
    Missing,
    /// Not an embedded signify signature.
    Malformed(String),
    /// Its lines are not the manifest's.
    DoesNotMatchManifest,
    /// Its signer is not a trusted key that validly signed the manifest.
    SignerNotCounted {
        /// Its signer.
        key_id: KeyId,
    },
    /// Its signature does not verify with its signer's key.
    BadSignature {
        /// Its signer.
        key_id: KeyId,
    },
}

impl SumsVerdict {
    /// A stable name (JSON `state`).
    pub fn kind(&self) -> &'static str {
        match self {
            SumsVerdict::Verified { .. } => "verified",
            SumsVerdict::Missing => "missing",
            SumsVerdict::Malformed(_) => "malformed",
            SumsVerdict::DoesNotMatchManifest => "does_not_match_manifest",
            SumsVerdict::SignerNotCounted { .. } => "signer_not_counted",
            SumsVerdict::BadSignature { .. } => "bad_signature",
        }
    }

    /// The key id the list claims, when it parsed.
    pub fn key_id(&self) -> Option<KeyId> {
        match self {
            SumsVerdict::Verified { key_id }
            | SumsVerdict::SignerNotCounted { key_id }
            | SumsVerdict::BadSignature { key_id } => Some(*key_id),
            _ => None,
        }
    }
}

/// Reads every import of the mirror at `root` (see the module documentation), writing
/// nothing.
pub fn show(root: &Path) -> Result<MirrorShow> {
    let meta = open_checked(root)?;
    check_format(&meta)?;
    // Held while the kept heads are read, so no import moves one into place meanwhile.
    let (_lock, lock) = shared_lock(&meta)?;
    let scan = scan_log(root)?;
    let mut imports: Vec<KeptImport> = Vec::new();
    for (line, record) in &scan.records {
        for bundle in record_imports(record).unwrap_or_default() {
            let logged =
                Logged { line: *line, time: record.time, source: record.source.clone(), bundle: bundle.clone() };
            imports.push(KeptImport {
                digest: bundle.manifest_sha256.clone(),
                logged: Some(logged),
                head: Err(HeadProblem::NotADigest),
            });
        }
    }
    let bundles = meta.join("bundles");
    let kept = kept_names(&bundles)?;
    for import in &mut imports {
        import.head = if kept.contains(&import.digest) {
            read_head(&bundles, &import.digest)
        } else {
            Err(HeadProblem::Missing { digest: import.digest.clone() })
        };
    }
    for name in kept {
        if !imports.iter().any(|i| i.digest == name) {
            let head = read_head(&bundles, &name);
            imports.push(KeptImport { digest: name, logged: None, head });
        }
    }
    Ok(MirrorShow {
        lock,
        log_lines: scan.lines,
        log_breaks: scan.breaks.iter().map(ToString::to_string).collect(),
        imports,
    })
}

/// For a path inside a kept head (`MIRROR/.airlock/bundles/<digest>` or a file under it,
/// such as its `manifest.cbor`): the mirror root (`.` when the path starts at
/// `.airlock`) and the digest. `None` for any other path. Nothing is read.
pub fn kept_head_of(path: &Path) -> Option<(std::path::PathBuf, String)> {
    use std::path::Component;
    let parts: Vec<Component<'_>> = path.components().collect();
    let at = parts.windows(3).position(|w| {
        w[0].as_os_str() == crate::format::path::METADATA_DIR
            && w[1].as_os_str() == "bundles"
            && matches!(w[2], Component::Normal(_))
    })?;
    let digest = parts.get(at + 2)?.as_os_str().to_str()?.to_owned();
    let root: std::path::PathBuf = parts[..at].iter().collect();
    Some((if root.as_os_str().is_empty() { ".".into() } else { root }, digest))
}

/// The names under `bundles/`, sorted.
fn kept_names(bundles: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    if plain::check(bundles, Want::Dir)? {
        for item in fs::read_dir(bundles).map_err(|e| Error::io(bundles, e))? {
            let item = item.map_err(|e| Error::io(bundles, e))?;
            names.push(item.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Reads the kept head `bundles/<name>/` as hostile input.
fn read_head(bundles: &Path, name: &str) -> std::result::Result<KeptHead, HeadProblem> {
    if Digest::from_hex(name).is_none_or(|d| d.to_hex() != name) {
        return Err(HeadProblem::NotADigest);
    }
    let dir = bundles.join(name);
    let unreadable = |e: Error| HeadProblem::Unreadable(Box::new(e));
    if !plain::check(&dir, Want::Dir).map_err(unreadable)? {
        return Err(HeadProblem::Missing { digest: name.to_owned() });
    }
    let path = dir.join("manifest.cbor");
    let manifest_bytes = match read_bounded(&path, Limits::LARGEST.manifest_bytes) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(unreadable(Error::io(&path, std::io::ErrorKind::NotFound.into()))),
        Err(ReadProblem::TooLarge) => {
            return Err(HeadProblem::TooLarge { file: "manifest.cbor", limit: Limits::LARGEST.manifest_bytes })
        }
        Err(ReadProblem::Io(e)) => return Err(unreadable(e)),
    };
    let actual = Digest::of(&manifest_bytes).to_hex();
    if actual != name {
        return Err(HeadProblem::ManifestMismatch { actual });
    }
    let manifest = manifest::decode(&manifest_bytes).map_err(|e| HeadProblem::Undecodable(e.to_string()))?;
    // The manifest decoded, so its version's limit (FORMAT.md §11) bounds the list.
    let sums_limit = Limits::of_version(manifest.version).sums_bytes;
    let sums = match read_bounded(&dir.join("SHA256SUMS.sig"), sums_limit) {
        Ok(sums) => sums,
        Err(ReadProblem::TooLarge) => return Err(HeadProblem::TooLarge { file: "SHA256SUMS.sig", limit: sums_limit }),
        Err(ReadProblem::Io(e)) => return Err(unreadable(e)),
    };
    let sums_match_manifest =
        sums.as_deref().and_then(|b| keys::parse_embedded(b).ok()).is_some_and(|(_, msg)| sums_match(&manifest, msg));
    Ok(KeptHead {
        signatures: read_signatures(&dir.join("signatures"))?,
        trust_files: file_names(&dir.join("trust")).map_err(unreadable)?,
        manifest_bytes,
        manifest,
        sums,
        sums_match_manifest,
    })
}

/// Each file under a kept head's `signatures/`, at most [`MAX_SIGNATURES`] of them.
fn read_signatures(dir: &Path) -> std::result::Result<Vec<KeptSignature>, HeadProblem> {
    let names = file_names(dir).map_err(|e| HeadProblem::Unreadable(Box::new(e)))?;
    if names.len() > MAX_SIGNATURES {
        return Err(HeadProblem::TooManySignatures { count: names.len() });
    }
    Ok(names.into_iter().map(|file| KeptSignature { signature: read_signature(dir, &file), file }).collect())
}

fn read_signature(dir: &Path, file: &str) -> std::result::Result<Signature, SignatureFileProblem> {
    let path = dir.join(file);
    let bytes = match read_bounded(&path, MAX_SIGNATURE_BYTES) {
        Ok(bytes) => bytes.unwrap_or_default(),
        Err(ReadProblem::TooLarge) => return Err(SignatureFileProblem::TooLarge),
        Err(ReadProblem::Io(e)) => return Err(SignatureFileProblem::Unreadable(Box::new(e))),
    };
    let sig = Signature::parse(&bytes).map_err(|e| SignatureFileProblem::Malformed(e.to_string()))?;
    if *file != format!("{}.sig", sig.key_id()) {
        return Err(SignatureFileProblem::Misnamed { key_id: sig.key_id(), file: file.to_owned() });
    }
    Ok(sig)
}

/// The names in `dir` (none when it does not exist), sorted; `dir` must be a directory.
fn file_names(dir: &Path) -> Result<Vec<String>> {
    if !plain::check(dir, Want::Dir)? {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        names.push(item.map_err(|e| Error::io(dir, e))?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Why [`read_bounded`] returned no bytes.
enum ReadProblem {
    /// Unreadable, or a link or special file.
    Io(Error),
    /// Past the limit.
    TooLarge,
}

/// A regular file's bytes (never through a link), refused past `limit` bytes; `None` when
/// it does not exist.
fn read_bounded(path: &Path, limit: u64) -> std::result::Result<Option<Vec<u8>>, ReadProblem> {
    if !plain::check(path, Want::File).map_err(ReadProblem::Io)? {
        return Ok(None);
    }
    let file = plain::open(path, OpenOptions::new().read(true)).map_err(ReadProblem::Io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| ReadProblem::Io(Error::io(path, e)))?;
    if bytes.len() as u64 > limit {
        return Err(ReadProblem::TooLarge);
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn kept_head_paths_name_their_mirror_and_digest() {
        let kept = |p: &str| kept_head_of(Path::new(p)).map(|(r, d)| (r.display().to_string(), d));
        assert_eq!(kept("/srv/m/.airlock/bundles/abc/manifest.cbor"), Some(("/srv/m".into(), "abc".into())));
        assert_eq!(kept(".airlock/bundles/abc"), Some((".".into(), "abc".into())));
        assert_eq!(kept("m/.airlock/bundles/abc/signatures/x.sig"), Some(("m".into(), "abc".into())));
        assert_eq!(kept("m/.airlock/bundles"), None);
        assert_eq!(kept("x/airlock/manifest.cbor"), None);
        assert_eq!(kept("bundle.airlock"), None);
    }

    #[test]
    fn selectors_read_what_an_auditor_types() {
        let seq = |c: Option<&str>, s| Selector::Sequence { channel: c.map(str::to_owned), sequence: s };
        assert_eq!(Selector::parse("debian:3"), Ok(seq(Some("debian"), 3)));
        assert_eq!(Selector::parse("a:b:12"), Ok(seq(Some("a:b"), 12)));
        assert_eq!(Selector::parse("7"), Ok(seq(None, 7)));
        assert_eq!(Selector::parse("0123ABCD"), Ok(Selector::Digest("0123abcd".into())));
        assert_eq!(Selector::parse("12345678"), Ok(Selector::Digest("12345678".into())));
        assert_eq!(Selector::parse(DIGEST), Ok(Selector::Digest(DIGEST.into())));
        for bad in ["", "abc", "0123abc", ":3", "debian:", "debian:+3", "debian:x", "g123456789", &format!("{DIGEST}0")]
        {
            assert!(matches!(Selector::parse(bad), Err(ShowError::BadSelector { .. })), "{bad:?}");
        }
    }

    fn import(digest: &str, channel: &str, sequence: u64) -> KeptImport {
        let bundle = BundleSummary {
            manifest_sha256: digest.into(),
            bundle_id: String::new(),
            channel: channel.into(),
            sequence,
            created: 0,
            expires: None,
            signers: Vec::new(),
            entries: 0,
            bytes: 0,
        };
        let logged = Logged { line: 1, time: 0, source: None, bundle };
        KeptImport {
            digest: digest.into(),
            logged: Some(logged),
            head: Err(HeadProblem::Missing { digest: digest.into() }),
        }
    }

    #[test]
    fn a_selector_must_name_exactly_one_import() {
        let shown = MirrorShow {
            lock: ReadLock::Shared,
            log_lines: 3,
            log_breaks: Vec::new(),
            imports: vec![
                import(&format!("aaaaaaaa1{}", &DIGEST[9..]), "a", 1),
                import(&format!("aaaaaaaa2{}", &DIGEST[9..]), "b", 1),
                import(DIGEST, "b", 2),
            ],
        };
        let pick = |s: &str| shown.select(&Selector::parse(s).unwrap()).map(|i| i.digest.clone());
        assert_eq!(pick("b:2"), Ok(DIGEST.to_owned()));
        assert_eq!(pick("2"), Ok(DIGEST.to_owned()));
        assert_eq!(pick("01234567"), Ok(DIGEST.to_owned()));
        assert!(pick("aaaaaaaa1").unwrap().starts_with("aaaaaaaa1"));
        match pick("aaaaaaaa") {
            Err(ShowError::Ambiguous { candidates, .. }) => {
                assert_eq!(candidates.len(), 2);
                assert!(candidates[0].starts_with("a:1 aaaaaaaa1"), "{candidates:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(pick("1"), Err(ShowError::Ambiguous { .. })));
        match pick("c:1") {
            Err(e @ ShowError::Unknown { .. }) => assert!(e.to_string().contains("b:2 0123"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(!shown.is_intact(), "missing kept heads are not intact");
    }
}
