//! `pack` fails closed and keeps its channel state: a panicking worker makes it fail with
//! exit 2 and no bundle, and a pack killed right after it reported success is continued by
//! the next one. Uses the `fault-injection` test hooks of the binary.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use crate::common::{airlock, run, Workspace};

/// `airlock pack src -o OUT --key k.sec` in `ws`, with its state under `ws/state` (no
/// `--quiet`: the tests read pack's whole report).
fn pack(ws: &Workspace, out: &str) -> Command {
    let mut cmd = airlock();
    cmd.arg("pack")
        .arg(ws.path("src"))
        .arg("-o")
        .arg(ws.path(out))
        .arg("--key")
        .arg(ws.path("k.sec"))
        .env("AIRLOCK_STATE_DIR", ws.path("state"))
        .env_remove("AIRLOCK_TEST_FAULT")
        .env_remove("AIRLOCK_TEST_CRASH_AT");
    cmd
}

fn sources(ws: &Workspace) {
    for i in 0..50 {
        crate::common::write(
            &ws.path("src"),
            &format!("dir{}/file{i}", i % 5),
            format!("content {i}").as_bytes(),
            0o644,
        );
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn inspect_json(ws: &Workspace, bundle: &str) -> serde_json::Value {
    let r = run(airlock().arg("inspect").arg("--json").arg(ws.path(bundle)));
    r.expect_code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn a_panicking_hashing_worker_fails_the_pack_with_no_bundle() {
    let ws = Workspace::new();
    sources(&ws);
    fs::create_dir(ws.path("out")).unwrap();
    let r = run(pack(&ws, "out/b.airlock").env("AIRLOCK_TEST_FAULT", "hash-worker-panic"));
    r.expect_code(2).expect_stderr("internal error");
    assert!(r.stdout.is_empty(), "no success report: {}", r.stdout);
    assert_eq!(names_in(&ws.path("out")), Vec::<String>::new(), "neither the bundle nor a temporary file");
    assert!(!ws.path("state/channels/default").exists(), "a failed pack numbered the channel");
    // The same pack without the fault succeeds and packs every file.
    run(&mut pack(&ws, "out/b.airlock")).expect_code(0);
    assert_eq!(inspect_json(&ws, "out/b.airlock")["entry_count"], 50);
}

#[test]
fn a_pack_killed_after_reporting_success_is_continued_by_the_next() {
    let ws = Workspace::new();
    sources(&ws);
    let out = pack(&ws, "one.airlock").env("AIRLOCK_TEST_CRASH_AT", "after-report").output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "the crash point was not reached: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("channel default sequence 1"), "no success report before the crash: {stdout}");
    let first = inspect_json(&ws, "one.airlock");
    assert_eq!(first["sequence"], 1);

    run(&mut pack(&ws, "two.airlock")).expect_code(0);
    let second = inspect_json(&ws, "two.airlock");
    assert_eq!(second["sequence"], 2);
    assert_eq!(second["previous"], first["manifest_sha256"]);
}
