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
//!
//! A minisign public key file is read by [`PublicKey::parse`]; writing one, and reading
//! minisign secret keys for display, is in [`crate::keys::info`].

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use blake2::{Blake2b512, Digest as _};
use ed25519_dalek::VerifyingKey;

use crate::keys::ed25519::{StrictError, StrictStream};
use crate::keys::{KeyId, PublicKey};

/// Largest `.minisig` file accepted: minisign's own limits (1024-byte lines, an 8192-byte
/// trusted comment) fit well inside.
pub const MAX_MINISIG_BYTES: usize = 16 * 1024;
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";
const TRUSTED_COMMENT_MAX: usize = 8192;
/// The signature line's struct: algorithm\[2\] · keynum\[8\] · signature\[64\].
const SIG_STRUCT_LEN: usize = 74;

/// Why a `.minisig` file was refused or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MinisigError {
    /// Larger than [`MAX_MINISIG_BYTES`].
    #[error("{size} bytes is too large for a minisign signature (at most {MAX_MINISIG_BYTES})")]
    TooLarge {
        /// The size found.
        size: usize,
    },
    /// Not UTF-8.
    #[error("not UTF-8 text")]
    NotText,
    /// Not four lines.
    #[error("a minisign signature has 4 lines, this has {found}")]
    LineCount {
        /// How many lines it has.
        found: usize,
    },
    /// The first line is not the untrusted comment.
    #[error("line 1 does not start with {UNTRUSTED_PREFIX:?}")]
    NoUntrustedComment,
    /// The third line is not the trusted comment.
    #[error("line 3 does not start with {TRUSTED_PREFIX:?}")]
    NoTrustedComment,
    /// Line 2 or 4 is not base64.
    #[error("line {line}: invalid base64: {source}")]
    Base64 {
        /// 2 or 4.
        line: u8,
        /// The decoder's complaint.
        source: base64::DecodeError,
    },
    /// Line 2 or 4 decodes to the wrong length.
    #[error("line {line} decodes to {found} bytes, expected {expected}")]
    WrongLength {
        /// 2 or 4.
        line: u8,
        /// The decoded length.
        found: usize,
        /// The length of that line's struct.
        expected: usize,
    },
    /// The algorithm tag is neither `ED` nor `Ed`.
    #[error("unsupported signature algorithm {:?}", found.escape_ascii().to_string())]
    UnsupportedAlgorithm {
        /// The tag found.
        found: [u8; 2],
    },
    /// The trusted comment is longer than minisign writes.
    #[error("trusted comment longer than {TRUSTED_COMMENT_MAX} bytes")]
    TrustedCommentTooLong,
    /// The untrusted comment holds control characters (other than tab), which minisign
    /// never writes.
    #[error("untrusted comment contains control characters")]
    UntrustedCommentControl,
    /// The trusted comment holds control characters (other than tab).
    #[error("trusted comment contains control characters")]
    TrustedCommentControl,
    /// The signature names another key.
    #[error("signed by key {signature}, not {key}")]
    WrongKey {
        /// The signature's keynum.
        signature: KeyId,
        /// The key it was checked against.
        key: KeyId,
    },
    /// A legacy signature, and the caller did not allow those.
    #[error("legacy (non-prehashed) minisign signature refused; the rule needs allow_legacy = true to accept it")]
    LegacyRefused,
    /// The global signature over signature ‖ trusted comment does not verify.
    #[error("the global signature over the trusted comment does not verify")]
    GlobalSignature,
    /// The signature over the file does not verify.
    #[error(transparent)]
    Signature(#[from] StrictError),
}

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
    pub fn parse(text: &[u8]) -> Result<MinisigFile, MinisigError> {
        if text.len() > MAX_MINISIG_BYTES {
            return Err(MinisigError::TooLarge { size: text.len() });
        }
        let text = std::str::from_utf8(text).map_err(|_| MinisigError::NotText)?;
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines: Vec<&str> = body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
        if lines.len() != 4 {
            return Err(MinisigError::LineCount { found: lines.len() });
        }
        if !lines[0].starts_with(UNTRUSTED_PREFIX) {
            return Err(MinisigError::NoUntrustedComment);
        }
        if lines[0].chars().any(|c| c.is_control() && c != '\t') {
            return Err(MinisigError::UntrustedCommentControl);
        }
        let raw = decode_line(lines[1], 2, SIG_STRUCT_LEN)?;
        let mode = match &raw[..2] {
            b"ED" => SigMode::Prehashed,
            b"Ed" => SigMode::Legacy,
            _ => return Err(MinisigError::UnsupportedAlgorithm { found: [raw[0], raw[1]] }),
        };
        let trusted_comment = lines[2].strip_prefix(TRUSTED_PREFIX).ok_or(MinisigError::NoTrustedComment)?.to_owned();
        if trusted_comment.len() > TRUSTED_COMMENT_MAX {
            return Err(MinisigError::TrustedCommentTooLong);
        }
        if trusted_comment.chars().any(|c| c.is_control() && c != '\t') {
            return Err(MinisigError::TrustedCommentControl);
        }
        let global = decode_line(lines[3], 4, 64)?;
        let mut global_signature = [0u8; 64];
        global_signature.copy_from_slice(&global);
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
    pub fn verifier(&self, key: &PublicKey, allow_legacy: bool) -> Result<MinisigVerifier, MinisigError> {
        if self.key_id != key.key_id() {
            return Err(MinisigError::WrongKey { signature: self.key_id, key: key.key_id() });
        }
        if self.mode == SigMode::Legacy && !allow_legacy {
            return Err(MinisigError::LegacyRefused);
        }
        let vk = *key.verifying_key();
        let mut global_msg = Vec::with_capacity(64 + self.trusted_comment.len());
        global_msg.extend_from_slice(&self.signature);
        global_msg.extend_from_slice(self.trusted_comment.as_bytes());
        vk.verify_strict(&global_msg, &ed25519_dalek::Signature::from_bytes(&self.global_signature))
            .map_err(|_| MinisigError::GlobalSignature)?;
        let state = match self.mode {
            SigMode::Prehashed => State::Prehashed(Box::new((Blake2b512::new(), vk, self.signature))),
            SigMode::Legacy => State::Legacy(Box::new(StrictStream::new(key, &self.signature)?)),
        };
        Ok(MinisigVerifier { state })
    }
}

/// Decodes base64 line `line` (2 or 4), which must hold `expected` bytes.
fn decode_line(text: &str, line: u8, expected: usize) -> Result<Vec<u8>, MinisigError> {
    let raw = BASE64.decode(text).map_err(|source| MinisigError::Base64 { line, source })?;
    if raw.len() != expected {
        return Err(MinisigError::WrongLength { line, found: raw.len(), expected });
    }
    Ok(raw)
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
    pub fn finish(self) -> Result<(), MinisigError> {
        match self.state {
            State::Prehashed(p) => {
                let (h, vk, sig) = *p;
                let digest = h.finalize();
                vk.verify_strict(&digest, &ed25519_dalek::Signature::from_bytes(&sig))
                    .map_err(|_| StrictError::Mismatch.into())
            }
            State::Legacy(v) => Ok(v.finish()?),
        }
    }
}

/// The key id as minisign prints it: the keynum read as a little-endian u64, in uppercase
/// hex (`minisign public key 2A9E…`).
pub fn minisign_key_id(id: KeyId) -> String {
    let mut b = id.0;
    b.reverse();
    crate::io::digest::hex(&b).to_ascii_uppercase()
}

/// The key id from minisign's spelling (16 hex digits, either case, little-endian).
pub fn key_id_from_minisign(text: &str) -> Option<KeyId> {
    let mut id = KeyId::from_hex(&text.to_ascii_lowercase())?;
    id.0.reverse();
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn check(file: &[u8], key: &PublicKey, msg: &[u8], legacy: bool) -> Result<(), MinisigError> {
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
        assert_eq!(check(&leg, &pk, msg, false), Err(MinisigError::LegacyRefused));
        assert!(MinisigError::LegacyRefused.to_string().contains("legacy"));
        assert!(check(&pre, &pk, b"other bytes", false).is_err());
        assert!(check(&leg, &pk, b"other bytes", true).is_err());
    }

    #[test]
    fn trusted_comment_is_authenticated() {
        let (sk, pk) = key();
        let msg = b"x";
        let good = String::from_utf8(make(&sk, pk.key_id(), msg, SigMode::Prehashed, "release 1.0")).unwrap();
        let forged = good.replace("release 1.0", "release 9.9");
        assert_eq!(check(forged.as_bytes(), &pk, msg, false), Err(MinisigError::GlobalSignature));
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
        assert_eq!(MinisigFile::parse(&extra).err(), Some(MinisigError::LineCount { found: 5 }));
        let crlf = String::from_utf8(good).unwrap().replace('\n', "\r\n");
        check(crlf.as_bytes(), &pk, b"m", false).unwrap();
    }
}
