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
        /// Print JSON to stdout (docs/JSON.md) instead of text.
        #[arg(long)]
        json: bool,
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
        /// Print JSON to stdout (docs/JSON.md): the key id, and the converted file's text
        /// unless -o wrote it.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut text = Vec::new();
    file.take(16 * 1024).read_to_end(&mut text).map_err(|e| Error::io(path, e))?;
    Ok(text)
}

pub(super) fn key_show(path: &Path, json: bool) -> Result<u8> {
    let text = Zeroizing::new(read_key_file(path)?);
    let info = info::key_info(&text, &path.display().to_string())?;
    if json {
        out::document(schema::KEY_SHOW, true, key_info_json(path, &info))?;
        return Ok(EXIT_OK);
    }
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

/// `key show --json`'s body (docs/JSON.md).
fn key_info_json(path: &Path, info: &info::KeyInfo) -> serde_json::Value {
    use airlock::keys::KeyKind;
    use info::Protection;
    let (tool, part) = match info.kind {
        KeyKind::SignifyPublic => ("signify", "public"),
        KeyKind::SignifySecret => ("signify", "secret"),
        KeyKind::MinisignPublic => ("minisign", "public"),
        KeyKind::MinisignSecret => ("minisign", "secret"),
        _ => ("unknown", if info.kind.is_public() { "public" } else { "secret" }),
    };
    let (protection, rounds) = match info.protection {
        None => (None, None),
        Some(Protection::SignifyPlain | Protection::MinisignPlain) => (Some("none"), None),
        Some(Protection::SignifyPassphrase { rounds }) => (Some("bcrypt_pbkdf"), Some(rounds)),
        Some(Protection::MinisignPassphrase) => (Some("scrypt"), None),
        Some(_) => (Some("other"), None),
    };
    serde_json::json!({
        "file": out::path(path),
        "format": tool,
        "part": part,
        "algorithm": "ed25519",
        "key_id": info.key_id.map(|id| id.to_string()),
        "minisign_id": info.key_id.map(|id| airlock::keys::minisign::minisign_key_id(id).to_string()),
        "comment": info.comment,
        "protection": protection,
        "kdf_rounds": rounds,
        "public_key": info.public.as_ref().map(|p| airlock::io::digest::hex(p.as_bytes())),
    })
}

pub(super) fn key_convert(path: &Path, to: KeyFormat, output: Option<&Path>, json: bool) -> Result<u8> {
    let text = Zeroizing::new(read_key_file(path)?);
    let format = match to {
        KeyFormat::Signify => PublicKeyFormat::Signify,
        KeyFormat::Minisign => PublicKeyFormat::Minisign,
    };
    let (public, out) = info::convert_public_key(&text, &path.display().to_string(), format)?;
    if let Some(p) = output {
        airlock::keys::write_new_key_file(p, 0o644, out.as_bytes())?;
    }
    if json {
        let body = serde_json::json!({
            "key": out::path(path),
            "key_id": public.key_id().to_string(),
            "format": match to { KeyFormat::Signify => "signify", KeyFormat::Minisign => "minisign" },
            "output": output.map(out::path),
            "text": if output.is_none() { Some(out.as_str()) } else { None },
        });
        out::document(schema::KEY_CONVERT, true, body)?;
        return Ok(EXIT_OK);
    }
    match output {
        None => {
            for line in out.lines() {
                say!("{line}")?;
            }
        }
        Some(p) => {
            out::note(format_args!("wrote {} ({:?} format, key id {})", p.display(), to, public.key_id()));
        }
    }
    Ok(EXIT_OK)
}
