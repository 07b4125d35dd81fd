//! The shape of a clearsigned file, checked before any signature is: exactly one message,
//! nothing outside it.
//!
//! OpenPGP libraries (Sequoia's armour reader included) skip text before the
//! `BEGIN PGP SIGNED MESSAGE` line and after the signature, and a reader of the file (apt's
//! own parser, a person) may not. So airlock accepts only blank lines outside the message,
//! `Hash:` as the only armour header, and dash-escaped text (RFC 9580 §7.1): a line of the
//! text that starts with `-` and is not `- `-escaped would be read as a boundary by some
//! reader, so it is refused rather than guessed at.

use super::OpenPgpError;

const BEGIN_MESSAGE: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
const END_SIGNATURE: &[u8] = b"-----END PGP SIGNATURE-----";

/// Where the reader is in the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Before,
    Headers,
    Text,
    Signature,
    After,
}

/// Ok when `bytes` is one clearsigned message, with only blank lines around it.
pub(super) fn check_framing(bytes: &[u8]) -> Result<(), OpenPgpError> {
    let mut part = Part::Before;
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = trim_end(raw);
        part = next_part(part, line).map_err(|problem| OpenPgpError::NotClearsigned { line: index + 1, problem })?;
    }
    match part {
        Part::After => Ok(()),
        Part::Before => Err(unterminated(bytes, "no -----BEGIN PGP SIGNED MESSAGE----- line")),
        Part::Headers | Part::Text => Err(unterminated(bytes, "the message has no signature block")),
        Part::Signature => Err(unterminated(bytes, "the signature block has no -----END PGP SIGNATURE----- line")),
    }
}

/// The error for a file that ended too early, at its last line.
fn unterminated(bytes: &[u8], problem: &'static str) -> OpenPgpError {
    OpenPgpError::NotClearsigned { line: bytes.split(|b| *b == b'\n').count(), problem }
}

/// The part the reader is in after `line`, or what is wrong with it.
fn next_part(part: Part, line: &[u8]) -> Result<Part, &'static str> {
    match part {
        Part::Before if line.is_empty() => Ok(Part::Before),
        Part::Before if line == BEGIN_MESSAGE => Ok(Part::Headers),
        Part::Before => Err("text before -----BEGIN PGP SIGNED MESSAGE----- (it would not be signed)"),
        Part::Headers if line.is_empty() => Ok(Part::Text),
        Part::Headers if line.starts_with(b"Hash: ") => Ok(Part::Headers),
        Part::Headers => Err("an armour header other than \"Hash:\", or no blank line before the text"),
        Part::Text if line == BEGIN_SIGNATURE => Ok(Part::Signature),
        Part::Text if line.starts_with(b"-") && !line.starts_with(b"- ") => {
            Err("a line of the text starts with \"-\" but is not dash-escaped")
        }
        Part::Text => Ok(Part::Text),
        Part::Signature if line == END_SIGNATURE => Ok(Part::After),
        Part::Signature if line.starts_with(b"-----") => Err("an armour line inside the signature block"),
        Part::Signature => Ok(Part::Signature),
        Part::After if line.is_empty() => Ok(Part::After),
        Part::After => Err("text after the signature block (it would not be signed)"),
    }
}

/// `line` without trailing spaces, tabs and carriage return (which the signature ignores too).
fn trim_end(line: &[u8]) -> &[u8] {
    let end = line.iter().rposition(|b| !matches!(b, b' ' | b'\t' | b'\r')).map_or(0, |i| i + 1);
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\n- -dash\n-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n";

    fn line_of(text: &str) -> Option<usize> {
        match check_framing(text.as_bytes()) {
            Ok(()) => None,
            Err(OpenPgpError::NotClearsigned { line, .. }) => Some(line),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn one_message_with_blank_lines_around_is_accepted() {
        assert_eq!(line_of(GOOD), None);
        assert_eq!(line_of(&format!("\n\r\n{GOOD}\n\n")), None);
        assert_eq!(line_of(&GOOD.replace('\n', "\r\n")), None);
    }

    #[test]
    fn text_outside_the_message_is_refused_at_its_line() {
        assert_eq!(line_of(&format!("Origin: Evil\n{GOOD}")), Some(1));
        assert_eq!(line_of(&format!("{GOOD}Origin: Evil\n")), Some(10));
        assert_eq!(line_of(&format!("{GOOD}{GOOD}")), Some(10));
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert_eq!(line_of(&GOOD.replace("Hash: SHA512", "Comment: hi")), Some(2));
        assert_eq!(line_of(&GOOD.replace("- -dash", "-dash")), Some(5));
        assert_eq!(line_of(&GOOD.replace("abc", "-----BEGIN PGP SIGNED MESSAGE-----")), Some(8));
        assert!(line_of(&GOOD.replace("-----END PGP SIGNATURE-----\n", "")).is_some());
        assert!(line_of("").is_some());
        assert!(line_of("\u{0}\u{1}garbage").is_some());
    }
}
