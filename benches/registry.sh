#!/usr/bin/env bash
# Benchmark strata's registry transfers against skopeo on the same images, in one run,
# against a docker-registry (distribution) on loopback started by this script:
#   pull:      strata pull 127.0.0.1:P/bench/IMG:T NEW   vs  skopeo copy docker://... oci:NEW:T
#              (each timed with a sync after it: what a durable pull costs)
#   push:      strata push L:T 127.0.0.1:P/REPO:T        vs  skopeo copy oci:L:T docker://...
#              (each round to a repository of its own, so every blob is uploaded)
#   noop-push: strata push of an image the registry has (no goal for skopeo; timed alone)
# Goals (issue 14): pull and push at most 0.5x skopeo, a no-op push under 0.1 s, strata's
# peak memory under 100 MiB. How to measure is /work/shared/BENCHMARKING.md.
#
# Environment (all optional):
#   STRATA=path            strata binary to test (default: cargo build --release of this repo)
#   STRATA_BENCH_DIR=dir   work dir: cached input, scratch, results (/var/tmp/strata-bench)
#   ROUNDS=n               pairs per phase (default 5)
#   IMAGES="minbase big"   cached images built by benches/unpack.sh, or
#   INPUT=LAYOUT:TAG       any other image (used instead of IMAGES, named "input")
#   PHASES="pull push noop-push"
#   STRATA_BASE=path       another strata binary (e.g. main's), run in every pull and push
#                          round too: an A/B comparison under the same conditions
#   FLOOR=1                push phases also upload with curl, the least a client can do
#                          (POST, one PUT of the whole blob, the manifest): the registry's
#                          own time, and so the lowest ratio any client can reach here
set -euo pipefail
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-5}
IMAGES=${IMAGES:-minbase big}
PHASES=${PHASES:-pull push noop-push}

need skopeo "apt-get install skopeo"
need docker-registry "apt-get install docker-registry"
need jq "apt-get install jq"
need python3
need_time
need_rounds ROUNDS
no_colon_in_w "skopeo's oci:PATH:TAG"
bench_workdir

find_strata always quiet
private_strata
BASE=
if [[ -n ${STRATA_BASE:-} ]]; then
    [[ -x $STRATA_BASE ]] || die "STRATA_BASE=$STRATA_BASE is not an executable"
    BASE=$W/bin/strata-base.$$
    cp "$STRATA_BASE" "$BASE"
fi
REGPID=
cleanup() {
    rm -f "$STRATA" ${BASE:+"$BASE"}
    if [[ -n $REGPID ]]; then kill "$REGPID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- input
declare -A LAYOUT TAG DIGEST BYTES
if [[ -n ${INPUT:-} ]]; then
    IMAGES=input
    LAYOUT[input]=${INPUT%:*}
    TAG[input]=${INPUT##*:}
else
    for img in $IMAGES; do
        case $img in
            minbase) L=$W/input/unpack-minbase ;;
            big) L=$W/input/unpack-big-v1 ;;
            *) die "unknown image $img (minbase or big; or INPUT=LAYOUT:TAG)" ;;
        esac
        [[ -f $L.done && -f $L.info ]] || die "$L is not built: run benches/unpack.sh once (as root), or give INPUT=LAYOUT:TAG"
        LAYOUT[$img]=$L
        TAG[$img]=$(sed -n 's/^tag=//p' "$L.info")
    done
fi
for img in $IMAGES; do
    DIGEST[$img]=$(tag_digest "${LAYOUT[$img]}" "${TAG[$img]}")
    [[ -n ${DIGEST[$img]} ]] || die "no tag ${TAG[$img]} in ${LAYOUT[$img]}"
    BYTES[$img]=$(blob_bytes "${LAYOUT[$img]}")
done

# ---------------------------------------------------------------- the registry
SCR=$W/scratch/registry
aside "$SCR"; mkdir -p "$SCR/storage"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$SCR/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $SCR/storage
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$SCR/config.yml" >"$SCR/registry.log" 2>&1 &
REGPID=$!
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null || die "docker-registry did not start; see $SCR/registry.log"
REG=127.0.0.1:$PORT

bench_results registry-
{
    env_host
    env_strata
    if [[ -n $BASE ]]; then echo "base (STRATA_BASE): $STRATA_BASE ($("$BASE" --version 2>&1 | head -1), sha256 $(sha256sum "$BASE" | cut -c1-16))"; fi
    echo "skopeo: $(skopeo --version)"
    if [[ -n ${FLOOR:-} ]]; then echo "curl: $(curl --version | head -1)"; fi
    echo "registry: $(docker-registry --version 2>&1 | head -1) on $REG, storage on $(df -T "$SCR" | awk 'NR == 2 {print $2}')"
    for img in $IMAGES; do
        echo "image $img: ${LAYOUT[$img]}:${TAG[$img]} ${DIGEST[$img]}, ${BYTES[$img]} bytes of blobs"
    done
    env_load
} | tee "$RES/environment.txt" >&2

# Checks: a pulled layout's tag names the image's digest; a pushed image's manifest digest
# in the registry is the image's.
check_pull() { [[ $(tag_digest "$OUT" "${TAG[$IMG]}") == "${DIGEST[$IMG]}" ]] && echo same-digest || { echo "tag names another digest"; return 1; }; }
check_push() {
    local d
    d=$(curl -fsI -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json" \
        "http://$REG/v2/$REPO/manifests/${TAG[$IMG]}" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
    [[ $d == "${DIGEST[$IMG]}" ]] && echo same-digest || { echo "registry has $d"; return 1; }
}

# The least a client can do to push an image: for each blob a POST and one streamed PUT of
# the whole file with its digest (no chunks, no existence checks), then the manifest.
curl_push() {
    local L=$1 T=$2 repo=$3 m mt d loc
    m=$(tag_digest "$L" "$T")
    mt=$(jq -r --arg d "$m" '.manifests[] | select(.digest == $d) | .mediaType' "$L/index.json")
    for d in $(jq -r '.config.digest, .layers[].digest' "$L/blobs/sha256/${m#sha256:}"); do
        loc=$(curl -fsS -o /dev/null -D - -X POST "http://$REG/v2/$repo/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1) == "location" {print $2}')
        [[ $loc == http* ]] || loc=http://$REG$loc
        [[ $loc == *\?* ]] && loc+="&digest=$d" || loc+="?digest=$d"
        curl -fsS -o /dev/null -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$L/blobs/sha256/${d#sha256:}" "$loc"
    done
    curl -fsS -o /dev/null -X PUT -H "Content-Type: $mt" --data-binary "@$L/blobs/sha256/${m#sha256:}" "http://$REG/v2/$repo/manifests/$T"
}
# Timed under /usr/bin/time, which runs programs, not functions.
export -f curl_push tag_digest
export REG

# The registry's CPU time so far (user + system), in clock ticks.
reg_cpu() { awk '{print $14 + $15}' "/proc/$REGPID/stat"; }

run_one() {
    local phase=$1 round=$2 tool=$3 L=${LAYOUT[$IMG]} T=${TAG[$IMG]}
    sync
    case $phase in
        pull)
            # Timed up to the end of a `sync`: strata fsyncs every blob before it publishes
            # it, and a tool that leaves its writes in the page cache would otherwise pay
            # for them in the next run's window (or never).
            OUT=$SCR/$IMG-pull-$round-$tool; aside "$OUT"
            case $tool in
                strata) timed_check "$IMG-pull" "$round" strata check_pull sh -c '"$@" && sync' sh "$STRATA" pull -q "$REG/bench/$IMG:$T" "$OUT" ;;
                base) timed_check "$IMG-pull" "$round" base check_pull sh -c '"$@" && sync' sh "$BASE" pull -q "$REG/bench/$IMG:$T" "$OUT" ;;
                skopeo) timed_check "$IMG-pull" "$round" skopeo check_pull sh -c '"$@" && sync' sh skopeo copy -q --src-tls-verify=false "docker://$REG/bench/$IMG:$T" "oci:$OUT:$T" ;;
            esac ;;
        push)
            warm_layout "$L"
            REPO=push/$IMG-$round-$tool
            # skopeo remembers where it saw each blob (its blob info cache) and mounts it from
            # there instead of uploading: forgotten before each run, so both tools upload.
            if [[ $tool == skopeo ]]; then
                rm -f /var/lib/containers/cache/blob-info-cache-v1.* "${XDG_DATA_HOME:-$HOME/.local/share}"/containers/cache/blob-info-cache-v1.*
            fi
            local c0
            c0=$(reg_cpu)
            case $tool in
                strata) timed_check "$IMG-push" "$round" strata check_push "$STRATA" push -q "$L:$T" "$REG/$REPO:$T" ;;
                base) timed_check "$IMG-push" "$round" base check_push "$BASE" push -q "$L:$T" "$REG/$REPO:$T" ;;
                curl) timed_check "$IMG-push" "$round" curl check_push bash -c 'curl_push "$@"' bash "$L" "$T" "$REPO" ;;
                skopeo) timed_check "$IMG-push" "$round" skopeo check_push skopeo copy -q --dest-tls-verify=false "oci:$L:$T" "docker://$REG/$REPO:$T" ;;
            esac
            # What the registry itself spent on receiving, hashing and storing the image.
            printf '%s\t%s\t%s\n' "$IMG-push" "$tool" "$(awk -v a="$c0" -v b="$(reg_cpu)" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz}')" >>"$RES/registry-cpu.tsv" ;;
        noop-push)
            REPO=bench/$IMG
            timed_check "$IMG-noop-push" "$round" strata check_push "$STRATA" push -q "$L:$T" "$REG/$REPO:$T" ;;
    esac
}

for IMG in $IMAGES; do
    # The image every pull reads.
    "$STRATA" push -q "${LAYOUT[$IMG]}:${TAG[$IMG]}" "$REG/bench/$IMG:${TAG[$IMG]}" >/dev/null
    for phase in $PHASES; do
        say "$IMG $phase: $ROUNDS rounds${phase/noop-push/ (strata alone)}"
        RATIOS=$RES/ratios-$IMG-$phase.txt
        : >"$RATIOS"
        for ((r = 1; r <= ROUNDS; r++)); do
            if [[ $phase == noop-push ]]; then
                ts=$(run_one "$phase" "$r" strata)
                echo "$ts" >>"$RATIOS"
                printf '%-6s %12.4f\n' "$r" "$ts" >&2
                continue
            fi
            tools=(strata skopeo)
            if [[ -n $BASE ]]; then tools+=(base); fi
            if [[ $phase == push && -n ${FLOOR:-} ]]; then tools+=(curl); fi
            # Odd rounds in this order, even rounds reversed (A B B A ... for two tools).
            if ((r % 2 == 0)); then
                for ((i = 0, j = ${#tools[@]} - 1; i < j; i++, j--)); do
                    tool=${tools[i]}; tools[i]=${tools[j]}; tools[j]=$tool
                done
            fi
            declare -A took=()
            for tool in "${tools[@]}"; do took[$tool]=$(run_one "$phase" "$r" "$tool"); done
            ts=${took[strata]} tk=${took[skopeo]}
            ratio=$(pair_ratio "$ts" "$tk")
            echo "$ratio" >>"$RATIOS"
            extra=
            if [[ -n $BASE ]]; then
                pair_ratio "$ts" "${took[base]}" >>"$RES/ratios-$IMG-$phase-base.txt"; echo >>"$RES/ratios-$IMG-$phase-base.txt"
                extra+=$(printf '   base %.4f (strata/base %.3f)' "${took[base]}" "$(pair_ratio "$ts" "${took[base]}")")
            fi
            if [[ -n ${took[curl]:-} ]]; then
                pair_ratio "${took[curl]}" "$tk" >>"$RES/ratios-$IMG-$phase-floor.txt"; echo >>"$RES/ratios-$IMG-$phase-floor.txt"
                extra+=$(printf '   curl %.4f (curl/skopeo %.3f)' "${took[curl]}" "$(pair_ratio "${took[curl]}" "$tk")")
            fi
            unset took
            printf '%-6s %12.4f %12.4f %10.3f%s\n' "$r" "$ts" "$tk" "$ratio" "$extra" >&2
        done
    done
done

# ---------------------------------------------------------------- summary
MAXRSS=$(awk -F'\t' 'NR > 1 && $3 == "strata" {if ($7 > m) m = $7} END {print m + 0}' "$LOG")
{
    echo
    echo "=== strata registry bench summary ($STAMP) ==="
    printf '%-22s %-8s %10s %10s %10s %12s\n' image.phase tool "median s" "user s" "sys s" "peak RSS KB"
    for IMG in $IMAGES; do
        for phase in $PHASES; do
            for tool in strata base skopeo curl; do
                p=$IMG-$phase
                [[ -n $(col "$p" "$tool" 4) ]] || continue
                printf '%-22s %-8s %10.4f %10.2f %10.2f %12s%s\n' "$p" "$tool" \
                    "$(col "$p" "$tool" 4 | median)" "$(col "$p" "$tool" 5 | median)" "$(col "$p" "$tool" 6 | median)" "$(maxcol "$p" "$tool" 7)" \
                    "$(if [[ $phase == push ]]; then printf '   registry CPU %s s' "$(awk -F'\t' -v p="$p" -v t="$tool" '$1 == p && $2 == t {print $3}' "$RES/registry-cpu.tsv" | median)"; fi)"
            done
        done
    done
    echo
    for IMG in $IMAGES; do
        for phase in $PHASES; do
            r=$(median <"$RES/ratios-$IMG-$phase.txt")
            if [[ $phase == noop-push ]]; then
                echo "$IMG no-op push, median of $ROUNDS: $r s   goal < 0.1 s: $(met "$r" 0.1 lt)"
            else
                echo "$IMG $phase strata/skopeo, median of $ROUNDS per-pair ratios: $r (per pair: $(paste -sd' ' "$RES/ratios-$IMG-$phase.txt"))   goal <= 0.5: $(met "$r" 0.5)"
                if [[ -f $RES/ratios-$IMG-$phase-base.txt ]]; then
                    echo "$IMG $phase strata/base (A/B, STRATA_BASE), median: $(median <"$RES/ratios-$IMG-$phase-base.txt") (per pair: $(paste -sd' ' "$RES/ratios-$IMG-$phase-base.txt"))"
                fi
                if [[ -f $RES/ratios-$IMG-$phase-floor.txt ]]; then
                    f=$(median <"$RES/ratios-$IMG-$phase-floor.txt")
                    echo "$IMG $phase floor curl/skopeo, median: $f (per pair: $(paste -sd' ' "$RES/ratios-$IMG-$phase-floor.txt"))   0.5 reachable by any client: $(met "$f" 0.5)"
                fi
            fi
        done
    done
    echo "strata peak RSS over all runs: $MAXRSS KB   goal < 100 MiB: $(met "$MAXRSS" 102400 lt)"
    summary_tail
} | tee "$RES/summary.txt"

kill "$REGPID" 2>/dev/null || true
REGPID=
aside "$SCR"
rm -rf "${TRASH:?}"/*
