//! The bundle verifier: FORMAT.md §8, in one place.
//!
//! ```text
//! Bundle::open(path)                 §8 step 1: the head frame, member by member
//!   .verify(&VerifyOptions)          §8 steps 2-5: signatures under the policy, manifest,
//!                                    checksum list, freshness against a History
//!   -> VerifiedBundle                (only `verify` makes one)
//!   .stream_into(sink, progress)     §8 step 6: every payload member, artifact rules
//! ```
//!
//! [`Bundle::open`] reads only the head frame, so [`Bundle::evaluate_signatures`] (`inspect`)
//! costs the same whatever the payload size. [`Bundle::verify`] runs steps 2 to 5 and is the
//! only way to get a [`VerifiedBundle`], whose [`stream_into`](VerifiedBundle::stream_into)
//! then streams every payload member to a [`PayloadSink`] through the policy's artifact
//! rules, checking that each is exactly the next manifest entry with the canonical header,
//! the declared size and the declared SHA-256, and that the archive ends exactly where the
//! format says. `verify`, `import`, and `sign` (before it vouches) all run this procedure;
//! every failure is a [`Reject`] naming the member.
//!
//! Inside: `frames.rs`, the zstd frame reader; `pipeline.rs`, the payload threads (with a
//! diagram); `sink.rs`, [`PayloadSink`] and [`NullSink`]; `artifacts.rs`, the artifact-rule
//! sink; [`freshness`], step 5 against a [`History`].

mod artifacts;
mod frames;
pub mod freshness;
mod pipeline;
mod producers;
mod repository;
mod sink;
pub mod source;
pub mod volumes;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

pub use freshness::{GapPolicy, History, DEFAULT_CLOCK_SKEW};
pub use sink::{NullSink, PayloadSink};
pub use source::BundleSource;
pub use volumes::{VolumeCheck, VolumeNotes, VolumeProblem, VolumeSet, VolumeState};

use crate::error::{malformed, Error, Reject, Result};
use crate::format::head::{self, HeadDecoder, HeadMembers};
use crate::format::manifest::{self, Manifest, ManifestError};
use crate::format::peek::peek_channel_created;
use crate::format::sums::for_each_sums_line;
use crate::format::tar::{self, Next, BLOCK};
use crate::format::{DATA_DIR, MANIFEST_MEMBER, MAX_PAYLOAD_BYTES, SUMS_MEMBER, ZSTD_MAX_EXPANSION};
use crate::io::digest::{BackgroundHasher, Digest, Hasher};
use crate::io::tuning::HEAD_HASH_CHUNK;
use crate::keys::ed25519::StrictStream;
use crate::keys::{self, KeyId};
use crate::policy::{Policy, SignatureStatus, Trust, TrustReport};
use crate::producer::{ProducerReport, Times};
use crate::progress::Progress;
use artifacts::ArtifactSink;
use frames::Frames;
use freshness::{Clock, Freshness};

/// The head of a bundle, read but not yet verified.
#[derive(Clone, Debug)]
pub struct Head {
    /// The exact manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// SHA-256 of the manifest bytes: the bundle's identity in the mirror and in `previous`.
    pub manifest_digest: Digest,
    /// The manifest signatures, in member order (sorted by key id).
    pub signatures: Vec<keys::Signature>,
    /// The `airlock/SHA256SUMS.sig` member: its signature lines, and the checksum list
    /// after them by length and SHA-256 only.
    pub sums: SumsMember,
    /// Length of the head frame in the bundle file.
    pub head_frame_len: u64,
}

/// The `airlock/SHA256SUMS.sig` member as read: the signature lines, and the checksum list
/// after them by its length and SHA-256, not its bytes. A valid list is exactly the one
/// derived from the verified manifest (§5), so a reader regenerates it, line by line, to
/// compare (by digest) and to verify its signature, and need not hold a second copy of a
/// list as long as the manifest (about 100 MB for a million entries). Once the bundle
/// verified, [`write_to`](SumsMember::write_to) writes the member's exact bytes.
#[derive(Clone, Debug)]
pub struct SumsMember {
    /// The comment and signature lines, as read (with their newlines).
    signature_lines: Vec<u8>,
    /// Length of the checksum list after them.
    list_len: u64,
    /// SHA-256 of the checksum list after them.
    list_digest: Digest,
}

impl SumsMember {
    /// The member's length in bytes.
    pub fn len(&self) -> u64 {
        self.signature_lines.len() as u64 + self.list_len
    }

    /// Whether the member is empty (never, for a member that parses).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The member's signature (who signed the checksum list), not verified.
    pub fn signature(&self) -> Result<keys::Signature> {
        keys::parse_embedded(&self.signature_lines)
            .map(|(sig, _)| sig)
            .map_err(|e| malformed(SUMS_MEMBER, e.to_string()))
    }

    /// Writes the member's bytes, the list regenerated from `manifest`: exactly what was read
    /// once [`Bundle::verify`] accepted the bundle with this manifest (it compared them).
    pub fn write_to(&self, manifest: &Manifest, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.signature_lines)?;
        for_each_sums_line(manifest, |line| w.write_all(line))?;
        w.flush()
    }

    /// The member's bytes (see [`write_to`](Self::write_to)).
    pub fn to_bytes(&self, manifest: &Manifest) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() as usize);
        // Writing to a Vec cannot fail.
        let _ = self.write_to(manifest, &mut out);
        out
    }
}

/// An open bundle positioned after its head frame, not yet verified.
pub struct Bundle {
    path: PathBuf,
    frames: Frames,
    head: Head,
    /// The bundle file's length when it was opened (`None` for a pipe: §8 step 3's bound
    /// on the declared sizes needs it and is skipped).
    file_len: Option<u64>,
    /// A volume set: `frames` then holds only the head copy; the table is checked and the
    /// data bodies streamed once the head verified.
    volumes: Option<VolumeSet>,
}

/// What a bundle is verified against.
#[derive(Clone, Debug)]
pub struct VerifyOptions<'a> {
    /// The trust policy: signers per channel, revocations, maximum age, artifact rules.
    pub policy: &'a Policy,
    /// What was imported before (empty for a reader without a mirror).
    pub history: History,
    /// The time to check expiry and age against (Unix seconds); the clock floor of the
    /// bundle's channel in the history can only move it later.
    pub now: u64,
    /// Allowance for clock error, in seconds.
    pub clock_skew: u64,
    /// Whether a gap in the channel's sequence (or a broken `previous` link) rejects.
    pub gaps: GapPolicy,
}

impl<'a> VerifyOptions<'a> {
    /// Verification against `policy` at time `now`, with an empty history, the default
    /// clock skew, and gaps refused: what `airlock verify` does.
    pub fn new(policy: &'a Policy, now: u64) -> VerifyOptions<'a> {
        VerifyOptions {
            policy,
            history: History::default(),
            now,
            clock_skew: DEFAULT_CLOCK_SKEW,
            gaps: GapPolicy::Refuse,
        }
    }
}

/// A head that passed §8 steps 1 to 4: signed by enough trusted keys, a valid manifest, and
/// a checksum list that matches it. Freshness (step 5) is not yet decided.
#[derive(Debug)]
pub struct AuthenticHead {
    manifest: Manifest,
    manifest_digest: Digest,
    trust: TrustReport,
}

impl AuthenticHead {
    /// The decoded, verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The decoded, verified manifest, kept once the rest of the head is done with.
    pub fn into_manifest(self) -> Manifest {
        self.manifest
    }

    /// SHA-256 of the manifest bytes.
    pub fn manifest_digest(&self) -> Digest {
        self.manifest_digest
    }

    /// Every signature's status and the trusted keys that signed validly.
    pub fn trust(&self) -> &TrustReport {
        &self.trust
    }
}

/// A bundle whose head passed every check of FORMAT.md §8 steps 1 to 5. Only
/// [`Bundle::verify`] makes one; its payload is checked (step 6) by
/// [`stream_into`](VerifiedBundle::stream_into).
///
/// Its fields are private, so a value cannot be forged:
///
/// ```compile_fail
/// use airlock::verify::VerifiedBundle;
/// fn forge(manifest: airlock::format::manifest::Manifest) -> VerifiedBundle<'static> {
///     VerifiedBundle { manifest }
/// }
/// ```
///
/// and what it knows is read through accessors; the fields of the old `Verified` are gone:
///
/// ```compile_fail
/// fn sequence(v: &airlock::verify::VerifiedBundle<'_>) -> u64 {
///     v.manifest.sequence
/// }
/// ```
///
/// ```compile_fail
/// use airlock::verify::Verified;
/// ```
///
/// (The accessor compiles:)
///
/// ```
/// fn sequence(v: &airlock::verify::VerifiedBundle<'_>) -> u64 {
///     v.manifest().sequence
/// }
/// ```
pub struct VerifiedBundle<'a> {
    path: PathBuf,
    frames: Frames,
    head: Head,
    authentic: AuthenticHead,
    freshness: Freshness,
    policy: &'a Policy,
    volume_notes: VolumeNotes,
    /// The clock producer signatures are judged against.
    times: Times,
}

impl Bundle {
    /// Opens a bundle file and reads its head frame (§8 step 1).
    pub fn open(path: &Path) -> Result<Bundle> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Bundle::from_file(file, path)
    }

    /// Opens a bundle from any source (§8 step 1): a file (a volume is read as a set of
    /// one), a pipe or standard input, or a volume set.
    pub fn open_source(source: &BundleSource) -> Result<Bundle> {
        match source {
            BundleSource::File(path) => {
                // A file ending with a volume trailer is one volume, unless its length shows
                // it is the data volumes concatenated (`cat NAME.vol*.airlock`): that is read
                // as one bundle, its trailers skipped.
                if volumes::is_volume_file(path)? {
                    return Bundle::open_volumes(std::slice::from_ref(path), false);
                }
                let file = File::open(path).map_err(|e| Error::io(path, e))?;
                let meta = file.metadata().map_err(|e| Error::io(path, e))?;
                if meta.file_type().is_fifo() {
                    return Bundle::from_stream(Box::new(file), path);
                }
                Bundle::from_file(file, path)
            }
            BundleSource::Stdin => Bundle::from_stream(Box::new(std::io::stdin()), Path::new(source::STDIN_ARG)),
            BundleSource::Volumes(paths) => Bundle::open_volumes(paths, false),
            BundleSource::VolumesChecked(paths) => Bundle::open_volumes(paths, true),
        }
    }

    /// A bundle read from a pipe: its length is unknown.
    fn from_stream(input: frames::ByteSource, path: &Path) -> Result<Bundle> {
        let mut frames = Frames::new(input);
        let head = read_head(&mut frames)?;
        Ok(Bundle { path: path.to_owned(), frames, head, file_len: None, volumes: None })
    }

    /// The volumes of a set: the head is the copy in their trailers. `every_block`: check
    /// each block against its signed hash as it is read.
    fn open_volumes(paths: &[PathBuf], every_block: bool) -> Result<Bundle> {
        let (set, head) = volumes::open_set(paths, every_block)?;
        let path = paths.first().cloned().unwrap_or_default();
        Ok(Bundle { path, frames: Frames::new(Box::new(std::io::empty())), head, file_len: None, volumes: Some(set) })
    }

    /// [`Bundle::open`] on a file already open (`sign` copies the payload from the very file
    /// it verified).
    pub(crate) fn from_file(file: File, path: &Path) -> Result<Bundle> {
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::NotAFile { path: path.to_owned() });
        }
        if volumes::is_volume(&file, path)? {
            return Err(Reject::Volumes(Box::new(VolumeProblem::VolumeNotBundle { path: path.to_owned() })).into());
        }
        let mut frames = Frames::new(Box::new(file));
        let head = read_head(&mut frames)?;
        Ok(Bundle { path: path.to_owned(), frames, head, file_len: Some(meta.len()), volumes: None })
    }

    /// The volume set this bundle is read from, if any.
    pub fn volume_set(&self) -> Option<&VolumeSet> {
        self.volumes.as_ref()
    }

    /// For the volumes given: §8 steps 1 to 4 on the head, then the signed volume table
    /// and each volume's length and blocks (§14.5), without streaming: what `verify` does
    /// with one volume of a larger set. `None` when the bundle is not a volume set.
    pub fn check_volumes(&self, policy: &Policy) -> Result<Option<VolumeCheck>> {
        let (Some(set), Some((table, version))) = (&self.volumes, self.verified_table(policy)?) else {
            return Ok(None);
        };
        Ok(Some(set.check_bodies(table, version)?))
    }

    /// For a volume set: §8 steps 1 to 4 on the head, then its signed volume table (§14.3).
    /// `None` when the bundle is not a volume set.
    pub fn volume_table(&self, policy: &Policy) -> Result<Option<crate::format::volume::Table>> {
        Ok(self.verified_table(policy)?.map(|(table, _)| table))
    }

    /// [`Bundle::volume_table`], with the verified manifest's format version.
    fn verified_table(&self, policy: &Policy) -> Result<Option<(crate::format::volume::Table, u64)>> {
        let Some(set) = &self.volumes else { return Ok(None) };
        let bytes = &self.head.manifest_bytes;
        let (channel, created) = peek_channel_created(bytes)?;
        let trust = policy.check_head(bytes, MANIFEST_MEMBER, &self.head.signatures, &channel, created)?;
        let manifest = manifest::decode(bytes)?;
        if manifest.channel != channel || manifest.created != created {
            return Err(Reject::Manifest(ManifestError::PeekMismatch).into());
        }
        let signer_keys = policy.channel_trust(&channel)?;
        check_sums(&self.head.sums, &manifest, signer_keys, &trust)?;
        Ok(Some((set.table(self.head.manifest_digest, signer_keys, &trust)?, manifest.version)))
    }

    /// The bundle file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The head, unverified.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Decodes the manifest WITHOUT checking signatures: for display only.
    pub fn unverified_manifest(&self) -> Result<Manifest> {
        Ok(manifest::decode(&self.head.manifest_bytes)?)
    }

    /// Evaluates the manifest signatures against `policy` as §8 step 2 does, without deciding
    /// anything (for `inspect`): every signature's status and whether the threshold is met.
    pub fn evaluate_signatures(&self, policy: &Policy) -> Result<TrustReport> {
        let bytes = &self.head.manifest_bytes;
        let (channel, created) = peek_channel_created(bytes)?;
        Ok(policy.evaluate_head(bytes, &self.head.signatures, &channel, created))
    }

    /// Runs FORMAT.md §8 steps 2 to 5 on the head read by [`Bundle::open`] (step 1).
    pub fn verify<'a>(self, options: &VerifyOptions<'a>) -> Result<VerifiedBundle<'a>> {
        self.verify_observed(options, |_| {})
    }

    /// [`Bundle::verify`], showing `on_authentic` the head once steps 1 to 4 passed, before
    /// freshness is decided: so an importer can record which bundle a stale one was.
    pub fn verify_observed<'a>(
        self,
        options: &VerifyOptions<'a>,
        on_authentic: impl FnOnce(&AuthenticHead),
    ) -> Result<VerifiedBundle<'a>> {
        // §8 step 1 ran in `Bundle::open` (`read_head`): the head members, with their limits
        // and canonical headers, and frame 1 ending right after the checksum list.
        let policy = options.policy;
        let Bundle { path, mut frames, head, file_len, volumes } = self;
        let bytes = &head.manifest_bytes;

        // §8 step 2: the trust rule for the channel read from the fixed layout, before any
        // decoding; every signature by a signer key must verify, revoked keys never count,
        // and enough distinct signer keys must have signed.
        let (channel, created) = peek_channel_created(bytes)?;
        let trust = policy.check_head(bytes, MANIFEST_MEMBER, &head.signatures, &channel, created)?;
        // A volume set: its signed table (§14.3), whose data lengths give step 3's bound.
        let table = match &volumes {
            Some(set) => Some(set.table(head.manifest_digest, policy.channel_trust(&channel)?, &trust)?),
            None => None,
        };

        // §8 step 3: only now decode the manifest (rules and paths checked by `decode`), and
        // hold it to what step 2 read before decoding.
        let manifest = manifest::decode(bytes)?;
        if manifest.channel != channel || manifest.created != created {
            return Err(Reject::Manifest(ManifestError::PeekMismatch).into());
        }
        // Volume trailers (skippable frames) exist from version 2 on (§3, §14.2), the padding
        // frame after the head from version 3 on (§3).
        if manifest.version >= manifest::VERSION_2 {
            frames.allow_trailers();
        }
        if manifest.version >= manifest::VERSION {
            frames.allow_padding(head.head_frame_len);
        }
        let payload_len = match (&table, file_len) {
            (Some(table), _) => volumes::data_length(table),
            (None, Some(len)) => len.saturating_sub(head.head_frame_len),
            // A pipe: its length is unknown, so only the format's limit applies (§8 step 3).
            (None, None) => u64::MAX / ZSTD_MAX_EXPANSION,
        };
        check_declared_sizes(&manifest, payload_len)?;

        // §8 step 4: the checksum list.
        check_sums(&head.sums, &manifest, policy.channel_trust(&channel)?, &trust)?;
        let mut volume_notes = VolumeNotes::default();
        if let (Some(set), Some(table)) = (volumes, table) {
            volume_notes = set.notes();
            frames = set.payload_frames(table, manifest.version, head.head_frame_len)?;
        }

        let authentic = AuthenticHead { manifest, manifest_digest: head.manifest_digest, trust };
        on_authentic(&authentic);

        // §8 step 5: freshness (expiry, clock floor, rollback, gaps, `previous`, max_age).
        let clock = Clock { now: options.now, skew: options.clock_skew };
        let freshness = freshness::check(
            &authentic.manifest,
            &authentic.manifest_digest,
            &options.history,
            clock,
            options.gaps,
            policy.max_age(),
        )?;
        let floor = options.history.clock_floor(&authentic.manifest.channel);
        let times = Times::new(options.now, floor, authentic.manifest.created, options.clock_skew);
        Ok(VerifiedBundle { path, frames, head, authentic, freshness, policy, volume_notes, times })
    }
}

impl<'a> VerifiedBundle<'a> {
    /// The bundle file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The head as read (the manifest bytes, signatures and checksum list that verified).
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The verified head: manifest, digest, trust report.
    pub fn authentic(&self) -> &AuthenticHead {
        &self.authentic
    }

    /// The decoded, verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.authentic.manifest
    }

    /// What reading a volume set found and rebuilt (missing volumes, damaged blocks),
    /// filled as the payload streams: read it after [`stream_into`](Self::stream_into).
    pub fn volume_notes(&self) -> VolumeNotes {
        self.volume_notes.clone()
    }

    /// SHA-256 of the manifest bytes.
    pub fn manifest_digest(&self) -> Digest {
        self.authentic.manifest_digest
    }

    /// Every signature's status and the trusted keys that signed validly.
    pub fn trust(&self) -> &TrustReport {
        &self.authentic.trust
    }

    /// True when the history already holds this manifest: importing it is a no-op, and
    /// step 5 was not applied.
    pub fn already_imported(&self) -> bool {
        self.freshness == Freshness::AlreadyImported
    }

    /// The operator overrides that made the bundle fresh (`allow-gap: ...`), for the log.
    pub fn overrides(&self) -> &[String] {
        match &self.freshness {
            Freshness::Fresh { overrides } => overrides,
            Freshness::AlreadyImported => &[],
        }
    }

    /// §8 step 6: streams the payload into `sink`, with the policy's artifact rules checked
    /// in the same pass, and checks the end of the archive, of the stream and of the file.
    /// Returns what the artifact rules checked and ignored, one line each.
    ///
    /// The sink sees content before it is verified (see [`PayloadSink`]): nothing it received
    /// may be used unless this returns `Ok`.
    pub fn stream_into(self, sink: &mut dyn PayloadSink, progress: &dyn Progress) -> Result<Vec<String>> {
        let report = self.stream_into_report(sink, progress)?;
        Ok(report.findings.iter().map(ToString::to_string).collect())
    }

    /// [`stream_into`](Self::stream_into), returning what the producer layer found as
    /// structured findings, with the trust material the rules that held used.
    pub fn stream_into_report(self, sink: &mut dyn PayloadSink, progress: &dyn Progress) -> Result<ProducerReport> {
        self.stream_keeping_head(sink, progress).map(|(report, _)| report)
    }

    /// [`stream_into_report`](Self::stream_into_report), handing the verified head back for
    /// what the caller prints or records afterwards, so it need not copy the manifest before
    /// streaming (a hundred megabytes for a million entries).
    pub fn stream_keeping_head(
        self,
        sink: &mut dyn PayloadSink,
        progress: &dyn Progress,
    ) -> Result<(ProducerReport, AuthenticHead)> {
        // The head (manifest bytes, checksum list: tens of megabytes for a large bundle) is
        // not needed while the payload streams.
        let VerifiedBundle { mut frames, head, authentic, policy, times, .. } = self;
        drop(head);
        let mut checked = ArtifactSink::new(sink, policy, &authentic.manifest, times)?;
        pipeline::stream_payload(&mut frames, &authentic.manifest, &mut checked, progress)?;
        // Material that streamed after its artifact, and the Debian chains, are decided now,
        // before anything the sink received can be used.
        let report = checked.end()?;
        Ok((report, authentic))
    }

    /// The clock producer signatures are judged against.
    pub fn times(&self) -> Times {
        self.times
    }
}

/// §8 step 1: decodes frame 1 and reads the head members with their limits and canonical
/// headers, as [`HeadDecoder`] decides; the frame must end right after the checksum list.
/// The manifest and the checksum list are hashed on threads of their own
/// ([`BackgroundHasher`]) while this one decompresses.
fn read_head(frames: &mut Frames) -> Result<Head> {
    std::thread::scope(|scope| read_head_in(frames, scope))
}

fn read_head_in<'scope>(frames: &mut Frames, scope: &'scope std::thread::Scope<'scope, '_>) -> Result<Head> {
    let at_start = "start of bundle";
    match frames.begin() {
        Ok(true) => {}
        Ok(false) => return Err(malformed(at_start, "file is empty")),
        Err(e) => return Err(tar::stream_error(e, at_start)),
    }
    let mut decoder = HeadDecoder::new();
    let mut manifest_hash = BackgroundHasher::new(scope);
    let mut list = None;
    let HeadMembers { manifest_bytes, signatures, sums } = loop {
        let at = decoder.position();
        let header = match tar::read_header(frames, &at)? {
            Next::Member(h) => h,
            Next::ZeroBlock => return Err(head::end_of_archive_in_head(&at)),
        };
        let size = decoder.check_header(&header)?;
        let content = if header.name == SUMS_MEMBER {
            let (lines, list_of) = read_sums(frames, size, scope)?;
            list = Some(list_of);
            lines
        } else {
            let hash = (header.name == MANIFEST_MEMBER).then_some(&mut manifest_hash);
            read_content(frames, size, &header.name, hash)?
        };
        read_padding(frames, size, &header.name)?;
        if let Some(members) = decoder.push(&header.name, content)? {
            break members;
        }
    };
    let (list_len, list_digest) = list.unwrap_or((0, Digest::of(b"")));
    let sums = SumsMember { signature_lines: sums, list_len, list_digest };
    let mut probe = [0u8; 1];
    match frames.read(&mut probe) {
        Ok(0) => {}
        Ok(_) => return Err(head::frame_continues()),
        Err(e) => return Err(tar::stream_error(e, "end of head frame")),
    }
    let head_frame_len = frames.offset().unwrap_or(0);
    let (manifest_digest, hashed) = manifest_hash.finish()?;
    debug_assert_eq!(hashed, manifest_bytes.len() as u64, "the manifest hashed is the manifest read");
    Ok(Head { manifest_digest, manifest_bytes, signatures, sums, head_frame_len })
}

/// Reads a head member's `size` bytes of content, feeding them to `hash` as they arrive if
/// one is given. The manifest's own limit depends on its version (FORMAT.md §11), so its
/// start is read first and the size checked against that limit before the rest. At most
/// 16 MiB is reserved before content arrives; the rest of a larger member gets its room once
/// those 16 MiB have, so a header that declares gigabytes costs little unless the stream
/// really delivers, and a real manifest of tens of megabytes is not copied by doubling.
fn read_content(
    frames: &mut Frames,
    size: u64,
    name: &str,
    mut hash: Option<&mut BackgroundHasher>,
) -> Result<Vec<u8>> {
    /// Bytes reserved before any content has arrived.
    const RESERVE_MAX: u64 = 16 << 20;
    let mut content = Vec::with_capacity(size.min(RESERVE_MAX) as usize);
    let mut read = |content: &mut Vec<u8>, len: u64| -> Result<()> {
        let Some(hash) = hash.as_deref_mut() else { return read_up_to(frames, content, len, name) };
        while (content.len() as u64) < len {
            let from = content.len();
            read_up_to(frames, content, len.min((from + HEAD_HASH_CHUNK) as u64), name)?;
            hash.update(&content[from..]);
        }
        Ok(())
    };
    if name == MANIFEST_MEMBER {
        let start = size.min(manifest::prefix_for(manifest::VERSION).len() as u64);
        read(&mut content, start)?;
        manifest::Limits::of_manifest(&content).check_manifest_len(size)?;
    }
    // The limit was checked (for the manifest above, for other members by their header).
    let first = size.min(RESERVE_MAX);
    read(&mut content, first)?;
    content.reserve_exact((size - first) as usize);
    read(&mut content, size)?;
    Ok(content)
}

/// Reads the checksum-list member of `size` bytes: its two signature lines are kept (the
/// first 4096 bytes at most: a signify comment is at most 1023 bytes, the signature line
/// 100), the list after them is hashed as it streams past, on a thread in `scope`. Returns
/// the signature lines and the list's length and SHA-256.
fn read_sums<'scope>(
    frames: &mut Frames,
    size: u64,
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<(Vec<u8>, (u64, Digest))> {
    const SIGNATURE_LINES_MAX: u64 = 4096;
    let mut start = Vec::new();
    read_up_to(frames, &mut start, size.min(SIGNATURE_LINES_MAX), SUMS_MEMBER)?;
    // The end of the second line; without one, everything read stays with the signature
    // lines, which then do not parse (checked in §8 step 4, as for any bad member).
    let lines_end = start.iter().enumerate().filter(|&(_, &b)| b == b'\n').nth(1).map_or(start.len(), |(at, _)| at + 1);
    let mut list = BackgroundHasher::new(scope);
    list.update(&start[lines_end..]);
    let mut listed = (start.len() - lines_end) as u64;
    start.truncate(lines_end);
    let mut rest = Read::take(&mut *frames, size - listed - start.len() as u64);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                list.update(&buf[..n]);
                listed += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(tar::stream_error(e, SUMS_MEMBER)),
        }
    }
    if start.len() as u64 + listed < size {
        return Err(Reject::Truncated { at: SUMS_MEMBER.to_owned() }.into());
    }
    let (digest, len) = list.finish()?;
    Ok((start, (len, digest)))
}

/// Reads from `frames` until `content` holds `len` bytes; the stream ending first is a
/// truncation at `at`.
fn read_up_to(frames: &mut Frames, content: &mut Vec<u8>, len: u64, at: &str) -> Result<()> {
    let missing = len.saturating_sub(content.len() as u64);
    let read = Read::take(&mut *frames, missing).read_to_end(content).map_err(|e| tar::stream_error(e, at))?;
    if (read as u64) < missing {
        return Err(Reject::Truncated { at: at.to_owned() }.into());
    }
    Ok(())
}

/// Reads the zero padding after a member's content.
fn read_padding(r: &mut impl Read, size: u64, at: &str) -> Result<()> {
    let mut pad = [0u8; BLOCK];
    let pad = &mut pad[..tar::padding(size)];
    tar::read_exact(r, pad, at)?;
    if pad.iter().any(|&b| b != 0) {
        return Err(malformed(at, "non-zero bytes in the padding after the content"));
    }
    Ok(())
}

/// §8 step 3, the sizes (FORMAT.md §11): the declared entry sizes must not add up to more
/// than the format allows, and the payload members they declare (each with at least a
/// 512-byte header and its padding, then the end-of-archive marker) must fit in what
/// `payload_frames` bytes of zstd frames can decompress to. Both are refused here, as
/// rejections, before an importer asks the file system for room it could never need; a
/// payload that cannot fit is reported as the truncation it is, at the first member that
/// cannot be complete (what streaming would find, without reading it).
fn check_declared_sizes(manifest: &Manifest, payload_frames: u64) -> Result<(), Reject> {
    let declared: u128 = manifest.entries.iter().map(|e| u128::from(e.size)).sum();
    if declared > u128::from(MAX_PAYLOAD_BYTES) {
        return Err(Reject::PayloadTooLarge { declared: declared.to_string(), entries: manifest.entries.len() });
    }
    let capacity = u128::from(payload_frames) * u128::from(ZSTD_MAX_EXPANSION);
    let mut least = 0u128;
    for i in manifest.payload_order() {
        let entry = &manifest.entries[i];
        least += (BLOCK + tar::padding(entry.size)) as u128 + u128::from(entry.size);
        if least > capacity {
            return Err(Reject::Truncated { at: format!("member {DATA_DIR}{}", entry.path) });
        }
    }
    if least + 2 * BLOCK as u128 > capacity {
        return Err(Reject::Truncated { at: "end of archive".to_owned() });
    }
    Ok(())
}

/// §8 step 4: the checksum list must be exactly the one derived from the manifest, and its
/// signer must be one of the keys that count toward the channel's threshold (a trusted,
/// unrevoked signer key of the rule with a valid manifest signature, as step 2 found them),
/// with a signature that verifies. So the auditor's stock-tool check (`signify -C` with a
/// trusted key) holds for every bundle this accepts.
///
/// The list is not held: it is regenerated from the manifest line by line, compared by
/// length and SHA-256 with the list read (equal digests mean equal lists), and its signature
/// verified over the regenerated lines in the same pass.
fn check_sums(sums: &SumsMember, manifest: &Manifest, signer_keys: &Trust, trust: &TrustReport) -> Result<()> {
    let (sig, rest) = keys::parse_embedded(&sums.signature_lines).map_err(|e| malformed(SUMS_MEMBER, e.to_string()))?;
    let signer = counted_signer(&sig, signer_keys, trust);
    let bad_signature = || Reject::BadSignature { key_id: sig.key_id(), what: SUMS_MEMBER.to_owned() };
    let mut stream = match &signer {
        Ok(key) => Some(StrictStream::new(key, sig.bytes()).map_err(|_| bad_signature())?),
        Err(_) => None,
    };
    let mut expected = Hasher::new();
    let regenerated: Result<(), std::convert::Infallible> = for_each_sums_line(manifest, |line| {
        expected.update(line);
        if let Some(stream) = &mut stream {
            stream.update(line);
        }
        Ok(())
    });
    let Ok(()) = regenerated;
    // Nothing of the message may sit in the signature lines (they end at the second newline).
    if !rest.is_empty() || expected.len() != sums.list_len || expected.finish() != sums.list_digest {
        return Err(malformed(SUMS_MEMBER, "checksum list does not match the manifest"));
    }
    signer?;
    stream.map_or(Ok(()), |s| s.finish().map_err(|_| bad_signature().into()))
}

/// The key of `sig`'s signer if it is a counted signer (§8 step 2: a signer key of the
/// rule with a valid manifest signature), else the rejection naming the counted signers.
fn counted_signer<'t>(
    sig: &keys::Signature,
    signer_keys: &'t Trust,
    trust: &TrustReport,
) -> Result<&'t keys::PublicKey> {
    let counted = |id: KeyId| trust.signatures.iter().any(|(k, status)| *k == id && *status == SignatureStatus::Valid);
    Some(sig.key_id()).filter(|&id| counted(id)).and_then(|id| signer_keys.key(id)).ok_or_else(|| {
        Reject::UntrustedSumsSigner {
            key_id: sig.key_id(),
            counted: trust.signatures.iter().map(|(k, _)| *k).filter(|&k| counted(k)).collect(),
        }
        .into()
    })
}

/// Checks that `sig` over `message` (the embedded signature member `what`) is by a counted
/// signer (§8 step 2) and verifies with its key: the rule for `SHA256SUMS.sig` (§5), and for
/// a volume set's `VOLUMES.sig` (§14).
pub(crate) fn verify_counted(
    sig: &keys::Signature,
    message: &[u8],
    what: &str,
    signer_keys: &Trust,
    trust: &TrustReport,
) -> Result<()> {
    let signer = counted_signer(sig, signer_keys, trust)?;
    signer.verify(message, sig).map_err(|_| Reject::BadSignature { key_id: sig.key_id(), what: what.to_owned() })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;

    use super::*;
    use crate::format::head::{sign_manifest, signature_comment, HeadWriter};
    use crate::format::manifest::{BundleId, Entry, Mode};
    use crate::format::path::RelPath;
    use crate::format::sums::sums_text;
    use crate::format::tar::write_member;
    use crate::format::DATA_DIR;
    use crate::keys::SecretKey;
    use crate::policy::Trust;
    use crate::progress::NoProgress;

    const CONTENT: &[u8] = b"payload\n";
    const NOW: u64 = 1_700_000_000;

    /// A one-file bundle written with the format module alone, and a policy trusting its key.
    fn bundle(dir: &Path) -> (PathBuf, Policy) {
        let key = SecretKey::generate("test");
        let entry = Entry {
            path: RelPath::new("a.txt").unwrap(),
            size: CONTENT.len() as u64,
            sha256: Digest::of(CONTENT),
            mode: Mode::Regular,
            signatures: vec![],
            carried: true,
        };
        let manifest = Manifest {
            version: manifest::VERSION,
            base: None,
            bundle_id: BundleId([1; 16]),
            created: NOW,
            expires: None,
            channel: "default".into(),
            sequence: 1,
            previous: None,
            label: None,
            meta: BTreeMap::new(),
            entries: vec![entry],
            removed: vec![],
        };
        let bytes = manifest::encode(&manifest).unwrap();
        let sums = sums_text(&manifest);
        let sums_sig = key.sign(&sums, &signature_comment(key.key_id())).to_file_string();
        let path = dir.join("b.airlock");
        let mut file = File::create(&path).unwrap();
        let head = HeadWriter::start(Vec::new(), 3, &bytes).unwrap();
        let head = head.signatures(&[sign_manifest(&key, &bytes)]).unwrap();
        file.write_all(&head.finish(&[sums_sig.as_bytes(), &sums]).unwrap()).unwrap();
        let mut payload = zstd::stream::write::Encoder::new(file, 3).unwrap();
        let name = format!("{DATA_DIR}a.txt");
        write_member(&mut payload, &name, CONTENT.len() as u64, 0o644, &mut &CONTENT[..], &mut [0; 512]).unwrap();
        payload.write_all(&[0; 2 * BLOCK]).unwrap();
        payload.finish().unwrap();
        (path, Policy::from_trust(Trust::new(vec![key.public_key()], 1).unwrap()))
    }

    /// A sink that fails or panics on the first content it gets.
    struct Breaking {
        panic: bool,
    }

    impl PayloadSink for Breaking {
        fn open(&mut self, _: &Entry) -> Result<()> {
            Ok(())
        }
        fn write(&mut self, _: &[u8]) -> Result<()> {
            if self.panic {
                panic!("sink bug");
            }
            Err(Error::NotAFile { path: "sink".into() })
        }
        fn close(&mut self, _: &Entry) -> Result<()> {
            Ok(())
        }
    }

    fn verified<'a>(path: &Path, policy: &'a Policy) -> VerifiedBundle<'a> {
        Bundle::open(path).unwrap().verify(&VerifyOptions::new(policy, NOW)).unwrap()
    }

    #[test]
    fn a_bundle_written_by_the_format_module_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (path, policy) = bundle(dir.path());
        let v = verified(&path, &policy);
        assert_eq!(v.manifest().entries.len(), 1);
        assert!(!v.already_imported());
        assert_eq!(v.stream_into(&mut NullSink, &NoProgress).unwrap(), Vec::<String>::new());
    }

    /// The expansion bound holds for the most compressible input there is, at the fastest
    /// and the strongest level: zeros, which zstd stores as RLE blocks.
    #[test]
    fn zstd_never_expands_beyond_the_bound() {
        let zeros = vec![0u8; 64 << 20];
        for level in [1, 19] {
            let compressed = zstd::bulk::compress(&zeros, level).unwrap();
            assert!(compressed.len() as u64 * ZSTD_MAX_EXPANSION >= zeros.len() as u64, "level {level}");
        }
    }

    #[test]
    fn declared_sizes_are_held_to_the_format_limit_and_the_bundle_length() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = bundle(dir.path());
        let mut manifest = Bundle::open(&path).unwrap().unverified_manifest().unwrap();
        assert!(check_declared_sizes(&manifest, 1).is_ok());
        let err = check_declared_sizes(&manifest, 0).unwrap_err();
        assert_eq!(err.to_string(), "member data/a.txt: bundle is truncated");
        manifest.entries[0].size = ZSTD_MAX_EXPANSION - 2 * BLOCK as u64;
        assert_eq!(check_declared_sizes(&manifest, 1).unwrap_err().to_string(), "end of archive: bundle is truncated");
        manifest.entries[0].size = MAX_PAYLOAD_BYTES + 1;
        let err = check_declared_sizes(&manifest, u64::MAX).unwrap_err();
        assert!(matches!(err, Reject::PayloadTooLarge { entries: 1, .. }), "{err}");
        assert_eq!(err.kind(), "payload_too_large");
    }

    #[test]
    fn the_sinks_own_error_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (path, policy) = bundle(dir.path());
        let err = verified(&path, &policy).stream_into(&mut Breaking { panic: false }, &NoProgress).unwrap_err();
        assert!(matches!(err, Error::NotAFile { .. }), "{err}");
    }

    #[test]
    fn a_panicking_sink_is_an_internal_error_not_a_rejection() {
        let dir = tempfile::tempdir().unwrap();
        let (path, policy) = bundle(dir.path());
        let err = verified(&path, &policy).stream_into(&mut Breaking { panic: true }, &NoProgress).unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err}");
        assert!(err.to_string().contains("payload sink thread panicked: sink bug"), "{err}");
    }
}
