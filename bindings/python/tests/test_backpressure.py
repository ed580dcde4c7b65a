"""Backpressure policies: what each writer call returns or raises when the ring is full under
"block", "fail", "drop_newest" and "drop_oldest", and what a reader then gets."""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator, List

import numpy as np
import pytest

import shmline

CAPACITY = 4
# A call that must answer at once gets this long before the test calls it a wait: far more than
# a loaded machine needs to return, far less than the timeouts the calls are given.
AT_ONCE = 5.0
# The timeout given to calls that must not wait under "fail" and "drop_newest".
LONG = 30.0


def full_stream(name: str, policy: str) -> shmline.Stream:
    return shmline.Stream.create(name, max_frame_size=8, capacity=CAPACITY, backpressure=policy,
                                 unlink_on_close=True)


@contextlib.contextmanager
def answered_at_once() -> Iterator[None]:
    """Fails the block if it takes longer than `AT_ONCE` s, even if a call in it would wait for
    ever (the alarm interrupts the call between two of its wait slices)."""
    def too_slow(*_: object) -> None:
        raise AssertionError(f"a call that must not wait was still waiting after {AT_ONCE} s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, AT_ONCE)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def frame(i: int) -> bytes:
    return i.to_bytes(8, "little")


def drain(reader: shmline.Reader) -> List[int]:
    """The frames a reader can read now, as the numbers they carry."""
    got = []
    while (f := reader.try_read()) is not None:
        got.append(int.from_bytes(f, "little"))
    return got


def test_write_returns_true_so_the_retry_until_true_idiom_writes_each_frame_once(name):
    with shmline.Stream.create(name, shape=(1,), dtype=np.float32, capacity=8,
                               unlink_on_close=True) as stream, \
            stream.reader() as reader, stream.writer() as writer:
        assert writer.write(np.array([0.0], np.float32)) is True
        tries = 0
        while not writer.write(np.array([42.0], np.float32), timeout=LONG):
            tries += 1
            assert tries < 3, "write() kept returning a false value for a written frame"
        assert writer.write(np.array([1.0], np.float32)) is True
        np.testing.assert_array_equal(reader.read_batch(8).ravel(), [0.0, 42.0, 1.0])


def test_block_waits_for_space_then_times_out_and_the_reader_gets_every_frame(name):
    with full_stream(name, "block") as stream, stream.reader() as reader, \
            stream.writer() as writer:
        assert all(writer.write(frame(i)) is True for i in range(CAPACITY))
        with pytest.raises(shmline.Timeout):
            writer.write(frame(99), timeout=0.2)
        with pytest.raises(shmline.Timeout) as batch:
            writer.write_batch([frame(98)], timeout=0.2)
        assert batch.value.written == 0
        with pytest.raises(shmline.Timeout):
            writer.reserve(timeout=0.2)
        assert writer.try_write(frame(97)) is False
        assert drain(reader) == [0, 1, 2, 3]
        assert writer.write(frame(4), timeout=LONG) is True
        assert drain(reader) == [4]
        assert writer.frames_dropped == 0


def test_fail_raises_full_at_once_from_write_write_batch_and_reserve_whatever_the_timeout(name):
    with full_stream(name, "fail") as stream, stream.reader() as reader, \
            stream.writer() as writer:
        for i in range(CAPACITY - 1):
            assert writer.write(frame(i), timeout=LONG) is True
        # One slot left: a batch of three writes its first frame, then raises Full.
        with pytest.raises(shmline.Full, match="fail") as batch:
            writer.write_batch([frame(3), frame(98), frame(99)], timeout=LONG)
        assert batch.value.written == 1
        for timeout in (LONG, None):
            with answered_at_once():
                with pytest.raises(shmline.Full, match="backpressure policy is 'fail'"):
                    writer.write(frame(99), timeout=timeout)
                with pytest.raises(shmline.Full):
                    writer.write_batch([frame(99)], timeout=timeout)
                with pytest.raises(shmline.Full):
                    writer.reserve(timeout=timeout)
        assert writer.try_write(frame(99)) is False
        assert drain(reader) == [0, 1, 2, 3]
        # With space again, every call works, and the reservation left nothing behind.
        with writer.reserve(timeout=LONG) as slot:
            slot[:8] = frame(4)
        assert writer.write(frame(5)) is True
        assert drain(reader) == [4, 5]
        assert writer.frames_dropped == 0


def test_drop_newest_write_returns_false_for_a_dropped_frame_and_reserve_raises_full(name):
    with full_stream(name, "drop_newest") as stream, stream.reader() as reader, \
            stream.writer() as writer:
        assert all(writer.write(frame(i), timeout=LONG) is True for i in range(CAPACITY))
        with answered_at_once():
            assert writer.write(frame(96), timeout=LONG) is False
            assert writer.write(frame(97)) is False  # timeout None: still never waits
            assert writer.try_write(frame(98)) is False
            writer.write_batch([frame(99), frame(99)], timeout=LONG)
            with pytest.raises(shmline.Full, match="drop_newest"):
                writer.reserve(timeout=LONG)
            with pytest.raises(shmline.Full):
                writer.reserve()
        assert writer.frames_dropped == 5
        assert stream.stats().frames_dropped == 5
        assert drain(reader) == [0, 1, 2, 3]
        assert writer.write(frame(4)) is True
        with writer.reserve() as slot:
            slot[:8] = frame(5)
        assert drain(reader) == [4, 5]
        assert writer.frames_dropped == 5


def test_drop_oldest_never_refuses_a_write_and_the_reader_skips_to_the_newest_frames(name):
    with full_stream(name, "drop_oldest") as stream, stream.reader() as reader, \
            stream.writer() as writer:
        written = CAPACITY * 3
        with answered_at_once():
            for i in range(written - 2):
                assert writer.write(frame(i)) is True
            writer.write_batch([frame(written - 2)])
            with writer.reserve() as slot:
                slot[:8] = frame(written - 1)
        first = int.from_bytes(reader.read(timeout=LONG), "little")
        assert first >= written - CAPACITY
        assert reader.info.missed == first
        assert drain(reader) == list(range(first + 1, written))
        assert writer.frames_dropped == 0
