//! [`RelPath`]: the only kind of path a bundle entry may have.
//!
//! A `RelPath` can only be built through [`RelPath::new`], which enforces the rules of
//! docs/FORMAT.md §"Entry paths". Every rule exists because some extractor somewhere was
//! broken by its absence (see docs/THREAT-MODEL.md): `..` and absolute paths escape the
//! destination, backslashes and drive letters do so on Windows, control characters hide
//! names from the operator, `)` cannot be written in a `signify -C` checksum list, and names
//! that differ only in case or Unicode normalisation overwrite each other on some filesystems.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::{is_nfc, UnicodeNormalization};

/// The mirror's metadata directory; no entry may name or enter it (compared case-insensitively).
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
    /// filesystem: NFC, then lowercased.
    pub fn collision_key(text: &str) -> String {
        Self::collision_key_cow(text).into_owned()
    }

    /// [`RelPath::collision_key`] without a copy when the path is already its own key.
    pub fn collision_key_cow(text: &str) -> std::borrow::Cow<'_, str> {
        if text.is_ascii() {
            // ASCII is its own NFC; most paths are lowercase already and need no copy.
            if !text.bytes().any(|b| b.is_ascii_uppercase()) {
                return std::borrow::Cow::Borrowed(text);
            }
            return std::borrow::Cow::Owned(text.to_ascii_lowercase());
        }
        std::borrow::Cow::Owned(text.nfc().collect::<String>().to_lowercase())
    }
}

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
        if let Some(&b) = text.as_bytes().iter().find(|&&b| is_forbidden(char::from(b))) {
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
    if first.eq_ignore_ascii_case(METADATA_DIR) {
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

/// Characters no entry path may contain: control characters (C0, DEL, C1), the Windows
/// separators and drive/stream marker `\` and `:`, `)` (unrepresentable in a signify
/// checksum list), and invisible format characters that make two names look alike.
fn is_forbidden(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\\' | ':' | ')'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{feff}')
}

/// The parent directories of `text`, shortest first.
fn ancestors(text: &str) -> impl Iterator<Item = &str> {
    text.as_bytes().iter().enumerate().filter(|(_, &b)| b == b'/').map(move |(i, _)| &text[..i])
}

fn is_windows_device_name(component: &str) -> bool {
    let bytes = component.as_bytes();
    let stem = &bytes[..bytes.iter().position(|&b| b == b'.').unwrap_or(bytes.len())];
    // Every device name is 3 or 4 bytes: check the length before comparing (this runs for
    // every component of every path, so it must not allocate).
    match stem.len() {
        3 => ["CON", "PRN", "AUX", "NUL"].iter().any(|d| stem.eq_ignore_ascii_case(d.as_bytes())),
        4 => {
            (stem[..3].eq_ignore_ascii_case(b"COM") || stem[..3].eq_ignore_ascii_case(b"LPT"))
                && stem[3].is_ascii_digit()
        }
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
}
