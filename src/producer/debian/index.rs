//! [`IndexReader`]: a `Packages` or `Sources` index read as it streams past, in bounded
//! memory, keeping only the files a caller wants.
//!
//! Bytes are pushed in whatever pieces the caller has; a push-style decoder (gzip through
//! flate2's writer, xz through lzma-rust2's `XzStream`) turns them into text, which a line
//! splitter cuts into stanzas. Memory is one stanza (at most [`MAX_STANZA_LEN`]) plus the
//! decoder's window plus the wanted entries, whatever the size of the index; the
//! decompressed text is capped ([`DEFAULT_MAX_DECOMPRESSED`]) so a decompression bomb is
//! refused by name rather than parsed for hours.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::io::{self, Write};

use flate2::write::MultiGzDecoder;
use lzma_rust2::{Action, Status, XzStream};

use crate::io::digest::Digest;

use super::control::{self, Line};
use super::error::{shown, DebianError, FieldProblem, PathProblem};
use super::{check_relative_path, Compression, IndexKind, MAX_PATH_LEN};

/// Longest stanza accepted, in bytes (Debian's largest are a few tens of KiB).
pub const MAX_STANZA_LEN: usize = 1 << 20;

/// Most decompressed bytes an index may have (bookworm's amd64 `Packages` is 50 MB).
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 4 << 30;

/// Memory the xz decoder may use, in KiB: `xz -9`, the largest preset, needs 65 MiB to
/// decode; a stream asking for a larger dictionary is refused before it is allocated.
const XZ_MEMORY_LIMIT_KIB: u32 = 70 * 1024;

/// Decompressed bytes produced per xz decoder call.
const XZ_OUTPUT_CHUNK: usize = 64 * 1024;

/// A file an index lists: path relative to the repository root (Packages `Filename:`, or
/// Sources `Directory:` + `Checksums-Sha256:` names), with its size and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Relative to the repository root (the directory holding `dists/` and `pool/`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256.
    pub sha256: Digest,
}

/// A streaming index reader: bytes pushed in order, memory bounded by `wanted` (only
/// stanzas' file lines whose repository-relative path `wanted` accepts are kept).
pub struct IndexReader {
    decoder: Decoder,
    failed: bool,
}

enum Decoder {
    Plain(Stanzas),
    Gzip(Box<MultiGzDecoder<Stanzas>>),
    Xz { stream: Box<XzStream>, output: Vec<u8>, stanzas: Stanzas },
}

impl IndexReader {
    /// A reader for one index of `kind`, compressed as `compression`.
    pub fn new(kind: IndexKind, compression: Compression, wanted: Box<dyn Fn(&str) -> bool + Send>) -> IndexReader {
        let stanzas = Stanzas::new(kind, wanted);
        let decoder = match compression {
            Compression::None => Decoder::Plain(stanzas),
            Compression::Gzip => Decoder::Gzip(Box::new(MultiGzDecoder::new(stanzas))),
            Compression::Xz => Decoder::Xz {
                stream: Box::new(XzStream::new_mem_limit(true, XZ_MEMORY_LIMIT_KIB)),
                output: vec![0; XZ_OUTPUT_CHUNK],
                stanzas,
            },
        };
        IndexReader { decoder, failed: false }
    }

    /// Lowers (or raises) the cap on decompressed bytes from [`DEFAULT_MAX_DECOMPRESSED`].
    pub fn with_max_decompressed(mut self, limit: u64) -> IndexReader {
        self.stanzas_mut().max_text = limit;
        self
    }

    /// Feeds the next bytes of the file (any piece size). After an error, every later call
    /// fails too.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), DebianError> {
        if self.failed {
            return Err(DebianError::AlreadyFailed);
        }
        let result = match &mut self.decoder {
            Decoder::Plain(stanzas) => stanzas.push(bytes),
            Decoder::Gzip(decoder) => gzip_write(decoder, bytes),
            Decoder::Xz { stream, output, stanzas } => xz_feed(stream, output, stanzas, bytes, Action::Run).map(drop),
        };
        self.failed = result.is_err();
        result
    }

    /// Ends the file: checks that the compressed stream and the last line are complete and
    /// returns the wanted files, sorted by path, each once.
    pub fn finish(self) -> Result<Vec<Listed>, DebianError> {
        if self.failed {
            return Err(DebianError::AlreadyFailed);
        }
        let stanzas = match self.decoder {
            Decoder::Plain(stanzas) => stanzas,
            Decoder::Gzip(mut decoder) => {
                gzip_finish(&mut decoder)?;
                decoder.finish().map_err(|error| gzip_end_error(error.to_string()))?
            }
            Decoder::Xz { mut stream, mut output, mut stanzas } => {
                if !xz_feed(&mut stream, &mut output, &mut stanzas, &[], Action::Finish)? {
                    return Err(DebianError::Truncated { what: "the xz stream ends before its end marker" });
                }
                stanzas
            }
        };
        stanzas.finish()
    }

    /// How many wanted files are held so far (the reader's memory beyond one stanza).
    pub fn kept(&self) -> usize {
        self.stanzas().kept.len()
    }

    fn stanzas(&self) -> &Stanzas {
        match &self.decoder {
            Decoder::Plain(stanzas) | Decoder::Xz { stanzas, .. } => stanzas,
            Decoder::Gzip(decoder) => decoder.get_ref(),
        }
    }

    fn stanzas_mut(&mut self) -> &mut Stanzas {
        match &mut self.decoder {
            Decoder::Plain(stanzas) | Decoder::Xz { stanzas, .. } => stanzas,
            Decoder::Gzip(decoder) => decoder.get_mut(),
        }
    }
}

fn gzip_write(decoder: &mut MultiGzDecoder<Stanzas>, bytes: &[u8]) -> Result<(), DebianError> {
    decoder.write_all(bytes).map_err(|error| gzip_error(decoder, error))
}

fn gzip_finish(decoder: &mut MultiGzDecoder<Stanzas>) -> Result<(), DebianError> {
    // Every byte has been fed: an incomplete header, deflate stream or trailer shows here.
    decoder
        .try_finish()
        .map_err(|error| decoder.get_mut().refused.take().unwrap_or_else(|| gzip_end_error(error.to_string())))
}

fn gzip_end_error(detail: String) -> DebianError {
    DebianError::Decompress {
        compression: "gzip",
        detail: format!("at the end of the file, the stream is incomplete or its CRC does not match: {detail}"),
    }
}

/// The text's own error when the parser refused it, else the decoder's.
fn gzip_error(decoder: &mut MultiGzDecoder<Stanzas>, error: io::Error) -> DebianError {
    decoder
        .get_mut()
        .refused
        .take()
        .unwrap_or_else(|| DebianError::Decompress { compression: "gzip", detail: error.to_string() })
}

/// Runs the xz decoder over `input` (all of it), pushing the text it produces. Returns
/// whether the stream reached its end (only with `Action::Finish`, as concatenated
/// streams may follow).
fn xz_feed(
    stream: &mut XzStream,
    output: &mut [u8],
    stanzas: &mut Stanzas,
    input: &[u8],
    action: Action,
) -> Result<bool, DebianError> {
    let undecodable = |detail: String| DebianError::Decompress { compression: "xz", detail };
    let mut rest = input;
    loop {
        let result = stream.process(rest, output, action).map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof if action == Action::Finish => {
                DebianError::Truncated { what: "the xz stream ends before its end marker" }
            }
            _ => undecodable(error.to_string()),
        })?;
        stanzas.push(output.get(..result.bytes_produced).unwrap_or_default())?;
        rest = rest.get(result.bytes_consumed..).unwrap_or_default();
        if result.status == Status::StreamEnd {
            return match rest.is_empty() {
                true => Ok(true),
                false => Err(undecodable(format!("{} bytes after the end of the xz stream", rest.len()))),
            };
        }
        let output_full = result.bytes_produced == output.len();
        if rest.is_empty() && !output_full {
            return Ok(false);
        }
        if result.bytes_consumed == 0 && result.bytes_produced == 0 {
            return Err(undecodable("the decoder stopped making progress".to_owned()));
        }
    }
}

/// The text side: cuts lines, collects one stanza's wanted fields, keeps wanted files.
struct Stanzas {
    kind: IndexKind,
    wanted: Box<dyn Fn(&str) -> bool + Send>,
    max_text: u64,
    text_bytes: u64,
    /// Lines completed so far.
    line: u64,
    /// The current line's bytes, when it spans pushes.
    partial: Vec<u8>,
    stanza: Option<Stanza>,
    kept: BTreeMap<String, Kept>,
    /// The error behind an `io::Error` handed to the gzip decoder.
    refused: Option<DebianError>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Kept {
    size: u64,
    sha256: Digest,
    line: u64,
}

/// The fields read from stanzas; all others are skipped unread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    Package,
    Filename,
    Size,
    Sha256,
    Directory,
    ChecksumsSha256,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Package => "Package",
            Field::Filename => "Filename",
            Field::Size => "Size",
            Field::Sha256 => "SHA256",
            Field::Directory => "Directory",
            Field::ChecksumsSha256 => "Checksums-Sha256",
        }
    }

    /// The fields of `kind` an index stanza is read for.
    fn of(kind: IndexKind, name: &[u8]) -> Option<Field> {
        let fields: &[Field] = match kind {
            IndexKind::Packages => &[Field::Package, Field::Filename, Field::Size, Field::Sha256],
            IndexKind::Sources => &[Field::Package, Field::Directory, Field::ChecksumsSha256],
        };
        fields.iter().copied().find(|field| control::is_field(name, field.name()))
    }
}

#[derive(Default)]
struct Stanza {
    start: u64,
    bytes: usize,
    /// Inside a field (continuation lines allowed); `Some` when it is a read one.
    current: Option<Option<Field>>,
    seen: Vec<Field>,
    package: Option<String>,
    filename: Option<String>,
    size: Option<u64>,
    sha256: Option<Digest>,
    directory: Option<String>,
    /// Sources `Checksums-Sha256` entries: (digest, size, file name).
    checksums: Vec<(Digest, u64, String)>,
}

impl Stanzas {
    fn new(kind: IndexKind, wanted: Box<dyn Fn(&str) -> bool + Send>) -> Stanzas {
        Stanzas {
            kind,
            wanted,
            max_text: DEFAULT_MAX_DECOMPRESSED,
            text_bytes: 0,
            line: 0,
            partial: Vec::new(),
            stanza: None,
            kept: BTreeMap::new(),
            refused: None,
        }
    }

    /// Takes the next piece of text.
    fn push(&mut self, text: &[u8]) -> Result<(), DebianError> {
        self.text_bytes = self.text_bytes.saturating_add(text.len() as u64);
        if self.text_bytes > self.max_text {
            return Err(DebianError::TooLarge { limit: self.max_text });
        }
        let mut rest = text;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(end);
            rest = after.get(1..).unwrap_or_default();
            if self.partial.is_empty() {
                self.line(line)?;
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole)?;
                whole.clear();
                self.partial = whole;
            }
        }
        self.partial.extend_from_slice(rest);
        let held = self.stanza.as_ref().map_or(0, |stanza| stanza.bytes) + self.partial.len();
        if held > MAX_STANZA_LEN {
            let start = self.stanza.as_ref().map_or(self.line + 1, |stanza| stanza.start);
            return Err(DebianError::StanzaTooLong { line: start, limit: MAX_STANZA_LEN });
        }
        Ok(())
    }

    /// One complete line, without its `\n`.
    fn line(&mut self, raw: &[u8]) -> Result<(), DebianError> {
        self.line += 1;
        let line = self.line;
        let classified = control::classify(raw);
        if classified == Ok(Line::Blank) {
            return self.end_stanza();
        }
        let stanza = self.stanza.get_or_insert_with(|| Stanza { start: line, ..Stanza::default() });
        stanza.bytes += raw.len() + 1;
        if stanza.bytes > MAX_STANZA_LEN {
            return Err(DebianError::StanzaTooLong { line: stanza.start, limit: MAX_STANZA_LEN });
        }
        let at = |stanza: &Stanza, problem| DebianError::IndexLine { line, package: stanza.package.clone(), problem };
        let outcome = match classified {
            Ok(Line::Field { name, value }) => stanza.field(self.kind, name, value),
            Ok(Line::Continuation(value)) => stanza.continuation(value),
            Ok(Line::Blank) => Ok(()),
            Err(problem) => Err(problem),
        };
        outcome.map_err(|problem| at(stanza, problem))
    }

    /// A blank line (or the end of the text): the stanza is complete.
    fn end_stanza(&mut self) -> Result<(), DebianError> {
        let Some(stanza) = self.stanza.take() else {
            return Ok(());
        };
        let start = stanza.start;
        for listed in stanza.listed(self.kind)? {
            self.keep(listed, start)?;
        }
        Ok(())
    }

    fn keep(&mut self, listed: Listed, line: u64) -> Result<(), DebianError> {
        if !(self.wanted)(&listed.path) {
            return Ok(());
        }
        let kept = Kept { size: listed.size, sha256: listed.sha256, line };
        match self.kept.entry(listed.path) {
            Entry::Vacant(slot) => {
                slot.insert(kept);
                Ok(())
            }
            Entry::Occupied(slot) if (slot.get().size, slot.get().sha256) == (kept.size, kept.sha256) => Ok(()),
            Entry::Occupied(slot) => {
                let first = slot.get().line;
                Err(DebianError::ConflictingListing { path: slot.key().clone(), first, second: line })
            }
        }
    }

    fn finish(mut self) -> Result<Vec<Listed>, DebianError> {
        if !self.partial.is_empty() {
            return Err(DebianError::Truncated { what: "the last line has no line ending" });
        }
        self.end_stanza()?;
        let listed = self.kept.into_iter().map(|(path, kept)| Listed { path, size: kept.size, sha256: kept.sha256 });
        Ok(listed.collect())
    }
}

/// The gzip decoder writes the text here; a refusal travels back through it as an
/// `io::Error` and is recovered from `refused`.
impl Write for Stanzas {
    fn write(&mut self, text: &[u8]) -> io::Result<usize> {
        match self.push(text) {
            Ok(()) => Ok(text.len()),
            Err(refused) => {
                self.refused = Some(refused);
                Err(io::Error::other("the index text was refused"))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stanza {
    fn field(&mut self, kind: IndexKind, name: &[u8], value: &[u8]) -> Result<(), FieldProblem> {
        let field = Field::of(kind, name);
        self.current = Some(field);
        let Some(field) = field else {
            return Ok(());
        };
        if self.seen.contains(&field) {
            return Err(FieldProblem::Duplicate(field.name().to_owned()));
        }
        self.seen.push(field);
        let value = control::text(value)?;
        match field {
            Field::Package => self.package = Some(shown(value)),
            Field::Filename => self.filename = Some(path(value)?.to_owned()),
            Field::Size => self.size = Some(control::size("Size", value)?),
            Field::Sha256 => self.sha256 = Some(control::digest("SHA256", value)?),
            Field::Directory => self.directory = Some(path(value)?.to_owned()),
            Field::ChecksumsSha256 if value.is_empty() => {}
            Field::ChecksumsSha256 => self.checksum(value)?,
        }
        Ok(())
    }

    fn continuation(&mut self, value: &[u8]) -> Result<(), FieldProblem> {
        match self.current {
            None => Err(FieldProblem::ContinuationFirst),
            Some(Some(Field::ChecksumsSha256)) => self.checksum(control::text(value)?),
            Some(Some(field @ (Field::Package | Field::Filename | Field::Size | Field::Sha256 | Field::Directory))) => {
                Err(FieldProblem::Multiline(field.name()))
            }
            Some(None) => Ok(()),
        }
    }

    fn checksum(&mut self, line: &str) -> Result<(), FieldProblem> {
        let (digest, size, name) = control::checksum_line("Checksums-Sha256", line)?;
        let bad = |problem| FieldProblem::BadPath { path: shown(name), problem };
        check_relative_path(name).map_err(bad)?;
        if name.contains('/') {
            return Err(bad(PathProblem::NotAFileName));
        }
        self.checksums.push((digest, size, name.to_owned()));
        Ok(())
    }

    /// The files the complete stanza lists, or the field it lacks.
    fn listed(self, kind: IndexKind) -> Result<Vec<Listed>, DebianError> {
        let missing = |field: Field| DebianError::IndexMissing {
            line: self.start,
            package: self.package.clone(),
            field: field.name(),
        };
        match kind {
            IndexKind::Packages => {
                let path = self.filename.clone().ok_or_else(|| missing(Field::Filename))?;
                let size = self.size.ok_or_else(|| missing(Field::Size))?;
                let sha256 = self.sha256.ok_or_else(|| missing(Field::Sha256))?;
                Ok(vec![Listed { path, size, sha256 }])
            }
            IndexKind::Sources => {
                let directory = self.directory.clone().ok_or_else(|| missing(Field::Directory))?;
                if !self.seen.contains(&Field::ChecksumsSha256) {
                    return Err(missing(Field::ChecksumsSha256));
                }
                self.checksums
                    .into_iter()
                    .map(|(sha256, size, name)| {
                        let path = format!("{directory}/{name}");
                        match path.len() > MAX_PATH_LEN {
                            true => Err(DebianError::IndexLine {
                                line: self.start,
                                package: self.package.clone(),
                                problem: FieldProblem::BadPath { path: shown(&path), problem: PathProblem::TooLong },
                            }),
                            false => Ok(Listed { path, size, sha256 }),
                        }
                    })
                    .collect()
            }
        }
    }
}

/// A repository-relative path from a `Filename:` or `Directory:` value.
fn path(value: &str) -> Result<&str, FieldProblem> {
    check_relative_path(value).map_err(|problem| FieldProblem::BadPath { path: shown(value), problem })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::producer::debian::index_kind;

    use crate::producer::debian::fixtures::{self, LDB_DEV, SAMBA_AD_DC};

    fn packages_text() -> Vec<u8> {
        fixtures::PACKAGES.to_vec()
    }

    /// What `sha256sum` and `stat` say about a fixture pool file.
    fn listed_as_on_disk(path: &str) -> Listed {
        let bytes = match path {
            SAMBA_AD_DC => fixtures::SAMBA_AD_DC_DEB,
            LDB_DEV => fixtures::LDB_DEV_DEB,
            _ => panic!("no fixture {path}"),
        };
        Listed { path: path.to_owned(), size: bytes.len() as u64, sha256: Digest::of(bytes) }
    }

    fn read(
        kind: IndexKind,
        compression: Compression,
        bytes: &[u8],
        chunk: usize,
        wanted: impl Fn(&str) -> bool + Send + 'static,
    ) -> Result<Vec<Listed>, DebianError> {
        let mut reader = IndexReader::new(kind, compression, Box::new(wanted));
        for piece in bytes.chunks(chunk) {
            reader.update(piece)?;
        }
        reader.finish()
    }

    fn read_packages(bytes: &[u8]) -> Result<Vec<Listed>, DebianError> {
        read(IndexKind::Packages, Compression::None, bytes, 4096, |_| true)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn the_real_packages_index_lists_the_fixture_debs_in_any_chunking() {
        let text = packages_text();
        let wanted = |path: &str| path == SAMBA_AD_DC || path == LDB_DEV;
        for chunk in [1, 7, 64 * 1024] {
            let listed = read(IndexKind::Packages, Compression::None, &text, chunk, wanted).unwrap();
            assert_eq!(listed, vec![listed_as_on_disk(LDB_DEV), listed_as_on_disk(SAMBA_AD_DC)], "chunk {chunk}");
        }
    }

    #[test]
    fn the_served_xz_index_reads_as_the_plain_one() {
        let plain = read_packages(&packages_text()).unwrap();
        assert_eq!(plain.len(), 38);
        let (kind, compression) = index_kind("main/binary-amd64/Packages.xz").unwrap();
        for chunk in [1, 7, 64 * 1024] {
            let xz = read(kind, compression, fixtures::PACKAGES_XZ, chunk, |_| true).unwrap();
            assert_eq!(xz, plain, "chunk {chunk}");
        }
    }

    #[test]
    fn a_gzip_index_reads_as_the_plain_one() {
        let plain = read_packages(&packages_text()).unwrap();
        let gz = gzip(&packages_text());
        for chunk in [1, 7, 64 * 1024] {
            assert_eq!(read(IndexKind::Packages, Compression::Gzip, &gz, chunk, |_| true).unwrap(), plain);
        }
        // Two gzip members read as one text, as zcat reads them.
        let text = packages_text();
        let (first, second) = text.split_at(text.len() / 2);
        let two_members = [gzip(first), gzip(second)].concat();
        assert_eq!(read(IndexKind::Packages, Compression::Gzip, &two_members, 999, |_| true).unwrap(), plain);
    }

    #[test]
    fn the_real_sources_index_lists_directory_and_checksum_names() {
        let listed = read(IndexKind::Sources, Compression::Xz, fixtures::SOURCES_XZ, 7, |_| true).unwrap();
        assert_eq!(listed.len(), 17, "the 17 Checksums-Sha256 lines of the 5 stanzas");
        let dsc = listed.iter().find(|l| l.path == "pool/main/o/openssh/openssh_9.2p1-2+deb12u7.dsc").unwrap();
        assert_eq!(dsc.size, 3535);
        assert_eq!(dsc.sha256.to_hex(), "08f5d94dbd2517a25432e8aa0d0eadc50b5459a8b35dcb88336e4cb555cb2da1");
        assert!(listed.iter().any(|l| l.path == "pool/main/o/openssh/openssh_9.2p1.orig.tar.gz.asc"));
        assert!(listed.iter().all(|l| l.path.starts_with("pool/main/")), "{listed:?}");
    }

    #[test]
    fn the_wanted_filter_bounds_what_is_kept() {
        let text = packages_text();
        let asked = Arc::new(Mutex::new(0usize));
        let counter = Arc::clone(&asked);
        let wanted = move |path: &str| {
            *counter.lock().unwrap() += 1;
            path == SAMBA_AD_DC
        };
        let mut reader = IndexReader::new(IndexKind::Packages, Compression::None, Box::new(wanted));
        for piece in text.chunks(512) {
            reader.update(piece).unwrap();
            assert!(reader.kept() <= 1, "kept {} entries with one wanted", reader.kept());
        }
        assert_eq!(reader.finish().unwrap(), vec![listed_as_on_disk(SAMBA_AD_DC)]);
        assert_eq!(*asked.lock().unwrap(), 38, "every stanza's path was offered once");
        assert_eq!(read(IndexKind::Packages, Compression::None, &text, 512, |_| false).unwrap(), vec![]);
    }

    /// The fixture Packages with the samba-ad-dc stanza's text changed.
    fn tampered(from: &str, to: &str) -> Vec<u8> {
        let text = String::from_utf8(packages_text()).unwrap();
        let start = text.find("Package: samba-ad-dc\n").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        assert!(text[start..end].contains(from), "{from:?} not in the stanza");
        let stanza = text[start..end].replacen(from, to, 1);
        format!("{}{stanza}{}", &text[..start], &text[end..]).into_bytes()
    }

    fn line_problem(result: Result<Vec<Listed>, DebianError>) -> (u64, Option<String>, FieldProblem) {
        match result {
            Err(DebianError::IndexLine { line, package, problem }) => (line, package, problem),
            other => panic!("expected an index line error, got {other:?}"),
        }
    }

    const SAMBA_SHA256: &str = "SHA256: 26f1dbdf499c4646bdcb158fe4cecb92f8b4201b7972c4f4a51a9ff90aad3ca2";

    #[test]
    fn tampered_stanzas_are_refused_naming_line_and_package() {
        let twice = tampered(SAMBA_SHA256, &format!("{SAMBA_SHA256}\nSHA256: {}", "0".repeat(64)));
        let (line, package, problem) = line_problem(read_packages(&twice));
        assert_eq!(
            (line, package.as_deref(), problem),
            (533, Some("samba-ad-dc"), FieldProblem::Duplicate("SHA256".into()))
        );
        let lowercase_twice = tampered("Size: 30344", "Size: 30344\nsize: 1");
        assert!(matches!(line_problem(read_packages(&lowercase_twice)).2, FieldProblem::Duplicate(_)));

        let missing = read_packages(&tampered(SAMBA_SHA256, "MD5sum: 0123"));
        match missing {
            Err(error @ DebianError::IndexMissing { line: 515, field: "SHA256", .. }) => {
                assert!(error.to_string().contains("package \"samba-ad-dc\""), "{error}")
            }
            other => panic!("{other:?}"),
        }
        let no_filename = read_packages(&tampered("Filename:", "Filename-Old:"));
        assert!(matches!(no_filename, Err(DebianError::IndexMissing { field: "Filename", .. })), "{no_filename:?}");

        let bad_digest = tampered(SAMBA_SHA256, "SHA256: 26f1dbdf");
        assert!(matches!(line_problem(read_packages(&bad_digest)).2, FieldProblem::BadDigest { .. }));
        let multiline = tampered(SAMBA_SHA256, &format!("{SAMBA_SHA256}\n 00"));
        assert_eq!(line_problem(read_packages(&multiline)).2, FieldProblem::Multiline("SHA256"));
        let no_colon = tampered("Section: net", "Section net");
        assert_eq!(line_problem(read_packages(&no_colon)), (528, Some("samba-ad-dc".into()), FieldProblem::NoColon));
    }

    #[test]
    fn hostile_paths_and_sizes_are_refused() {
        for (filename, want) in [
            ("../../../etc/passwd", PathProblem::DotComponent),
            ("/etc/passwd", PathProblem::Absolute),
            ("pool//main/x.deb", PathProblem::EmptyComponent),
            ("pool/main/\u{1b}[2J.deb", PathProblem::ForbiddenChar),
        ] {
            let text = tampered(&format!("Filename: {SAMBA_AD_DC}"), &format!("Filename: {filename}"));
            match line_problem(read_packages(&text)).2 {
                FieldProblem::BadPath { problem, .. } => assert_eq!(problem, want, "{filename}"),
                other => panic!("{filename}: {other:?}"),
            }
        }
        for size in ["99999999999999999999999", "-1", "3e4", "0x10"] {
            let text = tampered("Size: 30344", &format!("Size: {size}"));
            assert!(matches!(line_problem(read_packages(&text)).2, FieldProblem::BadSize { .. }), "{size}");
        }
        // The largest u64 is a size the index may state; the manifest's size check then fails.
        let huge = tampered("Size: 30344", &format!("Size: {}", u64::MAX));
        let listed = read(IndexKind::Packages, Compression::None, &huge, 4096, |p| p == SAMBA_AD_DC).unwrap();
        assert_eq!(listed[0].size, u64::MAX);
    }

    #[test]
    fn one_path_listed_twice_must_agree() {
        let text = String::from_utf8(packages_text()).unwrap();
        let start = text.find("Package: samba-ad-dc\n").unwrap();
        let stanza = &text[start..start + text[start..].find("\n\n").unwrap() + 2];
        let same_again = format!("{text}\n{stanza}");
        assert_eq!(read_packages(same_again.as_bytes()).unwrap().len(), 38, "an identical repeat is harmless");
        let other_hash = format!("{text}\n{}", stanza.replace("26f1dbdf", "36f1dbdf"));
        match read_packages(other_hash.as_bytes()) {
            Err(DebianError::ConflictingListing { path, first: 515, .. }) => assert_eq!(path, SAMBA_AD_DC),
            other => panic!("{other:?}"),
        }
        // Not wanted, not kept, not compared: memory stays with the wanted entries.
        assert!(read(IndexKind::Packages, Compression::None, other_hash.as_bytes(), 4096, |_| false).is_ok());
    }

    #[test]
    fn sources_stanzas_are_checked() {
        let hex = "d4d57c9b56db87c8ebe7a0c27d55023e3369d183d4b774bdf455f775a80f00eb";
        let stanza = |directory: &str, name: &str| {
            format!("Package: x\nChecksums-Sha256:\n {hex} 1800 {name}\nFiles:\n 0123 1 {name}\n{directory}\n")
        };
        let read_sources = |text: String| read(IndexKind::Sources, Compression::None, text.as_bytes(), 3, |_| true);
        let listed = read_sources(stanza("Directory: pool/main/x", "x_1.dsc")).unwrap();
        assert_eq!(
            listed,
            vec![Listed { path: "pool/main/x/x_1.dsc".into(), size: 1800, sha256: Digest::from_hex(hex).unwrap() }]
        );
        let problem = |text| match line_problem(read_sources(text)).2 {
            FieldProblem::BadPath { problem, .. } => problem,
            other => panic!("{other:?}"),
        };
        assert_eq!(problem(stanza("Directory: pool/main/x", "sub/x_1.dsc")), PathProblem::NotAFileName);
        assert_eq!(problem(stanza("Directory: pool/main/x", "../x_1.dsc")), PathProblem::DotComponent);
        assert_eq!(problem(stanza("Directory: pool/main/x", "..")), PathProblem::DotComponent);
        assert_eq!(problem(stanza("Directory: /srv/pool", "x_1.dsc")), PathProblem::Absolute);
        assert!(matches!(
            read_sources(stanza("Section: misc", "x_1.dsc")),
            Err(DebianError::IndexMissing { field: "Directory", .. })
        ));
        let md5_only = "Package: x\nFiles:\n 0123 1 x_1.dsc\nDirectory: pool/main/x\n".to_owned();
        assert!(matches!(read_sources(md5_only), Err(DebianError::IndexMissing { field: "Checksums-Sha256", .. })));
    }

    #[test]
    fn overlong_stanzas_and_lines_are_refused_without_holding_them() {
        let long_description = "\n .".repeat(MAX_STANZA_LEN / 2);
        let text = tampered("Section: net", &format!("Section: net{long_description}"));
        assert!(matches!(read_packages(&text), Err(DebianError::StanzaTooLong { line: 515, .. })));

        // One line with no end: refused once it passes the limit, long before all of it came.
        let mut reader = IndexReader::new(IndexKind::Packages, Compression::None, Box::new(|_| true));
        reader.update(b"Package: x\nDescription: ").unwrap();
        let piece = vec![b'a'; 64 * 1024];
        let pushes = (0..64).map(|_| reader.update(&piece)).position(|r| r.is_err());
        assert_eq!(pushes, Some(15), "refused at the 16th 64 KiB piece (1 MiB)");
        assert!(matches!(reader.update(b"\n"), Err(DebianError::AlreadyFailed)));
        assert!(matches!(reader.finish(), Err(DebianError::AlreadyFailed)));
    }

    #[test]
    fn truncated_streams_are_refused() {
        let text = packages_text();
        let cut = &text[..text.len() - 10];
        assert!(matches!(read_packages(cut), Err(DebianError::Truncated { .. })), "mid-line");
        let mid_stanza = &text[..text.len() - 20 - SAMBA_SHA256.len()];
        let end = mid_stanza.iter().rposition(|&b| b == b'\n').unwrap() + 1;
        assert!(matches!(read_packages(&mid_stanza[..end]), Err(DebianError::IndexMissing { .. })), "mid-stanza");
        assert_eq!(read_packages(b"").unwrap(), vec![], "an empty index (Debian publishes them) lists nothing");

        let xz = fixtures::PACKAGES_XZ.to_vec();
        for keep in [0, 10, xz.len() / 2, xz.len() - 1] {
            let result = read(IndexKind::Packages, Compression::Xz, &xz[..keep], 7, |_| true);
            assert!(matches!(result, Err(DebianError::Truncated { .. })), "{keep}: {result:?}");
        }
        let gz = gzip(&text);
        for keep in [5, 10, gz.len() / 2, gz.len() - 1] {
            let result = read(IndexKind::Packages, Compression::Gzip, &gz[..keep], 7, |_| true);
            assert!(matches!(result, Err(DebianError::Decompress { compression: "gzip", .. })), "{keep}: {result:?}");
        }
    }

    #[test]
    fn damaged_or_padded_compressed_data_is_refused() {
        let xz = fixtures::PACKAGES_XZ.to_vec();
        let mut flipped = xz.clone();
        flipped[xz.len() / 2] ^= 0x55;
        assert!(read(IndexKind::Packages, Compression::Xz, &flipped, 4096, |_| true).is_err());
        let trailing = [xz.as_slice(), b"garbage!"].concat();
        let result = read(IndexKind::Packages, Compression::Xz, &trailing, 4096, |_| true);
        assert!(matches!(result, Err(DebianError::Decompress { compression: "xz", .. })), "{result:?}");

        let gz = gzip(&packages_text());
        let trailing = [gz.as_slice(), b"garbage!"].concat();
        let result = read(IndexKind::Packages, Compression::Gzip, &trailing, 4096, |_| true);
        assert!(matches!(result, Err(DebianError::Decompress { compression: "gzip", .. })), "{result:?}");
        let result = read(IndexKind::Packages, Compression::Gzip, &packages_text(), 4096, |_| true);
        assert!(matches!(result, Err(DebianError::Decompress { compression: "gzip", .. })), "not gzip: {result:?}");
        // The text's own error wins over the decoder's when the text is what is wrong.
        let result = read(IndexKind::Packages, Compression::Gzip, &gzip(b"no colon\n"), 4096, |_| true);
        assert_eq!(line_problem(result).2, FieldProblem::NoColon);
    }

    #[test]
    fn decompression_bombs_are_refused_by_name() {
        assert_eq!(DEFAULT_MAX_DECOMPRESSED, 4 << 30);
        let bomb = gzip(&vec![b'\n'; 8 << 20]);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let mut reader =
            IndexReader::new(IndexKind::Packages, Compression::Gzip, Box::new(|_| true)).with_max_decompressed(1 << 20);
        let error = reader.update(&bomb).unwrap_err();
        assert!(matches!(error, DebianError::TooLarge { limit: 1_048_576 }), "{error:?}");
        assert!(error.to_string().contains("decompression bomb"), "{error}");
        let mut plain =
            IndexReader::new(IndexKind::Packages, Compression::None, Box::new(|_| true)).with_max_decompressed(10);
        assert!(matches!(plain.update(&[b'\n'; 11]), Err(DebianError::TooLarge { .. })));
    }

    #[test]
    fn the_reader_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<IndexReader>();
        assert_send::<DebianError>();
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            chunk in 1usize..50,
            which in 0usize..6,
        ) {
            let kind = if which % 2 == 0 { IndexKind::Packages } else { IndexKind::Sources };
            let compression = [Compression::None, Compression::Gzip, Compression::Xz][which / 2];
            let _ = read(kind, compression, &bytes, chunk, |_| true);
        }

        #[test]
        fn mangled_real_stanzas_never_panic(cut in 0usize..2000, insert in "[ -~\n\t:]{0,30}", chunk in 1usize..100) {
            let text = String::from_utf8(packages_text()).unwrap();
            let text = &text[text.len() - 2000..];
            let at = text.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(0);
            let mangled = format!("{}{insert}{}", &text[..at], &text[at..]);
            let _ = read(IndexKind::Packages, Compression::None, mangled.as_bytes(), chunk, |_| true);
            let _ = read(IndexKind::Sources, Compression::None, mangled.as_bytes(), chunk, |_| true);
        }
    }
}
