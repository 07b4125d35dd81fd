//! The one way airlock makes a file durable: write a temporary file in the target's
//! directory, fsync it, rename it over (or, for [`Overwrite::NoClobber`], beside) the
//! target, then fsync the directory so the rename itself survives a power cut.
//!
//! After [`write_atomic`] returns `Ok`, a crash at any later moment leaves the new file in
//! place, whole. Before it returns, a crash leaves the old file (or no file) and at worst a
//! stray `.airlock-*.tmp` beside it, never a torn target. Everything airlock writes outside
//! a mirror's staging area (bundles, co-signed bundles, key files, the packer's channel
//! state, the mirror's own small files) goes through here.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// What to do when the target already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it atomically.
    Replace,
    /// Refuse with [`Error::OutputExists`] (checked by the rename itself, so a file that
    /// appears meanwhile is not overwritten either).
    NoClobber,
}

/// Writes `target` durably: `fill` writes the content into a temporary file in the same
/// directory, created with `mode`; then fsync, rename, fsync of the directory. On any error
/// the temporary file is removed and the target is untouched.
pub fn write_atomic(
    target: &Path,
    mode: u32,
    overwrite: Overwrite,
    fill: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let dir = parent_dir(target);
    let mut tmp =
        tempfile::Builder::new().prefix(".airlock-").suffix(".tmp").tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode)).map_err(|e| Error::io(tmp.path(), e))?;
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(|e| Error::io(target, e))?;
    match overwrite {
        Overwrite::Replace => tmp.persist(target).map(drop).map_err(|e| Error::io(target, e.error))?,
        Overwrite::NoClobber => tmp.persist_noclobber(target).map(drop).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::OutputExists { path: target.to_owned() }
            } else {
                Error::io(target, e.error)
            }
        })?,
    }
    sync_dir(dir)
}

/// [`write_atomic`] with the whole content in memory.
pub fn write_bytes(target: &Path, mode: u32, overwrite: Overwrite, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    write_atomic(target, mode, overwrite, |f| f.write_all(bytes).map_err(|e| Error::io(target, e)))
}

/// Fsyncs a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// The directory a path's file lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_or_refuses_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        write_bytes(&target, 0o644, Overwrite::NoClobber, b"one").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"one");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o644);
        let refused = write_bytes(&target, 0o644, Overwrite::NoClobber, b"two").unwrap_err();
        assert!(matches!(refused, Error::OutputExists { .. }), "{refused}");
        assert_eq!(fs::read(&target).unwrap(), b"one");
        write_bytes(&target, 0o600, Overwrite::Replace, b"three").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"three");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out"]);
    }

    #[test]
    fn a_failing_fill_leaves_the_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        write_bytes(&target, 0o644, Overwrite::Replace, b"old").unwrap();
        let err = write_atomic(&target, 0o644, Overwrite::Replace, |_| Err(Error::Internal("fill failed".into())));
        assert!(err.is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
