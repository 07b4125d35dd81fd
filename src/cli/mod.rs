//! The command line (bin-only): argument parsing and printing.
//!
//! Each subcommand turns its arguments into library calls and prints the outcome. Results
//! go to stdout; progress and errors to stderr, all of it through [`out`], which escapes
//! every string from outside and ends the command quietly when stdout is closed. Exit codes
//! are part of the interface: 0 success, 1 the bundle (or mirror) failed verification, 2
//! usage or operational error (a panic included: never Rust's 101).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[macro_use]
mod out;

mod completions;
mod demo;
mod diff;
mod import;
mod inspect;
mod key;
mod keygen;
mod mirror;
mod mirror_publish;
mod mirror_show;
mod pack;
mod passphrase;
mod policy;
mod progress_bar;
mod receipt;
mod sign;
mod verify;

use completions::*;
use demo::*;
use diff::*;
use import::*;
use inspect::*;
use key::*;
use keygen::*;
use mirror::*;
use mirror_publish::mirror_publish;
use mirror_show::*;
use pack::*;
use policy::*;
use receipt::*;
use sign::*;
use verify::*;
use zeroize::Zeroizing;

use airlock::clock;
use airlock::error::{Error, Reject};
use airlock::format::manifest;
use airlock::keys::{KeyError, KeyPermissions, PublicKey, SecretKey};
use airlock::mirror::{ImportOptions, ImportOutcome, Mirror, DEFAULT_CLOCK_SKEW};
use airlock::pack::{ChannelState, PackOptions};
use airlock::policy::{Policy, SignatureStatus, Trust, TrustReport};
use airlock::progress::Progress;
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
  1  verification failed: the bundle was rejected (nothing was imported),
     `mirror verify` found missing, modified or unknown files (or an interrupted
     import), `mirror log` found the chain broken, or `pack` refused sources
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
    /// Show what changed between two states: bundles or receipts.
    Diff(DiffArgs),
    /// Check a mirror's signed receipt (what the inside holds).
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Run keygen, pack, inspect, verify and import on the built-in sample.
    Demo(DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(CompletionsArgs),
    /// Write man pages for airlock and every subcommand into DIR.
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub(super) struct SecretKeyArgs {
    /// Read secret-key passphrases from this file's first line instead of the terminal.
    #[arg(long, env = "AIRLOCK_PASSPHRASE_FILE", value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Accept secret key files that group or others can read.
    #[arg(long)]
    allow_insecure_key_permissions: bool,
}

/// What the bundle signers are checked against: exactly one of a policy file or `--trust`
/// keys (clap enforces it, so airlock never verifies without a trusted key).
#[derive(Args, Debug)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("trust_anchor").required(true).args(["policy", "trust"])))]
pub(super) struct TrustArgs {
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

/// Runs the command line and returns the process exit code. A panic (a bug) is reported
/// as an internal error with exit code 2, like any other error that is airlock's fault:
/// exit codes are an interface, and Rust's 101 is not one of them.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(report_panic));
    std::panic::catch_unwind(run_command_line).unwrap_or(ExitCode::from(EXIT_ERROR))
}

fn run_command_line() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_failure(e),
    };
    #[cfg(feature = "fault-injection")]
    if let Some(message) = std::env::var_os("AIRLOCK_TEST_PANIC") {
        panic!("{}", message.to_string_lossy());
    }
    let json = cli.command.json_schema();
    #[cfg(feature = "fault-injection")]
    if let Err(usage) = set_test_limits() {
        return ExitCode::from(Failure::Usage(usage).exit_code());
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            if !matches!(failure, Failure::StdoutClosed) {
                out::error_line(&failure.render());
                if let Some(schema) = json {
                    // The human line is on stderr already; a closed stdout changes nothing.
                    let _ = out::document(schema, false, failure.to_json());
                }
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

/// The `--json` schema name of every command that has one (docs/JSON.md,
/// docs/schema/<name without "airlock." and ".v1">.v1.schema.json).
pub(crate) mod schema {
    pub const KEYGEN: &str = "airlock.keygen.v1";
    pub const PACK: &str = "airlock.pack.v1";
    pub const INSPECT: &str = "airlock.inspect.v1";
    pub const VERIFY: &str = "airlock.verify.v1";
    pub const IMPORT: &str = "airlock.import.v1";
    pub const SIGN: &str = "airlock.sign.v1";
    pub const POLICY_CHECK: &str = "airlock.policy-check.v1";
    pub const KEY_SHOW: &str = "airlock.key-show.v1";
    pub const KEY_CONVERT: &str = "airlock.key-convert.v1";
    pub const MIRROR_INIT: &str = "airlock.mirror-init.v1";
    pub const MIRROR_LOG: &str = "airlock.mirror-log.v1";
    pub const MIRROR_RECOVER_LOG: &str = "airlock.mirror-recover-log.v1";
    pub const MIRROR_RECEIPT: &str = "airlock.mirror-receipt.v1";
    pub const MIRROR_VERIFY: &str = "airlock.mirror-verify.v1";
    pub const MIRROR_SHOW: &str = "airlock.mirror-show.v1";
    pub const RECEIPT_VERIFY: &str = "airlock.receipt-verify.v1";
    pub const DIFF: &str = "airlock.diff.v1";
}

impl Command {
    /// The schema of the JSON this command prints, when it was given `--json`.
    fn json_schema(&self) -> Option<&'static str> {
        let (json, name) = match self {
            Command::Keygen(a) => (a.json, schema::KEYGEN),
            Command::Pack(a) => (a.json, schema::PACK),
            Command::Inspect(a) => (a.json, schema::INSPECT),
            Command::Verify(a) => (a.json, schema::VERIFY),
            Command::Import(a) => (a.json, schema::IMPORT),
            Command::Sign(a) => (a.json, schema::SIGN),
            Command::Policy(PolicyCommand::Check { json, .. }) => (*json, schema::POLICY_CHECK),
            Command::Key(KeyCommand::Show { json, .. }) => (*json, schema::KEY_SHOW),
            Command::Key(KeyCommand::Convert { json, .. }) => (*json, schema::KEY_CONVERT),
            Command::Mirror(m) => return m.json_schema(),
            Command::Receipt(ReceiptCommand::Verify(a)) => (a.json, schema::RECEIPT_VERIFY),
            Command::Diff(a) => (a.json, schema::DIFF),
            Command::Demo(_) | Command::Completions(_) | Command::Man(_) => return None,
        };
        json.then_some(name)
    }
}

/// Test hook (feature `fault-injection`): `AIRLOCK_TEST_LIMITS=<manifest bytes>,<checksum
/// list bytes>,<entries>` gives every format version these limits (FORMAT.md §11) in this
/// process, for pack and the readers alike: tests/it/limits.rs reaches them with small trees.
#[cfg(feature = "fault-injection")]
fn set_test_limits() -> Result<(), String> {
    let Some(text) = std::env::var("AIRLOCK_TEST_LIMITS").ok() else { return Ok(()) };
    let bad = || format!("AIRLOCK_TEST_LIMITS={text:?}: expected <manifest bytes>,<checksum list bytes>,<entries>");
    let numbers: Vec<u64> = text.split(',').map(str::parse).collect::<Result<_, _>>().map_err(|_| bad())?;
    let [manifest_bytes, sums_bytes, entries] = numbers[..] else { return Err(bad()) };
    airlock::format::manifest::set_test_limits(airlock::format::Limits { manifest_bytes, sums_bytes, entries });
    Ok(())
}

/// Help and version as clap prints them; a usage error with the arguments it quotes
/// escaped (`airlock verify *.airlock` passes names from the media). clap quotes arguments
/// as they are, so the error shown is the one the escaped arguments give: the same
/// mistake, worded with the escaped names.
fn clap_failure(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // Nothing from outside is in them; a closed stdout is no error here either.
        let _ = e.print();
        return ExitCode::from(EXIT_OK);
    }
    let escaped: Vec<String> =
        std::env::args_os().map(|a| airlock::render::escape(&a.to_string_lossy()).into_owned()).collect();
    let shown = Cli::try_parse_from(&escaped).err().unwrap_or(e);
    out::clap_error(shown.render().to_string().trim_end());
    ExitCode::from(EXIT_ERROR)
}

/// The panic hook: one escaped `airlock: internal error` line on stderr instead of Rust's
/// report (a panic message can quote input).
fn report_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic");
    let at = info.location().map_or(String::new(), |l| format!(" at {}:{}", l.file(), l.line()));
    out::error_line(&format!("internal error: {what}{at} (this is a bug in airlock; please report it)"));
}

/// Why a command failed: the library's error, or the command line's own arguments.
pub(crate) enum Failure {
    /// The library refused (exit 1 for a rejected bundle) or failed (exit 2).
    Airlock(Error),
    /// The arguments cannot be used; the message names the flag (exit 2).
    Usage(String),
    /// Stdout was closed (the reading end of a pipe went away): the command stops
    /// quietly, with exit 0.
    StdoutClosed,
}

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Airlock(e.into())
    }
}

/// What a subcommand returns: its exit code, or why it failed.
type Result<T, E = Failure> = std::result::Result<T, E>;

impl Failure {
    /// The `--json` error document's body (docs/JSON.md, "Errors"): `kind`, `exit`,
    /// `message` (the line stderr gets) and `where`.
    fn to_json(&self) -> serde_json::Value {
        let (kind, place) = match self {
            Failure::Airlock(e) => (e.kind(), error_place(e)),
            Failure::Usage(_) => ("usage", serde_json::Map::new()),
            Failure::StdoutClosed => ("stdout_closed", serde_json::Map::new()),
        };
        let mut error = serde_json::json!({
            "kind": kind,
            "exit": self.exit_code(),
            "message": self.render(),
            "where": place,
        });
        if let (Failure::Airlock(Error::Pack(airlock::pack::PackError::Refused(list))), Some(fields)) =
            (self, error.as_object_mut())
        {
            fields.insert("refused".into(), list.iter().map(pack::refusal_json).collect());
        }
        serde_json::json!({ "error": error })
    }

    fn exit_code(&self) -> u8 {
        match self {
            Failure::Airlock(e) if e.is_rejection() => EXIT_REJECTED,
            Failure::StdoutClosed => EXIT_OK,
            _ => EXIT_ERROR,
        }
    }

    fn render(&self) -> String {
        match self {
            Failure::Usage(text) => text.clone(),
            Failure::StdoutClosed => String::new(),
            Failure::Airlock(e) => flag_hint(e).unwrap_or_else(|| error_chain(e)),
        }
    }
}

/// The library names conditions, never flags: where a flag changes the outcome, the
/// message says which.
fn flag_hint(e: &Error) -> Option<String> {
    use airlock::pack::{PackError, SourceProblem};
    Some(match e {
        Error::OutputExists { path } => format!("{} exists; pass --force to overwrite it", path.display()),
        Error::Pack(PackError::NoSigners) => "pack needs at least one --key".to_owned(),
        Error::Pack(e @ PackError::Base(airlock::pack::BaseProblem::NotKept { .. })) => {
            format!("{e} (pass it with --base OLD.airlock)")
        }
        Error::Pack(PackError::Refused(list)) => {
            let links = list.iter().any(|r| r.problem == SourceProblem::SymbolicLink);
            format!(
                "cannot pack: {} sources break the packing rules (each listed above, with the rule it breaks); \
                 nothing was written{}",
                list.len(),
                if links {
                    "; --follow-symlinks packs what a symbolic link points to, --skip-symlinks leaves links out"
                } else {
                    ""
                }
            )
        }
        Error::Pack(PackError::Level { .. }) => format!("--level must be 1 to {}", airlock::pack::MAX_LEVEL),
        Error::Pack(PackError::Source { path, problem }) => match problem {
            SourceProblem::ChecksumSignatureClash { name, clash } => format!(
                "cannot pack {}: --sign-artifacts would add {name:?}, but the sources already hold {clash:?}",
                path.display()
            ),
            SourceProblem::ChecksumSignatureName { name, error } => {
                format!("cannot pack {}: --sign-artifacts cannot name {name:?}: {error}", path.display())
            }
            _ => return None,
        },
        Error::Mirror { path, reason: airlock::mirror::MirrorError::NotAMirror } => format!(
            "mirror {}: is not an airlock mirror (no .airlock/FORMAT); check the path, or create the mirror with \
             `airlock mirror init {}` (or pass --init to import)",
            path.display(),
            path.display()
        ),
        Error::Rejected(Reject::Plan(mass @ airlock::mirror::PlanReject::MassRetire { .. })) => {
            format!("bundle rejected: {mass}; pass --allow-mass-retire to import it anyway")
        }
        Error::Pack(e @ (PackError::NoRoom { .. } | PackError::DestinationFull { .. })) => {
            format!("{e} (--volume-size SIZE)")
        }
        Error::Pack(e @ (PackError::FileTooLarge { .. } | PackError::DestinationFileTooLarge { .. })) => {
            format!("{e}: pass --volume-size fat32")
        }
        Error::Sign(e @ airlock::sign::SignError::NoRoom { .. }) => {
            format!("{e} (-o OUT)")
        }
        Error::Rejected(gap @ Reject::Gap { .. }) => format!(
            "bundle rejected: {gap}. If they were lost: make a receipt of this mirror \
             (`airlock mirror receipt DIR --key K.sec -o R`) and pack again outside with `--since R`; \
             that bundle builds on what this mirror holds. Or pass --allow-gap to accept this bundle \
             as it is (logged): only when you know the missing bundles were lost or withheld"
        ),
        Error::Rejected(rollback @ Reject::Rollback { last, .. }) => format!(
            "bundle rejected: {rollback}: make a receipt of this mirror \
             (`airlock mirror receipt DIR --key K.sec -o R`) and pack again outside with `--since R`, \
             which continues after sequence {last}"
        ),
        Error::Rejected(broken @ Reject::PreviousMismatch { .. }) => format!(
            "bundle rejected: {broken}. Make a receipt of this mirror \
             (`airlock mirror receipt DIR --key K.sec -o R`) and pack again outside with `--since R`, \
             or pass --allow-gap to accept it as it is (logged)"
        ),
        _ => return None,
    })
}

/// Where an error is, for `--json`'s `error.where`: the file (`path`), the line in it
/// (`line`), the bundle member or entry (`member`, `entry`), the key (`key_id`), as far as
/// the error says.
fn error_place(e: &Error) -> serde_json::Map<String, serde_json::Value> {
    use airlock::mirror::MirrorError;
    use airlock::policy::PolicyError;
    let mut place = serde_json::Map::new();
    let mut put = |key: &str, value: serde_json::Value| {
        place.insert(key.to_owned(), value);
    };
    let path = |p: &Path| serde_json::Value::from(p.to_string_lossy().into_owned());
    match e {
        Error::Io { path: p, .. } | Error::OutputExists { path: p } | Error::NotAFile { path: p } => {
            put("path", path(p))
        }
        Error::Receipt { path: p, .. } => put("path", path(p)),
        Error::Mirror { path: p, reason } => {
            put("path", path(p));
            if let MirrorError::Log { line, .. } = reason {
                put("line", (*line).into());
            }
        }
        Error::Policy(PolicyError::Invalid { origin, line, .. }) => {
            put("path", origin.as_str().into());
            put("line", (*line).into());
        }
        Error::Policy(PolicyError::TooLarge { path: p }) => put("path", path(p)),
        Error::Pack(airlock::pack::PackError::Source { path: p, .. }) => put("path", path(p)),
        Error::Rejected(r) => match r {
            Reject::Malformed { at, .. } | Reject::Truncated { at } => put("member", at.as_str().into()),
            Reject::UnsafePath { path, .. } | Reject::HashMismatch { path, .. } | Reject::Artifact { path, .. } => {
                put("entry", path.as_str().into())
            }
            Reject::BadSignature { key_id, .. } | Reject::UntrustedSumsSigner { key_id, .. } => {
                put("key_id", key_id.to_string().into())
            }
            Reject::Rollback { channel, .. }
            | Reject::Gap { channel, .. }
            | Reject::PreviousMismatch { channel, .. } => put("channel", channel.as_str().into()),
            _ => {}
        },
        _ => {}
    }
    place
}

/// The error and its sources, each said once.
fn error_chain(e: &Error) -> String {
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
        Command::Policy(PolicyCommand::Check { policy, json }) => policy_check(&policy, json),
        Command::Key(KeyCommand::Show { key, json }) => key_show(&key, json),
        Command::Key(KeyCommand::Convert { key, to, output, json }) => key_convert(&key, to, output.as_deref(), json),
        Command::Mirror(m) => mirror(m),
        Command::Receipt(ReceiptCommand::Verify(a)) => receipt_verify(a),
        Command::Diff(a) => diff(a),
        Command::Demo(a) => demo(a),
        Command::Completions(a) => completions(a),
        Command::Man(a) => man_pages(a),
    }
}

fn progress(quiet: bool) -> progress_bar::Bar {
    progress_bar::Bar::new(quiet)
}

fn load_secret_key(path: &Path, args: &SecretKeyArgs) -> Result<SecretKey> {
    let prompt = format!("passphrase for {}: ", airlock::render::Untrusted(path.display()));
    let mut ask = || -> std::result::Result<Zeroizing<Vec<u8>>, KeyError> {
        Ok(passphrase::read_passphrase(args.passphrase_file.as_deref(), &prompt, passphrase::Confirm::Once)?)
    };
    let permissions = if args.allow_insecure_key_permissions {
        KeyPermissions::AllowGroupOrWorldReadable
    } else {
        KeyPermissions::Strict
    };
    SecretKey::load(path, permissions, &mut ask).map_err(|e| wrong_key_kind(e, path, "--key", "secret", "sec"))
}

/// A key of the wrong kind given to `flag`: the message names the kind found and the flag
/// that wanted the other (`K.pub is a signify public key; --key needs the secret key
/// (K.sec)`). Any other key error is passed on.
fn wrong_key_kind(e: KeyError, path: &Path, flag: &str, wanted: &str, extension: &str) -> Failure {
    let KeyError::WrongKind { found, .. } = e else {
        return e.into();
    };
    let pair = path.with_extension(extension);
    let other = if pair != path && path.extension().is_some_and(|x| x == "pub" || x == "sec") {
        format!(" ({})", pair.display())
    } else {
        String::new()
    };
    Failure::Usage(format!("{} is a {found}; {flag} needs the {wanted} key{other}", path.display()))
}

/// The policy `--policy` names, or the one-rule policy `--trust`/`--threshold` stand for
/// (clap lets exactly one of `--policy` and `--trust` through).
fn load_policy(args: &TrustArgs) -> Result<Policy> {
    if let Some(path) = &args.policy {
        return Ok(Policy::load(path)?);
    }
    let keys = args
        .trust
        .iter()
        .map(|p| PublicKey::load(p).map_err(|e| wrong_key_kind(e, p, "--trust", "public", "pub")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Policy::from_trust(Trust::new(keys, args.threshold)?))
}

/// "Now" for every time check: `AIRLOCK_NOW` (Unix seconds) when set, so tests and drills
/// can exercise expiry and the mirror's clock floor; otherwise the system clock.
fn now() -> u64 {
    std::env::var("AIRLOCK_NOW").ok().and_then(|v| v.parse().ok()).unwrap_or_else(clock::system_now)
}

/// `--force` as the library's overwrite choice.
fn overwrite(force: bool) -> airlock::io::durable::Overwrite {
    use airlock::io::durable::Overwrite;
    if force {
        Overwrite::Replace
    } else {
        Overwrite::NoClobber
    }
}
