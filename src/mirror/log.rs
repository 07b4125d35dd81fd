//! The import log `.airlock/log` (docs/FORMAT.md §9): JSON Lines, each record chained to
//! the line before it by its SHA-256, appended and fsynced one record at a time, and its
//! anchor `.airlock/log-head` (the count and digest of the last record, rewritten durably
//! after each append), which a removed or edited last record contradicts. The mirror's
//! history (per channel the last sequence and manifest, and the clock floor) is derived
//! from the log by `read_log_file`, which also holds the records that history is derived
//! from to the manifests kept for them under `.airlock/bundles/`.
//!
//! The crash window between an append and the anchor's rewrite leaves the anchor exactly
//! one record behind, naming the line before the last: that is accepted (and the anchor
//! moved forward under the lock), while a log shorter than its anchor, or one whose record
//! at the anchored position hashes differently, is refused. A torn last append (bytes
//! after the anchored records that are not a whole record) is cut off under the lock.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{KeptDisagreement, LogProblem};
use super::plain::{self, Want};
use super::protocol::{in_flight_digest, read_kept_manifest};
use super::readonly::shared_lock;
use super::recover_log::{check_sealed, Recovery};
use super::{check_format, open_checked, Mirror, MirrorError};
use crate::error::{Error, Result};
use crate::io::digest::Digest;
use crate::io::durable::{sync_dir, write_bytes, Overwrite};

/// The log's anchor in `.airlock/`.
pub(super) const LOG_HEAD: &str = "log-head";

/// The `prev` of the first record.
pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a log record records (docs/FORMAT.md §9).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// The bundle's files are in the mirror.
    Imported,
    /// The bundle failed verification; nothing was imported.
    Rejected,
    /// An operational error stopped the import; nothing was imported.
    Failed,
    /// An interrupted, uncommitted import was cleaned up.
    Discarded,
    /// Damaged files were restored from a bundle (`import --repair`).
    Repaired,
    /// The first record of a new chain: a damaged log was sealed aside by `mirror
    /// recover-log` (its digest is this record's `prev`; see `recover_log.rs`).
    Recovered,
}

impl Event {
    /// The name written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Imported => "imported",
            Event::Rejected => "rejected",
            Event::Failed => "failed",
            Event::Discarded => "discarded",
            Event::Repaired => "repaired",
            Event::Recovered => "recovered",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`, so width and alignment flags apply.
        f.pad(self.as_str())
    }
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

/// One line of `.airlock/log`. Field order is the encoding order (docs/FORMAT.md §9).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// SHA-256 (hex) of the previous line, without its newline; 64 zeros for the first.
    pub prev: String,
    /// When (Unix seconds, the importing machine's clock).
    pub time: u64,
    /// What happened.
    pub event: Event,
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
    /// On `imported`: what changed in the channel (added, changed, removed, unchanged) and
    /// how many bytes the import wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<super::Changes>,
    /// On `imported`: the channel's files its complete manifest no longer lists, retired in
    /// the same commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    /// On `imported` with retired files kept: their directory under `.airlock/attic/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attic: Option<String>,
    /// On `repaired`: the files restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
    /// On `recovered`: the sealed log and the imports the new chain carries on from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Box<Recovery>>,
}

impl LogRecord {
    /// A record of `event` at `time` with every optional key empty (`prev` is set when it
    /// is appended).
    pub fn new(time: u64, event: Event) -> LogRecord {
        LogRecord {
            prev: String::new(),
            time,
            event,
            source: None,
            bundle: None,
            overrides: Vec::new(),
            artifacts: Vec::new(),
            reason: None,
            changes: None,
            retired: Vec::new(),
            attic: None,
            repaired: Vec::new(),
            recovery: None,
        }
    }
}

/// What the log says about the mirror.
#[derive(Default, Debug)]
pub struct MirrorState {
    /// Per channel: last imported sequence and manifest digest.
    pub channels: BTreeMap<String, (u64, Digest)>,
    /// Per channel: the newest `created` of its imported bundles (its clock floor).
    pub clock_floors: BTreeMap<String, u64>,
    /// Digests of every imported manifest, in import order.
    pub imported: Vec<Digest>,
    /// The digest of the last log line (the next record's `prev`).
    pub head: String,
    /// All records.
    pub records: Vec<LogRecord>,
}

impl MirrorState {
    /// Every import the log records, in log order, with the line that records it: the
    /// `imported` records, and the imports a `recovered` record restates.
    pub fn imports(&self) -> impl Iterator<Item = (usize, &BundleSummary)> {
        self.records
            .iter()
            .enumerate()
            .flat_map(|(i, r)| record_imports(r).unwrap_or_default().iter().map(move |b| (i + 1, b)))
    }
}

/// `.airlock/log-head`: how many records the log has and the digest of the last one
/// (GENESIS for none). One JSON line.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(super) struct Anchor {
    /// Complete records in the log.
    pub(super) records: u64,
    /// SHA-256 (hex) of the last record's line, without its newline.
    pub(super) head: String,
}

impl Anchor {
    /// The anchor of an empty log.
    pub(super) fn genesis() -> Anchor {
        Anchor { records: 0, head: GENESIS.into() }
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// How the log's end relates to its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// The anchor names the last record.
    Anchored,
    /// The anchor names the record before the last: a crash came between an append and the
    /// anchor's rewrite.
    OneBehind,
    /// There is no anchor: a mirror made before anchors existed.
    Unanchored,
}

/// What must be mended at the log's end (under the lock) after a crash during an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mend {
    /// The last record lacks its newline: add it.
    AddNewline,
    /// A torn append follows the anchored records: cut the log back to this length.
    Truncate(u64),
}

/// The log as read, with what its end needs.
struct LogRead {
    state: MirrorState,
    tail: Tail,
    mend: Option<Mend>,
}

/// Reads the log of the mirror at `root`, under a shared lock (`readonly.rs`: none where
/// the mirror has no lock file): it waits for no one, but refuses (with
/// [`MirrorError::Locked`]) while an import or `mirror verify` holds the mirror, so it
/// never sees a record half appended. Changes nothing, so it works on a mirror the caller
/// can only read (an anchor one behind, or a torn last append, is mended by the next
/// import or `mirror verify`).
pub fn read_log(root: &Path) -> Result<MirrorState> {
    let meta = open_checked(root)?;
    check_format(&meta)?;
    let _shared = shared_lock(&meta)?;
    Ok(read_log_file(&meta)?.state)
}

/// Reads and checks the log: every line must parse and chain to the one before, its end
/// must agree with the anchor, imports must be consistent, and the kept heads must agree
/// with the records. The caller holds the mirror lock.
fn read_log_file(meta: &Path) -> Result<LogRead> {
    let log = meta.join("log");
    let mut state = MirrorState { head: GENESIS.into(), ..MirrorState::default() };
    let damaged =
        |n: usize, problem| Error::Mirror { path: log.clone(), reason: MirrorError::Log { line: n, problem } };
    // Per import: its line number and bundle, for the cross-check against the kept heads.
    let mut imports: Vec<(usize, BundleSummary)> = Vec::new();
    let mut before_last = GENESIS.to_owned();
    let mut complete_len = 0u64;
    let mut unterminated = false;
    let mut torn = None;
    if plain::check(&log, Want::File)? {
        let file = plain::open(&log, OpenOptions::new().read(true))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut seen = HashSet::new();
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(|e| Error::io(&log, e))?;
            if read == 0 {
                break;
            }
            let n = state.records.len() + 1;
            let terminated = line.last() == Some(&b'\n');
            let body = if terminated { &line[..line.len() - 1] } else { &line[..] };
            let record: LogRecord = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) if !terminated => {
                    torn = Some(damaged(n, LogProblem::Unreadable(e)));
                    break;
                }
                Err(e) => return Err(damaged(n, LogProblem::Unreadable(e))),
            };
            check_link(meta, n, &record, &state.head).map_err(|p| damaged(n, p))?;
            before_last = std::mem::replace(&mut state.head, Digest::of(body).to_hex());
            for b in record_imports(&record).map_err(|p| damaged(n, p))? {
                replay_import(&mut state, b, &mut seen).map_err(|p| damaged(n, p))?;
                imports.push((n, b.clone()));
            }
            state.records.push(record);
            complete_len += read as u64;
            unterminated = !terminated;
        }
    }
    let tail = check_anchor(meta, &state, &before_last)?;
    let mend = match torn {
        // Only a torn append after the anchored records is a crash's leftover.
        Some(_) if tail == Tail::Anchored => Some(Mend::Truncate(complete_len)),
        Some(error) => return Err(error),
        None if unterminated => Some(Mend::AddNewline),
        None => None,
    };
    check_kept_heads(meta, &imports, &log)?;
    Ok(LogRead { state, tail, mend })
}

/// Checks how record number `n` links to the log before it, whose last line hashes to
/// `head`: by `prev`, or, for the `recovered` record that starts a new chain, by the digest
/// of the log it sealed.
pub(super) fn check_link(meta: &Path, n: usize, record: &LogRecord, head: &str) -> Result<(), LogProblem> {
    match record.event {
        Event::Recovered if n == 1 => check_sealed(meta, record),
        Event::Recovered => Err(LogProblem::RecoveredNotFirst),
        _ if record.prev != head => Err(LogProblem::BrokenChain),
        _ => Ok(()),
    }
}

/// The imports a record adds to the mirror's history: an `imported` record's bundle, or
/// those a `recovered` record restates. An `imported` record without a bundle is refused.
pub(super) fn record_imports(record: &LogRecord) -> Result<&[BundleSummary], LogProblem> {
    match (record.event, &record.bundle, &record.recovery) {
        (Event::Imported, Some(b), _) => Ok(std::slice::from_ref(b)),
        (Event::Imported, None, _) => Err(LogProblem::ImportWithoutBundle),
        (Event::Recovered, _, Some(r)) => Ok(&r.restated),
        _ => Ok(&[]),
    }
}

/// Adds an import to the state, refusing what no import can have logged.
pub(super) fn replay_import(
    state: &mut MirrorState,
    b: &BundleSummary,
    seen: &mut HashSet<Digest>,
) -> Result<(), LogProblem> {
    let d = Digest::from_hex(&b.manifest_sha256).ok_or(LogProblem::BadManifestDigest)?;
    if !seen.insert(d) {
        return Err(LogProblem::DuplicateImport(b.manifest_sha256.clone()));
    }
    if let Some(&(last, _)) = state.channels.get(&b.channel) {
        if b.sequence <= last {
            return Err(LogProblem::SequenceNotNewer { channel: b.channel.clone(), sequence: b.sequence, last });
        }
    }
    state.channels.insert(b.channel.clone(), (b.sequence, d));
    let floor = state.clock_floors.entry(b.channel.clone()).or_default();
    *floor = (*floor).max(b.created);
    state.imported.push(d);
    Ok(())
}

/// How the log's end relates to `.airlock/log-head`; refuses a log that ends before its
/// anchor or differs from it at the anchored record.
fn check_anchor(meta: &Path, state: &MirrorState, before_last: &str) -> Result<Tail> {
    let path = meta.join(LOG_HEAD);
    let Some(bytes) = plain::read(&path)? else {
        return Ok(Tail::Unanchored);
    };
    let anchor: Anchor = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Mirror { path: path.clone(), reason: MirrorError::LogHeadUnreadable(e.to_string()) })?;
    let records = state.records.len() as u64;
    if anchor.records == records && anchor.head == state.head {
        Ok(Tail::Anchored)
    } else if anchor.records.checked_add(1) == Some(records) && anchor.head == before_last {
        Ok(Tail::OneBehind)
    } else {
        Err(Error::Mirror {
            path: meta.join("log"),
            reason: MirrorError::LogHeadMismatch {
                records,
                head: state.head.clone(),
                anchored: anchor.records,
                anchored_head: anchor.head,
            },
        })
    }
}

/// Holds the log to the kept heads: every directory under `.airlock/bundles/` must be named
/// by an `imported` record (or be the import `pending` is committing), every `imported`
/// record must have one, and the records the state is derived from (per channel the last
/// import and the one that set the clock floor) must agree with their kept manifests.
/// (`mirror verify` checks every record's.)
pub(super) fn check_kept_heads(meta: &Path, imports: &[(usize, BundleSummary)], log: &Path) -> Result<()> {
    let bundles = meta.join("bundles");
    let mut kept = BTreeSet::new();
    if plain::check(&bundles, Want::Dir)? {
        for item in fs::read_dir(&bundles).map_err(|e| Error::io(&bundles, e))? {
            let item = item.map_err(|e| Error::io(&bundles, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            plain::check(&bundles.join(&name), Want::Dir)?;
            kept.insert(name);
        }
    }
    let in_flight = in_flight_digest(meta);
    let logged: BTreeSet<&str> = imports.iter().map(|(_, b)| b.manifest_sha256.as_str()).collect();
    if let Some(name) = kept.iter().find(|k| !logged.contains(k.as_str()) && Some(*k) != in_flight.as_ref()) {
        return Err(Error::Mirror {
            path: bundles.join(name),
            reason: MirrorError::UnloggedKeptHead { name: name.clone() },
        });
    }
    let mut deciding: BTreeMap<&str, (usize, &BundleSummary)> = BTreeMap::new();
    let mut floor_setters: BTreeMap<&str, (usize, &BundleSummary)> = BTreeMap::new();
    for (line, b) in imports {
        let line = *line;
        if !kept.contains(&b.manifest_sha256) {
            let missing = Error::io(bundles.join(&b.manifest_sha256), io::ErrorKind::NotFound.into());
            return Err(log_problem(log, line, LogProblem::KeptHeadUnusable(Box::new(missing))));
        }
        deciding.insert(&b.channel, (line, b));
        let setter = floor_setters.entry(&b.channel).or_insert((line, b));
        if b.created > setter.1.created {
            *setter = (line, b);
        }
    }
    for (line, b) in deciding.values().chain(floor_setters.values()) {
        check_against_kept(meta, b).map_err(|p| log_problem(log, *line, p))?;
    }
    Ok(())
}

fn log_problem(log: &Path, line: usize, problem: LogProblem) -> Error {
    Error::Mirror { path: log.to_owned(), reason: MirrorError::Log { line, problem } }
}

/// Holds an `imported` record's bundle summary to the manifest kept for it.
pub(super) fn check_against_kept(meta: &Path, b: &BundleSummary) -> Result<(), LogProblem> {
    let dir = meta.join("bundles").join(&b.manifest_sha256);
    let m = read_kept_manifest(&dir, &b.manifest_sha256).map_err(|e| LogProblem::KeptHeadUnusable(Box::new(e)))?;
    let fields: [(&'static str, String, String); 5] = [
        ("bundle_id", b.bundle_id.clone(), m.bundle_id.to_hex()),
        ("channel", format!("{:?}", b.channel), format!("{:?}", m.channel)),
        ("sequence", b.sequence.to_string(), m.sequence.to_string()),
        ("created", b.created.to_string(), m.created.to_string()),
        ("expires", format!("{:?}", b.expires), format!("{:?}", m.expires)),
    ];
    match fields.into_iter().find(|(_, recorded, kept)| recorded != kept) {
        Some((field, recorded, kept)) => Err(LogProblem::DisagreesWithKeptHead(Box::new(KeptDisagreement {
            digest: b.manifest_sha256.clone(),
            field,
            recorded,
            kept,
        }))),
        None => Ok(()),
    }
}

/// For a read-only check, which mends nothing: what a crash during an append left at the
/// log's end, in words (the next writable opening mends it), if anything.
pub(super) fn unmended_tail(meta: &Path) -> Result<Option<&'static str>> {
    let read = read_log_file(meta)?;
    Ok(match (read.mend, read.tail) {
        (Some(Mend::Truncate(_)), _) => Some(
            "the log ends in a torn append (bytes after its last whole record): an import or recovery was \
             interrupted while logging; the next writable opening cuts them off",
        ),
        (Some(Mend::AddNewline), _) => {
            Some("the log's last record lacks its newline; the next writable opening adds it")
        }
        (None, Tail::OneBehind) => Some(
            "the log's last record is not yet anchored in .airlock/log-head (an import or recovery was \
             interrupted right after logging); the next writable opening anchors it",
        ),
        (None, Tail::Unanchored) => Some(
            "the log has no anchor (.airlock/log-head): the mirror was made before anchors; the next writable \
             opening anchors it",
        ),
        (None, Tail::Anchored) => None,
    })
}

impl Mirror {
    /// Replays and checks the log (and holds it to its anchor and the kept heads). Under
    /// the lock this also mends what a crash during an append left: a torn last append is
    /// cut off, a missing newline added, and the anchor moved up to the last record (or
    /// created, for a mirror made before anchors existed).
    pub fn state(&self) -> Result<MirrorState> {
        let read = read_log_file(&self.meta)?;
        // A read-only opening mends nothing: `mirror verify` reports the end instead.
        if self.read_only.is_some() {
            return Ok(read.state);
        }
        let log = self.meta.join("log");
        match read.mend {
            Some(Mend::Truncate(len)) => {
                let file = plain::open(&log, OpenOptions::new().write(true))?;
                file.set_len(len).map_err(|e| Error::io(&log, e))?;
                file.sync_all().map_err(|e| Error::io(&log, e))?;
            }
            Some(Mend::AddNewline) => {
                let mut file = self.open_log_for_append()?;
                file.write_all(b"\n").map_err(|e| Error::io(&log, e))?;
                file.sync_all().map_err(|e| Error::io(&log, e))?;
            }
            None => {}
        }
        if read.tail != Tail::Anchored {
            self.write_anchor(&read.state)?;
        }
        Ok(read.state)
    }

    /// Appends a record, chaining it to the last line, and syncs the log.
    pub(super) fn append_log(&self, record: LogRecord) -> Result<LogRecord> {
        let state = self.state()?;
        self.append_log_line(record, &state)
    }

    /// Appends `record` after the log whose state is `state` and syncs it (the first
    /// record also syncs `.airlock/`, which then has a new name in it); then rewrites the
    /// anchor durably.
    pub(super) fn append_log_line(&self, mut record: LogRecord, state: &MirrorState) -> Result<LogRecord> {
        self.check_writable()?;
        let path = self.meta.join("log");
        record.prev = state.head.clone();
        let mut line = serde_json::to_vec(&record).map_err(|e| Error::io(&path, io::Error::other(e)))?;
        let head = Digest::of(&line).to_hex();
        line.push(b'\n');
        let mut file = self.open_log_for_append()?;
        let created = file.metadata().map_err(|e| Error::io(&path, e))?.len() == 0;
        file.write_all(&line).map_err(|e| Error::io(&path, e))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        if created {
            sync_dir(&self.meta)?;
        }
        self.crash_point(super::CrashPoint::LogAppended);
        let anchor = Anchor { records: state.records.len() as u64 + 1, head };
        write_bytes(&self.meta.join(LOG_HEAD), 0o644, Overwrite::Replace, &anchor.to_bytes())?;
        Ok(record)
    }

    /// Rewrites the anchor to name the last record of `state`.
    fn write_anchor(&self, state: &MirrorState) -> Result<()> {
        let anchor = Anchor { records: state.records.len() as u64, head: state.head.clone() };
        write_bytes(&self.meta.join(LOG_HEAD), 0o644, Overwrite::Replace, &anchor.to_bytes())
    }

    /// Opens the log to append, never through a link. A log that shares its content with
    /// another name (a hard link, say from a snapshot backup) is first replaced by a copy,
    /// so the append never changes the other name's file.
    fn open_log_for_append(&self) -> Result<File> {
        let path = self.meta.join("log");
        let mut options = OpenOptions::new();
        options.append(true).create(true).mode(0o644);
        let file = plain::open(&path, &mut options)?;
        if plain::link_count(&file, &path)? <= 1 {
            return Ok(file);
        }
        drop(file);
        let content = plain::read(&path)?.unwrap_or_default();
        write_bytes(&path, 0o644, Overwrite::Replace, &content)?;
        plain::open(&path, &mut options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_in_lowercase() {
        for event in [Event::Imported, Event::Rejected, Event::Failed, Event::Discarded, Event::Repaired] {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        }
        assert!(serde_json::from_str::<Event>("\"Imported\"").is_err());
        assert_eq!(format!("{:<9}|", Event::Failed), "failed   |");
    }
}
