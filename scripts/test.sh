#!/usr/bin/env bash
# Installs what the test suite needs (the real signify, minisign, GNU tar and zstd binaries
# the interop tests run; mkfs.vfat and the fusefat FUSE driver for the FAT media tests, which
# mount images as root: tests/it/media.rs), then runs the whole test suite. This is the
# README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v signify-openbsd >/dev/null || need+=(signify-openbsd)
command -v minisign >/dev/null || need+=(minisign)
command -v zstd >/dev/null || need+=(zstd)
command -v tar >/dev/null || need+=(tar)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
# Used only where the kernel has no vfat driver (`mount -o loop` of a FAT image fails).
command -v fusefat >/dev/null || need+=(fusefat)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

cargo test --locked "$@"
