//! The stable-Rust fuzz runner: the cargo-fuzz targets' bodies (fuzz/targets.rs, the same
//! code libFuzzer runs) fed with seeds and random mutations of them, for a bounded number
//! of iterations (seconds in `cargo test`), or longer on demand:
//!
//! ```sh
//! AIRLOCK_FUZZ_SECONDS=600 cargo test --release --test it fuzz_targets:: -- --nocapture
//! AIRLOCK_FUZZ_SECONDS=600 AIRLOCK_FUZZ_SEED=7 cargo test --release --test it fuzz_targets::bundle_parts -- --nocapture
//! ```
//!
//! Mutations are libFuzzer-like (bit flips, byte sets, interesting values, inserts, deletes,
//! duplicated ranges, truncations, cross-overs between seeds), chained 1-8 deep, from a
//! deterministic xorshift generator (`AIRLOCK_FUZZ_SEED`, default fixed), without coverage
//! feedback: cargo-fuzz is the long-run, coverage-guided tool (docs/FUZZING.md). Every file
//! in fuzz/artifacts/<target>/ (and, with `AIRLOCK_FUZZ_REPLAY_CORPUS=1`, fuzz/corpus/<target>/)
//! is replayed first, so a crash found by cargo-fuzz and committed there stays a regression
//! test. A failing input is written to
//! target/fuzz-failures/<target>-<n>.bin and reported in hex.

use crate::targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    const INTERESTING: &[u8] =
        &[0, 1, 0x7f, 0x80, 0xff, b'0', b'/', b'.', b'\n', b' ', 0x18, 0x19, 0x1a, 0x1b, 0x9f, 0xbf];
    let len = input.len();
    match rng.below(10) {
        0 | 1 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        2 if len > 0 => {
            let i = rng.below(len);
            input[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        3 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next() as u8;
        }
        4 => {
            let i = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(i..i, bytes);
        }
        5 if len > 0 => {
            let i = rng.below(len);
            let end = (i + 1 + rng.below(64)).min(len);
            input.drain(i..end);
        }
        6 if len > 0 => {
            let i = rng.below(len);
            let end = (i + 1 + rng.below(512)).min(len);
            let chunk = input[i..end].to_vec();
            let j = rng.below(len + 1);
            input.splice(j..j, chunk);
        }
        7 => input.truncate(rng.below(len + 1)),
        8 if !seeds.is_empty() => {
            let other = &seeds[rng.below(seeds.len())];
            if !other.is_empty() {
                let i = rng.below(other.len());
                let end = (i + 1 + rng.below(1024)).min(other.len());
                let at = rng.below(len + 1);
                let cut = (at + rng.below(1024)).min(len);
                input.splice(at..cut, other[i..end].iter().copied());
            }
        }
        _ if len > 0 => {
            // A 32-bit little- or big-endian field set to an interesting number (sizes,
            // lengths, counts).
            let i = rng.below(len);
            let v: u32 = [0, 1, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000, 512, 4096, 1 << 20][rng.below(8)];
            let bytes = if rng.below(2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
            for (k, b) in bytes.iter().enumerate() {
                if i + k < len {
                    input[i + k] = *b;
                }
            }
        }
        _ => input.push(rng.next() as u8),
    }
}

fn failures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures")
}

fn run_one(name: &str, f: fn(&[u8]), input: &[u8], n: u64) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(input))) {
        let dir = failures_dir();
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{name}-{n}.bin"));
        let _ = std::fs::write(&file, input);
        let msg =
            panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        let hex: String = input.iter().take(4096).map(|b| format!("{b:02x}")).collect();
        panic!(
            "fuzz target {name} failed on input {n} (saved to {}): {msg:?}\ninput ({} bytes): {hex}",
            file.display(),
            input.len()
        );
    }
}

/// Files under fuzz/artifacts/<target>/ (crashes found by cargo-fuzz, committed as
/// regressions), and with `AIRLOCK_FUZZ_REPLAY_CORPUS=1` also fuzz/corpus/<target>/ (a
/// local cargo-fuzz corpus can hold thousands of inputs, too many for every `cargo test`).
fn committed_inputs(name: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    let mut dirs = vec!["artifacts"];
    if std::env::var_os("AIRLOCK_FUZZ_REPLAY_CORPUS").is_some() {
        dirs.push("corpus");
    }
    for sub in dirs {
        if let Ok(dir) = std::fs::read_dir(root.join(sub).join(name)) {
            for e in dir.flatten() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    out.push(bytes);
                }
            }
        }
    }
    out
}

fn fuzz(name: &str, default_iters: u64) {
    let f = targets::TARGETS.iter().find(|(n, _)| *n == name).unwrap().1;
    let seconds: Option<u64> = std::env::var("AIRLOCK_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok());
    let iters: u64 = std::env::var("AIRLOCK_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(default_iters);
    let seed: u64 =
        std::env::var("AIRLOCK_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x2545_f491_4f6c_dd1d);
    let mut rng = Rng(seed ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)) | 1);
    let mut seeds = targets::seeds(name);
    seeds.extend(committed_inputs(name));
    for (i, s) in seeds.iter().enumerate() {
        run_one(name, f, s, i as u64);
    }
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let started = Instant::now();
    let mut n = 0u64;
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if n >= iters => break,
            _ => {}
        }
        let mut input = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(8) {
            mutate(&mut rng, &mut input, &seeds);
        }
        run_one(name, f, &input, n);
        n += 1;
    }
    eprintln!("fuzz {name}: {n} mutated inputs in {:.1?}, no failure", started.elapsed());
}

#[test]
fn manifest() {
    fuzz("manifest", 20_000);
}

#[test]
fn signify() {
    fuzz("signify", 20_000);
}

#[test]
fn bundle() {
    fuzz("bundle", 150);
}

#[test]
fn bundle_parts() {
    fuzz("bundle_parts", 200);
}

#[test]
fn mirror_log() {
    fuzz("mirror_log", 1_500);
}

#[test]
fn inspect() {
    fuzz("inspect", 20_000);
}

#[test]
fn receipt() {
    fuzz("receipt", 20_000);
}

#[test]
fn volume_table() {
    fuzz("volume_table", 5_000);
}

/// Every target has seed inputs (the runs above start from them). With
/// `AIRLOCK_WRITE_SEED_CORPUS=1` the seeds are also written as cargo-fuzz
/// corpus files under `fuzz/corpus/<target>/` (see docs/FUZZING.md).
#[test]
fn seed_corpus() {
    let write = std::env::var_os("AIRLOCK_WRITE_SEED_CORPUS").is_some();
    for (name, _) in targets::TARGETS {
        let seeds = targets::seeds(name);
        assert!(!seeds.is_empty(), "target {name} has no seed inputs");
        if !write {
            continue;
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
    }
}
