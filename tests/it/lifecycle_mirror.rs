//! The mirror's lifecycle (issue #12, inside half): one test per attack or operator mistake.
//!
//! - Explicit mirrors: a missing or mistyped `--mirror` is refused, naming `mirror init`.
//! - Ownership: files no channel owns, and another channel's files, are never overwritten
//!   or retired; every conflict is listed; the mirror is untouched.
//! - Delta bundles: an entry the bundle does not carry must be in the mirror as signed
//!   (by stat stamp or by re-hash), and the delta must be for this mirror; otherwise the
//!   import is rejected before staging, naming the entries, with the mirror untouched.
//! - Retirement: a complete manifest retires the channel's files it no longer lists, in the
//!   commit, removed or moved to the attic; a mass retirement needs a flag.
//! - Repair, resume, and version-1 bundles importing additively as before.
//!
//! Bundles are packed with the library (`airlock::pack`), which builds delta bundles from a
//! `PackBase` as `pack --since` will, and imported with the command line.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock::format::manifest::{Entry, Manifest, MirrorId};
use airlock::io::durable::Overwrite;
use airlock::pack::{PackBase, PackOptions};
use airlock::progress::NoProgress;
use airlock::SecretKey;

use crate::kit::*;

/// A workbench: key `k`, a mirror `m` made with `mirror init`, and per channel the last
/// bundle packed (its sequence and manifest), so bundles chain as a packer's would.
struct Lab {
    dir: tempfile::TempDir,
    key: SecretKey,
    last: BTreeMap<String, Packed>,
    /// The mirror (`<dir>/m` unless a test puts it elsewhere).
    mirror: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        Lab::with_mirror(None)
    }

    /// A lab whose mirror is `mirror` (a directory to create) instead of `<dir>/m`.
    fn with_mirror(mirror: Option<PathBuf>) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path(), "k");
        let key = load_secret(&dir.path().join("k.sec"));
        let mirror = mirror.unwrap_or_else(|| dir.path().join("m"));
        let lab = Lab { dir, key, last: BTreeMap::new(), mirror };
        run(airlock().arg("mirror").arg("init").arg(lab.mirror())).expect_code(0).expect_stdout("with id");
        lab
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mirror(&self) -> PathBuf {
        self.mirror.clone()
    }

    fn mirror_id(&self) -> MirrorId {
        let text = fs::read_to_string(self.mirror().join(".airlock/id")).unwrap();
        MirrorId::from_hex(text.trim_end()).unwrap()
    }

    /// Sets the source tree of `channel` to exactly `files` (path, content).
    fn tree(&self, channel: &str, files: &[(&str, &[u8])]) {
        let src = self.path(&format!("src-{channel}"));
        let _ = fs::remove_dir_all(&src);
        fs::create_dir_all(&src).unwrap();
        for (path, content) in files {
            write(&src, path, content, 0o644);
        }
    }

    /// Packs the channel's tree as its next bundle: full, or a delta against the last
    /// bundle of the channel for the mirror `base_mirror`.
    fn pack(&mut self, channel: &str, out: &str, base_mirror: Option<MirrorId>) -> Packed {
        let last = self.last.get(channel);
        let sequence = last.map_or(1, |r| r.manifest.sequence + 1);
        let mut opts = PackOptions::new(
            vec![self.path(&format!("src-{channel}"))],
            channel,
            sequence,
            airlock::clock::system_now(),
        );
        opts.previous = last.map(|r| r.manifest_digest);
        opts.base = match (base_mirror, last) {
            (Some(mirror), Some(r)) => {
                Some(PackBase { mirror, manifest: r.manifest_digest, entries: r.manifest.entries.clone() })
            }
            _ => None,
        };
        let report =
            airlock::pack(&opts, std::slice::from_ref(&self.key), &self.path(out), Overwrite::NoClobber, &NoProgress)
                .unwrap();
        let packed =
            Packed { manifest: report.manifest, manifest_digest: report.manifest_digest, carried: report.carried };
        self.last.insert(channel.to_owned(), packed.clone());
        packed
    }

    /// `pack` of a full bundle.
    fn full(&mut self, channel: &str, out: &str) -> Packed {
        self.pack(channel, out, None)
    }

    /// `pack` of a delta for this lab's mirror.
    fn delta(&mut self, channel: &str, out: &str) -> Packed {
        let id = self.mirror_id();
        self.pack(channel, out, Some(id))
    }

    fn import_command(&self, bundle: &str, extra: &[&str]) -> Command {
        let mut cmd = airlock();
        cmd.arg("import")
            .arg(self.path(bundle))
            .arg("--trust")
            .arg(self.path("k.pub"))
            .arg("--mirror")
            .arg(self.mirror())
            .args(extra);
        cmd
    }

    fn import(&self, bundle: &str, extra: &[&str]) -> Run {
        run(&mut self.import_command(bundle, extra))
    }

    fn verify_mirror(&self) -> Run {
        run(airlock().arg("mirror").arg("verify").arg(self.mirror()).arg("--quiet"))
    }

    /// The mirror's files and `.airlock/` (kept heads, stamps, FORMAT, id), except the log.
    fn state(&self) -> BTreeMap<String, String> {
        let mut s = snapshot(&self.mirror(), false);
        s.remove(".airlock/log");
        s.remove(".airlock/log-head");
        // Made by the first command that locks the mirror.
        s.remove(".airlock/lock");
        s
    }

    fn files(&self) -> BTreeMap<String, String> {
        snapshot(&self.mirror(), true).into_iter().filter(|(_, v)| v.starts_with("file")).collect()
    }

    fn log(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.mirror().join(".airlock/log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Imports `bundle` expecting a refusal with `code` and `message`: the mirror and its
    /// metadata unchanged, the log grown by exactly one `rejected` (or `failed`) record,
    /// no staging left.
    fn expect_refused(&self, bundle: &str, extra: &[&str], code: i32, message: &str) -> Run {
        let before = self.state();
        let records = self.log().len();
        let out = self.import(bundle, extra);
        out.expect_code(code).expect_stderr(message);
        assert_eq!(self.state(), before, "the mirror changed");
        let log = self.log();
        assert_eq!(log.len(), records + 1, "one record per refused import");
        let event = if code == 1 { "rejected" } else { "failed" };
        assert_eq!(log[records]["event"], event);
        assert_eq!(fs::read_dir(self.mirror().join(".airlock/staging")).unwrap().count(), 0, "staging left");
        out
    }
}

/// What a test needs of a pack: the manifest, its digest, how many entries were carried.
#[derive(Clone)]
struct Packed {
    manifest: Manifest,
    manifest_digest: airlock::Digest,
    carried: u64,
}

trait ExpectStdout {
    fn expect_stdout(&self, text: &str) -> &Self;
}

impl ExpectStdout for Run {
    fn expect_stdout(&self, text: &str) -> &Run {
        assert!(self.stdout.contains(text), "stdout lacks {text:?}:\n{}", self.stdout);
        self
    }
}

const WEEK1: &[(&str, &[u8])] = &[("pool/a.deb", b"a version 1\n"), ("pool/b.deb", b"b\n"), ("pool/c.deb", b"c\n")];
const WEEK2: &[(&str, &[u8])] = &[("pool/a.deb", b"a version 2\n"), ("pool/b.deb", b"b\n"), ("pool/d.deb", b"d\n")];

/// Week 1 imported in full into a fresh lab.
fn week1() -> Lab {
    let mut lab = Lab::new();
    lab.tree("deb", WEEK1);
    lab.full("deb", "w1.airlock");
    lab.import("w1.airlock", &[]).expect_code(0);
    lab
}

// ---------------------------------------------------------------------------------------
// explicit mirrors

/// A typo in `--mirror` used to create an empty mirror with no history, where a rollback
/// would be accepted. Now a directory that is not a mirror (existing or not) is refused
/// with exit 2, naming `mirror init` and `--init`, and nothing is created.
#[test]
fn import_refuses_missing_mirror_and_names_init() {
    let mut lab = Lab::new();
    lab.tree("deb", WEEK1);
    lab.full("deb", "w1.airlock");
    for dir in ["typo", "plain"] {
        if dir == "plain" {
            fs::create_dir(lab.path("plain")).unwrap();
            write(&lab.path("plain"), "notes.txt", b"mine\n", 0o644);
        }
        let before = snapshot(&lab.path(dir), false);
        let out = run(airlock()
            .arg("import")
            .arg(lab.path("w1.airlock"))
            .arg("--trust")
            .arg(lab.path("k.pub"))
            .arg("--mirror")
            .arg(lab.path(dir)));
        out.expect_code(2).expect_stderr("is not an airlock mirror").expect_stderr("airlock mirror init");
        out.expect_stderr("--init");
        assert_eq!(snapshot(&lab.path(dir), false), before, "{dir}: something was created");
    }
    assert!(!lab.path("typo").exists());
    // `--init` creates it first; `mirror init` refuses an existing mirror.
    let out = run(airlock()
        .arg("import")
        .arg(lab.path("w1.airlock"))
        .arg("--trust")
        .arg(lab.path("k.pub"))
        .arg("--mirror")
        .arg(lab.path("typo"))
        .arg("--init"));
    out.expect_code(0).expect_stdout("created mirror");
    let id = fs::read_to_string(lab.path("typo/.airlock/id")).unwrap();
    assert!(MirrorId::from_hex(id.trim_end()).is_some() && id.ends_with('\n'), "{id:?}");
    assert_eq!(fs::read_to_string(lab.path("typo/.airlock/FORMAT")).unwrap(), "airlock-mirror 2\n");
    run(airlock().arg("mirror").arg("init").arg(lab.path("typo")))
        .expect_code(2)
        .expect_stderr("already an airlock mirror");
}

/// A version-1 mirror (no id) still opens; its first write under the lock gives it an id
/// and FORMAT 2, and the id then stays.
#[test]
fn version_1_mirror_is_upgraded_in_place() {
    let lab = week1();
    let meta = lab.mirror().join(".airlock");
    fs::remove_file(meta.join("id")).unwrap();
    fs::write(meta.join("FORMAT"), "airlock-mirror 1\n").unwrap();
    run(airlock().arg("mirror").arg("log").arg(lab.mirror())).expect_code(0);
    assert!(!meta.join("id").exists(), "mirror log wrote");
    lab.verify_mirror().expect_code(0);
    assert_eq!(fs::read_to_string(meta.join("FORMAT")).unwrap(), "airlock-mirror 2\n");
    let id = lab.mirror_id();
    lab.verify_mirror().expect_code(0);
    assert_eq!(lab.mirror_id(), id);
}

// ---------------------------------------------------------------------------------------
// ownership

/// Pointing `--mirror` at a directory with files airlock did not place used to overwrite
/// them. Every conflicting path is listed, the import rejected, nothing changed.
#[test]
fn import_refuses_unowned_file_and_lists_all_conflicts() {
    let mut lab = Lab::new();
    lab.tree("deb", WEEK1);
    lab.full("deb", "w1.airlock");
    write(&lab.mirror(), "pool/a.deb", b"someone else's\n", 0o644);
    write(&lab.mirror(), "pool/c.deb", b"and another\n", 0o644);
    let out = lab.expect_refused("w1.airlock", &[], 1, "2 entries cannot be placed");
    out.expect_stderr("\"pool/a.deb\"").expect_stderr("\"pool/c.deb\"").expect_stderr("not placed by airlock");
    out.expect_stderr("move it away");
    assert_eq!(fs::read(lab.mirror().join("pool/a.deb")).unwrap(), b"someone else's\n");
}

/// One channel's signer cannot overwrite another channel's files (a path listed by both),
/// and a channel's complete manifest retires only its own files.
#[test]
fn channel_cannot_overwrite_or_retire_another_channels_file() {
    let mut lab = week1();
    lab.tree("ops", &[("ops/x.conf", b"x\n"), ("ops/y.conf", b"y\n")]);
    let o1 = lab.full("ops", "o1.airlock");
    lab.import("o1.airlock", &[]).expect_code(0);
    // Overwrite: ops lists deb's file.
    lab.tree("ops", &[("ops/x.conf", b"x\n"), ("pool/a.deb", b"evil\n")]);
    lab.full("ops", "o2.airlock");
    let out = lab.expect_refused("o2.airlock", &[], 1, "entry \"pool/a.deb\"");
    out.expect_stderr("belongs to channel \"deb\"");
    // Retire: ops' next complete state lists only its own x.conf; deb's files stay.
    let before = lab.files();
    lab.last.insert("ops".into(), o1);
    lab.tree("ops", &[("ops/x.conf", b"x\n")]);
    lab.full("ops", "o3.airlock");
    lab.import("o3.airlock", &[]).expect_code(0).expect_stdout("retired 1 files");
    let mut want = before;
    want.remove("ops/y.conf");
    assert_eq!(lab.files(), want);
    lab.verify_mirror().expect_code(0);
}

// ---------------------------------------------------------------------------------------
// delta bundles

/// A delta omits `pool/b.deb`, which someone deleted from the mirror: rejected before
/// staging, naming it and saying what to do, with the mirror untouched.
#[test]
fn delta_with_missing_base_entry_is_rejected_untouched() {
    let mut lab = week1();
    lab.tree("deb", WEEK2);
    let report = lab.delta("deb", "w2.airlock");
    assert_eq!(report.carried, 2, "a.deb changed and d.deb is new; b.deb is omitted");
    fs::remove_file(lab.mirror().join("pool/b.deb")).unwrap();
    let out = lab.expect_refused("w2.airlock", &[], 1, "\"pool/b.deb\" (missing)");
    out.expect_stderr("re-pack from a fresh receipt").expect_stderr("or send a full bundle");
}

/// A delta omits `pool/b.deb`, whose content in the mirror was changed: found by the stat
/// stamp (the default) and by `--base-check hash`, and rejected either way.
#[test]
fn delta_with_modified_base_entry_is_rejected() {
    for mode in ["stat", "hash"] {
        let mut lab = week1();
        lab.tree("deb", WEEK2);
        lab.delta("deb", "w2.airlock");
        // Same size, same mode, other content: only the stamp or the hash can tell.
        write(&lab.mirror(), "pool/b.deb", b"B\n", 0o644);
        let out = lab.expect_refused("w2.airlock", &["--base-check", mode], 1, "\"pool/b.deb\" (SHA-256");
        out.expect_stderr("1 entries the bundle does not carry");
    }
}

/// An unchanged delta base imports; the mirror then equals the signed manifest exactly,
/// and the breakdown is printed and logged.
#[test]
fn delta_imports_and_reports_the_breakdown() {
    let mut lab = week1();
    lab.tree("deb", WEEK2);
    lab.delta("deb", "w2.airlock");
    for mode in ["stat", "hash"] {
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("m");
        let probe = Lab { dir, key: load_secret(&lab.path("k.sec")), last: BTreeMap::new(), mirror };
        copy_tree(lab.dir.path(), probe.dir.path());
        let out = probe.import("w2.airlock", &["--base-check", mode]);
        out.expect_code(0);
        out.expect_stdout(
            "changes: 1 added (2 bytes), 1 changed (12 bytes), 1 removed (2 bytes), 1 unchanged (2 bytes)",
        );
        out.expect_stdout("14 bytes written");
        let mut want = BTreeMap::new();
        for (path, content) in WEEK2 {
            want.insert(path.to_string(), format!("file 644 {}", hex(&sha2_of(content))));
        }
        assert_eq!(probe.files(), want, "{mode}");
        probe.verify_mirror().expect_code(0);
        let last = probe.log().pop().unwrap();
        assert_eq!(last["changes"]["added"], serde_json::json!([1, 2]));
        assert_eq!(last["changes"]["written_bytes"], 14);
        assert_eq!(last["retired"], serde_json::json!(["pool/c.deb"]));
    }
}

fn sha2_of(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

/// The cost model (FORMAT.md §10): `--base-check stat` trusts a file whose stamp is
/// unchanged and does not read it; `--base-check hash` reads every kept file. Shown with a
/// stamps file rewritten to match a modified file (what only someone who can write
/// `.airlock/` can do): hash mode still finds the change, stat mode by design does not,
/// and `mirror verify` (which always hashes) reports it afterwards.
#[test]
fn stat_mode_trusts_the_stamp_and_hash_mode_reads_the_file() {
    let mut lab = week1();
    lab.tree("deb", WEEK2);
    lab.delta("deb", "w2.airlock");
    write(&lab.mirror(), "pool/b.deb", b"B\n", 0o644);
    let stamps = lab.mirror().join(".airlock/stamps");
    let meta = fs::symlink_metadata(lab.mirror().join("pool/b.deb")).unwrap();
    let forged: String = fs::read_to_string(&stamps)
        .unwrap()
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["path"] == "pool/b.deb" {
                use std::os::unix::fs::MetadataExt;
                v["mtime_ns"] = (meta.mtime() * 1_000_000_000 + meta.mtime_nsec()).into();
                v["ctime_ns"] = (meta.ctime() * 1_000_000_000 + meta.ctime_nsec()).into();
                v["ino"] = meta.ino().into();
                v["dev"] = meta.dev().into();
            }
            format!("{v}\n")
        })
        .collect();
    fs::write(&stamps, forged).unwrap();
    lab.expect_refused("w2.airlock", &["--base-check", "hash"], 1, "\"pool/b.deb\" (SHA-256");
    lab.import("w2.airlock", &["--base-check", "stat"]).expect_code(0);
    lab.verify_mirror().expect_code(1).expect_stdout("modified  pool/b.deb");
}

/// Week 2 of a mirror on a nearly full file system: the full bundle is refused for space
/// (it would write every file), the delta imports (it writes only the changes). Needs root
/// to mount a small tmpfs.
#[test]
fn delta_fits_where_a_full_bundle_does_not() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("fs");
    fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&mnt).status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let mut lab = Lab::with_mirror(Some(mnt.join("m")));
    let big = big_content(2_500_000);
    lab.tree("deb", &[("pool/big.deb", &big), ("pool/a.deb", b"a 1\n")]);
    lab.full("deb", "w1.airlock");
    lab.import("w1.airlock", &[]).expect_code(0);
    lab.tree("deb", &[("pool/big.deb", &big), ("pool/a.deb", b"a 2\n")]);
    let w1 = lab.last.get("deb").cloned();
    lab.full("deb", "w2-full.airlock");
    lab.expect_refused("w2-full.airlock", &[], 2, "not enough free space: the bundle needs 2500004 bytes");
    lab.last.insert("deb".into(), w1.unwrap());
    lab.delta("deb", "w2.airlock");
    lab.import("w2.airlock", &[]).expect_code(0).expect_stdout("4 bytes written");
    lab.verify_mirror().expect_code(0);
}

/// A delta built for another mirror (a receipt from elsewhere) is refused naming both
/// ids, even though every omitted file happens to be here.
#[test]
fn delta_for_another_mirror_is_rejected() {
    let mut lab = week1();
    lab.tree("deb", WEEK2);
    let other = MirrorId([7; 16]);
    lab.pack("deb", "w2.airlock", Some(other));
    let out = lab.expect_refused("w2.airlock", &[], 1, &format!("built for mirror {other}"));
    out.expect_stderr(&format!("this mirror is {}", lab.mirror_id()));
}

// ---------------------------------------------------------------------------------------
// retirement

/// Files the channel's new complete manifest no longer lists leave the mirror in the same
/// commit; the log names them and `mirror verify` stays clean.
#[test]
fn retirement_removes_and_logs() {
    let mut lab = week1();
    lab.tree("deb", WEEK2);
    lab.full("deb", "w2.airlock");
    lab.import("w2.airlock", &[]).expect_code(0).expect_stdout("retired 1 files (removed)");
    assert!(!lab.mirror().join("pool/c.deb").exists());
    assert_eq!(lab.files().len(), 3);
    let last = lab.log().pop().unwrap();
    assert_eq!(last["event"], "imported");
    assert_eq!(last["retired"], serde_json::json!(["pool/c.deb"]));
    assert_eq!(last["changes"]["removed"], serde_json::json!([1, 2]));
    lab.verify_mirror().expect_code(0).expect_stdout("OK: 3 files");
}

/// With `--attic` a retired file is moved to `.airlock/attic/<date>-<manifest>/`, not lost.
#[test]
fn retirement_to_attic() {
    let mut lab = week1();
    lab.tree("deb", WEEK2);
    let report = lab.full("deb", "w2.airlock");
    lab.import("w2.airlock", &["--attic"]).expect_code(0).expect_stdout("retired 1 files to .airlock/attic/");
    let attic: Vec<String> = fs::read_dir(lab.mirror().join(".airlock/attic"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(attic.len(), 1);
    let name = &attic[0];
    assert!(name.ends_with(&format!("-{}", report.manifest_digest.to_hex())), "{name}");
    assert_eq!(name.find('-'), Some(8), "{name}: YYYYMMDD-<manifest>");
    let kept = lab.mirror().join(".airlock/attic").join(name).join("pool/c.deb");
    assert_eq!(fs::read(kept).unwrap(), b"c\n");
    assert!(!lab.mirror().join("pool/c.deb").exists());
    assert_eq!(lab.log().pop().unwrap()["attic"], name.as_str());
    lab.verify_mirror().expect_code(0);
}

/// A bundle that would retire more than half of a channel's files (and more than 10) is
/// refused unless the operator says so.
#[test]
fn mass_retirement_needs_flag() {
    let mut lab = Lab::new();
    let many: Vec<(String, Vec<u8>)> =
        (0..30).map(|i| (format!("pool/f{i:02}"), format!("{i}\n").into_bytes())).collect();
    let files: Vec<(&str, &[u8])> = many.iter().map(|(p, c)| (p.as_str(), c.as_slice())).collect();
    lab.tree("deb", &files);
    lab.full("deb", "w1.airlock");
    lab.import("w1.airlock", &[]).expect_code(0);
    lab.tree("deb", &files[..5]);
    lab.full("deb", "w2.airlock");
    let out = lab.expect_refused("w2.airlock", &[], 1, "no longer lists 25 of the channel's 30 files");
    out.expect_stderr("--allow-mass-retire");
    lab.import("w2.airlock", &["--allow-mass-retire"]).expect_code(0).expect_stdout("retired 25 files");
    assert_eq!(lab.files().len(), 5);
}

// ---------------------------------------------------------------------------------------
// repair

/// After damage (one file modified, one deleted) `mirror verify` names them and re-importing
/// used to say "already imported"; `--repair` with the same bundle restores exactly them,
/// logs `repaired`, and the mirror verifies again. A delta that does not carry a damaged
/// file says so (exit 1).
#[test]
fn repair_restores_damaged_files() {
    let mut lab = week1();
    lab.tree("deb", WEEK2);
    lab.delta("deb", "w2.airlock");
    lab.import("w2.airlock", &[]).expect_code(0);
    let good = lab.files();
    write(&lab.mirror(), "pool/a.deb", b"a version X\n", 0o644);
    fs::remove_file(lab.mirror().join("pool/b.deb")).unwrap();
    let verify = lab.verify_mirror();
    verify.expect_code(1).expect_stdout("missing   pool/b.deb").expect_stdout("modified  pool/a.deb");
    // w2 carries a.deb but not b.deb (a delta): one repaired, one named as not repairable.
    let out = lab.import("w2.airlock", &["--repair"]);
    out.expect_code(1).expect_stdout("repaired      pool/a.deb").expect_stderr("not repaired: pool/b.deb");
    // w1 (older, already imported) carries b.deb as the current state names it.
    let out = lab.import("w1.airlock", &["--repair"]);
    out.expect_code(0).expect_stdout("repaired      pool/b.deb").expect_stdout("0 damaged files remain");
    assert_eq!(lab.files(), good);
    lab.verify_mirror().expect_code(0);
    let repairs: Vec<_> = lab.log().into_iter().filter(|r| r["event"] == "repaired").collect();
    assert_eq!(repairs.len(), 2);
    assert_eq!(repairs[1]["repaired"], serde_json::json!(["pool/b.deb"]));
    lab.import("w1.airlock", &["--repair"]).expect_code(0).expect_stdout("nothing to repair");
}

// ---------------------------------------------------------------------------------------
// resume

/// An import killed after staging everything used to start over. The rerun of the same
/// bundle reuses every staged, verified, journaled file (and still reads the bundle), and
/// the mirror ends exactly as a clean import leaves it. Another bundle's import discards a
/// stale staging instead.
#[test]
fn killed_import_resumes_with_staged_files() {
    let mut lab = week1();
    let big: Vec<(String, Vec<u8>)> =
        (0..12).map(|i| (format!("big/f{i:02}.bin"), big_content(300_000 + i * 7))).collect();
    let mut files: Vec<(&str, &[u8])> = big.iter().map(|(p, c)| (p.as_str(), c.as_slice())).collect();
    files.extend_from_slice(WEEK1);
    lab.tree("deb", &files);
    lab.full("deb", "w2.airlock");
    let reference = tempfile::tempdir().unwrap();
    copy_tree(&lab.mirror(), &reference.path().join("m"));
    let killed = run(lab.import_command("w2.airlock", &[]).env("AIRLOCK_TEST_CRASH_AT", "staged"));
    assert_eq!(killed.code, -1, "not killed: {}", killed.stderr);
    lab.verify_mirror().expect_code(0);
    let staging: Vec<_> = fs::read_dir(lab.mirror().join(".airlock/staging")).unwrap().collect();
    assert_eq!(staging.len(), 1, "the journaled staging is kept for the rerun");
    let out = lab.import("w2.airlock", &[]);
    out.expect_code(0).expect_stdout("resumed 15 files");
    run(airlock()
        .arg("import")
        .arg(lab.path("w2.airlock"))
        .arg("--trust")
        .arg(lab.path("k.pub"))
        .arg("--mirror")
        .arg(reference.path().join("m"))
        .arg("--quiet"))
    .expect_code(0);
    assert_eq!(
        lab.files(),
        snapshot(&reference.path().join("m"), true).into_iter().filter(|(_, v)| v.starts_with("file")).collect()
    );
    assert_eq!(fs::read_dir(lab.mirror().join(".airlock/staging")).unwrap().count(), 0);
    lab.verify_mirror().expect_code(0);

    // Killed again; then a different bundle: the stale staging is discarded and logged.
    files.push(("big/extra.bin", b"extra\n"));
    lab.tree("deb", &files);
    lab.full("deb", "w3.airlock");
    files.push(("big/extra2.bin", b"extra two\n"));
    lab.tree("deb", &files);
    lab.full("deb", "w4.airlock");
    let killed = run(lab.import_command("w3.airlock", &[]).env("AIRLOCK_TEST_CRASH_AT", "staged"));
    assert_eq!(killed.code, -1);
    let out = lab.import("w4.airlock", &["--allow-gap"]);
    out.expect_code(0);
    assert!(!out.stdout.contains("resumed"), "{}", out.stdout);
    assert!(lab
        .log()
        .iter()
        .any(|r| r["event"] == "discarded" && r["reason"].as_str().unwrap_or_default().contains("another bundle")));
    assert_eq!(fs::read_dir(lab.mirror().join(".airlock/staging")).unwrap().count(), 0);
}

/// Resumed staging is never trusted blindly (ostree #2549): a staged file changed after it
/// was journaled is re-hashed, found different and written again; a journal from another
/// boot has every file re-hashed. Either way the mirror ends exactly as signed.
#[test]
fn changed_or_other_boot_staging_is_rehashed_not_trusted() {
    let mut lab = week1();
    let big: Vec<(String, Vec<u8>)> = (0..4).map(|i| (format!("big/f{i}.bin"), big_content(300_000 + i))).collect();
    let mut files: Vec<(&str, &[u8])> = big.iter().map(|(p, c)| (p.as_str(), c.as_slice())).collect();
    files.extend_from_slice(WEEK1);
    lab.tree("deb", &files);
    let w2 = lab.full("deb", "w2.airlock");
    let staging = lab.mirror().join(".airlock/staging").join(w2.manifest_digest.to_hex());
    let kill = |lab: &Lab| {
        let killed = run(lab.import_command("w2.airlock", &[]).env("AIRLOCK_TEST_CRASH_AT", "staged"));
        assert_eq!(killed.code, -1, "not killed: {}", killed.stderr);
    };
    // A staged file changed in place (same size, mode): its fingerprint no longer matches.
    kill(&lab);
    let victim = staging.join("data/big/f1.bin");
    let mut bytes = fs::read(&victim).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&victim, &bytes).unwrap();
    lab.import("w2.airlock", &[]).expect_code(0).expect_stdout("resumed 6 files");
    lab.verify_mirror().expect_code(0);
    assert_eq!(fs::read(lab.mirror().join("big/f1.bin")).unwrap(), big[1].1);
    // Another boot: every journaled file is re-hashed.
    lab.tree("deb", WEEK1);
    lab.full("deb", "w3.airlock");
    lab.tree("deb", &files);
    let w4 = lab.full("deb", "w4.airlock");
    lab.import("w3.airlock", &["--allow-mass-retire"]).expect_code(0);
    let killed = run(lab.import_command("w4.airlock", &[]).env("AIRLOCK_TEST_CRASH_AT", "staged"));
    assert_eq!(killed.code, -1);
    let dir = lab.mirror().join(".airlock/staging").join(w4.manifest_digest.to_hex());
    let victim = dir.join("data/big/f2.bin");
    let mut bytes = fs::read(&victim).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&victim, &bytes).unwrap();
    // The journal says another boot, and (as only a forger could) names the changed file's
    // current fingerprint: on this boot that would be trusted; from another it is re-hashed.
    let meta = fs::symlink_metadata(&victim).unwrap();
    let journal = dir.join("journal");
    let mut lines: Vec<serde_json::Value> =
        fs::read_to_string(&journal).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    lines[0] = serde_json::json!({"boot": "another boot"});
    for line in &mut lines[1..] {
        if line["path"] == "big/f2.bin" {
            use std::os::unix::fs::MetadataExt;
            line["stat"] = serde_json::json!({
                "mtime_ns": meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                "ctime_ns": meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
                "ino": meta.ino(),
            });
        }
    }
    fs::write(&journal, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    lab.import("w4.airlock", &[]).expect_code(0).expect_stdout("resumed 6 files");
    lab.verify_mirror().expect_code(0);
    assert_eq!(fs::read(lab.mirror().join("big/f2.bin")).unwrap(), big[2].1);
}

// ---------------------------------------------------------------------------------------
// version 1

/// Rewrites a (full) bundle as a version-1 bundle: the same entries, `previous` naming
/// `previous` (the v1 manifest before it), validly signed by `key`. Returns its digest.
fn as_v1(bundle: &Path, out: &Path, previous: Option<&[u8]>, key: &SecretKey) -> Vec<u8> {
    let parts = split(&fs::read(bundle).unwrap());
    let mut wire = Wire::decode(&parts.head[0].1);
    wire.version = 1;
    wire.carried = None;
    wire.base = None;
    wire.previous = previous.map(|d| serde_bytes::ByteBuf::from(d.to_vec()));
    let manifest = wire.encode();
    let head = signed_head(&manifest, &wire.sums(), &[key]);
    fs::write(out, assemble(&head, &parts.payload)).unwrap();
    sha2_of(&manifest)
}

/// Version-1 bundles are additive, as before: a second one that no longer lists a file
/// leaves it in the mirror (and `mirror verify` still expects it).
#[test]
fn v1_bundle_imports_additively_as_before() {
    let mut lab = Lab::new();
    lab.tree("deb", WEEK1);
    lab.full("deb", "full1.airlock");
    lab.tree("deb", WEEK2);
    lab.full("deb", "full2.airlock");
    let d1 = as_v1(&lab.path("full1.airlock"), &lab.path("v1-1.airlock"), None, &lab.key);
    as_v1(&lab.path("full2.airlock"), &lab.path("v1-2.airlock"), Some(&d1), &lab.key);
    lab.import("v1-1.airlock", &[]).expect_code(0);
    let out = lab.import("v1-2.airlock", &[]);
    out.expect_code(0);
    assert!(!out.stdout.contains("retired"), "{}", out.stdout);
    let files = lab.files();
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(files.contains_key("pool/c.deb"));
    lab.verify_mirror().expect_code(0).expect_stdout("OK: 4 files");
}

// ---------------------------------------------------------------------------------------
// receipts

/// The receipt states, per channel, the last sequence and manifest and what the mirror
/// holds as found: a damaged file is left out (and the channel is not intact), a file no
/// channel owns is counted nowhere.
#[test]
fn receipt_states_what_the_mirror_holds_as_found() {
    use airlock::format::receipt::state_root;
    let mut lab = week1();
    lab.tree("deb", WEEK2);
    let w2 = lab.delta("deb", "w2.airlock");
    lab.import("w2.airlock", &[]).expect_code(0);
    write(&lab.mirror(), "stray/unknown.txt", b"not airlock's\n", 0o644);
    let receipt = |lab: &Lab| {
        let mirror = airlock::Mirror::open(&lab.mirror()).unwrap();
        mirror.receipt(1_800_000_000).unwrap()
    };
    let r = receipt(&lab);
    assert_eq!(r.mirror, lab.mirror_id());
    assert_eq!(r.created, 1_800_000_000);
    assert_eq!(r.log_records as usize, lab.log().len());
    assert_eq!(r.channels.len(), 1);
    let c = &r.channels[0];
    assert_eq!((c.name.as_str(), c.sequence, c.manifest), ("deb", 2, w2.manifest_digest));
    assert_eq!((c.files, c.bytes, c.intact), (3, 16, true));
    assert_eq!(c.root, state_root(&w2.manifest.entries));
    assert_eq!((r.files, r.bytes, r.root), (3, 16, c.root));
    // Same size, other content: the stamp no longer matches, the re-hash fails.
    write(&lab.mirror(), "pool/b.deb", b"B\n", 0o644);
    let r = receipt(&lab);
    let c = &r.channels[0];
    let held: Vec<&Entry> = w2.manifest.entries.iter().filter(|e| e.path.as_str() != "pool/b.deb").collect();
    assert_eq!((c.files, c.bytes, c.intact), (2, 14, false));
    assert_eq!(c.root, state_root(held));
    assert_eq!(r.files, 2);
}
