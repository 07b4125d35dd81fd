//! Artifact signatures checked at verify/import against policy rules, with signatures made
//! by the real `signify-openbsd` and `minisign` binaries (these tests fail, not skip, when
//! either is missing), and the point-of-use check in the mirror with the same stock tools.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::kit::*;

fn tool(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (scripts/test.sh installs it): {e}"))
}

fn ok(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key_id(ws: &Workspace, file: &str) -> String {
    airlock::keys::PublicKey::load(&ws.path(file)).unwrap().key_id().to_string()
}

fn cmd(ws: &Workspace, args: &[&str]) -> Run {
    run(airlock().current_dir(ws.dir.path()).args(args).env("AIRLOCK_STATE_DIR", ws.path("state")))
}

fn pack(ws: &Workspace, out: &str, extra: &[&str]) {
    let mut args = vec!["pack", "src", "-o", out, "--key", "k.sec", "--quiet", "--force"];
    args.extend_from_slice(extra);
    cmd(ws, &args).expect_code(0);
}

/// A policy: bundles signed by k; files under vendor-x/ signed by `keys` (policy key
/// names `vendor` = vendor.pub, `mini` = mini.pub) with extra rule settings.
fn policy(ws: &Workspace, name: &str, glob: &str, keys: &str, rule_extra: &str) {
    let mut text = String::from("version = 1\n[keys.transfer]\nfile = \"k.pub\"\n");
    if ws.path("vendor.pub").exists() {
        text.push_str("[keys.vendor]\nfile = \"vendor.pub\"\n");
    }
    if ws.path("mini.pub").exists() {
        text.push_str("[keys.mini]\nfile = \"mini.pub\"\n");
    }
    text.push_str(&format!(
        "[[channel]]\nname = \"*\"\nsigners = [\"transfer\"]\n[[artifact]]\npath = \"{glob}\"\nkeys = [{keys}]\n{rule_extra}"
    ));
    fs::write(ws.path(name), text).unwrap();
}

fn import(ws: &Workspace, bundle: &str, policy: &str) -> Run {
    // Each pack here takes the next sequence number; the gaps are not what is tested.
    cmd(ws, &["import", bundle, "--policy", policy, "--mirror", "m", "--allow-gap", "--init"])
}

/// Import must fail with exit 1 and `message`, leaving the mirror as it was.
fn assert_import_rejected(ws: &Workspace, bundle: &str, policy: &str, message: &[&str]) {
    assert_rejection_leaves_mirror(ws, "m", message, || import(ws, bundle, policy));
    // verify agrees.
    cmd(ws, &["verify", bundle, "--policy", policy]).expect_code(1);
}

fn signify_vendor(ws: &Workspace) {
    ok(
        tool(ws.dir.path(), "signify-openbsd", &["-G", "-n", "-p", "vendor.pub", "-s", "vendor.sec", "-c", "vendor-x"]),
        "signify -G",
    );
}

#[test]
fn signify_artifact_signature_required_by_rule() {
    let ws = Workspace::new();
    signify_vendor(&ws);
    let src = ws.path("src");
    write(&src, "vendor-x/tool.tar.gz", &vec![7u8; 200_000], 0o644);
    write(&src, "README", b"not covered by the rule\n", 0o644);
    ok(tool(&src, "signify-openbsd", &["-S", "-s", "../vendor.sec", "-m", "vendor-x/tool.tar.gz"]), "signify -S");
    pack(&ws, "good.airlock", &[]);
    policy(&ws, "p.toml", "vendor-x/**", "\"vendor\"", "");
    let r = cmd(&ws, &["verify", "good.airlock", "--policy", "p.toml"]);
    r.expect_code(0);
    assert!(r.stdout.contains("vendor-x/tool.tar.gz.sig verified (signify) by"), "{}", r.stdout);
    let imported = import(&ws, "good.airlock", "p.toml");
    imported.expect_code(0);
    // What the rules checked is printed and kept in the import log for auditors.
    assert!(imported.stdout.contains("vendor-x/tool.tar.gz.sig verified (signify) by"), "{}", imported.stdout);
    let log = std::fs::read_to_string(ws.path("m/.airlock/log")).unwrap();
    assert!(log.lines().last().unwrap().contains("tool.tar.gz.sig verified (signify) by"), "{log}");
    // Point of use: the artifact and its signature side by side, checked by stock signify.
    ok(
        tool(&ws.path("m"), "signify-openbsd", &["-V", "-p", "../vendor.pub", "-m", "vendor-x/tool.tar.gz"]),
        "signify -V in the mirror",
    );

    // Missing: a new artifact without a signature.
    write(&src, "vendor-x/unsigned.bin", b"no signature\n", 0o644);
    pack(&ws, "missing.airlock", &[]);
    let vendor = key_id(&ws, "vendor.pub");
    assert_import_rejected(
        &ws,
        "missing.airlock",
        "p.toml",
        &["artifact \"vendor-x/unsigned.bin\"", "requires a valid signature by key", &vendor],
    );

    // Wrong: a signature of another file presented as this one's.
    fs::copy(src.join("vendor-x/tool.tar.gz.sig"), src.join("vendor-x/unsigned.bin.sig")).unwrap();
    pack(&ws, "wrong.airlock", &[]);
    assert_import_rejected(
        &ws,
        "wrong.airlock",
        "p.toml",
        &["artifact \"vendor-x/unsigned.bin\"", "does not verify", &vendor],
    );

    // Garbage in the signature file.
    fs::write(src.join("vendor-x/unsigned.bin.sig"), b"#!/bin/sh\nrm -rf /\n").unwrap();
    pack(&ws, "garbage.airlock", &[]);
    assert_import_rejected(&ws, "garbage.airlock", "p.toml", &["unsigned.bin.sig is malformed"]);

    // A signature by a key the rule does not name counts as missing (and is reported).
    fs::remove_file(src.join("vendor-x/unsigned.bin.sig")).unwrap();
    ok(
        tool(&src, "signify-openbsd", &["-S", "-s", "../k.sec", "-m", "vendor-x/unsigned.bin"]),
        "signify -S with another key",
    );
    pack(&ws, "other-key.airlock", &[]);
    assert_import_rejected(&ws, "other-key.airlock", "p.toml", &["requires a valid signature", "unsigned.bin.sig"]);

    // required = false: accepted, and said so.
    policy(&ws, "lenient.toml", "vendor-x/**", "\"vendor\"", "required = false\n");
    let r = cmd(&ws, &["verify", "other-key.airlock", "--policy", "lenient.toml"]);
    r.expect_code(0);
    assert!(r.stdout.contains("vendor-x/unsigned.bin: missing (rule)"), "{}", r.stdout);
    assert!(r.stdout.contains("by a key no rule for this file names; ignored"), "{}", r.stdout);
    // ... but a bad signature by the rule's key is still rejected.
    fs::copy(src.join("vendor-x/tool.tar.gz.sig"), src.join("vendor-x/unsigned.bin.sig")).unwrap();
    pack(&ws, "wrong2.airlock", &[]);
    assert_import_rejected(&ws, "wrong2.airlock", "lenient.toml", &["does not verify"]);
}

fn minisign_setup(ws: &Workspace) {
    ok(tool(ws.dir.path(), "minisign", &["-G", "-W", "-p", "mini.pub", "-s", "mini.key"]), "minisign -G -W");
    let src = ws.path("src");
    write(&src, "vendor-x/pre.bin", &vec![1u8; 100_000], 0o644);
    write(&src, "vendor-x/legacy.bin", &vec![2u8; 100_000], 0o755);
    ok(
        tool(&src, "minisign", &["-S", "-s", "../mini.key", "-m", "vendor-x/pre.bin", "-t", "release 1.0 prehashed"]),
        "minisign -S",
    );
    ok(tool(&src, "minisign", &["-S", "-l", "-s", "../mini.key", "-m", "vendor-x/legacy.bin"]), "minisign -S -l");
}

#[test]
fn minisign_prehashed_and_legacy_from_the_real_binary() {
    let ws = Workspace::new();
    minisign_setup(&ws);
    pack(&ws, "b.airlock", &[]);
    // Legacy refused by default (like minisign -V -H).
    policy(&ws, "strict.toml", "vendor-x/*", "\"mini\"", "");
    assert_import_rejected(
        &ws,
        "b.airlock",
        "strict.toml",
        &["artifact \"vendor-x/legacy.bin\"", "legacy (non-prehashed) minisign signature", "allow_legacy = false"],
    );
    // Allowed explicitly: both verify.
    policy(&ws, "legacy.toml", "vendor-x/*", "\"mini\"", "allow_legacy = true\n");
    let r = cmd(&ws, &["verify", "b.airlock", "--policy", "legacy.toml"]);
    r.expect_code(0);
    assert!(r.stdout.contains("vendor-x/pre.bin: vendor-x/pre.bin.minisig verified"), "{}", r.stdout);
    // The trusted comment is reported once its global signature verified.
    assert!(r.stdout.contains("trusted comment: release 1.0 prehashed"), "{}", r.stdout);
    assert!(r.stdout.contains("vendor-x/legacy.bin: vendor-x/legacy.bin.minisig verified"), "{}", r.stdout);
    import(&ws, "b.airlock", "legacy.toml").expect_code(0);
    // Point of use: stock minisign checks each file in the mirror.
    for f in ["vendor-x/pre.bin", "vendor-x/legacy.bin"] {
        ok(tool(&ws.path("m"), "minisign", &["-V", "-p", "../mini.pub", "-m", f]), "minisign -V in the mirror");
    }
}

#[test]
fn minisign_tampered_trusted_comment_or_file_is_rejected() {
    let ws = Workspace::new();
    minisign_setup(&ws);
    let src = ws.path("src");
    fs::remove_file(src.join("vendor-x/legacy.bin.minisig")).unwrap();
    fs::remove_file(src.join("vendor-x/legacy.bin")).unwrap();
    policy(&ws, "p.toml", "vendor-x/**", "\"mini\"", "");
    // The trusted comment is covered by the global signature.
    let sig = fs::read_to_string(src.join("vendor-x/pre.bin.minisig")).unwrap();
    fs::write(src.join("vendor-x/pre.bin.minisig"), sig.replace("release 1.0", "release 9.9")).unwrap();
    pack(&ws, "comment.airlock", &[]);
    assert_import_rejected(&ws, "comment.airlock", "p.toml", &["global signature", "vendor-x/pre.bin"]);
    // The file itself.
    fs::write(src.join("vendor-x/pre.bin.minisig"), sig).unwrap();
    write(&src, "vendor-x/pre.bin", &vec![9u8; 100_000], 0o644);
    pack(&ws, "file.airlock", &[]);
    assert_import_rejected(&ws, "file.airlock", "p.toml", &["pre.bin.minisig", "does not verify"]);
}

#[test]
fn sign_artifacts_writes_signify_checkable_checksum_signatures() {
    let ws = Workspace::new();
    let src = ws.path("src");
    write(&src, "vendor-x/big.iso", &vec![3u8; 300_000], 0o644);
    write(&src, "notes.txt", b"hello\n", 0o644);
    pack(&ws, "b.airlock", &["--sign-artifacts"]);
    let r = cmd(&ws, &["inspect", "b.airlock"]);
    assert!(r.stdout.contains("vendor-x/big.iso.sha256.sig"), "{}", r.stdout);
    assert!(r.stdout.contains("[signed by: vendor-x/big.iso.sha256.sig]"), "{}", r.stdout);
    // A rule naming the transfer key for every file is met by the checksum signatures.
    fs::write(
        ws.path("all.toml"),
        "version = 1\n[keys.transfer]\nfile = \"k.pub\"\n[[channel]]\nname = \"*\"\nsigners = [\"transfer\"]\n\
         [[artifact]]\npath = \"**\"\nkeys = [\"transfer\"]\n",
    )
    .unwrap();
    let r = cmd(&ws, &["verify", "b.airlock", "--policy", "all.toml"]);
    r.expect_code(0);
    assert!(r.stdout.contains("notes.txt: notes.txt.sha256.sig verified"), "{}", r.stdout);
    import(&ws, "b.airlock", "all.toml").expect_code(0);
    // Beside the artifact in the mirror, stock signify -C checks it (streaming, no size limit).
    ok(
        tool(&ws.path("m/vendor-x"), "signify-openbsd", &["-C", "-p", "../../k.pub", "-x", "big.iso.sha256.sig"]),
        "signify -C in the mirror",
    );
    ok(tool(&ws.path("m"), "signify-openbsd", &["-C", "-p", "../k.pub", "-x", "notes.txt.sha256.sig"]), "signify -C");
    // A changed file fails signify -C at the point of use.
    fs::write(ws.path("m/notes.txt"), b"changed\n").unwrap();
    let out = tool(&ws.path("m"), "signify-openbsd", &["-C", "-p", "../k.pub", "-x", "notes.txt.sha256.sig"]);
    assert!(!out.status.success());
    // Without the checksum signatures, the same rule fails.
    pack(&ws, "plain.airlock", &[]);
    cmd(&ws, &["verify", "plain.airlock", "--policy", "all.toml"])
        .expect_code(1)
        .expect_stderr("requires a valid signature");
    // A name clash is refused at pack time.
    write(&src, "notes.txt.sha256.sig", b"x", 0o644);
    cmd(&ws, &["pack", "src", "-o", "clash.airlock", "--key", "k.sec", "--quiet", "--sign-artifacts"])
        .expect_code(2)
        .expect_stderr("--sign-artifacts would add");
}

#[test]
fn key_show_and_convert_between_signify_and_minisign() {
    let ws = Workspace::new();
    ok(tool(ws.dir.path(), "minisign", &["-G", "-W", "-p", "mini.pub", "-s", "mini.key"]), "minisign -G -W");
    let mini_comment = fs::read_to_string(ws.path("mini.pub")).unwrap();
    let minisign_id = mini_comment.lines().next().unwrap().rsplit(' ').next().unwrap().to_owned();
    // minisign 0.11 prints the id without leading zeros; airlock always prints 16 digits.
    let minisign_id = format!("{minisign_id:0>16}");

    let r = cmd(&ws, &["key", "show", "mini.pub"]);
    r.expect_code(0);
    assert!(r.stdout.contains("minisign public key"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("minisign id  {minisign_id}")), "{}", r.stdout);
    let r = cmd(&ws, &["key", "show", "mini.key"]);
    r.expect_code(0);
    assert!(r.stdout.contains("minisign secret key") && r.stdout.contains(&minisign_id), "{}", r.stdout);
    let r = cmd(&ws, &["key", "show", "k.sec"]);
    r.expect_code(0);
    assert!(r.stdout.contains("signify secret key") && r.stdout.contains(&key_id(&ws, "k.pub")), "{}", r.stdout);

    // minisign -> signify: stock signify verifies a legacy minisign signature with it.
    cmd(&ws, &["key", "convert", "mini.pub", "--to", "signify", "-o", "mini-signify.pub"]).expect_code(0);
    fs::write(ws.path("f"), b"data\n").unwrap();
    ok(tool(ws.dir.path(), "minisign", &["-S", "-l", "-s", "mini.key", "-m", "f", "-x", "f.sig"]), "minisign -S -l");
    ok(
        tool(ws.dir.path(), "signify-openbsd", &["-V", "-p", "mini-signify.pub", "-m", "f", "-x", "f.sig"]),
        "signify -V",
    );
    // signify -> minisign: same key id, and stock minisign accepts the file.
    cmd(&ws, &["key", "convert", "mini-signify.pub", "--to", "minisign", "-o", "back.pub"]).expect_code(0);
    let back = fs::read_to_string(ws.path("back.pub")).unwrap();
    assert_eq!(back.lines().nth(1), mini_comment.lines().nth(1));
    assert_eq!(back.lines().next().unwrap(), format!("untrusted comment: minisign public key {minisign_id}"));
    ok(tool(ws.dir.path(), "minisign", &["-V", "-p", "back.pub", "-m", "f", "-x", "f.sig"]), "minisign -V");
    // Secret keys are not converted.
    cmd(&ws, &["key", "convert", "k.sec", "--to", "minisign"]).expect_code(2).expect_stderr("only public keys");
}

/// Artifacts of 8 MiB and more are checked on verifier threads: the same decisions.
#[test]
fn large_artifacts_verify_on_worker_threads() {
    let ws = Workspace::new();
    signify_vendor(&ws);
    ok(tool(ws.dir.path(), "minisign", &["-G", "-W", "-p", "mini.pub", "-s", "mini.key"]), "minisign -G -W");
    let src = ws.path("src");
    let big: Vec<u8> = (0..9u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    write(&src, "vendor-x/big.img", &big, 0o644);
    ok(tool(&src, "signify-openbsd", &["-S", "-s", "../vendor.sec", "-m", "vendor-x/big.img"]), "signify -S");
    ok(tool(&src, "minisign", &["-S", "-s", "../mini.key", "-m", "vendor-x/big.img"]), "minisign -S");
    pack(&ws, "good.airlock", &[]);
    policy(&ws, "both.toml", "vendor-x/**", "\"vendor\"", "[[artifact]]\npath = \"**/*.img\"\nkeys = [\"mini\"]\n");
    let r = cmd(&ws, &["verify", "good.airlock", "--policy", "both.toml"]);
    r.expect_code(0);
    assert!(r.stdout.contains("big.img.sig verified") && r.stdout.contains("big.img.minisig verified"), "{}", r.stdout);
    import(&ws, "good.airlock", "both.toml").expect_code(0);
    // Same size, one byte different, signatures of the original: both checks fail.
    let mut other = big.clone();
    other[5 << 20] ^= 1;
    write(&src, "vendor-x/big.img", &other, 0o644);
    pack(&ws, "bad.airlock", &[]);
    assert_import_rejected(&ws, "bad.airlock", "both.toml", &["artifact \"vendor-x/big.img\"", "does not verify"]);
}
