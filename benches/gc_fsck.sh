#!/usr/bin/env bash
# Benchmark `strata gc` against `umoci gc`, and `strata fsck` against sha256sum / openssl,
# on a realistic layout: ~50 images sharing one Debian minbase layer, ~10 of them untagged.
# How to measure is /work/shared/BENCHMARKING.md; see benches/README.md for usage.
#
# Environment (all optional):
#   STRATA=path            strata binary to test (default: cargo build --release of this repo)
#   STRATA_BENCH_DIR=dir   work dir: cached input, scratch copies, results (/var/tmp/strata-bench)
#   ROUNDS=n               gc rounds; one strata/umoci pair per round, A B B A ... (default 7)
#   FSCK_ROUNDS=n          fsck / sha256sum / openssl rounds (default 7)
#   NIMAGES=n NUNTAG=n     images in the layout, and how many of them to untag (50, 10)
#   SUITE=bookworm MIRROR=url   debootstrap suite and mirror (mirror: debootstrap's default)
#   FALLBACK_SRC=dir       tree copied as the rootfs when debootstrap fails (/usr)
#   REBUILD_INPUT=1        rebuild the cached layout even if present
#   REBUILD_ROOTFS=1       also redo debootstrap (implies REBUILD_INPUT=1)
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-7}
FSCK_ROUNDS=${FSCK_ROUNDS:-7}
NIMAGES=${NIMAGES:-50}
NUNTAG=${NUNTAG:-10}

need umoci "apt-get install umoci"
need jq "apt-get install jq"
need awk
need sha256sum
need_time
need_rounds ROUNDS
[[ $NUNTAG -lt $NIMAGES ]] || die "NUNTAG ($NUNTAG) must be below NIMAGES ($NIMAGES)"
no_colon_in_w "umoci's --image LAYOUT:TAG"
HAVE_OPENSSL=0; command -v openssl >/dev/null 2>&1 && HAVE_OPENSSL=1
IS_ROOT=0; [[ $(id -u) -eq 0 ]] && IS_ROOT=1

# Old copies are moved aside into $W/trash, which is emptied at the end.
bench_workdir

# ---------------------------------------------------------------- 1. strata binary
# cargo build --release unless STRATA is given.
find_strata always
private_strata
trap 'rm -f "$STRATA"' EXIT

# ---------------------------------------------------------------- 2. input (cached)
bench_rootfs

LAYOUT=$W/input/layout-$SUITE-n$NIMAGES-u$NUNTAG
if [[ ${REBUILD_INPUT:-0} == 1 || ! -f $LAYOUT.done ]]; then
    aside "$LAYOUT"; aside "$LAYOUT.tmp"; rm -f "$LAYOUT.done"
    L=$LAYOUT.tmp
    B=$W/input/bundle
    aside "$B"
    UNPACK_OPTS=(); [[ $IS_ROOT == 1 ]] || UNPACK_OPTS=(--rootless)
    say "building the layout: $NIMAGES images, untagging $NUNTAG (a couple of minutes)"
    umoci_bundle "$L" "$B" "${UNPACK_OPTS[@]}"
    cp -a "$ROOTFS/." "$B/rootfs/"
    # img0: base + the whole tree; the bundle then refers to img0.
    umoci repack --refresh-bundle --image "$L:img0" "$B"
    # Small single-link files to modify, one per image, restored after each repack so
    # that every img$i is exactly img0's layer plus its own small layer.
    mapfile -t SMALL < <(cd "$ROOTFS" && find . -type f -links 1 -size -16k -size +0 | sort | head -n 500)
    [[ ${#SMALL[@]} -gt 0 ]] || die "no small files found in $ROOTFS"
    for ((i = 1; i < NIMAGES; i++)); do
        f=${SMALL[$(((i * 7) % ${#SMALL[@]}))]}
        printf '\n# strata-bench image %d\n' "$i" >>"$B/rootfs/$f"
        printf 'image %d\n' "$i" >"$B/rootfs/strata-bench-id"
        umoci repack --image "$L:img$i" "$B"
        cp -a "$ROOTFS/$f" "$B/rootfs/$f"
        rm -f "$B/rootfs/strata-bench-id"
        if (((i % 10) == 0)); then say "  repacked img$i"; fi
    done
    # Garbage: untag NUNTAG images spread over the range (never img0).
    : >"$L.untagged"
    for ((k = 0; k < NUNTAG; k++)); do
        j=$((1 + k * (NIMAGES - 1) / NUNTAG))
        umoci rm --image "$L:img$j"
        echo "img$j" >>"$L.untagged"
    done
    # Sanity: img1 must be img0's layers plus one small layer.
    m0=$(tag_digest "$L" img0)
    n0=$(jq '.layers | length' "$L/blobs/sha256/${m0#sha256:}")
    mlast=$(tag_digest "$L" "img$((NIMAGES - 1))")
    nlast=$(jq '.layers | length' "$L/blobs/sha256/${mlast#sha256:}")
    [[ $nlast -eq $((n0 + 1)) ]] || die "layout check: img$((NIMAGES - 1)) has $nlast layers, img0 has $n0 (expected one more)"
    aside "$B"
    mv "$L.untagged" "$LAYOUT.untagged"
    mv "$L" "$LAYOUT"
    touch "$LAYOUT.done"
fi

# The blobs gc must keep, computed independently with jq: index.json entries, their
# configs and layers (umoci writes no nested indexes or referrers).
expected_live() {
    local l=$1 d
    for d in $(jq -r '.manifests[].digest' "$l/index.json"); do
        echo "${d#sha256:}"
        jq -r '.config.digest, .layers[].digest' "$l/blobs/sha256/${d#sha256:}" | sed 's/^sha256://'
    done | sort -u
}

N_BLOBS=$(find "$LAYOUT/blobs/sha256" -type f | wc -l)
BYTES=$(blob_bytes "$LAYOUT")
N_TAGS=$(jq '.manifests | length' "$LAYOUT/index.json")
BIG=$(find "$LAYOUT/blobs/sha256" -type f -printf '%s\n' | sort -n | tail -1)

bench_results ""
EXPECTED=$RES/lists/expected-live.txt
expected_live "$LAYOUT" >"$EXPECTED"
N_LIVE=$(wc -l <"$EXPECTED")
[[ $N_LIVE -lt $N_BLOBS ]] || die "the input has no garbage ($N_LIVE live of $N_BLOBS blobs)"

{
    env_host
    env_strata
    echo "umoci: $(umoci --version)"
    echo "source tree: $SOURCE_DESC"
    echo "layout: $LAYOUT"
    echo "layout: $N_TAGS index entries, $N_BLOBS blobs, $BYTES bytes; largest blob $BIG bytes"
    env_load
    echo "garbage: untagged $(paste -sd' ' "$LAYOUT.untagged"); gc must keep $N_LIVE blobs, remove $((N_BLOBS - N_LIVE))"
} | tee "$RES/environment.txt" >&2

# ---------------------------------------------------------------- 3. gc: strata vs umoci
COPY=$W/scratch/layout
check_gc() {
    local tag=$1
    ls "$COPY/blobs/sha256" >"$RES/lists/$tag.txt"
    if ! cmp -s "$RES/lists/$tag.txt" "$EXPECTED"; then
        echo "blob set differs from the expected live set (diff $RES/lists/$tag.txt $EXPECTED)"
        return 1
    fi
    # No temp directories left behind either.
    if compgen -G "$COPY/.umoci-*" >/dev/null; then echo "left .umoci-* temp dirs"; return 1; fi
    echo "same-blobs($N_LIVE)"
}
run_gc() {
    local round=$1 tool=$2
    aside "$COPY"
    cp -a "$LAYOUT" "$COPY"
    sync
    warm_layout "$COPY"
    case $tool in
        strata) timed_check gc "$round" strata check_gc "$STRATA" gc "$COPY" ;;
        umoci) timed_check gc "$round" umoci check_gc umoci gc --layout "$COPY" ;;
    esac
}

say "gc: $ROUNDS rounds, alternating strata/umoci (A B B A ...), fresh copy each run"
printf '%-6s %12s %12s %10s\n' round "strata gc s" "umoci gc s" ratio >&2
RATIOS=$RES/gc-ratios.txt
: >"$RATIOS"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        ts=$(run_gc "$r" strata); tu=$(run_gc "$r" umoci)
    else
        tu=$(run_gc "$r" umoci); ts=$(run_gc "$r" strata)
    fi
    ratio=$(pair_ratio "$ts" "$tu")
    echo "$ratio" >>"$RATIOS"
    printf '%-6s %12.4f %12.4f %10.3f\n' "$r" "$ts" "$tu" "$ratio" >&2
done
# Both tools must also have agreed with each other on every run (implied by the check
# against the jq-computed set, restated here for the record).
sort -u "$RES"/lists/gc-*.txt | cmp -s - "$EXPECTED" || die "gc runs disagree on the blob set"
aside "$COPY"

# A gc'd copy must pass strata fsck with nothing unreferenced (untimed check).
cp -a "$LAYOUT" "$COPY"
"$STRATA" gc "$COPY" >/dev/null
"$STRATA" fsck "$COPY" >"$RES/out/fsck-after-gc.txt" 2>&1 || die "strata fsck fails after strata gc: $RES/out/fsck-after-gc.txt"
grep -q ' 0 unreferenced' "$RES/out/fsck-after-gc.txt" || die "blobs still unreferenced after gc: $RES/out/fsck-after-gc.txt"
aside "$COPY"

# ---------------------------------------------------------------- 4. fsck vs sha256sum / openssl
FCOPY=$W/scratch/fsck-layout
aside "$FCOPY"
cp -a "$LAYOUT" "$FCOPY"
sync
check_fsck() {
    local f=$RES/out/$1.stdout
    grep -q "^ok: $N_BLOBS blobs" "$f" || { echo "unexpected fsck output: $(head -c 300 "$f")"; return 1; }
    echo "ok($N_BLOBS)"
}
# Every hash printed must equal the file name it was computed for.
check_sha256sum() {
    local bad
    bad=$(awk '{n = $2; sub(/.*\//, "", n); if (n != $1) b++; c++} END {print (c == '"$N_BLOBS"' ? 0 + b : "count " c)}' "$RES/out/$1.stdout")
    [[ $bad == 0 ]] || { echo "mismatch: $bad"; return 1; }
    echo "hashes-match($N_BLOBS)"
}
check_openssl() {
    local bad
    bad=$(sed -E 's/^[^(]*\((.*)\)= ([0-9a-f]+)$/\1 \2/' "$RES/out/$1.stdout" |
        awk '{n = $1; sub(/.*\//, "", n); if (n != $2) b++; c++} END {print (c == '"$N_BLOBS"' ? 0 + b : "count " c)}')
    [[ $bad == 0 ]] || { echo "mismatch: $bad"; return 1; }
    echo "hashes-match($N_BLOBS)"
}
run_hash() {
    local round=$1 tool=$2
    warm_layout "$FCOPY"
    case $tool in
        strata) timed_check fsck "$round" strata check_fsck "$STRATA" fsck --no-layers "$FCOPY" ;;
        sha256sum) timed_check fsck "$round" sha256sum check_sha256sum sh -c 'cd "$1" && exec sha256sum blobs/sha256/*' sh "$FCOPY" ;;
        openssl) timed_check fsck "$round" openssl check_openssl sh -c 'cd "$1" && exec openssl sha256 blobs/sha256/*' sh "$FCOPY" ;;
    esac
}
HASHERS=(strata sha256sum)
[[ $HAVE_OPENSSL == 1 ]] && HASHERS+=(openssl)
say "fsck: $FSCK_ROUNDS rounds of ${HASHERS[*]} (order rotates), hot cache, $BYTES bytes of blobs"
for ((r = 1; r <= FSCK_ROUNDS; r++)); do
    n=${#HASHERS[@]}
    line="round $r:"
    for ((k = 0; k < n; k++)); do
        tool=${HASHERS[$(((k + r) % n))]}
        t=$(run_hash "$r" "$tool")
        line+=$(printf ' %s %.4f s' "$tool" "$t")
    done
    echo "$line" >&2
done
aside "$FCOPY"

# ---------------------------------------------------------------- 5. summary
GC_RATIO=$(median <"$RATIOS")
S_GC=$(col gc strata 4 | median); U_GC=$(col gc umoci 4 | median)
S_GC_RSS=$(maxcol gc strata 7); U_GC_RSS=$(maxcol gc umoci 7)
F_S=$(col fsck strata 4 | median); F_SHA=$(col fsck sha256sum 4 | median)
F_S_RSS=$(maxcol fsck strata 7); F_SHA_RSS=$(maxcol fsck sha256sum 7)
gbps() { awk -v b="$BYTES" -v t="$1" 'BEGIN {printf "%.3f", b / 1e9 / t}'; }
{
    echo
    echo "=== strata bench summary ($STAMP) ==="
    echo "source tree: $SOURCE_DESC"
    echo "layout: $N_TAGS index entries, $N_BLOBS blobs, $(mb "$BYTES"); gc removes $((N_BLOBS - N_LIVE))"
    echo
    printf '%-28s %12s %14s %16s\n' "measurement" "median s" "peak RSS (KB)" "note"
    printf '%-28s %12.4f %14s %16s\n' "strata gc" "$S_GC" "$S_GC_RSS" "$ROUNDS runs"
    printf '%-28s %12.4f %14s %16s\n' "umoci gc --layout" "$U_GC" "$U_GC_RSS" "$ROUNDS runs"
    printf '%-28s %12.4f %14s %16s\n' "strata fsck" "$F_S" "$F_S_RSS" "$(gbps "$F_S") GB/s"
    printf '%-28s %12.4f %14s %16s\n' "sha256sum blobs/sha256/*" "$F_SHA" "$F_SHA_RSS" "$(gbps "$F_SHA") GB/s"
    if [[ $HAVE_OPENSSL == 1 ]]; then
        F_O=$(col fsck openssl 4 | median); F_O_RSS=$(maxcol fsck openssl 7)
        printf '%-28s %12.4f %14s %16s\n' "openssl sha256 blobs/sha256/*" "$F_O" "$F_O_RSS" "$(gbps "$F_O") GB/s"
    fi
    echo
    echo "gc ratio strata/umoci, median of $ROUNDS per-pair ratios: $GC_RATIO (per pair: $(paste -sd' ' "$RATIOS"))"
    echo "   goal <= 0.5: $(met "$GC_RATIO" 0.5 le)"
    echo "fsck throughput: $(gbps "$F_S") GB/s of blob data   goal >= 1 GB/s: $(met "$(gbps "$F_S")" 1 ge)"
    echo "fsck time / sha256sum time: $(awk -v a="$F_S" -v b="$F_SHA" 'BEGIN {printf "%.3f", a / b}')"
    if [[ $HAVE_OPENSSL == 1 ]]; then
        echo "fsck time / openssl sha256 time: $(awk -v a="$F_S" -v b="$F_O" 'BEGIN {printf "%.3f", a / b}')"
    fi
    summary_tail
} | tee "$RES/summary.txt"

# Deleting the moved-aside copies last, after all timing.
rm -rf "${TRASH:?}"/*
