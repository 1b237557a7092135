#!/usr/bin/env python3
"""Start-to-attached time and peak RSS of `bpfbox execsnoop` against a C + libbpf reference.

Run by bench/startup.sh, which builds everything first. Each round runs the C reference and then
bpfbox (interleaved, so drift on a noisy machine hits both alike) and measures, per run:

  start   CLOCK_MONOTONIC from just before fork (in bench/launch) to the moment the header line
          is read from the tool's stdout pipe: open, load (verifier), attach, header printed.
  rss     ru_maxrss of the tool after it has handled EXECS exec events and was stopped with
          SIGINT (peak resident set over its whole life, KiB).

Also recorded, for explaining a difference: user+system CPU time, and RssAnon / RssFile from
/proc/PID/status just before SIGINT.
"""

import argparse
import base64
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from benchlib import percentile, read_until

HEADER_PREFIX = b"PCOMM"
START_TARGET = 1.2
RSS_TARGET = 1.5




class RunError(Exception):
    pass




def proc_status(pid):
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    fields[key] = int(value.split()[0])
    except OSError:
        pass
    return fields


def run_once(launcher, argv, execs, timeout):
    """One run of argv under the launcher; returns a dict of measurements."""
    out_r, out_w = os.pipe()
    st_r, st_w = os.pipe()
    err_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [launcher, str(st_w)] + argv,
        stdin=subprocess.DEVNULL,
        stdout=out_w,
        stderr=err_file,
        pass_fds=(st_w,),
        close_fds=True,
    )
    os.close(out_w)
    os.close(st_w)
    out = bytearray()
    status_buf = bytearray()
    pid = None
    try:
        deadline = time.monotonic() + timeout
        if not read_until(st_r, status_buf, lambda b: b"\n" in b, deadline):
            raise RunError("the launcher did not start the command")
        first, _, rest = bytes(status_buf).partition(b"\n")
        status_buf = bytearray(rest)
        pid_text, t0_text = first.split()
        pid, t0 = int(pid_text), int(t0_text)

        got_header = read_until(out_r, out, lambda b: b"\n" in b, deadline)
        t1 = time.monotonic_ns()
        if not got_header:
            raise RunError("no header line within %.0f s" % timeout)
        header = bytes(out).split(b"\n", 1)[0]
        if not header.startswith(HEADER_PREFIX):
            raise RunError("unexpected first line: %r" % header[:80])

        # Some events, so that the peak includes decoding and printing, not only loading.
        for _ in range(execs):
            subprocess.run(["/bin/true"], check=False)

        def seen_all(b):
            return sum(1 for line in bytes(b).split(b"\n") if line.startswith(b"true ")) >= execs

        events_seen = read_until(out_r, out, seen_all, time.monotonic() + 5)
        status = proc_status(pid)
        os.kill(pid, signal.SIGINT)
        read_until(out_r, out, lambda b: False, time.monotonic() + timeout)
        if not read_until(st_r, status_buf, lambda b: b"\n" in b, time.monotonic() + timeout):
            raise RunError("the command did not stop after SIGINT")
        wstatus, maxrss, utime, stime = (int(x) for x in bytes(status_buf).split()[:4])
        proc.wait(timeout=timeout)
        if not (os.WIFEXITED(wstatus) and os.WEXITSTATUS(wstatus) == 0):
            raise RunError("the command ended with wait status %d" % wstatus)
        return {
            "start_ms": (t1 - t0) / 1e6,
            "rss_kb": maxrss,
            "cpu_ms": (utime + stime) / 1000.0,
            "rss_anon_kb": status.get("RssAnon"),
            "rss_file_kb": status.get("RssFile"),
            "events_seen": events_seen,
        }
    except RunError as error:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err_file.seek(0)
        detail = err_file.read().decode(errors="replace").strip()
        raise RunError("%s: %s%s" % (" ".join(argv), error, ("\n" + detail) if detail else ""))
    finally:
        os.close(out_r)
        os.close(st_r)
        err_file.close()


def check_same_object(obj_path, bpfbox_bin):
    """The object given to the reference must be the one embedded (base64) in bpfbox."""
    data = open(obj_path, "rb").read()
    embedded = base64.b64encode(data) in open(bpfbox_bin, "rb").read()
    return hashlib.sha256(data).hexdigest(), len(data), embedded


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpfbox", required=True, help="bpfbox binary")
    ap.add_argument("--ref", required=True, help="C reference binary (execsnoop_ref)")
    ap.add_argument("--object", required=True, help="execsnoop.bpf.o, as embedded in bpfbox")
    ap.add_argument("--launcher", required=True, help="bench/launch binary")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first")
    ap.add_argument("--execs", type=int, default=20, help="exec events generated per run")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--json", help="also write every run and the summary to this file")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("startup.py: run as root (BPF)", file=sys.stderr)
        return 1

    digest, size, embedded = check_same_object(args.object, args.bpfbox)
    print("object:  %s (%d bytes, sha256 %s)" % (args.object, size, digest[:16]))
    if embedded:
        print("         the same bytes are embedded in %s" % args.bpfbox)
    else:
        print("         WARNING: %s does not embed these bytes: rebuild so both load the same object"
              % args.bpfbox)

    tools = [
        ("C+libbpf", [args.ref, args.object]),
        ("bpfbox", [args.bpfbox, "execsnoop"]),
    ]
    results = {name: [] for name, _ in tools}
    total = args.warmup + args.rounds
    print("rounds:  %d (+%d warm-up), %d execs per run, order C, bpfbox, C, bpfbox ..." %
          (args.rounds, args.warmup, args.execs))
    print()
    print("%-6s %-9s %10s %10s %9s %9s %9s" % ("round", "tool", "start ms", "peak KiB",
                                              "cpu ms", "anon KiB", "file KiB"))
    for i in range(total):
        label = "warm" if i < args.warmup else str(i - args.warmup + 1)
        for name, argv in tools:
            try:
                r = run_once(args.launcher, argv, args.execs, args.timeout)
            except RunError as error:
                print("startup.py: %s" % error, file=sys.stderr)
                return 1
            if not r["events_seen"]:
                print("startup.py: warning: %s did not print all %d events" % (name, args.execs),
                      file=sys.stderr)
            print("%-6s %-9s %10.1f %10d %9.1f %9s %9s" % (
                label, name, r["start_ms"], r["rss_kb"], r["cpu_ms"],
                r["rss_anon_kb"], r["rss_file_kb"]))
            sys.stdout.flush()
            if i >= args.warmup:
                results[name].append(r)

    summary = {}
    for name, _ in tools:
        runs = results[name]
        summary[name] = {}
        for key in ("start_ms", "rss_kb", "cpu_ms", "rss_anon_kb", "rss_file_kb"):
            values = [r[key] for r in runs if r[key] is not None]
            if values:
                summary[name][key] = {
                    "median": statistics.median(values),
                    "p90": percentile(values, 90),
                    "min": min(values),
                    "max": max(values),
                }

    c, b = summary["C+libbpf"], summary["bpfbox"]
    print()
    print("%-22s %12s %12s %12s %12s %8s %8s" % ("", "C median", "C p90", "bpfbox med",
                                                 "bpfbox p90", "x med", "x p90"))
    rows = [
        ("start to attached, ms", "start_ms", "%.1f"),
        ("peak RSS, KiB", "rss_kb", "%.0f"),
        ("CPU user+sys, ms", "cpu_ms", "%.1f"),
        ("RssAnon at stop, KiB", "rss_anon_kb", "%.0f"),
        ("RssFile at stop, KiB", "rss_file_kb", "%.0f"),
    ]
    for title, key, fmt in rows:
        if key not in c or key not in b:
            continue
        print("%-22s %12s %12s %12s %12s %8.2f %8.2f" % (
            title, fmt % c[key]["median"], fmt % c[key]["p90"], fmt % b[key]["median"],
            fmt % b[key]["p90"], b[key]["median"] / c[key]["median"], b[key]["p90"] / c[key]["p90"]))

    # Each round's bpfbox run over the C run just before it: drift between rounds cancels out.
    paired = {
        key: statistics.median(rb[key] / rc[key] for rc, rb in zip(results["C+libbpf"], results["bpfbox"]))
        for key in ("start_ms", "rss_kb")
    }
    print()
    print("median of per-round ratios: start %.2fx, peak RSS %.2fx" % (paired["start_ms"], paired["rss_kb"]))

    start_ratio = b["start_ms"]["median"] / c["start_ms"]["median"]
    rss_ratio = b["rss_kb"]["median"] / c["rss_kb"]["median"]
    start_ok = start_ratio <= START_TARGET
    rss_ok = rss_ratio <= RSS_TARGET
    print()
    print("verdict (ratios of medians, bpfbox / C):")
    print("  start to attached  %.3fx  (target <= %.1fx)  %s" % (start_ratio, START_TARGET,
                                                              "PASS" if start_ok else "FAIL"))
    print("  peak RSS           %.3fx  (target <= %.1fx)  %s" % (rss_ratio, RSS_TARGET,
                                                              "PASS" if rss_ok else "FAIL"))
    print("  overall            %s" % ("PASS" if start_ok and rss_ok else "FAIL"))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "object_sha256": digest,
                "object_embedded_in_bpfbox": embedded,
                "rounds": args.rounds,
                "execs": args.execs,
                "runs": results,
                "summary": summary,
                "start_ratio": start_ratio,
                "rss_ratio": rss_ratio,
                "paired_ratios": paired,
                "start_pass": start_ok,
                "rss_pass": rss_ok,
            }, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
