//! Before anything is written, and before any source file's content is read: will the bundle fit
//! where it goes?
//!
//! A bundle's size is known within the compression bound before a byte is compressed. A
//! walk that only `lstat`s the sources gives every member's name and size, and from those
//! [`Estimate::bound`] adds up the largest the bundle can be whatever the data:
//!
//! - payload: every member's tar headers (one ustar header, or a PAX header and its records
//!   too, as [`tar::encode_header`] writes them), its content and padding to 512 bytes, then
//!   the two end-of-archive blocks; compressed at worst to [`zstd_bound`] of that;
//! - head: a manifest bound per entry (CBOR keys, size, mode, digest, the path and at most
//!   as many bytes again for the signature links) plus the label, metadata and channel; the
//!   checksum list's line per entry; one signature member per key; each member's header and
//!   padding; compressed at worst to [`zstd_bound`] of that;
//! - with `sign_artifacts`, one more member per file (a signify embedded signature of the
//!   checksum line, which repeats the path).
//!
//! [`zstd_bound`] is zstd's own `ZSTD_COMPRESSBOUND`: incompressible input is stored in raw
//! blocks of 128 KiB with a 3-byte header each, far inside the bound's 1/256 allowance even
//! with the extra block a multithreaded job may end with. The bound is what the checks use:
//! an incompressible payload needs all of it, and the estimate must never let a pack start
//! that cannot finish. (A compressible payload takes less; the report says "up to".)
//!
//! Both checks come before a byte is written, and before any source file's content is read:
//! 1. [`estimate`], only where pack reads content before the manifest is known (a delta's
//!    candidate files, and every file under `sign_artifacts`): from a walk of its own. It is
//!    kept light (one `lstat` per file, no sorting, no path checks), and skips what the
//!    walk refuses with its own message (links, devices, names that are not UTF-8 or not
//!    allowed). For a delta (`PackOptions::base`) which files are carried is known only
//!    once they are hashed, so this check counts a file whose path, size and mode equal a
//!    base entry as not carried: it refuses only what cannot fit whatever the hashes say.
//! 2. [`bound_of`], once the manifest is built: from the manifest itself (the exact
//!    manifest length, the carried entries, the generated checksum signatures). A plain
//!    pack's walk reads metadata only, so this check alone is also before any content is
//!    read; an early walk would only stat every file again (0.7 s of 3.9 s for 200,000
//!    small files).

use std::path::Path;

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use super::{PackError, PackOptions};
use crate::error::{Error, Reject, Result};
use crate::format::head::signature_comment;
use crate::format::manifest::{Entry, Limits, Manifest, Mode, VERSION};
use crate::format::sums::sums_text_len;
use crate::format::tar::{self, BLOCK, USTAR_MAX_SIZE};
use crate::format::volume::{FOOTER_LEN, MAX_TABLE_BYTES, MAX_TRAILER_CONTENT};
use crate::format::DATA_DIR;
use crate::io::durable::parent_dir;
use crate::io::space::{self, Space};
use crate::keys::SecretKey;

/// CBOR bytes of one manifest entry besides its path and signature links: the map and key
/// strings (`path`, `size`, `sha256`, `mode`, `signatures`), a 64-bit size, a 32-byte
/// digest, a mode and the array header, each with its CBOR header, rounded up.
const MANIFEST_PER_ENTRY: u64 = 160;
/// The manifest's fixed fields (format, version, bundle id, times, sequence, previous,
/// base, map keys), rounded up.
const MANIFEST_FIXED: u64 = 1024;
/// A checksum-list line besides its path: `SHA256 (data/` `) = ` 64 hex digits, newline.
const SUMS_PER_ENTRY: u64 = 82;
/// A signify signature file (comment line, base64 line) or the signature lines in front of
/// the checksum list, rounded up.
const SIGNATURE_BYTES: u64 = 256;
/// A generated `<file>.sha256.sig` besides the path it repeats (comment, signature, the
/// rest of the checksum line), rounded up.
const CHECKSUM_SIG_BYTES: u64 = 384;
/// zstd frame headers and checksums of the two frames, rounded up.
const FRAME_OVERHEAD: u64 = 64;

/// What the walk found, and the largest bundle it can make.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Estimate {
    /// Files found.
    pub(super) files: u64,
    /// Their total size.
    pub(super) content: u64,
    /// The bundle's size at most.
    pub(super) bound: u64,
}

/// FORMAT.md §11, the limits an importer holds a bundle's head to, for the manifest
/// about to be written (encoded in `manifest_len` bytes; its checksum list signed by
/// `sums_signer`): refused here, before anything is written, with the rejection an importer
/// would give. The checks are the reader's own ([`Limits`]), so pack never writes a bundle
/// airlock refuses for its size.
pub(super) fn check_limits(manifest: &Manifest, manifest_len: u64, sums_signer: &SecretKey) -> Result<()> {
    // The signature lines in front of the list, measured on a real signature: their length
    // does not depend on the message.
    let comment = signature_comment(sums_signer.key_id());
    let sums_signature_len = sums_signer.sign(b"", &comment).to_file_string().len() as u64;
    let limits = Limits::of_version(manifest.version);
    let over = |reject| Error::Pack(PackError::OverLimit(reject));
    limits.check_entries(manifest.entries.len() as u64).map_err(over)?;
    limits.check_manifest_len(manifest_len).map_err(over)?;
    limits.check_sums_len(sums_signature_len.saturating_add(sums_text_len(manifest))).map_err(over)
}

/// A volume set's trailers each hold a copy of the head frame (`head_frame_len` bytes) and
/// a volume table of at most [`MAX_TABLE_BYTES`] within [`MAX_TRAILER_CONTENT`] (FORMAT.md
/// §14.2), which a reader enforces: a head too large for that is refused before any volume
/// is written. (A single-file bundle has no such limit.)
pub(super) fn check_trailer_room(head_frame_len: u64) -> Result<()> {
    let room = MAX_TRAILER_CONTENT - MAX_TABLE_BYTES - FOOTER_LEN as u64;
    if head_frame_len > room {
        let reject = Reject::Limit {
            what: format!("the head frame of {head_frame_len} bytes, copied into every volume trailer,"),
            limit: format!("{room} bytes for a volume set (pack without --volume-size has no such limit)"),
        };
        return Err(Error::Pack(PackError::OverLimit(reject)));
    }
    Ok(())
}

/// Walks `opts.sources` (metadata only) and bounds the bundle's size (for a delta: the
/// smallest the bound can turn out, see the module docs). A tree with more files than the
/// format's entry limit is refused here, before a byte is read.
pub(super) fn estimate(opts: &PackOptions, signers: usize) -> Result<Estimate> {
    let mut sizer = Sizer::default();
    let held: HashMap<&[u8], &Entry> =
        opts.base.iter().flat_map(|b| &b.entries).map(|e| (e.path.as_str().as_bytes(), e)).collect();
    walk_files(&opts.sources, &mut |path, meta| {
        let size = meta.len();
        let mode = Mode::from_permissions(meta.permissions().mode());
        let maybe_held = held.get(path).is_some_and(|b| b.size == size && b.mode == mode);
        sizer.add(path, size, !maybe_held, opts.sign_artifacts);
    })?;
    let entries = sizer.files + sizer.generated;
    Limits::of_version(VERSION).check_entries(entries).map_err(|r| Error::Pack(PackError::OverLimit(r)))?;
    Ok(sizer.finish(opts, signers))
}

/// Every regular file under `sources` with its bundle path (a directory's files relative to
/// it, a file under its own name) and `lstat` metadata. Links and special files are passed
/// over: the walk refuses them, naming them.
fn walk_files(sources: &[std::path::PathBuf], found: &mut dyn FnMut(&[u8], &fs::Metadata)) -> Result<()> {
    for root in sources {
        let meta = fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
        if meta.is_file() {
            found(root.file_name().map_or(&[][..], |n| n.as_bytes()), &meta);
            continue;
        }
        if !meta.is_dir() {
            continue;
        }
        let prefix = root.as_os_str().as_bytes().len();
        for item in walkdir::WalkDir::new(root).follow_links(false) {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(root).to_owned();
                Error::io(path, e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk failed")))
            })?;
            if !item.file_type().is_file() {
                continue;
            }
            let meta = item.metadata().map_err(|e| {
                let path = item.path();
                Error::io(path, e.into_io_error().unwrap_or_else(|| std::io::Error::other("stat failed")))
            })?;
            let full = item.path().as_os_str().as_bytes();
            let rel = full.get(prefix..).unwrap_or(full);
            found(rel.strip_prefix(b"/").unwrap_or(rel), &meta);
        }
    }
    Ok(())
}

/// The bound once the manifest is known (encoded in `manifest_len` bytes): exact member
/// names and sizes, carried entries only in the payload and the checksum list.
pub(super) fn bound_of(manifest: &Manifest, manifest_len: u64, signers: usize) -> u64 {
    let mut payload = 2 * BLOCK as u64;
    let mut sums = SIGNATURE_BYTES;
    for e in manifest.entries.iter().filter(|e| e.carried) {
        payload = payload.saturating_add(member(&format!("{DATA_DIR}{}", e.path), e.size));
        sums += SUMS_PER_ENTRY + e.path.as_str().len() as u64;
    }
    bound(member(crate::format::MANIFEST_MEMBER, manifest_len), signers, sums, payload)
}

/// The bundle's bound from its members' lengths: the manifest member, `signers` signature
/// members, the checksum list's content, and the payload's tar stream.
fn bound(manifest_member: u64, signers: usize, sums: u64, payload: u64) -> u64 {
    let head = manifest_member
        + signers as u64 * member("airlock/signatures/0123456789abcdef.sig", SIGNATURE_BYTES)
        + member(crate::format::SUMS_MEMBER, sums);
    zstd_bound(head).saturating_add(zstd_bound(payload)).saturating_add(FRAME_OVERHEAD)
}

/// Checks that the file system holding `out`'s directory can take a new file of up to
/// `bound` bytes; `largest_file` is the largest single file that will be written (the
/// whole bound for a single-file bundle, at most one volume with volumes).
pub(crate) fn check_room(out: &Path, bound: u64, largest_file: u64) -> Result<Space> {
    let dir = parent_dir(out);
    let space = space::destination(dir)?;
    if let (Some(limit), Some(kind)) = (space.max_file, space.kind) {
        if largest_file > limit {
            return Err(
                PackError::FileTooLarge { destination: out.to_owned(), needed: largest_file, limit, kind }.into()
            );
        }
    }
    let needed = space.on_disk(bound);
    match space.free {
        Some(free) if needed > free => Err(PackError::NoRoom { destination: out.to_owned(), needed, free }.into()),
        _ => Ok(space),
    }
}

/// Adds up the uncompressed head and payload as members are found.
#[derive(Default)]
struct Sizer {
    files: u64,
    content: u64,
    /// The payload's tar stream: headers, contents, padding.
    payload: u64,
    /// The head's members, before their tar headers.
    manifest: u64,
    sums: u64,
    /// Members `sign_artifacts` adds, counted separately: they go in the payload too.
    generated: u64,
}

impl Sizer {
    /// Counts a file at bundle path `path`; `carried`: it may be in the payload.
    fn add(&mut self, path: &[u8], size: u64, carried: bool, sign_artifacts: bool) {
        let path_len = path.len() as u64;
        let ascii = printable_ascii(path);
        self.files += 1;
        self.content = self.content.saturating_add(size);
        // The path, and at most as many bytes again for its name in a signature link.
        self.manifest += MANIFEST_PER_ENTRY + 2 * path_len;
        if carried {
            let name_len = DATA_DIR.len() as u64 + path_len;
            self.payload = self.payload.saturating_add(member_len(name_len, ascii, size));
            self.sums += SUMS_PER_ENTRY + path_len;
        }
        if sign_artifacts {
            let name_len = (DATA_DIR.len() + crate::format::CHECKSUM_SIG_SUFFIX.len()) as u64 + path_len;
            self.generated += 1;
            self.payload = self.payload.saturating_add(member_len(name_len, ascii, CHECKSUM_SIG_BYTES + path_len));
            self.manifest += MANIFEST_PER_ENTRY + 2 * name_len;
            self.sums += SUMS_PER_ENTRY + name_len;
        }
    }

    fn finish(self, opts: &PackOptions, signers: usize) -> Estimate {
        let entries = self.files + self.generated;
        let meta: u64 = opts.meta.iter().map(|(k, v)| (k.len() + v.len()) as u64 + 16).sum();
        let text = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() as u64 + 16);
        // The carried bitmap of a v2 manifest: one bit per entry.
        let manifest =
            MANIFEST_FIXED + opts.channel.len() as u64 + text(&opts.label) + meta + entries / 8 + self.manifest;
        let sums = SIGNATURE_BYTES + self.sums;
        let payload = self.payload.saturating_add(2 * BLOCK as u64);
        let bound = bound(member(crate::format::MANIFEST_MEMBER, manifest), signers, sums, payload);
        Estimate { files: self.files, content: self.content, bound }
    }
}

/// A tar member's bytes: its headers (exactly as written), content and padding.
fn member(name: &str, size: u64) -> u64 {
    member_len(name.len() as u64, printable_ascii(name.as_bytes()), size)
}

/// A tar member's bytes, from its name's length and whether the name is printable ASCII:
/// as [`tar::encode_header`] writes them (a ustar header; a PAX header and records first
/// when the name is long or not ASCII, or the size large), at most 8 bytes more per record.
fn member_len(name_len: u64, ascii: bool, size: u64) -> u64 {
    /// A PAX record's bytes besides key and value (`<len> `, `=`, newline), at most: the
    /// length is at most 5 digits (records are at most 64 KiB).
    const RECORD: u64 = 8;
    let block = BLOCK as u64;
    let mut records = 0;
    if !ascii || name_len > 100 {
        records += RECORD + "path".len() as u64 + name_len;
    }
    if size > USTAR_MAX_SIZE {
        records += RECORD + "size".len() as u64 + 20;
    }
    let pax = if records > 0 { block + records.div_ceil(block) * block } else { 0 };
    (pax + block).saturating_add(size).saturating_add(tar::padding(size) as u64)
}

/// Whether a name can stand in the ustar name field (FORMAT.md §4), length aside.
fn printable_ascii(name: &[u8]) -> bool {
    name.iter().all(|b| (0x20..0x7f).contains(b))
}

/// zstd's `ZSTD_COMPRESSBOUND(n)`: the most a frame of `n` input bytes compresses to.
pub(crate) fn zstd_bound(n: u64) -> u64 {
    const BLOCK_MAX: u64 = 128 << 10;
    let small = if n < BLOCK_MAX { (BLOCK_MAX - n) >> 11 } else { 0 };
    n.saturating_add(n >> 8).saturating_add(small)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::pack::tests::options;

    #[test]
    fn zstd_bound_matches_the_library() {
        for n in [0usize, 1, 100, 128 << 10, (128 << 10) + 1, 10 << 20] {
            assert_eq!(zstd_bound(n as u64), zstd::zstd_safe::compress_bound(n) as u64, "n = {n}");
        }
    }

    #[test]
    fn the_estimate_counts_every_file_and_bounds_a_real_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        fs::write(src.join("noise"), &noise).unwrap();
        fs::write(src.join("sub/empty"), b"").unwrap();
        fs::write(src.join(format!("sub/{}", "long-name-".repeat(20))), b"x").unwrap();
        let opts = PackOptions { sources: vec![src], sign_artifacts: true, ..options() };
        let estimate = estimate(&opts, 1).unwrap();
        assert_eq!((estimate.files, estimate.content), (3, 300_001));
        let key = crate::keys::SecretKey::generate("test");
        let out = dir.path().join("b.airlock");
        let report = crate::pack::pack(
            &opts,
            &[key],
            &out,
            crate::io::durable::Overwrite::NoClobber,
            &crate::progress::NoProgress,
        )
        .unwrap();
        assert!(report.bundle_bytes <= estimate.bound, "{} > {}", report.bundle_bytes, estimate.bound);
        // The second check, from the manifest, is tighter and still a bound.
        assert!(report.bundle_bytes <= report.bound_bytes && report.bound_bytes <= estimate.bound, "{report:?}");
        // Not wildly above: the bound is for planning media, not a guess.
        let near = report.bundle_bytes + report.bundle_bytes / 50 + 16384;
        assert!(estimate.bound < near, "{estimate:?} for a bundle of {}", report.bundle_bytes);
    }

    /// For a delta, a file the base holds with the same path, size and mode is not counted
    /// in the payload before hashing; one of another size is.
    #[test]
    fn a_delta_estimate_leaves_out_what_the_base_may_hold() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("held"), vec![1u8; 100_000]).unwrap();
        fs::write(dir.path().join("changed"), vec![2u8; 100_000]).unwrap();
        let full = PackOptions { sources: vec![dir.path().to_owned()], ..options() };
        let entry = |path: &str, size| Entry {
            path: crate::format::path::RelPath::new(path).unwrap(),
            size,
            sha256: crate::io::digest::Digest([0; 32]),
            mode: Mode::Regular,
            signatures: Vec::new(),
            carried: true,
        };
        let base = crate::pack::PackBase {
            mirror: crate::format::manifest::MirrorId([0; 16]),
            manifest: crate::io::digest::Digest([0; 32]),
            entries: vec![entry("held", 100_000), entry("changed", 99_999)],
        };
        let delta = PackOptions { base: Some(base), ..full.clone() };
        let (full, delta) = (estimate(&full, 1).unwrap(), estimate(&delta, 1).unwrap());
        assert_eq!(full.files, delta.files);
        assert!(full.bound > 200_000 && delta.bound > 100_000, "{full:?} {delta:?}");
        assert!(delta.bound < full.bound - 99_000, "{full:?} {delta:?}");
    }

    /// The arithmetic member length is never below what the tar writer writes, and at most
    /// one block above.
    #[test]
    fn member_len_bounds_the_headers_written() {
        for name in ["data/a", &format!("data/{}", "x".repeat(95)), &format!("data/{}", "y".repeat(600)), "data/é"] {
            for size in [0, 1, 511, 512, USTAR_MAX_SIZE, USTAR_MAX_SIZE + 1] {
                let exact = tar::encode_header(name, size, 0o644).len() as u64 + size + tar::padding(size) as u64;
                let bound = member(name, size);
                assert!(bound >= exact && bound <= exact + BLOCK as u64, "{name:?} {size}: {bound} vs {exact}");
            }
        }
    }

    /// Links are passed over by the walk (the walk refuses them, naming them).
    #[test]
    fn the_walk_counts_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), b"12345").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let opts = PackOptions { sources: vec![dir.path().to_owned()], ..options() };
        let estimate = estimate(&opts, 1).unwrap();
        assert_eq!((estimate.files, estimate.content), (1, 5));
    }
}
