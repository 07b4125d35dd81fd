//! The outside half of the weekly cycle (issue 12): receipts checked with stock signify
//! both ways, `pack --since RECEIPT` building the delta the mirror needs, and `diff`.
//!
//! Receipts are made here with the library (`receipt::sign`), as `airlock mirror receipt`
//! makes them on the inside, so these tests do not depend on a mirror.

use std::fs;
use std::path::Path;
use std::process::Command;

use airlock::format::receipt::{self, MirrorId, Receipt, ReceiptChannel};
use airlock::io::digest::Digest;

use crate::kit::*;

fn signify() -> Command {
    assert!(
        Command::new("sh").arg("-c").arg("command -v signify-openbsd").output().unwrap().status.success(),
        "signify-openbsd is not installed: run scripts/test.sh, which installs the test dependencies"
    );
    Command::new("signify-openbsd")
}

fn sample_receipt() -> Receipt {
    Receipt {
        mirror: MirrorId([0x5a; 16]),
        created: 1_765_000_000,
        log_records: 3,
        log_head: Digest::of(b"log head"),
        channels: vec![ReceiptChannel {
            name: "weekly".into(),
            sequence: 2,
            manifest: Digest::of(b"manifest"),
            files: 4,
            bytes: 1234,
            root: Digest::of(b"root"),
            intact: true,
        }],
        files: 4,
        bytes: 1234,
        root: Digest::of(b"root"),
    }
}

/// Signs `r` with `<ws>/<key>.sec` into `<ws>/<name>`.
fn write_receipt(ws: &Workspace, r: &Receipt, key: &str, name: &str) {
    let secret = load_secret(&ws.path(&format!("{key}.sec")));
    fs::write(ws.path(name), receipt::sign(r, &secret).unwrap()).unwrap();
}

fn receipt_verify(ws: &Workspace, name: &str, key: &str, extra: &[&str]) -> Run {
    run(airlock()
        .arg("receipt")
        .arg("verify")
        .arg(ws.path(name))
        .arg("--trust")
        .arg(ws.path(&format!("{key}.pub")))
        .args(extra))
}

fn signify_checks(ws: &Workspace, name: &str, key: &str, out: &Path) -> Run {
    run(signify()
        .arg("-V")
        .arg("-e")
        .arg("-p")
        .arg(ws.path(&format!("{key}.pub")))
        .arg("-x")
        .arg(ws.path(name))
        .arg("-m")
        .arg(out))
}

#[test]
fn receipt_roundtrip_with_stock_signify() {
    let ws = Workspace::new();
    ws.keygen("inside");
    let r = sample_receipt();
    // airlock signs, signify checks and extracts exactly the receipt text.
    write_receipt(&ws, &r, "inside", "R");
    signify_checks(&ws, "R", "inside", &ws.path("R.txt")).expect_code(0);
    assert_eq!(fs::read(ws.path("R.txt")).unwrap(), receipt::encode(&r).unwrap());
    let shown = receipt_verify(&ws, "R", "inside", &[]);
    shown.expect_code(0);
    for line in [
        format!("mirror {}", "5a".repeat(16)),
        "log 3 records".to_owned(),
        format!("channel weekly sequence 2, manifest {}: 4 files, 1234 bytes", Digest::of(b"manifest")),
        "intact".to_owned(),
        "state 4 files, 1234 bytes".to_owned(),
    ] {
        assert!(shown.stdout.contains(&line), "{line:?} not in:\n{}", shown.stdout);
    }
    let json: serde_json::Value =
        serde_json::from_str(receipt_verify(&ws, "R", "inside", &["--json"]).stdout.trim()).unwrap();
    assert_eq!(json["mirror"], "5a".repeat(16));
    assert_eq!(json["created"], 1_765_000_000);
    assert_eq!(json["log"]["records"], 3);
    assert_eq!(json["channels"][0]["name"], "weekly");
    assert_eq!(json["channels"][0]["sequence"], 2);
    assert_eq!(json["channels"][0]["intact"], true);
    assert_eq!(json["state"]["bytes"], 1234);
    // signify signs the same text embedded, and airlock accepts it.
    run(signify()
        .arg("-S")
        .arg("-e")
        .arg("-s")
        .arg(ws.path("inside.sec"))
        .arg("-m")
        .arg(ws.path("R.txt"))
        .arg("-x")
        .arg(ws.path("R2")))
    .expect_code(0);
    let again = receipt_verify(&ws, "R2", "inside", &[]);
    again.expect_code(0);
    assert_eq!(again.stdout.lines().skip(1).collect::<Vec<_>>(), shown.stdout.lines().skip(1).collect::<Vec<_>>());
}

#[test]
fn receipt_tampered_line_is_rejected() {
    let ws = Workspace::new();
    ws.keygen("inside");
    write_receipt(&ws, &sample_receipt(), "inside", "R");
    let signed = fs::read_to_string(ws.path("R")).unwrap();
    // One changed digit in the channel's sequence: the signature no longer matches.
    let tampered = signed.replace("channel weekly 2 ", "channel weekly 3 ");
    assert_ne!(tampered, signed);
    fs::write(ws.path("T"), &tampered).unwrap();
    receipt_verify(&ws, "T", "inside", &[]).expect_code(1).expect_stderr("does not verify");
    assert_ne!(signify_checks(&ws, "T", "inside", &ws.path("T.txt")).code, 0, "signify agrees");
    // A validly signed text that is not canonical (a leading zero) is refused by line.
    let text = receipt::encode(&sample_receipt()).unwrap();
    let odd = String::from_utf8(text).unwrap().replace("log 3 ", "log 03 ");
    fs::write(ws.path("odd.txt"), odd).unwrap();
    run(signify()
        .arg("-S")
        .arg("-e")
        .arg("-s")
        .arg(ws.path("inside.sec"))
        .arg("-m")
        .arg(ws.path("odd.txt"))
        .arg("-x")
        .arg(ws.path("odd")))
    .expect_code(0);
    receipt_verify(&ws, "odd", "inside", &[]).expect_code(1).expect_stderr("line 4: is not in canonical form");
    // Not a receipt at all.
    fs::write(ws.path("junk"), "hello\n").unwrap();
    receipt_verify(&ws, "junk", "inside", &[]).expect_code(1).expect_stderr("not a signify embedded signature");
}

#[test]
fn receipt_signed_by_other_key_is_rejected() {
    let ws = Workspace::new();
    ws.keygen("inside");
    ws.keygen("other");
    write_receipt(&ws, &sample_receipt(), "other", "R");
    let other_id = load_secret(&ws.path("other.sec")).key_id().to_string();
    let r = receipt_verify(&ws, "R", "inside", &[]);
    r.expect_code(1).expect_stderr(&format!("is signed by key {other_id}, which is not among the trusted keys"));
    assert!(r.stdout.is_empty(), "nothing shown from an untrusted receipt: {}", r.stdout);
    receipt_verify(&ws, "R", "other", &[]).expect_code(0);
}
