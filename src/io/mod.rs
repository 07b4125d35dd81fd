//! Plumbing shared by the pipeline stages: digests, durable writes, writeback, threads.

pub mod digest;
pub mod sync;
pub mod writeback;
