//! OpenPGP and Sigstore verdicts turned into decisions and findings for the artifact rules
//! ([`ArtifactSink`](super::artifacts::ArtifactSink)), and the names of producer material.
//!
//! Decisions (docs/POLICY.md, "Producer keys"):
//! - OpenPGP: a good signature by a rule keyring counts unless its primary or signing key
//!   fingerprint is revoked (compared with the signature's creation time and the bundle's
//!   `created`); a bad one by a rule keyring (bad maths, SHA-1 data signature, key not valid
//!   when it signed, dated after the bundle) rejects; one by a key in no rule keyring is
//!   reported and never counts.
//! - Sigstore: every item of a material file of a covered artifact is verified against the
//!   trust roots of the covering rules' Sigstore keys, bound to the manifest's SHA-256 (and
//!   the streamed SHA-512) of the artifact. An item that verifies under none of them rejects
//!   (wrong artifact, broken proof, signed after the bundle), except one that cannot be
//!   verified offline (no transparency-log proof or timestamp), which is reported and never
//!   counts. A verified item counts for the rule keys whose identity it matches (and whose
//!   SAN is not revoked); with any other identity it is reported and never counts.

use std::collections::HashSet;

use crate::error::{Reject, Result};
use crate::io::digest::Digest;
use crate::keys::PublicKey;
use crate::policy::producer::{ProducerKeyKind, SigstoreKey};
use crate::policy::{ArtifactRule, Policy};
use crate::producer::openpgp::{Keyring, PgpCheck, PgpOutcome, PgpSigner};
use crate::producer::sigstore::{self, ArtifactDigests, Failure, Item, Verified};
use crate::producer::{time_words, Finding, Status, Times, TrustFile, SBOM_SUFFIXES};

/// What makes a rule hold.
#[derive(Clone, Debug)]
pub(super) enum Satisfier {
    /// A verified signify/minisign signature by this key.
    Signify(PublicKey),
    /// A verified OpenPGP signature or Sigstore item by this policy key.
    Named {
        key: String,
        /// The Sigstore instance it was verified against.
        instance: Option<String>,
        predicate_type: Option<String>,
        builder_id: Option<String>,
    },
}

impl Satisfier {
    /// Whether this makes `rule` hold: by one of its keys, and with the attestation it
    /// requires, if any.
    pub(super) fn satisfies(&self, rule: &ArtifactRule) -> bool {
        let attestation_required = !rule.predicate_types.is_empty() || rule.slsa_builder_id.is_some();
        match self {
            Satisfier::Signify(k) => !attestation_required && rule.keys.iter().any(|r| r.as_bytes() == k.as_bytes()),
            Satisfier::Named { key, predicate_type, builder_id, .. } => {
                rule.producer_keys.contains(key)
                    && (rule.predicate_types.is_empty()
                        || predicate_type.as_ref().is_some_and(|t| rule.predicate_types.contains(t)))
                    && rule.slsa_builder_id.as_ref().is_none_or(|want| builder_id.as_ref() == Some(want))
            }
        }
    }

    /// The policy names of the trust material it used (keys, `sigstore.<instance>`).
    pub(super) fn used(&self) -> Vec<String> {
        match self {
            Satisfier::Signify(_) => Vec::new(),
            Satisfier::Named { key, instance, .. } => {
                let mut out = vec![key.clone()];
                out.extend(instance.iter().map(|i| format!("sigstore.{i}")));
                out
            }
        }
    }
}

/// Findings about one piece of material, and what of it counts.
#[derive(Default)]
pub(super) struct Found {
    pub(super) findings: Vec<Finding>,
    pub(super) satisfied: Vec<Satisfier>,
}

/// A parsed Sigstore material file.
pub(super) struct Material {
    pub(super) path: String,
    items: Vec<Item>,
}

/// Whether a rule names an OpenPGP key.
pub(super) fn rule_has_openpgp(policy: &Policy, rule: &ArtifactRule) -> bool {
    rule.producer_keys
        .iter()
        .any(|n| matches!(policy.producer_key(n).map(|k| &k.kind), Some(ProducerKeyKind::OpenPgp(_))))
}

/// Whether a rule names a Sigstore key.
pub(super) fn rule_has_sigstore(policy: &Policy, rule: &ArtifactRule) -> bool {
    !sigstore_keys(policy, std::iter::once(rule)).is_empty()
}

fn sigstore_keys<'p>(
    policy: &'p Policy,
    rules: impl Iterator<Item = &'p ArtifactRule>,
) -> Vec<(&'p str, &'p SigstoreKey)> {
    let mut out: Vec<(&str, &SigstoreKey)> = Vec::new();
    for rule in rules {
        for name in &rule.producer_keys {
            if let Some(ProducerKeyKind::Sigstore(k)) = policy.producer_key(name).map(|k| &k.kind) {
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name, k));
                }
            }
        }
    }
    out
}

/// The keyrings of the OpenPGP keys the rules name, each under its policy name.
pub(super) fn keyrings_of<'p>(
    policy: &'p Policy,
    rules: impl Iterator<Item = &'p ArtifactRule>,
) -> Vec<(String, Keyring)> {
    let mut out: Vec<(String, Keyring)> = Vec::new();
    for rule in rules {
        for name in &rule.producer_keys {
            if let Some(ProducerKeyKind::OpenPgp(k)) = policy.producer_key(name).map(|k| &k.kind) {
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name.clone(), k.keyring.clone()));
                }
            }
        }
    }
    out
}

/// A piece of material of an artifact no rule covers (or no rule for which names a key of
/// its kind): carried, not checked.
pub(super) fn not_covered(artifact: &str, file: &str, kind: &'static str) -> Finding {
    Finding::new(artifact, Some(file), kind, Status::NotCovered)
        .detail("note", "carried, not checked: no rule for this file names a key of this kind")
}

/// The artifact an SBOM file sits beside, if `path` is one and the artifact is an entry.
pub(super) fn sbom_of<'p>(path: &str, paths: &HashSet<&'p str>) -> Option<&'p str> {
    SBOM_SUFFIXES.iter().find_map(|s| path.strip_suffix(s).and_then(|a| paths.get(a).copied()))
}

/// The artifact a Sigstore material file is for, by name, if it is an entry.
pub(super) fn material_artifact(path: &str, paths: &HashSet<&str>) -> Option<String> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, path),
    };
    let (artifact_name, _) = sigstore::material_for(name)?;
    let artifact = match dir {
        Some(d) => format!("{d}/{artifact_name}"),
        None => artifact_name.to_owned(),
    };
    (artifact != path && paths.contains(artifact.as_str())).then_some(artifact)
}

/// Parses a material file of `artifact`; a file that is not what its name says rejects.
pub(super) fn parse_material(artifact: &str, path: String, bytes: &[u8]) -> Result<Material> {
    let name = path.rsplit('/').next().unwrap_or(&path);
    let Some((_, kind)) = sigstore::material_for(name) else {
        return Err(reject(artifact, format!("{path} is not Sigstore material by its name")));
    };
    let items = sigstore::parse_material(kind, bytes)
        .map_err(|e| reject(artifact, format!("Sigstore material {path} is malformed: {e}")))?;
    Ok(Material { path, items })
}

fn reject(path: &str, problem: String) -> crate::error::Error {
    Reject::Artifact { path: path.to_owned(), problem }.into()
}

/// An OpenPGP signer's identity fields, for a finding.
pub(super) fn openpgp_details(mut f: Finding, s: &PgpSigner) -> Finding {
    f = f.signer(format!("{} (key {})", s.primary, s.keyring));
    if s.signing_key != s.primary {
        f = f.detail("signing subkey", s.signing_key.to_string());
    }
    if let Some(uid) = &s.user_id {
        f = f.detail("user id (unauthenticated)", uid.clone());
    }
    f = f.detail("signed", time_words(s.created)).detail("hash", s.hash.clone());
    f = f.detail("key expires", s.key_expires.map_or_else(|| "never".to_owned(), time_words));
    if s.sha1_binding {
        f = f.detail("SHA-1 binding", "needed (allow_sha1_bindings)");
    }
    f
}

/// Decides one OpenPGP signature file's verdicts for an artifact.
pub(super) fn judge_openpgp(
    policy: &Policy,
    artifact: &str,
    sig_path: &str,
    checks: &[PgpCheck],
    created: u64,
) -> Result<Found> {
    let mut found = Found::default();
    for check in checks {
        match &check.outcome {
            PgpOutcome::Good(s) => {
                let base = Finding::new(artifact, Some(sig_path), "openpgp", Status::Verified);
                if let Some(r) = policy.fingerprint_revocation(&[&s.primary, &s.signing_key], s.created, created) {
                    let mut f = openpgp_details(base, s).detail("reason", r.reason.clone());
                    f.status = Status::Revoked;
                    found.findings.push(f);
                    continue;
                }
                found.findings.push(openpgp_details(base, s));
                found.satisfied.push(Satisfier::Named {
                    key: s.keyring.clone(),
                    instance: None,
                    predicate_type: None,
                    builder_id: None,
                });
            }
            PgpOutcome::Bad { keyring, fingerprint, problem } => {
                if let Some(r) = policy.fingerprint_revocation(&[fingerprint], 0, created) {
                    found.findings.push(
                        Finding::new(artifact, Some(sig_path), "openpgp", Status::Revoked)
                            .signer(format!("{fingerprint} (key {keyring})"))
                            .detail("reason", r.reason.clone())
                            .detail("problem", problem.to_string()),
                    );
                    continue;
                }
                return Err(reject(
                    artifact,
                    format!("signature {sig_path} by OpenPGP key {fingerprint} (key {keyring}): {problem}"),
                ));
            }
            _ => found.findings.push(
                Finding::new(artifact, Some(sig_path), "openpgp", Status::OtherSigner)
                    .signer(check.issuer.clone())
                    .detail("note", "by a key in no keyring a rule for this file names; ignored"),
            ),
        }
    }
    Ok(found)
}

/// A verified Sigstore item's identity fields, for a finding.
fn sigstore_details(mut f: Finding, v: &Verified, instance: &str) -> Finding {
    f = f.detail("instance", instance).detail("bundle", v.bundle_version.clone());
    if v.managed_key {
        f = f.detail("signer", "managed key");
    }
    if let Some(san) = &v.san {
        f = f.detail("san", san.clone());
    }
    if let Some(iss) = &v.issuer {
        f = f.detail("issuer", iss.clone());
    }
    for (k, val) in &v.claims {
        f = f.detail(k, val.clone());
    }
    f = f.detail("signed", format!("{} ({})", time_words(v.time), v.time_source));
    if let Some(t) = &v.predicate_type {
        f = f.detail("predicate type", t.clone());
    }
    if let Some(b) = &v.builder_id {
        f = f.detail("builder id", b.clone());
    }
    if let Some(p) = &v.publisher {
        f = f.detail("publisher", p.clone());
    }
    for (name, digest) in &v.subjects {
        f = f.detail("subject", format!("{name} {digest}"));
    }
    f
}

/// Verifies every item of a material file of `artifact` and decides what counts.
#[allow(clippy::too_many_arguments)]
pub(super) fn judge_sigstore(
    policy: &Policy,
    rules: &[&ArtifactRule],
    artifact: &str,
    m: &Material,
    sha256: Digest,
    sha512: Option<[u8; 64]>,
    times: Times,
    created: u64,
) -> Result<Found> {
    let keys = sigstore_keys(policy, rules.iter().copied());
    let mut instances: Vec<&str> = Vec::new();
    for (_, k) in &keys {
        if !instances.contains(&k.instance.as_str()) {
            instances.push(&k.instance);
        }
    }
    let digests =
        ArtifactDigests { file_name: artifact.rsplit('/').next().unwrap_or(artifact).to_owned(), sha256, sha512 };
    let mut found = Found::default();
    for (n, item) in m.items.iter().enumerate() {
        let which = if m.items.len() > 1 { format!(" (item {} of {})", n + 1, m.items.len()) } else { String::new() };
        let mut failures: Vec<String> = Vec::new();
        let mut offline: Option<String> = None;
        let mut verified: Option<(&str, Verified)> = None;
        for &name in &instances {
            let Some(instance) = policy.sigstore_instance(name) else { continue };
            match sigstore::verify(item, &instance.root, &digests, times.not_after) {
                Ok(v) => {
                    verified = Some((name, v));
                    break;
                }
                Err(Failure::NotVerifiableOffline(why)) => offline = Some(why),
                Err(Failure::NeedsSha512) => failures.push(format!(
                    "[sigstore.{name}]: the item is bound to the artifact's SHA-512, which was not computed"
                )),
                Err(Failure::Bad(why)) => failures.push(format!("[sigstore.{name}]: {why}")),
            }
        }
        let Some((instance, v)) = verified else {
            if let Some(why) = offline {
                found.findings.push(
                    Finding::new(artifact, Some(&m.path), "sigstore", Status::NotVerifiableOffline)
                        .detail("item", format!("{}", n + 1))
                        .detail("why", why),
                );
                continue;
            }
            return Err(reject(
                artifact,
                format!(
                    "Sigstore material {}{which} does not verify for this artifact: {}",
                    m.path,
                    failures.join("; ")
                ),
            ));
        };
        let base = sigstore_details(Finding::new(artifact, Some(&m.path), "sigstore", Status::Verified), &v, instance);
        if let Some(r) = v.san.as_deref().and_then(|san| policy.san_revocation(san, v.time, created)) {
            let mut f = base.detail("reason", r.reason.clone());
            f.status = Status::Revoked;
            found.findings.push(f);
            continue;
        }
        let matching: Vec<&str> =
            keys.iter().filter(|(_, k)| k.instance == instance && k.signer.matches(&v)).map(|(n, _)| *n).collect();
        if matching.is_empty() {
            let mut f = base.detail("note", "an identity no rule for this file names; ignored");
            f.status = Status::OtherSigner;
            found.findings.push(f);
            continue;
        }
        found.findings.push(base.signer(matching.join(", ")));
        for key in matching {
            found.satisfied.push(Satisfier::Named {
                key: key.to_owned(),
                instance: Some(instance.to_owned()),
                predicate_type: v.predicate_type.clone(),
                builder_id: v.builder_id.clone(),
            });
        }
    }
    Ok(found)
}

/// What a rule asks for, in words: "a valid signature by key X" or "a verified attestation
/// of type T by one of X, Y".
pub(super) fn describe_rule_keys(policy: &Policy, rule: &ArtifactRule, label: impl Fn(&PublicKey) -> String) -> String {
    let mut names: Vec<String> = rule.keys.iter().map(label).collect();
    for n in &rule.producer_keys {
        let words = match policy.producer_key(n).map(|k| &k.kind) {
            Some(ProducerKeyKind::OpenPgp(k)) => {
                let fps: Vec<String> = k.keyring.certs().iter().map(|c| c.fingerprint.to_string()).collect();
                format!("{n} (OpenPGP {})", fps.join(", "))
            }
            Some(ProducerKeyKind::Sigstore(k)) => format!("{n} (Sigstore {})", k.signer.describe()),
            None => n.clone(),
        };
        names.push(words);
    }
    let whom = if names.len() > 1 { format!("one of {}", names.join(", ")) } else { format!("key {}", names.join("")) };
    if rule.predicate_types.is_empty() && rule.slsa_builder_id.is_none() {
        return format!("a valid signature by {whom}");
    }
    let mut what = String::from("a verified attestation");
    if !rule.predicate_types.is_empty() {
        what.push_str(&format!(" of predicate type {}", rule.predicate_types.join(" or ")));
    }
    if let Some(b) = &rule.slsa_builder_id {
        what.push_str(&format!(" with SLSA builder id {b:?}"));
    }
    format!("{what} by {whom}")
}

/// The trust files of the keys and instances named in `used`, each once.
pub(super) fn trust_files(policy: &Policy, used: &HashSet<String>) -> Vec<TrustFile> {
    let mut out: Vec<TrustFile> = Vec::new();
    let mut push = |f: &TrustFile| {
        if !out.iter().any(|o| o.stored_as == f.stored_as) {
            out.push(f.clone());
        }
    };
    for k in policy.producer_keys() {
        if let (true, ProducerKeyKind::OpenPgp(o)) = (used.contains(&k.name), &k.kind) {
            push(&o.file);
        }
    }
    for i in policy.sigstore_instances() {
        if used.contains(&format!("sigstore.{}", i.name)) {
            push(&i.file);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::{material_artifact, sbom_of, Satisfier};
    use crate::keys::SecretKey;
    use crate::policy::Policy;

    const PROVENANCE: &str = "https://slsa.dev/provenance/v1";

    fn policy(rule_extra: &str) -> (Policy, crate::keys::PublicKey) {
        let key = SecretKey::generate("k").public_key();
        let b64 = key.to_file_string().lines().nth(1).unwrap_or_default().to_owned();
        let text = format!(
            "version = 1\n[keys.k0]\npublic_key = \"{b64}\"\n[sigstore.pg]\ntrusted_root = \"fixtures/producer/sigstore/roots/public-good.json\"\n[keys.s]\nsigstore = \"pg\"\nissuer = \"i\"\nsan = \"s\"\n[[channel]]\nname = \"*\"\nsigners = [\"k0\"]\n[[artifact]]\npath = \"a/*\"\nkeys = [\"s\", \"k0\"]\n{rule_extra}"
        );
        (Policy::parse(&text, Path::new("."), "p.toml").unwrap(), key)
    }

    fn named(key: &str, predicate: Option<&str>, builder: Option<&str>) -> Satisfier {
        Satisfier::Named {
            key: key.to_owned(),
            instance: Some("pg".to_owned()),
            predicate_type: predicate.map(str::to_owned),
            builder_id: builder.map(str::to_owned),
        }
    }

    #[test]
    fn any_rule_key_satisfies_a_rule_without_attestation_requirements() {
        let (p, k0) = policy("");
        let rule = &p.artifact_rules()[0];
        assert!(Satisfier::Signify(k0).satisfies(rule));
        assert!(named("s", None, None).satisfies(rule));
        assert!(!named("other", None, None).satisfies(rule));
        assert!(!Satisfier::Signify(SecretKey::generate("x").public_key()).satisfies(rule));
        assert_eq!(named("s", None, None).used(), ["s", "sigstore.pg"]);
    }

    #[test]
    fn an_attestation_rule_needs_the_predicate_type_and_builder_it_names() {
        let (p, k0) = policy(&format!("predicate_types = [\"{PROVENANCE}\"]\nslsa_builder_id = \"b\"\n"));
        let rule = &p.artifact_rules()[0];
        assert!(named("s", Some(PROVENANCE), Some("b")).satisfies(rule));
        assert!(!named("s", Some(PROVENANCE), Some("other")).satisfies(rule));
        assert!(!named("s", Some(PROVENANCE), None).satisfies(rule));
        assert!(!named("s", Some("https://spdx.dev/Document"), Some("b")).satisfies(rule));
        // A plain signature is not an attestation.
        assert!(!named("s", None, None).satisfies(rule));
        assert!(!Satisfier::Signify(k0).satisfies(rule));
    }

    #[test]
    fn material_and_sboms_are_found_beside_their_artifact_by_name() {
        let paths: HashSet<&str> =
            ["npm/x.tgz", "npm/x.tgz.sigstore.json", "npm/x.tgz.cdx.json", "y.sigstore.json", "z.whl"].into();
        assert_eq!(material_artifact("npm/x.tgz.sigstore.json", &paths).as_deref(), Some("npm/x.tgz"));
        assert_eq!(material_artifact("y.sigstore.json", &paths), None, "no artifact y");
        assert_eq!(material_artifact("z.whl.publish.attestation", &paths).as_deref(), Some("z.whl"));
        assert_eq!(material_artifact("npm/x.tgz", &paths), None);
        assert_eq!(sbom_of("npm/x.tgz.cdx.json", &paths), Some("npm/x.tgz"));
        assert_eq!(sbom_of("npm/y.cdx.json", &paths), None);
    }
}
