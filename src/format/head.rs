//! The head frame (FORMAT.md §3, §5): the one statement of its layout, for writing and for
//! reading.
//!
//! In order, each a tar member of mode 0644, all in one zstd frame:
//! 1. `airlock/manifest.cbor` (at most [`Limits`]`::manifest_bytes` of its version);
//! 2. one or more `airlock/signatures/<keyid>.sig` (at most [`MAX_SIGNATURES`], each at most
//!    [`MAX_SIGNATURE_BYTES`]), strictly ascending by key id, each holding a signature by the
//!    key it is named after;
//! 3. `airlock/SHA256SUMS.sig` (at most [`Limits`]`::sums_bytes` of the manifest's version).
//!
//! The write side is [`HeadWriter`] (pack and sign), whose types admit only that order. The
//! read side is [`HeadDecoder`]: pure decisions on each member a reader meets, so the verifier
//! does only the reading. Neither checks what the members *mean* (signatures over the
//! manifest, the checksum list against it): that is verification (FORMAT.md §8).

use std::borrow::Cow;
use std::io::{self, Write};

use super::manifest::{Limits, Manifest};
use super::sums::{sums_text_len, SumsReader};
use super::tar::{self, write_member, ReadHeader};
use super::{signature_member, MANIFEST_MEMBER, MAX_SIGNATURES, MAX_SIGNATURE_BYTES, SIGNATURES_DIR, SUMS_MEMBER};
use crate::error::{malformed, Error, Reject, Result};
use crate::keys::{self, KeyId, SecretKey, Signature};

/// The mode of every head member.
pub const HEAD_MEMBER_MODE: u32 = 0o644;

use crate::io::tuning::HEAD_COPY_BUF;

// ---------------------------------------------------------------------------------------
// Writing

/// Writes a head frame in the only order the format allows: [`HeadWriter::start`] writes the
/// manifest, [`HeadWriter::signatures`] the signature members (sorted here), and
/// [`SumsWriter::finish`] the checksum list and the end of the frame.
///
/// The steps are separate so a writer can compress the manifest while its signatures are
/// still being made (pack signs on other threads).
pub struct HeadWriter<W: Write> {
    enc: zstd::stream::write::Encoder<'static, W>,
}

/// The head frame after its signature members: only the checksum list can follow.
pub struct SumsWriter<W: Write> {
    enc: zstd::stream::write::Encoder<'static, W>,
}

impl<W: Write> HeadWriter<W> {
    /// Starts the head frame on `w` at zstd `level` and writes the manifest member.
    pub fn start(w: W, level: i32, manifest_bytes: &[u8]) -> io::Result<HeadWriter<W>> {
        let mut enc = zstd::stream::write::Encoder::new(w, level)?;
        put(&mut enc, MANIFEST_MEMBER, &[manifest_bytes])?;
        Ok(HeadWriter { enc })
    }

    /// Writes one signature member per signature, sorted by key id.
    pub fn signatures(mut self, signatures: &[Signature]) -> io::Result<SumsWriter<W>> {
        let mut sorted: Vec<&Signature> = signatures.iter().collect();
        sorted.sort_by_key(|s| s.key_id());
        for s in sorted {
            put(&mut self.enc, &signature_member(s.key_id()), &[s.to_file_string().as_bytes()])?;
        }
        Ok(SumsWriter { enc: self.enc })
    }
}

impl<W: Write> SumsWriter<W> {
    /// Writes the checksum-list member, whose content is `pieces` one after the other (pack
    /// hands over the signature lines and the list without joining them), and ends the
    /// frame. Returns the inner writer.
    pub fn finish(mut self, pieces: &[&[u8]]) -> io::Result<W> {
        put(&mut self.enc, SUMS_MEMBER, pieces)?;
        self.enc.finish()
    }

    /// Writes the checksum-list member as `signature_lines` followed by the list of
    /// `manifest`, made as it is compressed (never held whole), and ends the frame.
    pub fn finish_list(mut self, signature_lines: &[u8], manifest: &Manifest) -> io::Result<W> {
        let size = signature_lines.len() as u64 + sums_text_len(manifest);
        let mut content = io::Read::chain(signature_lines, SumsReader::new(manifest));
        let mut buf = [0u8; HEAD_COPY_BUF];
        write_member(&mut self.enc, SUMS_MEMBER, size, HEAD_MEMBER_MODE, &mut content, &mut buf)?;
        self.enc.finish()
    }
}

/// Writes one head member whose content is `pieces` one after the other.
fn put(w: &mut impl Write, name: &str, pieces: &[&[u8]]) -> io::Result<()> {
    let size = pieces.iter().map(|p| p.len() as u64).sum();
    write_member(w, name, size, HEAD_MEMBER_MODE, &mut Pieces { pieces, offset: 0 }, &mut [0u8; HEAD_COPY_BUF])?;
    Ok(())
}

/// Reads byte slices one after the other.
struct Pieces<'a> {
    pieces: &'a [&'a [u8]],
    /// Bytes of the first piece already read.
    offset: usize,
}

impl io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some((first, rest)) = self.pieces.split_first() {
            let unread = &first[self.offset..];
            if unread.is_empty() {
                self.pieces = rest;
                self.offset = 0;
                continue;
            }
            let n = unread.len().min(buf.len());
            buf[..n].copy_from_slice(&unread[..n]);
            self.offset += n;
            return Ok(n);
        }
        Ok(0)
    }
}

/// The head frame of a bundle with these members, in memory (for `sign`).
pub fn encode_head(level: i32, manifest_bytes: &[u8], signatures: &[Signature], sums: &[u8]) -> io::Result<Vec<u8>> {
    HeadWriter::start(Vec::new(), level, manifest_bytes)?.signatures(signatures)?.finish(&[sums])
}

/// The head members, in order: manifest, one signature per signer (sorted by key id), sums.
/// For tests that take a head apart and put it back together; bundles are written by
/// [`HeadWriter`].
pub fn head_members<'a>(
    manifest_bytes: &'a [u8],
    signatures: &[keys::Signature],
    sums_sig: &'a [u8],
) -> Vec<(String, Cow<'a, [u8]>)> {
    let mut sigs: Vec<&keys::Signature> = signatures.iter().collect();
    sigs.sort_by_key(|s| s.key_id());
    // Borrowed: with many entries the manifest and checksum list are tens of megabytes.
    let mut members = vec![(MANIFEST_MEMBER.to_owned(), Cow::Borrowed(manifest_bytes))];
    for s in sigs {
        members.push((signature_member(s.key_id()), Cow::Owned(s.to_file_string().into_bytes())));
    }
    members.push((SUMS_MEMBER.to_owned(), Cow::Borrowed(sums_sig)));
    members
}

/// Compresses any list of members into one zstd frame, in the given order (tests use it to
/// build heads that break the layout).
pub fn head_frame<C: AsRef<[u8]>>(members: &[(String, C)], level: i32) -> io::Result<Vec<u8>> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level)?;
    for (name, content) in members {
        put(&mut enc, name, &[content.as_ref()])?;
    }
    enc.finish()
}

/// Signs the manifest with every key: the comment names the key id so an auditor knows
/// which public key to give `signify -V`.
pub fn sign_manifest(key: &SecretKey, manifest_bytes: &[u8]) -> keys::Signature {
    key.sign(manifest_bytes, &signature_comment(key.key_id()))
}

/// The untrusted comment of every signature airlock makes with a packing key.
pub fn signature_comment(key_id: KeyId) -> String {
    format!("verify with airlock key {key_id}")
}

// ---------------------------------------------------------------------------------------
// The padding frame (format version 3)

/// Magic of the padding frame (a zstd skippable frame, RFC 8878 §3.1.2): `5B 2A 4D 18`.
pub const PADDING_MAGIC: u32 = 0x184D_2A5B;
/// Length of a skippable frame's header: magic and content length.
pub const PADDING_HEADER_LEN: u64 = 8;
/// Padding content allowed at any head length (FORMAT.md §3).
pub const PADDING_FLOOR: u64 = 64 << 10;

/// The most padding content allowed after a head frame of `head_frame_len` bytes: a
/// quarter of it plus [`PADDING_FLOOR`] (FORMAT.md §3). The room a writer reserves for the
/// head is a tight estimate, so the padding is small; the bound keeps a reader from
/// skipping an arbitrary amount of bytes.
pub fn padding_bound(head_frame_len: u64) -> u64 {
    head_frame_len / 4 + PADDING_FLOOR
}

/// A padding frame that fills exactly `total` bytes (header included): the skippable-frame
/// header and zero bytes. `None` when `total` is shorter than a header or longer than a
/// skippable frame can be.
pub fn encode_padding(total: u64) -> Option<Vec<u8>> {
    let mut out = padding_header(total)?.to_vec();
    out.resize(usize::try_from(total).ok()?, 0);
    Some(out)
}

/// The header of a padding frame that fills exactly `total` bytes: its content (zero
/// bytes) follows. `None` as for [`encode_padding`].
pub fn padding_header(total: u64) -> Option<[u8; PADDING_HEADER_LEN as usize]> {
    let content = u32::try_from(total.checked_sub(PADDING_HEADER_LEN)?).ok()?;
    let mut header = [0u8; PADDING_HEADER_LEN as usize];
    header[..4].copy_from_slice(&PADDING_MAGIC.to_le_bytes());
    header[4..].copy_from_slice(&content.to_le_bytes());
    Some(header)
}

/// The content length a padding frame's header declares, or `None` if the header is not a
/// padding frame's.
pub fn padding_content_len(header: &[u8; PADDING_HEADER_LEN as usize]) -> Option<u32> {
    let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    (magic == PADDING_MAGIC).then(|| u32::from_le_bytes([header[4], header[5], header[6], header[7]]))
}

// ---------------------------------------------------------------------------------------
// Reading

/// The head members of a bundle, in layout order, not yet verified.
#[derive(Clone, Debug)]
pub struct HeadMembers {
    /// The exact manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// The manifest signatures, sorted by key id.
    pub signatures: Vec<Signature>,
    /// The `airlock/SHA256SUMS.sig` member.
    pub sums: Vec<u8>,
}

/// Decides, member by member, whether what a reader meets is the head layout. The reader
/// shows it each header with [`check_header`](HeadDecoder::check_header) before reading any
/// content (so the limits hold before allocation), then the content with
/// [`push`](HeadDecoder::push), until `push` returns the complete head. The reader itself
/// checks that the frame ends there ([`frame_continues`]).
#[derive(Default)]
pub struct HeadDecoder {
    manifest_bytes: Option<Vec<u8>>,
    signatures: Vec<Signature>,
    /// The limits of the manifest's version, once the manifest has been taken.
    limits: Option<Limits>,
}

impl HeadDecoder {
    /// A decoder expecting the first member.
    pub fn new() -> HeadDecoder {
        HeadDecoder::default()
    }

    /// Where the next member sits, for messages: `member 1`, `member 2`, ...
    pub fn position(&self) -> String {
        format!("member {}", usize::from(self.manifest_bytes.is_some()) + self.signatures.len() + 1)
    }

    /// Checks the next member's header: the first must be the manifest; the size must be
    /// within the member's limit; the header must be the canonical one for its name and size
    /// with mode 0644. Returns the content size to read.
    pub fn check_header(&self, header: &ReadHeader) -> Result<u64> {
        let at = self.position();
        let name = header.name.as_str();
        let limit = if self.manifest_bytes.is_none() {
            if name != MANIFEST_MEMBER {
                return Err(malformed(&at, format!("expected {MANIFEST_MEMBER:?} first, found {name:?}")));
            }
            // The version is in the content: the reader checks its own limit once it has
            // read the start ([`Limits::of_manifest`]).
            Limits::LARGEST.manifest_bytes
        } else if name.starts_with(SIGNATURES_DIR) {
            // A signature member is tiny; hold it to its own limit before reading any of it.
            MAX_SIGNATURE_BYTES
        } else {
            self.limits.unwrap_or(Limits::LARGEST).sums_bytes
        };
        if header.size > limit {
            return Err(Error::Rejected(Reject::Limit {
                what: format!("{name} of {} bytes", header.size),
                limit: format!("{limit} bytes"),
            }));
        }
        tar::expect_header(header, name, header.size, HEAD_MEMBER_MODE, &at)?;
        Ok(header.size)
    }

    /// Takes the next member (checked with [`check_header`](Self::check_header)) and its
    /// content. Returns the head once the checksum list has been taken.
    pub fn push(&mut self, name: &str, content: Vec<u8>) -> Result<Option<HeadMembers>> {
        let at = self.position();
        if self.manifest_bytes.is_none() {
            let limits = Limits::of_manifest(&content);
            limits.check_manifest_len(content.len() as u64)?;
            self.limits = Some(limits);
            self.manifest_bytes = Some(content);
            return Ok(None);
        }
        if name == SUMS_MEMBER {
            if self.signatures.is_empty() {
                return Err(malformed(SUMS_MEMBER, "the bundle has no manifest signature"));
            }
            let manifest_bytes = self.manifest_bytes.take().unwrap_or_default();
            let signatures = std::mem::take(&mut self.signatures);
            return Ok(Some(HeadMembers { manifest_bytes, signatures, sums: content }));
        }
        let id = signature_member_id(name).ok_or_else(|| {
            malformed(&at, format!("unexpected member {name:?}; expected {SIGNATURES_DIR}<keyid>.sig or {SUMS_MEMBER}"))
        })?;
        if content.len() as u64 > MAX_SIGNATURE_BYTES || self.signatures.len() >= MAX_SIGNATURES {
            return Err(malformed(&at, format!("{name}: too large or too many signatures")));
        }
        let sig = Signature::parse(&content).map_err(|e| malformed(name, e.to_string()))?;
        if sig.key_id() != id {
            return Err(malformed(name, format!("holds a signature by key {}, not {id}", sig.key_id())));
        }
        if self.signatures.last().is_some_and(|last| last.key_id() >= id) {
            return Err(malformed(name, "signature members are not sorted by key id, or repeat one"));
        }
        self.signatures.push(sig);
        Ok(None)
    }
}

/// The rejection for a head frame with anything after the checksum list.
pub fn frame_continues() -> Error {
    malformed("head frame", format!("continues after {SUMS_MEMBER}"))
}

/// The rejection for an end-of-archive marker where a head member must be.
pub fn end_of_archive_in_head(at: &str) -> Error {
    malformed(at, "end of archive inside the head")
}

/// The key id a signature member's name spells: `airlock/signatures/<16 lowercase hex>.sig`.
pub fn signature_member_id(name: &str) -> Option<KeyId> {
    let hex = name.strip_prefix(SIGNATURES_DIR)?.strip_suffix(".sig")?;
    if hex.len() != 16 || hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    KeyId::from_hex(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_member_names_round_trip_and_only_lowercase_is_accepted() {
        let id = KeyId::from_hex("0123456789abcdef").unwrap();
        assert_eq!(signature_member_id(&signature_member(id)), Some(id));
        assert_eq!(signature_member_id("airlock/signatures/0123456789ABCDEF.sig"), None);
        assert_eq!(signature_member_id("airlock/signatures/0123456789abcdef.minisig"), None);
        assert_eq!(signature_member_id("airlock/signatures/0123.sig"), None);
    }

    #[test]
    fn the_manifest_must_come_first() {
        let header = |name: &str| ReadHeader {
            bytes: tar::encode_header(name, 3, HEAD_MEMBER_MODE),
            name: name.to_owned(),
            size: 3,
            kind: b'0',
        };
        let decoder = HeadDecoder::new();
        assert_eq!(decoder.check_header(&header(MANIFEST_MEMBER)).unwrap(), 3);
        let err = decoder.check_header(&header(SUMS_MEMBER)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bundle rejected: member 1: expected \"airlock/manifest.cbor\" first, found \"airlock/SHA256SUMS.sig\""
        );
    }
}
