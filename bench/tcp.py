#!/usr/bin/env python3
"""Cost per send() with `bpfbox tcptop` attached and per connect() with `bpfbox tcpconnect`.

Run by bench/tcp.sh, which builds everything and creates the filter map first. Every round runs,
in one pass (the order reversed every other round, so that drift on a noisy machine hits every
configuration alike):

  none               no tracer: send 64 B, send 16 KiB, connect
  tcptop             `bpfbox tcptop -C 1` attached: send 64 B, send 16 KiB
  tcpconnect         `bpfbox tcpconnect` attached: connect
  tcpconnect-cgmap   `bpfbox tcpconnect --cgroupmap MAP`, MAP holding only a cgroup the loop is
                     not in (every connect filtered out in the kernel): connect

The loops are bench/tcploop (one process, loopback). Measured per run, per iteration (one
send, or one connect):

  wall     the loop's CLOCK_MONOTONIC time / N: for send, one send() and the recv() calls that
           drain it on the other end; for connect, socket + connect + accept + two closes. What
           the traced program experiences, including time other tasks (the tracer too) ran on
           its CPU.
  cpu      the loop's own CPU time / N (CLOCK_PROCESS_CPUTIME_ID): leaves those out.
  call     the time inside send() (connect()) alone: the mean, and the median of the N calls
           (p50; occasional preempted or interrupted calls do not move it).
  tracer   CPU time of the tracer process while the loop process ran (sum of
           /proc/PID/task/*/schedstat), / (N + untimed iterations): work done outside the loop,
           on the other CPU when it is free.

A tracer is started before the runs of its configuration, the harness waits for the line it
prints once attached ("Tracing..." for tcptop, the column header for tcpconnect), and it is
stopped with SIGINT after them (it must exit 0). Its stdout is a 1 MiB pipe that the harness
reads only before and after the runs (no reader wakes up while the loop runs); after the runs
the rows are checked: tcpconnect must show every connect of the loop (and none with the map),
tcptop must account for the loop's bytes.

The summary gives, per loop and tracer, the median over rounds of each figure without and with
the tracer, the difference of the medians ("added"), their ratio, and the median over rounds of
the difference within a round ("paired", which cancels drift between rounds).
"""

import argparse
import fcntl
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from benchlib import percentile, read_until

PIPE_BYTES = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


class RunError(Exception):
    pass






def cpu_ns(pid):
    """CPU time of every thread of pid, from schedstat (ns)."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
    except OSError:
        return None
    return total


class Tracer:
    """A bpfbox applet started and attached; stdout is a large pipe read only between runs."""

    def __init__(self, argv, ready_prefix, timeout):
        self.argv = argv
        self.timeout = timeout
        out_r, out_w = os.pipe()
        try:
            fcntl.fcntl(out_w, F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass
        self.pipe_bytes = fcntl.fcntl(out_w, F_GETPIPE_SZ)
        self.err = tempfile.TemporaryFile()
        t0 = time.monotonic_ns()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=self.err,
                                     close_fds=True)
        os.close(out_w)
        self.fd = out_r
        self.out = bytearray()
        if not read_until(self.fd, self.out, lambda b: b"\n" in b, time.monotonic() + timeout):
            err = self.stop(check=False)
            raise RunError("%s: not attached within %.0f s%s" % (" ".join(argv), timeout, err))
        self.attach_ms = (time.monotonic_ns() - t0) / 1e6
        first = bytes(self.out).split(b"\n", 1)[0]
        if not first.startswith(ready_prefix):
            err = self.stop(check=False)
            raise RunError("%s: unexpected first line %r%s" % (" ".join(argv), first[:80], err))

    def stderr(self):
        self.err.seek(0)
        text = self.err.read().decode(errors="replace").strip()
        return ("\n" + text) if text else ""

    def collect(self, predicate=lambda b: False, wait=0.0):
        """Reads what the tracer wrote so far (and until predicate holds, at most wait s)."""
        read_until(self.fd, self.out, lambda b: False, time.monotonic())
        if wait > 0:
            read_until(self.fd, self.out, predicate, time.monotonic() + wait)
        return bytes(self.out)

    def cpu_ns(self):
        return cpu_ns(self.proc.pid)

    def stop(self, check=True):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + self.timeout
        read_until(self.fd, self.out, lambda b: False, deadline)
        try:
            rc = self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        os.close(self.fd)
        err = self.stderr()
        self.err.close()
        if check and rc != 0:
            raise RunError("%s: exit status %s after SIGINT%s" % (" ".join(self.argv), rc, err))
        return err


TRACEPOINTS = ("sock_send_length", "sock_recv_length", "inet_sock_set_state")


def other_programs(exclude_pids=()):
    """BPF programs other tools have attached to the tracepoints measured here ("pid N:
    tracepoint" for each), from bpftool; None when bpftool is not available. A program of
    someone else's on inet_sock_set_state runs in every untraced run too and makes the
    baseline slower."""
    found = []
    try:
        perf = json.loads(subprocess.run(["bpftool", "-j", "perf"], capture_output=True,
                                         timeout=10).stdout or b"[]")
        links = json.loads(subprocess.run(["bpftool", "-j", "link"], capture_output=True,
                                          timeout=10).stdout or b"[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    for entry in perf:
        if entry.get("tracepoint") in TRACEPOINTS and entry.get("pid") not in exclude_pids:
            found.append("pid %s: %s (prog %s)" % (entry.get("pid"), entry["tracepoint"], entry.get("prog_id")))
    for entry in links:
        if entry.get("tp_name") in TRACEPOINTS:
            pids = [p.get("pid") for p in entry.get("pids", [])]
            if not any(pid in exclude_pids for pid in pids):
                found.append("%s: raw %s (prog %s)" % ("pids %s" % pids if pids else "unknown pid", entry["tp_name"], entry.get("prog_id")))
    return found


LINE = re.compile(rb"(\w+)=(\S+)")


def run_loop(loop_argv, timeout):
    proc = subprocess.run(loop_argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RunError("%s: exit status %d\n%s" % (" ".join(loop_argv), proc.returncode,
                                                    proc.stderr.decode(errors="replace").strip()))
    fields = dict(LINE.findall(proc.stdout))
    return {
        "ns_per_op": float(fields[b"ns_per_op"]),
        "cpu_per_op": float(fields[b"cpu_per_op"]),
        "ns_per_call": float(fields[b"ns_per_call"]),
        "call_p50": float(fields[b"call_p50"]),
        "extra": int(fields.get(b"extra", b"0")),
        "pid": int(fields[b"pid"]),
    }


def tcpconnect_rows(output, pid):
    """Rows of tcpconnect's default output whose PID column is pid."""
    prefix = str(pid).encode()
    return sum(1 for line in output.split(b"\n") if line.split(b" ", 1)[0] == prefix)


def tcptop_sent_kib(output, pid):
    """TX_KB summed over tcptop's rows of pid (one row per connection per interval)."""
    total = 0
    prefix = str(pid).encode()
    for line in output.split(b"\n"):
        cols = line.split()
        if len(cols) >= 6 and cols[0] == prefix and cols[-1].isdigit():
            total += int(cols[-1])
    return total


METRICS = [
    ("wall", "ns_per_op", "wall time per iteration"),
    ("cpu", "cpu_per_op", "loop CPU time per iteration"),
    ("call", "ns_per_call", "inside the call, mean"),
    ("call p50", "call_p50", "inside the call, median"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpfbox", required=True, help="bpfbox binary")
    ap.add_argument("--loop", required=True, help="bench/tcploop binary")
    ap.add_argument("--cgroupmap", required=True,
                    help="pinned bcc-layout cgroup map holding a cgroup this process is not in")
    ap.add_argument("--map-cgroup", default="", help="the cgroup in the map (printed only)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first")
    ap.add_argument("--send-n", type=int, default=20000, help="64-byte sends per run")
    ap.add_argument("--send-big-n", type=int, default=10000, help="16-KiB sends per run")
    ap.add_argument("--connect-n", type=int, default=3000, help="connects per run")
    ap.add_argument("--loop-warmup", type=int, default=500, help="untimed iterations in each loop")
    ap.add_argument("--cpu", type=int, default=-1, help="pin the loop to this CPU (default: no)")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json", help="also write every run and the summary to this file")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("tcp.py: run as root (BPF)", file=sys.stderr)
        return 1

    loop = [args.loop, "-w", str(args.loop_warmup)] + (["-C", str(args.cpu)] if args.cpu >= 0 else [])
    workloads = {
        "send 64 B": loop + ["send", str(args.send_n), "64"],
        "send 16 KiB": loop + ["send", str(args.send_big_n), "16384"],
        "connect": loop + ["connect", str(args.connect_n)],
    }
    iterations = {"send 64 B": args.send_n, "send 16 KiB": args.send_big_n, "connect": args.connect_n}
    sizes = {"send 64 B": 64, "send 16 KiB": 16384}
    configs = [
        ("none", None, None, ["send 64 B", "send 16 KiB", "connect"]),
        ("tcptop", [args.bpfbox, "tcptop", "-C", "1"], b"Tracing...", ["send 64 B", "send 16 KiB"]),
        ("tcpconnect", [args.bpfbox, "tcpconnect"], b"PID", ["connect"]),
        ("tcpconnect-cgmap", [args.bpfbox, "tcpconnect", "--cgroupmap", args.cgroupmap], b"PID", ["connect"]),
    ]
    pairs = [
        ("send 64 B", "tcptop"),
        ("send 16 KiB", "tcptop"),
        ("connect", "tcpconnect"),
        ("connect", "tcpconnect-cgmap"),
    ]

    with open("/proc/self/cgroup") as f:
        own = [line.strip().split(":", 2)[2] for line in f if line.startswith("0::")]
    print("loop:    %s; cgroup v2 %s" % (" ".join(loop[1:]), own[0] if own else "?"))
    print("map:     %s holds %s" % (args.cgroupmap, args.map_cgroup or "?"))
    print("rounds:  %d (+%d warm-up), order none, tcptop, tcpconnect, tcpconnect-cgmap, then reversed"
          % (args.rounds, args.warmup))
    print("per run: %d sends of 64 B, %d sends of 16 KiB, %d connects (+%d untimed first)"
          % (args.send_n, args.send_big_n, args.connect_n, args.loop_warmup))
    others = other_programs()
    if others is None:
        print("others:  bpftool not found: not checked for other programs on %s" % ", ".join(TRACEPOINTS))
    else:
        print("others:  %s" % ("; ".join(others) if others else "no other BPF program on %s" % ", ".join(TRACEPOINTS)))
    print()
    print("ns per iteration:")
    print("%-6s %-16s %-12s %9s %9s %9s %9s %9s %7s  %s" % (
        "round", "tracer", "loop", "wall", "cpu", "call", "call p50", "tracer", "att ms", "check"))

    results = {}  # (workload, config) -> list of runs
    warnings = []
    foreign = {}  # another tool's program -> the round/configuration runs it was attached in
    total = args.warmup + args.rounds
    for i in range(total):
        label = "warm" if i < args.warmup else str(i - args.warmup + 1)
        order = configs if i % 2 == 0 else list(reversed(configs))
        for name, argv, ready, loads in order:
            try:
                tracer = Tracer(argv, ready, args.timeout) if argv else None
            except RunError as error:
                print("tcp.py: %s" % error, file=sys.stderr)
                return 1
            runs = []
            # A run is only comparable if nobody else traces these hooks meanwhile: look before
            # and after the runs of this configuration.
            own_pids = (tracer.proc.pid,) if tracer else ()
            others = set(other_programs(own_pids) or [])
            try:
                for load in loads:
                    before = tracer.cpu_ns() if tracer else None
                    r = run_loop(workloads[load], args.timeout)
                    after = tracer.cpu_ns() if tracer else None
                    # The tracer's CPU over the whole loop process, untimed iterations included.
                    r["tracer_ns_per_op"] = ((after - before) / (iterations[load] + args.loop_warmup)
                                             if before is not None and after is not None else None)
                    r["attach_ms"] = tracer.attach_ms if tracer else None
                    runs.append((load, r))
                # The tracer's rows, once every run of this configuration is done.
                checks = {}
                for load, r in runs:
                    expected = iterations[load] + args.loop_warmup
                    if name.startswith("tcpconnect"):
                        want = 0 if name.endswith("cgmap") else expected
                        # Rows of the last connects may still be on their way: wait for all of
                        # them (or, filtered, a moment for any that should not come).
                        tracer.collect(lambda b: want and tcpconnect_rows(bytes(b), r["pid"]) >= want,
                                       wait=3.0 if want else 0.2)
                        seen = tcpconnect_rows(tracer.collect(), r["pid"])
                        checks[r["pid"]] = "%d/%d rows" % (seen, want)
                        r["rows"] = seen
                        ok = seen == want
                    elif name == "tcptop":
                        # One table a second; rows are KiB rounded down per connection and
                        # interval, so allow a few.
                        want = expected * sizes[load] // 1024
                        slack = max(3, want // 200)
                        tracer.collect(lambda b: tcptop_sent_kib(bytes(b), r["pid"]) >= want - slack,
                                       wait=2.5)
                        kib = tcptop_sent_kib(tracer.collect(), r["pid"])
                        checks[r["pid"]] = "%d/%d KiB" % (kib, want)
                        r["sent_kib"] = kib
                        ok = abs(kib - want) <= slack
                    else:
                        checks[r["pid"]] = ""
                        ok = True
                    if r["extra"]:
                        checks[r["pid"]] += " %d extra send() calls" % r["extra"]
                    if not ok:
                        warnings.append("round %s, %s, %s: %s" % (label, name, load, checks[r["pid"]]))
            except (RunError, subprocess.TimeoutExpired) as error:
                if tracer:
                    tracer.stop(check=False)
                print("tcp.py: %s" % error, file=sys.stderr)
                return 1
            others |= set(other_programs(own_pids) or [])
            if others:
                for other in others:
                    foreign.setdefault(other, []).append("%s/%s" % (label, name))
                for _, r in runs:
                    r["others"] = sorted(others)
                    checks[r["pid"]] += " (others attached)"
            if tracer:
                try:
                    err = tracer.stop()
                except RunError as error:
                    print("tcp.py: %s" % error, file=sys.stderr)
                    return 1
                if err:
                    warnings.append("round %s, %s said on stderr:%s" % (label, name, err))
            for load, r in runs:
                print("%-6s %-16s %-12s %9.0f %9.0f %9.0f %9.0f %9s %7s  %s" % (
                    label, name, load, r["ns_per_op"], r["cpu_per_op"], r["ns_per_call"], r["call_p50"],
                    "-" if r["tracer_ns_per_op"] is None else "%.0f" % r["tracer_ns_per_op"],
                    "-" if r["attach_ms"] is None else "%.0f" % r["attach_ms"], checks[r["pid"]]))
                if i >= args.warmup:
                    results.setdefault((load, name), []).append(r)
            sys.stdout.flush()

    def stats(values):
        return {"median": statistics.median(values), "p90": percentile(values, 90),
                "min": min(values), "max": max(values)}

    summary = {}
    for (load, name), runs in results.items():
        summary["%s / %s" % (load, name)] = {
            key: stats([r[key] for r in runs])
            for key in ("ns_per_op", "cpu_per_op", "ns_per_call", "call_p50", "tracer_ns_per_op")
            if all(r[key] is not None for r in runs)
        }

    print()
    print("medians over %d rounds, ns per iteration (one send, or one connect):" % args.rounds)
    print("%-12s %-16s %-9s %9s %9s %9s %7s %9s" % (
        "loop", "tracer", "figure", "none", "traced", "added", "ratio", "paired"))
    added = {}
    for load, name in pairs:
        base, traced = results[(load, "none")], results[(load, name)]
        entry = {}
        for title, key, _ in METRICS:
            b = statistics.median(r[key] for r in base)
            t = statistics.median(r[key] for r in traced)
            # Each round's traced run minus the untraced run of the same round.
            paired = statistics.median(rt[key] - rb[key] for rb, rt in zip(base, traced))
            entry[key] = {"none": b, "traced": t, "added": t - b, "ratio": t / b, "paired_added": paired}
            print("%-12s %-16s %-9s %9.0f %9.0f %+9.0f %7.3f %+9.0f" % (
                load, name, title, b, t, t - b, t / b, paired))
        tracer_cpu = statistics.median(r["tracer_ns_per_op"] for r in traced)
        entry["tracer_ns_per_op"] = tracer_cpu
        print("%-12s %-16s %-9s %9s %9.0f" % (load, name, "tracer", "", tracer_cpu))
        added["%s / %s" % (load, name)] = entry
    print()
    print("wall: the loop's time; cpu: the loop's CPU time; call: inside send() / connect(), mean;")
    print("call p50: median call; tracer: the tracer's CPU time (all threads, user + kernel).")
    print("added = traced median - none median; paired = median over rounds of traced - none.")

    for other, where in sorted(foreign.items()):
        warnings.append("another tool's program was attached (%s) during %d of the %d round/tracer "
                        "steps: %s" % (other, len(where), total * len(configs),
                                       ", ".join(where) if len(where) <= 8 else
                                       "%s ... %s" % (", ".join(where[:4]), ", ".join(where[-4:]))))
    for w in warnings:
        print("tcp.py: warning: %s" % w, file=sys.stderr)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "rounds": args.rounds,
                "iterations": iterations,
                "loop_warmup": args.loop_warmup,
                "runs": {"%s / %s" % k: v for k, v in results.items()},
                "summary": summary,
                "added": added,
                "warnings": warnings,
            }, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
