//! Wall-clock time, and its text forms.
//!
//! All times in airlock are whole seconds since the Unix epoch, UTC. The library never reads
//! the clock behind its caller's back where time decides acceptance: pack, verify and import
//! take "now" as an option (the command line fills it from the system clock, or from
//! `AIRLOCK_NOW` for tests and drills).
//!
//! Every time is printed through [`format()`], which is total: a manifest or a log may hold
//! any `u64` (a hostile signer, a packer with a broken clock, an edited log), and printing
//! one must never fail. Times up to [`LAST_RFC3339`] (the last second of year 9999) print as
//! RFC 3339 text; later ones print as `@` followed by the decimal Unix seconds
//! (`@253402300800`), the notation GNU `date -d @N` reads. The `@` cannot start an RFC 3339
//! time, so the two forms never read as each other.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second RFC 3339 text can show: 9999-12-31T23:59:59Z (its year has four
/// digits). [`format()`] prints later times as `@<seconds>`.
pub const LAST_RFC3339: u64 = 253_402_300_799;

/// The system clock in Unix seconds (0 before 1970).
pub fn system_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// RFC 3339 text (`2026-11-25T06:00:00Z`) for `t` up to [`LAST_RFC3339`], else `@` and the
/// decimal seconds (`@253402300800`). Total: never panics, whatever `t` is.
pub fn format(t: u64) -> String {
    let seconds = || format!("@{t}");
    if t > LAST_RFC3339 {
        return seconds();
    }
    let Some(time) = UNIX_EPOCH.checked_add(Duration::from_secs(t)) else {
        return seconds();
    };
    // humantime's Display fails (rather than panics) past year 9999; `to_string` would
    // turn that failure into a panic, so the error is caught here.
    let mut text = String::new();
    match write!(text, "{}", humantime::format_rfc3339_seconds(time)) {
        Ok(()) => text,
        Err(_) => seconds(),
    }
}

/// Parses an expiry given on the command line: a duration from `now` (`30d`, `12h`,
/// `2w`), an RFC 3339 time, or a date (`2026-12-31`, meaning its start, UTC).
pub fn parse_expiry(text: &str, now: u64) -> Result<u64, String> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(now.saturating_add(d.as_secs()));
    }
    parse_time(text).ok_or_else(|| {
        format!("{text:?} is neither a duration (30d, 12h, 2w) nor a date (2026-12-31 or 2026-12-31T12:00:00Z)")
    })
}

/// Parses a point in time: an RFC 3339 time (`2026-12-31T12:00:00Z`) or a date
/// (`2026-12-31`, meaning its start, UTC). Times before 1970 read as 0.
pub fn parse_time(text: &str) -> Option<u64> {
    let candidate = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_owned() };
    let t = humantime::parse_rfc3339_weak(&candidate).ok()?;
    Some(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_forms() {
        assert_eq!(parse_expiry("1d", 100).unwrap(), 100 + 86_400);
        assert_eq!(parse_expiry("1970-01-02", 0).unwrap(), 86_400);
        assert_eq!(parse_expiry("1970-01-01T00:01:00Z", 0).unwrap(), 60);
        assert!(parse_expiry("soon", 0).is_err());
        assert_eq!(format(86_400), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn every_time_formats_and_far_ones_print_as_seconds() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        assert_eq!(format(LAST_RFC3339), "9999-12-31T23:59:59Z");
        assert_eq!(format(LAST_RFC3339 + 1), "@253402300800");
        assert_eq!(format(1 << 40), "@1099511627776");
        assert_eq!(format(i64::MAX as u64), format!("@{}", i64::MAX));
        assert_eq!(format(u64::MAX), "@18446744073709551615");
    }

    #[test]
    fn what_format_prints_in_range_parses_back() {
        for t in [0, 1, 86_399, 1_700_000_000, 4_102_444_800, LAST_RFC3339] {
            assert_eq!(parse_time(&format(t)), Some(t), "{t}");
        }
    }
}
