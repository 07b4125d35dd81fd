//! The bundle writer: `airlock pack`.
//!
//! Two passes over the sources: first every file is hashed, so the manifest can be signed
//! and written *first* in the bundle; then the files are streamed through tar and
//! multithreaded zstd. Between the passes a file could change; the second pass copies
//! exactly the hashed size and compares the file's metadata before and after (as GNU tar
//! does for "file changed as we read it"), so a changed file stops the pack instead of
//! producing a bundle the importer would reject.
//!
//! ```text
//!  pass 1, collect.rs
//!    walk (calling thread)
//!      |  batches of HASH_BATCH files; the walk waits while HASH_QUEUE_MAX are queued
//!      v
//!    HashQueue --one file at a time--> hashing worker x N (N = cores)
//!                                        |  each returns the files it hashed
//!                                        v
//!    join all -> count = walked? -> sort by bundle path -> manifest
//!    (sign_artifacts.rs: a checksum signature per artifact, if asked)
//!
//!  head frame, head.rs (into a temporary file beside the bundle)
//!    thread "manifest signing":      every key signs the manifest ------------+
//!    thread "checksum-list signing": builds the list, the first key signs it  |
//!    calling thread: zstd level 1 <- manifest, signatures (joined), list (joined)
//!
//!  pass 2, payload frame, payload.rs
//!    read-ahead thread: reads files of up to READ_AHEAD_MAX_BYTES whole, in payload order
//!      |  batches of READ_AHEAD_BATCH_FILES files or _BYTES bytes, READ_AHEAD_BATCHES queued
//!      v
//!    writer (calling thread), streams larger files itself:
//!      tar -> BufWriter(COPY_BUF) -> zstd (JOB_SIZE jobs, `threads` workers)
//!          -> BufWriter(BUNDLE_BUF) -> Writeback -> temporary file
//!                                        +-> syncer thread: fdatasync every WRITEBACK_STEP
//!
//!  io::durable::write_atomic: fsync, rename to the bundle's name, fsync the directory
//! ```
//!
//! The sizes are in `io::tuning`, with the measurements behind them. Who reports errors:
//! - Every thread is joined with `io::sync::join`: a panic anywhere becomes
//!   [`Error::Internal`] (exit 2), reported before any error it may have caused. A count of
//!   hashed files that differs from the count walked is an internal error too.
//! - A hashing worker records the first error and fails the queue, which stops the walk and
//!   the other workers (a panicking worker fails it as it unwinds). The walk's own error is
//!   reported before a hashing error: it does not depend on which file a worker reached first.
//! - The read-ahead thread hands over its error in place of the file and stops; the writer
//!   returns it when it gets there in payload order. When the writer fails, it drops the
//!   channel, and the read-ahead stops at its next hand-over.
//! - An error of a background sync is returned by `Syncer::finish`, before the final fsync.
//! - On any error the temporary file and the checksum signatures' directory are removed:
//!   nothing appears at the bundle's name.
//! - Every I/O error says which side failed: reading a source ([`PackError::SourceRead`],
//!   naming the file) or writing the bundle ([`PackError::DestinationWrite`], and
//!   [`PackError::DestinationFull`] with the bytes written when the file system is full).
//!
//! Around the two passes (preflight.rs, readback.rs): before anything is read, a walk of the
//! sources' metadata bounds the bundle's size, and the destination must have the room (and,
//! on FAT, allow a file that large); after the bundle is synced, `verify_written` reads it
//! back from the medium and verifies it before it takes its name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Reject, Result};
use crate::format::manifest::{self, Entry, Manifest, MirrorId};
use crate::io::digest::Digest;
use crate::io::durable::{parent_dir, write_atomic, Overwrite};
use crate::io::tuning::BUNDLE_BUF;
use crate::io::writeback::{SyncScope, Syncer, Writeback};
use crate::keys::SecretKey;
use crate::progress::Progress;
use crate::verify::VerifyOptions;

mod collect;
mod error;
mod head;
mod payload;
pub(crate) mod preflight;
pub(crate) mod readback;
mod sign_artifacts;
pub(crate) mod state;
mod volumes;

pub use collect::Symlinks;
pub use error::{PackError, Refusal, SourceProblem};
pub use head::head_level;
pub use state::{plan_since, read_receipt, BaseProblem, ChannelState, FullReason, SincePlan};
pub use volumes::{parse_volume_size, VolumeOptions, PRESETS as VOLUME_PRESETS};

/// Default zstd level.
pub const DEFAULT_LEVEL: i32 = 3;
/// Highest zstd level: higher ones need windows larger than the reader accepts.
pub const MAX_LEVEL: i32 = 19;

/// What to pack and how.
#[derive(Clone, Debug)]
pub struct PackOptions {
    /// Directories (their contents) and files to pack.
    pub sources: Vec<PathBuf>,
    /// The channel.
    pub channel: String,
    /// The sequence number.
    pub sequence: u64,
    /// The previous manifest's digest, if known.
    pub previous: Option<Digest>,
    /// Creation time (Unix seconds).
    pub created: u64,
    /// Expiry time (Unix seconds).
    pub expires: Option<u64>,
    /// Label.
    pub label: Option<String>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// zstd level (1 to [`MAX_LEVEL`]).
    pub level: i32,
    /// zstd worker threads (0 = one per core).
    pub threads: u32,
    /// Add `<artifact>.sha256.sig` for every artifact: a signify embedded signature, by
    /// the first key, of its checksum line (`pack --sign-artifacts`).
    pub sign_artifacts: bool,
    /// Write a volume set (`NAME.vol001.airlock`.., `NAME.par01.airlock`..) named after the
    /// output path instead of one bundle file (FORMAT.md §14).
    pub volumes: Option<VolumeOptions>,
    /// Read the bundle back from the medium once it is written, bypassing the page cache,
    /// and verify it in full against the packing keys before it takes its name
    /// (`pack --verify-written`).
    pub verify_written: bool,
    /// What the receiving mirror already holds (from its receipt): entries equal to one of
    /// these are not carried, so the bundle is a delta. `None`: a full bundle.
    pub base: Option<PackBase>,
    /// A fault to inject, for the failure tests; `None` in normal use.
    pub fault: Option<PackFault>,
    /// What to do with symbolic links among the sources.
    pub symlinks: Symlinks,
}

/// The state a delta is computed against: a mirror's receipt named the manifest it holds
/// for the channel, and these are that manifest's entries.
#[derive(Clone, Debug)]
pub struct PackBase {
    /// The mirror the receipt came from.
    pub mirror: MirrorId,
    /// The manifest the receipt says the mirror holds for the channel.
    pub manifest: Digest,
    /// That manifest's entries.
    pub entries: Vec<Entry>,
}

impl PackOptions {
    /// Options for packing `sources` as bundle `sequence` of `channel`, created at `created`
    /// (Unix seconds): no expiry, no label or metadata, the default compression level, one
    /// zstd thread per core, no per-artifact checksum signatures.
    pub fn new(sources: Vec<PathBuf>, channel: &str, sequence: u64, created: u64) -> PackOptions {
        PackOptions {
            sources,
            channel: channel.to_owned(),
            sequence,
            previous: None,
            created,
            expires: None,
            label: None,
            meta: BTreeMap::new(),
            level: DEFAULT_LEVEL,
            threads: 0,
            sign_artifacts: false,
            volumes: None,
            verify_written: false,
            base: None,
            fault: None,
            symlinks: Symlinks::Refuse,
        }
    }
}

/// A fault [`pack`] can be told to inject, so the tests can check it fails closed. The
/// values exist only with the `fault-injection` feature; without it this type is empty and
/// [`PackOptions::fault`] can only be `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PackFault {
    /// One hashing worker panics on the first file it takes.
    #[cfg(feature = "fault-injection")]
    HashWorkerPanic,
    /// The preflight's space check is skipped, as if the destination filled up after it
    /// (another writer): the pack then meets a full file system.
    #[cfg(feature = "fault-injection")]
    SkipSpaceCheck,
    /// One byte of the written bundle is flipped after it is synced, as a bad medium would;
    /// `verify_written` must catch it.
    #[cfg(feature = "fault-injection")]
    FlipWrittenByte,
}

/// What `pack` produced.
#[derive(Debug)]
pub struct PackReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// SHA-256 of the manifest bytes (the next bundle's `previous`).
    pub manifest_digest: Digest,
    /// Size of the bundle file (of a volume set: all its volumes).
    pub bundle_bytes: u64,
    /// The volume files written, data then parity (empty for a single bundle file).
    pub volumes: Vec<PathBuf>,
    /// Entries carried in the payload (all of them, unless [`PackOptions::base`] was given).
    pub carried: u64,
    /// Bytes of the carried entries.
    pub carried_bytes: u64,
    /// The preflight's bound on the bundle's size (what the destination had to have free),
    /// from the manifest: the largest the bundle could have been.
    pub bound_bytes: u64,
    /// How long reading the bundle back and verifying it took (with `verify_written`).
    pub read_back: Option<Duration>,
    /// The symbolic links left out ([`Symlinks::Skip`]).
    pub skipped_links: Vec<PathBuf>,
}

/// Packs `opts.sources` into a new bundle at `out`, signed by every key in `signers`
/// (the first also signs the checksum list). With [`Overwrite::NoClobber`] an existing `out`
/// is refused ([`Error::OutputExists`]). Before anything is read, the destination must have
/// room for the bundle's size bound ([`PackError::NoRoom`], [`PackError::FileTooLarge`]).
/// The bundle appears at `out` only once it is whole and durable (and, with
/// `verify_written`, has read back and verified).
pub fn pack(
    opts: &PackOptions,
    signers: &[SecretKey],
    out: &Path,
    overwrite: Overwrite,
    progress: &dyn Progress,
) -> Result<PackReport> {
    check_options(opts, signers)?;
    // Checked before the sources are read, to fail fast; the final rename checks again.
    // A volume set: no volume of a set of that name may be there (a stale one would mix in).
    let existing = match opts.volumes {
        Some(_) => volumes::existing_volumes(out)?.into_iter().next(),
        None => out.exists().then(|| out.to_owned()),
    };
    if let (Overwrite::NoClobber, Some(path)) = (overwrite, existing) {
        return Err(Error::OutputExists { path });
    }
    let estimate = preflight::estimate(opts, signers.len()).map_err(as_source_error)?;
    if !skip_space_check(opts) {
        let (total, largest) = volumes::room_needed(opts.volumes, estimate.bound);
        preflight::check_room(out, total, largest)?;
    }
    let progress = &Counted::new(progress);
    Packer { opts, signers, out, progress, bound: AtomicU64::new(estimate.bound) }.run(overwrite)
}

/// Whether the test hook `PackFault::SkipSpaceCheck` is set (never without the
/// `fault-injection` feature: [`PackFault`] then has no values).
fn skip_space_check(opts: &PackOptions) -> bool {
    #[cfg(feature = "fault-injection")]
    return opts.fault == Some(PackFault::SkipSpaceCheck);
    #[cfg(not(feature = "fault-injection"))]
    return opts.fault.is_some();
}

/// An I/O error met while walking or reading the sources, said to be one.
pub(super) fn as_source_error(e: Error) -> Error {
    match e {
        Error::Io { path, source } => PackError::SourceRead { path, source }.into(),
        other => other,
    }
}

fn check_options(opts: &PackOptions, signers: &[SecretKey]) -> Result<(), PackError> {
    if signers.is_empty() {
        return Err(PackError::NoSigners);
    }
    let mut ids = HashSet::new();
    for k in signers {
        if !ids.insert(k.key_id()) {
            return Err(PackError::DuplicateKeyId(k.key_id()));
        }
    }
    if !(1..=MAX_LEVEL).contains(&opts.level) {
        return Err(PackError::Level { level: opts.level });
    }
    if opts.sources.is_empty() {
        return Err(PackError::NoSources);
    }
    Ok(())
}

/// What every stage of one pack shares: the request, the keys, where the bundle goes and
/// the progress display.
struct Packer<'a> {
    opts: &'a PackOptions,
    /// Not empty: [`check_options`] was passed.
    signers: &'a [SecretKey],
    /// The bundle's final name (named in I/O errors on the bundle).
    out: &'a Path,
    progress: &'a Counted<'a>,
    /// The preflight's bound on the bundle's size: from the walk, then from the manifest.
    bound: AtomicU64,
}

impl Packer<'_> {
    fn run(&self, overwrite: Overwrite) -> Result<PackReport> {
        // Sizes are learnt while hashing (from the open file, so a file swapped for a link
        // between the walk and the read is refused), and files while walking: neither total
        // is known until then.
        self.progress.start("hashing", 0, 0);
        let (mut manifest, mut sources) = collect::collect(self.opts, self.progress).map_err(as_source_error)?;
        // Lives until the bundle is written: it holds the generated checksum signatures.
        let _generated = if self.opts.sign_artifacts {
            let work_dir = parent_dir(self.out);
            let signed =
                sign_artifacts::add_checksum_signatures(&mut manifest, &mut sources, &self.signers[0], work_dir);
            // Written beside the bundle, so an I/O error there is the destination's.
            Some(signed.map_err(|e| self.destination_error(e, 0))?)
        } else {
            None
        };
        if let Some(base) = &self.opts.base {
            omit_held(&mut manifest, base);
        }
        // Encoded (and checked against the format's rules) before anything is written.
        let manifest_bytes = manifest::encode(&manifest).map_err(|r| match r {
            Reject::Manifest(problem) => Error::Pack(PackError::InvalidManifest(problem)),
            other => Error::Rejected(other),
        })?;
        preflight::check_limits(&manifest, manifest_bytes.len() as u64, &self.signers[0])?;
        let manifest_digest = Digest::of(&manifest_bytes);
        // Again, exactly now (a delta's carried entries are known, the manifest's length):
        // still nothing written.
        let bound = preflight::bound_of(&manifest, manifest_bytes.len() as u64, self.signers.len());
        self.bound.store(bound, Ordering::Relaxed);
        if !skip_space_check(self.opts) {
            let (total, largest) = volumes::room_needed(self.opts.volumes, bound);
            preflight::check_room(self.out, total, largest)?;
        }
        let ((bundle_bytes, read_back), volumes) = match self.opts.volumes {
            Some(v) => {
                let written =
                    self.write_volume_set(v, overwrite, &manifest, manifest_bytes, &manifest_digest, &sources)?;
                ((written.bytes, written.read_back), written.paths)
            }
            None => (self.write_bundle(overwrite, &manifest, manifest_bytes, &manifest_digest, &sources)?, Vec::new()),
        };
        self.progress.finish();
        let (carried, carried_bytes) = (manifest.carried_count() as u64, manifest.carried_size());
        Ok(PackReport {
            manifest,
            manifest_digest,
            bundle_bytes,
            carried,
            carried_bytes,
            bound_bytes: bound,
            read_back,
            volumes,
            skipped_links: std::mem::take(&mut sources.skipped),
        })
    }

    /// Writes the bundle durably (see [`write_atomic`]); its size, and how long the
    /// read-back took (with `verify_written`).
    fn write_bundle(
        &self,
        overwrite: Overwrite,
        manifest: &Manifest,
        manifest_bytes: Vec<u8>,
        digest: &Digest,
        sources: &collect::Sources,
    ) -> Result<(u64, Option<Duration>)> {
        let mut bundle_bytes = 0;
        let mut read_back = None;
        // A bundle holds nothing secret and is meant to be read by auditors: 0644.
        write_atomic(self.out, 0o644, overwrite, |file| {
            // Classified here, while the bytes written can still be counted.
            let written = self
                .write_file(file, manifest, manifest_bytes, sources)
                .map_err(|e| self.destination_error(e, file.metadata().map_or(0, |m| m.len())));
            bundle_bytes = written?;
            self.inject_fault(file)?;
            if self.opts.verify_written {
                read_back = Some(self.read_back(file, digest)?);
            }
            Ok(())
        })
        // After the closure: the final sync, the rename or the directory's sync failed, with
        // the whole bundle written.
        .map_err(|e| self.destination_error(e, bundle_bytes))?;
        Ok((bundle_bytes, read_back))
    }

    /// Writes head and payload into `file`; its length.
    fn write_file(
        &self,
        file: &File,
        manifest: &Manifest,
        manifest_bytes: Vec<u8>,
        sources: &collect::Sources,
    ) -> Result<u64> {
        // The bundle is flushed to the device while it is written (see `writeback`), so
        // the final fsync waits for the last few megabytes rather than the whole bundle.
        let syncer = Syncer::start(SyncScope::File);
        let mut w = BufWriter::with_capacity(BUNDLE_BUF, Writeback::new(file).with_syncer(syncer.handle()));
        self.write_head(&mut w, manifest, manifest_bytes)?;
        // The payload holds the carried entries (all of them, unless this is a delta).
        self.progress.start("packing", manifest.carried_size(), manifest.carried_count() as u64);
        self.write_payload(&mut w, manifest, sources)?;
        w.flush().map_err(|e| Error::io(self.out, e))?;
        drop(w);
        syncer.finish().map_err(|e| Error::io(self.out, e))?;
        Ok(file.metadata().map_err(|e| Error::io(self.out, e))?.len())
    }

    /// An I/O error on the bundle (an [`Error::Io`] naming it: nothing else is left by
    /// then) as the destination error it is, with the bytes `written` so far. Other errors
    /// pass through.
    fn destination_error(&self, e: Error, written: u64) -> Error {
        let Error::Io { source, .. } = e else { return e };
        let path = self.out.to_owned();
        match source.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => PackError::DestinationFull {
                path,
                written,
                expected: self.progress.extrapolate(written, self.bound.load(Ordering::Relaxed)),
            }
            .into(),
            Some(libc::EFBIG) => PackError::DestinationFileTooLarge { path, written }.into(),
            _ => PackError::DestinationWrite { path, source }.into(),
        }
    }

    /// Reads the synced bundle back and verifies it against the packing keys; a bundle that
    /// does not verify is [`PackError::ReadBack`].
    fn read_back(&self, file: &File, digest: &Digest) -> Result<Duration> {
        let policy = readback::packers_policy(self.signers)?;
        // The bundle's own creation time: it is valid then (an expiry is later), however
        // long the pack took.
        let options = VerifyOptions::new(&policy, self.opts.created);
        readback::verify_file(file, self.out, digest, &options, self.progress).map_err(|e| match e {
            Error::Rejected(problem) => {
                PackError::ReadBack { path: self.out.to_owned(), problem: Box::new(problem) }.into()
            }
            other => other,
        })
    }

    /// The test hook of `PackFault::FlipWrittenByte`; nothing without it.
    fn inject_fault(&self, _file: &File) -> Result<()> {
        #[cfg(feature = "fault-injection")]
        if self.opts.fault == Some(PackFault::FlipWrittenByte) {
            return readback::flip_written_byte(_file, self.out);
        }
        Ok(())
    }
}

/// The caller's progress display, also counting the payload bytes packed so far: how far
/// the pack got when the destination filled up.
struct Counted<'a> {
    inner: &'a dyn Progress,
    /// The current phase's total bytes, and bytes done.
    total: AtomicU64,
    done: AtomicU64,
}

impl<'a> Counted<'a> {
    fn new(inner: &'a dyn Progress) -> Counted<'a> {
        Counted { inner, total: AtomicU64::new(0), done: AtomicU64::new(0) }
    }

    /// About how large the bundle would have been, `written` bytes of it being written when
    /// the phase was this far: scaled by the share of the input done, never above `bound`.
    /// The compressor holds some input it has not written out yet, so near the end of the
    /// input the share says nothing (more was still to come): the bound is the answer then.
    fn extrapolate(&self, written: u64, bound: u64) -> u64 {
        let (total, done) = (self.total.load(Ordering::Relaxed), self.done.load(Ordering::Relaxed));
        let ceiling = bound.max(written);
        if done == 0 || total == 0 {
            return ceiling;
        }
        let scaled = u64::try_from(u128::from(written) * u128::from(total) / u128::from(done)).unwrap_or(u64::MAX);
        if scaled <= written {
            ceiling
        } else {
            scaled.min(ceiling)
        }
    }
}

impl Progress for Counted<'_> {
    fn start(&self, phase: &str, bytes: u64, files: u64) {
        self.total.store(bytes, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.inner.start(phase, bytes, files);
    }

    fn add_bytes(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.inner.add_bytes(n);
    }

    fn add_file(&self) {
        self.inner.add_file();
    }

    fn finish(&self) {
        self.inner.finish();
    }
}

/// Marks as not carried every entry the base holds exactly (path, size, SHA-256 and mode);
/// an artifact and its linked signatures stay together: if any of them changed, all are
/// carried (FORMAT.md §6.3), so the payload's artifact checks still see whole groups.
fn omit_held(manifest: &mut Manifest, base: &PackBase) {
    let held: HashMap<&str, &Entry> = base.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    for e in &mut manifest.entries {
        e.carried =
            !held.get(e.path.as_str()).is_some_and(|b| b.size == e.size && b.sha256 == e.sha256 && b.mode == e.mode);
    }
    let entries = &mut manifest.entries;
    for i in 0..entries.len() {
        let group: Vec<usize> = entries[i]
            .signatures
            .iter()
            .filter_map(|s| entries.binary_search_by(|x| x.path.as_str().as_bytes().cmp(s.as_str().as_bytes())).ok())
            .chain([i])
            .collect();
        if group.iter().any(|&j| entries[j].carried) {
            for j in group {
                entries[j].carried = true;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Options fit for tests, without sources.
    pub(crate) fn options() -> PackOptions {
        PackOptions { level: 1, threads: 1, ..PackOptions::new(Vec::new(), "test", 1, 1_700_000_000) }
    }
}
