//! The tar encoding of one bundle member, shared by the writer and the reader.
//!
//! A bundle uses a single canonical header form per member (docs/FORMAT.md §"Tar
//! members"): the writer emits it with [`encode_header`], and the reader regenerates the
//! expected bytes the same way and compares them with what it read. Anything else (a
//! symlink, a hardlink, a global PAX header, GNU long names, sparse files, extra PAX keys,
//! an odd mode or owner) is therefore rejected without a second parser to disagree with.

use std::io::{self, Read, Write};

use crate::error::{malformed, Error, Result};

/// tar block size.
pub const BLOCK: usize = 512;
/// The ustar `name` used when the real name travels in a PAX `path` record.
pub const LONG_NAME_PLACEHOLDER: &str = "airlock/long-name";
/// The ustar `name` of every PAX extended header.
pub const PAX_HEADER_NAME: &str = "airlock/pax-header";
/// Largest PAX extended header data accepted.
pub const MAX_PAX_BYTES: u64 = 64 * 1024;
/// Sizes from here on do not fit the ustar octal field and travel in a PAX `size` record.
pub const USTAR_MAX_SIZE: u64 = 0o77777777777;

/// Whether `name` can be stored in the ustar `name` field as is.
fn fits_ustar_name(name: &str) -> bool {
    name.len() <= 100 && name.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The exact header bytes (PAX extended header if needed, then the ustar header) that
/// precede the content of a regular-file member.
pub fn encode_header(name: &str, size: u64, mode: u32) -> Vec<u8> {
    let mut records = String::new();
    if !fits_ustar_name(name) {
        records.push_str(&pax_record("path", name));
    }
    if size > USTAR_MAX_SIZE {
        records.push_str(&pax_record("size", &size.to_string()));
    }
    let mut out = Vec::with_capacity(BLOCK * 3);
    if !records.is_empty() {
        let len = records.len() as u64;
        out.extend_from_slice(&ustar_header(PAX_HEADER_NAME, len, 0o644, ::tar::EntryType::XHeader));
        out.extend_from_slice(records.as_bytes());
        out.resize(out.len() + padding(len), 0);
    }
    let ustar_name = if fits_ustar_name(name) { name } else { LONG_NAME_PLACEHOLDER };
    out.extend_from_slice(&ustar_header(ustar_name, size, mode, ::tar::EntryType::Regular));
    out
}

/// Zero bytes that follow `size` content bytes to fill the last block.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3; // space, '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

fn ustar_header(name: &str, size: u64, mode: u32, kind: ::tar::EntryType) -> [u8; BLOCK] {
    let mut h = ::tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    // Copied directly: tar's set_path would split long names into the ustar prefix field.
    if let Some(ustar) = h.as_ustar_mut() {
        ustar.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    h.set_cksum();
    *h.as_bytes()
}

/// A member header as read from a bundle, before it is checked against what was expected.
pub struct ReadHeader {
    /// All header bytes read (PAX header and data, then the ustar header).
    pub bytes: Vec<u8>,
    /// The member name (PAX `path` if present, else the ustar name with its prefix).
    pub name: String,
    /// The content size (PAX `size` if present, else the ustar size).
    pub size: u64,
    /// The ustar type flag of the final header.
    pub kind: u8,
}

/// What came next in the tar stream.
pub enum Next {
    /// A member header.
    Member(ReadHeader),
    /// A zero block: the start of the end-of-archive marker.
    ZeroBlock,
}

/// Reads the next header. `at` names the position for error messages.
pub fn read_header(r: &mut impl Read, at: &str) -> Result<Next> {
    let mut block = [0u8; BLOCK];
    read_exact(r, &mut block, at)?;
    if block.iter().all(|&b| b == 0) {
        return Ok(Next::ZeroBlock);
    }
    let mut bytes = block.to_vec();
    let first = parse_block(&block, at)?;
    if first.kind != b'x' {
        return Ok(Next::Member(ReadHeader { bytes, ..first }));
    }
    if first.size > MAX_PAX_BYTES {
        return Err(malformed(at, format!("PAX header of {} bytes is too large", first.size)));
    }
    let mut data = vec![0u8; first.size as usize + padding(first.size)];
    read_exact(r, &mut data, at)?;
    bytes.extend_from_slice(&data);
    let records = parse_pax(&data[..first.size as usize], at)?;
    read_exact(r, &mut block, at)?;
    bytes.extend_from_slice(&block);
    let mut member = parse_block(&block, at)?;
    if member.kind == b'x' || member.kind == b'g' {
        return Err(malformed(at, "two extended headers in a row"));
    }
    for (key, value) in records {
        match key.as_str() {
            "path" => member.name = value,
            "size" => {
                member.size = value.parse().map_err(|_| malformed(at, format!("PAX size {value:?} is not a number")))?
            }
            _ => {} // any other key makes the bytes differ from the canonical header
        }
    }
    Ok(Next::Member(ReadHeader { bytes, ..member }))
}

fn parse_block(block: &[u8; BLOCK], at: &str) -> Result<ReadHeader> {
    let h = ::tar::Header::from_byte_slice(block);
    let stored = h.cksum().map_err(|_| malformed(at, "tar header checksum field is not a number"))?;
    let computed: u32 =
        block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u32 }).sum();
    if stored != computed {
        return Err(malformed(at, "tar header checksum does not match (not a tar header, or damaged)"));
    }
    let size = h.entry_size().map_err(|_| malformed(at, "tar header size field is not a number"))?;
    let name = String::from_utf8_lossy(&h.path_bytes()).into_owned();
    Ok(ReadHeader { bytes: Vec::new(), name, size, kind: block[156] })
}

fn parse_pax(data: &[u8], at: &str) -> Result<Vec<(String, String)>> {
    let mut records = Vec::new();
    for ext in ::tar::PaxExtensions::new(data) {
        let ext = ext.map_err(|_| malformed(at, "malformed PAX record"))?;
        let key = ext.key().map_err(|_| malformed(at, "PAX key is not UTF-8"))?;
        let value = ext.value().map_err(|_| malformed(at, "PAX value is not UTF-8"))?;
        records.push((key.to_owned(), value.to_owned()));
    }
    Ok(records)
}

/// Describes a member's type flag for error messages.
pub fn describe_kind(kind: u8) -> &'static str {
    match kind {
        b'0' => "regular file",
        0 => "pre-POSIX regular file (type flag NUL)",
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'5' => "directory",
        b'6' => "fifo",
        b'7' => "contiguous file",
        b'g' => "global PAX header",
        b'x' => "PAX header",
        b'L' | b'K' => "GNU long name",
        b'S' => "GNU sparse file",
        _ => "unknown member type",
    }
}

/// Checks a header read from the stream against the canonical header for (name, size, mode).
pub fn expect_header(read: &ReadHeader, name: &str, size: u64, mode: u32, at: &str) -> Result<()> {
    if read.kind != b'0' {
        return Err(malformed(
            at,
            format!("member {:?} is a {}; only regular files are allowed", read.name, describe_kind(read.kind)),
        ));
    }
    if read.name != name {
        return Err(malformed(at, format!("expected member {name:?}, found {:?}", read.name)));
    }
    if read.size != size {
        return Err(malformed(at, format!("member {name:?} has size {} but the manifest says {size}", read.size)));
    }
    if read.bytes != encode_header(name, size, mode) {
        return Err(malformed(
            at,
            format!("member {name:?} header is not in the canonical form (mode, owner, time or extra PAX keys differ)"),
        ));
    }
    Ok(())
}

/// `read_exact` that reports a short read as truncation at `at`.
pub fn read_exact(r: &mut impl Read, buf: &mut [u8], at: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| stream_error(e, at))
}

/// Maps an error from reading the decompressed bundle stream to a rejection.
pub fn stream_error(e: std::io::Error, at: &str) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::Rejected(crate::error::Reject::Truncated { at: at.to_owned() })
    } else {
        malformed(at, format!("cannot read bundle: {e}"))
    }
}

/// Writes header, content (at most `size` bytes from `content`) and padding. Returns the
/// number of content bytes actually available; on a short source the member is padded with
/// zeros so the caller can report the error.
pub fn write_member(
    w: &mut impl Write,
    name: &str,
    size: u64,
    mode: u32,
    content: &mut impl Read,
    buf: &mut [u8],
) -> io::Result<u64> {
    w.write_all(&encode_header(name, size, mode))?;
    let mut copied = 0u64;
    while copied < size {
        let want = (size - copied).min(buf.len() as u64) as usize;
        let n = match content.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        copied += n as u64;
    }
    if copied < size {
        io::copy(&mut io::repeat(0).take(size - copied), w)?;
    }
    w.write_all(&[0u8; BLOCK][..padding(size)])?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(pax_record("path", "a"), "9 path=a\n");
        assert_eq!(pax_record("path", "abc"), "12 path=abc\n");
        let r = pax_record("path", &"x".repeat(95));
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
        let r = pax_record("path", &"x".repeat(994));
        assert_eq!(r.len(), 1005);
        assert!(r.starts_with("1005 "));
    }

    #[test]
    fn short_name_is_plain_ustar_and_round_trips() {
        let h = encode_header("data/a.txt", 6, 0o644);
        assert_eq!(h.len(), BLOCK);
        let Next::Member(read) = read_header(&mut &h[..], "t").unwrap() else { panic!() };
        assert_eq!((read.name.as_str(), read.size, read.kind), ("data/a.txt", 6, b'0'));
        expect_header(&read, "data/a.txt", 6, 0o644, "t").unwrap();
        assert!(expect_header(&read, "data/a.txt", 6, 0o755, "t").is_err());
    }

    #[test]
    fn long_or_non_ascii_name_uses_pax_path() {
        for name in ["data/ünï.txt".to_string(), format!("data/{}", "d/".repeat(60) + "f")] {
            let h = encode_header(&name, 1, 0o755);
            assert_eq!(h.len(), BLOCK * 3);
            let Next::Member(read) = read_header(&mut &h[..], "t").unwrap() else { panic!() };
            assert_eq!(read.name, name);
            expect_header(&read, &name, 1, 0o755, "t").unwrap();
        }
    }

    #[test]
    fn huge_size_uses_pax_size_and_base256() {
        let size = 20 << 30;
        let h = encode_header("data/big", size, 0o644);
        let Next::Member(read) = read_header(&mut &h[..], "t").unwrap() else { panic!() };
        assert_eq!(read.size, size);
        let ustar = ::tar::Header::from_byte_slice(&h[h.len() - BLOCK..]);
        assert_eq!(ustar.entry_size().unwrap(), size);
        expect_header(&read, "data/big", size, 0o644, "t").unwrap();
    }

    #[test]
    fn gnu_tar_lists_our_headers() {
        // The interop test for whole bundles lives in tests/; this checks tar-rs agrees.
        let mut archive = encode_header("data/ünï", 3, 0o644);
        archive.extend_from_slice(b"abc");
        archive.resize(archive.len() + padding(3) + 1024, 0);
        let mut ar = ::tar::Archive::new(&archive[..]);
        let names: Vec<String> =
            ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["data/ünï"]);
    }

    #[test]
    fn rejects_symlink_and_bad_checksum() {
        let mut h = ::tar::Header::new_ustar();
        h.set_entry_type(::tar::EntryType::Symlink);
        h.set_path("data/a").unwrap();
        h.set_link_name("/etc/passwd").unwrap();
        h.set_size(0);
        h.set_cksum();
        let Next::Member(read) = read_header(&mut &h.as_bytes()[..], "t").unwrap() else { panic!() };
        let err = expect_header(&read, "data/a", 0, 0o644, "t").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let mut bytes = encode_header("data/a", 1, 0o644);
        bytes[0] ^= 1;
        assert!(read_header(&mut &bytes[..], "t").is_err());
    }
}
