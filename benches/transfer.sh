#!/usr/bin/env bash
# Benchmark strata's transfers against skopeo on the same images, in one run:
#   export: strata export L:T -o A.tar          vs  skopeo copy oci:L:T oci-archive:A.tar:T
#   import: strata import A.tar NEW              vs  skopeo copy oci-archive:A.tar:T oci:NEW:T
#   copy:   strata copy L:T NEW (one file system) vs skopeo copy oci:L:T oci:NEW:T
#   copy-verify: the same with strata copy --verify (linked blobs hashed), no goal
# Goals (issue 5): export and import at most 0.7x skopeo, copy at most 0.1x, strata's peak
# memory under 100 MiB. How to measure is /work/shared/BENCHMARKING.md; usage in
# benches/README.md. The input layouts are the ones benches/unpack.sh builds and caches.
#
# Environment (all optional):
#   STRATA=path            strata binary to test (default: cargo build --release of this repo)
#   STRATA_BENCH_DIR=dir   work dir: cached input, scratch, results (/var/tmp/strata-bench)
#   ROUNDS=n               pairs per phase on the minbase image, A B B A ... (default 7)
#   BIG_ROUNDS=n           pairs per phase on the big image (default 3)
#   IMAGES="minbase big"   which cached images to use
#   PHASES="export import copy copy-verify"
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-7}
BIG_ROUNDS=${BIG_ROUNDS:-3}
IMAGES=${IMAGES:-minbase big}
PHASES=${PHASES:-export import copy copy-verify}

need skopeo "apt-get install skopeo"
need jq "apt-get install jq"
need awk
need_time
[[ $ROUNDS -ge 3 && $BIG_ROUNDS -ge 3 ]] || die "ROUNDS and BIG_ROUNDS must be at least 3"
no_colon_in_w "skopeo's oci:PATH:TAG"
# Outputs are moved aside into $W/trash, deleted at the end.
bench_workdir

# ---------------------------------------------------------------- 1. strata binary
# cargo build --release unless STRATA is given (taken silently).
find_strata always quiet
private_strata
trap 'rm -f "$STRATA"' EXIT

# ---------------------------------------------------------------- 2. input (cached by unpack.sh)
declare -A LAYOUT TAG DIGEST BLOBS BYTES NROUNDS
for img in $IMAGES; do
    case $img in
        minbase) L=$W/input/unpack-minbase; NROUNDS[$img]=$ROUNDS ;;
        big) L=$W/input/unpack-big-v1; NROUNDS[$img]=$BIG_ROUNDS ;;
        *) die "unknown image $img (minbase or big)" ;;
    esac
    [[ -f $L.done && -f $L.info ]] || die "$L is not built: run benches/unpack.sh once (as root) to build the cached inputs"
    LAYOUT[$img]=$L
    TAG[$img]=$(sed -n 's/^tag=//p' "$L.info")
    DIGEST[$img]=$(tag_digest "$L" "${TAG[$img]}")
    [[ -n ${DIGEST[$img]} ]] || die "no tag ${TAG[$img]} in $L"
    BLOBS[$img]=$(find "$L/blobs" -type f | wc -l)
    BYTES[$img]=$(blob_bytes "$L")
done

bench_results transfer-
{
    env_host
    echo "file system of $W: $(df -T "$W" | awk 'NR == 2 {print $2}')"
    env_strata
    echo "skopeo: $(skopeo --version)"
    for img in $IMAGES; do
        echo "image $img: ${LAYOUT[$img]}:${TAG[$img]} ${DIGEST[$img]}, ${BLOBS[$img]} blobs, ${BYTES[$img]} bytes"
    done
    env_load
} | tee "$RES/environment.txt" >&2

# The blob set of a layout, for checks.
blob_list() { (cd "$1/blobs/sha256" && ls) | sort; }

# Checks. Each sees $IMG, $OUT (the run's output path); prints a verdict or fails.
# An archive: its index.json names the image by its digest, and it holds every blob.
check_archive() {
    local idx names
    idx=$(tar -xOf "$OUT" index.json) || { echo "no index.json in $OUT"; return 1; }
    [[ $(jq -r '.manifests[0].digest' <<<"$idx") == "${DIGEST[$IMG]}" ]] || { echo "archive names another digest"; return 1; }
    names=$(tar -tf "$OUT" | sed -n 's|^blobs/sha256/\(.\+\)$|\1|p' | sort)
    [[ $names == "$(blob_list "${LAYOUT[$IMG]}")" ]] || { echo "archive blobs differ from the layout's"; return 1; }
    echo "archive-ok($(wc -l <<<"$names") blobs)"
}
# A layout: the tag names the same digest and the same blobs are there, and, for strata,
# fsck passes (untimed).
check_layout() {
    [[ $(tag_digest "$OUT" "${TAG[$IMG]}") == "${DIGEST[$IMG]}" ]] || { echo "tag names another digest"; return 1; }
    [[ $(blob_list "$OUT") == "$(blob_list "${LAYOUT[$IMG]}")" ]] || { echo "blob set differs"; return 1; }
    echo "same-digest-and-blobs"
}
check_export() {
    check_archive || return 1
    # strata's archives are deterministic: every run gives the first run's bytes (kept in a
    # file: checks run in the subshell of each timed run).
    if [[ $1 == *-strata ]]; then
        local sum first=$RES/lists/$IMG-export.sha256
        sum=$(sha256sum <"$OUT" | cut -c1-64)
        if [[ ! -f $first ]]; then echo "$sum" >"$first"; elif [[ $sum != "$(cat "$first")" ]]; then echo "archive bytes differ between runs"; return 1; fi
    fi
}
declare -A ARCHIVE
check_import() { check_layout; }
check_copy() {
    check_layout || return 1
    if [[ $1 == *-strata ]]; then
        local a b; a=$(stat -c %i "${LAYOUT[$IMG]}/blobs/sha256/${DIGEST[$IMG]#sha256:}"); b=$(stat -c %i "$OUT/blobs/sha256/${DIGEST[$IMG]#sha256:}")
        [[ $a == "$b" ]] && echo "linked" || echo "copied"
    fi
}

SCR=$W/scratch/transfer
aside "$SCR"; mkdir -p "$SCR"

run_one() {
    local phase=$1 round=$2 tool=$3 L=${LAYOUT[$IMG]} T=${TAG[$IMG]}
    sync
    warm_layout "$L"
    case $phase in
        export)
            OUT=$SCR/$IMG-export-$round-$tool.tar; aside "$OUT"
            case $tool in
                strata) timed_check "$IMG-export" "$round" strata check_export "$STRATA" export "$L:$T" -o "$OUT" ;;
                skopeo) timed_check "$IMG-export" "$round" skopeo check_export skopeo copy -q "oci:$L:$T" "oci-archive:$OUT:$T" ;;
            esac ;;
        import)
            cat "${ARCHIVE[$IMG]}" >/dev/null
            OUT=$SCR/$IMG-import-$round-$tool; aside "$OUT"
            case $tool in
                strata) timed_check "$IMG-import" "$round" strata check_import "$STRATA" import "${ARCHIVE[$IMG]}" "$OUT" ;;
                skopeo) timed_check "$IMG-import" "$round" skopeo check_import skopeo copy -q "oci-archive:${ARCHIVE[$IMG]}:$T" "oci:$OUT:$T" ;;
            esac ;;
        copy | copy-verify)
            OUT=$SCR/$IMG-$phase-$round-$tool; aside "$OUT"
            local verify=(); [[ $phase == copy-verify ]] && verify=(--verify)
            case $tool in
                strata) timed_check "$IMG-$phase" "$round" strata check_copy "$STRATA" copy "${verify[@]}" "$L:$T" "$OUT" ;;
                skopeo) timed_check "$IMG-$phase" "$round" skopeo check_copy skopeo copy -q "oci:$L:$T" "oci:$OUT:$T" ;;
            esac ;;
    esac
}

for IMG in $IMAGES; do
    # The archive both importers read: strata's export (skopeo reads it, as the tests check).
    ARCHIVE[$IMG]=$SCR/$IMG-input.tar
    "$STRATA" export "${LAYOUT[$IMG]}:${TAG[$IMG]}" -o "${ARCHIVE[$IMG]}" >/dev/null
    for phase in $PHASES; do
        n=${NROUNDS[$IMG]}
        say "$IMG $phase: $n rounds, alternating strata/skopeo (A B B A ...)"
        printf '%-6s %12s %12s %10s\n' round "strata s" "skopeo s" ratio >&2
        RATIOS=$RES/ratios-$IMG-$phase.txt
        : >"$RATIOS"
        for ((r = 1; r <= n; r++)); do
            if ((r % 2)); then
                ts=$(run_one "$phase" "$r" strata); tk=$(run_one "$phase" "$r" skopeo)
            else
                tk=$(run_one "$phase" "$r" skopeo); ts=$(run_one "$phase" "$r" strata)
            fi
            ratio=$(pair_ratio "$ts" "$tk")
            echo "$ratio" >>"$RATIOS"
            printf '%-6s %12.4f %12.4f %10.3f\n' "$r" "$ts" "$tk" "$ratio" >&2
        done
    done
    # An imported layout must pass strata fsck (untimed).
    if [[ " $PHASES " == *" import "* ]]; then
        "$STRATA" fsck "$SCR/$IMG-import-1-strata" >"$RES/out/fsck-$IMG-import.txt" 2>&1 || die "strata fsck fails on an imported layout: $RES/out/fsck-$IMG-import.txt"
    fi
done

# ---------------------------------------------------------------- 3. summary
goal() { case $1 in copy) echo 0.1 ;; copy-verify) echo none ;; *) echo 0.7 ;; esac; }
verdict() {
    [[ $2 == none ]] && { echo "no goal (--verify hashes every linked blob)"; return; }
    echo "goal <= $2: $(met "$1" "$2")"
}
MAXRSS=$(awk -F'\t' 'NR > 1 && $3 == "strata" {if ($7 > m) m = $7} END {print m + 0}' "$LOG")
{
    echo
    echo "=== strata transfer bench summary ($STAMP) ==="
    printf '%-20s %-8s %10s %10s %10s %12s %12s\n' image.phase tool "median s" "user s" "sys s" "peak RSS KB" check
    for IMG in $IMAGES; do
        for phase in $PHASES; do
            for tool in strata skopeo; do
                p=$IMG-$phase
                printf '%-20s %-8s %10.4f %10.2f %10.2f %12s %12s\n' "$p" "$tool" \
                    "$(col "$p" "$tool" 4 | median)" "$(col "$p" "$tool" 5 | median)" "$(col "$p" "$tool" 6 | median)" \
                    "$(maxcol "$p" "$tool" 7)" "$(col "$p" "$tool" 8 | sort -u | paste -sd,)"
            done
        done
    done
    echo
    for IMG in $IMAGES; do
        for phase in $PHASES; do
            r=$(median <"$RES/ratios-$IMG-$phase.txt")
            echo "$IMG $phase strata/skopeo, median of ${NROUNDS[$IMG]} per-pair ratios: $r (per pair: $(paste -sd' ' "$RES/ratios-$IMG-$phase.txt"))   $(verdict "$r" "$(goal "$phase")")"
        done
    done
    echo "strata peak RSS over all runs: $MAXRSS KB   goal < 100 MiB: $(met "$MAXRSS" 102400 lt)"
    summary_tail
} | tee "$RES/summary.txt"

aside "$SCR"
# Deleting the moved-aside outputs last, after all timing.
rm -rf "${TRASH:?}"/*
