#!/usr/bin/env bash
# Benchmark the weekly cycle: a full bundle of a generated mirror, then a receipt-based
# delta after 1% of the files changed, against the full pack + import of week 2.
#
#   bench/lifecycle.sh [--gib N (default 10)] [--workdir DIR] [--no-build] [--keep]
#
# Week 1: N GiB of incompressible files (4 MiB each, in 16 directories) are packed,
# imported into a fresh mirror, and the mirror writes a receipt. Week 2 changes 1% of the
# files (half rewritten in place, a quarter removed, a quarter added). Measured, each with
# wall time and peak RSS:
#   full-pack / full-import     week 2 as a full bundle into a copy of the week-1 mirror
#   delta-pack / delta-import   week 2 as a delta from the receipt (pack --since)
#   prove-outside               single-threaded sha256sum of the unchanged files, for
#                               reference: the exporter proves them unchanged by hashing every
#                               source in pack (delta-pack is almost all of that)
#   delta-import-hash           the delta import with --base-check hash (re-hashes every
#                               kept file) instead of stat stamps: the difference is what
#                               the importer spends proving unchanged files unchanged
# Results (Markdown) go to stdout and WORKDIR/results.md. Needs about 4.2 x N GiB free.
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
GIB=10
WORK=/tmp/airlock-lifecycle
BUILD=1
KEEP=0

die() { echo "lifecycle.sh: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
    --gib) [[ ${2-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--gib takes a number"; GIB=$2; shift 2 ;;
    --workdir) [[ -n ${2-} ]] || die "--workdir takes a directory"; WORK=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    *) die "unknown argument $1 (see the header of this file)" ;;
    esac
done

if [[ $BUILD == 1 ]]; then
    log "building target/release/airlock"
    (cd "$REPO_DIR" && cargo build --release --locked -q)
fi
AIRLOCK=$REPO_DIR/target/release/airlock
[[ -x $AIRLOCK ]] || die "no $AIRLOCK (run without --no-build)"
command -v /usr/bin/time >/dev/null || die "needs /usr/bin/time (apt install time)"

rm -rf "$WORK"
mkdir -p "$WORK"/{src,keys,tmp}
[[ $KEEP == 1 ]] || trap 'rm -rf "$WORK"' EXIT
export AIRLOCK_STATE_DIR=$WORK/state
RESULTS=$WORK/results.tsv
printf 'step\tseconds\tmaxrss_kib\n' >"$RESULTS"

# measure STEP CMD...: wall time (EPOCHREALTIME) and peak RSS (/usr/bin/time %M).
measure() {
    local step=$1
    shift
    local t0 t1
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$WORK/tmp/rss" "$@" >"$WORK/tmp/$step.log" 2>&1 ||
        { cat "$WORK/tmp/$step.log" >&2; die "$step failed"; }
    t1=$EPOCHREALTIME
    printf '%s\t%s\t%s\n' "$step" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" \
        "$(tail -n 1 "$WORK/tmp/rss")" >>"$RESULTS"
}

seconds() { awk -F'\t' -v s="$1" '$1 == s {print $2}' "$RESULTS"; }

log "generating $GIB GiB of incompressible files"
files=$(awk -v g="$GIB" 'BEGIN {printf "%d", g * 256}') # 4 MiB each
python3 - "$WORK/src" "$files" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 16:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.bin"), "wb") as f:
        f.write(os.urandom(4 << 20))
EOF

"$AIRLOCK" keygen --no-passphrase --public "$WORK/keys/out.pub" --secret "$WORK/keys/out.sec" >/dev/null
"$AIRLOCK" keygen --no-passphrase --public "$WORK/keys/in.pub" --secret "$WORK/keys/in.sec" >/dev/null

log "week 1: full pack, import, receipt"
"$AIRLOCK" pack "$WORK/src" -o "$WORK/week1.airlock" --key "$WORK/keys/out.sec" --channel bench -q
"$AIRLOCK" mirror init "$WORK/mirror" >/dev/null
"$AIRLOCK" import "$WORK/week1.airlock" --mirror "$WORK/mirror" --trust "$WORK/keys/out.pub" -q >/dev/null
"$AIRLOCK" mirror receipt "$WORK/mirror" --key "$WORK/keys/in.sec" -o "$WORK/receipt" >/dev/null
rm "$WORK/week1.airlock"

log "week 2: changing 1% of the files"
changed=$((files / 100))
python3 - "$WORK/src" "$files" "$changed" >"$WORK/tmp/changed.list" <<'EOF'
import os, sys
root, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = lambda i: os.path.join(root, f"d{i % 16:02d}", f"f{i:06d}.bin")
step = max(1, n // k)
picked = list(range(0, n, step))[:k]
rewrite, remove = picked[: k // 2], picked[k // 2 : k // 2 + k // 4]
for i in rewrite:
    with open(path(i), "wb") as f:
        f.write(os.urandom(4 << 20))
    print(path(i))
for i in remove:
    os.remove(path(i))
for j in range(k - len(rewrite) - len(remove)):
    p = os.path.join(root, "new", f"n{j:06d}.bin")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(os.urandom(4 << 20))
    print(p)
EOF
cp -a "$WORK/mirror" "$WORK/mirror-full"
sync
# The unchanged files, for the exporter's proving cost.
find "$WORK/src" -type f | sort >"$WORK/tmp/all.list"
sort "$WORK/tmp/changed.list" | comm -23 "$WORK/tmp/all.list" - >"$WORK/tmp/unchanged.list"
changed_bytes=$(xargs -a "$WORK/tmp/changed.list" -d '\n' stat -c %s | awk '{s += $1} END {print s + 0}')
# What the changed files take as a compressed archive (tar | zstd -3, the bundle's level).
changed_zst=$(tar -cf - -P -T "$WORK/tmp/changed.list" | zstd -q -3 -c | wc -c)

log "week 2 as a full bundle"
measure full-pack "$AIRLOCK" pack "$WORK/src" -o "$WORK/full.airlock" --key "$WORK/keys/out.sec" \
    --channel bench --sequence 2 -q
measure full-import "$AIRLOCK" import "$WORK/full.airlock" --mirror "$WORK/mirror-full" \
    --trust "$WORK/keys/out.pub" -q
full_bytes=$(stat -c %s "$WORK/full.airlock")
rm -rf "$WORK/full.airlock" "$WORK/mirror-full" # room for the next copy

log "week 2 as a delta from the receipt"
measure delta-pack "$AIRLOCK" pack "$WORK/src" -o "$WORK/delta.airlock" --key "$WORK/keys/out.sec" \
    --channel bench --since "$WORK/receipt" --trust "$WORK/keys/in.pub" -q
cp -a "$WORK/mirror" "$WORK/mirror-hash"
sync
measure delta-import "$AIRLOCK" import "$WORK/delta.airlock" --mirror "$WORK/mirror" \
    --trust "$WORK/keys/out.pub" -q
measure delta-import-hash "$AIRLOCK" import "$WORK/delta.airlock" --mirror "$WORK/mirror-hash" \
    --trust "$WORK/keys/out.pub" --base-check hash -q
measure prove-outside xargs -a "$WORK/tmp/unchanged.list" -d '\n' sha256sum

delta_bytes=$(stat -c %s "$WORK/delta.airlock")
head_bytes=$(python3 "$BENCH_DIR/head-bytes.py" "$WORK/delta.airlock")
ratio=$(awk -v dp="$(seconds delta-pack)" -v di="$(seconds delta-import)" \
    -v fp="$(seconds full-pack)" -v fi="$(seconds full-import)" 'BEGIN {printf "%.3f", (dp + di) / (fp + fi)}')
prove_inside=$(awk -v h="$(seconds delta-import-hash)" -v s="$(seconds delta-import)" 'BEGIN {printf "%.2f", h - s}')

{
    echo "## Weekly cycle: $GIB GiB, $files files, $changed changed ($changed_bytes bytes)"
    echo
    echo "| step | seconds | peak RSS (KiB) |"
    echo "|---|---|---|"
    tail -n +2 "$RESULTS" | awk -F'\t' '{printf "| %s | %s | %s |\n", $1, $2, $3}'
    echo
    echo "- full bundle: $full_bytes bytes; delta bundle: $delta_bytes bytes" \
        "(changed files $changed_bytes bytes, as tar | zstd -3 $changed_zst bytes; head $head_bytes bytes;" \
        "bound: $((changed_zst + head_bytes)))"
    echo "- (delta pack + delta import) / (full pack + full import) = $ratio"
    echo "- proving unchanged files unchanged: outside, pack hashes every source (delta-pack" \
        "$(seconds delta-pack) s; sha256sum of the unchanged files alone, one thread: $(seconds prove-outside) s);" \
        "inside, --base-check hash costs $prove_inside s more than the stat stamps"
} | tee "$WORK/results.md"
