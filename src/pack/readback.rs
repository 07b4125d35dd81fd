//! Read-back (`pack --verify-written`, `sign --verify-written`): the bundle just written is
//! read again from the medium and verified in full, so a bad stick or disc is found at the
//! export desk rather than at the import desk.
//!
//! It runs on the temporary file, after its data is synced and before it takes the
//! bundle's name: a bundle that does not read back is removed with the temporary file, and
//! whatever stood at the name before (the bundle being co-signed in place, say) stays.
//!
//! The page cache would otherwise answer the reads with what was written rather than what
//! the medium holds, so the data is made durable first (`fdatasync`: its pages are then
//! clean) and dropped from the cache (`posix_fadvise(DONTNEED)`, which drops clean pages).
//! On a file system without a backing device (tmpfs) the advice does nothing: memory is
//! the medium there.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{malformed, Error, Result};
use crate::format::manifest::Manifest;
use crate::io::digest::Digest;
use crate::keys::SecretKey;
use crate::policy::{Policy, Trust};
use crate::progress::Progress;
use crate::verify::{Bundle, NullSink, VerifiedBundle, VerifyOptions};

/// The policy a packer's own bundle must pass when read back: every packing key trusted,
/// and every one of them required.
pub(crate) fn packers_policy(signers: &[SecretKey]) -> Result<Policy> {
    let keys: Vec<_> = signers.iter().map(SecretKey::public_key).collect();
    let n = keys.len();
    Ok(Policy::from_trust(Trust::new(keys, n)?))
}

/// Syncs `file` (the bundle being written, named `path` in messages), drops it from the page
/// cache, and runs the whole verification (FORMAT.md §8) on it from its first byte, payload
/// included; its manifest must be `expected`. Returns how long the read-back took, and the
/// manifest read back (decoded from the same bytes as the one written).
///
/// A verification failure is returned as [`Error::Rejected`]; the caller says that it was
/// the written copy that failed.
pub(crate) fn verify_file(
    file: &File,
    path: &Path,
    expected: &Digest,
    options: &VerifyOptions<'_>,
    progress: &dyn Progress,
) -> Result<(Duration, Manifest)> {
    let started = Instant::now();
    file.sync_data().map_err(|e| Error::io(path, e))?;
    // Advice: if it fails, the read-back still checks what the cache holds.
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
    let mut reader = file.try_clone().map_err(|e| Error::io(path, e))?;
    reader.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
    let verified = Bundle::from_file(reader, path)?.verify(options)?;
    let manifest = stream_verified(verified, expected, progress)?;
    Ok((started.elapsed(), manifest))
}

/// The end of every read-back, of a bundle file or a volume set: the head read back must
/// hold the manifest `expected`, and the payload must stream and verify (§8 step 6). Returns
/// the manifest read back.
pub(crate) fn stream_verified(
    verified: VerifiedBundle,
    expected: &Digest,
    progress: &dyn Progress,
) -> Result<Manifest> {
    if verified.manifest_digest() != *expected {
        return Err(malformed(
            crate::format::MANIFEST_MEMBER,
            format!("the manifest read back is {}, not the {expected} that was written", verified.manifest_digest()),
        ));
    }
    let manifest = verified.manifest();
    progress.start("reading back", manifest.total_size(), manifest.entries.len() as u64);
    let streamed = verified.stream_keeping_head(&mut NullSink, progress);
    progress.finish();
    let (_, head) = streamed?;
    Ok(head.into_manifest())
}

/// Frees `manifest`'s entries (hundreds of megabytes at a million of them) while the copy
/// written is read back and decoded, which would otherwise be held twice; the caller puts
/// the manifest read back, equal byte for byte, in its place.
pub(crate) fn set_aside(manifest: &mut Manifest) {
    drop(std::mem::take(&mut manifest.entries));
    drop(std::mem::take(&mut manifest.removed));
}

/// Test hook: flips one bit of `file` in the middle of its payload and syncs it, as a bad
/// medium would (feature `fault-injection`, `PackFault::FlipWrittenByte`).
#[cfg(feature = "fault-injection")]
pub(crate) fn flip_written_byte(file: &File, path: &Path) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let at = len.saturating_sub(len / 3).min(len.saturating_sub(1));
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).map_err(|e| Error::io(path, e))?;
    byte[0] ^= 0x10;
    file.write_all_at(&byte, at).map_err(|e| Error::io(path, e))?;
    file.sync_data().map_err(|e| Error::io(path, e))
}
