//! A Sigstore instance's trust root (`trusted_root.json`), prepared once for verification.

use std::sync::Arc;

use sigstore_trust_root::TrustedRoot;
use sigstore_types::TimeRange;
use sigstore_verify::Verifier;

use super::SigstoreError;

/// What an instance's bundles must prove beyond the signature and the certificate chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceOptions {
    /// Require the transparency-log inclusion proof / checkpoint (false only for instances
    /// without a log, such as GitHub's private-repository attestations; a verified signing
    /// time, from a SET or an RFC 3161 timestamp, is required either way).
    pub transparency_log: bool,
    /// Require the certificate's embedded SCT (false for GitHub's private instance).
    pub sct: bool,
}

impl Default for InstanceOptions {
    fn default() -> Self {
        InstanceOptions { transparency_log: true, sct: true }
    }
}

/// A parsed, validated trust root: its authorities' keys and certificates are checked once
/// here, not per bundle.
#[derive(Clone)]
pub struct TrustRoot {
    pub(super) root: Arc<TrustedRoot>,
    pub(super) verifier: Arc<Verifier>,
    pub(super) options: InstanceOptions,
}

impl std::fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustRoot").field("authorities", &self.authorities()).field("options", &self.options).finish()
    }
}

/// What kind of authority a trust root lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthorityKind {
    /// A Fulcio certificate authority (issues the signing certificates).
    Fulcio,
    /// A Rekor transparency log.
    Rekor,
    /// A certificate-transparency log (signs the SCTs in Fulcio certificates).
    CtLog,
    /// An RFC 3161 timestamp authority.
    Tsa,
}

impl std::fmt::Display for AuthorityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthorityKind::Fulcio => "Fulcio CA",
            AuthorityKind::Rekor => "Rekor log",
            AuthorityKind::CtLog => "CT log",
            AuthorityKind::Tsa => "timestamp authority",
        })
    }
}

/// One authority of a trust root and the window in which the root trusts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    /// Which kind.
    pub kind: AuthorityKind,
    /// Its URL (and, for logs, the log ID in hex).
    pub name: String,
    /// Trusted from (Unix seconds).
    pub valid_from: Option<u64>,
    /// Trusted until (Unix seconds, inclusive); `None`: no end yet.
    pub valid_until: Option<u64>,
}

/// Unix seconds from a timestamp's `as_second()` (times before 1970 count as 0).
pub(super) fn unix(seconds: i64) -> u64 {
    u64::try_from(seconds).unwrap_or(0)
}

fn authority(kind: AuthorityKind, name: String, window: Option<TimeRange>) -> Authority {
    Authority {
        kind,
        name,
        valid_from: window.map(|w| unix(w.start.as_second())),
        valid_until: window.and_then(|w| w.end).map(|end| unix(end.as_second())),
    }
}

fn log_name(url: &str, key_id: &[u8]) -> String {
    format!("{url} (log ID {})", crate::io::digest::hex(key_id))
}

impl TrustRoot {
    /// A `trusted_root.json` (cosign trusted-root create / gh attestation trusted-root output).
    pub fn parse(json: &[u8], options: InstanceOptions) -> Result<TrustRoot, SigstoreError> {
        super::crypto::install();
        let invalid = |problem: String| SigstoreError::TrustRoot { problem };
        let text = std::str::from_utf8(json).map_err(|_| invalid("it is not UTF-8 text".into()))?;
        let root = TrustedRoot::from_json(text).map_err(|e| invalid(e.to_string()))?;
        let verifier = Verifier::new(&root).map_err(|e| invalid(e.to_string()))?;
        Ok(TrustRoot { root: Arc::new(root), verifier: Arc::new(verifier), options })
    }

    /// The instance options this root was loaded with.
    pub fn options(&self) -> InstanceOptions {
        self.options
    }

    /// Every authority, for `policy check`.
    pub fn authorities(&self) -> Vec<Authority> {
        let root = &self.root;
        let fulcio = root
            .certificate_authorities
            .iter()
            .map(|ca| authority(AuthorityKind::Fulcio, ca.uri.clone(), ca.valid_for));
        let rekor = root.tlogs.iter().map(|log| {
            authority(
                AuthorityKind::Rekor,
                log_name(&log.base_url, log.log_id.key_id.as_bytes()),
                log.public_key.valid_for,
            )
        });
        let ct = root.ctlogs.iter().map(|log| {
            authority(
                AuthorityKind::CtLog,
                log_name(&log.base_url, log.log_id.key_id.as_bytes()),
                log.public_key.valid_for,
            )
        });
        let tsa = root.timestamp_authorities.iter().map(|tsa| {
            let name =
                tsa.uri.clone().or_else(|| tsa.subject.common_name.clone()).unwrap_or_else(|| "(unnamed)".into());
            authority(AuthorityKind::Tsa, name, tsa.valid_for)
        });
        fulcio.chain(rekor).chain(ct).chain(tsa).collect()
    }

    /// The Rekor log with this key ID, by URL, for reports.
    pub(super) fn log_url(&self, key_id: &[u8]) -> Option<&str> {
        self.root.tlogs.iter().find(|log| log.log_id.key_id.as_bytes() == key_id).map(|log| log.base_url.as_str())
    }

    /// A timestamp authority trusted at `time`, by URL, for reports.
    pub(super) fn tsa_at(&self, time: u64) -> Option<String> {
        self.authorities()
            .into_iter()
            .filter(|a| a.kind == AuthorityKind::Tsa)
            .find(|a| a.valid_from.is_none_or(|from| from <= time) && a.valid_until.is_none_or(|until| time <= until))
            .map(|a| a.name)
    }
}
