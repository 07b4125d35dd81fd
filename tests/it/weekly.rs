//! The operator's weekly cycle across the gap, end to end with the binary (issue 12): a full
//! bundle, a receipt, a delta with additions, changes and removals, a lost bundle recovered
//! from a receipt, a damaged mirror repaired, and a killed import resumed. After every
//! import the mirror's tree is exactly the last signed state (the source tree packed), and
//! `mirror verify` is clean.

use std::fs;
use std::path::Path;

use crate::kit::*;

const CHANNEL: &str = "weekly";

/// The outside (sources, bundles, the exporter's key `k` and state) and the inside (the
/// mirror and its receipt key `inside`), in one workspace.
struct Gap {
    ws: Workspace,
}

impl Gap {
    fn new() -> Gap {
        let ws = Workspace::new();
        ws.keygen("inside");
        run(airlock().arg("mirror").arg("init").arg(ws.path("mirror"))).expect_code(0);
        Gap { ws }
    }

    fn src(&self) -> std::path::PathBuf {
        self.ws.path("src")
    }

    fn pack(&self, out: &str, extra: &[&str]) -> Run {
        let mut args = vec!["--channel", CHANNEL];
        args.extend_from_slice(extra);
        let run = self.ws.pack(&self.src(), out, &args);
        run.expect_code(0);
        run
    }

    fn pack_since(&self, out: &str, receipt: &str) -> Run {
        let receipt = self.ws.path(receipt);
        let trust = self.ws.path("inside.pub");
        self.pack(out, &["--since", receipt.to_str().unwrap(), "--trust", trust.to_str().unwrap()])
    }

    fn import(&self, bundle: &str, extra: &[&str]) -> Run {
        self.ws.import(bundle, "k", "mirror", extra)
    }

    fn receipt(&self, out: &str) {
        self.receipt_of("mirror", out);
    }

    /// `airlock mirror receipt` of the mirror at `mirror`, signed by the inside key.
    fn receipt_of(&self, mirror: &str, out: &str) {
        run(airlock()
            .args(["mirror", "receipt"])
            .arg(self.ws.path(mirror))
            .arg("--key")
            .arg(self.ws.path("inside.sec"))
            .arg("-o")
            .arg(self.ws.path(out)))
        .expect_code(0);
    }

    fn mirror_verify(&self) -> Run {
        run(airlock().args(["mirror", "verify", "--quiet"]).arg(self.ws.path("mirror")))
    }

    /// The mirror holds exactly the source tree (the last signed state), and says so.
    fn assert_mirror_is_source(&self, when: &str) {
        assert_eq!(snapshot(&self.ws.path("mirror"), true), snapshot(&self.src(), false), "{when}: mirror differs");
        let verify = self.mirror_verify();
        assert_eq!(verify.code, 0, "{when}: mirror verify\n{}{}", verify.stdout, verify.stderr);
    }

    fn carried(&self, bundle: &str) -> usize {
        let run = run(airlock().arg("inspect").arg(self.ws.path(bundle)).arg("--json"));
        run.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let entries = v["entries"].as_array().expect("inspect --json lists entries");
        entries.iter().filter(|e| e["carried"].as_bool().unwrap_or(true)).count()
    }
}

fn put(root: &Path, rel: &str, content: &[u8]) {
    write(root, rel, content, 0o644);
}

#[test]
fn a_mirror_lives_week_after_week() {
    let gap = Gap::new();
    let src = gap.src();
    for i in 0..12 {
        put(&src, &format!("pool/p{i:02}.deb"), format!("package {i}\n").repeat(500).as_bytes());
    }
    put(&src, "dists/Release", b"release 1\n");

    // Week 1: a full bundle.
    gap.pack("w1.airlock", &[]);
    gap.import("w1.airlock", &[]).expect_code(0);
    gap.assert_mirror_is_source("week 1");
    gap.receipt("r1");

    // Week 2: 2 added, 1 changed, 2 removed; the delta carries exactly the 3 new contents.
    put(&src, "pool/new-a.deb", b"new a\n");
    put(&src, "pool/new-b.deb", b"new b\n");
    put(&src, "dists/Release", b"release 2\n");
    fs::remove_file(src.join("pool/p00.deb")).unwrap();
    fs::remove_file(src.join("pool/p01.deb")).unwrap();
    gap.pack_since("w2.airlock", "r1");
    assert_eq!(gap.carried("w2.airlock"), 3, "the delta carries only what changed");
    let diff = run(airlock().arg("diff").arg(gap.ws.path("w1.airlock")).arg(gap.ws.path("w2.airlock")).arg("--json"));
    diff.expect_code(0);
    let d: serde_json::Value = serde_json::from_str(&diff.stdout).unwrap();
    let count = |k: &str| d["channels"][0][k].as_array().map_or(usize::MAX, |a| a.len());
    assert_eq!((count("added"), count("changed"), count("removed")), (2, 1, 2), "diff:\n{}", diff.stdout);
    let imported = gap.import("w2.airlock", &[]);
    imported.expect_code(0);
    gap.assert_mirror_is_source("week 2 (delta)");

    // Week 3 is packed but lost on the way; week 4 is packed from a receipt made after week
    // 2, names week 2 as its previous and imports without --allow-gap.
    gap.receipt("r2");
    put(&src, "pool/w3.deb", b"week 3\n");
    gap.pack("w3-lost.airlock", &[]);
    put(&src, "pool/w4.deb", b"week 4\n");
    gap.pack_since("w4.airlock", "r2");
    gap.import("w4.airlock", &[]).expect_code(0);
    gap.assert_mirror_is_source("week 4 after a lost week 3");
    // The lost week 3 turning up later is refused as a rollback.
    gap.import("w3-lost.airlock", &[]).expect_code(1).expect_stderr("rollback");

    // Damage: a file modified and one deleted; verify names them, --repair restores them
    // from a full bundle of the same state.
    let mirror = gap.ws.path("mirror");
    fs::write(mirror.join("pool/p05.deb"), b"bit rot").unwrap();
    fs::remove_file(mirror.join("pool/p06.deb")).unwrap();
    let verify = gap.mirror_verify();
    assert_eq!(verify.code, 1);
    assert!(verify.stdout.contains("pool/p05.deb") && verify.stdout.contains("pool/p06.deb"), "{}", verify.stdout);
    gap.pack("w4-full.airlock", &["--sequence", "4"]);
    let partial = gap.import("w4.airlock", &["--repair"]);
    assert_ne!(partial.code, 0, "a delta that does not carry the damaged files cannot repair them");
    assert!(partial.stderr.contains("pool/p05.deb"), "{}", partial.stderr);
    gap.import("w4-full.airlock", &["--repair"]).expect_code(0);
    gap.assert_mirror_is_source("after repair");

    // Week 5: the import is killed after staging; the rerun resumes and lands the same tree.
    gap.receipt("r4");
    put(&src, "pool/w5.deb", &big_content(3 << 20));
    fs::remove_file(src.join("pool/w3.deb")).unwrap();
    gap.pack_since("w5.airlock", "r4");
    let killed = run(airlock()
        .arg("import")
        .arg(gap.ws.path("w5.airlock"))
        .arg("--trust")
        .arg(gap.ws.path("k.pub"))
        .arg("--mirror")
        .arg(&mirror)
        .arg("--quiet")
        .env("AIRLOCK_TEST_CRASH_AT", "staged"));
    assert_ne!(killed.code, 0, "the crash point was not reached:\n{}", killed.stderr);
    assert!(mirror.join("pool/w3.deb").exists(), "a killed import retired files before its commit");
    gap.import("w5.airlock", &[]).expect_code(0);
    gap.assert_mirror_is_source("week 5 after a killed import");
}

/// A delta packed from a receipt older than the mirror's state, or from another mirror's
/// receipt, is refused with the mirror unchanged: a receipt only decides what the outside
/// omits, never what the inside accepts.
#[test]
fn stale_or_foreign_receipts_cannot_shrink_what_a_mirror_accepts() {
    let gap = Gap::new();
    let src = gap.src();
    put(&src, "a.txt", b"a1\n");
    put(&src, "b.txt", b"b1\n");
    gap.pack("w1.airlock", &[]);
    gap.import("w1.airlock", &[]).expect_code(0);
    gap.receipt("r1");

    // Week 2 arrives as a full bundle; r1 is now stale.
    put(&src, "b.txt", b"b2\n");
    gap.pack("w2.airlock", &[]);
    gap.import("w2.airlock", &[]).expect_code(0);

    // A delta from the stale receipt builds on week 1's state, which the mirror left behind.
    put(&src, "c.txt", b"c3\n");
    gap.pack_since("w3-stale.airlock", "r1");
    let mirror = gap.ws.path("mirror");
    // (The log records the rejection; the files and kept heads do not change.)
    let before = snapshot(&mirror, true);
    let stale = gap.import("w3-stale.airlock", &[]);
    stale.expect_code(1).expect_stderr("--since");
    assert_eq!(snapshot(&mirror, true), before, "a rejected import changed the mirror");

    // A receipt of another mirror (same channel history, its own id) makes a delta this
    // mirror refuses, naming both ids.
    run(airlock().arg("mirror").arg("init").arg(gap.ws.path("other"))).expect_code(0);
    for b in ["w1.airlock", "w2.airlock"] {
        gap.ws.import(b, "k", "other", &[]).expect_code(0);
    }
    gap.receipt_of("other", "r-other");
    gap.pack_since("w3-foreign.airlock", "r-other");
    let before = snapshot(&mirror, true);
    gap.import("w3-foreign.airlock", &[]).expect_code(1).expect_stderr("built for mirror");
    assert_eq!(snapshot(&mirror, true), before, "a rejected import changed the mirror");

    // A receipt of this mirror as it is now makes a delta it accepts.
    gap.receipt("r2");
    gap.pack_since("w3.airlock", "r2");
    gap.import("w3.airlock", &[]).expect_code(0);
    gap.assert_mirror_is_source("after a fresh receipt");
}
