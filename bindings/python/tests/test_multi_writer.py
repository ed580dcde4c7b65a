"""Multi-writer streams from Python: writer processes (multiprocessing, spawn) feeding one stream,
a writer killed mid-stream, the errors of too many writers, and backpressure policies. Reader
groups are in test_groups.py."""

from __future__ import annotations

import multiprocessing
from typing import List

import pytest

import multi_writer_roles as roles
import shmline
from conftest import PATIENCE, reap, start

def create(name: str, *, max_writers: int, capacity: int = 64) -> shmline.Stream:
    """A stream of the roles' frames that goes away with its last handle."""
    return shmline.Stream.create(name, shape=roles.SHAPE, dtype=roles.DTYPE, capacity=capacity,
                                 max_writers=max_writers, unlink_on_close=True)


def test_writer_processes_feeding_one_stream_deliver_every_frame_once_in_each_writers_order(name):
    writers, frames = 3, 3000
    with create(name, max_writers=writers) as stream, \
            shmline.Event.create(f"{name}-started", mode="counting",
                                 unlink_on_close=True) as started:
        assert stream.max_writers == writers
        reader = stream.reader()
        processes = [start(roles.write_frames, name, started.name, w, frames)
                     for w in range(writers)]
        try:
            # Every writer attaches before any can finish (the ring holds 64 frames and nobody
            # reads yet), so the stream cannot end before the last one attached.
            for _ in range(writers):
                assert started.wait(timeout=PATIENCE), "a writer process did not start"
            following = [0] * writers
            seq = 0
            while True:
                try:
                    f = reader.read(timeout=PATIENCE)
                except shmline.EndOfStream:
                    break
                assert (reader.info.seq, reader.info.missed) == (seq, 0)
                w, i = int(f[0]), int(f[1])
                assert i == following[w], f"writer {w}'s frames in its order"
                following[w] += 1
                seq += 1
        finally:
            reap(processes)
        assert [p.exitcode for p in processes] == [0] * writers
        assert following == [frames] * writers
        stats = stream.stats()
        assert stats.writer_state == "closed"
        assert (stats.frames_written, stats.frames_skipped, stats.writer_count) == \
            (writers * frames, 0, 0)
        reader.close()


def test_a_writer_killed_mid_stream_does_not_stop_the_others_and_its_claimed_slot_is_counted(name):
    frames = 500
    with create(name, max_writers=3, capacity=16) as stream, \
            shmline.Event.create(f"{name}-holding", unlink_on_close=True) as holding, \
            shmline.Event.create(f"{name}-started", mode="counting",
                                 unlink_on_close=True) as started:
        reader = stream.reader()
        holder = start(roles.write_then_hold, name, holding.name, 7, 5)
        others: List[multiprocessing.process.BaseProcess] = []
        try:
            assert holding.wait(timeout=PATIENCE), "the holder did not reserve its slot"
            for i in range(5):
                assert int(reader.read(timeout=PATIENCE)[1]) == i
            # The holder's claimed number stops publication: the others fill the ring behind it
            # and wait, until the holder's death is noticed.
            others = [start(roles.write_frames, name, started.name, w, frames) for w in (1, 2)]
            for _ in others:
                assert started.wait(timeout=PATIENCE), "a writer process did not start"
            holder.kill()
            holder.join(PATIENCE)
            following = {1: 0, 2: 0}
            missed = 0
            while True:
                try:
                    f = reader.read(timeout=PATIENCE)
                except shmline.EndOfStream:
                    break
                missed += reader.info.missed
                w, i = int(f[0]), int(f[1])
                assert i == following[w], f"writer {w}'s frames in its order"
                following[w] += 1
        finally:
            holder.kill()
            reap([holder, *others])
        assert [p.exitcode for p in others] == [0, 0]
        assert following == {1: frames, 2: frames}
        assert missed == 1 == reader.missed, "the reader is told of the skipped slot"
        stats = stream.stats()
        assert (stats.frames_skipped, stats.writers_reclaimed) == (1, 1)
        assert stats.writer_state == "closed"
        reader.close()


def test_a_second_writer_on_a_single_writer_stream_is_refused_naming_max_writers(name):
    with create(name, max_writers=1) as stream:
        assert stream.max_writers == 1
        with stream.writer():
            with pytest.raises(shmline.WriterExistsError, match="max_writers"):
                stream.writer()


def test_more_writers_than_max_writers_are_refused_until_one_closes(name):
    with create(name, max_writers=2) as stream:
        first, second = stream.writer(), stream.writer()
        assert stream.stats().writer_count == 2
        with pytest.raises(shmline.TooManyWritersError, match="max_writers"):
            stream.writer()
        first.close()
        third = stream.writer()
        assert stream.stats().writer_count == 2
        second.close()
        third.close()


def test_writers_of_one_process_interleave_in_claim_order_and_stats_count_them(name):
    with create(name, max_writers=2) as stream:
        reader = stream.reader()
        a, b = stream.writer(), stream.writer()
        a.write(roles.frame(0, 0))
        b.write(roles.frame(1, 0))
        a.write(roles.frame(0, 1))
        got = [tuple(int(x) for x in reader.read(timeout=PATIENCE)) for _ in range(3)]
        assert got == [(0, 0), (1, 0), (0, 1)]
        stats = stream.stats()
        assert (stats.writer_pid, stats.writer_count, stats.frames_written) == (0, 2, 3)
        a.close()
        b.close()
        with pytest.raises(shmline.EndOfStream):
            reader.read(timeout=PATIENCE)
        reader.close()


def test_an_aborted_reservation_of_a_multi_writer_stream_is_skipped_and_readers_are_told(name):
    with create(name, max_writers=2) as stream:
        reader = stream.reader()
        with stream.writer() as w:
            w.reserve().abort()
            w.write(roles.frame(0, 0))
        reader.read(timeout=PATIENCE)
        assert (reader.info.seq, reader.info.missed) == (1, 1)
        stats = stream.stats()
        assert (stats.frames_skipped, stats.frames_written) == (1, 1)
        reader.close()


@pytest.mark.parametrize("bad", [0, 65])
def test_max_writers_out_of_range_is_refused_saying_the_range(name, bad):
    with pytest.raises(shmline.InvalidArgumentError, match="64"):
        create(name, max_writers=bad)


def test_stream_creation_takes_a_backpressure_policy_and_reports_it(name):
    with shmline.Stream.create(name, max_frame_size=8, capacity=2, backpressure="drop_newest",
                               unlink_on_close=True) as stream:
        assert stream.backpressure == "drop_newest"
        reader = stream.reader()
        with stream.writer() as w:
            for i in range(3):
                w.write(bytes(8), timeout=0)
            assert w.frames_dropped == 1
        assert stream.stats().frames_dropped == 1
        reader.close()
    with pytest.raises(ValueError, match="backpressure"):
        shmline.Stream.create(name, max_frame_size=8, backpressure="drop")
