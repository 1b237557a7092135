#!/usr/bin/env bash
# The highest event rate `bpfbox opensnoop --json` sustains with zero loss at default settings,
# with stdout on /dev/null and in a file, against the C + libbpf loader of the same object
# (bench/lossfree.py). A paced generator opens a marker file RATE times a second in a cgroup of
# its own; the tools select that cgroup with --cgroupmap.
#
#   sudo bench/lossfree.sh                     # 50k..300k events/s, 10 s each
#   sudo RATES=200000 DURATION=10 bench/lossfree.sh
#
# Environment:
#   RATES       comma-separated events/s (default 50000,100000,150000,200000,250000,300000)
#   DURATION    seconds per run (default 10); REPS runs per rate and configuration (default 1)
#   CONFIGS     bpfbox-null,bpfbox-file,c-file (default: all); bpfbox-null:KB and
#               bpfbox-file:KB add runs with --ringbuf-kb KB (is a loss the ring's slack?)
#   OUT_DIR     where the output files go (default /var/tmp; up to ~1 GB per run at 300k/s)
#   BPFBOX_BIN, BPFBOX_SCRATCH, SWIFT_BUILD_FLAGS, NO_BUILD, CC: see bench/lib.sh
#   JSON        also write all runs and the summary to this file
#
# Target: zero loss at 200,000 events/s for 10 s with default buffers. Exits 0 whenever the
# measurement completes, whatever the verdict.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init lossfree.sh

RATES=${RATES:-50000,100000,150000,200000,250000,300000}
DURATION=${DURATION:-10}
REPS=${REPS:-1}
CONFIGS=${CONFIGS:-bpfbox-null,bpfbox-file,c-file}
OUT_DIR=${OUT_DIR:-/var/tmp}

command -v bpftool >/dev/null || bench_die "bpftool is missing (apt-get install -y bpftool)"
bench_bpfbox
object=$(bench_object opensnoop.bpf.o) || bench_die "opensnoop.bpf.o not found near $bin"
bench_cc openloop bench/openloop.c
bench_cc loader bench/ref/loader.c -lbpf -lelf -lz
bench_mounts

bench_conditions
echo "object:  $object"

python3 bench/lossfree.py --bpfbox "$bin" --openloop "$work/openloop" --loader "$work/loader" \
    --object "$object" --rates "$RATES" --duration "$DURATION" --reps "$REPS" --configs "$CONFIGS" \
    --dir "$OUT_DIR" ${JSON:+--json "$JSON"}
