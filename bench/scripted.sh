#!/usr/bin/env bash
# The baselines airlock is measured against, one subcommand per timed command.
#
# "scripted-*" is what an operator does today without airlock: a tar.zst plus a
# signed SHA-256 list (signify, as OpenBSD signs its releases).  "raw-*" is the
# bare tar|zstd data path with no integrity at all: a lower bound, not a rival.
#
# compare.sh runs each subcommand under /usr/bin/time, so everything a
# subcommand does is on the clock.  Output locations are created by the caller.
set -euo pipefail
export LC_ALL=C # byte-order sort, no locale cost in sort/sha256sum

usage() {
    cat >&2 <<'EOF'
usage: scripted.sh pack        SRC OUTDIR SIGNIFY_SECKEY   -> OUTDIR/{B.tar.zst,SUMS,SUMS.sig}
       scripted.sh verify      INDIR SIGNIFY_PUBKEY SCRATCH
       scripted.sh import      INDIR SIGNIFY_PUBKEY DEST
       scripted.sh raw-pack    SRC OUT.tar.zst
       scripted.sh raw-verify  IN.tar.zst
       scripted.sh raw-import  IN.tar.zst DEST
       scripted.sh rawsync-pack   SRC OUT.tar.zst    (raw-pack, then fsync the output)
       scripted.sh rawsync-import IN.tar.zst DEST    (raw-import, then syncfs)
EOF
    exit 2
}

# tar the tree, compress with the same settings airlock uses (level 3, all
# cores), then hash every file and sign the list.  The hashing pass reads the
# corpus a second time; that is the honest cost of the scripted workflow.
scripted_pack() {
    local src=$1 out=$2 seckey=$3
    tar -C "$src" -cf - . | zstd -T0 -3 -q -o "$out/B.tar.zst"
    (cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$out/SUMS"
    signify-openbsd -S -e -s "$seckey" -m "$out/SUMS" -x "$out/SUMS.sig"
}

# Check the list's signature (with -e, signify writes the verified list to -m),
# then extract the archive and hash every file against the list.  There is no
# way to check member hashes with these tools without extracting, so verify
# necessarily writes a scratch tree (on the same disk as everything else).
scripted_verify() {
    local in=$1 pubkey=$2 scratch=$3
    check_and_extract "$in" "$pubkey" "$scratch/SUMS" "$scratch/tree"
}

# Same steps as verify, into the destination tree.  The verified list is kept
# next to DEST, not inside it, so it is not part of the imported tree.
scripted_import() {
    local in=$1 pubkey=$2 dest=$3
    check_and_extract "$in" "$pubkey" "$dest.SUMS" "$dest"
}

check_and_extract() {
    local in=$1 pubkey=$2 sums=$3 tree=$4
    signify-openbsd -V -q -e -p "$pubkey" -x "$in/SUMS.sig" -m "$sums"
    mkdir -p "$tree"
    zstd -dcq "$in/B.tar.zst" | tar -xf - -C "$tree"
    (cd "$tree" && sha256sum --quiet --strict -c "$sums")
}

raw_pack() { tar -C "$1" -cf - . | zstd -T0 -3 -q -o "$2"; }

# Lower bound for any verify: decompress everything, look at nothing.
raw_verify() { zstd -dcq "$1" >/dev/null; }

raw_import() {
    mkdir -p "$2"
    zstd -dcq "$1" | tar -xf - -C "$2"
}

# The raw data paths made durable, as airlock makes its output durable: pack fsyncs the
# bundle (`sync FILE`), import syncs the file system it wrote to (`sync -f`, syncfs(2)).
rawsync_pack() { raw_pack "$1" "$2" && sync "$2"; }
rawsync_import() { raw_import "$1" "$2" && sync -f "$2"; }

main() {
    [[ $# -ge 1 ]] || usage
    local cmd=$1
    shift
    case "$cmd:$#" in
    pack:3) scripted_pack "$@" ;;
    verify:3) scripted_verify "$@" ;;
    import:3) scripted_import "$@" ;;
    raw-pack:2) raw_pack "$@" ;;
    raw-verify:1) raw_verify "$@" ;;
    raw-import:2) raw_import "$@" ;;
    rawsync-pack:2) rawsync_pack "$@" ;;
    rawsync-import:2) rawsync_import "$@" ;;
    *) usage ;;
    esac
}

main "$@"
