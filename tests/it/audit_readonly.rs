//! Auditing a mirror that cannot be written: `mirror verify` and `mirror log` on a
//! read-only bind mount (the kernel refuses every write, so any write attempt fails the
//! command), and `mirror verify --read-only` on a writable mirror, which must leave it
//! byte for byte as it was (no lock file, no stamps, no recovery). An interrupted import is
//! reported, never finished or discarded. The tests mount as root; a mount that fails
//! fails the test with the reason.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kit::*;

/// `ws/mirror` holding one import of a small tree.
fn mirror_with_one_import() -> Workspace {
    let ws = Workspace::new();
    write(&ws.path("src"), "a/one.txt", b"one\n", 0o644);
    write(&ws.path("src"), "two.bin", &big_content(70_000), 0o644);
    ws.pack(&ws.path("src"), "b1.airlock", &[]).expect_code(0);
    ws.import("b1.airlock", "k", "mirror", &[]).expect_code(0);
    ws
}

/// A read-only bind mount of a directory, unmounted on drop.
struct ReadOnlyMount {
    at: PathBuf,
}

impl ReadOnlyMount {
    fn of(dir: &Path, at: &Path) -> ReadOnlyMount {
        fs::create_dir_all(at).unwrap();
        mount(&["--bind", path_str(dir), path_str(at)]);
        let guard = ReadOnlyMount { at: at.to_owned() };
        mount(&["-o", "remount,ro,bind", path_str(at)]);
        let probe = fs::write(at.join(".airlock/probe"), b"x");
        assert!(probe.is_err(), "the bind mount at {} is still writable", at.display());
        guard
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        // Best effort: a failed unmount must not hide the test's own failure.
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn mount(args: &[&str]) {
    let out = Command::new("mount").args(args).output().expect("run mount(8)");
    assert!(
        out.status.success(),
        "mount {} failed (these tests need root and mount(8)): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mirror_cmd(sub: &str, dir: &Path, extra: &[&str]) -> Run {
    run(airlock().arg("mirror").arg(sub).arg(dir).args(extra))
}

#[test]
fn mirror_verify_log_and_show_work_on_a_read_only_bind_mount() {
    let ws = mirror_with_one_import();
    let before = snapshot(&ws.path("mirror"), false);
    let ro = ReadOnlyMount::of(&ws.path("mirror"), &ws.path("ro"));
    let verified = mirror_cmd("verify", &ro.at, &["--quiet"]);
    verified.expect_code(0);
    assert!(verified.stdout.contains("read-only check"), "{}", verified.stdout);
    assert!(verified.stdout.contains("a shared lock on .airlock/lock"), "{}", verified.stdout);
    assert!(verified.stdout.contains("OK: 2 files match"), "{}", verified.stdout);
    let log = mirror_cmd("log", &ro.at, &[]);
    log.expect_code(0);
    assert!(log.stdout.contains("imported"), "{}", log.stdout);
    let listed = mirror_cmd("show", &ro.at, &[]);
    listed.expect_code(0);
    assert!(listed.stdout.contains("show one: airlock mirror show"), "{}", listed.stdout);
    let kept = fs::read_dir(ws.path("mirror/.airlock/bundles")).unwrap().next().unwrap().unwrap().file_name();
    let shown = mirror_cmd("show", &ro.at, &[kept.to_str().unwrap()]);
    shown.expect_code(0);
    assert!(shown.stdout.contains("(manifest.cbor hashes to its name)"), "{}", shown.stdout);
    drop(ro);
    assert_eq!(snapshot(&ws.path("mirror"), false), before, "a read-only check changed the mirror");
}

#[test]
fn without_a_lock_file_a_read_only_mount_is_checked_without_a_lock_and_says_so() {
    let ws = mirror_with_one_import();
    fs::remove_file(ws.path("mirror/.airlock/lock")).unwrap();
    let ro = ReadOnlyMount::of(&ws.path("mirror"), &ws.path("ro"));
    let verified = mirror_cmd("verify", &ro.at, &["--quiet"]);
    verified.expect_code(0);
    assert!(
        verified.stdout.contains("no lock: the mirror has no .airlock/lock and its file system is read-only"),
        "{}",
        verified.stdout
    );
    mirror_cmd("log", &ro.at, &[]).expect_code(0);
    drop(ro);
    assert!(!ws.path("mirror/.airlock/lock").exists());
}

#[test]
fn an_import_interrupted_after_its_commit_point_is_reported_not_finished() {
    let ws = mirror_with_one_import();
    write(&ws.path("src"), "three.txt", b"three\n", 0o644);
    ws.pack(&ws.path("src"), "b2.airlock", &[]).expect_code(0);
    let mut crashed = airlock();
    crashed
        .arg("import")
        .arg(ws.path("b2.airlock"))
        .arg("--trust")
        .arg(ws.path("k.pub"))
        .arg("--mirror")
        .arg(ws.path("mirror"))
        .arg("--quiet")
        .env("AIRLOCK_TEST_CRASH_AT", "files-moved");
    let out = run(&mut crashed);
    assert_ne!(out.code, 0, "the import was to be stopped at files-moved");
    assert!(ws.path("mirror/.airlock/pending").exists());
    let before = snapshot(&ws.path("mirror"), false);
    let ro = ReadOnlyMount::of(&ws.path("mirror"), &ws.path("ro"));
    let verified = mirror_cmd("verify", &ro.at, &["--quiet"]);
    verified.expect_code(1);
    assert!(verified.stdout.contains("an import was interrupted after its commit point"), "{}", verified.stdout);
    assert!(verified.stdout.contains("unknown   three.txt"), "{}", verified.stdout);
    drop(ro);
    assert_eq!(snapshot(&ws.path("mirror"), false), before, "a read-only check finished the import");
    // A writable opening finishes it, as before.
    mirror_cmd("verify", &ws.path("mirror"), &["--quiet"]).expect_code(0);
    assert!(!ws.path("mirror/.airlock/pending").exists());
}

#[test]
fn read_only_flag_on_a_writable_mirror_writes_nothing() {
    let ws = mirror_with_one_import();
    fs::remove_file(ws.path("mirror/.airlock/lock")).unwrap();
    fs::remove_file(ws.path("mirror/.airlock/stamps")).unwrap();
    // Uncommitted staging of an interrupted import: reported, left alone.
    fs::create_dir(ws.path("mirror/.airlock/staging/leftover")).unwrap();
    let before = snapshot(&ws.path("mirror"), false);
    let verified = mirror_cmd("verify", &ws.path("mirror"), &["--quiet", "--read-only"]);
    verified.expect_code(0);
    assert!(verified.stdout.contains("no lock: the mirror has no .airlock/lock"), "{}", verified.stdout);
    assert!(verified.stdout.contains("uncommitted staging .airlock/staging/leftover"), "{}", verified.stdout);
    assert_eq!(snapshot(&ws.path("mirror"), false), before, "--read-only changed the mirror");
}
