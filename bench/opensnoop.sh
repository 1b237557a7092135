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
#   CC              C compiler for the loop and the reference loader (default cc)
#   JSON            also write all runs and the summary to this file
#
# Targets: bpfbox's filtered-out overhead per open no worse than bpftrace's unfiltered one-liner;
# no silent loss. Exits 0 whenever the measurement completes, whatever the verdicts (it is a
# benchmark, not a test); non-zero only when it could not measure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init opensnoop.sh

ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
N=${N:-200000}
REPS=${REPS:-3}
LOOP_WARMUP=${LOOP_WARMUP:-10000}
SINK=${SINK:-/dev/null}
STORM=${STORM:-1000000}

for tool in bpftool python3 "$CC" clang; do
    command -v "$tool" >/dev/null || bench_die "$tool is missing (apt-get install -y bpftool python3 gcc clang)"
done

# 1. bpfbox, release; the loop; the C reference loader and the bare cgroup-lookup object.
bench_bpfbox
bench_cc openloop bench/openloop.c
bench_cc loader bench/ref/loader.c -lbpf -lelf -lz
bench_bpf_object cgroup_lookup bench/ref/cgroup_lookup.bpf.c
bench_mounts

# 2. bpftrace: installed if missing, then checked by a real attach (a version string alone does
#    not prove it can load programs here). When it cannot run, say why and measure the rest.
bpftrace_bin=${BPFTRACE:-}
bpftrace_why=""
if [[ -z $bpftrace_bin ]]; then
    if bench_need_tool bpftrace; then
        bpftrace_bin=$(command -v bpftrace)
    else
        bpftrace_why=$bench_why
    fi
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

bench_conditions
if [[ -n $bpftrace_bin ]]; then
    echo "bpftrace: $bpftrace_bin ($("$bpftrace_bin" --version 2>/dev/null | head -n 1))"
else
    echo "bpftrace: NOT MEASURED: $bpftrace_why"
fi
echo "loop:     $("$CC" --version | head -n 1), -O2; openat(AT_FDCWD, PATH, O_RDONLY) + close"

args=(--bpfbox "$bin" --openloop "$work/openloop" --loader "$work/loader" --lookup-object "$work/cgroup_lookup.bpf.o" --rounds "$ROUNDS" --warmup "$WARMUP" --n "$N"
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
