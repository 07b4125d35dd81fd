//! Strict Ed25519: the checks that make every signature airlock accepts one that signify
//! (and minisign) accept too, and no key able to accept a forgery.
//!
//! - `checked_verifying_key` refuses public keys that are off the curve, non-canonically
//!   encoded or of small order. Every [`PublicKey`] went through it, so no `PublicKey` value
//!   holds such a key.
//! - One-shot checks use dalek's `verify_strict`; [`StrictStream`] is its equivalent for a
//!   message fed in pieces (an artifact streamed out of a bundle).

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{StreamVerifier, VerifyingKey};

use super::{KeyError, KeyId, PublicKey};

/// Decodes a public key, refusing the encodings that would let a key accept forgeries or
/// have two spellings.
pub(crate) fn checked_verifying_key(bytes: &[u8; 32], key_id: KeyId, origin: &str) -> Result<VerifyingKey, KeyError> {
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

/// Why a streamed strict Ed25519 check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrictError {
    /// R is not a point, or has small order (refused before any byte is hashed).
    #[error("signature does not verify (invalid or small-order R)")]
    InvalidR,
    /// S is not reduced modulo the group order (a malleated signature).
    #[error("signature does not verify (non-canonical S)")]
    NonCanonicalS,
    /// The signature is well formed but not over these bytes by this key.
    #[error("signature does not verify")]
    Mismatch,
}

/// Strict Ed25519 over a message fed in pieces: the streaming equivalent of
/// `verify_strict`. dalek's `StreamVerifier` alone is not strict, so this also refuses a
/// small-order R; the key cannot be weak (see the module docs), and S ≥ L is
/// refused when the signature is parsed.
pub struct StrictStream {
    inner: StreamVerifier,
}

impl StrictStream {
    /// Starts checking `signature` (R ‖ S) by `key`.
    pub fn new(key: &PublicKey, signature: &[u8; 64]) -> Result<StrictStream, StrictError> {
        let mut r = [0u8; 32];
        r.copy_from_slice(&signature[..32]);
        match CompressedEdwardsY(r).decompress() {
            Some(point) if !point.is_small_order() => {}
            _ => return Err(StrictError::InvalidR),
        }
        let inner = key
            .verifying_key()
            .verify_stream(&ed25519_dalek::Signature::from_bytes(signature))
            .map_err(|_| StrictError::NonCanonicalS)?;
        Ok(StrictStream { inner })
    }

    /// More of the message.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
    }

    /// The whole message was fed.
    pub fn finish(self) -> Result<(), StrictError> {
        self.inner.finalize_and_verify().map_err(|_| StrictError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

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
        bad[..32].copy_from_slice(&[0u8; 32]);
        bad[0] = 1; // y = 1: the identity, small order
        assert_eq!(StrictStream::new(&pk, &bad).err(), Some(StrictError::InvalidR));
        let mut high_s = *sig.bytes();
        high_s[63] |= 0xf0;
        assert_eq!(StrictStream::new(&pk, &high_s).err(), Some(StrictError::NonCanonicalS));
        let mut v = StrictStream::new(&pk, sig.bytes()).unwrap();
        v.update(b"abd");
        assert_eq!(v.finish(), Err(StrictError::Mismatch));
    }
}
