//! A hostile mirror and hostile clocks (issue #17, defects 2, 6 and 7): one test per attack.
//!
//! - Clock: a `created` beyond the reader's clock plus the skew is refused by `import`,
//!   `verify` and `sign`; the clock floor is per channel, so one channel's signer (or a
//!   packer with a wrong clock) cannot change what another channel accepts.
//! - The log's end: truncating, editing or duplicating the last record, or removing a kept
//!   head, is detected (by the anchor `.airlock/log-head` and by holding the records to the
//!   kept manifests) with a message saying what to do, and the mirror stays byte-identical;
//!   a mirror made before anchors still imports; a crash between the log append and the
//!   anchor's rewrite, or a torn append, is mended by the next run.
//! - `.airlock/` entries that are links, FIFOs or sockets are refused (exit 2, naming the
//!   path; `id`, `stamps` and `attic` too) and nothing is written outside the mirror; a
//!   FIFO or socket where a bundle's file goes is a conflict; a hard link there is replaced
//!   by a rename, leaving the other name's content alone.

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;

use crate::kit::*;

const DAY: u64 = 86_400;

fn now() -> u64 {
    airlock::clock::system_now()
}

/// `airlock pack SRC -o OUT --key KEY.sec --channel CHANNEL` as if the clock read `time`:
/// channel `default` packs the template's `src`, any other its own tree `<channel>-src`
/// (a channel never overwrites another channel's files).
fn pack_as(case: &Case, out: &str, key: &str, channel: &str, time: u64, extra: &[&str]) {
    let src = if channel == "default" { "src".to_owned() } else { format!("{channel}-src") };
    if channel != "default" {
        write(&case.path(&src), &format!("{channel}/notes.txt"), channel.as_bytes(), 0o644);
    }
    run(airlock()
        .current_dir(case.dir.path())
        .args(["pack", &src, "-o", out, "--key", &format!("{key}.sec"), "--channel", channel, "--quiet"])
        .args(extra)
        .env("AIRLOCK_STATE_DIR", case.path("state"))
        .env("AIRLOCK_NOW", time.to_string()))
    .expect_code(0);
}

/// A policy trusting `other` for channel `lab` only and `k` for every other channel, with
/// a maximum age of 30 days.
fn lab_policy(case: &Case) -> String {
    let text = "version = 1\nmax_age = \"30d\"\n[keys.k]\nfile = \"k.pub\"\n[keys.other]\nfile = \"other.pub\"\n\
                [[channel]]\nname = \"lab\"\nsigners = [\"other\"]\n[[channel]]\nname = \"*\"\nsigners = [\"k\"]\n";
    let path = case.path("policy.toml");
    fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn import_at(case: &Case, bundle: &str, extra: &[&str], time: u64) -> Run {
    run(case.import_command(bundle, &[], extra).env("AIRLOCK_NOW", time.to_string()))
}

// ---------------------------------------------------------------------------------------
// the clock

#[test]
fn future_created_bundle_of_another_channel_is_refused_and_other_channels_unaffected() {
    let case = Case::new();
    let policy = lab_policy(&case);
    let t = now();
    pack_as(&case, "lab.airlock", "other", "lab", t + 50 * 365 * DAY, &[]);
    pack_as(&case, "ops.airlock", "k", "ops", t, &["--expires", "1d"]);
    case.expect_refused("lab.airlock", &[], &["--policy", &policy], 1, "later than this machine's clock")
        .expect_stderr("plus the allowed clock skew of 300 s");
    // The refused bundle moved no floor: an expiring bundle and a max_age bundle of another
    // channel import.
    import_at(&case, "ops.airlock", &["--policy", &policy], t + 60).expect_code(0);
    import_at(&case, "next.airlock", &["--policy", &policy], t + 60).expect_code(0);
}

/// A lab bundle imported while the importer's clock ran ten days ahead sets only lab's
/// clock floor: with the clock corrected, another channel's expiring bundle still imports.
#[test]
fn clock_floor_of_one_channel_does_not_expire_another_channels_bundles() {
    let case = Case::new();
    let policy = lab_policy(&case);
    let t = now();
    pack_as(&case, "lab.airlock", "other", "lab", t + 10 * DAY, &[]);
    import_at(&case, "lab.airlock", &["--policy", &policy], t + 10 * DAY).expect_code(0);
    pack_as(&case, "ops.airlock", "k", "ops", t, &["--expires", "1d"]);
    import_at(&case, "ops.airlock", &["--policy", &policy], t + 60).expect_code(0);
    // Within lab, the floor still decides.
    pack_as(&case, "lab2.airlock", "other", "lab", t, &["--expires", "1d"]);
    import_at(&case, "lab2.airlock", &["--policy", &policy], t + 60)
        .expect_code(1)
        .expect_stderr("the mirror's clock floor")
        .expect_stderr("for channel \"lab\"");
}

#[test]
fn future_created_bundle_is_refused_by_verify() {
    let case = Case::new();
    let t = now();
    pack_as(&case, "future.airlock", "k", "default", t + 3600, &[]);
    run(airlock()
        .args(["verify", &case.path("future.airlock").to_string_lossy(), "--quiet", "--trust"])
        .arg(case.path("k.pub"))
        .env("AIRLOCK_NOW", t.to_string()))
    .expect_code(1)
    .expect_stderr("later than this machine's clock");
    // Within the skew it is accepted.
    run(airlock()
        .args(["verify", &case.path("future.airlock").to_string_lossy(), "--quiet", "--trust"])
        .arg(case.path("k.pub"))
        .env("AIRLOCK_NOW", (t + 3600 - 300).to_string()))
    .expect_code(0);
}

#[test]
fn future_created_bundle_is_refused_by_sign() {
    let case = Case::new();
    let t = now();
    pack_as(&case, "future.airlock", "k", "default", t + 50 * 365 * DAY, &[]);
    let before = case.bytes("future.airlock");
    run(airlock()
        .current_dir(case.dir.path())
        .args(["sign", "future.airlock", "--key", "k2.sec", "--trust", "k.pub", "--quiet"])
        .env("AIRLOCK_NOW", t.to_string()))
    .expect_code(1)
    .expect_stderr("later than this machine's clock");
    assert_eq!(case.bytes("future.airlock"), before, "sign changed the refused bundle");
}

// ---------------------------------------------------------------------------------------
// the log's end

fn log_path(case: &Case) -> std::path::PathBuf {
    case.mirror().join(".airlock/log")
}

fn log_lines(case: &Case) -> Vec<String> {
    fs::read_to_string(log_path(case)).unwrap().lines().map(str::to_owned).collect()
}

fn write_log(case: &Case, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(log_path(case), text).unwrap();
}

/// SHA-256 hex of a log line.
fn line_digest(line: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(line.as_bytes()))
}

/// Rewrites `.airlock/log-head` to name the log as it now stands: what an attacker who
/// knows the format does after editing the log.
fn reanchor(case: &Case) {
    let lines = log_lines(case);
    let head = lines.last().map_or("0".repeat(64), |l| line_digest(l));
    fs::write(
        case.mirror().join(".airlock/log-head"),
        format!("{{\"records\":{},\"head\":\"{head}\"}}\n", lines.len()),
    )
    .unwrap();
}

/// Edits the last record's JSON and re-chains nothing (the last line has no successor).
fn edit_last(case: &Case, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut lines = log_lines(case);
    let mut record: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    edit(&mut record);
    *lines.last_mut().unwrap() = serde_json::to_string(&record).unwrap();
    write_log(case, &lines);
}

/// The mirror with `next` imported after `base`: two `imported` records.
fn two_imports() -> Case {
    let case = Case::new();
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    case
}

/// Importing anything into the tampered mirror fails with exit 2 and `message`, and leaves
/// every byte of the mirror (log included) as it was; so does `mirror verify`.
fn expect_tamper_detected(case: &Case, message: &str) {
    let before = snapshot(&case.mirror(), false);
    let listing_before = listing(case.dir.path());
    case.import("older.airlock", &["k"], &[]).expect_code(2).expect_stderr(message);
    run(airlock().arg("mirror").arg("verify").arg(case.mirror()).arg("--quiet")).expect_code(2).expect_stderr(message);
    assert_eq!(snapshot(&case.mirror(), false), before, "the tampered mirror changed");
    assert_eq!(listing(case.dir.path()), listing_before, "something was created outside the mirror");
}

#[test]
fn log_last_record_truncated() {
    let case = two_imports();
    let mut lines = log_lines(&case);
    lines.pop();
    write_log(&case, &lines);
    expect_tamper_detected(&case, "records were removed from or edited at the end of the log");
}

#[test]
fn log_last_record_truncated_and_anchor_rewritten() {
    let case = two_imports();
    let mut lines = log_lines(&case);
    lines.pop();
    write_log(&case, &lines);
    reanchor(&case);
    expect_tamper_detected(&case, "is named by no `imported` record of the log");
}

#[test]
fn log_last_record_event_edited() {
    let case = two_imports();
    edit_last(&case, |r| r["event"] = "rejected".into());
    expect_tamper_detected(&case, "records were removed from or edited at the end of the log");
}

#[test]
fn log_last_record_event_edited_and_anchor_rewritten() {
    let case = two_imports();
    edit_last(&case, |r| r["event"] = "rejected".into());
    reanchor(&case);
    expect_tamper_detected(&case, "is named by no `imported` record of the log");
}

#[test]
fn log_last_record_sequence_edited() {
    let case = two_imports();
    edit_last(&case, |r| r["bundle"]["sequence"] = 7.into());
    expect_tamper_detected(&case, "records were removed from or edited at the end of the log");
}

#[test]
fn log_last_record_sequence_edited_and_anchor_rewritten() {
    let case = two_imports();
    edit_last(&case, |r| r["bundle"]["sequence"] = 7.into());
    reanchor(&case);
    expect_tamper_detected(&case, "says sequence 7 but the kept manifest");
}

#[test]
fn log_last_record_created_edited_and_anchor_rewritten() {
    let case = two_imports();
    edit_last(&case, |r| r["bundle"]["created"] = 1.into());
    reanchor(&case);
    expect_tamper_detected(&case, "says created 1 but the kept manifest");
}

/// An old import appended again would set its channel's last sequence back.
#[test]
fn log_old_import_replayed_at_the_end() {
    let case = two_imports();
    let mut lines = log_lines(&case);
    let mut first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    first["prev"] = line_digest(lines.last().unwrap()).into();
    lines.push(serde_json::to_string(&first).unwrap());
    write_log(&case, &lines);
    reanchor(&case);
    expect_tamper_detected(&case, "a second time (the log was edited)");
}

#[test]
fn kept_head_removed() {
    let case = two_imports();
    let last: serde_json::Value = serde_json::from_str(log_lines(&case).last().unwrap()).unwrap();
    let digest = last["bundle"]["manifest_sha256"].as_str().unwrap().to_owned();
    fs::remove_dir_all(case.mirror().join(".airlock/bundles").join(&digest)).unwrap();
    expect_tamper_detected(&case, "its kept head cannot be used");
}

#[test]
fn kept_head_without_a_record_planted() {
    let case = Case::new();
    let fake = "ab".repeat(32);
    fs::create_dir(case.mirror().join(".airlock/bundles").join(&fake)).unwrap();
    expect_tamper_detected(&case, &format!(".airlock/bundles/{fake} is named by no `imported` record"));
}

#[test]
fn log_anchor_unreadable() {
    let case = Case::new();
    fs::write(case.mirror().join(".airlock/log-head"), "garbage").unwrap();
    expect_tamper_detected(&case, ".airlock/log-head: unreadable");
}

/// A mirror made before the anchor existed (no `.airlock/log-head`) imports, and gets one.
#[test]
fn mirror_without_anchor_still_imports() {
    let case = Case::new();
    let anchor = case.mirror().join(".airlock/log-head");
    fs::remove_file(&anchor).unwrap();
    run(airlock().arg("mirror").arg("log").arg(case.mirror())).expect_code(0);
    assert!(!anchor.exists(), "mirror log (a reader) wrote the anchor");
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    let lines = log_lines(&case);
    let text = fs::read_to_string(&anchor).unwrap();
    assert_eq!(text, format!("{{\"records\":{},\"head\":\"{}\"}}\n", lines.len(), line_digest(lines.last().unwrap())));
}

/// Killed after the log append and before the anchor's rewrite: the anchor is one record
/// behind, which readers accept and the next run moves forward; the import is complete.
#[test]
fn crash_between_log_append_and_anchor_write() {
    let case = Case::new();
    let anchor = case.mirror().join(".airlock/log-head");
    let before = fs::read_to_string(&anchor).unwrap();
    let out = run(case.import_command("next.airlock", &["k"], &[]).env("AIRLOCK_TEST_CRASH_AT", "log-appended"));
    assert_ne!(out.code, 0, "the import was to be killed: {}", out.stderr);
    assert_eq!(fs::read_to_string(&anchor).unwrap(), before, "the anchor moved before the crash point");
    run(airlock().arg("mirror").arg("log").arg(case.mirror())).expect_code(0);
    run(airlock().arg("mirror").arg("verify").arg(case.mirror()).arg("--quiet")).expect_code(0);
    let lines = log_lines(&case);
    assert!(fs::read_to_string(&anchor).unwrap().contains(&line_digest(lines.last().unwrap())));
    let imports = lines.iter().filter(|l| l.contains("\"event\":\"imported\"")).count();
    assert_eq!(imports, 2, "the import is logged exactly once");
    assert!(!case.mirror().join(".airlock/pending").exists());
    assert_eq!(fs::read(case.mirror().join("a.txt")).unwrap(), b"alpha two\n");
}

/// Killed in the middle of an append (a torn last line after the anchored records): the
/// next run cuts it off and imports.
#[test]
fn torn_log_append_is_cut_off() {
    let case = Case::new();
    let log = log_path(&case);
    let whole = fs::read_to_string(&log).unwrap();
    fs::write(&log, format!("{whole}{{\"prev\":\"00")).unwrap();
    run(airlock().arg("mirror").arg("log").arg(case.mirror())).expect_code(0);
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.starts_with(&whole) && !text.contains("{\"prev\":\"00{"), "{text}");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// links and special files in .airlock/

/// Moves `.airlock/<name>` (if any) to `<case>/outside/<name>` and puts a symbolic link to
/// it in its place; imports `next`; expects exit 2 naming the link, and nothing written
/// outside the mirror.
fn expect_link_refused(name: &str) {
    let case = Case::new();
    let outside = case.path("outside");
    fs::create_dir(&outside).unwrap();
    let (inner, target) = if name.is_empty() {
        (case.mirror().join(".airlock"), outside.join("airlock"))
    } else {
        (case.mirror().join(".airlock").join(name), outside.join(name))
    };
    if inner.exists() {
        fs::rename(&inner, &target).unwrap();
    }
    symlink(&target, &inner).unwrap();
    let shown = if name.is_empty() { ".airlock".to_owned() } else { format!(".airlock/{name}") };
    let outside_before = snapshot(&outside, false);
    let mirror_before = snapshot(&case.mirror(), false);
    for args in [vec!["mirror", "log"], vec!["mirror", "verify"]] {
        run(airlock().args(&args).arg(case.mirror())).expect_code(2).expect_stderr(&shown);
    }
    case.import("next.airlock", &["k"], &[])
        .expect_code(2)
        .expect_stderr(&format!("{shown}: is a symbolic link, not a"));
    assert_eq!(snapshot(&outside, false), outside_before, "written through the link");
    assert_eq!(snapshot(&case.mirror(), false), mirror_before, "the mirror changed");
    let canary: Vec<_> = fs::read_dir(case.path("canary")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(canary, ["mirror"], "something was created next to the mirror");
}

#[test]
fn symlink_at_metadata_dir() {
    expect_link_refused("");
}

#[test]
fn symlink_at_bundles() {
    expect_link_refused("bundles");
}

#[test]
fn symlink_at_staging() {
    expect_link_refused("staging");
}

#[test]
fn symlink_at_log() {
    expect_link_refused("log");
}

#[test]
fn symlink_at_log_head() {
    expect_link_refused("log-head");
}

#[test]
fn symlink_at_pending() {
    expect_link_refused("pending");
}

#[test]
fn symlink_at_lock() {
    expect_link_refused("lock");
}

#[test]
fn symlink_at_format() {
    expect_link_refused("FORMAT");
}

#[test]
fn symlink_at_id() {
    expect_link_refused("id");
}

#[test]
fn symlink_at_stamps() {
    expect_link_refused("stamps");
}

#[test]
fn symlink_at_attic() {
    expect_link_refused("attic");
}

/// A FIFO where the stamps go is refused at once (never opened, so nothing hangs).
#[test]
fn fifo_at_stamps() {
    let case = Case::new();
    let stamps = case.mirror().join(".airlock/stamps");
    fs::remove_file(&stamps).unwrap();
    if !mkfifo(&stamps) {
        eprintln!("mkfifo is not available; skipped");
        return;
    }
    case.import("next.airlock", &["k"], &[])
        .expect_code(2)
        .expect_stderr(".airlock/stamps: is a FIFO, not a regular file");
}

#[test]
fn symlink_at_kept_head() {
    let case = Case::new();
    let bundles = case.mirror().join(".airlock/bundles");
    let kept = fs::read_dir(&bundles).unwrap().next().unwrap().unwrap().path();
    let outside = case.path("outside");
    fs::rename(&kept, &outside).unwrap();
    symlink(&outside, &kept).unwrap();
    let before = snapshot(&case.mirror(), false);
    case.import("next.airlock", &["k"], &[]).expect_code(2).expect_stderr("is a symbolic link, not a directory");
    assert_eq!(snapshot(&case.mirror(), false), before);
}

fn mkfifo(path: &Path) -> bool {
    Command::new("mkfifo").arg(path).status().is_ok_and(|s| s.success())
}

/// A FIFO in `.airlock/` is refused at once (never opened, so nothing hangs).
#[test]
fn fifo_at_pending() {
    let case = Case::new();
    let pending = case.mirror().join(".airlock/pending");
    if !mkfifo(&pending) {
        eprintln!("mkfifo is not available; skipped");
        return;
    }
    for args in [vec!["mirror", "log"], vec!["mirror", "verify"]] {
        run(airlock().args(&args).arg(case.mirror())).expect_code(2).expect_stderr(".airlock/pending: is a FIFO");
    }
    case.import("next.airlock", &["k"], &[])
        .expect_code(2)
        .expect_stderr(".airlock/pending: is a FIFO, not a regular file");
}

#[test]
fn fifo_at_lock() {
    let case = Case::new();
    let lock = case.mirror().join(".airlock/lock");
    fs::remove_file(&lock).unwrap();
    if !mkfifo(&lock) {
        eprintln!("mkfifo is not available; skipped");
        return;
    }
    run(airlock().arg("mirror").arg("log").arg(case.mirror())).expect_code(2).expect_stderr(".airlock/lock: is a FIFO");
    case.import("next.airlock", &["k"], &[]).expect_code(2).expect_stderr(".airlock/lock: is a FIFO");
}

#[test]
fn socket_at_log() {
    let case = Case::new();
    let log = case.mirror().join(".airlock/log");
    fs::remove_file(&log).unwrap();
    let _socket = UnixListener::bind(&log).unwrap();
    case.import("next.airlock", &["k"], &[])
        .expect_code(2)
        .expect_stderr(".airlock/log: is a socket, not a regular file");
}

/// A hard link to the log elsewhere (a snapshot backup, say) is never appended through:
/// the log is replaced by a copy first.
#[test]
fn hard_linked_log_is_unshared_before_appending() {
    let case = Case::new();
    let log = log_path(&case);
    let backup = case.path("backup-log");
    fs::hard_link(&log, &backup).unwrap();
    let before = fs::read(&backup).unwrap();
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    assert_eq!(fs::read(&backup).unwrap(), before, "the append went through the hard link");
    assert!(fs::read(&log).unwrap().len() > before.len());
}

// ---------------------------------------------------------------------------------------
// special files and hard links where a bundle's file goes

#[test]
fn fifo_where_a_file_goes() {
    let case = Case::new();
    let target = case.mirror().join("a.txt");
    fs::remove_file(&target).unwrap();
    if !mkfifo(&target) {
        eprintln!("mkfifo is not available; skipped");
        return;
    }
    case.expect_rejected("next.airlock", "entry \"a.txt\": the mirror has a FIFO where this file goes");
}

#[test]
fn socket_where_a_file_goes() {
    let case = Case::new();
    let target = case.mirror().join("a.txt");
    fs::remove_file(&target).unwrap();
    let _socket = UnixListener::bind(&target).unwrap();
    case.expect_rejected("next.airlock", "entry \"a.txt\": the mirror has a socket where this file goes");
}

#[test]
fn symlink_where_a_file_goes() {
    let case = Case::new();
    let target = case.mirror().join("a.txt");
    fs::remove_file(&target).unwrap();
    symlink(case.path("k.pub"), &target).unwrap();
    case.expect_rejected("next.airlock", "entry \"a.txt\": the mirror has a directory or link where this file goes");
}

/// A hard link where a file goes is replaced by a rename: the mirror's name gets the new
/// content, the other name keeps the old.
#[test]
fn hard_link_where_a_file_goes_is_replaced_not_written_through() {
    let case = Case::new();
    let outside = case.path("outside.txt");
    fs::hard_link(case.mirror().join("a.txt"), &outside).unwrap();
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    assert_eq!(fs::read(case.mirror().join("a.txt")).unwrap(), b"alpha two\n");
    assert_eq!(fs::read(&outside).unwrap(), b"alpha\n", "the import wrote through the hard link");
    run(airlock().arg("mirror").arg("verify").arg(case.mirror()).arg("--quiet")).expect_code(0);
}
