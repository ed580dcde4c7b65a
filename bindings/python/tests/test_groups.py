"""Reader groups (competing consumers) from Python: member processes sharing a stream's frames
while a plain reader gets them all, a member SIGKILLed holding a frame, and the errors of lossy
members, bad group names and more groups than `max_groups`."""

from __future__ import annotations

import threading
from typing import Dict, List

import pytest

import group_roles
import multi_writer_roles as roles
import shmline
from conftest import PATIENCE, reap, start

def create(name: str, *, capacity: int = 64, **options) -> shmline.Stream:
    """A stream of the roles' frames that goes away with its last handle."""
    return shmline.Stream.create(name, shape=roles.SHAPE, dtype=roles.DTYPE, capacity=capacity,
                                 unlink_on_close=True, **options)


def test_members_of_a_reader_group_share_the_frames_while_a_plain_reader_gets_them_all(name):
    frames = 200
    with create(name, capacity=16) as stream:
        members = [stream.reader(group="workers") for _ in range(2)]
        plain = stream.reader()
        got: List[List[int]] = [[], []]
        with stream.writer() as w:
            for i in range(frames):
                w.write(roles.frame(0, i), timeout=PATIENCE)
                # Drain as we go: the group's backpressure holds the writer back otherwise.
                for k, m in enumerate(members):
                    f = m.try_read()
                    if f is not None:
                        got[k].append(int(f[1]))
                assert int(plain.read(timeout=PATIENCE)[1]) == i
        for k, m in enumerate(members):
            got[k].extend(int(f[1]) for f in m)
        for k in range(2):
            assert got[k] == sorted(got[k]), "each member sees its frames in order"
        assert sorted(got[0] + got[1]) == list(range(frames)), "each frame to exactly one member"
        for r in (plain, *members):
            r.close()


def test_two_member_processes_share_every_frame_exactly_once_and_a_plain_reader_gets_all(name):
    frames = 5000
    with create(name, capacity=16) as stream, \
            create(f"{name}-results", capacity=8192, max_writers=2) as results, \
            shmline.Event.create(f"{name}-joined", mode="counting", unlink_on_close=True) as joined:
        collected = results.reader()
        plain = stream.reader()
        members = [start(group_roles.share, name, results.name, joined.name, m) for m in (0, 1)]
        writing = None
        try:
            for _ in members:
                assert joined.wait(timeout=PATIENCE), "a member process did not join"
            stats = stream.stats()
            assert stats.group_count == 1
            assert sorted(str(r.group) for r in stats.readers) == ["None", "workers", "workers"]

            def write_all() -> None:
                with stream.writer() as w:
                    for i in range(frames):
                        w.write(roles.frame(0, i), timeout=PATIENCE)

            writing = threading.Thread(target=write_all)
            writing.start()
            # The plain reader gets every frame, in order.
            assert [int(f[1]) for f in plain] == list(range(frames))
            writing.join(PATIENCE)
            # The results stream ends when both members closed their writers.
            shares: Dict[int, List[int]] = {0: [], 1: []}
            for f in collected:
                shares[int(f[0])].append(int(f[1]))
        finally:
            reap(members)
            if writing is not None:
                writing.join(PATIENCE)
        assert [p.exitcode for p in members] == [0, 0]
        for m in (0, 1):
            assert shares[m] == sorted(shares[m]), "each member sees its frames in order"
        assert sorted(shares[0] + shares[1]) == list(range(frames)), "each frame once"
        assert stream.stats().frames_redelivered == 0
        plain.close()
        collected.close()


def test_a_member_killed_holding_a_frame_has_it_delivered_to_another_member(name):
    frames = 100
    with create(name, capacity=8) as stream, \
            shmline.Event.create(f"{name}-joined", unlink_on_close=True) as joined, \
            shmline.Event.create(f"{name}-holding", unlink_on_close=True) as holding:
        holder = start(group_roles.hold, name, joined.name, holding.name)
        try:
            assert joined.wait(timeout=PATIENCE), "the holder did not join"
            w = stream.writer()
            # The holder is the group's only member when frame 0 comes: it holds frame 0.
            w.write(roles.frame(0, 0), timeout=PATIENCE)
            assert holding.wait(timeout=PATIENCE), "the holder did not acquire its frame"
            survivor = stream.reader(group="workers")
            holder.kill()
            holder.join(PATIENCE)
            # The frame the holder died with comes to the survivor, then every later frame.
            assert int(survivor.read(timeout=PATIENCE)[1]) == 0
            got = []
            for i in range(1, frames):
                w.write(roles.frame(0, i), timeout=PATIENCE)
                got.append(int(survivor.read(timeout=PATIENCE)[1]))
            assert got == list(range(1, frames))
            stats = stream.stats()
            assert stats.frames_redelivered >= 1
            assert stats.group_count == 1
            assert [r.group for r in stats.readers] == ["workers"], "the dead member is gone"
            w.close()
            survivor.close()
        finally:
            holder.kill()
            reap([holder])


def test_a_lossy_member_and_a_group_on_a_drop_oldest_stream_are_refused(name):
    with create(name) as stream:
        with pytest.raises(shmline.InvalidArgumentError, match="lossy"):
            stream.reader(group="workers", lossy=True)
        stream.reader(lossy=True).close()  # a lossy plain reader is fine
    with create(f"{name}-drop", backpressure="drop_oldest") as stream:
        with pytest.raises(shmline.InvalidArgumentError, match="drop_oldest"):
            stream.reader(group="workers")


def test_a_bad_group_name_is_refused_with_the_rule(name):
    with create(name) as stream:
        with pytest.raises(shmline.InvalidNameError, match="reader group"):
            stream.reader(group="a/b")
        with pytest.raises(shmline.InvalidNameError, match="the limit is 63"):
            stream.reader(group="g" * 64)
        stream.reader(group="g" * 63).close()
        stream.reader(group="").close()  # "" is a plain reader, as NULL is in C
        assert stream.stats().group_count == 0


def test_more_groups_than_max_groups_are_refused_until_one_ends(name):
    with create(name, max_groups=2) as stream:
        assert stream.max_groups == 2
        g0, g1 = stream.reader(group="g0"), stream.reader(group="g1")
        with pytest.raises(shmline.TooManyReadersError, match="max_groups"):
            stream.reader(group="g2")
        # Another member of an existing group still fits.
        stream.reader(group="g1").close()
        g0.close()  # its last member leaves: the group ends and frees its record
        g2 = stream.reader(group="g2")
        assert stream.stats().group_count == 2
        g1.close()
        g2.close()
    with create(name, max_groups=0) as stream:
        assert stream.max_groups == 0
        with pytest.raises(shmline.TooManyReadersError, match="max_groups"):
            stream.reader(group="g0")
    with pytest.raises(shmline.InvalidArgumentError, match="max groups 65"):
        create(name, max_groups=65)
    assert create(name).max_groups == 4  # the default
