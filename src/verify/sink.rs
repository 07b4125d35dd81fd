//! Where verified payload content goes: a [`PayloadSink`].

use crate::error::Result;
use crate::format::manifest::Entry;

/// Receives verified payload content, entry by entry.
///
/// A sink runs on its own thread, fed in order: `open`, `write`s, then `close` only once
/// the entry's size and SHA-256 have matched. If any entry fails, the sink sees no
/// further calls and the payload read fails: the sink must treat everything it received as
/// unverified until [`VerifiedBundle::stream_into`](super::VerifiedBundle::stream_into)
/// returns `Ok`.
pub trait PayloadSink: Send {
    /// A new entry starts.
    fn open(&mut self, entry: &Entry) -> Result<()>;
    /// Content bytes of the current entry (not yet hash-checked).
    fn write(&mut self, bytes: &[u8]) -> Result<()>;
    /// The current entry ended and its size and SHA-256 matched.
    fn close(&mut self, entry: &Entry) -> Result<()>;
    /// Whether the sink needs the content bytes (false skips copying them).
    fn wants_data(&self) -> bool {
        true
    }
}

/// Discards content: `verify`, and `sign` before it vouches.
pub struct NullSink;

impl PayloadSink for NullSink {
    fn open(&mut self, _: &Entry) -> Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn close(&mut self, _: &Entry) -> Result<()> {
        Ok(())
    }
    fn wants_data(&self) -> bool {
        false
    }
}
