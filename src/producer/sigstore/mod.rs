// SHIM: replaced by the real module at merge
//! Sigstore (contract names only; the real module is helper B's).
#![allow(missing_docs, dead_code, unused_variables)]

use crate::io::digest::Digest;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigstoreError {
    #[error("Sigstore support is not in this build (shim)")]
    Shim,
}

#[derive(Clone, Copy, Debug)]
pub struct InstanceOptions {
    pub transparency_log: bool,
    pub sct: bool,
}

impl Default for InstanceOptions {
    fn default() -> InstanceOptions {
        InstanceOptions { transparency_log: true, sct: true }
    }
}

#[derive(Clone, Debug)]
pub struct TrustRoot;

impl TrustRoot {
    pub fn parse(json: &[u8], options: InstanceOptions) -> Result<TrustRoot, SigstoreError> {
        Err(SigstoreError::Shim)
    }
    pub fn authorities(&self) -> Vec<Authority> {
        Vec::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorityKind {
    Fulcio,
    Rekor,
    CtLog,
    Tsa,
}

#[derive(Clone, Debug)]
pub struct Authority {
    pub kind: AuthorityKind,
    pub name: String,
    pub valid_from: Option<u64>,
    pub valid_until: Option<u64>,
}

#[derive(Clone, Debug)]
pub enum SanMatch {
    Exact(String),
    Pattern { text: String },
}

impl SanMatch {
    pub fn pattern(text: &str) -> Result<SanMatch, SigstoreError> {
        Ok(SanMatch::Pattern { text: text.to_owned() })
    }
    pub fn matches(&self, san: &str) -> bool {
        false
    }
}

#[derive(Clone, Debug)]
pub struct GithubPublisher {
    pub repository: String,
    pub workflow: String,
    pub environment: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Identity {
    pub issuer: String,
    pub san: Option<SanMatch>,
    pub source_repository: Option<String>,
    pub source_ref: Option<String>,
    pub github_publisher: Option<GithubPublisher>,
}

#[derive(Clone, Debug)]
pub struct ManagedKey;

impl ManagedKey {
    pub fn parse_pem(pem: &[u8]) -> Result<ManagedKey, SigstoreError> {
        Err(SigstoreError::Shim)
    }
}

#[derive(Clone, Debug)]
pub enum Signer {
    Identity(Identity),
    Key(ManagedKey),
}

impl Signer {
    pub fn matches(&self, v: &Verified) -> bool {
        false
    }
    pub fn describe(&self) -> String {
        String::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaterialKind {
    Bundle,
}

pub fn material_for(file_name: &str) -> Option<(&str, MaterialKind)> {
    None
}

pub fn parse_material(kind: MaterialKind, bytes: &[u8]) -> Result<Vec<Item>, SigstoreError> {
    Err(SigstoreError::Shim)
}

#[derive(Clone, Debug)]
pub struct Item;

impl Item {
    pub fn needs_sha512(&self) -> bool {
        false
    }
}

#[derive(Clone, Debug)]
pub struct ArtifactDigests {
    pub file_name: String,
    pub sha256: Digest,
    pub sha512: Option<[u8; 64]>,
}

pub fn verify(item: &Item, root: &TrustRoot, artifact: &ArtifactDigests, not_after: u64) -> Result<Verified, Failure> {
    Err(Failure::Bad("shim".into()))
}

#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Failure {
    Bad(String),
    NotVerifiableOffline(String),
    NeedsSha512,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shim")
    }
}

#[derive(Clone, Debug)]
pub struct Verified {
    pub bundle_version: String,
    pub san: Option<String>,
    pub issuer: Option<String>,
    pub claims: BTreeMap<String, String>,
    pub time: u64,
    pub time_source: String,
    pub predicate_type: Option<String>,
    pub subjects: Vec<(String, String)>,
    pub builder_id: Option<String>,
    pub publisher: Option<String>,
    pub managed_key: bool,
}
