"""PYTHUSA's `Pipeline` over shmline's: the same declarations, checks and lifecycle, run by
shmline's runner (see the package documentation for every difference)."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
import weakref
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

import numpy as np

from .. import errors
from ..pipeline import Pipeline as _ShmlinePipeline
from .. import _spawn
from ._events import WorkerEvent

__all__ = ["Pipeline", "ProcessMetrics"]

_DEFAULT_FRAMES = 32
_TOML_VERSION = 1


#: How long closing waits for a monitor thread to stop (it stops within one interval).
MONITOR_JOIN_TIMEOUT = 5.0


def stop_monitor(stop: threading.Event, monitor: Optional[threading.Thread]) -> None:
    """Tells a monitor thread to stop and waits for it (at most MONITOR_JOIN_TIMEOUT; not from
    the monitor itself). Its samples call the library, which releases the GIL: a stream closed
    under one of them would only be removed from /dev/shm when that call ends, after the
    close that removed it had returned."""
    stop.set()
    if monitor is not None and monitor is not threading.current_thread():
        monitor.join(timeout=MONITOR_JOIN_TIMEOUT)


log = logging.getLogger("shmline.pythusa")


@dataclass
class ProcessMetrics:
    """A snapshot of one task's process (PYTHUSA's fields): `cpu_percent` of one core since the
    previous sample, `memory_rss_mb` resident memory, `nice`, and `ring_pressure`: for each
    stream the task reads or writes, how full its ring is for its slowest reader, in % (0-100),
    and `sampled_at` (`time.perf_counter()`)."""

    name: str
    pid: int
    cpu_percent: float
    memory_rss_mb: float
    nice: int
    ring_pressure: Dict[str, int] = field(default_factory=dict)
    sampled_at: float = 0.0


def frames_to_capacity(frames: int) -> int:
    """The ring capacity for PYTHUSA's `frames`: the next power of two (shmline indexes slots
    with a mask)."""
    return 1 << (frames - 1).bit_length()


class _TaskRegistrationAPI:
    """`pipe.add_task`: a call (or a decorator when `fn` is left out), with `.switchable`,
    `.toggleable` and `.terminator`."""

    def __init__(self, pipeline: "Pipeline") -> None:
        self._pipeline = pipeline

    def __call__(self, name: str, *, fn: Optional[Callable[..., Any]] = None,
                 reads: Optional[Dict[str, str]] = None, writes: Optional[Dict[str, str]] = None,
                 events: Optional[Dict[str, str]] = None,
                 description: Optional[str] = None) -> Any:
        """Declares task `name`, one process that calls `fn` once with a binding for each
        parameter named in `reads`, `writes` and `events` (parameter -> stream or event name).
        Without `fn`, returns a decorator that declares the function it decorates."""
        if fn is not None:
            return self._pipeline._add_task(name, fn, reads, writes, events, description)

        def decorator(task_fn: Callable[..., Any]) -> Callable[..., Any]:
            self._pipeline._add_task(name, task_fn, reads, writes, events, description)
            return task_fn

        return decorator

    def switchable(self, name: str, *, activate_on: str, fn: Callable[..., Any],
                   reads: Optional[Dict[str, str]] = None,
                   writes: Optional[Dict[str, str]] = None,
                   events: Optional[Dict[str, str]] = None,
                   description: Optional[str] = None) -> "Pipeline":
        """A task that waits until its event `activate_on` (a key of `events`) is open, then
        calls `fn`, for ever: once the event is signalled, `fn` runs again and again until the
        event is reset. The event is not passed to `fn`."""
        return self._pipeline._add_task(name, fn, reads, writes, events, description,
                                        "switchable", activate_on)

    def toggleable(self, name: str, *, activate_on: str, fn: Callable[..., Any],
                   reads: Optional[Dict[str, str]] = None,
                   writes: Optional[Dict[str, str]] = None,
                   events: Optional[Dict[str, str]] = None,
                   description: Optional[str] = None) -> "Pipeline":
        """A task that waits for its event `activate_on`, takes one activation (`reset()`) and
        calls `fn`, for ever: one call per `signal()`. The event is not passed to `fn`."""
        return self._pipeline._add_task(name, fn, reads, writes, events, description,
                                        "toggleable", activate_on)

    def terminator(self, name: str, *, reads: Dict[str, str],
                   description: Optional[str] = None) -> "Pipeline":
        """A task that reads `reads` only to satisfy "every stream has a reader": it leaves
        them at once, holding no writer back."""
        if not reads:
            raise ValueError("Terminator tasks require at least one bound reader.")
        return self._pipeline._add_task(name, _terminator_task, reads, None, None, description)


def _terminator_task(**bindings: Any) -> None:
    for binding in bindings.values():
        binding.close()


class Pipeline:
    """PYTHUSA's declarative pipeline: streams, events and tasks, each task one process.

    Declare with `add_stream()`, `add_event()` and `add_task()` (a call or a decorator; also
    `add_task.switchable/.toggleable/.terminator`), then `run()` (= `start()` + `join()`), or
    `start()`, ..., `stop()`, `join(timeout)`; use it as a context manager (leaving it closes:
    stops the tasks still running and removes every segment). `compile()` checks the graph
    (once); `start()` compiles if needed and starts once (`RuntimeError` the second time).

    Differences from PYTHUSA, all on the safe side:
    - every task joins before any runs (no startup race: no frame is written before every
      reader is attached), and tasks start together rather than sinks first;
    - a task that fails (an exception, a signal) stops the others, and `join()`/`run()` raise
      `shmline.PipelineFailedError` naming it; PYTHUSA let the rest run on;
    - a stream's segment is `/dev/shm/shmline.stream.PIPELINE.STREAM`, not the bare stream
      name, so two pipelines may use the same stream names (not at once under one pipeline
      name);
    - `stop()` asks the tasks to stop (SIGTERM, `SystemExit` in the function, as PYTHUSA) and
      kills those still running after 2 s.
    """

    def __init__(self, name: str) -> None:
        """An empty pipeline named `name`."""
        self.name = name
        self._streams: Dict[str, Dict[str, Any]] = {}
        self._events: Dict[str, Dict[str, Any]] = {}
        self._tasks: Dict[str, Dict[str, Any]] = {}
        self._excused: Set[Tuple[str, str]] = set()
        self._compiled = False
        self._started = False
        self._closed = False
        self._inner: Optional[_ShmlinePipeline] = None
        self._live_events: Dict[str, WorkerEvent] = {}
        self._dir: Optional[str] = None
        self._fds: List[int] = []
        self._ended = False
        self._monitor: Optional[threading.Thread] = None
        self._monitor_stop = threading.Event()
        self._metrics: Dict[str, ProcessMetrics] = {}
        self.add_task = _TaskRegistrationAPI(self)

    # -- Declaring ---------------------------------------------------------------------------

    def add_stream(self, name: str, *, shape: Tuple[int, ...], dtype: Any,
                   frames: int = _DEFAULT_FRAMES, cache_align: bool = True,
                   min_reader_pos_refresh_interval: int = 64,
                   min_reader_pos_refresh_s: float = 0.005,
                   description: Optional[str] = None) -> "Pipeline":
        """Declares stream `name` of frames of `shape` and `dtype`, with room for `frames`
        frames: any positive number, rounded up to a power of two (33 gives 64 slots), since
        shmline's rings count frames, not bytes. `cache_align` and the two
        `min_reader_pos_refresh_*` knobs are accepted (and saved) but not needed: every frame
        slot is already cache-line aligned, and the writer reads its readers' positions from
        shared memory only when the ring looks full."""
        self._ensure_open()
        if isinstance(frames, bool) or not isinstance(frames, int):
            raise TypeError(f"Stream '{name}': frames must be an integer.")
        if frames < 1:
            raise ValueError(f"Stream '{name}': frames must be >= 1.")
        if isinstance(min_reader_pos_refresh_interval, bool) or \
                not isinstance(min_reader_pos_refresh_interval, int):
            raise TypeError(f"Stream '{name}': min_reader_pos_refresh_interval must be an "
                            "integer.")
        if min_reader_pos_refresh_interval < 1:
            raise ValueError(f"Stream '{name}': min_reader_pos_refresh_interval must be >= 1.")
        if isinstance(min_reader_pos_refresh_s, bool) or \
                not isinstance(min_reader_pos_refresh_s, (int, float)):
            raise TypeError(f"Stream '{name}': min_reader_pos_refresh_s must be a real number.")
        if min_reader_pos_refresh_s < 0:
            raise ValueError(f"Stream '{name}': min_reader_pos_refresh_s must be >= 0.")
        self._register(self._streams, "Stream", name, {
            "name": name, "shape": tuple(int(d) for d in np.atleast_1d(shape)) if
            not isinstance(shape, tuple) else tuple(int(d) for d in shape),
            "dtype": np.dtype(dtype), "frames": frames, "cache_align": bool(cache_align),
            "min_reader_pos_refresh_interval": min_reader_pos_refresh_interval,
            "min_reader_pos_refresh_s": float(min_reader_pos_refresh_s),
            "description": description})
        return self

    def add_event(self, name: str, *, initial_state: bool = False,
                  description: Optional[str] = None) -> "Pipeline":
        """Declares event `name` (a `WorkerEvent`), open with one pending activation if
        `initial_state`."""
        self._ensure_open()
        self._register(self._events, "Event", name, {
            "name": name, "initial_state": bool(initial_state), "description": description})
        return self

    def _add_task(self, name: str, fn: Callable[..., Any], reads: Optional[Dict[str, str]],
                  writes: Optional[Dict[str, str]], events: Optional[Dict[str, str]],
                  description: Optional[str], mode: Optional[str] = None,
                  activate_on: Optional[str] = None) -> "Pipeline":
        self._ensure_open()
        task_events = dict(events or {})
        if mode is not None and activate_on not in task_events:
            raise ValueError(f"Task '{name}' declares activate_on='{activate_on}' but that "
                             "name is not present in the task's event bindings.")
        self._register(self._tasks, "Task", name, {
            "name": name, "fn": fn, "reads": dict(reads or {}), "writes": dict(writes or {}),
            "events": task_events, "description": description, "control_mode": mode,
            "control_event": activate_on})
        return self

    def add_excused_edge(self, stream_name: str, consumer_task_name: str) -> "Pipeline":
        """Leaves the edge from stream `stream_name` to its reader `consumer_task_name` out of
        the cycle check, so that a feedback loop compiles. (A cycle of full rings still
        deadlocks: keep a feedback stream drained.)"""
        self._ensure_open()
        if (stream_name, consumer_task_name) in self._excused:
            raise ValueError(f"Edge between stream '{stream_name}' and task "
                             f"'{consumer_task_name}' is already excused.")
        if stream_name not in self._streams:
            raise ValueError(f"Stream '{stream_name}' is not registered.")
        if consumer_task_name not in self._tasks:
            raise ValueError(f"Task '{consumer_task_name}' is not registered.")
        self._excused.add((stream_name, consumer_task_name))
        return self

    # -- Compiling and running ---------------------------------------------------------------

    def compile(self) -> None:
        """Checks the graph as PYTHUSA does (every stream has exactly one writing task and at
        least one reading task, bindings name declared streams and events and match each
        function's parameters, no cycle but through excused edges; an event bound into more
        than 2 tasks is warned about) and builds the shmline pipeline. Once only."""
        self._ensure_open()
        if self._compiled:
            raise RuntimeError("Pipeline has already been compiled.")
        self._check_events_fanout()
        writers: Dict[str, str] = {}
        readers: Dict[str, List[str]] = {s: [] for s in self._streams}
        for tname, task in self._tasks.items():
            _check_signature(tname, task)
            for stream in task["reads"].values():
                if stream not in self._streams:
                    raise KeyError(f"Task '{tname}' reads unknown stream '{stream}'.")
                if tname not in readers[stream]:
                    readers[stream].append(tname)
            for stream in task["writes"].values():
                if stream not in self._streams:
                    raise KeyError(f"Task '{tname}' writes unknown stream '{stream}'.")
                if stream in writers:
                    raise ValueError(f"Stream '{stream}' has multiple writers: "
                                     f"'{writers[stream]}' and '{tname}'.")
                writers[stream] = tname
            for event in task["events"].values():
                if event not in self._events:
                    raise KeyError(f"Task '{tname}' references unknown event '{event}'.")
        graph: Dict[str, Set[str]] = {t: set() for t in self._tasks}
        for stream in self._streams:
            if stream not in writers:
                raise ValueError(f"Stream '{stream}' does not have a writer.")
            if not readers[stream]:
                raise ValueError(f"Stream '{stream}' does not have any readers.")
            for reader in readers[stream]:
                if (stream, reader) not in self._excused:
                    graph[reader].add(writers[stream])
        try:
            tuple(TopologicalSorter(graph).static_order())
        except CycleError as exc:
            raise ValueError("Pipeline task graph contains a cycle.") from exc
        inner = _ShmlinePipeline(self.name, allow_cycles=bool(self._excused))
        for s in self._streams.values():
            inner.add_stream(s["name"], shape=s["shape"], dtype=s["dtype"],
                             capacity=frames_to_capacity(s["frames"]))
        self._dir = tempfile.mkdtemp(prefix=f"shmline-pythusa-{os.getpid()}-")
        # A program that never closes the pipeline still leaves nothing behind at exit.
        weakref.finalize(self, _remove, self._live_events, self._dir)
        for tname, task in self._tasks.items():
            inner.add_task(tname, cmd=[sys.executable, "-m", "shmline.pythusa._worker",
                                       os.path.join(self._dir, f"{len(inner.tasks)}.task")],
                           reads=task["reads"], writes=task["writes"])
        self._inner = inner
        self._compiled = True

    def start(self) -> None:
        """Compiles if needed, creates the events, streams and task processes, and returns
        once they are started (every task joins before any runs). Once only."""
        self._ensure_open()
        if self._started:
            raise RuntimeError("Pipeline has already been started.")
        from .. import _worker

        if _worker.loading_main:
            raise RuntimeError(
                f"Pipeline {self.name!r} was started while a task process loaded the script to "
                "find its function: keep pipe.start() and pipe.run() inside a main() guarded by "
                "`if __name__ == \"__main__\":`, as PYTHUSA asks for spawn-based platforms")
        if not self._compiled:
            self.compile()
        assert self._inner is not None and self._dir is not None
        for e in self._events.values():
            self._live_events[e["name"]] = WorkerEvent(e["name"], e["initial_state"])
        for index, (tname, task) in enumerate(self._tasks.items()):
            payload = {
                "fn": task["fn"], "mode": task["control_mode"],
                "activate_on": task["control_event"],
                "reads": {p: self._schema(s) for p, s in task["reads"].items()},
                "writes": {p: self._schema(s) for p, s in task["writes"].items()},
                "events": {p: self._live_events[e] for p, e in task["events"].items()},
            }
            data = _spawn.dump(payload, self._fds)
            with open(os.path.join(self._dir, f"{index}.task"), "wb") as f:
                f.write(data)
        self._inner.start()
        self._started = True

    def run(self) -> None:
        """`start()`, then `join()`: returns when every task has returned."""
        self.start()
        self.join()

    def stop(self) -> None:
        """Asks every task to stop (SIGTERM: `SystemExit` in the function); those still running
        after 2 s are killed. Returns at once."""
        if self._closed or not self._started or self._inner is None:
            return
        self._inner.stop()

    def join(self, timeout: Optional[float] = None) -> None:
        """Waits until every task has ended, or `timeout` seconds (None: for ever); returns
        quietly on timeout, as PYTHUSA. Raises `shmline.PipelineFailedError` naming the task
        that failed, if one did."""
        if self._closed or not self._started or self._inner is None:
            return
        try:
            self._inner.wait(timeout)
        except errors.Timeout:
            return
        finally:
            if self._inner._result is not None:
                self._release_run_resources()

    def close(self) -> None:
        """Stops the tasks still running, waits for them, and removes every segment, event
        and temporary file. Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        monitor, self._monitor = self._monitor, None
        stop_monitor(self._monitor_stop, monitor)
        if self._inner is not None:
            self._inner.close()
        self._release_run_resources()
        _remove(self._live_events, self._dir)

    def _release_run_resources(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "Pipeline":
        self._ensure_open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Pipeline(name={self.name!r}, streams={len(self._streams)}, "
                f"tasks={len(self._tasks)}, events={len(self._events)}, "
                f"compiled={self._compiled}, started={self._started}, closed={self._closed})")

    # -- Monitoring -------------------------------------------------------------------------

    def start_monitor(self, interval_s: float = 0.01) -> "Pipeline":
        """Starts a thread of this process that samples every task every `interval_s` seconds
        (`metrics()`), and logs PYTHUSA's warning ("reader may be stalled") on the
        `shmline.pythusa` logger when a ring stays over 90 % full for over 1 s. It reads
        shared counters and /proc only (no psutil needed), and does not renice tasks as
        PYTHUSA does (a silent priority change that needs privileges to raise)."""
        self._ensure_open()
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._monitor_loop, args=(interval_s,),
                                             daemon=True, name="pythusa_monitor")
            self._monitor.start()
        return self

    def _monitor_loop(self, interval_s: float) -> None:
        high_since: Dict[str, float] = {}
        while not self._monitor_stop.is_set():
            inner = self._inner
            if self._started and inner is not None:
                try:
                    self._sample(inner, high_since)
                except errors.ShmlineError:
                    pass  # closed or ended meanwhile
                if inner._result is not None:
                    return
            self._monitor_stop.wait(max(interval_s, 0.001))

    def _sample(self, inner: _ShmlinePipeline, high_since: Dict[str, float]) -> None:
        snapshot = inner.metrics()
        now = time.perf_counter()
        pressure = {n: int(round(s.fill * 100)) for n, s in snapshot.streams.items()}
        for stream, percent in pressure.items():
            if percent > 90:
                since = high_since.setdefault(stream, now)
                if now - since > 1.0:
                    log.warning("Ring '%s' has been at %d%% pressure for %.1fs  reader may be "
                                "stalled.", stream, percent, now - since)
            else:
                high_since.pop(stream, None)
        for tname, t in snapshot.tasks.items():
            if not t.running or t.pid is None:
                continue
            try:
                nice = os.getpriority(os.PRIO_PROCESS, t.pid)
            except OSError:
                continue
            task = self._tasks.get(tname, {})
            rings = list(task.get("reads", {}).values()) + list(task.get("writes", {}).values())
            self._metrics[tname] = ProcessMetrics(
                tname, t.pid, t.cpu_percent, (t.rss_bytes or 0) / (1024 * 1024), nice,
                {r: pressure[r] for r in rings if r in pressure}, now)

    def metrics(self, task_name: Optional[str] = None) -> Any:
        """The latest `ProcessMetrics` of task `task_name` (None before the monitor's first
        sample of it; `KeyError` for an unknown task), or of every task by name."""
        if task_name is not None:
            if task_name not in self._tasks:
                raise KeyError(f"Task '{task_name}' is not registered.")
            return self._metrics.get(task_name)
        return {name: self._metrics.get(name) for name in self._tasks}

    # -- Saving -------------------------------------------------------------------------------

    def save(self, path: Union[str, "os.PathLike[str]"]) -> Path:
        """Writes the declaration (not the live state) as PYTHUSA's TOML (`format_version =
        1`), which `Pipeline.reconstruct()` reads. Task functions must be importable top-level
        callables (`ValueError` otherwise)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"format_version = {_TOML_VERSION}", f"name = {_toml_str(self.name)}", ""]
        for s in (self._streams[n] for n in sorted(self._streams)):
            lines += ["[[streams]]", f"name = {_toml_str(s['name'])}",
                      f"shape = [{', '.join(str(d) for d in s['shape'])}]",
                      f"dtype = {_toml_str(np.dtype(s['dtype']).str)}",
                      f"frames = {s['frames']}",
                      f"cache_align = {str(s['cache_align']).lower()}",
                      f"min_reader_pos_refresh_interval = {s['min_reader_pos_refresh_interval']}",
                      f"min_reader_pos_refresh_s = {s['min_reader_pos_refresh_s']!r}"]
            lines += _description(s) + [""]
        for e in (self._events[n] for n in sorted(self._events)):
            lines += ["[[events]]", f"name = {_toml_str(e['name'])}",
                      f"initial_state = {str(e['initial_state']).lower()}"]
            lines += _description(e) + [""]
        for t in (self._tasks[n] for n in sorted(self._tasks)):
            module, qualname = _callable_reference(t["fn"])
            lines += ["[[tasks]]", f"name = {_toml_str(t['name'])}",
                      f"function_module = {_toml_str(module)}",
                      f"function_qualname = {_toml_str(qualname)}"]
            lines += _description(t)
            if t["control_mode"] is not None:
                lines += [f"control_mode = {_toml_str(t['control_mode'])}",
                          f"control_event = {_toml_str(t['control_event'])}"]
            for kind in ("reads", "writes", "events"):
                if t[kind]:
                    lines += [f"[tasks.{kind}]"] + [f"{_toml_str(k)} = {_toml_str(v)}"
                                                    for k, v in t[kind].items()]
            lines.append("")
        target.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
        return target

    @classmethod
    def reconstruct(cls, path: Union[str, "os.PathLike[str]"]) -> "Pipeline":
        """A new pipeline with the declaration `save()` wrote to `path` (functions imported by
        module and qualified name)."""
        try:
            import tomllib as toml
        except ImportError:  # Python < 3.11
            import tomli as toml  # type: ignore[no-redef,import-not-found,unused-ignore]
        data = toml.loads(Path(path).read_text(encoding="utf-8"))
        version = data.get("format_version", 1)
        if version != _TOML_VERSION:
            raise ValueError(f"Unsupported pipeline TOML format_version={version}. "
                             f"Expected {_TOML_VERSION}.")
        if "name" not in data:
            raise ValueError("Pipeline TOML is missing required top-level 'name'.")
        pipe = cls(data["name"])
        for s in data.get("streams", []):
            _require(s, "stream", "name", "shape", "dtype")
            pipe.add_stream(s["name"], shape=tuple(s["shape"]), dtype=np.dtype(s["dtype"]),
                            **{k: s[k] for k in ("frames", "cache_align",
                                                 "min_reader_pos_refresh_interval",
                                                 "min_reader_pos_refresh_s", "description")
                               if k in s})
        for e in data.get("events", []):
            _require(e, "event", "name")
            pipe.add_event(e["name"], initial_state=e.get("initial_state", False),
                           description=e.get("description"))
        for t in data.get("tasks", []):
            _require(t, "task", "name", "function_module", "function_qualname")
            fn = _resolve(t["function_module"], t["function_qualname"])
            pipe._add_task(t["name"], fn, dict(t.get("reads", {})), dict(t.get("writes", {})),
                           dict(t.get("events", {})), t.get("description"),
                           t.get("control_mode"), t.get("control_event"))
        return pipe

    # -- Internals ----------------------------------------------------------------------------

    def _schema(self, stream: str) -> Tuple[str, Tuple[int, ...], str]:
        s = self._streams[stream]
        return stream, s["shape"], np.dtype(s["dtype"]).str

    def _check_events_fanout(self) -> None:
        users: Dict[str, List[str]] = {name: [] for name in self._events}
        for tname, task in self._tasks.items():
            for event in task["events"].values():
                if event in users:
                    users[event].append(tname)
        for event, names in users.items():
            if len(names) > 2:
                warnings.warn(
                    f"Event '{event}' is bound into {len(names)} tasks ({', '.join(names)}). "
                    "PYTHUSA events are intended for one producer/one consumer style "
                    "coordination. Prefer separate events per consumer instead of sharing one "
                    "event across many tasks.", stacklevel=3)

    def _register(self, store: Dict[str, Dict[str, Any]], kind: str, name: str,
                  declaration: Dict[str, Any]) -> None:
        if self._compiled:
            raise RuntimeError("Pipeline has already been compiled: declare everything before "
                               "compile() or start().")
        if name in store:
            raise ValueError(f"{kind} '{name}' is already registered.")
        store[name] = declaration

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError("Pipeline is closed.")


def _remove(events: Dict[str, WorkerEvent], directory: Optional[str]) -> None:
    """Removes a pipeline's events and task files (at close, or at exit if never closed)."""
    for event in events.values():
        event.close()
    events.clear()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _check_signature(tname: str, task: Dict[str, Any]) -> None:
    """PYTHUSA's checks: no name bound twice; every bound name (but the control event) is a
    keyword parameter of the function (or it takes **kwargs); every required one is bound."""
    names = [*task["reads"], *task["writes"], *task["events"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Task '{tname}' reuses local binding names across "
                         f"reads/writes/events: {duplicates}.")
    if task["control_mode"] is not None:
        names = [n for n in names if n != task["control_event"]]
    fn = task["fn"]
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for n in names:
        p = params.get(n)
        if p is None:
            if var_kw:
                continue
            raise ValueError(f"Task '{tname}' binds local name '{n}' but callable "
                             f"'{getattr(fn, '__name__', type(fn).__name__)}' does not accept "
                             "it.")
        if p.kind is p.POSITIONAL_ONLY:
            raise ValueError(f"Task '{tname}' binding '{n}' maps to a positional-only "
                             "parameter, which cannot be supplied by keyword.")
    for p in params.values():
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY,
                                               p.POSITIONAL_ONLY) and p.name not in names:
            raise ValueError(f"Task '{tname}' callable requires parameter '{p.name}', which "
                             "is not bound by reads, writes or events.")


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") \
        .replace("\t", "\\t")
    return f'"{escaped}"'


def _description(decl: Dict[str, Any]) -> List[str]:
    d = decl.get("description")
    return [] if d is None else [f"description = {_toml_str(d)}"]


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _callable_reference(fn: Any) -> Tuple[str, str]:
    message = "Pipeline.save() requires task functions to be importable top-level callables."
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname:
        raise ValueError(message)
    try:
        found = _resolve(module, qualname)
    except (ImportError, AttributeError) as exc:
        raise ValueError(message) from exc
    if found is not fn:
        raise ValueError(message)
    return module, qualname


def _require(section: Dict[str, Any], what: str, *keys: str) -> None:
    if any(k not in section for k in keys):
        joined = ", ".join(f"'{k}'" for k in keys)
        raise ValueError(f"Each saved {what} must include {joined}.")
