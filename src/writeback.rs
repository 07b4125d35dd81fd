//! [`Writeback`]: a file writer that starts writeback as it goes, and [`Syncer`], which
//! makes files durable from a background thread while they are still being written.
//!
//! On a machine with plenty of memory the kernel keeps a whole bundle or import dirty in
//! the page cache, and the fsync that makes it durable then waits for all of it at the end.
//! Starting writeback every few megabytes lets the disk work while airlock compresses or
//! hashes, so the final sync is short. `POSIX_FADV_DONTNEED` starts writeback of the dirty
//! range (and later lets its clean pages go); it is advice, so a failure changes nothing
//! but speed.
//!
//! Writeback alone is not always enough: a device with a volatile write cache (a USB
//! drive, a virtual disk, a loop device over a file) holds what it was sent until it is
//! told to flush, and only an fsync sends that flush. So a [`Writeback`] given a
//! [`SyncHandle`] also asks a background thread to `fdatasync` the file every few
//! megabytes; the device then drains while airlock works, instead of all at once at the
//! end. Durability still comes only from the caller's own fsync/syncfs after
//! [`Syncer::finish`], which also reports any error a background sync met (an fsync error
//! is reported once per open file description, and the background thread's duplicate
//! shares the caller's, so it must not be dropped).
use std::fs::File;
use std::io::{self, Write};
use std::num::NonZeroU64;
use std::os::fd::AsFd;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// Bytes written between two writeback starts.
pub const STEP: u64 = 16 << 20;

/// Wraps a file; see the module docs.
pub struct Writeback<W> {
    inner: W,
    written: u64,
    kicked: u64,
    syncer: Option<SyncHandle>,
}

impl<W: Write + AsFd> Writeback<W> {
    /// Wraps `inner`, whose current offset is 0.
    pub fn new(inner: W) -> Self {
        Writeback { inner, written: 0, kicked: 0, syncer: None }
    }

    /// Also has `syncer` fdatasync the file at every writeback start.
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
        if self.written - self.kicked >= STEP {
            let len = NonZeroU64::new(self.written - self.kicked);
            let _ = rustix::fs::fadvise(&self.inner, self.kicked, len, rustix::fs::Advice::DontNeed);
            self.kicked = self.written;
            if let Some(syncer) = &self.syncer {
                syncer.request(&self.inner);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A background thread that fdatasyncs files on request; see the module docs.
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
}

impl Syncer {
    /// Starts the background thread.
    pub fn start() -> Syncer {
        // One request waiting at most: while a sync runs, newer requests are covered by
        // the one waiting (the device flush is what matters), so they are dropped.
        let (requests, pending) = mpsc::sync_channel::<File>(1);
        let worker = std::thread::spawn(move || {
            let mut first_error = None;
            for file in pending {
                if let Err(e) = file.sync_data() {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        Syncer { handle: SyncHandle { requests: Arc::new(Mutex::new(Some(requests))) }, worker: Some(worker) }
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
        crate::lock(&self.handle.requests).take();
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the background sync thread panicked")),
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
    /// Asks for `file` to be synced, unless a request is already waiting (or the file
    /// cannot be duplicated: this is only a head start on the caller's own sync).
    pub fn request(&self, file: &impl AsFd) {
        let requests = crate::lock(&self.requests);
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
        let syncer = Syncer::start();
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
        let mut w = Writeback::new(null).with_syncer(syncer.handle());
        w.write_all(&vec![0u8; STEP as usize]).unwrap();
        drop(w);
        let err = syncer.finish().expect_err("the failed background sync must be reported");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    }

    #[test]
    fn finish_does_not_wait_for_handles_and_later_requests_do_nothing() {
        let syncer = Syncer::start();
        let handle = syncer.handle();
        let tmp = tempfile::tempfile().unwrap();
        handle.request(&tmp);
        syncer.finish().unwrap();
        // The thread is gone: this must neither block nor panic.
        handle.request(&std::fs::File::open("/dev/null").unwrap());
    }
}
