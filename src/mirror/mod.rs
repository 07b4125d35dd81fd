//! The import side: a mirror directory and its metadata in `.airlock/`.
//!
//! An import is verified, staged and committed so that the mirror is only ever seen before
//! or after it: the protocol of docs/FORMAT.md §10, in six steps (take the lock and recover;
//! verify and pre-flight; stage; `syncfs`; the commit point; apply), is listed and
//! implemented in `protocol.rs`, each site tagged with its step number. The mirror layout is
//! FORMAT.md §9.
//!
//! - this module: [`Mirror::open`] (layout, `FORMAT`, the lock) and [`Mirror::import`], which
//!   verifies, checks freshness and runs the protocol;
//! - `protocol.rs`: pre-flight, commit point, apply, recovery (`CrashPoint`s for the crash
//!   tests with the `fault-injection` feature);
//! - `staging`: `StagingSink`, which writes the payload into the staging directory;
//! - `log.rs`: the hash-chained import log ([`LogRecord`], [`Event`], [`read_log`]);
//! - `audit.rs`: `mirror verify` ([`Mirror::audit`], [`AuditReport`]);
//! - `error.rs`: [`MirrorError`] and [`PlacementConflict`].

mod audit;
mod error;
mod log;
mod plain;
mod protocol;
pub(crate) mod staging;
mod volumes;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::clock;
use crate::error::{Error, Result};
use crate::format::path::METADATA_DIR;
use crate::io::digest::{self, Digest};
use crate::io::durable::sync_dir;
use crate::mirror::staging::StagingSink;
use crate::policy::Policy;
use crate::progress::Progress;
use crate::verify::{AuthenticHead, Bundle, BundleSource, GapPolicy, History, VerifiedBundle, VerifyOptions};

pub use audit::AuditReport;
pub use error::{Damage, KeptDisagreement, LogProblem, MirrorError, PlacementConflict};
pub use log::{read_log, BundleSummary, Event, LogRecord, MirrorState};
#[cfg(feature = "fault-injection")]
pub use protocol::CrashPoint;
#[cfg(not(feature = "fault-injection"))]
use protocol::CrashPoint;
use protocol::{create_private_dir, sync_filesystem, write_new, write_record_dir};

/// Content of `.airlock/FORMAT`.
pub const MIRROR_FORMAT: &str = "airlock-mirror 1\n";
pub use crate::verify::DEFAULT_CLOCK_SKEW;

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
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { gaps: GapPolicy::Refuse, clock_skew: DEFAULT_CLOCK_SKEW, now: clock::system_now() }
    }
}

/// What an import did.
#[derive(Debug)]
pub enum ImportOutcome {
    /// The bundle's files are now in the mirror.
    Imported {
        /// The log record appended.
        record: Box<LogRecord>,
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
    _lock: File,
    /// Where the crash tests stop the process, if anywhere.
    #[cfg(feature = "fault-injection")]
    crash_at: Option<CrashPoint>,
}

impl Mirror {
    /// Opens (creating if `create`) and locks a mirror, then finishes or discards any
    /// interrupted import.
    pub fn open(root: &Path, create: bool) -> Result<Mirror> {
        let mirror = Mirror::open_unrecovered(root, create)?;
        // FORMAT.md §10 step 1: recover.
        mirror.recover()?;
        Ok(mirror)
    }

    /// [`Mirror::open`] for the crash tests: the process aborts when it reaches `point`,
    /// in the recovery [`Mirror::open`] runs or in a later import.
    #[cfg(feature = "fault-injection")]
    pub fn open_with_crash_point(root: &Path, create: bool, point: CrashPoint) -> Result<Mirror> {
        let mut mirror = Mirror::open_unrecovered(root, create)?;
        mirror.crash_at = Some(point);
        // FORMAT.md §10 step 1: recover.
        mirror.recover()?;
        Ok(mirror)
    }

    /// FORMAT.md §10 step 1: checks the layout and takes the lock; recovery is the caller's.
    fn open_unrecovered(root: &Path, create: bool) -> Result<Mirror> {
        if create {
            create_layout(root, &root.join(METADATA_DIR))?;
        }
        let meta = open_checked(root)?;
        check_format(&meta)?;
        let lock = lock_mirror(&meta, LockMode::Exclusive)?;
        let mirror = Mirror {
            root: root.to_owned(),
            meta,
            _lock: lock,
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

    /// Verifies `bundle_path` against the trust `policy` (signers, revocations, maximum age,
    /// artifact rules) and the mirror's history, and imports it. Every failure after the
    /// mirror is opened is logged.
    /// The source may be a bundle file, standard input, or a volume set (§14): volumes of
    /// a set are gathered with those kept from earlier runs, and a set still too short is
    /// kept for the next run ([`ImportOutcome::VolumesMissing`]).
    pub fn import(
        &self,
        source: impl Into<BundleSource>,
        policy: &Policy,
        opts: &ImportOptions,
        progress: &dyn Progress,
    ) -> Result<ImportOutcome> {
        let source = source.into();
        let mut summary = None;
        let result = self.import_gathered(&source, policy, opts, progress, &mut summary);
        if let Err(err) = &result {
            // Past the commit point (`pending` written) the staged files belong to the
            // commit: recovery must find them to finish it, or the mirror stays mixed.
            if !plain::file_exists(&self.meta.join("pending")).unwrap_or(true) {
                self.remove_all_staging();
            }
            let event = if err.is_rejection() { Event::Rejected } else { Event::Failed };
            let record = LogRecord {
                prev: String::new(),
                time: opts.now,
                event,
                source: Some(source.describe()),
                bundle: summary,
                overrides: Vec::new(),
                artifacts: Vec::new(),
                reason: Some(err.to_string()),
            };
            // The import already failed; a failure to log it must not hide the reason.
            let _ = self.append_log(record);
        }
        result
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
        let history = History {
            last_import: state.channels,
            clock_floors: state.clock_floors,
            imported: state.imported.into_iter().collect(),
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
        self.preflight(verified.manifest())?;
        let (staging, artifacts) = self.stage(verified, progress)?;
        self.crash_point(CrashPoint::Staged);
        let record = LogRecord {
            prev: String::new(),
            time: opts.now,
            event: Event::Imported,
            source: Some(source.describe()),
            bundle: summary.clone(),
            overrides,
            artifacts,
            reason: None,
        };
        let record = self.commit(&staging, record)?;
        Ok(ImportOutcome::Imported { record: Box::new(record) })
    }

    /// Streams the payload into a fresh staging directory (checking it, and the artifact
    /// rules, in the same pass: §8 step 6) and makes it durable. Returns the staging
    /// directory and the artifact rules' notes.
    fn stage(&self, verified: VerifiedBundle<'_>, progress: &dyn Progress) -> Result<(PathBuf, Vec<String>)> {
        let manifest = verified.manifest();
        let name = format!("{}.{}", manifest.bundle_id.to_hex(), random_hex());
        let staging = self.meta.join("staging").join(&name);
        create_private_dir(&staging)?;
        write_record_dir(&staging.join("record"), verified.head())?;
        self.crash_point(CrashPoint::HeadStaged);
        let data = staging.join("data");
        create_private_dir(&data)?;
        progress.start("importing", manifest.total_size(), manifest.entries.len() as u64);
        let mut sink = StagingSink::new(data);
        let result = verified.stream_into(&mut sink, progress);
        progress.finish();
        let notes = result?;
        sink.finish()?;
        sync_filesystem(&staging)?;
        Ok((staging, notes))
    }
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

fn check_format(meta: &Path) -> Result<()> {
    let path = meta.join("FORMAT");
    let bytes = plain::read(&path)?.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    if text != MIRROR_FORMAT {
        return Err(Error::Mirror { path, reason: MirrorError::UnsupportedFormat { found: text.trim().to_owned() } });
    }
    Ok(())
}

/// How [`lock_mirror`] takes the mirror lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LockMode {
    /// For whatever changes the mirror (import, recovery, `mirror verify`, which recovers).
    Exclusive,
    /// For readers that change nothing (`mirror log`): they may run together, but not
    /// beside a writer.
    Shared,
}

/// Takes the mirror's `flock(2)` without waiting: a held lock is reported as
/// [`MirrorError::Locked`]. The lock is released when the returned file is closed, or by
/// the kernel when the process dies, so a crash never leaves it held.
fn lock_mirror(meta: &Path, mode: LockMode) -> Result<File> {
    let path = meta.join("lock");
    let file = match mode {
        LockMode::Exclusive => {
            plain::open(&path, OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644))
        }
        // A reader may not be allowed to write the mirror; flock needs only an open file.
        LockMode::Shared => plain::open(&path, OpenOptions::new().read(true)),
    }?;
    let operation = match mode {
        LockMode::Exclusive => rustix::fs::FlockOperation::NonBlockingLockExclusive,
        LockMode::Shared => rustix::fs::FlockOperation::NonBlockingLockShared,
    };
    match rustix::fs::flock(&file, operation) {
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
