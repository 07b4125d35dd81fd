//! The checksum list signed into `airlock/SHA256SUMS.sig` (FORMAT.md §7), in `signify -C`
//! syntax so stock signify checks an extracted bundle.

use super::manifest::{Entry, Manifest};
use super::DATA_DIR;
use crate::io::digest::Digest;

/// The checksum list signed into `airlock/SHA256SUMS.sig`, in `signify -C` syntax: one line
/// per *carried* entry (FORMAT.md §5), so `signify -C` on an extracted delta bundle checks
/// exactly the files it holds.
pub fn sums_text(manifest: &Manifest) -> Vec<u8> {
    // Sized exactly (a growing Vec would double past it).
    let mut out = Vec::with_capacity(sums_text_len(manifest) as usize);
    for e in carried(manifest) {
        out.extend_from_slice(sums_line(e).as_bytes());
    }
    out
}

/// Shows `line` every line of [`sums_text`] of `manifest`, in order, without building the
/// list (a million entries make about 100 MB of it); stops at the first error.
pub fn for_each_sums_line<E>(manifest: &Manifest, mut line: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    let mut buf = String::new();
    for e in carried(manifest) {
        buf.clear();
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = writeln!(buf, "SHA256 ({DATA_DIR}{}) = {}", e.path, e.sha256);
        line(buf.as_bytes())?;
    }
    Ok(())
}

/// [`sums_text`] of a manifest as a reader, made a line at a time: what a writer streams
/// into the head instead of holding the list (about 100 MB for a million entries).
pub struct SumsReader<'a> {
    entries: std::slice::Iter<'a, Entry>,
    line: Vec<u8>,
    offset: usize,
}

impl<'a> SumsReader<'a> {
    /// The list of `manifest`'s carried entries, from its first line.
    pub fn new(manifest: &'a Manifest) -> SumsReader<'a> {
        SumsReader { entries: manifest.entries.iter(), line: Vec::new(), offset: 0 }
    }
}

impl std::io::Read for SumsReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.offset == self.line.len() {
            let Some(e) = self.entries.by_ref().find(|e| e.carried) else { return Ok(0) };
            self.line.clear();
            self.line.extend_from_slice(sums_line(e).as_bytes());
            self.offset = 0;
        }
        let n = buf.len().min(self.line.len() - self.offset);
        buf[..n].copy_from_slice(&self.line[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// Whether `message` is exactly [`sums_text`] of `manifest`, compared line by line so a
/// reader need not build a second copy of the list.
pub fn sums_match(manifest: &Manifest, message: &[u8]) -> bool {
    let mut rest = message;
    let compared = for_each_sums_line(manifest, |line| match rest.strip_prefix(line) {
        Some(after) => {
            rest = after;
            Ok(())
        }
        None => Err(()),
    });
    compared.is_ok() && rest.is_empty()
}

/// The length of [`sums_text`] of `manifest`, without building it.
pub fn sums_text_len(manifest: &Manifest) -> u64 {
    carried(manifest).map(|e| (e.path.as_str().len() + SUMS_LINE_OVERHEAD) as u64).sum()
}

fn carried(manifest: &Manifest) -> impl Iterator<Item = &Entry> {
    manifest.entries.iter().filter(|e| e.carried)
}

/// Bytes of a checksum line besides the path: `SHA256 (data/`, `) = `, 64 hex digits, `\n`.
const SUMS_LINE_OVERHEAD: usize = "SHA256 (".len() + DATA_DIR.len() + ") = ".len() + 64 + 1;

fn sums_line(e: &Entry) -> String {
    format!("SHA256 ({DATA_DIR}{}) = {}\n", e.path, e.sha256)
}

/// The checksum line signed into `<artifact>.sha256.sig`: `signify -C` syntax with the
/// artifact's file name, so it checks beside the artifact (`cd dir && signify -C -p K.pub
/// -x a.tar.gz.sha256.sig`).
pub fn checksum_line(artifact_path: &str, sha256: &Digest) -> String {
    format!("SHA256 ({}) = {sha256}\n", artifact_name(artifact_path))
}

/// Why the message of an `<artifact>.sha256.sig` is not exactly the artifact's
/// [`checksum_line`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChecksumLineError {
    /// The message is empty.
    #[error("its signed message is empty, not one checksum line")]
    Empty,
    /// More than one line (bytes after the first `\n` count as a line).
    #[error("its signed message holds {lines} lines, not exactly one checksum line")]
    NotOneLine {
        /// How many lines the message holds.
        lines: usize,
    },
    /// One line, but not of the form `SHA256 (<name>) = <64 lowercase hex>\n` (the final
    /// newline included).
    #[error("its signed message {found:?} is not a checksum line `SHA256 (<file name>) = <64 lowercase hex digits>`")]
    NotAChecksumLine {
        /// The line, lossily decoded and cut to a readable length.
        found: String,
    },
    /// A checksum line for another file name.
    #[error("its signed checksum line names {found:?}, not this file's name {expected:?}")]
    OtherFile {
        /// The name the line gives.
        found: String,
        /// The artifact's file name.
        expected: String,
    },
    /// The artifact's name with another digest.
    #[error("its signed checksum line gives SHA-256 {found}, not this file's {expected}")]
    WrongDigest {
        /// The digest the line gives.
        found: String,
        /// The artifact's SHA-256.
        expected: String,
    },
}

/// Checks that `message` (what an `<artifact>.sha256.sig` signs) is exactly the
/// [`checksum_line`] of `artifact_path` with digest `sha256`: one line, the artifact's
/// file name, lowercase hex, `\n`, nothing else. Whoever signed it, nothing else may ride
/// along in the file (POLICY.md, artifact rules). The error says what is wrong.
pub fn check_checksum_line(message: &[u8], artifact_path: &str, sha256: &Digest) -> Result<(), ChecksumLineError> {
    let expected = checksum_line(artifact_path, sha256);
    if message == expected.as_bytes() {
        return Ok(());
    }
    if message.is_empty() {
        return Err(ChecksumLineError::Empty);
    }
    let lines = message.split_inclusive(|&b| b == b'\n').count();
    if lines > 1 {
        return Err(ChecksumLineError::NotOneLine { lines });
    }
    let Some(line) = message.strip_suffix(b"\n") else {
        return Err(ChecksumLineError::NotAChecksumLine { found: shorten(message) });
    };
    let Some((name, digest)) = split_checksum_line(line) else {
        return Err(ChecksumLineError::NotAChecksumLine { found: shorten(line) });
    };
    let expected_name = artifact_name(artifact_path);
    if name != expected_name.as_bytes() {
        return Err(ChecksumLineError::OtherFile { found: shorten(name), expected: expected_name.to_owned() });
    }
    Err(ChecksumLineError::WrongDigest { found: shorten(digest), expected: sha256.to_string() })
}

/// `SHA256 (<name>) = <64 lowercase hex>` split into name and digest, or `None`.
fn split_checksum_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = line.strip_prefix(b"SHA256 (")?;
    let close = rest.windows(4).rposition(|w| w == b") = ")?;
    let (name, digest) = (&rest[..close], &rest[close + 4..]);
    let lowercase_hex = digest.len() == 64 && digest.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    lowercase_hex.then_some((name, digest))
}

/// The last component of a bundle path: the name a checksum line gives.
fn artifact_name(artifact_path: &str) -> &str {
    artifact_path.rsplit('/').next().unwrap_or(artifact_path)
}

/// Hostile bytes, made readable for a message: lossy UTF-8, at most 200 characters.
fn shorten(bytes: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_reader_and_the_line_walk_give_the_list_byte_for_byte() {
        // sample_v3 is a delta: one entry is not carried, so it must be left out.
        for manifest in [crate::format::manifest::tests::sample(), crate::format::manifest::tests::sample_v3()] {
            let text = sums_text(&manifest);
            assert_eq!(text.len() as u64, sums_text_len(&manifest));
            for size in [1, 7, 4096] {
                let (mut read, mut buf) = (Vec::new(), vec![0u8; size]);
                let mut reader = SumsReader::new(&manifest);
                loop {
                    let n = reader.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    read.extend_from_slice(&buf[..n]);
                }
                assert_eq!(read, text, "read {size} bytes at a time");
            }
            let mut walked = Vec::new();
            for_each_sums_line(&manifest, |line| -> Result<(), ()> {
                walked.extend_from_slice(line);
                Ok(())
            })
            .unwrap();
            assert_eq!(walked, text);
            assert!(sums_match(&manifest, &text));
        }
    }

    fn digest(byte: u8) -> Digest {
        Digest([byte; 32])
    }

    #[test]
    fn only_the_exact_line_passes() {
        let d = digest(0xab);
        let line = checksum_line("dir/tool.tgz", &d);
        assert_eq!(check_checksum_line(line.as_bytes(), "dir/tool.tgz", &d), Ok(()));
        let err = |msg: &[u8]| check_checksum_line(msg, "dir/tool.tgz", &d).unwrap_err();
        assert_eq!(err(b""), ChecksumLineError::Empty);
        assert_eq!(err(format!("{line}#!/bin/sh\nrm -rf /\n").as_bytes()), ChecksumLineError::NotOneLine { lines: 3 });
        assert_eq!(err(format!("{line}{line}").as_bytes()), ChecksumLineError::NotOneLine { lines: 2 });
        assert_eq!(err(format!("{line}x").as_bytes()), ChecksumLineError::NotOneLine { lines: 2 });
        assert!(matches!(err(line.trim_end().as_bytes()), ChecksumLineError::NotAChecksumLine { .. }));
        assert!(matches!(err(line.to_uppercase().as_bytes()), ChecksumLineError::NotAChecksumLine { .. }));
        assert!(matches!(err(b"#!/bin/sh\n"), ChecksumLineError::NotAChecksumLine { .. }));
        assert!(matches!(
            err(checksum_line("other.tgz", &d).as_bytes()),
            ChecksumLineError::OtherFile { found, .. } if found == "other.tgz"
        ));
        // The full path is not the name signify -C looks up beside the file.
        assert!(matches!(
            err(checksum_line("x", &d).replace("(x)", "(dir/tool.tgz)").as_bytes()),
            ChecksumLineError::OtherFile { .. }
        ));
        assert!(matches!(
            err(checksum_line("dir/tool.tgz", &digest(0xcd)).as_bytes()),
            ChecksumLineError::WrongDigest { .. }
        ));
    }
}
