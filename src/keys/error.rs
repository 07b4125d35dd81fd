//! [`KeyError`]: everything that can go wrong with a key, a signature or a passphrase.

use std::io;
use std::path::PathBuf;

use super::signify::{FILE_MAX_LEN, PASSPHRASE_MAX_LEN};
use super::KeyId;

///
/// `origin` is the file path when there is one. Otherwise it says what was being parsed,
/// e.g. "public key" or "signature".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file does not start with the signify comment header.
    #[error("{origin}: not a signify file: missing 'untrusted comment: ' line")]
    MissingComment {
        /// Where.
        origin: String,
    },
    /// The comment is empty, too long, not UTF-8 or holds a forbidden character.
    #[error("{origin}: comment {problem}")]
    BadComment {
        /// Where.
        origin: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A line is not terminated by `\n`.
    #[error("{origin}: missing newline after the {line} line")]
    MissingNewline {
        /// Where.
        origin: String,
        /// "comment" or "base64".
        line: &'static str,
    },
    /// A key or detached-signature file has bytes after its second line.
    #[error("{origin}: {extra} unexpected bytes after the base64 line (a signify {kind} file is exactly 2 lines)")]
    TrailingData {
        /// Where.
        origin: String,
        /// "public key", "secret key" or "signature".
        kind: &'static str,
        /// How many bytes follow the second line.
        extra: usize,
    },
    /// The file is larger than signify would read.
    #[error("{origin}: too large for a signify {kind} file ({size} bytes; at most {FILE_MAX_LEN})")]
    TooLarge {
        /// Where.
        origin: String,
        /// "public key", "secret key" or "signature".
        kind: &'static str,
        /// The size found (or a lower bound of it).
        size: u64,
    },
    /// The second line is not canonical standard base64 with padding.
    #[error("{origin}: invalid base64: {source}")]
    Base64 {
        /// Where.
        origin: String,
        /// The decoder's complaint.
        source: base64::DecodeError,
    },
    /// The decoded struct has the wrong size for its kind.
    #[error("{origin}: wrong decoded length for a signify {kind}: expected {expected} bytes, found {found}")]
    WrongLength {
        /// Where.
        origin: String,
        /// "public key", "secret key" or "signature".
        kind: &'static str,
        /// The struct size.
        expected: usize,
        /// The decoded size.
        found: usize,
    },
    /// The algorithm tag is not "Ed" (a minisign prehashed "ED" signature lands here).
    #[error("{origin}: unsupported algorithm \"{}\" (expected \"Ed\")", found.escape_ascii())]
    WrongAlgorithm {
        /// Where.
        origin: String,
        /// The tag found.
        found: [u8; 2],
    },
    /// The secret key's KDF tag is not "BK".
    #[error("{origin}: unsupported KDF \"{}\" (expected \"BK\")", found.escape_ascii())]
    UnsupportedKdf {
        /// Where.
        origin: String,
        /// The tag found.
        found: [u8; 2],
    },
    /// The 32 public-key bytes are not a point on the curve.
    #[error("{origin}: key {key_id} is not a valid Ed25519 point")]
    InvalidPoint {
        /// Where.
        origin: String,
        /// The key's keynum.
        key_id: KeyId,
    },
    /// The public key decodes, but re-encoding it gives different bytes.
    #[error("{origin}: key {key_id} is not canonically encoded")]
    NonCanonicalKey {
        /// Where.
        origin: String,
        /// The key's keynum.
        key_id: KeyId,
    },
    /// The public key has small order: it would accept forged signatures.
    #[error("{origin}: weak (small-order) public key {key_id} refused")]
    WeakKey {
        /// Where.
        origin: String,
        /// The key's keynum.
        key_id: KeyId,
    },
    /// The secret key's checksum does not match after decryption.
    #[error("incorrect passphrase for secret key {origin}")]
    IncorrectPassphrase {
        /// The secret key file.
        origin: String,
    },
    /// An unencrypted secret key's checksum does not match: the file is damaged.
    #[error("{origin}: checksum mismatch in unencrypted secret key {key_id}: the file is corrupt")]
    CorruptSecretKey {
        /// The secret key file.
        origin: String,
        /// The key's keynum.
        key_id: KeyId,
    },
    /// The public half stored in a secret key does not belong to its seed.
    #[error("{origin}: secret key {key_id} is inconsistent: its stored public key does not match its seed")]
    InconsistentSecretKey {
        /// The secret key file.
        origin: String,
        /// The key's keynum.
        key_id: KeyId,
    },
    /// A public key and a secret key that should be a pair have different keynums.
    #[error("key-number mismatch: public key {public} vs secret key {secret}")]
    KeyIdMismatch {
        /// The public key's keynum.
        public: KeyId,
        /// The secret key's keynum.
        secret: KeyId,
    },
    /// A public key and a secret key share a keynum but not key material.
    #[error("public key {key_id} does not belong to secret key {key_id}: same key number, different key")]
    KeyMaterialMismatch {
        /// The shared keynum.
        key_id: KeyId,
    },
    /// A signature was checked against a key with another keynum.
    #[error("signature by key {signature} but checked against key {key}")]
    WrongKey {
        /// The signature's keynum.
        signature: KeyId,
        /// The public key's keynum.
        key: KeyId,
    },
    /// The Ed25519 check failed.
    #[error("signature verification failed for key {key_id}")]
    BadSignature {
        /// The key the signature was checked against.
        key_id: KeyId,
    },
    /// A secret key file is readable or writable by group or others.
    #[error("secret key file {} is accessible by group/others (mode {mode:04o}); run chmod 600 on it", path.display())]
    InsecurePermissions {
        /// The secret key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file is a directory, FIFO, device or socket.
    #[error("{}: not a regular file", path.display())]
    NotRegularFile {
        /// The file.
        path: PathBuf,
    },
    /// A secret key path is a symbolic link.
    #[error("{}: is a symbolic link; secret keys are not read through symbolic links", path.display())]
    SymlinkRefused {
        /// The link.
        path: PathBuf,
    },
    /// A key file to be written already exists.
    #[error("{}: already exists; refusing to overwrite it", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// A passphrase was needed but the caller has no way to get one.
    #[error("a passphrase is required for secret key {origin}")]
    PassphraseRequired {
        /// The secret key file.
        origin: String,
    },
    /// An empty passphrase was given; signify refuses them too.
    #[error("{origin}: empty passphrase refused")]
    EmptyPassphrase {
        /// Where the passphrase came from, or the key it was for.
        origin: String,
    },
    /// The passphrase is longer than signify can read.
    #[error("{origin}: passphrase is longer than {PASSPHRASE_MAX_LEN} bytes, which signify cannot read")]
    PassphraseTooLong {
        /// Where the passphrase came from, or the key it was for.
        origin: String,
    },
    /// The caller's passphrase source failed (no terminal to prompt on, an unreadable
    /// passphrase file, two answers that differ, ...). Its text is the source's own.
    #[error(transparent)]
    PassphraseInput(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// bcrypt_pbkdf refused its parameters.
    #[error("{origin}: key derivation failed: {reason}")]
    Kdf {
        /// The secret key.
        origin: String,
        /// The KDF's complaint.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed: {reason}")]
    Random {
        /// getrandom's complaint.
        reason: String,
    },
    /// A file is not a signify or minisign key file at all.
    #[error("{origin}: {problem}")]
    NotAKeyFile {
        /// The file.
        origin: String,
        /// What gave it away.
        problem: NotAKeyFile,
    },
    /// A key was to be converted that cannot be (a secret key).
    #[error("{origin}: is a {kind}; only public keys can be converted (signify and minisign secret keys use different key derivations)")]
    NotConvertible {
        /// The file.
        origin: String,
        /// What it is (`signify secret key`, ...).
        kind: KeyKind,
    },
    /// A converted public key file does not read back as the key it was made from.
    #[error("{origin}: the converted key file does not read back as key {key_id}")]
    ConversionMismatch {
        /// Where the conversion was going.
        origin: String,
        /// The key that was converted.
        key_id: KeyId,
    },
    /// A key file of another kind than the one needed: a public key where a secret key is
    /// needed, a secret key where a public key is, or a minisign secret key (airlock signs
    /// with signify secret keys).
    #[error("{origin}: is a {found}, but a {wanted} is needed here")]
    WrongKind {
        /// The file.
        origin: String,
        /// What it is.
        found: KeyKind,
        /// What was needed (`public key`, `signify secret key`).
        wanted: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Why a file is not a signify or minisign key file (see [`KeyError::NotAKeyFile`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotAKeyFile {
    /// The bytes are not UTF-8.
    #[error("not a key file (not UTF-8 text)")]
    NotText,
    /// The first line is not a signify comment line.
    #[error("not a key file: the first line does not start with \"untrusted comment: \"")]
    NoComment,
    /// The second line does not decode.
    #[error("not a key file: the second line is not base64 ({0})")]
    NotBase64(base64::DecodeError),
    /// The decoded struct has no known key layout.
    #[error("not a signify or minisign key: the base64 line decodes to {0} bytes")]
    UnknownLayout(usize),
}

/// What kind of key file [`crate::keys::info::key_info`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// A signify public key.
    SignifyPublic,
    /// A minisign public key (the same struct; told apart by its comment).
    MinisignPublic,
    /// A signify secret key.
    SignifySecret,
    /// A minisign secret key.
    MinisignSecret,
}

impl KeyKind {
    /// Whether this is a public key.
    pub fn is_public(self) -> bool {
        matches!(self, KeyKind::SignifyPublic | KeyKind::MinisignPublic)
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::SignifyPublic => "signify public key",
            KeyKind::MinisignPublic => "minisign public key",
            KeyKind::SignifySecret => "signify secret key",
            KeyKind::MinisignSecret => "minisign secret key",
        })
    }
}
