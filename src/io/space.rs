//! What a destination file system can take: its free space and whether it limits the size
//! of one file (FAT), read with `statvfs` and `statfs` of the directory a file goes into.
//!
//! Free space is `f_bavail` (what an unprivileged writer may use): on ext4 root may dip into
//! the reserved blocks, but a bundle should not depend on that, so the estimate errs on the
//! safe side.

use std::path::Path;

use crate::error::{Error, Result};

/// `MSDOS_SUPER_MAGIC` (linux/magic.h): the kernel's `msdos` and `vfat` drivers, FAT12/16/32.
const MSDOS_SUPER_MAGIC: u64 = 0x4d44;
/// `FUSE_SUPER_MAGIC`: a file system in user space, whose real type is in the mount table.
const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;
/// The largest file FAT can hold: its directory entry stores the size in 32 bits.
pub const FAT_MAX_FILE: u64 = u32::MAX as u64;

/// What [`destination`] found out about the file system a file is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    /// Bytes a writer may still use; `None` when the file system reports no size at all
    /// (some FUSE drivers report zero blocks in all): its free space is then unknown, not
    /// zero, and only the write itself can find out.
    pub free: Option<u64>,
    /// The allocation unit: a file takes whole units.
    pub block: u64,
    /// The largest file the file system can hold, when it has a limit a bundle can reach.
    pub max_file: Option<u64>,
    /// The file system's name when it limits files (`FAT`), for messages.
    pub kind: Option<&'static str>,
}

impl Space {
    /// `bytes` rounded up to whole allocation units.
    pub fn on_disk(&self, bytes: u64) -> u64 {
        match self.block {
            0 | 1 => bytes,
            b => bytes.div_ceil(b).saturating_mul(b),
        }
    }
}

/// The free space and file-size limit of the file system holding directory `dir`.
pub fn destination(dir: &Path) -> Result<Space> {
    let vfs = rustix::fs::statvfs(dir).map_err(|e| Error::io(dir, e.into()))?;
    let fs = rustix::fs::statfs(dir).map_err(|e| Error::io(dir, e.into()))?;
    let block = if vfs.f_frsize > 0 { vfs.f_frsize } else { vfs.f_bsize };
    let fat = match fs.f_type as u64 {
        MSDOS_SUPER_MAGIC => true,
        FUSE_SUPER_MAGIC => fuse_is_fat(dir),
        _ => false,
    };
    Ok(Space {
        free: (vfs.f_blocks > 0).then(|| vfs.f_bavail.saturating_mul(block)),
        block,
        max_file: fat.then_some(FAT_MAX_FILE),
        kind: fat.then_some("FAT"),
    })
}

/// Whether the FUSE file system holding `dir` is a FAT driver (`fusefat`, say): the mount
/// table names its subtype. Unknown means no: the limit is then found by the write itself,
/// which reports it as a destination error.
fn fuse_is_fat(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(dev) = std::fs::metadata(dir).map(|m| m.dev()) else { return false };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    table.lines().any(|line| mount_is_fat_fuse(line, dev))
}

/// One `/proc/self/mountinfo` line: `id parent major:minor root point options [tags] - type
/// source super-options`. True when it is device `dev` and its type is FUSE with a FAT
/// subtype.
fn mount_is_fat_fuse(line: &str, dev: u64) -> bool {
    let mut fields = line.split(' ');
    let Some(numbers) = fields.nth(2) else { return false };
    let Some((major, minor)) = numbers.split_once(':') else { return false };
    let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else { return false };
    if rustix::fs::makedev(major, minor) != dev {
        return false;
    }
    let Some(fstype) = fields.skip_while(|f| *f != "-").nth(1) else { return false };
    let subtype = fstype.strip_prefix("fuse.").or_else(|| fstype.strip_prefix("fuseblk.")).unwrap_or("");
    matches!(subtype, "fusefat" | "vfat" | "fat" | "fat32" | "msdos")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_directory_has_room_and_no_file_limit() {
        let dir = tempfile::tempdir().unwrap();
        let space = destination(dir.path()).unwrap();
        assert!(space.block > 0);
        assert_eq!(space.on_disk(1), space.block);
        assert_eq!(space.on_disk(0), 0);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let err = destination(Path::new("/nonexistent/airlock-space")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/airlock-space"), "{err}");
    }

    #[test]
    fn mountinfo_lines_of_fuse_fat_are_recognised() {
        let dev = rustix::fs::makedev(0, 52);
        let fat = "97 29 0:52 / /mnt/stick rw,nosuid,nodev,relatime shared:50 - fuse.fusefat /dev/loop3 rw";
        assert!(mount_is_fat_fuse(fat, dev));
        assert!(!mount_is_fat_fuse(fat, rustix::fs::makedev(0, 53)), "another device");
        let sshfs = "97 29 0:52 / /mnt/x rw - fuse.sshfs host:/ rw";
        assert!(!mount_is_fat_fuse(sshfs, dev));
        assert!(!mount_is_fat_fuse("garbage", dev));
    }
}
