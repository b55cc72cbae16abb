#!/usr/bin/env bash
# Shared by the benchmark scripts (sourced, not run): the cached Debian minbase rootfs and
# the synthetic ~1 GiB tree. The caller defines say, die, aside and sets W, SUITE, MIRROR,
# FALLBACK_SRC; bench_rootfs sets ROOTFS and SOURCE_DESC, and BUILT_INPUT=1 when it built.

# The Debian minbase rootfs (debootstrap, as root; a copy of $FALLBACK_SRC when that is not
# possible, said loudly), cached in $W/input, one recipe for every script.
bench_rootfs() {
    local ok
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
