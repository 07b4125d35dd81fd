//! The head frame: the manifest, its signatures and the signed checksum list, compressed
//! straight into the bundle while they are signed on two other threads.

use std::convert::Infallible;
use std::io::Write;

use super::{Packer, DEFAULT_LEVEL};
use crate::error::{Error, Result};
use crate::format::head::{sign_manifest, signature_comment, HeadWriter};
use crate::format::manifest::Manifest;
use crate::format::sums::for_each_sums_line;
use crate::io::sync::join;
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
    /// list is signed while the manifest is signed and compressed. The list is never held:
    /// it is made line by line for each of the signature's two passes and once more as it
    /// is compressed.
    pub(super) fn write_head(&self, w: &mut impl Write, manifest: &Manifest, manifest_bytes: Vec<u8>) -> Result<()> {
        let signers = self.signers;
        let io_err = |e| Error::io(self.out, e);
        let comment = signature_comment(signers[0].key_id());
        std::thread::scope(|scope| {
            let sums = scope.spawn(|| sign_sums(&signers[0], manifest, &comment));
            let manifest_bytes = &manifest_bytes;
            let signatures = scope.spawn(move || sign_all(signers, manifest_bytes));
            let head = HeadWriter::start(&mut *w, head_level(self.opts.level), manifest_bytes).map_err(io_err)?;
            let head = head.signatures(&join(signatures, "manifest signing")?).map_err(io_err)?;
            let signature = join(sums, "checksum-list signing")??;
            head.finish_list(signature.as_bytes(), manifest).map_err(io_err)?;
            Ok(())
        })
    }
}

/// The checksum list's signature lines, signed over the list made twice line by line
/// (ed25519 reads its message twice) rather than held: about 100 MB for a million entries.
fn sign_sums(key: &SecretKey, manifest: &Manifest, comment: &str) -> Result<String> {
    let feed = |put: &mut dyn FnMut(&[u8])| {
        let _ = for_each_sums_line(manifest, |line| -> std::result::Result<(), Infallible> {
            put(line);
            Ok(())
        });
    };
    let signature = key.sign_streamed(feed, comment);
    signature.map(|s| s.to_file_string()).ok_or_else(|| Error::Internal("signing the checksum list failed".into()))
}

/// Every signer's signature of the manifest ([`HeadWriter`] puts them in key-id order).
fn sign_all(signers: &[SecretKey], manifest_bytes: &[u8]) -> Vec<keys::Signature> {
    signers.iter().map(|k| sign_manifest(k, manifest_bytes)).collect()
}
