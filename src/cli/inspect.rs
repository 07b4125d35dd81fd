//! `airlock inspect`.

use super::*;

#[derive(Args, Debug)]
pub(super) struct InspectArgs {
    /// The bundle.
    pub(super) bundle: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(super) json: bool,
    /// Check signatures against these public keys (without them, none are verified).
    #[arg(long, value_name = "K.pub")]
    pub(super) trust: Vec<PathBuf>,
    /// Check signatures against this trust policy: trusted, revoked or unknown, and whether
    /// the threshold is met.
    #[arg(long, value_name = "POLICY.toml", conflicts_with = "trust")]
    pub(super) policy: Option<PathBuf>,
}

pub(super) fn inspect(a: InspectArgs) -> Result<u8> {
    let bundle = Bundle::open(&a.bundle)?;
    let manifest = bundle.unverified_manifest()?;
    let policy = if a.trust.is_empty() && a.policy.is_none() {
        None
    } else {
        Some(load_policy(&TrustArgs { policy: a.policy.clone(), trust: a.trust.clone(), threshold: 1 })?)
    };
    let report = policy.as_ref().map(|p| bundle.evaluate_signatures(p)).transpose()?;
    let signers: Vec<(String, String)> = bundle
        .head()
        .signatures
        .iter()
        .map(|s| {
            let id = s.key_id();
            let named = policy.as_ref().and_then(|p| p.name_of_id(id)).filter(|n| *n != id.to_string());
            let st = match report.as_ref().and_then(|r| r.signatures.iter().find(|(i, _)| *i == id)) {
                None => "not verified (no --trust or --policy given)".to_owned(),
                Some((_, SignatureStatus::Valid)) => "trusted, valid".to_owned(),
                Some((_, SignatureStatus::Invalid)) => "trusted key, but the signature DOES NOT VERIFY".to_owned(),
                Some((_, SignatureStatus::Revoked { reason })) => format!("revoked ({reason}); not counted"),
                Some((_, SignatureStatus::Unknown)) => "unknown key; ignored".to_owned(),
            };
            (named.map_or(id.to_string(), |n| format!("{id} ({n})")), st)
        })
        .collect();
    let verdict = report.as_ref().map(|r| match &r.rule {
        None => format!("NOT met: the policy has no rule for channel {:?}", manifest.channel),
        Some(rule) => format!(
            "{}: {} of {} distinct trusted key(s) required signed validly (rule for channel {rule})",
            if r.threshold_met() { "met" } else { "NOT met" },
            r.valid_signers.len(),
            r.threshold
        ),
    });
    // Buffered: stdout is line-buffered, and a manifest can have 100,000 lines.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if a.json {
        let mut json = inspect_json(&manifest, &bundle.head().manifest_digest.to_hex(), &signers, report.as_ref());
        json["threshold"] = serde_json::json!(verdict);
        writeln!(out, "{json}").map_err(|e| Error::io("<stdout>", e))?;
    } else {
        print_manifest(&mut out, &manifest, &bundle.head().manifest_digest.to_hex(), &signers, verdict.as_deref())
            .map_err(|e| Error::io("<stdout>", e))?;
    }
    out.flush().map_err(|e| Error::io("<stdout>", e))?;
    Ok(EXIT_OK)
}

pub(super) fn print_manifest(
    out: &mut impl Write,
    m: &Manifest,
    digest: &str,
    signers: &[(String, String)],
    verdict: Option<&str>,
) -> std::io::Result<()> {
    writeln!(out, "bundle id    {}", m.bundle_id.to_hex())?;
    writeln!(out, "manifest     sha256 {digest}")?;
    writeln!(out, "channel      {}", m.channel)?;
    writeln!(out, "sequence     {}", m.sequence)?;
    writeln!(out, "previous     {}", m.previous.map_or("none".into(), |d| d.to_hex()))?;
    writeln!(out, "created      {}", clock::format(m.created))?;
    writeln!(out, "expires      {}", m.expires.map_or("never".into(), clock::format))?;
    if let Some(label) = &m.label {
        writeln!(out, "label        {label}")?;
    }
    for (k, v) in &m.meta {
        writeln!(out, "meta         {k}={v}")?;
    }
    for (id, status) in signers {
        writeln!(out, "signed by    {id}: {status}")?;
    }
    if let Some(v) = verdict {
        writeln!(out, "threshold    {v}")?;
    }
    writeln!(out, "entries      {} files, {} bytes", m.entries.len(), m.total_size())?;
    writeln!(out)?;
    writeln!(out, "{:<5} {:>12}  {:<64}  path", "mode", "size", "sha256")?;
    for e in &m.entries {
        // Written piece by piece, without allocating: a manifest can have 100,000 lines.
        // Modes are 644 or 755: three digits, padded to five like the header line.
        write!(out, "{:o}   {:>12}  ", e.mode.bits(), e.size)?;
        out.write_all(&e.sha256.hex_bytes())?;
        out.write_all(b"  ")?;
        out.write_all(e.path.as_str().as_bytes())?;
        for (i, sig) in e.signatures.iter().enumerate() {
            out.write_all(if i == 0 { b"  [signed by: " } else { b", " })?;
            out.write_all(sig.as_str().as_bytes())?;
        }
        out.write_all(if e.signatures.is_empty() { b"\n" } else { b"]\n" })?;
    }
    Ok(())
}

pub(super) fn inspect_json(
    m: &Manifest,
    digest: &str,
    signers: &[(String, String)],
    report: Option<&TrustReport>,
) -> serde_json::Value {
    use serde_json::json;
    json!({
        "bundle_id": m.bundle_id.to_hex(),
        "manifest_sha256": digest,
        "channel": m.channel,
        "sequence": m.sequence,
        "previous": m.previous.map(|d| d.to_hex()),
        "created": clock::format(m.created),
        "expires": m.expires.map(clock::format),
        "label": m.label,
        "meta": m.meta,
        "verified": report.map(TrustReport::accepted),
        "signatures": signers.iter().map(|(id, st)| json!({"key_id": id, "status": st})).collect::<Vec<_>>(),
        "entry_count": m.entries.len(),
        "total_size": m.total_size(),
        "entries": m.entries.iter().map(|e| json!({
            "path": e.path.as_str(),
            "size": e.size,
            "mode": format!("{:o}", e.mode.bits()),
            "sha256": e.sha256.to_hex(),
            "signatures": e.signatures.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
