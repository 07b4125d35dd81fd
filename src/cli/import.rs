//! `airlock import`.

use super::*;
use airlock::mirror::{BaseCheck, Changes, MirrorError};
use airlock::verify::GapPolicy;

#[derive(Args, Debug)]
pub(super) struct ImportArgs {
    /// The bundle, `-` for standard input, or volumes of a set in any order (one at a
    /// time works too: verified volumes are kept in the mirror until the set is complete).
    #[arg(required = true, value_name = "BUNDLE|VOLUME")]
    pub(super) bundles: Vec<PathBuf>,
    #[command(flatten)]
    pub(super) trust: TrustArgs,
    /// The mirror directory (made with `airlock mirror init`, or pass --init).
    #[arg(long, value_name = "DIR")]
    pub(super) mirror: PathBuf,
    /// Create the mirror first if DIR is not one yet.
    #[arg(long)]
    pub(super) init: bool,
    /// Accept a bundle that skips sequence numbers or does not follow the last import (logged).
    #[arg(long)]
    pub(super) allow_gap: bool,
    /// How to prove that files a delta bundle does not carry are in the mirror: `stat`
    /// trusts a file whose stat stamp is unchanged since airlock last wrote or verified it
    /// (and re-hashes any other), `hash` re-hashes every one.
    #[arg(long, value_enum, default_value_t = BaseCheckArg::Stat, value_name = "MODE")]
    pub(super) base_check: BaseCheckArg,
    /// Move retired files to .airlock/attic/<date>-<manifest>/ instead of removing them.
    #[arg(long)]
    pub(super) attic: bool,
    /// Allow retiring more than half of a channel's files.
    #[arg(long)]
    pub(super) allow_mass_retire: bool,
    /// Restore the mirror's damaged files that this bundle holds (any bundle of the
    /// channel, even one imported before); changes nothing else.
    #[arg(long, conflicts_with_all = ["allow_gap", "attic", "allow_mass_retire"])]
    pub(super) repair: bool,
    /// Allowance for clock error when checking expiry, in seconds.
    #[arg(long, default_value_t = DEFAULT_CLOCK_SKEW, value_name = "SECONDS")]
    pub(super) clock_skew: u64,
    /// Print only the verdict line (what was imported, or the error), and no progress
    /// display.
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Print JSON to stdout (docs/JSON.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// `--base-check`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum BaseCheckArg {
    Stat,
    Hash,
}

pub(super) fn import(a: ImportArgs) -> Result<u8> {
    let policy = load_policy(&a.trust)?;
    let mut created = None;
    if a.init {
        match Mirror::init(&a.mirror) {
            Ok(id) if a.json => created = Some(id),
            Ok(id) => say!("created mirror {} with id {id}", a.mirror.display())?,
            Err(Error::Mirror { reason: MirrorError::AlreadyAMirror { .. }, .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mirror = open_mirror(&a.mirror)?;
    if a.repair {
        return repair(&mirror, &a, &policy);
    }
    let quiet = a.quiet || a.json;
    let gaps = if a.allow_gap { GapPolicy::AcceptAndLog } else { GapPolicy::Refuse };
    let base_check = match a.base_check {
        BaseCheckArg::Stat => BaseCheck::Stat,
        BaseCheckArg::Hash => BaseCheck::Hash,
    };
    let opts = ImportOptions {
        gaps,
        clock_skew: a.clock_skew,
        now: now(),
        base_check,
        attic: a.attic,
        allow_mass_retire: a.allow_mass_retire,
    };
    let source = airlock::verify::BundleSource::from_args(&a.bundles);
    let outcome = mirror.import(&source, &policy, &opts, &progress(quiet))?;
    if a.json {
        let ok = !matches!(outcome, ImportOutcome::VolumesMissing { .. });
        out::document(schema::IMPORT, ok, import_json(&a, created, &outcome))?;
        return Ok(if ok { EXIT_OK } else { EXIT_ERROR });
    }
    match outcome {
        ImportOutcome::VolumesMissing { kept, missing, parity } => {
            if !a.quiet {
                for k in &kept {
                    say!("kept {k} in {} until the set is complete", a.mirror.display())?;
                }
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
        ImportOutcome::Imported { record, resumed, uncovered, .. } => {
            if resumed > 0 && !a.quiet {
                say!("resumed {resumed} files staged and verified by an interrupted run of this bundle")?;
            }
            if let Some(b) = &record.bundle {
                say!("imported into {}: {} files ({} bytes) as signed", a.mirror.display(), b.entries, b.bytes)?;
            }
            if !a.quiet {
                say_import_details(&record, uncovered.as_deref())?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// What the verdict line of an import leaves out: the bundle, its signers, the changes,
/// retired files, overrides, and what the artifact rules found.
fn say_import_details(record: &airlock::mirror::LogRecord, uncovered: Option<&[String]>) -> Result<()> {
    if let Some(b) = &record.bundle {
        say!("channel {} sequence {}, manifest sha256 {}", b.channel, b.sequence, b.manifest_sha256)?;
        say!("signed by trusted key(s) {}", b.signers.join(", "))?;
    }
    if let Some(c) = &record.changes {
        say!("{}", breakdown(c))?;
    }
    match &record.attic {
        Some(dir) => say!("retired {} files to .airlock/attic/{dir}/", record.retired.len())?,
        None if !record.retired.is_empty() => say!("retired {} files (removed)", record.retired.len())?,
        None => {}
    }
    for o in &record.overrides {
        say!("override logged: {o}")?;
    }
    for note in &record.artifacts {
        // The trust material line is about the import, not one artifact.
        if note.starts_with("trust material kept:") {
            say!("{note}")?;
        } else {
            say!("artifact {note}")?;
        }
    }
    if let Some(uncovered) = uncovered {
        say!("{}", super::verify::uncovered_summary(uncovered.len()))?;
    }
    Ok(())
}

/// `import --json`'s body (docs/JSON.md).
fn import_json(
    a: &ImportArgs,
    created: Option<airlock::mirror::MirrorId>,
    outcome: &ImportOutcome,
) -> serde_json::Value {
    use airlock::render;
    let mut body = serde_json::json!({
        "mirror": out::path(&a.mirror),
        "bundles": out::paths(&a.bundles),
        "created_mirror_id": created.map(|id| id.to_hex()),
    });
    let details = match outcome {
        ImportOutcome::VolumesMissing { kept, missing, parity } => serde_json::json!({
            "outcome": "volumes_missing",
            "missing_volumes": missing,
            "parity_volumes": parity,
            "messages": kept,
        }),
        ImportOutcome::AlreadyImported { manifest_digest } => serde_json::json!({
            "outcome": "already_imported",
            "manifest_sha256": manifest_digest.to_hex(),
        }),
        ImportOutcome::Imported { record, resumed, findings, uncovered } => serde_json::json!({
            "outcome": "imported",
            "manifest_sha256": record.bundle.as_ref().map(|b| b.manifest_sha256.as_str()),
            "bundle": record.bundle.as_ref().map(render::bundle_summary_json),
            "changes": record.changes.as_ref().map(render::changes_json),
            "retired": record.retired,
            "attic": record.attic,
            "overrides": render::overrides_json(&record.overrides),
            "resumed_files": resumed,
            "findings": findings.iter().map(render::finding_json).collect::<Vec<_>>(),
            "not_covered": uncovered,
        }),
    };
    if let (Some(fields), Some(more)) = (body.as_object_mut(), details.as_object()) {
        fields.extend(more.clone());
    }
    body
}

/// One line: what changed in the channel and what was written.
fn breakdown(c: &Changes) -> String {
    let ([added, added_bytes], [changed, changed_bytes]) = (c.added, c.changed);
    let ([removed, removed_bytes], [unchanged, unchanged_bytes]) = (c.removed, c.unchanged);
    format!(
        "changes: {added} added ({added_bytes} bytes), {changed} changed ({changed_bytes} bytes), \
         {removed} removed ({removed_bytes} bytes), {unchanged} unchanged ({unchanged_bytes} bytes); \
         {} bytes written",
        c.written_bytes
    )
}

/// `import --repair`: exit 0 when every damaged file was restored (or none was damaged).
fn repair(mirror: &Mirror, a: &ImportArgs, policy: &airlock::policy::Policy) -> Result<u8> {
    let [bundle] = a.bundles.as_slice() else {
        return Err(Failure::Usage("--repair takes one bundle file".into()));
    };
    let outcome = mirror.repair(bundle, policy, now(), &progress(a.quiet || a.json))?;
    let ok = outcome.unrepairable.is_empty();
    if a.json {
        let body = serde_json::json!({
            "mirror": out::path(&a.mirror),
            "bundles": out::paths(&a.bundles),
            "outcome": "repaired",
            "repaired": outcome.repaired,
            "unrepairable": outcome.unrepairable,
        });
        out::document(schema::IMPORT, ok, body)?;
        return Ok(if ok { EXIT_OK } else { EXIT_REJECTED });
    }
    for p in &outcome.repaired {
        say!("repaired      {p}")?;
    }
    if outcome.repaired.is_empty() && outcome.unrepairable.is_empty() {
        say!("nothing to repair: every file of {} matches its channel's state", a.mirror.display())?;
        return Ok(EXIT_OK);
    }
    say!("repaired {} files; {} damaged files remain", outcome.repaired.len(), outcome.unrepairable.len())?;
    if ok {
        return Ok(EXIT_OK);
    }
    for p in &outcome.unrepairable {
        out::note(format_args!(
            "not repaired: {p}: the bundle does not carry it as the channel's current state names it \
             (path, size, SHA-256 and mode); repair it with a bundle that does, such as a full bundle \
             of the current state"
        ));
    }
    Ok(EXIT_REJECTED)
}
