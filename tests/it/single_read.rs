//! The single-read pack (format version 3, FORMAT.md §3, issue #15): the head written into
//! room reserved before the payload, the rest of the room one padding frame; the fallback
//! that moves the payload when the head does not fit; and the reader's rules for the padding
//! frame (only in version 3, only one, only right after the head frame, zeros within a
//! bound).

use std::path::Path;
use std::process::Command;

use airlock::format::head::{encode_padding, padding_bound, PADDING_HEADER_LEN};
use airlock::io::durable::Overwrite;
use airlock::pack::{pack, HeadRoom, PackFault, PackOptions};
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
