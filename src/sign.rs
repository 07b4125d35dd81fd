//! Co-signing: `airlock sign BUNDLE --key K.sec [-o OUT]` adds a manifest signature to an
//! existing bundle.
//!
//! The head frame (docs/FORMAT.md §3) holds everything a signature touches, so a co-signer
//! rewrites only that frame and copies the payload frames byte for byte: no decompression,
//! no recompression, one sequential copy (which the kernel may do as a `copy_file_range`
//! or reflink). The new file is written beside the destination, fsynced and renamed over it,
//! so a crash leaves either the old bundle or the new one.
//!
//! A co-signer vouches for the manifest: run `airlock verify` on the bundle before signing
//! it. `sign` itself checks only that the head is well formed, the manifest decodes and the
//! checksum list matches it, so that it never signs something no reader would accept.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{malformed, Error, Result};
use crate::format::manifest;
use crate::format::sums::sums_match;
use crate::format::{head, MAX_SIGNATURES, SUMS_MEMBER};
use crate::keys::{self, KeyId, SecretKey};
use crate::verify::Bundle;

/// What `sign` did.
#[derive(Debug)]
pub struct CosignReport {
    /// The signing key's id.
    pub key_id: KeyId,
    /// False when the key had already signed (nothing was changed).
    pub added: bool,
    /// The bundle written (the input itself when signing in place).
    pub output: PathBuf,
    /// Key ids of every manifest signature now in the bundle.
    pub signers: Vec<KeyId>,
    /// Head frame length before and after.
    pub head_bytes: (u64, u64),
    /// Payload bytes copied unchanged.
    pub payload_bytes: u64,
}

/// Adds `key`'s signature to the bundle at `input`, writing the result to `output` (or in
/// place when `None`). An existing `output` is replaced only with `overwrite`.
pub fn cosign(input: &Path, key: &SecretKey, output: Option<&Path>, overwrite: bool) -> Result<CosignReport> {
    let bundle = Bundle::open(input)?;
    let head = bundle.head();
    let manifest = manifest::decode(&head.manifest_bytes)?;
    let (_, sums_message) = keys::parse_embedded(&head.sums).map_err(|e| malformed(SUMS_MEMBER, e.to_string()))?;
    if !sums_match(&manifest, sums_message) {
        return Err(malformed(SUMS_MEMBER, "checksum list does not match the manifest"));
    }
    let dest = output.unwrap_or(input);
    let in_place = output.is_none() || same_file(input, dest);
    if !in_place && !overwrite && dest.exists() {
        return Err(Error::Usage(format!("{} exists; pass --force to overwrite it", dest.display())));
    }
    let file_len = fs::metadata(input).map_err(|e| Error::io(input, e))?.len();
    let payload_bytes = file_len - head.head_frame_len;
    let mut signatures = head.signatures.clone();
    let mut report = CosignReport {
        key_id: key.key_id(),
        added: false,
        output: dest.to_owned(),
        signers: signatures.iter().map(|s| s.key_id()).collect(),
        head_bytes: (head.head_frame_len, head.head_frame_len),
        payload_bytes,
    };

    if let Some(existing) = signatures.iter().find(|s| s.key_id() == key.key_id()) {
        let public = key.public_key();
        if public.verify(&head.manifest_bytes, existing).is_err() {
            return Err(Error::Usage(format!(
                "the bundle already holds a signature under key id {} that this key did not make (or that is damaged); refusing to replace it",
                key.key_id()
            )));
        }
        // Already signed by this key: nothing to add. With -o, the output is an identical copy.
        if !in_place {
            write_atomically(dest, overwrite, |out| {
                let mut src = File::open(input).map_err(|e| Error::io(input, e))?;
                io::copy(&mut src, out).map_err(|e| Error::io(dest, e))?;
                Ok(())
            })?;
        }
        return Ok(report);
    }
    if signatures.len() >= MAX_SIGNATURES {
        return Err(Error::Usage(format!("the bundle already has the maximum of {MAX_SIGNATURES} signatures")));
    }
    signatures.push(head::sign_manifest(key, &head.manifest_bytes));
    let members = head::head_members(&head.manifest_bytes, &signatures, &head.sums);
    let new_head = head::head_frame(&members, crate::pack::head_level(crate::pack::DEFAULT_LEVEL))
        .map_err(|e| Error::io(dest, e))?;
    let head_frame_len = head.head_frame_len;
    let manifest_bytes = head.manifest_bytes.clone();
    drop(bundle);

    write_atomically(dest, overwrite || in_place, |out| {
        out.write_all(&new_head).map_err(|e| Error::io(dest, e))?;
        let mut src = File::open(input).map_err(|e| Error::io(input, e))?;
        src.seek(SeekFrom::Start(head_frame_len)).map_err(|e| Error::io(input, e))?;
        let copied = io::copy(&mut src, out).map_err(|e| Error::io(dest, e))?;
        if copied != payload_bytes {
            return Err(Error::Usage(format!("{} changed while it was being co-signed", input.display())));
        }
        Ok(())
    })?;

    // Re-read the new head: the manifest is the same bytes and carries every signature.
    let check = Bundle::open(dest)?;
    if check.head().manifest_bytes != manifest_bytes || check.head().signatures.len() != signatures.len() {
        return Err(Error::Usage(format!("{}: the co-signed bundle does not read back as written", dest.display())));
    }
    report.added = true;
    report.signers = check.head().signatures.iter().map(|s| s.key_id()).collect();
    report.head_bytes.1 = check.head().head_frame_len;
    Ok(report)
}

/// Writes `dest` through a temporary file in its directory: `fill`, fsync, rename, fsync
/// the directory. The result is world-readable like a packed bundle.
fn write_atomically(dest: &Path, overwrite: bool, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".airlock-sign-").tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(0o644)).map_err(|e| Error::io(tmp.path(), e))?;
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(|e| Error::io(dest, e))?;
    if overwrite {
        tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    } else {
        tmp.persist_noclobber(dest).map_err(|e| Error::io(dest, e.error))?;
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
