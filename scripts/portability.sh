#!/bin/sh
# Kernel portability: builds the release binary, then runs scripts/smoke.sh (every applet, with
# the container filter, events inside and outside a container) on each kernel, and prints a
# table kernel x applet.
#
#   scripts/portability.sh [KERNEL...]      default: 5.10 6.1 6.12 host
#
# KERNEL is a Debian kernel series booted under QEMU by run-on-kernel, or "host" (the running
# kernel, directly). run-on-kernel is $RUN_ON_KERNEL, by default ../shared/kernels/run-on-kernel
# next to the repository; without it the guest kernels are skipped (SKIP), the host still runs.
# BPFBOX_PORTABILITY_NO_BUILD=1 uses the release binary as it is. Needs root.
# Exit status: 0 when nothing failed, 1 otherwise.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_ON_KERNEL=${RUN_ON_KERNEL:-$ROOT/../shared/kernels/run-on-kernel}
SMOKE=$ROOT/scripts/smoke.sh
BIN=$ROOT/.build/release
APPLETS="execsnoop opensnoop capable tcpconnect tcptop skbcount sockmap"
[ $# -gt 0 ] || set -- 5.10 6.1 6.12 host

cd "$ROOT" || exit 2
if [ "${BPFBOX_PORTABILITY_NO_BUILD:-}" != 1 ]; then
	swift build -c release >/dev/null || { echo "portability: swift build -c release failed" >&2; exit 1; }
fi
for f in "$BIN/bpfbox" "$BIN/testhelper"; do
	[ -x "$f" ] || { echo "portability: $f is missing: run swift build -c release" >&2; exit 2; }
done

LOGS=$(mktemp -d /tmp/bpfbox-portability.XXXXXX)
status=0
for kernel in "$@"; do
	log=$LOGS/$kernel
	echo "== $kernel" >&2
	if [ "$kernel" = host ]; then
		sh "$SMOKE" "$BIN/bpfbox" "$BIN/testhelper" >"$log" 2>&1
	elif [ ! -x "$RUN_ON_KERNEL" ]; then
		echo "skip run-on-kernel not found at $RUN_ON_KERNEL (set RUN_ON_KERNEL)" >"$log"
	else
		"$RUN_ON_KERNEL" --kernel "$kernel" --timeout "${BPFBOX_PORTABILITY_TIMEOUT:-900}" \
			--add "$BIN/bpfbox" --add "$BIN/testhelper" --add "$SMOKE" \
			-- /bin/sh "$SMOKE" "$BIN/bpfbox" "$BIN/testhelper" >"$log" 2>&1
		rc=$?
		[ $rc = 124 ] && echo "skip timed out (run-on-kernel exit 124)" >>"$log"
		[ $rc = 125 ] && echo "skip the guest did not run (run-on-kernel exit 125)" >>"$log"
	fi
	grep -v '^\(result\|hooks\|kernel\|skip\|note\) ' "$log" | sed "s/^/  [$kernel] /" >&2
done

# The table: one row per kernel, one column per applet; reasons and hooks below it.
printf '%-30s' KERNEL
for applet in $APPLETS; do printf ' %-10s' "$applet"; done
echo
for kernel in "$@"; do
	log=$LOGS/$kernel
	name=$(sed -n 's/^kernel //p' "$log" | head -n 1)
	printf '%-30s' "$kernel${name:+ ($name)}"
	for applet in $APPLETS; do
		# An applet may run more than once (its fallback hooks too): one FAIL fails it.
		cell=$(sed -n "s/^result $applet \([A-Z]*\).*/\1/p" "$log" | sort -u | head -n 1)
		if [ -z "$cell" ]; then
			cell=SKIP
			grep -q '^skip ' "$log" || cell=FAIL
		fi
		[ "$cell" = FAIL ] && status=1
		printf ' %-10s' "$cell"
	done
	echo
done
echo
for kernel in "$@"; do
	log=$LOGS/$kernel
	sed -n "s/^skip \(.*\)/$kernel: SKIP: \1/p" "$log"
	for applet in $APPLETS; do
		sed -n "s/^hooks $applet //p" "$log" | while read -r hooks; do
			echo "$kernel $applet: $hooks"
		done
		sed -n "s/^result $applet \([A-Z]*\) \(..*\)/$kernel $applet: \1 \2/p" "$log"
	done
	sed -n "s/^note /$kernel: /p" "$log"
done
rm -rf "$LOGS"
exit $status
