//! Wall-clock time, and its text forms.
//!
//! All times in airlock are whole seconds since the Unix epoch, UTC. The library never reads
//! the clock behind its caller's back where time decides acceptance: pack, verify and import
//! take "now" as an option (the command line fills it from the system clock, or from
//! `AIRLOCK_NOW` for tests and drills).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The system clock in Unix seconds (0 before 1970).
pub fn system_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// RFC 3339 text (`2026-11-25T06:00:00Z`).
pub fn format(t: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
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
}
