//! The outside half of the weekly cycle (issue 12): receipts checked with stock signify
//! both ways, `pack --since RECEIPT` building the delta the mirror needs, and `diff`.
//!
//! Receipts are made here with the library (`receipt::sign`), as `airlock mirror receipt`
//! makes them on the inside, so these tests do not depend on a mirror.

use std::fs;
use std::path::Path;
use std::process::Command;

use airlock::format::manifest::{Base, Manifest};
use airlock::format::receipt::{self, MirrorId, Receipt, ReceiptChannel};
use airlock::io::digest::Digest;
use airlock::verify::Bundle;

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
    assert_eq!(json["created"], "2025-12-06T05:46:40Z");
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
    // A trusted key that claims the signer's key id but is another key: the full public key
    // decides, not the 8-byte id.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let inside = fs::read_to_string(ws.path("inside.pub")).unwrap();
    let (comment, line) = inside.split_once('\n').unwrap();
    let mut raw = b64.decode(line.trim_end()).unwrap();
    raw[2..10].copy_from_slice(&load_secret(&ws.path("other.sec")).key_id().0);
    fs::write(ws.path("impostor.pub"), format!("{comment}\n{}\n", b64.encode(&raw))).unwrap();
    receipt_verify(&ws, "R", "impostor", &[])
        .expect_code(1)
        .expect_stderr(&format!("signature by key {other_id} does not verify"));
}

// ---------------------------------------------------------------------------------------
// pack --since RECEIPT

/// The mirror id the test receipts name.
const MIRROR_ID: MirrorId = MirrorId([0x42; 16]);

/// The head of a bundle: its manifest and the manifest's digest.
fn head_of(path: &Path) -> (Manifest, Digest) {
    let bundle = Bundle::open(path).unwrap();
    (bundle.unverified_manifest().unwrap(), bundle.head().manifest_digest)
}

/// A receipt from a mirror that holds exactly `bundle` (its channel, sequence, manifest and
/// files) and nothing else.
fn receipt_holding(bundle: &Path, intact: bool) -> Receipt {
    let (m, digest) = head_of(bundle);
    let root = receipt::state_root(&m.entries);
    Receipt {
        mirror: MIRROR_ID,
        created: 1_765_000_000,
        log_records: 1,
        log_head: Digest::of(b"log"),
        channels: vec![ReceiptChannel {
            name: m.channel.clone(),
            sequence: m.sequence,
            manifest: digest,
            files: m.entries.len() as u64,
            bytes: m.total_size(),
            root,
            intact,
        }],
        files: m.entries.len() as u64,
        bytes: m.total_size(),
        root,
    }
}

/// A workspace with keys `k` (bundles) and `inside` (receipts), and a source tree `src`
/// packed as bundle 1 of channel `weekly` into `w1.airlock`.
fn week_one() -> Workspace {
    let ws = Workspace::new();
    ws.keygen("inside");
    let src = ws.path("src");
    write(&src, "a.txt", b"alpha\n", 0o644);
    write(&src, "b.txt", b"bravo\n", 0o644);
    write(&src, "big/d.bin", &big_content(200_000), 0o755);
    write(&src, "e.txt", b"echo\n", 0o644);
    ws.pack(&src, "w1.airlock", &["--channel", "weekly"]).expect_code(0);
    ws
}

/// Week two's changes: `a.txt` changed, `e.txt` removed, `f.txt` added.
fn change_for_week_two(ws: &Workspace) {
    let src = ws.path("src");
    write(&src, "a.txt", b"alpha, revised\n", 0o644);
    fs::remove_file(src.join("e.txt")).unwrap();
    write(&src, "f.txt", b"foxtrot\n", 0o644);
}

fn pack_since(ws: &Workspace, out: &str, receipt: &str, extra: &[&str]) -> Run {
    let mut args = vec!["--channel", "weekly", "--since"];
    let receipt = ws.path(receipt);
    let trust = ws.path("inside.pub");
    args.push(receipt.to_str().unwrap());
    args.push("--trust");
    args.push(trust.to_str().unwrap());
    args.extend_from_slice(extra);
    ws.pack(&ws.path("src"), out, &args)
}

/// The carried paths of a manifest.
fn carried(m: &Manifest) -> Vec<&str> {
    m.entries.iter().filter(|e| e.carried).map(|e| e.path.as_str()).collect()
}

#[test]
fn pack_since_receipt_carries_only_changes() {
    let ws = week_one();
    write_receipt(&ws, &receipt_holding(&ws.path("w1.airlock"), true), "inside", "R1");
    change_for_week_two(&ws);
    let out = pack_since(&ws, "w2.airlock", "R1", &[]);
    out.expect_code(0);
    assert!(out.stdout.contains("carrying 2 of 4 entries, 23 of 200029 bytes; retiring 1"), "{}", out.stdout);
    let (w1, d1) = head_of(&ws.path("w1.airlock"));
    let (w2, _) = head_of(&ws.path("w2.airlock"));
    assert_eq!((w2.version, w2.sequence, w2.previous), (3, 2, Some(d1)));
    assert_eq!(w2.base, Some(Base { mirror: MIRROR_ID, manifest: d1 }));
    assert_eq!(carried(&w2), ["a.txt", "f.txt"]);
    let paths: Vec<&str> = w2.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["a.txt", "b.txt", "big/d.bin", "f.txt"], "the manifest is the complete state");
    assert!(carried(&w1).len() == 4, "week one was a full bundle");
    let (size1, size2) =
        (fs::metadata(ws.path("w1.airlock")).unwrap().len(), fs::metadata(ws.path("w2.airlock")).unwrap().len());
    assert!(size2 < 10_000 && size1 > 200_000, "the delta leaves the big file out: {size2} vs {size1}");
    ws.verify("w2.airlock", "k").expect_code(0);
    // The pack state kept both manifests, so the next receipt needs no --base.
    let kept: Vec<String> = fs::read_dir(ws.path("state/manifests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&format!("{d1}.cbor")));
}

#[test]
fn pack_since_a_real_mirror_receipt_imports_to_the_signed_state() {
    let ws = week_one();
    ws.import("w1.airlock", "k", "mirror", &[]).expect_code(0);
    // The receipt the mirror itself states, signed by the inside's key.
    let made = airlock::mirror::Mirror::open(&ws.path("mirror")).unwrap().receipt(1_765_000_000).unwrap();
    let (_, d1) = head_of(&ws.path("w1.airlock"));
    assert_eq!((made.channels.len(), made.channels[0].manifest, made.channels[0].intact), (1, d1, true));
    write_receipt(&ws, &made, "inside", "R1");
    change_for_week_two(&ws);
    let out = pack_since(&ws, "w2.airlock", "R1", &[]);
    out.expect_code(0);
    assert!(out.stdout.contains("carrying 2 of 4 entries"), "{}", out.stdout);
    ws.import("w2.airlock", "k", "mirror", &[]).expect_code(0);
    assert_eq!(snapshot(&ws.path("mirror"), true), snapshot(&ws.path("src"), false), "the mirror is the signed state");
}

#[test]
fn pack_since_receipt_after_lost_bundle_links_previous_to_receipt() {
    let ws = week_one();
    write_receipt(&ws, &receipt_holding(&ws.path("w1.airlock"), true), "inside", "R1");
    change_for_week_two(&ws);
    // Bundle 2 is packed, then lost on the way: the mirror still holds bundle 1.
    ws.pack(&ws.path("src"), "w2-lost.airlock", &["--channel", "weekly"]).expect_code(0);
    write(&ws.path("src"), "g.txt", b"golf\n", 0o644);
    let out = pack_since(&ws, "w3.airlock", "R1", &[]);
    out.expect_code(0);
    let (_, d1) = head_of(&ws.path("w1.airlock"));
    let (w3, _) = head_of(&ws.path("w3.airlock"));
    // Numbered after everything packed here, linked to what the mirror really holds, so
    // the mirror takes it as the next state without --allow-gap.
    assert_eq!((w3.sequence, w3.previous), (3, Some(d1)));
    assert!(out.stdout.contains(&format!("follows manifest {d1}")), "{}", out.stdout);
    assert_eq!(carried(&w3), ["a.txt", "f.txt", "g.txt"], "carried against bundle 1, not the lost bundle 2");
    assert!(out.stdout.contains("carrying 3 of 5 entries"), "{}", out.stdout);
    // A mirror holding bundle 1 takes a bundle linked this way without --allow-gap (shown
    // with a full one, which any importer can take: the receipt says the mirror is damaged).
    ws.import("w1.airlock", "k", "mirror", &[]).expect_code(0);
    write_receipt(&ws, &receipt_holding(&ws.path("w1.airlock"), false), "inside", "R1-damaged");
    pack_since(&ws, "w4.airlock", "R1-damaged", &[]).expect_code(0);
    let (w4, _) = head_of(&ws.path("w4.airlock"));
    assert_eq!((w4.sequence, w4.previous, carried(&w4).len()), (4, Some(d1), 5));
    ws.import("w4.airlock", "k", "mirror", &[]).expect_code(0);
    for path in ["a.txt", "f.txt", "g.txt"] {
        assert_eq!(fs::read(ws.path("mirror").join(path)).unwrap(), fs::read(ws.path("src").join(path)).unwrap());
    }
}

#[test]
fn pack_since_damaged_receipt_carries_everything() {
    let ws = week_one();
    let (_, d1) = head_of(&ws.path("w1.airlock"));
    change_for_week_two(&ws);
    // The inside says its files of the channel are damaged.
    write_receipt(&ws, &receipt_holding(&ws.path("w1.airlock"), false), "inside", "damaged");
    let out = pack_since(&ws, "w2.airlock", "damaged", &[]);
    out.expect_code(0);
    assert!(out.stdout.contains("carrying everything: the receipt says the mirror's files of the channel are damaged"));
    assert!(out.stdout.contains("carrying 4 of 4 entries, 200029 of 200029 bytes; retiring 1"), "{}", out.stdout);
    let (w2, _) = head_of(&ws.path("w2.airlock"));
    assert_eq!((w2.sequence, w2.previous, w2.base), (2, Some(d1), None));
    assert_eq!(carried(&w2).len(), 4);
    // Intact, but the root it states is not the root of the manifest it names.
    let mut odd = receipt_holding(&ws.path("w1.airlock"), true);
    odd.channels[0].root = Digest::of(b"something else");
    write_receipt(&ws, &odd, "inside", "odd");
    let out = pack_since(&ws, "w3.airlock", "odd", &[]);
    out.expect_code(0);
    assert!(out.stdout.contains("carrying everything: the mirror's files of the channel differ"), "{}", out.stdout);
    assert_eq!(carried(&head_of(&ws.path("w3.airlock")).0).len(), 4);
    // A receipt that does not list the channel: the mirror never imported it.
    let none = Receipt { channels: vec![], ..receipt_holding(&ws.path("w1.airlock"), true) };
    write_receipt(&ws, &none, "inside", "none");
    let out = pack_since(&ws, "w4.airlock", "none", &[]);
    out.expect_code(0);
    assert!(out.stdout.contains("carrying everything: the receipt does not list the channel"), "{}", out.stdout);
    let (w4, _) = head_of(&ws.path("w4.airlock"));
    assert_eq!((w4.sequence, w4.base, carried(&w4).len()), (4, None, 4));
    // A receipt not signed by the trusted key builds nothing.
    write_receipt(&ws, &receipt_holding(&ws.path("w1.airlock"), true), "k", "forged");
    pack_since(&ws, "w5.airlock", "forged", &[]).expect_code(1).expect_stderr("not among the trusted keys");
    assert!(!ws.path("w5.airlock").exists());
}

#[test]
fn lost_exporter_state_recovered_from_receipt() {
    let ws = week_one();
    write_receipt(&ws, &receipt_holding(&ws.path("w1.airlock"), true), "inside", "R1");
    let (_, d1) = head_of(&ws.path("w1.airlock"));
    change_for_week_two(&ws);
    fs::remove_dir_all(ws.path("state")).unwrap();
    // Without the state, the manifest the receipt names must be given.
    let out = pack_since(&ws, "w2.airlock", "R1", &[]);
    out.expect_code(2).expect_stderr(&format!("manifest {d1} of channel \"weekly\", which is not kept in"));
    out.expect_stderr("--base");
    assert!(!ws.path("w2.airlock").exists());
    // Another bundle is not it.
    let elsewhere = ws.path("elsewhere");
    ws.pack(&ws.path("src"), "other.airlock", &["--channel", "weekly", "--state-dir", elsewhere.to_str().unwrap()])
        .expect_code(0);
    let base_other = ws.path("other.airlock");
    pack_since(&ws, "w2.airlock", "R1", &["--base", base_other.to_str().unwrap()])
        .expect_code(2)
        .expect_stderr("but the receipt says the mirror holds manifest");
    // With week one's bundle as the base: sequence and link recovered from the receipt.
    let base = ws.path("w1.airlock");
    let out = pack_since(&ws, "w2.airlock", "R1", &["--base", base.to_str().unwrap()]);
    out.expect_code(0);
    let (w2, d2) = head_of(&ws.path("w2.airlock"));
    assert_eq!((w2.sequence, w2.previous), (2, Some(d1)));
    assert_eq!(carried(&w2), ["a.txt", "f.txt"]);
    // The base is kept now: the same receipt again needs no --base, and numbers after w2.
    let out = pack_since(&ws, "w3.airlock", "R1", &[]);
    out.expect_code(0);
    let (w3, _) = head_of(&ws.path("w3.airlock"));
    assert_eq!((w3.sequence, w3.previous), (3, Some(d1)));
    assert_ne!(d2, d1);
    // A kept head directory works as a base too.
    fs::remove_dir_all(ws.path("state")).unwrap();
    fs::create_dir_all(ws.path("head")).unwrap();
    fs::write(ws.path("head/manifest.cbor"), Bundle::open(&base).unwrap().head().manifest_bytes.clone()).unwrap();
    let head = ws.path("head");
    pack_since(&ws, "w4.airlock", "R1", &["--base", head.to_str().unwrap()]).expect_code(0);
    assert_eq!(head_of(&ws.path("w4.airlock")).0.sequence, 2);
}

// ---------------------------------------------------------------------------------------
// diff

fn diff(ws: &Workspace, old: &str, new: &str, extra: &[&str]) -> Run {
    run(airlock()
        .arg("diff")
        .arg(ws.path(old))
        .arg(ws.path(new))
        .args(extra)
        .env("AIRLOCK_STATE_DIR", ws.path("state")))
}

#[test]
fn diff_two_bundles_text_and_json() {
    let ws = week_one();
    change_for_week_two(&ws);
    chmod(&ws.path("src/b.txt"), 0o755);
    ws.pack(&ws.path("src"), "w2.airlock", &["--channel", "weekly"]).expect_code(0);
    let (_, d1) = head_of(&ws.path("w1.airlock"));
    let (_, d2) = head_of(&ws.path("w2.airlock"));
    let text = diff(&ws, "w1.airlock", "w2.airlock", &[]);
    text.expect_code(0);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(
        lines[2..],
        [
            format!("channel weekly: sequence 1 (manifest {d1}) -> sequence 2 (manifest {d2})").as_str(),
            "  added    f.txt (8 bytes)",
            "  changed  a.txt (size 6 -> 15, sha256)",
            "  changed  b.txt (mode 644 -> 755)",
            "  removed  e.txt (5 bytes)",
            "  added 1 files, 8 bytes; changed 2 files, 21 bytes; removed 1 files, 5 bytes; unchanged 1 files, 200000 bytes",
            "the states differ",
        ],
        "{}",
        text.stdout
    );
    let out = diff(&ws, "w1.airlock", "w2.airlock", &["--json"]);
    out.expect_code(0);
    assert_eq!(out.stdout.lines().count(), 1, "one line of JSON");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["different"], true);
    assert_eq!(json["old"]["kind"], "bundle");
    let c = &json["channels"][0];
    assert_eq!(c["channel"], "weekly");
    assert_eq!(c["old"]["sequence"], 1);
    assert_eq!(c["new"]["manifest"], d2.to_hex());
    assert_eq!(c["added"][0]["path"], "f.txt");
    assert_eq!(c["added"][0]["mode"], "644");
    assert_eq!(c["changed"][0]["path"], "a.txt");
    assert_eq!(c["changed"][0]["what"], serde_json::json!(["size", "sha256"]));
    assert_eq!(c["changed"][1]["what"], serde_json::json!(["mode"]));
    assert_eq!(c["changed"][1]["new"]["mode"], "755");
    assert_eq!(c["removed"][0]["path"], "e.txt");
    assert_eq!(c["unchanged"][0]["path"], "big/d.bin");
    assert_eq!(c["totals"]["unchanged"], serde_json::json!({"files": 1, "bytes": 200000}));
    assert_eq!(c["totals"]["changed"], serde_json::json!({"files": 2, "bytes": 21}));
    // A delta bundle lists the complete state, so it diffs like a full one.
    write_receipt(&ws, &receipt_holding(&ws.path("w1.airlock"), true), "inside", "R1");
    pack_since(&ws, "w3.airlock", "R1", &[]).expect_code(0);
    let delta = diff(&ws, "w2.airlock", "w3.airlock", &[]);
    assert!(
        delta.stdout.contains("added 0 files, 0 bytes; changed 0 files, 0 bytes; removed 0 files"),
        "{}",
        delta.stdout
    );
    // A receipt side: the manifests it names, found in the pack state.
    let trust = ws.path("inside.pub");
    let from_receipt = diff(&ws, "R1", "w2.airlock", &["--trust", trust.to_str().unwrap()]);
    from_receipt.expect_code(0);
    assert_eq!(from_receipt.stdout.lines().skip(2).collect::<Vec<_>>(), lines[2..], "{}", from_receipt.stdout);
    assert!(from_receipt.stdout.starts_with("old: receipt "), "{}", from_receipt.stdout);
    // A receipt side is checked like any receipt.
    diff(&ws, "R1", "w2.airlock", &[]).expect_code(1).expect_stderr("not among the trusted keys");
}

#[test]
fn diff_exit_code() {
    let ws = week_one();
    ws.pack(&ws.path("src"), "same.airlock", &["--channel", "weekly"]).expect_code(0);
    change_for_week_two(&ws);
    ws.pack(&ws.path("src"), "w2.airlock", &["--channel", "weekly"]).expect_code(0);
    // Without --exit-code a difference is still success.
    diff(&ws, "w1.airlock", "w2.airlock", &[]).expect_code(0);
    diff(&ws, "w1.airlock", "w2.airlock", &["--exit-code"]).expect_code(1);
    let same = diff(&ws, "w1.airlock", "same.airlock", &["--exit-code"]);
    same.expect_code(0);
    assert!(same.stdout.contains("the states are the same"), "{}", same.stdout);
    diff(&ws, "w1.airlock", "same.airlock", &["--exit-code", "--json"]).expect_code(0);
    // Other channels are absent on one side: everything added.
    ws.pack(&ws.path("src"), "other.airlock", &["--channel", "other"]).expect_code(0);
    let two = diff(&ws, "w1.airlock", "other.airlock", &["--exit-code"]);
    two.expect_code(1);
    assert!(two.stdout.contains("channel other: absent -> sequence 1"), "{}", two.stdout);
    assert!(two.stdout.contains("channel weekly: sequence 1"), "{}", two.stdout);
    // Unreadable input is an operational error, not a difference.
    diff(&ws, "w1.airlock", "missing.airlock", &["--exit-code"]).expect_code(2);
}

#[test]
fn diff_against_a_mirror_shows_what_an_import_would_change() {
    let ws = week_one();
    ws.import("w1.airlock", "k", "mirror", &[]).expect_code(0);
    change_for_week_two(&ws);
    ws.pack(&ws.path("src"), "w2.airlock", &["--channel", "weekly"]).expect_code(0);
    let mirror = ws.path("mirror");
    let out = run(airlock().arg("diff").arg(ws.path("w2.airlock")).arg("--mirror").arg(&mirror).arg("--exit-code"));
    out.expect_code(1);
    assert!(out.stdout.starts_with(&format!("old: mirror {}", mirror.display())), "{}", out.stdout);
    for line in ["  added    f.txt (8 bytes)", "  changed  a.txt (size 6 -> 15, sha256)", "  removed  e.txt (5 bytes)"]
    {
        assert!(out.stdout.lines().any(|l| l == line), "{line:?} not in:\n{}", out.stdout);
    }
    // Once imported, the mirror and the bundle agree.
    ws.import("w2.airlock", "k", "mirror", &[]).expect_code(0);
    let same = run(airlock()
        .arg("diff")
        .arg(ws.path("w2.airlock"))
        .arg("--mirror")
        .arg(&mirror)
        .arg("--exit-code")
        .arg("--json"));
    same.expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&same.stdout).unwrap();
    assert_eq!((json["old"]["kind"].as_str(), json["different"].as_bool()), (Some("mirror"), Some(false)));
    // One side too many, or too few.
    run(airlock().arg("diff").arg(ws.path("w1.airlock")).arg(ws.path("w2.airlock")).arg("--mirror").arg(&mirror))
        .expect_code(2)
        .expect_stderr("with --mirror, give one bundle or receipt");
    run(airlock().arg("diff").arg(ws.path("w1.airlock"))).expect_code(2).expect_stderr("or one and --mirror DIR");
}
