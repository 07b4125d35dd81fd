//! Volumes (FORMAT.md §14): the trailer every volume ends with, its footer, and the signed
//! volume table (`VOLUMES.sig`), as pure encode/decode.
//!
//! ```text
//! NAME.vol001.airlock   head frame | body (zstd frames)               | trailer
//! NAME.vol002.airlock              | body (zstd frames)               | trailer
//! NAME.par01.airlock               | body (parity blocks, 1 MiB each) | trailer
//!
//! trailer = zstd skippable frame: magic 0x184D2A5A (LE) · content length (u32 LE) · content
//! content = head frame copy · VOLUMES.sig · footer (32 bytes)
//! footer  = kind ('d'|'p') · 0 · number (u16 LE) · head length (u32 LE) ·
//!           VOLUMES.sig length (u32 LE) · 0 0 0 0 · "airlock-volume\n\0"
//! ```
//!
//! A volume's *body* is its bytes before the trailer (after the head frame in volume 1). The
//! table lists every volume's body length and SHA-256 and the SHA-256 of each 1 MiB block of
//! its body; it is a signify embedded signature's message, so a reader trusts it only once
//! the signature verified (FORMAT.md §14.3). Nothing here reads files.

use std::fmt;

use crate::io::digest::Digest;

/// The parity block size: every volume body is hashed, and parity is computed, per block.
pub const BLOCK_SIZE: u64 = 1 << 20;
/// The zstd skippable-frame magic of a trailer (RFC 8878 §3.1.2: 0x184D2A50..5F).
pub const TRAILER_MAGIC: u32 = 0x184D_2A5A;
/// The last 16 bytes of every volume.
pub const FOOTER_MAGIC: &[u8; 16] = b"airlock-volume\n\0";
/// Length of the footer.
pub const FOOTER_LEN: usize = 32;
/// Skippable frame header: magic and content length.
pub const SKIPPABLE_HEADER_LEN: usize = 8;
/// The most data volumes a set may have (three-digit names).
pub const MAX_DATA_VOLUMES: u16 = 999;
/// The most parity volumes a set may have (two-digit names).
pub const MAX_PARITY_VOLUMES: u16 = 99;
/// The largest `VOLUMES.sig` member (the table lists 71 bytes per MiB of volume data:
/// about 3.7 TiB of volumes).
pub const MAX_TABLE_BYTES: u64 = 256 << 20;
/// The largest trailer content a reader accepts: the largest head frame (its members'
/// limits, FORMAT.md §11, compressed no larger than stored) plus the largest table.
pub const MAX_TRAILER_CONTENT: u64 = 448 << 20;
/// First line of the table: no manifest (CBOR) and no checksum list (`SHA256 (`) starts
/// this way, so a bundle key's signature over one can never be read as the other
/// (FORMAT.md §2).
pub const TABLE_MAGIC: &str = "airlock-volumes 1\n";
/// The member name `VOLUMES.sig` is reported under.
pub const VOLUMES_MEMBER: &str = "VOLUMES.sig";

/// Data or parity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Holds part of the bundle.
    Data,
    /// Holds Reed–Solomon parity of the data volumes.
    Parity,
}

/// One volume of a set: its kind and its number (from 1) within that kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeId {
    /// Data or parity.
    pub kind: Kind,
    /// 1-based.
    pub number: u16,
}

impl VolumeId {
    /// Data volume `number`.
    pub fn data(number: u16) -> VolumeId {
        VolumeId { kind: Kind::Data, number }
    }

    /// Parity volume `number`.
    pub fn parity(number: u16) -> VolumeId {
        VolumeId { kind: Kind::Parity, number }
    }

    /// The volume's file name in set `name`: `NAME.vol001.airlock`, `NAME.par01.airlock`.
    pub fn file_name(&self, name: &str) -> String {
        format!("{name}.{self}.airlock")
    }
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Data => write!(f, "vol{:03}", self.number),
            Kind::Parity => write!(f, "par{:02}", self.number),
        }
    }
}

/// What the footer says, unauthenticated: which volume this claims to be and where the
/// trailer's parts are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// The volume this claims to be (checked against the signed table by its body hash).
    pub id: VolumeId,
    /// Length of the head frame copy.
    pub head_len: u32,
    /// Length of `VOLUMES.sig`.
    pub table_len: u32,
}

impl Footer {
    /// The 32 footer bytes.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0] = match self.id.kind {
            Kind::Data => b'd',
            Kind::Parity => b'p',
        };
        b[2..4].copy_from_slice(&self.id.number.to_le_bytes());
        b[4..8].copy_from_slice(&self.head_len.to_le_bytes());
        b[8..12].copy_from_slice(&self.table_len.to_le_bytes());
        b[16..].copy_from_slice(FOOTER_MAGIC);
        b
    }

    /// Decodes a footer; `None` unless it is exactly one this module would write.
    pub fn decode(b: &[u8; FOOTER_LEN]) -> Option<Footer> {
        let kind = match b[0] {
            b'd' => Kind::Data,
            b'p' => Kind::Parity,
            _ => return None,
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let number = u16::from_le_bytes([b[2], b[3]]);
        let max = if kind == Kind::Data { MAX_DATA_VOLUMES } else { MAX_PARITY_VOLUMES };
        let zeros = b[1] == 0 && b[12..16] == [0; 4];
        if !zeros || &b[16..] != FOOTER_MAGIC || number == 0 || number > max {
            return None;
        }
        Some(Footer { id: VolumeId { kind, number }, head_len: u32_at(4), table_len: u32_at(8) })
    }

    /// Length of the trailer's content (head copy, table, footer).
    pub fn content_len(&self) -> u64 {
        u64::from(self.head_len) + u64::from(self.table_len) + FOOTER_LEN as u64
    }

    /// Length of the whole trailer (skippable header and content).
    pub fn trailer_len(&self) -> u64 {
        SKIPPABLE_HEADER_LEN as u64 + self.content_len()
    }
}

/// The skippable frame header of a trailer with `content_len` bytes of content.
pub fn skippable_header(content_len: u32) -> [u8; SKIPPABLE_HEADER_LEN] {
    let mut b = [0u8; SKIPPABLE_HEADER_LEN];
    b[..4].copy_from_slice(&TRAILER_MAGIC.to_le_bytes());
    b[4..].copy_from_slice(&content_len.to_le_bytes());
    b
}

/// The content length a skippable frame header announces, if `b` is a trailer's header.
pub fn trailer_content_len(b: &[u8; SKIPPABLE_HEADER_LEN]) -> Option<u32> {
    let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    (magic == TRAILER_MAGIC).then(|| u32::from_le_bytes([b[4], b[5], b[6], b[7]]))
}

/// A whole trailer: skippable header, head copy, table, footer.
pub fn encode_trailer(id: VolumeId, head: &[u8], table: &[u8]) -> Option<Vec<u8>> {
    let parts = TrailerParts::new(id, u64::try_from(head.len()).ok()?, table)?;
    let mut out = Vec::with_capacity(parts.trailer_len() as usize);
    out.extend_from_slice(&parts.header);
    out.extend_from_slice(head);
    out.extend_from_slice(&parts.rest);
    Some(out)
}

/// A trailer without its head copy: what goes before it and after it. A writer holding
/// the head frame elsewhere (in volume 1, tens of megabytes with many entries) copies it
/// in between instead of building the trailer in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailerParts {
    /// The skippable frame header.
    pub header: [u8; SKIPPABLE_HEADER_LEN],
    /// The head copy's length.
    pub head_len: u64,
    /// The table, then the footer.
    pub rest: Vec<u8>,
}

impl TrailerParts {
    /// The parts of volume `id`'s trailer around a head copy of `head_len` bytes; `None`
    /// when the content would not fit the skippable frame's 32-bit length.
    pub fn new(id: VolumeId, head_len: u64, table: &[u8]) -> Option<TrailerParts> {
        let footer =
            Footer { id, head_len: u32::try_from(head_len).ok()?, table_len: u32::try_from(table.len()).ok()? };
        let header = skippable_header(u32::try_from(footer.content_len()).ok()?);
        let mut rest = Vec::with_capacity(table.len() + FOOTER_LEN);
        rest.extend_from_slice(table);
        rest.extend_from_slice(&footer.encode());
        Some(TrailerParts { header, head_len, rest })
    }

    /// The whole trailer's length.
    pub fn trailer_len(&self) -> u64 {
        SKIPPABLE_HEADER_LEN as u64 + self.head_len + self.rest.len() as u64
    }
}

/// One volume's line in the table, and its blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeEntry {
    /// Which volume.
    pub id: VolumeId,
    /// Length of its body.
    pub length: u64,
    /// The digest of its block list, [`block_list_digest`] of `blocks` (not a second hash
    /// of the body: a writer hashes each byte once).
    pub sha256: Digest,
    /// SHA-256 of each [`BLOCK_SIZE`] block of its body (the last may be shorter).
    pub blocks: Vec<Digest>,
}

/// The volume table, the message of `VOLUMES.sig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// SHA-256 of the bundle's manifest bytes: binds the set to one bundle.
    pub manifest: Digest,
    /// Data volumes, numbered 1.. in order, then parity volumes, numbered 1...
    pub volumes: Vec<VolumeEntry>,
}

/// A volume's digest in the table: SHA-256 of the concatenation of its blocks' 32-byte
/// SHA-256 digests, in order (FORMAT.md §14.3). It names the body through its blocks, so
/// the body is hashed once, block by block.
pub fn block_list_digest(blocks: &[Digest]) -> Digest {
    let mut hasher = crate::io::digest::Hasher::new();
    for b in blocks {
        hasher.update(&b.0);
    }
    hasher.finish()
}

/// Why a table does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// A line is not what the grammar says at that place.
    #[error("line {line}: expected {expected}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What the grammar wants there.
        expected: &'static str,
    },
    /// The table's counts are outside the format's limits or disagree with its lines.
    #[error("{0}")]
    Shape(&'static str),
}

impl Table {
    /// Data volume count.
    pub fn data_count(&self) -> u16 {
        self.volumes.iter().filter(|v| v.id.kind == Kind::Data).count() as u16
    }

    /// Parity volume count.
    pub fn parity_count(&self) -> u16 {
        self.volumes.iter().filter(|v| v.id.kind == Kind::Parity).count() as u16
    }

    /// The entry for `id`.
    pub fn entry(&self, id: VolumeId) -> Option<&VolumeEntry> {
        self.volumes.iter().find(|v| v.id == id)
    }

    /// Stripes: blocks per parity volume, the most blocks of any data volume.
    pub fn stripes(&self) -> u64 {
        blocks_in(self.parity_length())
    }

    /// The length of every parity volume's body: the longest data body, rounded up to a
    /// multiple of 64 bytes (FORMAT.md §14.4).
    pub fn parity_length(&self) -> u64 {
        parity_length(self.volumes.iter().filter(|v| v.id.kind == Kind::Data).map(|v| v.length))
    }

    /// The shard length of stripe `j`: its parity blocks' length.
    pub fn shard_len(&self, j: u64) -> usize {
        let r = block_range(self.parity_length(), j);
        (r.end - r.start) as usize
    }

    /// The table's bytes (FORMAT.md §14.3).
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            String::with_capacity(128 + self.volumes.iter().map(|v| 100 + 71 * v.blocks.len()).sum::<usize>());
        out.push_str(TABLE_MAGIC);
        out.push_str(&format!("manifest {}\n", self.manifest));
        out.push_str(&format!("block-size {BLOCK_SIZE}\n"));
        out.push_str(&format!("data {}\nparity {}\n", self.data_count(), self.parity_count()));
        for v in &self.volumes {
            out.push_str(&format!("volume {} {} {}\n", v.id, v.length, v.sha256));
            for b in &v.blocks {
                out.push_str("block ");
                out.push_str(&b.to_hex());
                out.push('\n');
            }
        }
        out.into_bytes()
    }

    /// Decodes a table: exactly the bytes [`Table::encode`] would write for it.
    pub fn decode(bytes: &[u8]) -> Result<Table, TableError> {
        let text = std::str::from_utf8(bytes).map_err(|_| TableError::Line { line: 1, expected: "UTF-8 text" })?;
        let text = text.strip_suffix('\n').ok_or(TableError::Shape("the table does not end with a newline"))?;
        let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));
        let mut expect = |prefix: &'static str, expected: &'static str| -> Result<(usize, &str), TableError> {
            match lines.next() {
                Some((n, l)) => {
                    l.strip_prefix(prefix).map(|rest| (n, rest)).ok_or(TableError::Line { line: n, expected })
                }
                None => Err(TableError::Shape("the table ends early")),
            }
        };
        expect("airlock-volumes 1", "airlock-volumes 1")?;
        let (n, hex) = expect("manifest ", "manifest <sha256 hex>")?;
        let manifest = digest(hex).ok_or(TableError::Line { line: n, expected: "manifest <sha256 hex>" })?;
        let (n, size) = expect("block-size ", "block-size 1048576")?;
        if size != BLOCK_SIZE.to_string() {
            return Err(TableError::Line { line: n, expected: "block-size 1048576" });
        }
        let (n, data) = expect("data ", "data <count>")?;
        let data = number(data)
            .filter(|&d| (1..=u64::from(MAX_DATA_VOLUMES)).contains(&d))
            .ok_or(TableError::Line { line: n, expected: "data <count from 1 to 999>" })?;
        let (n, parity) = expect("parity ", "parity <count>")?;
        let parity = number(parity)
            .filter(|&p| p <= u64::from(MAX_PARITY_VOLUMES))
            .ok_or(TableError::Line { line: n, expected: "parity <count from 0 to 99>" })?;
        let ids = (1..=data as u16).map(VolumeId::data).chain((1..=parity as u16).map(VolumeId::parity));
        let mut volumes = Vec::new();
        let mut rest = lines.peekable();
        for id in ids {
            let (n, line) = rest.next().ok_or(TableError::Shape("the table ends before its last volume"))?;
            let v = volume_line(line, id)
                .ok_or(TableError::Line { line: n, expected: "volume <name> <length> <sha256 hex>" })?;
            let (length, sha256) = v;
            let mut blocks = Vec::new();
            for _ in 0..blocks_in(length) {
                let (n, line) = rest.next().ok_or(TableError::Shape("the table ends inside a volume's blocks"))?;
                let d = line.strip_prefix("block ").and_then(digest);
                blocks.push(d.ok_or(TableError::Line { line: n, expected: "block <sha256 hex>" })?);
            }
            if block_list_digest(&blocks) != sha256 {
                return Err(TableError::Line {
                    line: n,
                    expected: "volume <name> <length> <SHA-256 of its block lines' digests>",
                });
            }
            volumes.push(VolumeEntry { id, length, sha256, blocks });
        }
        if rest.next().is_some() {
            return Err(TableError::Shape("the table has lines after its last volume's blocks"));
        }
        let table = Table { manifest, volumes };
        table.check_shape()?;
        Ok(table)
    }

    /// The rule a table's numbers follow besides the grammar: every parity body is as long
    /// as the longest data body, rounded up to a multiple of 64 bytes.
    fn check_shape(&self) -> Result<(), TableError> {
        let length = self.parity_length();
        if !self.volumes.iter().filter(|v| v.id.kind == Kind::Parity).all(|v| v.length == length) {
            return Err(TableError::Shape(
                "a parity volume's length is not the longest data volume's, rounded up to 64 bytes",
            ));
        }
        Ok(())
    }
}

/// `volume <id> <length> <sha256>` for the expected id.
fn volume_line(line: &str, id: VolumeId) -> Option<(u64, Digest)> {
    let rest = line.strip_prefix("volume ")?.strip_prefix(&id.to_string())?.strip_prefix(' ')?;
    let (length, hex) = rest.split_once(' ')?;
    Some((number(length)?, digest(hex)?))
}

/// A canonical decimal number (no sign, no leading zero).
fn number(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// 64 lowercase hex digits.
fn digest(s: &str) -> Option<Digest> {
    let lower = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    lower.then(|| Digest::from_hex(s)).flatten()
}

/// The parity body length for data bodies of these lengths: the longest, rounded up to a
/// multiple of 64 (the codec's shards are multiples of 64 bytes).
pub fn parity_length(data_lengths: impl Iterator<Item = u64>) -> u64 {
    data_lengths.max().unwrap_or(0).div_ceil(64) * 64
}

/// How many blocks a body of `length` bytes has.
pub fn blocks_in(length: u64) -> u64 {
    length.div_ceil(BLOCK_SIZE)
}

/// The byte range of block `j` in a body of `length` bytes (empty past the end).
pub fn block_range(length: u64, j: u64) -> std::ops::Range<u64> {
    let start = (j * BLOCK_SIZE).min(length);
    start..(start + BLOCK_SIZE).min(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let d = |b: u8| Digest([b; 32]);
        Table {
            manifest: d(0xab),
            volumes: vec![
                VolumeEntry {
                    id: VolumeId::data(1),
                    length: BLOCK_SIZE + 5,
                    sha256: block_list_digest(&[d(3), d(4)]),
                    blocks: vec![d(3), d(4)],
                },
                VolumeEntry {
                    id: VolumeId::data(2),
                    length: 7,
                    sha256: block_list_digest(&[d(6)]),
                    blocks: vec![d(6)],
                },
                VolumeEntry {
                    id: VolumeId::parity(1),
                    length: BLOCK_SIZE + 64,
                    sha256: block_list_digest(&[d(8), d(9)]),
                    blocks: vec![d(8), d(9)],
                },
            ],
        }
    }

    #[test]
    fn table_round_trips_and_starts_with_its_magic() {
        let t = sample();
        let bytes = t.encode();
        assert!(bytes.starts_with(TABLE_MAGIC.as_bytes()));
        assert_eq!(Table::decode(&bytes).unwrap(), t);
        assert_eq!(t.stripes(), 2);
    }

    #[test]
    fn table_decoding_is_strict() {
        let text = String::from_utf8(sample().encode()).unwrap();
        for (from, to) in [
            ("data 2", "data 02"),
            ("parity 1", "parity 100"),
            ("volume vol002", "volume vol003"),
            ("block-size 1048576", "block-size 1024"),
            (" 7 ", " 1048577 "),
        ] {
            let bad = text.replacen(from, to, 1);
            assert!(Table::decode(bad.as_bytes()).is_err(), "{from} -> {to}");
        }
        assert!(Table::decode(format!("{text}x\n").as_bytes()).is_err());
        assert!(Table::decode(&text.as_bytes()[..text.len() - 1]).is_err());
        let upper = text.replacen("abab", "ABAB", 1);
        assert!(Table::decode(upper.as_bytes()).is_err());
    }

    #[test]
    fn footer_round_trips_and_refuses_others() {
        let f = Footer { id: VolumeId::parity(3), head_len: 1000, table_len: 77 };
        let b = f.encode();
        assert_eq!(Footer::decode(&b), Some(f));
        let mut bad = b;
        bad[31] = b'x';
        assert_eq!(Footer::decode(&bad), None);
        let zero = Footer { id: VolumeId::data(0), ..f }.encode();
        assert_eq!(Footer::decode(&zero), None);
        assert_eq!(VolumeId::data(7).file_name("x"), "x.vol007.airlock");
        assert_eq!(VolumeId::parity(2).file_name("x"), "x.par02.airlock");
    }

    #[test]
    fn trailer_is_a_skippable_frame_that_ends_with_its_footer() {
        let t = encode_trailer(VolumeId::data(1), b"head", b"table").unwrap();
        let header: [u8; 8] = t[..8].try_into().unwrap();
        assert_eq!(trailer_content_len(&header), Some((t.len() - 8) as u32));
        let footer: [u8; FOOTER_LEN] = t[t.len() - FOOTER_LEN..].try_into().unwrap();
        let f = Footer::decode(&footer).unwrap();
        assert_eq!(f.trailer_len(), t.len() as u64);
        // Stock zstd skips it: a skippable frame followed by nothing decodes to nothing.
        assert_eq!(zstd::decode_all(&t[..]).unwrap(), Vec::<u8>::new());
    }

    /// A writer that copies the head in between the parts writes the trailer byte for byte.
    #[test]
    fn trailer_parts_around_the_head_are_the_trailer() {
        let head = vec![0x5au8; 70_000];
        for id in [VolumeId::data(1), VolumeId::data(12), VolumeId::parity(3)] {
            let parts = TrailerParts::new(id, head.len() as u64, b"the table").unwrap();
            let joined = [&parts.header[..], &head, &parts.rest].concat();
            assert_eq!(joined, encode_trailer(id, &head, b"the table").unwrap());
            assert_eq!(parts.trailer_len(), joined.len() as u64);
        }
        assert_eq!(TrailerParts::new(VolumeId::data(1), u64::from(u32::MAX) + 1, b"t"), None);
    }

    /// Pins the table text and the trailer bytes: a change is a format change (FORMAT.md
    /// §12, §14), with these golden files regenerated.
    #[test]
    fn golden_table_and_trailer() {
        let table = String::from_utf8(sample().encode()).unwrap();
        assert_eq!(table, include_str!("../../fixtures/golden/volumes-table-v1.txt"));
        let trailer = encode_trailer(VolumeId::data(1), b"head", b"table").unwrap();
        let golden = include_str!("../../fixtures/golden/volume-trailer-v1.hex").trim();
        assert_eq!(crate::io::digest::hex(&trailer), golden);
    }
}
