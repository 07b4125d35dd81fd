//! `airlock import`.

use super::*;
use airlock::verify::GapPolicy;

#[derive(Args, Debug)]
pub(super) struct ImportArgs {
    /// The bundle.
    pub(super) bundle: PathBuf,
    #[command(flatten)]
    pub(super) trust: TrustArgs,
    /// The mirror directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(super) mirror: PathBuf,
    /// Accept a bundle that skips sequence numbers or does not follow the last import (logged).
    #[arg(long)]
    pub(super) allow_gap: bool,
    /// Allowance for clock error when checking expiry, in seconds.
    #[arg(long, default_value_t = DEFAULT_CLOCK_SKEW, value_name = "SECONDS")]
    pub(super) clock_skew: u64,
    /// No progress display.
    #[arg(short, long)]
    pub(super) quiet: bool,
}

pub(super) fn import(a: ImportArgs) -> Result<u8> {
    let policy = load_policy(&a.trust)?;
    let mirror = open_mirror(&a.mirror, true)?;
    let gaps = if a.allow_gap { GapPolicy::AcceptAndLog } else { GapPolicy::Refuse };
    let opts = ImportOptions { gaps, clock_skew: a.clock_skew, now: now() };
    match mirror.import(&a.bundle, &policy, &opts, &progress(a.quiet))? {
        ImportOutcome::AlreadyImported { manifest_digest } => {
            say!("already imported: manifest {manifest_digest} is in {}; nothing to do", a.mirror.display())?;
        }
        ImportOutcome::Imported { record } => {
            if let Some(b) = &record.bundle {
                say!("imported {} files ({} bytes) into {}", b.entries, b.bytes, a.mirror.display())?;
                say!("channel {} sequence {}, manifest sha256 {}", b.channel, b.sequence, b.manifest_sha256)?;
                say!("signed by trusted key(s) {}", b.signers.join(", "))?;
            }
            for o in &record.overrides {
                say!("override logged: {o}")?;
            }
            for note in &record.artifacts {
                say!("artifact {note}")?;
            }
        }
    }
    Ok(EXIT_OK)
}
