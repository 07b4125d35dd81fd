//! A clean terminal: the progress bar clears itself (run under a pseudo-terminal with
//! script(1), whose transcript is replayed on a small screen model: only the result may be
//! left on screen); `TERM=dumb` gets no bar and `NO_COLOR` no colour; key-kind mistakes name
//! the kind found and the flag that wanted the other; completions and man pages build.

use std::path::Path;
use std::process::Command;

use crate::kit::*;

/// A workspace with a bundle big enough to draw a few frames.
fn bundle() -> Workspace {
    let ws = Workspace::new();
    for i in 0..8 {
        write(&ws.path("src"), &format!("f{i}.bin"), &big_content(1 << 20), 0o644);
    }
    ws.pack(&ws.path("src"), "b.airlock", &[]).expect_code(0);
    ws
}

/// The pseudo-terminal's width, set with stty(1) before airlock runs.
const WIDTH: usize = 80;

/// Runs `airlock ARGS` on a pseudo-terminal of [`WIDTH`] columns (stdout and stderr both
/// on it), with `env`; returns the exit code and the raw transcript.
fn on_terminal(args: &[&Path], env: &[(&str, &str)]) -> (i32, Vec<u8>) {
    let quoted: Vec<String> = std::iter::once(Path::new(env!("CARGO_BIN_EXE_airlock")))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.display()))
        .collect();
    let mut cmd = Command::new("script");
    let line = format!("stty cols {WIDTH} rows 24 && exec {}", quoted.join(" "));
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"]).env_remove("NO_COLOR").env("TERM", "xterm");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run script(1) (util-linux)");
    (out.status.code().unwrap_or(-1), out.stdout)
}

/// The visible lines after replaying `raw` on a screen [`WIDTH`] columns wide, which wraps
/// a character written past the last column to the next line, as terminals do: printable
/// characters, carriage return, newline, and the CSI sequences a progress bar uses (cursor
/// up/down/column, erase in line, erase below); colours and modes change nothing visible.
fn screen(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
                if row == lines.len() {
                    lines.push(Vec::new());
                }
            }
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut last = ' ';
                for p in chars.by_ref() {
                    if p.is_ascii_alphabetic() || p == '@' || p == '~' {
                        last = p;
                        break;
                    }
                    params.push(p);
                }
                let n: usize = params.trim_start_matches('?').parse().unwrap_or(0);
                match last {
                    'A' => row = row.saturating_sub(n.max(1)),
                    'B' => row += n.max(1),
                    'G' => col = n.saturating_sub(1),
                    'K' if n == 2 => lines[row].clear(),
                    'K' => lines[row].truncate(col),
                    'J' => {
                        lines[row].truncate(col);
                        lines.truncate(row + 1);
                    }
                    _ => {}
                }
                while lines.len() <= row {
                    lines.push(Vec::new());
                }
            }
            c if !c.is_control() => {
                if col >= WIDTH {
                    row += 1;
                    col = 0;
                    if row == lines.len() {
                        lines.push(Vec::new());
                    }
                }
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
            _ => {}
        }
    }
    lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_progress_bar_leaves_only_the_result_on_screen() {
    let ws = bundle();
    let (code, raw) =
        on_terminal(&[Path::new("verify"), &ws.path("b.airlock"), Path::new("--trust"), &ws.path("k.pub")], &[]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&raw));
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("verifying"), "no progress bar was drawn, so this test proves nothing: {text:?}");
    let shown = screen(&raw);
    assert!(shown.iter().all(|l| !l.contains("verifying")), "a stale progress frame is left: {shown:#?}");
    let plain = ws.verify("b.airlock", "k");
    // The result as the screen shows it: each line wrapped at the terminal's width.
    let expected: Vec<String> = plain
        .stdout
        .lines()
        .flat_map(|l| {
            l.chars().collect::<Vec<_>>().chunks(WIDTH).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>()
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(shown, expected, "the screen holds more than the result");
}

#[test]
fn term_dumb_gets_no_bar_and_no_escape_sequences() {
    let ws = bundle();
    let (code, raw) = on_terminal(
        &[Path::new("verify"), &ws.path("b.airlock"), Path::new("--trust"), &ws.path("k.pub")],
        &[("TERM", "dumb")],
    );
    assert_eq!(code, 0);
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains('\u{1b}'), "escape sequences on a dumb terminal: {text:?}");
    assert!(!text.contains("verifying"), "a progress bar on a dumb terminal: {text:?}");
}

#[test]
fn no_color_gets_no_colour() {
    let ws = bundle();
    let (code, raw) = on_terminal(
        &[Path::new("verify"), &ws.path("b.airlock"), Path::new("--trust"), &ws.path("k.pub")],
        &[("NO_COLOR", "1")],
    );
    assert_eq!(code, 0);
    let text = String::from_utf8_lossy(&raw);
    let sgr = text.split("\u{1b}[").skip(1).any(|rest| {
        let params: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == ';').collect();
        rest[params.len()..].starts_with('m')
    });
    assert!(!sgr, "colour (SGR) sequences with NO_COLOR: {text:?}");
}

#[test]
fn a_public_key_given_as_key_and_a_secret_key_given_as_trust_are_named() {
    let ws = bundle();
    let (public, secret) = (ws.path("k.pub"), ws.path("k.sec"));
    let out =
        run(airlock().arg("pack").arg(ws.path("src")).arg("-o").arg(ws.path("x.airlock")).arg("--key").arg(&public));
    out.expect_code(2).expect_stderr(&format!(
        "{} is a signify public key; --key needs the secret key ({})",
        public.display(),
        secret.display()
    ));
    let out = run(airlock().arg("verify").arg(ws.path("b.airlock")).arg("--trust").arg(&secret));
    out.expect_code(2).expect_stderr(&format!(
        "{} is a signify secret key; --trust needs the public key ({})",
        secret.display(),
        public.display()
    ));
}

#[test]
fn completions_and_man_pages_build() {
    for (shell, marker) in [("bash", "_airlock()"), ("zsh", "#compdef airlock"), ("fish", "complete -c airlock")] {
        let out = run(airlock().args(["completions", shell]));
        out.expect_code(0);
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
        assert!(out.stdout.contains("recover-log"), "{shell} completion lacks a subcommand");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(airlock().arg("man").arg(dir.path()));
    out.expect_code(0);
    for page in ["airlock.1", "airlock-pack.1", "airlock-mirror-verify.1", "airlock-mirror-recover-log.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is not a man page: {text}");
    }
    let pack = std::fs::read_to_string(dir.path().join("airlock-pack.1")).unwrap();
    assert!(pack.contains("symlinks"), "airlock-pack.1 lacks pack's flags");
    assert!(!dir.path().join("airlock-man.1").exists(), "the hidden man command got a page");
}
