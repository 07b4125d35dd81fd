//! Plumbing shared by the pipeline stages. Public: [`digest`] (SHA-256 and hex, in every
//! report), [`durable`] (the one atomic write, whose [`durable::Overwrite`] callers pass)
//! and [`space`] (a destination's free space and file-size limit).
//! Private: thread helpers, writeback, direct writes, and the tuning constants.

pub mod digest;
pub(crate) mod direct;
pub mod durable;
pub mod parity;
pub mod space;
pub(crate) mod sync;
pub(crate) mod tuning;
pub(crate) mod writeback;
