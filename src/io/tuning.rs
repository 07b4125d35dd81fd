//! Every buffer, batch, queue and thread-count size of airlock's pipelines, in one place,
//! each with the measurement behind it. The pipelines they shape are drawn at the top of
//! `pack/mod.rs` (pack), `verify/pipeline.rs` (the payload stream of verify and import) and
//! `mirror/staging.rs` (the writer side of an import). Format limits (FORMAT.md §11) are
//! not tuning and live in `format/`.
//!
//! Unless a line says otherwise, figures are from docs/PERFORMANCE.md: 2 cores, ext4 on a
//! loop device; the "mixed" corpus is 1.16 GB in 20,206 files, the "small" one 250 MB in
//! 200,000 files of 0.5–2 KiB. A size marked "not measured apart" was chosen with the
//! change it belongs to and has not been varied on its own since: a candidate for tuning.

// ---- Pack (pack/collect.rs, pack/payload.rs, pack/mod.rs, format/head.rs) ----

/// Files the walk hands to the hashing queue at a time (one lock and wake-up per batch, not
/// per file). Not measured apart: part of "hashing overlaps the walk, one file at a time
/// from a bounded queue", small pack 5.05 → 3.8–4.2 s together with the read-ahead below.
pub(crate) const HASH_BATCH: usize = 64;

/// Files waiting to be hashed, at most; the walk waits beyond this. Bounds the queue's memory
/// (a path each) when the walk outruns the disk; not measured apart (same change as above).
pub(crate) const HASH_QUEUE_MAX: usize = 4096;

/// Read buffer of each hashing worker and of `io::digest::hash_reader`. SHA-256 runs at
/// 2.0 GB/s per core here (SHA-NI, as `openssl speed sha256`), so hashing is at hardware speed.
pub(crate) const HASH_BUF: usize = 256 * 1024;

/// zstd job size for multithreaded compression of the payload. 2 MiB instead of 4 MiB:
/// mixed pack peak RSS 67 → 42 MiB at the same speed, bundle 0.2% larger (libzstd's own
/// default at level 3 is 8 MiB).
pub(crate) const JOB_SIZE: u32 = 2 << 20;

/// Buffer between the tar stream and the zstd encoder, and the copy buffer for streamed
/// files: headers and small files reach the multithreaded encoder, whose every write has a
/// fixed cost, in large writes. Not measured apart (same change as the read-ahead).
pub(crate) const COPY_BUF: usize = 1 << 20;

/// Buffer between the zstd encoder and the bundle file. A background writer thread with
/// 4 MiB chunks measured no gain over this (reverted, 236415e).
pub(crate) const BUNDLE_BUF: usize = 1 << 20;

/// Copy buffer for the head members, which are already in memory (the head frame of
/// 200,000 entries takes 0.45 s in all, mostly signing and compressing). Not measured apart.
pub(crate) const HEAD_COPY_BUF: usize = 8 << 10;

/// Files up to this size are read whole by the read-ahead thread; larger ones are streamed
/// by the writer itself, for which the per-file cost does not matter. The read-ahead took
/// the small pack from 4.6 to 3.7 s (30f4d75); this bound was not measured apart.
pub(crate) const READ_AHEAD_MAX_BYTES: u64 = 128 << 10;

/// Files read ahead are handed to the writer in batches of up to this many files (one
/// hand-over per file costs more than reading a small file; same change as above)...
pub(crate) const READ_AHEAD_BATCH_FILES: usize = 256;

/// ...or this many bytes, whichever comes first (same change as above).
pub(crate) const READ_AHEAD_BATCH_BYTES: usize = 1 << 20;

/// Batches read ahead and not yet written, at most: with [`READ_AHEAD_BATCH_BYTES`], at
/// most about 4 MiB is held (these, the batch being written and the one being read). Not
/// measured apart (same change as above).
pub(crate) const READ_AHEAD_BATCHES: usize = 2;

// ---- Verify, import and inspect: the head (verify/mod.rs, io/digest.rs) ----

/// Bytes of a head member handed to its hashing thread at a time (`BackgroundHasher`), and
/// the step in which the manifest is read while it is hashed. Not measured apart; with the
/// change, inspect of a million entries 1.41 → 1.22 s.
pub(crate) const HEAD_HASH_CHUNK: usize = 1 << 20;

/// Chunks queued for a hashing thread, at most (same change as above).
pub(crate) const HEAD_HASH_CHUNKS_QUEUED: usize = 4;

// ---- Verify and import: the payload stream (verify/frames.rs, verify/pipeline.rs) ----

/// Read buffer on the bundle file, under the zstd decoder. Not measured apart.
pub(crate) const BUNDLE_READ_BUF: usize = 1 << 20;

/// Size of a decompressed chunk handed from the decompression thread to the verifier, and of
/// the verifier's copy buffer. Not measured apart; verify peak RSS, with everything in it,
/// is 19.5 MiB on the mixed corpus.
pub(crate) const PAYLOAD_CHUNK: usize = 1 << 20;

/// Decompressed chunks queued for the verifier, at most: with [`PAYLOAD_CHUNK`], about
/// 4 MiB of decompressed data waits. Not measured apart (chosen with the three-thread
/// payload pipeline, 282b67f).
pub(crate) const PAYLOAD_CHUNKS_QUEUED: usize = 4;

/// Sink calls (open, write, close) are handed to the sink thread in batches of up to this
/// many calls: one hand-over per small file costs more in thread wake-ups than writing the
/// file. Not measured apart (introduced with the batched hand-over, a290d6a, no figure)...
pub(crate) const SINK_BATCH_OPS: usize = 512;

/// ...or this many bytes of file content, whichever comes first (same change as above).
pub(crate) const SINK_BATCH_BYTES: usize = 1 << 20;

/// Batches queued for the sink thread, at most: with [`SINK_BATCH_BYTES`], about 4 MiB of
/// content waits. Not measured apart (same change as above).
pub(crate) const SINK_BATCHES_QUEUED: usize = 4;

// ---- Verify and import: artifact signatures (verify/artifacts.rs) ----

/// Artifacts at least this large have their streaming signature checks run on their own
/// threads; smaller ones are checked inline on the sink thread (a thread costs more than
/// hashing a small artifact). Not measured apart (d95eb71 gives no figure).
pub(crate) const ARTIFACT_PARALLEL_MIN_BYTES: u64 = 8 << 20;

/// Content chunks (up to [`PAYLOAD_CHUNK`] each) queued for each artifact verifier thread,
/// at most. Not measured apart (same change as above).
pub(crate) const ARTIFACT_CHUNKS_QUEUED: usize = 4;

// ---- Import: staging (mirror/staging.rs) ----
// The pool as a whole took the small import from 11.0 to 7.9–8.6 s (CHANGELOG, 2026-11-25,
// together with create-with-mode and the commit's digest check); batches by directory took
// 200,000 small files from 6.2 to 5.0 s (2026-12-04). Only the queue's size was varied on
// its own.

/// Files up to this size are buffered whole and created by the writer pool; larger ones
/// are streamed by the sink thread, for which the cost of creating the file does not
/// matter. Not measured apart.
pub(crate) const STAGING_POOLED_MAX_BYTES: u64 = 256 << 10;

/// Small files are handed to the writer pool in batches of up to this many files... Not
/// measured apart.
pub(crate) const STAGING_BATCH_FILES: usize = 256;

/// ...or this many bytes, whichever comes first. Not measured apart.
pub(crate) const STAGING_BATCH_BYTES: usize = 1 << 20;

/// Batches waiting for a writer, at most... A batch holds one directory's files, and
/// writers take batches of different directories, so the queue must hold more than one
/// directory's batches for a second writer to find one (a directory of 1,000 small files is
/// 4 batches). Measured 2026-12-04, importing 200,000 files of 64-1024 bytes in 200
/// directories (ext4 on a direct-I/O loop device, 2 cores): 16 batches and 4 MiB took
/// 5.17-5.51 s and 81 MiB peak RSS, 64 batches and 8 MiB 4.97-5.04 s and 92-98 MiB (the
/// writers go on while the sink thread waits for a journal flush).
pub(crate) const STAGING_BATCHES_QUEUED: usize = 64;

/// ...and bytes: small files held in memory, at most this plus one batch per writer and
/// the one being filled (a batch's buffer grows by doubling, so up to twice that).
pub(crate) const STAGING_QUEUED_BYTES: usize = 8 << 20;

/// Writer threads in the pool, at most (one per core below that). Staging saturates both
/// cores of the benchmark machine, where the pool has 2 writers: this bound was never reached
/// in a measurement.
pub(crate) const STAGING_WRITERS_MAX: usize = 4;

// ---- Pack and import: background writeback (io/writeback.rs) ----

/// Bytes written between two writeback starts, and between two background syncs of the
/// bundle (and of an import's staging file system). Pack: mixed pack 0.55× → 0.51–0.52× of
/// the scripted pipeline, final fsync 1.3 s → 0.03–0.1 s; import: a `syncfs` every 16 MiB
/// measured neutral on the small corpus and faster on the mixed one.
pub(crate) const WRITEBACK_STEP: u64 = 16 << 20;
