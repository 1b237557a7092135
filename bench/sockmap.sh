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
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init sockmap.sh

ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
RR_N=${RR_N:-50000}
STREAM_MB_64=${STREAM_MB_64:-32}
STREAM_MB_4K=${STREAM_MB_4K:-512}
STREAM_MB_64K=${STREAM_MB_64K:-1024}
PIN_CPU=${PIN_CPU:-1}
APPLY_BYTES=${APPLY_BYTES:-1048576}

if [[ $PIN_CPU -ge $(nproc) ]]; then
    echo "sockmap.sh: PIN_CPU=$PIN_CPU, but this machine has $(nproc) CPUs" >&2
    exit 1
fi

cgdir=
sockmap_cleanup() {
    if [[ -n $cgdir && -d $cgdir ]]; then
        # A loop left behind by an interrupted run would keep the cgroup busy.
        if [[ -s $cgdir/cgroup.procs ]]; then
            xargs -r kill -9 <"$cgdir/cgroup.procs" 2>/dev/null || true
            sleep 0.2
        fi
        rmdir "$cgdir" || echo "sockmap.sh: could not remove $cgdir" >&2
    fi
}
bench_on_exit sockmap_cleanup

# 1. bpfbox, release; the loop, built fresh into the temporary directory.
bench_bpfbox .build-bench
bench_cc sockbench bench/sockbench.c

# 2. A cgroup of its own under the cgroup v2 mount, for the loops.
bench_mounts
cgdir=$cg2/bpfbox-bench-sockmap-$$
mkdir "$cgdir"

bench_conditions
echo "loop:    bench/sockbench.c, $("$CC" --version | head -n 1) -O2"
echo "cgroup:  $cgdir"

python3 bench/sockmap.py --bpfbox "$bin" --loop "$work/sockbench" --cgroup "$cgdir" \
    --rounds "$ROUNDS" --warmup "$WARMUP" --rr-n "$RR_N" \
    --stream-mb "64=$STREAM_MB_64,4096=$STREAM_MB_4K,65536=$STREAM_MB_64K" \
    --pin-cpu "$PIN_CPU" --apply-bytes "$APPLY_BYTES" ${JSON:+--json "$JSON"}
