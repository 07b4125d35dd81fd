//! The walk: find the sources, read each file's metadata on one worker per core, and build
//! the manifest from what was found (hashes are the payload pass's, see `pack`).

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use super::{PackError, PackFault, PackOptions, Refusal, SourceProblem};
use crate::error::{Error, Result};
use crate::format::manifest::{link_signatures, BundleId, Entry, Limits, Manifest, Mode, VERSION};
use crate::format::path::RelPath;
use crate::io::digest::{Digest, Hasher};
use crate::io::sync::{join, lock, Batcher};
use crate::io::tuning::{HASH_BATCH, HASH_BUF, HASH_QUEUE_MAX};
use crate::progress::Progress;

/// A [`PackError::Source`] for `path`.
pub(super) fn source_error(path: &Path, problem: SourceProblem) -> Error {
    Error::Pack(PackError::Source { path: path.to_owned(), problem })
}

/// The files and directories named by the caller. Each file refers to its root by index
/// instead of holding its own file-system path: with hundreds of thousands of files, the
/// paths are a large part of pack's memory.
#[derive(Default)]
pub(super) struct Roots {
    roots: Vec<Root>,
    /// With [`Symlinks::Follow`]: where each link found by the walk leads (its canonical
    /// path, which has no links left to follow), by root and bundle path.
    followed: HashMap<(u32, String), PathBuf>,
}

struct Root {
    path: PathBuf,
    /// A single file packed under its own name (not a directory's contents).
    is_file: bool,
}

impl Roots {
    /// Adds a root; its index.
    pub(super) fn push(&mut self, path: PathBuf, is_file: bool) -> Result<u32> {
        let index = u32::try_from(self.roots.len()).map_err(|_| source_error(&path, SourceProblem::TooManySources))?;
        self.roots.push(Root { path, is_file });
        Ok(index)
    }

    /// Where the file with bundle path `path` under root `root` is on disk.
    pub(super) fn fs_path(&self, root: u32, path: &RelPath) -> PathBuf {
        if let Some(target) = self.followed.get(&(root, path.as_str().to_owned())) {
            return target.clone();
        }
        let root = &self.roots[root as usize];
        if root.is_file {
            root.path.clone()
        } else {
            root.path.join(path.as_str())
        }
    }
}

/// Where the payload pass finds each entry's file and what it looked like when hashed:
/// `items` is indexed like the manifest's entries.
pub(super) struct Sources {
    pub(super) roots: Roots,
    pub(super) items: Vec<Item>,
    /// With [`Symlinks::Skip`]: the links left out.
    pub(super) skipped: Vec<PathBuf>,
}

/// What `pack` does with a symbolic link among the sources (a source named on the command
/// line, or one found in a directory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Symlinks {
    /// Refuse it (every one is listed, with the other refused sources, in one
    /// [`PackError::Refused`]).
    #[default]
    Refuse,
    /// Pack the file or directory it points to, inside the tree or outside it, under the
    /// link's name; a loop or a dangling link is refused.
    Follow,
    /// Leave it out, and list it ([`super::PackReport::skipped_links`]).
    Skip,
}

impl Sources {
    /// The file-system path of `entry`, the manifest's entry number `i`.
    pub(super) fn fs_path(&self, i: usize, entry: &Entry) -> PathBuf {
        self.roots.fs_path(self.items[i].root, &entry.path)
    }
}

/// What the payload pass needs of an entry besides the manifest entry itself.
pub(super) struct Item {
    pub(super) root: u32,
    pub(super) stamp: Stamp,
    /// Whether the entry's SHA-256 is its content's already (hashed before the payload
    /// pass, or an empty file); otherwise it is a placeholder the payload pass replaces.
    pub(super) hashed: bool,
}

/// A file found by the walk: its bundle path and its root.
pub(super) struct Found {
    path: RelPath,
    root: u32,
}

/// A file after hashing.
pub(super) struct Hashed {
    pub(super) size: u64,
    /// From [`stat_file`], a placeholder unless the file is empty.
    pub(super) sha256: Digest,
    pub(super) mode: Mode,
    pub(super) stamp: Stamp,
    /// Whether `sha256` is the content's.
    pub(super) hashed: bool,
}

/// What identifies a file's content cheaply, to notice a change between the two passes:
/// a fingerprint of its size, mtime, ctime and inode number (kept per file until the
/// payload is written, so 8 bytes rather than 40). This check only turns a changed file
/// into a clear error at pack time; the importer's hash check is what catches changed
/// content whatever happens here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Stamp(u64);

impl Stamp {
    pub(super) fn of(m: &fs::Metadata) -> Stamp {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (m.len(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec(), m.ino()).hash(&mut h);
        Stamp(h.finish())
    }
}

/// Walks and hashes the sources and builds the manifest (entries sorted by bundle path,
/// signatures linked) and the payload pass's side table.
///
/// Only metadata is read ([`stat_file`]): the payload pass hashes each file from the buffer
/// it compresses (the single-read pack, FORMAT.md §3), and `prehash` the few whose hash is
/// needed earlier.
pub(super) fn collect(opts: &PackOptions, progress: &dyn Progress) -> Result<(Manifest, Sources)> {
    let (walked, files) = match opts.fault {
        None => collect_and_hash(&opts.sources, opts.symlinks, progress, &stat_file)?,
        Some(fault) => collect_and_hash(&opts.sources, opts.symlinks, progress, &faulty_hash(fault))?,
    };
    let (manifest, items) = build_manifest(opts, files);
    Ok((manifest, Sources { roots: walked.roots, items, skipped: walked.skipped }))
}

/// The hashing function with `fault` injected.
#[cfg(feature = "fault-injection")]
fn faulty_hash(fault: PackFault) -> impl Fn(&Path, &mut [u8], &dyn Progress) -> Result<Hashed> + Sync {
    let fired = std::sync::atomic::AtomicBool::new(false);
    move |path: &Path, buf: &mut [u8], progress: &dyn Progress| {
        if fault == PackFault::HashWorkerPanic && !fired.swap(true, std::sync::atomic::Ordering::Relaxed) {
            panic!("injected fault: a hashing worker panics");
        }
        stat_file(path, buf, progress)
    }
}

/// Without the `fault-injection` feature, [`PackFault`] has no values.
#[cfg(not(feature = "fault-injection"))]
fn faulty_hash(fault: PackFault) -> &'static HashFn<'static> {
    match fault {}
}

/// A file found by the walk, with its file-system path.
type Queued = (Found, PathBuf);
/// A file after hashing.
pub(super) type HashedFile = (Found, Hashed);
/// The function that hashes one file (a parameter so tests can make it fail).
type HashFn<'a> = dyn Fn(&Path, &mut [u8], &dyn Progress) -> Result<Hashed> + Sync + 'a;

/// Walks the sources and hashes every file found, one hashing worker per core overlapping
/// the walk. Returns the roots and the files with their hashes, sorted by bundle path.
///
/// Errors, in this order: a worker that panicked ([`Error::Internal`]), the walk's error
/// (an unreadable directory: it does not depend on which file a worker happened to reach
/// first), every source the walk refused (links, devices, names: [`PackError::Refused`];
/// hashing stops at the first), the first hashing error, every bundle path two sources
/// share, and, as a last guard against losing files silently, a count of hashed files
/// that differs from the count walked.
fn collect_and_hash(
    paths: &[PathBuf],
    symlinks: Symlinks,
    progress: &dyn Progress,
    hash: &HashFn<'_>,
) -> Result<(Walked, Vec<HashedFile>)> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queue = HashQueue::default();
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let (walked, hashed) = std::thread::scope(|scope| {
        let hashers: Vec<_> =
            (0..workers).map(|_| scope.spawn(|| hash_queued(&queue, &first_error, progress, hash))).collect();
        let walked = walk_into(paths, symlinks, &queue);
        let mut files = Vec::new();
        let mut panicked = None;
        for h in hashers {
            match join(h, "hashing worker") {
                Ok(done) => files.extend(done),
                Err(e) => panicked = panicked.or(Some(e)),
            }
        }
        (walked, panicked.map_or(Ok(files), Err))
    });
    let mut files = hashed?;
    let (walked, count) = walked?;
    if !walked.refused.is_empty() {
        return Err(Error::Pack(PackError::Refused(walked.refused)));
    }
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    if files.len() != count {
        return Err(Error::Internal(format!("{count} files were found but {} hashed", files.len())));
    }
    files.sort_by(|a, b| a.0.path.as_str().as_bytes().cmp(b.0.path.as_str().as_bytes()));
    check_unique(&walked.roots, &files)?;
    Ok((walked, files))
}

/// Runs the walk, feeding the queue in batches; closes the queue when done (or fails it
/// on a walk error or a refused source, so the workers stop at once: the pack will not
/// happen). What the walk found and the number of files queued.
fn walk_into(paths: &[PathBuf], symlinks: Symlinks, queue: &HashQueue) -> Result<(Walked, usize)> {
    let mut batcher = Batcher::new(HASH_BATCH, usize::MAX);
    let mut count = 0;
    let limits = Limits::of_version(VERSION);
    let mut over_limit = None;
    let walked = walk(paths, symlinks, &mut |found, fs_path| {
        count += 1;
        // A tree past the format's entry limit stops here, before its files are all held.
        if let Err(reject) = limits.check_entries(count as u64) {
            over_limit = Some(reject);
            return false;
        }
        batcher.push((found, fs_path), 0).is_none_or(|batch| queue.push_all(batch))
    });
    match &walked {
        Ok(w) if w.refused.is_empty() && over_limit.is_none() => {
            queue.push_all(batcher.take());
            queue.close();
        }
        _ => queue.fail(),
    }
    if let Some(reject) = over_limit {
        return Err(Error::Pack(PackError::OverLimit(reject)));
    }
    walked.map(|w| (w, count))
}

/// Refuses, all in one [`PackError::Refused`], every bundle path that two sources share
/// (`files` is sorted by it).
fn check_unique(roots: &Roots, files: &[HashedFile]) -> Result<()> {
    let mut refused = Vec::new();
    for pair in files.windows(2) {
        let ((first, _), (second, _)) = (&pair[0], &pair[1]);
        if first.path == second.path {
            let problem = SourceProblem::SameBundlePath {
                path: second.path.as_str().to_owned(),
                first: roots.fs_path(first.root, &first.path),
            };
            refused.push(Refusal { path: roots.fs_path(second.root, &second.path), problem });
        }
    }
    match refused.is_empty() {
        true => Ok(()),
        false => Err(Error::Pack(PackError::Refused(refused))),
    }
}

/// Files waiting to be hashed. The walk adds them in batches; each worker takes one file at
/// a time, so a batch holding several large files is still shared by all workers.
#[derive(Default)]
struct HashQueue {
    state: Mutex<HashQueueState>,
    /// Signalled when files arrive, the walk ends or a worker fails.
    not_empty: Condvar,
    /// Signalled when the queue drains to half or a worker fails.
    not_full: Condvar,
}

#[derive(Default)]
struct HashQueueState {
    files: VecDeque<Queued>,
    closed: bool,
    failed: bool,
}

impl HashQueue {
    /// Moves `batch` into the queue, waiting while it is full. False once a worker failed
    /// (the walk then stops).
    fn push_all(&self, batch: Vec<Queued>) -> bool {
        let mut state = lock(&self.state);
        while state.files.len() >= HASH_QUEUE_MAX && !state.failed {
            state = self.not_full.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.failed {
            return false;
        }
        state.files.extend(batch);
        drop(state);
        self.not_empty.notify_all();
        true
    }

    /// No more files will come.
    fn close(&self) {
        lock(&self.state).closed = true;
        self.not_empty.notify_all();
    }

    /// Stops everyone: the walk at its next batch, the workers at their next file.
    fn fail(&self) {
        lock(&self.state).failed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// The next file, or `None` once the queue is closed and empty or a worker failed.
    fn pop(&self) -> Option<Queued> {
        let mut state = lock(&self.state);
        loop {
            if state.failed {
                return None;
            }
            if let Some(file) = state.files.pop_front() {
                // Wake the walk only when the queue crosses half: a wake-up per file costs
                // a system call.
                if state.files.len() == HASH_QUEUE_MAX / 2 {
                    self.not_full.notify_one();
                }
                return Some(file);
            }
            if state.closed {
                return None;
            }
            state = self.not_empty.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Fails the queue if the worker holding it unwinds from a panic: otherwise the walk could
/// wait forever for room in a queue no worker empties.
struct FailOnPanic<'a>(&'a HashQueue);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail();
        }
    }
}

/// A hashing worker: hashes files until the queue is closed and empty; on an error it
/// records it (the first one wins) and stops everyone.
fn hash_queued(
    queue: &HashQueue,
    first_error: &Mutex<Option<Error>>,
    progress: &dyn Progress,
    hash: &HashFn<'_>,
) -> Vec<HashedFile> {
    let _guard = FailOnPanic(queue);
    let mut buf = vec![0u8; HASH_BUF];
    let mut done = Vec::new();
    while let Some((found, fs_path)) = queue.pop() {
        match hash(&fs_path, &mut buf, progress) {
            Ok(h) => done.push((found, h)),
            Err(e) => {
                lock(first_error).get_or_insert(e);
                queue.fail();
            }
        }
    }
    done
}

/// What the walk found besides the files: the roots, every source it refused (with the
/// rule each breaks), and the links it left out.
pub(super) struct Walked {
    roots: Roots,
    refused: Vec<Refusal>,
    skipped: Vec<PathBuf>,
}

impl Walked {
    fn refuse(&mut self, path: &Path, problem: SourceProblem) {
        self.refused.push(Refusal { path: path.to_owned(), problem });
    }
}

/// Walks the sources: a directory contributes its contents (paths relative to it), a file
/// contributes itself under its own name. Only regular files and directories are packed;
/// symbolic links as `symlinks` says. Every source that cannot be packed is listed in
/// [`Walked::refused`] and the walk goes on, so one run names them all; files are handed
/// to `found` (with their file-system path) only while nothing is refused. `found`
/// returns false to stop the walk early (the error that caused that is reported
/// elsewhere). An unreadable directory stops the walk with its error.
fn walk(paths: &[PathBuf], symlinks: Symlinks, found: &mut dyn FnMut(Found, PathBuf) -> bool) -> Result<Walked> {
    let mut walked = Walked { roots: Roots::default(), refused: Vec::new(), skipped: Vec::new() };
    for root in paths {
        let link_meta = fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
        let meta = match (link_meta.file_type().is_symlink(), symlinks) {
            (false, _) => link_meta,
            (true, Symlinks::Refuse) => {
                walked.refuse(root, SourceProblem::SymbolicLink);
                continue;
            }
            (true, Symlinks::Skip) => {
                walked.skipped.push(root.clone());
                continue;
            }
            (true, Symlinks::Follow) => match fs::metadata(root) {
                Ok(m) => m,
                Err(e) => {
                    walked.refuse(root, followed_link_problem(&e));
                    continue;
                }
            },
        };
        if meta.is_file() {
            let Some(name) = root.file_name() else {
                walked.refuse(root, SourceProblem::NoFileName);
                continue;
            };
            let index = walked.roots.push(root.clone(), true)?;
            let file = match found_file(Path::new(name), index) {
                Ok(file) => file,
                Err(problem) => {
                    walked.refuse(root, problem);
                    continue;
                }
            };
            if walked.refused.is_empty() && !found(file, root.clone()) {
                return Ok(walked);
            }
            continue;
        }
        if !meta.is_dir() {
            walked.refuse(root, SourceProblem::NotFileOrDirectory);
            continue;
        }
        let index = walked.roots.push(root.clone(), false)?;
        if !walk_dir(root, index, symlinks, &mut walked, found)? {
            return Ok(walked);
        }
    }
    Ok(walked)
}

/// Walks one directory root (see [`walk`]); false when `found` asked to stop.
fn walk_dir(
    root: &Path,
    index: u32,
    symlinks: Symlinks,
    walked: &mut Walked,
    found: &mut dyn FnMut(Found, PathBuf) -> bool,
) -> Result<bool> {
    let follow = symlinks == Symlinks::Follow;
    // Sorted per directory so the files arrive nearly in bundle-path order: each hashing
    // worker's results are then one sorted run, and the final sort merges the runs.
    for item in walkdir::WalkDir::new(root).follow_links(follow).sort_by_file_name() {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                let path = e.path().unwrap_or(root).to_owned();
                if e.loop_ancestor().is_some() {
                    walked.refuse(&path, SourceProblem::SymlinkLoop);
                    continue;
                }
                let is_link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
                let error = e.into_io_error().unwrap_or_else(|| io::Error::other("walk failed"));
                if follow && is_link {
                    walked.refuse(&path, followed_link_problem(&error));
                    continue;
                }
                return Err(Error::io(path, error));
            }
        };
        let ft = item.file_type();
        if ft.is_dir() {
            continue;
        }
        if ft.is_symlink() {
            match symlinks {
                Symlinks::Skip => walked.skipped.push(item.into_path()),
                _ => walked.refuse(item.path(), SourceProblem::SymbolicLink),
            }
            continue;
        }
        if !ft.is_file() {
            walked.refuse(item.path(), SourceProblem::SpecialFile);
            continue;
        }
        let file = match found_file(relative_to(item.path(), root), index) {
            Ok(file) => file,
            Err(problem) => {
                walked.refuse(item.path(), problem);
                continue;
            }
        };
        let mut fs_path = item.path().to_owned();
        if item.path_is_symlink() {
            // Hashed and packed from where it leads, so the open never meets a link.
            match fs::canonicalize(item.path()) {
                Ok(target) => {
                    walked.roots.followed.insert((index, file.path.as_str().to_owned()), target.clone());
                    fs_path = target;
                }
                Err(e) => {
                    walked.refuse(item.path(), followed_link_problem(&e));
                    continue;
                }
            }
        }
        if walked.refused.is_empty() && !found(file, fs_path) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Why a link could not be followed: it leads nowhere, or round in a loop.
fn followed_link_problem(e: &io::Error) -> SourceProblem {
    match e.raw_os_error() {
        Some(libc::ELOOP) => SourceProblem::SymlinkLoop,
        _ => SourceProblem::DanglingSymlink,
    }
}

/// `path` (found by walking `root`) relative to `root`. The walk builds every path as
/// `root` joined with names, so this strips bytes instead of parsing components (which
/// is a measurable part of walking 200,000 files).
fn relative_to<'a>(path: &'a Path, root: &Path) -> &'a Path {
    use std::os::unix::ffi::OsStrExt;
    let (bytes, prefix) = (path.as_os_str().as_bytes(), root.as_os_str().as_bytes());
    match bytes.strip_prefix(prefix) {
        Some(rest) => {
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            Path::new(std::ffi::OsStr::from_bytes(rest))
        }
        None => path.strip_prefix(root).unwrap_or(path),
    }
}

/// A file to be packed as `rel` under root number `root`, or the naming rule it breaks.
fn found_file(rel: &Path, root: u32) -> Result<Found, SourceProblem> {
    let text = rel.to_str().ok_or(SourceProblem::NameNotUtf8)?;
    let path = RelPath::new(text).map_err(|error| SourceProblem::UnsafePath { path: text.to_owned(), error })?;
    Ok(Found { path, root })
}

/// Hashes one source file: exactly the size `fstat` gave when it was opened.
pub(super) fn hash_file(path: &Path, buf: &mut [u8], progress: &dyn Progress) -> Result<Hashed> {
    let mut file = open_source(path)?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(source_error(path, SourceProblem::NotRegularFile));
    }
    let before = Stamp::of(&meta);
    let len = meta.len();
    let mut hasher = Hasher::new();
    // Exactly the size fstat gave: no extra read to meet end-of-file (one system call per
    // file). A file that grows meanwhile has a new size and mtime, which the payload pass
    // compares with `before` and refuses.
    let mut limited = (&mut file).take(len);
    loop {
        let n = match limited.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        hasher.update(&buf[..n]);
        progress.add_bytes(n as u64);
    }
    progress.add_file();
    let size = hasher.len();
    super::payload::reads::note(path, size);
    if size != len {
        return Err(source_error(path, SourceProblem::ChangedWhileRead));
    }
    Ok(Hashed { size, sha256: hasher.finish(), mode: Mode::from_permissions(meta.mode()), stamp: before, hashed: true })
}

/// A source file's metadata, without reading it (`lstat`: a link swapped in after the walk
/// is refused). The SHA-256 is the content's only for an empty file; otherwise it is a
/// placeholder the payload pass replaces with the hash of what it reads.
pub(super) fn stat_file(path: &Path, _buf: &mut [u8], progress: &dyn Progress) -> Result<Hashed> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(source_error(path, SourceProblem::SymbolicLink));
    }
    if !meta.is_file() {
        return Err(source_error(path, SourceProblem::NotRegularFile));
    }
    progress.add_file();
    let empty = meta.len() == 0;
    let sha256 = if empty { Hasher::new().finish() } else { Digest([0; 32]) };
    let (size, mode, stamp) = (meta.len(), Mode::from_permissions(meta.mode()), Stamp::of(&meta));
    Ok(Hashed { size, sha256, mode, stamp, hashed: empty })
}

/// Opens a source file without following a symbolic link (one swapped in after the walk
/// is refused) and without blocking (on a FIFO swapped in likewise).
pub(super) fn open_source(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|e| match e
        .raw_os_error()
    {
        Some(libc::ELOOP) => source_error(path, SourceProblem::SymbolicLink),
        _ => Error::io(path, e),
    })
}

/// Builds the manifest from the hashed files (consumed: their paths move into the
/// entries), and the payload pass's side table.
fn build_manifest(opts: &PackOptions, files: Vec<HashedFile>) -> (Manifest, Vec<Item>) {
    let mut entries = Vec::with_capacity(files.len());
    let mut items = Vec::with_capacity(files.len());
    for (found, h) in files {
        entries.push(Entry {
            path: found.path,
            size: h.size,
            sha256: h.sha256,
            mode: h.mode,
            signatures: Vec::new(),
            carried: true,
        });
        items.push(Item { root: found.root, stamp: h.stamp, hashed: h.hashed });
    }
    link_signatures(&mut entries);
    let manifest = Manifest {
        version: crate::format::manifest::VERSION,
        base: opts.base.as_ref().map(|b| crate::format::manifest::Base { mirror: b.mirror, manifest: b.manifest }),
        bundle_id: BundleId::random(),
        created: opts.created,
        expires: opts.expires,
        channel: opts.channel.clone(),
        sequence: opts.sequence,
        previous: opts.previous,
        label: opts.label.clone(),
        meta: opts.meta.clone(),
        entries,
        removed: Vec::new(),
    };
    (manifest, items)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::progress::NoProgress;

    /// Collects `dir` as `pack` would, with options fit for tests.
    pub(in crate::pack) fn collect_dir(dir: &Path) -> Result<(Manifest, Sources)> {
        collect(&PackOptions { sources: vec![dir.to_owned()], ..super::super::tests::options() }, &NoProgress)
    }

    fn many_files(count: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..count {
            fs::write(dir.path().join(format!("f{i:05}")), b"x").unwrap();
        }
        dir
    }

    /// A hashing error while the walk still has many more files than the queue holds stops
    /// the pack with that error (the walk must not block on a full queue nobody empties).
    /// Also checks that without the error every file is hashed once, in path order.
    #[test]
    fn a_hashing_error_during_a_long_walk_is_reported() {
        let count = HASH_QUEUE_MAX * 3;
        let dir = many_files(count);
        let bad = dir.path().join("f00003");
        let failing = |path: &Path, buf: &mut [u8], progress: &dyn Progress| {
            if path == bad {
                return Err(Error::io(path, io::Error::other("injected read error")));
            }
            hash_file(path, buf, progress)
        };
        match collect_and_hash(&[dir.path().to_owned()], Symlinks::Refuse, &NoProgress, &failing) {
            Err(Error::Io { path, .. }) => assert_eq!(path, bad),
            Err(other) => panic!("expected the injected error, got {other:?}"),
            Ok(_) => panic!("the injected error was lost"),
        }
        let (_, files) = collect_and_hash(&[dir.path().to_owned()], Symlinks::Refuse, &NoProgress, &hash_file).unwrap();
        let names: Vec<&str> = files.iter().map(|(s, _)| s.path.as_str()).collect();
        let want: Vec<String> = (0..count).map(|i| format!("f{i:05}")).collect();
        assert_eq!(names, want);
    }

    /// A hashing worker that panics fails the pack with an internal error instead of
    /// dropping the files it hashed; when every worker panics while the walk still has more
    /// files than the queue holds, the walk stops too instead of waiting for room.
    #[test]
    fn a_panicking_hashing_worker_is_an_internal_error() {
        let dir = many_files(HASH_QUEUE_MAX * 2);
        let one = dir.path().join("f00100");
        let panics_once = |path: &Path, buf: &mut [u8], progress: &dyn Progress| {
            assert_ne!(path, one, "injected panic");
            hash_file(path, buf, progress)
        };
        let panics_always = |path: &Path, _: &mut [u8], _: &dyn Progress| -> Result<Hashed> {
            panic!("injected panic at {}", path.display())
        };
        for hash in [&panics_once as &HashFn<'_>, &panics_always] {
            match collect_and_hash(&[dir.path().to_owned()], Symlinks::Refuse, &NoProgress, hash) {
                Err(Error::Internal(message)) => assert!(message.contains("injected panic"), "{message}"),
                Err(other) => panic!("expected an internal error, got {other:?}"),
                Ok((_, files)) => panic!("the panic was lost; {} files hashed", files.len()),
            }
        }
    }
}
