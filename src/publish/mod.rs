//! `airlock mirror publish`: a consumable view of the mirror's verified state, written to a
//! directory (for any web server) or an S3-compatible object store (docs/PUBLISH.md).
//!
//! - this module: the plan (what the verified state says should be published, and in what
//!   order) and the incremental sync against the target's published-state object;
//! - `target.rs`: the [`Target`] trait, and the checked reader that keeps a file changed
//!   since the check from becoming visible;
//! - `dir.rs`, `s3.rs` (cargo feature `s3`): the two targets;
//! - `files.rs`: the checksum list signed with an inside signify key (`signify -C`);
//! - `pypi.rs`: the PEP 503 simple index with PEP 658/714 metadata and PEP 740 provenance;
//! - `debian.rs`: a Debian repository published unchanged, or `Packages`/`Release` generated
//!   for the imported `.deb` files and `InRelease` signed with an inside OpenPGP key.
//!
//! Only what `mirror verify` accepts is published: the mirror is opened read-only and
//! audited first (nothing is written to it), and any missing, modified or unknown file,
//! damaged record or interrupted import refuses the whole publish before the target is
//! touched. Each mirror file is hashed again as it is sent, and an object whose content is
//! not what its manifest records is never made visible.
//!
//! Order, so a client never sees an index naming an object not yet there: data objects
//! (mirror files, kept heads, PEP 658 metadata), then indexes (pypi `simple/`, debian
//! `dists/`, the signed checksum list), then deletions of retired objects, then the
//! published-state object. An interrupted publish, run again, sends only what is missing.

mod debian;
pub mod dir;
pub mod error;
mod files;
mod pypi;
#[cfg(feature = "s3")]
pub mod s3;
pub mod target;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::format::path::METADATA_DIR;
use crate::io::digest::Digest;
use crate::keys::SecretKey;
use crate::mirror::{AuditReport, Mirror};
use crate::progress::NoProgress;

pub use debian::DebianMode;
pub use error::{PublishError, Refused, RefusedProblem};
pub use target::{Body, MirrorFile, Target};

/// The key of the published-state object at the target root (docs/PUBLISH.md "The
/// published-state object").
pub const STATE_KEY: &str = ".airlock/publish.json";

/// The `schema` of the published-state object.
pub const STATE_SCHEMA: &str = "airlock.publish-state.v1";

/// What the published view is laid out for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The tree as is, the kept signed manifests, and a signed checksum list.
    Files,
    /// The tree, and a PEP 503 simple index over its wheels and sdists.
    Pypi,
    /// The tree, and a Debian repository over it (kept or generated).
    Debian,
}

impl Format {
    /// The stable name (`--format`, `--json`, the state object).
    pub fn name(self) -> &'static str {
        match self {
            Format::Files => "files",
            Format::Pypi => "pypi",
            Format::Debian => "debian",
        }
    }
}

/// How to publish.
#[derive(Clone, Copy)]
pub struct PublishOptions<'a> {
    /// The layout.
    pub format: Format,
    /// The inside signify key that signs the checksum list `.airlock/SHA256SUMS.sig`
    /// (required for [`Format::Files`], optional otherwise).
    pub checksum_key: Option<&'a SecretKey>,
    /// The inside OpenPGP key (a transferable secret key file) that signs a generated Debian
    /// `InRelease`.
    pub openpgp_key: Option<&'a Path>,
    /// The time written into generated indexes and the state object (Unix seconds).
    pub now: u64,
}

/// An object sent to the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Its key.
    pub key: String,
    /// Its size.
    pub size: u64,
}

/// What a publish did.
#[derive(Debug, Default)]
pub struct PublishReport {
    /// For the debian format: whether the repository was kept or generated.
    pub debian: Option<DebianMode>,
    /// Objects sent (new or changed).
    pub uploaded: Vec<Sent>,
    /// Objects already at the target with the right digest though its state did not list
    /// them (left there by an interrupted publish): not sent again.
    pub resumed: Vec<Sent>,
    /// Objects the target's state already listed with the same digest and size: not sent.
    pub unchanged: u64,
    /// Their bytes.
    pub unchanged_bytes: u64,
    /// Objects of the previous publish that the verified state no longer holds: deleted.
    pub deleted: Vec<String>,
    /// Notes for the operator (a wheel without readable metadata, say).
    pub notes: Vec<String>,
}

/// Where an object's content comes from.
enum Content {
    File(MirrorFile),
    Bytes(Vec<u8>, Digest),
}

/// One object the verified state says should be at the target.
struct Planned {
    key: String,
    content: Content,
}

impl Planned {
    fn bytes(key: String, bytes: Vec<u8>) -> Planned {
        let digest = Digest::of(&bytes);
        Planned { key, content: Content::Bytes(bytes, digest) }
    }

    fn body(&self) -> Body<'_> {
        match &self.content {
            Content::File(f) => Body::File(f),
            Content::Bytes(bytes, sha256) => Body::Bytes { bytes, sha256: *sha256 },
        }
    }
}

/// The whole publish, in the order objects are written.
struct Plan {
    data: Vec<Planned>,
    indexes: Vec<Planned>,
}

/// Publishes the verified state of the mirror at `mirror_root` to `target`.
pub fn publish(
    mirror_root: &Path,
    target: &mut dyn Target,
    options: &PublishOptions<'_>,
) -> Result<PublishReport, PublishError> {
    if options.format == Format::Files && options.checksum_key.is_none() {
        return Err(PublishError::NeedsKey {
            format: "files",
            what: "an inside signify key (--key) for its checksum list",
        });
    }
    let mirror = Mirror::open_read_only(mirror_root)?;
    refuse_unless_intact(mirror_root, &mirror.audit(&NoProgress)?)?;
    let files = mirror_files(&mirror)?;
    let mut report = PublishReport::default();
    let plan = make_plan(&mirror, files, options, &mut report)?;
    sync(target, plan, &mirror.id().to_hex(), options, &mut report)?;
    Ok(report)
}

/// Refuses a mirror `mirror verify` would not accept, naming every problem.
fn refuse_unless_intact(root: &Path, audit: &AuditReport) -> Result<(), PublishError> {
    let mut refused = Vec::new();
    let mut add = |problem, path: &str, message: &str| {
        refused.push(Refused { path: path.to_owned(), problem, message: message.to_owned() })
    };
    for p in &audit.missing {
        add(RefusedProblem::Missing, p, "recorded by an import, but absent");
    }
    for m in &audit.modified {
        add(RefusedProblem::Modified, &m.path, &m.difference.to_string());
    }
    for p in &audit.unknown {
        add(RefusedProblem::Unknown, p, "present, but recorded by no import");
    }
    for d in &audit.damaged {
        add(RefusedProblem::Damaged, ".airlock", d);
    }
    if let Some(pending) = &audit.pending_commit {
        add(RefusedProblem::Interrupted, ".airlock/pending", pending);
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(PublishError::MirrorNotIntact { mirror: root.to_owned(), refused })
}

/// Every file of every channel's expected state, by path.
fn mirror_files(mirror: &Mirror) -> Result<Vec<MirrorFile>, PublishError> {
    let mut files = BTreeMap::new();
    for view in mirror.channel_states()?.into_values() {
        for e in view.entries {
            let rel = e.path.as_str().to_owned();
            let file = MirrorFile {
                path: mirror.root().join(&rel),
                rel: rel.clone(),
                sha256: e.sha256,
                size: e.size,
                mode: e.mode.bits(),
            };
            files.insert(rel, file);
        }
    }
    Ok(files.into_values().collect())
}

/// The kept heads (`.airlock/bundles/<digest>/`: manifest, signatures, checksum list) of
/// every import the log records, so a consumer can check a file against the signed
/// manifest that carried it.
fn kept_heads(mirror: &Mirror) -> Result<Vec<Planned>, PublishError> {
    let state = mirror.state()?;
    let digests: BTreeSet<&str> = state.imports().map(|(_, b)| b.manifest_sha256.as_str()).collect();
    let mut heads = Vec::new();
    for digest in digests {
        let rel = format!("{METADATA_DIR}/bundles/{digest}");
        let dir = mirror.root().join(&rel);
        for item in walkdir::WalkDir::new(&dir).min_depth(1).sort_by_file_name() {
            let item = item.map_err(|e| PublishError::Read { path: dir.clone(), source: e.into() })?;
            if !item.file_type().is_file() {
                continue;
            }
            let bytes =
                fs::read(item.path()).map_err(|source| PublishError::Read { path: item.path().to_owned(), source })?;
            let Ok(inner) = item.path().strip_prefix(&dir) else { continue };
            heads.push(Planned::bytes(format!("{rel}/{}", inner.to_string_lossy()), bytes));
        }
    }
    Ok(heads)
}

/// Everything the verified state says should be published.
fn make_plan(
    mirror: &Mirror,
    files: Vec<MirrorFile>,
    options: &PublishOptions<'_>,
    report: &mut PublishReport,
) -> Result<Plan, PublishError> {
    let mut data = Vec::new();
    let mut indexes = Vec::new();
    match options.format {
        Format::Files => {}
        Format::Pypi => {
            let generated = pypi::plan(&files, &mut report.notes)?;
            data.extend(generated.data);
            indexes.extend(generated.indexes);
        }
        Format::Debian => {
            let generated = debian::plan(&files, options)?;
            report.debian = Some(generated.mode);
            indexes.extend(generated.indexes);
        }
    }
    data.extend(kept_heads(mirror)?);
    data.extend(files.into_iter().map(|f| Planned { key: f.rel.clone(), content: Content::File(f) }));
    if let Some(key) = options.checksum_key {
        let listed = data.iter().chain(&indexes).map(|p| (p.key.as_str(), p.body().sha256()));
        let sums = files::signed_sums(key, listed);
        indexes.push(Planned::bytes(files::SUMS_KEY.to_owned(), sums));
    }
    check_unique(&data, &indexes, options.format)?;
    Ok(Plan { data, indexes })
}

/// Refuses a mirror file at a key the format generates (an index, a metadata file).
fn check_unique(data: &[Planned], indexes: &[Planned], format: Format) -> Result<(), PublishError> {
    let mut seen = BTreeSet::new();
    for p in data.iter().chain(indexes) {
        if !seen.insert(p.key.as_str()) || p.key == STATE_KEY {
            let path = p.key.clone();
            return Err(PublishError::ReservedPath { path, format: format.name(), reserved: reserved_prefix(format) });
        }
    }
    Ok(())
}

fn reserved_prefix(format: Format) -> &'static str {
    match format {
        Format::Files => ".airlock/",
        Format::Pypi => "simple/ and <file>.metadata",
        Format::Debian => "dists/airlock/",
    }
}

/// The published-state object: what the last complete publish put at the target.
#[derive(Serialize, Deserialize, Debug)]
struct PublishedState {
    schema: String,
    format: String,
    mirror: String,
    published: String,
    objects: BTreeMap<String, StateObject>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct StateObject {
    sha256: String,
    size: u64,
}

/// Reads the target's state object (none yet: an empty state).
fn read_state(target: &mut dyn Target, mirror_id: &str) -> Result<BTreeMap<String, StateObject>, PublishError> {
    let Some(bytes) = target.get(STATE_KEY)? else { return Ok(BTreeMap::new()) };
    let bad = |reason: String| PublishError::BadState { target: target.describe(), key: STATE_KEY.to_owned(), reason };
    let state: PublishedState =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON of {STATE_SCHEMA}: {e}")))?;
    if state.schema != STATE_SCHEMA {
        return Err(bad(format!("its schema is {:?}, not {STATE_SCHEMA}", state.schema)));
    }
    if state.mirror != mirror_id {
        return Err(PublishError::OtherMirror {
            target: target.describe(),
            key: STATE_KEY.to_owned(),
            theirs: state.mirror,
            ours: mirror_id.to_owned(),
        });
    }
    if let Some(key) = state.objects.keys().find(|k| !target::is_safe_key(k)) {
        return Err(bad(format!("it lists {key:?}, which is not a key inside the target")));
    }
    Ok(state.objects)
}

/// Sends what differs from the target's state, in order, then deletes what the state no
/// longer holds, then writes the new state.
fn sync(
    target: &mut dyn Target,
    plan: Plan,
    mirror_id: &str,
    options: &PublishOptions<'_>,
    report: &mut PublishReport,
) -> Result<(), PublishError> {
    let old = read_state(target, mirror_id)?;
    let present = target.list()?;
    let mut objects = BTreeMap::new();
    for planned in plan.data.iter().chain(&plan.indexes) {
        let body = planned.body();
        let entry = StateObject { sha256: body.sha256().to_hex(), size: body.size() };
        let sent = Sent { key: planned.key.clone(), size: entry.size };
        if old.get(&planned.key) == Some(&entry) && present.get(&planned.key) == Some(&entry.size) {
            report.unchanged += 1;
            report.unchanged_bytes += entry.size;
        } else if present.get(&planned.key) == Some(&entry.size) && target.digest(&planned.key)? == Some(body.sha256())
        {
            report.resumed.push(sent);
        } else {
            target.put(&planned.key, body)?;
            report.uploaded.push(sent);
        }
        objects.insert(planned.key.clone(), entry);
    }
    for key in old.keys().filter(|k| !objects.contains_key(*k)) {
        target.delete(key)?;
        report.deleted.push(key.clone());
    }
    let state = PublishedState {
        schema: STATE_SCHEMA.to_owned(),
        format: options.format.name().to_owned(),
        mirror: mirror_id.to_owned(),
        published: crate::clock::format(options.now),
        objects,
    };
    let mut bytes = serde_json::to_vec_pretty(&state)
        .map_err(|e| PublishError::Mirror(crate::error::Error::Internal(format!("the state object: {e}"))))?;
    bytes.push(b'\n');
    let sha256 = Digest::of(&bytes);
    target.put(STATE_KEY, Body::Bytes { bytes: &bytes, sha256 })
}

/// The target path a `--to` value names: `s3://bucket/prefix` or a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// A directory.
    Dir(PathBuf),
    /// An S3 bucket and a key prefix (possibly empty).
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix, without leading or trailing `/`.
        prefix: String,
    },
}

impl TargetSpec {
    /// Reads a `--to` value; `None` for an `s3://` URL without a bucket.
    pub fn parse(text: &str) -> Option<TargetSpec> {
        let Some(rest) = text.strip_prefix("s3://") else { return Some(TargetSpec::Dir(PathBuf::from(text))) };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some(TargetSpec::S3 { bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(TargetSpec::parse("/srv/www"), Some(TargetSpec::Dir("/srv/www".into())));
        assert_eq!(TargetSpec::parse("s3://b/p/q/"), Some(TargetSpec::S3 { bucket: "b".into(), prefix: "p/q".into() }));
        assert_eq!(TargetSpec::parse("s3://b"), Some(TargetSpec::S3 { bucket: "b".into(), prefix: String::new() }));
        assert_eq!(TargetSpec::parse("s3:///p"), None);
    }

    #[test]
    fn every_problem_of_the_audit_is_refused_with_its_path() {
        let audit = AuditReport {
            modified: vec![crate::mirror::Modified {
                path: "a: b/c.txt".into(),
                difference: crate::mirror::Difference::Size { found: 1, recorded: 2 },
            }],
            unknown: vec!["x".into()],
            ..Default::default()
        };
        match refuse_unless_intact(Path::new("/m"), &audit) {
            Err(PublishError::MirrorNotIntact { refused, .. }) => {
                assert_eq!(refused[0].path, "a: b/c.txt");
                assert_eq!(refused[0].problem, RefusedProblem::Modified);
                assert_eq!(refused[0].message, audit.modified[0].difference.to_string());
                assert_eq!(refused[1].path, "x");
                assert_eq!(refused[1].problem, RefusedProblem::Unknown);
            }
            other => panic!("expected MirrorNotIntact, got {other:?}"),
        }
    }

    /// A target in memory that records every call, in order.
    #[derive(Default)]
    struct Recorder {
        objects: BTreeMap<String, Vec<u8>>,
        calls: Vec<String>,
    }

    impl Target for Recorder {
        fn describe(&self) -> String {
            "memory".into()
        }
        fn list(&mut self) -> Result<BTreeMap<String, u64>, PublishError> {
            Ok(self.objects.iter().map(|(k, v)| (k.clone(), v.len() as u64)).collect())
        }
        fn digest(&mut self, key: &str) -> Result<Option<Digest>, PublishError> {
            Ok(self.objects.get(key).map(|v| Digest::of(v)))
        }
        fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, PublishError> {
            Ok(self.objects.get(key).cloned())
        }
        fn put(&mut self, key: &str, body: Body<'_>) -> Result<(), PublishError> {
            let Body::Bytes { bytes, .. } = body else { panic!("only bytes in this test") };
            self.calls.push(format!("put {key}"));
            self.objects.insert(key.to_owned(), bytes.to_vec());
            Ok(())
        }
        fn delete(&mut self, key: &str) -> Result<(), PublishError> {
            self.calls.push(format!("delete {key}"));
            self.objects.remove(key);
            Ok(())
        }
    }

    fn plan(data: &[(&str, &str)], indexes: &[(&str, &str)]) -> Plan {
        let make = |list: &[(&str, &str)]| {
            list.iter().map(|(k, v)| Planned::bytes((*k).into(), v.as_bytes().to_vec())).collect()
        };
        Plan { data: make(data), indexes: make(indexes) }
    }

    const ID: &str = "00112233445566778899aabbccddeeff";

    fn options() -> PublishOptions<'static> {
        PublishOptions { format: Format::Pypi, checksum_key: None, openpgp_key: None, now: 1_796_312_400 }
    }

    #[test]
    fn data_goes_first_then_indexes_then_deletions_then_the_state() {
        let mut target = Recorder::default();
        let mut report = PublishReport::default();
        sync(
            &mut target,
            plan(&[("a.whl", "a"), ("old.whl", "o")], &[("simple/index.html", "1")]),
            ID,
            &options(),
            &mut report,
        )
        .unwrap();
        assert_eq!(target.calls, ["put a.whl", "put old.whl", "put simple/index.html", "put .airlock/publish.json"]);

        target.calls.clear();
        let mut report = PublishReport::default();
        sync(
            &mut target,
            plan(&[("a.whl", "a"), ("b.whl", "b")], &[("simple/index.html", "2")]),
            ID,
            &options(),
            &mut report,
        )
        .unwrap();
        assert_eq!(
            target.calls,
            ["put b.whl", "put simple/index.html", "delete old.whl", "put .airlock/publish.json"],
            "only what changed is sent, and the retired object goes after the new index"
        );
        assert_eq!(report.unchanged, 1);
        assert_eq!(report.deleted, ["old.whl"]);
    }

    #[test]
    fn an_interrupted_publish_resumes_without_sending_again() {
        let mut target = Recorder::default();
        // What a run stopped before its state object left: the data, no state.
        target.objects.insert("a.whl".into(), b"a".to_vec());
        let mut report = PublishReport::default();
        sync(&mut target, plan(&[("a.whl", "a")], &[("simple/index.html", "1")]), ID, &options(), &mut report).unwrap();
        assert_eq!(target.calls, ["put simple/index.html", "put .airlock/publish.json"]);
        assert_eq!(report.resumed, [Sent { key: "a.whl".into(), size: 1 }]);
    }

    #[test]
    fn another_mirrors_target_and_a_tampered_state_are_refused() {
        let mut target = Recorder::default();
        let mut report = PublishReport::default();
        sync(&mut target, plan(&[("a", "a")], &[]), ID, &options(), &mut report).unwrap();
        let other = "ffeeddccbbaa99887766554433221100";
        let err = sync(&mut target, plan(&[], &[]), other, &options(), &mut report).unwrap_err();
        assert!(matches!(err, PublishError::OtherMirror { .. }), "{err:?}");
        assert!(target.objects.contains_key("a"), "nothing deleted");

        let state =
            String::from_utf8(target.objects[STATE_KEY].clone()).unwrap().replace("\"a\"", "\"../../etc/passwd\"");
        target.objects.insert(STATE_KEY.into(), state.into_bytes());
        let err = sync(&mut target, plan(&[], &[]), ID, &options(), &mut report).unwrap_err();
        assert!(matches!(err, PublishError::BadState { .. }), "{err:?}");
    }
}
