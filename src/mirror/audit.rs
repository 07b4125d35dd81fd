//! `mirror verify`: re-checks every file in the mirror against its channel's expected state
//! (state.rs: the kept manifests of the imports that put it there, less what complete
//! manifests retired), reports what is missing, modified or unknown, and records the stat
//! stamps of the files that verified (stamps.rs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::log::check_against_kept;
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
                Some(problem) => {
                    stamps.remove(&rel);
                    report.modified.push(format!("{rel}: {problem}"));
                }
                None => stamps::record(&mut stamps, item.path(), entry),
            }
        }
        report.missing = expected.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        stamps.retain(|path, _| expected.contains_key(path) && seen.contains(path));
        stamps::save(&self.meta, &stamps)?;
        report.files = expected.len() as u64;
        progress.finish();
        Ok(report)
    }

    /// Every file of every channel's expected state; a kept manifest that cannot be read,
    /// or that disagrees with its `imported` record, is reported as damaged.
    fn expected_files(&self, report: &mut AuditReport) -> Result<BTreeMap<String, Entry>> {
        let state = self.state()?;
        for (i, record) in state.records.iter().enumerate() {
            if let (Event::Imported, Some(b)) = (record.event, &record.bundle) {
                if let Err(problem) = check_against_kept(&self.meta, b) {
                    report.damaged.push(format!("import log line {}: {problem}", i + 1));
                }
            }
        }
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
