"""Member processes of the reader-group tests (test_groups.py), started with the `spawn` method
of multiprocessing, which imports them from this module.

Frames are those of multi_writer_roles: two uint64, a writer id and its own frame counter.
"""

from __future__ import annotations

import time

import numpy as np

import multi_writer_roles as roles
import shmline


def share(stream: str, results: str, joined: str, member: int) -> None:
    """Joins reader group "workers" of `stream`, opens a writer of the multi-writer stream
    `results`, signals the counting event `joined`, then reads its share of the frames until the
    end of the stream, writing `(member, counter)` to `results` for every frame it got."""
    s = shmline.Stream.open(stream)
    with s.reader(group="workers", wait="block") as reader, \
            shmline.Stream.open(results).writer() as out:
        shmline.Event.open(joined).set()
        for frame in reader:
            out.write(np.array([member, frame[1]], roles.DTYPE), timeout=60)


def hold(stream: str, joined: str, holding: str) -> None:
    """Joins reader group "workers" of `stream`, signals `joined`, lends the first frame it gets
    in place (zero-copy), signals `holding`, and waits to be killed holding it."""
    s = shmline.Stream.open(stream)
    reader = s.reader(group="workers", wait="block")
    shmline.Event.open(joined).set()
    with reader.acquire(timeout=60):
        shmline.Event.open(holding).set()
        time.sleep(120)
    raise SystemExit("the holder was not killed")
