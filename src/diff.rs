//! The difference between two states of a channel: which entries were added, changed,
//! removed or left unchanged, with their sizes (`airlock diff`, and the change breakdown
//! an import prints and logs).
//!
//! [`compare`] is pure: it compares entry lists and reads nothing. An entry is *unchanged*
//! when its path, size, SHA-256 and mode are all equal (the same test a delta pack uses to
//! leave it out); signature links are not compared, since they change no file.
//!
//! [`Side::load`] reads one side of `airlock diff`: a bundle (its head only, unverified,
//! as `inspect` reads it: a diff decides nothing) or a receipt (its signature checked,
//! each channel's manifest found by digest in the packer's state or among given bundles).
//! [`Side::open_mirror`] reads a mirror's expected state per channel. [`compare_sides`]
//! pairs the channels of two sides by name.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::manifest::{Entry, Manifest};
use crate::format::receipt::MirrorId;
use crate::io::digest::Digest;
use crate::keys::PublicKey;
use crate::pack::state::file_start;
use crate::pack::{read_receipt, BaseProblem, ChannelState, PackError};
use crate::verify::Bundle;

/// What differs between one entry on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changes {
    /// The sizes differ.
    pub size: bool,
    /// The SHA-256 digests differ.
    pub sha256: bool,
    /// The modes differ.
    pub mode: bool,
}

impl Changes {
    /// The names of what changed, in a fixed order: `size`, `sha256`, `mode`.
    pub fn names(&self) -> Vec<&'static str> {
        [(self.size, "size"), (self.sha256, "sha256"), (self.mode, "mode")]
            .into_iter()
            .filter_map(|(changed, name)| changed.then_some(name))
            .collect()
    }
}

/// An entry present on both sides with different content or mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changed<'a> {
    /// The old side's entry.
    pub old: &'a Entry,
    /// The new side's entry.
    pub new: &'a Entry,
    /// What differs.
    pub changes: Changes,
}

/// Files and bytes of one kind of difference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Total {
    /// How many entries.
    pub files: u64,
    /// Their total size (for changed entries: the new size). Saturating: hostile manifests
    /// may declare sizes that add up past `u64::MAX`.
    pub bytes: u64,
}

impl Total {
    fn of<'a>(entries: impl Iterator<Item = &'a Entry>) -> Total {
        entries.fold(Total::default(), |t, e| Total { files: t.files + 1, bytes: t.bytes.saturating_add(e.size) })
    }
}

/// The difference between two entry lists, each part sorted by path bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff<'a> {
    /// On the new side only.
    pub added: Vec<&'a Entry>,
    /// On both sides, different.
    pub changed: Vec<Changed<'a>>,
    /// On the old side only.
    pub removed: Vec<&'a Entry>,
    /// On both sides, equal (the new side's entry).
    pub unchanged: Vec<&'a Entry>,
}

impl Diff<'_> {
    /// Whether the two sides hold the same files.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// Added entries: count and bytes.
    pub fn added_total(&self) -> Total {
        Total::of(self.added.iter().copied())
    }

    /// Changed entries: count and bytes of their new versions.
    pub fn changed_total(&self) -> Total {
        Total::of(self.changed.iter().map(|c| c.new))
    }

    /// Removed entries: count and bytes.
    pub fn removed_total(&self) -> Total {
        Total::of(self.removed.iter().copied())
    }

    /// Unchanged entries: count and bytes.
    pub fn unchanged_total(&self) -> Total {
        Total::of(self.unchanged.iter().copied())
    }
}

/// Compares two states. Neither list needs to be sorted; each path is expected once per
/// side (as in any valid manifest).
pub fn compare<'a>(old: &'a [Entry], new: &'a [Entry]) -> Diff<'a> {
    let old = sorted(old);
    let new = sorted(new);
    let mut diff = Diff::default();
    let (mut i, mut j) = (0, 0);
    // A merge walk over both sorted lists: linear, and no map of 200,000 paths.
    loop {
        match (old.get(i), new.get(j)) {
            (None, None) => break,
            (Some(o), None) => {
                diff.removed.push(*o);
                i += 1;
            }
            (None, Some(n)) => {
                diff.added.push(*n);
                j += 1;
            }
            (Some(o), Some(n)) => match path_order(o, n) {
                Ordering::Less => {
                    diff.removed.push(*o);
                    i += 1;
                }
                Ordering::Greater => {
                    diff.added.push(*n);
                    j += 1;
                }
                Ordering::Equal => {
                    let changes =
                        Changes { size: o.size != n.size, sha256: o.sha256 != n.sha256, mode: o.mode != n.mode };
                    if changes.size || changes.sha256 || changes.mode {
                        diff.changed.push(Changed { old: o, new: n, changes });
                    } else {
                        diff.unchanged.push(*n);
                    }
                    i += 1;
                    j += 1;
                }
            },
        }
    }
    diff
}

fn path_order(a: &Entry, b: &Entry) -> Ordering {
    a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes())
}

fn sorted(entries: &[Entry]) -> Vec<&Entry> {
    let mut refs: Vec<&Entry> = entries.iter().collect();
    // Manifest entries are sorted already, so this is a linear check in the usual case.
    refs.sort_by(|a, b| path_order(a, b));
    refs
}

// ---------------------------------------------------------------------------------------
// Sides of `airlock diff`

/// What one side of a diff is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideKind {
    /// A bundle file: one channel.
    Bundle,
    /// A receipt: every channel it lists, as the manifests it names.
    Receipt {
        /// The mirror that signed it.
        mirror: MirrorId,
    },
    /// A mirror directory: each channel's expected state (`Mirror::channel_states`).
    Mirror,
}

/// One channel's state on one side.
#[derive(Clone, Debug)]
pub struct ChannelSide {
    /// The channel.
    pub channel: String,
    /// The bundle's sequence.
    pub sequence: u64,
    /// Its manifest digest.
    pub manifest: Digest,
    /// The channel's complete state.
    pub entries: Vec<Entry>,
    /// False when a receipt says the mirror's files of the channel are damaged (the
    /// entries are then the manifest's, not what the mirror holds).
    pub intact: bool,
}

/// One side of a diff: what it is and its channels, sorted by name.
#[derive(Clone, Debug)]
pub struct Side {
    /// The file it was read from.
    pub path: PathBuf,
    /// A bundle or a receipt.
    pub kind: SideKind,
    /// Its channels, sorted by name.
    pub channels: Vec<ChannelSide>,
}

/// Where a receipt side's manifests are found, and the keys its signature is checked with.
pub struct Resolver<'a> {
    /// The keys trusted to sign receipts.
    pub trusted: &'a [PublicKey],
    /// The packer's state (its kept manifests).
    pub state: Option<&'a ChannelState>,
    /// Bundles (or kept heads) that may hold the manifests a receipt names.
    pub bases: &'a [PathBuf],
}

/// First bytes of a signify file, and so of a receipt.
const RECEIPT_START: &[u8] = b"untrusted comment: ";

impl Side {
    /// Reads one side: a receipt if the file starts like a signify file, else a bundle.
    pub fn load(path: &Path, resolver: &Resolver<'_>) -> Result<Side> {
        if file_start(path, RECEIPT_START.len() as u64)? == RECEIPT_START {
            return Side::receipt(path, resolver);
        }
        let bundle = Bundle::open(path)?;
        let (manifest, digest) = (bundle.unverified_manifest()?, bundle.head().manifest_digest);
        Ok(Side { path: path.to_owned(), kind: SideKind::Bundle, channels: vec![channel_side(manifest, digest, true)] })
    }

    /// A mirror's side, from its channels' expected states (name, sequence, manifest digest,
    /// entries), as `Mirror::channel_states` gives them.
    pub fn mirror(path: &Path, channels: impl IntoIterator<Item = (String, u64, Digest, Vec<Entry>)>) -> Side {
        let mut channels: Vec<ChannelSide> = channels
            .into_iter()
            .map(|(channel, sequence, manifest, entries)| ChannelSide {
                channel,
                sequence,
                manifest,
                entries,
                intact: true,
            })
            .collect();
        channels.sort_by(|a, b| a.channel.cmp(&b.channel));
        Side { path: path.to_owned(), kind: SideKind::Mirror, channels }
    }

    /// A mirror directory's side: each channel's expected state, read from its log and kept
    /// manifests (nothing in the mirror is written).
    pub fn open_mirror(dir: &Path) -> Result<Side> {
        let views = crate::mirror::Mirror::open(dir)?.channel_states()?;
        Ok(Side::mirror(dir, views.into_iter().map(|(name, v)| (name, v.sequence, v.manifest, v.entries))))
    }

    fn receipt(path: &Path, resolver: &Resolver<'_>) -> Result<Side> {
        let (receipt, _) = read_receipt(path, resolver.trusted)?;
        let mut channels = Vec::with_capacity(receipt.channels.len());
        for c in &receipt.channels {
            let manifest = find_manifest(&c.name, &c.manifest, resolver)?;
            channels.push(channel_side(manifest, c.manifest, c.intact));
        }
        Ok(Side { path: path.to_owned(), kind: SideKind::Receipt { mirror: receipt.mirror }, channels })
    }
}

fn channel_side(m: Manifest, digest: Digest, intact: bool) -> ChannelSide {
    ChannelSide { channel: m.channel, sequence: m.sequence, manifest: digest, entries: m.entries, intact }
}

/// The manifest with `digest`: kept in the packer's state, or the head of one of the bases.
fn find_manifest(channel: &str, digest: &Digest, resolver: &Resolver<'_>) -> Result<Manifest> {
    if let Some(m) = resolver.state.map(|s| s.kept_manifest(digest)).transpose()?.flatten() {
        return Ok(m);
    }
    for base in resolver.bases {
        let bundle = Bundle::open(base)?;
        if bundle.head().manifest_digest == *digest {
            return bundle.unverified_manifest();
        }
    }
    Err(Error::Pack(PackError::Base(BaseProblem::NotKept {
        channel: channel.to_owned(),
        manifest: *digest,
        dir: resolver.state.map_or_else(PathBuf::new, |s| s.manifests_dir()),
    })))
}

/// One channel's difference between two sides; a side without the channel counts as empty.
#[derive(Debug)]
pub struct ChannelDiff<'a> {
    /// The channel.
    pub channel: &'a str,
    /// The old side's state of it, if it has the channel.
    pub old: Option<&'a ChannelSide>,
    /// The new side's.
    pub new: Option<&'a ChannelSide>,
    /// The difference.
    pub diff: Diff<'a>,
}

/// Pairs the channels of two sides by name and compares each pair, in name order.
pub fn compare_sides<'a>(old: &'a Side, new: &'a Side) -> Vec<ChannelDiff<'a>> {
    let mut names: Vec<&str> = old.channels.iter().chain(&new.channels).map(|c| c.channel.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let find = |side: &'a Side| side.channels.iter().find(|c| c.channel == name);
            let (o, n) = (find(old), find(new));
            let diff = compare(o.map_or(&[], |c| &c.entries), n.map_or(&[], |c| &c.entries));
            ChannelDiff { channel: name, old: o, new: n, diff }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Mode;
    use crate::io::digest::Digest;

    use crate::format::manifest::tests::entry;

    #[test]
    fn each_kind_of_difference_is_found() {
        let old = vec![
            entry("a", b"same", Mode::Regular),
            entry("b", b"old", Mode::Regular),
            entry("c", b"mode", Mode::Regular),
            entry("d", b"gone", Mode::Regular),
            entry("e", b"1234", Mode::Regular),
        ];
        let new = vec![
            entry("e", b"4321", Mode::Regular),
            entry("a", b"same", Mode::Regular),
            entry("b", b"newer", Mode::Regular),
            entry("c", b"mode", Mode::Executable),
            entry("f", b"fresh", Mode::Regular),
        ];
        let diff = compare(&old, &new);
        let paths = |v: &[&Entry]| v.iter().map(|e| e.path.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(paths(&diff.added), ["f"]);
        assert_eq!(paths(&diff.removed), ["d"]);
        assert_eq!(paths(&diff.unchanged), ["a"]);
        let changed: Vec<(&str, Vec<&str>)> =
            diff.changed.iter().map(|c| (c.new.path.as_str(), c.changes.names())).collect();
        assert_eq!(changed, [("b", vec!["size", "sha256"]), ("c", vec!["mode"]), ("e", vec!["sha256"])]);
        assert_eq!(diff.added_total(), Total { files: 1, bytes: 5 });
        assert_eq!(diff.changed_total(), Total { files: 3, bytes: 13 });
        assert_eq!(diff.removed_total(), Total { files: 1, bytes: 4 });
        assert_eq!(diff.unchanged_total(), Total { files: 1, bytes: 4 });
        assert!(!diff.is_empty());
    }

    #[test]
    fn equal_and_empty_sides() {
        let files = vec![entry("x", b"x", Mode::Regular)];
        assert!(compare(&files, &files).is_empty());
        assert_eq!(compare(&files, &files).unchanged.len(), 1);
        assert!(compare(&[], &[]).is_empty());
        assert_eq!(compare(&[], &files).added.len(), 1);
        assert_eq!(compare(&files, &[]).removed.len(), 1);
    }

    #[test]
    fn sides_pair_channels_by_name() {
        let d = Digest::of(b"m");
        let old = Side::mirror(
            Path::new("m"),
            [("b".to_owned(), 1, d, vec![entry("x", b"x", Mode::Regular)]), ("a".to_owned(), 2, d, vec![])],
        );
        let new = Side::mirror(Path::new("n"), [("b".to_owned(), 2, d, vec![entry("y", b"y", Mode::Regular)])]);
        let pairs = compare_sides(&old, &new);
        let names: Vec<&str> = pairs.iter().map(|c| c.channel).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(pairs[0].new.is_none() && pairs[0].diff.is_empty());
        assert_eq!((pairs[1].diff.added.len(), pairs[1].diff.removed.len()), (1, 1));
    }
}
