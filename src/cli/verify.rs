//! `airlock verify`.

use super::*;
use airlock::verify::{BundleSource, VerifyOptions, VolumeCheck, VolumeState};

#[derive(Args, Debug)]
pub(super) struct VerifyArgs {
    /// The bundle, `-` for standard input, or volumes of a set (any order, data and parity):
    /// one volume of a larger set is checked alone; several are checked, rebuilt from
    /// parity where needed, and verified as the whole bundle.
    #[arg(required = true, value_name = "BUNDLE|VOLUME")]
    pub(super) bundles: Vec<PathBuf>,
    #[command(flatten)]
    pub(super) trust: TrustArgs,
    /// Print only the verdict line (the one saying what verified, or the error), and no
    /// progress display.
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Print JSON to stdout (docs/JSON.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

pub(super) fn verify(a: VerifyArgs) -> Result<u8> {
    let policy = load_policy(&a.trust)?;
    let source = BundleSource::from_args(&a.bundles);
    let bundle = Bundle::open_source(&source)?;
    // One volume of a larger set: checked alone (its head, its signed table entry).
    if let (BundleSource::File(path), Some(table)) = (&source, bundle.volume_table(&policy)?) {
        if table.data_count() > 1 {
            let check = bundle.check_volumes(&policy)?.ok_or_else(|| Failure::Usage("not a volume set".into()))?;
            if a.json {
                return volume_check_json(&a.bundles, &check);
            }
            return print_volume_check(path, &check);
        }
    }
    let is_set = bundle.volume_set().is_some();
    let quiet = a.quiet || a.json;
    let verified = match verify_all(bundle, &policy, quiet) {
        // A set is streamed without checking each block's own hash (the payload's SHA-256s
        // check it): a rejection may be a damaged block, so read it again checking every
        // block, rebuilding from parity what does not match.
        Err(Failure::Airlock(e)) if is_set && e.is_rejection() => {
            let Some(checked) = source.checking_every_block() else { return Err(e.into()) };
            out::note(format_args!("airlock: {e}; checking every block of the volumes and rebuilding from parity"));
            verify_all(Bundle::open_source(&checked)?, &policy, quiet)?
        }
        other => other?,
    };
    if a.json {
        out::document(schema::VERIFY, true, verified_json(&a.bundles, &policy, &verified))?;
        return Ok(EXIT_OK);
    }
    let Verified { head, findings, volume_notes } = &verified;
    let (manifest, digest, trust) = (head.manifest(), head.manifest_digest(), head.trust());
    if !a.quiet {
        for note in volume_notes {
            say!("volume {note}")?;
        }
    }
    let name = source.describe();
    say!("OK: {} verified: {} files, {} bytes", name, manifest.entries.len(), manifest.total_size())?;
    if a.quiet {
        return Ok(EXIT_OK);
    }
    say!("channel {} sequence {}, manifest sha256 {}", manifest.channel, manifest.sequence, digest)?;
    print_signers(&policy, trust)?;
    for finding in findings {
        say!("artifact {finding}")?;
    }
    if let Some(uncovered) = policy.uncovered_files(manifest, findings) {
        say!("{}", uncovered_summary(uncovered.len()))?;
    }
    Ok(EXIT_OK)
}

/// The summary line on the files no artifact rule covered (carried as they are, unchecked;
/// `--json` lists them).
pub(super) fn uncovered_summary(uncovered: usize) -> String {
    format!("not covered: {uncovered} files no artifact rule covers, carried unchecked")
}

/// `verify --json`'s body for a whole bundle (docs/JSON.md).
fn verified_json(bundles: &[PathBuf], policy: &Policy, v: &Verified) -> serde_json::Value {
    let m = v.head.manifest();
    serde_json::json!({
        "mode": "bundle",
        "bundles": out::paths(bundles),
        "bundle_id": m.bundle_id.to_hex(),
        "channel": m.channel,
        "sequence": m.sequence,
        "manifest_sha256": v.head.manifest_digest().to_hex(),
        "files": m.entries.len(),
        "bytes": m.total_size(),
        "signatures": signatures_json(policy, v.head.trust()),
        "threshold": airlock::render::threshold_json(v.head.trust()),
        "findings": v.findings.iter().map(airlock::render::finding_json).collect::<Vec<_>>(),
        "not_covered": policy.uncovered_files(m, &v.findings),
        "messages": v.volume_notes,
    })
}

/// Every signature of a verified head, as JSON.
pub(super) fn signatures_json(policy: &Policy, trust: &TrustReport) -> Vec<serde_json::Value> {
    trust
        .signatures
        .iter()
        .map(|(id, _)| airlock::render::SignatureLine::new(*id, Some(policy), Some(trust)).to_json())
        .collect()
}

/// What a whole verification found.
struct Verified {
    /// The verified manifest, its digest and who signed it.
    head: airlock::verify::AuthenticHead,
    /// What the artifact rules found.
    findings: Vec<airlock::producer::Finding>,
    /// What reading a volume set rebuilt.
    volume_notes: Vec<String>,
}

/// §8 steps 2-6 on an open bundle.
fn verify_all(bundle: Bundle, policy: &Policy, quiet: bool) -> Result<Verified> {
    let verified = bundle.verify(&VerifyOptions::new(policy, now()))?;
    let volume_notes = verified.volume_notes();
    let progress = progress(quiet);
    progress.start("verifying", verified.manifest().total_size(), verified.manifest().entries.len() as u64);
    let result = verified.stream_keeping_head(&mut NullSink, &progress);
    progress.finish();
    let (report, head) = result?;
    Ok(Verified { head, findings: report.findings, volume_notes: volume_notes.take() })
}

/// One volume checked alone: exit 0 when it matches its signed table entry.
fn print_volume_check(path: &Path, check: &VolumeCheck) -> Result<u8> {
    let (data, parity) = (check.table.data_count(), check.table.parity_count());
    let mut ok = true;
    for (id, _, state) in &check.volumes {
        match state {
            VolumeState::Intact => say!(
                "OK: {} is volume {id} of {data} data and {parity} parity volume(s) of bundle {}, intact (length and every block match the signed table)",
                path.display(),
                check.table.manifest
            )?,
            other => {
                ok = false;
                say!("DAMAGED: {} is volume {id}: {}", path.display(), describe_state(other))?;
            }
        }
    }
    for (p, why) in &check.unreadable {
        ok = false;
        say!("DAMAGED: {}: {why}", p.display())?;
    }
    say!(
        "only this volume was checked; verify the whole set with: airlock verify NAME.vol*.airlock NAME.par*.airlock"
    )?;
    Ok(if ok { EXIT_OK } else { EXIT_REJECTED })
}

/// `verify --json`'s body for one volume checked alone: `ok` when it is intact.
fn volume_check_json(bundles: &[PathBuf], check: &VolumeCheck) -> Result<u8> {
    let volumes: Vec<serde_json::Value> = check
        .volumes
        .iter()
        .map(|(id, path, state)| {
            let mut v = serde_json::json!({"id": id.to_string(), "path": out::path(path), "state": state_name(state)});
            if let Some(fields) = v.as_object_mut() {
                match state {
                    VolumeState::Damaged(blocks) => {
                        fields.insert("damaged_blocks".into(), blocks.clone().into());
                    }
                    VolumeState::WrongLength { expected, file_len } => {
                        fields.insert("expected_bytes".into(), (*expected).into());
                        fields.insert("found_bytes".into(), (*file_len).into());
                    }
                    _ => {}
                }
            }
            v
        })
        .collect();
    let unreadable: Vec<serde_json::Value> = check
        .unreadable
        .iter()
        .map(|(p, why)| serde_json::json!({"path": out::path(p), "message": why.to_string()}))
        .collect();
    let ok = unreadable.is_empty() && check.volumes.iter().all(|(_, _, s)| matches!(s, VolumeState::Intact));
    let body = serde_json::json!({
        "mode": "volume",
        "bundles": out::paths(bundles),
        "manifest_sha256": check.table.manifest.to_hex(),
        "data_volumes": check.table.data_count(),
        "parity_volumes": check.table.parity_count(),
        "volumes": volumes,
        "unreadable": unreadable,
    });
    out::document(schema::VERIFY, ok, body)?;
    Ok(if ok { EXIT_OK } else { EXIT_REJECTED })
}

/// A volume's state as a snake_case name.
fn state_name(state: &VolumeState) -> &'static str {
    match state {
        VolumeState::Intact => "intact",
        VolumeState::Damaged(_) => "damaged",
        VolumeState::WrongLength { .. } => "wrong_length",
        VolumeState::NotInTable => "not_in_table",
    }
}

/// A volume's state against its table, for people.
pub(super) fn describe_state(state: &VolumeState) -> String {
    match state {
        VolumeState::Intact => "intact".to_owned(),
        VolumeState::Damaged(blocks) => {
            let list: Vec<String> = blocks.iter().map(u64::to_string).collect();
            format!(
                "block(s) {} (of 1 MiB, from 0) do not match their signed SHA-256; parity can rebuild them",
                list.join(", ")
            )
        }
        VolumeState::WrongLength { expected, file_len } => {
            format!("{file_len} bytes, which does not fit the signed body length of {expected} bytes (truncated or extended)")
        }
        VolumeState::NotInTable => "not a volume of the signed volume table".to_owned(),
    }
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
