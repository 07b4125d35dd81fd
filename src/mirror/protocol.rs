//! The import protocol of docs/FORMAT.md §10, which makes an import all-or-nothing across
//! crashes: the mirror is only ever seen before or after it. The steps, with FORMAT.md's
//! numbers (each site below is tagged `FORMAT.md §10 step N`):
//!
//! 1. Take the lock; recover (below). ([`Mirror::open`])
//! 2. Verify the head and freshness; the plan: every entry can be placed (and is the
//!    importing channel's to place), what the bundle does not carry is in the mirror, what
//!    is retired, and the filesystem has room for what is written. (`Mirror::import`,
//!    `Mirror::plan` in plan.rs)
//! 3. Stream the payload into `.airlock/staging/<manifest-sha256>/data/` (reusing what an
//!    interrupted run of the same bundle journaled: journal.rs) and the head into
//!    `.../record/`. (`Mirror::stage`, [`StagingSink`](super::staging::StagingSink),
//!    [`write_record_dir`])
//! 4. One `syncfs` makes every staged file durable. ([`sync_filesystem`])
//! 5. **Commit point**: `.airlock/pending` is written durably. ([`Mirror::commit`])
//! 6. Apply: retired files are removed (or moved to the attic), staged files are renamed
//!    into place, the head is kept under `.airlock/bundles/<manifest-sha256>/`, `syncfs`,
//!    stamps are recorded, the record is appended to the log, `pending` and the staging
//!    directory are removed, `.airlock/` is synced. ([`Mirror::apply`], idempotent)
//!
//! Any failure before step 5 removes the staging directory and logs `rejected` or `failed`;
//! the mirror's files are never touched before the commit point. **Recovery**
//! ([`Mirror::recover`]): a crash before step 5 leaves only staging, which the next run
//! keeps for a rerun if it journaled files and otherwise discards (logged as `discarded`);
//! a crash after it leaves `pending`, which the next run applies again.
//!
//! The crash tests stop the process at each step boundary ([`CrashPoint`]); the hook is
//! compiled only with the `fault-injection` feature.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::Damage;
use super::plain::{self, Want};
use super::{journal, stamps, v2, Event, LogRecord, Mirror, MirrorError};
use crate::clock;
use crate::error::{Error, Result};
use crate::format::manifest::{self, Manifest};
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
    /// Step 6: after each retired file is removed or moved to the attic.
    FileRetired,
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
    pub const ALL: [CrashPoint; 10] = [
        CrashPoint::HeadStaged,
        CrashPoint::Staged,
        CrashPoint::Committed,
        CrashPoint::FileRetired,
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
            CrashPoint::FileRetired => "file-retired",
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
    /// Entries the bundle did not carry that this import hashed: stamped in step 6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    restamp: Vec<String>,
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

    /// Writes the commit point, then applies it.
    pub(super) fn commit(&self, staging: &Path, record: LogRecord, restamp: Vec<String>) -> Result<LogRecord> {
        let name = staging.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let pending = Pending { staging: name, record, restamp };
        let path = self.meta.join("pending");
        let text = serde_json::to_vec(&pending).map_err(|e| Error::io(&path, io::Error::other(e)))?;
        // FORMAT.md §10 step 5: the commit point (temporary file, fsync, rename, fsync of
        // `.airlock/`). From here on recovery finishes the import.
        write_bytes(&path, 0o644, Overwrite::Replace, &text)?;
        self.crash_point(CrashPoint::Committed);
        self.apply(&pending)
    }

    /// FORMAT.md §10 step 6: retires the files the import retires, moves staged files into
    /// place, keeps the head (of an import), stamps what was written or hashed, logs, and
    /// clears `pending`. Idempotent, so recovery can run it again after a crash at any
    /// point. Returns the log record (as appended now, or as found from an earlier run).
    fn apply(&self, pending: &Pending) -> Result<LogRecord> {
        let staging = self.meta.join("staging").join(&pending.staging);
        let record = &pending.record;
        let summary = record.bundle.as_ref().ok_or_else(|| self.damaged(Damage::PendingWithoutBundle))?;
        let is_import = record.event == Event::Imported;
        let kept = self.meta.join("bundles").join(&summary.manifest_sha256);
        let record_dir = if is_import && kept.is_dir() { kept.clone() } else { staging.join("record") };
        // The manifest must be intact before anything moves: it is what `mirror verify`
        // will hold the files to. Its digest is the signed manifest's (recorded in `pending`
        // after verification).
        let manifest = read_kept_manifest(&record_dir, &summary.manifest_sha256)?;
        // Committed staging is never resumed: its files are about to move.
        journal::forget(&staging)?;
        // FORMAT.md §10 step 6: retire, then rename each staged file to its place.
        self.retire(&record.retired, record.attic.as_deref())?;
        self.move_tree(&staging.join("data"), &self.root)?;
        self.crash_point(CrashPoint::FilesMoved);
        // FORMAT.md §10 step 6: rename `record/` to `bundles/<manifest-sha256>/`, `syncfs`.
        if is_import && !kept.is_dir() {
            fs::rename(staging.join("record"), &kept).map_err(|e| Error::io(&kept, e))?;
        }
        sync_filesystem(&self.root)?;
        self.crash_point(CrashPoint::RecordKept);
        Digest::from_hex(&summary.manifest_sha256).ok_or_else(|| self.damaged(Damage::PendingBadDigest))?;
        self.stamp_applied(&manifest, pending)?;
        // FORMAT.md §10 step 6: append the log record unless the log already has it. One
        // read of the log serves both that check and the chain head.
        let state = self.state()?;
        let already = state.records.iter().rev().find(|r| {
            if is_import {
                r.event == Event::Imported
                    && r.bundle.as_ref().is_some_and(|b| b.manifest_sha256 == summary.manifest_sha256)
            } else {
                // A repair is the same record appended last, whatever its chain link.
                LogRecord { prev: r.prev.clone(), ..record.clone() } == **r
            }
        });
        let record = match already {
            Some(r) => r.clone(),
            None => self.append_log_line(record.clone(), &state)?,
        };
        self.crash_point(CrashPoint::Logged);
        // FORMAT.md §10 step 6: remove `pending` and the staging directory, fsync `.airlock/`.
        remove_if_exists(&self.meta.join("pending"))?;
        self.crash_point(CrashPoint::PendingRemoved);
        remove_dir_if_exists(&staging)?;
        sync_dir(&self.meta)?;
        Ok(record)
    }

    /// FORMAT.md §10 step 6: removes each retired file, or moves it under
    /// `.airlock/attic/<attic>/`, and removes directories that leaves empty. A path already
    /// gone was retired before an interruption.
    fn retire(&self, paths: &[String], attic: Option<&str>) -> Result<()> {
        for path in paths {
            let src = self.root.join(path);
            match fs::symlink_metadata(&src) {
                Ok(m) if m.is_file() => {
                    match attic {
                        Some(dir) => {
                            let dst = self.meta.join("attic").join(dir).join(path);
                            let parent = crate::io::durable::parent_dir(&dst);
                            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                            fs::rename(&src, &dst).map_err(|e| Error::io(&dst, e))?;
                        }
                        None => fs::remove_file(&src).map_err(|e| Error::io(&src, e))?,
                    }
                    self.crash_point(CrashPoint::FileRetired);
                }
                Ok(_) => continue, // not the file the channel had: never touched
                // Retired before an interruption; its directories may still need removing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&src, e)),
            }
            let mut dir = Path::new(path).parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
                if fs::remove_dir(self.root.join(d)).is_err() {
                    break; // not empty: the rest of the way up is not either
                }
                dir = d.parent();
            }
        }
        Ok(())
    }

    /// Records the stamps of what this import wrote (its carried entries, or the repaired
    /// files) and of the kept entries it hashed, and drops those of retired files.
    fn stamp_applied(&self, manifest: &Manifest, pending: &Pending) -> Result<()> {
        let record = &pending.record;
        let retired: HashSet<&str> = record.retired.iter().map(String::as_str).collect();
        let hashed: HashSet<&str> = pending.restamp.iter().chain(&record.repaired).map(String::as_str).collect();
        let is_import = record.event == Event::Imported;
        let fresh =
            manifest.entries.iter().filter(|e| (is_import && v2::is_carried(e)) || hashed.contains(e.path.as_str()));
        stamps::rewrite(&self.meta, &self.root, fresh, |path| retired.contains(path))
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
        // Before step 5: the mirror is unchanged. Staging with journaled files is kept for
        // a rerun of its bundle (FORMAT.md §10, "Resume"); the rest is removed.
        let imported = self.state()?.imported;
        for name in self.staging_names()? {
            let dir = self.meta.join("staging").join(&name);
            let resumable = Digest::from_hex(&name).is_some_and(|d| !imported.contains(&d));
            if resumable && journal::has_journaled_files(&dir) {
                continue;
            }
            self.discard_staging(&name, "of an interrupted import")?;
        }
        Ok(())
    }

    /// Removes every staging directory but `keep`'s: an interrupted import of another
    /// bundle, which this one can never use.
    pub(super) fn discard_staging_except(&self, keep: &str) -> Result<()> {
        for name in self.staging_names()? {
            if name != keep {
                self.discard_staging(&name, "of an interrupted import of another bundle")?;
            }
        }
        Ok(())
    }

    fn discard_staging(&self, name: &str, what: &str) -> Result<()> {
        remove_dir_if_exists(&self.meta.join("staging").join(name))?;
        let mut record = LogRecord::new(clock::system_now(), Event::Discarded);
        record.reason = Some(format!("uncommitted staging {name} {what} removed; the mirror is unchanged"));
        self.append_log(record)?;
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

pub(super) fn check_free_space(dir: &Path, need: u64) -> Result<()> {
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
pub(super) fn write_record_dir(dir: &Path, head: &crate::verify::Head, manifest: &Manifest) -> Result<()> {
    create_private_dir(dir)?;
    create_private_dir(&dir.join("signatures"))?;
    let strip = |name: &str| kept_head_name(name).to_owned();
    write_staged(&dir.join(strip(MANIFEST_MEMBER)), |f| f.write_all(&head.manifest_bytes))?;
    for sig in &head.signatures {
        let text = sig.to_file_string();
        write_staged(&dir.join(strip(&signature_member(sig.key_id()))), |f| f.write_all(text.as_bytes()))?;
    }
    // Streamed from the verified manifest: the list is as long as the manifest.
    write_staged(&dir.join(strip(SUMS_MEMBER)), |f| head.sums.write_to(manifest, f))?;
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

/// Writes a new file into a staging directory, with no `fsync` of its own: staged files are
/// made durable together by step 4's `syncfs` (FORMAT.md §10), and a rerun writes the
/// record again. (At a million entries the record is 190 MB, and syncing it file by file
/// held up the payload's streaming.)
fn write_staged(path: &Path, fill: impl FnOnce(&mut io::BufWriter<File>) -> io::Result<()>) -> Result<()> {
    let mut out = io::BufWriter::new(super::staging::create(path, 0o644)?);
    fill(&mut out).and_then(|()| out.flush()).map_err(|e| Error::io(path, e))
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

pub(super) fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}
