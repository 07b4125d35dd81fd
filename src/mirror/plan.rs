//! The import plan (docs/FORMAT.md §10 step 2), decided before anything is staged: every
//! entry can be placed (nothing but a regular file of the same channel where a file goes,
//! no other channel's path, no file airlock did not place), every entry the bundle does not
//! carry is already in the mirror as signed (by stat stamp or by re-hash), what a complete
//! manifest retires, the change breakdown, and free space for the bytes actually written.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

use super::error::{BaseProblem, Conflict, Conflicts, PlacementConflict, PlanReject};
use super::stamps::{self, Found};
use super::state::{owners, ChannelView};
use super::{plain, protocol, v2, BaseCheck, ImportOptions, Mirror};
use crate::error::{Error, Reject, Result};
use crate::format::manifest::{Entry, Manifest};
use crate::io::digest::Digest;

/// What changed in a channel with an import: counts and bytes (`[files, bytes]`) of entries
/// added, changed (new content or mode), removed (retired) and unchanged, relative to the
/// channel's state before it, and the bytes the import wrote (docs/FORMAT.md §9).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Paths the channel did not hold.
    pub added: [u64; 2],
    /// Paths it held with another size, SHA-256 or mode.
    pub changed: [u64; 2],
    /// Paths it held that the new complete manifest no longer lists (bytes: their old size).
    pub removed: [u64; 2],
    /// Paths it held exactly so.
    pub unchanged: [u64; 2],
    /// Bytes the import wrote into the mirror (the carried entries).
    pub written_bytes: u64,
}

/// A decided import.
pub(super) struct Plan {
    /// The manifest's digest.
    pub(super) manifest_digest: Digest,
    /// The channel's files the new manifest no longer lists.
    pub(super) retire: Vec<Entry>,
    /// Entries not carried whose files were hashed by this import: stamped at the commit.
    pub(super) restamp: Vec<String>,
    /// The breakdown.
    pub(super) changes: Changes,
}

impl Mirror {
    /// Decides the import of `m` (whose channel states before it are `views`), or rejects it
    /// with every problem of the first kind found: placement and ownership conflicts, then
    /// entries missing from the base, then a mass retirement; then checks free space.
    pub(super) fn plan(
        &self,
        m: &Manifest,
        manifest_digest: Digest,
        views: &BTreeMap<String, ChannelView>,
        opts: &ImportOptions,
    ) -> Result<Plan> {
        if let Some(bundle) = v2::base_mirror(m) {
            if bundle != self.id {
                let reason = PlanReject::WrongMirror { bundle: bundle.to_hex(), mirror: self.id.to_hex() };
                return Err(Reject::Plan(reason).into());
            }
        }
        self.check_placement(m, views)?;
        let restamp = self.check_base(m, opts.base_check)?;
        let previous = views.get(&m.channel);
        let retire = retirement(m, previous, views);
        if let Some(prev) = previous {
            let files = prev.entries.len();
            if retire.len() > 10 && retire.len() * 2 > files && !opts.allow_mass_retire {
                let reason = PlanReject::MassRetire { channel: m.channel.clone(), retire: retire.len(), files };
                return Err(Reject::Plan(reason).into());
            }
        }
        let changes = breakdown(m, previous, &retire);
        protocol::check_free_space(&self.meta, changes.written_bytes)?;
        Ok(Plan { manifest_digest, retire, restamp, changes })
    }

    /// Every entry must have a place: its ancestors directories (or absent), its own path a
    /// regular file or absent; and a file there must be the importing channel's own. All
    /// conflicts are listed.
    fn check_placement(&self, m: &Manifest, views: &BTreeMap<String, ChannelView>) -> Result<()> {
        let owners = owners(views);
        let mut conflicts = Vec::new();
        let mut present_dirs = HashSet::new();
        let mut absent_dirs = HashSet::new();
        for entry in &m.entries {
            let mut found = None;
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
                    Ok(meta) if meta.is_dir() => {
                        present_dirs.insert(dir);
                    }
                    Ok(_) => {
                        found = Some(PlacementConflict::NotADirectory { dir: dir.to_owned() });
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        absent_dirs.insert(dir);
                        under_absent = true;
                        break;
                    }
                    Err(e) => return Err(Error::io(self.root.join(dir), e)),
                }
            }
            if found.is_none() && !under_absent {
                found = self.check_file_place(entry, &m.channel, &owners)?;
            }
            if let Some(reason) = found {
                conflicts.push(Conflict { path: entry.path.to_string(), reason });
            }
        }
        if conflicts.is_empty() {
            Ok(())
        } else {
            Err(Reject::Conflict(Conflicts(conflicts)).into())
        }
    }

    /// Whether `entry`'s own path can take it: a regular file is replaced by a rename
    /// (which changes only this name: a hard link elsewhere keeps the old content), but only
    /// a file the importing channel owns.
    fn check_file_place(
        &self,
        entry: &Entry,
        channel: &str,
        owners: &BTreeMap<&str, Vec<&str>>,
    ) -> Result<Option<PlacementConflict>> {
        let path = self.root.join(entry.path.as_str());
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        if meta.is_dir() || meta.is_symlink() {
            return Ok(Some(PlacementConflict::NotAFile));
        }
        if !meta.is_file() {
            return Ok(Some(PlacementConflict::SpecialFile { found: plain::kind_name(&meta) }));
        }
        let listed_by = owners.get(entry.path.as_str()).map(Vec::as_slice).unwrap_or_default();
        if let Some(other) = listed_by.iter().find(|c| **c != channel) {
            return Ok(Some(PlacementConflict::OwnedByChannel { channel: (*other).to_owned() }));
        }
        if listed_by.is_empty() {
            return Ok(Some(PlacementConflict::NotPlacedByAirlock));
        }
        Ok(None)
    }

    /// Every entry the bundle does not carry must be in the mirror with its signed size,
    /// mode and SHA-256. Returns the paths that were hashed (to stamp at the commit).
    fn check_base(&self, m: &Manifest, mode: BaseCheck) -> Result<Vec<String>> {
        let stamps = stamps::load(&self.meta)?;
        let mut problems = Vec::new();
        let mut restamp = Vec::new();
        for entry in m.entries.iter().filter(|e| !v2::is_carried(e)) {
            let file = self.root.join(entry.path.as_str());
            match stamps::check(&file, entry, &stamps, mode == BaseCheck::Stat)? {
                Found::Stamped => {}
                Found::Hashed => restamp.push(entry.path.to_string()),
                Found::Differs(problem) => problems.push(BaseProblem { path: entry.path.to_string(), problem }),
            }
        }
        if problems.is_empty() {
            return Ok(restamp);
        }
        let total = problems.len();
        problems.truncate(PlanReject::LISTED);
        Err(Reject::Plan(PlanReject::MissingBase { missing: problems, total }).into())
    }
}

/// The channel's files a complete manifest no longer lists and no other channel lists.
fn retirement(m: &Manifest, previous: Option<&ChannelView>, views: &BTreeMap<String, ChannelView>) -> Vec<Entry> {
    let Some(prev) = previous.filter(|_| v2::is_complete(m)) else {
        return Vec::new();
    };
    let listed: HashSet<&str> = m.entries.iter().map(|e| e.path.as_str()).collect();
    let others: HashSet<&str> = views
        .iter()
        .filter(|(c, _)| **c != m.channel)
        .flat_map(|(_, v)| v.entries.iter().map(|e| e.path.as_str()))
        .collect();
    prev.entries
        .iter()
        .filter(|e| !listed.contains(e.path.as_str()) && !others.contains(e.path.as_str()))
        .cloned()
        .collect()
}

/// The change breakdown of `m` against the channel's state before it.
fn breakdown(m: &Manifest, previous: Option<&ChannelView>, retire: &[Entry]) -> Changes {
    let before: BTreeMap<&str, &Entry> =
        previous.map(|p| p.entries.iter().map(|e| (e.path.as_str(), e)).collect()).unwrap_or_default();
    let mut c = Changes::default();
    let add = |slot: &mut [u64; 2], size: u64| {
        let [files, bytes] = *slot;
        *slot = [files.saturating_add(1), bytes.saturating_add(size)];
    };
    for e in &m.entries {
        match before.get(e.path.as_str()) {
            None => add(&mut c.added, e.size),
            Some(old) if old.size == e.size && old.sha256 == e.sha256 && old.mode == e.mode => {
                add(&mut c.unchanged, e.size)
            }
            Some(_) => add(&mut c.changed, e.size),
        }
        if v2::is_carried(e) {
            c.written_bytes = c.written_bytes.saturating_add(e.size);
        }
    }
    for e in retire {
        add(&mut c.removed, e.size);
    }
    c
}
