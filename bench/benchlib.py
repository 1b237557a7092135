"""Helpers shared by the benchmark harnesses in bench/ (run as bench/NAME.py, which puts this
directory on sys.path)."""

import os
import select
import sys
import time


def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    k = (len(data) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def read_until(fd, buf, predicate, deadline, chunk_size=1 << 16):
    """Reads from fd into buf (a bytearray) until predicate(buf) holds; False on EOF or when
    the monotonic deadline passes."""
    while not predicate(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return False
        chunk = os.read(fd, chunk_size)
        if not chunk:
            return False
        buf += chunk
    return True


def remove_pins_and_cgroups(tool, pins, cgroups):
    """Unlinks pinned maps and removes cgroups (innermost last in the list: removed first),
    waiting up to 5 s for a cgroup whose processes just exited; says what could not go."""
    for pin in pins:
        try:
            os.unlink(pin)
        except OSError as error:
            print("%s: could not remove %s: %s" % (tool, pin, error), file=sys.stderr)
    for path in reversed(cgroups):
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)  # a process that just exited may still be listed
        else:
            print("%s: could not remove cgroup %s" % (tool, path), file=sys.stderr)

