#!/usr/bin/env bash
# Benchmark the image operations of issue 13 against their yardsticks, in one run:
#   export --format rootfs  vs  gzip -dc of every layer one after the other  (goal <= 1.2x)
#   cat of a file in the top layer                                         (goal < 0.1 s)
#   diff of two images sharing all but a small top layer, the shared layers seen before
#        (the layer cache holds them), vs  the same diff with no cache: every layer read
#        (proportional to the differing layer means far below 1.0x of that)
#   convert --compress zstd  vs  skopeo copy --dest-compress-format zstd oci: oci:  (goal >= 3x faster)
# The image: one gzip layer per source directory (default /usr/share, /usr/bin and
# /usr/include: about 1 GB uncompressed), made by `strata add-layer`, plus a second image
# with one more small layer.
#
# Environment (all optional):
#   STRATA=path            strata binary to test (default: target/release/strata of this
#                          repo, built with cargo build --release only if missing)
#   STRATA_BENCH_DIR=dir   work dir: cached input, scratch, results (/var/tmp/strata-bench)
#   ROUNDS=n               rounds (default 3)
#   SOURCES="dir..."       the directories made into layers
#   REBUILD_INPUT=1        rebuild the cached layout even if present
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-3}
SOURCES=${SOURCES:-/usr/share /usr/bin /usr/include}
need tar
need gzip
need jq "apt-get install jq"
need skopeo "apt-get install skopeo"
need_rounds ROUNDS
no_colon_in_w "skopeo's oci:PATH:TAG"
bench_workdir image-ops
find_strata missing
private_strata
trap 'rm -f "$STRATA"; rm -rf "${TRASH:?}"' EXIT

L=$W/input/image-ops-layout-$(printf '%s' "$SOURCES" | md5sum | cut -c1-8)
if [[ ${REBUILD_INPUT:-0} == 1 || ! -f $L.done ]]; then
    aside "$L"; rm -f "$L.done"
    say "building $L: one gzip layer per directory of $SOURCES, then one small layer"
    "$STRATA" -q new "$L:big"
    for src in $SOURCES; do
        tar -C "$src" --numeric-owner -cf "$W/scratch/layer.tar" .
        "$STRATA" -q add-layer --compress gzip "$L:big" "$W/scratch/layer.tar"
        rm -f "$W/scratch/layer.tar"
    done
    printf 'top layer\n' >"$W/scratch/top.txt"
    "$STRATA" -q insert "$L:big" "$W/scratch/top.txt" /top.txt --tag top
    touch "$L.done"
fi
mapfile -t LAYERS < <("$STRATA" inspect --json "$L:big" | jq -r '.layers[].digest | sub("sha256:"; "")')
TOP_LAYER=$("$STRATA" inspect --json "$L:top" | jq -r '.layers[-1].digest | sub("sha256:"; "")')
gunzip_all() { local d; for d in "${LAYERS[@]}"; do gzip -dc "$L/blobs/sha256/$d" >/dev/null; done; }

T=$(mktemp -d "$W/results/image-ops.XXXXXX")

warm_layout "$L"
for ((r = 1; r <= ROUNDS; r++)); do
    say "round $r of $ROUNDS"
    t gzip gunzip_all
    t export-rootfs "$STRATA" export "$L:big" --format rootfs -o "$W/scratch/rootfs.tar"
    rm -f "$W/scratch/rootfs.tar"
    t cat "$STRATA" cat "$L:top" /top.txt
    aside "$L/.strata-cache"
    t diff-cold "$STRATA" diff "$L:big" "$L:top"
    # The shared layers were seen by the run before; the differing one was not.
    rm -f "$L/.strata-cache/layers/sha256/$TOP_LAYER"
    t diff-top "$STRATA" diff "$L:big" "$L:top"
    c=$W/scratch/convert-$r
    aside "$c"
    "$STRATA" -q copy "$L:big" "$c:big"
    t convert "$STRATA" convert "$c:big" --compress zstd --tag zstd
    aside "$c"
    s=$W/scratch/skopeo-$r
    aside "$s"
    t skopeo skopeo copy --dest-compress-format zstd "oci:$L:big" "oci:$s:zstd"
    aside "$s"
done
g=$(tmedian gzip) e=$(tmedian export-rootfs) k=$(tmedian cat) dt=$(tmedian diff-top) ds=$(tmedian diff-cold)
cv=$(tmedian convert) sk=$(tmedian skopeo)
echo "median of $ROUNDS: gzip -dc ${g}s, export rootfs ${e}s, cat ${k}s, diff (one small layer apart, shared layers seen) ${dt}s, diff (no cache: every layer read) ${ds}s, convert zstd ${cv}s, skopeo zstd ${sk}s"
awk -v e="$e" -v g="$g" -v k="$k" -v dt="$dt" -v ds="$ds" -v cv="$cv" -v sk="$sk" 'BEGIN {
    printf "export rootfs / gzip -dc = %.2f (goal <= 1.2)\n", e / g
    printf "cat = %.3f s (goal < 0.1)\n", k
    printf "diff one layer apart, shared layers seen / every layer read = %.2f (goal: far below 1)\n", dt / ds
    printf "skopeo / convert = %.2f (goal >= 3)\n", sk / cv
}'
echo "raw times: $T"
