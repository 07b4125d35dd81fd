//! The output side on real media: the preflight (free space, FAT's 4 GiB file limit),
//! honest I/O errors (source or destination, a full file system), no partial bundle, and
//! the read-back of `--verify-written` (pack and sign).
//!
//! The file systems are real: a FAT image made by `mkfs.vfat` and mounted (`mount -o loop`,
//! or, on a kernel without the vfat driver, the `fusefat` FUSE driver: scripts/test.sh
//! installs dosfstools and fusefat), and small tmpfs mounts. Mounting needs root, which CI
//! has: without it these tests fail, saying so, rather than pass without testing anything.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kit::{airlock, big_content, run, write, Run, Workspace};

/// Fails the test, clearly, unless this process may mount file systems.
fn require_root(test: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "{test} mounts file systems (FAT images, small tmpfs) and needs root, which CI has; run the test suite as root"
    );
}

/// Runs a setup command; panics with its output if it fails.
fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A mounted file system, unmounted when dropped.
struct Mount {
    point: PathBuf,
}

impl Mount {
    /// A tmpfs of `size` (`2M`) at `point`.
    fn tmpfs(point: PathBuf, size: &str) -> Mount {
        fs::create_dir_all(&point).unwrap();
        sh(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&point));
        Mount { point }
    }

    /// A fresh FAT32 image of `mib` MiB made by `mkfs.vfat`, mounted at `point` with the
    /// kernel's vfat driver through a loop device. On a kernel without that driver, the
    /// image is made again with mkfs.vfat's default FAT type for its size (FAT16 for 64 MiB)
    /// and mounted with the `fusefat` FUSE driver, whose `statfs` reports no blocks at all
    /// on FAT32 (so no free space could be checked). The file-size limit is the same 4 GiB
    /// - 1 bytes on both (a 32-bit size field; Linux caps every FAT type there).
    fn fat(image: &Path, point: PathBuf, mib: u32) -> Mount {
        fs::create_dir_all(&point).unwrap();
        let kib = (mib * 1024).to_string();
        sh(Command::new("mkfs.vfat").args(["-F", "32", "-C"]).arg(image).arg(&kib));
        let kernel = Command::new("mount").args(["-o", "loop"]).arg(image).arg(&point).output().unwrap();
        if kernel.status.success() {
            return Mount { point };
        }
        fs::remove_file(image).unwrap();
        sh(Command::new("mkfs.vfat").arg("-C").arg(image).arg(&kib));
        let fuse = Command::new("fusefat").args(["-o", "rw+"]).arg(image).arg(&point).output();
        match fuse {
            Ok(out) if out.status.success() => Mount { point },
            other => panic!(
                "cannot mount a FAT image: `mount -o loop` said {:?}, and fusefat {:?} (scripts/test.sh installs dosfstools and fusefat)",
                String::from_utf8_lossy(&kernel.stderr),
                other.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            ),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.point.join(name)
    }

    /// Everything in the mount's root (lost+found aside), sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.point)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lost+found")
            .collect();
        names.sort();
        names
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.point).status().is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("fusermount").arg("-u").arg(&self.point).status();
        }
    }
}

/// A sparse file of `len` bytes: its size counts, its blocks are never written.
fn sparse(path: &Path, len: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// `airlock pack WS/src -o OUT --key WS/k.sec EXTRA` with the state in `WS/state` and the
/// fault hooks cleared (no `--quiet`: the tests read pack's whole report).
fn pack_to(ws: &Workspace, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = airlock();
    cmd.arg("pack")
        .arg(ws.path("src"))
        .arg("-o")
        .arg(out)
        .arg("--key")
        .arg(ws.path("k.sec"))
        .args(extra)
        .env("AIRLOCK_STATE_DIR", ws.path("state"))
        .env_remove("AIRLOCK_TEST_FAULT");
    cmd
}

/// `airlock verify BUNDLE --trust WS/k.pub --quiet`.
fn verify_at(ws: &Workspace, bundle: &Path) -> Run {
    run(airlock().arg("verify").arg(bundle).arg("--trust").arg(ws.path("k.pub")).arg("--quiet"))
}

fn channel_numbered(ws: &Workspace) -> bool {
    ws.path("state/channels/default").exists()
}

/// Exit 2, the message, no success report, nothing left on the medium, no sequence used.
fn expect_refused(r: &Run, ws: &Workspace, medium: &Mount, before: &[String], texts: &[&str]) {
    r.expect_code(2);
    for text in texts {
        r.expect_stderr(text);
    }
    assert!(r.stdout.is_empty(), "a failed pack reported success: {}", r.stdout);
    assert_eq!(medium.names(), before, "the medium holds a partial bundle or a temporary file");
    assert!(!channel_numbered(ws), "a failed pack numbered the channel");
}

#[test]
fn pack_onto_small_fat32_image_refuses_with_preflight_message() {
    require_root("pack_onto_small_fat32_image_refuses_with_preflight_message");
    let ws = Workspace::new();
    let stick = Mount::fat(&ws.path("stick.img"), ws.path("stick"), 64);
    // 100 MB of sources for a 64 MiB stick. Sparse: the preflight only stats them.
    sparse(&ws.path("src/pool/big.deb"), 100_000_000);
    write(&ws.path("src"), "pool/small.txt", b"small\n", 0o644);
    let out = stick.path("transfer.airlock");
    let r = run(&mut pack_to(&ws, &out, &[]));
    let named = format!("not enough room for {}", out.display());
    expect_refused(&r, &ws, &stick, &[], &[&named, "up to 1", "bytes free", "--volume-size"]);
    assert!(!r.stderr.contains("big.deb"), "the message blames a source: {}", r.stderr);
}

#[test]
fn pack_larger_than_4gib_to_fat32_suggests_volume_size() {
    require_root("pack_larger_than_4gib_to_fat32_suggests_volume_size");
    let ws = Workspace::new();
    let stick = Mount::fat(&ws.path("stick.img"), ws.path("stick"), 64);
    // Over FAT's file limit, as a sparse file: refused before a byte of it is read.
    sparse(&ws.path("src/dvd.iso"), (4 << 30) + (1 << 20));
    let out = stick.path("big.airlock");
    let r = run(&mut pack_to(&ws, &out, &[]));
    let named = format!("{} is on a FAT file system", out.display());
    expect_refused(&r, &ws, &stick, &[], &[&named, "4294967295 bytes", "pass --volume-size fat32"]);
}

#[test]
fn pack_into_full_filesystem_names_destination_and_leaves_nothing() {
    require_root("pack_into_full_filesystem_names_destination_and_leaves_nothing");
    let ws = Workspace::new();
    let medium = Mount::tmpfs(ws.path("medium"), "2M");
    fs::write(medium.path("already-there.txt"), b"keep me\n").unwrap();
    let before = medium.names();
    // Incompressible, and large enough to be streamed (the path where a full destination
    // used to be reported as an error of the source file being read).
    write(&ws.path("src"), "pool/gcc-12.deb", &big_content(3 << 20), 0o644);
    write(&ws.path("src"), "pool/readme.txt", b"hello\n", 0o644);
    let out = medium.path("b.airlock");

    // The preflight refuses, naming the destination.
    let r = run(&mut pack_to(&ws, &out, &[]));
    expect_refused(&r, &ws, &medium, &before, &[&format!("not enough room for {}", out.display())]);

    // As if the medium filled up after the check: the write meets ENOSPC.
    let r = run(pack_to(&ws, &out, &[]).env("AIRLOCK_TEST_FAULT", "skip-space-check"));
    let named = format!("cannot write the bundle {}: the destination is full: ", out.display());
    expect_refused(&r, &ws, &medium, &before, &[&named, " bytes written of about ", "nothing was left there"]);
    assert!(!r.stderr.contains("gcc-12"), "the message blames the source: {}", r.stderr);
    assert_eq!(fs::read(medium.path("already-there.txt")).unwrap(), b"keep me\n");
}

#[test]
fn unreadable_source_is_named_as_source() {
    let ws = Workspace::new();
    write(&ws.path("src"), "a.txt", b"alpha\n", 0o644);
    write(&ws.path("src"), "secret/locked.bin", b"locked\n", 0o644);
    fs::create_dir(ws.path("out")).unwrap();
    let locked = ws.path("src/secret/locked.bin");
    let mut cmd = pack_to(&ws, &ws.path("out/b.airlock"), &[]);
    if rustix::process::geteuid().is_root() {
        // Root reads any file: run the pack as `nobody`, who owns everything but this file.
        for e in walkdir::WalkDir::new(ws.dir.path()) {
            std::os::unix::fs::chown(e.unwrap().path(), Some(65534), Some(65534)).unwrap();
        }
        std::os::unix::fs::chown(&locked, Some(0), Some(0)).unwrap();
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    }
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let r = run(&mut cmd);
    r.expect_code(2).expect_stderr(&format!("cannot read source {}: ", locked.display()));
    assert!(!r.stderr.contains("cannot write"), "{}", r.stderr);
    assert_eq!(fs::read_dir(ws.path("out")).unwrap().count(), 0, "a partial bundle was left");
    assert!(!channel_numbered(&ws));
}

#[test]
fn verify_written_detects_corruption() {
    let ws = Workspace::new();
    write(&ws.path("src"), "pool/noise.bin", &big_content(600_000), 0o644);
    write(&ws.path("src"), "pool/readme.txt", b"hello\n", 0o644);
    fs::create_dir(ws.path("out")).unwrap();
    let out = ws.path("out/b.airlock");

    // A byte flipped on the medium after the write: the read-back refuses and removes it.
    let r = run(pack_to(&ws, &out, &["--verify-written"]).env("AIRLOCK_TEST_FAULT", "flip-written-byte"));
    r.expect_code(1).expect_stderr(&format!("{}: the bundle read back from the medium does not verify", out.display()));
    r.expect_stderr("The medium may be bad");
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(fs::read_dir(ws.path("out")).unwrap().count(), 0, "the bad bundle (or a temporary file) was left");
    assert!(!channel_numbered(&ws), "a failed pack numbered the channel");

    // A good medium: packed, read back and verified, and the time reported.
    let r = run(&mut pack_to(&ws, &out, &["--verify-written"]));
    r.expect_code(0);
    assert!(r.stdout.contains("read back from the medium and verified in"), "{}", r.stdout);
    verify_at(&ws, &out).expect_code(0);

    // Replacing that bundle (--force) onto a bad medium: the read-back runs before the new
    // bundle takes the name, so the good one stays.
    let good = fs::read(&out).unwrap();
    let r = run(pack_to(&ws, &out, &["--verify-written", "--force"]).env("AIRLOCK_TEST_FAULT", "flip-written-byte"));
    r.expect_code(1).expect_stderr("The medium may be bad");
    assert_eq!(fs::read(&out).unwrap(), good, "the bundle that was there changed");
    assert_eq!(fs::read_dir(ws.path("out")).unwrap().count(), 1, "a temporary file was left");

    // Co-signing in place with a bad medium: the co-signed copy fails its read-back and is
    // removed; the bundle stays exactly as it was.
    ws.keygen("k2");
    let before = fs::read(&out).unwrap();
    let r = run(sign(&ws, &out, &["--verify-written"]).env("AIRLOCK_TEST_FAULT", "flip-written-byte"));
    r.expect_code(1).expect_stderr("the co-signed bundle read back from the medium does not verify");
    assert_eq!(fs::read(&out).unwrap(), before, "the bundle changed");
    assert_eq!(fs::read_dir(ws.path("out")).unwrap().count(), 1, "a temporary file was left");
    let r = run(&mut sign(&ws, &out, &["--verify-written"]));
    r.expect_code(0);
    assert!(r.stdout.contains("read back from the medium and verified in"), "{}", r.stdout);
}

/// `airlock sign BUNDLE --key WS/k2.sec --trust WS/k.pub --quiet EXTRA`.
fn sign(ws: &Workspace, bundle: &Path, extra: &[&str]) -> Command {
    let mut cmd = airlock();
    cmd.arg("sign")
        .arg(bundle)
        .arg("--key")
        .arg(ws.path("k2.sec"))
        .arg("--trust")
        .arg(ws.path("k.pub"))
        .arg("--quiet")
        .args(extra)
        .env_remove("AIRLOCK_TEST_FAULT");
    cmd
}

#[test]
fn sign_preflight_refuses_when_no_room() {
    require_root("sign_preflight_refuses_when_no_room");
    let ws = Workspace::new();
    ws.keygen("k2");
    write(&ws.path("src"), "pool/noise.bin", &big_content(1_200_000), 0o644);
    ws.pack(&ws.path("src"), "b.airlock", &[]).expect_code(0);
    let medium = Mount::tmpfs(ws.path("medium"), "2M");
    let bundle = medium.path("b.airlock");
    fs::copy(ws.path("b.airlock"), &bundle).unwrap();
    let before = fs::read(&bundle).unwrap();

    // In place: the co-signed copy is written beside the bundle first, and does not fit.
    let r = run(&mut sign(&ws, &bundle, &[]));
    r.expect_code(2).expect_stderr(&format!("not enough room for {}: co-signing writes a new copy", bundle.display()));
    r.expect_stderr("-o OUT");
    assert_eq!(fs::read(&bundle).unwrap(), before, "the bundle changed");
    assert_eq!(medium.names(), ["b.airlock"], "a temporary file was left");

    // Elsewhere, with room, it works.
    let signed = ws.path("signed.airlock");
    run(sign(&ws, &bundle, &["--verify-written", "-o"]).arg(&signed)).expect_code(0);
    verify_at(&ws, &signed).expect_code(0);
}
