//! The bundle manifest: what a bundle holds, signed byte for byte.
//!
//! This is the only module that knows CBOR: serde_cbor stays behind [`encode`] and
//! [`decode`], where it can be swapped (deny.toml says why it stays although unmaintained). The encoding is specified in
//! docs/FORMAT.md §"Manifest"; the rules that matter for security:
//! - signatures cover the exact stored bytes, and the reader never re-serialises to verify;
//! - the bytes start with [`prefix`] (a CBOR self-describe tag, then the `format` and
//!   `version` fields), so no other message airlock signs can be taken for a manifest;
//! - [`decode`] accepts only the canonical encoding (it re-encodes and compares), so two
//!   implementations can never read one manifest two ways.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;

use serde::{Deserialize, Serialize};
use serde_bytes::Bytes;

use crate::error::Reject;
use crate::format::path::{is_control, is_invisible, RelPath};
use crate::io::digest::Digest;

/// The `format` field.
pub const FORMAT: &str = "airlock-manifest";
/// The `version` field this code reads and writes.
pub const VERSION: u64 = 3;
/// The second format version: the manifest fields of version 3, no padding frame (FORMAT.md
/// §3, §12); still read (and written only where a test needs one).
pub const VERSION_2: u64 = 2;
/// The first format version, still read (and written only where a test needs one).
pub const VERSION_1: u64 = 1;
/// Every version this code reads, newest first.
pub const KNOWN_VERSIONS: [u64; 3] = [VERSION, VERSION_2, VERSION_1];
/// The first format version whose head carries the larger [`Limits::V3`].
pub const SCALED_LIMITS_FROM: u64 = 3;
/// Longest channel name.
pub const MAX_CHANNEL_BYTES: usize = 64;
/// Longest label, meta key or meta value.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most `meta` pairs.
pub const MAX_META: usize = 256;
/// Latest `created` or `expires`: 9999-12-31T23:59:59Z, the last second a four-digit
/// year can print.
pub const MAX_TIME: u64 = 253_402_300_799;
/// Suffixes that make an entry a detached signature of its sibling: signify, minisign,
/// OpenPGP, and the signed checksum line of `pack --sign-artifacts`.
pub const SIGNATURE_SUFFIXES: [&str; 4] = [".sig", ".minisig", ".asc", ".sha256.sig"];

/// The limits a packer can reach with a large tree (FORMAT.md §11): the largest manifest
/// member, the largest checksum-list member, and the most entries. The one definition both
/// sides use: pack refuses what exceeds them before it writes anything (`pack::preflight`),
/// and a reader refuses the same (the head's member headers, [`decode`]). A reader holds
/// the manifest and the checksum list in memory while it checks their signatures, so these
/// also bound what it holds before anything is verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest `airlock/manifest.cbor`, in bytes.
    pub manifest_bytes: u64,
    /// Largest `airlock/SHA256SUMS.sig`, in bytes.
    pub sums_bytes: u64,
    /// Most manifest entries.
    pub entries: u64,
}

impl Limits {
    /// Versions 1 and 2: a 64 MiB manifest (about 700,000 entries with short paths), a
    /// checksum list of twice that, and no count of its own.
    pub const V2: Limits = Limits { manifest_bytes: 64 << 20, sums_bytes: 128 << 20, entries: u64::MAX };
    /// From version 3 ([`SCALED_LIMITS_FROM`]): 2^24 entries (16,777,216), a 2 GiB manifest
    /// and a 4 GiB checksum list (FORMAT.md §11 says why).
    pub const V3: Limits = Limits { manifest_bytes: 2 << 30, sums_bytes: 4 << 30, entries: 1 << 24 };
    /// The largest of every version: what a reader holds a member to before it knows the
    /// manifest's version.
    pub const LARGEST: Limits = Limits::V3;

    /// The limits of format `version`.
    pub fn of_version(version: u64) -> Limits {
        #[cfg(feature = "fault-injection")]
        if let Some(limits) = TEST_LIMITS.get() {
            return *limits;
        }
        if version >= SCALED_LIMITS_FROM {
            Limits::V3
        } else {
            Limits::V2
        }
    }

    /// The limits of the version the start of manifest bytes names, or the smallest when it
    /// names none (decoding refuses such bytes anyway).
    pub fn of_manifest(start: &[u8]) -> Limits {
        match split_prefix(start) {
            Ok((version, _)) => Limits::of_version(version),
            Err(_) => Limits::V2,
        }
    }

    /// Refuses a manifest member of `len` bytes over the limit.
    pub fn check_manifest_len(&self, len: u64) -> Result<(), Reject> {
        check_limit(crate::format::MANIFEST_MEMBER, len, self.manifest_bytes, "bytes")
    }

    /// Refuses a checksum-list member of `len` bytes over the limit.
    pub fn check_sums_len(&self, len: u64) -> Result<(), Reject> {
        check_limit(crate::format::SUMS_MEMBER, len, self.sums_bytes, "bytes")
    }

    /// Refuses a manifest of `count` entries over the limit.
    pub fn check_entries(&self, count: u64) -> Result<(), Reject> {
        check_limit("manifest", count, self.entries, "entries")
    }
}

/// Test hook (feature `fault-injection`): limits every version has in this process.
#[cfg(feature = "fault-injection")]
static TEST_LIMITS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();

/// Test hook (feature `fault-injection`): from now on every version has `limits` in this
/// process, writer and reader alike, so a test reaches them with a small tree (the binary
/// sets it from `AIRLOCK_TEST_LIMITS`). The first call wins.
#[cfg(feature = "fault-injection")]
pub fn set_test_limits(limits: Limits) {
    let _ = TEST_LIMITS.set(limits);
}

/// `<what> of <value> <unit>` over `limit` is a [`Reject::Limit`].
fn check_limit(what: &str, value: u64, limit: u64, unit: &str) -> Result<(), Reject> {
    if value > limit {
        return Err(Reject::Limit { what: format!("{what} of {value} {unit}"), limit: format!("{limit} {unit}") });
    }
    Ok(())
}

/// Why manifest bytes are not a valid manifest: the manifest rules of docs/FORMAT.md §6, one
/// variant per rule. Carried by [`Reject::Manifest`]; the prose is only in `Display`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The bytes do not start with [`prefix`].
    #[error("does not start with the airlock manifest prefix")]
    BadPrefix,
    /// The prefix names another format version.
    #[error(
        "unsupported format version (this airlock reads versions {VERSION_1} to {VERSION}): made by a newer airlock?"
    )]
    UnsupportedVersion,
    /// The CBOR decoder refused the bytes (its message).
    #[error("cannot decode: {0}")]
    Undecodable(String),
    /// The decoded `format` and `version` fields are not this format's.
    #[error("format {format:?} version {version} is not {FORMAT:?} version {VERSION_1} to {VERSION}")]
    WrongFormat {
        /// The `format` field.
        format: String,
        /// The `version` field.
        version: u64,
    },
    /// The bytes decode, but are not the one canonical encoding of what they decode to.
    #[error("not in canonical encoding (docs/FORMAT.md §Manifest)")]
    NotCanonical,
    /// The fixed-layout start read before verification is not a manifest's.
    #[error("cannot read the channel: not an airlock manifest")]
    PeekNotAManifest,
    /// The bytes end inside the fixed-layout start.
    #[error("cannot read the channel: manifest is truncated")]
    PeekTruncated,
    /// The fixed-layout start lacks a field, or has it out of order.
    #[error("cannot read the channel: expected the key {0:?}")]
    PeekExpectedKey(&'static str),
    /// A fixed-layout field that must be an integer is not one.
    #[error("cannot read the channel: expected an integer")]
    PeekExpectedInteger,
    /// `channel` or `created`, read before verification, differ from the decoded manifest.
    #[error("channel or created read before decoding differ from the decoded manifest")]
    PeekMismatch,
    /// The version-2 `carried` bitmap is missing or malformed.
    #[error("carried bitmap {reason}")]
    BadCarried {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An artifact and its linked signatures are not all carried, or all omitted.
    #[error(
        "entry {entry:?} and its signature {signature:?} must be carried together (both in the payload, or neither)"
    )]
    SplitSignatureGroup {
        /// The artifact.
        entry: String,
        /// The linked signature entry.
        signature: String,
    },
    /// An entry's mode is neither 644 nor 755.
    #[error("entry {path:?}: mode {mode:o} is not 644 or 755")]
    BadMode {
        /// The entry path, as written.
        path: String,
        /// The mode.
        mode: u32,
    },
    /// An entry's `sha256` is not 32 bytes.
    #[error("sha256 of entry {path:?} is {len} bytes, expected 32")]
    BadDigestLength {
        /// The entry path, as written.
        path: String,
        /// Its length.
        len: usize,
    },
    /// A fixed-size byte field (`bundle_id`, `previous`) has the wrong length.
    #[error("{field} is {len} bytes, expected {expected}")]
    BadFieldLength {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The length it must have.
        expected: usize,
    },
    /// The channel name breaks the channel rule.
    #[error(
        "channel name {name:?} must be 1 to {MAX_CHANNEL_BYTES} characters of A-Z a-z 0-9 . _ - and not start with `.`"
    )]
    BadChannel {
        /// The name.
        name: String,
    },
    /// `sequence` is 0.
    #[error("sequence must be at least 1")]
    ZeroSequence,
    /// `expires` is not after `created`.
    #[error("expires is not after created")]
    ExpiresNotAfterCreated,
    /// Too many `meta` pairs.
    #[error("more than {MAX_META} meta pairs")]
    TooManyMeta,
    /// A `meta` key is empty.
    #[error("empty meta key")]
    EmptyMetaKey,
    /// `removed` is not empty (format version 1 has no removals).
    #[error("`removed` must be empty in format version 1")]
    RemovedNotEmpty,
    /// A label, meta key or meta value is too long.
    #[error("{what} is longer than {MAX_TEXT_BYTES} bytes")]
    TextTooLong {
        /// Which text.
        what: String,
    },
    /// A label, meta key or meta value holds an invisible character (a bidirectional
    /// control, a zero-width character, ...).
    #[error("{what} contains the invisible character {c:?}")]
    InvisibleCharacter {
        /// Which text.
        what: String,
        /// The first such character.
        c: char,
    },
    /// `created` or `expires` is after [`MAX_TIME`].
    #[error("{field} is {value}, after {MAX_TIME} (9999-12-31T23:59:59Z)")]
    TimeOutOfRange {
        /// `created` or `expires`.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// A label, meta key or meta value holds control characters.
    #[error("{what} contains control characters")]
    ControlCharacters {
        /// Which text.
        what: String,
    },
    /// Two entries are not in strictly ascending path order.
    #[error("entries are not strictly sorted: {first:?} then {second:?} (duplicate or reordered)")]
    Unsorted {
        /// The earlier entry.
        first: String,
        /// The entry after it.
        second: String,
    },
    /// Two entry paths collide on a case-insensitive or normalising filesystem.
    #[error("entries {first:?} and {second:?} collide on a case-insensitive or normalising filesystem")]
    Collision {
        /// One path.
        first: String,
        /// The other.
        second: String,
    },
    /// Two directories of entries collide on a case-insensitive or normalising filesystem
    /// (they are spelled differently, so they would be merged into one).
    #[error(
        "directories {first:?} (of entry {first_entry:?}) and {second:?} (of entry {second_entry:?}) collide on a case-insensitive or normalising filesystem"
    )]
    DirectoryCollision {
        /// One directory.
        first: String,
        /// The other.
        second: String,
        /// An entry under `first`.
        first_entry: String,
        /// An entry under `second`.
        second_entry: String,
    },
    /// A file entry is also a directory of another entry.
    #[error("entry {file:?} is a file but entry {path:?} needs it to be a directory")]
    FileIsDirectory {
        /// The file entry.
        file: String,
        /// The entry under it.
        path: String,
    },
    /// A signature entry is linked by more than one artifact (or twice by one).
    #[error("signature {signature:?} is linked more than once (each signature entry belongs to one artifact)")]
    SignatureLinkedTwice {
        /// The signature entry.
        signature: String,
    },
    /// An entry does not link exactly its sibling signature entries, in suffix order (an
    /// unlinked `x.sig` beside `x`, say).
    #[error("entry {entry:?} must link exactly its sibling signature entries, in suffix order: [{expected}]")]
    SignatureLinksDiffer {
        /// The artifact entry.
        entry: String,
        /// The links it must have, quoted and comma-separated.
        expected: String,
    },
    /// An entry links a signature that is not a sibling signature entry of the bundle.
    #[error(
        "entry {entry:?} links signature {signature:?}, which is not a sibling .sig/.minisig/.asc/.sha256.sig entry of the bundle"
    )]
    BadSignatureLink {
        /// The artifact entry.
        entry: String,
        /// The linked signature.
        signature: String,
    },
}

/// The permission bits of an entry: the only two the format allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// 0644.
    Regular,
    /// 0755.
    Executable,
}

impl Mode {
    /// The octal permission bits.
    pub fn bits(self) -> u32 {
        match self {
            Mode::Regular => 0o644,
            Mode::Executable => 0o755,
        }
    }

    /// The mode for given bits: executable when the owner may execute.
    pub fn from_permissions(bits: u32) -> Mode {
        if bits & 0o100 != 0 {
            Mode::Executable
        } else {
            Mode::Regular
        }
    }

    fn from_bits(bits: u32) -> Option<Mode> {
        match bits {
            0o644 => Some(Mode::Regular),
            0o755 => Some(Mode::Executable),
            _ => None,
        }
    }
}

/// One payload file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it goes, relative to the mirror root.
    pub path: RelPath,
    /// Its length in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: Digest,
    /// Its permission bits.
    pub mode: Mode,
    /// Sibling entries that are detached signatures of this one (`<path>.sig`, ...).
    pub signatures: Vec<RelPath>,
    /// Whether its bytes are in this bundle's payload. Always true in version 1; in version 2
    /// an entry not carried must already be in the receiving mirror (FORMAT.md §6.2).
    pub carried: bool,
}

/// A random 128-bit bundle identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BundleId(pub [u8; 16]);

impl BundleId {
    /// A fresh random id.
    pub fn random() -> BundleId {
        let mut id = [0u8; 16];
        // getrandom only fails when the OS has no randomness at all; nothing safe is left to do.
        getrandom::getrandom(&mut id).expect("operating system random number generator failed");
        BundleId(id)
    }

    /// 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        crate::io::digest::hex(&self.0)
    }
}

/// A mirror's random 128-bit identity (`.airlock/id`), named by receipts and by the
/// `base` of a delta bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MirrorId(pub [u8; 16]);

impl MirrorId {
    /// A fresh random id.
    pub fn random() -> MirrorId {
        MirrorId(BundleId::random().0)
    }

    /// 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        crate::io::digest::hex(&self.0)
    }

    /// Parses exactly 32 lowercase hex digits.
    pub fn from_hex(text: &str) -> Option<MirrorId> {
        if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(MirrorId(id))
    }
}

impl std::fmt::Display for MirrorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What a delta bundle was computed against: the receiving mirror and the manifest its
/// receipt said it held for the channel. Informational for the omissions (every entry not
/// carried is checked in the mirror anyway); an importer refuses a delta made for another
/// mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Base {
    /// The mirror the receipt came from.
    pub mirror: MirrorId,
    /// The channel's manifest digest in that receipt.
    pub manifest: Digest,
}

/// The decoded manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The format version: [`VERSION_1`] (additive, everything carried), [`VERSION_2`] or
    /// [`VERSION`] (complete channel state, payload possibly a delta; version 3 differs
    /// from 2 only in the container: the padding frame, FORMAT.md §3).
    pub version: u64,
    /// Random identifier.
    pub bundle_id: BundleId,
    /// Creation time, seconds since the Unix epoch (UTC).
    pub created: u64,
    /// Expiry time, seconds since the Unix epoch, if any.
    pub expires: Option<u64>,
    /// The channel this bundle belongs to.
    pub channel: String,
    /// Position in the channel, from 1.
    pub sequence: u64,
    /// SHA-256 of the manifest of the channel's previous bundle, if known.
    pub previous: Option<Digest>,
    /// Free text for people.
    pub label: Option<String>,
    /// Free-form key/value metadata.
    pub meta: BTreeMap<String, String>,
    /// The payload files, sorted by path (bytewise).
    pub entries: Vec<Entry>,
    /// Reserved: paths to remove; MUST be empty (in version 2 removal follows from the
    /// complete state).
    pub removed: Vec<RelPath>,
    /// Version 2: the receipt the payload's omissions were computed from, if any.
    pub base: Option<Base>,
}

impl Manifest {
    /// Whether the entries are the channel's whole state (version 2 and later): a channel's
    /// files that a complete manifest does not list are retired at import.
    pub fn is_complete(&self) -> bool {
        self.version >= VERSION_2
    }

    /// Bytes of the entries carried in the payload.
    pub fn carried_size(&self) -> u64 {
        self.entries.iter().filter(|e| e.carried).fold(0u64, |sum, e| sum.saturating_add(e.size))
    }

    /// Number of entries carried in the payload.
    pub fn carried_count(&self) -> usize {
        self.entries.iter().filter(|e| e.carried).count()
    }

    /// Total bytes of all entries (the channel state), carried or not.
    pub fn total_size(&self) -> u64 {
        // Saturating: signed sizes can add up past u64::MAX (a hostile manifest), and a
        // wrapped total would pass the free-space check (or panic in a debug build).
        self.entries.iter().fold(0u64, |sum, e| sum.saturating_add(e.size))
    }

    /// Indexes of the entries in payload order (docs/FORMAT.md §"Payload order"): manifest
    /// order, except that each entry's linked signature entries come immediately before it.
    /// A verifier thus holds an artifact's signatures before the artifact streams past, and
    /// can check them in one pass.
    /// Only carried entries are in the payload (a signature group is carried whole, §6.3).
    pub fn payload_order(&self) -> Vec<usize> {
        let mut order = self.full_order();
        order.retain(|&i| self.entries[i].carried);
        order
    }

    fn full_order(&self) -> Vec<usize> {
        if self.entries.iter().all(|e| e.signatures.is_empty()) {
            return (0..self.entries.len()).collect();
        }
        let index: HashMap<&str, usize> = self.entries.iter().enumerate().map(|(i, e)| (e.path.as_str(), i)).collect();
        let linked: HashSet<usize> = self
            .entries
            .iter()
            .flat_map(|e| e.signatures.iter().filter_map(|s| index.get(s.as_str()).copied()))
            .collect();
        let mut order = Vec::with_capacity(self.entries.len());
        for i in 0..self.entries.len() {
            if !linked.contains(&i) {
                self.push_with_signatures(i, &index, &mut order);
            }
        }
        order
    }

    fn push_with_signatures(&self, i: usize, index: &HashMap<&str, usize>, order: &mut Vec<usize>) {
        // Signature paths are strictly longer than their artifact's, so this terminates.
        for sig in &self.entries[i].signatures {
            if let Some(&j) = index.get(sig.as_str()) {
                self.push_with_signatures(j, index, order);
            }
        }
        order.push(i);
    }
}

// The wire form. Field order here IS the encoding order (docs/FORMAT.md): do not reorder,
// and keep `WireManifest` (decoding, borrowing from the input) and `WireOut` (encoding,
// borrowing from a `Manifest`) in step; the golden-bytes test pins both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireManifest<'a> {
    format: &'a str,
    version: u64,
    bundle_id: &'a Bytes,
    created: u64,
    expires: Option<u64>,
    channel: &'a str,
    sequence: u64,
    previous: Option<&'a Bytes>,
    label: Option<&'a str>,
    meta: BTreeMap<&'a str, &'a str>,
    entries: EntriesIn,
    removed: Vec<&'a str>,
    // Version 2 only. Absent keys decode as `None`; the canonical re-encoding then tells a
    // version-1 manifest that has them, or a version-2 one that lacks them, apart.
    #[serde(default, borrow)]
    carried: Option<&'a Bytes>,
    #[serde(default, borrow)]
    base: Option<WireBase<'a>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBase<'a> {
    #[serde(borrow)]
    mirror: &'a Bytes,
    #[serde(borrow)]
    manifest: &'a Bytes,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEntry<'a> {
    path: &'a str,
    size: u64,
    sha256: &'a Bytes,
    mode: u32,
    #[serde(borrow)]
    signatures: Vec<&'a str>,
}

/// The `entries` array, decoded straight into [`Entry`] values one at a time: with a million
/// entries the borrowed wire form of all of them (72 bytes each) would sit beside the
/// decoded one. The first entry that breaks a rule is kept as the result; the rest of the
/// array is still read, so a CBOR error anywhere in the manifest is reported first, as when
/// the whole wire form was decoded before any entry was checked.
struct EntriesIn(Result<Vec<Entry>, Reject>);

/// Entries reserved ahead of the decoding: the count in the array header is not trusted
/// for allocation (the vector grows past this as entries actually decode).
const ENTRIES_RESERVED_MAX: usize = 1 << 20;

impl<'de> Deserialize<'de> for EntriesIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EntriesIn, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = EntriesIn;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of entries")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<EntriesIn, A::Error> {
                let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(ENTRIES_RESERVED_MAX));
                let mut broken = None;
                while let Some(wire) = seq.next_element::<WireEntry<'de>>()? {
                    if broken.is_none() {
                        match entry_from_wire(wire) {
                            Ok(entry) => entries.push(entry),
                            Err(reject) => broken = Some(reject),
                        }
                    }
                }
                Ok(EntriesIn(broken.map_or(Ok(entries), Err)))
            }
        }
        d.deserialize_seq(Visit)
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    format: &'a str,
    version: u64,
    bundle_id: &'a Bytes,
    created: u64,
    expires: Option<u64>,
    channel: &'a str,
    sequence: u64,
    previous: Option<&'a Bytes>,
    label: Option<&'a str>,
    meta: &'a BTreeMap<String, String>,
    entries: EntriesOut<'a>,
    removed: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    carried: Option<&'a Bytes>,
    /// `None`: version 1, no key; `Some(None)`: version 2, null.
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<Option<WireBase<'a>>>,
}

/// Serialises entries one at a time, so encoding needs no second copy of them.
struct EntriesOut<'a>(&'a [Entry]);

impl Serialize for EntriesOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            seq.serialize_element(&WireEntry {
                path: e.path.as_str(),
                size: e.size,
                sha256: Bytes::new(&e.sha256.0),
                mode: e.mode.bits(),
                signatures: e.signatures.iter().map(|s| s.as_str()).collect(),
            })?;
        }
        seq.end()
    }
}

/// The fixed bytes every manifest of `version` starts with: tag 55799 (self-described
/// CBOR), a map of 12 pairs (version 1) or 14 (version 2), `"format": "airlock-manifest"`,
/// `"version": <version>`.
pub fn prefix_for(version: u64) -> Vec<u8> {
    let pairs = if version == VERSION_1 { 0xac } else { 0xae };
    let mut p = vec![0xd9, 0xd9, 0xf7, pairs];
    push_text(&mut p, "format");
    push_text(&mut p, FORMAT);
    push_text(&mut p, "version");
    p.push(version as u8);
    p
}

/// The prefix of the current version ([`VERSION`]).
pub fn prefix() -> Vec<u8> {
    prefix_for(VERSION)
}

/// Appends a short CBOR text string (the field names of the fixed layout).
pub(crate) fn push_text(out: &mut Vec<u8>, text: &str) {
    debug_assert!(text.len() < 24);
    out.push(0x60 | text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

/// Encodes a manifest in its one canonical form. Checks the same rules as [`decode`], so
/// airlock never signs a manifest it would itself reject.
pub fn encode(manifest: &Manifest) -> Result<Vec<u8>, Reject> {
    check_rules(manifest)?;
    Ok(encode_unchecked(manifest))
}

fn encode_unchecked(manifest: &Manifest) -> Vec<u8> {
    // Sized exactly by a counting pass first: a growing Vec would double past the size of a
    // manifest that can be tens of megabytes, and pack's peak memory is the head.
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    write_canonical(manifest, &mut count).expect("counting cannot fail");
    let mut out = Vec::with_capacity(count.0);
    write_canonical(manifest, &mut out).expect("writing to a Vec cannot fail");
    out
}

fn write_canonical(m: &Manifest, w: impl io::Write) -> Result<(), serde_cbor::Error> {
    let v2 = m.version != VERSION_1;
    let carried = if v2 { Some(carried_bitmap(&m.entries)) } else { None };
    let base =
        m.base.as_ref().map(|b| WireBase { mirror: Bytes::new(&b.mirror.0), manifest: Bytes::new(&b.manifest.0) });
    let wire = WireOut {
        format: FORMAT,
        version: m.version,
        bundle_id: Bytes::new(&m.bundle_id.0),
        created: m.created,
        expires: m.expires,
        channel: &m.channel,
        sequence: m.sequence,
        previous: m.previous.as_ref().map(|d| Bytes::new(&d.0)),
        label: m.label.as_deref(),
        meta: &m.meta,
        entries: EntriesOut(&m.entries),
        removed: m.removed.iter().map(|p| p.as_str()).collect(),
        carried: carried.as_deref().map(Bytes::new),
        base: if v2 { Some(base) } else { None },
    };
    let mut ser = serde_cbor::Serializer::new(serde_cbor::ser::IoWrite::new(w));
    ser.self_describe()?;
    wire.serialize(&mut ser)
}

/// Whether `m` encodes to exactly `bytes`, compared as it is produced: no second copy of a
/// manifest that can be tens of megabytes.
fn is_canonical(m: &Manifest, bytes: &[u8]) -> bool {
    struct Compare<'a>(&'a [u8]);
    impl io::Write for Compare<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            match self.0.strip_prefix(buf) {
                Some(rest) => {
                    self.0 = rest;
                    Ok(buf.len())
                }
                None => Err(io::Error::other("differs")),
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut cmp = Compare(bytes);
    // The serializer writes a few bytes at a time; compared through a buffer, the bytes
    // meet `Compare` in large runs (one `memcmp` call per run, not per field).
    let mut buffered = io::BufWriter::with_capacity(64 << 10, &mut cmp);
    let same = write_canonical(m, &mut buffered).is_ok() && io::Write::flush(&mut buffered).is_ok();
    drop(buffered);
    same && cmp.0.is_empty()
}

/// Decodes manifest bytes. Call it only on bytes whose signature has been verified, except
/// to *display* an unverified bundle.
pub fn decode(bytes: &[u8]) -> Result<Manifest, Reject> {
    let limits = Limits::of_manifest(bytes);
    limits.check_manifest_len(bytes.len() as u64)?;
    check_prefix(bytes)?;
    let wire: WireManifest =
        serde_cbor::from_slice(bytes).map_err(|e| Reject::Manifest(ManifestError::Undecodable(e.to_string())))?;
    if let Ok(entries) = &wire.entries.0 {
        limits.check_entries(entries.len() as u64)?;
    }
    let manifest = from_wire(wire)?;
    check_rules(&manifest)?;
    if !is_canonical(&manifest, bytes) {
        return Err(Reject::Manifest(ManifestError::NotCanonical));
    }
    Ok(manifest)
}

/// The bitmap of `carried` (FORMAT.md §6.2): bit i is bit `i % 8` of byte `i / 8`.
fn carried_bitmap(entries: &[Entry]) -> Vec<u8> {
    let mut bits = vec![0u8; entries.len().div_ceil(8)];
    for (i, e) in entries.iter().enumerate() {
        if e.carried {
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    bits
}

/// Checks that `bytes` start with the prefix of a version this reader knows, and returns
/// the version and the bytes after the prefix; another version is named as such.
pub(crate) fn split_prefix(bytes: &[u8]) -> Result<(u64, &[u8]), Reject> {
    for version in KNOWN_VERSIONS {
        if let Some(rest) = bytes.strip_prefix(prefix_for(version).as_slice()) {
            return Ok((version, rest));
        }
    }
    // Same shape but another version number: say so, rather than "bad prefix".
    let want = prefix();
    let shape = |b: &[u8]| {
        b.len() >= want.len()
            && b[..3] == want[..3]
            && matches!(b[3], 0xac | 0xae)
            && b[4..want.len() - 1] == want[4..want.len() - 1]
    };
    if shape(bytes) {
        return Err(Reject::Manifest(ManifestError::UnsupportedVersion));
    }
    Err(Reject::Manifest(ManifestError::BadPrefix))
}

/// Checks that `bytes` start with a known version's prefix.
pub(crate) fn check_prefix(bytes: &[u8]) -> Result<(), Reject> {
    split_prefix(bytes).map(|_| ())
}

fn from_wire(w: WireManifest<'_>) -> Result<Manifest, Reject> {
    if w.format != FORMAT || !KNOWN_VERSIONS.contains(&w.version) {
        return Err(Reject::Manifest(ManifestError::WrongFormat { format: w.format.to_owned(), version: w.version }));
    }
    let mut entries = w.entries.0?;
    if w.version >= VERSION_2 {
        let bits = w.carried.ok_or(Reject::Manifest(ManifestError::BadCarried { reason: "missing" }))?;
        apply_carried(&mut entries, bits)?;
    }
    let base = match w.base {
        None => None,
        Some(b) => Some(Base {
            mirror: MirrorId(fixed_bytes(b.mirror, "base.mirror")?),
            manifest: Digest(fixed_bytes(b.manifest, "base.manifest")?),
        }),
    };
    Ok(Manifest {
        version: w.version,
        base,
        bundle_id: BundleId(fixed_bytes(w.bundle_id, "bundle_id")?),
        created: w.created,
        expires: w.expires,
        channel: w.channel.to_owned(),
        sequence: w.sequence,
        previous: w.previous.map(|b| fixed_bytes(b, "previous").map(Digest)).transpose()?,
        label: w.label.map(str::to_owned),
        meta: w.meta.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        entries,
        removed: w.removed.iter().map(|p| rel_path(p)).collect::<Result<_, _>>()?,
    })
}

/// Sets each entry's `carried` from the bitmap, which must have exactly one bit per entry
/// (unused bits of the last byte zero).
fn apply_carried(entries: &mut [Entry], bits: &[u8]) -> Result<(), Reject> {
    if bits.len() != entries.len().div_ceil(8) {
        return Err(Reject::Manifest(ManifestError::BadCarried { reason: "its length is not one bit per entry" }));
    }
    let used = entries.len() % 8;
    if used != 0 && bits.last().is_some_and(|&b| b >> used != 0) {
        return Err(Reject::Manifest(ManifestError::BadCarried { reason: "bits beyond the last entry are set" }));
    }
    for (i, e) in entries.iter_mut().enumerate() {
        e.carried = bits[i / 8] & (1 << (i % 8)) != 0;
    }
    Ok(())
}

fn entry_from_wire(w: WireEntry<'_>) -> Result<Entry, Reject> {
    let path = rel_path(w.path)?;
    let mode = Mode::from_bits(w.mode)
        .ok_or_else(|| Reject::Manifest(ManifestError::BadMode { path: w.path.to_owned(), mode: w.mode }))?;
    Ok(Entry {
        sha256: Digest(w.sha256.as_ref().try_into().map_err(|_| {
            Reject::Manifest(ManifestError::BadDigestLength { path: w.path.to_owned(), len: w.sha256.len() })
        })?),
        path,
        size: w.size,
        mode,
        signatures: w.signatures.iter().map(|s| rel_path(s)).collect::<Result<_, _>>()?,
        carried: true,
    })
}

fn rel_path(text: &str) -> Result<RelPath, Reject> {
    RelPath::new(text).map_err(|source| Reject::UnsafePath { path: text.to_owned(), source })
}

fn fixed_bytes<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N], Reject> {
    bytes
        .try_into()
        .map_err(|_| Reject::Manifest(ManifestError::BadFieldLength { field, len: bytes.len(), expected: N }))
}

/// Checks a channel name: 1 to 64 of `[A-Za-z0-9._-]`, not starting with `.`. The error
/// is the sentence to show (for callers outside a bundle, such as a policy file).
pub fn check_channel(name: &str) -> Result<(), String> {
    check_channel_name(name).map_err(|e| e.to_string())
}

fn check_channel_name(name: &str) -> Result<(), ManifestError> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if name.is_empty() || name.len() > MAX_CHANNEL_BYTES || !ok_chars || name.starts_with('.') {
        return Err(ManifestError::BadChannel { name: name.to_owned() });
    }
    Ok(())
}

/// The rules of docs/FORMAT.md §"Manifest rules" that the types alone do not enforce.
fn check_rules(m: &Manifest) -> Result<(), Reject> {
    check_channel_name(&m.channel).map_err(Reject::Manifest)?;
    if m.sequence == 0 {
        return Err(Reject::Manifest(ManifestError::ZeroSequence));
    }
    for (field, value) in [("created", Some(m.created)), ("expires", m.expires)] {
        if let Some(value) = value.filter(|&v| v > MAX_TIME) {
            return Err(Reject::Manifest(ManifestError::TimeOutOfRange { field, value }));
        }
    }
    if let Some(expires) = m.expires {
        if expires <= m.created {
            return Err(Reject::Manifest(ManifestError::ExpiresNotAfterCreated));
        }
    }
    check_text(m.label.as_deref().unwrap_or(""), "label")?;
    if m.meta.len() > MAX_META {
        return Err(Reject::Manifest(ManifestError::TooManyMeta));
    }
    for (k, v) in &m.meta {
        if k.is_empty() {
            return Err(Reject::Manifest(ManifestError::EmptyMetaKey));
        }
        check_text(k, "meta key")?;
        check_text(v, &format!("meta value of {k:?}"))?;
    }
    if !m.removed.is_empty() {
        return Err(Reject::Manifest(ManifestError::RemovedNotEmpty));
    }
    check_entries(&m.entries)
}

/// The text rule of `label`, meta keys and meta values (docs/FORMAT.md §6.2): bounded, no
/// control character but TAB, and no invisible character (the ones entry paths refuse too).
fn check_text(text: &str, what: &str) -> Result<(), Reject> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(Reject::Manifest(ManifestError::TextTooLong { what: what.to_owned() }));
    }
    if text.chars().any(|c| is_control(c) && c != '\t') {
        return Err(Reject::Manifest(ManifestError::ControlCharacters { what: what.to_owned() }));
    }
    if let Some(c) = text.chars().find(|&c| is_invisible(c)) {
        return Err(Reject::Manifest(ManifestError::InvisibleCharacter { what: what.to_owned(), c }));
    }
    Ok(())
}

/// Entries must be strictly sorted by path bytes (so no path appears twice), no two paths and
/// no two directories may collide on a case-insensitive or normalising filesystem, no file may
/// also be a directory of another, and each signature link must name a sibling
/// `<path>.sig|.minisig|.asc|.sha256.sig` entry, and no signature entry may be linked twice.
fn check_entries(entries: &[Entry]) -> Result<(), Reject> {
    for pair in entries.windows(2) {
        if pair[0].path.as_str().as_bytes() >= pair[1].path.as_str().as_bytes() {
            return Err(Reject::Manifest(ManifestError::Unsorted {
                first: pair[0].path.to_string(),
                second: pair[1].path.to_string(),
            }));
        }
    }
    check_collisions(entries)?;
    let exact = |p: &str| entries.binary_search_by(|e| e.path.as_str().as_bytes().cmp(p.as_bytes())).is_ok();
    let mut linked: HashSet<&str> = HashSet::new();
    for e in entries {
        for sig in &e.signatures {
            if !linked.insert(sig.as_str()) {
                return Err(Reject::Manifest(ManifestError::SignatureLinkedTwice { signature: sig.to_string() }));
            }
            let suffix_ok = SIGNATURE_SUFFIXES.iter().any(|s| sig.as_str().strip_suffix(s) == Some(e.path.as_str()));
            if !suffix_ok || !exact(sig.as_str()) {
                return Err(Reject::Manifest(ManifestError::BadSignatureLink {
                    entry: e.path.to_string(),
                    signature: sig.to_string(),
                }));
            }
        }
    }
    for e in entries {
        for sig in &e.signatures {
            let sig_carried = entries
                .binary_search_by(|x| x.path.as_str().as_bytes().cmp(sig.as_str().as_bytes()))
                .is_ok_and(|j| entries[j].carried);
            if sig_carried != e.carried {
                return Err(Reject::Manifest(ManifestError::SplitSignatureGroup {
                    entry: e.path.to_string(),
                    signature: sig.to_string(),
                }));
            }
        }
    }
    for (i, e) in entries.iter().enumerate() {
        let expected = sibling_signatures(entries, i);
        if e.signatures != expected {
            let expected = expected.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ");
            return Err(Reject::Manifest(ManifestError::SignatureLinksDiffer { entry: e.path.to_string(), expected }));
        }
    }
    Ok(())
}

/// One name in the tree the entries make: a file (an entry) or a directory (a proper prefix
/// of entries' paths). Compact (32 bytes): a directory of a million files lists a million.
struct Node<'a> {
    /// The last component's collision key ([`RelPath::collision_key`]).
    key: Cow<'a, str>,
    /// The entry that is this file, or the first entry under this directory.
    entry: u32,
    /// The directory's length in bytes of `entries[entry].path`, or [`A_FILE`] for a file.
    dir_len: u32,
}

/// [`Node::dir_len`] of a file.
const A_FILE: u32 = u32::MAX;

/// Finds two names that one case-insensitive or normalising filesystem would take for one:
/// two files, a file and a directory, or two directories spelled differently. A path's key
/// is its components' keys joined by `/`, so two names collide exactly when their parents
/// are one directory (or collide themselves, which is found one level up) and their last
/// components have one key.
///
/// The entries are sorted, so everything under one directory is contiguous: the walk keeps
/// one list of names per open directory (the directories of the current entry, outermost
/// first, below the top) and, when a directory closes, sorts its list and compares
/// neighbours. Sorting, unlike a hash table, cannot be slowed down by chosen inputs, and
/// only the open directories' names are held at a time.
fn check_collisions(entries: &[Entry]) -> Result<(), Reject> {
    if entries.len() >= A_FILE as usize {
        return Err(Reject::Limit {
            what: format!("manifest of {} entries", entries.len()),
            limit: format!("{} entries", A_FILE - 1),
        });
    }
    // `names[d]` lists the names directly under the open directory `d` levels down (0 is
    // the top); `open[d]` is that directory's length in bytes, for `d` from 1. Lists are
    // cleared, not dropped, when their directory closes, and reused by the next one.
    let mut names: Vec<Vec<Node<'_>>> = vec![Vec::new()];
    let mut open: Vec<usize> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let path = e.path.as_str();
        let mut start = 0;
        let mut depth = 0;
        for dir_len in path.bytes().enumerate().filter(|&(_, b)| b == b'/').map(|(at, _)| at) {
            // The directories above matched, so only this component needs comparing (which
            // keeps the walk linear in the length of the paths).
            let same = open.get(depth).is_some_and(|&len| {
                len == dir_len && entries[i - 1].path.as_str().as_bytes()[start..len] == path.as_bytes()[start..len]
            });
            if !same {
                close_directories(entries, &mut names, &mut open, depth)?;
                names[depth].push(node(path, i, start, Some(dir_len)));
                open.push(dir_len);
                if names.len() == depth + 1 {
                    names.push(Vec::new());
                }
            }
            start = dir_len + 1;
            depth += 1;
        }
        close_directories(entries, &mut names, &mut open, depth)?;
        names[depth].push(node(path, i, start, None));
    }
    close_directories(entries, &mut names, &mut open, 0)?;
    check_one_directory(entries, &mut names[0])
}

/// The name of entry `i` whose last component starts at `start` of `path`: the directory
/// that ends at `dir_len`, or the file.
fn node(path: &str, i: usize, start: usize, dir_len: Option<usize>) -> Node<'_> {
    Node {
        key: RelPath::collision_key_cow(&path[start..dir_len.unwrap_or(path.len())]),
        // In range: `check_collisions` bounds the entries below `A_FILE`, and a path's length
        // is bounded far below it.
        entry: i as u32,
        dir_len: dir_len.map_or(A_FILE, |len| len as u32),
    }
}

/// Closes the open directories from `depth` down (the deepest first), checking each one's
/// names.
fn close_directories<'a>(
    entries: &[Entry],
    names: &mut [Vec<Node<'a>>],
    open: &mut Vec<usize>,
    depth: usize,
) -> Result<(), Reject> {
    while open.len() > depth {
        check_one_directory(entries, &mut names[open.len()])?;
        open.pop();
    }
    Ok(())
}

/// Sorts the names of one directory and fails on two with one key; leaves the list empty.
fn check_one_directory(entries: &[Entry], names: &mut Vec<Node<'_>>) -> Result<(), Reject> {
    // Ties broken by the entry, so of two colliding names the one met first is named first.
    names.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(a.entry.cmp(&b.entry)));
    if let Some(pair) = names.windows(2).find(|pair| pair[0].key == pair[1].key) {
        return Err(Reject::Manifest(collision(entries, &pair[0], &pair[1])));
    }
    names.clear();
    Ok(())
}

/// The error for two names with one key under one directory.
fn collision(entries: &[Entry], a: &Node<'_>, b: &Node<'_>) -> ManifestError {
    let path = |n: &Node<'_>| entries[n.entry as usize].path.to_string();
    let dir_len = |n: &Node<'_>| (n.dir_len != A_FILE).then_some(n.dir_len as usize);
    match (dir_len(a), dir_len(b)) {
        (None, None) => ManifestError::Collision { first: path(a), second: path(b) },
        (None, Some(_)) => ManifestError::FileIsDirectory { file: path(a), path: path(b) },
        (Some(_), None) => ManifestError::FileIsDirectory { file: path(b), path: path(a) },
        (Some(a_len), Some(b_len)) => ManifestError::DirectoryCollision {
            first: entries[a.entry as usize].path.as_str()[..a_len].to_owned(),
            second: entries[b.entry as usize].path.as_str()[..b_len].to_owned(),
            first_entry: path(a),
            second_entry: path(b),
        },
    }
}

/// Links each entry to the detached signatures present beside it, as FORMAT.md §6.2 says a
/// packer does: `x.sig`, `x.minisig`, `x.asc`, `x.sha256.sig`, in that order, except that
/// `x.sha256.sig` beside both `x` and `x.sha256` is `x.sha256`'s. `entries` must be sorted
/// by path (presence is a binary search).
pub fn link_signatures(entries: &mut [Entry]) {
    for i in 0..entries.len() {
        entries[i].signatures = sibling_signatures(entries, i);
    }
}

/// The signature entries [`link_signatures`] links to entry `i`: the manifest rule is that
/// an entry links exactly these (docs/FORMAT.md §6.2).
fn sibling_signatures(entries: &[Entry], i: usize) -> Vec<RelPath> {
    let present = |p: &str| entries.binary_search_by(|e| e.path.as_str().as_bytes().cmp(p.as_bytes())).is_ok();
    // Paths that start with this one follow it directly in sorted order: if the next does
    // not, nothing can be this entry's signature.
    let path = entries[i].path.as_str();
    if entries.get(i + 1).is_none_or(|next| !next.path.as_str().starts_with(path)) {
        return Vec::new();
    }
    let mut links = Vec::new();
    for suffix in SIGNATURE_SUFFIXES {
        let candidate = format!("{path}{suffix}");
        if !present(&candidate) {
            continue;
        }
        // `x.sha256.sig` beside both `x` and `x.sha256` is the latter's `.sig`.
        if let Some(q) = candidate.strip_suffix(".sig") {
            if q.ends_with(".sha256") && q != path && present(q) {
                continue;
            }
        }
        if let Ok(p) = RelPath::new(&candidate) {
            links.push(p);
        }
    }
    links
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A carried entry at `path` holding `data`, without signature links (for tests).
    pub(crate) fn entry(path: &str, data: &[u8], mode: Mode) -> Entry {
        Entry {
            path: RelPath::new(path).unwrap(),
            size: data.len() as u64,
            sha256: Digest::of(data),
            mode,
            signatures: vec![],
            carried: true,
        }
    }

    pub(crate) fn sample() -> Manifest {
        let mut a = entry("a.txt", b"hello\n", Mode::Regular);
        a.signatures = vec![RelPath::new("a.txt.sig").unwrap()];
        Manifest {
            version: VERSION_1,
            base: None,
            bundle_id: BundleId([7; 16]),
            created: 1_700_000_000,
            expires: Some(1_700_086_400),
            channel: "default".into(),
            sequence: 3,
            previous: Some(Digest([9; 32])),
            label: Some("sample".into()),
            meta: BTreeMap::from([("origin".into(), "test".into())]),
            entries: vec![
                a,
                entry("a.txt.sig", b"sig", Mode::Regular),
                entry("bin/run", b"#!/bin/sh\n", Mode::Executable),
            ],
            removed: vec![],
        }
    }

    /// The sample as a version-2 delta: `bin/run` omitted, a base named.
    pub(crate) fn sample_v2() -> Manifest {
        let mut m = sample();
        m.version = VERSION_2;
        m.entries[2].carried = false;
        m.base = Some(Base { mirror: MirrorId([5; 16]), manifest: Digest([6; 32]) });
        m
    }

    #[test]
    fn golden_bytes_v2() {
        let bytes = encode(&sample_v2()).unwrap();
        let golden = include_str!("../../fixtures/golden/manifest-v2.hex").trim();
        assert_eq!(crate::io::digest::hex(&bytes), golden);
        assert!(bytes.starts_with(&prefix_for(VERSION_2)));
        assert_eq!(decode(&bytes).unwrap(), sample_v2());
    }

    /// The sample as a version-3 delta: the version-2 sample with only the version changed.
    pub(crate) fn sample_v3() -> Manifest {
        Manifest { version: VERSION, ..sample_v2() }
    }

    /// Pins the version-3 encoding: the version-2 bytes but for the version number.
    #[test]
    fn golden_bytes_v3() {
        let bytes = encode(&sample_v3()).unwrap();
        let golden = include_str!("../../fixtures/golden/manifest-v3.hex").trim();
        assert_eq!(crate::io::digest::hex(&bytes), golden);
        assert!(bytes.starts_with(&prefix_for(VERSION)));
        assert_eq!(decode(&bytes).unwrap(), sample_v3());
        let v2 = encode(&sample_v2()).unwrap();
        let differing: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != v2[i]).collect();
        assert_eq!(differing, vec![prefix_for(VERSION).len() - 1], "only the version byte differs");
    }

    #[test]
    fn v2_round_trips_without_base_and_with_all_carried() {
        let mut m = sample_v2();
        m.base = None;
        m.entries[2].carried = true;
        assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
        assert_eq!(m.payload_order().len(), 3);
        m.entries[2].carried = false;
        assert_eq!(m.payload_order(), vec![1, 0]);
        assert_eq!(m.carried_size(), 9);
    }

    #[test]
    fn v2_signature_group_is_carried_whole() {
        let mut m = sample_v2();
        m.entries[1].carried = false;
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::SplitSignatureGroup { .. }))));
    }

    #[test]
    fn v2_carried_bitmap_must_fit_the_entries() {
        let bytes = encode(&sample_v2()).unwrap();
        // The bitmap is the one-byte string 0x41 0x03 (entries 0 and 1 carried).
        let at = bytes.windows(8).position(|w| w == b"\x67carried").unwrap() + 8;
        assert_eq!(&bytes[at..at + 2], &[0x41, 0x03]);
        let mut stray = bytes.clone();
        stray[at + 1] = 0x0b; // bit 3: past the third entry
        assert!(matches!(decode(&stray), Err(Reject::Manifest(ManifestError::BadCarried { .. }))));
        // A version-1 manifest with the version-2 keys, or version 2 without them, is refused.
        let mut v1 = sample();
        v1.version = VERSION_1;
        let v1_bytes = encode(&v1).unwrap();
        assert!(!v1_bytes.windows(7).any(|w| w == b"carried"));
        assert!(decode(&v1_bytes).unwrap().entries.iter().all(|e| e.carried));
    }

    #[test]
    fn mirror_id_hex_round_trip() {
        let id = MirrorId([0xab; 16]);
        assert_eq!(MirrorId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(MirrorId::from_hex("AB"), None);
        assert_eq!(MirrorId::from_hex(&"AB".repeat(16)), None);
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = encode(&m).unwrap();
        assert!(bytes.starts_with(&prefix_for(VERSION_1)));
        assert_eq!(decode(&bytes).unwrap(), m);
    }

    /// Pins the encoding: any change to these bytes is a format change (docs/FORMAT.md,
    /// version bump, new golden file).
    #[test]
    fn golden_bytes() {
        let bytes = encode(&sample()).unwrap();
        let golden = include_str!("../../fixtures/golden/manifest-v1.hex").trim();
        assert_eq!(crate::io::digest::hex(&bytes), golden);
    }

    #[test]
    fn rejects_unsorted_and_duplicates() {
        let mut m = sample();
        m.entries.swap(0, 2);
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::Unsorted { .. }))));
        let mut m = sample();
        let dup = m.entries[2].clone();
        m.entries.push(dup);
        assert!(encode(&m).is_err());
    }

    #[test]
    fn rejects_collisions_and_prefix_dirs() {
        let mut m = sample();
        let mut e = m.entries[2].clone();
        e.path = RelPath::new("BIN/run").unwrap();
        m.entries.insert(0, e);
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::DirectoryCollision { .. }))));
        let mut m = sample();
        let mut e = m.entries[2].clone();
        e.path = RelPath::new("bin/RUN").unwrap();
        m.entries.insert(2, e);
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::Collision { .. }))));
        let mut m = sample();
        let mut e = m.entries[2].clone();
        e.path = RelPath::new("a.txt/x").unwrap();
        m.entries.insert(2, e);
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::FileIsDirectory { .. }))));
    }

    /// The sample manifest with one plain entry per path, encoded (so the rules run).
    fn with_paths(paths: &[&str]) -> Result<Vec<u8>, Reject> {
        let mut m = sample();
        let template = m.entries[0].clone();
        m.entries = paths
            .iter()
            .map(|p| Entry { path: RelPath::new(p).unwrap(), signatures: vec![], ..template.clone() })
            .collect();
        encode(&m)
    }

    /// The collision checks sort keys and visit each directory once; these cases sit where
    /// that could go wrong: colliding entries far apart in entry order, a directory whose
    /// entries are interleaved with a sibling that sorts before `/`, and non-ASCII keys.
    #[test]
    fn collisions_are_found_wherever_they_sort() {
        let collide = |r: Result<Vec<u8>, Reject>| matches!(r, Err(Reject::Manifest(ManifestError::Collision { .. })));
        let file_dir =
            |r: Result<Vec<u8>, Reject>| matches!(r, Err(Reject::Manifest(ManifestError::FileIsDirectory { .. })));
        assert!(collide(with_paths(&["Zeta", "a", "b", "c", "zeta"])));
        assert!(collide(with_paths(&["CAF\u{c9}", "caf\u{e9}", "m"])));
        // "a/b!/x" sorts between the file "a/B" and "a/b/y", whose directory "a/b" collides
        // with that file.
        assert!(file_dir(with_paths(&["a/B", "a/b!/x", "a/b/y"])));
        assert!(file_dir(with_paths(&["a/b!/x", "a/b/y", "a/b/z", "a/c", "a/c/d"])));
        with_paths(&["B", "a/b!/x", "a/b/y", "a/bb", "a/c"]).expect("no collision");
    }

    /// The collision check against its definition, on many small random trees: every
    /// name (each file, and each directory as a prefix of a path) keyed by its components'
    /// keys joined by `/`; two different names with one key collide.
    #[test]
    fn collision_check_agrees_with_the_definition() {
        let components = ["a", "A", "b", "s", "\u{17f}", "S", "a!"];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut collisions = 0;
        for _ in 0..3000 {
            let mut paths: Vec<String> = (0..1 + next(5))
                .map(|_| (0..1 + next(3)).map(|_| components[next(components.len())]).collect::<Vec<_>>().join("/"))
                .collect();
            paths.sort();
            paths.dedup();
            let mut names = HashSet::new();
            for p in &paths {
                names.insert((p.clone(), false));
                for (at, _) in p.match_indices('/') {
                    names.insert((p[..at].to_owned(), true));
                }
            }
            let mut keys = HashSet::new();
            let expected = !names.iter().all(|(text, _)| {
                keys.insert(text.split('/').map(RelPath::collision_key).collect::<Vec<_>>().join("/"))
            });
            let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let found = with_paths(&refs).is_err();
            assert_eq!(found, expected, "{paths:?}");
            collisions += usize::from(expected);
        }
        // Both outcomes were exercised.
        assert!(collisions > 300 && collisions < 2700, "{collisions} of 3000 collide");
    }

    #[test]
    fn directories_collide_when_spelled_differently() {
        let dirs =
            |r: Result<Vec<u8>, Reject>| matches!(r, Err(Reject::Manifest(ManifestError::DirectoryCollision { .. })));
        assert!(dirs(with_paths(&["Dir/a.txt", "dir/b.txt"])));
        assert!(dirs(with_paths(&["a/B/x", "a/b!/y", "a/b/z"])));
        assert!(dirs(with_paths(&["x/s/2", "x/\u{17f}/1"])));
        assert!(dirs(with_paths(&["A/b/c", "A/b/d", "a/B/e"])));
        let err = with_paths(&["Dir/a.txt", "dir/b.txt"]).unwrap_err().to_string();
        assert!(
            err.contains("directories \"Dir\" (of entry \"Dir/a.txt\") and \"dir\" (of entry \"dir/b.txt\")"),
            "{err}"
        );
        with_paths(&["Dir/a.txt", "Dir/b.txt", "Dir/c/d", "Dir/c/e", "Dir2/x", "dir3/x"]).expect("one directory");
        // Equal directory names under different parents are different directories.
        with_paths(&["a/x/1", "b/X/2"]).expect("no collision");
        assert!(matches!(
            with_paths(&["STRASSE", "stra\u{df}e/x"]),
            Err(Reject::Manifest(ManifestError::FileIsDirectory { .. }))
        ));
    }

    #[test]
    fn rejects_times_after_year_9999() {
        let mut m = sample();
        m.created = MAX_TIME + 1;
        m.expires = None;
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::TimeOutOfRange { field: "created", .. }))));
        let mut m = sample();
        m.expires = Some(u64::MAX);
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::TimeOutOfRange { field: "expires", .. }))));
        let mut m = sample();
        m.created = MAX_TIME - 1;
        m.expires = Some(MAX_TIME);
        encode(&m).expect("the last second is allowed");
    }

    #[test]
    fn rejects_control_and_invisible_characters_in_text() {
        for (label, control) in
            [("a\nb", true), ("a\u{85}", true), ("a\u{2028}", true), ("x\u{202e}y", false), ("\u{200b}", false)]
        {
            let mut m = sample();
            m.label = Some(label.into());
            let err = encode(&m).unwrap_err();
            if control {
                assert!(matches!(err, Reject::Manifest(ManifestError::ControlCharacters { .. })), "{label:?}: {err}");
            } else {
                assert!(matches!(err, Reject::Manifest(ManifestError::InvisibleCharacter { .. })), "{label:?}: {err}");
            }
        }
        let mut m = sample();
        m.meta.insert("k".into(), "v\u{2066}".into());
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::InvisibleCharacter { .. }))));
        let mut m = sample();
        m.label = Some("tab\there, caf\u{e9} \u{1f600}".into());
        encode(&m).expect("TAB and visible characters are allowed");
    }

    #[test]
    fn payload_order_puts_signatures_first() {
        let m = sample();
        let order: Vec<&str> = m.payload_order().iter().map(|&i| m.entries[i].path.as_str()).collect();
        assert_eq!(order, ["a.txt.sig", "a.txt", "bin/run"]);
    }

    #[test]
    fn rejects_bad_signature_links() {
        let mut m = sample();
        m.entries[2].signatures = vec![RelPath::new("a.txt.sig").unwrap()];
        assert!(encode(&m).is_err());
    }

    #[test]
    fn rejects_an_unlinked_or_misordered_sibling_signature() {
        let mut m = sample();
        m.entries[0].signatures.clear();
        let err = encode(&m).unwrap_err().to_string();
        assert!(
            err.contains(
                "entry \"a.txt\" must link exactly its sibling signature entries, in suffix order: [\"a.txt.sig\"]"
            ),
            "{err}"
        );
        let mut m = sample();
        let mut asc = m.entries[1].clone();
        asc.path = RelPath::new("a.txt.asc").unwrap();
        m.entries.insert(1, asc);
        m.entries[0].signatures = vec![RelPath::new("a.txt.asc").unwrap(), RelPath::new("a.txt.sig").unwrap()];
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::SignatureLinksDiffer { .. }))));
        link_signatures(&mut m.entries);
        encode(&m).expect("the packer's links");
    }

    #[test]
    fn rejects_a_signature_linked_twice() {
        let mut m = sample();
        let sig = m.entries[0].signatures[0].clone();
        m.entries[0].signatures.push(sig);
        assert!(matches!(encode(&m), Err(Reject::Manifest(ManifestError::SignatureLinkedTwice { .. }))));
    }

    #[test]
    fn rejects_other_versions_and_noncanonical() {
        let bytes = encode(&sample()).unwrap();
        let mut v3 = bytes.clone();
        let at = prefix_for(VERSION_1).len() - 1;
        v3[at] = 3;
        assert!(matches!(decode(&v3), Err(Reject::Manifest(ManifestError::UnsupportedVersion))));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        assert!(decode(b"").is_err());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn rejects_unsafe_paths_inside_valid_cbor() {
        // Same length, so the CBOR stays well-formed and the bad path reaches the decoder.
        let mut bytes = encode(&sample()).unwrap();
        let at = bytes.windows(7).position(|w| w == b"bin/run").unwrap();
        bytes[at..at + 7].copy_from_slice(b"../evil");
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(&err, Reject::UnsafePath { path, .. } if path == "../evil"), "{err}");
    }
}
