//! Co-signing (`airlock sign`): it verifies the whole bundle first and writes nothing unless
//! `verify` would accept it; only the head frame changes, the payload frames are copied byte
//! for byte, and every signature verifies with airlock and with the real `signify-openbsd -V`
//! (these tests fail, not skip, when signify is missing).

use std::fs;
use std::process::Command;

use crate::common::*;

fn key_id(ws: &Workspace, name: &str) -> String {
    airlock::keys::PublicKey::load(&ws.path(&format!("{name}.pub"))).unwrap().key_id().to_string()
}

/// `airlock sign ARGS`, trusting the packer's key `k` (as a co-signer checks before vouching).
fn sign(ws: &Workspace, args: &[&str]) -> Run {
    sign_trusting(ws, "k.pub", args)
}

fn sign_trusting(ws: &Workspace, trusted: &str, args: &[&str]) -> Run {
    run(airlock().current_dir(ws.dir.path()).arg("sign").args(args).args(["--trust", trusted, "--quiet"]))
}

/// The names in the workspace directory that start with `.airlock-` (temporary files).
fn temporary_files(ws: &Workspace) -> Vec<String> {
    fs::read_dir(ws.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".airlock-"))
        .collect()
}

fn packed(ws: &Workspace) {
    let src = ws.path("src");
    write(&src, "big.bin", &(0..300_000u32).flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>(), 0o644);
    write(&src, "dir/tool.sh", b"#!/bin/sh\necho hi\n", 0o755);
    write(&src, "dir/tool.sh.sig", b"not checked without a policy rule\n", 0o644);
    ws.pack(&src, "b.airlock", &[]).expect_code(0);
}

/// `signify-openbsd -V` on each signature member of an extracted bundle.
fn signify_checks(ws: &Workspace, bundle: &str, keys: &[&str]) {
    let x = ws.path(&format!("x-{bundle}"));
    fs::create_dir_all(&x).unwrap();
    let st = Command::new("tar").arg("--zstd").arg("-xf").arg(ws.path(bundle)).arg("-C").arg(&x).status().unwrap();
    assert!(st.success(), "tar --zstd -xf failed");
    for k in keys {
        let out = Command::new("signify-openbsd")
            .current_dir(&x)
            .arg("-V")
            .arg("-p")
            .arg(ws.path(&format!("{k}.pub")))
            .arg("-x")
            .arg(format!("airlock/signatures/{}.sig", key_id(ws, k)))
            .arg("-m")
            .arg("airlock/manifest.cbor")
            .output()
            .expect("signify-openbsd must be installed (scripts/test.sh installs it)");
        assert!(out.status.success(), "signify -V for {k}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn cosign_keeps_payload_frames_identical_and_both_signatures_verify() {
    let ws = Workspace::new();
    ws.keygen("reviewer");
    packed(&ws);
    let before = fs::read(ws.path("b.airlock")).unwrap();
    let r = sign(&ws, &["b.airlock", "--key", "reviewer.sec", "-o", "b2.airlock"]);
    r.expect_code(0);
    assert!(r.stdout.contains("payload bytes copied unchanged"), "{}", r.stdout);
    let after = fs::read(ws.path("b2.airlock")).unwrap();
    assert_eq!(fs::read(ws.path("b.airlock")).unwrap(), before, "-o must leave the input alone");

    let (p1, p2) = (split(&before), split(&after));
    assert_eq!(p1.payload_frames, p2.payload_frames, "payload frames must be copied byte for byte");
    assert_ne!(p1.head_frame, p2.head_frame);
    assert_eq!(&after[after.len() - p1.payload_frames.len()..], p1.payload_frames.as_slice());
    let sig_members: Vec<&str> =
        p2.head.iter().map(|(n, _)| n.as_str()).filter(|n| n.starts_with("airlock/signatures/")).collect();
    assert_eq!(sig_members.len(), 2);
    assert_eq!(p1.head[0], p2.head[0], "manifest bytes unchanged");

    // airlock: both keys, threshold 2.
    run(airlock().current_dir(ws.dir.path()).args([
        "verify",
        "b2.airlock",
        "--trust",
        "k.pub",
        "--trust",
        "reviewer.pub",
        "--threshold",
        "2",
        "--quiet",
    ]))
    .expect_code(0);
    // The original still has only one.
    run(airlock().current_dir(ws.dir.path()).args([
        "verify",
        "b.airlock",
        "--trust",
        "k.pub",
        "--trust",
        "reviewer.pub",
        "--threshold",
        "2",
        "--quiet",
    ]))
    .expect_code(1);
    // signify: each signature on its own.
    signify_checks(&ws, "b2.airlock", &["k", "reviewer"]);
    // It imports where the packer is trusted; under the reviewer's key alone it is refused:
    // the checksum list is the packer's, and only a counted signer may vouch for it.
    ws.import("b2.airlock", "k", "m", &[]).expect_code(0);
    ws.import("b2.airlock", "reviewer", "m2", &[])
        .expect_code(1)
        .expect_stderr("airlock/SHA256SUMS.sig is signed by key");
}

#[test]
fn cosign_in_place_and_resigning_is_a_no_op() {
    let ws = Workspace::new();
    ws.keygen("r1");
    ws.keygen("r2");
    packed(&ws);
    let payload = split(&fs::read(ws.path("b.airlock")).unwrap()).payload_frames;
    sign(&ws, &["b.airlock", "--key", "r1.sec"]).expect_code(0);
    sign(&ws, &["b.airlock", "--key", "r2.sec"]).expect_code(0);
    let signed = fs::read(ws.path("b.airlock")).unwrap();
    assert_eq!(split(&signed).payload_frames, payload);
    // Same key again: nothing changes.
    let r = sign(&ws, &["b.airlock", "--key", "r1.sec"]);
    r.expect_code(0);
    assert!(r.stdout.contains("already signed"), "{}", r.stdout);
    assert_eq!(fs::read(ws.path("b.airlock")).unwrap(), signed);
    // The packer's own key too.
    sign(&ws, &["b.airlock", "--key", "k.sec"]).expect_code(0);
    assert_eq!(fs::read(ws.path("b.airlock")).unwrap(), signed);
    let sigs = split(&signed).head.iter().filter(|(n, _)| n.starts_with("airlock/signatures/")).count();
    assert_eq!(sigs, 3);
    run(airlock().current_dir(ws.dir.path()).args([
        "verify",
        "b.airlock",
        "--trust",
        "k.pub",
        "--trust",
        "r1.pub",
        "--trust",
        "r2.pub",
        "--threshold",
        "3",
        "--quiet",
    ]))
    .expect_code(0);
    signify_checks(&ws, "b.airlock", &["k", "r1", "r2"]);
    // No temporary files left beside it.
    assert_eq!(temporary_files(&ws), Vec::<String>::new());
}

#[test]
fn cosign_refuses_damaged_bundles_and_existing_outputs() {
    let ws = Workspace::new();
    ws.keygen("r");
    packed(&ws);
    // -o onto an existing file needs --force.
    fs::write(ws.path("exists.airlock"), b"keep me").unwrap();
    sign(&ws, &["b.airlock", "--key", "r.sec", "-o", "exists.airlock"]).expect_code(2);
    assert_eq!(fs::read(ws.path("exists.airlock")).unwrap(), b"keep me");
    sign(&ws, &["b.airlock", "--key", "r.sec", "-o", "exists.airlock", "--force"]).expect_code(0);
    // A bundle whose manifest was altered is not signed.
    let mut parts = split(&fs::read(ws.path("b.airlock")).unwrap());
    let last = parts.head[0].1.len() - 1;
    parts.head[0].1[last] ^= 1;
    fs::write(ws.path("bad.airlock"), assemble(&parts.head, &parts.payload)).unwrap();
    let before = fs::read(ws.path("bad.airlock")).unwrap();
    sign(&ws, &["bad.airlock", "--key", "r.sec"]).expect_code(1);
    assert_eq!(fs::read(ws.path("bad.airlock")).unwrap(), before);
}

/// `sign` takes the same secret-key protections as `pack`: passphrase-protected keys (from
/// a file here), and a key file readable by group/others refused unless overridden.
#[test]
fn cosign_with_passphrase_key_and_key_file_permissions() {
    let ws = Workspace::new();
    packed(&ws);
    fs::write(ws.path("pass"), "correct horse\n").unwrap();
    run(airlock().current_dir(ws.dir.path()).args([
        "keygen",
        "--public",
        "p.pub",
        "--secret",
        "p.sec",
        "--passphrase-file",
        "pass",
    ]))
    .expect_code(0);
    sign(&ws, &["b.airlock", "--key", "p.sec", "--passphrase-file", "pass"]).expect_code(0);
    ws.keygen("q");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(ws.path("q.sec"), fs::Permissions::from_mode(0o644)).unwrap();
    let before = fs::read(ws.path("b.airlock")).unwrap();
    sign(&ws, &["b.airlock", "--key", "q.sec"]).expect_code(2).expect_stderr("group/others");
    assert_eq!(fs::read(ws.path("b.airlock")).unwrap(), before);
    sign(&ws, &["b.airlock", "--key", "q.sec", "--allow-insecure-key-permissions"]).expect_code(0);
    run(airlock().current_dir(ws.dir.path()).args([
        "verify",
        "b.airlock",
        "--trust",
        "k.pub",
        "--trust",
        "p.pub",
        "--trust",
        "q.pub",
        "--threshold",
        "3",
        "--quiet",
    ]))
    .expect_code(0);
    signify_checks(&ws, "b.airlock", &["k", "p", "q"]);
}

/// `sign` verifies before it vouches: one flipped payload byte (the head still verifies) is
/// refused with exit 1 like `verify` refuses it, in place and with -o, and nothing is written.
#[test]
fn cosign_refuses_a_bundle_with_one_flipped_payload_byte() {
    let ws = Workspace::new();
    ws.keygen("r");
    packed(&ws);
    let mut parts = split(&fs::read(ws.path("b.airlock")).unwrap());
    let (_, _, data, _) =
        payload_members(&parts.payload).into_iter().find(|(_, name, _, _)| name == "data/big.bin").unwrap();
    parts.payload[data + 1000] ^= 1;
    fs::write(ws.path("flipped.airlock"), assemble(&parts.head, &parts.payload)).unwrap();
    let before = fs::read(ws.path("flipped.airlock")).unwrap();
    ws.verify("flipped.airlock", "k").expect_code(1).expect_stderr("member data/big.bin: SHA-256 is");

    sign(&ws, &["flipped.airlock", "--key", "r.sec"]).expect_code(1).expect_stderr("member data/big.bin: SHA-256 is");
    assert_eq!(fs::read(ws.path("flipped.airlock")).unwrap(), before, "the input must be byte-identical");
    sign(&ws, &["flipped.airlock", "--key", "r.sec", "-o", "out.airlock"]).expect_code(1);
    assert!(!ws.path("out.airlock").exists(), "no output may be created");
    assert_eq!(fs::read(ws.path("flipped.airlock")).unwrap(), before);
    assert_eq!(temporary_files(&ws), Vec::<String>::new());
}

/// A bundle signed only by a key the co-signer does not trust is refused (exit 1), in place
/// and with -o, and nothing is written.
#[test]
fn cosign_refuses_a_bundle_signed_only_by_an_untrusted_key() {
    let ws = Workspace::new();
    ws.keygen("r");
    ws.keygen("stranger");
    packed(&ws); // signed by k only
    let before = fs::read(ws.path("b.airlock")).unwrap();
    sign_trusting(&ws, "stranger.pub", &["b.airlock", "--key", "r.sec"])
        .expect_code(1)
        .expect_stderr("needs valid signatures from 1 distinct trusted key(s), found 0");
    assert_eq!(fs::read(ws.path("b.airlock")).unwrap(), before, "the input must be byte-identical");
    sign_trusting(&ws, "stranger.pub", &["b.airlock", "--key", "r.sec", "-o", "out.airlock"]).expect_code(1);
    assert!(!ws.path("out.airlock").exists(), "no output may be created");
    assert_eq!(fs::read(ws.path("b.airlock")).unwrap(), before);
    assert_eq!(temporary_files(&ws), Vec::<String>::new());
}

/// `sign` applies the same freshness as `verify`: an expired bundle is not vouched for.
#[test]
fn cosign_refuses_an_expired_bundle() {
    let ws = Workspace::new();
    ws.keygen("r");
    let src = ws.path("src");
    write(&src, "a.txt", b"a\n", 0o644);
    ws.pack(&src, "b.airlock", &["--expires", "1h"]).expect_code(0);
    let before = fs::read(ws.path("b.airlock")).unwrap();
    let later = (airlock::clock::system_now() + 7200).to_string();
    run(airlock().current_dir(ws.dir.path()).env("AIRLOCK_NOW", &later).args([
        "sign",
        "b.airlock",
        "--key",
        "r.sec",
        "--trust",
        "k.pub",
        "--quiet",
    ]))
    .expect_code(1)
    .expect_stderr("bundle expired at");
    assert_eq!(fs::read(ws.path("b.airlock")).unwrap(), before);
}
