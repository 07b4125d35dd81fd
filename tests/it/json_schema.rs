//! `--json` on every command, validated against its schema (docs/JSON.md, docs/schema/).
//!
//! [`CASES`] is one table: each row runs one command with `--json` on a real bench (bundles,
//! a mirror, a receipt, a policy, a damaged log), names the schema its output must validate
//! against and the exit code it must end with. Every command has a success row and, where
//! it can fail, a failure row (one error document on stdout). A schema file without a row
//! fails [`every_schema_is_valid_and_exercised`]: to cover a new command, add its schema to
//! docs/schema/ and one row here.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;

use crate::kit::*;

/// One command run with `--json`: which schema its stdout must validate against, its
/// arguments (given the bench directory; `--json` is added), and the exit code it ends with.
struct JsonCase {
    /// `docs/schema/<schema>.v1.schema.json`.
    schema: &'static str,
    /// What the row shows, for failure messages.
    what: &'static str,
    args: fn(&Path) -> Vec<OsString>,
    exit: i32,
}

/// The arguments of a row: strings, with `@name` standing for the bench path `name`.
fn argv(root: &Path, args: &[&str]) -> Vec<OsString> {
    args.iter()
        .map(|a| match a.strip_prefix('@') {
            Some(rel) => root.join(rel).into_os_string(),
            None => OsString::from(a),
        })
        .collect()
}

macro_rules! case {
    ($schema:expr, $what:expr, $exit:expr, [$($arg:expr),* $(,)?]) => {
        JsonCase { schema: $schema, what: $what, exit: $exit, args: |root| argv(root, &[$($arg),*]) }
    };
}

/// Every row; see the module documentation. Rows that change the bench work on their own
/// copies (`m-*` mirrors), so the rows run in any order.
const CASES: &[JsonCase] = &[
    case!("keygen", "a new key pair", 0, ["keygen", "--public", "@new.pub", "--secret", "@new.sec", "--no-passphrase"]),
    case!(
        "keygen",
        "refuses to overwrite a key",
        2,
        ["keygen", "--public", "@k.pub", "--secret", "@k.sec", "--no-passphrase"]
    ),
    case!(
        "pack",
        "a bundle",
        0,
        ["pack", "@src", "-o", "@packed.airlock", "--key", "@k.sec", "--state-dir", "@state-p", "--channel", "c"]
    ),
    case!(
        "pack",
        "skipped links are listed",
        0,
        ["pack", "@links", "-o", "@skipped.airlock", "--key", "@k.sec", "--state-dir", "@state-s", "--skip-symlinks"]
    ),
    case!(
        "pack",
        "a volume set",
        0,
        [
            "pack",
            "@big",
            "-o",
            "@vols",
            "--key",
            "@k.sec",
            "--state-dir",
            "@state-v",
            "--volume-size",
            "1572864",
            "--parity",
            "1"
        ]
    ),
    case!(
        "pack",
        "refused sources",
        1,
        ["pack", "@links", "-o", "@refused.airlock", "--key", "@k.sec", "--state-dir", "@state-r"]
    ),
    case!("inspect", "unverified", 0, ["inspect", "@b1.airlock"]),
    case!(
        "inspect",
        "under a policy, with producers",
        0,
        ["inspect", "@b1.airlock", "--policy", "@p.toml", "--producers"]
    ),
    case!("inspect", "not a bundle", 1, ["inspect", "@src/a.txt"]),
    case!("verify", "under a policy with artifact rules", 0, ["verify", "@b1.airlock", "--policy", "@p.toml"]),
    case!("verify", "one volume alone", 0, ["verify", "@vols.vol002.airlock", "--trust", "@k.pub"]),
    case!("verify", "an untrusted signer", 1, ["verify", "@b1.airlock", "--trust", "@other.pub"]),
    case!("import", "imported", 0, ["import", "@b1.airlock", "--trust", "@k.pub", "--mirror", "@m-new", "--init"]),
    case!("import", "already imported", 0, ["import", "@b1.airlock", "--trust", "@k.pub", "--mirror", "@m"]),
    case!(
        "import",
        "repair with nothing to repair",
        0,
        ["import", "@b1.airlock", "--trust", "@k.pub", "--mirror", "@m", "--repair"]
    ),
    case!("import", "rejected", 1, ["import", "@b1.airlock", "--trust", "@other.pub", "--mirror", "@m"]),
    case!("import", "not a mirror", 2, ["import", "@b1.airlock", "--trust", "@k.pub", "--mirror", "@src"]),
    case!(
        "sign",
        "co-signed",
        0,
        ["sign", "@b1.airlock", "--key", "@other.sec", "-o", "@cosigned.airlock", "--trust", "@k.pub"]
    ),
    case!(
        "sign",
        "refused: not trusted",
        1,
        ["sign", "@b1.airlock", "--key", "@other.sec", "-o", "@nope.airlock", "--trust", "@other.pub"]
    ),
    case!("policy-check", "a policy", 0, ["policy", "check", "@p.toml"]),
    case!("policy-check", "an invalid policy", 2, ["policy", "check", "@bad.toml"]),
    case!("key-show", "a public key", 0, ["key", "show", "@k.pub"]),
    case!("key-show", "a secret key", 0, ["key", "show", "@k.sec"]),
    case!("key-show", "not a key", 2, ["key", "show", "@src/a.txt"]),
    case!("key-convert", "to minisign, on stdout", 0, ["key", "convert", "@k.pub", "--to", "minisign"]),
    case!("key-convert", "a secret key", 2, ["key", "convert", "@k.sec", "--to", "minisign"]),
    case!("mirror-init", "a new mirror", 0, ["mirror", "init", "@m-init"]),
    case!("mirror-init", "already a mirror", 2, ["mirror", "init", "@m"]),
    case!("mirror-log", "an intact log", 0, ["mirror", "log", "@m"]),
    case!("mirror-log", "a broken chain", 1, ["mirror", "log", "@m-broken"]),
    case!("mirror-log", "not a mirror", 2, ["mirror", "log", "@src"]),
    case!("mirror-recover-log", "a damaged log sealed", 0, ["mirror", "recover-log", "@m-recover", "--reason", "test"]),
    case!("mirror-recover-log", "refused: the log is intact", 2, ["mirror", "recover-log", "@m", "--reason", "test"]),
    case!("mirror-receipt", "a receipt", 0, ["mirror", "receipt", "@m", "--key", "@inside.sec", "-o", "@R2"]),
    case!("mirror-receipt", "refuses to overwrite", 2, ["mirror", "receipt", "@m", "--key", "@inside.sec", "-o", "@R"]),
    case!("mirror-verify", "a clean mirror", 0, ["mirror", "verify", "@m"]),
    case!("mirror-verify", "a modified file", 1, ["mirror", "verify", "@m-modified", "--read-only"]),
    case!("mirror-verify", "not a mirror", 2, ["mirror", "verify", "@src"]),
    case!("mirror-show", "every kept import", 0, ["mirror", "show", "@m"]),
    case!("mirror-show", "one import, re-checked", 0, ["mirror", "show", "@m", "c:1", "--trust", "@k.pub"]),
    case!("mirror-show", "an unknown import", 2, ["mirror", "show", "@m", "nosuch:9"]),
    case!(
        "mirror-publish",
        "published as files",
        0,
        ["mirror", "publish", "@m", "--to", "@pub-files", "--format", "files", "--key", "@inside.sec"]
    ),
    case!(
        "mirror-publish",
        "refused: a modified file",
        1,
        ["mirror", "publish", "@m-modified", "--to", "@pub-refused", "--format", "files", "--key", "@inside.sec"]
    ),
    case!("mirror-publish", "refused: no key for files", 2, ["mirror", "publish", "@m", "--to", "@pub-nokey"]),
    case!("receipt-verify", "a receipt", 0, ["receipt", "verify", "@R", "--trust", "@inside.pub"]),
    case!("receipt-verify", "signed by another key", 1, ["receipt", "verify", "@R", "--trust", "@other.pub"]),
    case!("diff", "two bundles", 0, ["diff", "@b1.airlock", "@b2.airlock"]),
    case!("diff", "--exit-code on different states", 1, ["diff", "@b1.airlock", "@b2.airlock", "--exit-code"]),
    case!("diff", "a missing file", 2, ["diff", "@b1.airlock", "@missing.airlock"]),
];

/// The bench every row runs on, built once: keys `k`, `other`, `inside`; a source tree
/// `src` packed as `b1.airlock` and, changed, `b2.airlock` (channel `c`); a policy `p.toml`
/// with an artifact rule and an invalid `bad.toml`; a mirror `m` holding `b1` and its
/// receipt `R`; copies of `m` with a damaged log and a modified file; `links` (a tree with
/// a symbolic link) and `big` (a tree large enough for volumes).
fn bench() -> &'static Path {
    static BENCH: OnceLock<tempfile::TempDir> = OnceLock::new();
    BENCH.get_or_init(build_bench).path()
}

fn build_bench() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for key in ["k", "other", "inside"] {
        keygen(root, key);
    }
    write(root, "src/a.txt", b"alpha\n", 0o644);
    write(root, "src/tools/run.sh", b"#!/bin/sh\n", 0o755);
    write(root, "src/vendor/pkg.tgz", b"package", 0o644);
    let pack = |out: &str| pack_at(root, &root.join("src"), out, &["--channel", "c", "--sign-artifacts"]);
    pack("b1.airlock").expect_code(0);
    write(root, "src/a.txt", b"alpha, changed\n", 0o644);
    pack("b2.airlock").expect_code(0);
    let k_pub = fs::read_to_string(root.join("k.pub")).unwrap();
    let b64 = k_pub.lines().nth(1).unwrap();
    let policy = format!(
        "version = 1\n[keys.transfer]\npublic_key = \"{b64}\"\n[[channel]]\nname = \"c\"\nsigners = [\"transfer\"]\n\
         [[revoked]]\nkey_id = \"0102030405060708\"\nreason = \"lost\"\n\
         [[artifact]]\npath = \"vendor/*\"\nkeys = [\"transfer\"]\n"
    );
    fs::write(root.join("p.toml"), policy).unwrap();
    fs::write(root.join("bad.toml"), "version = 1\n[[channel]]\nname = \"c\"\nsigners = [\"nobody\"]\n").unwrap();
    let mut import = airlock();
    import.arg("import").arg(root.join("b1.airlock")).arg("--trust").arg(root.join("k.pub"));
    run(import.arg("--mirror").arg(root.join("m")).arg("--init")).expect_code(0);
    run(airlock()
        .arg("mirror")
        .arg("receipt")
        .arg(root.join("m"))
        .arg("--key")
        .arg(root.join("inside.sec"))
        .arg("-o")
        .arg(root.join("R")))
    .expect_code(0);
    for copy in ["m-broken", "m-recover", "m-modified"] {
        copy_tree(&root.join("m"), &root.join(copy));
    }
    for damaged in ["m-broken", "m-recover"] {
        let log = root.join(damaged).join(".airlock/log");
        let text = fs::read_to_string(&log).unwrap().replacen("\"imported\"", "\"importeD\"", 1);
        fs::write(&log, text).unwrap();
    }
    fs::write(root.join("m-modified/a.txt"), b"planted\n").unwrap();
    write(root, "links/file", b"x", 0o644);
    std::os::unix::fs::symlink("file", root.join("links/link")).unwrap();
    write(root, "big/big.bin", &big_content(4 << 20), 0o644);
    dir
}

/// The schema file `docs/schema/<name>.v1.schema.json`, parsed.
fn schema_file(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema").join(format!("{name}.v1.schema.json"));
    serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs one row and returns its stdout documents (one per line), each checked against the
/// schema, with `schema` first and `ok` matching the exit code.
fn run_case(case: &JsonCase) -> Vec<Value> {
    let root = bench();
    let mut args = (case.args)(root);
    args.push("--json".into());
    let out = run(airlock().args(&args).current_dir(root).env("AIRLOCK_STATE_DIR", root.join("state-default")));
    let context =
        format!("{} ({}): {args:?}\nstdout:\n{}\nstderr:\n{}", case.schema, case.what, out.stdout, out.stderr);
    assert_eq!(out.code, case.exit, "exit code of {context}");
    let validator = jsonschema::draft202012::new(&schema_file(case.schema)).unwrap();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(!lines.is_empty(), "no JSON on stdout: {context}");
    if case.schema != "mirror-log" {
        assert_eq!(lines.len(), 1, "one document on one line: {context}");
    }
    let expected_schema = format!("airlock.{}.v1", case.schema);
    let documents: Vec<Value> = lines
        .iter()
        .map(|line| {
            assert!(
                line.starts_with(&format!("{{\"schema\":\"{expected_schema}\",\"ok\":")),
                "schema, ok first: {context}"
            );
            let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {context}"));
            let errors: Vec<String> =
                validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
            assert!(errors.is_empty(), "{errors:#?}\n{context}");
            doc
        })
        .collect();
    // The verdict: the last document's `ok` is the exit code; an error is on stderr too.
    let last = documents.last().unwrap();
    assert_eq!(last["ok"], Value::Bool(case.exit == 0), "ok of {context}");
    if let Some(error) = last.get("error") {
        assert_eq!(error["exit"], case.exit, "error.exit of {context}");
        assert!(out.stderr.contains(error["message"].as_str().unwrap()), "stderr has the message: {context}");
    }
    documents
}

/// Runs every row in order (some read what an earlier one wrote: the volumes) and checks
/// what particular rows print beyond their schema.
#[test]
fn every_command_prints_json_its_schema_accepts() {
    let mut printed: HashMap<&str, Vec<Value>> = HashMap::new();
    for case in CASES {
        printed.insert(case.what, run_case(case));
    }
    let doc =
        |what: &str| printed.get(what).and_then(|d| d.last()).unwrap_or_else(|| panic!("no row {what:?}")).clone();
    verify_lists_the_files_no_artifact_rule_covers(&doc("under a policy with artifact rules"));
    errors_name_their_kind_and_place(&|what| doc(what)["error"].clone());
    mirror_log_json_lines_show_records_breaks_and_a_summary(&printed["a broken chain"], &printed["an intact log"]);
}

#[test]
fn every_schema_is_valid_and_exercised() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".v1.schema.json").map(str::to_owned))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in &names {
        let schema = schema_file(name);
        jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("{name}: not a valid JSON Schema: {e}"));
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
        assert_eq!(schema["$id"], format!("airlock.{name}.v1"), "{name}");
        jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{name}: does not compile: {e}"));
        let success = CASES.iter().any(|c| c.schema == name && c.exit == 0);
        assert!(success, "docs/schema/{name}.v1.schema.json has no success row in json_schema::CASES");
    }
    for case in CASES {
        assert!(names.iter().any(|n| n == case.schema), "row {:?} names no schema file", case.what);
    }
}

fn verify_lists_the_files_no_artifact_rule_covers(doc: &Value) {
    let uncovered: Vec<&str> = doc["not_covered"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    // vendor/pkg.tgz is covered (and its .sha256.sig is its material); the rest is not.
    assert!(uncovered.contains(&"a.txt") && uncovered.contains(&"tools/run.sh"), "{doc}");
    assert!(!uncovered.contains(&"vendor/pkg.tgz") && !uncovered.contains(&"vendor/pkg.tgz.sha256.sig"), "{doc}");
    assert!(doc["findings"].as_array().unwrap().iter().any(|f| f["status"] == "verified"), "{doc}");
    assert_eq!(doc["threshold"]["state"], "met");
    assert_eq!(doc["signatures"][0]["name"], "transfer");
}

fn errors_name_their_kind_and_place(error: &dyn Fn(&str) -> Value) {
    let refused = error("refused sources");
    assert_eq!(refused["kind"], "pack_refused");
    assert_eq!(refused["refused"][0]["rule"], "symbolic_link", "{refused}");
    assert_eq!(error("an untrusted signer")["kind"], "untrusted");
    let policy = error("an invalid policy");
    assert_eq!(policy["kind"], "policy_invalid");
    assert!(policy["where"]["path"].as_str().unwrap().ends_with("bad.toml"), "{policy}");
    assert!(policy["where"]["line"].as_u64().is_some(), "{policy}");
    assert_eq!(error("already a mirror")["kind"], "already_a_mirror");
    assert_eq!(error("not a mirror")["kind"], "not_a_mirror");
}

fn mirror_log_json_lines_show_records_breaks_and_a_summary(broken: &[Value], intact: &[Value]) {
    let types: Vec<&str> = broken.iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(types.last(), Some(&"summary"), "{broken:#?}");
    assert!(types.contains(&"break"), "{broken:#?}");
    let breaks = types.iter().filter(|t| **t == "break").count() as u64;
    assert_eq!(broken.last().unwrap()["breaks"].as_u64(), Some(breaks));
    let record = &intact[0];
    assert_eq!(record["event"], "imported");
    assert_eq!(record["bundle"]["channel"], "c");
    assert!(record["time"].as_str().unwrap().ends_with('Z'), "{record}");
}

/// The text form says how many files no artifact rule covers; `-q` prints only the verdict.
#[test]
fn verify_text_counts_uncovered_files_and_quiet_prints_the_verdict() {
    let root = bench();
    let verify = || {
        let mut cmd = airlock();
        cmd.arg("verify").arg(root.join("b1.airlock")).arg("--policy").arg(root.join("p.toml"));
        cmd
    };
    let text = run(&mut verify());
    text.expect_code(0);
    // a.txt, tools/run.sh and their .sha256.sig files.
    assert!(text.stdout.contains("not covered: 4 files no artifact rule covers, carried unchecked"), "{}", text.stdout);
    let quiet = run(verify().arg("-q"));
    quiet.expect_code(0);
    assert_eq!(quiet.stdout.lines().count(), 1, "-q prints only the verdict:\n{}", quiet.stdout);
    assert!(quiet.stdout.starts_with("OK: "), "{}", quiet.stdout);
}
