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
