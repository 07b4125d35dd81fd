//! Why a mirror cannot be worked with ([`MirrorError`], carried by [`Error::Mirror`]) and
//! why an entry cannot be placed in it ([`PlacementConflict`], carried by
//! [`Reject::Conflict`]).

use std::path::PathBuf;

#[cfg(doc)]
use crate::error::Error;
use crate::error::Reject;

/// What is wrong with a mirror directory or airlock's records in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The directory has no `.airlock/FORMAT`.
    #[error("is not an airlock mirror (no .airlock/FORMAT)")]
    NotAMirror,
    /// The mirror root exists but is not a directory.
    #[error("is not a directory")]
    NotADirectory,
    /// `.airlock/FORMAT` names a format this airlock does not know.
    #[error("unsupported mirror format {found:?}")]
    UnsupportedFormat {
        /// The file's content, trimmed.
        found: String,
    },
    /// Another process holds the mirror lock.
    #[error(
        "another airlock process is using this mirror (lock held on .airlock/lock); try again when it has finished"
    )]
    Locked,
    /// The mirror's filesystem cannot hold the bundle.
    #[error("not enough free space: the bundle needs {need} bytes, the filesystem has {free}")]
    NoSpace {
        /// Payload bytes of the bundle.
        need: u64,
        /// Bytes available to this user.
        free: u64,
    },
    /// A line of the import log is unusable.
    #[error("import log line {line}: {problem}")]
    Log {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: LogProblem,
    },
    /// A kept manifest (`bundles/<digest>/manifest.cbor`) does not decode.
    #[error("kept manifest: {0}")]
    KeptManifestUndecodable(Reject),
    /// A kept manifest's bytes do not hash to the digest they are kept under.
    #[error("kept manifest does not match its recorded digest")]
    KeptManifestMismatch,
    /// airlock's own metadata contradicts itself.
    #[error("metadata is damaged: {0}")]
    Damaged(Damage),
    /// An entry of `.airlock/` is a link or special file (the error's path names it).
    #[error(
        "is a {found}, not a {want}: airlock never follows links or opens special files inside .airlock/; \
         remove it and restore the {want} from a backup of the mirror"
    )]
    UnsafeMetadata {
        /// What stands there (`symbolic link`, `FIFO`, ...).
        found: &'static str,
        /// What must (`directory`, `regular file`).
        want: &'static str,
    },
    /// The log does not end where `.airlock/log-head` says it ends.
    #[error(
        "the import log has {records} records ending in {head:.16}, but .airlock/log-head records {anchored} \
         ending in {anchored_head:.16}: records were removed from or edited at the end of the log; \
         restore .airlock/log from a backup of the mirror (airlock will not import into it until then)"
    )]
    LogHeadMismatch {
        /// Complete records in the log.
        records: u64,
        /// The digest of its last line.
        head: String,
        /// The record count the anchor holds.
        anchored: u64,
        /// The digest the anchor holds.
        anchored_head: String,
    },
    /// `.airlock/log-head` does not parse.
    #[error(
        "unreadable ({0}); restore it from a backup of the mirror, or delete it to anchor the log as it now \
         stands (only if the log is known to be complete)"
    )]
    LogHeadUnreadable(String),
    /// A kept head under `.airlock/bundles/` that no `imported` record names.
    #[error(
        "the kept head .airlock/bundles/{name} is named by no `imported` record of the log: \
         the record of that import was removed; restore .airlock/log from a backup of the mirror"
    )]
    UnloggedKeptHead {
        /// The directory's name under `bundles/`.
        name: String,
    },
}

/// What is wrong with a line of `.airlock/log`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogProblem {
    /// Not a log record.
    #[error("unreadable ({0})")]
    Unreadable(serde_json::Error),
    /// Its `prev` is not the digest of the line before it.
    #[error("does not chain to the line before it (the log was edited or truncated)")]
    BrokenChain,
    /// An `imported` record without its bundle.
    #[error("import without bundle")]
    ImportWithoutBundle,
    /// An `imported` record whose manifest digest is not a SHA-256 in hex.
    #[error("bad manifest digest")]
    BadManifestDigest,
    /// A second `imported` record of a manifest (an import of a manifest imported before is
    /// a no-op, never logged).
    #[error("imports manifest {0:.16} a second time (the log was edited)")]
    DuplicateImport(String),
    /// An `imported` record whose sequence is not newer than its channel's last.
    #[error("channel {channel:?}: imported sequence {sequence} after {last} (the log was edited)")]
    SequenceNotNewer {
        /// The channel.
        channel: String,
        /// The record's sequence.
        sequence: u64,
        /// The channel's sequence before it.
        last: u64,
    },
    /// An `imported` record that disagrees with the manifest kept for it.
    #[error(
        "says {} {} but the kept manifest .airlock/bundles/{}/manifest.cbor says {} \
         (the log or the kept head was edited; restore them from a backup of the mirror)",
        .0.field, .0.recorded, .0.digest, .0.kept
    )]
    DisagreesWithKeptHead(Box<KeptDisagreement>),
    /// An `imported` record whose kept manifest cannot be used.
    #[error("its kept head cannot be used: {0} (restore .airlock/bundles/ from a backup of the mirror)")]
    KeptHeadUnusable(Box<crate::error::Error>),
}

/// Where an `imported` record and its kept manifest differ.
#[derive(Debug)]
pub struct KeptDisagreement {
    /// The record's manifest digest.
    pub digest: String,
    /// The field (`channel`, `sequence`, ...).
    pub field: &'static str,
    /// The record's value.
    pub recorded: String,
    /// The kept manifest's value.
    pub kept: String,
}

/// How airlock's metadata contradicts itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// `pending` does not parse.
    #[error("pending commit record unreadable: {0}")]
    PendingUnreadable(serde_json::Error),
    /// `pending`'s record has no bundle.
    #[error("pending record names no bundle")]
    PendingWithoutBundle,
    /// `pending`'s record has a manifest digest that is not a SHA-256 in hex.
    #[error("bad digest in pending")]
    PendingBadDigest,
    /// A path in the mirror became a different kind of file between the pre-flight check and
    /// the commit.
    #[error("{} changed type after the import was checked", path.display())]
    ChangedType {
        /// The path in the mirror.
        path: PathBuf,
    },
}

/// Why an entry cannot be placed in the mirror.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementConflict {
    /// A file, symlink or other non-directory stands where the entry needs a directory.
    #[error("the mirror has a file or link at {dir:?} where a directory is needed")]
    NotADirectory {
        /// The entry's ancestor, relative to the mirror root.
        dir: String,
    },
    /// A directory, symlink or other non-file stands where the entry's file goes.
    #[error("the mirror has a directory or link where this file goes")]
    NotAFile,
    /// A FIFO, socket or device stands where the entry's file goes.
    #[error("the mirror has a {found} where this file goes; airlock replaces only regular files")]
    SpecialFile {
        /// What stands there.
        found: &'static str,
    },
}
