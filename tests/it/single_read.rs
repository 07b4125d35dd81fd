//! The single-read pack (format version 3, FORMAT.md §3, issue #15): the head written into
//! room reserved before the payload, the rest of the room one padding frame; the fallback
//! that moves the payload when the head does not fit; and the reader's rules for the padding
//! frame (only in version 3, only one, only right after the head frame, zeros within a
//! bound); and the same for volume sets, whose volume 1 starts with the head's room.

use std::path::Path;
use std::process::Command;

use airlock::format::head::{encode_padding, padding_bound, PADDING_HEADER_LEN};
use airlock::format::volume::{
    block_list_digest, encode_trailer, Footer, Table, VolumeEntry, VolumeId, BLOCK_SIZE, FOOTER_LEN,
};
use airlock::io::digest::Digest;
use airlock::io::durable::Overwrite;
use airlock::keys::SecretKey;
use airlock::pack::{pack, HeadRoom, PackFault, PackOptions, VolumeOptions};
use airlock::NoProgress;

use crate::kit::*;

/// A source tree of small and large files, some compressible, some not, one empty.
fn sources(root: &Path) {
    write(root, "a/small.txt", b"hello\n", 0o644);
    write(root, "a/empty", b"", 0o644);
    write(root, "b/run.sh", b"#!/bin/sh\necho hi\n", 0o755);
    write(root, "c/big.bin", &big_content(3 << 20), 0o644);
    for i in 0..50 {
        write(root, &format!("d/f{i:03}.txt"), format!("file {i}\n").repeat(i + 1).as_bytes(), 0o644);
    }
}

/// The length of frame 1 (the head frame) of `bundle`.
fn head_frame_len(bundle: &[u8]) -> usize {
    split(bundle).head_frame.len()
}

/// Packs `src` into `out` with the library, the fault given, signed by `k` of `ws`.
fn pack_with(ws: &Workspace, src: &Path, out: &str, fault: Option<PackFault>) -> Option<HeadRoom> {
    let key = load_secret(&ws.path("k.sec"));
    let opts = PackOptions { sources: vec![src.to_owned()], fault, ..PackOptions::new(vec![], "default", 1, now()) };
    let report = pack(&opts, &[key], &ws.path(out), Overwrite::NoClobber, &NoProgress).unwrap();
    report.head_room
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn tool(name: &str) -> Command {
    Command::new(name)
}

/// A plain pack writes version 3 with the head, then one padding frame filling the room
/// reserved for it, then the payload; it verifies and imports, and stock zstd and GNU tar
/// read it (the padding is a skippable frame: zstd skips it, tar never sees it).
#[test]
fn a_single_read_bundle_has_its_head_then_one_padding_frame_and_round_trips() {
    let ws = Workspace::new();
    let src = ws.path("src");
    sources(&src);
    let placed = pack_with(&ws, &src, "b.airlock", None).expect("a single bundle reports its head room");
    assert_eq!(placed.moved, 0, "{placed:?}");
    assert_eq!(placed.reserved, placed.head + placed.padding, "{placed:?}");
    let bundle = std::fs::read(ws.path("b.airlock")).unwrap();
    let head_len = head_frame_len(&bundle);
    assert_eq!(head_len as u64, placed.head);
    let manifest = airlock::format::manifest::decode(&split(&bundle).head[0].1).unwrap();
    assert_eq!(manifest.version, 3);
    if placed.padding > 0 {
        let padding = &bundle[head_len..head_len + placed.padding as usize];
        assert_eq!(padding, encode_padding(placed.padding).unwrap(), "one padding frame of zeros after the head");
        assert!(placed.padding - PADDING_HEADER_LEN <= padding_bound(placed.head));
    }
    ws.verify("b.airlock", "k").expect_code(0);
    ws.import("b.airlock", "k", "mirror", &[]).expect_code(0);
    assert_eq!(std::fs::read(ws.path("mirror/c/big.bin")).unwrap(), big_content(3 << 20));
    run(tool("zstd").arg("-t").arg("-q").arg(ws.path("b.airlock"))).expect_code(0);
    let listed = run(tool("tar").arg("--zstd").arg("-tvf").arg(ws.path("b.airlock")));
    listed.expect_code(0);
    assert!(listed.stdout.contains("data/c/big.bin"), "{}", listed.stdout);
    assert!(listed.stdout.contains("airlock/manifest.cbor"), "{}", listed.stdout);
}

/// A head larger than its room (forced: half the estimate reserved) and a room far larger
/// than a padding frame may fill both take the copy path: the payload is moved within the
/// bundle to follow the head, and the bundle verifies and imports like any other.
#[test]
fn a_head_that_does_not_fit_its_room_moves_the_payload_and_still_verifies() {
    for (fault, overflow) in [(PackFault::HeadOverflow, true), (PackFault::HeadRoomSurplus, false)] {
        let ws = Workspace::new();
        let src = ws.path("src");
        sources(&src);
        let placed = pack_with(&ws, &src, "b.airlock", Some(fault)).expect("head room");
        assert!(placed.moved > 0, "{fault:?}: {placed:?}");
        assert_eq!(placed.padding, 0, "{fault:?}: {placed:?}");
        assert_eq!(placed.head > placed.reserved, overflow, "{fault:?}: {placed:?}");
        let bundle = std::fs::read(ws.path("b.airlock")).unwrap();
        assert_eq!(head_frame_len(&bundle) as u64, placed.head);
        assert_eq!(bundle.len() as u64, placed.head + placed.moved, "no padding, no gap");
        ws.verify("b.airlock", "k").expect_code(0);
        ws.import("b.airlock", "k", "mirror", &[]).expect_code(0);
        run(tool("zstd").arg("-t").arg("-q").arg(ws.path("b.airlock"))).expect_code(0);
    }
}

/// `bundle` with `frame` inserted at byte `at`.
fn with_inserted(bundle: &[u8], at: usize, frame: &[u8]) -> Vec<u8> {
    let mut out = bundle[..at].to_vec();
    out.extend_from_slice(frame);
    out.extend_from_slice(&bundle[at..]);
    out
}

/// A packed version-3 bundle without padding (the copy path), its bytes and head length.
fn unpadded(ws: &Workspace) -> (Vec<u8>, usize) {
    let src = ws.path("src");
    sources(&src);
    pack_with(ws, &src, "plain.airlock", Some(PackFault::HeadRoomSurplus));
    let bundle = std::fs::read(ws.path("plain.airlock")).unwrap();
    let head = head_frame_len(&bundle);
    (bundle, head)
}

/// A padding frame in a version-2 bundle: version 2 has none, so a version-2 reader never
/// skipped one, and a version-3 reader must not either (the frozen v2 vector, with a
/// padding frame inserted after its head, is refused).
#[test]
fn padding_frame_in_a_version_2_bundle() {
    let ws = Workspace::new();
    let vector = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/v2/accepted-round-trip");
    let bundle = std::fs::read(vector.join("bundle.airlock")).unwrap();
    std::fs::copy(vector.join("trusted.pub"), ws.path("v2.pub")).unwrap();
    let head = head_frame_len(&bundle);
    let manifest = airlock::format::manifest::decode(&split(&bundle).head[0].1).unwrap();
    assert_eq!(manifest.version, 2);
    std::fs::write(ws.path("b.airlock"), with_inserted(&bundle, head, &encode_padding(64).unwrap())).unwrap();
    let expect = std::fs::read_to_string(vector.join("expect")).unwrap();
    let now = expect.lines().find_map(|l| l.strip_prefix("now: ")).unwrap().to_owned();
    let verify = |name: &str| {
        run(airlock().arg("verify").arg(ws.path(name)).arg("--trust").arg(ws.path("v2.pub")).env("AIRLOCK_NOW", &now))
    };
    std::fs::write(ws.path("as-is.airlock"), &bundle).unwrap();
    verify("as-is.airlock").expect_code(0);
    let run = verify("b.airlock");
    run.expect_code(1).expect_stderr("padding frames exist only from format version 3");
}

/// Two padding frames after the head: only one is allowed.
#[test]
fn second_padding_frame_after_the_head() {
    let ws = Workspace::new();
    let (bundle, head) = unpadded(&ws);
    let two = [encode_padding(64).unwrap(), encode_padding(32).unwrap()].concat();
    std::fs::write(ws.path("b.airlock"), with_inserted(&bundle, head, &two)).unwrap();
    run(airlock().args(["mirror", "init"]).arg(ws.path("mirror"))).expect_code(0);
    assert_rejected_unchanged(&ws, "b.airlock", "k", "mirror", "a second padding frame");
}

/// A padding frame after the payload frame instead of after the head.
#[test]
fn padding_frame_after_the_payload() {
    let ws = Workspace::new();
    let (mut bundle, _) = unpadded(&ws);
    bundle.extend_from_slice(&encode_padding(64).unwrap());
    std::fs::write(ws.path("b.airlock"), bundle).unwrap();
    run(airlock().args(["mirror", "init"]).arg(ws.path("mirror"))).expect_code(0);
    assert_rejected_unchanged(
        &ws,
        "b.airlock",
        "k",
        "mirror",
        "the only place for one is directly after the head frame",
    );
}

/// A padding frame that hides data: its content must be zero bytes.
#[test]
fn padding_frame_holding_data() {
    let ws = Workspace::new();
    let (bundle, head) = unpadded(&ws);
    let mut padding = encode_padding(64).unwrap();
    padding[40] = b'x';
    std::fs::write(ws.path("b.airlock"), with_inserted(&bundle, head, &padding)).unwrap();
    run(airlock().args(["mirror", "init"]).arg(ws.path("mirror"))).expect_code(0);
    assert_rejected_unchanged(&ws, "b.airlock", "k", "mirror", "holds bytes other than zero");
}

/// A padding frame larger than its bound (a quarter of the head frame plus 64 KiB).
#[test]
fn padding_frame_beyond_its_bound() {
    let ws = Workspace::new();
    let (bundle, head) = unpadded(&ws);
    let padding = encode_padding(PADDING_HEADER_LEN + padding_bound(head as u64) + 1).unwrap();
    std::fs::write(ws.path("b.airlock"), with_inserted(&bundle, head, &padding)).unwrap();
    run(airlock().args(["mirror", "init"]).arg(ws.path("mirror"))).expect_code(0);
    assert_rejected_unchanged(&ws, "b.airlock", "k", "mirror", "more than the limit");
    // At the bound exactly, it is read past.
    let padding = encode_padding(PADDING_HEADER_LEN + padding_bound(head as u64)).unwrap();
    std::fs::write(ws.path("ok.airlock"), with_inserted(&bundle, head, &padding)).unwrap();
    ws.verify("ok.airlock", "k").expect_code(0);
}

// ---------------------------------------------------------------------------------------
// Volume sets (FORMAT.md §14.1): volume 1 starts with the head's room too

/// Volume size for the set tests: 1.5 MiB, so the 3 MiB file spans volumes.
const VOLUME_SIZE: u64 = 1_572_864;

/// Packs `src` into the set `set` (`set.vol001.airlock`, ..) with the library, the fault
/// given; the report's head room, the source bytes packed twice, and the volume names.
fn pack_set(
    ws: &Workspace,
    src: &Path,
    size: u64,
    parity: u16,
    fault: Option<PackFault>,
) -> (HeadRoom, u64, Vec<String>) {
    let key = load_secret(&ws.path("k.sec"));
    let volumes = Some(VolumeOptions { size, parity });
    let opts =
        PackOptions { sources: vec![src.to_owned()], fault, volumes, ..PackOptions::new(vec![], "default", 1, now()) };
    let report = pack(&opts, &[key], &ws.path("set"), Overwrite::NoClobber, &NoProgress).unwrap();
    let names = report.volumes.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    (report.head_room.expect("a set reports its head room"), report.repacked_bytes, names)
}

/// The trailer's footer of volume file `bytes`, and where the trailer starts.
fn footer_of(bytes: &[u8]) -> (Footer, usize) {
    let footer = Footer::decode(bytes[bytes.len() - FOOTER_LEN..].try_into().unwrap()).unwrap();
    (footer, bytes.len() - footer.trailer_len() as usize)
}

fn verify_set(ws: &Workspace, names: &[&str]) -> Run {
    run(airlock().arg("verify").args(names.iter().map(|n| ws.path(n))).arg("--trust").arg(ws.path("k.pub")))
}

/// A set is written single-read: volume 1 starts with the head frame, then one padding
/// frame filling the room reserved for it, then payload frames; its trailers hold that very
/// head. The set verifies and imports with volume 1 lost (its head and padding rebuilt from
/// parity with the rest of its body), and its data volumes concatenated verify from a pipe
/// and list with stock tar.
#[test]
fn a_volume_set_has_its_head_then_one_padding_frame_and_round_trips() {
    let ws = Workspace::new();
    let src = ws.path("src");
    sources(&src);
    let (placed, repacked, names) = pack_set(&ws, &src, VOLUME_SIZE, 1, None);
    assert_eq!((placed.moved, repacked), (0, 0), "{placed:?}");
    assert!(placed.padding > 0, "{placed:?}");
    assert_eq!(placed.reserved, placed.head + placed.padding, "{placed:?}");
    let data: Vec<&str> = names.iter().filter(|n| n.contains(".vol")).map(String::as_str).collect();
    assert!(data.len() >= 2, "{names:?}");
    let first = std::fs::read(ws.path(data[0])).unwrap();
    let (head, padding) = (placed.head as usize, placed.padding as usize);
    assert_eq!(head_frame_len(&first), head);
    assert_eq!(&first[head..head + padding], encode_padding(placed.padding).unwrap(), "one padding frame of zeros");
    for n in &names {
        let bytes = std::fs::read(ws.path(n)).unwrap();
        assert!(bytes.len() as u64 <= VOLUME_SIZE, "{n} is over the size");
        let (footer, start) = footer_of(&bytes);
        assert_eq!(&bytes[start + 8..start + 8 + footer.head_len as usize], &first[..head], "{n}: head copy");
    }
    verify_set(&ws, &strs(&names)).expect_code(0);
    // Volume 1 lost: its whole body (head and padding frames included) is rebuilt.
    std::fs::remove_file(ws.path(data[0])).unwrap();
    let rest = strs(&names[1..]);
    let run_verify = verify_set(&ws, &rest);
    run_verify.expect_code(0);
    assert!(run_verify.stdout.contains("vol001: missing; rebuilt from parity"), "{}", run_verify.stdout);
    let import = run(airlock()
        .arg("import")
        .args(rest.iter().map(|n| ws.path(n)))
        .arg("--trust")
        .arg(ws.path("k.pub"))
        .arg("--mirror")
        .arg(ws.path("mirror"))
        .arg("--init"));
    import.expect_code(0);
    assert_eq!(std::fs::read(ws.path("mirror/c/big.bin")).unwrap(), big_content(3 << 20));
    // The data volumes concatenated: a bundle with its padding frame, from a pipe too.
    let mut cat = first;
    for n in &data[1..] {
        cat.extend(std::fs::read(ws.path(n)).unwrap());
    }
    std::fs::write(ws.path("cat.airlock"), &cat).unwrap();
    ws.verify("cat.airlock", "k").expect_code(0);
    let piped = run(airlock()
        .arg("verify")
        .arg("-")
        .arg("--trust")
        .arg(ws.path("k.pub"))
        .stdin(std::fs::File::open(ws.path("cat.airlock")).unwrap()));
    piped.expect_code(0);
    let listed = run(tool("tar").arg("--zstd").arg("-tf").arg(ws.path("cat.airlock")));
    listed.expect_code(0);
    assert!(listed.stdout.contains("data/c/big.bin"), "{}", listed.stdout);
    run(tool("zstd").arg("-t").arg("-q").arg(ws.path("cat.airlock"))).expect_code(0);
}

/// A head that does not fit volume 1's room (forced both ways) is not moved (volume 1 could
/// pass its size): the set is written again with the head first, without padding, and
/// verifies.
#[test]
fn a_volume_set_whose_head_does_not_fit_is_written_again_head_first() {
    for fault in [PackFault::HeadOverflow, PackFault::HeadRoomSurplus] {
        let ws = Workspace::new();
        let src = ws.path("src");
        sources(&src);
        let (placed, repacked, names) = pack_set(&ws, &src, VOLUME_SIZE, 1, Some(fault));
        assert!(repacked > 0, "{fault:?}");
        assert_eq!((placed.padding, placed.moved, placed.reserved), (0, 0, placed.head), "{fault:?}");
        let first = std::fs::read(ws.path(&names[0])).unwrap();
        assert_eq!(head_frame_len(&first) as u64, placed.head);
        verify_set(&ws, &strs(&names)).expect_code(0);
    }
}

fn strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// Rewrites the set of one data volume `name` (no parity) with `edit` applied to its
/// body, and the table in its trailer for the new body, signed by `signer` (a counted
/// signer): so only the padding frame's own rules can refuse it.
fn forge_body(path: &Path, signer: &SecretKey, edit: impl FnOnce(&mut Vec<u8>, usize)) {
    let bytes = std::fs::read(path).unwrap();
    let (footer, start) = footer_of(&bytes);
    let head_at = start + 8;
    let table_at = head_at + footer.head_len as usize;
    let head = bytes[head_at..table_at].to_vec();
    let (_, message) = airlock::keys::parse_embedded(&bytes[table_at..table_at + footer.table_len as usize]).unwrap();
    let mut table = Table::decode(message).unwrap();
    let mut body = bytes[..start].to_vec();
    // Where volume 1's body starts: at 0 (version 3), or after the head frame (version 2).
    let body_at = start - table.volumes[0].length as usize;
    let mut edited = body.split_off(body_at);
    edit(&mut edited, body_at);
    let blocks: Vec<Digest> = edited.chunks(BLOCK_SIZE as usize).map(Digest::of).collect();
    table.volumes[0] =
        VolumeEntry { id: VolumeId::data(1), length: edited.len() as u64, sha256: block_list_digest(&blocks), blocks };
    let signed = airlock::keys::sign_embedded(signer, &table.encode(), "forged");
    body.extend(edited);
    body.extend(encode_trailer(VolumeId::data(1), &head, &signed).unwrap());
    std::fs::write(path, body).unwrap();
}

/// A version-3 set of one data volume, no parity; the head room and the volume's name.
fn one_volume_set(ws: &Workspace) -> (HeadRoom, String) {
    let src = ws.path("src");
    sources(&src);
    let (placed, _, names) = pack_set(ws, &src, 64 << 20, 0, None);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(placed.padding > 0, "{placed:?}");
    run(airlock().args(["mirror", "init"]).arg(ws.path("mirror"))).expect_code(0);
    (placed, names[0].clone())
}

/// A second padding frame in volume 1 of a version-3 set, its table re-signed: refused by
/// the reader's rule, the mirror untouched.
#[test]
fn second_padding_frame_in_a_volume_set() {
    let ws = Workspace::new();
    let (placed, name) = one_volume_set(&ws);
    let key = load_secret(&ws.path("k.sec"));
    let after = (placed.head + placed.padding) as usize;
    forge_body(&ws.path(&name), &key, |body, at| {
        body.splice(after - at..after - at, encode_padding(64).unwrap());
    });
    assert_rejected_unchanged(&ws, &name, "k", "mirror", "a second padding frame");
}

/// A padding frame holding data in volume 1 of a version-3 set, its table re-signed.
#[test]
fn padding_frame_holding_data_in_a_volume_set() {
    let ws = Workspace::new();
    let (placed, name) = one_volume_set(&ws);
    let key = load_secret(&ws.path("k.sec"));
    let inside = (placed.head + placed.padding) as usize - 1;
    forge_body(&ws.path(&name), &key, |body, at| body[inside - at] = b'x');
    assert_rejected_unchanged(&ws, &name, "k", "mirror", "holds bytes other than zero");
}

/// Volume 1 whose head frame is not the head in its trailer (a head of the same manifest
/// is not enough: byte for byte), its table re-signed.
#[test]
fn volume_set_whose_first_body_does_not_start_with_its_head() {
    let ws = Workspace::new();
    let (_, name) = one_volume_set(&ws);
    let key = load_secret(&ws.path("k.sec"));
    forge_body(&ws.path(&name), &key, |body, _| body[5] ^= 1);
    assert_rejected_unchanged(&ws, &name, "k", "mirror", "its head frame is not the head in the volume trailers");
}

/// A version-2 set (built from the frozen v2 vector: one data volume, its body after the
/// head frame, table signed by the vector's signer) reads as before; with a padding frame
/// after its head it is refused, the mirror untouched: version 2 has none.
#[test]
fn padding_frame_in_a_version_2_volume_set() {
    let ws = Workspace::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let vector = root.join("v2/accepted-round-trip");
    let bundle = std::fs::read(vector.join("bundle.airlock")).unwrap();
    std::fs::copy(vector.join("trusted.pub"), ws.path("v2.pub")).unwrap();
    // A secret key must not be readable by others: a private copy.
    std::fs::copy(root.join("keys/TEST-ONLY-INSECURE-signer.sec"), ws.path("v2.sec")).unwrap();
    chmod(&ws.path("v2.sec"), 0o600);
    let signer = load_secret(&ws.path("v2.sec"));
    let parts = split(&bundle);
    let manifest = Digest::of(&parts.head[0].1);
    let head = parts.head_frame.clone();
    let v2_set = |name: &str, between: &[u8]| {
        let body = [between, &bundle[head.len()..]].concat();
        let blocks: Vec<Digest> = body.chunks(BLOCK_SIZE as usize).map(Digest::of).collect();
        let entry = VolumeEntry {
            id: VolumeId::data(1),
            length: body.len() as u64,
            sha256: block_list_digest(&blocks),
            blocks,
        };
        let table = Table { manifest, volumes: vec![entry] };
        let signed = airlock::keys::sign_embedded(&signer, &table.encode(), "test");
        let file = [&head[..], &body, &encode_trailer(VolumeId::data(1), &head, &signed).unwrap()].concat();
        std::fs::write(ws.path(name), file).unwrap();
    };
    v2_set("plain.vol001.airlock", &[]);
    v2_set("padded.vol001.airlock", &encode_padding(64).unwrap());
    let now = std::fs::read_to_string(vector.join("expect")).unwrap();
    let now = now.lines().find_map(|l| l.strip_prefix("now: ")).unwrap().to_owned();
    let airlock_at = |args: &[&str], name: &str| {
        let mut cmd = airlock();
        cmd.args(args).arg(ws.path(name)).arg("--trust").arg(ws.path("v2.pub")).env("AIRLOCK_NOW", &now);
        run(&mut cmd)
    };
    airlock_at(&["verify"], "plain.vol001.airlock").expect_code(0);
    run(airlock().args(["mirror", "init"]).arg(ws.path("mirror"))).expect_code(0);
    let mirror = ws.path("mirror");
    let mirror = mirror.to_str().unwrap();
    assert_rejection_leaves_mirror(&ws, "mirror", &["padding frames exist only from format version 3"], || {
        airlock_at(&["import", "--mirror", mirror], "padded.vol001.airlock")
    });
}
