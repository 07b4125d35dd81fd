//! [`StagingSink`]: writes verified payload entries into an import's private staging
//! directory (docs/FORMAT.md §10 step 3).
//!
//! Creating a file costs more than writing a small one, and a single thread creating
//! hundreds of thousands of files leaves the other cores idle. So small files are buffered
//! whole and created by a pool of writer threads, while the sink thread itself only
//! creates directories (in order, before any file inside them is handed out) and streams
//! large files. Nothing here is visible in the mirror: the staging directory is private
//! (0700), it becomes durable with one `syncfs` (step 4) and is moved into place only after
//! every entry verified and every writer finished without error ([`StagingSink::finish`]).
//! Meanwhile a background thread runs `syncfs` every few megabytes staged, so the device
//! drains while the import verifies and that last `syncfs` is short (see `writeback`).
//!
//! The writer side of an import (the verifier and decompression threads before it are
//! drawn in `verify`):
//!
//! ```text
//!  verify's sink thread: PayloadSink::open / write / close, in payload order
//!   |
//!   |  StagingSink, on that thread:
//!   |  - creates each entry's parent directories, in order
//!   |  - streams a file > STAGING_POOLED_MAX_BYTES (256 KiB) itself -------> bytes written
//!   |  - appends a smaller file to the batch: one directory's files, back to     |
//!   |    back; handed over at STAGING_BATCH_FILES (256) files, STAGING_BATCH_BYTES |
//!   |    (1 MiB), or the first file of another directory                        |
//!   v                                                                           |
//!  [Queue: STAGING_BATCHES_QUEUED (64) batches, STAGING_QUEUED_BYTES (8 MiB)]   |
//!   |  full: the sink thread waits, and so does the verifier feeding it         |
//!   |  a writer takes the oldest batch of a directory no other writer is in,   |
//!   |  and waits while there is none                                            |
//!   v                                                                           |
//!  writer pool: min(cores, STAGING_WRITERS_MAX = 4) threads                     |
//!      per file: create (O_EXCL|O_NOFOLLOW, signed mode), write, chmod ---> bytes written
//!                                                                               |
//!                         SyncHandle::wrote: a request every STEP (16 MiB) in all
//!                                                                               v
//!                            [sync requests: sync_channel(1); extras are dropped]
//!                                                                               v
//!                                   background syncer thread (io::writeback): syncfs
//! ```
//!
//! Why by directory: a file system takes a directory's lock to create a file in it, so
//! writers creating files in one directory take turns (spinning on a core the verifier
//! needs), while in two directories they run side by side. Small files in memory at once:
//! STAGING_QUEUED_BYTES queued (and one batch more), one batch per writer and the one being
//! filled (about 15 MiB with 4 writers; a batch's buffer grows by doubling, so up to twice
//! that is allocated). The sizes are in `io::tuning`, with the measurements behind them.
//!
//! Who reports errors:
//! - the sink thread's own (a directory, a streamed file): returned by the `PayloadSink`
//!   call that met it;
//! - a pool writer's: the first is kept and stops every writer; it is returned by the
//!   sink's next `open` or batch hand-over, at the latest by [`StagingSink::finish`];
//! - a writer thread that panicked: [`Error::Internal`] when it is joined (in `finish`, or
//!   when a failed import drops the sink);
//! - a background sync's: returned by [`StagingSink::finish`], after the pool's.
//!
//! A failed import drops the sink, which waits for every writer and the syncer before the
//! staging directory is removed.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use super::journal::{Journal, Line, Resume};
use crate::error::{Error, Result};
use crate::format::manifest::Entry;
use crate::io::digest::Digest;
use crate::io::sync::{join_unscoped, lock};
use crate::io::tuning::{
    STAGING_BATCHES_QUEUED, STAGING_BATCH_BYTES, STAGING_BATCH_FILES, STAGING_POOLED_MAX_BYTES, STAGING_QUEUED_BYTES,
    STAGING_WRITERS_MAX,
};
use crate::io::writeback::{SyncHandle, SyncScope, Syncer, Writeback};
use crate::verify::PayloadSink;

/// Writes payload entries under `root` (see the module docs).
pub struct StagingSink {
    root: PathBuf,
    dirs: BTreeSet<String>,
    /// The process umask, if known: files whose mode it leaves alone need no chmod.
    umask: Option<u32>,
    current: Option<Current>,
    pool: Pool,
    /// Background syncs of the staging file system (see the module docs).
    syncer: Syncer,
    /// What an interrupted run of the same bundle staged (docs/FORMAT.md §10, "Resume").
    resume: Resume,
    /// The journal of this run, if it keeps one.
    journal: Option<Journal>,
    /// Files reused from the interrupted run.
    resumed: u64,
    /// Bytes staged since the journal was last made durable.
    since_flush: u64,
}

/// How many staged bytes go between two journal flushes (each costs a `syncfs`, which the
/// background syncs have mostly done already): what a killed import loses at most.
const JOURNAL_STEP_BYTES: u64 = 8 << 20;

/// The entry being received.
enum Current {
    /// A small file, whose bytes go straight into the pool's batch.
    Batched,
    /// A large file, written as it arrives (writeback starts as it goes).
    Streamed { file: Writeback<File>, path: PathBuf },
    /// A file an interrupted run staged and journaled: its bytes are only verified.
    Reused,
}

impl StagingSink {
    /// A sink writing under `root`, an existing empty private directory.
    pub fn new(root: PathBuf) -> StagingSink {
        StagingSink::resuming(root, Resume::default(), None)
    }

    /// A sink writing under `root` that reuses what `resume` names and journals what it
    /// writes in `journal`.
    pub(crate) fn resuming(root: PathBuf, resume: Resume, journal: Option<Journal>) -> StagingSink {
        let syncer = Syncer::start(SyncScope::FileSystem);
        let pool = Pool::start(root.clone(), syncer.handle(), journal.clone());
        StagingSink {
            root,
            dirs: BTreeSet::new(),
            umask: process_umask(),
            current: None,
            pool,
            syncer,
            resume,
            journal,
            resumed: 0,
            since_flush: 0,
        }
    }

    /// Waits for the writer pool to create every file handed to it and for the background
    /// sync under way; reports the first error of either. Only after this returns `Ok` is
    /// the staging directory complete (it is durable only after the caller's `syncfs`).
    /// Returns how many files were reused from an interrupted run.
    pub fn finish(mut self) -> Result<u64> {
        self.pool.finish()?;
        self.syncer.finish().map_err(|e| Error::io(&self.root, e))?;
        Ok(self.resumed)
    }

    /// Journals what was written since the last flush, every [`JOURNAL_STEP_BYTES`].
    fn maybe_flush_journal(&mut self, size: u64) -> Result<()> {
        self.since_flush = self.since_flush.saturating_add(size);
        match &self.journal {
            Some(journal) if self.since_flush >= JOURNAL_STEP_BYTES => {
                self.since_flush = 0;
                journal.flush(&self.root)
            }
            _ => Ok(()),
        }
    }

    /// Creates the entry's parent directories not created yet. Called for each entry in
    /// payload order, before the entry's file is handed to anyone.
    fn create_parents(&mut self, entry: &Entry) -> Result<()> {
        for dir in entry.path.ancestors() {
            if self.dirs.contains(dir) {
                continue;
            }
            self.dirs.insert(dir.to_owned());
            let full = self.root.join(dir);
            match fs::create_dir(&full) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(&full, e)),
            }
        }
        Ok(())
    }

    /// Whether a file of this mode needs an explicit chmod: the process umask must not
    /// change the signed mode, but one chmod per file is a measurable share of importing
    /// many small files, so it is skipped when the umask is known to leave the mode alone.
    fn needs_chmod(&self, mode: u32) -> bool {
        self.umask.is_none_or(|mask| mask & mode != 0)
    }
}

impl PayloadSink for StagingSink {
    fn open(&mut self, entry: &Entry) -> Result<()> {
        self.pool.check()?;
        self.maybe_flush_journal(entry.size)?;
        self.create_parents(entry)?;
        if self.resume.stale {
            let path = self.root.join(entry.path.as_str());
            if self.resume.reusable(entry, &path)? {
                if let Some(journal) = &self.journal {
                    journal.staged(entry, &path);
                }
                self.resumed += 1;
                self.current = Some(Current::Reused);
                return Ok(());
            }
            // Whatever an interrupted run left here unjournaled is not trusted.
            remove_stale(&path)?;
        }
        let mode = entry.mode.bits();
        self.current = Some(if entry.size <= STAGING_POOLED_MAX_BYTES {
            self.pool.open(entry, self.needs_chmod(mode), self.journal.is_some())?;
            Current::Batched
        } else {
            // A small file's path is joined by the writer that creates it.
            let path = self.root.join(entry.path.as_str());
            let file = Writeback::new(create(&path, mode)?).with_syncer(self.syncer.handle());
            Current::Streamed { file, path }
        });
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self.current.as_mut() {
            Some(Current::Batched) => {
                self.pool.append(bytes);
                Ok(())
            }
            Some(Current::Streamed { file, path }) => file.write_all(bytes).map_err(|e| Error::io(&*path, e)),
            Some(Current::Reused) => Ok(()),
            None => Err(Error::Internal("the staging sink was given data outside an entry".into())),
        }
    }

    fn close(&mut self, entry: &Entry) -> Result<()> {
        match self.current.take() {
            Some(Current::Batched) => self.pool.close(),
            Some(Current::Streamed { file, path }) => {
                if self.needs_chmod(entry.mode.bits()) {
                    set_mode(file.get_ref(), &path, entry.mode.bits())?;
                }
                if let Some(journal) = &self.journal {
                    journal.staged(entry, &path);
                }
                Ok(())
            }
            Some(Current::Reused) => Ok(()),
            None => Err(Error::Internal("the staging sink was asked to close no entry".into())),
        }
    }
}

/// Creates a staged file with its final mode (the staging directory is private; the umask
/// may still take bits away, see [`StagingSink::needs_chmod`]), never following a link.
pub(super) fn create(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Removes what an interrupted run left at `path` (a file it had not journaled).
fn remove_stale(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn set_mode(file: &File, path: &Path, mode: u32) -> Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode)).map_err(|e| Error::io(path, e))
}

/// The writer threads and the batch being filled for them.
struct Pool {
    root: PathBuf,
    queue: Arc<Queue>,
    /// The batch being filled.
    batch: Batch,
    /// The first error any writer met, until reported.
    failed: Arc<Mutex<Option<Error>>>,
    writers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(root: PathBuf, sync: SyncHandle, journal: Option<Journal>) -> Pool {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, STAGING_WRITERS_MAX);
        let queue = Arc::new(Queue::new(count));
        let failed: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let writers = (0..count)
            .map(|_| {
                let writer = Writer {
                    root: root.clone(),
                    queue: Arc::clone(&queue),
                    failed: Arc::clone(&failed),
                    sync: sync.clone(),
                    journal: journal.clone(),
                };
                std::thread::spawn(move || writer.run())
            })
            .collect();
        Pool { root, queue, batch: Batch::default(), failed, writers }
    }

    /// Starts a small file for `entry` in the batch, handing the batch over first when the
    /// entry is in another directory than the batch's files.
    fn open(&mut self, entry: &Entry, chmod: bool, journaled: bool) -> Result<()> {
        let path = entry.path.as_str();
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        if dir != self.batch.dir {
            if !self.batch.files.is_empty() {
                self.send()?;
            }
            dir.clone_into(&mut self.batch.dir);
        }
        self.batch.start(path, entry, chmod, journaled);
        Ok(())
    }

    /// Adds bytes to the small file being received.
    fn append(&mut self, bytes: &[u8]) {
        self.batch.data.extend_from_slice(bytes);
    }

    /// Ends the small file being received; hands the batch over once it is full.
    fn close(&mut self) -> Result<()> {
        self.batch.end();
        match self.batch.files.len() >= STAGING_BATCH_FILES || self.batch.data.len() >= STAGING_BATCH_BYTES {
            true => self.send(),
            false => Ok(()),
        }
    }

    /// Hands the batch to the writers; reports the first writer error, if any.
    fn send(&mut self) -> Result<()> {
        let dir = self.batch.dir.clone();
        let batch = std::mem::replace(&mut self.batch, Batch { dir, ..Batch::default() });
        if !self.queue.put(batch) {
            // Every writer has stopped: after an error, or by a panic, which joining them
            // turns into an error for `check` to report.
            self.stop();
            self.check()?;
            return Err(Error::Internal(format!(
                "the staging writers of {} stopped without an error",
                self.root.display()
            )));
        }
        self.check()
    }

    /// The first writer error, if any (so a full disk stops the import early). Reported
    /// once; the writers stay stopped.
    fn check(&self) -> Result<()> {
        if !self.queue.stopped.load(Ordering::Relaxed) {
            return Ok(());
        }
        match lock(&self.failed).take() {
            Some(e) => Err(e),
            // Its error was reported by an earlier call; the import must not go on.
            None => Err(Error::Internal("the staging sink was used after a writer's error was reported".into())),
        }
    }

    fn finish(&mut self) -> Result<()> {
        let sent = match self.batch.files.is_empty() {
            true => Ok(()),
            false => self.send(),
        };
        self.stop();
        self.check()?;
        sent
    }

    /// Closes the queue and waits for every writer.
    fn stop(&mut self) {
        self.queue.close();
        for w in self.writers.drain(..) {
            // A writer that panicked may have left its batch half written: the import fails.
            if let Err(panicked) = join_unscoped(w, "staging writer") {
                lock(&self.failed).get_or_insert(panicked);
                self.queue.stopped.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Pool {
    /// An import that fails part-way still waits for its writers, so nothing writes into
    /// the staging directory while it is being removed.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Small files of one directory, back to back, for one writer.
#[derive(Default)]
struct Batch {
    /// Their directory, relative to the staging root.
    dir: String,
    /// Their paths, relative to the staging root, back to back.
    paths: String,
    /// Their contents, back to back.
    data: Vec<u8>,
    files: Vec<Batched>,
}

/// One file of a batch.
struct Batched {
    /// Its path, in [`Batch::paths`].
    path: Range<usize>,
    /// Its content, in [`Batch::data`] (open while it is being received).
    data: Range<usize>,
    mode: u32,
    chmod: bool,
    /// Its entry's digest and size, when written files are journaled.
    journaled: Option<(Digest, u64)>,
}

impl Batch {
    /// Starts the file of `entry` at `path`.
    fn start(&mut self, path: &str, entry: &Entry, chmod: bool, journaled: bool) {
        let at = self.paths.len();
        self.paths.push_str(path);
        // Room for the file (the buffer grows by doubling, so copies stay few).
        self.data.reserve(entry.size as usize);
        self.files.push(Batched {
            path: at..self.paths.len(),
            data: self.data.len()..self.data.len(),
            mode: entry.mode.bits(),
            chmod,
            journaled: journaled.then_some((entry.sha256, entry.size)),
        });
    }

    /// Ends the file being received: its content is what was appended since `start`.
    fn end(&mut self) {
        if let Some(f) = self.files.last_mut() {
            f.data.end = self.data.len();
        }
    }
}

/// One pool writer (see [`Queue`]). What it allocates per file it frees itself: a batch
/// is allocated by the sink thread and freed here in four pieces, since freeing another
/// thread's allocation takes that thread's allocator lock (per file, it was the writers'
/// most frequent wait).
struct Writer {
    root: PathBuf,
    queue: Arc<Queue>,
    failed: Arc<Mutex<Option<Error>>>,
    sync: SyncHandle,
    journal: Option<Journal>,
}

impl Writer {
    /// Batches from the queue until it is closed and empty, or stopped.
    fn run(self) {
        let _running = Running(&self.queue);
        let mut lines = Vec::new();
        let mut finished = None;
        while let Some(batch) = self.queue.take(finished.take()) {
            if let Err(e) = self.write_batch(&batch, &mut lines) {
                lock(&self.failed).get_or_insert(e);
                self.queue.stop();
                return;
            }
            if let Some(journal) = &self.journal {
                journal.push_lines(&lines);
                lines.clear();
            }
            finished = Some(batch.dir);
        }
    }

    /// Creates the files of `batch`; appends their journal lines to `lines`. Stops early,
    /// without error, when the pool is stopped.
    fn write_batch(&self, batch: &Batch, lines: &mut Vec<u8>) -> Result<()> {
        let mut full = self.root.clone();
        for f in &batch.files {
            if self.queue.stopped.load(Ordering::Relaxed) {
                return Ok(());
            }
            let path = &batch.paths[f.path.clone()];
            let data = &batch.data[f.data.clone()];
            full.clone_from(&self.root);
            full.push(path);
            let mut file = create(&full, f.mode)?;
            file.write_all(data).map_err(|e| Error::io(&full, e))?;
            self.sync.wrote(data.len() as u64, &file);
            if f.chmod {
                set_mode(&file, &full, f.mode)?;
            }
            if let Some((sha256, size)) = &f.journaled {
                let meta = file.metadata().map_err(|e| Error::io(&full, e))?;
                Line::staged(path, *size, sha256, f.mode, &meta).append_to(lines);
            }
        }
        Ok(())
    }
}

/// The batches waiting for a writer. A writer takes the oldest batch of a directory no
/// other writer is in, and waits while there is none (see the module docs for why); the
/// queue holds several directories' batches, so that writers find one.
struct Queue {
    state: Mutex<Waiting>,
    /// Signalled when a batch is queued, a directory is left, or the queue closes or stops.
    for_writers: Condvar,
    /// Signalled when a batch is taken or a writer ends.
    for_sink: Condvar,
    /// Set with the first error (or a writer's panic): every writer stops.
    stopped: AtomicBool,
}

struct Waiting {
    batches: VecDeque<Batch>,
    /// The bytes of `batches`.
    bytes: usize,
    /// The directories writers are creating files in now.
    busy: Vec<String>,
    /// Writers not ended yet.
    writers: usize,
    /// No batch will be added.
    closed: bool,
}

impl Queue {
    fn new(writers: usize) -> Queue {
        let waiting = Waiting { batches: VecDeque::new(), bytes: 0, busy: Vec::new(), writers, closed: false };
        Queue {
            state: Mutex::new(waiting),
            for_writers: Condvar::new(),
            for_sink: Condvar::new(),
            stopped: AtomicBool::new(false),
        }
    }

    /// Queues `batch`, waiting while the queue is full; `false` when the writers have
    /// stopped or ended, so none will take it.
    fn put(&self, batch: Batch) -> bool {
        let mut waiting = lock(&self.state);
        loop {
            if self.stopped.load(Ordering::Relaxed) || waiting.writers == 0 {
                return false;
            }
            if waiting.batches.len() < STAGING_BATCHES_QUEUED && waiting.bytes < STAGING_QUEUED_BYTES {
                break;
            }
            waiting = self.for_sink.wait(waiting).unwrap_or_else(PoisonError::into_inner);
        }
        waiting.bytes += batch.data.len();
        waiting.batches.push_back(batch);
        drop(waiting);
        self.for_writers.notify_all();
        true
    }

    /// The next batch for a writer that has `finished` the batch of that directory:
    /// the oldest batch in a directory no other writer is in, once there is one; `None`
    /// when the queue is closed and empty, or stopped.
    fn take(&self, finished: Option<String>) -> Option<Batch> {
        let mut waiting = lock(&self.state);
        if let Some(dir) = finished {
            waiting.leave(&dir);
            self.for_writers.notify_all();
        }
        loop {
            if self.stopped.load(Ordering::Relaxed) || (waiting.closed && waiting.batches.is_empty()) {
                return None;
            }
            let free = waiting.batches.iter().position(|b| !waiting.busy.contains(&b.dir));
            if let Some(batch) = free.and_then(|i| waiting.batches.remove(i)) {
                waiting.bytes -= batch.data.len();
                waiting.busy.push(batch.dir.clone());
                drop(waiting);
                self.for_sink.notify_one();
                return Some(batch);
            }
            waiting = self.for_writers.wait(waiting).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// No batch will be added: the writers end once the queue is empty.
    fn close(&self) {
        lock(&self.state).closed = true;
        self.for_writers.notify_all();
    }

    /// Stops every writer (after an error) and wakes the sink.
    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        let _waiting = lock(&self.state);
        self.for_writers.notify_all();
        self.for_sink.notify_all();
    }
}

impl Waiting {
    /// A writer has left `dir`.
    fn leave(&mut self, dir: &str) {
        if let Some(i) = self.busy.iter().position(|d| d == dir) {
            self.busy.swap_remove(i);
        }
    }
}

/// Held by a running writer: when it ends, however it ends, the sink and the other writers
/// learn of it. A writer that panicked stops the pool, since the directory it was in would
/// stay busy and its batch is half written (the import fails when it is joined).
struct Running<'a>(&'a Queue);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
        lock(&self.0.state).writers -= 1;
        self.0.for_sink.notify_all();
        self.0.for_writers.notify_all();
    }
}

/// The process umask, read from /proc (Linux 4.7 and later) because the umask(2) call can
/// only read it by changing it.
fn process_umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(value.trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Mode;

    fn entry(path: &str, data: &[u8]) -> Entry {
        crate::format::manifest::tests::entry(path, data, Mode::Regular)
    }

    fn put(sink: &mut StagingSink, path: &str, data: &[u8]) -> Result<()> {
        let e = entry(path, data);
        sink.open(&e)?;
        sink.write(data)?;
        sink.close(&e)
    }

    #[test]
    fn small_and_large_files_are_all_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = StagingSink::new(dir.path().to_owned());
        let big = vec![3u8; STAGING_POOLED_MAX_BYTES as usize + 1];
        let mut want = Vec::new();
        for i in 0..(STAGING_BATCH_FILES * 3 + 7) {
            let (path, data) = (format!("d{}/f{i}", i % 5), format!("file {i}").into_bytes());
            put(&mut sink, &path, &data).unwrap();
            want.push((path, data));
        }
        put(&mut sink, "d1/big", &big).unwrap();
        want.push(("d1/big".into(), big));
        sink.finish().unwrap();
        for (path, data) in want {
            assert_eq!(fs::read(dir.path().join(&path)).unwrap(), data, "{path}");
        }
    }

    /// A pool writer's failure (here: the file exists already) is reported, naming the
    /// file, by a later call or at the latest by `finish`.
    #[test]
    fn a_writer_error_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("taken"), b"already here").unwrap();
        let mut sink = StagingSink::new(dir.path().to_owned());
        let mut result = put(&mut sink, "taken", b"new");
        for i in 0..(STAGING_BATCH_FILES * 8) {
            if result.is_err() {
                break;
            }
            result = put(&mut sink, &format!("other/{i}"), b"x");
        }
        let error = match result {
            Err(e) => e,
            Ok(()) => sink.finish().expect_err("the existing file must make staging fail"),
        };
        assert!(matches!(&error, Error::Io { path, .. } if path.ends_with("taken")), "{error:?}");
        assert_eq!(fs::read(dir.path().join("taken")).unwrap(), b"already here");
    }

    fn batch(dir: &str, bytes: usize) -> Batch {
        let files = vec![Batched { path: 0..0, data: 0..bytes, mode: 0o644, chmod: false, journaled: None }];
        Batch { dir: dir.into(), paths: String::new(), data: vec![0; bytes], files }
    }

    /// Two writers never create files in one directory at once: the second gets the next
    /// directory's batch, and one waits while only the busy directory has batches.
    #[test]
    fn a_writer_takes_the_oldest_batch_of_a_directory_no_writer_is_in() {
        let queue = Queue::new(2);
        assert!(queue.put(batch("a", 1)));
        assert!(queue.put(batch("a", 2)));
        assert!(queue.put(batch("b", 3)));
        let first = queue.take(None).unwrap();
        let second = queue.take(None).unwrap();
        assert_eq!((first.dir.as_str(), first.data.len()), ("a", 1));
        assert_eq!((second.dir.as_str(), second.data.len()), ("b", 3));
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            // b's writer is done with b; a's second batch must wait for a's writer.
            let queue = &queue;
            s.spawn(move || tx.send(queue.take(Some("b".into())).map(|b| b.data.len())).unwrap());
            let waited = rx.recv_timeout(std::time::Duration::from_millis(200));
            assert!(waited.is_err(), "a batch of a busy directory was handed out: {waited:?}");
            assert!(queue.put(batch("c", 4)));
            assert_eq!(rx.recv().unwrap(), Some(4));
            // a's writer leaves a and takes a's second batch itself.
            assert_eq!(queue.take(Some("a".into())).map(|b| b.data.len()), Some(2));
        });
        queue.close();
        assert!(queue.take(Some("a".into())).is_none());
        assert!(queue.take(Some("c".into())).is_none());
    }

    /// The queue holds at most STAGING_BATCHES_QUEUED batches: the sink waits for a writer.
    #[test]
    fn the_sink_waits_while_the_queue_is_full() {
        let queue = Queue::new(1);
        for i in 0..STAGING_BATCHES_QUEUED {
            assert!(queue.put(batch(&format!("d{i}"), 1)));
        }
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            let queue = &queue;
            s.spawn(move || tx.send(queue.put(batch("last", 1))).unwrap());
            assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "a full queue took a batch");
            assert_eq!(queue.take(None).unwrap().dir, "d0");
            assert!(rx.recv().unwrap());
        });
    }

    /// A writer that panics stops the pool: the sink is told no writer will take a batch,
    /// instead of waiting for ever on a full queue or a directory left busy.
    #[test]
    fn a_panicking_writer_stops_the_queue() {
        let queue = Queue::new(2);
        assert!(queue.put(batch("a", 1)));
        let panicked = std::thread::scope(|s| {
            s.spawn(|| {
                let _running = Running(&queue);
                let _taken = queue.take(None);
                panic!("a writer's bug");
            })
            .join()
        });
        assert!(panicked.is_err());
        assert!(queue.stopped.load(Ordering::Relaxed));
        assert!(!queue.put(batch("a", 1)));
        assert!(queue.take(None).is_none());
    }
}
