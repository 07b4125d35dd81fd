//! minisign signatures and key display (the producer's layer: `<artifact>.minisig`).
//!
//! A minisign public key is byte for byte a signify public key (`"Ed"` · keynum\[8\] ·
//! key\[32\]), so [`crate::keys::PublicKey`] reads both. Signatures differ: a `.minisig`
//! file has four lines,
//!
//! ```text
//! untrusted comment: <text>\n
//! base64("Ed" or "ED" · keynum[8] · signature[64])\n
//! trusted comment: <text>\n
//! base64(global signature[64])\n
//! ```
//!
//! - `"ED"` (prehashed, minisign's default since 0.10): the signature is Ed25519 over
//!   BLAKE2b-512 of the file (unkeyed, 64-byte output; not RFC 8032 Ed25519ph).
//! - `"Ed"` (legacy, `minisign -S -l`): Ed25519 over the raw file.
//! - The global signature is Ed25519 over `signature[64] ‖ trusted comment` and MUST verify
//!   too: it is what makes the trusted comment trusted.
//!
//! The global signature does not cover the algorithm tag, so relabelling `ED` as `Ed` turns a
//! prehashed signature into a legacy signature over the 64-byte digest. Legacy signatures are
//! therefore refused unless the caller allows them (like `minisign -V -H`, the reverse of
//! minisign's own default), and every check is strict Ed25519 (`verify_strict`, or the
//! streaming equivalent in [`StrictStream`]).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use blake2::{Blake2b512, Digest as _};
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::StreamVerifier;
use ed25519_dalek::VerifyingKey;

use crate::keys::{KeyId, PublicKey};

/// Largest `.minisig` file accepted: minisign's own limits (1024-byte lines, an 8192-byte
/// trusted comment) fit well inside.
pub const MAX_MINISIG_BYTES: usize = 16 * 1024;
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";
const TRUSTED_COMMENT_MAX: usize = 8192;

/// How a minisign signature was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigMode {
    /// `"ED"`: Ed25519 over BLAKE2b-512 of the file.
    Prehashed,
    /// `"Ed"`: Ed25519 over the raw file (`minisign -S -l`).
    Legacy,
}

impl SigMode {
    /// `prehashed` or `legacy`.
    pub fn name(self) -> &'static str {
        match self {
            SigMode::Prehashed => "prehashed",
            SigMode::Legacy => "legacy",
        }
    }
}

/// A parsed, unverified `.minisig` file.
#[derive(Clone, Debug)]
pub struct MinisigFile {
    mode: SigMode,
    key_id: KeyId,
    signature: [u8; 64],
    trusted_comment: String,
    global_signature: [u8; 64],
}

impl MinisigFile {
    /// Parses a `.minisig` file: exactly four lines (`\n` or `\r\n`; the last newline may be
    /// missing), nothing after them.
    pub fn parse(text: &[u8]) -> Result<MinisigFile, String> {
        if text.len() > MAX_MINISIG_BYTES {
            return Err(format!(
                "{} bytes is too large for a minisign signature (at most {MAX_MINISIG_BYTES})",
                text.len()
            ));
        }
        let text = std::str::from_utf8(text).map_err(|_| "not UTF-8 text".to_owned())?;
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines: Vec<&str> = body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
        if lines.len() != 4 {
            return Err(format!("a minisign signature has 4 lines, this has {}", lines.len()));
        }
        if !lines[0].starts_with(UNTRUSTED_PREFIX) {
            return Err(format!("line 1 does not start with {UNTRUSTED_PREFIX:?}"));
        }
        let raw = BASE64.decode(lines[1]).map_err(|e| format!("line 2: invalid base64: {e}"))?;
        if raw.len() != 74 {
            return Err(format!("line 2 decodes to {} bytes, expected 74", raw.len()));
        }
        let mode = match &raw[..2] {
            b"ED" => SigMode::Prehashed,
            b"Ed" => SigMode::Legacy,
            other => return Err(format!("unsupported signature algorithm {:?}", other.escape_ascii().to_string())),
        };
        let trusted_comment = lines[2]
            .strip_prefix(TRUSTED_PREFIX)
            .ok_or_else(|| format!("line 3 does not start with {TRUSTED_PREFIX:?}"))?
            .to_owned();
        if trusted_comment.len() > TRUSTED_COMMENT_MAX {
            return Err(format!("trusted comment longer than {TRUSTED_COMMENT_MAX} bytes"));
        }
        if trusted_comment.chars().any(|c| c.is_control() && c != '\t') {
            return Err("trusted comment contains control characters".into());
        }
        let global = BASE64.decode(lines[3]).map_err(|e| format!("line 4: invalid base64: {e}"))?;
        let global_signature: [u8; 64] = global
            .as_slice()
            .try_into()
            .map_err(|_| format!("line 4 decodes to {} bytes, expected 64", global.len()))?;
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&raw[2..10]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&raw[10..]);
        Ok(MinisigFile { mode, key_id: KeyId(key_id), signature, trusted_comment, global_signature })
    }

    /// The key number it claims (in airlock's spelling; see [`minisign_key_id`]).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Prehashed or legacy.
    pub fn mode(&self) -> SigMode {
        self.mode
    }

    /// The trusted comment (authenticated once [`MinisigFile::verifier`] succeeded).
    pub fn trusted_comment(&self) -> &str {
        &self.trusted_comment
    }

    /// Checks the global signature (over signature ‖ trusted comment) with `key`, refuses a
    /// legacy signature unless `allow_legacy`, and returns a verifier to feed the file into.
    pub fn verifier(&self, key: &PublicKey, allow_legacy: bool) -> Result<MinisigVerifier, String> {
        if self.key_id != key.key_id() {
            return Err(format!("signed by key {}, not {}", self.key_id, key.key_id()));
        }
        if self.mode == SigMode::Legacy && !allow_legacy {
            return Err(
                "legacy (non-prehashed) minisign signature refused; the rule needs allow_legacy = true to accept it"
                    .into(),
            );
        }
        let vk = verifying_key(key)?;
        let mut global_msg = Vec::with_capacity(64 + self.trusted_comment.len());
        global_msg.extend_from_slice(&self.signature);
        global_msg.extend_from_slice(self.trusted_comment.as_bytes());
        vk.verify_strict(&global_msg, &ed25519_dalek::Signature::from_bytes(&self.global_signature))
            .map_err(|_| "the global signature over the trusted comment does not verify".to_owned())?;
        let state = match self.mode {
            SigMode::Prehashed => State::Prehashed(Box::new((Blake2b512::new(), vk, self.signature))),
            SigMode::Legacy => State::Legacy(Box::new(StrictStream::new(key, &self.signature)?)),
        };
        Ok(MinisigVerifier { state })
    }
}

/// Verifies a minisign signature over a file fed in pieces.
pub struct MinisigVerifier {
    state: State,
}

enum State {
    Prehashed(Box<(Blake2b512, VerifyingKey, [u8; 64])>),
    Legacy(Box<StrictStream>),
}

impl MinisigVerifier {
    /// More of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Prehashed(p) => p.0.update(bytes),
            State::Legacy(v) => v.update(bytes),
        }
    }

    /// The whole file was fed: does the signature verify?
    pub fn finish(self) -> Result<(), String> {
        match self.state {
            State::Prehashed(p) => {
                let (h, vk, sig) = *p;
                let digest = h.finalize();
                vk.verify_strict(&digest, &ed25519_dalek::Signature::from_bytes(&sig))
                    .map_err(|_| "signature does not verify".to_owned())
            }
            State::Legacy(v) => v.finish(),
        }
    }
}

/// Strict Ed25519 over a message fed in pieces: the streaming equivalent of
/// `verify_strict`. dalek's `StreamVerifier` alone is not strict, so this also refuses a
/// small-order R and a weak key; S ≥ L is refused when the signature is parsed.
pub struct StrictStream {
    inner: StreamVerifier,
}

impl StrictStream {
    /// Starts checking `signature` (R ‖ S) by `key`.
    pub fn new(key: &PublicKey, signature: &[u8; 64]) -> Result<StrictStream, String> {
        let vk = verifying_key(key)?;
        let mut r = [0u8; 32];
        r.copy_from_slice(&signature[..32]);
        match CompressedEdwardsY(r).decompress() {
            Some(point) if !point.is_small_order() => {}
            _ => return Err("signature does not verify (invalid or small-order R)".into()),
        }
        let inner = vk
            .verify_stream(&ed25519_dalek::Signature::from_bytes(signature))
            .map_err(|_| "signature does not verify (non-canonical S)".to_owned())?;
        Ok(StrictStream { inner })
    }

    /// More of the message.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }

    /// The whole message was fed.
    pub fn finish(self) -> Result<(), String> {
        self.inner.finalize_and_verify().map_err(|_| "signature does not verify".to_owned())
    }
}

fn verifying_key(key: &PublicKey) -> Result<VerifyingKey, String> {
    let vk =
        VerifyingKey::from_bytes(key.as_bytes()).map_err(|_| format!("key {} is not a valid point", key.key_id()))?;
    if vk.is_weak() {
        return Err(format!("weak (small-order) key {} refused", key.key_id()));
    }
    Ok(vk)
}

/// The key id as minisign prints it: the keynum read as a little-endian u64, in uppercase
/// hex (`minisign public key 2A9E…`).
pub fn minisign_key_id(id: KeyId) -> String {
    let mut b = id.0;
    b.reverse();
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// The key id from minisign's spelling (16 hex digits, either case, little-endian).
pub fn key_id_from_minisign(text: &str) -> Option<KeyId> {
    let mut id = KeyId::from_hex(&text.to_ascii_lowercase())?;
    id.0.reverse();
    Some(id)
}

/// A public key file in minisign's form: `untrusted comment: minisign public key <ID>`.
pub fn public_key_file(key: &PublicKey) -> String {
    let mut raw = Vec::with_capacity(42);
    raw.extend_from_slice(b"Ed");
    raw.extend_from_slice(&key.key_id().0);
    raw.extend_from_slice(key.as_bytes());
    format!("untrusted comment: minisign public key {}\n{}\n", minisign_key_id(key.key_id()), BASE64.encode(raw))
}

/// A public key file in signify's form, comment `signify public key` (signify writes
/// `<name> public key`; the comment is untrusted either way).
pub fn signify_public_key_file(key: &PublicKey) -> String {
    let mut raw = Vec::with_capacity(42);
    raw.extend_from_slice(b"Ed");
    raw.extend_from_slice(&key.key_id().0);
    raw.extend_from_slice(key.as_bytes());
    format!("untrusted comment: signify public key {}\n{}\n", key.key_id(), BASE64.encode(raw))
}

/// What `airlock key show` prints about a key file.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// `signify public key`, `signify secret key`, `minisign secret key`, ...
    pub kind: String,
    /// The key id, when it can be read without a passphrase.
    pub key_id: Option<KeyId>,
    /// The untrusted comment.
    pub comment: String,
    /// How the secret part is protected, for secret keys.
    pub protection: Option<String>,
    /// The public key, for public keys and unencrypted signify secret keys.
    pub public: Option<PublicKey>,
}

/// Identifies a signify or minisign key file without decrypting anything. Public keys are
/// fully checked (as [`PublicKey::parse`] does); for secret keys only the clear fields are
/// read.
pub fn key_info(text: &[u8]) -> Result<KeyInfo, String> {
    let body = std::str::from_utf8(text).map_err(|_| "not a key file (not UTF-8 text)".to_owned())?;
    let mut lines = body.lines();
    let comment = lines
        .next()
        .and_then(|l| l.strip_prefix(UNTRUSTED_PREFIX))
        .ok_or_else(|| format!("not a key file: the first line does not start with {UNTRUSTED_PREFIX:?}"))?
        .to_owned();
    let raw = BASE64
        .decode(lines.next().unwrap_or("").trim_end())
        .map_err(|e| format!("not a key file: the second line is not base64 ({e})"))?;
    let minisign_comment = comment.starts_with("minisign");
    match raw.len() {
        42 => {
            let public = PublicKey::parse(text).map_err(|e| e.to_string())?;
            let kind = if minisign_comment { "minisign public key" } else { "signify public key" };
            Ok(KeyInfo {
                kind: kind.into(),
                key_id: Some(public.key_id()),
                comment,
                protection: None,
                public: Some(public),
            })
        }
        104 if &raw[..4] == b"EdBK" => {
            let rounds = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
            let mut id = [0u8; 8];
            id.copy_from_slice(&raw[32..40]);
            let protection = if rounds == 0 {
                "none (unencrypted, signify -n)".to_owned()
            } else {
                format!("passphrase (bcrypt_pbkdf, {rounds} rounds)")
            };
            let public = if rounds == 0 {
                let mut pk = b"Ed".to_vec();
                pk.extend_from_slice(&id);
                pk.extend_from_slice(&raw[72..104]);
                PublicKey::parse(format!("untrusted comment: {comment}\n{}\n", BASE64.encode(pk)).as_bytes()).ok()
            } else {
                None
            };
            Ok(KeyInfo {
                kind: "signify secret key".into(),
                key_id: Some(KeyId(id)),
                comment,
                protection: Some(protection),
                public,
            })
        }
        158 if &raw[..2] == b"Ed" && &raw[4..6] == b"B2" => {
            let encrypted = &raw[2..4] != b"\0\0";
            let key_id = if encrypted {
                None
            } else {
                let mut id = [0u8; 8];
                id.copy_from_slice(&raw[54..62]);
                Some(KeyId(id))
            };
            let protection = if encrypted {
                "passphrase (scrypt); the key id is encrypted too"
            } else {
                "none (unencrypted, minisign -W)"
            };
            Ok(KeyInfo {
                kind: "minisign secret key".into(),
                key_id,
                comment,
                protection: Some(protection.into()),
                public: None,
            })
        }
        n => Err(format!("not a signify or minisign key: the base64 line decodes to {n} bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;
    use ed25519_dalek::{Signer as _, SigningKey};

    /// Builds a minisign signature the way minisign does, with a known signing key.
    fn make(sk: &SigningKey, key_id: KeyId, msg: &[u8], mode: SigMode, trusted: &str) -> Vec<u8> {
        let signed: Vec<u8> = match mode {
            SigMode::Prehashed => Blake2b512::digest(msg).to_vec(),
            SigMode::Legacy => msg.to_vec(),
        };
        let sig = sk.sign(&signed).to_bytes();
        let mut raw = match mode {
            SigMode::Prehashed => b"ED".to_vec(),
            SigMode::Legacy => b"Ed".to_vec(),
        };
        raw.extend_from_slice(&key_id.0);
        raw.extend_from_slice(&sig);
        let mut g = sig.to_vec();
        g.extend_from_slice(trusted.as_bytes());
        let global = sk.sign(&g).to_bytes();
        format!(
            "untrusted comment: test\n{}\ntrusted comment: {trusted}\n{}\n",
            BASE64.encode(raw),
            BASE64.encode(global)
        )
        .into_bytes()
    }

    fn key() -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let mut raw = b"Ed".to_vec();
        raw.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        raw.extend_from_slice(sk.verifying_key().as_bytes());
        let text = format!("untrusted comment: k\n{}\n", BASE64.encode(raw));
        (sk, PublicKey::parse(text.as_bytes()).unwrap())
    }

    fn check(file: &[u8], key: &PublicKey, msg: &[u8], legacy: bool) -> Result<(), String> {
        let sig = MinisigFile::parse(file)?;
        let mut v = sig.verifier(key, legacy)?;
        for chunk in msg.chunks(3) {
            v.update(chunk);
        }
        v.finish()
    }

    #[test]
    fn both_modes_verify_and_legacy_needs_permission() {
        let (sk, pk) = key();
        let msg = b"the artifact bytes";
        let pre = make(&sk, pk.key_id(), msg, SigMode::Prehashed, "timestamp:1\tfile:x");
        let leg = make(&sk, pk.key_id(), msg, SigMode::Legacy, "timestamp:1\tfile:x");
        check(&pre, &pk, msg, false).unwrap();
        check(&leg, &pk, msg, true).unwrap();
        assert!(check(&leg, &pk, msg, false).unwrap_err().contains("legacy"));
        assert!(check(&pre, &pk, b"other bytes", false).is_err());
        assert!(check(&leg, &pk, b"other bytes", true).is_err());
    }

    #[test]
    fn trusted_comment_is_authenticated() {
        let (sk, pk) = key();
        let msg = b"x";
        let good = String::from_utf8(make(&sk, pk.key_id(), msg, SigMode::Prehashed, "release 1.0")).unwrap();
        let forged = good.replace("release 1.0", "release 9.9");
        assert!(check(forged.as_bytes(), &pk, msg, false).unwrap_err().contains("global"));
    }

    #[test]
    fn relabelled_prehashed_is_not_a_legacy_signature_of_the_file() {
        let (sk, pk) = key();
        let msg = b"payload";
        let pre = String::from_utf8(make(&sk, pk.key_id(), msg, SigMode::Prehashed, "t")).unwrap();
        let lines: Vec<&str> = pre.lines().collect();
        let mut raw = BASE64.decode(lines[1]).unwrap();
        raw[..2].copy_from_slice(b"Ed");
        let relabelled = format!("{}\n{}\n{}\n{}\n", lines[0], BASE64.encode(raw), lines[2], lines[3]);
        assert!(check(relabelled.as_bytes(), &pk, msg, true).is_err());
    }

    #[test]
    fn strict_stream_refuses_small_order_r_and_matches_signify() {
        let sk = SecretKey::generate("t");
        let pk = sk.public_key();
        let sig = sk.sign(b"abc", "c");
        let mut v = StrictStream::new(&pk, sig.bytes()).unwrap();
        v.update(b"a");
        v.update(b"bc");
        v.finish().unwrap();
        let mut bad = *sig.bytes();
        bad[..32].copy_from_slice(&[0u8; 32]); // not a point? (y = 0 is a point of order 4)
        bad[0] = 1; // y = 1: the identity, small order
        assert!(StrictStream::new(&pk, &bad).is_err());
        let mut high_s = *sig.bytes();
        high_s[63] |= 0xf0;
        assert!(StrictStream::new(&pk, &high_s).is_err());
    }

    #[test]
    fn key_id_spellings() {
        let id = KeyId([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xab]);
        assert_eq!(minisign_key_id(id), "AB07060504030201");
        assert_eq!(key_id_from_minisign("AB07060504030201"), Some(id));
        assert_eq!(key_id_from_minisign("ab07060504030201"), Some(id));
    }

    #[test]
    fn parse_refuses_malformed() {
        assert!(MinisigFile::parse(b"").is_err());
        assert!(MinisigFile::parse(b"untrusted comment: x\nAAAA\n").is_err());
        let (sk, pk) = key();
        let good = make(&sk, pk.key_id(), b"m", SigMode::Prehashed, "t");
        let mut extra = good.clone();
        extra.extend_from_slice(b"more\n");
        assert!(MinisigFile::parse(&extra).is_err());
        let crlf = String::from_utf8(good).unwrap().replace('\n', "\r\n");
        check(crlf.as_bytes(), &pk, b"m", false).unwrap();
    }
}
