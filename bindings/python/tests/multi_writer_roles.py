"""Writer processes of the multi-writer tests (test_multi_writer.py), started with the `spawn`
method of multiprocessing, which imports them from this module.

Every frame is two uint64: the writer's id and its own frame counter, so a reader can check that
it got each writer's frames once and in the order that writer wrote them.
"""

from __future__ import annotations

import time

import numpy as np

import shmline

SHAPE = (2,)
DTYPE = np.uint64


def frame(writer: int, i: int) -> np.ndarray:
    """Frame `i` of writer `writer`."""
    return np.array([writer, i], DTYPE)


def write_frames(stream: str, started: str, writer: int, frames: int) -> None:
    """Opens a writer of `stream`, signals the counting event `started`, then writes `frames`
    frames and closes."""
    s = shmline.Stream.open(stream)
    with s.writer() as w:
        shmline.Event.open(started).set()
        for i in range(frames):
            w.write(frame(writer, i), timeout=60)


def write_then_hold(stream: str, holding: str, writer: int, frames: int) -> None:
    """Opens a writer of `stream`, writes `frames` frames, then reserves a slot (claiming the
    next sequence number without publishing it), signals the event `holding`, and waits to be
    killed."""
    s = shmline.Stream.open(stream)
    w = s.writer()
    for i in range(frames):
        w.write(frame(writer, i), timeout=60)
    slot = w.reserve(timeout=60)
    shmline.Event.open(holding).set()
    time.sleep(120)
    raise SystemExit(f"the holder was not killed (holding {slot!r})")
