//! The volume writer (FORMAT.md §14): `pack --volume-size SIZE [--parity N]`.
//!
//! ```text
//!  room for the head (reserve.rs: the head compressed with placeholder hashes) -> vol001 (first)
//!  tar stream -> Cutter: one zstd context (its workers kept); a frame takes input while its
//!               worst case (produced + bound of what it holds uncompressed) fits the
//!               volume's room, about one frame per volume; a volume is closed when less
//!               than `slack` is left
//!                 -> BodyWriter -> Writeback (background sync, one Syncer) -> temp file
//!                      (a closed volume's rest synced in the background)
//!                      +-> its hashing thread: SHA-256 of each 1 MiB block (and of that list)
//!  head frame (the real hashes), compressed straight into vol001's room, the rest one
//!          padding frame (reserve.rs); vol001's blocks over the room hashed again from what
//!          is there now; a head that does not fit: the set is written again with the head's
//!          exact room
//!  parity, once the last data body and the head are written, on every core (ParityPass): each worker
//!          takes the next stripe j = block j of every data body (read back from the page
//!          cache; zero-padded) -> StripeEncoder (one parity body: XOR in place; more:
//!          reed-solomon-simd) -> parity block j of each of N bodies, hashed on the worker
//!          and written at its offset (one writer at a time; around the page cache,
//!          io/direct.rs, since nothing reads it back)
//!  table: lengths, block-list digests, block SHA-256s, signed by the first key (VOLUMES.sig)
//!  trailer (skippable frame: head copy, VOLUMES.sig, footer) appended to every volume, the
//!          head copied from vol001's room (never held whole: 74 MB at a million entries);
//!  fsync all, then rename all: nothing appears under a final name before every volume is
//!  whole and durable, and a failed pack leaves no volume (temporaries are removed on drop).
//! ```
//!
//! The room for the trailer is reserved before the first byte is written, from an upper
//! bound on the table's size: the payload cannot compress to more than zstd's bound, and
//! every volume but the last is filled to within `slack` of its room.
//!
//! Each source byte is read once, as for a bundle file (FORMAT.md §3, §14.1): volume 1's
//! body starts at its first byte, with the room reserved for the head, so its blocks line
//! up before the head is known. If the head does not fit the room (the estimate was short,
//! or left more than a padding frame may fill), moving the payload would change volume 1's
//! length and could pass the volume size, so the whole set is written again with a room of
//! the head's exact length: the sources are read a second time, in that case only, and the
//! payload pass checks they still hash as the first pass found.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::readback;
use super::reserve::{self, HeadRoom, RoomWriter};
use super::{PackError, Packer};
use crate::error::{malformed, Error, Reject, Result};
use crate::format::head::signature_comment;
use crate::format::manifest::Manifest;
use crate::format::tar::{self, BLOCK};
use crate::format::volume::VOLUMES_MEMBER;
use crate::format::volume::{
    block_list_digest, block_range, blocks_in, parity_length, Table, TrailerParts, VolumeEntry, VolumeId, BLOCK_SIZE,
    FOOTER_LEN, MAX_DATA_VOLUMES, MAX_PARITY_VOLUMES, MAX_TABLE_BYTES, SKIPPABLE_HEADER_LEN,
};
use crate::io::digest::{Digest, Hasher};
use crate::io::direct::{Aligned, DirectWrites};
use crate::io::durable::{parent_dir, sync_dir, Overwrite};
use crate::io::parity;
use crate::io::sync::join_unscoped;
use crate::io::tuning::{BUNDLE_BUF, JOB_SIZE};
use crate::io::writeback::{SyncHandle, SyncScope, Syncer, Writeback};
use crate::progress::Progress;
use crate::verify::{Bundle, BundleSource, VerifyOptions, VolumeProblem, VolumeState};
use zstd::zstd_safe::{zstd_sys::ZSTD_EndDirective as EndDirective, CCtx, CParameter, InBuffer, OutBuffer};

/// How to split a bundle into volumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeOptions {
    /// The largest volume file, in bytes (its trailer included).
    pub size: u64,
    /// Parity volumes to add (0 to 99).
    pub parity: u16,
}

/// Named volume sizes for common media (`--volume-size fat32`).
pub const PRESETS: [(&str, u64); 5] = [
    // The largest file FAT32 can hold.
    ("fat32", (4 << 30) - 1),
    // Single-layer DVD±R (4.7 GB; the medium holds a little more, left to its file system).
    ("dvd", 4_700_000_000),
    // Dual-layer DVD+R.
    ("dvd-dl", 8_500_000_000),
    // Blu-ray, single and dual layer.
    ("bd25", 25_000_000_000),
    ("bd50", 50_000_000_000),
];

/// The files of a volume set named `out` already there: `NAME.volNNN.airlock`,
/// `NAME.parNN.airlock` beside it.
pub(super) fn existing_volumes(out: &Path) -> Result<Vec<PathBuf>> {
    let dir = parent_dir(out);
    let Some(name) = out.file_name().map(|n| n.to_string_lossy().into_owned()) else { return Ok(Vec::new()) };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let file = entry.map_err(|e| Error::io(dir, e))?.file_name().to_string_lossy().into_owned();
        let Some(id) =
            file.strip_prefix(&name).and_then(|r| r.strip_prefix('.')).and_then(|r| r.strip_suffix(".airlock"))
        else {
            continue;
        };
        let digits = |prefix: &str, n: usize| {
            id.strip_prefix(prefix).is_some_and(|d| d.len() == n && d.bytes().all(|b| b.is_ascii_digit()))
        };
        if digits("vol", 3) || digits("par", 2) {
            found.push(dir.join(&file));
        }
    }
    found.sort();
    Ok(found)
}

/// Parses a volume size: bytes, with an optional K, M, G or T suffix (powers of 1024), or
/// a preset name ([`PRESETS`]). The message names what is accepted.
pub fn parse_volume_size(text: &str) -> Result<u64, String> {
    if let Some((_, size)) = PRESETS.iter().find(|(name, _)| *name == text) {
        return Ok(*size);
    }
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        Some((i, 'T' | 't')) => (&text[..i], 40),
        _ => (text, 0),
    };
    let presets: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
    let wrong = || {
        format!(
            "{text:?} is not a size: give bytes with an optional K, M, G or T suffix, or one of {}",
            presets.join(", ")
        )
    };
    let n: u64 = digits.parse().map_err(|_| wrong())?;
    n.checked_mul(1 << shift).filter(|&s| s > 0).ok_or_else(wrong)
}

/// The worst-case compressed size of a zstd frame of `u` input bytes: zstd's own bound
/// (`u + u/256 + 64`, RFC 8878 block overheads included) doubled in its proportional part
/// and with room for the frame header, checksum and the multithreaded encoder's job ends.
fn frame_bound(u: u64) -> u64 {
    u + u / 128 + 4096
}

/// The most input a frame may take so that [`frame_bound`] stays within `room`.
fn max_input(room: u64) -> u64 {
    room.saturating_sub(4096) / 129 * 128
}

/// Bytes reserved for a signify embedded signature's two lines around the table.
const SIGNATURE_LINES: u64 = 512;

/// What the writer plans before writing: each volume's room for its body.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Body room of every volume (volume 1's body starts with the head's room).
    room: u64,
    /// A volume is closed when less than this is left.
    slack: u64,
    /// Room for the trailer.
    trailer: u64,
}

/// Reserves the trailer's room from upper bounds on the volume and block counts. `head_len`
/// is the room reserved for the head: in volume 1, and (the head copy) in every trailer.
fn plan(opts: VolumeOptions, head_len: u64, payload_bound: u64) -> Result<Plan, PackError> {
    let too_small = |needed: u64| PackError::VolumeTooSmall { size: opts.size, needed };
    let mut volumes = 1u64;
    for _ in 0..64 {
        let per_volume_blocks = blocks_in(opts.size) + 1;
        let blocks = (volumes + u64::from(opts.parity)) * per_volume_blocks;
        let table = 256 + SIGNATURE_LINES + (volumes + u64::from(opts.parity)) * 100 + blocks * 71;
        if table > MAX_TABLE_BYTES {
            return Err(PackError::TooManyVolumes { size: opts.size, volumes });
        }
        let trailer = (SKIPPABLE_HEADER_LEN + FOOTER_LEN) as u64 + head_len + table;
        let room = opts.size.checked_sub(trailer).ok_or(too_small(trailer + head_len + 64 * 1024))?;
        // A multiple of 64, so parity bodies (the longest data body rounded up to 64) fit too.
        let room = room / 64 * 64;
        let slack = (room / 256).clamp(8 << 10, 1 << 20);
        if room < head_len + 4 * slack {
            return Err(too_small(trailer + head_len + 4 * (8 << 10) * 2));
        }
        // Every volume but the last is filled to within `slack` of its room.
        let needed = (payload_bound + head_len).div_ceil(room - slack).max(1);
        if needed > u64::from(MAX_DATA_VOLUMES) {
            return Err(PackError::TooManyVolumes { size: opts.size, volumes: needed });
        }
        if needed <= volumes {
            return Ok(Plan { room, slack, trailer });
        }
        volumes = needed;
    }
    Err(PackError::TooManyVolumes { size: opts.size, volumes })
}

/// The payload's tar stream size, at most: each member's PAX header, header, content and
/// padding, then the end-of-archive marker.
fn tar_bound(manifest: &Manifest) -> u64 {
    let members: u64 = manifest.entries.iter().map(|e| 3 * BLOCK as u64 + e.size + tar::padding(e.size) as u64).sum();
    members + 2 * BLOCK as u64
}

/// A volume body being written: its SHA-256 and each block's, computed on a thread of
/// their own (two passes of SHA-256 over the compressed bytes would otherwise hold up the
/// thread that feeds the compressor). The file is written back and synced in the background
/// as it grows (see `io::writeback`), so the final fsync of each volume is short.
struct BodyWriter {
    out: BufWriter<Writeback<File>>,
    len: u64,
    hasher: BodyHasher,
    /// Bytes written to all volumes of the set.
    written: Arc<AtomicU64>,
}

impl BodyWriter {
    /// `keep_cached`: the parity pass reads the body back (see [`Writeback::keep_cached`]).
    fn new(file: File, syncer: SyncHandle, written: Arc<AtomicU64>, keep_cached: bool) -> io::Result<BodyWriter> {
        let writeback = Writeback::new(file).with_syncer(syncer);
        let writeback = if keep_cached { writeback.keep_cached() } else { writeback };
        Ok(BodyWriter {
            out: BufWriter::with_capacity(BUNDLE_BUF, writeback),
            len: 0,
            hasher: BodyHasher::start()?,
            written,
        })
    }

    /// The body's table entry for `id`; `path` names the file in an error.
    fn finish(mut self, id: VolumeId, path: &Path) -> Result<VolumeEntry> {
        self.out.flush().map_err(|e| Error::io(path, e))?;
        let (sha256, blocks) = self.hasher.finish()?;
        Ok(VolumeEntry { id, length: self.len, sha256, blocks })
    }

    /// Writes `chunk` (compressor output) and hands it to the hashing thread as it is,
    /// without the copies `write` makes; `chunk` comes back empty, with the capacity of a
    /// buffer the hashing thread is done with.
    fn write_chunk(&mut self, chunk: &mut Vec<u8>) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        // Bytes written through `write` go first (the head's room, at the start of volume 1).
        self.out.flush()?;
        self.out.get_mut().write_all(chunk)?;
        self.len += chunk.len() as u64;
        self.written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.hasher.hand_over(chunk);
        Ok(())
    }
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Bytes handed to the hashing thread at a time (by `update`).
const HASH_CHUNK: usize = 1 << 20;

/// The hashing thread of one body: each block's SHA-256, and the digest of that list.
struct BodyHasher {
    chunks: Option<mpsc::SyncSender<Vec<u8>>>,
    /// Buffers the thread has hashed, back for reuse.
    spare: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    thread: Option<std::thread::JoinHandle<(Digest, Vec<Digest>)>>,
}

impl BodyHasher {
    fn start() -> io::Result<BodyHasher> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let (spare_tx, spare) = mpsc::channel();
        let thread =
            std::thread::Builder::new().name("volume hashing".into()).spawn(move || hash_body(rx, spare_tx))?;
        Ok(BodyHasher { chunks: Some(tx), spare, pending: Vec::with_capacity(HASH_CHUNK), thread: Some(thread) })
    }

    fn update(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= HASH_CHUNK {
            self.send_pending();
        }
    }

    /// Hands `chunk` over whole (after what `update` gathered); leaves in its place an empty
    /// buffer of at least its capacity.
    fn hand_over(&mut self, chunk: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            self.send_pending();
        }
        let capacity = chunk.capacity();
        let replacement = match self.spare.try_recv() {
            Ok(spare) if spare.capacity() >= capacity => spare,
            _ => Vec::with_capacity(capacity),
        };
        self.send(std::mem::replace(chunk, replacement));
    }

    /// Hands over what `update` gathered, gathering on in a buffer the thread has hashed
    /// (so the buffers in use stay the few in flight: a spare left unused would stay
    /// allocated until the body is done, 1 MiB for every MiB of the head's room).
    fn send_pending(&mut self) {
        let replacement = match self.spare.try_recv() {
            Ok(spare) if spare.capacity() >= HASH_CHUNK => spare,
            _ => Vec::with_capacity(HASH_CHUNK),
        };
        let chunk = std::mem::replace(&mut self.pending, replacement);
        self.send(chunk);
    }

    fn send(&mut self, chunk: Vec<u8>) {
        if let Some(tx) = &self.chunks {
            // A failed send means the thread panicked; `finish` reports it.
            let _ = tx.send(chunk);
        }
    }

    fn finish(mut self) -> Result<(Digest, Vec<Digest>)> {
        self.send_pending();
        drop(self.chunks.take());
        match self.thread.take() {
            Some(thread) => Ok(join_unscoped(thread, "volume hashing")?),
            None => Err(Error::Internal("the volume hashing thread is gone".into())),
        }
    }
}

impl Drop for BodyHasher {
    fn drop(&mut self) {
        drop(self.chunks.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The hashing thread: SHA-256 of each [`BLOCK_SIZE`] block of what it receives, and the
/// block list's digest (each byte is hashed once). Each buffer goes back through `spare`
/// once hashed.
fn hash_body(chunks: mpsc::Receiver<Vec<u8>>, spare: mpsc::Sender<Vec<u8>>) -> (Digest, Vec<Digest>) {
    let (mut block, mut len, mut blocks) = (Hasher::new(), 0u64, Vec::new());
    for mut chunk in chunks {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let room = (BLOCK_SIZE - len % BLOCK_SIZE) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            block.update(now);
            len += now.len() as u64;
            rest = later;
            if len.is_multiple_of(BLOCK_SIZE) {
                blocks.push(std::mem::take(&mut block).finish());
            }
        }
        chunk.clear();
        // The writer may be gone (a failed pack); the buffer is then dropped here.
        let _ = spare.send(chunk);
    }
    if !block.is_empty() {
        blocks.push(block.finish());
    }
    (block_list_digest(&blocks), blocks)
}

/// What writing a set produced.
pub(super) struct WrittenSet {
    /// The volumes, data then parity.
    pub(super) paths: Vec<PathBuf>,
    /// Their total size.
    pub(super) bytes: u64,
    /// How long `--verify-written` took.
    pub(super) read_back: Option<Duration>,
    /// Where the head went in volume 1.
    pub(super) head_room: HeadRoom,
    /// Source bytes packed again because the head did not fit its room (0: it fit).
    pub(super) repacked: u64,
}

/// Every volume of a set written under its temporary name, or why not.
enum Temporaries {
    /// Whole (trailers included) and synced, their total size, and where the head went.
    Whole(Vec<Written>, u64, HeadRoom),
    /// The head, of this length, did not fit the room reserved for it in volume 1: the
    /// set must be written again (the temporaries are gone).
    HeadDidNotFit(u64),
}

/// The room a pack needs at its destination for a bundle of at most `bound` bytes: the
/// total, and the largest single file (for a file system's file size limit). A volume set
/// adds, per volume, its trailer (a head copy and the table: at most about 1 MiB plus 72
/// bytes per MiB of the bundle, for the estimate) and one volume per parity volume.
pub(super) fn room_needed(volumes: Option<VolumeOptions>, bound: u64) -> (u64, u64) {
    let Some(v) = volumes else { return (bound, bound) };
    let trailer = (1 << 20) + 72 * (bound >> 20);
    let data = bound.div_ceil(v.size.max(1)) + 1;
    let largest = v.size.min(bound.saturating_add(trailer));
    let total = bound
        .saturating_add(u64::from(v.parity).saturating_mul(largest))
        .saturating_add((data + u64::from(v.parity)).saturating_mul(trailer.min(v.size)));
    (total, largest)
}

/// A volume's temporary file and, once written, its table entry.
struct Written {
    tmp: tempfile::NamedTempFile,
    entry: VolumeEntry,
}

/// The tar stream's writer: zstd frames into data volume bodies, cut before a volume's
/// room could be passed.
///
/// One compression context serves every frame of the set, so its worker threads and
/// buffers are kept from frame to frame. A frame takes input while its worst case stays
/// within the volume's room: what it has produced so far, plus [`frame_bound`] of the input
/// it holds that is not compressed yet (zstd's frame progression says which). Only near the
/// end of a volume, when that bound is what stands in the way, does the writer wait for the
/// compressor to catch up; a frame therefore spans nearly a whole volume, and the pipeline
/// of compression jobs is drained about once per volume, not once per frame of a
/// shrinking series.
struct Cutter<'a> {
    packer: &'a Packer<'a>,
    plan: Plan,
    /// Bytes reserved for the head at the start of volume 1 (zeros until it is written).
    reserved: u64,
    /// The compression context, for every frame.
    cctx: CCtx<'static>,
    /// Compressed bytes on their way into the body.
    out: Vec<u8>,
    done: Vec<Written>,
    /// The volume being written.
    tmp: Option<tempfile::NamedTempFile>,
    /// Its body.
    body: Option<BodyWriter>,
    /// The frame being written into the body.
    frame: Option<Frame>,
    /// Background writeback of the volumes.
    syncer: SyncHandle,
    /// Bytes written to all volumes so far (for a destination-full message).
    written: Arc<AtomicU64>,
}

/// The open frame of the volume being written.
#[derive(Clone, Copy, Debug)]
struct Frame {
    /// The body's length where the frame began.
    start: u64,
    /// Input the frame may still take before its bound is looked at again.
    allowance: u64,
    /// Whether the frame has taken input: until then the compressor's progression still
    /// describes the frame before (a frame begins with its first input).
    begun: bool,
}

/// A compression context for volume frames: `level`, and `threads` workers taking jobs of
/// [`JOB_SIZE`] (as the single-file payload frame is compressed).
fn compressor(level: i32, threads: u32) -> io::Result<CCtx<'static>> {
    let mut cctx = CCtx::try_create().ok_or_else(|| io::Error::other("cannot allocate a zstd context"))?;
    cctx.set_parameter(CParameter::CompressionLevel(level)).map_err(zstd_error)?;
    if threads > 1 {
        cctx.set_parameter(CParameter::NbWorkers(threads)).map_err(zstd_error)?;
        cctx.set_parameter(CParameter::JobSize(JOB_SIZE)).map_err(zstd_error)?;
    }
    Ok(cctx)
}

/// Compressed bytes taken from the compressor at a time, at most: each chunk is written
/// and hashed as it is, so larger than zstd's own suggestion (128 KiB) means fewer calls.
const COMPRESSED_CHUNK: usize = 1 << 20;

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(format!("zstd: {}", zstd::zstd_safe::get_error_name(code)))
}

impl Cutter<'_> {
    fn io_err(&self, e: io::Error) -> Error {
        Error::io(self.packer.out, e)
    }

    /// Body room of the volume being written (volume 1's counts the head's room: its body
    /// starts with it).
    fn room(&self) -> u64 {
        self.plan.room
    }

    fn open_volume(&mut self) -> Result<()> {
        let tmp = self.packer.temp_volume()?;
        let file = tmp.as_file().try_clone().map_err(|e| self.io_err(e))?;
        let read_back_for_parity = self.packer.opts.volumes.is_some_and(|v| v.parity > 0);
        let mut body = BodyWriter::new(file, self.syncer.clone(), Arc::clone(&self.written), read_back_for_parity)
            .map_err(|e| self.io_err(e))?;
        if self.done.is_empty() {
            // The head's room, through the body so its blocks line up; the blocks it
            // overlaps are hashed again once the head is in it (`hash_room_again`).
            io::copy(&mut io::repeat(0).take(self.reserved), &mut body).map_err(|e| self.io_err(e))?;
        }
        self.tmp = Some(tmp);
        self.body = Some(body);
        Ok(())
    }

    /// Closes the last volume; the data volumes written. The compression context (and its
    /// workers' buffers) goes with the cutter, before the head is compressed.
    fn finish(mut self) -> Result<Vec<Written>> {
        self.close_volume()?;
        Ok(self.done)
    }

    fn close_volume(&mut self) -> Result<()> {
        self.end_frame()?;
        if let (Some(tmp), Some(body)) = (self.tmp.take(), self.body.take()) {
            let id = VolumeId::data(self.done.len() as u16 + 1);
            if id.number > MAX_DATA_VOLUMES {
                return Err(Error::Internal("the volume plan was exceeded".into()));
            }
            let entry = body.finish(id, tmp.path())?;
            // What is still dirty of the volume (its last writeback step) goes to the disk
            // in the background while the next volume, or the parity pass, is worked on.
            self.syncer.request(tmp.as_file());
            self.done.push(Written { tmp, entry });
        }
        Ok(())
    }

    /// Ends the open frame: everything it took is compressed and in the body, which must
    /// still be within the volume's room.
    fn end_frame(&mut self) -> Result<()> {
        if self.frame.take().is_some() {
            self.compress(&[], EndDirective::ZSTD_e_end)?;
            let used = self.body.as_ref().map_or(0, |b| b.len);
            if used > self.room() {
                return Err(Error::Internal(format!(
                    "a volume frame passed its room ({used} bytes of {})",
                    self.room()
                )));
            }
        }
        Ok(())
    }

    /// Starts a frame with room for at least one byte of input, closing the volume when it
    /// has less than `slack` left (so no frame is ever empty).
    fn start_frame(&mut self) -> Result<()> {
        loop {
            if self.body.is_none() {
                self.open_volume()?;
            }
            let used = self.body.as_ref().map_or(0, |b| b.len);
            let room = self.room().saturating_sub(used);
            if room < self.plan.slack || max_input(room) == 0 {
                self.close_volume()?;
                continue;
            }
            self.frame = Some(Frame { start: used, allowance: 0, begun: false });
            return Ok(());
        }
    }

    /// Feeds `input` to the compressor (all of it; with `ZSTD_e_flush` or `ZSTD_e_end`, until
    /// everything taken is out) and writes what comes out into the body.
    fn compress(&mut self, input: &[u8], op: EndDirective) -> Result<()> {
        let body = self.body.as_mut().ok_or_else(|| Error::Internal("no volume open".into()))?;
        let io_err = |e| Error::io(self.packer.out, e);
        let mut input = InBuffer::around(input);
        loop {
            self.out.clear();
            let mut output = OutBuffer::around(&mut self.out);
            let left = self.cctx.compress_stream2(&mut output, &mut input, op).map_err(|c| io_err(zstd_error(c)))?;
            body.write_chunk(&mut self.out).map_err(io_err)?;
            let done = match op {
                EndDirective::ZSTD_e_continue => input.pos() == input.src.len(),
                _ => left == 0,
            };
            if done {
                return Ok(());
            }
        }
    }

    /// What the open frame may take now (see [`Budget`]).
    fn budget(&self, frame: Frame) -> Budget {
        let left = self.room().saturating_sub(frame.start);
        if !frame.begun {
            return Budget { input: max_input(left), held: 0, left, working: false };
        }
        let progress = self.cctx.get_frame_progression();
        let held = progress.ingested.saturating_sub(progress.consumed);
        let left = left.saturating_sub(progress.produced);
        Budget { input: max_input(left).saturating_sub(held), held, left, working: progress.nbActiveWorkers > 0 }
    }
}

/// The open frame's budget: with `input` more bytes, its worst case (what it has produced,
/// plus [`frame_bound`] of the input it holds uncompressed) stays within the room.
#[derive(Clone, Copy, Debug)]
struct Budget {
    input: u64,
    /// Input taken and not compressed yet.
    held: u64,
    /// The room beyond what the frame has produced.
    left: u64,
    /// Whether compression workers are busy with what is held.
    working: bool,
}

impl Write for Cutter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(mut frame) = self.frame else {
                self.start_frame().map_err(to_io)?;
                continue;
            };
            if frame.allowance == 0 {
                let budget = self.budget(frame);
                if budget.input == 0 {
                    if budget.held == 0 || budget.left < self.plan.slack {
                        // The room is used up, or all but less than the slack (then the
                        // volume is full enough): the next frame, or volume, takes the rest.
                        self.end_frame().map_err(to_io)?;
                    } else if budget.working {
                        // The bound of what is held stands in the way: wait until the oldest
                        // job has compressed more (its real size takes its bound's place)
                        // while the other jobs go on.
                        self.compress(&[], EndDirective::ZSTD_e_continue).map_err(to_io)?;
                    } else {
                        // Held in the compressor's input buffer, no job started: compress it.
                        self.compress(&[], EndDirective::ZSTD_e_flush).map_err(to_io)?;
                    }
                    continue;
                }
                frame.allowance = budget.input;
            }
            let n = buf.len().min(usize::try_from(frame.allowance).unwrap_or(usize::MAX));
            self.compress(&buf[..n], EndDirective::ZSTD_e_continue).map_err(to_io)?;
            frame.allowance -= n as u64;
            frame.begun = true;
            self.frame = Some(frame);
            return Ok(n);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Carries a library error through `io::Write` (the tar writer's interface) and back.
fn to_io(e: Error) -> io::Error {
    io::Error::other(e)
}

/// The volume writer's own error, if `e` carries one (see [`to_io`]); else `e` as it was.
fn unwrap_volume_error(e: Error) -> Error {
    match e {
        Error::Io { path, source } => {
            if !source.get_ref().is_some_and(|inner| inner.is::<Error>()) {
                return Error::Io { path, source };
            }
            match source.into_inner().map(|b| b.downcast::<Error>()) {
                Some(Ok(inner)) => *inner,
                _ => Error::Internal("a volume writer error was lost".into()),
            }
        }
        other => other,
    }
}

impl Packer<'_> {
    /// A new temporary volume file beside the set, 0644, removed unless persisted.
    fn temp_volume(&self) -> Result<tempfile::NamedTempFile> {
        let dir = parent_dir(self.out);
        let tmp = tempfile::Builder::new()
            .prefix(".airlock-volume-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(|e| Error::io(tmp.path(), e))?;
        Ok(tmp)
    }

    /// The set's volume file name for `id`: `<out>.vol001.airlock`.
    fn volume_path(&self, id: VolumeId) -> PathBuf {
        let name = self.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        parent_dir(self.out).join(id.file_name(&name))
    }

    /// Writes the bundle as a volume set named after `self.out`, the head in `reserved`
    /// bytes of room at the start of volume 1, filling in the manifest's hashes as the
    /// payload is read; the files written and their total size.
    pub(super) fn write_volume_set(
        &self,
        opts: VolumeOptions,
        overwrite: Overwrite,
        manifest: &mut Manifest,
        sources: &mut super::collect::Sources,
        reserved: u64,
    ) -> Result<WrittenSet> {
        if opts.parity > MAX_PARITY_VOLUMES {
            return Err(PackError::TooManyParity { parity: opts.parity }.into());
        }
        let written = Arc::new(AtomicU64::new(0));
        let mut repacked = 0;
        let attempt = |manifest: &mut Manifest, sources: &super::collect::Sources, reserved| {
            self.write_temporaries(opts, manifest, sources, reserved, &written)
                .map_err(|e| self.destination_error(e, written.load(Ordering::Relaxed)))
        };
        let (all, bytes, head_room) = match attempt(&mut *manifest, &*sources, reserved)? {
            Temporaries::Whole(all, bytes, head_room) => (all, bytes, head_room),
            Temporaries::HeadDidNotFit(head) => {
                // The hashes are known now: the second pass checks each file against them.
                for i in manifest.payload_order() {
                    sources.items[i].hashed = true;
                }
                repacked = manifest.carried_size();
                written.store(0, Ordering::Relaxed);
                match attempt(&mut *manifest, &*sources, head)? {
                    Temporaries::Whole(all, bytes, head_room) => (all, bytes, head_room),
                    Temporaries::HeadDidNotFit(again) => {
                        return Err(Error::Internal(format!(
                            "the head of a volume set came out {again} bytes, then {head}: it is not deterministic"
                        )))
                    }
                }
            }
        };
        let read_back = match self.opts.verify_written {
            true => Some(self.reading_back(manifest, |digest| self.read_back_set(&all, digest))?),
            false => None,
        };
        let paths = self.rename_all(all, overwrite).map_err(|e| self.destination_error(e, bytes))?;
        Ok(WrittenSet { paths, bytes, read_back, head_room, repacked })
    }

    /// Every volume of the set, whole (trailer included) and synced, under its temporary
    /// name; their total size. Volume 1 starts with `reserved` bytes of room for the head,
    /// written into it once the payload's hashes are known (see the module docs).
    fn write_temporaries(
        &self,
        opts: VolumeOptions,
        manifest: &mut Manifest,
        sources: &super::collect::Sources,
        reserved: u64,
        written: &Arc<AtomicU64>,
    ) -> Result<Temporaries> {
        // The room is the head copy's length in the trailers, at most (else the set is
        // written again with the head's exact length, checked again then).
        super::preflight::check_trailer_room(reserved)?;
        let plan = plan(opts, reserved, frame_bound(tar_bound(manifest)))?;
        let threads = match self.opts.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        };
        let syncer = Syncer::start(SyncScope::File);
        let mut cutter = Cutter {
            packer: self,
            plan,
            reserved,
            cctx: compressor(self.opts.level, threads).map_err(|e| Error::io(self.out, e))?,
            out: Vec::with_capacity(COMPRESSED_CHUNK),
            done: Vec::new(),
            tmp: None,
            body: None,
            frame: None,
            syncer: syncer.handle(),
            written: Arc::clone(written),
        };
        self.progress.start("packing", manifest.carried_size(), manifest.carried_count() as u64);
        let digests = self.write_tar(&mut cutter, manifest, sources).map_err(unwrap_volume_error)?;
        let mut data = cutter.finish()?;
        for (i, digest) in manifest.payload_order().into_iter().zip(digests) {
            manifest.entries[i].sha256 = digest;
        }
        let manifest_bytes = self.encode(manifest)?;
        let manifest_digest = Digest::of(&manifest_bytes);
        let Some(first) = data.first_mut() else { return Err(Error::Internal("a volume set without volumes".into())) };
        let head_room = match self.place_head(first, reserved, manifest, manifest_bytes)? {
            Ok(placed) => placed,
            Err(head_len) => return Ok(Temporaries::HeadDidNotFit(head_len)),
        };
        // Parity reads the data bodies back: only now is volume 1's whole.
        let parity = self.write_parity(&data, opts.parity, threads, syncer.handle(), written)?;
        syncer.finish().map_err(|e| Error::io(self.out, e))?;
        let table =
            Table { manifest: manifest_digest, volumes: data.iter().chain(&parity).map(|w| w.entry.clone()).collect() };
        let table_bytes = table.encode();
        let signer = &self.signers[0];
        let embedded = crate::keys::sign_embedded(signer, &table_bytes, &signature_comment(signer.key_id()));
        let mut total = 0;
        let all: Vec<Written> = data.into_iter().chain(parity).collect();
        for w in &all {
            let trailer = TrailerParts::new(w.entry.id, head_room.head, &embedded)
                .ok_or_else(|| Error::Internal("a volume trailer exceeds 4 GiB".into()))?;
            append_trailer(&all[0], w, &trailer)?;
            let len = w.tmp.as_file().metadata().map_err(|e| Error::io(w.tmp.path(), e))?.len();
            if len > opts.size || trailer.trailer_len() > plan.trailer {
                return Err(Error::Internal(format!(
                    "volume {} is {len} bytes, over its size {}",
                    w.entry.id, opts.size
                )));
            }
            total += len;
        }
        Ok(Temporaries::Whole(all, total, head_room))
    }

    /// Renames every temporary volume to its name, all or none; removes the volumes of an
    /// earlier set of that name beyond this one (with `--force`).
    fn rename_all(&self, all: Vec<Written>, overwrite: Overwrite) -> Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for w in all {
            let target = self.volume_path(w.entry.id);
            let persisted = match overwrite {
                Overwrite::Replace => w.tmp.persist(&target).map(drop),
                Overwrite::NoClobber => w.tmp.persist_noclobber(&target).map(drop),
            };
            if let Err(e) = persisted {
                // Volumes already renamed are removed: a failed pack leaves no volume.
                for p in &paths {
                    let _ = std::fs::remove_file(p);
                }
                return Err(if e.error.kind() == io::ErrorKind::AlreadyExists {
                    Error::OutputExists { path: target }
                } else {
                    Error::io(&target, e.error)
                });
            }
            paths.push(target);
        }
        // With --force, volumes of an earlier set of this name beyond the new set go: they
        // belong to another bundle and would be given with this one (`NAME.vol*`).
        for stale in existing_volumes(self.out)? {
            if !paths.contains(&stale) {
                std::fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
            }
        }
        sync_dir(parent_dir(self.out))?;
        Ok(paths)
    }

    /// `--verify-written` for a set: every volume synced and dropped from the page cache,
    /// then read back from the medium: each volume's length and every block (parity
    /// included) against the signed table, and the whole verification (FORMAT.md §8) of the
    /// set as a reader would run it, against the packing keys.
    fn read_back_set(&self, all: &[Written], digest: &Digest) -> Result<(Duration, Manifest)> {
        let started = Instant::now();
        for w in all {
            let file = w.tmp.as_file();
            file.sync_data().map_err(|e| Error::io(w.tmp.path(), e))?;
            // Advice: if it fails, the read-back still checks what the cache holds.
            let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
        }
        let paths: Vec<PathBuf> = all.iter().map(|w| w.tmp.path().to_owned()).collect();
        let policy = readback::packers_policy(self.signers)?;
        let checked = (|| -> Result<Manifest> {
            let bundle = Bundle::open_source(&BundleSource::Volumes(paths))?;
            let check = bundle
                .check_volumes(&policy)?
                .ok_or_else(|| Error::Internal("a volume set read back as none".into()))?;
            for (id, path, state) in &check.volumes {
                if *state != VolumeState::Intact {
                    let problem = format!("{state:?}");
                    let damaged = VolumeProblem::Damaged { volume: id.to_string(), path: path.clone(), problem };
                    return Err(Reject::Volumes(Box::new(damaged)).into());
                }
            }
            if check.volumes.len() != all.len() || !check.unreadable.is_empty() {
                return Err(malformed(VOLUMES_MEMBER, "not every volume written reads back as one"));
            }
            let verified = bundle.verify(&VerifyOptions::new(&policy, self.opts.created))?;
            readback::stream_verified(verified, digest, self.progress)
        })();
        let manifest = checked.map_err(|e| match e {
            Error::Rejected(problem) => {
                PackError::ReadBack { path: self.out.to_owned(), problem: Box::new(problem) }.into()
            }
            other => other,
        })?;
        Ok((started.elapsed(), manifest))
    }

    /// Parity bodies over the data bodies (FORMAT.md §14.4), on `threads` workers: see
    /// [`ParityPass`].
    fn write_parity(
        &self,
        data: &[Written],
        parity: u16,
        threads: u32,
        syncer: SyncHandle,
        written: &Arc<AtomicU64>,
    ) -> Result<Vec<Written>> {
        if parity == 0 {
            return Ok(Vec::new());
        }
        let outs = (0..parity).map(|_| self.temp_volume()).collect::<Result<Vec<_>>>()?;
        let length = parity_length(data.iter().map(|w| w.entry.length));
        let blocks = {
            let direct: Vec<_> = outs.iter().map(|tmp| DirectWrites::start(tmp.as_file())).collect();
            let pass = ParityPass {
                data,
                outs: &outs,
                direct: &direct,
                parity_len: length,
                next: AtomicU64::new(0),
                failed: AtomicBool::new(false),
                syncer,
                written,
                writing: std::sync::Mutex::new(()),
            };
            let blocks = pass.run(threads)?;
            for (writes, tmp) in direct.iter().zip(&outs) {
                // The trailer is appended next, unaligned.
                writes.stop().map_err(|e| Error::io(tmp.path(), e))?;
            }
            blocks
        };
        let entries = blocks.into_iter().enumerate().map(|(n, blocks)| VolumeEntry {
            id: VolumeId::parity(n as u16 + 1),
            length,
            sha256: block_list_digest(&blocks),
            blocks,
        });
        Ok(outs.into_iter().zip(entries).map(|(tmp, entry)| Written { tmp, entry }).collect())
    }
}

impl Packer<'_> {
    /// Writes the head frame straight into volume 1's room, the rest of it one padding
    /// frame (`reserve.rs`), then hashes again the blocks over the room. The head is never
    /// held whole (74 MB at a million entries): the trailers copy it from here. `Err` with
    /// the head's length when it does not fit the room: the set must be written again, and
    /// what the head wrote into this volume's room is discarded with it (nothing is written
    /// past the room; an overflow is kept in memory until then, as for a bundle file).
    fn place_head(
        &self,
        first: &mut Written,
        reserved: u64,
        manifest: &Manifest,
        manifest_bytes: Vec<u8>,
    ) -> Result<std::result::Result<HeadRoom, u64>> {
        let path = first.tmp.path().to_owned();
        let io_err = |e| Error::io(&path, e);
        let file = first.tmp.as_file();
        let mut room = RoomWriter::new(file, reserved);
        self.write_head(&mut room, manifest, manifest_bytes)?;
        if !reserve::fits(reserved, room.len()) {
            return Ok(Err(room.len()));
        }
        // Volume 1's body starts at its first byte: its length is where the payload ends.
        let placed = room.place(first.entry.length).map_err(io_err)?;
        if placed.moved != 0 {
            return Err(Error::Internal("a volume set's payload was moved after its head was found to fit".into()));
        }
        hash_room_again(file, &mut first.entry, reserved).map_err(io_err)?;
        Ok(Ok(placed))
    }
}

/// Appends `trailer` to volume `w`, its head copy taken from the start of volume 1
/// (`first`, where [`Packer::place_head`] wrote it), and syncs the volume.
fn append_trailer(first: &Written, w: &Written, trailer: &TrailerParts) -> Result<()> {
    let io_err = |e| Error::io(w.tmp.path(), e);
    let file = w.tmp.as_file();
    let end = file.metadata().map_err(io_err)?.len();
    file.write_all_at(&trailer.header, end).map_err(io_err)?;
    let head_at = end + trailer.header.len() as u64;
    reserve::copy_range(first.tmp.as_file(), 0, file, head_at, trailer.head_len).map_err(io_err)?;
    file.write_all_at(&trailer.rest, head_at + trailer.head_len).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// Hashes again, from the file as it is now, the blocks of volume 1's body that overlap
/// its first `room` bytes (they streamed as zeros; the head and padding frames are there
/// now), and the block list's digest.
fn hash_room_again(file: &File, entry: &mut VolumeEntry, room: u64) -> io::Result<()> {
    let mut buf = vec![0u8; BLOCK_SIZE as usize];
    for j in 0..blocks_in(room.min(entry.length)) {
        let range = block_range(entry.length, j);
        let block = &mut buf[..(range.end - range.start) as usize];
        file.read_exact_at(block, range.start)?;
        let slot = entry.blocks.get_mut(j as usize).ok_or_else(|| io::Error::other("a block hashed is missing"))?;
        *slot = Digest::of(block);
    }
    entry.sha256 = block_list_digest(&entry.blocks);
    Ok(())
}

/// The parity pass: once the last data volume is written, each worker takes the next
/// stripe `j`, reads block `j` of every data body back (from the page cache: they were just
/// written), encodes it ([`parity::StripeEncoder`]: XOR for one parity volume), and writes
/// and hashes parity block `j` of every parity body at its offset, with direct writes where
/// the file system takes them (a parity block is never read back, and copying it into the
/// page cache cost more system time than the encoding). Hashing per block is
/// what lets the pass run on every core: a body is named by the digest of its block
/// digests. Memory: two blocks per worker (plus the codec's work for several parity
/// volumes).
struct ParityPass<'a> {
    data: &'a [Written],
    /// The parity volumes' temporary files.
    outs: &'a [tempfile::NamedTempFile],
    /// How each of `outs` is written: around the page cache, since the pass never reads a
    /// parity block back ([`DirectWrites`]).
    direct: &'a [DirectWrites<'a>],
    /// Every parity body's length.
    parity_len: u64,
    /// The next stripe to take.
    next: AtomicU64,
    /// Set by a worker that failed, so the others stop.
    failed: AtomicBool,
    syncer: SyncHandle,
    written: &'a Arc<AtomicU64>,
    /// Held while a parity block is written: a file system takes the file's lock for a
    /// write anyway, and workers waiting on it spin; waiting here they sleep.
    writing: std::sync::Mutex<()>,
}

/// The digests of one stripe's parity blocks, by stripe.
type StripeDigests = Vec<(u64, Vec<Digest>)>;

impl ParityPass<'_> {
    /// Runs the pass; each parity body's block digests, in order.
    fn run(&self, threads: u32) -> Result<Vec<Vec<Digest>>> {
        let stripes = blocks_in(self.parity_len);
        let workers = u64::from(threads.max(1)).min(stripes.max(1));
        let done: Vec<Result<StripeDigests>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| std::thread::Builder::new().name("volume parity".into()).spawn_scoped(s, || self.work()))
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => crate::io::sync::join(h, "volume parity").and_then(|r| r),
                    Err(e) => Err(Error::io(self.outs.first().map_or(Path::new("."), |t| t.path()), e)),
                })
                .collect()
        });
        let mut blocks = vec![vec![Digest([0; 32]); stripes as usize]; self.outs.len()];
        let mut seen = 0u64;
        for stripe_digests in done {
            for (j, digests) in stripe_digests? {
                for (body, digest) in blocks.iter_mut().zip(digests) {
                    body[j as usize] = digest;
                }
                seen += 1;
            }
        }
        if seen != stripes {
            return Err(Error::Internal(format!("the parity pass encoded {seen} stripes of {stripes}")));
        }
        Ok(blocks)
    }

    /// One worker: stripes until none is left or a worker failed.
    fn work(&self) -> Result<StripeDigests> {
        let mut encoder = parity::StripeEncoder::new(self.data.len(), self.outs.len());
        let mut scratch = Aligned::default();
        let mut done = Vec::new();
        let stripes = blocks_in(self.parity_len);
        loop {
            let j = self.next.fetch_add(1, Ordering::Relaxed);
            if j >= stripes || self.failed.load(Ordering::Relaxed) {
                return Ok(done);
            }
            match self.stripe(&mut encoder, &mut scratch, j) {
                Ok(digests) => done.push((j, digests)),
                Err(e) => {
                    self.failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    }

    /// Stripe `j`: its parity blocks written, and their digests.
    fn stripe(&self, encoder: &mut parity::StripeEncoder, scratch: &mut Aligned, j: u64) -> Result<Vec<Digest>> {
        let shard = block_range(self.parity_len, j);
        encoder.start((shard.end - shard.start) as usize)?;
        for w in self.data {
            let range = block_range(w.entry.length, j);
            encoder.add((range.end - range.start) as usize, |block: &mut [u8]| {
                w.tmp.as_file().read_exact_at(block, range.start).map_err(|e| Error::io(w.tmp.path(), e))
            })?;
        }
        let mut outs = self.outs.iter().zip(self.direct);
        let mut digests = Vec::with_capacity(self.outs.len());
        encoder.finish(|block| {
            let (tmp, writes) = outs.next().ok_or_else(|| Error::Internal("parity gave too many blocks".into()))?;
            digests.push(Digest::of(block));
            let writing = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            writes.write_all_at(block, shard.start, scratch).map_err(|e| Error::io(tmp.path(), e))?;
            drop(writing);
            if !writes.is_direct() {
                // Counted towards the next background sync, as `Writeback` does, which
                // starts writeback. No `POSIX_FADV_DONTNEED` per block: from two workers
                // on one file its 1 MiB writeback starts cost more system time than they
                // saved.
                self.syncer.wrote(block.len() as u64, tmp.as_file());
            }
            self.written.fetch_add(block.len() as u64, Ordering::Relaxed);
            Ok::<(), Error>(())
        })?;
        Ok(digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_sizes_parse_with_suffixes_and_presets() {
        assert_eq!(parse_volume_size("100"), Ok(100));
        assert_eq!(parse_volume_size("2K"), Ok(2048));
        assert_eq!(parse_volume_size("3M"), Ok(3 << 20));
        assert_eq!(parse_volume_size("1G"), Ok(1 << 30));
        assert_eq!(parse_volume_size("fat32"), Ok((4 << 30) - 1));
        assert_eq!(parse_volume_size("dvd"), Ok(4_700_000_000));
        assert!(parse_volume_size("0").is_err());
        assert!(parse_volume_size("floppy").unwrap_err().contains("fat32, dvd, dvd-dl, bd25, bd50"));
        assert!(parse_volume_size("99999999999T").is_err());
    }

    #[test]
    fn the_plan_reserves_room_for_the_trailer_and_refuses_tiny_volumes() {
        let opts = VolumeOptions { size: 4 << 20, parity: 2 };
        let p = plan(opts, 2000, 50 << 20).unwrap();
        assert!(p.room + p.trailer <= opts.size);
        assert!(p.room > 2000 + 4 * p.slack);
        assert!(matches!(
            plan(VolumeOptions { size: 4000, parity: 0 }, 2000, 1),
            Err(PackError::VolumeTooSmall { .. })
        ));
    }
}
