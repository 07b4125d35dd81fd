//! The import log `.airlock/log` (docs/FORMAT.md §9): JSON Lines, each record chained to
//! the line before it by its SHA-256, appended and fsynced one record at a time. The
//! mirror's history (per channel the last sequence and manifest, the clock floor) is
//! derived from it by `read_state`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::LogProblem;
use super::{check_format, lock_mirror, LockMode, Mirror, MirrorError};
use crate::error::{Error, Result};
use crate::format::path::METADATA_DIR;
use crate::io::digest::Digest;
use crate::io::durable::sync_dir;

/// The `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
}

impl Event {
    /// The name written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Imported => "imported",
            Event::Rejected => "rejected",
            Event::Failed => "failed",
            Event::Discarded => "discarded",
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

/// Reads the log of the mirror at `root` for display, under a shared lock: it waits for
/// no one, but refuses (with [`MirrorError::Locked`]) while an import or `mirror verify`
/// holds the mirror, so it never sees a record half appended. Changes nothing, so it works
/// on a mirror the caller can only read.
pub fn read_log(root: &Path) -> Result<MirrorState> {
    let meta = root.join(METADATA_DIR);
    if !meta.join("FORMAT").is_file() {
        return Err(Error::Mirror { path: root.to_owned(), reason: MirrorError::NotAMirror });
    }
    check_format(&meta)?;
    let _shared = lock_mirror(&meta, LockMode::Shared)?;
    read_state(&meta.join("log"))
}

/// Reads and checks the log: every line must parse and chain to the one before. The caller
/// holds the mirror lock.
pub(super) fn read_state(log: &Path) -> Result<MirrorState> {
    let mut state = MirrorState { head: GENESIS.into(), ..MirrorState::default() };
    let file = match File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(state),
        Err(e) => return Err(Error::io(log, e)),
    };
    let damaged =
        |n: usize, problem| Error::Mirror { path: log.to_owned(), reason: MirrorError::Log { line: n, problem } };
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| Error::io(log, e))?;
        let record: LogRecord = serde_json::from_slice(&line).map_err(|e| damaged(i + 1, LogProblem::Unreadable(e)))?;
        if record.prev != state.head {
            return Err(damaged(i + 1, LogProblem::BrokenChain));
        }
        state.head = Digest::of(&line).to_hex();
        if record.event == Event::Imported {
            let b = record.bundle.as_ref().ok_or_else(|| damaged(i + 1, LogProblem::ImportWithoutBundle))?;
            let d =
                Digest::from_hex(&b.manifest_sha256).ok_or_else(|| damaged(i + 1, LogProblem::BadManifestDigest))?;
            state.channels.insert(b.channel.clone(), (b.sequence, d));
            state.clock_floor = state.clock_floor.max(b.created);
            state.imported.push(d);
        }
        state.records.push(record);
    }
    Ok(state)
}

impl Mirror {
    /// Appends a record, chaining it to the last line, and syncs the log.
    pub(super) fn append_log(&self, record: LogRecord) -> Result<LogRecord> {
        let head = read_state(&self.meta.join("log"))?.head;
        self.append_log_line(record, head)
    }

    /// Appends `record` chained to `prev` (the digest of the log's last line) and syncs it;
    /// the first record also syncs `.airlock/`, which then has a new name in it.
    pub(super) fn append_log_line(&self, mut record: LogRecord, prev: String) -> Result<LogRecord> {
        let path = self.meta.join("log");
        record.prev = prev;
        let mut line = serde_json::to_vec(&record).map_err(|e| Error::io(&path, io::Error::other(e)))?;
        line.push(b'\n');
        let mut file =
            OpenOptions::new().append(true).create(true).mode(0o644).open(&path).map_err(|e| Error::io(&path, e))?;
        let created = file.metadata().map_err(|e| Error::io(&path, e))?.len() == 0;
        file.write_all(&line).map_err(|e| Error::io(&path, e))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        if created {
            sync_dir(&self.meta)?;
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_in_lowercase() {
        for event in [Event::Imported, Event::Rejected, Event::Failed, Event::Discarded] {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        }
        assert!(serde_json::from_str::<Event>("\"Imported\"").is_err());
        assert_eq!(format!("{:<9}|", Event::Failed), "failed   |");
    }
}
