"""The Python peer of the conformance matrix (tests/conformance/README.md has the command line,
the frames and the digest, which every language's peer shares). Streams and events through the
shmline package, with NumPy frames.

    peer.py write|read --stream NAME --kind f32|bytes --path copy|zero --frames N
    peer.py set-event|wait-event --event NAME --mode flag|counting --count K
"""

from __future__ import annotations

import argparse
import sys
import zlib
from typing import Any, NoReturn

import numpy as np

import shmline

PATIENCE = 60.0
CAPACITY = 16
F32_ELEMENTS = 256
BYTES_MAX = 1000
DIGEST_START = 0xCBF29CE484222325
MASK64 = (1 << 64) - 1

# ---- The frames, the digest and the command line: the same in every peer. ----

_K = np.arange(F32_ELEMENTS, dtype=np.int64)
_J = np.arange(BYTES_MAX, dtype=np.int64)
# Byte j of a bytes frame, before adding the frame's own i * 131.
_BYTES_BASE = ((_J * 7 + (_J >> 8) * 13) % 256).astype(np.uint8)


def frame_flags(i: int) -> int:
    return (i * 2654435761) & 0xFFFFFFFF


def frame(kind: str, i: int) -> np.ndarray:
    """Frame `i` of `kind`: a float32 array of the schema, or a uint8 array of the bytes."""
    if kind == "f32":
        n = (i * 256 + _K) % (1 << 24) - (1 << 23)
        return (n.astype("<f4") / np.float32(256)).astype("<f4")
    length = (i * 7919) % (BYTES_MAX + 1)
    return _BYTES_BASE[:length] + np.uint8((i * 131) % 256)  # uint8 arithmetic wraps


def digest_frame(h: int, seq: int, flags: int, data: Any) -> int:
    """Folds a frame into the digest; `data` is any C-contiguous buffer of its payload."""
    payload = memoryview(data).cast("B")
    for word in (seq, flags, payload.nbytes, zlib.crc32(payload)):
        h = ((h ^ word) * 0x100000001B3) & MASK64
    payload.release()
    return h


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="peer.py")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("write", "read"):
        sub = commands.add_parser(command)
        sub.add_argument("--stream", required=True)
        sub.add_argument("--kind", required=True, choices=["f32", "bytes"])
        sub.add_argument("--path", required=True, choices=["copy", "zero"])
        sub.add_argument("--frames", required=True, type=int)
    for command in ("set-event", "wait-event"):
        sub = commands.add_parser(command)
        sub.add_argument("--event", required=True)
        sub.add_argument("--mode", required=True, choices=["flag", "counting"])
        sub.add_argument("--count", required=True, type=int)
    return parser.parse_args()  # exits with status 2 on a bad command line


# ---- The roles. ----


def fail(message: str) -> NoReturn:
    print(f"python peer: {message}", file=sys.stderr)
    sys.exit(1)


def write_frames(args: argparse.Namespace) -> None:
    if args.kind == "f32":
        stream = shmline.Stream.create(args.stream, dtype="<f4", shape=(F32_ELEMENTS,),
                                       capacity=CAPACITY, unlink_on_close=True)
    else:
        stream = shmline.Stream.create(args.stream, max_frame_size=BYTES_MAX, capacity=CAPACITY,
                                       checksum=True, unlink_on_close=True)
    writer = stream.writer()
    stream.close()  # the writer keeps it mapped
    print("ready", flush=True)
    writer.wait_for_readers(1, timeout=PATIENCE)
    digest = DIGEST_START
    for i in range(args.frames):
        expected = frame(args.kind, i)
        if args.path == "zero":
            if args.kind == "f32":
                with writer.reserve(timeout=PATIENCE, flags=frame_flags(i)) as view:
                    view[...] = expected  # a float32 array in the slot
                    digest = digest_frame(digest, i, frame_flags(i), view)
            else:
                with writer.reserve(len(expected), timeout=PATIENCE, flags=frame_flags(i)) \
                        as view:
                    view[:] = expected  # a memoryview of the slot
                    digest = digest_frame(digest, i, frame_flags(i), view)
        else:
            digest = digest_frame(digest, i, frame_flags(i), expected)
            writer.write(expected, timeout=PATIENCE, flags=frame_flags(i))
    writer.close()
    print(f"wrote {args.frames} frames digest {digest:016x}")


def check_frame(kind: str, i: int, info: shmline.FrameInfo, data: Any) -> None:
    """Checks frame `i` (`data`: its payload as any buffer) against the formulas."""
    expected = frame(kind, i)
    got = memoryview(data).cast("B")
    bytes_right = got == memoryview(expected).cast("B")
    got.release()
    if info.seq != i or info.flags != frame_flags(i) or info.missed or not bytes_right:
        fail(f"frame {i} is wrong: {info}, expected len {expected.nbytes} and flags "
             f"{frame_flags(i)}, bytes {'right' if bytes_right else 'wrong'}")


def read_frames(args: argparse.Namespace) -> None:
    with shmline.Stream.open(args.stream) as stream:
        if args.kind == "f32":
            reader = stream.reader(require_dtype="<f4", require_shape=(F32_ELEMENTS,))
        else:
            reader = stream.reader()
    digest = DIGEST_START
    i = 0
    while True:
        try:
            if args.path == "zero":
                with reader.acquire(timeout=PATIENCE) as view:  # read-only, in the slot
                    info = reader.info
                    check_frame(args.kind, i, info, view)
                    digest = digest_frame(digest, i, info.flags, view)
            else:
                data = reader.read(timeout=PATIENCE)
                info = reader.info
                check_frame(args.kind, i, info, data)
                digest = digest_frame(digest, i, info.flags, data)
        except shmline.EndOfStream:
            break
        i += 1
    reader.close()
    if i != args.frames:
        fail(f"read {i} frames, expected {args.frames}")
    print(f"read {i} frames digest {digest:016x}")


def wait_event(args: argparse.Namespace) -> None:
    counting = args.mode == "counting"
    with shmline.Event.create(args.event, mode=args.mode, unlink_on_close=True) as event:
        print("ready", flush=True)
        for k in range(args.count if counting else 1):
            if not event.wait(timeout=PATIENCE):
                fail(f"wait {k} timed out")
        if event.is_set() == counting:
            fail(f"after waiting the event is {'still set' if counting else 'clear'}")
    print("waited")


def set_event(args: argparse.Namespace) -> None:
    with shmline.Event.open(args.event) as event:
        if event.mode != args.mode:
            fail(f"the event's mode is {event.mode}")
        for _ in range(args.count):
            event.set()
    print(f"set {args.count}")


def main() -> None:
    args = parse()
    roles = {"write": write_frames, "read": read_frames, "wait-event": wait_event,
             "set-event": set_event}
    try:
        roles[args.command](args)
    except shmline.ShmlineError as e:
        fail(f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
