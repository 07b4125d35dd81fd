//! The zstd frame reader: a bundle is a sequence of zstd frames (FORMAT.md §3), and the
//! verifier must see where each ends (frame 1 is the head; empty frames are refused; nothing
//! may follow the last frame). Skippable frames are refused too, except a volume trailer
//! (FORMAT.md §14.2), which is skipped once its size is within the format's bound: so the
//! volumes of a set concatenated (`cat NAME.vol*.airlock`) read as the bundle they hold; and,
//! from format version 3, one padding frame right after the head frame (FORMAT.md §3), whose
//! content must be zero bytes within its bound: the room pack reserved for the head and the
//! head did not fill.

use std::io::{self, BufRead, Read};

use crate::format::head::{padding_bound, padding_content_len, PADDING_HEADER_LEN};
use crate::format::volume::{trailer_content_len, MAX_TRAILER_CONTENT, SKIPPABLE_HEADER_LEN};
use crate::format::WINDOW_LOG_MAX;
use crate::io::tuning::BUNDLE_READ_BUF;

/// What a bundle is read from: a file, a pipe, or a volume set's bodies in order.
pub(crate) type ByteSource = Box<dyn Read + Send>;

/// A buffered reader that can look a few bytes ahead (a frame's magic) and counts what it
/// consumed, to know where the head frame ends.
pub(super) struct Source {
    inner: ByteSource,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Bytes read from `inner`.
    count: u64,
}

impl Source {
    fn new(inner: ByteSource) -> Source {
        Source { inner, buf: vec![0u8; BUNDLE_READ_BUF].into_boxed_slice(), pos: 0, end: 0, count: 0 }
    }

    /// The next `n` bytes without consuming them (fewer at the end of the input).
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.end - self.pos < n {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            while self.end < n {
                let got = self.inner.read(&mut self.buf[self.end..])?;
                if got == 0 {
                    break;
                }
                self.end += got;
                self.count += got as u64;
            }
        }
        Ok(&self.buf[self.pos..self.end.min(self.pos + n)])
    }

    /// Offset of the next unconsumed byte.
    fn offset(&self) -> u64 {
        self.count - (self.end - self.pos) as u64
    }
}

impl Read for Source {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Source {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = self.inner.read(&mut self.buf)?;
            self.count += self.end as u64;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

/// A sequence of zstd frames read one at a time, so frame boundaries are visible.
/// `read` returns 0 at the end of each frame; [`Frames::begin`] starts the next.
pub(super) struct Frames {
    state: FrameState,
    produced: u64,
    index: usize,
    /// Whether volume trailers may stand between frames: only after a version-2 head.
    trailers_allowed: bool,
    /// The padding frame's content bound, while one may still come: from a version-3 head
    /// until the second frame begins.
    padding_allowed: Option<u64>,
    /// Whether a padding frame was skipped.
    padding_seen: bool,
}

enum FrameState {
    Between(Source),
    In(zstd::stream::read::Decoder<'static, Source>),
    Broken,
}

impl Frames {
    /// Frames read from the start of `input`.
    pub(super) fn new(input: ByteSource) -> Frames {
        Frames {
            state: FrameState::Between(Source::new(input)),
            produced: 0,
            index: 0,
            trailers_allowed: false,
            padding_allowed: None,
            padding_seen: false,
        }
    }

    /// Frames read from `input` that starts right after a head frame of `head_frame_len`
    /// bytes read elsewhere: a volume set's data bodies, once volume 1's head frame was
    /// passed (version 3) or where they start after it (version 2). Frame numbers count
    /// the head frame. `padding`: whether the padding frame may come first (version 3,
    /// FORMAT.md §14.1); no trailer may (the bodies end before them).
    pub(super) fn after_head(input: ByteSource, head_frame_len: u64, padding: bool) -> Frames {
        let mut frames = Frames::new(input);
        frames.index = 1;
        if padding {
            frames.allow_padding(head_frame_len);
        }
        frames
    }

    /// Starts the next frame, skipping volume trailers; false at the end of the input.
    pub(super) fn begin(&mut self) -> io::Result<bool> {
        let FrameState::Between(mut src) = std::mem::replace(&mut self.state, FrameState::Broken) else {
            return Err(io::Error::other("frame already started"));
        };
        loop {
            let head = src.peek(SKIPPABLE_HEADER_LEN)?;
            if head.is_empty() {
                self.state = FrameState::Between(src);
                return Ok(false);
            }
            if !is_skippable(head) {
                break;
            }
            if is_padding(head) {
                self.skip_padding(&mut src)?;
                continue;
            }
            if !self.trailers_allowed {
                return Err(invalid(format!("zstd frame {} is empty or skippable", self.index + 1)));
            }
            self.skip_trailer(&mut src)?;
            // The padding frame comes directly after the head frame or not at all.
            self.padding_allowed = None;
        }
        // One padding frame at most, and only right after the head frame.
        self.padding_allowed = None;
        let mut dec = zstd::stream::read::Decoder::with_buffer(src)?.single_frame();
        dec.window_log_max(WINDOW_LOG_MAX)?;
        self.state = FrameState::In(dec);
        self.produced = 0;
        self.index += 1;
        Ok(true)
    }

    /// Skips one skippable frame, which must be a volume trailer within its size bound
    /// (FORMAT.md §14.2): any other skippable frame is a place to hide data.
    fn skip_trailer(&mut self, src: &mut Source) -> io::Result<()> {
        let header: [u8; SKIPPABLE_HEADER_LEN] = src
            .peek(SKIPPABLE_HEADER_LEN)?
            .try_into()
            .map_err(|_| invalid(format!("zstd frame {} is empty or skippable, and cut short", self.index + 1)))?;
        let len = trailer_content_len(&header).ok_or_else(|| {
            invalid(format!("zstd frame {} is empty or skippable, and not a volume trailer", self.index + 1))
        })?;
        if u64::from(len) > MAX_TRAILER_CONTENT {
            return Err(invalid(format!(
                "volume trailer after zstd frame {} is {len} bytes, more than the limit of {MAX_TRAILER_CONTENT}",
                self.index
            )));
        }
        src.consume(SKIPPABLE_HEADER_LEN);
        let skipped = io::copy(&mut src.take(u64::from(len)), &mut io::sink())?;
        if skipped != u64::from(len) {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "volume trailer is cut short"));
        }
        Ok(())
    }

    /// Skips the padding frame (FORMAT.md §3): allowed once, right after the head frame of
    /// a version-3 bundle, within its bound, holding only zero bytes. Anywhere else it is
    /// refused: it would be a second padding frame, or one a version-1 or -2 reader does
    /// not know.
    fn skip_padding(&mut self, src: &mut Source) -> io::Result<()> {
        let after = self.index;
        let Some(bound) = self.padding_allowed.take() else {
            return Err(invalid(match (self.padding_seen, after) {
                (true, _) => "a second padding frame after the head frame: only one is allowed".into(),
                (false, 1) => {
                    "a padding frame after zstd frame 1, but padding frames exist only from format version 3".into()
                }
                (false, _) => format!(
                    "a padding frame after zstd frame {after}: the only place for one is directly after the head frame"
                ),
            }));
        };
        self.padding_seen = true;
        let header: [u8; PADDING_HEADER_LEN as usize] = src
            .peek(PADDING_HEADER_LEN as usize)?
            .try_into()
            .map_err(|_| io::Error::new(io::ErrorKind::UnexpectedEof, "the padding frame is cut short"))?;
        let len = u64::from(padding_content_len(&header).unwrap_or(0));
        if len > bound {
            return Err(invalid(format!(
                "the padding frame after the head frame is {len} bytes, more than the limit of {bound}"
            )));
        }
        src.consume(PADDING_HEADER_LEN as usize);
        let mut content = src.take(len);
        let mut chunk = [0u8; 8192];
        let mut seen = 0u64;
        loop {
            let n = match content.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk[..n].iter().any(|&b| b != 0) {
                return Err(invalid("the padding frame after the head frame holds bytes other than zero".into()));
            }
            seen += n as u64;
        }
        if seen != len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the padding frame is cut short"));
        }
        Ok(())
    }

    /// Lets one padding frame follow the head frame of `head_frame_len` bytes (FORMAT.md
    /// §3): the verifier allows it once the manifest is known to be version 3 or later.
    pub(super) fn allow_padding(&mut self, head_frame_len: u64) {
        self.padding_allowed = Some(padding_bound(head_frame_len));
    }

    /// Lets volume trailers stand between the frames that follow (FORMAT.md §14.2): the
    /// verifier allows them once the manifest is known to be version 2 or later.
    pub(super) fn allow_trailers(&mut self) {
        self.trailers_allowed = true;
    }

    /// Offset in the input just past the last finished frame.
    pub(super) fn offset(&self) -> Option<u64> {
        match &self.state {
            FrameState::Between(src) => Some(src.offset()),
            _ => None,
        }
    }
}

/// Whether `head` starts with a zstd skippable-frame magic (0x184D2A50..=0x184D2A5F, LE).
fn is_skippable(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] & 0xF0 == 0x50 && head[1..4] == [0x2A, 0x4D, 0x18]
}

/// Whether `head` starts with the padding frame's magic.
fn is_padding(head: &[u8]) -> bool {
    head.get(..4) == Some(&crate::format::head::PADDING_MAGIC.to_le_bytes()[..])
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
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
            // Empty frames carry nothing a bundle needs; they are a place to hide data.
            return Err(invalid(format!("zstd frame {} is empty or skippable", self.index)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::volume::{encode_trailer, VolumeId};

    fn frames(bytes: Vec<u8>) -> Frames {
        Frames::new(Box::new(io::Cursor::new(bytes)))
    }

    fn read_all(f: &mut Frames) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Payload(f).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn trailers_between_and_after_frames_are_skipped() {
        let trailer = encode_trailer(VolumeId::data(1), b"h", b"t").unwrap();
        let mut bytes = zstd::encode_all(&b"abc"[..], 1).unwrap();
        bytes.extend_from_slice(&trailer);
        bytes.extend(zstd::encode_all(&b"def"[..], 1).unwrap());
        bytes.extend_from_slice(&trailer);
        let mut f = frames(bytes.clone());
        f.allow_trailers();
        assert!(f.begin().unwrap());
        assert_eq!(read_all(&mut f).unwrap(), b"abcdef");
        let mut v1 = frames(bytes);
        assert!(v1.begin().unwrap());
        assert!(read_all(&mut v1).unwrap_err().to_string().contains("zstd frame 2 is empty or skippable"));
    }

    /// Frame 1, then `between`, then a second frame: what a reader reads past frame 1.
    fn after_head(between: &[u8], allow: bool) -> io::Result<Vec<u8>> {
        let mut bytes = zstd::encode_all(&b"head"[..], 1).unwrap();
        let head_len = bytes.len() as u64;
        bytes.extend_from_slice(between);
        bytes.extend(zstd::encode_all(&b"payload"[..], 1).unwrap());
        let mut f = frames(bytes);
        assert!(f.begin().unwrap());
        let mut head = Vec::new();
        f.read_to_end(&mut head).unwrap();
        assert_eq!(head, b"head");
        if allow {
            f.allow_padding(head_len);
        }
        read_all(&mut f)
    }

    #[test]
    fn one_padding_frame_of_zeros_is_skipped_right_after_the_head_when_allowed() {
        use crate::format::head::{encode_padding, padding_bound, PADDING_FLOOR};
        let pad = encode_padding(100).unwrap();
        assert_eq!(after_head(&pad, true).unwrap(), b"payload");
        assert_eq!(after_head(&[], true).unwrap(), b"payload");
        let refused = |between: &[u8], allow: bool| after_head(between, allow).unwrap_err().to_string();
        assert!(refused(&pad, false).contains("exist only from format version 3"));
        assert!(refused(&[pad.clone(), pad.clone()].concat(), true).contains("a second padding frame"));
        let mut data = pad.clone();
        data[50] = 1;
        assert!(refused(&data, true).contains("other than zero"));
        let over = encode_padding(8 + padding_bound(20) + 1).unwrap();
        assert!(padding_bound(20) >= PADDING_FLOOR);
        assert!(refused(&over, true).contains("more than the limit"));
        // After the payload's first frame, no padding frame may come.
        let mut late = zstd::encode_all(&b"head"[..], 1).unwrap();
        let head_len = late.len() as u64;
        late.extend(zstd::encode_all(&b"payload"[..], 1).unwrap());
        late.extend_from_slice(&pad);
        let mut f = frames(late);
        assert!(f.begin().unwrap());
        f.read_to_end(&mut Vec::new()).unwrap();
        f.allow_padding(head_len);
        assert!(read_all(&mut f).unwrap_err().to_string().contains("directly after the head frame"));
    }

    #[test]
    fn other_skippable_frames_and_oversized_trailers_are_refused() {
        let mut other = zstd::encode_all(&b"abc"[..], 1).unwrap();
        other.extend_from_slice(&[0x50, 0x2A, 0x4D, 0x18, 1, 0, 0, 0, 9]);
        let mut f = frames(other);
        f.allow_trailers();
        assert!(f.begin().unwrap());
        assert!(read_all(&mut f).unwrap_err().to_string().contains("not a volume trailer"));
        let mut big = zstd::encode_all(&b"abc"[..], 1).unwrap();
        big.extend_from_slice(&[0x5A, 0x2A, 0x4D, 0x18, 0xFF, 0xFF, 0xFF, 0xFF]);
        let mut f = frames(big);
        f.allow_trailers();
        assert!(f.begin().unwrap());
        assert!(read_all(&mut f).unwrap_err().to_string().contains("more than the limit"));
    }
}
