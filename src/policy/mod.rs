//! Trust policy: which keys may vouch for a bundle (per channel, m of n), which keys are
//! revoked, how old a bundle may be, and which artifacts must carry whose signature.
//!
//! Keys are matched by their full 32-byte Ed25519 public key, never by key id alone (key ids
//! are 8 random, unauthenticated bytes that anyone can copy into a new key), and a threshold
//! counts distinct key material, so one key cannot sign twice to meet it (not even under two
//! key ids). The policy file format is documented in docs/POLICY.md and read by [`file`];
//! `--trust K.pub --threshold N` on the command line is the policy [`Policy::from_trust`]
//! builds: one rule for every channel, nothing revoked, no age limit, no artifact rules.

mod file;
pub mod producer;

use std::fmt;
use std::path::{Path, PathBuf};

use globset::GlobMatcher;

use crate::error::{Error, Reject, Result};
use crate::keys::{KeyId, PublicKey, Signature};
use producer::{ProducerKey, RepositoryRule, Revoked, SigstoreInstance};

/// Largest policy file read.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;
/// The policy format version this code reads.
pub const POLICY_VERSION: i64 = 1;

/// A policy that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy text is malformed or inconsistent. The problem is prose: it quotes the
    /// offending value, and TOML syntax errors come from the TOML parser as text.
    #[error("{origin}:{line}: {problem}")]
    Invalid {
        /// The policy file.
        origin: String,
        /// The 1-based line the problem is on.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// Several problems, every one the checks found in one pass, in line order (one per
    /// entry of the file at most: an entry's later checks need its earlier ones to pass).
    #[error("{origin}: {} problems: {}", problems.len(), problems.iter().map(|p| format!("line {}: {}", p.line, p.problem)).collect::<Vec<_>>().join("; "))]
    Many {
        /// The policy file.
        origin: String,
        /// Each problem.
        problems: Vec<PolicyProblem>,
    },
    /// The policy file is larger than [`MAX_POLICY_BYTES`].
    #[error("{}: policy file larger than {MAX_POLICY_BYTES} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A trust set cannot be built (see [`TrustError`]).
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// One problem of a policy file ([`PolicyError::Many`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// The 1-based line it is on.
    pub line: usize,
    /// What is wrong, and the rule it breaks.
    pub problem: String,
}

impl PolicyError {
    /// Every problem, as `(origin, line, problem)`: one for [`PolicyError::Invalid`], each of
    /// [`PolicyError::Many`]; none for the other kinds.
    pub fn problems(&self) -> Vec<(&str, usize, &str)> {
        match self {
            PolicyError::Invalid { origin, line, problem } => vec![(origin.as_str(), *line, problem.as_str())],
            PolicyError::Many { origin, problems } => {
                problems.iter().map(|p| (origin.as_str(), p.line, p.problem.as_str())).collect()
            }
            _ => Vec::new(),
        }
    }
}

impl From<TrustError> for Error {
    fn from(e: TrustError) -> Error {
        Error::Policy(PolicyError::Trust(e))
    }
}

/// Why a set of trusted keys and a threshold do not make a usable [`Trust`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// Two different keys share a key id, so a signature could not say which one it claims.
    #[error("two different trusted keys share the key id {key_id}; refusing an ambiguous trust set")]
    AmbiguousKeyId {
        /// The shared key id.
        key_id: KeyId,
    },
    /// A threshold of 0 would accept unsigned bundles.
    #[error("the signature threshold must be at least 1")]
    ZeroThreshold,
    /// Fewer distinct keys than the threshold.
    #[error("threshold {threshold} cannot be met by {distinct} distinct trusted key(s)")]
    Unmeetable {
        /// The threshold asked for.
        threshold: usize,
        /// The distinct keys there are.
        distinct: usize,
    },
}

/// Why a bundle's signatures do not make it trusted ([`Reject::Untrusted`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shortfall {
    /// The policy has no rule for the bundle's channel (and no `*` rule).
    NoRule {
        /// Where the policy came from.
        policy: String,
        /// The bundle's channel.
        channel: String,
        /// The channels the policy has rules for.
        rules: Vec<String>,
    },
    /// Fewer distinct trusted, unrevoked keys made valid signatures than the rule requires.
    Threshold {
        /// The rule that applied: a channel name or `*`.
        rule: String,
        /// How many distinct valid signatures the rule requires.
        required: usize,
        /// How many there are.
        found: usize,
        /// Each signature's key id and what became of it, in member order.
        signatures: Vec<(KeyId, SignatureStatus)>,
        /// The key ids the rule trusts.
        trusted: Vec<KeyId>,
    },
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortfall::NoRule { policy, channel, rules } => {
                write!(f, "policy {policy} has no rule for channel {channel:?} (it names: {})", rules.join(", "))
            }
            Shortfall::Threshold { required, found, signatures, trusted, .. } => {
                let signed_by: Vec<String> = signatures
                    .iter()
                    .map(|(id, st)| match st {
                        SignatureStatus::Valid => format!("{id} (trusted, valid)"),
                        SignatureStatus::Unknown => format!("{id} (not a trusted key)"),
                        SignatureStatus::Revoked { reason } => format!("{id} (revoked: {reason})"),
                        SignatureStatus::Invalid => format!("{id} (does not verify)"),
                    })
                    .collect();
                let trusted: Vec<String> = trusted.iter().map(KeyId::to_string).collect();
                write!(
                    f,
                    "needs valid signatures from {required} distinct trusted key(s), found {found}; signed by: {}; trusted keys: {}",
                    if signed_by.is_empty() { "nobody".into() } else { signed_by.join(", ") },
                    trusted.join(", ")
                )
            }
        }
    }
}

/// The set of keys trusted to sign bundles, and how many distinct ones must.
#[derive(Clone, Debug)]
pub struct Trust {
    keys: Vec<PublicKey>,
    threshold: usize,
}

/// What became of one manifest signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureStatus {
    /// Made by a trusted key and valid.
    Valid,
    /// Made by a key that is not trusted for this bundle (not checked).
    Unknown,
    /// Made by a revoked key (not checked, never counted).
    Revoked {
        /// Why the key was revoked.
        reason: String,
    },
    /// Claims a trusted key's id but does not verify with that key.
    Invalid,
}

/// The outcome of checking a manifest's signatures.
#[derive(Clone, Debug)]
pub struct TrustReport {
    /// Each signature's key id and status, in member order.
    pub signatures: Vec<(KeyId, SignatureStatus)>,
    /// Distinct trusted keys whose signatures are valid.
    pub valid_signers: Vec<PublicKey>,
    /// How many distinct valid signatures the rule requires (0 when no rule applies).
    pub threshold: usize,
    /// The channel rule that applied: the channel name, `*`, or `None` when the policy has
    /// no rule for the bundle's channel.
    pub rule: Option<String>,
}

impl TrustReport {
    /// Whether enough distinct trusted keys signed.
    pub fn threshold_met(&self) -> bool {
        self.rule.is_some() && self.valid_signers.len() >= self.threshold
    }

    /// Whether a verifier accepts these signatures (FORMAT.md §8 step 2): the threshold is
    /// met and no signature by a signer key fails. `inspect` shows this verdict.
    pub fn accepted(&self) -> bool {
        self.threshold_met() && !self.signatures.iter().any(|(_, s)| *s == SignatureStatus::Invalid)
    }
}

impl Trust {
    /// A trust set. Duplicate keys count once; two different keys sharing a key id are
    /// refused, since signatures name their key only by key id.
    pub fn new(keys: Vec<PublicKey>, threshold: usize) -> Result<Trust, TrustError> {
        let mut unique: Vec<PublicKey> = Vec::new();
        for key in keys {
            match unique.iter().find(|k| k.key_id() == key.key_id()) {
                Some(k) if k.as_bytes() == key.as_bytes() => {}
                Some(_) => return Err(TrustError::AmbiguousKeyId { key_id: key.key_id() }),
                None => unique.push(key),
            }
        }
        if threshold == 0 {
            return Err(TrustError::ZeroThreshold);
        }
        let distinct = distinct_material(&unique);
        if distinct < threshold {
            return Err(TrustError::Unmeetable { threshold, distinct });
        }
        Ok(Trust { keys: unique, threshold })
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The number of distinct valid signatures required.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// How many distinct keys (by key material) the set holds.
    pub fn distinct_keys(&self) -> usize {
        distinct_material(&self.keys)
    }

    /// The trusted key with this key id, if any.
    pub fn key(&self, id: KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.key_id() == id)
    }

    /// Checks every signature over `message`. A signature claiming a trusted key's id that
    /// does not verify is an error (tampering, or a key id copied into another key); one by
    /// an unknown key is reported and ignored. Fails unless the threshold is met.
    pub fn check(&self, message: &[u8], what: &str, signatures: &[Signature]) -> Result<TrustReport, Reject> {
        let report = evaluate(Some(("*", self)), &|_| None, message, signatures);
        enforce(report, what, self)
    }
}

fn distinct_material(keys: &[PublicKey]) -> usize {
    let mut seen: Vec<&[u8; 32]> = Vec::new();
    for k in keys {
        if !seen.contains(&k.as_bytes()) {
            seen.push(k.as_bytes());
        }
    }
    seen.len()
}

/// Checks each signature against the rule's keys, skipping revoked keys.
fn evaluate(
    rule: Option<(&str, &Trust)>,
    revoked: &dyn Fn(KeyId) -> Option<String>,
    message: &[u8],
    signatures: &[Signature],
) -> TrustReport {
    let mut report = TrustReport {
        signatures: Vec::new(),
        valid_signers: Vec::new(),
        threshold: rule.map_or(0, |(_, t)| t.threshold),
        rule: rule.map(|(name, _)| name.to_owned()),
    };
    for sig in signatures {
        let status = if let Some(reason) = revoked(sig.key_id()) {
            SignatureStatus::Revoked { reason }
        } else if let Some(key) = rule.and_then(|(_, t)| t.key(sig.key_id())) {
            if key.verify(message, sig).is_ok() {
                if !report.valid_signers.iter().any(|k| k.as_bytes() == key.as_bytes()) {
                    report.valid_signers.push(key.clone());
                }
                SignatureStatus::Valid
            } else {
                SignatureStatus::Invalid
            }
        } else {
            SignatureStatus::Unknown
        };
        report.signatures.push((sig.key_id(), status));
    }
    report
}

/// Turns a report into a decision: an invalid signature by a trusted key rejects, and so
/// does a threshold not met.
fn enforce(report: TrustReport, what: &str, trust: &Trust) -> Result<TrustReport, Reject> {
    if let Some((key_id, _)) = report.signatures.iter().find(|(_, s)| *s == SignatureStatus::Invalid) {
        return Err(Reject::BadSignature { key_id: *key_id, what: what.to_owned() });
    }
    if !report.threshold_met() {
        return Err(Reject::Untrusted(Shortfall::Threshold {
            rule: report.rule.clone().unwrap_or_default(),
            required: report.threshold,
            found: report.valid_signers.len(),
            signatures: report.signatures,
            trusted: trust.keys.iter().map(PublicKey::key_id).collect(),
        }));
    }
    Ok(report)
}

/// A key named in a policy.
#[derive(Clone, Debug)]
pub struct NamedKey {
    /// Its name in the policy (`[keys.<name>]`), or its key id for `--trust` keys.
    pub name: String,
    /// The key.
    pub key: PublicKey,
    /// Where it came from (a file path, or "inline").
    pub origin: String,
}

/// Who may sign the bundles of one channel (or of every channel without its own rule).
#[derive(Clone, Debug)]
pub struct ChannelRule {
    /// The channel name, or `*`.
    pub channel: String,
    /// Its signer keys and threshold.
    pub trust: Trust,
}

/// A revoked key or identity.
#[derive(Clone, Debug)]
pub struct Revocation {
    /// What is revoked: a key id (all keys with this id), an OpenPGP fingerprint or a
    /// Sigstore identity.
    pub key: Revoked,
    /// Why.
    pub reason: String,
    /// From when (Unix seconds). A key id: signatures on bundles created at or after this
    /// time do not count. A fingerprint or identity: signatures made at or after it (or
    /// carried by a bundle created at or after it) do not count. `None`: never count.
    pub since: Option<u64>,
}

impl Revocation {
    /// Whether a producer signature made at `signed` and carried by a bundle created at
    /// `created` falls under this revocation.
    fn covers_producer_signature(&self, signed: u64, created: u64) -> bool {
        self.since.is_none_or(|since| signed >= since || created >= since)
    }
}

/// Files matching `pattern` must carry a valid signature by one of `keys`.
#[derive(Clone, Debug)]
pub struct ArtifactRule {
    /// The glob, as written.
    pub pattern: String,
    matcher: GlobMatcher,
    /// The keys, any one of which suffices.
    pub keys: Vec<PublicKey>,
    /// Whether a file without such a signature is rejected (else it is accepted and reported).
    pub required: bool,
    /// Whether legacy (non-prehashed) minisign signatures count.
    pub allow_legacy: bool,
    /// The names of its OpenPGP and Sigstore keys (see [`Policy::producer_key`]).
    pub producer_keys: Vec<String>,
    /// Attestation predicate types, one of which a verified Sigstore attestation by a rule
    /// key must have (empty: any signature or attestation by a rule key satisfies the rule).
    pub predicate_types: Vec<String>,
    /// The SLSA builder id a verified provenance attestation must name, if any.
    pub slsa_builder_id: Option<String>,
}

impl ArtifactRule {
    /// Whether the rule covers this entry path.
    pub fn matches(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }

    /// The rule key with this key id, if any.
    pub fn key(&self, id: KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.key_id() == id)
    }
}

/// A complete trust policy.
#[derive(Clone, Debug)]
pub struct Policy {
    origin: String,
    keys: Vec<NamedKey>,
    channels: Vec<ChannelRule>,
    revoked: Vec<Revocation>,
    max_age: Option<u64>,
    artifacts: Vec<ArtifactRule>,
    producer_keys: Vec<ProducerKey>,
    sigstore: Vec<SigstoreInstance>,
    repositories: Vec<RepositoryRule>,
}

impl From<Trust> for Policy {
    fn from(trust: Trust) -> Policy {
        Policy::from_trust(trust)
    }
}

impl Policy {
    /// The policy `--trust K.pub --threshold N` stands for: `trust` for every channel.
    pub fn from_trust(trust: Trust) -> Policy {
        let keys = trust
            .keys
            .iter()
            .map(|k| NamedKey { name: k.key_id().to_string(), key: k.clone(), origin: "--trust".into() })
            .collect();
        Policy {
            origin: "--trust".into(),
            keys,
            channels: vec![ChannelRule { channel: "*".into(), trust }],
            revoked: Vec::new(),
            max_age: None,
            artifacts: Vec::new(),
            producer_keys: Vec::new(),
            sigstore: Vec::new(),
            repositories: Vec::new(),
        }
    }

    /// Reads a policy file. Key files it names are relative to its directory.
    pub fn load(path: &Path) -> Result<Policy> {
        use std::io::Read as _;
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut text = String::new();
        file.take(MAX_POLICY_BYTES + 1).read_to_string(&mut text).map_err(|e| Error::io(path, e))?;
        if text.len() as u64 > MAX_POLICY_BYTES {
            return Err(Error::Policy(PolicyError::TooLarge { path: path.to_owned() }));
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Policy::parse(&text, &base, &path.display().to_string())
    }

    /// Parses policy text. `base` resolves relative key file paths; `origin` names the text
    /// in errors (`origin:line: problem`).
    pub fn parse(text: &str, base: &Path, origin: &str) -> Result<Policy> {
        file::Parser::new(text, base, origin).parse()
    }

    /// Where the policy came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The named keys.
    pub fn keys(&self) -> &[NamedKey] {
        &self.keys
    }

    /// The channel rules.
    pub fn channels(&self) -> &[ChannelRule] {
        &self.channels
    }

    /// The revocations.
    pub fn revoked(&self) -> &[Revocation] {
        &self.revoked
    }

    /// The maximum bundle age in seconds, if any.
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }

    /// The artifact rules.
    pub fn artifact_rules(&self) -> &[ArtifactRule] {
        &self.artifacts
    }

    /// The OpenPGP and Sigstore keys.
    pub fn producer_keys(&self) -> &[ProducerKey] {
        &self.producer_keys
    }

    /// The producer key with this name, if any.
    pub fn producer_key(&self, name: &str) -> Option<&ProducerKey> {
        self.producer_keys.iter().find(|k| k.name == name)
    }

    /// The Sigstore instances (`[sigstore.<name>]`).
    pub fn sigstore_instances(&self) -> &[SigstoreInstance] {
        &self.sigstore
    }

    /// The Sigstore instance with this name, if any.
    pub fn sigstore_instance(&self, name: &str) -> Option<&SigstoreInstance> {
        self.sigstore.iter().find(|s| s.name == name)
    }

    /// The Debian repository rules.
    pub fn repositories(&self) -> &[RepositoryRule] {
        &self.repositories
    }

    /// Whether any rule needs producer material (artifact or repository rules).
    pub fn has_producer_rules(&self) -> bool {
        !self.artifacts.is_empty() || !self.repositories.is_empty()
    }

    /// The revocation in force for an OpenPGP signature by a key with one of these
    /// fingerprints (primary or signing key), made at `signed`, on a bundle created at
    /// `created`.
    pub fn fingerprint_revocation(
        &self,
        fingerprints: &[&crate::producer::openpgp::Fingerprint],
        signed: u64,
        created: u64,
    ) -> Option<&Revocation> {
        self.revoked.iter().find(|r| match &r.key {
            Revoked::Fingerprint(fp) => fingerprints.contains(&fp) && r.covers_producer_signature(signed, created),
            _ => false,
        })
    }

    /// The revocation in force for a Sigstore signature by the subject `san`, made (verified
    /// signing time) at `signed`, on a bundle created at `created`.
    pub fn san_revocation(&self, san: &str, signed: u64, created: u64) -> Option<&Revocation> {
        self.revoked.iter().find(|r| match &r.key {
            Revoked::San(s) => s == san && r.covers_producer_signature(signed, created),
            _ => false,
        })
    }
    /// The carried entries of `manifest` no artifact rule covers: matched by no
    /// `[[artifact]]` glob and named by no finding (as artifact or as its material) other
    /// than a `not_covered` one.
    /// `None` when the policy has no artifact or repository rules, so nothing is covered
    /// by design.
    pub fn uncovered_files<'m>(
        &self,
        manifest: &'m crate::format::manifest::Manifest,
        findings: &[crate::producer::Finding],
    ) -> Option<Vec<&'m str>> {
        if self.artifacts.is_empty() && self.repositories.is_empty() {
            return None;
        }
        let named: std::collections::HashSet<&str> = findings
            .iter()
            .filter(|f| f.status != crate::producer::Status::NotCovered)
            .flat_map(|f| std::iter::once(f.artifact.as_str()).chain(f.file.as_deref()))
            .collect();
        let uncovered = manifest
            .entries
            .iter()
            .filter(|e| e.carried)
            .map(|e| e.path.as_str())
            .filter(|p| !named.contains(p) && !self.artifacts.iter().any(|r| r.matches(p)))
            .collect();
        Some(uncovered)
    }

    /// The policy's name for a key (by key material), if it has one.
    pub fn name_of(&self, key: &PublicKey) -> Option<&str> {
        self.keys.iter().find(|k| k.key.as_bytes() == key.as_bytes()).map(|k| k.name.as_str())
    }

    /// The policy's name for the key with this id, if any.
    pub fn name_of_id(&self, id: KeyId) -> Option<&str> {
        self.keys.iter().find(|k| k.key.key_id() == id).map(|k| k.name.as_str())
    }

    /// The rule for a channel: its own, else `*`.
    pub fn channel_rule(&self, channel: &str) -> Option<&ChannelRule> {
        self.channels.iter().find(|c| c.channel == channel).or_else(|| self.channels.iter().find(|c| c.channel == "*"))
    }

    /// The revocation in force for signatures with this key id on a bundle created at
    /// `created`, if any.
    pub fn revocation(&self, id: KeyId, created: u64) -> Option<&Revocation> {
        self.revoked.iter().find(|r| r.key == Revoked::KeyId(id) && r.since.is_none_or(|since| created >= since))
    }

    /// Evaluates every manifest signature without deciding: for `inspect`.
    pub fn evaluate_head(&self, message: &[u8], signatures: &[Signature], channel: &str, created: u64) -> TrustReport {
        let rule = self.channel_rule(channel).map(|r| (r.channel.as_str(), &r.trust));
        let revoked = |id: KeyId| self.revocation(id, created).map(|r| r.reason.clone());
        evaluate(rule, &revoked, message, signatures)
    }

    /// Checks the manifest signatures of a bundle of `channel` created at `created`: the
    /// channel must have a rule, no signature by a trusted key may fail, and enough distinct
    /// trusted, unrevoked keys must have signed.
    pub fn check_head(
        &self,
        message: &[u8],
        what: &str,
        signatures: &[Signature],
        channel: &str,
        created: u64,
    ) -> Result<TrustReport, Reject> {
        let trust = self.channel_trust(channel)?;
        enforce(self.evaluate_head(message, signatures, channel, created), what, trust)
    }

    /// The trust set for a channel's bundles; a channel the policy has no rule for is
    /// untrusted.
    pub fn channel_trust(&self, channel: &str) -> Result<&Trust, Reject> {
        self.channel_rule(channel).map(|rule| &rule.trust).ok_or_else(|| {
            Reject::Untrusted(Shortfall::NoRule {
                policy: self.origin.clone(),
                channel: channel.to_owned(),
                rules: self.channels.iter().map(|c| c.channel.clone()).collect(),
            })
        })
    }
}
