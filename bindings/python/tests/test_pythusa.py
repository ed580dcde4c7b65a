"""`shmline.pythusa`: PYTHUSA 0.1.6's API with PYTHUSA's semantics (and shmline's safety), and
PYTHUSA-style programs run unchanged but for the import."""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import shmline
import shmline.pythusa as pythusa

import pythusa_tasks as tasks
from conftest import PATIENCE, ROOT, leftovers

EXAMPLES = ROOT / "examples" / "pythusa"
CTX = mp.get_context("spawn")


@pytest.fixture(autouse=True)
def no_event_left():
    """Every test removes the events and rings it made (named pythusa-PID-N...)."""
    yield
    import gc

    gc.collect()
    left = leftovers(f"pythusa-{os.getpid()}-")
    for n in left:
        os.unlink(f"/dev/shm/{n}")
    assert not left, f"the test left segments in /dev/shm: {left}"


def get(queue, patience: float = PATIENCE):
    return queue.get(timeout=patience)


def test_the_quick_start_prints_the_doubled_frame():
    out = subprocess.run([sys.executable, str(EXAMPLES / "quick_start.py")], capture_output=True,
                         text=True, timeout=PATIENCE * 2)
    assert out.returncode == 0, out.stderr
    assert "[ 0.  2.  4.  6.  8. 10. 12. 14.]" in out.stdout
    assert not leftovers(".demo.")


@pytest.mark.parametrize("program, expect", [
    ("basic_workers.py", "basic_workers: 64 values, checksum 2016"),
    ("engine_dsp_pipeline.py", "engine_dsp_pipeline: 48 blocks, dominant 96 Hz"),
    ("fir128_scaling_pipeline.py",
     "fir128_scaling_pipeline: 3 workers, 48 frames, max error 0\n"),
])
def test_an_example_program_runs_and_prints_its_result(program, expect):
    path = EXAMPLES / program
    if not path.exists():
        pytest.skip(f"{program} is not written yet")
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=PATIENCE * 3)
    assert out.returncode == 0, out.stdout + out.stderr
    assert expect in out.stdout, out.stdout


def test_frames_go_through_in_order_and_results_come_back_through_a_partial_queue(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64, frames=3)
        pipe.add_task("source", fn=tasks.count_source, writes={"out": "numbers"})
        pipe.add_task("sink", fn=functools.partial(tasks.collect, results),
                      reads={"inp": "numbers"})
        pipe.run()
        assert get(results) == list(range(10))


def test_reader_bindings_return_none_and_false_when_empty_and_look_holds_the_frame(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64)
        pipe.add_event("go")
        pipe.add_task("writer", fn=tasks.gated_source, writes={"out": "numbers"},
                      events={"go": "go"})
        pipe.add_task("probe", fn=functools.partial(tasks.bindings_report, results),
                      reads={"inp": "numbers"}, events={"go": "go"})
        pipe.run()
        report = get(results)
    assert report["empty_read"] is None and report["empty_look"] is None
    assert report["empty_read_into"] is False
    assert report["blocking"] is True
    assert report["first"] == 0 and report["second"] == 1
    assert report["looked"] == 2 and report["look_again_same"] and report["readonly"]
    assert report["after_increment"] == 3
    assert report["non_blocking"]


def test_write_returns_false_and_look_none_when_the_ring_is_full(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64, frames=5)  # 8 slots
        pipe.add_event("go")
        pipe.add_task("writer", fn=functools.partial(tasks.full_writer, results),
                      writes={"out": "numbers"}, events={"go": "go"})
        pipe.add_task("reader", fn=functools.partial(tasks.slow_reader, results),
                      reads={"inp": "numbers"}, events={"go": "go"})
        pipe.run()
        assert get(results) == {"written": 8, "look_full": True}
        assert get(results) == list(range(8))


def test_writer_look_and_increment_publish_zero_copy_frames(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64, frames=2)
        pipe.add_task("source", fn=tasks.zero_copy_writer, writes={"out": "numbers"})
        pipe.add_task("sink", fn=functools.partial(tasks.collect, results, n=5),
                      reads={"inp": "numbers"})
        pipe.run()
        assert get(results) == [0, 10, 20, 30, 40]


def test_add_task_works_as_a_decorator_and_passes_bindings_through_kwargs(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64)
        decorated = pipe.add_task("kw", writes={"out": "numbers"})(
            functools.partial(tasks.kwargs_task, results))
        assert isinstance(decorated, functools.partial)
        pipe.add_task.terminator("end", reads={"inp": "numbers"})
        pipe.run()
        assert get(results) == ["out"]


def test_a_toggleable_task_runs_once_per_signal(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_event("trigger")
        pipe.add_event("done")
        pipe.add_task("pulse", fn=functools.partial(tasks.pulse, results),
                      events={"trigger": "trigger", "done": "done"})
        pipe.add_task.toggleable("toggled", activate_on="trigger",
                                 fn=functools.partial(tasks.toggled, results),
                                 events={"trigger": "trigger", "done": "done"})
        pipe.start()
        got = [get(results) for _ in range(4)]
        assert sorted(got) == ["pulsed", "ran", "ran", "ran"]
        time.sleep(0.2)
        assert results.empty()  # no fourth run without a fourth signal
        pipe.stop()
        pipe.join(PATIENCE)


def test_a_switchable_task_runs_again_and_again_once_its_event_is_open(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("unused", shape=(4,), dtype=np.int64)
        pipe.add_event("on", initial_state=True)
        pipe.add_task.switchable("switched", activate_on="on",
                                 fn=functools.partial(tasks.switched, results),
                                 events={"on": "on"}, writes={"out": "unused"})
        pipe.add_task.terminator("end", reads={"inp": "unused"})
        pipe.start()
        assert [get(results) for _ in range(3)] == ["on"] * 3
        pipe.stop()
        pipe.join(PATIENCE)


def test_a_failing_task_fails_the_run_and_is_named(name):
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64)
        pipe.add_task("source", fn=tasks.count_source, writes={"out": "numbers"})
        pipe.add_task("bad", fn=tasks.failing, reads={"inp": "numbers"})
        with pytest.raises(shmline.PipelineFailedError, match="bad"):
            pipe.run()


def test_stop_ends_tasks_that_loop_for_ever_and_join_returns_on_timeout(name):
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64)
        pipe.add_task("source", fn=tasks.count_source, writes={"out": "numbers"})
        pipe.add_task("loop", fn=tasks.forever, reads={"inp": "numbers"})
        pipe.start()
        started = time.monotonic()
        pipe.join(0.2)  # returns quietly, as PYTHUSA's
        assert time.monotonic() - started < PATIENCE
        pipe.stop()
        pipe.join(PATIENCE)


# PYTHUSA's polling fan-in, and the same merge given to `shmline.select` (no polling).
@pytest.mark.parametrize("merge", ["polling", "select"])
def test_fan_in_sees_every_frame_of_a_short_and_a_long_source(name, merge):
    results = CTX.Queue()
    merge_fn = (functools.partial(tasks.merge, results, expect=210) if merge == "polling"
                else functools.partial(tasks.merge_select, results))
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("a", shape=(4,), dtype=np.int64, frames=4)
        pipe.add_stream("b", shape=(4,), dtype=np.int64, frames=4)
        pipe.add_task("short", fn=functools.partial(tasks.count_source, n=10),
                      writes={"out": "a"})
        pipe.add_task("long", fn=functools.partial(tasks.count_source, n=200),
                      writes={"out": "b"})
        pipe.add_task("merge", fn=merge_fn, reads={"a": "a", "b": "b"})
        pipe.run()
        assert get(results) == sorted(list(range(10)) + list(range(200)))


def test_a_partial_holding_a_numpy_array_reaches_its_task(name):
    results = CTX.Queue()
    weights = np.array([1, 2, 3, 4], np.int64)
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("raw", shape=(4,), dtype=np.int64)
        pipe.add_stream("scaled", shape=(4,), dtype=np.int64)
        pipe.add_task("source", fn=functools.partial(tasks.count_source, n=3),
                      writes={"out": "raw"})
        pipe.add_task("scale", fn=functools.partial(tasks.scale_by, weights=weights, n=3),
                      reads={"inp": "raw"}, writes={"out": "scaled"})
        pipe.add_task("sink", fn=functools.partial(tasks.collect, results, n=3),
                      reads={"inp": "scaled"})
        pipe.run()
        assert get(results) == [0, 1, 2]


def test_compile_refuses_what_pythusa_refuses(name):
    pipe = pythusa.Pipeline(name)
    pipe.add_stream("s", shape=(4,), dtype=np.int64)
    pipe.add_task("w1", fn=tasks.count_source, writes={"out": "s"})
    pipe.add_task("w2", fn=tasks.count_source, writes={"out": "s"})
    with pytest.raises(ValueError, match="multiple writers"):
        pipe.compile()
    pipe.close()

    pipe = pythusa.Pipeline(name)
    pipe.add_stream("s", shape=(4,), dtype=np.int64)
    pipe.add_task("w", fn=tasks.count_source, writes={"out": "s"})
    with pytest.raises(ValueError, match="does not have any readers"):
        pipe.compile()
    pipe.close()

    pipe = pythusa.Pipeline(name)
    pipe.add_stream("s", shape=(4,), dtype=np.int64)
    pipe.add_task("w", fn=tasks.count_source, writes={"wrong": "s"})
    pipe.add_task.terminator("t", reads={"inp": "s"})
    with pytest.raises(ValueError, match="does not accept"):
        pipe.compile()
    pipe.close()

    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("s", shape=(4,), dtype=np.int64)
        with pytest.raises(ValueError, match="already registered"):
            pipe.add_stream("s", shape=(4,), dtype=np.int64)
        with pytest.raises(ValueError, match="frames must be >= 1"):
            pipe.add_stream("z", shape=(4,), dtype=np.int64, frames=0)


def test_a_cycle_compiles_only_through_an_excused_edge(name):
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("ab", shape=(4,), dtype=np.int64)
        pipe.add_stream("ba", shape=(4,), dtype=np.int64)
        pipe.add_task("a", fn=tasks.passthrough, reads={"inp": "ba"}, writes={"out": "ab"})
        pipe.add_task("b", fn=tasks.passthrough, reads={"inp": "ab"}, writes={"out": "ba"})
        with pytest.raises(ValueError, match="cycle"):
            pipe.compile()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("ab", shape=(4,), dtype=np.int64)
        pipe.add_stream("ba", shape=(4,), dtype=np.int64)
        pipe.add_task("a", fn=tasks.passthrough, reads={"inp": "ba"}, writes={"out": "ab"})
        pipe.add_task("b", fn=tasks.passthrough, reads={"inp": "ab"}, writes={"out": "ba"})
        pipe.add_excused_edge("ba", "a")
        pipe.compile()
        with pytest.raises(RuntimeError, match="already been compiled"):
            pipe.compile()


def test_frames_are_rounded_up_to_a_power_of_two():
    assert [pythusa._pipeline.frames_to_capacity(n) for n in (1, 2, 3, 32, 33, 1000)] == \
        [1, 2, 4, 32, 64, 1024]


def test_save_and_reconstruct_keep_the_declaration(name, tmp_path):
    pipe = pythusa.Pipeline(name)
    pipe.add_stream("numbers", shape=(4,), dtype=np.int64, frames=7, description="n")
    pipe.add_event("go", initial_state=True)
    pipe.add_task("source", fn=tasks.count_source, writes={"out": "numbers"})
    pipe.add_task.toggleable("sink", activate_on="go", fn=tasks.forever,
                             reads={"inp": "numbers"}, events={"go": "go"})
    path = pipe.save(tmp_path / "p.toml")
    pipe.close()
    text = path.read_text()
    assert "format_version = 1" in text and "frames = 7" in text
    again = pythusa.Pipeline.reconstruct(path)
    assert again.name == name
    assert again._streams["numbers"]["frames"] == 7
    assert again._events["go"]["initial_state"] is True
    assert again._tasks["sink"]["control_mode"] == "toggleable"
    assert again._tasks["source"]["fn"] is tasks.count_source
    assert again.save(tmp_path / "q.toml").read_text() == text
    again.close()


def test_save_refuses_a_function_that_cannot_be_imported(name, tmp_path):
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64)
        pipe.add_task("source", fn=functools.partial(tasks.count_source, n=2),
                      writes={"out": "numbers"})
        pipe.add_task.terminator("end", reads={"inp": "numbers"})
        with pytest.raises(ValueError, match="importable"):
            pipe.save(tmp_path / "p.toml")


def test_the_monitor_reports_process_metrics_and_warns_of_a_stalled_reader(name, caplog):
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64, frames=4)
        pipe.add_event("release")
        pipe.add_task("source", fn=functools.partial(tasks.count_source, n=4),
                      writes={"out": "numbers"})
        pipe.add_task("stalled", fn=tasks.stalled_sink, reads={"inp": "numbers"},
                      events={"release": "release"})
        with caplog.at_level(logging.WARNING, logger="shmline.pythusa"):
            pipe.start()
            pipe.start_monitor(0.01)
            deadline = time.monotonic() + PATIENCE
            while "may be stalled" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "Ring 'numbers' has been at 100% pressure" in caplog.text
        m = pipe.metrics("stalled")
        assert isinstance(m, pythusa.ProcessMetrics)
        assert m.pid > 0 and m.memory_rss_mb > 0 and m.ring_pressure == {"numbers": 100}
        assert isinstance(m.nice, int) and m.cpu_percent >= 0
        assert set(pipe.metrics()) == {"source", "stalled"}
        pipe._live_events["release"].signal()
        pipe.join(PATIENCE)


def test_worker_event_counts_activations_across_processes():
    event = pythusa.WorkerEvent("e")
    try:
        assert not event.is_open() and event.pending == 0
        assert event.wait(0.01) is False
        event.signal()
        event.signal()
        assert event.is_open() and event.pending == 2
        child = CTX.Process(target=_reset_once, args=(event,))
        child.start()
        child.join(PATIENCE)
        assert child.exitcode == 0
        assert event.pending == 1 and event.is_open() and event.wait(0)
        event.reset()
        assert not event.is_open() and event.pending == 0
        event.reset()  # nothing pending: stays closed
        assert event.pending == 0
    finally:
        event.close()


def _reset_once(event):
    assert event.wait(PATIENCE)
    event.reset()


def test_worker_event_initial_state_opens_it():
    event = pythusa.WorkerEvent("e", initial_state=True)
    try:
        assert event.is_open() and event.pending == 1 and "OPEN" in repr(event)
    finally:
        event.close()


def test_a_non_blocking_reader_is_lapped_and_counts_what_it_missed(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64, frames=4)
        pipe.add_event("ready")
        pipe.add_event("written")
        pipe.add_task("writer", fn=tasks.lapping_writer, writes={"out": "numbers"},
                      events={"ready": "ready", "written": "written"})
        pipe.add_task("reader", fn=functools.partial(tasks.lapped_reader, results),
                      reads={"inp": "numbers"}, events={"ready": "ready", "written": "written"})
        pipe.run()
        report = get(results)
    assert report["blocking"] is False
    assert report["seen"] and report["seen"][-1] == 63
    assert report["seen"] == sorted(report["seen"])
    assert report["missed"] > 0 and len(report["seen"]) + report["missed"] == 64


def test_raw_ring_calls_reach_the_same_frames_through_get_reader_and_get_writer(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64)
        pipe.add_task("writer", fn=tasks.raw_writer, writes={"out": "numbers"})
        pipe.add_task("reader", fn=functools.partial(tasks.raw_reader, results),
                      reads={"inp": "numbers"})
        pipe.run()
        assert get(results) == {"got": [[0] * 4, [1] * 4, [2] * 4], "active": True}


def test_the_manager_runs_spec_tasks_with_rings_events_and_metrics():
    results = CTX.Queue()
    with pythusa.Manager() as manager:
        manager.create_ring(pythusa.RingSpec(name="bytes", size=64, num_readers=1))
        manager.create_event(pythusa.EventSpec("done"))
        manager.create_task(pythusa.TaskSpec(
            name="consumer", fn=tasks.manager_consumer, reading_rings=("bytes",),
            events=("done",), args=(results, 5)))
        manager.create_task(pythusa.TaskSpec(
            name="producer", fn=tasks.manager_producer, writing_rings=("bytes",),
            events=("done",), kwargs={"count": 5}))
        with pytest.raises(ValueError, match="already registered"):
            manager.create_task(pythusa.TaskSpec(name="producer", fn=tasks.manager_producer))
        manager.start_monitor(0.01)
        manager.start("consumer")
        manager.start("producer")
        assert get(results) == 60
        manager.join_all(PATIENCE)
        prefix = manager._prefix
    assert not leftovers(prefix)


def test_closing_a_manager_or_pipeline_stops_its_monitor_before_removing_the_segments(name):
    # A monitor sample is a library call that releases the GIL: a ring closed under it would
    # stay in /dev/shm until the call ended, after close() had returned.
    manager = pythusa.Manager()
    manager.create_ring(pythusa.RingSpec(name="bytes", size=64, num_readers=1))
    manager.start_monitor(0.001)
    monitor = manager._monitor
    assert monitor is not None and monitor.is_alive()
    prefix = manager._prefix
    manager.close()
    assert not monitor.is_alive()
    assert not leftovers(prefix)

    pipe = pythusa.Pipeline(name)
    pipe.add_stream("s", shape=(4,), dtype=np.int64)
    pipe.start_monitor(0.001)
    monitor = pipe._monitor
    assert monitor is not None and monitor.is_alive()
    pipe.close()
    assert not monitor.is_alive()


def test_a_script_that_runs_its_pipeline_unguarded_fails_saying_why(name, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import numpy as np\n"
        "import shmline.pythusa as pythusa\n"
        "def source(out):\n"
        "    out.write(np.zeros(4, np.int64))\n"
        f"pipe = pythusa.Pipeline({name!r})\n"
        "pipe.add_stream('s', shape=(4,), dtype=np.int64)\n"
        "pipe.add_task('source', fn=source, writes={'out': 's'})\n"
        "pipe.add_task.terminator('end', reads={'inp': 's'})\n"
        "try:\n"
        "    pipe.run()\n"
        "finally:\n"
        "    pipe.close()\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=PATIENCE * 2)
    assert out.returncode != 0
    assert "PipelineFailedError" in out.stderr
    assert 'guarded by `if __name__ == "__main__":`' in out.stderr


def test_pythusa_raw_view_idioms_work_on_the_bindings_raw_rings(name):
    results = CTX.Queue()
    with pythusa.Pipeline(name) as pipe:
        pipe.add_stream("frames", shape=(8,), dtype=np.float32, frames=4)
        pipe.add_task("writer", fn=tasks.raw_view_writer, writes={"frames": "frames"})
        pipe.add_task("reader", fn=functools.partial(tasks.raw_view_reader, results),
                      reads={"frames": "frames"})
        pipe.run()
        report = get(results)
    assert report["got"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert report["active"] == 1 and report["size"] == 4 * 32
    assert 0 <= report["pressure"] <= 100


def test_native_pipeline_function_tasks_may_be_partials_and_bound_methods(name):
    results = CTX.Queue()
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("numbers", shape=(4,), dtype=np.int64)
        pipe.add_stream("scaled", shape=(4,), dtype=np.int64)
        pipe.add_task("source", fn=functools.partial(tasks.count_source, n=5),
                      writes={"out": "numbers"})
        pipe.add_task("scale", fn=tasks.Scaler(3).run, reads={"samples": "numbers"},
                      writes={"scaled": "scaled"})
        pipe.add_task("sink", fn=functools.partial(tasks.native_sink, results),
                      reads={"samples": "scaled"})
        with pytest.raises(ValueError, match="pickle"):
            pipe.add_task("bad", fn=functools.partial(tasks.native_sink, lambda: 0),
                          reads={"samples": "numbers"})
        pipe.run()
        assert get(results) == [0, 3, 6, 9, 12]
