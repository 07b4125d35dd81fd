//! [`ChannelState`]: the packing machine's memory of each channel, and of every manifest it
//! packed, so a receipt naming one of them can be turned into a delta (`pack --since`).
//!
//! ```text
//! <state>/channels/<channel>          "sequence N\nmanifest-sha256 <hex>\n"
//! <state>/manifests/<sha256>.cbor     the exact manifest bytes of each bundle packed
//! ```

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{PackBase, PackError};
use crate::error::{Error, Result};
use crate::format::manifest::{self, Manifest};
use crate::format::receipt::{self, state_root, Receipt, ReceiptError, MAX_RECEIPT_BYTES};
use crate::format::{kept_head_name, MANIFEST_MEMBER};
use crate::io::digest::Digest;
use crate::io::durable::{self, Overwrite};
use crate::keys::{KeyId, PublicKey};

/// The packing machine's memory of each channel: the last sequence packed and its manifest
/// digest, so the next pack can number itself and link to its predecessor.
///
/// Each record is written durably (see [`crate::io::durable`]): after a power cut the file
/// holds the last recorded bundle, never an empty or torn file that would stop the next
/// pack, nor an older one that would make it reuse a sequence number.
pub struct ChannelState {
    dir: PathBuf,
}

impl ChannelState {
    /// State kept in `dir` (one small file per channel under `dir/channels/`). The caller
    /// chooses the directory; the CLI's default is `$AIRLOCK_STATE_DIR`, else
    /// `$XDG_DATA_HOME/airlock`, else `~/.local/share/airlock`.
    pub fn new(dir: PathBuf) -> ChannelState {
        ChannelState { dir }
    }

    fn file(&self, channel: &str) -> PathBuf {
        self.dir.join("channels").join(channel)
    }

    /// The directory of the kept manifests.
    pub fn manifests_dir(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    fn manifest_file(&self, digest: &Digest) -> PathBuf {
        self.manifests_dir().join(format!("{digest}.cbor"))
    }

    /// The last (sequence, manifest digest) packed for `channel`.
    pub fn last(&self, channel: &str) -> Result<Option<(u64, Digest)>> {
        let path = self.file(channel);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let bad = || Error::Pack(PackError::ChannelState { path: path.clone() });
        let mut sequence = None;
        let mut digest = None;
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("sequence", v)) => sequence = v.parse().ok(),
                Some(("manifest-sha256", v)) => digest = Digest::from_hex(v),
                _ => return Err(bad()),
            }
        }
        Ok(Some((sequence.ok_or_else(bad)?, digest.ok_or_else(bad)?)))
    }

    /// Records a packed bundle, durably.
    pub fn record(&self, channel: &str, sequence: u64, digest: &Digest) -> Result<()> {
        let path = self.file(channel);
        create_dir_durably(durable::parent_dir(&path))?;
        let text = format!("sequence {sequence}\nmanifest-sha256 {digest}\n");
        durable::write_bytes(&path, 0o600, Overwrite::Replace, text.as_bytes())
    }

    /// Records a packed bundle: first keeps its manifest bytes (durably, under their digest),
    /// then its sequence. A crash between the two leaves a kept manifest and the old
    /// sequence: the next pack reuses nothing.
    pub fn record_packed(&self, channel: &str, sequence: u64, manifest_bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(manifest_bytes);
        self.keep_manifest(&digest, manifest_bytes)?;
        self.record(channel, sequence, &digest)?;
        Ok(digest)
    }

    /// Keeps manifest bytes under their digest, durably (a manifest already kept is left
    /// alone: the name is its content's hash).
    pub fn keep_manifest(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let path = self.manifest_file(digest);
        if path.is_file() {
            return Ok(());
        }
        create_dir_durably(durable::parent_dir(&path))?;
        durable::write_bytes(&path, 0o644, Overwrite::Replace, bytes)
    }

    /// The kept manifest with `digest`, if this state holds it. A kept file whose bytes do
    /// not hash to its name is refused by name.
    pub fn kept_manifest(&self, digest: &Digest) -> Result<Option<Manifest>> {
        let path = self.manifest_file(digest);
        let bytes = match read_bounded(&path, manifest::Limits::LARGEST.manifest_bytes) {
            Ok(b) => b,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if Digest::of(&bytes) != *digest {
            return Err(Error::Pack(PackError::Base(BaseProblem::KeptManifestDamaged { path })));
        }
        let manifest = manifest::decode(&bytes)
            .map_err(|_| Error::Pack(PackError::Base(BaseProblem::KeptManifestDamaged { path })))?;
        Ok(Some(manifest))
    }

    /// The sequence and `previous` for a bundle built from a receipt that says the mirror
    /// holds bundle `received` (sequence, manifest digest) of `channel`: one more than the
    /// larger of the last packed here and the received one, linked to the received
    /// manifest, which is what the mirror really has. Needs no state at all: a lost state
    /// directory is recovered from the receipt.
    pub fn next_since(&self, channel: &str, received: (u64, Digest)) -> Result<(u64, Digest)> {
        let last = self.last(channel)?.map_or(0, |(s, _)| s);
        let sequence = last
            .max(received.0)
            .checked_add(1)
            .ok_or_else(|| Error::Pack(PackError::SequenceExhausted { channel: channel.to_owned() }))?;
        Ok((sequence, received.1))
    }

    /// The sequence and `previous` for the next bundle: one more than the last, linked to it;
    /// with an explicit sequence, linked only if it directly follows the last.
    pub fn next(&self, channel: &str, explicit: Option<u64>) -> Result<(u64, Option<Digest>)> {
        let last = self.last(channel)?;
        let sequence = match (explicit, last) {
            (Some(s), _) => s,
            (None, None) => 1,
            (None, Some((s, _))) => s
                .checked_add(1)
                .ok_or_else(|| Error::Pack(PackError::SequenceExhausted { channel: channel.to_owned() }))?,
        };
        let previous = last.filter(|(s, _)| s.checked_add(1) == Some(sequence)).map(|(_, d)| d);
        Ok((sequence, previous))
    }
}

/// Why the base a receipt names cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaseProblem {
    /// The manifest the receipt names is not kept in the state directory, and no other
    /// source of it was given.
    #[error(
        "the receipt says the mirror holds manifest {manifest} of channel {channel:?}, which is not kept in {}; give the bundle (or kept head) of that manifest as the base",
        dir.display()
    )]
    NotKept {
        /// The channel.
        channel: String,
        /// The manifest digest the receipt names.
        manifest: Digest,
        /// The state's manifest directory.
        dir: PathBuf,
    },
    /// The given base is not the manifest the receipt names.
    #[error("{} holds manifest {found}, but the receipt says the mirror holds manifest {expected} of channel {channel:?}; give the bundle of that manifest", path.display())]
    WrongManifest {
        /// The base given.
        path: PathBuf,
        /// Its manifest's digest.
        found: Digest,
        /// The digest the receipt names.
        expected: Digest,
        /// The channel.
        channel: String,
    },
    /// The manifest the receipt names belongs to another channel.
    #[error("manifest {manifest} is of channel {found:?}, but the receipt lists it for channel {channel:?}")]
    OtherChannel {
        /// The digest.
        manifest: Digest,
        /// The manifest's own channel.
        found: String,
        /// The channel the receipt lists it under.
        channel: String,
    },
    /// A kept manifest's bytes do not hash to its name, or do not decode.
    #[error("{}: kept manifest is damaged (its bytes do not match its name); delete it and give the bundle as the base", path.display())]
    KeptManifestDamaged {
        /// The file.
        path: PathBuf,
    },
}

/// How `pack --since` builds on a receipt, for one channel: [`plan_since`].
#[derive(Debug)]
pub struct SincePlan {
    /// The sequence of the bundle to pack.
    pub sequence: u64,
    /// Its `previous`: the manifest the mirror holds, or the last packed here if the
    /// receipt does not list the channel.
    pub previous: Option<Digest>,
    /// The base to omit entries against; `None` for a full bundle.
    pub base: Option<PackBase>,
    /// The entries of the manifest the mirror holds (to count what is retired), if listed.
    pub held: Option<Manifest>,
    /// Why the bundle carries everything, if it does.
    pub full: Option<FullReason>,
}

/// Why a bundle built from a receipt carries every entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullReason {
    /// The receipt does not list the channel: the mirror has never imported it.
    NotListed,
    /// The receipt says the channel's files are damaged.
    Damaged,
    /// The root the receipt states differs from the root of the manifest it names.
    RootDiffers,
}

impl std::fmt::Display for FullReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FullReason::NotListed => "the receipt does not list the channel (the mirror has never imported it)",
            FullReason::Damaged => "the receipt says the mirror's files of the channel are damaged",
            FullReason::RootDiffers => {
                "the mirror's files of the channel differ from the manifest the receipt names (the roots differ)"
            }
        })
    }
}

/// Plans a bundle of `channel` for the mirror that signed `receipt`. The manifest it
/// names is found in `state`, else in `base_source` (a bundle, a kept head directory or a
/// manifest file, whose manifest digest must be the one named; it is then kept in
/// `state`). A damaged channel, or one whose stated root differs from the manifest's,
/// gets a full bundle still linked to the manifest the mirror holds.
pub fn plan_since(
    state: &ChannelState,
    receipt: &Receipt,
    channel: &str,
    base_source: Option<&Path>,
) -> Result<SincePlan> {
    let Some(listed) = receipt.channel(channel) else {
        let (sequence, previous) = state.next(channel, None)?;
        return Ok(SincePlan { sequence, previous, base: None, held: None, full: Some(FullReason::NotListed) });
    };
    let (sequence, previous) = state.next_since(channel, (listed.sequence, listed.manifest))?;
    let held = match state.kept_manifest(&listed.manifest)? {
        Some(m) => m,
        None => {
            let Some(path) = base_source else {
                return Err(Error::Pack(PackError::Base(BaseProblem::NotKept {
                    channel: channel.to_owned(),
                    manifest: listed.manifest,
                    dir: state.manifests_dir(),
                })));
            };
            let bytes = base_manifest_bytes(path)?;
            let found = Digest::of(&bytes);
            if found != listed.manifest {
                return Err(Error::Pack(PackError::Base(BaseProblem::WrongManifest {
                    path: path.to_owned(),
                    found,
                    expected: listed.manifest,
                    channel: channel.to_owned(),
                })));
            }
            // Identified by its digest, which the signed receipt names: no signature needed.
            let m = manifest::decode(&bytes)?;
            state.keep_manifest(&found, &bytes)?;
            m
        }
    };
    if held.channel != channel {
        return Err(Error::Pack(PackError::Base(BaseProblem::OtherChannel {
            manifest: listed.manifest,
            found: held.channel.clone(),
            channel: channel.to_owned(),
        })));
    }
    let full = if !listed.intact {
        Some(FullReason::Damaged)
    } else if state_root(&held.entries) != listed.root {
        Some(FullReason::RootDiffers)
    } else {
        None
    };
    let base = full.is_none().then(|| PackBase {
        mirror: receipt.mirror,
        manifest: listed.manifest,
        entries: held.entries.clone(),
    });
    Ok(SincePlan { sequence, previous: Some(previous), base, held: Some(held), full })
}

/// The manifest bytes of a base given by path: a kept head directory (its
/// `manifest.cbor`), a bare manifest file (it starts with the CBOR self-describe tag), or a
/// bundle (its head frame only is read).
fn base_manifest_bytes(path: &Path) -> Result<Vec<u8>> {
    let kept = path.join(kept_head_name(MANIFEST_MEMBER));
    if path.is_dir() {
        return read_bounded(&kept, manifest::Limits::LARGEST.manifest_bytes);
    }
    if file_start(path, 3)? == [0xd9, 0xd9, 0xf7] {
        return read_bounded(path, manifest::Limits::LARGEST.manifest_bytes);
    }
    Ok(crate::verify::Bundle::open(path)?.head().manifest_bytes.clone())
}

/// The first `n` bytes of a file (fewer if it is shorter).
pub(crate) fn file_start(path: &Path, n: u64) -> Result<Vec<u8>> {
    let mut start = Vec::new();
    File::open(path).and_then(|f| f.take(n).read_to_end(&mut start)).map_err(|e| Error::io(path, e))?;
    Ok(start)
}

/// Reads a whole file of at most `limit` bytes; a larger one is refused as damaged.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::Pack(PackError::Base(BaseProblem::KeptManifestDamaged { path: path.to_owned() })));
    }
    Ok(bytes)
}

/// Reads the signed receipt at `path` and checks it against `trusted` (see
/// [`receipt::open_signed`]): the receipt and the key that signed it. Reads at most one
/// byte more than a receipt can be, so a huge file is refused without reading it.
pub fn read_receipt(path: &Path, trusted: &[PublicKey]) -> Result<(Receipt, KeyId)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if !file.metadata().map_err(|e| Error::io(path, e))?.is_file() {
        return Err(Error::NotAFile { path: path.to_owned() });
    }
    let mut bytes = Vec::new();
    file.take(MAX_RECEIPT_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    let bad = |reason: ReceiptError| Error::Receipt { path: path.to_owned(), reason };
    receipt::open_signed(&bytes, trusted).map_err(bad)
}

/// Creates `dir` and its missing ancestors, and fsyncs the parent of each one created, so
/// the state file written into it is reachable after a power cut.
fn create_dir_durably(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for created in missing {
        durable::sync_dir(durable::parent_dir(created))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_bundle_follows_the_last_recorded_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = ChannelState::new(dir.path().join("new/state"));
        assert_eq!(state.next("ch", None).unwrap(), (1, None));
        let digest = Digest::of(b"manifest");
        state.record("ch", 1, &digest).unwrap();
        assert_eq!(state.last("ch").unwrap(), Some((1, digest)));
        assert_eq!(state.next("ch", None).unwrap(), (2, Some(digest)));
        assert_eq!(state.next("ch", Some(5)).unwrap(), (5, None));
        assert_eq!(state.next("other", None).unwrap(), (1, None));
        let names: Vec<_> =
            fs::read_dir(dir.path().join("new/state/channels")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["ch"], "no temporary file is left beside the state");
    }

    #[test]
    fn no_bundle_follows_the_largest_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let state = ChannelState::new(dir.path().to_owned());
        state.record("ch", u64::MAX, &Digest::of(b"manifest")).unwrap();
        assert!(matches!(state.next("ch", None), Err(Error::Pack(PackError::SequenceExhausted { .. }))));
        assert_eq!(state.next("ch", Some(1)).unwrap(), (1, None));
    }

    #[test]
    fn a_receipt_numbers_after_both_and_links_to_what_the_mirror_holds() {
        let dir = tempfile::tempdir().unwrap();
        let state = ChannelState::new(dir.path().to_owned());
        let held = Digest::of(b"held");
        // No state at all: recovered from the receipt alone.
        assert_eq!(state.next_since("ch", (4, held)).unwrap(), (5, held));
        state.record("ch", 7, &Digest::of(b"lost")).unwrap();
        assert_eq!(state.next_since("ch", (4, held)).unwrap(), (8, held));
        assert!(state.next_since("ch", (u64::MAX, held)).is_err());
    }

    #[test]
    fn kept_manifests_are_checked_against_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let state = ChannelState::new(dir.path().to_owned());
        let mut m = crate::format::manifest::tests::sample_v2();
        m.channel = "ch".into();
        let bytes = manifest::encode(&m).unwrap();
        let digest = state.record_packed("ch", 3, &bytes).unwrap();
        assert_eq!(state.last("ch").unwrap(), Some((3, digest)));
        assert_eq!(state.kept_manifest(&digest).unwrap(), Some(m));
        assert_eq!(state.kept_manifest(&Digest::of(b"other")).unwrap(), None);
        fs::write(state.manifest_file(&digest), b"not it").unwrap();
        assert!(matches!(
            state.kept_manifest(&digest),
            Err(Error::Pack(PackError::Base(BaseProblem::KeptManifestDamaged { .. })))
        ));
    }

    #[test]
    fn a_damaged_state_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let state = ChannelState::new(dir.path().to_owned());
        fs::create_dir_all(dir.path().join("channels")).unwrap();
        fs::write(dir.path().join("channels/ch"), "").unwrap();
        match state.last("ch") {
            Err(Error::Pack(PackError::ChannelState { path })) => assert_eq!(path, dir.path().join("channels/ch")),
            other => panic!("expected a channel state error, got {other:?}"),
        }
    }
}
