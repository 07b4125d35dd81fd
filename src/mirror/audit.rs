//! `mirror verify`: re-checks every file in the mirror against its channel's expected state
//! (state.rs: the kept manifests of the imports that put it there, less what complete
//! manifests retired), reports what is missing, modified or unknown, and records the stat
//! stamps of the files that verified (stamps.rs).
//!
//! On a mirror opened read-only ([`Mirror::open_read_only`]) nothing is written: no
//! recovery ran, so what an interrupted import left is reported ([`AuditReport::interrupted`],
//! [`AuditReport::pending_commit`]) instead of finished or discarded, and no stamps are
//! recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::log::{check_against_kept, unmended_tail};
use super::plain::{self, Want};
use super::protocol::in_flight_digest;
use super::{stamps, ChannelView, Event, Mirror};
use crate::error::{Error, Result};
use crate::format::manifest::Entry;
use crate::format::path::METADATA_DIR;
use crate::io::digest::{self, Digest};
use crate::progress::Progress;

/// The outcome of `mirror verify`.
#[derive(Default, Debug)]
pub struct AuditReport {
    /// Files recorded by imports.
    pub files: u64,
    /// Recorded but absent.
    pub missing: Vec<String>,
    /// Present but different (with what differs).
    pub modified: Vec<Modified>,
    /// Present but recorded by no import.
    pub unknown: Vec<String>,
    /// Problems with airlock's own records.
    pub damaged: Vec<String>,
    /// Read-only check: an import interrupted after its commit point (`.airlock/pending`),
    /// which the mirror may hold in part: what it commits. A writable opening finishes it.
    pub pending_commit: Option<String>,
    /// Read-only check: what interrupted work left that changes nothing in the mirror
    /// (uncommitted staging, temporary files, an unmended log end), one note each.
    pub interrupted: Vec<String>,
    /// Logs sealed aside by `mirror recover-log`, one line each (where, its digest, why).
    pub sealed_logs: Vec<String>,
}

/// A file the mirror holds that differs from its manifest entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Modified {
    /// The file, relative to the mirror root.
    pub path: String,
    /// The first difference found.
    pub difference: Difference,
}

/// How a mirror file differs from its manifest entry (checked in this order).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Difference {
    /// Not a regular file (a directory, a link, a device...).
    NotAFile,
    /// Another size.
    Size {
        /// The file's size.
        found: u64,
        /// The manifest's.
        recorded: u64,
    },
    /// Other permission bits.
    Mode {
        /// The file's mode bits.
        found: u32,
        /// The manifest's.
        recorded: u32,
    },
    /// Other content.
    Sha256 {
        /// The file's SHA-256.
        found: Digest,
        /// The manifest's.
        recorded: Digest,
    },
}

impl Difference {
    /// A stable snake_case name: `not_a_file`, `size`, `mode`, `sha256`.
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::NotAFile => "not_a_file",
            Difference::Size { .. } => "size",
            Difference::Mode { .. } => "mode",
            Difference::Sha256 { .. } => "sha256",
        }
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::NotAFile => f.write_str("not a regular file"),
            Difference::Size { found, recorded } => write!(f, "size {found} but recorded {recorded}"),
            Difference::Mode { found, recorded } => write!(f, "mode {found:o} but recorded {recorded:o}"),
            Difference::Sha256 { found, recorded } => write!(f, "SHA-256 {found} but recorded {recorded}"),
        }
    }
}

impl std::fmt::Display for Modified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.difference)
    }
}

impl AuditReport {
    /// True when the mirror is exactly what its imports recorded.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.modified.is_empty()
            && self.unknown.is_empty()
            && self.damaged.is_empty()
            && self.pending_commit.is_none()
    }
}

impl Mirror {
    /// Re-checks every file against the manifests that put it there.
    pub fn audit(&self, progress: &dyn Progress) -> Result<AuditReport> {
        let mut report = AuditReport::default();
        if self.read_only.is_some() {
            self.find_interrupted(&mut report)?;
        }
        let expected = self.expected_files(&mut report)?;
        // Saturating: the kept manifests' sizes are data, and a sum past u64::MAX must not
        // panic (it only sizes the progress bar).
        let total = expected.values().fold(0u64, |sum, e| sum.saturating_add(e.size));
        progress.start("checking", total, expected.len() as u64);
        let mut seen = BTreeSet::new();
        let mut stamps = stamps::load(&self.meta)?;
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
            match check_file(item.path(), entry, progress)? {
                Some(difference) => {
                    stamps.remove(&rel);
                    report.modified.push(Modified { path: rel, difference });
                }
                None => stamps::record(&mut stamps, item.path(), entry),
            }
        }
        report.missing = expected.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        stamps.retain(|path, _| expected.contains_key(path) && seen.contains(path));
        if self.read_only.is_none() {
            stamps::save(&self.meta, &stamps)?;
        }
        report.files = expected.len() as u64;
        progress.finish();
        Ok(report)
    }

    /// The logs `mirror recover-log` sealed aside: each is named, with why it was sealed
    /// (from the `recovered` record that starts the current log); a sealed log that no
    /// longer hashes to the digest it is kept under is damaged.
    fn report_sealed_logs(&self, state: &super::MirrorState, report: &mut AuditReport) -> Result<()> {
        if let Some(first) = state.records.first().filter(|r| r.event == Event::Recovered) {
            if let Some(rec) = &first.recovery {
                report.sealed_logs.push(format!(
                    ".airlock/{} ({} lines) sealed at {} by `mirror recover-log`: {}; it broke at {}; the new log \
                     restates {} imports",
                    rec.sealed,
                    rec.lines,
                    crate::clock::format(first.time),
                    first.reason.as_deref().unwrap_or("no reason recorded"),
                    rec.broken,
                    rec.restated.len()
                ));
            }
        }
        let sealed = self.meta.join("sealed");
        if !plain::check(&sealed, Want::Dir)? {
            return Ok(());
        }
        let mut names = Vec::new();
        for item in fs::read_dir(&sealed).map_err(|e| Error::io(&sealed, e))? {
            names.push(item.map_err(|e| Error::io(&sealed, e))?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let log = sealed.join(&name).join("log");
            match plain::read(&log) {
                Ok(Some(bytes)) if Digest::of(&bytes).to_hex() == name => {
                    report.sealed_logs.push(format!(".airlock/sealed/{name}/log: kept, and still hashes to its name"))
                }
                Ok(Some(_)) => report.damaged.push(format!(
                    ".airlock/sealed/{name}/log: changed after it was sealed (it no longer hashes to its name)"
                )),
                Ok(None) => report.damaged.push(format!(".airlock/sealed/{name}/log: missing")),
                Err(e) => report.damaged.push(format!(".airlock/sealed/{name}/log: {e}")),
            }
        }
        Ok(())
    }

    /// Read-only: what interrupted work left, which a writable opening would have finished
    /// or discarded.
    fn find_interrupted(&self, report: &mut AuditReport) -> Result<()> {
        let pending = self.meta.join("pending");
        if plain::file_exists(&pending)? {
            report.pending_commit = Some(match in_flight_digest(&self.meta) {
                Some(digest) => format!(
                    "an import was interrupted after its commit point (.airlock/pending commits manifest {digest}): \
                     the mirror may hold part of it; open the mirror writable (`airlock mirror verify DIR`) to finish it"
                ),
                None => "an import was interrupted after its commit point, and .airlock/pending is unreadable; \
                         open the mirror writable (`airlock mirror verify DIR`) to see what it holds"
                    .to_owned(),
            });
        }
        let staging = self.meta.join("staging");
        if plain::check(&staging, Want::Dir)? {
            let mut names = Vec::new();
            for item in fs::read_dir(&staging).map_err(|e| Error::io(&staging, e))? {
                names.push(item.map_err(|e| Error::io(&staging, e))?.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            for name in names {
                report.interrupted.push(format!(
                    "uncommitted staging .airlock/staging/{name} of an interrupted import: the mirror is unchanged \
                     by it; the next import resumes or removes it"
                ));
            }
        }
        for item in fs::read_dir(&self.meta).map_err(|e| Error::io(&self.meta, e))? {
            let name = item.map_err(|e| Error::io(&self.meta, e))?.file_name().to_string_lossy().into_owned();
            if name.starts_with(".airlock-") && name.ends_with(".tmp") {
                report.interrupted.push(format!(
                    "temporary file .airlock/{name} of an interrupted write: the next writable opening removes it"
                ));
            }
        }
        if let Some(note) = unmended_tail(&self.meta)? {
            report.interrupted.push(note.to_owned());
        }
        Ok(())
    }

    /// Every file of every channel's expected state; a kept manifest that cannot be read,
    /// or that disagrees with its `imported` record, is reported as damaged.
    fn expected_files(&self, report: &mut AuditReport) -> Result<BTreeMap<String, Entry>> {
        let state = self.state()?;
        for (line, b) in state.imports() {
            if let Err(problem) = check_against_kept(&self.meta, b) {
                report.damaged.push(format!("import log line {line}: {problem}"));
            }
        }
        self.report_sealed_logs(&state, report)?;
        let views = self.channel_views_with(&state, |digest, e| {
            report.damaged.push(format!("kept manifest {}: {e}", digest.to_hex()));
            Ok(())
        })?;
        // Channels whose paths overlapped before ownership was enforced: the channel
        // imported last holds the path, as its import left it.
        let position: HashMap<Digest, usize> = state.imported.iter().enumerate().map(|(i, d)| (*d, i)).collect();
        let mut ordered: Vec<ChannelView> = views.into_values().collect();
        ordered.sort_by_key(|v| position.get(&v.manifest).copied());
        let mut expected = BTreeMap::new();
        for view in ordered {
            for e in view.entries {
                expected.insert(e.path.as_str().to_owned(), e);
            }
        }
        Ok(expected)
    }
}

/// What differs between the file at `path` and its recorded entry, if anything.
fn check_file(path: &Path, entry: &Entry, progress: &dyn Progress) -> Result<Option<Difference>> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Ok(Some(Difference::NotAFile));
    }
    if meta.len() != entry.size {
        return Ok(Some(Difference::Size { found: meta.len(), recorded: entry.size }));
    }
    if meta.permissions().mode() & 0o7777 != entry.mode.bits() {
        return Ok(Some(Difference::Mode { found: meta.permissions().mode() & 0o7777, recorded: entry.mode.bits() }));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let (actual, _) = digest::hash_reader(file).map_err(|e| Error::io(path, e))?;
    progress.add_bytes(entry.size);
    progress.add_file();
    if actual != entry.sha256 {
        return Ok(Some(Difference::Sha256 { found: actual, recorded: entry.sha256 }));
    }
    Ok(None)
}
