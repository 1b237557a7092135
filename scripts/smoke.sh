#!/bin/sh
# Smoke test of every applet on the running kernel, as root: each applet is started with the
# container filter on a "container" (a cgroup-v2 directory and a mount namespace made here),
# events are triggered with unique markers inside it and outside it, and the test checks that
# the inside ones are shown and the outside ones are not.
#
#   scripts/smoke.sh BPFBOX TESTHELPER
#
# POSIX sh: it runs under busybox (in the guests of scripts/portability.sh) and dash (on a host).
# Prints, per applet, "result APPLET PASS|FAIL|SKIP [reason]" and "hooks APPLET SECTIONS" (what
# --verbose said), then exits 1 when an applet failed.
set -u
absolute() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
BPFBOX=$(absolute "${1:?usage: smoke.sh BPFBOX TESTHELPER}")
HELPER=$(absolute "${2:?usage: smoke.sh BPFBOX TESTHELPER}")
PREFIX=${BPFBOX_SMOKE_PREFIX:-bpfbox-smoke}-$$
WAIT=${BPFBOX_SMOKE_WAIT:-60}   # seconds an applet may take to attach (emulated guests are slow)

[ "$(id -u)" = 0 ] || { echo "smoke.sh: needs root (it loads BPF programs and makes cgroups)" >&2; exit 2; }
CG2=$(sed -n 's/^[^ ]* [^ ]* [^ ]* [^ ]* \([^ ]*\) .* - cgroup2 .*/\1/p' /proc/self/mountinfo | head -n 1)
[ -n "$CG2" ] || { echo "smoke.sh: no cgroup2 mount (mount -t cgroup2 none /sys/fs/cgroup)" >&2; exit 2; }

WORK=$(mktemp -d "/tmp/$PREFIX.XXXXXX")
IN=$CG2/$PREFIX-in
OUT=$CG2/$PREFIX-out
TOOL=
SLEEPER=
failed=0

cleanup() {
	[ -n "$TOOL" ] && kill -INT "$TOOL" 2>/dev/null && wait "$TOOL" 2>/dev/null
	[ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null && wait "$SLEEPER" 2>/dev/null
	for cg in "$IN" "$OUT"; do
		[ -d "$cg" ] && rmdir "$cg" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir "$IN" "$OUT" || exit 2
# The container: a process in cgroup IN with a mount namespace of its own.
sh -c 'echo $$ > "$1/cgroup.procs" && exec unshare -m sleep 100000' sh "$IN" &
SLEEPER=$!
i=0
while [ "$(readlink /proc/$SLEEPER/ns/mnt 2>/dev/null)" = "$(readlink /proc/self/ns/mnt)" ] ||
	[ -z "$(readlink /proc/$SLEEPER/ns/mnt 2>/dev/null)" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "smoke.sh: cannot make a mount namespace (unshare -m)" >&2; exit 2; }
	sleep 0.1
done
FILTER="--cgroup $IN --mntns-of $SLEEPER"

# Runs a command inside the container (its cgroup and mount namespace), or outside it.
inside() { sh -c 'cg=$1 ns=$2; shift 2; echo $$ > "$cg/cgroup.procs" && exec nsenter -t "$ns" -m -- "$@"' sh "$IN" "$SLEEPER" "$@"; }
outside() { sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$OUT" "$@"; }

# start APPLET ARGS...: runs bpfbox APPLET ARGS in the background and waits until it says
# (--verbose) which hooks it attached.
start() {
	APPLET=$1
	: >"$WORK/$APPLET.err"
	"$BPFBOX" "$@" >"$WORK/$APPLET.out" 2>"$WORK/$APPLET.err" &
	TOOL=$!
	i=0
	while ! grep -q "^$APPLET: hooks: " "$WORK/$APPLET.err"; do
		if ! kill -0 "$TOOL" 2>/dev/null; then
			wait "$TOOL"
			TOOL=
			return 1
		fi
		i=$((i + 1))
		[ $i -gt $((WAIT * 10)) ] && return 1
		sleep 0.1
	done
	hooks=$(sed -n "s/^$APPLET: hooks: //p" "$WORK/$APPLET.err" | head -n 1)
	echo "hooks $APPLET $hooks"
}

# stop: SIGINT, which makes the applet print what it still holds and exit 0.
stop() {
	kill -INT "$TOOL" 2>/dev/null
	wait "$TOOL"
	status=$?
	TOOL=
	return $status
}

pass() { echo "result $APPLET PASS${1:+ $1}"; }
fail() {
	echo "result $APPLET FAIL $1"
	failed=1
	echo "--- $APPLET stderr (last lines):"
	grep -v '^libbpf: ' "$WORK/$APPLET.err" | tail -n 5
	echo "--- $APPLET stdout (last lines):"
	tail -n 5 "$WORK/$APPLET.out"
}

# run_applet APPLET ARGS...: start, or report why it did not.
run_applet() {
	if ! start "$@"; then
		fail "did not start: $(grep -v '^libbpf: ' "$WORK/$1.err" | tail -n 1)"
		return 1
	fi
}

# check SEEN_PATTERN HIDDEN_PATTERN: the inside event is in the output, the outside one is not.
check() {
	if ! stop; then fail "exit status $status"
	elif ! grep -q -- "$1" "$WORK/$APPLET.out"; then fail "inside event not shown ($1)"
	elif grep -q -- "$2" "$WORK/$APPLET.out"; then fail "outside event shown ($2)"
	else pass "${3:-}"
	fi
}

helper_pid() { sed -n 's/^pid //p' | head -n 1; }

smoke_execsnoop() {
	run_applet execsnoop --verbose $FILTER || return
	inside /bin/echo "$PREFIX-exec-in" >/dev/null
	outside /bin/echo "$PREFIX-exec-out" >/dev/null
	check "$PREFIX-exec-in" "$PREFIX-exec-out"
}

smoke_opensnoop() {
	touch "$WORK/open-in" "$WORK/open-out"
	run_applet opensnoop --verbose $FILTER || return
	inside cat "$WORK/open-in" >/dev/null
	outside cat "$WORK/open-out" >/dev/null
	check "$WORK/open-in" "$WORK/open-out"
}

# Where an applet ran on fentry/fexit, its kprobe fallback is tried too (as if fentry had
# been refused at load, as under lockdown): smoke_twice APPLET.
smoke_twice() {
	hooks=
	"smoke_$1"
	if echo "$hooks" | grep -q fexit; then
		export BPFBOX_REFUSE_HOOKS=fentry
		"smoke_$1"
		unset BPFBOX_REFUSE_HOOKS
	fi
}

smoke_capable() {
	touch "$WORK/chown"
	run_applet capable --verbose --json $FILTER || return
	in=$(inside "$HELPER" chown "$WORK/chown" | helper_pid)
	out=$(outside "$HELPER" chown "$WORK/chown" | helper_pid)
	audit=
	grep -q '"audit":' "$WORK/capable.out" && audit="with AUDIT"
	check "\"pid\":$in,.*\"name\":\"CAP_CHOWN\",.*\"verdict\":\"allow\"" "\"pid\":$out," "$audit"
}

smoke_tcpconnect() {
	port=$((20000 + $$ % 20000))
	run_applet tcpconnect --verbose --json $FILTER || return
	inside "$HELPER" connect 127.0.0.1 "$port" >/dev/null
	outside "$HELPER" connect 127.0.0.1 "$((port + 1))" >/dev/null
	check "\"dport\":$port," "\"dport\":$((port + 1)),"
}

smoke_tcptop() {
	# One interval that ends at SIGINT: the counts of each connection in one row.
	run_applet tcptop --verbose --json $FILTER 3600 || return
	in=$(inside "$HELPER" tcpio 127.0.0.1 12345 54321 | helper_pid)
	out=$(outside "$HELPER" tcpio 127.0.0.1 12345 54321 | helper_pid)
	# The client end: exactly the bytes it sent and received (peeks and failed calls not counted).
	check "\"pid\":$in,.*\"rx_bytes\":54321,\"tx_bytes\":12345," "\"pid\":$out," "exact bytes"
}

smoke_skbcount() {
	run_applet skbcount --verbose --json --cumulative -c "$IN" 3600 || return
	inside "$HELPER" udp "$IN" "$IN" 5 100 >/dev/null
	outside "$HELPER" udp "$OUT" "$OUT" 5 100 >/dev/null
	check "\"cgroup\":\"/[^\"]*$PREFIX-in\",\"rx_packets\":5,\"rx_bytes\":640,\"tx_packets\":5,\"tx_bytes\":640," "$PREFIX-out" "exact packets"
	if ! KernelHasCgroupIter; then
		# --pin needs iter/cgroup (6.1): it must say so in one line.
		"$BPFBOX" skbcount --pin /sys/fs/bpf/$PREFIX -c "$IN" >/dev/null 2>"$WORK/pin.err"
		if [ $? = 1 ] && grep -q "Linux 6.1" "$WORK/pin.err"; then
			echo "note skbcount --pin refused as expected: $(cat "$WORK/pin.err")"
		else
			fail "--pin on a kernel without iter/cgroup: $(cat "$WORK/pin.err")"
		fi
	fi
}

# Whether the kernel has the cgroup iterator (Linux 6.1 and later).
KernelHasCgroupIter() {
	case $(uname -r) in
	[0-4].* | 5.* | 6.0.*) return 1 ;;
	*) return 0 ;;
	esac
}

smoke_sockmap() {
	run_applet sockmap -v --json -c "$IN" 3600 || return
	in=$(inside "$HELPER" splice 4 - - 1 4096)
	out=$(outside "$HELPER" splice 4 - - 1 4096)
	if ! stop; then fail "exit status $status"
	elif ! echo "$in" | grep -q "^tcp_bytes_sent 0$"; then fail "inside connection not spliced: $(echo "$in" | tr '\n' ' ')"
	elif ! echo "$out" | grep -q "^tcp_bytes_sent 4097$"; then fail "outside connection spliced: $(echo "$out" | tr '\n' ' ')"
	elif [ "$(echo "$in" "$out" | grep -c '^ok ')" != 4 ]; then fail "payload damaged"
	else pass "payload intact"
	fi
}

echo "kernel $(uname -r)"
for applet in ${BPFBOX_SMOKE_APPLETS:-execsnoop opensnoop capable tcpconnect tcptop skbcount sockmap}; do
	APPLET=$applet
	smoke_twice "$applet"
done
exit $failed
