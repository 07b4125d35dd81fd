//! Tests on real material (fixtures/producer/sigstore/, see its README.txt): npm provenance,
//! PEP 740 attestations and PyPI provenance, against the public-good trust root.

use sha2::{Digest as _, Sha512};

use super::*;

const ROOT: &[u8] = include_bytes!("../../../fixtures/producer/sigstore/roots/public-good.json");
const NPM2_TGZ: &[u8] = include_bytes!("../../../fixtures/producer/sigstore/npm/sigstore-2.0.0.tgz");
const NPM2_BUNDLE: &[u8] = include_bytes!("../../../fixtures/producer/sigstore/npm/sigstore-2.0.0.tgz.sigstore.json");
const NPM5_TGZ: &[u8] = include_bytes!("../../../fixtures/producer/sigstore/npm/sigstore-5.0.0.tgz");
const NPM5_BUNDLE: &[u8] = include_bytes!("../../../fixtures/producer/sigstore/npm/sigstore-5.0.0.tgz.sigstore.json");
const PYPI_DIST: &[u8] = include_bytes!("../../../fixtures/producer/sigstore/pypi/pypi_attestations-0.0.19.tar.gz");
const PYPI_NAME: &str = "pypi_attestations-0.0.19.tar.gz";
const PYPI_PUBLISH: &[u8] =
    include_bytes!("../../../fixtures/producer/sigstore/pypi/pypi_attestations-0.0.19.tar.gz.publish.attestation");
const PYPI_SLSA: &[u8] =
    include_bytes!("../../../fixtures/producer/sigstore/pypi/pypi_attestations-0.0.19.tar.gz.slsa.attestation");
const PYPI_PROVENANCE: &[u8] =
    include_bytes!("../../../fixtures/producer/sigstore/pypi/pypi_attestations-0.0.19.tar.gz.provenance");
const GITLAB_DIST: &[u8] = include_bytes!("../../../fixtures/producer/sigstore/pypi/gitlab_oidc_project-0.0.3.tar.gz");
const GITLAB_PUBLISH: &[u8] =
    include_bytes!("../../../fixtures/producer/sigstore/pypi/gitlab_oidc_project-0.0.3.tar.gz.publish.attestation");
const CIRCLECI_DIST: &[u8] = include_bytes!(
    "../../../fixtures/producer/sigstore/pypi/circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
);
const CIRCLECI_PROVENANCE: &[u8] = include_bytes!(
    "../../../fixtures/producer/sigstore/pypi/circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl.provenance"
);

const SIGSTORE_JS_SAN: &str = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main";
/// Far enough ahead that no fixture postdates it.
const LATER: u64 = 4_000_000_000;

fn root() -> TrustRoot {
    TrustRoot::parse(ROOT, InstanceOptions::default()).unwrap()
}

fn digests(name: &str, bytes: &[u8], with_sha512: bool) -> ArtifactDigests {
    ArtifactDigests {
        file_name: name.to_owned(),
        sha256: Digest::of(bytes),
        sha512: with_sha512.then(|| Sha512::digest(bytes).into()),
    }
}

fn one(kind: MaterialKind, bytes: &[u8]) -> Item {
    let mut items = parse_material(kind, bytes).unwrap();
    assert_eq!(items.len(), 1);
    items.remove(0)
}

fn sigstore_js() -> Signer {
    Signer::Identity(Identity {
        issuer: GITHUB_ISSUER.into(),
        san: Some(SanMatch::Exact(SIGSTORE_JS_SAN.into())),
        source_repository: Some("https://github.com/sigstore/sigstore-js".into()),
        source_ref: Some("refs/heads/main".into()),
        github_publisher: None,
    })
}

fn publisher(repository: &str, workflow: &str, environment: Option<&str>) -> Signer {
    Signer::Identity(Identity {
        issuer: GITHUB_ISSUER.into(),
        san: None,
        source_repository: None,
        source_ref: None,
        github_publisher: Some(GithubPublisher {
            repository: repository.into(),
            workflow: workflow.into(),
            environment: environment.map(str::to_owned),
        }),
    })
}

#[test]
fn npm_provenance_v0_1_verifies_with_its_sha512() {
    let item = one(MaterialKind::Bundle, NPM2_BUNDLE);
    assert!(item.needs_sha512());
    let root = root();
    assert_eq!(verify(&item, &root, &digests("sigstore-2.0.0.tgz", NPM2_TGZ, false), LATER), Err(Failure::NeedsSha512));
    let v = verify(&item, &root, &digests("sigstore-2.0.0.tgz", NPM2_TGZ, true), LATER).unwrap();
    assert_eq!(v.bundle_version, "0.1");
    assert_eq!(v.san.as_deref(), Some(SIGSTORE_JS_SAN));
    assert_eq!(v.issuer.as_deref(), Some(GITHUB_ISSUER));
    assert_eq!(v.claims.get("source_repository_ref").map(String::as_str), Some("refs/heads/main"));
    assert_eq!(v.predicate_type.as_deref(), Some("https://slsa.dev/provenance/v1"));
    assert_eq!(v.subjects.len(), 1);
    assert_eq!(v.subjects[0].0, "pkg:npm/sigstore@2.0.0");
    assert_eq!(v.subjects[0].1, format!("sha512:{}", hex(&Sha512::digest(NPM2_TGZ))));
    assert_eq!(v.builder_id.as_deref(), Some("https://github.com/actions/runner/github-hosted"));
    // Signed on 2023-08-18, inside the certificate's ten minutes.
    assert!((1_692_374_700..1_692_375_400).contains(&v.time), "{}", v.time);
    assert!(v.time_source.starts_with("Rekor SET, log https://rekor.sigstore.dev"), "{}", v.time_source);
    assert!(!v.managed_key);
    assert!(sigstore_js().matches(&v));
}

#[test]
fn npm_provenance_v0_3_verifies_with_its_sha512() {
    let item = one(MaterialKind::Bundle, NPM5_BUNDLE);
    assert!(item.needs_sha512());
    let v = verify(&item, &root(), &digests("sigstore-5.0.0.tgz", NPM5_TGZ, true), LATER).unwrap();
    assert_eq!(v.bundle_version, "0.3");
    assert_eq!(v.subjects[0].0, "pkg:npm/sigstore@5.0.0");
    assert!(sigstore_js().matches(&v));
}

#[test]
fn the_wrong_artifact_is_bad() {
    let item = one(MaterialKind::Bundle, NPM2_BUNDLE);
    let err = verify(&item, &root(), &digests("sigstore-2.0.0.tgz", NPM5_TGZ, true), LATER).unwrap_err();
    assert!(matches!(&err, Failure::Bad(m) if m.contains("none of the attestation's subjects")), "{err}");
}

#[test]
fn another_identity_verifies_but_does_not_match() {
    let v = verify(&one(MaterialKind::Bundle, NPM5_BUNDLE), &root(), &digests("s.tgz", NPM5_TGZ, true), LATER).unwrap();
    let with = |f: &dyn Fn(&mut Identity)| {
        let Signer::Identity(mut identity) = sigstore_js() else { unreachable!() };
        f(&mut identity);
        Signer::Identity(identity)
    };
    assert!(!with(&|i| i.san = Some(SanMatch::Exact(SIGSTORE_JS_SAN.replace("main", "dev")))).matches(&v));
    assert!(!with(&|i| i.issuer = "https://gitlab.com".into()).matches(&v));
    assert!(!with(&|i| i.source_repository = Some("https://github.com/sigstore/sigstore-go".into())).matches(&v));
    assert!(!with(&|i| i.source_ref = Some("refs/heads/release".into())).matches(&v));
    // An identity that pins nothing but the issuer never matches.
    assert!(!with(&|i| {
        i.san = None;
        i.source_repository = None;
        i.source_ref = None;
    })
    .matches(&v));
}

#[test]
fn a_pattern_is_anchored_at_both_ends() {
    let v = verify(&one(MaterialKind::Bundle, NPM5_BUNDLE), &root(), &digests("s.tgz", NPM5_TGZ, true), LATER).unwrap();
    let by_pattern = |p: &str| {
        Signer::Identity(Identity {
            issuer: GITHUB_ISSUER.into(),
            san: Some(SanMatch::pattern(p).unwrap()),
            source_repository: None,
            source_ref: None,
            github_publisher: None,
        })
    };
    // Looks like a prefix match, is a whole-string match: the real SAN is longer.
    assert!(!by_pattern(r"https://github\.com/sigstore/sigstore-js/").matches(&v));
    assert!(!by_pattern(r"\.github/workflows/release\.yml@refs/heads/main").matches(&v));
    assert!(by_pattern(r"https://github\.com/sigstore/sigstore-js/\.github/workflows/release\.yml@refs/heads/.*")
        .matches(&v));
}

#[test]
fn a_signature_after_not_after_is_bad() {
    let item = one(MaterialKind::Bundle, NPM2_BUNDLE);
    let artifact = digests("sigstore-2.0.0.tgz", NPM2_TGZ, true);
    let v = verify(&item, &root(), &artifact, LATER).unwrap();
    assert!(verify(&item, &root(), &artifact, v.time).is_ok());
    let err = verify(&item, &root(), &artifact, v.time - 1).unwrap_err();
    assert!(matches!(&err, Failure::Bad(m) if m.contains("after the bundle carrying it was created")), "{err}");
}

#[test]
fn pep740_github_publisher_verifies_and_another_workflow_does_not_match() {
    let root = root();
    let artifact = digests(PYPI_NAME, PYPI_DIST, false);
    let v = verify(&one(MaterialKind::Pep740, PYPI_PUBLISH), &root, &artifact, LATER).unwrap();
    assert_eq!(v.predicate_type.as_deref(), Some(PYPI_PUBLISH_PREDICATE));
    assert_eq!(v.subjects, vec![(PYPI_NAME.to_owned(), format!("sha256:{}", artifact.sha256.to_hex()))]);
    assert!(publisher("trailofbits/pypi-attestations", "release.yml", None).matches(&v));
    assert!(publisher("trailofbits/pypi-attestations", "release.yml", Some("")).matches(&v));
    assert!(!publisher("trailofbits/pypi-attestations", "other.yml", None).matches(&v));
    assert!(!publisher("trailofbits/pypi-attestations", "release", None).matches(&v));
    assert!(!publisher("trailofbits/pypi", "release.yml", None).matches(&v));
    // The signing run declared no deployment environment, so one that requires it fails.
    assert!(!publisher("trailofbits/pypi-attestations", "release.yml", Some("pypi")).matches(&v));

    let slsa = verify(&one(MaterialKind::Pep740, PYPI_SLSA), &root, &artifact, LATER).unwrap();
    assert_eq!(slsa.predicate_type.as_deref(), Some("https://slsa.dev/provenance/v1"));
    assert!(slsa.builder_id.is_some());
    assert!(publisher("trailofbits/pypi-attestations", "release.yml", None).matches(&slsa));
}

#[test]
fn pypi_provenance_reports_its_publisher() {
    let item = one(MaterialKind::PypiProvenance, PYPI_PROVENANCE);
    let v = verify(&item, &root(), &digests(PYPI_NAME, PYPI_DIST, false), LATER).unwrap();
    assert_eq!(v.publisher.as_deref(), Some("GitHub, repository trailofbits/pypi-attestations, workflow release.yml"));
    assert!(publisher("trailofbits/pypi-attestations", "release.yml", None).matches(&v));
}

#[test]
fn pep740_for_another_file_name_is_bad() {
    let item = one(MaterialKind::Pep740, PYPI_PUBLISH);
    let err = verify(&item, &root(), &digests("pypi_attestations-0.0.20.tar.gz", PYPI_DIST, false), LATER).unwrap_err();
    assert!(matches!(&err, Failure::Bad(m) if m.contains("not for \"pypi_attestations-0.0.20.tar.gz\"")), "{err}");
    let err = verify(&item, &root(), &digests(PYPI_NAME, GITLAB_DIST, false), LATER).unwrap_err();
    assert!(matches!(err, Failure::Bad(_)));
}

#[test]
fn gitlab_and_circleci_publishers_verify() {
    let exact = |issuer: &str, san: &str| {
        Signer::Identity(Identity {
            issuer: issuer.into(),
            san: Some(SanMatch::Exact(san.into())),
            source_repository: None,
            source_ref: None,
            github_publisher: None,
        })
    };
    let gitlab = verify(
        &one(MaterialKind::Pep740, GITLAB_PUBLISH),
        &root(),
        &digests("gitlab_oidc_project-0.0.3.tar.gz", GITLAB_DIST, false),
        LATER,
    )
    .unwrap();
    assert!(exact(
        "https://gitlab.com",
        "https://gitlab.com/facutuesca/gitlab-oidc-project//.gitlab-ci.yml@refs/heads/main"
    )
    .matches(&gitlab));
    let name = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl";
    let circleci = verify(
        &one(MaterialKind::PypiProvenance, CIRCLECI_PROVENANCE),
        &root(),
        &digests(name, CIRCLECI_DIST, false),
        LATER,
    )
    .unwrap();
    assert_eq!(circleci.issuer.as_deref(), Some("https://oidc.circleci.com"));
    assert!(circleci.publisher.as_deref().is_some_and(|p| p.starts_with("CircleCI")));
}

/// The bare DSSE envelope of a real bundle, as slsa-github-generator writes `.intoto.jsonl`.
fn bare_envelope_line() -> String {
    let bundle: serde_json::Value = serde_json::from_slice(NPM5_BUNDLE).unwrap();
    serde_json::to_string(&bundle["dsseEnvelope"]).unwrap()
}

#[test]
fn an_intoto_line_without_proof_is_not_verifiable_offline() {
    let text = format!("{}\n", bare_envelope_line());
    let item = one(MaterialKind::IntotoJsonl, text.as_bytes());
    let err = verify(&item, &root(), &digests("sigstore-5.0.0.tgz", NPM5_TGZ, true), LATER).unwrap_err();
    assert!(matches!(err, Failure::NotVerifiableOffline(_)), "{err}");
}

#[test]
fn an_intoto_line_holding_a_bundle_verifies() {
    let bundle: serde_json::Value = serde_json::from_slice(NPM5_BUNDLE).unwrap();
    let text = format!("{}\n{}\n", serde_json::to_string(&bundle).unwrap(), bare_envelope_line());
    let items = parse_material(MaterialKind::IntotoJsonl, text.as_bytes()).unwrap();
    assert_eq!(items.len(), 2);
    let artifact = digests("sigstore-5.0.0.tgz", NPM5_TGZ, true);
    assert!(verify(&items[0], &root(), &artifact, LATER).is_ok());
    assert!(matches!(verify(&items[1], &root(), &artifact, LATER), Err(Failure::NotVerifiableOffline(_))));
}

#[test]
fn malformed_material_is_an_error() {
    assert!(parse_material(MaterialKind::Bundle, b"{\"mediaType\": ").is_err());
    assert!(parse_material(MaterialKind::Pep740, &NPM5_BUNDLE[..NPM5_BUNDLE.len() / 2]).is_err());
    // A bundle is not a PEP 740 attestation, nor provenance.
    assert!(parse_material(MaterialKind::Pep740, NPM5_BUNDLE).is_err());
    assert!(parse_material(MaterialKind::PypiProvenance, PYPI_PUBLISH).is_err());
}

#[test]
fn trust_root_lists_its_authorities() {
    let authorities = root().authorities();
    for kind in [AuthorityKind::Fulcio, AuthorityKind::Rekor, AuthorityKind::CtLog, AuthorityKind::Tsa] {
        assert!(authorities.iter().any(|a| a.kind == kind), "{kind} missing from {authorities:?}");
    }
    let rekor = authorities.iter().find(|a| a.name.starts_with("https://rekor.sigstore.dev")).unwrap();
    assert_eq!(rekor.valid_from, Some(1_610_452_407)); // 2021-01-12T11:53:27Z
    assert!(TrustRoot::parse(b"{}", InstanceOptions::default()).is_err());
    let err = TrustRoot::parse(b"not json", InstanceOptions::default()).unwrap_err();
    assert!(err.to_string().contains("trusted_root.json"), "{err}");
}

#[test]
fn describe_says_who() {
    assert_eq!(
        publisher("o/r", "release.yml", Some("pypi")).describe(),
        "Sigstore identity: issuer https://token.actions.githubusercontent.com, GitHub Trusted Publisher o/r workflow release.yml, environment pypi"
    );
    assert!(sigstore_js().describe().contains(&format!("SAN {SIGSTORE_JS_SAN}")));
}

/// The types cross threads: verification runs on import's worker threads.
#[test]
fn types_are_send_and_sync_where_the_importer_needs_it() {
    fn send<T: Send + 'static>() {}
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<TrustRoot>();
    send_sync::<SigstoreError>();
    send_sync::<Failure>();
    send_sync::<Signer>();
    send::<Item>();
    send::<Verified>();
}
