//! `airlock key`.

use super::*;

use airlock::keys::info::{self, PublicKeyFormat};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum KeyFormat {
    /// OpenBSD signify (`untrusted comment: <name> public key`).
    Signify,
    /// minisign (`untrusted comment: minisign public key <ID>`).
    Minisign,
}

#[derive(Subcommand, Debug)]
pub(super) enum KeyCommand {
    /// Print a key file's key id, algorithm and comment (signify or minisign, public or secret).
    Show {
        /// The key file.
        #[arg(value_name = "K.pub|K.sec")]
        key: PathBuf,
    },
    /// Convert a public key between the signify and minisign file formats (the key bytes
    /// are identical; only the comment differs). Secret keys cannot be converted.
    Convert {
        /// The public key file.
        #[arg(value_name = "K.pub")]
        key: PathBuf,
        /// The format to write.
        #[arg(long, value_enum)]
        to: KeyFormat,
        /// Write here (must not exist) instead of stdout.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
    },
}

pub(super) fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut text = Vec::new();
    file.take(16 * 1024).read_to_end(&mut text).map_err(|e| Error::io(path, e))?;
    Ok(text)
}

pub(super) fn key_show(path: &Path) -> Result<u8> {
    let text = Zeroizing::new(read_key_file(path)?);
    let info = info::key_info(&text, &path.display().to_string())?;
    say!("file         {}", path.display())?;
    say!("type         {}", info.kind)?;
    say!("algorithm    Ed25519")?;
    match info.key_id {
        Some(id) => {
            say!("key id       {id}")?;
            say!("minisign id  {}", airlock::keys::minisign::minisign_key_id(id))?;
        }
        None => say!("key id       (encrypted; not readable without the passphrase)")?,
    }
    say!("comment      {}", info.comment.escape_debug())?;
    if let Some(p) = &info.protection {
        say!("protection   {p}")?;
    }
    if let Some(public) = &info.public {
        say!("public key   {}", airlock::io::digest::hex(public.as_bytes()))?;
    }
    Ok(EXIT_OK)
}

pub(super) fn key_convert(path: &Path, to: KeyFormat, output: Option<&Path>) -> Result<u8> {
    let text = Zeroizing::new(read_key_file(path)?);
    let format = match to {
        KeyFormat::Signify => PublicKeyFormat::Signify,
        KeyFormat::Minisign => PublicKeyFormat::Minisign,
    };
    let (public, out) = info::convert_public_key(&text, &path.display().to_string(), format)?;
    match output {
        None => {
            for line in out.lines() {
                say!("{line}")?;
            }
        }
        Some(p) => {
            airlock::keys::write_new_key_file(p, 0o644, out.as_bytes())?;
            out::note(format_args!("wrote {} ({:?} format, key id {})", p.display(), to, public.key_id()));
        }
    }
    Ok(EXIT_OK)
}
