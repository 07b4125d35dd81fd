//! `airlock mirror`.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum MirrorCommand {
    /// Print the mirror's import log (and check its hash chain).
    Log {
        /// The mirror directory.
        dir: PathBuf,
        /// Print the raw JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Re-check every file against the manifests that put it there.
    Verify {
        /// The mirror directory.
        dir: PathBuf,
        /// No progress display.
        #[arg(short, long)]
        quiet: bool,
    },
}

/// Opens a mirror for `import` or `mirror verify`. Built with the `fault-injection`
/// feature, `AIRLOCK_TEST_CRASH_AT=<crash point>` makes the process abort there (the crash
/// tests).
pub(super) fn open_mirror(dir: &Path, create: bool) -> Result<Mirror> {
    #[cfg(feature = "fault-injection")]
    if let Some(point) = crash_point_from_env() {
        return Ok(Mirror::open_with_crash_point(dir, create, point)?);
    }
    Ok(Mirror::open(dir, create)?)
}

#[cfg(feature = "fault-injection")]
fn crash_point_from_env() -> Option<airlock::mirror::CrashPoint> {
    use airlock::mirror::CrashPoint;
    let name = std::env::var("AIRLOCK_TEST_CRASH_AT").ok()?;
    let point = CrashPoint::from_name(&name);
    if point.is_none() {
        let known: Vec<&str> = CrashPoint::ALL.iter().map(|p| p.name()).collect();
        eprintln!("warning: AIRLOCK_TEST_CRASH_AT={name:?} is no crash point ({}); ignored", known.join(", "));
    }
    point
}

pub(super) fn mirror_log(dir: &Path, json: bool) -> Result<u8> {
    let state = airlock::mirror::read_log(dir)?;
    for r in &state.records {
        if json {
            let line = serde_json::to_string(r)
                .map_err(|e| Error::Internal(format!("a log record does not serialise: {e}")))?;
            println!("{line}");
            continue;
        }
        let mut line = format!("{}  {:<9}", clock::format(r.time), r.event);
        if let Some(b) = &r.bundle {
            line.push_str(&format!(
                " channel {} seq {} created {} manifest {} signers {} ({} files, {} bytes)",
                b.channel,
                b.sequence,
                clock::format(b.created),
                // Only an `imported` record's digest is checked to be hex when the log is read.
                b.manifest_sha256.get(..16).unwrap_or(&b.manifest_sha256),
                b.signers.join(","),
                b.entries,
                b.bytes
            ));
        }
        if let Some(s) = &r.source {
            line.push_str(&format!(" from {s}"));
        }
        for o in &r.overrides {
            line.push_str(&format!(" [override: {o}]"));
        }
        if let Some(reason) = &r.reason {
            line.push_str(&format!(": {reason}"));
        }
        println!("{line}");
    }
    if !json {
        println!("log: {} records, hash chain intact (head {})", state.records.len(), &state.head[..16]);
    }
    Ok(EXIT_OK)
}

pub(super) fn mirror_verify(dir: &Path, quiet: bool) -> Result<u8> {
    let mirror = open_mirror(dir, false)?;
    let report = mirror.audit(&progress(quiet))?;
    for p in &report.missing {
        println!("missing   {p}");
    }
    for p in &report.modified {
        println!("modified  {p}");
    }
    for p in &report.unknown {
        println!("unknown   {p}");
    }
    for p in &report.damaged {
        println!("damaged   {p}");
    }
    if report.is_clean() {
        println!("OK: {} files match the manifests that put them there", report.files);
        Ok(EXIT_OK)
    } else {
        println!(
            "FAILED: {} missing, {} modified, {} unknown, {} damaged records",
            report.missing.len(),
            report.modified.len(),
            report.unknown.len(),
            report.damaged.len()
        );
        Ok(EXIT_REJECTED)
    }
}
