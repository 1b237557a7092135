#!/usr/bin/env bash
# Start to first event, peak RSS and steady-state RSS of `bpfbox execsnoop`, `opensnoop` and
# `tcpconnect` against a minimal C + libbpf loader of the same BPF objects (bench/ref/loader.c)
# and against bpftrace's equivalent one-liners, interleaved in one run (bench/startup.py).
#
#   sudo bench/startup.sh                      # 10 interleaved rounds
#   sudo ROUNDS=30 bench/startup.sh
#   sudo BPFBOX_BIN=.build-bench/release/bpfbox bench/startup.sh
#
# Environment:
#   ROUNDS          measured rounds (default 10); WARMUP unrecorded rounds first (default 1)
#   STEADY          seconds of tracing after the first event, before steady-state RSS (default 1)
#   APPLETS         applets to measure (default "execsnoop opensnoop tcpconnect")
#   BPFTRACE        bpftrace binary (default: bpftrace on PATH, installed with apt-get if missing)
#   BPFBOX_BIN, BPFBOX_SCRATCH, SWIFT_BUILD_FLAGS, NO_BUILD, NO_INSTALL, CC: see bench/lib.sh
#   JSON            also write all runs and the summary to this file
#
# Targets (ratios of medians): start to first event bpfbox/C <= 1.1 and bpftrace/bpfbox >= 5;
# steady-state RSS bpfbox/C <= 1.0; peak RSS bpfbox/C <= 1.3. Exits 0 whenever the measurement
# completes, whatever the verdict; non-zero only when it could not measure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init startup.sh

ROUNDS=${ROUNDS:-10}
WARMUP=${WARMUP:-1}
STEADY=${STEADY:-1}
APPLETS=${APPLETS:-execsnoop opensnoop tcpconnect}

bench_bpfbox
objects=()
for applet in $APPLETS; do
    object=$(bench_object "$applet.bpf.o") || bench_die "$applet.bpf.o not found near $bin"
    objects+=(--object "$applet=$object")
done
bench_cc loader bench/ref/loader.c -lbpf -lelf -lz
bench_cc launch bench/launch.c
bench_cc openloop bench/openloop.c
bench_mounts

bpftrace_args=()
if [[ -n ${BPFTRACE:-} ]]; then
    bpftrace_args=(--bpftrace "$BPFTRACE")
elif bench_need_tool bpftrace; then
    bpftrace_args=(--bpftrace "$(command -v bpftrace)")
else
    bpftrace_args=(--no-bpftrace-reason "$bench_why")
fi

bench_conditions
echo "C ref:   bench/ref/loader.c, $("$CC" --version | head -n 1), libbpf $(pkg-config --modversion libbpf 2>/dev/null || echo '?')"
[[ ${bpftrace_args[0]} == --bpftrace ]] && echo "bpftrace: $("${bpftrace_args[1]}" --version 2>/dev/null | head -n 1)"

python3 bench/startup.py --bpfbox "$bin" --loader "$work/loader" "${objects[@]}" \
    --launcher "$work/launch" --openloop "$work/openloop" "${bpftrace_args[@]}" \
    --rounds "$ROUNDS" --warmup "$WARMUP" --steady "$STEADY" ${JSON:+--json "$JSON"}
