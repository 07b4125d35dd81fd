//! The one test harness: run the binary, make keys and trees, pack and import, snapshot
//! directory trees, and check the whole contract of a rejection. Bundle surgery (taking
//! bundles apart, forging members, frames and manifests) is in [`forge`], re-exported here.
//!
//! Two workbenches share these mechanisms:
//! - [`Workspace`]: an empty temp dir with one key pair `k`, for tests that build their
//!   own trees (round trips, interop, policy, co-signing).
//! - [`Case`]: the adversarial corpus's template, built once (keys `k`, `k2`, `other`, a
//!   source tree, two bundles of one channel, a mirror holding the first) and copied fresh
//!   for every case. Every case ends in [`Case::expect_rejected`] (or a variant), which
//!   checks the exit code, a message naming the problem, the mirror byte-for-byte unchanged
//!   except for one appended `rejected`/`failed` log record that chains to the old log, no
//!   staging and no `pending` left, and nothing created outside the mirror: the mirror lives
//!   at `<case>/canary/mirror`, and `<case>/canary` must still hold only `mirror`
//!   afterwards (and the case directory only what the test made).

#![allow(dead_code)]

mod forge;

pub use forge::*;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use airlock::keys::SecretKey;
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------------------------------
// running the binary

/// The airlock binary under test, with the environment variables it reads cleared.
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

/// `airlock keygen` of `ROOT/<name>.pub` and `ROOT/<name>.sec`, without passphrase.
pub fn keygen(root: &Path, name: &str) {
    run(airlock()
        .arg("keygen")
        .arg("--public")
        .arg(root.join(format!("{name}.pub")))
        .arg("--secret")
        .arg(root.join(format!("{name}.sec")))
        .arg("--no-passphrase"))
    .expect_code(0);
}

/// `airlock pack SRC -o ROOT/OUT --key ROOT/k.sec EXTRA...` with the channel state kept in
/// `ROOT/state`: the pack every test workbench uses, not yet run. (No `--quiet`: the tests
/// read pack's whole report; its progress bar is hidden anyway, stderr being no terminal.)
pub fn pack_command(root: &Path, src: &Path, out: &str, extra: &[&str]) -> Command {
    let mut cmd = airlock();
    cmd.arg("pack")
        .arg(src)
        .arg("-o")
        .arg(root.join(out))
        .arg("--key")
        .arg(root.join("k.sec"))
        .args(extra)
        .env("AIRLOCK_STATE_DIR", root.join("state"));
    cmd
}

/// Runs [`pack_command`].
pub fn pack_at(root: &Path, src: &Path, out: &str, extra: &[&str]) -> Run {
    run(&mut pack_command(root, src, out, extra))
}

/// `airlock import ROOT/BUNDLE --trust ROOT/<key>.pub... --mirror ROOT/canary/mirror
/// EXTRA...`, not yet run (no `--quiet`, which would print only the verdict line; the
/// progress bar is hidden anyway, stderr being no terminal).
pub fn import_command(root: &Path, bundle: &str, trust: &[&str], extra: &[&str]) -> Command {
    let mut cmd = airlock();
    cmd.arg("import").arg(root.join(bundle));
    for key in trust {
        cmd.arg("--trust").arg(root.join(format!("{key}.pub")));
    }
    cmd.arg("--mirror").arg(root.join(MIRROR)).args(extra);
    cmd
}

// ---------------------------------------------------------------------------------------
// trees

/// Writes a file, creating parents, with a mode.
pub fn write(root: &Path, rel: &str, content: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Sets the mode of a file.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
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

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Workspace: an empty workbench with one key pair

/// A test workspace: a temp dir with a key pair `k`, a state dir and helpers.
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
        keygen(self.dir.path(), name);
    }

    /// `airlock pack SRC -o OUT --key k.sec` plus extra args, with a private state dir.
    pub fn pack(&self, src: &Path, out: &str, extra: &[&str]) -> Run {
        pack_at(self.dir.path(), src, out, extra)
    }

    pub fn verify(&self, bundle: &str, key: &str) -> Run {
        run(airlock().arg("verify").arg(self.path(bundle)).arg("--trust").arg(self.path(&format!("{key}.pub"))))
    }

    pub fn import(&self, bundle: &str, key: &str, mirror: &str, extra: &[&str]) -> Run {
        run(airlock()
            .arg("import")
            .arg(self.path(bundle))
            .arg("--trust")
            .arg(self.path(&format!("{key}.pub")))
            .arg("--mirror")
            .arg(self.path(mirror))
            // Creates the mirror on first use (a no-op on an existing one).
            .arg("--init")
            .args(extra))
    }
}

/// Checks a bundle-with-mirror rejection in a [`Workspace`]: exit 1, the message, mirror
/// unchanged. ([`Case::expect_rejected`] checks the full contract.)
pub fn assert_rejected_unchanged(ws: &Workspace, bundle: &str, key: &str, mirror: &str, message: &str) {
    assert_rejection_leaves_mirror(ws, mirror, &[message], || ws.import(bundle, key, mirror, &[]));
}

/// Runs `import` (a rejected import), then checks: exit 1, every one of `messages` on
/// stderr, the mirror `mirror` exactly as before and no staging left behind.
pub fn assert_rejection_leaves_mirror(ws: &Workspace, mirror: &str, messages: &[&str], import: impl FnOnce() -> Run) {
    let before = snapshot(&ws.path(mirror), true);
    let run = import();
    run.expect_code(1);
    for m in messages {
        run.expect_stderr(m);
    }
    assert_eq!(snapshot(&ws.path(mirror), true), before, "mirror changed by a rejected import");
    let staging = ws.path(mirror).join(".airlock/staging");
    if staging.exists() {
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0, "staging left behind");
    }
}

// ---------------------------------------------------------------------------------------
// Case: the adversarial corpus's workbench

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
                write(&src, path, content, *mode);
            }
            write(&src, "z.bin", &big_content(70_000), 0o755);
            pack_at(root, &src, "base.airlock", &[]).expect_code(0);
            fs::create_dir_all(root.join("canary")).unwrap();
            run(&mut import_command(root, "base.airlock", &["k"], &["--init"])).expect_code(0);
            write(&src, "a.txt", b"alpha two\n", 0o644);
            pack_at(root, &src, "next.airlock", &[]).expect_code(0);
            // An older bundle of the same channel, packed after the fact: a rollback.
            pack_at(root, &src, "older.airlock", &["--sequence", "1"]).expect_code(0);
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
        load_secret(&self.path(&format!("{name}.sec")))
    }

    pub fn key_id(&self, name: &str) -> String {
        self.secret(name).key_id().to_string()
    }

    pub fn parts(&self, name: &str) -> Parts {
        split(&self.bytes(name))
    }

    /// `airlock import BUNDLE --trust <each key> --mirror canary/mirror --quiet EXTRA`.
    pub fn import(&self, bundle: &str, trust: &[&str], extra: &[&str]) -> Run {
        run(&mut self.import_command(bundle, trust, extra))
    }

    /// The command [`Case::import`] runs, for a test that adds to it (an environment
    /// variable, say).
    pub fn import_command(&self, bundle: &str, trust: &[&str], extra: &[&str]) -> Command {
        import_command(self.dir.path(), bundle, trust, extra)
    }

    /// `airlock verify BUNDLE --trust <each key> --quiet`.
    pub fn verify(&self, bundle: &str, trust: &[&str]) -> Run {
        let mut cmd = airlock();
        cmd.arg("verify").arg(self.path(bundle));
        for key in trust {
            cmd.arg("--trust").arg(self.path(&format!("{key}.pub")));
        }
        run(cmd.arg("--quiet"))
    }

    /// `airlock pack src -o OUT --key k.sec` with the template's state.
    pub fn pack(&self, out: &str, extra: &[&str]) -> Run {
        pack_at(self.dir.path(), &self.path("src"), out, extra)
    }

    /// The command [`Case::pack`] runs, for a test that adds to it (a fixed clock, say).
    pub fn pack_command(&self, out: &str, extra: &[&str]) -> Command {
        pack_command(self.dir.path(), &self.path("src"), out, extra)
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

    /// The mirror's full state except its log (and the log's anchor): every file under the mirror root, with
    /// `.airlock/` included (kept heads, FORMAT, lock), hashed.
    pub fn mirror_state(&self) -> BTreeMap<String, String> {
        let mut s = snapshot(&self.mirror(), false);
        s.remove(".airlock/log");
        s.remove(".airlock/log-head");
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
