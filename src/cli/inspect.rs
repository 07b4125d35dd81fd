//! `airlock inspect`.

use super::*;
use airlock::render::{self, Inspection, SignatureLine};

#[derive(Args, Debug)]
pub(super) struct InspectArgs {
    /// The bundle, a volume of a set, or `-` for standard input; or a mirror's kept head
    /// (MIRROR/.airlock/bundles/<digest>, or its manifest.cbor), shown as `mirror show` does.
    pub(super) bundle: PathBuf,
    /// Print JSON to stdout (docs/JSON.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
    /// Check signatures against these public keys (without them, none are verified).
    #[arg(long, value_name = "K.pub")]
    pub(super) trust: Vec<PathBuf>,
    /// Check signatures against this trust policy: trusted, revoked or unknown, and whether
    /// the threshold is met.
    #[arg(long, value_name = "POLICY.toml", conflicts_with = "trust")]
    pub(super) policy: Option<PathBuf>,
    /// Also verify the bundle and stream its payload (not constant time) to show each
    /// producer signature's status under the policy (needs --policy or --trust).
    #[arg(long)]
    pub(super) producers: bool,
}

pub(super) fn inspect(a: InspectArgs) -> Result<u8> {
    // A kept head is no bundle (its manifest.cbor is not zstd): show it as `mirror show` does.
    if let Some((mirror, digest)) = airlock::mirror::show::kept_head_of(&a.bundle) {
        return inspect_kept(&mirror, &digest, &a);
    }
    let bundle = Bundle::open_source(&airlock::verify::BundleSource::from_args(std::slice::from_ref(&a.bundle)))?;
    let manifest = bundle.unverified_manifest()?;
    let policy = if a.trust.is_empty() && a.policy.is_none() {
        None
    } else {
        Some(load_policy(&TrustArgs { policy: a.policy.clone(), trust: a.trust.clone(), threshold: 1 })?)
    };
    let report = policy.as_ref().map(|p| bundle.evaluate_signatures(p)).transpose()?;
    let signatures: Vec<SignatureLine> = bundle
        .head()
        .signatures
        .iter()
        .map(|s| SignatureLine::new(s.key_id(), policy.as_ref(), report.as_ref()))
        .collect();
    let digest = bundle.head().manifest_digest.to_hex();
    let material = airlock::producer::material_by_name(&manifest);
    let producers = match (a.producers, &policy) {
        (false, _) => None,
        (true, None) => return Err(Failure::Usage("--producers needs --policy or --trust".into())),
        (true, Some(p)) => {
            let verified = bundle.verify(&airlock::verify::VerifyOptions::new(p, now()))?;
            Some(verified.stream_into_report(&mut NullSink, &airlock::NoProgress)?.findings)
        }
    };
    let view = Inspection {
        manifest: &manifest,
        manifest_digest: &digest,
        signatures: &signatures,
        trust: report.as_ref(),
        material: &material,
        producers: producers.as_deref(),
    };
    if a.json {
        out::document(schema::INSPECT, true, render::inspect_json(&view))?;
    } else {
        out::rendered(|out| render::inspect_text(out, &view))?;
    }
    Ok(EXIT_OK)
}
