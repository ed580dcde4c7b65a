"""Task functions of the pipeline fan-in test (test_waitset.py), imported by the worker
processes: two sources of 10 and 200 frames, and a task that merges them with select()."""

from __future__ import annotations

import numpy as np

import shmline


def _source(out, frames: int) -> None:
    for i in range(frames):
        out.write(np.full(2, i, dtype=np.int64))


def ten(out) -> None:
    """Writes frames 0..9."""
    _source(out, 10)


def two_hundred(out) -> None:
    """Writes frames 0..199."""
    _source(out, 200)


def merge(a, b) -> None:
    """Reads both inputs through select() until both end; fails unless each arrived whole and in
    order."""
    seen = {"a": 0, "b": 0}
    for name, frame in shmline.select(timeout=60, a=a, b=b):
        if list(frame) != [seen[name]] * 2:
            raise AssertionError(f"input {name}: frame {seen[name]} is {frame!r}")
        seen[name] += 1
    if seen != {"a": 10, "b": 200}:
        raise AssertionError(f"merged {seen}, expected a=10 b=200")
    print(f"merged a={seen['a']} b={seen['b']}", flush=True)
