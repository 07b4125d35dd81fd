//! Test vectors for other implementations of docs/FORMAT.md (tests/vectors/, described in
//! tests/vectors/README.md): whole bundles with the key to trust, an optional history of
//! earlier imports, and the outcome an importer must reach.
//!
//! [`vectors_import_as_expected`] imports each vector into a fresh mirror with the airlock
//! binary at the vector's fixed time and compares the exit code, the rejection message and
//! its reason kind, and the mirror tree with the `expect` file.
//!
//! [`regenerating_reproduces_the_committed_vectors`] rebuilds every vector with the kit in
//! a temporary directory and requires the result to equal tests/vectors/ byte for byte, so
//! the committed vectors always match their generator. To rewrite them on purpose:
//!
//! ```text
//! AIRLOCK_WRITE_VECTORS=1 cargo test --test it vectors::regenerating
//! ```
//!
//! The generator declares what each vector is meant to show (accepted, or rejected for a
//! given reason kind), checks that airlock agrees, and only then writes the `expect` file
//! from what airlock did. Review the diff of the `expect` files before committing: a changed
//! message or tree is a behaviour change.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::kit::*;

/// "Now" for every vector: 2026-01-01T00:00:00Z. Bundles are created an hour before.
const NOW: u64 = 1_767_225_600;
const CREATED: u64 = NOW - 3600;

/// Everything under tests/vectors/ together stays below this (the bundles are small on
/// purpose: a vector shows one property, not a workload).
const SIZE_BUDGET: u64 = 2 * 1024 * 1024;

/// The committed test keys' file-name prefix: these keys sign nothing but test vectors.
const TEST_KEY_PREFIX: &str = "TEST-ONLY-INSECURE-";

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

// ---------------------------------------------------------------------------------------
// the reason kind

/// The reason kind of a rejection message: a stable, implementation-neutral name for why
/// a bundle was rejected, one per variant of `airlock::error::Reject`.
///
/// Derived from the message text until the library exposes `Reject::kind()`; then this
/// table goes and the kind comes from the library (see tests/vectors/README.md).
fn reason_kind(message: &str) -> &'static str {
    const TABLE: &[(&str, &str)] = &[
        ("signature by trusted key ", "bad_signature"),
        ("distinct trusted key(s), found", "untrusted"),
        (": SHA-256 is ", "hash_mismatch"),
        (": bundle is truncated", "truncated"),
        ("bundle expired at ", "expired"),
        ("is not newer than the last imported sequence", "rollback"),
        (": missing sequence ", "gap"),
        ("follows manifest ", "previous_mismatch"),
        ("older than the policy's max_age", "too_old"),
        ("exceeds the limit of", "limit"),
        ("entries the bundle does not carry are not in this mirror", "missing_base"),
        ("the bundle is a delta built for mirror", "base_mismatch"),
    ];
    if let Some((_, kind)) = TABLE.iter().find(|(pattern, _)| message.contains(pattern)) {
        return kind;
    }
    if message.starts_with("manifest: ") {
        "manifest"
    } else if message.starts_with("entry \"")
        && (message.contains(": path ") || message.contains(": a path component "))
    {
        "unsafe_path"
    } else if message.starts_with("entry \"") {
        "conflict"
    } else if message.starts_with("artifact \"") {
        "artifact"
    } else {
        "malformed"
    }
}

// ---------------------------------------------------------------------------------------
// the expect file

/// What an import of a vector must do.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Exit 0, and the mirror holds exactly these files: path -> (mode, SHA-256 hex).
    Accepted(BTreeMap<String, (u32, String)>),
    /// Exit 1, the mirror unchanged.
    Rejected { kind: String, message: String },
}

/// A parsed `expect` file.
struct Expect {
    about: String,
    now: u64,
    outcome: Outcome,
}

impl Expect {
    fn render(&self) -> String {
        let mut out = format!("about: {}\nnow: {}\n", self.about, self.now);
        match &self.outcome {
            Outcome::Accepted(files) => {
                out.push_str("expect: accepted\n");
                for (path, (mode, sha256)) in files {
                    out.push_str(&format!("file: {mode:04o} {sha256} {path}\n"));
                }
            }
            Outcome::Rejected { kind, message } => {
                out.push_str(&format!("expect: rejected: {kind}\nmessage: {message}\n"));
            }
        }
        out
    }

    fn parse(text: &str) -> Expect {
        let mut about = None;
        let mut now = None;
        let mut expect = None;
        let mut message = None;
        let mut files = BTreeMap::new();
        for line in text.lines() {
            let (key, value) = line.split_once(": ").unwrap_or_else(|| panic!("not `key: value`: {line:?}"));
            match key {
                "about" => about = Some(value.to_owned()),
                "now" => now = Some(value.parse().expect("now: Unix seconds")),
                "expect" => expect = Some(value.to_owned()),
                "message" => message = Some(value.to_owned()),
                "file" => {
                    let mut fields = value.splitn(3, ' ');
                    let mode = u32::from_str_radix(fields.next().unwrap(), 8).expect("file mode in octal");
                    let sha256 = fields.next().expect("file sha256").to_owned();
                    let path = fields.next().expect("file path").to_owned();
                    files.insert(path, (mode, sha256));
                }
                _ => panic!("unknown key {key:?}"),
            }
        }
        let expect = expect.expect("an `expect:` line");
        let outcome = match expect.strip_prefix("rejected: ") {
            Some(kind) => Outcome::Rejected { kind: kind.to_owned(), message: message.expect("a `message:` line") },
            None => {
                assert_eq!(expect, "accepted", "expect is `accepted` or `rejected: <kind>`");
                Outcome::Accepted(files)
            }
        };
        Expect { about: about.expect("an `about:` line"), now: now.expect("a `now:` line"), outcome }
    }
}

// ---------------------------------------------------------------------------------------
// importing a vector

/// Imports `dir/mirror-before/*.airlock` (in name order, each must be accepted), then
/// `dir/bundle.airlock`, into a fresh mirror, trusting `dir/trusted.pub`, at time `now`;
/// returns what happened. A rejection must leave the mirror's files as they were.
fn import_vector(dir: &Path, now: u64) -> Outcome {
    let work = tempfile::tempdir().unwrap();
    let mirror = work.path().join("mirror");
    let import = |bundle: &Path| {
        run(airlock()
            .arg("import")
            .arg(bundle)
            .arg("--trust")
            .arg(dir.join("trusted.pub"))
            .arg("--mirror")
            .arg(&mirror)
            .arg("--quiet")
            .arg("--init")
            .env("AIRLOCK_NOW", now.to_string()))
    };
    for prior in prior_bundles(dir) {
        import(&prior).expect_code(0);
    }
    let before = snapshot(&mirror, true);
    let out = import(&dir.join("bundle.airlock"));
    match out.code {
        0 => Outcome::Accepted(mirror_files(&mirror)),
        1 => {
            assert_eq!(snapshot(&mirror, true), before, "{}: a rejected import changed the mirror", dir.display());
            let message = out
                .stderr
                .lines()
                .find_map(|l| l.split_once("bundle rejected: ").map(|(_, m)| m.to_owned()))
                .unwrap_or_else(|| panic!("{}: exit 1 without `bundle rejected:`\n{}", dir.display(), out.stderr));
            // The importer's mirror id is random: messages name it as `<mirror id>`.
            let message = match fs::read_to_string(mirror.join(".airlock/id")) {
                Ok(id) if !id.trim().is_empty() => message.replace(id.trim(), "<mirror id>"),
                _ => message,
            };
            Outcome::Rejected { kind: reason_kind(&message).to_owned(), message }
        }
        _ => panic!("{}: exit {}\n{}", dir.display(), out.code, out.stderr),
    }
}

fn prior_bundles(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir.join("mirror-before")) else { return Vec::new() };
    let mut bundles: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    bundles.sort();
    bundles
}

/// The mirror's regular files outside `.airlock/`; anything else in it fails the test.
fn mirror_files(mirror: &Path) -> BTreeMap<String, (u32, String)> {
    let mut files = BTreeMap::new();
    for (path, desc) in snapshot(mirror, true) {
        let fields: Vec<&str> = desc.split(' ').collect();
        match fields[..] {
            ["dir"] => {}
            ["file", mode, sha256] => {
                files.insert(path, (u32::from_str_radix(mode, 8).unwrap(), sha256.to_owned()));
            }
            _ => panic!("{path}: not a file or directory in the mirror: {desc}"),
        }
    }
    files
}

/// The current version's vectors (regenerated and compared on every run).
fn case_dirs() -> Vec<PathBuf> {
    cases_in(&vectors_dir())
}

/// The format-version-1 vectors under tests/vectors/v1/: bundles an earlier airlock wrote,
/// frozen (not regenerated), which must keep importing exactly as their `expect` says.
fn v1_case_dirs() -> Vec<PathBuf> {
    cases_in(&vectors_dir().join("v1"))
}

/// The format-version-2 vectors under tests/vectors/v2/, frozen likewise.
fn v2_case_dirs() -> Vec<PathBuf> {
    cases_in(&vectors_dir().join("v2"))
}

fn cases_in(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("expect").is_file()).collect();
    dirs.sort();
    dirs
}

// ---------------------------------------------------------------------------------------
// the checks

/// Every vector, of this version and of versions 1 and 2, imports as its `expect` file says.
#[test]
fn vectors_import_as_expected() {
    let (current, v1, v2) = (case_dirs(), v1_case_dirs(), v2_case_dirs());
    assert!(current.len() >= 10, "expected the committed vectors under {}", vectors_dir().display());
    assert!(v1.len() >= 10, "expected the version-1 vectors under {}/v1", vectors_dir().display());
    assert!(v2.len() >= 10, "expected the version-2 vectors under {}/v2", vectors_dir().display());
    for dir in current.into_iter().chain(v1).chain(v2) {
        let expect = Expect::parse(&fs::read_to_string(dir.join("expect")).unwrap());
        if let Outcome::Rejected { kind, message } = &expect.outcome {
            assert_eq!(reason_kind(message), kind, "{}: the message is not of its kind", dir.display());
        }
        assert_eq!(import_vector(&dir, expect.now), expect.outcome, "{}: {}", dir.display(), expect.about);
    }
}

/// The vectors stay small, and every file in them is one the README describes.
#[test]
fn vectors_are_small_and_well_formed() {
    let mut total = 0;
    for e in walkdir::WalkDir::new(vectors_dir()).min_depth(1) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(vectors_dir()).unwrap().to_string_lossy().into_owned();
        if e.file_type().is_dir() {
            continue;
        }
        total += e.metadata().unwrap().len();
        let name = e.file_name().to_string_lossy();
        let known = rel == "README.md"
            || rel.starts_with("keys/") && name.starts_with(TEST_KEY_PREFIX)
            || ["bundle.airlock", "trusted.pub", "expect"].contains(&&*name)
            || rel.contains("/mirror-before/") && name.ends_with(".airlock");
        assert!(known, "unexpected file tests/vectors/{rel}");
    }
    assert!(total < SIZE_BUDGET, "tests/vectors/ holds {total} bytes, over the budget of {SIZE_BUDGET}");
}

// ---------------------------------------------------------------------------------------
// regeneration

/// One vector, as the generator builds it.
struct Vector {
    name: &'static str,
    about: &'static str,
    /// Which workbench's public key the importer trusts.
    trusted: Key,
    /// Bundles imported first, in order.
    prior: Vec<Vec<u8>>,
    bundle: Vec<u8>,
    /// `None`: accepted; `Some(kind)`: rejected for that reason kind.
    rejected: Option<&'static str>,
}

/// Whose committed test key signs a bundle, or is trusted.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    /// The key every vector trusts.
    Signer,
    /// A key no vector trusts.
    Stranger,
}

/// Rebuilds tests/vectors/ (keeping the committed test keys, making them if missing).
#[test]
fn regenerating_reproduces_the_committed_vectors() {
    if std::env::var_os("AIRLOCK_WRITE_VECTORS").is_some() {
        for dir in case_dirs() {
            fs::remove_dir_all(dir).unwrap();
        }
        write_vectors(&vectors_dir());
        return;
    }
    let fresh = tempfile::tempdir().unwrap();
    write_vectors(fresh.path());
    let committed: Vec<PathBuf> = case_dirs();
    let names = |dirs: &[PathBuf]| dirs.iter().map(|d| d.file_name().unwrap().to_owned()).collect::<Vec<_>>();
    let mut regenerated: Vec<PathBuf> = fs::read_dir(fresh.path()).unwrap().map(|e| e.unwrap().path()).collect();
    regenerated.sort();
    assert_eq!(names(&regenerated), names(&committed), "the generator makes other vectors than tests/vectors/ holds");
    for (new, old) in regenerated.iter().zip(&committed) {
        assert_eq!(
            crate::kit::snapshot(new, true),
            crate::kit::snapshot(old, true),
            "{}: regenerated bytes differ from the committed vector (rewrite with AIRLOCK_WRITE_VECTORS=1 and review)",
            old.display()
        );
    }
}

/// Builds every vector into `root` (one directory each), signed with the committed test
/// keys in tests/vectors/keys/.
fn write_vectors(root: &Path) {
    let gen = Generator::new(&vectors_dir().join("keys"));
    for v in gen.vectors() {
        let dir = root.join(v.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("bundle.airlock"), &v.bundle).unwrap();
        fs::copy(gen.bench(v.trusted).join("k.pub"), dir.join("trusted.pub")).unwrap();
        for (i, prior) in v.prior.iter().enumerate() {
            fs::create_dir_all(dir.join("mirror-before")).unwrap();
            fs::write(dir.join(format!("mirror-before/{:02}.airlock", i + 1)), prior).unwrap();
        }
        let outcome = import_vector(&dir, NOW);
        match (&outcome, v.rejected) {
            (Outcome::Accepted(_), None) => {}
            (Outcome::Rejected { kind, .. }, Some(want)) if kind == want => {}
            _ => panic!("{}: meant to be {:?}, airlock did {outcome:?}", v.name, v.rejected.unwrap_or("accepted")),
        }
        let expect = Expect { about: v.about.to_owned(), now: NOW, outcome };
        fs::write(dir.join("expect"), expect.render()).unwrap();
    }
}

/// Packs and forges the vectors' bundles in two temp workbenches, each holding one
/// committed test key as `k.sec`/`k.pub` (where the kit's `pack_command` looks).
struct Generator {
    signer: tempfile::TempDir,
    stranger: tempfile::TempDir,
    /// Bundles packed so far: numbers the pinned bundle ids.
    packed: Cell<u32>,
    /// Per channel state: the SHA-256 of the last pinned manifest (the next `previous`).
    last_manifest: RefCell<BTreeMap<String, serde_bytes::ByteBuf>>,
}

impl Generator {
    fn new(keys: &Path) -> Generator {
        let bench = |name: &str| {
            let dir = tempfile::tempdir().unwrap();
            let stem = format!("{TEST_KEY_PREFIX}{name}");
            if !keys.join(format!("{stem}.sec")).exists() {
                keygen(keys, &stem);
            }
            fs::copy(keys.join(format!("{stem}.pub")), dir.path().join("k.pub")).unwrap();
            fs::copy(keys.join(format!("{stem}.sec")), dir.path().join("k.sec")).unwrap();
            // git checks files out 0644; airlock refuses a secret key others can read.
            chmod(&dir.path().join("k.sec"), 0o600);
            dir
        };
        Generator {
            signer: bench("signer"),
            stranger: bench("stranger"),
            packed: Cell::new(0),
            last_manifest: RefCell::new(BTreeMap::new()),
        }
    }

    /// The workbench holding `key` as `k.sec`/`k.pub`.
    fn bench(&self, key: Key) -> &Path {
        match key {
            Key::Signer => self.signer.path(),
            Key::Stranger => self.stranger.path(),
        }
    }

    /// Packs `files` on `bench` at `created`, continuing the channel state `state`.
    fn pack(&self, key: Key, state: &str, files: &[(&str, &[u8], u32)], created: u64, extra: &[&str]) -> Vec<u8> {
        let root = self.bench(key);
        let src = tempfile::tempdir_in(root).unwrap();
        for (path, content, mode) in files {
            write(src.path(), path, content, *mode);
        }
        let out = "out.airlock";
        run(pack_command(root, src.path(), out, &[&["--force"], extra].concat())
            .env("AIRLOCK_STATE_DIR", root.join(state))
            .env("AIRLOCK_NOW", created.to_string()))
        .expect_code(0);
        self.pin(key, state, &fs::read(root.join(out)).unwrap())
    }

    /// Replaces a packed bundle's random `bundle_id` with a numbered one (and its
    /// `previous` with the pinned predecessor's digest) and signs it again as pack does,
    /// so that regenerating the vectors reproduces them byte for byte.
    fn pin(&self, key: Key, state: &str, packed: &[u8]) -> Vec<u8> {
        let parts = split(packed);
        let mut wire = Wire::decode(&parts.head[0].1);
        let n = self.packed.replace(self.packed.get() + 1);
        wire.bundle_id = serde_bytes::ByteBuf::from(&sha256(format!("airlock test vector {n}").as_bytes())[..16]);
        if wire.previous.is_some() {
            wire.previous = Some(self.last_manifest.borrow()[state].clone());
        }
        let manifest = wire.encode();
        self.last_manifest.borrow_mut().insert(state.to_owned(), sha256(&manifest));
        let signer = load_secret(&self.bench(key).join("k.sec"));
        let comment = format!("verify with airlock key {}", signer.key_id());
        let bundle = assemble(&signed_head_with_comment(&manifest, &wire.sums(), &[&signer], &comment), &parts.payload);
        // Laid out as pack lays out a version-3 bundle: the head frame, one padding frame
        // (of a fixed length, so the vectors reproduce), the payload frame.
        let head_len = split(&bundle).head_frame.len();
        let padding = airlock::format::head::encode_padding(264).unwrap();
        [&bundle[..head_len], &padding[..], &bundle[head_len..]].concat()
    }

    /// A signify signature of `content` by the signer's key, as a producer would write it.
    fn producer_signature(&self, content: &[u8]) -> Vec<u8> {
        let key = load_secret(&self.signer.path().join("k.sec"));
        key.sign(content, "test vector producer signature").to_file_string().into_bytes()
    }

    fn vectors(&self) -> Vec<Vector> {
        let tool = big_content(3000);
        let tool_sig = self.producer_signature(&tool);
        let round_trip: &[(&str, &[u8], u32)] = &[
            ("README.txt", b"airlock test vector\n", 0o644),
            ("bin/run", b"#!/bin/sh\necho hello\n", 0o755),
            ("empty", b"", 0o644),
            ("\u{fc}n\u{ef}c\u{f6}d\u{e9}/\u{540d}\u{524d}.txt", "non-ASCII path, NFC\n".as_bytes(), 0o644),
            ("pkg/tool.tar.gz", &tool, 0o644),
            ("pkg/tool.tar.gz.sig", &tool_sig, 0o644),
        ];
        let first = self.pack(Key::Signer, "state-history", BASE, CREATED - 3600, &[]);
        let second = self.pack(Key::Signer, "state-history", NEXT, CREATED, &[]);
        let good = self.pack(Key::Signer, "state-single", BASE, CREATED, &[]);
        let parts = split(&good);
        let lifecycle = self.lifecycle_vectors(&first, &second);

        let mut v = vec![
            Vector {
                name: "accepted-round-trip",
                about: "a valid bundle: a non-ASCII path, an executable, an empty file, an artifact with a linked .sig",
                trusted: Key::Signer,
                prior: vec![],
                bundle: self.pack(Key::Signer, "state-round-trip", round_trip, CREATED, &[]),
                rejected: None,
            },
            Vector {
                name: "accepted-next-in-sequence",
                about: "sequence 2 of a channel after sequence 1: a changed file, a new one, the rest kept",
                trusted: Key::Signer,
                prior: vec![first.clone()],
                bundle: second.clone(),
                rejected: None,
            },
            Vector {
                name: "rejected-bad-signature",
                about: "one byte of the manifest flipped: the trusted key's signature no longer verifies",
                trusted: Key::Signer,
                prior: vec![],
                bundle: {
                    let mut head = parts.head.clone();
                    let last = head[0].1.len() - 1;
                    head[0].1[last] ^= 0x01;
                    assemble(&head, &parts.payload)
                },
                rejected: Some("bad_signature"),
            },
            Vector {
                name: "rejected-untrusted-signer",
                about: "a valid bundle signed only by a key the importer does not trust",
                trusted: Key::Signer,
                prior: vec![],
                bundle: self.pack(Key::Stranger, "state-stranger", BASE, CREATED, &[]),
                rejected: Some("untrusted"),
            },
            Vector {
                name: "rejected-hash-mismatch",
                about: "one byte of a payload member's content flipped: its SHA-256 differs from the signed manifest",
                trusted: Key::Signer,
                prior: vec![],
                bundle: {
                    let (_, data, _, _) = span(&parts.payload, "data/xx/cd.txt");
                    let mut payload = parts.payload.clone();
                    payload[data + 3] ^= 0x01;
                    assemble(&parts.head, &payload)
                },
                rejected: Some("hash_mismatch"),
            },
            Vector {
                name: "rejected-truncated",
                about: "the bundle cut right after the head frame: the payload frame is missing",
                trusted: Key::Signer,
                prior: vec![],
                bundle: parts.head_frame.clone(),
                rejected: Some("truncated"),
            },
            Vector {
                name: "rejected-expired",
                about: "created two hours before `now` with a one-hour expiry",
                trusted: Key::Signer,
                prior: vec![],
                bundle: self.pack(Key::Signer, "state-expired", BASE, NOW - 7200, &["--expires", "1h"]),
                rejected: Some("expired"),
            },
            Vector {
                name: "rejected-rollback",
                about: "a validly signed sequence 1, never imported, after the mirror imported sequences 1 and 2",
                trusted: Key::Signer,
                prior: vec![first.clone(), second.clone()],
                bundle: self.pack(Key::Signer, "state-history", BASE, CREATED, &["--sequence", "1"]),
                rejected: Some("rollback"),
            },
            Vector {
                name: "rejected-gap",
                about: "sequence 3 after the mirror imported only sequence 1",
                trusted: Key::Signer,
                prior: vec![first.clone()],
                bundle: self.pack(Key::Signer, "state-history", NEXT, CREATED, &["--sequence", "3"]),
                rejected: Some("gap"),
            },
            Vector {
                name: "rejected-previous-mismatch",
                about: "sequence 2 packed elsewhere: its `previous` does not name the mirror's sequence 1",
                trusted: Key::Signer,
                prior: vec![first],
                bundle: self.pack(Key::Signer, "state-fork", NEXT, CREATED, &["--sequence", "2"]),
                rejected: Some("previous_mismatch"),
            },
            Vector {
                name: "rejected-unsafe-path",
                about: "an entry path rewritten to `../cd.txt` and the manifest validly signed again",
                trusted: Key::Signer,
                prior: vec![],
                bundle: {
                    let mut head = parts.head.clone();
                    let manifest = &mut head[0].1;
                    let at = manifest.windows(9).position(|w| w == b"xx/cd.txt").unwrap();
                    manifest[at..at + 9].copy_from_slice(b"../cd.txt");
                    resign(&mut head, &self.signer.path().join("k.sec"));
                    assemble(&head, &parts.payload)
                },
                rejected: Some("unsafe_path"),
            },
            Vector {
                name: "rejected-non-canonical-manifest",
                about: "the manifest's `sequence` 1 written as a two-byte integer (0x18 0x01), validly signed",
                trusted: Key::Signer,
                prior: vec![],
                bundle: {
                    let manifest = &parts.head[0].1;
                    let key = serde_cbor::to_vec(&"sequence").unwrap();
                    let at = manifest.windows(key.len()).position(|w| w == key).unwrap() + key.len();
                    assert_eq!(manifest[at], 0x01, "sequence 1 as a one-byte integer");
                    let mut bytes = manifest[..at].to_vec();
                    bytes.extend([0x18, 0x01]);
                    bytes.extend(&manifest[at + 1..]);
                    let wire = Wire::decode(manifest);
                    let signer = load_secret(&self.signer.path().join("k.sec"));
                    assemble(&signed_head(&bytes, &wire.sums(), &[&signer]), &parts.payload)
                },
                rejected: Some("manifest"),
            },
            Vector {
                name: "rejected-symlink-member",
                about: "the payload member data/a.txt replaced by a symbolic link to /etc/passwd",
                trusted: Key::Signer,
                prior: vec![],
                bundle: {
                    let (start, .., end) = span(&parts.payload, "data/a.txt");
                    let mut payload = parts.payload[..start].to_vec();
                    payload.extend(raw_header(b"data/a.txt", 0, 0o644, b'2', b"/etc/passwd"));
                    payload.extend_from_slice(&parts.payload[end..]);
                    assemble(&parts.head, &payload)
                },
                rejected: Some("malformed"),
            },
            Vector {
                name: "rejected-extra-member",
                about: "an executable member data/evil.sh, not in the manifest, before the end-of-archive marker",
                trusted: Key::Signer,
                prior: vec![],
                bundle: {
                    let end = parts.payload.len() - 1024;
                    let mut payload = parts.payload[..end].to_vec();
                    payload.extend(member("data/evil.sh", b"echo smuggled\n", 0o755));
                    payload.extend([0u8; 1024]);
                    assemble(&parts.head, &payload)
                },
                rejected: Some("malformed"),
            },
            Vector {
                name: "rejected-trailing-data",
                about: "a valid zstd frame holding a shell script appended after the last frame",
                trusted: Key::Signer,
                prior: vec![],
                bundle: [good.clone(), zstd(b"#!/bin/sh\necho smuggled\n")].concat(),
                rejected: Some("malformed"),
            },
        ];
        v.extend(lifecycle);
        v.sort_by_key(|v| v.name);
        v
    }

    /// The version-2 lifecycle: deltas (what they omit must be in the mirror, and they are
    /// bound to one mirror) and retirement.
    fn lifecycle_vectors(&self, first: &[u8], second: &[u8]) -> Vec<Vector> {
        let retire_first = self.pack(Key::Signer, "state-retire", BASE, CREATED - 3600, &[]);
        let retired: Vec<_> = NEXT.iter().filter(|(p, _, _)| *p != "xx/cd.txt").copied().collect();
        let retire_second = self.pack(Key::Signer, "state-retire", &retired, CREATED, &[]);
        vec![
            Vector {
                name: "accepted-delta",
                about: "sequence 2 as a delta: the unchanged `bin/run` and `xx/cd.txt` are listed but not carried; the mirror holds them",
                trusted: Key::Signer,
                prior: vec![first.to_vec()],
                bundle: self.delta_of(second, &["bin/run", "xx/cd.txt"], None),
                rejected: None,
            },
            Vector {
                name: "accepted-retirement",
                about: "sequence 2's complete state no longer lists `xx/cd.txt`: the import retires it",
                trusted: Key::Signer,
                prior: vec![retire_first],
                bundle: retire_second,
                rejected: None,
            },
            Vector {
                name: "rejected-delta-missing-base",
                about: "a delta that omits `new/b.txt`, which the mirror does not hold",
                trusted: Key::Signer,
                prior: vec![first.to_vec()],
                bundle: self.delta_of(second, &["bin/run", "new/b.txt"], None),
                rejected: Some("missing_base"),
            },
            Vector {
                name: "rejected-delta-for-another-mirror",
                about: "a delta whose `base` names another mirror (id 11…11) than the importer's",
                trusted: Key::Signer,
                prior: vec![first.to_vec()],
                bundle: self.delta_of(second, &["bin/run", "xx/cd.txt"], Some([0x11; 16])),
                rejected: Some("base_mismatch"),
            },
        ]
    }

    /// `full` rewritten as a delta: the entries at `omit` are listed but not carried (and
    /// their members left out of the payload), `base` names `mirror` (or is null), and the
    /// manifest is signed again by the signer.
    fn delta_of(&self, full: &[u8], omit: &[&str], mirror: Option<[u8; 16]>) -> Vec<u8> {
        let parts = split(full);
        let mut wire = Wire::decode(&parts.head[0].1);
        let mut bits = vec![0u8; wire.entries.len().div_ceil(8)];
        for (i, e) in wire.entries.iter().enumerate() {
            if !omit.contains(&e.path.as_str()) {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        wire.carried = Some(serde_bytes::ByteBuf::from(bits));
        wire.base = mirror.map(|m| WireBase {
            mirror: serde_bytes::ByteBuf::from(m.to_vec()),
            manifest: sha256(&split(full).head[0].1),
        });
        let kept: Vec<Vec<u8>> = payload_members(&parts.payload)
            .into_iter()
            .filter(|(_, name, _, _)| !omit.iter().any(|p| *name == format!("data/{p}")))
            .map(|(header, _, data, size)| parts.payload[header..data + size.div_ceil(512) * 512].to_vec())
            .collect();
        let manifest = wire.encode();
        let signer = load_secret(&self.signer.path().join("k.sec"));
        let comment = format!("verify with airlock key {}", signer.key_id());
        assemble(&signed_head_with_comment(&manifest, &wire.sums(), &[&signer], &comment), &payload_of(&kept))
    }
}

/// The tree of sequence 1 (and of the single-bundle vectors).
const BASE: &[(&str, &[u8], u32)] = &[
    ("a.txt", b"alpha\n", 0o644),
    ("bin/run", b"#!/bin/sh\necho one\n", 0o755),
    ("xx/cd.txt", b"charlie delta\n", 0o644),
];

/// The tree of sequence 2: `a.txt` changed, `new/b.txt` added.
const NEXT: &[(&str, &[u8], u32)] = &[
    ("a.txt", b"alpha two\n", 0o644),
    ("bin/run", b"#!/bin/sh\necho one\n", 0o755),
    ("new/b.txt", b"bravo\n", 0o644),
    ("xx/cd.txt", b"charlie delta\n", 0o644),
];
