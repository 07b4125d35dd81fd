//! The command line: argument parsing and printing only.
//!
//! Each subcommand turns its arguments into library calls and prints the outcome. Results
//! go to stdout; progress and errors to stderr. Exit codes are part of the interface:
//! 0 success, 1 the bundle (or mirror) failed verification, 2 usage or operational error.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

use airlock::clock;
use airlock::error::{Error, Result};
use airlock::format::manifest::{self, Manifest};
use airlock::keys::{self, KeyError, PublicKey, SecretKey};
use airlock::mirror::{ImportOptions, ImportOutcome, Mirror, DEFAULT_CLOCK_SKEW};
use airlock::pack::{self, PackOptions, PackState};
use airlock::policy::{self, Policy, SignatureStatus, TrustReport};
use airlock::progress::Progress;
use airlock::verify::artifacts::ArtifactSink;
use airlock::verify::{Bundle, NullSink};

/// Exit code: everything checked out.
pub const EXIT_OK: u8 = 0;
/// Exit code: a bundle was rejected or a mirror failed its check.
pub const EXIT_REJECTED: u8 = 1;
/// Exit code: bad usage or an operational error (I/O, unreadable key, locked mirror).
pub const EXIT_ERROR: u8 = 2;

const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  verification failed: the bundle was rejected (nothing was imported), or
     `mirror verify` found missing, modified or unknown files
  2  usage or operational error (bad arguments, unreadable file or key, I/O error)

Bundle format and mirror layout: docs/FORMAT.md";

/// airlock: carry software across an air gap without losing its provenance.
#[derive(Parser, Debug)]
#[command(name = "airlock", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an Ed25519 key pair in OpenBSD signify format.
    Keygen(KeygenArgs),
    /// Pack files and directories into a signed bundle.
    Pack(PackArgs),
    /// Show what a bundle holds without unpacking it.
    Inspect(InspectArgs),
    /// Verify a bundle completely, writing nothing.
    Verify(VerifyArgs),
    /// Verify a bundle and import it into a mirror directory.
    Import(ImportArgs),
    /// Add your signature to a bundle (co-signing): rewrites only the head frame.
    Sign(SignArgs),
    /// Check a trust policy file.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Show or convert key files.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Work with a mirror directory.
    #[command(subcommand)]
    Mirror(MirrorCommand),
    /// Run keygen, pack, inspect, verify and import on the built-in sample.
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Where to write the public key (e.g. transfer.pub).
    #[arg(long, value_name = "K.pub")]
    public: PathBuf,
    /// Where to write the secret key (e.g. transfer.sec); created with mode 0600.
    #[arg(long, value_name = "K.sec")]
    secret: PathBuf,
    /// Store the secret key unencrypted (signify -n).
    #[arg(long)]
    no_passphrase: bool,
    /// Comment for the key files.
    #[arg(long, default_value = "airlock")]
    comment: String,
    /// Read the passphrase from this file's first line instead of the terminal.
    #[arg(long, env = "AIRLOCK_PASSPHRASE_FILE", value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SecretKeyArgs {
    /// Read secret-key passphrases from this file's first line instead of the terminal.
    #[arg(long, env = "AIRLOCK_PASSPHRASE_FILE", value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Accept secret key files that group or others can read.
    #[arg(long)]
    allow_insecure_key_permissions: bool,
}

#[derive(Args, Debug)]
struct PackArgs {
    /// Directories (their contents are packed) and files.
    #[arg(required = true, value_name = "SRC")]
    sources: Vec<PathBuf>,
    /// The bundle to write.
    #[arg(short, long, value_name = "BUNDLE")]
    output: PathBuf,
    /// Secret key to sign with (repeat to have several keys sign).
    #[arg(long, required = true, value_name = "K.sec")]
    key: Vec<PathBuf>,
    /// Channel the bundle belongs to.
    #[arg(long, default_value = "default")]
    channel: String,
    /// Sequence number (default: one more than the last bundle packed for the channel here).
    #[arg(long)]
    sequence: Option<u64>,
    /// Expiry: a duration (30d, 12h, 2w) or a date (2026-12-31, 2026-12-31T12:00:00Z).
    #[arg(long, value_name = "DURATION|DATE")]
    expires: Option<String>,
    /// A label for people.
    #[arg(long)]
    label: Option<String>,
    /// Metadata KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// zstd compression level (1-19).
    #[arg(long, default_value_t = pack::DEFAULT_LEVEL)]
    level: i32,
    /// zstd worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// Also add, for every file, `<file>.sha256.sig`: its checksum line signed by the first
    /// key (check it beside the file with `signify -C -p K.pub -x <file>.sha256.sig`).
    #[arg(long)]
    sign_artifacts: bool,
    /// Overwrite BUNDLE if it exists.
    #[arg(long)]
    force: bool,
    /// Where the per-channel sequence state lives [default: $AIRLOCK_STATE_DIR, else $XDG_DATA_HOME/airlock, else ~/.local/share/airlock].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// No progress display.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    secret: SecretKeyArgs,
}

#[derive(Args, Debug)]
struct TrustArgs {
    /// The trust policy: signers per channel, revoked keys, maximum age, artifact rules
    /// (docs/POLICY.md).
    #[arg(long, value_name = "POLICY.toml", conflicts_with = "trust")]
    policy: Option<PathBuf>,
    /// A public key trusted to sign bundles (repeatable); shorthand for a one-rule policy.
    #[arg(long, value_name = "K.pub")]
    trust: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed (with --trust).
    #[arg(long, default_value_t = 1)]
    threshold: usize,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// The bundle.
    bundle: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Check signatures against these public keys (without them, none are verified).
    #[arg(long, value_name = "K.pub")]
    trust: Vec<PathBuf>,
    /// Check signatures against this trust policy: trusted, revoked or unknown, and whether
    /// the threshold is met.
    #[arg(long, value_name = "POLICY.toml", conflicts_with = "trust")]
    policy: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The bundle.
    bundle: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// No progress display.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// The bundle.
    bundle: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// The mirror directory (created if missing).
    #[arg(long, value_name = "DIR")]
    mirror: PathBuf,
    /// Accept a bundle that skips sequence numbers or does not follow the last import (logged).
    #[arg(long)]
    allow_gap: bool,
    /// Allowance for clock error when checking expiry, in seconds.
    #[arg(long, default_value_t = DEFAULT_CLOCK_SKEW, value_name = "SECONDS")]
    clock_skew: u64,
    /// No progress display.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct SignArgs {
    /// The bundle to co-sign (rewritten in place unless -o is given).
    bundle: PathBuf,
    /// The secret key to sign with.
    #[arg(long, value_name = "K.sec")]
    key: PathBuf,
    /// Write the co-signed bundle here instead of replacing BUNDLE.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    secret: SecretKeyArgs,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Validate a policy file and print what it allows, in words.
    Check {
        /// The policy file.
        #[arg(value_name = "POLICY.toml")]
        policy: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum KeyFormat {
    /// OpenBSD signify (`untrusted comment: <name> public key`).
    Signify,
    /// minisign (`untrusted comment: minisign public key <ID>`).
    Minisign,
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Print a key file's key id, algorithm and comment (signify or minisign, public or secret).
    Show {
        /// The key file.
        #[arg(value_name = "K.pub|K.sec")]
        key: PathBuf,
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
    },
}

#[derive(Subcommand, Debug)]
enum MirrorCommand {
    /// Print the mirror's import log (and check its hash chain).
    Log {
        /// The mirror directory.
        dir: PathBuf,
        /// Print the raw JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Re-check every file against the manifests that put it there.
    Verify {
        /// The mirror directory.
        dir: PathBuf,
        /// No progress display.
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Working directory for the demo (default: a new directory under the system temp dir).
    dir: Option<PathBuf>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("airlock: {}", render(&e));
            ExitCode::from(if e.is_rejection() { EXIT_REJECTED } else { EXIT_ERROR })
        }
    }
}

fn render(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(&format!(": {s_text}"));
        }
        source = s.source();
    }
    text
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Keygen(a) => keygen(a),
        Command::Pack(a) => pack(a),
        Command::Inspect(a) => inspect(a),
        Command::Verify(a) => verify(a),
        Command::Import(a) => import(a),
        Command::Sign(a) => sign(a),
        Command::Policy(PolicyCommand::Check { policy }) => policy_check(&policy),
        Command::Key(KeyCommand::Show { key }) => key_show(&key),
        Command::Key(KeyCommand::Convert { key, to, output }) => key_convert(&key, to, output.as_deref()),
        Command::Mirror(MirrorCommand::Log { dir, json }) => mirror_log(&dir, json),
        Command::Mirror(MirrorCommand::Verify { dir, quiet }) => mirror_verify(&dir, quiet),
        Command::Demo(a) => demo(a),
    }
}

fn progress(quiet: bool) -> Progress {
    if quiet {
        Progress::hidden()
    } else {
        Progress::stderr()
    }
}

fn keygen(a: KeygenArgs) -> Result<u8> {
    let passphrase = if a.no_passphrase {
        None
    } else {
        Some(keys::read_passphrase(a.passphrase_file.as_deref(), "passphrase for the new secret key: ", true)?)
    };
    let key = SecretKey::generate(&format!("{} secret key", a.comment));
    keys::write_key_pair(
        &a.public,
        &a.secret,
        &key,
        &format!("{} public key", a.comment),
        passphrase.as_ref().map(|p| p.as_slice()),
    )?;
    println!("key id {}", key.key_id());
    println!("public key: {}", a.public.display());
    println!("secret key: {} (mode 0600{})", a.secret.display(), if a.no_passphrase { ", no passphrase" } else { "" });
    Ok(EXIT_OK)
}

fn load_secret_key(path: &Path, args: &SecretKeyArgs) -> Result<SecretKey> {
    let prompt = format!("passphrase for {}: ", path.display());
    let file = args.passphrase_file.clone();
    let mut ask = move || -> std::result::Result<Zeroizing<Vec<u8>>, KeyError> {
        keys::read_passphrase(file.as_deref(), &prompt, false)
    };
    Ok(SecretKey::load(path, args.allow_insecure_key_permissions, &mut ask)?)
}

fn parse_meta(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut meta = BTreeMap::new();
    for pair in pairs {
        let (k, v) = pair.split_once('=').ok_or_else(|| Error::Usage(format!("--meta {pair:?} is not KEY=VALUE")))?;
        if meta.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(Error::Usage(format!("--meta key {k:?} given twice")));
        }
    }
    Ok(meta)
}

fn pack(a: PackArgs) -> Result<u8> {
    manifest::check_channel(&a.channel).map_err(Error::Usage)?;
    let meta = parse_meta(&a.meta)?;
    let keys = a.key.iter().map(|k| load_secret_key(k, &a.secret)).collect::<Result<Vec<_>>>()?;
    let state_dir = a
        .state_dir
        .clone()
        .or_else(PackState::default_dir)
        .ok_or_else(|| Error::Usage("no state directory: set --state-dir, AIRLOCK_STATE_DIR or HOME".into()))?;
    let state = PackState::new(state_dir);
    let (sequence, previous) = state.next(&a.channel, a.sequence)?;
    let created = clock::now();
    let expires = a.expires.as_deref().map(|e| clock::parse_expiry(e, created)).transpose().map_err(Error::Usage)?;
    if expires.is_some_and(|e| e <= created) {
        return Err(Error::Usage("--expires is not in the future; the bundle would be born expired".into()));
    }
    let opts = PackOptions {
        sources: a.sources.clone(),
        channel: a.channel.clone(),
        sequence,
        previous,
        created,
        expires,
        label: a.label.clone(),
        meta,
        level: a.level,
        threads: a.threads,
        sign_artifacts: a.sign_artifacts,
    };
    let report = pack::pack(&opts, &keys, &a.output, a.force, &progress(a.quiet))?;
    state.record(&a.channel, sequence, &report.manifest_digest)?;
    let m = &report.manifest;
    println!(
        "packed {} files ({} bytes) into {} ({} bytes)",
        m.entries.len(),
        m.total_size(),
        a.output.display(),
        report.bundle_bytes
    );
    println!(
        "channel {} sequence {}{}",
        m.channel,
        m.sequence,
        m.previous.map_or(String::new(), |p| format!(", follows manifest {p}"))
    );
    println!("manifest sha256 {}", report.manifest_digest);
    let ids: Vec<String> = keys.iter().map(|k| k.key_id().to_string()).collect();
    println!("signed by {}", ids.join(", "));
    Ok(EXIT_OK)
}

fn load_policy(args: &TrustArgs) -> Result<Policy> {
    policy::from_args(args.policy.as_deref(), &args.trust, args.threshold)
}

fn inspect(a: InspectArgs) -> Result<u8> {
    let bundle = Bundle::open(&a.bundle)?;
    let manifest = bundle.unverified_manifest()?;
    let policy = if a.trust.is_empty() && a.policy.is_none() {
        None
    } else {
        Some(policy::from_args(a.policy.as_deref(), &a.trust, 1)?)
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

fn print_manifest(
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

fn inspect_json(
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
        "verified": report.map(|r| r.threshold_met() && !r.signatures.iter().any(|(_, s)| *s == SignatureStatus::Invalid)),
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

fn verify(a: VerifyArgs) -> Result<u8> {
    let policy = load_policy(&a.trust)?;
    let bundle = Bundle::open(&a.bundle)?;
    let verified = bundle.verify_head_with(&policy)?;
    airlock::mirror::check_freshness(
        &verified.manifest,
        &verified.manifest_digest,
        &Default::default(),
        &ImportOptions::default(),
    )?;
    policy.check_age(verified.manifest.created, clock::now(), DEFAULT_CLOCK_SKEW)?;
    let progress = progress(a.quiet);
    progress.start("verifying", verified.manifest.total_size(), verified.manifest.entries.len() as u64);
    let mut null = NullSink;
    let mut sink = ArtifactSink::new(&mut null, &policy, &verified.manifest);
    let result = bundle.read_payload(&verified, &mut sink, &progress);
    progress.finish();
    result?;
    let m = &verified.manifest;
    println!("OK: {} verified: {} files, {} bytes", a.bundle.display(), m.entries.len(), m.total_size());
    println!("channel {} sequence {}, manifest sha256 {}", m.channel, m.sequence, verified.manifest_digest);
    print_signers(&policy, &verified.trust);
    for note in sink.notes() {
        println!("artifact {note}");
    }
    Ok(EXIT_OK)
}

/// The valid signers, then every signature that did not count and why.
fn print_signers(policy: &Policy, report: &TrustReport) {
    let label = |id: airlock::keys::KeyId| match policy.name_of_id(id) {
        Some(n) if n != id.to_string() => format!("{id} ({n})"),
        _ => id.to_string(),
    };
    let ids: Vec<String> = report.valid_signers.iter().map(|k| label(k.key_id())).collect();
    println!("signed by trusted key(s) {} (threshold {})", ids.join(", "), report.threshold);
    for (id, status) in &report.signatures {
        match status {
            SignatureStatus::Unknown => println!("ignored signature by unknown key {}", label(*id)),
            SignatureStatus::Revoked { reason } => {
                println!("ignored signature by revoked key {} ({reason})", label(*id))
            }
            _ => {}
        }
    }
}

fn import(a: ImportArgs) -> Result<u8> {
    let policy = load_policy(&a.trust)?;
    let mirror = Mirror::open(&a.mirror, true)?;
    let opts = ImportOptions { allow_gap: a.allow_gap, clock_skew: a.clock_skew };
    match mirror.import(&a.bundle, &policy, &opts, &progress(a.quiet))? {
        ImportOutcome::AlreadyImported { manifest_digest } => {
            println!("already imported: manifest {manifest_digest} is in {}; nothing to do", a.mirror.display());
        }
        ImportOutcome::Imported { record } => {
            if let Some(b) = &record.bundle {
                println!("imported {} files ({} bytes) into {}", b.entries, b.bytes, a.mirror.display());
                println!("channel {} sequence {}, manifest sha256 {}", b.channel, b.sequence, b.manifest_sha256);
                println!("signed by trusted key(s) {}", b.signers.join(", "));
            }
            for o in &record.overrides {
                println!("override logged: {o}");
            }
            for note in &record.artifacts {
                println!("artifact {note}");
            }
        }
    }
    Ok(EXIT_OK)
}

fn sign(a: SignArgs) -> Result<u8> {
    let key = load_secret_key(&a.key, &a.secret)?;
    let report = airlock::sign::cosign(&a.bundle, &key, a.output.as_deref(), a.force)?;
    let ids: Vec<String> = report.signers.iter().map(|k| k.to_string()).collect();
    if report.added {
        println!(
            "signed {} with key {}: head frame {} -> {} bytes, {} payload bytes copied unchanged",
            report.output.display(),
            report.key_id,
            report.head_bytes.0,
            report.head_bytes.1,
            report.payload_bytes
        );
    } else {
        println!("key {} has already signed {}; nothing to add", report.key_id, a.bundle.display());
        if a.output.is_some() {
            println!("copied unchanged to {}", report.output.display());
        }
    }
    println!("signatures by key(s) {}", ids.join(", "));
    Ok(EXIT_OK)
}

fn policy_check(path: &Path) -> Result<u8> {
    let policy = Policy::load(path)?;
    println!("{}: valid policy (version {})", path.display(), policy::POLICY_VERSION);
    for line in policy.describe() {
        println!("{line}");
    }
    Ok(EXIT_OK)
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut text = Vec::new();
    file.take(16 * 1024).read_to_end(&mut text).map_err(|e| Error::io(path, e))?;
    Ok(text)
}

fn key_show(path: &Path) -> Result<u8> {
    let text = Zeroizing::new(read_key_file(path)?);
    let info =
        airlock::keys::minisign::key_info(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    println!("file         {}", path.display());
    println!("type         {}", info.kind);
    println!("algorithm    Ed25519");
    match info.key_id {
        Some(id) => {
            println!("key id       {id}");
            println!("minisign id  {}", airlock::keys::minisign::minisign_key_id(id));
        }
        None => println!("key id       (encrypted; not readable without the passphrase)"),
    }
    println!("comment      {}", info.comment.escape_debug());
    if let Some(p) = &info.protection {
        println!("protection   {p}");
    }
    if let Some(public) = &info.public {
        println!("public key   {}", airlock::io::digest::hex(public.as_bytes()));
    }
    Ok(EXIT_OK)
}

fn key_convert(path: &Path, to: KeyFormat, output: Option<&Path>) -> Result<u8> {
    let text = Zeroizing::new(read_key_file(path)?);
    let info =
        airlock::keys::minisign::key_info(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    let Some(public) = info.public.filter(|_| info.kind.ends_with("public key")) else {
        return Err(Error::Usage(format!(
            "{}: is a {}; only public keys can be converted (signify and minisign secret keys use different key derivations)",
            path.display(),
            info.kind
        )));
    };
    let out = match to {
        KeyFormat::Minisign => airlock::keys::minisign::public_key_file(&public),
        KeyFormat::Signify => airlock::keys::minisign::signify_public_key_file(&public),
    };
    // Round-trip check: the converted file must read back as the same key.
    let back = PublicKey::parse(out.as_bytes())?;
    debug_assert_eq!(back.as_bytes(), public.as_bytes());
    match output {
        None => print!("{out}"),
        Some(p) => {
            use std::io::Write as _;
            let mut f =
                std::fs::OpenOptions::new().write(true).create_new(true).open(p).map_err(|e| Error::io(p, e))?;
            f.write_all(out.as_bytes()).map_err(|e| Error::io(p, e))?;
            eprintln!("wrote {} ({:?} format, key id {})", p.display(), to, public.key_id());
        }
    }
    Ok(EXIT_OK)
}

fn mirror_log(dir: &Path, json: bool) -> Result<u8> {
    let state = airlock::mirror::read_state(&dir.join(airlock::format::path::METADATA_DIR).join("log"))?;
    for r in &state.records {
        if json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
            continue;
        }
        let mut line = format!("{}  {:<9}", clock::format(r.time), r.event);
        if let Some(b) = &r.bundle {
            line.push_str(&format!(
                " channel {} seq {} created {} manifest {} signers {} ({} files, {} bytes)",
                b.channel,
                b.sequence,
                clock::format(b.created),
                &b.manifest_sha256[..16],
                b.signers.join(","),
                b.entries,
                b.bytes
            ));
        }
        if let Some(s) = &r.source {
            line.push_str(&format!(" from {s}"));
        }
        for o in &r.overrides {
            line.push_str(&format!(" [override: {o}]"));
        }
        if let Some(reason) = &r.reason {
            line.push_str(&format!(": {reason}"));
        }
        println!("{line}");
    }
    if !json {
        println!("log: {} records, hash chain intact (head {})", state.records.len(), &state.head[..16]);
    }
    Ok(EXIT_OK)
}

fn mirror_verify(dir: &Path, quiet: bool) -> Result<u8> {
    let mirror = Mirror::open(dir, false)?;
    let report = mirror.verify(&progress(quiet))?;
    for p in &report.missing {
        println!("missing   {p}");
    }
    for p in &report.modified {
        println!("modified  {p}");
    }
    for p in &report.unknown {
        println!("unknown   {p}");
    }
    for p in &report.damaged {
        println!("damaged   {p}");
    }
    if report.is_clean() {
        println!("OK: {} files match the manifests that put them there", report.files);
        Ok(EXIT_OK)
    } else {
        println!(
            "FAILED: {} missing, {} modified, {} unknown, {} damaged records",
            report.missing.len(),
            report.modified.len(),
            report.unknown.len(),
            report.damaged.len()
        );
        Ok(EXIT_REJECTED)
    }
}

/// The built-in sample: (path, mode, content).
const SAMPLE: &[(&str, u32, &[u8])] = &[
    ("README.txt", 0o644, include_bytes!("../../fixtures/sample/README.txt")),
    ("bin/hello.sh", 0o755, include_bytes!("../../fixtures/sample/bin/hello.sh")),
    ("docs/empty.txt", 0o644, include_bytes!("../../fixtures/sample/docs/empty.txt")),
    ("docs/squares.csv", 0o644, include_bytes!("../../fixtures/sample/docs/squares.csv")),
    ("ünïcödé/名前.txt", 0o644, include_bytes!("../../fixtures/sample/ünïcödé/名前.txt")),
];

fn demo(a: DemoArgs) -> Result<u8> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match a.dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("airlock-demo-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?
            .keep(),
    };
    let sample = dir.join("sample");
    for (path, mode, content) in SAMPLE {
        let full = sample.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&full, content).map_err(|e| Error::io(&full, e))?;
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode)).map_err(|e| Error::io(&full, e))?;
    }
    let (public, secret) = (dir.join("demo.pub"), dir.join("demo.sec"));
    let bundle = dir.join("sample.airlock");
    let mirror = dir.join("mirror");
    let state = dir.join("state");
    let step = |title: &str, cmd: &str| println!("\n== {title}\n$ airlock {cmd}");

    step(
        "1. make a signing key (exporter side)",
        &format!("keygen --public {} --secret {} --no-passphrase", public.display(), secret.display()),
    );
    keygen(KeygenArgs {
        public: public.clone(),
        secret: secret.clone(),
        no_passphrase: true,
        comment: "airlock demo".into(),
        passphrase_file: None,
    })?;

    step(
        "2. pack the sample into one signed bundle",
        &format!(
            "pack {} -o {} --key {} --label 'airlock demo' --expires 30d",
            sample.display(),
            bundle.display(),
            secret.display()
        ),
    );
    pack(PackArgs {
        sources: vec![sample.clone()],
        output: bundle.clone(),
        key: vec![secret.clone()],
        channel: "demo".into(),
        sequence: None,
        expires: Some("30d".into()),
        label: Some("airlock demo".into()),
        meta: vec!["origin=built-in sample".into()],
        level: pack::DEFAULT_LEVEL,
        threads: 0,
        sign_artifacts: false,
        force: true,
        state_dir: Some(state),
        quiet: true,
        secret: SecretKeyArgs { passphrase_file: None, allow_insecure_key_permissions: false },
    })?;

    step(
        "3. inspect it (no unpacking; signatures checked against --trust)",
        &format!("inspect {} --trust {}", bundle.display(), public.display()),
    );
    inspect(InspectArgs { bundle: bundle.clone(), json: false, trust: vec![public.clone()], policy: None })?;

    let trust = TrustArgs { policy: None, trust: vec![public.clone()], threshold: 1 };
    step(
        "4. verify everything, writing nothing (import side)",
        &format!("verify {} --trust {}", bundle.display(), public.display()),
    );
    verify(VerifyArgs {
        bundle: bundle.clone(),
        trust: TrustArgs { policy: None, trust: trust.trust.clone(), threshold: 1 },
        quiet: true,
    })?;

    step(
        "5. import into a fresh mirror",
        &format!("import {} --trust {} --mirror {}", bundle.display(), public.display(), mirror.display()),
    );
    import(ImportArgs {
        bundle: bundle.clone(),
        trust,
        mirror: mirror.clone(),
        allow_gap: false,
        clock_skew: DEFAULT_CLOCK_SKEW,
        quiet: true,
    })?;

    step("6. re-check the mirror and read its log", &format!("mirror verify {}", mirror.display()));
    let code = mirror_verify(&mirror, true)?;
    println!("$ airlock mirror log {}", mirror.display());
    mirror_log(&mirror, false)?;
    println!("\nDemo done: everything is in {}", dir.display());
    println!("Check the bundle with stock tools: tar --zstd -tvf {}", bundle.display());
    Ok(code)
}
