//! The receipt: a mirror's signed statement of what it holds (FORMAT.md §15), written on the
//! inside (`airlock mirror receipt`) and read on the outside (`receipt verify`,
//! `pack --since`), where it decides what a delta bundle may omit. It never decides what is
//! trusted: every entry a delta omits is checked in the mirror at import.

use crate::format::manifest::{Entry, MirrorId};
use crate::io::digest::{Digest, Hasher};

/// What a mirror says it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The mirror (`.airlock/id`).
    pub mirror: MirrorId,
    /// When the receipt was made (Unix seconds, the mirror machine's clock).
    pub created: u64,
    /// Records in the mirror's import log.
    pub log_records: u64,
    /// SHA-256 of the log's last line (the head of its hash chain; zeros for an empty log).
    pub log_head: Digest,
    /// One line per channel the mirror has imported, sorted by name.
    pub channels: Vec<ReceiptChannel>,
    /// Files held for all channels, as found.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// [`state_root`] of those files.
    pub root: Digest,
}

/// One channel in a [`Receipt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptChannel {
    /// The channel name.
    pub name: String,
    /// Its last imported sequence.
    pub sequence: u64,
    /// Its last imported manifest's digest.
    pub manifest: Digest,
    /// Files the mirror holds for the channel, as found (a file that fails its check is
    /// left out).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// [`state_root`] of those files.
    pub root: Digest,
    /// Whether they are exactly the channel's expected state.
    pub intact: bool,
}

/// The commitment to a set of files: SHA-256 over the lines
/// `<sha256 hex> <size> <mode octal> <path>\n`, sorted by path bytes. The outside recomputes
/// it from a manifest's entries to see whether the mirror holds exactly that state.
pub fn state_root<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Digest {
    let mut sorted: Vec<&Entry> = entries.into_iter().collect();
    sorted.sort_by(|a, b| a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes()));
    let mut hasher = Hasher::new();
    for e in sorted {
        hasher.update(format!("{} {} {:o} {}\n", e.sha256, e.size, e.mode.bits(), e.path).as_bytes());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::tests::sample;

    #[test]
    fn state_root_is_order_independent_and_pinned() {
        let m = sample();
        let forward = state_root(&m.entries);
        let backward = state_root(m.entries.iter().rev());
        assert_eq!(forward, backward);
        let mut text = String::new();
        for e in &m.entries {
            text.push_str(&format!("{} {} {:o} {}\n", e.sha256, e.size, e.mode.bits(), e.path));
        }
        assert_eq!(forward, Digest::of(text.as_bytes()));
        assert_ne!(state_root(&m.entries[1..]), forward);
    }
}
