//! Hostile names (issue #17, defect 5 and the §6-§7 spec gaps): entry paths that one
//! case-insensitive or normalising filesystem (NTFS, exFAT, APFS, ext4 casefold) takes for
//! one name, directories spelled two ways, device names Windows opens as devices, invisible
//! characters, times past year 9999 and unlinked signature files. Each bundle is validly
//! signed by the trusted key `k` with a matching checksum list, so the rule its name gives
//! (not the signature layer) rejects it: exit 1, the message, the mirror byte-identical and
//! nothing written outside it. The `pack_refuses_*` tests check that pack will not write
//! such a bundle from a source tree.

use std::fs;
use std::path::Path;

use crate::kit::*;

const COLLIDE: &str = "collide on a case-insensitive or normalising filesystem";

/// A signed bundle holding exactly `paths` (in manifest order, which must be sorted).
fn signed_paths(case: &Case, paths: &[&str]) {
    let files: Vec<(&str, &[u8], u32)> = paths.iter().map(|p| (*p, &b"content\n"[..], 0o644)).collect();
    signed_files(case, "evil.airlock", &files);
}

macro_rules! hostile_names {
    ($($name:ident: [$($path:expr),+] => $message:expr;)*) => {$(
        #[test]
        fn $name() {
            let case = Case::new();
            signed_paths(&case, &[$($path),+]);
            case.expect_rejected("evil.airlock", &$message);
        }
    )*};
}

hostile_names! {
    // Full case folding (CaseFolding.txt status C and F), not lowercasing.
    collision_long_s_and_s: ["s.txt", "\u{17f}.txt"] => format!("entries \"s.txt\" and \"\u{17f}.txt\" {COLLIDE}");
    collision_micro_sign_and_greek_mu: ["\u{b5}.txt", "\u{3bc}.txt"] => format!("entries \"\u{b5}.txt\" and \"\u{3bc}.txt\" {COLLIDE}");
    collision_sharp_s_and_ss: ["strasse.txt", "stra\u{df}e.txt"] => format!("entries \"strasse.txt\" and \"stra\u{df}e.txt\" {COLLIDE}");
    collision_capital_sharp_s_and_ss: ["SS", "\u{1e9e}"] => format!("entries \"SS\" and \"\u{1e9e}\" {COLLIDE}");
    collision_ff_ligature_and_ff: ["ff", "\u{fb00}"] => format!("entries \"ff\" and \"\u{fb00}\" {COLLIDE}");
    collision_final_sigma_and_sigma: ["\u{3c2}", "\u{3c3}"] => format!("entries \"\u{3c2}\" and \"\u{3c3}\" {COLLIDE}");
    collision_titlecase_digraph: ["\u{1c4}", "\u{1c5}"] => format!("entries \"\u{1c4}\" and \"\u{1c5}\" {COLLIDE}");
    collision_greek_iota_subscript: ["\u{1f08}\u{3b9}", "\u{1f80}"] => format!("entries \"\u{1f08}\u{3b9}\" and \"\u{1f80}\" {COLLIDE}");
    // NTFS and exFAT upcase the dotless i to I.
    collision_dotless_i_and_i: ["i.txt", "\u{131}.txt"] => format!("entries \"i.txt\" and \"\u{131}.txt\" {COLLIDE}");
    // The Kelvin sign is not NFC (it normalises to K): refused before any comparison.
    collision_kelvin_sign_and_k: ["k.txt", "\u{212a}.txt"] => "entry \"\u{212a}.txt\": path is not in Unicode NFC form";
    collision_angstrom_sign: ["\u{e5}", "\u{212b}"] => "entry \"\u{212b}\": path is not in Unicode NFC form";
    // Directory components are compared too.
    collision_directories_in_case: ["Dir/a.txt", "dir/b.txt"] =>
        format!("directories \"Dir\" (of entry \"Dir/a.txt\") and \"dir\" (of entry \"dir/b.txt\") {COLLIDE}");
    collision_directories_by_folding: ["x/s/a", "x/\u{17f}/b"] =>
        format!("directories \"x/s\" (of entry \"x/s/a\") and \"x/\u{17f}\" (of entry \"x/\u{17f}/b\") {COLLIDE}");
    collision_deep_directories: ["a/B/c/1", "a/b/C/2"] =>
        format!("directories \"a/B\" (of entry \"a/B/c/1\") and \"a/b\" (of entry \"a/b/C/2\") {COLLIDE}");
    collision_file_and_folded_directory: ["STRASSE", "stra\u{df}e/x"] =>
        "entry \"STRASSE\" is a file but entry \"stra\u{df}e/x\" needs it to be a directory";
    collision_file_and_directory_in_case: ["Docs", "docs/readme"] =>
        "entry \"Docs\" is a file but entry \"docs/readme\" needs it to be a directory";
    collision_nfd_directory_component: ["cafe\u{301}/b", "caf\u{e9}/a"] =>
        "entry \"cafe\\u{301}/b\": path is not in Unicode NFC form";
    // Windows reads superscript digits as digits in device names.
    device_com_superscript_one: ["COM\u{b9}"] => "a path component is a reserved device name (COM\u{b9})";
    device_lpt_superscript_two: ["x/lpt\u{b2}.txt"] => "a path component is a reserved device name (lpt\u{b2}.txt)";
    device_com_superscript_three: ["Com\u{b3}.log"] => "a path component is a reserved device name (Com\u{b3}.log)";
    device_with_space_before_extension: ["NUL .txt"] => "a path component is a reserved device name (NUL .txt)";
    metadata_dir_with_dotless_i: [".a\u{131}rlock/log"] => "path names or enters the mirror's metadata directory";
    path_bidi_isolate: ["a\u{2067}b"] => "path contains the forbidden character '\\u{2067}'";
    path_hfs_ignorable: ["a\u{206a}b"] => "path contains the forbidden character '\\u{206a}'";
    path_soft_hyphen: ["a\u{ad}b"] => "path contains the forbidden character '\\u{ad}'";
    path_line_separator: ["a\u{2028}b"] => "path contains the forbidden character '\\u{2028}'";
    path_tag_character: ["a\u{e0041}"] => "path contains the forbidden character '\\u{e0041}'";
    // A sibling signature entry must be linked to its artifact.
    unlinked_sibling_signature: ["tool.tgz", "tool.tgz.sig"] =>
        "entry \"tool.tgz\" must link exactly its sibling signature entries, in suffix order: [\"tool.tgz.sig\"]";
}

#[test]
fn label_with_bidi_override() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.label = Some("weekly\u{202e}txt.exe".into()), None);
    case.expect_rejected("evil.airlock", "label contains the invisible character '\\u{202e}'");
}

#[test]
fn meta_value_with_zero_width_space() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| _ = w.meta.insert("origin".into(), "lab\u{200b}".into()), None);
    case.expect_rejected("evil.airlock", "meta value of \"origin\" contains the invisible character '\\u{200b}'");
}

#[test]
fn label_with_line_separator() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.label = Some("one\u{2028}imported".into()), None);
    case.expect_rejected("evil.airlock", "label contains control characters");
}

#[test]
fn created_after_year_9999() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.created = 253_402_300_800, None);
    case.expect_rejected("evil.airlock", "created is 253402300800, after 253402300799 (9999-12-31T23:59:59Z)");
}

#[test]
fn expires_at_u64_max() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.expires = Some(u64::MAX), None);
    case.expect_rejected("evil.airlock", "expires is 18446744073709551615, after 253402300799");
}

/// A bundle with no entries is a valid bundle (FORMAT.md §6.3): it imports and only
/// advances the channel.
#[test]
fn zero_entry_bundle_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    keygen(root, "k");
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("canary")).unwrap();
    pack_at(root, &root.join("empty"), "empty.airlock", &[]).expect_code(0);
    run(&mut import_command(root, "empty.airlock", &["k"], &["--init"])).expect_code(0);
    let files: Vec<String> = snapshot(&root.join(MIRROR), true).into_keys().collect();
    assert!(files.is_empty(), "{files:?}");
}

/// Packs a tree of `paths` and checks that pack refuses it (exit 2, `message`) and writes
/// no bundle.
fn pack_refuses(paths: &[&str], message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    keygen(root, "k");
    let src = root.join("src");
    for path in paths {
        write(&src, path, b"content\n", 0o644);
    }
    let out = pack_at(root, &src, "out.airlock", &[]);
    out.expect_code(2).expect_stderr("cannot pack: the bundle would break a manifest rule").expect_stderr(message);
    assert!(!Path::new(&root.join("out.airlock")).exists(), "pack wrote a bundle");
}

#[test]
fn pack_refuses_long_s_and_s() {
    pack_refuses(&["s.txt", "\u{17f}.txt"], COLLIDE);
}

#[test]
fn pack_refuses_micro_sign_and_mu() {
    pack_refuses(&["\u{b5}", "\u{3bc}"], COLLIDE);
}

#[test]
fn pack_refuses_sharp_s_and_ss() {
    pack_refuses(&["stra\u{df}e", "STRASSE"], COLLIDE);
}

#[test]
fn pack_refuses_directories_in_case() {
    pack_refuses(
        &["Dir/a.txt", "dir/b.txt"],
        &format!("directories \"Dir\" (of entry \"Dir/a.txt\") and \"dir\" (of entry \"dir/b.txt\") {COLLIDE}"),
    );
}

#[test]
fn pack_refuses_file_and_folded_directory() {
    pack_refuses(&["SS", "\u{df}/x"], "entry \"SS\" is a file but entry \"\u{df}/x\" needs it to be a directory");
}

#[test]
fn pack_refuses_superscript_device_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    keygen(root, "k");
    write(&root.join("src"), "LPT\u{b9}.txt", b"x", 0o644);
    pack_at(root, &root.join("src"), "out.airlock", &[])
        .expect_code(1)
        .expect_stderr("a path component is a reserved device name (LPT\u{b9}.txt)");
    assert!(!root.join("out.airlock").exists());
}
