//! The import protocol of docs/FORMAT.md §10, which makes an import all-or-nothing across
//! crashes: the mirror is only ever seen before or after it. The steps, with FORMAT.md's
//! numbers (each site below is tagged `FORMAT.md §10 step N`):
//!
//! 1. Take the lock; recover (below). ([`Mirror::open`])
//! 2. Verify the head and freshness; pre-flight: every entry can be placed and the
//!    filesystem has room. (`Mirror::import`, [`Mirror::preflight`])
//! 3. Stream the payload into `.airlock/staging/<bundle-id>.<random>/data/` and the head
//!    into `.../record/`. (`Mirror::stage`, [`StagingSink`](super::staging::StagingSink),
//!    [`write_record_dir`])
//! 4. One `syncfs` makes every staged file durable. ([`sync_filesystem`])
//! 5. **Commit point**: `.airlock/pending` is written durably. ([`Mirror::commit`])
//! 6. Apply: staged files are renamed into place, the head is kept under
//!    `.airlock/bundles/<manifest-sha256>/`, `syncfs`, the record is appended to the log,
//!    `pending` and the staging directory are removed, `.airlock/` is synced.
//!    ([`Mirror::apply`], idempotent)
//!
//! Any failure before step 5 removes the staging directory and logs `rejected` or `failed`;
//! the mirror's files are never touched before the commit point. **Recovery**
//! ([`Mirror::recover`]): a crash before step 5 leaves only staging, which the next run
//! discards (logged as `discarded`); a crash after it leaves `pending`, which the next run
//! applies again.
//!
//! The crash tests stop the process at each step boundary ([`CrashPoint`]); the hook is
//! compiled only with the `fault-injection` feature.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{Damage, PlacementConflict};
use super::plain::{self, Want};
use super::{Event, LogRecord, Mirror, MirrorError};
use crate::clock;
use crate::error::{Error, Reject, Result};
use crate::format::manifest::{self, Entry, Manifest};
use crate::format::{kept_head_name, signature_member, MANIFEST_MEMBER, SUMS_MEMBER};
use crate::io::digest::Digest;
use crate::io::durable::{sync_dir, write_bytes, Overwrite};

/// A step boundary of the protocol where the crash tests (tests/it/crash.rs) stop the
/// process, as a power cut or `kill -9` would, to check that recovery ends in exactly the
/// state before or after the import. Acted on only with the `fault-injection` feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Step 3: the head is staged, the payload not yet.
    HeadStaged,
    /// After step 4: everything is staged and durable; the commit point comes next.
    Staged,
    /// After step 5: `pending` is written (recovery must finish the import from here on).
    Committed,
    /// Step 6: after each rename of a staged file or directory into the mirror.
    FileMoved,
    /// Step 6: every staged file is in place.
    FilesMoved,
    /// Step 6: the head is kept under `bundles/` and the `syncfs` is done.
    RecordKept,
    /// Step 6: the log record is appended and synced; `.airlock/log-head` is not yet
    /// rewritten (it names the record before).
    LogAppended,
    /// Step 6: the log record is appended and anchored.
    Logged,
    /// Step 6: `pending` is removed; the staging directory is not yet.
    PendingRemoved,
}

#[cfg(feature = "fault-injection")]
impl CrashPoint {
    /// Every crash point, in protocol order.
    pub const ALL: [CrashPoint; 9] = [
        CrashPoint::HeadStaged,
        CrashPoint::Staged,
        CrashPoint::Committed,
        CrashPoint::FileMoved,
        CrashPoint::FilesMoved,
        CrashPoint::RecordKept,
        CrashPoint::LogAppended,
        CrashPoint::Logged,
        CrashPoint::PendingRemoved,
    ];

    /// The name the crash tests use (`head-staged`, `staged`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::HeadStaged => "head-staged",
            CrashPoint::Staged => "staged",
            CrashPoint::Committed => "committed",
            CrashPoint::FileMoved => "file-moved",
            CrashPoint::FilesMoved => "files-moved",
            CrashPoint::RecordKept => "record-kept",
            CrashPoint::LogAppended => "log-appended",
            CrashPoint::Logged => "logged",
            CrashPoint::PendingRemoved => "pending-removed",
        }
    }

    /// The crash point called `name`, if any.
    pub fn from_name(name: &str) -> Option<CrashPoint> {
        CrashPoint::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The commit record: what `pending` holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pending {
    staging: String,
    record: LogRecord,
}

impl Mirror {
    /// Stops the process here if the crash tests asked for `point`.
    #[cfg(feature = "fault-injection")]
    pub(super) fn crash_point(&self, point: CrashPoint) {
        if self.crash_at == Some(point) {
            std::process::abort();
        }
    }

    /// Without the `fault-injection` feature there are no crash points.
    #[cfg(not(feature = "fault-injection"))]
    pub(super) fn crash_point(&self, _point: CrashPoint) {}

    /// FORMAT.md §10 step 2 (pre-flight): refuses an import that cannot be placed: a file,
    /// symlink or other non-directory where a directory is needed, or a directory or
    /// symlink where a file goes. Also checks free space.
    pub(super) fn preflight(&self, manifest: &Manifest) -> Result<()> {
        let mut present_dirs = HashSet::new();
        let mut absent_dirs = HashSet::new();
        for entry in &manifest.entries {
            let mut under_absent = false;
            for dir in entry.path.ancestors() {
                if absent_dirs.contains(dir) {
                    under_absent = true;
                    break;
                }
                if present_dirs.contains(dir) {
                    continue;
                }
                match fs::symlink_metadata(self.root.join(dir)) {
                    Ok(m) if m.is_dir() => {
                        present_dirs.insert(dir);
                    }
                    Ok(_) => return Err(conflict(entry, PlacementConflict::NotADirectory { dir: dir.to_owned() })),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        absent_dirs.insert(dir);
                        under_absent = true;
                        break;
                    }
                    Err(e) => return Err(Error::io(self.root.join(dir), e)),
                }
            }
            if under_absent {
                continue; // nothing can stand in the way inside a directory that does not exist
            }
            // A regular file is replaced by a rename, which changes only this name: a hard
            // link elsewhere keeps the old content.
            match fs::symlink_metadata(self.root.join(entry.path.as_str())) {
                Ok(m) if m.is_file() => {}
                Ok(m) if m.is_dir() || m.is_symlink() => return Err(conflict(entry, PlacementConflict::NotAFile)),
                Ok(m) => return Err(conflict(entry, PlacementConflict::SpecialFile { found: plain::kind_name(&m) })),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(self.root.join(entry.path.as_str()), e)),
            }
        }
        check_free_space(&self.meta, manifest.total_size())
    }

    /// Writes the commit point, then applies it.
    pub(super) fn commit(&self, staging: &Path, record: LogRecord) -> Result<LogRecord> {
        let name = staging.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let pending = Pending { staging: name, record };
        let path = self.meta.join("pending");
        let text = serde_json::to_vec(&pending).map_err(|e| Error::io(&path, io::Error::other(e)))?;
        // FORMAT.md §10 step 5: the commit point (temporary file, fsync, rename, fsync of
        // `.airlock/`). From here on recovery finishes the import.
        write_bytes(&path, 0o644, Overwrite::Replace, &text)?;
        self.crash_point(CrashPoint::Committed);
        self.apply(&pending)
    }

    /// FORMAT.md §10 step 6: moves staged files into place, keeps the head, logs, and
    /// clears `pending`. Idempotent, so recovery can run it again after a crash at any
    /// point. Returns the import's log record (as appended now, or as found from an
    /// earlier run).
    fn apply(&self, pending: &Pending) -> Result<LogRecord> {
        let staging = self.meta.join("staging").join(&pending.staging);
        let summary = pending.record.bundle.as_ref().ok_or_else(|| self.damaged(Damage::PendingWithoutBundle))?;
        let kept = self.meta.join("bundles").join(&summary.manifest_sha256);
        let record_dir = if kept.is_dir() { kept.clone() } else { staging.join("record") };
        // The kept manifest must be intact before anything moves: it is what `mirror verify`
        // will hold the files to. Its digest is the signed manifest's (recorded in `pending`
        // after verification), so matching bytes need no second decoding.
        read_kept_manifest_bytes(&record_dir, &summary.manifest_sha256)?;
        // FORMAT.md §10 step 6: rename each staged file to its place.
        self.move_tree(&staging.join("data"), &self.root)?;
        self.crash_point(CrashPoint::FilesMoved);
        // FORMAT.md §10 step 6: rename `record/` to `bundles/<manifest-sha256>/`, `syncfs`.
        if !kept.is_dir() {
            fs::rename(staging.join("record"), &kept).map_err(|e| Error::io(&kept, e))?;
        }
        sync_filesystem(&self.root)?;
        self.crash_point(CrashPoint::RecordKept);
        Digest::from_hex(&summary.manifest_sha256).ok_or_else(|| self.damaged(Damage::PendingBadDigest))?;
        // FORMAT.md §10 step 6: append the log record unless the log already has this
        // manifest. One read of the log serves both that check and the chain head.
        let state = self.state()?;
        let already = state.records.iter().rev().find(|r| {
            r.event == Event::Imported
                && r.bundle.as_ref().is_some_and(|b| b.manifest_sha256 == summary.manifest_sha256)
        });
        let record = match already {
            Some(r) => r.clone(),
            None => self.append_log_line(pending.record.clone(), &state)?,
        };
        self.crash_point(CrashPoint::Logged);
        // FORMAT.md §10 step 6: remove `pending` and the staging directory, fsync `.airlock/`.
        remove_if_exists(&self.meta.join("pending"))?;
        self.crash_point(CrashPoint::PendingRemoved);
        remove_dir_if_exists(&staging)?;
        sync_dir(&self.meta)?;
        Ok(record)
    }

    /// Moves everything under `from` (staged, verified content) to the same place under `to`:
    /// a whole subtree with one rename where the mirror has nothing yet, descending only into
    /// directories the mirror already has, and replacing files. Idempotent: what was moved
    /// before an interruption is simply no longer in staging.
    fn move_tree(&self, from: &Path, to: &Path) -> Result<()> {
        let mut names = Vec::new();
        match fs::read_dir(from) {
            Ok(items) => {
                for item in items {
                    names.push(item.map_err(|e| Error::io(from, e))?.file_name());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(from, e)),
        }
        names.sort();
        for name in names {
            let (src, dst) = (from.join(&name), to.join(&name));
            let src_is_dir = fs::symlink_metadata(&src).map_err(|e| Error::io(&src, e))?.is_dir();
            match fs::symlink_metadata(&dst) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::rename(&src, &dst).map_err(|e| Error::io(&dst, e))?
                }
                Ok(m) if m.is_dir() && src_is_dir => self.move_tree(&src, &dst)?,
                Ok(m) if m.is_file() && !src_is_dir => fs::rename(&src, &dst).map_err(|e| Error::io(&dst, e))?,
                Ok(_) => return Err(self.damaged(Damage::ChangedType { path: dst })),
                Err(e) => return Err(Error::io(&dst, e)),
            }
            self.crash_point(CrashPoint::FileMoved);
        }
        Ok(())
    }

    /// FORMAT.md §10 step 1 (recovery, under the lock): finishes a committed import or
    /// discards an uncommitted one.
    pub(super) fn recover(&self) -> Result<()> {
        self.remove_temporary_files()?;
        let pending_path = self.meta.join("pending");
        if let Some(text) = plain::read(&pending_path)? {
            let mut pending: Pending =
                serde_json::from_slice(&text).map_err(|e| self.damaged(Damage::PendingUnreadable(e)))?;
            pending.record.reason = Some("completed by recovery after an interrupted import".into());
            // Past step 5: finish the import.
            self.apply(&pending)?;
        }
        // Before step 5: the mirror is unchanged; remove what was staged.
        for name in self.staging_names()? {
            remove_dir_if_exists(&self.meta.join("staging").join(&name))?;
            self.append_log(LogRecord {
                prev: String::new(),
                time: clock::system_now(),
                event: Event::Discarded,
                source: None,
                bundle: None,
                overrides: Vec::new(),
                artifacts: Vec::new(),
                reason: Some(format!(
                    "uncommitted staging {name} of an interrupted import removed; the mirror is unchanged"
                )),
            })?;
        }
        Ok(())
    }

    /// Removes the temporary file of a durable write into `.airlock/` that a crash
    /// interrupted (its target, `pending`, was never replaced, so it is garbage).
    fn remove_temporary_files(&self) -> Result<()> {
        for item in fs::read_dir(&self.meta).map_err(|e| Error::io(&self.meta, e))? {
            let name = item.map_err(|e| Error::io(&self.meta, e))?.file_name();
            let name = name.to_string_lossy();
            // `.airlock-*.tmp` is io::durable's temporary name; `pending.tmp` an older one's.
            if (name.starts_with(".airlock-") && name.ends_with(".tmp")) || name == "pending.tmp" {
                remove_if_exists(&self.meta.join(&*name))?;
            }
        }
        Ok(())
    }

    fn staging_names(&self) -> Result<Vec<String>> {
        let dir = self.meta.join("staging");
        let mut names = Vec::new();
        for item in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let item = item.map_err(|e| Error::io(&dir, e))?;
            names.push(item.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Best effort, after a failed import: it already has an error to report.
    pub(super) fn remove_all_staging(&self) {
        if let Ok(names) = self.staging_names() {
            for name in names {
                let _ = fs::remove_dir_all(self.meta.join("staging").join(name));
            }
        }
    }

    fn damaged(&self, damage: Damage) -> Error {
        Error::Mirror { path: self.root.clone(), reason: MirrorError::Damaged(damage) }
    }
}

fn conflict(entry: &Entry, reason: PlacementConflict) -> Error {
    Error::Rejected(Reject::Conflict { path: entry.path.to_string(), reason })
}

fn check_free_space(dir: &Path, need: u64) -> Result<()> {
    let st = rustix::fs::statvfs(dir).map_err(|e| Error::io(dir, e.into()))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < need {
        return Err(Error::Mirror { path: dir.to_owned(), reason: MirrorError::NoSpace { need, free } });
    }
    Ok(())
}

/// FORMAT.md §10 steps 4 and 6: one `syncfs` makes every staged (or moved) file durable at
/// once: far cheaper than an fsync per file for many small files, with the same guarantee
/// at the commit point.
pub(super) fn sync_filesystem(any_path: &Path) -> Result<()> {
    let dir = File::open(any_path).map_err(|e| Error::io(any_path, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| Error::io(any_path, e.into()))
}

/// FORMAT.md §10 step 3 (the head): keeps the bundle head so auditors can re-check it with
/// stock tools: the manifest, its signatures and the checksum list, under the member names
/// without `airlock/`.
pub(super) fn write_record_dir(dir: &Path, head: &crate::verify::Head) -> Result<()> {
    create_private_dir(dir)?;
    create_private_dir(&dir.join("signatures"))?;
    let strip = |name: &str| kept_head_name(name).to_owned();
    write_new(&dir.join(strip(MANIFEST_MEMBER)), &head.manifest_bytes)?;
    for sig in &head.signatures {
        write_new(&dir.join(strip(&signature_member(sig.key_id()))), sig.to_file_string().as_bytes())?;
    }
    write_new(&dir.join(strip(SUMS_MEMBER)), &head.sums)?;
    // The record dirs are read by auditors: make them world-readable like the mirror.
    for d in [dir.to_owned(), dir.join("signatures")] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(&d, e))?;
    }
    Ok(())
}

/// A kept manifest, checked against the digest it is kept under, decoded.
pub(super) fn read_kept_manifest(dir: &Path, digest_hex: &str) -> Result<Manifest> {
    let bytes = read_kept_manifest_bytes(dir, digest_hex)?;
    let path = dir.join("manifest.cbor");
    manifest::decode(&bytes).map_err(|e| Error::Mirror { path, reason: MirrorError::KeptManifestUndecodable(e) })
}

/// The kept manifest's bytes, checked against the digest recorded for them. Neither the
/// kept directory nor the manifest may be a link.
fn read_kept_manifest_bytes(dir: &Path, digest_hex: &str) -> Result<Vec<u8>> {
    let path = dir.join("manifest.cbor");
    if !plain::check(dir, Want::Dir)? {
        return Err(Error::io(dir, io::ErrorKind::NotFound.into()));
    }
    let bytes = plain::read(&path)?.ok_or_else(|| Error::io(&path, io::ErrorKind::NotFound.into()))?;
    if Digest::of(&bytes).to_hex() != digest_hex {
        return Err(Error::Mirror { path, reason: MirrorError::KeptManifestMismatch });
    }
    Ok(bytes)
}

/// The manifest digest of the import `.airlock/pending` commits, if it names one: its kept
/// head may stand under `bundles/` before the log records it (FORMAT.md §10 step 6).
pub(super) fn in_flight_digest(meta: &Path) -> Option<String> {
    let bytes = plain::read(&meta.join("pending")).ok()??;
    let pending: Pending = serde_json::from_slice(&bytes).ok()?;
    pending.record.bundle.map(|b| b.manifest_sha256)
}

/// Writes a file that must not exist yet, durably, world-readable.
pub(super) fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    write_bytes(path, 0o644, Overwrite::NoClobber, bytes)
}

/// A directory only its owner can enter (staging stays private until it is moved into place).
pub(super) fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new().mode(0o700).create(path).map_err(|e| Error::io(path, e))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}
