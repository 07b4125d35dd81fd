//! `airlock policy`.

use super::*;
use airlock::policy::producer::{ProducerKeyKind, Revoked, Uncovered, ValidUntil};

#[derive(Subcommand, Debug)]
pub(super) enum PolicyCommand {
    /// Validate a policy file and print what it allows, in words.
    Check {
        /// The policy file.
        #[arg(value_name = "POLICY.toml")]
        policy: PathBuf,
        /// Print JSON to stdout (docs/JSON.md) instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn policy_check(path: &Path, json: bool) -> Result<u8> {
    // With --json the problems go into the error document (one message) instead of lines.
    let policy = Policy::load(path).map_err(|e| if json { Failure::from(e) } else { list_problems(e) })?;
    if json {
        out::document(schema::POLICY_CHECK, true, policy_json(path, &policy))?;
        return Ok(EXIT_OK);
    }
    say!("{}: valid policy (version {})", path.display(), airlock::policy::POLICY_VERSION)?;
    for line in describe(&policy) {
        say!("{line}")?;
    }
    Ok(EXIT_OK)
}

/// A policy file with several problems: each on its own stderr line (`file:line: problem`,
/// as an editor jumps to), then one line that sums them up.
fn list_problems(e: Error) -> Failure {
    let Error::Policy(many @ airlock::policy::PolicyError::Many { .. }) = &e else { return e.into() };
    let problems = many.problems();
    for (origin, line, problem) in &problems {
        out::error_line(&format!("{origin}:{line}: {problem}"));
    }
    Failure::Usage(format!(
        "{} problems in this policy, each listed above; it is used only once all are fixed",
        problems.len()
    ))
}

/// `policy check --json`'s body (docs/JSON.md): what the policy allows, as values.
fn policy_json(path: &Path, policy: &Policy) -> serde_json::Value {
    let key_ref = |k: &PublicKey| serde_json::json!({"key_id": k.key_id().to_string(), "name": policy.name_of(k).filter(|n| *n != k.key_id().to_string())});
    let keys: Vec<serde_json::Value> = policy
        .keys()
        .iter()
        .map(|k| {
            serde_json::json!({
                "name": k.name,
                "key_id": k.key.key_id().to_string(),
                "minisign_id": airlock::keys::minisign::minisign_key_id(k.key.key_id()).to_string(),
                "origin": k.origin,
            })
        })
        .collect();
    let producer_keys: Vec<serde_json::Value> = policy
        .producer_keys()
        .iter()
        .map(|k| {
            let kind = match &k.kind {
                ProducerKeyKind::OpenPgp(_) => "openpgp",
                ProducerKeyKind::Sigstore(_) => "sigstore",
            };
            serde_json::json!({"name": k.name, "kind": kind})
        })
        .collect();
    let channels: Vec<serde_json::Value> = policy
        .channels()
        .iter()
        .map(|c| {
            serde_json::json!({
                "channel": c.channel,
                "threshold": c.trust.threshold(),
                "distinct_keys": c.trust.distinct_keys(),
                "keys": c.trust.keys().iter().map(key_ref).collect::<Vec<_>>(),
            })
        })
        .collect();
    let revoked: Vec<serde_json::Value> = policy
        .revoked()
        .iter()
        .map(|r| {
            let kind = match &r.key {
                Revoked::KeyId(_) => "key_id",
                Revoked::Fingerprint(_) => "fingerprint",
                Revoked::San(_) => "san",
            };
            serde_json::json!({"kind": kind, "key": r.key.to_string(), "since": r.since.map(clock::format), "message": r.reason})
        })
        .collect();
    let artifacts: Vec<serde_json::Value> = policy
        .artifact_rules()
        .iter()
        .map(|r| {
            serde_json::json!({
                "pattern": r.pattern,
                "keys": r.keys.iter().map(key_ref).collect::<Vec<_>>(),
                "producer_keys": r.producer_keys,
                "required": r.required,
                "allow_legacy": r.allow_legacy,
                "predicate_types": r.predicate_types,
                "slsa_builder_id": r.slsa_builder_id,
            })
        })
        .collect();
    let repositories: Vec<serde_json::Value> = policy
        .repositories()
        .iter()
        .map(|r| {
            serde_json::json!({
                "root": r.root,
                "suites": r.suites,
                "keys": r.keys,
                "uncovered": match r.uncovered { Uncovered::Reject => "reject", Uncovered::Report => "report" },
                "valid_until": match r.valid_until {
                    ValidUntil::Enforce => "enforce",
                    ValidUntil::Report => "report",
                    ValidUntil::Ignore => "ignore",
                },
            })
        })
        .collect();
    let sigstore: Vec<serde_json::Value> = policy
        .sigstore_instances()
        .iter()
        .map(|i| {
            serde_json::json!({
                "name": i.name,
                "trusted_root": i.file.origin,
                "transparency_log": i.options.transparency_log,
                "sct": i.options.sct,
            })
        })
        .collect();
    serde_json::json!({
        "policy": out::path(path),
        "version": airlock::policy::POLICY_VERSION,
        "keys": keys,
        "producer_keys": producer_keys,
        "channels": channels,
        "other_channels_refused": !policy.channels().iter().any(|c| c.channel == "*"),
        "revoked": revoked,
        "max_age_seconds": policy.max_age(),
        "artifacts": artifacts,
        "repositories": repositories,
        "sigstore_instances": sigstore,
    })
}

/// What the policy allows, in words, one line per statement.
fn describe(policy: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let name = |k: &PublicKey| match policy.name_of(k) {
        Some(n) if n != k.key_id().to_string() => format!("{n} ({})", k.key_id()),
        _ => k.key_id().to_string(),
    };
    out.push(format!("Keys ({}):", policy.keys().len() + policy.producer_keys().len()));
    for k in policy.keys() {
        out.push(format!(
            "  {}: key id {} (minisign {}), from {}",
            k.name,
            k.key.key_id(),
            airlock::keys::minisign::minisign_key_id(k.key.key_id()),
            k.origin
        ));
    }
    describe_producer_keys(policy, &mut out);
    out.push("Bundles:".into());
    for c in policy.channels() {
        let keys: Vec<String> = c.trust.keys().iter().map(name).collect();
        let which = if c.channel == "*" { "any other channel".to_owned() } else { format!("channel {:?}", c.channel) };
        out.push(format!(
            "  {which}: accepted when signed by at least {} of these {} distinct key(s): {}",
            c.trust.threshold(),
            c.trust.distinct_keys(),
            keys.join(", ")
        ));
    }
    if !policy.channels().iter().any(|c| c.channel == "*") {
        out.push("  any other channel: refused".into());
    }
    if policy.revoked().is_empty() {
        out.push("Revoked keys: none".into());
    } else {
        out.push("Revoked keys:".into());
        for r in policy.revoked() {
            let when = match (r.since, &r.key) {
                (None, _) => "its signatures never count".to_owned(),
                (Some(t), Revoked::Fingerprint(_) | Revoked::San(_)) => format!(
                    "its signatures made at or after {0}, or carried by bundles created at or after {0}, do not count",
                    clock::format(t)
                ),
                (Some(t), Revoked::KeyId(_)) => format!(
                    "its signatures do not count on bundles created at or after {} (earlier bundles still count)",
                    clock::format(t)
                ),
            };
            let named = match &r.key {
                Revoked::KeyId(id) => policy.name_of_id(*id).map_or(String::new(), |n| format!(" ({n})")),
                _ => String::new(),
            };
            out.push(format!("  {}{named}: {when}; reason: {}", r.key, r.reason));
        }
    }
    match policy.max_age() {
        None => out.push("Age: no limit beyond each bundle's own expiry".into()),
        Some(a) => out.push(format!(
            "Age: bundles created more than {} before the import are refused",
            humantime::format_duration(std::time::Duration::from_secs(a))
        )),
    }
    if policy.artifact_rules().is_empty() {
        out.push("Artifacts: no rules; detached signatures are carried but not checked".into());
    } else {
        out.push("Artifacts (every matching rule must hold):".into());
        for r in policy.artifact_rules() {
            let mut keys: Vec<String> = r.keys.iter().map(name).collect();
            keys.extend(r.producer_keys.iter().cloned());
            let mut kinds = Vec::new();
            if !r.keys.is_empty() {
                kinds.push(format!(
                    "signify .sig, signify .sha256.sig checksum, minisign .minisig{}",
                    if r.allow_legacy { " prehashed or legacy" } else { " prehashed only" }
                ));
            }
            for n in &r.producer_keys {
                let kind = match policy.producer_key(n).map(|k| &k.kind) {
                    Some(ProducerKeyKind::OpenPgp(_)) => "OpenPGP .asc/.sig",
                    _ => "Sigstore bundle or attestation found by name (X.sigstore.json, X.intoto.jsonl, X.publish.attestation, ...)",
                };
                if !kinds.iter().any(|k| k == kind) {
                    kinds.push(kind.to_owned());
                }
            }
            let mut what = format!(
                "a valid signature by {}{} ({})",
                if keys.len() > 1 { "one of " } else { "" },
                keys.join(", "),
                kinds.join("; ")
            );
            if !r.predicate_types.is_empty() || r.slsa_builder_id.is_some() {
                what = format!(
                    "a verified attestation{}{} by {}{}",
                    if r.predicate_types.is_empty() {
                        String::new()
                    } else {
                        format!(" of predicate type {}", r.predicate_types.join(" or "))
                    },
                    r.slsa_builder_id.as_ref().map_or(String::new(), |b| format!(" with SLSA builder id {b:?}")),
                    if keys.len() > 1 { "one of " } else { "" },
                    keys.join(", ")
                );
            }
            out.push(format!(
                "  files matching {:?} must carry {what}; {}",
                r.pattern,
                if r.required {
                    "a file without one is rejected"
                } else {
                    "a file without one is accepted and reported; a bad signature is still rejected"
                }
            ));
        }
    }
    describe_repositories(policy, &mut out);
    out
}

/// OpenPGP keys (fingerprints, expiry), Sigstore identities, and the trust roots' authorities
/// with their validity windows.
fn describe_producer_keys(policy: &Policy, out: &mut Vec<String>) {
    let time = |t: Option<u64>, none: &str| t.map_or_else(|| none.to_owned(), clock::format);
    for k in policy.producer_keys() {
        match &k.kind {
            ProducerKeyKind::OpenPgp(o) => {
                out.push(format!(
                    "  {}: OpenPGP keyring {}{}{}",
                    k.name,
                    o.file.origin,
                    if o.fingerprints.is_empty() {
                        String::new()
                    } else {
                        " (narrowed to the listed fingerprints)".to_owned()
                    },
                    if o.allow_sha1_bindings {
                        "; SHA-1 binding signatures accepted (never SHA-1 data signatures)"
                    } else {
                        ""
                    }
                ));
                for c in o.keyring.certs() {
                    let uid = c.user_ids.first().map_or(String::new(), |u| format!(" {:?} (unauthenticated)", u));
                    out.push(format!(
                        "    {}{uid}: created {}, expires {}{}{}",
                        c.fingerprint,
                        clock::format(c.created),
                        time(c.expires, "never"),
                        if c.revoked { "; REVOKED" } else { "" },
                        if c.needs_sha1_bindings { "; needs SHA-1 bindings" } else { "" }
                    ));
                }
            }
            ProducerKeyKind::Sigstore(s) => {
                out.push(format!("  {}: [sigstore.{}] {}", k.name, s.instance, s.signer.describe()));
            }
        }
    }
    for i in policy.sigstore_instances() {
        out.push(format!(
            "  [sigstore.{}]: trusted root {} (transparency log {}, SCTs {})",
            i.name,
            i.file.origin,
            if i.options.transparency_log { "required" } else { "not required: a verified timestamp is" },
            if i.options.sct { "required" } else { "not required" }
        ));
        for a in i.root.authorities() {
            out.push(format!(
                "    {} {}: valid from {} until {}",
                a.kind,
                a.name,
                time(a.valid_from, "the start"),
                time(a.valid_until, "now (no end)")
            ));
        }
    }
}

/// Each Debian repository rule, in words.
fn describe_repositories(policy: &Policy, out: &mut Vec<String>) {
    if policy.repositories().is_empty() {
        return;
    }
    out.push("Repositories:".into());
    for r in policy.repositories() {
        let root = if r.root.is_empty() { "the bundle's top".to_owned() } else { format!("{:?}", r.root) };
        out.push(format!(
            "  Debian tree {root}, suites {}: each suite's InRelease (or Release + Release.gpg) must be signed by {}; every file under dists/<suite>/ must match its SHA256 line; every pool file must be listed by a verified index with its size and SHA-256 ({}); Valid-Until: {}",
            r.suites.join(", "),
            r.keys.join(" or "),
            match r.uncovered {
                Uncovered::Reject => "a pool file no index lists is rejected",
                Uncovered::Report => "a pool file no index lists is carried and reported",
            },
            match r.valid_until {
                ValidUntil::Enforce => "an expired release file is rejected",
                ValidUntil::Report => "an expired release file is reported",
                ValidUntil::Ignore => "not checked",
            }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_every_part_of_a_policy() {
        let key = SecretKey::generate("k").public_key();
        let b64 = key.to_file_string().lines().nth(1).unwrap().to_owned();
        let text = format!(
            "version = 1\n[keys.ops]\npublic_key = \"{b64}\"\n[[channel]]\nname = \"stable\"\nsigners = [\"ops\"]\n[[revoked]]\nkey_id = \"0102030405060708\"\nreason = \"lost\"\nsince = 2026-01-01\n[[artifact]]\npath = \"vendor-x/*\"\nkeys = [\"ops\"]\n"
        );
        let policy = Policy::parse(&text, Path::new("."), "p.toml").unwrap();
        let lines = describe(&policy);
        let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
        assert!(has(&format!("ops: key id {}", key.key_id())), "{lines:#?}");
        assert!(has("channel \"stable\": accepted when signed by at least 1 of these 1 distinct key(s)"));
        assert!(has("any other channel: refused"));
        assert!(has("bundles created at or after 2026-01-01T00:00:00Z"));
        assert!(has("vendor-x/*"));
    }
}
