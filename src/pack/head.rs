//! The head frame: the manifest, its signatures and the signed checksum list, compressed
//! straight into the bundle while they are signed on two other threads.

use std::io::{Read, Write};

use super::{Packer, DEFAULT_LEVEL};
use crate::error::{Error, Result};
use crate::format::head::sign_manifest;
use crate::format::manifest::Manifest;
use crate::format::sums::sums_text;
use crate::format::tar::write_member;
use crate::format::{signature_member, MANIFEST_MEMBER, SUMS_MEMBER};
use crate::io::sync::join;
use crate::io::tuning::HEAD_COPY_BUF;
use crate::keys::{self, SecretKey};

/// The zstd level for the head frame. The head is paths and digests, on which level 1 was
/// measured both faster and smaller than level 3 (200,000 entries: 0.23 s and 17.6 MB
/// against 0.38 s and 18.1 MB); only a level above the default, asked for to shrink the
/// bundle at any cost in time, is used for the head too.
pub fn head_level(payload_level: i32) -> i32 {
    if payload_level > DEFAULT_LEVEL {
        payload_level
    } else {
        1
    }
}

impl Packer<'_> {
    /// Signs the manifest, builds and signs the checksum list, and compresses the head
    /// frame straight into `w`. `manifest_bytes` is the encoded manifest, freed once written.
    ///
    /// The manifest and the checksum list are each tens of megabytes with many entries, and
    /// ed25519 reads its message twice, so the work is split over two threads: the checksum
    /// list is built and signed while the manifest is signed and compressed. Neither is
    /// copied again: the checksum-list member is written as its signature lines followed by
    /// the list.
    pub(super) fn write_head(&self, w: &mut impl Write, manifest: &Manifest, manifest_bytes: Vec<u8>) -> Result<()> {
        let signers = self.signers;
        let io_err = |e| Error::io(self.out, e);
        let comment = format!("verify with airlock key {}", signers[0].key_id());
        std::thread::scope(|scope| {
            let sums = scope.spawn(|| {
                let text = sums_text(manifest);
                let signature = signers[0].sign(&text, &comment).to_file_string();
                (signature, text)
            });
            let manifest_bytes = &manifest_bytes;
            let signatures = scope.spawn(move || sign_all(signers, manifest_bytes));
            let mut enc = zstd::stream::write::Encoder::new(&mut *w, head_level(self.opts.level)).map_err(io_err)?;
            let mut buf = [0u8; HEAD_COPY_BUF];
            let mut member = |name: &str, len: usize, mut data: &mut dyn Read| {
                write_member(&mut enc, name, len as u64, 0o644, &mut data, &mut buf).map(drop).map_err(io_err)
            };
            member(MANIFEST_MEMBER, manifest_bytes.len(), &mut &manifest_bytes[..])?;
            for sig in join(signatures, "manifest signing")? {
                let text = sig.to_file_string();
                member(&signature_member(sig.key_id()), text.len(), &mut text.as_bytes())?;
            }
            let (signature, text) = join(sums, "checksum-list signing")?;
            member(SUMS_MEMBER, signature.len() + text.len(), &mut signature.as_bytes().chain(&text[..]))?;
            enc.finish().map_err(io_err)?;
            Ok(())
        })
    }
}

/// Every signer's signature of the manifest, in key-id order.
fn sign_all(signers: &[SecretKey], manifest_bytes: &[u8]) -> Vec<keys::Signature> {
    let mut sigs: Vec<keys::Signature> = signers.iter().map(|k| sign_manifest(k, manifest_bytes)).collect();
    sigs.sort_by_key(|s| s.key_id());
    sigs
}
