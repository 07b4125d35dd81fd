//! The head's room at the front of a single-read bundle (FORMAT.md §3, format version 3).
//!
//! The head (manifest, signatures, checksum list) leads the bundle, but its hashes are known
//! only once the payload has been read. Every other byte of it is known after the walk, and
//! the hashes are fixed-width, so the head's compressed length can be estimated closely
//! before the payload is written: [`Packer::estimate_head`] compresses the head as it will be,
//! with placeholder hashes of the same entropy (pseudo-random bytes) and signatures of the
//! same length, at the same level. The payload is written after [`reserve_for`] that estimate;
//! then the real head goes into the room ([`RoomWriter`]) and the rest of the room becomes one
//! padding frame (a zstd skippable frame of zero bytes, which stock zstd skips and tar never
//! sees). If the head does not fit, or leaves more room than a padding frame may fill, the
//! payload is moved within the file to sit right after the head ([`RoomWriter::place`]):
//! that reads and writes the bundle's payload once more, never the sources.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use super::head::head_level;
use super::Packer;
use crate::error::{Error, Result};
use crate::format::head::{padding_bound, padding_header, signature_comment, HeadWriter, PADDING_HEADER_LEN};
use crate::format::manifest::Manifest;
use crate::io::digest::Digest;
use crate::io::tuning::COPY_BUF;
use crate::keys::Signature;

/// Where the head of a single-read bundle went (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadRoom {
    /// Bytes reserved for the head frame and its padding before the payload was written.
    pub reserved: u64,
    /// The head frame's length.
    pub head: u64,
    /// The padding frame's length (header included; 0: none).
    pub padding: u64,
    /// Payload bytes moved because the head did not fit the room, or left more of it than a
    /// padding frame may fill (0: none moved; the sources are never read again).
    pub moved: u64,
}

/// The room to reserve for a head whose estimated compressed length is `estimate`: the
/// estimate and a margin for the compressor's variation between placeholder and real hashes
/// (measured far below it: FORMAT.md §3, docs/PERFORMANCE.md).
pub(super) fn reserve_for(estimate: u64) -> u64 {
    estimate + estimate / 512 + 512
}

/// Gives every entry whose SHA-256 is not known yet a placeholder: pseudo-random bytes, so
/// the head compresses as it will with the real hashes (which look random to zstd).
pub(super) fn fill_placeholders(manifest: &mut Manifest, hashed: impl Fn(usize) -> bool) {
    // splitmix64: a placeholder needs no secrecy, only bytes without structure.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for (i, e) in manifest.entries.iter_mut().enumerate() {
        if !hashed(i) {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            e.sha256 = Digest(bytes);
        }
    }
}

impl Packer<'_> {
    /// The compressed length of the head for `manifest` (encoded as `manifest_bytes`), its
    /// unknown hashes being placeholders: the head written exactly as [`Packer::write_head`]
    /// does, with signatures of the same length (made over an empty message), into a counter.
    pub(super) fn estimate_head(&self, manifest: &Manifest, manifest_bytes: &[u8]) -> Result<u64> {
        let signers = self.signers;
        let io_err = |e| Error::io(self.out, e);
        let Some(first) = signers.first() else { return Err(Error::Internal("no signer".into())) };
        let signatures: Vec<Signature> = signers.iter().map(|k| k.sign(b"", &signature_comment(k.key_id()))).collect();
        let sums_signature = first.sign(b"", &signature_comment(first.key_id())).to_file_string();
        let mut counter = Counter(0);
        let head = HeadWriter::start(&mut counter, head_level(self.opts.level), manifest_bytes).map_err(io_err)?;
        head.signatures(&signatures)
            .map_err(io_err)?
            .finish_list(sums_signature.as_bytes(), manifest)
            .map_err(io_err)?;
        Ok(counter.0)
    }
}

/// Counts the bytes written to it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the head frame into the room at the start of the file, keeping in memory only
/// what does not fit (the payload starts right after the room).
pub(super) struct RoomWriter<'a> {
    file: &'a File,
    room: u64,
    /// Bytes of the head written so far (into the room, then into `spill`).
    len: u64,
    spill: Vec<u8>,
}

impl<'a> RoomWriter<'a> {
    pub(super) fn new(file: &'a File, room: u64) -> RoomWriter<'a> {
        RoomWriter { file, room, len: 0, spill: Vec::new() }
    }

    /// The head's length so far (what went into the room and what spilled over).
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Completes the layout once the whole head is written, the payload ending at
    /// `payload_end`: the rest of the room becomes the padding frame; or, if the head
    /// overflowed the room or leaves more of it than a padding frame may fill, the payload
    /// is moved to follow the head directly.
    pub(super) fn place(self, payload_end: u64) -> io::Result<HeadRoom> {
        let RoomWriter { file, room, len: head, spill } = self;
        let mut placed = HeadRoom { reserved: room, head, padding: 0, moved: 0 };
        if head == room {
            return Ok(placed);
        }
        let slack = room.saturating_sub(head);
        if let Some(header) = padding_for(room, head) {
            file.write_all_at(&header, head)?;
            write_zeros(file, head + PADDING_HEADER_LEN, slack - PADDING_HEADER_LEN)?;
            placed.padding = slack;
            return Ok(placed);
        }
        // The payload was written from `room` on, so it ends there or later.
        let payload = payload_end.saturating_sub(room);
        move_within(file, room, head, payload)?;
        file.write_all_at(&spill, room.min(head))?;
        file.set_len(head + payload)?;
        placed.moved = payload;
        Ok(placed)
    }
}

impl Write for RoomWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let fits = usize::try_from(self.room.saturating_sub(self.len)).unwrap_or(usize::MAX).min(buf.len());
        self.file.write_all_at(&buf[..fits], self.len)?;
        self.spill.extend_from_slice(&buf[fits..]);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether a head frame of `head` bytes fits a room of `room` bytes without moving the
/// payload: it fills the room exactly, or leaves what one padding frame may fill.
pub(super) fn fits(room: u64, head: u64) -> bool {
    head == room || padding_for(room, head).is_some()
}

/// The header of the padding frame filling what a head frame of `head` bytes leaves of a
/// room of `room` bytes; `None` when no padding frame may (the head overflows, or leaves 1
/// to 7 bytes, or more than the padding bound).
fn padding_for(room: u64, head: u64) -> Option<[u8; PADDING_HEADER_LEN as usize]> {
    let slack = room.checked_sub(head)?;
    padding_header(slack).filter(|_| slack - PADDING_HEADER_LEN <= padding_bound(head))
}

/// Writes `len` zero bytes at `offset`.
fn write_zeros(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; COPY_BUF];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(COPY_BUF as u64) as usize;
        file.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Moves `len` bytes at `from` to `to` within `file` (the ranges may overlap): chunk by
/// chunk from the end when moving towards the end, from the start otherwise, so no chunk is
/// overwritten before it is read.
fn move_within(file: &File, from: u64, to: u64, len: u64) -> io::Result<()> {
    copy_chunks(file, from, file, to, len, to > from)
}

/// Copies `len` bytes at `from` in `src` to `to` in `dst`, which may be the same file if
/// the ranges do not overlap (volume 1's head frame into its own trailer).
pub(super) fn copy_range(src: &File, from: u64, dst: &File, to: u64, len: u64) -> io::Result<()> {
    copy_chunks(src, from, dst, to, len, false)
}

/// The copy loop of [`move_within`] and [`copy_range`]: chunk by chunk, from the end of
/// the range if `backwards`.
fn copy_chunks(src: &File, from: u64, dst: &File, to: u64, len: u64, backwards: bool) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUF.min(usize::try_from(len).unwrap_or(usize::MAX))];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(COPY_BUF as u64);
        // Offset of this chunk within the range.
        let at = if backwards { len - done - n } else { done };
        let chunk = &mut buf[..n as usize];
        src.read_exact_at(chunk, from + at)?;
        dst.write_all_at(chunk, to + at)?;
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::head::PADDING_FLOOR;

    /// A file holding `room` bytes of zeros, then `payload`.
    fn file_with(room: u64, payload: &[u8]) -> File {
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(payload, room).unwrap();
        file
    }

    fn contents(file: &File) -> Vec<u8> {
        let mut out = vec![0u8; file.metadata().unwrap().len() as usize];
        file.read_exact_at(&mut out, 0).unwrap();
        out
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 253) as u8).collect()
    }

    /// The head fits: it is followed by a padding frame filling the room exactly, and the
    /// payload stays where it was.
    #[test]
    fn a_head_that_fits_is_padded_to_the_room() {
        let data = payload(3 * COPY_BUF + 17);
        let file = file_with(1000, &data);
        let mut w = RoomWriter::new(&file, 1000);
        w.write_all(&[7u8; 900]).unwrap();
        let placed = w.place(1000 + data.len() as u64).unwrap();
        assert_eq!(placed, HeadRoom { reserved: 1000, head: 900, padding: 100, moved: 0 });
        let bytes = contents(&file);
        assert_eq!(&bytes[..900], &[7u8; 900][..]);
        assert_eq!(bytes[900..908], padding_header(100).unwrap());
        assert!(bytes[908..1000].iter().all(|&b| b == 0));
        assert_eq!(&bytes[1000..], &data[..]);
    }

    /// A head longer than the room, one that leaves less room than a padding frame's
    /// header, and one that leaves more than a padding frame may fill: the payload moves
    /// to follow the head directly, whole.
    #[test]
    fn a_head_that_does_not_fit_moves_the_payload() {
        let data = payload(3 * COPY_BUF + 17);
        let surplus = 2 * PADDING_FLOOR + 5000;
        for (room, head) in [(1000u64, 5000u64), (1000, 1), (1000, 995), (surplus, 4000)] {
            let file = file_with(room, &data);
            let mut w = RoomWriter::new(&file, room);
            let written: Vec<u8> = (0..head).map(|i| (i % 7 + 1) as u8).collect();
            for piece in written.chunks(333) {
                w.write_all(piece).unwrap();
            }
            let placed = w.place(room + data.len() as u64).unwrap();
            let padded = room > head && room - head >= PADDING_HEADER_LEN && room - head - 8 <= padding_bound(head);
            if padded {
                continue;
            }
            assert_eq!(
                placed,
                HeadRoom { reserved: room, head, padding: 0, moved: data.len() as u64 },
                "{room} {head}"
            );
            let bytes = contents(&file);
            assert_eq!(&bytes[..head as usize], &written[..], "{room} {head}");
            assert_eq!(&bytes[head as usize..], &data[..], "{room} {head}");
        }
    }

    /// The placeholders are the only hashes changed, and look random (distinct).
    #[test]
    fn placeholders_replace_only_unknown_hashes() {
        let mut m = crate::format::manifest::tests::sample();
        let before = m.clone();
        fill_placeholders(&mut m, |i| i == 1);
        assert_eq!(m.entries[1].sha256, before.entries[1].sha256);
        assert_ne!(m.entries[0].sha256, before.entries[0].sha256);
        assert_ne!(m.entries[0].sha256, m.entries[2].sha256);
    }

    /// The head copied into a trailer: from the start of a file to its end (the same file,
    /// as for volume 1) and into another, across chunk boundaries, the source unchanged.
    #[test]
    fn copy_range_copies_into_the_same_file_and_another() {
        let data = payload(2 * COPY_BUF + 99);
        let head = 1000 + COPY_BUF as u64;
        let file = file_with(0, &data);
        let end = data.len() as u64;
        copy_range(&file, 0, &file, end, head).unwrap();
        let bytes = contents(&file);
        assert_eq!(&bytes[..data.len()], &data[..]);
        assert_eq!(&bytes[data.len()..], &data[..head as usize]);
        let other = file_with(10, b"");
        copy_range(&file, 5, &other, 10, head).unwrap();
        assert_eq!(&contents(&other)[10..], &data[5..5 + head as usize]);
    }
}
