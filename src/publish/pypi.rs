//! The pypi format: a PEP 503 "simple" index over the wheels and sdists in the tree.
//!
//! - `simple/index.html` lists every project; `simple/<normalized name>/index.html` links
//!   each distribution file (relative URLs into the published tree) with `#sha256=<hex>`;
//! - PEP 658/714: for a wheel, its `*.dist-info/METADATA` is published as `<file>.metadata`
//!   (or the tree's own `<file>.metadata` is used) and the link carries
//!   `data-dist-info-metadata` and `data-core-metadata` with its SHA-256, so pip resolves
//!   without downloading the wheel;
//! - PEP 740: where the tree holds `<file>.provenance` beside a distribution, the link
//!   carries `data-provenance` pointing to it.
//!
//! Every other file of the tree (attestations, signatures) is published beside the
//! distributions, unchanged, by the caller.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;

use super::error::PublishError;
use super::target::MirrorFile;
use super::Planned;
use crate::io::digest::Digest;

/// The generated prefix: a mirror file under it is refused.
const SIMPLE: &str = "simple/";

/// The largest `METADATA` read from a wheel (real ones are kilobytes).
const MAX_METADATA: u64 = 16 << 20;

/// The objects the pypi format adds to the tree.
pub struct Generated {
    /// `<wheel>.metadata` files (data: written before the index that names them).
    pub data: Vec<Planned>,
    /// `simple/` pages.
    pub indexes: Vec<Planned>,
}

/// A distribution file and what its link says.
struct Link {
    path: String,
    file_name: String,
    sha256: Digest,
    metadata: Option<Digest>,
    requires_python: Option<String>,
    provenance: Option<String>,
}

/// The simple index for the distributions among `files`.
pub fn plan(files: &[MirrorFile], notes: &mut Vec<String>) -> Result<Generated, PublishError> {
    if let Some(f) = files.iter().find(|f| f.rel.starts_with(SIMPLE)) {
        return Err(PublishError::ReservedPath { path: f.rel.clone(), format: "pypi", reserved: SIMPLE });
    }
    let paths: BTreeMap<&str, &MirrorFile> = files.iter().map(|f| (f.rel.as_str(), f)).collect();
    let mut projects: BTreeMap<String, Vec<Link>> = BTreeMap::new();
    let mut data = Vec::new();
    for file in files {
        let Some((project, file_name)) = distribution(&file.rel) else { continue };
        let metadata_key = format!("{}.metadata", file.rel);
        let mut link = Link {
            path: file.rel.clone(),
            file_name: file_name.to_owned(),
            sha256: file.sha256,
            metadata: paths.get(metadata_key.as_str()).map(|m| m.sha256),
            requires_python: None,
            provenance: paths
                .contains_key(format!("{}.provenance", file.rel).as_str())
                .then(|| format!("{}.provenance", file.rel)),
        };
        if file.rel.ends_with(".whl") {
            match wheel_metadata(file)? {
                Ok(Some(bytes)) => {
                    link.requires_python = header(&bytes, "Requires-Python");
                    if link.metadata.is_none() {
                        link.metadata = Some(Digest::of(&bytes));
                        data.push(Planned::bytes(metadata_key, bytes));
                    }
                }
                Ok(None) => {
                    notes.push(format!("{}: no *.dist-info/METADATA in the wheel; linked without metadata", file.rel))
                }
                Err(reason) => notes.push(format!("{}: {reason}; linked without metadata", file.rel)),
            }
        }
        projects.entry(normalize(project)).or_default().push(link);
    }
    let mut indexes = vec![Planned::bytes(format!("{SIMPLE}index.html"), root_page(projects.keys()))];
    for (name, links) in &projects {
        indexes.push(Planned::bytes(format!("{SIMPLE}{name}/index.html"), project_page(name, links)));
    }
    Ok(Generated { data, indexes })
}

/// The project name and file name of a distribution file (wheel or sdist), if it is one.
fn distribution(rel: &str) -> Option<(&str, &str)> {
    let file_name = rel.rsplit('/').next().unwrap_or(rel);
    if let Some(stem) = file_name.strip_suffix(".whl") {
        // {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl; names use `_` for `-`.
        return stem
            .split('-')
            .next()
            .filter(|n| !n.is_empty() && stem.split('-').count() >= 5)
            .map(|n| (n, file_name));
    }
    let stem = file_name.strip_suffix(".tar.gz").or_else(|| file_name.strip_suffix(".zip"))?;
    // {name}-{version}: the version holds no `-`.
    let (name, version) = stem.rsplit_once('-')?;
    (!name.is_empty() && !version.is_empty()).then_some((name, file_name))
}

/// PEP 503 normalization: lowercase, every run of `-`, `_` and `.` one `-`.
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// The wheel's `<name>.dist-info/METADATA`, read from the file once it is checked against
/// its manifest digest. The inner error (not a zip, an unreadable METADATA) is a note: the
/// wheel is still linked, without metadata.
fn wheel_metadata(file: &MirrorFile) -> Result<Result<Option<Vec<u8>>, String>, PublishError> {
    let mut reader = file.open()?;
    std::io::copy(&mut reader, &mut std::io::sink())
        .map_err(|e| PublishError::Read { path: file.path.clone(), source: e })?;
    reader.finish()?;
    let handle =
        std::fs::File::open(&file.path).map_err(|source| PublishError::Read { path: file.path.clone(), source })?;
    Ok(read_metadata(handle))
}

fn read_metadata(handle: std::fs::File) -> Result<Option<Vec<u8>>, String> {
    let mut archive = zip::ZipArchive::new(handle).map_err(|e| format!("not a readable zip archive: {e}"))?;
    let Some(name) = archive.file_names().filter_map(Result::ok).find(|n| is_metadata_name(n)).map(|n| n.into_owned())
    else {
        return Ok(None);
    };
    let entry = archive.by_name(&name).map_err(|e| format!("{name}: {e}"))?;
    let mut bytes = Vec::new();
    entry.take(MAX_METADATA + 1).read_to_end(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
    if bytes.len() as u64 > MAX_METADATA {
        return Err(format!("{name} is larger than {MAX_METADATA} bytes"));
    }
    Ok(Some(bytes))
}

fn is_metadata_name(name: &str) -> bool {
    matches!(name.split_once('/'), Some((dir, "METADATA")) if dir.ends_with(".dist-info") && !dir.contains('/'))
}

/// The first value of an RFC 822-style header in a METADATA file.
fn header(metadata: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(metadata).ok()?;
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned()))
}

fn root_page<'a>(names: impl Iterator<Item = &'a String>) -> Vec<u8> {
    let mut page = page_head("Simple index");
    for name in names {
        let _ = writeln!(page, "    <a href=\"{}/\">{}</a><br/>", escape(&url_path(name)), escape(name));
    }
    page.push_str("  </body>\n</html>\n");
    page.into_bytes()
}

fn project_page(name: &str, links: &[Link]) -> Vec<u8> {
    let mut page = page_head(&format!("Links for {name}"));
    let _ = writeln!(page, "    <h1>Links for {}</h1>", escape(name));
    for link in links {
        let href = format!("../../{}#sha256={}", url_path(&link.path), link.sha256);
        let mut attributes = format!("href=\"{}\"", escape(&href));
        if let Some(m) = link.metadata {
            let _ = write!(attributes, " data-dist-info-metadata=\"sha256={m}\" data-core-metadata=\"sha256={m}\"");
        }
        if let Some(r) = &link.requires_python {
            let _ = write!(attributes, " data-requires-python=\"{}\"", escape(r));
        }
        if let Some(p) = &link.provenance {
            let _ = write!(attributes, " data-provenance=\"{}\"", escape(&format!("../../{}", url_path(p))));
        }
        let _ = writeln!(page, "    <a {attributes}>{}</a><br/>", escape(&link.file_name));
    }
    page.push_str("  </body>\n</html>\n");
    page.into_bytes()
}

fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.0\">\n    \
         <title>{}</title>\n  </head>\n  <body>\n",
        escape(title)
    )
}

/// HTML escaping for text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a `/`-separated path for a URL (every byte outside RFC 3986's
/// unreserved set and `/`).
fn url_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_as_pep_503_says() {
        assert_eq!(normalize("Friendly-Bard"), "friendly-bard");
        assert_eq!(normalize("FRIENDLY._-bard"), "friendly-bard");
        assert_eq!(normalize("circleci_sign_publish_example"), "circleci-sign-publish-example");
    }

    #[test]
    fn distributions_are_recognised_by_name() {
        assert_eq!(
            distribution("w/circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"),
            Some(("circleci_sign_publish_example", "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"))
        );
        assert_eq!(
            distribution("pypi_attestations-0.0.19.tar.gz"),
            Some(("pypi_attestations", "pypi_attestations-0.0.19.tar.gz"))
        );
        assert_eq!(distribution("a.whl.provenance"), None);
        assert_eq!(distribution("broken.whl"), None);
        assert_eq!(distribution("README.txt"), None);
    }

    #[test]
    fn links_are_escaped_and_encoded() {
        let link = Link {
            path: "d/a b+\"c-1.0.tar.gz".into(),
            file_name: "a b+\"c-1.0.tar.gz".into(),
            sha256: Digest::of(b"x"),
            metadata: None,
            requires_python: Some(">=3.8".into()),
            provenance: None,
        };
        let page = String::from_utf8(project_page("a-b-c", &[link])).unwrap();
        assert!(page.contains("href=\"../../d/a%20b%2B%22c-1.0.tar.gz#sha256="), "{page}");
        assert!(page.contains("data-requires-python=\"&gt;=3.8\""), "{page}");
        assert!(page.contains(">a b+&quot;c-1.0.tar.gz</a>"), "{page}");
    }

    #[test]
    fn metadata_headers_are_read_from_the_header_block() {
        let m = b"Metadata-Version: 2.1\nName: x\nRequires-Python: >=3.9\n\nRequires-Python: body\n";
        assert_eq!(header(m, "requires-python").as_deref(), Some(">=3.9"));
        assert_eq!(header(m, "Summary"), None);
    }
}
