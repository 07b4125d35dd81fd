//! [`Release`]: the signed text of an `InRelease` (or a `Release` whose `Release.gpg`
//! verified), read as apt reads it.

use std::collections::{BTreeMap, HashSet};

use crate::io::digest::Digest;

use super::control::{self, Line};
use super::error::{shown, DebianError, FieldProblem};

/// The signed text of an InRelease (or a Release whose Release.gpg verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// `Origin:` ("Debian").
    pub origin: Option<String>,
    /// `Label:` ("Debian").
    pub label: Option<String>,
    /// `Suite:` ("stable", "oldstable-updates").
    pub suite: Option<String>,
    /// `Codename:` ("bookworm", "bookworm-updates").
    pub codename: Option<String>,
    /// `Date:`, Unix seconds.
    pub date: u64,
    /// `Valid-Until:`, Unix seconds (the security suite sets it a week ahead; most suites
    /// have none).
    pub valid_until: Option<u64>,
    /// `Acquire-By-Hash: yes`: the index files are also served as `by-hash/SHA256/<hex>`.
    pub acquire_by_hash: bool,
    /// `SHA256:` lines: path relative to the `dists/<suite>/` directory -> (size, sha256).
    pub sha256: BTreeMap<String, (u64, Digest)>,
}

/// The fields read; everything else (including `MD5Sum` and `SHA1`) is skipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Origin,
    Label,
    Suite,
    Codename,
    Date,
    ValidUntil,
    AcquireByHash,
    Sha256,
}

impl Known {
    const ALL: [Known; 8] = [
        Known::Origin,
        Known::Label,
        Known::Suite,
        Known::Codename,
        Known::Date,
        Known::ValidUntil,
        Known::AcquireByHash,
        Known::Sha256,
    ];

    fn name(self) -> &'static str {
        match self {
            Known::Origin => "Origin",
            Known::Label => "Label",
            Known::Suite => "Suite",
            Known::Codename => "Codename",
            Known::Date => "Date",
            Known::ValidUntil => "Valid-Until",
            Known::AcquireByHash => "Acquire-By-Hash",
            Known::Sha256 => "SHA256",
        }
    }

    fn of(name: &[u8]) -> Option<Known> {
        Known::ALL.into_iter().find(|known| control::is_field(name, known.name()))
    }
}

/// What the parser is inside of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first field (blank lines are skipped).
    Start,
    /// After a field line: continuation lines belong to it.
    In(Option<Known>),
    /// After the paragraph's end: only blank lines may follow.
    Ended,
}

impl Release {
    /// Parses the signed text: one paragraph of Debian control data. `Date` and `SHA256` are
    /// required; a field given twice, a second paragraph, or a malformed line is an error
    /// naming the line (apt would read such a file differently, or not at all).
    pub fn parse(signed_text: &[u8]) -> Result<Release, DebianError> {
        let mut builder = Builder::default();
        let mut state = State::Start;
        for (index, raw) in signed_text.split(|&b| b == b'\n').enumerate() {
            let line = index + 1;
            let at = |problem| DebianError::ReleaseLine { line, problem };
            state = builder.line(state, raw).map_err(at)?;
        }
        builder.finish()
    }

    /// The size and SHA-256 for a file of this `dists/<suite>/` directory, including
    /// `by-hash/SHA256/<hex>` names: `main/binary-amd64/by-hash/SHA256/<hex>` is expected to
    /// be the file of `main/binary-amd64/` that the `SHA256` field lists with that digest.
    pub fn expect(&self, rel: &str) -> Option<(u64, Digest)> {
        if let Some(listed) = self.sha256.get(rel) {
            return Some(*listed);
        }
        let (directory, digest) = by_hash_name(rel)?;
        self.sha256
            .iter()
            .find(|(path, (_, listed))| *listed == digest && parent(path) == directory)
            .map(|(_, listed)| *listed)
    }
}

/// `dir/by-hash/SHA256/<hex>` -> (`dir`, digest); `by-hash/SHA256/<hex>` -> (``, digest).
/// The hex must be lowercase, as the archive names the files.
fn by_hash_name(rel: &str) -> Option<(&str, Digest)> {
    let (directory, hex) = match rel.rsplit_once("/by-hash/SHA256/") {
        Some(split) => split,
        None => ("", rel.strip_prefix("by-hash/SHA256/")?),
    };
    let digest = control::digest("SHA256", hex).ok()?;
    (digest.to_hex() == hex).then_some((directory, digest))
}

/// The directory part of a path (`` for a top-level name).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(directory, _)| directory)
}

#[derive(Default)]
struct Builder {
    seen: HashSet<String>,
    origin: Option<String>,
    label: Option<String>,
    suite: Option<String>,
    codename: Option<String>,
    date: Option<u64>,
    valid_until: Option<u64>,
    acquire_by_hash: Option<bool>,
    sha256: Option<BTreeMap<String, (u64, Digest)>>,
}

impl Builder {
    fn line(&mut self, state: State, raw: &[u8]) -> Result<State, FieldProblem> {
        match (control::classify(raw)?, state) {
            (Line::Blank, State::Start) => Ok(State::Start),
            (Line::Blank, _) => Ok(State::Ended),
            (_, State::Ended) => Err(FieldProblem::SecondParagraph),
            (Line::Continuation(_), State::Start) => Err(FieldProblem::ContinuationFirst),
            (Line::Continuation(value), State::In(field)) => {
                self.continuation(field, value)?;
                Ok(state)
            }
            (Line::Field { name, value }, _) => self.field(name, value).map(State::In),
        }
    }

    fn field(&mut self, name: &[u8], value: &[u8]) -> Result<Option<Known>, FieldProblem> {
        if !self.seen.insert(String::from_utf8_lossy(name).to_ascii_lowercase()) {
            return Err(FieldProblem::Duplicate(shown(&String::from_utf8_lossy(name))));
        }
        let Some(known) = Known::of(name) else {
            return Ok(None);
        };
        let value = control::text(value)?;
        let field = known.name();
        let one_line = || match value {
            "" => Err(FieldProblem::EmptyValue(field)),
            _ if value.chars().any(char::is_control) => Err(FieldProblem::ControlCharacter(field)),
            _ => Ok(value.to_owned()),
        };
        match known {
            Known::Origin => self.origin = Some(one_line()?),
            Known::Label => self.label = Some(one_line()?),
            Known::Suite => self.suite = Some(one_line()?),
            Known::Codename => self.codename = Some(one_line()?),
            Known::Date => self.date = Some(parse_date(field, value)?),
            Known::ValidUntil => self.valid_until = Some(parse_date(field, value)?),
            Known::AcquireByHash => self.acquire_by_hash = Some(parse_bool(field, value)?),
            Known::Sha256 => {
                self.sha256 = Some(BTreeMap::new());
                if !value.is_empty() {
                    self.checksum(value)?;
                }
            }
        }
        Ok(Some(known))
    }

    fn continuation(&mut self, field: Option<Known>, value: &[u8]) -> Result<(), FieldProblem> {
        match field {
            None => Ok(()),
            Some(Known::Sha256) => self.checksum(control::text(value)?),
            Some(known) => Err(FieldProblem::Multiline(known.name())),
        }
    }

    fn checksum(&mut self, line: &str) -> Result<(), FieldProblem> {
        let (digest, size, path) = control::checksum_line("SHA256", line)?;
        super::check_relative_path(path).map_err(|problem| FieldProblem::BadPath { path: shown(path), problem })?;
        let table = self.sha256.get_or_insert_with(BTreeMap::new);
        if table.insert(path.to_owned(), (size, digest)).is_some() {
            return Err(FieldProblem::DuplicatePath(shown(path)));
        }
        Ok(())
    }

    fn finish(self) -> Result<Release, DebianError> {
        let date = self.date.ok_or(DebianError::ReleaseMissing {
            field: "Date",
            why: "it orders the suite's Release files, so an older one cannot replace a newer one",
        })?;
        let sha256 = self.sha256.ok_or(DebianError::ReleaseMissing {
            field: "SHA256",
            why: "the index files are checked by SHA-256; MD5Sum and SHA1 are not accepted",
        })?;
        Ok(Release {
            origin: self.origin,
            label: self.label,
            suite: self.suite,
            codename: self.codename,
            date,
            valid_until: self.valid_until,
            acquire_by_hash: self.acquire_by_hash.unwrap_or(false),
            sha256,
        })
    }
}

fn parse_bool(field: &'static str, value: &str) -> Result<bool, FieldProblem> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(FieldProblem::BadBool { field, found: shown(value) }),
    }
}

/// An RFC 2822 date as Debian writes it (`Wed, 02 Dec 2026 02:09:57 UTC`), to Unix seconds.
/// The weekday is optional and, being redundant, not checked against the date; the zone is
/// `UTC`, `GMT`, `UT`, `Z` or a `+hhmm`/`-hhmm` offset; seconds may be left out.
pub(crate) fn parse_date(field: &'static str, value: &str) -> Result<u64, FieldProblem> {
    let bad = |problem| FieldProblem::BadDate { field, found: shown(value), problem };
    let mut words = value.split_ascii_whitespace().peekable();
    if words.peek().is_some_and(|word| word.ends_with(',')) {
        let weekday = words.next().unwrap_or_default().trim_end_matches(',');
        if !WEEKDAYS.iter().any(|day| day.eq_ignore_ascii_case(weekday)) {
            return Err(bad("unknown weekday"));
        }
    }
    let (Some(day), Some(month), Some(year), Some(time), Some(zone), None) =
        (words.next(), words.next(), words.next(), words.next(), words.next(), words.next())
    else {
        return Err(bad("expected [weekday,] day month year hh:mm[:ss] zone"));
    };
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month)).ok_or(bad("unknown month"))? as u32 + 1;
    let year = number(year, 4, 4).filter(|&y| y >= 1970).ok_or(bad("the year is not four digits from 1970"))?;
    let day = number(day, 1, 2).filter(|&d| d >= 1 && d <= days_in_month(year, month)).ok_or(bad("no such day"))?;
    let seconds_of_day = time_of_day(time).ok_or(bad("the time is not hh:mm or hh:mm:ss"))?;
    let offset = zone_offset(zone).ok_or(bad("the zone is not UTC, GMT or +hhmm"))?;
    let local = days_since_epoch(year, month, day) * 86_400 + i64::from(seconds_of_day);
    u64::try_from(local - offset).map_err(|_| bad("before 1970"))
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A decimal of `min..=max` digits.
fn number(text: &str, min: usize, max: usize) -> Option<u32> {
    let ok = (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    if ok {
        text.parse().ok()
    } else {
        None
    }
}

fn time_of_day(text: &str) -> Option<u32> {
    let mut parts = text.split(':');
    let hours = number(parts.next()?, 2, 2).filter(|&h| h < 24)?;
    let minutes = number(parts.next()?, 2, 2).filter(|&m| m < 60)?;
    let seconds = match parts.next() {
        Some(s) => number(s, 2, 2).filter(|&s| s < 60)?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(hours * 3600 + minutes * 60 + seconds)
}

/// The zone's offset east of UTC, in seconds.
fn zone_offset(zone: &str) -> Option<i64> {
    if ["UTC", "GMT", "UT", "Z"].iter().any(|z| z.eq_ignore_ascii_case(zone)) {
        return Some(0);
    }
    let (sign, digits) = match zone.split_at_checked(1)? {
        ("+", digits) => (1, digits),
        ("-", digits) => (-1, digits),
        _ => return None,
    };
    let hhmm = number(digits, 4, 4)?;
    let (hours, minutes) = (hhmm / 100, hhmm % 100);
    (hours < 24 && minutes < 60).then(|| sign * i64::from(hours * 3600 + minutes * 60))
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date (proleptic Gregorian; Howard Hinnant's
/// `days_from_civil`).
fn days_since_epoch(year: u32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::debian::fixtures;

    /// The signed text of the fixture InRelease, cut out by hand (helper A's verifier is
    /// what produces it in production; the lines between the header and the signature
    /// carry no dash-escapes in Debian's files).
    fn fixture_signed_text() -> Vec<u8> {
        let inrelease = std::str::from_utf8(fixtures::INRELEASE).unwrap();
        let body = inrelease.split_once("\n\n").unwrap().1;
        let text = body.split_once("-----BEGIN PGP SIGNATURE-----").unwrap().0;
        assert!(!text.lines().any(|line| line.starts_with("- ")), "the fixture has dash-escaped lines");
        text.as_bytes().to_vec()
    }

    #[test]
    fn the_real_bookworm_updates_release_parses() {
        let release = Release::parse(&fixture_signed_text()).unwrap();
        assert_eq!(release.origin.as_deref(), Some("Debian"));
        assert_eq!(release.label.as_deref(), Some("Debian"));
        assert_eq!(release.suite.as_deref(), Some("oldstable-updates"));
        assert_eq!(release.codename.as_deref(), Some("bookworm-updates"));
        assert_eq!(release.date, 1_796_177_397, "Wed, 02 Dec 2026 02:09:57 UTC");
        assert_eq!(release.valid_until, None);
        assert!(release.acquire_by_hash);
        let packages = "80a1f6ee524222c49f230fc5700d00f946d0a47eb5258180106dd03df126e16a";
        assert_eq!(
            release.sha256.get("main/binary-amd64/Packages"),
            Some(&(32_757, Digest::from_hex(packages).unwrap()))
        );
        let xz = "87e7e94047fb7fb6f4ceecc7022d4bee55b66031cc2a7666d3196f3e0aabb846";
        assert_eq!(release.expect("main/binary-amd64/Packages.xz"), Some((6_924, Digest::from_hex(xz).unwrap())));
        assert_eq!(release.sha256.get("main/binary-amd64/Packages.gz"), None, "the suite publishes no .gz");
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(release.expect("contrib/Contents-all"), Some((0, Digest::from_hex(empty).unwrap())));
        // Every SHA256 line of the fixture is in the table, and MD5Sum/SHA1 lines are not.
        let text = String::from_utf8(fixture_signed_text()).unwrap();
        let sha256_lines = text.split("\nSHA256:\n").nth(1).unwrap().lines().take_while(|l| l.starts_with(' '));
        assert_eq!(release.sha256.len(), sha256_lines.count());
    }

    #[test]
    fn the_fixture_files_match_their_release_lines() {
        let release = Release::parse(&fixture_signed_text()).unwrap();
        for (rel, bytes) in [
            ("main/binary-amd64/Packages", fixtures::PACKAGES),
            ("main/binary-amd64/Packages.xz", fixtures::PACKAGES_XZ),
            ("main/source/Sources.xz", fixtures::SOURCES_XZ),
        ] {
            assert_eq!(release.expect(rel), Some((bytes.len() as u64, Digest::of(bytes))), "{rel}");
        }
    }

    #[test]
    fn by_hash_names_resolve_within_their_directory() {
        let release = Release::parse(&fixture_signed_text()).unwrap();
        let xz = "87e7e94047fb7fb6f4ceecc7022d4bee55b66031cc2a7666d3196f3e0aabb846";
        let expected = Some((6_924, Digest::from_hex(xz).unwrap()));
        assert_eq!(release.expect(&format!("main/binary-amd64/by-hash/SHA256/{xz}")), expected);
        assert_eq!(release.expect(&format!("main/binary-i386/by-hash/SHA256/{xz}")), None, "other directory");
        assert_eq!(release.expect(&format!("main/binary-amd64/by-hash/SHA256/{}", xz.to_uppercase())), None);
        assert_eq!(release.expect("main/binary-amd64/by-hash/SHA256/zz"), None);
        assert_eq!(release.expect("main/binary-amd64/Packages.bz2"), None);
    }

    fn minimal(extra: &str) -> String {
        format!(
            "Suite: stable\nDate: Sat, 01 Dec 2026 14:23:41 UTC\n{extra}SHA256:\n \
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages\n"
        )
    }

    fn line_error(text: &str) -> (usize, FieldProblem) {
        match Release::parse(text.as_bytes()) {
            Err(DebianError::ReleaseLine { line, problem }) => (line, problem),
            other => panic!("expected a line error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn dates_and_valid_until() {
        let release = Release::parse(minimal("Valid-Until: Sat, 08 Dec 2026 14:23:41 UTC\n").as_bytes()).unwrap();
        assert_eq!(release.date, 1_796_135_021);
        assert_eq!(release.valid_until, Some(1_796_135_021 + 7 * 86_400));
        assert!(!release.acquire_by_hash);
        for (text, seconds) in [
            ("Thu, 01 Jan 1970 00:00:00 UTC", 0),
            ("1 Jan 1970 00:00 GMT", 0),
            ("Sat, 01 Dec 2026 14:23:41 +0100", 1_796_135_021 - 3600),
            ("Sat, 01 Dec 2026 14:23:41 -0130", 1_796_135_021 + 5400),
            ("Thu, 29 Feb 2024 00:00:00 UTC", 1_709_164_800),
            ("Fri, 31 Dec 9999 23:59:59 UTC", 253_402_300_799),
        ] {
            assert_eq!(parse_date("Date", text), Ok(seconds), "{text}");
        }
        for text in [
            "",
            "Sat, 01 Dec 2026 14:23:41",
            "Sat, 01 Dec 2026 14:23:41 CET",
            "Sat 01 Dec 2026 14:23:41 UTC",
            "Sun, 29 Feb 2026 00:00:00 UTC",
            "Sat, 32 Dec 2026 14:23:41 UTC",
            "Sat, 01 Foo 2026 14:23:41 UTC",
            "Sat, 01 Dec 26 14:23:41 UTC",
            "Sat, 01 Dec 1969 14:23:41 UTC",
            "Thu, 01 Jan 1970 00:00:00 +0100",
            "Sat, 01 Dec 2026 24:00:00 UTC",
            "Sat, 01 Dec 2026 14:60:00 UTC",
            "Sat, 01 Dec 2026 14:23:41:00 UTC",
            "Sat, 01 Dec 2026 14:23:41 UTC extra",
            "Sat, 01 Dec 2026 14:23:41 +2400",
            "Sat, 01 Dec 2026 14:23:41 +01",
            "2026-12-01T14:23:41Z",
        ] {
            assert!(parse_date("Date", text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        assert!(matches!(line_error(&minimal("Suite: again\n")), (3, FieldProblem::Duplicate(_))));
        assert!(matches!(line_error(&minimal("suite: lowercase duplicate\n")), (3, FieldProblem::Duplicate(_))));
        assert!(matches!(line_error(&minimal("Description: x\nDescription: y\n")), (4, FieldProblem::Duplicate(_))));
        assert_eq!(line_error(&minimal("no colon\n")), (3, FieldProblem::NoColon));
        assert_eq!(
            line_error(" continued\nDate: Sat, 01 Dec 2026 14:23:41 UTC\n"),
            (1, FieldProblem::ContinuationFirst)
        );
        assert_eq!(line_error(&minimal("Codename: a\n b\n")), (4, FieldProblem::Multiline("Codename")));
        assert_eq!(line_error(&minimal("Label:\n")), (3, FieldProblem::EmptyValue("Label")));
        assert!(matches!(line_error(&minimal("Acquire-By-Hash: maybe\n")), (3, FieldProblem::BadBool { .. })));
        assert!(matches!(line_error(&minimal("Valid-Until: tomorrow\n")), (3, FieldProblem::BadDate { .. })));
        assert_eq!(line_error(&format!("{}\nOrigin: Evil\n", minimal(""))), (6, FieldProblem::SecondParagraph));
        assert_eq!(
            line_error(&minimal("Codename: book\u{1b}[2Jworm\n")),
            (3, FieldProblem::ControlCharacter("Codename"))
        );
        let not_utf8 = b"Date: Sat, 01 Dec 2026 14:23:41 UTC\nOrigin: \xff\n";
        assert!(matches!(
            Release::parse(not_utf8),
            Err(DebianError::ReleaseLine { line: 2, problem: FieldProblem::NotUtf8 })
        ));
    }

    #[test]
    fn sha256_lines_are_checked() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let with = |line: &str| format!("Date: Sat, 01 Dec 2026 14:23:41 UTC\nSHA256:\n {line}\n");
        for (line, want) in [
            (format!("{hex} 0 ../../etc/passwd"), "DotComponent"),
            (format!("{hex} 0 /etc/passwd"), "Absolute"),
            (format!("{hex} 0 main//Packages"), "EmptyComponent"),
            (format!("{hex} 0 main/Packages/"), "EmptyComponent"),
        ] {
            let (at, problem) = line_error(&with(&line));
            assert_eq!(at, 3);
            assert!(format!("{problem:?}").contains(want), "{line}: {problem:?}");
        }
        assert!(matches!(
            line_error(&with(&format!("{hex} 99999999999999999999 x"))),
            (3, FieldProblem::BadSize { .. })
        ));
        assert!(matches!(line_error(&with("abc 1 x")), (3, FieldProblem::BadDigest { .. })));
        assert!(matches!(line_error(&with(&format!("{hex} 1"))), (3, FieldProblem::BadChecksumLine { .. })));
        let twice = format!("Date: Sat, 01 Dec 2026 14:23:41 UTC\nSHA256:\n {hex} 0 a\n {hex} 0 a\n");
        assert_eq!(line_error(&twice), (4, FieldProblem::DuplicatePath("a".into())));
    }

    #[test]
    fn required_fields_and_ignored_ones() {
        let no_date = "SHA256:\n e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 a\n";
        assert!(matches!(Release::parse(no_date.as_bytes()), Err(DebianError::ReleaseMissing { field: "Date", .. })));
        let md5_only = "Date: Sat, 01 Dec 2026 14:23:41 UTC\nMD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 a\n";
        let error = Release::parse(md5_only.as_bytes()).unwrap_err();
        assert!(matches!(error, DebianError::ReleaseMissing { field: "SHA256", .. }));
        assert!(error.to_string().contains("MD5Sum and SHA1 are not accepted"), "{error}");
        let with_md5 = minimal("MD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 ../anything\nSHA1:\n junk\n");
        assert_eq!(Release::parse(with_md5.as_bytes()).unwrap().sha256.len(), 1);
        let crlf = minimal("").replace('\n', "\r\n");
        assert_eq!(Release::parse(crlf.as_bytes()).unwrap().sha256.len(), 1);
        let leading_and_trailing_blank = format!("\n\n{}\n\n", minimal(""));
        assert!(Release::parse(leading_and_trailing_blank.as_bytes()).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Release::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mangled_releases(
            cut in 0usize..400,
            insert in "[ -~\n\t:]{0,40}",
        ) {
            let mut text = minimal("Valid-Until: Sat, 08 Dec 2026 14:23:41 UTC\nAcquire-By-Hash: yes\n");
            let at = text.char_indices().map(|(i, _)| i).nth(cut % text.len()).unwrap_or(0);
            text.insert_str(at, &insert);
            let _ = Release::parse(text.as_bytes());
        }
    }
}
