#!/usr/bin/env python3
"""Start to first event, peak RSS and steady-state RSS of bpfbox's tracing applets against a C +
libbpf loader of the same BPF object and against bpftrace's equivalent one-liner.

Run by bench/startup.sh, which builds everything first. Per applet (execsnoop, opensnoop,
tcpconnect) and
tool (bpfbox, C+libbpf = bench/ref/loader on the object bpfbox embeds, bpftrace), each run:

  1. bench/launch forks and execs the tool (its CLOCK_MONOTONIC instant just before fork is t0);
  2. the harness reads the tool's stdout pipe until the attached marker: the first line (bpfbox's
     header, the loader's header) or bpftrace's "Attaching N probes..." (t_attached);
  3. only then it starts a trigger: for execsnoop a shell loop that runs a uniquely named copy of
     /bin/true every 5 ms; for opensnoop bench/openloop opening a unique file 200 times a second;
     for tcpconnect bash connecting (/dev/tcp) to a local listener every 5 ms.
     The first line of the tool that shows the trigger (the marker's name, or the trigger's pid)
     gives t_event. start to first event = t_event - t0. bpftrace's marker line may come before
     its probes are active, which is why the trigger repeats until the event shows;
  4. the trigger goes on for --steady seconds (the tool decodes and prints all the while); then
     VmRSS (steady-state RSS), RssAnon and RssFile are read from /proc/PID/status;
  5. SIGINT; the launcher's wait4 gives ru_maxrss (peak RSS) and the CPU time. A tool that does
     not exit 0 fails the run.

bpftrace runs with -B none (its stdout would otherwise be block-buffered in the pipe). Rounds
rotate the order of every (applet, tool) run, so drift on a busy machine hits all alike.

Targets, per applet, on medians: start to first event bpfbox/C <= 1.1 and bpftrace/bpfbox >= 5;
steady-state RSS bpfbox/C <= 1.0; peak RSS bpfbox/C <= 1.3.
"""

import argparse
import base64
import socket
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from benchlib import percentile, read_until

TARGETS = {"start_vs_c": 1.1, "bpftrace_vs_start": 5.0, "steady_rss_vs_c": 1.0, "peak_rss_vs_c": 1.3}
BPFTRACE = {
    "execsnoop": r'tracepoint:syscalls:sys_enter_execve { printf("%d %s\n", pid, str(args->filename)); }',
    "opensnoop": (
        r'tracepoint:syscalls:sys_enter_openat { @fname[tid] = args->filename; } '
        r'tracepoint:syscalls:sys_exit_openat /@fname[tid]/ { printf("%d %s %d %s\n", pid, comm, '
        r'args->ret, str(@fname[tid])); delete(@fname[tid]); }'),
    # TCP_SYN_SENT (2): the state change made in the connecting task.
    "tcpconnect": r'tracepoint:sock:inet_sock_set_state /args->newstate == 2/ { printf("%d %s %d\n", pid, comm, args->dport); }',
}
TOOLS = ("C+libbpf", "bpfbox", "bpftrace")


class RunError(Exception):
    pass


class Stop(Exception):
    pass


def proc_status(pid):
    fields = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    fields[key] = int(value.split()[0])
    except OSError:
        pass
    return fields


def kill_quietly(proc):
    if proc is not None and proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
        proc.wait()


class Harness:
    def __init__(self, args):
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix="bbst.", dir="/tmp")  # short: bpftrace keeps 63 bytes of a string
        self.live = []  # processes to kill on the way out
        # tcpconnect's trigger connects here. Every connection is accepted and closed by a thread
        # of its own: a backlog that filled up would leave connects waiting for SYN retries, and
        # bpfbox reports a connect when it completes.
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4096)
        threading.Thread(target=self.accept_all, daemon=True).start()

    def accept_all(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed at cleanup
            connection.close()

    def cleanup(self):
        self.listener.close()
        for proc in self.live:
            kill_quietly(proc)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # The trigger: started after the attached marker; returns (process, predicate on a line).
    def trigger(self, applet):
        tag = "%08x" % random.getrandbits(32)
        if applet == "execsnoop":
            marker = os.path.join(self.workdir, "m" + tag)  # comm: "m" + 8 hex digits
            shutil.copy("/bin/true", marker)
            os.chmod(marker, 0o755)
            proc = subprocess.Popen(["/bin/sh", "-c", 'while :; do "$1"; sleep 0.005; done', "sh", marker],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            name = os.path.basename(marker).encode()
            return proc, marker, lambda line: name in line
        if applet == "tcpconnect":
            # bash connects (its /dev/tcp) every 5 ms; the events are the trigger's pid.
            port = self.listener.getsockname()[1]
            proc = subprocess.Popen(["/bin/bash", "-c", 'while :; do exec 3<>/dev/tcp/127.0.0.1/%d; exec 3>&-; '
                                     'sleep 0.005; done' % port],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            marker = None
        else:
            marker = os.path.join(self.workdir, "o" + tag)
            open(marker, "w").close()
            proc = subprocess.Popen([self.args.openloop, "-r", "200", marker, "100000000"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = str(proc.pid).encode()
        return proc, marker, lambda line: line.split(b" ", 1)[0] == pid or line.lstrip().split(b" ", 1)[0] == pid

    def argv(self, applet, tool):
        a = self.args
        if tool == "bpfbox":
            return [a.bpfbox, applet]
        if tool == "C+libbpf":
            return [a.loader, a.objects[applet]]
        return [a.bpftrace, "-B", "none", "-e", BPFTRACE[applet]]

    def run_once(self, applet, tool):
        a = self.args
        argv = self.argv(applet, tool)
        out_r, out_w = os.pipe()
        st_r, st_w = os.pipe()
        err_file = tempfile.TemporaryFile()
        proc = subprocess.Popen([a.launcher, str(st_w)] + argv, stdin=subprocess.DEVNULL, stdout=out_w,
                                stderr=err_file, pass_fds=(st_w,), close_fds=True)
        self.live.append(proc)
        os.close(out_w)
        os.close(st_w)
        out = bytearray()
        status_buf = bytearray()
        pid = None
        trig = None
        marker = None
        try:
            deadline = time.monotonic() + a.timeout
            if not read_until(st_r, status_buf, lambda b: b"\n" in b, deadline):
                raise RunError("the launcher did not start the command")
            first, _, rest = bytes(status_buf).partition(b"\n")
            status_buf = bytearray(rest)
            pid_text, t0_text = first.split()
            pid, t0 = int(pid_text), int(t0_text)

            if tool == "bpftrace":
                def attached(b):
                    return any(line.startswith(b"Attaching") for line in bytes(b).split(b"\n")[:-1])
            else:
                def attached(b):
                    return b"\n" in b
            if not read_until(out_r, out, attached, deadline):
                raise RunError("no attached marker within %.0f s: %r" % (a.timeout, bytes(out[:200])))
            t_attached = time.monotonic_ns()
            consumed = bytes(out).rfind(b"\n") + 1  # lines before the marker are no events

            trig, marker, matches = self.trigger(applet)
            self.live.append(trig)
            scan = [consumed]

            def seen_event(b):
                end = bytes(b).rfind(b"\n")
                if end < scan[0]:
                    return False
                lines = bytes(b[scan[0]:end]).split(b"\n")
                scan[0] = end + 1
                return any(matches(line) for line in lines)
            if not read_until(out_r, out, seen_event, time.monotonic() + a.timeout):
                raise RunError("the triggered event did not show within %.0f s" % a.timeout)
            t_event = time.monotonic_ns()

            # Steady state: the trigger goes on, the tool keeps decoding and printing.
            read_until(out_r, out, lambda b: False, time.monotonic() + a.steady)
            status = proc_status(pid)
            kill_quietly(trig)
            self.live.remove(trig)
            trig = None
            os.kill(pid, signal.SIGINT)
            read_until(out_r, out, lambda b: False, time.monotonic() + a.timeout)  # until EOF
            if not read_until(st_r, status_buf, lambda b: b"\n" in b, time.monotonic() + a.timeout):
                raise RunError("the command did not stop after SIGINT")
            wstatus, maxrss, utime, stime = (int(x) for x in bytes(status_buf).split()[:4])
            proc.wait(timeout=a.timeout)
            self.live.remove(proc)
            if not (os.WIFEXITED(wstatus) and os.WEXITSTATUS(wstatus) == 0):
                raise RunError("the command ended with wait status %d" % wstatus)
            return {
                "attached_ms": (t_attached - t0) / 1e6,
                "first_event_ms": (t_event - t0) / 1e6,
                "peak_rss_kb": maxrss,
                "steady_rss_kb": status.get("VmRSS"),
                "rss_anon_kb": status.get("RssAnon"),
                "rss_file_kb": status.get("RssFile"),
                "cpu_ms": (utime + stime) / 1000.0,
            }
        except RunError as error:
            err_file.seek(0)
            detail = err_file.read().decode(errors="replace").strip()[-1500:]
            raise RunError("%s: %s%s" % (" ".join(argv)[:200], error, ("\n" + detail) if detail else ""))
        finally:
            kill_quietly(trig)
            if trig in self.live:
                self.live.remove(trig)
            if proc in self.live:
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                kill_quietly(proc)
                self.live.remove(proc)
            if marker:
                try:
                    os.unlink(marker)
                except OSError:
                    pass
            os.close(out_r)
            os.close(st_r)
            err_file.close()


def check_same_object(obj_path, bpfbox_bin):
    """The object given to the reference must be the one embedded (base64) in bpfbox."""
    data = open(obj_path, "rb").read()
    embedded = base64.b64encode(data) in open(bpfbox_bin, "rb").read()
    return hashlib.sha256(data).hexdigest(), len(data), embedded


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "p90": percentile(values, 90), "min": min(values),
            "max": max(values), "n": len(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpfbox", required=True)
    ap.add_argument("--loader", required=True, help="bench/ref/loader binary")
    ap.add_argument("--object", action="append", default=[], metavar="APPLET=PATH",
                    help="the object bpfbox embeds for APPLET (repeat); the applets measured")
    ap.add_argument("--launcher", required=True, help="bench/launch binary")
    ap.add_argument("--openloop", required=True, help="bench/openloop binary (opensnoop's trigger)")
    ap.add_argument("--bpftrace", help="bpftrace binary; omit when it cannot run here")
    ap.add_argument("--no-bpftrace-reason", default="not given")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first")
    ap.add_argument("--steady", type=float, default=1.0, help="seconds of tracing after the first event")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    args.objects = dict(o.split("=", 1) for o in args.object)
    if not args.objects:
        ap.error("give at least one --object APPLET=PATH")

    if os.geteuid() != 0:
        print("startup.py: run as root (BPF)", file=sys.stderr)
        return 1

    def on_term(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, on_term)

    objects = {}
    for applet, path in args.objects.items():
        digest, size, embedded = check_same_object(path, args.bpfbox)
        objects[applet] = {"path": path, "sha256": digest, "bytes": size, "embedded_in_bpfbox": embedded}
        print("object:  %-10s %s (%d bytes, sha256 %s) %s" % (
            applet, os.path.basename(path), size, digest[:16],
            "embedded in bpfbox: the same bytes" if embedded else "WARNING: bpfbox does not embed these bytes"))
    tools = [t for t in TOOLS if t != "bpftrace" or args.bpftrace]
    if not args.bpftrace:
        print("bpftrace: NOT MEASURED: %s" % args.no_bpftrace_reason)
    combos = [(applet, tool) for applet in args.objects for tool in tools]
    print("rounds:  %d (+%d warm-up); %.1f s of tracing after the first event; the order rotates"
          % (args.rounds, args.warmup, args.steady))
    print()
    print("%-5s %-10s %-9s %9s %10s %9s %10s %8s %8s %8s" % (
        "round", "applet", "tool", "attach ms", "1st ev ms", "peak KiB", "steady KiB", "anon", "file", "cpu ms"))
    results = {c: [] for c in combos}
    harness = Harness(args)
    try:
        for i in range(args.warmup + args.rounds):
            label = "warm" if i < args.warmup else str(i - args.warmup + 1)
            k = i % len(combos)
            for applet, tool in combos[k:] + combos[:k]:
                r = harness.run_once(applet, tool)
                print("%-5s %-10s %-9s %9.1f %10.1f %9d %10s %8s %8s %8.1f" % (
                    label, applet, tool, r["attached_ms"], r["first_event_ms"], r["peak_rss_kb"],
                    r["steady_rss_kb"], r["rss_anon_kb"], r["rss_file_kb"], r["cpu_ms"]))
                sys.stdout.flush()
                if i >= args.warmup:
                    results[(applet, tool)].append(r)
    except RunError as error:
        print("startup.py: %s" % error, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stop):
        print("startup.py: interrupted", file=sys.stderr)
        return 1
    finally:
        harness.cleanup()

    keys = ("attached_ms", "first_event_ms", "peak_rss_kb", "steady_rss_kb", "rss_anon_kb", "rss_file_kb", "cpu_ms")
    summary = {}
    for applet in args.objects:
        summary[applet] = {tool: {key: stats([r[key] for r in results[(applet, tool)]]) for key in keys}
                           for tool in tools}

    def med(applet, tool, key):
        s = summary[applet][tool][key]
        return s["median"] if s else None

    verdicts = {}
    print()
    for applet in args.objects:
        print("%s: medians (p90)" % applet)
        print("  %-26s %18s %18s %18s" % ("", "C+libbpf", "bpfbox", "bpftrace"))
        for title, key, fmt in (("start to attached, ms", "attached_ms", "%.1f"),
                                ("start to first event, ms", "first_event_ms", "%.1f"),
                                ("peak RSS, KiB", "peak_rss_kb", "%.0f"),
                                ("steady-state RSS, KiB", "steady_rss_kb", "%.0f"),
                                ("RssAnon (steady), KiB", "rss_anon_kb", "%.0f"),
                                ("RssFile (steady), KiB", "rss_file_kb", "%.0f"),
                                ("CPU user+sys, ms", "cpu_ms", "%.1f")):
            cells = []
            for tool in TOOLS:
                s = summary[applet].get(tool, {}).get(key)
                cells.append(("%s (%s)" % (fmt % s["median"], fmt % s["p90"])) if s else "-")
            print("  %-26s %18s %18s %18s" % (title, cells[0], cells[1], cells[2]))
        v = {}
        c_start, b_start = med(applet, "C+libbpf", "first_event_ms"), med(applet, "bpfbox", "first_event_ms")
        v["start_vs_c"] = b_start / c_start
        v["steady_rss_vs_c"] = med(applet, "bpfbox", "steady_rss_kb") / med(applet, "C+libbpf", "steady_rss_kb")
        v["peak_rss_vs_c"] = med(applet, "bpfbox", "peak_rss_kb") / med(applet, "C+libbpf", "peak_rss_kb")
        if "bpftrace" in tools:
            v["bpftrace_vs_start"] = med(applet, "bpftrace", "first_event_ms") / b_start
        paired = {}
        for key in ("first_event_ms", "peak_rss_kb", "steady_rss_kb"):
            ratios = [rb[key] / rc[key] for rc, rb in zip(results[(applet, "C+libbpf")], results[(applet, "bpfbox")])
                      if rb[key] and rc[key]]
            paired[key] = statistics.median(ratios) if ratios else None
        print("  median of per-round ratios bpfbox/C: first event %.2fx, peak RSS %.2fx, steady RSS %.2fx" % (
            paired["first_event_ms"], paired["peak_rss_kb"], paired["steady_rss_kb"]))
        print("  verdict (ratios of medians):")
        for key, title, op in (("start_vs_c", "start to first event, bpfbox / C", "<="),
                               ("bpftrace_vs_start", "start to first event, bpftrace / bpfbox", ">="),
                               ("steady_rss_vs_c", "steady-state RSS, bpfbox / C", "<="),
                               ("peak_rss_vs_c", "peak RSS, bpfbox / C", "<=")):
            if key not in v:
                print("    %-42s not measured" % title)
                continue
            ok = v[key] <= TARGETS[key] if op == "<=" else v[key] >= TARGETS[key]
            print("    %-42s %7.3fx  (target %s %.1fx)  %s" % (title, v[key], op, TARGETS[key], "PASS" if ok else "FAIL"))
            v[key + "_pass"] = ok
        verdicts[applet] = v
        print()

    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "objects": objects,
                "rounds": args.rounds,
                "steady_s": args.steady,
                "tools": tools,
                "bpftrace_missing": None if args.bpftrace else args.no_bpftrace_reason,
                "runs": {"%s/%s" % k: v for k, v in results.items()},
                "summary": summary,
                "targets": TARGETS,
                "verdicts": verdicts,
            }, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
