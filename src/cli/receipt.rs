//! `airlock receipt`: what the inside says it holds (FORMAT.md §15).

use super::*;
use airlock::format::receipt::Receipt;
use airlock::keys::KeyId;

#[derive(Subcommand, Debug)]
pub(super) enum ReceiptCommand {
    /// Check a receipt's signature and show what it says the mirror holds.
    Verify(ReceiptVerifyArgs),
}

#[derive(Args, Debug)]
pub(super) struct ReceiptVerifyArgs {
    /// The receipt (written by `airlock mirror receipt` on the inside).
    pub(super) receipt: PathBuf,
    /// The inside's public key (repeatable: any one of them may have signed).
    #[arg(long, required = true, value_name = "K.pub")]
    pub(super) trust: Vec<PathBuf>,
    /// Print JSON to stdout (docs/JSON.md) instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

pub(super) fn receipt_verify(a: ReceiptVerifyArgs) -> Result<u8> {
    let keys = load_public_keys(&a.trust)?;
    let (receipt, signer) = airlock::pack::read_receipt(&a.receipt, &keys)?;
    if a.json {
        out::document(schema::RECEIPT_VERIFY, true, receipt_json(&a.receipt, &receipt, signer))?;
        return Ok(EXIT_OK);
    }
    say!("OK: receipt {} signed by key {signer}", a.receipt.display())?;
    say!("mirror {}", receipt.mirror)?;
    say!("created {} ({})", airlock::render::time(receipt.created), receipt.created)?;
    say!("log {} records, head {}", receipt.log_records, receipt.log_head)?;
    for c in &receipt.channels {
        say!(
            "channel {} sequence {}, manifest {}: {} files, {} bytes, root {}, {}",
            c.name,
            c.sequence,
            c.manifest,
            c.files,
            c.bytes,
            c.root,
            if c.intact { "intact" } else { "DAMAGED (the mirror does not hold this manifest's files exactly)" }
        )?;
    }
    if receipt.channels.is_empty() {
        say!("no channels imported")?;
    }
    say!("state {} files, {} bytes, root {}", receipt.files, receipt.bytes, receipt.root)?;
    Ok(EXIT_OK)
}

/// The public keys of `--trust`.
pub(super) fn load_public_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>> {
    Ok(paths.iter().map(|p| PublicKey::load(p)).collect::<std::result::Result<Vec<_>, _>>()?)
}

/// The JSON form (schema `airlock.receipt-verify.v1`, docs/JSON.md).
fn receipt_json(path: &Path, r: &Receipt, signer: KeyId) -> serde_json::Value {
    let channels: Vec<serde_json::Value> = r
        .channels
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "sequence": c.sequence,
                "manifest": c.manifest.to_hex(),
                "files": c.files,
                "bytes": c.bytes,
                "root": c.root.to_hex(),
                "intact": c.intact,
            })
        })
        .collect();
    serde_json::json!({
        "receipt": out::path(path),
        "signer": signer.to_string(),
        "mirror": r.mirror.to_hex(),
        "created": airlock::render::time(r.created),
        "log": { "records": r.log_records, "head": r.log_head.to_hex() },
        "channels": channels,
        "state": { "files": r.files, "bytes": r.bytes, "root": r.root.to_hex() },
    })
}
