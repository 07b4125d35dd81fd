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
//!   |  - buffers a smaller file whole; a Batcher hands them over in batches     |
//!   |    of STAGING_BATCH_FILES (256) files or STAGING_BATCH_BYTES (1 MiB)      |
//!   v                                                                           |
//!  [batch queue: sync_channel(STAGING_BATCHES_QUEUED = 4)]                      |
//!   |  full: the sink thread waits, and so does the verifier feeding it         |
//!   v                                                                           |
//!  writer pool: min(cores, STAGING_WRITERS_MAX = 4) threads sharing the queue   |
//!      per file: create (O_EXCL|O_NOFOLLOW, signed mode), write, chmod ---> bytes written
//!                                                                               |
//!                         SyncHandle::wrote: a request every STEP (16 MiB) in all
//!                                                                               v
//!                            [sync requests: sync_channel(1); extras are dropped]
//!                                                                               v
//!                                   background syncer thread (io::writeback): syncfs
//! ```
//!
//! Small files in memory at once: at most STAGING_BATCHES_QUEUED queued batches, one per
//! writer and the one being filled (about 9 MiB with 4 writers). The sizes are in
//! `io::tuning`, with the measurements behind them.
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

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use super::journal::{Journal, Line, Resume};
use crate::error::{Error, Result};
use crate::format::manifest::Entry;
use crate::io::sync::{join_unscoped, lock, Batcher};
use crate::io::tuning::{
    STAGING_BATCHES_QUEUED, STAGING_BATCH_BYTES, STAGING_BATCH_FILES, STAGING_POOLED_MAX_BYTES, STAGING_WRITERS_MAX,
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
    /// A small file, buffered for the pool.
    Buffered(SmallFile),
    /// A large file, written as it arrives (writeback starts as it goes).
    Streamed { file: Writeback<File>, path: PathBuf },
    /// A file an interrupted run staged and journaled: its bytes are only verified.
    Reused,
}

/// A small file's whole content, for a pool writer to create.
struct SmallFile {
    path: PathBuf,
    mode: u32,
    chmod: bool,
    data: Vec<u8>,
    /// Its entry, to journal once written (when a journal is kept).
    journaled: Option<Entry>,
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
        let pool = Pool::start(syncer.handle(), journal.clone());
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
        let path = self.root.join(entry.path.as_str());
        if self.resume.stale {
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
        let journaled = self.journal.as_ref().map(|_| entry.clone());
        self.current = Some(if entry.size <= STAGING_POOLED_MAX_BYTES {
            let data = Vec::with_capacity(entry.size as usize);
            Current::Buffered(SmallFile { path, mode, chmod: self.needs_chmod(mode), data, journaled })
        } else {
            let file = Writeback::new(create(&path, mode)?).with_syncer(self.syncer.handle());
            Current::Streamed { file, path }
        });
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self.current.as_mut() {
            Some(Current::Buffered(f)) => {
                f.data.extend_from_slice(bytes);
                Ok(())
            }
            Some(Current::Streamed { file, path }) => file.write_all(bytes).map_err(|e| Error::io(&*path, e)),
            Some(Current::Reused) => Ok(()),
            None => Err(Error::Internal("the staging sink was given data outside an entry".into())),
        }
    }

    fn close(&mut self, entry: &Entry) -> Result<()> {
        match self.current.take() {
            Some(Current::Buffered(f)) => self.pool.submit(f),
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
fn create(path: &Path, mode: u32) -> Result<File> {
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

fn write_small(f: &SmallFile, sync: &SyncHandle, journal: Option<&Journal>) -> Result<()> {
    let mut file = create(&f.path, f.mode)?;
    file.write_all(&f.data).map_err(|e| Error::io(&f.path, e))?;
    sync.wrote(f.data.len() as u64, &file);
    if f.chmod {
        set_mode(&file, &f.path, f.mode)?;
    }
    if let (Some(journal), Some(entry)) = (journal, &f.journaled) {
        let meta = file.metadata().map_err(|e| Error::io(&f.path, e))?;
        journal.push(&Line::written(entry, &meta));
    }
    Ok(())
}

/// The writer threads and the batch being filled for them.
struct Pool {
    batches: Option<mpsc::SyncSender<Vec<SmallFile>>>,
    batch: Batcher<SmallFile>,
    /// The first error any writer met, until reported.
    failed: Arc<Mutex<Option<Error>>>,
    /// Set with the first error: every writer stops.
    stopped: Arc<AtomicBool>,
    writers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(sync: SyncHandle, journal: Option<Journal>) -> Pool {
        let (tx, rx) = mpsc::sync_channel::<Vec<SmallFile>>(STAGING_BATCHES_QUEUED);
        let rx = Arc::new(Mutex::new(rx));
        let failed: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let stopped = Arc::new(AtomicBool::new(false));
        let count = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, STAGING_WRITERS_MAX);
        let writers = (0..count)
            .map(|_| {
                let (rx, failed, stopped) = (Arc::clone(&rx), Arc::clone(&failed), Arc::clone(&stopped));
                let sync = sync.clone();
                let journal = journal.clone();
                std::thread::spawn(move || loop {
                    // The lock is held only while waiting for the next batch.
                    let batch = match lock(&rx).recv() {
                        Ok(b) => b,
                        Err(_) => return,
                    };
                    for f in &batch {
                        if stopped.load(Ordering::Relaxed) {
                            return;
                        }
                        if let Err(e) = write_small(f, &sync, journal.as_ref()) {
                            lock(&failed).get_or_insert(e);
                            stopped.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                })
            })
            .collect();
        let batch = Batcher::new(STAGING_BATCH_FILES, STAGING_BATCH_BYTES);
        Pool { batches: Some(tx), batch, failed, stopped, writers }
    }

    /// Adds a small file; hands the batch to the writers once it is full.
    fn submit(&mut self, f: SmallFile) -> Result<()> {
        let bytes = f.data.len();
        match self.batch.push(f, bytes) {
            Some(full) => self.send(full),
            None => Ok(()),
        }
    }

    /// Hands `batch` to the writers; reports the first writer error, if any.
    fn send(&mut self, batch: Vec<SmallFile>) -> Result<()> {
        let sent = self.batches.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if !sent {
            // Every writer has gone: after an error, or by a panic, which joining them
            // turns into an error for `check` to report.
            self.stop();
            self.check()?;
            return Err(Error::Internal("the staging writers stopped without an error".into()));
        }
        self.check()
    }

    /// The first writer error, if any (so a full disk stops the import early). Reported
    /// once; the writers stay stopped.
    fn check(&self) -> Result<()> {
        if !self.stopped.load(Ordering::Relaxed) {
            return Ok(());
        }
        match lock(&self.failed).take() {
            Some(e) => Err(e),
            // Its error was reported by an earlier call; the import must not go on.
            None => Err(Error::Internal("the staging sink was used after a writer's error was reported".into())),
        }
    }

    fn finish(&mut self) -> Result<()> {
        let sent = self.batch.take_rest().map_or(Ok(()), |rest| self.send(rest));
        self.stop();
        self.check()?;
        sent
    }

    /// Closes the queue and waits for every writer.
    fn stop(&mut self) {
        self.batches = None;
        for w in self.writers.drain(..) {
            // A writer that panicked may have left its batch half written: the import fails.
            if let Err(panicked) = join_unscoped(w, "staging writer") {
                lock(&self.failed).get_or_insert(panicked);
                self.stopped.store(true, Ordering::Relaxed);
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
}
