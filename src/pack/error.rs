//! Why `pack` could not make a bundle: typed, so the CLI can add its flag hints and a
//! library user can match on the reason.

use std::io;
use std::path::PathBuf;

use crate::error::Reject;

use crate::format::manifest::ManifestError;
use crate::format::path::PathError;
use crate::keys::KeyId;

/// A request `pack` cannot carry out, or an input it cannot put in a bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// No signing key was given.
    #[error("pack needs at least one signing key")]
    NoSigners,
    /// Two signing keys have the same key id (a verifier could not tell them apart).
    #[error("two signing keys share the key id {0}")]
    DuplicateKeyId(KeyId),
    /// The zstd level is outside 1 to [`MAX_LEVEL`](super::MAX_LEVEL).
    #[error("zstd level {level} is outside 1 to {max}", max = super::MAX_LEVEL)]
    Level {
        /// The level asked for.
        level: i32,
    },
    /// The volume size leaves no room for a volume's body beside its trailer.
    #[error("--volume-size {size} is too small for this bundle: each volume needs about {needed} bytes for its trailer (a copy of the head and the signed volume table) and the start of its payload; give a larger size")]
    VolumeTooSmall {
        /// The size asked for.
        size: u64,
        /// The least that could work.
        needed: u64,
    },
    /// The bundle would need more volumes than the format allows.
    #[error("at --volume-size {size} this bundle could need {volumes} volumes, more than the format's 999 (or a volume table over its limit); give a larger size")]
    TooManyVolumes {
        /// The size asked for.
        size: u64,
        /// Volumes it could need.
        volumes: u64,
    },
    /// More parity volumes than the format allows.
    #[error("--parity {parity} is more than the format's 99 parity volumes")]
    TooManyParity {
        /// The count asked for.
        parity: u16,
    },
    /// No source was given.
    #[error("nothing to pack: give at least one file or directory")]
    NoSources,
    /// A source file or directory cannot be packed.
    #[error("cannot pack {}: {problem}", path.display())]
    Source {
        /// The file or directory, as found on disk.
        path: PathBuf,
        /// Why.
        problem: SourceProblem,
    },
    /// Sources that cannot be packed: every one the walk found, each with the rule it
    /// breaks (links, devices, FIFOs, sockets, names a bundle path cannot have, bundle paths
    /// two sources share). Nothing was written.
    #[error("cannot pack: {} sources break the packing rules{}; nothing was written", .0.len(), list_refusals(.0))]
    Refused(Vec<Refusal>),
    /// The sources and options would make a manifest the format forbids (names that collide
    /// on a case-insensitive filesystem, say): no bundle is written.
    #[error("cannot pack: the bundle would break a manifest rule: {0}")]
    InvalidManifest(ManifestError),
    /// The bundle would exceed a size limit of the format version written (FORMAT.md §11):
    /// every importer refuses such a bundle (with this same [`Reject::Limit`]), so none is
    /// written.
    #[error("cannot pack: {0} (FORMAT.md §11), so any importer would refuse the bundle; nothing was written. Split the sources over several bundles, e.g. one channel per top-level directory")]
    OverLimit(crate::error::Reject),
    /// A channel state file does not hold what the packer writes there.
    #[error("{}: not an airlock channel state file", path.display())]
    ChannelState {
        /// The state file.
        path: PathBuf,
    },
    /// The base a receipt names for a delta cannot be found or used (`pack --since`).
    #[error("cannot build the delta: {0}")]
    Base(#[from] super::state::BaseProblem),
    /// Reading a source file or directory failed (the bundle is not to blame).
    #[error("cannot read source {}: {source}", path.display())]
    SourceRead {
        /// The source file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing the bundle failed (the sources are not to blame). Nothing is left at the
    /// bundle's name.
    #[error("cannot write the bundle {}: {source}; nothing was written there", path.display())]
    DestinationWrite {
        /// The bundle being written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The destination file system filled up while the bundle was written (`ENOSPC`,
    /// `EDQUOT`). Nothing is left at the bundle's name.
    #[error(
        "cannot write the bundle {}: the destination is full: {written} bytes written of about {expected}; nothing was left there. Free some space, or split the bundle into volumes that each fit a medium",
        path.display()
    )]
    DestinationFull {
        /// The bundle being written.
        path: PathBuf,
        /// Bytes of the bundle written when the file system refused more.
        written: u64,
        /// About how large the bundle would have been.
        expected: u64,
    },
    /// The destination file system cannot hold a file as large as the bundle (`EFBIG`).
    #[error(
        "cannot write the bundle {}: its file system refused to make the file larger than {written} bytes; nothing was left there. Split the bundle into volumes that each fit",
        path.display()
    )]
    DestinationFileTooLarge {
        /// The bundle being written.
        path: PathBuf,
        /// Bytes written when the file system refused more.
        written: u64,
    },
    /// Preflight: the destination's file system has less free space than the bundle may
    /// need. Nothing was read or written.
    #[error(
        "not enough room for {}: the bundle may take up to {needed} bytes (its size bound, for incompressible data) and the destination has {free} bytes free; free some space, write it elsewhere, or split it into volumes that each fit a medium",
        destination.display()
    )]
    NoRoom {
        /// The bundle to be written.
        destination: PathBuf,
        /// Bytes the bundle may take on that file system.
        needed: u64,
        /// Bytes free there.
        free: u64,
    },
    /// Preflight: the destination's file system cannot hold a single file as large as the
    /// bundle may be (FAT: 4 GiB - 1 bytes). Nothing was read or written.
    #[error(
        "{} is on a {kind} file system, which cannot hold a file over {limit} bytes, and the bundle may take up to {needed} bytes; split it into volumes that each fit",
        destination.display()
    )]
    FileTooLarge {
        /// The bundle to be written.
        destination: PathBuf,
        /// The largest file to be written, at most.
        needed: u64,
        /// The file system's limit.
        limit: u64,
        /// The file system (`FAT`).
        kind: &'static str,
    },
    /// Read-back: the bundle read back from the medium does not verify. It is checked before
    /// it takes its name, so it was removed and nothing is left at that name.
    #[error(
        "{}: the bundle read back from the medium does not verify ({problem}); it was removed, nothing was left there. The medium may be bad: write the bundle to another one",
        path.display()
    )]
    ReadBack {
        /// The bundle written (now removed).
        path: PathBuf,
        /// What verification found.
        problem: Box<Reject>,
    },
    /// The channel's last bundle has the largest sequence number there is: no bundle can
    /// follow it.
    #[error("channel {channel:?} has used its last sequence number ({}); no bundle can follow it", u64::MAX)]
    SequenceExhausted {
        /// The channel.
        channel: String,
    },
}

/// A source that cannot be packed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The file, directory or link, as found on disk.
    pub path: PathBuf,
    /// The rule it breaks.
    pub problem: SourceProblem,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

fn list_refusals(list: &[Refusal]) -> String {
    list.iter().map(|r| format!("; {r}")).collect()
}

/// Why a source cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceProblem {
    /// More sources than a bundle can refer to.
    #[error("too many sources")]
    TooManySources,
    /// A source file named by a path without a file name (`/`, `..`).
    #[error("has no file name")]
    NoFileName,
    /// A source is neither a regular file nor a directory.
    #[error("is not a regular file or directory")]
    NotFileOrDirectory,
    /// A symbolic link (found by the walk, or swapped in before the file was opened).
    #[error("is a symbolic link; airlock packs regular files only")]
    SymbolicLink,
    /// A symbolic link to follow that leads nowhere.
    #[error("is a dangling symbolic link (what it points to does not exist)")]
    DanglingSymlink,
    /// A symbolic link to follow that leads round in a loop.
    #[error("is a symbolic link loop (following it comes back to where it started)")]
    SymlinkLoop,
    /// A device, FIFO or socket found by the walk.
    #[error("is not a regular file (device, FIFO or socket); airlock packs regular files only")]
    SpecialFile,
    /// Something other than a regular file was found when the file was opened.
    #[error("is not a regular file")]
    NotRegularFile,
    /// The name is not UTF-8, which bundle paths must be.
    #[error("name is not valid UTF-8")]
    NameNotUtf8,
    /// The bundle path would break a rule of the format.
    #[error("unsafe bundle path {path:?}: {error}")]
    UnsafePath {
        /// The bundle path.
        path: String,
        /// The rule it breaks.
        error: PathError,
    },
    /// Two sources would have the same bundle path.
    #[error("has the same bundle path {path:?} as {}", first.display())]
    SameBundlePath {
        /// The bundle path.
        path: String,
        /// The other source file.
        first: PathBuf,
    },
    /// The file changed size while it was being hashed.
    #[error("changed while it was being read")]
    ChangedWhileRead,
    /// The file changed while it was being packed: between the walk and its read into the
    /// payload (its size or times differ), or between a hash taken before the payload pass
    /// and that read (its content differs).
    #[error(
        "changed while it was being packed (size, times or content differ from when pack first saw it); pack again"
    )]
    ChangedBeforePacking,
    /// A checksum signature to be generated clashes with a source file.
    #[error("a checksum signature would be added as {name:?}, but the sources already hold {clash:?}")]
    ChecksumSignatureClash {
        /// The checksum signature's bundle path.
        name: String,
        /// The source already holding that path (or the checksum file it would stand for).
        clash: String,
    },
    /// A checksum signature's bundle path would break a rule of the format.
    #[error("a checksum signature cannot be named {name:?}: {error}")]
    ChecksumSignatureName {
        /// The checksum signature's bundle path.
        name: String,
        /// The rule it breaks.
        error: PathError,
    },
}

impl SourceProblem {
    /// A stable snake_case name for the rule a source breaks (`pack --json`,
    /// docs/JSON.md).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceProblem::TooManySources => "too_many_sources",
            SourceProblem::NoFileName => "no_file_name",
            SourceProblem::NotFileOrDirectory => "not_file_or_directory",
            SourceProblem::SymbolicLink => "symbolic_link",
            SourceProblem::DanglingSymlink => "dangling_symlink",
            SourceProblem::SymlinkLoop => "symlink_loop",
            SourceProblem::SpecialFile => "special_file",
            SourceProblem::NotRegularFile => "not_regular_file",
            SourceProblem::NameNotUtf8 => "name_not_utf8",
            SourceProblem::UnsafePath { .. } => "unsafe_path",
            SourceProblem::SameBundlePath { .. } => "same_bundle_path",
            SourceProblem::ChangedWhileRead => "changed_while_read",
            SourceProblem::ChangedBeforePacking => "changed_before_packing",
            SourceProblem::ChecksumSignatureClash { .. } => "checksum_signature_clash",
            SourceProblem::ChecksumSignatureName { .. } => "checksum_signature_name",
        }
    }
}
