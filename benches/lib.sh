#!/usr/bin/env bash
# Shared by the benchmark scripts: sourced, not run, right after their `set -euo pipefail`.
# Sourcing it exports LC_ALL=C and sets REPO (this checkout), W (the work dir:
# $STRATA_BENCH_DIR, default /var/tmp/strata-bench; bench_workdir makes it absolute) and
# BENCH (the sourcing script's file name, for error messages); the rest are functions.
export LC_ALL=C
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${STRATA_BENCH_DIR:-/var/tmp/strata-bench}
BENCH=$(basename "${BASH_SOURCE[1]}")

# ---------------------------------------------------------------- messages, requirements
say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$BENCH" "$*" >&2; exit 1; }
# need CMD [HINT]: CMD must be on PATH.
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found${2:+ ($2)}"; }
need_time() { [[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install time)"; }
# need_rounds VAR...: each variable named must be at least 3.
need_rounds() {
    local v
    for v in "$@"; do [[ ${!v} -ge 3 ]] || die "$v must be at least 3 (got ${!v})"; done
}
# no_colon_in_w WHO: the work dir must not contain ':', which WHO (e.g. "umoci's --image
# LAYOUT:TAG") cannot take.
no_colon_in_w() { case $W in *:*) die "work dir $W contains ':', which $1 cannot take" ;; esac; }

# ---------------------------------------------------------------- work dir, moving aside
# bench_workdir [OWN [remake]]: makes $W/{input,scratch,trash,results} and W absolute, and
# sets TRASH, where aside moves things: $W/trash, or with OWN a subdirectory OWN.$$ of its
# own (gc_fsck.sh empties $W/trash when it ends); with remake, aside makes TRASH again
# whenever it is gone.
bench_workdir() {
    mkdir -p "$W"/{input,scratch,trash,results}
    W=$(cd "$W" && pwd)
    TRASH=$W/trash
    TRASH_REMAKE=0
    if [[ -n ${1:-} ]]; then
        TRASH=$W/trash/$1.$$
        mkdir -p "$TRASH"
        if [[ ${2:-} == remake ]]; then TRASH_REMAKE=1; fi
    fi
}
# aside PATH: moves PATH, if it exists, into TRASH, to be deleted later and untimed: a large
# rm -rf slows file creation afterwards (for ~30 s or more; see README.md).
aside() {
    if [[ -e $1 ]]; then
        if [[ $TRASH_REMAKE == 1 ]]; then mkdir -p "$TRASH"; fi
        mv "$1" "$TRASH/$(date +%s%N)-$(basename "$1")"
    fi
}
# settle_wait WHAT: a run that starts right after a large delete measures the file system's
# recovery (ext4 skips recently deleted inodes; see README.md). Waits SETTLE seconds when
# the inputs were just built (BUILT_INPUT=1), else what is left of them since the purge
# recorded in $W/trash/.last-purge (WHAT says what that was).
settle_wait() {
    local left
    if [[ $BUILT_INPUT == 1 ]]; then
        sync; say "inputs were just built: waiting ${SETTLE}s"; sleep "$SETTLE"
    elif [[ -f $W/trash/.last-purge ]]; then
        left=$(($(cat "$W/trash/.last-purge") + SETTLE - $(date +%s)))
        if ((left > 0)); then sync; say "$1: waiting ${left}s"; sleep "$left"; fi
    fi
}

# ---------------------------------------------------------------- the strata binary
# find_strata WHEN [quiet]: the binary to test, as STRATA and STRATA_SRC (its absolute path).
# $STRATA when set (said, unless quiet); else ${CARGO_TARGET_DIR:-$REPO/target}/release/strata,
# built with cargo build --release: WHEN=always every time (cargo does nothing if it is up
# to date), missing only if it is not there, stale also if src/, Cargo.toml or Cargo.lock
# is newer than it.
find_strata() {
    local when=$1 quiet=${2:-} stale='' hint=''
    case $when in always | missing | stale) ;; *) die "find_strata: unknown WHEN $when" ;; esac
    if [[ -n ${STRATA:-} ]]; then
        [[ -x $STRATA ]] || die "STRATA=$STRATA is not an executable"
        if [[ $quiet != quiet ]]; then say "using STRATA=$STRATA"; fi
    else
        STRATA=${CARGO_TARGET_DIR:-$REPO/target}/release/strata
        if [[ $when == stale && -x $STRATA ]]; then
            stale=$(find "$REPO/src" "$REPO/Cargo.toml" "$REPO/Cargo.lock" -newer "$STRATA" -type f -print -quit 2>/dev/null || true)
        fi
        if [[ $when == always || ! -x $STRATA || -n $stale ]]; then
            need cargo
            say "building strata (cargo build --release in $REPO${stale:+; $stale is newer than the binary})"
            if [[ $when == stale ]]; then hint=" (set STRATA=path to test a given binary)"; fi
            (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed$hint"
            [[ -x $STRATA ]] || die "built, but $STRATA is missing"
        elif [[ $when == stale ]]; then
            say "using the existing $STRATA (up to date with src/; set STRATA=path to test another binary)"
        else
            say "using the existing $STRATA (set STRATA=path to test another binary)"
        fi
    fi
    STRATA_SRC=$(cd "$(dirname "$STRATA")" && pwd)/$(basename "$STRATA")
}
# private_strata [exec|shared]: runs a private copy, $W/bin/strata.$$ (STRATA), so that a
# rebuild during the benchmark cannot swap binaries between runs; the caller's EXIT trap
# removes it. exec: the copy is chmod 0755; shared: $W/bin too (runs as another user).
private_strata() {
    local mode=${1:-}
    case $mode in '' | exec | shared) ;; *) die "private_strata: unknown mode $mode" ;; esac
    mkdir -p "$W/bin"
    if [[ $mode == shared ]]; then chmod 0755 "$W/bin"; fi
    STRATA=$W/bin/strata.$$
    cp "$STRATA_SRC" "$STRATA"
    if [[ -n $mode ]]; then chmod 0755 "$STRATA"; fi
}

# ---------------------------------------------------------------- results, environment
# bench_results PREFIX: the results directory RES=$W/results/PREFIX$STAMP with out/ and
# lists/, and LOG, its runs.tsv, with the header line.
bench_results() {
    STAMP=$(date +%Y%m%d-%H%M%S)
    RES=$W/results/$1$STAMP
    mkdir -p "$RES"/{out,lists}
    LOG=$RES/runs.tsv
    printf 'phase\tround\ttool\twall_s\tuser_s\tsys_s\tmaxrss_kb\tcheck\n' >"$LOG"
}
# Lines of environment.txt: env_host first, env_strata (the binary tested, the checkout),
# env_load (last, or nearly: the summary's load_line reads it back).
env_host() {
    echo "date: $(date -Is)"
    echo "host: $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
    echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
}
env_strata() {
    echo "strata: $STRATA_SRC ($("$STRATA" --version 2>&1 | head -1), sha256 $(sha256sum "$STRATA" | cut -c1-16))"
    echo "strata repo: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (dirty work tree)')"
}
env_load() { echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other processes on this machine disturb the timings)"; }
# The last lines of every summary.
summary_tail() {
    echo "load average at start / end: $(grep -o 'start: [0-9. ]*' "$RES/environment.txt" | cut -d' ' -f2-4) / $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "every run's output was checked (runs.tsv, column 'check')"
    echo "raw results: $RES"
}

# ---------------------------------------------------------------- timed runs, statistics
# timed PHASE ROUND TOOL CMD...: one run of CMD under /usr/bin/time -v (its report, stdout
# and stderr in $RES/out/PHASE-ROUND-TOOL.{time,stdout,stderr}), wall time from bash's clock
# around it; dies if CMD fails. Sets WALL, USER_S, SYS_S, RSS.
timed() {
    local phase=$1 round=$2 tool=$3; shift 3
    local tag=$phase-$round-$tool rc=0 t0 t1
    t0=$EPOCHREALTIME
    /usr/bin/time -v -o "$RES/out/$tag.time" "$@" >"$RES/out/$tag.stdout" 2>"$RES/out/$tag.stderr" || rc=$?
    t1=$EPOCHREALTIME
    [[ $rc -eq 0 ]] || die "$tool ($phase round $round) exited $rc; see $RES/out/$tag.stderr"
    WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f", b - a}')
    USER_S=$(awk -F': ' '/User time/ {print $2}' "$RES/out/$tag.time")
    SYS_S=$(awk -F': ' '/System time/ {print $2}' "$RES/out/$tag.time")
    RSS=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$RES/out/$tag.time")
}
# record PHASE ROUND TOOL: appends the run (WALL USER_S SYS_S RSS, and CHECK, the verdict of
# its output check) to runs.tsv.
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$WALL" "$USER_S" "$SYS_S" "$RSS" "$CHECK" >>"$LOG"; }
# timed_check PHASE ROUND TOOL CHECKFN CMD...: timed, then CHECKFN PHASE-ROUND-TOOL must
# print a verdict and succeed; record; prints the wall time (for ts=$(timed_check ...)).
timed_check() {
    local phase=$1 round=$2 tool=$3 check=$4; shift 4
    timed "$phase" "$round" "$tool" "$@"
    CHECK=$("$check" "$phase-$round-$tool") || die "output check failed for $tool ($phase round $round): $CHECK"
    record "$phase" "$round" "$tool"
    printf '%s' "$WALL"
}
# median: of the numbers on stdin ("nan" if none).
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) {print "nan"; exit} if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# col PHASE TOOL N: column N of runs.tsv for PHASE and TOOL; maxcol: its largest value.
col() { awk -F'\t' -v p="$1" -v t="$2" -v c="$3" '$1 == p && $3 == t {print $c}' "$LOG"; }
maxcol() { col "$@" | sort -n | tail -1; }
# pair_ratio S P: S / P, for a pair's wall times (strata's, the peer's).
pair_ratio() { awk -v s="$1" -v u="$2" 'BEGIN {printf "%.4f", s / u}'; }
# met VALUE LIMIT [le|lt|ge]: MET if VALUE <= (default), < or >= LIMIT, else NOT MET.
met() {
    case ${3:-le} in le | lt | ge) ;; *) die "met: unknown comparison $3" ;; esac
    awk -v v="$1" -v lim="$2" -v op="${3:-le}" 'BEGIN {ok = (op == "le") ? (v <= lim) : (op == "lt") ? (v < lim) : (v >= lim); print ok ? "MET" : "NOT MET"}'
}
# mb BYTES: in MB, one decimal.
mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1e6}'; }

# ---------------------------------------------------------------- layouts
# tag_digest LAYOUT TAG: the digest index.json tags TAG (one line per entry so tagged).
tag_digest() { jq -r --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$1/index.json"; }
# blob_bytes LAYOUT: the bytes of all its blobs.
blob_bytes() { find "$1/blobs" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d\n", s}'; }
# warm_layout LAYOUT: reads it into the page cache (untimed).
warm_layout() { cat "$1/index.json" "$1/oci-layout" "$1"/blobs/sha256/* >/dev/null; }
# umoci_bundle LAYOUT BUNDLE [UNPACK-OPTION...]: a new layout holding an empty image "base",
# unpacked by umoci into BUNDLE, whose rootfs the caller then fills.
umoci_bundle() {
    local l=$1 b=$2; shift 2
    umoci init --layout "$l"
    umoci new --image "$l:base"
    umoci unpack "$@" --image "$l:base" "$b" >/dev/null
}
# umoci_one_layer LAYOUT TAG BUNDLE NAME: after umoci_bundle: umoci repack of BUNDLE as TAG,
# "base" removed and the layout gc'd, BUNDLE moved aside; TAG must be one layer (else dies,
# naming NAME). Sets LAYER_HEX, that layer's digest without "sha256:".
umoci_one_layer() {
    local l=$1 tag=$2 b=$3 name=$4 m
    umoci repack --image "$l:$tag" "$b"
    umoci rm --image "$l:base"
    umoci gc --layout "$l"
    aside "$b"
    m=$(tag_digest "$l" "$tag")
    [[ $(jq '.layers | length' "$l/blobs/sha256/${m#sha256:}") == 1 ]] || die "$name: expected one layer"
    LAYER_HEX=$(jq -r '.layers[0].digest' "$l/blobs/sha256/${m#sha256:}")
    LAYER_HEX=${LAYER_HEX#sha256:}
}

# ---------------------------------------------------------------- inputs
# The Debian minbase rootfs (debootstrap, as root; a copy of $FALLBACK_SRC when that is not
# possible, said loudly), cached in $W/input, one recipe for every script. Reads SUITE
# (default bookworm), MIRROR (debootstrap's default) and FALLBACK_SRC (/usr), setting their
# defaults; sets ROOTFS and SOURCE_DESC, BUILT_INPUT=1 when it built the rootfs, else 0.
bench_rootfs() {
    local ok
    SUITE=${SUITE:-bookworm}
    MIRROR=${MIRROR:-}
    FALLBACK_SRC=${FALLBACK_SRC:-/usr}
    ROOTFS=$W/input/rootfs-$SUITE
    BUILT_INPUT=0
    if [[ ${REBUILD_ROOTFS:-0} == 1 ]]; then
        REBUILD_INPUT=1
        say "REBUILD_ROOTFS=1: discarding the cached rootfs"
        aside "$ROOTFS"; rm -f "$ROOTFS.done"
    fi
    if [[ ! -f $ROOTFS.done ]]; then
        BUILT_INPUT=1
        aside "$ROOTFS"; aside "$ROOTFS.tmp"
        ok=0
        if [[ $(id -u) -eq 0 ]] && command -v debootstrap >/dev/null 2>&1; then
            say "debootstrap --variant=minbase $SUITE (a few minutes; log: $W/input/debootstrap.log)"
            # shellcheck disable=SC2086
            if debootstrap --variant=minbase "$SUITE" "$ROOTFS.tmp" $MIRROR >"$W/input/debootstrap.log" 2>&1; then
                ok=1
                # As in Debian's container images (and the reference image in BENCHMARKING.md:
                # ~6,675 entries, 120 MB): no downloaded .debs, no apt lists.
                rm -f "$ROOTFS.tmp"/var/cache/apt/archives/*.deb
                rm -rf "$ROOTFS.tmp"/var/lib/apt/lists/*
                echo "debootstrap --variant=minbase $SUITE, apt caches removed ($(find "$ROOTFS.tmp" | wc -l) entries, $(du -sh "$ROOTFS.tmp" | cut -f1))" >"$ROOTFS.source"
            else
                say "WARNING: debootstrap failed (mirror unreachable?), see $W/input/debootstrap.log"
            fi
        else
            say "WARNING: debootstrap needs root and the debootstrap package"
        fi
        if [[ $ok == 0 ]]; then
            aside "$ROOTFS.tmp"
            say "WARNING: FALLING BACK to a copy of $FALLBACK_SRC as the source tree ($(du -sh "$FALLBACK_SRC" 2>/dev/null | cut -f1))"
            mkdir -p "$ROOTFS.tmp"
            cp -a "$FALLBACK_SRC" "$ROOTFS.tmp/" || die "copying $FALLBACK_SRC failed"
            echo "FALLBACK: copy of $FALLBACK_SRC (debootstrap unavailable or failed)" >"$ROOTFS.source"
        fi
        mv "$ROOTFS.tmp" "$ROOTFS"
        touch "$ROOTFS.done"
    fi
    SOURCE_DESC=$(cat "$ROOTFS.source")
    case $SOURCE_DESC in FALLBACK*) say "NOTE: source tree is a $SOURCE_DESC" ;; esac
}

# The synthetic tree, written into DIR: the minbase rootfs itself, 5 more copies of it
# under /opt/copy-N, and /srv/gen: ~28,500 small files of mixed sizes (lognormal, median
# 1.5 KB; 3/4 text, 1/4 random bytes), 500 symlinks, 200 hardlinks, and 14 large files of
# 2 to 40 MB (half random, half text). Deterministic: fixed seed, fixed source rootfs.
# Bump the callers' tree version when this changes, so cached inputs are rebuilt.
gen_big_tree() {
    local dir=$1 i
    cp -a "$ROOTFS/." "$dir/"
    for i in 1 2 3 4 5; do
        mkdir -p "$dir/opt/copy-$i"
        cp -a "$ROOTFS/." "$dir/opt/copy-$i/"
    done
    python3 - "$dir/srv/gen" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(20261124)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 10)))
         for _ in range(4000)]
lines, n = [], 0
while n < (4 << 20):  # a 4 MiB text corpus; files take slices of it
    line = ' '.join(rng.choice(words) for _ in range(rng.randint(3, 14))) + '\n'
    lines.append(line)
    n += len(line)
corpus = ''.join(lines).encode()

def text(size):
    out, left = [], size
    while left > 0:
        off = rng.randrange(0, len(corpus) - 65536)
        k = min(left, rng.randint(4096, 65536))
        out.append(corpus[off:off + k])
        left -= k
    return b''.join(out)

dirs = []
for a in range(12):
    for b in range(rng.randint(4, 8)):
        for c in range(rng.randint(3, 9)):
            dirs.append(os.path.join(root, 'd%02d' % a, 'sub%02d' % b, 'leaf%02d' % c))
for d in dirs:
    os.makedirs(d, exist_ok=True)
files = []
for i in range(28500):
    d = rng.choice(dirs)
    size = min(int(rng.lognormvariate(7.31, 1.3)), 256 << 10)
    data = rng.randbytes(size) if rng.random() < 0.25 else text(size)
    p = os.path.join(d, 'f%05d%s' % (i, rng.choice(['', '.txt', '.py', '.json', '.so', '.h'])))
    with open(p, 'wb') as f:
        f.write(data)
    r = rng.random()
    os.chmod(p, 0o755 if r < 0.15 else 0o600 if r < 0.2 else 0o644)
    if r > 0.97:
        os.chown(p, 1000, 1000)
    files.append(p)
for i in range(500):
    src = rng.choice(files)
    d = rng.choice(dirs)
    os.symlink(os.path.relpath(src, d), os.path.join(d, 'link%03d' % i))
for i in range(200):
    src = rng.choice(files)
    os.link(src, os.path.join(os.path.dirname(src), 'hard%03d' % i))
big = os.path.join(root, 'big')
os.makedirs(big)
for i, mb in enumerate([2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28, 32, 36, 40]):
    p = os.path.join(big, 'blob%02d-%dM.%s' % (i, mb, 'bin' if i % 2 else 'txt'))
    with open(p, 'wb') as f:
        f.write(rng.randbytes(mb << 20) if i % 2 else text(mb << 20))
PY
}

# ---------------------------------------------------------------- labelled wall-clock timings
# t LABEL CMD...: runs CMD, appends its wall seconds to $T/LABEL (T: the caller's results
# dir), its output to $T/LABEL.out; a failing CMD stops the benchmark, showing that output.
t() {
    local label=$1 start end
    shift
    start=$EPOCHREALTIME
    "$@" >"$T/$label.out" 2>&1 || { cat "$T/$label.out" >&2; die "$label failed"; }
    end=$EPOCHREALTIME
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }' >>"$T/$label"
}
# tmedian LABEL: the median of the times t recorded under LABEL.
tmedian() { median <"$T/$1"; }
