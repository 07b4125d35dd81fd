// SHIM: replaced by the real module at merge
//! Debian archive metadata (contract names only; the real module is helper C's).
#![allow(missing_docs, dead_code, unused_variables)]

use crate::io::digest::Digest;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DebianError {
    #[error("Debian parsing is not in this build (shim)")]
    Shim,
}

#[derive(Clone, Debug)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub date: u64,
    pub valid_until: Option<u64>,
    pub acquire_by_hash: bool,
    pub sha256: BTreeMap<String, (u64, Digest)>,
}

impl Release {
    pub fn parse(signed_text: &[u8]) -> Result<Release, DebianError> {
        Err(DebianError::Shim)
    }
    pub fn expect(&self, rel: &str) -> Option<(u64, Digest)> {
        self.sha256.get(rel).copied()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    Packages,
    Sources,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
}

pub fn index_kind(rel: &str) -> Option<(IndexKind, Compression)> {
    None
}

pub struct IndexReader;

impl IndexReader {
    pub fn new(kind: IndexKind, compression: Compression, wanted: Box<dyn Fn(&str) -> bool + Send>) -> IndexReader {
        IndexReader
    }
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), DebianError> {
        Err(DebianError::Shim)
    }
    pub fn finish(self) -> Result<Vec<Listed>, DebianError> {
        Err(DebianError::Shim)
    }
}

#[derive(Clone, Debug)]
pub struct Listed {
    pub path: String,
    pub size: u64,
    pub sha256: Digest,
}
