//! Freshness (FORMAT.md §8 step 5): is this authentic bundle one the reader should still
//! take? A `created` in the future, expiry, the channel's clock floor, rollback and replay,
//! gaps in the channel's sequence, the `previous` link, and the trust policy's maximum age,
//! all against a [`History`] of what was imported before (empty for `airlock verify` and
//! `airlock sign`).
//!
//! Everything the history contributes is per channel, so a signer trusted for one channel
//! cannot change what another channel accepts: its bundles move only their own channel's
//! clock floor, and a `created` later than the reader's clock plus the skew is refused
//! before it can move anything.

use std::collections::{BTreeMap, HashSet};

use crate::clock;
use crate::error::Reject;
use crate::format::manifest::Manifest;
use crate::io::digest::Digest;

/// Default allowance for clocks that run behind or ahead, in seconds.
pub const DEFAULT_CLOCK_SKEW: u64 = 300;

/// What to do with a bundle that skips sequence numbers in its channel, or whose `previous`
/// does not name the channel's last import.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GapPolicy {
    /// Reject it (the default).
    #[default]
    Refuse,
    /// Accept it, and report the override so it is logged (`--allow-gap`).
    AcceptAndLog,
}

/// What the reader imported before: the mirror's log, replayed. `History::default()` is
/// the empty history of a reader without a mirror (`airlock verify`, `airlock sign`), where
/// any sequence is fresh and only the clock and the policy's maximum age apply.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Per channel: the sequence number and manifest digest of its last import.
    pub last_import: BTreeMap<String, (u64, Digest)>,
    /// Per channel: the newest `created` of its imported bundles. For a bundle of that
    /// channel "now" is never earlier than this, so a machine whose clock was set back
    /// cannot be made to accept its expired bundles. Other channels' floors do not apply.
    pub clock_floors: BTreeMap<String, u64>,
    /// The digest of every manifest imported: importing one again is a no-op.
    pub imported: HashSet<Digest>,
}

/// The clock to check against.
#[derive(Clone, Copy, Debug)]
pub(super) struct Clock {
    /// The system clock (Unix seconds).
    pub(super) now: u64,
    /// Allowance for clock error, in seconds.
    pub(super) skew: u64,
}

/// The verdict of a fresh bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Freshness {
    /// Not imported before and fresh; with the operator overrides that made it so.
    Fresh {
        /// One line per override used (`allow-gap: ...`), for the log.
        overrides: Vec<String>,
    },
    /// This very manifest was imported before: nothing to do (not an error).
    AlreadyImported,
}

/// Checks `m` (whose manifest digest is `digest`) against `history`, the clock and the
/// policy's `max_age` (FORMAT.md §8 step 5, in its order).
pub(super) fn check(
    m: &Manifest,
    digest: &Digest,
    history: &History,
    clock: Clock,
    gaps: GapPolicy,
    max_age: Option<u64>,
) -> Result<Freshness, Reject> {
    if history.imported.contains(digest) {
        return Ok(Freshness::AlreadyImported);
    }
    check_not_future(m.created, clock)?;
    let floor = history.clock_floor(&m.channel);
    check_expiry(m, floor, clock)?;
    let overrides = check_sequence(m, history, gaps)?;
    check_max_age(m.created, max_age, clock.now.max(floor), clock.skew)?;
    Ok(Freshness::Fresh { overrides })
}

impl History {
    /// The clock floor of `channel` (0 before its first import).
    pub fn clock_floor(&self, channel: &str) -> u64 {
        self.clock_floors.get(channel).copied().unwrap_or(0)
    }
}

/// Refuses a bundle created later than the reader's own clock plus the skew: a packer
/// whose clock runs ahead, or a signer forging a date. Checked against the system clock,
/// never the clock floor, so that a floor can never run ahead of the reader's clock by more
/// than the skew (a floor-relative bound would let each import push it a skew further).
fn check_not_future(created: u64, clock: Clock) -> Result<(), Reject> {
    if created <= clock.now.saturating_add(clock.skew) {
        return Ok(());
    }
    Err(Reject::CreatedInFuture { created: clock::format(created), now: clock::format(clock.now), skew: clock.skew })
}

/// Expiry against the later of the clock and the channel's clock floor.
fn check_expiry(m: &Manifest, floor: u64, clock: Clock) -> Result<(), Reject> {
    let Some(expires) = m.expires else {
        return Ok(());
    };
    let effective = clock.now.max(floor);
    if effective <= expires.saturating_add(clock.skew) {
        return Ok(());
    }
    let floor_note = if floor > clock.now {
        format!(
            "; the mirror's clock floor {} for channel {:?} is later than this machine's clock",
            clock::format(floor),
            m.channel
        )
    } else {
        String::new()
    };
    Err(Reject::Expired { expires: clock::format(expires), now: clock::format(effective), floor_note })
}

/// Sequence and `previous` against the channel's last import. Returns the overrides used.
fn check_sequence(m: &Manifest, history: &History, gaps: GapPolicy) -> Result<Vec<String>, Reject> {
    let Some(&(last, last_digest)) = history.last_import.get(&m.channel) else {
        return Ok(Vec::new()); // a channel with no import yet accepts any sequence
    };
    if m.sequence <= last {
        return Err(Reject::Rollback { channel: m.channel.clone(), sequence: m.sequence, last });
    }
    // A complete (version 2) manifest that names the mirror's last manifest as `previous`
    // builds on exactly what the mirror holds: the sequences between were packed but never
    // imported (lost, or superseded), and this complete state replaces them.
    if m.is_complete() && m.previous == Some(last_digest) {
        return Ok(Vec::new());
    }
    let mut overrides = Vec::new();
    // `last < m.sequence` here, so `last + 1` cannot overflow; `saturating_add` says so
    // without a proof in the reader's head.
    let expected = last.saturating_add(1);
    if m.sequence > expected {
        if gaps == GapPolicy::Refuse {
            let missing = if m.sequence == expected.saturating_add(1) {
                format!("{expected}")
            } else {
                format!("{expected}..={}", m.sequence - 1)
            };
            return Err(Reject::Gap { channel: m.channel.clone(), missing, last, sequence: m.sequence });
        }
        overrides.push(format!("allow-gap: accepted sequence {} after {last}", m.sequence));
    } else if m.previous != Some(last_digest) {
        if gaps == GapPolicy::Refuse {
            return Err(Reject::PreviousMismatch {
                channel: m.channel.clone(),
                sequence: m.sequence,
                last,
                claimed: m.previous.map_or("nothing".into(), |d| d.to_hex()),
                actual: last_digest.to_hex(),
            });
        }
        overrides.push(format!("allow-gap: accepted a broken previous link after sequence {last}"));
    }
    Ok(overrides)
}

/// Refuses a bundle created more than `max_age` before `now` (plus `skew`).
fn check_max_age(created: u64, max_age: Option<u64>, now: u64, skew: u64) -> Result<(), Reject> {
    let Some(max_age) = max_age else {
        return Ok(());
    };
    if now > created.saturating_add(max_age).saturating_add(skew) {
        return Err(Reject::TooOld {
            created: clock::format(created),
            max_age: humantime::format_duration(std::time::Duration::from_secs(max_age)).to_string(),
            now: clock::format(now),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::tests::sample;

    const CLOCK: Clock = Clock { now: 1_700_000_100, skew: DEFAULT_CLOCK_SKEW };

    fn after(last: u64, digest: Digest) -> History {
        History { last_import: BTreeMap::from([("default".to_owned(), (last, digest))]), ..History::default() }
    }

    fn fresh(overrides: &[&str]) -> Freshness {
        Freshness::Fresh { overrides: overrides.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn an_empty_history_checks_only_the_clock_and_the_age() {
        let m = sample(); // created 1_700_000_000, expires a day later, sequence 3
        let d = Digest::of(b"m");
        assert_eq!(check(&m, &d, &History::default(), CLOCK, GapPolicy::Refuse, None).unwrap(), fresh(&[]));
        let late = Clock { now: 1_700_086_400 + DEFAULT_CLOCK_SKEW + 1, ..CLOCK };
        let err = check(&m, &d, &History::default(), late, GapPolicy::Refuse, None).unwrap_err();
        assert_eq!(err.kind(), "expired");
        let aged = Clock { now: 1_700_000_000 + 10 + DEFAULT_CLOCK_SKEW + 1, ..CLOCK };
        check(&m, &d, &History::default(), CLOCK, GapPolicy::Refuse, Some(10)).unwrap();
        let err = check(&m, &d, &History::default(), aged, GapPolicy::Refuse, Some(10)).unwrap_err();
        assert_eq!(err.kind(), "too_old");
    }

    #[test]
    fn the_clock_floor_decides_when_it_is_later_and_says_so() {
        let m = sample();
        let floors = BTreeMap::from([(m.channel.clone(), 1_800_000_000)]);
        let history = History { clock_floors: floors, ..History::default() };
        let err = check(&m, &Digest::of(b"m"), &history, CLOCK, GapPolicy::Refuse, None).unwrap_err();
        assert!(err.to_string().contains("the mirror's clock floor"), "{err}");
        assert!(err.to_string().contains(&format!("for channel {:?}", m.channel)), "{err}");
    }

    #[test]
    fn another_channels_clock_floor_does_not_apply() {
        let m = sample();
        let floors = BTreeMap::from([(format!("{}-other", m.channel), u64::MAX)]);
        let history = History { clock_floors: floors, ..History::default() };
        assert_eq!(check(&m, &Digest::of(b"m"), &history, CLOCK, GapPolicy::Refuse, Some(60)).unwrap(), fresh(&[]));
    }

    #[test]
    fn a_created_beyond_the_clock_and_skew_is_refused() {
        let mut m = sample();
        let d = Digest::of(b"m");
        m.created = CLOCK.now + CLOCK.skew;
        m.expires = None;
        check(&m, &d, &History::default(), CLOCK, GapPolicy::Refuse, None).unwrap();
        m.created += 1;
        let err = check(&m, &d, &History::default(), CLOCK, GapPolicy::Refuse, None).unwrap_err();
        assert_eq!(err.kind(), "created_in_future");
        let skewless = Clock { now: u64::MAX, skew: u64::MAX };
        m.created = u64::MAX;
        check(&m, &d, &History::default(), skewless, GapPolicy::Refuse, None).unwrap();
    }

    #[test]
    fn sequence_rules_and_the_gap_policy() {
        let m = sample(); // sequence 3, previous [9; 32]
        let d = Digest::of(b"m");
        let linked = Digest([9; 32]);
        assert_eq!(check(&m, &d, &after(2, linked), CLOCK, GapPolicy::Refuse, None).unwrap(), fresh(&[]));
        assert_eq!(check(&m, &d, &after(3, linked), CLOCK, GapPolicy::Refuse, None).unwrap_err().kind(), "rollback");
        let gap = check(&m, &d, &after(1, linked), CLOCK, GapPolicy::Refuse, None).unwrap_err();
        assert_eq!(gap.kind(), "gap");
        assert_eq!(
            check(&m, &d, &after(1, linked), CLOCK, GapPolicy::AcceptAndLog, None).unwrap(),
            fresh(&["allow-gap: accepted sequence 3 after 1"])
        );
        let other = Digest([1; 32]);
        let broken = check(&m, &d, &after(2, other), CLOCK, GapPolicy::Refuse, None).unwrap_err();
        assert_eq!(broken.kind(), "previous_mismatch");
        assert_eq!(
            check(&m, &d, &after(2, other), CLOCK, GapPolicy::AcceptAndLog, None).unwrap(),
            fresh(&["allow-gap: accepted a broken previous link after sequence 2"])
        );
    }

    #[test]
    fn a_complete_manifest_linked_to_the_last_import_skips_lost_sequences() {
        let mut m = crate::format::manifest::tests::sample_v2(); // sequence 3, previous [9; 32]
        let d = Digest::of(b"m");
        let linked = Digest([9; 32]);
        assert_eq!(check(&m, &d, &after(1, linked), CLOCK, GapPolicy::Refuse, None).unwrap(), fresh(&[]));
        // Not linked to what the mirror holds: still a gap, and a rollback is still one.
        assert_eq!(
            check(&m, &d, &after(1, Digest([1; 32])), CLOCK, GapPolicy::Refuse, None).unwrap_err().kind(),
            "gap"
        );
        assert_eq!(check(&m, &d, &after(3, linked), CLOCK, GapPolicy::Refuse, None).unwrap_err().kind(), "rollback");
        // A version-1 manifest keeps the strict rule.
        m.version = crate::format::manifest::VERSION_1;
        assert_eq!(check(&m, &d, &after(1, linked), CLOCK, GapPolicy::Refuse, None).unwrap_err().kind(), "gap");
    }

    #[test]
    fn a_manifest_imported_before_is_a_no_op_even_when_stale() {
        let m = sample();
        let d = Digest::of(b"m");
        let history = History { imported: HashSet::from([d]), ..after(3, d) };
        let late = Clock { now: u64::MAX / 2, ..CLOCK };
        assert_eq!(check(&m, &d, &history, late, GapPolicy::Refuse, Some(1)).unwrap(), Freshness::AlreadyImported);
    }
}
