//! Trust policy: which keys may vouch for a bundle (per channel, m of n), which keys are
//! revoked, how old a bundle may be, and which artifacts must carry whose signature.
//!
//! Keys are matched by their full 32-byte Ed25519 public key, never by key id alone (key ids
//! are 8 random, unauthenticated bytes that anyone can copy into a new key), and a threshold
//! counts distinct key material, so one key cannot sign twice to meet it (not even under two
//! key ids). The policy file format is documented in docs/POLICY.md; `--trust K.pub
//! --threshold N` on the command line is the policy [`Policy::from_trust`] builds: one rule
//! for every channel, nothing revoked, no age limit, no artifact rules.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use toml::Spanned;

use crate::clock;
use crate::error::{Error, Reject, Result};
use crate::format::manifest;
use crate::keys::minisign;
use crate::keys::{KeyId, PublicKey, Signature};

/// Largest policy file read.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;
/// The policy format version this code reads.
pub const POLICY_VERSION: i64 = 1;

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
    pub fn new(keys: Vec<PublicKey>, threshold: usize) -> Result<Trust> {
        let mut unique: Vec<PublicKey> = Vec::new();
        for key in keys {
            match unique.iter().find(|k| k.key_id() == key.key_id()) {
                Some(k) if k.as_bytes() == key.as_bytes() => {}
                Some(_) => {
                    return Err(Error::Usage(format!(
                        "two different trusted keys share the key id {}; refusing an ambiguous trust set",
                        key.key_id()
                    )))
                }
                None => unique.push(key),
            }
        }
        if threshold == 0 {
            return Err(Error::Usage("the signature threshold must be at least 1".into()));
        }
        let distinct = distinct_material(&unique);
        if distinct < threshold {
            return Err(Error::Usage(format!(
                "threshold {threshold} cannot be met by {distinct} distinct trusted key(s)"
            )));
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

    /// The trusted key with this key id, if any.
    pub fn key(&self, id: KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.key_id() == id)
    }

    /// Checks every signature over `message`. A signature claiming a trusted key's id that
    /// does not verify is an error (tampering, or a key id copied into another key); one by
    /// an unknown key is reported and ignored. Fails unless the threshold is met.
    pub fn check(&self, message: &[u8], what: &str, signatures: &[Signature]) -> Result<TrustReport, Reject> {
        let report = evaluate(Some(("*", self)), &|_| None, message, signatures);
        enforce(report, what, Some(self))
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
fn enforce(report: TrustReport, what: &str, trust: Option<&Trust>) -> Result<TrustReport, Reject> {
    if let Some((key_id, _)) = report.signatures.iter().find(|(_, s)| *s == SignatureStatus::Invalid) {
        return Err(Reject::BadSignature { key_id: *key_id, what: what.to_owned() });
    }
    if !report.threshold_met() {
        return Err(Reject::Untrusted(describe_shortfall(&report, trust)));
    }
    Ok(report)
}

fn describe_shortfall(report: &TrustReport, trust: Option<&Trust>) -> String {
    let signed_by: Vec<String> = report
        .signatures
        .iter()
        .map(|(id, st)| match st {
            SignatureStatus::Valid => format!("{id} (trusted, valid)"),
            SignatureStatus::Unknown => format!("{id} (not a trusted key)"),
            SignatureStatus::Revoked { reason } => format!("{id} (revoked: {reason})"),
            SignatureStatus::Invalid => format!("{id} (does not verify)"),
        })
        .collect();
    let trusted: Vec<String> = trust.map_or(Vec::new(), |t| t.keys.iter().map(|k| k.key_id().to_string()).collect());
    format!(
        "needs valid signatures from {} distinct trusted key(s), found {}; signed by: {}; trusted keys: {}",
        report.threshold,
        report.valid_signers.len(),
        if signed_by.is_empty() { "nobody".into() } else { signed_by.join(", ") },
        trusted.join(", ")
    )
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

/// A revoked key.
#[derive(Clone, Debug)]
pub struct Revocation {
    /// The key id (all keys with this id are revoked).
    pub key_id: KeyId,
    /// Why.
    pub reason: String,
    /// From when (Unix seconds): signatures on bundles created at or after this time do not
    /// count. `None`: never count.
    pub since: Option<u64>,
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
        }
    }

    /// Reads a policy file. Key files it names are relative to its directory.
    pub fn load(path: &Path) -> Result<Policy> {
        use std::io::Read as _;
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut text = String::new();
        file.take(MAX_POLICY_BYTES + 1).read_to_string(&mut text).map_err(|e| Error::io(path, e))?;
        if text.len() as u64 > MAX_POLICY_BYTES {
            return Err(Error::Usage(format!("{}: policy file larger than {MAX_POLICY_BYTES} bytes", path.display())));
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Policy::parse(&text, &base, &path.display().to_string())
    }

    /// Parses policy text. `base` resolves relative key file paths; `origin` names the text
    /// in errors (`origin:line: problem`).
    pub fn parse(text: &str, base: &Path, origin: &str) -> Result<Policy> {
        Parser { text, base, origin }.parse()
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
        self.revoked.iter().find(|r| r.key_id == id && r.since.is_none_or(|since| created >= since))
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
        let Some(rule) = self.channel_rule(channel) else {
            let named: Vec<&str> = self.channels.iter().map(|c| c.channel.as_str()).collect();
            return Err(Reject::Untrusted(format!(
                "policy {} has no rule for channel {channel:?} (it names: {})",
                self.origin,
                named.join(", ")
            )));
        };
        enforce(self.evaluate_head(message, signatures, channel, created), what, Some(&rule.trust))
    }

    /// Refuses a bundle created more than the policy's maximum age before `now` (plus
    /// `skew` for clock error).
    pub fn check_age(&self, created: u64, now: u64, skew: u64) -> Result<(), Reject> {
        let Some(max_age) = self.max_age else {
            return Ok(());
        };
        if now > created.saturating_add(max_age).saturating_add(skew) {
            return Err(Reject::TooOld {
                created: clock::format(created),
                max_age: humantime::format_duration(std::time::Duration::from_secs(max_age)).to_string(),
                now: clock::format(now),
            });
        }
        Ok(())
    }

    /// What the policy allows, in words, one line per statement (`airlock policy check`).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        let name = |k: &PublicKey| match self.name_of(k) {
            Some(n) if n != k.key_id().to_string() => format!("{n} ({})", k.key_id()),
            _ => k.key_id().to_string(),
        };
        out.push(format!("Keys ({}):", self.keys.len()));
        for k in &self.keys {
            out.push(format!(
                "  {}: key id {} (minisign {}), from {}",
                k.name,
                k.key.key_id(),
                minisign::minisign_key_id(k.key.key_id()),
                k.origin
            ));
        }
        out.push("Bundles:".into());
        for c in &self.channels {
            let keys: Vec<String> = c.trust.keys.iter().map(name).collect();
            let which =
                if c.channel == "*" { "any other channel".to_owned() } else { format!("channel {:?}", c.channel) };
            out.push(format!(
                "  {which}: accepted when signed by at least {} of these {} distinct key(s): {}",
                c.trust.threshold,
                distinct_material(&c.trust.keys),
                keys.join(", ")
            ));
        }
        if !self.channels.iter().any(|c| c.channel == "*") {
            out.push("  any other channel: refused".into());
        }
        if self.revoked.is_empty() {
            out.push("Revoked keys: none".into());
        } else {
            out.push("Revoked keys:".into());
            for r in &self.revoked {
                let when = match r.since {
                    None => "its signatures never count".to_owned(),
                    Some(t) => format!(
                        "its signatures do not count on bundles created at or after {} (earlier bundles still count)",
                        clock::format(t)
                    ),
                };
                let named = self.name_of_id(r.key_id).map_or(String::new(), |n| format!(" ({n})"));
                out.push(format!("  {}{named}: {when}; reason: {}", r.key_id, r.reason));
            }
        }
        match self.max_age {
            None => out.push("Age: no limit beyond each bundle's own expiry".into()),
            Some(a) => out.push(format!(
                "Age: bundles created more than {} before the import are refused",
                humantime::format_duration(std::time::Duration::from_secs(a))
            )),
        }
        if self.artifacts.is_empty() {
            out.push("Artifacts: no rules; detached signatures are carried but not checked".into());
        } else {
            out.push("Artifacts (every matching rule must hold):".into());
            for r in &self.artifacts {
                let keys: Vec<String> = r.keys.iter().map(name).collect();
                out.push(format!(
                    "  files matching {:?} must carry a valid signature by {}{} (signify .sig, signify .sha256.sig checksum, minisign .minisig{}); {}",
                    r.pattern,
                    if r.keys.len() > 1 { "one of " } else { "" },
                    keys.join(", "),
                    if r.allow_legacy { " prehashed or legacy" } else { " prehashed only" },
                    if r.required {
                        "a file without one is rejected"
                    } else {
                        "a file without one is accepted and reported; a bad signature is still rejected"
                    }
                ));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The policy file
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Spanned<i64>,
    #[serde(default)]
    max_age: Option<Spanned<String>>,
    #[serde(default)]
    keys: BTreeMap<Spanned<String>, Spanned<RawKey>>,
    #[serde(default)]
    channel: Vec<Spanned<RawChannel>>,
    #[serde(default)]
    revoked: Vec<Spanned<RawRevoked>>,
    #[serde(default)]
    artifact: Vec<Spanned<RawArtifact>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    #[serde(default)]
    file: Option<Spanned<String>>,
    #[serde(default)]
    public_key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: Spanned<String>,
    signers: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    threshold: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRevoked {
    key_id: Spanned<String>,
    reason: Spanned<String>,
    #[serde(default)]
    since: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    path: Spanned<String>,
    keys: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    required: Option<bool>,
    #[serde(default)]
    allow_legacy: Option<bool>,
}

struct Parser<'a> {
    text: &'a str,
    base: &'a Path,
    origin: &'a str,
}

impl Parser<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn err(&self, span: Range<usize>, problem: impl Into<String>) -> Error {
        Error::Policy { origin: self.origin.to_owned(), line: self.line(span.start), problem: problem.into() }
    }

    fn parse(&self) -> Result<Policy> {
        let raw: RawPolicy = toml::from_str(self.text).map_err(|e| {
            let line = e.span().map_or(1, |s| self.line(s.start));
            Error::Policy { origin: self.origin.to_owned(), line, problem: e.message().trim().to_owned() }
        })?;
        if *raw.version.get_ref() != POLICY_VERSION {
            return Err(self.err(
                raw.version.span(),
                format!(
                    "policy version {} is not supported (this airlock reads version {POLICY_VERSION})",
                    raw.version.get_ref()
                ),
            ));
        }
        let keys = self.keys(&raw.keys)?;
        let key = |name: &Spanned<String>| -> Result<PublicKey> {
            keys.iter()
                .find(|k| k.name == *name.get_ref())
                .map(|k| k.key.clone())
                .ok_or_else(|| self.err(name.span(), format!("no key named {:?} in [keys]", name.get_ref())))
        };
        let revoked = raw.revoked.iter().map(|r| self.revocation(r)).collect::<Result<Vec<_>>>()?;
        let mut channels: Vec<ChannelRule> = Vec::new();
        for c in &raw.channel {
            let name = c.get_ref().name.get_ref();
            if name != "*" {
                manifest::check_channel(name).map_err(|p| self.err(c.get_ref().name.span(), p))?;
            }
            if channels.iter().any(|x| x.channel == *name) {
                return Err(self.err(c.get_ref().name.span(), format!("channel {name:?} has two [[channel]] entries")));
            }
            let signers = c.get_ref().signers.get_ref().iter().map(key).collect::<Result<Vec<_>>>()?;
            if signers.is_empty() {
                return Err(self.err(c.get_ref().signers.span(), "signers is empty"));
            }
            let threshold = match &c.get_ref().threshold {
                None => 1,
                Some(t) if *t.get_ref() >= 1 => *t.get_ref() as usize,
                Some(t) => return Err(self.err(t.span(), "threshold must be at least 1")),
            };
            let at = c.get_ref().threshold.as_ref().map_or(c.span(), |t| t.span());
            let trust =
                Trust::new(signers, threshold).map_err(|e| self.err(at.clone(), format!("channel {name:?}: {e}")))?;
            let usable: Vec<PublicKey> = trust
                .keys
                .iter()
                .filter(|k| !revoked.iter().any(|r| r.key_id == k.key_id() && r.since.is_none()))
                .cloned()
                .collect();
            if distinct_material(&usable) < threshold {
                return Err(self.err(
                    at,
                    format!(
                        "channel {name:?}: threshold {threshold} cannot be met: only {} of its signers are not revoked",
                        distinct_material(&usable)
                    ),
                ));
            }
            channels.push(ChannelRule { channel: name.clone(), trust });
        }
        if channels.is_empty() {
            return Err(self.err(0..0, "the policy has no [[channel]] entry, so it would accept no bundle"));
        }
        let max_age = match &raw.max_age {
            None => None,
            Some(a) => match humantime::parse_duration(a.get_ref()) {
                Ok(d) if d.as_secs() > 0 => Some(d.as_secs()),
                _ => {
                    return Err(self.err(
                        a.span(),
                        format!("max_age {:?} is not a duration such as \"30d\" or \"12h\"", a.get_ref()),
                    ))
                }
            },
        };
        let mut artifacts = Vec::new();
        for a in &raw.artifact {
            let a_ref = a.get_ref();
            let pattern = a_ref.path.get_ref();
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| self.err(a_ref.path.span(), format!("path glob {pattern:?}: {e}")))?;
            if pattern.is_empty() || pattern.starts_with('/') {
                return Err(
                    self.err(a_ref.path.span(), "path glob must be a relative path pattern such as \"vendor-x/**\"")
                );
            }
            let rule_keys = a_ref.keys.get_ref().iter().map(key).collect::<Result<Vec<_>>>()?;
            if rule_keys.is_empty() {
                return Err(self.err(a_ref.keys.span(), "keys is empty"));
            }
            artifacts.push(ArtifactRule {
                pattern: pattern.clone(),
                matcher: glob.compile_matcher(),
                keys: rule_keys,
                required: a_ref.required.unwrap_or(true),
                allow_legacy: a_ref.allow_legacy.unwrap_or(false),
            });
        }
        Ok(Policy { origin: self.origin.to_owned(), keys, channels, revoked, max_age, artifacts })
    }

    fn keys(&self, raw: &BTreeMap<Spanned<String>, Spanned<RawKey>>) -> Result<Vec<NamedKey>> {
        let mut keys: Vec<NamedKey> = Vec::new();
        for (name, spec) in raw {
            let n = name.get_ref();
            if n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(
                    self.err(name.span(), format!("key name {n:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"))
                );
            }
            let (key, origin) = match (&spec.get_ref().file, &spec.get_ref().public_key) {
                (Some(file), None) => {
                    let path = self.base.join(file.get_ref());
                    let key = PublicKey::load(&path).map_err(|e| self.err(file.span(), format!("key {n:?}: {e}")))?;
                    (key, path.display().to_string())
                }
                (None, Some(b64)) => {
                    let text = format!("untrusted comment: policy key {n}\n{}\n", b64.get_ref().trim());
                    let key = PublicKey::parse(text.as_bytes())
                        .map_err(|e| self.err(b64.span(), format!("key {n:?}: malformed public_key: {e}")))?;
                    (key, "inline public_key".to_owned())
                }
                _ => {
                    return Err(self.err(spec.span(), format!("key {n:?} needs exactly one of `file` or `public_key`")))
                }
            };
            if let Some(other) =
                keys.iter().find(|k| k.key.key_id() == key.key_id() && k.key.as_bytes() != key.as_bytes())
            {
                return Err(self.err(
                    name.span(),
                    format!(
                        "keys {:?} and {n:?} are different keys with the same key id {}; refusing an ambiguous policy",
                        other.name,
                        key.key_id()
                    ),
                ));
            }
            keys.push(NamedKey { name: n.clone(), key, origin });
        }
        Ok(keys)
    }

    fn revocation(&self, r: &Spanned<RawRevoked>) -> Result<Revocation> {
        let raw = r.get_ref();
        let key_id = KeyId::from_hex(raw.key_id.get_ref()).ok_or_else(|| {
            self.err(
                raw.key_id.span(),
                format!(
                    "key_id {:?} is not 16 lowercase hex digits (`airlock key show K.pub` prints it; minisign's spelling is byte-reversed)",
                    raw.key_id.get_ref()
                ),
            )
        })?;
        if raw.reason.get_ref().trim().is_empty() {
            return Err(self.err(raw.reason.span(), "reason is empty"));
        }
        let since = match &raw.since {
            None => None,
            Some(s) => {
                let text = match s.get_ref() {
                    toml::Value::String(t) => t.clone(),
                    toml::Value::Datetime(d) => d.to_string(),
                    _ => return Err(self.err(s.span(), "since must be a date or time such as 2026-10-01T00:00:00Z")),
                };
                let candidate = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.clone() };
                let t = humantime::parse_rfc3339_weak(&candidate).map_err(|_| {
                    self.err(s.span(), format!("since {text:?} is not a time such as 2026-10-01T00:00:00Z"))
                })?;
                Some(t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
            }
        };
        Ok(Revocation { key_id, reason: raw.reason.get_ref().clone(), since })
    }
}

/// Resolves `--policy` and `--trust`/`--threshold` into one policy (the CLI's helper).
pub fn from_args(policy: Option<&Path>, trust: &[PathBuf], threshold: usize) -> Result<Policy> {
    match (policy, trust.is_empty()) {
        (Some(_), false) => Err(Error::Usage("give either --policy or --trust, not both".into())),
        (Some(p), true) => Policy::load(p),
        (None, false) => {
            let keys = trust.iter().map(|p| PublicKey::load(p)).collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(Policy::from_trust(Trust::new(keys, threshold)?))
        }
        (None, true) => Err(Error::Usage(
            "give --policy POLICY.toml or at least one --trust K.pub: airlock verifies nothing without a trusted key"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    fn b64(k: &PublicKey) -> String {
        k.to_file_string().lines().nth(1).unwrap().to_owned()
    }

    fn parse(text: &str) -> Result<Policy> {
        Policy::parse(text, Path::new("."), "p.toml")
    }

    fn line_of(e: Error) -> (usize, String) {
        match e {
            Error::Policy { line, problem, .. } => (line, problem),
            other => panic!("not a policy error: {other}"),
        }
    }

    struct Keys {
        sk: Vec<SecretKey>,
    }

    impl Keys {
        fn new(n: usize) -> Keys {
            Keys { sk: (0..n).map(|_| SecretKey::generate("t")).collect() }
        }
        fn toml(&self) -> String {
            let mut out = String::from("version = 1\n");
            for (i, k) in self.sk.iter().enumerate() {
                out.push_str(&format!("[keys.k{i}]\npublic_key = \"{}\"\n", b64(&k.public_key())));
            }
            out
        }
    }

    #[test]
    fn threshold_counts_distinct_keys_and_skips_revoked() {
        let ks = Keys::new(3);
        let text = format!(
            "{}[[channel]]\nname = \"c\"\nsigners = [\"k0\", \"k1\", \"k2\"]\nthreshold = 2\n[[revoked]]\nkey_id = \"{}\"\nreason = \"lost\"\nsince = 2026-01-01T00:00:00Z\n",
            ks.toml(),
            ks.sk[2].key_id()
        );
        let p = parse(&text).unwrap();
        let msg = b"m";
        let sigs = |ids: &[usize]| ids.iter().map(|&i| ks.sk[i].sign(msg, "c")).collect::<Vec<_>>();
        let before = 1_700_000_000; // before the revocation
        let after = 1_800_000_000;
        assert!(p.check_head(msg, "m", &sigs(&[0, 1]), "c", after).is_ok());
        assert!(p.check_head(msg, "m", &sigs(&[0]), "c", after).is_err());
        assert!(p.check_head(msg, "m", &sigs(&[0, 2]), "c", before).is_ok());
        let r = p.check_head(msg, "m", &sigs(&[0, 2]), "c", after).unwrap_err().to_string();
        assert!(r.contains("revoked: lost"), "{r}");
        assert!(p.check_head(msg, "m", &sigs(&[0, 1]), "other", after).unwrap_err().to_string().contains("no rule"));
        let mut forged = sigs(&[0, 1]);
        forged[1] = ks.sk[1].sign(b"other", "c");
        assert!(matches!(p.check_head(msg, "m", &forged, "c", after), Err(Reject::BadSignature { .. })));
    }

    #[test]
    fn parse_errors_name_the_line() {
        let ks = Keys::new(1);
        let base = ks.toml();
        let lines = base.lines().count();
        let (line, msg) = line_of(
            parse(&format!("{base}[[channel]]\nname = \"c\"\nsigners = [\"k0\"]\ntreshold = 1\n")).unwrap_err(),
        );
        assert_eq!(line, lines + 4, "{msg}");
        assert!(msg.contains("treshold"), "{msg}");
        let (line, msg) =
            line_of(parse(&format!("{base}[[channel]]\nname = \"c\"\nsigners = [\"k0\", \"nobody\"]\n")).unwrap_err());
        assert_eq!(line, lines + 3);
        assert!(msg.contains("nobody"));
        let (line, msg) = line_of(parse("version = 1\n\n[keys.bad]\npublic_key = \"RWQAAAA\"\n").unwrap_err());
        assert_eq!(line, 4);
        assert!(msg.contains("malformed"), "{msg}");
        let (line, _) = line_of(parse("version = 2\n").unwrap_err());
        assert_eq!(line, 1);
        let (line, msg) = line_of(
            parse(&format!("{base}[[channel]]\nname = \"c\"\nsigners = [\"k0\"]\n[[revoked]]\nkey_id = \"ABCDEF\"\nreason = \"x\"\n")).unwrap_err(),
        );
        assert_eq!(line, lines + 5, "{msg}");
    }

    #[test]
    fn unmeetable_thresholds_are_refused() {
        let ks = Keys::new(2);
        let text = format!("{}[[channel]]\nname = \"*\"\nsigners = [\"k0\", \"k1\"]\nthreshold = 3\n", ks.toml());
        assert!(line_of(parse(&text).unwrap_err()).1.contains("cannot be met"));
        let text = format!(
            "{}[[channel]]\nname = \"*\"\nsigners = [\"k0\", \"k1\"]\nthreshold = 2\n[[revoked]]\nkey_id = \"{}\"\nreason = \"gone\"\n",
            ks.toml(),
            ks.sk[1].key_id()
        );
        assert!(line_of(parse(&text).unwrap_err()).1.contains("revoked"));
    }

    #[test]
    fn artifact_globs_do_not_cross_directories_with_one_star() {
        let ks = Keys::new(1);
        let text = format!(
            "{}[[channel]]\nname = \"*\"\nsigners = [\"k0\"]\n[[artifact]]\npath = \"vendor-x/*\"\nkeys = [\"k0\"]\n[[artifact]]\npath = \"deep/**\"\nkeys = [\"k0\"]\nrequired = false\n",
            ks.toml()
        );
        let p = parse(&text).unwrap();
        assert!(p.artifact_rules()[0].matches("vendor-x/a.tgz"));
        assert!(!p.artifact_rules()[0].matches("vendor-x/sub/a.tgz"));
        assert!(p.artifact_rules()[1].matches("deep/a/b/c"));
        assert!(!p.artifact_rules()[1].required);
        assert!(p.describe().iter().any(|l| l.contains("vendor-x/*")));
    }
}
