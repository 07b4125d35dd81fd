//! The bundle format: everything `docs/FORMAT.md` specifies, as pure code (no environment,
//! no threads, no file-system policy). No module outside `format` spells a member name, a
//! signature suffix or a format limit.
//!
//! - [`head`]: the head frame: manifest, signatures, checksum list (FORMAT.md §3, §5).
//! - [`tar`]: the one canonical tar member header (§4).
//! - [`sums`]: the signed checksum list (§5) and the per-artifact checksum line.
//! - [`manifest`]: the signed manifest and its canonical CBOR encoding (§6).
//! - [`peek`]: the channel and creation time, read from unverified manifest bytes (§8 step 2).
//! - [`receipt`]: a mirror's signed statement of what it holds (§15).
//! - [`path`]: [`path::RelPath`], the only kind of path a bundle may name (§7).
//! - The limits (§11) are the constants below and in [`manifest`].

pub mod head;
pub mod manifest;
pub mod path;
pub mod peek;
pub mod receipt;
pub mod sums;
pub mod tar;
pub mod volume;

pub use manifest::{Limits, SIGNATURE_SUFFIXES};
pub use path::METADATA_DIR;

/// Name of the manifest member.
pub const MANIFEST_MEMBER: &str = "airlock/manifest.cbor";
/// Directory of the manifest signature members.
pub const SIGNATURES_DIR: &str = "airlock/signatures/";
/// Name of the checksum-list member.
pub const SUMS_MEMBER: &str = "airlock/SHA256SUMS.sig";
/// The directory of the head members. The mirror keeps each under its name without it
/// (FORMAT.md §9: `.airlock/bundles/<digest>/manifest.cbor`, ...).
pub const HEAD_DIR: &str = "airlock/";

/// A head member's name in the mirror's kept copy of the head (FORMAT.md §9).
pub fn kept_head_name(member: &str) -> &str {
    member.strip_prefix(HEAD_DIR).unwrap_or(member)
}

/// Prefix of every payload member.
pub const DATA_DIR: &str = "data/";
/// The name of the signature member for a key.
pub fn signature_member(key_id: crate::keys::KeyId) -> String {
    format!("{SIGNATURES_DIR}{key_id}.sig")
}

/// Largest zstd window accepted (log2): level 19 needs 2^23; larger windows are a memory bomb.
pub const WINDOW_LOG_MAX: u32 = 23;
/// Largest total of the entry sizes one manifest may declare (2^50 bytes, 1 PiB): beyond
/// any file system a mirror lives on, so a larger total is a forgery or a bug, not a bundle.
pub const MAX_PAYLOAD_BYTES: u64 = 1 << 50;
/// How many times its own length a zstd frame can decompress to, at most: every block that
/// produces output takes at least 4 bytes (a 3-byte block header and at least one byte of
/// content) and produces at most 128 KiB (RFC 8878 §3.1.1.2.4: Block_Maximum_Size is at
/// most 128 KiB; libzstd refuses a larger block). Frame headers only add to the length.
pub const ZSTD_MAX_EXPANSION: u64 = (128 << 10) / 4;
/// Largest signature member.
pub const MAX_SIGNATURE_BYTES: u64 = 4096;
/// Most signature members.
pub const MAX_SIGNATURES: usize = 256;
/// The suffix of the signed checksum line `pack --sign-artifacts` writes.
pub const CHECKSUM_SIG_SUFFIX: &str = ".sha256.sig";

/// What kind of detached signature a linked entry is, from its suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigKind {
    /// `<artifact>.sig`: signify, Ed25519 over the file.
    Signify,
    /// `<artifact>.minisig`: minisign.
    Minisign,
    /// `<artifact>.asc`: OpenPGP, carried but not verified.
    Pgp,
    /// `<artifact>.sha256.sig`: a signify embedded signature of the file's checksum line.
    Checksum,
}

impl SigKind {
    /// The kind of `sig`, a linked signature of `artifact`.
    pub fn of(artifact: &str, sig: &str) -> Option<SigKind> {
        match sig.strip_prefix(artifact)? {
            ".sig" => Some(SigKind::Signify),
            ".minisig" => Some(SigKind::Minisign),
            ".asc" => Some(SigKind::Pgp),
            CHECKSUM_SIG_SUFFIX => Some(SigKind::Checksum),
            _ => None,
        }
    }
}
