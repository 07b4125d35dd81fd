//! `airlock verify`.

use super::*;
use airlock::verify::VerifyOptions;

#[derive(Args, Debug)]
pub(super) struct VerifyArgs {
    /// The bundle.
    pub(super) bundle: PathBuf,
    #[command(flatten)]
    pub(super) trust: TrustArgs,
    /// No progress display.
    #[arg(short, long)]
    pub(super) quiet: bool,
}

pub(super) fn verify(a: VerifyArgs) -> Result<u8> {
    let policy = load_policy(&a.trust)?;
    let verified = Bundle::open(&a.bundle)?.verify(&VerifyOptions::new(&policy, now()))?;
    let manifest = verified.manifest().clone();
    let (digest, trust) = (verified.manifest_digest(), verified.trust().clone());
    let progress = progress(a.quiet);
    progress.start("verifying", manifest.total_size(), manifest.entries.len() as u64);
    let result = verified.stream_into(&mut NullSink, &progress);
    progress.finish();
    let notes = result?;
    say!("OK: {} verified: {} files, {} bytes", a.bundle.display(), manifest.entries.len(), manifest.total_size())?;
    say!("channel {} sequence {}, manifest sha256 {}", manifest.channel, manifest.sequence, digest)?;
    print_signers(&policy, &trust)?;
    for note in notes {
        say!("artifact {note}")?;
    }
    Ok(EXIT_OK)
}

/// The valid signers, then every signature that did not count and why.
pub(super) fn print_signers(policy: &Policy, report: &TrustReport) -> Result<()> {
    let label = |id: airlock::keys::KeyId| match policy.name_of_id(id) {
        Some(n) if n != id.to_string() => format!("{id} ({n})"),
        _ => id.to_string(),
    };
    let ids: Vec<String> = report.valid_signers.iter().map(|k| label(k.key_id())).collect();
    say!("signed by trusted key(s) {} (threshold {})", ids.join(", "), report.threshold)?;
    for (id, status) in &report.signatures {
        match status {
            SignatureStatus::Unknown => say!("ignored signature by unknown key {}", label(*id))?,
            SignatureStatus::Revoked { reason } => say!("ignored signature by revoked key {} ({reason})", label(*id))?,
            _ => {}
        }
    }
    Ok(())
}
