//! `airlock keygen`.

use super::*;

#[derive(Args, Debug)]
pub(super) struct KeygenArgs {
    /// Where to write the public key (e.g. transfer.pub).
    #[arg(long, value_name = "K.pub")]
    pub(super) public: PathBuf,
    /// Where to write the secret key (e.g. transfer.sec); created with mode 0600.
    #[arg(long, value_name = "K.sec")]
    pub(super) secret: PathBuf,
    /// Store the secret key unencrypted (signify -n).
    #[arg(long)]
    pub(super) no_passphrase: bool,
    /// Comment for the key files.
    #[arg(long, default_value = "airlock")]
    pub(super) comment: String,
    /// Read the passphrase from this file's first line instead of the terminal.
    #[arg(long, env = "AIRLOCK_PASSPHRASE_FILE", value_name = "FILE")]
    pub(super) passphrase_file: Option<PathBuf>,
    /// Print JSON to stdout (docs/JSON.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

pub(super) fn keygen(a: KeygenArgs) -> Result<u8> {
    let passphrase = if a.no_passphrase {
        None
    } else {
        let prompt = "passphrase for the new secret key: ";
        Some(
            passphrase::read_passphrase(a.passphrase_file.as_deref(), prompt, passphrase::Confirm::Twice)
                .map_err(KeyError::from)?,
        )
    };
    let key = SecretKey::generate(&format!("{} secret key", a.comment));
    airlock::keys::write_key_pair(
        &a.public,
        &a.secret,
        &key,
        &format!("{} public key", a.comment),
        passphrase.as_ref().map(|p| p.as_slice()),
    )?;
    if a.json {
        let body = serde_json::json!({
            "key_id": key.key_id().to_string(),
            "public": out::path(&a.public),
            "secret": out::path(&a.secret),
            "passphrase": !a.no_passphrase,
        });
        out::document(schema::KEYGEN, true, body)?;
        return Ok(EXIT_OK);
    }
    say!("key id {}", key.key_id())?;
    say!("public key: {}", a.public.display())?;
    say!("secret key: {} (mode 0600{})", a.secret.display(), if a.no_passphrase { ", no passphrase" } else { "" })?;
    Ok(EXIT_OK)
}
