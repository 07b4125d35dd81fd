//! FORMAT.md §11: pack refuses exactly what import refuses for its size, with a message
//! naming the limit. For each limit pack can reach, a tree at the limit packs and imports,
//! and one just past it is refused by pack, before anything is written.
//!
//! The head limits (entries, manifest bytes, checksum-list bytes) are gigabytes and millions
//! of entries, so they are reached with small trees through the test hook
//! `AIRLOCK_TEST_LIMITS` (feature `fault-injection`), which gives the writer and the readers
//! of one process the same synthetic limits; the text and path limits are reached for real.

use std::path::Path;

use super::kit::*;

/// Generous synthetic limits, above anything the small tree needs.
const ROOMY: Limits = Limits { manifest_bytes: 1 << 20, sums_bytes: 1 << 20, entries: 1000 };

#[derive(Clone, Copy, Debug)]
struct Limits {
    manifest_bytes: u64,
    sums_bytes: u64,
    entries: u64,
}

impl Limits {
    fn env(&self) -> String {
        format!("{},{},{}", self.manifest_bytes, self.sums_bytes, self.entries)
    }
}

/// A tree of `files` small files.
fn tree(ws: &Workspace, files: usize) -> std::path::PathBuf {
    let src = ws.path("src");
    for i in 0..files {
        write(&src, &format!("dir/file-{i:03}.txt"), format!("content {i}\n").as_bytes(), 0o644);
    }
    src
}

/// `airlock pack` of `src` into `out` under `limits`, with its own state (so every pack is
/// sequence 1 and the manifest the same length).
fn pack(ws: &Workspace, src: &Path, out: &str, limits: Limits) -> Run {
    let mut cmd = pack_command(ws.dir.path(), src, out, &["--channel", "limits", "--sequence", "1"]);
    cmd.env("AIRLOCK_STATE_DIR", ws.path(&format!("state-{out}"))).env("AIRLOCK_TEST_LIMITS", limits.env());
    run(&mut cmd)
}

/// `airlock import` of `bundle` into the new mirror `mirror` under `limits`.
fn import(ws: &Workspace, bundle: &str, mirror: &str, limits: Limits) -> Run {
    run(airlock()
        .arg("import")
        .arg(ws.path(bundle))
        .arg("--trust")
        .arg(ws.path("k.pub"))
        .arg("--mirror")
        .arg(ws.path(mirror))
        .arg("--init")
        .arg("--quiet")
        .env("AIRLOCK_STATE_DIR", ws.path(&format!("state-{mirror}")))
        .env("AIRLOCK_TEST_LIMITS", limits.env()))
}

/// What the small tree's bundle measures: manifest bytes, checksum-list bytes, entries.
fn measure(ws: &Workspace, bundle: &str) -> (u64, u64, u64) {
    let opened = airlock::verify::Bundle::open(&ws.path(bundle)).unwrap();
    let head = opened.head();
    let entries = opened.unverified_manifest().unwrap().entries.len() as u64;
    (head.manifest_bytes.len() as u64, head.sums.len(), entries)
}

/// For one limit: at the measured value the tree packs and imports; one below it, pack
/// refuses (exit 2, no bundle, the limit named) and the importer refuses the bundle packed
/// at the limit with the same words (exit 1).
fn at_and_past(ws: &Workspace, src: &Path, name: &str, at: Limits, under: Limits, refusal: &str) {
    let bundle = format!("{name}-at.airlock");
    pack(ws, src, &bundle, at).expect_code(0);
    import(ws, &bundle, &format!("mirror-{name}-at"), at).expect_code(0);

    let past = format!("{name}-past.airlock");
    let refused = pack(ws, src, &past, under);
    refused.expect_code(2).expect_stderr(&format!("cannot pack: {refusal}")).expect_stderr("nothing was written");
    refused.expect_stderr("Split the sources over several bundles");
    assert!(!ws.path(&past).exists(), "pack wrote {past} although it refused it");
    let rejected = import(ws, &bundle, &format!("mirror-{name}-past"), under);
    rejected.expect_code(1).expect_stderr(&format!("bundle rejected: {refusal}"));
}

#[test]
fn pack_refuses_exactly_what_import_refuses_for_the_head_limits() {
    let ws = Workspace::new();
    let src = tree(&ws, 5);
    pack(&ws, &src, "measure.airlock", ROOMY).expect_code(0);
    let (manifest, sums, entries) = measure(&ws, "measure.airlock");
    assert_eq!(entries, 5);

    let at = Limits { entries, ..ROOMY };
    let under = Limits { entries: entries - 1, ..ROOMY };
    let refusal = format!("manifest of {entries} entries exceeds the limit of {} entries", entries - 1);
    at_and_past(&ws, &src, "entries", at, under, &refusal);

    let at = Limits { manifest_bytes: manifest, ..ROOMY };
    let under = Limits { manifest_bytes: manifest - 1, ..ROOMY };
    let refusal = format!("airlock/manifest.cbor of {manifest} bytes exceeds the limit of {} bytes", manifest - 1);
    at_and_past(&ws, &src, "manifest", at, under, &refusal);

    let at = Limits { sums_bytes: sums, ..ROOMY };
    let under = Limits { sums_bytes: sums - 1, ..ROOMY };
    let refusal = format!("airlock/SHA256SUMS.sig of {sums} bytes exceeds the limit of {} bytes", sums - 1);
    at_and_past(&ws, &src, "sums", at, under, &refusal);
}

/// The real limits of labels and meta (FORMAT.md §6.2, §11): at the limit the bundle packs
/// and imports; one past, pack refuses naming the rule, and writes nothing.
#[test]
fn text_limits_pack_at_the_limit_and_refuse_one_past() {
    let ws = Workspace::new();
    let src = tree(&ws, 1);
    let long = |n: usize| "x".repeat(n);
    let label_at = ["--label".to_owned(), long(4096)];
    let value_at = ["--meta".to_owned(), format!("k={}", long(4096))];
    let key_at = ["--meta".to_owned(), format!("{}=v", long(4096))];
    let pairs_at: Vec<String> = (0..256).flat_map(|i| ["--meta".to_owned(), format!("k{i:03}=v")]).collect();
    let cases: [(&str, Vec<String>); 4] = [
        ("label", label_at.to_vec()),
        ("meta-value", value_at.to_vec()),
        ("meta-key", key_at.to_vec()),
        ("meta-pairs", pairs_at),
    ];
    for (name, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let bundle = format!("{name}.airlock");
        ws.pack(&src, &bundle, &args).expect_code(0);
        ws.import(&bundle, "k", &format!("mirror-{name}"), &[]).expect_code(0);
    }

    let refusals = [
        (vec!["--label".to_owned(), long(4097)], "label is longer than 4096 bytes"),
        (vec!["--meta".to_owned(), format!("k={}", long(4097))], "is longer than 4096 bytes"),
        (vec!["--meta".to_owned(), format!("{}=v", long(4097))], "is longer than 4096 bytes"),
        ((0..257).flat_map(|i| ["--meta".to_owned(), format!("k{i:03}=v")]).collect(), "more than 256 meta pairs"),
    ];
    for (i, (args, message)) in refusals.into_iter().enumerate() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let bundle = format!("past-{i}.airlock");
        ws.pack(&src, &bundle, &args).expect_code(2).expect_stderr(message);
        assert!(!ws.path(&bundle).exists(), "pack wrote {bundle} although it refused it");
    }
}

/// The path limit (1024 bytes, FORMAT.md §7, §11): a 1024-byte path packs and imports; a
/// 1025-byte one is refused by pack, naming the limit (exit 1, as every source that breaks
/// a packing rule).
#[test]
fn path_limit_packs_at_the_limit_and_refuses_one_past() {
    let ws = Workspace::new();
    let component = |c: &str, n: usize| c.repeat(n);
    // 255 + 255 + 255 + 254 + 1 bytes and four slashes: 1024.
    let at = [component("a", 255), component("b", 255), component("c", 255), component("d", 254), "e".into()].join("/");
    assert_eq!(at.len(), 1024);
    let at_src = ws.path("at");
    write(&at_src, &at, b"at the limit\n", 0o644);
    ws.pack(&at_src, "path-at.airlock", &[]).expect_code(0);
    ws.import("path-at.airlock", "k", "mirror-path", &[]).expect_code(0);
    assert!(ws.path("mirror-path").join(&at).is_file());

    let past =
        [component("a", 255), component("b", 255), component("c", 255), component("d", 255), "e".into()].join("/");
    assert_eq!(past.len(), 1025);
    let past_src = ws.path("past");
    write(&past_src, &past, b"one past\n", 0o644);
    ws.pack(&past_src, "path-past.airlock", &[]).expect_code(1).expect_stderr("path is longer than 1024 bytes");
    assert!(!ws.path("path-past.airlock").exists());
}
