//! Signify-compatible Ed25519 keys and signatures, and minisign signatures.
//!
//! airlock reads and writes the three file formats of OpenBSD `signify` (`signify.c`)
//! byte for byte ([`signify`] has the layouts), so an operator can check anything airlock
//! signs with stock signify. A minisign public key has the same layout as a signify public
//! key, so [`PublicKey::parse`] reads both; [`minisign`] reads minisign signatures.
//!
//! | module | what |
//! |---|---|
//! | this one | the types: [`KeyId`], [`PublicKey`], [`SecretKey`], [`Signature`] |
//! | [`signify`] | the container codec, the struct layouts, embedded signatures |
//! | `file` | loading key files (no symbolic links to secret keys, the 0600 check) and writing them |
//! | [`ed25519`] | strict Ed25519: checked public keys, [`ed25519::StrictStream`] |
//! | [`minisign`] | `.minisig` files and minisign's key-id spelling |
//! | [`info`] | `airlock key show` / `convert`: identify a key file, write it in the other spelling |
//!
//! Nothing here reads the environment or prompts: a passphrase comes from the caller's
//! callback.
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

pub mod ed25519;
mod error;
mod file;
pub mod info;
pub mod minisign;
pub mod signify;
#[cfg(test)]
mod testutil;

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

pub use error::{KeyError, KeyKind, NotAKeyFile};
pub use file::{write_key_pair, write_new_key_file, KeyPermissions};
pub use signify::{check_comment, parse_embedded, sign_embedded};

use crate::io::digest::hex;
use file::{read_key_file, Symlinks};
use signify::{public_file_text, sanitize_comment};

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
        hex(&self.0)
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
        signify::parse_public(text, "public key")
    }

    /// Reads a `.pub` file. It must be a regular file (symbolic links are followed); at most
    /// 4096 bytes are read.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = read_key_file(path, Symlinks::Follow, None, "public key")?;
        let origin = path.display().to_string();
        signify::parse_public(&text, &origin).map_err(|e| match info::key_info(&text, &origin) {
            // A secret key given for a public one: say so, not "wrong decoded length".
            Ok(found) if !found.kind.is_public() => {
                KeyError::WrongKind { origin, found: found.kind, wanted: "public key" }
            }
            _ => e,
        })
    }

    /// The `.pub` file text: `untrusted comment: <comment>\n<base64>\n`.
    pub fn to_file_string(&self) -> String {
        public_file_text(&self.comment, &signify::public_struct(self.key_id, self.key.as_bytes()))
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

    /// The checked Ed25519 key, for the streaming checks in [`ed25519`] and [`minisign`].
    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Builds a key from a key derived from a secret key. Such a key cannot be weak or
    /// non-canonical: it is the compression of a multiple of the base point.
    fn from_verifying(key_id: KeyId, key: VerifyingKey, comment: &str) -> PublicKey {
        PublicKey { key_id, key, comment: sanitize_comment(comment) }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .field("key", &hex(self.as_bytes()))
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
pub(crate) type PassphraseFn<'a> = dyn FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError> + 'a;
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
        let mut keynum = [0u8; 8];
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
        signify::parse_secret(text, &origin.display().to_string(), passphrase)
    }

    /// Reads a `.sec` file. It must be a regular file, not a symbolic link. With
    /// [`KeyPermissions::Strict`] it must not grant any permission to group or others
    /// (mode & 0o077 == 0).
    pub fn load(
        path: &Path,
        permissions: KeyPermissions,
        passphrase: &mut dyn FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError>,
    ) -> Result<SecretKey, KeyError> {
        let checked = read_key_file(path, Symlinks::Refuse, Some(permissions), "secret key");
        let result = checked.and_then(|text| signify::parse_secret(&text, &path.display().to_string(), passphrase));
        result.map_err(|e| match e {
            KeyError::InsecurePermissions { .. } | KeyError::WrongLength { .. } | KeyError::UnsupportedKdf { .. } => {
                wrong_kind_for_secret(path).unwrap_or(e)
            }
            other => other,
        })
    }

    /// The `.sec` file text. With no passphrase, kdfrounds is 0 and the key is stored in
    /// plaintext, as with `signify -G -n`. The salt is still random and the KDF tag is
    /// still "BK". With a passphrase, kdfrounds is 42. An empty passphrase is refused, and
    /// so is one longer than signify can read.
    pub fn to_file_string(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, KeyError> {
        signify::secret_file_text(self, passphrase)
    }

    /// A detached signature: plain Ed25519 over `msg` (no prehash, no context), as
    /// `signify -S` makes. The comment is sanitized like
    /// [`SecretKey::public_key_with_comment`]'s; signify's own is `verify with <name>.pub`.
    pub fn sign(&self, msg: &[u8], comment: &str) -> Signature {
        Signature { key_id: self.key_id, bytes: self.key.sign(msg).to_bytes(), comment: sanitize_comment(comment) }
    }

    /// [`sign`](Self::sign) over a message too large to hold: `feed` hands its pieces, in
    /// order, to the function it is given. Ed25519 hashes the message twice (the nonce,
    /// then the challenge), so `feed` is called twice and must give the same bytes both
    /// times; the signature is the one [`sign`](Self::sign) makes over the pieces joined.
    /// `None` only if ed25519-dalek fails, which it does only when an update fails (never
    /// here): a caller treats it as an internal error.
    pub fn sign_streamed(&self, feed: impl Fn(&mut dyn FnMut(&[u8])), comment: &str) -> Option<Signature> {
        use ed25519_dalek::hazmat::{raw_sign_byupdate, ExpandedSecretKey};
        use sha2::Digest as _;
        let expanded = ExpandedSecretKey::from(self.key.as_bytes());
        let update = |hash: &mut sha2::Sha512| {
            feed(&mut |piece: &[u8]| hash.update(piece));
            Ok(())
        };
        let signature = raw_sign_byupdate::<sha2::Sha512, _>(&expanded, update, &self.key.verifying_key()).ok()?;
        Some(Signature { key_id: self.key_id, bytes: signature.to_bytes(), comment: sanitize_comment(comment) })
    }

    /// The 64-byte SUPERCOP secret key (seed ‖ public key) that signify stores.
    pub(crate) fn seckey_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(self.key.as_bytes());
        out[32..].copy_from_slice(self.key.verifying_key().as_bytes());
        out
    }
}

/// When a file given as a signify secret key could not be used as one: if it is a public
/// key (whose 0644 mode or length was the first complaint) or a minisign secret key, the
/// error that says so. Only the file's clear fields are read; nothing is decrypted.
fn wrong_kind_for_secret(path: &Path) -> Option<KeyError> {
    let text = read_key_file(path, Symlinks::Refuse, None, "secret key").ok()?;
    let origin = path.display().to_string();
    let found = info::key_info(&text, &origin).ok()?.kind;
    (found != KeyKind::SignifySecret).then_some(KeyError::WrongKind { origin, found, wanted: "signify secret key" })
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
        signify::parse_signature(text, "signature")
    }

    /// The `.sig` file text: `untrusted comment: <comment>\n<base64>\n`.
    pub fn to_file_string(&self) -> String {
        public_file_text(&self.comment, &signify::signature_struct(self))
    }
}

fn random_bytes(out: &mut [u8]) -> Result<(), KeyError> {
    getrandom::getrandom(out).map_err(|e| KeyError::Random { reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::testutil::{no_passphrase, REGRESS_KEY_ID, REGRESS_SEC};
    use super::*;

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

    #[test]
    fn a_streamed_signature_is_the_signature_of_the_pieces_joined() {
        let secret = SecretKey::parse(REGRESS_SEC, Path::new("test.sec"), &mut no_passphrase()).unwrap();
        let pieces: [&[u8]; 4] = [b"SHA256 (data/a) = ", b"", b"00ff\n", b"SHA256 (data/b) = 11\n"];
        let joined = pieces.concat();
        let streamed = secret
            .sign_streamed(
                |put| {
                    for p in pieces {
                        put(p);
                    }
                },
                "c",
            )
            .unwrap();
        assert_eq!(streamed, secret.sign(&joined, "c"));
        assert!(secret.public_key().verify(&joined, &streamed).is_ok());
    }

    #[test]
    fn secret_key_debug_hides_the_secret() {
        let secret = SecretKey::parse(REGRESS_SEC, Path::new("test.sec"), &mut no_passphrase()).unwrap();
        let debug = format!("{secret:?}");
        assert!(debug.contains(REGRESS_KEY_ID));
        // Neither the seed in hex nor the seed as a byte list may appear.
        let seed = secret.key.as_bytes();
        let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!debug.contains(&seed_hex[..8]), "{debug}");
        assert!(!debug.contains(&format!("{}, {}, {}", seed[0], seed[1], seed[2])), "{debug}");
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;
    use crate::keys::testutil::no_passphrase;
    use std::os::unix::fs::PermissionsExt;

    fn key_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (p, s) = (dir.join("k.pub"), dir.join("k.sec"));
        write_key_pair(&p, &s, &SecretKey::generate("k"), "k public key", None).unwrap();
        (p, s)
    }

    #[test]
    fn a_public_key_loaded_as_a_secret_key_is_named_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _) = key_pair(dir.path());
        for mode in [0o644, 0o600] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            match SecretKey::load(&p, KeyPermissions::Strict, &mut no_passphrase()) {
                Err(KeyError::WrongKind { found: KeyKind::SignifyPublic, wanted: "signify secret key", .. }) => {}
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_secret_key_loaded_as_a_public_key_is_named_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let (_, s) = key_pair(dir.path());
        let err = PublicKey::load(&s).unwrap_err();
        assert!(
            matches!(err, KeyError::WrongKind { found: KeyKind::SignifySecret, wanted: "public key", .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{}: is a signify secret key, but a public key is needed here", s.display())
        );
    }

    #[test]
    fn an_insecure_secret_key_is_still_reported_as_insecure() {
        let dir = tempfile::tempdir().unwrap();
        let (_, s) = key_pair(dir.path());
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretKey::load(&s, KeyPermissions::Strict, &mut no_passphrase()).unwrap_err();
        assert!(matches!(err, KeyError::InsecurePermissions { .. }), "{err:?}");
    }
}
