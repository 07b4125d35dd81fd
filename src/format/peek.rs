//! The one piece of manifest parsing that runs on unverified bytes (docs/FORMAT.md §8 step 2).
//!
//! To pick the trust rule for a bundle, a reader needs the bundle's `channel` (and, for
//! revocation times, `created`) *before* the signatures are checked, and the CBOR decoder must
//! not run on unverified input. The canonical encoding puts these fields at fixed places right
//! after the manifest [`prefix`](crate::format::manifest::prefix_for), so a small cursor reads them without decoding anything else.
//! The verifier then compares them with the decoded manifest once the signatures verified.
//! The cursor is fuzzed (`fuzz/targets.rs`, `manifest`) against [`decode`](super::manifest::decode).

use crate::error::Reject;
use crate::format::manifest::{push_text, split_prefix, ManifestError};

/// Reads `channel` and `created` from manifest bytes *before* their signatures are checked,
/// so the trust policy can pick the channel's signer rule (and apply revocation times)
/// without running the CBOR decoder on unverified input. It reads only the fixed-layout
/// fields right after [`prefix`](crate::format::manifest::prefix_for) (`bundle_id`, `created`, `expires`, `channel`); the caller
/// MUST compare the result with the decoded manifest once the signatures verified.
pub fn peek_channel_created(bytes: &[u8]) -> Result<(String, u64), Reject> {
    // Another version is named as such, not "not a manifest".
    let (_, rest) = split_prefix(bytes)?;
    let bad = || Reject::Manifest(ManifestError::PeekNotAManifest);
    let mut r = Peek(rest);
    r.key("bundle_id")?;
    if r.take(17)?[0] != 0x50 {
        return Err(bad());
    }
    r.key("created")?;
    let created = r.uint()?.ok_or_else(bad)?;
    r.key("expires")?;
    r.uint()?;
    r.key("channel")?;
    let len = match r.take(1)?[0] {
        b @ 0x60..=0x77 => usize::from(b - 0x60),
        0x78 => usize::from(r.take(1)?[0]),
        _ => return Err(bad()),
    };
    let channel = String::from_utf8(r.take(len)?.to_vec()).map_err(|_| bad())?;
    Ok((channel, created))
}

/// A cursor over canonical manifest bytes, for [`peek_channel_created`].
struct Peek<'a>(&'a [u8]);

impl<'a> Peek<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Reject> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(Reject::Manifest(ManifestError::PeekTruncated))?;
        self.0 = tail;
        Ok(head)
    }

    fn key(&mut self, name: &'static str) -> Result<(), Reject> {
        let mut want = Vec::new();
        push_text(&mut want, name);
        if self.take(want.len())? != want.as_slice() {
            return Err(Reject::Manifest(ManifestError::PeekExpectedKey(name)));
        }
        Ok(())
    }

    /// A canonical unsigned integer, or `None` for CBOR null.
    fn uint(&mut self) -> Result<Option<u64>, Reject> {
        let first = self.take(1)?[0];
        let extra = match first {
            0x00..=0x17 => return Ok(Some(u64::from(first))),
            0x18 => 1,
            0x19 => 2,
            0x1a => 4,
            0x1b => 8,
            0xf6 => return Ok(None),
            _ => return Err(Reject::Manifest(ManifestError::PeekExpectedInteger)),
        };
        Ok(Some(self.take(extra)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::encode;
    use crate::format::manifest::tests::sample;

    #[test]
    fn peek_reads_channel_and_created() {
        let mut m = crate::format::manifest::tests::sample_v2();
        assert_eq!(peek_channel_created(&encode(&m).unwrap()).unwrap(), ("default".into(), 1_700_000_000));
        m = sample();
        assert_eq!(peek_channel_created(&encode(&m).unwrap()).unwrap(), ("default".into(), 1_700_000_000));
        m.channel = "a-much-longer-channel-name-of-forty-bytes".into();
        m.expires = None;
        m.created = 5;
        assert_eq!(peek_channel_created(&encode(&m).unwrap()).unwrap(), (m.channel.clone(), 5));
        let bytes = encode(&m).unwrap();
        assert!(matches!(peek_channel_created(&bytes[..50]), Err(Reject::Manifest(ManifestError::PeekTruncated))));
        assert!(peek_channel_created(b"junk").is_err());
    }
}
