//! [`Digest`]: a SHA-256 value, and the streaming helpers that produce one.
//!
//! Every size and hash check in airlock goes through this type so that a digest is never
//! confused with other 32-byte values (public keys) and always prints the same way
//! (lowercase hex, as `sha256sum` and `signify -C` expect).

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::tuning::{HASH_BUF, HEAD_HASH_CHUNK, HEAD_HASH_CHUNKS_QUEUED};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of a byte slice.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes = unhex(text)?;
        Some(Digest(bytes.try_into().ok()?))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex_bytes();
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl Digest {
    /// The 64 lowercase hex digits, without allocating (inspect prints one per entry).
    pub fn hex_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX_DIGITS[(b >> 4) as usize];
            pair[1] = HEX_DIGITS[(b & 15) as usize];
        }
        out
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of any byte string.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX_DIGITS[(b >> 4) as usize] as char);
        out.push(HEX_DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Decodes hex (either case); `None` on odd length or a non-hex digit.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// A running SHA-256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest(self.inner.finalize().into())
    }
}

/// A SHA-256 computed on a thread of its own, so that the caller can go on producing the
/// bytes (decompressing, for the head reader: the manifest and the checksum list are each
/// about 100 MB at a million entries, and hashing them took a seventh of `inspect`).
///
/// ```text
///   caller: update(bytes) -> copied into a chunk (HEAD_HASH_CHUNK) -- sync_channel(HEAD_HASH_CHUNKS_QUEUED) --> hashing thread
///           (and chunks back for reuse, <- channel -- the thread, once hashed)
/// ```
///
/// No thread is started until a whole chunk has arrived: fewer bytes (every head member but
/// those of the largest bundles) are hashed by the caller in [`finish`](Self::finish).
/// A panic of the thread is reported by `finish`, as [`join`](crate::io::sync::join) reports
/// any worker's.
pub(crate) struct BackgroundHasher<'scope, 'env> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    /// Bytes not handed over yet (less than a chunk).
    pending: Vec<u8>,
    worker: Option<HashingThread<'scope>>,
}

/// The thread of a [`BackgroundHasher`] and its two channels.
struct HashingThread<'scope> {
    chunks: std::sync::mpsc::SyncSender<Vec<u8>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    handle: std::thread::ScopedJoinHandle<'scope, Hasher>,
}

impl<'scope, 'env> BackgroundHasher<'scope, 'env> {
    /// A hasher whose thread, if it needs one, runs in `scope`.
    pub(crate) fn new(scope: &'scope std::thread::Scope<'scope, 'env>) -> Self {
        BackgroundHasher { scope, pending: Vec::new(), worker: None }
    }

    /// Feeds bytes (copied: the caller keeps its buffer).
    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = bytes.len().min(HEAD_HASH_CHUNK - self.pending.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == HEAD_HASH_CHUNK {
                self.hand_over();
            }
        }
    }

    /// Sends the full pending chunk to the thread (started now if it is not yet) and takes a
    /// used one back, or a new one, to fill next.
    fn hand_over(&mut self) {
        let worker = self.worker.get_or_insert_with(|| HashingThread::start(self.scope));
        let next = worker.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(HEAD_HASH_CHUNK));
        let full = std::mem::replace(&mut self.pending, next);
        // A send fails only when the thread panicked; `finish` reports that.
        let _ = worker.chunks.send(full);
    }

    /// The digest and length of everything fed.
    pub(crate) fn finish(self) -> crate::error::Result<(Digest, u64)> {
        let mut hasher = match self.worker {
            None => Hasher::new(),
            Some(HashingThread { chunks, spare, handle }) => {
                drop((chunks, spare));
                crate::io::sync::join(handle, "background hashing")?
            }
        };
        hasher.update(&self.pending);
        let len = hasher.len();
        Ok((hasher.finish(), len))
    }
}

impl<'scope> HashingThread<'scope> {
    fn start<'env>(scope: &'scope std::thread::Scope<'scope, 'env>) -> HashingThread<'scope> {
        let (chunks, full) = std::sync::mpsc::sync_channel::<Vec<u8>>(HEAD_HASH_CHUNKS_QUEUED);
        let (used, spare) = std::sync::mpsc::channel();
        let handle = scope.spawn(move || {
            let mut hasher = Hasher::new();
            for mut chunk in full {
                hasher.update(&chunk);
                chunk.clear();
                let _ = used.send(chunk); // the caller may have stopped taking them back
            }
            hasher
        });
        HashingThread { chunks, spare, handle }
    }
}

/// Hashes a reader to its end, streaming; returns the digest and the byte count.
pub fn hash_reader(reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = Hasher::new();
    let len = hash_into(&mut hasher, reader)?;
    Ok((hasher.finish(), len))
}

/// Feeds `hasher` everything `reader` gives, to its end; how many bytes that was.
pub fn hash_into(hasher: &mut Hasher, mut reader: impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; HASH_BUF];
    let mut len = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(len),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// A reader that hashes what is read through it, into a hasher the caller keeps a handle
/// to: for a reader handed over whole (boxed into a frame reader) whose bytes must be
/// named by their digest afterwards.
pub struct HashingReader<R> {
    inner: R,
    hasher: Arc<Mutex<Hasher>>,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`; the hasher it feeds.
    pub fn new(inner: R) -> (Self, Arc<Mutex<Hasher>>) {
        let hasher = Arc::new(Mutex::new(Hasher::new()));
        (HashingReader { inner, hasher: Arc::clone(&hasher) }, hasher)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut hasher = self.hasher.lock().map_err(|_| io::Error::other("a hashing reader's hasher is poisoned"))?;
        hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Hasher::new() }
    }

    /// The wrapped writer and the digest and length of what was written.
    pub fn finish(self) -> (W, Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader handed over whole still names what was read through it; `hash_into` goes
    /// on from there, so a reader stopped early and the rest read later make one digest.
    #[test]
    fn hashing_reader_names_what_was_read_and_hash_into_goes_on() {
        let bytes: Vec<u8> = (0..3 * HASH_BUF + 11).map(|i| (i * 7 % 251) as u8).collect();
        let (mut reader, hasher) = HashingReader::new(&bytes[..]);
        let mut first = vec![0u8; HASH_BUF + 5];
        reader.read_exact(&mut first).unwrap();
        drop(reader);
        let mut hasher = hasher.lock().unwrap().clone();
        assert_eq!(hasher.len(), first.len() as u64);
        assert_eq!(hash_into(&mut hasher, &bytes[first.len()..]).unwrap(), (bytes.len() - first.len()) as u64);
        assert_eq!(hasher.finish(), Digest::of(&bytes));
        assert_eq!(hash_reader(&bytes[..]).unwrap(), (Digest::of(&bytes), bytes.len() as u64));
    }

    #[test]
    fn known_vector() {
        assert_eq!(Digest::of(b"abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn hex_round_trip() {
        let d = Digest::of(b"");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
        assert_eq!(unhex("0aF"), None);
    }

    /// The digest and length are those of the bytes fed, whatever the pieces: none, less
    /// than a chunk (no thread), exactly a chunk, and many chunks in uneven pieces.
    #[test]
    fn background_hashing_equals_one_shot() {
        let chunk = HEAD_HASH_CHUNK;
        let data: Vec<u8> = (0..5 * chunk + 12_345).map(|i| (i % 251) as u8).collect();
        for len in [0, 1, chunk - 1, chunk, chunk + 1, data.len()] {
            let bytes = &data[..len];
            let (digest, n) = std::thread::scope(|scope| {
                let mut hasher = BackgroundHasher::new(scope);
                for piece in bytes.chunks(70_001) {
                    hasher.update(piece);
                }
                hasher.finish().unwrap()
            });
            assert_eq!((digest, n), (Digest::of(bytes), len as u64), "{len} bytes");
        }
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data = vec![7u8; HASH_BUF * 2 + 5];
        let (d, n) = hash_reader(&data[..]).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::of(&data));
    }
}
