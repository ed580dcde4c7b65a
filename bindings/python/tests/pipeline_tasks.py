"""Task functions of the pipeline tests (test_pipeline.py), run by worker processes, which
import them from this module. Every source writes frames that are a function of their sequence
number, so every sink checks every frame, and fails (an exception: the pipeline fails naming
it) at the first wrong or missing one. Frame counts come from the FRAMES environment variable.

Three kinds of frames:
- `frame(i)`: float64 x 16, element k is i * 1000 + k (Python stages, several read and write
  paths);
- `c_payload(i)`: 64 uint8, tests/c/pipeline_frames.h's payload (the C task programs);
- `f32_frame(i)`: float32 x 8, element k is i * 8 + k (examples/pipeline_task.rs, the Rust
  task program).
Scale stages double every element (wrapping for uint8).
"""

from __future__ import annotations

import os
import time

import numpy as np


def frames() -> int:
    return int(os.environ["FRAMES"])


def check(got: np.ndarray, expected: np.ndarray, count: int) -> None:
    if got.dtype != expected.dtype or got.shape != expected.shape or \
            not np.array_equal(got, expected):
        raise AssertionError(f"frame {count} is {got!r}, expected {expected!r}")


def check_count(count: int) -> None:
    if count != frames():
        raise AssertionError(f"{count} frames arrived, expected {frames()}")


# -- float64 frames, Python stages ----------------------------------------------------------------

def frame(i: int) -> np.ndarray:
    return np.arange(16, dtype=np.float64) + i * 1000.0


def source(out) -> None:
    """Writes FRAMES frames: single writes, then batches, then zero-copy reservations."""
    n = frames()
    third = n // 3
    for i in range(third):
        out.write(frame(i))
    batch = 64
    for start in range(third, 2 * third, batch):
        stop = min(start + batch, 2 * third)
        out.write_batch(np.stack([frame(i) for i in range(start, stop)]))
    for i in range(2 * third, n):
        with out.reserve() as slot:
            slot[:] = frame(i)


def scale(samples, doubled) -> None:
    """Doubles every frame in place in shared memory, until the source's stream ends (acquire
    raises EndOfStream, which ends the task normally)."""
    while True:
        with samples.acquire() as f, doubled.reserve() as out:
            np.multiply(f, 2.0, out=out)


def sink(doubled) -> None:
    count = 0
    for f in doubled:
        check(f, frame(count) * 2.0, count)
        count += 1
    check_count(count)
    print(f"sink verified {count} frames", flush=True)


# -- uint8 x 64 frames, with the C task programs (tests/c/task_*.c) --------------------------------

def c_payload(seq: int) -> np.ndarray:
    head = np.frombuffer((seq % 2**64).to_bytes(8, "little"), np.uint8)
    tail = ((seq * 31 + np.arange(56)) % 256).astype(np.uint8)
    return np.concatenate([head, tail])


def c_source(out) -> None:
    for seq in range(frames()):
        out.write(c_payload(seq))


def c_scale(input, out) -> None:
    for f in input:
        out.write(f + f)  # uint8: doubling wraps, as in C


def c_sink(input) -> None:
    count = 0
    for f in input:
        expected = c_payload(count)
        check(f, expected + expected, count)
        count += 1
    check_count(count)
    print(f"python sink verified {count} frames", flush=True)


# -- float32 x 8 frames, with the Rust task program (examples/pipeline_task.rs) --------------------

def f32_frame(i: int) -> np.ndarray:
    return (np.arange(8) + i * 8).astype(np.float32)


def rust_source(samples) -> None:
    for i in range(frames()):
        samples.write(f32_frame(i))


def rust_scale(samples, doubled) -> None:
    for f in samples:
        doubled.write(f * np.float32(2))


def rust_sink(doubled) -> None:
    count = 0
    for f in doubled:
        check(f, f32_frame(count) * np.float32(2), count)
        count += 1
    check_count(count)
    print(f"python sink verified {count} frames", flush=True)


# -- Events ----------------------------------------------------------------------------------------

def signaller(go, ticks) -> None:
    for _ in range(frames()):
        ticks.set()
    go.set()


def waiter(go, ticks) -> None:
    if not go.wait(timeout=60):
        raise AssertionError("go was never set")
    taken = sum(ticks.wait(timeout=60) for _ in range(frames()))
    if taken != frames() or ticks.wait(timeout=0):
        raise AssertionError(f"{taken} ticks taken, expected exactly {frames()}")
    print(f"waiter took {taken} ticks", flush=True)


# -- Failures, stops and metrics --------------------------------------------------------------------

def fail_loudly() -> None:
    raise ValueError("boom: this task found a bad frame")


def idle() -> None:
    """Waits until the runner stops the pipeline (SIGTERM interrupts the sleep)."""
    while True:
        time.sleep(0.05)


def endless_source(out) -> None:
    i = 0
    while True:
        out.write(frame(i))
        i += 1


def announcing_sink(input) -> None:
    """Says when frames flow, then reads slowly for ever, so that the ring stays full."""
    announced = False
    for _ in input:
        if not announced:
            print("sink running", flush=True)
            announced = True
        time.sleep(0.001)


# -- Several writers of one stream, reader groups ---------------------------------------------------

def tagged_frame(source: int, i: int) -> np.ndarray:
    """float64 x 16: the source, the sequence number, then values of both."""
    f = np.arange(16, dtype=np.float64) + source * 1e6 + i * 1000.0
    f[0], f[1] = source, i
    return f


def tagged_source(out) -> None:
    """Writes FRAMES frames tagged with source SOURCE, one of several writers of its stream."""
    source = int(os.environ["SOURCE"])
    for i in range(frames()):
        out.write(tagged_frame(source, i))


def forward(input, out) -> None:
    """Passes every frame it gets on (a member of a reader group when the pipeline says so)."""
    count = 0
    for f in input:
        out.write(f)
        count += 1
    # One write(2) of the whole line: several workers print at once to one pipe.
    os.write(1, f"forwarded {count} frames\n".encode())


def merge_sink(input) -> None:
    """Checks that every frame of every source arrived once and intact: EXPECT is
    "SOURCE:FRAMES,..."; with ORDERED=1, each source's frames in the order it wrote them."""
    expect = {int(s): int(n) for s, n in
              (pair.split(":") for pair in os.environ["EXPECT"].split(","))}
    ordered = os.environ.get("ORDERED") == "1"
    seen = {s: np.zeros(n, bool) for s, n in expect.items()}
    for f in input:
        source, i = int(f[0]), int(f[1])
        if source not in seen or not 0 <= i < len(seen[source]) or seen[source][i]:
            raise AssertionError(f"unexpected or repeated frame {i} of source {source}")
        if ordered and not seen[source][:i].all():
            raise AssertionError(f"frame {i} of source {source} came before an earlier one")
        check(f, tagged_frame(source, i), i)
        seen[source][i] = True
    for s, flags in seen.items():
        if not flags.all():
            raise AssertionError(f"{int((~flags).sum())} frames of source {s} never arrived")
    print(f"merge sink verified {sum(expect.values())} frames", flush=True)


# -- Several inputs: a task that stops at the end of one of them ------------------------------------

def counted_source(out, written=None) -> None:
    """Writes FRAMES frames, then sets the event `written` (when bound): every frame is in the
    ring (the stream must have room for them all)."""
    for i in range(frames()):
        out.write(frame(i))
    if written is not None:
        written.set()


def zip_merge(a, b, written=None) -> None:
    """PYTHUSA's merge: one frame of each input per round, until a read raises EndOfStream, which
    escapes. With the event `written` bound, starts once it is set."""
    if written is not None and not written.wait(timeout=60.0):
        raise AssertionError("the event 'written' was never set")
    count = 0
    while True:
        check(a.read(), frame(count), count)
        check(b.read(), frame(count), count)
        count += 1
