//! Adversarial corpus, part 2: validly signed but malicious bundles (an insider, or a
//! stolen signing key). Every manifest here is signed by the trusted key `k` with a
//! checksum list that matches it, so the signature layer passes and each case is rejected
//! for the reason its name gives; the message assertion checks that reason specifically.
//!
//! Hostile manifests are written with `kit::Wire`, a field-for-field copy of
//! the wire form that serde_cbor encodes to airlock's canonical bytes, so the decoder's
//! rules (not its canonical-form check) do the rejecting. Hostile tar and zstd structures
//! are written byte by byte with `kit`'s forge (tests/it/kit/forge.rs).

use crate::kit::*;

/// A manifest whose one changed entry path is `path`; the payload is next's own (the
/// path is refused before any payload is read).
fn signed_path(case: &Case, path: &str) {
    signed_variant(case, "evil.airlock", |w| w.entries[1].path = path.to_owned(), None);
}

macro_rules! hostile_path {
    ($($name:ident: $path:expr => $message:expr;)*) => {$(
        #[test]
        fn $name() {
            let case = Case::new();
            signed_path(&case, $path);
            case.expect_rejected("evil.airlock", $message);
        }
    )*};
}

hostile_path! {
    path_parent_traversal: "../x" => "entry \"../x\": path has a `.` or `..` component";
    path_deep_parent_traversal: "../../../../../../tmp/x" => "path has a `.` or `..` component";
    path_data_dot_dot: "data/../../x" => "entry \"data/../../x\": path has a `.` or `..` component";
    path_dot_component: "xx/./cd.txt" => "path has a `.` or `..` component";
    path_absolute: "/etc/passwd" => "entry \"/etc/passwd\": path is absolute";
    path_double_slash_absolute: "//tmp/x" => "path is absolute";
    path_empty_component: "xx//cd.txt" => "path has an empty component";
    path_trailing_slash: "xx/" => "path has an empty component";
    path_empty: "" => "entry \"\": path is empty";
    path_backslash_traversal: "..\\..\\Temp\\evil.txt" => "path contains the forbidden character '\\\\'";
    path_backslash: "xx\\cd.txt" => "path contains the forbidden character '\\\\'";
    path_drive_letter: "C:/Windows/x" => "path contains the forbidden character ':'";
    path_drive_relative: "C:..\\x" => "path contains the forbidden character ':'";
    path_alternate_data_stream: "xx:stream" => "path contains the forbidden character ':'";
    path_nul: "xx\0/cd.txt" => "path contains the forbidden character '\\0'";
    path_newline: "xx\n/cd.txt" => "path contains the forbidden character '\\n'";
    path_escape_sequence: "xx\u{1b}[2J" => "path contains the forbidden character '\\u{1b}'";
    path_delete_char: "xx\u{7f}" => "path contains the forbidden character '\\u{7f}'";
    path_c1_control: "xx\u{85}" => "path contains the forbidden character '\\u{85}'";
    path_bidi_override: "xx/evil\u{202e}txt.exe" => "path contains the forbidden character '\\u{202e}'";
    path_zero_width_joiner: ".g\u{200c}it/config" => "path contains the forbidden character '\\u{200c}'";
    path_paren_breaks_checksum_list: "x) = 00\nSHA256 (y" => "path contains the forbidden character";
    path_component_too_long: &"n".repeat(256) => "a path component is longer than 255 bytes";
    path_too_long: &vec!["abcdefghi"; 103].join("/") => "path is longer than 1024 bytes";
    path_too_deep: &vec!["d"; 65].join("/") => "path is deeper than 64 components";
    path_trailing_dot: "xx./cd.txt" => "a path component ends with `.` or a space";
    path_trailing_space: "xx /cd.txt" => "a path component ends with `.` or a space";
    path_windows_device: "xx/CON.txt" => "a path component is a reserved device name (CON.txt)";
    path_windows_serial_device: "com1" => "a path component is a reserved device name (com1)";
    path_nfd: "xx/e\u{301}.txt" => "path is not in Unicode NFC form";
    path_metadata_dir_log: ".airlock/log" => "path names or enters the mirror's metadata directory `.airlock`";
    path_metadata_dir_itself: ".airlock" => "path names or enters the mirror's metadata directory";
    path_metadata_dir_other_case: ".AirLock/FORMAT" => "path names or enters the mirror's metadata directory";
}

/// Two entries that collide on a case-insensitive filesystem (macOS, Windows).
#[test]
fn paths_colliding_case_insensitively() {
    let case = Case::new();
    signed_files(&case, "evil.airlock", &[("README", b"one", 0o644), ("readme", b"two", 0o644)]);
    case.expect_rejected(
        "evil.airlock",
        "entries \"README\" and \"readme\" collide on a case-insensitive or normalising filesystem",
    );
}

/// Two NFC paths that collide once case is folded (É and é): the NFD spelling of one is
/// refused outright (path_nfd), this catches the rest of the class.
#[test]
fn paths_colliding_after_normalisation_and_case_folding() {
    let case = Case::new();
    signed_files(&case, "evil.airlock", &[("\u{c9}t\u{e9}", b"one", 0o644), ("\u{e9}t\u{e9}", b"two", 0o644)]);
    case.expect_rejected("evil.airlock", "collide on a case-insensitive or normalising filesystem");
}

/// NFC `é` and NFD `e + U+0301` side by side: the NFD one is refused.
#[test]
fn paths_nfc_and_nfd_spellings_of_one_name() {
    let case = Case::new();
    signed_files(&case, "evil.airlock", &[("caf\u{e9}", b"one", 0o644), ("cafe\u{301}", b"two", 0o644)]);
    case.expect_rejected("evil.airlock", "entry \"cafe\\u{301}\": path is not in Unicode NFC form");
}

#[test]
fn file_that_is_also_a_directory_of_another() {
    let case = Case::new();
    signed_files(&case, "evil.airlock", &[("a", b"file", 0o644), ("a/b", b"below a file", 0o644)]);
    case.expect_rejected("evil.airlock", "entry \"a\" is a file but entry \"a/b\" needs it to be a directory");
}

#[test]
fn file_that_is_a_directory_of_another_case_insensitively() {
    let case = Case::new();
    signed_files(&case, "evil.airlock", &[("A", b"file", 0o644), ("a/b", b"below a file", 0o644)]);
    case.expect_rejected("evil.airlock", "entry \"A\" is a file but entry \"a/b\" needs it to be a directory");
}

#[test]
fn entry_listed_twice() {
    let case = Case::new();
    signed_variant(
        &case,
        "evil.airlock",
        |w| {
            let dup = w.entries[0].clone();
            w.entries.insert(1, dup);
        },
        None,
    );
    case.expect_rejected(
        "evil.airlock",
        "entries are not strictly sorted: \"a.txt\" then \"a.txt\" (duplicate or reordered)",
    );
}

#[test]
fn entries_out_of_order() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.entries.swap(0, 2), None);
    case.expect_rejected("evil.airlock", "entries are not strictly sorted");
}

#[test]
fn setuid_mode() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.entries[2].mode = 0o4755, None);
    case.expect_rejected("evil.airlock", "entry \"z.bin\": mode 4755 is not 644 or 755");
}

#[test]
fn world_writable_mode() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.entries[0].mode = 0o777, None);
    case.expect_rejected("evil.airlock", "mode 777 is not 644 or 755");
}

#[test]
fn signature_link_to_a_non_sibling() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.entries[0].signatures = vec!["xx/cd.txt".into()], None);
    case.expect_rejected("evil.airlock", "links signature \"xx/cd.txt\", which is not a sibling");
}

#[test]
fn removal_list_in_version_1() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.removed = vec!["a.txt".into()], None);
    case.expect_rejected("evil.airlock", "`removed` must be empty in format version 1");
}

#[test]
fn removal_of_a_path_outside_the_mirror() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.removed = vec!["../../etc/passwd".into()], None);
    case.expect_rejected("evil.airlock", "entry \"../../etc/passwd\": path has a `.` or `..` component");
}

#[test]
fn label_with_terminal_escapes() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.label = Some("weekly\u{1b}]0;owned\u{7}".into()), None);
    case.expect_rejected("evil.airlock", "label contains control characters");
}

#[test]
fn unknown_format_version() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.version = 4, None);
    case.expect_rejected("evil.airlock", "unsupported format version");
}

#[test]
fn bad_channel_name() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.channel = "../default".into(), None);
    case.expect_rejected("evil.airlock", "channel name \"../default\" must be");
}

/// The manifest's entry path rewritten to `../cd.txt` in place and signed again with the
/// trusted key: refused by the path rules, nothing written above the mirror.
#[test]
fn path_traversal_in_validly_signed_manifest() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let manifest = &mut parts.head[0].1;
    let at = manifest.windows(9).position(|w| w == b"xx/cd.txt").unwrap();
    manifest[at..at + 9].copy_from_slice(b"../cd.txt");
    resign(&mut parts.head, &case.path("k.sec"));
    case.put("evil.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("evil.airlock", "entry \"../cd.txt\": path has a `.` or `..` component");
    assert!(!case.path("canary/cd.txt").exists());
}

/// Signed by the trusted key with a one-hour expiry, two hours ago: `import` and `verify`
/// both refuse it. (The freshness tests in tests/it/adversarial.rs cover the clock floor.)
#[test]
fn expired_bundle() {
    let case = Case::new();
    let two_hours_ago =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 7200).to_string();
    run(case.pack_command("stale.airlock", &["--expires", "1h"]).env("AIRLOCK_NOW", two_hours_ago)).expect_code(0);
    case.expect_rejected("stale.airlock", "bundle expired at");
    case.verify("stale.airlock", &["k"]).expect_code(1).expect_stderr("expired");
}

// ---------------------------------------------------------------------------------------
// manifest encoding

/// A manifest with two of its map keys (`label`, `meta`) swapped: valid CBOR with the same
/// content, so a second implementation could read it, but not the canonical form.
#[test]
fn manifest_not_in_canonical_form() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let wire = Wire::decode(&parts.head[0].1);
    let cbor = |v: &dyn erased::Cbor| v.bytes();
    let mut bytes = up_to_sequence(&wire);
    for (k, v) in [
        ("sequence", cbor(&wire.sequence)),
        ("previous", cbor(&wire.previous)),
        ("meta", cbor(&wire.meta)),
        ("label", cbor(&wire.label)),
        ("entries", cbor(&wire.entries)),
        ("removed", cbor(&wire.removed)),
        ("carried", cbor(&all_carried(wire.entries.len()))),
        ("base", cbor(&wire.base)),
    ] {
        bytes.extend(serde_cbor::to_vec(&k).unwrap());
        bytes.extend(v);
    }
    let head = signed_head(&bytes, &wire.sums(), &[&case.secret("k")]);
    case.put("evil.airlock", &assemble(&head, &parts.payload));
    case.expect_rejected("evil.airlock", "manifest: not in canonical encoding");
}

mod erased {
    pub trait Cbor {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Cbor for T {
        fn bytes(&self) -> Vec<u8> {
            serde_cbor::to_vec(self).unwrap()
        }
    }
}

/// The canonical bytes of `wire` up to (not including) the `sequence` key: the prefix and
/// the fields the trust policy reads before the signatures are checked (`bundle_id`,
/// `created`, `expires`, `channel`), so hostile CBOR after them reaches the decoder.
fn up_to_sequence(wire: &Wire) -> Vec<u8> {
    let bytes = wire.encode();
    let key = serde_cbor::to_vec(&"sequence").unwrap();
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    bytes[..at].to_vec()
}

/// An integer written in a longer form than needed (size 6 as a 64-bit integer).
#[test]
fn manifest_with_non_shortest_integer() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let wire = Wire::decode(&parts.head[0].1);
    let good = wire.encode();
    let key = b"\x64sizeX"; // text(4) "size", then the value
    let at = good.windows(5).position(|w| w == &key[..5]).unwrap() + 5;
    assert!(good[at] < 24, "first size is small");
    let mut bytes = good[..at].to_vec();
    bytes.push(0x1b);
    bytes.extend_from_slice(&(good[at] as u64).to_be_bytes());
    bytes.extend_from_slice(&good[at + 1..]);
    let head = signed_head(&bytes, &wire.sums(), &[&case.secret("k")]);
    case.put("evil.airlock", &assemble(&head, &parts.payload));
    case.expect_rejected("evil.airlock", "manifest: not in canonical encoding");
}

#[test]
fn manifest_with_trailing_bytes() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let wire = Wire::decode(&parts.head[0].1);
    let mut bytes = wire.encode();
    bytes.push(0xf6);
    let head = signed_head(&bytes, &wire.sums(), &[&case.secret("k")]);
    case.put("evil.airlock", &assemble(&head, &parts.payload));
    case.expect_rejected("evil.airlock", "manifest: cannot decode");
}

#[test]
fn manifest_with_unknown_field() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let wire = Wire::decode(&parts.head[0].1);
    let good = wire.encode();
    // 15 pairs: the fourteen, then "run": "rm -rf /".
    let mut bytes = good.clone();
    bytes[3] = 0xaf;
    bytes.extend(serde_cbor::to_vec(&"run").unwrap());
    bytes.extend(serde_cbor::to_vec(&"rm -rf /").unwrap());
    let head = signed_head(&bytes, &wire.sums(), &[&case.secret("k")]);
    case.put("evil.airlock", &assemble(&head, &parts.payload));
    case.expect_rejected("evil.airlock", "manifest: does not start with the airlock manifest prefix");
    // The map-size byte is part of the fixed prefix; with it intact and an extra key
    // inside an entry instead, serde's deny_unknown_fields names it.
    let mut wire2 = wire.clone();
    wire2.entries[0].path = "a.txt".into();
    let mut bytes = wire2.encode();
    let at = bytes.windows(5).position(|w| w == b"\xa5dpat").unwrap();
    bytes[at] = 0xa6;
    let end = at + 1 + serde_cbor::to_vec(&wire2.entries[0]).unwrap().len() - 1;
    let mut extra = serde_cbor::to_vec(&"exec").unwrap();
    extra.extend(serde_cbor::to_vec(&true).unwrap());
    bytes.splice(end..end, extra);
    let head = signed_head(&bytes, &wire.sums(), &[&case.secret("k")]);
    case.put("evil2.airlock", &assemble(&head, &parts.payload));
    case.expect_rejected("evil2.airlock", "manifest: cannot decode: unknown field `exec`");
}

/// Valid leading fields, then 100 000 nested arrays as `sequence`: a stack-exhaustion
/// attempt on the decoder of a validly signed manifest.
#[test]
fn deeply_nested_cbor() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut bytes = up_to_sequence(&Wire::decode(&parts.head[0].1));
    bytes.extend(serde_cbor::to_vec(&"sequence").unwrap());
    bytes.extend(std::iter::repeat_n(0x81u8, 100_000));
    bytes.push(0x00);
    let head = signed_head(&bytes, b"", &[&case.secret("k")]);
    case.put("evil.airlock", &assemble(&head, &parts.payload));
    case.expect_rejected("evil.airlock", "manifest: cannot decode");
}

/// Strings and arrays that claim 2^62 elements or bytes in a small manifest: the decoder
/// must not allocate from a declared length.
#[test]
fn cbor_lengths_claiming_huge_sizes() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let wire = Wire::decode(&parts.head[0].1);
    for (i, (key, claim)) in [
        ("label", &[0x7b, 0x40, 0, 0, 0, 0, 0, 0, 0][..]), // text of 2^62 bytes
        ("previous", &[0x5b, 0x40, 0, 0, 0, 0, 0, 0, 0][..]), // bytes of 2^62
        ("entries", &[0x9b, 0x40, 0, 0, 0, 0, 0, 0, 0][..]), // array of 2^62 items
        ("meta", &[0xbb, 0x40, 0, 0, 0, 0, 0, 0, 0][..]),  // map of 2^62 pairs
    ]
    .iter()
    .enumerate()
    {
        let good = wire.encode();
        let k = serde_cbor::to_vec(key).unwrap();
        let at = good.windows(k.len()).position(|w| w == k).unwrap() + k.len();
        let mut bytes = good[..at].to_vec();
        bytes.extend_from_slice(claim);
        bytes.extend_from_slice(&[0u8; 16]);
        let head = signed_head(&bytes, b"", &[&case.secret("k")]);
        let name = format!("evil{i}.airlock");
        case.put(&name, &assemble(&head, &parts.payload));
        case.expect_rejected(&name, "manifest: cannot decode");
    }
}

/// A manifest with 300 000 entries of `{}`: large but within the member limit; rejected
/// for its content, in bounded time.
#[test]
fn manifest_with_many_bogus_entries() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let wire = Wire::decode(&parts.head[0].1);
    let good = wire.encode();
    let key = serde_cbor::to_vec(&"entries").unwrap();
    let at = good.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    let mut bytes = good[..at].to_vec();
    bytes.extend_from_slice(&[0x9a, 0x00, 0x04, 0x93, 0xe0]); // array of 300 000
    bytes.extend(std::iter::repeat_n(0xa0u8, 300_000));
    bytes.extend(serde_cbor::to_vec(&"removed").unwrap());
    bytes.push(0x80);
    let head = signed_head(&bytes, b"", &[&case.secret("k")]);
    case.put("evil.airlock", &assemble(&head, &parts.payload));
    case.expect_rejected("evil.airlock", "manifest: cannot decode: missing field `path`");
}

// ---------------------------------------------------------------------------------------
// payload members that are not what the manifest says

/// Replaces the member for `name` with `replacement` in next's payload.
fn replace_member(case: &Case, name: &str, replacement: Vec<u8>) {
    let parts = case.parts("next.airlock");
    let (start, .., end) = span(&parts.payload, name);
    let mut payload = parts.payload[..start].to_vec();
    payload.extend(replacement);
    payload.extend_from_slice(&parts.payload[end..]);
    case.put("evil.airlock", &assemble(&parts.head, &payload));
}

macro_rules! special_member {
    ($($name:ident: $kind:expr, $link:expr => $message:expr;)*) => {$(
        #[test]
        fn $name() {
            let case = Case::new();
            replace_member(&case, "data/a.txt", raw_header(b"data/a.txt", 0, 0o644, $kind, $link));
            case.expect_rejected("evil.airlock", $message);
        }
    )*};
}

special_member! {
    symlink_member_where_a_file_is_expected: b'2', b"/etc/passwd" => "member \"data/a.txt\" is a symbolic link; only regular files are allowed";
    symlink_member_to_parent: b'2', b"../../.." => "is a symbolic link";
    hardlink_member_where_a_file_is_expected: b'1', b"/etc/shadow" => "member \"data/a.txt\" is a hard link";
    char_device_member: b'3', b"" => "is a character device";
    block_device_member: b'4', b"" => "is a block device";
    directory_member_where_a_file_is_expected: b'5', b"" => "is a directory";
    fifo_member: b'6', b"" => "is a fifo";
    contiguous_file_member: b'7', b"" => "is a contiguous file";
    gnu_long_name_member: b'L', b"" => "is a GNU long name";
    gnu_sparse_member: b'S', b"" => "is a GNU sparse file";
    old_style_regular_file_member: 0, b"" => "is a pre-POSIX regular file (type flag NUL); only regular files are allowed";
}

/// A symlink where the manifest member should be.
#[test]
fn symlink_member_in_the_head() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut head_tar = raw_header(b"airlock/manifest.cbor", 0, 0o644, b'2', b"/etc/passwd");
    for (name, content) in &parts.head[1..] {
        head_tar.extend(member(name, content, 0o644));
    }
    let mut bad = zstd(&head_tar);
    bad.extend_from_slice(&parts.payload_frames);
    case.put("evil.airlock", &bad);
    case.expect_rejected("evil.airlock", "member \"airlock/manifest.cbor\" is a symbolic link");
}

/// A hard link *to an earlier member* with the expected name and size 0 (a tar trick to
/// alias files), placed where the empty member would be.
#[test]
fn hardlink_to_an_earlier_member() {
    let case = Case::new();
    signed_files(&case, "ok.airlock", &[("a", b"", 0o644), ("b", b"", 0o644)]);
    let parts = case.parts("ok.airlock");
    let (start, .., end) = span(&parts.payload, "data/b");
    let mut payload = parts.payload[..start].to_vec();
    payload.extend(raw_header(b"data/b", 0, 0o644, b'1', b"data/a"));
    payload.extend_from_slice(&parts.payload[end..]);
    case.put("evil.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("evil.airlock", "member \"data/b\" is a hard link");
}

#[test]
fn pax_header_renames_the_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (start, ..) = span(&parts.payload, "data/a.txt");
    let mut payload = parts.payload[..start].to_vec();
    payload.extend(pax_header(b'x', &[("path", b"../../evil")]));
    payload.extend_from_slice(&parts.payload[start..]);
    case.put("evil.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("evil.airlock", "expected member \"data/a.txt\", found \"../../evil\"");
}

/// A ustar name that escapes, renamed back to the expected name by PAX: the name matches,
/// the bytes are not the canonical ones, so a second tar parser cannot disagree.
#[test]
fn pax_header_renames_a_hostile_name_to_the_expected_one() {
    let case = Case::new();
    let content = b"alpha two\n";
    let mut m = pax_header(b'x', &[("path", b"data/a.txt")]);
    m.extend(raw_header(b"../../../tmp/evil", content.len() as u64, 0o644, b'0', b""));
    m.extend_from_slice(content);
    pad(&mut m);
    replace_member(&case, "data/a.txt", m);
    case.expect_rejected("evil.airlock", "member \"data/a.txt\" header is not in the canonical form");
}

/// PAX size larger than the ustar size: a member that would swallow the next one (the
/// tar-rs/tokio-tar smuggling class, RUSTSEC-2026-0068).
#[test]
fn pax_header_sets_a_larger_size() {
    let case = Case::new();
    let content = b"alpha two\n";
    let mut m = pax_header(b'x', &[("size", b"1034")]);
    m.extend(raw_header(b"data/a.txt", content.len() as u64, 0o644, b'0', b""));
    m.extend_from_slice(content);
    pad(&mut m);
    replace_member(&case, "data/a.txt", m);
    case.expect_rejected("evil.airlock", "member \"data/a.txt\" has size 1034 but the manifest says 10");
}

/// PAX size equal to the manifest's while the ustar header says 0 (TARmageddon shape).
#[test]
fn pax_size_disagrees_with_ustar_size() {
    let case = Case::new();
    let content = b"alpha two\n";
    let mut m = pax_header(b'x', &[("size", b"10")]);
    m.extend(raw_header(b"data/a.txt", 0, 0o644, b'0', b""));
    m.extend_from_slice(content);
    pad(&mut m);
    replace_member(&case, "data/a.txt", m);
    case.expect_rejected("evil.airlock", "member \"data/a.txt\" header is not in the canonical form");
}

#[test]
fn pax_header_with_extra_keys() {
    for (i, key) in ["mtime", "uid", "uname", "SCHILY.xattr.security.capability", "GNU.sparse.size", "hdrcharset"]
        .iter()
        .enumerate()
    {
        let case = Case::new();
        let content = b"alpha two\n";
        let mut m = pax_header(b'x', &[(*key, &b"0"[..])]);
        m.extend(member("data/a.txt", content, 0o644));
        replace_member(&case, "data/a.txt", m);
        let out = case.expect_rejected("evil.airlock", "member \"data/a.txt\" header is not in the canonical form");
        assert!(out.code == 1, "{i}");
    }
}

#[test]
fn global_pax_header() {
    let case = Case::new();
    let mut m = pax_header(b'g', &[("path", b"../evil")]);
    m.extend(member("data/a.txt", b"alpha two\n", 0o644));
    replace_member(&case, "data/a.txt", m);
    case.expect_rejected("evil.airlock", "is a global PAX header; only regular files are allowed");
}

#[test]
fn two_pax_headers_in_a_row() {
    let case = Case::new();
    let mut m = pax_header(b'x', &[("path", b"data/a.txt")]);
    m.extend(pax_header(b'x', &[("path", b"../evil")]));
    m.extend(member("data/a.txt", b"alpha two\n", 0o644));
    replace_member(&case, "data/a.txt", m);
    case.expect_rejected("evil.airlock", "two extended headers in a row");
}

#[test]
fn pax_header_too_large() {
    let case = Case::new();
    let mut m = raw_header(b"airlock/pax-header", 1 << 30, 0o644, b'x', b"");
    m.extend_from_slice(&[0u8; 512]);
    replace_member(&case, "data/a.txt", m);
    case.expect_rejected("evil.airlock", "PAX header of 1073741824 bytes is too large");
}

#[test]
fn pax_path_with_nul() {
    let case = Case::new();
    let mut m = pax_header(b'x', &[("path", b"data/a.txt\0../../evil")]);
    m.extend(member("data/a.txt", b"alpha two\n", 0o644));
    replace_member(&case, "data/a.txt", m);
    case.expect_rejected("evil.airlock", "expected member \"data/a.txt\", found \"data/a.txt\\0../../evil\"");
}

/// A ustar header whose size field (for the expected member) differs from the manifest.
#[test]
fn member_size_differs_from_manifest() {
    let case = Case::new();
    let mut m = raw_header(b"data/a.txt", 5, 0o644, b'0', b"");
    m.extend_from_slice(b"alpha");
    pad(&mut m);
    replace_member(&case, "data/a.txt", m);
    case.expect_rejected("evil.airlock", "member \"data/a.txt\" has size 5 but the manifest says 10");
}

/// Declared size (manifest and header agree, signed) smaller than what the member holds:
/// the rest lands in the padding, which must be zero.
#[test]
fn declared_size_smaller_than_the_member() {
    let case = Case::new();
    let real = b"alpha two\nand a hidden tail\n";
    let declared = &real[..4];
    let mut m = airlock::format::tar::encode_header("data/a.txt", 4, 0o644);
    m.extend_from_slice(real);
    pad(&mut m);
    let parts = case.parts("next.airlock");
    let (start, .., end) = span(&parts.payload, "data/a.txt");
    let mut payload = parts.payload[..start].to_vec();
    payload.extend(m);
    payload.extend_from_slice(&parts.payload[end..]);
    signed_variant(
        &case,
        "evil.airlock",
        |w| {
            w.entries[0].size = 4;
            w.entries[0].sha256 = sha256(declared);
        },
        Some(payload),
    );
    case.expect_rejected("evil.airlock", "member data/a.txt: non-zero bytes in the padding");
}

/// Declared size larger than the member: the signed size and hash cover the member *and*
/// the end-of-archive marker after it, so the member checks out and the archive does not.
#[test]
fn declared_size_larger_than_the_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (start, data, size, _) = span(&parts.payload, "data/z.bin");
    let swallowed = parts.payload[data..].to_vec(); // content, padding, end marker
    let mut payload = parts.payload[..start].to_vec();
    payload.extend(airlock::format::tar::encode_header("data/z.bin", swallowed.len() as u64, 0o755));
    payload.extend_from_slice(&swallowed);
    assert!(size < swallowed.len());
    signed_variant(
        &case,
        "evil.airlock",
        |w| {
            w.entries[2].size = swallowed.len() as u64;
            w.entries[2].sha256 = sha256(&swallowed);
        },
        Some(payload),
    );
    case.expect_rejected("evil.airlock", "end of archive: bundle is truncated");
}

/// A signed entry size of 2^60 bytes: beyond the format's limit on the total payload
/// (FORMAT.md §11), so a rejection (exit 1) before any free-space check, by `import` and by
/// `verify` alike.
#[test]
fn huge_declared_entry_size() {
    let case = Case::new();
    signed_variant(&case, "evil.airlock", |w| w.entries[2].size = 1 << 60, None);
    let msg = "manifest declares 1152921504606847000 bytes of payload in 3 entries, more than the format's limit"; /* 2^60 + 24 */
    case.expect_rejected("evil.airlock", msg);
    run(airlock().arg("verify").arg(case.path("evil.airlock")).arg("--trust").arg(case.path("k.pub")).arg("--quiet"))
        .expect_code(1)
        .expect_stderr(msg);
}

/// Entry sizes whose sum overflows 64 bits: must not wrap around to a small total that
/// passes the checks (or panic); the exact total is over the format's limit.
#[test]
fn declared_sizes_overflowing_the_total() {
    let case = Case::new();
    signed_variant(
        &case,
        "evil.airlock",
        |w| {
            w.entries[0].size = u64::MAX;
            w.entries[2].size = u64::MAX;
        },
        None,
    );
    case.expect_rejected("evil.airlock", "more than the format's limit");
}

/// A head member whose header declares a 1 TiB manifest: refused from the header, before
/// anything is allocated or read.
#[test]
fn huge_declared_manifest_size() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut head_tar = airlock::format::tar::encode_header("airlock/manifest.cbor", 1 << 40, 0o644);
    head_tar.extend_from_slice(&[0u8; 4096]);
    let mut bad = zstd(&head_tar);
    bad.extend_from_slice(&parts.payload_frames);
    case.put("evil.airlock", &bad);
    case.expect_rejected(
        "evil.airlock",
        "airlock/manifest.cbor of 1099511627776 bytes exceeds the limit of 2147483648 bytes",
    );
}

#[test]
fn oversized_signature_member() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let mut sig = parts.head[1].1.clone();
    sig.extend(std::iter::repeat_n(b'A', 5000));
    parts.head[1].1 = sig;
    case.put("evil.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("evil.airlock", "exceeds the limit of 4096 bytes");
}

#[test]
fn too_many_signature_members() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let template = parts.head[1].1.clone();
    let text = String::from_utf8(template).unwrap();
    let mut head = vec![parts.head[0].clone()];
    for i in 0..300u64 {
        let id = (i + 1).to_be_bytes();
        head.push((format!("airlock/signatures/{}.sig", hex(&id)), relabel(&text, &id).into_bytes()));
    }
    head.push(parts.head[2].clone());
    case.put("evil.airlock", &assemble(&head, &parts.payload));
    case.expect_rejected("evil.airlock", "too large or too many signatures");
}

fn relabel(sig_file: &str, keynum: &[u8; 8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut lines = sig_file.lines();
    let comment = lines.next().unwrap();
    let mut raw = b64.decode(lines.next().unwrap()).unwrap();
    raw[2..10].copy_from_slice(keynum);
    format!("{comment}\n{}\n", b64.encode(raw))
}

// ---------------------------------------------------------------------------------------
// decompression bombs and hostile frame headers

/// A payload frame whose header asks for a 2 GiB window.
#[test]
fn zstd_frame_declaring_a_huge_window() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut bad = parts.head_frame.clone();
    bad.extend(handmade_frame(&parts.payload, 31, None, false));
    case.put("evil.airlock", &bad);
    case.expect_rejected("evil.airlock", "cannot read bundle: Frame requires too much memory for decoding");
}

/// The control for the hand-made frames: the same payload with a 1 MiB window imports.
#[test]
fn control_handmade_frame_with_a_small_window_imports() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut ok = parts.head_frame.clone();
    ok.extend(handmade_frame(&parts.payload, 20, Some(parts.payload.len() as u64), false));
    case.put("ok.airlock", &ok);
    case.import("ok.airlock", &["k"], &[]).expect_code(0);
}

/// A head frame whose header declares a 2 GiB window.
#[test]
fn zstd_head_frame_declaring_a_huge_window() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut head_tar = Vec::new();
    for (name, content) in &parts.head {
        head_tar.extend(member(name, content, 0o644));
    }
    let mut bad = handmade_frame(&head_tar, 31, None, false);
    bad.extend_from_slice(&parts.payload_frames);
    case.put("evil.airlock", &bad);
    case.expect_rejected("evil.airlock", "Frame requires too much memory for decoding");
}

/// Single-segment frame declaring a content size of 1 TiB (which is then its window).
#[test]
fn zstd_frame_declaring_a_huge_content_size() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut bad = parts.head_frame.clone();
    bad.extend(handmade_frame(&parts.payload, 20, Some(1 << 40), true));
    case.put("evil.airlock", &bad);
    case.expect_rejected("evil.airlock", "Frame requires too much memory for decoding");
}

/// A small window but a content size of 2^60 that the frame does not deliver: nothing is
/// allocated from it, and the mismatch is caught.
#[test]
fn zstd_frame_content_size_lies() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut bad = parts.head_frame.clone();
    bad.extend(handmade_frame(&parts.payload, 20, Some(1 << 60), false));
    case.put("evil.airlock", &bad);
    case.expect_rejected("evil.airlock", "cannot read bundle");
}

/// 32 KiB on disk that decompress to 1 GiB of zeros, where the first member should be:
/// rejected at the first block, long before the bomb is expanded.
#[test]
fn decompression_bomb_in_place_of_the_payload() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut bad = parts.head_frame.clone();
    bad.extend(rle_bomb(0, 8192));
    case.put("evil.airlock", &bad);
    let started = std::time::Instant::now();
    case.expect_rejected("evil.airlock", "member data/a.txt: missing: the archive ends before this manifest entry");
    assert!(started.elapsed().as_secs() < 20, "the bomb was expanded");
}

/// A bomb after a complete, valid payload (in its own frame): rejected at its first byte.
#[test]
fn decompression_bomb_after_the_payload() {
    let case = Case::new();
    let mut bad = case.bytes("next.airlock");
    bad.extend(rle_bomb(b'A', 8192));
    case.put("evil.airlock", &bad);
    let started = std::time::Instant::now();
    case.expect_rejected("evil.airlock", "trailing data after the end-of-archive marker");
    assert!(started.elapsed().as_secs() < 20, "the bomb was expanded");
}

/// A bomb of 'A's inside a member whose signed size is 10 bytes: the reader takes exactly
/// the declared bytes, then finds the padding is not zero.
#[test]
fn decompression_bomb_inside_a_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (start, ..) = span(&parts.payload, "data/a.txt");
    let mut bad = parts.head_frame.clone();
    if start > 0 {
        bad.extend(zstd(&parts.payload[..start]));
    }
    let mut header_frame = airlock::format::tar::encode_header("data/a.txt", 10, 0o644);
    header_frame.truncate(512);
    bad.extend(zstd(&header_frame));
    bad.extend(rle_bomb(b'A', 8192));
    case.put("evil.airlock", &bad);
    let started = std::time::Instant::now();
    case.expect_rejected("evil.airlock", "member data/a.txt: non-zero bytes in the padding");
    assert!(started.elapsed().as_secs() < 20, "the bomb was expanded");
}

// ---------------------------------------------------------------------------------------
// entries that conflict with what the mirror already holds (two-step attacks)

/// Bundle 1 put a file at `a.txt`; bundle 2 wants `a.txt/x`.
#[test]
fn entry_below_a_file_already_in_the_mirror() {
    let case = Case::new();
    signed_variant(
        &case,
        "evil.airlock",
        |w| {
            let mut e = w.entries[0].clone();
            e.path = "a.txt/x".into();
            w.entries.insert(1, e);
            w.entries.remove(0);
        },
        None,
    );
    case.expect_rejected(
        "evil.airlock",
        "entry \"a.txt/x\": the mirror has a file or link at \"a.txt\" where a directory is needed",
    );
}

/// The mirror has a directory `xx`; a bundle wants a file there.
#[test]
fn entry_where_the_mirror_has_a_directory() {
    let case = Case::new();
    signed_variant(
        &case,
        "evil.airlock",
        |w| {
            w.entries.truncate(1);
            let mut e = w.entries[0].clone();
            e.path = "xx".into();
            w.entries.push(e);
        },
        None,
    );
    case.expect_rejected("evil.airlock", "entry \"xx\": the mirror has a directory or link where this file goes");
}

/// Something outside airlock planted a symlink in the mirror pointing outside it; a later
/// bundle that writes below that name must not follow it.
#[test]
fn symlink_planted_in_the_mirror_is_not_followed() {
    let case = Case::new();
    std::fs::create_dir(case.path("outside")).unwrap();
    std::os::unix::fs::symlink(case.path("outside"), case.mirror().join("lnk")).unwrap();
    signed_variant(
        &case,
        "evil.airlock",
        |w| {
            let mut e = w.entries[0].clone();
            e.path = "lnk/pwned".into();
            w.entries.insert(1, e);
        },
        None,
    );
    case.expect_rejected("evil.airlock", "entry \"lnk/pwned\": the mirror has a file or link at \"lnk\"");
    assert_eq!(std::fs::read_dir(case.path("outside")).unwrap().count(), 0);
}
