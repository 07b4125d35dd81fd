//! Tests on real signed data nobody here wrote (fixtures/producer/openpgp/README.txt): GNU
//! hello 2.10's upstream signature (the SHA-1 binding case) and Debian's bookworm-updates
//! `InRelease` with the Debian archive keyring.

use super::*;

const HELLO_TAR: &[u8] = include_bytes!("../../../fixtures/producer/openpgp/hello_2.10.orig.tar.gz");
const HELLO_ASC: &[u8] = include_bytes!("../../../fixtures/producer/openpgp/hello_2.10.orig.tar.gz.asc");
const HELLO_KEY: &[u8] = include_bytes!("../../../fixtures/producer/openpgp/hello-signing-key.asc");
const DEBIAN_KEYRING: &[u8] = include_bytes!("../../../fixtures/producer/openpgp/debian-archive-keyring.gpg");
const IN_RELEASE: &[u8] = include_bytes!("../../../fixtures/producer/debian/repo/dists/bookworm-updates/InRelease");

/// Sami Kerola's key, which made hello 2.10's signature on 2014-11-16T12:08:37Z.
const HELLO_FPR: &str = "8ED396E37E38D471A00530D3A9553245FDE9B739";
const HELLO_SIGNED: u64 = 1_416_139_717;
/// Debian Archive Automatic Signing Key (12/bookworm): primary, its signing subkey, expiry.
const BOOKWORM_FPR: &str = "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8";
const BOOKWORM_SUBKEY: &str = "4CB50190207B4758A3F73A796ED0E7B82643E131";
const BOOKWORM_EXPIRES: u64 = 1_926_589_461;
/// Debian Archive Automatic Signing Key (13/trixie), its signing subkey.
const TRIXIE_FPR: &str = "04B54C3CDCA79751B16BC6B5225629DF75B188BD";
const TRIXIE_SUBKEY: &str = "B8E5F13176D2A7A75220028078DBA3BC47EF2265";
/// The InRelease's bookworm signature: 2026-12-02T02:10:40Z.
const IN_RELEASE_SIGNED: u64 = 1_796_177_440;
/// 2026-12-03T00:00:00Z, after every fixture was signed.
const NOW: u64 = 1_796_256_000;

fn now() -> Times {
    Times { reference: NOW, not_after: NOW }
}

fn fpr(text: &str) -> Fingerprint {
    text.parse().unwrap()
}

fn hello_keyring(allow_sha1_bindings: bool) -> Vec<(String, Keyring)> {
    vec![("hello".to_owned(), Keyring::parse(HELLO_KEY, &[], allow_sha1_bindings).unwrap())]
}

fn debian_keyring(only: &[Fingerprint]) -> Vec<(String, Keyring)> {
    vec![("debian".to_owned(), Keyring::parse(DEBIAN_KEYRING, only, false).unwrap())]
}

fn only_check(checks: Vec<PgpCheck>) -> PgpOutcome {
    assert_eq!(checks.len(), 1, "{checks:?}");
    checks.into_iter().next().unwrap().outcome
}

fn signer(outcome: &PgpOutcome) -> &PgpSigner {
    match outcome {
        PgpOutcome::Good(signer) => signer,
        other => panic!("expected a good signature, got {other:?}"),
    }
}

fn problem(outcome: &PgpOutcome) -> &PgpProblem {
    match outcome {
        PgpOutcome::Bad { problem, .. } => problem,
        other => panic!("expected a bad signature, got {other:?}"),
    }
}

#[test]
fn hello_verifies_when_its_keyring_allows_sha1_bindings() {
    let outcome = only_check(verify_detached(HELLO_ASC, HELLO_TAR, &hello_keyring(true), now()).unwrap());
    let signer = signer(&outcome);
    assert_eq!(signer.keyring, "hello");
    assert_eq!(signer.primary, fpr(HELLO_FPR));
    assert_eq!(signer.signing_key, fpr(HELLO_FPR));
    assert_eq!(signer.created, HELLO_SIGNED);
    assert_eq!(signer.hash, "SHA256");
    assert!(signer.sha1_binding, "the 2014 binding is SHA-1 only");
    assert!(signer.user_id.as_deref().is_some_and(|u| u.contains("kerolasa@iki.fi")), "{:?}", signer.user_id);
}

#[test]
fn hello_is_bad_without_sha1_bindings_and_the_problem_names_the_binding() {
    let outcome = only_check(verify_detached(HELLO_ASC, HELLO_TAR, &hello_keyring(false), now()).unwrap());
    let PgpOutcome::Bad { keyring, fingerprint, problem } = &outcome else { panic!("{outcome:?}") };
    assert_eq!((keyring.as_str(), fingerprint), ("hello", &fpr(HELLO_FPR)));
    assert_eq!(*problem, PgpProblem::Sha1Binding { key: fpr(HELLO_FPR), created: HELLO_SIGNED });
    let text = problem.to_string();
    assert!(text.contains("SHA-1 self-signatures") && text.contains("allow_sha1_bindings"), "{text}");
}

#[test]
fn one_flipped_bit_in_the_tarball_is_bad() {
    let mut tampered = HELLO_TAR.to_vec();
    tampered[HELLO_TAR.len() / 2] ^= 0x01;
    let outcome = only_check(verify_detached(HELLO_ASC, &tampered, &hello_keyring(true), now()).unwrap());
    assert!(matches!(problem(&outcome), PgpProblem::Mismatch { key, .. } if *key == fpr(HELLO_FPR)), "{outcome:?}");
}

#[test]
fn streaming_in_small_pieces_gives_the_same_verdict() {
    let signature = DetachedSignature::parse(HELLO_ASC).unwrap();
    let mut verifier = signature.verifier(&hello_keyring(true), now());
    for piece in HELLO_TAR.chunks(4093) {
        verifier.update(piece);
    }
    let streamed = verifier.finish();
    assert_eq!(streamed, verify_detached(HELLO_ASC, HELLO_TAR, &hello_keyring(true), now()).unwrap());
    assert!(matches!(streamed[0].outcome, PgpOutcome::Good(_)));
}

#[test]
fn a_verifier_dropped_before_its_data_ends_does_not_hang() {
    let signature = DetachedSignature::parse(HELLO_ASC).unwrap();
    let mut verifier = signature.verifier(&hello_keyring(true), now());
    verifier.update(&HELLO_TAR[..1000]);
    drop(verifier);
}

#[test]
fn a_key_in_no_keyring_is_unknown() {
    let outcome = only_check(verify_detached(HELLO_ASC, HELLO_TAR, &debian_keyring(&[]), now()).unwrap());
    assert_eq!(outcome, PgpOutcome::UnknownKey);
    let outcome = only_check(verify_detached(HELLO_ASC, HELLO_TAR, &[], now()).unwrap());
    assert_eq!(outcome, PgpOutcome::UnknownKey);
    let signature = DetachedSignature::parse(HELLO_ASC).unwrap();
    assert_eq!(signature.issuers(), vec!["A9553245FDE9B739".to_owned()], "the 2014 signature names a key id only");
}

#[test]
fn in_release_verifies_with_the_archive_keyring_and_yields_the_signed_text() {
    let (text, checks) = verify_clearsigned(IN_RELEASE, &debian_keyring(&[]), now()).unwrap();
    let signers: Vec<_> = checks.iter().map(|c| signer(&c.outcome)).collect();
    let keys: Vec<_> = signers.iter().map(|s| (s.primary.as_str(), s.signing_key.as_str())).collect();
    assert_eq!(keys, [(BOOKWORM_FPR, BOOKWORM_SUBKEY), (TRIXIE_FPR, TRIXIE_SUBKEY)]);
    assert_eq!(signers[0].created, IN_RELEASE_SIGNED);
    assert!(!signers[0].sha1_binding);
    assert_eq!(checks[0].issuer, BOOKWORM_SUBKEY);

    let whole = std::str::from_utf8(IN_RELEASE).unwrap();
    let body_start = whole.find("\n\n").unwrap() + 2;
    let body_end = whole.find("\n-----BEGIN PGP SIGNATURE-----").unwrap();
    assert_eq!(std::str::from_utf8(&text).unwrap(), &whole[body_start..body_end]);
    assert!(text.starts_with(b"Origin: Debian\n"));
}

#[test]
fn a_tampered_in_release_is_bad_and_text_outside_the_message_is_refused() {
    let whole = std::str::from_utf8(IN_RELEASE).unwrap();
    let tampered = whole.replacen("Suite: oldstable-updates", "Suite: stable-updates   ", 1);
    assert_ne!(tampered, whole);
    let (_, checks) = verify_clearsigned(tampered.as_bytes(), &debian_keyring(&[]), now()).unwrap();
    assert_eq!(checks.len(), 2);
    for check in &checks {
        assert!(matches!(problem(&check.outcome), PgpProblem::Mismatch { .. }), "{check:?}");
    }

    let prefixed = format!("Origin: Evil\n{whole}");
    let err = verify_clearsigned(prefixed.as_bytes(), &debian_keyring(&[]), now()).unwrap_err();
    assert_eq!(
        err,
        OpenPgpError::NotClearsigned {
            line: 1,
            problem: "text before -----BEGIN PGP SIGNED MESSAGE----- (it would not be signed)"
        }
    );
    let appended = format!("{whole}Suite: evil\n");
    assert!(matches!(verify_clearsigned(appended.as_bytes(), &[], now()), Err(OpenPgpError::NotClearsigned { .. })));
    let twice = format!("{whole}{whole}");
    assert!(matches!(verify_clearsigned(twice.as_bytes(), &[], now()), Err(OpenPgpError::NotClearsigned { .. })));
}

#[test]
fn narrowing_to_another_fingerprint_makes_the_key_unknown() {
    let (_, checks) = verify_clearsigned(IN_RELEASE, &debian_keyring(&[fpr(TRIXIE_FPR)]), now()).unwrap();
    assert_eq!(checks[0].outcome, PgpOutcome::UnknownKey);
    assert_eq!(signer(&checks[1].outcome).primary, fpr(TRIXIE_FPR));

    let err = Keyring::parse(HELLO_KEY, &[fpr(BOOKWORM_FPR)], true).unwrap_err();
    assert!(matches!(&err, OpenPgpError::NotInKeyring { present, .. } if present == HELLO_FPR), "{err}");
}

#[test]
fn a_signature_made_after_not_after_is_postdated() {
    let times = Times { reference: NOW, not_after: HELLO_SIGNED - 1 };
    let outcome = only_check(verify_detached(HELLO_ASC, HELLO_TAR, &hello_keyring(true), times).unwrap());
    assert_eq!(*problem(&outcome), PgpProblem::Postdated { created: HELLO_SIGNED, not_after: HELLO_SIGNED - 1 });
    assert!(problem(&outcome).to_string().starts_with("signed 2014-11-16T12:08:37Z, after"), "{}", problem(&outcome));

    let times = Times { reference: NOW, not_after: IN_RELEASE_SIGNED - 1 };
    let (_, checks) = verify_clearsigned(IN_RELEASE, &debian_keyring(&[]), times).unwrap();
    assert!(matches!(problem(&checks[0].outcome), PgpProblem::Postdated { .. }));
}

#[test]
fn a_key_expired_since_is_judged_when_it_signed() {
    // 2040: the bookworm key expired in 2031, after it signed this InRelease.
    let later = 2_208_988_800;
    let (_, checks) =
        verify_clearsigned(IN_RELEASE, &debian_keyring(&[]), Times { reference: later, not_after: later }).unwrap();
    let bookworm = signer(&checks[0].outcome);
    assert_eq!(bookworm.primary, fpr(BOOKWORM_FPR));
    assert_eq!(bookworm.key_expires, Some(BOOKWORM_EXPIRES));
    assert!(matches!(checks[1].outcome, PgpOutcome::Good(_)));
}

#[test]
fn garbage_keys_and_messages_are_not_signatures() {
    assert!(matches!(DetachedSignature::parse(b"not a signature"), Err(OpenPgpError::NotASignatureFile { .. })));
    assert_eq!(DetachedSignature::parse(b"").unwrap_err(), OpenPgpError::NoSignatures);
    assert!(DetachedSignature::parse(&[0xff; 64]).is_err());
    let armoured_key = DetachedSignature::parse(HELLO_KEY).unwrap_err();
    assert!(armoured_key.to_string().contains("BEGIN PGP PUBLIC KEY BLOCK"), "{armoured_key}");
    let binary_key = DetachedSignature::parse(DEBIAN_KEYRING).unwrap_err();
    assert!(matches!(binary_key, OpenPgpError::NotASignature { position: 1, .. }), "{binary_key}");
    assert!(DetachedSignature::parse(IN_RELEASE).is_err());
    let mut trailing = HELLO_ASC.to_vec();
    trailing.extend_from_slice(b"and more\n");
    assert!(DetachedSignature::parse(&trailing).is_err());
}

#[test]
fn keyrings_must_be_certificates() {
    assert!(Keyring::parse(b"", &[], false).is_err());
    assert!(Keyring::parse(b"hello", &[], false).is_err());
    assert!(Keyring::parse(HELLO_ASC, &[], false).is_err());
    let too_large = vec![0u8; KEYRING_MAX_BYTES + 1];
    assert_eq!(
        Keyring::parse(&too_large, &[], false).unwrap_err(),
        OpenPgpError::KeyringTooLarge { size: too_large.len() }
    );
}

#[test]
fn the_debian_keyring_describes_its_certificates() {
    let certs = Keyring::parse(DEBIAN_KEYRING, &[], false).unwrap().certs();
    assert_eq!(certs.len(), 9);
    let bookworm = certs.iter().find(|c| c.fingerprint == fpr(BOOKWORM_FPR)).unwrap();
    assert_eq!(bookworm.expires, Some(BOOKWORM_EXPIRES));
    assert!(!bookworm.revoked && !bookworm.needs_sha1_bindings);
    assert!(bookworm.user_ids.iter().any(|u| u.contains("(12/bookworm)")), "{:?}", bookworm.user_ids);
    assert!(certs.iter().all(|c| c.expires.is_some()), "every Debian archive key expires");

    let hello = Keyring::parse(HELLO_KEY, &[], false).unwrap().certs();
    assert_eq!(hello.len(), 1);
    assert!(hello[0].needs_sha1_bindings);
    assert_eq!(hello[0].expires, None);
}

#[test]
fn the_types_cross_threads_as_the_contract_says() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Keyring>();
    send_sync::<OpenPgpError>();
    send_sync::<PgpCheck>();
    send::<DetachedSignature>();
    send::<DetachedVerifier>();
}

#[test]
fn fingerprints_read_as_gpg_prints_them() {
    let spaced: Fingerprint = "8ed3 96e3 7e38 d471 a005  30d3 a955 3245 fde9 b739".parse().unwrap();
    assert_eq!(spaced, fpr(HELLO_FPR));
    assert_eq!(spaced.to_string(), HELLO_FPR);
    assert!("A9553245FDE9B739".parse::<Fingerprint>().is_err(), "a key id is not a fingerprint");
    assert!(HELLO_FPR.replace('8', "G").parse::<Fingerprint>().is_err());
    assert!(format!("{HELLO_FPR}{}", &HELLO_FPR[..24]).parse::<Fingerprint>().is_ok(), "64 digits: v6");
}

/// Rules no real fixture exercises (a SHA-1 data signature, keys expired or revoked), on
/// keys generated here with Sequoia.
mod generated {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use sequoia_openpgp as openpgp;

    use openpgp::cert::{CertBuilder, CertRevocationBuilder};
    use openpgp::packet::signature::SignatureBuilder;
    use openpgp::packet::Packet;
    use openpgp::serialize::Serialize as _;
    use openpgp::types::{HashAlgorithm, ReasonForRevocation, SignatureType};
    use openpgp::Cert;

    use super::*;

    /// 2010-01-01T00:00:00Z.
    const CREATED: u64 = 1_262_304_000;
    const DAY: u64 = 86_400;
    const DATA: &[u8] = b"a release tarball\n";

    fn at(t: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(t)
    }

    fn producer(validity: Option<u64>) -> Cert {
        let builder = CertBuilder::new()
            .add_userid("producer <producer@example.org>")
            .add_signing_subkey()
            .set_creation_time(at(CREATED))
            .set_validity_period(validity.map(Duration::from_secs));
        builder.generate().unwrap().0
    }

    fn revoked(cert: Cert, reason: ReasonForRevocation, when: u64) -> Cert {
        let mut primary = cert.primary_key().key().clone().parts_into_secret().unwrap().into_keypair().unwrap();
        let revocation = CertRevocationBuilder::new()
            .set_reason_for_revocation(reason, b"")
            .unwrap()
            .set_signature_creation_time(at(when))
            .unwrap()
            .build(&mut primary, &cert, None)
            .unwrap();
        cert.insert_packets(revocation).unwrap().0
    }

    fn sign(cert: &Cert, when: u64, hash: HashAlgorithm) -> Vec<u8> {
        let subkey = cert.keys().subkeys().secret().next().unwrap();
        let mut signer = subkey.key().clone().into_keypair().unwrap();
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .set_hash_algo(hash)
            .set_signature_creation_time(at(when))
            .unwrap()
            .sign_message(&mut signer, DATA)
            .unwrap();
        let mut bytes = Vec::new();
        Packet::from(sig).serialize(&mut bytes).unwrap();
        bytes
    }

    fn verify(cert: &Cert, sig: &[u8], reference: u64) -> PgpOutcome {
        let mut public = Vec::new();
        cert.serialize(&mut public).unwrap();
        let keyrings = vec![("generated".to_owned(), Keyring::parse(&public, &[], false).unwrap())];
        only_check(verify_detached(sig, DATA, &keyrings, Times { reference, not_after: reference }).unwrap())
    }

    #[test]
    fn a_good_signature_is_good() {
        let cert = producer(None);
        assert!(matches!(verify(&cert, &sign(&cert, CREATED + DAY, HashAlgorithm::SHA256), NOW), PgpOutcome::Good(_)));
    }

    #[test]
    fn a_sha1_data_signature_is_bad_even_when_the_policy_clock_predates_the_sha1_cutoff() {
        let cert = producer(None);
        // 2010: Sequoia's own SHA-1 cutoff for data signatures is 2013.
        let outcome = verify(&cert, &sign(&cert, CREATED + DAY, HashAlgorithm::SHA1), CREATED + 2 * DAY);
        assert_eq!(
            problem(&outcome).to_string(),
            "SHA-1 data signature: refused (collision attacks); ask the producer for a SHA-256 signature"
        );
    }

    #[test]
    fn a_key_expired_when_it_signed_is_bad() {
        let cert = producer(Some(DAY));
        let outcome = verify(&cert, &sign(&cert, CREATED + 2 * DAY, HashAlgorithm::SHA256), NOW);
        assert!(
            matches!(problem(&outcome), PgpProblem::KeyNotValid { created, .. } if *created == CREATED + 2 * DAY),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_signature_older_than_its_key_is_bad() {
        let cert = producer(None);
        let outcome = verify(&cert, &sign(&cert, CREATED - DAY, HashAlgorithm::SHA256), NOW);
        assert!(
            matches!(problem(&outcome), PgpProblem::KeyNotValid { .. } | PgpProblem::Mismatch { .. }),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_hard_revocation_reaches_back_and_a_soft_one_does_not() {
        let signature = |cert: &Cert| sign(cert, CREATED + DAY, HashAlgorithm::SHA256);
        let compromised = revoked(producer(None), ReasonForRevocation::KeyCompromised, CREATED + 10 * DAY);
        let outcome = verify(&compromised, &signature(&compromised), NOW);
        assert!(
            matches!(problem(&outcome), PgpProblem::KeyNotValid { reason, .. } if reason.contains("revoked")),
            "{outcome:?}"
        );

        let retired = revoked(producer(None), ReasonForRevocation::KeyRetired, CREATED + 10 * DAY);
        assert!(matches!(verify(&retired, &signature(&retired), NOW), PgpOutcome::Good(_)));
        let after_retirement = sign(&retired, CREATED + 20 * DAY, HashAlgorithm::SHA256);
        assert!(matches!(verify(&retired, &after_retirement, NOW), PgpOutcome::Bad { .. }));
    }
}
