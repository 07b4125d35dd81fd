//! The fuzz targets' bodies, shared by the cargo-fuzz binaries (fuzz/fuzz_targets/*.rs,
//! libFuzzer, nightly Rust) and the stable-Rust bounded runner (tests/it/fuzz_targets.rs,
//! part of `cargo test`). Each function must never panic, whatever `data` is, except on
//! an assertion that states a real invariant; docs/FUZZING.md says how to run them.
//!
//! - [`manifest`]: `manifest::decode` (and the pre-verification `peek::peek_channel_created`);
//!   whatever decodes re-encodes to the same bytes, and peek agrees with decode.
//! - [`signify`]: the signify parsers (`PublicKey::parse`, `Signature::parse`,
//!   `parse_embedded`, `SecretKey::parse`); what parses re-serialises and parses again to
//!   the same value.
//! - [`bundle`]: the whole import path on an arbitrary file: `Bundle::open`, verification
//!   against a fixed trusted key, `Mirror::import` into a fresh mirror in a temporary
//!   directory. Accepted: `mirror verify` is clean. Rejected: the mirror holds nothing.
//!   Either way nothing appears in the temporary root but the input and the mirror.
//! - [`bundle_parts`]: the same, with the input taken as (head tar, payload tar) that the
//!   target compresses into frames itself, so mutations reach the tar and manifest layers
//!   instead of dying in zstd.
//! - [`mirror_log`]: the reader of `.airlock/log` (`mirror::read_log`) on arbitrary bytes
//!   written as a mirror's log, and every record it returns formatted as `mirror log`
//!   prints it (times through `clock::format`, text and JSON); what it accepts serialises
//!   and reads back to the same record.
//! - [`inspect`]: `inspect`'s rendering (`render::inspect_text`, `render::inspect_json`) of
//!   whatever `manifest::decode` accepts, and of a manifest built field by field from the
//!   input (any string, any number: the renderer must not rely on the decoder's rules).
//!   The text holds no character `render::needs_escape` names except its line ends, and
//!   exactly one line per header field and entry; the JSON is one line that parses back to
//!   the same strings.
//! - [`receipt`]: `receipt::decode` and `receipt::open` (against the fuzz key) on arbitrary
//!   bytes; what decodes re-encodes to the same bytes.
//! - [`volume_table`]: `volume::Table::decode` and the trailer footer's decoder on arbitrary
//!   bytes; what decodes re-encodes to the same bytes, and the table's derived sizes (stripes,
//!   shard lengths, parity length) never overflow or panic.

#![allow(dead_code)]

use std::path::Path;

use airlock::keys::{self, KeyError, PublicKey, SecretKey, Signature};
use airlock::mirror::{ImportOptions, Mirror};
use airlock::policy::{Policy, Trust};
use airlock::progress::NoProgress;

/// A test key pair made for fuzzing (`airlock keygen --no-passphrase`). Its secret half is
/// public: never trust this key for anything. Seeds are signed with it, so mutated seeds
/// pass the signature check and reach the deeper layers.
pub const FUZZ_PUBLIC_KEY: &str = "untrusted comment: airlock fuzz (public test key, never trust it) public key
RWTYBCGjMnVMwnUTyO94ClabIEkBErl8LedkKfa4RIip+5AaXFE/mLsX
";
pub const FUZZ_SECRET_KEY: &str = "untrusted comment: airlock fuzz (public test key, never trust it) secret key
RWRCSwAAAADaz6m1yNqJBQ7s76Azv1ZW6/5txy4CjofYBCGjMnVMwmtBfftnyMkOdOMP3oHfB1g9l7EooQiNXKvqikyil4H9dRPI73gKVpsgSQESuXwt52Qp9rhEiKn7kBpcUT+Yuxc=
";

pub fn secret_key() -> SecretKey {
    SecretKey::parse(FUZZ_SECRET_KEY.as_bytes(), Path::new("fuzz key"), &mut no_passphrase).unwrap()
}

fn no_passphrase() -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
    // Encrypted keys stop here: the KDF (bcrypt_pbkdf, up to 2^32 rounds from the file) is
    // a third-party crate and would only make executions slow.
    Err(KeyError::PassphraseRequired { origin: "fuzz".into() })
}

fn policy() -> Policy {
    let key = PublicKey::parse(FUZZ_PUBLIC_KEY.as_bytes()).unwrap();
    Policy::from_trust(Trust::new(vec![key], 1).unwrap())
}

pub fn manifest(data: &[u8]) {
    let peeked = airlock::format::peek::peek_channel_created(data);
    if let Ok(m) = airlock::format::manifest::decode(data) {
        let again = airlock::format::manifest::encode(&m).expect("a decoded manifest must re-encode");
        assert_eq!(again, data, "decode accepted a non-canonical encoding");
        let (channel, created) = peeked.expect("peek failed on a manifest decode accepts");
        assert_eq!((channel.as_str(), created), (m.channel.as_str(), m.created), "peek disagrees with decode");
        let order = m.payload_order();
        assert_eq!(order.len(), m.entries.len());
        let _ = m.total_size();
    }
}

pub fn signify(data: &[u8]) {
    if let Ok(k) = PublicKey::parse(data) {
        let again = PublicKey::parse(k.to_file_string().as_bytes()).expect("re-parse public key");
        assert_eq!(again.as_bytes(), k.as_bytes());
        assert_eq!(again.key_id(), k.key_id());
    }
    if let Ok(s) = Signature::parse(data) {
        let again = Signature::parse(s.to_file_string().as_bytes()).expect("re-parse signature");
        assert_eq!(again, s);
    }
    if let Ok((s, msg)) = keys::parse_embedded(data) {
        assert!(msg.len() < data.len());
        let _ = s.key_id();
    }
    if let Ok(k) = SecretKey::parse(data, Path::new("fuzz"), &mut no_passphrase) {
        let text = k.to_file_string(None).expect("serialise secret key");
        let again =
            SecretKey::parse(text.as_bytes(), Path::new("fuzz"), &mut no_passphrase).expect("re-parse secret key");
        assert_eq!(again.key_id(), k.key_id());
        assert_eq!(again.public_key().as_bytes(), k.public_key().as_bytes());
    }
}

pub fn bundle(data: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.airlock");
    std::fs::write(&input, data).expect("write input");
    import_and_check(dir.path(), &input);
}

/// Input: u32 LE length of the head tar, the head tar, then the payload tar.
pub fn bundle_parts(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let head_len = (u32::from_le_bytes(data[..4].try_into().unwrap()) as usize).min(data.len() - 4);
    let (head, payload) = data[4..].split_at(head_len);
    let mut file = zstd::stream::encode_all(head, 1).expect("compress");
    file.extend(zstd::stream::encode_all(payload, 1).expect("compress"));
    bundle(&file);
}

/// The inverse of [`bundle_parts`]'s input format, for seeds.
pub fn parts_input(head_tar: &[u8], payload_tar: &[u8]) -> Vec<u8> {
    let mut out = (head_tar.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(head_tar);
    out.extend_from_slice(payload_tar);
    out
}

fn import_and_check(root: &Path, input: &Path) {
    let mirror_dir = root.join("mirror");
    if !mirror_dir.join(".airlock").exists() {
        Mirror::init(&mirror_dir).expect("create a fresh mirror");
    }
    let mirror = Mirror::open(&mirror_dir).expect("open the mirror");
    let result = mirror.import(input, &policy(), &ImportOptions::default(), &NoProgress);
    match &result {
        Ok(_) => {
            let report = mirror.audit(&NoProgress).expect("mirror verify");
            assert!(report.is_clean(), "accepted import does not verify: {report:?}");
        }
        Err(e) => {
            assert!(e.is_rejection() || is_operational(e), "unexpected error kind: {e}");
            let meta = mirror_dir.join(".airlock");
            for item in std::fs::read_dir(&mirror_dir).expect("list mirror") {
                let name = item.expect("entry").file_name();
                assert_eq!(name, ".airlock", "a refused import left {name:?} in the mirror");
            }
            assert_eq!(std::fs::read_dir(meta.join("staging")).expect("staging").count(), 0, "staging left");
            assert!(!meta.join("pending").exists(), "pending left");
        }
    }
    drop(mirror);
    let mut names: Vec<String> = std::fs::read_dir(root)
        .expect("list root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["in.airlock", "mirror"], "something was created outside the mirror");
}

/// Operational refusals a validly signed input can cause (a declared size larger than
/// the filesystem): not a rejection, but clean.
fn is_operational(e: &airlock::Error) -> bool {
    matches!(e, airlock::Error::Mirror { reason: airlock::mirror::MirrorError::NoSpace { .. }, .. })
}

/// A mirror (made once per thread, reused: creating one costs fsyncs) whose log is
/// replaced by `data` for each input.
pub fn mirror_log(data: &[u8]) {
    use airlock::mirror::{read_log, LogRecord};
    thread_local! {
        static MIRROR: tempfile::TempDir = {
            let dir = tempfile::tempdir().expect("tempdir");
            Mirror::init(&dir.path().join("m")).expect("create a mirror");
            dir
        };
    }
    MIRROR.with(|dir| {
        let root = dir.path().join("m");
        std::fs::write(root.join(".airlock/log"), data).expect("write the log");
        let Ok(state) = read_log(&root) else {
            return;
        };
        assert_eq!(state.head.len(), 64, "the chain head is a SHA-256");
        for record in &state.records {
            let _ = log_line(record);
            let json = serde_json::to_string(record).expect("an accepted record serialises");
            let again: LogRecord = serde_json::from_str(&json).expect("a serialised record reads back");
            assert_eq!(&again, record, "a record changed through its JSON");
        }
    });
}

/// A log record as `airlock mirror log` prints it (src/cli/mirror.rs), through the same
/// library functions: every time and number of the record is formatted.
fn log_line(r: &airlock::mirror::LogRecord) -> String {
    use airlock::clock::format;
    let mut line = format!("{}  {:<9}", format(r.time), r.event);
    if let Some(b) = &r.bundle {
        line.push_str(&format!(
            " channel {} seq {} created {} expires {} manifest {} signers {} ({} files, {} bytes)",
            b.channel,
            b.sequence,
            format(b.created),
            b.expires.map_or("never".into(), format),
            b.manifest_sha256.get(..16).unwrap_or(&b.manifest_sha256),
            b.signers.join(","),
            b.entries,
            b.bytes
        ));
    }
    for o in r.overrides.iter().chain(&r.artifacts).chain(&r.source).chain(&r.reason) {
        line.push_str(&format!(" {o}"));
    }
    line
}

/// Seeds for [`mirror_log`]: a chained log of one record of each event, with far-future
/// times and the largest numbers on some; and the same log with its chain broken.
fn log_seeds() -> Vec<Vec<u8>> {
    use airlock::io::digest::Digest;
    use airlock::mirror::{BundleSummary, Event, LogRecord};
    let summary = |sequence: u64, created: u64, expires: Option<u64>| BundleSummary {
        manifest_sha256: Digest::of(&sequence.to_le_bytes()).to_hex(),
        bundle_id: "00112233445566778899aabbccddeeff".into(),
        channel: "fuzz".into(),
        sequence,
        created,
        expires,
        signers: vec!["0123456789abcdef".into()],
        entries: 3,
        bytes: u64::MAX,
    };
    let record = |time, event, bundle| LogRecord {
        prev: String::new(),
        time,
        event,
        source: Some("in.airlock".into()),
        bundle,
        overrides: vec!["allow-gap: accepted sequence 3 after 1".into()],
        artifacts: Vec::new(),
        reason: Some("a reason".into()),
        changes: None,
        retired: Vec::new(),
        attic: None,
        repaired: Vec::new(),
        recovery: None,
    };
    let records = [
        record(1_700_000_000, Event::Imported, Some(summary(1, 1_700_000_000, None))),
        record(253_402_300_800, Event::Imported, Some(summary(2, u64::MAX, Some(u64::MAX)))),
        record(1 << 40, Event::Rejected, Some(summary(u64::MAX, 1 << 40, Some(253_402_300_800)))),
        record(u64::MAX, Event::Failed, None),
        record(0, Event::Discarded, None),
    ];
    let mut log = Vec::new();
    let mut prev = "0".repeat(64);
    for mut r in records {
        r.prev = prev;
        let line = serde_json::to_vec(&r).expect("serialise a record");
        prev = Digest::of(&line).to_hex();
        log.extend_from_slice(&line);
        log.push(b'\n');
    }
    let broken = log.iter().map(|&b| if b == b'7' { b'8' } else { b }).collect();
    vec![log, broken, Vec::new()]
}

pub fn inspect(data: &[u8]) {
    if let Ok(m) = airlock::format::manifest::decode(data) {
        check_inspect_rendering(&m, &[], None);
    }
    let (m, signatures, threshold) = manifest_from_fields(data);
    check_inspect_rendering(&m, &signatures, threshold.as_deref());
}

/// A manifest, its signature lines and a threshold verdict made of `data`'s pieces (split
/// at 0xff bytes, which UTF-8 never holds): strings as they are (lossily), numbers from
/// eight bytes each, entries wherever a piece is a valid path.
fn manifest_from_fields(data: &[u8]) -> (airlock::Manifest, Vec<airlock::render::SignatureLine>, Option<String>) {
    use airlock::format::manifest::{BundleId, Mode};
    let pieces: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let text = |i: usize| pieces.get(i).map(|p| String::from_utf8_lossy(p).into_owned());
    let number = |i: usize| {
        let bytes = pieces.get(i).copied().unwrap_or_default();
        let mut n = [0u8; 8];
        for (k, b) in bytes.iter().take(8).enumerate() {
            n[k] = *b;
        }
        u64::from_le_bytes(n)
    };
    let meta = pieces.chunks(2).skip(4).take(8).map(|kv| {
        let s = |p: Option<&&[u8]>| String::from_utf8_lossy(p.copied().unwrap_or_default()).into_owned();
        (s(kv.first()), s(kv.get(1)))
    });
    let entries = pieces
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let path = airlock::RelPath::new(std::str::from_utf8(p).ok()?).ok()?;
            let mode = if i % 2 == 0 { Mode::Regular } else { Mode::Executable };
            Some(airlock::Entry {
                path,
                size: number(i + 1),
                sha256: airlock::Digest([i as u8; 32]),
                mode,
                signatures: vec![],
                carried: i % 3 != 2,
            })
        })
        .collect();
    let m = airlock::Manifest {
        version: airlock::format::manifest::VERSION,
        base: None,
        bundle_id: BundleId([7; 16]),
        created: number(0),
        expires: Some(number(1)).filter(|e| *e % 2 == 1),
        channel: text(2).unwrap_or_default(),
        sequence: number(3),
        previous: None,
        label: text(4),
        meta: meta.collect(),
        entries,
        removed: vec![],
    };
    // Hostile text where the policy's words go: the key's name and a revocation reason.
    let signatures = (5..8)
        .filter_map(|i| {
            Some(airlock::render::SignatureLine {
                key_id: airlock::keys::KeyId(number(i).to_be_bytes()),
                name: text(i),
                status: Some(airlock::policy::SignatureStatus::Revoked { reason: text(i + 1)? }),
            })
        })
        .collect();
    (m, signatures, text(9))
}

fn check_inspect_rendering(
    m: &airlock::Manifest,
    signatures: &[airlock::render::SignatureLine],
    threshold: Option<&str>,
) {
    use airlock::render::{inspect_json, inspect_text, needs_escape, Inspection};
    let digest = "d".repeat(64);
    let material = airlock::producer::material_by_name(m);
    // A hostile rule name stands for the threshold line.
    let trust = threshold.map(|rule| airlock::policy::TrustReport {
        signatures: Vec::new(),
        valid_signers: Vec::new(),
        threshold: rule.len() % 3,
        rule: Some(rule.to_owned()),
    });
    let view = Inspection {
        manifest: m,
        manifest_digest: &digest,
        signatures,
        trust: trust.as_ref(),
        material: &material,
        producers: None,
    };
    let mut text = Vec::new();
    inspect_text(&mut text, &view).expect("render to memory");
    let text = String::from_utf8(text).expect("the text rendering is UTF-8");
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    for line in &lines {
        assert!(!line.chars().any(needs_escape), "raw control or invisible character in {line:?}");
    }
    let delta = m.entries.iter().any(|e| !e.carried);
    let header = 8
        + usize::from(m.label.is_some())
        + m.meta.len()
        + signatures.len()
        + usize::from(threshold.is_some())
        + usize::from(m.base.is_some())
        + usize::from(delta);
    let material_lines = if material.is_empty() { 0 } else { 2 + material.len() };
    assert_eq!(lines.len(), header + 3 + m.entries.len() + material_lines, "a field or entry spans lines:\n{text}");

    let json = airlock::render::json_document("airlock.inspect.v1", true, &inspect_json(&view))
        .expect("a manifest serialises");
    assert!(!json.chars().any(needs_escape), "raw control or invisible character in {json:?}");
    let value: serde_json::Value = serde_json::from_str(&json).expect("the JSON rendering parses");
    assert_eq!(value["channel"].as_str(), Some(m.channel.as_str()));
    assert_eq!(value["label"].as_str(), m.label.as_deref());
    assert_eq!(value["entries"].as_array().map(Vec::len), Some(m.entries.len()));
    for (k, v) in &m.meta {
        assert_eq!(value["meta"][k].as_str(), Some(v.as_str()));
    }
}

pub fn receipt(data: &[u8]) {
    use airlock::format::receipt;
    if let Ok(r) = receipt::decode(data) {
        assert_eq!(receipt::encode(&r).expect("a decoded receipt encodes"), data, "decode is canonical");
    }
    let public = airlock::keys::PublicKey::parse(FUZZ_PUBLIC_KEY.as_bytes()).expect("the fuzz public key");
    if let Ok(r) = receipt::open(data, std::slice::from_ref(&public)) {
        let signed = receipt::sign(&r, &secret_key()).expect("an opened receipt signs");
        assert_eq!(receipt::open(&signed, &[public]).expect("re-signed receipt opens"), r);
    }
}

pub fn volume_table(data: &[u8]) {
    use airlock::format::volume::{Footer, Table, FOOTER_LEN};
    if let Ok(t) = Table::decode(data) {
        assert_eq!(t.encode(), data, "decode is canonical");
        let stripes = t.stripes();
        for j in [0, 1, stripes / 2, stripes.saturating_sub(1), stripes] {
            let _ = t.shard_len(j);
        }
        let _ = t.parity_length();
    }
    if let Some(tail) = data.len().checked_sub(FOOTER_LEN).and_then(|at| data.get(at..)) {
        let footer: [u8; FOOTER_LEN] = tail.try_into().expect("FOOTER_LEN bytes");
        if let Some(f) = Footer::decode(&footer) {
            assert_eq!(Footer::decode(&f.encode()), Some(f));
            let _ = (f.content_len(), f.trailer_len());
        }
    }
}

/// Seed inputs for each target: valid instances (and a few near misses) built from the
/// fuzz key, so mutations start from the interesting shapes.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    if target == "mirror_log" {
        return log_seeds();
    }
    if target == "receipt" {
        return receipt_seeds();
    }
    if target == "volume_table" {
        return volume_seeds();
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let files: &[(&str, &[u8])] = &[
        ("a.txt", b"alpha\n"),
        ("bin/run", b"#!/bin/sh\necho hi\n"),
        ("pkg/x.tar.gz", b"not really a tarball\n"),
        ("pkg/x.tar.gz.sig", b"untrusted comment: x\nAAAA\n"),
        ("empty", b""),
        ("\u{fc}n\u{ef}/\u{540d}.txt", b"non-ascii\n"),
    ];
    for (path, content) in files {
        let p = src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    let long = src.join("long").join("n".repeat(120));
    std::fs::create_dir_all(long.parent().unwrap()).unwrap();
    std::fs::write(&long, b"pax path").unwrap();
    let opts = airlock::pack::PackOptions {
        label: Some("seed".into()),
        meta: [("origin".to_string(), "fuzz".to_string())].into(),
        threads: 1,
        ..airlock::pack::PackOptions::new(vec![src], "fuzz", 1, 1_700_000_000)
    };
    let out = dir.path().join("seed.airlock");
    let report =
        airlock::pack::pack(&opts, &[secret_key()], &out, airlock::io::durable::Overwrite::NoClobber, &NoProgress)
            .expect("pack seed");
    let bytes = std::fs::read(&out).unwrap();
    let key = secret_key();
    match target {
        "manifest" => {
            let m = airlock::format::manifest::encode(&report.manifest).unwrap();
            vec![m.clone(), m[..m.len() / 2].to_vec(), airlock::format::manifest::prefix()]
        }
        "signify" => vec![
            FUZZ_PUBLIC_KEY.as_bytes().to_vec(),
            FUZZ_SECRET_KEY.as_bytes().to_vec(),
            key.sign(b"message", "a signature").to_file_string().into_bytes(),
            keys::sign_embedded(&key, b"SHA256 (data/a) = 00\n", "embedded"),
        ],
        "bundle" => vec![bytes.clone(), bytes[..bytes.len() / 2].to_vec()],
        "inspect" => {
            let m = airlock::format::manifest::encode(&report.manifest).unwrap();
            let fields: &[&[u8]] = &[
                &u64::MAX.to_le_bytes(),
                &253_402_300_800u64.to_le_bytes(),
                b"ch\x1b[2J\nannel",
                &[0; 8],
                "label \u{202e}\u{9b}\x7f\r\n\t".as_bytes(),
                b"signer\x1b]0;title\x07",
                b"status\nimported",
                "key\u{200b}".as_bytes(),
                b"value\x1b",
                b"threshold\x85",
                b"a.txt",
                &[0xff; 8],
                "\u{540d}/x".as_bytes(),
            ];
            vec![m, fields.join(&0xff)]
        }
        "bundle_parts" => {
            let (head, payload) = split_frames(&bytes);
            vec![parts_input(&head, &payload)]
        }
        _ => panic!("unknown target {target}"),
    }
}

/// Seeds for [`receipt`]: a receipt's text and the same receipt signed by the fuzz key.
fn receipt_seeds() -> Vec<Vec<u8>> {
    use airlock::format::receipt::{self, Receipt, ReceiptChannel};
    let d = |b: &[u8]| airlock::Digest::of(b);
    let r = Receipt {
        mirror: airlock::format::manifest::MirrorId([0x9f; 16]),
        created: 1_765_000_000,
        log_records: 3,
        log_head: d(b"log"),
        channels: vec![ReceiptChannel {
            name: "debian".into(),
            sequence: 4,
            manifest: d(b"m"),
            files: 2,
            bytes: 100,
            root: d(b"r"),
            intact: true,
        }],
        files: 2,
        bytes: 100,
        root: d(b"r"),
    };
    vec![receipt::encode(&r).unwrap(), receipt::sign(&r, &secret_key()).unwrap()]
}

/// Seeds for [`volume_table`]: the table and trailer of a packed two-volume set.
fn volume_seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut noise = vec![0u8; 3 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(src.join("noise.bin"), &noise).unwrap();
    let opts = airlock::pack::PackOptions {
        threads: 1,
        volumes: Some(airlock::pack::VolumeOptions { size: 2 << 20, parity: 1 }),
        ..airlock::pack::PackOptions::new(vec![src], "fuzz", 1, 1_700_000_000)
    };
    let out = dir.path().join("set");
    airlock::pack::pack(&opts, &[secret_key()], &out, airlock::io::durable::Overwrite::NoClobber, &NoProgress)
        .expect("pack seed volumes");
    let mut seeds = Vec::new();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let path = e.unwrap().path();
        if path.to_string_lossy().ends_with(".airlock") {
            let bytes = std::fs::read(&path).unwrap();
            // The trailer: the file's last part, from the embedded table's magic on.
            let magic = airlock::format::volume::TABLE_MAGIC.as_bytes();
            if let Some(at) = bytes.windows(magic.len()).rposition(|w| w == magic) {
                seeds.push(bytes[at..].to_vec());
            }
            seeds.push(bytes[bytes.len().saturating_sub(4096)..].to_vec());
        }
    }
    assert!(seeds.len() >= 6, "the seed set wrote {} volume seeds", seeds.len());
    seeds.sort();
    seeds
}

/// A bundle's head tar (frame 1) and payload tar (the rest), decompressed.
pub fn split_frames(bundle: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use std::io::Read;
    let mut rest: &[u8] = bundle;
    let mut head = Vec::new();
    zstd::stream::read::Decoder::with_buffer(&mut rest).unwrap().single_frame().read_to_end(&mut head).unwrap();
    let payload = zstd::stream::decode_all(rest).unwrap();
    (head, payload)
}

/// A target: its name and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Target functions by name.
pub const TARGETS: &[Target] = &[
    ("manifest", manifest),
    ("signify", signify),
    ("bundle", bundle),
    ("bundle_parts", bundle_parts),
    ("mirror_log", mirror_log),
    ("inspect", inspect),
    ("receipt", receipt),
    ("volume_table", volume_table),
];
