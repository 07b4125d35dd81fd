//! Stat stamps (`.airlock/stamps`, docs/FORMAT.md §9 and §10 "The cost of proving a file
//! unchanged"): for each file airlock last wrote or verified, the SHA-256, size and mode it
//! then had, and its stat fingerprint (size, mtime and ctime in nanoseconds, inode, device).
//! A file whose fingerprint is unchanged is taken to hold the recorded content without
//! reading it; any difference means reading and hashing it again.
//!
//! The file is JSON Lines, one stamp per line, rewritten whole and durably (io::durable) by
//! an import's commit and by `mirror verify`. It is a cache: a missing or unreadable file or
//! line only costs a re-hash, never trust.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
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

/// One file's stamp, in memory: held for every file of the mirror (a million and more),
/// so the path is only the map's key and the SHA-256 is 32 bytes, not 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    sha256: Digest,
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
            sha256: entry.sha256,
            size: meta.len(),
            mode: meta.permissions().mode() & 0o7777,
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// One line of the stamps file (FORMAT.md §9), as read and as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StampLine<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(borrow)]
    sha256: Cow<'a, str>,
    size: u64,
    mode: u32,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
}

impl StampLine<'_> {
    /// The stamp by path; `None` for a digest that is not 64 hex digits (re-hashed).
    fn into_stamp(self) -> Option<(String, Stamp)> {
        let sha256 = Digest::from_hex(&self.sha256)?;
        let StampLine { path, size, mode, mtime_ns, ctime_ns, ino, dev, .. } = self;
        Some((path.into_owned(), Stamp { sha256, size, mode, mtime_ns, ctime_ns, ino, dev }))
    }
}

impl Stamp {
    fn line<'a>(&self, path: &'a str) -> StampLine<'a> {
        let Stamp { sha256, size, mode, mtime_ns, ctime_ns, ino, dev } = *self;
        StampLine {
            path: Cow::Borrowed(path),
            sha256: Cow::Owned(sha256.to_hex()),
            size,
            mode,
            mtime_ns,
            ctime_ns,
            ino,
            dev,
        }
    }
}

/// Every stamp, by path.
pub(super) type Stamps = BTreeMap<String, Stamp>;

/// Reads `.airlock/stamps`; a line that does not parse is skipped (that file is re-hashed).
pub(super) fn load(meta: &Path) -> Result<Stamps> {
    let bytes = plain::read(&meta.join(STAMPS))?.unwrap_or_default();
    let stamps = bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<StampLine>(line).ok()?.into_stamp())
        .collect();
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
            for (path, stamp) in stamps {
                write_line(&mut out, path, stamp)?;
            }
            out.flush()
        };
        write_lines().map_err(|e| Error::io(&path, e))
    })
}

/// Rewrites the stamps file for an import's commit without holding it: the old file's
/// lines are read one at a time and merged, in path order, with fresh stamps of the
/// `fresh` entries (in manifest order, which is path order, each stat'ed as it is written);
/// an old line whose path is fresh, or for which `gone` holds, is dropped. A million files
/// make about 250 MB of stamps, which a map of them would hold two thirds of. An old line
/// out of path order (the file was edited) is dropped too: a stamp is a cache, so that
/// costs a re-hash, never trust.
pub(super) fn rewrite<'a>(
    meta: &Path,
    root: &Path,
    fresh: impl Iterator<Item = &'a Entry>,
    gone: impl Fn(&str) -> bool,
) -> Result<()> {
    let path = meta.join(STAMPS);
    let reader = match plain::file_exists(&path)? {
        true => Some(io::BufReader::new(plain::open(&path, OpenOptions::new().read(true))?)),
        false => None,
    };
    let mut old = OldLines { reader, line: Vec::new(), last: None };
    let mut fresh = fresh.peekable();
    write_atomic(&path, 0o644, Overwrite::Replace, |file| {
        let mut out = io::BufWriter::new(file);
        let mut merge = || -> io::Result<()> {
            while let Some((old_path, stamp)) = old.next()? {
                let mut replaced = false;
                while let Some(e) = fresh.next_if(|e| e.path.as_str() <= old_path.as_str()) {
                    write_fresh(&mut out, root, e)?;
                    replaced = e.path.as_str() == old_path;
                }
                if !replaced && !gone(&old_path) {
                    write_line(&mut out, &old_path, &stamp)?;
                }
            }
            for e in fresh.by_ref() {
                write_fresh(&mut out, root, e)?;
            }
            out.flush()
        };
        merge().map_err(|e| Error::io(&path, e))
    })
}

/// The stamps of an old stamps file, one line at a time, in strictly ascending path order
/// (a line that does not parse, or is out of order, is skipped).
struct OldLines {
    reader: Option<io::BufReader<File>>,
    line: Vec<u8>,
    last: Option<String>,
}

impl OldLines {
    fn next(&mut self) -> io::Result<Option<(String, Stamp)>> {
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        loop {
            self.line.clear();
            if reader.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(None);
            }
            let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let Some((path, stamp)) = serde_json::from_slice::<StampLine>(text).ok().and_then(StampLine::into_stamp)
            else {
                continue;
            };
            if self.last.as_ref().is_some_and(|last| path.as_str() <= last.as_str()) {
                continue;
            }
            self.last = Some(path.clone());
            return Ok(Some((path, stamp)));
        }
    }
}

/// Writes the stamp of the file `entry` names under `root`; none when it is not a regular
/// file (it is re-hashed next time).
fn write_fresh(out: &mut impl Write, root: &Path, entry: &Entry) -> io::Result<()> {
    let path = entry.path.as_str();
    match fs::symlink_metadata(root.join(path)) {
        Ok(m) if m.is_file() => write_line(out, path, &Stamp::new(entry, &m)),
        _ => Ok(()),
    }
}

/// One JSON line of the stamps file.
fn write_line(out: &mut impl Write, path: &str, stamp: &Stamp) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &stamp.line(path)).map_err(io::Error::other)?;
    out.write_all(b"\n")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Mode;
    use crate::format::path::RelPath;

    fn entry(path: &str, content: &[u8]) -> Entry {
        Entry {
            path: RelPath::new(path).unwrap(),
            size: content.len() as u64,
            sha256: Digest::of(content),
            mode: Mode::from_permissions(0o644),
            signatures: Vec::new(),
            carried: true,
        }
    }

    /// A directory holding `a.txt` and a stamps file that records it: (dir, file, entry, stamps).
    fn one_stamped_file() -> (tempfile::TempDir, std::path::PathBuf, Entry, Stamps) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        fs::write(&file, b"hello\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let e = entry("a.txt", b"hello\n");
        let mut stamps = Stamps::new();
        record(&mut stamps, &file, &e);
        save(dir.path(), &stamps).unwrap();
        (dir, file, e, stamps)
    }

    #[test]
    fn a_saved_stamp_is_trusted_after_loading_and_the_file_keeps_its_json_lines() {
        let (dir, file, e, stamps) = one_stamped_file();

        let text = fs::read_to_string(dir.path().join(STAMPS)).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["path"], "a.txt");
        assert_eq!(line["sha256"], e.sha256.to_hex());
        assert_eq!(text.lines().count(), 1);

        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded, stamps);
        assert_eq!(check(&file, &e, &loaded, true).unwrap(), Found::Stamped);
        assert_eq!(check(&file, &e, &loaded, false).unwrap(), Found::Hashed);
    }

    #[test]
    fn a_stamp_line_that_does_not_parse_costs_a_rehash_only() {
        let (dir, file, e, _) = one_stamped_file();
        let text = fs::read_to_string(dir.path().join(STAMPS)).unwrap();
        let broken = text.replace(&e.sha256.to_hex(), "not-a-digest");
        fs::write(dir.path().join(STAMPS), format!("{broken}{{\"path\":\"x\"}}\n")).unwrap();

        let loaded = load(dir.path()).unwrap();
        assert!(loaded.is_empty());
        assert_eq!(check(&file, &e, &loaded, true).unwrap(), Found::Hashed);
    }

    #[test]
    fn rewrite_merges_fresh_stamps_into_the_old_lines_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        let (meta, root) = (dir.path().join("meta"), dir.path().join("root"));
        fs::create_dir_all(&meta).unwrap();
        fs::create_dir_all(&root).unwrap();
        let file = |name: &str, content: &[u8]| {
            fs::write(root.join(name), content).unwrap();
            fs::set_permissions(root.join(name), fs::Permissions::from_mode(0o644)).unwrap();
            entry(name, content)
        };
        let (a, c, e) = (file("a", b"1"), file("c", b"2"), file("e", b"3"));
        let mut old = Stamps::new();
        for x in [&a, &c, &e] {
            record(&mut old, &root.join(x.path.as_str()), x);
        }
        save(&meta, &old).unwrap();
        // An edited file: a line out of order at the end is dropped, not trusted.
        let text = fs::read_to_string(meta.join(STAMPS)).unwrap();
        let first = text.lines().next().unwrap().to_owned();
        fs::write(meta.join(STAMPS), format!("{text}{first}\n")).unwrap();

        let (b, c2) = (file("b", b"4"), file("c", b"55"));
        rewrite(&meta, &root, [&b, &c2].into_iter(), |p| p == "e").unwrap();

        let stamps = load(&meta).unwrap();
        assert_eq!(stamps.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(fs::read_to_string(meta.join(STAMPS)).unwrap().lines().count(), 3);
        assert_eq!(check(&root.join("a"), &a, &stamps, true).unwrap(), Found::Stamped);
        assert_eq!(check(&root.join("b"), &b, &stamps, true).unwrap(), Found::Stamped);
        assert_eq!(check(&root.join("c"), &c2, &stamps, true).unwrap(), Found::Stamped);
    }
}
