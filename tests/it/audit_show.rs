//! Audit without the media (issue #14 item 2): `mirror show` and `inspect` on what a mirror
//! kept of past imports, hostile kept heads reported and never shown, and the README's
//! auditor block run exactly as written with the real signify-openbsd, GNU tar, zstd and
//! sha256sum.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::kit::*;

/// `ws/mirror` holding two imports of channel `vendor` (sequences 1 and 2); the bundle
/// files are removed afterwards, as the media would be.
fn mirror_with_two_imports() -> Workspace {
    let ws = Workspace::new();
    write(&ws.path("src"), "a/one.txt", b"one\n", 0o644);
    write(&ws.path("src"), "two.bin", &big_content(70_000), 0o755);
    ws.pack(&ws.path("src"), "b1.airlock", &["--channel", "vendor", "--label", "first"]).expect_code(0);
    ws.import("b1.airlock", "k", "mirror", &[]).expect_code(0);
    write(&ws.path("src"), "a/one.txt", b"one, again\n", 0o644);
    ws.pack(&ws.path("src"), "b2.airlock", &["--channel", "vendor"]).expect_code(0);
    ws.import("b2.airlock", "k", "mirror", &[]).expect_code(0);
    fs::remove_file(ws.path("b1.airlock")).unwrap();
    fs::remove_file(ws.path("b2.airlock")).unwrap();
    ws
}

fn show(ws: &Workspace, args: &[&str]) -> Run {
    run(airlock().arg("mirror").arg("show").arg(ws.path("mirror")).args(args))
}

fn json(r: &Run) -> serde_json::Value {
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "--json prints exactly one line:\n{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("stdout is JSON");
    assert_eq!(v["schema"], "airlock.mirror-show.v1");
    v
}

/// The kept heads' directory names (manifest digests), in the order the log names them.
fn kept_digests(ws: &Workspace) -> Vec<String> {
    let v = json(show(ws, &["--json"]).expect_code(0));
    v["imports"].as_array().unwrap().iter().map(|i| i["manifest_sha256"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn mirror_show_lists_every_kept_import_one_line_each() {
    let ws = mirror_with_two_imports();
    let listed = show(&ws, &[]);
    listed.expect_code(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert!(lines[0].starts_with("vendor:1  created "), "{}", listed.stdout);
    assert!(lines[1].starts_with("vendor:2  created "), "{}", listed.stdout);
    assert!(lines[0].contains("2 files") && lines[0].contains("(log line 1)"), "{}", listed.stdout);
    assert!(listed.stdout.contains("2 imports kept; log intact"), "{}", listed.stdout);

    let v = json(show(&ws, &["--json"]).expect_code(0));
    assert_eq!(v["ok"], true);
    assert_eq!(v["lock"], "shared");
    assert_eq!(v["log"]["intact"], true);
    let imports = v["imports"].as_array().unwrap();
    assert_eq!(imports.len(), 2);
    assert_eq!(imports[1]["channel"], "vendor");
    assert_eq!(imports[1]["sequence"], 2);
    assert_eq!(imports[1]["head_state"], "sound");
    assert_eq!(imports[1]["files"], 2);
    let signer = imports[1]["signers"][0].as_str().unwrap();
    assert!(signer.len() == 16 && signer.bytes().all(|b| b.is_ascii_hexdigit()), "{signer}");
}

#[test]
fn mirror_show_prints_a_past_import_and_rechecks_it_against_the_keys_given() {
    let ws = mirror_with_two_imports();
    let digests = kept_digests(&ws);
    let shown = show(&ws, &["vendor:1", "--trust", ws.path("k.pub").to_str().unwrap()]);
    shown.expect_code(0);
    let out = &shown.stdout;
    assert!(out.contains(&format!("manifest     sha256 {}", digests[0])), "{out}");
    assert!(out.contains("label        first"), "{out}");
    assert!(
        out.contains(&format!("valid against {}", ws.path("k.pub").display())) || out.contains("valid against --trust"),
        "{out}"
    );
    assert!(out.contains("SHA256SUMS.sig lists exactly the manifest's carried entries"), "{out}");
    assert!(out.contains("threshold    met: 1 of 1"), "{out}");
    assert!(out.contains("  a/one.txt") && out.contains("  two.bin"), "{out}");
    assert!(out.contains("755 "), "the entry table has the signed modes: {out}");

    // Without keys: what the log recorded, and said so.
    let unchecked = show(&ws, &["vendor:2"]);
    unchecked.expect_code(0);
    assert!(
        unchecked.stdout.contains("the log records it as a valid trusted signer at import (line 2)"),
        "{}",
        unchecked.stdout
    );

    // The same import by a digest prefix, and by a bare sequence, as JSON.
    for selector in [&digests[1][..8], "2", &digests[1].to_uppercase()] {
        let v = json(show(&ws, &[selector, "--json"]).expect_code(0));
        assert_eq!(v["ok"], true);
        assert_eq!(v["import"]["manifest_sha256"], digests[1].as_str());
        assert_eq!(v["import"]["manifest"]["sequence"], 2);
        assert_eq!(v["import"]["signatures"][0]["status"], "not_checked");
        assert_eq!(v["import"]["signatures"][0]["logged_signer"], true);
        assert_eq!(v["import"]["checksum_list"]["matches_manifest"], true);
        assert_eq!(v["import"]["entries"].as_array().unwrap().len(), 2);
    }
    let checked =
        json(show(&ws, &["vendor:2", "--json", "--trust", ws.path("k.pub").to_str().unwrap()]).expect_code(0));
    assert_eq!(checked["import"]["signatures"][0]["status"], "valid");
    assert_eq!(checked["import"]["check"]["threshold"], "met");
    assert_eq!(checked["import"]["checksum_list"]["state"], "verified");

    // Another key: the signature is not trusted, and the verdict says so (exit 1).
    ws.keygen("other");
    let other = show(&ws, &["vendor:2", "--trust", ws.path("other.pub").to_str().unwrap()]);
    other.expect_code(1);
    assert!(other.stdout.contains("unknown key") && other.stdout.contains("threshold    NOT met"), "{}", other.stdout);
}

#[test]
fn an_unknown_or_malformed_import_is_refused_naming_the_candidates() {
    let ws = mirror_with_two_imports();
    let unknown = show(&ws, &["vendor:9"]);
    unknown.expect_code(2).expect_stderr("no import of this mirror matches \"vendor:9\"");
    assert!(unknown.stderr.contains("vendor:1 ") && unknown.stderr.contains("vendor:2 "), "{}", unknown.stderr);
    let v = json(show(&ws, &["deadbeef", "--json"]).expect_code(2));
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "unknown_import");
    assert_eq!(v["error"]["exit"], 2);
    show(&ws, &["abc"]).expect_code(2).expect_stderr("give a manifest digest or a unique prefix of at least 8");
}

#[test]
fn a_tampered_kept_head_is_reported_and_never_shown() {
    let ws = mirror_with_two_imports();
    let digests = kept_digests(&ws);
    let kept = ws.path("mirror").join(".airlock/bundles").join(&digests[0]);
    let mut manifest = fs::read(kept.join("manifest.cbor")).unwrap();
    manifest.push(0);
    fs::write(kept.join("manifest.cbor"), &manifest).unwrap();

    let listed = show(&ws, &[]);
    listed.expect_code(1);
    assert!(listed.stdout.contains(&format!("vendor:1  DAMAGED .airlock/bundles/{}", digests[0])), "{}", listed.stdout);
    assert!(listed.stdout.contains("1 DAMAGED"), "{}", listed.stdout);

    let one = show(&ws, &["vendor:1"]);
    one.expect_code(1);
    assert!(one.stdout.contains("hashes to") && one.stdout.contains("not to its directory's name"), "{}", one.stdout);
    assert!(!one.stdout.contains("a/one.txt"), "a tampered head's entries are shown:\n{}", one.stdout);
    let v = json(show(&ws, &["vendor:1", "--json"]).expect_code(1));
    assert_eq!(v["ok"], false);
    assert_eq!(v["import"]["head_state"], "manifest_mismatch");
    assert!(v["import"]["manifest"].is_null() && v["import"]["entries"].as_array().unwrap().is_empty());

    // A signature file renamed to another key id is named, not used.
    let kept2 = ws.path("mirror").join(".airlock/bundles").join(&digests[1]).join("signatures");
    let sig = fs::read_dir(&kept2).unwrap().next().unwrap().unwrap().path();
    fs::rename(&sig, kept2.join("0000000000000000.sig")).unwrap();
    let renamed = show(&ws, &["vendor:2", "--trust", ws.path("k.pub").to_str().unwrap()]);
    renamed.expect_code(1);
    assert!(
        renamed.stdout.contains("UNUSABLE") && renamed.stdout.contains("renamed after the import"),
        "{}",
        renamed.stdout
    );
}

#[test]
fn inspect_on_a_kept_head_shows_it_instead_of_a_zstd_error() {
    let ws = mirror_with_two_imports();
    let digests = kept_digests(&ws);
    let kept = ws.path("mirror").join(".airlock/bundles").join(&digests[0]);
    for path in [kept.join("manifest.cbor"), kept.clone()] {
        let r = run(airlock().arg("inspect").arg(&path));
        r.expect_code(0);
        assert!(r.stdout.contains(&format!("manifest     sha256 {}", digests[0])), "{}", r.stdout);
        assert!(!r.stderr.contains("frame descriptor"), "{}", r.stderr);
    }
    // From inside the mirror, as an auditor would type it.
    let rel = format!(".airlock/bundles/{}/manifest.cbor", digests[1]);
    let r = run(airlock().current_dir(ws.path("mirror")).arg("inspect").arg(&rel).arg("--json"));
    r.expect_code(0);
    assert_eq!(json(&r)["import"]["manifest"]["sequence"], 2);
}

#[test]
fn mirror_show_writes_nothing_and_creates_no_lock_file() {
    let ws = mirror_with_two_imports();
    fs::remove_file(ws.path("mirror/.airlock/lock")).unwrap();
    let before = snapshot(&ws.path("mirror"), false);
    show(&ws, &[]).expect_code(0);
    let v = json(show(&ws, &["vendor:1", "--json"]).expect_code(0));
    assert_eq!(v["lock"], "none_no_lock_file");
    assert_eq!(snapshot(&ws.path("mirror"), false), before, "mirror show changed the mirror");
}

/// The fenced block of README.md's "For auditors" section that checks without airlock.
fn readme_stock_tool_block() -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks: Vec<&str> = readme.split("```sh\n").skip(1).filter_map(|b| b.split("```").next()).collect();
    let found: Vec<&&str> = blocks.iter().filter(|b| b.starts_with("# without airlock: a bundle\n")).collect();
    assert_eq!(found.len(), 1, "README.md must have exactly one block starting '# without airlock: a bundle'");
    found[0].to_string()
}

#[test]
fn the_readme_auditor_block_runs_as_written_with_stock_tools() {
    let ws = Workspace::new();
    write(&ws.path("src"), "a/one.txt", b"one\n", 0o644);
    write(&ws.path("src"), "b/two.bin", &big_content(70_000), 0o755);
    ws.pack(&ws.path("src"), "bundle.airlock", &[]).expect_code(0);
    ws.import("bundle.airlock", "k", "mirror", &[]).expect_code(0);
    fs::copy(ws.path("k.pub"), ws.path("transfer.pub")).unwrap();
    let mirror = ws.path("mirror");
    let before = snapshot(&mirror, false);

    // Only the documented placeholder is replaced: the mirror's (absolute) path.
    let script = readme_stock_tool_block().replace("/srv/mirror", mirror.to_str().unwrap());
    let r =
        run(Command::new("bash").arg("-e").arg("-o").arg("pipefail").arg("-c").arg(&script).current_dir(ws.dir.path()));
    r.expect_code(0);
    // signify -V prints it once per manifest check, and signify -C once before its file list.
    assert_eq!(r.stdout.matches("Signature Verified").count(), 4, "{}\n{}", r.stdout, r.stderr);
    for checked in ["data/a/one.txt: OK", "data/b/two.bin: OK"] {
        assert_eq!(r.stdout.matches(checked).count(), 2, "bundle and mirror both check {checked}:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("manifest.cbor: OK"), "{}", r.stdout);
    assert!(r.stdout.contains("untrusted comment: verify with airlock key "), "{}", r.stdout);
    assert_eq!(snapshot(&mirror, false), before, "the stock-tool check changed the mirror");

    // And it fails on a changed file in the mirror.
    fs::write(mirror.join("a/one.txt"), b"changed\n").unwrap();
    fs::remove_dir_all(ws.path("x")).unwrap();
    fs::remove_dir_all(ws.path("audit")).unwrap();
    let bad =
        run(Command::new("bash").arg("-e").arg("-o").arg("pipefail").arg("-c").arg(&script).current_dir(ws.dir.path()));
    assert_ne!(bad.code, 0, "{}", bad.stdout);
    assert!(
        bad.stdout.contains("data/a/one.txt: FAIL") || bad.stderr.contains("data/a/one.txt: FAIL"),
        "{}\n{}",
        bad.stdout,
        bad.stderr
    );
}
