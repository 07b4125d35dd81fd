//! Volume sets on the read side (FORMAT.md §14): find each volume's trailer from the end of
//! its file, refuse volumes of different bundles, check the signed table (`VOLUMES.sig`, by
//! a counted signer, naming this manifest), then read the data volumes' bodies in order as
//! one stream, rebuilding a missing block from the parity volumes (from blocks checked
//! against their signed SHA-256, and the rebuilt block checked too: a forged parity volume
//! can only cause a rejection). The blocks present stream unchecked (the payload's SHA-256s
//! check them) unless every block is asked to be checked
//! ([`BundleSource::VolumesChecked`](super::BundleSource::VolumesChecked)): what `verify`
//! and `import` do after a rejection, to find and rebuild a damaged block.
//!
//! ```text
//! open_set(paths)        trailers -> one bundle's volumes, its head copy (unverified)
//!   Bundle::verify       §8 steps 1-4 on the head copy, then prepare():
//!   prepare(..)          VOLUMES.sig verified and decoded; missing data volumes must be
//!                        no more than the parity volumes present
//!   -> SetReader         data bodies in order (block by block, rebuilt where needed),
//!                        read by the ordinary frame reader: §8 steps 5-6 unchanged
//! check_bodies(..)       a volume checked alone: its length and every block
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use super::frames::Frames;
use super::{read_head, verify_counted, Head};
use crate::error::{Error, Reject, Result};
use crate::format::manifest;
use crate::format::volume::{
    block_range, blocks_in, trailer_content_len, Footer, Kind, Table, VolumeId, BLOCK_SIZE, FOOTER_LEN,
    MAX_TRAILER_CONTENT, SKIPPABLE_HEADER_LEN, VOLUMES_MEMBER,
};
use crate::io::digest::{hash_into, hash_reader, Digest, Hasher, HashingReader};
use crate::io::parity;
use crate::keys::{self, KeyId};
use crate::policy::{Trust, TrustReport};

/// Why a volume set is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeProblem {
    /// A file given as a volume has no volume trailer.
    #[error("{}: not an airlock volume (no volume trailer at its end); give the volumes of one set, or one bundle", path.display())]
    NotAVolume {
        /// The file.
        path: PathBuf,
    },
    /// One volume given where a command takes a whole bundle file (`sign`).
    #[error("{} is one volume of a set, not a bundle file: concatenate the data volumes (cat NAME.vol*.airlock > B.airlock) and give that", path.display())]
    VolumeNotBundle {
        /// The volume.
        path: PathBuf,
    },
    /// No volume given has a readable trailer.
    #[error("no volume trailer could be read ({0}); the volumes are damaged or not airlock volumes")]
    NoReadableTrailer(String),
    /// Volumes of two bundles were given together.
    #[error(
        "{} belongs to bundle {bundle}, but {} belongs to bundle {other}; give the volumes of one bundle only",
        volume.display(),
        other_volume.display()
    )]
    OtherBundle {
        /// The volume of the other bundle.
        volume: PathBuf,
        /// Its bundle (manifest digest, channel and sequence).
        bundle: String,
        /// A volume of the set being read.
        other_volume: PathBuf,
        /// The set's bundle.
        other: String,
    },
    /// `VOLUMES.sig` is not a valid signed table.
    #[error("{}: {VOLUMES_MEMBER}: {problem}", volume.display())]
    Table {
        /// The volume whose trailer holds it.
        volume: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The table is signed by a key that is not a counted signer of the bundle.
    #[error("{VOLUMES_MEMBER} is signed by key {key_id}, which is not one of the trusted keys that validly signed the manifest")]
    UntrustedTableSigner {
        /// Its signer.
        key_id: KeyId,
    },
    /// More data volumes are missing or damaged than the parity volumes present can rebuild.
    #[error(
        "volume(s) {} missing or unusable{}; {} parity volume(s) present can rebuild at most {}: bring the missing volumes",
        missing.join(", "),
        if damaged.is_empty() { String::new() } else { format!(" ({})", damaged.join("; ")) },
        parity,
        parity
    )]
    Missing {
        /// The data volumes missing (or unusable).
        missing: Vec<String>,
        /// Why some of them are unusable.
        damaged: Vec<String>,
        /// Parity volumes present.
        parity: usize,
    },
    /// A volume checked alone does not match the signed table.
    #[error("{volume} ({}): {problem}", path.display())]
    Damaged {
        /// The volume.
        volume: String,
        /// Its file.
        path: PathBuf,
        /// What does not match (the bad blocks).
        problem: String,
    },
}

/// A volume file whose trailer was read (not yet checked against the signed table).
#[derive(Debug)]
pub struct VolumeFile {
    /// The file.
    pub path: PathBuf,
    /// The volume its footer claims to be.
    pub id: VolumeId,
    file_len: u64,
    trailer_len: u64,
    /// Where the head copy is in the file, and its length: it is read from there when
    /// needed, never held (tens of megabytes with many entries).
    head_at: u64,
    head_len: u64,
    table: Vec<u8>,
}

impl VolumeFile {
    /// Length of the file.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The manifest digest the table in its trailer names, unverified: only to find where
    /// an importer keeps this bundle's volumes (they are verified with the set).
    pub fn claimed_manifest(&self) -> Option<Digest> {
        let (_, message) = keys::parse_embedded(&self.table).ok()?;
        Table::decode(message).ok().map(|t| t.manifest)
    }

    /// Whether the file's length is that of the volume its footer names, by the table in
    /// its trailer (unverified: this only chooses how to read the file, which is verified
    /// either way). False for the data volumes of a set concatenated into one file.
    pub fn is_single_volume(&self) -> bool {
        let table = keys::parse_embedded(&self.table).ok().and_then(|(_, message)| Table::decode(message).ok());
        match table.as_ref().and_then(|t| t.entry(self.id)) {
            Some(entry) => body_start(self, entry.length, FirstBody::Either).is_some(),
            None => true,
        }
    }
}

/// Reads the trailer of `path` from the end of the file. `Ok(None)`: the file does not end
/// with a volume footer (it is not a volume); `Err(reason)` inside `Ok(Some)`: it claims to
/// be a volume but its trailer is damaged.
pub fn read_trailer(path: &Path) -> Result<Option<Result<VolumeFile, String>>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    trailer_of(&file, path)
}

/// [`read_trailer`] on a file already open (`path` names it in messages).
fn trailer_of(file: &File, path: &Path) -> Result<Option<Result<VolumeFile, String>>> {
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Ok(None);
    }
    let len = meta.len();
    if len < (FOOTER_LEN + SKIPPABLE_HEADER_LEN) as u64 {
        return Ok(None);
    }
    let mut footer = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut footer, len - FOOTER_LEN as u64).map_err(|e| Error::io(path, e))?;
    let Some(footer) = Footer::decode(&footer) else { return Ok(None) };
    let content = footer.content_len();
    if content > MAX_TRAILER_CONTENT || footer.trailer_len() > len {
        return Ok(Some(Err(format!("its trailer claims {content} bytes, more than the file or the format's limit"))));
    }
    let start = len - footer.trailer_len();
    let mut header = [0u8; SKIPPABLE_HEADER_LEN];
    file.read_exact_at(&mut header, start).map_err(|e| Error::io(path, e))?;
    if trailer_content_len(&header).map(u64::from) != Some(content) {
        return Ok(Some(Err("its trailer's frame header does not match its footer".to_owned())));
    }
    let head_at = start + SKIPPABLE_HEADER_LEN as u64;
    let mut table = vec![0u8; footer.table_len as usize];
    let table_at = head_at + u64::from(footer.head_len);
    file.read_exact_at(&mut table, table_at).map_err(|e| Error::io(path, e))?;
    Ok(Some(Ok(VolumeFile {
        path: path.to_owned(),
        id: footer.id,
        file_len: len,
        trailer_len: footer.trailer_len(),
        head_at,
        head_len: u64::from(footer.head_len),
        table,
    })))
}

/// The head copy in `v`'s trailer, read from its file as a stream.
fn head_copy_reader(v: &VolumeFile) -> Result<io::Take<File>> {
    let mut file = File::open(&v.path).map_err(|e| Error::io(&v.path, e))?;
    file.seek(SeekFrom::Start(v.head_at)).map_err(|e| Error::io(&v.path, e))?;
    Ok(file.take(v.head_len))
}

/// The SHA-256 of the head copy in `v`'s trailer.
fn hash_head_copy(v: &VolumeFile) -> Result<Digest> {
    let mut hasher = Hasher::new();
    hash_into(&mut hasher, head_copy_reader(v)?).map_err(|e| Error::io(&v.path, e))?;
    whole_copy(v, hasher)
}

/// The digest of `v`'s head copy, from a hasher fed all of it (the file ending early is an
/// I/O error: the trailer was read from it).
fn whole_copy(v: &VolumeFile, hasher: Hasher) -> Result<Digest> {
    match hasher.len() == v.head_len {
        true => Ok(hasher.finish()),
        false => Err(Error::io(&v.path, io::Error::from(io::ErrorKind::UnexpectedEof))),
    }
}

/// Decodes the head copy in `v`'s trailer (`Err` inside: why it does not read), with the
/// SHA-256 of the very bytes decoded (and of any the decoder left after the head frame).
fn read_head_copy(v: &VolumeFile) -> Result<(Result<Head>, Digest)> {
    let copy = head_copy_reader(v)?;
    let mut rest = copy.get_ref().try_clone().map_err(|e| Error::io(&v.path, e))?;
    let (reader, hasher) = HashingReader::new(copy);
    let head = read_head(&mut Frames::new(Box::new(reader)));
    let mut hasher = hasher.lock().map_err(|_| Error::Internal("a head copy's hasher is poisoned".into()))?.clone();
    let read = hasher.len();
    rest.seek(SeekFrom::Start(v.head_at + read)).map_err(|e| Error::io(&v.path, e))?;
    hash_into(&mut hasher, rest.take(v.head_len.saturating_sub(read))).map_err(|e| Error::io(&v.path, e))?;
    Ok((head, whole_copy(v, hasher)?))
}

/// Whether `path` is to be read as one volume: it ends with a volume trailer (readable or
/// not), and its length is that volume's, not that of the data volumes concatenated
/// (`cat NAME.vol*.airlock`), which is read as one bundle.
pub fn is_volume_file(path: &Path) -> Result<bool> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    is_volume(&file, path)
}

/// [`is_volume_file`] on a file already open (`path` names it in messages).
pub(super) fn is_volume(file: &File, path: &Path) -> Result<bool> {
    Ok(trailer_of(file, path)?.is_some_and(|v| v.map_or(true, |v| v.is_single_volume())))
}

/// Shared notes on what was rebuilt, filled while the set streams.
#[derive(Clone, Debug, Default)]
pub struct VolumeNotes(Arc<Mutex<Vec<String>>>);

impl VolumeNotes {
    fn push(&self, note: String) {
        if let Ok(mut notes) = self.0.lock() {
            notes.push(note);
        }
    }

    /// The notes so far.
    pub fn take(&self) -> Vec<String> {
        self.0.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
    }
}

/// The volumes of one bundle, as given (some may be missing), before the table is checked.
#[derive(Debug)]
pub struct VolumeSet {
    /// One file per volume id, in id order (data, then parity).
    files: BTreeMap<VolumeId, VolumeFile>,
    /// Files whose trailer could not be read, and why.
    unreadable: Vec<(PathBuf, String)>,
    /// What streaming the set found and rebuilt.
    notes: VolumeNotes,
    /// Check every block of the volumes present against its signed hash while streaming
    /// (else only the blocks a rebuild uses, and the rebuilt ones).
    every_block: bool,
    /// The head frame copied in the trailer the set's head was read from (a version-3
    /// volume 1 starts with it): its length and the SHA-256 of the bytes decoded.
    head_copy: (u64, Digest),
}

/// The set's bundle, named for messages: manifest digest, channel and sequence.
fn bundle_name(head: &Head) -> String {
    match crate::format::manifest::decode(&head.manifest_bytes) {
        Ok(m) => format!("{} (channel {}, sequence {})", head.manifest_digest, m.channel, m.sequence),
        Err(_) => head.manifest_digest.to_hex(),
    }
}

/// Opens the volumes at `paths` (any order): every file must be a volume; the ones whose
/// trailer is damaged are left out (parity may rebuild them); all others must hold the same
/// bundle's head. Returns the set and that head (unverified).
pub(super) fn open_set(paths: &[PathBuf], every_block: bool) -> Result<(VolumeSet, Head)> {
    let mut files: BTreeMap<VolumeId, VolumeFile> = BTreeMap::new();
    let mut unreadable = Vec::new();
    let mut first: Option<(Head, PathBuf, (u64, Digest))> = None;
    for path in paths {
        let volume = match read_trailer(path)? {
            None => return Err(Reject::Volumes(Box::new(VolumeProblem::NotAVolume { path: path.clone() })).into()),
            Some(Err(reason)) => {
                unreadable.push((path.clone(), reason));
                continue;
            }
            Some(Ok(v)) => v,
        };
        // Every volume of a set carries the same head copy: one with the same SHA-256 as the
        // first volume's reads the same, so only the first, and any that differs, is decoded
        // (decompressing a head per volume was most of what verifying a set cost beyond the
        // bundle file). The copies are read from the files, never held.
        if let Some((_, _, set_copy)) = &first {
            if volume.head_len == set_copy.0 && hash_head_copy(&volume)? == set_copy.1 {
                files.entry(volume.id).or_insert(volume);
                continue;
            }
        }
        let (head, copy) = read_head_copy(&volume)?;
        let head = match head {
            Ok(h) => h,
            Err(e) => {
                unreadable.push((path.clone(), format!("the head copy in its trailer does not read: {e}")));
                continue;
            }
        };
        match &first {
            None => first = Some((head, path.clone(), (volume.head_len, copy))),
            Some((set_head, set_path, _)) if set_head.manifest_digest != head.manifest_digest => {
                return Err(Reject::Volumes(Box::new(VolumeProblem::OtherBundle {
                    volume: path.clone(),
                    bundle: bundle_name(&head),
                    other_volume: set_path.clone(),
                    other: bundle_name(set_head),
                }))
                .into());
            }
            Some(_) => {}
        }
        // The same volume given twice (from two media, say): the first is used.
        files.entry(volume.id).or_insert(volume);
    }
    let Some((head, _, head_copy)) = first else {
        let list: Vec<String> = unreadable.iter().map(|(p, r)| format!("{}: {r}", p.display())).collect();
        return Err(Reject::Volumes(Box::new(VolumeProblem::NoReadableTrailer(list.join("; ")))).into());
    };
    Ok((VolumeSet { files, unreadable, notes: VolumeNotes::default(), every_block, head_copy }, head))
}

/// One volume's state against the signed table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeState {
    /// Length and every block match.
    Intact,
    /// Blocks (0-based) whose SHA-256 does not match.
    Damaged(Vec<u64>),
    /// The file's length does not fit the table's length for the volume.
    WrongLength {
        /// The body length the table signs.
        expected: u64,
        /// The file's length (trailer included).
        file_len: u64,
    },
    /// The table has no such volume.
    NotInTable,
}

/// What checking the volumes given found.
#[derive(Debug)]
pub struct VolumeCheck {
    /// The verified table.
    pub table: Table,
    /// Each volume given, its file and its state.
    pub volumes: Vec<(VolumeId, PathBuf, VolumeState)>,
    /// Files whose trailer could not be read, and why.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl VolumeCheck {
    /// Data volumes of the set not among the intact ones given.
    pub fn missing(&self) -> Vec<VolumeId> {
        let intact = |id: VolumeId| self.volumes.iter().any(|(v, _, s)| *v == id && *s == VolumeState::Intact);
        (1..=self.table.data_count()).map(VolumeId::data).filter(|&id| !intact(id)).collect()
    }

    /// Parity volumes given intact.
    pub fn parity_intact(&self) -> usize {
        self.volumes.iter().filter(|(v, _, s)| v.kind == Kind::Parity && *s == VolumeState::Intact).count()
    }
}

impl VolumeSet {
    /// The volume files of the set, by id.
    pub fn files(&self) -> impl Iterator<Item = &VolumeFile> {
        self.files.values()
    }

    /// The notes a stream of this set fills (volumes rebuilt).
    pub fn notes(&self) -> VolumeNotes {
        self.notes.clone()
    }

    /// Verifies `VOLUMES.sig` (§14.3): by a counted signer, a table that decodes and names
    /// `manifest`. Trailers may differ (one may be forged); the first that verifies is used.
    pub fn table(&self, manifest: Digest, signer_keys: &Trust, trust: &TrustReport) -> Result<Table> {
        let mut first_error = None;
        for v in self.files.values() {
            match check_table(v, manifest, signer_keys, trust) {
                Ok(t) => return Ok(t),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| Error::Internal("a volume set without volumes".into())))
    }

    /// Checks every given volume against `table`: its length, and each block's SHA-256.
    /// `version`: the verified manifest's (where volume 1's body starts).
    pub fn check_bodies(&self, table: Table, version: u64) -> Result<VolumeCheck> {
        let mut volumes = Vec::new();
        for v in self.files.values() {
            volumes.push((v.id, v.path.clone(), body_state(v, &table, FirstBody::of(version))?));
        }
        Ok(VolumeCheck { table, volumes, unreadable: self.unreadable.clone() })
    }

    /// After the table and the head (of `version`, whose frame is `head_frame_len` bytes)
    /// verified: the payload frames, read from the data bodies in order (see
    /// [`VolumeSet::reader`]). In a version-3 set, volume 1's body starts with the head
    /// frame: it must be the head verified, byte for byte (the trailers' copy), and one
    /// padding frame may follow it.
    pub(super) fn payload_frames(self, table: Table, version: u64, head_frame_len: u64) -> Result<Frames> {
        let first = FirstBody::of(version);
        let (copy_len, copy_digest) = self.head_copy;
        let mut reader = self.reader(table, first)?;
        if first == FirstBody::WithHead {
            let at = VolumeId::data(1).to_string();
            let (head, len) =
                hash_reader((&mut reader).take(copy_len)).map_err(|e| crate::format::tar::stream_error(e, &at))?;
            if len != copy_len {
                let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                return Err(crate::format::tar::stream_error(eof, &at));
            }
            if head != copy_digest {
                let problem = "its head frame is not the head in the volume trailers".to_owned();
                let path = reader.path_of(VolumeId::data(1)).unwrap_or_default();
                return Err(Reject::Volumes(Box::new(VolumeProblem::Damaged { volume: at, path, problem })).into());
            }
        }
        Ok(Frames::after_head(Box::new(reader), head_frame_len, first == FirstBody::WithHead))
    }

    /// After the table verified: the stream of data bodies in order, rebuilding what is
    /// missing or damaged from parity. Refuses upfront when more data volumes are missing
    /// than parity volumes are present; damage found while streaming is rebuilt block by
    /// block or rejected then.
    fn reader(self, table: Table, first: FirstBody) -> Result<SetReader> {
        let mut opened = BTreeMap::new();
        let mut damaged = Vec::new();
        for (id, v) in &self.files {
            let Some(entry) = table.entry(*id) else {
                self.notes.push(format!("{id} ({}): not in the signed volume table; ignored", v.path.display()));
                continue;
            };
            match body_start(v, entry.length, first) {
                Some(start) => {
                    let file = File::open(&v.path).map_err(|e| Error::io(&v.path, e))?;
                    opened.insert(*id, Opened { file, start, path: v.path.clone() });
                }
                None => damaged.push(format!("{id}: its length does not match the signed table")),
            }
        }
        let data = table.data_count();
        let missing: Vec<String> =
            (1..=data).map(VolumeId::data).filter(|id| !opened.contains_key(id)).map(|id| id.to_string()).collect();
        let parity = opened.keys().filter(|id| id.kind == Kind::Parity).count();
        if missing.len() > parity {
            return Err(Reject::Volumes(Box::new(VolumeProblem::Missing { missing, damaged, parity })).into());
        }
        for m in &missing {
            self.notes.push(format!("{m}: missing; rebuilt from parity"));
        }
        SetReader::new(Blocks { table, opened, every_block: self.every_block }, self.notes)
            .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))
    }
}

fn check_table(v: &VolumeFile, manifest: Digest, signer_keys: &Trust, trust: &TrustReport) -> Result<Table> {
    let problem = |problem: String| {
        Error::from(Reject::Volumes(Box::new(VolumeProblem::Table { volume: v.path.clone(), problem })))
    };
    let (sig, message) = keys::parse_embedded(&v.table).map_err(|e| problem(e.to_string()))?;
    verify_counted(&sig, message, VOLUMES_MEMBER, signer_keys, trust).map_err(|e| match e {
        Error::Rejected(Reject::UntrustedSumsSigner { key_id, .. }) => {
            Reject::Volumes(Box::new(VolumeProblem::UntrustedTableSigner { key_id })).into()
        }
        other => other,
    })?;
    let table = Table::decode(message).map_err(|e| problem(e.to_string()))?;
    if table.manifest != manifest {
        return Err(problem(format!("names manifest {}, not this bundle's {manifest}", table.manifest)));
    }
    Ok(table)
}

/// Where data volume 1's body starts (FORMAT.md §14.1), by the set's format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirstBody {
    /// After the head frame (version 2): the body is payload frames only.
    AfterHead,
    /// At the first byte (version 3): the head frame and padding frame are in the body, so
    /// its signed blocks and parity cover them.
    WithHead,
    /// Either: the version is not known yet (choosing how to read a file).
    Either,
}

impl FirstBody {
    fn of(version: u64) -> FirstBody {
        if version >= manifest::VERSION {
            FirstBody::WithHead
        } else {
            FirstBody::AfterHead
        }
    }
}

/// Where `v`'s body starts, if its length fits a body of `length` bytes: right before the
/// trailer, at 0 except in data volume 1 (see [`FirstBody`]).
fn body_start(v: &VolumeFile, length: u64, first: FirstBody) -> Option<u64> {
    let start = v.file_len.checked_sub(v.trailer_len)?.checked_sub(length)?;
    let fits = match (v.id == VolumeId::data(1), first) {
        (false, _) => start == 0,
        (true, FirstBody::AfterHead) => start > 0,
        (true, FirstBody::WithHead) => start == 0,
        (true, FirstBody::Either) => true,
    };
    fits.then_some(start)
}

fn body_state(v: &VolumeFile, table: &Table, first: FirstBody) -> Result<VolumeState> {
    let Some(entry) = table.entry(v.id) else { return Ok(VolumeState::NotInTable) };
    let Some(start) = body_start(v, entry.length, first) else {
        return Ok(VolumeState::WrongLength { expected: entry.length, file_len: v.file_len });
    };
    let file = File::open(&v.path).map_err(|e| Error::io(&v.path, e))?;
    let mut bad = Vec::new();
    let mut buf = vec![0u8; BLOCK_SIZE as usize];
    for (j, expected) in entry.blocks.iter().enumerate() {
        let range = block_range(entry.length, j as u64);
        let block = &mut buf[..(range.end - range.start) as usize];
        file.read_exact_at(block, start + range.start).map_err(|e| Error::io(&v.path, e))?;
        if Digest::of(block) != *expected {
            bad.push(j as u64);
        }
    }
    Ok(if bad.is_empty() { VolumeState::Intact } else { VolumeState::Damaged(bad) })
}

/// An open volume file and where its body starts.
struct Opened {
    file: File,
    start: u64,
    path: PathBuf,
}

/// The blocks of a set: the verified table and the volume files present.
struct Blocks {
    table: Table,
    opened: BTreeMap<VolumeId, Opened>,
    /// Whether the blocks streamed are checked against their signed hashes (see
    /// [`BundleSource::VolumesChecked`](super::BundleSource::VolumesChecked)).
    every_block: bool,
}

/// Blocks read and checked ahead of the reader, on their own thread: hashing the
/// compressed bytes there keeps it off the decompression thread that reads the set.
const READ_AHEAD_BLOCKS: usize = 4;

/// What the read-ahead hands over for each block of each data volume, in order: the block
/// if present and matching its signed SHA-256, else `None` (to be rebuilt).
type AheadBlock = io::Result<Option<Vec<u8>>>;

/// The data volumes' bodies in order, one block at a time, each checked against its
/// signed SHA-256 and rebuilt from parity when missing or damaged.
pub(super) struct SetReader {
    blocks: Arc<Blocks>,
    ahead: Option<mpsc::Receiver<AheadBlock>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The data volume being read (1-based).
    volume: u16,
    /// The next block of it.
    block: u64,
    current: Vec<u8>,
    pos: usize,
    /// Blocks rebuilt per volume that was present (for the notes).
    rebuilt: BTreeMap<VolumeId, Vec<u64>>,
    notes: VolumeNotes,
}

/// The blocks as the codec takes them.
fn as_refs(blocks: &[Option<Vec<u8>>]) -> Vec<Option<&[u8]>> {
    blocks.iter().map(|b| b.as_deref()).collect()
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Blocks {
    /// Block `j` of volume `id` from its file if present, for the stream: checked against
    /// its signed SHA-256 only when every block is (the payload's own SHA-256s check what
    /// streams; a damaged block then rejects the set, and a second, checked pass rebuilds it).
    fn stream_block(&self, id: VolumeId, j: u64) -> io::Result<Option<Vec<u8>>> {
        if self.every_block {
            return self.good_block(id, j);
        }
        let (Some(entry), Some(o)) = (self.table.entry(id), self.opened.get(&id)) else { return Ok(None) };
        let range = block_range(entry.length, j);
        let mut block = vec![0u8; (range.end - range.start) as usize];
        o.file
            .read_exact_at(&mut block, o.start + range.start)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", o.path.display())))?;
        Ok(Some(block))
    }

    /// Block `j` of volume `id` from its file, if present and matching its signed SHA-256.
    fn good_block(&self, id: VolumeId, j: u64) -> io::Result<Option<Vec<u8>>> {
        let (Some(entry), Some(o)) = (self.table.entry(id), self.opened.get(&id)) else { return Ok(None) };
        let Some(expected) = entry.blocks.get(j as usize) else { return Ok(Some(Vec::new())) };
        let range = block_range(entry.length, j);
        let mut block = vec![0u8; (range.end - range.start) as usize];
        o.file
            .read_exact_at(&mut block, o.start + range.start)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", o.path.display())))?;
        Ok((Digest::of(&block) == *expected).then_some(block))
    }

    /// Rebuilds block `j` of data volume `id` from the rest of its stripe, and checks it.
    fn rebuild(&self, id: VolumeId, j: u64) -> io::Result<Vec<u8>> {
        let data_ids: Vec<VolumeId> = (1..=self.table.data_count()).map(VolumeId::data).collect();
        let parity_ids: Vec<VolumeId> = (1..=self.table.parity_count()).map(VolumeId::parity).collect();
        let read = |ids: &[VolumeId]| -> io::Result<Vec<Option<Vec<u8>>>> {
            ids.iter().map(|&v| if v == id { Ok(None) } else { self.good_block(v, j) }).collect()
        };
        let data = read(&data_ids)?;
        let parity_blocks = read(&parity_ids)?;
        let mut rebuilt = parity::rebuild(&as_refs(&data), &as_refs(&parity_blocks), self.table.shard_len(j))
            .map_err(|e| invalid(format!("{id} block {j} is missing or damaged and parity cannot rebuild it: {e}")))?;
        let index = usize::from(id.number) - 1;
        let mut block =
            rebuilt.remove(&index).ok_or_else(|| invalid(format!("{id} block {j}: parity gave nothing")))?;
        let (length, expected) = match self.table.entry(id) {
            Some(e) => (e.length, e.blocks.get(j as usize).copied()),
            None => (0, None),
        };
        let range = block_range(length, j);
        block.truncate((range.end - range.start) as usize);
        if Some(Digest::of(&block)) != expected {
            return Err(invalid(format!(
                "{id} block {j} rebuilt from parity does not match its signed SHA-256: a parity volume (or another data volume) is damaged or forged"
            )));
        }
        Ok(block)
    }
}

/// The read-ahead thread: every block of every data volume, in order, checked; it stops
/// after handing over an error, or when the reader is gone.
fn read_ahead(blocks: &Blocks, out: &mpsc::SyncSender<AheadBlock>) {
    for number in 1..=blocks.table.data_count() {
        let id = VolumeId::data(number);
        let length = blocks.table.entry(id).map_or(0, |e| e.length);
        for j in 0..blocks_in(length) {
            let next = blocks.stream_block(id, j);
            let failed = next.is_err();
            if out.send(next).is_err() || failed {
                return;
            }
        }
    }
}

impl SetReader {
    fn new(blocks: Blocks, notes: VolumeNotes) -> io::Result<SetReader> {
        let blocks = Arc::new(blocks);
        let (tx, rx) = mpsc::sync_channel(READ_AHEAD_BLOCKS);
        let shared = Arc::clone(&blocks);
        let thread =
            std::thread::Builder::new().name("volume read-ahead".into()).spawn(move || read_ahead(&shared, &tx))?;
        Ok(SetReader {
            blocks,
            ahead: Some(rx),
            thread: Some(thread),
            volume: 1,
            block: 0,
            current: Vec::new(),
            pos: 0,
            rebuilt: BTreeMap::new(),
            notes,
        })
    }

    /// The next block from the read-ahead, checked (`None`: rebuild it).
    fn receive(&mut self) -> io::Result<Option<Vec<u8>>> {
        let received = self.ahead.as_ref().map(mpsc::Receiver::recv);
        match received {
            Some(Ok(block)) => block,
            _ => {
                // The thread ended early without an error: only a panic does that.
                let panicked = self.thread.take().map(|t| t.join().is_err()).unwrap_or(false);
                let why = if panicked { "panicked" } else { "stopped early" };
                Err(io::Error::other(format!(
                    "internal error: the volume read-ahead thread {why} (this is a bug in airlock; please report it)"
                )))
            }
        }
    }

    /// The file volume `id` is read from, if it is present.
    fn path_of(&self, id: VolumeId) -> Option<PathBuf> {
        self.blocks.opened.get(&id).map(|o| o.path.clone())
    }

    /// Loads the next block into `current`; false at the end of the last data volume.
    fn next_block(&mut self) -> io::Result<bool> {
        loop {
            let id = VolumeId::data(self.volume);
            let Some(entry) = self.blocks.table.entry(id) else {
                self.finish_notes();
                return Ok(false);
            };
            if self.block >= blocks_in(entry.length) {
                self.volume += 1;
                self.block = 0;
                continue;
            }
            let j = self.block;
            self.current = match self.receive()? {
                Some(b) => b,
                None => {
                    let b = self.blocks.rebuild(id, j)?;
                    if self.blocks.opened.contains_key(&id) {
                        self.rebuilt.entry(id).or_default().push(j);
                    }
                    b
                }
            };
            self.pos = 0;
            self.block += 1;
            return Ok(true);
        }
    }

    fn finish_notes(&mut self) {
        for (id, blocks) in std::mem::take(&mut self.rebuilt) {
            let list: Vec<String> = blocks.iter().map(u64::to_string).collect();
            self.notes.push(format!("{id}: damaged block(s) {} rebuilt from parity", list.join(", ")));
        }
    }
}

impl Drop for SetReader {
    fn drop(&mut self) {
        // Closing the channel stops the read-ahead at its next block; then it is joined.
        drop(self.ahead.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Read for SetReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = (self.current.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Sum of the data bodies' lengths: what the §8 step 3 bound is computed on.
pub(super) fn data_length(table: &Table) -> u64 {
    table.volumes.iter().filter(|v| v.id.kind == Kind::Data).map(|v| v.length).sum()
}
