//! The cryptography sigstore-verify calls back into, over RustCrypto crates (no C, no
//! aws-lc, no ring): ECDSA P-256/P-384 (DER signatures), RSA PKCS#1 v1.5 and PSS with
//! SHA-256/384/512, Ed25519 (strict), and SHA-2. ML-DSA is not offered: no Sigstore
//! instance airlock verifies against signs with it, and a bundle that needs it fails
//! verification with "unsupported algorithm".
//!
//! sigstore-crypto keeps one provider per process (a `OnceLock`). [`install`] puts this one
//! there; it is called from every entry point of the module and is harmless when a provider
//! (this one or another) is already installed.

use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use sigstore_crypto::{CryptoProvider, Error, HashContext, Result, SigningScheme};
use sigstore_types::HashAlgorithm;

/// RustCrypto-backed provider. Verification only: signing keeps the trait's default
/// "unsupported" answers.
#[derive(Debug)]
pub(crate) struct RustCryptoProvider;

static PROVIDER: RustCryptoProvider = RustCryptoProvider;

/// Installs the provider unless one is installed already (never panics).
pub(crate) fn install() {
    // An Err only says a provider is already in place, which is all this needs.
    let _ = sigstore_crypto::install_default_provider(&PROVIDER);
}

/// Incremental SHA-2 state.
enum Sha2Context {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl HashContext for Sha2Context {
    fn update(&mut self, data: &[u8]) {
        match self {
            Sha2Context::Sha256(h) => h.update(data),
            Sha2Context::Sha384(h) => h.update(data),
            Sha2Context::Sha512(h) => h.update(data),
        }
    }

    fn finalize(self: Box<Self>) -> Vec<u8> {
        match *self {
            Sha2Context::Sha256(h) => h.finalize().to_vec(),
            Sha2Context::Sha384(h) => h.finalize().to_vec(),
            Sha2Context::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

fn digest_of(algorithm: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>> {
    let mut context = PROVIDER.hash(algorithm)?;
    context.update(data);
    Ok(context.finalize())
}

fn invalid(scheme: SigningScheme) -> Error {
    Error::Verification(format!("{} signature invalid", scheme.name()))
}

fn bad_key(scheme: SigningScheme, what: impl std::fmt::Display) -> Error {
    Error::InvalidKeyFormat(format!("{} public key: {what}", scheme.name()))
}

fn verify_p256(scheme: SigningScheme, key: &[u8], digest: &[u8], signature: &[u8]) -> Result<()> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|e| bad_key(scheme, e))?;
    let signature = p256::ecdsa::Signature::from_der(signature).map_err(|_| invalid(scheme))?;
    key.verify_prehash(digest, &signature).map_err(|_| invalid(scheme))
}

fn verify_p384(scheme: SigningScheme, key: &[u8], digest: &[u8], signature: &[u8]) -> Result<()> {
    use p384::ecdsa::signature::hazmat::PrehashVerifier as _;
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|e| bad_key(scheme, e))?;
    let signature = p384::ecdsa::Signature::from_der(signature).map_err(|_| invalid(scheme))?;
    key.verify_prehash(digest, &signature).map_err(|_| invalid(scheme))
}

/// The key sizes aws-lc (the crate's default backend) accepts, so both backends agree.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

fn verify_rsa(scheme: SigningScheme, key: &[u8], digest: &[u8], signature: &[u8]) -> Result<()> {
    let key = rsa::RsaPublicKey::from_pkcs1_der(key).map_err(|e| bad_key(scheme, e))?;
    if !RSA_BITS.contains(&(key.size() * 8)) {
        return Err(bad_key(scheme, format_args!("{} bits, outside 2048-8192", key.size() * 8)));
    }
    let result = match scheme {
        SigningScheme::RsaPkcs1Sha256 => key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), digest, signature),
        SigningScheme::RsaPkcs1Sha384 => key.verify(rsa::Pkcs1v15Sign::new::<Sha384>(), digest, signature),
        SigningScheme::RsaPkcs1Sha512 => key.verify(rsa::Pkcs1v15Sign::new::<Sha512>(), digest, signature),
        SigningScheme::RsaPssSha256 => key.verify(rsa::Pss::new::<Sha256>(), digest, signature),
        SigningScheme::RsaPssSha384 => key.verify(rsa::Pss::new::<Sha384>(), digest, signature),
        SigningScheme::RsaPssSha512 => key.verify(rsa::Pss::new::<Sha512>(), digest, signature),
        other => return Err(unsupported(other)),
    };
    result.map_err(|_| invalid(scheme))
}

fn verify_ed25519(key: &[u8], data: &[u8], signature: &[u8]) -> Result<()> {
    let scheme = SigningScheme::Ed25519;
    let key: [u8; 32] = key.try_into().map_err(|_| bad_key(scheme, "not 32 bytes"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|e| bad_key(scheme, e))?;
    let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|_| invalid(scheme))?;
    key.verify_strict(data, &signature).map_err(|_| invalid(scheme))
}

fn unsupported(scheme: SigningScheme) -> Error {
    Error::UnsupportedAlgorithm(format!("{} is not supported by airlock's verifier", scheme.name()))
}

impl CryptoProvider for RustCryptoProvider {
    fn hash(&self, algorithm: HashAlgorithm) -> Result<Box<dyn HashContext>> {
        Ok(Box::new(match algorithm {
            HashAlgorithm::Sha2256 => Sha2Context::Sha256(Sha256::new()),
            HashAlgorithm::Sha2384 => Sha2Context::Sha384(Sha384::new()),
            HashAlgorithm::Sha2512 => Sha2Context::Sha512(Sha512::new()),
            other => return Err(Error::UnsupportedAlgorithm(format!("cannot compute {other} digests"))),
        }))
    }

    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn sha384(&self, data: &[u8]) -> [u8; 48] {
        Sha384::digest(data).into()
    }

    fn sha512(&self, data: &[u8]) -> [u8; 64] {
        Sha512::digest(data).into()
    }

    fn verify_raw(&self, scheme: SigningScheme, key: &[u8], data: &[u8], signature: &[u8]) -> Result<()> {
        match scheme.hash_algorithm() {
            Some(algorithm) => self.verify_prehashed(scheme, key, &digest_of(algorithm, data)?, signature),
            None if scheme == SigningScheme::Ed25519 => verify_ed25519(key, data, signature),
            None => Err(unsupported(scheme)),
        }
    }

    fn verify_prehashed(&self, scheme: SigningScheme, key: &[u8], digest: &[u8], signature: &[u8]) -> Result<()> {
        let expected = scheme.hash_algorithm().map(|a| a.digest_size());
        if expected != Some(digest.len()) {
            return Err(Error::Verification(format!(
                "{}: a {}-byte digest where {} bytes were expected",
                scheme.name(),
                digest.len(),
                expected.map_or_else(|| "no prehashed digest".to_owned(), |n| n.to_string())
            )));
        }
        match scheme {
            SigningScheme::EcdsaP256Sha256 | SigningScheme::EcdsaP256Sha384 => {
                verify_p256(scheme, key, digest, signature)
            }
            SigningScheme::EcdsaP384Sha256 | SigningScheme::EcdsaP384Sha384 => {
                verify_p384(scheme, key, digest, signature)
            }
            _ => verify_rsa(scheme, key, digest, signature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installing twice (or after another test did) is fine: the second call is a no-op.
    #[test]
    fn install_is_idempotent() {
        install();
        install();
        assert!(sigstore_crypto::try_default_provider().is_some());
    }

    #[test]
    fn p256_signature_verifies_and_a_changed_message_does_not() {
        use p256::ecdsa::signature::Signer as _;
        let secret = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let signature: p256::ecdsa::Signature = secret.sign(b"message");
        let der = signature.to_der();
        let public = secret.verifying_key().to_encoded_point(false);
        let scheme = SigningScheme::EcdsaP256Sha256;
        PROVIDER.verify_raw(scheme, public.as_bytes(), b"message", der.as_bytes()).unwrap();
        assert!(PROVIDER.verify_raw(scheme, public.as_bytes(), b"massage", der.as_bytes()).is_err());
        let digest = Sha256::digest(b"message");
        PROVIDER.verify_prehashed(scheme, public.as_bytes(), &digest, der.as_bytes()).unwrap();
        assert!(PROVIDER.verify_prehashed(scheme, public.as_bytes(), &digest[..31], der.as_bytes()).is_err());
    }

    #[test]
    fn ed25519_signature_verifies_strictly() {
        use ed25519_dalek::Signer as _;
        let secret = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let signature = secret.sign(b"message").to_bytes();
        let public = secret.verifying_key().to_bytes();
        let scheme = SigningScheme::Ed25519;
        PROVIDER.verify_raw(scheme, &public, b"message", &signature).unwrap();
        assert!(PROVIDER.verify_raw(scheme, &public, b"other", &signature).is_err());
        assert!(PROVIDER.verify_prehashed(scheme, &public, &[0; 32], &signature).is_err());
    }

    #[test]
    fn unsupported_schemes_are_refused_not_accepted() {
        let scheme = SigningScheme::MlDsa44;
        assert!(matches!(
            PROVIDER.verify_raw(scheme, &[0; 1312], b"m", &[0; 2420]),
            Err(Error::UnsupportedAlgorithm(_))
        ));
    }
}
