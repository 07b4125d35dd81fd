//! Key files on disk: what may be read (regular files; secret keys not through a symbolic
//! link and not readable by others) and how new key files are written (through
//! [`crate::io::durable`], never over an existing file).

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use super::signify::FILE_MAX_LEN;
use super::{check_comment, KeyError, SecretKey};
use crate::error::Error;
use crate::io::durable::{self, Overwrite};

/// How much of a key or signature file is read: enough to tell "too large" from a
/// truncated read, and small enough that a huge or endless file costs nothing.
const LOAD_LIMIT: u64 = 4096;
/// Mode of a new secret key file.
const SECRET_MODE: u32 = 0o600;
/// Mode of a new public key file.
const PUBLIC_MODE: u32 = 0o644;

/// Whether a secret key file that group or others may access is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPermissions {
    /// Refuse it (mode & 0o077 must be 0), as ssh does.
    Strict,
    /// Accept it (for keys on file systems without Unix permissions).
    AllowGroupOrWorldReadable,
}

/// Whether a key file may be reached through a symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Symlinks {
    /// Follow it (public keys).
    Follow,
    /// Refuse it (secret keys).
    Refuse,
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_path_buf(), source }
}

/// Reads a key file: a regular file of at most signify's size. `kind` names it in errors.
pub(crate) fn read_key_file(
    path: &Path,
    symlinks: Symlinks,
    permissions: Option<KeyPermissions>,
    kind: &'static str,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let (file, meta) = open_regular(path, symlinks)?;
    if meta.len() > FILE_MAX_LEN as u64 {
        return Err(KeyError::TooLarge { origin: path.display().to_string(), kind, size: meta.len() });
    }
    if let Some(permissions) = permissions {
        check_private_mode(path, &meta, permissions)?;
    }
    read_head(file, path)
}

/// Opens a file for reading and checks that it is a regular file. O_NONBLOCK keeps a FIFO
/// from hanging the open; it has no effect on regular files.
fn open_regular(path: &Path, symlinks: Symlinks) -> Result<(File, Metadata), KeyError> {
    let mut flags = libc::O_NONBLOCK;
    if symlinks == Symlinks::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(|source| {
        if symlinks == Symlinks::Refuse && source.raw_os_error() == Some(libc::ELOOP) {
            KeyError::SymlinkRefused { path: path.to_path_buf() }
        } else {
            KeyError::Io { path: path.to_path_buf(), source }
        }
    })?;
    let meta = file.metadata().map_err(io_error(path))?;
    if !meta.is_file() {
        return Err(KeyError::NotRegularFile { path: path.to_path_buf() });
    }
    Ok((file, meta))
}

fn check_private_mode(path: &Path, meta: &Metadata, permissions: KeyPermissions) -> Result<(), KeyError> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 && permissions == KeyPermissions::Strict {
        return Err(KeyError::InsecurePermissions { path: path.to_path_buf(), mode });
    }
    Ok(())
}

/// Reads at most [`LOAD_LIMIT`] bytes into a buffer that is wiped on drop. If the file
/// grew since it was measured, the parser's size check refuses it.
fn read_head(file: File, path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    // Capacity above the limit, so reading never reallocates and strands a copy.
    let mut buf = Zeroizing::new(Vec::with_capacity(LOAD_LIMIT as usize + 1));
    file.take(LOAD_LIMIT).read_to_end(&mut buf).map_err(io_error(path))?;
    Ok(buf)
}

/// Writes a new key pair. Neither file may exist already, not even as a dangling symbolic
/// link. Each file is written durably ([`crate::io::durable`]: a temporary file in the same
/// directory, fsync, a rename that refuses to replace anything, fsync of the directory).
/// The secret key is 0600 from the moment its temporary file exists; the public key is
/// 0644. If the public key cannot be written, the secret key written just before is
/// removed again, so a failed run leaves nothing behind.
pub fn write_key_pair(
    public_path: &Path,
    secret_path: &Path,
    key: &SecretKey,
    public_comment: &str,
    passphrase: Option<&[u8]>,
) -> Result<(), KeyError> {
    check_comment(public_comment)
        .map_err(|problem| KeyError::BadComment { origin: public_path.display().to_string(), problem })?;
    // Do everything that can fail before creating a file.
    let secret_text = key.to_file_string(passphrase)?;
    let public_text = key.public_key_with_comment(public_comment).to_file_string();
    if fs::symlink_metadata(public_path).is_ok() {
        return Err(KeyError::AlreadyExists { path: public_path.to_path_buf() });
    }
    write_new_key_file(secret_path, SECRET_MODE, secret_text.as_bytes())?;
    if let Err(e) = write_new_key_file(public_path, PUBLIC_MODE, public_text.as_bytes()) {
        // Best effort: the error that matters is `e`.
        let _ = fs::remove_file(secret_path);
        let _ = durable::sync_dir(durable::parent_dir(secret_path));
        return Err(e);
    }
    Ok(())
}

/// Writes a key file that must not exist yet (see [`write_key_pair`]).
pub fn write_new_key_file(path: &Path, mode: u32, contents: &[u8]) -> Result<(), KeyError> {
    durable::write_bytes(path, mode, Overwrite::NoClobber, contents).map_err(|e| match e {
        Error::OutputExists { path } => KeyError::AlreadyExists { path },
        Error::Io { path, source } => KeyError::Io { path, source },
        other => KeyError::Io { path: path.to_path_buf(), source: io::Error::other(other.to_string()) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::testutil::{err_text, no_passphrase, passphrase};
    use crate::keys::PublicKey;

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn write_key_pair_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("k.pub"), dir.path().join("k.sec"));
        let key = SecretKey::generate("k secret key");
        write_key_pair(&p, &s, &key, "k public key", Some(b"pw")).unwrap();
        assert_eq!(fs::metadata(&s).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(names_in(dir.path()), ["k.pub", "k.sec"], "no temporary file may be left behind");
        let public = PublicKey::load(&p).unwrap();
        assert_eq!(public.comment(), "k public key");
        let secret = SecretKey::load(&s, KeyPermissions::Strict, &mut passphrase(b"pw")).unwrap();
        secret.check_public(&public).unwrap();
        assert_eq!(secret.comment(), "k secret key");
    }

    #[test]
    fn write_key_pair_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("k.pub"), dir.path().join("k.sec"));
        let key = SecretKey::generate("k");
        fs::write(&p, "old").unwrap();
        let msg = err_text(write_key_pair(&p, &s, &key, "c", None));
        assert!(msg.contains("already exists") && msg.contains("k.pub"), "{msg}");
        assert!(!s.exists(), "no secret key may be left behind");
        fs::remove_file(&p).unwrap();
        fs::write(&s, "old").unwrap();
        assert!(matches!(write_key_pair(&p, &s, &key, "c", None), Err(KeyError::AlreadyExists { .. })));
        assert_eq!(fs::read(&s).unwrap(), b"old");
        assert!(!p.exists());
        assert_eq!(names_in(dir.path()), ["k.sec"]);
    }

    #[test]
    fn write_key_pair_does_not_follow_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let s = dir.path().join("k.sec");
        std::os::unix::fs::symlink(&target, &s).unwrap();
        let key = SecretKey::generate("k");
        assert!(matches!(
            write_key_pair(&dir.path().join("k.pub"), &s, &key, "c", None),
            Err(KeyError::AlreadyExists { .. })
        ));
        assert!(!target.exists());
    }

    #[test]
    fn write_key_pair_removes_secret_when_public_fails() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("k.sec");
        let p = dir.path().join("missing-dir").join("k.pub");
        let key = SecretKey::generate("k");
        assert!(matches!(write_key_pair(&p, &s, &key, "c", None), Err(KeyError::Io { .. })));
        assert!(!s.exists());
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn write_key_pair_checks_comments_first() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("k.pub"), dir.path().join("k.sec"));
        let key = SecretKey::generate("k");
        assert!(matches!(write_key_pair(&p, &s, &key, "a\nb", None), Err(KeyError::BadComment { .. })));
        assert!(matches!(write_key_pair(&p, &s, &key, "c", Some(b"")), Err(KeyError::EmptyPassphrase { .. })));
        assert!(!p.exists() && !s.exists());
    }

    #[test]
    fn secret_key_permissions_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("k.sec");
        fs::write(&s, SecretKey::generate("k").to_file_string(None).unwrap().as_bytes()).unwrap();
        set_mode(&s, 0o640);
        let msg = err_text(SecretKey::load(&s, KeyPermissions::Strict, &mut no_passphrase()));
        assert_eq!(
            msg,
            format!("secret key file {} is accessible by group/others (mode 0640); run chmod 600 on it", s.display())
        );
        SecretKey::load(&s, KeyPermissions::AllowGroupOrWorldReadable, &mut no_passphrase()).unwrap();
        set_mode(&s, 0o400);
        SecretKey::load(&s, KeyPermissions::Strict, &mut no_passphrase()).unwrap();
    }

    #[test]
    fn secret_key_symlink_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("real.sec");
        fs::write(&s, SecretKey::generate("k").to_file_string(None).unwrap().as_bytes()).unwrap();
        set_mode(&s, 0o600);
        let link = dir.path().join("link.sec");
        std::os::unix::fs::symlink(&s, &link).unwrap();
        assert!(matches!(
            SecretKey::load(&link, KeyPermissions::Strict, &mut no_passphrase()),
            Err(KeyError::SymlinkRefused { .. })
        ));
    }

    #[test]
    fn non_regular_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(PublicKey::load(dir.path()), Err(KeyError::NotRegularFile { .. })));
        assert!(matches!(
            SecretKey::load(dir.path(), KeyPermissions::AllowGroupOrWorldReadable, &mut no_passphrase()),
            Err(KeyError::NotRegularFile { .. })
        ));
        let msg = err_text(PublicKey::load(&dir.path().join("absent.pub")));
        assert!(msg.contains("absent.pub"), "{msg}");
    }

    #[test]
    fn large_key_file_refused_by_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.pub");
        let mut text = SecretKey::generate("k").public_key().to_file_string().into_bytes();
        text.resize(1 << 20, b'x');
        fs::write(&p, &text).unwrap();
        let msg = err_text(PublicKey::load(&p));
        assert!(msg.starts_with(&format!("{}: too large", p.display())), "{msg}");
    }
}
