//! Resuming an interrupted import (docs/FORMAT.md §10, "Resume"). An import stages into
//! `.airlock/staging/<manifest-sha256>/`, so a rerun of the same bundle finds what an
//! interrupted run staged. The `journal` there lists every staged file that was verified
//! (its size and SHA-256 matched the signed manifest) and then made durable (a `syncfs`
//! after it was written completed before its line was appended), under the boot id of the
//! machine that wrote it. A rerun reuses a journaled file instead of writing it again: as is
//! when the boot id is the same (the `syncfs` happened on this boot, so the file is on disk
//! as it was verified) if its `stat` fingerprint is also unchanged, after re-hashing it
//! otherwise. The payload is still read and hashed in full either way: the bundle is only
//! verified as a whole.
//!
//! The journal is JSON Lines: `{"boot": "<boot id>" | null}`, then one
//! `{"path","size","sha256","mode","stat":{"mtime_ns","ctime_ns","ino"}}` per file. A torn
//! or unreadable line is ignored (that file is simply written again).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::stamps::hash_file;
use crate::error::{Error, Result};
use crate::format::manifest::Entry;
use crate::io::digest::Digest;
use crate::io::sync::lock;

/// The journal's name in a staging directory.
const JOURNAL: &str = "journal";

/// The journal's first line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    boot: Option<String>,
}

/// A staged file, as journaled: the entry it holds, and its `stat` fingerprint once written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line {
    path: String,
    size: u64,
    sha256: String,
    mode: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stat: Option<Fingerprint>,
}

/// What changes when a file is written through the file system (mtime and ctime in
/// nanoseconds, inode).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fingerprint {
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
}

impl Fingerprint {
    fn of(meta: &fs::Metadata) -> Fingerprint {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Fingerprint {
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

impl Line {
    /// `entry`'s line, for its file just written (whose `stat` is `meta`).
    pub(crate) fn written(entry: &Entry, meta: &fs::Metadata) -> Line {
        Line::staged(entry.path.as_str(), entry.size, &entry.sha256, entry.mode.bits(), meta)
    }

    /// The line of the file at `path` (relative to the staging root), just written with
    /// the entry's `size`, `sha256` and `mode` (its `stat` is `meta`).
    pub(crate) fn staged(path: &str, size: u64, sha256: &Digest, mode: u32, meta: &fs::Metadata) -> Line {
        Line { path: path.to_owned(), size, sha256: sha256.to_hex(), mode, stat: Some(Fingerprint::of(meta)) }
    }

    /// Appends the line, as journaled, to `out` (to be handed to [`Journal::push_lines`]).
    pub(crate) fn append_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        match serde_json::to_writer(&mut *out, self) {
            Ok(()) => out.push(b'\n'),
            // Cannot fail (plain fields); an unjournaled file is only staged again.
            Err(_) => out.truncate(start),
        }
    }

    /// Whether the line names exactly `entry`.
    fn names(&self, entry: &Entry) -> bool {
        self.path == entry.path.as_str()
            && self.size == entry.size
            && self.sha256 == entry.sha256.to_hex()
            && self.mode == entry.mode.bits()
    }
}

/// The current boot's id (`/proc/sys/kernel/random/boot_id`), if the kernel says.
fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_owned())
}

/// Whether a staging directory holds a journal with at least one file: it is kept by
/// recovery for a rerun (anything else is discarded).
pub(super) fn has_journaled_files(staging: &Path) -> bool {
    fs::read(staging.join(JOURNAL)).is_ok_and(|b| b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).count() > 1)
}

/// Removes the journal of `staging` (once committed, staging is never resumed).
pub(super) fn forget(staging: &Path) -> Result<()> {
    let path = staging.join(JOURNAL);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(&path, e)),
        _ => Ok(()),
    }
}

/// What an interrupted run of the same bundle staged and journaled.
#[derive(Default)]
pub(crate) struct Resume {
    staged: HashMap<String, Line>,
    /// The journal was written on this boot.
    same_boot: bool,
    /// The staging directory existed: files not reused must be cleared away first.
    pub(crate) stale: bool,
}

impl Resume {
    /// Reads the journal of `staging`, if any.
    pub(super) fn take(staging: &Path) -> Result<Resume> {
        let stale = fs::symlink_metadata(staging).is_ok();
        let bytes = match fs::read(staging.join(JOURNAL)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Resume { stale, ..Resume::default() }),
            Err(e) => return Err(Error::io(staging.join(JOURNAL), e)),
        };
        let mut lines = bytes.split(|&b| b == b'\n');
        let header = lines.next().and_then(|l| serde_json::from_slice::<Header>(l).ok());
        let now = boot_id();
        let same_boot = now.is_some() && header.is_some_and(|h| h.boot == now);
        let staged = lines
            .filter_map(|l| serde_json::from_slice::<Line>(l).ok())
            .map(|line| (line.path.clone(), line))
            .collect();
        Ok(Resume { staged, same_boot, stale })
    }

    /// Whether the staged file `file` can stand for `entry`: journaled with exactly its
    /// size, SHA-256 and mode, still a regular file of that size and mode, and either
    /// journaled on this boot with the `stat` fingerprint it still has, or hashing to its
    /// SHA-256 now.
    pub(crate) fn reusable(&mut self, entry: &Entry, file: &Path) -> Result<bool> {
        let Some(line) = self.staged.remove(entry.path.as_str()) else {
            return Ok(false);
        };
        if !line.names(entry) {
            return Ok(false);
        }
        let meta = match fs::symlink_metadata(file) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(file, e)),
        };
        if !meta.is_file() || meta.len() != entry.size || meta.permissions().mode() & 0o7777 != entry.mode.bits() {
            return Ok(false);
        }
        let unchanged = line.stat == Some(Fingerprint::of(&meta));
        Ok((self.same_boot && unchanged) || hash_file(file)? == entry.sha256)
    }
}

/// The journal being written by a run, shared with the staging writers.
#[derive(Clone)]
pub(crate) struct Journal {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    file: File,
    path: PathBuf,
    /// Lines of files fully written but not yet covered by a `syncfs`.
    pending: Vec<u8>,
}

impl Journal {
    /// Starts the journal of `staging` afresh (a rerun's reused files are journaled again
    /// as they are reused), with this boot's id.
    pub(super) fn create(staging: &Path) -> Result<Journal> {
        let path = staging.join(JOURNAL);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut header =
            serde_json::to_vec(&Header { boot: boot_id() }).map_err(|e| Error::io(&path, io::Error::other(e)))?;
        header.push(b'\n');
        file.write_all(&header).map_err(|e| Error::io(&path, e))?;
        Ok(Journal { inner: Arc::new(Mutex::new(Inner { file, path, pending: Vec::new() })) })
    }

    /// `entry`'s file `file` is fully written (or reused): journaled at the next flush with
    /// its `stat` fingerprint now (a file that cannot be stat'ed is not journaled: a rerun
    /// writes it again).
    pub(crate) fn staged(&self, entry: &Entry, file: &Path) {
        if let Ok(meta) = fs::symlink_metadata(file) {
            self.push(&Line::written(entry, &meta));
        }
    }

    /// A file is fully written: its line is journaled at the next flush.
    pub(crate) fn push(&self, line: &Line) {
        let mut bytes = Vec::new();
        line.append_to(&mut bytes);
        self.push_lines(&bytes);
    }

    /// Files are fully written: their lines (made by [`Line::append_to`]) are journaled at
    /// the next flush.
    pub(crate) fn push_lines(&self, lines: &[u8]) {
        lock(&self.inner).pending.extend_from_slice(lines);
    }

    /// Makes the files written so far durable (`syncfs` of the file system holding
    /// `any_path`) and then journals them.
    pub(crate) fn flush(&self, any_path: &Path) -> Result<()> {
        let lines = std::mem::take(&mut lock(&self.inner).pending);
        if lines.is_empty() {
            return Ok(());
        }
        super::protocol::sync_filesystem(any_path)?;
        self.append(&lines)
    }

    /// Journals the files written so far; the caller has just run a `syncfs` after all of
    /// them were written.
    pub(super) fn flush_synced(&self) -> Result<()> {
        let lines = std::mem::take(&mut lock(&self.inner).pending);
        self.append(&lines)
    }

    fn append(&self, lines: &[u8]) -> Result<()> {
        let mut inner = lock(&self.inner);
        let Inner { file, path, .. } = &mut *inner;
        file.write_all(lines).map_err(|e| Error::io(&*path, e))?;
        file.sync_data().map_err(|e| Error::io(&*path, e))
    }
}
