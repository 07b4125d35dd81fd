//! A directory target, for any web server to serve (nginx, Apache, `python3 -m http.server`).
//!
//! Each object is written to a temporary file beside its final name, checked, fsynced and
//! renamed into place, so a client never reads a half-written or unchecked object.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::PublishError;
use super::target::{is_safe_key, Body, Target};
use crate::io::digest::{self, Digest};

/// Prefix of the temporary files a put writes (skipped by [`Target::list`]).
const TEMP_PREFIX: &str = ".airlock-publish-";

/// A directory that receives the published objects (created if missing).
pub struct DirTarget {
    root: PathBuf,
}

impl DirTarget {
    /// A target at `root`; nothing is created until the first put.
    pub fn new(root: &Path) -> DirTarget {
        DirTarget { root: root.to_owned() }
    }

    fn path_of(&self, key: &str, operation: &'static str) -> Result<PathBuf, PublishError> {
        if !is_safe_key(key) {
            return Err(self.error(operation, key, "not a relative key inside the target".to_owned()));
        }
        Ok(self.root.join(key))
    }

    fn error(&self, operation: &'static str, key: &str, reason: String) -> PublishError {
        PublishError::Target { target: self.describe(), operation, key: key.to_owned(), reason }
    }

    fn write_checked(&self, tmp: &mut fs::File, body: Body<'_>, key: &str) -> Result<(), PublishError> {
        let io_error = |e: io::Error| self.error("put", key, e.to_string());
        match body {
            Body::Bytes { bytes, .. } => tmp.write_all(bytes).map_err(io_error),
            Body::File(file) => {
                let mut reader = file.open()?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = reader.fill(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    tmp.write_all(buf.get(..n).unwrap_or_default()).map_err(io_error)?;
                }
                reader.finish()
            }
        }
    }

    /// Removes the directories `key` leaves empty, up to the target root.
    fn prune_empty_parents(&self, key: &str) {
        let mut dir = Path::new(key).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if fs::remove_dir(self.root.join(d)).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

impl Target for DirTarget {
    fn describe(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }

    fn list(&mut self) -> Result<BTreeMap<String, u64>, PublishError> {
        let mut objects = BTreeMap::new();
        if !self.root.exists() {
            return Ok(objects);
        }
        for item in walkdir::WalkDir::new(&self.root).min_depth(1) {
            let item = item.map_err(|e| self.error("list", "", e.to_string()))?;
            if !item.file_type().is_file() || item.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                continue;
            }
            let Ok(rel) = item.path().strip_prefix(&self.root) else { continue };
            let size = item.metadata().map_err(|e| self.error("list", &rel.to_string_lossy(), e.to_string()))?.len();
            objects.insert(rel.to_string_lossy().into_owned(), size);
        }
        Ok(objects)
    }

    fn digest(&mut self, key: &str) -> Result<Option<Digest>, PublishError> {
        let path = self.path_of(key, "get")?;
        match fs::File::open(&path) {
            Ok(f) => {
                let (d, _) = digest::hash_reader(f).map_err(|e| self.error("get", key, e.to_string()))?;
                Ok(Some(d))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("get", key, e.to_string())),
        }
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, PublishError> {
        let path = self.path_of(key, "get")?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error("get", key, e.to_string())),
        }
    }

    fn put(&mut self, key: &str, body: Body<'_>) -> Result<(), PublishError> {
        let path = self.path_of(key, "put")?;
        let dir = crate::io::durable::parent_dir(&path).to_owned();
        fs::create_dir_all(&dir).map_err(|e| self.error("put", key, e.to_string()))?;
        let mode = body.mode();
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&dir)
            .map_err(|e| self.error("put", key, e.to_string()))?;
        self.write_checked(tmp.as_file_mut(), body, key)?;
        let file = tmp.as_file();
        file.set_permissions(fs::Permissions::from_mode(mode)).map_err(|e| self.error("put", key, e.to_string()))?;
        file.sync_all().map_err(|e| self.error("put", key, e.to_string()))?;
        tmp.persist(&path).map_err(|e| self.error("put", key, e.error.to_string()))?;
        crate::io::durable::sync_dir(&dir).map_err(|e| self.error("put", key, e.to_string()))
    }

    fn delete(&mut self, key: &str) -> Result<(), PublishError> {
        let path = self.path_of(key, "delete")?;
        match fs::remove_file(&path) {
            Ok(()) => {
                self.prune_empty_parents(key);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error("delete", key, e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::target::MirrorFile;

    fn bytes(b: &[u8]) -> Body<'_> {
        Body::Bytes { bytes: b, sha256: Digest::of(b) }
    }

    #[test]
    fn objects_are_put_listed_hashed_and_deleted_with_their_empty_directories() {
        let dir = tempfile::tempdir().unwrap();
        let mut target = DirTarget::new(&dir.path().join("www"));
        assert!(target.list().unwrap().is_empty());
        target.put("a/b/c.txt", bytes(b"c")).unwrap();
        target.put("top.txt", bytes(b"top")).unwrap();
        let listed = target.list().unwrap();
        assert_eq!(listed.into_iter().collect::<Vec<_>>(), [("a/b/c.txt".to_owned(), 1), ("top.txt".to_owned(), 3)]);
        assert_eq!(target.digest("a/b/c.txt").unwrap(), Some(Digest::of(b"c")));
        assert_eq!(target.digest("absent").unwrap(), None);
        assert_eq!(target.get("top.txt").unwrap().as_deref(), Some(&b"top"[..]));
        target.delete("a/b/c.txt").unwrap();
        target.delete("a/b/c.txt").unwrap();
        assert!(!dir.path().join("www/a").exists(), "empty directories are pruned");
        assert!(dir.path().join("www/top.txt").exists());
    }

    #[test]
    fn a_mirror_file_keeps_its_mode_and_a_changed_one_is_not_made_visible() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("tool");
        fs::write(&source, b"#!/bin/sh\n").unwrap();
        let file = MirrorFile {
            rel: "tool".into(),
            path: source.clone(),
            sha256: Digest::of(b"#!/bin/sh\n"),
            size: 10,
            mode: 0o755,
        };
        let mut target = DirTarget::new(&dir.path().join("www"));
        target.put("bin/tool", Body::File(&file)).unwrap();
        let meta = fs::metadata(dir.path().join("www/bin/tool")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);

        fs::write(&source, b"#!/bin/sh\nrm -rf /\n").unwrap();
        let err = target.put("bin/other", Body::File(&file)).unwrap_err();
        assert!(matches!(err, PublishError::ChangedWhilePublishing { .. }), "{err:?}");
        assert!(!dir.path().join("www/bin/other").exists());
        assert_eq!(target.list().unwrap().len(), 1, "no temporary file is left or listed");
    }

    #[test]
    fn keys_outside_the_target_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut target = DirTarget::new(dir.path());
        for key in ["../escape", "/abs", "a/../../b"] {
            assert!(matches!(target.put(key, bytes(b"x")), Err(PublishError::Target { .. })), "{key}");
            assert!(matches!(target.delete(key), Err(PublishError::Target { .. })), "{key}");
        }
    }
}
