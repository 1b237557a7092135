#!/usr/bin/env bash
# Start-to-attached time and peak RSS of `bpfbox execsnoop` against a minimal C + libbpf
# execsnoop that loads the same BPF object (the one bpfbox embeds), in the same run.
#
#   sudo bench/startup.sh                      # 20 interleaved rounds
#   sudo ROUNDS=50 bench/startup.sh
#   sudo BPFBOX_BIN=.build-bench/release/bpfbox bench/startup.sh
#
# Environment:
#   ROUNDS          measured rounds (default 20); WARMUP unrecorded rounds first (default 1)
#   EXECS           exec events generated while each tool runs (default 20)
#   BPFBOX_SCRATCH  SwiftPM scratch path to build in (default .build)
#   SWIFT_BUILD_FLAGS  extra `swift build` flags, e.g. --static-swift-stdlib (use another
#                   BPFBOX_SCRATCH then, such as .build-static, so .build is not rebuilt)
#   NO_BUILD        set: use the binary in BPFBOX_SCRATCH as it is
#   BPFBOX_BIN      bpfbox binary (default $BPFBOX_SCRATCH/release/bpfbox); when given, no build
#   BPF_OBJECT      execsnoop.bpf.o (default: found under the scratch path of BPFBOX_BIN)
#   CC              C compiler for the reference (default cc)
#   JSON            also write all runs and the summary to this file
#
# Targets: start within 1.2x of the C reference, peak RSS within 1.5x (ratios of medians).
# Exits 0 whenever the measurement completes, whatever the verdict (it is a benchmark, not a
# test); non-zero only when it could not measure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

ROUNDS=${ROUNDS:-20}
WARMUP=${WARMUP:-1}
EXECS=${EXECS:-20}
CC=${CC:-cc}

if [[ $(id -u) -ne 0 ]]; then
    echo "startup.sh: run as root (loading BPF needs it): sudo $0" >&2
    exit 1
fi

work=$(mktemp -d /tmp/bpfbox-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

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
            echo "startup.sh: the build failed" >&2
            exit 1
        fi
        tail -n 1 "$work/build.log"
    fi
fi
if [[ ! -x $bin ]]; then
    echo "startup.sh: $bin is missing: build with swift build -c release" >&2
    exit 1
fi

# 2. The object bpfbox embeds, as linked by the build plugin (the scratch path is two levels
#    above <scratch>/release/bpfbox, or three above <scratch>/<triple>/release/bpfbox).
object=${BPF_OBJECT:-}
if [[ -z $object ]]; then
    dir=$(dirname "$bin")
    for _ in 1 2 3; do
        dir=$(dirname "$dir")
        if [[ -d $dir/plugins ]]; then
            object=$(find "$dir/plugins" -name execsnoop.bpf.o -print -quit)
            [[ -n $object ]] && break
        fi
    done
fi
if [[ -z $object || ! -f $object ]]; then
    echo "startup.sh: execsnoop.bpf.o not found near $bin; set BPF_OBJECT" >&2
    exit 1
fi

# 3. The C reference and the launcher, built fresh into the temporary directory.
"$CC" -O2 -Wall -Wextra -o "$work/execsnoop_ref" bench/ref/execsnoop_ref.c -lbpf -lelf -lz
"$CC" -O2 -Wall -Wextra -o "$work/launch" bench/launch.c

# Classic tracepoints need tracefs; mount it once here so that neither tool pays for it.
if [[ ! -e /sys/kernel/tracing/events ]]; then
    mount -t tracefs tracefs /sys/kernel/tracing
fi

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    tree=$(git rev-parse --short HEAD)
    git diff --quiet HEAD -- Sources bpf Package.swift || tree+=" + uncommitted changes in Sources, bpf or Package.swift"
    echo "tree:    $tree"
fi
echo "bpfbox:  $bin ($(stat -c %s "$bin") bytes)"
echo "C ref:   $("$CC" --version | head -n 1), libbpf $(pkg-config --modversion libbpf 2>/dev/null || echo '?')"

python3 bench/startup.py --bpfbox "$bin" --ref "$work/execsnoop_ref" --object "$object" \
    --launcher "$work/launch" --rounds "$ROUNDS" --warmup "$WARMUP" --execs "$EXECS" \
    ${JSON:+--json "$JSON"}
