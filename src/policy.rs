//! Trust policy: which keys may vouch for a bundle, and how many must.
//!
//! Keys are matched by their full 32-byte Ed25519 public key, never by key id alone (key ids
//! are 8 random, unauthenticated bytes that anyone can copy into a new key), and a threshold
//! counts distinct keys, so one key cannot sign twice to meet it.

use crate::error::{Error, Reject, Result};
use crate::keys::{KeyId, PublicKey, Signature};

/// The set of keys trusted to sign bundles, and how many distinct ones must.
#[derive(Clone)]
pub struct Trust {
    keys: Vec<PublicKey>,
    threshold: usize,
}

/// What became of one manifest signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureStatus {
    /// Made by a trusted key and valid.
    Valid,
    /// Made by a key that is not trusted (not checked).
    Unknown,
}

/// The outcome of checking a manifest's signatures.
#[derive(Clone)]
pub struct TrustReport {
    /// Each signature's key id and status, in member order.
    pub signatures: Vec<(KeyId, SignatureStatus)>,
    /// Distinct trusted keys whose signatures are valid.
    pub valid_signers: Vec<PublicKey>,
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
        if unique.len() < threshold {
            return Err(Error::Usage(format!(
                "threshold {threshold} cannot be met by {} trusted key(s)",
                unique.len()
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
        let mut report = TrustReport { signatures: Vec::new(), valid_signers: Vec::new() };
        for sig in signatures {
            let Some(key) = self.key(sig.key_id()) else {
                report.signatures.push((sig.key_id(), SignatureStatus::Unknown));
                continue;
            };
            key.verify(message, sig)
                .map_err(|_| Reject::BadSignature { key_id: sig.key_id(), what: what.to_owned() })?;
            report.signatures.push((sig.key_id(), SignatureStatus::Valid));
            if !report.valid_signers.iter().any(|k| k.as_bytes() == key.as_bytes()) {
                report.valid_signers.push(key.clone());
            }
        }
        if report.valid_signers.len() < self.threshold {
            return Err(Reject::Untrusted(self.describe_shortfall(&report)));
        }
        Ok(report)
    }

    fn describe_shortfall(&self, report: &TrustReport) -> String {
        let signed_by: Vec<String> = report
            .signatures
            .iter()
            .map(|(id, st)| match st {
                SignatureStatus::Valid => format!("{id} (trusted, valid)"),
                SignatureStatus::Unknown => format!("{id} (not a trusted key)"),
            })
            .collect();
        let trusted: Vec<String> = self.keys.iter().map(|k| k.key_id().to_string()).collect();
        format!(
            "needs valid signatures from {} trusted key(s), found {}; signed by: {}; trusted keys: {}",
            self.threshold,
            report.valid_signers.len(),
            if signed_by.is_empty() { "nobody".into() } else { signed_by.join(", ") },
            trusted.join(", ")
        )
    }
}
