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
//! 4. when it closes (and its Sigstore material has been checked), every covering rule must
//!    hold, or the import is rejected with an [`Reject::Artifact`] naming the file and the
//!    keys (key ids, fingerprints, identities).
//!
//! Producer material beyond signify and minisign is checked in the same pass:
//!
//! - OpenPGP `.asc` (and a `.sig` that is not a signify file) of an artifact a rule with
//!   OpenPGP keys covers: the signature packets are parsed when the file closes, and a
//!   verifier over the rule's keyrings consumes the artifact's bytes like the others;
//! - Sigstore material found by name (`X.sigstore.json`, `X.intoto.jsonl`,
//!   `X.publish.attestation`, ...; [`producers`](super::producers)) of an artifact a rule
//!   with Sigstore keys covers: buffered (at most [`MAX_MATERIAL_FILE`] bytes), parsed, and
//!   verified against the manifest's authenticated SHA-256 (and the SHA-512 computed while
//!   the artifact streams, for npm) once both have passed; an artifact whose material
//!   streams after it is decided then, or at the end of the payload ([`ArtifactSink::end`]);
//! - Debian archive trees under a `[[repository]]` rule ([`repository`](super::repository));
//! - SBOMs beside an artifact (`X.cdx.json`, `X.spdx.json`, `X.spdx`): reported as unsigned
//!   claims, never satisfying a rule.
//!
//! Decisions: a signature by a rule key that does not verify rejects (tampering), even when
//! the rule does not require a signature; signatures by other keys are ignored and reported;
//! revoked keys never count; a signature file of a covered artifact that is not exactly a
//! signature of its kind rejects, whoever signed it (so a "signature" cannot smuggle other
//! content past a rule). Signature files of artifacts no rule covers are carried unparsed,
//! like any file no rule covers (docs/POLICY.md says why).

mod armor;

use std::collections::{HashMap, HashSet};
use std::sync::{mpsc, Arc};
use std::thread;

use sha2::{Digest as _, Sha512};

use super::producers::{self, Material, Satisfier};
use super::repository::Repositories;
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
use crate::producer::openpgp::{DetachedSignature, DetachedVerifier, Keyring, PgpCheck};
use crate::producer::{Finding, ProducerReport, Status, Times};

/// Largest signature file buffered for checking.
pub const MAX_SIGNATURE_FILE: u64 = 64 * 1024;
/// Largest Sigstore material file (a bundle, a `.jsonl` of attestations, a PyPI provenance
/// file) or Debian release file buffered for checking.
pub const MAX_MATERIAL_FILE: u64 = 16 << 20;

/// A linked signature entry that must be exactly a signature of its kind: what it signs.
#[derive(Clone)]
struct Watched {
    artifact: String,
    artifact_sha256: Digest,
    kind: SigKind,
    /// A rule covering the artifact names OpenPGP keys: the file is read as OpenPGP.
    openpgp: bool,
}

/// A signature file, parsed. Parsing is the whole shape check: whoever signed it, a file
/// that parses is one signature of its kind and nothing more.
enum Parsed {
    Signify(Signature),
    Minisign(MinisigFile),
    /// A `.sha256.sig`; its message was checked to be the artifact's checksum line.
    Checksum(Signature, Vec<u8>),
    /// OpenPGP signature packets; `None` when no rule for the artifact names an OpenPGP key
    /// (then only the armour's shape was checked, and the file is carried).
    Pgp(Option<DetachedSignature>),
}

impl Parsed {
    fn parse(w: &Watched, bytes: &[u8]) -> std::result::Result<Parsed, String> {
        match w.kind {
            // A `.sig` is signify's name, and also OpenPGP's for a binary signature.
            SigKind::Signify if w.openpgp && !bytes.starts_with(b"untrusted comment:") => {
                Self::openpgp(bytes).map_err(|e| format!("is neither a signify nor an OpenPGP signature: {e}"))
            }
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
            SigKind::Pgp if w.openpgp => {
                Self::openpgp(bytes).map_err(|e| format!("is not exactly OpenPGP signature packets: {e}"))
            }
            SigKind::Pgp => armor::check_armored_signature(bytes)
                .map(|()| Parsed::Pgp(None))
                .map_err(|e| format!("is not exactly one ASCII-armoured OpenPGP signature block: {e}")),
        }
    }

    fn openpgp(bytes: &[u8]) -> std::result::Result<Parsed, String> {
        DetachedSignature::parse(bytes).map(|s| Parsed::Pgp(Some(s))).map_err(|e| e.to_string())
    }

    fn key_id(&self) -> Option<KeyId> {
        match self {
            Parsed::Signify(s) | Parsed::Checksum(s, _) => Some(s.key_id()),
            Parsed::Minisign(m) => Some(m.key_id()),
            Parsed::Pgp(_) => None,
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

/// A check that consumes the artifact's bytes.
enum Streaming {
    Signify(Box<StrictStream>),
    Minisign(MinisigVerifier),
    OpenPgp(DetachedVerifier),
    /// The artifact's SHA-512, for Sigstore material bound to it (npm provenance).
    Sha512(Box<Sha512>),
}

/// What a streaming check found.
enum Outcome {
    Passed,
    Failed(String),
    OpenPgp(Vec<PgpCheck>),
    Sha512([u8; 64]),
}

impl Streaming {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Streaming::Signify(v) => v.update(bytes),
            Streaming::Minisign(v) => v.update(bytes),
            Streaming::OpenPgp(v) => v.update(bytes),
            Streaming::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Outcome {
        let verdict = |r: std::result::Result<(), String>| r.map_or_else(Outcome::Failed, |()| Outcome::Passed);
        match self {
            Streaming::Signify(v) => verdict(v.finish().map_err(|e| e.to_string())),
            Streaming::Minisign(v) => verdict(v.finish().map_err(|e| e.to_string())),
            Streaming::OpenPgp(v) => Outcome::OpenPgp(v.finish()),
            Streaming::Sha512(h) => Outcome::Sha512(h.finalize().into()),
        }
    }
}

/// A streaming check on its own thread, fed through a bounded channel: for a large artifact
/// the signature hashes (SHA-512, BLAKE2b-512) then run beside staging and each other
/// instead of after them on the sink thread.
struct Worker {
    tx: mpsc::SyncSender<Arc<[u8]>>,
    handle: thread::JoinHandle<Outcome>,
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
    fn finish(self) -> Result<Outcome> {
        drop(self.tx);
        join_unscoped(self.handle, "artifact signature verifier")
    }
}

enum Check {
    Inline(Streaming),
    Worker(Worker),
    Done(Outcome),
}

impl Check {
    fn update(&mut self, bytes: &[u8], shared: &mut Option<Arc<[u8]>>) {
        match self {
            Check::Inline(v) => v.update(bytes),
            Check::Worker(w) => {
                let chunk = shared.get_or_insert_with(|| Arc::from(bytes)).clone();
                // A worker only stops early by panicking; finish() then reports the panic.
                let _ = w.tx.send(chunk);
            }
            Check::Done(_) => {}
        }
    }

    fn finish(self) -> Result<Outcome> {
        Ok(match self {
            Check::Inline(v) => v.finish(),
            Check::Worker(w) => w.finish()?,
            Check::Done(o) => o,
        })
    }

    fn parallel(self) -> Check {
        match self {
            Check::Inline(streaming) => Check::Worker(Worker::spawn(streaming)),
            other => other,
        }
    }
}

struct Candidate {
    sig_path: String,
    key: PublicKey,
    legacy: bool,
    check: Check,
    /// A minisign trusted comment (authenticated once the check passed), for the report.
    trusted_comment: Option<String>,
}

struct PgpCandidate {
    sig_path: String,
    check: Check,
}

struct Artifact {
    path: String,
    /// Every signature file linked to it.
    linked: Vec<String>,
    rules: Vec<usize>,
    candidates: Vec<Candidate>,
    pgp: Vec<PgpCandidate>,
    sha512: Option<Check>,
}

/// A covered artifact whose bytes have passed, waiting for its Sigstore material.
struct Waiting {
    rules: Vec<usize>,
    linked: Vec<String>,
    sha256: Digest,
    sha512: Option<[u8; 64]>,
    satisfied: Vec<Satisfier>,
    /// Material files still to stream.
    pending: usize,
    /// Material files seen, for the error when no rule holds.
    material: Vec<String>,
}

enum Current {
    Buffering { path: String, watched: Watched, buf: Vec<u8> },
    Material { path: String, artifact: String, buf: Vec<u8> },
    Checking(Artifact),
    PassThrough,
}

/// A [`PayloadSink`] that enforces a policy's artifact and repository rules around an
/// inner sink.
pub struct ArtifactSink<'a> {
    inner: &'a mut dyn PayloadSink,
    policy: &'a Policy,
    created: u64,
    times: Times,
    /// Linked signature entries that must parse as their kind (those of covered artifacts,
    /// and those a rule's glob matches themselves).
    watched: HashMap<String, Watched>,
    /// Parsed signature files waiting for their artifact.
    held: HashMap<String, Parsed>,
    /// Sigstore material entries to check -> their artifact.
    material: HashMap<String, String>,
    /// Covered artifacts with Sigstore material: how many material files each has.
    material_count: HashMap<String, usize>,
    /// Parsed material that streamed before its artifact.
    early_material: HashMap<String, Vec<Material>>,
    /// Covered artifacts whose bytes passed and whose material has not all streamed.
    waiting: HashMap<String, Waiting>,
    repositories: Repositories<'a>,
    current: Option<Current>,
    findings: Vec<Finding>,
    /// Names of the keys and instances whose material made a rule hold.
    used: HashSet<String>,
    active: bool,
}

impl<'a> ArtifactSink<'a> {
    /// Wraps `inner` to enforce `policy`'s artifact and repository rules on the payload of
    /// `manifest`, judging producer signatures by `times`.
    pub fn new(
        inner: &'a mut dyn PayloadSink,
        policy: &'a Policy,
        manifest: &Manifest,
        times: Times,
    ) -> Result<ArtifactSink<'a>> {
        let rules = policy.artifact_rules();
        let mut watched = HashMap::new();
        let mut active = false;
        let mut findings = Vec::new();
        let paths: HashSet<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        let covering = |path: &str| -> Vec<usize> {
            rules.iter().enumerate().filter(|(_, r)| r.matches(path)).map(|(i, _)| i).collect()
        };
        for e in &manifest.entries {
            let path = e.path.as_str();
            let covered = covering(path);
            active |= !covered.is_empty();
            let openpgp = covered.iter().any(|&i| producers::rule_has_openpgp(policy, &rules[i]));
            for s in &e.signatures {
                if !covered.is_empty() || rules.iter().any(|r| r.matches(s.as_str())) {
                    if let Some(kind) = SigKind::of(path, s.as_str()) {
                        let w = Watched { artifact: path.to_owned(), artifact_sha256: e.sha256, kind, openpgp };
                        watched.insert(s.as_str().to_owned(), w);
                    }
                }
            }
            if let Some(artifact) = producers::sbom_of(path, &paths) {
                findings.push(
                    Finding::new(artifact, Some(path), "sbom", Status::UnsignedClaim)
                        .detail("note", "an SBOM beside the artifact, signed by nobody: shown, never satisfies a rule"),
                );
            }
        }
        let mut material = HashMap::new();
        let mut material_count: HashMap<String, usize> = HashMap::new();
        // Material a delta does not carry was checked when it was carried.
        for e in manifest.entries.iter().filter(|e| e.carried) {
            let path = e.path.as_str();
            let Some(artifact) = producers::material_artifact(path, &paths) else { continue };
            let covered = covering(&artifact);
            if covered.iter().any(|&i| producers::rule_has_sigstore(policy, &rules[i])) {
                if e.size > MAX_MATERIAL_FILE {
                    return Err(Self::reject(
                        &artifact,
                        format!(
                            "Sigstore material {path} is {} bytes, more than the {MAX_MATERIAL_FILE} a bundle or attestation file may have",
                            e.size
                        ),
                    ));
                }
                *material_count.entry(artifact.clone()).or_default() += 1;
                material.insert(path.to_owned(), artifact);
            } else if !covered.is_empty() {
                findings.push(producers::not_covered(&artifact, path, "sigstore"));
            }
        }
        let repositories = Repositories::new(policy, manifest, times)?;
        active |= repositories.active();
        Ok(ArtifactSink {
            inner,
            policy,
            created: manifest.created,
            times,
            watched,
            held: HashMap::new(),
            material,
            material_count,
            early_material: HashMap::new(),
            waiting: HashMap::new(),
            repositories,
            current: None,
            findings,
            used: HashSet::new(),
            active,
        })
    }

    /// After the last entry: decides what waited for material, and the repository rules.
    /// Returns everything found, and the trust material the rules that held used.
    pub fn end(mut self) -> Result<ProducerReport> {
        let waiting: Vec<String> = self.waiting.keys().cloned().collect();
        for path in waiting {
            if let Some(w) = self.waiting.remove(&path) {
                self.decide(&path, &w.rules, &w.linked, &w.material, &w.satisfied)?;
            }
        }
        let (findings, used) = self.repositories.end()?;
        self.findings.extend(findings);
        self.used.extend(used);
        Ok(ProducerReport { trust_files: producers::trust_files(self.policy, &self.used), findings: self.findings })
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

    fn kind_of(parsed: &Parsed) -> &'static str {
        match parsed {
            Parsed::Signify(_) => "signify",
            Parsed::Minisign(_) => "minisign",
            Parsed::Checksum(..) => "signify-checksum",
            Parsed::Pgp(_) => "openpgp",
        }
    }

    /// Starts checking an artifact covered by `rules`.
    fn start(&mut self, entry: &Entry, rules: Vec<usize>) -> Result<Artifact> {
        let path = entry.path.as_str();
        let policy_rules = self.policy.artifact_rules();
        let keyrings: Vec<(String, Keyring)> =
            producers::keyrings_of(self.policy, rules.iter().map(|&i| &policy_rules[i]));
        let mut candidates = Vec::new();
        let mut pgp = Vec::new();
        for sig_path in &entry.signatures {
            let sig_path = sig_path.as_str();
            let Some(parsed) = self.held.remove(sig_path) else {
                continue;
            };
            let kind = Self::kind_of(&parsed);
            let Some(id) = parsed.key_id() else {
                match parsed {
                    Parsed::Pgp(Some(sig)) => pgp.push(PgpCandidate {
                        sig_path: sig_path.to_owned(),
                        check: Check::Inline(Streaming::OpenPgp(sig.verifier(&keyrings, self.times))),
                    }),
                    _ => self.findings.push(
                        Finding::new(path, Some(sig_path), kind, Status::NotCovered)
                            .detail("note", "carried, not verified: no rule for this file names an OpenPGP key"),
                    ),
                }
                continue;
            };
            if let Some(r) = self.policy.revocation(id, self.created) {
                self.findings.push(
                    Finding::new(path, Some(sig_path), kind, Status::Revoked)
                        .signer(id.to_string())
                        .detail("reason", r.reason.clone()),
                );
                continue;
            }
            let Some(key) = rules.iter().find_map(|&i| policy_rules[i].key(id)).cloned() else {
                self.findings.push(
                    Finding::new(path, Some(sig_path), kind, Status::OtherSigner)
                        .signer(id.to_string())
                        .detail("note", "by a key no rule for this file names; ignored"),
                );
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
                        |e| Check::Done(Outcome::Failed(e.to_string())),
                        |v| Check::Inline(Streaming::Signify(Box::new(v))),
                    ),
                ),
                Parsed::Minisign(m) => (
                    m.mode() == SigMode::Legacy,
                    m.verifier(&key, true).map_or_else(
                        |e| Check::Done(Outcome::Failed(e.to_string())),
                        |v| Check::Inline(Streaming::Minisign(v)),
                    ),
                ),
                Parsed::Checksum(sig, line) => {
                    // The line itself was checked when the file was parsed.
                    let check = if key.verify(&line, &sig).is_err() {
                        Check::Done(Outcome::Failed("the signature of the checksum line does not verify".into()))
                    } else {
                        Check::Done(Outcome::Passed)
                    };
                    (false, check)
                }
                Parsed::Pgp(_) => continue,
            };
            candidates.push(Candidate { sig_path: sig_path.to_owned(), key, legacy, check, trusted_comment });
        }
        let sha512 = self.material_count.contains_key(path).then(|| Check::Inline(Streaming::Sha512(Box::default())));
        let mut artifact = Artifact {
            path: path.to_owned(),
            linked: entry.signatures.iter().map(|s| s.as_str().to_owned()).collect(),
            rules,
            candidates,
            pgp,
            sha512,
        };
        if entry.size >= ARTIFACT_PARALLEL_MIN_BYTES {
            for c in &mut artifact.candidates {
                c.check = std::mem::replace(&mut c.check, Check::Done(Outcome::Passed)).parallel();
            }
            for c in &mut artifact.pgp {
                c.check = std::mem::replace(&mut c.check, Check::Done(Outcome::Passed)).parallel();
            }
            artifact.sha512 = artifact.sha512.take().map(Check::parallel);
        }
        self.fail_on_bad(&artifact)?;
        Ok(artifact)
    }

    /// A signature by a rule key that failed, or a legacy one a rule refuses, rejects.
    fn fail_on_bad(&self, a: &Artifact) -> Result<()> {
        for c in &a.candidates {
            if let Check::Done(Outcome::Failed(why)) = &c.check {
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

    /// The artifact's bytes have all passed (and matched their SHA-256): its signatures'
    /// verdicts, then the rules (now, or once its Sigstore material has streamed).
    fn finish(&mut self, mut a: Artifact, sha256: Digest) -> Result<()> {
        for c in &mut a.candidates {
            let check = std::mem::replace(&mut c.check, Check::Done(Outcome::Passed));
            c.check = Check::Done(check.finish()?);
        }
        self.fail_on_bad(&a)?;
        let mut satisfied = Vec::new();
        for c in &a.candidates {
            if matches!(c.check, Check::Done(Outcome::Passed)) {
                let mut f = Finding::new(&a.path, Some(&c.sig_path), "signify", Status::Verified)
                    .signer(self.key_label(&c.key));
                if let Some(t) = &c.trusted_comment {
                    f.kind = "minisign";
                    f = f.detail("trusted comment", t.escape_debug().to_string());
                }
                if c.sig_path.ends_with(crate::format::CHECKSUM_SIG_SUFFIX) {
                    f.kind = "signify-checksum";
                }
                self.findings.push(f);
                satisfied.push(Satisfier::Signify(c.key.clone()));
            }
        }
        for c in std::mem::take(&mut a.pgp) {
            let Outcome::OpenPgp(checks) = c.check.finish()? else { continue };
            let found = producers::judge_openpgp(self.policy, &a.path, &c.sig_path, &checks, self.created)?;
            self.findings.extend(found.findings);
            satisfied.extend(found.satisfied);
        }
        let sha512 = match a.sha512.take() {
            Some(check) => match check.finish()? {
                Outcome::Sha512(d) => Some(d),
                _ => None,
            },
            None => None,
        };
        let Some(&count) = self.material_count.get(&a.path) else {
            return self.decide(&a.path, &a.rules, &a.linked, &[], &satisfied);
        };
        let mut waiting = Waiting {
            rules: a.rules,
            linked: a.linked,
            sha256,
            sha512,
            satisfied,
            pending: count,
            material: Vec::new(),
        };
        for m in self.early_material.remove(&a.path).unwrap_or_default() {
            self.check_material(&a.path, &mut waiting, m)?;
        }
        if waiting.pending == 0 {
            return self.decide(&a.path, &waiting.rules, &waiting.linked, &waiting.material, &waiting.satisfied);
        }
        self.waiting.insert(a.path, waiting);
        Ok(())
    }

    /// Verifies one material file of an artifact whose bytes have passed.
    fn check_material(&mut self, artifact: &str, w: &mut Waiting, m: Material) -> Result<()> {
        w.pending = w.pending.saturating_sub(1);
        w.material.push(m.path.clone());
        let rules: Vec<&crate::policy::ArtifactRule> =
            w.rules.iter().map(|&i| &self.policy.artifact_rules()[i]).collect();
        let found =
            producers::judge_sigstore(self.policy, &rules, artifact, &m, w.sha256, w.sha512, self.times, self.created)?;
        self.findings.extend(found.findings);
        w.satisfied.extend(found.satisfied);
        Ok(())
    }

    /// Every covering rule must hold.
    fn decide(
        &mut self,
        path: &str,
        rules: &[usize],
        linked: &[String],
        material: &[String],
        satisfied: &[Satisfier],
    ) -> Result<()> {
        for &i in rules {
            let rule = &self.policy.artifact_rules()[i];
            if let Some(s) = satisfied.iter().find(|s| s.satisfies(rule)) {
                self.used.extend(s.used());
                continue;
            }
            let wanted = producers::describe_rule_keys(self.policy, rule, |k| self.key_label(k));
            if rule.required {
                let mut files: Vec<&str> = linked.iter().map(String::as_str).collect();
                files.extend(material.iter().map(String::as_str));
                return Err(Self::reject(
                    path,
                    format!(
                        "the rule for {:?} requires {wanted}, and there is none (signature files: {})",
                        rule.pattern,
                        if files.is_empty() { "none".to_owned() } else { files.join(", ") }
                    ),
                ));
            }
            self.findings.push(
                Finding::new(path, None, "rule", Status::Missing)
                    .detail("rule", format!("{:?}", rule.pattern))
                    .detail("note", format!("no {wanted}; accepted: the rule has required = false")),
            );
        }
        Ok(())
    }

    fn close_material(&mut self, path: String, artifact: String, buf: Vec<u8>) -> Result<()> {
        let m = producers::parse_material(&artifact, path, &buf)?;
        match self.waiting.remove(&artifact) {
            Some(mut w) => {
                self.check_material(&artifact, &mut w, m)?;
                if w.pending == 0 {
                    self.decide(&artifact, &w.rules, &w.linked, &w.material, &w.satisfied)?;
                } else {
                    self.waiting.insert(artifact, w);
                }
            }
            None => self.early_material.entry(artifact).or_default().push(m),
        }
        Ok(())
    }
}

impl PayloadSink for ArtifactSink<'_> {
    fn open(&mut self, entry: &Entry) -> Result<()> {
        let path = entry.path.as_str();
        self.repositories.open(entry)?;
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
        } else if let Some(artifact) = self.material.get(path).cloned() {
            // Checked against MAX_MATERIAL_FILE when the sink was made.
            Current::Material { path: path.to_owned(), artifact, buf: Vec::with_capacity(entry.size as usize) }
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
        self.repositories.write(bytes)?;
        match &mut self.current {
            Some(Current::Buffering { buf, .. } | Current::Material { buf, .. }) => buf.extend_from_slice(bytes),
            Some(Current::Checking(a)) => {
                let mut shared: Option<Arc<[u8]>> = None;
                for c in &mut a.candidates {
                    c.check.update(bytes, &mut shared);
                }
                for c in &mut a.pgp {
                    c.check.update(bytes, &mut shared);
                }
                if let Some(h) = &mut a.sha512 {
                    h.update(bytes, &mut shared);
                }
            }
            _ => {}
        }
        self.inner.write(bytes)
    }

    fn close(&mut self, entry: &Entry) -> Result<()> {
        self.repositories.close(entry)?;
        match self.current.take() {
            Some(Current::Buffering { path, watched, buf }) => {
                let parsed = Parsed::parse(&watched, &buf).map_err(|why| {
                    Self::reject(&watched.artifact, format!("signature file {path} is malformed: {why}"))
                })?;
                self.held.insert(path, parsed);
            }
            Some(Current::Material { path, artifact, buf }) => self.close_material(path, artifact, buf)?,
            Some(Current::Checking(a)) => self.finish(a, entry.sha256)?,
            _ => {}
        }
        self.inner.close(entry)
    }

    fn wants_data(&self) -> bool {
        self.active || !self.watched.is_empty() || !self.material.is_empty() || self.inner.wants_data()
    }
}
