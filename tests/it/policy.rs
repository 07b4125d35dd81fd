//! Trust policy end to end: thresholds over distinct keys, revocation (with and without a
//! time), unknown signers reported, per-channel rules, maximum age, `policy check` in
//! words, `inspect --policy`, and parse errors that name the line.

use std::fs;
use std::path::Path;

use crate::common::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

fn key_id(ws: &Workspace, name: &str) -> String {
    airlock::keys::PublicKey::load(&ws.path(&format!("{name}.pub"))).unwrap().key_id().to_string()
}

fn airlock_in(ws: &Workspace, args: &[&str]) -> Run {
    run(airlock().current_dir(ws.dir.path()).args(args).env("AIRLOCK_STATE_DIR", ws.path("state")))
}

/// Packs `src` as `out` in `channel`, signed by `k` (and `extra` keys), created at `now`.
fn pack_at(ws: &Workspace, out: &str, channel: &str, now: u64, keys: &[&str]) {
    let src = ws.path("src");
    if !src.exists() {
        write(&src, "a.txt", b"payload\n", 0o644);
    }
    let mut cmd = airlock();
    cmd.current_dir(ws.dir.path())
        .args(["pack", "src", "-o", out, "--channel", channel, "--quiet"])
        .env("AIRLOCK_STATE_DIR", ws.path("state"))
        .env("AIRLOCK_NOW", now.to_string());
    for k in keys {
        cmd.args(["--key", &format!("{k}.sec")]);
    }
    run(&mut cmd).expect_code(0);
}

fn verify_policy(ws: &Workspace, bundle: &str, policy: &str, now: u64) -> Run {
    run(airlock()
        .current_dir(ws.dir.path())
        .args(["verify", bundle, "--policy", policy])
        .env("AIRLOCK_NOW", now.to_string()))
}

const T0: u64 = 1_790_000_000;

fn officers(ws: &Workspace) {
    for k in ["alice", "bob", "carol"] {
        ws.keygen(k);
    }
}

fn two_of_three(ws: &Workspace, extra: &str) {
    let text = format!(
        "version = 1\n\n[keys.alice]\nfile = \"alice.pub\"\n[keys.bob]\nfile = \"bob.pub\"\n[keys.carol]\nfile = \"carol.pub\"\n\n\
         [[channel]]\nname = \"weekly\"\nsigners = [\"alice\", \"bob\", \"carol\"]\nthreshold = 2\n{extra}"
    );
    fs::write(ws.path("policy.toml"), text).unwrap();
}

#[test]
fn threshold_met_with_two_of_three_and_unmet_with_one() {
    let ws = Workspace::new();
    officers(&ws);
    two_of_three(&ws, "");
    pack_at(&ws, "one.airlock", "weekly", T0, &["alice"]);
    let r = verify_policy(&ws, "one.airlock", "policy.toml", T0);
    r.expect_code(1).expect_stderr("needs valid signatures from 2 distinct trusted key(s), found 1");

    pack_at(&ws, "two.airlock", "weekly", T0, &["alice", "carol"]);
    let r = verify_policy(&ws, "two.airlock", "policy.toml", T0);
    r.expect_code(0);
    assert!(r.stdout.contains(&key_id(&ws, "alice")) && r.stdout.contains("(alice)"), "{}", r.stdout);

    // The shorthand says the same.
    let r = run(airlock().current_dir(ws.dir.path()).args([
        "verify",
        "one.airlock",
        "--trust",
        "alice.pub",
        "--trust",
        "bob.pub",
        "--threshold",
        "2",
        "--quiet",
    ]));
    r.expect_code(1).expect_stderr("found 1");
}

/// A second key file with the same key material under another key id (the keynum is not
/// covered by the secret key's checksum, so this is a valid signify key): its signature
/// must not count a second time.
fn clone_key_with_new_id(ws: &Workspace, from: &str, to: &str) {
    let sec = fs::read_to_string(ws.path(&format!("{from}.sec"))).unwrap();
    let mut lines: Vec<String> = sec.lines().map(str::to_owned).collect();
    let mut raw = B64.decode(&lines[1]).unwrap();
    for b in &mut raw[32..40] {
        *b ^= 0x5a;
    }
    lines[1] = B64.encode(&raw);
    let path = ws.path(&format!("{to}.sec"));
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let public = fs::read_to_string(ws.path(&format!("{from}.pub"))).unwrap();
    let mut lines: Vec<String> = public.lines().map(str::to_owned).collect();
    let mut raw = B64.decode(&lines[1]).unwrap();
    for b in &mut raw[2..10] {
        *b ^= 0x5a;
    }
    lines[1] = B64.encode(&raw);
    fs::write(ws.path(&format!("{to}.pub")), lines.join("\n") + "\n").unwrap();
}

#[test]
fn duplicate_signatures_by_one_key_count_once() {
    let ws = Workspace::new();
    officers(&ws);
    clone_key_with_new_id(&ws, "alice", "alice2");
    assert_ne!(key_id(&ws, "alice"), key_id(&ws, "alice2"));
    // Two signature members, one key material.
    pack_at(&ws, "b.airlock", "weekly", T0, &["alice", "alice2"]);
    let text = "version = 1\n[keys.alice]\nfile = \"alice.pub\"\n[keys.alice-again]\nfile = \"alice2.pub\"\n[keys.bob]\nfile = \"bob.pub\"\n\
                [[channel]]\nname = \"*\"\nsigners = [\"alice\", \"alice-again\", \"bob\"]\nthreshold = 2\n";
    fs::write(ws.path("dup.toml"), text).unwrap();
    let r = verify_policy(&ws, "b.airlock", "dup.toml", T0);
    r.expect_code(1).expect_stderr("found 1");
    // And with the --trust shorthand.
    let r = run(airlock().current_dir(ws.dir.path()).args([
        "verify",
        "b.airlock",
        "--trust",
        "alice.pub",
        "--trust",
        "alice2.pub",
        "--trust",
        "bob.pub",
        "--threshold",
        "2",
        "--quiet",
    ]));
    r.expect_code(1).expect_stderr("found 1");
    // Signed additionally by bob: 2 distinct keys.
    // (bob vouches for what alice signed: his signature is the one that meets the threshold)
    run(airlock().current_dir(ws.dir.path()).env("AIRLOCK_NOW", T0.to_string()).args([
        "sign",
        "b.airlock",
        "--key",
        "bob.sec",
        "--trust",
        "alice.pub",
    ]))
    .expect_code(0);
    verify_policy(&ws, "b.airlock", "dup.toml", T0).expect_code(0);
}

#[test]
fn revoked_key_does_not_count_and_revocation_time_compares_with_created() {
    let ws = Workspace::new();
    officers(&ws);
    let alice = key_id(&ws, "alice");
    let since = T0 + 1000;
    two_of_three(
        &ws,
        &format!(
            "\n[[revoked]]\nkey_id = \"{alice}\"\nreason = \"laptop stolen\"\nsince = \"{}\"\n",
            airlock::clock::format(since)
        ),
    );
    // Signed before the revocation time: alice still counts.
    pack_at(&ws, "old.airlock", "weekly", since - 10, &["alice", "bob"]);
    verify_policy(&ws, "old.airlock", "policy.toml", since + 10).expect_code(0);
    // Created after it: alice does not count, so 1 of 2.
    pack_at(&ws, "new.airlock", "weekly", since + 10, &["alice", "bob"]);
    let r = verify_policy(&ws, "new.airlock", "policy.toml", since + 20);
    r.expect_code(1).expect_stderr("revoked: laptop stolen");

    // Without a time: never counts; a bundle signed only by revoked keys is rejected.
    two_of_three(&ws, &format!("\n[[revoked]]\nkey_id = \"{alice}\"\nreason = \"left\"\n"));
    let r = verify_policy(&ws, "old.airlock", "policy.toml", since + 10);
    r.expect_code(1).expect_stderr("revoked: left");
    fs::write(
        ws.path("solo.toml"),
        format!(
            "version = 1\n[keys.alice]\nfile = \"alice.pub\"\n[keys.bob]\nfile = \"bob.pub\"\n[[channel]]\nname = \"*\"\nsigners = [\"alice\", \"bob\"]\n\
             [[revoked]]\nkey_id = \"{alice}\"\nreason = \"left\"\n"
        ),
    )
    .unwrap();
    pack_at(&ws, "alice-only.airlock", "weekly", T0, &["alice"]);
    verify_policy(&ws, "alice-only.airlock", "solo.toml", T0).expect_code(1).expect_stderr("revoked");

    // The import is refused and logged, the mirror unchanged.
    let before = snapshot(&ws.path("m"), true);
    let r = run(airlock().current_dir(ws.dir.path()).env("AIRLOCK_NOW", T0.to_string()).args([
        "import",
        "alice-only.airlock",
        "--policy",
        "solo.toml",
        "--mirror",
        "m",
        "--init",
        "--quiet",
    ]));
    r.expect_code(1).expect_stderr("revoked");
    assert_eq!(snapshot(&ws.path("m"), true), before);
    let log = fs::read_to_string(ws.path("m/.airlock/log")).unwrap();
    assert!(log.contains("\"rejected\"") && log.contains("revoked"), "{log}");
}

#[test]
fn unknown_key_is_ignored_but_reported() {
    let ws = Workspace::new();
    officers(&ws);
    ws.keygen("stranger");
    pack_at(&ws, "b.airlock", "weekly", T0, &["alice", "stranger"]);
    let r = run(airlock().current_dir(ws.dir.path()).args(["verify", "b.airlock", "--trust", "alice.pub"]));
    r.expect_code(0);
    let stranger = key_id(&ws, "stranger");
    assert!(r.stdout.contains(&format!("ignored signature by unknown key {stranger}")), "{}", r.stdout);

    let r = airlock_in(&ws, &["inspect", "b.airlock", "--trust", "alice.pub"]);
    r.expect_code(0);
    assert!(r.stdout.contains(&format!("{stranger}: unknown key; ignored")), "{}", r.stdout);
    assert!(r.stdout.contains("threshold    met: 1 of 1"), "{}", r.stdout);
}

#[test]
fn inspect_with_policy_lists_trusted_revoked_unknown_and_threshold() {
    let ws = Workspace::new();
    officers(&ws);
    ws.keygen("stranger");
    let bob = key_id(&ws, "bob");
    two_of_three(&ws, &format!("\n[[revoked]]\nkey_id = \"{bob}\"\nreason = \"retired\"\n"));
    pack_at(&ws, "b.airlock", "weekly", T0, &["alice", "bob", "stranger"]);
    let r = airlock_in(&ws, &["inspect", "b.airlock", "--policy", "policy.toml"]);
    r.expect_code(0);
    let alice = key_id(&ws, "alice");
    let stranger = key_id(&ws, "stranger");
    assert!(r.stdout.contains(&format!("{alice} (alice): trusted, valid")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{bob} (bob): revoked (retired); not counted")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{stranger}: unknown key; ignored")), "{}", r.stdout);
    assert!(r.stdout.contains("threshold    NOT met: 1 of 2"), "{}", r.stdout);
    let r = airlock_in(&ws, &["inspect", "b.airlock", "--policy", "policy.toml", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["verified"], serde_json::json!(false));
}

#[test]
fn channels_have_their_own_signers() {
    let ws = Workspace::new();
    officers(&ws);
    let text = "version = 1\n[keys.alice]\nfile = \"alice.pub\"\n[keys.bob]\nfile = \"bob.pub\"\n\
                [[channel]]\nname = \"vendor-x\"\nsigners = [\"bob\"]\n[[channel]]\nname = \"internal\"\nsigners = [\"alice\"]\n";
    fs::write(ws.path("ch.toml"), text).unwrap();
    pack_at(&ws, "vx.airlock", "vendor-x", T0, &["alice"]);
    verify_policy(&ws, "vx.airlock", "ch.toml", T0).expect_code(1).expect_stderr("found 0");
    pack_at(&ws, "in.airlock", "internal", T0, &["alice"]);
    verify_policy(&ws, "in.airlock", "ch.toml", T0).expect_code(0);
    pack_at(&ws, "other.airlock", "other", T0, &["alice"]);
    verify_policy(&ws, "other.airlock", "ch.toml", T0).expect_code(1).expect_stderr("no rule for channel \"other\"");
}

#[test]
fn max_age_refuses_old_bundles() {
    let ws = Workspace::new();
    fs::write(
        ws.path("age.toml"),
        "version = 1\nmax_age = \"7d\"\n[keys.k]\nfile = \"k.pub\"\n[[channel]]\nname = \"*\"\nsigners = [\"k\"]\n",
    )
    .unwrap();
    pack_at(&ws, "b.airlock", "default", T0, &["k"]);
    verify_policy(&ws, "b.airlock", "age.toml", T0 + 6 * 86_400).expect_code(0);
    verify_policy(&ws, "b.airlock", "age.toml", T0 + 8 * 86_400)
        .expect_code(1)
        .expect_stderr("older than the policy's max_age of 7days");
}

#[test]
fn policy_check_prints_what_it_allows() {
    let ws = Workspace::new();
    officers(&ws);
    ws.keygen("vendor");
    let carol = key_id(&ws, "carol");
    let text = format!(
        "version = 1\nmax_age = \"30d\"\n[keys.alice]\nfile = \"alice.pub\"\n[keys.bob]\nfile = \"bob.pub\"\n[keys.carol]\nfile = \"carol.pub\"\n\
         [keys.vendor-x]\nfile = \"vendor.pub\"\n\
         [[channel]]\nname = \"weekly\"\nsigners = [\"alice\", \"bob\", \"carol\"]\nthreshold = 2\n\
         [[revoked]]\nkey_id = \"{carol}\"\nreason = \"moved on\"\nsince = 2026-10-01T00:00:00Z\n\
         [[artifact]]\npath = \"vendor-x/**\"\nkeys = [\"vendor-x\"]\n"
    );
    fs::write(ws.path("policy.toml"), text).unwrap();
    let r = airlock_in(&ws, &["policy", "check", "policy.toml"]);
    r.expect_code(0);
    let out = &r.stdout;
    assert!(out.contains("valid policy"), "{out}");
    assert!(out.contains("channel \"weekly\": accepted when signed by at least 2 of these 3 distinct key(s)"), "{out}");
    assert!(out.contains("any other channel: refused"), "{out}");
    assert!(
        out.contains(&format!(
            "{carol} (carol): its signatures do not count on bundles created at or after 2026-10-01T00:00:00Z"
        )),
        "{out}"
    );
    assert!(out.contains("bundles created more than 30days before the import are refused"), "{out}");
    assert!(out.contains("files matching \"vendor-x/**\" must carry a valid signature by"), "{out}");
    assert!(out.contains("a file without one is rejected"), "{out}");
}

/// Each malformed policy is refused (exit 2) with `file:line:` pointing at the culprit.
#[test]
fn policy_parse_errors_point_at_the_line() {
    let ws = Workspace::new();
    let good_key = fs::read_to_string(ws.path("k.pub")).unwrap().lines().nth(1).unwrap().to_owned();
    let cases: &[(&str, String, usize, &str)] = &[
        ("unknown top-level field", "version = 1\nthreshold = 2\n".into(), 2, "unknown field `threshold`"),
        (
            "unknown field in a channel",
            "version = 1\n[keys.k]\nfile = \"k.pub\"\n[[channel]]\nname = \"*\"\nsigners = [\"k\"]\ntreshold = 1\n".into(),
            7,
            "treshold",
        ),
        (
            "malformed inline key",
            "version = 1\n[keys.k]\n# comment\npublic_key = \"RWQnotakey\"\n[[channel]]\nname = \"*\"\nsigners = [\"k\"]\n".into(),
            4,
            "malformed public_key",
        ),
        (
            "weak key",
            format!(
                "version = 1\n[keys.k]\npublic_key = \"{}\"\n",
                B64.encode([b"Ed".as_slice(), &[1u8; 8], &{
                    let mut z = [0u8; 32];
                    z[0] = 1;
                    z
                }]
                .concat())
            ),
            3,
            "weak",
        ),
        ("missing key file", "version = 1\n\n[keys.k]\nfile = \"nope.pub\"\n".into(), 4, "nope.pub"),
        (
            "unknown signer",
            format!("version = 1\n[keys.k]\npublic_key = \"{good_key}\"\n[[channel]]\nname = \"*\"\nsigners = [\"k\",\n  \"ghost\"]\n"),
            7,
            "ghost",
        ),
        (
            "bad key id",
            format!("version = 1\n[keys.k]\npublic_key = \"{good_key}\"\n[[channel]]\nname = \"*\"\nsigners = [\"k\"]\n[[revoked]]\nkey_id = \"NOTHEX\"\nreason = \"x\"\n"),
            8,
            "16 lowercase hex",
        ),
        ("TOML syntax", "version = 1\n[keys.k\n".into(), 2, ""),
        ("bad glob", format!("version = 1\n[keys.k]\npublic_key = \"{good_key}\"\n[[channel]]\nname = \"*\"\nsigners = [\"k\"]\n[[artifact]]\npath = \"a/[\"\nkeys = [\"k\"]\n"), 8, "glob"),
        ("wrong version", "version = 7\n".into(), 1, "version 7"),
    ];
    for (what, text, line, needle) in cases {
        fs::write(ws.path("bad.toml"), text).unwrap();
        let r = airlock_in(&ws, &["policy", "check", "bad.toml"]);
        r.expect_code(2);
        let want = format!("bad.toml:{line}:");
        assert!(r.stderr.contains(&want), "{what}: expected {want} in {}", r.stderr);
        assert!(r.stderr.contains(needle), "{what}: expected {needle:?} in {}", r.stderr);
        // verify refuses to run with it too (operational error, not a rejection).
        let v = run(airlock().current_dir(ws.dir.path()).args(["verify", "nothing.airlock", "--policy", "bad.toml"]));
        assert_eq!(v.code, 2, "{what}");
    }
    assert!(!Path::new(&ws.path("nothing.airlock")).exists());
}

/// `policy check` reports every problem of a policy file in one run, each with its line and
/// the rule it breaks: an unknown field, a key file that is not there, a Sigstore key without
/// an identity, a bad revocation (exit 2, as for one problem); verify refuses it the same way.
#[test]
fn policy_check_reports_every_problem_in_one_run() {
    let ws = Workspace::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/producer/sigstore/roots/public-good.json");
    fs::copy(root, ws.path("public-good.json")).unwrap();
    let text = "version = 1\n\
                [keys.k]\nfile = \"k.pub\"\ncolour = \"blue\"\n\
                [keys.gone]\nfile = \"no-such.pub\"\n\
                [sigstore.public-good]\ntrusted_root = \"public-good.json\"\n\
                [keys.anyone]\nsigstore = \"public-good\"\n\
                [[channel]]\nname = \"*\"\nsigners = [\"k\"]\n\
                [[revoked]]\nkey_id = \"NOTHEX\"\nreason = \"lost\"\n";
    fs::write(ws.path("four.toml"), text).unwrap();
    let r = airlock_in(&ws, &["policy", "check", "four.toml"]);
    r.expect_code(2);
    let expected = [(4, "unknown field `colour` in [keys.k]"), (6, "no-such.pub"), (15, "16 lowercase hex")];
    for (line, needle) in expected {
        let want = format!("four.toml:{line}: ");
        let found = r.stderr.lines().find(|l| l.contains(&want));
        assert!(found.is_some_and(|l| l.contains(needle)), "line {line}: expected {needle:?} in\n{}", r.stderr);
    }
    // The key's problem is at its table ([keys.anyone] and its first field: lines 9-10).
    let identity = r.stderr.lines().find(|l| l.contains("a Sigstore identity needs exactly one of `san`"));
    assert!(identity.is_some_and(|l| l.contains("four.toml:9: ") || l.contains("four.toml:10: ")), "{}", r.stderr);
    assert!(r.stderr.contains("4 problems in this policy, each listed above"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let v = run(airlock().current_dir(ws.dir.path()).args(["verify", "nothing.airlock", "--policy", "four.toml"]));
    v.expect_code(2).expect_stderr("four.toml: 4 problems: line 4: unknown field `colour`");
}
