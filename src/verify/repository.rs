//! Debian archive trees under a `[[repository]]` rule, checked in the payload's single pass
//! (docs/POLICY.md, "Debian repositories"):
//!
//! 1. each suite's `InRelease` (or `Release` with `Release.gpg`) is buffered (at most
//!    [`MAX_MATERIAL_FILE`] bytes) and verified with the rule's OpenPGP keyrings as soon as
//!    it has streamed (payload order puts `dists/<suite>/InRelease` before the component
//!    directories); its `Suite` or `Codename` must be the suite's directory name, its
//!    `Date` may not postdate the bundle, and its `Valid-Until` is enforced, reported or
//!    ignored as the rule says;
//! 2. every other file under `dists/<suite>/` must be listed in the release file's `SHA256`
//!    table with the size and SHA-256 the manifest gives it (the manifest's digests are
//!    authenticated, so the index files need not be read again);
//! 3. the `Packages`/`Sources` indexes that step 2 authenticates are parsed as they stream
//!    (hostile index text never reaches a decompressor without the archive's signature),
//!    keeping only the lines for pool files the bundle holds (memory bounded by the
//!    bundle's entries, not the archive's); an index that streams before its release file
//!    is not parsed, so the pool files only it lists stay uncovered;
//! 4. every pool file the bundle carries under `<root>/pool/` must be listed with its size
//!    and SHA-256; one listed with another size or digest rejects; one not listed rejects
//!    (`uncovered = "reject"`, the default) or is reported.
//!
//! A delta bundle's entries it does not carry were checked when they were carried; a suite
//! with carried files needs its release file carried too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::artifacts::MAX_MATERIAL_FILE;
use super::producers::openpgp_details;
use crate::error::{Reject, Result};
use crate::format::manifest::{Entry, Manifest};
use crate::io::digest::Digest;
use crate::policy::producer::{ProducerKeyKind, RepositoryRule, Uncovered, ValidUntil};
use crate::policy::Policy;
use crate::producer::debian::{self, IndexReader, Listed, Release};
use crate::producer::openpgp::{self, Keyring, PgpCheck, PgpOutcome};
use crate::producer::{time_words, Finding, Status, Times};

const RELEASE_FILES: [&str; 3] = ["InRelease", "Release", "Release.gpg"];

/// A file of the tree, from the manifest.
#[derive(Clone)]
struct File {
    path: String,
    size: u64,
    sha256: Digest,
    carried: bool,
}

/// One suite of a rule.
struct Suite {
    name: String,
    /// Files under `dists/<suite>/`, by their path relative to it.
    dists: Vec<(String, File)>,
    /// Buffered release files, by name (`InRelease`, `Release`, `Release.gpg`), until the
    /// release is verified.
    release: HashMap<&'static str, Vec<u8>>,
    /// The verified release file, once it is.
    verified: Option<Release>,
    /// What each parsed index listed (wanted entries only), by the index's relative path.
    listed: Vec<(String, Vec<Listed>)>,
}

/// One rule's tree.
struct Tree<'a> {
    rule: &'a RepositoryRule,
    suites: Vec<Suite>,
    /// Pool files carried, by their path relative to the root.
    pool: HashMap<String, File>,
    /// Their paths, shared with the index readers' filters.
    pool_paths: Arc<HashSet<String>>,
    /// Files under the root in neither a rule suite nor `pool/`.
    outside: usize,
}

enum Streaming {
    Release { tree: usize, suite: usize, name: &'static str, buf: Vec<u8> },
    Index { tree: usize, suite: usize, rel: String, reader: Box<IndexReader> },
}

/// The repository rules' state over one payload.
pub(super) struct Repositories<'a> {
    policy: &'a Policy,
    trees: Vec<Tree<'a>>,
    times: Times,
    created: u64,
    current: Option<Streaming>,
    findings: Vec<Finding>,
    /// Names of the keys whose signatures verified a release file.
    used: Vec<String>,
}

fn reject(path: &str, problem: String) -> crate::error::Error {
    Reject::Artifact { path: path.to_owned(), problem }.into()
}

impl<'a> Repositories<'a> {
    /// The trees of `policy`'s repository rules in `manifest`.
    pub(super) fn new(policy: &'a Policy, manifest: &Manifest, times: Times) -> Result<Repositories<'a>> {
        let mut trees = Vec::new();
        for rule in policy.repositories() {
            let mut tree = Tree {
                rule,
                suites: rule
                    .suites
                    .iter()
                    .map(|s| Suite {
                        name: s.clone(),
                        dists: Vec::new(),
                        release: HashMap::new(),
                        verified: None,
                        listed: Vec::new(),
                    })
                    .collect(),
                pool: HashMap::new(),
                pool_paths: Arc::default(),
                outside: 0,
            };
            for e in &manifest.entries {
                let Some(rel) = rule.relative(e.path.as_str()) else { continue };
                let file =
                    File { path: e.path.as_str().to_owned(), size: e.size, sha256: e.sha256, carried: e.carried };
                if rel.starts_with("pool/") {
                    if e.carried {
                        tree.pool.insert(rel.to_owned(), file);
                    }
                } else if let Some((i, in_suite)) = tree.suite_of(rel) {
                    tree.suites[i].dists.push((in_suite.to_owned(), file));
                } else {
                    tree.outside += 1;
                }
            }
            tree.pool_paths = Arc::new(tree.pool.keys().cloned().collect());
            if tree.suites.iter().any(|s| !s.dists.is_empty()) || !tree.pool.is_empty() {
                trees.push(tree);
            }
        }
        Ok(Repositories {
            policy,
            trees,
            times,
            created: manifest.created,
            current: None,
            findings: Vec::new(),
            used: Vec::new(),
        })
    }

    /// Whether the bundle holds any tree a rule checks.
    pub(super) fn active(&self) -> bool {
        !self.trees.is_empty()
    }

    pub(super) fn open(&mut self, entry: &Entry) -> Result<()> {
        self.current = None;
        let path = entry.path.as_str();
        for (t, tree) in self.trees.iter().enumerate() {
            let Some(rel) = tree.rule.relative(path) else { continue };
            let Some((s, in_suite)) = tree.suite_of(rel) else { continue };
            if let Some(&name) = RELEASE_FILES.iter().find(|n| **n == in_suite) {
                if entry.size > MAX_MATERIAL_FILE {
                    return Err(reject(
                        path,
                        format!("{} bytes is more than the {MAX_MATERIAL_FILE} a release file may have", entry.size),
                    ));
                }
                let buf = Vec::with_capacity(entry.size as usize);
                self.current = Some(Streaming::Release { tree: t, suite: s, name, buf });
            } else if let Some((kind, compression)) = debian::index_kind(in_suite) {
                let authenticated = tree.suites[s]
                    .verified
                    .as_ref()
                    .and_then(|r| r.expect(in_suite))
                    .is_some_and(|(size, sha256)| size == entry.size && sha256 == entry.sha256);
                if !authenticated {
                    return Ok(());
                }
                let pool = Arc::clone(&tree.pool_paths);
                let wanted = Box::new(move |p: &str| pool.contains(p));
                let reader = Box::new(IndexReader::new(kind, compression, wanted));
                self.current = Some(Streaming::Index { tree: t, suite: s, rel: in_suite.to_owned(), reader });
            }
            return Ok(());
        }
        Ok(())
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.current {
            Some(Streaming::Release { buf, .. }) => buf.extend_from_slice(bytes),
            Some(Streaming::Index { tree, suite, rel, reader }) => {
                if let Err(e) = reader.update(bytes) {
                    let path = self.trees[*tree]
                        .rule
                        .path_of(&format!("dists/{}/{rel}", self.trees[*tree].suites[*suite].name));
                    self.current = None;
                    return Err(reject(&path, format!("index is malformed: {e}")));
                }
            }
            None => {}
        }
        Ok(())
    }

    pub(super) fn close(&mut self, entry: &Entry) -> Result<()> {
        match self.current.take() {
            Some(Streaming::Release { tree, suite, name, buf }) => {
                self.trees[tree].suites[suite].release.insert(name, buf);
                self.try_verify_release(tree, suite)?;
            }
            Some(Streaming::Index { tree, suite, rel, reader }) => {
                let listed =
                    reader.finish().map_err(|e| reject(entry.path.as_str(), format!("index is malformed: {e}")))?;
                self.trees[tree].suites[suite].listed.push((rel, listed));
            }
            None => {}
        }
        Ok(())
    }

    /// Decides every tree; returns the findings and the names of the keys that signed.
    pub(super) fn end(mut self) -> Result<(Vec<Finding>, Vec<String>)> {
        let mut findings = std::mem::take(&mut self.findings);
        for tree in &self.trees {
            self.decide(tree, &mut findings)?;
        }
        Ok((findings, self.used))
    }

    /// Verifies a suite's release file as soon as the files it needs have streamed:
    /// `InRelease`; or `Release.gpg` after `Release` when the bundle has no `InRelease`.
    /// A `Release` beside a verified `InRelease` must be its signed text.
    fn try_verify_release(&mut self, t: usize, s: usize) -> Result<()> {
        let tree = &self.trees[t];
        let suite = &tree.suites[s];
        let has_inrelease = suite.dists.iter().any(|(rel, _)| rel == "InRelease");
        let ready = match (&suite.verified, has_inrelease) {
            (Some(_), _) => false,
            (None, true) => suite.release.contains_key("InRelease"),
            (None, false) => suite.release.contains_key("Release") && suite.release.contains_key("Release.gpg"),
        };
        if ready {
            let mut findings = Vec::new();
            let mut used = Vec::new();
            let (release, text) = self.verify_release(tree, suite, &mut findings, &mut used)?;
            self.findings.extend(findings);
            self.used.extend(used);
            let suite = &mut self.trees[t].suites[s];
            suite.verified = Some(release);
            // Only the signed text is kept, to hold a plain `Release` to it.
            suite.release.clear();
            suite.release.insert("signed text", text);
        }
        let tree = &self.trees[t];
        let suite = &tree.suites[s];
        if let (Some(_), Some(plain), Some(text)) =
            (&suite.verified, suite.release.get("Release"), suite.release.get("signed text"))
        {
            if has_inrelease && plain != text {
                return Err(reject(
                    &tree.rule.path_of(&format!("dists/{}/Release", suite.name)),
                    "differs from the text InRelease signs; refusing two versions of one suite".into(),
                ));
            }
        }
        Ok(())
    }

    fn keyrings(&self, rule: &RepositoryRule) -> Vec<(String, Keyring)> {
        rule.keys
            .iter()
            .filter_map(|n| match self.policy.producer_key(n).map(|k| &k.kind) {
                Some(ProducerKeyKind::OpenPgp(k)) => Some((n.clone(), k.keyring.clone())),
                _ => None,
            })
            .collect()
    }

    fn decide(&self, tree: &Tree<'_>, findings: &mut Vec<Finding>) -> Result<()> {
        let rule = tree.rule;
        // Listings of verified indexes: repository-relative path -> (size, SHA-256, index).
        let mut listed: HashMap<&str, Vec<(u64, Digest, String)>> = HashMap::new();
        for suite in &tree.suites {
            let dists = format!("dists/{}", suite.name);
            if !suite.dists.iter().any(|(_, f)| f.carried) {
                if suite.dists.is_empty() {
                    findings.push(
                        Finding::new(&rule.path_of(&dists), None, "debian-release", Status::NotCovered)
                            .detail("note", "the suite is not in this bundle"),
                    );
                }
                continue;
            }
            let Some(release) = &suite.verified else {
                return Err(self.missing_release(tree, suite));
            };
            let mut verified_indexes: Vec<&str> = Vec::new();
            let mut unlisted: Vec<&str> = Vec::new();
            for (rel, file) in &suite.dists {
                if RELEASE_FILES.contains(&rel.as_str()) {
                    continue;
                }
                match release.expect(rel) {
                    Some((size, sha256)) if size == file.size && sha256 == file.sha256 => verified_indexes.push(rel),
                    Some((size, sha256)) => {
                        return Err(reject(
                            &file.path,
                            format!(
                                "index file does not match the release file: {} bytes with SHA-256 {}, but {} lists {size} bytes with SHA-256 {} (a tampered or stale index)",
                                file.size,
                                file.sha256.to_hex(),
                                rule.path_of(&format!("{dists}/InRelease")),
                                sha256.to_hex()
                            ),
                        ))
                    }
                    None => unlisted.push(&file.path),
                }
            }
            if !unlisted.is_empty() {
                if rule.uncovered == Uncovered::Reject {
                    return Err(reject(
                        unlisted[0],
                        format!(
                            "not listed in the SHA256 table of suite {:?}'s release file ({} such file(s) under {}); set uncovered = \"report\" in the [[repository]] rule to carry such files",
                            suite.name,
                            unlisted.len(),
                            rule.path_of(&dists)
                        ),
                    ));
                }
                for path in &unlisted {
                    findings.push(
                        Finding::new(path, None, "debian-index", Status::NotCovered)
                            .detail("note", "not listed by the release file; carried (uncovered = \"report\")"),
                    );
                }
            }
            for rel in &verified_indexes {
                findings.push(
                    Finding::new(&rule.path_of(&format!("{dists}/{rel}")), None, "debian-index", Status::Verified)
                        .detail("suite", suite.name.clone()),
                );
            }
            for (rel, entries) in &suite.listed {
                if !verified_indexes.contains(&rel.as_str()) {
                    continue;
                }
                for l in entries {
                    listed.entry(l.path.as_str()).or_default().push((l.size, l.sha256, format!("{dists}/{rel}")));
                }
            }
        }
        self.decide_pool(tree, &listed, findings)
    }

    /// A suite with carried files and no verified release file.
    fn missing_release(&self, tree: &Tree<'_>, suite: &Suite) -> crate::error::Error {
        let rule = tree.rule;
        let dists = format!("dists/{}", suite.name);
        let not_carried = suite.dists.iter().any(|(rel, f)| RELEASE_FILES.contains(&rel.as_str()) && !f.carried);
        reject(
            &rule.path_of(&dists),
            if not_carried {
                format!("suite {:?}: its release file is not carried by this delta bundle, but files it covers are; pack a bundle that carries {dists}/InRelease", suite.name)
            } else {
                format!("suite {:?}: no InRelease, and no Release with Release.gpg, in the bundle: nothing signs its indexes", suite.name)
            },
        )
    }

    /// Verifies a suite's release file and parses it; returns it with its signed text.
    fn verify_release(
        &self,
        tree: &Tree<'_>,
        suite: &Suite,
        findings: &mut Vec<Finding>,
        used: &mut Vec<String>,
    ) -> Result<(Release, Vec<u8>)> {
        let rule = tree.rule;
        let dists = format!("dists/{}", suite.name);
        let keyrings = self.keyrings(rule);
        let (file, text, checks) = if let Some(inrelease) = suite.release.get("InRelease") {
            let path = rule.path_of(&format!("{dists}/InRelease"));
            let (text, checks) = openpgp::verify_clearsigned(inrelease, &keyrings, self.times)
                .map_err(|e| reject(&path, format!("is not one clearsigned OpenPGP message: {e}")))?;
            (path, text, checks)
        } else if let (Some(plain), Some(sig)) = (suite.release.get("Release"), suite.release.get("Release.gpg")) {
            let path = rule.path_of(&format!("{dists}/Release"));
            let checks = openpgp::verify_detached(sig, plain, &keyrings, self.times)
                .map_err(|e| reject(&path, format!("{dists}/Release.gpg is not an OpenPGP signature: {e}")))?;
            (path, plain.clone(), checks)
        } else {
            return Err(self.missing_release(tree, suite));
        };
        let signers = self.judge_release(&file, &checks, findings)?;
        let release =
            Release::parse(&text).map_err(|e| reject(&file, format!("signed text is not a release file: {e}")))?;
        let names_suite = release.suite.as_deref() == Some(suite.name.as_str())
            || release.codename.as_deref() == Some(suite.name.as_str());
        if !names_suite {
            return Err(reject(
                &file,
                format!(
                    "is for suite {:?} (codename {:?}), not {:?} whose directory it is in: a release file moved to another suite",
                    release.suite.as_deref().unwrap_or(""),
                    release.codename.as_deref().unwrap_or(""),
                    suite.name
                ),
            ));
        }
        if release.date > self.times.not_after {
            return Err(reject(
                &file,
                format!(
                    "Date {} is after the bundle carrying it was created ({} with the clock skew)",
                    time_words(release.date),
                    time_words(self.times.not_after)
                ),
            ));
        }
        let mut f = Finding::new(&file, None, "debian-release", Status::Verified)
            .signer(signers.iter().map(|(fp, _)| fp.as_str()).collect::<Vec<_>>().join(", "))
            .detail("suite", release.suite.clone().unwrap_or_default())
            .detail("codename", release.codename.clone().unwrap_or_default())
            .detail("date", time_words(release.date));
        match (release.valid_until, rule.valid_until) {
            (_, ValidUntil::Ignore) => {}
            (None, _) => f = f.detail("valid until", "not given"),
            (Some(v), ValidUntil::Enforce) if v < self.times.reference => {
                return Err(reject(
                    &file,
                    format!(
                        "expired: Valid-Until {} is before the import clock {} (valid_until = \"enforce\")",
                        time_words(v),
                        time_words(self.times.reference)
                    ),
                ))
            }
            (Some(v), _) if v < self.times.reference => {
                f = f.detail(
                    "valid until",
                    format!("{} (EXPIRED at import: apt inside refuses it unless Check-Valid-Until=no)", time_words(v)),
                );
            }
            (Some(v), _) => f = f.detail("valid until", time_words(v)),
        }
        findings.push(f);
        used.extend(signers.into_iter().map(|(_, key)| key));
        Ok((release, text))
    }

    /// The release file's signatures: at least one good one by a rule key, not revoked;
    /// a bad one by a rule key rejects. Returns (fingerprint, key name) of the good ones.
    fn judge_release(
        &self,
        file: &str,
        checks: &[PgpCheck],
        findings: &mut Vec<Finding>,
    ) -> Result<Vec<(String, String)>> {
        let mut good = Vec::new();
        let mut others = Vec::new();
        for check in checks {
            match &check.outcome {
                PgpOutcome::Good(s) => {
                    if let Some(r) =
                        self.policy.fingerprint_revocation(&[&s.primary, &s.signing_key], s.created, self.created)
                    {
                        let mut f = openpgp_details(Finding::new(file, None, "openpgp", Status::Revoked), s);
                        f = f.detail("reason", r.reason.clone());
                        findings.push(f);
                        others.push(format!("{} (revoked: {})", s.primary, r.reason));
                        continue;
                    }
                    findings.push(openpgp_details(Finding::new(file, None, "openpgp", Status::Verified), s));
                    good.push((s.primary.to_string(), s.keyring.clone()));
                }
                PgpOutcome::Bad { keyring, fingerprint, problem } => {
                    if let Some(r) = self.policy.fingerprint_revocation(&[fingerprint], 0, self.created) {
                        others.push(format!("{fingerprint} (revoked: {})", r.reason));
                        continue;
                    }
                    return Err(reject(
                        file,
                        format!("signature by OpenPGP key {fingerprint} (key {keyring}): {problem}"),
                    ));
                }
                _ => {
                    findings.push(
                        Finding::new(file, None, "openpgp", Status::OtherSigner)
                            .signer(check.issuer.clone())
                            .detail("note", "by a key in no keyring the rule names; ignored"),
                    );
                    others.push(format!("{} (not in the rule's keyrings)", check.issuer));
                }
            }
        }
        if good.is_empty() {
            return Err(reject(
                file,
                format!(
                    "no valid signature by the rule's keys ({}); signed by: {}",
                    self.keys_in_words(),
                    if others.is_empty() { "nobody".to_owned() } else { others.join(", ") }
                ),
            ));
        }
        Ok(good)
    }

    fn keys_in_words(&self) -> String {
        let mut out = Vec::new();
        for tree in &self.trees {
            for (name, keyring) in self.keyrings(tree.rule) {
                let fps: Vec<String> = keyring.certs().iter().map(|c| c.fingerprint.to_string()).collect();
                out.push(format!("{name}: {}", fps.join(", ")));
            }
        }
        out.dedup();
        out.join("; ")
    }

    /// Every carried pool file listed by a verified index with its size and SHA-256.
    fn decide_pool(
        &self,
        tree: &Tree<'_>,
        listed: &HashMap<&str, Vec<(u64, Digest, String)>>,
        findings: &mut Vec<Finding>,
    ) -> Result<()> {
        let rule = tree.rule;
        let mut covered = 0usize;
        let mut uncovered: Vec<&File> = Vec::new();
        let mut pool: Vec<(&String, &File)> = tree.pool.iter().collect();
        pool.sort_by(|a, b| a.0.cmp(b.0));
        for (rel, file) in pool {
            match listed.get(rel.as_str()) {
                Some(listings) if listings.iter().any(|(size, d, _)| *size == file.size && *d == file.sha256) => {
                    covered += 1;
                }
                Some(listings) => {
                    let (size, d, index) = &listings[0];
                    return Err(reject(
                        &file.path,
                        format!(
                            "pool file is {} bytes with SHA-256 {}, but {} lists it with {size} bytes and SHA-256 {}",
                            file.size,
                            file.sha256.to_hex(),
                            rule.path_of(index),
                            d.to_hex()
                        ),
                    ));
                }
                None => uncovered.push(file),
            }
        }
        if let (Some(first), Uncovered::Reject) = (uncovered.first(), rule.uncovered) {
            return Err(reject(
                &first.path,
                format!(
                    "pool file listed by no verified Packages or Sources index of the suites {} ({} such file(s)); set uncovered = \"report\" in the [[repository]] rule to carry such files",
                    rule.suites.join(", "),
                    uncovered.len()
                ),
            ));
        }
        for file in &uncovered {
            findings.push(
                Finding::new(&file.path, None, "debian-pool", Status::NotCovered)
                    .detail("note", "listed by no verified index; carried (uncovered = \"report\")"),
            );
        }
        let mut summary = Finding::new(&rule.path_of("pool"), None, "debian-pool", Status::Verified)
            .detail("covered", covered.to_string())
            .detail("uncovered", uncovered.len().to_string());
        if tree.outside > 0 {
            summary =
                summary.detail("outside the rule's suites and pool/", format!("{} file(s), not checked", tree.outside));
        }
        findings.push(summary);
        Ok(())
    }
}

impl Tree<'_> {
    /// The suite a tree-relative path is under, and the path relative to `dists/<suite>/`.
    fn suite_of<'p>(&self, rel: &'p str) -> Option<(usize, &'p str)> {
        let in_dists = rel.strip_prefix("dists/")?;
        self.suites.iter().enumerate().find_map(|(i, s)| {
            let rest = in_dists.strip_prefix(s.name.as_str())?.strip_prefix('/')?;
            Some((i, rest))
        })
    }
}
