//! Sigstore bundles and attestations, verified offline: cosign blob signatures, npm
//! provenance, PyPI PEP 740 attestations (converted to bundles), GitHub artifact
//! attestations, in-toto/SLSA statements in DSSE envelopes.
//!
//! The cryptographic verification is sigstore-verify's (pinned; a RustCrypto provider in
//! [`crypto`](self) supplies the primitives): the Fulcio chain at the verified signing time,
//! the SCT, the Rekor inclusion proof, signed checkpoint and SET, RFC 3161 timestamps, the
//! signature (DSSE PAE or message signature) and the log entry's consistency with the bundle.
//! What airlock adds on top, because the crate leaves it to its caller:
//! - a **verified** signing time (SET or TSA) no later than `not_after`: a producer signature
//!   cannot postdate the airlock bundle carrying it;
//! - the artifact binding of attestations by airlock's own digests: a subject must carry the
//!   artifact's SHA-256 (or SHA-512, npm); a PEP 740 attestation exactly one subject, named as
//!   the artifact file;
//! - who signed ([`Signer::matches`]): exact issuer, whole-string SAN patterns, Fulcio claims,
//!   PyPI Trusted Publishers, managed keys.
//!
//! Verification reads nothing but its arguments, except that sigstore-verify itself compares
//! log times with the system clock ("integrated time not in the future"): a clock set back
//! makes genuine recent bundles fail, which fails closed.

mod crypto;
mod identity;
mod material;
mod root;

use std::collections::BTreeMap;

use base64::Engine as _;
use sigstore_types::bundle::VerificationMaterialContent;
use sigstore_types::{ArtifactDigest, Bundle, DerPublicKey, HashAlgorithm, Statement};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, VerificationResult};

pub use identity::{GithubPublisher, Identity, ManagedKey, SanMatch, Signer, GITHUB_ISSUER};
pub use material::{material_for, parse_material, Item, MaterialKind, MAX_BUNDLES, MAX_MATERIAL_BYTES};
pub use root::{Authority, AuthorityKind, InstanceOptions, TrustRoot};

use crate::io::digest::{hex, Digest};
use material::{statement_of, ItemContent};

/// The PEP 740 "publish" predicate PyPI issues.
pub const PYPI_PUBLISH_PREDICATE: &str = "https://docs.pypi.org/attestations/publish/v1";

/// Something wrong with a trust root, an identity, a key or a material file (not with a
/// signature: that is a [`Failure`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigstoreError {
    /// The trusted_root.json could not be used.
    #[error(
        "not a usable Sigstore trusted root: {problem}; give the trusted_root.json of the instance \
         (`cosign trusted-root create` or `gh attestation trusted-root` writes one)"
    )]
    TrustRoot {
        /// What is wrong, in words.
        problem: String,
    },
    /// An identity pattern that does not compile.
    #[error("identity pattern {pattern:?} is not a valid regular expression: {problem}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// The compiler's complaint.
        problem: String,
    },
    /// A managed key that is not a PEM public key.
    #[error("not a Sigstore public key: {problem}; give the PEM `PUBLIC KEY` file (cosign.pub)")]
    KeyPem {
        /// What is wrong, in words.
        problem: String,
    },
    /// A material file over the size bound.
    #[error("Sigstore material of {size} bytes, over the {limit}-byte limit; no producer publishes files that large")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A material file that is not what its name says.
    #[error(
        "not a valid {kind} (item {position}): {problem}; it cannot be verified: fetch it again from \
         where the producer publishes it, or leave it out"
    )]
    Malformed {
        /// What the file was read as.
        kind: &'static str,
        /// 1-based line, attestation or bundle number.
        position: usize,
        /// What is wrong, in words.
        problem: String,
    },
}

/// Why one item did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// It does not hold: bad signature, chain, proof or time, wrong artifact, signed after the
    /// bundle carrying it.
    #[error("{0}")]
    Bad(String),
    /// Nothing checkable offline vouches for it (a DSSE envelope without a log proof or SET).
    #[error("not verifiable offline: {0}")]
    NotVerifiableOffline(String),
    /// Its subjects carry only SHA-512 digests and the caller gave none: compute the
    /// artifact's SHA-512 and verify again.
    #[error("its subjects carry only SHA-512 digests (npm provenance); the artifact's SHA-512 is needed")]
    NeedsSha512,
}

/// The digests airlock knows for an artifact (the manifest's SHA-256; the SHA-512 computed
/// while it streams, when an item needs it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactDigests {
    /// The artifact's file name (PEP 740 subjects are named by it).
    pub file_name: String,
    /// SHA-256 of its bytes.
    pub sha256: Digest,
    /// SHA-512 of its bytes, when computed.
    pub sha512: Option<[u8; 64]>,
}

/// What a verified item says: who signed, when (verified), and what it attests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Bundle media-type version: "0.1", "0.2", "0.3".
    pub bundle_version: String,
    /// Certificate SAN (keyless only).
    pub san: Option<String>,
    /// Certificate OIDC issuer (keyless only).
    pub issuer: Option<String>,
    /// Fulcio extensions by short name (`source_repository_uri`, `source_repository_ref`,
    /// `source_repository_digest`, `build_config_uri`, `build_signer_uri`, `run_invocation_uri`,
    /// `build_trigger`, `runner_environment`, `deployment_environment`, ...).
    pub claims: BTreeMap<String, String>,
    /// The verified signing time (Unix seconds): the Rekor SET's integrated time, else the
    /// earliest RFC 3161 timestamp.
    pub time: u64,
    /// `"Rekor SET, log <url> (log ID <hex>) index <n>"` or `"RFC 3161 timestamp by <tsa>"`.
    pub time_source: String,
    /// In-toto predicate type (attestations only).
    pub predicate_type: Option<String>,
    /// Subjects: name, `"sha256:<hex>"` (or `"sha512:<hex>"` when that is all a subject has).
    pub subjects: Vec<(String, String)>,
    /// SLSA builder id (v1 `runDetails.builder.id`, v0.2 `builder.id`).
    pub builder_id: Option<String>,
    /// PyPI provenance publisher, in words.
    pub publisher: Option<String>,
    /// Signed with a managed key rather than a Fulcio certificate.
    pub managed_key: bool,
    /// For a managed key: `sha256:<hex>` of its SubjectPublicKeyInfo DER.
    pub key_fingerprint: Option<String>,
}

/// Verifies one item offline against `root` for the artifact. The signing time must be
/// verified (SET or TSA) and <= `not_after`. DSSE subjects must contain the artifact's
/// digest; PEP 740: exactly one subject named `artifact.file_name`.
pub fn verify(item: &Item, root: &TrustRoot, artifact: &ArtifactDigests, not_after: u64) -> Result<Verified, Failure> {
    crypto::install();
    let bundle = match &item.content {
        ItemContent::Bundle(bundle) => bundle,
        ItemContent::BareEnvelope { payload_type } => {
            return Err(Failure::NotVerifiableOffline(format!(
                "item {} is a bare DSSE envelope ({payload_type}) with no transparency-log proof or SET, so \
                 nothing offline proves when or by whom it was signed; use the Sigstore bundle instead \
                 (`gh attestation download`, or the .sigstore.json the release also publishes)",
                item.position
            )))
        }
    };
    let statement = statement_of(bundle).transpose().map_err(Failure::Bad)?;
    let digest = match &statement {
        Some(statement) => bind_statement(statement, item, artifact)?,
        None => ArtifactDigest::sha256(sigstore_types::Sha256Hash::new(artifact.sha256.0)),
    };
    let (result, key_fingerprint) = verify_bundle(bundle, root, digest)?;
    let (time, time_source) = signing_time(&result, bundle, root, not_after)?;
    let certificate = result.certificate();
    Ok(Verified {
        bundle_version: bundle_version(bundle),
        san: result.identity().map(|san| san.as_str().to_owned()),
        issuer: result.issuer().map(str::to_owned),
        claims: certificate.map(|c| claims(&c.ci_claims)).unwrap_or_default(),
        time,
        time_source,
        predicate_type: statement.as_ref().map(|s| s.predicate_type.clone()),
        subjects: statement.as_ref().map(subjects).unwrap_or_default(),
        builder_id: statement.as_ref().and_then(builder_id),
        publisher: item.publisher.clone(),
        managed_key: key_fingerprint.is_some(),
        key_fingerprint,
    })
}

/// Checks the statement names the artifact and returns the digest that binds it.
fn bind_statement(statement: &Statement, item: &Item, artifact: &ArtifactDigests) -> Result<ArtifactDigest, Failure> {
    if item.pep740 || statement.predicate_type == PYPI_PUBLISH_PREDICATE {
        match statement.subject.as_slice() {
            [only] if only.name == artifact.file_name => {}
            [only] => {
                return Err(Failure::Bad(format!(
                    "the attestation is for {:?}, not for {:?}",
                    only.name, artifact.file_name
                )))
            }
            many => {
                return Err(Failure::Bad(format!(
                    "a PyPI attestation must name exactly one distribution; this one has {} subjects",
                    many.len()
                )))
            }
        }
    }
    let sha256 = sigstore_types::Sha256Hash::new(artifact.sha256.0);
    if statement.subject.iter().any(|s| s.digest.sha256 == Some(sha256)) {
        return Ok(ArtifactDigest::sha256(sha256));
    }
    let sha512_subjects = statement.subject.iter().filter_map(|s| s.digest.sha512).collect::<Vec<_>>();
    match artifact.sha512 {
        Some(ours) if sha512_subjects.iter().any(|s| *s.as_bytes() == ours) => {
            ArtifactDigest::new(HashAlgorithm::Sha2512, ours.to_vec()).map_err(|e| Failure::Bad(e.to_string()))
        }
        None if !sha512_subjects.is_empty() && item.needs_sha512() => Err(Failure::NeedsSha512),
        _ => Err(Failure::Bad(format!(
            "none of the attestation's subjects ({}) has the digest of {} (sha256:{})",
            subjects(statement).iter().map(|(name, digest)| format!("{name} {digest}")).collect::<Vec<_>>().join(", "),
            artifact.file_name,
            artifact.sha256.to_hex()
        ))),
    }
}

/// Runs sigstore-verify: a certificate bundle with no identity constraint (identity is
/// [`Signer::matches`]'s job), or a managed-key bundle with the key its log entry records
/// (the policy then pins which key). Returns the key fingerprint for a managed key.
fn verify_bundle(
    bundle: &Bundle,
    root: &TrustRoot,
    digest: ArtifactDigest,
) -> Result<(VerificationResult, Option<String>), Failure> {
    let options = root.options;
    let bad = |e: sigstore_verify::Error| Failure::Bad(e.to_string());
    if let VerificationMaterialContent::PublicKey(_) = &bundle.verification_material.content {
        let candidates = logged_public_keys(bundle);
        if candidates.is_empty() {
            return Err(Failure::Bad(
                "signed with a managed key, but no transparency-log entry records the public key".into(),
            ));
        }
        let mut last = None;
        for key in candidates {
            let mut policy = PublicKeyVerificationPolicy::new(key.clone());
            if !options.transparency_log {
                policy = policy.skip_tlog_unsafe();
            }
            match root.verifier.verify(digest.clone(), bundle, &policy) {
                Ok(result) => return Ok((result, Some(identity::key_fingerprint(&key)))),
                Err(e) => last = Some(bad(e)),
            }
        }
        return Err(last.unwrap_or_else(|| Failure::Bad("no logged key verifies the signature".into())));
    }
    let mut policy = VerificationPolicy::any_identity();
    if !options.transparency_log {
        policy = policy.skip_tlog_unsafe();
    }
    if !options.sct {
        policy = policy.skip_sct();
    }
    root.verifier.verify(digest, bundle, &policy).map(|r| (r, None)).map_err(bad)
}

/// The public keys a managed-key bundle's log entries record (hashedrekord v0.0.1: a PEM in
/// `spec.signature.publicKey.content`; dsse v0.0.1: PEMs in `spec.signatures[].verifier`;
/// Rekor v2: DER in `...verifier.publicKey.rawBytes`). Certificates are not keys and are
/// skipped. Which of these is acceptable is the policy's decision ([`Signer::Key`]); the
/// signature must verify under the one returned.
fn logged_public_keys(bundle: &Bundle) -> Vec<DerPublicKey> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut keys: Vec<DerPublicKey> = Vec::new();
    for entry in &bundle.verification_material.tlog_entries {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(entry.canonicalized_body.as_bytes()) else {
            continue;
        };
        let spec = &body["spec"];
        let pems = std::iter::once(&spec["signature"]["publicKey"]["content"])
            .chain(spec["signatures"].as_array().into_iter().flatten().map(|s| &s["verifier"]));
        for pem in pems.filter_map(|v| v.as_str()) {
            let Some(text) = b64.decode(pem).ok().and_then(|bytes| String::from_utf8(bytes).ok()) else { continue };
            if let Ok(key) = DerPublicKey::from_pem(&text) {
                keys.push(key);
            }
        }
        let v2 = [&spec["hashedRekordV002"]["signature"]["verifier"]]
            .into_iter()
            .chain(spec["dsseV002"]["signatures"].as_array().into_iter().flatten().map(|s| &s["verifier"]));
        for der in v2.filter_map(|v| v["publicKey"]["rawBytes"].as_str()) {
            if let Ok(bytes) = b64.decode(der) {
                keys.push(DerPublicKey::new(bytes));
            }
        }
    }
    keys.dedup();
    keys
}

/// The verified signing time and its source; every verified time must be <= `not_after`.
fn signing_time(
    result: &VerificationResult,
    bundle: &Bundle,
    root: &TrustRoot,
    not_after: u64,
) -> Result<(u64, String), Failure> {
    let verified: Vec<i64> = result.verified_timestamps().iter().map(|t| t.as_second()).collect();
    let Some(latest) = verified.iter().max().copied().map(root::unix) else {
        return Err(Failure::Bad(
            "no verified signing time: the bundle has neither a Rekor SET nor an RFC 3161 timestamp \
             that verifies against the trust root"
                .into(),
        ));
    };
    let set_time = result.integrated_time().map(|t| t.as_second()).filter(|t| verified.contains(t));
    let (time, source) = match set_time {
        Some(t) => (root::unix(t), set_source(bundle, root, t)),
        None => {
            let earliest = verified.iter().min().copied().map(root::unix).unwrap_or(latest);
            let tsa = root.tsa_at(earliest).unwrap_or_else(|| "a timestamp authority of the trust root".into());
            (earliest, format!("RFC 3161 timestamp by {tsa}"))
        }
    };
    if latest > not_after {
        return Err(Failure::Bad(format!(
            "signed at {} ({source}), after the bundle carrying it was created ({})",
            crate::clock::format(latest),
            crate::clock::format(not_after)
        )));
    }
    Ok((time, source))
}

fn set_source(bundle: &Bundle, root: &TrustRoot, seconds: i64) -> String {
    let entry = bundle
        .verification_material
        .tlog_entries
        .iter()
        .find(|e| e.integrated_time.map(|t| t.as_second()) == Some(seconds));
    match entry {
        Some(e) => {
            let id = e.log_id.key_id.as_bytes();
            let url = root.log_url(id).unwrap_or("an unnamed log");
            format!("Rekor SET, log {url} (log ID {}) index {}", hex(id), e.log_index.get())
        }
        None => "Rekor SET".into(),
    }
}

fn bundle_version(bundle: &Bundle) -> String {
    use sigstore_types::MediaType;
    match bundle.media_type() {
        MediaType::Bundle0_1 => "0.1",
        MediaType::Bundle0_2 => "0.2",
        _ => "0.3",
    }
    .to_owned()
}

fn claims(c: &sigstore_crypto::FulcioCiClaims) -> BTreeMap<String, String> {
    let named = [
        ("build_signer_uri", &c.build_signer_uri),
        ("build_signer_digest", &c.build_signer_digest),
        ("runner_environment", &c.runner_environment),
        ("source_repository_uri", &c.source_repository_uri),
        ("source_repository_digest", &c.source_repository_digest),
        ("source_repository_ref", &c.source_repository_ref),
        ("source_repository_identifier", &c.source_repository_identifier),
        ("source_repository_owner_uri", &c.source_repository_owner_uri),
        ("source_repository_owner_identifier", &c.source_repository_owner_identifier),
        ("build_config_uri", &c.build_config_uri),
        ("build_config_digest", &c.build_config_digest),
        ("build_trigger", &c.build_trigger),
        ("run_invocation_uri", &c.run_invocation_uri),
        ("source_repository_visibility_at_signing", &c.source_repository_visibility_at_signing),
        ("deployment_environment", &c.deployment_environment),
        ("token_subject", &c.token_subject),
    ];
    named.into_iter().filter_map(|(name, value)| Some((name.to_owned(), value.clone()?))).collect()
}

fn subjects(statement: &Statement) -> Vec<(String, String)> {
    statement
        .subject
        .iter()
        .map(|s| {
            let digest = match (&s.digest.sha256, &s.digest.sha512) {
                (Some(d), _) => format!("sha256:{}", d.to_hex()),
                (None, Some(d)) => format!("sha512:{}", d.to_hex()),
                (None, None) => "(no SHA-2 digest)".to_owned(),
            };
            (s.name.clone(), digest)
        })
        .collect()
}

/// SLSA builder id: provenance v1 `runDetails.builder.id`, v0.2 `builder.id`.
fn builder_id(statement: &Statement) -> Option<String> {
    let p = &statement.predicate;
    p.pointer("/runDetails/builder/id").or_else(|| p.pointer("/builder/id")).and_then(|v| v.as_str()).map(str::to_owned)
}

#[cfg(test)]
mod tests;
