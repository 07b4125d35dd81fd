//! [`DebianError`]: why a Release or an index was refused.
//!
//! A Release reaches the parser only after its signature verified, and an index only after
//! its SHA-256 matched that Release: a malformed one is the archive's (or a hostile signer's)
//! doing, never the operator's. The messages therefore say what is wrong and where, and that
//! apt would not read the file either.

use std::fmt;

/// Why a Release or a `Packages`/`Sources` index was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DebianError {
    /// A line of the Release's signed text is not Debian control data.
    #[error(
        "Release line {line}: {problem}; Debian writes Release files in its control format, so this one was \
         not written by the archive software: fetch the suite's InRelease again from the archive"
    )]
    ReleaseLine {
        /// 1-based line of the signed text.
        line: usize,
        /// What is wrong with it.
        problem: FieldProblem,
    },
    /// A field every usable Release has is missing.
    #[error(
        "Release has no {field} field ({why}); this is not a Debian archive Release, or it was cut short: \
         fetch the suite's InRelease again"
    )]
    ReleaseMissing {
        /// The field's name.
        field: &'static str,
        /// Why airlock needs it.
        why: &'static str,
    },
    /// A line of an index is not Debian control data.
    #[error("index line {line}{}: {problem}; the index is damaged or not Debian's", Package(package))]
    IndexLine {
        /// 1-based line of the (decompressed) index.
        line: u64,
        /// The stanza's `Package:` value, when seen before the line.
        package: Option<String>,
        /// What is wrong with it.
        problem: FieldProblem,
    },
    /// A stanza lacks a field airlock needs to know which file it lists.
    #[error(
        "index stanza at line {line}{}: no {field} field; Debian's archive writes one in every stanza, \
         so the index is damaged or not Debian's",
        Package(package)
    )]
    IndexMissing {
        /// 1-based line where the stanza starts.
        line: u64,
        /// The stanza's `Package:` value, if it has one.
        package: Option<String>,
        /// The missing field.
        field: &'static str,
    },
    /// A stanza longer than any Debian writes (a guard on memory).
    #[error(
        "index stanza starting at line {line} is longer than {limit} bytes (Debian's are a few KiB); \
         refusing it rather than holding it in memory: this is not a Debian index"
    )]
    StanzaTooLong {
        /// 1-based line where the stanza starts.
        line: u64,
        /// The limit, in bytes.
        limit: usize,
    },
    /// One path listed twice with different sizes or digests.
    #[error(
        "index lists {path:?} twice with different sizes or SHA-256 (stanzas at lines {first} and {second}); \
         an archive never does: the index is not trustworthy"
    )]
    ConflictingListing {
        /// The repository-relative path.
        path: String,
        /// Line of the first stanza.
        first: u64,
        /// Line of the second stanza.
        second: u64,
    },
    /// The compressed data does not decode.
    #[error("{compression} data does not decode ({detail}); the file is damaged or not {compression}")]
    Decompress {
        /// "gzip" or "xz".
        compression: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// The stream ended before the index did.
    #[error("the index is truncated: {what}; the file was cut short (copy it again)")]
    Truncated {
        /// What was left unfinished.
        what: &'static str,
    },
    /// More decompressed text than any Debian index holds (a decompression bomb).
    #[error(
        "the index decompresses to more than {limit} bytes, more than any Debian index holds; refusing it \
         as a decompression bomb"
    )]
    TooLarge {
        /// The limit, in decompressed bytes.
        limit: u64,
    },
    /// `update` or `finish` after an earlier error.
    #[error("this index reader already failed on an earlier error; read the index again from its start")]
    AlreadyFailed,
}

/// What is wrong with one line of control data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldProblem {
    /// Not UTF-8 where airlock needs the text.
    #[error("not UTF-8")]
    NotUtf8,
    /// Neither `Field: value` nor a continuation line.
    #[error("neither a `Field: value` line nor a continuation line (no colon)")]
    NoColon,
    /// A field name with characters control data does not allow.
    #[error("field name {0:?} is not a control-data field name")]
    BadFieldName(String),
    /// A `#` line: apt reads none in a Release or an index.
    #[error("comment lines are not allowed here")]
    Comment,
    /// A continuation line before any field.
    #[error("a continuation line (starting with a space) before any field")]
    ContinuationFirst,
    /// A field given twice (field names compare case-insensitively, as apt compares them).
    #[error("field {0} appears a second time in the same paragraph (readers disagree on which one counts)")]
    Duplicate(String),
    /// A blank line inside a Release, which is one paragraph.
    #[error("a blank line followed by more fields: a Release is one paragraph (readers disagree on whether the rest counts)")]
    SecondParagraph,
    /// A one-line field followed by continuation lines.
    #[error("field {0} takes one line, but continuation lines follow it")]
    Multiline(&'static str),
    /// A name field (Suite, Codename, ...) with a control character, which would reach
    /// terminals and policy comparisons.
    #[error("field {0} contains a control character")]
    ControlCharacter(&'static str),
    /// A field that needs a value has none.
    #[error("field {0} is empty")]
    EmptyValue(&'static str),
    /// Not a SHA-256 in hex.
    #[error("{field} value {found:?} is not a SHA-256 (64 hex digits)")]
    BadDigest {
        /// The field.
        field: &'static str,
        /// What stands there, cut short.
        found: String,
    },
    /// Not a size in bytes.
    #[error("{field} value {found:?} is not a size in bytes (decimal digits, at most {})", u64::MAX)]
    BadSize {
        /// The field.
        field: &'static str,
        /// What stands there, cut short.
        found: String,
    },
    /// A checksum line that is not `<sha256> <size> <name>`.
    #[error("{field} line {found:?} is not `<sha256> <size> <path>`")]
    BadChecksumLine {
        /// The field.
        field: &'static str,
        /// The line, cut short.
        found: String,
    },
    /// A path that cannot be joined under the repository root.
    #[error("path {path:?} {problem}")]
    BadPath {
        /// The path, cut short.
        path: String,
        /// Why it cannot be used.
        problem: PathProblem,
    },
    /// A path listed twice in one Release `SHA256` field.
    #[error("SHA256 lists {0:?} a second time")]
    DuplicatePath(String),
    /// A date that is not RFC 2822 as Debian writes it.
    #[error("{field} value {found:?} is not a date like \"Sat, 01 Dec 2026 14:23:41 UTC\" ({problem})")]
    BadDate {
        /// The field.
        field: &'static str,
        /// What stands there, cut short.
        found: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A yes/no field with another value.
    #[error("{field} value {found:?} is neither \"yes\" nor \"no\"")]
    BadBool {
        /// The field.
        field: &'static str,
        /// What stands there, cut short.
        found: String,
    },
}

/// Why a listed path cannot be used: every listed path is later joined under the
/// repository root, so it must stay inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathProblem {
    /// The empty string.
    #[error("is empty")]
    Empty,
    /// Starts with `/`.
    #[error("is absolute (it must be relative to the repository)")]
    Absolute,
    /// `a//b` or a trailing `/`.
    #[error("has an empty component (`//` or a trailing `/`)")]
    EmptyComponent,
    /// A `.` or `..` component.
    #[error("has a `.` or `..` component (it could leave the repository)")]
    DotComponent,
    /// A control character, backslash or NUL.
    #[error("contains a control character or a backslash")]
    ForbiddenChar,
    /// A Sources file name with a `/` in it.
    #[error("is not a single file name (a Sources checksum line names a file in the stanza's Directory)")]
    NotAFileName,
    /// Longer than any archive path.
    #[error("is longer than {} bytes", super::MAX_PATH_LEN)]
    TooLong,
}

/// Renders ` (package "foo")` after a line number, or nothing.
struct Package<'a>(&'a Option<String>);

impl fmt::Display for Package<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, " (package {name:?})"),
            None => Ok(()),
        }
    }
}

/// At most this many characters of a hostile value are kept for a message.
const SHOWN_CHARS: usize = 80;

/// A value as an error message shows it: cut to [`SHOWN_CHARS`] characters (the message
/// prints it with `{:?}`, which escapes control characters).
pub(crate) fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// [`shown`] for bytes that may not be UTF-8.
pub(crate) fn shown_bytes(value: &[u8]) -> String {
    shown(&String::from_utf8_lossy(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_control_characters_escaped() {
        let long = "a".repeat(500);
        let cut = shown(&long);
        assert_eq!(cut.chars().count(), SHOWN_CHARS + 1);
        let problem = FieldProblem::BadDigest { field: "SHA256", found: shown("\x1b[31mred") };
        assert!(problem.to_string().contains("\\u{1b}"), "{problem}");
    }

    #[test]
    fn index_errors_name_the_line_and_package() {
        let error = DebianError::IndexMissing { line: 12, package: Some("hello".into()), field: "SHA256" };
        assert!(error.to_string().starts_with("index stanza at line 12 (package \"hello\"): no SHA256 field"));
    }
}
