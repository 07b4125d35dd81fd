//! Bundle surgery: take a bundle apart, rebuild it, and forge hostile members, frames and
//! manifests byte by byte. Nothing in the tests is an opaque blob: every hostile byte is
//! made by a function here or in the test that uses it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use airlock::keys::{self, SecretKey};
use serde::{Deserialize, Serialize};

use super::{hex, Case};

// ---------------------------------------------------------------------------------------
// whole bundles

/// A bundle taken apart: the head members and the decompressed payload tar stream.
pub struct Parts {
    pub head: Vec<(String, Vec<u8>)>,
    /// Raw compressed head frame.
    pub head_frame: Vec<u8>,
    /// Compressed bytes after the head frame.
    pub payload_frames: Vec<u8>,
    /// Decompressed payload (members + end marker).
    pub payload: Vec<u8>,
}

pub fn split(bundle: &[u8]) -> Parts {
    let mut rest: &[u8] = bundle;
    let mut dec = zstd::stream::read::Decoder::with_buffer(&mut rest).unwrap().single_frame();
    let mut head_tar = Vec::new();
    dec.read_to_end(&mut head_tar).unwrap();
    drop(dec);
    let head_len = bundle.len() - rest.len();
    let mut head = Vec::new();
    let mut ar = tar::Archive::new(&head_tar[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        head.push((name, content));
    }
    let payload = zstd::stream::decode_all(rest).unwrap();
    Parts { head, head_frame: bundle[..head_len].to_vec(), payload_frames: rest.to_vec(), payload }
}

/// Compresses head members into a frame and the payload into another.
pub fn assemble(head: &[(String, Vec<u8>)], payload: &[u8]) -> Vec<u8> {
    let mut out = airlock::format::head::head_frame(head, 3).unwrap();
    out.extend(zstd::stream::encode_all(payload, 3).unwrap());
    out
}

/// Payload members as (header offset, name, content offset, size), by walking the tar.
pub fn payload_members(payload: &[u8]) -> Vec<(usize, String, usize, usize)> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(payload);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let size = e.size() as usize;
        let data = e.raw_file_position() as usize;
        let header = e.raw_header_position() as usize;
        out.push((header, name, data, size));
    }
    out
}

/// Re-signs a (modified) manifest with a key file and rebuilds the head around it:
/// a validly signed but hostile bundle.
pub fn resign(head: &mut [(String, Vec<u8>)], sec: &Path) {
    let key = load_secret(sec);
    let manifest = head[0].1.clone();
    let sig = airlock::format::head::sign_manifest(&key, &manifest);
    for (name, content) in head.iter_mut() {
        if name.starts_with("airlock/signatures/") {
            *content = sig.to_file_string().into_bytes();
        }
    }
}

// ---------------------------------------------------------------------------------------
// tar and zstd by hand

/// Recomputes a ustar header's checksum field the way tar does.
pub fn fix_cksum(block: &mut [u8]) {
    block[148..156].fill(b' ');
    let sum: u32 = block[..512].iter().map(|&b| b as u32).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// A ustar header: the canonical one for (name, size, mode) with its type flag, raw name
/// bytes and link name replaced. Names longer than 100 bytes are cut.
pub fn raw_header(name: &[u8], size: u64, mode: u32, kind: u8, link: &[u8]) -> Vec<u8> {
    let mut h = airlock::format::tar::encode_header("x", size, mode);
    h[..100].fill(0);
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link);
    fix_cksum(&mut h);
    h
}

/// A PAX extended header ('x', or 'g' for global) holding `records` (key, value).
pub fn pax_header(kind: u8, records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3;
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut out = raw_header(b"airlock/pax-header", data.len() as u64, 0o644, kind, b"");
    out.extend_from_slice(&data);
    pad(&mut out);
    out
}

/// Pads to a multiple of 512 with zeros.
pub fn pad(v: &mut Vec<u8>) {
    v.resize(v.len().div_ceil(512) * 512, 0);
}

/// A whole member: canonical header, content, padding.
pub fn member(name: &str, content: &[u8], mode: u32) -> Vec<u8> {
    let mut out = airlock::format::tar::encode_header(name, content.len() as u64, mode);
    out.extend_from_slice(content);
    pad(&mut out);
    out
}

/// A payload member's byte span in the decompressed payload: (header start, content start,
/// content size, end after padding).
pub fn span(payload: &[u8], name: &str) -> (usize, usize, usize, usize) {
    let (header, _, data, size) =
        payload_members(payload).into_iter().find(|m| m.1 == name).unwrap_or_else(|| panic!("no member {name}"));
    (header, data, size, data + size.div_ceil(512) * 512)
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// A zstd skippable frame (magic 0x184D2A50..5F) holding `data`.
pub fn skippable_frame(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x50, 0x2a, 0x4d, 0x18];
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// A zstd frame written by hand from raw (stored) blocks, with a chosen frame header:
/// `window_log` for the Window_Descriptor (none when `single_segment`), and an optional
/// 8-byte Frame_Content_Size. Lets a test declare any window or content size.
pub fn handmade_frame(data: &[u8], window_log: u8, content_size: Option<u64>, single_segment: bool) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    let fcs_flag: u8 = if content_size.is_some() { 3 } else { 0 };
    out.push((fcs_flag << 6) | (u8::from(single_segment) << 5));
    if !single_segment {
        out.push((window_log - 10) << 3);
    }
    if let Some(size) = content_size {
        out.extend_from_slice(&size.to_le_bytes());
    }
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(100_000).collect() };
    for (i, chunk) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        let header = last | ((chunk.len() as u32) << 3); // block type 0: raw
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(chunk);
    }
    out
}

/// A zstd frame of `blocks` RLE blocks, each 128 KiB of `byte`: a few bytes per block on
/// disk, 128 KiB each decompressed. A decompression bomb.
pub fn rle_bomb(byte: u8, blocks: usize) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3];
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | ((128 * 1024) << 3); // block type 1: RLE
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(byte);
    }
    out
}

// ---------------------------------------------------------------------------------------
// manifests by hand

/// The manifest's wire form, field for field in the encoding order of docs/FORMAT.md §6,
/// so a test can write manifests airlock's encoder refuses to produce (serde_cbor with the
/// self-describe tag gives exactly the canonical bytes for well-formed values).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Wire {
    pub format: String,
    pub version: u64,
    pub bundle_id: serde_bytes::ByteBuf,
    pub created: u64,
    pub expires: Option<u64>,
    pub channel: String,
    pub sequence: u64,
    pub previous: Option<serde_bytes::ByteBuf>,
    pub label: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub entries: Vec<WireEntry>,
    pub removed: Vec<String>,
    /// Version 2: the carried bitmap as written, or `None` for "every entry" (recomputed
    /// from the entries at encoding, so an edit of the entries keeps a full bundle full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<serde_bytes::ByteBuf>,
    /// Version 2: the base (written as null when `None`).
    #[serde(default, skip_serializing)]
    pub base: Option<WireBase>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WireBase {
    pub mirror: serde_bytes::ByteBuf,
    pub manifest: serde_bytes::ByteBuf,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WireEntry {
    pub path: String,
    pub size: u64,
    pub sha256: serde_bytes::ByteBuf,
    pub mode: u32,
    pub signatures: Vec<String>,
}

impl Wire {
    pub fn decode(bytes: &[u8]) -> Wire {
        let mut wire: Wire = serde_cbor::from_slice(bytes).unwrap();
        if wire.carried.as_ref().is_some_and(|c| *c == all_carried(wire.entries.len())) {
            wire.carried = None;
        }
        wire
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ser = serde_cbor::Serializer::new(&mut out);
        ser.self_describe().unwrap();
        if self.version == 1 {
            let v1 = Wire { carried: None, base: None, ..self.clone() };
            v1.serialize(&mut ser).unwrap();
        } else {
            // Field for field (serde's `flatten` would write an indefinite-length map).
            #[derive(Serialize)]
            struct V2<'a> {
                format: &'a str,
                version: u64,
                bundle_id: &'a serde_bytes::ByteBuf,
                created: u64,
                expires: Option<u64>,
                channel: &'a str,
                sequence: u64,
                previous: &'a Option<serde_bytes::ByteBuf>,
                label: &'a Option<String>,
                meta: &'a BTreeMap<String, String>,
                entries: &'a [WireEntry],
                removed: &'a [String],
                carried: serde_bytes::ByteBuf,
                base: &'a Option<WireBase>,
            }
            let carried = self.carried.clone().unwrap_or_else(|| all_carried(self.entries.len()));
            V2 {
                format: &self.format,
                version: self.version,
                bundle_id: &self.bundle_id,
                created: self.created,
                expires: self.expires,
                channel: &self.channel,
                sequence: self.sequence,
                previous: &self.previous,
                label: &self.label,
                meta: &self.meta,
                entries: &self.entries,
                removed: &self.removed,
                carried,
                base: &self.base,
            }
            .serialize(&mut ser)
            .unwrap();
        }
        out
    }

    /// Whether entry `i` is carried.
    pub fn is_carried(&self, i: usize) -> bool {
        self.carried.as_ref().is_none_or(|c| c.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
    }

    /// `signify -C` lines for the carried entries, as `sums_text` would write them.
    pub fn sums(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, e) in self.entries.iter().enumerate().filter(|(i, _)| self.is_carried(*i)) {
            out.extend_from_slice(format!("SHA256 (data/{}) = {}\n", e.path, hex(&e.sha256)).as_bytes());
        }
        out
    }
}

/// The carried bitmap of a full bundle of `n` entries.
pub fn all_carried(n: usize) -> serde_bytes::ByteBuf {
    let mut bits = vec![0xffu8; n.div_ceil(8)];
    if !n.is_multiple_of(8) {
        if let Some(last) = bits.last_mut() {
            *last = (1u8 << (n % 8)) - 1;
        }
    }
    serde_bytes::ByteBuf::from(bits)
}

pub fn sha256(data: &[u8]) -> serde_bytes::ByteBuf {
    use sha2::Digest as _;
    serde_bytes::ByteBuf::from(sha2::Sha256::digest(data).to_vec())
}

/// A complete, validly signed head for `manifest` (any bytes): one signature per key,
/// and a checksum list `sums` signed by the first key.
pub fn signed_head(manifest: &[u8], sums: &[u8], signers: &[&SecretKey]) -> Vec<(String, Vec<u8>)> {
    signed_head_with_comment(manifest, sums, signers, "hostile but signed")
}

/// [`signed_head`] with the checksum list's signature comment given (pack writes
/// `verify with airlock key <id>`).
pub fn signed_head_with_comment(
    manifest: &[u8],
    sums: &[u8],
    signers: &[&SecretKey],
    sums_comment: &str,
) -> Vec<(String, Vec<u8>)> {
    let sigs: Vec<keys::Signature> =
        signers.iter().map(|k| airlock::format::head::sign_manifest(k, manifest)).collect();
    let sums_sig = keys::sign_embedded(signers[0], sums, sums_comment);
    airlock::format::head::head_members(manifest, &sigs, &sums_sig)
        .into_iter()
        .map(|(n, c)| (n, c.into_owned()))
        .collect()
}

/// Loads an unencrypted secret key file.
pub fn load_secret(path: &Path) -> SecretKey {
    SecretKey::load(path, airlock::keys::KeyPermissions::Strict, &mut || unreachable!()).unwrap()
}

/// Builds `out` from the `next` bundle with its manifest rewritten by `edit`, validly
/// signed by `k`, and the payload given (or next's own).
pub fn signed_variant(case: &Case, out: &str, edit: impl FnOnce(&mut Wire), payload: Option<Vec<u8>>) {
    let parts = case.parts("next.airlock");
    let mut wire = Wire::decode(&parts.head[0].1);
    edit(&mut wire);
    let manifest = wire.encode();
    let head = signed_head(&manifest, &wire.sums(), &[&case.secret("k")]);
    case.put(out, &assemble(&head, &payload.unwrap_or(parts.payload)));
}

/// A payload holding `members` (already encoded) and the end-of-archive marker.
pub fn payload_of(members: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = members.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Builds a bundle whose manifest holds exactly `files` (path, content, mode) and whose
/// payload is exactly their canonical members: valid in every respect but the paths.
pub fn signed_files(case: &Case, out: &str, files: &[(&str, &[u8], u32)]) {
    let members: Vec<Vec<u8>> = files.iter().map(|(p, c, m)| member(&format!("data/{p}"), c, *m)).collect();
    signed_variant(
        case,
        out,
        |w| {
            w.entries = files
                .iter()
                .map(|(p, c, m)| WireEntry {
                    path: p.to_string(),
                    size: c.len() as u64,
                    sha256: sha256(c),
                    mode: *m,
                    signatures: vec![],
                })
                .collect();
        },
        Some(payload_of(&members)),
    );
}
