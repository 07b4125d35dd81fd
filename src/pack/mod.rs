//! The bundle writer: `airlock pack`.
//!
//! Two passes over the sources: first every file is hashed (in parallel, one thread per
//! core) so the manifest can be signed and written *first* in the bundle; then the files are
//! streamed through tar and multithreaded zstd. Between the passes a file could change; the
//! second pass copies exactly the hashed size and compares the file's metadata before and
//! after (as GNU tar does for "file changed as we read it"), so a changed file stops the pack
//! instead of producing a bundle the importer would reject.
//!
//! In the second pass small files are read whole by a read-ahead thread while the writer
//! feeds zstd: with many small files, opening and reading them costs more than compressing.
//! The head (manifest, signatures, checksum list) is compressed straight into the bundle
//! while the manifest and the checksum list are signed on two other threads.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::format::head::sign_manifest;
use crate::format::manifest::{self, BundleId, Entry, Manifest, Mode, SIGNATURE_SUFFIXES};
use crate::format::path::RelPath;
use crate::format::sums::sums_text;
use crate::format::tar::{self, write_member};
use crate::format::{signature_member, DATA_DIR, MANIFEST_MEMBER, SUMS_MEMBER};
use crate::io::digest::{Digest, IO_BUF};
use crate::io::sync::lock;
use crate::io::writeback::{SyncScope, Syncer, Writeback};
use crate::keys::{self, SecretKey};
use crate::progress::{NoProgress, Progress};

/// Default zstd level.
pub const DEFAULT_LEVEL: i32 = 3;
/// zstd job size for multithreaded compression.
const JOB_SIZE: u32 = 2 << 20;
/// Buffer size for streaming file content into the tar stream.
const COPY_BUF: usize = 1 << 20;
/// Highest zstd level: higher ones need windows larger than the reader accepts.
pub const MAX_LEVEL: i32 = 19;

/// What to pack and how.
#[derive(Clone, Debug)]
pub struct PackOptions {
    /// Directories (their contents) and files to pack.
    pub sources: Vec<PathBuf>,
    /// The channel.
    pub channel: String,
    /// The sequence number.
    pub sequence: u64,
    /// The previous manifest's digest, if known.
    pub previous: Option<Digest>,
    /// Creation time (Unix seconds).
    pub created: u64,
    /// Expiry time (Unix seconds).
    pub expires: Option<u64>,
    /// Label.
    pub label: Option<String>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// zstd level (1 to [`MAX_LEVEL`]).
    pub level: i32,
    /// zstd worker threads (0 = one per core).
    pub threads: u32,
    /// Add `<artifact>.sha256.sig` for every artifact: a signify embedded signature, by
    /// the first key, of its checksum line (`pack --sign-artifacts`).
    pub sign_artifacts: bool,
}

/// What `pack` produced.
#[derive(Debug)]
pub struct PackReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// SHA-256 of the manifest bytes (the next bundle's `previous`).
    pub manifest_digest: Digest,
    /// Size of the bundle file.
    pub bundle_bytes: u64,
}

/// A file or directory named on the command line. Each source file refers to its root by
/// index instead of holding its own file-system path: with hundreds of thousands of files,
/// the paths are a large part of pack's memory.
struct Root {
    path: PathBuf,
    /// A single file packed under its own name (not a directory's contents).
    is_file: bool,
}

/// A source file found by the walk.
struct Source {
    path: RelPath,
    root: u32,
}

impl Source {
    fn fs_path(&self, roots: &[Root]) -> PathBuf {
        let root = &roots[self.root as usize];
        if root.is_file {
            root.path.clone()
        } else {
            root.path.join(self.path.as_str())
        }
    }
}

/// A source file after hashing.
struct Hashed {
    size: u64,
    sha256: Digest,
    mode: Mode,
    stamp: Stamp,
}

/// What the payload pass needs besides the manifest entry: where the file is and what it
/// looked like when it was hashed. Indexed like `manifest.entries`.
struct Item {
    root: u32,
    stamp: Stamp,
}

impl Item {
    fn fs_path(&self, roots: &[Root], entry: &Entry) -> PathBuf {
        let root = &roots[self.root as usize];
        if root.is_file {
            root.path.clone()
        } else {
            root.path.join(entry.path.as_str())
        }
    }
}

/// What identifies a file's content cheaply, to notice a change between the two passes:
/// a fingerprint of its size, mtime, ctime and inode number (kept per file until the
/// payload is written, so 8 bytes rather than 40). This check only turns a changed file
/// into a clear error at pack time; the importer's hash check is what catches changed
/// content whatever happens here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp(u64);

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (m.len(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec(), m.ino()).hash(&mut h);
        Stamp(h.finish())
    }
}

/// Packs `opts.sources` into a new bundle at `out`, signed by every key in `signers`
/// (the first also signs the checksum list). Refuses to overwrite `out` unless `overwrite`.
pub fn pack(
    opts: &PackOptions,
    signers: &[SecretKey],
    out: &Path,
    overwrite: bool,
    progress: &dyn Progress,
) -> Result<PackReport> {
    check_options(opts, signers)?;
    // Sizes are learnt while hashing (from the open file, so a file swapped for a link
    // between the walk and the read is refused), and files while walking: neither total is
    // known until then.
    progress.start("hashing", 0, 0);
    let (mut roots, files) = collect_and_hash(&opts.sources, progress)?;
    let (mut manifest, mut items) = build_manifest(opts, files);
    // Lives until the bundle is written: it holds the generated checksum signatures.
    let _generated = if opts.sign_artifacts {
        Some(add_checksum_signatures(&mut manifest, &mut items, &mut roots, &signers[0])?)
    } else {
        None
    };
    let total = manifest.total_size();
    // Encoded (and checked against the format's rules) before anything is written.
    let manifest_bytes = manifest::encode(&manifest)?;
    let manifest_digest = Digest::of(&manifest_bytes);
    let head = Head { manifest: &manifest, manifest_bytes };
    let bundle_bytes = write_bundle(opts, signers, out, overwrite, head, &roots, &items, total, progress)?;
    progress.finish();
    Ok(PackReport { manifest, manifest_digest, bundle_bytes })
}

fn check_options(opts: &PackOptions, signers: &[SecretKey]) -> Result<()> {
    if signers.is_empty() {
        return Err(Error::Usage("pack needs at least one --key".into()));
    }
    let mut ids = HashSet::new();
    for k in signers {
        if !ids.insert(k.key_id()) {
            return Err(Error::Usage(format!("two signing keys share the key id {}", k.key_id())));
        }
    }
    if !(1..=MAX_LEVEL).contains(&opts.level) {
        return Err(Error::Usage(format!("--level must be 1 to {MAX_LEVEL}")));
    }
    if opts.sources.is_empty() {
        return Err(Error::Usage("nothing to pack: give at least one file or directory".into()));
    }
    Ok(())
}

/// Walks the sources and hashes every file found, one hashing worker per core overlapping
/// the walk. Returns the roots and the files with their hashes, sorted by bundle path.
fn collect_and_hash(paths: &[PathBuf], progress: &dyn Progress) -> Result<(Vec<Root>, Vec<HashedSource>)> {
    collect_and_hash_with(paths, progress, &hash_file)
}

/// The function that hashes one file (a parameter so tests can make it fail).
type HashFn<'a> = dyn Fn(&Path, &mut [u8], &dyn Progress) -> Result<Hashed> + Sync + 'a;

/// [`collect_and_hash`] with the hashing function given.
fn collect_and_hash_with(
    paths: &[PathBuf],
    progress: &dyn Progress,
    hash: &HashFn<'_>,
) -> Result<(Vec<Root>, Vec<HashedSource>)> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queue = HashQueue::default();
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let (walked, mut files) = std::thread::scope(|scope| {
        let hashers: Vec<_> =
            (0..workers).map(|_| scope.spawn(|| hash_queued(&queue, &first_error, progress, hash))).collect();
        let mut batch = Vec::with_capacity(HASH_BATCH);
        let walked = walk(paths, &mut |source, fs_path| {
            batch.push((source, fs_path));
            batch.len() < HASH_BATCH || queue.push_all(&mut batch)
        });
        if walked.is_ok() {
            queue.push_all(&mut batch);
        }
        queue.close();
        let mut files = Vec::new();
        for h in hashers {
            files.extend(h.join().unwrap_or_default());
        }
        (walked, files)
    });
    // A walk error (a link, a device, an unreadable directory) is reported before a
    // hashing error: it does not depend on which file a worker happened to reach first.
    let roots = walked?;
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    files.sort_by(|a, b| a.0.path.as_str().as_bytes().cmp(b.0.path.as_str().as_bytes()));
    for pair in files.windows(2) {
        if pair[0].0.path == pair[1].0.path {
            let (first, second) = (pair[0].0.fs_path(&roots), pair[1].0.fs_path(&roots));
            return Err(pack_err(
                &second,
                &format!("has the same bundle path {:?} as {}", pair[1].0.path.as_str(), first.display()),
            ));
        }
    }
    Ok((roots, files))
}

/// A file found by the walk, with its file-system path.
type FoundSource = (Source, PathBuf);
/// A file after hashing.
type HashedSource = (Source, Hashed);

/// Files the walk hands over at a time.
const HASH_BATCH: usize = 64;
/// Files waiting to be hashed, at most (the walk waits beyond this).
const HASH_QUEUE_MAX: usize = 4096;

/// Files waiting to be hashed. The walk adds them in batches; each worker takes one file at
/// a time, so a batch holding several large files is still shared by all workers.
#[derive(Default)]
struct HashQueue {
    state: Mutex<HashQueueState>,
    /// Signalled when files arrive, the walk ends or a worker fails.
    not_empty: std::sync::Condvar,
    /// Signalled when the queue drains to half or a worker fails.
    not_full: std::sync::Condvar,
}

#[derive(Default)]
struct HashQueueState {
    files: std::collections::VecDeque<FoundSource>,
    closed: bool,
    failed: bool,
}

impl HashQueue {
    /// Moves `batch` into the queue, waiting while it is full. False once a worker failed
    /// (the walk then stops).
    fn push_all(&self, batch: &mut Vec<FoundSource>) -> bool {
        let mut state = lock(&self.state);
        while state.files.len() >= HASH_QUEUE_MAX && !state.failed {
            state = self.not_full.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.failed {
            return false;
        }
        state.files.extend(batch.drain(..));
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
    fn pop(&self) -> Option<FoundSource> {
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

/// A hashing worker: hashes files until the queue is closed and empty; on an error it
/// records it (the first one wins) and stops everyone.
fn hash_queued(
    queue: &HashQueue,
    first_error: &Mutex<Option<Error>>,
    progress: &dyn Progress,
    hash: &HashFn<'_>,
) -> Vec<HashedSource> {
    let mut buf = vec![0u8; IO_BUF];
    let mut done = Vec::new();
    while let Some((source, fs_path)) = queue.pop() {
        match hash(&fs_path, &mut buf, progress) {
            Ok(h) => done.push((source, h)),
            Err(e) => {
                lock(first_error).get_or_insert(e);
                queue.fail();
            }
        }
    }
    done
}

/// Walks the sources: a directory contributes its contents (paths relative to it), a file
/// contributes itself under its own name. Only regular files and directories are allowed.
/// Each file found goes to `found` with its file-system path; `found` returns false to stop
/// the walk early (the error that caused that is reported elsewhere).
fn walk(paths: &[PathBuf], found: &mut dyn FnMut(Source, PathBuf) -> bool) -> Result<Vec<Root>> {
    let mut roots = Vec::with_capacity(paths.len());
    for root in paths {
        let index = u32::try_from(roots.len()).map_err(|_| pack_err(root, "too many sources"))?;
        let meta = fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
        if meta.is_file() {
            let name = root.file_name().ok_or_else(|| pack_err(root, "has no file name"))?;
            roots.push(Root { path: root.clone(), is_file: true });
            if !found(source(root, Path::new(name), index)?, root.clone()) {
                return Ok(roots);
            }
            continue;
        }
        if !meta.is_dir() {
            return Err(pack_err(root, "is not a regular file or directory"));
        }
        roots.push(Root { path: root.clone(), is_file: false });
        // Sorted per directory so the files arrive nearly in bundle-path order: each hashing
        // worker's results are then one sorted run, and the final sort merges the runs.
        for item in walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name() {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(root).to_owned();
                Error::io(path, e.into_io_error().unwrap_or_else(|| io::Error::other("walk failed")))
            })?;
            let ft = item.file_type();
            if ft.is_dir() {
                continue;
            }
            if ft.is_symlink() {
                return Err(pack_err(item.path(), "is a symbolic link; airlock packs regular files only"));
            }
            if !ft.is_file() {
                return Err(pack_err(item.path(), "is not a regular file (device, fifo or socket)"));
            }
            let file = source(item.path(), relative_to(item.path(), root), index)?;
            if !found(file, item.into_path()) {
                return Ok(roots);
            }
        }
    }
    Ok(roots)
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

fn source(fs_path: &Path, rel: &Path, root: u32) -> Result<Source> {
    let text = rel.to_str().ok_or_else(|| pack_err(fs_path, "name is not valid UTF-8"))?;
    let path = RelPath::new(text).map_err(|e| pack_err(fs_path, &format!("unsafe bundle path {text:?}: {e}")))?;
    Ok(Source { path, root })
}

fn pack_err(path: &Path, reason: &str) -> Error {
    Error::Pack { path: path.to_owned(), reason: reason.to_owned() }
}

fn hash_file(path: &Path, buf: &mut [u8], progress: &dyn Progress) -> Result<Hashed> {
    let mut file = open_source(path)?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(pack_err(path, "is not a regular file"));
    }
    let before = Stamp::of(&meta);
    let len = meta.len();
    let mut hasher = crate::io::digest::Hasher::new();
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
    if size != len {
        return Err(pack_err(path, "changed while it was being read"));
    }
    Ok(Hashed { size, sha256: hasher.finish(), mode: Mode::from_permissions(meta.mode()), stamp: before })
}

/// Opens a source file without following a symbolic link (one swapped in after the walk
/// is refused) and without blocking (on a FIFO swapped in likewise).
fn open_source(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|e| match e
        .raw_os_error()
    {
        Some(libc::ELOOP) => pack_err(path, "is a symbolic link; airlock packs regular files only"),
        _ => Error::io(path, e),
    })
}

/// `--sign-artifacts`: for every artifact of the manifest (an entry that is not a linked
/// signature), a signify embedded signature of its checksum line, written to a temporary
/// directory (returned, to live until the bundle is written) and added as an entry named
/// `<artifact>.sha256.sig`.
fn add_checksum_signatures(
    manifest: &mut Manifest,
    items: &mut Vec<Item>,
    roots: &mut Vec<Root>,
    key: &SecretKey,
) -> Result<tempfile::TempDir> {
    let present: HashSet<String> = manifest.entries.iter().map(|e| e.path.as_str().to_owned()).collect();
    let linked: HashSet<String> =
        manifest.entries.iter().flat_map(|e| e.signatures.iter().map(|s| s.as_str().to_owned())).collect();
    let dir = tempfile::Builder::new()
        .prefix("airlock-sign-artifacts-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut buf = vec![0u8; 1 << 16];
    let comment = format!("verify with airlock key {}", key.key_id());
    let mut added = Vec::new();
    for (i, e) in manifest.entries.iter().enumerate() {
        if linked.contains(e.path.as_str()) {
            continue;
        }
        let name = format!("{}{}", e.path, crate::format::CHECKSUM_SIG_SUFFIX);
        let fs_path = roots[items[i].root as usize].path.join(e.path.as_str());
        for clash in [name.clone(), format!("{}.sha256", e.path)] {
            if present.contains(&clash) {
                return Err(pack_err(
                    &fs_path,
                    &format!("--sign-artifacts would add {name:?}, but the sources already hold {clash:?}"),
                ));
            }
        }
        let path = RelPath::new(&name)
            .map_err(|err| pack_err(&fs_path, &format!("--sign-artifacts cannot name {name:?}: {err}")))?;
        let line = crate::format::sums::checksum_line(e.path.as_str(), &e.sha256);
        let file = dir.path().join(format!("{i}.sig"));
        fs::write(&file, keys::sign_embedded(key, line.as_bytes(), &comment)).map_err(|err| Error::io(&file, err))?;
        let h = hash_file(&file, &mut buf, &NoProgress)?;
        let root = u32::try_from(roots.len()).map_err(|_| pack_err(&file, "too many sources"))?;
        roots.push(Root { path: file, is_file: true });
        added.push((
            Entry { path, size: h.size, sha256: h.sha256, mode: h.mode, signatures: Vec::new() },
            Item { root, stamp: h.stamp },
        ));
    }
    let mut pairs: Vec<(Entry, Item)> =
        std::mem::take(&mut manifest.entries).into_iter().zip(items.drain(..)).collect();
    pairs.extend(added);
    pairs.sort_by(|a, b| a.0.path.as_str().as_bytes().cmp(b.0.path.as_str().as_bytes()));
    (manifest.entries, *items) = pairs.into_iter().unzip();
    link_signatures(&mut manifest.entries);
    Ok(dir)
}

/// Builds the manifest from the hashed sources (consumed: their paths move into the
/// entries), and the payload pass's side table.
fn build_manifest(opts: &PackOptions, files: Vec<HashedSource>) -> (Manifest, Vec<Item>) {
    let mut entries = Vec::with_capacity(files.len());
    let mut items = Vec::with_capacity(files.len());
    for (s, h) in files {
        entries.push(Entry { path: s.path, size: h.size, sha256: h.sha256, mode: h.mode, signatures: Vec::new() });
        items.push(Item { root: s.root, stamp: h.stamp });
    }
    link_signatures(&mut entries);
    let manifest = Manifest {
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

/// Links each entry to the detached signatures packed beside it (`x.sig`, `x.minisig`,
/// ...). `entries` is sorted by path, so presence is a binary search.
fn link_signatures(entries: &mut [Entry]) {
    let present =
        |entries: &[Entry], p: &str| entries.binary_search_by(|e| e.path.as_str().as_bytes().cmp(p.as_bytes())).is_ok();
    let mut candidate = String::new();
    for i in 0..entries.len() {
        // Paths that start with this one follow it directly in sorted order: if the next
        // does not, nothing can be this entry's signature.
        let path = entries[i].path.as_str();
        if entries.get(i + 1).is_none_or(|next| !next.path.as_str().starts_with(path)) {
            entries[i].signatures.clear();
            continue;
        }
        let mut links = Vec::new();
        for suffix in SIGNATURE_SUFFIXES {
            candidate.clear();
            candidate.push_str(path);
            candidate.push_str(suffix);
            if !present(entries, &candidate) {
                continue;
            }
            // `x.sha256.sig` beside both `x` and `x.sha256` is the latter's `.sig`.
            if let Some(q) = candidate.strip_suffix(".sig") {
                if q.ends_with(".sha256") && q != path && present(entries, q) {
                    continue;
                }
            }
            if let Ok(p) = RelPath::new(&candidate) {
                links.push(p);
            }
        }
        entries[i].signatures = links;
    }
}

#[allow(clippy::too_many_arguments)]
fn write_bundle(
    opts: &PackOptions,
    signers: &[SecretKey],
    out: &Path,
    overwrite: bool,
    head: Head<'_>,
    roots: &[Root],
    items: &[Item],
    total: u64,
    progress: &dyn Progress,
) -> Result<u64> {
    let manifest = head.manifest;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !overwrite && out.exists() {
        return Err(Error::Usage(format!("{} exists; pass --force to overwrite it", out.display())));
    }
    let tmp = tempfile::Builder::new().prefix(".airlock-pack-").tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    // A bundle holds nothing secret and is meant to be read by auditors: 0644, not the
    // temporary file's 0600.
    tmp.as_file().set_permissions(perms_0644()).map_err(|e| Error::io(tmp.path(), e))?;
    // The bundle is flushed to the device while it is written (see `writeback`), so the
    // final fsync waits for the last few megabytes rather than the whole bundle.
    let syncer = Syncer::start(SyncScope::File);
    let mut w = BufWriter::with_capacity(1 << 20, Writeback::new(tmp.as_file()).with_syncer(syncer.handle()));
    write_head(&mut w, head_level(opts.level), signers, head).map_err(|e| Error::io(out, e))?;
    progress.start("packing", total, manifest.entries.len() as u64);
    write_payload(&mut w, opts, manifest, roots, items, progress)?;
    w.flush().map_err(|e| Error::io(out, e))?;
    drop(w);
    syncer.finish().map_err(|e| Error::io(out, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(out, e))?;
    let len = tmp.as_file().metadata().map_err(|e| Error::io(out, e))?.len();
    if overwrite {
        tmp.persist(out).map_err(|e| Error::io(out, e.error))?;
    } else {
        tmp.persist_noclobber(out).map_err(|e| Error::io(out, e.error))?;
    }
    Ok(len)
}

/// The zstd level for the head frame. The head is paths and digests, on which level 1 was
/// measured both faster and smaller than level 3 (200,000 entries: 0.23 s and 17.6 MB
/// against 0.38 s and 18.1 MB); only a level above the default, asked for to shrink the
/// bundle at any cost in time, is used for the head too.
pub fn head_level(payload_level: i32) -> i32 {
    if payload_level > DEFAULT_LEVEL {
        payload_level
    } else {
        1
    }
}

/// What goes into the head frame; the encoded manifest is consumed (freed) by writing it.
struct Head<'a> {
    manifest: &'a Manifest,
    manifest_bytes: Vec<u8>,
}

/// Signs the manifest, builds and signs the checksum list, and compresses the head frame
/// straight into `w`.
///
/// The manifest and the checksum list are each tens of megabytes with many entries, and
/// ed25519 reads its message twice, so the work is split over two threads: the checksum
/// list is built and signed while the manifest is signed and compressed. Neither is copied
/// again: the checksum-list member is written as its signature lines followed by the list.
fn write_head(w: &mut impl Write, level: i32, signers: &[SecretKey], head: Head<'_>) -> io::Result<()> {
    let Head { manifest, manifest_bytes } = head;
    let comment = format!("verify with airlock key {}", signers[0].key_id());
    std::thread::scope(|scope| {
        let sums = scope.spawn(|| {
            let text = sums_text(manifest);
            let signature = signers[0].sign(&text, &comment).to_file_string();
            (signature, text)
        });
        let manifest_bytes = &manifest_bytes;
        let signatures = scope.spawn(move || {
            let mut sigs: Vec<keys::Signature> = signers.iter().map(|k| sign_manifest(k, manifest_bytes)).collect();
            sigs.sort_by_key(|s| s.key_id());
            sigs
        });
        let mut enc = zstd::stream::write::Encoder::new(&mut *w, level)?;
        let mut buf = [0u8; 8192];
        write_member(
            &mut enc,
            MANIFEST_MEMBER,
            manifest_bytes.len() as u64,
            0o644,
            &mut &manifest_bytes[..],
            &mut buf,
        )?;
        for sig in signatures.join().expect("signing thread panicked") {
            let text = sig.to_file_string();
            write_member(
                &mut enc,
                &signature_member(sig.key_id()),
                text.len() as u64,
                0o644,
                &mut text.as_bytes(),
                &mut buf,
            )?;
        }
        let (signature, text) = sums.join().expect("checksum-list thread panicked");
        let len = (signature.len() + text.len()) as u64;
        write_member(&mut enc, SUMS_MEMBER, len, 0o644, &mut signature.as_bytes().chain(&text[..]), &mut buf)?;
        enc.finish()?;
        Ok(())
    })
}

fn write_payload(
    w: &mut impl Write,
    opts: &PackOptions,
    manifest: &Manifest,
    roots: &[Root],
    items: &[Item],
    progress: &dyn Progress,
) -> Result<()> {
    let io_err = |e| Error::io("<bundle>", e);
    let mut enc = zstd::stream::write::Encoder::new(w, opts.level).map_err(io_err)?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        opts.threads
    };
    if threads > 1 {
        enc.multithread(threads).map_err(io_err)?;
        // Smaller jobs than libzstd's default (8 MiB at level 3) keep the encoder's
        // buffers, and so peak memory, down with no measurable loss of ratio or speed.
        enc.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE)).map_err(io_err)?;
    }
    let order = manifest.payload_order();
    std::thread::scope(|scope| {
        // Opening and reading many small files costs more than compressing them: a second
        // thread reads them ahead (in payload order) while this one feeds the encoder.
        let (ahead_tx, ahead) = std::sync::mpsc::sync_channel(READ_AHEAD_BATCHES);
        let order = &order;
        scope.spawn(move || read_ahead(order, manifest, roots, items, ahead_tx));
        // Headers and small files are batched so the encoder sees large writes; each write
        // into a multithreaded encoder has a fixed cost.
        let mut tar = BufWriter::with_capacity(COPY_BUF, enc);
        let mut buf = vec![0u8; COPY_BUF];
        let mut batch = Vec::new().into_iter();
        for &i in order {
            let entry = &manifest.entries[i];
            if batch.len() == 0 {
                batch = ahead.recv().unwrap_or_default().into_iter();
            }
            match batch.next().ok_or(()) {
                Ok(Ok(Ahead::Read(data))) => {
                    let name = format!("{DATA_DIR}{}", entry.path);
                    write_member(&mut tar, &name, entry.size, entry.mode.bits(), &mut &data[..], &mut buf)
                        .map_err(io_err)?;
                    progress.add_bytes(entry.size);
                    progress.add_file();
                }
                Ok(Ok(Ahead::Stream)) => copy_source(&mut tar, entry, roots, &items[i], &mut buf, progress)?,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io_err(io::Error::other("the read-ahead thread stopped"))),
            }
        }
        tar.write_all(&[0u8; 2 * tar::BLOCK]).map_err(io_err)?;
        let enc = tar.into_inner().map_err(|e| io_err(e.into_error()))?;
        enc.finish().map_err(io_err)?;
        Ok(())
    })
}

/// Files up to this size are read whole by the read-ahead thread; larger ones are streamed
/// by the writer itself (for them the per-file cost does not matter).
const READ_AHEAD_MAX_BYTES: u64 = 128 << 10;
/// Files are handed over in batches of up to this many files or bytes: one hand-over per
/// file costs more than reading a small file.
const READ_AHEAD_BATCH_FILES: usize = 256;
const READ_AHEAD_BATCH_BYTES: u64 = 1 << 20;
/// Batches read ahead and not yet written, at most (so at most about 4 MiB is held).
const READ_AHEAD_BATCHES: usize = 2;

/// What the read-ahead thread hands the writer for each entry, in payload order.
enum Ahead {
    /// A small file's whole content, checked against its hashing-time size and stamp.
    Read(Vec<u8>),
    /// A large file: the writer streams it.
    Stream,
}

fn read_ahead(
    order: &[usize],
    manifest: &Manifest,
    roots: &[Root],
    items: &[Item],
    out: std::sync::mpsc::SyncSender<Vec<Result<Ahead>>>,
) {
    let mut batch = Vec::with_capacity(READ_AHEAD_BATCH_FILES);
    let mut bytes = 0;
    for (n, &i) in order.iter().enumerate() {
        let entry = &manifest.entries[i];
        let next = if entry.size > READ_AHEAD_MAX_BYTES {
            Ok(Ahead::Stream)
        } else {
            bytes += entry.size;
            read_small(entry, roots, &items[i]).map(Ahead::Read)
        };
        let failed = next.is_err();
        batch.push(next);
        let full = batch.len() == READ_AHEAD_BATCH_FILES || bytes >= READ_AHEAD_BATCH_BYTES;
        if full || failed || n + 1 == order.len() {
            // A closed channel means the writer stopped (it reports why).
            if out.send(std::mem::replace(&mut batch, Vec::with_capacity(READ_AHEAD_BATCH_FILES))).is_err() || failed {
                return;
            }
            bytes = 0;
        }
    }
}

/// Reads a small source file whole: exactly `entry.size` bytes, unchanged since hashing.
fn read_small(entry: &Entry, roots: &[Root], item: &Item) -> Result<Vec<u8>> {
    let fs_path = item.fs_path(roots, entry);
    let mut file = open_source(&fs_path)?;
    let mut data = Vec::with_capacity(entry.size as usize);
    (&mut file).take(entry.size).read_to_end(&mut data).map_err(|e| Error::io(&fs_path, e))?;
    check_unchanged(&file, &fs_path, data.len() as u64, entry, item)?;
    Ok(data)
}

/// Errors unless the file gave exactly the hashed size and still has the stamp it had when
/// it was hashed.
fn check_unchanged(file: &File, fs_path: &Path, copied: u64, entry: &Entry, item: &Item) -> Result<()> {
    let after = Stamp::of(&file.metadata().map_err(|e| Error::io(fs_path, e))?);
    if copied != entry.size || after != item.stamp {
        return Err(pack_err(fs_path, "changed between hashing and packing; pack again"));
    }
    Ok(())
}

/// Streams one source file into the tar stream, exactly `entry.size` bytes, and checks it
/// did not change since it was hashed.
fn copy_source(
    enc: &mut impl Write,
    entry: &Entry,
    roots: &[Root],
    item: &Item,
    buf: &mut [u8],
    progress: &dyn Progress,
) -> Result<()> {
    let fs_path = item.fs_path(roots, entry);
    let mut file = open_source(&fs_path)?;
    let name = format!("{DATA_DIR}{}", entry.path);
    let mut limited = ProgressReader { inner: (&mut file).take(entry.size), progress };
    let copied = write_member(enc, &name, entry.size, entry.mode.bits(), &mut limited, buf)
        .map_err(|e| Error::io(&fs_path, e))?;
    check_unchanged(&file, &fs_path, copied, entry, item)?;
    progress.add_file();
    Ok(())
}

struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}

/// The packing machine's memory of each channel: the last sequence packed and its manifest
/// digest, so the next pack can number itself and link to its predecessor.
pub struct PackState {
    dir: PathBuf,
}

impl PackState {
    /// State kept in `dir` (one small file per channel under `dir/channels/`).
    pub fn new(dir: PathBuf) -> PackState {
        PackState { dir }
    }

    /// The default directory: `$AIRLOCK_STATE_DIR`, else `$XDG_DATA_HOME/airlock`, else
    /// `~/.local/share/airlock`.
    pub fn default_dir() -> Option<PathBuf> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        env("AIRLOCK_STATE_DIR")
            .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("airlock")))
            .or_else(|| env("HOME").map(|h| h.join(".local/share/airlock")))
    }

    fn file(&self, channel: &str) -> PathBuf {
        self.dir.join("channels").join(channel)
    }

    /// The last (sequence, manifest digest) packed for `channel`.
    pub fn last(&self, channel: &str) -> Result<Option<(u64, Digest)>> {
        let path = self.file(channel);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let bad = || Error::Usage(format!("{}: not an airlock channel state file", path.display()));
        let mut sequence = None;
        let mut digest = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("sequence", v)) => sequence = v.parse().ok(),
                Some(("manifest-sha256", v)) => digest = Digest::from_hex(v),
                _ => return Err(bad()),
            }
        }
        Ok(Some((sequence.ok_or_else(bad)?, digest.ok_or_else(bad)?)))
    }

    /// Records a packed bundle.
    pub fn record(&self, channel: &str, sequence: u64, digest: &Digest) -> Result<()> {
        let path = self.file(channel);
        let dir = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
        fs::write(tmp.path(), format!("sequence {sequence}\nmanifest-sha256 {digest}\n"))
            .map_err(|e| Error::io(tmp.path(), e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }

    /// The sequence and `previous` for the next bundle: one more than the last, linked to it;
    /// with an explicit sequence, linked only if it directly follows the last.
    pub fn next(&self, channel: &str, explicit: Option<u64>) -> Result<(u64, Option<Digest>)> {
        let last = self.last(channel)?;
        let sequence = explicit.unwrap_or_else(|| last.map_or(1, |(s, _)| s + 1));
        let previous = last.filter(|(s, _)| *s + 1 == sequence).map(|(_, d)| d);
        Ok((sequence, previous))
    }
}

fn perms_0644() -> fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> PackOptions {
        PackOptions {
            sources: Vec::new(),
            channel: "test".into(),
            sequence: 1,
            previous: None,
            created: 1_700_000_000,
            expires: None,
            label: None,
            meta: BTreeMap::new(),
            level: 1,
            threads: 1,
            sign_artifacts: false,
        }
    }

    /// Hashes `dir`, lets `change` modify it, then writes the payload.
    fn payload_after(dir: &Path, change: impl FnOnce()) -> Result<Vec<u8>> {
        let (roots, files) = collect_and_hash(&[dir.to_owned()], &NoProgress)?;
        let (manifest, items) = build_manifest(&options(), files);
        change();
        let mut out = Vec::new();
        write_payload(&mut out, &options(), &manifest, &roots, &items, &NoProgress)?;
        Ok(out)
    }

    /// A file changed between the hashing pass and the payload pass stops the pack, both on
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
                    Err(Error::Pack { path, reason }) => {
                        assert_eq!(path, victim, "size {size}");
                        assert!(reason.contains("changed between hashing and packing"), "{reason}");
                    }
                    other => panic!("size {size} same_size {same_size}: expected a pack error, got {other:?}"),
                }
            }
        }
    }

    /// A hashing error while the walk still has many more files than the queue holds stops
    /// the pack with that error (the walk must not block on a full queue nobody empties).
    /// Also checks that without the error every file is hashed once, in path order.
    #[test]
    fn a_hashing_error_during_a_long_walk_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let count = HASH_QUEUE_MAX * 3;
        for i in 0..count {
            fs::write(dir.path().join(format!("f{i:05}")), b"x").unwrap();
        }
        let bad = dir.path().join("f00003");
        let failing = |path: &Path, buf: &mut [u8], progress: &dyn Progress| {
            if path == bad {
                return Err(Error::io(path, io::Error::other("injected read error")));
            }
            hash_file(path, buf, progress)
        };
        match collect_and_hash_with(&[dir.path().to_owned()], &NoProgress, &failing) {
            Err(Error::Io { path, .. }) => assert_eq!(path, bad),
            Err(other) => panic!("expected the injected error, got {other:?}"),
            Ok(_) => panic!("the injected error was lost"),
        }
        let (_, files) = collect_and_hash(&[dir.path().to_owned()], &NoProgress).unwrap();
        let names: Vec<&str> = files.iter().map(|(s, _)| s.path.as_str()).collect();
        let want: Vec<String> = (0..count).map(|i| format!("f{i:05}")).collect();
        assert_eq!(names, want);
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
