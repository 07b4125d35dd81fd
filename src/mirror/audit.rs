//! `mirror verify`: re-checks every file in the mirror against the kept manifests of the
//! imports that put it there, and reports what is missing, modified or unknown.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::log::check_against_kept;
use super::protocol::read_kept_manifest;
use super::{Event, Mirror};
use crate::error::{Error, Result};
use crate::format::manifest::Entry;
use crate::format::path::METADATA_DIR;
use crate::io::digest;
use crate::progress::Progress;

/// The outcome of `mirror verify`.
#[derive(Default, Debug)]
pub struct AuditReport {
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

impl AuditReport {
    /// True when the mirror is exactly what its imports recorded.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.modified.is_empty() && self.unknown.is_empty() && self.damaged.is_empty()
    }
}

impl Mirror {
    /// Re-checks every file against the manifests that put it there.
    pub fn audit(&self, progress: &dyn Progress) -> Result<AuditReport> {
        let mut report = AuditReport::default();
        let expected = self.expected_files(&mut report)?;
        // Saturating: the kept manifests' sizes are data, and a sum past u64::MAX must not
        // panic (it only sizes the progress bar).
        let total = expected.values().fold(0u64, |sum, e| sum.saturating_add(e.size));
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

    /// Every file the imports recorded, as the latest import to name it left it; a kept
    /// manifest that cannot be read, or that disagrees with its `imported` record, is
    /// reported as damaged.
    fn expected_files(&self, report: &mut AuditReport) -> Result<BTreeMap<String, Entry>> {
        let state = self.state()?;
        for (i, record) in state.records.iter().enumerate() {
            if let (Event::Imported, Some(b)) = (record.event, &record.bundle) {
                if let Err(problem) = check_against_kept(&self.meta, b) {
                    report.damaged.push(format!("import log line {}: {problem}", i + 1));
                }
            }
        }
        let mut expected = BTreeMap::new();
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
        Ok(expected)
    }
}

/// What differs between the file at `path` and its recorded entry, if anything.
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
