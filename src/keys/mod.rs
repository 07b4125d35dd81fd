//! Signify-compatible Ed25519 keys and signatures.
//!
//! airlock reads and writes the three file formats of OpenBSD `signify` (`signify.c`)
//! byte for byte, so an operator can check anything airlock signs with stock signify:
//!
//! ```text
//! untrusted comment: <text>\n        <- 1..=1023 bytes, no line break
//! <base64 of the struct>\n
//! ```
//!
//! | file | struct |
//! |---|---|
//! | public key | `"Ed"` · keynum\[8\] · public key\[32\] (42 bytes) |
//! | signature  | `"Ed"` · keynum\[8\] · signature\[64\] (74 bytes) |
//! | secret key | `"Ed"` · `"BK"` · kdfrounds u32 BE · salt\[16\] · checksum\[8\] · keynum\[8\] · seed‖public\[64\] (104 bytes) |
//!
//! A minisign public key has the same layout as a signify public key, so [`PublicKey::parse`]
//! reads both.
//!
//! # Why the key number is only a hint
//! The keynum ([`KeyId`]) is 8 random bytes chosen at key generation. Nothing binds it to
//! the key material, so anyone can copy a victim's keynum into a key of their own. airlock
//! uses it to pick a candidate key and to write clearer errors. Trust decisions always
//! compare the full 32-byte public key ([`PublicKey::as_bytes`]).
//!
//! # Strictness
//! - Parsing is stricter than signify. We refuse whitespace inside the base64 line, bytes
//!   after the second line of a key or detached-signature file, and comments signify would
//!   silently truncate.
//! - Verification uses `verify_strict`. signify's SUPERCOP verifier also accepts a
//!   non-canonical S (S + L) and small-order points, so every signature airlock accepts,
//!   signify accepts too, but not the other way round.
//! - Weak (small-order) and non-canonically encoded public keys are refused when they are
//!   parsed, so no [`PublicKey`] value can hold one.
//!
//! # Secret hygiene
//! The passphrase, the KDF output, the decoded secret-key struct and the secret-key file
//! text are all held in [`Zeroizing`] buffers. `SigningKey` zeroizes itself on drop. The
//! [`fmt::Debug`] output of [`SecretKey`] shows only the key id and comment.

pub mod minisign;

use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha512};
use zeroize::Zeroizing;

/// Signature algorithm tag of every signify struct.
const PKALG: [u8; 2] = *b"Ed";
/// KDF tag of a signify secret key (bcrypt_pbkdf).
const KDFALG: [u8; 2] = *b"BK";
/// First bytes of every signify file.
const COMMENT_HEADER: &[u8] = b"untrusted comment: ";
/// signify copies the comment into a 1024-byte C string, so 1023 bytes is the most it keeps.
const COMMENT_MAX_LEN: usize = 1023;
/// signify reads key and signature files into a 2048-byte buffer, NUL included.
const FILE_MAX_LEN: usize = 2047;
/// How much of a key or signature file `load` reads: enough to tell "too large" from a
/// truncated read, and small enough that a huge or endless file costs nothing.
const LOAD_LIMIT: u64 = 4096;
/// The rounds signify uses for a passphrase-protected key.
const KDF_ROUNDS: u32 = 42;
/// signify reads the passphrase with readpassphrase into 1024 bytes, so it silently
/// truncates anything longer than 1023 bytes. We refuse to encrypt with a passphrase that
/// signify could not reproduce.
const PASSPHRASE_MAX_LEN: usize = 1023;
/// How much of a passphrase file is read.
const PASSPHRASE_FILE_LIMIT: u64 = 4096;
/// The environment variable naming a passphrase file.
const PASSPHRASE_ENV: &str = "AIRLOCK_PASSPHRASE_FILE";

const KEYNUM_LEN: usize = 8;
const PUBKEY_STRUCT_LEN: usize = 2 + KEYNUM_LEN + 32;
const SIG_STRUCT_LEN: usize = 2 + KEYNUM_LEN + 64;
const SECKEY_STRUCT_LEN: usize = 2 + 2 + 4 + 16 + 8 + KEYNUM_LEN + 64;

/// The signify key number: 8 random bytes copied into the public key, the secret key and
/// every signature. It is unauthenticated, so use it only as a hint (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// Parses exactly 16 *lowercase* hex digits. Uppercase is refused, so that
    /// `KeyId::from_hex(s).map(|k| k.to_hex()) == Some(s)` and an id has only one spelling.
    pub fn from_hex(s: &str) -> Option<KeyId> {
        let digits = s.as_bytes();
        if digits.len() != 16 {
            return None;
        }
        let mut out = [0u8; 8];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(KeyId(out))
    }

    /// 16 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Everything that can go wrong with a key, a signature or a passphrase.
///
/// `origin` is the file path when there is one. Otherwise it says what was being parsed,
/// e.g. "public key" or "signature".
#[derive(Debug, thiserror::Error)]
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
    /// The two passphrases typed at key generation differ.
    #[error("passphrases do not match")]
    PassphraseMismatch,
    /// There is no terminal to prompt on.
    #[error("cannot prompt for a passphrase ({source}); use --passphrase-file FILE or set {PASSPHRASE_ENV}")]
    NoTerminal {
        /// Why the terminal could not be used.
        source: io::Error,
    },
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
    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_path_buf(), source }
}

/// An Ed25519 public key with its signify keynum and untrusted comment.
#[derive(Clone)]
pub struct PublicKey {
    key_id: KeyId,
    key: VerifyingKey,
    comment: String,
}

impl PublicKey {
    /// The signify keynum (a hint, never an identity).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The untrusted comment (the text after "untrusted comment: "). Display it escaped:
    /// it comes from whoever wrote the file.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The raw 32-byte Ed25519 public key. Trusted keys are matched on this, never on
    /// the key id alone.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Parses the contents of a signify (or minisign) `.pub` file.
    pub fn parse(text: &[u8]) -> Result<PublicKey, KeyError> {
        parse_public(text, "public key")
    }

    /// Reads a `.pub` file. It must be a regular file (symbolic links are followed); at most
    /// 4096 bytes are read.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let (file, _) = open_key_file(path, true, "public key")?;
        let text = read_head(file, path)?;
        parse_public(&text, &path.display().to_string())
    }

    /// The `.pub` file text: `untrusted comment: <comment>\n<base64>\n`.
    pub fn to_file_string(&self) -> String {
        let mut raw = Vec::with_capacity(PUBKEY_STRUCT_LEN);
        raw.extend_from_slice(&PKALG);
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(self.key.as_bytes());
        public_file_text(&self.comment, &raw)
    }

    /// Checks a detached signature over `msg` with strict Ed25519 (`verify_strict`). The
    /// keynums are compared first, only so the error can say which keys were involved.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), KeyError> {
        if sig.key_id != self.key_id {
            return Err(KeyError::WrongKey { signature: sig.key_id, key: self.key_id });
        }
        let signature = ed25519_dalek::Signature::from_bytes(&sig.bytes);
        self.key.verify_strict(msg, &signature).map_err(|_| KeyError::BadSignature { key_id: self.key_id })
    }

    /// Builds a key from a key derived from a secret key. Such a key cannot be weak or
    /// non-canonical: it is the compression of a multiple of the base point.
    fn from_verifying(key_id: KeyId, key: VerifyingKey, comment: &str) -> PublicKey {
        PublicKey { key_id, key, comment: sanitize_comment(comment) }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: String = self.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .field("key", &hex)
            .field("comment", &self.comment)
            .finish()
    }
}

/// An Ed25519 secret key with its signify keynum and untrusted comment.
pub struct SecretKey {
    key_id: KeyId,
    key: SigningKey,
    comment: String,
}

/// The callback that supplies a passphrase when a secret key is encrypted (spelled out in
/// the public signatures, which should not depend on a private alias).
type PassphraseFn<'a> = dyn FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError> + 'a;

impl SecretKey {
    /// A new random key pair with a random keynum.
    ///
    /// # Panics
    /// If the operating system's random number generator fails, which leaves nothing safe
    /// to do. Use [`SecretKey::try_generate`] to get an error instead.
    pub fn generate(comment: &str) -> SecretKey {
        match SecretKey::try_generate(comment) {
            Ok(key) => key,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`SecretKey::generate`], but reports a random number generator failure.
    /// The comment is checked when the key is written, by [`SecretKey::to_file_string`].
    pub fn try_generate(comment: &str) -> Result<SecretKey, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        random_bytes(seed.as_mut())?;
        let mut keynum = [0u8; KEYNUM_LEN];
        random_bytes(&mut keynum)?;
        Ok(SecretKey { key_id: KeyId(keynum), key: SigningKey::from_bytes(&seed), comment: comment.to_owned() })
    }

    /// The signify keynum.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The secret key's untrusted comment.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The public half, with the comment `airlock public key <keyid>`.
    pub fn public_key(&self) -> PublicKey {
        self.public_key_with_comment(&format!("airlock public key {}", self.key_id))
    }

    /// The public half with a chosen comment. This cannot fail, so a comment signify could
    /// not store is made storable: line breaks and NULs become spaces, it is cut to 1023
    /// bytes, and an empty comment becomes "airlock". Use [`check_comment`] first to refuse
    /// such a comment instead.
    pub fn public_key_with_comment(&self, comment: &str) -> PublicKey {
        PublicKey::from_verifying(self.key_id, self.key.verifying_key(), comment)
    }

    /// Checks that `public` is this key's public half: first the keynum, for a clear message,
    /// then the key material, which is what actually matters.
    pub fn check_public(&self, public: &PublicKey) -> Result<(), KeyError> {
        if public.key_id != self.key_id {
            return Err(KeyError::KeyIdMismatch { public: public.key_id, secret: self.key_id });
        }
        if public.as_bytes() != self.key.verifying_key().as_bytes() {
            return Err(KeyError::KeyMaterialMismatch { key_id: self.key_id });
        }
        Ok(())
    }

    /// Parses a signify `.sec` file. `origin` names it in errors. `passphrase` is called
    /// only if the key is encrypted (kdfrounds > 0).
    pub fn parse(
        text: &[u8],
        origin: &Path,
        passphrase: &mut dyn FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError>,
    ) -> Result<SecretKey, KeyError> {
        parse_secret(text, &origin.display().to_string(), passphrase)
    }

    /// Reads a `.sec` file. It must be a regular file, not a symbolic link. It must not
    /// grant any permission to group or others (mode & 0o077 == 0) unless
    /// `allow_insecure_permissions` is set.
    pub fn load(
        path: &Path,
        allow_insecure_permissions: bool,
        passphrase: &mut dyn FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError>,
    ) -> Result<SecretKey, KeyError> {
        let (file, meta) = open_key_file(path, false, "secret key")?;
        check_private_mode(path, &meta, allow_insecure_permissions)?;
        let text = read_head(file, path)?;
        parse_secret(&text, &path.display().to_string(), passphrase)
    }

    /// The `.sec` file text. With no passphrase, kdfrounds is 0 and the key is stored in
    /// plaintext, as with `signify -G -n`. The salt is still random and the KDF tag is
    /// still "BK". With a passphrase, kdfrounds is 42. An empty passphrase is refused, and
    /// so is one longer than signify can read.
    pub fn to_file_string(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, KeyError> {
        let origin = format!("secret key {}", self.key_id);
        check_comment(&self.comment).map_err(|problem| KeyError::BadComment { origin: origin.clone(), problem })?;
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        let (rounds, xor) = match passphrase {
            None => (0, Zeroizing::new([0u8; 64])),
            Some(p) => {
                check_new_passphrase(p, &origin)?;
                (KDF_ROUNDS, derive_xor_key(p, &salt, KDF_ROUNDS, &origin)?)
            }
        };
        let plain = self.seckey_bytes();
        let checksum = seckey_checksum(&plain);
        let mut raw = Zeroizing::new(Vec::with_capacity(SECKEY_STRUCT_LEN));
        raw.extend_from_slice(&PKALG);
        raw.extend_from_slice(&KDFALG);
        raw.extend_from_slice(&rounds.to_be_bytes());
        raw.extend_from_slice(&salt);
        raw.extend_from_slice(&checksum);
        raw.extend_from_slice(&self.key_id.0);
        raw.extend(plain.iter().zip(xor.iter()).map(|(p, x)| p ^ x));
        Ok(file_text(&self.comment, &raw))
    }

    /// A detached signature: plain Ed25519 over `msg` (no prehash, no context), as
    /// `signify -S` makes. The comment is sanitized like
    /// [`SecretKey::public_key_with_comment`]'s; signify's own is `verify with <name>.pub`.
    pub fn sign(&self, msg: &[u8], comment: &str) -> Signature {
        Signature { key_id: self.key_id, bytes: self.key.sign(msg).to_bytes(), comment: sanitize_comment(comment) }
    }

    /// The 64-byte SUPERCOP secret key (seed ‖ public key) that signify stores.
    fn seckey_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(self.key.as_bytes());
        out[32..].copy_from_slice(self.key.verifying_key().as_bytes());
        out
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &self.key_id)
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

/// A detached Ed25519 signature with its signify keynum and untrusted comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    key_id: KeyId,
    bytes: [u8; 64],
    comment: String,
}

impl Signature {
    /// The keynum of the key that claims to have made it.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The untrusted comment.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The 64 signature bytes (R ‖ S). Ed25519 signatures are malleable in signify's
    /// verifier: never use these bytes as an identity.
    pub fn bytes(&self) -> &[u8; 64] {
        &self.bytes
    }

    /// Parses a detached signify `.sig` file: exactly two lines and nothing after them.
    pub fn parse(text: &[u8]) -> Result<Signature, KeyError> {
        let origin = "signature";
        check_size(text, origin, "signature")?;
        let container = split_container(text, origin)?;
        container.expect_end(origin, "signature")?;
        signature_from_container(&container, origin)
    }

    /// The `.sig` file text: `untrusted comment: <comment>\n<base64>\n`.
    pub fn to_file_string(&self) -> String {
        let mut raw = Vec::with_capacity(SIG_STRUCT_LEN);
        raw.extend_from_slice(&PKALG);
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(&self.bytes);
        public_file_text(&self.comment, &raw)
    }
}

/// A signify embedded signature (`signify -S -e`): the two signature lines followed by the
/// message bytes. `signify -C` verifies a checksum list signed this way.
pub fn sign_embedded(key: &SecretKey, msg: &[u8], comment: &str) -> Vec<u8> {
    let header = key.sign(msg, comment).to_file_string();
    let mut out = Vec::with_capacity(header.len() + msg.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(msg);
    out
}

/// Splits an embedded-signature file into its signature and the message after the second
/// line, as `signify -V -e` does. Nothing is verified here.
pub fn parse_embedded(file: &[u8]) -> Result<(Signature, &[u8]), KeyError> {
    let origin = "embedded signature";
    let container = split_container(file, origin)?;
    let sig = signature_from_container(&container, origin)?;
    Ok((sig, container.rest))
}

/// Checks a comment against signify's rules: non-empty, at most 1023 bytes, no line break
/// and no NUL (signify handles comments as C strings). The error says what is wrong.
pub fn check_comment(comment: &str) -> Result<(), &'static str> {
    check_comment_bytes(comment.as_bytes()).map(|_| ())
}

/// Writes a new key pair. Neither file may exist already (create_new, and O_NOFOLLOW so a
/// planted symbolic link is not followed). The secret key gets mode 0600 and the public key
/// 0644 (minus the umask). Both are fsynced. If the public key cannot be written, the secret
/// key written just before is removed again, so a failed run leaves nothing behind.
pub fn write_key_pair(
    public_path: &Path,
    secret_path: &Path,
    key: &SecretKey,
    public_comment: &str,
    passphrase: Option<&[u8]>,
) -> Result<(), KeyError> {
    check_comment(public_comment)
        .map_err(|problem| KeyError::BadComment { origin: public_path.display().to_string(), problem })?;
    // Do everything that can fail before creating a file.
    let secret_text = key.to_file_string(passphrase)?;
    let public_text = key.public_key_with_comment(public_comment).to_file_string();
    if fs::symlink_metadata(public_path).is_ok() {
        return Err(KeyError::AlreadyExists { path: public_path.to_path_buf() });
    }
    create_new_file(secret_path, 0o600, secret_text.as_bytes())?;
    if let Err(e) = create_new_file(public_path, 0o644, public_text.as_bytes()) {
        // Best effort: the error that matters is `e`.
        let _ = fs::remove_file(secret_path);
        return Err(e);
    }
    Ok(())
}

/// Gets a passphrase. The first source that exists wins:
/// 1. `file`;
/// 2. the file named by `$AIRLOCK_PASSPHRASE_FILE` (ignored when empty);
/// 3. the terminal, via `/dev/tty`. With `confirm`, the passphrase is asked for twice and
///    both answers must match (for key generation).
///
/// From a file, the first line is used with its `\n` or `\r\n` removed. A pipe or FIFO is
/// fine (`--passphrase-file <(pass show key)`). An empty passphrase is an error.
pub fn read_passphrase(file: Option<&Path>, prompt: &str, confirm: bool) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if let Some(path) = file {
        return passphrase_from_file(path);
    }
    if let Some(path) = std::env::var_os(PASSPHRASE_ENV).filter(|p| !p.is_empty()) {
        return passphrase_from_file(Path::new(&path));
    }
    passphrase_from_terminal(prompt, confirm)
}

// ---------------------------------------------------------------------------------------
// Container format
// ---------------------------------------------------------------------------------------

/// The two lines of a signify file, split but not decoded.
struct Container<'a> {
    comment: &'a str,
    b64: &'a [u8],
    /// Everything after the second `\n`: the message of an embedded signature.
    rest: &'a [u8],
}

impl Container<'_> {
    fn expect_end(&self, origin: &str, kind: &'static str) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(KeyError::TrailingData { origin: origin.to_owned(), kind, extra: self.rest.len() })
        }
    }

    /// Decodes the base64 line into a buffer that is wiped on drop (it may be a secret key).
    fn decode(&self, origin: &str, kind: &'static str, expected: usize) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let raw = BASE64
            .decode(self.b64)
            .map(Zeroizing::new)
            .map_err(|source| KeyError::Base64 { origin: origin.to_owned(), source })?;
        if raw.len() != expected {
            return Err(KeyError::WrongLength { origin: origin.to_owned(), kind, expected, found: raw.len() });
        }
        let tag = [raw[0], raw[1]];
        if tag != PKALG {
            return Err(KeyError::WrongAlgorithm { origin: origin.to_owned(), found: tag });
        }
        Ok(raw)
    }
}

/// Key and detached-signature files are read by signify into a 2048-byte buffer; a longer
/// file cannot be a valid one.
fn check_size(text: &[u8], origin: &str, kind: &'static str) -> Result<(), KeyError> {
    if text.len() > FILE_MAX_LEN {
        return Err(KeyError::TooLarge { origin: origin.to_owned(), kind, size: text.len() as u64 });
    }
    Ok(())
}

/// Splits off the comment line and the base64 line. Searches for line ends only as far as
/// a valid file could reach, so a huge embedded-signature file without newlines costs
/// nothing.
///
/// Whitespace inside the base64 line is refused. signify's `b64_pton` skips it, but neither
/// signify nor airlock ever writes any, so a file containing some (a CRLF conversion, say)
/// has been altered and is better reported than silently accepted.
fn split_container<'a>(text: &'a [u8], origin: &str) -> Result<Container<'a>, KeyError> {
    let Some(after_header) = text.strip_prefix(COMMENT_HEADER) else {
        return Err(KeyError::MissingComment { origin: origin.to_owned() });
    };
    let comment_end = find_newline(after_header, COMMENT_MAX_LEN + 1).ok_or_else(|| {
        if after_header.len() > COMMENT_MAX_LEN {
            KeyError::BadComment { origin: origin.to_owned(), problem: COMMENT_TOO_LONG }
        } else {
            KeyError::MissingNewline { origin: origin.to_owned(), line: "comment" }
        }
    })?;
    let comment = check_comment_bytes(&after_header[..comment_end])
        .map_err(|problem| KeyError::BadComment { origin: origin.to_owned(), problem })?;
    let after_comment = &after_header[comment_end + 1..];
    // The longest valid base64 line (a secret key) is 140 characters; allow slack so an
    // over-long line is reported as a length error rather than a missing newline.
    let b64_end = find_newline(after_comment, FILE_MAX_LEN)
        .ok_or_else(|| KeyError::MissingNewline { origin: origin.to_owned(), line: "base64" })?;
    Ok(Container { comment, b64: &after_comment[..b64_end], rest: &after_comment[b64_end + 1..] })
}

fn find_newline(text: &[u8], limit: usize) -> Option<usize> {
    text.iter().take(limit).position(|&b| b == b'\n')
}

const COMMENT_TOO_LONG: &str = "is longer than 1023 bytes";

fn check_comment_bytes(comment: &[u8]) -> Result<&str, &'static str> {
    if comment.is_empty() {
        return Err("is empty");
    }
    if comment.len() > COMMENT_MAX_LEN {
        return Err(COMMENT_TOO_LONG);
    }
    if comment.contains(&b'\n') {
        return Err("contains a newline");
    }
    if comment.contains(&b'\r') {
        return Err("contains a carriage return (CRLF line endings?)");
    }
    if comment.contains(&0) {
        return Err("contains a NUL byte");
    }
    std::str::from_utf8(comment).map_err(|_| "is not valid UTF-8")
}

/// Makes any string a storable comment, for the constructors that cannot fail.
fn sanitize_comment(comment: &str) -> String {
    let mut out: String = comment.chars().map(|c| if matches!(c, '\n' | '\r' | '\0') { ' ' } else { c }).collect();
    if out.len() > COMMENT_MAX_LEN {
        let mut cut = COMMENT_MAX_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    if out.is_empty() {
        out.push_str("airlock");
    }
    out
}

/// The text of a signify file. The buffer is sized exactly up front, so it never
/// reallocates: for a secret key, a reallocation would strand an unwiped copy.
fn file_text(comment: &str, raw: &[u8]) -> Zeroizing<String> {
    let capacity = COMMENT_HEADER.len() + comment.len() + 1 + raw.len().div_ceil(3) * 4 + 1;
    let mut out = Zeroizing::new(String::with_capacity(capacity));
    out.push_str("untrusted comment: ");
    out.push_str(comment);
    out.push('\n');
    BASE64.encode_string(raw, &mut out);
    out.push('\n');
    debug_assert_eq!(out.len(), capacity);
    out
}

/// [`file_text`] for public data, moved out of its wiping wrapper.
fn public_file_text(comment: &str, raw: &[u8]) -> String {
    std::mem::take(&mut *file_text(comment, raw))
}

// ---------------------------------------------------------------------------------------
// Struct decoding
// ---------------------------------------------------------------------------------------

fn parse_public(text: &[u8], origin: &str) -> Result<PublicKey, KeyError> {
    check_size(text, origin, "public key")?;
    let container = split_container(text, origin)?;
    container.expect_end(origin, "public key")?;
    let raw = container.decode(origin, "public key", PUBKEY_STRUCT_LEN)?;
    let key_id = key_id_at(&raw, 2);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&raw[2 + KEYNUM_LEN..]);
    let key = checked_verifying_key(&bytes, key_id, origin)?;
    Ok(PublicKey { key_id, key, comment: container.comment.to_owned() })
}

/// Decodes a public key, refusing the encodings that would let a key accept forgeries or
/// have two spellings.
fn checked_verifying_key(bytes: &[u8; 32], key_id: KeyId, origin: &str) -> Result<VerifyingKey, KeyError> {
    let origin = origin.to_owned();
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint { origin: origin.clone(), key_id })?;
    // Decompression reduces y mod p and accepts a sign bit on x = 0, so the same point has
    // several encodings; only the one compression gives back is canonical.
    if key.to_edwards().compress().as_bytes() != bytes {
        return Err(KeyError::NonCanonicalKey { origin, key_id });
    }
    if key.is_weak() {
        return Err(KeyError::WeakKey { origin, key_id });
    }
    Ok(key)
}

fn signature_from_container(container: &Container<'_>, origin: &str) -> Result<Signature, KeyError> {
    let raw = container.decode(origin, "signature", SIG_STRUCT_LEN)?;
    let mut bytes = [0u8; 64];
    bytes.copy_from_slice(&raw[2 + KEYNUM_LEN..]);
    Ok(Signature { key_id: key_id_at(&raw, 2), bytes, comment: container.comment.to_owned() })
}

fn key_id_at(raw: &[u8], offset: usize) -> KeyId {
    let mut keynum = [0u8; KEYNUM_LEN];
    keynum.copy_from_slice(&raw[offset..offset + KEYNUM_LEN]);
    KeyId(keynum)
}

/// Offsets inside `struct enckey`.
mod enckey {
    pub const KDFALG: usize = 2;
    pub const ROUNDS: usize = 4;
    pub const SALT: usize = 8;
    pub const CHECKSUM: usize = 24;
    pub const KEYNUM: usize = 32;
    pub const SECKEY: usize = 40;
}

fn parse_secret(text: &[u8], origin: &str, passphrase: &mut PassphraseFn<'_>) -> Result<SecretKey, KeyError> {
    check_size(text, origin, "secret key")?;
    let container = split_container(text, origin)?;
    container.expect_end(origin, "secret key")?;
    let raw = container.decode(origin, "secret key", SECKEY_STRUCT_LEN)?;
    let kdfalg = [raw[enckey::KDFALG], raw[enckey::KDFALG + 1]];
    if kdfalg != KDFALG {
        return Err(KeyError::UnsupportedKdf { origin: origin.to_owned(), found: kdfalg });
    }
    let mut rounds = [0u8; 4];
    rounds.copy_from_slice(&raw[enckey::ROUNDS..enckey::SALT]);
    let rounds = u32::from_be_bytes(rounds);
    let key_id = key_id_at(&raw, enckey::KEYNUM);
    let mut seckey = Zeroizing::new([0u8; 64]);
    seckey.copy_from_slice(&raw[enckey::SECKEY..]);
    if rounds > 0 {
        decrypt_seckey(&mut seckey, &raw[enckey::SALT..enckey::CHECKSUM], rounds, origin, passphrase)?;
    }
    if seckey_checksum(&seckey)[..] != raw[enckey::CHECKSUM..enckey::KEYNUM] {
        return Err(if rounds > 0 {
            KeyError::IncorrectPassphrase { origin: origin.to_owned() }
        } else {
            KeyError::CorruptSecretKey { origin: origin.to_owned(), key_id }
        });
    }
    let key = signing_key_from_seckey(&seckey, key_id, origin)?;
    Ok(SecretKey { key_id, key, comment: container.comment.to_owned() })
}

/// XORs the stored key with bcrypt_pbkdf(passphrase, salt, 64 bytes, rounds). signify
/// does not bound the rounds and neither do we: a huge count only slows down the owner
/// of the file, who chose it.
fn decrypt_seckey(
    seckey: &mut [u8; 64],
    salt: &[u8],
    rounds: u32,
    origin: &str,
    passphrase: &mut PassphraseFn<'_>,
) -> Result<(), KeyError> {
    let pass = passphrase()?;
    if pass.is_empty() {
        return Err(KeyError::EmptyPassphrase { origin: origin.to_owned() });
    }
    let xor = derive_xor_key(&pass, salt, rounds, origin)?;
    for (s, x) in seckey.iter_mut().zip(xor.iter()) {
        *s ^= x;
    }
    Ok(())
}

fn derive_xor_key(pass: &[u8], salt: &[u8], rounds: u32, origin: &str) -> Result<Zeroizing<[u8; 64]>, KeyError> {
    let mut out = Zeroizing::new([0u8; 64]);
    // bcrypt_pbkdf's work area holds key material too, so give it one that is wiped.
    let mut work = Zeroizing::new([0u8; 64]);
    bcrypt_pbkdf::bcrypt_pbkdf_with_memory(pass, salt, rounds, out.as_mut(), work.as_mut())
        .map_err(|e| KeyError::Kdf { origin: origin.to_owned(), reason: e.to_string() })?;
    Ok(out)
}

/// signify's checksum: the first 8 bytes of SHA-512 over the plaintext seed ‖ public key.
fn seckey_checksum(seckey: &[u8; 64]) -> [u8; 8] {
    let digest = Sha512::digest(seckey);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The stored public half must be the one the seed derives; signify never checks, but a
/// key that signs as one key and claims to be another is corrupt or malicious.
fn signing_key_from_seckey(seckey: &[u8; 64], key_id: KeyId, origin: &str) -> Result<SigningKey, KeyError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&seckey[..32]);
    let key = SigningKey::from_bytes(&seed);
    if key.verifying_key().as_bytes()[..] != seckey[32..] {
        return Err(KeyError::InconsistentSecretKey { origin: origin.to_owned(), key_id });
    }
    Ok(key)
}

fn check_new_passphrase(pass: &[u8], origin: &str) -> Result<(), KeyError> {
    if pass.is_empty() {
        return Err(KeyError::EmptyPassphrase { origin: origin.to_owned() });
    }
    if pass.len() > PASSPHRASE_MAX_LEN {
        return Err(KeyError::PassphraseTooLong { origin: origin.to_owned() });
    }
    Ok(())
}

fn random_bytes(out: &mut [u8]) -> Result<(), KeyError> {
    getrandom::getrandom(out).map_err(|e| KeyError::Random { reason: e.to_string() })
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

/// Opens a file for reading and checks that it is a regular file. O_NONBLOCK keeps a FIFO
/// from hanging the open; it has no effect on regular files.
fn open_regular(path: &Path, follow_symlinks: bool) -> Result<(File, Metadata), KeyError> {
    let mut flags = libc::O_NONBLOCK;
    if !follow_symlinks {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(|source| {
        if !follow_symlinks && source.raw_os_error() == Some(libc::ELOOP) {
            KeyError::SymlinkRefused { path: path.to_path_buf() }
        } else {
            KeyError::Io { path: path.to_path_buf(), source }
        }
    })?;
    let meta = file.metadata().map_err(io_error(path))?;
    if !meta.is_file() {
        return Err(KeyError::NotRegularFile { path: path.to_path_buf() });
    }
    Ok((file, meta))
}

/// [`open_regular`] plus signify's size limit, checked on the real size so the error
/// can report it.
fn open_key_file(path: &Path, follow_symlinks: bool, kind: &'static str) -> Result<(File, Metadata), KeyError> {
    let (file, meta) = open_regular(path, follow_symlinks)?;
    if meta.len() > FILE_MAX_LEN as u64 {
        return Err(KeyError::TooLarge { origin: path.display().to_string(), kind, size: meta.len() });
    }
    Ok((file, meta))
}

fn check_private_mode(path: &Path, meta: &Metadata, allow_insecure: bool) -> Result<(), KeyError> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 && !allow_insecure {
        return Err(KeyError::InsecurePermissions { path: path.to_path_buf(), mode });
    }
    Ok(())
}

/// Reads at most [`LOAD_LIMIT`] bytes into a buffer that is wiped on drop. If the file
/// grew since it was measured, the parser's size check refuses it.
fn read_head(file: File, path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    // Capacity above the limit, so reading never reallocates and strands a copy.
    let mut buf = Zeroizing::new(Vec::with_capacity(LOAD_LIMIT as usize + 1));
    file.take(LOAD_LIMIT).read_to_end(&mut buf).map_err(io_error(path))?;
    Ok(buf)
}

/// Creates a file that must not exist, writes `contents` and fsyncs it. A file this call
/// created is removed again if writing it fails.
fn create_new_file(path: &Path, mode: u32, contents: &[u8]) -> Result<(), KeyError> {
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(libc::O_NOFOLLOW).open(path).map_err(
            |source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    KeyError::AlreadyExists { path: path.to_path_buf() }
                } else {
                    KeyError::Io { path: path.to_path_buf(), source }
                }
            },
        )?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(KeyError::Io { path: path.to_path_buf(), source });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Passphrases
// ---------------------------------------------------------------------------------------

/// The first line of a file. Not restricted to regular files, so a pipe works.
fn passphrase_from_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(PASSPHRASE_FILE_LIMIT as usize + 1));
    file.take(PASSPHRASE_FILE_LIMIT).read_to_end(&mut buf).map_err(io_error(path))?;
    let origin = format!("passphrase file {}", path.display());
    first_line(&buf, &origin)
}

fn first_line(text: &[u8], origin: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let line = match text.iter().position(|&b| b == b'\n') {
        Some(end) => &text[..end],
        None => text,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(KeyError::EmptyPassphrase { origin: origin.to_owned() });
    }
    Ok(Zeroizing::new(line.to_vec()))
}

fn passphrase_from_terminal(prompt: &str, confirm: bool) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(|s| Zeroizing::new(s.into_bytes()))
            .map_err(|source| KeyError::NoTerminal { source })
    };
    let pass = ask(prompt)?;
    if pass.is_empty() {
        return Err(KeyError::EmptyPassphrase { origin: "terminal".to_owned() });
    }
    if confirm && *ask("confirm passphrase: ")? != *pass {
        return Err(KeyError::PassphraseMismatch);
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const REGRESS_PUB: &[u8] = include_bytes!("../../fixtures/signify-regress/regresskey.pub");
    const REGRESS_SEC: &[u8] = include_bytes!("../../fixtures/signify-regress/regresskey.sec");
    const ORDERS: &[u8] = include_bytes!("../../fixtures/signify-regress/orders.txt");
    const ORDERS_SIG: &[u8] = include_bytes!("../../fixtures/signify-regress/orders.txt.sig");
    const FORGERY: &[u8] = include_bytes!("../../fixtures/signify-regress/forgery.txt");
    const FORGERY_SIG: &[u8] = include_bytes!("../../fixtures/signify-regress/forgery.txt.sig");
    const REGRESS_KEY_ID: &str = "c078a249d4c4c5dd";

    /// The group order L, little-endian.
    const ORDER_L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    fn no_passphrase() -> impl FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError> {
        || Err(KeyError::PassphraseRequired { origin: "test".to_owned() })
    }

    fn passphrase(p: &'static [u8]) -> impl FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError> {
        move || Ok(Zeroizing::new(p.to_vec()))
    }

    fn parse_sec(text: &[u8], pass: &mut PassphraseFn<'_>) -> Result<SecretKey, KeyError> {
        SecretKey::parse(text, Path::new("test.sec"), pass)
    }

    /// A signify file from a comment and raw struct bytes.
    fn container(comment: &str, raw: &[u8]) -> Vec<u8> {
        format!("untrusted comment: {comment}\n{}\n", BASE64.encode(raw)).into_bytes()
    }

    fn pub_struct(keynum: [u8; 8], key: &[u8; 32]) -> Vec<u8> {
        [&PKALG[..], &keynum, key].concat()
    }

    fn err_text<T>(r: Result<T, KeyError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    // --- KeyId -------------------------------------------------------------------------

    #[test]
    fn key_id_hex_round_trip() {
        let id = KeyId([0xc0, 0x78, 0xa2, 0x49, 0xd4, 0xc4, 0xc5, 0xdd]);
        assert_eq!(id.to_hex(), REGRESS_KEY_ID);
        assert_eq!(id.to_string(), REGRESS_KEY_ID);
        assert_eq!(format!("{id:?}"), REGRESS_KEY_ID);
        assert_eq!(KeyId::from_hex(REGRESS_KEY_ID), Some(id));
    }

    #[test]
    fn key_id_from_hex_is_strict() {
        for bad in
            ["", "c078a249d4c4c5d", "c078a249d4c4c5ddd", "C078A249D4C4C5DD", "c078a249d4c4c5dg", "+078a249d4c4c5dd"]
        {
            assert_eq!(KeyId::from_hex(bad), None, "{bad:?}");
        }
        // Multi-byte characters must not slip through a byte-length check.
        assert_eq!(KeyId::from_hex("c078a249d4c4c5é"), None);
    }

    // --- Round trips -------------------------------------------------------------------

    #[test]
    fn secret_key_round_trip_without_passphrase() {
        let key = SecretKey::generate("test secret key");
        let text = key.to_file_string(None).unwrap();
        let calls = Cell::new(0);
        let mut counting = || {
            calls.set(calls.get() + 1);
            Err(KeyError::PassphraseRequired { origin: "test".to_owned() })
        };
        let back = parse_sec(text.as_bytes(), &mut counting).unwrap();
        assert_eq!(calls.get(), 0, "an unencrypted key must not ask for a passphrase");
        assert_eq!(back.key_id(), key.key_id());
        assert_eq!(back.comment(), "test secret key");
        assert_eq!(back.public_key().as_bytes(), key.public_key().as_bytes());
        assert_eq!(back.to_file_string(None).unwrap().len(), text.len());
        // rounds 0, kdfalg BK, as signify -n writes.
        let b64 = text.lines().nth(1).unwrap();
        let raw = BASE64.decode(b64).unwrap();
        assert_eq!(&raw[..4], b"EdBK");
        assert_eq!(&raw[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn secret_key_round_trip_with_passphrase() {
        let key = SecretKey::generate("test secret key");
        let text = key.to_file_string(Some(b"correct horse")).unwrap();
        let raw = BASE64.decode(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(&raw[4..8], &42u32.to_be_bytes());
        let back = parse_sec(text.as_bytes(), &mut passphrase(b"correct horse")).unwrap();
        assert_eq!(back.public_key().as_bytes(), key.public_key().as_bytes());
        assert_eq!(back.key_id(), key.key_id());
        let msg = b"payload";
        assert_eq!(back.sign(msg, "c").bytes(), key.sign(msg, "c").bytes());
    }

    #[test]
    fn salt_is_fresh_for_every_file() {
        let key = SecretKey::generate("k");
        assert_ne!(*key.to_file_string(None).unwrap(), *key.to_file_string(None).unwrap());
    }

    /// A secret-key file encrypted with `rounds` KDF rounds. The tests that only need *an*
    /// encrypted key use one round, because 42 rounds take seconds in a debug build.
    fn encrypted_with_rounds(key: &SecretKey, pass: &[u8], rounds: u32) -> Vec<u8> {
        let text = key.to_file_string(None).unwrap();
        let mut raw = BASE64.decode(text.lines().nth(1).unwrap()).unwrap();
        raw[enckey::ROUNDS..enckey::SALT].copy_from_slice(&rounds.to_be_bytes());
        let xor = derive_xor_key(pass, &raw[enckey::SALT..enckey::CHECKSUM], rounds, "t").unwrap();
        for (s, x) in raw[enckey::SECKEY..].iter_mut().zip(xor.iter()) {
            *s ^= x;
        }
        container(key.comment(), &raw)
    }

    #[test]
    fn encrypted_key_with_other_rounds_decrypts() {
        let key = SecretKey::generate("k");
        let text = encrypted_with_rounds(&key, b"pw", 1);
        let back = parse_sec(&text, &mut passphrase(b"pw")).unwrap();
        assert_eq!(back.public_key().as_bytes(), key.public_key().as_bytes());
    }

    #[test]
    fn wrong_passphrase_is_reported() {
        let key = SecretKey::generate("k");
        let text = encrypted_with_rounds(&key, b"right", 1);
        let msg = err_text(parse_sec(&text, &mut passphrase(b"wrong")));
        assert_eq!(msg, "incorrect passphrase for secret key test.sec");
    }

    #[test]
    fn passphrase_callback_error_is_passed_through() {
        let key = SecretKey::generate("k");
        let text = encrypted_with_rounds(&key, b"right", 1);
        assert!(matches!(parse_sec(&text, &mut no_passphrase()), Err(KeyError::PassphraseRequired { .. })));
    }

    #[test]
    fn empty_passphrase_refused() {
        let key = SecretKey::generate("k");
        assert!(matches!(key.to_file_string(Some(b"")), Err(KeyError::EmptyPassphrase { .. })));
        let text = encrypted_with_rounds(&key, b"x", 1);
        assert!(matches!(parse_sec(&text, &mut passphrase(b"")), Err(KeyError::EmptyPassphrase { .. })));
    }

    #[test]
    fn passphrase_longer_than_signify_reads_refused() {
        let key = SecretKey::generate("k");
        let long = vec![b'a'; PASSPHRASE_MAX_LEN + 1];
        assert!(matches!(key.to_file_string(Some(&long)), Err(KeyError::PassphraseTooLong { .. })));
        assert!(check_new_passphrase(&long[..PASSPHRASE_MAX_LEN], "t").is_ok());
    }

    #[test]
    fn public_key_round_trip() {
        let key = SecretKey::generate("k");
        let public = key.public_key_with_comment("my public key");
        let text = public.to_file_string();
        assert!(text.starts_with("untrusted comment: my public key\n"));
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().nth(1).map(str::len), Some(56));
        let back = PublicKey::parse(text.as_bytes()).unwrap();
        assert_eq!(back.as_bytes(), public.as_bytes());
        assert_eq!(back.key_id(), key.key_id());
        assert_eq!(back.comment(), "my public key");
        assert_eq!(back.to_file_string(), text);
        assert_eq!(key.public_key().comment(), format!("airlock public key {}", key.key_id()));
    }

    #[test]
    fn minisign_public_key_parses() {
        // Frank Denis's widely published minisign key (libsodium, dnscrypt releases).
        // minisign prints the keynum as a little-endian u64, hence the reversed hex.
        let text = b"untrusted comment: minisign public key E7620F1842B4E81F\n\
                     RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n";
        let key = PublicKey::parse(text).unwrap();
        assert_eq!(key.key_id().to_hex(), "1fe8b442180f62e7");
        assert_eq!(key.comment(), "minisign public key E7620F1842B4E81F");
        assert_eq!(key.to_file_string().as_bytes(), text);
    }

    #[test]
    fn signature_round_trip() {
        let key = SecretKey::generate("k");
        let sig = key.sign(b"msg", "verify with k.pub");
        let text = sig.to_file_string();
        assert_eq!(text.lines().nth(1).map(str::len), Some(100));
        let back = Signature::parse(text.as_bytes()).unwrap();
        assert_eq!(back, sig);
        assert_eq!(back.comment(), "verify with k.pub");
        key.public_key().verify(b"msg", &back).unwrap();
    }

    #[test]
    fn check_public_detects_mismatches() {
        let a = SecretKey::generate("a");
        let b = SecretKey::generate("b");
        a.check_public(&a.public_key()).unwrap();
        let msg = err_text(a.check_public(&b.public_key()));
        assert!(msg.contains(&a.key_id().to_hex()) && msg.contains(&b.key_id().to_hex()), "{msg}");
        // Same keynum, other key material: the keynum alone proves nothing.
        let forged = PublicKey::parse(&container("x", &pub_struct(a.key_id().0, b.public_key().as_bytes()))).unwrap();
        assert!(matches!(a.check_public(&forged), Err(KeyError::KeyMaterialMismatch { .. })));
    }

    // --- Malformed input ---------------------------------------------------------------

    #[test]
    fn missing_comment_line() {
        let good = SecretKey::generate("k").public_key().to_file_string();
        let b64_only = good.lines().nth(1).unwrap().to_owned() + "\n";
        let msg = err_text(PublicKey::parse(b64_only.as_bytes()));
        assert_eq!(msg, "public key: not a signify file: missing 'untrusted comment: ' line");
        assert!(matches!(PublicKey::parse(b""), Err(KeyError::MissingComment { .. })));
        let wrong_case = good.replacen("untrusted", "Untrusted", 1);
        assert!(matches!(PublicKey::parse(wrong_case.as_bytes()), Err(KeyError::MissingComment { .. })));
    }

    #[test]
    fn comment_rules() {
        let raw = pub_struct([1; 8], SecretKey::generate("k").public_key().as_bytes());
        assert!(PublicKey::parse(&container(&"c".repeat(1023), &raw)).is_ok());
        let msg = err_text(PublicKey::parse(&container(&"c".repeat(1024), &raw)));
        assert_eq!(msg, "public key: comment is longer than 1023 bytes");
        assert!(err_text(PublicKey::parse(&container("", &raw))).contains("comment is empty"));
        assert!(err_text(PublicKey::parse(&container("crlf\r", &raw))).contains("carriage return"));
        assert!(err_text(PublicKey::parse(&container("nul\0", &raw))).contains("NUL"));
        let mut latin1 = container("caf_", &raw);
        latin1[22] = 0xe9;
        assert!(err_text(PublicKey::parse(&latin1)).contains("UTF-8"));
        // A comment line with no newline at all, short or long.
        assert!(matches!(
            PublicKey::parse(b"untrusted comment: abc"),
            Err(KeyError::MissingNewline { line: "comment", .. })
        ));
        let long = format!("untrusted comment: {}", "c".repeat(1500));
        assert!(err_text(PublicKey::parse(long.as_bytes())).contains("longer than 1023"));
    }

    #[test]
    fn comments_checked_when_written() {
        assert_eq!(check_comment("ok"), Ok(()));
        assert_eq!(check_comment("two\nlines"), Err("contains a newline"));
        let key = SecretKey::generate("bad\ncomment");
        assert!(matches!(key.to_file_string(None), Err(KeyError::BadComment { .. })));
        let too_long = SecretKey::generate(&"x".repeat(1024));
        assert!(matches!(too_long.to_file_string(None), Err(KeyError::BadComment { .. })));
    }

    #[test]
    fn infallible_constructors_sanitize_comments() {
        let key = SecretKey::generate("k");
        let sig = key.sign(b"m", "evil\nuntrusted comment: x");
        assert_eq!(sig.comment(), "evil untrusted comment: x");
        assert_eq!(Signature::parse(sig.to_file_string().as_bytes()).unwrap(), sig);
        let long = key.public_key_with_comment(&"é".repeat(600));
        assert!(long.comment().len() <= COMMENT_MAX_LEN);
        PublicKey::parse(long.to_file_string().as_bytes()).unwrap();
        assert_eq!(key.public_key_with_comment("").comment(), "airlock");
    }

    #[test]
    fn missing_final_newline() {
        let good = SecretKey::generate("k").public_key().to_file_string();
        let cut = good.trim_end_matches('\n');
        let msg = err_text(PublicKey::parse(cut.as_bytes()));
        assert_eq!(msg, "public key: missing newline after the base64 line");
        let sig = SecretKey::generate("k").sign(b"m", "c").to_file_string();
        assert!(matches!(
            Signature::parse(sig.trim_end().as_bytes()),
            Err(KeyError::MissingNewline { line: "base64", .. })
        ));
    }

    #[test]
    fn bad_base64() {
        let msg = err_text(PublicKey::parse(b"untrusted comment: c\nRWT!not-base64\n"));
        assert!(msg.starts_with("public key: invalid base64: "), "{msg}");
        // Whitespace inside the base64 line is refused (signify would skip it).
        let good = SecretKey::generate("k").public_key().to_file_string();
        let (head, tail) = good.split_at(good.find('\n').unwrap() + 10);
        let spaced = format!("{head} {tail}");
        assert!(matches!(PublicKey::parse(spaced.as_bytes()), Err(KeyError::Base64 { .. })));
        let crlf = good.replace('\n', "\r\n");
        assert!(PublicKey::parse(crlf.as_bytes()).is_err());
        // Missing padding is not canonical base64 (a 74-byte signature needs one '=').
        let sig = SecretKey::generate("k").sign(b"m", "c").to_file_string();
        let unpadded = sig.replace("=\n", "\n");
        assert_ne!(unpadded, sig);
        assert!(matches!(Signature::parse(unpadded.as_bytes()), Err(KeyError::Base64 { .. })));
    }

    #[test]
    fn wrong_lengths() {
        let sig_text = SecretKey::generate("k").sign(b"m", "c").to_file_string();
        let msg = err_text(PublicKey::parse(sig_text.as_bytes()));
        assert_eq!(msg, "public key: wrong decoded length for a signify public key: expected 42 bytes, found 74");
        let pub_text = SecretKey::generate("k").public_key().to_file_string();
        assert!(matches!(
            Signature::parse(pub_text.as_bytes()),
            Err(KeyError::WrongLength { expected: 74, found: 42, .. })
        ));
        assert!(matches!(
            parse_sec(pub_text.as_bytes(), &mut no_passphrase()),
            Err(KeyError::WrongLength { expected: 104, found: 42, .. })
        ));
        assert!(matches!(PublicKey::parse(b"untrusted comment: c\n\n"), Err(KeyError::WrongLength { found: 0, .. })));
    }

    #[test]
    fn wrong_algorithm_tag() {
        let key = SecretKey::generate("k");
        let mut raw = pub_struct(key.key_id().0, key.public_key().as_bytes());
        raw[..2].copy_from_slice(b"ED");
        let msg = err_text(PublicKey::parse(&container("c", &raw)));
        assert_eq!(msg, "public key: unsupported algorithm \"ED\" (expected \"Ed\")");
        let mut sig = [&PKALG[..], &[0; 8], &[0; 64]].concat();
        sig[0] = 0xff;
        assert!(err_text(Signature::parse(&container("c", &sig))).contains("\"\\xffd\""));
    }

    #[test]
    fn unsupported_kdf() {
        let text = SecretKey::generate("k").to_file_string(None).unwrap();
        let mut raw = BASE64.decode(text.lines().nth(1).unwrap()).unwrap();
        raw[2..4].copy_from_slice(b"Sc");
        let msg = err_text(parse_sec(&container("k", &raw), &mut no_passphrase()));
        assert_eq!(msg, "test.sec: unsupported KDF \"Sc\" (expected \"BK\")");
    }

    #[test]
    fn corrupt_secret_keys() {
        let key = SecretKey::generate("k");
        let text = key.to_file_string(None).unwrap();
        let raw = BASE64.decode(text.lines().nth(1).unwrap()).unwrap();
        // A flipped bit in the plaintext key breaks the checksum.
        let mut flipped = raw.clone();
        flipped[enckey::SECKEY] ^= 1;
        assert!(matches!(
            parse_sec(&container("k", &flipped), &mut no_passphrase()),
            Err(KeyError::CorruptSecretKey { .. })
        ));
        // A stored public half that the seed does not derive, with a checksum to match.
        let mut swapped = raw.clone();
        swapped[enckey::SECKEY + 32..].copy_from_slice(SecretKey::generate("o").public_key().as_bytes());
        let mut seckey = [0u8; 64];
        seckey.copy_from_slice(&swapped[enckey::SECKEY..]);
        swapped[enckey::CHECKSUM..enckey::KEYNUM].copy_from_slice(&seckey_checksum(&seckey));
        let msg = err_text(parse_sec(&container("k", &swapped), &mut no_passphrase()));
        assert!(msg.contains("inconsistent") && msg.contains(&key.key_id().to_hex()), "{msg}");
    }

    #[test]
    fn trailing_bytes_and_size_limits() {
        let key = SecretKey::generate("k");
        let mut sig = key.sign(b"m", "c").to_file_string().into_bytes();
        sig.extend_from_slice(b"extra");
        let msg = err_text(Signature::parse(&sig));
        assert_eq!(
            msg,
            "signature: 5 unexpected bytes after the base64 line (a signify signature file is exactly 2 lines)"
        );
        let mut public = key.public_key().to_file_string().into_bytes();
        public.push(b'\n');
        assert!(matches!(PublicKey::parse(&public), Err(KeyError::TrailingData { extra: 1, .. })));
        let mut big = key.public_key().to_file_string().into_bytes();
        big.resize(FILE_MAX_LEN + 1, b'x');
        assert!(matches!(PublicKey::parse(&big), Err(KeyError::TooLarge { size: 2048, .. })));
    }

    #[test]
    fn every_prefix_of_valid_files_is_an_error_not_a_panic() {
        let key = SecretKey::generate("k");
        let sec = key.to_file_string(None).unwrap();
        let public = key.public_key().to_file_string();
        let sig = key.sign(b"m", "c").to_file_string();
        for n in 0..sec.len() {
            assert!(parse_sec(&sec.as_bytes()[..n], &mut no_passphrase()).is_err());
        }
        for n in 0..public.len() {
            assert!(PublicKey::parse(&public.as_bytes()[..n]).is_err());
        }
        for n in 0..sig.len() {
            assert!(Signature::parse(&sig.as_bytes()[..n]).is_err());
            assert!(parse_embedded(&sig.as_bytes()[..n]).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = PublicKey::parse(&data);
            let _ = Signature::parse(&data);
            let _ = parse_embedded(&data);
            let _ = parse_sec(&data, &mut no_passphrase());
        }

        #[test]
        fn arbitrary_base64_payload_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
            let text = container("c", &raw);
            let _ = PublicKey::parse(&text);
            let _ = Signature::parse(&text);
            let _ = parse_sec(&text, &mut passphrase(b"p"));
        }
    }

    // --- Weak and non-canonical keys -----------------------------------------------------

    #[test]
    fn weak_keys_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for (name, key) in [("identity", identity), ("all-zero", [0u8; 32])] {
            let msg = err_text(PublicKey::parse(&container("c", &pub_struct([7; 8], &key))));
            assert_eq!(msg, "public key: weak (small-order) public key 0707070707070707 refused", "{name}");
        }
    }

    #[test]
    fn non_canonical_keys_refused() {
        // The identity with the sign bit of x set: decodes (x = 0 = -0), but compresses
        // without the bit.
        let mut signed_identity = [0u8; 32];
        signed_identity[0] = 1;
        signed_identity[31] = 0x80;
        assert!(matches!(
            PublicKey::parse(&container("c", &pub_struct([1; 8], &signed_identity))),
            Err(KeyError::NonCanonicalKey { .. })
        ));
        // y = p + k for a small k whose point is valid and not weak: the same point as y = k.
        let k = (2u8..=18)
            .find(|&k| {
                let mut y = [0u8; 32];
                y[0] = k;
                VerifyingKey::from_bytes(&y).is_ok_and(|v| !v.is_weak())
            })
            .expect("some small y is a point of large order");
        let mut y_plus_p = [0xffu8; 32];
        y_plus_p[0] = 0xed + k;
        y_plus_p[31] = 0x7f;
        let msg = err_text(PublicKey::parse(&container("c", &pub_struct([1; 8], &y_plus_p))));
        assert_eq!(msg, "public key: key 0101010101010101 is not canonically encoded");
    }

    #[test]
    fn invalid_point_refused() {
        // About half of all y values are not the y-coordinate of any curve point.
        let y = (2u8..=100)
            .map(|k| {
                let mut y = [0u8; 32];
                y[0] = k;
                y
            })
            .find(|y| VerifyingKey::from_bytes(y).is_err())
            .expect("some small y is off the curve");
        let msg = err_text(PublicKey::parse(&container("c", &pub_struct([1; 8], &y))));
        assert_eq!(msg, "public key: key 0101010101010101 is not a valid Ed25519 point");
    }

    // --- Verification --------------------------------------------------------------------

    #[test]
    fn key_id_mismatch_names_both_ids() {
        let a = SecretKey::generate("a");
        let b = SecretKey::generate("b");
        let sig = a.sign(b"m", "c");
        let msg = err_text(b.public_key().verify(b"m", &sig));
        assert_eq!(msg, format!("signature by key {} but checked against key {}", a.key_id(), b.key_id()));
    }

    #[test]
    fn verify_rejects_flipped_bits() {
        let key = SecretKey::generate("k");
        let public = key.public_key();
        let sig = key.sign(b"message", "c");
        public.verify(b"message", &sig).unwrap();
        let msg = err_text(public.verify(b"messagf", &sig));
        assert_eq!(msg, format!("signature verification failed for key {}", key.key_id()));
        for bit in [0, 255, 256, 511] {
            let mut bad = sig.clone();
            bad.bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(public.verify(b"message", &bad), Err(KeyError::BadSignature { .. })), "bit {bit}");
        }
    }

    #[test]
    fn verify_rejects_non_canonical_s() {
        let key = SecretKey::generate("k");
        let sig = key.sign(b"message", "c");
        let mut malleated = sig.clone();
        let mut carry = 0u16;
        for (s, l) in malleated.bytes[32..].iter_mut().zip(ORDER_L) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        assert_ne!(malleated, sig);
        // signify would accept (R, S + L); strict verification must not.
        assert!(matches!(key.public_key().verify(b"message", &malleated), Err(KeyError::BadSignature { .. })));
    }

    #[test]
    fn embedded_round_trip() {
        let key = SecretKey::generate("k");
        let msg = b"SHA256 (a) = 00\nno final newline";
        let file = sign_embedded(&key, msg, "verify with k.pub");
        let (sig, body) = parse_embedded(&file).unwrap();
        assert_eq!(body, msg);
        assert_eq!(sig.comment(), "verify with k.pub");
        key.public_key().verify(body, &sig).unwrap();
        let empty_file = sign_embedded(&key, b"", "c");
        let (_, empty) = parse_embedded(&empty_file).unwrap();
        assert!(empty.is_empty());
        // A huge message is fine for an embedded signature.
        let big = vec![b'x'; 10_000];
        let big_file = sign_embedded(&key, &big, "c");
        let (sig, body) = parse_embedded(&big_file).unwrap();
        key.public_key().verify(body, &sig).unwrap();
    }

    // --- signify regress known-answer test ------------------------------------------------

    #[test]
    fn signify_regress_keys_parse() {
        let public = PublicKey::parse(REGRESS_PUB).unwrap();
        assert_eq!(public.key_id().to_hex(), REGRESS_KEY_ID);
        assert_eq!(public.comment(), "signify public key");
        let secret = parse_sec(REGRESS_SEC, &mut no_passphrase()).unwrap();
        assert_eq!(secret.key_id(), public.key_id());
        assert_eq!(secret.comment(), "signify secret key");
        secret.check_public(&public).unwrap();
    }

    #[test]
    fn signify_regress_signature_verifies() {
        let public = PublicKey::parse(REGRESS_PUB).unwrap();
        let sig = Signature::parse(ORDERS_SIG).unwrap();
        assert_eq!(sig.comment(), "signature from signify secret key");
        public.verify(ORDERS, &sig).unwrap();
    }

    #[test]
    fn signify_regress_forgery_fails() {
        let public = PublicKey::parse(REGRESS_PUB).unwrap();
        let forged = Signature::parse(FORGERY_SIG).unwrap();
        assert!(matches!(public.verify(FORGERY, &forged), Err(KeyError::BadSignature { .. })));
    }

    #[test]
    fn signify_regress_signing_is_reproduced_exactly() {
        let secret = parse_sec(REGRESS_SEC, &mut no_passphrase()).unwrap();
        let sig = secret.sign(ORDERS, "signature from signify secret key");
        assert_eq!(sig.to_file_string().as_bytes(), ORDERS_SIG);
        assert_eq!(secret.public_key_with_comment("signify public key").to_file_string().as_bytes(), REGRESS_PUB);
    }

    // --- Files ---------------------------------------------------------------------------

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn write_key_pair_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("k.pub"), dir.path().join("k.sec"));
        let key = SecretKey::generate("k secret key");
        write_key_pair(&p, &s, &key, "k public key", Some(b"pw")).unwrap();
        assert_eq!(fs::metadata(&s).unwrap().permissions().mode() & 0o777, 0o600);
        let public = PublicKey::load(&p).unwrap();
        assert_eq!(public.comment(), "k public key");
        let secret = SecretKey::load(&s, false, &mut passphrase(b"pw")).unwrap();
        secret.check_public(&public).unwrap();
        assert_eq!(secret.comment(), "k secret key");
    }

    #[test]
    fn write_key_pair_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("k.pub"), dir.path().join("k.sec"));
        let key = SecretKey::generate("k");
        fs::write(&p, "old").unwrap();
        let msg = err_text(write_key_pair(&p, &s, &key, "c", None));
        assert!(msg.contains("already exists") && msg.contains("k.pub"), "{msg}");
        assert!(!s.exists(), "no secret key may be left behind");
        fs::remove_file(&p).unwrap();
        fs::write(&s, "old").unwrap();
        assert!(matches!(write_key_pair(&p, &s, &key, "c", None), Err(KeyError::AlreadyExists { .. })));
        assert_eq!(fs::read(&s).unwrap(), b"old");
        assert!(!p.exists());
    }

    #[test]
    fn write_key_pair_does_not_follow_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let s = dir.path().join("k.sec");
        std::os::unix::fs::symlink(&target, &s).unwrap();
        let key = SecretKey::generate("k");
        assert!(write_key_pair(&dir.path().join("k.pub"), &s, &key, "c", None).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn write_key_pair_removes_secret_when_public_fails() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("k.sec");
        let p = dir.path().join("missing-dir").join("k.pub");
        let key = SecretKey::generate("k");
        assert!(matches!(write_key_pair(&p, &s, &key, "c", None), Err(KeyError::Io { .. })));
        assert!(!s.exists());
    }

    #[test]
    fn write_key_pair_checks_comments_first() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("k.pub"), dir.path().join("k.sec"));
        let key = SecretKey::generate("k");
        assert!(matches!(write_key_pair(&p, &s, &key, "a\nb", None), Err(KeyError::BadComment { .. })));
        assert!(matches!(write_key_pair(&p, &s, &key, "c", Some(b"")), Err(KeyError::EmptyPassphrase { .. })));
        assert!(!p.exists() && !s.exists());
    }

    #[test]
    fn secret_key_permissions_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("k.sec");
        fs::write(&s, SecretKey::generate("k").to_file_string(None).unwrap().as_bytes()).unwrap();
        set_mode(&s, 0o640);
        let msg = err_text(SecretKey::load(&s, false, &mut no_passphrase()));
        assert_eq!(
            msg,
            format!("secret key file {} is accessible by group/others (mode 0640); run chmod 600 on it", s.display())
        );
        SecretKey::load(&s, true, &mut no_passphrase()).unwrap();
        set_mode(&s, 0o400);
        SecretKey::load(&s, false, &mut no_passphrase()).unwrap();
    }

    #[test]
    fn secret_key_symlink_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("real.sec");
        fs::write(&s, SecretKey::generate("k").to_file_string(None).unwrap().as_bytes()).unwrap();
        set_mode(&s, 0o600);
        let link = dir.path().join("link.sec");
        std::os::unix::fs::symlink(&s, &link).unwrap();
        assert!(matches!(SecretKey::load(&link, false, &mut no_passphrase()), Err(KeyError::SymlinkRefused { .. })));
    }

    #[test]
    fn non_regular_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(PublicKey::load(dir.path()), Err(KeyError::NotRegularFile { .. })));
        assert!(matches!(
            SecretKey::load(dir.path(), true, &mut no_passphrase()),
            Err(KeyError::NotRegularFile { .. })
        ));
        let msg = err_text(PublicKey::load(&dir.path().join("absent.pub")));
        assert!(msg.contains("absent.pub"), "{msg}");
    }

    #[test]
    fn large_key_file_refused_by_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.pub");
        let mut text = SecretKey::generate("k").public_key().to_file_string().into_bytes();
        text.resize(1 << 20, b'x');
        fs::write(&p, &text).unwrap();
        let msg = err_text(PublicKey::load(&p));
        assert!(msg.starts_with(&format!("{}: too large", p.display())), "{msg}");
    }

    #[test]
    fn passphrase_file_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        for (content, want) in [
            (&b"secret\n"[..], &b"secret"[..]),
            (b"secret\r\nignored\n", b"secret"),
            (b"no newline", b"no newline"),
            (b" spaces kept \n", b" spaces kept "),
        ] {
            fs::write(&f, content).unwrap();
            assert_eq!(&**read_passphrase(Some(&f), "p: ", false).unwrap(), want);
        }
        for empty in [&b""[..], b"\n", b"\r\n", b"\nsecond line"] {
            fs::write(&f, empty).unwrap();
            assert!(matches!(read_passphrase(Some(&f), "p: ", false), Err(KeyError::EmptyPassphrase { .. })));
        }
        let msg = err_text(read_passphrase(Some(&dir.path().join("absent")), "p: ", false));
        assert!(msg.contains("absent"), "{msg}");
    }

    #[test]
    fn secret_key_debug_hides_the_secret() {
        let secret = parse_sec(REGRESS_SEC, &mut no_passphrase()).unwrap();
        let debug = format!("{secret:?}");
        assert!(debug.contains(REGRESS_KEY_ID));
        // Neither the seed in hex nor the seed as a byte list may appear.
        let seed = secret.key.as_bytes();
        let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!debug.contains(&seed_hex[..8]), "{debug}");
        assert!(!debug.contains(&format!("{}, {}, {}", seed[0], seed[1], seed[2])), "{debug}");
    }
}
