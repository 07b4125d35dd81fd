//! `airlock import`.

use super::*;
use airlock::verify::GapPolicy;

#[derive(Args, Debug)]
pub(super) struct ImportArgs {
    /// The bundle, `-` for standard input, or volumes of a set in any order (one at a
    /// time works too: verified volumes are kept in the mirror until the set is complete).
    #[arg(required = true, value_name = "BUNDLE|VOLUME")]
    pub(super) bundles: Vec<PathBuf>,
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
    let source = airlock::verify::BundleSource::from_args(&a.bundles);
    match mirror.import(&source, &policy, &opts, &progress(a.quiet))? {
        ImportOutcome::VolumesMissing { kept, missing, parity } => {
            for k in &kept {
                say!("kept {k} in {} until the set is complete", a.mirror.display())?;
            }
            say!(
                "volume(s) still missing: {} ({parity} parity volume(s) at hand); import them (one at a time is fine) to finish",
                missing.join(", ")
            )?;
            return Ok(EXIT_ERROR);
        }
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
