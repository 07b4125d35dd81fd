//! `airlock mirror publish`: the mirror's verified state, laid out for pip, apt or plain
//! downloads, written to a directory or an S3-compatible store (docs/PUBLISH.md).
//!
//! The library reads no environment; for an `s3://` target this file collects the `AWS_*`
//! variables (endpoint, credentials, region) and hands them over as configuration.

use airlock::publish::{self, Format, PublishError, PublishOptions, PublishReport, Refused, Target, TargetSpec};
use serde::Serialize;

use super::*;

/// The layouts `--format` offers.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum FormatArg {
    /// The tree as is, the kept signed manifests, and a checksum list signed with --key
    /// (`signify -C`).
    Files,
    /// A PEP 503 simple index (`simple/`) over the wheels and sdists, with PEP 658
    /// metadata and PEP 740 provenance links.
    Pypi,
    /// The tree's Debian repository unchanged, or one generated for its .deb files and
    /// signed with --openpgp-key.
    Debian,
}

impl FormatArg {
    fn format(self) -> Format {
        match self {
            FormatArg::Files => Format::Files,
            FormatArg::Pypi => Format::Pypi,
            FormatArg::Debian => Format::Debian,
        }
    }
}

/// `airlock mirror publish DIR --to TARGET`.
#[derive(Args, Debug)]
pub(super) struct PublishArgs {
    /// The mirror directory (opened read-only: nothing is written to it).
    dir: PathBuf,
    /// Where to publish: a directory (created if missing; serve it with any web server), or
    /// s3://BUCKET[/PREFIX] (endpoint and credentials from AWS_ENDPOINT_URL,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP, ...).
    #[arg(long, value_name = "TARGET")]
    to: String,
    /// The layout.
    #[arg(long, value_enum, default_value = "files")]
    format: FormatArg,
    /// The inside signify secret key that signs the published checksum list
    /// .airlock/SHA256SUMS.sig (required for --format files).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The inside OpenPGP secret key (a transferable secret key, unprotected) that signs
    /// the InRelease generated for .deb files (--format debian, when the tree holds no
    /// Debian repository of its own).
    #[arg(long, value_name = "FILE")]
    openpgp_key: Option<PathBuf>,
    /// Print one JSON object (schema airlock.mirror-publish.v1) on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    secret: SecretKeyArgs,
}

/// Why the publish did not complete: refused by the library, or the command line's own
/// failure (an unreadable key, a bad --to).
enum Failed {
    Publish(PublishError),
    Other(Failure),
}

impl From<PublishError> for Failed {
    fn from(e: PublishError) -> Failed {
        Failed::Publish(e)
    }
}

impl From<Failure> for Failed {
    fn from(e: Failure) -> Failed {
        Failed::Other(e)
    }
}

pub(super) fn mirror_publish(args: PublishArgs) -> Result<u8> {
    let format = args.format.format();
    match run_publish(&args, format) {
        Ok(report) => {
            if args.json {
                out::json(airlock::render::json_line(&success_json(&args, format, &report)))?;
            } else {
                say_report(&args, format, &report)?;
            }
            Ok(EXIT_OK)
        }
        Err(Failed::Other(Failure::StdoutClosed)) => Ok(EXIT_OK),
        Err(Failed::Other(failure)) => {
            let (code, message) = (failure.exit_code(), failure.render());
            if args.json {
                let kind = if matches!(failure, Failure::Usage(_)) { "usage" } else { "operational" };
                let error = ErrorJson { kind, exit: code, message, location: None };
                out::json(airlock::render::json_line(&failure_json(&args, format, &[], error)))?;
            }
            Err(failure)
        }
        Err(Failed::Publish(e)) => report_failure(&args, format, &e),
    }
}

fn run_publish(args: &PublishArgs, format: Format) -> std::result::Result<PublishReport, Failed> {
    let key = args.key.as_deref().map(|k| load_secret_key(k, &args.secret)).transpose()?;
    let options =
        PublishOptions { format, checksum_key: key.as_ref(), openpgp_key: args.openpgp_key.as_deref(), now: now() };
    let mut target = open_target(&args.to)?;
    Ok(publish::publish(&args.dir, target.as_mut(), &options)?)
}

fn open_target(to: &str) -> Result<Box<dyn Target>> {
    match TargetSpec::parse(to) {
        Some(TargetSpec::Dir(path)) => Ok(Box::new(publish::dir::DirTarget::new(&path))),
        Some(TargetSpec::S3 { bucket, prefix }) => open_s3(bucket, prefix),
        None => Err(Failure::Usage(format!("--to {to}: an s3:// target needs a bucket (s3://BUCKET/PREFIX)"))),
    }
}

#[cfg(feature = "s3")]
fn open_s3(bucket: String, prefix: String) -> Result<Box<dyn Target>> {
    let settings = std::env::vars().filter(|(name, _)| name.starts_with("AWS_")).collect();
    let config = publish::s3::S3Config { bucket, prefix, settings };
    publish::s3::S3Target::new(&config)
        .map(|t| Box::new(t) as Box<dyn Target>)
        .map_err(|e| Failure::Usage(e.to_string()))
}

#[cfg(not(feature = "s3"))]
fn open_s3(bucket: String, _prefix: String) -> Result<Box<dyn Target>> {
    Err(Failure::Usage(format!(
        "--to s3://{bucket}: this airlock was built without S3 support (cargo feature `s3`); use a build with it, \
         or publish to a directory"
    )))
}

/// A refused publish: the refused files on stdout (or the JSON object), the error on
/// stderr, and its exit code.
fn report_failure(args: &PublishArgs, format: Format, e: &PublishError) -> Result<u8> {
    let code = if e.is_rejection() { EXIT_REJECTED } else { EXIT_ERROR };
    let refused: &[Refused] = match e {
        PublishError::MirrorNotIntact { refused, .. } => refused,
        _ => &[],
    };
    if args.json {
        let location = e.path().map(|path| WhereJson { path });
        let error = ErrorJson { kind: e.kind(), exit: code, message: e.to_string(), location };
        out::json(airlock::render::json_line(&failure_json(args, format, refused, error)))?;
    } else {
        for r in refused {
            say!("refused   {} {}: {}", r.problem.name(), r.path, r.message)?;
        }
    }
    out::error_line(&e.to_string());
    Ok(code)
}

fn say_report(args: &PublishArgs, format: Format, report: &PublishReport) -> Result<()> {
    for note in &report.notes {
        out::note(format_args!("note: {note}"));
    }
    let bytes = |sent: &[publish::Sent]| sent.iter().map(|s| s.size).sum::<u64>();
    let debian = report.debian.map_or(String::new(), |m| format!(" (repository {})", m.name()));
    say!(
        "published mirror {} to {} as {}{debian}: {} objects sent ({} bytes), {} already there, {} unchanged, {} deleted",
        args.dir.display(),
        args.to,
        format.name(),
        report.uploaded.len(),
        bytes(&report.uploaded),
        report.resumed.len(),
        report.unchanged,
        report.deleted.len()
    )
}

/// The `--json` object (docs/schema/mirror-publish.v1.schema.json), keys in this order.
#[derive(Serialize)]
struct PublishJson<'a> {
    schema: &'static str,
    ok: bool,
    mirror: String,
    target: &'a str,
    format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    debian: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded: Option<SentJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resumed: Option<SentJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unchanged: Option<CountJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<DeletedJson<'a>>,
    refused: Vec<RefusedJson<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    messages: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson>,
}

#[derive(Serialize)]
struct SentJson<'a> {
    count: usize,
    bytes: u64,
    keys: Vec<&'a str>,
}

#[derive(Serialize)]
struct CountJson {
    count: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct DeletedJson<'a> {
    count: usize,
    keys: &'a [String],
}

#[derive(Serialize)]
struct RefusedJson<'a> {
    path: &'a str,
    problem: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct ErrorJson {
    kind: &'static str,
    exit: u8,
    message: String,
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    location: Option<WhereJson>,
}

#[derive(Serialize)]
struct WhereJson {
    path: String,
}

impl<'a> PublishJson<'a> {
    fn new(args: &'a PublishArgs, format: Format, ok: bool) -> PublishJson<'a> {
        PublishJson {
            schema: "airlock.mirror-publish.v1",
            ok,
            mirror: args.dir.to_string_lossy().into_owned(),
            target: &args.to,
            format: format.name(),
            debian: None,
            uploaded: None,
            resumed: None,
            unchanged: None,
            deleted: None,
            refused: Vec::new(),
            messages: &[],
            error: None,
        }
    }
}

fn sent_json(sent: &[publish::Sent]) -> SentJson<'_> {
    SentJson {
        count: sent.len(),
        bytes: sent.iter().map(|s| s.size).sum(),
        keys: sent.iter().map(|s| s.key.as_str()).collect(),
    }
}

fn success_json<'a>(args: &'a PublishArgs, format: Format, report: &'a PublishReport) -> PublishJson<'a> {
    PublishJson {
        debian: report.debian.map(|m| m.name()),
        uploaded: Some(sent_json(&report.uploaded)),
        resumed: Some(sent_json(&report.resumed)),
        unchanged: Some(CountJson { count: report.unchanged, bytes: report.unchanged_bytes }),
        deleted: Some(DeletedJson { count: report.deleted.len(), keys: &report.deleted }),
        messages: &report.notes,
        ..PublishJson::new(args, format, true)
    }
}

fn failure_json<'a>(
    args: &'a PublishArgs,
    format: Format,
    refused: &'a [Refused],
    error: ErrorJson,
) -> PublishJson<'a> {
    PublishJson {
        refused: refused
            .iter()
            .map(|r| RefusedJson { path: &r.path, problem: r.problem.name(), message: &r.message })
            .collect(),
        error: Some(error),
        ..PublishJson::new(args, format, false)
    }
}
