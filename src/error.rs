//! The library's error type.
//!
//! [`Error`] separates the two outcomes an operator must tell apart: a bundle that was
//! *rejected* ([`Error::Rejected`]: it is damaged, forged, stale or unsafe; exit code 1) and
//! a failure to *do the work* (missing file, bad key file, bad arguments, full disk; exit
//! code 2). Every variant names what was wrong and where: a bundle member, an entry path, a
//! file path or a key id.

use std::io;
use std::path::{Path, PathBuf};

use crate::format::manifest::ManifestError;
use crate::format::path::PathError;
use crate::keys::{KeyError, KeyId};
use crate::sign::SignError;

/// Everything that can go wrong in airlock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a named file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A key or signature file could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// An output file exists and the caller did not ask to replace it.
    #[error("{} exists", path.display())]
    OutputExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A bundle path names something other than a regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// `sign` cannot add the signature (the bundle itself verified).
    #[error(transparent)]
    Sign(#[from] SignError),
    /// A bug in airlock, or a worker thread that failed (exit 2; never blamed on the input).
    #[error("internal error: {0} (this is a bug in airlock; please report it)")]
    Internal(String),
    /// `pack` cannot do what it was asked, or cannot put an input in a bundle.
    #[error(transparent)]
    Pack(#[from] crate::pack::PackError),
    /// A trust policy (a file, or `--trust` keys and a threshold) cannot be used.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The bundle was rejected: nothing was imported.
    #[error("bundle rejected: {0}")]
    Rejected(#[from] Reject),
    /// A receipt (FORMAT.md §15) cannot be used: unreadable, not signed by a trusted key,
    /// or not in the receipt grammar.
    #[error("receipt {}: {reason}", path.display())]
    Receipt {
        /// The receipt file.
        path: PathBuf,
        /// Why.
        reason: crate::format::receipt::ReceiptError,
    },
    /// The mirror is in a state airlock will not work with.
    #[error("mirror {}: {reason}", path.display())]
    Mirror {
        /// The mirror root or a file in it.
        path: PathBuf,
        /// Why.
        reason: crate::mirror::MirrorError,
    },
}

/// Why a bundle was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// The compressed or tar structure is damaged or not what the format allows.
    #[error("{at}: {problem}")]
    Malformed {
        /// Where: a member name, a frame, an offset.
        at: String,
        /// What.
        problem: String,
    },
    /// The stream ended early.
    #[error("{at}: bundle is truncated")]
    Truncated {
        /// Where it ended.
        at: String,
    },
    /// The manifest failed to decode or broke a rule of the format.
    #[error("manifest: {0}")]
    Manifest(ManifestError),
    /// An entry path broke a rule.
    #[error("entry {path:?}: {source}")]
    UnsafePath {
        /// The offending path, as written in the bundle.
        path: String,
        /// The rule it broke.
        source: PathError,
    },
    /// Not enough valid signatures from trusted keys.
    #[error("{0}")]
    Untrusted(crate::policy::Shortfall),
    /// A signature by a trusted key did not verify.
    #[error("signature by trusted key {key_id} on {what} does not verify")]
    BadSignature {
        /// The signer.
        key_id: KeyId,
        /// What was signed (`airlock/manifest.cbor`, ...).
        what: String,
    },
    /// A payload member's content is not what the manifest says.
    #[error("member data/{path}: SHA-256 is {actual}, manifest says {expected}")]
    HashMismatch {
        /// The entry.
        path: String,
        /// From the manifest.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// The bundle is past its expiry time.
    #[error("bundle expired at {expires} (now {now}{floor_note})")]
    Expired {
        /// When it expired (RFC 3339).
        expires: String,
        /// The time it was checked against (RFC 3339).
        now: String,
        /// Says when the mirror's clock floor, not the system clock, decided.
        floor_note: String,
    },
    /// The bundle was created later than the reader's clock plus the allowed skew.
    #[error("bundle created at {created}, later than this machine's clock ({now}) plus the allowed clock skew of {skew} s; check the packer's clock and this one")]
    CreatedInFuture {
        /// When it claims to have been created (RFC 3339).
        created: String,
        /// The reader's clock (RFC 3339).
        now: String,
        /// The allowance, in seconds.
        skew: u64,
    },
    /// Sequence number not newer than the mirror's last import of the channel.
    #[error("channel {channel:?}: sequence {sequence} is not newer than the last imported sequence {last} (rollback or replay); if this is a new bundle, the exporting side lost its sequence state")]
    Rollback {
        /// The channel.
        channel: String,
        /// The bundle's sequence.
        sequence: u64,
        /// The mirror's last.
        last: u64,
    },
    /// Bundles in the channel are missing between the mirror's last import and this one.
    #[error("channel {channel:?}: missing sequence {missing} (last imported {last}, this bundle is {sequence}); import the missing bundles first")]
    Gap {
        /// The channel.
        channel: String,
        /// The missing sequence numbers, e.g. `4` or `4..=6`.
        missing: String,
        /// The mirror's last.
        last: u64,
        /// The bundle's sequence.
        sequence: u64,
    },
    /// `previous` does not name the mirror's last manifest for the channel.
    #[error("channel {channel:?}: bundle {sequence} follows manifest {claimed}, but the mirror's last import (sequence {last}) has manifest {actual}: it was built for another history (another mirror, or an exporting side that lost its state)")]
    PreviousMismatch {
        /// The channel.
        channel: String,
        /// The bundle's sequence.
        sequence: u64,
        /// The mirror's last sequence.
        last: u64,
        /// What the bundle says came before.
        claimed: String,
        /// What did.
        actual: String,
    },
    /// Entries cannot be placed in the mirror (a directory stands where a file goes, another
    /// channel owns the path, ...): every one of them, listed.
    #[error("{0}")]
    Conflict(crate::mirror::Conflicts),
    /// The import's plan cannot be carried out (a delta's omitted entries are not in the
    /// mirror, the delta is for another mirror, a mass retirement).
    #[error("{0}")]
    Plan(crate::mirror::PlanReject),
    /// The bundle is older than the trust policy's `max_age`.
    #[error("bundle created at {created} is older than the policy's max_age of {max_age} (now {now})")]
    TooOld {
        /// When it was created (RFC 3339).
        created: String,
        /// The policy's limit.
        max_age: String,
        /// The time it was checked against (RFC 3339).
        now: String,
    },
    /// An artifact failed its trust policy rule (missing, bad or refused signature).
    #[error("artifact {path:?}: {problem}")]
    Artifact {
        /// The entry path.
        path: String,
        /// What failed, naming the key ids involved.
        problem: String,
    },
    /// The checksum list is signed by a key that does not count toward the channel's
    /// threshold: not a trusted signer key of the rule, revoked, or without a valid manifest
    /// signature. (A stock `signify -C` with a trusted key would fail on such a bundle.)
    #[error(
        "{} is signed by key {key_id}, which is not one of the trusted keys that validly signed the manifest ({})",
        crate::format::SUMS_MEMBER,
        list_key_ids(counted)
    )]
    UntrustedSumsSigner {
        /// The key id the checksum-list signature names.
        key_id: KeyId,
        /// The trusted keys whose manifest signatures counted.
        counted: Vec<KeyId>,
    },
    /// The manifest's entry sizes add up to more than the format allows (FORMAT.md §11):
    /// no mirror could hold the bundle, whatever its file system.
    #[error(
        "manifest declares {declared} bytes of payload in {entries} entries, more than the format's limit of {} bytes",
        crate::format::MAX_PAYLOAD_BYTES
    )]
    PayloadTooLarge {
        /// The sum of the declared entry sizes, in decimal (exact: it can exceed 64 bits).
        declared: String,
        /// The number of entries.
        entries: usize,
    },
    /// A volume set that cannot be read as one bundle (FORMAT.md §14).
    #[error("{0}")]
    Volumes(Box<crate::verify::VolumeProblem>),
    /// A size or count limit of the format was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// What.
        what: String,
        /// The limit.
        limit: String,
    },
}

impl Reject {
    /// A stable snake_case name for the kind of rejection: what tests, test vectors
    /// (`tests/vectors/*/expect`) and library users match on instead of the message.
    ///
    /// This is a public contract: a name never changes meaning, and a new variant gets a new
    /// name. The names: `malformed`, `truncated`, `manifest`, `unsafe_path`, `untrusted`,
    /// `bad_signature`, `hash_mismatch`, `expired`, `rollback`, `gap`, `previous_mismatch`,
    /// `conflict`, `too_old`, `artifact`, `limit`, `untrusted_sums_signer`,
    /// `payload_too_large`, `created_in_future`, and for [`Reject::Plan`]: `missing_base`,
    /// `base_mismatch`, `mass_retire`.
    pub fn kind(&self) -> &'static str {
        match self {
            Reject::Malformed { .. } => "malformed",
            Reject::Truncated { .. } => "truncated",
            Reject::Manifest(_) => "manifest",
            Reject::UnsafePath { .. } => "unsafe_path",
            Reject::Untrusted(_) => "untrusted",
            Reject::BadSignature { .. } => "bad_signature",
            Reject::HashMismatch { .. } => "hash_mismatch",
            Reject::Expired { .. } => "expired",
            Reject::Rollback { .. } => "rollback",
            Reject::Gap { .. } => "gap",
            Reject::PreviousMismatch { .. } => "previous_mismatch",
            Reject::Conflict(_) => "conflict",
            Reject::Plan(p) => p.kind(),
            Reject::TooOld { .. } => "too_old",
            Reject::Artifact { .. } => "artifact",
            Reject::Limit { .. } => "limit",
            Reject::UntrustedSumsSigner { .. } => "untrusted_sums_signer",
            Reject::PayloadTooLarge { .. } => "payload_too_large",
            Reject::CreatedInFuture { .. } => "created_in_future",
            Reject::Volumes(_) => "volumes",
        }
    }
}

impl From<crate::io::parity::ParityError> for Error {
    /// The parity codec refused shard counts or lengths the writer chose: a bug.
    fn from(e: crate::io::parity::ParityError) -> Error {
        Error::Internal(format!("parity encoding: {e}"))
    }
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Io { path: path.as_ref().to_owned(), source }
    }

    /// Whether this error means "the bundle was rejected" (exit 1) rather than "the work
    /// could not be done" (exit 2). A bundle that does not verify when read back after
    /// writing (`--verify-written`) is a rejection too: what is on the medium is bad.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            Error::Rejected(_)
                | Error::Receipt { .. }
                | Error::Pack(crate::pack::PackError::ReadBack { .. })
                | Error::Pack(crate::pack::PackError::Refused(_))
                | Error::Sign(SignError::ReadBackRejected { .. })
        )
    }
}

impl Error {
    /// A stable snake_case name for the kind of error: what `--json` output puts in
    /// `error.kind` (docs/JSON.md), so a script can decide without reading the message.
    ///
    /// A public contract like [`Reject::kind`], whose names a rejection reports as they
    /// are. The others: `io`, `key`, `incorrect_passphrase`, `insecure_key_permissions`,
    /// `wrong_key_kind`, `output_exists`, `not_a_file`, `sign`, `sign_read_back_rejected`,
    /// `internal`, `pack`, `pack_refused`, `pack_source`, `pack_no_room`,
    /// `pack_file_too_large`, `pack_read_back_rejected`, `policy_invalid`,
    /// `policy_too_large`, `trust`, `receipt`, `mirror`, `not_a_mirror`, `already_a_mirror`,
    /// `mirror_locked`, `mirror_log_damaged`, `mirror_log_intact`, `mirror_read_only`.
    pub fn kind(&self) -> &'static str {
        use crate::mirror::MirrorError as M;
        use crate::pack::PackError as P;
        match self {
            Error::Io { .. } => "io",
            Error::Key(KeyError::IncorrectPassphrase { .. }) => "incorrect_passphrase",
            Error::Key(KeyError::InsecurePermissions { .. }) => "insecure_key_permissions",
            Error::Key(KeyError::WrongKind { .. }) => "wrong_key_kind",
            Error::Key(_) => "key",
            Error::OutputExists { .. } => "output_exists",
            Error::NotAFile { .. } => "not_a_file",
            Error::Sign(SignError::ReadBackRejected { .. }) => "sign_read_back_rejected",
            Error::Sign(_) => "sign",
            Error::Internal(_) => "internal",
            Error::Pack(P::Refused(_)) => "pack_refused",
            Error::Pack(P::Source { .. }) => "pack_source",
            Error::Pack(P::NoRoom { .. } | P::DestinationFull { .. }) => "pack_no_room",
            Error::Pack(P::FileTooLarge { .. } | P::DestinationFileTooLarge { .. }) => "pack_file_too_large",
            Error::Pack(P::ReadBack { .. }) => "pack_read_back_rejected",
            Error::Pack(_) => "pack",
            Error::Policy(crate::policy::PolicyError::Invalid { .. } | crate::policy::PolicyError::Many { .. }) => {
                "policy_invalid"
            }
            Error::Policy(crate::policy::PolicyError::TooLarge { .. }) => "policy_too_large",
            Error::Policy(_) => "trust",
            Error::Rejected(r) => r.kind(),
            Error::Receipt { .. } => "receipt",
            Error::Mirror { reason, .. } => match reason {
                M::NotAMirror => "not_a_mirror",
                M::AlreadyAMirror { .. } => "already_a_mirror",
                M::Locked => "mirror_locked",
                M::Log { .. } | M::LogHeadMismatch { .. } | M::LogHeadUnreadable(_) | M::UnloggedKeptHead { .. } => {
                    "mirror_log_damaged"
                }
                M::LogIntact => "mirror_log_intact",
                M::ReadOnlyNeedsUpgrade | M::OpenedReadOnly => "mirror_read_only",
                M::Show(crate::mirror::show::ShowError::BadSelector { .. }) => "bad_selector",
                M::Show(crate::mirror::show::ShowError::Unknown { .. }) => "unknown_import",
                M::Show(crate::mirror::show::ShowError::Ambiguous { .. }) => "ambiguous_import",
                _ => "mirror",
            },
        }
    }
}

/// Key ids for a message: `a, b` or `none`.
fn list_key_ids(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter().map(KeyId::to_string).collect::<Vec<_>>().join(", ")
}

/// Shorthand for [`Reject::Malformed`].
pub fn malformed(at: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::Rejected(Reject::Malformed { at: at.into(), problem: problem.into() })
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind names are a public contract (test vectors record them): pin every one.
    #[test]
    fn reject_kinds_are_stable() {
        let s = String::new;
        let kinds = [
            Reject::Malformed { at: s(), problem: s() },
            Reject::Truncated { at: s() },
            Reject::Manifest(ManifestError::NotCanonical),
            Reject::UnsafePath { path: s(), source: PathError::Empty },
            Reject::Untrusted(crate::policy::Shortfall::NoRule { policy: s(), channel: s(), rules: Vec::new() }),
            Reject::BadSignature { key_id: KeyId::from_hex("0000000000000000").unwrap(), what: s() },
            Reject::HashMismatch { path: s(), expected: s(), actual: s() },
            Reject::Expired { expires: s(), now: s(), floor_note: s() },
            Reject::Rollback { channel: s(), sequence: 1, last: 1 },
            Reject::Gap { channel: s(), missing: s(), last: 1, sequence: 3 },
            Reject::PreviousMismatch { channel: s(), sequence: 2, last: 1, claimed: s(), actual: s() },
            Reject::Conflict(crate::mirror::Conflicts(Vec::new())),
            Reject::TooOld { created: s(), max_age: s(), now: s() },
            Reject::Artifact { path: s(), problem: s() },
            Reject::Limit { what: s(), limit: s() },
            Reject::UntrustedSumsSigner { key_id: KeyId::from_hex("0000000000000000").unwrap(), counted: Vec::new() },
            Reject::PayloadTooLarge { declared: s(), entries: 0 },
            Reject::CreatedInFuture { created: s(), now: s(), skew: 0 },
        ]
        .map(|r| r.kind());
        assert_eq!(
            kinds,
            [
                "malformed",
                "truncated",
                "manifest",
                "unsafe_path",
                "untrusted",
                "bad_signature",
                "hash_mismatch",
                "expired",
                "rollback",
                "gap",
                "previous_mismatch",
                "conflict",
                "too_old",
                "artifact",
                "limit",
                "untrusted_sums_signer",
                "payload_too_large",
                "created_in_future",
            ]
        );
    }
}
