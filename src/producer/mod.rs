//! What producers publish, verified offline: OpenPGP signatures ([`openpgp`]), Sigstore
//! bundles and attestations ([`sigstore`]), and Debian archive metadata ([`debian`]).
//!
//! These modules know the formats and the cryptography; they never read the environment or
//! the network, and every time they judge by comes in as an argument ([`Times`]). (One
//! exception, outside airlock's code: sigstore-verify reads the system clock to refuse a
//! log time in the future, which fails closed when the clock is set back.)
//! What a trust policy asks of them, and when, is decided by the import-side verifier
//! (`verify/artifacts.rs` and `verify/repository.rs`), which reports what it found as
//! [`Finding`]s: one per artifact and signature (or per Debian release file, index and
//! pool), for the verify and import output, the mirror's log and `inspect --json`.

pub mod debian;
pub mod openpgp;
pub mod sigstore;

use std::fmt;

use serde::Serialize;

/// The clock a producer signature is judged against.
#[derive(Clone, Copy, Debug)]
pub struct Times {
    /// The policy clock: max(system clock, the channel's clock floor). Hash and key-size cutoffs
    /// and "key valid" are evaluated with this as "now" (never the raw system clock).
    pub reference: u64,
    /// The latest signing time accepted: the bundle's `created` plus the clock skew (a producer
    /// signature cannot postdate the bundle carrying it), never later than reference + skew.
    pub not_after: u64,
}

impl Times {
    /// The clock for a bundle created at `created`, read at `now` by a mirror whose clock
    /// floor for the bundle's channel is `floor`, allowing `skew` seconds of clock error.
    pub fn new(now: u64, floor: u64, created: u64, skew: u64) -> Times {
        let reference = now.max(floor);
        Times { reference, not_after: created.min(reference).saturating_add(skew) }
    }
}

/// What became of one piece of producer material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Verified, by a key or identity a rule names.
    Verified,
    /// By a key or identity a rule names, and it does not hold.
    Bad,
    /// Valid or not, by a key or identity no rule for this file names: never counts.
    OtherSigner,
    /// No rule covers the file: carried as it is, not checked.
    NotCovered,
    /// Cannot be verified without the network (no transparency-log proof, no timestamp).
    NotVerifiableOffline,
    /// A claim nobody signed (an SBOM beside its artifact): shown, never counts.
    UnsignedClaim,
    /// Revoked by the policy: never counts.
    Revoked,
    /// A rule required it and there is none: the rule does not hold.
    Missing,
}

impl Status {
    /// The status in words, as the text output prints it.
    pub fn words(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Bad => "BAD",
            Status::OtherSigner => "other signer",
            Status::NotCovered => "not covered",
            Status::NotVerifiableOffline => "not verifiable offline",
            Status::UnsignedClaim => "unsigned claim",
            Status::Revoked => "revoked",
            Status::Missing => "missing",
        }
    }
}

/// One finding about an artifact's producer material: which file, of what kind, with what
/// status, and the identity it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The artifact (an entry path); for a Debian repository, the release or index file.
    pub artifact: String,
    /// The signature, bundle or attestation file (an entry path), if the finding is about one.
    pub file: Option<String>,
    /// What kind of material: `signify`, `minisign`, `signify-checksum`, `openpgp`,
    /// `sigstore`, `sbom`, `debian-release`, `debian-index`, `debian-pool`, `rule`.
    pub kind: &'static str,
    /// What became of it.
    pub status: Status,
    /// Who signed, in words (a key id and its policy name, an OpenPGP fingerprint, a
    /// Sigstore identity), when known.
    pub signer: Option<String>,
    /// The identity and context fields, in display order (time, issuer, predicate type, ...).
    pub details: Vec<(String, String)>,
}

impl Finding {
    /// A finding without signer or details.
    pub fn new(artifact: &str, file: Option<&str>, kind: &'static str, status: Status) -> Finding {
        Finding {
            artifact: artifact.to_owned(),
            file: file.map(str::to_owned),
            kind,
            status,
            signer: None,
            details: Vec::new(),
        }
    }

    /// With the signer in words.
    pub fn signer(mut self, signer: impl Into<String>) -> Finding {
        self.signer = Some(signer.into());
        self
    }

    /// With one more detail field.
    pub fn detail(mut self, name: &str, value: impl Into<String>) -> Finding {
        self.details.push((name.to_owned(), value.into()));
        self
    }
}

/// One line: `ARTIFACT: FILE STATUS (KIND) by SIGNER; name: value; ...`. Values from outside
/// are printed escaped by the caller's renderer (the text output escapes whole lines).
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.artifact)?;
        if let Some(file) = &self.file {
            write!(f, " {file}")?;
        }
        write!(f, " {} ({})", self.status.words(), self.kind)?;
        if let Some(s) = &self.signer {
            write!(f, " by {s}")?;
        }
        for (name, value) in &self.details {
            write!(f, "; {name}: {value}")?;
        }
        Ok(())
    }
}

/// Trust material a policy rule used (an OpenPGP keyring, a Sigstore trusted root), kept in
/// the mirror so a consumer can re-check an artifact with stock tools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrustFile {
    /// The policy's name for it (`keys.<name>` or `sigstore.<name>`).
    pub name: String,
    /// The file it was read from.
    pub origin: String,
    /// The file name in the mirror: `<sha256>.gpg`, `<sha256>.asc` or `<sha256>.json`.
    pub stored_as: String,
    /// Its bytes.
    #[serde(skip)]
    pub bytes: std::sync::Arc<Vec<u8>>,
}

/// What the producer layer found in one bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProducerReport {
    /// Per artifact and per signature, in payload order.
    pub findings: Vec<Finding>,
    /// The trust material the rules that held used.
    pub trust_files: Vec<TrustFile>,
}

/// Producer material an artifact has by name (not linked in the manifest): a Sigstore
/// bundle or attestation file, or an SBOM beside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NamedMaterial {
    /// The artifact's entry path.
    pub artifact: String,
    /// The material's entry path.
    pub file: String,
    /// `sigstore` or `sbom`.
    pub kind: &'static str,
}

/// SBOM file name endings: `X.cdx.json` is an SBOM of `X`.
pub const SBOM_SUFFIXES: [&str; 3] = [".cdx.json", ".spdx.json", ".spdx"];

/// Every entry of `manifest` that is producer material of another entry by its name, from
/// the manifest alone (what `inspect` lists without reading the payload).
pub fn material_by_name(manifest: &crate::format::manifest::Manifest) -> Vec<NamedMaterial> {
    // The entries are sorted by path (FORMAT.md §6.3), so a lookup is a binary search: a
    // set of every path would cost more than the rest of `inspect` at a million entries.
    let has = |p: &str| manifest.entries.binary_search_by(|e| e.path.as_str().cmp(p)).is_ok();
    let mut out = Vec::new();
    for e in &manifest.entries {
        let path = e.path.as_str();
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let sibling = |n: &str| if dir.is_empty() { n.to_owned() } else { format!("{dir}/{n}") };
        if let Some((artifact, _)) = sigstore::material_for(name) {
            let artifact = sibling(artifact);
            if artifact != path && has(&artifact) {
                out.push(NamedMaterial { artifact, file: path.to_owned(), kind: "sigstore" });
                continue;
            }
        }
        if let Some(artifact) = SBOM_SUFFIXES.iter().find_map(|s| path.strip_suffix(s)).filter(|a| has(a)) {
            out.push(NamedMaterial { artifact: artifact.to_owned(), file: path.to_owned(), kind: "sbom" });
        }
    }
    out
}

/// Human time for reports: RFC 3339 UTC.
pub fn time_words(t: u64) -> String {
    crate::clock::format(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_is_found_by_name_beside_its_artifact_only() {
        use crate::format::manifest::{tests::sample, Entry};
        use crate::format::path::RelPath;
        let mut m = sample();
        let template = m.entries[0].clone();
        let entry = |p: &str| Entry { path: RelPath::new(p).unwrap(), signatures: Vec::new(), ..template.clone() };
        m.entries =
            ["a/tool.tgz", "a/tool.tgz.cdx.json", "a/tool.tgz.sigstore.json", "b/orphan.cdx.json", "b/x.sigstore.json"]
                .into_iter()
                .map(entry)
                .collect();
        let found: Vec<(String, String, &str)> =
            material_by_name(&m).into_iter().map(|n| (n.artifact, n.file, n.kind)).collect();
        assert_eq!(
            found,
            [
                ("a/tool.tgz".to_owned(), "a/tool.tgz.cdx.json".to_owned(), "sbom"),
                ("a/tool.tgz".to_owned(), "a/tool.tgz.sigstore.json".to_owned(), "sigstore"),
            ]
        );
    }

    #[test]
    fn a_signature_cannot_postdate_the_bundle_or_the_clock() {
        // created before now: the bundle bounds it.
        let t = Times::new(1_000, 0, 800, 60);
        assert_eq!((t.reference, t.not_after), (1_000, 860));
        // a clock set back below the mirror's floor: the floor is the reference.
        let t = Times::new(500, 1_000, 2_000, 60);
        assert_eq!((t.reference, t.not_after), (1_000, 1_060));
    }

    #[test]
    fn a_finding_reads_as_one_line() {
        let f = Finding::new("a.tgz", Some("a.tgz.asc"), "openpgp", Status::Verified)
            .signer("ABCD")
            .detail("signed", "2026-01-01T00:00:00Z");
        assert_eq!(f.to_string(), "a.tgz: a.tgz.asc verified (openpgp) by ABCD; signed: 2026-01-01T00:00:00Z");
    }
}
