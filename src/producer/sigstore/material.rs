//! Sigstore material files as the ecosystems publish them, read into [`Item`]s: Sigstore
//! bundles (cosign, npm, GitHub), in-toto JSON Lines (`gh attestation download`,
//! slsa-github-generator), PEP 740 attestations and PyPI Integrity-API provenance (both
//! converted to v0.3 bundles the way pypi-attestations does).

use serde::Deserialize;
use serde_json::{json, Value};
use sigstore_types::{Bundle, SignatureContent, Statement};

use super::SigstoreError;

/// The largest material file read (a `.jsonl` with many attestations is the big case).
pub const MAX_MATERIAL_BYTES: usize = 16 << 20;
/// The most bundles one material file may hold.
pub const MAX_BUNDLES: usize = 64;

/// The in-toto DSSE payload type, the only one an attestation may carry.
pub(super) const IN_TOTO: &str = "application/vnd.in-toto+json";

/// What kind of Sigstore material a file is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaterialKind {
    /// `X.sigstore.json` or `X.sigstore`: one Sigstore bundle (v0.1-v0.3).
    Bundle,
    /// `X.intoto.jsonl`: one Sigstore bundle or bare DSSE envelope per line.
    IntotoJsonl,
    /// `X.publish.attestation`, `X.slsa.attestation`, `X.attestation`: one PEP 740 attestation.
    Pep740,
    /// `X.provenance`: PyPI Integrity-API provenance (publisher + attestations).
    PypiProvenance,
}

impl MaterialKind {
    fn describe(self) -> &'static str {
        match self {
            MaterialKind::Bundle => "Sigstore bundle",
            MaterialKind::IntotoJsonl => "in-toto JSON Lines file",
            MaterialKind::Pep740 => "PEP 740 attestation",
            MaterialKind::PypiProvenance => "PyPI provenance file",
        }
    }
}

/// Suffixes, longest first where one ends another (`.publish.attestation` before `.attestation`).
const SUFFIXES: &[(&str, MaterialKind)] = &[
    (".sigstore.json", MaterialKind::Bundle),
    (".sigstore", MaterialKind::Bundle),
    (".intoto.jsonl", MaterialKind::IntotoJsonl),
    (".publish.attestation", MaterialKind::Pep740),
    (".slsa.attestation", MaterialKind::Pep740),
    (".attestation", MaterialKind::Pep740),
    (".provenance", MaterialKind::PypiProvenance),
];

/// Which artifact a file is Sigstore material for, by name: `X.sigstore.json`, `X.sigstore`,
/// `X.intoto.jsonl`, `X.publish.attestation`, `X.slsa.attestation`, `X.attestation`,
/// `X.provenance` -> `Some(("X", kind))`. A bare suffix (empty `X`) is nobody's material.
pub fn material_for(file_name: &str) -> Option<(&str, MaterialKind)> {
    SUFFIXES.iter().find_map(|&(suffix, kind)| {
        file_name.strip_suffix(suffix).filter(|artifact| !artifact.is_empty()).map(|artifact| (artifact, kind))
    })
}

/// One bundle to verify (or one DSSE envelope that cannot be).
#[derive(Clone, Debug)]
pub struct Item {
    pub(super) content: ItemContent,
    /// PyPI provenance publisher, in words.
    pub(super) publisher: Option<String>,
    /// From a PEP 740 file: exactly one subject, named as the artifact file.
    pub(super) pep740: bool,
    /// 1-based position in the material file (line or attestation), for messages.
    pub(super) position: usize,
}

#[derive(Clone, Debug)]
pub(super) enum ItemContent {
    Bundle(Box<Bundle>),
    /// A DSSE envelope with no transparency-log proof or SET: nothing vouches for its time.
    BareEnvelope {
        payload_type: String,
    },
}

impl Item {
    /// npm provenance: the statement's subjects carry only SHA-512 digests, so the artifact's
    /// SHA-512 (computed while it streams) is needed to bind it.
    pub fn needs_sha512(&self) -> bool {
        let ItemContent::Bundle(bundle) = &self.content else { return false };
        let Some(Ok(statement)) = statement_of(bundle) else { return false };
        let any = |f: fn(&sigstore_types::intoto::Subject) -> bool| statement.subject.iter().any(f);
        !any(|s| s.digest.sha256.is_some()) && any(|s| s.digest.sha512.is_some())
    }

    /// Where this item sits in its file: "line 3", "attestation 2" or "the bundle".
    pub fn position(&self) -> usize {
        self.position
    }
}

/// The in-toto statement of a DSSE bundle: `None` for a message signature, `Err` (in words)
/// when the payload is not an in-toto statement.
pub(super) fn statement_of(bundle: &Bundle) -> Option<Result<Statement, String>> {
    let SignatureContent::DsseEnvelope(envelope) = &bundle.content else { return None };
    if envelope.payload_type != IN_TOTO {
        return Some(Err(format!("its DSSE payload type is {:?}, not {IN_TOTO}", envelope.payload_type)));
    }
    Some(
        serde_json::from_slice(envelope.payload.as_bytes())
            .map_err(|e| format!("its DSSE payload is not an in-toto statement: {e}")),
    )
}

/// The bundles in one material file (a `.jsonl` or a PyPI `.provenance` holds several; PEP 740
/// attestations are converted to bundles). Err: not that kind of file at all, or over the
/// size and count bounds.
pub fn parse_material(kind: MaterialKind, bytes: &[u8]) -> Result<Vec<Item>, SigstoreError> {
    super::crypto::install();
    if bytes.len() > MAX_MATERIAL_BYTES {
        return Err(SigstoreError::TooLarge { size: bytes.len() as u64, limit: MAX_MATERIAL_BYTES as u64 });
    }
    let malformed =
        |position: usize, problem: String| SigstoreError::Malformed { kind: kind.describe(), position, problem };
    let text = std::str::from_utf8(bytes).map_err(|e| malformed(1, format!("not UTF-8 text ({e})")))?;
    let items = match kind {
        MaterialKind::Bundle => vec![bundle_item(text, 1).map_err(|p| malformed(1, p))?],
        MaterialKind::Pep740 => vec![pep740_item(text, None, 1).map_err(|p| malformed(1, p))?],
        MaterialKind::IntotoJsonl => jsonl_items(text).map_err(|(n, p)| malformed(n, p))?,
        MaterialKind::PypiProvenance => provenance_items(text).map_err(|(n, p)| malformed(n, p))?,
    };
    if items.is_empty() {
        return Err(malformed(1, "it holds no bundle".into()));
    }
    Ok(items)
}

fn check_count(count: usize) -> Result<(), (usize, String)> {
    if count > MAX_BUNDLES {
        return Err((count, format!("more than {MAX_BUNDLES} bundles in one file")));
    }
    Ok(())
}

fn bundle_item(json: &str, position: usize) -> Result<Item, String> {
    let bundle = Bundle::from_json(json).map_err(|e| e.to_string())?;
    Ok(Item { content: ItemContent::Bundle(Box::new(bundle)), publisher: None, pep740: false, position })
}

/// One `.intoto.jsonl` line: a whole Sigstore bundle (`gh attestation download`), or a bare
/// DSSE envelope (slsa-github-generator), which has no proof of its signing time.
fn jsonl_items(text: &str) -> Result<Vec<Item>, (usize, String)> {
    let mut items = Vec::new();
    for (index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = index + 1;
        check_count(items.len() + 1).map_err(|(_, p)| (n, p))?;
        let value: Value = serde_json::from_str(line).map_err(|e| (n, format!("not JSON: {e}")))?;
        let item = if value.get("mediaType").is_some() {
            bundle_item(line, n).map_err(|p| (n, p))?
        } else {
            let envelope: BareEnvelope = serde_json::from_value(value)
                .map_err(|e| (n, format!("neither a Sigstore bundle nor a DSSE envelope: {e}")))?;
            if envelope.signatures.is_empty() {
                return Err((n, "a DSSE envelope without signatures".into()));
            }
            Item {
                content: ItemContent::BareEnvelope { payload_type: envelope.payload_type },
                publisher: None,
                pep740: false,
                position: n,
            }
        };
        items.push(item);
    }
    Ok(items)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BareEnvelope {
    payload_type: String,
    #[allow(dead_code)] // required to be present: that is what makes it an envelope
    payload: String,
    signatures: Vec<Value>,
}

/// A PEP 740 attestation object.
#[derive(Deserialize)]
struct Attestation {
    version: u64,
    verification_material: AttestationMaterial,
    envelope: AttestationEnvelope,
}

#[derive(Deserialize)]
struct AttestationMaterial {
    certificate: String,
    transparency_entries: Vec<Value>,
}

#[derive(Deserialize)]
struct AttestationEnvelope {
    statement: String,
    signature: String,
}

/// Converts a PEP 740 attestation to the v0.3 bundle it stands for (pypi-attestations'
/// `Attestation.to_bundle`): the certificate, the log entries as they are, and a DSSE
/// envelope of the statement with the in-toto payload type.
fn pep740_bundle(attestation: Attestation) -> Result<Bundle, String> {
    if attestation.version != 1 {
        return Err(format!("attestation version {}, only version 1 is known", attestation.version));
    }
    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": { "rawBytes": attestation.verification_material.certificate },
            "tlogEntries": attestation.verification_material.transparency_entries,
        },
        "dsseEnvelope": {
            "payload": attestation.envelope.statement,
            "payloadType": IN_TOTO,
            "signatures": [ { "sig": attestation.envelope.signature } ],
        },
    });
    Bundle::from_json(&bundle.to_string()).map_err(|e| format!("does not make a valid bundle: {e}"))
}

fn pep740_item(json: &str, publisher: Option<String>, position: usize) -> Result<Item, String> {
    let attestation: Attestation = serde_json::from_str(json).map_err(|e| e.to_string())?;
    pep740_from(attestation, publisher, position)
}

fn pep740_from(attestation: Attestation, publisher: Option<String>, position: usize) -> Result<Item, String> {
    let bundle = pep740_bundle(attestation)?;
    Ok(Item { content: ItemContent::Bundle(Box::new(bundle)), publisher, pep740: true, position })
}

#[derive(Deserialize)]
struct Provenance {
    version: u64,
    attestation_bundles: Vec<ProvenanceGroup>,
}

#[derive(Deserialize)]
struct ProvenanceGroup {
    publisher: serde_json::Map<String, Value>,
    attestations: Vec<Value>,
}

/// A PyPI Integrity-API provenance file: groups of attestations, each with the Trusted
/// Publisher PyPI recorded. Items are numbered across groups in file order.
fn provenance_items(text: &str) -> Result<Vec<Item>, (usize, String)> {
    let provenance: Provenance = serde_json::from_str(text).map_err(|e| (1, e.to_string()))?;
    if provenance.version != 1 {
        return Err((1, format!("provenance version {}, only version 1 is known", provenance.version)));
    }
    let mut items = Vec::new();
    for group in provenance.attestation_bundles {
        let publisher = describe_publisher(&group.publisher);
        for value in group.attestations {
            let n = items.len() + 1;
            check_count(n).map_err(|(_, p)| (n, p))?;
            let attestation: Attestation = serde_json::from_value(value).map_err(|e| (n, e.to_string()))?;
            items.push(pep740_from(attestation, Some(publisher.clone()), n).map_err(|p| (n, p))?);
        }
    }
    Ok(items)
}

/// `GitHub trailofbits/pypi-attestations workflow release.yml` and the like: the publisher's
/// kind, then its other fields in name order, leaving out empty ones.
fn describe_publisher(publisher: &serde_json::Map<String, Value>) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let kind = publisher.get("kind").map_or_else(|| "unknown kind".to_owned(), text);
    let fields = publisher
        .iter()
        .filter(|(k, v)| k.as_str() != "kind" && !v.is_null() && v.as_str() != Some(""))
        .map(|(k, v)| format!("{k} {}", text(v)));
    std::iter::once(kind).chain(fields).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_names_map_to_their_artifacts() {
        assert_eq!(material_for("a.tgz.sigstore.json"), Some(("a.tgz", MaterialKind::Bundle)));
        assert_eq!(material_for("a.whl.sigstore"), Some(("a.whl", MaterialKind::Bundle)));
        assert_eq!(material_for("a.tar.gz.intoto.jsonl"), Some(("a.tar.gz", MaterialKind::IntotoJsonl)));
        assert_eq!(material_for("a.tar.gz.publish.attestation"), Some(("a.tar.gz", MaterialKind::Pep740)));
        assert_eq!(material_for("a.tar.gz.slsa.attestation"), Some(("a.tar.gz", MaterialKind::Pep740)));
        assert_eq!(material_for("a.tar.gz.attestation"), Some(("a.tar.gz", MaterialKind::Pep740)));
        assert_eq!(material_for("a.whl.provenance"), Some(("a.whl", MaterialKind::PypiProvenance)));
        assert_eq!(material_for(".sigstore.json"), None);
        assert_eq!(material_for("a.tgz"), None);
        assert_eq!(material_for("a.tgz.asc"), None);
    }

    #[test]
    fn malformed_json_is_an_error_naming_the_kind() {
        for kind in
            [MaterialKind::Bundle, MaterialKind::Pep740, MaterialKind::PypiProvenance, MaterialKind::IntotoJsonl]
        {
            let err = parse_material(kind, b"{not json").unwrap_err();
            assert!(err.to_string().contains(kind.describe()), "{err}");
        }
        assert!(parse_material(MaterialKind::Bundle, b"{}").is_err());
        assert!(parse_material(MaterialKind::IntotoJsonl, b"\n\n").is_err());
        assert!(parse_material(MaterialKind::Bundle, &[0xff, 0xfe]).is_err());
    }

    #[test]
    fn too_large_and_too_many_are_refused() {
        let big = vec![b' '; MAX_MATERIAL_BYTES + 1];
        assert!(matches!(parse_material(MaterialKind::Bundle, &big), Err(SigstoreError::TooLarge { .. })));
        let line = r#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="}]}"#;
        let many = format!("{line}\n").repeat(MAX_BUNDLES + 1);
        let err = parse_material(MaterialKind::IntotoJsonl, many.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("more than 64"), "{err}");
        let enough = format!("{line}\n").repeat(MAX_BUNDLES);
        assert_eq!(parse_material(MaterialKind::IntotoJsonl, enough.as_bytes()).unwrap().len(), MAX_BUNDLES);
    }

    #[test]
    fn publisher_in_words() {
        let p: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"environment":null,"kind":"GitHub","repository":"trailofbits/pypi-attestations","workflow":"release.yml"}"#,
        )
        .unwrap();
        assert_eq!(describe_publisher(&p), "GitHub, repository trailofbits/pypi-attestations, workflow release.yml");
    }
}
