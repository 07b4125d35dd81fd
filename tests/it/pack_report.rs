//! Whole-run reporting in `pack`: every source it refuses (links, special files, names a
//! bundle path cannot have) is listed in one run with the rule it breaks (exit 1, nothing
//! written); `--follow-symlinks` packs what links point to (inside the tree or outside it)
//! and refuses loops and dangling links; `--skip-symlinks` leaves links out and lists them;
//! `-q` prints only the verdict.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::process::Command;

use crate::kit::*;

fn mkfifo(path: &std::path::Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {} failed", path.display());
}

fn refused_lines(run: &Run) -> Vec<&str> {
    run.stderr.lines().filter(|l| l.starts_with("refused  ")).collect()
}

#[test]
fn three_different_refused_paths_are_reported_in_one_run() {
    let ws = Workspace::new();
    let src = ws.path("src");
    write(&src, "ok.txt", b"fine\n", 0o644);
    symlink("ok.txt", src.join("link")).unwrap();
    mkfifo(&src.join("pipe"));
    std::fs::write(src.join(OsStr::from_bytes(b"bad\xffname")), b"x").unwrap();
    let out = ws.pack(&src, "b.airlock", &[]);
    out.expect_code(1).expect_stderr("3 sources break the packing rules");
    let lines = refused_lines(&out);
    assert_eq!(lines.len(), 3, "{}", out.stderr);
    assert!(
        lines.iter().any(|l| l.ends_with("/link: is a symbolic link; airlock packs regular files only")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("/pipe: is not a regular file (device, FIFO or socket)")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("name is not valid UTF-8")), "{lines:?}");
    out.expect_stderr("--follow-symlinks");
    assert!(!ws.path("b.airlock").exists(), "a refused pack wrote the bundle");
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn follow_symlinks_packs_what_links_point_to_inside_and_outside_the_tree() {
    let ws = Workspace::new();
    let src = ws.path("src");
    write(&src, "real.txt", b"inside\n", 0o644);
    write(&ws.path("outside"), "file.txt", b"outside\n", 0o644);
    write(&ws.path("outside"), "dir/deep.txt", b"deep\n", 0o644);
    symlink("real.txt", src.join("to-inside")).unwrap();
    symlink(ws.path("outside/file.txt"), src.join("to-outside")).unwrap();
    symlink(ws.path("outside/dir"), src.join("to-dir")).unwrap();
    ws.pack(&src, "b.airlock", &["--follow-symlinks"]).expect_code(0);
    ws.import("b.airlock", "k", "mirror", &[]).expect_code(0);
    let mirror = ws.path("mirror");
    assert_eq!(std::fs::read(mirror.join("to-inside")).unwrap(), b"inside\n");
    assert_eq!(std::fs::read(mirror.join("to-outside")).unwrap(), b"outside\n");
    assert_eq!(std::fs::read(mirror.join("to-dir/deep.txt")).unwrap(), b"deep\n");
    assert!(!std::fs::symlink_metadata(mirror.join("to-outside")).unwrap().file_type().is_symlink());
}

#[test]
fn follow_symlinks_refuses_loops_and_dangling_links_all_in_one_run() {
    let ws = Workspace::new();
    let src = ws.path("src");
    write(&src, "real.txt", b"inside\n", 0o644);
    symlink("nowhere", src.join("dangling")).unwrap();
    symlink("b", src.join("a")).unwrap();
    symlink("a", src.join("b")).unwrap();
    symlink(".", src.join("self-dir")).unwrap();
    let out = ws.pack(&src, "b.airlock", &["--follow-symlinks"]);
    out.expect_code(1);
    let lines = refused_lines(&out);
    assert!(
        lines.iter().any(|l| l.ends_with("/dangling: is a dangling symbolic link (what it points to does not exist)")),
        "{lines:?}"
    );
    for name in ["/a: is a symbolic link loop", "/b: is a symbolic link loop", "/self-dir: is a symbolic link loop"] {
        assert!(lines.iter().any(|l| l.contains(name)), "{name} not in {lines:?}");
    }
    assert!(!ws.path("b.airlock").exists());
}

#[test]
fn skip_symlinks_leaves_links_out_and_lists_them() {
    let ws = Workspace::new();
    let src = ws.path("src");
    write(&src, "real.txt", b"inside\n", 0o644);
    symlink("real.txt", src.join("alias")).unwrap();
    symlink("nowhere", src.join("sub-dangling")).unwrap();
    let out = ws.pack(&src, "b.airlock", &["--skip-symlinks"]);
    out.expect_code(0);
    assert!(out.stdout.contains("packed 1 files"), "{}", out.stdout);
    for name in ["alias", "sub-dangling"] {
        let line = format!("skipped symbolic link {}", src.join(name).display());
        assert!(out.stdout.contains(&line), "{line:?} not in {}", out.stdout);
    }
}

#[test]
fn quiet_pack_prints_only_the_verdict() {
    let ws = Workspace::new();
    write(&ws.path("src"), "a.txt", b"a\n", 0o644);
    let out = ws.pack(&ws.path("src"), "b.airlock", &["-q"]);
    out.expect_code(0);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(out.stdout.starts_with("packed 1 files (2 bytes) into "), "{}", out.stdout);
}
