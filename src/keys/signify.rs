//! The signify file formats (OpenBSD `signify.c`), byte for byte: the two-line container,
//! the three structs inside it, and embedded signatures.
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
//! The secret-key layout is spelled out once, in `enckey`, and decoded once, by
//! `EncKey::decode`; [`crate::keys::info`] reads the clear fields through it too.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha512};
use zeroize::Zeroizing;

use super::ed25519::checked_verifying_key;
use super::{random_bytes, KeyError, KeyId, PassphraseFn, PublicKey, SecretKey, Signature};

/// Signature algorithm tag of every signify struct.
pub(crate) const PKALG: [u8; 2] = *b"Ed";
/// KDF tag of a signify secret key (bcrypt_pbkdf).
const KDFALG: [u8; 2] = *b"BK";
/// First bytes of every signify file.
const COMMENT_HEADER: &[u8] = b"untrusted comment: ";
/// signify copies the comment into a 1024-byte C string, so 1023 bytes is the most it keeps.
pub(crate) const COMMENT_MAX_LEN: usize = 1023;
/// signify reads key and signature files into a 2048-byte buffer, NUL included.
pub(crate) const FILE_MAX_LEN: usize = 2047;
/// The rounds signify uses for a passphrase-protected key.
const KDF_ROUNDS: u32 = 42;
/// signify reads the passphrase with readpassphrase into 1024 bytes, so it silently
/// truncates anything longer than 1023 bytes. We refuse to encrypt with a passphrase that
/// signify could not reproduce.
pub(crate) const PASSPHRASE_MAX_LEN: usize = 1023;

const KEYNUM_LEN: usize = 8;
/// The size of a public-key struct (signify and minisign alike).
pub(crate) const PUBKEY_STRUCT_LEN: usize = 2 + KEYNUM_LEN + 32;
const SIG_STRUCT_LEN: usize = 2 + KEYNUM_LEN + 64;
/// The size of a secret-key struct (`struct enckey`).
pub(crate) const SECKEY_STRUCT_LEN: usize = 2 + 2 + 4 + 16 + 8 + KEYNUM_LEN + 64;

/// Offsets inside `struct enckey`.
pub(crate) mod enckey {
    pub const KDFALG: usize = 2;
    pub const ROUNDS: usize = 4;
    pub const SALT: usize = 8;
    pub const CHECKSUM: usize = 24;
    pub const KEYNUM: usize = 32;
    pub const SECKEY: usize = 40;
    /// The public half inside the (possibly encrypted) seed ‖ public key.
    pub const PUBLIC: usize = SECKEY + 32;
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
pub(crate) fn sanitize_comment(comment: &str) -> String {
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
pub(crate) fn public_file_text(comment: &str, raw: &[u8]) -> String {
    std::mem::take(&mut *file_text(comment, raw))
}

// ---------------------------------------------------------------------------------------
// Struct decoding
// ---------------------------------------------------------------------------------------

/// Parses a `.pub` file (signify or minisign).
pub(crate) fn parse_public(text: &[u8], origin: &str) -> Result<PublicKey, KeyError> {
    let (comment, raw) = decode_file(text, origin, "public key", PUBKEY_STRUCT_LEN)?;
    let key_id = key_id_at(&raw, 2);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&raw[2 + KEYNUM_LEN..]);
    let key = checked_verifying_key(&bytes, key_id, origin)?;
    Ok(PublicKey { key_id, key, comment })
}

/// Parses a detached `.sig` file: exactly two lines and nothing after them.
pub(crate) fn parse_signature(text: &[u8], origin: &str) -> Result<Signature, KeyError> {
    check_size(text, origin, "signature")?;
    let container = split_container(text, origin)?;
    container.expect_end(origin, "signature")?;
    signature_from_container(&container, origin)
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

/// The fields of a decoded `struct enckey`, the seed ‖ public key still as stored
/// (encrypted when `rounds > 0`).
pub(crate) struct EncKey {
    /// bcrypt_pbkdf rounds; 0 for a key stored in plaintext (`signify -n`).
    pub rounds: u32,
    pub salt: [u8; 16],
    pub checksum: [u8; 8],
    pub key_id: KeyId,
    pub seckey: Zeroizing<[u8; 64]>,
}

impl EncKey {
    /// Reads the fields of a 104-byte secret-key struct whose algorithm tag was checked.
    pub(crate) fn decode(raw: &[u8], origin: &str) -> Result<EncKey, KeyError> {
        if raw.len() != SECKEY_STRUCT_LEN {
            return Err(KeyError::WrongLength {
                origin: origin.to_owned(),
                kind: "secret key",
                expected: SECKEY_STRUCT_LEN,
                found: raw.len(),
            });
        }
        let kdfalg = [raw[enckey::KDFALG], raw[enckey::KDFALG + 1]];
        if kdfalg != KDFALG {
            return Err(KeyError::UnsupportedKdf { origin: origin.to_owned(), found: kdfalg });
        }
        let mut rounds = [0u8; 4];
        rounds.copy_from_slice(&raw[enckey::ROUNDS..enckey::SALT]);
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&raw[enckey::SALT..enckey::CHECKSUM]);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&raw[enckey::CHECKSUM..enckey::KEYNUM]);
        let mut seckey = Zeroizing::new([0u8; 64]);
        seckey.copy_from_slice(&raw[enckey::SECKEY..]);
        Ok(EncKey {
            rounds: u32::from_be_bytes(rounds),
            salt,
            checksum,
            key_id: key_id_at(raw, enckey::KEYNUM),
            seckey,
        })
    }

    /// The stored public half, readable without the passphrase only when the key is not
    /// encrypted.
    pub(crate) fn clear_public(&self) -> Option<[u8; 32]> {
        (self.rounds == 0).then(|| {
            let mut public = [0u8; 32];
            public.copy_from_slice(&self.seckey[enckey::PUBLIC - enckey::SECKEY..]);
            public
        })
    }

    /// The struct bytes.
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut raw = Zeroizing::new(Vec::with_capacity(SECKEY_STRUCT_LEN));
        raw.extend_from_slice(&PKALG);
        raw.extend_from_slice(&KDFALG);
        raw.extend_from_slice(&self.rounds.to_be_bytes());
        raw.extend_from_slice(&self.salt);
        raw.extend_from_slice(&self.checksum);
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(self.seckey.as_ref());
        raw
    }
}

/// Splits a signify file that must hold nothing but one struct of `kind`, and decodes the
/// struct.
pub(crate) fn decode_file(
    text: &[u8],
    origin: &str,
    kind: &'static str,
    len: usize,
) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    check_size(text, origin, kind)?;
    let container = split_container(text, origin)?;
    container.expect_end(origin, kind)?;
    let raw = container.decode(origin, kind, len)?;
    Ok((container.comment.to_owned(), raw))
}

/// Parses a `.sec` file, asking `passphrase` only if the key is encrypted.
pub(crate) fn parse_secret(
    text: &[u8],
    origin: &str,
    passphrase: &mut PassphraseFn<'_>,
) -> Result<SecretKey, KeyError> {
    let (comment, raw) = decode_file(text, origin, "secret key", SECKEY_STRUCT_LEN)?;
    let EncKey { rounds, salt, checksum, key_id, mut seckey } = EncKey::decode(&raw, origin)?;
    if rounds > 0 {
        decrypt_seckey(&mut seckey, &salt, rounds, origin, passphrase)?;
    }
    if seckey_checksum(&seckey) != checksum {
        return Err(if rounds > 0 {
            KeyError::IncorrectPassphrase { origin: origin.to_owned() }
        } else {
            KeyError::CorruptSecretKey { origin: origin.to_owned(), key_id }
        });
    }
    let key = signing_key_from_seckey(&seckey, key_id, origin)?;
    Ok(SecretKey { key_id, key, comment })
}

/// The `.sec` file text for `key` (see [`SecretKey::to_file_string`]).
pub(crate) fn secret_file_text(key: &SecretKey, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, KeyError> {
    let origin = format!("secret key {}", key.key_id);
    check_comment(&key.comment).map_err(|problem| KeyError::BadComment { origin: origin.clone(), problem })?;
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    let (rounds, xor) = match passphrase {
        None => (0, Zeroizing::new([0u8; 64])),
        Some(p) => {
            check_new_passphrase(p, &origin)?;
            (KDF_ROUNDS, derive_xor_key(p, &salt, KDF_ROUNDS, &origin)?)
        }
    };
    let plain = key.seckey_bytes();
    let mut seckey = Zeroizing::new([0u8; 64]);
    for ((s, p), x) in seckey.iter_mut().zip(plain.iter()).zip(xor.iter()) {
        *s = p ^ x;
    }
    let enc = EncKey { rounds, salt, checksum: seckey_checksum(&plain), key_id: key.key_id, seckey };
    Ok(file_text(&key.comment, &enc.encode()))
}

/// The public-key struct: `"Ed"` · keynum · key.
pub(crate) fn public_struct(key_id: KeyId, key: &[u8; 32]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(PUBKEY_STRUCT_LEN);
    raw.extend_from_slice(&PKALG);
    raw.extend_from_slice(&key_id.0);
    raw.extend_from_slice(key);
    raw
}

/// The signature struct: `"Ed"` · keynum · signature.
pub(crate) fn signature_struct(sig: &Signature) -> Vec<u8> {
    let mut raw = Vec::with_capacity(SIG_STRUCT_LEN);
    raw.extend_from_slice(&PKALG);
    raw.extend_from_slice(&sig.key_id.0);
    raw.extend_from_slice(&sig.bytes);
    raw
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

pub(crate) fn derive_xor_key(
    pass: &[u8],
    salt: &[u8],
    rounds: u32,
    origin: &str,
) -> Result<Zeroizing<[u8; 64]>, KeyError> {
    let mut out = Zeroizing::new([0u8; 64]);
    // bcrypt_pbkdf's work area holds key material too, so give it one that is wiped.
    let mut work = Zeroizing::new([0u8; 64]);
    bcrypt_pbkdf::bcrypt_pbkdf_with_memory(pass, salt, rounds, out.as_mut(), work.as_mut())
        .map_err(|e| KeyError::Kdf { origin: origin.to_owned(), reason: e.to_string() })?;
    Ok(out)
}

/// signify's checksum: the first 8 bytes of SHA-512 over the plaintext seed ‖ public key.
pub(crate) fn seckey_checksum(seckey: &[u8; 64]) -> [u8; 8] {
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

pub(crate) fn check_new_passphrase(pass: &[u8], origin: &str) -> Result<(), KeyError> {
    if pass.is_empty() {
        return Err(KeyError::EmptyPassphrase { origin: origin.to_owned() });
    }
    if pass.len() > PASSPHRASE_MAX_LEN {
        return Err(KeyError::PassphraseTooLong { origin: origin.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use ed25519_dalek::VerifyingKey;

    use super::*;
    use crate::keys::testutil::*;

    const ORDERS: &[u8] = include_bytes!("../../fixtures/signify-regress/orders.txt");
    const ORDERS_SIG: &[u8] = include_bytes!("../../fixtures/signify-regress/orders.txt.sig");
    const FORGERY: &[u8] = include_bytes!("../../fixtures/signify-regress/forgery.txt");
    const FORGERY_SIG: &[u8] = include_bytes!("../../fixtures/signify-regress/forgery.txt.sig");

    /// The group order L, little-endian.
    const ORDER_L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

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
}
