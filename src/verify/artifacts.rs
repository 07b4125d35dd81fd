//! Artifact signatures: the producer's layer, checked while the payload streams.
//!
//! A bundle's manifest links each artifact to the detached signatures that travel with it
//! (`<artifact>.sig`, `.minisig`, `.asc`, `.sha256.sig`; docs/FORMAT.md §6.2), and payload
//! order puts those signature members immediately before their artifact (§6.4). So
//! [`ArtifactSink`], a [`PayloadSink`] decorator, can check a trust policy's artifact rules
//! in the same single pass that verifies and stages the payload:
//!
//! 1. a signature member of an artifact that a rule covers (or that a rule's glob matches
//!    itself) is buffered (at most [`MAX_SIGNATURE_FILE`] bytes) and parsed once its
//!    SHA-256 has matched. Parsing is the whole shape check, whoever signed the file: one
//!    signify signature (two lines), one minisign signature (four lines), one armoured
//!    OpenPGP signature block ([`armor`]), or a signify embedded signature whose message is
//!    exactly the artifact's checksum line; nothing before or after it;
//! 2. when the artifact opens, a verifier is started for each signature by a key of a
//!    covering rule (signify: strict Ed25519 over the file, streamed; minisign prehashed:
//!    BLAKE2b-512 streamed, then Ed25519; minisign legacy: strict Ed25519 streamed; the
//!    trusted comment's global signature up front; `.sha256.sig`: the signature over its
//!    checksum line, which parsing already matched to the artifact);
//! 3. the artifact's bytes feed the verifiers as they pass to the inner sink;
//! 4. when it closes, every covering rule must hold, or the import is rejected with an
//!    [`Reject::Artifact`] naming the file and the key ids.
//!
//! Decisions: a signature by a rule key that does not verify rejects (tampering), even when
//! the rule does not require a signature; signatures by other keys are ignored and reported;
//! revoked keys never count; a signature file of a covered artifact that is not exactly a
//! signature of its kind rejects, whoever signed it (so a "signature" cannot smuggle other
//! content past a rule). Signature files of artifacts no rule covers are carried unparsed,
//! like any file no rule covers (docs/POLICY.md says why).

mod armor;

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::thread;

use super::sink::PayloadSink;
use crate::error::{Reject, Result};
use crate::format::manifest::{Entry, Manifest};
use crate::format::sums::check_checksum_line;
use crate::format::SigKind;
use crate::io::digest::Digest;
use crate::io::sync::join_unscoped;
use crate::io::tuning::{ARTIFACT_CHUNKS_QUEUED, ARTIFACT_PARALLEL_MIN_BYTES};
use crate::keys::ed25519::StrictStream;
use crate::keys::minisign::{MinisigFile, MinisigVerifier, SigMode};
use crate::keys::{self, KeyId, PublicKey, Signature};
use crate::policy::Policy;

/// Largest signature file buffered for checking.
pub const MAX_SIGNATURE_FILE: u64 = 64 * 1024;

/// A linked signature entry that must be exactly a signature of its kind: what it signs.
#[derive(Clone)]
struct Watched {
    artifact: String,
    artifact_sha256: Digest,
    kind: SigKind,
}

/// A signature file, parsed. Parsing is the whole shape check: whoever signed it, a file
/// that parses is one signature of its kind and nothing more.
enum Parsed {
    Signify(Signature),
    Minisign(MinisigFile),
    /// A `.sha256.sig`; its message was checked to be the artifact's checksum line.
    Checksum(Signature, Vec<u8>),
    Pgp,
}

impl Parsed {
    fn parse(w: &Watched, bytes: &[u8]) -> std::result::Result<Parsed, String> {
        match w.kind {
            SigKind::Signify => {
                let sig = Signature::parse(bytes).map_err(|e| e.to_string())?;
                check_comment_text(sig.comment())?;
                Ok(Parsed::Signify(sig))
            }
            SigKind::Minisign => MinisigFile::parse(bytes).map(Parsed::Minisign).map_err(|e| e.to_string()),
            SigKind::Checksum => {
                let (sig, msg) = keys::parse_embedded(bytes).map_err(|e| e.to_string())?;
                check_comment_text(sig.comment())?;
                check_checksum_line(msg, &w.artifact, &w.artifact_sha256).map_err(|e| e.to_string())?;
                Ok(Parsed::Checksum(sig, msg.to_vec()))
            }
            SigKind::Pgp => armor::check_armored_signature(bytes)
                .map(|()| Parsed::Pgp)
                .map_err(|e| format!("is not exactly one ASCII-armoured OpenPGP signature block: {e}")),
        }
    }

    fn key_id(&self) -> Option<KeyId> {
        match self {
            Parsed::Signify(s) | Parsed::Checksum(s, _) => Some(s.key_id()),
            Parsed::Minisign(m) => Some(m.key_id()),
            Parsed::Pgp => None,
        }
    }
}

/// A signify untrusted comment is free text by the format's definition; in a linked
/// signature file it must at least hold no control characters (tab aside), which no signing
/// tool writes and which would reach a terminal that prints the file.
fn check_comment_text(comment: &str) -> std::result::Result<(), String> {
    if comment.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("its untrusted comment {comment:?} contains control characters"));
    }
    Ok(())
}

/// A signature check that consumes the artifact's bytes.
enum Streaming {
    Signify(Box<StrictStream>),
    Minisign(MinisigVerifier),
}

impl Streaming {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Streaming::Signify(v) => v.update(bytes),
            Streaming::Minisign(v) => v.update(bytes),
        }
    }

    fn finish(self) -> std::result::Result<(), String> {
        match self {
            Streaming::Signify(v) => v.finish().map_err(|e| e.to_string()),
            Streaming::Minisign(v) => v.finish().map_err(|e| e.to_string()),
        }
    }
}

/// A streaming check on its own thread, fed through a bounded channel: for a large artifact
/// the signature hashes (SHA-512, BLAKE2b-512) then run beside staging and each other
/// instead of after them on the sink thread.
struct Worker {
    tx: mpsc::SyncSender<Arc<[u8]>>,
    handle: thread::JoinHandle<std::result::Result<(), String>>,
}

impl Worker {
    fn spawn(mut check: Streaming) -> Worker {
        let (tx, rx) = mpsc::sync_channel::<Arc<[u8]>>(ARTIFACT_CHUNKS_QUEUED);
        let handle = thread::spawn(move || {
            for chunk in rx {
                check.update(&chunk);
            }
            check.finish()
        });
        Worker { tx, handle }
    }

    /// The check's verdict once every byte was sent. A panicking verifier thread is a bug in
    /// airlock ([`Error::Internal`](crate::error::Error::Internal)), never a verdict on the
    /// signature.
    fn finish(self) -> Result<std::result::Result<(), String>> {
        drop(self.tx);
        join_unscoped(self.handle, "artifact signature verifier")
    }
}

enum Check {
    Inline(Streaming),
    Worker(Worker),
    Passed,
    Failed(String),
}

struct Candidate {
    sig_path: String,
    key: PublicKey,
    legacy: bool,
    check: Check,
    /// A minisign trusted comment (authenticated once the check passed), for the report.
    trusted_comment: Option<String>,
}

struct Artifact {
    path: String,
    /// Every signature file linked to it.
    linked: Vec<String>,
    rules: Vec<usize>,
    candidates: Vec<Candidate>,
}

enum Current {
    Buffering { path: String, watched: Watched, buf: Vec<u8> },
    Checking(Artifact),
    PassThrough,
}

/// A [`PayloadSink`] that enforces a policy's artifact rules around an inner sink.
pub struct ArtifactSink<'a> {
    inner: &'a mut dyn PayloadSink,
    policy: &'a Policy,
    created: u64,
    /// Linked signature entries that must parse as their kind (those of covered artifacts,
    /// and those a rule's glob matches themselves).
    watched: HashMap<String, Watched>,
    /// Parsed signature files waiting for their artifact.
    held: HashMap<String, Parsed>,
    current: Option<Current>,
    notes: Vec<String>,
    active: bool,
}

impl<'a> ArtifactSink<'a> {
    /// Wraps `inner` to enforce `policy`'s artifact rules on the payload of `manifest`.
    pub fn new(inner: &'a mut dyn PayloadSink, policy: &'a Policy, manifest: &Manifest) -> ArtifactSink<'a> {
        let rules = policy.artifact_rules();
        let mut watched = HashMap::new();
        let mut active = false;
        for e in &manifest.entries {
            let covered = rules.iter().any(|r| r.matches(e.path.as_str()));
            active |= covered;
            for s in &e.signatures {
                if covered || rules.iter().any(|r| r.matches(s.as_str())) {
                    if let Some(kind) = SigKind::of(e.path.as_str(), s.as_str()) {
                        let w = Watched { artifact: e.path.as_str().to_owned(), artifact_sha256: e.sha256, kind };
                        watched.insert(s.as_str().to_owned(), w);
                    }
                }
            }
        }
        ArtifactSink {
            inner,
            policy,
            created: manifest.created,
            watched,
            held: HashMap::new(),
            current: None,
            notes: Vec::new(),
            active,
        }
    }

    /// What was checked and what was ignored, one line per artifact or signature.
    pub fn into_notes(self) -> Vec<String> {
        self.notes
    }

    fn reject(path: &str, problem: String) -> crate::error::Error {
        Reject::Artifact { path: path.to_owned(), problem }.into()
    }

    fn key_label(&self, key: &PublicKey) -> String {
        match self.policy.name_of(key) {
            Some(n) if n != key.key_id().to_string() => format!("{} ({n})", key.key_id()),
            _ => key.key_id().to_string(),
        }
    }

    /// Starts checking an artifact covered by `rules`.
    fn start(&mut self, entry: &Entry, rules: Vec<usize>) -> Result<Artifact> {
        let path = entry.path.as_str();
        let policy_rules = self.policy.artifact_rules();
        let mut candidates = Vec::new();
        for sig_path in &entry.signatures {
            let sig_path = sig_path.as_str();
            let Some(parsed) = self.held.remove(sig_path) else {
                continue;
            };
            let Some(id) = parsed.key_id() else {
                self.notes.push(format!("{path}: {sig_path} carried, not verified"));
                continue;
            };
            if let Some(r) = self.policy.revocation(id, self.created) {
                self.notes.push(format!("{path}: {sig_path} is by revoked key {id} ({}); ignored", r.reason));
                continue;
            }
            let Some(key) = rules.iter().find_map(|&i| policy_rules[i].key(id)).cloned() else {
                self.notes
                    .push(format!("{path}: {sig_path} is by key {id}, which no rule for this file names; ignored"));
                continue;
            };
            let trusted_comment = match &parsed {
                Parsed::Minisign(m) => Some(m.trusted_comment().to_owned()),
                _ => None,
            };
            let (legacy, check) = match parsed {
                Parsed::Signify(sig) => (
                    false,
                    StrictStream::new(&key, sig.bytes()).map_or_else(
                        |e| Check::Failed(e.to_string()),
                        |v| Check::Inline(Streaming::Signify(Box::new(v))),
                    ),
                ),
                Parsed::Minisign(m) => (
                    m.mode() == SigMode::Legacy,
                    m.verifier(&key, true)
                        .map_or_else(|e| Check::Failed(e.to_string()), |v| Check::Inline(Streaming::Minisign(v))),
                ),
                Parsed::Checksum(sig, line) => {
                    // The line itself was checked when the file was parsed.
                    let check = if key.verify(&line, &sig).is_err() {
                        Check::Failed("the signature of the checksum line does not verify".into())
                    } else {
                        Check::Passed
                    };
                    (false, check)
                }
                Parsed::Pgp => continue,
            };
            candidates.push(Candidate { sig_path: sig_path.to_owned(), key, legacy, check, trusted_comment });
        }
        if entry.size >= ARTIFACT_PARALLEL_MIN_BYTES {
            for c in &mut candidates {
                c.check = match std::mem::replace(&mut c.check, Check::Passed) {
                    Check::Inline(streaming) => Check::Worker(Worker::spawn(streaming)),
                    other => other,
                };
            }
        }
        let linked = entry.signatures.iter().map(|s| s.as_str().to_owned()).collect();
        let artifact = Artifact { path: path.to_owned(), linked, rules, candidates };
        self.fail_on_bad(&artifact)?;
        Ok(artifact)
    }

    /// A signature by a rule key that failed, or a legacy one a rule refuses, rejects.
    fn fail_on_bad(&self, a: &Artifact) -> Result<()> {
        for c in &a.candidates {
            if let Check::Failed(why) = &c.check {
                return Err(Self::reject(
                    &a.path,
                    format!("signature {} by key {}: {why}", c.sig_path, self.key_label(&c.key)),
                ));
            }
            for &i in &a.rules {
                let rule = &self.policy.artifact_rules()[i];
                if c.legacy && !rule.allow_legacy && rule.key(c.key.key_id()).is_some() {
                    return Err(Self::reject(
                        &a.path,
                        format!(
                            "signature {} by key {} is a legacy (non-prehashed) minisign signature, which the rule for {:?} refuses (allow_legacy = false)",
                            c.sig_path,
                            self.key_label(&c.key),
                            rule.pattern
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The artifact's bytes have all passed (and matched their SHA-256): decide.
    fn finish(&mut self, mut a: Artifact) -> Result<()> {
        for c in &mut a.candidates {
            let check = std::mem::replace(&mut c.check, Check::Passed);
            c.check = match check {
                Check::Inline(v) => v.finish().map_or_else(Check::Failed, |()| Check::Passed),
                Check::Worker(w) => w.finish()?.map_or_else(Check::Failed, |()| Check::Passed),
                other => other,
            };
        }
        self.fail_on_bad(&a)?;
        for &i in &a.rules {
            let rule = &self.policy.artifact_rules()[i];
            let good: Vec<&Candidate> = a
                .candidates
                .iter()
                .filter(|c| {
                    matches!(c.check, Check::Passed) && rule.keys.iter().any(|k| k.as_bytes() == c.key.as_bytes())
                })
                .collect();
            let wanted: Vec<String> = rule.keys.iter().map(|k| self.key_label(k)).collect();
            if let Some(c) = good.first() {
                self.notes.push(format!(
                    "{}: {} verified with key {} (rule {:?}){}",
                    a.path,
                    c.sig_path,
                    self.key_label(&c.key),
                    rule.pattern,
                    c.trusted_comment
                        .as_ref()
                        .map_or(String::new(), |t| format!("; trusted comment: {}", t.escape_debug()))
                ));
            } else if rule.required {
                return Err(Self::reject(
                    &a.path,
                    format!(
                        "the rule for {:?} requires a valid signature by {}{}, and there is none (signature files: {})",
                        rule.pattern,
                        if wanted.len() > 1 { "one of " } else { "key " },
                        wanted.join(", "),
                        if a.linked.is_empty() { "none".to_owned() } else { a.linked.join(", ") }
                    ),
                ));
            } else {
                self.notes.push(format!(
                    "{}: not signed by {} (accepted: the rule for {:?} has required = false)",
                    a.path,
                    wanted.join(", "),
                    rule.pattern
                ));
            }
        }
        Ok(())
    }
}

impl PayloadSink for ArtifactSink<'_> {
    fn open(&mut self, entry: &Entry) -> Result<()> {
        let path = entry.path.as_str();
        let current = if let Some(watched) = self.watched.get(path).cloned() {
            if entry.size > MAX_SIGNATURE_FILE {
                return Err(Self::reject(
                    &watched.artifact,
                    format!(
                        "signature file {path} is {} bytes, more than the {MAX_SIGNATURE_FILE} a signature may have",
                        entry.size
                    ),
                ));
            }
            Current::Buffering { path: path.to_owned(), watched, buf: Vec::with_capacity(entry.size as usize) }
        } else {
            let rules: Vec<usize> = self
                .policy
                .artifact_rules()
                .iter()
                .enumerate()
                .filter(|(_, r)| r.matches(path))
                .map(|(i, _)| i)
                .collect();
            if rules.is_empty() {
                // Signatures held for an artifact no rule covers are not needed.
                for s in &entry.signatures {
                    self.held.remove(s.as_str());
                }
                Current::PassThrough
            } else {
                Current::Checking(self.start(entry, rules)?)
            }
        };
        self.current = Some(current);
        self.inner.open(entry)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.current {
            Some(Current::Buffering { buf, .. }) => buf.extend_from_slice(bytes),
            Some(Current::Checking(a)) => {
                let mut shared: Option<Arc<[u8]>> = None;
                for c in &mut a.candidates {
                    match &mut c.check {
                        Check::Inline(v) => v.update(bytes),
                        Check::Worker(w) => {
                            let chunk = shared.get_or_insert_with(|| Arc::from(bytes)).clone();
                            // A worker only stops early by panicking; finish() then reports
                            // the panic.
                            let _ = w.tx.send(chunk);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        self.inner.write(bytes)
    }

    fn close(&mut self, entry: &Entry) -> Result<()> {
        match self.current.take() {
            Some(Current::Buffering { path, watched, buf }) => {
                let parsed = Parsed::parse(&watched, &buf).map_err(|why| {
                    Self::reject(&watched.artifact, format!("signature file {path} is malformed: {why}"))
                })?;
                self.held.insert(path, parsed);
            }
            Some(Current::Checking(a)) => self.finish(a)?,
            _ => {}
        }
        self.inner.close(entry)
    }

    fn wants_data(&self) -> bool {
        self.active || !self.watched.is_empty() || self.inner.wants_data()
    }
}
