//! airlock's integration tests, in one binary (one link instead of one per file).
//!
//! - [`kit`]: the one harness (keys, packing, bundle surgery, the rejection contract);
//!   [`common`] is its former name, re-exported for modules that still use it.
//! - `adversarial*`: one test per attack, named after it; each checks exit code 1, the message,
//!   a byte-identical mirror and nothing written outside it.
//! - `crash`: SIGKILL at every stage boundary and at random points, full disks, locks.
//! - `interop_*`: the real signify-openbsd, minisign, GNU tar and zstd binaries.
//! - `proptest_bundle`, `fuzz_targets`: property tests and the bounded stable fuzz runner.
//! - `vectors`: the committed test vectors (tests/vectors/) imported and compared with their
//!   `expect` files; `vectors::regenerating_reproduces_the_committed_vectors` rebuilds them and compares.
//! - `hostile_mirror`: a hostile mirror and hostile clocks: links and special files in
//!   `.airlock/`, a tampered log end, future `created` times, per-channel clock floors.
//! - `lifecycle_mirror`: explicit mirrors, channel ownership, delta bundles checked against
//!   the mirror, retirement, repair, resume, version-1 bundles still additive.
//! - `hygiene`: rules about the source tree (the library reads no environment variables).
//! - `publish`: `mirror publish` with nginx, pip, apt, moto's S3 server and signify, on loopback.

mod common;
mod kit;
#[path = "../../fuzz/targets.rs"]
mod targets;

mod adversarial;
mod adversarial_keys;
mod adversarial_signed;
mod artifacts;
mod audit_readonly;
mod audit_show;
mod cosign;
mod crash;
mod damaged_log;
mod fuzz_targets;
mod hostile_artifacts;
mod hostile_mirror;
mod hostile_output;
mod hostile_paths;
mod hostile_sums;
mod hostile_time;
mod hygiene;
mod interop_signify_keys;
mod interop_tools;
mod json_schema;
mod lifecycle_mirror;
mod lifecycle_outside;
mod limits;
mod media;
mod pack_failures;
mod pack_report;
mod policy;
mod proptest_bundle;
mod provenance;
mod publish;
mod roundtrip;
mod sigstore_conformance;
mod single_read;
mod terminal;
mod vectors;
mod volumes;
mod weekly;
