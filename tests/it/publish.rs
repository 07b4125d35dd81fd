//! `airlock mirror publish` (issue 16) with the real clients and servers, all on loopback,
//! each started and stopped by its test: nginx serving a published directory to `pip
//! download`/`pip install` and to `apt-get update && apt-get download` (with `Dir::`
//! options, so the machine's own apt state is untouched); moto's S3 server for the object
//! store target, published again after a delta import; stock signify checking the signed
//! checksum list; and a hostile mirror (a file modified after import) that is not
//! published. A missing tool fails the test with what to install, never skips it.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::kit::*;

const FIXTURES: &str = env!("CARGO_MANIFEST_DIR");

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join("fixtures/producer").join(rel)
}

/// Panics, saying what to install, unless `tool` runs.
fn require(tool: &str, install: &str) {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success());
    assert!(matches!(found, Ok(true)), "this test needs `{tool}`: install it with `{install}` (.ci/run does)");
}

/// A free loopback port (bound, read, released: the server binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`, or panics with `what`'s log.
fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening: {}", fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 30 s: {}", fs::read_to_string(log).unwrap_or_default());
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// nginx from Debian serving `root` on a free loopback port, with its own config,
    /// prefix and logs under `work`: one process (no master, so no privilege drop), in
    /// the foreground.
    fn nginx(root: &Path, work: &Path) -> Server {
        require("nginx", "apt-get install nginx-light");
        fs::create_dir_all(work).unwrap();
        let port = free_port();
        let w = work.display();
        let config = format!(
            "daemon off;\nmaster_process off;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\nevents {{}}\nhttp {{\n  \
             access_log {w}/access.log;\n  client_body_temp_path {w}/body;\n  proxy_temp_path {w}/proxy;\n  \
             fastcgi_temp_path {w}/fastcgi;\n  uwsgi_temp_path {w}/uwsgi;\n  scgi_temp_path {w}/scgi;\n  \
             types {{ text/html html; }}\n  default_type application/octet-stream;\n  server {{\n    listen \
             127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
            root.display()
        );
        fs::write(work.join("nginx.conf"), config).unwrap();
        let log = work.join("error.log");
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(work)
            .arg("-c")
            .arg(work.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        wait_for_port(port, &mut child, "nginx", &log);
        Server { child, port }
    }

    /// moto's S3 server on a free loopback port.
    fn moto(work: &Path) -> Server {
        require("moto_server", "pip install 'moto[server]'");
        fs::create_dir_all(work).unwrap();
        let port = free_port();
        let log = work.join("moto.log");
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::from(fs::File::create(work.join("moto.err")).unwrap()))
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, &mut child, "moto_server", &log);
        Server { child, port }
    }
}

/// A workspace with the transfer key `k`, the inside key `inside` and an explicit mirror.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.keygen("inside");
    run(airlock().arg("mirror").arg("init").arg(ws.path("mirror"))).expect_code(0);
    ws
}

/// Packs `src` on channel `channel` and imports it into `mirror`.
fn carry(ws: &Workspace, src: &Path, bundle: &str, extra: &[&str]) {
    let mut args = vec!["--channel", "publish"];
    args.extend_from_slice(extra);
    ws.pack(src, bundle, &args).expect_code(0);
    ws.import(bundle, "k", "mirror", &[]).expect_code(0);
}

/// `airlock mirror publish mirror --to TO --format FORMAT EXTRA... --json`.
fn publish(ws: &Workspace, to: &str, format: &str, extra: &[&str]) -> Command {
    let mut cmd = airlock();
    cmd.args(["mirror", "publish"]).arg(ws.path("mirror")).args(["--to", to, "--format", format, "--json"]).args(extra);
    cmd
}

fn json(run: &Run) -> serde_json::Value {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "--json prints one line:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(value["schema"], "airlock.mirror-publish.v1");
    value
}

fn keys(value: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> =
        value["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    keys.sort();
    keys
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------
// files: stock signify checks the published tree; a hostile mirror is not published

#[test]
fn files_publish_is_checked_by_stock_signify_and_a_modified_mirror_is_not_published() {
    require("signify-openbsd", "apt-get install signify-openbsd");
    let ws = workspace();
    write(&ws.path("src"), "docs/readme.txt", b"read me\n", 0o644);
    write(&ws.path("src"), "bin/tool", b"#!/bin/sh\necho tool\n", 0o755);
    write(&ws.path("src"), "tool-1.0.tar.gz.asc", b"-----BEGIN PGP SIGNATURE-----\n", 0o644);
    carry(&ws, &ws.path("src"), "w1.airlock", &[]);
    let www = ws.path("www");
    let inside = ws.path("inside.sec");
    let first = run(&mut publish(&ws, path_arg(&www), "files", &["--key", path_arg(&inside)]));
    first.expect_code(0);
    let report = json(&first);
    assert_eq!(report["ok"], true);
    assert_eq!(report["format"], "files");
    assert!(keys(&report["uploaded"]).contains(&"bin/tool".to_owned()), "{report}");
    assert_eq!(fs::read(www.join("bin/tool")).unwrap(), b"#!/bin/sh\necho tool\n");

    // A consumer checks a single download with stock signify and the inside public key...
    let check = run(Command::new("signify-openbsd")
        .current_dir(&www)
        .args(["-C", "-p"])
        .arg(ws.path("inside.pub"))
        .args(["-x", ".airlock/SHA256SUMS.sig", "docs/readme.txt"]));
    check.expect_code(0);
    // ... and the whole list.
    run(Command::new("signify-openbsd")
        .current_dir(&www)
        .args(["-C", "-p"])
        .arg(ws.path("inside.pub"))
        .args(["-x", ".airlock/SHA256SUMS.sig"]))
    .expect_code(0);
    // The kept signed manifest travels too: the transfer key's signature over it verifies.
    let heads: Vec<_> = fs::read_dir(www.join(".airlock/bundles")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(heads.len(), 1);
    let sig = fs::read_dir(heads[0].join("signatures")).unwrap().next().unwrap().unwrap().path();
    run(Command::new("signify-openbsd")
        .args(["-V", "-p"])
        .arg(ws.path("k.pub"))
        .arg("-x")
        .arg(&sig)
        .arg("-m")
        .arg(heads[0].join("manifest.cbor")))
    .expect_code(0);

    // Hostile: a mirror file changed after import is not published, the target is unchanged.
    fs::write(ws.path("mirror/docs/readme.txt"), b"read me, attacker\n").unwrap();
    let before = snapshot(&www, false);
    let refused = run(&mut publish(&ws, path_arg(&www), "files", &["--key", path_arg(&inside)]));
    refused.expect_code(1).expect_stderr("docs/readme.txt");
    let report = json(&refused);
    assert_eq!(report["ok"], false);
    assert_eq!(report["error"]["kind"], "mirror_not_intact");
    assert_eq!(report["error"]["exit"], 1);
    assert_eq!(report["refused"][0]["path"], "docs/readme.txt");
    assert_eq!(report["refused"][0]["problem"], "modified");
    assert_eq!(snapshot(&www, false), before, "a refused publish changed the target");
    // And the mirror was only read.
    assert_eq!(fs::read(ws.path("mirror/docs/readme.txt")).unwrap(), b"read me, attacker\n");
}

#[test]
fn an_unknown_file_in_the_mirror_refuses_the_publish() {
    let ws = workspace();
    write(&ws.path("src"), "a.txt", b"a\n", 0o644);
    carry(&ws, &ws.path("src"), "w1.airlock", &[]);
    fs::write(ws.path("mirror/planted.txt"), b"no import put me here\n").unwrap();
    let www = ws.path("www");
    let refused = run(&mut publish(&ws, path_arg(&www), "files", &["--key", path_arg(&ws.path("inside.sec"))]));
    refused.expect_code(1).expect_stderr("planted.txt");
    let report = json(&refused);
    assert_eq!(report["refused"][0]["problem"], "unknown");
    assert_eq!(report["refused"][0]["path"], "planted.txt");
    assert!(!www.exists(), "a refused publish created the target");
}

#[test]
fn files_format_without_a_key_is_a_usage_error() {
    let ws = workspace();
    write(&ws.path("src"), "a.txt", b"a\n", 0o644);
    carry(&ws, &ws.path("src"), "w1.airlock", &[]);
    let r = run(&mut publish(&ws, path_arg(&ws.path("www")), "files", &[]));
    r.expect_code(2).expect_stderr("--key");
    assert_eq!(json(&r)["error"]["kind"], "needs_key");
}

// ---------------------------------------------------------------------------------------
// pypi: pip downloads and installs from the published index, served by nginx

const WHEEL: &str = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl";

fn pip(args: &[&str]) -> Command {
    require("pip", "apt-get install python3-pip");
    let mut cmd = Command::new("pip");
    cmd.args(args)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL");
    cmd
}

#[test]
fn pypi_index_served_by_nginx_is_what_pip_downloads_and_installs_from() {
    let ws = workspace();
    let src = ws.path("src");
    copy_tree(&fixture("sigstore/pypi"), &src.join("wheels"));
    carry(&ws, &src, "w1.airlock", &[]);
    let www = ws.path("www");
    let published = run(&mut publish(&ws, path_arg(&www), "pypi", &[]));
    published.expect_code(0);
    let report = json(&published);
    assert!(keys(&report["uploaded"]).contains(&format!("wheels/{WHEEL}.metadata")), "{report}");

    let page = fs::read_to_string(www.join("simple/circleci-sign-publish-example/index.html")).unwrap();
    let wheel_sha = hex(&sha(&fs::read(fixture("sigstore/pypi").join(WHEEL)).unwrap()));
    assert!(page.contains(&format!("href=\"../../wheels/{WHEEL}#sha256={wheel_sha}\"")), "{page}");
    assert!(page.contains("data-core-metadata=\"sha256="), "{page}");
    assert!(page.contains(&format!("data-provenance=\"../../wheels/{WHEEL}.provenance\"")), "{page}");
    let sdists = fs::read_to_string(www.join("simple/pypi-attestations/index.html")).unwrap();
    assert!(sdists.contains("pypi_attestations-0.0.19.tar.gz#sha256="), "{sdists}");
    let root = fs::read_to_string(www.join("simple/index.html")).unwrap();
    for project in ["circleci-sign-publish-example", "gitlab-oidc-project", "pypi-attestations"] {
        assert!(root.contains(&format!("href=\"{project}/\"")), "{root}");
    }
    // Provenance travels on, beside its distribution.
    assert_eq!(
        fs::read(www.join(format!("wheels/{WHEEL}.publish.attestation"))).unwrap(),
        fs::read(fixture("sigstore/pypi").join(format!("{WHEEL}.publish.attestation"))).unwrap()
    );

    let server = Server::nginx(&www, &ws.path("nginx"));
    let index = format!("{}/simple", server.url());
    let dl = ws.path("dl");
    let download =
        run(pip(&["download", "--no-deps", "--index-url", &index, "-d"]).arg(&dl).arg("circleci-sign-publish-example"));
    download.expect_code(0);
    assert_eq!(fs::read(dl.join(WHEEL)).unwrap(), fs::read(fixture("sigstore/pypi").join(WHEEL)).unwrap());
    let target = ws.path("site");
    let install = run(pip(&["install", "--no-deps", "--index-url", &index, "--target"])
        .arg(&target)
        .arg("circleci-sign-publish-example"));
    install.expect_code(0);
    let installed: Vec<String> =
        fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(
        installed.iter().any(|n| n.starts_with("circleci_sign_publish_example-0.0.1.dev137.dist-info")),
        "{installed:?}"
    );
    // pip fetched the PEP 658 metadata file (nginx's log says so) and checked its digest.
    let access = fs::read_to_string(ws.path("nginx/access.log")).unwrap();
    assert!(access.contains(&format!("{WHEEL}.metadata")), "{access}");
}

fn sha(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).to_vec()
}

// ---------------------------------------------------------------------------------------
// S3: moto's server; a second publish after a delta import sends only what changed

/// `python3 -c` with boto3 against the moto server (creates the bucket, lists it).
fn boto3(server: &Server, script: &str) -> String {
    let program = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='testing', \
         aws_secret_access_key='testing', region_name='us-east-1')\n{script}",
        server.url()
    );
    let out = run(Command::new("python3").arg("-c").arg(program));
    out.expect_code(0);
    out.stdout
}

fn s3_env(cmd: &mut Command, server: &Server) {
    cmd.env("AWS_ENDPOINT_URL", server.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
}

fn s3_listing(server: &Server) -> Vec<String> {
    let out = boto3(
        server,
        "for page in s3.get_paginator('list_objects_v2').paginate(Bucket='mirror', Prefix='site/'):\n    \
         for o in page.get('Contents', []):\n        print(o['Key'])",
    );
    out.lines().map(str::to_owned).collect()
}

#[test]
fn s3_publish_is_incremental_after_a_delta_import_and_deletes_retired_objects() {
    let ws = workspace();
    let src = ws.path("src");
    write(&src, "keep.txt", b"unchanged\n", 0o644);
    write(&src, "change.txt", b"week 1\n", 0o644);
    write(&src, "retire.txt", b"gone next week\n", 0o644);
    carry(&ws, &src, "w1.airlock", &[]);

    let server = Server::moto(&ws.path("moto"));
    boto3(&server, "s3.create_bucket(Bucket='mirror')");
    let to = "s3://mirror/site";
    let inside = ws.path("inside.sec");
    let mut cmd = publish(&ws, to, "files", &["--key", path_arg(&inside)]);
    s3_env(&mut cmd, &server);
    let first = run(&mut cmd);
    first.expect_code(0);
    let first = json(&first);
    let uploaded = keys(&first["uploaded"]);
    for key in ["keep.txt", "change.txt", "retire.txt", ".airlock/SHA256SUMS.sig"] {
        assert!(uploaded.contains(&key.to_owned()), "{first}");
    }
    let listing = s3_listing(&server);
    assert!(listing.contains(&"site/.airlock/publish.json".to_owned()), "{listing:?}");
    assert!(listing.contains(&"site/retire.txt".to_owned()), "{listing:?}");

    // Nothing changed: nothing is sent.
    let mut cmd = publish(&ws, to, "files", &["--key", path_arg(&inside)]);
    s3_env(&mut cmd, &server);
    let again = json(run(&mut cmd).expect_code(0));
    assert_eq!(again["uploaded"]["count"], 0, "{again}");
    assert_eq!(again["unchanged"]["count"], first["uploaded"]["count"], "{again}");

    // Week 2, a delta packed from the mirror's receipt: one file changed, one added, one retired.
    run(airlock()
        .args(["mirror", "receipt"])
        .arg(ws.path("mirror"))
        .arg("--key")
        .arg(&inside)
        .arg("-o")
        .arg(ws.path("r1")))
    .expect_code(0);
    write(&src, "change.txt", b"week 2\n", 0o644);
    write(&src, "added.txt", b"new this week\n", 0o644);
    fs::remove_file(src.join("retire.txt")).unwrap();
    let since = ws.path("r1");
    let trust = ws.path("inside.pub");
    carry(&ws, &src, "w2.airlock", &["--since", path_arg(&since), "--trust", path_arg(&trust)]);

    let mut cmd = publish(&ws, to, "files", &["--key", path_arg(&inside)]);
    s3_env(&mut cmd, &server);
    let second = json(run(&mut cmd).expect_code(0));
    let uploaded = keys(&second["uploaded"]);
    let data: Vec<&String> = uploaded.iter().filter(|k| !k.starts_with(".airlock/")).collect();
    assert_eq!(data, ["added.txt", "change.txt"], "only the changed and added files are sent: {second}");
    assert!(uploaded.contains(&".airlock/SHA256SUMS.sig".to_owned()), "{second}");
    assert!(uploaded.iter().any(|k| k.starts_with(".airlock/bundles/")), "the new kept head: {second}");
    assert_eq!(keys(&second["deleted"]), ["retire.txt"], "{second}");
    let listing = s3_listing(&server);
    assert!(!listing.contains(&"site/retire.txt".to_owned()), "{listing:?}");
    assert!(listing.contains(&"site/added.txt".to_owned()), "{listing:?}");
    let body =
        boto3(&server, "print(s3.get_object(Bucket='mirror', Key='site/change.txt')['Body'].read().decode(), end='')");
    assert_eq!(body, "week 2\n");
}

#[test]
fn an_interrupted_s3_publish_resumes_without_sending_again() {
    let ws = workspace();
    let src = ws.path("src");
    write(&src, "a.txt", b"a\n", 0o644);
    write(&src, "b.txt", b"b\n", 0o644);
    // Larger than one part (8 MiB): sent as a multipart upload, completed once checked.
    let big = big_content(9 << 20);
    write(&src, "big.bin", &big, 0o644);
    carry(&ws, &src, "w1.airlock", &[]);
    let server = Server::moto(&ws.path("moto"));
    boto3(&server, "s3.create_bucket(Bucket='mirror')");
    let inside = ws.path("inside.sec");
    let mut cmd = publish(&ws, "s3://mirror/site", "files", &["--key", path_arg(&inside)]);
    s3_env(&mut cmd, &server);
    let first = json(run(&mut cmd).expect_code(0));
    assert!(keys(&first["uploaded"]).contains(&"big.bin".to_owned()), "{first}");
    let stored = boto3(
        &server,
        "import hashlib\nh = s3.head_object(Bucket='mirror', Key='site/big.bin')\nbody = s3.get_object(Bucket='mirror', \
         Key='site/big.bin')['Body'].read()\nprint(h['Metadata']['sha256'], hashlib.sha256(body).hexdigest(), end='')",
    );
    let digest = hex(&sha(&big));
    assert_eq!(stored, format!("{digest} {digest}"), "the multipart object holds the file and carries its digest");
    // As if the first run had stopped after its data objects: no state object yet.
    boto3(&server, "s3.delete_object(Bucket='mirror', Key='site/.airlock/publish.json')");
    let mut cmd = publish(&ws, "s3://mirror/site", "files", &["--key", path_arg(&inside)]);
    s3_env(&mut cmd, &server);
    let resumed = json(run(&mut cmd).expect_code(0));
    assert_eq!(resumed["uploaded"]["count"], 0, "{resumed}");
    assert!(keys(&resumed["resumed"]).contains(&"a.txt".to_owned()), "{resumed}");
    assert!(keys(&resumed["resumed"]).contains(&"big.bin".to_owned()), "{resumed}");
}

// ---------------------------------------------------------------------------------------
// debian: apt-get update && apt-get download against the published repository

/// apt with its own state, cache and sources under `root` (the machine's apt state is
/// untouched): `apt-get update`, then `apt-get download PACKAGE` into `root/dl`.
fn apt_download(root: &Path, source_line: &str, package: &str) -> PathBuf {
    require("apt-get", "a Debian system");
    for d in ["lists/partial", "cache/archives/partial", "etc/preferences.d", "dl"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("etc/sources.list"), format!("{source_line}\n")).unwrap();
    let apt = |args: &[&str], dir: &Path| {
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(dir)
            .arg("-o")
            .arg(format!("Dir::State={}", root.display()))
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", root.join("lists").display()))
            .arg("-o")
            .arg(format!("Dir::State::status={}", root.join("status").display()))
            .arg("-o")
            .arg(format!("Dir::Cache={}", root.join("cache").display()))
            .arg("-o")
            .arg(format!("Dir::Etc::SourceList={}", root.join("etc/sources.list").display()))
            .args(["-o", "Dir::Etc::SourceParts=-", "-o", "Dir::Etc::Trusted=/dev/null", "-o"])
            .arg("Dir::Etc::TrustedParts=/dev/null")
            .arg("-o")
            .arg(format!("Dir::Etc::Preferences={}", root.join("etc/preferences").display()))
            .arg("-o")
            .arg(format!("Dir::Etc::PreferencesParts={}", root.join("etc/preferences.d").display()))
            .args(["-o", "Acquire::Languages=none", "-o", "APT::Architecture=amd64", "-o", "APT::Sandbox::User=root"])
            .args(args);
        run(&mut cmd)
    };
    fs::write(root.join("status"), b"").unwrap();
    let update = apt(&["update"], root);
    update.expect_code(0);
    assert!(!update.stderr.contains("W: ") && !update.stdout.contains("Err:"), "{}\n{}", update.stdout, update.stderr);
    apt(&["download", package], &root.join("dl")).expect_code(0);
    fs::read_dir(root.join("dl")).unwrap().next().expect("apt-get download wrote nothing").unwrap().path()
}

#[test]
fn a_debian_repository_in_the_mirror_is_published_unchanged_and_apt_installs_from_it() {
    let keyring = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
    assert!(keyring.exists(), "this test needs the Debian archive keyring: apt-get install debian-archive-keyring");
    let ws = workspace();
    carry(&ws, &fixture("debian/repo"), "w1.airlock", &[]);
    let www = ws.path("www");
    let published = json(run(&mut publish(&ws, path_arg(&www), "debian", &[])).expect_code(0));
    assert_eq!(published["debian"], "kept");
    assert_eq!(
        fs::read(www.join("dists/bookworm-updates/InRelease")).unwrap(),
        fs::read(fixture("debian/repo/dists/bookworm-updates/InRelease")).unwrap()
    );
    let server = Server::nginx(&www, &ws.path("nginx"));
    let line = format!("deb [signed-by={}] {} bookworm-updates main", keyring.display(), server.url());
    let deb = apt_download(&ws.path("apt"), &line, "samba-ad-dc");
    assert_eq!(
        fs::read(&deb).unwrap(),
        fs::read(fixture("debian/repo/pool/main/s/samba/samba-ad-dc_4.17.12+dfsg-0+deb12u2_all.deb")).unwrap()
    );
}

/// An inside OpenPGP key made with gpg: the secret key file for `--openpgp-key`, and the
/// public key file for apt's `signed-by=`.
fn gpg_key(dir: &Path) -> (PathBuf, PathBuf) {
    require("gpg", "apt-get install gpg");
    let home = dir.join("gnupg");
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--batch", "--pinentry-mode", "loopback"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    gpg(&["--passphrase", "", "--quick-gen-key", "Inside Mirror <mirror@inside.example>", "ed25519", "sign", "never"]);
    let secret = dir.join("inside-openpgp.key");
    // apt reads a signed-by keyring by its extension: `.gpg` for a binary one.
    let public = dir.join("inside-openpgp.gpg");
    fs::write(&secret, gpg(&["--export-secret-keys"])).unwrap();
    fs::write(&public, gpg(&["--export"])).unwrap();
    (secret, public)
}

#[test]
fn debs_without_a_repository_get_an_inside_signed_one_that_apt_installs_from() {
    let ws = workspace();
    let src = ws.path("src");
    copy_tree(&fixture("debian/repo/pool"), &src.join("pool"));
    carry(&ws, &src, "w1.airlock", &[]);
    let (secret, public) = gpg_key(&ws.path("keys"));
    let www = ws.path("www");
    let published =
        json(run(&mut publish(&ws, path_arg(&www), "debian", &["--openpgp-key", path_arg(&secret)])).expect_code(0));
    assert_eq!(published["debian"], "generated");
    let packages = fs::read_to_string(www.join("dists/airlock/main/binary-amd64/Packages")).unwrap();
    assert!(packages.contains("Package: python3-ldb-dev\n"), "{packages}");
    assert!(packages.contains("Package: samba-ad-dc\n"), "{packages}");
    assert!(
        packages.contains("Filename: pool/main/s/samba/samba-ad-dc_4.17.12+dfsg-0+deb12u2_all.deb\n"),
        "{packages}"
    );
    let server = Server::nginx(&www, &ws.path("nginx"));
    let line = format!("deb [signed-by={}] {} airlock main", public.display(), server.url());
    let deb = apt_download(&ws.path("apt"), &line, "python3-ldb-dev");
    assert_eq!(
        fs::read(&deb).unwrap(),
        fs::read(fixture("debian/repo/pool/main/s/samba/python3-ldb-dev_2.6.2+samba4.17.12+dfsg-0+deb12u2_amd64.deb"))
            .unwrap()
    );
}

#[test]
fn debs_without_a_repository_need_an_openpgp_key() {
    let ws = workspace();
    let src = ws.path("src");
    copy_tree(&fixture("debian/repo/pool"), &src.join("pool"));
    carry(&ws, &src, "w1.airlock", &[]);
    let r = run(&mut publish(&ws, path_arg(&ws.path("www")), "debian", &[]));
    r.expect_code(2).expect_stderr("--openpgp-key");
    assert_eq!(json(&r)["error"]["kind"], "needs_key");
}
