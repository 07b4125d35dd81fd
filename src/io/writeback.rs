//! [`Writeback`]: a file writer that starts writeback as it goes, and [`Syncer`], which
//! makes data durable from a background thread while more is still being written.
//!
//! On a machine with plenty of memory the kernel keeps a whole bundle or import dirty in
//! the page cache, and the fsync that makes it durable then waits for all of it at the end.
//! Starting writeback every few megabytes lets the disk work while airlock compresses or
//! hashes, so the final sync is short. `POSIX_FADV_DONTNEED` starts writeback of the dirty
//! range (and later lets its clean pages go); it is advice, so a failure changes nothing
//! but speed.
//!
//! Writeback alone is not enough: a device with a volatile write cache (a USB drive, a
//! virtual disk, a loop device over a file) holds what it was sent until it is told to
//! flush, and only an fsync sends that flush; small files are never written back early at
//! all. So writers given a [`SyncHandle`] also count what they write, and every
//! [`STEP`] bytes a background thread syncs (`fdatasync` of the file, or `syncfs` of its
//! whole file system, see [`SyncScope`]). The device then drains while airlock works,
//! instead of all at once at the end. Durability still comes only from the caller's own
//! fsync/syncfs after [`Syncer::finish`], which also reports any error a background sync
//! met (an fsync error is reported once per open file description, and the background
//! thread's duplicate shares the caller's, so it must not be dropped).

use std::fs::File;
use std::io::{self, Write};
use std::num::NonZeroU64;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use crate::io::sync::join_unscoped;

/// Bytes written between two writeback starts, and between two background syncs (see
/// `io::tuning` for the measurement).
pub const STEP: u64 = super::tuning::WRITEBACK_STEP;

/// Wraps a file; see the module docs.
pub struct Writeback<W> {
    inner: W,
    written: u64,
    kicked: u64,
    syncer: Option<SyncHandle>,
    /// Whether writeback is started with `POSIX_FADV_DONTNEED` (see [`Writeback::keep_cached`]).
    advise: bool,
}

impl<W: Write + AsFd> Writeback<W> {
    /// Wraps `inner`, whose current offset is 0.
    pub fn new(inner: W) -> Self {
        Writeback { inner, written: 0, kicked: 0, syncer: None, advise: true }
    }

    /// Wraps `inner`, whose current offset is `offset`: what lies before it is not this
    /// writer's (pack writes the payload after the room it reserved for the head).
    pub fn at(inner: W, offset: u64) -> Self {
        Writeback { inner, written: offset, kicked: offset, syncer: None, advise: true }
    }

    /// Gives no writeback advice, leaving only the background syncs: for a file that is
    /// read back right after it is written (the data volumes the parity pass reads).
    /// `POSIX_FADV_DONTNEED` also drops whatever of the range is already clean when it is
    /// given, and on a fast device that is much of it, which the read-back then fetches from
    /// the disk again (measured: 344 MB of a 785 MB set).
    pub fn keep_cached(mut self) -> Self {
        self.advise = false;
        self
    }

    /// Also counts what is written towards `syncer`'s next background sync.
    pub fn with_syncer(mut self, syncer: SyncHandle) -> Self {
        self.syncer = Some(syncer);
        self
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
        if self.advise && self.written - self.kicked >= STEP {
            let len = NonZeroU64::new(self.written - self.kicked);
            let _ = rustix::fs::fadvise(&self.inner, self.kicked, len, rustix::fs::Advice::DontNeed);
            self.kicked = self.written;
        }
        if let Some(syncer) = &self.syncer {
            syncer.wrote(n as u64, &self.inner);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a background sync covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncScope {
    /// `fdatasync` of the file whose write crossed the step: for one large file (a bundle).
    File,
    /// `syncfs` of that file's whole file system: for many files (an import's staging
    /// directory), most of them too small to be written back early on their own.
    FileSystem,
}

/// A background thread that syncs on request; see the module docs.
pub struct Syncer {
    handle: SyncHandle,
    worker: Option<JoinHandle<io::Result<()>>>,
}

/// Asks a [`Syncer`] to sync a file. Cheap to clone; requests never block, and once the
/// syncer has finished they do nothing.
#[derive(Clone)]
pub struct SyncHandle {
    /// The only sender: taken away when the syncer finishes, which ends its thread even
    /// while handles are still around.
    requests: Arc<Mutex<Option<mpsc::SyncSender<File>>>>,
    /// Bytes written through all handles so far.
    written: Arc<AtomicU64>,
}

impl Syncer {
    /// Starts the background thread.
    pub fn start(scope: SyncScope) -> Syncer {
        // One request waiting at most: while a sync runs, newer requests are covered by
        // the one waiting (the device flush is what matters), so they are dropped.
        let (requests, pending) = mpsc::sync_channel::<File>(1);
        let worker = std::thread::spawn(move || {
            let mut first_error = None;
            for file in pending {
                let synced = match scope {
                    SyncScope::File => file.sync_data(),
                    SyncScope::FileSystem => rustix::fs::syncfs(&file).map_err(io::Error::from),
                };
                if let Err(e) = synced {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        let handle = SyncHandle { requests: Arc::new(Mutex::new(Some(requests))), written: Arc::default() };
        Syncer { handle, worker: Some(worker) }
    }

    /// A handle to give to [`Writeback::with_syncer`].
    pub fn handle(&self) -> SyncHandle {
        self.handle.clone()
    }

    /// Waits for the sync under way and returns the first error any background sync met.
    /// Requests made after this are ignored. The caller must still sync the files itself.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        crate::io::sync::lock(&self.handle.requests).take();
        match self.worker.take() {
            Some(worker) => join_unscoped(worker, "background sync").map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // On an error path: the caller reports its own error; nothing of this one matters.
        let _ = self.stop();
    }
}

impl SyncHandle {
    /// Counts `n` bytes just written to `file`; asks for a sync each time the total over
    /// all handles crosses a multiple of [`STEP`].
    pub fn wrote(&self, n: u64, file: &impl AsFd) {
        let before = self.written.fetch_add(n, Ordering::Relaxed);
        if before / STEP != (before + n) / STEP {
            self.request(file);
        }
    }

    /// Asks for `file` to be synced, unless a request is already waiting (or the file
    /// cannot be duplicated: this is only a head start on the caller's own sync).
    pub fn request(&self, file: &impl AsFd) {
        let requests = crate::io::sync::lock(&self.requests);
        if let Some(requests) = requests.as_ref() {
            if let Ok(dup) = file.as_fd().try_clone_to_owned() {
                let _ = requests.try_send(File::from(dup));
            }
        }
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

    #[test]
    fn background_sync_errors_are_reported_by_finish() {
        // fsync of a character device fails (EINVAL): a stand-in for a device error.
        let syncer = Syncer::start(SyncScope::File);
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
        let mut w = Writeback::new(null).with_syncer(syncer.handle());
        w.write_all(&vec![0u8; STEP as usize]).unwrap();
        drop(w);
        let err = syncer.finish().expect_err("the failed background sync must be reported");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    }

    #[test]
    fn finish_does_not_wait_for_handles_and_later_requests_do_nothing() {
        let syncer = Syncer::start(SyncScope::FileSystem);
        let handle = syncer.handle();
        let tmp = tempfile::tempfile().unwrap();
        handle.request(&tmp);
        syncer.finish().unwrap();
        // The thread is gone: this must neither block nor panic.
        handle.request(&std::fs::File::open("/dev/null").unwrap());
    }

    #[test]
    fn a_sync_is_asked_for_each_time_the_total_over_all_handles_crosses_a_step() {
        // As above, a sync of /dev/null fails, which shows whether one was asked for.
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
        let syncer = Syncer::start(SyncScope::File);
        let (a, b) = (syncer.handle(), syncer.handle());
        a.wrote(STEP / 2, &null);
        b.wrote(STEP / 2 - 1, &null);
        syncer.finish().expect("no step crossed: no sync asked for");

        let syncer = Syncer::start(SyncScope::File);
        let (a, b) = (syncer.handle(), syncer.handle());
        a.wrote(STEP / 2, &null);
        b.wrote(STEP / 2, &null);
        syncer.finish().expect_err("the step was crossed by two handles together");
    }
}
