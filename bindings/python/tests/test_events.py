"""Events in one process: flag and counting semantics, timeouts."""

from __future__ import annotations

import threading

import pytest

import shmline


def test_a_flag_event_stays_set_for_every_waiter_until_cleared(name):
    with shmline.Event.create(name, unlink_on_close=True) as event:
        assert event.mode == "flag" and not event.is_set()
        assert event.wait(timeout=0) is False
        event.set()
        assert event.is_set() and event.wait() and event.wait(timeout=0) and event.count == 1
        event.clear()
        assert not event.is_set() and event.wait(timeout=0.06) is False


def test_a_counting_event_releases_exactly_one_wait_per_set(name):
    with shmline.Event.create(name, mode="counting", unlink_on_close=True) as event:
        assert event.mode == "counting"
        for _ in range(3):
            event.set()
        assert event.count == 3 and event.is_set()
        assert [event.wait(timeout=0) for _ in range(4)] == [True, True, True, False]
        event.set()
        event.set()
        event.clear()
        assert event.count == 0 and not event.wait(timeout=0)


def test_a_wait_returns_when_another_thread_sets_the_event(name):
    with shmline.Event.create(name, unlink_on_close=True) as event:
        opened = shmline.Event.open(name)
        assert opened.name == name and opened.mode == "flag"
        thread = threading.Thread(target=opened.set)
        thread.start()
        assert event.wait(timeout=60)
        thread.join()
        opened.close()


def test_an_event_without_unlink_on_close_lives_until_unlinked(name):
    shmline.Event.create(name, mode="counting").close()
    with shmline.Event.open(name) as event:
        assert event.mode == "counting"
    shmline.Event.unlink(name)
    with pytest.raises(shmline.NotFoundError):
        shmline.Event.open(name)


def test_a_negative_timeout_is_refused(name):
    with shmline.Event.create(name, unlink_on_close=True) as event:
        with pytest.raises(ValueError, match="timeout"):
            event.wait(timeout=-0.5)
