//! Why `mirror publish` refused or failed. Prose lives only in `Display`; each variant names
//! what was wrong, where, and what the operator can do.

use std::path::PathBuf;

use crate::io::digest::Digest;

/// One mirror file (or record) that `mirror verify` would not accept, so nothing was
/// published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The path in the mirror (for `damaged` and `interrupted`: the record in `.airlock/`).
    pub path: String,
    /// What is wrong with it.
    pub problem: RefusedProblem,
    /// `mirror verify`'s words for it.
    pub message: String,
}

/// What `mirror verify` found wrong with a file or record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusedProblem {
    /// Recorded by an import but absent.
    Missing,
    /// Present but not what its manifest says (size, mode or SHA-256).
    Modified,
    /// Present but recorded by no import.
    Unknown,
    /// airlock's own records disagree (the log, a kept manifest).
    Damaged,
    /// An import was interrupted after its commit point.
    Interrupted,
}

impl RefusedProblem {
    /// The stable snake_case name (`--json`).
    pub fn name(self) -> &'static str {
        match self {
            RefusedProblem::Missing => "missing",
            RefusedProblem::Modified => "modified",
            RefusedProblem::Unknown => "unknown",
            RefusedProblem::Damaged => "damaged",
            RefusedProblem::Interrupted => "interrupted",
        }
    }
}

/// Why a publish did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The mirror does not pass `mirror verify`: nothing was published.
    #[error(
        "mirror {}: {} files or records do not match what the imports recorded (the first: {}), so nothing was \
         published and the target is unchanged; run `airlock mirror verify {}` for the list, then restore the \
         files with `airlock import BUNDLE --repair` (or remove files no import put there)",
        mirror.display(),
        refused.len(),
        refused.first().map_or_else(String::new, |r| format!("{} {}", r.problem.name(), r.path)),
        mirror.display()
    )]
    MirrorNotIntact {
        /// The mirror.
        mirror: PathBuf,
        /// What `mirror verify` would not accept.
        refused: Vec<Refused>,
    },
    /// A mirror file changed between the check and its upload: that object was not made
    /// visible, and the publish stopped.
    #[error(
        "mirror file {path} changed while it was being published (SHA-256 {actual}, {actual_size} bytes; its \
         manifest says {expected}, {expected_size} bytes): it was not published, and the publish stopped before \
         any index; run `airlock mirror verify` on the mirror"
    )]
    ChangedWhilePublishing {
        /// The file's path in the mirror.
        path: String,
        /// The SHA-256 its manifest records.
        expected: Digest,
        /// Its size in the manifest.
        expected_size: u64,
        /// The SHA-256 of what was read.
        actual: Digest,
        /// The bytes read.
        actual_size: u64,
    },
    /// The mirror could not be opened or read (not a mirror, locked, damaged log).
    #[error("{0}")]
    Mirror(#[from] crate::error::Error),
    /// A file in the mirror could not be read.
    #[error("mirror file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The target refused an operation.
    #[error("target {target}: {operation} {key}: {reason}; check that the target is reachable and writable, then run the same command again (objects already published are not sent again)")]
    Target {
        /// The target, as given.
        target: String,
        /// `put`, `delete`, `list` or `get`.
        operation: &'static str,
        /// The object key.
        key: String,
        /// What the target said.
        reason: String,
    },
    /// The target's published-state object cannot be used.
    #[error(
        "target {target}: its published-state object {key} cannot be used ({reason}); if the target holds only \
         what airlock published, remove {key} and publish again (every object is then checked by its digest)"
    )]
    BadState {
        /// The target.
        target: String,
        /// The state object's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The target was published from another mirror.
    #[error(
        "target {target}: was published from mirror {theirs}, not this mirror ({ours}); publish to another target, \
         or remove {key} there if the old mirror is gone for good"
    )]
    OtherMirror {
        /// The target.
        target: String,
        /// The state object's key.
        key: String,
        /// The mirror id the target's state names.
        theirs: String,
        /// This mirror's id.
        ours: String,
    },
    /// A mirror file sits where the format writes an index of its own.
    #[error(
        "mirror file {path} is at a path the {format} format generates ({reserved}); publish with another --format, \
         or move it out of {reserved} in the channel's next bundle"
    )]
    ReservedPath {
        /// The mirror file.
        path: String,
        /// The format.
        format: &'static str,
        /// The generated prefix it falls under.
        reserved: &'static str,
    },
    /// A .deb whose control file cannot be read (so no `Packages` stanza can be made).
    #[error("{path}: not a readable Debian package ({reason}); nothing was published")]
    Deb {
        /// The mirror path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A key needed by the format was not given.
    #[error("the {format} format needs {what}")]
    NeedsKey {
        /// The format.
        format: &'static str,
        /// Which key, in words.
        what: &'static str,
    },
    /// The OpenPGP key for a generated Debian repository cannot sign.
    #[error("OpenPGP key {path}: {reason}")]
    OpenPgpKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Signing a generated `InRelease` needs the `openpgp` feature.
    #[error(
        "this airlock was built without OpenPGP support (cargo feature `openpgp`), so it cannot sign a generated \
         Debian InRelease; use a build with the feature"
    )]
    OpenPgpDisabled,
}

impl PublishError {
    /// The stable snake_case kind (`--json`'s `error.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            PublishError::MirrorNotIntact { .. } => "mirror_not_intact",
            PublishError::ChangedWhilePublishing { .. } => "changed_while_publishing",
            PublishError::Mirror(_) => "mirror",
            PublishError::Read { .. } => "read",
            PublishError::Target { .. } => "target",
            PublishError::BadState { .. } => "bad_state",
            PublishError::OtherMirror { .. } => "other_mirror",
            PublishError::ReservedPath { .. } => "reserved_path",
            PublishError::Deb { .. } => "deb",
            PublishError::NeedsKey { .. } => "needs_key",
            PublishError::OpenPgpKey { .. } => "openpgp_key",
            PublishError::OpenPgpDisabled => "openpgp_disabled",
        }
    }

    /// True when the mirror's content is what was refused (exit 1); otherwise the failure
    /// is operational (exit 2).
    pub fn is_rejection(&self) -> bool {
        match self {
            PublishError::MirrorNotIntact { .. }
            | PublishError::ChangedWhilePublishing { .. }
            | PublishError::ReservedPath { .. }
            | PublishError::Deb { .. } => true,
            PublishError::Mirror(e) => e.is_rejection(),
            _ => false,
        }
    }

    /// The mirror path the error is about, if any (`--json`'s `error.where.path`).
    pub fn path(&self) -> Option<String> {
        match self {
            PublishError::ChangedWhilePublishing { path, .. }
            | PublishError::ReservedPath { path, .. }
            | PublishError::Deb { path, .. } => Some(path.clone()),
            PublishError::Read { path, .. } | PublishError::OpenPgpKey { path, .. } => {
                Some(path.to_string_lossy().into_owned())
            }
            PublishError::Target { key, .. } | PublishError::BadState { key, .. } => Some(key.clone()),
            _ => None,
        }
    }
}
