#!/usr/bin/env bash
# Loopback TCP request/response latency (p50, p99) and streaming throughput at 64 B, 4 KiB and
# 64 KiB writes, with and without `bpfbox sockmap`, interleaved in one run.
#
#   sudo bench/sockmap.sh                          # 5 interleaved rounds
#   sudo ROUNDS=15 bench/sockmap.sh
#   sudo BPFBOX_BIN=.build-bench/release/bpfbox bench/sockmap.sh
#
# Environment:
#   ROUNDS          measured rounds (default 5); WARMUP unrecorded rounds first (default 1)
#   RR_N            round trips per request/response run (default 50000)
#   STREAM_MB_64    MiB per streaming run with 64-byte writes (default 32)
#   STREAM_MB_4K    MiB per streaming run with 4-KiB writes (default 512)
#   STREAM_MB_64K   MiB per streaming run with 64-KiB writes (default 1024)
#   PIN_CPU         CPU both processes of the forked request/response loop run on (default 1)
#   APPLY_BYTES     --apply-bytes of the sockmap-apply configuration (default 1048576)
#   BPFBOX_SCRATCH  SwiftPM scratch path to build in (default .build-bench)
#   SWIFT_BUILD_FLAGS  extra `swift build` flags
#   NO_BUILD        set: use the binary in BPFBOX_SCRATCH as it is
#   BPFBOX_BIN      bpfbox binary (default $BPFBOX_SCRATCH/release/bpfbox); when given, no build
#   CC              C compiler for the loop (default cc)
#   JSON            also write all runs and the summary to this file
#
# Creates, and removes on exit, a cgroup v2 directory bpfbox-bench-sockmap-<pid> under the
# cgroup2 mount: every loop runs in it, and `bpfbox sockmap -c` watches it. Exits 0 whenever the
# measurement completes (targets missed are reported, not an error); non-zero only when it could
# not measure (including a sockmap run that spliced nothing).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
RR_N=${RR_N:-50000}
STREAM_MB_64=${STREAM_MB_64:-32}
STREAM_MB_4K=${STREAM_MB_4K:-512}
STREAM_MB_64K=${STREAM_MB_64K:-1024}
PIN_CPU=${PIN_CPU:-1}
APPLY_BYTES=${APPLY_BYTES:-1048576}
CC=${CC:-cc}

if [[ $(id -u) -ne 0 ]]; then
    echo "sockmap.sh: run as root (loading BPF needs it): sudo $0" >&2
    exit 1
fi
if [[ $PIN_CPU -ge $(nproc) ]]; then
    echo "sockmap.sh: PIN_CPU=$PIN_CPU, but this machine has $(nproc) CPUs" >&2
    exit 1
fi

work=$(mktemp -d /tmp/bpfbox-bench-sockmap.XXXXXX)
cgdir=
cleanup() {
    if [[ -n $cgdir && -d $cgdir ]]; then
        # A loop left behind by an interrupted run would keep the cgroup busy.
        if [[ -s $cgdir/cgroup.procs ]]; then
            xargs -r kill -9 <"$cgdir/cgroup.procs" 2>/dev/null || true
            sleep 0.2
        fi
        rmdir "$cgdir" || echo "sockmap.sh: could not remove $cgdir" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# 1. bpfbox, release.
if [[ -n ${BPFBOX_BIN:-} ]]; then
    bin=$BPFBOX_BIN
else
    scratch=${BPFBOX_SCRATCH:-.build-bench}
    bin=$scratch/release/bpfbox
    if [[ -z ${NO_BUILD:-} ]]; then
        echo "== swift build -c release --scratch-path $scratch ${SWIFT_BUILD_FLAGS:-}"
        # shellcheck disable=SC2086 # SWIFT_BUILD_FLAGS is a list of flags
        if ! swift build -c release --scratch-path "$scratch" ${SWIFT_BUILD_FLAGS:-} >"$work/build.log" 2>&1; then
            tail -n 20 "$work/build.log" >&2
            echo "sockmap.sh: the build failed" >&2
            exit 1
        fi
        tail -n 1 "$work/build.log"
    fi
fi
if [[ ! -x $bin ]]; then
    echo "sockmap.sh: $bin is missing: build with swift build -c release" >&2
    exit 1
fi

# 2. The loop, built fresh into the temporary directory.
"$CC" -O2 -Wall -Wextra -o "$work/sockbench" bench/sockbench.c

# 3. A cgroup of its own under the cgroup v2 mount, for the loops.
cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
if [[ -z $cg2 ]]; then
    echo "sockmap.sh: needs cgroup v2 mounted" >&2
    exit 1
fi
cgdir=$cg2/bpfbox-bench-sockmap-$$
mkdir "$cgdir"

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    tree=$(git rev-parse --short HEAD)
    git diff --quiet HEAD -- Sources bpf Package.swift || tree+=" + uncommitted changes in Sources, bpf or Package.swift"
    if [[ -n $(git ls-files --others --exclude-standard -- Sources bpf) ]]; then
        tree+=" + untracked files in Sources or bpf"
    fi
    echo "tree:    $tree"
fi
echo "bpfbox:  $bin ($(stat -c %s "$bin") bytes)"
echo "loop:    bench/sockbench.c, $("$CC" --version | head -n 1) -O2"
echo "cgroup:  $cgdir"

python3 bench/sockmap.py --bpfbox "$bin" --loop "$work/sockbench" --cgroup "$cgdir" \
    --rounds "$ROUNDS" --warmup "$WARMUP" --rr-n "$RR_N" \
    --stream-mb "64=$STREAM_MB_64,4096=$STREAM_MB_4K,65536=$STREAM_MB_64K" \
    --pin-cpu "$PIN_CPU" --apply-bytes "$APPLY_BYTES" ${JSON:+--json "$JSON"}
