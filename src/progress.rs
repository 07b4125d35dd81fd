//! Progress reporting for long operations (pack, verify, import, mirror verify).
//!
//! The library reports progress through this trait and never draws anything itself: the
//! command line supplies a terminal bar, library users their own implementation or
//! [`NoProgress`]. Every method has a no-op default. Implementations are called from worker
//! threads, hence `Sync`.

/// Receives progress from a long operation.
pub trait Progress: Sync {
    /// Starts a phase with its totals (0 for a total not known yet: pack learns sizes while
    /// it walks).
    fn start(&self, _phase: &str, _bytes: u64, _files: u64) {}
    /// Counts bytes done.
    fn add_bytes(&self, _n: u64) {}
    /// Counts one file done.
    fn add_file(&self) {}
    /// Ends the phase.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
