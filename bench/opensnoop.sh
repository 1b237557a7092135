#!/usr/bin/env bash
# Per-open overhead of `bpfbox opensnoop` (filtered out by a cgroup map, and emitting every open)
# against bpftrace's opensnoop one-liner, in the same run; then a storm of 1,000,000 opens that
# checks the events lost are all reported (arrived + reported lost == opens).
#
#   sudo bench/opensnoop.sh                    # 5 interleaved rounds, then the storms
#   sudo ROUNDS=10 bench/opensnoop.sh
#   sudo BPFBOX_BIN=.build-bench/release/bpfbox bench/opensnoop.sh
#
# Environment:
#   ROUNDS          measured rounds (default 5); WARMUP unrecorded rounds first (default 1)
#   N               timed opens per loop (default 200000); REPS loops per tracer start (default 3)
#   LOOP_WARMUP     untimed opens before each loop (default 10000)
#   LOOP_CPU        pin the loop to this CPU (default: not pinned)
#   SINK            stdout of the emitting tracers (default /dev/null)
#   EXTRA           extra configurations, comma-separated: bpfbox-emit-n (-n openloop, matched in
#                   the kernel), bpfbox-pid-filtered (-p 1), bpftrace-floor (always-false predicates)
#   STORM           opens in each storm (default 1000000); SKIP_STORM=file-256k,file-16k,slowpipe-256k|all
#   BPFBOX_SCRATCH  SwiftPM scratch path to build in (default .build)
#   NO_BUILD        set: use the binary in BPFBOX_SCRATCH as it is
#   BPFBOX_BIN      bpfbox binary (default $BPFBOX_SCRATCH/release/bpfbox); when given, no build
#   BPFTRACE        bpftrace binary (default: bpftrace on PATH, installed with apt-get if missing)
#   NO_INSTALL      set: do not install bpftrace when it is missing
#   CC              C compiler for the loop (default cc)
#   JSON            also write all runs and the summary to this file
#
# Targets: bpfbox's filtered-out overhead per open no worse than bpftrace's unfiltered one-liner;
# no silent loss. Exits 0 whenever the measurement completes, whatever the verdicts (it is a
# benchmark, not a test); non-zero only when it could not measure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
N=${N:-200000}
REPS=${REPS:-3}
LOOP_WARMUP=${LOOP_WARMUP:-10000}
SINK=${SINK:-/dev/null}
STORM=${STORM:-1000000}
CC=${CC:-cc}

if [[ $(id -u) -ne 0 ]]; then
    echo "opensnoop.sh: run as root (loading BPF, creating cgroups and pinned maps needs it): sudo $0" >&2
    exit 1
fi
for tool in bpftool python3 "$CC"; do
    if ! command -v "$tool" >/dev/null; then
        echo "opensnoop.sh: $tool is missing (apt-get install -y bpftool python3 gcc)" >&2
        exit 1
    fi
done

work=$(mktemp -d /tmp/bpfbox-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. bpfbox, release.
if [[ -n ${BPFBOX_BIN:-} ]]; then
    bin=$BPFBOX_BIN
else
    scratch=${BPFBOX_SCRATCH:-.build}
    bin=$scratch/release/bpfbox
    if [[ -z ${NO_BUILD:-} ]]; then
        echo "== swift build -c release --scratch-path $scratch"
        if ! swift build -c release --scratch-path "$scratch" >"$work/build.log" 2>&1; then
            tail -n 20 "$work/build.log" >&2
            echo "opensnoop.sh: the build failed" >&2
            exit 1
        fi
        tail -n 1 "$work/build.log"
    fi
fi
if [[ ! -x $bin ]]; then
    echo "opensnoop.sh: $bin is missing: build with swift build -c release" >&2
    exit 1
fi

# 2. The loop.
"$CC" -O2 -Wall -Wextra -o "$work/openloop" bench/openloop.c

# 3. bpftrace: installed if missing, then checked by a real attach (a version string alone does
#    not prove it can load programs here). When it cannot run, say why and measure the rest.
bpftrace_bin=${BPFTRACE:-$(command -v bpftrace || true)}
bpftrace_why=""
if [[ -z $bpftrace_bin && -z ${NO_INSTALL:-} ]]; then
    echo "== apt-get install -y bpftrace"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y bpftrace >"$work/apt.log" 2>&1; then
        tail -n 5 "$work/apt.log" >&2
        bpftrace_why="apt-get install -y bpftrace failed: $(tail -n 1 "$work/apt.log")"
    fi
    bpftrace_bin=$(command -v bpftrace || true)
fi
if [[ -z $bpftrace_bin && -z $bpftrace_why ]]; then
    bpftrace_why="bpftrace is not installed${NO_INSTALL:+ (NO_INSTALL is set)}"
fi

# Classic tracepoints need tracefs; mount it once here so that no tool pays for it.
if [[ ! -e /sys/kernel/tracing/events ]]; then
    mount -t tracefs tracefs /sys/kernel/tracing
fi

if [[ -n $bpftrace_bin ]]; then
    # The smallest program on the same tracepoint, run for a moment: does it load and attach?
    status=0
    timeout -s INT 20 "$bpftrace_bin" -e 'tracepoint:syscalls:sys_enter_openat { @n = count(); } interval:ms:300 { exit(); }' \
        >"$work/bpftrace-check.out" 2>"$work/bpftrace-check.err" || status=$?
    if [[ $status -ne 0 ]]; then
        # bpftrace 0.17 always warns about RLIMIT_MEMLOCK here (no CAP_SYS_RESOURCE); it is harmless.
        message=$(grep -v RLIMIT_MEMLOCK "$work/bpftrace-check.err" | tr '\n' ' ' | cut -c1-400 || true)
        bpftrace_why="$bpftrace_bin cannot trace here (exit status $status${message:+: ${message% }})"
        bpftrace_bin=""
    elif ! grep -q '^@n: [0-9]' "$work/bpftrace-check.out"; then
        bpftrace_why="$bpftrace_bin ran but counted no openat: $(tr '\n' ' ' <"$work/bpftrace-check.out" | cut -c1-400 || true)"
        bpftrace_bin=""
    fi
fi

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    tree=$(git rev-parse --short HEAD)
    git diff --quiet HEAD -- Sources bpf Package.swift || tree+=" + uncommitted changes in Sources, bpf or Package.swift"
    [[ -n ${BPFBOX_BIN:-} ]] && tree+=" (the checkout; the binary is BPFBOX_BIN, built from whatever it was built from)"
    echo "tree:     $tree"
fi
echo "bpfbox:   $bin ($(stat -c %s "$bin") bytes)"
if [[ -n $bpftrace_bin ]]; then
    echo "bpftrace: $bpftrace_bin ($("$bpftrace_bin" --version 2>/dev/null | head -n 1))"
else
    echo "bpftrace: NOT MEASURED: $bpftrace_why"
fi
echo "loop:     $("$CC" --version | head -n 1), -O2; openat(AT_FDCWD, PATH, O_RDONLY) + close"

args=(--bpfbox "$bin" --openloop "$work/openloop" --rounds "$ROUNDS" --warmup "$WARMUP" --n "$N"
      --reps "$REPS" --loop-warmup "$LOOP_WARMUP" --sink "$SINK" --storm "$STORM")
if [[ -n $bpftrace_bin ]]; then
    args+=(--bpftrace "$bpftrace_bin")
else
    args+=(--no-bpftrace-reason "$bpftrace_why")
fi
[[ -n ${LOOP_CPU:-} ]] && args+=(--loop-cpu "$LOOP_CPU")
[[ -n ${EXTRA:-} ]] && args+=(--extra "$EXTRA")
[[ -n ${SKIP_STORM:-} ]] && args+=(--skip-storm "$SKIP_STORM")
[[ -n ${JSON:-} ]] && args+=(--json "$JSON")

python3 bench/opensnoop.py "${args[@]}"
