//! Why a mirror cannot be worked with ([`MirrorError`], carried by [`Error::Mirror`]), why
//! entries cannot be placed in it ([`Conflicts`] of [`PlacementConflict`]s, carried by
//! [`Reject::Conflict`]) and why an import's plan cannot be carried out ([`PlanReject`],
//! carried by [`Reject::Plan`]).

use std::path::PathBuf;

#[cfg(doc)]
use crate::error::Error;
use crate::error::Reject;

/// What is wrong with a mirror directory or airlock's records in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The directory (which may not exist) has no `.airlock/FORMAT`.
    #[error(
        "is not an airlock mirror (no .airlock/FORMAT); check the path, or create the mirror with \
         `airlock mirror init DIR`"
    )]
    NotAMirror,
    /// `mirror init` on a directory that already is a mirror.
    #[error("is already an airlock mirror (id {id}); nothing to do")]
    AlreadyAMirror {
        /// Its id.
        id: String,
    },
    /// `.airlock/id` is not 32 hex digits and a newline.
    #[error(
        "holds {found:?}, not a mirror id (32 hex digits); restore .airlock/id from a backup of the mirror \
         (receipts and delta bundles name the mirror by it)"
    )]
    BadId {
        /// What it holds, trimmed and cut short.
        found: String,
    },
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
    /// The mirror's filesystem cannot hold what the import writes.
    #[error(
        "not enough free space: the bundle needs {need} bytes (what this import writes), the filesystem has {free}"
    )]
    NoSpace {
        /// Bytes the import writes (the carried entries).
        need: u64,
        /// Bytes available to this user.
        free: u64,
    },
    /// A line of the import log is unusable.
    #[error(
        "import log line {line}: {problem}; `airlock mirror log DIR` shows the intact records and where the \
         chain breaks, and `airlock mirror recover-log DIR --reason TEXT` seals the damaged log aside and \
         starts a new chain (docs/FORMAT.md §9, \"Recovering a damaged log\")"
    )]
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
         restore .airlock/log from a backup of the mirror, or seal it aside and start a new chain with \
         `airlock mirror recover-log DIR --reason TEXT` (airlock will not import into it until then)"
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
         the record of that import was removed; restore .airlock/log from a backup of the mirror, or seal it \
         aside and start a new chain with `airlock mirror recover-log DIR --reason TEXT`"
    )]
    UnloggedKeptHead {
        /// The directory's name under `bundles/`.
        name: String,
    },
    /// A version-1 mirror without an id was to be opened read-only (its upgrade writes).
    #[error(
        "is a version-1 mirror without an id; it must be opened writable once (`airlock mirror verify DIR` \
         with write access) to be upgraded before it can be checked read-only"
    )]
    ReadOnlyNeedsUpgrade,
    /// A change was asked of a mirror opened read-only.
    #[error("was opened read-only; open it writable to import into it or repair it")]
    OpenedReadOnly,
    /// `mirror recover-log` on a log that has no damage.
    #[error("the import log is intact (every record chains and agrees with its anchor and the kept heads); nothing to recover")]
    LogIntact,
    /// `mirror recover-log` without a reason.
    #[error("the recovery needs a reason (--reason TEXT): it is recorded in the new log's first record")]
    RecoveryReasonMissing,
    /// `mirror show` cannot pick the import asked for.
    #[error(transparent)]
    Show(#[from] super::show::ShowError),
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
    /// A `recovered` record that is not the first of its log.
    #[error("is a `recovered` record, which can only start a log (the log was edited)")]
    RecoveredNotFirst,
    /// A `recovered` record without the details of the log it sealed.
    #[error("is a `recovered` record without the sealed log's details (the log was edited)")]
    RecoveryWithoutDetails,
    /// A `recovered` record whose `sealed` path is not `sealed/<prev>/log`.
    #[error("names the sealed log {named:?}, which is not sealed/{prev}/log (the log was edited)")]
    SealedLogMisnamed {
        /// The path it names.
        named: String,
        /// Its `prev`.
        prev: String,
    },
    /// The log a `recovered` record sealed cannot be read.
    #[error("the sealed log .airlock/{path} it starts from cannot be read: {error} (restore .airlock/sealed/ from a backup of the mirror)")]
    SealedLogUnusable {
        /// The sealed log, relative to `.airlock/`.
        path: String,
        /// Why.
        error: Box<crate::error::Error>,
    },
    /// The log a `recovered` record sealed no longer hashes to the digest it was sealed under.
    #[error("the sealed log .airlock/{path} it starts from was changed after it was sealed (it hashes to {found:.16}); restore it from a backup of the mirror")]
    SealedLogChanged {
        /// The sealed log, relative to `.airlock/`.
        path: String,
        /// Its SHA-256 now.
        found: String,
    },
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

/// Every entry of a bundle that cannot be placed in the mirror (at least one).
#[derive(Debug)]
pub struct Conflicts(pub Vec<Conflict>);

/// One entry that cannot be placed.
#[derive(Debug)]
pub struct Conflict {
    /// The entry path.
    pub path: String,
    /// Why.
    pub reason: PlacementConflict,
}

impl std::fmt::Display for Conflicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let [one] = self.0.as_slice() {
            return write!(f, "entry {:?}: {}", one.path, one.reason);
        }
        write!(f, "{} entries cannot be placed in the mirror (nothing was changed)", self.0.len())?;
        for c in &self.0 {
            write!(f, "; entry {:?}: {}", c.path, c.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for Conflicts {}

/// Why an entry cannot be placed in the mirror.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementConflict {
    /// Another channel's current state lists the path.
    #[error(
        "the path belongs to channel {channel:?}; a channel never overwrites or retires another channel's \
         files: give the two channels separate paths"
    )]
    OwnedByChannel {
        /// The owning channel.
        channel: String,
    },
    /// A file stands there that no channel's state lists.
    #[error(
        "a file is there that was not placed by airlock (no channel owns it): move it away or remove it, \
         then import again"
    )]
    NotPlacedByAirlock,
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

/// Why an import's plan cannot be carried out: what a delta leaves out is not in the mirror,
/// the delta was built for another mirror, or too much would be retired.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanReject {
    /// Entries the bundle does not carry are not in the mirror as signed.
    #[error(
        "{total} entries the bundle does not carry are not in this mirror as signed{}; nothing was changed: \
         re-pack from a fresh receipt of this mirror (`airlock mirror receipt`, then `airlock pack --since`) \
         or send a full bundle",
        list_base_problems(missing, *total)
    )]
    MissingBase {
        /// The first of them (at most [`PlanReject::LISTED`]).
        missing: Vec<BaseProblem>,
        /// How many there are.
        total: usize,
    },
    /// The delta's `base.mirror` is not this mirror's id.
    #[error(
        "the bundle is a delta built for mirror {bundle}, but this mirror is {mirror}; re-pack from a receipt \
         of this mirror (`airlock mirror receipt`, then `airlock pack --since`) or send a full bundle"
    )]
    WrongMirror {
        /// The mirror the bundle names.
        bundle: String,
        /// This mirror's id.
        mirror: String,
    },
    /// The import would retire more than half of a channel's files.
    #[error(
        "channel {channel:?}: the bundle no longer lists {retire} of the channel's {files} files, which would \
         retire them (more than half); check that this is the right bundle"
    )]
    MassRetire {
        /// The channel.
        channel: String,
        /// Files it would retire.
        retire: usize,
        /// Files the channel holds now.
        files: usize,
    },
}

impl PlanReject {
    /// How many missing entries a [`PlanReject::MissingBase`] names.
    pub const LISTED: usize = 20;

    /// The rejection's stable kind name (see `Reject::kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            PlanReject::MissingBase { .. } => "missing_base",
            PlanReject::WrongMirror { .. } => "base_mismatch",
            PlanReject::MassRetire { .. } => "mass_retire",
        }
    }
}

/// An entry a bundle does not carry and the mirror does not hold as signed.
#[derive(Debug)]
pub struct BaseProblem {
    /// The entry path.
    pub path: String,
    /// What the mirror has there instead.
    pub problem: String,
}

fn list_base_problems(missing: &[BaseProblem], total: usize) -> String {
    let mut out = String::from(": ");
    for (i, p) in missing.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("{:?} ({})", p.path, p.problem));
    }
    if total > missing.len() {
        out.push_str(&format!(" and {} more", total - missing.len()));
    }
    out
}
