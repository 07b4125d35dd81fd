//! Hashing before the payload pass, for the entries whose hash must be known before their
//! bytes are written: a delta's candidates (whether a file is carried depends on its hash),
//! and the artifacts `--sign-artifacts` signs (a checksum signature precedes its artifact).
//! Those of them the payload carries are read twice; the payload pass checks they still
//! hash the same.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::collect::{hash_file, source_error, Hashed, Sources};
use super::{as_source_error, Packer, SourceProblem};
use crate::error::{Error, Result};
use crate::format::manifest::{Entry, Manifest};
use crate::io::sync::{join, lock};
use crate::io::tuning::HASH_BUF;
use crate::progress::Progress;

impl Packer<'_> {
    /// Hashes every entry `select` picks whose hash is not known yet, on one worker per
    /// core, and records the hashes. A file whose size, times or mode differ from what the
    /// walk saw changed meanwhile, and stops the pack. Returns the bytes read.
    pub(super) fn prehash(
        &self,
        manifest: &mut Manifest,
        sources: &mut Sources,
        select: impl Fn(usize, &Entry) -> bool,
    ) -> Result<u64> {
        let todo: Vec<usize> = (0..manifest.entries.len())
            .filter(|&i| !sources.items[i].hashed && select(i, &manifest.entries[i]))
            .collect();
        if todo.is_empty() {
            return Ok(0);
        }
        let bytes: u64 = todo.iter().map(|&i| manifest.entries[i].size).sum();
        self.progress.start("hashing", bytes, todo.len() as u64);
        let hashed = hash_all(&todo, manifest, sources, self.progress)?;
        for (i, h) in hashed {
            let (entry, item) = (&mut manifest.entries[i], &mut sources.items[i]);
            if h.size != entry.size || h.stamp != item.stamp || h.mode != entry.mode {
                let fs_path = sources.roots.fs_path(item.root, &entry.path);
                return Err(source_error(&fs_path, SourceProblem::ChangedBeforePacking));
            }
            entry.sha256 = h.sha256;
            item.hashed = true;
        }
        Ok(bytes)
    }
}

/// Hashes the entries `todo` names on one worker per core; the first error stops them all.
fn hash_all(
    todo: &[usize],
    manifest: &Manifest,
    sources: &Sources,
    progress: &dyn Progress,
) -> Result<Vec<(usize, Hashed)>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(todo.len());
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let worker = || {
        let mut buf = vec![0u8; HASH_BUF];
        let mut done = Vec::new();
        while lock(&first_error).is_none() {
            let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
            let entry = &manifest.entries[i];
            match hash_file(&sources.fs_path(i, entry), &mut buf, progress) {
                Ok(h) => done.push((i, h)),
                Err(e) => {
                    lock(&first_error).get_or_insert(as_source_error(e));
                }
            }
        }
        done
    };
    let results: Vec<Result<Vec<(usize, Hashed)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(worker)).collect();
        handles.into_iter().map(|h| join(h, "hashing worker")).collect()
    });
    let mut hashed = Vec::with_capacity(todo.len());
    for r in results {
        hashed.extend(r?);
    }
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    if hashed.len() != todo.len() {
        return Err(Error::Internal(format!("{} files were to be hashed but {} were", todo.len(), hashed.len())));
    }
    Ok(hashed)
}
