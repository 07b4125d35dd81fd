//! `airlock mirror`.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum MirrorCommand {
    /// Create a mirror (prints its id).
    Init {
        /// The mirror directory (created if missing; may already hold files, which then
        /// belong to no channel and are never overwritten).
        dir: PathBuf,
    },
    /// Print the mirror's import log (and check its hash chain).
    Log {
        /// The mirror directory.
        dir: PathBuf,
        /// Print the raw JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Write a signed receipt of what the mirror holds (for `airlock pack --since` outside).
    Receipt {
        /// The mirror directory.
        dir: PathBuf,
        /// The inside's secret key (signify format) that signs the receipt.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the receipt.
        #[arg(short = 'o', long = "output", value_name = "RECEIPT")]
        output: PathBuf,
        /// Overwrite RECEIPT if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        secret: SecretKeyArgs,
    },
    /// Re-check every file against the manifests that put it there.
    ///
    /// On a mirror this process cannot write (a read-only mount, a write-blocked disk), or
    /// with --read-only, nothing is written: no lock file is created, an interrupted import
    /// is reported instead of finished, and no stat stamps are recorded.
    Verify {
        /// The mirror directory.
        dir: PathBuf,
        /// No progress display.
        #[arg(short, long)]
        quiet: bool,
        /// Write nothing to the mirror, even where it is writable (an auditor's evidence copy).
        #[arg(long)]
        read_only: bool,
    },
}

/// Opens a mirror for `import` or `mirror verify`. Built with the `fault-injection`
/// feature, `AIRLOCK_TEST_CRASH_AT=<crash point>` makes the process abort there (the crash
/// tests).
pub(super) fn open_mirror(dir: &Path) -> Result<Mirror> {
    #[cfg(feature = "fault-injection")]
    if let Some(point) = crash_point_from_env() {
        return Ok(Mirror::open_with_crash_point(dir, point)?);
    }
    Ok(Mirror::open(dir)?)
}

pub(super) fn mirror_init(dir: &Path) -> Result<u8> {
    let id = Mirror::init(dir)?;
    say!("created mirror {} with id {id}", dir.display())?;
    Ok(EXIT_OK)
}

#[cfg(feature = "fault-injection")]
fn crash_point_from_env() -> Option<airlock::mirror::CrashPoint> {
    use airlock::mirror::CrashPoint;
    let name = std::env::var("AIRLOCK_TEST_CRASH_AT").ok()?;
    let point = CrashPoint::from_name(&name);
    if point.is_none() {
        let known: Vec<&str> = CrashPoint::ALL.iter().map(|p| p.name()).collect();
        out::note(format_args!(
            "warning: AIRLOCK_TEST_CRASH_AT={name:?} is no crash point ({}); ignored",
            known.join(", ")
        ));
    }
    point
}

pub(super) fn mirror_log(dir: &Path, json: bool) -> Result<u8> {
    let state = airlock::mirror::read_log(dir)?;
    for r in &state.records {
        if json {
            out::json(airlock::render::log_json(r))?;
        } else {
            say!("{}", airlock::render::log_line(r))?;
        }
    }
    if !json {
        say!("{}", airlock::render::log_summary(&state))?;
    }
    Ok(EXIT_OK)
}

pub(super) fn mirror_receipt(dir: &Path, key: &Path, output: &Path, force: bool, secret: &SecretKeyArgs) -> Result<u8> {
    let key = load_secret_key(key, secret)?;
    let mirror = open_mirror(dir)?;
    let receipt = mirror.receipt(now())?;
    let bytes = airlock::format::receipt::sign(&receipt, &key)
        .map_err(|reason| Error::Receipt { path: output.to_owned(), reason })?;
    airlock::io::durable::write_bytes(output, 0o644, overwrite(force), &bytes)?;
    let broken: Vec<&str> = receipt.channels.iter().filter(|c| !c.intact).map(|c| c.name.as_str()).collect();
    say!(
        "wrote {}: mirror {}, {} channels, {} files ({} bytes), signed by key {}",
        output.display(),
        receipt.mirror,
        receipt.channels.len(),
        receipt.files,
        receipt.bytes,
        key.key_id()
    )?;
    if !broken.is_empty() {
        say!("not intact (damaged files left out; see `airlock mirror verify`): {}", broken.join(", "))?;
    }
    Ok(EXIT_OK)
}

pub(super) fn mirror_verify(dir: &Path, quiet: bool, read_only: bool) -> Result<u8> {
    let mirror =
        if read_only || airlock::mirror::cannot_write(dir) { Mirror::open_read_only(dir)? } else { open_mirror(dir)? };
    if let Some(lock) = mirror.read_lock() {
        say!("read-only check (nothing is written to the mirror); holding {lock}")?;
    }
    let report = mirror.audit(&progress(quiet))?;
    let code = if report.is_clean() { EXIT_OK } else { EXIT_REJECTED };
    match print_audit(&report) {
        // The verdict stands when no one reads it to the end.
        Err(Failure::StdoutClosed) => Ok(code),
        other => other.map(|()| code),
    }
}

fn print_audit(report: &airlock::mirror::AuditReport) -> Result<()> {
    for note in &report.sealed_logs {
        say!("sealed    {note}")?;
    }
    for note in &report.interrupted {
        say!("note      {note}")?;
    }
    if let Some(pending) = &report.pending_commit {
        say!("interrupted {pending}")?;
    }
    for p in &report.missing {
        say!("missing   {p}")?;
    }
    for p in &report.modified {
        say!("modified  {p}")?;
    }
    for p in &report.unknown {
        say!("unknown   {p}")?;
    }
    for p in &report.damaged {
        say!("damaged   {p}")?;
    }
    if report.is_clean() {
        say!("OK: {} files match the manifests that put them there", report.files)
    } else {
        say!(
            "FAILED: {} missing, {} modified, {} unknown, {} damaged records{}",
            report.missing.len(),
            report.modified.len(),
            report.unknown.len(),
            report.damaged.len(),
            if report.pending_commit.is_some() { ", an interrupted import" } else { "" }
        )
    }
}
