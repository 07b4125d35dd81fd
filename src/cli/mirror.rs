//! `airlock mirror`.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum MirrorCommand {
    /// Create a mirror (prints its id).
    Init {
        /// The mirror directory (created if missing; may already hold files, which then
        /// belong to no channel and are never overwritten).
        dir: PathBuf,
        /// Print JSON to stdout (docs/JSON.md) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the mirror's import log (and check its hash chain).
    Log {
        /// The mirror directory.
        dir: PathBuf,
        /// Print JSON Lines to stdout (docs/JSON.md): one line per record, per break, and a
        /// summary (the raw records are the log file itself, .airlock/log).
        #[arg(long)]
        json: bool,
    },
    /// Seal a damaged import log aside and start a new chain anchored to it.
    ///
    /// The damaged log is kept, never deleted: copied to .airlock/sealed/<sha256>/log (with
    /// its anchor). The new log's first record (`recovered`) names it by that SHA-256, says
    /// why, and restates the imports the mirror holds (one per kept head), so rollback
    /// protection carries on. Refused when the log is intact.
    RecoverLog {
        /// The mirror directory.
        dir: PathBuf,
        /// Why (recorded in the new log's first record): who found what, and when.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Print JSON to stdout (docs/JSON.md) instead of text.
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
        /// Print JSON to stdout (docs/JSON.md) instead of text.
        #[arg(long)]
        json: bool,
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
        /// Print JSON to stdout (docs/JSON.md) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a past import from what the mirror kept of it (manifest, signers, entries), or
    /// list every kept import; writes nothing, so it works on a read-only mirror.
    Show(MirrorShowArgs),
    /// Publish the verified state to a directory or an S3-compatible store, for pip, apt
    /// or plain downloads (docs/PUBLISH.md).
    ///
    /// Only what `mirror verify` accepts is published: a missing, modified or unknown file
    /// refuses the whole publish (exit 1) and the target is left as it was. Publishing is
    /// incremental (objects compared by key, size and SHA-256), resumable, and ordered so a
    /// client never sees an index naming an object not yet there.
    Publish(super::mirror_publish::PublishArgs),
}

impl MirrorCommand {
    /// The schema of the JSON the subcommand prints, when it was given `--json`.
    pub(super) fn json_schema(&self) -> Option<&'static str> {
        let (json, name) = match self {
            MirrorCommand::Init { json, .. } => (json, schema::MIRROR_INIT),
            MirrorCommand::Log { json, .. } => (json, schema::MIRROR_LOG),
            MirrorCommand::RecoverLog { json, .. } => (json, schema::MIRROR_RECOVER_LOG),
            MirrorCommand::Receipt { json, .. } => (json, schema::MIRROR_RECEIPT),
            MirrorCommand::Verify { json, .. } => (json, schema::MIRROR_VERIFY),
            MirrorCommand::Show(a) => (&a.json, schema::MIRROR_SHOW),
            // Prints its own documents, failures included (with the refused files): exactly one.
            MirrorCommand::Publish(_) => return None,
        };
        json.then_some(name)
    }
}

/// `airlock mirror SUBCOMMAND`.
pub(super) fn mirror(command: MirrorCommand) -> Result<u8> {
    match command {
        MirrorCommand::Init { dir, json } => mirror_init(&dir, json),
        MirrorCommand::Log { dir, json } => mirror_log(&dir, json),
        MirrorCommand::RecoverLog { dir, reason, json } => mirror_recover_log(&dir, &reason, json),
        MirrorCommand::Receipt { dir, key, output, force, secret, json } => {
            mirror_receipt(&dir, &key, &output, force, &secret, json)
        }
        MirrorCommand::Verify { dir, quiet, read_only, json } => mirror_verify(&dir, quiet, read_only, json),
        MirrorCommand::Show(a) => mirror_show(a),
        MirrorCommand::Publish(a) => mirror_publish(a),
    }
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

pub(super) fn mirror_init(dir: &Path, json: bool) -> Result<u8> {
    let id = Mirror::init(dir)?;
    if json {
        out::document(
            schema::MIRROR_INIT,
            true,
            serde_json::json!({"mirror": out::path(dir), "mirror_id": id.to_hex()}),
        )?;
    } else {
        say!("created mirror {} with id {id}", dir.display())?;
    }
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

/// `mirror log`: every record that parses, and where the chain breaks, if it does (exit 1:
/// the log is evidence, and imports stay refused until `mirror recover-log`).
pub(super) fn mirror_log(dir: &Path, json: bool) -> Result<u8> {
    let scan = airlock::mirror::scan_log(dir)?;
    if json {
        return mirror_log_json(&scan);
    }
    for (_, r) in &scan.records {
        say!("{}", airlock::render::log_line(r))?;
        say_recovery(r)?;
    }
    if scan.breaks.is_empty() {
        say!("{}", airlock::render::log_summary(&scan.state))?;
        return Ok(EXIT_OK);
    }
    for b in &scan.breaks {
        say!("BROKEN  {b}")?;
    }
    say!(
        "log: {} lines, {} records readable; the hash chain is broken ({} problems, the first: {}). Imports are \
         refused until an operator runs `airlock mirror recover-log {} --reason TEXT`, which seals this log aside \
         and starts a new chain anchored to it",
        scan.lines,
        scan.records.len(),
        scan.breaks.len(),
        scan.breaks[0],
        dir.display()
    )?;
    Ok(EXIT_REJECTED)
}

/// `mirror log --json`: JSON Lines, one per record (ok), per break (not ok), then the
/// summary (ok when the chain is intact); a broken chain also gets its line on stderr.
fn mirror_log_json(scan: &airlock::mirror::LogScan) -> Result<u8> {
    use airlock::render;
    for (line, r) in &scan.records {
        out::document(schema::MIRROR_LOG, true, render::log_record_json(*line, r))?;
    }
    for b in &scan.breaks {
        out::note(format_args!("airlock: log breaks at {b}"));
        out::document(schema::MIRROR_LOG, false, render::log_break_json(b))?;
    }
    let intact = scan.breaks.is_empty();
    out::document(schema::MIRROR_LOG, intact, render::log_scan_summary_json(scan))?;
    Ok(if intact { EXIT_OK } else { EXIT_REJECTED })
}

/// For a `recovered` record: the log it sealed and what the new chain carries on from.
fn say_recovery(r: &airlock::mirror::LogRecord) -> Result<()> {
    let Some(rec) = &r.recovery else { return Ok(()) };
    say!("        sealed .airlock/{} ({} lines), which broke at {}", rec.sealed, rec.lines, rec.broken)?;
    say!("        restates {} imports the mirror holds", rec.restated.len())?;
    if !rec.set_aside.is_empty() {
        say!("        kept heads that could not be used, moved beside the sealed log: {}", rec.set_aside.join(", "))?;
    }
    Ok(())
}

/// `mirror recover-log`.
pub(super) fn mirror_recover_log(dir: &Path, reason: &str, json: bool) -> Result<u8> {
    let recovered = Mirror::recover_log(dir, reason, now())?;
    if json {
        let body = serde_json::json!({
            "mirror": out::path(dir),
            "sealed": out::path(&recovered.sealed.join("log")),
            "sealed_sha256": recovered.digest.to_hex(),
            "record": airlock::render::log_record_json(1, &recovered.record),
        });
        out::document(schema::MIRROR_RECOVER_LOG, true, body)?;
        return Ok(EXIT_OK);
    }
    say!("sealed the damaged log as {} (SHA-256 {})", recovered.sealed.join("log").display(), recovered.digest)?;
    let restated = recovered.record.recovery.as_ref().map_or(0, |r| r.restated.len());
    say!("started a new log: its first record (recovered) anchors to the sealed log and restates {restated} imports")?;
    say_recovery(&recovered.record)?;
    Ok(EXIT_OK)
}

pub(super) fn mirror_receipt(
    dir: &Path,
    key: &Path,
    output: &Path,
    force: bool,
    secret: &SecretKeyArgs,
    json: bool,
) -> Result<u8> {
    let key = load_secret_key(key, secret)?;
    let mirror = open_mirror(dir)?;
    let receipt = mirror.receipt(now())?;
    let bytes = airlock::format::receipt::sign(&receipt, &key)
        .map_err(|reason| Error::Receipt { path: output.to_owned(), reason })?;
    airlock::io::durable::write_bytes(output, 0o644, overwrite(force), &bytes)?;
    let broken: Vec<&str> = receipt.channels.iter().filter(|c| !c.intact).map(|c| c.name.as_str()).collect();
    if json {
        let body = serde_json::json!({
            "receipt": out::path(output),
            "mirror": receipt.mirror.to_hex(),
            "created": airlock::render::time(receipt.created),
            "channels": receipt.channels.len(),
            "files": receipt.files,
            "bytes": receipt.bytes,
            "key_id": key.key_id().to_string(),
            "not_intact": broken,
        });
        out::document(schema::MIRROR_RECEIPT, true, body)?;
        return Ok(EXIT_OK);
    }
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

pub(super) fn mirror_verify(dir: &Path, quiet: bool, read_only: bool, json: bool) -> Result<u8> {
    let mirror =
        if read_only || airlock::mirror::cannot_write(dir) { Mirror::open_read_only(dir)? } else { open_mirror(dir)? };
    if let (Some(lock), false) = (mirror.read_lock(), json) {
        say!("read-only check (nothing is written to the mirror); holding {lock}")?;
    }
    let report = mirror.audit(&progress(quiet || json))?;
    let code = if report.is_clean() { EXIT_OK } else { EXIT_REJECTED };
    if json {
        out::document(
            schema::MIRROR_VERIFY,
            report.is_clean(),
            audit_json(dir, mirror.read_lock().is_some(), &report),
        )?;
        return Ok(code);
    }
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

/// `mirror verify --json`'s body (docs/JSON.md).
fn audit_json(dir: &Path, read_only: bool, report: &airlock::mirror::AuditReport) -> serde_json::Value {
    serde_json::json!({
        "mirror": out::path(dir),
        "read_only": read_only,
        "files": report.files,
        "missing": report.missing,
        "modified": report.modified.iter().map(modified_json).collect::<Vec<_>>(),
        "unknown": report.unknown,
        "damaged": report.damaged.len(),
        "interrupted_import": report.pending_commit.is_some(),
        "sealed_logs": report.sealed_logs.len(),
        "messages": report.damaged.iter()
            .chain(&report.interrupted)
            .chain(&report.pending_commit)
            .chain(&report.sealed_logs)
            .collect::<Vec<_>>(),
    })
}

/// A modified file as JSON: `path`, `difference` (`not_a_file`, `size`, `mode`, `sha256`)
/// and, but for `not_a_file`, the `found` and `recorded` values (modes as octal strings).
fn modified_json(m: &airlock::mirror::Modified) -> serde_json::Value {
    use airlock::mirror::Difference;
    let (found, recorded) = match &m.difference {
        Difference::Size { found, recorded } => ((*found).into(), (*recorded).into()),
        Difference::Mode { found, recorded } => (format!("{found:o}").into(), format!("{recorded:o}").into()),
        Difference::Sha256 { found, recorded } => (found.to_hex().into(), recorded.to_hex().into()),
        _ => (serde_json::Value::Null, serde_json::Value::Null),
    };
    serde_json::json!({"path": m.path, "difference": m.difference.kind(), "found": found, "recorded": recorded})
}
