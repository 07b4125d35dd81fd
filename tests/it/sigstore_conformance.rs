//! The sigstore-conformance `bundle-verify` suite, read where it was fetched
//! (/work/shared/fixtures/sigstore-conformance, Apache-2.0; never copied into this
//! repository): every positive case verifies and matches its signer, every `_fail` case is
//! rejected (by parsing, by verification, or by not matching the signer).
//!
//! A case directory holds `bundle.sigstore.json` and optionally `artifact` (default
//! `../a.txt`), `identity`, `issuer`, `key.pub` (a managed key instead of an identity) and
//! `trusted_root.json` (default: the public-good root, as sigstore-trust-root embeds it).

use std::fs;
use std::path::{Path, PathBuf};

use airlock::producer::sigstore::{
    parse_material, verify, ArtifactDigests, Identity, InstanceOptions, ManagedKey, MaterialKind, SanMatch, Signer,
    TrustRoot,
};
use airlock::Digest;
use sha2::{Digest as _, Sha512};

const SUITE: &str = "/work/shared/fixtures/sigstore-conformance/test/assets/bundle-verify";
/// The suite at sigstore-conformance a73de49: 70 cases. A case that disappears (or a suite
/// that is not there) must fail this test, not shrink it.
const CASES: usize = 70;
const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn read_text(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Runs one case: `Ok` with what was established, `Err` with why it was rejected.
fn run_case(dir: &Path, now: u64) -> Result<(), String> {
    let bundle = fs::read(dir.join("bundle.sigstore.json")).map_err(|e| format!("no bundle: {e}"))?;
    let items = parse_material(MaterialKind::Bundle, &bundle).map_err(|e| format!("parse: {e}"))?;
    let root_json = match fs::read(dir.join("trusted_root.json")) {
        Ok(json) => json,
        Err(_) => sigstore_trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT.as_bytes().to_vec(),
    };
    let root = TrustRoot::parse(&root_json, InstanceOptions::default()).map_err(|e| format!("root: {e}"))?;
    let artifact_path =
        [dir.join("artifact"), dir.join("../a.txt")].into_iter().find(|p| p.exists()).ok_or("no artifact")?;
    let bytes = fs::read(&artifact_path).map_err(|e| e.to_string())?;
    let artifact = ArtifactDigests {
        file_name: "artifact".into(),
        sha256: Digest::of(&bytes),
        sha512: Some(Sha512::digest(&bytes).into()),
    };
    let signer = match fs::read(dir.join("key.pub")) {
        Ok(pem) => Signer::Key(ManagedKey::parse_pem(&pem).map_err(|e| format!("key: {e}"))?),
        Err(_) => Signer::Identity(Identity {
            issuer: read_text(&dir.join("issuer")).unwrap_or_else(|| DEFAULT_ISSUER.into()),
            san: Some(SanMatch::Exact(read_text(&dir.join("identity")).unwrap_or_else(|| DEFAULT_IDENTITY.into()))),
            source_repository: None,
            source_ref: None,
            github_publisher: None,
        }),
    };
    for item in &items {
        let verified = verify(item, &root, &artifact, now).map_err(|e| format!("verify: {e}"))?;
        if !signer.matches(&verified) {
            return Err(format!(
                "verified, but signed by {:?} / {:?}, not {}",
                verified.san,
                verified.issuer,
                signer.describe()
            ));
        }
    }
    Ok(())
}

fn case_dirs() -> Vec<PathBuf> {
    let suite = Path::new(SUITE);
    let entries = fs::read_dir(suite).unwrap_or_else(|e| {
        panic!(
            "the sigstore-conformance suite is not at {SUITE} ({e}); fetch sigstore/sigstore-conformance \
             and extract test/assets there"
        )
    });
    let mut dirs: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

#[test]
fn every_bundle_verify_case_is_decided_as_the_suite_says() {
    let dirs = case_dirs();
    assert_eq!(dirs.len(), CASES, "case directories under {SUITE}");
    let now = airlock::clock::system_now();
    let mut wrong = Vec::new();
    let (mut positive, mut negative) = (0, 0);
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let expect_fail = name.ends_with("_fail");
        match (run_case(dir, now), expect_fail) {
            (Ok(()), false) => positive += 1,
            (Err(_), true) => negative += 1,
            (Ok(()), true) => wrong.push(format!("{name}: accepted, must be rejected")),
            (Err(why), false) => wrong.push(format!("{name}: rejected, must verify: {why}")),
        }
    }
    assert!(wrong.is_empty(), "{} of {CASES} cases decided wrongly:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(positive + negative, CASES);
    assert!(positive >= 20 && negative >= 30, "{positive} positive, {negative} negative");
}
