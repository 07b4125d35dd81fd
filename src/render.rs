//! What airlock shows people: the text and JSON forms of a bundle's head (`inspect`) and of
//! the mirror's log (`mirror log`), and the one escaping rule every printed string obeys.
//!
//! Almost every string airlock prints came from outside: bundle and file names, labels,
//! meta, entry paths, policy text, log fields, and error messages that quote them. Printed
//! raw, an escape sequence in one of them recolours or clears the reader's terminal, a
//! newline forges a line (a fake `imported` record in the log), and a bidi override makes
//! `txt.exe` read as `exe.txt`. So every text output escapes the characters in
//! [`needs_escape`] (control characters, and the invisible format characters that reorder
//! or hide text), leaving printable Unicode alone:
//!
//! - [`escape`] / [`Untrusted`]: text, written visibly as `\n`, `\t`, `\r` or `\u{1b}`
//!   (the same spelling as Rust's `{:?}`, so a quoted name in an error message reads the
//!   same before and after). Escaping is idempotent: escaped text has nothing left to escape.
//! - [`json_line`]: one JSON value on one line, with the same characters as `\uXXXX`
//!   (serde_json escapes only C0 controls, not DEL, C1 or bidi controls), so it stays JSON.
//!
//! A backslash is not escaped: the escapes are there to keep the terminal and the line
//! structure intact, not to make names round-trip (a literal `\u{1b}` in a name and an
//! escaped ESC print alike, and neither does anything to the terminal).

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};
use std::io::{self, Write};

use serde::Serialize;

use crate::format::manifest::Manifest;
use crate::keys::KeyId;
use crate::mirror::{BundleSummary, Changes, LogBreak, LogProblem, LogRecord, LogScan, MirrorState, Recovery};
use crate::policy::{Policy, SignatureStatus, TrustReport};
use crate::producer::{Finding, NamedMaterial};

/// Whether `c` must not reach a terminal as it is: a control character (C0, DEL, C1, which
/// includes ESC, newline, carriage return and tab), a bidirectional-text control (marks,
/// embeddings, overrides, isolates), a zero-width or invisible character, a line or
/// paragraph separator, or the interlinear-annotation controls.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// Whether any character of `text` [`needs_escape`]. Every path of a listing passes
/// through here, so ASCII text (nearly every path) is checked byte by byte: of ASCII,
/// only the C0 controls and DEL need escaping.
fn needs_any_escape(text: &str) -> bool {
    if text.is_ascii() {
        return text.bytes().any(|b| b < 0x20 || b == 0x7f);
    }
    text.chars().any(needs_escape)
}

/// `text` with every character of [`needs_escape`] written visibly (`\n`, `\t`, `\r`,
/// `\u{1b}`); borrowed when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !needs_any_escape(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    // Writing into a String cannot fail.
    let _ = write_escaped(&mut out, text);
    Cow::Owned(out)
}

fn write_escaped(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let mut clean_from = 0;
    for (i, c) in text.char_indices() {
        if !needs_escape(c) {
            continue;
        }
        out.write_str(&text[clean_from..i])?;
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            _ => write!(out, "\\u{{{:x}}}", c as u32)?,
        }
        clean_from = i + c.len_utf8();
    }
    out.write_str(&text[clean_from..])
}

/// A value from outside airlock, for printing: its `Display` is the value's own, escaped
/// by [`escape`]. Width and alignment flags apply to the escaped text.
#[derive(Clone, Copy, Debug)]
pub struct Untrusted<T>(pub T);

impl<T: Display> Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_some() || f.precision().is_some() {
            return f.pad(&escape(&self.0.to_string()));
        }
        write!(Escaping(f), "{}", self.0)
    }
}

/// A `fmt::Write` that escapes what passes through it, so [`Untrusted`] needs no buffer.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

/// `value` as one line of JSON (no newline at the end): serde_json's form, with the
/// characters of [`needs_escape`] that it leaves raw (DEL, C1, bidi and invisible
/// characters; it already escapes C0 controls) written as `\uXXXX`. Every such character
/// can only occur inside a JSON string, where `\uXXXX` means the same character, so the
/// line parses to the same value.
pub fn json_line(value: &impl Serialize) -> Result<String, serde_json::Error> {
    Ok(escape_json_text(serde_json::to_string(value)?))
}

/// One `--json` document on one line (see [`json_line`]): `{"schema": SCHEMA, "ok": OK,
/// ...}` with `schema` and `ok` first (docs/JSON.md), then the keys of `body` (an object;
/// any `schema` or `ok` key in it is left out, and a body that is not an object adds
/// nothing).
pub fn json_document(schema: &str, ok: bool, body: &serde_json::Value) -> Result<String, serde_json::Error> {
    let mut text = format!("{{\"schema\":{},\"ok\":{ok}", serde_json::to_string(schema)?);
    if let Some(fields) = body.as_object() {
        for (key, value) in fields.iter().filter(|(k, _)| *k != "schema" && *k != "ok") {
            text.push(',');
            text.push_str(&serde_json::to_string(key)?);
            text.push(':');
            text.push_str(&serde_json::to_string(value)?);
        }
    }
    text.push('}');
    Ok(escape_json_text(text))
}

/// serde_json's text with the characters of [`needs_escape`] it leaves raw written as
/// `\uXXXX`. Every such character can only occur inside a JSON string, where `\uXXXX`
/// means the same character, so the text parses to the same value.
fn escape_json_text(text: String) -> String {
    if !text.chars().any(needs_escape) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            // Every character needs_escape accepts is in the Basic Multilingual Plane.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A time for people: [`crate::clock::format`], total over every `u64` (a hostile bundle
/// or log may carry any value; past year 9999 it prints `@<seconds>`).
pub fn time(t: u64) -> String {
    crate::clock::format(t)
}

/// The first `n` characters of `text` (all of it if shorter): for shortening digests read
/// from a file that may hold anything.
fn prefix(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(i, _)| &text[..i])
}

// ---------------------------------------------------------------------------------------
// inspect

/// One signature on a bundle: who made it and, when signatures were checked, what became
/// of it.
#[derive(Clone, Debug)]
pub struct SignatureLine {
    /// The key id the signature names.
    pub key_id: KeyId,
    /// The policy's name for the key, when it has one other than the key id.
    pub name: Option<String>,
    /// What became of the signature; `None` when no policy was given to check it against.
    pub status: Option<SignatureStatus>,
}

impl SignatureLine {
    /// The signature by `key_id`, named by `policy` if it names the key, with the status
    /// `trust` gives it.
    pub fn new(key_id: KeyId, policy: Option<&Policy>, trust: Option<&TrustReport>) -> SignatureLine {
        let name = policy.and_then(|p| p.name_of_id(key_id)).filter(|n| *n != key_id.to_string()).map(str::to_owned);
        let status = trust.and_then(|r| r.signatures.iter().find(|(i, _)| *i == key_id)).map(|(_, s)| s.clone());
        SignatureLine { key_id, name, status }
    }

    /// `18bc38545762231e (transfer)`, or the key id alone.
    pub fn signer(&self) -> String {
        match &self.name {
            Some(n) => format!("{} ({n})", self.key_id),
            None => self.key_id.to_string(),
        }
    }

    /// The status in words, as `inspect` prints it.
    fn status_words(&self) -> String {
        match &self.status {
            None => "not verified (no --trust or --policy given)".to_owned(),
            Some(SignatureStatus::Valid) => "trusted, valid".to_owned(),
            Some(SignatureStatus::Invalid) => "trusted key, but the signature DOES NOT VERIFY".to_owned(),
            Some(SignatureStatus::Revoked { reason }) => format!("revoked ({reason}); not counted"),
            Some(SignatureStatus::Unknown) => "unknown key; ignored".to_owned(),
        }
    }

    /// The JSON form: `key_id`, `name`, `status` (`valid`, `invalid`, `revoked`,
    /// `unknown`, `not_verified`), and for a revoked key the policy's reason as `message`.
    pub fn to_json(&self) -> serde_json::Value {
        let status = match &self.status {
            None => "not_verified",
            Some(SignatureStatus::Valid) => "valid",
            Some(SignatureStatus::Invalid) => "invalid",
            Some(SignatureStatus::Revoked { .. }) => "revoked",
            Some(SignatureStatus::Unknown) => "unknown",
        };
        let mut value = serde_json::json!({
            "key_id": self.key_id.to_string(),
            "name": self.name,
            "status": status,
        });
        if let (Some(SignatureStatus::Revoked { reason }), Some(fields)) = (&self.status, value.as_object_mut()) {
            fields.insert("message".into(), reason.clone().into());
        }
        value
    }
}

/// Whether a bundle's signatures meet the policy rule for its channel, as JSON:
/// `state` (`met`, `not_met`, `no_rule`), `rule` (the channel rule that applied: a channel
/// name or `*`), `required` and `valid` (distinct trusted keys).
pub fn threshold_json(trust: &TrustReport) -> serde_json::Value {
    let state = match (&trust.rule, trust.threshold_met()) {
        (None, _) => "no_rule",
        (Some(_), true) => "met",
        (Some(_), false) => "not_met",
    };
    serde_json::json!({
        "state": state,
        "rule": trust.rule,
        "required": trust.threshold,
        "valid": trust.valid_signers.len(),
    })
}

/// The threshold in words, as `inspect` prints it.
fn threshold_words(trust: &TrustReport, channel: &str) -> String {
    match &trust.rule {
        None => format!("NOT met: the policy has no rule for channel {channel:?}"),
        Some(rule) => format!(
            "{}: {} of {} distinct trusted key(s) required signed validly (rule for channel {rule})",
            if trust.threshold_met() { "met" } else { "NOT met" },
            trust.valid_signers.len(),
            trust.threshold
        ),
    }
}

/// Everything `inspect` shows about a bundle whose head was decoded (not necessarily
/// verified).
#[derive(Clone, Copy, Debug)]
pub struct Inspection<'a> {
    /// The manifest, as decoded.
    pub manifest: &'a Manifest,
    /// SHA-256 of the manifest bytes (hex).
    pub manifest_digest: &'a str,
    /// The bundle signatures, in head order.
    pub signatures: &'a [SignatureLine],
    /// What checking the signatures against the policy found; `None` when no policy was
    /// given.
    pub trust: Option<&'a TrustReport>,
    /// Producer material found by name beside its artifact (from the manifest alone).
    pub material: &'a [NamedMaterial],
    /// What the producer layer found streaming the payload (`inspect --producers`).
    pub producers: Option<&'a [Finding]>,
}

/// The manifest's fields as `name  value` lines, from the bundle id to the meta pairs: the
/// top of `inspect` and of `mirror show` for one import.
pub fn manifest_header(out: &mut (impl Write + ?Sized), m: &Manifest, manifest_digest: &str) -> io::Result<()> {
    writeln!(out, "bundle id    {}", m.bundle_id.to_hex())?;
    writeln!(out, "manifest     sha256 {}", Untrusted(manifest_digest))?;
    writeln!(out, "channel      {}", Untrusted(&m.channel))?;
    writeln!(out, "sequence     {}", m.sequence)?;
    writeln!(out, "previous     {}", m.previous.map_or("none".into(), |d| d.to_hex()))?;
    writeln!(out, "created      {}", time(m.created))?;
    writeln!(out, "expires      {}", m.expires.map_or("never".into(), time))?;
    if let Some(label) = &m.label {
        writeln!(out, "label        {}", Untrusted(label))?;
    }
    for (k, v) in &m.meta {
        writeln!(out, "meta         {}={}", Untrusted(k), Untrusted(v))?;
    }
    Ok(())
}

/// `inspect`'s text form: a header of `name  value` lines, then one line per entry.
pub fn inspect_text(out: &mut (impl Write + ?Sized), view: &Inspection<'_>) -> io::Result<()> {
    let m = view.manifest;
    manifest_header(out, m, view.manifest_digest)?;
    for s in view.signatures {
        writeln!(out, "signed by    {}: {}", Untrusted(s.signer()), Untrusted(s.status_words()))?;
    }
    if let Some(trust) = view.trust {
        writeln!(out, "threshold    {}", Untrusted(threshold_words(trust, &m.channel)))?;
    }
    writeln!(out, "version      {}", m.version)?;
    if let Some(b) = &m.base {
        writeln!(out, "base         mirror {} manifest {}", b.mirror, b.manifest)?;
    }
    writeln!(out, "entries      {} files, {} bytes", m.entries.len(), m.total_size())?;
    if m.carried_count() != m.entries.len() {
        let omitted = m.entries.len() - m.carried_count();
        writeln!(
            out,
            "carried      {} files, {} bytes (a delta: {omitted} entries, marked -, must already be in the mirror)",
            m.carried_count(),
            m.carried_size()
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{:<5} {:>12}  {:<64}  path", "mode", "size", "sha256")?;
    let mut line = Vec::with_capacity(256);
    for e in &m.entries {
        entry_line(&mut line, e);
        out.write_all(&line)?;
    }
    if !view.material.is_empty() {
        writeln!(out)?;
        writeln!(out, "producer material found by name:")?;
        for m in view.material {
            writeln!(out, "  {}: {} ({})", Untrusted(&m.artifact), Untrusted(&m.file), m.kind)?;
        }
    }
    if let Some(findings) = view.producers {
        writeln!(out)?;
        writeln!(out, "producer signatures (the payload streamed under the policy):")?;
        if findings.is_empty() {
            writeln!(out, "  none: no rule of the policy covers a file of this bundle")?;
        }
        for f in findings {
            writeln!(out, "  {}", Untrusted(f))?;
        }
    }
    Ok(())
}

/// One entry's line of `inspect`'s listing, into `line` (cleared first): mode, `-` for an
/// entry not carried, size right-aligned in 12 columns, SHA-256, path, and the signatures
/// linked to it. Built byte by byte rather than with `write!`: a manifest can have a million
/// lines. Modes are 644 or 755 in a valid manifest: three digits, padded to five like the
/// header line.
fn entry_line(line: &mut Vec<u8>, e: &crate::format::manifest::Entry) {
    line.clear();
    let mode = e.mode.bits();
    line.extend_from_slice(&[b'0' + (mode >> 6 & 7) as u8, b'0' + (mode >> 3 & 7) as u8, b'0' + (mode & 7) as u8]);
    line.extend_from_slice(if e.carried { b"   " } else { b" - " });
    let mut digits = [b' '; 20];
    let mut at = digits.len();
    let mut size = e.size;
    loop {
        at -= 1;
        digits[at] = b'0' + (size % 10) as u8;
        size /= 10;
        if size == 0 {
            break;
        }
    }
    line.extend_from_slice(&digits[at.min(digits.len() - 12)..]);
    line.extend_from_slice(b"  ");
    line.extend_from_slice(&e.sha256.hex_bytes());
    line.extend_from_slice(b"  ");
    line.extend_from_slice(escape(e.path.as_str()).as_bytes());
    for (i, sig) in e.signatures.iter().enumerate() {
        line.extend_from_slice(if i == 0 { b"  [signed by: " } else { b", " });
        line.extend_from_slice(escape(sig.as_str()).as_bytes());
    }
    line.extend_from_slice(if e.signatures.is_empty() { b"\n" } else { b"]\n" });
}

/// `inspect --json`'s form (schema `airlock.inspect.v1`, docs/JSON.md): the body of one
/// JSON document.
pub fn inspect_json(view: &Inspection<'_>) -> serde_json::Value {
    use serde_json::json;
    let m = view.manifest;
    let mut doc = manifest_json(m);
    let rest = json!({
        "manifest_sha256": view.manifest_digest,
        "verified": view.trust.map(TrustReport::accepted),
        "threshold": view.trust.map(threshold_json),
        "signatures": view.signatures.iter().map(SignatureLine::to_json).collect::<Vec<_>>(),
        "entries": m.entries.iter().map(|e| json!({
            "path": e.path.as_str(),
            "size": e.size,
            "mode": format!("{:o}", e.mode.bits()),
            "sha256": e.sha256.to_hex(),
            "signatures": e.signatures.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "carried": e.carried,
        })).collect::<Vec<_>>(),
        "material": view.material,
        "producers": view.producers.map(|fs| fs.iter().map(finding_json).collect::<Vec<_>>()),
    });
    if let (Some(doc), serde_json::Value::Object(rest)) = (doc.as_object_mut(), rest) {
        doc.extend(rest);
    }
    doc
}

/// A manifest's fields as JSON, without its entries: the `manifest` object of `mirror show
/// --json` and the top of `inspect --json` (docs/JSON.md).
pub fn manifest_json(m: &Manifest) -> serde_json::Value {
    use serde_json::json;
    json!({
        "bundle_id": m.bundle_id.to_hex(),
        "channel": m.channel,
        "sequence": m.sequence,
        "previous": m.previous.map(|d| d.to_hex()),
        "created": time(m.created),
        "expires": m.expires.map(time),
        "label": m.label,
        "meta": m.meta,
        "version": m.version,
        "base": m.base.map(|b| json!({"mirror": b.mirror.to_hex(), "manifest": b.manifest.to_hex()})),
        "entry_count": m.entries.len(),
        "total_size": m.total_size(),
        "carried_count": m.carried_count(),
        "carried_size": m.carried_size(),
    })
}

/// A producer finding as JSON: its fields, with the details as an array of `[name, value]`
/// pairs (they are ordered, and a name such as `subject` may repeat).
pub fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "artifact": f.artifact,
        "file": f.file,
        "kind": f.kind,
        "status": f.status,
        "signer": f.signer,
        "details": f.details,
    })
}

// ---------------------------------------------------------------------------------------
// mirror log

/// One log record as one line of text: time, event, bundle summary, source, overrides,
/// reason. Every field read from the log is escaped, so a record is always one line.
pub fn log_line(r: &LogRecord) -> String {
    let mut line = format!("{}  {:<9}", time(r.time), r.event);
    if let Some(b) = &r.bundle {
        let _ = write!(
            line,
            " channel {} seq {} created {} manifest {} signers {} ({} files, {} bytes)",
            Untrusted(&b.channel),
            b.sequence,
            time(b.created),
            Untrusted(prefix(&b.manifest_sha256, 16)),
            Untrusted(b.signers.join(",")),
            b.entries,
            b.bytes
        );
    }
    if let Some(c) = &r.changes {
        let ([added, _], [changed, _], [removed, _], [unchanged, _]) = (c.added, c.changed, c.removed, c.unchanged);
        let _ =
            write!(line, " changes +{added} ~{changed} -{removed} ={unchanged} ({} bytes written)", c.written_bytes);
    }
    if !r.retired.is_empty() {
        let _ = write!(line, " retired {}", r.retired.len());
        if let Some(attic) = &r.attic {
            let _ = write!(line, " to attic {}", Untrusted(attic));
        }
    }
    if !r.repaired.is_empty() {
        let _ = write!(line, " repaired {}", Untrusted(r.repaired.join(",")));
    }
    if let Some(s) = &r.source {
        let _ = write!(line, " from {}", Untrusted(s));
    }
    for o in &r.overrides {
        let _ = write!(line, " [override: {}]", Untrusted(o));
    }
    if let Some(reason) = &r.reason {
        let _ = write!(line, ": {}", Untrusted(reason));
    }
    line
}

/// One log record as one line of JSON (see [`json_line`]): the record as the log holds it.
pub fn log_json(r: &LogRecord) -> Result<String, serde_json::Error> {
    json_line(r)
}

/// A time for machines: RFC 3339 UTC, or `@<seconds>` past year 9999 (only a hostile or
/// damaged record can hold one); see [`time`].
fn machine_time(t: u64) -> String {
    time(t)
}

/// A log record's bundle summary as JSON (`mirror log --json`, `import --json`).
pub fn bundle_summary_json(b: &BundleSummary) -> serde_json::Value {
    serde_json::json!({
        "manifest_sha256": b.manifest_sha256,
        "bundle_id": b.bundle_id,
        "channel": b.channel,
        "sequence": b.sequence,
        "created": machine_time(b.created),
        "expires": b.expires.map(machine_time),
        "signers": b.signers,
        "files": b.entries,
        "bytes": b.bytes,
    })
}

/// What an import changed, as JSON: files and bytes added, changed, removed and unchanged,
/// and the bytes written.
pub fn changes_json(c: &Changes) -> serde_json::Value {
    let pair = |[files, bytes]: [u64; 2]| serde_json::json!({"files": files, "bytes": bytes});
    serde_json::json!({
        "added": pair(c.added),
        "changed": pair(c.changed),
        "removed": pair(c.removed),
        "unchanged": pair(c.unchanged),
        "written_bytes": c.written_bytes,
    })
}

/// `mirror log --json`'s record line (schema `airlock.mirror-log.v1`, `"type": "record"`):
/// the record at log line `line`, its fields as values (times RFC 3339), with the text the
/// log keeps as prose under `message` (the reason) and `messages` (the artifact notes).
pub fn log_record_json(line: usize, r: &LogRecord) -> serde_json::Value {
    serde_json::json!({
        "type": "record",
        "line": line,
        "prev": r.prev,
        "time": machine_time(r.time),
        "event": r.event.as_str(),
        "source": r.source,
        "bundle": r.bundle.as_ref().map(bundle_summary_json),
        "overrides": overrides_json(&r.overrides),
        "changes": r.changes.as_ref().map(changes_json),
        "retired": r.retired,
        "attic": r.attic,
        "repaired": r.repaired,
        "recovery": r.recovery.as_deref().map(recovery_json),
        "message": r.reason,
        "messages": r.artifacts,
    })
}

/// Operator overrides as JSON: each one's name (`allow_gap`: the text before its first
/// colon, snake_case) and its text as `message`.
pub fn overrides_json(overrides: &[String]) -> Vec<serde_json::Value> {
    overrides
        .iter()
        .map(|o| {
            let name = o.split_once(':').map_or(o.as_str(), |(name, _)| name).trim().replace('-', "_");
            serde_json::json!({"kind": name, "message": o})
        })
        .collect()
}

/// A `recovered` record's details as JSON.
pub fn recovery_json(rec: &Recovery) -> serde_json::Value {
    serde_json::json!({
        "sealed": rec.sealed,
        "lines": rec.lines,
        "restated": rec.restated.iter().map(bundle_summary_json).collect::<Vec<_>>(),
        "set_aside": rec.set_aside,
        "message": rec.broken,
    })
}

/// `mirror log --json`'s line for a place the chain breaks (`"type": "break"`): the line
/// (none when the break is the log's end or the kept heads), a snake_case `kind`, and the
/// problem in words.
pub fn log_break_json(b: &LogBreak) -> serde_json::Value {
    let (line, kind) = match b {
        LogBreak::Line { line, problem } => (Some(*line), log_problem_kind(problem)),
        LogBreak::Elsewhere(e) => (None, e.kind()),
    };
    serde_json::json!({"type": "break", "line": line, "kind": kind, "message": b.to_string()})
}

/// A stable snake_case name for what is wrong with a log line.
fn log_problem_kind(p: &LogProblem) -> &'static str {
    match p {
        LogProblem::Unreadable(_) => "unreadable",
        LogProblem::BrokenChain => "broken_chain",
        LogProblem::ImportWithoutBundle => "import_without_bundle",
        LogProblem::BadManifestDigest => "bad_manifest_digest",
        LogProblem::DuplicateImport(_) => "duplicate_import",
        LogProblem::SequenceNotNewer { .. } => "sequence_not_newer",
        LogProblem::DisagreesWithKeptHead(_) => "disagrees_with_kept_head",
        LogProblem::RecoveredNotFirst => "recovered_not_first",
        LogProblem::RecoveryWithoutDetails => "recovery_without_details",
        LogProblem::SealedLogMisnamed { .. } => "sealed_log_misnamed",
        LogProblem::SealedLogUnusable { .. } => "sealed_log_unusable",
        LogProblem::SealedLogChanged { .. } => "sealed_log_changed",
        LogProblem::KeptHeadUnusable(_) => "kept_head_unusable",
    }
}

/// `mirror log --json`'s last line (`"type": "summary"`): how many lines and records, the
/// chain's head when it is intact, and how many breaks.
pub fn log_scan_summary_json(scan: &LogScan) -> serde_json::Value {
    serde_json::json!({
        "type": "summary",
        "lines": scan.lines,
        "records": scan.records.len(),
        "breaks": scan.breaks.len(),
        "head": if scan.breaks.is_empty() { Some(scan.state.head.as_str()) } else { None },
    })
}

/// The closing line of `mirror log`: how many records, and the chain's head.
pub fn log_summary(state: &MirrorState) -> String {
    format!("log: {} records, hash chain intact (head {})", state.records.len(), Untrusted(prefix(&state.head, 16)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_escape_check_is_needs_escape() {
        for b in 0u8..0x80 {
            let text = char::from(b).to_string();
            assert_eq!(needs_any_escape(&text), needs_escape(char::from(b)), "byte {b:#x}");
        }
    }

    #[test]
    fn escapes_controls_and_invisible_characters_only() {
        assert_eq!(escape("plain ünïcödé 名前 ✓"), "plain ünïcödé 名前 ✓");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("one\ntwo\r\tthree"), "one\\ntwo\\r\\tthree");
        assert_eq!(escape("\u{7f}\u{9b}\u{85}"), "\\u{7f}\\u{9b}\\u{85}");
        assert_eq!(escape("txt\u{202e}exe.\u{200b}\u{2066}\u{feff}"), "txt\\u{202e}exe.\\u{200b}\\u{2066}\\u{feff}");
        assert_eq!(escape("\u{2028}\u{2029}"), "\\u{2028}\\u{2029}");
    }

    #[test]
    fn escaping_is_idempotent() {
        let once = escape("x\u{1b}]0;title\u{7}\ny").into_owned();
        assert_eq!(escape(&once), once);
    }

    #[test]
    fn untrusted_escapes_and_pads() {
        assert_eq!(Untrusted("a\nb").to_string(), "a\\nb");
        assert_eq!(format!("[{:<6}]", Untrusted("\u{1b}")), "[\\u{1b}]");
        assert_eq!(format!("[{:<8}]", Untrusted("\u{1b}")), "[\\u{1b}  ]");
    }

    #[test]
    fn json_lines_escape_what_serde_leaves_raw_and_still_parse() {
        let value = serde_json::json!({"s": "a\u{1b}\n\u{7f}\u{9b}\u{202e}\u{2028}z"});
        let line = json_line(&value).unwrap();
        assert!(!line.chars().any(needs_escape), "{line}");
        assert!(line.contains("\\u007f") && line.contains("\\u202e"), "{line}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), value);
    }

    #[test]
    fn times_are_total() {
        assert_eq!(time(86_400), "1970-01-02T00:00:00Z");
        assert_eq!(time(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(time(u64::MAX), "@18446744073709551615");
    }

    #[test]
    fn a_log_record_is_one_line_whatever_its_fields_hold() {
        use crate::mirror::{BundleSummary, Event};
        let hostile = "\u{1b}[2J\n2001-09-09T01:46:40Z  imported\u{9b}\u{202e}";
        let record = LogRecord {
            prev: hostile.into(),
            time: u64::MAX,
            event: Event::Rejected,
            source: Some(hostile.into()),
            bundle: Some(BundleSummary {
                manifest_sha256: "é\u{1b}".into(),
                bundle_id: hostile.into(),
                channel: hostile.into(),
                sequence: u64::MAX,
                created: u64::MAX,
                expires: Some(u64::MAX),
                signers: vec![hostile.into(), hostile.into()],
                entries: u64::MAX,
                bytes: u64::MAX,
            }),
            overrides: vec![hostile.into()],
            artifacts: vec![hostile.into()],
            changes: None,
            retired: vec![hostile.into()],
            attic: Some(hostile.into()),
            repaired: vec![hostile.into(), hostile.into()],
            reason: Some(hostile.into()),
            recovery: None,
        };
        for line in [log_line(&record), log_json(&record).unwrap()] {
            assert!(!line.chars().any(needs_escape), "{line}");
        }
        // channel, 2 signers, the attic, 2 repaired paths, source, override, reason.
        assert_eq!(log_line(&record).matches("\\u{1b}[2J\\n2001").count(), 9, "{}", log_line(&record));
        let state = MirrorState { head: "\u{1b}".into(), ..MirrorState::default() };
        assert_eq!(log_summary(&state), "log: 0 records, hash chain intact (head \\u{1b})");
    }

    #[test]
    fn prefixes_never_split_a_character() {
        assert_eq!(prefix("0123456789abcdef0123", 16), "0123456789abcdef");
        assert_eq!(prefix("short", 16), "short");
        assert_eq!(prefix("ééééééééééééééééé", 16), "éééééééééééééééé");
    }
}
