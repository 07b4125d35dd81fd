//! The few facts about a manifest that differ between format versions 1 and 2, asked in one
//! place: whether a manifest is the channel's complete state, whether an entry is carried in
//! the payload, and which mirror a delta was built for (docs/FORMAT.md §6).

use crate::format::manifest::{Entry, Manifest};

pub use crate::format::manifest::MirrorId;

/// Whether `m` lists its channel's whole intended state (version 2 and later): then the
/// channel's files it no longer lists are retired, and its entries not carried must already
/// be in the mirror.
pub(crate) fn is_complete(m: &Manifest) -> bool {
    m.is_complete()
}

/// Whether `e`'s content is in the payload (always, in a version-1 manifest).
pub(crate) fn is_carried(e: &Entry) -> bool {
    e.carried
}

/// The mirror a delta was built for, if the manifest names one.
pub(crate) fn base_mirror(m: &Manifest) -> Option<MirrorId> {
    m.base.as_ref().map(|b| b.mirror)
}
