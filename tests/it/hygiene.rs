//! Rules about the source tree itself, checked by reading it.

use std::fs;
use std::path::{Path, PathBuf};

/// Spellings of a read (or write) of the process environment: `std::env::var`,
/// `env::var_os`, `std::env::args`, a `use std::env`, and the compile-time `env!` and
/// `option_env!`.
const ENV_ACCESS: &[&str] = &["std::env", "env::", "var_os(", "env!(", "option_env!("];

/// Environment accesses the library may keep, each with the reason. None today: every value
/// the environment could give (the clock override, the state directory, the passphrase file,
/// test hooks) is read by the CLI and passed in.
const ALLOWED: &[(&str, &str)] = &[];

/// Nothing in `src/` outside the bin-only `src/cli/` reads the environment: the library is
/// driven by explicit options (docs: README "Layout", issue #11 item 6).
#[test]
fn library_reads_no_environment_variables() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offending = Vec::new();
    for file in rust_files(&src) {
        if file.starts_with(src.join("cli")) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if let Some(hit) = env_access(line) {
                let rel = file.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
                offending.push(format!("{}:{}: {hit}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "the library (src/ outside src/cli/) reads the environment; read it in src/cli/ and pass \
         the value as an option:\n{}",
        offending.join("\n")
    );
}

/// The first environment access on a line of code (comments are skipped), unless allowed.
fn env_access(line: &str) -> Option<&'static str> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return None;
    }
    let mut rest = code.to_owned();
    for (allowed, _reason) in ALLOWED {
        rest = rest.replace(allowed, "");
    }
    ENV_ACCESS.iter().copied().find(|pattern| rest.contains(pattern))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect()
}

/// The scanner finds what it must and lets the allowed through.
#[test]
fn env_access_scanner_recognises_reads() {
    assert_eq!(env_access("    let v = std::env::var(\"X\");"), Some("std::env"));
    assert_eq!(env_access("    env::var_os(KEY)"), Some("env::"));
    assert_eq!(env_access("const V: &str = env!(\"HOME\");"), Some("env!("));
    assert_eq!(env_access("    /// reads `std::env::var` in the CLI"), None);
    assert_eq!(env_access("    .map_err(|e| Error::io(std::env::temp_dir(), e))?;"), Some("std::env"));
    assert_eq!(env_access("    let environment = parse(x);"), None);
}
