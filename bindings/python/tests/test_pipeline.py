"""Pipelines from Python: PYTHUSA's quick start, Python function tasks across processes, tasks
in C and Rust mixed with Python ones, failures and stops reported by name, Ctrl-C, bad
declarations, manifests and metrics. Task functions live in pipeline_tasks.py; every sink checks
every frame and fails its task (and so the run) at the first wrong or missing one."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest

import pipeline_tasks
import shmline
from conftest import HERE, PATIENCE, ROOT, leftovers

# PYTHUSA's README quick start (../shared/seeds/), verbatim but for the import: the example
# program of the compatibility layer, run here on the native `shmline` module instead.
QUICK_START = (ROOT / "examples" / "pythusa" / "quick_start.py").read_text().replace(
    "import shmline.pythusa as pythusa", "import shmline as pythusa")

# Runs a script as `python script.py` would (as __main__, from its file), except that every
# pipeline's name gets a suffix: the quick start's "demo" is a machine-wide name, and a test
# must not collide with another run of it.
RUN_AS_MAIN_WITH_SUFFIX = r"""
import runpy, sys
import shmline
script, suffix = sys.argv[1], sys.argv[2]
init = shmline.Pipeline.__init__
shmline.Pipeline.__init__ = lambda self, name, **kw: init(self, name + suffix, **kw)
sys.argv = [script]
sys.path.insert(0, __import__("os").path.dirname(script))
runpy.run_path(script, run_name="__main__")
"""


def test_pythusas_quick_start_runs_unchanged_but_for_the_import(name, tmp_path):
    script = tmp_path / "quick_start.py"
    assert "import shmline as pythusa" in QUICK_START
    script.write_text(QUICK_START)
    done = subprocess.run([sys.executable, "-c", RUN_AS_MAIN_WITH_SUFFIX, str(script),
                           f"-{name}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=PATIENCE * 2)
    assert done.returncode == 0, f"stdout: {done.stdout}\nstderr: {done.stderr}"
    # The sink printed the doubled frame, and the pipeline ended by itself: the source returned
    # (its stream ended), the scale stage and the sink each returned after their frame.
    assert done.stdout.strip() == str(np.arange(8, dtype=np.float32) * 2), done.stderr


def test_python_function_tasks_pass_every_frame_through_three_processes(name, capfd):
    count = 10_000
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("samples", shape=(16,), dtype=np.float64, capacity=16)
        pipe.add_stream("doubled", shape=(16,), dtype=np.float64, capacity=16)
        pipe.add_task("source", fn=pipeline_tasks.source, writes={"out": "samples"},
                      env={"FRAMES": count})
        pipe.add_task("scale", fn=pipeline_tasks.scale, reads={"samples": "samples"},
                      writes={"doubled": "doubled"})
        pipe.add_task("sink", fn=pipeline_tasks.sink, reads={"doubled": "doubled"},
                      env={"FRAMES": count})
        report = pipe.run()
    assert report.outcome == "finished"
    assert report.frames == 2 * count
    assert [(t.name, t.exit_code) for t in report.tasks.values()] == \
        [("source", 0), ("scale", 0), ("sink", 0)]
    assert f"sink verified {count} frames" in capfd.readouterr().out


def mixed(name: str, stages, kind: str, count: int) -> shmline.RunReport:
    """Runs source -> scale -> sink where each stage is ("python", fn) or ("program", argv)."""
    dtype, shape, params = {
        "c": (np.uint8, (64,), [({}, {"out": "a"}), ({"input": "a"}, {"out": "b"}),
                                ({"input": "b"}, {})]),
        "rust": (np.float32, (8,), [({}, {"samples": "a"}), ({"samples": "a"},
                                                               {"doubled": "b"}),
                                    ({"doubled": "b"}, {})]),
    }[kind]
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("a", dtype=dtype, shape=shape, capacity=8)
        pipe.add_stream("b", dtype=dtype, shape=shape, capacity=8)
        for role, (how, what), (reads, writes) in zip(["source", "scale", "sink"], stages,
                                                      params):
            task = {"fn": what} if how == "python" else {"cmd": what}
            pipe.add_task(role, reads=reads, writes=writes, env={"FRAMES": count}, **task)
        return pipe.run()


@pytest.mark.parametrize("kind", ["c", "rust"])
def test_a_python_function_between_two_foreign_tasks_passes_every_frame_on(
        name, kind, c_tasks, rust_task, capfd):
    count = 3000
    if kind == "c":
        stages = [("program", [str(c_tasks / "task_source")]),
                  ("python", pipeline_tasks.c_scale),
                  ("program", [str(c_tasks / "task_sink")])]
        expect = f"sink verified {count} frames"  # the C sink checked each doubled frame
    else:
        stages = [("program", [str(rust_task), "source"]),
                  ("python", pipeline_tasks.rust_scale),
                  ("program", [str(rust_task), "sink"])]
        expect = f"sink: {count} frames, all correct"  # the Rust sink checked each one
    report = mixed(name, stages, kind, count)
    assert report.outcome == "finished" and report.frames == 2 * count
    assert expect in capfd.readouterr().out


@pytest.mark.parametrize("kind", ["c", "rust"])
def test_a_foreign_task_between_two_python_functions_passes_every_frame_on(
        name, kind, c_tasks, rust_task, capfd):
    count = 3000
    if kind == "c":
        stages = [("python", pipeline_tasks.c_source),
                  ("program", [str(c_tasks / "task_scale")]),
                  ("python", pipeline_tasks.c_sink)]
    else:
        stages = [("python", pipeline_tasks.rust_source),
                  ("program", [str(rust_task), "scale"]),
                  ("python", pipeline_tasks.rust_sink)]
    report = mixed(name, stages, kind, count)
    assert report.outcome == "finished" and report.frames == 2 * count
    assert f"python sink verified {count} frames" in capfd.readouterr().out


def test_function_tasks_get_flag_and_counting_events_by_parameter_name(name, capfd):
    with shmline.Pipeline(name) as pipe:
        pipe.add_event("go")
        pipe.add_event("ticks", mode="counting")
        pipe.add_task("waiter", fn=pipeline_tasks.waiter, events={"go": "go", "ticks": "ticks"},
                      env={"FRAMES": 50})
        pipe.add_task("signaller", fn=pipeline_tasks.signaller,
                      events={"go": "go", "ticks": "ticks"}, env={"FRAMES": 50})
        assert pipe.run().outcome == "finished"
    assert "waiter took 50 ticks" in capfd.readouterr().out


def test_a_task_that_raises_fails_the_run_naming_it_with_its_traceback_on_stderr(name, capfd):
    with shmline.Pipeline(name) as pipe:
        pipe.add_task("checker", fn=pipeline_tasks.fail_loudly)
        pipe.add_task("bystander", fn=pipeline_tasks.idle)
        with pytest.raises(shmline.PipelineFailedError) as failed:
            pipe.run()
    message = str(failed.value)
    assert "checker" in message and "exit status 1" in message, message
    report = failed.value.report
    assert report.outcome == "failed"
    assert report.tasks["checker"].exit_code == 1 and not report.tasks["checker"].stopped
    assert report.tasks["bystander"].stopped  # stopped by the runner, not a failure of its own
    err = capfd.readouterr().err
    assert "Traceback" in err and "ValueError: boom: this task found a bad frame" in err, err


def wait_for(what: str, condition):
    deadline = time.monotonic() + PATIENCE
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_a_task_killed_by_sigkill_is_reported_with_its_name_and_signal(name):
    with shmline.Pipeline(name) as pipe:
        pipe.add_task("victim", fn=pipeline_tasks.idle)
        pipe.add_task("bystander", fn=pipeline_tasks.idle)
        pipe.start()
        pid = wait_for("the victim's process", lambda: pipe.metrics().tasks["victim"].pid)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(shmline.PipelineFailedError) as failed:
            pipe.wait(timeout=PATIENCE)
    message = str(failed.value)
    assert "victim" in message and "SIGKILL" in message, message
    tasks = failed.value.report.tasks
    assert tasks["victim"].signal == signal.SIGKILL and tasks["victim"].pid == pid
    assert tasks["bystander"].stopped


# A program that runs a pipeline which never ends by itself, says when frames flow, and reports
# how run() ended when interrupted.
INTERRUPTED = r"""
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
sys.path.insert(0, sys.argv[2])
import numpy as np, shmline, pipeline_tasks
with shmline.Pipeline(sys.argv[1]) as pipe:
    pipe.add_stream("s", shape=(16,), dtype=np.float64, capacity=8)
    pipe.add_task("source", fn=pipeline_tasks.endless_source, writes={"out": "s"})
    pipe.add_task("sink", fn=pipeline_tasks.announcing_sink, reads={"input": "s"})
    try:
        pipe.run()
    except (KeyboardInterrupt, shmline.PipelineFailedError) as e:
        report = pipe.wait()
        print(f"{type(e).__name__} {e}:", report.outcome,
              sorted((t.name, t.stopped) for t in report.tasks.values()), flush=True)
"""


@pytest.mark.parametrize("signum, raised", [
    (signal.SIGINT, "KeyboardInterrupt :"),
    (signal.SIGTERM, "PipelineFailedError pipeline '{name}' was stopped by SIGTERM:"),
])
def test_ctrl_c_or_sigterm_during_run_stops_every_task_and_removes_every_segment(
        name, signum, raised):
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED, name, str(HERE)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], PATIENCE)
        assert ready, "the pipeline never ran"
        line = child.stdout.readline()
        assert line == "sink running\n", (line, child.stderr.read())
        assert leftovers(name), "the running pipeline has segments"
        child.send_signal(signum)
        out, err = child.communicate(timeout=PATIENCE)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    expected = raised.format(name=name) + " stopped [('sink', True), ('source', True)]"
    assert expected in out, (out, err)
    assert not leftovers(name)


def test_a_function_a_worker_cannot_import_is_refused_at_add_task_saying_what_to_fix(name):
    def nested(out) -> None:
        pass

    cases = [
        (lambda out: None, "is a lambda"),
        (nested, "inside another function"),
    ]
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("s", shape=(16,), dtype=np.float64)
        for fn, why in cases:
            with pytest.raises(ValueError, match=why) as refused:
                pipe.add_task("source", fn=fn, writes={"out": "s"})
            assert "top level of a module" in str(refused.value)
        assert pipe.tasks == []


def test_parameters_that_do_not_match_the_functions_are_refused_at_add_task(name):
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("s", shape=(16,), dtype=np.float64)
        with pytest.raises(ValueError, match="has no parameter named 'output'"):
            pipe.add_task("source", fn=pipeline_tasks.source, writes={"output": "s"})
        with pytest.raises(ValueError, match="'samples' of scale.* is bound to nothing"):
            pipe.add_task("scale", fn=pipeline_tasks.scale, writes={"doubled": "s"})


def test_a_worker_that_cannot_import_its_function_fails_the_run_saying_why(name, capfd):
    module = types.ModuleType("made_at_run_time")
    exec("def task():\n    pass\n", module.__dict__)
    sys.modules["made_at_run_time"] = module
    try:
        with shmline.Pipeline(name) as pipe:
            pipe.add_task("ghost", fn=module.task)
            with pytest.raises(shmline.PipelineFailedError, match="ghost.*exit status 2"):
                pipe.run()
    finally:
        del sys.modules["made_at_run_time"]
    err = capfd.readouterr().err
    assert "cannot import 'made_at_run_time'" in err and "must be importable" in err, err


def test_unknown_stream_and_event_names_are_refused_naming_the_declared_ones(name):
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("samples", shape=(16,), dtype=np.float64)
        pipe.add_event("go")
        with pytest.raises(ValueError, match=r"stream 'sampels'.*did you mean 'samples'.*"
                                             r"add_stream\('sampels'"):
            pipe.add_task("sink", fn=pipeline_tasks.sink, reads={"doubled": "sampels"})
        with pytest.raises(ValueError, match=r"'go' is an event: bind it in events"):
            pipe.add_task("sink", fn=pipeline_tasks.sink, reads={"doubled": "go"})
        with pytest.raises(ValueError, match=r"event 'stop'.*Declared events: 'go'"):
            pipe.add_task("idle", fn=pipeline_tasks.idle, events={"stop": "stop"})
        with pytest.raises(shmline.InvalidArgumentError, match="no task writes this stream"):
            # Declared in order but incomplete: the library's validation lists the problem.
            pipe.add_task("sink", fn=pipeline_tasks.sink, reads={"doubled": "samples"})
            pipe.validate()


def test_a_saved_manifest_loads_back_the_same_and_runs_with_a_python_program_task(
        name, tmp_path, capfd):
    count = 2000
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("samples", shape=(16,), dtype=np.float64, capacity=8, checksum=True)
        pipe.add_stream("doubled", shape=(16,), dtype=np.float64, frames=16)
        pipe.add_event("unused", mode="counting")
        pipe.add_task("source", fn=pipeline_tasks.source, writes={"out": "samples"},
                      env={"FRAMES": count})
        pipe.add_task("scale", cmd=[sys.executable, str(HERE / "peers" / "py_task.py")],
                      reads={"samples": "samples"}, writes={"doubled": "doubled"})
        pipe.add_task("sink", fn=pipeline_tasks.sink, reads={"doubled": "doubled"},
                      env={"FRAMES": count})
        saved = pipe.save(tmp_path / "pipeline.toml")
    text = saved.read_text()
    assert f'name = "{name}"' in text and "shmline._worker" in text, text
    with shmline.Pipeline.load(saved) as loaded:
        assert loaded.name == name and loaded.tasks == ["source", "scale", "sink"]
        again = loaded.save(tmp_path / "again.toml").read_text()
        # The same, but that each task now runs in the manifest's directory, as loading says.
        assert [line for line in again.splitlines() if not line.startswith("cwd = ")] == \
            text.splitlines()
        assert again.count(f'cwd = "{tmp_path}"') == 3
        report = loaded.run()
    assert report.outcome == "finished" and report.frames == 2 * count
    out = capfd.readouterr().out
    assert f"sink verified {count} frames" in out
    assert f"task scale of pipeline {name} is done" in out


def test_metrics_show_ring_pressure_rates_and_task_cpu_and_memory_during_a_run(name):
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("s", shape=(16,), dtype=np.float64, capacity=8)
        pipe.add_task("source", fn=pipeline_tasks.endless_source, writes={"out": "s"},
                      stdout="/dev/null")
        pipe.add_task("sink", fn=pipeline_tasks.announcing_sink, reads={"input": "s"},
                      stdout="/dev/null")
        with pytest.raises(shmline.WrongStateError, match="not started"):
            pipe.metrics()
        pipe.start()

        def pressed():
            m = pipe.metrics()
            s = m.streams["s"]
            running = all(t.running and t.rss_bytes for t in m.tasks.values())
            return m if s.frames > 0 and s.fill > 0 and running else None

        during = wait_for("frames, a full ring and both tasks", pressed)
        assert during.state == "running" and list(during.tasks) == ["source", "sink"]
        stream = during.streams["s"]
        assert stream.capacity == 8 and 0 < stream.fill <= 1.0 and stream.readers == 1
        assert stream.frames_per_s > 0 and stream.bytes > 0 and stream.bytes % 128 == 0
        assert stream.writer_state == "active"
        for task in during.tasks.values():
            assert task.pid and task.cpu_s >= 0 and task.cpu_percent >= 0
            assert task.rss_bytes > 1 << 20  # a Python interpreter with NumPy
        pipe.stop()
        report = pipe.wait(timeout=PATIENCE)
        assert report.outcome == "stopped"
        after = pipe.metrics()
    assert after.state == "stopped" and after.streams["s"].frames >= stream.frames
    assert all(t.stopped and not t.running and t.rss_bytes is None for t in after.tasks.values())


def test_a_pipeline_runs_once_and_refuses_declarations_after_its_start(name):
    with shmline.Pipeline(name) as pipe:
        pipe.add_task("idle", fn=pipeline_tasks.idle)
        pipe.start()
        with pytest.raises(shmline.WrongStateError, match="already started"):
            pipe.start()
        with pytest.raises(shmline.WrongStateError, match="declare everything before"):
            pipe.add_event("late")
        pipe.stop()
        assert pipe.wait(timeout=PATIENCE).outcome == "stopped"
    with pytest.raises(shmline.ClosedError):
        pipe.add_event("closed")


def test_a_task_needs_exactly_one_of_fn_and_cmd(name):
    with shmline.Pipeline(name) as pipe:
        with pytest.raises(TypeError, match="not neither"):
            pipe.add_task("nothing")
        with pytest.raises(TypeError, match="not both"):
            pipe.add_task("both", fn=pipeline_tasks.idle, cmd=["true"])


def test_a_missing_program_fails_the_run_naming_the_task_and_the_command(name):
    with shmline.Pipeline(name) as pipe:
        pipe.add_task("ghost", cmd=[f"/nonexistent/{name}"])
        with pytest.raises(shmline.PipelineFailedError,
                           match=r"ghost.*could not start.*nonexistent.*not found"):
            pipe.run()


SCRIPT_THAT_FORGOT_THE_MAIN_GUARD = textwrap.dedent("""\
    import sys, shmline

    def task() -> None:
        pass

    with shmline.Pipeline(sys.argv[1]) as pipe:
        pipe.add_task("task", fn=task)
        pipe.run()
    print("ran", flush=True)
""")


def test_a_script_that_runs_its_pipeline_without_the_main_guard_fails_saying_so(name, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT_THAT_FORGOT_THE_MAIN_GUARD)
    done = subprocess.run([sys.executable, str(script), name], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=PATIENCE * 2)
    assert done.returncode != 0 and "ran" not in done.stdout
    assert 'if __name__ == "__main__":' in done.stderr, done.stderr
    assert not leftovers(name)


# -- Several inputs: ending on the end of one of them -----------------------------------------------

def test_a_merge_that_lets_one_inputs_end_of_stream_out_fails_naming_the_frames_left_unread(
        name, capfd):
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("a", shape=(16,), dtype=np.float64)
        pipe.add_stream("b", shape=(16,), dtype=np.float64, capacity=256)
        pipe.add_event("written")
        pipe.add_task("merge", fn=pipeline_tasks.zip_merge, reads={"a": "a", "b": "b"},
                      events={"written": "written"})
        pipe.add_task("source_a", fn=pipeline_tasks.counted_source, writes={"out": "a"},
                      env={"FRAMES": 20})
        # All of b is in its ring before the merge starts: 190 frames are left when a ends.
        pipe.add_task("source_b", fn=pipeline_tasks.counted_source, writes={"out": "b"},
                      events={"written": "written"}, env={"FRAMES": 210})
        with pytest.raises(shmline.PipelineFailedError) as failed:
            pipe.run()
    message = str(failed.value)
    said = 'task "merge" ended on end of stream of "a" while "b" still had 190 frames unread'
    assert said in message and "exit status 1" in message, message
    report = failed.value.report
    assert report.tasks["merge"].exit_code == 1 and not report.tasks["merge"].stopped
    assert said in capfd.readouterr().err
    assert not leftovers(name)


def test_a_merge_whose_inputs_have_all_ended_when_end_of_stream_escapes_finishes(name):
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("a", shape=(16,), dtype=np.float64, capacity=8)
        pipe.add_stream("b", shape=(16,), dtype=np.float64, capacity=8)
        pipe.add_task("merge", fn=pipeline_tasks.zip_merge, reads={"a": "a", "b": "b"})
        for source, stream in (("source_a", "a"), ("source_b", "b")):
            pipe.add_task(source, fn=pipeline_tasks.counted_source, writes={"out": stream},
                          env={"FRAMES": 300})
        report = pipe.run()
    assert report.outcome == "finished"
    assert report.tasks["merge"].exit_code == 0
    assert report.frames == 600


# -- Several writers of one stream, reader groups ---------------------------------------------------

def test_two_python_writer_tasks_feed_one_stream_and_it_ends_after_both(name, capfd):
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("merged", shape=(16,), dtype=np.float64, capacity=16)
        # b finishes long before a: the stream must not end with it.
        pipe.add_task("a", fn=pipeline_tasks.tagged_source, writes={"out": "merged"},
                      env={"SOURCE": 0, "FRAMES": 5000})
        pipe.add_task("b", fn=pipeline_tasks.tagged_source, writes={"out": "merged"},
                      env={"SOURCE": 1, "FRAMES": 100})
        pipe.add_task("sink", fn=pipeline_tasks.merge_sink, reads={"input": "merged"},
                      env={"EXPECT": "0:5000,1:100", "ORDERED": "1"})
        report = pipe.run()
    assert report.outcome == "finished"
    assert report.frames == 5100
    assert "merge sink verified 5100 frames" in capfd.readouterr().out


def test_group_inputs_and_writer_limits_are_declared_checked_and_saved(name, tmp_path):
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("samples", shape=(16,), dtype=np.float64)
        pipe.add_stream("merged", shape=(16,), dtype=np.float64, max_writers=3)
        pipe.add_task("source", fn=pipeline_tasks.tagged_source, writes={"out": "samples"})
        for w in ("w0", "w1"):
            pipe.add_task(w, fn=pipeline_tasks.forward,
                          reads={"input": {"stream": "samples", "group": "workers"}},
                          writes={"out": "merged"})
        pipe.add_task("sink", fn=pipeline_tasks.merge_sink, reads={"input": "merged"})
        pipe.validate()
        text = pipe.save(tmp_path / "p.toml").read_text()
    assert 'group = "workers"' in text and "max_writers = 3" in text, text
    assert shmline.Pipeline.load(tmp_path / "p.toml").tasks == ["source", "w0", "w1", "sink"]

    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("s", shape=(16,), dtype=np.float64)
        with pytest.raises(TypeError, match="a reads value is a stream name, or"):
            pipe.add_task("t", fn=pipeline_tasks.forward, reads={"input": {"streem": "s"}})
        with pytest.raises(TypeError, match="the group of reads"):
            pipe.add_task("t", fn=pipeline_tasks.forward,
                          reads={"input": {"stream": "s", "group": 3}})
        with pytest.raises(ValueError, match="not declared"):
            pipe.add_task("t", fn=pipeline_tasks.forward,
                          reads={"input": {"stream": "nowhere", "group": "g"}})


def test_bad_groups_and_too_many_writers_are_refused_naming_each_entry(name):
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("s", shape=(16,), dtype=np.float64, max_writers=2)
        pipe.add_stream("t", shape=(16,), dtype=np.float64)
        pipe.add_task("a", fn=pipeline_tasks.forward, writes={"out": "s"},
                      reads={"input": {"stream": "t", "group": "no/slash"}})
        pipe.add_task("b", fn=pipeline_tasks.forward, writes={"out": "s"}, reads={"input": "t"})
        pipe.add_task("c", fn=pipeline_tasks.tagged_source, writes={"out": "s"})
        pipe.add_task("d", fn=pipeline_tasks.tagged_source, writes={"out": "t"})
        pipe.add_task("sink", fn=pipeline_tasks.merge_sink, reads={"input": "s"})
        with pytest.raises(shmline.InvalidArgumentError) as e:
            pipe.validate()
    message = str(e.value)
    assert "(2 problems)" in message, message
    assert "streams.s.max_writers: 2 is fewer than the 3 tasks" in message, message
    assert "tasks.a.reads.input.group" in message, message


def test_a_group_of_two_python_workers_shares_the_frames_each_exactly_once(name, capfd):
    count = 6000
    with shmline.Pipeline(name) as pipe:
        pipe.add_stream("samples", shape=(16,), dtype=np.float64, capacity=16)
        pipe.add_stream("merged", shape=(16,), dtype=np.float64, capacity=16)
        pipe.add_task("source", fn=pipeline_tasks.tagged_source, writes={"out": "samples"},
                      env={"SOURCE": 0, "FRAMES": count})
        for w in ("w0", "w1"):
            pipe.add_task(w, fn=pipeline_tasks.forward,
                          reads={"input": {"stream": "samples", "group": "workers"}},
                          writes={"out": "merged"})
        pipe.add_task("sink", fn=pipeline_tasks.merge_sink, reads={"input": "merged"},
                      env={"EXPECT": f"0:{count}"})
        report = pipe.run()
    assert report.outcome == "finished"
    out = capfd.readouterr().out
    assert f"merge sink verified {count} frames" in out
    shares = [int(line.split()[1]) for line in out.splitlines() if line.startswith("forwarded")]
    assert len(shares) == 2 and sum(shares) == count, out


def test_the_fir_example_filters_every_block_exactly_once_through_a_group_of_workers(name):
    done = subprocess.run([sys.executable, str(ROOT / "examples/fir/fir.py"), "--workers", "3",
                           "--blocks", "300", "--block", "1024", "--name", name],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=PATIENCE * 2)
    assert done.returncode == 0, f"stdout: {done.stdout}\nstderr: {done.stderr}"
    assert "300 blocks of 1024 samples" in done.stdout, done.stdout
    assert "every block exactly once" in done.stdout, done.stdout
    shares = [int(line.split()[2]) for line in done.stdout.splitlines()
              if line.startswith("fir") and "filtered" in line]
    assert len(shares) == 3 and sum(shares) == 300, done.stdout


def test_exported_and_imported_streams_become_bridge_tasks_with_the_bridge_endpoints(name,
                                                                                     tmp_path):
    pipe = shmline.Pipeline(name)
    pipe.add_stream("local", max_frame_size=8, export="lab/local")
    pipe.add_stream("remote", max_frame_size=8, import_="lab/remote")
    pipe.add_task("t", cmd=["t"], reads={"a": "remote"}, writes={"b": "local"})
    pipe.bridge(connect=["tcp/127.0.0.1:7447"], lossy=True, lease=2)
    saved = pipe.save(tmp_path / "p.toml").read_text()
    pipe.close()
    assert "bridge-export-local" in saved and "bridge-import-remote" in saved
    loaded = shmline.Pipeline.load(tmp_path / "p.toml")
    try:
        assert loaded.tasks == ["t", "bridge-export-local", "bridge-import-remote"]
    finally:
        loaded.close()
    manifest = pytest.importorskip("tomllib").loads(saved)
    export = manifest["tasks"]["bridge-export-local"]
    assert export["args"] == ["bridge", "export", "stream", "--key", "lab/local", "--pipeline",
                              "--connect", "tcp/127.0.0.1:7447", "--lossy", "--lease", "2.0"]
    assert export["reads"] == {"stream": "local"}
    imported = manifest["tasks"]["bridge-import-remote"]
    assert imported["args"][:4] == ["bridge", "import", "lab/remote", "stream"]
    assert imported["writes"] == {"stream": "remote"}
    # The imported stream has a writer table, through which the origin's gaps become missed frames.
    assert manifest["streams"]["remote"]["max_writers"] == 2


def test_a_bridged_stream_needs_a_key_and_the_bridge_needs_a_sensible_lease(name):
    with shmline.Pipeline(name) as pipe:
        with pytest.raises(shmline.InvalidArgumentError, match="Zenoh key"):
            pipe.add_stream("s", max_frame_size=8, export="")
        with pytest.raises(ValueError, match="lease"):
            pipe.bridge(lease=0)
