//! `airlock mirror show DIR [IMPORT]`, and `inspect` on a kept head: a past import read back
//! from what the mirror kept of it (the library's `mirror::show`), in text or as one JSON
//! object (`airlock.mirror-show.v1`, docs/schema/mirror-show.v1.schema.json).

use std::io::Write;

use super::*;
use airlock::mirror::show::{self, HeadCheck, HeadProblem, KeptHead, KeptImport, MirrorShow, Selector, SumsVerdict};
use airlock::mirror::ReadLock;
use airlock::render::{escape, time, Untrusted};
use serde_json::{json, Value};

const SCHEMA: &str = schema::MIRROR_SHOW;

#[derive(Args, Debug)]
pub(super) struct MirrorShowArgs {
    /// The mirror directory (read only: nothing is written, no lock file is created).
    pub(super) dir: PathBuf,
    /// Which import: its manifest digest or a unique prefix of at least 8 hex digits,
    /// CHANNEL:SEQUENCE, or a bare SEQUENCE when one channel has it. Without it, every
    /// import is listed.
    #[arg(value_name = "IMPORT")]
    pub(super) import: Option<String>,
    /// Check the kept signatures against these public keys (the mirror keeps none).
    #[arg(long, value_name = "K.pub")]
    pub(super) trust: Vec<PathBuf>,
    /// Check the kept signatures against this trust policy's rule for the channel.
    #[arg(long, value_name = "POLICY.toml", conflicts_with = "trust")]
    pub(super) policy: Option<PathBuf>,
    /// Print one JSON object (schema airlock.mirror-show.v1) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

/// `mirror show`.
pub(super) fn mirror_show(a: MirrorShowArgs) -> Result<u8> {
    let json = a.json;
    run(&a.dir, a.import.as_deref(), &a.trust, a.policy.clone(), json)
}

/// `inspect` on a path inside a kept head: what `mirror show MIRROR DIGEST` shows, so a
/// past import can be inspected after the media is gone.
pub(super) fn inspect_kept(mirror: &Path, digest: &str, a: &InspectArgs) -> Result<u8> {
    if a.producers {
        return Err(Failure::Usage(format!(
            "{} is a kept head in a mirror, not a bundle: --producers needs the payload, which only the bundle \
             holds; `airlock mirror show {} {digest}` shows the kept head",
            a.bundle.display(),
            mirror.display()
        )));
    }
    let json = a.json;
    run(mirror, Some(digest), &a.trust, a.policy.clone(), json)
}

fn run(dir: &Path, import: Option<&str>, trust: &[PathBuf], policy: Option<PathBuf>, json: bool) -> Result<u8> {
    let policy = if trust.is_empty() && policy.is_none() {
        None
    } else {
        Some(load_policy(&TrustArgs { policy, trust: trust.to_vec(), threshold: 1 })?)
    };
    let shown = show::show(dir)?;
    let Some(import) = import else {
        let ok = shown.is_intact();
        if json {
            out::document(SCHEMA, ok, list_json(dir, &shown))?;
        } else {
            out::rendered(|out| list_text(out, dir, &shown))?;
        }
        return Ok(verdict(ok));
    };
    let selector = Selector::parse(import).map_err(|e| mirror_error(dir, e))?;
    let picked = shown.select(&selector).map_err(|e| mirror_error(dir, e))?;
    let mut check = policy.as_ref().and_then(|p| picked.check(p));
    if let Some(c) = check.as_mut() {
        name_trust_files(c, trust);
    }
    let ok = picked.head.is_ok() && check.as_ref().is_none_or(HeadCheck::passes);
    if json {
        out::document(SCHEMA, ok, one_json(dir, &shown, picked, check.as_ref()))?;
    } else {
        out::rendered(|out| one_text(out, picked, check.as_ref()))?;
    }
    Ok(verdict(ok))
}

/// `--trust` keys are checked "against --trust": name the file each key came from instead.
fn name_trust_files(check: &mut HeadCheck, trust: &[PathBuf]) {
    let files: Vec<(airlock::keys::KeyId, String)> =
        trust.iter().filter_map(|p| PublicKey::load(p).ok().map(|k| (k.key_id(), p.display().to_string()))).collect();
    for v in &mut check.signatures {
        if let Some((_, file)) = files.iter().find(|(id, _)| *id == v.key_id) {
            v.against = Some(file.clone());
        }
    }
}

fn mirror_error(dir: &Path, e: show::ShowError) -> Failure {
    Failure::Airlock(Error::Mirror { path: dir.to_owned(), reason: e.into() })
}

fn verdict(ok: bool) -> u8 {
    if ok {
        EXIT_OK
    } else {
        EXIT_REJECTED
    }
}

fn lock_name(lock: ReadLock) -> &'static str {
    match lock {
        ReadLock::Shared => "shared",
        ReadLock::NoneReadOnlyFileSystem => "none_read_only_file_system",
        ReadLock::NoneNoLockFile => "none_no_lock_file",
        ReadLock::NoneUnsupported => "none_unsupported",
        _ => "none",
    }
}

// ---------------------------------------------------------------------------------------
// text

fn list_text(out: &mut dyn Write, dir: &Path, shown: &MirrorShow) -> std::io::Result<()> {
    for import in &shown.imports {
        writeln!(out, "{}", list_line(import))?;
    }
    let damaged = shown.imports.iter().filter(|i| i.head.is_err()).count();
    write!(out, "{} imports kept", shown.imports.len())?;
    if damaged > 0 {
        write!(out, ", {damaged} DAMAGED (their kept heads are not trusted)")?;
    }
    writeln!(out, "; {}", log_words(shown))?;
    writeln!(out, "show one: airlock mirror show {} CHANNEL:SEQUENCE (or a digest prefix)", Untrusted(dir.display()))
}

/// One import on one line: channel:sequence, created, digest, files, bytes, signers.
fn list_line(import: &KeptImport) -> String {
    let label = import.channel_sequence().map_or("?".to_owned(), |(c, s)| format!("{}:{s}", Untrusted(c)));
    let signers = import.logged.as_ref().map_or_else(
        || "none logged".to_owned(),
        |l| {
            if l.bundle.signers.is_empty() {
                "none".to_owned()
            } else {
                escape(&l.bundle.signers.join(",")).into_owned()
            }
        },
    );
    match &import.head {
        Ok(h) => format!(
            "{label}  created {}  manifest {}  {} files  {} bytes  signers {signers}{}",
            time(h.manifest.created),
            import.digest,
            h.manifest.entries.len(),
            h.manifest.total_size(),
            import
                .logged
                .as_ref()
                .map_or(" (no log record names it)".to_owned(), |l| format!("  (log line {})", l.line)),
        ),
        Err(problem) => {
            format!("{label}  DAMAGED {}: {}", Untrusted(import.kept_path()), Untrusted(problem))
        }
    }
}

fn log_words(shown: &MirrorShow) -> String {
    match shown.log_breaks.first() {
        None => format!("log intact ({} lines)", shown.log_lines),
        Some(first) => format!(
            "log BROKEN ({} problems, the first: {}; `airlock mirror log DIR` shows them)",
            shown.log_breaks.len(),
            Untrusted(first)
        ),
    }
}

fn one_text(out: &mut dyn Write, import: &KeptImport, check: Option<&HeadCheck>) -> std::io::Result<()> {
    match &import.logged {
        Some(l) => writeln!(
            out,
            "import       {}:{} (log line {}, {} {}{})",
            Untrusted(&l.bundle.channel),
            l.bundle.sequence,
            l.line,
            if l.source.is_some() { "imported" } else { "restated by a recovery" },
            time(l.time),
            l.source.as_ref().map_or(String::new(), |s| format!(" from {}", Untrusted(s)))
        )?,
        None => writeln!(out, "import       no log record names it")?,
    }
    match &import.head {
        Ok(head) => head_text(out, import, head, check),
        Err(problem) => damaged_text(out, import, problem),
    }
}

fn damaged_text(out: &mut dyn Write, import: &KeptImport, problem: &HeadProblem) -> std::io::Result<()> {
    writeln!(out, "kept head    {}: DAMAGED: {}", Untrusted(import.kept_path()), Untrusted(problem))?;
    if let Some(l) = &import.logged {
        let b = &l.bundle;
        writeln!(
            out,
            "as logged    manifest {} created {}, {} files, {} bytes, signers {}",
            Untrusted(&b.manifest_sha256),
            time(b.created),
            b.entries,
            b.bytes,
            Untrusted(b.signers.join(","))
        )?;
    }
    writeln!(out, "nothing of this kept head is shown: it is not what the import kept")
}

fn head_text(
    out: &mut dyn Write,
    import: &KeptImport,
    head: &KeptHead,
    check: Option<&HeadCheck>,
) -> std::io::Result<()> {
    let m = &head.manifest;
    writeln!(out, "kept head    {} (manifest.cbor hashes to its name)", import.kept_path())?;
    airlock::render::manifest_header(out, m, &import.digest)?;
    writeln!(out, "version      {}", m.version)?;
    if let Some(b) = &m.base {
        writeln!(out, "base         mirror {} manifest {}", b.mirror, b.manifest)?;
    }
    writeln!(
        out,
        "entries      {} files, {} bytes ({} carried, {} bytes)",
        m.entries.len(),
        m.total_size(),
        m.carried_count(),
        m.carried_size()
    )?;
    signatures_text(out, import, head, check)?;
    sums_text(out, head, check)?;
    if let Some(c) = check {
        let rule = c.rule.as_ref().map_or("no rule for this channel".to_owned(), |r| format!("rule {}", Untrusted(r)));
        writeln!(
            out,
            "threshold    {}: {} of {} distinct trusted keys signed validly ({rule} of {})",
            if c.threshold_met { "met" } else { "NOT met" },
            c.valid,
            c.required,
            Untrusted(&c.against)
        )?;
    }
    for t in &head.trust_files {
        writeln!(out, "trust kept   {}/trust/{}", import.kept_path(), Untrusted(t))?;
    }
    writeln!(out)?;
    entries_text(out, m)
}

fn signatures_text(
    out: &mut dyn Write,
    import: &KeptImport,
    head: &KeptHead,
    check: Option<&HeadCheck>,
) -> std::io::Result<()> {
    let logged = |id: &str| import.logged.as_ref().map(|l| (l.line, l.bundle.signers.iter().any(|s| s == id)));
    if head.signatures.is_empty() {
        writeln!(out, "signed by    nobody: signatures/ is empty")?;
    }
    for s in &head.signatures {
        let sig = match &s.signature {
            Ok(sig) => sig,
            Err(problem) => {
                writeln!(out, "signed by    signatures/{}: UNUSABLE: {}", Untrusted(&s.file), Untrusted(problem))?;
                continue;
            }
        };
        let id = sig.key_id().to_string();
        let verdict = check.and_then(|c| c.signatures.iter().find(|v| v.key_id == sig.key_id()));
        let status = match (verdict, check) {
            (Some(v), Some(c)) => verdict_words(v, &c.against),
            _ => match logged(&id) {
                Some((line, true)) => format!("not checked (no --trust or --policy given); the log records it as a valid trusted signer at import (line {line})"),
                Some((line, false)) => format!("not checked (no --trust or --policy given); the log does not count it among the valid trusted signers at import (line {line})"),
                None => "not checked (no --trust or --policy given); no log record names this import".to_owned(),
            },
        };
        let name = verdict.and_then(|v| v.name.as_ref()).map_or(String::new(), |n| format!(" ({})", Untrusted(n)));
        writeln!(out, "signed by    {id}{name}: {status}")?;
    }
    Ok(())
}

fn verdict_words(v: &show::SignatureVerdict, against: &str) -> String {
    let key = v.against.as_deref().unwrap_or(against);
    match &v.status {
        SignatureStatus::Valid => format!("valid against {}", Untrusted(key)),
        SignatureStatus::Invalid => format!("DOES NOT VERIFY against {}", Untrusted(key)),
        SignatureStatus::Revoked { reason } => {
            format!("revoked in {} ({}); not counted", Untrusted(against), Untrusted(reason))
        }
        SignatureStatus::Unknown => format!("unknown key: {} does not trust it for this channel", Untrusted(against)),
    }
}

fn sums_text(out: &mut dyn Write, head: &KeptHead, check: Option<&HeadCheck>) -> std::io::Result<()> {
    let listed = match (&head.sums, head.sums_match_manifest) {
        (None, _) => "MISSING",
        (Some(_), true) => "lists exactly the manifest's carried entries",
        (Some(_), false) => "DOES NOT match the manifest",
    };
    let signed = match check.map(|c| (&c.sums, &c.against)) {
        None => "its signature not checked (no --trust or --policy given)".to_owned(),
        Some((SumsVerdict::Verified { key_id }, against)) => {
            format!("signed by {key_id}: valid against {}", Untrusted(against))
        }
        Some((SumsVerdict::BadSignature { key_id }, _)) => format!("signed by {key_id}: DOES NOT VERIFY"),
        Some((SumsVerdict::SignerNotCounted { key_id }, _)) => {
            format!("signed by {key_id}, which is NOT a trusted key that validly signed the manifest")
        }
        Some((SumsVerdict::Malformed(e), _)) => format!("NOT a signify signature: {}", Untrusted(e)),
        Some((_, _)) => "not checked".to_owned(),
    };
    writeln!(out, "checksums    SHA256SUMS.sig {listed}; {signed}")
}

fn entries_text(out: &mut dyn Write, m: &manifest::Manifest) -> std::io::Result<()> {
    writeln!(out, "{:<5} {:>12}  {:<64}  path", "mode", "size", "sha256")?;
    for e in &m.entries {
        let omitted = if e.carried { ' ' } else { '-' };
        write!(out, "{:o} {omitted} {:>12}  {}  ", e.mode.bits(), e.size, e.sha256.to_hex())?;
        out.write_all(escape(e.path.as_str()).as_bytes())?;
        for (i, sig) in e.signatures.iter().enumerate() {
            out.write_all(if i == 0 { b"  [signed by: " } else { b", " })?;
            out.write_all(escape(sig.as_str()).as_bytes())?;
        }
        out.write_all(if e.signatures.is_empty() { b"\n" } else { b"]\n" })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// JSON

fn log_json(shown: &MirrorShow) -> Value {
    json!({
        "lines": shown.log_lines,
        "intact": shown.log_breaks.is_empty(),
        "messages": shown.log_breaks,
    })
}

fn list_json(dir: &Path, shown: &MirrorShow) -> Value {
    json!({
        "mirror": dir.to_string_lossy(),
        "lock": lock_name(shown.lock),
        "log": log_json(shown),
        "imports": shown.imports.iter().map(summary_json).collect::<Vec<_>>(),
    })
}

/// An import in the list: what an auditor picks one by.
fn summary_json(import: &KeptImport) -> Value {
    let (channel, sequence) = import.channel_sequence().map_or((None, None), |(c, s)| (Some(c), Some(s)));
    let mut v = json!({
        "manifest_sha256": import.digest,
        "kept_head": import.kept_path(),
        "head_state": head_state(import),
        "channel": channel,
        "sequence": sequence,
        "created": import.head.as_ref().ok().map(|h| time(h.manifest.created)),
        "files": import.head.as_ref().ok().map(|h| h.manifest.entries.len()),
        "bytes": import.head.as_ref().ok().map(|h| h.manifest.total_size()),
        "signers": import.logged.as_ref().map_or(Vec::new(), |l| l.bundle.signers.clone()),
        "log_line": import.logged.as_ref().map(|l| l.line),
    });
    if let Err(problem) = &import.head {
        v["message"] = json!(problem.to_string());
    }
    v
}

fn head_state(import: &KeptImport) -> &'static str {
    import.head.as_ref().map_or_else(HeadProblem::kind, |_| "sound")
}

fn one_json(dir: &Path, shown: &MirrorShow, import: &KeptImport, check: Option<&HeadCheck>) -> Value {
    let head = import.head.as_ref().ok();
    let mut v = json!({
        "manifest_sha256": import.digest,
        "kept_head": import.kept_path(),
        "head_state": head_state(import),
        "log": import.logged.as_ref().map(|l| json!({
            "line": l.line,
            "time": time(l.time),
            "source": l.source,
            "channel": l.bundle.channel,
            "sequence": l.bundle.sequence,
            "signers": l.bundle.signers,
        })),
        "manifest": head.map(|h| airlock::render::manifest_json(&h.manifest)),
        "signatures": head.map_or(Vec::new(), |h| signatures_json(import, h, check)),
        "check": check.map(|c| json!({
            "against": c.against,
            "rule": c.rule,
            "threshold": if c.rule.is_none() { "no_rule" } else if c.threshold_met { "met" } else { "not_met" },
            "valid": c.valid,
            "required": c.required,
            "accepted": c.accepted,
        })),
        "checksum_list": head.map(|h| json!({
            "present": h.sums.is_some(),
            "matches_manifest": h.sums_match_manifest,
            "state": check.map_or("not_checked", |c| c.sums.kind()),
            "key_id": check.and_then(|c| c.sums.key_id()).map(|k| k.to_string()),
        })),
        "trust_files": head.map_or(Vec::new(), |h| h.trust_files.iter().map(|t| format!("trust/{t}")).collect()),
        "entries": head.map_or(Vec::new(), |h| h.manifest.entries.iter().map(|e| json!({
            "path": e.path.as_str(),
            "size": e.size,
            "mode": format!("{:o}", e.mode.bits()),
            "sha256": e.sha256.to_hex(),
            "carried": e.carried,
            "signatures": e.signatures.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        })).collect()),
    });
    if let Err(problem) = &import.head {
        v["message"] = json!(problem.to_string());
    }
    json!({
        "mirror": dir.to_string_lossy(),
        "lock": lock_name(shown.lock),
        "log": log_json(shown),
        "import": v,
    })
}

fn signatures_json(import: &KeptImport, head: &KeptHead, check: Option<&HeadCheck>) -> Vec<Value> {
    let logged = |id: &str| import.logged.as_ref().is_some_and(|l| l.bundle.signers.iter().any(|s| s == id));
    head.signatures
        .iter()
        .map(|s| {
            let sig = match &s.signature {
                Ok(sig) => sig,
                Err(problem) => {
                    return json!({
                        "file": format!("signatures/{}", s.file),
                        "key_id": null,
                        "status": problem.kind(),
                        "name": null,
                        "checked_against": null,
                        "logged_signer": false,
                        "message": problem.to_string(),
                    })
                }
            };
            let id = sig.key_id();
            let verdict = check.and_then(|c| c.signatures.iter().find(|v| v.key_id == id));
            let mut v = json!({
                "file": format!("signatures/{}", s.file),
                "key_id": id.to_string(),
                "status": verdict.map_or("not_checked", |v| status_name(&v.status)),
                "name": verdict.and_then(|v| v.name.clone()),
                "checked_against": verdict.and_then(|v| v.against.clone()),
                "logged_signer": logged(&id.to_string()),
            });
            if let Some(SignatureStatus::Revoked { reason }) = verdict.map(|v| &v.status) {
                v["message"] = json!(reason);
            }
            v
        })
        .collect()
}

fn status_name(status: &SignatureStatus) -> &'static str {
    match status {
        SignatureStatus::Valid => "valid",
        SignatureStatus::Invalid => "invalid",
        SignatureStatus::Revoked { .. } => "revoked",
        SignatureStatus::Unknown => "unknown_key",
    }
}
