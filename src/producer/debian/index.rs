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
    decoder.try_finish().map_err(|error| decoder.get_mut().refused.take().unwrap_or_else(|| gzip_end_error(error.to_string())))
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
        let result = stream.process(rest, output, action).map_err(|e| undecodable(e.to_string()))?;
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
