//! Checksum signatures (`PackOptions::sign_artifacts`): for every artifact, a signify
//! embedded signature of its checksum line, packed beside it as `<artifact>.sha256.sig`.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::collect::{hash_file, source_error, Item, Sources};
use super::SourceProblem;
use crate::error::{Error, Result};
use crate::format::manifest::link_signatures;
use crate::format::manifest::{Entry, Manifest};
use crate::format::path::RelPath;
use crate::format::sums::checksum_line;
use crate::format::CHECKSUM_SIG_SUFFIX;
use crate::io::tuning::HASH_BUF;
use crate::keys::{self, SecretKey};
use crate::progress::NoProgress;

/// Adds a checksum signature by `key` for every artifact of the manifest (an entry that is
/// not a linked signature). The signatures are written to a temporary directory in
/// `work_dir` (the bundle's directory: no environment variable decides where), which is
/// returned and must live until the bundle is written.
pub(super) fn add_checksum_signatures(
    manifest: &mut Manifest,
    sources: &mut Sources,
    key: &SecretKey,
    work_dir: &Path,
) -> Result<tempfile::TempDir> {
    let present: HashSet<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
    let linked: HashSet<&str> = manifest.entries.iter().flat_map(|e| e.signatures.iter().map(|s| s.as_str())).collect();
    let dir = tempfile::Builder::new()
        .prefix(".airlock-sign-artifacts-")
        .tempdir_in(work_dir)
        .map_err(|e| Error::io(work_dir, e))?;
    let mut buf = vec![0u8; HASH_BUF];
    let comment = format!("verify with airlock key {}", key.key_id());
    let mut added = Vec::new();
    for (i, e) in manifest.entries.iter().enumerate() {
        if linked.contains(e.path.as_str()) {
            continue;
        }
        let fs_path = sources.fs_path(i, e);
        let name = format!("{}{CHECKSUM_SIG_SUFFIX}", e.path);
        for clash in [name.as_str(), &format!("{}.sha256", e.path)] {
            if present.contains(clash) {
                let problem = SourceProblem::ChecksumSignatureClash { name: name.clone(), clash: clash.to_owned() };
                return Err(source_error(&fs_path, problem));
            }
        }
        let path = RelPath::new(&name).map_err(|error| {
            source_error(&fs_path, SourceProblem::ChecksumSignatureName { name: name.clone(), error })
        })?;
        let file = dir.path().join(format!("{i}.sig"));
        let signature = keys::sign_embedded(key, checksum_line(e.path.as_str(), &e.sha256).as_bytes(), &comment);
        fs::write(&file, signature).map_err(|err| Error::io(&file, err))?;
        let h = hash_file(&file, &mut buf, &NoProgress)?;
        let root = sources.roots.push(file, true)?;
        added.push((
            Entry { path, size: h.size, sha256: h.sha256, mode: h.mode, signatures: Vec::new(), carried: true },
            Item { root, stamp: h.stamp, hashed: true },
        ));
    }
    let mut pairs: Vec<(Entry, Item)> =
        std::mem::take(&mut manifest.entries).into_iter().zip(sources.items.drain(..)).collect();
    pairs.extend(added);
    pairs.sort_by(|a, b| a.0.path.as_str().as_bytes().cmp(b.0.path.as_str().as_bytes()));
    (manifest.entries, sources.items) = pairs.into_iter().unzip();
    link_signatures(&mut manifest.entries);
    Ok(dir)
}
