//! The OpenPGP work, done by Sequoia's streaming verifiers under its `StandardPolicy`.
//!
//! Each keyring is judged on its own, with its own policy (`allow_sha1_bindings` is per
//! keyring): a signature is run past every keyring holding its issuer's key, and the first
//! keyring (in the caller's order) that finds it good wins; otherwise the first that finds
//! it bad reports why. A detached signature's data is pushed in by the caller, while
//! Sequoia's verifier pulls; so each keyring's verifier runs on a thread of its own, fed
//! through a bounded channel (memory stays a few chunks, whatever the data's size).

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::cert::{Cert, CertParser};
use openpgp::packet::{Packet, Signature};
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationError, VerificationHelper, VerificationResult,
    VerifierBuilder,
};
use openpgp::parse::{PacketParserBuilder, PacketParserResult, Parse};
use openpgp::policy::{HashAlgoSecurity, StandardPolicy};
use openpgp::types::{HashAlgorithm, RevocationStatus, SignatureType};
use openpgp::KeyHandle;

use super::{
    CertInfo, Fingerprint, Keyring as PublicKeyring, OpenPgpError, PgpCheck, PgpOutcome, PgpProblem, PgpSigner, Times,
    KEYRING_MAX_BYTES, KEYRING_MAX_CERTS, SIGNATURE_MAX_BYTES, SIGNATURE_MAX_PACKETS,
};

/// How many data chunks may wait for a verifier thread before `update` blocks.
const CHANNEL_CHUNKS: usize = 4;

/// A parsed keyring and its SHA-1 binding rule.
#[derive(Clone, Debug)]
pub(super) struct Keyring {
    certs: Arc<Vec<Cert>>,
    allow_sha1_bindings: bool,
}

impl Keyring {
    pub(super) fn parse(
        bytes: &[u8],
        only: &[Fingerprint],
        allow_sha1_bindings: bool,
    ) -> Result<Keyring, OpenPgpError> {
        if bytes.len() > KEYRING_MAX_BYTES {
            return Err(OpenPgpError::KeyringTooLarge { size: bytes.len() });
        }
        let certs = narrow(read_certs(bytes)?, only)?;
        Ok(Keyring { certs: Arc::new(certs), allow_sha1_bindings })
    }

    pub(super) fn certs(&self) -> Vec<CertInfo> {
        self.certs.iter().map(|cert| self.describe(cert)).collect()
    }

    /// The policy this keyring's signatures are judged by, with `reference` as "now".
    fn policy(&self, reference: u64) -> StandardPolicy<'static> {
        policy(reference, self.allow_sha1_bindings)
    }

    /// Whether some key of some certificate could have made `sig`.
    fn holds_issuer_of(&self, sig: &Signature) -> bool {
        let issuers = sig.get_issuers();
        !issuers.is_empty() && self.certs.iter().any(|c| c.keys().key_handles(issuers.iter()).next().is_some())
    }

    /// The primary fingerprint of a certificate holding a key that could have made `sig`.
    fn issuer_cert(&self, sig: &Signature) -> Option<Fingerprint> {
        let issuers = sig.get_issuers();
        self.certs
            .iter()
            .find(|c| c.keys().key_handles(issuers.iter()).next().is_some())
            .map(|c| fingerprint(&c.fingerprint()))
    }

    fn describe(&self, cert: &Cert) -> CertInfo {
        let at = newest_self_signature(cert);
        let policy = policy(unix(at), self.allow_sha1_bindings);
        let expires = cert.with_policy(&policy, at).ok().and_then(|valid| valid.primary_key().key_expiration_time());
        CertInfo {
            fingerprint: fingerprint(&cert.fingerprint()),
            user_ids: cert.userids().map(|u| String::from_utf8_lossy(u.userid().value()).into_owned()).collect(),
            created: unix(cert.primary_key().key().creation_time()),
            expires: expires.map(unix),
            revoked: matches!(cert.revocation_status(&policy, at), RevocationStatus::Revoked(_)),
            needs_sha1_bindings: has_sha1_binding(cert),
        }
    }
}

/// Every certificate of a binary or armoured keyring, duplicates merged, secrets refused.
fn read_certs(bytes: &[u8]) -> Result<Vec<Cert>, OpenPgpError> {
    let unreadable =
        |position: usize, e: openpgp::anyhow::Error| OpenPgpError::BadCert { position, reason: format!("{e:#}") };
    let parser = CertParser::from_bytes(bytes).map_err(|e| unreadable(1, e))?;
    let mut certs: Vec<Cert> = Vec::new();
    for (index, cert) in parser.enumerate() {
        if index >= KEYRING_MAX_CERTS {
            return Err(OpenPgpError::TooManyCerts);
        }
        let cert = cert.map_err(|e| unreadable(index + 1, e))?;
        if cert.is_tsk() {
            return Err(OpenPgpError::SecretKeyMaterial { fingerprint: fingerprint(&cert.fingerprint()) });
        }
        match certs.iter().position(|c| c.fingerprint() == cert.fingerprint()) {
            Some(same) => {
                let merged = certs.swap_remove(same).merge_public(cert).map_err(|e| unreadable(index + 1, e))?;
                certs.push(merged);
            }
            None => certs.push(cert),
        }
    }
    if certs.is_empty() {
        return Err(OpenPgpError::EmptyKeyring);
    }
    Ok(certs)
}

/// Just the certificates whose primary fingerprints are in `only` (all when it is empty).
fn narrow(certs: Vec<Cert>, only: &[Fingerprint]) -> Result<Vec<Cert>, OpenPgpError> {
    if only.is_empty() {
        return Ok(certs);
    }
    let primary = |c: &Cert| fingerprint(&c.fingerprint());
    if let Some(missing) = only.iter().find(|f| !certs.iter().any(|c| primary(c) == **f)) {
        let present = certs.iter().map(|c| primary(c).to_string()).collect::<Vec<_>>().join(", ");
        return Err(OpenPgpError::NotInKeyring { fingerprint: missing.clone(), present });
    }
    Ok(certs.into_iter().filter(|c| only.contains(&primary(c))).collect())
}

/// The time of the certificate's newest self-signature or self-revocation (its creation
/// time when it has none): when it last said something about itself.
fn newest_self_signature(cert: &Cert) -> SystemTime {
    let created = cert.primary_key().key().creation_time();
    let keys = cert.keys().flat_map(|k| k.self_signatures().chain(k.self_revocations()).collect::<Vec<_>>());
    let uids = cert.userids().flat_map(|u| u.self_signatures().chain(u.self_revocations()).collect::<Vec<_>>());
    keys.chain(uids).filter_map(|s| s.signature_creation_time()).fold(created, |newest, t| newest.max(t))
}

/// Whether a binding self-signature of `cert` (or a subkey's back-signature) uses SHA-1.
fn has_sha1_binding(cert: &Cert) -> bool {
    let keys = cert.keys().flat_map(|k| k.self_signatures().collect::<Vec<_>>());
    let uids = cert.userids().flat_map(|u| u.self_signatures().collect::<Vec<_>>());
    keys.chain(uids).any(|s| {
        s.hash_algo() == HashAlgorithm::SHA1 || s.embedded_signatures().any(|e| e.hash_algo() == HashAlgorithm::SHA1)
    })
}

/// Sequoia's standard policy with `reference` as "now"; SHA-1 accepted where only second
/// pre-image resistance matters (binding self-signatures) when `allow_sha1_bindings`.
fn policy(reference: u64, allow_sha1_bindings: bool) -> StandardPolicy<'static> {
    let mut policy = StandardPolicy::at(system_time(reference));
    if allow_sha1_bindings {
        policy.accept_hash_property(HashAlgorithm::SHA1, HashAlgoSecurity::SecondPreImageResistance);
    }
    policy
}

/// The parsed packets of a detached signature file.
#[derive(Clone, Debug)]
pub(super) struct Signatures {
    /// The binary packets (dearmoured), as Sequoia's verifier reads them.
    binary: Arc<Vec<u8>>,
    sigs: Vec<Signature>,
}

impl Signatures {
    pub(super) fn parse(bytes: &[u8]) -> Result<Signatures, OpenPgpError> {
        if bytes.len() > SIGNATURE_MAX_BYTES {
            return Err(OpenPgpError::SignatureTooLarge { size: bytes.len() });
        }
        let binary = dearmor_signature(bytes)?;
        let sigs = signature_packets(&binary)?;
        Ok(Signatures { binary: Arc::new(binary), sigs })
    }

    pub(super) fn issuers(&self) -> Vec<String> {
        self.sigs.iter().map(issuer_text).collect()
    }
}

/// The binary packets of a signature file: as is when binary, else its one armoured
/// `PGP SIGNATURE` block, with nothing but blank space around it.
fn dearmor_signature(bytes: &[u8]) -> Result<Vec<u8>, OpenPgpError> {
    let not_signature = |problem: String| OpenPgpError::NotASignatureFile { problem };
    match bytes.first() {
        None => return Err(OpenPgpError::NoSignatures),
        // A binary OpenPGP packet header always has its top bit set; armour is ASCII.
        Some(first) if first & 0x80 != 0 => return Ok(bytes.to_vec()),
        Some(_) => {}
    }
    let text = bytes.trim_ascii();
    if !text.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
        let found = text.split(|b| *b == b'\n').next().unwrap_or_default();
        let shown = String::from_utf8_lossy(&found[..found.len().min(64)]).into_owned();
        return Err(not_signature(format!("neither binary OpenPGP nor an armoured signature (it starts {shown:?})")));
    }
    if !text.ends_with(b"-----END PGP SIGNATURE-----") || count(text, b"-----BEGIN ") != 1 {
        return Err(not_signature("not exactly one armoured signature block, with nothing after it".into()));
    }
    let mut reader = armor::Reader::from_bytes(text, armor::ReaderMode::Tolerant(Some(armor::Kind::Signature)));
    let mut binary = Vec::new();
    reader.read_to_end(&mut binary).map_err(|e| not_signature(format!("bad armour: {e}")))?;
    Ok(binary)
}

/// How often `needle` occurs in `haystack`.
fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// The signature packets of a binary signature file; anything else is an error.
fn signature_packets(binary: &[u8]) -> Result<Vec<Signature>, OpenPgpError> {
    let unreadable = |e: openpgp::anyhow::Error| OpenPgpError::NotASignatureFile { problem: format!("{e:#}") };
    let mut ppr = PacketParserBuilder::from_bytes(binary)
        .and_then(|b| b.dearmor(openpgp::parse::Dearmor::Disabled).build())
        .map_err(unreadable)?;
    let mut sigs = Vec::new();
    while let PacketParserResult::Some(pp) = ppr {
        let position = sigs.len() + 1;
        if position > SIGNATURE_MAX_PACKETS {
            return Err(OpenPgpError::TooManySignatures);
        }
        let (packet, next) = pp.next().map_err(unreadable)?;
        sigs.push(data_signature(packet, position)?);
        ppr = next;
    }
    if sigs.is_empty() {
        return Err(OpenPgpError::NoSignatures);
    }
    Ok(sigs)
}

/// `packet` when it is a signature over a file, with a creation time.
fn data_signature(packet: Packet, position: usize) -> Result<Signature, OpenPgpError> {
    let sig = match packet {
        Packet::Signature(sig) => sig,
        Packet::Unknown(unknown) if unknown.tag() == openpgp::packet::Tag::Signature => {
            return Err(OpenPgpError::BadSignaturePacket { position, reason: format!("{:#}", unknown.error()) });
        }
        other => return Err(OpenPgpError::NotASignature { position, found: other.tag().to_string() }),
    };
    if !matches!(sig.typ(), SignatureType::Binary | SignatureType::Text) {
        return Err(OpenPgpError::NotADataSignature { position, kind: sig.typ().to_string() });
    }
    if sig.signature_creation_time().is_none() {
        return Err(OpenPgpError::NoCreationTime { position });
    }
    Ok(sig)
}

/// The signature's issuer as it names itself: a fingerprint, else a key id.
fn issuer_text(sig: &Signature) -> String {
    let fingerprints = sig.issuer_fingerprints().map(|f| f.to_hex());
    let key_ids = sig.issuers().map(|k| k.to_hex());
    fingerprints.chain(key_ids).next().unwrap_or_else(|| "(no issuer named)".into())
}

/// What one keyring says about one signature.
#[derive(Clone, Debug)]
enum Verdict {
    Good(PgpSigner),
    Bad { fingerprint: Fingerprint, problem: PgpProblem },
    Missing,
}

/// Collects Sequoia's results for one keyring as owned verdicts, one per signature.
struct Helper {
    keyring: Keyring,
    name: String,
    reference: u64,
    /// The signatures, in file order; for a clearsigned message, filled from the results.
    sigs: Vec<Signature>,
    verdicts: Vec<Option<Verdict>>,
    /// Whether the signatures come from the results (clearsigned) or were parsed before.
    collect_sigs: bool,
}

impl Helper {
    fn new(keyring: Keyring, name: String, reference: u64, sigs: Vec<Signature>) -> Helper {
        let verdicts = vec![None; sigs.len()];
        Helper { keyring, name, reference, collect_sigs: sigs.is_empty(), sigs, verdicts }
    }

    /// Records `verdict` for `sig`: the first equal signature without a verdict yet.
    fn record(&mut self, sig: &Signature, verdict: Verdict) {
        if self.collect_sigs {
            self.sigs.push(sig.clone());
            self.verdicts.push(Some(verdict));
        } else if let Some(slot) =
            self.sigs.iter().zip(self.verdicts.iter_mut()).find(|(s, v)| *s == sig && v.is_none())
        {
            *slot.1 = Some(verdict);
        }
    }

    fn verdict(&self, result: &VerificationResult) -> Option<(Signature, Verdict)> {
        let created = |sig: &Signature| sig.signature_creation_time().map_or(0, unix);
        Some(match result {
            Ok(good) => (good.sig.clone(), Verdict::Good(self.signer(good.sig, &good.ka))),
            Err(VerificationError::MissingKey { sig }) => ((*sig).clone(), Verdict::Missing),
            Err(VerificationError::UnboundKey { sig, cert, error }) => {
                let problem = self.unbound(sig, cert, error);
                ((*sig).clone(), Verdict::Bad { fingerprint: fingerprint(&cert.fingerprint()), problem })
            }
            Err(VerificationError::BadKey { sig, ka, error }) => {
                let key = fingerprint(&ka.key().fingerprint());
                let problem = PgpProblem::KeyNotValid { key, created: created(sig), reason: format!("{error:#}") };
                ((*sig).clone(), Verdict::Bad { fingerprint: fingerprint(&ka.cert().fingerprint()), problem })
            }
            Err(VerificationError::BadSignature { sig, ka, error }) => {
                let key = fingerprint(&ka.key().fingerprint());
                // Sequoia's refusals of the signature itself carry these errors; anything else
                // came from checking the maths against the data.
                let problem = match error.downcast_ref::<openpgp::Error>() {
                    Some(
                        openpgp::Error::Expired(_)
                        | openpgp::Error::NotYetLive(_)
                        | openpgp::Error::PolicyViolation(..),
                    ) => PgpProblem::BadSignature { key, reason: format!("{error:#}") },
                    _ => PgpProblem::Mismatch { key, detail: format!("{error:#}") },
                };
                ((*sig).clone(), Verdict::Bad { fingerprint: fingerprint(&ka.cert().fingerprint()), problem })
            }
            Err(VerificationError::MalformedSignature { sig, error }) => {
                let verdict = match self.keyring.issuer_cert(sig) {
                    Some(fingerprint) => {
                        Verdict::Bad { fingerprint, problem: PgpProblem::Unverifiable { reason: format!("{error:#}") } }
                    }
                    None => Verdict::Missing,
                };
                ((*sig).clone(), verdict)
            }
            // Unparsable signatures were refused when the file was parsed.
            Err(_) => return None,
        })
    }

    fn signer(
        &self,
        sig: &Signature,
        ka: &openpgp::cert::amalgamation::key::ValidErasedKeyAmalgamation<'_, openpgp::packet::key::PublicParts>,
    ) -> PgpSigner {
        use openpgp::cert::amalgamation::ValidAmalgamation as _;
        use openpgp::cert::amalgamation::ValidateAmalgamation as _;
        let created = sig.signature_creation_time().unwrap_or(UNIX_EPOCH);
        let cert_expires = ka.valid_cert().primary_key().key_expiration_time();
        let key_expires = match (ka.key_expiration_time(), cert_expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let strict = policy(self.reference, false);
        let bound_without_sha1 = ka
            .cert()
            .keys()
            .key_handle(ka.key().fingerprint())
            .next()
            .is_some_and(|k| k.with_policy(&strict, created).is_ok());
        PgpSigner {
            keyring: self.name.clone(),
            primary: fingerprint(&ka.cert().fingerprint()),
            signing_key: fingerprint(&ka.key().fingerprint()),
            user_id: ka
                .valid_cert()
                .primary_userid()
                .ok()
                .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned()),
            created: unix(created),
            hash: sig.hash_algo().to_string(),
            key_expires: key_expires.map(unix),
            sha1_binding: !bound_without_sha1,
        }
    }

    /// Why no key of `cert` was bound when `sig` was made: SHA-1 bindings by name when
    /// accepting them would have bound it.
    fn unbound(&self, sig: &Signature, cert: &Cert, error: &openpgp::anyhow::Error) -> PgpProblem {
        use openpgp::cert::amalgamation::ValidateAmalgamation as _;
        let created = sig.signature_creation_time().unwrap_or(UNIX_EPOCH);
        let issuers = sig.get_issuers();
        let lenient = policy(self.reference, true);
        let sha1_bound =
            cert.keys().key_handles(issuers.iter()).find(|k| k.clone().with_policy(&lenient, created).is_ok());
        match sha1_bound {
            Some(key) if !self.keyring.allow_sha1_bindings => {
                PgpProblem::Sha1Binding { key: fingerprint(&key.key().fingerprint()), created: unix(created) }
            }
            _ => {
                let key = cert
                    .keys()
                    .key_handles(issuers.iter())
                    .next()
                    .map_or_else(|| cert.fingerprint(), |k| k.key().fingerprint());
                PgpProblem::KeyNotValid { key: fingerprint(&key), created: unix(created), reason: format!("{error:#}") }
            }
        }
    }
}

impl VerificationHelper for Helper {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.keyring.certs.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure.iter() {
            if let MessageLayer::SignatureGroup { results } = layer {
                for result in results {
                    if let Some((sig, verdict)) = self.verdict(result) {
                        self.record(&sig, verdict);
                    }
                }
            }
        }
        Ok(())
    }
}

/// One keyring's verdicts, one per signature in file order (`None`: Sequoia reported
/// nothing for it), or why the keyring's verification failed as a whole.
type KeyringVerdicts = Result<Vec<Option<Verdict>>, String>;

/// One keyring's verification of a detached signature, on its own thread.
struct Run {
    keyring: String,
    sender: Option<SyncSender<Vec<u8>>>,
    outcome: RunHandle,
}

enum RunHandle {
    Running(JoinHandle<KeyringVerdicts>),
    NotStarted(String),
}

/// A detached signature's verification in progress.
pub(super) struct Verifier {
    sigs: Vec<Signature>,
    keyrings: Vec<(String, Keyring)>,
    times: Times,
    runs: Vec<Run>,
}

impl Verifier {
    pub(super) fn new(signatures: &Signatures, keyrings: &[(String, PublicKeyring)], times: Times) -> Verifier {
        let keyrings: Vec<(String, Keyring)> = keyrings
            .iter()
            .filter(|(_, k)| signatures.sigs.iter().any(|s| k.inner.holds_issuer_of(s)))
            .map(|(name, k)| (name.clone(), k.inner.clone()))
            .collect();
        let runs = keyrings.iter().map(|(name, keyring)| start_run(signatures, name, keyring, times)).collect();
        Verifier { sigs: signatures.sigs.clone(), keyrings, times, runs }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        for run in &mut self.runs {
            // A verifier that stopped early (it failed) has dropped its receiver; finish
            // reports its failure, so the data is not needed any more.
            if run.sender.as_ref().is_some_and(|s| s.send(data.to_vec()).is_err()) {
                run.sender = None;
            }
        }
    }

    pub(super) fn finish(self) -> Vec<PgpCheck> {
        let mut per_keyring = Vec::new();
        for mut run in self.runs {
            run.sender = None; // end of data
            let verdicts = match run.outcome {
                RunHandle::Running(handle) => {
                    handle.join().unwrap_or_else(|_| Err("the verifier thread panicked".into()))
                }
                RunHandle::NotStarted(reason) => Err(reason),
            };
            per_keyring.push((run.keyring, verdicts));
        }
        combine(&self.sigs, &self.keyrings, &per_keyring, self.times)
    }
}

/// Starts verifying `signatures` with `keyring` on a thread of its own.
fn start_run(signatures: &Signatures, name: &str, keyring: &Keyring, times: Times) -> Run {
    let (sender, receiver) = mpsc::sync_channel(CHANNEL_CHUNKS);
    let binary = Arc::clone(&signatures.binary);
    let helper = Helper::new(keyring.clone(), name.to_owned(), times.reference, signatures.sigs.clone());
    let policy = keyring.policy(times.reference);
    let spawned = std::thread::Builder::new()
        .name("openpgp verify".into())
        .spawn(move || verify_stream(&binary, &policy, helper, times, receiver));
    let outcome = match spawned {
        Ok(handle) => RunHandle::Running(handle),
        Err(e) => RunHandle::NotStarted(format!("cannot start a verifier thread: {e}")),
    };
    Run { keyring: name.to_owned(), sender: Some(sender), outcome }
}

/// Runs Sequoia's detached verifier over the data arriving on `receiver`.
fn verify_stream(
    binary: &[u8],
    policy: &StandardPolicy<'static>,
    helper: Helper,
    times: Times,
    receiver: Receiver<Vec<u8>>,
) -> KeyringVerdicts {
    let mut verifier = DetachedVerifierBuilder::from_bytes(binary)
        .and_then(|b| b.with_policy(policy, verify_time(times), helper))
        .map_err(|e| format!("{e:#}"))?;
    let reader = ChannelReader { receiver: Mutex::new(receiver), chunk: Vec::new(), offset: 0 };
    verifier.verify_reader(reader).map_err(|e| format!("{e:#}"))?;
    Ok(verifier.into_helper().verdicts)
}

/// The data pushed through `update`, read as a stream; the end comes when the sender goes.
struct ChannelReader {
    // A Mutex only to make the reader `Sync`, as Sequoia asks; one thread ever reads.
    receiver: Mutex<Receiver<Vec<u8>>>,
    chunk: Vec<u8>,
    offset: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset >= self.chunk.len() {
            let receiver = self.receiver.get_mut().map_err(|_| io::Error::other("data channel poisoned"))?;
            match receiver.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.offset = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let rest = &self.chunk[self.offset..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.offset += n;
        Ok(n)
    }
}

/// One check per signature from every keyring's verdicts: the first good, else the first
/// bad, else unknown; then the rules Sequoia does not know (weak data hashes, postdating).
fn combine(
    sigs: &[Signature],
    keyrings: &[(String, Keyring)],
    per_keyring: &[(String, KeyringVerdicts)],
    times: Times,
) -> Vec<PgpCheck> {
    sigs.iter()
        .enumerate()
        .map(|(index, sig)| {
            let verdicts = per_keyring.iter().zip(keyrings).map(|((name, verdicts), (_, keyring))| {
                let verdict = match verdicts {
                    Ok(verdicts) => verdicts.get(index).cloned().flatten().unwrap_or(Verdict::Missing),
                    Err(reason) => match keyring.issuer_cert(sig) {
                        Some(fingerprint) => {
                            Verdict::Bad { fingerprint, problem: PgpProblem::Unverifiable { reason: reason.clone() } }
                        }
                        None => Verdict::Missing,
                    },
                };
                (name.as_str(), verdict)
            });
            PgpCheck { issuer: issuer_text(sig), outcome: judge(sig, verdicts.collect(), times) }
        })
        .collect()
}

/// The outcome for one signature from what each keyring (in order) said.
fn judge(sig: &Signature, verdicts: Vec<(&str, Verdict)>, times: Times) -> PgpOutcome {
    let good = verdicts.iter().find(|(_, v)| matches!(v, Verdict::Good(_)));
    let bad = verdicts.iter().find(|(_, v)| matches!(v, Verdict::Bad { .. }));
    let (keyring, fingerprint, outcome) = match good.or(bad) {
        Some((keyring, Verdict::Good(signer))) => (*keyring, signer.primary.clone(), PgpOutcome::Good(signer.clone())),
        Some((keyring, Verdict::Bad { fingerprint, problem })) => {
            let bad = PgpOutcome::Bad {
                keyring: keyring.to_string(),
                fingerprint: fingerprint.clone(),
                problem: problem.clone(),
            };
            (*keyring, fingerprint.clone(), bad)
        }
        _ => return PgpOutcome::UnknownKey,
    };
    match overriding_problem(sig, times) {
        Some(problem) => PgpOutcome::Bad { keyring: keyring.to_string(), fingerprint, problem },
        None => outcome,
    }
}

/// What makes a signature by a known key bad whatever Sequoia says: a data hash open to
/// collisions (at any policy time), or a creation time after `times.not_after`.
fn overriding_problem(sig: &Signature, times: Times) -> Option<PgpProblem> {
    let weak = match sig.hash_algo() {
        HashAlgorithm::SHA1 => Some("SHA-1"),
        HashAlgorithm::MD5 => Some("MD5"),
        HashAlgorithm::RipeMD => Some("RIPEMD-160"),
        _ => None,
    };
    if let Some(hash) = weak {
        return Some(PgpProblem::WeakDataHash { hash: hash.into() });
    }
    let created = sig.signature_creation_time().map_or(0, unix);
    (created > times.not_after).then_some(PgpProblem::Postdated { created, not_after: times.not_after })
}

pub(super) fn verify_clearsigned(
    bytes: &[u8],
    keyrings: &[(String, PublicKeyring)],
    times: Times,
) -> Result<(Vec<u8>, Vec<PgpCheck>), OpenPgpError> {
    // With no keyring, one run with an empty one still reads the text and the signatures.
    let empty = Keyring { certs: Arc::new(Vec::new()), allow_sha1_bindings: false };
    let runs: Vec<(String, Keyring)> = match keyrings {
        [] => vec![(String::new(), empty)],
        _ => keyrings.iter().map(|(name, k)| (name.clone(), k.inner.clone())).collect(),
    };
    let mut text = None;
    let mut sigs = Vec::new();
    let mut per_keyring = Vec::new();
    for (name, keyring) in &runs {
        let (run_text, helper) = verify_message(bytes, name, keyring, times)?;
        if text.as_ref().is_some_and(|t| *t != run_text) || (!sigs.is_empty() && sigs != helper.sigs) {
            return Err(OpenPgpError::BadClearsigned {
                reason: "the message reads differently on a second pass".into(),
            });
        }
        text = Some(run_text);
        sigs = helper.sigs;
        per_keyring.push((name.clone(), Ok(helper.verdicts)));
    }
    if sigs.is_empty() {
        return Err(OpenPgpError::NoSignatures);
    }
    if sigs.len() > SIGNATURE_MAX_PACKETS {
        return Err(OpenPgpError::TooManySignatures);
    }
    let checks = combine(&sigs, &runs, &per_keyring, times);
    Ok((text.unwrap_or_default(), checks))
}

/// Sequoia's verifier over a whole clearsigned message: its text, and the helper holding
/// the signatures and this keyring's verdicts.
fn verify_message(
    bytes: &[u8],
    name: &str,
    keyring: &Keyring,
    times: Times,
) -> Result<(Vec<u8>, Helper), OpenPgpError> {
    let unreadable = |e: openpgp::anyhow::Error| OpenPgpError::BadClearsigned { reason: format!("{e:#}") };
    let policy = keyring.policy(times.reference);
    let helper = Helper::new(keyring.clone(), name.to_owned(), times.reference, Vec::new());
    let mut verifier = VerifierBuilder::from_bytes(bytes)
        .and_then(|b| b.with_policy(&policy, verify_time(times), helper))
        .map_err(unreadable)?;
    let mut text = Vec::new();
    verifier.read_to_end(&mut text).map_err(|e| unreadable(e.into()))?;
    if !verifier.message_processed() || verifier.processing_csf_message() != Some(true) {
        return Err(OpenPgpError::BadClearsigned { reason: "not a clearsigned message".into() });
    }
    Ok((text, verifier.into_helper()))
}

/// The time Sequoia checks a signature's own lifetime at: the later of the policy clock
/// and the latest signing time accepted (which is checked separately, and more tightly).
fn verify_time(times: Times) -> SystemTime {
    system_time(times.reference.max(times.not_after))
}

fn fingerprint(f: &openpgp::Fingerprint) -> Fingerprint {
    Fingerprint(f.to_hex())
}

/// Unix seconds (0 before 1970).
fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `t` as a `SystemTime`, saturated at OpenPGP's last representable second (2106).
fn system_time(t: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.min(u64::from(u32::MAX)))
}
