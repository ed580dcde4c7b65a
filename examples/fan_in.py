"""Fan-in: two writer processes feed one loop that reads whichever stream has a frame.

    python examples/fan_in.py [--frames-a 10] [--frames-b 200]

`shmline.select(a=reader_a, b=reader_b)` yields `(name, frame)` from whichever input is ready,
sleeping (no CPU) while neither is, until both streams have ended. Each input stays in order; a
quiet input is not starved by a busy one. Exits 1 if any frame is missing or out of order.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys

import numpy as np

import shmline


def produce(name: str, frames: int) -> None:
    """A writer process: frames 0..frames-1 (each a vector holding its number), then the end."""
    with shmline.Stream.open(name) as stream, stream.writer() as writer:
        for i in range(frames):
            writer.write(np.full(4, i, dtype=np.int64))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames-a", type=int, default=10)
    parser.add_argument("--frames-b", type=int, default=200)
    args = parser.parse_args()
    wanted = {"a": args.frames_a, "b": args.frames_b}
    streams = {
        key: shmline.Stream.create(f"fan-in-{key}-{os.getpid()}", shape=(4,), dtype=np.int64,
                                   capacity=16, unlink_on_close=True)
        for key in wanted
    }
    # Readers join before the writers start, so they miss nothing.
    readers = {key: stream.reader() for key, stream in streams.items()}
    spawn = mp.get_context("spawn")
    writers = [spawn.Process(target=produce, args=(streams[key].name, n))
               for key, n in wanted.items()]
    for w in writers:
        w.start()
    seen = {key: 0 for key in wanted}
    ok = True
    for key, frame in shmline.select(timeout=60, **readers):
        ok &= bool((frame == seen[key]).all())
        seen[key] += 1
    for w in writers:
        w.join()
        ok &= w.exitcode == 0
    for reader in readers.values():
        reader.close()
    for stream in streams.values():
        stream.close()
    ok &= seen == wanted
    print(f"fan-in: {', '.join(f'{k} {n} frames' for k, n in seen.items())}"
          f"{'' if ok else ' (WRONG: expected ' + str(wanted) + ')'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
