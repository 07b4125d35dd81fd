// SHIM: replaced by the real module at merge
//! OpenPGP (contract names only; the real module is helper A's).
#![allow(missing_docs, dead_code, unused_variables)]

use super::Times;
use std::fmt;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenPgpError {
    #[error("OpenPGP support is not in this build (shim)")]
    Unsupported,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = OpenPgpError;
    fn from_str(s: &str) -> Result<Fingerprint, OpenPgpError> {
        let hex: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
        if (hex.len() == 40 || hex.len() == 64) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Fingerprint(hex))
        } else {
            Err(OpenPgpError::Unsupported)
        }
    }
}

#[derive(Clone, Debug)]
pub struct Keyring;

impl Keyring {
    pub fn parse(bytes: &[u8], only: &[Fingerprint], allow_sha1_bindings: bool) -> Result<Keyring, OpenPgpError> {
        Err(OpenPgpError::Unsupported)
    }
    pub fn certs(&self) -> Vec<CertInfo> {
        Vec::new()
    }
}

#[derive(Clone, Debug)]
pub struct CertInfo {
    pub fingerprint: Fingerprint,
    pub user_ids: Vec<String>,
    pub created: u64,
    pub expires: Option<u64>,
    pub revoked: bool,
    pub needs_sha1_bindings: bool,
}

#[derive(Clone, Debug)]
pub struct DetachedSignature;

impl DetachedSignature {
    pub fn parse(bytes: &[u8]) -> Result<DetachedSignature, OpenPgpError> {
        Err(OpenPgpError::Unsupported)
    }
    pub fn issuers(&self) -> Vec<String> {
        Vec::new()
    }
    pub fn verifier(&self, keyrings: &[(String, Keyring)], times: Times) -> DetachedVerifier {
        DetachedVerifier
    }
}

pub struct DetachedVerifier;

impl DetachedVerifier {
    pub fn update(&mut self, data: &[u8]) {}
    pub fn finish(self) -> Vec<PgpCheck> {
        Vec::new()
    }
}

#[derive(Clone, Debug)]
pub struct PgpCheck {
    pub issuer: String,
    pub outcome: PgpOutcome,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PgpOutcome {
    Good(PgpSigner),
    Bad { keyring: String, fingerprint: Fingerprint, problem: PgpProblem },
    UnknownKey,
}

#[derive(Clone, Debug)]
pub struct PgpSigner {
    pub keyring: String,
    pub primary: Fingerprint,
    pub signing_key: Fingerprint,
    pub user_id: Option<String>,
    pub created: u64,
    pub hash: String,
    pub key_expires: Option<u64>,
    pub sha1_binding: bool,
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PgpProblem {
    Shim,
}

impl fmt::Display for PgpProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shim")
    }
}

pub fn verify_clearsigned(
    bytes: &[u8],
    keyrings: &[(String, Keyring)],
    times: Times,
) -> Result<(Vec<u8>, Vec<PgpCheck>), OpenPgpError> {
    Err(OpenPgpError::Unsupported)
}

pub fn verify_detached(
    sig: &[u8],
    data: &[u8],
    keyrings: &[(String, Keyring)],
    times: Times,
) -> Result<Vec<PgpCheck>, OpenPgpError> {
    Err(OpenPgpError::Unsupported)
}
