#!/usr/bin/env bash
# Benchmark `strata repack` against `umoci repack`, and `strata build --compress gzip`
# against `tar | gzip -6` and `tar | pigz -6`, per issue 4 (Performance):
#   touch-minbase, touch-big: repack after touching one file, on the Debian minbase bundle
#                             and on a ~1 GiB bundle (goal: strata <= 0.1x umoci)
#   add-tree:                 repack after copying a ~1 GiB tree into the minbase bundle
#                             (goal: strata <= 0.5x umoci)
#   build:                    strata build of the ~1 GiB tree with gzip, in MB/s, against
#                             single-thread gzip -6 and pigz -6 (all cores) on the same tree
# How to measure is /work/shared/BENCHMARKING.md; see benches/README.md for usage.
# Must run as root (umoci unpack without --rootless, device nodes in the trees).
#
# Environment (all optional):
#   STRATA=path            strata binary to test (default: target/release/strata, built with
#                          cargo build --release if missing or older than src/)
#   STRATA_BENCH_DIR=dir   work dir: cached input, scratch, results (/var/tmp/strata-bench)
#   ROUNDS=n               pairs per touch phase, A B B A ... (default 7, at least 3)
#   BIG_ROUNDS=n           pairs for add-tree, rounds for build (default 3, at least 3)
#   PHASES="..."           phases to run, in order (default: touch-minbase touch-big add-tree build)
#   TOUCH_FILE=path        file touched in the rootfs (default etc/debian_version)
#   SETTLE=s               wait after a recent purge of many files (default 65; see README)
#   SUITE=bookworm MIRROR=url   debootstrap suite and mirror (mirror: debootstrap's default)
#   FALLBACK_SRC=dir       tree copied as the rootfs when debootstrap fails (/usr)
#   REBUILD_INPUT=1        rebuild the cached tree and layouts even if present
#   REBUILD_ROOTFS=1       also redo debootstrap (implies REBUILD_INPUT=1)
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-7}
BIG_ROUNDS=${BIG_ROUNDS:-3}
PHASES=${PHASES:-touch-minbase touch-big add-tree build}
TOUCH_FILE=${TOUCH_FILE:-etc/debian_version}
SETTLE=${SETTLE:-65}
# A touch repack's layer must hold the touched file and at most this many entries
# (the file, its parents, and whatever else a tool thinks changed).
TOUCH_MAX_ENTRIES=50
# Where add-tree copies the tree inside the minbase rootfs.
ADD_DIR=srv/strata-bench-added
# Version of the synthetic tree: bump it when gen_tree changes, to rebuild the cached input.
TREE_VERSION=1

[[ $(id -u) -eq 0 ]] || die "run as root (umoci unpack/repack as root; the trees hold device nodes)"
need umoci "apt-get install umoci"
need jq "apt-get install jq"
need python3
need gzip
need tar
need awk
need comm
need_time
need_rounds ROUNDS BIG_ROUNDS
for p in $PHASES; do
    case $p in touch-minbase | touch-big | add-tree | build) ;; *) die "unknown phase $p" ;; esac
done
no_colon_in_w "umoci's --image LAYOUT:TAG"
HAVE_PIGZ=0
if command -v pigz >/dev/null 2>&1; then HAVE_PIGZ=1; else say "WARNING: pigz not found (apt-get install pigz): build is compared with gzip only"; fi

# Our own trash subdirectory (gc_fsck.sh empties $W/trash when it ends).
bench_workdir build_repack

# ---------------------------------------------------------------- 1. strata binary
# target/release/strata, built if missing or older than src/, unless STRATA is given.
find_strata stale
private_strata exec
# On exit (also on an error), remove the copy, our moved-aside outputs and our scratch.
SCR=
trap 'rm -f "$STRATA"; rm -rf "${TRASH:?}" ${SCR:+"$SCR"}' EXIT
UMOCI=$(command -v umoci)

# ---------------------------------------------------------------- 2. input (cached)
# 2a. The Debian minbase rootfs (benches/lib.sh: one recipe and cache for every script).
bench_rootfs

TREE=$W/input/repack-tree-v$TREE_VERSION
if [[ ${REBUILD_INPUT:-0} == 1 || ! -f $TREE.done ]]; then
    BUILT_INPUT=1
    aside "$TREE"; aside "$TREE.tmp"; rm -f "$TREE.done"
    say "generating the ~1 GiB tree $TREE (deterministic; a minute or two)"
    mkdir "$TREE.tmp"
    gen_big_tree "$TREE.tmp"
    {
        echo "entries=$(cd "$TREE.tmp" && find . -mindepth 1 | wc -l)"
        echo "tree_bytes=$(du -sb "$TREE.tmp" | cut -f1)"
        # The uncompressed size of the tree as one tar stream (GNU tar): the MB/s base.
        echo "tar_bytes=$(tar -cf - -C "$TREE.tmp" . | wc -c)"
    } >"$TREE.info"
    mv "$TREE.tmp" "$TREE"
    touch "$TREE.done"
fi
TREE_ENTRIES=$(sed -n 's/^entries=//p' "$TREE.info")
TREE_BYTES=$(sed -n 's/^tree_bytes=//p' "$TREE.info")
TAR_BYTES=$(sed -n 's/^tar_bytes=//p' "$TREE.info")

# build_layout NAME TAG SRC: layout $W/input/repack-NAME with one image TAG, one gzip layer
# made by umoci repack from a bundle whose rootfs is a copy of SRC.
build_layout() {
    local name=$1 tag=$2 src=$3
    local out=$W/input/repack-$name L=$W/input/repack-$name.tmp B=$W/input/repack-$name.bundle
    if [[ ${REBUILD_INPUT:-0} != 1 && -f $out.done ]]; then return 0; fi
    BUILT_INPUT=1
    aside "$out"; aside "$L"; aside "$B"; rm -f "$out.done"
    say "building the $name layout (umoci init/new/unpack, copy $src into the rootfs, umoci repack)"
    umoci_bundle "$L" "$B"
    cp -a "$src/." "$B/rootfs/"
    local entries
    entries=$(cd "$B/rootfs" && find . -mindepth 1 | wc -l)
    umoci_one_layer "$L" "$tag" "$B" "$name"
    {
        echo "tag=$tag"
        echo "layer_bytes=$(stat -c %s "$L/blobs/sha256/$LAYER_HEX")"
        echo "entries=$entries"
        echo "tree_bytes=$(du -sb "$src" | cut -f1)"
    } >"$out.info"
    mv "$L" "$out"
    touch "$out.done"
}
build_layout minbase minbase "$ROOTFS"
build_layout "big-v$TREE_VERSION" big "$TREE"

declare -A LAYOUT TAG LAYER_BYTES ENTRIES IMG_BYTES
for img in minbase big; do
    name=$img; [[ $img == big ]] && name=big-v$TREE_VERSION
    LAYOUT[$img]=$W/input/repack-$name
    TAG[$img]=$(sed -n 's/^tag=//p' "${LAYOUT[$img]}.info")
    LAYER_BYTES[$img]=$(sed -n 's/^layer_bytes=//p' "${LAYOUT[$img]}.info")
    ENTRIES[$img]=$(sed -n 's/^entries=//p' "${LAYOUT[$img]}.info")
    IMG_BYTES[$img]=$(sed -n 's/^tree_bytes=//p' "${LAYOUT[$img]}.info")
done
# Inputs are never written to: every phase works on copies. Drop what the build left aside.
rm -rf "${TRASH:?}"/*

# ---------------------------------------------------------------- 3. results, helpers
bench_results build_repack-
SCR=$W/scratch/build_repack.$$
aside "$SCR"
mkdir -p "$SCR"

{
    env_host
    echo "file system: $(findmnt -no FSTYPE,OPTIONS -T "$W" 2>/dev/null || echo '?')"
    env_strata
    echo "umoci: $(umoci --version); $(gzip --version | head -1); $( ((HAVE_PIGZ)) && pigz --version 2>&1 | head -1 || echo 'no pigz'); $(tar --version | head -1)"
    echo "source tree: $SOURCE_DESC"
    for img in minbase big; do
        echo "image $img: ${LAYOUT[$img]}:${TAG[$img]}, ${ENTRIES[$img]} entries, $(mb "${IMG_BYTES[$img]}") tree, $(mb "${LAYER_BYTES[$img]}") gzip layer"
    done
    echo "added/built tree: $TREE, $TREE_ENTRIES entries, $(mb "$TREE_BYTES") (du -sb), tar stream $(mb "$TAR_BYTES")"
    echo "phases: $PHASES; $ROUNDS pairs per touch phase, $BIG_ROUNDS pairs/rounds for add-tree and build; touched file: $TOUCH_FILE"
    env_load
} | tee "$RES/environment.txt" >&2

# Warm the page cache (untimed): trees are read whole, with their metadata (tar reads every
# file, lstat and xattrs; the pipe through cat stops GNU tar from skipping reads for /dev/null).
warm_tree() { tar -cf - -C "$1" . 2>/dev/null | cat >/dev/null || true; }
warm_bins() { cat "$STRATA" "$UMOCI" >/dev/null; }

manifest_of() { # LAYOUT TAG -> manifest blob path
    local d
    d=$(tag_digest "$1" "$2")
    [[ -n $d && $(wc -l <<<"$d") == 1 ]] || return 1
    echo "$1/blobs/sha256/${d#sha256:}"
}
# layer_list BLOB OUT: the layer's paths (tar -tzf), without ./ and trailing /, sorted.
layer_list() { tar -tzf "$1" | sed -e 's#^\./##' -e 's#/$##' | { grep -v '^\.\?$' || true; } | sort >"$2"; }

# check_repack PHASE ROUND TOOL LAYOUT TAG: the tag must name the base image plus one gzip
# layer; that layer must hold the touched file (touch phases, with at most
# TOUCH_MAX_ENTRIES entries) or every path of the added tree (add-tree). Sets CHECK, NEWLAYER.
check_repack() {
    local phase=$1 round=$2 tool=$3 L=$4 tag=$5
    local m n mt blob list=$RES/lists/$1-$2-$3.list
    m=$(manifest_of "$L" "$tag") || die "$tool ($phase round $round): no single manifest tagged $tag in $L"
    n=$(jq '.layers | length' "$m")
    [[ $n == 2 ]] || die "$tool ($phase round $round): $n layers under $tag, expected the base layer plus one"
    mt=$(jq -r '.layers[1].mediaType' "$m")
    [[ $mt == application/vnd.oci.image.layer.v1.tar+gzip ]] || die "$tool ($phase round $round): new layer is $mt, expected gzip"
    NEWLAYER=$(jq -r '.layers[1].digest' "$m")
    blob=$L/blobs/sha256/${NEWLAYER#sha256:}
    layer_list "$blob" "$list" || die "$tool ($phase round $round): tar -tzf of the new layer failed"
    local count bytes
    count=$(wc -l <"$list")
    bytes=$(stat -c %s "$blob")
    case $phase in
        touch-*)
            grep -qxF "$TOUCH_FILE" "$list" || die "$tool ($phase round $round): the new layer lacks $TOUCH_FILE (list: $list)"
            ((count <= TOUCH_MAX_ENTRIES)) || die "$tool ($phase round $round): the new layer has $count entries (> $TOUCH_MAX_ENTRIES), more than one touched file (list: $list)"
            CHECK="layer-has-$TOUCH_FILE($count-entries,${bytes}B)"
            ;;
        add-tree)
            local missing extra
            missing=$(comm -23 "$RES/lists/add-tree-expected.list" "$list" | wc -l)
            extra=$(comm -13 "$RES/lists/add-tree-expected.list" "$list" | wc -l)
            ((missing == 0)) || die "$tool ($phase round $round): the new layer lacks $missing paths of the added tree (comm -23 $RES/lists/add-tree-expected.list $list)"
            CHECK="layer-has-all-$(wc -l <"$RES/lists/add-tree-expected.list")-added(+$extra-other,${bytes}B)"
            ;;
    esac
    # Keep the first round's listings (and any that differ in length from them).
    if [[ $round != 1 && -f $RES/lists/$phase-1-$tool.list ]] &&
        [[ $(wc -l <"$RES/lists/$phase-1-$tool.list") == "$count" ]]; then rm -f "$list"; fi
}

# ---------------------------------------------------------------- 4. phases
# setup_bundles PHASE IMG: per tool, a private copy of the layout and a bundle unpacked from
# it by that tool (untimed). Sets LS LU BS BU.
setup_bundles() {
    local phase=$1 img=$2 d=$SCR/$1
    mkdir -p "$d"
    LS=$d/layout-strata LU=$d/layout-umoci BS=$d/bundle-strata BU=$d/bundle-umoci
    cp -a "${LAYOUT[$img]}" "$LS"
    cp -a "${LAYOUT[$img]}" "$LU"
    say "$phase: unpacking ${TAG[$img]} with strata and with umoci (untimed)"
    "$STRATA" -q unpack "$LS:${TAG[$img]}" "$BS" >"$RES/out/$phase-setup-strata-unpack.log" 2>&1 ||
        die "strata unpack failed: $RES/out/$phase-setup-strata-unpack.log"
    umoci unpack --image "$LU:${TAG[$img]}" "$BU" >"$RES/out/$phase-setup-umoci-unpack.log" 2>&1 ||
        die "umoci unpack failed: $RES/out/$phase-setup-umoci-unpack.log"
}

# run_repack PHASE ROUND TOOL: prepare (untimed), time one repack, check it.
run_repack() {
    local phase=$1 round=$2 tool=$3 B L tag=$3-$2
    if [[ $tool == strata ]]; then B=$BS L=$LS; else B=$BU L=$LU; fi
    # Fresh bundle state: the bundle still refers to the unpacked image (no --refresh-bundle),
    # so re-touching the same file makes the same change again for every run.
    if [[ $phase == touch-* ]]; then touch "$B/rootfs/$TOUCH_FILE"; fi
    sync
    warm_tree "$B"
    warm_layout "$L"
    warm_bins
    case $tool in
        strata) timed "$phase" "$round" "$tool" "$STRATA" repack --compress gzip --tag "$tag" "$B" ;;
        umoci) timed "$phase" "$round" "$tool" umoci repack --image "$L:$tag" "$B" ;;
    esac
    check_repack "$phase" "$round" "$tool" "$L" "$tag"
    record "$phase" "$round" "$tool"
    if [[ $phase == add-tree ]]; then
        # Drop the ~0.5 GB layer (untimed), so the next run writes its blob anew and the
        # layout does not grow: each tool untags and gcs its own layout.
        if [[ $tool == strata ]]; then
            "$STRATA" -q untag "$L:$tag" >/dev/null && "$STRATA" -q gc "$L" >/dev/null
        else
            umoci rm --image "$L:$tag" && umoci gc --layout "$L"
        fi
        [[ ! -e $L/blobs/sha256/${NEWLAYER#sha256:} ]] || die "$tool ($phase round $round): gc left the new layer"
    fi
}

# Pairs strata/umoci, A B B A ... (strata first in odd rounds).
repack_pairs() {
    local phase=$1 n=$2 r ts tu rs ru ratio
    say "$phase: $n pairs of strata repack and umoci repack, A B B A ..."
    printf '%-14s %5s %10s %10s %8s %12s %12s\n' phase round "strata s" "umoci s" ratio "strata KB" "umoci KB" >&2
    : >"$RES/ratios-$phase.txt"
    for ((r = 1; r <= n; r++)); do
        if ((r % 2)); then
            run_repack "$phase" "$r" strata; ts=$WALL rs=$RSS
            run_repack "$phase" "$r" umoci; tu=$WALL ru=$RSS
        else
            run_repack "$phase" "$r" umoci; tu=$WALL ru=$RSS
            run_repack "$phase" "$r" strata; ts=$WALL rs=$RSS
        fi
        ratio=$(pair_ratio "$ts" "$tu")
        echo "$ratio" >>"$RES/ratios-$phase.txt"
        printf '%-14s %5s %10.3f %10.3f %8.3f %12s %12s\n' "$phase" "$r" "$ts" "$tu" "$ratio" "$rs" "$ru" >&2
    done
}

phase_touch() {
    local phase=$1 img=${1#touch-} n=$ROUNDS
    setup_bundles "$phase" "$img"
    local f
    for f in "$BS/rootfs/$TOUCH_FILE" "$BU/rootfs/$TOUCH_FILE"; do
        [[ -f $f && ! -L $f && $(stat -c %h "$f") == 1 ]] ||
            die "$phase: $f is not a regular single-link file (set TOUCH_FILE)"
    done
    repack_pairs "$phase" "$n"
    aside "$SCR/$phase"
}

phase_add_tree() {
    local phase=add-tree
    setup_bundles "$phase" minbase
    [[ ! -e $BS/rootfs/$ADD_DIR && ! -e $BU/rootfs/$ADD_DIR ]] || die "$ADD_DIR already exists in the minbase rootfs"
    say "$phase: copying $TREE into both rootfs at /$ADD_DIR (untimed)"
    mkdir "$BS/rootfs/$ADD_DIR" "$BU/rootfs/$ADD_DIR"
    cp -a "$TREE/." "$BS/rootfs/$ADD_DIR/"
    cp -a "$TREE/." "$BU/rootfs/$ADD_DIR/"
    # Every path under the added directory must be in each new layer.
    { echo "$ADD_DIR"; (cd "$TREE" && find . -mindepth 1 -printf "$ADD_DIR/%P\n"); } | sort >"$RES/lists/add-tree-expected.list"
    # The same bundle serves every round: nothing refreshes its snapshot or mtree, so each
    # repack sees the same added tree (the previous run's layer is gc'd after its check).
    repack_pairs "$phase" "$BIG_ROUNDS"
    aside "$SCR/$phase"
}

# Build: strata build TREE L:b --compress gzip against tar | gzip -6 and tar | pigz -6 on
# the same tree, in rotating order. MB/s = the tree's tar stream bytes / wall time.
STRATA_LAYER_TAR_BYTES=
run_build() {
    local round=$1 tool=$2 phase=build
    sync
    warm_tree "$TREE"
    warm_bins
    cat "$(command -v gzip)" "$(command -v tar)" >/dev/null
    case $tool in
        strata)
            local out=$SCR/build/layout-$round
            aside "$out"
            timed "$phase" "$round" "$tool" "$STRATA" build --compress gzip "$TREE" "$out:b"
            local m blob list=$RES/lists/build-$round-strata.list
            m=$(manifest_of "$out" b) || die "strata build (round $round): no manifest tagged b"
            [[ $(jq '.layers | length' "$m") == 1 ]] || die "strata build (round $round): expected one layer"
            [[ $(jq -r '.layers[0].mediaType' "$m") == application/vnd.oci.image.layer.v1.tar+gzip ]] || die "strata build (round $round): layer is not gzip"
            blob=$out/blobs/sha256/$(jq -r '.layers[0].digest' "$m" | sed 's/^sha256://')
            layer_list "$blob" "$list" || die "strata build (round $round): tar -tzf of the layer failed"
            if ! cmp -s "$list" "$RES/lists/build-expected.list"; then
                die "strata build (round $round): the layer's paths differ from the tree's (diff $RES/lists/build-expected.list $list)"
            fi
            rm -f "$list"
            if [[ -z $STRATA_LAYER_TAR_BYTES ]]; then
                STRATA_LAYER_TAR_BYTES=$(gzip -dc "$blob" | wc -c)
            fi
            CHECK="layer-has-all-$TREE_ENTRIES-paths($(stat -c %s "$blob")B-gz)"
            aside "$out"
            ;;
        gzip | pigz)
            local z=gzip; [[ $tool == pigz ]] && z=pigz
            timed "$phase" "$round" "$tool" sh -c 'tar -cf - -C "$1" . | '"$z"' -6 -c | wc -c' sh "$TREE"
            local c
            c=$(tr -d ' \n' <"$RES/out/$phase-$round-$tool.stdout")
            [[ $c =~ ^[0-9]+$ && $c -gt $((TAR_BYTES / 20)) ]] || die "$tool (build round $round): implausible output size '$c'"
            CHECK="compressed-${c}B"
            ;;
    esac
    record "$phase" "$round" "$tool"
}

phase_build() {
    mkdir -p "$SCR/build"
    (cd "$TREE" && find . -mindepth 1 -printf '%P\n') | sort >"$RES/lists/build-expected.list"
    local tools=(strata gzip) r k n line
    if ((HAVE_PIGZ)); then tools+=(pigz); fi
    n=${#tools[@]}
    say "build: $BIG_ROUNDS rounds of ${tools[*]} (order rotates), $(mb "$TAR_BYTES") tar stream"
    for ((r = 1; r <= BIG_ROUNDS; r++)); do
        line="build round $r:"
        for ((k = 0; k < n; k++)); do
            tool=${tools[$(((k + r - 1) % n))]}
            run_build "$r" "$tool"
            line+=$(printf '  %s %.3f s (%.1f MB/s, %s KB)' "$tool" "$WALL" "$(awk -v b="$TAR_BYTES" -v t="$WALL" 'BEGIN {print b / 1e6 / t}')" "$RSS")
        done
        echo "$line" >&2
    done
    aside "$SCR/build"
}

# Wait after our input build, and after another script's recent purge (unpack.sh records
# its purges in $W/trash/.last-purge).
settle_wait "a purge happened just now"
for phase in $PHASES; do
    case $phase in
        touch-*) phase_touch "$phase" ;;
        add-tree) phase_add_tree ;;
        build) phase_build ;;
    esac
done
aside "$SCR"

# ---------------------------------------------------------------- 5. summary
mbps() { awk -v b="$TAR_BYTES" -v t="$1" 'BEGIN {printf "%.1f", b / 1e6 / t}'; }
{
    echo
    echo "=== strata build/repack bench summary ($STAMP) ==="
    echo "source tree: $SOURCE_DESC"
    for img in minbase big; do
        echo "image $img: ${ENTRIES[$img]} entries, $(mb "${IMG_BYTES[$img]}") tree, $(mb "${LAYER_BYTES[$img]}") gzip layer"
    done
    echo "added/built tree: $TREE_ENTRIES entries, $(mb "$TREE_BYTES"), tar stream $(mb "$TAR_BYTES")"
    echo
    printf '%-14s %-10s %5s %10s %9s %9s %6s %14s  %s\n' phase tool runs "median s" "user s" "sys s" "CPU%" "peak RSS (KB)" "check (round 1)"
    for phase in $PHASES; do
        tools="strata umoci"
        if [[ $phase == build ]]; then
            tools="strata gzip"
            if ((HAVE_PIGZ)); then tools+=" pigz"; fi
        fi
        for tool in $tools; do
            label=$tool
            [[ $phase == build && $tool != strata ]] && label="tar|$tool"
            w=$(col "$phase" "$tool" 4 | median); u=$(col "$phase" "$tool" 5 | median); s=$(col "$phase" "$tool" 6 | median)
            printf '%-14s %-10s %5s %10.3f %9.3f %9.3f %6.0f %14s  %s\n' "$phase" "$label" "$(col "$phase" "$tool" 4 | wc -l)" \
                "$w" "$u" "$s" "$(awk -v u="$u" -v s="$s" -v w="$w" 'BEGIN {print 100 * (u + s) / w}')" \
                "$(maxcol "$phase" "$tool" 7)" "$(awk -F'\t' -v p="$phase" -v t="$tool" '$1 == p && $2 == 1 && $3 == t {print $8}' "$LOG")"
        done
    done
    echo
    echo "median of the per-pair ratios strata/umoci (goal beside each):"
    for phase in $PHASES; do
        [[ $phase == build ]] && continue
        q=$(median <"$RES/ratios-$phase.txt")
        goal=0.1; [[ $phase == add-tree ]] && goal=0.5
        printf '  %-14s %7.3f   goal <= %-4s %-8s (pairs: %s)\n' "$phase" "$q" "$goal" "$(met "$q" "$goal")" \
            "$(paste -sd' ' "$RES/ratios-$phase.txt")"
    done
    if [[ " $PHASES " == *" build "* ]]; then
        echo
        echo "build throughput (tar stream bytes $(mb "$TAR_BYTES") / median wall time):"
        ws=$(col build strata 4 | median); wg=$(col build gzip 4 | median)
        printf '  %-36s %8s MB/s\n' "strata build --compress gzip" "$(mbps "$ws")"
        printf '  %-36s %8s MB/s\n' "tar | gzip -6 (one core)" "$(mbps "$wg")"
        # Per-round ratios of throughput (rounds run the tools back to back).
        rg=$(paste <(col build strata 4) <(col build gzip 4) | awk '{printf "%.4f\n", $2 / $1}')
        if ((HAVE_PIGZ)); then
            wp=$(col build pigz 4 | median)
            printf '  %-36s %8s MB/s\n' "tar | pigz -6 ($(nproc) cores)" "$(mbps "$wp")"
            rp=$(paste <(col build strata 4) <(col build pigz 4) | awk '{printf "%.4f\n", $2 / $1}')
            printf '  strata MB/s / pigz MB/s, median per round: %.3f (rounds: %s)   goal: close to 1 (two-core compression)\n' \
                "$(median <<<"$rp")" "$(paste -sd' ' <<<"$rp")"
        fi
        printf '  strata MB/s / gzip MB/s, median per round: %.3f (rounds: %s)\n' "$(median <<<"$rg")" "$(paste -sd' ' <<<"$rg")"
        [[ -z $STRATA_LAYER_TAR_BYTES ]] || echo "  (strata's layer uncompressed: $(mb "$STRATA_LAYER_TAR_BYTES"); GNU tar's stream: $(mb "$TAR_BYTES"))"
    fi
    S_RSS=$(awk -F'\t' 'NR > 1 && $3 == "strata" {print $7}' "$LOG" | sort -n | tail -1)
    echo
    echo "strata peak RSS over all runs: $(awk -v k="$S_RSS" 'BEGIN {printf "%.1f MiB", k / 1024}')"
    echo "peak RSS of a tar|gzip pipeline is its largest process (GNU time on sh -c)"
    summary_tail
} | tee "$RES/summary.txt"

# Deleting the moved-aside copies last, after all timing; recorded for the next script's wait.
say "deleting moved-aside bundles and layouts"
rm -rf "${TRASH:?}"/*
date +%s >"$W/trash/.last-purge"
