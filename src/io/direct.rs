//! Writes that go around the page cache (`O_DIRECT`), for output that is written once and
//! not read again by the writer: a volume set's parity bodies (pack/volumes.rs).
//!
//! A buffered write copies every byte into page-cache memory that writeback then sends to
//! the medium. For bytes nobody reads back that copy is pure cost, and on a machine whose
//! free memory is handed back to a hypervisor it is a large one (PERFORMANCE.md, "Volumes
//! and parity": the parity pass spent more system time copying its blocks into the cache
//! than encoding them). A direct write hands the medium the writer's own buffer.
//!
//! Direct I/O is an optimisation, never a requirement: where a file system refuses
//! `O_DIRECT` (tmpfs before Linux 6.6, some FUSE file systems), where a block is not aligned,
//! or where the kernel refuses a direct write (`EINVAL`), the file goes back to buffered
//! writes for good, and the bytes written are the same. FAT's driver turns a direct write
//! that extends a file into a buffered one by itself. Durability is unchanged: the caller
//! still syncs the file, which also writes its metadata.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::OFlags;

/// The alignment a direct write needs, in memory, in the file and in length: the logical
/// block size of every common medium (512 or 4096 bytes) divides it.
pub const ALIGN: usize = 4096;

/// One file's writes, direct while that works. Shared by the threads that write the file
/// (`O_DIRECT` is a flag of the open file description, so it is on or off for all of them).
#[derive(Debug)]
pub struct DirectWrites<'a> {
    file: &'a File,
    direct: AtomicBool,
}

impl<'a> DirectWrites<'a> {
    /// Turns `O_DIRECT` on for `file`; writes stay buffered where that is refused.
    pub fn start(file: &'a File) -> DirectWrites<'a> {
        let direct = rustix::fs::fcntl_getfl(file)
            .and_then(|flags| rustix::fs::fcntl_setfl(file, flags | OFlags::DIRECT))
            .is_ok();
        DirectWrites { file, direct: AtomicBool::new(direct) }
    }

    /// Whether writes are still direct.
    pub fn is_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Writes all of `block` at `offset`: direct (through `scratch`, which is aligned) when
    /// the block and the offset are aligned and the file takes direct writes; otherwise
    /// direct writes end for this file and the block is written buffered.
    pub fn write_all_at(&self, block: &[u8], offset: u64, scratch: &mut Aligned) -> io::Result<()> {
        if self.is_direct() && aligned(block.len() as u64) && aligned(offset) {
            let buf = scratch.copy_of(block);
            match self.file.write_all_at(buf, offset) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                done => return done,
            }
        }
        self.stop()?;
        self.file.write_all_at(block, offset)
    }

    /// Ends direct writes: every later write to the file (by anyone) is buffered. Cheap
    /// when they had ended already.
    pub fn stop(&self) -> io::Result<()> {
        if self.direct.swap(false, Ordering::Relaxed) {
            let flags = rustix::fs::fcntl_getfl(self.file)?;
            rustix::fs::fcntl_setfl(self.file, flags - OFlags::DIRECT)?;
        }
        Ok(())
    }
}

impl Drop for DirectWrites<'_> {
    /// Leaves the file buffered for whoever writes it next (the volume trailer is an
    /// unaligned append). An error here leaves the flag on; the next unaligned write then
    /// fails with `EINVAL` and names the file, which is why callers call `stop` themselves.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn aligned(n: u64) -> bool {
    n.is_multiple_of(ALIGN as u64)
}

/// A reusable buffer whose start is aligned to [`ALIGN`] (a `Vec` with room to shift).
#[derive(Debug, Default)]
pub struct Aligned {
    bytes: Vec<u8>,
}

impl Aligned {
    /// `block` copied to an aligned address, growing the buffer when it is too small.
    fn copy_of(&mut self, block: &[u8]) -> &[u8] {
        if self.bytes.len() < block.len() + ALIGN {
            self.bytes = vec![0; block.len() + ALIGN];
        }
        let start = self.bytes.as_ptr().align_offset(ALIGN);
        let buf = &mut self.bytes[start..start + block.len()];
        buf.copy_from_slice(block);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    /// The file holds exactly what was written, in whatever mode each write went, and is
    /// buffered again afterwards (an unaligned append works).
    #[test]
    fn direct_and_buffered_writes_land_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::options().read(true).write(true).create_new(true).open(dir.path().join("f")).unwrap();
        let block: Vec<u8> = (0..2 * ALIGN).map(|i| (i % 251) as u8).collect();
        let mut scratch = Aligned::default();
        {
            let writes = DirectWrites::start(&file);
            let started_direct = writes.is_direct();
            writes.write_all_at(&block, 2 * ALIGN as u64, &mut scratch).unwrap();
            writes.write_all_at(&block, 0, &mut scratch).unwrap();
            // Where the file system takes direct writes, aligned blocks kept them direct.
            assert_eq!(writes.is_direct(), started_direct);
            // Unaligned: direct writes end, the bytes still land.
            writes.write_all_at(b"tail", 4 * ALIGN as u64, &mut scratch).unwrap();
            assert!(!writes.is_direct());
        }
        file.seek(SeekFrom::End(0)).unwrap();
        file.write_all(b"!").unwrap();
        let mut all = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut all).unwrap();
        let mut want = block.clone();
        want.extend_from_slice(&block);
        want.extend_from_slice(b"tail!");
        assert_eq!(all, want);
        assert!(!rustix::fs::fcntl_getfl(&file).unwrap().contains(OFlags::DIRECT));
    }

    #[test]
    fn the_scratch_copy_is_aligned_and_equal() {
        let mut scratch = Aligned::default();
        for len in [ALIGN, 3 * ALIGN, ALIGN] {
            let block = vec![7u8; len];
            let copy = scratch.copy_of(&block);
            assert_eq!(copy.as_ptr() as usize % ALIGN, 0);
            assert_eq!(copy, &block[..]);
        }
    }
}
