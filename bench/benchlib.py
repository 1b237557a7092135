"""Helpers shared by the benchmark harnesses in bench/ (run as bench/NAME.py, which puts this
directory on sys.path)."""

import os
import select
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
