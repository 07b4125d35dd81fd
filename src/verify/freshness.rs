//! Freshness (FORMAT.md §8 step 5): is this authentic bundle one the reader should still
//! take? Expiry, the mirror's clock floor, rollback and replay, gaps in the channel's
//! sequence, the `previous` link, and the trust policy's maximum age, all against a
//! [`History`] of what was imported before (empty for `airlock verify`).

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
    /// The newest `created` of any imported bundle: "now" is never earlier than this, so a
    /// machine whose clock was set back cannot be made to accept expired bundles.
    pub clock_floor: u64,
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
    let now = clock.now.max(history.clock_floor);
    check_expiry(m, history, clock)?;
    let overrides = check_sequence(m, history, gaps)?;
    check_max_age(m.created, max_age, now, clock.skew)?;
    Ok(Freshness::Fresh { overrides })
}

/// Expiry against the later of the clock and the history's clock floor.
fn check_expiry(m: &Manifest, history: &History, clock: Clock) -> Result<(), Reject> {
    let Some(expires) = m.expires else {
        return Ok(());
    };
    let effective = clock.now.max(history.clock_floor);
    if effective <= expires.saturating_add(clock.skew) {
        return Ok(());
    }
    let floor_note = if history.clock_floor > clock.now {
        format!("; the mirror's clock floor {} is later than this machine's clock", clock::format(history.clock_floor))
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
        let history = History { clock_floor: 1_800_000_000, ..History::default() };
        let err = check(&m, &Digest::of(b"m"), &history, CLOCK, GapPolicy::Refuse, None).unwrap_err();
        assert!(err.to_string().contains("the mirror's clock floor"), "{err}");
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
    fn a_manifest_imported_before_is_a_no_op_even_when_stale() {
        let m = sample();
        let d = Digest::of(b"m");
        let history = History { imported: HashSet::from([d]), ..after(3, d) };
        let late = Clock { now: u64::MAX / 2, ..CLOCK };
        assert_eq!(check(&m, &d, &history, late, GapPolicy::Refuse, Some(1)).unwrap(), Freshness::AlreadyImported);
    }
}
