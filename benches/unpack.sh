#!/usr/bin/env bash
# Benchmark `strata unpack` against `umoci unpack` (as root, and rootless as nobody) and
# against `gzip -dc LAYER | tar -x`, on two images: the Debian minbase rootfs (one ~51 MB
# gzip layer, 6,675 entries) and a synthetic ~1 GiB image with ~70,000 entries.
# How to measure is /work/shared/BENCHMARKING.md; see benches/README.md for usage.
# Must run as root: the rootless runs use setpriv to become nobody (65534).
#
# Environment (all optional):
#   STRATA=path            strata binary to test (default: target/release/strata of this repo,
#                          built with cargo build --release only if missing)
#   STRATA_BENCH_DIR=dir   work dir: cached input, scratch, results (/var/tmp/strata-bench)
#   ROUNDS=n               pairs per minbase phase, A B B A ... (default 7, at least 3)
#   BIG_ROUNDS=n           pairs per big-image phase (default 3, at least 3)
#   PHASES="..."           phases to run, in order (default: all five)
#                          minbase-root minbase-rootless minbase-tar big-root big-rootless
#   SCRATCH_FS=loop|dir    where the outputs go (default loop): loop = a fresh ext4 file system
#                          (with a journal) in a SCRATCH_GB image under $W/scratch, loop-mounted,
#                          made anew at each purge; dir = a directory on $W's file system
#   SCRATCH_GB=n           size of the loop image, sparse (default 12)
#   TRASH_MAX_GB=n         moved-aside outputs kept before a purge (default 8)
#   SETTLE=s               SCRATCH_FS=dir: seconds to wait after a purge (default 360)
#   SUITE=bookworm MIRROR=url   debootstrap suite and mirror (mirror: debootstrap's default)
#   FALLBACK_SRC=dir       tree copied as the rootfs when debootstrap fails (/usr)
#   REBUILD_INPUT=1        rebuild both cached layouts even if present
#   REBUILD_ROOTFS=1       also redo debootstrap (implies REBUILD_INPUT=1)
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-7}
BIG_ROUNDS=${BIG_ROUNDS:-3}
PHASES=${PHASES:-minbase-root minbase-rootless minbase-tar big-root big-rootless}
SCRATCH_FS=${SCRATCH_FS:-loop}
SCRATCH_GB=${SCRATCH_GB:-12}
TRASH_MAX_GB=${TRASH_MAX_GB:-8}
SETTLE=${SETTLE:-360}
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
# Version of the synthetic tree: bump it when gen_big changes, to rebuild the cached image.
BIG_VERSION=1

[[ $(id -u) -eq 0 ]] || die "run as root (rootless runs switch to nobody with setpriv; root runs need root)"
need umoci "apt-get install umoci"
need jq "apt-get install jq"
need setpriv "util-linux"
need getfattr "apt-get install attr"
need python3
need gzip
need tar
need md5sum
need awk
need_time
need_rounds ROUNDS BIG_ROUNDS
case $SCRATCH_FS in
    loop) for c in losetup mkfs.ext4 mount umount truncate; do need "$c" "or SCRATCH_FS=dir"; done ;;
    dir) ;;
    *) die "SCRATCH_FS must be loop or dir (got $SCRATCH_FS)" ;;
esac
for p in $PHASES; do
    case $p in minbase-root | minbase-rootless | minbase-tar | big-root | big-rootless) ;;
        *) die "unknown phase $p" ;;
    esac
done
no_colon_in_w "umoci's --image LAYOUT:TAG"
# Our own trash subdirectory for the input builds, made again if gone (gc_fsck.sh empties
# $W/trash when it ends).
bench_workdir unpack remake

# The timed runs write into SCR: root/, rootless/ (0777, for nobody), and trash/ where each
# output is moved after its check. Deleting files is what disturbs later runs: the root
# file system here is ext4 without a journal, where the inode allocator skips inodes
# deleted less than 60 s ago, or 360 s while their inode table block is dirty, reading the
# inode table block of each one it skips (recently_deleted() in fs/ext4/ialloc.c). For a
# minute or more after tens of thousands of files are deleted (by this script or by anyone
# else, e.g. another benchmark), creating files in the same inode groups costs several
# times more kernel time (perf: recently_deleted, find_get_block_common). So by default
# the outputs go to a file system of their own, with a journal (no such check), made anew
# by each purge: deleting its image is deleting one file.
SCR=$W/scratch/unpack.$$
IMG=$W/scratch/unpack.$$.img
SCR_MOUNTED=0
TRASH_RUNS_BYTES=0
scratch_up() {
    if [[ $SCRATCH_FS == loop ]]; then
        rm -f "$IMG"
        truncate -s "${SCRATCH_GB}G" "$IMG"
        mkfs.ext4 -q -F -i 8192 -E lazy_itable_init=0,lazy_journal_init=0 "$IMG"
        mkdir -p "$SCR"
        mount -o loop "$IMG" "$SCR"
        SCR_MOUNTED=1
    fi
    mkdir -p "$SCR/root" "$SCR/rootless" "$SCR/trash"
    chmod 0755 "$SCR"
    chmod 0777 "$SCR/rootless"
}
scratch_down() {
    if [[ $SCRATCH_FS == loop ]]; then
        if [[ $SCR_MOUNTED == 1 ]]; then umount "$SCR" && SCR_MOUNTED=0; fi
        rm -f "$IMG"
        rmdir "$SCR" 2>/dev/null || true
    else
        rm -rf "${SCR:?}"
    fi
}
# Delete the outputs moved aside. loop: a new file system (a few seconds). dir: rm -rf, then,
# unless told "nowait", sync and wait SETTLE seconds (see above).
purge() {
    local why=$1 wait=${2:-wait}
    say "purging moved-aside outputs ($why)"
    if [[ $SCRATCH_FS == loop ]]; then
        scratch_down
        sync
        scratch_up
    else
        rm -rf "${SCR:?}"/trash/*
        date +%s >"$W/trash/.last-purge"
        if [[ $wait == wait ]]; then
            sync
            say "waiting ${SETTLE}s: ext4 without a journal skips recently deleted inodes"
            sleep "$SETTLE"
        fi
    fi
    TRASH_RUNS_BYTES=0
}

# ---------------------------------------------------------------- 1. strata binary
# target/release/strata, built only if missing, unless STRATA is given. The private copy is
# world-readable and -executable: the rootless runs execute it as nobody.
find_strata missing
private_strata shared
trap 'rm -f "$STRATA"; scratch_down; rm -rf "${TRASH:?}"' EXIT
UMOCI=$(command -v umoci)

# ---------------------------------------------------------------- 2. input (cached)
# 2a. The Debian minbase rootfs (benches/lib.sh: one recipe and cache for every script).
bench_rootfs

# build_layout NAME TAG FILLFN: layout $W/input/unpack-NAME with one image TAG, one gzip layer
# made by umoci repack from a bundle whose rootfs FILLFN fills. Writes NAME.done, NAME.info.
build_layout() {
    local name=$1 tag=$2 fill=$3
    local out=$W/input/unpack-$name L=$W/input/unpack-$name.tmp B=$W/input/unpack-$name.bundle
    if [[ ${REBUILD_INPUT:-0} != 1 && -f $out.done ]]; then return 0; fi
    BUILT_INPUT=1
    aside "$out"; aside "$L"; aside "$B"; rm -f "$out.done"
    say "building the $name layout (umoci init/new/unpack, fill the rootfs, umoci repack)"
    umoci_bundle "$L" "$B"
    "$fill" "$B/rootfs"
    local entries bytes disk
    entries=$(cd "$B/rootfs" && find . -mindepth 1 | wc -l)
    bytes=$(du -sb "$B/rootfs" | cut -f1)
    disk=$(du -s -B1 "$B/rootfs" | cut -f1)
    umoci_one_layer "$L" "$tag" "$B" "$name"
    # The rootless runs read the layout as nobody.
    chmod -R a+rX "$L"
    # Device nodes in the layer: rootless unpacks write placeholders for them (see check).
    gzip -dc "$L/blobs/sha256/$LAYER_HEX" | tar -tv | awk '$1 ~ /^[cb]/ {sub(/^\.\//, "", $NF); print $NF}' | sort >"$out.devices"
    {
        echo "tag=$tag"
        echo "layer=$LAYER_HEX"
        echo "layer_bytes=$(stat -c %s "$L/blobs/sha256/$LAYER_HEX")"
        echo "entries=$entries"
        echo "tree_bytes=$bytes"
        echo "tree_disk=$disk"
    } >"$out.info"
    mv "$L" "$out"
    touch "$out.done"
    rm -rf "${TRASH:?}"/*
}
fill_minbase() { cp -a "$ROOTFS/." "$1/"; }
fill_big() { gen_big_tree "$1"; }
build_layout minbase minbase fill_minbase
build_layout "big-v$BIG_VERSION" big fill_big

declare -A LAYOUT TAG LAYER LAYER_BYTES ENTRIES TREE_BYTES TREE_DISK DEVICES
for img in minbase big; do
    name=$img; [[ $img == big ]] && name=big-v$BIG_VERSION
    LAYOUT[$img]=$W/input/unpack-$name
    DEVICES[$img]=$W/input/unpack-$name.devices
    TAG[$img]=$(sed -n 's/^tag=//p' "${LAYOUT[$img]}.info")
    LAYER[$img]=${LAYOUT[$img]}/blobs/sha256/$(sed -n 's/^layer=//p' "${LAYOUT[$img]}.info")
    LAYER_BYTES[$img]=$(sed -n 's/^layer_bytes=//p' "${LAYOUT[$img]}.info")
    ENTRIES[$img]=$(sed -n 's/^entries=//p' "${LAYOUT[$img]}.info")
    TREE_BYTES[$img]=$(sed -n 's/^tree_bytes=//p' "${LAYOUT[$img]}.info")
    # Disk use of one unpacked tree (for the trash budget); older caches lack it: estimate.
    TREE_DISK[$img]=$(sed -n 's/^tree_disk=//p' "${LAYOUT[$img]}.info")
    [[ -n ${TREE_DISK[$img]} ]] || TREE_DISK[$img]=$((TREE_BYTES[$img] + 2048 * ENTRIES[$img]))
    [[ -f ${LAYER[$img]} ]] || die "missing layer blob ${LAYER[$img]} (REBUILD_INPUT=1)"
done

# ---------------------------------------------------------------- 3. results, helpers
bench_results unpack-
if [[ $SCRATCH_FS == loop ]]; then
    # Room for the trash budget plus the run in progress and the file system's own metadata.
    need_gb=$(((TRASH_MAX_GB * 1000000000 + TREE_DISK[big] + 2000000000) / 1073741824 + 1))
    ((SCRATCH_GB >= need_gb)) || die "SCRATCH_GB=$SCRATCH_GB is too small for TRASH_MAX_GB=$TRASH_MAX_GB (needs $need_gb)"
fi
scratch_up

{
    env_host
    echo "work dir file system: $(findmnt -no FSTYPE,OPTIONS -T "$W" 2>/dev/null || echo '?')"
    if [[ $SCRATCH_FS == loop ]]; then
        echo "outputs: $SCR, a fresh loop-mounted ${SCRATCH_GB}G ext4 image ($(findmnt -no FSTYPE,OPTIONS -T "$SCR"); $(dumpe2fs -h "$IMG" 2>/dev/null | grep -o 'has_journal' || echo 'journal ?'))"
    else
        echo "outputs: $SCR, a directory on the work dir's file system (SETTLE=${SETTLE}s after purges)"
    fi
    env_strata
    echo "umoci: $(umoci --version); $(gzip --version | head -1); $(tar --version | head -1)"
    echo "source tree: $SOURCE_DESC"
    for img in minbase big; do
        echo "image $img: ${LAYOUT[$img]}:${TAG[$img]}, ${ENTRIES[$img]} entries, $(mb "${TREE_BYTES[$img]}") tree, $(mb "${LAYER_BYTES[$img]}") gzip layer, $(wc -l <"${DEVICES[$img]}") device nodes"
    done
    echo "phases: $PHASES; $ROUNDS pairs per minbase phase, $BIG_ROUNDS per big phase"
    env_load
} | tee "$RES/environment.txt" >&2

# Warm the page cache: the layout, the binaries.
warm() { cat "$1/index.json" "$1/oci-layout" "$1"/blobs/sha256/* "$STRATA" "$UMOCI" >/dev/null; }

# list_tree ROOTFS: one line per entry, tab-separated: path type size mode uid gid mtime
# symlink-target. The rootfs root itself is listed without its mtime (a bundle detail).
list_tree() {
    (
        cd "$1"
        find . -maxdepth 0 -printf '<root>\t%y\t-\t%m\t%U\t%G\t-\t\n'
        find . -mindepth 1 -printf '%P\t%y\t%s\t%m\t%U\t%G\t%T@\t%l\n' | sort
    )
}
# Digest of every regular file's content, and of every xattr (sorted by path).
content_digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r md5sum | md5sum | cut -c1-32); }
xattr_digest() {
    (cd "$1" && getfattr -R -P -h -d -m - -e hex . 2>/dev/null |
        awk '/^# file: / {f = substr($0, 9); next} /=/ {print f "\t" $0}' | sort | md5sum | cut -c1-32)
}

# check PHASE ROUND TOOL ROOTFS: the output must match the phase's reference (the first run's
# output, whichever tool made it): same listing, same file contents, same xattrs.
#  - rootless: a device node becomes an empty placeholder file; umoci 0.4.7 gives it the
#    header's mode, strata mode 0 (documented difference), so the mode of the layer's device
#    paths is masked in rootless listings; the count of masked paths is reported.
#  - gzip|tar: compared without mtimes (GNU tar 1.34 leaves some directories with the time of
#    extraction) and without xattrs (not asked for), against the minbase-root reference.
# Sets CHECK.
check() {
    local phase=$1 round=$2 tool=$3 rootfs=$4 img=${1%%-*} mode=${1#*-}
    local key=$img-$mode list=$RES/lists/$1-$2-$3.list view c x
    [[ $mode == tar ]] && key=$img-root
    list_tree "$rootfs" >"$list"
    if [[ $mode == rootless && -s ${DEVICES[$img]} ]]; then
        awk -F'\t' -v OFS='\t' 'NR == FNR {dev[$0] = 1; next} ($1 in dev) {$4 = "devmode"} {print}' \
            "${DEVICES[$img]}" "$list" >"$list.m"
        mv "$list.m" "$list"
    fi
    c=$(content_digest "$rootfs")
    if [[ $tool == tar ]]; then
        x=-
        view=nomtime
    else
        x=$(xattr_digest "$rootfs")
        view=full
    fi
    local ref=$RES/lists/ref-$key
    if [[ ! -f $ref.full && $view == full ]]; then
        cp "$list" "$ref.full"
        echo "$c" >"$ref.content"
        echo "$x" >"$ref.xattr"
        echo "$1-$2-$3" >"$ref.from"
    fi
    [[ -f $ref.full ]] || die "no $key reference before $tool's run (strata runs first in each phase)"
    local mine=$list theirs=$ref.full
    if [[ $view == nomtime ]]; then
        awk -F'\t' -v OFS='\t' '{$7 = "-"; print}' "$list" >"$list.nomtime"
        awk -F'\t' -v OFS='\t' '{$7 = "-"; print}' "$ref.full" >"$ref.nomtime"
        mine=$list.nomtime theirs=$ref.nomtime
    fi
    if ! cmp -s "$mine" "$theirs"; then
        diff "$theirs" "$mine" >"$list.diff" || true
        printf '\nunpack.sh: OUTPUT MISMATCH: %s (%s round %s) differs from %s (%s).\n' \
            "$tool" "$phase" "$round" "$(cat "$ref.from")" "$view listing" >&2
        printf 'first differences (< reference, > %s), full diff in %s:\n' "$tool" "$list.diff" >&2
        head -n 20 "$list.diff" >&2
        die "output check failed"
    fi
    [[ $c == "$(cat "$ref.content")" ]] ||
        die "OUTPUT MISMATCH: file contents of $tool ($phase round $round) differ from $(cat "$ref.from")'s"
    if [[ $x != - && $x != "$(cat "$ref.xattr")" ]]; then
        die "OUTPUT MISMATCH: xattrs of $tool ($phase round $round) differ from $(cat "$ref.from")'s"
    fi
    local what
    what="$(($(wc -l <"$list") - 1)) entries,$view,content"
    [[ $x == - ]] || what+=",xattrs"
    [[ $mode != rootless ]] || what+=",devmode-masked:$(wc -l <"${DEVICES[$img]}")"
    CHECK="same-as-$(cat "$ref.from")($what)"
    # Keep the reference and the mismatching listings only.
    [[ $1-$2-$3 == "$(cat "$ref.from")" ]] || rm -f "$list" "$list.nomtime"
}

# run_one PHASE ROUND TOOL: prepare (untimed), time one unpack, check it, move it aside.
run_one() {
    local phase=$1 round=$2 tool=$3 img=${1%%-*} mode=${1#*-}
    local L=${LAYOUT[$img]} tag=${TAG[$img]} out rootfs
    local dir=$SCR/root
    [[ $mode == rootless ]] && dir=$SCR/rootless
    out=$dir/$phase-$round-$tool
    rootfs=$out/rootfs
    [[ $tool == tar ]] && { mkdir "$out"; rootfs=$out; }
    sync
    warm "$L"
    case $mode-$tool in
        root-strata | tar-strata) timed "$phase" "$round" "$tool" "$STRATA" unpack "$L:$tag" "$out" ;;
        root-umoci) timed "$phase" "$round" "$tool" umoci unpack --image "$L:$tag" "$out" ;;
        rootless-strata) timed "$phase" "$round" "$tool" "${NOBODY[@]}" "$STRATA" unpack --rootless "$L:$tag" "$out" ;;
        rootless-umoci) timed "$phase" "$round" "$tool" "${NOBODY[@]}" umoci unpack --rootless --image "$L:$tag" "$out" ;;
        tar-tar) timed "$phase" "$round" "$tool" sh -c 'gzip -dc "$1" | tar -x -C "$2"' sh "${LAYER[$img]}" "$out" ;;
        *) die "no command for $mode-$tool" ;;
    esac
    check "$phase" "$round" "$tool" "$rootfs"
    record "$phase" "$round" "$tool"
    mv "$out" "$SCR/trash/"
    TRASH_RUNS_BYTES=$((TRASH_RUNS_BYTES + TREE_DISK[$img]))
}

# ---------------------------------------------------------------- 4. timed phases
# Each pair is strata and the peer, in the order A B B A ... (strata first in odd rounds).
if [[ $SCRATCH_FS == loop ]]; then
    sync
else
    # dir: wait after an input build, or out the rest after a previous run's purge.
    settle_wait "a previous run purged its outputs just now"
fi
for phase in $PHASES; do
    img=${phase%%-*} mode=${phase#*-}
    peer=umoci; [[ $mode == tar ]] && peer=tar
    n=$ROUNDS; [[ $img == big ]] && n=$BIG_ROUNDS
    pair_bytes=$((2 * TREE_DISK[$img]))
    # loop: each phase on a fresh file system. dir: purge before the phase if its outputs
    # would not fit in the trash budget, so that purges (and their waits) fall between
    # phases rather than inside one.
    if [[ $SCRATCH_FS == loop ]] && ((TRASH_RUNS_BYTES > 0)); then
        purge "before $phase: a fresh file system for each phase"
    elif ((TRASH_RUNS_BYTES + n * pair_bytes > TRASH_MAX_GB * 1000000000)); then
        purge "before $phase, over TRASH_MAX_GB=$TRASH_MAX_GB"
    fi
    say "$phase: $n pairs of strata and $peer, A B B A ..."
    printf '%-18s %5s %10s %10s %8s %12s %12s\n' phase round "strata s" "$peer s" ratio "strata KB" "$peer KB" >&2
    : >"$RES/ratios-$phase.txt"
    for ((r = 1; r <= n; r++)); do
        if ((TRASH_RUNS_BYTES + pair_bytes > TRASH_MAX_GB * 1000000000)); then
            purge "over TRASH_MAX_GB=$TRASH_MAX_GB"
        fi
        if ((r % 2)); then
            run_one "$phase" "$r" strata; ts=$WALL rs=$RSS
            run_one "$phase" "$r" "$peer"; tp=$WALL rp=$RSS
        else
            run_one "$phase" "$r" "$peer"; tp=$WALL rp=$RSS
            run_one "$phase" "$r" strata; ts=$WALL rs=$RSS
        fi
        ratio=$(pair_ratio "$ts" "$tp")
        echo "$ratio" >>"$RES/ratios-$phase.txt"
        printf '%-18s %5s %10.3f %10.3f %8.3f %12s %12s\n' "$phase" "$r" "$ts" "$tp" "$ratio" "$rs" "$rp" >&2
    done
done
# loop: unmount and delete the image. dir: delete, and record when (no wait: nothing timed).
[[ $SCRATCH_FS == loop ]] || purge "end of the timed runs" nowait
scratch_down

# ---------------------------------------------------------------- 5. summary
{
    echo
    echo "=== strata unpack bench summary ($STAMP) ==="
    echo "source tree: $SOURCE_DESC"
    echo "outputs: $(grep '^outputs: ' "$RES/environment.txt" | cut -d' ' -f3-)"
    for img in minbase big; do
        echo "image $img: ${ENTRIES[$img]} entries, $(mb "${TREE_BYTES[$img]}") tree, $(mb "${LAYER_BYTES[$img]}") gzip layer"
    done
    echo
    printf '%-18s %-8s %5s %10s %10s %10s %14s\n' phase tool runs "median s" "user s" "sys s" "peak RSS (KB)"
    for phase in $PHASES; do
        peer=umoci; [[ $phase == *-tar ]] && peer=tar
        for tool in strata $peer; do
            label=$tool; [[ $tool == tar ]] && label='gzip|tar'
            printf '%-18s %-8s %5s %10.3f %10.3f %10.3f %14s\n' "$phase" "$label" "$(col "$phase" "$tool" 4 | wc -l)" \
                "$(col "$phase" "$tool" 4 | median)" "$(col "$phase" "$tool" 5 | median)" \
                "$(col "$phase" "$tool" 6 | median)" "$(maxcol "$phase" "$tool" 7)"
        done
    done
    echo
    echo "median of the per-pair ratios (goal beside each):"
    for phase in $PHASES; do
        q=$(median <"$RES/ratios-$phase.txt")
        if [[ $phase == *-tar ]]; then what="strata/(gzip|tar)" goal=1.3; else what="strata/umoci" goal=0.5; fi
        printf '  %-18s %-18s %7.3f   goal <= %-4s %-8s (pairs: %s)\n' "$phase" "$what" "$q" "$goal" \
            "$(met "$q" "$goal" le)" "$(paste -sd' ' "$RES/ratios-$phase.txt")"
    done
    S_RSS=$(awk -F'\t' '$3 == "strata" {print $7}' "$LOG" | sort -n | tail -1)
    printf '  %-37s %7.1f MiB   goal < 100 MiB %s\n' "strata peak RSS, all runs" "$(awk -v k="$S_RSS" 'BEGIN {print k / 1024}')" \
        "$(met "$(awk -v k="$S_RSS" 'BEGIN {print k / 1024}')" 100 lt)"
    echo
    if [[ $PHASES == *-tar* ]]; then
        echo "peak RSS of 'gzip|tar' is the largest process of the pipeline (GNU time on sh -c)"
    fi
    if [[ $PHASES == *rootless* ]]; then
        echo "rootless outputs: the mode of device placeholders is masked (strata 0, umoci the header's)"
    fi
    summary_tail
} | tee "$RES/summary.txt"
