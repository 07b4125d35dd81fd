//! `airlock verify`.

use super::*;

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
    let bundle = Bundle::open(&a.bundle)?;
    let verified = bundle.verify_head_with(&policy)?;
    airlock::mirror::check_freshness(
        &verified.manifest,
        &verified.manifest_digest,
        &Default::default(),
        &ImportOptions { now: now(), ..ImportOptions::default() },
    )?;
    policy.check_age(verified.manifest.created, now(), DEFAULT_CLOCK_SKEW)?;
    let progress = progress(a.quiet);
    progress.start("verifying", verified.manifest.total_size(), verified.manifest.entries.len() as u64);
    let mut null = NullSink;
    let mut sink = ArtifactSink::new(&mut null, &policy, &verified.manifest);
    let result = bundle.read_payload(&verified, &mut sink, &progress);
    progress.finish();
    result?;
    let m = &verified.manifest;
    println!("OK: {} verified: {} files, {} bytes", a.bundle.display(), m.entries.len(), m.total_size());
    println!("channel {} sequence {}, manifest sha256 {}", m.channel, m.sequence, verified.manifest_digest);
    print_signers(&policy, &verified.trust);
    for note in sink.notes() {
        println!("artifact {note}");
    }
    Ok(EXIT_OK)
}

/// The valid signers, then every signature that did not count and why.
pub(super) fn print_signers(policy: &Policy, report: &TrustReport) {
    let label = |id: airlock::keys::KeyId| match policy.name_of_id(id) {
        Some(n) if n != id.to_string() => format!("{id} ({n})"),
        _ => id.to_string(),
    };
    let ids: Vec<String> = report.valid_signers.iter().map(|k| label(k.key_id())).collect();
    println!("signed by trusted key(s) {} (threshold {})", ids.join(", "), report.threshold);
    for (id, status) in &report.signatures {
        match status {
            SignatureStatus::Unknown => println!("ignored signature by unknown key {}", label(*id)),
            SignatureStatus::Revoked { reason } => {
                println!("ignored signature by revoked key {} ({reason})", label(*id))
            }
            _ => {}
        }
    }
}
