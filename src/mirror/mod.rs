//! The import side: a mirror directory and its metadata in `.airlock/`.
//!
//! An import is verified, planned, staged and committed so that the mirror is only ever
//! seen before or after it: the protocol of docs/FORMAT.md §10, in six steps (take the lock
//! and recover; verify and plan; stage; `syncfs`; the commit point; apply), is listed and
//! implemented in `protocol.rs`, each site tagged with its step number. The mirror layout
//! (version 2: an id, stamps, the attic) is FORMAT.md §9.
//!
//! - this module: [`Mirror::init`] (a new mirror and its id), [`Mirror::open`] (layout,
//!   `FORMAT`, the lock, the upgrade of a version-1 mirror) and [`Mirror::import`], which
//!   verifies, checks freshness, plans and runs the protocol;
//! - `state.rs`: each channel's expected state ([`Mirror::channel_states`],
//!   [`ChannelView`]) and so which channel owns a path;
//! - `plan.rs`: placement and ownership conflicts, the entries a delta does not carry,
//!   retirement, the change breakdown ([`Changes`]), free space;
//! - `stamps.rs`: stat stamps, and the checks by stamp or by hash ([`BaseCheck`]);
//! - `protocol.rs`: commit point, apply (retirement included), recovery (`CrashPoint`s for
//!   the crash tests with the `fault-injection` feature);
//! - `staging`: `StagingSink`, which writes the payload into the staging directory, and
//!   `journal.rs`, which lets a rerun of an interrupted import reuse what it staged;
//! - `repair.rs`: `import --repair` ([`Mirror::repair`]);
//! - `receipt.rs`: what the mirror holds, for a receipt ([`Mirror::receipt`]);
//! - `log.rs`: the hash-chained import log ([`LogRecord`], [`Event`], [`read_log`]);
//! - `recover_log.rs`: a damaged log read as evidence ([`scan_log`]) and sealed aside
//!   ([`Mirror::recover_log`]);
//! - `readonly.rs`: [`Mirror::open_read_only`], for auditors;
//! - `show.rs`: `mirror show` ([`show::show`]), a past import read back from its kept head;
//! - `audit.rs`: `mirror verify` ([`Mirror::audit`], [`AuditReport`]);
//! - `error.rs`: [`MirrorError`], [`Conflicts`] of [`PlacementConflict`]s, [`PlanReject`];
//! - `v2.rs`: the manifest facts that differ between format versions 1 and 2.

mod audit;
mod error;
mod journal;
mod log;
mod plain;
mod plan;
mod protocol;
mod readonly;
mod receipt;
mod recover_log;

mod repair;
pub mod show;
pub(crate) mod staging;
mod stamps;
mod state;
mod v2;
mod volumes;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::clock;
use crate::error::{Error, Result};
use crate::format::path::METADATA_DIR;
use crate::io::digest::{self, Digest};
use crate::io::durable::{sync_dir, write_bytes, Overwrite};
use crate::mirror::staging::StagingSink;
use crate::policy::Policy;
use crate::progress::Progress;
use crate::verify::{AuthenticHead, Bundle, BundleSource, GapPolicy, History, VerifiedBundle, VerifyOptions};

pub use audit::{AuditReport, Difference, Modified};
pub use error::{
    BaseProblem, Conflict, Conflicts, Damage, KeptDisagreement, LogProblem, MirrorError, PlacementConflict, PlanReject,
};
pub use log::{read_log, BundleSummary, Event, LogRecord, MirrorState};
pub use plan::Changes;
pub use readonly::{cannot_write, ReadLock};
pub use recover_log::{scan_log, LogBreak, LogScan, RecoveredLog, Recovery};

#[cfg(feature = "fault-injection")]
pub use protocol::CrashPoint;
#[cfg(not(feature = "fault-injection"))]
use protocol::CrashPoint;
use protocol::{create_private_dir, sync_filesystem, write_new, write_record_dir};
pub use repair::RepairOutcome;
pub use state::ChannelView;
pub use v2::MirrorId;

/// Content of `.airlock/FORMAT`.
pub const MIRROR_FORMAT: &str = "airlock-mirror 2\n";
/// Content of `.airlock/FORMAT` in a mirror made before mirror ids (upgraded in place).
const MIRROR_FORMAT_V1: &str = "airlock-mirror 1\n";
pub use crate::verify::DEFAULT_CLOCK_SKEW;

/// How an import proves that the entries a delta bundle does not carry are in the mirror
/// (docs/FORMAT.md §10, "The plan").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BaseCheck {
    /// Trust a file whose stat stamp (size, mtime, ctime, inode, device) is unchanged since
    /// airlock last wrote or verified it; re-hash any other.
    #[default]
    Stat,
    /// Re-hash every such file.
    Hash,
}

/// How to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Whether a gap or a broken `previous` link in the channel rejects (or is accepted and
    /// logged).
    pub gaps: GapPolicy,
    /// Allowance for clock error when checking expiry, in seconds.
    pub clock_skew: u64,
    /// The time to check expiry and age against (Unix seconds); the bundle channel's clock floor
    /// can only move it later.
    pub now: u64,
    /// How kept entries of a delta are checked.
    pub base_check: BaseCheck,
    /// Move retired files to `.airlock/attic/<date>-<manifest>/` instead of removing them.
    pub attic: bool,
    /// Allow retiring more than half of a channel's files (and more than 10).
    pub allow_mass_retire: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            gaps: GapPolicy::Refuse,
            clock_skew: DEFAULT_CLOCK_SKEW,
            now: clock::system_now(),
            base_check: BaseCheck::Stat,
            attic: false,
            allow_mass_retire: false,
        }
    }
}

/// What an import did.
#[derive(Debug)]
pub enum ImportOutcome {
    /// The bundle's files are now in the mirror.
    Imported {
        /// The log record appended (with the change breakdown and the retired paths).
        record: Box<LogRecord>,
        /// Staged files of an interrupted run of the same bundle that were reused.
        resumed: u64,
        /// What the artifact rules found (the log keeps them as text, in `record.artifacts`).
        findings: Vec<crate::producer::Finding>,
        /// The carried files no artifact rule covered; `None` when the policy has no
        /// artifact or repository rules (see [`Policy::uncovered_files`]).
        uncovered: Option<Vec<String>>,
    },
    /// The same manifest was imported before; nothing changed.
    AlreadyImported {
        /// Its digest.
        manifest_digest: Digest,
    },
    /// A volume set is still short of volumes (more missing than parity can rebuild): the
    /// verified volumes given are kept in the mirror's `.airlock/volumes/` for the next run,
    /// and nothing was imported.
    VolumesMissing {
        /// Volumes kept by this run (`vol002 from PATH`).
        kept: Vec<String>,
        /// Data volumes still missing or damaged.
        missing: Vec<String>,
        /// Parity volumes at hand.
        parity: usize,
    },
}

/// An open, locked mirror.
pub struct Mirror {
    root: PathBuf,
    meta: PathBuf,
    id: MirrorId,
    /// The mirror lock, while it is held (a read-only opening may hold none: `readonly.rs`).
    _lock: Option<File>,
    /// `Some` for a read-only opening ([`Mirror::open_read_only`]): how it holds the mirror.
    /// Such a mirror is only read: no recovery, no mending, no stamps, no imports.
    read_only: Option<ReadLock>,
    /// Where the crash tests stop the process, if anywhere.
    #[cfg(feature = "fault-injection")]
    crash_at: Option<CrashPoint>,
}

impl Mirror {
    /// Creates a mirror at `root` (the directory itself is created if missing; its parent
    /// must exist) and returns its new id. Refuses a directory that already is a mirror
    /// ([`MirrorError::AlreadyAMirror`]).
    pub fn init(root: &Path) -> Result<MirrorId> {
        let meta = root.join(METADATA_DIR);
        if plain::check(&meta.join("FORMAT"), plain::Want::File)? {
            let id = read_id(&meta).ok().flatten().map_or_else(|| "none yet".to_owned(), |id| id.to_hex());
            return Err(Error::Mirror { path: root.to_owned(), reason: MirrorError::AlreadyAMirror { id } });
        }
        create_layout(root, &meta)?;
        read_id(&meta)?.ok_or_else(|| Error::io(meta.join("id"), io::ErrorKind::NotFound.into()))
    }

    /// Opens and locks an existing mirror (never creates one: see [`Mirror::init`]), upgrades
    /// a version-1 layout in place, then finishes or discards any interrupted import.
    pub fn open(root: &Path) -> Result<Mirror> {
        let mirror = Mirror::open_unrecovered(root)?;
        // FORMAT.md §10 step 1: recover.
        mirror.recover()?;
        Ok(mirror)
    }

    /// [`Mirror::open`] for the crash tests: the process aborts when it reaches `point`,
    /// in the recovery [`Mirror::open`] runs or in a later import.
    #[cfg(feature = "fault-injection")]
    pub fn open_with_crash_point(root: &Path, point: CrashPoint) -> Result<Mirror> {
        let mut mirror = Mirror::open_unrecovered(root)?;
        mirror.crash_at = Some(point);
        // FORMAT.md §10 step 1: recover.
        mirror.recover()?;
        Ok(mirror)
    }

    /// FORMAT.md §10 step 1: checks the layout and takes the lock; recovery is the caller's.
    fn open_unrecovered(root: &Path) -> Result<Mirror> {
        let meta = open_checked(root)?;
        check_format(&meta)?;
        let lock = lock_mirror(&meta)?;
        // Under the lock: a version-1 mirror gets its id (FORMAT.md §9, "Versions").
        let id = upgrade(&meta)?;
        let mirror = Mirror {
            root: root.to_owned(),
            meta,
            id,
            _lock: Some(lock),
            read_only: None,
            #[cfg(feature = "fault-injection")]
            crash_at: None,
        };
        // Under the lock: mend what a crash during a log append left, and anchor the log
        // of a mirror made before anchors existed (FORMAT.md §9, "The log's anchor").
        mirror.state()?;
        Ok(mirror)
    }

    /// The mirror root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The mirror's id (`.airlock/id`): what receipts and delta bundles name it by.
    pub fn id(&self) -> MirrorId {
        self.id
    }

    /// Verifies `bundle_path` against the trust `policy` (signers, revocations, maximum age,
    /// artifact rules) and the mirror's history, and imports it. Every failure after the
    /// mirror is opened is logged.
    ///
    /// The source may be a bundle file, standard input, or a volume set (FORMAT.md §14):
    /// volumes of a set are gathered with those kept from earlier runs, and a set still too
    /// short is kept for the next run ([`ImportOutcome::VolumesMissing`]).
    pub fn import(
        &self,
        source: impl Into<BundleSource>,
        policy: &Policy,
        opts: &ImportOptions,
        progress: &dyn Progress,
    ) -> Result<ImportOutcome> {
        self.check_writable()?;
        let source = source.into();
        let mut summary = None;
        let result = self.import_gathered(&source, policy, opts, progress, &mut summary);
        if let Err(err) = &result {
            self.log_failure(&source.describe(), opts.now, summary, err);
        }
        result
    }

    /// After a failed import or repair: removes its staging (unless the commit point was
    /// passed) and logs `rejected` or `failed`.
    fn log_failure(&self, source: &str, now: u64, summary: Option<BundleSummary>, err: &Error) {
        // Past the commit point (`pending` written) the staged files belong to the
        // commit: recovery must find them to finish it, or the mirror stays mixed.
        if !plain::file_exists(&self.meta.join("pending")).unwrap_or(true) {
            self.remove_all_staging();
        }
        let event = if err.is_rejection() { Event::Rejected } else { Event::Failed };
        let mut record = LogRecord::new(now, event);
        record.source = Some(source.to_owned());
        record.bundle = summary;
        record.reason = Some(err.to_string());
        // The import already failed; a failure to log it must not hide the reason.
        let _ = self.append_log(record);
    }

    fn import_inner(
        &self,
        source: &BundleSource,
        policy: &Policy,
        opts: &ImportOptions,
        progress: &dyn Progress,
        summary: &mut Option<BundleSummary>,
    ) -> Result<ImportOutcome> {
        let bundle = Bundle::open_source(source)?;
        let state = self.state()?;
        let views = self.channel_views(&state)?;
        let history = History {
            last_import: state.channels.clone(),
            clock_floors: state.clock_floors.clone(),
            imported: state.imported.iter().copied().collect(),
        };
        let options = VerifyOptions {
            history,
            clock_skew: opts.clock_skew,
            gaps: opts.gaps,
            ..VerifyOptions::new(policy, opts.now)
        };
        // FORMAT.md §10 step 2: the head and freshness (§8 steps 1-5). A bundle whose head
        // verified is named in the log even when it is then refused as stale.
        let verified = bundle.verify_observed(&options, |head| *summary = Some(summarize(head)))?;
        if verified.already_imported() {
            return Ok(ImportOutcome::AlreadyImported { manifest_digest: verified.manifest_digest() });
        }
        let overrides = verified.overrides().to_vec();
        // FORMAT.md §10 step 2: the plan (placement, ownership, kept entries, retirement,
        // free space), before anything is staged.
        let plan = self.plan(verified.manifest(), verified.manifest_digest(), &views, opts)?;
        // The files no rule's glob matches, before the payload streams (it consumes the
        // manifest); those a finding names are covered after all.
        let mut uncovered: Option<Vec<String>> =
            policy.uncovered_files(verified.manifest(), &[]).map(|u| u.into_iter().map(str::to_owned).collect());
        let (staging, findings, artifacts, resumed) = self.stage(verified, progress)?;
        if let Some(list) = &mut uncovered {
            let covers = |f: &crate::producer::Finding, p: &str| {
                f.status != crate::producer::Status::NotCovered && (f.artifact == p || f.file.as_deref() == Some(p))
            };
            list.retain(|p| !findings.iter().any(|f| covers(f, p)));
        }
        self.crash_point(CrashPoint::Staged);
        let mut record = LogRecord::new(opts.now, Event::Imported);
        record.source = Some(source.describe());
        record.bundle = summary.clone();
        record.overrides = overrides;
        record.artifacts = artifacts;
        record.changes = Some(plan.changes.clone());
        record.retired = plan.retire.iter().map(|e| e.path.to_string()).collect();
        if !record.retired.is_empty() && opts.attic {
            record.attic = Some(attic_name(opts.now, &plan.manifest_digest));
        }
        let record = self.commit(&staging, record, plan.restamp)?;
        Ok(ImportOutcome::Imported { record: Box::new(record), resumed, findings, uncovered })
    }

    /// Streams the payload into the bundle's staging directory (checking it, and the
    /// artifact rules, in the same pass: §8 step 6), reusing what an interrupted run of the
    /// same bundle staged and journaled, and makes it durable. Returns the staging
    /// directory, the artifact rules' findings and the log's lines for them, and how many
    /// staged files were reused.
    #[allow(clippy::type_complexity)]
    fn stage(
        &self,
        verified: VerifiedBundle<'_>,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, Vec<crate::producer::Finding>, Vec<String>, u64)> {
        let name = verified.manifest_digest().to_hex();
        // A different bundle's interrupted staging can never be used: removed, logged.
        self.discard_staging_except(&name)?;
        let staging = self.meta.join("staging").join(&name);
        let resume = journal::Resume::take(&staging)?;
        if !plain::check(&staging, plain::Want::Dir)? {
            create_private_dir(&staging)?;
        }
        protocol::remove_dir_if_exists(&staging.join("record"))?;
        write_record_dir(&staging.join("record"), verified.head(), verified.manifest())?;
        self.crash_point(CrashPoint::HeadStaged);
        let data = staging.join("data");
        if !plain::check(&data, plain::Want::Dir)? {
            create_private_dir(&data)?;
        }
        let manifest = verified.manifest();
        let carried = manifest.entries.iter().filter(|e| v2::is_carried(e));
        let (bytes, files) = carried.fold((0u64, 0u64), |(b, n), e| (b.saturating_add(e.size), n + 1));
        progress.start("importing", bytes, files);
        let journal = journal::Journal::create(&staging)?;
        let mut sink = StagingSink::resuming(data, resume, Some(journal.clone()));
        let manifest_hex = verified.manifest_digest().to_hex();
        let result = verified.stream_into_report(&mut sink, progress);
        progress.finish();
        let report = result?;
        let resumed = sink.finish()?;
        let mut notes: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        notes.extend(keep_trust_files(&staging.join("record"), &manifest_hex, &report.trust_files)?);
        sync_filesystem(&staging)?;
        // Everything staged is durable now: journal it all.
        journal.flush_synced()?;
        Ok((staging, report.findings, notes, resumed))
    }
}

/// Keeps the keyrings and trusted roots the producer rules used beside the bundle's kept
/// head (`.airlock/bundles/<manifest>/trust/<sha256>.<ext>`, moved into place by the
/// commit's rename), so a consumer inside can re-check an artifact with stock tools
/// (docs/POLICY.md). Returns one log line per file.
fn keep_trust_files(record: &Path, manifest_hex: &str, files: &[crate::producer::TrustFile]) -> Result<Vec<String>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let dir = record.join("trust");
    create_private_dir(&dir)?;
    let mut lines = Vec::new();
    for f in files {
        protocol::write_new(&dir.join(&f.stored_as), &f.bytes)?;
        lines.push(format!(
            "trust material kept: .airlock/bundles/{manifest_hex}/trust/{} ({}, from {})",
            f.stored_as, f.name, f.origin
        ));
    }
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(|e| Error::io(&dir, e))?;
    Ok(lines)
}

/// `YYYYMMDD-<manifest hex>`: the attic directory of an import's retired files.
fn attic_name(now: u64, manifest: &Digest) -> String {
    let date: String = clock::format(now).chars().take(10).filter(char::is_ascii_digit).collect();
    format!("{date}-{}", manifest.to_hex())
}

fn summarize(head: &AuthenticHead) -> BundleSummary {
    let m = head.manifest();
    BundleSummary {
        manifest_sha256: head.manifest_digest().to_hex(),
        bundle_id: m.bundle_id.to_hex(),
        channel: m.channel.clone(),
        sequence: m.sequence,
        created: m.created,
        expires: m.expires,
        signers: head.trust().valid_signers.iter().map(|k| k.key_id().to_string()).collect(),
        entries: m.entries.len() as u64,
        bytes: m.total_size(),
    }
}

/// Creates the mirror root (if missing) and its metadata directory with a new id.
fn create_layout(root: &Path, meta: &Path) -> Result<()> {
    match fs::create_dir(root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(root, e)),
    }
    let root_meta = fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
    if !root_meta.is_dir() {
        return Err(Error::Mirror { path: root.to_owned(), reason: MirrorError::NotADirectory });
    }
    if !meta.exists() {
        let tmp = root.join(format!("{METADATA_DIR}.new-{}", random_hex()));
        create_private_dir(&tmp)?;
        for sub in ["staging", "bundles"] {
            create_private_dir(&tmp.join(sub))?;
        }
        fs::set_permissions(tmp.join("bundles"), fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(&tmp, e))?;
        write_new(&tmp.join("FORMAT"), MIRROR_FORMAT.as_bytes())?;
        write_new(&tmp.join("id"), id_file(MirrorId::random()).as_bytes())?;
        write_new(&tmp.join(log::LOG_HEAD), &log::Anchor::genesis().to_bytes())?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(&tmp, e))?;
        // Renamed into place whole, so a half-created metadata directory is never seen.
        match fs::rename(&tmp, meta) {
            Ok(()) => sync_dir(root)?,
            Err(_) if meta.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
            }
            Err(e) => return Err(Error::io(meta, e)),
        }
    }
    Ok(())
}

/// The metadata directory of the mirror at `root`, once it and every entry in it are what
/// they must be (plain directories and regular files, never links: see `plain`).
fn open_checked(root: &Path) -> Result<PathBuf> {
    let meta = root.join(METADATA_DIR);
    let is_mirror = plain::check(&meta, plain::Want::Dir)? && plain::check(&meta.join("FORMAT"), plain::Want::File)?;
    if !is_mirror {
        return Err(Error::Mirror { path: root.to_owned(), reason: MirrorError::NotAMirror });
    }
    plain::check_layout(&meta)?;
    Ok(meta)
}

/// The mirror layout version `.airlock/FORMAT` names (1 or 2); refuses any other.
fn check_format(meta: &Path) -> Result<u32> {
    let path = meta.join("FORMAT");
    let bytes = plain::read(&path)?.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    match &*text {
        MIRROR_FORMAT => Ok(2),
        MIRROR_FORMAT_V1 => Ok(1),
        _ => Err(Error::Mirror { path, reason: MirrorError::UnsupportedFormat { found: text.trim().to_owned() } }),
    }
}

/// `.airlock/id`'s content for `id`.
fn id_file(id: MirrorId) -> String {
    format!("{}\n", id.to_hex())
}

/// The mirror's id, if `.airlock/id` exists; refuses one that is not 32 hex digits.
fn read_id(meta: &Path) -> Result<Option<MirrorId>> {
    let path = meta.join("id");
    let Some(bytes) = plain::read(&path)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    match text.strip_suffix('\n').and_then(MirrorId::from_hex) {
        Some(id) => Ok(Some(id)),
        None => {
            let found: String = text.trim().chars().take(64).collect();
            Err(Error::Mirror { path, reason: MirrorError::BadId { found } })
        }
    }
}

/// Under the exclusive lock: gives a version-1 mirror an id (kept if a crash interrupted
/// an earlier upgrade after writing it) and then `FORMAT` 2, each durably. Returns the id.
fn upgrade(meta: &Path) -> Result<MirrorId> {
    if let (2, Some(id)) = (check_format(meta)?, read_id(meta)?) {
        return Ok(id);
    }
    let id = match read_id(meta)? {
        Some(id) => id,
        None => {
            let id = MirrorId::random();
            write_bytes(&meta.join("id"), 0o644, Overwrite::Replace, id_file(id).as_bytes())?;
            id
        }
    };
    write_bytes(&meta.join("FORMAT"), 0o644, Overwrite::Replace, MIRROR_FORMAT.as_bytes())?;
    Ok(id)
}

/// Takes the mirror's exclusive `flock(2)` (for whatever changes the mirror: import,
/// recovery, a writable `mirror verify`, which recovers) without waiting: a held lock is
/// reported as [`MirrorError::Locked`]. The lock is released when the returned file is
/// closed, or by the kernel when the process dies, so a crash never leaves it held.
/// Readers take a shared lock instead (`readonly.rs`).
fn lock_mirror(meta: &Path) -> Result<File> {
    let path = meta.join("lock");
    let file = plain::open(&path, OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => {
            Err(Error::Mirror { path: meta.parent().unwrap_or(meta).to_owned(), reason: MirrorError::Locked })
        }
        Err(e) => Err(Error::io(&path, e.into())),
    }
}

/// A random name part, so a staging directory never collides with one left behind.
fn random_hex() -> String {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("operating system random number generator failed");
    digest::hex(&b)
}
