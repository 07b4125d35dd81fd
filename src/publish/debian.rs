//! The debian format.
//!
//! - **Kept**: the tree holds a Debian repository (`dists/<suite>/InRelease`, or `Release`
//!   with `Release.gpg`). It is published byte for byte, so apt checks the producer's own
//!   signatures at the point of use, with the producer's key (`signed-by=`); airlock adds
//!   nothing to it.
//! - **Generated**: otherwise, a flat repository over the tree's `.deb` files: suite
//!   `airlock`, component `main`, `dists/airlock/main/binary-<arch>/Packages` (and `.gz`,
//!   one stanza per package: its control file, then `Filename`, `Size`, `SHA256`),
//!   `dists/airlock/Release`, and `dists/airlock/InRelease` clearsigned with an inside
//!   OpenPGP key (`--openpgp-key`), which apt checks with `signed-by=` that key's public
//!   half.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{self, Read};

use super::error::PublishError;
use super::target::MirrorFile;
use super::{Planned, PublishOptions};

/// The suite (and codename) of a generated repository.
pub const SUITE: &str = "airlock";

/// The generated prefix: a mirror file under it is refused.
const GENERATED: &str = "dists/airlock/";

/// The largest control archive (`control.tar.*`) read from a .deb; real ones are
/// kilobytes.
const MAX_CONTROL_ARCHIVE: u64 = 64 << 20;

/// The largest `control` file read.
const MAX_CONTROL: u64 = 1 << 20;

/// How the debian format published the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DebianMode {
    /// The tree's own repository, unchanged (its signatures are the producer's).
    Kept,
    /// `Packages`/`Release` generated for the tree's `.deb` files, `InRelease` signed with
    /// the inside OpenPGP key.
    Generated,
}

impl DebianMode {
    /// The stable name (`--json`).
    pub fn name(self) -> &'static str {
        match self {
            DebianMode::Kept => "kept",
            DebianMode::Generated => "generated",
        }
    }
}

/// The objects the debian format adds to the tree.
pub struct Generated {
    /// Kept or generated.
    pub mode: DebianMode,
    /// `dists/airlock/...` (none when kept).
    pub indexes: Vec<Planned>,
}

/// The Debian view of `files`.
pub fn plan(files: &[MirrorFile], options: &PublishOptions<'_>) -> Result<Generated, PublishError> {
    let paths: BTreeSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
    if paths.iter().any(|p| is_release_file(p, &paths)) {
        return Ok(Generated { mode: DebianMode::Kept, indexes: Vec::new() });
    }
    if let Some(f) = files.iter().find(|f| f.rel.starts_with(GENERATED)) {
        return Err(PublishError::ReservedPath { path: f.rel.clone(), format: "debian", reserved: GENERATED });
    }
    let key_path =
        options.openpgp_key.ok_or(PublishError::NeedsKey { format: "debian", what: "an inside OpenPGP key (--openpgp-key) to sign the InRelease it generates for the .deb files (the tree holds no Debian repository of its own)" })?;
    let mut by_arch: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files.iter().filter(|f| f.rel.ends_with(".deb")) {
        let control = read_control(file)?;
        let arch = field(&control, "Architecture").ok_or_else(|| PublishError::Deb {
            path: file.rel.clone(),
            reason: "its control file has no Architecture field".into(),
        })?;
        if field(&control, "Package").is_none() {
            return Err(PublishError::Deb {
                path: file.rel.clone(),
                reason: "its control file has no Package field".into(),
            });
        }
        by_arch.entry(arch).or_default().push(stanza(&control, file));
    }
    let indexes = repository(&by_arch, key_path, options.now)?;
    Ok(Generated { mode: DebianMode::Generated, indexes })
}

/// Whether `path` is a suite's signed release file: `dists/<suite>/InRelease`, or
/// `dists/<suite>/Release` with its `Release.gpg`.
fn is_release_file(path: &str, paths: &BTreeSet<&str>) -> bool {
    let Some(rest) = path.strip_prefix("dists/") else { return false };
    match rest.split_once('/') {
        Some((suite, "InRelease")) => !suite.is_empty(),
        Some((suite, "Release")) => !suite.is_empty() && paths.contains(format!("{path}.gpg").as_str()),
        _ => false,
    }
}

/// The generated indexes: per architecture `Packages` and `Packages.gz` (architecture
/// `all` packages listed in every architecture, and in `binary-all`), `Release`, and the
/// signed `InRelease`.
fn repository(
    by_arch: &BTreeMap<String, Vec<String>>,
    key_path: &std::path::Path,
    now: u64,
) -> Result<Vec<Planned>, PublishError> {
    let all: Vec<String> = by_arch.get("all").cloned().unwrap_or_default();
    let mut arches: BTreeSet<&str> = by_arch.keys().map(String::as_str).collect();
    arches.insert("all");
    let mut indexes = Vec::new();
    let mut release_lines = Vec::new();
    for arch in &arches {
        let mut stanzas: Vec<&String> = by_arch.get(*arch).map(|v| v.iter().collect()).unwrap_or_default();
        if *arch != "all" {
            stanzas.extend(&all);
        }
        let packages = stanzas.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n").into_bytes();
        let gz =
            gzip(&packages).map_err(|e| PublishError::Mirror(crate::error::Error::Internal(format!("gzip: {e}"))))?;
        for (name, bytes) in [("Packages", packages), ("Packages.gz", gz)] {
            let rel = format!("main/binary-{arch}/{name}");
            release_lines.push(format!(" {} {} {rel}", crate::io::digest::Digest::of(&bytes), bytes.len()));
            indexes.push(Planned::bytes(format!("{GENERATED}{rel}"), bytes));
        }
    }
    let release = release_text(&arches, &release_lines, now);
    let in_release = sign::clearsign(key_path, release.as_bytes(), now)?;
    indexes.push(Planned::bytes(format!("{GENERATED}Release"), release.into_bytes()));
    indexes.push(Planned::bytes(format!("{GENERATED}InRelease"), in_release));
    Ok(indexes)
}

fn release_text(arches: &BTreeSet<&str>, sha256_lines: &[String], now: u64) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Origin: airlock\nLabel: airlock\nSuite: {SUITE}\nCodename: {SUITE}");
    let _ = writeln!(text, "Date: {}", rfc2822(now));
    let _ = writeln!(text, "Architectures: {}", arches.iter().copied().collect::<Vec<_>>().join(" "));
    let _ = writeln!(text, "Components: main");
    let _ = writeln!(text, "Description: the verified .deb files of an airlock mirror");
    let _ = writeln!(text, "SHA256:");
    for line in sha256_lines {
        let _ = writeln!(text, "{line}");
    }
    text
}

/// A `Packages` stanza: the control file's fields, then where the file is and its digest.
fn stanza(control: &str, file: &MirrorFile) -> String {
    let mut text = control.trim_end().to_owned();
    let _ = write!(text, "\nFilename: {}\nSize: {}\nSHA256: {}\n", file.rel, file.size, file.sha256);
    text
}

/// The value of a control field (single-line fields only).
fn field(control: &str, name: &str) -> Option<String> {
    control.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name && !l.starts_with([' ', '\t'])).then(|| v.trim().to_owned())
    })
}

/// The `control` file of a .deb: its `ar` archive's `control.tar[.gz|.xz|.zst]`, read while
/// the whole file is hashed and checked against its manifest digest.
fn read_control(file: &MirrorFile) -> Result<String, PublishError> {
    let bad = |reason: String| PublishError::Deb { path: file.rel.clone(), reason };
    let mut reader = file.open()?;
    let mut member: Option<(String, Vec<u8>)> = None;
    {
        let mut archive = ar::Archive::new(&mut reader);
        while let Some(entry) = archive.next_entry() {
            let mut entry = entry.map_err(|e| bad(format!("not an ar archive: {e}")))?;
            let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
            if name.starts_with("control.tar") {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(MAX_CONTROL_ARCHIVE + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| bad(format!("{name}: {e}")))?;
                if bytes.len() as u64 > MAX_CONTROL_ARCHIVE {
                    return Err(bad(format!("{name} is larger than {MAX_CONTROL_ARCHIVE} bytes")));
                }
                member = Some((name, bytes));
                break;
            }
        }
    }
    io::copy(&mut reader, &mut io::sink()).map_err(|e| PublishError::Read { path: file.path.clone(), source: e })?;
    reader.finish()?;
    let (name, bytes) = member.ok_or_else(|| bad("no control.tar member".into()))?;
    let tar = decompress(&name, &bytes).map_err(|e| bad(format!("{name}: {e}")))?;
    control_from_tar(&tar).map_err(|e| bad(format!("{name}: {e}")))
}

fn decompress(name: &str, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let limit = MAX_CONTROL_ARCHIVE + 1;
    match name.strip_prefix("control.tar") {
        Some("") => out.extend_from_slice(bytes),
        Some(".gz") => {
            flate2::read::MultiGzDecoder::new(bytes).take(limit).read_to_end(&mut out)?;
        }
        Some(".zst") => {
            zstd::stream::read::Decoder::new(bytes)?.take(limit).read_to_end(&mut out)?;
        }
        Some(".xz") => {
            let reader = lzma_rust2::XzReader::new(bytes, false);
            reader.take(limit).read_to_end(&mut out)?;
        }
        _ => return Err(io::Error::other("an unknown compression")),
    }
    if out.len() as u64 > MAX_CONTROL_ARCHIVE {
        return Err(io::Error::other(format!("it unpacks to more than {MAX_CONTROL_ARCHIVE} bytes")));
    }
    Ok(out)
}

fn control_from_tar(tar: &[u8]) -> io::Result<String> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path == "./control" || path == "control" {
            let mut text = String::new();
            entry.take(MAX_CONTROL + 1).read_to_string(&mut text)?;
            if text.len() as u64 > MAX_CONTROL {
                return Err(io::Error::other(format!("its control file is larger than {MAX_CONTROL} bytes")));
            }
            return Ok(text);
        }
    }
    Err(io::Error::other("no control file in it"))
}

fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// An RFC 2822 date in UTC (`Thu, 03 Dec 2026 15:40:00 UTC`), as Release files carry.
fn rfc2822(t: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = t / 86_400;
    let secs = t % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} UTC",
        DAYS.get((days % 7) as usize).copied().unwrap_or("Thu"),
        MONTHS.get(month.saturating_sub(1) as usize).copied().unwrap_or("Jan"),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Year, month (1-12) and day of the month for days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(feature = "openpgp")]
mod sign {
    //! Clearsigning with Sequoia (already linked for verification: `producer::openpgp`).

    use std::io::Write;
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use sequoia_openpgp as openpgp;

    use openpgp::parse::Parse;
    use openpgp::policy::StandardPolicy;
    use openpgp::serialize::stream::{Message, Signer};

    use super::PublishError;

    /// `text` clearsigned with the first valid signing key of the transferable secret key
    /// at `key_path`, at time `now`.
    pub fn clearsign(key_path: &Path, text: &[u8], now: u64) -> Result<Vec<u8>, PublishError> {
        let bad = |reason: String| PublishError::OpenPgpKey { path: key_path.to_owned(), reason };
        let bytes = std::fs::read(key_path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let cert = openpgp::Cert::from_bytes(&bytes).map_err(|e| bad(format!("not an OpenPGP key: {e}")))?;
        let time = UNIX_EPOCH + Duration::from_secs(now);
        let policy = StandardPolicy::new();
        let key = cert
            .keys()
            .with_policy(&policy, Some(time))
            .supported()
            .alive()
            .revoked(false)
            .for_signing()
            .secret()
            .next()
            .ok_or_else(|| {
                bad(format!(
                    "holds no secret key valid for signing now ({}); export the secret key (`gpg --export-secret-keys`), \
                     not only the certificate",
                    cert.fingerprint()
                ))
            })?;
        let pair = key.key().clone().into_keypair().map_err(|e| {
            bad(format!("its signing key cannot be used ({e}); export it without a passphrase for publishing"))
        })?;
        let mut out = Vec::new();
        let message = Message::new(&mut out);
        let failed = |e: &dyn std::fmt::Display| bad(format!("signing failed: {e}"));
        let mut signer = Signer::new(message, pair)
            .map_err(|e| failed(&e))?
            .cleartext()
            .creation_time(time)
            .build()
            .map_err(|e| failed(&e))?;
        signer.write_all(text).map_err(|e| failed(&e))?;
        signer.finalize().map_err(|e| failed(&e))?;
        Ok(out)
    }
}

#[cfg(not(feature = "openpgp"))]
mod sign {
    use std::path::Path;

    use super::PublishError;

    pub fn clearsign(_key_path: &Path, _text: &[u8], _now: u64) -> Result<Vec<u8>, PublishError> {
        Err(PublishError::OpenPgpDisabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates_are_rfc_2822() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 UTC");
        assert_eq!(rfc2822(1_796_312_400), "Thu, 03 Dec 2026 15:40:00 UTC");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 UTC");
    }

    #[test]
    fn a_suite_is_a_repository_only_with_its_signature() {
        let paths: BTreeSet<&str> =
            ["dists/a/InRelease", "dists/b/Release", "dists/c/Release", "dists/c/Release.gpg"].into();
        assert!(is_release_file("dists/a/InRelease", &paths));
        assert!(!is_release_file("dists/b/Release", &paths));
        assert!(is_release_file("dists/c/Release", &paths));
        assert!(!is_release_file("pool/InRelease", &paths));
    }

    #[test]
    fn control_fields_are_read_from_their_own_lines() {
        let control = "Package: x\nDescription: y\n Architecture: not this\nArchitecture: all\n";
        assert_eq!(field(control, "Architecture").as_deref(), Some("all"));
        assert_eq!(field(control, "Version"), None);
    }
}
