//! End-to-end: keygen → pack → inspect → verify → import gives a byte-identical mirror.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::kit::*;

fn roundtrip(src: &Path) -> Workspace {
    let ws = Workspace::new();
    ws.pack(src, "b.airlock", &[]).expect_code(0);
    ws.verify("b.airlock", "k").expect_code(0);
    ws.import("b.airlock", "k", "mirror", &[]).expect_code(0);
    assert_eq!(snapshot(&ws.path("mirror"), true), snapshot(src, false));
    ws
}

fn remove_dirs(snap: &mut std::collections::BTreeMap<String, String>) {
    snap.retain(|_, v| v != "dir");
}

#[test]
fn sample_round_trips_byte_identical() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample");
    // Directories are implied by paths; compare files (the sample has no empty dirs).
    let ws = Workspace::new();
    ws.pack(&src, "b.airlock", &[]).expect_code(0);
    ws.verify("b.airlock", "k").expect_code(0);
    ws.import("b.airlock", "k", "mirror", &[]).expect_code(0);
    let mut got = snapshot(&ws.path("mirror"), true);
    let mut want = snapshot(&src, false);
    remove_dirs(&mut got);
    remove_dirs(&mut want);
    // Git may not keep the sample's exec bit on every checkout: compare content, then modes
    // from the manifest.
    assert_eq!(got.len(), want.len());
    for (k, v) in &want {
        assert_eq!(got[k].rsplit(' ').next(), v.rsplit(' ').next(), "{k}");
    }
}

#[test]
fn generated_tree_round_trips() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    write(root, "empty", b"", 0o644);
    write(root, "exec.sh", b"#!/bin/sh\ntrue\n", 0o755);
    write(root, &format!("{}/leaf", vec!["d"; 40].join("/")), b"deep", 0o644);
    write(root, &format!("long/{}", "n".repeat(200)), b"long name needs PAX", 0o644);
    write(root, "ünï/名前/файл.txt", b"non-ascii", 0o644);
    write(root, "big.bin", &(0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(), 0o644);
    write(root, "block", &[1u8; 512], 0o644);
    roundtrip(root);
}

#[test]
fn reimport_is_a_noop_and_next_sequence_follows() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"one", 0o644);
    let ws = roundtrip(src.path());
    let again = ws.import("b.airlock", "k", "mirror", &[]);
    again.expect_code(0);
    assert!(again.stdout.contains("already imported"), "{}", again.stdout);

    write(src.path(), "a.txt", b"two", 0o644);
    write(src.path(), "b.txt", b"new", 0o644);
    ws.pack(src.path(), "b2.airlock", &[]).expect_code(0);
    let inspect = run(airlock().arg("inspect").arg(ws.path("b2.airlock")));
    inspect.expect_code(0);
    assert!(inspect.stdout.contains("sequence     2"), "{}", inspect.stdout);
    assert!(inspect.stdout.contains("not verified"), "{}", inspect.stdout);
    ws.import("b2.airlock", "k", "mirror", &[]).expect_code(0);
    assert_eq!(fs::read(ws.path("mirror/a.txt")).unwrap(), b"two");
    run(airlock().args(["mirror", "verify"]).arg(ws.path("mirror"))).expect_code(0);
    let log = run(airlock().args(["mirror", "log"]).arg(ws.path("mirror")));
    log.expect_code(0);
    assert_eq!(log.stdout.matches("imported").count(), 2, "{}", log.stdout);
    assert!(log.stdout.contains("hash chain intact"));
}

#[test]
fn inspect_json_and_trust_status() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "pkg.tar.gz", b"artifact", 0o644);
    write(src.path(), "pkg.tar.gz.sig", b"untrusted comment: x\n", 0o644);
    let ws = Workspace::new();
    ws.pack(src.path(), "b.airlock", &["--label", "nightly", "--meta", "ticket=42", "--expires", "7d"]).expect_code(0);
    let out =
        run(airlock().arg("inspect").arg(ws.path("b.airlock")).arg("--json").arg("--trust").arg(ws.path("k.pub")));
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["label"], "nightly");
    assert_eq!(v["meta"]["ticket"], "42");
    assert_eq!(v["entry_count"], 2);
    assert_eq!(v["entries"][0]["signatures"][0], "pkg.tar.gz.sig");
    assert!(v["expires"].is_string());
}

#[test]
fn mirror_verify_reports_missing_modified_unknown() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a", b"a", 0o644);
    write(src.path(), "b", b"b", 0o644);
    let ws = roundtrip(src.path());
    fs::write(ws.path("mirror/a"), b"changed").unwrap();
    fs::remove_file(ws.path("mirror/b")).unwrap();
    fs::write(ws.path("mirror/stray"), b"?").unwrap();
    let out = run(airlock().args(["mirror", "verify"]).arg(ws.path("mirror")));
    out.expect_code(1);
    assert!(out.stdout.contains("modified  a"), "{}", out.stdout);
    assert!(out.stdout.contains("missing   b"), "{}", out.stdout);
    assert!(out.stdout.contains("unknown   stray"), "{}", out.stdout);
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(airlock().arg("demo").arg(dir.path().join("demo")));
    out.expect_code(0);
    for step in ["keygen", "pack", "inspect", "verify", "import", "mirror verify", "OK: 5 files"] {
        assert!(out.stdout.contains(step), "demo output lacks {step:?}:\n{}", out.stdout);
    }
    assert!(dir.path().join("demo/mirror/ünïcödé/名前.txt").is_file());
}

#[test]
fn pack_refuses_symlinks_and_overwrite() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a", b"a", 0o644);
    std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
    let ws = Workspace::new();
    ws.pack(src.path(), "b.airlock", &[]).expect_code(1).expect_stderr("symbolic link");
    fs::remove_file(src.path().join("link")).unwrap();
    ws.pack(src.path(), "b.airlock", &[]).expect_code(0);
    ws.pack(src.path(), "b.airlock", &[]).expect_code(2).expect_stderr("--force");
}

#[test]
fn keygen_refuses_overwrite_and_sets_modes() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    let m = fs::metadata(ws.path("k.sec")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    let again = run(airlock()
        .arg("keygen")
        .arg("--public")
        .arg(ws.path("k.pub"))
        .arg("--secret")
        .arg(ws.path("k.sec"))
        .arg("--no-passphrase"));
    assert_eq!(again.code, 2, "{}", again.stderr);
}

#[test]
fn second_import_merges_into_existing_directories() {
    // The importer moves whole new subtrees with one rename and descends into directories
    // the mirror already has: both paths, and a replaced file, must give the signed tree.
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "pkg/a", b"one", 0o644);
    write(src.path(), "pkg/keep", b"kept", 0o644);
    let ws = roundtrip(src.path());
    let src2 = tempfile::tempdir().unwrap();
    write(src2.path(), "pkg/a", b"two", 0o755);
    write(src2.path(), "pkg/new/deep/x", b"x", 0o644);
    write(src2.path(), "other/y", b"y", 0o644);
    ws.pack(src2.path(), "b2.airlock", &[]).expect_code(0);
    ws.import("b2.airlock", "k", "mirror", &[]).expect_code(0);
    // The second bundle's manifest is the channel's complete state: `pkg/keep`, which it
    // no longer lists, is retired.
    assert_eq!(snapshot(&ws.path("mirror"), true), snapshot(src2.path(), false));
    run(airlock().args(["mirror", "verify"]).arg(ws.path("mirror"))).expect_code(0);
    let staging = ws.path("mirror/.airlock/staging");
    assert_eq!(fs::read_dir(staging).unwrap().count(), 0);
}

/// Staged files are created with their signed mode, and chmod is skipped when the umask
/// leaves that mode alone: under any umask the mirror must still hold exactly the signed
/// modes (the umask must neither remove bits nor, with 000, be trusted to add none).
#[test]
fn imported_modes_are_the_signed_ones_whatever_the_umask() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "run.sh", b"#!/bin/sh\ntrue\n", 0o755);
    write(src.path(), "dir/data.txt", b"data", 0o644);
    let ws = Workspace::new();
    ws.pack(src.path(), "b.airlock", &[]).expect_code(0);
    for umask in ["077", "027", "022", "000"] {
        let mirror = format!("mirror-{umask}");
        run(Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$@\""))
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_airlock"))
            .arg("import")
            .arg(ws.path("b.airlock"))
            .arg("--trust")
            .arg(ws.path("k.pub"))
            .arg("--mirror")
            .arg(ws.path(&mirror))
            .arg("--quiet")
            .arg("--init"))
        .expect_code(0);
        let got = snapshot(&ws.path(&mirror), true);
        assert_eq!(got["run.sh"].split(' ').nth(1), Some("755"), "umask {umask}: {got:?}");
        assert_eq!(got["dir/data.txt"].split(' ').nth(1), Some("644"), "umask {umask}: {got:?}");
    }
}
