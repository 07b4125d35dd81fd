//! The line grammar of Debian control data (deb822), shared by the Release and index
//! parsers: `Field: value` lines, continuation lines starting with a space or tab, and
//! blank lines between paragraphs. Field names compare case-insensitively, as apt compares
//! them, so `sha256:` and `SHA256:` are one field (and a second one is a duplicate).

use crate::io::digest::Digest;

use super::error::{shown, shown_bytes, FieldProblem};

/// One line of control data, without its line ending.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// Empty, or only spaces and tabs: ends a paragraph.
    Blank,
    /// Starts with a space or tab: continues the field before it (value trimmed).
    Continuation(&'a [u8]),
    /// `Name: value` (value trimmed).
    Field {
        /// The field name as written.
        name: &'a [u8],
        /// The text after the colon on this line.
        value: &'a [u8],
    },
}

/// Classifies one line (a trailing `\r` is dropped, as apt drops it).
pub(crate) fn classify(line: &[u8]) -> Result<Line<'_>, FieldProblem> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let trimmed = trim(line);
    if trimmed.is_empty() {
        return Ok(Line::Blank);
    }
    match line.first() {
        Some(b' ' | b'\t') => return Ok(Line::Continuation(trimmed)),
        Some(b'#') => return Err(FieldProblem::Comment),
        _ => {}
    }
    let colon = line.iter().position(|&b| b == b':').ok_or(FieldProblem::NoColon)?;
    let (name, rest) = line.split_at(colon);
    let well_formed = !name.is_empty() && !name.starts_with(b"-") && name.iter().all(|b| (0x21..=0x7e).contains(b));
    if !well_formed {
        return Err(FieldProblem::BadFieldName(shown_bytes(name)));
    }
    Ok(Line::Field { name, value: trim(rest.get(1..).unwrap_or_default()) })
}

/// Whether a field name is `want`, ignoring ASCII case.
pub(crate) fn is_field(name: &[u8], want: &str) -> bool {
    name.eq_ignore_ascii_case(want.as_bytes())
}

/// The value as text.
pub(crate) fn text(value: &[u8]) -> Result<&str, FieldProblem> {
    std::str::from_utf8(value).map_err(|_| FieldProblem::NotUtf8)
}

/// A size in bytes: decimal digits only, within `u64`.
pub(crate) fn size(field: &'static str, value: &str) -> Result<u64, FieldProblem> {
    let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u64>() {
        Ok(size) if digits_only => Ok(size),
        _ => Err(FieldProblem::BadSize { field, found: shown(value) }),
    }
}

/// A SHA-256 in hex.
pub(crate) fn digest(field: &'static str, value: &str) -> Result<Digest, FieldProblem> {
    let parsed = if value.len() == 64 { Digest::from_hex(value) } else { None };
    parsed.ok_or_else(|| FieldProblem::BadDigest { field, found: shown(value) })
}

/// A checksum line, `<sha256> <size> <path>` (any run of spaces or tabs between).
pub(crate) fn checksum_line<'a>(field: &'static str, line: &'a str) -> Result<(Digest, u64, &'a str), FieldProblem> {
    let mut words = line.split_ascii_whitespace();
    let bad = || FieldProblem::BadChecksumLine { field, found: shown(line) };
    let (Some(hex), Some(size_text), Some(path), None) = (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(bad());
    };
    Ok((digest(field, hex)?, size(field, size_text)?, path))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_blank(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_blank(b)).map_or(start, |last| last + 1);
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_classify_as_deb822_defines_them() {
        assert_eq!(classify(b"").unwrap(), Line::Blank);
        assert_eq!(classify(b" \t\r").unwrap(), Line::Blank);
        assert_eq!(classify(b" abc 12 x ").unwrap(), Line::Continuation(b"abc 12 x"));
        assert_eq!(classify(b"SHA256:").unwrap(), Line::Field { name: b"SHA256", value: b"" });
        assert_eq!(classify(b"Suite:  stable \r").unwrap(), Line::Field { name: b"Suite", value: b"stable" });
        assert_eq!(
            classify(b"Date: Sat, 01 Dec 2026 14:23:41 UTC").unwrap(),
            Line::Field { name: b"Date", value: b"Sat, 01 Dec 2026 14:23:41 UTC" }
        );
        assert_eq!(classify(b"no colon here"), Err(FieldProblem::NoColon));
        assert_eq!(classify(b"# comment: x"), Err(FieldProblem::Comment));
        assert!(matches!(classify(b": empty name"), Err(FieldProblem::BadFieldName(_))));
        assert!(matches!(classify(b"Bad Name: x"), Err(FieldProblem::BadFieldName(_))));
        assert!(matches!(classify(b"-Dash: x"), Err(FieldProblem::BadFieldName(_))));
    }

    #[test]
    fn sizes_and_digests_are_strict() {
        assert_eq!(size("Size", "0"), Ok(0));
        assert_eq!(size("Size", "18446744073709551615"), Ok(u64::MAX));
        for bad in ["", "+1", "-1", "1e3", " 1", "18446744073709551616", "99999999999999999999999"] {
            assert!(size("Size", bad).is_err(), "{bad:?}");
        }
        let hex = "80a1f6ee524222c49f230fc5700d00f946d0a47eb5258180106dd03df126e16a";
        assert_eq!(digest("SHA256", hex).unwrap().to_hex(), hex);
        assert!(digest("SHA256", &hex[1..]).is_err());
        assert!(digest("SHA256", &format!("{}g", &hex[1..])).is_err());
        let line = format!("{hex}    32757 main/binary-amd64/Packages");
        let (d, n, path) = checksum_line("SHA256", &line).unwrap();
        assert_eq!((d.to_hex().as_str(), n, path), (hex, 32757, "main/binary-amd64/Packages"));
        assert!(checksum_line("SHA256", &format!("{hex} 1")).is_err());
        assert!(checksum_line("SHA256", &format!("{hex} 1 a b")).is_err());
    }
}
