//! Built without the `openpgp` feature: every parser refuses, so no value of these types
//! ever exists (they are uninhabited).

use super::{CertInfo, Fingerprint, Keyring as PublicKeyring, OpenPgpError, PgpCheck, Times};

#[derive(Clone, Debug)]
pub(super) enum Keyring {}

impl Keyring {
    pub(super) fn parse(_: &[u8], _: &[Fingerprint], _: bool) -> Result<Keyring, OpenPgpError> {
        Err(OpenPgpError::Unsupported)
    }

    pub(super) fn certs(&self) -> Vec<CertInfo> {
        match *self {}
    }
}

#[derive(Clone, Debug)]
pub(super) enum Signatures {}

impl Signatures {
    pub(super) fn parse(_: &[u8]) -> Result<Signatures, OpenPgpError> {
        Err(OpenPgpError::Unsupported)
    }

    pub(super) fn issuers(&self) -> Vec<String> {
        match *self {}
    }
}

pub(super) enum Verifier {}

impl Verifier {
    pub(super) fn new(signatures: &Signatures, _: &[(String, PublicKeyring)], _: Times) -> Verifier {
        match *signatures {}
    }

    pub(super) fn update(&mut self, _: &[u8]) {
        match *self {}
    }

    pub(super) fn finish(self) -> Vec<PgpCheck> {
        match self {}
    }
}

pub(super) fn verify_clearsigned(
    _: &[u8],
    _: &[(String, PublicKeyring)],
    _: Times,
) -> Result<(Vec<u8>, Vec<PgpCheck>), OpenPgpError> {
    Err(OpenPgpError::Unsupported)
}
