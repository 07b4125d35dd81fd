//! A damaged log is evidence, not a lock-out (docs/FORMAT.md §9, "Recovering a damaged
//! log").
//!
//! - [`scan_log`] reads a log whatever its damage, for `mirror log`: every record that
//!   parses, and every place the chain breaks ([`LogBreak`]: a line that does not parse or
//!   does not chain to the one before, an import no import can have logged, an end that
//!   disagrees with the anchor, kept heads that disagree with the records). It writes
//!   nothing and takes the shared lock (`readonly.rs`).
//! - [`Mirror::recover_log`] (`mirror recover-log DIR --reason TEXT`), under the exclusive
//!   lock, seals a damaged log aside: a copy under `.airlock/sealed/<sha256>/` (with its
//!   anchor), named by its SHA-256, never deleted. It then starts a new chain whose first
//!   record, `recovered`, names the sealed log by that digest in its `prev`, says why (the
//!   operator's reason and the first break), and restates the imports the mirror holds, one
//!   per kept head, so the mirror's history (per channel the last sequence and the clock
//!   floor) carries on. Kept heads that cannot be used are moved into the sealed directory.
//!   Until then every command that opens the mirror refuses, naming the recovery command.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::LogProblem;
use super::log::{
    check_kept_heads, check_link, record_imports, replay_import, Anchor, BundleSummary, Event, LogRecord, MirrorState,
    GENESIS, LOG_HEAD,
};
use super::plain::{self, Want};
use super::protocol::{in_flight_digest, read_kept_manifest};
use super::readonly::{shared_lock, ReadLock};
use super::{check_format, lock_mirror, open_checked, Mirror, MirrorError};
use crate::error::{Error, Result};
use crate::io::digest::Digest;
use crate::io::durable::{sync_dir, write_bytes, Overwrite};

/// Where sealed logs are kept, in `.airlock/`.
pub(super) const SEALED_DIR: &str = "sealed";

/// What a `recovered` record says about the log it seals.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// The sealed log, relative to `.airlock/`: `sealed/<sha256>/log` (the record's `prev`
    /// is that SHA-256).
    pub sealed: String,
    /// How many lines it has.
    pub lines: u64,
    /// Where its chain first breaks, and how.
    pub broken: String,
    /// The imports the mirror holds (one per usable kept head, by channel and sequence),
    /// restated so its history carries on.
    pub restated: Vec<BundleSummary>,
    /// Kept heads that could not be used, moved into the sealed directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_aside: Vec<String>,
}

/// Where a log breaks.
#[derive(Debug)]
pub enum LogBreak {
    /// A line that does not parse, does not chain, or records what no import can have.
    Line {
        /// Its 1-based number.
        line: usize,
        /// What is wrong with it.
        problem: LogProblem,
    },
    /// The log's end disagrees with its anchor, or the kept heads disagree with the records.
    Elsewhere(Box<Error>),
}

impl std::fmt::Display for LogBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogBreak::Line { line, problem } => write!(f, "line {line}: {problem}"),
            LogBreak::Elsewhere(e) => match &**e {
                // The line's own error names the recovery; here only the break is said.
                Error::Mirror { reason: MirrorError::Log { line, problem }, .. } => {
                    write!(f, "line {line}: {problem}")
                }
                other => write!(f, "{other}"),
            },
        }
    }
}

/// A log as [`scan_log`] read it.
#[derive(Debug)]
pub struct LogScan {
    /// Every line that parses as a record, with its line number.
    pub records: Vec<(usize, LogRecord)>,
    /// How many lines the log has (a torn last one included).
    pub lines: usize,
    /// Where it breaks, in line order (the end and the kept heads last); empty when intact.
    pub breaks: Vec<LogBreak>,
    /// The history replayed from the records that parse (complete only when intact).
    pub state: MirrorState,
    /// How the scan held the mirror.
    pub lock: ReadLock,
}

/// What [`Mirror::recover_log`] did.
#[derive(Debug)]
pub struct RecoveredLog {
    /// The sealed log's directory (`.airlock/sealed/<sha256>/`).
    pub sealed: PathBuf,
    /// The sealed log's SHA-256.
    pub digest: Digest,
    /// The new chain's first record.
    pub record: LogRecord,
}

/// Reads the log of the mirror at `root` whatever its damage, writing nothing (see the
/// module documentation).
pub fn scan_log(root: &Path) -> Result<LogScan> {
    let meta = open_checked(root)?;
    check_format(&meta)?;
    let (_lock, how) = shared_lock(&meta)?;
    scan_file(&meta, how)
}

/// One line of the log: its bytes without the newline, and whether it had one.
fn split_lines(bytes: &[u8]) -> Vec<(&[u8], bool)> {
    let mut lines: Vec<(&[u8], bool)> = bytes.split_inclusive(|b| *b == b'\n').map(|l| (l, true)).collect();
    for line in &mut lines {
        match line.0.strip_suffix(b"\n") {
            Some(body) => line.0 = body,
            None => line.1 = false,
        }
    }
    lines
}

fn scan_file(meta: &Path, lock: ReadLock) -> Result<LogScan> {
    let log = meta.join("log");
    let bytes = plain::read(&log)?.unwrap_or_default();
    let lines = split_lines(&bytes);
    let mut scan = LogScan {
        records: Vec::new(),
        lines: lines.len(),
        breaks: Vec::new(),
        state: MirrorState { head: GENESIS.into(), ..MirrorState::default() },
        lock,
    };
    let mut imports: Vec<(usize, BundleSummary)> = Vec::new();
    let mut seen = HashSet::new();
    let (mut complete, mut before_last, mut torn) = (0u64, GENESIS.to_owned(), None);
    for (i, (body, terminated)) in lines.iter().enumerate() {
        let n = i + 1;
        match serde_json::from_slice::<LogRecord>(body) {
            Err(e) if !terminated => torn = Some(LogBreak::Line { line: n, problem: LogProblem::Unreadable(e) }),
            Err(e) => scan.breaks.push(LogBreak::Line { line: n, problem: LogProblem::Unreadable(e) }),
            Ok(record) => {
                if let Err(problem) = check_link(meta, n, &record, &scan.state.head) {
                    scan.breaks.push(LogBreak::Line { line: n, problem });
                }
                replay(&mut scan, &record, n, &mut seen, &mut imports);
                scan.state.records.push(record.clone());
                scan.records.push((n, record));
            }
        }
        if *terminated {
            complete += 1;
            before_last = std::mem::replace(&mut scan.state.head, Digest::of(body).to_hex());
        }
    }
    let anchored = check_anchor(meta, complete, &scan.state.head, &before_last);
    if let Err(e) = anchored {
        scan.breaks.extend(torn);
        scan.breaks.push(LogBreak::Elsewhere(Box::new(e)));
    }
    if let Err(e) = check_kept_heads(meta, &imports, &log) {
        scan.breaks.push(LogBreak::Elsewhere(Box::new(e)));
    }
    Ok(scan)
}

/// Adds a record's imports to the scan's history, noting each that no import can have
/// logged.
fn replay(
    scan: &mut LogScan,
    record: &LogRecord,
    n: usize,
    seen: &mut HashSet<Digest>,
    imports: &mut Vec<(usize, BundleSummary)>,
) {
    let list = match record_imports(record) {
        Ok(list) => list,
        Err(problem) => return scan.breaks.push(LogBreak::Line { line: n, problem }),
    };
    for b in list {
        match replay_import(&mut scan.state, b, seen) {
            Ok(()) => imports.push((n, b.clone())),
            Err(problem) => scan.breaks.push(LogBreak::Line { line: n, problem }),
        }
    }
}

/// Holds the log's end (`complete` whole lines, the last hashing to `head`, the one before
/// to `before_last`) to `.airlock/log-head`: it may name the last line or the one before
/// (a crash between an append and the anchor's rewrite); no anchor at all is a mirror
/// made before anchors.
fn check_anchor(meta: &Path, complete: u64, head: &str, before_last: &str) -> Result<()> {
    let path = meta.join(LOG_HEAD);
    let Some(bytes) = plain::read(&path)? else {
        return Ok(());
    };
    let anchor: Anchor = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Mirror { path: path.clone(), reason: MirrorError::LogHeadUnreadable(e.to_string()) })?;
    let at_end = anchor.records == complete && anchor.head == head;
    let one_behind = anchor.records.checked_add(1) == Some(complete) && anchor.head == before_last;
    if at_end || one_behind {
        return Ok(());
    }
    Err(Error::Mirror {
        path: meta.join("log"),
        reason: MirrorError::LogHeadMismatch {
            records: complete,
            head: head.to_owned(),
            anchored: anchor.records,
            anchored_head: anchor.head,
        },
    })
}

/// Checks a `recovered` record against the log it sealed: its details are there, it names
/// `sealed/<prev>/log`, and that file still hashes to `prev`.
pub(super) fn check_sealed(meta: &Path, record: &LogRecord) -> Result<(), LogProblem> {
    let recovery = record.recovery.as_ref().ok_or(LogProblem::RecoveryWithoutDetails)?;
    let expected = format!("{SEALED_DIR}/{}/log", record.prev);
    if Digest::from_hex(&record.prev).is_none() || recovery.sealed != expected {
        return Err(LogProblem::SealedLogMisnamed { named: recovery.sealed.clone(), prev: record.prev.clone() });
    }
    let path = meta.join(&expected);
    let unusable = |e: Error| LogProblem::SealedLogUnusable { path: expected.clone(), error: Box::new(e) };
    if !plain::check(&meta.join(SEALED_DIR), Want::Dir).map_err(unusable)?
        || !plain::check(&meta.join(SEALED_DIR).join(&record.prev), Want::Dir).map_err(unusable)?
    {
        return Err(unusable(Error::io(&path, io::ErrorKind::NotFound.into())));
    }
    let bytes = plain::read(&path)
        .map_err(unusable)?
        .ok_or_else(|| unusable(Error::io(&path, io::ErrorKind::NotFound.into())))?;
    let found = Digest::of(&bytes).to_hex();
    if found != record.prev {
        return Err(LogProblem::SealedLogChanged { path: expected, found });
    }
    Ok(())
}

impl Mirror {
    /// `mirror recover-log`: seals the damaged log of the mirror at `root` aside and starts
    /// a new chain (see the module documentation). Refuses an intact log
    /// ([`MirrorError::LogIntact`]) and an empty `reason`.
    pub fn recover_log(root: &Path, reason: &str, now: u64) -> Result<RecoveredLog> {
        if reason.trim().is_empty() {
            return Err(Error::Mirror { path: root.to_owned(), reason: MirrorError::RecoveryReasonMissing });
        }
        let meta = open_checked(root)?;
        check_format(&meta)?;
        let _lock = lock_mirror(&meta)?;
        let scan = scan_file(&meta, ReadLock::Shared)?;
        let Some(first) = scan.breaks.first() else {
            return Err(Error::Mirror { path: root.to_owned(), reason: MirrorError::LogIntact });
        };
        let bytes = plain::read(&meta.join("log"))?.unwrap_or_default();
        let digest = Digest::of(&bytes);
        let sealed = seal(&meta, &digest, &bytes)?;
        let (restated, set_aside) = restate(&meta, &sealed, &scan)?;
        let mut record = LogRecord::new(now, Event::Recovered);
        record.prev = digest.to_hex();
        record.reason = Some(reason.to_owned());
        record.recovery = Some(Box::new(Recovery {
            sealed: format!("{SEALED_DIR}/{}/log", digest.to_hex()),
            lines: scan.lines as u64,
            broken: first.to_string(),
            restated,
            set_aside,
        }));
        let mut line = serde_json::to_vec(&record).map_err(|e| Error::io(meta.join("log"), io::Error::other(e)))?;
        let anchor = Anchor { records: 1, head: Digest::of(&line).to_hex() };
        line.push(b'\n');
        // The anchor first: a crash before the new log is written leaves the old log
        // refused against it, and `recover-log` can simply run again.
        write_bytes(&meta.join(LOG_HEAD), 0o644, Overwrite::Replace, &anchor.to_bytes())?;
        write_bytes(&meta.join("log"), 0o644, Overwrite::Replace, &line)?;
        Ok(RecoveredLog { sealed, digest, record })
    }
}

/// Keeps a copy of the log (and its anchor) under `.airlock/sealed/<sha256>/`, durably,
/// readable by auditors. A copy already there (a recovery run again after a crash) must
/// hold the same bytes.
fn seal(meta: &Path, digest: &Digest, log: &[u8]) -> Result<PathBuf> {
    let base = meta.join(SEALED_DIR);
    let dir = base.join(digest.to_hex());
    for d in [&base, &dir] {
        if !plain::check(d, Want::Dir)? {
            fs::create_dir(d).map_err(|e| Error::io(d, e))?;
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(d, e))?;
            sync_dir(crate::io::durable::parent_dir(d))?;
        }
    }
    let copy = dir.join("log");
    match plain::read(&copy)? {
        Some(kept) if Digest::of(&kept) == *digest => {}
        _ => write_bytes(&copy, 0o444, Overwrite::Replace, log)?,
    }
    if let Some(anchor) = plain::read(&meta.join(LOG_HEAD))? {
        let kept_anchor = dir.join(LOG_HEAD);
        if !plain::file_exists(&kept_anchor)? {
            write_bytes(&kept_anchor, 0o444, Overwrite::NoClobber, &anchor)?;
        }
    }
    Ok(dir)
}

/// The imports the mirror holds, one per kept head under `bundles/` (the one `pending` is
/// committing excepted: recovery logs it when it finishes), by channel and sequence, with
/// the signers the damaged log's records name for them. Kept heads that cannot be used are
/// moved to `sealed/bundles/` and named.
fn restate(meta: &Path, sealed: &Path, scan: &LogScan) -> Result<(Vec<BundleSummary>, Vec<String>)> {
    let signers: BTreeMap<&str, &Vec<String>> = scan
        .records
        .iter()
        .flat_map(|(_, r)| record_imports(r).unwrap_or_default())
        .map(|b| (b.manifest_sha256.as_str(), &b.signers))
        .collect();
    let bundles = meta.join("bundles");
    let in_flight = in_flight_digest(meta);
    let mut names = BTreeSet::new();
    if plain::check(&bundles, Want::Dir)? {
        for item in fs::read_dir(&bundles).map_err(|e| Error::io(&bundles, e))? {
            names.insert(item.map_err(|e| Error::io(&bundles, e))?.file_name().to_string_lossy().into_owned());
        }
    }
    let (mut restated, mut set_aside) = (Vec::new(), Vec::new());
    for name in names.into_iter().filter(|n| Some(n) != in_flight.as_ref()) {
        let dir = bundles.join(&name);
        match read_kept_manifest(&dir, &name) {
            Ok(m) => restated.push(BundleSummary {
                bundle_id: m.bundle_id.to_hex(),
                channel: m.channel.clone(),
                sequence: m.sequence,
                created: m.created,
                expires: m.expires,
                signers: signers.get(name.as_str()).map(|s| s.to_vec()).unwrap_or_default(),
                entries: m.entries.len() as u64,
                bytes: m.total_size(),
                manifest_sha256: name,
            }),
            Err(_) => {
                set_aside_head(&dir, sealed)?;
                set_aside.push(name);
            }
        }
    }
    restated.sort_by(|a, b| (&a.channel, a.sequence).cmp(&(&b.channel, b.sequence)));
    // Two kept heads with one channel and sequence cannot both have been imported, and
    // which one was is not known: neither is restated (the new log would refuse them).
    let mut count: BTreeMap<(&str, u64), usize> = BTreeMap::new();
    for b in &restated {
        *count.entry((b.channel.as_str(), b.sequence)).or_default() += 1;
    }
    let clashing: BTreeSet<String> = restated
        .iter()
        .filter(|b| count.get(&(b.channel.as_str(), b.sequence)).is_some_and(|n| *n > 1))
        .map(|b| b.manifest_sha256.clone())
        .collect();
    for name in &clashing {
        set_aside_head(&bundles.join(name), sealed)?;
        set_aside.push(name.clone());
    }
    restated.retain(|b| !clashing.contains(&b.manifest_sha256));
    sync_dir(&bundles)?;
    Ok((restated, set_aside))
}

/// Moves the kept head `dir` into the sealed directory's `bundles/`.
fn set_aside_head(dir: &Path, sealed: &Path) -> Result<()> {
    let aside = sealed.join("bundles");
    if !plain::check(&aside, Want::Dir)? {
        fs::create_dir(&aside).map_err(|e| Error::io(&aside, e))?;
    }
    let name = dir.file_name().unwrap_or_default();
    fs::rename(dir, aside.join(name)).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_with_whether_each_had_its_newline() {
        assert!(split_lines(b"").is_empty());
        let lines = split_lines(b"{\"a\":1}\n\n{\"b\"");
        assert_eq!(lines, vec![(&b"{\"a\":1}"[..], true), (&b""[..], true), (&b"{\"b\""[..], false)]);
    }

    #[test]
    fn a_break_on_a_line_is_said_with_its_number() {
        let problem = LogProblem::BrokenChain;
        assert_eq!(
            LogBreak::Line { line: 3, problem }.to_string(),
            "line 3: does not chain to the line before it (the log was edited or truncated)"
        );
    }
}
