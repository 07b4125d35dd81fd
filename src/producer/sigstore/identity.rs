//! Who may have signed: a keyless identity (OIDC issuer, certificate SAN, Fulcio claims, or a
//! PyPI Trusted Publisher) or a managed public key, and whether a verified bundle's signer is
//! that one.

use sha2::{Digest as _, Sha256};
use sigstore_types::DerPublicKey;

use super::{SigstoreError, Verified};
use crate::io::digest::hex;

/// The OIDC issuer of GitHub Actions workload identities.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Upper bound on a compiled identity pattern (bytes of automaton), so a policy cannot make
/// the verifier build an enormous regex.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// An identity pattern: always matched against the WHOLE SAN (anchored), never a substring.
#[derive(Clone, Debug)]
pub enum SanMatch {
    /// The SAN equals this text.
    Exact(String),
    /// The SAN matches this regular expression from its first to its last character.
    Pattern {
        /// The pattern as the policy wrote it (without the anchors airlock adds).
        text: String,
        /// `^(?:text)$`, compiled.
        regex: regex::Regex,
    },
}

impl SanMatch {
    /// Compiles `text` as `^(?:text)$`: a pattern always describes the whole SAN, so
    /// `https://github\.com/org/repo/.*` cannot match `https://evil.example/?https://github.com/org/repo/`.
    pub fn pattern(text: &str) -> Result<SanMatch, SigstoreError> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{text})$"))
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| SigstoreError::Pattern { pattern: text.to_owned(), problem: e.to_string() })?;
        Ok(SanMatch::Pattern { text: text.to_owned(), regex })
    }

    /// Whether `san` is this identity.
    pub fn matches(&self, san: &str) -> bool {
        match self {
            SanMatch::Exact(expected) => san == expected,
            SanMatch::Pattern { regex, .. } => regex.is_match(san),
        }
    }
}

impl std::fmt::Display for SanMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SanMatch::Exact(san) => write!(f, "SAN {san}"),
            SanMatch::Pattern { text, .. } => write!(f, "SAN matching ^(?:{text})$"),
        }
    }
}

/// A PyPI Trusted Publisher on GitHub, as pypi-attestations checks it: the certificate's
/// source repository is `https://github.com/{repository}` and its build configuration is
/// `https://github.com/{repository}/.github/workflows/{workflow}@<ref>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GithubPublisher {
    /// `owner/name`.
    pub repository: String,
    /// The workflow file name, e.g. `release.yml`.
    pub workflow: String,
    /// The deployment environment the workflow must have run in; `None` (or empty): any.
    pub environment: Option<String>,
}

impl GithubPublisher {
    fn matches(&self, v: &Verified) -> bool {
        let repository = format!("https://github.com/{}", self.repository);
        let workflow_prefix = format!("{repository}/.github/workflows/{}@", self.workflow);
        let claim = |name: &str| v.claims.get(name).map(String::as_str);
        let environment_ok = match self.environment.as_deref() {
            None | Some("") => true,
            Some(wanted) => claim("deployment_environment") == Some(wanted),
        };
        v.issuer.as_deref() == Some(GITHUB_ISSUER)
            && claim("source_repository_uri") == Some(repository.as_str())
            && claim("build_config_uri").is_some_and(|uri| uri.starts_with(&workflow_prefix))
            && environment_ok
    }
}

/// A keyless signer: who the Fulcio certificate must name.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The OIDC issuer, exact. May be empty only together with `github_publisher`, which
    /// implies GitHub's issuer.
    pub issuer: String,
    /// The certificate SAN.
    pub san: Option<SanMatch>,
    /// The Fulcio source-repository claim (`1.3.6.1.4.1.57264.1.12`), exact.
    pub source_repository: Option<String>,
    /// The Fulcio source-repository-ref claim (`1.3.6.1.4.1.57264.1.14`), exact.
    pub source_ref: Option<String>,
    /// The PyPI Trusted Publisher form.
    pub github_publisher: Option<GithubPublisher>,
}

impl Identity {
    fn matches(&self, v: &Verified) -> bool {
        // "Any identity" is never a policy: without a SAN or a publisher nothing is pinned.
        if v.managed_key || (self.san.is_none() && self.github_publisher.is_none()) {
            return false;
        }
        let issuer_ok = match (self.issuer.as_str(), &self.github_publisher) {
            ("", Some(_)) => v.issuer.as_deref() == Some(GITHUB_ISSUER),
            (issuer, _) => v.issuer.as_deref() == Some(issuer),
        };
        let claim = |name: &str| v.claims.get(name).map(String::as_str);
        issuer_ok
            && self.san.as_ref().is_none_or(|m| v.san.as_deref().is_some_and(|san| m.matches(san)))
            && self.source_repository.as_deref().is_none_or(|r| claim("source_repository_uri") == Some(r))
            && self.source_ref.as_deref().is_none_or(|r| claim("source_repository_ref") == Some(r))
            && self.github_publisher.as_ref().is_none_or(|p| p.matches(v))
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.issuer.is_empty() {
            parts.push(format!("issuer {}", self.issuer));
        }
        if let Some(san) = &self.san {
            parts.push(san.to_string());
        }
        if let Some(repository) = &self.source_repository {
            parts.push(format!("source repository {repository}"));
        }
        if let Some(source_ref) = &self.source_ref {
            parts.push(format!("source ref {source_ref}"));
        }
        if let Some(p) = &self.github_publisher {
            let environment = match p.environment.as_deref() {
                None | Some("") => String::new(),
                Some(e) => format!(", environment {e}"),
            };
            parts.push(format!("GitHub Trusted Publisher {} workflow {}{environment}", p.repository, p.workflow));
        }
        format!("Sigstore identity: {}", parts.join(", "))
    }
}

/// A managed (non-Fulcio) public key a bundle may be signed with, e.g. `cosign sign-blob --key`.
#[derive(Clone, Debug)]
pub struct ManagedKey {
    der: DerPublicKey,
    fingerprint: String,
}

impl ManagedKey {
    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `cosign generate-key-pair` writes it.
    pub fn parse_pem(pem: &[u8]) -> Result<ManagedKey, SigstoreError> {
        super::crypto::install();
        let text = std::str::from_utf8(pem).map_err(|_| SigstoreError::KeyPem { problem: "not UTF-8 text".into() })?;
        let der = DerPublicKey::from_pem(text).map_err(|e| SigstoreError::KeyPem { problem: e.to_string() })?;
        sigstore_crypto::VerificationKey::from_spki(&der)
            .map_err(|e| SigstoreError::KeyPem { problem: e.to_string() })?;
        Ok(ManagedKey::from_der(der))
    }

    pub(super) fn from_der(der: DerPublicKey) -> ManagedKey {
        let fingerprint = key_fingerprint(&der);
        ManagedKey { der, fingerprint }
    }

    /// The key as PEM, e.g. to keep beside the mirror for `cosign verify-blob --key`.
    pub fn to_pem(&self) -> String {
        self.der.to_pem()
    }

    /// `sha256:<hex>` of the key's SubjectPublicKeyInfo DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// `sha256:<hex>` of a SubjectPublicKeyInfo DER.
pub(super) fn key_fingerprint(der: &DerPublicKey) -> String {
    format!("sha256:{}", hex(&Sha256::digest(der.as_bytes())))
}

/// Who a policy accepts as the signer of a Sigstore bundle.
#[derive(Clone, Debug)]
pub enum Signer {
    /// A keyless (Fulcio certificate) signer.
    Identity(Identity),
    /// A managed public key.
    Key(ManagedKey),
}

impl Signer {
    /// Whether `v` (a bundle that verified) was signed by this signer.
    pub fn matches(&self, v: &Verified) -> bool {
        match self {
            Signer::Identity(identity) => identity.matches(v),
            Signer::Key(key) => v.managed_key && v.key_fingerprint.as_deref() == Some(key.fingerprint()),
        }
    }

    /// The signer in words, for `policy check` and reports.
    pub fn describe(&self) -> String {
        match self {
            Signer::Identity(identity) => identity.describe(),
            Signer::Key(key) => format!("Sigstore managed key {}", key.fingerprint()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_only_the_whole_san() {
        let m =
            SanMatch::pattern(r"https://github\.com/org/repo/\.github/workflows/release\.yml@refs/tags/v.*").unwrap();
        assert!(m.matches("https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1.2"));
        // A longer SAN that merely contains a match is not the identity.
        assert!(
            !m.matches("https://evil.example/https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1")
        );
        // An alternation is anchored as a whole, not just its first and last branch.
        let m = SanMatch::pattern("a|b").unwrap();
        assert!(m.matches("a") && m.matches("b"));
        assert!(!m.matches("ab") && !m.matches("xa") && !m.matches("bx"));
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_it() {
        let err = SanMatch::pattern("(unclosed").unwrap_err();
        assert!(err.to_string().contains("(unclosed"), "{err}");
    }

    #[test]
    fn exact_is_not_a_pattern() {
        let m = SanMatch::Exact("a.b".into());
        assert!(m.matches("a.b"));
        assert!(!m.matches("axb"));
    }
}
