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

pub(super) fn mirror_log(dir: &Path, json: bool) -> Result<u8> {
    let state = airlock::mirror::read_state(&dir.join(airlock::format::path::METADATA_DIR).join("log"))?;
    for r in &state.records {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
            continue;
        }
        let mut line = format!("{}  {:<9}", clock::format(r.time), r.event);
        if let Some(b) = &r.bundle {
            line.push_str(&format!(
                " channel {} seq {} created {} manifest {} signers {} ({} files, {} bytes)",
                b.channel,
                b.sequence,
                clock::format(b.created),
                &b.manifest_sha256[..16],
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
    let mirror = Mirror::open(dir, false)?;
    let report = mirror.verify(&progress(quiet))?;
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
