//! The zstd frame reader: a bundle is a sequence of zstd frames (FORMAT.md §3), and the
//! verifier must see where each ends (frame 1 is the head; empty and skippable frames are
//! refused; nothing may follow the last frame).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use crate::format::WINDOW_LOG_MAX;
use crate::io::tuning::BUNDLE_READ_BUF;

/// Counts bytes read from the bundle file, to know where the head frame ends.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

type Source = BufReader<Counting<File>>;

/// A sequence of zstd frames read one at a time, so frame boundaries are visible.
/// `read` returns 0 at the end of each frame; [`Frames::begin`] starts the next.
pub(super) struct Frames {
    state: FrameState,
    produced: u64,
    index: usize,
}

enum FrameState {
    Between(Source),
    In(zstd::stream::read::Decoder<'static, Source>),
    Broken,
}

impl Frames {
    /// Frames read from the start of `file`.
    pub(super) fn new(file: File) -> Frames {
        let src = BufReader::with_capacity(BUNDLE_READ_BUF, Counting { inner: file, count: 0 });
        Frames { state: FrameState::Between(src), produced: 0, index: 0 }
    }

    /// Starts the next frame; false at the end of the file.
    pub(super) fn begin(&mut self) -> io::Result<bool> {
        let FrameState::Between(mut src) = std::mem::replace(&mut self.state, FrameState::Broken) else {
            return Err(io::Error::other("frame already started"));
        };
        if src.fill_buf()?.is_empty() {
            self.state = FrameState::Between(src);
            return Ok(false);
        }
        let mut dec = zstd::stream::read::Decoder::with_buffer(src)?.single_frame();
        dec.window_log_max(WINDOW_LOG_MAX)?;
        self.state = FrameState::In(dec);
        self.produced = 0;
        self.index += 1;
        Ok(true)
    }

    /// Offset in the file just past the last finished frame.
    pub(super) fn offset(&self) -> Option<u64> {
        match &self.state {
            FrameState::Between(src) => Some(src.get_ref().count - src.buffer().len() as u64),
            _ => None,
        }
    }
}

impl Read for Frames {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let FrameState::In(dec) = &mut self.state else { return Ok(0) };
        let n = dec.read(buf)?;
        if n > 0 || buf.is_empty() {
            self.produced += n as u64;
            return Ok(n);
        }
        if let FrameState::In(dec) = std::mem::replace(&mut self.state, FrameState::Broken) {
            self.state = FrameState::Between(dec.finish());
        }
        if self.produced == 0 {
            // Skippable frames (and empty frames) carry nothing a bundle needs; they are a
            // place to hide data, so they are refused.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("zstd frame {} is empty or skippable", self.index),
            ));
        }
        Ok(0)
    }
}

/// Reads the payload frames as one stream: ends only at the end of the last frame.
pub(super) struct Payload<'a>(pub(super) &'a mut Frames);

impl Read for Payload<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.0.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if !self.0.begin()? {
                return Ok(0);
            }
        }
    }
}
