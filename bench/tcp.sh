#!/usr/bin/env bash
# Cost per send() on loopback with `bpfbox tcptop` attached against no tracer, and cost per
# connect() with `bpfbox tcpconnect` (unfiltered, and with a --cgroupmap that filters the loop
# out) against no tracer, interleaved in one run.
#
#   sudo bench/tcp.sh                          # 5 interleaved rounds
#   sudo ROUNDS=15 bench/tcp.sh
#   sudo BPFBOX_BIN=.build-bench/release/bpfbox bench/tcp.sh
#
# Environment:
#   ROUNDS          measured rounds (default 5); WARMUP unrecorded rounds first (default 1)
#   SEND_N          64-byte sends per run (default 20000)
#   SEND_BIG_N      16-KiB sends per run (default 10000)
#   CONNECT_N       connects per run (default 3000)
#   LOOP_WARMUP     untimed iterations at the start of each run (default 500)
#   LOOP_CPU        pin the loop to this CPU (default: not pinned)
#   BPFBOX_SCRATCH  SwiftPM scratch path to build in (default .build)
#   SWIFT_BUILD_FLAGS  extra `swift build` flags
#   NO_BUILD        set: use the binary in BPFBOX_SCRATCH as it is
#   BPFBOX_BIN      bpfbox binary (default $BPFBOX_SCRATCH/release/bpfbox); when given, no build
#   CC              C compiler for the loop (default cc)
#   JSON            also write all runs and the summary to this file
#
# Creates, and removes on exit, a cgroup v2 directory and a pinned map, both named
# bpfbox-bench-tcp-<pid>: the map (bcc's layout: hash, key 8, value 8) holds that cgroup's id;
# the loop stays in the cgroup it was started in. Exits 0 whenever the measurement completes;
# non-zero only when it could not measure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init tcp.sh

ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
SEND_N=${SEND_N:-20000}
SEND_BIG_N=${SEND_BIG_N:-10000}
CONNECT_N=${CONNECT_N:-3000}
LOOP_WARMUP=${LOOP_WARMUP:-500}
LOOP_CPU=${LOOP_CPU:--1}

name=bpfbox-bench-tcp-$$
pin=
cgdir=
bench_on_exit '[[ -n $pin ]] && rm -f "$pin"; [[ -n $cgdir && -d $cgdir ]] && rmdir "$cgdir"'

# 1. bpfbox, release; the loop, built fresh into the temporary directory.
bench_bpfbox
bench_cc tcploop bench/tcploop.c

# 2. tracefs (both applets use sock/ tracepoints; mounted here so that no tracer pays for it),
#    bpffs for the pin, and the cgroup v2 mount for the foreign cgroup.
bench_mounts
for tp in sock_send_length sock_recv_length inet_sock_set_state; do
    [[ -d /sys/kernel/tracing/events/sock/$tp ]] \
        || bench_die "this kernel has no sock/$tp tracepoint (Linux 6.12 or later needed)"
done

# 3. A cgroup that nothing runs in, and a bcc-layout map that holds only its id: with
#    --cgroupmap, tcpconnect's program runs on every state change of the loop's sockets and
#    returns at the filter.
cgdir=$cg2/$name
mkdir "$cgdir"
cgid=$(stat -c %i "$cgdir")
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
if [[ $(stat -c %i "$cg2$own") == "$cgid" ]]; then
    echo "tcp.sh: the benchmark runs in $cgdir itself" >&2
    exit 1
fi
pin=$bpffs/$name
bpftool map create "$pin" type hash key 8 value 8 entries 8 name tcpbench
# shellcheck disable=SC2046 # le64 prints eight separate hex bytes
bpftool map update pinned "$pin" key hex $(le64 "$cgid") value hex 00 00 00 00 00 00 00 00

bench_conditions
echo "loop:    bench/tcploop.c, $("$CC" --version | head -n 1) -O2"

python3 bench/tcp.py --bpfbox "$bin" --loop "$work/tcploop" --cgroupmap "$pin" \
    --map-cgroup "$cgdir (id $cgid)" --rounds "$ROUNDS" --warmup "$WARMUP" \
    --send-n "$SEND_N" --send-big-n "$SEND_BIG_N" --connect-n "$CONNECT_N" \
    --loop-warmup "$LOOP_WARMUP" --cpu "$LOOP_CPU" ${JSON:+--json "$JSON"}
