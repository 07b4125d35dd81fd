//! The few facts about a manifest that differ between format versions 1 and 2, asked in one
//! place: whether a manifest is the channel's complete state, whether an entry is carried in
//! the payload, and which mirror a delta was built for (docs/FORMAT.md §6).
//!
//! (Until "format v2 core" is merged this holds a stand-in `MirrorId` and answers for
//! version 1 only.)

use crate::format::manifest::{Entry, Manifest};
use crate::io::digest;

/// A mirror's random identity (`.airlock/id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MirrorId(pub [u8; 16]);

impl MirrorId {
    /// A new random id.
    pub fn random() -> MirrorId {
        let mut b = [0u8; 16];
        getrandom::getrandom(&mut b).expect("operating system random number generator failed");
        MirrorId(b)
    }

    /// 32 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        digest::hex(&self.0)
    }

    /// Parses 32 hex digits.
    pub fn from_hex(text: &str) -> Option<MirrorId> {
        let bytes = digest::unhex(text)?;
        Some(MirrorId(bytes.try_into().ok()?))
    }
}

impl std::fmt::Display for MirrorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Whether `m` lists its channel's whole intended state (version 2 and later): then the
/// channel's files it no longer lists are retired, and its entries not carried must already
/// be in the mirror.
pub(crate) fn is_complete(_m: &Manifest) -> bool {
    false
}

/// Whether `e`'s content is in the payload (always, in a version-1 manifest).
pub(crate) fn is_carried(_e: &Entry) -> bool {
    true
}

/// The mirror a delta was built for, if the manifest names one.
pub(crate) fn base_mirror(_m: &Manifest) -> Option<MirrorId> {
    None
}
