#!/usr/bin/env python3
"""Per-open overhead of `bpfbox opensnoop` against bpftrace's opensnoop one-liner, and loss
accounting under a storm of opens.

Run by bench/opensnoop.sh, which builds bpfbox and bench/openloop first. Two parts:

Overhead. bench/openloop opens and closes one file N times (openat, O_RDONLY) and prints
CLOCK_MONOTONIC ns per iteration. Each round measures, in a rotating order (so that drift on a
noisy machine hits every configuration alike):

  none             no tracer
  bpfbox-filtered  bpfbox opensnoop --cgroupmap MAP; MAP holds the id of a cgroup the loop is
                   not in, so every open is dropped in the kernel by the cgroup-id lookup
  bpfbox-emit      bpfbox opensnoop > SINK: every open of the machine is sent, decoded and printed
  bpftrace         bpftrace's opensnoop one-liner > SINK: every openat is printed
  c-lookup         the floor of a cgroup filter: bench/ref/cgroup_lookup.bpf.o run by
                   bench/ref/loader on the same tracepoints as bpfbox (enter and exit of open,
                   creat, openat, openat2), doing only bpf_get_current_cgroup_id() and a lookup in
                   the same pinned map bpfbox-filtered is given; target: bpfbox-filtered's
                   overhead <= 1.2x this one's (paired per-round differences, medians)

and, when asked for with --extra (comma-separated), to take the figures apart:

  bpfbox-emit-n        bpfbox opensnoop -n openloop > SINK: -n is matched in the kernel, so only the
                       loop's opens are sent (all of them), other processes' are dropped
  bpfbox-pid-filtered  bpfbox opensnoop -p 1: dropped in the kernel by the pid check, the cheapest
                       one (the difference to bpfbox-filtered is the cgroup-id lookup)
  bpftrace-floor       bpftrace with an always-false predicate on sys_enter_openat and
                       sys_exit_openat: what any tracer on these two tracepoints costs

bpfbox-emit runs without -n: bpftrace's one-liner has no filter and prints every openat of the
machine, so bpfbox prints every open too (-n is now a kernel filter; with it, other processes'
opens would be dropped before any work, which the one-liner does not do).

The loop always runs in its own cgroup. A tracer is started fresh for each measurement and the loop
starts only once the kernel lists the tracer's programs on the open tracepoints (bpftool perf show:
the tracepoint programs attached by that pid) plus a settle delay. Neither tool's own signal can be
used: with stdout on /dev/null bpfbox's header is not seen, and bpftrace 0.17 prints "Attaching N
probes..." on stdout (block-buffered when not a terminal), not on stderr. The overhead of a configuration is its median
ns/open minus the median of `none`; the median of per-round differences is printed as a
cross-check. After the rounds, a delivery check runs one loop under each emitting tracer with
stdout in a file and counts the loop's lines and the losses each tool reported.

Storm. The loop, in a cgroup of its own, opens a unique marker path STORM times as fast as it can
while `bpfbox opensnoop --json --cgroupmap STORM_MAP` (only that cgroup) writes to a file or to a
pipe that this harness reads slowly. The harness counts the events for the marker that arrived and
the losses the tool reported (stderr lines and JSON lost_events records, which must agree), and
checks arrived + reported lost == STORM exactly: no silent loss.
"""

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from benchlib import percentile, remove_pins_and_cgroups

BPFTRACE_PROGRAM = (
    r'tracepoint:syscalls:sys_enter_openat { @fname[tid] = args->filename; } '
    r'tracepoint:syscalls:sys_exit_openat /@fname[tid]/ { printf("%d %s %d %s\n", pid, comm, '
    r'args->ret, str(@fname[tid])); delete(@fname[tid]); }'
)
BPFTRACE_FLOOR = (
    r'tracepoint:syscalls:sys_enter_openat /pid == 0/ { @e = 1; } '
    r'tracepoint:syscalls:sys_exit_openat /pid == 0/ { @x = 1; }'
)
BPFBOX_OPEN_SYSCALLS = ("open", "creat", "openat", "openat2")
LOOKUP_TARGET = 1.2
EXTRAS = ("bpfbox-emit-n", "bpfbox-pid-filtered", "bpftrace-floor")
# "opensnoop: N events lost (M in all): ring buffer full; ..." (older builds: "(ring buffer full; M in all)")
LOST_LINE = re.compile(rb"opensnoop: (\d+) events lost \((?:ring buffer full; )?(\d+) in all\)")
BPFTRACE_LOST = re.compile(rb"^Lost (\d+) events", re.M)


class BenchError(Exception):
    pass


class Stop(Exception):
    """SIGTERM: clean up and leave."""




def le64(value):
    return ["%02x" % b for b in value.to_bytes(8, "little")]


def run(argv, **kw):
    result = subprocess.run(argv, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        raise BenchError("%s: exit %d: %s" % (" ".join(argv), result.returncode, result.stderr.strip()))
    return result.stdout


def mount_point(fstype):
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == fstype:
                return fields[1]
    return None


def attached(pid):
    """Tracepoint names that programs held by pid are attached to (bpftool perf show)."""
    out = subprocess.run(["bpftool", "-j", "perf", "show"], capture_output=True, text=True).stdout
    try:
        entries = json.loads(out or "[]")
    except ValueError:
        return set()
    return {e.get("tracepoint") for e in entries if e.get("pid") == pid and e.get("tracepoint")}


def foreign_open_tracers(own_pids=()):
    """Other processes with programs on the open tracepoints (they slow every configuration)."""
    out = subprocess.run(["bpftool", "-j", "perf", "show"], capture_output=True, text=True).stdout
    try:
        entries = json.loads(out or "[]")
    except ValueError:
        return []
    found = {}
    for e in entries:
        tp = e.get("tracepoint") or ""
        if e.get("pid") not in own_pids and re.fullmatch(r"sys_(enter|exit)_(open|openat|openat2|creat)", tp):
            pid = e["pid"]
            try:
                comm = open("/proc/%d/comm" % pid).read().strip()
            except OSError:
                comm = "?"
            found.setdefault((pid, comm), set()).add(tp)
    return sorted(found.items())


def task_cpu_ns(pid):
    """On-CPU time of every thread of pid, ns (schedstat)."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    return total


def lost_from_stderr(data):
    """Sum of bpfbox's "N events lost" lines; refuses a line it cannot read (a changed format
    must not read as no loss)."""
    total = 0
    for line in data.splitlines():
        if b"events lost" in line:
            m = LOST_LINE.search(line)
            if not m:
                raise BenchError("cannot read this loss report: %s" % line.decode(errors="replace"))
            total += int(m.group(1))
    return total


class Tracer:
    """A tracer process: started, waited for until attached, stopped with SIGINT."""

    def __init__(self, name, argv, expect, stdout, workdir, timeout):
        self.name = name
        self.argv = argv
        self.expect = set(expect)
        self.stdout = stdout  # a path, or subprocess.PIPE
        self.stderr_path = os.path.join(workdir, "tracer.stderr")
        self.timeout = timeout
        self.proc = None

    def start(self, settle):
        out = self.stdout if self.stdout == subprocess.PIPE else open(self.stdout, "wb")
        err = open(self.stderr_path, "wb")
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        finally:
            if out != subprocess.PIPE:
                out.close()
            err.close()
        deadline = t0 + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError("%s ended (status %d) before attaching: %s" % (
                    self.name, self.proc.returncode, self.stderr_text().strip()[-2000:]))
            if self.expect <= attached(self.proc.pid):
                break
            if time.monotonic() > deadline:
                raise BenchError("%s did not attach within %.0f s: %s" % (
                    self.name, self.timeout, self.stderr_text().strip()[-2000:]))
            time.sleep(0.02)
        self.attach_ms = (time.monotonic() - t0) * 1e3
        time.sleep(settle)

    def cpu_ns(self):
        return task_cpu_ns(self.proc.pid)

    def stop(self, drain=None):
        """SIGINT, then wait; drain(fd) is called with the stdout pipe until EOF when piped."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        if drain is not None:
            drain()
        # wait4 rather than Popen.wait: the tool's own CPU time comes with it.
        deadline = time.monotonic() + self.timeout
        while True:
            pid, wstatus, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise BenchError("%s did not stop within %.0f s of SIGINT" % (self.name, self.timeout))
            time.sleep(0.002)
        self.stop_ms = (time.monotonic() - t0) * 1e3
        self.cpu_s = usage.ru_utime + usage.ru_stime
        status = self.proc.returncode = os.waitstatus_to_exitcode(wstatus)
        if status != 0:
            raise BenchError("%s ended with status %d: %s" % (self.name, status, self.stderr_text().strip()[-2000:]))

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr_text(self):
        try:
            return open(self.stderr_path, "rb").read().decode(errors="replace")
        except OSError:
            return ""

    def stderr_bytes(self):
        try:
            return open(self.stderr_path, "rb").read()
        except OSError:
            return b""


class Bench:
    def __init__(self, args):
        self.args = args
        self.workdir = None
        self.cgroups = []  # created, deepest last
        self.pins = []
        self.tracers = []
        self.loops = []

    # Set-up and clean-up ---------------------------------------------------------------------

    def setup(self):
        a = self.args
        self.workdir = tempfile.mkdtemp(prefix="bbos.", dir="/tmp")  # short: bpftrace's str() keeps 63 bytes
        cg2 = mount_point("cgroup2")
        if cg2 is None:
            raise BenchError("cgroup2 is not mounted: the cgroup filter cannot be measured")
        bpffs = a.pin_dir
        if not os.path.isdir(bpffs) or mount_point("bpf") is None:
            raise BenchError("no bpffs at %s: mount -t bpf bpf %s" % (bpffs, bpffs))
        tag = "bpfbox-bench-opensnoop-%d" % os.getpid()
        parent = os.path.join(cg2, tag)
        os.mkdir(parent)
        self.cgroups.append(parent)
        self.cg = {}
        for name in ("loop", "other", "storm"):
            path = os.path.join(parent, name)
            os.mkdir(path)
            self.cgroups.append(path)
            self.cg[name] = (path, os.stat(path).st_ino)
        self.maps = {}
        for name, cgroup in (("out", "other"), ("storm", "storm")):
            pin = os.path.join(bpffs, "bbos-%d-%s" % (os.getpid(), name))
            run(["bpftool", "map", "create", pin, "type", "hash", "key", "8", "value", "8",
                 "entries", "16", "name", "bbos_" + name])
            self.pins.append(pin)
            run(["bpftool", "map", "update", "pinned", pin, "key", "hex"] + le64(self.cg[cgroup][1])
                + ["value", "hex"] + le64(0))
            self.maps[name] = pin
        self.target = os.path.join(self.workdir, "loop-target")
        open(self.target, "w").close()
        self.cg2 = cg2

    def cleanup(self):
        for tracer in self.tracers:
            tracer.kill()
        for proc in self.loops:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        remove_pins_and_cgroups("opensnoop.py", self.pins, self.cgroups)
        if self.workdir:
            for name in os.listdir(self.workdir):
                os.unlink(os.path.join(self.workdir, name))
            os.rmdir(self.workdir)

    # Pieces ----------------------------------------------------------------------------------

    def loop(self, cgroup, path, n, warmup, background=False):
        argv = [self.args.openloop, "-g", self.cg[cgroup][0], "-w", str(warmup)]
        if self.args.loop_cpu is not None:
            argv += ["-C", str(self.args.loop_cpu)]
        argv += [path, str(n)]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.loops.append(proc)
        if background:
            return proc
        return self.loop_result(proc)

    def loop_result(self, proc):
        out, err = proc.communicate()
        self.loops.remove(proc)
        if proc.returncode != 0:
            raise BenchError("openloop: status %d: %s" % (proc.returncode, err.decode(errors="replace").strip()))
        fields = dict(kv.split("=", 1) for kv in out.decode().split())
        return {"ns_per_op": float(fields["ns_per_op"]), "failed": int(fields["failed"]),
                "pid": int(fields["pid"]), "ns": int(fields["ns"]), "iterations": int(fields["iterations"])}

    def tracer(self, name, stdout):
        a = self.args
        if name == "c-lookup":
            argv = [a.loader, "-M", "cgroup_filter=" + self.maps["out"], a.lookup_object]
            expect = ["sys_%s_%s" % (d, s) for s in BPFBOX_OPEN_SYSCALLS for d in ("enter", "exit")
                      if os.path.exists("/sys/kernel/tracing/events/syscalls/sys_enter_%s" % s)]
        elif name.startswith("bpftrace"):
            argv = [a.bpftrace, "-e", BPFTRACE_FLOOR if name == "bpftrace-floor" else BPFTRACE_PROGRAM]
            expect = ["sys_enter_openat", "sys_exit_openat"]
        else:
            argv = [a.bpfbox, "opensnoop"]
            if name == "bpfbox-filtered":
                argv += ["--cgroupmap", self.maps["out"]]
            elif name == "bpfbox-emit-n":
                argv += ["-n", "openloop"]
            elif name == "bpfbox-pid-filtered":
                argv += ["-p", "1"]
            expect = ["sys_%s_%s" % (d, s) for s in BPFBOX_OPEN_SYSCALLS for d in ("enter", "exit")
                      if os.path.exists("/sys/kernel/tracing/events/syscalls/sys_enter_%s" % s)]
        t = Tracer(name, argv, expect, stdout, self.workdir, a.timeout)
        self.tracers.append(t)
        return t

    def forget(self, tracer):
        self.tracers.remove(tracer)

    # Part 1: overhead ------------------------------------------------------------------------

    def measure(self, config):
        """One measurement: a fresh tracer (unless none), REPS loops; returns a dict."""
        a = self.args
        result = {"config": config}
        foreign = {pid for (pid, _), _ in foreign_open_tracers()}
        tracer = None
        if config != "none":
            tracer = self.tracer(config, a.sink)
            tracer.start(a.settle)
            result["attach_ms"] = tracer.attach_ms
            cpu0 = tracer.cpu_ns()
        reps = [self.loop("loop", self.target, a.n, a.loop_warmup) for _ in range(a.reps)]
        result["reps"] = [r["ns_per_op"] for r in reps]
        result["ns_per_op"] = statistics.median(result["reps"])
        if any(r["failed"] for r in reps):
            raise BenchError("openloop: opens of %s failed" % self.target)
        foreign |= {pid for (pid, _), _ in foreign_open_tracers(own_pids=(tracer.proc.pid,) if tracer else ())}
        result["foreign_tracers"] = len(foreign)
        if tracer is not None:
            loop_ops = a.reps * (a.n + a.loop_warmup)
            result["tracer_cpu_ns_per_open"] = (tracer.cpu_ns() - cpu0) / loop_ops
            tracer.stop()
            self.forget(tracer)
            result["stop_ms"] = tracer.stop_ms
            if config.startswith("bpfbox"):
                result["lost_reported"] = lost_from_stderr(tracer.stderr_bytes())
        return result

    def overhead(self):
        a = self.args
        configs = ["none", "bpfbox-filtered", "bpfbox-emit"]
        if a.lookup_object:
            configs.append("c-lookup")
        if a.bpftrace:
            configs.append("bpftrace")
        configs += [c for c in EXTRAS if c in a.extra and (a.bpftrace or not c.startswith("bpftrace"))]
        results = {c: [] for c in configs}
        print("rounds:  %d (+%d warm-up), %d loops of %d opens (+%d untimed) per measurement, order rotates"
              % (a.rounds, a.warmup, a.reps, a.n, a.loop_warmup))
        print("sink:    %s" % a.sink)
        print()
        print("%-6s %-19s %9s %22s %9s %7s %12s %6s" % ("round", "config", "ns/open", "loops (ns/open)",
                                                          "attach ms", "stop ms", "tracer ns/op", "lost"))
        for i in range(a.warmup + a.rounds):
            label = "warm" if i < a.warmup else str(i - a.warmup + 1)
            k = i % len(configs)
            for config in configs[k:] + configs[:k]:
                r = self.measure(config)
                print("%-6s %-19s %9.1f %22s %9s %7s %12s %6s%s" % (
                    label, config, r["ns_per_op"], " ".join("%.0f" % x for x in r["reps"]),
                    "%.0f" % r["attach_ms"] if "attach_ms" in r else "-",
                    "%.0f" % r["stop_ms"] if "stop_ms" in r else "-",
                    "%.0f" % r["tracer_cpu_ns_per_open"] if "tracer_cpu_ns_per_open" in r else "-",
                    r.get("lost_reported", "-"),
                    " *" if r["foreign_tracers"] else ""))
                sys.stdout.flush()
                if i >= a.warmup:
                    results[config].append(r)

        marked = sum(1 for c in configs for r in results[c] if r["foreign_tracers"])
        if marked:
            print("*: another process had programs on the open tracepoints during the measurement "
                  "(%d of %d measured)" % (marked, sum(len(results[c]) for c in configs)))
        base = [r["ns_per_op"] for r in results["none"]]
        base_median = statistics.median(base)
        summary = {}
        print()
        print("%-19s %8s %8s %8s %8s %13s %13s %12s %9s %7s" % (
            "config", "median", "p90", "min", "max", "overhead/open", "paired median", "tracer ns/op",
            "attach ms", "stop ms"))
        for config in configs:
            values = [r["ns_per_op"] for r in results[config]]
            s = {"median": statistics.median(values), "p90": percentile(values, 90),
                 "min": min(values), "max": max(values)}
            if config != "none":
                s["overhead"] = s["median"] - base_median
                s["paired_overhead"] = statistics.median(
                    r["ns_per_op"] - b["ns_per_op"] for r, b in zip(results[config], results["none"]))
                s["tracer_cpu_ns_per_open"] = statistics.median(r["tracer_cpu_ns_per_open"] for r in results[config])
                s["attach_ms"] = statistics.median(r["attach_ms"] for r in results[config])
                s["stop_ms"] = statistics.median(r["stop_ms"] for r in results[config])
                if config.startswith("bpfbox"):
                    s["lost_reported"] = sum(r["lost_reported"] for r in results[config])
            summary[config] = s
            print("%-19s %8.1f %8.1f %8.1f %8.1f %13s %13s %12s %9s %7s" % (
                config, s["median"], s["p90"], s["min"], s["max"],
                "%+.1f ns" % s["overhead"] if "overhead" in s else "-",
                "%+.1f ns" % s["paired_overhead"] if "paired_overhead" in s else "-",
                "%.0f" % s["tracer_cpu_ns_per_open"] if "tracer_cpu_ns_per_open" in s else "-",
                "%.0f" % s["attach_ms"] if "attach_ms" in s else "-",
                "%.0f" % s["stop_ms"] if "stop_ms" in s else "-"))
        for config in configs:
            if summary[config].get("lost_reported"):
                print("note: %s reported %d lost events over its measured runs (a lost event costs the "
                      "loop less than a sent one)" % (config, summary[config]["lost_reported"]))
        verdict = None
        print()
        if "bpftrace" in summary:
            f, t = summary["bpfbox-filtered"], summary["bpftrace"]
            verdict = f["overhead"] <= t["overhead"]
            print("verdict: filtered-out bpfbox overhead <= bpftrace unfiltered overhead")
            print("  bpfbox-filtered %+.1f ns/open, bpftrace %+.1f ns/open (medians minus the no-tracer median)"
                  % (f["overhead"], t["overhead"]))
            print("  paired (median of per-round differences): %+.1f vs %+.1f ns/open"
                  % (f["paired_overhead"], t["paired_overhead"]))
            print("  %s" % ("PASS" if verdict else "FAIL"))
            e = summary["bpfbox-emit"]
            print("  (also: bpfbox emitting every open %+.1f ns/open, %.2fx bpftrace's overhead)"
                  % (e["overhead"], e["overhead"] / t["overhead"] if t["overhead"] else float("nan")))
        else:
            print("verdict: not measured: bpftrace is not available (%s)" % self.args.no_bpftrace_reason)
        lookup = None
        if "c-lookup" in summary:
            f, c = summary["bpfbox-filtered"], summary["c-lookup"]
            # Per round: (bpfbox-filtered - none) / (c-lookup - none), both from the same round.
            ratios = [(rf["ns_per_op"] - rn["ns_per_op"]) / (rc["ns_per_op"] - rn["ns_per_op"])
                      for rf, rc, rn in zip(results["bpfbox-filtered"], results["c-lookup"], results["none"])
                      if rc["ns_per_op"] - rn["ns_per_op"] > 0]
            paired_ratio = f["paired_overhead"] / c["paired_overhead"] if c["paired_overhead"] > 0 else float("inf")
            median_ratio = f["overhead"] / c["overhead"] if c["overhead"] > 0 else float("inf")
            lookup_ok = paired_ratio <= LOOKUP_TARGET
            print()
            print("verdict: bpfbox filtered out in the kernel <= %.1fx the cost of a bare cgroup-id lookup" % LOOKUP_TARGET)
            print("  overhead per open, paired (median of per-round differences): bpfbox-filtered %+.1f ns, "
                  "c-lookup %+.1f ns: %.2fx" % (f["paired_overhead"], c["paired_overhead"], paired_ratio))
            print("  overhead per open, medians minus the no-tracer median: %+.1f vs %+.1f ns: %.2fx"
                  % (f["overhead"], c["overhead"], median_ratio))
            if ratios:
                print("  median of per-round ratios: %.2fx (%d rounds with a positive c-lookup overhead)"
                      % (statistics.median(ratios), len(ratios)))
            print("  %s (on the paired ratio)" % ("PASS" if lookup_ok else "FAIL"))
            lookup = {"paired_ratio": paired_ratio, "median_ratio": median_ratio,
                      "per_round_ratio_median": statistics.median(ratios) if ratios else None,
                      "target": LOOKUP_TARGET, "pass": lookup_ok}
        return {"configs": configs, "runs": results, "summary": summary, "verdict_pass": verdict,
                "lookup_verdict": lookup}

    def account(self):
        """One loop under each emitting tracer with stdout in a file: how many of the loop's opens
        were printed, and how many losses each tool reported."""
        a = self.args
        configs = ["bpfbox-emit"] + (["bpftrace"] if a.bpftrace else [])
        out = {}
        print()
        print("delivery check: one loop of %d opens (+%d untimed) per tracer, stdout to a file instead of %s"
              % (a.n, a.loop_warmup, a.sink))
        for config in configs:
            path = os.path.join(self.workdir, "account.out")
            tracer = self.tracer(config, path)
            tracer.start(a.settle)
            r = self.loop("loop", self.target, a.n, a.loop_warmup)
            tracer.stop()
            self.forget(tracer)
            data = open(path, "rb").read()
            os.unlink(path)
            pid, target = str(r["pid"]).encode(), self.target.encode()
            printed = 0
            for line in data.split(b"\n"):
                fields = line.split()
                if len(fields) >= 4 and fields[0] == pid and fields[-1] == target:
                    printed += 1
            if config == "bpftrace":
                lost = sum(int(x) for x in BPFTRACE_LOST.findall(data))
                where = "'Lost N events' lines on stdout"
            else:
                lost = lost_from_stderr(tracer.stderr_bytes())
                where = "stderr"
            total = a.n + a.loop_warmup
            print("  %-12s %9.1f ns/open; printed %d of %d opens of the loop (%.1f%%); lost reported "
                  "(all events, %s): %d" % (config, r["ns_per_op"], printed, total, 100.0 * printed / total,
                                            where, lost))
            # The loss count covers every process's opens: printed + lost may exceed the loop's opens,
            # never fall short of them.
            print("  %-12s printed + lost reported = %d: %s" % (
                "", printed + lost, "no silent loss seen" if printed + lost >= total else
                "%d of the loop's opens neither printed nor reported" % (total - printed - lost)))
            out[config] = {"ns_per_op": r["ns_per_op"], "printed": printed, "opens": total, "lost_reported": lost,
                           "accounted": printed + lost >= total}
        return out

    # Part 2: the storm -----------------------------------------------------------------------

    def storm(self, label, ring_kb, piped):
        a = self.args
        marker = os.path.join(self.workdir, "storm-%s-%08x" % (label, random.getrandbits(32)))
        open(marker, "w").close()
        argv_extra = ["--json", "--cgroupmap", self.maps["storm"]]
        if ring_kb:
            argv_extra += ["--ringbuf-kb", str(ring_kb)]
        out_path = os.path.join(self.workdir, "storm.json")
        tracer = Tracer("bpfbox-storm", [a.bpfbox, "opensnoop"] + argv_extra,
                        ["sys_enter_openat", "sys_exit_openat"],
                        subprocess.PIPE if piped else out_path, self.workdir, a.timeout)
        self.tracers.append(tracer)
        tracer.start(a.settle)

        counts = {"arrived": 0, "other": 0, "bad_lines": 0, "json_lost": 0, "json_lost_total": None,
                  "json_lost_records": 0, "bytes": 0}
        marker_pid = None
        partial = b""

        def feed(chunk, final=False):
            nonlocal partial
            counts["bytes"] += len(chunk)
            data = partial + chunk
            lines = data.split(b"\n")
            partial = b"" if final else lines.pop()
            for line in lines:
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    counts["bad_lines"] += 1
                    continue
                if "lost_events" in obj:
                    counts["json_lost"] += obj["lost_events"]
                    counts["json_lost_total"] = obj["lost_events_total"]
                    counts["json_lost_records"] += 1
                elif obj.get("path") == marker and obj.get("pid") == marker_pid:
                    counts["arrived"] += 1
                else:
                    counts["other"] += 1
                    if counts["other"] <= 3:
                        print("    unexpected event: %s" % line[:300].decode(errors="replace"))

        t0 = time.monotonic()
        proc = self.loop("storm", marker, a.storm, 0, background=True)
        marker_pid = proc.pid
        if piped:
            fd = tracer.proc.stdout.fileno()
            os.set_blocking(fd, False)
            # Slowly while the storm lasts: a reader that cannot keep up, so the tool blocks in
            # write(2) and the ring fills behind it.
            while proc.poll() is None:
                try:
                    chunk = os.read(fd, a.slow_chunk)
                except BlockingIOError:
                    chunk = b""
                if chunk:
                    feed(chunk)
                time.sleep(a.slow_delay)
        r = self.loop_result(proc)
        t_loop = time.monotonic() - t0

        def drain():
            fd = tracer.proc.stdout.fileno()
            os.set_blocking(fd, True)
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                feed(chunk)
            feed(b"", final=True)

        t1 = time.monotonic()
        tracer.stop(drain if piped else None)
        t_stop = time.monotonic() - t1
        self.tracers.remove(tracer)
        if piped:
            tracer.proc.stdout.close()
        else:
            with open(out_path, "rb") as f:
                while True:
                    chunk = f.read(1 << 22)
                    if not chunk:
                        break
                    feed(chunk)
            feed(b"", final=True)
            os.unlink(out_path)
        os.unlink(marker)

        stderr = tracer.stderr_bytes()
        lost_from_stderr(stderr)  # every loss line is readable
        lines = LOST_LINE.findall(stderr)
        stderr_lost = sum(int(n) for n, _ in lines)
        stderr_total = int(lines[-1][1]) if lines else 0
        other_stderr = [l for l in stderr.decode(errors="replace").splitlines() if not LOST_LINE.search(l.encode())]
        json_total = counts["json_lost_total"] or 0
        reported = stderr_total
        consistent = stderr_lost == stderr_total == counts["json_lost"] == json_total
        exact = counts["arrived"] + reported == a.storm
        clean = counts["other"] == 0 and counts["bad_lines"] == 0 and r["failed"] == 0
        ok = exact and consistent and clean
        sink = "pipe read slowly (%d bytes every %.1f ms while the loop runs)" % (a.slow_chunk, a.slow_delay * 1e3) \
            if piped else "file"
        print()
        print("storm %s: %d opens of %s, ring %s KiB, JSON to a %s" % (
            label, a.storm, os.path.basename(marker), ring_kb or "256 (default)", sink))
        handled = counts["arrived"] + counts["other"]
        print("  loop: %.1f ns/open, %.2f s; tool stopped %.2f s after SIGINT; %.1f MB of JSON" % (
            r["ns_per_op"], t_loop, t_stop, counts["bytes"] / 1e6))
        print("  tool CPU (user+sys, whole run): %.2f s, %.2f us per event written" % (
            tracer.cpu_s, tracer.cpu_s * 1e6 / handled if handled else float("nan")))
        print("  arrived (marker events)          %9d" % counts["arrived"])
        print("  lost, reported by the tool       %9d   (stderr: %d lines, sum %d, last total %d; "
              "JSON: %d records, sum %d, last total %d)" % (reported, len(lines), stderr_lost, stderr_total,
                                                             counts["json_lost_records"], counts["json_lost"],
                                                             json_total))
        print("  lost, measured by the benchmark  %9d   (%d - arrived)" % (a.storm - counts["arrived"], a.storm))
        print("  arrived + reported               %9d   %s %d" % (
            counts["arrived"] + reported, "==" if exact else "!=", a.storm))
        if counts["other"] or counts["bad_lines"]:
            print("  other events in the storm cgroup: %d; unparsable lines: %d" % (counts["other"], counts["bad_lines"]))
        if not consistent:
            print("  the stderr and JSON loss reports disagree")
        for line in other_stderr:
            print("  stderr: %s" % line)
        print("  no silent loss: %s%s" % ("PASS" if ok else "FAIL",
                                         "" if reported else " (no loss happened: the equation was not tested with a loss)"))
        return {"label": label, "ring_kb": ring_kb or 256, "piped": piped, "opens": a.storm,
                "loop_ns_per_op": r["ns_per_op"], "loop_s": t_loop, "stop_s": t_stop, "tool_cpu_s": tracer.cpu_s,
                "arrived": counts["arrived"], "lost_reported": reported, "stderr_lost_sum": stderr_lost,
                "stderr_lost_total": stderr_total, "json_lost_sum": counts["json_lost"],
                "json_lost_total": json_total, "other_events": counts["other"], "bad_lines": counts["bad_lines"],
                "json_bytes": counts["bytes"], "consistent": consistent, "exact": exact, "pass": ok}

    def storms(self):
        a = self.args
        print()
        print("== storm: %d opens in cgroup %s (the only cgroup in the tool's --cgroupmap)" % (
            a.storm, os.path.relpath(self.cg["storm"][0], self.cg2)))
        out = []
        for label, ring_kb, piped in (("file-256k", 0, False), ("file-16k", 16, False), ("slowpipe-256k", 0, True)):
            if label in a.skip_storm:
                continue
            out.append(self.storm(label, ring_kb, piped))
        print()
        tested_with_loss = any(s["lost_reported"] > 0 for s in out)
        verdict = all(s["pass"] for s in out) and tested_with_loss
        print("verdict: no silent loss (arrived + reported lost == %d in every storm, and at least one storm lost "
              "events): %s" % (a.storm, "PASS" if verdict else "FAIL"))
        return {"storms": out, "verdict_pass": verdict}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpfbox", required=True)
    ap.add_argument("--openloop", required=True)
    ap.add_argument("--bpftrace", help="bpftrace binary; omit when it cannot run here")
    ap.add_argument("--loader", help="bench/ref/loader binary (with --lookup-object: the c-lookup configuration)")
    ap.add_argument("--lookup-object", help="bench/ref/cgroup_lookup.bpf.o")
    ap.add_argument("--no-bpftrace-reason", default="not given")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first")
    ap.add_argument("--n", type=int, default=200000, help="timed opens per loop")
    ap.add_argument("--loop-warmup", type=int, default=10000, help="untimed opens before each loop")
    ap.add_argument("--reps", type=int, default=3, help="loops per tracer start; the median counts")
    ap.add_argument("--loop-cpu", type=int, help="pin the loop to this CPU")
    ap.add_argument("--sink", default="/dev/null", help="stdout of the emitting tracers")
    ap.add_argument("--settle", type=float, default=0.2, help="seconds between attach and the loop")
    ap.add_argument("--extra", default="", help="comma-separated extra configurations: " + ", ".join(EXTRAS))
    ap.add_argument("--no-account", action="store_true", help="skip the delivery check")
    ap.add_argument("--storm", type=int, default=1000000)
    ap.add_argument("--skip-storm", default="", help="comma-separated: file-256k, file-16k, slowpipe-256k, all")
    ap.add_argument("--slow-chunk", type=int, default=4096)
    ap.add_argument("--slow-delay", type=float, default=0.002)
    ap.add_argument("--pin-dir", default="/sys/fs/bpf")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json", help="also write every run and the summary to this file")
    args = ap.parse_args()
    args.skip_storm = [s for s in args.skip_storm.split(",") if s]
    args.extra = [s for s in args.extra.split(",") if s]
    for extra in args.extra:
        if extra not in EXTRAS:
            ap.error("--extra: unknown configuration %s (known: %s)" % (extra, ", ".join(EXTRAS)))
    if "all" in args.skip_storm:
        args.skip_storm = ["file-256k", "file-16k", "slowpipe-256k"]

    if os.geteuid() != 0:
        print("opensnoop.py: run as root (BPF, cgroups)", file=sys.stderr)
        return 1

    def on_term(signum, frame):
        raise Stop()

    signal.signal(signal.SIGTERM, on_term)
    bench = Bench(args)
    report = {}
    try:
        bench.setup()
        foreign = foreign_open_tracers()
        if foreign:
            print("warning: other tracers hold programs on the open tracepoints (they slow every configuration "
                  "alike): %s" % ", ".join("%s[%d]" % (comm, pid) for (pid, comm), _ in foreign))
        print("cgroups: loop %s (id %d), filtered-in cgroup of bpfbox-filtered: %s (id %d)" % (
            os.path.relpath(bench.cg["loop"][0], bench.cg2), bench.cg["loop"][1],
            os.path.relpath(bench.cg["other"][0], bench.cg2), bench.cg["other"][1]))
        report["overhead"] = bench.overhead()
        if not args.no_account:
            report["delivery"] = bench.account()
        if len(args.skip_storm) < 3:
            report["storm"] = bench.storms()
        foreign = foreign_open_tracers()
        if foreign:
            print("warning: at the end, other tracers held programs on the open tracepoints: %s"
                  % ", ".join("%s[%d]" % (comm, pid) for (pid, comm), _ in foreign))
    except BenchError as error:
        print("opensnoop.py: %s" % error, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stop):
        print("opensnoop.py: interrupted", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()

    print()
    print("summary:")
    o = report["overhead"]
    if o["verdict_pass"] is None:
        print("  overhead verdict: not measured (bpftrace unavailable: %s)" % args.no_bpftrace_reason)
    else:
        print("  filtered-out bpfbox overhead <= bpftrace unfiltered overhead: %s (%+.1f vs %+.1f ns/open)" % (
            "PASS" if o["verdict_pass"] else "FAIL", o["summary"]["bpfbox-filtered"]["overhead"],
            o["summary"]["bpftrace"]["overhead"]))
    if o.get("lookup_verdict"):
        lv = o["lookup_verdict"]
        print("  filtered-out bpfbox overhead <= %.1fx a bare cgroup-id lookup: %s (%.2fx, paired)" % (
            lv["target"], "PASS" if lv["pass"] else "FAIL", lv["paired_ratio"]))
    if "storm" in report:
        print("  no silent loss under a %d-open storm: %s" % (
            args.storm, "PASS" if report["storm"]["verdict_pass"] else "FAIL"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
