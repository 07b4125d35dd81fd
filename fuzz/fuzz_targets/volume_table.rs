//! cargo-fuzz target `volume_table`: see fuzz/targets.rs (shared with the stable runner,
//! tests/it/fuzz_targets.rs) and docs/FUZZING.md.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::volume_table(data));
