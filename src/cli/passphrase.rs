//! Passphrase input: a file (`--passphrase-file`, or `AIRLOCK_PASSPHRASE_FILE`, which clap
//! reads into the same argument) or the terminal. The library only ever sees the bytes.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use airlock::keys::KeyError;

/// How much of a passphrase file is read.
const PASSPHRASE_FILE_LIMIT: u64 = 4096;

/// Whether the terminal asks twice (for a new key) or once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Confirm {
    /// Ask once.
    Once,
    /// Ask twice; both answers must match.
    Twice,
}

/// Why no passphrase could be had.
#[derive(Debug, thiserror::Error)]
pub(super) enum PassphraseError {
    /// The passphrase file could not be read.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The passphrase is empty; signify refuses them too.
    #[error("{origin}: empty passphrase refused")]
    Empty {
        /// The file, or "terminal".
        origin: String,
    },
    /// There is no terminal to prompt on.
    #[error("cannot prompt for a passphrase ({source}); use --passphrase-file FILE or set AIRLOCK_PASSPHRASE_FILE")]
    NoTerminal {
        /// Why the terminal could not be used.
        source: io::Error,
    },
    /// The two passphrases typed for a new key differ.
    #[error("passphrases do not match")]
    Mismatch,
}

impl From<PassphraseError> for KeyError {
    fn from(e: PassphraseError) -> KeyError {
        KeyError::PassphraseInput(Box::new(e))
    }
}

/// Gets a passphrase: from `file` when given (the first line, without its `\n` or `\r\n`; a
/// pipe or FIFO is fine, e.g. `--passphrase-file <(pass show key)`), else from the terminal
/// via `/dev/tty`. An empty passphrase is an error.
pub(super) fn read_passphrase(
    file: Option<&Path>,
    prompt: &str,
    confirm: Confirm,
) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
    match file {
        Some(path) => from_file(path),
        None => from_terminal(prompt, confirm),
    }
}

/// The first line of a file. Not restricted to regular files, so a pipe works.
fn from_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
    let io_error = |source| PassphraseError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io_error)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(PASSPHRASE_FILE_LIMIT as usize + 1));
    file.take(PASSPHRASE_FILE_LIMIT).read_to_end(&mut buf).map_err(io_error)?;
    first_line(&buf, &format!("passphrase file {}", path.display()))
}

fn first_line(text: &[u8], origin: &str) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
    let line = match text.iter().position(|&b| b == b'\n') {
        Some(end) => &text[..end],
        None => text,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(PassphraseError::Empty { origin: origin.to_owned() });
    }
    Ok(Zeroizing::new(line.to_vec()))
}

fn from_terminal(prompt: &str, confirm: Confirm) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(|s| Zeroizing::new(s.into_bytes()))
            .map_err(|source| PassphraseError::NoTerminal { source })
    };
    let pass = ask(prompt)?;
    if pass.is_empty() {
        return Err(PassphraseError::Empty { origin: "terminal".to_owned() });
    }
    if confirm == Confirm::Twice && *ask("confirm passphrase: ")? != *pass {
        return Err(PassphraseError::Mismatch);
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_file_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        for (content, want) in [
            (&b"secret\n"[..], &b"secret"[..]),
            (b"secret\r\nignored\n", b"secret"),
            (b"no newline", b"no newline"),
            (b" spaces kept \n", b" spaces kept "),
        ] {
            std::fs::write(&f, content).unwrap();
            assert_eq!(&**read_passphrase(Some(&f), "p: ", Confirm::Once).unwrap(), want);
        }
        for empty in [&b""[..], b"\n", b"\r\n", b"\nsecond line"] {
            std::fs::write(&f, empty).unwrap();
            assert!(matches!(read_passphrase(Some(&f), "p: ", Confirm::Once), Err(PassphraseError::Empty { .. })));
        }
        let msg = read_passphrase(Some(&dir.path().join("absent")), "p: ", Confirm::Once).unwrap_err().to_string();
        assert!(msg.contains("absent"), "{msg}");
    }
}
