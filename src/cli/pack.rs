//! `airlock pack`.

use super::*;
use airlock::pack::{PackFault, SincePlan};

#[derive(Args, Debug)]
pub(super) struct PackArgs {
    /// Directories (their contents are packed) and files.
    #[arg(required = true, value_name = "SRC")]
    pub(super) sources: Vec<PathBuf>,
    /// The bundle to write.
    #[arg(short, long, value_name = "BUNDLE")]
    pub(super) output: PathBuf,
    /// Secret key to sign with (repeat to have several keys sign).
    #[arg(long, required = true, value_name = "K.sec")]
    pub(super) key: Vec<PathBuf>,
    /// Channel the bundle belongs to.
    #[arg(long, default_value = "default")]
    pub(super) channel: String,
    /// Sequence number (default: one more than the last bundle packed for the channel here).
    #[arg(long, conflicts_with = "receipt")]
    pub(super) sequence: Option<u64>,
    /// Expiry: a duration (30d, 12h, 2w) or a date (2026-12-31, 2026-12-31T12:00:00Z).
    #[arg(long, value_name = "DURATION|DATE")]
    pub(super) expires: Option<String>,
    /// A label for people.
    #[arg(long)]
    pub(super) label: Option<String>,
    /// Metadata KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub(super) meta: Vec<String>,
    /// zstd compression level (1-19).
    #[arg(long, default_value_t = airlock::pack::DEFAULT_LEVEL)]
    pub(super) level: i32,
    /// zstd worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub(super) threads: u32,
    /// Also add, for every file, `<file>.sha256.sig`: its checksum line signed by the first
    /// key (check it beside the file with `signify -C -p K.pub -x <file>.sha256.sig`).
    #[arg(long)]
    pub(super) sign_artifacts: bool,
    /// Write a volume set of files at most SIZE bytes each, named BUNDLE.vol001.airlock..:
    /// bytes with an optional K, M, G or T suffix (powers of 1024), or a medium: fat32,
    /// dvd, dvd-dl, bd25, bd50.
    #[arg(long, value_name = "SIZE")]
    pub(super) volume_size: Option<String>,
    /// Add N parity volumes (BUNDLE.par01.airlock..): any N lost or damaged volumes can be
    /// rebuilt at import. Needs --volume-size.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "volume_size")]
    pub(super) parity: u16,
    /// Overwrite BUNDLE if it exists.
    #[arg(long)]
    pub(super) force: bool,
    /// Once written, read BUNDLE back from the medium (bypassing the page cache) and verify
    /// it in full; if it does not verify, it is removed (a bad medium is found here, not at
    /// the import desk).
    #[arg(long)]
    pub(super) verify_written: bool,
    /// Where the per-channel sequence state lives [default: $AIRLOCK_STATE_DIR, else $XDG_DATA_HOME/airlock, else ~/.local/share/airlock].
    #[arg(long, value_name = "DIR")]
    pub(super) state_dir: Option<PathBuf>,
    /// Print only the verdict (the one line saying what was packed, or the error), and no
    /// progress display.
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Pack what a symbolic link points to (a file or directory, inside the tree or
    /// outside it) under the link's name; a dangling link or a loop is refused.
    #[arg(long, conflicts_with = "skip_symlinks")]
    pub(super) follow_symlinks: bool,
    /// Leave symbolic links out (each one is listed in the output).
    #[arg(long)]
    pub(super) skip_symlinks: bool,
    #[command(flatten)]
    pub(super) secret: SecretKeyArgs,
    #[command(flatten)]
    pub(super) since: SinceArgs,
    /// Print JSON to stdout (docs/JSON.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// `pack --since RECEIPT --trust K.pub [--base OLD.airlock]`: a delta for one mirror.
#[derive(Args, Debug, Default)]
pub(super) struct SinceArgs {
    /// Build a delta for the mirror that signed this receipt (`airlock mirror receipt` on
    /// the inside): entries the mirror holds are listed but not carried, and the bundle
    /// follows the manifest the mirror really holds (no --allow-gap needed after a lost
    /// bundle).
    #[arg(long = "since", value_name = "RECEIPT", requires = "trust")]
    pub(super) receipt: Option<PathBuf>,
    /// The inside's public key that signs receipts (with --since; repeatable).
    #[arg(long, value_name = "K.pub", requires = "receipt")]
    pub(super) trust: Vec<PathBuf>,
    /// The bundle (or kept head directory, or manifest.cbor) of the manifest the receipt
    /// names, when this machine's state does not hold it (with --since).
    #[arg(long, value_name = "OLD.airlock", requires = "receipt")]
    pub(super) base: Option<PathBuf>,
}

pub(super) fn parse_meta(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut meta = BTreeMap::new();
    for pair in pairs {
        let (k, v) = pair.split_once('=').ok_or_else(|| Failure::Usage(format!("--meta {pair:?} is not KEY=VALUE")))?;
        if meta.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(Failure::Usage(format!("--meta key {k:?} given twice")));
        }
    }
    Ok(meta)
}

pub(super) fn pack(a: PackArgs) -> Result<u8> {
    manifest::check_channel(&a.channel).map_err(Failure::Usage)?;
    let meta = parse_meta(&a.meta)?;
    let keys = a.key.iter().map(|k| load_secret_key(k, &a.secret)).collect::<Result<Vec<_>>>()?;
    let state_dir = a
        .state_dir
        .clone()
        .or_else(default_state_dir)
        .ok_or_else(|| Failure::Usage("no state directory: set --state-dir, AIRLOCK_STATE_DIR or HOME".into()))?;
    let state = ChannelState::new(state_dir);
    let plan = since_plan(&a, &state)?;
    let (sequence, previous) = match &plan {
        Some(p) => (p.sequence, p.previous),
        None => state.next(&a.channel, a.sequence)?,
    };
    let created = now();
    let expires = a
        .expires
        .as_deref()
        .map(|e| clock::parse_expiry(e, created))
        .transpose()
        .map_err(|e| Failure::Usage(format!("--expires {e}")))?;
    if expires.is_some_and(|e| e <= created) {
        return Err(Failure::Usage("--expires is not in the future; the bundle would be born expired".into()));
    }
    let opts = PackOptions {
        sources: a.sources.clone(),
        channel: a.channel.clone(),
        sequence,
        previous,
        created,
        expires,
        label: a.label.clone(),
        meta,
        level: a.level,
        threads: a.threads,
        sign_artifacts: a.sign_artifacts,
        volumes: volume_options(&a)?,
        verify_written: a.verify_written,
        base: plan.as_ref().and_then(|p| p.base.clone()),
        fault: injected_fault()?,
        symlinks: symlinks(&a),
    };
    let report = match airlock::pack::pack(&opts, &keys, &a.output, overwrite(a.force), &progress(a.quiet || a.json)) {
        Ok(report) => report,
        Err(Error::Pack(airlock::pack::PackError::Refused(list))) => return Err(refused(list)),
        Err(e) => return Err(e.into()),
    };
    // Recorded before success is reported: a pack that said it succeeded has numbered its
    // channel, whatever happens next. The manifest is kept too, for a later `--since`.
    let manifest_bytes = manifest::encode(&report.manifest)?;
    if state.record_packed(&a.channel, sequence, &manifest_bytes)? != report.manifest_digest {
        return Err(Error::Internal("the packed manifest re-encodes to other bytes".into()).into());
    }
    if a.json {
        out::document(schema::PACK, true, pack_json(&a, &keys, plan.as_ref(), &report))?;
        crash_point("after-report");
        return Ok(EXIT_OK);
    }
    let m = &report.manifest;
    let into = match report.volumes.len() {
        0 => a.output.display().to_string(),
        n => format!("{n} volumes"),
    };
    let listing = if report.volumes.is_empty() { "" } else { ":" };
    say!(
        "packed {} files ({} bytes) into {into} ({} bytes){listing}",
        m.entries.len(),
        m.total_size(),
        report.bundle_bytes
    )?;
    if !a.quiet {
        say_details(&keys, plan.as_ref(), &report)?;
    }
    crash_point("after-report");
    Ok(EXIT_OK)
}

/// `--follow-symlinks` and `--skip-symlinks` as the library takes them.
fn symlinks(a: &PackArgs) -> airlock::pack::Symlinks {
    use airlock::pack::Symlinks;
    match (a.follow_symlinks, a.skip_symlinks) {
        (true, _) => Symlinks::Follow,
        (_, true) => Symlinks::Skip,
        _ => Symlinks::Refuse,
    }
}

/// Every refused source on its own line (stderr), with the rule it breaks; the verdict
/// follows as the error (exit 1; its hint is `flag_hint`'s).
fn refused(list: Vec<airlock::pack::Refusal>) -> Failure {
    for r in &list {
        out::note(format_args!("refused  {r}"));
    }
    Failure::Airlock(Error::Pack(airlock::pack::PackError::Refused(list)))
}

/// `pack --json`'s body (docs/JSON.md).
fn pack_json(
    a: &PackArgs,
    keys: &[SecretKey],
    plan: Option<&SincePlan>,
    report: &airlock::pack::PackReport,
) -> serde_json::Value {
    let m = &report.manifest;
    let delta = plan.map(|plan| {
        let retiring =
            plan.held.as_ref().map_or(0, |held| airlock::diff::compare(&held.entries, &m.entries).removed.len());
        serde_json::json!({
            "full": plan.full.as_ref().map(full_reason_name),
            "carried_files": report.carried,
            "carried_bytes": report.carried_bytes,
            "retiring": retiring,
        })
    });
    serde_json::json!({
        "output": out::path(&a.output),
        "volumes": out::paths(&report.volumes),
        "bundle_id": m.bundle_id.to_hex(),
        "channel": m.channel,
        "sequence": m.sequence,
        "previous": m.previous.map(|p| p.to_hex()),
        "manifest_sha256": report.manifest_digest.to_hex(),
        "files": m.entries.len(),
        "bytes": m.total_size(),
        "bundle_bytes": report.bundle_bytes,
        "bound_bytes": report.bound_bytes,
        "signers": keys.iter().map(|k| k.key_id().to_string()).collect::<Vec<_>>(),
        "delta": delta,
        "read_back_seconds": report.read_back.map(|t| t.as_secs_f64()),
        "skipped_links": out::paths(&report.skipped_links),
    })
}

/// Why a `--since` bundle carries everything, as a snake_case name.
fn full_reason_name(reason: &airlock::pack::FullReason) -> &'static str {
    use airlock::pack::FullReason;
    match reason {
        FullReason::NotListed => "not_listed",
        FullReason::Damaged => "damaged",
        FullReason::RootDiffers => "root_differs",
    }
}

/// A refused source as JSON (in `--json`'s `error.refused`): its `path`, the `rule` it
/// breaks (a snake_case name) and the rule in words (`message`).
pub(super) fn refusal_json(r: &airlock::pack::Refusal) -> serde_json::Value {
    serde_json::json!({"path": out::path(&r.path), "rule": r.problem.kind(), "message": r.problem.to_string()})
}

/// What the verdict line leaves out: volumes, channel, digest, delta, signers, size bound,
/// read-back, skipped links.
fn say_details(keys: &[SecretKey], plan: Option<&SincePlan>, report: &airlock::pack::PackReport) -> Result<()> {
    let m = &report.manifest;
    for v in &report.volumes {
        say!("  {}", v.display())?;
    }
    say!(
        "channel {} sequence {}{}",
        m.channel,
        m.sequence,
        m.previous.map_or(String::new(), |p| format!(", follows manifest {p}"))
    )?;
    say!("manifest sha256 {}", report.manifest_digest)?;
    if let Some(plan) = plan {
        say_delta(plan, report)?;
    }
    let ids: Vec<String> = keys.iter().map(|k| k.key_id().to_string()).collect();
    say!("signed by {}", ids.join(", "))?;
    say!(
        "size bound {} bytes (the most it could take; checked against the destination's free space first)",
        report.bound_bytes
    )?;
    if let Some(room) = report.head_room {
        say_head_room(room)?;
    }
    if report.repacked_bytes > 0 {
        say!(
            "the head did not fit the room reserved for it in volume 1: the set was written again with the head first ({} bytes of sources read twice)",
            report.repacked_bytes
        )?;
    }
    if report.prehashed_bytes > 0 {
        say!(
            "hashed {} bytes of sources before packing (their hashes were needed first); the carried ones were read twice",
            report.prehashed_bytes
        )?;
    }
    if let Some(took) = report.read_back {
        say!("read back from the medium and verified in {:.2} s", took.as_secs_f64())?;
    }
    for link in &report.skipped_links {
        say!("skipped symbolic link {}", link.display())?;
    }
    Ok(())
}

/// Where the head went in the room reserved for it (FORMAT.md §3).
fn say_head_room(room: airlock::pack::HeadRoom) -> Result<()> {
    if room.moved == 0 {
        say!("head {} bytes in the {} reserved for it (padding {})", room.head, room.reserved, room.padding)?;
    } else {
        let why = if room.head > room.reserved { "did not fit" } else { "left too much of" };
        say!(
            "head {} bytes {why} the {} reserved for it: {} payload bytes were moved within the bundle to follow it (the bundle was read again, not the sources)",
            room.head,
            room.reserved,
            room.moved
        )?;
    }
    Ok(())
}

/// With `--since`: the checked receipt turned into this channel's plan.
fn since_plan(a: &PackArgs, state: &ChannelState) -> Result<Option<SincePlan>> {
    let Some(receipt_path) = &a.since.receipt else {
        return Ok(None);
    };
    let keys = load_public_keys(&a.since.trust)?;
    let (receipt, _) = airlock::pack::read_receipt(receipt_path, &keys)?;
    Ok(Some(airlock::pack::plan_since(state, &receipt, &a.channel, a.since.base.as_deref())?))
}

/// What the delta carries and retires, and why it carries everything if it does.
fn say_delta(plan: &SincePlan, report: &airlock::pack::PackReport) -> Result<()> {
    let m = &report.manifest;
    if let Some(reason) = plan.full {
        say!("carrying everything: {reason}")?;
    }
    let retiring = plan.held.as_ref().map_or(0, |held| airlock::diff::compare(&held.entries, &m.entries).removed.len());
    say!(
        "carrying {} of {} entries, {} of {} bytes; retiring {retiring}",
        report.carried,
        m.entries.len(),
        report.carried_bytes,
        m.total_size()
    )?;
    Ok(())
}

/// `--volume-size` and `--parity` as the library takes them.
fn volume_options(a: &PackArgs) -> Result<Option<airlock::pack::VolumeOptions>> {
    let Some(size) = &a.volume_size else { return Ok(None) };
    let size = airlock::pack::parse_volume_size(size).map_err(|e| Failure::Usage(format!("--volume-size {e}")))?;
    Ok(Some(airlock::pack::VolumeOptions { size, parity: a.parity }))
}

/// Where the channel state lives unless `--state-dir` says: `$AIRLOCK_STATE_DIR`, else
/// `$XDG_DATA_HOME/airlock`, else `~/.local/share/airlock`.
pub(super) fn default_state_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("AIRLOCK_STATE_DIR")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("airlock")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/airlock")))
}

/// Test hook (feature `fault-injection`): `AIRLOCK_TEST_FAULT=hash-worker-panic` makes a
/// hashing worker panic, `skip-space-check` skips the preflight's free-space check (as if
/// the destination filled up after it), `flip-written-byte` flips a byte of the written
/// bundle before it is read back (as a bad medium would). `sign` takes the last two.
#[cfg(feature = "fault-injection")]
pub(super) fn injected_fault() -> Result<Option<PackFault>> {
    match std::env::var("AIRLOCK_TEST_FAULT").ok().as_deref() {
        None => Ok(None),
        Some("hash-worker-panic") => Ok(Some(PackFault::HashWorkerPanic)),
        Some("skip-space-check") => Ok(Some(PackFault::SkipSpaceCheck)),
        Some("flip-written-byte") => Ok(Some(PackFault::FlipWrittenByte)),
        Some(other) => Err(Failure::Usage(format!("AIRLOCK_TEST_FAULT: pack has no fault {other:?}"))),
    }
}

#[cfg(not(feature = "fault-injection"))]
pub(super) fn injected_fault() -> Result<Option<PackFault>> {
    Ok(None)
}

/// Test hook (feature `fault-injection`): `AIRLOCK_TEST_CRASH_AT=<stage>` aborts the process
/// at `stage`, as a crash there would.
#[cfg(feature = "fault-injection")]
fn crash_point(stage: &str) {
    if std::env::var_os("AIRLOCK_TEST_CRASH_AT").is_some_and(|v| v == stage) {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
fn crash_point(_stage: &str) {}
