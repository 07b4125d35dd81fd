//! Rejections required by the core issue: each checks the exit code, the message and that
//! the mirror is unchanged. (The full adversarial corpus is in tests/it/adversarial*.rs.)

use std::fs;

use crate::common::*;

/// A workspace with a mirror that already holds one import (sequence 1), and a tree.
fn setup() -> (Workspace, tempfile::TempDir) {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"alpha\n", 0o644);
    write(src.path(), "xx/cd.txt", b"charlie delta\n", 0o644);
    write(src.path(), "z.bin", &vec![0x5a; 70_000], 0o755);
    let ws = Workspace::new();
    ws.pack(src.path(), "base.airlock", &[]).expect_code(0);
    ws.import("base.airlock", "k", "mirror", &[]).expect_code(0);
    write(src.path(), "a.txt", b"alpha two\n", 0o644);
    ws.pack(src.path(), "next.airlock", &[]).expect_code(0);
    (ws, src)
}

fn bundle(ws: &Workspace, name: &str) -> Vec<u8> {
    fs::read(ws.path(name)).unwrap()
}

fn put(ws: &Workspace, name: &str, bytes: &[u8]) {
    fs::write(ws.path(name), bytes).unwrap();
}

#[test]
fn wrong_key() {
    let (ws, _src) = setup();
    ws.keygen("other");
    assert_rejected_unchanged(&ws, "next.airlock", "other", "mirror", "trusted key(s), found 0");
    ws.verify("next.airlock", "other").expect_code(1);
}

#[test]
fn flipped_byte_in_payload_member() {
    let (ws, _src) = setup();
    let parts = split(&bundle(&ws, "next.airlock"));
    let members = payload_members(&parts.payload);
    let (_, name, data, _) = members.iter().find(|m| m.1 == "data/xx/cd.txt").unwrap().clone();
    let mut payload = parts.payload.clone();
    payload[data + 3] ^= 0x01;
    put(&ws, "bad.airlock", &assemble(&parts.head, &payload));
    assert_rejected_unchanged(&ws, "bad.airlock", "k", "mirror", &format!("member {name}: SHA-256 is"));
}

#[test]
fn flipped_byte_in_manifest() {
    let (ws, _src) = setup();
    let mut parts = split(&bundle(&ws, "next.airlock"));
    let last = parts.head[0].1.len() - 1;
    parts.head[0].1[last] ^= 0x01;
    put(&ws, "bad.airlock", &assemble(&parts.head, &parts.payload));
    assert_rejected_unchanged(&ws, "bad.airlock", "k", "mirror", "on airlock/manifest.cbor does not verify");
}

#[test]
fn truncated_bundle() {
    let (ws, _src) = setup();
    let full = bundle(&ws, "next.airlock");
    for cut in [full.len() - 1, full.len() / 2, 40, 0] {
        put(&ws, "bad.airlock", &full[..cut]);
        let before = snapshot(&ws.path("mirror"), true);
        let run = ws.import("bad.airlock", "k", "mirror", &[]);
        run.expect_code(1);
        assert!(run.stderr.contains("bundle rejected"), "cut {cut}: {}", run.stderr);
        assert_eq!(snapshot(&ws.path("mirror"), true), before);
    }
}

#[test]
fn extra_member() {
    let (ws, _src) = setup();
    let parts = split(&bundle(&ws, "next.airlock"));
    let end = parts.payload.len() - 1024;
    let mut payload = parts.payload[..end].to_vec();
    let mut h = tar::Header::new_ustar();
    h.set_path("data/evil.sh").unwrap();
    h.set_size(4);
    h.set_mode(0o755);
    h.set_cksum();
    payload.extend_from_slice(h.as_bytes());
    payload.extend_from_slice(b"boom");
    payload.resize(payload.len() + 508 + 1024, 0);
    put(&ws, "bad.airlock", &assemble(&parts.head, &payload));
    assert_rejected_unchanged(&ws, "bad.airlock", "k", "mirror", "extra member \"data/evil.sh\"");
    assert!(!ws.path("mirror/evil.sh").exists());
}

#[test]
fn missing_member() {
    let (ws, _src) = setup();
    let parts = split(&bundle(&ws, "next.airlock"));
    let members = payload_members(&parts.payload);
    let (start, _, _, _) = members.iter().find(|m| m.1 == "data/xx/cd.txt").unwrap().clone();
    let (next_start, _, _, _) = members.iter().find(|m| m.1 == "data/z.bin").unwrap().clone();
    let mut payload = parts.payload[..start].to_vec();
    payload.extend_from_slice(&parts.payload[next_start..]);
    put(&ws, "bad.airlock", &assemble(&parts.head, &payload));
    assert_rejected_unchanged(
        &ws,
        "bad.airlock",
        "k",
        "mirror",
        "expected member \"data/xx/cd.txt\", found \"data/z.bin\"",
    );
}

#[test]
fn replayed_older_sequence() {
    let (ws, src) = setup();
    ws.import("next.airlock", "k", "mirror", &[]).expect_code(0); // sequence 2
                                                                  // Validly signed, never imported here, but older than the mirror's last import.
    ws.pack(src.path(), "older.airlock", &["--sequence", "1"]).expect_code(0);
    assert_rejected_unchanged(
        &ws,
        "older.airlock",
        "k",
        "mirror",
        "sequence 1 is not newer than the last imported sequence 2",
    );
}

#[test]
fn expired_bundle() {
    let (ws, src) = setup();
    let an_hour_ago =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 7200).to_string();
    let packed = run(airlock()
        .arg("pack")
        .arg(src.path())
        .arg("-o")
        .arg(ws.path("stale.airlock"))
        .arg("--key")
        .arg(ws.path("k.sec"))
        .args(["--expires", "1h", "--quiet"])
        .env("AIRLOCK_STATE_DIR", ws.path("state"))
        .env("AIRLOCK_NOW", an_hour_ago));
    packed.expect_code(0);
    assert_rejected_unchanged(&ws, "stale.airlock", "k", "mirror", "bundle expired at");
    ws.verify("stale.airlock", "k").expect_code(1).expect_stderr("expired");
}

#[test]
fn path_traversal_in_validly_signed_manifest() {
    let (ws, _src) = setup();
    let mut parts = split(&bundle(&ws, "next.airlock"));
    let manifest = &mut parts.head[0].1;
    let at = manifest.windows(9).position(|w| w == b"xx/cd.txt").unwrap();
    manifest[at..at + 9].copy_from_slice(b"../cd.txt");
    resign(&mut parts.head, &ws.path("k.sec"));
    put(&ws, "evil.airlock", &assemble(&parts.head, &parts.payload));
    assert_rejected_unchanged(
        &ws,
        "evil.airlock",
        "k",
        "mirror",
        "entry \"../cd.txt\": path has a `.` or `..` component",
    );
    assert!(!ws.path("cd.txt").exists());
}

#[test]
fn rejection_is_logged() {
    let (ws, _src) = setup();
    ws.keygen("other");
    ws.import("next.airlock", "other", "mirror", &[]).expect_code(1);
    let log = fs::read_to_string(ws.path("mirror/.airlock/log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "rejected");
    assert!(last["reason"].as_str().unwrap().contains("trusted key"));
}

#[test]
fn gap_is_named_and_overridable() {
    let (ws, src) = setup();
    ws.pack(src.path(), "third.airlock", &[]).expect_code(0); // sequence 3; 2 not imported
    assert_rejected_unchanged(&ws, "third.airlock", "k", "mirror", "missing sequence 2 (last imported 1");
    let ok = ws.import("third.airlock", "k", "mirror", &["--allow-gap"]);
    ok.expect_code(0);
    assert!(ok.stdout.contains("override logged"), "{}", ok.stdout);
    let log = fs::read_to_string(ws.path("mirror/.airlock/log")).unwrap();
    assert!(log.lines().last().unwrap().contains("allow-gap"));
}
