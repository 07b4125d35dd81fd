//! Read-only openings of a mirror, for auditors: `mirror verify` and `mirror log` on an
//! evidence copy, a write-blocked disk or a read-only mount (docs/FORMAT.md §9, "Reading a
//! mirror without writing to it").
//!
//! A read-only opening writes nothing to the mirror: it creates no lock file, runs no
//! recovery and mends nothing at the log's end (an interrupted import is reported by
//! `mirror verify` instead), and records no stat stamps. It holds a shared lock on
//! `.airlock/lock` when that file exists, so no import runs while it reads; where the file
//! does not exist no lock is taken, and [`ReadLock`] says why.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::plain;
use super::{check_format, open_checked, read_id, Mirror, MirrorError};
use crate::error::{Error, Result};

/// How a read-only opening holds the mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadLock {
    /// A shared lock on `.airlock/lock`: no import or recovery runs while it is held.
    Shared,
    /// No lock: the mirror has no lock file and its file system is read-only, so none can
    /// be made (and no import can run there either).
    NoneReadOnlyFileSystem,
    /// No lock: the mirror has no lock file (no import ever ran), and a read-only opening
    /// creates none.
    NoneNoLockFile,
    /// No lock: the file system refused `flock` (some network file systems).
    NoneUnsupported,
}

impl std::fmt::Display for ReadLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReadLock::Shared => "a shared lock on .airlock/lock (no import can run meanwhile)",
            ReadLock::NoneReadOnlyFileSystem => {
                "no lock: the mirror has no .airlock/lock and its file system is read-only, so none can be made \
                 (no import can run there either)"
            }
            ReadLock::NoneNoLockFile => {
                "no lock: the mirror has no .airlock/lock (no import has run) and a read-only check creates none"
            }
            ReadLock::NoneUnsupported => "no lock: the file system does not support flock on .airlock/lock",
        })
    }
}

impl Mirror {
    /// Opens the mirror at `root` to read it without writing anything (see the module
    /// documentation). A version-1 mirror that has no id yet cannot be opened this way: its
    /// upgrade writes, so it must be opened writable once ([`Mirror::open`]).
    pub fn open_read_only(root: &Path) -> Result<Mirror> {
        let meta = open_checked(root)?;
        check_format(&meta)?;
        let (lock, how) = shared_lock(&meta)?;
        let id = read_id(&meta)?
            .ok_or_else(|| Error::Mirror { path: root.to_owned(), reason: MirrorError::ReadOnlyNeedsUpgrade })?;
        Ok(Mirror {
            root: root.to_owned(),
            meta,
            id,
            _lock: lock,
            read_only: Some(how),
            #[cfg(feature = "fault-injection")]
            crash_at: None,
        })
    }

    /// For a read-only opening, how it holds the mirror; `None` for a writable one.
    pub fn read_lock(&self) -> Option<ReadLock> {
        self.read_only
    }

    /// Refuses to change a mirror opened read-only.
    pub(super) fn check_writable(&self) -> Result<()> {
        match self.read_only {
            Some(_) => Err(Error::Mirror { path: self.root.clone(), reason: MirrorError::OpenedReadOnly }),
            None => Ok(()),
        }
    }
}

/// Whether a process may not write the mirror at `root`: its file system is mounted
/// read-only, or `.airlock/` is not writable to this user. Errors (no mirror there, say)
/// read as writable, so the writable opening reports them.
pub fn cannot_write(root: &Path) -> bool {
    let meta = root.join(crate::format::path::METADATA_DIR);
    is_read_only_fs(&meta) || (meta.is_dir() && rustix::fs::access(&meta, rustix::fs::Access::WRITE_OK).is_err())
}

/// Whether the file system holding `path` is mounted read-only.
fn is_read_only_fs(path: &Path) -> bool {
    rustix::fs::statvfs(path).is_ok_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Takes a shared `flock(2)` on `.airlock/lock` without waiting, if the file exists (it is
/// opened read-only, which `flock` allows even on a read-only mount); a held exclusive
/// lock is [`MirrorError::Locked`]. Without the file, no lock, and why.
pub(super) fn shared_lock(meta: &Path) -> Result<(Option<File>, ReadLock)> {
    let path = meta.join("lock");
    if !plain::file_exists(&path)? {
        let why = if is_read_only_fs(meta) { ReadLock::NoneReadOnlyFileSystem } else { ReadLock::NoneNoLockFile };
        return Ok((None, why));
    }
    let file = plain::open(&path, OpenOptions::new().read(true))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok((Some(file), ReadLock::Shared)),
        Err(rustix::io::Errno::WOULDBLOCK) => {
            Err(Error::Mirror { path: meta.parent().unwrap_or(meta).to_owned(), reason: MirrorError::Locked })
        }
        Err(rustix::io::Errno::NOLCK | rustix::io::Errno::NOTSUP | rustix::io::Errno::INVAL) => {
            Ok((None, ReadLock::NoneUnsupported))
        }
        Err(e) => Err(Error::io(&path, e.into())),
    }
}
