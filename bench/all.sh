#!/usr/bin/env bash
# The benchmark command: every performance comparison in one run, on the binary as shipped, and
# the summary table of docs/performance.md regenerated from it.
#
#   sudo bench/all.sh                   # everything, the clean builds included (about 25 minutes)
#   sudo NO_CLEAN_BUILD=1 bench/all.sh  # all but the clean builds (about 20 minutes)
#   sudo QUICK=1 bench/all.sh           # fewer rounds and shorter runs everywhere (about 5 minutes)
#   sudo ONLY="startup lossfree" bench/all.sh
#
# Benchmarks (each interleaves its own configurations; they run one after the other here, so
# compare within a benchmark, not across them):
#   startup    start to first event, peak and steady-state RSS: bpfbox vs C + libbpf loader vs
#              bpftrace, for execsnoop and opensnoop (startup.sh)
#   opensnoop  kernel-side cost per open: none, bpfbox filtered out, bare cgroup-id lookup,
#              bpfbox emitting, bpftrace; storms and loss accounting (opensnoop.sh)
#   lossfree   highest loss-free event rate at default settings (lossfree.sh)
#   tcp        tcptop per send, tcpconnect per connect (tcp.sh)
#   sockmap    request/response latency and streaming throughput (sockmap.sh)
#   render     user-space decode + render per event, columns and JSON (render-bench)
#   size       size of the release binary
#   build      clean build time and the static release binary (build.sh; NO_CLEAN_BUILD=1 leaves
#              it out)
#
# Writes bench/results/<UTC time>/: each benchmark's output (<name>.txt) and JSON
# (<name>.json), results.json (all of them merged, with the run's conditions) and summary.md
# (the table). The table also replaces the one between the bench:table markers in
# docs/performance.md (NO_DOC=1: leave the document alone).
#
# Environment: ONLY, QUICK, NO_CLEAN_BUILD, NO_DOC, and what the single scripts take (they get
# BPFBOX_BIN and NO_BUILD from here); BPFBOX_BIN given: that binary is measured, nothing built
# but render-bench.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init all.sh

default="startup opensnoop lossfree tcp sockmap render size"
[[ -z ${NO_CLEAN_BUILD:-} ]] && default+=" build"
only=${ONLY:-$default}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
date -u '+%Y-%m-%d %H:%M UTC' >"$out/started"

if [[ -z ${BPFBOX_BIN:-} ]]; then
    # What is measured is what ships: scripts/release.sh's build (Swift runtime, libbpf, libelf,
    # zlib and libstdc++ linked in; only glibc loaded), not stripped so that profiles have names.
    # `swift build -c release` (the README's build, which loads those libraries) is the second
    # figure of the size row.
    echo "== scripts/release.sh (bpfbox as shipped) and swift build -c release"
    { bash scripts/release.sh && swift build -c release; } >"$out/build.log" 2>&1 || { tail -n 20 "$out/build.log" >&2; exit 1; }
    BPFBOX_BIN=$PWD/.build-static/release/bpfbox
    export BENCH_BUILT=1  # built here from this checkout
fi
export BPFBOX_BIN NO_BUILD=1
bin=$BPFBOX_BIN
bench_conditions

run() {
    local name=$1
    shift
    [[ " $only " == *" $name "* ]] || return 0
    echo "== $name ($(date -u +%H:%M:%S))"
    local status=0
    JSON="$out/$name.json" "$@" >"$out/$name.txt" 2>&1 || status=$?
    if [[ $status -ne 0 ]]; then
        echo "$name: could not measure (exit $status): see $out/$name.txt"
        rm -f "$out/$name.json"
    fi
    grep -E 'PASS|FAIL' "$out/$name.txt" | tail -n 12 || tail -n 3 "$out/$name.txt"
}

if [[ -n ${QUICK:-} ]]; then
    run startup env ROUNDS=3 bench/startup.sh
    run opensnoop env ROUNDS=2 N=100000 STORM=300000 SKIP_STORM=file-256k bench/opensnoop.sh
    run lossfree env RATES=100000,200000 DURATION=3 bench/lossfree.sh
    run tcp env ROUNDS=2 bench/tcp.sh
    run sockmap env ROUNDS=2 RR_N=20000 STREAM_MB_4K=256 STREAM_MB_64K=512 bench/sockmap.sh
else
    run startup bench/startup.sh
    run opensnoop bench/opensnoop.sh
    run lossfree env CONFIGS=bpfbox-null,bpfbox-file,c-file,bpfbox-file:4096 bench/lossfree.sh
    run tcp bench/tcp.sh
    run sockmap bench/sockmap.sh
fi

if [[ " $only " == *" render "* ]]; then
    echo "== render ($(date -u +%H:%M:%S))"
    if swift build -c release --product render-bench >>"$out/build.log" 2>&1; then
        render=$(swift build -c release --show-bin-path)/render-bench
        # The best of five runs: the figure is CPU work, and a busy machine only adds to it.
        for _ in 1 2 3 4 5; do "$render" 200000; done >"$out/render.txt"
        grep -v '^{' "$out/render.txt" | sort -k1,2 -k3n | awk '!seen[$1" "$2]++'
        # Allocations per event: malloc calls counted with 100,000 and 200,000 events per case.
        counter=$(mktemp -d)/malloc_count.so
        if cc -O2 -shared -fPIC -o "$counter" bench/malloc_count.c; then
            for case in "opensnoop json" "opensnoop table" "execsnoop json" "execsnoop table"; do
                a=$(LD_PRELOAD=$counter "$render" 100000 "$case" 2>&1 >/dev/null | sed -n 's/^mallocs=//p')
                b=$(LD_PRELOAD=$counter "$render" 200000 "$case" 2>&1 >/dev/null | sed -n 's/^mallocs=//p')
                echo "allocs $case $(( (b - a) / 100000 )) $((b - a))"
            done | tee -a "$out/render.txt"
        fi
    else
        echo "render: render-bench did not build: see $out/build.log" | tee "$out/render.txt"
    fi
fi

if [[ " $only " == *" size "* ]]; then
    size=$(stat -c %s "$bin")
    echo "== size: $bin $size bytes"
    dev=$(swift build -c release --show-bin-path)/bpfbox
    dev_size=$(stat -c %s "$dev" 2>/dev/null || echo null)
    printf '{"release_binary": "%s", "release_binary_bytes": %s, "swift_build_binary_bytes": %s}\n' "$bin" "$size" "$dev_size" >"$out/size.json"
fi

run build env STATIC=1 bench/build.sh

python3 bench/report.py merge "$out" >/dev/null
doc_args=()
[[ -z ${NO_DOC:-} ]] && doc_args=(--doc docs/performance.md)
echo
python3 bench/report.py table "$out/results.json" --out "$out/summary.md" "${doc_args[@]}"
echo "== $out/results.json, $out/summary.md${doc_args[*]:+, docs/performance.md (table)}"
