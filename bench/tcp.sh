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

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
SEND_N=${SEND_N:-20000}
SEND_BIG_N=${SEND_BIG_N:-10000}
CONNECT_N=${CONNECT_N:-3000}
LOOP_WARMUP=${LOOP_WARMUP:-500}
LOOP_CPU=${LOOP_CPU:--1}
CC=${CC:-cc}

if [[ $(id -u) -ne 0 ]]; then
    echo "tcp.sh: run as root (loading BPF needs it): sudo $0" >&2
    exit 1
fi

name=bpfbox-bench-tcp-$$
work=$(mktemp -d /tmp/bpfbox-bench-tcp.XXXXXX)
pin=
cgdir=
cleanup() {
    [[ -n $pin ]] && rm -f "$pin"
    [[ -n $cgdir && -d $cgdir ]] && rmdir "$cgdir"
    rm -rf "$work"
}
trap cleanup EXIT

# 1. bpfbox, release.
if [[ -n ${BPFBOX_BIN:-} ]]; then
    bin=$BPFBOX_BIN
else
    scratch=${BPFBOX_SCRATCH:-.build}
    bin=$scratch/release/bpfbox
    if [[ -z ${NO_BUILD:-} ]]; then
        echo "== swift build -c release --scratch-path $scratch ${SWIFT_BUILD_FLAGS:-}"
        # shellcheck disable=SC2086 # SWIFT_BUILD_FLAGS is a list of flags
        if ! swift build -c release --scratch-path "$scratch" ${SWIFT_BUILD_FLAGS:-} >"$work/build.log" 2>&1; then
            tail -n 20 "$work/build.log" >&2
            echo "tcp.sh: the build failed" >&2
            exit 1
        fi
        tail -n 1 "$work/build.log"
    fi
fi
if [[ ! -x $bin ]]; then
    echo "tcp.sh: $bin is missing: build with swift build -c release" >&2
    exit 1
fi

# 2. The loop, built fresh into the temporary directory.
"$CC" -O2 -Wall -Wextra -o "$work/tcploop" bench/tcploop.c

# 3. tracefs (both applets use sock/ tracepoints; mounted here so that no tracer pays for it),
#    bpffs for the pin, and the cgroup v2 mount for the foreign cgroup.
if [[ ! -e /sys/kernel/tracing/events ]]; then
    mount -t tracefs tracefs /sys/kernel/tracing
fi
for tp in sock_send_length sock_recv_length inet_sock_set_state; do
    if [[ ! -d /sys/kernel/tracing/events/sock/$tp ]]; then
        echo "tcp.sh: this kernel has no sock/$tp tracepoint (Linux 6.12 or later needed)" >&2
        exit 1
    fi
done
bpffs=$(awk '$3 == "bpf" { print $2; exit }' /proc/self/mounts)
cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
if [[ -z $bpffs || -z $cg2 ]]; then
    echo "tcp.sh: needs a BPF file system and cgroup v2 mounted (bpffs: '${bpffs}', cgroup2: '${cg2}')" >&2
    exit 1
fi

# 4. A cgroup that nothing runs in, and a bcc-layout map that holds only its id: with
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
le64() {
    local hex i out=()
    hex=$(printf '%016x' "$1")
    for i in 14 12 10 8 6 4 2 0; do out+=("${hex:$i:2}"); done
    echo "${out[@]}"
}
pin=$bpffs/$name
bpftool map create "$pin" type hash key 8 value 8 entries 8 name tcpbench
# shellcheck disable=SC2046 # le64 prints eight separate hex bytes
bpftool map update pinned "$pin" key hex $(le64 "$cgid") value hex 00 00 00 00 00 00 00 00

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    tree=$(git rev-parse --short HEAD)
    git diff --quiet HEAD -- Sources bpf Package.swift || tree+=" + uncommitted changes in Sources, bpf or Package.swift"
    echo "tree:    $tree"
fi
echo "bpfbox:  $bin ($(stat -c %s "$bin") bytes)"
echo "loop:    bench/tcploop.c, $("$CC" --version | head -n 1) -O2"

python3 bench/tcp.py --bpfbox "$bin" --loop "$work/tcploop" --cgroupmap "$pin" \
    --map-cgroup "$cgdir (id $cgid)" --rounds "$ROUNDS" --warmup "$WARMUP" \
    --send-n "$SEND_N" --send-big-n "$SEND_BIG_N" --connect-n "$CONNECT_N" \
    --loop-warmup "$LOOP_WARMUP" --cpu "$LOOP_CPU" ${JSON:+--json "$JSON"}
