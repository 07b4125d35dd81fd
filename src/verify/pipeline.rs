//! Streaming the payload (FORMAT.md §8 step 6) on three threads, so decompression, hashing
//! and writing overlap while memory stays at a few chunks:
//!
//! ```text
//!   bundle file (frames 2..n)
//!        |
//!        v
//!   +-------------------+   PAYLOAD_CHUNK (1 MiB) chunks,                    +------------------------+
//!   | decompression     | -- sync_channel(PAYLOAD_CHUNKS_QUEUED = 4) ------> | verifier               |
//!   | thread            | <------------------------------------------------- | (the calling thread)   |
//!   | decompress_chunks |   used chunks back for reuse (channel, unbounded;  | verify_members:        |
//!   +-------------------+   at most the chunks in flight)                    | headers, SHA-256,      |
//!                                                                            | padding, end of archive|
//!                                                                            +------------------------+
//!                                                                                       |
//!    ForwardingSink: batches of open/write/close (the writes' content back to back      |
//!    in one buffer), handed over at SINK_BATCH_OPS (512) calls or SINK_BATCH_BYTES      |
//!    (1 MiB), into sync_channel(SINK_BATCHES_QUEUED = 4); content buffers come back     v
//!    for reuse (channel, unbounded; at most the batches in flight)
//!                                                                            +------------------------+
//!                                                                            | sink thread: run_sink  |
//!                                                                            | the PayloadSink (with  |
//!                                                                            | ArtifactSink around it,|
//!                                                                            | which may start its own|
//!                                                                            | verifier threads)      |
//!                                                                            +------------------------+
//! ```
//!
//! Who reports what:
//! - The **decompression thread** decides nothing: a read or zstd error travels in-band as
//!   the last chunk, and the verifier turns it into a rejection naming the member it was
//!   reading. When the verifier stops early, the thread's next send fails and it returns.
//! - The **verifier** rejects ([`Reject`]) or fails (I/O) and stops; dropping its ends of both
//!   channels stops the other two threads.
//! - The **sink thread** returns its first error and stops receiving; the verifier's next
//!   hand-over then fails ([`Stop::SinkGone`]) and the sink's own error is reported.
//! - A **panic** in either thread is a bug in airlock: both are joined with
//!   [`join`](crate::io::sync::join), and a panic becomes [`Error::Internal`], reported
//!   instead of whatever the verifier concluded from the stream the thread left behind.
//!
//! The sizes are in `io::tuning`, with the measurements behind them.

use std::io::{self, Read};
use std::sync::mpsc;

use super::frames::{Frames, Payload};
use super::read_padding;
use super::sink::PayloadSink;
use crate::error::{malformed, Error, Reject, Result};
use crate::format::manifest::{Entry, Manifest};
use crate::format::tar::{self, Next, BLOCK};
use crate::format::DATA_DIR;
use crate::io::digest::Hasher;
use crate::io::sync::{join, Batcher};
use crate::io::tuning::{PAYLOAD_CHUNK, PAYLOAD_CHUNKS_QUEUED, SINK_BATCHES_QUEUED, SINK_BATCH_BYTES, SINK_BATCH_OPS};
use crate::progress::Progress;

/// Streams the payload frames into `sink`, checking every member against `manifest` (in
/// payload order) and the end of the archive, of the decompressed stream and of the file.
pub(super) fn stream_payload(
    frames: &mut Frames,
    manifest: &Manifest,
    sink: &mut dyn PayloadSink,
    progress: &dyn Progress,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (chunks_tx, chunks_rx) = mpsc::sync_channel(PAYLOAD_CHUNKS_QUEUED);
        let (spare_tx, spare_rx) = mpsc::channel();
        let decompressor = scope.spawn(move || decompress_chunks(Payload(frames), chunks_tx, spare_rx));
        let mut stream = ChunkReader { chunks: chunks_rx, spare: spare_tx, current: Vec::new(), pos: 0, done: false };

        let (batches_tx, batches_rx) = mpsc::sync_channel(SINK_BATCHES_QUEUED);
        let (content_tx, content_rx) = mpsc::channel();
        let wants_data = sink.wants_data();
        let entries = &manifest.entries;
        let sink_thread = scope.spawn(move || run_sink(sink, entries, batches_rx, content_tx));
        let mut forward = ForwardingSink::new(batches_tx, content_rx, wants_data);

        let verified = verify_members(&mut stream, manifest, &mut forward, progress);
        // Dropping the sender ends the sink thread; dropping the chunk reader stops the
        // decompression thread early on a rejection.
        drop(forward);
        drop(stream);
        let sink_result = join(sink_thread, "payload sink");
        let decompressed = join(decompressor, "payload decompression");
        outcome(verified, sink_result, decompressed)
    })
}

/// Why the verifier stopped before the end of the payload.
enum Stop {
    /// The bundle was rejected, or reading it failed.
    Failed(Error),
    /// The sink thread stopped: it failed, and its own error is the one to report.
    SinkGone,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Failed(e)
    }
}

/// The one result of the three threads; see the module docs for the precedence.
fn outcome(verified: Result<(), Stop>, sink: Result<Result<()>>, decompressed: Result<()>) -> Result<()> {
    let sink = sink?;
    decompressed?;
    match verified {
        Ok(()) => sink,
        Err(Stop::Failed(e)) => Err(e),
        Err(Stop::SinkGone) => match sink {
            Err(e) => Err(e),
            Ok(()) => Err(Error::Internal("the payload sink thread stopped without an error".into())),
        },
    }
}

/// The verifier: every entry in payload order, then the end of the archive.
fn verify_members(
    stream: &mut ChunkReader,
    manifest: &Manifest,
    sink: &mut ForwardingSink,
    progress: &dyn Progress,
) -> Result<(), Stop> {
    let mut buf = vec![0u8; PAYLOAD_CHUNK];
    let mut names = EntryNames::default();
    for i in manifest.payload_order() {
        read_entry(stream, &manifest.entries, i, sink, &mut names, &mut buf, progress)?;
    }
    read_end(stream)?;
    sink.flush()
}

/// Work for the sink thread. Entries are named by their index in the manifest (which the
/// sink thread borrows too), so handing one over copies nothing.
enum SinkOp {
    Open(usize),
    /// The next this many bytes of the batch's content.
    Data(usize),
    Close(usize),
}

/// Sink calls handed over at once, with the content of their writes back to back in one
/// buffer: a buffer per write, allocated on the verifier thread and freed on the sink
/// thread, made the two take turns on the allocator's lock once per small file.
struct SinkBatch {
    ops: Vec<SinkOp>,
    content: Vec<u8>,
}

/// Runs a sink on its own thread until the sender goes away or the sink fails. Each batch's
/// content buffer goes back through `spare` once used.
fn run_sink(
    sink: &mut dyn PayloadSink,
    entries: &[Entry],
    batches: mpsc::Receiver<SinkBatch>,
    spare: mpsc::Sender<Vec<u8>>,
) -> Result<()> {
    for SinkBatch { ops, mut content } in batches {
        let mut at = 0;
        for op in ops {
            match op {
                SinkOp::Open(i) => sink.open(&entries[i])?,
                SinkOp::Data(n) => {
                    sink.write(&content[at..at + n])?;
                    at += n;
                }
                SinkOp::Close(i) => sink.close(&entries[i])?,
            }
        }
        content.clear();
        // The verifier may be done; the buffer is then dropped here.
        let _ = spare.send(content);
    }
    Ok(())
}

/// Hands sink calls to the sink thread in batches.
struct ForwardingSink {
    batches: mpsc::SyncSender<SinkBatch>,
    wants_data: bool,
    ops: Batcher<SinkOp>,
    content: Vec<u8>,
    /// Content buffers the sink thread is done with. At most the batches in flight exist,
    /// each of at most [`SINK_BATCH_BYTES`] or one write, whichever is larger.
    spare: mpsc::Receiver<Vec<u8>>,
}

impl ForwardingSink {
    fn new(batches: mpsc::SyncSender<SinkBatch>, spare: mpsc::Receiver<Vec<u8>>, wants_data: bool) -> ForwardingSink {
        ForwardingSink {
            batches,
            wants_data,
            ops: Batcher::new(SINK_BATCH_OPS, SINK_BATCH_BYTES),
            content: Vec::new(),
            spare,
        }
    }

    /// Adds a call; hands the batch over once it is full.
    fn push(&mut self, op: SinkOp, bytes: usize) -> Result<(), Stop> {
        match self.ops.push(op, bytes) {
            Some(full) => self.send(full),
            None => Ok(()),
        }
    }

    /// Hands over the calls collected so far, if any.
    fn flush(&mut self) -> Result<(), Stop> {
        match self.ops.take_rest() {
            Some(rest) => self.send(rest),
            None => Ok(()),
        }
    }

    fn send(&mut self, ops: Vec<SinkOp>) -> Result<(), Stop> {
        let next = self.spare.try_recv().unwrap_or_default();
        let content = std::mem::replace(&mut self.content, next);
        self.batches.send(SinkBatch { ops, content }).map_err(|_| Stop::SinkGone)
    }

    /// Entry `entry` (an index into the manifest's entries) starts.
    fn open(&mut self, entry: usize) -> Result<(), Stop> {
        self.push(SinkOp::Open(entry), 0)
    }

    /// Content of the current entry.
    fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        if !self.wants_data || bytes.is_empty() {
            return Ok(());
        }
        // A write that would take the buffer past the batch's size goes in the next batch,
        // so no buffer grows beyond the larger of the two.
        if !self.content.is_empty() && self.content.len() + bytes.len() > SINK_BATCH_BYTES {
            self.flush()?;
        }
        self.content.extend_from_slice(bytes);
        self.push(SinkOp::Data(bytes.len()), bytes.len())
    }

    /// Entry `entry` ended and matched its hash.
    fn close(&mut self, entry: usize) -> Result<(), Stop> {
        self.push(SinkOp::Close(entry), 0)
    }
}

/// A decompressed chunk, or the error that ended decompression. An empty chunk is the end.
type Chunk = io::Result<Vec<u8>>;

/// The decompression thread: fills chunks from `stream` until its end or an error.
fn decompress_chunks(mut stream: impl Read, chunks: mpsc::SyncSender<Chunk>, spare: mpsc::Receiver<Vec<u8>>) {
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(PAYLOAD_CHUNK, 0);
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
            return; // the verifier stopped: the bundle was rejected or fully read
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
                // Only a panic ends the thread without an end marker; the join reports it.
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
) -> Result<(), Stop> {
    let entry = &entries[i];
    names.set(entry);
    let EntryNames { name, at } = &*names;
    let header = match tar::read_header(stream, at)? {
        Next::Member(h) => h,
        Next::ZeroBlock => return Err(malformed(at, "missing: the archive ends before this manifest entry").into()),
    };
    tar::expect_header(&header, name, entry.size, entry.mode.bits(), at)?;
    sink.open(i)?;
    let mut hasher = Hasher::new();
    let mut left = entry.size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = match stream.read(&mut buf[..want]) {
            Ok(0) => return Err(Error::Rejected(Reject::Truncated { at: at.clone() }).into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(tar::stream_error(e, at).into()),
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
        })
        .into());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::tests::entry;
    use crate::format::manifest::Mode;

    /// Records every call as text, and the content it was given.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        content: Vec<u8>,
    }

    impl PayloadSink for Recorder {
        fn open(&mut self, entry: &Entry) -> Result<()> {
            self.calls.push(format!("open {}", entry.path.as_str()));
            Ok(())
        }
        fn write(&mut self, bytes: &[u8]) -> Result<()> {
            self.calls.push(format!("write {}", bytes.len()));
            self.content.extend_from_slice(bytes);
            Ok(())
        }
        fn close(&mut self, entry: &Entry) -> Result<()> {
            self.calls.push(format!("close {}", entry.path.as_str()));
            Ok(())
        }
    }

    /// Runs `feed` against a forwarding sink whose batches `sink` receives on a thread of
    /// its own, as `stream_payload` wires them; returns what `feed` returns once the sink
    /// thread has taken every batch.
    fn forwarded<T>(
        sink: &mut Recorder,
        entries: &[Entry],
        wants_data: bool,
        feed: impl FnOnce(&mut ForwardingSink) -> T,
    ) -> T {
        std::thread::scope(|scope| {
            let (batches_tx, batches_rx) = mpsc::sync_channel(SINK_BATCHES_QUEUED);
            let (spare_tx, spare_rx) = mpsc::channel();
            let thread = scope.spawn(move || run_sink(sink, entries, batches_rx, spare_tx));
            let mut forward = ForwardingSink::new(batches_tx, spare_rx, wants_data);
            let fed = feed(&mut forward);
            forward.flush().ok().unwrap();
            drop(forward);
            join(thread, "test sink").unwrap().unwrap();
            fed
        })
    }

    #[test]
    fn batched_calls_reach_the_sink_in_order_with_their_bytes() {
        // Many small writes (batches end at SINK_BATCH_OPS calls), writes that cross
        // SINK_BATCH_BYTES, and whole chunks.
        let sizes: Vec<usize> =
            (0..2000).map(|i| i % 700).chain([SINK_BATCH_BYTES - 1, 2, SINK_BATCH_BYTES, 3, PAYLOAD_CHUNK]).collect();
        let entries: Vec<Entry> = (0..sizes.len()).map(|i| entry(&format!("f{i}"), b"", Mode::Regular)).collect();
        let mut expected = Recorder::default();
        let mut sink = Recorder::default();
        let largest_buffer = forwarded(&mut sink, &entries, true, |forward| {
            let mut largest = 0;
            for (i, &size) in sizes.iter().enumerate() {
                let bytes: Vec<u8> = (0..size).map(|b| (b + i) as u8).collect();
                forward.open(i).ok().unwrap();
                expected.open(&entries[i]).unwrap();
                forward.write(&bytes).ok().unwrap();
                if size > 0 {
                    expected.write(&bytes).unwrap();
                }
                forward.close(i).ok().unwrap();
                expected.close(&entries[i]).unwrap();
                largest = largest.max(forward.content.capacity());
            }
            largest
        });
        assert_eq!(sink.calls, expected.calls);
        assert!(sink.content == expected.content, "the content differs");
        assert!(largest_buffer <= SINK_BATCH_BYTES.max(PAYLOAD_CHUNK), "a buffer grew to {largest_buffer} bytes");
    }

    #[test]
    fn a_sink_that_wants_no_data_gets_no_writes() {
        let entries = [entry("a", b"", Mode::Regular)];
        let mut sink = Recorder::default();
        forwarded(&mut sink, &entries, false, |forward| {
            forward.open(0).ok().unwrap();
            forward.write(b"ignored").ok().unwrap();
            forward.close(0).ok().unwrap();
        });
        assert_eq!(sink.calls, ["open a", "close a"]);
    }
}
