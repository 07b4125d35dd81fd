//! The policy file (docs/POLICY.md): TOML read into `Raw*` structs that keep every value's
//! position, then checked by a [`Parser`] whose errors name the line.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use globset::GlobBuilder;
use serde::Deserialize;
use toml::Spanned;

use super::{
    distinct_material, ArtifactRule, ChannelRule, NamedKey, Policy, PolicyError, Revocation, Trust, POLICY_VERSION,
};
use crate::clock;
use crate::error::{Error, Result};
use crate::format::manifest;
use crate::keys::{KeyId, PublicKey};

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

/// Checks policy text and builds the [`Policy`], naming the line of every problem.
pub(super) struct Parser<'a> {
    text: &'a str,
    base: &'a Path,
    origin: &'a str,
}

impl<'a> Parser<'a> {
    /// `base` resolves relative key file paths; `origin` names the text in errors.
    pub(super) fn new(text: &'a str, base: &'a Path, origin: &'a str) -> Parser<'a> {
        Parser { text, base, origin }
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

    /// Parses and checks the whole policy.
    pub(super) fn parse(&self) -> Result<Policy> {
        let raw: RawPolicy = toml::from_str(self.text)
            .map_err(|e| self.err_at_line(e.span().map_or(1, |s| self.line(s.start)), e.message().trim()))?;
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
                let t = clock::parse_time(&text).ok_or_else(|| {
                    self.err(s.span(), format!("since {text:?} is not a time such as 2026-10-01T00:00:00Z"))
                })?;
                Some(t)
            }
        };
        Ok(Revocation { key_id, reason: raw.reason.get_ref().clone(), since })
    }
}

#[cfg(test)]
mod tests {
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
    }
}
