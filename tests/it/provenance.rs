//! Producer signatures the registries publish, verified offline at import (issue 13), end to
//! end with real signed data nobody here wrote (fixtures/producer/, with their licences): a
//! Debian bookworm-updates slice (InRelease, indexes, two .debs) under a `[[repository]]`
//! rule, GNU hello's upstream `.asc` (which needs a SHA-1 binding), npm provenance bundles
//! and PEP 740 attestations. Each is accepted under the right policy, and each hostile
//! variant is rejected with exit 1, an error naming what, and the mirror unchanged.

use std::fs;
use std::path::{Path, PathBuf};

use crate::kit::*;

/// The Debian archive's key that signed the bookworm-updates InRelease fixture (12/bookworm
/// automatic signing key), and the second one (13/trixie).
const DEBIAN_12: &str = "4CB50190207B4758A3F73A796ED0E7B82643E131";
const DEBIAN_13: &str = "B8E5F13176D2A7A75220028078DBA3BC47EF2265";
/// The primary key of DEBIAN_12 (a signing subkey), as `policy check` lists the keyring.
const DEBIAN_12_PRIMARY: &str = "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8";
/// GNU hello's upstream signing key.
const HELLO_KEY: &str = "8ED396E37E38D471A00530D3A9553245FDE9B739";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const SIGSTORE_JS: &str = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main";
/// 2023-01-01T00:00:00Z: before every producer signature of the fixtures.
const BEFORE_SIGNATURES: &str = "1672531200";
const NPM_RULE: &str = "[[artifact]]\npath = \"npm/*.tgz\"\nkeys = [\"sigstore-js\"]\npredicate_types = [\"https://slsa.dev/provenance/v1\"]\n";

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/producer").join(rel)
}

fn cmd(ws: &Workspace, args: &[&str], now: Option<&str>) -> Run {
    let mut c = airlock();
    c.current_dir(ws.dir.path()).args(args).env("AIRLOCK_STATE_DIR", ws.path("state"));
    if let Some(t) = now {
        c.env("AIRLOCK_NOW", t);
    }
    run(&mut c)
}

/// Copies a fixture file into the source tree at `to`.
fn put(ws: &Workspace, from: &str, to: &str) {
    let dest = ws.path("src").join(to);
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::copy(fixture(from), dest).unwrap();
}

/// Packs `src` (at the clock `now`, when given: that is the bundle's `created`).
fn pack(ws: &Workspace, out: &str, now: Option<&str>) {
    cmd(ws, &["pack", "src", "-o", out, "--key", "k.sec", "--quiet", "--force", "--expires", "3650d"], now)
        .expect_code(0);
}

/// A policy: bundles signed by `k`, and `body` (keys, instances, rules). Fixture paths in
/// `body` are written relative to the fixture directory as `@/...`.
fn policy(ws: &Workspace, name: &str, body: &str) {
    let body = body.replace("@/", &fixture("").display().to_string());
    let text = format!(
        "version = 1\n[keys.transfer]\nfile = \"k.pub\"\n[[channel]]\nname = \"*\"\nsigners = [\"transfer\"]\n{body}"
    );
    fs::write(ws.path(name), text).unwrap();
}

fn import(ws: &Workspace, bundle: &str, policy: &str, now: Option<&str>) -> Run {
    cmd(ws, &["import", bundle, "--policy", policy, "--mirror", "m", "--allow-gap", "--init"], now)
}

/// Import must fail with exit 1 and every one of `message`, leaving the mirror as it was
/// (files, and no staging left); `verify` agrees.
fn assert_rejected(ws: &Workspace, bundle: &str, policy: &str, now: Option<&str>, message: &[&str]) {
    if !ws.path("m").exists() {
        cmd(ws, &["mirror", "init", "m"], None).expect_code(0);
    }
    assert_rejection_leaves_mirror(ws, "m", message, || import(ws, bundle, policy, now));
    cmd(ws, &["verify", bundle, "--policy", policy], now).expect_code(1);
}

// ---------------------------------------------------------------------------------------
// Debian

const DEBIAN_POLICY: &str = "[keys.debian]\nopenpgp = \"@/openpgp/debian-archive-keyring.gpg\"\n[[repository]]\nkind = \"debian\"\nroot = \"debian\"\nkeys = [\"debian\"]\nsuites = [\"bookworm-updates\"]\n";

const DEBS: [&str; 2] = [
    "pool/main/s/samba/samba-ad-dc_4.17.12+dfsg-0+deb12u2_all.deb",
    "pool/main/s/samba/python3-ldb-dev_2.6.2+samba4.17.12+dfsg-0+deb12u2_amd64.deb",
];

fn debian_tree(ws: &Workspace) {
    for rel in [
        "dists/bookworm-updates/InRelease",
        "dists/bookworm-updates/main/binary-amd64/Packages",
        "dists/bookworm-updates/main/binary-amd64/Packages.xz",
        "dists/bookworm-updates/main/source/Sources.xz",
    ]
    .iter()
    .chain(DEBS.iter())
    {
        put(ws, &format!("debian/repo/{rel}"), &format!("debian/{rel}"));
    }
}

#[test]
fn debian_repository_chain_is_verified_and_its_keyring_kept() {
    let ws = Workspace::new();
    debian_tree(&ws);
    pack(&ws, "deb.airlock", None);
    policy(&ws, "p.toml", DEBIAN_POLICY);
    let r = import(&ws, "deb.airlock", "p.toml", None);
    r.expect_code(0);
    for needle in [
        "debian/dists/bookworm-updates/InRelease: verified (debian-release)",
        DEBIAN_12,
        "codename: bookworm-updates",
        "debian/dists/bookworm-updates/main/binary-amd64/Packages.xz: verified (debian-index)",
        "debian/pool: verified (debian-pool); covered: 2; uncovered: 0",
        "trust material kept: .airlock/bundles/",
    ] {
        assert!(r.stdout.contains(needle), "{needle:?} missing from:\n{}", r.stdout);
    }
    // The keyring the rule used is kept beside the bundle's head, byte for byte.
    let keyring = fs::read(fixture("openpgp/debian-archive-keyring.gpg")).unwrap();
    let kept: Vec<PathBuf> = walkdir::WalkDir::new(ws.path("m/.airlock/bundles"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "gpg"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(fs::read(&kept[0]).unwrap(), keyring);
    // policy check describes the rule and the keyring's fingerprints.
    let r = cmd(&ws, &["policy", "check", "p.toml"], None);
    r.expect_code(0);
    assert!(r.stdout.contains("Debian tree \"debian\", suites bookworm-updates"), "{}", r.stdout);
    assert!(r.stdout.contains(DEBIAN_12_PRIMARY), "{}", r.stdout);
}

#[test]
fn debian_tampered_index_is_rejected() {
    let ws = Workspace::new();
    debian_tree(&ws);
    let packages = ws.path("src/debian/dists/bookworm-updates/main/binary-amd64/Packages");
    // Still a well-formed index: one field's value changed.
    let text = fs::read_to_string(&packages).unwrap().replacen("Priority: optional", "Priority: required", 1);
    fs::write(&packages, text).unwrap();
    pack(&ws, "deb.airlock", None);
    policy(&ws, "p.toml", DEBIAN_POLICY);
    assert_rejected(
        &ws,
        "deb.airlock",
        "p.toml",
        None,
        &["main/binary-amd64/Packages", "does not match the release file"],
    );
}

#[test]
fn debian_pool_file_not_listed_or_changed_is_rejected() {
    let ws = Workspace::new();
    debian_tree(&ws);
    write(&ws.path("src"), "debian/pool/main/e/evil/evil_1.0_all.deb", b"not a package", 0o644);
    pack(&ws, "extra.airlock", None);
    policy(&ws, "p.toml", DEBIAN_POLICY);
    assert_rejected(&ws, "extra.airlock", "p.toml", None, &["evil_1.0_all.deb", "listed by no verified"]);
    // uncovered = "report": carried and said so.
    policy(&ws, "lenient.toml", &format!("{DEBIAN_POLICY}uncovered = \"report\"\n"));
    let r = import(&ws, "extra.airlock", "lenient.toml", None);
    r.expect_code(0);
    assert!(r.stdout.contains("evil_1.0_all.deb: not covered (debian-pool)"), "{}", r.stdout);

    let ws = Workspace::new();
    debian_tree(&ws);
    let deb = ws.path("src/debian").join(DEBS[0]);
    let mut bytes = fs::read(&deb).unwrap();
    bytes[100] ^= 1;
    fs::write(&deb, bytes).unwrap();
    pack(&ws, "changed.airlock", None);
    policy(&ws, "p.toml", DEBIAN_POLICY);
    assert_rejected(&ws, "changed.airlock", "p.toml", None, &["samba-ad-dc", "lists it with 30344 bytes"]);
}

#[test]
fn debian_release_by_revoked_keys_or_dated_after_the_bundle_is_rejected() {
    let ws = Workspace::new();
    debian_tree(&ws);
    pack(&ws, "deb.airlock", None);
    policy(
        &ws,
        "revoked.toml",
        &format!(
            "{DEBIAN_POLICY}[[revoked]]\nfingerprint = \"{DEBIAN_12}\"\nreason = \"test\"\n[[revoked]]\nfingerprint = \"{DEBIAN_13}\"\nreason = \"test\"\n"
        ),
    );
    assert_rejected(&ws, "deb.airlock", "revoked.toml", None, &["InRelease", "no valid signature", "revoked: test"]);

    // A bundle created before the archive signed its InRelease cannot carry it.
    let ws = Workspace::new();
    debian_tree(&ws);
    pack(&ws, "early.airlock", Some(BEFORE_SIGNATURES));
    policy(&ws, "p.toml", DEBIAN_POLICY);
    assert_rejected(
        &ws,
        "early.airlock",
        "p.toml",
        Some(BEFORE_SIGNATURES),
        &["debian/dists/bookworm-updates/InRelease"],
    );
}

#[test]
fn debian_release_moved_to_another_suite_is_rejected() {
    let ws = Workspace::new();
    for rel in ["dists/bookworm-updates/InRelease", "dists/bookworm-updates/main/binary-amd64/Packages"] {
        put(&ws, &format!("debian/repo/{rel}"), &format!("debian/{}", rel.replace("bookworm-updates", "trixie")));
    }
    pack(&ws, "moved.airlock", None);
    policy(&ws, "p.toml", &DEBIAN_POLICY.replace("suites = [\"bookworm-updates\"]", "suites = [\"trixie\"]"));
    assert_rejected(&ws, "moved.airlock", "p.toml", None, &["is for suite", "not \"trixie\""]);
}

// ---------------------------------------------------------------------------------------
// OpenPGP: GNU hello

fn hello_policy(ws: &Workspace, name: &str, extra_key: &str, extra: &str) {
    policy(
        ws,
        name,
        &format!(
            "[keys.hello]\nopenpgp = \"@/openpgp/hello-signing-key.asc\"\nfingerprints = [\"{HELLO_KEY}\"]\n{extra_key}[[artifact]]\npath = \"gnu/*.tar.gz\"\nkeys = [\"hello\"]\n{extra}"
        ),
    );
}

fn hello_tree(ws: &Workspace) {
    put(ws, "openpgp/hello_2.10.orig.tar.gz", "gnu/hello_2.10.orig.tar.gz");
    put(ws, "openpgp/hello_2.10.orig.tar.gz.asc", "gnu/hello_2.10.orig.tar.gz.asc");
}

#[test]
fn gnu_hello_asc_needs_allow_sha1_bindings() {
    let ws = Workspace::new();
    hello_tree(&ws);
    pack(&ws, "hello.airlock", None);
    hello_policy(&ws, "strict.toml", "", "");
    assert_rejected(&ws, "hello.airlock", "strict.toml", None, &["gnu/hello_2.10.orig.tar.gz", HELLO_KEY]);
    hello_policy(&ws, "sha1.toml", "allow_sha1_bindings = true\n", "");
    let r = import(&ws, "hello.airlock", "sha1.toml", None);
    r.expect_code(0);
    for needle in ["gnu/hello_2.10.orig.tar.gz.asc verified (openpgp) by", HELLO_KEY, "SHA-1 binding"] {
        assert!(r.stdout.contains(needle), "{needle:?} missing from:\n{}", r.stdout);
    }
}

#[test]
fn gnu_hello_hostile_variants_are_rejected() {
    // Wrong artifact: the signature of the real tarball over other bytes.
    let ws = Workspace::new();
    hello_tree(&ws);
    let tarball = ws.path("src/gnu/hello_2.10.orig.tar.gz");
    let mut bytes = fs::read(&tarball).unwrap();
    bytes[1000] ^= 1;
    fs::write(&tarball, bytes).unwrap();
    pack(&ws, "flipped.airlock", None);
    hello_policy(&ws, "p.toml", "allow_sha1_bindings = true\n", "");
    assert_rejected(&ws, "flipped.airlock", "p.toml", None, &["gnu/hello_2.10.orig.tar.gz.asc", HELLO_KEY]);

    // Revoked fingerprint: the signature never counts, so the required rule fails.
    let ws = Workspace::new();
    hello_tree(&ws);
    pack(&ws, "hello.airlock", None);
    hello_policy(
        &ws,
        "revoked.toml",
        "allow_sha1_bindings = true\n",
        &format!("[[revoked]]\nfingerprint = \"{HELLO_KEY}\"\nreason = \"key lost\"\n"),
    );
    assert_rejected(
        &ws,
        "hello.airlock",
        "revoked.toml",
        None,
        &["requires a valid signature", "hello_2.10.orig.tar.gz.asc"],
    );

    // Signed after the bundle was created.
    let ws = Workspace::new();
    hello_tree(&ws);
    pack(&ws, "early.airlock", Some("1000000000"));
    hello_policy(&ws, "p.toml", "allow_sha1_bindings = true\n", "");
    assert_rejected(&ws, "early.airlock", "p.toml", Some("1000000000"), &["gnu/hello_2.10.orig.tar.gz", HELLO_KEY]);
}

// ---------------------------------------------------------------------------------------
// Sigstore: npm provenance, PEP 740

fn sigstore_policy(ws: &Workspace, name: &str, identity: &str, rules: &str) {
    policy(
        ws,
        name,
        &format!(
            "[sigstore.public-good]\ntrusted_root = \"@/sigstore/roots/public-good.json\"\n[keys.sigstore-js]\nsigstore = \"public-good\"\n{identity}{rules}"
        ),
    );
}

fn npm_tree(ws: &Workspace) {
    for f in [
        "sigstore-2.0.0.tgz",
        "sigstore-2.0.0.tgz.sigstore.json",
        "sigstore-5.0.0.tgz",
        "sigstore-5.0.0.tgz.sigstore.json",
    ] {
        put(ws, &format!("sigstore/npm/{f}"), &format!("npm/{f}"));
    }
}

fn npm_identity(san: &str) -> String {
    format!("issuer = \"{GITHUB}\"\nsan = \"{san}\"\nsource_repository = \"https://github.com/sigstore/sigstore-js\"\n")
}

#[test]
fn npm_provenance_is_verified_with_the_right_identity() {
    let ws = Workspace::new();
    npm_tree(&ws);
    pack(&ws, "npm.airlock", None);
    sigstore_policy(&ws, "p.toml", &npm_identity(SIGSTORE_JS), NPM_RULE);
    let r = import(&ws, "npm.airlock", "p.toml", None);
    r.expect_code(0);
    for needle in [
        "npm/sigstore-2.0.0.tgz: npm/sigstore-2.0.0.tgz.sigstore.json verified (sigstore) by sigstore-js",
        "npm/sigstore-5.0.0.tgz: npm/sigstore-5.0.0.tgz.sigstore.json verified (sigstore) by sigstore-js",
        &format!("san: {SIGSTORE_JS}"),
        "predicate type: https://slsa.dev/provenance/v1",
        "trust material kept: .airlock/bundles/",
    ] {
        assert!(r.stdout.contains(needle), "{needle:?} missing from:\n{}", r.stdout);
    }
    // inspect lists the material by name without the payload, and --producers streams it.
    let r = cmd(&ws, &["inspect", "npm.airlock"], None);
    r.expect_code(0);
    assert!(
        r.stdout.contains("npm/sigstore-2.0.0.tgz: npm/sigstore-2.0.0.tgz.sigstore.json (sigstore)"),
        "{}",
        r.stdout
    );
    let r = cmd(&ws, &["inspect", "npm.airlock", "--policy", "p.toml", "--producers", "--json"], None);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let producers = v["producers"].as_array().unwrap();
    assert!(producers.iter().any(|f| f["status"] == "verified" && f["kind"] == "sigstore"), "{}", r.stdout);
}

#[test]
fn npm_provenance_hostile_variants_are_rejected() {
    // Wrong identity: verified, but by a workflow the rule does not name.
    let ws = Workspace::new();
    npm_tree(&ws);
    pack(&ws, "npm.airlock", None);
    let other = SIGSTORE_JS.replace("release.yml", "evil.yml");
    sigstore_policy(&ws, "wrong.toml", &npm_identity(&other), NPM_RULE);
    assert_rejected(
        &ws,
        "npm.airlock",
        "wrong.toml",
        None,
        &["npm/sigstore-", "requires a verified attestation", "evil.yml"],
    );

    // Revoked identity.
    sigstore_policy(
        &ws,
        "revoked.toml",
        &npm_identity(SIGSTORE_JS),
        &format!("{NPM_RULE}[[revoked]]\nsan = \"{SIGSTORE_JS}\"\nreason = \"workflow compromised\"\n"),
    );
    assert_rejected(&ws, "npm.airlock", "revoked.toml", None, &["npm/sigstore-", "requires a verified attestation"]);

    // A required builder id the provenance does not name.
    sigstore_policy(
        &ws,
        "builder.toml",
        &npm_identity(SIGSTORE_JS),
        &format!("{NPM_RULE}slsa_builder_id = \"https://example.com/other-builder\"\n"),
    );
    assert_rejected(&ws, "npm.airlock", "builder.toml", None, &["npm/sigstore-", "other-builder"]);

    // Wrong artifact: 5.0.0's tarball under 2.0.0's name, beside 2.0.0's provenance.
    let ws = Workspace::new();
    put(&ws, "sigstore/npm/sigstore-5.0.0.tgz", "npm/sigstore-2.0.0.tgz");
    put(&ws, "sigstore/npm/sigstore-2.0.0.tgz.sigstore.json", "npm/sigstore-2.0.0.tgz.sigstore.json");
    pack(&ws, "swapped.airlock", None);
    sigstore_policy(&ws, "p.toml", &npm_identity(SIGSTORE_JS), NPM_RULE);
    assert_rejected(&ws, "swapped.airlock", "p.toml", None, &["npm/sigstore-2.0.0.tgz", "does not verify"]);

    // Signed after the bundle was created.
    let ws = Workspace::new();
    npm_tree(&ws);
    pack(&ws, "early.airlock", Some(BEFORE_SIGNATURES));
    sigstore_policy(&ws, "p.toml", &npm_identity(SIGSTORE_JS), NPM_RULE);
    assert_rejected(&ws, "early.airlock", "p.toml", Some(BEFORE_SIGNATURES), &["npm/sigstore-", "does not verify"]);
}

fn pypi_tree(ws: &Workspace) {
    for f in ["pypi_attestations-0.0.19.tar.gz", "pypi_attestations-0.0.19.tar.gz.publish.attestation"] {
        put(ws, &format!("sigstore/pypi/{f}"), &format!("pypi/{f}"));
    }
}

fn pypi_policy(ws: &Workspace, name: &str, workflow: &str) {
    policy(
        ws,
        name,
        &format!(
            "[sigstore.public-good]\ntrusted_root = \"@/sigstore/roots/public-good.json\"\n[keys.pypi-attestations]\nsigstore = \"public-good\"\ngithub_publisher = {{ repository = \"trailofbits/pypi-attestations\", workflow = \"{workflow}\" }}\n[[artifact]]\npath = \"pypi/*.tar.gz\"\nkeys = [\"pypi-attestations\"]\npredicate_types = [\"https://docs.pypi.org/attestations/publish/v1\"]\n"
        ),
    );
}

#[test]
fn pep740_attestation_is_verified_with_the_trusted_publisher() {
    let ws = Workspace::new();
    pypi_tree(&ws);
    pack(&ws, "pypi.airlock", None);
    pypi_policy(&ws, "wrong.toml", "other.yml");
    assert_rejected(&ws, "pypi.airlock", "wrong.toml", None, &["pypi/pypi_attestations-0.0.19.tar.gz", "other.yml"]);
    pypi_policy(&ws, "p.toml", "release.yml");
    let r = import(&ws, "pypi.airlock", "p.toml", None);
    r.expect_code(0);
    assert!(
        r.stdout.contains(
            "pypi/pypi_attestations-0.0.19.tar.gz.publish.attestation verified (sigstore) by pypi-attestations"
        ),
        "{}",
        r.stdout
    );
}

// ---------------------------------------------------------------------------------------
// Policy load

#[test]
fn a_sigstore_key_without_an_identity_is_refused_at_load() {
    let ws = Workspace::new();
    policy(
        &ws,
        "any.toml",
        "[sigstore.public-good]\ntrusted_root = \"@/sigstore/roots/public-good.json\"\n[keys.anyone]\nsigstore = \"public-good\"\nissuer = \"https://token.actions.githubusercontent.com\"\n",
    );
    let r = cmd(&ws, &["policy", "check", "any.toml"], None);
    r.expect_code(2);
    r.expect_stderr("any.toml:");
    r.expect_stderr("\"any identity\" is never a policy");
    policy(
        &ws,
        "no-issuer.toml",
        &format!("[sigstore.public-good]\ntrusted_root = \"@/sigstore/roots/public-good.json\"\n[keys.anyone]\nsigstore = \"public-good\"\nsan = \"{SIGSTORE_JS}\"\n"),
    );
    let r = cmd(&ws, &["policy", "check", "no-issuer.toml"], None);
    r.expect_code(2);
    r.expect_stderr("needs an `issuer`");
}
