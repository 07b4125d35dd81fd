//! What `airlock key show` and `airlock key convert` need: identify a signify or minisign
//! key file without decrypting anything, and write a public key in either tool's spelling.
//!
//! The signify structs are decoded by [`crate::keys::signify`]; only minisign's secret-key
//! layout, which airlock otherwise never reads, is described here.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::ed25519::checked_verifying_key;
use super::minisign::minisign_key_id;
use super::signify::{self, public_file_text, public_struct, EncKey, PUBKEY_STRUCT_LEN, SECKEY_STRUCT_LEN};
use super::{KeyError, KeyId, KeyKind, NotAKeyFile, PublicKey};

const UNTRUSTED_PREFIX: &str = "untrusted comment: ";

/// minisign's secret-key struct (`minisign -G`): sig_alg\[2\] `"Ed"` · kdf_alg\[2\] (`"Sc"`,
/// or two NULs when unencrypted) · chk_alg\[2\] `"B2"` · salt\[32\] · opslimit\[8\] ·
/// memlimit\[8\] · then, encrypted with the passphrase: keynum\[8\] · key\[64\] · checksum\[32\].
mod minisign_seckey {
    pub const LEN: usize = 158;
    pub const KDFALG: usize = 2;
    pub const CHKALG: usize = 4;
    pub const KEYNUM: usize = 54;
}

/// How a secret key is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protection {
    /// A signify key stored in plaintext (`signify -G -n`).
    SignifyPlain,
    /// A signify key encrypted with bcrypt_pbkdf.
    SignifyPassphrase {
        /// The KDF rounds.
        rounds: u32,
    },
    /// A minisign key stored in plaintext (`minisign -W`).
    MinisignPlain,
    /// A minisign key encrypted with scrypt (the key id is encrypted too).
    MinisignPassphrase,
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protection::SignifyPlain => f.write_str("none (unencrypted, signify -n)"),
            Protection::SignifyPassphrase { rounds } => write!(f, "passphrase (bcrypt_pbkdf, {rounds} rounds)"),
            Protection::MinisignPlain => f.write_str("none (unencrypted, minisign -W)"),
            Protection::MinisignPassphrase => f.write_str("passphrase (scrypt); the key id is encrypted too"),
        }
    }
}

/// What `airlock key show` prints about a key file.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Which tool's key, public or secret.
    pub kind: KeyKind,
    /// The key id, when it can be read without a passphrase.
    pub key_id: Option<KeyId>,
    /// The untrusted comment.
    pub comment: String,
    /// How the secret part is protected, for secret keys.
    pub protection: Option<Protection>,
    /// The public key, for public keys and unencrypted signify secret keys.
    pub public: Option<PublicKey>,
}

/// Identifies a signify or minisign key file without decrypting anything. Public keys are
/// fully checked (as [`PublicKey::parse`] does); for secret keys only the clear fields are
/// read. `origin` names the file in errors.
pub fn key_info(text: &[u8], origin: &str) -> Result<KeyInfo, KeyError> {
    let not_a_key = |problem| KeyError::NotAKeyFile { origin: origin.to_owned(), problem };
    let body = std::str::from_utf8(text).map_err(|_| not_a_key(NotAKeyFile::NotText))?;
    let mut lines = body.lines();
    let comment = lines
        .next()
        .and_then(|l| l.strip_prefix(UNTRUSTED_PREFIX))
        .ok_or_else(|| not_a_key(NotAKeyFile::NoComment))?
        .to_owned();
    let raw = BASE64.decode(lines.next().unwrap_or("").trim_end()).map_err(|e| not_a_key(NotAKeyFile::NotBase64(e)))?;
    match raw.len() {
        PUBKEY_STRUCT_LEN => {
            let public = signify::parse_public(text, origin)?;
            let kind = if comment.starts_with("minisign") { KeyKind::MinisignPublic } else { KeyKind::SignifyPublic };
            Ok(KeyInfo { kind, key_id: Some(public.key_id()), comment, protection: None, public: Some(public) })
        }
        SECKEY_STRUCT_LEN if raw.starts_with(b"EdBK") => signify_secret_info(&raw, comment, origin),
        minisign_seckey::LEN if raw.starts_with(b"Ed") && &raw[minisign_seckey::CHKALG..][..2] == b"B2" => {
            Ok(minisign_secret_info(&raw, comment))
        }
        n => Err(not_a_key(NotAKeyFile::UnknownLayout(n))),
    }
}

/// A signify secret key's clear fields; for an unencrypted key, also its public half (when
/// that is a valid key).
fn signify_secret_info(raw: &[u8], comment: String, origin: &str) -> Result<KeyInfo, KeyError> {
    let enc = EncKey::decode(raw, origin)?;
    let protection =
        if enc.rounds == 0 { Protection::SignifyPlain } else { Protection::SignifyPassphrase { rounds: enc.rounds } };
    let public = enc
        .clear_public()
        .and_then(|bytes| checked_verifying_key(&bytes, enc.key_id, origin).ok())
        .map(|key| PublicKey { key_id: enc.key_id, key, comment: comment.clone() });
    Ok(KeyInfo {
        kind: KeyKind::SignifySecret,
        key_id: Some(enc.key_id),
        comment,
        protection: Some(protection),
        public,
    })
}

fn minisign_secret_info(raw: &[u8], comment: String) -> KeyInfo {
    let encrypted = raw[minisign_seckey::KDFALG..][..2] != [0, 0];
    let key_id = (!encrypted).then(|| {
        let mut id = [0u8; 8];
        id.copy_from_slice(&raw[minisign_seckey::KEYNUM..][..8]);
        KeyId(id)
    });
    let protection = if encrypted { Protection::MinisignPassphrase } else { Protection::MinisignPlain };
    KeyInfo { kind: KeyKind::MinisignSecret, key_id, comment, protection: Some(protection), public: None }
}

/// The two spellings of a public key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicKeyFormat {
    /// signify's: `untrusted comment: signify public key <keyid>`.
    Signify,
    /// minisign's: `untrusted comment: minisign public key <MINISIGN ID>`.
    Minisign,
}

/// A public key file in the given spelling. The key bytes are identical; only the comment
/// differs. (signify writes `<name> public key`; the comment is untrusted either way.)
pub fn public_key_file(key: &PublicKey, format: PublicKeyFormat) -> String {
    let comment = match format {
        PublicKeyFormat::Signify => format!("signify public key {}", key.key_id()),
        PublicKeyFormat::Minisign => format!("minisign public key {}", minisign_key_id(key.key_id())),
    };
    public_file_text(&comment, &public_struct(key.key_id(), key.as_bytes()))
}

/// Converts a public key file to `format`: identifies it (a secret key is refused), writes
/// the other spelling, and checks that the result reads back as the same key.
pub fn convert_public_key(text: &[u8], origin: &str, format: PublicKeyFormat) -> Result<(PublicKey, String), KeyError> {
    let info = key_info(text, origin)?;
    let public = match info.public {
        Some(public) if info.kind.is_public() => public,
        _ => return Err(KeyError::NotConvertible { origin: origin.to_owned(), kind: info.kind }),
    };
    let out = public_key_file(&public, format);
    let back = PublicKey::parse(out.as_bytes())?;
    if back.as_bytes() != public.as_bytes() || back.key_id() != public.key_id() {
        return Err(KeyError::ConversionMismatch { origin: origin.to_owned(), key_id: public.key_id() });
    }
    Ok((public, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::testutil::{REGRESS_KEY_ID, REGRESS_PUB, REGRESS_SEC};
    use crate::keys::SecretKey;

    #[test]
    fn identifies_signify_keys() {
        let public = key_info(REGRESS_PUB, "k.pub").unwrap();
        assert_eq!(public.kind, KeyKind::SignifyPublic);
        assert_eq!(public.key_id.unwrap().to_hex(), REGRESS_KEY_ID);
        let secret = key_info(REGRESS_SEC, "k.sec").unwrap();
        assert_eq!(secret.kind.to_string(), "signify secret key");
        assert_eq!(secret.protection.unwrap().to_string(), "none (unencrypted, signify -n)");
        assert_eq!(secret.public.unwrap().as_bytes(), public.public.unwrap().as_bytes());
        let encrypted = SecretKey::generate("k").to_file_string(Some(b"pw")).unwrap();
        let info = key_info(encrypted.as_bytes(), "e.sec").unwrap();
        assert_eq!(info.protection, Some(Protection::SignifyPassphrase { rounds: 42 }));
        assert!(info.public.is_none());
    }

    #[test]
    fn refuses_what_is_not_a_key() {
        let err = key_info(b"hello\n", "x").unwrap_err();
        assert!(matches!(err, KeyError::NotAKeyFile { problem: NotAKeyFile::NoComment, .. }));
        assert_eq!(err.to_string(), "x: not a key file: the first line does not start with \"untrusted comment: \"");
        let err = key_info(b"untrusted comment: c\nAAAA\n", "x").unwrap_err();
        assert_eq!(err.to_string(), "x: not a signify or minisign key: the base64 line decodes to 3 bytes");
    }

    #[test]
    fn converts_both_ways_and_refuses_secret_keys() {
        let (key, minisign) = convert_public_key(REGRESS_PUB, "k.pub", PublicKeyFormat::Minisign).unwrap();
        assert!(minisign
            .starts_with(&format!("untrusted comment: minisign public key {}\n", minisign_key_id(key.key_id()))));
        assert_eq!(key_info(minisign.as_bytes(), "m.pub").unwrap().kind, KeyKind::MinisignPublic);
        let (_, signify) = convert_public_key(minisign.as_bytes(), "m.pub", PublicKeyFormat::Signify).unwrap();
        assert_eq!(PublicKey::parse(signify.as_bytes()).unwrap().as_bytes(), key.as_bytes());
        let err = convert_public_key(REGRESS_SEC, "k.sec", PublicKeyFormat::Minisign).unwrap_err();
        assert!(err.to_string().contains("only public keys"), "{err}");
    }
}
