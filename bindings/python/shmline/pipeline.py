"""Pipelines: streams (the belts), events (the switches) and tasks (the machines), run as one
process per task, with PYTHUSA's programming model.

    import numpy as np
    import shmline

    def source(samples: shmline.ArrayWriter) -> None:
        for i in range(1000):
            samples.write(np.full(8, i, np.float32))

    def scale(samples: shmline.ArrayReader, doubled: shmline.ArrayWriter) -> None:
        for frame in samples:                 # until the source's stream ends
            doubled.write(frame * 2)

    def sink(doubled: shmline.ArrayReader) -> None:
        print(sum(float(f.sum()) for f in doubled))

    if __name__ == "__main__":
        with shmline.Pipeline("demo") as pipe:
            pipe.add_stream("samples", shape=(8,), dtype=np.float32)
            pipe.add_stream("doubled", shape=(8,), dtype=np.float32)
            pipe.add_task("source", fn=source, writes={"samples": "samples"})
            pipe.add_task("scale", fn=scale, reads={"samples": "samples"},
                          writes={"doubled": "doubled"})
            pipe.add_task("sink", fn=sink, reads={"doubled": "doubled"})
            pipe.run()                        # ends when the sink returns

The declaration is the C library's (`shmline_pipeline_*`), and so is the runner: it creates the
streams and events, starts every task as a process, releases them together once all have joined
(so no frame is lost), and watches them. A task whose process exits with status 0 ends the
streams it writes, so the tasks downstream drain them and finish: a pipeline ends by itself. The
first task that fails (a non-zero exit status, a signal, a Python exception) stops the others,
and `run()` raises `PipelineFailedError` naming it.

Tasks are Python functions (`fn=`), each run in a worker process of its own (module
`shmline._worker`), or programs in any language (`cmd=[...]`) that join with
`shmline_task_join()` in C, `Task::join()` in Rust or `shmline.Task.join()` in Python. A
function gets a `Reader`, `Writer` or `Event` for each of its parameters, by parameter name, as
in PYTHUSA; it must be importable by a new process: defined with `def` at the top level of a
module, or of the script being run (then keep the pipeline code under
`if __name__ == "__main__":`, which a worker does not run); a `functools.partial` or a bound
method is pickled for its process instead, as spawn-context `multiprocessing` does (so it may
hold NumPy arrays and `multiprocessing.Queue`s). For PYTHUSA's exact API and non-blocking
bindings, see `shmline.pythusa`.

Fan-in and work sharing: several tasks may write one stream (`writes={"out": "merged"}` in
each; the stream ends when the last of them is done), and a reading parameter may join a reader
group, `reads={"samples": {"stream": "samples", "group": "workers"}}`: the tasks of one group
share the stream's frames, each frame going to exactly one of them, while plain readers still get
every frame. PYTHUSA's round-robin FIR fan-out/fan-in is `examples/fir/` this way.

Reading from a task: `read()` waits for the next frame (it never returns None), and raises
`EndOfStream` once the stream's writer is done and every frame was read; a function that lets
`EndOfStream` out ends normally when every one of its inputs has ended. So PYTHUSA code that
polls `read()` and sleeps on None works unchanged, and ends when its input ends. A function with
several inputs that lets the end of one out while another still has frames fails, and the run's
error names each input that still had frames and how many (`task "merge" ended on end of stream
of "a" while "b" still had 190 frames unread`); see `shmline._worker`. `try_read()` is the
non-blocking read that returns None.

Manifests: `save(path)` writes the declaration as the TOML manifest that `shmline run` and every
language read; `Pipeline.load(path)` reads one. A function task is saved as the command that
starts its worker (`python -m shmline._worker module:function`).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import errors
from ._common import (
    EVENT_MODES, NULL, OK, TIMEOUT, WRITER_STATES, EventMode, ShapeLike, check, closer, name_bytes,
    normalise_dtype, normalise_shape, option, schema_args, wait_for,
)
from ._ffi import ffi, lib, string
from ._handle import Handle
from ._pipeline_reports import (
    OUTCOMES, PipelineMetrics, RunReport, StreamMetrics, TaskMetrics, TaskReport, proc_sample,
    task_pids,
)
from ._pipeline_spec import (
    KINDS, PathLike, ReadTarget, check_bindings, duration_ns, manifest_names, read_group,
    worker_args,
)
from .errors import PipelineFailedError, WrongStateError

__all__ = ["Pipeline", "RunReport", "TaskReport", "PipelineMetrics", "StreamMetrics",
           "TaskMetrics"]

class Pipeline(Handle):
    """A pipeline declaration, and its run once started. Use it as a context manager: leaving
    the `with` block stops a run that is still going and frees everything.

    Declare with `add_stream()`, `add_event()` and `add_task()` (each returns the pipeline, so
    calls chain); run with `run()`, or `start()` then `wait()`; watch with `metrics()`. A
    pipeline runs once. Every segment (`/dev/shm/shmline.*.NAME.*`) is removed when the run
    ends, however it ends. Use a pipeline from one thread at a time, except that `stop()` and
    `metrics()` may be called from another thread while one waits in `run()` or `wait()`.
    """

    def __init__(self, name: str, *, join_timeout: Optional[float] = None,
                 stop_grace: Optional[float] = None, allow_cycles: bool = False) -> None:
        """An empty pipeline named `name` (its segments are named after it, so two pipelines
        running at once need different names). `join_timeout`: how long every task gets to
        join before the run fails (default 30 s). `stop_grace`: how long tasks asked to stop
        get before SIGKILL (default 2 s). `allow_cycles`: accept streams forming a cycle (which
        deadlocks once every ring on it is full)."""
        out = ffi.new("shmline_pipeline **")
        check(lib.shmline_pipeline_new(name_bytes(name), out))
        self._init(out[0], {}, {}, [])
        if join_timeout is not None:
            check(lib.shmline_pipeline_set_join_timeout(
                self._h, duration_ns(join_timeout, "join_timeout")))
        if stop_grace is not None:
            check(lib.shmline_pipeline_set_stop_grace(
                self._h, duration_ns(stop_grace, "stop_grace")))
        if allow_cycles:
            check(lib.shmline_pipeline_set_allow_cycles(self._h, 1))

    def _init(self, handle: Any, streams: Optional[Dict[str, str]],
              events: Optional[Dict[str, str]],
              tasks: List[str]) -> None:
        self._own(handle, lib.shmline_pipeline_close)
        self._name = string(lib.shmline_pipeline_name(self._h))
        # What was declared, for early checks and metrics; None when unknown (a manifest that
        # could not be read here: the library still validates everything).
        self._streams = streams
        self._events = events
        self._tasks = tasks
        self._params: Dict[str, List[str]] = {}
        self._run: Any = NULL
        self._started_at = 0.0
        self._result: Optional[Tuple[int, str, RunReport]] = None
        self._samples: Dict[Any, Tuple[float, float, float]] = {}
        # Held by metrics() and stop(), which other threads may call, and by close() while it
        # frees the run handle they use.
        self._lock = threading.Lock()
        # Pickled function tasks: their files, and the descriptors the task processes inherit.
        self._pickle_dir: Optional[str] = None
        self._fds: List[int] = []
        # Streams that cross hosts (`add_stream(export=..., import_=...)`): (verb, stream, key),
        # turned into bridge tasks with the `bridge()` settings when the declaration is used.
        self._bridged: List[Tuple[str, str, str]] = []
        self._bridge_args: List[str] = []
        self._bridge_tasks_added = False

    @classmethod
    def load(cls, path: PathLike) -> "Pipeline":
        """Reads the TOML manifest at `path` (the format `save()` writes and `shmline run`
        reads). Relative paths in it are taken from the manifest's directory. Raises
        `InvalidArgumentError` with the line and column of a malformed manifest,
        `NotFoundError` if there is no such file."""
        out = ffi.new("shmline_pipeline **")
        check(lib.shmline_pipeline_load(os.fsencode(path), out))
        pipe = cls.__new__(cls)
        streams, events, tasks = manifest_names(Path(path))
        pipe._init(out[0], streams, events, tasks)
        return pipe

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self._name

    @property
    def tasks(self) -> List[str]:
        """The tasks' names, in declaration order."""
        return list(self._tasks)

    # -- Declaring -------------------------------------------------------------------------

    def add_stream(self, name: str, *, shape: Optional[ShapeLike] = None, dtype: Any = None,
                   max_frame_size: int = 0, capacity: Optional[int] = None,
                   frames: Optional[int] = None, checksum: bool = False,
                   max_readers: int = 0, max_writers: int = 0,
                   export: Optional[str] = None, import_: Optional[str] = None) -> "Pipeline":
        """Declares stream `name`: frames of NumPy `dtype` and `shape` (default `()`), or bytes
        of at most `max_frame_size` without a dtype. `capacity` (or `frames`, PYTHUSA's name
        for it) is the number of slots, a power of two (default 64): the writer runs at most
        that far ahead of its slowest reader. `checksum` adds a CRC32C to every frame.
        `max_readers` 0 makes room for every reading task (group members included) plus 4
        monitors. Several tasks may write the stream: `max_writers` 0 (or 1) allows one writer
        per writing task, a larger value is the limit (no fewer than the writing tasks). The
        stream is created with room for every reader group its tasks join, and at least 4.

        Streams that cross hosts (docs/BRIDGE.md), as `export`/`import` in a manifest:
        `export="KEY"` publishes the stream on Zenoh key `KEY` and `import_="KEY"` feeds it
        from a key another host exports. Each becomes a task (`bridge-export-NAME`,
        `bridge-import-NAME`) running `shmline bridge ...` with the endpoints given to
        `bridge()`; the `shmline-bridge` program must be installed (`shmline bridge --help`)."""
        self._declaring()
        self._new_name(name, "stream")
        for verb, key in (("export", export), ("import", import_)):
            if key is not None:
                if not isinstance(key, str) or not key:
                    raise errors.InvalidArgumentError(
                        f"stream {name!r}: {verb} needs a Zenoh key such as \"lab/samples\", "
                        f"not {key!r}")
                if self._bridge_tasks_added:
                    raise WrongStateError(f"{self._what()}: declare bridged streams before "
                                          "validate(), save() or start()")
                self._bridged.append((verb, name, key))
        if import_ is not None:
            # A writer table lets the importer publish the origin's gaps as missed frames.
            max_writers = max(max_writers, 2)
        if capacity is not None and frames is not None and capacity != frames:
            raise ValueError("give capacity or frames (PYTHUSA's name for it), not both")
        slots = capacity if capacity is not None else frames if frames is not None else 64
        if dtype is None and not max_frame_size:
            raise ValueError(f"stream {name!r} needs a dtype (and shape) for NumPy frames, or a "
                             "max_frame_size in bytes for bytes frames")
        opts = ffi.new("shmline_stream_options *", lib.shmline_stream_options_default())
        opts.capacity = slots
        opts.max_frame_size = max_frame_size
        opts.checksum = bool(checksum)
        opts.max_readers = max_readers
        opts.max_writers = max_writers
        dtype_c, ndim, shape_c, _keep = schema_args(dtype, shape)
        opts.dtype = dtype_c
        opts.ndim = ndim
        opts.shape = shape_c
        check(lib.shmline_pipeline_add_stream(self._h, name.encode(), opts))
        if self._streams is not None:
            self._streams[name] = (
                f"bytes of at most {max_frame_size} B" if dtype is None else
                f"{normalise_dtype(dtype).name} {normalise_shape(shape)}")
        return self

    def bridge(self, *, listen: Sequence[str] = (), connect: Sequence[str] = (),
               lossy: bool = False, lease: Optional[float] = None,
               config: Optional[PathLike] = None) -> "Pipeline":
        """How this pipeline's bridge tasks (streams declared with `export=` or `import_=`)
        reach other hosts, as the manifest's `[bridge]` table: Zenoh endpoints to `listen` on
        and to `connect` to (such as "tcp/192.0.2.7:7447"; nothing is scouted), `lossy` (the
        exporter never waits; gaps reach readers as missed frames), `lease` (seconds of
        silence after which an importer declares the exporter dead) and a Zenoh `config` file
        (TLS, access control). Call it before `validate()`, `save()` or `start()`."""
        self._declaring()
        if self._bridge_tasks_added:
            raise WrongStateError(f"{self._what()}: set the bridge before validate(), save() "
                                  "or start()")
        args: List[str] = []
        for flag, endpoints in (("--listen", listen), ("--connect", connect)):
            if isinstance(endpoints, str):
                endpoints = [endpoints]
            for endpoint in endpoints:
                args += [flag, str(endpoint)]
        if lossy:
            args.append("--lossy")
        if lease is not None:
            if not (isinstance(lease, (int, float)) and 0 < lease < float("inf")):
                raise errors.InvalidArgumentError(
                    f"lease must be a number of seconds above 0, not {lease!r}")
            args += ["--lease", str(float(lease))]
        if config is not None:
            args += ["--config", os.fspath(config)]
        self._bridge_args = args
        return self

    def _add_bridge_tasks(self) -> None:
        """Declares the bridge task of every bridged stream, once."""
        if self._bridge_tasks_added or not self._bridged:
            return
        self._bridge_tasks_added = True
        command = _shmline_command()
        for verb, stream, key in self._bridged:
            if verb == "export":
                args = ["bridge", "export", "stream", "--key", key]
            else:
                args = ["bridge", "import", key, "stream"]
            binding = {"stream": stream}
            self.add_task(f"bridge-{verb}-{stream}",
                          cmd=[command, *args, "--pipeline", *self._bridge_args],
                          reads=binding if verb == "export" else None,
                          writes=binding if verb == "import" else None)

    def add_event(self, name: str, *, mode: EventMode = "flag") -> "Pipeline":
        """Declares event `name`: a "flag" (set until cleared, releasing every waiter) or a
        "counting" event, a counter of signals (each `set()` releases one `wait()`)."""
        self._declaring()
        self._new_name(name, "event")
        check(lib.shmline_pipeline_add_event(self._h, name.encode(),
                                             option(EVENT_MODES, mode, "mode")))
        if self._events is not None:
            self._events[name] = mode
        return self

    def add_task(self, name: str, *, fn: Optional[Callable[..., Any]] = None,
                 cmd: Optional[Sequence[PathLike]] = None,
                 reads: Optional[Mapping[str, ReadTarget]] = None,
                 writes: Optional[Mapping[str, str]] = None,
                 events: Optional[Mapping[str, str]] = None, cwd: Optional[PathLike] = None,
                 env: Optional[Mapping[str, str]] = None, stdout: Optional[PathLike] = None,
                 stderr: Optional[PathLike] = None) -> "Pipeline":
        """Declares task `name`, one process: the Python function `fn`, or the program `cmd`
        (`[program, *args]`, in any language).

        `reads`, `writes` and `events` map the task's parameter names to stream and event
        names: `fn` is called with a `Reader` for each `reads` parameter, a `Writer` for each
        `writes` one and an `Event` for each `events` one, by name; a program takes them with
        `Task.join()` and `task.reader(param)`... Each stream needs at least one writing task
        (several make it a multi-writer stream, which ends when the last is done) and at least
        one reading task. A `reads` value may be `{"stream": name, "group": group}`: the reader
        joins reader group `group`, whose members (usually in several tasks) share the stream's
        frames, each frame going to exactly one of them. A task reads a stream through one
        parameter at most.

        `fn` must be importable by a new Python process: a function defined with `def` at the
        top level of a module or of the script being run, not a lambda or a nested function
        (`ValueError` says which). A `functools.partial` or a bound method is pickled for the
        task's process as spawn-context `multiprocessing` pickles a process's target, so what it
        holds (NumPy arrays, a spawn-context `multiprocessing.Queue`...) reaches the task; it
        must pickle (`ValueError` otherwise). Its parameters must match the
        bindings. `cwd` (default: the current directory), `env` (added to this process's
        environment), `stdout` and `stderr` (files appended to; default: this process's) apply
        to the task's process.
        """
        self._declaring()
        if (fn is None) == (cmd is None):
            raise TypeError(f"task {name!r} needs either fn= (a Python function) or cmd= (a "
                            "program and its arguments), not " + ("both" if fn else "neither"))
        self._new_name(name, "task")
        groups = {param: read_group(name, param, target)
                   for param, target in (reads or {}).items()}
        bindings = {"reads": {param: stream for param, (stream, _) in groups.items()},
                    "writes": dict(writes or {}), "events": dict(events or {})}
        check_bindings(name, bindings, self._streams, self._events)
        if fn is not None:
            args = worker_args(name, fn, bindings) or self._pickled_args(name, fn)
            argv = [sys.executable, "-m", "shmline._worker", *args]
        else:
            if isinstance(cmd, (str, bytes, os.PathLike)):
                cmd = [cmd]
            argv = [os.fspath(a) for a in cmd]  # type: ignore[union-attr]
            if not argv:
                raise ValueError(f"task {name!r}: cmd is empty; give [program, *args]")
            if not all(isinstance(a, str) for a in argv):
                raise TypeError(f"task {name!r}: cmd must be strings (or paths), not {cmd!r}")
        argv_c = [ffi.new("char[]", a.encode()) for a in argv]
        check(lib.shmline_pipeline_add_task(self._h, name.encode(),
                                            ffi.new("char *[]", argv_c), len(argv_c)))
        self._tasks.append(name)
        for kind, table in bindings.items():
            for param, target in table.items():
                group = groups[param][1] if kind == "reads" else None
                if group is not None:
                    check(lib.shmline_pipeline_bind_group(self._h, name.encode(), param.encode(),
                                                          target.encode(), group.encode()))
                else:
                    check(lib.shmline_pipeline_bind(self._h, name.encode(), KINDS[kind],
                                                    param.encode(), target.encode()))
        if cwd is not None:
            check(lib.shmline_pipeline_task_set_cwd(self._h, name.encode(), os.fsencode(cwd)))
        for key, value in (env or {}).items():
            check(lib.shmline_pipeline_task_set_env(self._h, name.encode(), str(key).encode(),
                                                    str(value).encode()))
        if stdout is not None or stderr is not None:
            check(lib.shmline_pipeline_task_set_output(
                self._h, name.encode(), NULL if stdout is None else os.fsencode(stdout),
                NULL if stderr is None else os.fsencode(stderr)))
        return self

    def _pickled_args(self, task: str, fn: Callable[..., Any]) -> List[str]:
        """Pickles `fn` into a file of this pipeline (removed by `close()`) and returns the
        worker's arguments that load it."""
        from . import _spawn

        data = _spawn.dump(fn, self._fds)
        if self._pickle_dir is None:
            self._pickle_dir = tempfile.mkdtemp(prefix=f"shmline-{os.getpid()}-")
        path = os.path.join(self._pickle_dir, f"{len(self._tasks)}.task")
        with open(path, "wb") as f:
            f.write(data)
        return ["--pickled", path]


    def validate(self) -> None:
        """Checks the whole declaration as `start()` does: names valid and unique, every stream
        with at least one writing task (no more than its `max_writers`) and one reading task,
        every binding to a declared stream or event, valid group names, no task reading a stream
        twice, no cycle unless allowed. `InvalidArgumentError` lists every problem."""
        self._open()
        self._add_bridge_tasks()
        check(lib.shmline_pipeline_validate(self._h))

    def save(self, path: PathLike) -> Path:
        """Writes the declaration, validated, to the TOML manifest file `path` (replacing it)
        and returns the path. `Pipeline.load()` and `shmline run` read it back."""
        self._open()
        self._add_bridge_tasks()
        check(lib.shmline_pipeline_save(self._h, os.fsencode(path)))
        return Path(path)

    # -- Running ---------------------------------------------------------------------------

    def run(self) -> RunReport:
        """Starts the pipeline and waits for its end (`start()` then `wait()`), and returns its
        report once every task has exited with status 0.

        Raises `PipelineFailedError` naming the first task that failed and its exit status or
        signal (the others were stopped; the error's `report` has every task's). Ctrl-C stops
        the pipeline cleanly (the tasks are asked to stop, then killed after the grace period)
        and raises `KeyboardInterrupt` once everything is removed; in the main thread, SIGTERM
        does the same and raises `PipelineFailedError`.
        """
        self.start()
        with _TerminateAsInterrupt() as terminate:
            try:
                return self.wait()
            except KeyboardInterrupt:
                if terminate.caught:
                    raise PipelineFailedError(
                        f"pipeline {self._name!r} was stopped by SIGTERM") from None
                raise

    def start(self) -> None:
        """Starts the pipeline and returns at once: validates the declaration
        (`InvalidArgumentError` lists every problem), creates the streams and events, and
        starts every task from a thread of this process. `AlreadyExistsError` if a live process
        runs a pipeline of the same name."""
        self._open()
        # Imported here, not at the top: `python -m shmline._worker` must find the module not
        # yet imported when it runs it.
        from . import _worker

        if _worker.loading_main:
            raise WrongStateError(
                f"pipeline {self._name!r} was started while a worker process loaded its script "
                "to find a task's function: put the code that runs the pipeline under "
                "`if __name__ == \"__main__\":` (a worker does not run that block)")
        if self._run != NULL or self._result is not None:
            raise WrongStateError(f"pipeline {self._name!r} was already started: a pipeline "
                                  "runs once (declare a new one, or load its manifest again)")
        self._add_bridge_tasks()
        out = ffi.new("shmline_run **")
        check(lib.shmline_pipeline_start(self._h, out))
        self._run = ffi.gc(out[0], closer(lib.shmline_run_close))
        self._started_at = time.monotonic()

    def wait(self, timeout: Optional[float] = None) -> RunReport:
        """Waits for the run to end (`Timeout` after `timeout` seconds; None waits for ever)
        and returns its report; raises `PipelineFailedError` as `run()` does. Ctrl-C stops the
        pipeline, waits for its end and raises `KeyboardInterrupt`. Once ended, every call
        returns (or raises) the same. Do not close the pipeline from another thread meanwhile."""
        if self._result is None:
            if self._run == NULL:
                raise WrongStateError(f"pipeline {self._name!r} is not started: call start() "
                                      "or run()")
            run, report = self._run, ffi.new("shmline_run_report *")
            try:
                status = wait_for(lambda ns: lib.shmline_run_wait(run, ns, report), timeout,
                                  f"pipeline {self._name!r} did not end")
            except KeyboardInterrupt:
                self._stop_and_wait()
                raise
            self._ended(status, report)
        return self._outcome()

    def stop(self) -> None:
        """Asks the running pipeline to stop: its tasks are asked to (`Task.stop_requested()`
        and SIGTERM; a function task is interrupted by `SystemExit`), then killed after the
        grace period. Returns at once; `wait()` waits for the end, and returns the report of a
        stopped run. Does nothing before the start or after the end."""
        with self._lock:
            if self._run != NULL and self._result is None:
                check(lib.shmline_run_stop(self._run))

    def close(self) -> None:
        """Stops the run if it is still going, waits until its tasks are gone and its segments
        removed, and frees the declaration. Closing twice does nothing."""
        if self.closed:
            return
        if self._run != NULL and self._result is None:
            self._stop_and_wait()
        with self._lock:
            run, self._run = self._run, NULL
            if run != NULL:
                ffi.release(run)
            super().close()
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)
        if self._pickle_dir is not None:
            shutil.rmtree(self._pickle_dir, ignore_errors=True)
            self._pickle_dir = None

    def __repr__(self) -> str:
        state = ("closed" if self.closed else self._result[2].outcome if self._result
                 else "running" if self._run != NULL else "declared")
        return f"<shmline.Pipeline {self._name!r} tasks={self._tasks} {state}>"

    # -- Watching --------------------------------------------------------------------------

    def metrics(self) -> PipelineMetrics:
        """A snapshot of the run, while it goes or after it ended: every stream's ring pressure
        (`fill`), counts and rates, and every task's CPU time, CPU use and resident memory
        (from /proc while it runs; how it ended afterwards). Only reads shared counters: it
        never disturbs the tasks. May be called from another thread than the one in `run()`."""
        with self._lock:
            self._open()
            return self._metrics()

    def _metrics(self) -> PipelineMetrics:
        run = self._run
        if run == NULL:
            raise WrongStateError(f"pipeline {self._name!r} is not started: metrics come from "
                                  "a run")
        now = time.monotonic()
        elapsed = now - self._started_at
        state = "running" if self._result is None else self._result[2].outcome
        if self._result is None:
            # A run may end between the calls; its final counters are as good.
            probe = ffi.new("shmline_run_report *")
            status = lib.shmline_run_wait(run, 0, probe)
            if status != TIMEOUT:
                self._ended(status, probe)
                state = self._result[2].outcome  # type: ignore[index]
        streams: Dict[str, StreamMetrics] = {}
        stats = ffi.new("shmline_stream_stats *")
        index = 0
        while True:
            name_c = lib.shmline_run_stream_name(run, index)
            if name_c == NULL:
                break
            name = string(name_c)
            check(lib.shmline_run_stream_stats(run, index, stats))
            frames, nbytes = int(stats.frames_written), int(stats.bytes_written)
            last_t, last_frames, last_bytes = self._samples.get(
                ("stream", name), (self._started_at, 0, 0))
            span = max(now - last_t, 1e-9)
            if self._result is not None:
                span = max(self._result[2].running_s or self._result[2].duration_s, 1e-9)
                last_frames = last_bytes = 0
            else:
                self._samples[("stream", name)] = (now, frames, nbytes)
            streams[name] = StreamMetrics(
                name, int(stats.capacity), float(stats.fill), frames, nbytes,
                (frames - last_frames) / span, (nbytes - last_bytes) / span,
                int(stats.writer_waits), stats.writer_wait_ns / 1e9, int(stats.reader_count),
                WRITER_STATES.get(stats.writer_state, "unknown"))
            index += 1
        return PipelineMetrics(state, elapsed, streams, self._task_metrics(now))

    def _task_metrics(self, now: float) -> Dict[str, TaskMetrics]:
        tasks: Dict[str, TaskMetrics] = {}
        if self._result is not None:
            for name, t in self._result[2].tasks.items():
                tasks[name] = TaskMetrics(name, t.pid or None, False, t.cpu_s,
                                          100.0 * t.cpu_s / max(self._result[2].duration_s, 1e-9),
                                          None, t.exit_code, t.signal, t.stopped)
            return tasks
        pids = task_pids(self._name)
        for name in self._tasks or list(pids):
            pid = pids.get(name)
            sample = proc_sample(pid) if pid is not None else None
            if sample is None:
                tasks[name] = TaskMetrics(name, pid, False, 0.0, 0.0, None, None, None, None)
                continue
            cpu, rss, age = sample
            last_t, last_cpu, _ = self._samples.get(("task", pid), (now - age, 0.0, 0.0))
            self._samples[("task", pid)] = (now, cpu, 0.0)
            percent = 100.0 * (cpu - last_cpu) / max(now - last_t, 1e-9)
            tasks[name] = TaskMetrics(name, pid, True, cpu, percent, rss, None, None, None)
        return tasks

    # -- Internals ---------------------------------------------------------------------------

    def _declaring(self) -> None:
        self._open()
        if self._run != NULL or self._result is not None:
            raise WrongStateError(f"pipeline {self._name!r} was started: declare everything "
                                  "before start() or run()")

    def _open(self) -> None:
        if self.closed:
            raise errors.ClosedError(f"{self._what()} is closed")

    def _what(self) -> str:
        return f"pipeline {self._name!r}"

    def _new_name(self, name: str, kind: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a {kind} name is a str, not {type(name).__name__}")
        table: Optional[Iterable[str]] = {"stream": self._streams, "event": self._events,
                                          "task": self._tasks}[kind]
        if table is not None and name in table:
            raise ValueError(f"pipeline {self._name!r} already has a {kind} named {name!r}")

    def _stop_and_wait(self) -> None:
        """Stops the run and waits for its end, through further Ctrl-Cs (the runner kills the
        tasks after the grace period, so the end comes)."""
        run, report = self._run, ffi.new("shmline_run_report *")
        lib.shmline_run_stop(run)
        while True:
            try:
                status = wait_for(lambda ns: lib.shmline_run_wait(run, ns, report), None, "")
                break
            except KeyboardInterrupt:
                continue
        self._ended(status, report)

    def _ended(self, status: int, report: Any) -> None:
        """Records how the run ended (the status of shmline_run_wait and its report)."""
        message = string(lib.shmline_last_error_message()) if status != OK else ""
        tasks: Dict[str, TaskReport] = {}
        out = ffi.new("shmline_task_report *")
        for i in range(report.task_count):
            if lib.shmline_run_task_report(self._run, i, out) != OK:
                continue
            name = self._tasks[i] if i < len(self._tasks) else f"task {i}"
            code = int(out.exit_value) if out.exit_kind == lib.SHMLINE_EXIT_CODE else None
            sig = int(out.exit_value) if out.exit_kind == lib.SHMLINE_EXIT_SIGNAL else None
            tasks[name] = TaskReport(name, int(out.pid), code, sig, bool(out.stopped),
                                     out.cpu_ns / 1e9)
        self._result = (status, message, RunReport(
            OUTCOMES.get(report.outcome, "unknown"), int(report.signal) or None,
            report.duration_ns / 1e9, report.running_ns / 1e9, int(report.frames),
            int(report.bytes), tasks))

    def _outcome(self) -> RunReport:
        assert self._result is not None
        status, message, report = self._result
        if status == OK:
            return report
        error = errors.error_for(status)
        if message:
            error = type(error)(message)
        error.report = report  # type: ignore[attr-defined]
        raise error


def _shmline_command() -> str:
    """The `shmline` command that bridge tasks run: the one bundled with this package, else
    `shmline` on PATH."""
    from ._cli import command_path

    try:
        return str(command_path())
    except FileNotFoundError:
        return shutil.which("shmline") or "shmline"


class _TerminateAsInterrupt:
    """In the main thread, while no handler is installed for SIGTERM, turns it into
    KeyboardInterrupt (remembering it came), so that `run()` stops the pipeline cleanly as the
    C runner does instead of dying and leaving the tasks to be killed."""

    def __init__(self) -> None:
        self.caught = False
        self._previous: Any = None

    def __enter__(self) -> "_TerminateAsInterrupt":
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.caught = True
        raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
