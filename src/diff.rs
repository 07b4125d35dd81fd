//! The difference between two states of a channel: which entries were added, changed,
//! removed or left unchanged, with their sizes (`airlock diff`, and the change breakdown
//! an import prints and logs).
//!
//! Pure: it compares entry lists and reads nothing. An entry is *unchanged* when its path,
//! size, SHA-256 and mode are all equal (the same test a delta pack uses to leave it out);
//! signature links are not compared, since they change no file.

use std::cmp::Ordering;

use crate::format::manifest::Entry;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Mode;
    use crate::format::path::RelPath;
    use crate::io::digest::Digest;

    fn entry(path: &str, content: &[u8], mode: Mode) -> Entry {
        Entry {
            path: RelPath::new(path).unwrap(),
            size: content.len() as u64,
            sha256: Digest::of(content),
            mode,
            signatures: vec![],
        }
    }

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
}
