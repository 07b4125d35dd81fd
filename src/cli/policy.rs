//! `airlock policy`.

use super::*;
use airlock::policy::producer::Revoked;

#[derive(Subcommand, Debug)]
pub(super) enum PolicyCommand {
    /// Validate a policy file and print what it allows, in words.
    Check {
        /// The policy file.
        #[arg(value_name = "POLICY.toml")]
        policy: PathBuf,
    },
}

pub(super) fn policy_check(path: &Path) -> Result<u8> {
    let policy = Policy::load(path)?;
    say!("{}: valid policy (version {})", path.display(), airlock::policy::POLICY_VERSION)?;
    for line in describe(&policy) {
        say!("{line}")?;
    }
    Ok(EXIT_OK)
}

/// What the policy allows, in words, one line per statement.
fn describe(policy: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let name = |k: &PublicKey| match policy.name_of(k) {
        Some(n) if n != k.key_id().to_string() => format!("{n} ({})", k.key_id()),
        _ => k.key_id().to_string(),
    };
    out.push(format!("Keys ({}):", policy.keys().len()));
    for k in policy.keys() {
        out.push(format!(
            "  {}: key id {} (minisign {}), from {}",
            k.name,
            k.key.key_id(),
            airlock::keys::minisign::minisign_key_id(k.key.key_id()),
            k.origin
        ));
    }
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
            let when = match r.since {
                None => "its signatures never count".to_owned(),
                Some(t) => format!(
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
