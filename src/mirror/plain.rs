//! airlock's own entries in `.airlock/` are used only as what they must be: plain
//! directories and regular files (docs/FORMAT.md §9, "What may stand in `.airlock/`").
//! A symbolic link, FIFO, socket or device planted there would make an import write or
//! read outside the mirror (or hang on a FIFO), so every entry is checked without
//! following links when the mirror is opened, and files are opened with `O_NOFOLLOW` and
//! `O_NONBLOCK` and checked again on the open descriptor.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::MirrorError;
use crate::error::{Error, Result};

/// What an entry of `.airlock/` must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Want {
    /// A directory (not a link to one).
    Dir,
    /// A regular file (not a link to one).
    File,
}

impl Want {
    fn name(self) -> &'static str {
        match self {
            Want::Dir => "directory",
            Want::File => "regular file",
        }
    }
}

/// The entries of `.airlock/` and what each must be (when present).
pub(super) const LAYOUT: [(&str, Want); 12] = [
    ("FORMAT", Want::File),
    ("id", Want::File),
    ("stamps", Want::File),
    ("attic", Want::Dir),
    ("lock", Want::File),
    ("log", Want::File),
    ("log-head", Want::File),
    ("pending", Want::File),
    ("staging", Want::Dir),
    ("bundles", Want::Dir),
    ("volumes", Want::Dir),
    ("sealed", Want::Dir),
];

/// A plain name for the kind of file `meta` describes.
pub(super) fn kind_name(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "regular file"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// Checks, without following a link, that `path` is what `want` says. Returns whether it
/// exists.
pub(super) fn check(path: &Path, want: Want) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) => {
            let fits = match want {
                Want::Dir => m.file_type().is_dir(),
                Want::File => m.file_type().is_file(),
            };
            if fits {
                Ok(true)
            } else {
                Err(unsafe_entry(path, kind_name(&m), want))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Checks every entry of the metadata directory `meta` (and `meta` itself).
pub(super) fn check_layout(meta: &Path) -> Result<()> {
    check(meta, Want::Dir)?;
    for (name, want) in LAYOUT {
        check(&meta.join(name), want)?;
    }
    Ok(())
}

/// Opens a file of `.airlock/` with `options`, never following a link and never blocking
/// on a FIFO, and refuses anything but a regular file.
pub(super) fn open(path: &Path, options: &mut OpenOptions) -> Result<File> {
    let file =
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC).open(path).map_err(|e| match e
            .raw_os_error()
        {
            // O_NOFOLLOW on a link.
            Some(libc::ELOOP) => unsafe_entry(path, "symbolic link", Want::File),
            _ => Error::io(path, e),
        })?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.file_type().is_file() {
        return Err(unsafe_entry(path, kind_name(&meta), Want::File));
    }
    Ok(file)
}

/// Reads a whole file of `.airlock/`; `None` if it does not exist.
pub(super) fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    if !check(path, Want::File)? {
        return Ok(None);
    }
    let mut file = match open(path, OpenOptions::new().read(true)) {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    Ok(Some(bytes))
}

/// Whether a file of `.airlock/` exists, refusing one that is not a regular file.
pub(super) fn file_exists(path: &Path) -> Result<bool> {
    check(path, Want::File)
}

/// How many names the open file has (a hard link elsewhere shares its content).
pub(super) fn link_count(file: &File, path: &Path) -> Result<u64> {
    Ok(file.metadata().map_err(|e| Error::io(path, e))?.nlink())
}

fn unsafe_entry(path: &Path, found: &'static str, want: Want) -> Error {
    Error::Mirror { path: path.to_owned(), reason: MirrorError::UnsafeMetadata { found, want: want.name() } }
}
