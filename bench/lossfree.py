#!/usr/bin/env python3
"""The highest event rate `bpfbox opensnoop` sustains without losing an event, at default
settings (default ring buffer, JSON output), against the C + libbpf loader of the same object.

Run by bench/lossfree.sh. A paced generator (bench/openloop -r RATE, CLOCK_MONOTONIC schedule)
joins a cgroup of its own and opens one marker file RATE times a second for DURATION seconds.
The tool selects that cgroup only (bcc's --cgroupmap: a pinned hash map holding the cgroup's
id), so every event it receives is one of the generator's. Per rate (ascending) and
configuration (order rotating):

  bpfbox-null   bpfbox opensnoop --json --cgroupmap MAP > /dev/null
                received = generated - lost (the tool's "N events lost (M in all)" lines)
  bpfbox-file   the same with stdout in a file; received = lines with the marker path, and
                received + lost must equal generated (no silent loss)
  c-file        bench/ref/loader -g MAP opensnoop.bpf.o > file (one short line per event); lost
                from the object's lost_events counter, which the loader prints at exit
  bpfbox-null:KB, bpfbox-file:KB
                (not by default) the same with --ringbuf-kb KB: whether a loss comes from the
                ring's slack (how long the consumer may fall behind) or from throughput

The tool is started, waited for until the kernel lists its programs on the open tracepoints,
given a moment to settle, then the generator runs; the tool is stopped with SIGINT shortly after
the generator ends (it drains its ring first). Reported per run: generated, received, lost, the
rate the generator achieved (a loaded machine may not reach the asked rate: then the row says
so), the generator's largest lag behind its schedule, and the tool's CPU time over the run.

Target: zero loss at 200,000 events/s sustained for 10 s with default buffers (bpfbox; both
sinks). The highest rate with zero loss in every run, among the rates the generator reached
(>= 98% of the asked rate), is reported per configuration.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import remove_pins_and_cgroups
from opensnoop import BPFBOX_OPEN_SYSCALLS, BenchError, Stop, Tracer, le64, lost_from_stderr, mount_point, run

TARGET_RATE = 200000
TARGET_DURATION = 10.0
REACHED = 0.98
LOADER_LINE = re.compile(rb"loader: (\d+) events, (\d+) lost")
CONFIGS = ("bpfbox-null", "bpfbox-file", "c-file")


class Bench:
    def __init__(self, args):
        self.args = args
        self.workdir = None
        self.cgroups = []
        self.pins = []
        self.tracers = []
        self.loops = []

    def setup(self):
        a = self.args
        self.workdir = tempfile.mkdtemp(prefix="bblf.", dir=a.dir)
        cg2 = os.environ.get("BENCH_CGROUP2") or mount_point("cgroup2")
        if cg2 is None:
            raise BenchError("cgroup2 is not mounted")
        bpffs = os.environ.get("BENCH_BPFFS") or mount_point("bpf")
        if bpffs is None:
            raise BenchError("no bpffs: mount -t bpf bpf /sys/fs/bpf")
        parent = os.path.join(cg2, "bpfbox-bench-lossfree-%d" % os.getpid())
        os.mkdir(parent)
        self.cgroups.append(parent)
        self.gen_cg = os.path.join(parent, "gen")
        os.mkdir(self.gen_cg)
        self.cgroups.append(self.gen_cg)
        self.pin = os.path.join(bpffs, "bblf-%d" % os.getpid())
        run(["bpftool", "map", "create", self.pin, "type", "hash", "key", "8", "value", "8",
             "entries", "16", "name", "bblf"])
        self.pins.append(self.pin)
        run(["bpftool", "map", "update", "pinned", self.pin, "key", "hex"] + le64(os.stat(self.gen_cg).st_ino)
            + ["value", "hex"] + le64(0))
        self.expect = ["sys_%s_%s" % (d, s) for s in BPFBOX_OPEN_SYSCALLS for d in ("enter", "exit")
                       if os.path.exists("/sys/kernel/tracing/events/syscalls/sys_enter_%s" % s)]

    def cleanup(self):
        for tracer in self.tracers:
            tracer.kill()
        for proc in self.loops:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        remove_pins_and_cgroups("lossfree.py", self.pins, self.cgroups)
        if self.workdir:
            for name in os.listdir(self.workdir):
                os.unlink(os.path.join(self.workdir, name))
            os.rmdir(self.workdir)

    def measure(self, config, rate):
        a = self.args
        n = int(rate * a.duration)
        marker = os.path.join(self.workdir, "lf-%08x" % random.getrandbits(32))
        open(marker, "w").close()
        kind, _, ring_kb = config.partition(":")
        out_path = os.devnull if kind == "bpfbox-null" else os.path.join(self.workdir, "out")
        if kind.startswith("bpfbox"):
            argv = [a.bpfbox, "opensnoop", "--json", "--cgroupmap", self.pin]
            if ring_kb:
                argv += ["--ringbuf-kb", ring_kb]
        else:
            argv = [a.loader, "-g", self.pin, a.object]
        tracer = Tracer(config, argv, self.expect, out_path, self.workdir, a.timeout)
        self.tracers.append(tracer)
        tracer.start(a.settle)
        loop = subprocess.Popen([a.openloop, "-g", self.gen_cg, "-r", str(rate), marker, str(n)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.loops.append(loop)
        out, err = loop.communicate()
        self.loops.remove(loop)
        if loop.returncode != 0:
            raise BenchError("openloop: status %d: %s" % (loop.returncode, err.decode(errors="replace").strip()))
        fields = dict(kv.split("=", 1) for kv in out.decode().split())
        time.sleep(a.drain)
        tracer.stop()
        self.tracers.remove(tracer)
        stderr = tracer.stderr_bytes()
        if config.startswith("bpfbox"):
            lost = lost_from_stderr(stderr)
        else:
            m = LOADER_LINE.search(stderr)
            if not m:
                raise BenchError("the loader did not report its counts: %s" % stderr.decode(errors="replace")[-500:])
            lost = int(m.group(2))
        if kind == "bpfbox-null":
            received = None
        else:
            needle = marker.encode() if kind == "bpfbox-file" else None
            prefix = fields["pid"].encode() + b" "
            received = 0
            with open(out_path, "rb") as f:
                for line in f:
                    if needle is not None:
                        if needle in line:
                            received += 1
                    elif line.startswith(prefix):
                        received += 1
            os.unlink(out_path)
        os.unlink(marker)
        generated = n - int(fields["failed"])
        achieved = float(fields["rate"])
        r = {
            "config": config, "rate": rate, "generated": generated,
            "received": received if received is not None else generated - lost,
            "received_counted": received is not None, "lost": lost,
            "achieved_rate": achieved, "max_lag_us": float(fields["max_lag_us"]),
            "reached": achieved >= REACHED * rate,
            "tool_cpu_s": tracer.cpu_s, "tool_cpu_pct": 100.0 * tracer.cpu_s / (int(fields["ns"]) / 1e9),
        }
        r["silent_loss"] = (generated - r["received"] - lost) if received is not None else None
        r["zero_loss"] = lost == 0 and r["received"] == generated
        return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpfbox", required=True)
    ap.add_argument("--openloop", required=True)
    ap.add_argument("--loader", help="bench/ref/loader (the c-file configuration)")
    ap.add_argument("--object", help="opensnoop.bpf.o, as embedded in bpfbox (for the loader)")
    ap.add_argument("--rates", default="50000,100000,150000,200000,250000,300000")
    ap.add_argument("--duration", type=float, default=TARGET_DURATION, help="seconds per run")
    ap.add_argument("--reps", type=int, default=1, help="runs per rate and configuration")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--settle", type=float, default=0.2)
    ap.add_argument("--drain", type=float, default=0.3, help="seconds between the generator's end and SIGINT")
    ap.add_argument("--dir", default="/var/tmp", help="where the output files go")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",") if r]
    configs = [c for c in args.configs.split(",") if c]
    for c in configs:
        kind, _, ring_kb = c.partition(":")
        if kind not in CONFIGS or (ring_kb and (kind == "c-file" or not ring_kb.isdigit())):
            ap.error("unknown configuration %s" % c)
    if "c-file" in configs and not (args.loader and args.object):
        configs.remove("c-file")
    if os.geteuid() != 0:
        print("lossfree.py: run as root", file=sys.stderr)
        return 1

    def on_term(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, on_term)

    bench = Bench(args)
    runs = []
    print("rates:   %s events/s, %.0f s each, %d run(s) per rate and configuration; configurations %s"
          % (", ".join(str(r) for r in rates), args.duration, args.reps, ", ".join(configs)))
    print()
    print("%-18s %8s %10s %10s %9s %10s %10s %8s %9s" % (
        "config", "rate", "generated", "received", "lost", "achieved/s", "max lag us", "tool CPU", "zero loss"))
    try:
        bench.setup()
        k = 0
        for rate in rates:
            for _ in range(args.reps):
                order = configs[k % len(configs):] + configs[:k % len(configs)]
                k += 1
                for config in order:
                    r = bench.measure(config, rate)
                    runs.append(r)
                    note = "" if r["reached"] else "  (generator below %.0f%% of the rate)" % (REACHED * 100)
                    if r["silent_loss"]:
                        note += "  SILENT LOSS %d" % r["silent_loss"]
                    print("%-18s %8d %10d %10d%s %9d %10.0f %10.0f %7.0f%% %9s%s" % (
                        config, rate, r["generated"], r["received"], "" if r["received_counted"] else "*", r["lost"],
                        r["achieved_rate"], r["max_lag_us"], r["tool_cpu_pct"], "yes" if r["zero_loss"] else "NO", note))
                    sys.stdout.flush()
    except BenchError as error:
        print("lossfree.py: %s" % error, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stop):
        print("lossfree.py: interrupted", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    print("*: generated - lost (stdout is /dev/null)")

    best = {}
    for config in configs:
        ok_rates = sorted({r["rate"] for r in runs if r["config"] == config})
        best_rate = None
        for rate in ok_rates:
            rr = [r for r in runs if r["config"] == config and r["rate"] == rate]
            if all(r["zero_loss"] and r["reached"] for r in rr):
                best_rate = rate
            else:
                break
        best[config] = best_rate
    print()
    print("highest rate with zero loss in every run, every lower rate too (generator reached the rate):")
    for config in configs:
        print("  %-18s %s" % (config, "%d events/s" % best[config] if best[config] else "none of the rates"))
    # The target is about default settings: the :KB configurations do not count.
    at_target = [r for r in runs if r["rate"] == TARGET_RATE and r["config"] in ("bpfbox-null", "bpfbox-file")]
    verdict = None
    print()
    if at_target:
        reached = all(r["reached"] for r in at_target)
        lossless = all(r["zero_loss"] for r in at_target)
        verdict = lossless and reached
        if not lossless:
            why = "FAIL (%d events lost)" % sum(r["lost"] for r in at_target)
        elif not reached:
            why = "NOT SHOWN (no loss, but the generator did not reach the rate)"
        else:
            why = "PASS"
        print("verdict: zero loss at %d events/s for %.0f s with default buffers (bpfbox, %s): %s" % (
            TARGET_RATE, args.duration, ", ".join(sorted({r["config"] for r in at_target})), why))
        if args.duration < TARGET_DURATION:
            print("  (runs of %.0f s, shorter than the target's %.0f s: indicative only)" % (args.duration, TARGET_DURATION))
    else:
        print("verdict: not measured (no run at %d events/s)" % TARGET_RATE)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rates": rates, "duration_s": args.duration, "configs": configs, "runs": runs,
                       "highest_zero_loss_rate": best, "target_rate": TARGET_RATE,
                       "target_duration_s": TARGET_DURATION, "verdict_pass": verdict}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
