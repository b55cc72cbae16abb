#!/usr/bin/env bash
# Benchmark `strata fsck` (which decompresses every layer) against `strata unpack` of the
# same image, `strata fsck --no-layers` (digests only) and `gzip -dc` of every layer one
# after the other (what decompression alone costs on one core). fsck reads what unpack
# reads, so it should not take longer; the ratios fsck/unpack and fsck/gzip are printed.
# The image: one gzip layer per source directory (default /usr/share, /usr/bin and
# /usr/include: about 1 GB uncompressed), made by `strata add-layer`.
#
# Environment (all optional):
#   STRATA=path            strata binary to test (default: target/release/strata of this
#                          repo, built with cargo build --release only if missing)
#   STRATA_BENCH_DIR=dir   work dir: cached input, scratch, results (/var/tmp/strata-bench)
#   ROUNDS=n               rounds, each running fsck, fsck --no-layers and unpack (default 3)
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
need_rounds ROUNDS
bench_workdir fsck
find_strata missing
private_strata
trap 'rm -f "$STRATA"; rm -rf "${TRASH:?}"' EXIT

# One cached layout per list of sources.
L=$W/input/fsck-layout-$(printf '%s' "$SOURCES" | md5sum | cut -c1-8)
if [[ ${REBUILD_INPUT:-0} == 1 || ! -f $L.done ]]; then
    aside "$L"; rm -f "$L.done"
    say "building $L: one gzip layer per directory of $SOURCES"
    "$STRATA" -q new "$L:big"
    for src in $SOURCES; do
        tar -C "$src" --numeric-owner -cf "$W/scratch/layer.tar" .
        "$STRATA" -q add-layer --compress gzip "$L:big" "$W/scratch/layer.tar"
        rm -f "$W/scratch/layer.tar"
    done
    touch "$L.done"
fi
blobs=$(du -sb "$L/blobs" | cut -f1)
mapfile -t LAYERS < <("$STRATA" inspect --json "$L:big" | jq -r '.layers[].digest | sub("sha256:"; "")')
gunzip_all() { local d; for d in "${LAYERS[@]}"; do gzip -dc "$L/blobs/sha256/$d" >/dev/null; done; }

T=$(mktemp -d "$W/results/fsck.XXXXXX")

cat "$L"/blobs/sha256/* >/dev/null # a hot cache for everyone
for ((r = 1; r <= ROUNDS; r++)); do
    say "round $r of $ROUNDS"
    t fsck "$STRATA" fsck "$L"
    grep -q '^ok: ' "$T/fsck.out" || die "fsck did not say ok: $(cat "$T/fsck.out")"
    t fsck-no-layers "$STRATA" fsck --no-layers "$L"
    t gzip gunzip_all
    dest=$W/scratch/fsck-bench-unpack
    aside "$dest"
    mkdir "$dest"
    t unpack "$STRATA" unpack --rootfs-only "$L:big" "$dest"
    aside "$dest"
done
f=$(tmedian fsck) n=$(tmedian fsck-no-layers) u=$(tmedian unpack) g=$(tmedian gzip)
echo "blobs: $blobs bytes in ${#LAYERS[@]} layers; median of $ROUNDS: fsck ${f}s, fsck --no-layers ${n}s, unpack ${u}s, gzip -dc ${g}s"
awk -v f="$f" -v u="$u" -v g="$g" 'BEGIN { printf "fsck / unpack = %.2f, fsck / gzip -dc = %.2f\n", f / u, f / g }'
echo "raw times: $T"
