#!/usr/bin/env python3
"""Deterministic benchmark corpora for airlock.

    gen-corpus.py mixed OUT [--scale F]   ~1.1 GiB at scale 1 (see MIXED below)
    gen-corpus.py small OUT [--scale F]   200,000 files of 0.5-2 KiB at scale 1
    gen-corpus.py million OUT [--scale F] 1,000,000 files of 64-1024 bytes in 1,000
                                          directories of 1,000 (the manifest at scale)
    gen-corpus.py large OUT [--scale F]   20 GiB in 80 files of 256 MiB: half random,
                                          a quarter text, a quarter logs (memory and
                                          throughput flat with the corpus size)

Every byte, name, mode and mtime comes from a fixed-seed PRNG, so two runs
produce identical trees (and identical tar streams).  --scale multiplies file
counts and large-file sizes, so the corpus size grows linearly with it
(--scale 2 is the "doubled" corpus used to show that RSS stays flat).

Speed matters (the corpus is regenerated for every benchmark run), so content
is made in large chunks: random.Random.randbytes for incompressible data and a
precomputed phrase pool for text (about 3.5x with zstd -3, like prose/source)
and for logs (about 4.5x).  Nothing reads os.urandom.
"""

import argparse
import os
import random
import sys
import time

MIB = 1 << 20
KIB = 1 << 10
SEED = 0xA1F10C  # change it and every corpus changes; keep it fixed
MTIME_NS = 1_700_000_000 * 1_000_000_000  # fixed mtime for files and dirs
CHUNK = 8 * MIB  # write large files in chunks of this size

# The mixed corpus at scale 1.  Large-file sizes and all counts scale.
MIXED = {
    "random_large": (4, 128 * MIB),  # incompressible (media, archives)
    "text_large": (1, 128 * MIB),  # prose/source-like text
    "log_large": (1, 128 * MIB),  # application logs
    "medium": (200, 512 * KIB, 2 * MIB),  # mixed kinds
    "small": (20_000, 512, 8 * KIB),  # source-tree-like, nested dirs
}
SMALL = {"small": (200_000, 512, 2 * KIB)}
# The million corpus: directories x files per directory, and the file sizes.  --scale
# multiplies the number of directories (--scale 0.01 is 10,000 files, for a quick check).
MILLION = {"dirs": 1000, "files_per_dir": 1000, "size": (64, 1024)}
# The large corpus at scale 1: 80 x 256 MiB = 20 GiB; --scale multiplies the count.
LARGE = {"files": 80, "size": 256 * MIB}
MAX_DEPTH = 5  # deepest directory level below the corpus root
FILES_PER_DIR = 20  # average; sets how many directories the small files use
EXEC_FRACTION = 0.1  # this share of small and medium files gets mode 0755


class Content:
    """Seeded generators of incompressible, text-like and log-like bytes.

    text() and log() hand out consecutive slices of a stream, so no two files
    share content (zstd cannot dedupe across files more than real data allows).
    """

    LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
    LETTER_WEIGHTS = [12, 9, 8, 7, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1]

    def __init__(self, rng: random.Random):
        self.rng = rng
        vocab = [
            "".join(rng.choices(self.LETTERS, weights=self.LETTER_WEIGHTS, k=rng.randint(1, 11)))
            for _ in range(8000)
        ]
        # Zipf-like word frequencies, as in natural language and source code.
        cum, total = [], 0.0
        for rank in range(len(vocab)):
            total += 1.0 / (rank + 1) ** 1.05
            cum.append(total)
        self.phrases = [self._phrase(vocab, cum) for _ in range(100_000)]
        self.messages = [" ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(3, 9))) for _ in range(3000)]
        self.paths = [f"/api/v{rng.randint(1, 3)}/{rng.choice(vocab)}/{rng.choice(vocab)}" for _ in range(500)]
        self.levels = ["INFO"] * 20 + ["DEBUG"] * 10 + ["WARN"] * 3 + ["ERROR"]
        self.log_ms = 1_700_000_000_000
        self.streams = {"text": bytearray(), "log": bytearray()}

    def _phrase(self, vocab, cum) -> str:
        phrase = " ".join(self.rng.choices(vocab, cum_weights=cum, k=self.rng.randint(2, 5)))
        x = self.rng.random()
        if x < 0.08:
            return phrase + ".\n"
        if x < 0.15:
            return phrase + ", "
        return phrase + " "

    def random(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def text(self, n: int) -> bytes:
        return self._take("text", n)

    def log(self, n: int) -> bytes:
        return self._take("log", n)

    def _take(self, kind: str, n: int) -> bytes:
        buf = self.streams[kind]
        while len(buf) < n:
            buf += self._text_block() if kind == "text" else self._log_block()
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _text_block(self) -> bytes:  # ~1 MiB
        return "".join(self.rng.choices(self.phrases, k=50_000)).encode()

    def _log_block(self) -> bytes:  # ~1.3 MiB
        lines = []
        for _ in range(10_000):
            bits = self.rng.getrandbits(64)  # one draw feeds every field of the line
            self.log_ms += bits & 0x3FF
            sec, ms = divmod(self.log_ms, 1000)
            status = 200 if (bits >> 29) & 7 else 500
            lines.append(
                f"{sec}.{ms:03d} {self.levels[(bits >> 10) % 34]:5} [worker-{(bits >> 16) & 15}] "
                f"{self.paths[(bits >> 20) % 500]} id={bits >> 32:08x} status={status} "
                f"dur={(bits >> 40) & 0xFFF}ms {self.messages[(bits >> 52) % 3000]}\n"
            )
        return "".join(lines).encode()

    def binary_mixed(self, n: int) -> bytes:
        """Executable-like: random blocks interleaved with string tables (~1.5x)."""
        parts, left = [], n
        while left > 0:
            k = min(left, self.rng.randint(4 * KIB, 64 * KIB))
            parts.append(self.random(k) if self.rng.random() < 0.6 else self.text(k))
            left -= k
        return b"".join(parts)


class Writer:
    """Creates files with fixed modes and mtimes and keeps totals."""

    def __init__(self, root: str):
        self.root = root
        self.files = 0
        self.bytes = 0
        self.dirs = {""}

    def mkdirs(self, rel: str) -> None:
        if rel in self.dirs:
            return
        parent = os.path.dirname(rel)
        self.mkdirs(parent)
        os.mkdir(os.path.join(self.root, rel), 0o755)
        self.dirs.add(rel)

    def write(self, rel: str, chunks, mode: int = 0o644) -> None:
        self.mkdirs(os.path.dirname(rel))
        fd = os.open(os.path.join(self.root, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:  # os.write may write less than asked
                    view = view[os.write(fd, view):]
                self.bytes += len(chunk)
            os.fchmod(fd, mode)  # the umask must not change the corpus
            os.utime(fd, ns=(MTIME_NS, MTIME_NS))
        finally:
            os.close(fd)
        self.files += 1

    def finish(self) -> None:
        # Directory mtimes last: creating entries updates them.
        for rel in sorted(self.dirs, key=lambda d: -d.count("/")):
            os.chmod(os.path.join(self.root, rel), 0o755)
            os.utime(os.path.join(self.root, rel), ns=(MTIME_NS, MTIME_NS))


def chunked(make, size: int):
    """Yield size bytes from make(n) in CHUNK pieces, so memory stays flat."""
    left = size
    while left > 0:
        n = min(left, CHUNK)
        yield make(n)
        left -= n


def make_dirs(rng: random.Random, count: int, prefix: str) -> list:
    """A random tree of `count` directories, at most MAX_DEPTH deep (incl. prefix)."""
    dirs = [prefix]
    for i in range(count - 1):
        parent = rng.choice(dirs)
        if parent.count("/") + 1 >= MAX_DEPTH:
            parent = prefix
        dirs.append(f"{parent}/d{i:05d}")
    return dirs


def scaled(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def write_small_files(w: Writer, c: Content, rng: random.Random, spec, scale: float, prefix: str) -> None:
    count, lo, hi = spec
    count = scaled(count, scale)
    dirs = make_dirs(rng, max(1, count // FILES_PER_DIR), prefix)
    exts = [".c", ".h", ".rs", ".py", ".md", ".txt", ".json", ".toml", ".cfg", ".bin"]
    for i in range(count):
        size = rng.randint(lo, hi)
        ext = rng.choice(exts)
        data = c.random(size) if ext == ".bin" else c.text(size)
        mode = 0o755 if rng.random() < EXEC_FRACTION else 0o644
        w.write(f"{rng.choice(dirs)}/f{i:06d}{ext}", [data], mode)


def gen_mixed(out: str, scale: float) -> Writer:
    rng = random.Random(SEED)
    c = Content(rng)
    w = Writer(out)

    count, size = MIXED["random_large"]
    for i in range(count):
        w.write(f"large/blob-{i}.bin", chunked(c.random, scaled(size, scale)))
    count, size = MIXED["text_large"]
    for i in range(count):
        w.write(f"large/corpus-{i}.txt", chunked(c.text, scaled(size, scale)))
    count, size = MIXED["log_large"]
    for i in range(count):
        w.write(f"large/app-{i}.log", chunked(c.log, scaled(size, scale)))

    count, lo, hi = MIXED["medium"]
    makers = [("bin", c.random), ("txt", c.text), ("log", c.log), ("so", c.binary_mixed)]
    dirs = make_dirs(rng, 12, "medium")
    for i in range(scaled(count, scale)):
        ext, make = makers[i % len(makers)]
        mode = 0o755 if ext == "so" or rng.random() < EXEC_FRACTION else 0o644
        w.write(f"{rng.choice(dirs)}/m{i:04d}.{ext}", [make(rng.randint(lo, hi))], mode)

    write_small_files(w, c, rng, MIXED["small"], scale, "tree")
    return w


def gen_small(out: str, scale: float) -> Writer:
    rng = random.Random(SEED + 1)
    c = Content(rng)
    w = Writer(out)
    write_small_files(w, c, rng, SMALL["small"], scale, "tree")
    return w


def gen_million(out: str, scale: float) -> Writer:
    """1,000 directories of 1,000 small text files: what a package mirror's pool looks like
    to the manifest (per-entry cost only).  Text, so the payload compresses like source."""
    rng = random.Random(SEED + 2)
    c = Content(rng)
    w = Writer(out)
    lo, hi = MILLION["size"]
    for d in range(scaled(MILLION["dirs"], scale)):
        for f in range(MILLION["files_per_dir"]):
            w.write(f"d{d:04d}/f{f:04d}.txt", [c.text(rng.randint(lo, hi))])
    return w


def gen_large(out: str, scale: float) -> Writer:
    """Large, partly incompressible files: every other file random, the rest text or logs,
    so half the payload is incompressible."""
    rng = random.Random(SEED + 3)
    c = Content(rng)
    w = Writer(out)
    makers = [c.random, c.text, c.random, c.log]
    for i in range(scaled(LARGE["files"], scale)):
        w.write(f"large/file-{i:03d}.dat", chunked(makers[i % len(makers)], LARGE["size"]))
    return w


GENERATORS = {"mixed": gen_mixed, "small": gen_small, "million": gen_million, "large": gen_large}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=sorted(GENERATORS))
    ap.add_argument("out", help="output directory (must not exist, or be empty)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply counts and sizes (default 1)")
    args = ap.parse_args()
    if not args.scale > 0:
        ap.error("--scale must be positive")
    os.makedirs(args.out, exist_ok=True)
    if os.listdir(args.out):
        ap.error(f"{args.out} is not empty")

    start = time.monotonic()
    w = GENERATORS[args.kind](args.out, args.scale)
    w.finish()
    secs = time.monotonic() - start
    # One machine-readable line; compare.sh does its own counting anyway.
    print(
        f"corpus={args.kind} scale={args.scale:g} files={w.files} dirs={len(w.dirs)} "
        f"bytes={w.bytes} seconds={secs:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
