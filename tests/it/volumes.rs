//! Volume sets (FORMAT.md §14): `pack --volume-size --parity`, each volume checked alone,
//! sets imported in any order or one volume at a time, lost and damaged volumes rebuilt
//! from parity (and checked against their signed hashes), volumes of another bundle and
//! forged parity refused, stock tools on the concatenation, and pipes.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::kit::*;

/// Volume size for the tests: 1.5 MiB, so a 5 MiB file spans four volumes.
const SIZE: &str = "1572864";

/// A workspace with a source tree (one file larger than a volume, a few small ones) packed
/// into the set `set` with `parity` parity volumes; the volume file names, data then parity.
fn packed(parity: u16) -> (Workspace, tempfile::TempDir, Vec<String>) {
    let ws = Workspace::new();
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "big.bin", &big_content(5 << 20), 0o644);
    write(src.path(), "small/a.txt", b"alpha\n", 0o644);
    write(src.path(), "small/run.sh", b"#!/bin/sh\ntrue\n", 0o755);
    let parity = parity.to_string();
    let run = run(&mut pack_command(ws.dir.path(), src.path(), "set", &["--volume-size", SIZE, "--parity", &parity]));
    run.expect_code(0);
    let names = volume_names(&ws);
    assert!(names.iter().filter(|n| n.contains(".vol")).count() >= 4, "{names:?}\n{}", run.stdout);
    for n in &names {
        assert!(run.stdout.contains(n.as_str()), "pack does not name {n}:\n{}", run.stdout);
        assert!(fs::metadata(ws.path(n)).unwrap().len() <= SIZE.parse::<u64>().unwrap(), "{n} is over the size");
    }
    (ws, src, names)
}

/// The set's volume files in the workspace, data (vol) before parity (par), sorted.
fn volume_names(ws: &Workspace) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(ws.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("set.") && n.ends_with(".airlock"))
        .collect();
    names.sort_by_key(|n| (n.contains(".par"), n.clone()));
    names
}

fn verify(ws: &Workspace, names: &[&str]) -> Run {
    run(airlock().arg("verify").args(names.iter().map(|n| ws.path(n))).arg("--trust").arg(ws.path("k.pub")))
}

fn import(ws: &Workspace, names: &[&str]) -> Run {
    run(airlock()
        .arg("import")
        .args(names.iter().map(|n| ws.path(n)))
        .arg("--trust")
        .arg(ws.path("k.pub"))
        .arg("--mirror")
        .arg(ws.path("mirror"))
        // Creates the mirror on first use (a no-op on an existing one).
        .arg("--init"))
}

fn strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

fn assert_mirror_is(ws: &Workspace, src: &Path) {
    let mut got = snapshot(&ws.path("mirror"), true);
    let mut want = snapshot(src, false);
    got.retain(|_, v| v != "dir");
    want.retain(|_, v| v != "dir");
    assert_eq!(got, want);
}

/// Flips one byte of `name` at `offset`.
fn flip(ws: &Workspace, name: &str, offset: usize) {
    let mut bytes = fs::read(ws.path(name)).unwrap();
    bytes[offset] ^= 0x40;
    fs::write(ws.path(name), bytes).unwrap();
}

#[test]
fn volumes_round_trip_with_file_larger_than_a_volume() {
    let (ws, src, names) = packed(1);
    let run = verify(&ws, &strs(&names));
    run.expect_code(0);
    assert!(run.stdout.contains("OK:") && run.stderr.is_empty(), "{}\n{}", run.stdout, run.stderr);
    import(&ws, &strs(&names)).expect_code(0);
    assert_mirror_is(&ws, src.path());
    assert!(
        !ws.path("mirror/.airlock/volumes").exists()
            || fs::read_dir(ws.path("mirror/.airlock/volumes")).unwrap().count() == 0
    );
}

#[test]
fn volumes_import_in_shuffled_order() {
    let (ws, src, names) = packed(0);
    let mut shuffled = strs(&names);
    shuffled.reverse();
    shuffled.swap(0, 1);
    import(&ws, &shuffled).expect_code(0);
    assert_mirror_is(&ws, src.path());
}

#[test]
fn volumes_import_one_at_a_time_reports_missing() {
    let (ws, src, names) = packed(0);
    let data = strs(&names);
    // The second volume first: everything else is missing, and nothing is imported.
    let first = import(&ws, &[data[1]]);
    first.expect_code(2);
    assert!(first.stdout.contains("still missing: vol001, vol003"), "{}", first.stdout);
    assert!(!ws.path("mirror/big.bin").exists());
    for (i, name) in data.iter().enumerate().skip(2) {
        let run = import(&ws, &[name]);
        run.expect_code(2);
        assert!(run.stdout.contains("vol001"), "after {}: {}", i + 1, run.stdout);
        assert!(!run.stdout.contains(&format!("vol{:03},", i + 1)), "{}", run.stdout);
    }
    // The last one brings the set together: the kept volumes are read, checked and imported.
    import(&ws, &[data[0]]).expect_code(0);
    assert_mirror_is(&ws, src.path());
    assert_eq!(fs::read_dir(ws.path("mirror/.airlock/volumes")).unwrap().count(), 0, "kept volumes left behind");
}

#[test]
fn two_lost_volumes_rebuilt_with_parity_2() {
    let (ws, src, names) = packed(2);
    let kept: Vec<&str> = strs(&names).into_iter().filter(|n| !n.contains("vol001") && !n.contains("vol003")).collect();
    let run = verify(&ws, &kept);
    run.expect_code(0);
    assert!(run.stdout.contains("vol001: missing; rebuilt from parity"), "{}", run.stdout);
    assert!(run.stdout.contains("vol003: missing; rebuilt from parity"), "{}", run.stdout);
    import(&ws, &kept).expect_code(0);
    assert_mirror_is(&ws, src.path());
}

/// One parity volume is written by XOR on several workers (src/pack/volumes.rs): every data
/// volume in turn (the first, after the head frame; the last, short one) is rebuilt from it
/// through the codec's decoder, and checked against its signed hashes.
#[test]
fn each_lost_volume_rebuilt_with_parity_1() {
    let (ws, src, names) = packed(1);
    let data: Vec<&str> = strs(&names).into_iter().filter(|n| n.contains(".vol")).collect();
    for lost in &data {
        let kept: Vec<&str> = strs(&names).into_iter().filter(|n| n != lost).collect();
        let run = verify(&ws, &kept);
        run.expect_code(0);
        let volume = &lost["set.".len()..lost.len() - ".airlock".len()];
        assert!(run.stdout.contains(&format!("{volume}: missing; rebuilt from parity")), "{}", run.stdout);
    }
    let kept: Vec<&str> = strs(&names).into_iter().filter(|n| !n.contains("vol001")).collect();
    import(&ws, &kept).expect_code(0);
    assert_mirror_is(&ws, src.path());
}

#[test]
fn bit_flipped_volume_rebuilt() {
    let (ws, src, names) = packed(2);
    flip(&ws, "set.vol002.airlock", 1_100_000);
    let alone = verify(&ws, &["set.vol002.airlock"]);
    alone.expect_code(1);
    assert!(alone.stdout.contains("DAMAGED") && alone.stdout.contains("block(s) 1 "), "{}", alone.stdout);
    // The first pass streams without block checks and is rejected by the payload's hashes;
    // the second checks every block and rebuilds the damaged one.
    let run = verify(&ws, &strs(&names));
    run.expect_code(0).expect_stderr("checking every block of the volumes and rebuilding from parity");
    assert!(run.stdout.contains("vol002: damaged block(s) 1 rebuilt from parity"), "{}", run.stdout);
    import(&ws, &strs(&names)).expect_code(0);
    assert_mirror_is(&ws, src.path());
    assert_eq!(fs::read_dir(ws.path("mirror/.airlock/staging")).unwrap().count(), 0, "first attempt's staging left");
    let log = fs::read_to_string(ws.path("mirror/.airlock/log")).unwrap();
    assert_eq!(log.lines().count(), 1, "one imported record, no rejected or discarded one:\n{log}");
}

#[test]
fn three_lost_with_parity_2_is_refused_naming_them() {
    let (ws, _src, names) = packed(2);
    let lost = ["vol001", "vol002", "vol004"];
    let kept: Vec<&str> = strs(&names).into_iter().filter(|n| !lost.iter().any(|l| n.contains(l))).collect();
    let run = verify(&ws, &kept);
    run.expect_code(1).expect_stderr("volume(s) vol001, vol002, vol004 missing").expect_stderr("2 parity volume(s)");
    // Import keeps what it has and says what is missing; nothing enters the mirror.
    let imported = import(&ws, &kept);
    imported.expect_code(2);
    assert!(imported.stdout.contains("still missing: vol001, vol002, vol004"), "{}", imported.stdout);
    assert!(!ws.path("mirror/big.bin").exists());
}

#[test]
fn volume_from_another_bundle_is_refused() {
    let (ws, src, names) = packed(0);
    write(src.path(), "small/a.txt", b"alpha two\n", 0o644);
    run(&mut pack_command(ws.dir.path(), src.path(), "other", &["--volume-size", SIZE])).expect_code(0);
    let mut mixed = strs(&names);
    mixed[1] = "other.vol002.airlock";
    let run = verify(&ws, &mixed);
    run.expect_code(1)
        .expect_stderr("other.vol002.airlock belongs to bundle")
        .expect_stderr("set.vol001.airlock belongs to bundle");
    import(&ws, &strs(&names)[..1]).expect_code(2);
    let before = snapshot(&ws.path("mirror"), false);
    import(&ws, &["other.vol002.airlock"]).expect_code(2);
    let refused = import(&ws, &mixed);
    refused.expect_code(1).expect_stderr("belongs to bundle");
    let after = snapshot(&ws.path("mirror"), false);
    let files = |s: &std::collections::BTreeMap<String, String>| {
        s.iter().filter(|(k, _)| !k.starts_with(".airlock")).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
    };
    assert_eq!(files(&after), files(&before));
}

#[test]
fn forged_parity_volume_is_refused_mirror_unchanged() {
    let (ws, _src, names) = packed(1);
    // A mirror with something in it already.
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "keep.txt", b"kept\n", 0o644);
    ws.pack(other.path(), "first.airlock", &["--channel", "first"]).expect_code(0);
    ws.import("first.airlock", "k", "mirror", &[]).expect_code(0);
    let before = snapshot(&ws.path("mirror"), true);
    // vol002 lost; the parity volume's body rewritten: its blocks no longer match their
    // signed hashes, so it cannot stand in for vol002.
    let par = names.iter().find(|n| n.contains(".par01")).unwrap().clone();
    flip(&ws, &par, 10);
    let given: Vec<&str> = strs(&names).into_iter().filter(|n| !n.contains("vol002")).collect();
    let run = import(&ws, &given);
    run.expect_code(1).expect_stderr("vol002 block 0 is missing or damaged and parity cannot rebuild it");
    assert_eq!(snapshot(&ws.path("mirror"), true), before, "mirror changed by a refused import");
    assert_eq!(fs::read_dir(ws.path("mirror/.airlock/staging")).unwrap().count(), 0);
}

#[test]
fn cat_of_volumes_lists_with_stock_tar_and_verifies() {
    let (ws, _src, names) = packed(1);
    let data: Vec<&str> = strs(&names).into_iter().filter(|n| n.contains(".vol")).collect();
    let mut whole = Vec::new();
    for n in &data {
        whole.extend(fs::read(ws.path(n)).unwrap());
    }
    fs::write(ws.path("whole.airlock"), whole).unwrap();
    let listed = run(Command::new("tar").arg("--zstd").arg("-tf").arg(ws.path("whole.airlock")));
    listed.expect_code(0);
    for member in ["airlock/manifest.cbor", "airlock/SHA256SUMS.sig", "data/big.bin", "data/small/run.sh"] {
        assert!(listed.stdout.lines().any(|l| l == member), "{member} not listed:\n{}", listed.stdout);
    }
    ws.verify("whole.airlock", "k").expect_code(0);
    ws.import("whole.airlock", "k", "mirror", &[]).expect_code(0);
    assert!(ws.path("mirror/big.bin").exists());
}

#[test]
fn single_volume_verifies_alone() {
    let (ws, _src, names) = packed(1);
    for n in &names {
        let run = verify(&ws, &[n]);
        run.expect_code(0);
        assert!(
            run.stdout.contains("intact") && run.stdout.contains("only this volume was checked"),
            "{n}: {}",
            run.stdout
        );
    }
    let signed = run(airlock()
        .arg("sign")
        .arg(ws.path(&names[1]))
        .arg("--key")
        .arg(ws.path("k.sec"))
        .arg("--trust")
        .arg(ws.path("k.pub")));
    signed.expect_code(1).expect_stderr("is one volume of a set, not a bundle file");
    let inspected = run(airlock().arg("inspect").arg(ws.path(&names[2])));
    inspected.expect_code(0);
    assert!(inspected.stdout.contains("big.bin"), "{}", inspected.stdout);
}

#[test]
fn pipe_into_verify() {
    let (ws, _src, names) = packed(0);
    let mut child = airlock()
        .arg("verify")
        .arg("-")
        .arg("--trust")
        .arg(ws.path("k.pub"))
        .arg("--quiet")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data: Vec<Vec<u8>> = names.iter().map(|n| fs::read(ws.path(n)).unwrap()).collect();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        for d in data {
            stdin.write_all(&d).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("OK: standard input verified"), "{stdout}");
    // A plain bundle through a pipe too, and a truncated one is refused.
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "x.txt", b"x\n", 0o644);
    ws.pack(src.path(), "plain.airlock", &["--channel", "plain"]).expect_code(0);
    let piped = |bytes: Vec<u8>| {
        let mut child = airlock()
            .arg("verify")
            .arg("-")
            .arg("--trust")
            .arg(ws.path("k.pub"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&bytes);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        out.status.code()
    };
    let plain = fs::read(ws.path("plain.airlock")).unwrap();
    assert_eq!(piped(plain.clone()), Some(0));
    assert_eq!(piped(plain[..plain.len() - 10].to_vec()), Some(1));
}

#[test]
fn stale_volumes_of_an_earlier_set_never_mix_in() {
    let (ws, src, names) = packed(0);
    // Without --force a set of that name is refused, naming a volume already there.
    let again = run(&mut pack_command(ws.dir.path(), src.path(), "set", &["--volume-size", SIZE]));
    again.expect_code(2).expect_stderr("set.vol001.airlock exists");
    // With --force a smaller set replaces it: the earlier set's extra volumes are removed.
    fs::write(src.path().join("big.bin"), b"small now\n").unwrap();
    run(&mut pack_command(ws.dir.path(), src.path(), "set", &["--volume-size", SIZE, "--force"])).expect_code(0);
    let now = volume_names(&ws);
    assert_eq!(now, vec!["set.vol001.airlock".to_owned()], "earlier set: {names:?}");
    verify(&ws, &strs(&now)).expect_code(0);
}

#[test]
fn a_volume_size_too_small_fails_before_writing_and_parity_needs_a_size() {
    let ws = Workspace::new();
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "a.txt", b"alpha\n", 0o644);
    let tiny = run(&mut pack_command(ws.dir.path(), src.path(), "set", &["--volume-size", "2K"]));
    tiny.expect_code(2).expect_stderr("--volume-size 2048 is too small");
    assert!(volume_names(&ws).is_empty());
    assert!(!fs::read_dir(ws.dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    let parity = run(&mut pack_command(ws.dir.path(), src.path(), "set", &["--parity", "1"]));
    parity.expect_code(2).expect_stderr("--volume-size");
}

/// Rewrites the trailer of every volume of the set with its table signed by `key` instead.
fn resign_tables(ws: &Workspace, names: &[String], key: &str) {
    use airlock::format::volume::{encode_trailer, Footer, FOOTER_LEN};
    let signer = load_secret(&ws.path(&format!("{key}.sec")));
    for n in names {
        let bytes = fs::read(ws.path(n)).unwrap();
        let footer = Footer::decode(bytes[bytes.len() - FOOTER_LEN..].try_into().unwrap()).unwrap();
        let start = bytes.len() - footer.trailer_len() as usize;
        let head_at = start + 8;
        let table_at = head_at + footer.head_len as usize;
        let head = &bytes[head_at..table_at];
        let table = &bytes[table_at..table_at + footer.table_len as usize];
        let (_, message) = airlock::keys::parse_embedded(table).unwrap();
        let resigned = airlock::keys::sign_embedded(&signer, message, "forged");
        let mut out = bytes[..start].to_vec();
        out.extend(encode_trailer(footer.id, head, &resigned).unwrap());
        fs::write(ws.path(n), out).unwrap();
    }
}

#[test]
fn volume_table_signed_by_an_untrusted_key_is_refused() {
    let (ws, _src, names) = packed(1);
    ws.keygen("other");
    resign_tables(&ws, &names, "other");
    let run = verify(&ws, &strs(&names));
    run.expect_code(1).expect_stderr("VOLUMES.sig is signed by key");
    verify(&ws, &[&names[1]]).expect_code(1).expect_stderr("not one of the trusted keys");
    import(&ws, &strs(&names)).expect_code(1).expect_stderr("VOLUMES.sig is signed by key");
    assert!(!ws.path("mirror/big.bin").exists());
}

#[test]
fn volumes_read_back_with_verify_written() {
    let ws = Workspace::new();
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "big.bin", &big_content(3 << 20), 0o644);
    let extra = ["--volume-size", SIZE, "--parity", "1", "--verify-written"];
    let run = run(&mut pack_command(ws.dir.path(), src.path(), "set", &extra));
    run.expect_code(0);
    assert!(run.stdout.contains("read back from the medium and verified"), "{}", run.stdout);
    assert!(volume_names(&ws).len() >= 3);
}

/// The number of zstd frames (skippable ones apart) in `path`, as stock `zstd -lv` counts.
fn zstd_frames(path: &Path) -> usize {
    let listed = run(Command::new("zstd").arg("-lv").arg(path));
    listed.expect_code(0);
    let line = listed.stdout.lines().find(|l| l.starts_with("# Zstandard Frames:")).unwrap_or_else(|| {
        panic!("zstd -lv {} gave no frame count:\n{}", path.display(), listed.stdout);
    });
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn compressible_payload_fills_each_volume_with_one_frame() {
    // Text compresses several times over: a writer that cut a frame whenever the worst case
    // of its input could pass the room would end a series of ever smaller frames in every
    // volume (and drain the compressor's pipeline at each). One frame per volume fills it,
    // with one compression thread and with several.
    for threads in ["1", "2"] {
        let ws = Workspace::new();
        let src = tempfile::tempdir().unwrap();
        let text: Vec<u8> =
            (0..400_000u32).flat_map(|i| format!("line {i} of a log, {}\n", i % 97).into_bytes()).collect();
        write(src.path(), "log.txt", &text, 0o644);
        write(src.path(), "blob.bin", &big_content(3 << 20), 0o644);
        let extra = ["--volume-size", SIZE, "--threads", threads];
        run(&mut pack_command(ws.dir.path(), src.path(), "set", &extra)).expect_code(0);
        let names = volume_names(&ws);
        assert!(names.len() >= 3, "{names:?}");
        let size: u64 = SIZE.parse().unwrap();
        for (i, n) in names.iter().enumerate() {
            let path = ws.path(n);
            let len = fs::metadata(&path).unwrap().len();
            assert!(len <= size, "{n} is {len} bytes, over {size}");
            // Volume 1 also holds the head's frame.
            let want = if i == 0 { 2 } else { 1 };
            assert_eq!(zstd_frames(&path), want, "{n} with --threads {threads}");
            if i + 1 < names.len() {
                assert!(len > size - (64 << 10), "{n} is {len} bytes: not filled to within 64 KiB of {size}");
            }
        }
        verify(&ws, &strs(&names)).expect_code(0);
        import(&ws, &strs(&names)).expect_code(0);
        assert_mirror_is(&ws, src.path());
    }
}
