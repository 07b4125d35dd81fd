//! What producers publish, verified offline.
//!
//! TEMPORARY (branches `deb`, `sig`, `pgp`): helper D owns the real module (docs, shared report
//! types), which replaces this one at merge.

pub mod debian;
pub mod openpgp;
pub mod sigstore;

/// The clock a producer signature is judged against.
#[derive(Clone, Copy, Debug)]
pub struct Times {
    /// The policy clock: max(system clock, the channel's clock floor). Hash and key-size cutoffs
    /// and "key valid" are evaluated with this as "now" (never the raw system clock).
    pub reference: u64,
    /// The latest signing time accepted: the bundle's `created` plus the clock skew (a producer
    /// signature cannot postdate the bundle carrying it), never later than reference + skew.
    pub not_after: u64,
}
