"""The Python side of the cross-process tests, run as a child process.

Usage: py_peer.py ROLE KIND STREAM_NAME FRAME_COUNT

- writer: opens the stream's writer, waits for one reader, writes frames 0..COUNT-1 of KIND
  (frames.py), switching every chunk between write(), reserve() and write_batch(), and closes
  the stream.
- reader: opens a reader (printing "ready" once attached), reads to the end of the stream
  switching every chunk between read(), acquire(), read_batch() and read_into(), checks every
  frame's contents, sequence number and flags, and that exactly COUNT came.
Exit status 0 and a last line "wrote/read COUNT frames" when all went right.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import shmline  # noqa: E402
from frames import BATCH, CHUNK, KINDS, flags, frame, same  # noqa: E402

PATIENCE = 60.0


def write(stream: shmline.Stream, kind: str, count: int) -> None:
    writer = stream.writer()
    writer.wait_for_readers(1, timeout=PATIENCE)
    i = 0
    while i < count:
        mode = (i // CHUNK) % 3
        if mode == 0:
            writer.write(frame(kind, i), flags=flags(i), timeout=PATIENCE)
            i += 1
        elif mode == 1:
            f = frame(kind, i)
            if kind == "pattern":
                with writer.reserve(len(f), flags=flags(i), timeout=PATIENCE) as view:
                    view[:] = f
            else:
                with writer.reserve(flags=flags(i), timeout=PATIENCE) as view:
                    view[...] = f
            i += 1
        else:
            end = min(i + BATCH, (i // CHUNK + 1) * CHUNK, count)
            frames = [frame(kind, k) for k in range(i, end)]
            batch = frames if kind == "pattern" else np.stack(frames)
            writer.write_batch(batch, flags=flags(i), timeout=PATIENCE)
            i = end
    writer.close()
    print(f"wrote {count} frames")


def check(kind: str, got, i: int, info) -> None:
    if not same(kind, got, i) or info.seq != i or info.flags != flags(i) or info.missed:
        sys.exit(f"frame {i} is wrong: {got!r} {info}")


def read(stream: shmline.Stream, kind: str, count: int) -> None:
    dtype, shape = KINDS[kind]
    reader = stream.reader(require_dtype=dtype, require_shape=shape)
    print("ready", flush=True)
    out = np.empty(shape, dtype) if dtype is not None else bytearray(stream.max_frame_size)
    i = 0
    while True:
        mode = (i // CHUNK) % 4
        try:
            if mode == 0:
                check(kind, reader.read(timeout=PATIENCE), i, reader.info)
                i += 1
            elif mode == 1:
                with reader.acquire(timeout=PATIENCE) as view:
                    check(kind, view, i, reader.info)
                i += 1
            elif mode == 2:
                frames = reader.read_batch(min(BATCH, CHUNK - i % CHUNK), timeout=PATIENCE)
                for k, (got, info) in enumerate(zip(frames, reader.batch_info)):
                    check(kind, got, i + k, shmline.FrameInfo(*info.tolist()))
                i += len(frames)
            else:
                n = reader.read_into(out, timeout=PATIENCE)
                check(kind, out if dtype is not None else out[:n], i, reader.info)
                i += 1
        except shmline.EndOfStream:
            break
    if i != count:
        sys.exit(f"read {i} frames, expected {count}")
    reader.close()
    print(f"read {count} frames")


def main() -> None:
    role, kind, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with shmline.Stream.open(name) as stream:
        {"writer": write, "reader": read}[role](stream, kind, count)


if __name__ == "__main__":
    main()
