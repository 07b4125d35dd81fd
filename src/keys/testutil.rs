//! Helpers shared by the keys unit tests.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::signify::PKALG;
use super::{KeyError, PassphraseFn, SecretKey};

pub const REGRESS_PUB: &[u8] = include_bytes!("../../fixtures/signify-regress/regresskey.pub");
pub const REGRESS_SEC: &[u8] = include_bytes!("../../fixtures/signify-regress/regresskey.sec");
pub const REGRESS_KEY_ID: &str = "c078a249d4c4c5dd";

/// A passphrase callback for keys that must not ask for one.
pub fn no_passphrase() -> impl FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError> {
    || Err(KeyError::PassphraseRequired { origin: "test".to_owned() })
}

/// A passphrase callback that answers `p`.
pub fn passphrase(p: &'static [u8]) -> impl FnMut() -> Result<Zeroizing<Vec<u8>>, KeyError> {
    move || Ok(Zeroizing::new(p.to_vec()))
}

/// Parses a secret key named `test.sec`.
pub fn parse_sec(text: &[u8], pass: &mut PassphraseFn<'_>) -> Result<SecretKey, KeyError> {
    SecretKey::parse(text, Path::new("test.sec"), pass)
}

/// A signify file from a comment and raw struct bytes.
pub fn container(comment: &str, raw: &[u8]) -> Vec<u8> {
    format!("untrusted comment: {comment}\n{}\n", BASE64.encode(raw)).into_bytes()
}

/// A public-key struct.
pub fn pub_struct(keynum: [u8; 8], key: &[u8; 32]) -> Vec<u8> {
    [&PKALG[..], &keynum, key].concat()
}

/// The error's text; panics on success.
pub fn err_text<T, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}
