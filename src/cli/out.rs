//! Every byte the command line prints goes through here; no other module uses `print!`,
//! `println!`, `eprint!` or `eprintln!` (a test in tests/it/hostile_output.rs checks).
//!
//! - [`say!`] prints one line to stdout, with everything in it escaped by
//!   [`airlock::render::escape`]: whatever a subcommand interpolates (a bundle name from
//!   the media, a policy key name, a log field, an error message quoting any of them), it
//!   cannot reach the terminal as a control sequence or start a second line.
//! - [`json`] prints one record as one line of JSON; [`rendered`] hands a buffered stdout
//!   to a library renderer ([`airlock::render`]), which escapes what it writes itself.
//! - [`error_line`] and [`note`] write to stderr, escaped, and never fail.
//!
//! A closed stdout (the reader of a pipe went away: `airlock mirror log | head -1`) is
//! [`Failure::StdoutClosed`]: the command stops, quietly, with exit 0, as other Unix tools do.

use std::fmt;
use std::io::{self, Write};

use airlock::error::Error;
use airlock::render;

use super::{Failure, Result};

/// Prints one line to stdout, escaped: `say!("OK: {} verified", path.display())?`.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}

/// Prints `text` and a newline to stdout, with every character of
/// [`render::needs_escape`] in `text` written visibly.
pub(super) fn line(text: fmt::Arguments<'_>) -> Result<()> {
    let mut bytes = render::escape(&text.to_string()).into_owned();
    bytes.push('\n');
    io::stdout().lock().write_all(bytes.as_bytes()).map_err(stdout_failure)
}

/// Prints a record as one line of JSON (see [`render::json_line`]).
pub(super) fn json(record: std::result::Result<String, serde_json::Error>) -> Result<()> {
    let mut text = record.map_err(|e| Error::Internal(format!("a record does not serialise as JSON: {e}")))?;
    text.push('\n');
    io::stdout().lock().write_all(text.as_bytes()).map_err(stdout_failure)
}

/// Prints one `--json` document: `schema` and `ok` first, then the keys of `body` (see
/// [`render::json_document`]).
pub(super) fn document(schema: &str, ok: bool, body: serde_json::Value) -> Result<()> {
    json(render::json_document(schema, ok, &body))
}

/// A path for JSON: the string the user gave (a path that is not UTF-8 can only be shown
/// with U+FFFD in place of what is not).
pub(super) fn path(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Paths for JSON (see [`path`]).
pub(super) fn paths(list: &[std::path::PathBuf]) -> Vec<String> {
    list.iter().map(|p| path(p)).collect()
}

/// Runs a library renderer on a buffered stdout (a manifest can have 100,000 lines), then
/// flushes it.
pub(super) fn rendered(render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    render(&mut out).and_then(|()| out.flush()).map_err(stdout_failure)
}

/// A failed write to stdout: a closed pipe ends the command quietly, anything else is an
/// I/O error.
fn stdout_failure(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::StdoutClosed
    } else {
        Failure::Airlock(Error::io("<stdout>", e))
    }
}

/// `airlock: <message>` on stderr, escaped, as one line. Failing to write it changes
/// nothing: the exit code still says what happened.
pub(super) fn error_line(message: &str) {
    note(format_args!("airlock: {message}"));
}

/// One line on stderr (a warning, or what `key convert -o` wrote), escaped.
pub(super) fn note(text: fmt::Arguments<'_>) {
    let mut bytes = render::escape(&text.to_string()).into_owned();
    bytes.push('\n');
    let _ = io::stderr().lock().write_all(bytes.as_bytes());
}

/// A usage error as clap words it (from escaped arguments), on stderr, each line escaped
/// again in case clap quoted something the escaped arguments do not hold.
pub(super) fn clap_error(text: &str) {
    let lines: Vec<String> = text.split('\n').map(|l| render::escape(l).into_owned()).collect();
    let _ = writeln!(io::stderr().lock(), "{}", lines.join("\n"));
}
