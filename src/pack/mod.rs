//! The bundle writer: `airlock pack`.
//!
//! Each source byte is read once (FORMAT.md §3, format version 3): the walk reads only
//! metadata, and the payload pass hashes every file from the same buffer it compresses. The
//! signed head still leads the bundle: every byte of it but the hashes is known after the
//! walk, and the hashes are fixed-width, so its compressed length is estimated closely and
//! that room reserved at the front; the payload is written after it, then the head into it,
//! and the rest of the room becomes one padding frame (`reserve.rs`). A file is checked
//! unchanged while it is read (its size and metadata against the walk's, as GNU tar does for
//! "file changed as we read it"), so a changed file stops the pack instead of producing a
//! bundle the importer would reject.
//!
//! Some hashes are needed before their bytes are written, and those files are hashed first
//! (`prehash.rs`), so the ones the payload carries are read twice: a delta's candidates
//! (same path, size and mode as a base entry: carried only if the hash differs), artifacts
//! with a generated checksum signature (it precedes them). A volume set reserves the head's
//! room at the front of volume 1 the same way (`volumes.rs`).
//!
//! ```text
//!  walk, collect.rs (metadata only)
//!    walk (calling thread)
//!      |  batches of HASH_BATCH files; the walk waits while HASH_QUEUE_MAX are queued
//!      v
//!    HashQueue --one file at a time--> lstat worker x N (N = cores)
//!    join all -> count = walked? -> sort by bundle path -> manifest (placeholder hashes)
//!    (prehash.rs: the hashes needed before the payload, on N workers)
//!    (sign_artifacts.rs: a checksum signature per artifact, if asked)
//!
//!  room for the head, reserve.rs: the head compressed with placeholder hashes -> estimate
//!
//!  payload frame, payload.rs (into a temporary file beside the bundle, after the room)
//!    read-ahead thread: reads and hashes files of up to READ_AHEAD_MAX_BYTES whole, in
//!      |  payload order; batches of READ_AHEAD_BATCH_FILES files or _BYTES bytes,
//!      v  READ_AHEAD_BATCHES queued
//!    writer (calling thread), streams (and hashes) larger files itself:
//!      tar -> BufWriter(COPY_BUF) -> zstd (JOB_SIZE jobs, `threads` workers)
//!          -> BufWriter(BUNDLE_BUF) -> Writeback -> temporary file
//!                                        +-> syncer thread: fdatasync every WRITEBACK_STEP
//!
//!  head frame, head.rs, into the room (reserve.rs: RoomWriter), with the real hashes
//!    thread "manifest signing":      every key signs the manifest ------------+
//!    thread "checksum-list signing": builds the list, the first key signs it  |
//!    calling thread: zstd level 1 <- manifest, signatures (joined), list (joined)
//!    then: the rest of the room -> padding frame; or (head too large, or too much room
//!    left) the payload moved within the file to follow the head: the bundle, not the
//!    sources, is read again
//!
//!  io::durable::write_atomic: fsync, rename to the bundle's name, fsync the directory
//! ```
//!
//! The sizes are in `io::tuning`, with the measurements behind them. Who reports errors:
//! - Every thread is joined with `io::sync::join`: a panic anywhere becomes
//!   [`Error::Internal`] (exit 2), reported before any error it may have caused. A count of
//!   hashed files that differs from the count walked is an internal error too.
//! - A walk worker records the first error and fails the queue, which stops the walk and
//!   the other workers (a panicking worker fails it as it unwinds). The walk's own error is
//!   reported before a worker's error: it does not depend on which file a worker reached
//!   first. A hashing worker of `prehash` stops the others at its first error likewise.
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
//! Around the passes (preflight.rs, readback.rs): before any source file's content is read,
//! the sources' metadata bounds the bundle's size (the manifest, once the walk has built it;
//! a walk of its own first where content is read before that: a delta, `--sign-artifacts`),
//! and the destination must have the room (and, on FAT, allow a file that large); after the
//! bundle is synced, `verify_written` reads it back from the medium and verifies it before
//! it takes its name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
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
mod prehash;
pub(crate) mod readback;
mod reserve;
mod sign_artifacts;
pub(crate) mod state;
mod volumes;

pub use collect::Symlinks;
pub use error::{PackError, Refusal, SourceProblem};
pub use head::head_level;
pub use reserve::HeadRoom;
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
    /// The room reserved for the head is half the estimate, so the head overflows it and
    /// the payload must be moved.
    #[cfg(feature = "fault-injection")]
    HeadOverflow,
    /// The room reserved for the head is far more than a padding frame may fill, so the
    /// payload must be moved back to the head.
    #[cfg(feature = "fault-injection")]
    HeadRoomSurplus,
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
    /// Where the head went: in a single bundle file, or in volume 1 of a volume set (always
    /// given by [`pack`]).
    pub head_room: Option<HeadRoom>,
    /// Source bytes read before the payload pass, to know a hash before the bytes are
    /// written (a delta's unchanged candidates, artifacts with generated checksum
    /// signatures); those of them the payload carries are read twice.
    pub prehashed_bytes: u64,
    /// Source bytes packed a second time because a volume set's head did not fit the room
    /// reserved for it in volume 1 (the set was written again, head first; 0: it fit).
    pub repacked_bytes: u64,
}

/// Packs `opts.sources` into a new bundle at `out`, signed by every key in `signers`
/// (the first also signs the checksum list). With [`Overwrite::NoClobber`] an existing `out`
/// is refused ([`Error::OutputExists`]). Before any source file's content is read, the
/// destination must have room for the bundle's size bound ([`PackError::NoRoom`],
/// [`PackError::FileTooLarge`]), and the tree must be within the format's entry limit.
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
    // The exact check (`Packer::run`) comes after the walk, which reads metadata only, and
    // before any content is read, except a delta's candidate files and --sign-artifacts'
    // files: only then does an early walk bound the size first. Elsewhere it would stat
    // every file a second time (0.7 s of 3.9 s for 200,000 small files).
    let mut bound = 0;
    if opts.base.is_some() || opts.sign_artifacts {
        bound = preflight::estimate(opts, signers.len()).map_err(as_source_error)?.bound;
        if !skip_space_check(opts) {
            let (total, largest) = volumes::room_needed(opts.volumes, bound);
            preflight::check_room(out, total, largest)?;
        }
    }
    let progress = &Counted::new(progress);
    Packer { opts, signers, out, progress, bound: AtomicU64::new(bound) }.run(overwrite)
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
        // Files are learnt while walking, sizes from each file's metadata: neither total is
        // known until the walk ends. No content is read here (see `reserve`).
        self.progress.start("walking", 0, 0);
        let (mut manifest, mut sources) = collect::collect(self.opts, self.progress).map_err(as_source_error)?;
        let mut prehashed_bytes = 0;
        // Lives until the bundle is written: it holds the generated checksum signatures.
        let _generated = if self.opts.sign_artifacts {
            // A checksum signature precedes its artifact in the payload (FORMAT.md §6.4) and
            // holds the artifact's hash: every artifact is hashed first.
            let linked = linked_signatures(&manifest);
            prehashed_bytes += self.prehash(&mut manifest, &mut sources, |i, _| !linked[i])?;
            let work_dir = parent_dir(self.out);
            let signed =
                sign_artifacts::add_checksum_signatures(&mut manifest, &mut sources, &self.signers[0], work_dir);
            // Written beside the bundle, so an I/O error there is the destination's.
            Some(signed.map_err(|e| self.destination_error(e, 0))?)
        } else {
            None
        };
        if let Some(base) = &self.opts.base {
            // Whether a file is carried depends on its hash: a file that may equal the base's
            // (same path, size and mode) is hashed first; only if it differs is it read again.
            let held = held_entries(base);
            let candidate = |_: usize, e: &Entry| held.get(e.path.as_str()).is_some_and(|b| same_shape(b, e));
            prehashed_bytes += self.prehash(&mut manifest, &mut sources, candidate)?;
            omit_held(&mut manifest, base, |i| sources.items[i].hashed);
        }
        reserve::fill_placeholders(&mut manifest, |i| sources.items[i].hashed);
        // Encoded (and checked against the format's rules) before anything is written: the
        // hashes still to come change neither its length nor its validity.
        let manifest_bytes = self.encode(&manifest)?;
        preflight::check_limits(&manifest, manifest_bytes.len() as u64, &self.signers[0])?;
        // Again, exactly now (a delta's carried entries are known, the manifest's length):
        // still nothing written.
        let bound = preflight::bound_of(&manifest, manifest_bytes.len() as u64, self.signers.len());
        self.bound.store(bound, Ordering::Relaxed);
        if !skip_space_check(self.opts) {
            let (total, largest) = volumes::room_needed(self.opts.volumes, bound);
            preflight::check_room(self.out, total, largest)?;
        }
        let reserved = self.reserve(&manifest, &manifest_bytes)?;
        drop(manifest_bytes);
        let mut repacked_bytes = 0;
        let (bundle_bytes, read_back, volumes, head_room) = match self.opts.volumes {
            Some(v) => {
                let written = self.write_volume_set(v, overwrite, &mut manifest, &mut sources, reserved)?;
                repacked_bytes = written.repacked;
                (written.bytes, written.read_back, written.paths, written.head_room)
            }
            None => {
                let written = self.write_bundle(overwrite, &mut manifest, &sources, reserved)?;
                (written.bytes, written.read_back, Vec::new(), written.head_room)
            }
        };
        self.progress.finish();
        let manifest_digest = Digest::of(&self.encode(&manifest)?);
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
            head_room: Some(head_room),
            prehashed_bytes,
            repacked_bytes,
        })
    }

    /// The manifest's canonical encoding; a manifest that breaks the format's rules is the
    /// pack's error (the sources cannot be packed as they are).
    fn encode(&self, manifest: &Manifest) -> Result<Vec<u8>> {
        manifest::encode(manifest).map_err(|r| match r {
            Reject::Manifest(problem) => Error::Pack(PackError::InvalidManifest(problem)),
            other => Error::Rejected(other),
        })
    }

    /// The room to reserve for the head frame and its padding (see `reserve`).
    fn reserve(&self, manifest: &Manifest, manifest_bytes: &[u8]) -> Result<u64> {
        let estimate = self.estimate_head(manifest, manifest_bytes)?;
        #[cfg(feature = "fault-injection")]
        match self.opts.fault {
            Some(PackFault::HeadOverflow) => return Ok(estimate / 2),
            Some(PackFault::HeadRoomSurplus) => return Ok(2 * estimate + 4 * crate::format::head::PADDING_FLOOR),
            _ => {}
        }
        Ok(reserve::reserve_for(estimate))
    }

    /// Writes the bundle durably (see [`write_atomic`]), filling in the manifest's hashes
    /// as the payload is read.
    fn write_bundle(
        &self,
        overwrite: Overwrite,
        manifest: &mut Manifest,
        sources: &collect::Sources,
        reserved: u64,
    ) -> Result<WrittenBundle> {
        let mut bundle_bytes = 0;
        let mut read_back = None;
        let mut head_room = None;
        // A bundle holds nothing secret and is meant to be read by auditors: 0644.
        write_atomic(self.out, 0o644, overwrite, |file| {
            // Classified here, while the bytes written can still be counted.
            let written = self
                .write_file(file, manifest, sources, reserved)
                .map_err(|e| self.destination_error(e, file.metadata().map_or(0, |m| m.len())));
            let (bytes, placed) = written?;
            (bundle_bytes, head_room) = (bytes, Some(placed));
            self.inject_fault(file)?;
            if self.opts.verify_written {
                read_back = Some(self.reading_back(manifest, |digest| self.read_back(file, digest))?);
            }
            Ok(())
        })
        // After the closure: the final sync, the rename or the directory's sync failed, with
        // the whole bundle written.
        .map_err(|e| self.destination_error(e, bundle_bytes))?;
        let head_room = head_room.ok_or_else(|| Error::Internal("the bundle was written without its head".into()))?;
        Ok(WrittenBundle { bytes: bundle_bytes, read_back, head_room })
    }

    /// Writes the payload after `reserved` bytes of room, then the head into that room
    /// (see `reserve`); the file's length and where the head went.
    fn write_file(
        &self,
        file: &File,
        manifest: &mut Manifest,
        sources: &collect::Sources,
        reserved: u64,
    ) -> Result<(u64, HeadRoom)> {
        let io_err = |e| Error::io(self.out, e);
        (&*file).seek(SeekFrom::Start(reserved)).map_err(io_err)?;
        // The bundle is flushed to the device while it is written (see `writeback`), so
        // the final fsync waits for the last few megabytes rather than the whole bundle.
        let syncer = Syncer::start(SyncScope::File);
        let mut w = BufWriter::with_capacity(BUNDLE_BUF, Writeback::at(file, reserved).with_syncer(syncer.handle()));
        // The payload holds the carried entries (all of them, unless this is a delta).
        self.progress.start("packing", manifest.carried_size(), manifest.carried_count() as u64);
        let digests = self.write_payload(&mut w, manifest, sources)?;
        w.flush().map_err(io_err)?;
        drop(w);
        syncer.finish().map_err(io_err)?;
        let payload_end = file.metadata().map_err(io_err)?.len();
        for (i, digest) in manifest.payload_order().into_iter().zip(digests) {
            manifest.entries[i].sha256 = digest;
        }
        let manifest_bytes = self.encode(manifest)?;
        let mut room = reserve::RoomWriter::new(file, reserved);
        self.write_head(&mut room, manifest, manifest_bytes)?;
        let placed = room.place(payload_end).map_err(io_err)?;
        Ok((file.metadata().map_err(io_err)?.len(), placed))
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
    /// Runs `read_back` (of a bundle file or a volume set) with the digest of `manifest`,
    /// which is set aside meanwhile ([`readback::set_aside`]: two decoded manifests would be
    /// hundreds of megabytes at a million entries) and replaced by the one read back.
    fn reading_back(
        &self,
        manifest: &mut Manifest,
        read_back: impl FnOnce(&Digest) -> Result<(Duration, Manifest)>,
    ) -> Result<Duration> {
        let digest = Digest::of(&self.encode(manifest)?);
        readback::set_aside(manifest);
        let (took, read) = read_back(&digest)?;
        *manifest = read;
        Ok(took)
    }

    fn read_back(&self, file: &File, digest: &Digest) -> Result<(Duration, Manifest)> {
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

/// What writing a single bundle file produced.
struct WrittenBundle {
    bytes: u64,
    /// How long `--verify-written` took.
    read_back: Option<Duration>,
    head_room: HeadRoom,
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

/// The base's entries by path.
fn held_entries(base: &PackBase) -> HashMap<&str, &Entry> {
    base.entries.iter().map(|e| (e.path.as_str(), e)).collect()
}

/// Whether two entries agree in everything but content: size and mode.
fn same_shape(a: &Entry, b: &Entry) -> bool {
    a.size == b.size && a.mode == b.mode
}

/// Whether each entry is a linked signature of another (`link_signatures` ran).
fn linked_signatures(manifest: &Manifest) -> Vec<bool> {
    let mut linked = vec![false; manifest.entries.len()];
    for e in &manifest.entries {
        for s in &e.signatures {
            let found = manifest.entries.binary_search_by(|x| x.path.as_str().as_bytes().cmp(s.as_str().as_bytes()));
            if let Ok(j) = found {
                linked[j] = true;
            }
        }
    }
    linked
}

/// Marks as not carried every entry the base holds exactly (path, size, SHA-256 and mode),
/// among those whose hash is known (`hashed`: the others are placeholders still, of files
/// the base cannot hold); an artifact and its linked signatures stay together: if any of
/// them changed, all are carried (FORMAT.md §6.3), so the payload's artifact checks still
/// see whole groups.
fn omit_held(manifest: &mut Manifest, base: &PackBase, hashed: impl Fn(usize) -> bool) {
    let held = held_entries(base);
    for (i, e) in manifest.entries.iter_mut().enumerate() {
        e.carried = !(hashed(i) && held.get(e.path.as_str()).is_some_and(|b| same_shape(b, e) && b.sha256 == e.sha256));
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
    use std::fs;

    use super::*;
    use crate::io::tuning::READ_AHEAD_MAX_BYTES;
    use crate::progress::NoProgress;

    /// Options fit for tests, without sources.
    pub(crate) fn options() -> PackOptions {
        PackOptions { level: 1, threads: 1, ..PackOptions::new(Vec::new(), "test", 1, 1_700_000_000) }
    }

    /// Bytes read of each source file under `dir` so far, by path (the record is shared by
    /// every test, each looks only under its own directory).
    fn reads_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u64>> {
        let mut by_path: BTreeMap<PathBuf, Vec<u64>> = BTreeMap::new();
        for (path, bytes) in crate::io::sync::lock(&payload::reads::READ).iter() {
            if path.starts_with(dir) {
                by_path.entry(path.clone()).or_default().push(*bytes);
            }
        }
        by_path
    }

    /// A tree with files on both payload paths (read ahead whole, and streamed), one empty.
    fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let large = READ_AHEAD_MAX_BYTES as usize * 3 + 11;
        let files: Vec<(PathBuf, Vec<u8>)> = vec![
            (dir.join("a/one"), b"one\n".to_vec()),
            (dir.join("a/empty"), Vec::new()),
            (dir.join("b/large"), (0..large).map(|i| (i * 13 % 251) as u8).collect()),
            (dir.join("b/small"), vec![b'x'; 4000]),
            (dir.join("c"), b"see\n".to_vec()),
        ];
        for (path, content) in &files {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        files
    }

    fn pack_dir(src: &Path, out: &Path, key: &SecretKey, base: Option<PackBase>) -> PackReport {
        let opts = PackOptions { sources: vec![src.to_owned()], verify_written: true, base, ..options() };
        pack(&opts, std::slice::from_ref(key), out, Overwrite::NoClobber, &NoProgress).unwrap()
    }

    /// A plain pack reads every byte of every source file exactly once (the empty file not
    /// at all: its hash is known), and the bundle it writes verifies (`verify_written`).
    #[test]
    fn a_plain_pack_reads_each_source_byte_once() {
        let (src, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let files = tree(src.path());
        let key = SecretKey::generate("t");
        let report = pack_dir(src.path(), &out.path().join("b.airlock"), &key, None);
        assert_eq!(report.prehashed_bytes, 0);
        assert!(report.read_back.is_some());
        let reads = reads_under(src.path());
        for (path, content) in &files {
            // The empty file too is opened once (and found still empty).
            assert_eq!(reads.get(path).cloned().unwrap_or_default(), [content.len() as u64], "{}", path.display());
        }
        assert_eq!(report.head_room.map(|h| h.moved), Some(0));
    }

    /// A volume set reads every byte of every source file exactly once too: volume 1 starts
    /// with the head's room, as a bundle file does, and the set it writes verifies
    /// (`verify_written`: every block, parity included, against the signed table).
    #[test]
    fn a_volume_set_reads_each_source_byte_once() {
        let (src, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut files = tree(src.path());
        // Incompressible, so the set spans several volumes.
        let mut state = 1u64;
        let random: Vec<u8> = (0..(5 << 20) / 8)
            .flat_map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (state >> 11).to_le_bytes()
            })
            .collect();
        fs::write(src.path().join("random"), &random).unwrap();
        files.push((src.path().join("random"), random));
        let key = SecretKey::generate("t");
        let volumes = Some(VolumeOptions { size: 2 << 20, parity: 1 });
        let opts = PackOptions { sources: vec![src.path().to_owned()], verify_written: true, volumes, ..options() };
        let report =
            pack(&opts, std::slice::from_ref(&key), &out.path().join("set"), Overwrite::NoClobber, &NoProgress)
                .unwrap();
        assert_eq!((report.prehashed_bytes, report.repacked_bytes), (0, 0));
        assert!(report.read_back.is_some());
        assert!(report.volumes.len() >= 4, "{:?}", report.volumes);
        let reads = reads_under(src.path());
        for (path, content) in &files {
            assert_eq!(reads.get(path).cloned().unwrap_or_default(), [content.len() as u64], "{}", path.display());
        }
        let placed = report.head_room.expect("a set reports its head room");
        assert_eq!((placed.moved, placed.head + placed.padding), (0, placed.reserved), "{placed:?}");
    }

    /// A delta: a file that may equal the base's (same path, size and mode) is hashed
    /// first; unchanged, it is not carried and was read once; changed in content but not in
    /// size, it is carried and read twice; a new file or one of another size is read once.
    #[test]
    fn a_delta_reads_only_changed_same_size_files_twice() {
        let (src, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        tree(src.path());
        let key = SecretKey::generate("t");
        let first = pack_dir(src.path(), &out.path().join("1.airlock"), &key, None);
        fs::write(src.path().join("b/small"), vec![b'y'; 4000]).unwrap();
        fs::write(src.path().join("c"), b"longer now\n").unwrap();
        fs::write(src.path().join("d"), b"new\n").unwrap();
        let before = reads_under(src.path());
        let base = PackBase {
            mirror: MirrorId([1; 16]),
            manifest: first.manifest_digest,
            entries: first.manifest.entries.clone(),
        };
        let second = pack_dir(src.path(), &out.path().join("2.airlock"), &key, Some(base));
        let after = reads_under(src.path());
        let read = |rel: &str| {
            let path = src.path().join(rel);
            after.get(&path).map_or(0, Vec::len) - before.get(&path).map_or(0, Vec::len)
        };
        assert_eq!([read("a/one"), read("b/large")], [1, 1], "unchanged: hashed only");
        assert_eq!(read("a/empty"), 0, "empty and unchanged: its hash is known, it is not opened");
        assert_eq!(read("b/small"), 2, "changed, same size: hashed, then packed");
        assert_eq!([read("c"), read("d")], [1, 1], "resized or new: packed only");
        let carried: Vec<&str> =
            second.manifest.entries.iter().filter(|e| e.carried).map(|e| e.path.as_str()).collect();
        assert_eq!(carried, ["b/small", "c", "d"]);
        let large = READ_AHEAD_MAX_BYTES * 3 + 11;
        assert_eq!(second.prehashed_bytes, 4 + large + 4000);
    }
}
