//! [`RelPath`]: the only kind of path a bundle entry may have.
//!
//! A `RelPath` can only be built through [`RelPath::new`], which enforces the rules of
//! docs/FORMAT.md §"Entry paths". Every rule exists because some extractor somewhere was
//! broken by its absence (see docs/THREAT-MODEL.md): `..` and absolute paths escape the
//! destination, backslashes and drive letters do so on Windows, control characters hide
//! names from the operator, `)` cannot be written in a `signify -C` checksum list, and names
//! that differ only in case or Unicode normalisation overwrite each other on some filesystems.

use std::borrow::Cow;
use std::fmt;

use caseless::Caseless;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::{is_nfc, UnicodeNormalization};

/// The mirror's metadata directory; no entry may name or enter it (compared by
/// [`RelPath::collision_key`]).
pub const METADATA_DIR: &str = ".airlock";
/// Longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest path component, in bytes.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Most path components.
pub const MAX_DEPTH: usize = 64;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The empty string.
    #[error("path is empty")]
    Empty,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    /// More than [`MAX_DEPTH`] components.
    #[error("path is deeper than {MAX_DEPTH} components")]
    TooDeep,
    /// A component longer than [`MAX_COMPONENT_BYTES`].
    #[error("a path component is longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    /// Starts with `/`.
    #[error("path is absolute")]
    Absolute,
    /// An empty component (`a//b`, or a trailing `/`).
    #[error("path has an empty component (`//` or a trailing `/`)")]
    EmptyComponent,
    /// A `.` or `..` component.
    #[error("path has a `.` or `..` component")]
    DotComponent,
    /// A character that is never allowed.
    #[error("path contains the forbidden character {0:?}")]
    ForbiddenChar(char),
    /// Not in Unicode Normalization Form C.
    #[error("path is not in Unicode NFC form")]
    NotNfc,
    /// A component ending in `.` or space (Windows strips these and aliases names).
    #[error("a path component ends with `.` or a space")]
    TrailingDotOrSpace,
    /// A Windows device name (`CON`, `NUL`, `COM1`, ...).
    #[error("a path component is a reserved device name ({0})")]
    ReservedName(String),
    /// Names or enters the mirror's metadata directory.
    #[error("path names or enters the mirror's metadata directory `{METADATA_DIR}`")]
    MetadataDir,
}

/// A safe, normalised, relative, `/`-separated UTF-8 path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// Validates `text` against every rule; the error says which rule failed.
    pub fn new(text: &str) -> Result<RelPath, PathError> {
        validate(text)?;
        Ok(RelPath(text.to_owned()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        components(&self.0)
    }

    /// The parent directories, shortest first (`a/b/c` gives `a`, `a/b`).
    pub fn ancestors(&self) -> impl Iterator<Item = &str> {
        ancestors(&self.0)
    }

    /// The key under which two paths collide on a case-insensitive or normalising
    /// filesystem (docs/FORMAT.md §6.3): Unicode canonical caseless matching,
    /// NFD(fold(NFD(text))) with full case folding (status C and F of [`CASE_FOLDING_UNICODE`]),
    /// except that U+0131 (dotless i) also counts as `i`, as NTFS and exFAT upcase it to `I`.
    /// The key of a path is its components' keys joined by `/`.
    pub fn collision_key(text: &str) -> String {
        Self::collision_key_cow(text).into_owned()
    }

    /// [`RelPath::collision_key`] without a copy when the path is already its own key.
    pub fn collision_key_cow(text: &str) -> Cow<'_, str> {
        if text.is_ascii() {
            // ASCII is its own NFD, and folds to its lowercase; most paths are lowercase
            // already and need no copy.
            if !text.bytes().any(|b| b.is_ascii_uppercase()) {
                return Cow::Borrowed(text);
            }
            return Cow::Owned(text.to_ascii_lowercase());
        }
        let folded = text.chars().nfd().default_case_fold().map(|c| if c == '\u{131}' { 'i' } else { c });
        Cow::Owned(folded.nfd().collect())
    }
}

/// The Unicode version of the case-folding tables behind [`RelPath::collision_key`] (pinned
/// by the exact version of the `caseless` crate); part of the format.
pub const CASE_FOLDING_UNICODE: (u64, u64, u64) = (16, 0, 0);

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Serialize for RelPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RelPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RelPath::new(&text).map_err(|e| serde::de::Error::custom(format!("entry path {text:?}: {e}")))
    }
}

fn validate(text: &str) -> Result<(), PathError> {
    if text.is_empty() {
        return Err(PathError::Empty);
    }
    if text.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if text.starts_with('/') {
        return Err(PathError::Absolute);
    }
    // Every entry path of every bundle passes through here, so ASCII (nearly every path)
    // is checked byte by byte, and only other text char by char.
    if text.is_ascii() {
        if let Some(&b) = text.as_bytes().iter().find(|&&b| is_forbidden_ascii(b)) {
            return Err(PathError::ForbiddenChar(char::from(b)));
        }
    } else {
        if let Some(c) = text.chars().find(|&c| is_forbidden(c)) {
            return Err(PathError::ForbiddenChar(c));
        }
        if !is_nfc(text) {
            return Err(PathError::NotNfc);
        }
    }
    let mut depth = 0;
    for component in components(text) {
        depth += 1;
        validate_component(component)?;
    }
    if depth > MAX_DEPTH {
        return Err(PathError::TooDeep);
    }
    let first = components(text).next().unwrap_or(text);
    if RelPath::collision_key_cow(first) == METADATA_DIR {
        return Err(PathError::MetadataDir);
    }
    Ok(())
}

/// The `/`-separated components of `text` (split on the byte: `/` is ASCII, so every
/// piece is still valid UTF-8).
fn components(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match text.as_bytes()[start..].iter().position(|&b| b == b'/') {
            Some(i) => {
                let piece = &text[start..start + i];
                start += i + 1;
                Some(piece)
            }
            None => {
                done = true;
                Some(&text[start..])
            }
        }
    })
}

fn validate_component(component: &str) -> Result<(), PathError> {
    if component.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if component == "." || component == ".." {
        return Err(PathError::DotComponent);
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(PathError::ComponentTooLong);
    }
    if component.ends_with('.') || component.ends_with(' ') {
        return Err(PathError::TrailingDotOrSpace);
    }
    if is_windows_device_name(component) {
        return Err(PathError::ReservedName(component.to_owned()));
    }
    Ok(())
}

/// Characters no entry path may contain: control characters, the Windows separators and
/// drive/stream marker `\\` and `:`, `)` (unrepresentable in a signify checksum list), and
/// invisible characters that make two names look alike or reorder how one is displayed.
fn is_forbidden(c: char) -> bool {
    is_control(c) || matches!(c, '\\' | ':' | ')') || is_invisible(c)
}

/// [`is_forbidden`] of an ASCII byte, as a few comparisons: of ASCII, only the C0 controls,
/// DEL, `\\`, `:` and `)` are forbidden (no invisible character is ASCII).
fn is_forbidden_ascii(b: u8) -> bool {
    b < 0x20 || b == 0x7f || matches!(b, b'\\' | b':' | b')')
}

/// Control characters (docs/FORMAT.md §7): general category Cc (C0, DEL, C1), and the line
/// and paragraph separators U+2028 and U+2029, which break a line like a newline does.
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
}

/// Invisible characters (docs/FORMAT.md §7): the Default_Ignorable_Code_Point set of Unicode
/// 16.0, which holds the bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E,
/// U+2066-U+2069), the zero-width characters, the soft hyphen, variation selectors, tags,
/// and the characters HFS+ ignores when it compares names. Each renders as nothing, or
/// changes how the text around it is displayed.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}'..='\u{1160}' | '\u{17b4}'..='\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}'
        | '\u{fff0}'..='\u{fff8}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}')
}

/// The parent directories of `text`, shortest first.
fn ancestors(text: &str) -> impl Iterator<Item = &str> {
    text.as_bytes().iter().enumerate().filter(|(_, &b)| b == b'/').map(move |(i, _)| &text[..i])
}

/// Whether Windows takes `component` for a device: its part before the first `.`, without
/// trailing spaces, is `CON`, `PRN`, `AUX`, `NUL`, or `COM`/`LPT` followed by one digit `0`-`9`
/// or one superscript digit `¹²³` (which Windows reads as digits), in any ASCII case. No other
/// character case-folds to one of these letters, so ASCII case is full case folding here.
fn is_windows_device_name(component: &str) -> bool {
    let bytes = component.as_bytes();
    let stem = &bytes[..bytes.iter().position(|&b| b == b'.').unwrap_or(bytes.len())];
    let stem = stem.trim_ascii_end();
    // Every device name is 3 to 5 bytes: check the length before comparing (this runs for
    // every component of every path, so it must not allocate).
    let port = |stem: &[u8]| stem[..3].eq_ignore_ascii_case(b"COM") || stem[..3].eq_ignore_ascii_case(b"LPT");
    match stem.len() {
        3 => ["CON", "PRN", "AUX", "NUL"].iter().any(|d| stem.eq_ignore_ascii_case(d.as_bytes())),
        4 => port(stem) && stem[3].is_ascii_digit(),
        // U+00B9, U+00B2, U+00B3 in UTF-8.
        5 => port(stem) && matches!(&stem[3..], [0xc2, 0xb9 | 0xb2 | 0xb3]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for ok in ["a", "a/b/c.tar.gz", "dir with space/x", "ünïcödé/名前", "a/.hidden", "..a", "a..b"] {
            RelPath::new(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
    }

    #[test]
    fn refuses_each_rule() {
        let cases: &[(&str, PathError)] = &[
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("//x", PathError::Absolute),
            ("a//b", PathError::EmptyComponent),
            ("a/", PathError::EmptyComponent),
            ("../x", PathError::DotComponent),
            ("a/../../x", PathError::DotComponent),
            ("./a", PathError::DotComponent),
            ("..", PathError::DotComponent),
            ("a\\b", PathError::ForbiddenChar('\\')),
            ("C:x", PathError::ForbiddenChar(':')),
            ("a\0b", PathError::ForbiddenChar('\0')),
            ("a\nb", PathError::ForbiddenChar('\n')),
            ("a\u{85}b", PathError::ForbiddenChar('\u{85}')),
            ("foo (1)", PathError::ForbiddenChar(')')),
            ("a\u{200d}b", PathError::ForbiddenChar('\u{200d}')),
            ("e\u{301}", PathError::NotNfc),
            ("a./b", PathError::TrailingDotOrSpace),
            ("a /b", PathError::TrailingDotOrSpace),
            ("nul.txt", PathError::ReservedName("nul.txt".into())),
            ("x/COM1", PathError::ReservedName("COM1".into())),
            (".airlock", PathError::MetadataDir),
            (".AirLock/log", PathError::MetadataDir),
            (".a\u{131}rlock/log", PathError::MetadataDir),
            ("COM\u{b9}", PathError::ReservedName("COM\u{b9}".into())),
            ("x/lpt\u{b3}.txt", PathError::ReservedName("lpt\u{b3}.txt".into())),
            ("NUL .txt", PathError::ReservedName("NUL .txt".into())),
            ("a\u{2066}b", PathError::ForbiddenChar('\u{2066}')),
            ("a\u{206a}b", PathError::ForbiddenChar('\u{206a}')),
            ("a\u{ad}b", PathError::ForbiddenChar('\u{ad}')),
            ("a\u{2028}b", PathError::ForbiddenChar('\u{2028}')),
            ("a\u{e0041}b", PathError::ForbiddenChar('\u{e0041}')),
            ("\u{212a}", PathError::NotNfc),
        ];
        for (text, want) in cases {
            assert_eq!(RelPath::new(text).unwrap_err(), *want, "{text:?}");
        }
    }

    #[test]
    fn refuses_limits() {
        assert_eq!(RelPath::new(&"a".repeat(256)).unwrap_err(), PathError::ComponentTooLong);
        assert_eq!(RelPath::new(&"a/".repeat(600)).unwrap_err(), PathError::TooLong);
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert_eq!(RelPath::new(&deep).unwrap_err(), PathError::TooDeep);
        RelPath::new(&vec!["d"; MAX_DEPTH].join("/")).unwrap();
    }

    #[test]
    fn metadata_dir_only_at_top() {
        RelPath::new("x/.airlock").unwrap();
        RelPath::new(".airlockx").unwrap();
    }

    #[test]
    fn ancestors_and_collisions() {
        let p = RelPath::new("a/b/c").unwrap();
        assert_eq!(p.ancestors().collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(RelPath::collision_key("README"), RelPath::collision_key("readme"));
        assert_eq!(RelPath::collision_key("é"), RelPath::collision_key("e\u{301}"));
    }

    #[test]
    fn forbidden_ascii_bytes_are_the_forbidden_characters() {
        for b in 0u8..0x80 {
            assert_eq!(is_forbidden_ascii(b), is_forbidden(char::from(b)), "byte {b:#x}");
        }
    }

    #[test]
    fn collision_key_is_full_case_folding() {
        let same = |a: &str, b: &str| assert_eq!(RelPath::collision_key(a), RelPath::collision_key(b), "{a:?} {b:?}");
        same("s.txt", "\u{17f}.txt");
        same("\u{b5}", "\u{3bc}");
        same("\u{212a}", "k");
        same("stra\u{df}e", "STRASSE");
        same("\u{1e9e}", "ss");
        same("\u{fb00}", "FF");
        same("\u{3a3}", "\u{3c2}");
        same("\u{1c4}", "\u{1c5}");
        same("\u{131}", "I");
        same("\u{1f80}", "\u{1f08}\u{3b9}");
        same("Dir/A", "dir/a");
        assert_ne!(RelPath::collision_key("\u{130}"), RelPath::collision_key("i"));
        assert_ne!(RelPath::collision_key("a"), RelPath::collision_key("b"));
    }

    /// The Unicode versions are part of the format (docs/FORMAT.md §6.3): a dependency update
    /// that changes them must change the document too.
    #[test]
    fn unicode_versions_are_pinned() {
        assert_eq!(caseless::UNICODE_VERSION, CASE_FOLDING_UNICODE);
        assert_eq!(unicode_normalization::UNICODE_VERSION, (18, 0, 0));
    }
}
