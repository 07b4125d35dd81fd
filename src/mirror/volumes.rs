//! Volume sets that arrive one medium at a time (FORMAT.md §14.6): the verified volumes of
//! a set still short of volumes are kept under `.airlock/volumes/<manifest sha256>/` between
//! runs, each as `<volume>.airlock` (a whole copy, trailer included, so it reads like the
//! original). Each run adds the volumes given to those kept; once the data volumes missing
//! are no more than the parity volumes at hand, the set is imported like any bundle (§10:
//! nothing is visible in the mirror before the whole bundle verified) and the kept volumes
//! are removed. Nothing kept is trusted for its own sake: a kept volume is checked again,
//! block by block against the signed table, when the set is read.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::protocol::create_private_dir;
use super::{BundleSummary, ImportOptions, ImportOutcome, Mirror};
use crate::error::{Error, Result};
use crate::format::volume::{Kind, VolumeId};
use crate::io::durable::sync_dir;
use crate::policy::Policy;
use crate::progress::Progress;
use crate::verify::volumes::{is_volume_file, read_trailer};
use crate::verify::{Bundle, BundleSource, VolumeState};

/// Where the volumes given were gathered to.
enum Gathered {
    /// Import this source; then remove the kept volumes' directory, if any.
    Ready(BundleSource, Option<PathBuf>),
    /// Still short: what was kept and what is missing.
    Short(ImportOutcome),
}

impl Mirror {
    /// [`Mirror::import`] after gathering a volume set's kept volumes.
    pub(super) fn import_gathered(
        &self,
        source: &BundleSource,
        policy: &Policy,
        opts: &ImportOptions,
        progress: &dyn Progress,
        summary: &mut Option<BundleSummary>,
    ) -> Result<ImportOutcome> {
        let (source, kept_dir) = match self.gather(source, policy)? {
            Gathered::Ready(source, dir) => (source, dir),
            Gathered::Short(outcome) => return Ok(outcome),
        };
        let outcome = match self.import_inner(&source, policy, opts, progress, summary) {
            // A set streams without checking each block's own hash (the payload's SHA-256s
            // check it): a rejection may be a damaged block, so the set is read again with
            // every block checked and rebuilt from parity where it does not match.
            Err(e) if e.is_rejection() && matches!(source, BundleSource::Volumes(_)) => {
                let Some(checked) = source.checking_every_block() else { return Err(e) };
                if !super::plain::file_exists(&self.meta.join("pending")).unwrap_or(true) {
                    self.remove_all_staging();
                }
                *summary = None;
                self.import_inner(&checked, policy, opts, progress, summary)?
            }
            other => other?,
        };
        if let Some(dir) = kept_dir {
            // The set is imported (or was before): its kept volumes are no longer needed.
            fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(outcome)
    }

    fn gather(&self, source: &BundleSource, policy: &Policy) -> Result<Gathered> {
        let given = match source {
            BundleSource::Volumes(paths) => paths.clone(),
            BundleSource::File(path) if is_volume_file(path)? => vec![path.clone()],
            _ => return Ok(Gathered::Ready(source.clone(), None)),
        };
        // The bundle's kept volumes are found by the manifest the given volumes' tables name
        // (unverified: the set they join is verified whole, and a volume of another bundle
        // refused). A bundle opened holds its head (hundreds of megabytes decoded at a
        // million entries), so the set is opened once here, given and kept volumes together;
        // where both have a volume, the one given first is used (`open_set`).
        let claimed = given.iter().find_map(|p| match read_trailer(p) {
            Ok(Some(Ok(v))) => v.claimed_manifest(),
            _ => None,
        });
        let dir = claimed.map(|d| self.meta.join("volumes").join(d.to_hex()));
        let mut all = given.clone();
        if let Some(dir) = &dir {
            all.extend(kept_volumes(dir)?.into_iter().map(|(_, path)| path));
        }
        let (table, present, kept_dir) = {
            let bundle = Bundle::open_source(&BundleSource::Volumes(all.clone()))?;
            let Some(table) = bundle.volume_table(policy)? else {
                return Ok(Gathered::Ready(source.clone(), None));
            };
            let present: Vec<VolumeId> =
                bundle.volume_set().map(|s| s.files().map(|f| f.id).collect()).unwrap_or_default();
            // Removed once the set is imported: only ever this bundle's own directory.
            let ours = claimed == Some(bundle.head().manifest_digest);
            (table, present, dir.filter(|d| ours && d.exists()))
        };
        let missing: Vec<VolumeId> =
            (1..=table.data_count()).map(VolumeId::data).filter(|id| !present.contains(id)).collect();
        let parity = present.iter().filter(|id| id.kind == Kind::Parity && id.number <= table.parity_count()).count();
        if missing.len() <= parity {
            return Ok(Gathered::Ready(BundleSource::Volumes(all), kept_dir));
        }
        // Short: keep the volumes given that are intact, for the next run.
        let check = Bundle::open_source(&BundleSource::Volumes(given))?
            .check_volumes(policy)?
            .ok_or_else(|| Error::Internal("a volume set without a table".into()))?;
        // Named by the manifest the verified table names (it names the verified head's).
        let dir = self.meta.join("volumes").join(check.table.manifest.to_hex());
        let mut kept = Vec::new();
        let mut unusable = Vec::new();
        for (id, path, state) in &check.volumes {
            if *state == VolumeState::Intact {
                self.keep(&dir, *id, path)?;
                kept.push(format!("{id} from {}", path.display()));
            } else {
                unusable.push(*id);
            }
        }
        let mut missing: Vec<VolumeId> =
            missing.into_iter().chain(unusable.into_iter().filter(|id| id.kind == Kind::Data)).collect();
        missing.sort();
        missing.dedup();
        Ok(Gathered::Short(ImportOutcome::VolumesMissing {
            kept,
            missing: missing.iter().map(VolumeId::to_string).collect(),
            parity,
        }))
    }

    /// Copies volume `id` from `path` into `dir` durably (temporary file, fsync, rename,
    /// fsync of the directory), replacing a kept copy of the same volume.
    fn keep(&self, dir: &Path, id: VolumeId, path: &Path) -> Result<()> {
        let parent = self.meta.join("volumes");
        for d in [&parent, &dir.to_path_buf()] {
            match create_private_dir(d) {
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
        }
        let target = dir.join(format!("{id}.airlock"));
        let mut tmp = tempfile::Builder::new().prefix(".keep-").tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
        let mut from = File::open(path).map_err(|e| Error::io(path, e))?;
        io::copy(&mut from, tmp.as_file_mut()).map_err(|e| Error::io(&target, e))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(&target, e))?;
        tmp.persist(&target).map_err(|e| Error::io(&target, e.error))?;
        sync_dir(dir)
    }
}

/// The volumes kept in `dir`, by the id their trailer claims.
fn kept_volumes(dir: &Path) -> Result<Vec<(VolumeId, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut kept = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let is_volume = path.extension().is_some_and(|e| e == "airlock");
        if let (true, Some(Ok(v))) = (is_volume, read_trailer(&path)?) {
            kept.push((v.id, path));
        }
    }
    kept.sort();
    Ok(kept)
}
