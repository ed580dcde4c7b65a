"""WaitSets and select(): readiness of readers and events, timeouts, a fan-in of two writer
processes (10 and 200 frames) through select(), and no CPU while idle."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import shmline
import waitset_tasks
from conftest import PATIENCE, ROOT, finish, run_python

WRITER = """
import sys, numpy as np, shmline
name, frames = sys.argv[1], int(sys.argv[2])
with shmline.Stream.open(name) as stream, stream.writer() as writer:
    for i in range(frames):
        writer.write(np.full(2, i, dtype=np.int64))
    print("WROTE", frames, flush=True)
    if len(sys.argv) > 3:
        import os
        os._exit(0)  # without closing the stream: the writer dies
"""


def make(name, tag):
    return shmline.Stream.create(f"{name}-{tag}", shape=(2,), dtype=np.int64, capacity=8,
                                 unlink_on_close=True)


def test_a_reader_with_a_frame_is_ready_and_stays_ready_until_read(name):
    with make(name, "a") as a, make(name, "b") as b:
        ra, rb = a.reader(), b.reader()
        wa, wb = a.writer(), b.writer()
        with shmline.WaitSet() as ws:
            ka, kb = ws.add(ra), ws.add(rb)
            assert (ka, kb) == (0, 1) and len(ws) == 2
            assert ws.wait(timeout=0) == []
            wb.write(np.array([7, 7]))
            assert ws.wait(timeout=PATIENCE) == [kb]
            assert ws.wait(timeout=0) == [kb]
            assert list(ws[kb].read(timeout=0)) == [7, 7]
            assert ws.wait(timeout=0) == []
        wa.close()
        wb.close()
        ra.close()
        rb.close()


def test_a_wait_with_nothing_ready_returns_an_empty_list_after_its_timeout(name):
    with make(name, "s") as s, shmline.Event.create(f"{name}-e", unlink_on_close=True) as e:
        r, w = s.reader(), s.writer()
        ws = shmline.WaitSet()
        ws.add(r)
        ws.add(e)
        started = time.monotonic()
        assert ws.wait(timeout=0.2) == []
        assert 0.2 <= time.monotonic() - started < PATIENCE
        ws.close()
        w.close()
        r.close()


def test_events_are_ready_while_set_and_wake_a_sleeping_waitset(name):
    with shmline.Event.create(f"{name}-c", mode="counting", unlink_on_close=True) as counter:
        ws = shmline.WaitSet()
        key = ws.add_event(counter)
        for _ in range(50):
            threading.Timer(0.001, counter.set).start()
            assert ws.wait(timeout=PATIENCE) == [key]
            assert counter.wait(timeout=0)
        assert ws.wait(timeout=0) == []
        ws.close()


def test_bad_uses_raise_clear_exceptions(name):
    ws = shmline.WaitSet()
    with pytest.raises(ValueError, match="empty"):
        ws.wait(timeout=0)
    with pytest.raises(TypeError):
        ws.add("not a reader")
    with make(name, "s") as s:
        r = s.reader()
        key = ws.add(r)
        with pytest.raises(ValueError):
            ws.add(r)
        r.close()
        with pytest.raises(shmline.ClosedError):
            ws.wait(timeout=0)
        ws.remove(key)
        with pytest.raises(KeyError):
            ws.remove(key)
    ws.close()
    with pytest.raises(shmline.ClosedError):
        ws.add(r)


def test_end_of_stream_ends_select_and_a_dead_writer_is_reported(name):
    with make(name, "s") as s:
        r = s.reader()
        w = s.writer()
        w.write(np.array([1, 1]))
        w.close()
        assert [(n, list(f)) for n, f in shmline.select(only=r)] == [("only", [1, 1])]
        r.close()
    with make(name, "t") as t:
        r = t.reader()
        with pytest.raises(shmline.Timeout):
            next(shmline.select(timeout=0.05, quiet=r))
        r.close()


def test_select_raises_writer_dead_after_the_last_frame_of_a_writer_that_died(name):
    with make(name, "d") as s:
        r = s.reader()
        child = run_python(WRITER, s.name, "1", "die")
        finish(child, "WROTE 1")
        frames = []
        with pytest.raises(shmline.WriterDead):
            for _, frame in shmline.select(timeout=PATIENCE, d=r):
                frames.append(list(frame))
        assert frames == [[0, 0]]
        r.close()


def test_select_fans_in_two_writer_processes_of_10_and_200_frames(name):
    with make(name, "a") as a, make(name, "b") as b:
        ra, rb = a.reader(), b.reader()
        children = [run_python(WRITER, a.name, "10"), run_python(WRITER, b.name, "200")]
        seen = {"a": [], "b": []}
        for source, frame in shmline.select(timeout=PATIENCE, a=ra, b=rb):
            assert frame[0] == frame[1]
            seen[source].append(int(frame[0]))
        assert seen == {"a": list(range(10)), "b": list(range(200))}
        for child, frames in zip(children, (10, 200)):
            finish(child, f"WROTE {frames}")
        ra.close()
        rb.close()


def test_an_idle_waitset_uses_under_1_percent_of_a_core(name):
    with make(name, "a") as a, shmline.Event.create(f"{name}-e", unlink_on_close=True) as e:
        r, w = a.reader(), a.writer()
        ws = shmline.WaitSet()
        ws.add(r)
        ws.add(e)
        cpu, wall = time.thread_time(), time.monotonic()
        assert ws.wait(timeout=1.0) == []
        cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
        assert wall >= 1.0 and cpu < 0.01 * wall, f"{cpu} s of CPU over {wall} s"
        ws.close()
        w.close()
        r.close()


def test_the_fan_in_example_sees_every_frame_of_both_writers():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "fan_in.py")],
                          capture_output=True, text=True, timeout=PATIENCE * 2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fan-in: a 10 frames, b 200 frames" in done.stdout


def test_a_task_fans_in_two_source_tasks_of_10_and_200_frames_with_select(name, capfd):
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("a", shape=(2,), dtype=np.int64, capacity=8)
        pipe.add_stream("b", shape=(2,), dtype=np.int64, capacity=8)
        pipe.add_task("ten", fn=waitset_tasks.ten, writes={"out": "a"})
        pipe.add_task("two_hundred", fn=waitset_tasks.two_hundred, writes={"out": "b"})
        pipe.add_task("merge", fn=waitset_tasks.merge, reads={"a": "a", "b": "b"})
        report = pipe.run()
    assert report.outcome == "finished"
    assert "merged a=10 b=200" in capfd.readouterr().out
