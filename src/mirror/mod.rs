//! The import side: a mirror directory and its metadata in `.airlock/`.
//!
//! An import is verified, staged and committed so that the mirror is only ever seen before
//! or after it (docs/FORMAT.md §"Mirror layout" and §"Import protocol"):
//! 1. the head is verified and checked for freshness against the import log;
//! 2. the payload streams into `.airlock/staging/<name>/` (same filesystem), every member
//!    checked against the manifest; one `syncfs` makes it durable;
//! 3. `.airlock/pending` is written and synced: the commit point;
//! 4. staged files are renamed into place, the bundle's head is kept under
//!    `.airlock/bundles/<manifest-sha256>/`, a record is appended to the hash-chained log,
//!    and `pending` and the staging directory are removed.
//!
//! A crash before step 3 leaves only staging, which the next run discards; a crash after it
//! leaves `pending`, which the next run finishes. Rejections remove staging and append a
//! "rejected" record; the mirror's files are never touched before the commit point.

pub mod staging;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::error::{Error, Reject, Result};
use crate::format::manifest::{self, Entry, Manifest};
use crate::format::path::METADATA_DIR;
use crate::format::{signature_member, MANIFEST_MEMBER, SUMS_MEMBER};
use crate::io::digest::{self, Digest};
use crate::mirror::staging::StagingSink;
use crate::policy::Policy;
use crate::progress::Progress;
use crate::verify::{AuthenticHead, Bundle, GapPolicy, History, VerifiedBundle, VerifyOptions};

/// Content of `.airlock/FORMAT`.
pub const MIRROR_FORMAT: &str = "airlock-mirror 1\n";
pub use crate::verify::DEFAULT_CLOCK_SKEW;
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Whether a gap or a broken `previous` link in the channel rejects (or is accepted and
    /// logged).
    pub gaps: GapPolicy,
    /// Allowance for clock error when checking expiry, in seconds.
    pub clock_skew: u64,
    /// The time to check expiry and age against (Unix seconds); the mirror's clock floor
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
}

/// A bundle as recorded in the log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleSummary {
    /// SHA-256 of the manifest bytes (hex).
    pub manifest_sha256: String,
    /// Bundle id (hex).
    pub bundle_id: String,
    /// Channel.
    pub channel: String,
    /// Sequence.
    pub sequence: u64,
    /// Created (Unix seconds).
    pub created: u64,
    /// Expires (Unix seconds).
    pub expires: Option<u64>,
    /// Key ids of the trusted keys whose signatures verified.
    pub signers: Vec<String>,
    /// Number of entries.
    pub entries: u64,
    /// Payload bytes.
    pub bytes: u64,
}

/// One line of `.airlock/log`. Field order is the encoding order (docs/FORMAT.md).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// SHA-256 (hex) of the previous line, without its newline; 64 zeros for the first.
    pub prev: String,
    /// When (Unix seconds, the importing machine's clock).
    pub time: u64,
    /// `imported`, `rejected`, `failed` or `discarded`.
    pub event: String,
    /// The bundle file as given on the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The bundle, for `imported` (and `rejected` when its head verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleSummary>,
    /// Operator overrides in force (`allow-gap`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// What the artifact rules found on an `imported` bundle (signatures checked, ignored
    /// signature files), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
    /// Why, for `rejected`, `failed`, `discarded`, or a note on `imported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the log says about the mirror.
#[derive(Default, Debug)]
pub struct MirrorState {
    /// Per channel: last imported sequence and manifest digest.
    pub channels: BTreeMap<String, (u64, Digest)>,
    /// The newest `created` of any imported bundle: the clock floor.
    pub clock_floor: u64,
    /// Digests of every imported manifest, in import order.
    pub imported: Vec<Digest>,
    /// The digest of the last log line (the next record's `prev`).
    pub head: String,
    /// All records.
    pub records: Vec<LogRecord>,
}

/// The commit record: what `pending` holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pending {
    staging: String,
    record: LogRecord,
}

/// An open, locked mirror.
pub struct Mirror {
    root: PathBuf,
    meta: PathBuf,
    _lock: File,
}

impl Mirror {
    /// Opens (creating if `create`) and locks a mirror, then finishes or discards any
    /// interrupted import.
    pub fn open(root: &Path, create: bool) -> Result<Mirror> {
        let meta = root.join(METADATA_DIR);
        if create {
            create_layout(root, &meta)?;
        } else if !meta.join("FORMAT").is_file() {
            return Err(Error::Mirror {
                path: root.to_owned(),
                reason: "is not an airlock mirror (no .airlock/FORMAT)".into(),
            });
        }
        check_format(&meta)?;
        let lock = lock_mirror(&meta)?;
        let mirror = Mirror { root: root.to_owned(), meta, _lock: lock };
        mirror.recover()?;
        Ok(mirror)
    }

    /// The mirror root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Replays and checks the log.
    pub fn state(&self) -> Result<MirrorState> {
        read_state(&self.meta.join("log"))
    }

    /// Verifies `bundle_path` against the trust `policy` (signers, revocations, maximum age,
    /// artifact rules) and the mirror's history, and imports it. Every failure after the
    /// mirror is opened is logged.
    pub fn import(
        &self,
        bundle_path: &Path,
        policy: &Policy,
        opts: &ImportOptions,
        progress: &dyn Progress,
    ) -> Result<ImportOutcome> {
        let mut summary = None;
        let result = self.import_inner(bundle_path, policy, opts, progress, &mut summary);
        if let Err(err) = &result {
            // Past the commit point (`pending` written) the staged files belong to the
            // commit: recovery must find them to finish it, or the mirror stays mixed.
            if !self.meta.join("pending").exists() {
                self.remove_all_staging();
            }
            let event = if err.is_rejection() { "rejected" } else { "failed" };
            let record = LogRecord {
                prev: String::new(),
                time: opts.now,
                event: event.into(),
                source: Some(bundle_path.display().to_string()),
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
        bundle_path: &Path,
        policy: &Policy,
        opts: &ImportOptions,
        progress: &dyn Progress,
        summary: &mut Option<BundleSummary>,
    ) -> Result<ImportOutcome> {
        let bundle = Bundle::open(bundle_path)?;
        let state = self.state()?;
        let history = History {
            last_import: state.channels,
            clock_floor: state.clock_floor,
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
        crash_point("staged");
        let record = LogRecord {
            prev: String::new(),
            time: opts.now,
            event: "imported".into(),
            source: Some(bundle_path.display().to_string()),
            bundle: summary.clone(),
            overrides,
            artifacts,
            reason: None,
        };
        let record = self.commit(&staging, record)?;
        Ok(ImportOutcome::Imported { record: Box::new(record) })
    }

    /// Refuses an import that cannot be placed: a file, symlink or other non-directory
    /// where a directory is needed, or a directory or symlink where a file goes. Also
    /// checks free space.
    fn preflight(&self, manifest: &Manifest) -> Result<()> {
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
                    Ok(_) => {
                        return Err(conflict(
                            entry,
                            &format!("the mirror has a file or link at {dir:?} where a directory is needed"),
                        ))
                    }
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
            match fs::symlink_metadata(self.root.join(entry.path.as_str())) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(conflict(entry, "the mirror has a directory or link where this file goes")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(self.root.join(entry.path.as_str()), e)),
            }
        }
        check_free_space(&self.meta, manifest.total_size())
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
        crash_point("head-staged");
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

    /// Writes the commit point, then applies it.
    fn commit(&self, staging: &Path, record: LogRecord) -> Result<LogRecord> {
        let name = staging.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let pending = Pending { staging: name, record };
        let text =
            serde_json::to_vec(&pending).map_err(|e| Error::io(self.meta.join("pending"), io::Error::other(e)))?;
        write_durably(&self.meta, "pending", &text)?;
        crash_point("committed");
        self.apply(&pending)
    }

    /// Moves staged files into place, keeps the head, logs, and clears `pending`.
    /// Idempotent, so recovery can run it again after a crash at any point.
    /// Returns the import's log record (as appended now, or as found from an earlier run).
    fn apply(&self, pending: &Pending) -> Result<LogRecord> {
        let staging = self.meta.join("staging").join(&pending.staging);
        let summary = pending.record.bundle.as_ref().ok_or_else(|| self.damaged("pending record names no bundle"))?;
        let kept = self.meta.join("bundles").join(&summary.manifest_sha256);
        let record_dir = if kept.is_dir() { kept.clone() } else { staging.join("record") };
        // The kept manifest must be intact before anything moves: it is what `mirror verify`
        // will hold the files to. Its digest is the signed manifest's (recorded in `pending`
        // after verification), so matching bytes need no second decoding.
        read_kept_manifest_bytes(&record_dir, &summary.manifest_sha256)?;
        self.move_tree(&staging.join("data"), &self.root)?;
        crash_point("files-moved");
        if !kept.is_dir() {
            fs::rename(staging.join("record"), &kept).map_err(|e| Error::io(&kept, e))?;
        }
        sync_filesystem(&self.root)?;
        crash_point("record-kept");
        Digest::from_hex(&summary.manifest_sha256).ok_or_else(|| self.damaged("bad digest in pending"))?;
        // One read of the log serves both the "already logged?" check and the chain head.
        let state = self.state()?;
        let already = state.records.iter().rev().find(|r| {
            r.event == "imported" && r.bundle.as_ref().is_some_and(|b| b.manifest_sha256 == summary.manifest_sha256)
        });
        let record = match already {
            Some(r) => r.clone(),
            None => self.append_log_line(pending.record.clone(), state.head)?,
        };
        crash_point("logged");
        remove_if_exists(&self.meta.join("pending"))?;
        crash_point("pending-removed");
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
                Ok(_) => {
                    return Err(self.damaged(&format!("{} changed type after the import was checked", dst.display())))
                }
                Err(e) => return Err(Error::io(&dst, e)),
            }
            crash_point("file-moved");
        }
        Ok(())
    }

    /// Finishes a committed import or discards an uncommitted one.
    fn recover(&self) -> Result<()> {
        remove_if_exists(&self.meta.join("pending.tmp"))?;
        let pending_path = self.meta.join("pending");
        if pending_path.exists() {
            let text = fs::read(&pending_path).map_err(|e| Error::io(&pending_path, e))?;
            let mut pending: Pending = serde_json::from_slice(&text)
                .map_err(|e| self.damaged(&format!("pending commit record unreadable: {e}")))?;
            pending.record.reason = Some("completed by recovery after an interrupted import".into());
            self.apply(&pending)?;
        }
        for name in self.staging_names()? {
            remove_dir_if_exists(&self.meta.join("staging").join(&name))?;
            self.append_log(LogRecord {
                prev: String::new(),
                time: clock::system_now(),
                event: "discarded".into(),
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

    fn remove_all_staging(&self) {
        if let Ok(names) = self.staging_names() {
            for name in names {
                let _ = fs::remove_dir_all(self.meta.join("staging").join(name));
            }
        }
    }

    /// Appends a record, chaining it to the last line, and syncs the log.
    fn append_log(&self, record: LogRecord) -> Result<LogRecord> {
        let head = read_state(&self.meta.join("log"))?.head;
        self.append_log_line(record, head)
    }

    /// Appends `record` chained to `prev` (the digest of the log's last line) and syncs.
    fn append_log_line(&self, mut record: LogRecord, prev: String) -> Result<LogRecord> {
        let path = self.meta.join("log");
        record.prev = prev;
        let mut line = serde_json::to_vec(&record).map_err(|e| Error::io(&path, io::Error::other(e)))?;
        line.push(b'\n');
        let mut file =
            OpenOptions::new().append(true).create(true).mode(0o644).open(&path).map_err(|e| Error::io(&path, e))?;
        file.write_all(&line).map_err(|e| Error::io(&path, e))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        Ok(record)
    }

    fn damaged(&self, what: &str) -> Error {
        Error::Mirror { path: self.root.clone(), reason: format!("metadata is damaged: {what}") }
    }

    /// Re-checks every file against the manifests that put it there.
    pub fn verify(&self, progress: &dyn Progress) -> Result<VerifyReport> {
        let state = self.state()?;
        let mut expected: BTreeMap<String, Entry> = BTreeMap::new();
        let mut report = VerifyReport::default();
        for digest in &state.imported {
            let dir = self.meta.join("bundles").join(digest.to_hex());
            match read_kept_manifest(&dir, &digest.to_hex()) {
                Ok(m) => {
                    for e in m.entries {
                        expected.insert(e.path.as_str().to_owned(), e);
                    }
                }
                Err(e) => report.damaged.push(format!("kept manifest {}: {e}", digest.to_hex())),
            }
        }
        let total = expected.values().map(|e| e.size).sum();
        progress.start("checking", total, expected.len() as u64);
        let mut seen = BTreeSet::new();
        for item in walkdir::WalkDir::new(&self.root)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !(e.depth() == 1 && e.file_name() == METADATA_DIR))
        {
            let item = item.map_err(|e| {
                Error::io(&self.root, e.into_io_error().unwrap_or_else(|| io::Error::other("walk failed")))
            })?;
            if item.file_type().is_dir() {
                continue;
            }
            let rel = item.path().strip_prefix(&self.root).unwrap_or(item.path()).to_string_lossy().into_owned();
            let Some(entry) = expected.get(&rel) else {
                report.unknown.push(rel);
                continue;
            };
            seen.insert(rel.clone());
            if let Some(problem) = check_file(item.path(), entry, progress)? {
                report.modified.push(format!("{rel}: {problem}"));
            }
        }
        report.missing = expected.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        report.files = expected.len() as u64;
        progress.finish();
        Ok(report)
    }
}

/// The outcome of `mirror verify`.
#[derive(Default, Debug)]
pub struct VerifyReport {
    /// Files recorded by imports.
    pub files: u64,
    /// Recorded but absent.
    pub missing: Vec<String>,
    /// Present but different (with what differs).
    pub modified: Vec<String>,
    /// Present but recorded by no import.
    pub unknown: Vec<String>,
    /// Problems with airlock's own records.
    pub damaged: Vec<String>,
}

impl VerifyReport {
    /// True when the mirror is exactly what its imports recorded.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.modified.is_empty() && self.unknown.is_empty() && self.damaged.is_empty()
    }
}

fn check_file(path: &Path, entry: &Entry, progress: &dyn Progress) -> Result<Option<String>> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Ok(Some("not a regular file".into()));
    }
    if meta.len() != entry.size {
        return Ok(Some(format!("size {} but recorded {}", meta.len(), entry.size)));
    }
    if meta.permissions().mode() & 0o7777 != entry.mode.bits() {
        return Ok(Some(format!("mode {:o} but recorded {:o}", meta.permissions().mode() & 0o7777, entry.mode.bits())));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let (actual, _) = digest::hash_reader(file).map_err(|e| Error::io(path, e))?;
    progress.add_bytes(entry.size);
    progress.add_file();
    if actual != entry.sha256 {
        return Ok(Some(format!("SHA-256 {actual} but recorded {}", entry.sha256)));
    }
    Ok(None)
}

fn conflict(entry: &Entry, reason: &str) -> Error {
    Error::Rejected(Reject::Conflict { path: entry.path.to_string(), reason: reason.to_owned() })
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

/// Reads and checks the log: every line must parse and chain to the one before.
pub fn read_state(log: &Path) -> Result<MirrorState> {
    let mut state = MirrorState { head: GENESIS.into(), ..MirrorState::default() };
    let file = match File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(state),
        Err(e) => return Err(Error::io(log, e)),
    };
    let damaged =
        |n: usize, what: String| Error::Mirror { path: log.to_owned(), reason: format!("import log line {n}: {what}") };
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| Error::io(log, e))?;
        let record: LogRecord =
            serde_json::from_slice(&line).map_err(|e| damaged(i + 1, format!("unreadable ({e})")))?;
        if record.prev != state.head {
            return Err(damaged(
                i + 1,
                "does not chain to the line before it (the log was edited or truncated)".into(),
            ));
        }
        state.head = Digest::of(&line).to_hex();
        if record.event == "imported" {
            let b = record.bundle.as_ref().ok_or_else(|| damaged(i + 1, "import without bundle".into()))?;
            let d = Digest::from_hex(&b.manifest_sha256).ok_or_else(|| damaged(i + 1, "bad manifest digest".into()))?;
            state.channels.insert(b.channel.clone(), (b.sequence, d));
            state.clock_floor = state.clock_floor.max(b.created);
            state.imported.push(d);
        }
        state.records.push(record);
    }
    Ok(state)
}

fn read_kept_manifest(dir: &Path, digest_hex: &str) -> Result<Manifest> {
    let bytes = read_kept_manifest_bytes(dir, digest_hex)?;
    let path = dir.join("manifest.cbor");
    manifest::decode(&bytes).map_err(|e| Error::Mirror { path, reason: format!("kept manifest: {e}") })
}

/// The kept manifest's bytes, checked against the digest recorded for them.
fn read_kept_manifest_bytes(dir: &Path, digest_hex: &str) -> Result<Vec<u8>> {
    let path = dir.join("manifest.cbor");
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    if Digest::of(&bytes).to_hex() != digest_hex {
        return Err(Error::Mirror { path, reason: "kept manifest does not match its recorded digest".into() });
    }
    Ok(bytes)
}

/// Keeps the bundle head so auditors can re-check it with stock tools: the manifest, its
/// signatures and the checksum list, under the member names without `airlock/`.
fn write_record_dir(dir: &Path, head: &crate::verify::Head) -> Result<()> {
    create_private_dir(dir)?;
    create_private_dir(&dir.join("signatures"))?;
    let strip = |name: &str| name.trim_start_matches("airlock/").to_owned();
    write_file(&dir.join(strip(MANIFEST_MEMBER)), &head.manifest_bytes)?;
    for sig in &head.signatures {
        write_file(&dir.join(strip(&signature_member(sig.key_id()))), sig.to_file_string().as_bytes())?;
    }
    write_file(&dir.join(strip(SUMS_MEMBER)), &head.sums)?;
    // The record dirs are read by auditors: make them world-readable like the mirror.
    for d in [dir.to_owned(), dir.join("signatures")] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(&d, e))?;
    }
    Ok(())
}

fn create_layout(root: &Path, meta: &Path) -> Result<()> {
    match fs::create_dir(root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(root, e)),
    }
    let root_meta = fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
    if !root_meta.is_dir() {
        return Err(Error::Mirror { path: root.to_owned(), reason: "is not a directory".into() });
    }
    if !meta.exists() {
        let tmp = root.join(format!("{METADATA_DIR}.new-{}", random_hex()));
        create_private_dir(&tmp)?;
        for sub in ["staging", "bundles"] {
            create_private_dir(&tmp.join(sub))?;
        }
        fs::set_permissions(tmp.join("bundles"), fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(&tmp, e))?;
        write_file(&tmp.join("FORMAT"), MIRROR_FORMAT.as_bytes())?;
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

fn check_format(meta: &Path) -> Result<()> {
    let path = meta.join("FORMAT");
    let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    if text != MIRROR_FORMAT {
        return Err(Error::Mirror { path, reason: format!("unsupported mirror format {:?}", text.trim()) });
    }
    Ok(())
}

fn lock_mirror(meta: &Path) -> Result<File> {
    let path = meta.join("lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Mirror {
            path: meta.parent().unwrap_or(meta).to_owned(),
            reason: "another airlock process is using this mirror (lock held on .airlock/lock); try again when it has finished".into(),
        }),
        Err(e) => Err(Error::io(&path, e.into())),
    }
}

fn check_free_space(dir: &Path, need: u64) -> Result<()> {
    let st = rustix::fs::statvfs(dir).map_err(|e| Error::io(dir, e.into()))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < need {
        return Err(Error::Mirror {
            path: dir.to_owned(),
            reason: format!("not enough free space: the bundle needs {need} bytes, the filesystem has {free}"),
        });
    }
    Ok(())
}

/// One `syncfs` makes every staged file durable at once: far cheaper than an fsync per file
/// for many small files, with the same guarantee at the commit point.
fn sync_filesystem(any_path: &Path) -> Result<()> {
    let dir = File::open(any_path).map_err(|e| Error::io(any_path, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| Error::io(any_path, e.into()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Writes `name` in `dir` via a temporary file, fsync and rename, then syncs `dir`.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, dir.join(name)).map_err(|e| Error::io(dir.join(name), e))?;
    sync_dir(dir)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(0o644).open(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.set_permissions(fs::Permissions::from_mode(0o644)).map_err(|e| Error::io(path, e))
}

fn create_private_dir(path: &Path) -> Result<()> {
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

/// Test hook for tests/it/crash.rs, inert unless the environment variable
/// `AIRLOCK_TEST_CRASH_AT` names `stage`: then the process aborts right there, as a power
/// cut or `kill -9` would stop it, so the crash tests can interrupt an import at every
/// stage boundary (`head-staged`, `staged`, `committed`, `file-moved` (after the first
/// file), `files-moved`, `record-kept`, `logged`, `pending-removed`) and check recovery.
fn crash_point(stage: &str) {
    if std::env::var_os("AIRLOCK_TEST_CRASH_AT").is_some_and(|v| v == stage) {
        std::process::abort();
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("operating system random number generator failed");
    digest::hex(&b)
}
