//! `airlock sign`.

use super::*;
use airlock::sign::CosignOptions;
use airlock::verify::VerifyOptions;

#[derive(Args, Debug)]
pub(super) struct SignArgs {
    /// The bundle to co-sign (rewritten in place unless -o is given).
    pub(super) bundle: PathBuf,
    /// The secret key to sign with.
    #[arg(long, value_name = "K.sec")]
    pub(super) key: PathBuf,
    /// Write the co-signed bundle here instead of replacing BUNDLE.
    #[arg(short, long, value_name = "OUT")]
    pub(super) output: Option<PathBuf>,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub(super) force: bool,
    /// Once written, read the co-signed bundle back from the medium (bypassing the page
    /// cache) and verify it in full before it replaces anything; if it does not verify, it
    /// is removed and the bundle is left as it was.
    #[arg(long)]
    pub(super) verify_written: bool,
    #[command(flatten)]
    pub(super) secret: SecretKeyArgs,
    /// Who must have signed the bundle before you vouch for it: the same trust as `verify`
    /// (the whole bundle is verified first, and nothing is written unless it passes).
    #[command(flatten)]
    pub(super) trust: TrustArgs,
    /// No progress display.
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Print JSON to stdout (docs/JSON.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

pub(super) fn sign(a: SignArgs) -> Result<u8> {
    let policy = load_policy(&a.trust)?;
    let key = load_secret_key(&a.key, &a.secret)?;
    let options = CosignOptions {
        verify_written: a.verify_written,
        fault: super::pack::injected_fault()?,
        ..CosignOptions::new(a.output.as_deref(), overwrite(a.force))
    };
    let verify = VerifyOptions::new(&policy, now());
    let report = airlock::sign::cosign(&a.bundle, &key, &options, &verify, &progress(a.quiet || a.json))?;
    let ids: Vec<String> = report.signers.iter().map(|k| k.to_string()).collect();
    if a.json {
        let body = serde_json::json!({
            "bundle": out::path(&a.bundle),
            "output": out::path(&report.output),
            "key_id": report.key_id.to_string(),
            "added": report.added,
            "head_bytes": {"before": report.head_bytes.0, "after": report.head_bytes.1},
            "payload_bytes": report.payload_bytes,
            "signers": ids,
            "sums_signer": report.sums_signer.to_string(),
            "read_back_seconds": report.read_back.map(|t| t.as_secs_f64()),
        });
        out::document(schema::SIGN, true, body)?;
        return Ok(EXIT_OK);
    }
    if report.added {
        say!(
            "signed {} with key {}: head frame {} -> {} bytes, {} payload bytes copied unchanged",
            report.output.display(),
            report.key_id,
            report.head_bytes.0,
            report.head_bytes.1,
            report.payload_bytes
        )?;
    } else {
        say!("key {} has already signed {}; nothing to add", report.key_id, a.bundle.display())?;
        if a.output.is_some() {
            say!("copied unchanged to {}", report.output.display())?;
        }
    }
    say!("signatures by key(s) {}", ids.join(", "))?;
    if let Some(took) = report.read_back {
        say!("read back from the medium and verified in {:.2} s", took.as_secs_f64())?;
    }
    if report.sums_signer != report.key_id {
        say!(
            "the checksum list stays signed by key {}: a verifier must count that key too (a policy trusting only {} refuses this bundle)",
            report.sums_signer,
            report.key_id
        )?;
    }
    Ok(EXIT_OK)
}
