//! Stat stamps (`.airlock/stamps`, docs/FORMAT.md §9 and §10 "The cost of proving a file
//! unchanged"): for each file airlock last wrote or verified, the SHA-256, size and mode it
//! then had, and its stat fingerprint (size, mtime and ctime in nanoseconds, inode, device).
//! A file whose fingerprint is unchanged is taken to hold the recorded content without
//! reading it; any difference means reading and hashing it again.
//!
//! The file is JSON Lines, one stamp per line, rewritten whole and durably (io::durable) by
//! an import's commit and by `mirror verify`. It is a cache: a missing or unreadable file or
//! line only costs a re-hash, never trust.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::plain;
use crate::error::{Error, Result};
use crate::format::manifest::Entry;
use crate::io::digest::{self, Digest};
use crate::io::durable::{write_atomic, Overwrite};

/// The stamps file in `.airlock/`.
const STAMPS: &str = "stamps";

/// One file's stamp.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(super) struct Stamp {
    path: String,
    sha256: String,
    size: u64,
    mode: u32,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
}

impl Stamp {
    /// The stamp of the file `meta` describes, recorded as holding `entry`'s content.
    fn new(entry: &Entry, meta: &fs::Metadata) -> Stamp {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Stamp {
            path: entry.path.as_str().to_owned(),
            sha256: entry.sha256.to_hex(),
            size: meta.len(),
            mode: meta.permissions().mode() & 0o7777,
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// Every stamp, by path.
pub(super) type Stamps = BTreeMap<String, Stamp>;

/// Reads `.airlock/stamps`; a line that does not parse is skipped (that file is re-hashed).
pub(super) fn load(meta: &Path) -> Result<Stamps> {
    let bytes = plain::read(&meta.join(STAMPS))?.unwrap_or_default();
    let mut stamps = Stamps::new();
    for line in bytes.split(|&b| b == b'\n') {
        if let Ok(stamp) = serde_json::from_slice::<Stamp>(line) {
            stamps.insert(stamp.path.clone(), stamp);
        }
    }
    Ok(stamps)
}

/// The one way stamps are written: the whole file, durably.
pub(super) fn save(meta: &Path, stamps: &Stamps) -> Result<()> {
    let path = meta.join(STAMPS);
    // Streamed: with a million files the stamps are about 250 MB of JSON lines, which
    // built in memory first were the largest allocation of an import.
    write_atomic(&path, 0o644, Overwrite::Replace, |file| {
        let mut out = io::BufWriter::new(file);
        let mut write_lines = || -> io::Result<()> {
            for stamp in stamps.values() {
                serde_json::to_writer(&mut out, stamp).map_err(io::Error::other)?;
                out.write_all(b"\n")?;
            }
            out.flush()
        };
        write_lines().map_err(|e| Error::io(&path, e))
    })
}

/// Records that the file at `file` now holds `entry` (it was just written or hashed).
/// A file that cannot be stat'ed gets no stamp (it is re-hashed next time).
pub(super) fn record(stamps: &mut Stamps, file: &Path, entry: &Entry) {
    match fs::symlink_metadata(file) {
        Ok(m) if m.is_file() => {
            stamps.insert(entry.path.as_str().to_owned(), Stamp::new(entry, &m));
        }
        _ => {
            stamps.remove(entry.path.as_str());
        }
    }
}

/// What a file in the mirror is, checked against the entry it must hold.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// It holds the entry, proven by its unchanged stamp.
    Stamped,
    /// It holds the entry, proven by hashing it now.
    Hashed,
    /// It does not: what is there instead.
    Differs(String),
}

/// Checks the file at `file` against `entry`: type, size and mode by `stat`; the content by
/// the stamp when `trust_stamp` and the stamp is unchanged, else by hashing the file.
pub(super) fn check(file: &Path, entry: &Entry, stamps: &Stamps, trust_stamp: bool) -> Result<Found> {
    let meta = match fs::symlink_metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Differs("missing".into())),
        Err(e) => return Err(Error::io(file, e)),
    };
    if !meta.is_file() {
        return Ok(Found::Differs(format!("a {} is there, not a file", plain::kind_name(&meta))));
    }
    if meta.len() != entry.size {
        return Ok(Found::Differs(format!("size {}, signed {}", meta.len(), entry.size)));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode != entry.mode.bits() {
        return Ok(Found::Differs(format!("mode {mode:o}, signed {:o}", entry.mode.bits())));
    }
    if trust_stamp && stamps.get(entry.path.as_str()) == Some(&Stamp::new(entry, &meta)) {
        return Ok(Found::Stamped);
    }
    let actual = hash_file(file)?;
    if actual != entry.sha256 {
        return Ok(Found::Differs(format!("SHA-256 {actual}, signed {}", entry.sha256)));
    }
    Ok(Found::Hashed)
}

/// The SHA-256 of a regular file, never following a link or blocking on a FIFO.
pub(super) fn hash_file(path: &Path) -> Result<Digest> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let (digest, _) = digest::hash_reader(file).map_err(|e| Error::io(path, e))?;
    Ok(digest)
}
