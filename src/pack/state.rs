//! [`ChannelState`]: the packing machine's memory of each channel.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::PackError;
use crate::error::{Error, Result};
use crate::format::receipt::{self, Receipt, ReceiptError, MAX_RECEIPT_BYTES};
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
