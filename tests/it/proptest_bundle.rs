//! Property tests (proptest, stable Rust, bounded case counts so `cargo test` stays fast;
//! raise them with `PROPTEST_CASES=10000 cargo test --test it proptest_bundle:: --release`).
//!
//! 1. Random trees (nested directories, non-ASCII and long names that need PAX headers,
//!    executables, empty files, detached-signature siblings) pack, verify and import to a
//!    byte-identical mirror.
//! 2. Random mutations of a valid bundle (bit flips, truncations, splices, duplicated or
//!    dropped ranges, on the compressed file and on the decompressed head or payload tar
//!    recompressed) are either rejected cleanly (a rejection error, no panic, the mirror
//!    untouched, nothing staged) or, if accepted, give exactly the signed content.
//! 3. Every numeric manifest field (`created`, `expires`, `sequence`, entry sizes) over the
//!    whole u64 range, and `previous`, against any clock, clock floor, skew, last sequence
//!    and `max_age`: encode, decode, the inspect-style formatting (times through
//!    `clock::format`, JSON) and the freshness checks of `verify` never panic, and every
//!    printed time is RFC 3339 or `@<seconds>`.
//!
//! Both use the library directly (`pack::pack`, `reader::Bundle`, `mirror::Mirror`), not
//! a process per case. The RNG seed is fixed so CI runs are reproducible; set
//! `PROPTEST_RNG_SEED` to explore other seeds.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use airlock::keys::SecretKey;
use airlock::mirror::{ImportOptions, ImportOutcome, Mirror};
use airlock::pack::{self, PackOptions};
use airlock::policy::{Policy, Trust};
use airlock::progress::NoProgress;
use airlock::verify::{Bundle, NullSink, VerifyOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(cases: u32) -> Config {
    let seed = std::env::var("PROPTEST_RNG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x005e_eda1);
    Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(cases),
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 256,
        ..Config::default()
    }
}

fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::generate("proptest"))
}

fn policy() -> Policy {
    Policy::from_trust(Trust::new(vec![key().public_key()], 1).unwrap())
}

fn options(sources: Vec<std::path::PathBuf>) -> PackOptions {
    PackOptions { threads: 1, ..PackOptions::new(sources, "prop", 1, 1_700_000_000) }
}

/// Imports into a fresh mirror under `dir`; the mirror's snapshot (without `.airlock`).
fn import(bundle: &Path, dir: &Path) -> (airlock::error::Result<ImportOutcome>, BTreeMap<String, String>) {
    // (Directories are listed too, so a rejected import that left one is noticed.)
    let root = dir.join("mirror");
    if !root.join(".airlock").exists() {
        Mirror::init(&root).unwrap();
    }
    let mirror = Mirror::open(&root).unwrap();
    let result = mirror.import(bundle, &policy(), &ImportOptions::default(), &NoProgress);
    drop(mirror);
    (result, crate::kit::snapshot(&root, true))
}

fn files_only(snapshot: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    snapshot.iter().filter(|(_, v)| *v != "dir").map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `verify`'s path: the whole procedure, the payload into a null sink.
fn verify(bundle: &Path) -> airlock::error::Result<()> {
    let policy = policy();
    let options = VerifyOptions::new(&policy, airlock::clock::system_now());
    Bundle::open(bundle)?.verify(&options)?.stream_into(&mut NullSink, &NoProgress).map(drop)
}

// ---------------------------------------------------------------------------------------
// 1. random trees round-trip

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z][a-z0-9_-]{0,8}",
        1 => Just("ünïcödé".to_string()),
        1 => Just("名前".to_string()),
        1 => Just("x.tar.gz".to_string()),
        1 => "[a-z]{95,130}", // a long name: PAX path record
        1 => Just("a b".to_string()),
    ]
}

fn file() -> impl Strategy<Value = (String, Vec<u8>, bool, Option<&'static str>)> {
    (
        prop::collection::vec(component(), 1..5),
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..600),
            1 => (0usize..3).prop_map(|k| vec![0u8; 512 * k]), // block-aligned sizes
            1 => (1usize..200_000).prop_map(|n| (0..n).map(|i| (i * 31 % 251) as u8).collect()),
        ],
        any::<bool>(),
        prop_oneof![4 => Just(None), 1 => Just(Some(".sig")), 1 => Just(Some(".minisig")), 1 => Just(Some(".asc"))],
    )
        .prop_map(|(parts, content, exec, sig)| (parts.join("/"), content, exec, sig))
}

/// Keeps the files airlock can carry: valid paths, no collisions, no file that is also a
/// directory of another (by the manifest's own comparison).
fn admissible(files: Vec<(String, Vec<u8>, bool, Option<&'static str>)>) -> Vec<(String, Vec<u8>, u32)> {
    let mut out: Vec<(String, Vec<u8>, u32)> = Vec::new();
    let mut keys = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    let mut candidates = Vec::new();
    for (path, content, exec, sig) in files {
        candidates.push((path.clone(), content.clone(), if exec { 0o755 } else { 0o644 }));
        if let Some(suffix) = sig {
            candidates.push((format!("{path}{suffix}"), b"untrusted comment: sig\nAAAA\n".to_vec(), 0o644));
        }
    }
    candidates.push(("fixed.txt".into(), b"always one file\n".to_vec(), 0o644));
    for (path, content, mode) in candidates {
        let Ok(rel) = airlock::format::path::RelPath::new(&path) else {
            continue;
        };
        let key = airlock::format::path::RelPath::collision_key(&path);
        let ancestors: Vec<String> = rel.ancestors().map(airlock::format::path::RelPath::collision_key).collect();
        if keys.contains(&key) || dirs.contains(&key) || ancestors.iter().any(|a| keys.contains(a)) {
            continue;
        }
        keys.insert(key);
        dirs.extend(ancestors);
        out.push((path, content, mode));
    }
    out
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn random_trees_round_trip(files in prop::collection::vec(file(), 0..12)) {
        let files = admissible(files);
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for (path, content, mode) in &files {
            crate::kit::write(&src, path, content, *mode);
        }
        let bundle = dir.path().join("b.airlock");
        let report = pack::pack(&options(vec![src.clone()]), std::slice::from_ref(key()), &bundle, airlock::io::durable::Overwrite::NoClobber, &NoProgress).unwrap();
        prop_assert_eq!(report.manifest.entries.len(), files.len());
        verify(&bundle).unwrap();
        let (result, mirror) = import(&bundle, dir.path());
        prop_assert!(matches!(result, Ok(ImportOutcome::Imported { .. })), "{:?}", result.err());
        let mut want = crate::kit::snapshot(&src, false);
        let mut got = mirror;
        want.retain(|_, v| v != "dir");
        got.retain(|_, v| v != "dir");
        prop_assert_eq!(got, want);
    }
}

// ---------------------------------------------------------------------------------------
// 2. mutations of a valid bundle

struct Valid {
    _dir: tempfile::TempDir,
    bytes: Vec<u8>,
    parts: crate::kit::Parts,
    content: BTreeMap<String, String>,
}

fn valid() -> &'static Valid {
    static V: OnceLock<Valid> = OnceLock::new();
    V.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        crate::kit::write(&src, "a.txt", b"alpha\n", 0o644);
        crate::kit::write(&src, "bin/run", b"#!/bin/sh\necho hi\n", 0o755);
        crate::kit::write(&src, "pkg/x.tar.gz", &(0..20_000u32).map(|i| (i % 97) as u8).collect::<Vec<_>>(), 0o644);
        crate::kit::write(&src, "pkg/x.tar.gz.sig", b"untrusted comment: x\nAAAA\n", 0o644);
        crate::kit::write(&src, "empty", b"", 0o644);
        crate::kit::write(&src, &format!("long/{}", "n".repeat(120)), b"pax", 0o644);
        crate::kit::write(&src, "ünï/名前.txt", b"non-ascii\n", 0o644);
        let bundle = dir.path().join("b.airlock");
        pack::pack(
            &options(vec![src.clone()]),
            std::slice::from_ref(key()),
            &bundle,
            airlock::io::durable::Overwrite::NoClobber,
            &NoProgress,
        )
        .unwrap();
        let bytes = fs::read(&bundle).unwrap();
        let mut content = crate::kit::snapshot(&src, false);
        content.retain(|_, v| v != "dir");
        Valid { parts: crate::kit::split(&bytes), bytes, content, _dir: dir }
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Flip bit `bit` of the byte at `at` (a fraction of the length, in 1/65536).
    Flip { at: u32, bit: u8 },
    /// Keep only the first part.
    Truncate { at: u32 },
    /// Replace `len` bytes at `at` with `insert`.
    Splice { at: u32, len: u16, insert: Vec<u8> },
    /// Copy `len` bytes from `from` to `to` (duplicates a region, maybe a member).
    Duplicate { from: u32, len: u16, to: u32 },
    /// Append bytes.
    Append { bytes: Vec<u8> },
}

/// Which layer a mutation is applied to.
#[derive(Debug, Clone, Copy)]
enum Layer {
    /// The bundle file as is.
    File,
    /// The decompressed head tar, recompressed.
    Head,
    /// The decompressed payload tar, recompressed.
    Payload,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let frac = any::<u32>().prop_map(|x| x % 65_536);
    prop_oneof![
        4 => (frac.clone(), any::<u8>()).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => frac.clone().prop_map(|at| Mutation::Truncate { at }),
        2 => (frac.clone(), 0u16..600, prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(at, len, insert)| Mutation::Splice { at, len, insert }),
        1 => (frac.clone(), 1u16..2048, frac).prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(|bytes| Mutation::Append { bytes }),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    let pos = |f: u32, len: usize| (f as usize * len) / 65_536;
    match m {
        Mutation::Flip { at, bit } => {
            if !data.is_empty() {
                let i = pos(*at, data.len());
                data[i] ^= 1 << (bit % 8);
            }
        }
        Mutation::Truncate { at } => data.truncate(pos(*at, data.len())),
        Mutation::Splice { at, len, insert } => {
            let i = pos(*at, data.len());
            let end = (i + *len as usize).min(data.len());
            data.splice(i..end, insert.iter().copied());
        }
        Mutation::Duplicate { from, len, to } => {
            let i = pos(*from, data.len());
            let end = (i + *len as usize).min(data.len());
            let chunk = data[i..end].to_vec();
            let j = pos(*to, data.len());
            data.splice(j..j, chunk);
        }
        Mutation::Append { bytes } => data.extend_from_slice(bytes),
    }
}

fn mutated(layer: Layer, mutations: &[Mutation]) -> Vec<u8> {
    let v = valid();
    match layer {
        Layer::File => {
            let mut bytes = v.bytes.clone();
            for m in mutations {
                apply(&mut bytes, m);
            }
            bytes
        }
        Layer::Head => {
            let mut tar = Vec::new();
            for (name, content) in &v.parts.head {
                tar.extend(airlock::format::tar::encode_header(name, content.len() as u64, 0o644));
                tar.extend_from_slice(content);
                tar.resize(tar.len().div_ceil(512) * 512, 0);
            }
            for m in mutations {
                apply(&mut tar, m);
            }
            let mut out = zstd::stream::encode_all(&tar[..], 3).unwrap();
            out.extend_from_slice(&v.parts.payload_frames);
            out
        }
        Layer::Payload => {
            let mut tar = v.parts.payload.clone();
            for m in mutations {
                apply(&mut tar, m);
            }
            let mut out = v.parts.head_frame.clone();
            out.extend(zstd::stream::encode_all(&tar[..], 3).unwrap());
            out
        }
    }
}

fn layer() -> impl Strategy<Value = Layer> {
    prop_oneof![2 => Just(Layer::File), 1 => Just(Layer::Head), 2 => Just(Layer::Payload)]
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn mutated_bundles_are_rejected_cleanly_or_exact(layer in layer(), mutations in prop::collection::vec(mutation(), 1..4)) {
        let bytes = mutated(layer, &mutations);
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("m.airlock");
        fs::write(&bundle, &bytes).unwrap();
        let verified = verify(&bundle);
        let (result, mirror) = import(&bundle, dir.path());
        match &result {
            Ok(_) => {
                prop_assert_eq!(&files_only(&mirror), &valid().content, "accepted with other content");
                prop_assert!(verified.is_ok(), "import accepted what verify rejected: {:?}", verified.err());
            }
            Err(e) => {
                prop_assert!(e.is_rejection(), "not a rejection: {e}");
                prop_assert!(mirror.is_empty(), "a rejected import left files: {mirror:?}");
                let staging = dir.path().join("mirror/.airlock/staging");
                prop_assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
                prop_assert!(!dir.path().join("mirror/.airlock/pending").exists());
                prop_assert!(verified.is_err(), "verify accepted what import rejected: {e}");
            }
        }
        // Nothing outside the mirror: the case directory holds only the bundle and it.
        let names: BTreeSet<String> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        prop_assert_eq!(names, BTreeSet::from(["m.airlock".to_string(), "mirror".to_string()]));
    }
}

/// The control for the mutation test: unmutated, every layer's reassembly imports.
#[test]
fn unmutated_layers_import() {
    for layer in [Layer::File, Layer::Head, Layer::Payload] {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("m.airlock");
        fs::write(&bundle, mutated(layer, &[])).unwrap();
        let (result, mirror) = import(&bundle, dir.path());
        assert!(result.is_ok(), "{layer:?}: {:?}", result.err());
        assert_eq!(files_only(&mirror), valid().content);
    }
}

/// Exhaustive truncation of the valid bundle at every offset (library path, no process
/// per case): every proper prefix is rejected.
#[test]
fn every_truncation_is_rejected() {
    let v = valid();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("t.airlock");
    let step = (v.bytes.len() / 400).max(1);
    for cut in (0..v.bytes.len()).step_by(step).chain(v.bytes.len().saturating_sub(64)..v.bytes.len()) {
        fs::write(&bundle, &v.bytes[..cut]).unwrap();
        let err = verify(&bundle).expect_err("a truncated bundle verified");
        assert!(err.is_rejection(), "cut {cut}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// 3. numeric fields over the whole u64 range

/// Any u64, with the boundaries that matter drawn often: 0 and 1, the last second RFC 3339
/// can show and the one after it, 2^40, the largest `i64` (where `SystemTime` ends), and
/// u64::MAX with its neighbour.
fn any_u64() -> impl Strategy<Value = u64> {
    let last = airlock::clock::LAST_RFC3339;
    prop_oneof![
        4 => any::<u64>(),
        1 => prop::sample::select(vec![
            0,
            1,
            last,
            last + 1,
            1 << 40,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX - 1,
            u64::MAX,
        ]),
        1 => 0u64..4_102_444_800, // 1970 to 2100
    ]
}

#[derive(Debug, Clone)]
struct Numbers {
    created: u64,
    expires: Option<u64>,
    sequence: u64,
    sizes: Vec<u64>,
    previous: Option<[u8; 32]>,
    now: u64,
    clock_floor: u64,
    skew: u64,
    last: Option<u64>,
    max_age: Option<u64>,
    allow_gap: bool,
}

fn numbers() -> impl Strategy<Value = Numbers> {
    (
        (any_u64(), prop::option::of(any_u64()), any_u64(), prop::collection::vec(any_u64(), 0..4)),
        prop::option::of(any::<[u8; 32]>()),
        (any_u64(), any_u64(), any_u64()),
        (prop::option::of(any_u64()), prop::option::of(any_u64()), any::<bool>()),
    )
        .prop_map(
            |((created, expires, sequence, sizes), previous, (now, clock_floor, skew), (last, max_age, allow_gap))| {
                Numbers {
                    created,
                    expires,
                    sequence,
                    sizes,
                    previous,
                    now,
                    clock_floor,
                    skew,
                    last,
                    max_age,
                    allow_gap,
                }
            },
        )
}

fn manifest_of(n: &Numbers) -> airlock::format::manifest::Manifest {
    use airlock::format::manifest::{BundleId, Entry, Manifest, Mode};
    use airlock::format::path::RelPath;
    use airlock::io::digest::Digest;
    Manifest {
        version: airlock::format::manifest::VERSION,
        base: None,
        bundle_id: BundleId([7; 16]),
        created: n.created,
        expires: n.expires,
        channel: "prop".into(),
        sequence: n.sequence,
        previous: n.previous.map(Digest),
        label: None,
        meta: BTreeMap::new(),
        entries: n
            .sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| Entry {
                path: RelPath::new(&format!("f{i}")).unwrap(),
                size,
                sha256: Digest([i as u8; 32]),
                mode: Mode::Regular,
                signatures: Vec::new(),
                carried: true,
            })
            .collect(),
        removed: Vec::new(),
    }
}

/// A printed time is RFC 3339 (and reads back as `t`) or `@` and `t`'s digits.
fn assert_time_text(text: &str, t: u64) {
    match text.strip_prefix('@') {
        Some(digits) => {
            assert!(t > airlock::clock::LAST_RFC3339, "{t} printed as {text}");
            assert_eq!(digits, t.to_string());
        }
        None => assert_eq!(airlock::clock::parse_time(text), Some(t), "{text}"),
    }
}

/// What `airlock inspect` prints of the numbers, through the same functions.
fn inspect_style(m: &airlock::format::manifest::Manifest) -> String {
    let created = airlock::clock::format(m.created);
    assert_time_text(&created, m.created);
    let expires = m.expires.map(airlock::clock::format);
    if let (Some(text), Some(t)) = (&expires, m.expires) {
        assert_time_text(text, t);
    }
    let json = serde_json::json!({
        "sequence": m.sequence,
        "previous": m.previous.map(|d| d.to_hex()),
        "created": created,
        "expires": expires,
        "total_size": m.total_size(),
        "entries": m.entries.iter().map(|e| serde_json::json!({"size": e.size})).collect::<Vec<_>>(),
    });
    json.to_string()
}

/// The policy: the proptest key for every channel, with `max_age` in seconds when given.
fn policy_with_max_age(max_age: Option<u64>) -> Option<Policy> {
    let Some(age) = max_age else {
        return Some(policy());
    };
    let public = key().public_key().to_file_string();
    let line = public.lines().nth(1).unwrap();
    let text = format!(
        "version = 1\nmax_age = \"{age}s\"\n[keys.k]\npublic_key = \"{line}\"\n[[channel]]\nname = \"*\"\nsigners = [\"k\"]\n"
    );
    // A duration humantime cannot hold is refused when the policy is read: no such policy.
    Policy::parse(&text, Path::new("."), "proptest policy").ok()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn numeric_fields_over_the_whole_u64_range_never_panic(n in numbers()) {
        use airlock::format::{head, manifest, sums};
        use airlock::io::digest::Digest;
        use airlock::verify::{GapPolicy, History};

        let m = manifest_of(&n);
        let Ok(bytes) = manifest::encode(&m) else {
            // Refused by a manifest rule (sequence 0, expires not after created): decoding
            // the same numbers must refuse them too, which the fuzz target covers.
            return Ok(());
        };
        let decoded = manifest::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &m);
        let _ = inspect_style(&decoded);

        let Some(policy) = policy_with_max_age(n.max_age) else { return Ok(()) };
        let sums_sig = airlock::keys::sign_embedded(key(), &sums::sums_text(&m), "proptest");
        let head = head::encode_head(1, &bytes, &[head::sign_manifest(key(), &bytes)], &sums_sig).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.airlock");
        fs::write(&path, head).unwrap();

        let bundle = Bundle::open(&path).unwrap();
        let _ = inspect_style(&bundle.unverified_manifest().unwrap());
        let mut options = VerifyOptions::new(&policy, n.now);
        options.clock_skew = n.skew;
        options.gaps = if n.allow_gap { GapPolicy::AcceptAndLog } else { GapPolicy::Refuse };
        options.history = History {
            last_import: n.last.map(|s| ("prop".to_owned(), (s, Digest([1; 32])))).into_iter().collect(),
            clock_floors: [("prop".to_owned(), n.clock_floor)].into_iter().collect(),
            ..History::default()
        };
        match bundle.verify(&options) {
            Ok(verified) => {
                let _ = inspect_style(verified.manifest());
                let _ = verified.overrides().join("; ");
            }
            Err(e) => {
                prop_assert!(e.is_rejection(), "not a rejection: {}", e);
                let _ = e.to_string();
            }
        }
    }
}
