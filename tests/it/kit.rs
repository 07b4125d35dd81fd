//! The adversarial corpus's workbench: a template workspace built once (keys, a source
//! tree, two bundles of one channel, a mirror holding the first), copied fresh for every
//! case, plus the tools to take bundles apart and build hostile ones in code. Nothing here
//! is an opaque blob: every hostile byte is made by a function below or in the test.
//!
//! Every case ends in [`Case::expect_rejected`] (or a variant), which checks the whole
//! contract of a rejection: the exit code, a message naming the problem, the mirror
//! byte-for-byte unchanged except for one appended `rejected`/`failed` log record that
//! chains to the old log, no staging and no `pending` left, and nothing created outside
//! the mirror: the mirror lives at `<case>/canary/mirror`, and `<case>/canary` must still
//! hold only `mirror` afterwards (and the case directory only what the test made).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use airlock::keys::{self, SecretKey};
use serde::{Deserialize, Serialize};

use crate::common::{airlock, run, snapshot, Run};

/// Relative path of the mirror inside a case directory.
pub const MIRROR: &str = "canary/mirror";

/// Source tree of the fixture bundles. `next` changes `a.txt`.
pub const TREE: &[(&str, &[u8], u32)] = &[("a.txt", b"alpha\n", 0o644), ("xx/cd.txt", b"charlie delta\n", 0o644)];

/// The template: built once per test binary, copied for every case.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<tempfile::TempDir> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            for key in ["k", "k2", "other"] {
                keygen(root, key);
            }
            let src = root.join("src");
            for (path, content, mode) in TREE {
                crate::common::write(&src, path, content, *mode);
            }
            crate::common::write(&src, "z.bin", &big_content(70_000), 0o755);
            pack(root, &src, "base.airlock", &[]).expect_code(0);
            fs::create_dir_all(root.join("canary")).unwrap();
            import_at(root, "base.airlock", &["k"], &[]).expect_code(0);
            crate::common::write(&src, "a.txt", b"alpha two\n", 0o644);
            pack(root, &src, "next.airlock", &[]).expect_code(0);
            // An older bundle of the same channel, packed after the fact: a rollback.
            pack(root, &src, "older.airlock", &["--sequence", "1"]).expect_code(0);
            dir
        })
        .path()
}

/// Deterministic, poorly compressible content.
pub fn big_content(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn keygen(root: &Path, name: &str) {
    run(airlock()
        .arg("keygen")
        .arg("--public")
        .arg(root.join(format!("{name}.pub")))
        .arg("--secret")
        .arg(root.join(format!("{name}.sec")))
        .arg("--no-passphrase"))
    .expect_code(0);
}

fn pack(root: &Path, src: &Path, out: &str, extra: &[&str]) -> Run {
    crate::common::pack_at(root, src, out, extra)
}

fn import_at(root: &Path, bundle: &str, trust: &[&str], extra: &[&str]) -> Run {
    let mut cmd = airlock();
    cmd.arg("import").arg(root.join(bundle));
    for key in trust {
        cmd.arg("--trust").arg(root.join(format!("{key}.pub")));
    }
    run(cmd.arg("--mirror").arg(root.join(MIRROR)).arg("--quiet").args(extra))
}

/// Copies a tree, keeping file modes.
pub fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        let meta = fs::symlink_metadata(e.path()).unwrap();
        if meta.is_dir() {
            fs::create_dir_all(&dest).unwrap();
            fs::set_permissions(&dest, meta.permissions()).unwrap();
        } else if meta.is_file() {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// One adversarial case: a fresh copy of the template.
pub struct Case {
    pub dir: tempfile::TempDir,
}

impl Case {
    pub fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(template(), dir.path());
        Case { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn mirror(&self) -> PathBuf {
        self.path(MIRROR)
    }

    pub fn bytes(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap()
    }

    pub fn put(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).unwrap();
    }

    pub fn secret(&self, name: &str) -> SecretKey {
        SecretKey::load(
            &self.path(&format!("{name}.sec")),
            airlock::keys::KeyPermissions::Strict,
            &mut || unreachable!(),
        )
        .unwrap()
    }

    pub fn key_id(&self, name: &str) -> String {
        self.secret(name).key_id().to_string()
    }

    pub fn parts(&self, name: &str) -> crate::common::Parts {
        crate::common::split(&self.bytes(name))
    }

    /// `airlock import BUNDLE --trust <each key> --mirror canary/mirror --quiet EXTRA`.
    pub fn import(&self, bundle: &str, trust: &[&str], extra: &[&str]) -> Run {
        import_at(self.dir.path(), bundle, trust, extra)
    }

    /// `airlock pack src -o OUT --key k.sec` with the template's state.
    pub fn pack(&self, out: &str, extra: &[&str]) -> Run {
        pack(self.dir.path(), &self.path("src"), out, extra)
    }

    /// Imports `bundle` trusting `k` and checks the full rejection contract (exit 1).
    pub fn expect_rejected(&self, bundle: &str, message: &str) -> Run {
        self.expect_refused(bundle, &["k"], &[], 1, message)
    }

    /// The rejection contract with any trust set, arguments and exit code.
    pub fn expect_refused(&self, bundle: &str, trust: &[&str], extra: &[&str], code: i32, message: &str) -> Run {
        let before = self.mirror_state();
        let log_before = fs::read_to_string(self.mirror().join(".airlock/log")).unwrap_or_default();
        let listing_before = listing(self.dir.path());
        let out = self.import(bundle, trust, extra);
        out.expect_code(code).expect_stderr(message);
        self.assert_untouched(&before, &log_before, &listing_before);
        out
    }

    /// The mirror's full state except its log: every file under the mirror root, with
    /// `.airlock/` included (kept heads, FORMAT, lock), hashed.
    pub fn mirror_state(&self) -> BTreeMap<String, String> {
        let mut s = snapshot(&self.mirror(), false);
        s.remove(".airlock/log");
        s
    }

    /// After a refused import: the mirror is as it was (the log only grew by records that
    /// chain to it, none of them an import), nothing is left in staging or pending, and
    /// nothing appeared outside the mirror.
    pub fn assert_untouched(
        &self,
        before: &BTreeMap<String, String>,
        log_before: &str,
        listing_before: &BTreeSet<String>,
    ) {
        assert_eq!(&self.mirror_state(), before, "the mirror changed");
        let log = fs::read_to_string(self.mirror().join(".airlock/log")).unwrap_or_default();
        assert!(log.starts_with(log_before), "the old log was rewritten");
        for line in log[log_before.len()..].lines() {
            let rec: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                ["rejected", "failed"].contains(&rec["event"].as_str().unwrap()),
                "unexpected log record after a refused import: {line}"
            );
        }
        run(airlock().arg("mirror").arg("log").arg(self.mirror())).expect_code(0);
        let meta = self.mirror().join(".airlock");
        if meta.join("staging").exists() {
            assert_eq!(fs::read_dir(meta.join("staging")).unwrap().count(), 0, "staging left behind");
        }
        assert!(!meta.join("pending").exists(), "pending left behind");
        let canary: Vec<String> = fs::read_dir(self.path("canary"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(canary, ["mirror"], "something was created next to the mirror");
        assert_eq!(&listing(self.dir.path()), listing_before, "something was created outside the mirror");
    }
}

/// Names of everything under `dir` except the mirror's contents.
pub fn listing(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| !e.path().ends_with(MIRROR))
        .map(|e| e.unwrap().path().strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect()
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
    let (header, _, data, size) = crate::common::payload_members(payload)
        .into_iter()
        .find(|m| m.1 == name)
        .unwrap_or_else(|| panic!("no member {name}"));
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
        serde_cbor::from_slice(bytes).unwrap()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ser = serde_cbor::Serializer::new(&mut out);
        ser.self_describe().unwrap();
        self.serialize(&mut ser).unwrap();
        out
    }

    /// `signify -C` lines for the entries, as `sums_text` would write them.
    pub fn sums(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            out.extend_from_slice(format!("SHA256 (data/{}) = {}\n", e.path, crate::common::hex(&e.sha256)).as_bytes());
        }
        out
    }
}

pub fn sha256(data: &[u8]) -> serde_bytes::ByteBuf {
    use sha2::Digest as _;
    serde_bytes::ByteBuf::from(sha2::Sha256::digest(data).to_vec())
}

/// A complete, validly signed head for `manifest` (any bytes): one signature per key,
/// and a checksum list `sums` signed by the first key.
pub fn signed_head(manifest: &[u8], sums: &[u8], signers: &[&SecretKey]) -> Vec<(String, Vec<u8>)> {
    let sigs: Vec<keys::Signature> =
        signers.iter().map(|k| airlock::format::head::sign_manifest(k, manifest)).collect();
    let sums_sig = keys::sign_embedded(signers[0], sums, "hostile but signed");
    airlock::format::head::head_members(manifest, &sigs, &sums_sig)
        .into_iter()
        .map(|(n, c)| (n, c.into_owned()))
        .collect()
}

/// Builds `out` from the `next` bundle with its manifest rewritten by `edit`, validly
/// signed by `k`, and the payload given (or next's own).
pub fn signed_variant(case: &Case, out: &str, edit: impl FnOnce(&mut Wire), payload: Option<Vec<u8>>) {
    let parts = case.parts("next.airlock");
    let mut wire = Wire::decode(&parts.head[0].1);
    edit(&mut wire);
    let manifest = wire.encode();
    let head = signed_head(&manifest, &wire.sums(), &[&case.secret("k")]);
    case.put(out, &crate::common::assemble(&head, &payload.unwrap_or(parts.payload)));
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

/// Sets the mode of a file.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}
