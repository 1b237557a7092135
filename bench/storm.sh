#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# storm.sh: event storms against opensnoop and execsnoop, full size (the CI test,
# Tests/IntegrationTests/StormTests.swift, runs 200,000 opens and 2,000 execs).
#
#   bench/storm.sh            # as root, after swift build -c release and swift build --product testhelper
#
# For each run: a generator (testhelper storm) waits in a cgroup of its own; the tool, selecting
# that cgroup with --json and default settings (or a larger --ringbuf-kb), is attached and
# synchronized; then the generator makes its events as fast as it can, the tool is stopped with
# SIGINT (it drains its ring and counts the losses), and the script checks
#     received (lines with the storm's marker) + lost (stderr "M in all") == generated
# and that JSON's last lost_events_total agrees with stderr. It prints one line per run:
# generated, received, lost, the generation rate, the rate the tool consumed events at, and its
# peak RSS.
#
# Environment: BPFBOX (default .build/release/bpfbox), HELPER (.build/debug/testhelper),
# OPENS (1000000), EXECS (100000), BIG_KB (ring size of the lossless runs, 262144),
# NAME (cgroup name prefix, bpfbox-storm).
set -euo pipefail

BPFBOX=${BPFBOX:-.build/release/bpfbox}
HELPER=${HELPER:-.build/debug/testhelper}
OPENS=${OPENS:-1000000}
EXECS=${EXECS:-100000}
BIG_KB=${BIG_KB:-262144}
NAME=${NAME:-bpfbox-storm}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init storm.sh
for f in "$BPFBOX" "$HELPER"; do [ -x "$f" ] || bench_die "$f is missing (build it first)"; done
bench_mounts
CG2=$cg2
bench_on_exit 'rmdir "$CG2/$NAME"-$$-* 2>/dev/null'

now() { date +%s.%N; }

# run APPLET KIND COUNT [TOOL ARGS...]
run() {
	local applet=$1 kind=$2 count=$3
	shift 3
	local cg="$CG2/$NAME-$$-$RANDOM" prefix="/nonexistent/storm-$$-$RANDOM" fifo="$work/go-$RANDOM"
	mkdir "$cg"
	mkfifo "$fifo"
	# Read-write open of the FIFO does not block: the helper is exec'd and waiting before the
	# tool starts, so its own start (ld.so's opens) is not part of the storm.
	sh -c 'echo $$ > "$1/cgroup.procs" && exec "$2" storm "$3" "$4" "$5" <>"$6"' sh \
		"$cg" "$HELPER" "$kind" "$prefix" "$count" "$fifo" > "$work/gen" &
	local gen=$!
	until grep -q '^pid ' "$work/gen" 2>/dev/null; do sleep 0.01; done
	"$BPFBOX" "$applet" --json --cgroup "$cg" "$@" > "$work/out" 2> "$work/err" &
	local tool=$!
	local i=0
	until grep -q '/nonexistent/sync-' "$work/out"; do
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "storm.sh: $applet never attached: $(cat "$work/err")" >&2; exit 1; }
		sh -c 'echo $$ > "$1/cgroup.procs" && exec cat "/nonexistent/sync-$2" 2>/dev/null' sh "$cg" "$i" || true
		sleep 0.05
	done
	local t0 t1 t2 peak
	t0=$(now)
	echo go > "$fifo"
	wait "$gen"
	t1=$(now)
	peak=$(awk '/^VmHWM/ { print $2 }' "/proc/$tool/status")
	kill -INT "$tool"
	wait "$tool"
	t2=$(now)
	local received lost json
	received=$(grep -c -- "$prefix-" "$work/out" || true)
	lost=$(sed -n 's/.* events lost (\([0-9]*\) in all).*/\1/p' "$work/err" | tail -n1)
	lost=${lost:-0}
	json=$({ grep '^{"lost_events"' "$work/out" || true; } | tail -n1 | sed 's/.*"lost_events_total":\([0-9]*\).*/\1/')
	json=${json:-0}
	local verdict=ok
	[ $((received + lost)) -eq "$count" ] || verdict="MISMATCH (received + lost = $((received + lost)))"
	[ "$json" -eq "$lost" ] || verdict="$verdict; JSON says $json lost"
	awk -v a="$applet $*" -v n="$count" -v r="$received" -v l="$lost" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v p="$peak" -v v="$verdict" \
		'BEGIN { printf "%-36s generated %8d  received %8d  lost %8d  gen %8.0f/s  consumed %8.0f/s  peak RSS %6.1f MB  %s\n",
		         a, n, r, l, n / (t1 - t0), r / (t2 - t0), p / 1024, v }'
	rmdir "$cg"
}

run opensnoop opens "$OPENS"
run opensnoop opens "$OPENS" --ringbuf-kb "$BIG_KB"
run execsnoop execs "$EXECS"
run execsnoop execs "$EXECS" --ringbuf-kb "$BIG_KB"
