#!/usr/bin/env python3
"""Prints the length of a bundle's head frame (zstd frame 1), by walking the frame header
and block headers (RFC 8878 section 3.1.1) without decompressing anything."""
import sys

with open(sys.argv[1], "rb") as f:
    b = f.read(1 << 28)
if b[:4] != b"\x28\xb5\x2f\xfd":
    sys.exit(f"{sys.argv[1]}: not a zstd frame")
fhd = b[4]
fcs_flag, single, checksum, dict_flag = fhd >> 6, (fhd >> 5) & 1, (fhd >> 2) & 1, fhd & 3
pos = 5 + (0 if single else 1) + [0, 1, 2, 4][dict_flag] + [1 if single else 0, 2, 4, 8][fcs_flag]
while True:
    h = int.from_bytes(b[pos : pos + 3], "little")
    last, kind, size = h & 1, (h >> 1) & 3, h >> 3
    pos += 3 + (1 if kind == 1 else size)
    if last:
        break
print(pos + 4 * checksum)
