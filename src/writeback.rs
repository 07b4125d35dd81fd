//! [`Writeback`]: a file writer that starts writeback as it goes.
//!
//! On a machine with plenty of memory the kernel keeps a whole bundle or import dirty in
//! the page cache, and the fsync that makes it durable then waits for all of it at the end.
//! Starting writeback every few megabytes lets the disk work while airlock compresses or
//! hashes, so the final sync is short. `POSIX_FADV_DONTNEED` starts writeback of the dirty
//! range (and later lets its clean pages go); it is advice, so a failure changes nothing
//! but speed. Durability still comes only from the caller's fsync/syncfs.

use std::io::{self, Write};
use std::num::NonZeroU64;
use std::os::fd::AsFd;

/// Bytes written between two writeback starts.
pub const STEP: u64 = 16 << 20;

/// Wraps a file; see the module docs.
pub struct Writeback<W> {
    inner: W,
    written: u64,
    kicked: u64,
}

impl<W: Write + AsFd> Writeback<W> {
    /// Wraps `inner`, whose current offset is 0.
    pub fn new(inner: W) -> Self {
        Writeback { inner, written: 0, kicked: 0 }
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

impl<W: Write + AsFd> Write for Writeback<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written - self.kicked >= STEP {
            let len = NonZeroU64::new(self.written - self.kicked);
            let _ = rustix::fs::fadvise(&self.inner, self.kicked, len, rustix::fs::Advice::DontNeed);
            self.kicked = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn content_is_unchanged_across_writeback_starts() {
        let mut tmp = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(STEP as usize * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        let mut w = Writeback::new(&tmp);
        for chunk in data.chunks(1 << 20) {
            w.write_all(chunk).unwrap();
        }
        w.flush().unwrap();
        let mut back = Vec::new();
        std::io::Seek::rewind(&mut tmp).unwrap();
        tmp.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }
}
