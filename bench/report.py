#!/usr/bin/env python3
"""The summary table of bench/all.sh, always from a real run.

  report.py merge DIR        merges DIR/<name>.json (and render.txt) with the run's conditions
                             into DIR/results.json
  report.py table RESULTS [--doc docs/performance.md] [--out FILE]
                             renders the table (comparison, bpfbox, reference, ratio, target,
                             verdict) from results.json; --doc replaces what stands between
                             <!-- bench:table:begin --> and <!-- bench:table:end --> in that file
"""

import argparse
import json
import os
import subprocess
import sys
import time

BEGIN = "<!-- bench:table:begin -->"
END = "<!-- bench:table:end -->"
NAMES = ("startup", "opensnoop", "lossfree", "tcp", "sockmap", "render", "size", "build")


def conditions(root):
    def git(*args):
        try:
            return subprocess.run(["git", "-C", root] + list(args), capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    dirty = subprocess.run(["git", "-C", root, "diff", "--quiet", "HEAD", "--", "Sources", "bpf", "Package.swift"]).returncode
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {
        "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "load_average": load,
        "git_rev": git("rev-parse", "--short", "HEAD"),
        "tree_changed": dirty != 0,
        "bpfbox_bin": None if os.environ.get("BENCH_BUILT") else os.environ.get("BPFBOX_BIN"),
    }


def parse_render(path):
    """render-bench prints one JSON line per run; keep the best (lowest) ns per event per case."""
    best, allocs = {}, {}
    with open(path) as f:
        for line in f:
            if line.startswith("{"):
                for case, ns in json.loads(line)["ns_per_event"].items():
                    best[case] = min(ns, best.get(case, ns))
            elif line.startswith("allocs "):
                # "allocs CASE WORDS... PER_EVENT TOTAL_FOR_100000"
                words = line.split()
                allocs[" ".join(words[1:-2])] = int(words[-1]) / 100000.0
    return {"ns_per_event": best, "events_per_s": {c: 1e9 / ns for c, ns in best.items() if ns},
            "allocations_per_event": allocs}


def merge(directory):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = {"conditions": conditions(root), "benchmarks": {}, "not_measured": {}}
    started = os.path.join(directory, "started")
    if os.path.exists(started):
        with open(started) as f:
            results["conditions"]["started"] = f.read().strip()
    for name in NAMES:
        path = os.path.join(directory, name + ".json")
        if name == "render" and os.path.exists(os.path.join(directory, "render.txt")):
            results["benchmarks"]["render"] = parse_render(os.path.join(directory, "render.txt"))
        elif os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                results["benchmarks"][name] = json.load(f)
        elif os.path.exists(os.path.join(directory, name + ".txt")):
            results["not_measured"][name] = "could not measure: see %s.txt" % name
    out = os.path.join(directory, "results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(out)


# Table ---------------------------------------------------------------------------------------

def ms(v):
    return "%.1f ms" % v


def mib(kb):
    return "%.1f MiB" % (kb / 1024.0)


def ns(v):
    return "%+.0f ns" % v


def rfmt(value, target):
    """A ratio with two decimals, three when two would print the target itself."""
    text = "%.2f" % value
    if text == "%.2f" % target and value != target:
        text = "%.3f" % value
    return text + "x"


def verdict(ok):
    if ok is None:
        return "-"
    return "**PASS**" if ok else "**FAIL**"


def rows_startup(b):
    rows = []
    targets = b["targets"]
    for applet, v in b["verdicts"].items():
        s = b["summary"][applet]

        def med(tool, key):
            return s[tool][key]["median"]
        rows.append(("%s: start to first event vs C+libbpf" % applet, ms(med("bpfbox", "first_event_ms")),
                     ms(med("C+libbpf", "first_event_ms")), rfmt(v["start_vs_c"], targets["start_vs_c"]),
                     "<= %.1fx" % targets["start_vs_c"], verdict(v.get("start_vs_c_pass"))))
        if "bpftrace_vs_start" in v:
            rows.append(("%s: start to first event vs bpftrace (bpftrace / bpfbox)" % applet,
                         ms(med("bpfbox", "first_event_ms")), ms(med("bpftrace", "first_event_ms")),
                         rfmt(v["bpftrace_vs_start"], targets["bpftrace_vs_start"]), ">= %.0fx" % targets["bpftrace_vs_start"],
                         verdict(v.get("bpftrace_vs_start_pass"))))
        rows.append(("%s: steady-state RSS vs C+libbpf" % applet, mib(med("bpfbox", "steady_rss_kb")),
                     mib(med("C+libbpf", "steady_rss_kb")), rfmt(v["steady_rss_vs_c"], targets["steady_rss_vs_c"]),
                     "<= %.1fx" % targets["steady_rss_vs_c"], verdict(v.get("steady_rss_vs_c_pass"))))
        rows.append(("%s: peak RSS vs C+libbpf" % applet, mib(med("bpfbox", "peak_rss_kb")),
                     mib(med("C+libbpf", "peak_rss_kb")), rfmt(v["peak_rss_vs_c"], targets["peak_rss_vs_c"]),
                     "<= %.1fx" % targets["peak_rss_vs_c"], verdict(v.get("peak_rss_vs_c_pass"))))
        if "bpftrace" in s:
            rows.append(("%s: peak RSS, bpftrace one-liner (bpftrace / bpfbox)" % applet,
                         mib(med("bpfbox", "peak_rss_kb")), mib(med("bpftrace", "peak_rss_kb")),
                         "%.2fx" % (med("bpftrace", "peak_rss_kb") / med("bpfbox", "peak_rss_kb")), "-", "-"))
    return rows


def rows_opensnoop(b):
    rows = []
    o = b["overhead"]
    s = o["summary"]
    if "c-lookup" in s:
        lv = o["lookup_verdict"]
        rows.append(("opensnoop: cost per open, filtered out in the kernel vs a bare cgroup-id lookup (paired)",
                     ns(s["bpfbox-filtered"]["paired_overhead"]), ns(s["c-lookup"]["paired_overhead"]),
                     rfmt(lv["paired_ratio"], lv["target"]), "<= %.1fx" % lv["target"], verdict(lv["pass"])))
    if "bpftrace" in s:
        f, t = s["bpfbox-filtered"], s["bpftrace"]
        rows.append(("opensnoop: cost per open, filtered out vs bpftrace one-liner unfiltered",
                     ns(f["overhead"]), ns(t["overhead"]), "%.2fx" % (f["overhead"] / t["overhead"]) if t["overhead"] else "-",
                     "<= 1.0x", verdict(o["verdict_pass"])))
        e = s["bpfbox-emit"]
        rows.append(("opensnoop: cost per open, every open emitted vs bpftrace one-liner",
                     ns(e["overhead"]), ns(t["overhead"]), "%.2fx" % (e["overhead"] / t["overhead"]) if t["overhead"] else "-",
                     "-", "-"))
    else:
        e = s["bpfbox-emit"]
        rows.append(("opensnoop: cost per open, every open emitted", ns(e["overhead"]), "-", "-", "-", "-"))
    rows.append(("opensnoop: open+close with no tracer (baseline)", "%.0f ns" % s["none"]["median"], "", "", "", ""))
    if "storm" in b:
        st = b["storm"]
        storms = st["storms"]
        rows.append(("opensnoop: storms of %d opens (%s), arrived + reported lost == opens" % (
                         storms[0]["opens"], ", ".join(x["label"] for x in storms)) if storms else "opensnoop: storms",
                     "exact in %d of %d, %d with losses" % (sum(1 for x in storms if x["exact"]), len(storms),
                                                            sum(1 for x in storms if x["lost_reported"])),
                     "-", "-", "no silent loss (and a storm that loses)", verdict(st["verdict_pass"])))
    return rows


def rows_lossfree(b):
    rows = []
    best = b["highest_zero_loss_rate"]
    ref = best.get("c-file")
    for config, title in (("bpfbox-null", "JSON to /dev/null"), ("bpfbox-file", "JSON to a file")):
        if config not in best:
            continue
        at = [r for r in b["runs"] if r["config"] == config and r["rate"] == b["target_rate"]]
        cell = "-"
        if at:
            if not all(r["zero_loss"] for r in at):
                cell = verdict(False)
            elif all(r["reached"] for r in at):
                cell = verdict(True)
            else:
                cell = "**NOT SHOWN**: no loss, but the generator reached only %s/s" % format(
                    int(min(r["achieved_rate"] for r in at)), ",")
        rows.append(("opensnoop: highest loss-free rate, default ring, %s (%.0f s runs)" % (title, b["duration_s"]),
                     "%s/s" % format(best[config], ",") if best[config] else "none",
                     ("%s/s (C loader, file)" % format(ref, ",")) if ref else "-",
                     "%.2fx" % (best[config] / ref) if best[config] and ref else "-",
                     "zero loss at %s/s for %.0f s" % (format(b["target_rate"], ","), b["target_duration_s"]),
                     cell + ("" if b["duration_s"] >= b["target_duration_s"] else " (short runs)")))
        for r in at:
            rows.append(("  at %s/s: received / generated, lost; generator reached; tool CPU" % format(r["rate"], ","),
                         "%d / %d, %d lost" % (r["received"], r["generated"], r["lost"]),
                         "", "", "%.0f/s reached; %.0f%% CPU" % (r["achieved_rate"], r["tool_cpu_pct"]), ""))
    for config in sorted(c for c in best if ":" in c):
        kind, _, kb = config.partition(":")
        at = [r for r in b["runs"] if r["config"] == config and r["rate"] == b["target_rate"]]
        for r in at:
            rows.append(("  for comparison, %s with --ringbuf-kb %s at %s/s" % (kind, kb, format(r["rate"], ",")),
                         "%d / %d, %d lost" % (r["received"], r["generated"], r["lost"]), "", "",
                         "%.0f/s reached; %.0f%% CPU" % (r["achieved_rate"], r["tool_cpu_pct"]), "-"))
    return rows


def rows_tcp(b):
    rows = []
    for key, title in (("send 64 B / tcptop", "tcptop: cost per 64 B send()"),
                       ("send 16 KiB / tcptop", "tcptop: cost per 16 KiB send()"),
                       ("connect / tcpconnect", "tcpconnect: cost per connect(), emitting"),
                       ("connect / tcpconnect-cgmap", "tcpconnect: cost per connect(), filtered out")):
        a = b["added"].get(key)
        if not a:
            continue
        n = a["ns_per_op"]
        rows.append((title + " (wall, paired)", ns(n["paired_added"]), "%.0f ns untraced" % n["none"],
                     "%.2fx" % n["ratio"], "-", "-"))
    return rows


def rows_sockmap(b):
    rows = []
    for key, title, target in (("rr 64 B / p50 us", "sockmap: 64 B request/response p50 latency", ">= 2.0x lower"),
                               ("stream 4 KiB / Gbit/s", "sockmap: streaming throughput, 4 KiB writes", ">= 0.95x"),
                               ("stream 64 KiB / Gbit/s", "sockmap: streaming throughput, 64 KiB writes", ">= 0.95x")):
        e = b["summary"].get(key)
        if not e or "sockmap" not in e:
            continue
        unit = "us" if key.endswith("us") else "Gbit/s"
        fmt = "%.1f %s" if unit == "us" else "%.2f %s"
        rows.append((title + " (vs plain loopback TCP; ratio = paired speed-up)", fmt % (e["sockmap"]["median"], unit),
                     fmt % (e["tcp"], unit), "%.2fx" % e["sockmap"]["paired_speedup"], target,
                     verdict(None if e["sockmap"]["verdict"] is None else e["sockmap"]["verdict"] == "PASS")))
    return rows


def rows_render(b):
    rows = []
    for case, eps in sorted(b["events_per_s"].items()):
        target = ">= 1,000,000/s" if case == "opensnoop json" else "-"
        ok = (eps >= 1e6) if case == "opensnoop json" else None
        rows.append(("user space: decode + render %s to /dev/null (best of 5)" % case,
                     "%s events/s" % format(int(eps), ","), "", "%.0f ns/event" % b["ns_per_event"][case], target, verdict(ok)))
    for case, per_event in sorted(b.get("allocations_per_event", {}).items()):
        rows.append(("user space: heap allocations per event, %s (malloc calls, 100,000 events)" % case,
                     "%.2f" % per_event, "", "", "0 (no per-event allocation)", verdict(per_event < 0.01)))
    return rows


def rows_size(b, build):
    rows = [("binary size, the measured binary (%s, not stripped)" % os.path.relpath(b["release_binary"]) if os.path.isabs(b["release_binary"]) else b["release_binary"],
             "%.1f MB" % (b["release_binary_bytes"] / 1e6), "", "", "-", "-")]
    if b.get("swift_build_binary_bytes"):
        rows.append(("binary size, `swift build -c release` (loads libbpf, libelf, zlib, libstdc++)",
                     "%.1f MB" % (b["swift_build_binary_bytes"] / 1e6), "", "", "-", "-"))
    if build:
        rows.append(("binary size, release build stripped", "%.1f MB" % (build["release_binary_stripped_bytes"] / 1e6), "", "", "-", "-"))
        if build.get("static_release"):
            s = build["static_release"]
            rows.append(("binary size, scripts/release.sh (stripped, static but for glibc)", "%.1f MB" % (s["bytes"] / 1e6),
                         "", "", "-", "-"))
        c = build["clean_build"]
        rows.append(("clean build, `swift build -c release` in a fresh export",
                     "%.0f s wall, %.0f s CPU" % (c["wall_s"], c["user_s"] + c["sys_s"]), "", "", "-", "-"))
        if build.get("static_release"):
            s = build["static_release"]
            rows.append(("clean build, scripts/release.sh in the same export", "%.0f s wall, %.0f s CPU" % (
                s["wall_s"], s["user_s"] + s["sys_s"]), "", "", "-", "-"))
    return rows


def table(results):
    c = results["conditions"]
    b = results["benchmarks"]
    rows = []
    if "startup" in b:
        rows += rows_startup(b["startup"])
    if "opensnoop" in b:
        rows += rows_opensnoop(b["opensnoop"])
    if "lossfree" in b:
        rows += rows_lossfree(b["lossfree"])
    if "render" in b:
        rows += rows_render(b["render"])
    if "tcp" in b:
        rows += rows_tcp(b["tcp"])
    if "sockmap" in b:
        rows += rows_sockmap(b["sockmap"])
    if "size" in b:
        rows += rows_size(b["size"], b.get("build"))
    lines = [
        "Run of %s%s; kernel `%s`, %d CPUs, load average %s at the end; tree `%s`%s%s." % (
            c.get("started", c["time"]), " to %s" % c["time"] if c.get("started") else "", c["kernel"], c["cpus"],
            c["load_average"], c["git_rev"], " + changes in Sources, bpf or Package.swift" if c["tree_changed"] else "",
            "; binary `%s`" % c["bpfbox_bin"] if c.get("bpfbox_bin") else ""),
        "",
        "| comparison | bpfbox | reference | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    passed = sum(1 for r in rows if r[5].startswith("**PASS**"))
    failed = sum(1 for r in rows if r[5].startswith("**FAIL**"))
    unshown = sum(1 for r in rows if r[5].startswith("**NOT SHOWN**"))
    lines.append("")
    lines.append("%d targets met, %d missed%s." % (passed, failed, ", %d not shown by this run" % unshown if unshown else ""))
    for name, why in sorted(results.get("not_measured", {}).items()):
        lines.append("Not measured: %s (%s)." % (name, why))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge")
    m.add_argument("dir")
    t = sub.add_parser("table")
    t.add_argument("results")
    t.add_argument("--doc")
    t.add_argument("--out")
    args = ap.parse_args()
    if args.cmd == "merge":
        merge(args.dir)
        return 0
    with open(args.results) as f:
        text = table(json.load(f))
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.doc:
        with open(args.doc) as f:
            doc = f.read()
        if BEGIN not in doc or END not in doc:
            print("report.py: %s has no %s ... %s markers" % (args.doc, BEGIN, END), file=sys.stderr)
            return 1
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        with open(args.doc, "w") as f:
            f.write(head + BEGIN + "\n" + text + END + tail)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
