//! Interoperability of `airlock::keys` with the real OpenBSD signify (Debian package
//! `signify-openbsd`).
//!
//! These tests fail, rather than skip, when the binary is missing: a skipped interop test
//! looks like a passing one. CI installs the package.
//!
//! Passphrases reach signify on stdin. signify's `kdf()` adds `RPP_STDIN` to readpassphrase
//! when stdin is not a terminal (for `-G`, and for `-S` unless the message itself is `-`),
//! and with stdin it asks only once, even for `-G`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use airlock::keys::{self, KeyError, KeyPermissions, PublicKey, SecretKey, Signature};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const MESSAGE: &[u8] = b"airlock interop message\n\0binary bytes \xff\xfe and no final newline";

/// The signify binary: `$SIGNIFY_OPENBSD` if set, else `signify-openbsd` on `$PATH`.
/// Panics with install instructions if there is none.
fn signify() -> PathBuf {
    let found = match std::env::var_os("SIGNIFY_OPENBSD") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => {
            let path_var = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path_var)
                .map(|dir| dir.join("signify-openbsd"))
                .find(|candidate| candidate.is_file())
        }
    };
    found.unwrap_or_else(|| {
        panic!(
            "signify-openbsd not found (looked at $SIGNIFY_OPENBSD, else $PATH); these interop \
             tests need it. Run the project's test-dependency install script, or on \
             Debian/Ubuntu: apt-get install -y signify-openbsd"
        )
    })
}

/// Runs signify in `dir` with `stdin` fed to it, and returns its output whatever the status.
fn signify_output(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(signify())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signify-openbsd");
    // signify may exit without reading stdin; a broken pipe then is not our failure.
    let _ = child.stdin.take().expect("piped stdin").write_all(stdin);
    child.wait_with_output().expect("wait for signify-openbsd")
}

/// Runs signify and fails the test, showing its stderr, unless it succeeds.
fn signify_ok(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let out = signify_output(dir, args, stdin);
    assert!(
        out.status.success(),
        "signify-openbsd {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs signify and fails the test unless it fails with `expected` in its stderr.
fn signify_fails(dir: &Path, args: &[&str], stdin: &[u8], expected: &str) {
    let out = signify_output(dir, args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "signify-openbsd {args:?} unexpectedly succeeded");
    assert!(stderr.contains(expected), "signify-openbsd {args:?}: expected {expected:?} in {stderr:?}");
}

fn passphrase(p: &'static [u8]) -> impl FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError> {
    move || Ok(Zeroizing::new(p.to_vec()))
}

fn no_passphrase() -> impl FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError> {
    || panic!("an unencrypted key must not ask for a passphrase")
}

/// Writes an airlock key pair as `<dir>/k.pub` and `<dir>/k.sec`, and the test message as
/// `<dir>/msg`.
fn airlock_key_pair(dir: &Path, pass: Option<&[u8]>) -> SecretKey {
    let key = SecretKey::generate("airlock test secret key");
    keys::write_key_pair(&dir.join("k.pub"), &dir.join("k.sec"), &key, "airlock test public key", pass)
        .expect("write key pair");
    fs::write(dir.join("msg"), MESSAGE).expect("write message");
    key
}

fn read_signature(path: &Path) -> Signature {
    Signature::parse(&fs::read(path).expect("read signature")).expect("parse signature")
}

#[test]
fn airlock_unencrypted_key_works_in_signify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = airlock_key_pair(dir.path(), None);
    let sig = key.sign(MESSAGE, "verify with k.pub");
    fs::write(dir.path().join("msg.sig"), sig.to_file_string()).expect("write sig");
    signify_ok(dir.path(), &["-V", "-q", "-p", "k.pub", "-x", "msg.sig", "-m", "msg"], b"");

    // signify reads the airlock secret key too, and Ed25519 is deterministic, so its
    // signature file must be byte-identical to airlock's.
    signify_ok(dir.path(), &["-S", "-s", "k.sec", "-x", "by-signify.sig", "-m", "msg"], b"");
    let by_signify = fs::read_to_string(dir.path().join("by-signify.sig")).expect("read sig");
    assert_eq!(by_signify, sig.to_file_string());
}

#[test]
fn airlock_passphrase_key_works_in_signify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = airlock_key_pair(dir.path(), Some(b"airlock pass"));
    let sig = key.sign(MESSAGE, "verify with k.pub");
    fs::write(dir.path().join("msg.sig"), sig.to_file_string()).expect("write sig");
    signify_ok(dir.path(), &["-V", "-q", "-p", "k.pub", "-x", "msg.sig", "-m", "msg"], b"");

    // The key really is encrypted the way signify expects: the right passphrase decrypts it
    // (and gives the same deterministic signature), a wrong one does not.
    signify_ok(dir.path(), &["-S", "-s", "k.sec", "-x", "by-signify.sig", "-m", "msg"], b"airlock pass\n");
    assert_eq!(read_signature(&dir.path().join("by-signify.sig")).bytes(), sig.bytes());
    signify_fails(
        dir.path(),
        &["-S", "-s", "k.sec", "-x", "wrong.sig", "-m", "msg"],
        b"not the pass\n",
        "incorrect passphrase",
    );
}

#[test]
fn signify_unencrypted_key_works_in_airlock() {
    let dir = tempfile::tempdir().expect("tempdir");
    signify_ok(dir.path(), &["-G", "-n", "-p", "s.pub", "-s", "s.sec", "-c", "interop"], b"");
    // signify writes the secret key 0600, so the strict permission check passes.
    let secret =
        SecretKey::load(&dir.path().join("s.sec"), KeyPermissions::Strict, &mut no_passphrase()).expect("load s.sec");
    let public = PublicKey::load(&dir.path().join("s.pub")).expect("load s.pub");
    assert_eq!(secret.comment(), "interop secret key");
    assert_eq!(public.comment(), "interop public key");
    secret.check_public(&public).expect("signify's key pair matches");

    fs::write(dir.path().join("msg"), MESSAGE).expect("write message");
    let sig = secret.sign(MESSAGE, "verify with s.pub");
    fs::write(dir.path().join("msg.sig"), sig.to_file_string()).expect("write sig");
    signify_ok(dir.path(), &["-V", "-q", "-p", "s.pub", "-x", "msg.sig", "-m", "msg"], b"");

    // And a signify-made signature verifies in airlock.
    signify_ok(dir.path(), &["-S", "-s", "s.sec", "-x", "by-signify.sig", "-m", "msg"], b"");
    let by_signify = read_signature(&dir.path().join("by-signify.sig"));
    assert_eq!(by_signify.comment(), "verify with s.pub");
    public.verify(MESSAGE, &by_signify).expect("airlock verifies signify's signature");
}

#[test]
fn signify_passphrase_key_works_in_airlock() {
    let dir = tempfile::tempdir().expect("tempdir");
    // stdin is a pipe, so signify reads the passphrase from it, once.
    signify_ok(dir.path(), &["-G", "-p", "s.pub", "-s", "s.sec", "-c", "interop"], b"signify pass\n");
    let sec_path = dir.path().join("s.sec");
    let err = SecretKey::load(&sec_path, KeyPermissions::Strict, &mut passphrase(b"wrong pass"))
        .expect_err("a wrong passphrase must fail");
    assert!(matches!(err, KeyError::IncorrectPassphrase { .. }), "{err}");
    assert!(err.to_string().contains("s.sec"), "{err}");

    let secret =
        SecretKey::load(&sec_path, KeyPermissions::Strict, &mut passphrase(b"signify pass")).expect("load s.sec");
    let public = PublicKey::load(&dir.path().join("s.pub")).expect("load s.pub");
    secret.check_public(&public).expect("signify's key pair matches");

    fs::write(dir.path().join("msg"), MESSAGE).expect("write message");
    fs::write(dir.path().join("msg.sig"), secret.sign(MESSAGE, "verify with s.pub").to_file_string())
        .expect("write sig");
    signify_ok(dir.path(), &["-V", "-q", "-p", "s.pub", "-x", "msg.sig", "-m", "msg"], b"");
}

/// A checksum list in the format `signify -C` reads: `SHA256 (<name>) = <lowercase hex>\n`.
fn checksum_list(dir: &Path, names: &[&str]) -> Vec<u8> {
    let mut list = String::new();
    for name in names {
        let digest = Sha256::digest(fs::read(dir.join(name)).expect("read listed file"));
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        list.push_str(&format!("SHA256 ({name}) = {hex}\n"));
    }
    list.into_bytes()
}

#[test]
fn embedded_checksum_list_accepted_by_signify_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = airlock_key_pair(dir.path(), None);
    fs::create_dir(dir.path().join("sub")).expect("mkdir");
    fs::write(dir.path().join("a.txt"), b"first file\n").expect("write");
    fs::write(dir.path().join("sub/b.bin"), [0u8, 1, 2, 255]).expect("write");
    let list = checksum_list(dir.path(), &["a.txt", "sub/b.bin", "msg"]);
    let signed = keys::sign_embedded(&key, &list, "verify with k.pub");
    fs::write(dir.path().join("SHA256.sig"), &signed).expect("write SHA256.sig");

    let out = signify_ok(dir.path(), &["-C", "-p", "k.pub", "-x", "SHA256.sig"], b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in ["a.txt", "sub/b.bin", "msg"] {
        assert!(stdout.contains(&format!("{name}: OK")), "{stdout}");
    }

    // Sanity check that the test can fail: a changed file is caught.
    fs::write(dir.path().join("a.txt"), b"changed\n").expect("write");
    signify_fails(dir.path(), &["-C", "-p", "k.pub", "-x", "SHA256.sig"], b"", "FAIL");

    // airlock's own parser splits the same file back into signature and list.
    let (sig, body) = keys::parse_embedded(&signed).expect("parse SHA256.sig");
    assert_eq!(body, &list[..]);
    key.public_key().verify(body, &sig).expect("verify");
}

#[test]
fn signify_embedded_signature_parsed_by_airlock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = airlock_key_pair(dir.path(), None);
    signify_ok(dir.path(), &["-S", "-e", "-s", "k.sec", "-x", "msg.sig", "-m", "msg"], b"");
    let file = fs::read(dir.path().join("msg.sig")).expect("read msg.sig");
    let (sig, body) = keys::parse_embedded(&file).expect("parse embedded signature");
    assert_eq!(body, MESSAGE);
    assert_eq!(sig.key_id(), key.key_id());
    assert_eq!(sig.comment(), "verify with k.pub");
    let public = PublicKey::load(&dir.path().join("k.pub")).expect("load k.pub");
    public.verify(body, &sig).expect("verify embedded signature");
    // Same key, same message: the same bytes sign_embedded produces.
    assert_eq!(keys::sign_embedded(&key, MESSAGE, "verify with k.pub"), file);
}

#[test]
fn keynum_copied_into_a_forgery_is_rejected_by_both() {
    // An impostor signs with its own key and writes the victim's keynum into the signature:
    // the keynum is unauthenticated, so only the Ed25519 check can catch this.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = airlock_key_pair(dir.path(), None);
    let impostor = SecretKey::generate("impostor");
    let mut raw = [&b"Ed"[..], &key.key_id().0, impostor.sign(MESSAGE, "x").bytes()].concat();
    let forged_text = format!("untrusted comment: verify with k.pub\n{}\n", BASE64.encode(&raw));
    let forged = Signature::parse(forged_text.as_bytes()).expect("parse forged sig");
    assert_eq!(forged.key_id(), key.key_id());
    let err = key.public_key().verify(MESSAGE, &forged).expect_err("forgery must fail");
    assert!(matches!(err, KeyError::BadSignature { .. }), "{err}");
    fs::write(dir.path().join("msg.sig"), &forged_text).expect("write sig");
    signify_fails(
        dir.path(),
        &["-V", "-p", "k.pub", "-x", "msg.sig", "-m", "msg"],
        b"",
        "signature verification failed",
    );
    // With the impostor's own keynum, both report the wrong key before any crypto.
    raw[2..10].copy_from_slice(&impostor.key_id().0);
    let relabelled = format!("untrusted comment: verify with k.pub\n{}\n", BASE64.encode(&raw));
    let err = key
        .public_key()
        .verify(MESSAGE, &Signature::parse(relabelled.as_bytes()).expect("parse"))
        .expect_err("wrong key must fail");
    assert!(matches!(err, KeyError::WrongKey { .. }), "{err}");
    fs::write(dir.path().join("msg.sig"), &relabelled).expect("write sig");
    signify_fails(dir.path(), &["-V", "-p", "k.pub", "-x", "msg.sig", "-m", "msg"], b"", "wrong key");
}
