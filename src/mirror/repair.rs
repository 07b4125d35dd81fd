//! `import --repair` (docs/FORMAT.md §10, "Repair"): restores the mirror's damaged files
//! (missing, or not what the channel's state says) from a bundle that holds them, even one
//! imported before or an older one of the same channel. The bundle's signatures are
//! verified against the policy; its freshness is not (it changes no channel's state: it
//! can only put back exactly the content the channel's current state names). The restored
//! files go through staging and the same commit protocol as an import, and a `repaired`
//! record lists them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use super::protocol::{create_private_dir, remove_dir_if_exists, sync_filesystem, write_record_dir};
use super::staging::StagingSink;
use super::stamps::{self, Found};
use super::{summarize, v2, Event, LogRecord, Mirror};
use crate::error::Result;
use crate::format::manifest::Entry;
use crate::policy::Policy;
use crate::progress::Progress;
use crate::verify::{Bundle, PayloadSink, VerifyOptions};

/// What a repair did.
#[derive(Debug, Default)]
pub struct RepairOutcome {
    /// Damaged files restored.
    pub repaired: Vec<String>,
    /// Damaged files the bundle does not hold as the channel's state names them.
    pub unrepairable: Vec<String>,
    /// The `repaired` log record, if anything was repaired.
    pub record: Option<Box<LogRecord>>,
}

impl Mirror {
    /// Restores the damaged files `bundle_path` holds (see the module docs). Every failure
    /// after the mirror is opened is logged.
    pub fn repair(
        &self,
        bundle_path: &Path,
        policy: &Policy,
        now: u64,
        progress: &dyn Progress,
    ) -> Result<RepairOutcome> {
        self.check_writable()?;
        let mut summary = None;
        let result = self.repair_inner(bundle_path, policy, now, progress, &mut summary);
        if let Err(err) = &result {
            self.log_failure(&bundle_path.display().to_string(), now, summary, err);
        }
        result
    }

    fn repair_inner(
        &self,
        bundle_path: &Path,
        policy: &Policy,
        now: u64,
        progress: &dyn Progress,
        summary: &mut Option<crate::mirror::BundleSummary>,
    ) -> Result<RepairOutcome> {
        let damaged = self.damaged_files()?;
        if damaged.is_empty() {
            return Ok(RepairOutcome::default());
        }
        let bundle = Bundle::open(bundle_path)?;
        // No freshness: checked as of its own creation time, so only the signatures, the
        // manifest and (while streaming) the content decide. Expiry and age do not apply
        // to restoring content the mirror's current state already names.
        let created = bundle.unverified_manifest()?.created;
        let verified =
            bundle.verify_observed(&VerifyOptions::new(policy, created), |h| *summary = Some(summarize(h)))?;
        let offered: BTreeMap<&str, &Entry> =
            verified.manifest().entries.iter().filter(|e| v2::is_carried(e)).map(|e| (e.path.as_str(), e)).collect();
        let mut outcome = RepairOutcome::default();
        let mut wanted = BTreeSet::new();
        for (path, expected) in &damaged {
            match offered.get(path.as_str()) {
                Some(e)
                    if e.size == expected.size
                        && e.sha256 == expected.sha256
                        && e.mode == expected.mode
                        && self.replaceable(path) =>
                {
                    wanted.insert(path.clone());
                    outcome.repaired.push(path.clone());
                }
                _ => outcome.unrepairable.push(path.clone()),
            }
        }
        if outcome.repaired.is_empty() {
            return Ok(outcome);
        }
        // FORMAT.md §10 steps 3-4: stage the wanted files only.
        let name = format!("repair-{}", verified.manifest_digest().to_hex());
        self.discard_staging_except(&name)?;
        let staging = self.meta.join("staging").join(&name);
        remove_dir_if_exists(&staging)?;
        create_private_dir(&staging)?;
        write_record_dir(&staging.join("record"), verified.head(), verified.manifest())?;
        let data = staging.join("data");
        create_private_dir(&data)?;
        let mut sink = Only { wanted: &wanted, inner: StagingSink::new(data), on: false };
        progress.start("repairing", verified.manifest().total_size(), verified.manifest().entries.len() as u64);
        let result = verified.stream_into(&mut sink, progress);
        progress.finish();
        result?;
        sink.inner.finish()?;
        sync_filesystem(&staging)?;
        let mut record = LogRecord::new(now, Event::Repaired);
        record.source = Some(bundle_path.display().to_string());
        record.bundle = summary.clone();
        record.repaired = outcome.repaired.clone();
        let record = self.commit(&staging, record, Vec::new())?;
        outcome.record = Some(Box::new(record));
        Ok(outcome)
    }

    /// The files of the channels' expected state that are missing or differ (by hash),
    /// with the entry each must hold.
    fn damaged_files(&self) -> Result<Vec<(String, Entry)>> {
        let views = self.channel_states()?;
        let stamps = stamps::load(&self.meta)?;
        let mut damaged = Vec::new();
        for view in views.values() {
            for e in &view.entries {
                let file = self.root.join(e.path.as_str());
                if let Found::Differs(_) = stamps::check(&file, e, &stamps, false)? {
                    damaged.push((e.path.to_string(), e.clone()));
                }
            }
        }
        damaged.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(damaged)
    }

    /// Whether a restored file can be renamed to `path`: nothing there, or a regular file,
    /// under directories (a directory or link standing there is the operator's to move).
    fn replaceable(&self, path: &str) -> bool {
        let mut dir = self.root.clone();
        let parts: Vec<&str> = path.split('/').collect();
        let Some((name, parents)) = parts.split_last() else { return false };
        for part in parents {
            dir.push(part);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
                _ => return false,
            }
        }
        match fs::symlink_metadata(dir.join(name)) {
            Ok(m) => m.is_file(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }
}

/// Passes on only the entries wanted.
struct Only<'a> {
    wanted: &'a BTreeSet<String>,
    inner: StagingSink,
    on: bool,
}

impl PayloadSink for Only<'_> {
    fn open(&mut self, entry: &Entry) -> Result<()> {
        self.on = self.wanted.contains(entry.path.as_str());
        if self.on {
            self.inner.open(entry)?;
        }
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.on {
            self.inner.write(bytes)?;
        }
        Ok(())
    }
    fn close(&mut self, entry: &Entry) -> Result<()> {
        if self.on {
            self.inner.close(entry)?;
        }
        Ok(())
    }
}
