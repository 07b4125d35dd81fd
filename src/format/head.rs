//! The head frame (FORMAT.md §3): the manifest, one signature member per signer sorted by
//! key id, and the signed checksum list, all mode 0644, in one zstd frame.

use std::borrow::Cow;
use std::io;

use super::tar::write_member;
use super::{signature_member, MANIFEST_MEMBER, SUMS_MEMBER};
use crate::keys::{self, SecretKey};

/// The head members, in order: manifest, one signature per signer (sorted by key id), sums.
pub fn head_members<'a>(
    manifest_bytes: &'a [u8],
    signatures: &[keys::Signature],
    sums_sig: &'a [u8],
) -> Vec<(String, Cow<'a, [u8]>)> {
    let mut sigs: Vec<&keys::Signature> = signatures.iter().collect();
    sigs.sort_by_key(|s| s.key_id());
    // Borrowed: with many entries the manifest and checksum list are tens of megabytes.
    let mut members = vec![(MANIFEST_MEMBER.to_owned(), Cow::Borrowed(manifest_bytes))];
    for s in sigs {
        members.push((signature_member(s.key_id()), Cow::Owned(s.to_file_string().into_bytes())));
    }
    members.push((SUMS_MEMBER.to_owned(), Cow::Borrowed(sums_sig)));
    members
}

/// Compresses the head members into one zstd frame.
pub fn head_frame<C: AsRef<[u8]>>(members: &[(String, C)], level: i32) -> io::Result<Vec<u8>> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level)?;
    for (name, content) in members {
        let content = content.as_ref();
        write_member(&mut enc, name, content.len() as u64, 0o644, &mut &content[..], &mut [0u8; 8192])?;
    }
    enc.finish()
}

/// Signs the manifest with every key: the comment names the key id so an auditor knows
/// which public key to give `signify -V`.
pub fn sign_manifest(key: &SecretKey, manifest_bytes: &[u8]) -> keys::Signature {
    key.sign(manifest_bytes, &format!("verify with airlock key {}", key.key_id()))
}
