#!/usr/bin/env bash
# Every benchmark of bpfbox in one run, with one release build: start-up and memory against a
# C + libbpf reference (startup.sh), opensnoop's cost per open against bpftrace (opensnoop.sh),
# tcptop and tcpconnect per send and connect (tcp.sh), sockmap's latency and throughput
# (sockmap.sh), user-space decode and render per event (render-bench), and the binary's size.
#
#   sudo bench/all.sh                   # everything, default rounds (about 10 minutes)
#   sudo QUICK=1 bench/all.sh           # fewer rounds everywhere (about 3 minutes)
#   sudo ONLY="startup render" bench/all.sh
#
# Writes bench/results/<UTC time>/: each benchmark's full output (<name>.txt) and its JSON
# (<name>.json), and summary.md: every verdict line (PASS/FAIL) and the render figures, which
# docs/performance.md quotes. Each benchmark interleaves its own configurations; they run one
# after the other here, so compare within a benchmark, not across them.
#
# Environment: ONLY (names to run: startup opensnoop tcp sockmap render size), QUICK, and what
# the single scripts take (they get BPFBOX_BIN and NO_BUILD from here).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ $(id -u) -ne 0 ]]; then
    echo "all.sh: run as root (loading BPF needs it): sudo $0" >&2
    exit 1
fi

only=${ONLY:-startup opensnoop tcp sockmap render size}
out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

echo "== swift build -c release (bpfbox, render-bench)"
swift build -c release >"$out/build.log" 2>&1 || { tail -n 20 "$out/build.log" >&2; exit 1; }
swift build -c release --product render-bench >>"$out/build.log" 2>&1 || { tail -n 20 "$out/build.log" >&2; exit 1; }
bin=$(swift build -c release --show-bin-path)/bpfbox
export BPFBOX_BIN=$bin NO_BUILD=1

{
    echo "# Benchmark summary"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
        "tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- Sources bpf Package.swift 2>/dev/null || echo ' + changes')"
    echo
} >"$out/summary.md"

run() {
    local name=$1; shift
    [[ " $only " == *" $name "* ]] || return 0
    echo "== $name"
    local status=0
    JSON="$out/$name.json" "$@" >"$out/$name.txt" 2>&1 || status=$?
    {
        echo "## $name"
        echo
        if [[ $status -ne 0 ]]; then
            echo "could not measure (exit $status): see $name.txt"
        else
            echo '```'
            # The verdicts; a benchmark without targets (tcp.sh) gives its summary table.
            grep -E 'PASS|FAIL|verdict|target' "$out/$name.txt" || sed -n '/^loop /,$p' "$out/$name.txt"
            echo '```'
        fi
        echo
    } >>"$out/summary.md"
    tail -n 3 "$out/$name.txt"
}

if [[ -n ${QUICK:-} ]]; then
    run startup env ROUNDS=5 bench/startup.sh
    run opensnoop env ROUNDS=2 N=100000 bench/opensnoop.sh
    run tcp env ROUNDS=2 bench/tcp.sh
    run sockmap env ROUNDS=2 bench/sockmap.sh
else
    run startup bench/startup.sh
    run opensnoop bench/opensnoop.sh
    run tcp bench/tcp.sh
    run sockmap bench/sockmap.sh
fi

if [[ " $only " == *" render "* ]]; then
    echo "== render"
    render=$(swift build -c release --show-bin-path)/render-bench
    # The best of five runs: the figure is CPU work, and a busy machine only adds to it.
    for _ in 1 2 3 4 5; do "$render" 200000; done >"$out/render.txt"
    {
        echo "## render (user-space decode and render, ns per event, best of 5; target: JSON >= 1,000,000 events/s)"
        echo
        echo '```'
        grep -v '^{' "$out/render.txt" | sort -k1,2 -k3n | awk '!seen[$1" "$2]++'
        echo '```'
        echo
    } >>"$out/summary.md"
    grep -v '^{' "$out/render.txt" | sort -k1,2 -k3n | awk '!seen[$1" "$2]++'
fi

if [[ " $only " == *" size "* ]]; then
    size=$(stat -c %s "$bin")
    echo "== size: $size bytes"
    printf '## size\n\n`swift build -c release`: %s bytes (not stripped); scripts/release.sh makes the stripped, static one.\n' "$size" >>"$out/summary.md"
fi
echo "== $out/summary.md"
