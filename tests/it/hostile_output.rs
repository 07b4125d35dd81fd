//! Hostile output (issue #17, defects 4 and 8): what airlock prints about strings that came
//! from outside, and what it does when nobody reads what it prints.
//!
//! - Terminal injection: a bundle, mirror, key or policy file name, a policy's text, a label,
//!   a planted file name, an error message quoting any of them, an argument clap quotes. One
//!   test per command: the hostile string (ESC sequences, BEL, a C1 CSI, a bidi override and
//!   a newline followed by a fake log record) must come out escaped (`\u{1b}`, `\n`), with no
//!   raw control or invisible character on any line and no forged line.
//! - Broken pipe: a closed stdout ends every command quietly with exit 0 (`mirror verify`
//!   keeps its verdict); a reader that leaves after one line never sees exit 101; a panic
//!   is an internal error with exit 2.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use airlock::render::needs_escape;

use crate::kit::*;

/// A name an attacker would choose: a screen clear, a window-title change (OSC ... BEL), a
/// C1 CSI, a right-to-left override, and a newline that starts a fake `imported` record.
const HOSTILE: &str = "x\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}gpj.exe\n2001-09-09T01:46:40Z  imported  forged";

/// The start of the fake record: no output line may begin with it.
const FORGED: &str = "2001-09-09T01:46:40Z";

/// How the hostile name's ESC and newline must appear.
const ESCAPED: [&str; 2] = ["x\\u{1b}[2J", "\\n2001-09-09T01:46:40Z"];

/// A file name holding [`HOSTILE`].
fn hostile_name(prefix: &str, suffix: &str) -> String {
    format!("{prefix}{HOSTILE}{suffix}")
}

/// Every line of `text` is free of raw control and invisible characters and none is a
/// forged record; the hostile string is shown, escaped, at least once.
#[track_caller]
fn assert_escaped(what: &str, text: &str) {
    assert_clean(what, text);
    for e in ESCAPED {
        assert!(text.contains(e), "{what}: {e:?} is not in the output:\n{text}");
    }
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for line in text.split_terminator('\n') {
        assert!(!line.chars().any(needs_escape), "{what}: raw control character in {line:?}");
        assert!(!line.starts_with(FORGED), "{what}: a newline forged the line {line:?}");
    }
}

/// Every line is one JSON value that parses, with no raw control or invisible character.
#[track_caller]
fn assert_json_lines(what: &str, text: &str, records: usize) -> Vec<serde_json::Value> {
    assert_clean(what, text);
    let values: Vec<serde_json::Value> = text
        .split_terminator('\n')
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: {l:?} is no JSON line: {e}")))
        .collect();
    assert_eq!(values.len(), records, "{what}: one line per record:\n{text}");
    values
}

fn in_ws(ws: &Workspace, args: &[&str]) -> Command {
    let mut cmd = airlock();
    cmd.current_dir(ws.dir.path()).args(args).env("AIRLOCK_STATE_DIR", ws.path("state"));
    cmd
}

/// A workspace with keys `k` and `k2`, a source tree `src` and `b.airlock` signed by both,
/// labelled with a tab (the one control character the manifest rules allow in a label;
/// bidi and zero-width characters are refused there, and their escaping is covered by
/// `render`'s unit tests and the `inspect` fuzz target).
fn bench() -> Workspace {
    let ws = Workspace::new();
    ws.keygen("k2");
    for (path, content, mode) in TREE {
        write(&ws.path("src"), path, content, *mode);
    }
    let label = "release\tnotes";
    let k2 = ws.path("k2.sec");
    let k2 = k2.to_str().unwrap();
    ws.pack(&ws.path("src"), "b.airlock", &["--key", k2, "--label", label, "--meta", "k\tey=v\tal"]).expect_code(0);
    ws
}

/// A policy trusting `k` through a key file with a hostile name, and revoking `k2` with a
/// hostile reason (policy files are text from outside as well).
fn hostile_policy(ws: &Workspace) -> PathBuf {
    let key_file = hostile_name("k", ".pub");
    fs::copy(ws.path("k.pub"), ws.path(&key_file)).unwrap();
    let k2 = airlock::keys::PublicKey::load(&ws.path("k2.pub")).unwrap().key_id().to_string();
    let toml_escaped = |s: &str| serde_json::to_string(s).unwrap(); // a TOML basic string
    let text = format!(
        "version = 1\n[keys.ops]\nfile = {}\n[[channel]]\nname = \"*\"\nsigners = [\"ops\"]\n\
         [[revoked]]\nkey_id = \"{k2}\"\nreason = {}\n",
        toml_escaped(&key_file),
        toml_escaped(&format!("lost {HOSTILE}")),
    );
    let path = ws.path("policy.toml");
    fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------------------
// terminal injection, one test per command

#[test]
fn inspect_escapes_policy_text_label_and_meta() {
    let ws = bench();
    let policy = hostile_policy(&ws);
    let out = run(in_ws(&ws, &["inspect", "b.airlock", "--policy"]).arg(&policy));
    out.expect_code(0);
    assert_escaped("inspect", &out.stdout);
    for shown in ["label        release\\tnotes", "meta         k\\tey=v\\tal"] {
        assert!(out.stdout.contains(shown), "inspect lacks {shown:?}:\n{}", out.stdout);
    }
    let json = run(in_ws(&ws, &["inspect", "b.airlock", "--json", "--policy"]).arg(&policy));
    json.expect_code(0);
    let value = &assert_json_lines("inspect --json", &json.stdout, 1)[0];
    let texts = value["signatures"].as_array().unwrap().iter().flat_map(|s| [&s["name"], &s["message"]]);
    assert!(texts.filter_map(|t| t.as_str()).any(|t| t.contains(HOSTILE)), "the JSON does not hold the original text");
    assert_eq!(value["label"], "release\tnotes");
}

#[test]
fn verify_escapes_the_bundle_name_and_policy_text() {
    let ws = bench();
    let name = hostile_name("b", ".airlock");
    fs::copy(ws.path("b.airlock"), ws.path(&name)).unwrap();
    let policy = hostile_policy(&ws);
    let out = run(in_ws(&ws, &["verify", &name, "--policy"]).arg(&policy));
    out.expect_code(0);
    assert_escaped("verify", &out.stdout);
    assert!(out.stdout.contains("ignored signature by revoked key"), "{}", out.stdout);
}

#[test]
fn import_escapes_the_mirror_name() {
    let ws = bench();
    let mirror = hostile_name("m", "");
    let out =
        run(&mut in_ws(&ws, &["import", "b.airlock", "--trust", "k.pub", "--quiet", "--init", "--mirror", &mirror]));
    out.expect_code(0);
    assert_escaped("import", &out.stdout);
    let again =
        run(&mut in_ws(&ws, &["import", "b.airlock", "--trust", "k.pub", "--quiet", "--init", "--mirror", &mirror]));
    again.expect_code(0);
    assert_escaped("import (already imported)", &again.stdout);
}

#[test]
fn mirror_log_escapes_a_bundle_file_name_that_forges_a_record() {
    let ws = bench();
    let name = hostile_name("b", ".airlock");
    let bytes = fs::read(ws.path("b.airlock")).unwrap();
    fs::write(ws.path(&name), &bytes[..bytes.len() / 2]).unwrap();
    run(&mut in_ws(&ws, &["import", &name, "--trust", "k.pub", "--quiet", "--init", "--mirror", "m"])).expect_code(1);
    fs::write(ws.path(&name), &bytes).unwrap();
    run(&mut in_ws(&ws, &["import", &name, "--trust", "k.pub", "--quiet", "--init", "--mirror", "m"])).expect_code(0);

    let text = run(&mut in_ws(&ws, &["mirror", "log", "m"]));
    text.expect_code(0);
    assert_escaped("mirror log", &text.stdout);
    assert_eq!(text.stdout.lines().count(), 3, "two records and the summary:\n{}", text.stdout);

    let json = run(&mut in_ws(&ws, &["mirror", "log", "m", "--json"]));
    json.expect_code(0);
    let lines = assert_json_lines("mirror log --json", &json.stdout, 3);
    let records: Vec<_> = lines.iter().filter(|r| r["type"] == "record").collect();
    assert_eq!(records.len(), 2, "two records and the summary:\n{}", json.stdout);
    assert!(records.iter().all(|r| r["source"].as_str().unwrap().ends_with(&name)), "{}", json.stdout);
}

#[test]
fn mirror_verify_escapes_a_planted_file_name() {
    let ws = bench();
    run(&mut in_ws(&ws, &["import", "b.airlock", "--trust", "k.pub", "--quiet", "--init", "--mirror", "m"]))
        .expect_code(0);
    fs::write(ws.path("m").join(HOSTILE.replace('/', "_")), b"planted").unwrap();
    let out = run(&mut in_ws(&ws, &["mirror", "verify", "m", "--quiet"]));
    out.expect_code(1);
    assert_escaped("mirror verify", &out.stdout);
    assert!(out.stdout.contains("unknown   x\\u{1b}[2J"), "{}", out.stdout);
}

#[test]
fn sign_escapes_the_output_name() {
    let ws = bench();
    let name = hostile_name("cosigned", ".airlock");
    let out = run(&mut in_ws(&ws, &["sign", "b.airlock", "--key", "k2.sec", "--trust", "k.pub", "-q", "-o", &name]));
    out.expect_code(0);
    assert_escaped("sign", &out.stdout);
}

#[test]
fn pack_escapes_the_output_name_and_a_refused_source_name() {
    let ws = bench();
    let name = hostile_name("p", ".airlock");
    let out = run(&mut in_ws(&ws, &["pack", "src", "--key", "k.sec", "--quiet", "-o", &name]));
    out.expect_code(0);
    assert_escaped("pack", &out.stdout);

    // A source file whose name no bundle may hold: the refusal quotes it.
    write(&ws.path("bad"), HOSTILE, b"x", 0o644);
    let out = run(&mut in_ws(&ws, &["pack", "bad", "--key", "k.sec", "--quiet", "-o", "bad.airlock"]));
    assert_ne!(out.code, 0, "a control character in a name was packed");
    // One line naming the refused source, escaped, then the one error line.
    assert_escaped("pack (refused source)", &out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "pack (refused source): the refusal and the error:\n{}", out.stderr);
    assert!(lines[0].starts_with("refused  ") && lines[1].starts_with("airlock: "), "{}", out.stderr);
}

#[test]
fn keygen_escapes_the_key_file_names() {
    let ws = Workspace::new();
    let (public, secret) = (hostile_name("n", ".pub"), hostile_name("n", ".sec"));
    let out = run(&mut in_ws(&ws, &["keygen", "--no-passphrase", "--public", &public, "--secret", &secret]));
    out.expect_code(0);
    assert_escaped("keygen", &out.stdout);
}

#[test]
fn key_show_escapes_the_file_name_and_the_comment() {
    let ws = Workspace::new();
    let text = fs::read_to_string(ws.path("k.pub")).unwrap();
    let body = text.lines().nth(1).unwrap();
    let name = hostile_name("shown", ".pub");
    let comment = "evil \u{1b}[2J\u{9b}31m\u{202e} comment";
    fs::write(ws.path(&name), format!("untrusted comment: {comment}\n{body}\n")).unwrap();
    let out = run(&mut in_ws(&ws, &["key", "show", &name]));
    out.expect_code(0);
    assert_escaped("key show", &out.stdout);
    assert!(out.stdout.contains("evil \\u{1b}[2J"), "{}", out.stdout);
}

#[test]
fn key_convert_escapes_the_output_name() {
    let ws = Workspace::new();
    let name = hostile_name("converted", ".pub");
    let out = run(&mut in_ws(&ws, &["key", "convert", "k.pub", "--to", "minisign", "-o", &name]));
    out.expect_code(0);
    assert_escaped("key convert (stderr)", &out.stderr);
}

#[test]
fn policy_check_escapes_reasons_origins_and_patterns() {
    let ws = bench();
    let policy = hostile_policy(&ws);
    let mut text = fs::read_to_string(&policy).unwrap();
    let pattern = serde_json::to_string(&format!("vendor-{HOSTILE}/*")).unwrap();
    text.push_str(&format!("[[artifact]]\npath = {pattern}\nkeys = [\"ops\"]\n"));
    fs::write(&policy, text).unwrap();
    let out = run(in_ws(&ws, &["policy", "check"]).arg(&policy));
    if out.code == 0 {
        assert_escaped("policy check", &out.stdout);
    } else {
        // The pattern was refused: the refusal quotes it.
        assert_single_error_line("policy check", &out.stderr);
    }
    // Without the pattern the policy is valid: reasons and key file names are printed.
    hostile_policy(&ws);
    let out = run(in_ws(&ws, &["policy", "check"]).arg(&policy));
    out.expect_code(0);
    assert_escaped("policy check", &out.stdout);
}

#[test]
fn policy_error_quoting_a_hostile_key_file_name_stays_one_line() {
    let ws = Workspace::new();
    let missing = serde_json::to_string(&hostile_name("k", ".pub")).unwrap();
    fs::write(
        ws.path("broken.toml"),
        format!("version = 1\n[keys.ops]\nfile = {missing}\n[[channel]]\nname = \"c\"\nsigners = [\"ops\"]\n"),
    )
    .unwrap();
    let out = run(&mut in_ws(&ws, &["policy", "check", "broken.toml"]));
    out.expect_code(2);
    // One problem (the channel naming the key is not a second one): one line.
    assert_single_error_line("policy error", &out.stderr);
    assert_escaped("policy error", &out.stderr);
}

#[test]
fn demo_escapes_its_directory_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(airlock().arg("demo").arg(dir.path().join(hostile_name("demo", ""))));
    out.expect_code(0);
    assert_escaped("demo", &out.stdout);
}

/// stderr is exactly one `airlock: ...` line, with nothing raw in it.
#[track_caller]
fn assert_single_error_line(what: &str, stderr: &str) {
    assert_clean(what, stderr);
    assert_eq!(stderr.lines().count(), 1, "{what}: one error line:\n{stderr}");
    assert!(stderr.starts_with("airlock: "), "{what}: {stderr}");
}

#[test]
fn error_line_quoting_a_hostile_path_stays_one_line() {
    let ws = Workspace::new();
    let out = run(&mut in_ws(&ws, &["inspect", &hostile_name("missing", ".airlock")]));
    out.expect_code(2);
    assert_single_error_line("inspect (missing file)", &out.stderr);
    assert_escaped("inspect (missing file)", &out.stderr);
}

#[test]
fn usage_error_quoting_a_hostile_argument_stays_escaped() {
    let ws = Workspace::new();
    let name = hostile_name("b", ".airlock");
    let out = run(&mut in_ws(&ws, &["verify", &name, &name, "--trust", "k.pub"]));
    out.expect_code(2);
    assert_escaped("usage error", &out.stderr);
}

#[test]
fn a_panic_is_an_escaped_internal_error_with_exit_2() {
    let ws = Workspace::new();
    let out = run(in_ws(&ws, &["key", "show", "k.pub"]).env("AIRLOCK_TEST_PANIC", HOSTILE));
    out.expect_code(2);
    assert_single_error_line("panic", &out.stderr);
    assert_escaped("panic", &out.stderr);
    assert!(out.stderr.contains("internal error") && out.stderr.contains("please report"), "{}", out.stderr);
}

#[test]
fn printing_goes_through_cli_out_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("cli/out.rs") {
            continue;
        }
        let text = fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            for mac in ["print!(", "println!(", "eprint!(", "eprintln!(", "dbg!("] {
                let raw = code
                    .match_indices(mac)
                    .any(|(i, _)| !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                assert!(!raw, "{}:{}: {mac} bypasses cli::out's escaping: {line}", path.display(), n + 1);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// broken pipe

/// A bench with a big bundle (thousands of lines from `inspect`) imported into mirror `m`.
fn big_bench() -> Workspace {
    let ws = Workspace::new();
    for i in 0..3000 {
        write(&ws.path("src"), &format!("d{}/f{i}.txt", i % 10), format!("{i}\n").as_bytes(), 0o644);
    }
    ws.pack(&ws.path("src"), "big.airlock", &[]).expect_code(0);
    run(&mut in_ws(&ws, &["import", "big.airlock", "--trust", "k.pub", "--quiet", "--init", "--mirror", "m"]))
        .expect_code(0);
    ws
}

/// Commands that print, with the exit code each gives when all goes well.
const PRINTERS: &[(&[&str], i32)] = &[
    (&["inspect", "big.airlock"], 0),
    (&["inspect", "big.airlock", "--json"], 0),
    (&["verify", "big.airlock", "--trust", "k.pub", "--quiet"], 0),
    (&["mirror", "log", "m"], 0),
    (&["mirror", "log", "m", "--json"], 0),
    (&["mirror", "verify", "m", "--quiet"], 0),
    (&["key", "show", "k.pub"], 0),
    (&["key", "convert", "k.pub", "--to", "minisign"], 0),
];

#[test]
fn closed_stdout_ends_every_command_quietly_with_exit_0() {
    let ws = big_bench();
    for (args, code) in PRINTERS {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = in_ws(&ws, args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?} with stdout closed: {stderr}");
        assert!(stderr.is_empty(), "{args:?} with stdout closed said: {stderr}");
    }
}

#[test]
fn a_reader_that_leaves_after_one_line_never_sees_exit_101() {
    let ws = big_bench();
    for round in 0..10 {
        for (args, code) in PRINTERS {
            let mut child = in_ws(&ws, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            let mut first = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(*code), "round {round}, {args:?} | head -1: {stderr}");
            assert!(stderr.is_empty(), "round {round}, {args:?} | head -1 said: {stderr}");
        }
    }
}

#[test]
fn mirror_verify_keeps_its_verdict_when_stdout_closes() {
    let ws = big_bench();
    for i in 0..50 {
        fs::write(ws.path("m").join(format!("stray{i}")), b"?").unwrap();
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = in_ws(&ws, &["mirror", "verify", "m", "--quiet"]).stdout(writer).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}
