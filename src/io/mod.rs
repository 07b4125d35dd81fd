//! Plumbing shared by the pipeline stages. Public: [`digest`] (SHA-256 and hex, in every
//! report) and [`durable`] (the one atomic write, whose [`durable::Overwrite`] callers pass).
//! Private: thread helpers, writeback, and the tuning constants.

pub mod digest;
pub mod durable;
pub mod parity;
pub(crate) mod sync;
pub(crate) mod tuning;
pub(crate) mod writeback;
