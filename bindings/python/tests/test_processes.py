"""Behaviour that needs real processes: Ctrl-C during blocking waits, events between processes,
and a reader whose writer dies."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import shmline
from conftest import PATIENCE, finish, run_python

# A child that opens stream or event argv[1], prints "ready", blocks in the call argv[2] names,
# and on Ctrl-C prints "interrupted", then proves its handle still works.
BLOCKED = r"""
import sys, numpy as np, shmline
name, what = sys.argv[1], sys.argv[2]
if what == "event":
    handle = shmline.Event.open(name)
    call = handle.wait
else:
    stream = shmline.Stream.open(name)
    if what == "write":
        handle = stream.writer()
        call = lambda: [handle.write(np.zeros(4, np.float32)) for _ in range(10)]
    else:
        handle = stream.reader(wait="busy_spin" if what == "spin-read" else "adaptive")
        call = handle.acquire if what == "acquire" else handle.read
try:
    print("ready", flush=True)
    call()
    sys.exit("the blocking call returned instead of being interrupted")
except KeyboardInterrupt:
    print("interrupted", flush=True)
if what == "event":
    assert handle.wait(timeout=60)
elif what == "write":
    handle.write(np.zeros(4, np.float32), timeout=60)  # the parent frees a slot
else:
    frame = handle.read(timeout=60)
    assert frame[0] == 42, frame
print("still usable", flush=True)
"""


def blocked_child(name, what):
    child = run_python(BLOCKED, name, what)
    assert child.stdout.readline() == "ready\n", child.stderr.read()
    # Signal once the child sleeps in the library's wait (a spinning child is in it right after
    # "ready"); were the signal earlier, the child would still pass, so this only makes the test
    # exercise what it names.
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        with open(f"/proc/{child.pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state == "S" or what == "spin-read":
            break
        time.sleep(0.005)
    return child


def interrupt(child) -> float:
    start = time.monotonic()
    child.send_signal(signal.SIGINT)
    line = child.stdout.readline()
    elapsed = time.monotonic() - start
    assert line == "interrupted\n", (line, child.stderr.read())
    return elapsed


@pytest.mark.parametrize("what", ["read", "spin-read", "acquire"])
def test_ctrl_c_interrupts_a_blocked_read_promptly_and_the_reader_stays_usable(name, what):
    with shmline.Stream.create(name, shape=(4,), dtype=np.float32, unlink_on_close=True) as s:
        writer = s.writer()
        child = blocked_child(name, what)
        elapsed = interrupt(child)
        assert elapsed < 5.0, f"KeyboardInterrupt took {elapsed:.3f} s"
        writer.write(np.full(4, 42, np.float32))
        finish(child, "still usable")


def test_ctrl_c_interrupts_a_writer_blocked_on_a_full_ring_and_it_stays_usable(name):
    with shmline.Stream.create(name, shape=(4,), dtype=np.float32, capacity=2,
                               unlink_on_close=True) as s:
        reader = s.reader()
        child = blocked_child(name, "write")
        elapsed = interrupt(child)
        assert elapsed < 5.0, f"KeyboardInterrupt took {elapsed:.3f} s"
        reader.read(timeout=PATIENCE)
        finish(child, "still usable")
        assert s.stats().frames_written == 3


def test_ctrl_c_interrupts_an_event_wait(name):
    with shmline.Event.create(name, unlink_on_close=True) as event:
        child = blocked_child(name, "event")
        elapsed = interrupt(child)
        assert elapsed < 5.0, f"KeyboardInterrupt took {elapsed:.3f} s"
        event.set()
        finish(child, "still usable")


EVENTS = r"""
import sys, shmline
go, done, count = shmline.Event.open(sys.argv[1] + "-go"), shmline.Event.open(sys.argv[1] + "-done"), shmline.Event.open(sys.argv[1] + "-count")
assert go.wait(timeout=60)
assert go.is_set()  # a flag stays on after a wait
done.set()
taken = sum(count.wait(timeout=60) for _ in range(5))
assert taken == 5 and not count.wait(timeout=0), "each set releases exactly one wait"
print("events ok", flush=True)
"""


def test_events_signal_across_processes_in_flag_and_counting_mode(name):
    with shmline.Event.create(name + "-go", unlink_on_close=True) as go, \
            shmline.Event.create(name + "-done", unlink_on_close=True) as done, \
            shmline.Event.create(name + "-count", mode="counting", unlink_on_close=True) as count:
        child = run_python(EVENTS, name)
        for _ in range(5):
            count.set()
        go.set()
        assert done.wait(timeout=PATIENCE), child.stderr.read()
        finish(child, "events ok")
        assert count.count == 0


WRITER_THEN_DIE = r"""
import os, sys, numpy as np, shmline
writer = shmline.Stream.open(sys.argv[1]).writer()
for i in range(3):
    writer.write(np.full(2, i, np.int32))
os._exit(0)  # dies without closing the stream
"""


def test_a_reader_whose_writer_died_reads_every_frame_then_gets_writer_dead(name):
    with shmline.Stream.create(name, shape=(2,), dtype=np.int32, unlink_on_close=True) as s:
        reader = s.reader()
        child = run_python(WRITER_THEN_DIE, name)
        child.communicate(timeout=PATIENCE)
        assert [int(reader.read(timeout=PATIENCE)[0]) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(shmline.WriterDead):
            reader.read(timeout=PATIENCE)
        with pytest.raises(shmline.WriterDead):
            list(reader)  # iteration stops quietly only at a clean end of stream
        assert s.stats().writer_state == "dead"


def test_handles_inherited_through_fork_are_not_closed_by_the_child(name):
    with shmline.Stream.create(name, shape=(1,), dtype=np.int8, unlink_on_close=True) as s:
        reader, writer = s.reader(), s.writer()
        pid = os.fork()
        if pid == 0:  # the child drops its copies: their destructors must not end the stream
            del writer, reader
            import gc
            gc.collect()
            os._exit(0)
        os.waitpid(pid, 0)
        writer.write(np.array([1], np.int8))
        assert int(reader.read(timeout=PATIENCE)[0]) == 1
        assert s.stats().writer_state == "active"
