//! The bundle reader and verifier.
//!
//! [`Bundle::open`] reads only the head frame (manifest, signatures, checksum list), so
//! `inspect` costs the same whatever the payload size. [`Bundle::verify_head`] checks the
//! signatures against a [`Trust`] set *before* the manifest is decoded. [`Bundle::read_payload`]
//! then streams every payload member to a [`PayloadSink`], checking that each is exactly the
//! next manifest entry with the canonical header, the declared size and the declared SHA-256,
//! and that the archive ends exactly where the format says. Every failure is a
//! [`Reject`](crate::error::Reject) naming the member.

pub mod artifacts;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::error::{malformed, Error, Reject, Result};
use crate::format::manifest::{self, Entry, Manifest, MAX_MANIFEST_BYTES};
use crate::format::sums::sums_match;
use crate::format::tar::{self, Next, BLOCK};
use crate::format::{
    DATA_DIR, MANIFEST_MEMBER, MAX_SIGNATURES, MAX_SIGNATURE_BYTES, MAX_SUMS_BYTES, SIGNATURES_DIR, SUMS_MEMBER,
    WINDOW_LOG_MAX,
};
use crate::io::digest::{Digest, Hasher};
use crate::keys::{self, KeyId, Signature};
use crate::policy::{Policy, Trust, TrustReport};
use crate::progress::Progress;

/// Copy buffer size for payload members.
const COPY_BUF: usize = 1 << 20;

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
struct Frames {
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
    /// Starts the next frame; false at the end of the file.
    fn begin(&mut self) -> io::Result<bool> {
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
    fn offset(&self) -> Option<u64> {
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
        let FrameState::In(dec) = std::mem::replace(&mut self.state, FrameState::Broken) else { unreachable!() };
        self.state = FrameState::Between(dec.finish());
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
struct Payload<'a>(&'a mut Frames);

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

/// The head of a bundle, read but not yet verified.
pub struct Head {
    /// The exact manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// SHA-256 of the manifest bytes: the bundle's identity in the mirror and in `previous`.
    pub manifest_digest: Digest,
    /// The manifest signatures, in member order (sorted by key id).
    pub signatures: Vec<Signature>,
    /// The `airlock/SHA256SUMS.sig` member.
    pub sums: Vec<u8>,
    /// Length of the head frame in the bundle file.
    pub head_frame_len: u64,
}

/// A bundle head whose signatures met the trust threshold.
pub struct Verified {
    /// The decoded manifest.
    pub manifest: Manifest,
    /// SHA-256 of the manifest bytes.
    pub manifest_digest: Digest,
    /// Signature statuses and the valid signers.
    pub trust: TrustReport,
}

/// Receives verified payload content, entry by entry.
///
/// A sink runs on its own thread, fed in order: `open`, `write`s, then `close` only once
/// the entry's size and SHA-256 have matched. If any entry fails, the sink sees no
/// further calls and the payload read fails: the sink must treat everything it received as
/// unverified until `read_payload` returns `Ok`.
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

/// Discards content: `verify`.
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

/// An open bundle positioned after its head frame.
pub struct Bundle {
    path: PathBuf,
    frames: Frames,
    head: Head,
}

impl Bundle {
    /// Opens a bundle and reads its head frame.
    pub fn open(path: &Path) -> Result<Bundle> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::Usage(format!("{} is not a regular file", path.display())));
        }
        let src = BufReader::with_capacity(1 << 20, Counting { inner: file, count: 0 });
        let mut frames = Frames { state: FrameState::Between(src), produced: 0, index: 0 };
        let head = read_head(&mut frames)?;
        Ok(Bundle { path: path.to_owned(), frames, head })
    }

    /// The bundle file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The head, unverified.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Decodes the manifest WITHOUT checking signatures: for display only.
    pub fn unverified_manifest(&self) -> Result<Manifest> {
        Ok(manifest::decode(&self.head.manifest_bytes)?)
    }

    /// Checks the manifest signatures against `trust`, then decodes the manifest and checks
    /// that the checksum list matches it.
    pub fn verify_head(&self, trust: &Trust) -> Result<Verified> {
        self.verify_head_with(&Policy::from_trust(trust.clone()))
    }

    /// Checks the manifest signatures against the policy's rule for the bundle's channel
    /// (read from the fixed-layout start of the manifest, confirmed after decoding), then
    /// decodes the manifest and checks that the checksum list matches it.
    pub fn verify_head_with(&self, policy: &Policy) -> Result<Verified> {
        let bytes = &self.head.manifest_bytes;
        let (channel, created) = manifest::peek_channel_created(bytes)?;
        let report = policy.check_head(bytes, MANIFEST_MEMBER, &self.head.signatures, &channel, created)?;
        let manifest = manifest::decode(bytes)?;
        if manifest.channel != channel || manifest.created != created {
            return Err(Reject::Manifest(
                "channel or created read before decoding differ from the decoded manifest".into(),
            )
            .into());
        }
        let trust = policy.channel_trust(&channel)?;
        check_sums(&self.head.sums, &manifest, trust)?;
        Ok(Verified { manifest, manifest_digest: self.head.manifest_digest, trust: report })
    }

    /// Evaluates the manifest signatures against `policy` without deciding anything (for
    /// `inspect`): every signature's status and whether the threshold is met.
    pub fn evaluate_signatures(&self, policy: &Policy) -> Result<TrustReport> {
        let bytes = &self.head.manifest_bytes;
        let (channel, created) = manifest::peek_channel_created(bytes)?;
        Ok(policy.evaluate_head(bytes, &self.head.signatures, &channel, created))
    }

    /// Streams the payload into `sink`, checking every member against `verified.manifest`
    /// and the end of the archive and of the file.
    ///
    /// Decompression runs on its own thread, handing over chunks through a bounded channel,
    /// so it overlaps with hashing and writing; memory stays at a few chunks.
    pub fn read_payload(self, verified: &Verified, sink: &mut dyn PayloadSink, progress: &dyn Progress) -> Result<()> {
        // The head (manifest bytes, checksum list) is not needed while the payload streams.
        let Bundle { mut frames, head, .. } = self;
        drop(head);
        std::thread::scope(|scope| {
            let (chunks_tx, chunks_rx) = mpsc::sync_channel(PIPELINE_DEPTH);
            let (spare_tx, spare_rx) = mpsc::channel();
            scope.spawn(move || decompress_chunks(Payload(&mut frames), chunks_tx, spare_rx));
            let mut stream =
                ChunkReader { chunks: chunks_rx, spare: spare_tx, current: Vec::new(), pos: 0, done: false };

            let (ops_tx, ops_rx) = mpsc::sync_channel(PIPELINE_DEPTH);
            let wants_data = sink.wants_data();
            let entries = &verified.manifest.entries;
            let sink_thread = scope.spawn(move || run_sink(sink, entries, ops_rx));
            let mut forward = ForwardingSink { ops: ops_tx, wants_data, batch: Vec::new(), batch_bytes: 0 };

            let mut buf = vec![0u8; COPY_BUF];
            let mut names = EntryNames::default();
            let verified_result = verified
                .manifest
                .payload_order()
                .into_iter()
                .try_for_each(|i| read_entry(&mut stream, entries, i, &mut forward, &mut names, &mut buf, progress))
                .and_then(|()| read_end(&mut stream))
                .and_then(|()| forward.flush());
            // Dropping the sender ends the sink thread; dropping `stream` (on return) stops
            // the decompression thread early on a rejection.
            drop(forward);
            let sink_result =
                sink_thread.join().unwrap_or_else(|_| Err(Error::Usage("payload writer thread panicked".into())));
            match (verified_result, sink_result) {
                (Err(Error::Usage(m)), Err(sink_error)) if m == SINK_GONE => Err(sink_error),
                (Err(e), _) => Err(e),
                (Ok(()), r) => r,
            }
        })
    }
}

/// Work for the sink thread. Entries are named by their index in the manifest (which the
/// sink thread borrows too), so handing one over copies nothing.
enum SinkOp {
    Open(usize),
    Data(Vec<u8>),
    Close(usize),
}

/// Marks "the sink thread stopped", so its own error is reported instead.
const SINK_GONE: &str = "payload writer stopped";

/// Runs a sink on its own thread until the sender goes away or the sink fails.
fn run_sink(sink: &mut dyn PayloadSink, entries: &[Entry], batches: mpsc::Receiver<Vec<SinkOp>>) -> Result<()> {
    for batch in batches {
        for op in batch {
            match op {
                SinkOp::Open(i) => sink.open(&entries[i])?,
                SinkOp::Data(bytes) => sink.write(&bytes)?,
                SinkOp::Close(i) => sink.close(&entries[i])?,
            }
        }
    }
    Ok(())
}

/// Hands sink calls to the sink thread in batches: one hand-over per small file would cost
/// more in thread wake-ups than writing the file.
struct ForwardingSink {
    ops: mpsc::SyncSender<Vec<SinkOp>>,
    wants_data: bool,
    batch: Vec<SinkOp>,
    batch_bytes: usize,
}

/// A batch is handed over once it holds this many bytes or operations.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_OPS: usize = 512;

impl ForwardingSink {
    fn push(&mut self, op: SinkOp, bytes: usize) -> Result<()> {
        self.batch.push(op);
        self.batch_bytes += bytes;
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_OPS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        self.ops.send(batch).map_err(|_| Error::Usage(SINK_GONE.into()))
    }

    /// Entry `entry` (an index into the manifest's entries) starts.
    fn open(&mut self, entry: usize) -> Result<()> {
        self.push(SinkOp::Open(entry), 0)
    }

    /// Content of the current entry.
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if !self.wants_data {
            return Ok(());
        }
        // A fresh buffer each time: recycling them would let small-file buffers grow to
        // chunk size one by one and keep all that memory.
        self.push(SinkOp::Data(bytes.to_vec()), bytes.len())
    }

    /// Entry `entry` ended and matched its hash.
    fn close(&mut self, entry: usize) -> Result<()> {
        self.push(SinkOp::Close(entry), 0)
    }
}

/// Chunks in flight between the decompression thread and the verifier.
const PIPELINE_DEPTH: usize = 4;

/// A decompressed chunk, or the error that ended decompression. An empty chunk is the end.
type Chunk = io::Result<Vec<u8>>;

/// The decompression thread: fills chunks from `stream` until its end or an error.
fn decompress_chunks(mut stream: impl Read, chunks: mpsc::SyncSender<Chunk>, spare: mpsc::Receiver<Vec<u8>>) {
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(COPY_BUF, 0);
        let mut filled = 0;
        let outcome = loop {
            match stream.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        let at_end = filled == 0;
        if filled > 0 && chunks.send(Ok(buf)).is_err() {
            return; // the reader stopped: the bundle was rejected or fully read
        }
        if let Err(e) = outcome {
            let _ = chunks.send(Err(e));
            return;
        }
        if at_end {
            let _ = chunks.send(Ok(Vec::new()));
            return;
        }
    }
}

/// Reads the chunks handed over by [`decompress_chunks`] as one stream.
struct ChunkReader {
    chunks: mpsc::Receiver<Chunk>,
    spare: mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            let next = match self.chunks.recv() {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => return Err(io::Error::other("decompression thread ended unexpectedly")),
            };
            if next.is_empty() {
                self.done = true;
            }
            let used = std::mem::replace(&mut self.current, next);
            let _ = self.spare.send(used);
            self.pos = 0;
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn read_head(frames: &mut Frames) -> Result<Head> {
    let at_start = "start of bundle";
    match frames.begin() {
        Ok(true) => {}
        Ok(false) => return Err(malformed(at_start, "file is empty")),
        Err(e) => return Err(tar::stream_error(e, at_start)),
    }
    let manifest_bytes = read_head_member(frames, Some(MANIFEST_MEMBER), MAX_MANIFEST_BYTES, "member 1")?.1;
    let mut signatures: Vec<Signature> = Vec::new();
    let sums = loop {
        let at = format!("member {}", signatures.len() + 2);
        let (name, content) = read_head_member(frames, None, MAX_SUMS_BYTES, &at)?;
        if name == SUMS_MEMBER {
            break content;
        }
        let id = signature_member_id(&name).ok_or_else(|| {
            malformed(&at, format!("unexpected member {name:?}; expected {SIGNATURES_DIR}<keyid>.sig or {SUMS_MEMBER}"))
        })?;
        if content.len() as u64 > MAX_SIGNATURE_BYTES || signatures.len() >= MAX_SIGNATURES {
            return Err(malformed(&at, format!("{name}: too large or too many signatures")));
        }
        let sig = Signature::parse(&content).map_err(|e| malformed(&name, e.to_string()))?;
        if sig.key_id() != id {
            return Err(malformed(&name, format!("holds a signature by key {}, not {id}", sig.key_id())));
        }
        if signatures.last().is_some_and(|last| last.key_id() >= id) {
            return Err(malformed(&name, "signature members are not sorted by key id, or repeat one"));
        }
        signatures.push(sig);
    };
    if signatures.is_empty() {
        return Err(malformed(SUMS_MEMBER, "the bundle has no manifest signature"));
    }
    let mut probe = [0u8; 1];
    match frames.read(&mut probe) {
        Ok(0) => {}
        Ok(_) => return Err(malformed("head frame", format!("continues after {SUMS_MEMBER}"))),
        Err(e) => return Err(tar::stream_error(e, "end of head frame")),
    }
    let head_frame_len = frames.offset().unwrap_or(0);
    Ok(Head { manifest_digest: Digest::of(&manifest_bytes), manifest_bytes, signatures, sums, head_frame_len })
}

/// Reads one head member: canonical header (mode 0644), size within `limit`, content,
/// zero padding. With `expect_name`, the name must match.
fn read_head_member(frames: &mut Frames, expect_name: Option<&str>, limit: u64, at: &str) -> Result<(String, Vec<u8>)> {
    let header = match tar::read_header(frames, at)? {
        Next::Member(h) => h,
        Next::ZeroBlock => return Err(malformed(at, "end of archive inside the head")),
    };
    let name = header.name.clone();
    if let Some(want) = expect_name {
        if name != want {
            return Err(malformed(at, format!("expected {want:?} first, found {name:?}")));
        }
    }
    // A signature member is tiny; hold it to its own limit before reading any of it.
    let limit = if name.starts_with(SIGNATURES_DIR) { limit.min(MAX_SIGNATURE_BYTES) } else { limit };
    if header.size > limit {
        return Err(Error::Rejected(Reject::Limit {
            what: format!("{name} of {} bytes", header.size),
            limit: format!("{limit} bytes"),
        }));
    }
    tar::expect_header(&header, &name, header.size, 0o644, at)?;
    let mut content = vec![0u8; header.size as usize];
    tar::read_exact(frames, &mut content, &name)?;
    read_padding(frames, header.size, &name)?;
    Ok((name, content))
}

fn signature_member_id(name: &str) -> Option<KeyId> {
    let hex = name.strip_prefix(SIGNATURES_DIR)?.strip_suffix(".sig")?;
    if hex.len() != 16 || hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    KeyId::from_hex(hex)
}

fn read_padding(r: &mut impl Read, size: u64, at: &str) -> Result<()> {
    let mut pad = [0u8; BLOCK];
    let pad = &mut pad[..tar::padding(size)];
    tar::read_exact(r, pad, at)?;
    if pad.iter().any(|&b| b != 0) {
        return Err(malformed(at, "non-zero bytes in the padding after the content"));
    }
    Ok(())
}

/// The checksum list must be exactly the one derived from the manifest, and if its signer
/// is a trusted key, its signature must verify.
fn check_sums(sums: &[u8], manifest: &Manifest, trust: &Trust) -> Result<()> {
    let (sig, message) = keys::parse_embedded(sums).map_err(|e| malformed(SUMS_MEMBER, e.to_string()))?;
    if !sums_match(manifest, message) {
        return Err(malformed(SUMS_MEMBER, "checksum list does not match the manifest"));
    }
    if let Some(key) = trust.key(sig.key_id()) {
        key.verify(message, &sig)
            .map_err(|_| Reject::BadSignature { key_id: sig.key_id(), what: SUMS_MEMBER.to_owned() })?;
    }
    Ok(())
}

/// The member name an entry must have and the position it names in errors, rebuilt in
/// place for each entry (two fresh strings per entry are a measurable cost with many small
/// files).
#[derive(Default)]
struct EntryNames {
    name: String,
    at: String,
}

impl EntryNames {
    fn set(&mut self, entry: &Entry) {
        self.name.clear();
        self.name.push_str(DATA_DIR);
        self.name.push_str(entry.path.as_str());
        self.at.clear();
        self.at.push_str("member ");
        self.at.push_str(&self.name);
    }
}

/// Reads, checks and forwards entry `i` of `entries`.
fn read_entry(
    stream: &mut impl Read,
    entries: &[Entry],
    i: usize,
    sink: &mut ForwardingSink,
    names: &mut EntryNames,
    buf: &mut [u8],
    progress: &dyn Progress,
) -> Result<()> {
    let entry = &entries[i];
    names.set(entry);
    let EntryNames { name, at } = &*names;
    let header = match tar::read_header(stream, at)? {
        Next::Member(h) => h,
        Next::ZeroBlock => return Err(malformed(at, "missing: the archive ends before this manifest entry")),
    };
    tar::expect_header(&header, name, entry.size, entry.mode.bits(), at)?;
    sink.open(i)?;
    let mut hasher = Hasher::new();
    let mut left = entry.size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = match stream.read(&mut buf[..want]) {
            Ok(0) => return Err(Error::Rejected(Reject::Truncated { at: at.clone() })),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(tar::stream_error(e, at)),
        };
        hasher.update(&buf[..n]);
        sink.write(&buf[..n])?;
        progress.add_bytes(n as u64);
        left -= n as u64;
    }
    read_padding(stream, entry.size, at)?;
    let actual = hasher.finish();
    if actual != entry.sha256 {
        return Err(Error::Rejected(Reject::HashMismatch {
            path: entry.path.to_string(),
            expected: entry.sha256.to_hex(),
            actual: actual.to_hex(),
        }));
    }
    sink.close(i)?;
    progress.add_file();
    Ok(())
}

/// After the last entry: exactly two zero blocks, then the end of the decompressed stream,
/// then the end of the file.
fn read_end(stream: &mut impl Read) -> Result<()> {
    let at = "end of archive";
    match tar::read_header(stream, at)? {
        Next::ZeroBlock => {}
        Next::Member(h) => {
            return Err(malformed(at, format!("extra member {:?} that the manifest does not list", h.name)))
        }
    }
    let mut block = [0u8; BLOCK];
    tar::read_exact(stream, &mut block, at)?;
    if block.iter().any(|&b| b != 0) {
        return Err(malformed(at, "second end-of-archive block is not zero"));
    }
    let mut probe = [0u8; 1];
    match stream.read(&mut probe) {
        Ok(0) => Ok(()),
        Ok(_) => Err(malformed(at, "trailing data after the end-of-archive marker")),
        Err(e) => Err(tar::stream_error(e, "after end of archive")),
    }
}
