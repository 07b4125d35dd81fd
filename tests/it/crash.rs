//! Crash and fault safety of `airlock import`.
//!
//! - Killed at every step boundary of the import protocol (docs/FORMAT.md §10; the test
//!   hook `AIRLOCK_TEST_CRASH_AT=<crash point>`, read by the CLI built with the
//!   `fault-injection` feature, aborts the process at that `CrashPoint` in
//!   src/mirror/protocol.rs) and with SIGKILL after random delays: after
//!   the next `airlock mirror verify` (which recovers) the mirror is exactly the old or
//!   exactly the new state, the log's hash chain is intact and records the import exactly
//!   once or not at all; the next `airlock import` then completes it. A crash before the
//!   commit point after staging everything leaves journaled staging that the rerun reuses
//!   (`resumed N files`), and a resumed rerun is as crash-safe as a fresh import.
//! - Disk full (a file-size limit, and a tmpfs out of inodes), an unwritable mirror, and a
//!   failure after the commit point: a clear error, staging cleaned up (or, after the commit
//!   point, kept for recovery), the mirror unchanged or recoverable.
//! - Concurrent imports: the mirror lock makes the second fail clearly; never interleaved.
//!
//! Resource limits and privilege drops use util-linux (`prlimit`, `setpriv`) through
//! `sh`, so no unsafe code is needed (the crate forbids it, tests included); a test whose
//! tool or privilege is missing says so and passes vacuously.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{airlock, run, snapshot, Run};
use crate::kit::{big_content, copy_tree};

/// The crash points of src/mirror/protocol.rs (`CrashPoint::name`), in order, and whether a
/// crash there must leave the new state (the commit point, FORMAT.md §10 step 5, is
/// `pending` written: `committed`).
const STAGES: &[(&str, bool)] = &[
    ("head-staged", false),
    ("staged", false),
    ("committed", true),
    ("file-retired", true),
    ("file-moved", true),
    ("files-moved", true),
    ("record-kept", true),
    ("log-appended", true),
    ("logged", true),
    ("pending-removed", true),
];

/// Built once: keys, a small `base` bundle (imported into the template mirror) and a
/// ~24 MB `next` bundle that overwrites base's files, adds 96 large ones in 8 directories
/// and some small ones; the snapshots of the old and new mirror states.
struct Fixture {
    dir: tempfile::TempDir,
    old: BTreeMap<String, String>,
    new: BTreeMap<String, String>,
    next_digest: String,
    import_time: Duration,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ws = |rel: &str| root.join(rel);
        run(airlock()
            .arg("keygen")
            .arg("--public")
            .arg(ws("k.pub"))
            .arg("--secret")
            .arg(ws("k.sec"))
            .arg("--no-passphrase"))
        .expect_code(0);
        let src = ws("src");
        for i in 0..20 {
            crate::common::write(&src, &format!("small/{i:02}.txt"), format!("base file {i}\n").as_bytes(), 0o644);
        }
        // Files `next` no longer lists: its complete manifest retires them. One per
        // directory, so a crash right after a retirement leaves a directory that recovery
        // must still remove.
        for i in 0..3 {
            crate::common::write(&src, &format!("old/{i}/gone.txt"), format!("gone {i}\n").as_bytes(), 0o644);
        }
        pack(root, &src, "base.airlock", &[]);
        fs::remove_dir_all(src.join("old")).unwrap();
        fs::create_dir_all(ws("template")).unwrap();
        run(airlock().arg("mirror").arg("init").arg(ws("template/mirror"))).expect_code(0);
        import(root, "base.airlock", &ws("template/mirror"), &[]).expect_code(0);
        for i in 0..20 {
            crate::common::write(
                &src,
                &format!("small/{i:02}.txt"),
                format!("next file {i}, changed\n").as_bytes(),
                0o644,
            );
        }
        let chunk = big_content(256 * 1024 + 8 * 96);
        for i in 0..96 {
            crate::common::write(
                &src,
                &format!("big/d{}/f{i:02}.bin", i % 8),
                &chunk[i * 8..i * 8 + 256 * 1024],
                if i % 5 == 0 { 0o755 } else { 0o644 },
            );
        }
        for i in 0..30 {
            crate::common::write(&src, &format!("new/{i:02}/note.txt"), format!("note {i}\n").as_bytes(), 0o644);
        }
        let out = pack(root, &src, "next.airlock", &[]);
        let next_digest = out.stdout.lines().find_map(|l| l.strip_prefix("manifest sha256 ")).unwrap().to_owned();
        let old = snapshot(&ws("template/mirror"), true);
        copy_tree(&ws("template"), &ws("reference"));
        let started = Instant::now();
        import(root, "next.airlock", &ws("reference/mirror"), &[]).expect_code(0);
        let import_time = started.elapsed();
        let new = snapshot(&ws("reference/mirror"), true);
        assert_ne!(old, new);
        Fixture { dir, old, new, next_digest, import_time }
    })
}

fn pack(root: &Path, src: &Path, out: &str, extra: &[&str]) -> Run {
    let r = crate::common::pack_at(root, src, out, extra);
    r.expect_code(0);
    r
}

fn import_cmd(root: &Path, bundle: &str, mirror: &Path) -> Command {
    let mut cmd = airlock();
    cmd.arg("import").arg(root.join(bundle)).arg("--trust").arg(root.join("k.pub")).arg("--mirror").arg(mirror);
    cmd
}

fn import(root: &Path, bundle: &str, mirror: &Path, env: &[(&str, &str)]) -> Run {
    let mut cmd = import_cmd(root, bundle, mirror);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// A fresh copy of the template mirror (base imported) in its own directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&fixture().dir.path().join("template"), dir.path());
        Scratch { dir }
    }

    fn mirror(&self) -> PathBuf {
        self.dir.path().join("mirror")
    }

    fn import(&self, env: &[(&str, &str)]) -> Run {
        import(fixture().dir.path(), "next.airlock", &self.mirror(), env)
    }

    fn state(&self) -> BTreeMap<String, String> {
        snapshot(&self.mirror(), true)
    }

    /// Which state the mirror's files are in: exactly old, exactly new, or a panic.
    fn which(&self) -> bool {
        let s = self.state();
        if s == fixture().old {
            false
        } else if s == fixture().new {
            true
        } else {
            let f = fixture();
            let odd: Vec<&String> =
                s.keys().filter(|k| f.old.get(*k) != s.get(*k) && f.new.get(*k) != s.get(*k)).take(5).collect();
            panic!(
                "mixed mirror: {} files, neither old ({}) nor new ({}); e.g. {odd:?}",
                s.len(),
                f.old.len(),
                f.new.len()
            );
        }
    }

    /// Log records as JSON values; the chain is checked by `airlock mirror log`.
    fn log(&self) -> Vec<serde_json::Value> {
        run(airlock().arg("mirror").arg("log").arg(self.mirror())).expect_code(0);
        fs::read_to_string(self.mirror().join(".airlock/log"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn imports_of_next(&self) -> usize {
        let digest = &fixture().next_digest;
        self.log()
            .iter()
            .filter(|r| r["event"] == "imported" && r["bundle"]["manifest_sha256"] == digest.as_str())
            .count()
    }

    /// No staging, no pending, no temporary file of a durable write.
    fn assert_no_leftovers(&self) {
        self.assert_no_leftovers_but(&[]);
    }

    /// [`Scratch::assert_no_leftovers`], but the staging directories named `kept` may stay
    /// (the journaled staging of an interrupted import, kept for its rerun).
    fn assert_no_leftovers_but(&self, kept: &[&str]) {
        let meta = self.mirror().join(".airlock");
        let staging: Vec<String> = fs::read_dir(meta.join("staging"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !kept.contains(&n.as_str()))
            .collect();
        assert!(staging.is_empty(), "staging left: {staging:?}");
        assert!(!meta.join("pending").exists(), "pending left");
        let temporary: Vec<_> = fs::read_dir(&meta)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(temporary.is_empty(), "temporary files left: {temporary:?}");
    }

    /// After an interruption: recovery through `mirror verify` gives exactly old or new,
    /// a consistent log (only the journaled staging of `next` may stay, for its rerun),
    /// and the next import completes the new state. Returns whether recovery gave the new
    /// state, and the rerun's output.
    fn recover_and_finish(&self, what: &str) -> bool {
        self.recover_and_rerun(what).0
    }

    fn recover_and_rerun(&self, what: &str) -> (bool, Run) {
        let verify = run(airlock().arg("mirror").arg("verify").arg(self.mirror()).arg("--quiet"));
        verify.expect_code(0);
        let is_new = self.which();
        self.assert_no_leftovers_but(&[&fixture().next_digest]);
        assert_eq!(self.imports_of_next(), usize::from(is_new), "{what}: log disagrees with the files");
        let again = self.import(&[]);
        again.expect_code(0);
        assert_eq!(self.state(), fixture().new, "{what}: the next import did not complete the new state");
        assert_eq!(self.imports_of_next(), 1, "{what}");
        self.assert_no_leftovers();
        run(airlock().arg("mirror").arg("verify").arg(self.mirror()).arg("--quiet")).expect_code(0);
        (is_new, again)
    }
}

fn killed_by_signal(r: &Run) -> bool {
    r.code == -1
}

#[test]
fn crash_at_every_stage_boundary() {
    for &(stage, expect_new) in STAGES {
        let s = Scratch::new();
        let out = s.import(&[("AIRLOCK_TEST_CRASH_AT", stage)]);
        assert!(killed_by_signal(&out), "{stage}: the import was not stopped by the hook: {} {}", out.code, out.stderr);
        let (is_new, rerun) = s.recover_and_rerun(stage);
        assert_eq!(is_new, expect_new, "{stage}: recovered to the wrong state");
        let log = s.log();
        match stage {
            // Everything was staged, verified and journaled: the rerun reuses it all.
            "staged" => assert!(rerun.stdout.contains("resumed 146 files"), "{stage}: {}", rerun.stdout),
            _ if !expect_new => {
                assert!(log.iter().any(|r| r["event"] == "discarded"), "{stage}: no discarded record")
            }
            _ => {}
        }
    }
}

/// A resumed import is as crash-safe as a fresh one: killed after staging everything, then
/// its rerun (which reuses the journaled files) killed at each step boundary, recovery
/// still gives exactly the old or the new state, and the next run completes it.
#[test]
fn crash_during_a_resumed_import() {
    for &(stage, expect_new) in STAGES {
        let s = Scratch::new();
        assert!(killed_by_signal(&s.import(&[("AIRLOCK_TEST_CRASH_AT", "staged")])));
        let out = s.import(&[("AIRLOCK_TEST_CRASH_AT", stage)]);
        assert!(killed_by_signal(&out), "{stage}: the rerun was not stopped by the hook: {} {}", out.code, out.stderr);
        let (is_new, _) = s.recover_and_rerun(stage);
        assert_eq!(is_new, expect_new, "{stage}: a resumed import recovered to the wrong state");
    }
}

/// Every crash point of the protocol is exercised above, in protocol order.
#[test]
fn every_crash_point_is_tested() {
    let points: Vec<&str> = airlock::mirror::CrashPoint::ALL.iter().map(|p| p.name()).collect();
    let tested: Vec<&str> = STAGES.iter().map(|&(name, _)| name).collect();
    assert_eq!(points, tested);
}

/// Recovery itself is interrupted (the hook fires inside recovery's apply), then run again.
#[test]
fn crash_during_recovery() {
    for stage in ["file-moved", "files-moved", "logged"] {
        let s = Scratch::new();
        assert!(killed_by_signal(&s.import(&[("AIRLOCK_TEST_CRASH_AT", "committed")])));
        let mut verify = airlock();
        verify.arg("mirror").arg("verify").arg(s.mirror()).arg("--quiet").env("AIRLOCK_TEST_CRASH_AT", stage);
        assert!(killed_by_signal(&run(&mut verify)), "{stage}");
        assert!(s.recover_and_finish(stage));
    }
}

/// SIGKILL after pseudo-random delays spread over a whole import's duration.
#[test]
fn sigkill_at_random_points() {
    let f = fixture();
    let span = f.import_time.as_micros().max(1000) as u64;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut old, mut new) = (0, 0);
    for i in 0..10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_micros(x % (span * 11 / 10) + (i as u64) * span / 40);
        let s = Scratch::new();
        let mut child = import_cmd(f.dir.path(), "next.airlock", &s.mirror())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        if s.recover_and_finish(&format!("kill after {delay:?}")) {
            new += 1;
        } else {
            old += 1;
        }
    }
    eprintln!("random kills: {old} recovered to the old state, {new} to the new (import takes {:?})", f.import_time);
}

// ---------------------------------------------------------------------------------------
// faults

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The import run under `sh -c 'trap "" XFSZ; exec PREFIX airlock import ...'`: SIGXFSZ
/// ignored (inherited across exec), so a write past the file-size limit returns EFBIG.
fn import_wrapped(s: &Scratch, prefix: &str) -> Run {
    let f = fixture();
    let script = format!("trap '' XFSZ; exec {prefix} \"$@\"");
    run(Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_airlock"))
        .arg("import")
        .arg(f.dir.path().join("next.airlock"))
        .arg("--trust")
        .arg(f.dir.path().join("k.pub"))
        .arg("--mirror")
        .arg(s.mirror())
        .arg("--quiet")
        .env_remove("AIRLOCK_NOW"))
}

/// Disk full, as a file-size limit (RLIMIT_FSIZE 100 KiB; the payload has 256 KiB files):
/// exit 2 naming the file and the error, staging removed, mirror unchanged, logged.
#[test]
fn file_size_limit_mid_import() {
    if !have("prlimit") {
        eprintln!("SKIPPED: prlimit not installed");
        return;
    }
    let s = Scratch::new();
    let out = import_wrapped(&s, "prlimit --fsize=102400:102400 --");
    out.expect_code(2).expect_stderr("File too large");
    assert_eq!(s.state(), fixture().old);
    s.assert_no_leftovers();
    let log = s.log();
    assert_eq!(log.last().unwrap()["event"], "failed");
    s.recover_and_finish("after EFBIG");
}

/// Disk full for real: the mirror on a tmpfs with too few inodes for the staged files
/// (free bytes pass the pre-flight check; file creation fails with ENOSPC mid-staging).
#[test]
fn no_space_left_mid_import() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("fs");
    fs::create_dir(&mnt).unwrap();
    // inodes: the old mirror needs ~40; the new files need ~150 more.
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m,nr_inodes=90", "tmpfs"]).arg(&mnt).status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    copy_tree(&fixture().dir.path().join("template"), &mnt);
    let s = Scratch { dir: tempfile::tempdir_in(&mnt).unwrap() };
    // Scratch in the mount: move the mirror copy into it.
    fs::rename(mnt.join("mirror"), s.mirror()).unwrap();
    let out = s.import(&[]);
    out.expect_code(2).expect_stderr("No space left on device");
    assert_eq!(s.state(), fixture().old);
    s.assert_no_leftovers();
    assert_eq!(s.log().last().unwrap()["event"], "failed");
}

/// The mirror is not writable by the importing user: a clear error before anything is
/// staged, the mirror unchanged.
#[test]
fn unwritable_mirror() {
    let s = Scratch::new();
    let out = if is_root() {
        if !have("setpriv") {
            eprintln!("SKIPPED: setpriv not installed");
            return;
        }
        open_up(s.dir.path());
        import_wrapped(&s, "setpriv --reuid=65534 --regid=65534 --clear-groups --")
    } else {
        chmod_tree(&s.mirror(), 0o555);
        let out = s.import(&[]);
        chmod_tree(&s.mirror(), 0o755);
        out
    };
    out.expect_code(2).expect_stderr("Permission denied");
    assert_eq!(s.state(), fixture().old);
    s.assert_no_leftovers();
}

/// Makes a scratch directory and the fixture readable by another user, and the mirror
/// belong to root (so `nobody` cannot write it).
fn open_up(dir: &Path) {
    for p in [dir.to_path_buf(), fixture().dir.path().to_path_buf()] {
        crate::kit::chmod(&p, 0o755);
    }
    for name in ["next.airlock", "k.pub"] {
        crate::kit::chmod(&fixture().dir.path().join(name), 0o644);
    }
}

fn chmod_tree(dir: &Path, mode: u32) {
    for e in walkdir::WalkDir::new(dir).contents_first(true) {
        let e = e.unwrap();
        if e.file_type().is_dir() {
            crate::kit::chmod(e.path(), mode);
        }
    }
}

/// A failure *after* the commit point: `nobody` owns the mirror except one directory the
/// import must write into, so applying stops after moving some files. The staged files
/// must survive for recovery (not be cleaned up as after an ordinary failure), and once
/// the cause is gone the next run finishes the import: never a mixed mirror for good.
#[test]
fn failure_after_the_commit_point_is_finished_by_recovery() {
    if !is_root() || !have("setpriv") {
        eprintln!("SKIPPED: needs root and setpriv to make one directory unwritable");
        return;
    }
    let s = Scratch::new();
    open_up(s.dir.path());
    for e in walkdir::WalkDir::new(s.mirror()) {
        std::os::unix::fs::chown(e.unwrap().path(), Some(65534), Some(65534)).unwrap();
    }
    // `small/` (base's files, overwritten by next) stays root's: renames into it fail.
    std::os::unix::fs::chown(s.mirror().join("small"), Some(0), Some(0)).unwrap();
    let out = import_wrapped(&s, "setpriv --reuid=65534 --regid=65534 --clear-groups --");
    out.expect_code(2).expect_stderr("Permission denied");
    // Some of next's files are in place (big/ sorts before small/), the rest are staged.
    assert!(s.mirror().join(".airlock/pending").exists(), "the commit record is gone");
    let staged = fs::read_dir(s.mirror().join(".airlock/staging")).unwrap().count();
    assert_eq!(staged, 1, "the committed staging directory was removed");
    // The cause removed, recovery (as root here) finishes the import.
    run(airlock().arg("mirror").arg("verify").arg(s.mirror()).arg("--quiet")).expect_code(0);
    assert_eq!(s.state(), fixture().new);
    assert_eq!(s.imports_of_next(), 1);
    s.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------
// concurrency

/// The lock held (here by the test itself): import, `mirror verify` and `mirror log` fail at
/// once with a message saying so; nothing changes.
#[test]
fn import_refused_while_the_lock_is_held() {
    let s = Scratch::new();
    let lock = fs::OpenOptions::new().read(true).write(true).open(s.mirror().join(".airlock/lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let log_before = fs::read_to_string(s.mirror().join(".airlock/log")).unwrap();
    s.import(&[]).expect_code(2).expect_stderr("another airlock process is using this mirror");
    run(airlock().arg("mirror").arg("verify").arg(s.mirror())).expect_code(2).expect_stderr("another airlock process");
    // `mirror log` only reads, but never beside a writer: it could see a record half appended.
    run(airlock().arg("mirror").arg("log").arg(s.mirror())).expect_code(2).expect_stderr("another airlock process");
    assert_eq!(s.state(), fixture().old);
    assert_eq!(fs::read_to_string(s.mirror().join(".airlock/log")).unwrap(), log_before);
    drop(lock);
    s.import(&[]).expect_code(0);
}

/// Two real imports started together: the one that takes the lock imports; the other
/// fails with the lock message (exit 2) and is not interleaved: the mirror ends exactly
/// new, the log holds one import.
#[test]
fn concurrent_imports_never_interleave() {
    let f = fixture();
    for _ in 0..3 {
        let s = Scratch::new();
        let spawn = || {
            import_cmd(f.dir.path(), "next.airlock", &s.mirror())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let codes = [a.status.code(), b.status.code()];
        for out in [&a, &b] {
            if out.status.code() == Some(2) {
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("another airlock process is using this mirror"), "{err}");
            }
        }
        assert!(codes.contains(&Some(0)), "{codes:?}");
        assert!(codes.iter().all(|c| *c == Some(0) || *c == Some(2)), "{codes:?}");
        assert_eq!(s.state(), f.new);
        assert_eq!(s.imports_of_next(), 1);
        s.assert_no_leftovers();
    }
}

/// While a large import is staging, a second import (of another bundle) is refused, and
/// the first completes undisturbed.
#[test]
fn second_import_during_staging_fails_clearly() {
    let f = fixture();
    let s = Scratch::new();
    let mut first = import_cmd(f.dir.path(), "next.airlock", &s.mirror())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staging = s.mirror().join(".airlock/staging");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs::read_dir(&staging).unwrap().count() == 0 {
        assert!(Instant::now() < deadline, "the first import never started staging");
        if first.try_wait().unwrap().is_some() {
            eprintln!("the first import finished before it was seen staging; nothing to race");
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let second = import(f.dir.path(), "base.airlock", &s.mirror(), &[]);
    let status = first.wait().unwrap();
    assert!(status.success());
    second.expect_code(2).expect_stderr("another airlock process is using this mirror");
    assert_eq!(s.state(), f.new);
    assert_eq!(s.imports_of_next(), 1);
}
