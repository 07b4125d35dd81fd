//! The receipt: a signed statement from the inside of what a mirror holds (FORMAT.md §15).
//!
//! A receipt is the one artifact that leaves the air gap, so its text has a fixed grammar
//! and no free text: every field is a number, a digest, a channel name (already restricted
//! by the channel rule) or a fixed word. It is signed as a signify *embedded* signature
//! (`signify -S -e`: the two signature lines, then the text), so stock signify checks it:
//! `signify -V -e -p inside.pub -x RECEIPT -m OUT`.
//!
//! ```text
//! airlock-receipt 1
//! mirror <32 hex>
//! created <unix seconds>
//! log <records> <64 hex>
//! channel <name> <sequence> <manifest 64 hex> <files> <bytes> <root 64 hex> intact|damaged
//! state <files> <bytes> <root 64 hex>
//! ```
//!
//! [`decode`] accepts only the canonical text: each line is parsed and re-encoded, and must
//! come out byte for byte the same, so two readers can never read one receipt two ways.

pub use crate::format::manifest::MirrorId;
use crate::format::manifest::{check_channel, Entry};
use crate::io::digest::{Digest, Hasher};
use crate::keys::signify::{parse_embedded, sign_embedded};
use crate::keys::{KeyError, KeyId, PublicKey, SecretKey};

/// The first line of every receipt: the format and its version.
pub const HEADER: &str = "airlock-receipt 1";
/// Largest signed receipt file, in bytes (signature lines included).
pub const MAX_RECEIPT_BYTES: usize = 64 << 10;
/// Most channel lines in one receipt (the byte limit usually binds first).
pub const MAX_CHANNELS: usize = 4096;

/// What a mirror holds, as signed by the inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The mirror's id.
    pub mirror: MirrorId,
    /// When the receipt was made (Unix seconds).
    pub created: u64,
    /// Records in the mirror's import log.
    pub log_records: u64,
    /// SHA-256 of the log's last line (the head of its hash chain; zeros for an empty log).
    pub log_head: Digest,
    /// One per channel the mirror has imported, sorted by name.
    pub channels: Vec<ReceiptChannel>,
    /// Files the mirror holds (all channels).
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// [`state_root`] of those files.
    pub root: Digest,
}

/// One channel of a [`Receipt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptChannel {
    /// The channel name.
    pub name: String,
    /// The last sequence imported.
    pub sequence: u64,
    /// The digest of that bundle's manifest.
    pub manifest: Digest,
    /// Files of the channel the mirror holds as found (a file failing its check is left out).
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// [`state_root`] of those files.
    pub root: Digest,
    /// Whether those files equal the manifest's entries exactly.
    pub intact: bool,
}

/// SHA-256 over the lines `"<sha256 hex> <size> <mode octal> <path>\n"` of `entries`,
/// sorted by path bytes: a commitment to a set of files, recomputable from a manifest.
pub fn state_root<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Digest {
    let mut sorted: Vec<&Entry> = entries.into_iter().collect();
    // Manifests are sorted already; sorting again keeps the root independent of the caller.
    sorted.sort_by(|a, b| a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes()));
    let mut hasher = Hasher::new();
    for e in sorted {
        let line = format!("{} {} {:o} {}\n", e.sha256, e.size, e.mode.bits(), e.path.as_str());
        hasher.update(line.as_bytes());
    }
    hasher.finish()
}

/// Why receipt text, or a signed receipt, is refused. The prose is only in `Display`; each
/// says what is wrong and where (a line number, a key id).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The file is larger than any receipt can be.
    #[error("is {size} bytes, more than a receipt's limit of {MAX_RECEIPT_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// The two signify signature lines cannot be read.
    #[error("is not a signify embedded signature (`signify -S -e`): {0}")]
    Container(KeyError),
    /// No trusted key has the signature's key id.
    #[error("is signed by key {key_id}, which is not among the trusted keys ({trusted}); trust the public key of the mirror's receipt key")]
    UnknownKey {
        /// The signature's key id.
        key_id: KeyId,
        /// The trusted key ids, comma-separated (`none` if there are none).
        trusted: String,
    },
    /// The signature does not verify with the trusted key of its id.
    #[error("signature by key {key_id} does not verify: the receipt was altered or not signed by that key")]
    BadSignature {
        /// The signature's key id.
        key_id: KeyId,
    },
    /// A line of the text is not what the grammar allows there.
    #[error("line {line}: {problem}")]
    Line {
        /// 1-based line number in the receipt text (after the signature lines).
        line: usize,
        /// What is wrong with it.
        problem: LineProblem,
    },
    /// The text ends before the `state` line.
    #[error("ends after line {lines} without its `state` line (truncated?)")]
    Truncated {
        /// Lines read.
        lines: usize,
    },
    /// Something follows the `state` line.
    #[error("has {extra} bytes after the `state` line (line {line})")]
    TrailingData {
        /// The line number the extra bytes start on.
        line: usize,
        /// How many.
        extra: usize,
    },
    /// Channel lines out of order or repeated.
    #[error("channels are not strictly sorted by name: {first:?} then {second:?} (duplicate or reordered)")]
    Unsorted {
        /// The earlier name.
        first: String,
        /// The name after it.
        second: String,
    },
    /// More channel lines than allowed.
    #[error("has more than {MAX_CHANNELS} channel lines")]
    TooManyChannels,
    /// A channel name breaks the channel rule (only when encoding: the decoder reports it
    /// per line).
    #[error("channel name {name:?} breaks the channel rule")]
    BadChannel {
        /// The name.
        name: String,
    },
    /// A channel's sequence is 0 (only when encoding).
    #[error("channel {name:?} has sequence 0; sequences start at 1")]
    ZeroSequence {
        /// The channel.
        name: String,
    },
}

/// What is wrong with one line of receipt text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineProblem {
    /// The line has no terminating newline.
    #[error("has no newline at its end")]
    NoNewline,
    /// The line is not UTF-8.
    #[error("is not UTF-8")]
    NotUtf8,
    /// The first line is not [`HEADER`].
    #[error("expected {HEADER:?} (not an airlock receipt, or a newer version)")]
    Header,
    /// The line does not start with the keyword the grammar expects there.
    #[error("expected a line starting with {expected}")]
    Expected {
        /// The keyword(s) allowed.
        expected: &'static str,
    },
    /// The line has the wrong number of fields.
    #[error("`{keyword}` line has {found} fields, expected {expected}")]
    FieldCount {
        /// The line's keyword.
        keyword: &'static str,
        /// Fields found (keyword included).
        found: usize,
        /// Fields it must have.
        expected: usize,
    },
    /// A field cannot be read.
    #[error("field {field} is not {what}")]
    BadField {
        /// The field's name.
        field: &'static str,
        /// What it must be.
        what: &'static str,
    },
    /// The line parses, but is not written the one canonical way (leading zeros, upper-case
    /// hex, extra spaces).
    #[error("is not in canonical form (docs/FORMAT.md §15)")]
    NotCanonical,
}

/// The receipt text: fails only for a receipt airlock would itself refuse to decode.
pub fn encode(receipt: &Receipt) -> Result<Vec<u8>, ReceiptError> {
    check_channels(&receipt.channels)?;
    let text = encode_unchecked(receipt);
    if text.len() > MAX_RECEIPT_BYTES - SIGNATURE_ALLOWANCE {
        return Err(ReceiptError::TooLarge { size: text.len() + SIGNATURE_ALLOWANCE });
    }
    Ok(text.into_bytes())
}

/// The most the signature lines [`sign`] writes can take: `untrusted comment: ` plus the
/// comment, a newline, and 100 base64 characters and a newline.
const SIGNATURE_ALLOWANCE: usize = 19 + COMMENT_MAX + 1 + 100 + 1;
/// Longest comment [`sign`] writes.
const COMMENT_MAX: usize = 64;

fn check_channels(channels: &[ReceiptChannel]) -> Result<(), ReceiptError> {
    if channels.len() > MAX_CHANNELS {
        return Err(ReceiptError::TooManyChannels);
    }
    for c in channels {
        if check_channel(&c.name).is_err() {
            return Err(ReceiptError::BadChannel { name: c.name.clone() });
        }
        if c.sequence == 0 {
            return Err(ReceiptError::ZeroSequence { name: c.name.clone() });
        }
    }
    for pair in channels.windows(2) {
        if let [a, b] = pair {
            if a.name.as_bytes() >= b.name.as_bytes() {
                return Err(ReceiptError::Unsorted { first: a.name.clone(), second: b.name.clone() });
            }
        }
    }
    Ok(())
}

fn encode_unchecked(r: &Receipt) -> String {
    let mut out = String::with_capacity(200 + 250 * r.channels.len());
    out.push_str(HEADER);
    out.push('\n');
    out.push_str(&mirror_line(&r.mirror));
    out.push_str(&created_line(r.created));
    out.push_str(&log_line(r.log_records, &r.log_head));
    for c in &r.channels {
        out.push_str(&channel_line(c));
    }
    out.push_str(&state_line(r.files, r.bytes, &r.root));
    out
}

fn mirror_line(id: &MirrorId) -> String {
    format!("mirror {id}\n")
}

fn created_line(t: u64) -> String {
    format!("created {t}\n")
}

fn log_line(records: u64, head: &Digest) -> String {
    format!("log {records} {head}\n")
}

fn channel_line(c: &ReceiptChannel) -> String {
    let state = if c.intact { "intact" } else { "damaged" };
    format!("channel {} {} {} {} {} {} {state}\n", c.name, c.sequence, c.manifest, c.files, c.bytes, c.root)
}

fn state_line(files: u64, bytes: u64, root: &Digest) -> String {
    format!("state {files} {bytes} {root}\n")
}

/// Reads receipt text (the message of the signed file), accepting only canonical text.
pub fn decode(text: &[u8]) -> Result<Receipt, ReceiptError> {
    if text.len() > MAX_RECEIPT_BYTES {
        return Err(ReceiptError::TooLarge { size: text.len() });
    }
    let mut lines = Lines { rest: text, number: 0 };
    let header = lines.next_line()?;
    if header != HEADER {
        return Err(lines.problem(LineProblem::Header));
    }
    let mirror = lines.parse("mirror", |[_, id]| MirrorId::from_hex(id).ok_or(("id", HEX32)), mirror_line)?;
    let created = lines.parse("created", |[_, t]| number(t, "time"), |v| created_line(*v))?;
    let (log_records, log_head) =
        lines.parse("log", |[_, n, d]| Ok((number(n, "records")?, digest(d, "head")?)), |(n, d)| log_line(*n, d))?;
    let mut channels: Vec<ReceiptChannel> = Vec::new();
    loop {
        let line = lines.next_line()?;
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.first().copied() {
            Some("channel") => {
                let channel = lines.check_line(line, "channel", &fields, parse_channel, channel_line)?;
                if let Some(prev) = channels.last() {
                    if prev.name.as_bytes() >= channel.name.as_bytes() {
                        return Err(ReceiptError::Unsorted { first: prev.name.clone(), second: channel.name });
                    }
                }
                if channels.len() == MAX_CHANNELS {
                    return Err(ReceiptError::TooManyChannels);
                }
                channels.push(channel);
            }
            Some("state") => {
                let parse =
                    |[_, n, b, r]: [&str; 4]| Ok((number(n, "files")?, number(b, "bytes")?, digest(r, "root")?));
                let (files, bytes, root) =
                    lines.check_line(line, "state", &fields, parse, |(n, b, r)| state_line(*n, *b, r))?;
                if !lines.rest.is_empty() {
                    return Err(ReceiptError::TrailingData { line: lines.number + 1, extra: lines.rest.len() });
                }
                return Ok(Receipt { mirror, created, log_records, log_head, channels, files, bytes, root });
            }
            _ => return Err(lines.problem(LineProblem::Expected { expected: "`channel` or `state`" })),
        }
    }
}

const HEX32: &str = "32 lowercase hex digits";
const HEX64: &str = "64 lowercase hex digits";

fn number(field: &str, name: &'static str) -> Result<u64, (&'static str, &'static str)> {
    // Canonical form (no leading zeros, no sign) is checked by re-encoding the line.
    if !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err((name, "a decimal number"));
    }
    field.parse().map_err(|_| (name, "a decimal number below 2^64"))
}

fn digest(field: &str, name: &'static str) -> Result<Digest, (&'static str, &'static str)> {
    Digest::from_hex(field).ok_or((name, HEX64))
}

fn parse_channel(f: [&str; 8]) -> Result<ReceiptChannel, (&'static str, &'static str)> {
    let [_, name, sequence, manifest, files, bytes, root, state] = f;
    check_channel(name).map_err(|_| ("name", "a channel name (A-Z a-z 0-9 . _ -, 1 to 64, not starting with .)"))?;
    let sequence = number(sequence, "sequence")?;
    if sequence == 0 {
        return Err(("sequence", "at least 1"));
    }
    let intact = match state {
        "intact" => true,
        "damaged" => false,
        _ => return Err(("state", "`intact` or `damaged`")),
    };
    Ok(ReceiptChannel {
        name: name.to_owned(),
        sequence,
        manifest: digest(manifest, "manifest")?,
        files: number(files, "files")?,
        bytes: number(bytes, "bytes")?,
        root: digest(root, "root")?,
        intact,
    })
}

/// The receipt text as lines, each ending in `\n`, with the current line's number.
struct Lines<'a> {
    rest: &'a [u8],
    number: usize,
}

impl<'a> Lines<'a> {
    fn problem(&self, problem: LineProblem) -> ReceiptError {
        ReceiptError::Line { line: self.number, problem }
    }

    /// The next line without its newline.
    fn next_line(&mut self) -> Result<&'a str, ReceiptError> {
        if self.rest.is_empty() {
            return Err(ReceiptError::Truncated { lines: self.number });
        }
        self.number += 1;
        let end = self.rest.iter().position(|&b| b == b'\n').ok_or(self.problem(LineProblem::NoNewline))?;
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest.get(1..).unwrap_or_default();
        std::str::from_utf8(line).map_err(|_| self.problem(LineProblem::NotUtf8))
    }

    /// Reads the next line, which must be a `keyword` line of `count` fields.
    fn parse<T, const N: usize>(
        &mut self,
        keyword: &'static str,
        parse: impl Fn([&str; N]) -> Result<T, (&'static str, &'static str)>,
        encode: impl Fn(&T) -> String,
    ) -> Result<T, ReceiptError> {
        let line = self.next_line()?;
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.first() != Some(&keyword) {
            return Err(self.problem(LineProblem::Expected { expected: keyword_quoted(keyword) }));
        }
        self.check_line(line, keyword, &fields, parse, encode)
    }

    /// Parses `fields` (of `line`, whose keyword is checked) and checks the line is the
    /// canonical encoding of what it parses to.
    fn check_line<'l, T, const N: usize>(
        &self,
        line: &str,
        keyword: &'static str,
        fields: &[&'l str],
        parse: impl Fn([&'l str; N]) -> Result<T, (&'static str, &'static str)>,
        encode: impl Fn(&T) -> String,
    ) -> Result<T, ReceiptError> {
        let fixed: [&str; N] = fields
            .try_into()
            .map_err(|_| self.problem(LineProblem::FieldCount { keyword, found: fields.len(), expected: N }))?;
        let value = parse(fixed).map_err(|(field, what)| self.problem(LineProblem::BadField { field, what }))?;
        let again = encode(&value);
        if again.strip_suffix('\n') != Some(line) {
            return Err(self.problem(LineProblem::NotCanonical));
        }
        Ok(value)
    }
}

fn keyword_quoted(keyword: &'static str) -> &'static str {
    match keyword {
        "mirror" => "`mirror`",
        "created" => "`created`",
        "log" => "`log`",
        "channel" => "`channel`",
        _ => "`state`",
    }
}

/// The signed receipt file: a signify embedded signature by `key` over [`encode`]'s text.
pub fn sign(receipt: &Receipt, key: &SecretKey) -> Result<Vec<u8>, ReceiptError> {
    let text = encode(receipt)?;
    // The comment is untrusted and fixed: it names the key id, nothing from the mirror.
    let comment = format!("airlock receipt signed by key {}", key.key_id());
    debug_assert!(comment.len() <= COMMENT_MAX);
    Ok(sign_embedded(key, &text, &comment))
}

/// Reads a signed receipt file: checks its signature against the trusted key with the
/// signature's key id (strict Ed25519), then decodes the text. Returns the receipt and the
/// key that signed it.
pub fn open_signed(bytes: &[u8], trusted: &[PublicKey]) -> Result<(Receipt, KeyId), ReceiptError> {
    if bytes.len() > MAX_RECEIPT_BYTES {
        return Err(ReceiptError::TooLarge { size: bytes.len() });
    }
    let (signature, text) = parse_embedded(bytes).map_err(ReceiptError::Container)?;
    let key_id = signature.key_id();
    let candidates: Vec<&PublicKey> = trusted.iter().filter(|k| k.key_id() == key_id).collect();
    if candidates.is_empty() {
        let ids: Vec<String> = trusted.iter().map(|k| k.key_id().to_string()).collect();
        let trusted = if ids.is_empty() { "none".to_owned() } else { ids.join(", ") };
        return Err(ReceiptError::UnknownKey { key_id, trusted });
    }
    // Two trusted keys may share a key id (it is only 8 bytes): the signature must verify
    // under one of them, compared by its whole public key.
    if !candidates.iter().any(|k| k.verify(text, &signature).is_ok()) {
        return Err(ReceiptError::BadSignature { key_id });
    }
    Ok((decode(text)?, key_id))
}

/// [`open_signed`] without the key id.
pub fn open(bytes: &[u8], trusted: &[PublicKey]) -> Result<Receipt, ReceiptError> {
    open_signed(bytes, trusted).map(|(r, _)| r)
}

impl Receipt {
    /// The line of `channel`, if the receipt lists it.
    pub fn channel(&self, name: &str) -> Option<&ReceiptChannel> {
        self.channels.binary_search_by(|c| c.name.as_str().cmp(name)).ok().and_then(|i| self.channels.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::Mode;

    pub(crate) fn sample() -> Receipt {
        Receipt {
            mirror: MirrorId([0x9f; 16]),
            created: 1_765_000_000,
            log_records: 12,
            log_head: Digest::of(b"log"),
            channels: vec![
                ReceiptChannel {
                    name: "alpha".into(),
                    sequence: 3,
                    manifest: Digest::of(b"m1"),
                    files: 2,
                    bytes: 100,
                    root: Digest::of(b"r1"),
                    intact: true,
                },
                ReceiptChannel {
                    name: "beta".into(),
                    sequence: 1,
                    manifest: Digest::of(b"m2"),
                    files: 0,
                    bytes: 0,
                    root: state_root(&[] as &[Entry]),
                    intact: false,
                },
            ],
            files: 2,
            bytes: 100,
            root: Digest::of(b"r"),
        }
    }

    fn text() -> String {
        String::from_utf8(encode(&sample()).unwrap()).unwrap()
    }

    #[test]
    fn encodes_the_documented_grammar_and_decodes_it_back() {
        let t = text();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "airlock-receipt 1");
        assert_eq!(lines[1], format!("mirror {}", "9f".repeat(16)));
        assert_eq!(lines[2], "created 1765000000");
        assert_eq!(lines[3], format!("log 12 {}", Digest::of(b"log")));
        assert!(lines[4].starts_with("channel alpha 3 ") && lines[4].ends_with(" intact"));
        assert!(lines[5].starts_with("channel beta 1 ") && lines[5].ends_with(" damaged"));
        assert_eq!(lines[6], format!("state 2 100 {}", Digest::of(b"r")));
        assert_eq!(lines.len(), 7);
        assert_eq!(decode(t.as_bytes()).unwrap(), sample());
    }

    /// Pins the receipt text: a change is a format change (FORMAT.md §12, §15).
    #[test]
    fn golden_text() {
        assert_eq!(text(), include_str!("../../fixtures/golden/receipt-v1.txt"));
    }

    #[test]
    fn no_channels_is_a_receipt_too() {
        let r = Receipt { channels: vec![], ..sample() };
        assert_eq!(decode(&encode(&r).unwrap()).unwrap(), r);
    }

    fn refused(text: &str) -> ReceiptError {
        decode(text.as_bytes()).expect_err(text)
    }

    fn line_problem(text: &str) -> (usize, LineProblem) {
        match refused(text) {
            ReceiptError::Line { line, problem } => (line, problem),
            other => panic!("expected a line problem, got {other:?}"),
        }
    }

    #[test]
    fn non_canonical_lines_are_refused_with_their_number() {
        let t = text();
        let cases = [
            (t.replace("created 1765000000", "created 01765000000"), 3, LineProblem::NotCanonical),
            (t.replace("log 12 ", "log  12 "), 4, LineProblem::FieldCount { keyword: "log", found: 4, expected: 3 }),
            (t.replace("9f9f", "9F9F"), 2, LineProblem::BadField { field: "id", what: HEX32 }),
            (t.replace(" intact", " ok"), 5, LineProblem::BadField { field: "state", what: "`intact` or `damaged`" }),
            (
                t.replace("created 1765000000", "created +1"),
                3,
                LineProblem::BadField { field: "time", what: "a decimal number" },
            ),
            (t.replace("alpha 3", "alpha 0"), 5, LineProblem::BadField { field: "sequence", what: "at least 1" }),
            (t.replace("airlock-receipt 1", "airlock-receipt 2"), 1, LineProblem::Header),
            (t.replace("created", "time"), 3, LineProblem::Expected { expected: "`created`" }),
            (t.replace('\n', "\r\n"), 1, LineProblem::Header),
        ];
        for (bad, line, problem) in cases {
            assert_eq!(line_problem(&bad), (line, problem), "{bad}");
        }
    }

    #[test]
    fn order_truncation_and_trailing_bytes_are_refused() {
        let t = text();
        let mut lines: Vec<&str> = t.lines().collect();
        lines.swap(4, 5);
        let swapped = lines.join("\n") + "\n";
        assert!(matches!(refused(&swapped), ReceiptError::Unsorted { .. }));
        let cut = t.rsplit_once("state").unwrap().0;
        assert!(matches!(refused(cut), ReceiptError::Truncated { lines: 6 }));
        assert!(matches!(refused(&format!("{t}x")), ReceiptError::TrailingData { line: 8, extra: 1 }));
        assert_eq!(line_problem(t.trim_end()), (7, LineProblem::NoNewline));
        assert!(matches!(refused(""), ReceiptError::Truncated { lines: 0 }));
        for n in 0..t.len() {
            assert!(decode(&t.as_bytes()[..n]).is_err());
        }
    }

    #[test]
    fn encode_refuses_what_decode_would() {
        let mut r = sample();
        r.channels.reverse();
        assert!(matches!(encode(&r), Err(ReceiptError::Unsorted { .. })));
        let mut r = sample();
        r.channels[0].name = "a b".into();
        assert!(matches!(encode(&r), Err(ReceiptError::BadChannel { .. })));
        let mut r = sample();
        r.channels[1].sequence = 0;
        assert!(matches!(encode(&r), Err(ReceiptError::ZeroSequence { .. })));
        let many = (0..2000)
            .map(|i| ReceiptChannel { name: format!("channel-{i:05}"), ..sample().channels[0].clone() })
            .collect();
        assert!(matches!(encode(&Receipt { channels: many, ..sample() }), Err(ReceiptError::TooLarge { .. })));
    }

    #[test]
    fn signed_receipts_open_with_the_right_key_only() {
        let key = SecretKey::generate("inside");
        let other = SecretKey::generate("other");
        let signed = sign(&sample(), &key).unwrap();
        assert_eq!(open(&signed, &[other.public_key(), key.public_key()]).unwrap(), sample());
        assert!(matches!(open(&signed, &[other.public_key()]), Err(ReceiptError::UnknownKey { .. })));
        assert!(matches!(open(&signed, &[]), Err(ReceiptError::UnknownKey { .. })));
        // One flipped bit in the text and the signature no longer verifies.
        let mut tampered = signed.clone();
        let at = tampered.len() - 3;
        tampered[at] ^= 1;
        assert!(
            matches!(open(&tampered, &[key.public_key()]), Err(ReceiptError::BadSignature { key_id }) if key_id == key.key_id())
        );
        assert!(matches!(open(b"airlock-receipt 1\n", &[key.public_key()]), Err(ReceiptError::Container(_))));
    }

    #[test]
    fn state_root_is_over_sorted_lines() {
        use crate::format::manifest::tests::entry;
        let a = entry("a", b"x", Mode::Regular);
        let b = entry("b/c", b"yz", Mode::Executable);
        let expected =
            Digest::of(format!("{} 1 644 a\n{} 2 755 b/c\n", Digest::of(b"x"), Digest::of(b"yz")).as_bytes());
        assert_eq!(state_root([&a, &b]), expected);
        assert_eq!(state_root([&b, &a]), expected);
        assert_eq!(state_root(&[] as &[Entry]), Digest::of(b""));
    }

    #[test]
    fn state_root_is_order_independent_and_pinned() {
        let m = crate::format::manifest::tests::sample();
        let forward = state_root(&m.entries);
        let backward = state_root(m.entries.iter().rev());
        assert_eq!(forward, backward);
        let mut text = String::new();
        for e in &m.entries {
            text.push_str(&format!("{} {} {:o} {}\n", e.sha256, e.size, e.mode.bits(), e.path.as_str()));
        }
        assert_eq!(forward, Digest::of(text.as_bytes()));
        assert_ne!(state_root(&m.entries[1..]), forward);
    }

    proptest::proptest! {
        /// Any one-byte change to a valid receipt is refused, or decodes to a receipt that
        /// encodes back to exactly the changed bytes: one text, one reading.
        #[test]
        fn changed_receipts_are_refused_or_canonical(at in 0usize..400, byte in proptest::num::u8::ANY) {
            let mut t = encode(&sample()).unwrap();
            let at = at % t.len();
            t[at] = byte;
            if let Ok(r) = decode(&t) {
                proptest::prop_assert_eq!(encode(&r).unwrap(), t);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = decode(&data);
            let _ = open(&data, &[]);
        }
    }
}
