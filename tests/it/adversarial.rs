//! Adversarial corpus, part 1: tampering by someone without the signing key (the courier,
//! or anyone who can write the media), and replays judged against the mirror's history.
//!
//! Every case builds its hostile bundle in code from the template's valid ones and ends in
//! `Case::expect_rejected`, which checks exit code 1, the message, the mirror unchanged
//! (files, kept heads, no staging, no pending, log only appended to) and nothing created
//! outside the mirror (see tests/it/kit.rs). Parts 2 and 3:
//! tests/it/adversarial_signed.rs (validly signed but malicious), tests/it/adversarial_keys.rs.

use crate::kit::*;

fn flip(bytes: &mut [u8], at: usize, bit: u8) {
    bytes[at] ^= 1 << (bit % 8);
}

// ---------------------------------------------------------------------------------------
// bit flips

/// Single-bit flips at 48 offsets spread over the whole compressed file (head frame,
/// payload frame, frame headers, block headers, the last byte). Each is rejected, or, if
/// the flip leaves the decompressed stream unchanged (a frame header's window size, say),
/// imported with exactly the signed content: what is verified is the content, never the
/// compressed bytes. At least 90% must be rejections, or the sweep tests nothing.
#[test]
fn bit_flip_sweep_over_compressed_stream() {
    let reference = {
        let case = Case::new();
        case.import("next.airlock", &["k"], &[]).expect_code(0);
        snapshot(&case.mirror(), true)
    };
    let mut case = Case::new();
    let good = case.bytes("next.airlock");
    let head_len = split(&good).head_frame.len();
    let mut offsets: Vec<usize> = (0..40).map(|i| i * good.len() / 40).collect();
    offsets.extend([0, 3, 4, 5, head_len - 1, head_len, head_len + 4, good.len() - 1]);
    let mut accepted = Vec::new();
    for (i, &at) in offsets.iter().enumerate() {
        let mut bad = good.clone();
        flip(&mut bad, at, i as u8);
        case.put("bad.airlock", &bad);
        let before = case.mirror_state();
        let log_before = std::fs::read_to_string(case.mirror().join(".airlock/log")).unwrap();
        let listing_before = listing(case.dir.path());
        let out = case.import("bad.airlock", &["k"], &[]);
        if out.code == 0 {
            assert_eq!(snapshot(&case.mirror(), true), reference, "flip at {at} imported other content");
            assert_eq!(decompress(&bad), decompress(&good), "flip at {at} changed the stream yet was accepted");
            accepted.push(at);
            case = Case::new();
            continue;
        }
        out.expect_code(1).expect_stderr("bundle rejected");
        case.assert_untouched(&before, &log_before, &listing_before);
    }
    assert!(accepted.len() * 10 <= offsets.len(), "too many flips accepted: {accepted:?}");
}

fn decompress(bundle: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bundle).unwrap()
}

#[test]
fn bit_flip_in_manifest() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    flip(&mut parts.head[0].1, 60, 2);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    let msg = format!("signature by trusted key {} on airlock/manifest.cbor does not verify", case.key_id("k"));
    case.expect_rejected("bad.airlock", &msg);
}

#[test]
fn bit_flip_in_manifest_signature_bytes() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    // The base64 line starts after the comment line; characters 14.. encode signature
    // bytes (the first 14 cover "Ed" and the key number).
    let sig = &mut parts.head[1].1;
    let at = sig.iter().position(|&b| b == b'\n').unwrap() + 1 + 40;
    sig[at] = if sig[at] == b'A' { b'B' } else { b'A' };
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "on airlock/manifest.cbor does not verify");
}

#[test]
fn bit_flip_in_manifest_signature_encoding() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let sig = &mut parts.head[1].1;
    let at = sig.iter().position(|&b| b == b'\n').unwrap() + 5;
    sig[at] = b'!';
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "invalid base64");
}

#[test]
fn bit_flip_in_checksum_list_message() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let sums = &mut parts.head[2].1;
    let at = sums.len() - 2; // the last hex digit of the last line
    sums[at] = if sums[at] == b'0' { b'1' } else { b'0' };
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "checksum list does not match the manifest");
}

#[test]
fn bit_flip_in_checksum_list_signature() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let sums = &mut parts.head[2].1;
    let at = sums.iter().position(|&b| b == b'\n').unwrap() + 1 + 60;
    sums[at] = if sums[at] == b'A' { b'B' } else { b'A' };
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "on airlock/SHA256SUMS.sig does not verify");
}

#[test]
fn bit_flip_in_payload_member_content() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let (_, data, size, _) = span(&parts.payload, "data/z.bin");
    flip(&mut parts.payload, data + size / 2, 0);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "member data/z.bin: SHA-256 is");
}

#[test]
fn bit_flip_in_payload_member_header() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let (header, ..) = span(&parts.payload, "data/xx/cd.txt");
    flip(&mut parts.payload, header + 3, 1);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "tar header checksum does not match");
}

#[test]
fn bit_flip_in_member_padding() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let (_, data, size, _) = span(&parts.payload, "data/a.txt");
    flip(&mut parts.payload, data + size + 1, 0);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "non-zero bytes in the padding");
}

#[test]
fn bit_flip_in_end_of_archive_marker() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let last = parts.payload.len() - 10;
    flip(&mut parts.payload, last, 0);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "second end-of-archive block is not zero");
}

/// One flipped byte inside a payload member's content: its SHA-256 no longer matches.
#[test]
fn flipped_byte_in_payload_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (_, data, _, _) = span(&parts.payload, "data/xx/cd.txt");
    let mut payload = parts.payload.clone();
    payload[data + 3] ^= 0x01;
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "member data/xx/cd.txt: SHA-256 is");
}

/// One flipped byte in the manifest: its signature no longer verifies.
#[test]
fn flipped_byte_in_manifest() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let last = parts.head[0].1.len() - 1;
    parts.head[0].1[last] ^= 0x01;
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "on airlock/manifest.cbor does not verify");
}

// ---------------------------------------------------------------------------------------
// truncation

/// Truncation at 40 offsets over the whole file, plus every offset around the frame
/// boundary: all rejected (an empty file, a cut inside a frame, a cut exactly between
/// frames).
#[test]
fn truncation_sweep_over_compressed_stream() {
    let case = Case::new();
    let good = case.bytes("next.airlock");
    let head_len = split(&good).head_frame.len();
    let mut cuts: Vec<usize> = (0..40).map(|i| i * good.len() / 40).collect();
    cuts.extend([1, 4, 5, head_len - 1, head_len, head_len + 1, head_len + 4, good.len() - 1]);
    for cut in cuts {
        case.put("bad.airlock", &good[..cut]);
        let out = case.expect_rejected("bad.airlock", "bundle rejected");
        assert!(
            out.stderr.contains("truncated")
                || out.stderr.contains("empty")
                || out.stderr.contains("cannot read bundle"),
            "cut {cut}: {}",
            out.stderr
        );
    }
}

#[test]
fn truncation_exactly_at_the_end_of_the_head_frame() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    case.put("bad.airlock", &parts.head_frame);
    case.expect_rejected("bad.airlock", "bundle is truncated");
}

/// The payload split over two frames, the second dropped: the cut is exactly between
/// frames, every remaining frame is intact.
#[test]
fn truncation_between_payload_frames() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let half = parts.payload.len() / 2;
    let mut two_frames = parts.head_frame.clone();
    two_frames.extend(zstd(&parts.payload[..half]));
    let mut whole = two_frames.clone();
    whole.extend(zstd(&parts.payload[half..]));
    case.put("ok.airlock", &whole);
    run_verify_ok(&case, "ok.airlock");
    case.put("bad.airlock", &two_frames);
    case.expect_rejected("bad.airlock", "bundle is truncated");
}

/// Decompressed stream cut inside a tar header, inside content, at a member boundary and
/// inside the end marker; each recompressed into valid frames so only the tar layer sees it.
#[test]
fn truncation_inside_tar_header() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (header, ..) = span(&parts.payload, "data/xx/cd.txt");
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload[..header + 100]));
    case.expect_rejected("bad.airlock", "member data/xx/cd.txt: bundle is truncated");
}

#[test]
fn truncation_inside_member_content() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (_, data, size, _) = span(&parts.payload, "data/z.bin");
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload[..data + size / 3]));
    case.expect_rejected("bad.airlock", "member data/z.bin: bundle is truncated");
}

#[test]
fn truncation_at_a_member_boundary() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (header, ..) = span(&parts.payload, "data/z.bin");
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload[..header]));
    case.expect_rejected("bad.airlock", "member data/z.bin: bundle is truncated");
}

#[test]
fn truncation_inside_end_of_archive_marker() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let cut = parts.payload.len() - 512;
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload[..cut]));
    case.expect_rejected("bad.airlock", "end of archive: bundle is truncated");
}

/// The bundle cut one byte short, in half, inside the first frame's header, and to nothing.
#[test]
fn truncated_bundle() {
    let case = Case::new();
    let full = case.bytes("next.airlock");
    for cut in [full.len() - 1, full.len() / 2, 40, 0] {
        case.put("bad.airlock", &full[..cut]);
        case.expect_rejected("bad.airlock", "bundle rejected");
    }
}

// ---------------------------------------------------------------------------------------
// trailing and inserted data

#[test]
fn trailing_garbage_after_last_frame() {
    let case = Case::new();
    let mut bad = case.bytes("next.airlock");
    bad.extend_from_slice(b"GARBAGE AFTER THE LAST FRAME");
    case.put("bad.airlock", &bad);
    case.expect_rejected("bad.airlock", "after end of archive: cannot read bundle");
}

#[test]
fn trailing_zero_bytes_after_last_frame() {
    let case = Case::new();
    let mut bad = case.bytes("next.airlock");
    bad.extend_from_slice(&[0u8; 4096]);
    case.put("bad.airlock", &bad);
    case.expect_rejected("bad.airlock", "after end of archive: cannot read bundle");
}

#[test]
fn trailing_valid_zstd_frame() {
    let case = Case::new();
    let mut bad = case.bytes("next.airlock");
    bad.extend(zstd(b"#!/bin/sh\necho smuggled\n"));
    case.put("bad.airlock", &bad);
    case.expect_rejected("bad.airlock", "trailing data after the end-of-archive marker");
}

#[test]
fn trailing_data_inside_the_last_frame() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut payload = parts.payload.clone();
    payload.extend_from_slice(&member("data/evil.sh", b"echo smuggled\n", 0o755));
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "trailing data after the end-of-archive marker");
}

#[test]
fn skippable_frame_appended() {
    let case = Case::new();
    let mut bad = case.bytes("next.airlock");
    bad.extend(skippable_frame(b"hidden payload"));
    case.put("bad.airlock", &bad);
    case.expect_rejected("bad.airlock", "zstd frame 3 is empty or skippable");
}

#[test]
fn skippable_frame_inserted_between_head_and_payload() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut bad = parts.head_frame.clone();
    bad.extend(skippable_frame(b"hidden payload"));
    bad.extend_from_slice(&parts.payload_frames);
    case.put("bad.airlock", &bad);
    case.expect_rejected("bad.airlock", "zstd frame 2 is empty or skippable");
}

#[test]
fn skippable_frame_before_head() {
    let case = Case::new();
    let mut bad = skippable_frame(b"hidden payload");
    bad.extend(case.bytes("next.airlock"));
    case.put("bad.airlock", &bad);
    case.expect_rejected("bad.airlock", "zstd frame 1 is empty or skippable");
}

#[test]
fn empty_zstd_frame_inserted() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut bad = parts.head_frame.clone();
    bad.extend(zstd(b""));
    bad.extend_from_slice(&parts.payload_frames);
    case.put("bad.airlock", &bad);
    case.expect_rejected("bad.airlock", "zstd frame 2 is empty or skippable");
}

// ---------------------------------------------------------------------------------------
// extra, missing, duplicated, reordered members

#[test]
fn extra_unlisted_member_at_the_end() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut payload = parts.payload[..parts.payload.len() - 1024].to_vec();
    payload.extend(member("data/evil.sh", b"boom", 0o755));
    payload.extend_from_slice(&[0u8; 1024]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "extra member \"data/evil.sh\" that the manifest does not list");
}

#[test]
fn extra_unlisted_member_in_the_middle() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (header, ..) = span(&parts.payload, "data/xx/cd.txt");
    let mut payload = parts.payload[..header].to_vec();
    payload.extend(member("data/evil.sh", b"boom", 0o755));
    payload.extend_from_slice(&parts.payload[header..]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "expected member \"data/xx/cd.txt\", found \"data/evil.sh\"");
}

/// An extra member with its own (valid, but untrusted) detached signature next to it.
#[test]
fn extra_member_with_its_own_signature_file() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let sig = case.secret("other").sign(b"boom", "looks legitimate").to_file_string();
    let mut payload = parts.payload[..parts.payload.len() - 1024].to_vec();
    payload.extend(member("data/evil.sh.sig", sig.as_bytes(), 0o644));
    payload.extend(member("data/evil.sh", b"boom", 0o755));
    payload.extend_from_slice(&[0u8; 1024]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "extra member \"data/evil.sh.sig\"");
}

#[test]
fn extra_member_in_the_head() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let sums = parts.head.pop().unwrap();
    parts.head.push(("airlock/extra".into(), b"x".to_vec()));
    parts.head.push(sums);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "unexpected member \"airlock/extra\"");
}

/// The head frame goes on after the checksum list: a payload member moved into frame 1.
#[test]
fn head_frame_continues_after_checksum_list() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut head_tar = Vec::new();
    for (name, content) in &parts.head {
        head_tar.extend(member(name, content, 0o644));
    }
    head_tar.extend(member("data/a.txt", b"alpha two\n", 0o644));
    let mut bad = zstd(&head_tar);
    bad.extend_from_slice(&parts.payload_frames);
    case.put("bad.airlock", &bad);
    case.expect_rejected("bad.airlock", "head frame: continues after airlock/SHA256SUMS.sig");
}

/// The whole bundle in one frame (as `tar --zstd -c` would write it): refused, because the
/// head must be readable without decompressing the payload.
#[test]
fn head_and_payload_in_one_frame() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let mut tar = Vec::new();
    for (name, content) in &parts.head {
        tar.extend(member(name, content, 0o644));
    }
    tar.extend_from_slice(&parts.payload);
    case.put("bad.airlock", &zstd(&tar));
    case.expect_rejected("bad.airlock", "head frame: continues after airlock/SHA256SUMS.sig");
}

#[test]
fn missing_last_payload_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (header, ..) = span(&parts.payload, "data/z.bin");
    let mut payload = parts.payload[..header].to_vec();
    payload.extend_from_slice(&[0u8; 1024]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "member data/z.bin: missing: the archive ends before this manifest entry");
}

#[test]
fn missing_middle_payload_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (start, .., end) = span(&parts.payload, "data/xx/cd.txt");
    let mut payload = parts.payload[..start].to_vec();
    payload.extend_from_slice(&parts.payload[end..]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "expected member \"data/xx/cd.txt\", found \"data/z.bin\"");
}

#[test]
fn missing_manifest_member() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    parts.head.remove(0);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "expected \"airlock/manifest.cbor\" first");
}

#[test]
fn missing_signature_member() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    parts.head.remove(1);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "the bundle has no manifest signature");
}

#[test]
fn missing_checksum_list() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    parts.head.pop();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "member 3: bundle is truncated");
}

#[test]
fn duplicated_payload_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (start, .., end) = span(&parts.payload, "data/a.txt");
    let mut payload = parts.payload[..end].to_vec();
    payload.extend_from_slice(&parts.payload[start..]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "expected member \"data/xx/cd.txt\", found \"data/a.txt\"");
}

#[test]
fn duplicated_last_payload_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (start, .., end) = span(&parts.payload, "data/z.bin");
    let mut payload = parts.payload[..end].to_vec();
    payload.extend_from_slice(&parts.payload[start..]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "extra member \"data/z.bin\"");
}

#[test]
fn duplicated_signature_member() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let sig = parts.head[1].clone();
    parts.head.insert(1, sig);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "signature members are not sorted by key id, or repeat one");
}

#[test]
fn reordered_payload_members() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (a0, .., a1) = span(&parts.payload, "data/a.txt");
    let (b0, .., b1) = span(&parts.payload, "data/xx/cd.txt");
    let mut payload = parts.payload[..a0].to_vec();
    payload.extend_from_slice(&parts.payload[b0..b1]);
    payload.extend_from_slice(&parts.payload[a0..a1]);
    payload.extend_from_slice(&parts.payload[b1..]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "expected member \"data/a.txt\", found \"data/xx/cd.txt\"");
}

#[test]
fn reordered_head_members() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    parts.head.swap(1, 2);
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "the bundle has no manifest signature");
}

#[test]
fn reordered_signature_members() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let m = parts.head[0].1.clone();
    let mut sigs = vec![
        airlock::format::head::sign_manifest(&case.secret("k"), &m),
        airlock::format::head::sign_manifest(&case.secret("k2"), &m),
    ];
    sigs.sort_by_key(|s| std::cmp::Reverse(s.key_id()));
    let mut head = vec![parts.head[0].clone()];
    for s in &sigs {
        head.push((airlock::format::signature_member(s.key_id()), s.to_file_string().into_bytes()));
    }
    head.push(parts.head.pop().unwrap());
    case.put("bad.airlock", &assemble(&head, &parts.payload));
    case.expect_rejected("bad.airlock", "signature members are not sorted by key id");
}

/// An executable member appended to the payload, not in the manifest.
#[test]
fn extra_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let end = parts.payload.len() - 1024;
    let mut payload = parts.payload[..end].to_vec();
    let mut h = tar::Header::new_ustar();
    h.set_path("data/evil.sh").unwrap();
    h.set_size(4);
    h.set_mode(0o755);
    h.set_cksum();
    payload.extend_from_slice(h.as_bytes());
    payload.extend_from_slice(b"boom");
    payload.resize(payload.len() + 508 + 1024, 0);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "extra member \"data/evil.sh\"");
    assert!(!case.mirror().join("evil.sh").exists());
}

/// A member the manifest lists, cut out of the payload.
#[test]
fn missing_member() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (start, ..) = span(&parts.payload, "data/xx/cd.txt");
    let (next_start, ..) = span(&parts.payload, "data/z.bin");
    let mut payload = parts.payload[..start].to_vec();
    payload.extend_from_slice(&parts.payload[next_start..]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "expected member \"data/xx/cd.txt\", found \"data/z.bin\"");
}

// ---------------------------------------------------------------------------------------
// mix and match

#[test]
fn signature_copied_from_another_bundle() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let older = case.parts("older.airlock");
    parts.head[1] = older.head[1].clone();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    let msg = format!("signature by trusted key {} on airlock/manifest.cbor does not verify", case.key_id("k"));
    case.expect_rejected("bad.airlock", &msg);
}

#[test]
fn checksum_list_copied_from_another_bundle() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let base = split(&std::fs::read(case.path("base.airlock")).unwrap());
    parts.head[2] = base.head[2].clone();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "checksum list does not match the manifest");
}

#[test]
fn manifest_of_one_bundle_with_payload_of_another() {
    let case = Case::new();
    let next = case.parts("next.airlock");
    let base = case.parts("base.airlock");
    let mut bad = next.head_frame.clone();
    bad.extend_from_slice(&base.payload_frames);
    case.put("bad.airlock", &bad);
    case.expect_rejected("bad.airlock", "member \"data/a.txt\" has size 6 but the manifest says 10");
}

/// One file from an older bundle swapped in, with every size matching: the hash catches it.
#[test]
fn one_member_from_another_bundle() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let (a0, .., a1) = span(&parts.payload, "data/a.txt");
    let mut payload = parts.payload[..a0].to_vec();
    payload.extend(member("data/a.txt", b"alpha 2!\n\n", 0o644)); // same size as "alpha two\n"
    payload.extend_from_slice(&parts.payload[a1..]);
    case.put("bad.airlock", &assemble(&parts.head, &payload));
    case.expect_rejected("bad.airlock", "member data/a.txt: SHA-256 is");
}

// ---------------------------------------------------------------------------------------
// signatures by the wrong key

#[test]
fn signature_by_untrusted_key() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let m = parts.head[0].1.clone();
    let (_, sums) = airlock::keys::parse_embedded(&parts.head[2].1).unwrap();
    let head = signed_head(&m, sums, &[&case.secret("other")]);
    case.put("bad.airlock", &assemble(&head, &parts.payload));
    let msg = format!("found 0; signed by: {} (not a trusted key)", case.key_id("other"));
    case.expect_rejected("bad.airlock", &msg);
}

/// A signature made by another key, relabelled with the trusted key's key number (the
/// member name and the keynum inside agree): the full public key decides, and a signature
/// that claims a trusted key and does not verify rejects the bundle.
#[test]
fn signature_whose_key_id_lies() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let forged = airlock::format::head::sign_manifest(&case.secret("other"), &parts.head[0].1);
    let text = relabel(&forged.to_file_string(), &case.secret("k").key_id().0);
    parts.head[1].1 = text.into_bytes();
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    let msg = format!("signature by trusted key {} on airlock/manifest.cbor does not verify", case.key_id("k"));
    case.expect_rejected("bad.airlock", &msg);
}

/// Rewrites the key number inside a signify signature file.
pub fn relabel(sig_file: &str, keynum: &[u8; 8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut lines = sig_file.lines();
    let comment = lines.next().unwrap();
    let mut raw = b64.decode(lines.next().unwrap()).unwrap();
    raw[2..10].copy_from_slice(keynum);
    format!("{comment}\n{}\n", b64.encode(raw))
}

#[test]
fn signature_member_name_disagrees_with_key_number() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let other = airlock::format::head::sign_manifest(&case.secret("other"), &parts.head[0].1);
    parts.head[1].1 = other.to_file_string().into_bytes(); // member still named after k
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    let msg = format!("holds a signature by key {}, not {}", case.key_id("other"), case.key_id("k"));
    case.expect_rejected("bad.airlock", &msg);
}

/// A valid signature by trusted key k next to a forged one claiming trusted key k2: the
/// bundle is rejected even though k alone meets the threshold of 1.
#[test]
fn forged_signature_next_to_a_valid_one() {
    let case = Case::new();
    let parts = case.parts("next.airlock");
    let m = parts.head[0].1.clone();
    let good = airlock::format::head::sign_manifest(&case.secret("k"), &m);
    let forged_text = relabel(
        &airlock::format::head::sign_manifest(&case.secret("other"), &m).to_file_string(),
        &case.secret("k2").key_id().0,
    );
    let forged = airlock::keys::Signature::parse(forged_text.as_bytes()).unwrap();
    let mut sigs = [good, forged];
    sigs.sort_by_key(|s| s.key_id());
    let mut head = vec![parts.head[0].clone()];
    for s in &sigs {
        head.push((airlock::format::signature_member(s.key_id()), s.to_file_string().into_bytes()));
    }
    head.push(parts.head[2].clone());
    case.put("bad.airlock", &assemble(&head, &parts.payload));
    let msg = format!("signature by trusted key {} on airlock/manifest.cbor does not verify", case.key_id("k2"));
    case.expect_refused("bad.airlock", &["k", "k2"], &[], 1, &msg);
}

/// A valid bundle, but signed only by a key the importer does not trust; `verify`
/// refuses it too.
#[test]
fn wrong_key() {
    let case = Case::new();
    case.expect_refused("next.airlock", &["other"], &[], 1, "trusted key(s), found 0");
    case.verify("next.airlock", &["other"]).expect_code(1);
}

/// A rejection leaves a `rejected` record, with its reason, in the mirror's log.
#[test]
fn rejection_is_logged() {
    let case = Case::new();
    case.import("next.airlock", &["other"], &[]).expect_code(1);
    let log = std::fs::read_to_string(case.mirror().join(".airlock/log")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "rejected");
    assert!(last["reason"].as_str().unwrap().contains("trusted key"));
}

// ---------------------------------------------------------------------------------------
// freshness: rollback, replay, expiry, channels

#[test]
fn rollback_after_newer_import() {
    let case = Case::new();
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    case.expect_rejected(
        "older.airlock",
        "channel \"default\": sequence 1 is not newer than the last imported sequence 2 (rollback or replay)",
    );
}

/// A different manifest with the same sequence as the last import (a fork, or a replay of
/// a re-signed bundle).
#[test]
fn replay_of_the_same_sequence_with_another_manifest() {
    let case = Case::new();
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    case.pack("again.airlock", &["--sequence", "2"]).expect_code(0);
    case.expect_rejected("again.airlock", "sequence 2 is not newer than the last imported sequence 2");
}

/// Importing the very same bundle again is not an attack on anything: a no-op, exit 0.
#[test]
fn replay_of_an_imported_bundle_is_a_noop() {
    let case = Case::new();
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    let before = case.mirror_state();
    let out = case.import("next.airlock", &["k"], &[]);
    out.expect_code(0);
    assert!(out.stdout.contains("already imported"), "{}", out.stdout);
    assert_eq!(case.mirror_state(), before);
}

/// A bundle that claims to follow nothing (packed on another machine with sequence 2): its
/// `previous` does not name the mirror's last manifest.
#[test]
fn forked_history_previous_mismatch() {
    let case = Case::new();
    let out =
        run(case.pack_command("fork.airlock", &["--sequence", "2"]).env("AIRLOCK_STATE_DIR", case.path("fresh-state")));
    out.expect_code(0);
    case.expect_rejected(
        "fork.airlock",
        "bundle 2 follows manifest nothing, but the mirror's last import (sequence 1) has manifest",
    );
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Packs the template's tree as if the clock read `time`.
fn pack_at_time(case: &Case, out: &str, time: u64, extra: &[&str]) {
    run(case.pack_command(out, extra).env("AIRLOCK_NOW", time.to_string())).expect_code(0);
}

/// `pack ops-src -o OUT --channel ops` as if the clock read `time`: channel `ops` has paths
/// of its own (a channel never overwrites another channel's files).
fn pack_ops(case: &Case, out: &str, time: u64, extra: &[&str]) {
    write(&case.path("ops-src"), "ops/notes.txt", b"ops\n", 0o644);
    let args = [&["--channel", "ops"], extra].concat();
    run(pack_command(case.dir.path(), &case.path("ops-src"), out, &args).env("AIRLOCK_NOW", time.to_string()))
        .expect_code(0);
}

#[test]
fn expired_bundle() {
    let case = Case::new();
    pack_at_time(&case, "stale.airlock", now() - 7200, &["--expires", "1h"]);
    case.expect_rejected("stale.airlock", "bundle expired at");
}

/// The import machine's clock is set back to before the expiry, but the mirror has
/// already seen a bundle of the channel created later: the channel's clock floor decides.
#[test]
fn expired_by_the_mirrors_clock_floor() {
    let case = Case::new();
    let t = now();
    pack_ops(&case, "future.airlock", t + 10 * 86_400, &[]);
    run(case.import_command("future.airlock", &["k"], &[]).env("AIRLOCK_NOW", (t + 10 * 86_400).to_string()))
        .expect_code(0);
    pack_ops(&case, "stale.airlock", t, &["--expires", "1d"]);
    let before = case.mirror_state();
    let log_before = std::fs::read_to_string(case.mirror().join(".airlock/log")).unwrap();
    let listing_before = listing(case.dir.path());
    let out = run(case.import_command("stale.airlock", &["k"], &[]).env("AIRLOCK_NOW", (t + 3600).to_string()));
    out.expect_code(1).expect_stderr("bundle expired at").expect_stderr("the mirror's clock floor");
    case.assert_untouched(&before, &log_before, &listing_before);
}

/// Channels are independent sequences (docs/THREAT-MODEL.md §Channels): a bundle of
/// another channel, signed by a trusted key, is accepted on its own sequence and does not
/// disturb the first channel's; rollback is still enforced within it. Restricting which
/// keys may sign which channel is trust policy, not sequencing.
#[test]
fn another_channels_bundle_is_an_independent_sequence() {
    let case = Case::new();
    pack_ops(&case, "ops1.airlock", now(), &[]);
    pack_ops(&case, "ops2.airlock", now(), &[]);
    case.import("ops2.airlock", &["k"], &[]).expect_code(0);
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    case.expect_rejected("ops1.airlock", "channel \"ops\": sequence 1 is not newer than the last imported sequence 2");
    case.expect_rejected(
        "older.airlock",
        "channel \"default\": sequence 1 is not newer than the last imported sequence 2",
    );
}

/// A bundle of another channel relabelled into this one (or vice versa) by editing the
/// manifest: the channel is signed.
#[test]
fn channel_cannot_be_relabelled_without_the_key() {
    let case = Case::new();
    let mut parts = case.parts("next.airlock");
    let m = &mut parts.head[0].1;
    let at = m.windows(7).position(|w| w == b"default").unwrap();
    m[at..at + 7].copy_from_slice(b"mirror2");
    case.put("bad.airlock", &assemble(&parts.head, &parts.payload));
    case.expect_rejected("bad.airlock", "on airlock/manifest.cbor does not verify");
}

/// Validly signed and never imported here, but older than the mirror's last import.
#[test]
fn replayed_older_sequence() {
    let case = Case::new();
    case.import("next.airlock", &["k"], &[]).expect_code(0); // sequence 2
    case.expect_rejected("older.airlock", "sequence 1 is not newer than the last imported sequence 2");
}

/// A skipped sequence number is refused with the missing one named, and `--allow-gap`
/// accepts it with the override logged.
#[test]
fn gap_is_named_and_overridable() {
    let case = Case::new();
    case.pack("third.airlock", &["--sequence", "3"]).expect_code(0); // 2 not imported
    case.expect_rejected("third.airlock", "missing sequence 2 (last imported 1");
    let ok = case.import("third.airlock", &["k"], &["--allow-gap"]);
    ok.expect_code(0);
    assert!(ok.stdout.contains("override logged"), "{}", ok.stdout);
    let log = std::fs::read_to_string(case.mirror().join(".airlock/log")).unwrap();
    assert!(log.lines().last().unwrap().contains("allow-gap"));
}

fn run_verify_ok(case: &Case, bundle: &str) {
    case.verify(bundle, &["k"]).expect_code(0);
}

/// The control: the template's bundle itself imports, so every rejection above is caused
/// by its modification alone.
#[test]
fn control_the_unmodified_bundle_imports() {
    let case = Case::new();
    case.import("next.airlock", &["k"], &[]).expect_code(0);
    run(airlock().arg("mirror").arg("verify").arg(case.mirror()).arg("--quiet")).expect_code(0);
    // Reassembled from its parts it still imports: the tools above do not damage bundles.
    let case = Case::new();
    let parts = case.parts("next.airlock");
    case.put("re.airlock", &assemble(&parts.head, &parts.payload));
    case.import("re.airlock", &["k"], &[]).expect_code(0);
}
