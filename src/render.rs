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
use crate::mirror::{LogRecord, MirrorState};
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

/// `text` with every character of [`needs_escape`] written visibly (`\n`, `\t`, `\r`,
/// `\u{1b}`); borrowed when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
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
    let text = serde_json::to_string(value)?;
    if !text.chars().any(needs_escape) {
        return Ok(text);
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
    Ok(out)
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

/// One signature on a bundle, as `inspect` shows it.
#[derive(Clone, Debug)]
pub struct SignatureLine {
    /// The signer: key id, and the policy's name for it if it has one.
    pub signer: String,
    /// What became of the signature (valid, unknown key, revoked, not verified...).
    pub status: String,
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
    /// Whether the signatures meet the policy, in words; `None` when no policy was given.
    pub threshold: Option<&'a str>,
    /// Whether the policy accepts the signers; `None` when no policy was given.
    pub verified: Option<bool>,
    /// Producer material found by name beside its artifact (from the manifest alone).
    pub material: &'a [NamedMaterial],
    /// What the producer layer found streaming the payload (`inspect --producers`).
    pub producers: Option<&'a [Finding]>,
}

/// `inspect`'s text form: a header of `name  value` lines, then one line per entry.
pub fn inspect_text(out: &mut (impl Write + ?Sized), view: &Inspection<'_>) -> io::Result<()> {
    let m = view.manifest;
    writeln!(out, "bundle id    {}", m.bundle_id.to_hex())?;
    writeln!(out, "manifest     sha256 {}", Untrusted(view.manifest_digest))?;
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
    for s in view.signatures {
        writeln!(out, "signed by    {}: {}", Untrusted(&s.signer), Untrusted(&s.status))?;
    }
    if let Some(v) = view.threshold {
        writeln!(out, "threshold    {}", Untrusted(v))?;
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
    for e in &m.entries {
        // Written piece by piece: a manifest can have 100,000 lines. `escape` borrows
        // unless a path needs escaping. Modes are 644 or 755 in a valid manifest: three
        // digits, padded to five like the header line.
        let omitted = if e.carried { ' ' } else { '-' };
        write!(out, "{:o} {omitted} {:>12}  ", e.mode.bits(), e.size)?;
        out.write_all(&e.sha256.hex_bytes())?;
        out.write_all(b"  ")?;
        out.write_all(escape(e.path.as_str()).as_bytes())?;
        for (i, sig) in e.signatures.iter().enumerate() {
            out.write_all(if i == 0 { b"  [signed by: " } else { b", " })?;
            out.write_all(escape(sig.as_str()).as_bytes())?;
        }
        out.write_all(if e.signatures.is_empty() { b"\n" } else { b"]\n" })?;
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

/// `inspect --json`'s form: one JSON object on one line (see [`json_line`]).
pub fn inspect_json(view: &Inspection<'_>) -> Result<String, serde_json::Error> {
    use serde_json::json;
    let m = view.manifest;
    let value = json!({
        "bundle_id": m.bundle_id.to_hex(),
        "manifest_sha256": view.manifest_digest,
        "channel": m.channel,
        "sequence": m.sequence,
        "previous": m.previous.map(|d| d.to_hex()),
        "created": time(m.created),
        "expires": m.expires.map(time),
        "label": m.label,
        "meta": m.meta,
        "verified": view.verified,
        "threshold": view.threshold,
        "signatures": view.signatures.iter().map(|s| json!({"key_id": s.signer, "status": s.status})).collect::<Vec<_>>(),
        "version": m.version,
        "base": m.base.map(|b| json!({"mirror": b.mirror.to_hex(), "manifest": b.manifest.to_hex()})),
        "entry_count": m.entries.len(),
        "total_size": m.total_size(),
        "carried_count": m.carried_count(),
        "carried_size": m.carried_size(),
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
    json_line(&value)
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

/// One log record as one line of JSON (see [`json_line`]).
pub fn log_json(r: &LogRecord) -> Result<String, serde_json::Error> {
    json_line(r)
}

/// The closing line of `mirror log`: how many records, and the chain's head.
pub fn log_summary(state: &MirrorState) -> String {
    format!("log: {} records, hash chain intact (head {})", state.records.len(), Untrusted(prefix(&state.head, 16)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
