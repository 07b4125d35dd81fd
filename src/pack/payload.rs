//! The payload frame. Every carried file is read once, hashed from the same buffer that
//! feeds the tar stream, checked unchanged since the walk saw it, and streamed through tar
//! into multithreaded zstd. A file whose SHA-256 was already known (hashed before: a delta's
//! candidates, an artifact with a generated checksum signature, a volume set written again
//! because its head did not fit) must hash to it again. Small files are read whole (and hashed) by a read-ahead thread while this thread
//! feeds the encoder: with many small files, opening and reading them costs more than
//! compressing.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::mpsc;

use super::collect::{open_source, source_error, Sources, Stamp};
use super::{as_source_error, Packer, SourceProblem};
use crate::error::{Error, Result};
use crate::format::manifest::{Entry, Manifest};
use crate::format::tar::{self, write_member};
use crate::format::DATA_DIR;
use crate::io::digest::{Digest, Hasher};
use crate::io::sync::{join, Batcher};
use crate::io::tuning::{
    COPY_BUF, JOB_SIZE, READ_AHEAD_BATCHES, READ_AHEAD_BATCH_BYTES, READ_AHEAD_BATCH_FILES, READ_AHEAD_MAX_BYTES,
};
use crate::progress::Progress;

/// What the read-ahead thread hands the writer for each entry, in payload order.
enum Ahead {
    /// A small file's whole content and its SHA-256, checked against its size and stamp
    /// when the walk saw it.
    Read(Vec<u8>, Digest),
    /// A large file: the writer streams it.
    Stream,
}

/// A batch of [`Ahead`]s; an error ends the batch and the read-ahead.
type AheadBatch = Vec<Result<Ahead>>;

impl Packer<'_> {
    /// Compresses the payload frame (tar members `data/<path>` in payload order, then the
    /// end-of-archive blocks) into `w`. Returns the SHA-256 of each member's content, in
    /// payload order.
    pub(super) fn write_payload(
        &self,
        w: &mut impl Write,
        manifest: &Manifest,
        sources: &Sources,
    ) -> Result<Vec<Digest>> {
        let io_err = |e| Error::io(self.out, e);
        let mut enc = zstd::stream::write::Encoder::new(w, self.opts.level).map_err(io_err)?;
        let threads = match self.opts.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        };
        if threads > 1 {
            enc.multithread(threads).map_err(io_err)?;
            enc.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE)).map_err(io_err)?;
        }
        let digests = self.write_tar(&mut enc, manifest, sources)?;
        enc.finish().map_err(io_err)?;
        Ok(digests)
    }

    /// Writes the payload's tar stream (members `data/<path>` in payload order, then the
    /// end-of-archive blocks) into `w`: the zstd encoder of a bundle, or a volume set's
    /// frame cutter. Returns the SHA-256 of each member's content, in payload order.
    pub(super) fn write_tar(&self, w: &mut impl Write, manifest: &Manifest, sources: &Sources) -> Result<Vec<Digest>> {
        let io_err = |e| Error::io(self.out, e);
        // Headers and small files are batched so the encoder sees large writes; each write
        // into a multithreaded encoder has a fixed cost.
        let mut tar = BufWriter::with_capacity(COPY_BUF, w);
        let order = manifest.payload_order();
        let digests = std::thread::scope(|scope| {
            let (ahead_tx, ahead_rx) = mpsc::sync_channel(READ_AHEAD_BATCHES);
            let order = &order;
            let reader = scope.spawn(move || read_ahead(order, manifest, sources, ahead_tx));
            // Returns (dropping the receiver, which stops the read-ahead at its next batch)
            // before the read-ahead thread is joined.
            let written = self.write_members(&mut tar, order, manifest, sources, ahead_rx);
            // A panic in the read-ahead thread is the cause of any error the writer saw.
            join(reader, "read-ahead")?;
            written
        })?;
        tar.write_all(&[0u8; 2 * tar::BLOCK]).map_err(io_err)?;
        tar.flush().map_err(io_err)?;
        Ok(digests)
    }

    /// Writes one member per entry, in `order`, taking small files from the read-ahead;
    /// the SHA-256 of each, in `order`.
    fn write_members(
        &self,
        tar: &mut impl Write,
        order: &[usize],
        manifest: &Manifest,
        sources: &Sources,
        ahead: mpsc::Receiver<AheadBatch>,
    ) -> Result<Vec<Digest>> {
        let mut buf = vec![0u8; COPY_BUF];
        let mut batch = Vec::new().into_iter();
        let mut digests = Vec::with_capacity(order.len());
        for &i in order {
            let entry = &manifest.entries[i];
            if batch.len() == 0 {
                batch = ahead.recv().unwrap_or_default().into_iter();
            }
            let digest = match batch.next() {
                Some(Ok(Ahead::Read(data, digest))) => {
                    let name = format!("{DATA_DIR}{}", entry.path);
                    write_member(tar, &name, entry.size, entry.mode.bits(), &mut &data[..], &mut buf)
                        .map_err(|e| Error::io(self.out, e))?;
                    self.progress.add_bytes(entry.size);
                    self.progress.add_file();
                    digest
                }
                Some(Ok(Ahead::Stream)) => {
                    self.copy_source(tar, entry, &sources.fs_path(i, entry), sources.items[i].stamp, &mut buf)?
                }
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Internal("the read-ahead thread stopped early".into())),
            };
            if sources.items[i].hashed && digest != entry.sha256 {
                // Hashed before the payload pass, and different now: it changed in between.
                let fs_path = sources.fs_path(i, entry);
                return Err(source_error(&fs_path, SourceProblem::ChangedBeforePacking));
            }
            digests.push(digest);
        }
        Ok(digests)
    }

    /// Streams one source file into the tar stream, exactly `entry.size` bytes, hashing it
    /// as it goes, and checks it did not change since the walk saw it. Its SHA-256.
    fn copy_source(
        &self,
        tar: &mut impl Write,
        entry: &Entry,
        fs_path: &Path,
        stamp: Stamp,
        buf: &mut [u8],
    ) -> Result<Digest> {
        let mut file = open_source(fs_path).map_err(as_source_error)?;
        let name = format!("{DATA_DIR}{}", entry.path);
        let mut limited = ProgressReader {
            inner: (&mut file).take(entry.size),
            progress: self.progress,
            hasher: Hasher::new(),
            read_failed: false,
        };
        let copied = write_member(tar, &name, entry.size, entry.mode.bits(), &mut limited, buf);
        // One call both reads the source and writes the bundle: the reader knows which failed.
        let copied = copied.map_err(|e| match limited.read_failed {
            true => as_source_error(Error::io(fs_path, e)),
            false => Error::io(self.out, e),
        })?;
        let digest = limited.hasher.finish();
        reads::note(fs_path, copied);
        check_unchanged(&file, fs_path, copied, entry, stamp).map_err(as_source_error)?;
        self.progress.add_file();
        Ok(digest)
    }
}

/// The read-ahead thread: reads the small files in payload order and hands them over in
/// batches. It stops after handing over an error, or when the writer has stopped (the
/// channel is closed; the writer reports why).
fn read_ahead(order: &[usize], manifest: &Manifest, sources: &Sources, out: mpsc::SyncSender<AheadBatch>) {
    let mut batcher = Batcher::new(READ_AHEAD_BATCH_FILES, READ_AHEAD_BATCH_BYTES);
    for &i in order {
        let entry = &manifest.entries[i];
        let (next, bytes) = if entry.size > READ_AHEAD_MAX_BYTES {
            (Ok(Ahead::Stream), 0)
        } else {
            let read = read_small(entry, sources, i).map(|(data, digest)| Ahead::Read(data, digest));
            (read.map_err(as_source_error), entry.size as usize)
        };
        let failed = next.is_err();
        let full = batcher.push(next, bytes);
        let batch = match full {
            Some(batch) => batch,
            None if failed => batcher.take(),
            None => continue,
        };
        if out.send(batch).is_err() || failed {
            return;
        }
    }
    if let Some(rest) = batcher.take_rest() {
        // An error here means the writer stopped; it reports why.
        let _ = out.send(rest);
    }
}

/// Reads a small source file whole: exactly `entry.size` bytes, unchanged since the walk
/// saw it; and its SHA-256.
fn read_small(entry: &Entry, sources: &Sources, i: usize) -> Result<(Vec<u8>, Digest)> {
    let fs_path = sources.fs_path(i, entry);
    let mut file = open_source(&fs_path)?;
    let mut data = Vec::with_capacity(entry.size as usize);
    (&mut file).take(entry.size).read_to_end(&mut data).map_err(|e| Error::io(&fs_path, e))?;
    reads::note(&fs_path, data.len() as u64);
    check_unchanged(&file, &fs_path, data.len() as u64, entry, sources.items[i].stamp)?;
    let digest = Digest::of(&data);
    Ok((data, digest))
}

/// Errors unless the file gave exactly the manifest's size and still has the stamp it had
/// when the walk saw it (or when it was hashed).
fn check_unchanged(file: &File, fs_path: &Path, copied: u64, entry: &Entry, stamp: Stamp) -> Result<()> {
    let after = Stamp::of(&file.metadata().map_err(|e| Error::io(fs_path, e))?);
    if copied != entry.size || after != stamp {
        return Err(source_error(fs_path, SourceProblem::ChangedBeforePacking));
    }
    Ok(())
}

/// Hashes what is read and counts it towards the progress display, and remembers a failed
/// read (so the error is blamed on the source, not the bundle).
struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
    hasher: Hasher,
    read_failed: bool,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| self.read_failed |= e.kind() != io::ErrorKind::Interrupted)?;
        self.hasher.update(&buf[..n]);
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}

/// How many bytes the payload pass read from each source file, for the test that every
/// byte is read once (`pack::tests`); nothing is recorded outside tests.
pub(super) mod reads {
    use std::path::Path;

    #[cfg(test)]
    pub(in crate::pack) static READ: std::sync::Mutex<Vec<(std::path::PathBuf, u64)>> =
        std::sync::Mutex::new(Vec::new());

    /// Records that `bytes` of `path` were read.
    #[cfg(test)]
    pub(in crate::pack) fn note(path: &Path, bytes: u64) {
        crate::io::sync::lock(&READ).push((path.to_owned(), bytes));
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub(in crate::pack) fn note(_: &Path, _: u64) {}
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::pack::collect::tests::collect_dir;
    use crate::pack::PackError;
    use crate::progress::NoProgress;

    /// Hashes `dir`, lets `change` modify it, then writes the payload.
    fn payload_after(dir: &Path, change: impl FnOnce()) -> Result<Vec<u8>> {
        let (manifest, sources) = collect_dir(dir)?;
        change();
        let mut out = Vec::new();
        let opts = crate::pack::tests::options();
        let progress = crate::pack::Counted::new(&NoProgress);
        let packer =
            Packer { opts: &opts, signers: &[], out: Path::new("test.airlock"), progress: &progress, bound: 0.into() };
        packer.write_payload(&mut out, &manifest, &sources)?;
        Ok(out)
    }

    /// A file changed between the walk (or hashing) and the payload pass stops the pack, both on
    /// the read-ahead path (small files) and the streaming path (large ones), whether the
    /// size changes or only the content (same size, new mtime).
    #[test]
    fn a_file_changed_after_hashing_stops_the_pack() {
        for size in [100usize, (READ_AHEAD_MAX_BYTES as usize) * 2] {
            for same_size in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let victim = dir.path().join("m/victim");
                fs::create_dir_all(victim.parent().unwrap()).unwrap();
                for name in ["a", "m/victim", "z"] {
                    fs::write(dir.path().join(name), vec![b'x'; size]).unwrap();
                }
                let result = payload_after(dir.path(), || {
                    let new = if same_size { vec![b'y'; size] } else { vec![b'y'; size + 1] };
                    // Step the mtime explicitly: two writes can fall in one timestamp tick.
                    fs::write(&victim, new).unwrap();
                    let f = File::options().write(true).open(&victim).unwrap();
                    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1)).unwrap();
                });
                match result {
                    Err(Error::Pack(PackError::Source { path, problem })) => {
                        assert_eq!(path, victim, "size {size}");
                        assert_eq!(problem, SourceProblem::ChangedBeforePacking);
                    }
                    other => panic!("size {size} same_size {same_size}: expected a pack error, got {other:?}"),
                }
            }
        }
    }

    /// A bundle write that fails while a large file streams (one call reads the file and
    /// writes the bundle) is the bundle's error, not the file's: a full medium used to be
    /// reported as an error of the source file being read.
    #[test]
    fn a_write_error_while_streaming_names_the_bundle() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..READ_AHEAD_MAX_BYTES as usize * 64).map(|i| (i * 7919 % 251) as u8).collect();
        fs::write(dir.path().join("big"), big).unwrap();
        let (manifest, sources) = collect_dir(dir.path()).unwrap();
        let opts = crate::pack::tests::options();
        let progress = crate::pack::Counted::new(&NoProgress);
        let packer =
            Packer { opts: &opts, signers: &[], out: Path::new("test.airlock"), progress: &progress, bound: 0.into() };
        match packer.write_payload(&mut Full, &manifest, &sources) {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, Path::new("test.airlock"));
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
            }
            other => panic!("expected an I/O error on the bundle, got {other:?}"),
        }
    }

    /// Unchanged files give one member per file, in payload order, whichever path they take.
    #[test]
    fn payload_holds_small_and_large_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; READ_AHEAD_MAX_BYTES as usize + 1];
        fs::write(dir.path().join("a"), b"small").unwrap();
        fs::write(dir.path().join("b"), &big).unwrap();
        fs::write(dir.path().join("c"), b"").unwrap();
        let compressed = payload_after(dir.path(), || {}).unwrap();
        let tar = zstd::decode_all(&compressed[..]).unwrap();
        let mut archive = ::tar::Archive::new(&tar[..]);
        let members: Vec<(String, Vec<u8>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), data)
            })
            .collect();
        let want = vec![("data/a".to_owned(), b"small".to_vec()), ("data/b".into(), big), ("data/c".into(), vec![])];
        assert_eq!(members, want);
    }
}
