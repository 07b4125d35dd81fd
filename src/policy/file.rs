//! The policy file (docs/POLICY.md): TOML read into `Raw*` structs that keep every value's
//! position, then checked by a [`Parser`] whose errors name the line.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use globset::GlobBuilder;
use serde::Deserialize;
use toml::Spanned;

use super::producer::{
    trust_file, OpenPgpKey, ProducerKey, ProducerKeyKind, RepositoryRule, Revoked, SigstoreInstance, SigstoreKey,
    Uncovered, ValidUntil, MAX_TRUST_FILE_BYTES,
};
use super::{
    distinct_material, ArtifactRule, ChannelRule, NamedKey, Policy, PolicyError, PolicyProblem, Revocation, Trust,
    POLICY_VERSION,
};
use crate::producer::openpgp::{Fingerprint, Keyring};
use crate::producer::sigstore::{GithubPublisher, Identity, InstanceOptions, ManagedKey, SanMatch, Signer, TrustRoot};

/// The OIDC issuer of GitHub Actions tokens: a `github_publisher`'s.
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// A key or instance name: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
fn check_name(n: &str) -> std::result::Result<(), String> {
    if n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(format!("{n:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"));
    }
    Ok(())
}

impl RawKey {
    /// The OpenPGP-only fields present, with where they are.
    fn openpgp_fields(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut out = Vec::new();
        if let Some(f) = &self.fingerprints {
            out.push(("fingerprints", f.span()));
        }
        if let Some(f) = &self.allow_sha1_bindings {
            out.push(("allow_sha1_bindings", f.span()));
        }
        out
    }

    /// The identity fields of a Sigstore key present.
    fn identity_fields(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut out = Vec::new();
        for (name, field) in [
            ("issuer", &self.issuer),
            ("san", &self.san),
            ("san_regex", &self.san_regex),
            ("source_repository", &self.source_repository),
            ("source_ref", &self.source_ref),
        ] {
            if let Some(f) = field {
                out.push((name, f.span()));
            }
        }
        if let Some(p) = &self.github_publisher {
            out.push(("github_publisher", p.span()));
        }
        out
    }

    /// The Sigstore-only fields present.
    fn sigstore_fields(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut out = self.identity_fields();
        if let Some(p) = &self.public_key_pem {
            out.push(("public_key_pem", p.span()));
        }
        out
    }
}
use crate::clock;
use crate::error::{Error, Result};
use crate::format::manifest;
use crate::keys::{KeyId, PublicKey};

#[derive(Deserialize)]
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
    #[serde(default)]
    sigstore: BTreeMap<Spanned<String>, Spanned<RawSigstore>>,
    #[serde(default)]
    repository: Vec<Spanned<RawRepository>>,
}

#[derive(Deserialize)]
struct RawKey {
    #[serde(default)]
    file: Option<Spanned<String>>,
    #[serde(default)]
    public_key: Option<Spanned<String>>,
    #[serde(default)]
    openpgp: Option<Spanned<String>>,
    #[serde(default)]
    fingerprints: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    allow_sha1_bindings: Option<Spanned<bool>>,
    #[serde(default)]
    sigstore: Option<Spanned<String>>,
    #[serde(default)]
    issuer: Option<Spanned<String>>,
    #[serde(default)]
    san: Option<Spanned<String>>,
    #[serde(default)]
    san_regex: Option<Spanned<String>>,
    #[serde(default)]
    source_repository: Option<Spanned<String>>,
    #[serde(default)]
    source_ref: Option<Spanned<String>>,
    #[serde(default)]
    github_publisher: Option<Spanned<RawPublisher>>,
    #[serde(default)]
    public_key_pem: Option<Spanned<String>>,
}

#[derive(Deserialize)]
struct RawPublisher {
    repository: Spanned<String>,
    workflow: Spanned<String>,
    #[serde(default)]
    environment: Option<Spanned<String>>,
}

#[derive(Deserialize)]
struct RawSigstore {
    trusted_root: Spanned<String>,
    #[serde(default)]
    transparency_log: Option<bool>,
    #[serde(default)]
    sct: Option<bool>,
}

#[derive(Deserialize)]
struct RawRepository {
    kind: Spanned<String>,
    root: Spanned<String>,
    keys: Spanned<Vec<Spanned<String>>>,
    suites: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    uncovered: Option<Spanned<String>>,
    #[serde(default)]
    valid_until: Option<Spanned<String>>,
}

#[derive(Deserialize)]
struct RawChannel {
    name: Spanned<String>,
    signers: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    threshold: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
struct RawRevoked {
    #[serde(default)]
    key_id: Option<Spanned<String>>,
    #[serde(default)]
    fingerprint: Option<Spanned<String>>,
    #[serde(default)]
    san: Option<Spanned<String>>,
    reason: Spanned<String>,
    #[serde(default)]
    since: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
struct RawArtifact {
    path: Spanned<String>,
    keys: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    required: Option<bool>,
    #[serde(default)]
    allow_legacy: Option<bool>,
    #[serde(default)]
    predicate_types: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    slsa_builder_id: Option<Spanned<String>>,
}

/// A `[keys.*]` entry, loaded.
enum Loaded {
    /// A signify or minisign key: it can sign bundles and artifacts.
    Bundle(NamedKey),
    /// An OpenPGP or Sigstore key: it can sign artifacts only.
    Producer(ProducerKey),
}

/// Checks policy text and builds the [`Policy`], naming the line of every problem.
pub(super) struct Parser<'a> {
    text: &'a str,
    base: &'a Path,
    origin: &'a str,
    /// Every problem found so far: a failed check records its problem and the parse goes on
    /// with the next entry, so one run reports them all.
    problems: RefCell<Vec<PolicyProblem>>,
}

/// The names of a table's fields, each with where it is: what the field-name pass reads
/// (the `Raw*` structs accept unknown fields; this pass names every one).
type Fields = BTreeMap<Spanned<String>, serde::de::IgnoredAny>;

/// The tables of a policy file whose field names are checked.
#[derive(Deserialize)]
struct Shape {
    #[serde(default)]
    keys: BTreeMap<String, Fields>,
    #[serde(default)]
    sigstore: BTreeMap<String, Fields>,
    #[serde(default)]
    channel: Vec<Fields>,
    #[serde(default)]
    revoked: Vec<Fields>,
    #[serde(default)]
    artifact: Vec<Fields>,
    #[serde(default)]
    repository: Vec<Fields>,
}

/// The `github_publisher` tables inside `[keys.*]`.
#[derive(Deserialize)]
struct PublisherShape {
    #[serde(default)]
    keys: BTreeMap<String, KeyShape>,
}

#[derive(Deserialize)]
struct KeyShape {
    #[serde(default)]
    github_publisher: Option<Fields>,
}

/// The field names a `Raw*` struct reads, from serde itself (so the check cannot drift from
/// the structs): a deserializer that records what `deserialize_struct` is asked for.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    let seen = std::cell::Cell::new(&[][..]);
    let _ = T::deserialize(FieldNames(&seen));
    seen.get()
}

struct FieldNames<'a>(&'a std::cell::Cell<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("only a struct's field names are read"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        self.0.set(fields);
        Err(serde::de::Error::custom("only a struct's field names are read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

impl<'a> Parser<'a> {
    /// `base` resolves relative key file paths; `origin` names the text in errors.
    pub(super) fn new(text: &'a str, base: &'a Path, origin: &'a str) -> Parser<'a> {
        Parser { text, base, origin, problems: RefCell::new(Vec::new()) }
    }

    /// A check's value; a failed check's problem is recorded (`None`), and the parse goes on.
    fn keep<T>(&self, result: Result<T>) -> Option<T> {
        let problem = match result {
            Ok(value) => return Some(value),
            Err(Error::Policy(PolicyError::Invalid { line, problem, .. })) => PolicyProblem { line, problem },
            Err(other) => PolicyProblem { line: 1, problem: other.to_string() },
        };
        self.problems.borrow_mut().push(problem);
        None
    }

    /// The problems recorded, as one error (in line order), if there are any.
    fn collected(&self) -> Option<Error> {
        let mut problems = self.problems.take();
        problems.sort_by_key(|p| p.line);
        let origin = self.origin.to_owned();
        match problems.len() {
            0 => None,
            1 => {
                problems.pop().map(|p| Error::Policy(PolicyError::Invalid { origin, line: p.line, problem: p.problem }))
            }
            _ => Some(Error::Policy(PolicyError::Many { origin, problems })),
        }
    }

    /// Records every field no `Raw*` struct reads, each at its line. Returns whether the
    /// check could run (it cannot when a table has the wrong type, which the parse reports).
    fn unknown_fields(&self) -> bool {
        let refuse = |table: &str, fields: &Fields, known: &[&str]| {
            for name in fields.keys().filter(|n| !known.contains(&n.get_ref().as_str())) {
                self.keep::<()>(Err(self.err(
                    name.span(),
                    format!("unknown field `{}` in {table}, which takes: {}", name.get_ref(), known.join(", ")),
                )));
            }
        };
        let (Ok(top), Ok(shape), Ok(publishers)) = (
            toml::from_str::<Fields>(self.text),
            toml::from_str::<Shape>(self.text),
            toml::from_str::<PublisherShape>(self.text),
        ) else {
            return false;
        };
        refuse("the top level", &top, fields_of::<RawPolicy>());
        for (name, fields) in &shape.keys {
            refuse(&format!("[keys.{name}]"), fields, fields_of::<RawKey>());
        }
        for (name, fields) in &shape.sigstore {
            refuse(&format!("[sigstore.{name}]"), fields, fields_of::<RawSigstore>());
        }
        let lists = [
            ("[[channel]]", &shape.channel, fields_of::<RawChannel>()),
            ("[[revoked]]", &shape.revoked, fields_of::<RawRevoked>()),
            ("[[artifact]]", &shape.artifact, fields_of::<RawArtifact>()),
            ("[[repository]]", &shape.repository, fields_of::<RawRepository>()),
        ];
        for (table, entries, known) in lists {
            for fields in entries {
                refuse(table, fields, known);
            }
        }
        for (name, key) in &publishers.keys {
            if let Some(fields) = &key.github_publisher {
                refuse(&format!("[keys.{name}] github_publisher"), fields, fields_of::<RawPublisher>());
            }
        }
        true
    }

    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn err(&self, span: Range<usize>, problem: impl Into<String>) -> Error {
        self.err_at_line(self.line(span.start), problem)
    }

    fn err_at_line(&self, line: usize, problem: impl Into<String>) -> Error {
        Error::Policy(PolicyError::Invalid { origin: self.origin.to_owned(), line, problem: problem.into() })
    }

    /// Parses and checks the whole policy, recording every problem (at most one per entry:
    /// an entry's later checks build on its earlier ones) before giving up.
    pub(super) fn parse(&self) -> Result<Policy> {
        // A syntax error leaves nothing else to read.
        toml::from_str::<toml::Table>(self.text)
            .map_err(|e| self.err_at_line(e.span().map_or(1, |s| self.line(s.start)), e.message().trim()))?;
        let names_checked = self.unknown_fields();
        let raw: Option<RawPolicy> = self.keep(
            toml::from_str(self.text)
                .map_err(|e| self.err_at_line(e.span().map_or(1, |s| self.line(s.start)), e.message().trim())),
        );
        let Some(raw) = raw else {
            return Err(self.collected().unwrap_or_else(|| Error::Internal("a policy parse failed unrecorded".into())));
        };
        if !names_checked {
            // Fail closed: the field names must be checked before anything is trusted.
            self.keep::<()>(Err(self.err_at_line(1, "the field names could not be checked")));
        }
        if *raw.version.get_ref() != POLICY_VERSION {
            // Another version's file is read no further: its fields mean other things.
            self.keep::<()>(Err(self.err(
                raw.version.span(),
                format!(
                    "policy version {} is not supported (this airlock reads version {POLICY_VERSION})",
                    raw.version.get_ref()
                ),
            )));
            return Err(self.collected().unwrap_or_else(|| Error::Internal("a policy parse failed unrecorded".into())));
        }
        let (sigstore, broken_instances) = self.sigstore_instances(&raw.sigstore);
        let (keys, producer_keys, broken_keys) = self.keys(&raw.keys, &sigstore, &broken_instances);
        // A key that failed to load was reported where it is defined; naming it elsewhere is
        // no further problem (`Ok(None)`).
        let key = |name: &Spanned<String>| -> Result<Option<PublicKey>> {
            if broken_keys.contains(name.get_ref()) {
                return Ok(None);
            }
            keys.iter().find(|k| k.name == *name.get_ref()).map(|k| Some(k.key.clone())).ok_or_else(|| {
                if producer_keys.iter().any(|p| p.name == *name.get_ref()) {
                    self.err(
                        name.span(),
                        format!(
                            "key {:?} is an OpenPGP or Sigstore key; bundles are signed with signify or minisign keys",
                            name.get_ref()
                        ),
                    )
                } else {
                    self.err(name.span(), format!("no key named {:?} in [keys]", name.get_ref()))
                }
            })
        };
        let revoked: Vec<Revocation> = raw.revoked.iter().filter_map(|r| self.keep(self.revocation(r))).collect();
        let mut channels: Vec<ChannelRule> = Vec::new();
        for c in &raw.channel {
            if let Some(Some(rule)) = self.keep(self.channel(c, &key, &revoked, &channels)) {
                channels.push(rule);
            }
        }
        if raw.channel.is_empty() {
            self.keep::<()>(Err(self.err(0..0, "the policy has no [[channel]] entry, so it would accept no bundle")));
        }
        let max_age = self.keep(self.max_age(&raw.max_age)).flatten();
        let artifacts: Vec<ArtifactRule> =
            raw.artifact.iter().filter_map(|a| self.keep(self.artifact(a, &key, &producer_keys)).flatten()).collect();
        let mut repositories: Vec<RepositoryRule> = Vec::new();
        for r in &raw.repository {
            let Some(rule) = self.keep(self.repository(r, &producer_keys)) else { continue };
            if let Some(other) = repositories.iter().find(|o| o.root == rule.root) {
                self.keep::<()>(Err(self.err(
                    r.span(),
                    format!("two [[repository]] rules for the tree {:?}; list every suite in one", other.root),
                )));
                continue;
            }
            repositories.push(rule);
        }
        if let Some(error) = self.collected() {
            return Err(error);
        }
        Ok(Policy {
            origin: self.origin.to_owned(),
            keys,
            channels,
            revoked,
            max_age,
            artifacts,
            producer_keys,
            sigstore,
            repositories,
        })
    }

    /// One `[[channel]]` entry; `None` when a signer it names failed to load (reported
    /// there).
    fn channel(
        &self,
        c: &Spanned<RawChannel>,
        key: &dyn Fn(&Spanned<String>) -> Result<Option<PublicKey>>,
        revoked: &[Revocation],
        channels: &[ChannelRule],
    ) -> Result<Option<ChannelRule>> {
        let name = c.get_ref().name.get_ref();
        if name != "*" {
            manifest::check_channel(name).map_err(|p| self.err(c.get_ref().name.span(), p))?;
        }
        if channels.iter().any(|x| x.channel == *name) {
            return Err(self.err(c.get_ref().name.span(), format!("channel {name:?} has two [[channel]] entries")));
        }
        let Some(signers) = c.get_ref().signers.get_ref().iter().map(key).collect::<Result<Option<Vec<_>>>>()? else {
            return Ok(None);
        };
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
            .filter(|k| !revoked.iter().any(|r| r.key == Revoked::KeyId(k.key_id()) && r.since.is_none()))
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
        Ok(Some(ChannelRule { channel: name.clone(), trust }))
    }

    fn max_age(&self, raw: &Option<Spanned<String>>) -> Result<Option<u64>> {
        let Some(a) = raw else { return Ok(None) };
        match humantime::parse_duration(a.get_ref()) {
            Ok(d) if d.as_secs() > 0 => Ok(Some(d.as_secs())),
            _ => {
                Err(self
                    .err(a.span(), format!("max_age {:?} is not a duration such as \"30d\" or \"12h\"", a.get_ref())))
            }
        }
    }

    /// One `[[artifact]]` rule; `None` when a key it names failed to load (reported there).
    fn artifact(
        &self,
        a: &Spanned<RawArtifact>,
        key: &dyn Fn(&Spanned<String>) -> Result<Option<PublicKey>>,
        producer_keys: &[ProducerKey],
    ) -> Result<Option<ArtifactRule>> {
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
        let mut rule_keys = Vec::new();
        let mut rule_producer_keys = Vec::new();
        for k in a_ref.keys.get_ref() {
            if producer_keys.iter().any(|p| p.name == *k.get_ref()) {
                rule_producer_keys.push(k.get_ref().clone());
            } else {
                match key(k)? {
                    Some(found) => rule_keys.push(found),
                    None => return Ok(None),
                }
            }
        }
        if rule_keys.is_empty() && rule_producer_keys.is_empty() {
            return Err(self.err(a_ref.keys.span(), "keys is empty"));
        }
        let predicate_types: Vec<String> = match &a_ref.predicate_types {
            None => Vec::new(),
            Some(list) if list.get_ref().is_empty() => {
                return Err(self.err(list.span(), "predicate_types is empty (leave it out to accept any signature)"))
            }
            Some(list) => list.get_ref().iter().map(|t| t.get_ref().clone()).collect(),
        };
        let slsa_builder_id = a_ref.slsa_builder_id.as_ref().map(|b| b.get_ref().clone());
        if !predicate_types.is_empty() || slsa_builder_id.is_some() {
            let sigstore_keys = rule_producer_keys
                .iter()
                .any(|n| producer_keys.iter().any(|p| p.name == *n && matches!(p.kind, ProducerKeyKind::Sigstore(_))));
            if !sigstore_keys {
                let at = a_ref
                    .predicate_types
                    .as_ref()
                    .map_or_else(|| a_ref.slsa_builder_id.as_ref().map_or(a.span(), |b| b.span()), |p| p.span());
                return Err(self.err(
                    at,
                    format!("the rule for {pattern:?} requires attestations (predicate_types / slsa_builder_id) but names no Sigstore key that could sign one"),
                ));
            }
        }
        Ok(Some(ArtifactRule {
            pattern: pattern.clone(),
            matcher: glob.compile_matcher(),
            keys: rule_keys,
            required: a_ref.required.unwrap_or(true),
            allow_legacy: a_ref.allow_legacy.unwrap_or(false),
            producer_keys: rule_producer_keys,
            predicate_types,
            slsa_builder_id,
        }))
    }

    /// Every `[keys.*]` entry that loads, and the names of those that do not (each
    /// reported where it is defined).
    fn keys(
        &self,
        raw: &BTreeMap<Spanned<String>, Spanned<RawKey>>,
        instances: &[SigstoreInstance],
        broken_instances: &BTreeSet<String>,
    ) -> (Vec<NamedKey>, Vec<ProducerKey>, BTreeSet<String>) {
        let mut keys: Vec<NamedKey> = Vec::new();
        let mut producer_keys: Vec<ProducerKey> = Vec::new();
        let mut broken = BTreeSet::new();
        for (name, spec) in raw {
            let on_broken_instance =
                spec.get_ref().sigstore.as_ref().is_some_and(|i| broken_instances.contains(i.get_ref()));
            let loaded = if on_broken_instance { None } else { self.keep(self.key(name, spec, instances, &keys)) };
            match loaded {
                Some(Loaded::Bundle(k)) => keys.push(k),
                Some(Loaded::Producer(k)) => producer_keys.push(k),
                None => {
                    broken.insert(name.get_ref().clone());
                }
            }
        }
        (keys, producer_keys, broken)
    }

    /// One `[keys.*]` entry.
    fn key(
        &self,
        name: &Spanned<String>,
        spec: &Spanned<RawKey>,
        instances: &[SigstoreInstance],
        keys: &[NamedKey],
    ) -> Result<Loaded> {
        {
            let n = name.get_ref();
            check_name(n).map_err(|p| self.err(name.span(), format!("key name {p}")))?;
            let s = spec.get_ref();
            let kinds = [s.file.is_some(), s.public_key.is_some(), s.openpgp.is_some(), s.sigstore.is_some()];
            if kinds.iter().filter(|&&k| k).count() != 1 {
                return Err(self.err(
                    spec.span(),
                    format!("key {n:?} needs exactly one of `file`, `public_key`, `openpgp` or `sigstore`"),
                ));
            }
            if let Some(keyring) = &s.openpgp {
                self.only_fields(n, "openpgp", &s.sigstore_fields())?;
                let key = self.openpgp_key(n, keyring, s)?;
                return Ok(Loaded::Producer(ProducerKey { name: n.clone(), kind: ProducerKeyKind::OpenPgp(key) }));
            }
            if let Some(instance) = &s.sigstore {
                self.only_fields(n, "sigstore", &s.openpgp_fields())?;
                let key = self.sigstore_key(n, spec, instance, s, instances)?;
                return Ok(Loaded::Producer(ProducerKey { name: n.clone(), kind: ProducerKeyKind::Sigstore(key) }));
            }
            let mut extra = s.openpgp_fields();
            extra.extend(s.sigstore_fields());
            self.only_fields(n, if s.file.is_some() { "file" } else { "public_key" }, &extra)?;
            let (key, origin) = match (&s.file, &s.public_key) {
                (Some(file), _) => {
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
                (None, None) => return Err(self.err(spec.span(), format!("key {n:?} has no key"))),
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
            Ok(Loaded::Bundle(NamedKey { name: n.clone(), key, origin }))
        }
    }

    /// Fields that belong to another kind of key are refused by name, so a typo'd kind
    /// cannot silently drop a constraint.
    fn only_fields(&self, n: &str, kind: &str, present: &[(&str, Range<usize>)]) -> Result<()> {
        match present.first() {
            None => Ok(()),
            Some((field, span)) => {
                Err(self.err(span.clone(), format!("key {n:?}: `{field}` does not apply to a key given by `{kind}`")))
            }
        }
    }

    /// Reads a trust file (keyring, trusted root) named relative to the policy.
    fn trust_bytes(&self, what: &str, file: &Spanned<String>) -> Result<(Vec<u8>, String)> {
        use std::io::Read as _;
        let path = self.base.join(file.get_ref());
        let origin = path.display().to_string();
        let f = std::fs::File::open(&path)
            .map_err(|e| self.err(file.span(), format!("{what}: cannot read {origin}: {e}")))?;
        let mut bytes = Vec::new();
        f.take(MAX_TRUST_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.err(file.span(), format!("{what}: cannot read {origin}: {e}")))?;
        if bytes.len() as u64 > MAX_TRUST_FILE_BYTES {
            return Err(self.err(
                file.span(),
                format!("{what}: {origin} is larger than {MAX_TRUST_FILE_BYTES} bytes; no keyring or trusted root is"),
            ));
        }
        Ok((bytes, origin))
    }

    fn openpgp_key(&self, n: &str, keyring: &Spanned<String>, s: &RawKey) -> Result<OpenPgpKey> {
        let mut fingerprints = Vec::new();
        if let Some(list) = &s.fingerprints {
            if list.get_ref().is_empty() {
                return Err(self.err(
                    list.span(),
                    format!("key {n:?}: fingerprints is empty (leave it out to trust every key of the keyring)"),
                ));
            }
            for f in list.get_ref() {
                let fp: Fingerprint = f.get_ref().parse().map_err(|e| {
                    self.err(
                        f.span(),
                        format!("key {n:?}: fingerprint {:?} is not 40 or 64 hex digits: {e}", f.get_ref()),
                    )
                })?;
                fingerprints.push(fp);
            }
        }
        let allow_sha1_bindings = s.allow_sha1_bindings.as_ref().is_some_and(|b| *b.get_ref());
        let what = format!("key {n:?}");
        let (bytes, origin) = self.trust_bytes(&what, keyring)?;
        let parsed = Keyring::parse(&bytes, &fingerprints, allow_sha1_bindings)
            .map_err(|e| self.err(keyring.span(), format!("key {n:?}: OpenPGP keyring {origin}: {e}")))?;
        let armoured = bytes.starts_with(b"-----BEGIN");
        let file = trust_file(n, &origin, bytes, if armoured { "asc" } else { "gpg" });
        Ok(OpenPgpKey { keyring: parsed, fingerprints, allow_sha1_bindings, file })
    }

    fn sigstore_key(
        &self,
        n: &str,
        spec: &Spanned<RawKey>,
        instance: &Spanned<String>,
        s: &RawKey,
        instances: &[SigstoreInstance],
    ) -> Result<SigstoreKey> {
        if !instances.iter().any(|i| i.name == *instance.get_ref()) {
            let known: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
            return Err(self.err(
                instance.span(),
                format!(
                    "key {n:?}: no [sigstore.{}] instance (the policy defines: {})",
                    instance.get_ref(),
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            ));
        }
        let signer = if let Some(pem) = &s.public_key_pem {
            let identity_fields: Vec<(&str, Range<usize>)> = s.identity_fields();
            if let Some((field, span)) = identity_fields.first() {
                return Err(self.err(
                    span.clone(),
                    format!("key {n:?}: `{field}` does not apply to a managed key (`public_key_pem`); a key has no identity"),
                ));
            }
            let (bytes, origin) = self.trust_bytes(&format!("key {n:?}"), pem)?;
            let key = ManagedKey::parse_pem(&bytes)
                .map_err(|e| self.err(pem.span(), format!("key {n:?}: public key {origin}: {e}")))?;
            Signer::Key(key)
        } else {
            Signer::Identity(self.identity(n, spec, s)?)
        };
        Ok(SigstoreKey { instance: instance.get_ref().clone(), signer })
    }

    /// A Sigstore identity: never "any identity". An issuer, and exactly one of an exact
    /// SAN, an anchored SAN pattern or a GitHub publisher.
    fn identity(&self, n: &str, spec: &Spanned<RawKey>, s: &RawKey) -> Result<Identity> {
        let subjects = [s.san.is_some(), s.san_regex.is_some(), s.github_publisher.is_some()];
        if subjects.iter().filter(|&&x| x).count() != 1 {
            return Err(self.err(
                spec.span(),
                format!(
                    "key {n:?}: a Sigstore identity needs exactly one of `san`, `san_regex` or `github_publisher` (and an `issuer`): \"any identity\" is never a policy"
                ),
            ));
        }
        let publisher = s.github_publisher.as_ref().map(|p| self.publisher(n, p)).transpose()?;
        let issuer = match (&s.issuer, &publisher) {
            (Some(i), Some(_)) if i.get_ref() != GITHUB_ISSUER => {
                return Err(self.err(
                    i.span(),
                    format!("key {n:?}: a github_publisher is issued by {GITHUB_ISSUER:?}, not {:?}", i.get_ref()),
                ))
            }
            (Some(i), _) => i.get_ref().clone(),
            (None, Some(_)) => GITHUB_ISSUER.to_owned(),
            (None, None) => {
                return Err(self.err(
                    spec.span(),
                    format!("key {n:?}: a Sigstore identity needs an `issuer` (the OIDC issuer URL, e.g. {GITHUB_ISSUER:?}): \"any identity\" is never a policy"),
                ))
            }
        };
        if issuer.trim().is_empty() {
            return Err(self.err(spec.span(), format!("key {n:?}: issuer is empty")));
        }
        let san = match (&s.san, &s.san_regex) {
            (Some(exact), _) if exact.get_ref().is_empty() => {
                return Err(self.err(exact.span(), format!("key {n:?}: san is empty")))
            }
            (Some(exact), _) => Some(SanMatch::Exact(exact.get_ref().clone())),
            (None, Some(pattern)) => Some(
                SanMatch::pattern(pattern.get_ref())
                    .map_err(|e| self.err(pattern.span(), format!("key {n:?}: san_regex: {e}")))?,
            ),
            (None, None) => None,
        };
        let non_empty = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<String>> {
            match v {
                Some(x) if x.get_ref().is_empty() => Err(self.err(x.span(), format!("key {n:?}: {field} is empty"))),
                other => Ok(other.as_ref().map(|x| x.get_ref().clone())),
            }
        };
        Ok(Identity {
            issuer,
            san,
            source_repository: non_empty(&s.source_repository, "source_repository")?,
            source_ref: non_empty(&s.source_ref, "source_ref")?,
            github_publisher: publisher,
        })
    }

    fn publisher(&self, n: &str, p: &Spanned<RawPublisher>) -> Result<GithubPublisher> {
        let raw = p.get_ref();
        let repo = raw.repository.get_ref();
        if repo.split('/').count() != 2 || repo.split('/').any(str::is_empty) {
            return Err(self.err(
                raw.repository.span(),
                format!("key {n:?}: github_publisher repository {repo:?} is not OWNER/NAME"),
            ));
        }
        let workflow = raw.workflow.get_ref();
        if workflow.is_empty() || workflow.contains('/') {
            return Err(self.err(
                raw.workflow.span(),
                format!("key {n:?}: github_publisher workflow {workflow:?} is not a workflow file name such as \"release.yml\""),
            ));
        }
        let environment = raw.environment.as_ref().map(|e| e.get_ref().clone()).filter(|e| !e.is_empty());
        Ok(GithubPublisher { repository: repo.clone(), workflow: workflow.clone(), environment })
    }

    /// Every `[sigstore.*]` instance that loads, and the names of those that do not.
    fn sigstore_instances(
        &self,
        raw: &BTreeMap<Spanned<String>, Spanned<RawSigstore>>,
    ) -> (Vec<SigstoreInstance>, BTreeSet<String>) {
        let mut out = Vec::new();
        let mut broken = BTreeSet::new();
        for (name, spec) in raw {
            match self.keep(self.sigstore_instance(name, spec)) {
                Some(instance) => out.push(instance),
                None => {
                    broken.insert(name.get_ref().clone());
                }
            }
        }
        (out, broken)
    }

    fn sigstore_instance(&self, name: &Spanned<String>, spec: &Spanned<RawSigstore>) -> Result<SigstoreInstance> {
        {
            let n = name.get_ref();
            check_name(n).map_err(|p| self.err(name.span(), format!("sigstore instance name {p}")))?;
            let s = spec.get_ref();
            let options =
                InstanceOptions { transparency_log: s.transparency_log.unwrap_or(true), sct: s.sct.unwrap_or(true) };
            let what = format!("[sigstore.{n}]");
            let (bytes, origin) = self.trust_bytes(&what, &s.trusted_root)?;
            let root = TrustRoot::parse(&bytes, options)
                .map_err(|e| self.err(s.trusted_root.span(), format!("{what}: trusted root {origin}: {e}")))?;
            let file = trust_file(&format!("sigstore.{n}"), &origin, bytes, "json");
            Ok(SigstoreInstance { name: n.clone(), root, options, file })
        }
    }

    fn repository(&self, r: &Spanned<RawRepository>, producer_keys: &[ProducerKey]) -> Result<RepositoryRule> {
        let raw = r.get_ref();
        if raw.kind.get_ref() != "debian" {
            return Err(self.err(
                raw.kind.span(),
                format!(
                    "repository kind {:?} is not known (this airlock checks kind = \"debian\")",
                    raw.kind.get_ref()
                ),
            ));
        }
        let root = raw.root.get_ref().trim_end_matches('/');
        if root.starts_with('/') || root.split('/').any(|c| c == ".." || c == ".") || root.contains("//") {
            return Err(self.err(
                raw.root.span(),
                format!("repository root {:?} must be a relative path in the bundle such as \"debian\" (or \"\" for the top)", raw.root.get_ref()),
            ));
        }
        let mut keys = Vec::new();
        for k in raw.keys.get_ref() {
            match producer_keys.iter().find(|p| p.name == *k.get_ref()) {
                Some(ProducerKey { kind: ProducerKeyKind::OpenPgp(_), .. }) => keys.push(k.get_ref().clone()),
                Some(_) => {
                    return Err(self.err(
                        k.span(),
                        format!("repository keys: {:?} is not an OpenPGP key (`openpgp = \"keyring\"`); Debian release files are signed with OpenPGP", k.get_ref()),
                    ))
                }
                None => {
                    return Err(self.err(k.span(), format!("repository keys: no OpenPGP key named {:?} in [keys]", k.get_ref())))
                }
            }
        }
        if keys.is_empty() {
            return Err(self.err(raw.keys.span(), "repository keys is empty"));
        }
        let mut suites: Vec<String> = Vec::new();
        for s in raw.suites.get_ref() {
            let suite = s.get_ref();
            if suite.is_empty()
                || suite.starts_with('/')
                || suite.split('/').any(|c| c.is_empty() || c == ".." || c == ".")
            {
                return Err(self.err(
                    s.span(),
                    format!("suite {suite:?} is not a directory name under dists/ such as \"bookworm\""),
                ));
            }
            if suites.contains(suite) {
                return Err(self.err(s.span(), format!("suite {suite:?} is listed twice")));
            }
            suites.push(suite.clone());
        }
        if suites.is_empty() {
            return Err(self.err(raw.suites.span(), "repository suites is empty"));
        }
        let uncovered = match raw.uncovered.as_ref().map(|u| (u.get_ref().as_str(), u.span())) {
            None | Some(("reject", _)) => Uncovered::Reject,
            Some(("report", _)) => Uncovered::Report,
            Some((other, span)) => {
                return Err(self.err(span, format!("uncovered {other:?} is not \"reject\" or \"report\"")))
            }
        };
        let valid_until = match raw.valid_until.as_ref().map(|u| (u.get_ref().as_str(), u.span())) {
            None | Some(("report", _)) => ValidUntil::Report,
            Some(("enforce", _)) => ValidUntil::Enforce,
            Some(("ignore", _)) => ValidUntil::Ignore,
            Some((other, span)) => {
                return Err(
                    self.err(span, format!("valid_until {other:?} is not \"enforce\", \"report\" or \"ignore\""))
                )
            }
        };
        Ok(RepositoryRule { root: root.to_owned(), keys, suites, uncovered, valid_until })
    }

    fn revocation(&self, r: &Spanned<RawRevoked>) -> Result<Revocation> {
        let raw = r.get_ref();
        let key = match (&raw.key_id, &raw.fingerprint, &raw.san) {
            (Some(id), None, None) => Revoked::KeyId(KeyId::from_hex(id.get_ref()).ok_or_else(|| {
                self.err(
                    id.span(),
                    format!(
                        "key_id {:?} is not 16 lowercase hex digits (`airlock key show K.pub` prints it; minisign's spelling is byte-reversed)",
                        id.get_ref()
                    ),
                )
            })?),
            (None, Some(fp), None) => Revoked::Fingerprint(fp.get_ref().parse().map_err(|e| {
                self.err(fp.span(), format!("fingerprint {:?} is not an OpenPGP fingerprint (40 or 64 hex digits): {e}", fp.get_ref()))
            })?),
            (None, None, Some(san)) if !san.get_ref().is_empty() => Revoked::San(san.get_ref().clone()),
            (None, None, Some(san)) => return Err(self.err(san.span(), "san is empty")),
            _ => {
                return Err(self.err(
                    r.span(),
                    "a [[revoked]] entry needs exactly one of `key_id` (signify/minisign), `fingerprint` (OpenPGP) or `san` (Sigstore identity)",
                ))
            }
        };
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
                let t = clock::parse_time(&text).ok_or_else(|| {
                    self.err(s.span(), format!("since {text:?} is not a time such as 2026-10-01T00:00:00Z"))
                })?;
                Some(t)
            }
        };
        Ok(Revocation { key, reason: raw.reason.get_ref().clone(), since })
    }
}

#[cfg(test)]
mod tests {
    use super::{ProducerKeyKind, Uncovered, ValidUntil, GITHUB_ISSUER};
    use crate::error::{Error, Reject, Result};
    use crate::keys::{PublicKey, SecretKey};
    use crate::policy::{Policy, PolicyError};
    use std::path::Path;

    fn b64(k: &PublicKey) -> String {
        k.to_file_string().lines().nth(1).unwrap().to_owned()
    }

    fn parse(text: &str) -> Result<Policy> {
        Policy::parse(text, Path::new("."), "p.toml")
    }

    fn line_of(e: Error) -> (usize, String) {
        match e {
            Error::Policy(PolicyError::Invalid { line, problem, .. }) => (line, problem),
            // Policies here may lack a channel; the problem under test is the other one.
            Error::Policy(PolicyError::Many { problems, .. }) => problems
                .into_iter()
                .find(|p| !p.problem.contains("no [[channel]] entry"))
                .map(|p| (p.line, p.problem))
                .unwrap_or_default(),
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
    fn every_problem_of_a_policy_is_reported_in_one_pass() {
        let ks = Keys::new(1);
        let text = format!(
            "{}colour = \"blue\"\n[keys.gone]\nfile = \"no-such.pub\"\n[keys.bad]\npublic_key = \"RWQAAAA\"\n\
             [[channel]]\nname = \"c\"\nsigners = [\"k0\", \"gone\"]\nthreshhold = 1\n[[channel]]\nname = \"d\"\n\
             signers = [\"k0\"]\nthreshold = 0\n[[revoked]]\nkey_id = \"XYZ\"\nreason = \"r\"\nmax_age = \"soon\"\n",
            ks.toml()
        );
        let problems = match parse(&text).unwrap_err() {
            Error::Policy(PolicyError::Many { origin, problems }) => {
                assert_eq!(origin, "p.toml");
                problems
            }
            other => panic!("{other}"),
        };
        let found: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.problem.as_str())).collect();
        let expect: [(usize, &str); 7] = [
            (4, "unknown field `colour` in [keys.k0]"),
            (6, "no-such.pub"),
            (8, "malformed public_key"),
            (12, "unknown field `threshhold` in [[channel]]"),
            (16, "threshold must be at least 1"),
            (18, "16 lowercase hex"),
            (20, "unknown field `max_age` in [[revoked]]"),
        ];
        assert_eq!(found.len(), expect.len(), "{found:#?}");
        for ((line, text), (want_line, want)) in found.iter().zip(expect) {
            assert_eq!(*line, want_line, "{text}");
            assert!(text.contains(want), "{text:?} lacks {want:?}");
        }
        // The channel naming the key that failed to load is not reported again for it.
        assert!(!problems.iter().any(|p| p.problem.contains("no key named \"gone\"")), "{problems:#?}");
        let one_line = parse(&text).unwrap_err().to_string();
        assert!(
            one_line.starts_with("p.toml: 7 problems: line 4: unknown field") && !one_line.contains('\n'),
            "{one_line}"
        );
    }

    #[test]
    fn the_field_names_checked_are_the_ones_serde_reads() {
        assert_eq!(super::fields_of::<super::RawChannel>(), ["name", "signers", "threshold"]);
        assert!(super::fields_of::<super::RawKey>().contains(&"github_publisher"));
        assert!(super::fields_of::<super::RawPolicy>().contains(&"repository"));
        assert_eq!(super::fields_of::<super::RawPublisher>(), ["repository", "workflow", "environment"]);
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
    }

    /// A fixture path, relative to the package root (where `cargo test` runs unit tests).
    fn fixture(rel: &str) -> String {
        format!("fixtures/producer/{rel}")
    }

    const ROOT: &str = "[sigstore.pg]\ntrusted_root = \"@root\"\n";

    fn with_fixtures(text: &str) -> String {
        text.replace("@root", &fixture("sigstore/roots/public-good.json"))
            .replace("@debian", &fixture("openpgp/debian-archive-keyring.gpg"))
            .replace("@hello", &fixture("openpgp/hello-signing-key.asc"))
    }

    fn producer_policy(extra: &str) -> Result<Policy> {
        let ks = Keys::new(1);
        parse(&with_fixtures(&format!("{}[[channel]]\nname = \"*\"\nsigners = [\"k0\"]\n{extra}", ks.toml())))
    }

    #[test]
    fn a_key_is_exactly_one_kind_and_takes_only_its_own_fields() {
        let (_, msg) = line_of(producer_policy("[keys.x]\nopenpgp = \"a.gpg\"\nsigstore = \"pg\"\n").unwrap_err());
        assert!(msg.contains("exactly one of `file`, `public_key`, `openpgp` or `sigstore`"), "{msg}");
        let ks = Keys::new(1);
        let text = format!(
            "{}fingerprints = [\"{}\"]\n[[channel]]\nname = \"*\"\nsigners = [\"k0\"]\n",
            ks.toml(),
            "8ED396E37E38D471A00530D3A9553245FDE9B739"
        );
        let (line, msg) = line_of(parse(&text).unwrap_err());
        assert_eq!(line, 4, "{msg}");
        assert!(msg.contains("`fingerprints` does not apply to a key given by `public_key`"), "{msg}");
    }

    #[test]
    fn revocations_name_exactly_one_key_id_fingerprint_or_san() {
        let p = producer_policy(
            "[[revoked]]\nfingerprint = \"8ed3 96e3 7e38 d471 a005 30d3 a955 3245 fde9 b739\"\nreason = \"lost\"\n[[revoked]]\nsan = \"https://github.com/o/r/.github/workflows/release.yml@refs/heads/main\"\nreason = \"compromised\"\nsince = 2026-01-01\n",
        )
        .unwrap();
        assert_eq!(p.revoked().len(), 2);
        let fp: crate::producer::openpgp::Fingerprint = "8ED396E37E38D471A00530D3A9553245FDE9B739".parse().unwrap();
        assert!(p.fingerprint_revocation(&[&fp], 0, 0).is_some());
        let san = "https://github.com/o/r/.github/workflows/release.yml@refs/heads/main";
        // With `since`: by the signing time, or by the bundle's `created`.
        assert!(p.san_revocation(san, 1_700_000_000, 1_700_000_000).is_none());
        assert!(p.san_revocation(san, 1_800_000_000, 1_700_000_000).is_some());
        assert!(p.san_revocation(san, 1_700_000_000, 1_800_000_000).is_some());
        assert!(p.san_revocation("https://other", 1_800_000_000, 1_800_000_000).is_none());
        let (_, msg) = line_of(
            producer_policy("[[revoked]]\nkey_id = \"0102030405060708\"\nsan = \"x\"\nreason = \"r\"\n").unwrap_err(),
        );
        assert!(msg.contains("exactly one of `key_id`"), "{msg}");
        let (_, msg) = line_of(producer_policy("[[revoked]]\nfingerprint = \"ABCD\"\nreason = \"r\"\n").unwrap_err());
        assert!(msg.contains("not an OpenPGP fingerprint"), "{msg}");
    }

    #[test]
    fn repository_rules_need_openpgp_keys_a_relative_root_and_known_settings() {
        let rule = |keys: &str, root: &str, extra: &str| {
            format!("[[repository]]\nkind = \"debian\"\nroot = \"{root}\"\nkeys = [{keys}]\nsuites = [\"bookworm\"]\n{extra}")
        };
        let (_, msg) = line_of(producer_policy(&rule("\"k0\"", "debian", "")).unwrap_err());
        assert!(msg.contains("no OpenPGP key named \"k0\""), "{msg}");
        let (_, msg) = line_of(producer_policy(&rule("\"k0\"", "../debian", "")).unwrap_err());
        assert!(msg.contains("must be a relative path"), "{msg}");
        let debian = "[keys.debian]\nopenpgp = \"@debian\"\n";
        let p = producer_policy(&format!("{debian}{}", rule("\"debian\"", "debian/", ""))).unwrap();
        let r = &p.repositories()[0];
        assert_eq!(r.root, "debian");
        assert_eq!(r.uncovered, Uncovered::Reject);
        assert_eq!(r.valid_until, ValidUntil::Report);
        let (_, msg) = line_of(
            producer_policy(&format!("{debian}{}", rule("\"debian\"", "debian", "valid_until = \"sometimes\"\n")))
                .unwrap_err(),
        );
        assert!(msg.contains("valid_until \"sometimes\""), "{msg}");
        let (_, msg) = line_of(
            producer_policy(&format!("{debian}{}", rule("\"debian\"", "debian", "kind = \"rpm\"\n"))).unwrap_err(),
        );
        assert!(msg.contains("duplicate key") || msg.contains("kind"), "{msg}");
    }

    #[test]
    fn openpgp_keyrings_are_read_and_narrowed() {
        let p = producer_policy("[keys.hello]\nopenpgp = \"@hello\"\nfingerprints = [\"8ED396E37E38D471A00530D3A9553245FDE9B739\"]\nallow_sha1_bindings = true\n").unwrap();
        let Some(super::ProducerKey { kind: ProducerKeyKind::OpenPgp(k), .. }) = p.producer_key("hello") else {
            panic!("not an OpenPGP key")
        };
        assert!(k.allow_sha1_bindings);
        assert_eq!(k.keyring.certs().len(), 1);
        assert!(k.file.stored_as.ends_with(".asc"), "{}", k.file.stored_as);
        let (_, msg) = line_of(
            producer_policy(
                "[keys.hello]\nopenpgp = \"@hello\"\nfingerprints = [\"0000000000000000000000000000000000000000\"]\n",
            )
            .unwrap_err(),
        );
        assert!(msg.contains("key \"hello\": OpenPGP keyring"), "{msg}");
        let (_, msg) = line_of(producer_policy("[keys.x]\nopenpgp = \"/nonexistent.gpg\"\n").unwrap_err());
        assert!(msg.contains("cannot read /nonexistent.gpg"), "{msg}");
    }

    #[test]
    fn sigstore_identities_are_never_any_identity() {
        let key = |fields: &str| format!("{ROOT}[keys.s]\nsigstore = \"pg\"\n{fields}");
        for (fields, needle) in [
            ("issuer = \"https://token.actions.githubusercontent.com\"\n", "\"any identity\" is never a policy"),
            ("san = \"https://github.com/o/r/.github/workflows/r.yml@refs/heads/main\"\n", "needs an `issuer`"),
            (
                "issuer = \"i\"\nsan = \"a\"\nsan_regex = \"b\"\n",
                "exactly one of `san`, `san_regex` or `github_publisher`",
            ),
            (
                "issuer = \"https://gitlab.com\"\ngithub_publisher = { repository = \"o/r\", workflow = \"r.yml\" }\n",
                "is issued by",
            ),
            ("github_publisher = { repository = \"o\", workflow = \"r.yml\" }\n", "is not OWNER/NAME"),
        ] {
            let (line, msg) = line_of(producer_policy(&key(fields)).unwrap_err());
            assert!(msg.contains(needle), "{fields}: {msg}");
            assert!(line > 1, "{msg}");
        }
        let (_, msg) =
            line_of(producer_policy("[keys.s]\nsigstore = \"nowhere\"\nissuer = \"i\"\nsan = \"s\"\n").unwrap_err());
        assert!(msg.contains("no [sigstore.nowhere] instance"), "{msg}");
        // A publisher implies GitHub's issuer; a pattern is checked when the policy loads.
        let p =
            producer_policy(&key("github_publisher = { repository = \"o/r\", workflow = \"release.yml\" }\n")).unwrap();
        let Some(super::ProducerKey { kind: ProducerKeyKind::Sigstore(k), .. }) = p.producer_key("s") else {
            panic!("not a Sigstore key")
        };
        let crate::producer::sigstore::Signer::Identity(id) = &k.signer else { panic!("not an identity") };
        assert_eq!(id.issuer, GITHUB_ISSUER);
        let (_, msg) = line_of(producer_policy(&key("issuer = \"i\"\nsan_regex = \"(\"\n")).unwrap_err());
        assert!(msg.contains("san_regex"), "{msg}");
    }

    #[test]
    fn attestation_requirements_need_a_sigstore_key() {
        let (_, msg) = line_of(
            producer_policy(
                "[[artifact]]\npath = \"a/*\"\nkeys = [\"k0\"]\npredicate_types = [\"https://slsa.dev/provenance/v1\"]\n",
            )
            .unwrap_err(),
        );
        assert!(msg.contains("names no Sigstore key"), "{msg}");
        let p = producer_policy(&format!(
            "{ROOT}[keys.s]\nsigstore = \"pg\"\nissuer = \"i\"\nsan = \"s\"\n[[artifact]]\npath = \"a/*\"\nkeys = [\"s\", \"k0\"]\npredicate_types = [\"https://slsa.dev/provenance/v1\"]\nslsa_builder_id = \"b\"\n"
        ))
        .unwrap();
        let r = &p.artifact_rules()[0];
        assert_eq!(r.producer_keys, ["s"]);
        assert_eq!(r.keys.len(), 1);
        assert_eq!(r.slsa_builder_id.as_deref(), Some("b"));
        // A producer key cannot sign bundles.
        let (_, msg) = line_of(
            parse(&with_fixtures(&format!(
                "version = 1\n{ROOT}[keys.s]\nsigstore = \"pg\"\nissuer = \"i\"\nsan = \"s\"\n[[channel]]\nname = \"*\"\nsigners = [\"s\"]\n"
            )))
            .unwrap_err(),
        );
        assert!(msg.contains("bundles are signed with signify or minisign keys"), "{msg}");
    }
}
