//! The checksum list signed into `airlock/SHA256SUMS.sig` (FORMAT.md §7), in `signify -C`
//! syntax so stock signify checks an extracted bundle.

use super::manifest::{Entry, Manifest};
use super::DATA_DIR;
use crate::io::digest::Digest;

/// The checksum list signed into `airlock/SHA256SUMS.sig`, in `signify -C` syntax.
pub fn sums_text(manifest: &Manifest) -> Vec<u8> {
    // Sized exactly (a growing Vec would double past it): see `sums_line`.
    let len = manifest.entries.iter().map(|e| e.path.as_str().len() + SUMS_LINE_OVERHEAD).sum();
    let mut out = Vec::with_capacity(len);
    for e in &manifest.entries {
        out.extend_from_slice(sums_line(e).as_bytes());
    }
    out
}

/// Whether `message` is exactly [`sums_text`] of `manifest`, compared line by line so a
/// reader need not build a second copy of a list that can be tens of megabytes.
pub fn sums_match(manifest: &Manifest, message: &[u8]) -> bool {
    let mut rest = message;
    for e in &manifest.entries {
        let line = sums_line(e);
        match rest.strip_prefix(line.as_bytes()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Bytes of a checksum line besides the path: `SHA256 (data/`, `) = `, 64 hex digits, `\n`.
const SUMS_LINE_OVERHEAD: usize = "SHA256 (".len() + DATA_DIR.len() + ") = ".len() + 64 + 1;

fn sums_line(e: &Entry) -> String {
    format!("SHA256 ({DATA_DIR}{}) = {}\n", e.path, e.sha256)
}

/// The checksum line signed into `<artifact>.sha256.sig`: `signify -C` syntax with the
/// artifact's file name, so it checks beside the artifact (`cd dir && signify -C -p K.pub
/// -x a.tar.gz.sha256.sig`).
pub fn checksum_line(artifact_path: &str, sha256: &Digest) -> String {
    let name = artifact_path.rsplit('/').next().unwrap_or(artifact_path);
    format!("SHA256 ({name}) = {sha256}\n")
}
