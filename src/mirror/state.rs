//! The expected state of each channel (docs/FORMAT.md §9, "Channels and ownership"),
//! derived from the log and the kept manifests: what `mirror verify` holds the files to,
//! which channel owns a path, and what an import retires.
//!
//! A channel's state is its last complete (version 2) manifest's entries, with the entries
//! of every version-1 import after it laid over them, later ones replacing earlier ones at
//! the same path (version-1 imports only ever add and replace). A path belongs to the
//! channel whose state lists it.

use std::collections::BTreeMap;

use super::protocol::read_kept_manifest;
use super::{v2, Mirror, MirrorState};
use crate::error::{Error, Result};
use crate::format::manifest::Entry;
use crate::io::digest::Digest;

/// One channel's expected state in the mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelView {
    /// The sequence of its last import.
    pub sequence: u64,
    /// The manifest digest of its last import.
    pub manifest: Digest,
    /// Whether its last import was a complete (version 2) manifest.
    pub complete: bool,
    /// The files it holds, sorted by path.
    pub entries: Vec<Entry>,
}

impl Mirror {
    /// Every channel's expected state, by channel name.
    pub fn channel_states(&self) -> Result<BTreeMap<String, ChannelView>> {
        let state = self.state()?;
        self.channel_views(&state)
    }

    /// [`Mirror::channel_states`] for a log already read; an unusable kept manifest is an
    /// error.
    pub(super) fn channel_views(&self, state: &MirrorState) -> Result<BTreeMap<String, ChannelView>> {
        self.channel_views_with(state, |_, e| Err(e))
    }

    /// [`Mirror::channel_states`] for a log already read; `damaged` decides what an unusable
    /// kept manifest does (an error, or a note for `mirror verify` and the manifest skipped).
    pub(super) fn channel_views_with(
        &self,
        state: &MirrorState,
        mut damaged: impl FnMut(&Digest, Error) -> Result<()>,
    ) -> Result<BTreeMap<String, ChannelView>> {
        let mut imports: BTreeMap<&str, Vec<(u64, Digest)>> = BTreeMap::new();
        for (_, b) in state.imports() {
            if let Some(d) = Digest::from_hex(&b.manifest_sha256) {
                imports.entry(&b.channel).or_default().push((b.sequence, d));
            }
        }
        let mut views = BTreeMap::new();
        for (channel, list) in imports {
            let Some(&(sequence, manifest)) = list.last() else { continue };
            // Back to the last complete manifest: nothing before it counts.
            let mut layers = Vec::new();
            let mut complete = false;
            for (_, digest) in list.iter().rev() {
                let dir = self.meta.join("bundles").join(digest.to_hex());
                match read_kept_manifest(&dir, &digest.to_hex()) {
                    Ok(m) => {
                        let is_complete = v2::is_complete(&m);
                        if layers.is_empty() {
                            complete = is_complete;
                        }
                        layers.push(m.entries);
                        if is_complete {
                            break;
                        }
                    }
                    Err(e) => damaged(digest, e)?,
                }
            }
            let mut files: BTreeMap<String, Entry> = BTreeMap::new();
            for entries in layers.into_iter().rev() {
                for e in entries {
                    files.insert(e.path.as_str().to_owned(), e);
                }
            }
            let entries = files.into_values().collect();
            views.insert(channel.to_owned(), ChannelView { sequence, manifest, complete, entries });
        }
        Ok(views)
    }
}

/// Which channels list each path (more than one only in a mirror whose channels overlapped
/// before ownership was enforced).
pub(super) fn owners(views: &BTreeMap<String, ChannelView>) -> BTreeMap<&str, Vec<&str>> {
    let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (channel, view) in views {
        for e in &view.entries {
            owners.entry(e.path.as_str()).or_default().push(channel);
        }
    }
    owners
}
