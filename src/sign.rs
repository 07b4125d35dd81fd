//! Co-signing: `airlock sign BUNDLE --key K.sec [-o OUT]` adds a manifest signature to an
//! existing bundle.
//!
//! A co-signer vouches for the bundle, so [`cosign`] first runs the whole verification
//! procedure (FORMAT.md §8: head, signatures under the caller's trust policy, freshness, and
//! the full payload with the artifact rules) and writes nothing unless it passes.
//!
//! The head frame (FORMAT.md §3) holds everything a signature touches, so a co-signer then
//! rewrites only that frame and copies the payload frames byte for byte, from the very file
//! it verified: no decompression, no recompression, one sequential copy. The new file goes
//! through [`write_atomic`], so a crash leaves either the old bundle or the new one.
//!
//! The checksum list stays the packer's: a co-signature counts toward a threshold, but the
//! bundle is accepted only where the checksum list's signer counts too (FORMAT.md §5); the
//! report names that key ([`CosignReport::sums_signer`]).

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{head, MAX_SIGNATURES};
use crate::io::durable::{write_atomic, Overwrite};
use crate::keys::{KeyId, SecretKey};
use crate::pack::{preflight, readback, PackError, PackFault};
use crate::progress::Progress;
use crate::verify::{Bundle, Head, NullSink, VerifyOptions};

/// Mode of a co-signed bundle: world-readable, like a packed one.
const BUNDLE_MODE: u32 = 0o644;

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
    /// The key that signed the checksum list (unchanged by co-signing): a verifier accepts
    /// the bundle only if this key is one of its counted signers (FORMAT.md §5), so a policy
    /// trusting only the co-signer refuses it.
    pub sums_signer: KeyId,
    /// Head frame length before and after.
    pub head_bytes: (u64, u64),
    /// Payload bytes copied unchanged.
    pub payload_bytes: u64,
    /// How long reading the written copy back and verifying it took (with
    /// [`CosignOptions::verify_written`]).
    pub read_back: Option<Duration>,
}

/// Why a bundle that verified cannot be co-signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signing key's id already names a signature member that this key did not make.
    #[error(
        "the bundle already holds a signature under key id {key_id} that this key did not make (or that is damaged); refusing to replace it"
    )]
    ForeignSignature {
        /// The key id.
        key_id: KeyId,
    },
    /// The bundle has as many signatures as the format allows.
    #[error("the bundle already has the maximum of {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// The input's payload changed length between verification and the copy.
    #[error("{} changed while it was being co-signed", path.display())]
    InputChanged {
        /// The input bundle.
        path: PathBuf,
    },
    /// Preflight: co-signing writes a whole new copy of the bundle before it replaces the
    /// old one (or beside it), and the destination has not the room. Nothing was written.
    #[error(
        "not enough room for {}: co-signing writes a new copy of the bundle ({needed} bytes) before the old one goes, and the destination has {free} bytes free; free some space or write the co-signed bundle to another medium",
        destination.display()
    )]
    NoRoom {
        /// The co-signed bundle to be written.
        destination: PathBuf,
        /// Bytes the copy takes on that file system.
        needed: u64,
        /// Bytes free there.
        free: u64,
    },
    /// Read-back: the co-signed bundle read back from the medium does not verify. It is
    /// checked before it takes the bundle's name, so it was removed and the input (signed in
    /// place or not) is unchanged.
    #[error(
        "{}: the co-signed bundle read back from the medium does not verify ({problem}); it was removed and the bundle is unchanged. The medium may be bad: write the co-signed bundle to another one",
        path.display()
    )]
    ReadBackRejected {
        /// The bundle written (now removed).
        path: PathBuf,
        /// What verification found.
        problem: Box<crate::error::Reject>,
    },
    /// The written bundle does not have the head it was written with.
    #[error("{}: the co-signed bundle does not read back as written", path.display())]
    ReadBack {
        /// The bundle written.
        path: PathBuf,
    },
}

/// Where and how [`cosign`] writes.
#[derive(Clone, Copy, Debug)]
pub struct CosignOptions<'a> {
    /// Write the co-signed bundle here; `None` replaces the input.
    pub output: Option<&'a Path>,
    /// Whether an existing `output` may be replaced.
    pub overwrite: Overwrite,
    /// Read the co-signed bundle back from the medium (bypassing the page cache) and verify
    /// it in full before it takes its name (`sign --verify-written`).
    pub verify_written: bool,
    /// A fault to inject, for the failure tests (`PackFault::SkipSpaceCheck`,
    /// `PackFault::FlipWrittenByte`); `None` in normal use.
    pub fault: Option<PackFault>,
}

impl<'a> CosignOptions<'a> {
    /// Writing to `output` (in place when `None`), no read-back.
    pub fn new(output: Option<&'a Path>, overwrite: Overwrite) -> CosignOptions<'a> {
        CosignOptions { output, overwrite, verify_written: false, fault: None }
    }
}

/// Verifies the bundle at `input` against `verify` (FORMAT.md §8, payload included), then
/// adds `key`'s signature, writing the result to `options.output` (or in place). An existing
/// output is replaced only with [`Overwrite::Replace`]. Nothing is written unless the bundle
/// verified, and, before it is verified, the destination must have room for the new copy
/// ([`SignError::NoRoom`]).
pub fn cosign(
    input: &Path,
    key: &SecretKey,
    options: &CosignOptions<'_>,
    verify: &VerifyOptions<'_>,
    progress: &dyn Progress,
) -> Result<CosignReport> {
    let (output, overwrite) = (options.output, options.overwrite);
    let dest = output.unwrap_or(input);
    let in_place = output.is_none() || same_file(input, dest);
    if !in_place && overwrite == Overwrite::NoClobber && dest.exists() {
        // Checked again by the rename itself; this only saves verifying for nothing.
        return Err(Error::OutputExists { path: dest.to_owned() });
    }
    let file = File::open(input).map_err(|e| Error::io(input, e))?;
    let mut source = file.try_clone().map_err(|e| Error::io(input, e))?;
    let bundle = Bundle::from_file(file, input)?;
    let unchanged = in_place && bundle.head().signatures.iter().any(|s| s.key_id() == key.key_id());
    if !unchanged && !skip_space_check(options) {
        check_room(&source, input, dest, bundle.head())?;
    }
    let (head, sums) = verify_whole(bundle, verify, progress)?;
    let file_len = source.metadata().map_err(|e| Error::io(input, e))?.len();
    let payload_bytes =
        file_len.checked_sub(head.head_frame_len).ok_or_else(|| SignError::InputChanged { path: input.to_owned() })?;
    let mut report = CosignReport {
        key_id: key.key_id(),
        added: false,
        output: dest.to_owned(),
        signers: head.signatures.iter().map(|s| s.key_id()).collect(),
        sums_signer: head.sums.signature()?.key_id(),
        head_bytes: (head.head_frame_len, head.head_frame_len),
        payload_bytes,
        read_back: None,
    };

    if let Some(existing) = head.signatures.iter().find(|s| s.key_id() == key.key_id()) {
        if key.public_key().verify(&head.manifest_bytes, existing).is_err() {
            return Err(SignError::ForeignSignature { key_id: key.key_id() }.into());
        }
        // Already signed by this key: nothing to add. With -o, the output is an identical copy.
        if !in_place {
            write_atomic(dest, BUNDLE_MODE, overwrite, |out| {
                copy_from(&mut source, 0, out, input, dest)?;
                report.read_back = written_check(out, dest, &head.manifest_digest, options, verify, progress)?;
                Ok(())
            })?;
        }
        return Ok(report);
    }
    if head.signatures.len() >= MAX_SIGNATURES {
        return Err(SignError::TooManySignatures.into());
    }
    let mut signatures = head.signatures.clone();
    signatures.push(head::sign_manifest(key, &head.manifest_bytes));
    let level = crate::pack::head_level(crate::pack::DEFAULT_LEVEL);
    let new_head =
        head::encode_head(level, &head.manifest_bytes, &signatures, &sums).map_err(|e| Error::io(dest, e))?;

    let overwrite = if in_place { Overwrite::Replace } else { overwrite };
    write_atomic(dest, BUNDLE_MODE, overwrite, |out| {
        out.write_all(&new_head).map_err(|e| Error::io(dest, e))?;
        if copy_from(&mut source, head.head_frame_len, out, input, dest)? != payload_bytes {
            return Err(SignError::InputChanged { path: input.to_owned() }.into());
        }
        report.read_back = written_check(out, dest, &head.manifest_digest, options, verify, progress)?;
        Ok(())
    })?;

    // Re-read the new head: the manifest is the same bytes and carries every signature.
    let check = Bundle::open(dest)?;
    if check.head().manifest_bytes != head.manifest_bytes || check.head().signatures.len() != signatures.len() {
        return Err(SignError::ReadBack { path: dest.to_owned() }.into());
    }
    report.added = true;
    report.signers = check.head().signatures.iter().map(|s| s.key_id()).collect();
    report.head_bytes.1 = check.head().head_frame_len;
    Ok(report)
}

/// Without the `fault-injection` feature, [`PackFault`] has no values.
fn skip_space_check(options: &CosignOptions<'_>) -> bool {
    #[cfg(feature = "fault-injection")]
    return options.fault == Some(PackFault::SkipSpaceCheck);
    #[cfg(not(feature = "fault-injection"))]
    return options.fault.is_some();
}

/// Preflight: the destination must have room for the co-signed copy, whose size is the
/// payload's plus the new head frame's, at most zstd's bound of the head's members with one
/// more signature. (The copy is written beside the bundle before it replaces it, so signing
/// in place needs that room too.)
fn check_room(input_file: &File, input: &Path, dest: &Path, head: &Head) -> Result<()> {
    /// A signature member with its tar header and padding, rounded up.
    const SIGNATURE_MEMBER: u64 = 2048;
    /// The manifest's and checksum list's tar headers and padding.
    const MEMBER_OVERHEAD: u64 = 2 * 1024;
    let len = input_file.metadata().map_err(|e| Error::io(input, e))?.len();
    let members = head.manifest_bytes.len() as u64
        + head.sums.len()
        + MEMBER_OVERHEAD
        + (head.signatures.len() as u64 + 1) * SIGNATURE_MEMBER;
    let needed = len.saturating_sub(head.head_frame_len).saturating_add(preflight::zstd_bound(members));
    match preflight::check_room(dest, needed, needed) {
        Err(Error::Pack(PackError::NoRoom { destination, needed, free })) => {
            Err(SignError::NoRoom { destination, needed, free }.into())
        }
        other => other.map(drop),
    }
}

/// With `verify_written`: the copy just written, synced, dropped from the page cache, read
/// back and verified as the input was (plus its manifest must be the input's); how long it
/// took. The test hook `PackFault::FlipWrittenByte` damages it first.
fn written_check(
    out: &File,
    dest: &Path,
    digest: &crate::io::digest::Digest,
    options: &CosignOptions<'_>,
    verify: &VerifyOptions<'_>,
    progress: &dyn Progress,
) -> Result<Option<Duration>> {
    #[cfg(feature = "fault-injection")]
    if options.fault == Some(PackFault::FlipWrittenByte) {
        readback::flip_written_byte(out, dest)?;
    }
    if !options.verify_written {
        return Ok(None);
    }
    match readback::verify_file(out, dest, digest, verify, progress) {
        Ok((took, _)) => Ok(Some(took)),
        Err(Error::Rejected(problem)) => {
            Err(SignError::ReadBackRejected { path: dest.to_owned(), problem: Box::new(problem) }.into())
        }
        Err(other) => Err(other),
    }
}

/// The whole verification procedure, the payload into a [`NullSink`]; returns the head that
/// verified and its checksum-list member's bytes (regenerated from the verified manifest).
fn verify_whole(bundle: Bundle, options: &VerifyOptions<'_>, progress: &dyn Progress) -> Result<(Head, Vec<u8>)> {
    let verified = bundle.verify(options)?;
    let head = verified.head().clone();
    let manifest = verified.manifest();
    let sums = head.sums.to_bytes(manifest);
    progress.start("verifying", manifest.total_size(), manifest.entries.len() as u64);
    let streamed = verified.stream_into(&mut NullSink, progress);
    progress.finish();
    streamed?;
    Ok((head, sums))
}

/// Copies `source` from `offset` to its end into `out`; returns the bytes copied.
fn copy_from(source: &mut File, offset: u64, out: &mut File, input: &Path, dest: &Path) -> Result<u64> {
    source.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(input, e))?;
    io::copy(source, out).map_err(|e| Error::io(dest, e))
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
