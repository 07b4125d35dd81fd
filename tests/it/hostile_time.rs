//! Hostile numbers (issue #17, defect 1 as a class): no value of any numeric field, signed
//! or not, ever makes airlock panic (exit 101), and every printed time is total. Times
//! past 9999-12-31T23:59:59Z print as `@<Unix seconds>` (src/clock.rs).
//!
//! Each attack is tried with the three far-future times of the issue: year 10000
//! (253402300800), 2^40 and 2^64 - 1. Whether such a bundle is accepted is freshness
//! policy (a `created` past the importer's clock is refused there): these tests only ask
//! for an orderly outcome, exit 0, 1 or 2 with a message, and, where an import is refused,
//! the full rejection contract (mirror unchanged, nothing outside it).

use std::fs;

use serde_json::Value;

use crate::kit::*;

/// The far-future times every attack here is tried with.
const FAR: [u64; 3] = [253_402_300_800, 1 << 40, u64::MAX];

/// A bundle `out` from the fixture `next` with its manifest edited by `edit`, signed by
/// `signer` (a key the case trusts, `k`, or one it does not, `other`).
fn forged(case: &Case, out: &str, signer: &str, edit: impl FnOnce(&mut Wire)) -> Vec<u8> {
    let parts = case.parts("next.airlock");
    let mut wire = Wire::decode(&parts.head[0].1);
    edit(&mut wire);
    let manifest = wire.encode();
    let head = signed_head(&manifest, &wire.sums(), &[&case.secret(signer)]);
    case.put(out, &assemble(&head, &parts.payload));
    manifest
}

/// No panic: exit 0, 1 or 2, and a refusal says why on stderr.
fn orderly(run: &Run, what: &str) {
    assert!(
        [0, 1, 2].contains(&run.code) && !run.stderr.contains("panicked"),
        "{what}: exit {}\nstdout:\n{}\nstderr:\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
    if run.code != 0 {
        assert!(run.stderr.starts_with("airlock: ") && run.stderr.trim().len() > 10, "{what}: no message");
    }
}

fn inspect(case: &Case, bundle: &str, extra: &[&str]) -> Run {
    run(airlock().arg("inspect").arg(case.path(bundle)).args(extra))
}

fn mirror_log(case: &Case, extra: &[&str]) -> Run {
    run(airlock().arg("mirror").arg("log").arg(case.mirror()).args(extra))
}

/// Imports `bundle` trusting `k` (with `AIRLOCK_NOW` = `now` when given); when it is
/// refused, checks the mirror is as it was and nothing appeared outside it.
fn import_orderly(case: &Case, bundle: &str, extra: &[&str], now: Option<u64>) -> Run {
    let before = case.mirror_state();
    let log_before = fs::read_to_string(case.mirror().join(".airlock/log")).unwrap();
    let listing_before = listing(case.dir.path());
    let trust: &[&str] = if extra.contains(&"--policy") { &[] } else { &["k"] };
    let mut cmd = case.import_command(bundle, trust, extra);
    if let Some(now) = now {
        cmd.env("AIRLOCK_NOW", now.to_string());
    }
    let out = run(&mut cmd);
    orderly(&out, &format!("import {bundle}"));
    if out.code != 0 {
        case.assert_untouched(&before, &log_before, &listing_before);
    }
    out
}

/// The digest (hex) airlock gives a manifest.
fn digest_hex(manifest: &[u8]) -> String {
    hex(&sha256(manifest))
}

/// Imports a validly signed `next` created at `far`, on a machine whose clock says `far`
/// (so no freshness rule about the clock stands in the way): the mirror's clock floor is
/// then `far`. Returns the far manifest when the import was accepted.
fn import_far_created(case: &Case, far: u64) -> Option<Vec<u8>> {
    let manifest = forged(case, "far.airlock", "k", |w| w.created = far);
    let out = import_orderly(case, "far.airlock", &[], Some(far));
    (out.code == 0).then_some(manifest)
}

/// The bundle after the far one in its channel (sequence 3, linked to it), created now,
/// edited further by `edit`.
fn after_far(case: &Case, far_manifest: &[u8], edit: impl FnOnce(&mut Wire)) {
    let previous = crate::kit::sha256(far_manifest);
    forged(case, "later.airlock", "k", |w| {
        w.sequence = 3;
        w.previous = Some(previous);
        edit(w);
    });
}

fn now() -> u64 {
    airlock::clock::system_now()
}

#[test]
fn inspect_unsigned_far_future_created_is_a_clean_rejection() {
    // The manifest rules bound `created` to 9999-12-31T23:59:59Z (FORMAT.md §6.2), so inspect
    // refuses such a manifest with exit 1 and the number, never a panic. Printing an
    // out-of-range time is covered by clock's unit tests and the `inspect` fuzz target.
    let case = Case::new();
    for far in FAR {
        forged(&case, "far.airlock", "other", |w| {
            w.created = far;
            w.expires = None;
        });
        for args in [&[][..], &["--json"][..], &["--trust", case.path("k.pub").to_str().unwrap()][..]] {
            let out = inspect(&case, "far.airlock", args);
            out.expect_code(1);
            assert!(out.stderr.contains(&format!("created is {far}, after 253402300799")), "{}", out.stderr);
        }
    }
}

#[test]
fn inspect_unsigned_far_future_expires_is_a_clean_rejection() {
    // The manifest rules bound `expires` to 9999-12-31T23:59:59Z (FORMAT.md §6.2), so inspect
    // refuses such a manifest with exit 1 and the number, never a panic. Printing an
    // out-of-range time is covered by clock's unit tests and the `inspect` fuzz target.
    let case = Case::new();
    for far in FAR {
        forged(&case, "far.airlock", "other", |w| w.expires = Some(far));
        for args in [&[][..], &["--json"][..], &["--trust", case.path("k.pub").to_str().unwrap()][..]] {
            let out = inspect(&case, "far.airlock", args);
            out.expect_code(1);
            assert!(out.stderr.contains(&format!("expires is {far}, after 253402300799")), "{}", out.stderr);
        }
    }
}

/// The largest times RFC 3339 can show still print as dates.
#[test]
fn inspect_last_second_of_year_9999_prints_as_a_date() {
    let case = Case::new();
    forged(&case, "edge.airlock", "other", |w| {
        w.created = 253_402_300_798;
        w.expires = Some(253_402_300_799);
    });
    let text = inspect(&case, "edge.airlock", &[]);
    text.expect_code(0);
    assert!(text.stdout.contains("created      9999-12-31T23:59:58Z\n"), "{}", text.stdout);
    assert!(text.stdout.contains("expires      9999-12-31T23:59:59Z\n"), "{}", text.stdout);
}

#[test]
fn verify_signed_far_future_created_never_panics() {
    let case = Case::new();
    for far in FAR {
        forged(&case, "far.airlock", "k", |w| w.created = far);
        orderly(&case.verify("far.airlock", &["k"]), &format!("verify created {far}"));
    }
}

#[test]
fn verify_signed_far_future_expires_never_panics() {
    let case = Case::new();
    for far in FAR {
        forged(&case, "far.airlock", "k", |w| w.expires = Some(far));
        orderly(&case.verify("far.airlock", &["k"]), &format!("verify expires {far}"));
    }
}

/// A far-future `created` on today's clock: refused (or, by an older rule, imported), in
/// good order either way.
#[test]
fn import_signed_far_future_created_never_panics() {
    for far in FAR {
        let case = Case::new();
        forged(&case, "far.airlock", "k", |w| w.created = far);
        import_orderly(&case, "far.airlock", &[], None);
        let log = mirror_log(&case, &[]);
        orderly(&log, "mirror log");
    }
}

#[test]
fn import_signed_far_future_expires_is_orderly() {
    for far in FAR {
        let case = Case::new();
        forged(&case, "far.airlock", "k", |w| w.expires = Some(far));
        import_orderly(&case, "far.airlock", &[], None);
        let log = mirror_log(&case, &[]);
        log.expect_code(0);
    }
}

/// Once a far-future bundle is in the log, `mirror log` prints its times as numbers,
/// as text and as JSON.
#[test]
fn mirror_log_after_far_future_import_prints_seconds() {
    for far in FAR {
        let case = Case::new();
        if import_far_created(&case, far).is_none() {
            continue; // refused outright: nothing far in the log (checked by import_orderly)
        }
        let text = mirror_log(&case, &[]);
        text.expect_code(0);
        assert!(text.stdout.contains(&format!("created @{far} ")), "{}", text.stdout);
        let json = mirror_log(&case, &["--json"]);
        json.expect_code(0);
        assert!(json.stdout.contains(&format!("\"created\":\"@{far}\"")), "{}", json.stdout);
        orderly(&run(airlock().arg("mirror").arg("verify").arg(case.mirror()).arg("--quiet")), "mirror verify");
    }
}

/// After a far-future import made the clock floor far, a later expiring bundle is judged
/// in good order (refused as expired, or accepted if the floor no longer applies).
#[test]
fn expiring_import_after_far_future_floor_never_panics() {
    for far in FAR {
        let case = Case::new();
        let Some(far_manifest) = import_far_created(&case, far) else {
            continue;
        };
        let t = now();
        after_far(&case, &far_manifest, |w| {
            w.created = t;
            w.expires = Some(t + 86_400);
        });
        import_orderly(&case, "later.airlock", &[], None);
        orderly(&mirror_log(&case, &[]), "mirror log");
    }
}

/// The same under a policy's `max_age`: `created + max_age + skew` against a far floor.
#[test]
fn max_age_import_after_far_future_floor_never_panics() {
    for far in FAR {
        let case = Case::new();
        let Some(far_manifest) = import_far_created(&case, far) else {
            continue;
        };
        fs::write(
            case.path("age.toml"),
            "version = 1\nmax_age = \"7d\"\n[keys.k]\nfile = \"k.pub\"\n[[channel]]\nname = \"*\"\nsigners = [\"k\"]\n",
        )
        .unwrap();
        let t = now();
        after_far(&case, &far_manifest, |w| w.created = t);
        let policy = case.path("age.toml");
        import_orderly(&case, "later.airlock", &["--policy", policy.to_str().unwrap()], None);
        orderly(&mirror_log(&case, &[]), "mirror log");
    }
}

/// A `max_age` as large as the policy syntax allows, against a far-future bundle: the
/// sum `created + max_age + skew` saturates instead of wrapping into "too old".
#[test]
fn max_age_with_far_future_created_never_wraps() {
    for far in FAR {
        let case = Case::new();
        fs::write(
            case.path("age.toml"),
            "version = 1\nmax_age = \"584000000000years\"\n[keys.k]\nfile = \"k.pub\"\n[[channel]]\nname = \"*\"\nsigners = [\"k\"]\n",
        )
        .unwrap();
        forged(&case, "far.airlock", "k", |w| w.created = far);
        let policy = case.path("age.toml");
        let out = import_orderly(&case, "far.airlock", &["--policy", policy.to_str().unwrap()], Some(far));
        assert!(!out.stderr.contains("older than"), "a far-future bundle called too old:\n{}", out.stderr);
    }
}

/// A log line with far-future times and a malformed digest on a `rejected` record (whose
/// digest is not checked on reading), chained correctly: whoever edits the log can do
/// this. `mirror log` either prints it, numbers as numbers, or refuses the log; it never
/// panics.
#[test]
fn mirror_log_forged_far_future_record_never_panics() {
    for far in FAR {
        let case = Case::new();
        let log_path = case.mirror().join(".airlock/log");
        let log = fs::read_to_string(&log_path).unwrap();
        let last = log.lines().last().unwrap();
        let record = serde_json::json!({
            "prev": digest_hex(last.as_bytes()),
            "time": far,
            "event": "rejected",
            "source": "far.airlock",
            "bundle": {
                "manifest_sha256": "é",
                "bundle_id": "00",
                "channel": "default",
                "sequence": u64::MAX,
                "created": far,
                "expires": far,
                "signers": [],
                "entries": u64::MAX,
                "bytes": u64::MAX,
            },
            "reason": "forged",
        });
        fs::write(&log_path, format!("{log}{record}\n")).unwrap();
        let text = mirror_log(&case, &[]);
        orderly(&text, "mirror log");
        if text.code == 0 {
            assert!(text.stdout.contains(&format!("@{far}  rejected")), "{}", text.stdout);
            assert!(text.stdout.contains(&format!("created @{far} ")), "{}", text.stdout);
        }
        orderly(&mirror_log(&case, &["--json"]), "mirror log --json");
    }
}

/// Entry sizes whose sum passes u64::MAX: inspect prints the saturated total, verify and
/// import refuse in good order.
#[test]
fn entry_sizes_summing_past_u64_max_never_panic() {
    let case = Case::new();
    forged(&case, "huge.airlock", "k", |w| {
        for e in &mut w.entries {
            e.size = u64::MAX;
        }
    });
    let text = inspect(&case, "huge.airlock", &[]);
    text.expect_code(0);
    assert!(text.stdout.contains(&format!("{} bytes", u64::MAX)), "{}", text.stdout);
    let json = inspect(&case, "huge.airlock", &["--json"]);
    json.expect_code(0);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["total_size"], u64::MAX);
    orderly(&case.verify("huge.airlock", &["k"]), "verify");
    let out = import_orderly(&case, "huge.airlock", &[], None);
    assert_ne!(out.code, 0, "a bundle declaring {} bytes per file was imported", u64::MAX);
}

/// The largest sequence number, after the mirror's sequence 1: a gap whose message names
/// the range without overflowing; with `--allow-gap` imported, and logged as it is.
#[test]
fn sequence_u64_max_never_overflows() {
    let case = Case::new();
    forged(&case, "last.airlock", "k", |w| {
        w.sequence = u64::MAX;
        w.previous = None;
    });
    let out = import_orderly(&case, "last.airlock", &[], None);
    out.expect_code(1).expect_stderr(&format!("2..={}", u64::MAX - 1));
    let out = import_orderly(&case, "last.airlock", &["--allow-gap"], None);
    orderly(&out, "import --allow-gap");
    if out.code == 0 {
        let log = mirror_log(&case, &[]);
        log.expect_code(0);
        assert!(log.stdout.contains(&format!("seq {}", u64::MAX)), "{}", log.stdout);
    }
}

/// The packer's own state after `--sequence 18446744073709551615`: the next pack is refused
/// (exit 2, with the reason), not numbered 0.
#[test]
fn pack_after_the_largest_sequence_is_refused() {
    let case = Case::new();
    case.pack("last.airlock", &["--sequence", &u64::MAX.to_string()]).expect_code(0);
    let out = case.pack("after.airlock", &[]);
    orderly(&out, "pack");
    out.expect_code(2).expect_stderr("has used its last sequence number");
    assert!(!case.path("after.airlock").exists());
}
