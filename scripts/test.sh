#!/usr/bin/env bash
# Installs what the test suite needs (the real signify, minisign, GNU tar and zstd binaries
# the interop tests run; mkfs.vfat and the fusefat FUSE driver for the FAT media tests, which
# mount images as root: tests/it/media.rs; nginx, gpg, pip and an S3 server for the publish
# tests: tests/it/publish.rs), then runs the whole test suite. This is the
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
# The servers and clients tests/it/publish.rs runs on loopback (`mirror publish`): nginx,
# gpg and Debian's archive keyring (apt comes with Debian), pip, and moto's S3 server below.
command -v nginx >/dev/null || need+=(nginx-light)
command -v gpg >/dev/null || need+=(gpg)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

command -v moto_server >/dev/null || python3 -m pip install --quiet 'moto[server]'

cargo test --locked "$@"
