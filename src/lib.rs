//! airlock: carry software across an air gap without losing its provenance.
//!
//! The pipeline, one module per stage:
//! - [`keys`]: signify-compatible Ed25519 keys and signatures.
//! - [`path`]: [`path::RelPath`], the only kind of path a bundle may name.
//! - [`manifest`]: the signed manifest and its exact encoding (the only module that knows CBOR).
//! - [`writer`]: `pack`, which builds a bundle.
//! - [`reader`]: reads and verifies a bundle, streaming its payload to a sink.
//! - [`policy`]: the trust policy (signers per channel, revocation, age, artifact rules).
//! - [`artifacts`]: artifact signature rules, checked while the payload streams.
//! - [`minisign`]: minisign signatures and key spellings.
//! - [`cosign`]: `airlock sign`, adding a signature by rewriting only the head frame.
//! - [`staging`]: writes verified entries into an import's private staging directory.
//! - [`mirror`]: the import side: staging, commit, log, recovery.
//!
//! The bundle format and the mirror layout are specified in `docs/FORMAT.md`.

pub mod digest;
pub mod error;
pub mod keys;

pub use error::Error;
pub mod artifacts;
pub mod cli;
pub mod clock;
pub mod cosign;
pub mod manifest;
pub mod member;
pub mod minisign;
pub mod mirror;
pub mod path;
pub mod policy;
pub mod progress;
pub mod reader;
pub mod staging;
pub mod writeback;
pub mod writer;

/// Locks a mutex shared by worker threads. A poisoned lock (a worker panicked while holding
/// it) still guards consistent data here: every user only pushes results or sets flags.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
