#!/usr/bin/env python3
"""Loopback TCP latency and throughput with and without `bpfbox sockmap`.

Run by bench/sockmap.sh, which builds everything and creates the cgroup first. Every round runs,
in one pass (the order of the configurations reversed every other round, so that drift on a
noisy machine hits every configuration alike):

  tcp             no sockmap: plain loopback TCP
  sockmap         `bpfbox sockmap -c CG 3600` attached: every write decided by the sk_msg program
  sockmap-apply   `bpfbox sockmap -c CG --apply-bytes N 3600`: one verdict covers N bytes

and, in each configuration, these loops (bench/sockbench, started inside CG, so that both ends
of its connection are in the cgroup and made after sockmap attached):

  rr 64 B            64-byte request, 64-byte response; one thread drives both non-blocking
                     ends: the cost of the data path alone (no wake-ups). p50 and p99 latency.
  rr 64 B forked     the same with a forked server process, both blocking in read() and both
                     pinned to one CPU (taskset): every round trip adds two wake-ups and two
                     context switches, but no cross-CPU placement noise.
  stream SIZE        MiB written in SIZE-byte write() calls (64 B, 4 KiB, 64 KiB), read in
                     256 KiB reads; one thread (writes until the socket is full, then drains)
                     and forked (a child reads, not pinned). Throughput from wall time.

sockmap is started before the loops of its configuration, the harness waits for its
"Splicing ..." line, and it is stopped with SIGINT after them: it must exit 0 and its "Totals:"
line must show spliced writes (else the run is invalid and the harness stops, exit 2). It should
also show two tracked sockets per loop (client and accepted end) and nothing passed to TCP;
otherwise a warning is printed. `bpftool cgroup show CG effective` is checked before and after
each configuration: the tcp runs must have no sock_ops program over the cgroup, the sockmap runs
exactly one.

The summary gives, per loop, the median over rounds of each figure, the speed-up against tcp
(tcp latency / latency, or throughput / tcp throughput: above 1 is better) from the medians, and
the median over rounds of the speed-up within a round ("paired", which cancels drift between
rounds). Targets, judged on the paired speed-up: p50 latency at least 2x lower (paired >= 2.0);
throughput no regression (paired >= 0.95, the noise allowance).
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from benchlib import read_until

LATENCY_TARGET = 2.0
THROUGHPUT_FLOOR = 0.95


class RunError(Exception):
    pass


class InvalidRun(Exception):
    pass




class Sockmap:
    """`bpfbox sockmap` started and attached; prints nothing more until SIGINT (interval 3600)."""

    def __init__(self, argv, timeout):
        self.argv = argv
        self.timeout = timeout
        out_r, out_w = os.pipe()
        self.err = tempfile.TemporaryFile()
        t0 = time.monotonic_ns()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=self.err,
                                     close_fds=True)
        os.close(out_w)
        self.fd = out_r
        self.out = bytearray()
        if not read_until(self.fd, self.out, lambda b: b"\n" in b, time.monotonic() + timeout):
            err, _ = self.stop(check=False)
            raise RunError("%s: not attached within %.0f s%s" % (" ".join(argv), timeout, err))
        self.attach_ms = (time.monotonic_ns() - t0) / 1e6
        first = bytes(self.out).split(b"\n", 1)[0]
        if not first.startswith(b"Splicing"):
            err, _ = self.stop(check=False)
            raise RunError("%s: unexpected first line %r%s" % (" ".join(argv), first[:80], err))

    def stop(self, check=True):
        """SIGINT; returns (stderr text, output)."""
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
        self.err.seek(0)
        text = self.err.read().decode(errors="replace").strip()
        self.err.close()
        err = ("\n" + text) if text else ""
        if check and rc != 0:
            raise RunError("%s: exit status %s after SIGINT%s" % (" ".join(self.argv), rc, err))
        return err, bytes(self.out).decode(errors="replace")


TOTALS = re.compile(r"Totals: (\d+) sockets tracked, (\d+) (?:writes spliced|redirect decisions)(?: \((\d+) KB\))?, "
                    r"(\d+) passed to TCP \((\d+) KB\)(?:, (\d+) sockets? the map refused)?")


def parse_totals(output):
    for line in output.splitlines():
        m = TOTALS.match(line)
        if m:
            return {
                "line": line,
                "sockets": int(m.group(1)),
                "spliced": int(m.group(2)),
                "spliced_kb": int(m.group(3)) if m.group(3) is not None else None,
                "passed": int(m.group(4)),
                "passed_kb": int(m.group(5)),
                "refused": int(m.group(6) or 0),
            }
    return None


def sock_ops_programs(cgroup):
    """sock_ops programs in effect for cgroup (its own and inherited), from bpftool; None when
    bpftool is not available."""
    try:
        proc = subprocess.run(["bpftool", "-j", "cgroup", "show", cgroup, "effective"],
                              capture_output=True, timeout=10)
        entries = json.loads(proc.stdout.strip() or b"[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return sorted("%s (id %s)" % (e.get("name", "?"), e.get("id")) for e in entries
                  if e.get("attach_type") in ("sock_ops", "cgroup_sock_ops"))


FIELD = re.compile(rb"(\w+)=(\S+)")


def run_loop(cgroup, argv, timeout):
    """Runs the loop with its process moved into cgroup first; returns its fields."""
    script = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'
    full = ["sh", "-c", script, "sh", cgroup] + argv
    proc = subprocess.run(full, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RunError("%s: exit status %d\n%s" % (" ".join(argv), proc.returncode,
                                                    proc.stderr.decode(errors="replace").strip()))
    fields = {k.decode(): v.decode() for k, v in FIELD.findall(proc.stdout)}
    if fields.get("mode") == "rr":
        return {"p50_us": int(fields["p50_ns"]) / 1e3, "p99_us": int(fields["p99_ns"]) / 1e3,
                "mean_us": int(fields["mean_ns"]) / 1e3}
    if fields.get("mode") == "stream":
        return {"gbit_s": int(fields["bytes"]) * 8 / int(fields["ns"]), "ms": int(fields["ns"]) / 1e6,
                "cpu_ms": int(fields["cpu_ns"]) / 1e6}
    raise RunError("%s: unexpected output %r" % (" ".join(argv), proc.stdout[:200]))


def human(size):
    return "%d KiB" % (size // 1024) if size >= 1024 else "%d B" % size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpfbox", required=True, help="bpfbox binary")
    ap.add_argument("--loop", required=True, help="bench/sockbench binary")
    ap.add_argument("--cgroup", required=True, help="cgroup v2 directory the loops run in")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first")
    ap.add_argument("--rr-n", type=int, default=50000, help="round trips per request/response run")
    ap.add_argument("--stream-mb", default="64=32,4096=512,65536=1024",
                    help="write size=MiB per streaming run, comma-separated")
    ap.add_argument("--pin-cpu", type=int, default=1, help="CPU of the forked request/response loop")
    ap.add_argument("--apply-bytes", type=int, default=1048576, help="--apply-bytes of sockmap-apply")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", help="also write every run and the summary to this file")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("sockmap.py: run as root (BPF)", file=sys.stderr)
        return 1
    if args.rounds < 1:
        print("sockmap.py: --rounds must be at least 1", file=sys.stderr)
        return 1

    stream_mb = [(int(s), int(mb)) for s, mb in (item.split("=") for item in args.stream_mb.split(","))]
    loop = args.loop
    # name -> (argv, kind)
    loops = [("rr 64 B", [loop, "rr", "64", str(args.rr_n)], "rr"),
             ("rr 64 B forked", ["taskset", "-c", str(args.pin_cpu), loop, "-f", "rr", "64", str(args.rr_n)], "rr")]
    for size, mb in stream_mb:
        loops.append(("stream %s" % human(size), [loop, "stream", str(size), str(mb)], "stream"))
        loops.append(("stream %s forked" % human(size), [loop, "-f", "stream", str(size), str(mb)], "stream"))
    configs = [
        ("tcp", None),
        ("sockmap", [args.bpfbox, "sockmap", "-c", args.cgroup, "3600"]),
        ("sockmap-apply", [args.bpfbox, "sockmap", "-c", args.cgroup, "--apply-bytes", str(args.apply_bytes), "3600"]),
    ]

    print("rounds:  %d (+%d warm-up), order %s, then reversed"
          % (args.rounds, args.warmup, ", ".join(c[0] for c in configs)))
    print("per run: rr %d round trips; stream %s; forked rr pinned to CPU %d (taskset -c), forked stream not pinned"
          % (args.rr_n, ", ".join("%d MiB in %s writes" % (mb, human(s)) for s, mb in stream_mb), args.pin_cpu))
    print("sockmap: %s" % " ".join(configs[1][1]))
    present = sock_ops_programs(args.cgroup)
    if present is None:
        print("others:  bpftool not found: not checked for other sock_ops programs over the cgroup")
    else:
        print("others:  %s" % ("; ".join(present) if present else "no sock_ops program in effect on the cgroup"))
    print()
    print("%-6s %-14s %-20s %10s %10s   %s" % ("round", "config", "loop", "p50 us", "p99 us", ""))
    print("%-6s %-14s %-20s %10s %10s   %s" % ("", "", "", "Gbit/s", "wall ms", "check"))

    results = {}  # (loop, config) -> list of runs, in round order
    checks = []
    warnings = []
    total = args.warmup + args.rounds
    for i in range(total):
        label = "warm" if i < args.warmup else str(i - args.warmup + 1)
        order = configs if i % 2 == 0 else list(reversed(configs))
        for name, argv in order:
            sm = None
            try:
                if argv:
                    sm = Sockmap(argv, args.timeout)
                programs = sock_ops_programs(args.cgroup)
                runs = []
                for title, loop_argv, kind in loops:
                    r = run_loop(args.cgroup, loop_argv, args.timeout)
                    runs.append((title, kind, r))
                programs_after = sock_ops_programs(args.cgroup)
                check = ""
                if sm:
                    err, output = sm.stop()
                    sm = None
                    totals = parse_totals(output)
                    if totals is None:
                        raise RunError("%s printed no Totals line:\n%s%s" % (" ".join(argv), output.strip(), err))
                    check = totals["line"]
                    if totals["spliced"] == 0:
                        raise InvalidRun("round %s, %s: nothing was spliced: %s" % (label, name, totals["line"]))
                    if totals["sockets"] != 2 * len(loops) or totals["passed"] or totals["refused"]:
                        warnings.append("round %s, %s: %d loops should make %d tracked sockets and pass "
                                        "nothing to TCP: %s" % (label, name, len(loops), 2 * len(loops),
                                                                 totals["line"]))
                    if err:
                        warnings.append("round %s, %s said on stderr:%s" % (label, name, err))
                    checks.append({"round": label, "config": name, "totals": totals})
            except (RunError, subprocess.TimeoutExpired) as error:
                if sm:
                    sm.stop(check=False)
                print("sockmap.py: %s" % error, file=sys.stderr)
                return 1
            except InvalidRun as error:
                print("sockmap.py: invalid run: %s" % error, file=sys.stderr)
                return 2
            want = 1 if argv else 0
            for seen in (programs, programs_after):
                if seen is not None and len(seen) != want:
                    warnings.append("round %s, %s: %d sock_ops program(s) in effect on the cgroup, %d expected: %s"
                                    % (label, name, len(seen), want, "; ".join(seen)))
                    break
            for title, kind, r in runs:
                if kind == "rr":
                    print("%-6s %-14s %-20s %10.2f %10.2f" % (label, name, title, r["p50_us"], r["p99_us"]))
                else:
                    print("%-6s %-14s %-20s %10.2f %10.1f" % (label, name, title, r["gbit_s"], r["ms"]))
                if i >= args.warmup:
                    results.setdefault((title, name), []).append(r)
            if check:
                print("%-6s %-14s %s" % (label, name, check))
            sys.stdout.flush()

    # Figures: (loop title, key, unit, higher is better, target)
    figures = []
    for title, _, kind in loops:
        if kind == "rr":
            figures.append((title, "p50_us", "p50 us", False, "latency"))
            figures.append((title, "p99_us", "p99 us", False, None))
        else:
            figures.append((title, "gbit_s", "Gbit/s", True, "throughput"))

    print()
    print("medians over %d rounds; x = speed-up against tcp (tcp/latency, throughput/tcp: above 1 is better)"
          % args.rounds)
    print("from the medians, and paired = median over rounds of the speed-up within the round")
    head = "%-20s %-7s %9s" % ("loop", "figure", "tcp")
    for name, _ in configs[1:]:
        head += " | %13s %6s %6s %-4s" % (name, "x", "paired", "")
    print(head)
    summary = {}
    verdicts = {name: {"pass": 0, "fail": 0} for name, _ in configs[1:]}
    for title, key, unit, higher, target in figures:
        base = results[(title, "tcp")]
        b = statistics.median(r[key] for r in base)
        line = "%-20s %-7s %9.2f" % (title, unit, b)
        entry = {"tcp": b}
        for name, _ in configs[1:]:
            runs = results[(title, name)]
            v = statistics.median(r[key] for r in runs)
            ratio = v / b if higher else b / v
            per_round = [(rv[key] / rb[key]) if higher else (rb[key] / rv[key]) for rb, rv in zip(base, runs)]
            paired = statistics.median(per_round)
            if target == "latency":
                verdict = "PASS" if paired >= LATENCY_TARGET else "FAIL"
            elif target == "throughput":
                verdict = "PASS" if paired >= THROUGHPUT_FLOOR else "FAIL"
            else:
                verdict = ""
            if verdict:
                verdicts[name][verdict.lower()] += 1
            entry[name] = {"median": v, "speedup": ratio, "paired_speedup": paired,
                           "paired_min": min(per_round), "paired_max": max(per_round), "verdict": verdict or None}
            line += " | %13.2f %5.2fx %5.2fx %-4s" % (v, ratio, paired, verdict)
        summary["%s / %s" % (title, unit)] = entry
        print(line)
    print()
    print("targets (on the paired speed-up): p50 latency >= %.1fx (at least %.0fx lower); "
          "throughput >= %.2fx (no regression beyond noise)" % (LATENCY_TARGET, LATENCY_TARGET, THROUGHPUT_FLOOR))
    for name, _ in configs[1:]:
        print("%s: %d of %d targets met" % (name, verdicts[name]["pass"], verdicts[name]["pass"] + verdicts[name]["fail"]))

    sys.stdout.flush()
    for w in warnings:
        print("sockmap.py: warning: %s" % w, file=sys.stderr)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "rounds": args.rounds,
                "warmup": args.warmup,
                "rr_n": args.rr_n,
                "stream_mb": dict(stream_mb),
                "pin_cpu": args.pin_cpu,
                "apply_bytes": args.apply_bytes,
                "runs": {"%s / %s" % k: v for k, v in results.items()},
                "sockmap_totals": checks,
                "summary": summary,
                "verdicts": verdicts,
                "warnings": warnings,
            }, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
