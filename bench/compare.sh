#!/usr/bin/env bash
# Benchmark airlock pack/verify/import/inspect against the scripted
# tar+zstd+sha256sum+signify workflow and the raw tar|zstd data path.
# See docs/PERFORMANCE.md for what is measured and why it is fair.
#
#   bench/compare.sh [--corpus mixed|small|million|large|both (default)] [--scale F]
#                    [--runs N] [--workdir DIR] [--no-build] [--baseline-only] [--keep]
#                    [--loop-fs] [--loop-io direct|buffered] [--cold [--cgroup-mib N]]
#                    [--check]
#
# Corpora (bench/gen-corpus.py): mixed and small (both = the two); million: 1,000,000
# files of 64-1024 bytes in 1,000 directories (the manifest at scale); large: 20 GiB of
# 256 MiB files, half incompressible.  --scale multiplies each.
#
# --cold: larger than memory.  Every timed command runs inside a cgroup-v1 memory
# cgroup of --cgroup-mib MiB (default 400; page cache counts against it), the page
# cache is dropped before each run (sync; echo 3 > /proc/sys/vm/drop_caches), and
# blocks read (/usr/bin/time %I) are reported beside wall time.  Needs root and
# /sys/fs/cgroup/memory.
#
# --check: the airlock commands only (pack, inspect, verify, import), one run each (inspect five):
# a correctness and peak-RSS check at scale (e.g. --corpus million --check).
#
# Progress goes to stderr; the Markdown results go to stdout and to
# WORKDIR/results/<date>-<corpus>.md (with the raw timings beside it as .tsv).
set -euo pipefail
export LC_ALL=C # '.' as decimal point in EPOCHREALTIME, byte-order sort

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
SCRIPTED=$BENCH_DIR/scripted.sh

CORPORA=(mixed small)
SCALE=1
RUNS=5
WORK=/tmp/airlock-bench
BUILD=1
BASELINE_ONLY=0
KEEP=0
LOOP_FS=0
LOOP_IO=direct
LOOP_DEV=
LOOP_MOUNTED=0
COLD=0
CGROUP_MIB=400
CGROUP=
CHECK=0
MARKER=.airlock-bench # marks a directory this script owns and may clean
CLEANUP_ARMED=0

usage() { # the header comment of this file
    awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

die() {
    echo "compare.sh: $*" >&2
    exit 1
}

log() { echo "==> $*" >&2; }

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --corpus)
            case "${2-}" in
            mixed | small | million | large) CORPORA=("$2") ;;
            both) CORPORA=(mixed small) ;;
            *) die "--corpus takes mixed, small, million, large or both" ;;
            esac
            shift 2
            ;;
        --scale)
            if ! [[ ${2-} =~ ^[0-9]*\.?[0-9]+$ ]] || ! awk -v s="$2" 'BEGIN {exit !(s > 0)}'; then
                die "--scale takes a positive number"
            fi
            SCALE=$2
            shift 2
            ;;
        --runs)
            [[ ${2-} =~ ^[1-9][0-9]*$ ]] || die "--runs takes a positive integer"
            RUNS=$2
            shift 2
            ;;
        --workdir)
            [[ -n ${2-} ]] || die "--workdir takes a directory"
            WORK=$2
            shift 2
            ;;
        --no-build) BUILD=0 && shift ;;
        --baseline-only) BASELINE_ONLY=1 && shift ;;
        --keep) KEEP=1 && shift ;;
        --loop-fs) LOOP_FS=1 && shift ;;
        --loop-io)
            case "${2-}" in
            direct | buffered) LOOP_IO=$2 ;;
            *) die "--loop-io takes direct or buffered" ;;
            esac
            shift 2
            ;;
        --cold) COLD=1 && shift ;;
        --cgroup-mib)
            [[ ${2-} =~ ^[1-9][0-9]*$ ]] || die "--cgroup-mib takes a positive integer"
            CGROUP_MIB=$2
            shift 2
            ;;
        --check) CHECK=1 && shift ;;
        -h | --help) usage ;;
        *) die "unknown argument: $1 (try --help)" ;;
        esac
    done
}

# Name the Debian package for every missing tool instead of failing halfway.
check_tools() {
    local missing=() pair tool pkg
    for pair in tar:tar zstd:zstd sha256sum:coreutils find:findutils xargs:findutils \
        sort:coreutils signify-openbsd:signify-openbsd python3:python3 /usr/bin/time:time; do
        tool=${pair%%:*} pkg=${pair#*:}
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool (apt-get install $pkg)")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        printf 'compare.sh: missing tool: %s\n' "${missing[@]}" >&2
        exit 1
    fi
    # EPOCHREALTIME (microsecond wall clock without forking) needs bash 5.
    [[ -n ${EPOCHREALTIME-} ]] || die "bash 5 or later is required"
}

# The binary: $AIRLOCK if set (used as is), else target/release/airlock,
# built first unless --no-build.
find_airlock() {
    if [[ $BASELINE_ONLY -eq 1 ]]; then
        AIRLOCK=
        return
    fi
    if [[ -z ${AIRLOCK-} ]]; then
        AIRLOCK=$REPO_DIR/target/release/airlock
        if [[ $BUILD -eq 1 ]]; then
            command -v cargo >/dev/null 2>&1 || die "cargo not found (or pass --no-build / set AIRLOCK)"
            log "cargo build --release"
            (cd "$REPO_DIR" && cargo build --release --quiet) || die "cargo build --release failed"
        fi
    fi
    [[ -x $AIRLOCK ]] || die "no airlock binary at $AIRLOCK (build it, set AIRLOCK, or use --baseline-only)"
    AIRLOCK=$(realpath "$AIRLOCK")
}

# The workdir is ours alone: refuse a non-empty directory we did not create,
# and refuse leftovers of a killed run (deleting them here would slow the
# timed extractions that follow; see cleanup()).  Everything but results/ lives
# in $DATA = WORK/data, optionally a loop-mounted file system (--loop-fs).
setup_workdir() {
    mkdir -p "$WORK"
    WORK=$(realpath "$WORK")
    if [[ ! -e $WORK/$MARKER && -n $(ls -A "$WORK") ]]; then
        die "$WORK is not empty and was not made by compare.sh; pick another --workdir"
    fi
    DATA=$WORK/data
    if [[ -e $DATA || -e $DATA.img ]]; then
        die "$DATA is left over from an earlier run: remove it (umount $DATA first if it is mounted; rm -f $DATA.img) and give the disk a few minutes (ext4 with online discard is slow after large deletes), then rerun"
    fi
    touch "$WORK/$MARKER"
    mkdir -p "$WORK/results" "$DATA"
    CLEANUP_ARMED=1
    if [[ $LOOP_FS -eq 1 ]]; then
        mount_loop_fs
    elif [[ $(fs_description) == *discard* ]]; then
        log "note: $DATA is on a discard-mounted file system; deleting the outputs at the end takes ~3 ms per file (hours for the small corpus at scale 1); --loop-fs avoids that"
    fi
    mkdir -p "$DATA"/{keys,corpus,out,state,logs,tmp}
}

# --loop-fs: a fresh ext4 in a sparse image file, mounted without discard.
# Deleting millions of small files on a discard-mounted ext4 takes ~3 ms each
# here (hours for the small corpus) and slows the disk for a while after; the
# image goes away in one unlink.  Same ext4 code, so per-file costs are alike;
# writeback is not timed either way.
#
# --loop-io direct (the default) attaches the image with losetup --direct-io=on:
# the loop device then hands writes to the disk below as a disk controller
# would.  With --loop-io buffered (plain mount -o loop, the only mode before
# 2026-12-01) every byte written back is first copied into the image file's
# own page cache by the loop worker, on the same two cores the commands use;
# that copy is a cost of the harness, not of any disk, and only the commands
# that make their output durable within their timing (airlock, raw + sync)
# pay it.  docs/PERFORMANCE.md has results in both modes.
mount_loop_fs() {
    [[ $EUID -eq 0 ]] || die "--loop-fs needs root (it mounts a file system)"
    command -v mkfs.ext4 >/dev/null 2>&1 || die "missing tool: mkfs.ext4 (apt-get install e2fsprogs)"
    local avail
    avail=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
    truncate -s "$((avail * 9 / 10))K" "$DATA.img"
    # -i 8192: the small corpus needs millions of inodes over all runs.
    mkfs.ext4 -q -F -i 8192 -E nodiscard "$DATA.img" || die "mkfs.ext4 on $DATA.img failed"
    # noinit_itable: no background inode-table zeroing during the timings.
    if [[ $LOOP_IO == direct ]]; then
        command -v losetup >/dev/null 2>&1 || die "missing tool: losetup (apt-get install mount)"
        LOOP_DEV=$(losetup --direct-io=on --find --show "$DATA.img") || die "losetup --direct-io=on $DATA.img failed"
        # losetup falls back to buffered I/O where the image's file system has no O_DIRECT.
        [[ $(cat "/sys/block/${LOOP_DEV#/dev/}/loop/dio" 2>/dev/null) == 1 ]] ||
            { losetup -d "$LOOP_DEV"; die "$LOOP_DEV did not get direct I/O (is $WORK on a tmpfs?); use --loop-io buffered"; }
        mount -o nodiscard,noinit_itable "$LOOP_DEV" "$DATA" || { losetup -d "$LOOP_DEV"; die "cannot mount $LOOP_DEV"; }
    else
        mount -o loop,nodiscard,noinit_itable "$DATA.img" "$DATA" || die "cannot loop-mount $DATA.img"
    fi
    LOOP_MOUNTED=1
    log "loop file system: $DATA.img on $DATA (ext4, nodiscard, $LOOP_IO I/O)"
}

# --cold: a memory cgroup (v1) every timed command runs in.  Page cache is charged
# to the cgroup that read it, so with a limit below the corpus size the data
# cannot stay cached between (or within) runs, as on a machine with less memory
# than the transfer.
setup_cgroup() {
    [[ $EUID -eq 0 ]] || die "--cold needs root (it makes a cgroup and drops the page cache)"
    [[ -d /sys/fs/cgroup/memory ]] || die "--cold needs the cgroup-v1 memory controller at /sys/fs/cgroup/memory"
    CGROUP=/sys/fs/cgroup/memory/airlock-bench-$$
    mkdir "$CGROUP" || die "cannot create $CGROUP"
    echo $((CGROUP_MIB * 1048576)) >"$CGROUP/memory.limit_in_bytes" || die "cannot limit $CGROUP"
    log "cold mode: commands run in $CGROUP (memory.limit_in_bytes = $CGROUP_MIB MiB), page cache dropped before each run"
}

# Moves the processes left in the cgroup out, then removes it.
remove_cgroup() {
    [[ -n $CGROUP && -d $CGROUP ]] || return 0
    local pid
    while read -r pid; do echo "$pid" >/sys/fs/cgroup/memory/cgroup.procs 2>/dev/null || true; done <"$CGROUP/cgroup.procs"
    rmdir "$CGROUP" 2>/dev/null || log "could not remove $CGROUP"
}

# Runs on every exit.  Deleting is the last thing we do: on this machine's ext4
# (mounted with discard), extracting a tree right after rm -rf of a large one
# runs 4-7x slower for a while, so no timed run ever follows a delete.
cleanup() {
    remove_cgroup
    [[ $CLEANUP_ARMED -eq 1 ]] || return 0
    if [[ $KEEP -eq 1 ]]; then
        if [[ $LOOP_MOUNTED -eq 1 ]]; then
            log "keeping $DATA (--keep); before the next run: umount $DATA${LOOP_DEV:+ && losetup -d $LOOP_DEV} && rm $DATA.img && rmdir $DATA"
        else
            log "keeping $DATA (--keep); remove it before the next run"
        fi
        return 0
    fi
    if [[ $LOOP_MOUNTED -eq 1 ]]; then
        log "unmounting and removing $DATA.img"
        umount "$DATA" && { [[ -z $LOOP_DEV ]] || losetup -d "$LOOP_DEV"; } && rm -f "$DATA.img" && rmdir "$DATA"
        return
    fi
    log "removing $DATA (results stay in $WORK/results); on a discard-mounted ext4 this can take long"
    rm -rf "${DATA:?}"
    rm -f "$DATA.img" # a --loop-fs run that failed before mounting
}

# Two cores: a concurrent cargo build or test run skews every number.  Checked
# once at the start (our own corpus generation raises the load later on).
warn_if_busy() {
    read -r LOAD_AT_START _ </proc/loadavg
    if awk -v l="$LOAD_AT_START" 'BEGIN {exit !(l > 0.5)}'; then
        log "warning: 1-minute load average is $LOAD_AT_START; results are only meaningful on an idle machine"
    fi
}

make_keys() {
    signify-openbsd -G -n -p "$DATA/keys/signify.pub" -s "$DATA/keys/signify.sec" >/dev/null ||
        die "signify-openbsd -G failed"
    if [[ -n $AIRLOCK ]]; then
        env "$(airlock_env keygen)" "$AIRLOCK" keygen --public "$DATA/keys/airlock.pub" \
            --secret "$DATA/keys/airlock.sec" --no-passphrase >"$DATA/logs/keygen.log" 2>&1 ||
            die "airlock keygen failed: $(tail -n 5 "$DATA/logs/keygen.log")"
    fi
}

# ---------------------------------------------------------------- corpus

# gen_corpus: make $CORPUS in $SRC and count it (FILES, DIRS, BYTES, DISK_KIB).
gen_corpus() {
    log "generating $CORPUS corpus (scale $SCALE) in $SRC"
    python3 "$BENCH_DIR/gen-corpus.py" "$CORPUS" "$SRC" --scale "$SCALE" >&2
    # Count what is actually there rather than trusting the generator.
    FILES=$(find "$SRC" -type f | wc -l)
    DIRS=$(find "$SRC" -mindepth 1 -type d | wc -l)
    BYTES=$(find "$SRC" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s}')
    DISK_KIB=$(du -sk "$SRC" | cut -f1)
}

# Every timed run writes to a new path and nothing is deleted until the end,
# so the disk must hold all runs at once: 4 extracted trees and 4 bundles
# (each at most the corpus size) per run, plus the two volume sets (7/6 and 1
# bundle) on the corpora that pack them; --check writes one tree and one
# bundle besides the sets.  With --loop-fs the image grows on the host
# disk, so check that too.
check_space() {
    # sets: the two volume sets, 7/6 and 1 bundle, rounded up.  With --loop-fs one run's
    # outputs stay, and the output of the command running (see discard).
    local need inodes dir avail ifree trees=4 bundles=4 sets=3
    [[ $CORPUS == million || $CORPUS == large ]] && sets=0
    [[ $CHECK -eq 1 ]] && trees=1 && bundles=1
    bundles=$((bundles + sets))
    if [[ $LOOP_MOUNTED -eq 0 ]]; then
        trees=$((RUNS * trees)) bundles=$((RUNS * bundles))
    elif ((RUNS > 1)); then
        trees=$((trees + 1)) bundles=$((bundles + 1))
    fi
    need=$(((trees * DISK_KIB + bundles * BYTES / 1024) * 11 / 10))
    inodes=$((trees * (FILES + DIRS) * 11 / 10))
    for dir in "$DATA" "$WORK"; do
        avail=$(df -Pk "$dir" | awk 'NR == 2 {print $4}')
        if ((need > avail)); then
            die "need ~$((need / 1048576 + 1)) GiB free under $dir for $RUNS runs, have $((avail / 1048576)) GiB; lower --runs or use another --workdir"
        fi
    done
    ifree=$(df -Pi "$DATA" | awk 'NR == 2 {print $4}')
    if [[ $ifree =~ ^[0-9]+$ ]] && ((inodes > ifree)); then
        die "need ~$inodes free inodes under $DATA for $RUNS runs, have $ifree; lower --runs"
    fi
}

# Read the inputs once more before each round so every run starts warm.
# GNU tar skips reading file data when its output is /dev/null, hence the cat.
warm_corpus() {
    [[ $COLD -eq 1 ]] || tar -C "$SRC" -cf - . | cat >/dev/null
}
warm_bundles() {
    [[ $COLD -eq 0 ]] || return 0
    [[ $CHECK -eq 1 ]] || cat "$SBUNDLE/B.tar.zst" "$SBUNDLE/SUMS.sig" >/dev/null
    [[ -z $AIRLOCK ]] || cat "$BUNDLE" >/dev/null
    [[ -z $AIRLOCK || -z ${VOLSET-} ]] || ! compgen -G "$VOLSET.*.airlock" >/dev/null || cat "$VOLSET".*.airlock >/dev/null
}

# ---------------------------------------------------------------- timing

# measure PHASE LABEL RUN CMD...: run CMD once under /usr/bin/time, append a
# row "corpus phase label run usec maxrss_kib blocks_in" to $TSV (blocks_in:
# file system inputs, %I, in 512-byte units, of CMD and its children).  With
# --cold the page cache is dropped first and CMD runs inside the memory cgroup.  Wall time comes from
# EPOCHREALTIME (microseconds; time's %e has only 10 ms resolution, too coarse
# for inspect).  %M is the peak RSS of the largest single process in CMD's
# tree, not a sum (see docs/PERFORMANCE.md).
measure() {
    local phase=$1 label=$2 run=$3
    shift 3
    local logf=$DATA/logs/$CORPUS-$label-$run.log t0 t1
    sync # flush earlier runs' dirty pages now, not on this run's clock
    # With --loop-fs the first sync leaves the image file dirty on the host.
    [[ $LOOP_MOUNTED -eq 0 ]] || sync
    local wrap=()
    if [[ $COLD -eq 1 ]]; then
        echo 3 >/proc/sys/vm/drop_caches
        # The shell joins the cgroup, then becomes CMD; CMD's children inherit it.
        wrap=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CGROUP")
    fi
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -f '%M %I' -o "$DATA/tmp/time" "${wrap[@]}" "$@" >"$logf" 2>&1; then
        tail -n 20 "$logf" >&2
        die "$label (run $run) failed: $*"
    fi
    t1=$EPOCHREALTIME
    local rss blocks
    read -r rss blocks < <(tail -n 1 "$DATA/tmp/time")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$CORPUS" "$phase" "$label" "$run" \
        "$((${t1/./} - ${t0/./}))" "$rss" "$blocks" >>"$TSV"
}

# round PHASE RUN CMDFN...: one run of every command of a phase, in the order of
# row RUN of a Williams design (a balanced Latin square): over n runs (2n for an
# odd number of commands) every command runs once in every position and right
# after every other command exactly once.  A plain rotation (ABC, BCA, CAB) would
# put every command in every position too, but always right after the same
# other one, so one command would always pay for, say, the durable writes of
# the same predecessor.
round() {
    local phase=$1 run=$2
    shift 2
    local fns=("$@") n=$# i
    local row=$(((run - 1) % n)) reverse=0 order=()
    if ((n % 2 == 1)); then
        row=$(((run - 1) % (2 * n)))
        if ((row >= n)); then
            row=$((row - n))
            reverse=1
        fi
    fi
    # First row 0, 1, n-1, 2, n-2, ...; row k adds k to each (mod n).
    for ((i = 0; i < n; i++)); do
        local first=$(((i % 2 == 1) ? (i + 1) / 2 : (n - i / 2) % n))
        order+=($(((first + row) % n)))
    done
    for ((i = 0; i < n; i++)); do
        local at=$i
        ((reverse == 0)) || at=$((n - 1 - i))
        "${fns[order[at]]}" "$phase" "$run"
    done
}

# discard KEEP RUN PATH...: with --loop-fs, removes a timed command's outputs once it is
# measured, except in run KEEP (the pack phase keeps the last run's, which verify and
# import read; verify and import keep run 1's, which check_trees counts).  Outputs left in
# place made each round slower than the one before for every command on this VM (the
# mixed corpus writes about 9 GB a round), and most for the commands that write the most.
# Only on the loop file system, which is mounted nodiscard: on a host file system mounted
# with discard, writing right after a large delete is slow for a while (Methodology in
# docs/PERFORMANCE.md), so there nothing is deleted until every timing is done.
discard() {
    local keep=$1 run=$2
    shift 2
    [[ $LOOP_MOUNTED -eq 1 && $run -ne $keep ]] || return 0
    rm -rf -- "$@"
}

# One function per timed command; each takes PHASE RUN.  Airlock gets a fresh
# AIRLOCK_STATE_DIR per run so no run sees another's state (sequence 1 is
# always new), and never the user's data dir.
airlock_env() {
    mkdir -p "$DATA/state/$1"
    echo "AIRLOCK_STATE_DIR=$DATA/state/$1"
}

run_airlock_pack() {
    measure "$1" airlock-pack "$2" env "$(airlock_env "pack-$CORPUS-$2")" \
        "$AIRLOCK" pack "$SRC" -o "$OUT/pack-airlock-$2.bundle" --key "$DATA/keys/airlock.sec" \
        --channel bench --sequence 1 --level 3 --threads 0 --quiet
    discard "$RUNS" "$2" "$OUT/pack-airlock-$2.bundle"
}
# Volume sets (FORMAT.md §14): the same pack cut into volumes of $VOLUME_SIZE bytes
# (a sixth of the corpus, at least 16 MiB), with one parity volume and without (the
# difference is the parity encoding), then verified whole and with vol002 lost (the
# difference is the rebuild).
run_airlock_pack_volumes() {
    measure "$1" airlock-pack-vol "$2" env "$(airlock_env "packvol-$CORPUS-$2")" \
        "$AIRLOCK" pack "$SRC" -o "$OUT/pack-airlock-vol-$2" --key "$DATA/keys/airlock.sec" \
        --channel bench --sequence 1 --level 3 --threads 0 --quiet --volume-size "$VOLUME_SIZE" --parity 1
    discard "$RUNS" "$2" "$OUT/pack-airlock-vol-$2".*.airlock
}
run_airlock_pack_volumes0() {
    measure "$1" airlock-pack-vol0 "$2" env "$(airlock_env "packvol0-$CORPUS-$2")" \
        "$AIRLOCK" pack "$SRC" -o "$OUT/pack-airlock-vol0-$2" --key "$DATA/keys/airlock.sec" \
        --channel bench --sequence 1 --level 3 --threads 0 --quiet --volume-size "$VOLUME_SIZE"
    discard "$RUNS" "$2" "$OUT/pack-airlock-vol0-$2".*.airlock
}
run_airlock_verify_volumes() {
    measure "$1" airlock-verify-vol "$2" env "$(airlock_env "verifyvol-$CORPUS-$2")" \
        "$AIRLOCK" verify "$VOLSET".vol*.airlock "$VOLSET".par*.airlock --trust "$DATA/keys/airlock.pub" --quiet
}
run_airlock_verify_rebuild() {
    local given=()
    for f in "$VOLSET".vol*.airlock "$VOLSET".par*.airlock; do
        [[ $f == *.vol002.airlock ]] || given+=("$f")
    done
    measure "$1" airlock-verify-rebuild "$2" env "$(airlock_env "verifyrebuild-$CORPUS-$2")" \
        "$AIRLOCK" verify "${given[@]}" --trust "$DATA/keys/airlock.pub" --quiet
}
run_scripted_pack() {
    mkdir "$OUT/pack-scripted-$2"
    measure "$1" scripted-pack "$2" "$SCRIPTED" pack "$SRC" "$OUT/pack-scripted-$2" "$DATA/keys/signify.sec"
    discard "$RUNS" "$2" "$OUT/pack-scripted-$2"
}
run_raw_pack() {
    measure "$1" raw-pack "$2" "$SCRIPTED" raw-pack "$SRC" "$OUT/pack-raw-$2.tar.zst"
    discard "$RUNS" "$2" "$OUT/pack-raw-$2.tar.zst"
}
run_rawsync_pack() {
    measure "$1" rawsync-pack "$2" "$SCRIPTED" rawsync-pack "$SRC" "$OUT/pack-rawsync-$2.tar.zst"
    discard "$RUNS" "$2" "$OUT/pack-rawsync-$2.tar.zst"
}

run_airlock_verify() {
    measure "$1" airlock-verify "$2" env "$(airlock_env "verify-$CORPUS-$2")" \
        "$AIRLOCK" verify "$BUNDLE" --trust "$DATA/keys/airlock.pub" --quiet
}
run_scripted_verify() {
    mkdir "$OUT/verify-scripted-$2"
    measure "$1" scripted-verify "$2" "$SCRIPTED" verify "$SBUNDLE" "$DATA/keys/signify.pub" "$OUT/verify-scripted-$2"
    discard 1 "$2" "$OUT/verify-scripted-$2"
}
run_raw_verify() {
    measure "$1" raw-verify "$2" "$SCRIPTED" raw-verify "$SBUNDLE/B.tar.zst"
}

run_airlock_import() {
    measure "$1" airlock-import "$2" env "$(airlock_env "import-$CORPUS-$2")" \
        "$AIRLOCK" import "$BUNDLE" --trust "$DATA/keys/airlock.pub" --mirror "$OUT/import-airlock-$2" --quiet --init
    discard 1 "$2" "$OUT/import-airlock-$2"
}
run_scripted_import() {
    measure "$1" scripted-import "$2" "$SCRIPTED" import "$SBUNDLE" "$DATA/keys/signify.pub" "$OUT/import-scripted-$2"
    discard 1 "$2" "$OUT/import-scripted-$2"
}
run_raw_import() {
    measure "$1" raw-import "$2" "$SCRIPTED" raw-import "$SBUNDLE/B.tar.zst" "$OUT/import-raw-$2"
    discard 1 "$2" "$OUT/import-raw-$2"
}
run_rawsync_import() {
    measure "$1" rawsync-import "$2" "$SCRIPTED" rawsync-import "$SBUNDLE/B.tar.zst" "$OUT/import-rawsync-$2"
    discard 1 "$2" "$OUT/import-rawsync-$2"
}

run_airlock_inspect() {
    measure "$1" airlock-inspect "$2" env "$(airlock_env "inspect-$CORPUS-$2")" "$AIRLOCK" inspect "$BUNDLE"
}

# phase NAME WARMFN CMDFN...: RUNS rounds of the phase's commands, each round
# after warming the inputs.  With --baseline-only the airlock commands drop out.
phase() {
    local name=$1 warm=$2 fn run fns=()
    shift 2
    for fn in "$@"; do
        [[ -z $AIRLOCK && $fn == run_airlock_* ]] && continue
        [[ $CHECK -eq 1 && $fn != run_airlock_* ]] && continue
        # Volume sets are issue 18's bench, on the mixed and small corpora; on the million
        # corpus for their peak RSS (the budget of issue 15).
        [[ $fn == run_airlock_*vol* || $fn == run_airlock_verify_rebuild ]] && [[ $CORPUS == large ]] && continue
        fns+=("$fn")
    done
    [[ ${#fns[@]} -gt 0 ]] || return 0
    for ((run = 1; run <= RUNS; run++)); do
        log "$CORPUS: $name run $run/$RUNS"
        "$warm"
        round "$name" "$run" "${fns[@]}"
    done
}

# The baselines must have produced the whole tree; a silent partial extract
# would make them look fast.
check_trees() {
    [[ $CHECK -eq 0 ]] || return 0
    local dir n
    for dir in "$OUT/import-scripted-1" "$OUT/import-raw-1" "$OUT/verify-scripted-1/tree"; do
        n=$(find "$dir" -type f | wc -l)
        [[ $n -eq $FILES ]] || die "$dir holds $n files, the corpus $FILES"
    done
}

# ---------------------------------------------------------------- report

fs_description() {
    local fs
    fs=$(findmnt -no FSTYPE,OPTIONS -T "$DATA" 2>/dev/null | awk '{print $1 ($2 ~ /(^|,)discard/ ? " (discard)" : "")}')
    [[ $LOOP_MOUNTED -eq 0 ]] || fs+=" on a loop image (--loop-fs, $LOOP_IO I/O)"
    echo "${fs:-?}"
}

write_meta() {
    local meta=$1 commit version
    commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -z $(git -C "$REPO_DIR" status --porcelain --untracked-files=no 2>/dev/null) ]] || commit+="-dirty"
    version=none
    [[ -z $AIRLOCK ]] || version=$(env "$(airlock_env version)" "$AIRLOCK" --version 2>/dev/null | head -n 1 || echo unknown)
    {
        printf 'corpus\t%s\nscale\t%s\nruns\t%s\n' "$CORPUS" "$SCALE" "$RUNS"
        printf 'files\t%s\ndirs\t%s\nbytes\t%s\n' "$FILES" "$DIRS" "$BYTES"
        printf 'load_at_start\t%s\n' "$LOAD_AT_START"
        printf 'cold\t%s\ncgroup_mib\t%s\ncheck\t%s\n' "$COLD" "$CGROUP_MIB" "$CHECK"
        printf 'date\t%s\ncommit\t%s\nairlock\t%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$commit" "$version"
        printf 'machine\t%s cores, %s GiB RAM, %s, %s\n' "$(nproc)" \
            "$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
            "$(uname -sr)" "$(fs_description)"
        printf 'tools\t%s, zstd %s\n' "$(tar --version | head -n 1)" "$(zstd -V | grep -o 'v[0-9.]*' | head -n 1)"
        [[ ! -e $SBUNDLE/B.tar.zst ]] ||
            printf 'size.scripted\t%s\n' "$(($(stat -c %s "$SBUNDLE/B.tar.zst") + $(stat -c %s "$SBUNDLE/SUMS.sig")))"
        [[ -z $AIRLOCK ]] || printf 'size.airlock\t%s\n' "$(stat -c %s "$BUNDLE")"
    } >"$meta"
}

# ---------------------------------------------------------------- main

bench_corpus() {
    CORPUS=$1
    SRC=$DATA/corpus/$CORPUS
    OUT=$DATA/out/$CORPUS
    mkdir -p "$OUT"
    local stamp base
    stamp=$(date +%Y%m%d-%H%M%S)
    base=$WORK/results/$stamp-$CORPUS
    TSV=$base.tsv
    printf 'corpus\tphase\tcommand\trun\tusec\tmaxrss_kib\tblocks_in\n' >"$TSV"

    gen_corpus
    check_space
    log "$CORPUS: $FILES files, $DIRS dirs, $BYTES bytes"

    VOLUME_SIZE=$((BYTES / 6 > 16777216 ? BYTES / 6 : 16777216))
    # A million entries make a 74 MB head, which volume 1 and every trailer hold: 256 MiB
    # volumes (a sixth of the corpus would be too small for them, and pack says so).
    [[ $CORPUS != million ]] || VOLUME_SIZE=268435456
    phase pack warm_corpus run_airlock_pack run_scripted_pack run_raw_pack run_rawsync_pack \
        run_airlock_pack_volumes run_airlock_pack_volumes0
    # verify and import read the last run's outputs.
    BUNDLE=$OUT/pack-airlock-$RUNS.bundle
    SBUNDLE=$OUT/pack-scripted-$RUNS
    VOLSET=$OUT/pack-airlock-vol-$RUNS
    phase verify warm_bundles run_airlock_verify run_scripted_verify run_raw_verify \
        run_airlock_verify_volumes run_airlock_verify_rebuild
    phase import warm_bundles run_airlock_import run_scripted_import run_raw_import run_rawsync_import
    check_trees
    # inspect is cheap, so at least 10 runs for a stable median (5 with --check: a single
    # run right after importing a million files lands in their writeback, measured 1.5x).
    local saved=$RUNS
    RUNS=$((RUNS < 10 ? 10 : RUNS))
    [[ $CHECK -eq 0 ]] || RUNS=5
    phase inspect warm_bundles run_airlock_inspect
    RUNS=$saved

    write_meta "$base.meta"
    python3 "$BENCH_DIR/summarize.py" table "$TSV" "$base.meta" | tee "$base.md"
    log "results: $base.md (raw timings: $TSV)"
}

main() {
    parse_args "$@"
    check_tools
    warn_if_busy
    find_airlock
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    setup_workdir
    [[ $COLD -eq 0 ]] || setup_cgroup
    [[ $CHECK -eq 0 ]] || RUNS=1
    make_keys
    local c
    for c in "${CORPORA[@]}"; do
        bench_corpus "$c"
    done
}

main "$@"
