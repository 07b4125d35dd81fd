//! Plumbing shared by the pipeline stages: digests, durable writes, writeback, threads.

pub mod digest;
pub mod durable;
pub mod sync;
pub(crate) mod tuning;
pub mod writeback;
