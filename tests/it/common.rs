//! Shared helpers for the integration tests: run the binary, make keys and trees, take
//! apart and reassemble bundles, and snapshot directory trees.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest as _, Sha256};

/// The airlock binary under test.
pub fn airlock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.env_remove("AIRLOCK_PASSPHRASE_FILE").env_remove("AIRLOCK_NOW");
    cmd
}

/// Result of a command run, with its stdout and stderr as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with the whole output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Panics unless stderr contains `text`.
    pub fn expect_stderr(&self, text: &str) -> &Run {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}:\n{}", self.stderr);
        self
    }
}

/// Runs a command to completion.
pub fn run(cmd: &mut Command) -> Run {
    Run::from(cmd.output().expect("spawn"))
}

/// A test workspace: a temp dir with a key pair, a state dir and helpers.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let ws = Workspace { dir: tempfile::tempdir().unwrap() };
        ws.keygen("k");
        ws
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Makes `<name>.pub` / `<name>.sec` without passphrase.
    pub fn keygen(&self, name: &str) {
        run(airlock()
            .arg("keygen")
            .arg("--public")
            .arg(self.path(&format!("{name}.pub")))
            .arg("--secret")
            .arg(self.path(&format!("{name}.sec")))
            .arg("--no-passphrase"))
        .expect_code(0);
    }

    /// `airlock pack SRC -o OUT --key k.sec` plus extra args, with a private state dir.
    pub fn pack(&self, src: &Path, out: &str, extra: &[&str]) -> Run {
        pack_at(self.dir.path(), src, out, extra)
    }

    pub fn verify(&self, bundle: &str, key: &str) -> Run {
        run(airlock()
            .arg("verify")
            .arg(self.path(bundle))
            .arg("--trust")
            .arg(self.path(&format!("{key}.pub")))
            .arg("--quiet"))
    }

    pub fn import(&self, bundle: &str, key: &str, mirror: &str, extra: &[&str]) -> Run {
        run(airlock()
            .arg("import")
            .arg(self.path(bundle))
            .arg("--trust")
            .arg(self.path(&format!("{key}.pub")))
            .arg("--mirror")
            .arg(self.path(mirror))
            .arg("--quiet")
            .args(extra))
    }
}

/// Writes a file, creating parents, with a mode.
pub fn write(root: &Path, rel: &str, content: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file and directory under `root` (excluding `.airlock` at the top when
/// `skip_meta`), with type, mode and SHA-256: equal snapshots mean identical trees.
pub fn snapshot(root: &Path, skip_meta: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if skip_meta && (rel == ".airlock" || rel.starts_with(".airlock/")) {
            continue;
        }
        let m = fs::symlink_metadata(e.path()).unwrap();
        let desc = if m.is_file() {
            format!("file {:o} {}", m.permissions().mode() & 0o7777, hex(&Sha256::digest(fs::read(e.path()).unwrap())))
        } else if m.is_dir() {
            "dir".into()
        } else {
            format!("other {:?}", m.file_type())
        };
        out.insert(rel, desc);
    }
    out
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

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
    let key =
        airlock::keys::SecretKey::load(sec, airlock::keys::KeyPermissions::Strict, &mut || unreachable!()).unwrap();
    let manifest = head[0].1.clone();
    let sig = airlock::format::head::sign_manifest(&key, &manifest);
    for (name, content) in head.iter_mut() {
        if name.starts_with("airlock/signatures/") {
            *content = sig.to_file_string().into_bytes();
        }
    }
}

/// Checks a bundle-with-mirror rejection: exit 1, the message, mirror unchanged.
pub fn assert_rejected_unchanged(ws: &Workspace, bundle: &str, key: &str, mirror: &str, message: &str) {
    let before = snapshot(&ws.path(mirror), true);
    let run = ws.import(bundle, key, mirror, &[]);
    run.expect_code(1).expect_stderr(message);
    assert_eq!(snapshot(&ws.path(mirror), true), before, "mirror changed by a rejected import");
    let staging = ws.path(mirror).join(".airlock/staging");
    if staging.exists() {
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0, "staging left behind");
    }
}

/// `airlock pack SRC -o ROOT/OUT --key ROOT/k.sec --quiet EXTRA...` with the channel state
/// kept in `ROOT/state`: the pack every test workspace uses.
pub fn pack_at(root: &Path, src: &Path, out: &str, extra: &[&str]) -> Run {
    run(airlock()
        .arg("pack")
        .arg(src)
        .arg("-o")
        .arg(root.join(out))
        .arg("--key")
        .arg(root.join("k.sec"))
        .arg("--quiet")
        .args(extra)
        .env("AIRLOCK_STATE_DIR", root.join("state")))
}
