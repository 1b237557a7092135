#!/bin/bash
# soak.sh: every long-running applet at once for DURATION seconds (default 600) under a steady
# load of execs, opens, capability checks, TCP connections and UDP in a cgroup of its own;
# samples each tool's RSS and open file descriptors every INTERVAL seconds (default 10).
#
#   scripts/soak.sh                 # as root, after swift build (BPFBOX=... for another binary)
#   DURATION=60 scripts/soak.sh     # the short version
#
# Prints, per applet, RSS and fds at the first sample (after one interval of warm-up), at the
# last, and the largest, and "stable" when RSS grew by less than 2 MB and the fd count did not
# change; exits 1 otherwise, or when a tool died.
set -euo pipefail
cd "$(dirname "$0")/.."
BPFBOX=${BPFBOX:-.build/debug/bpfbox}
HELPER=${HELPER:-.build/debug/testhelper}
DURATION=${DURATION:-600}
INTERVAL=${INTERVAL:-10}
NAME=${NAME:-bpfbox-soak}
[ "$(id -u)" = 0 ] || { echo "soak.sh: run as root" >&2; exit 1; }
CG2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
cg="$CG2/$NAME-$$"
mkdir "$cg"
work=$(mktemp -d)
load=
pids=()
cleanup() {
	# The load is a background shell, which ignores SIGINT: it gets SIGTERM.
	[ -z "$load" ] || kill -TERM "$load" 2>/dev/null || true
	for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
	rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT

# The load: about a hundred of each per second.
sh -c 'echo $$ > "$1/cgroup.procs"; while :; do
	for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; cat /nonexistent/soak 2>/dev/null; done
	"$2" tcpio 127.0.0.1 4096 4096 >/dev/null; "$2" udp - - 10 100 >/dev/null; "$2" chown /nonexistent/soak >/dev/null
	sleep 0.05
done' sh "$cg" "$HELPER" &
load=$!

applets=("execsnoop" "opensnoop" "capable" "tcpconnect" "tcptop -C" "skbcount -c $cg" "sockmap -c $cg")
tools=()
for applet in "${applets[@]}"; do
	read -r -a words <<< "$applet"
	case "${words[0]}" in skbcount|sockmap) extra=() ;; *) extra=(--cgroup "$cg") ;; esac
	"$BPFBOX" "${words[@]}" "${extra[@]}" > /dev/null 2> "$work/${words[0]}.err" &
	pids+=($!)
	tools+=($!)
done

sample() { # PID -> "RSS_KB FDS"
	echo "$(awk '/^VmRSS/ { print $2 }' "/proc/$1/status") $(ls "/proc/$1/fd" | wc -l)"
}
declare -A first last max
elapsed=0
while [ "$elapsed" -lt "$DURATION" ]; do
	sleep "$INTERVAL"
	elapsed=$((elapsed + INTERVAL))
	for i in "${!tools[@]}"; do
		pid=${tools[$i]}
		[ -d "/proc/$pid" ] || { echo "soak.sh: ${applets[$i]} died: $(cat "$work/$(echo "${applets[$i]}" | cut -d' ' -f1).err")" >&2; exit 1; }
		s=$(sample "$pid")
		[ -n "${first[$i]:-}" ] || first[$i]=$s
		last[$i]=$s
		rss=${s% *}
		[ "${max[$i]:-0}" -ge "$rss" ] || max[$i]=$rss
	done
done
status=0
printf '%-12s %10s %10s %10s %8s %8s  %s\n' applet "RSS first" "RSS last" "RSS max" "fds first" "fds last" verdict
for i in "${!tools[@]}"; do
	read -r rss0 fd0 <<< "${first[$i]}"
	read -r rss1 fd1 <<< "${last[$i]}"
	verdict=stable
	if [ $((rss1 - rss0)) -ge 2048 ] || [ "$fd0" != "$fd1" ]; then verdict=GROWING; status=1; fi
	printf '%-12s %7d KB %7d KB %7d KB %8d %8d  %s\n' "$(echo "${applets[$i]}" | cut -d' ' -f1)" "$rss0" "$rss1" "${max[$i]}" "$fd0" "$fd1" "$verdict"
done
echo "($DURATION s, samples every $INTERVAL s; load: execs, opens, capability checks, TCP and UDP in $cg)"
exit $status
