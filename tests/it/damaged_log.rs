//! A damaged log is evidence, not a lock-out: `mirror log` shows every record that reads
//! and where (and how) the chain breaks, with exit 1; imports are refused, naming
//! `mirror recover-log`; the recovery seals the damaged log aside (kept byte for byte) and
//! starts a new chain anchored to it; imports then work, the mirror's history carries on,
//! and `mirror verify` reports the sealed log.

use std::fs;
use std::path::Path;

use crate::kit::*;

fn mirror_cmd(sub: &str, dir: &Path, extra: &[&str]) -> Run {
    run(airlock().arg("mirror").arg(sub).arg(dir).args(extra))
}

/// A mirror whose log has three records: imported b1, rejected (a bundle signed by an
/// untrusted key), imported b2. `b3.airlock` is packed, not yet imported.
fn mirror_with_three_records() -> Workspace {
    let ws = Workspace::new();
    ws.keygen("stranger");
    write(&ws.path("src"), "one.txt", b"one\n", 0o644);
    ws.pack(&ws.path("src"), "b1.airlock", &[]).expect_code(0);
    ws.import("b1.airlock", "k", "mirror", &[]).expect_code(0);
    ws.import("b1.airlock", "stranger", "mirror", &[]).expect_code(1);
    write(&ws.path("src"), "two.txt", b"two\n", 0o644);
    ws.pack(&ws.path("src"), "b2.airlock", &[]).expect_code(0);
    ws.import("b2.airlock", "k", "mirror", &[]).expect_code(0);
    write(&ws.path("src"), "three.txt", b"three\n", 0o644);
    ws.pack(&ws.path("src"), "b3.airlock", &[]).expect_code(0);
    let log = fs::read_to_string(ws.path("mirror/.airlock/log")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    ws
}

/// Changes one byte of line `line` (1-based) of the log: the first digit of its `time`
/// (still valid JSON), or, with `break_json`, its opening brace.
fn edit_one_byte(ws: &Workspace, line: usize, break_json: bool) -> Vec<u8> {
    let path = ws.path("mirror/.airlock/log");
    let mut bytes = fs::read(&path).unwrap();
    let start: usize = bytes.split(|b| *b == b'\n').take(line - 1).map(|l| l.len() + 1).sum();
    let at = if break_json {
        start
    } else {
        let key = b"\"time\":";
        start + bytes[start..].windows(key.len()).position(|w| w == key).unwrap() + key.len()
    };
    bytes[at] = if break_json {
        b'['
    } else if bytes[at] == b'9' {
        b'8'
    } else {
        bytes[at] + 1
    };
    fs::write(&path, &bytes).unwrap();
    bytes
}

#[test]
fn one_edited_byte_is_shown_refused_recovered_and_imports_go_on() {
    let ws = mirror_with_three_records();
    let damaged = edit_one_byte(&ws, 2, false);
    let mirror = ws.path("mirror");

    // The evidence: every record, and the break, named.
    let log = mirror_cmd("log", &mirror, &[]);
    log.expect_code(1);
    assert_eq!(log.stdout.lines().filter(|l| l.contains(" imported ")).count(), 2, "{}", log.stdout);
    assert_eq!(log.stdout.lines().filter(|l| l.contains(" rejected ")).count(), 1, "{}", log.stdout);
    assert!(log.stdout.contains("BROKEN  line 3: does not chain to the line before it"), "{}", log.stdout);
    assert!(log.stdout.contains("log: 3 lines, 3 records readable; the hash chain is broken"), "{}", log.stdout);
    assert!(log.stdout.contains("airlock mirror recover-log"), "{}", log.stdout);

    // Imports are refused, naming the recovery.
    let refused = ws.import("b3.airlock", "k", "mirror", &[]);
    refused.expect_code(2).expect_stderr("import log line 3: does not chain").expect_stderr("mirror recover-log");
    assert!(!mirror.join("three.txt").exists());

    // The recovery needs a reason, and then seals the log aside, byte for byte.
    run(airlock().args(["mirror", "recover-log"]).arg(&mirror)).expect_code(2);
    let recovered = mirror_cmd("recover-log", &mirror, &["--reason", "auditor found line 2 edited (ticket 7)"]);
    recovered.expect_code(0);
    assert!(recovered.stdout.contains("restates 2 imports"), "{}", recovered.stdout);
    let digest = hex(&sha256(&damaged));
    assert_eq!(fs::read(mirror.join(format!(".airlock/sealed/{digest}/log"))).unwrap(), damaged);
    assert!(mirror.join(format!(".airlock/sealed/{digest}/log-head")).exists());

    // Imports work again; the chain verifies; history carries on (b2 is still imported).
    ws.import("b3.airlock", "k", "mirror", &[]).expect_code(0);
    assert!(mirror.join("three.txt").exists());
    let again = ws.import("b2.airlock", "k", "mirror", &[]);
    again.expect_code(0);
    assert!(again.stdout.contains("already imported"), "{}", again.stdout);
    let log = mirror_cmd("log", &mirror, &[]);
    log.expect_code(0);
    assert!(log.stdout.contains("  recovered"), "{}", log.stdout);
    assert!(log.stdout.contains(&format!("sealed .airlock/sealed/{digest}/log (3 lines)")), "{}", log.stdout);
    assert!(log.stdout.contains("hash chain intact"), "{}", log.stdout);
    let first: serde_json::Value =
        serde_json::from_str(fs::read_to_string(mirror.join(".airlock/log")).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "recovered");
    assert_eq!(first["prev"], digest.as_str());
    assert_eq!(first["reason"], "auditor found line 2 edited (ticket 7)");
    let verified = mirror_cmd("verify", &mirror, &["--quiet"]);
    verified.expect_code(0);
    assert!(
        verified.stdout.contains(&format!("sealed    .airlock/sealed/{digest}/log (3 lines) sealed at")),
        "{}",
        verified.stdout
    );
    assert!(verified.stdout.contains("OK: 3 files match"), "{}", verified.stdout);

    // A recovery of an intact log is refused.
    mirror_cmd("recover-log", &mirror, &["--reason", "again"]).expect_code(2).expect_stderr("intact");
}

#[test]
fn a_byte_that_breaks_the_json_is_named_and_the_records_around_it_shown() {
    let ws = mirror_with_three_records();
    edit_one_byte(&ws, 2, true);
    let log = mirror_cmd("log", &ws.path("mirror"), &[]);
    log.expect_code(1);
    assert_eq!(log.stdout.lines().filter(|l| l.contains(" imported ")).count(), 2, "{}", log.stdout);
    assert!(log.stdout.contains("BROKEN  line 2: unreadable"), "{}", log.stdout);
    assert!(log.stdout.contains("BROKEN  line 3: does not chain"), "{}", log.stdout);
}

#[test]
fn an_edited_sealed_log_is_found() {
    let ws = mirror_with_three_records();
    let damaged = edit_one_byte(&ws, 3, false);
    let mirror = ws.path("mirror");
    // The last line: only the anchor can tell.
    mirror_cmd("log", &mirror, &[]).expect_code(1);
    mirror_cmd("recover-log", &mirror, &["--reason", "last record edited"]).expect_code(0);
    let sealed = mirror.join(format!(".airlock/sealed/{}/log", hex(&sha256(&damaged))));
    let mut perms = fs::metadata(&sealed).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    fs::set_permissions(&sealed, perms).unwrap();
    fs::write(&sealed, b"rewritten history\n").unwrap();
    let verified = mirror_cmd("verify", &mirror, &["--quiet"]);
    verified.expect_code(2).expect_stderr("was changed after it was sealed");
    ws.import("b3.airlock", "k", "mirror", &[]).expect_code(2).expect_stderr("was changed after it was sealed");
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}
