"""PYTHUSA's imperative runtime: `Manager` with `RingSpec`, `EventSpec` and `TaskSpec`, each task
a spawn-context `multiprocessing` process that finds its rings and events with `get_reader`,
`get_writer` and `get_event`."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import signal
import threading
import time
import weakref
from typing import Any, Callable, Dict, Optional, Tuple

from .. import errors
from ..stream import Stream
from . import _context
from ._events import EventSpec, WorkerEvent
from ._pipeline import ProcessMetrics, stop_monitor
from ._ring import RingSpec, SharedRingBuffer

__all__ = ["Manager", "TaskSpec", "Worker"]

#: Slots of a Manager ring: its `size` bytes is the largest frame (one `write_array`).
RING_SLOTS = 16
#: How long `start()` waits for a reading task to attach its readers.
ATTACH_PATIENCE_S = 30.0

_counter = itertools.count()


class TaskSpec:
    """PYTHUSA's frozen task declaration: `fn` runs once in its own process, called with
    `*args` and `**kwargs`; it reads `reading_rings` and writes `writing_rings` (names of
    rings made by `Manager.create_ring`) through `get_reader(name)` / `get_writer(name)`, and
    uses `events` through `get_event(name)`."""

    def __init__(self, name: str, fn: Callable[..., Any], reading_rings: Tuple[str, ...] = (),
                 writing_rings: Tuple[str, ...] = (), events: Tuple[str, ...] = (),
                 args: Tuple[Any, ...] = (), kwargs: Optional[Dict[str, Any]] = None) -> None:
        overlap = set(reading_rings) & set(writing_rings)
        if overlap:
            raise ValueError(f"TaskSpec '{name}': rings {overlap} appear in both reading_rings "
                             "and writing_rings. A ring is either read or written per task.")
        self.__dict__.update(name=name, fn=fn, reading_rings=tuple(reading_rings),
                             writing_rings=tuple(writing_rings), events=tuple(events),
                             args=tuple(args), kwargs=dict(kwargs or {}))

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("TaskSpec is frozen")

    def __reduce__(self) -> Tuple[Any, ...]:
        d = self.__dict__
        return (TaskSpec, (d["name"], d["fn"], d["reading_rings"], d["writing_rings"],
                           d["events"], d["args"], d["kwargs"]))

    def __repr__(self) -> str:
        fn = getattr(self.fn, "__name__", type(self.fn).__name__)  # type: ignore[attr-defined]
        return (f"TaskSpec(name={self.name!r}, fn={fn!r}, "  # type: ignore[attr-defined]
                f"reading_rings={self.reading_rings}, "  # type: ignore[attr-defined]
                f"writing_rings={self.writing_rings})")  # type: ignore[attr-defined]


class Worker:
    """PYTHUSA's process body: calls one callable once, SIGTERM raising `SystemExit(0)`."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn

    def __call__(self) -> None:
        def _handle_sigterm(*_: Any) -> None:
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, _handle_sigterm)
        self._fn()


class _Bootstrap:
    """The picklable target of a Manager task's process."""

    def __init__(self, spec: TaskSpec, segments: Dict[str, str], events: Dict[str, WorkerEvent],
                 attached: Any) -> None:
        self.spec = spec
        self.segments = segments
        self.events = events
        self.attached = attached

    def __call__(self) -> None:
        spec: Any = self.spec
        readers: Dict[str, Any] = {}
        writers: Dict[str, Any] = {}
        for ring in spec.reading_rings:
            with Stream.open(self.segments[ring]) as stream:
                # "oldest": frames written before this reader attached (PYTHUSA's startup race)
                # are still read if they are in the ring.
                readers[ring] = _Raw(SharedRingBuffer(ring, reader=stream.reader(start="oldest")))
        for ring in spec.writing_rings:
            with Stream.open(self.segments[ring]) as stream:
                writers[ring] = _Raw(SharedRingBuffer(ring, writer=stream.writer()))
        self.attached.set()
        _context.install(readers, writers, {e: self.events[e] for e in spec.events})
        try:
            Worker(lambda: spec.fn(*spec.args, **spec.kwargs))()
        finally:
            for raw in list(writers.values()) + list(readers.values()):
                raw.raw.close()


def _remove(rings: Dict[str, Stream[Any]], events: Dict[str, WorkerEvent]) -> None:
    for stream in rings.values():
        stream.close()
    rings.clear()
    for event in events.values():
        event.close()
    events.clear()


class _Raw:
    """A registry entry whose `.raw` is the ring (as the Pipeline's bindings are)."""

    def __init__(self, raw: SharedRingBuffer) -> None:
        self.raw = raw


class Manager:
    """PYTHUSA's imperative runtime: rings, events and task processes you start one by one.

    Differences from PYTHUSA: a ring is a shmline bytes stream (`/dev/shm/shmline.stream.
    pythusa-PID-N.RING`) whose frames are at most `size` bytes each (one `write_array`), with
    room for 16 of them; `start()` of a task that reads returns once its readers are attached,
    so frames written afterwards are never lost (start readers first, as PYTHUSA's example
    does); a reader that dies does not hold the writer back for ever. The monitor does not
    renice tasks.
    """

    def __init__(self, mp_context: str = "spawn") -> None:
        """`mp_context` is the `multiprocessing` start method of the task processes (spawn, as
        PYTHUSA: rings and events are opened by name in the child)."""
        # Any: the context's kind (spawn, fork...) is the caller's choice.
        self._ctx: Any = mp.get_context(mp_context)
        self._prefix = f"pythusa-{os.getpid()}-{next(_counter)}"
        self._rings: Dict[str, Stream[Any]] = {}
        self._ring_specs: Dict[str, RingSpec] = {}
        self._events: Dict[str, WorkerEvent] = {}
        self._task_specs: Dict[str, TaskSpec] = {}
        self._processes: Dict[str, Any] = {}
        self._metrics: Dict[str, ProcessMetrics] = {}
        self._monitor: Optional[threading.Thread] = None
        self._monitor_stop = threading.Event()
        # A program that never closes the manager still removes its rings and events at exit.
        weakref.finalize(self, _remove, self._rings, self._events)

    def create_ring(self, spec: RingSpec) -> "Manager":
        """Creates the ring `spec` describes."""
        s: Any = spec
        self._ring_specs[s.name] = spec
        self._rings[s.name] = Stream.create(
            f"{self._prefix}.{s.name}", max_frame_size=s.size, capacity=RING_SLOTS,
            max_readers=s.num_readers + 4, unlink_on_close=True)
        return self

    def create_event(self, spec: EventSpec) -> "Manager":
        """Creates the event `spec` describes."""
        self._events[spec.name] = WorkerEvent(spec.name, spec.initial_state)
        return self

    def create_task(self, spec: TaskSpec) -> "Manager":
        """Registers a task, started later by `start(name)`."""
        s: Any = spec
        if s.name in self._task_specs:
            raise ValueError(f"Task '{s.name}' is already registered")
        for ring in s.reading_rings + s.writing_rings:
            if ring not in self._rings:
                raise KeyError(f"Task '{s.name}' ring '{ring}' is not registered. Call "
                               "create_ring() first.")
        for event in s.events:
            if event not in self._events:
                raise KeyError(f"Task '{s.name}' references event '{event}' which is not "
                               "registered. Call create_event() first.")
        self._task_specs[s.name] = spec
        return self

    def start(self, name: str) -> Any:
        """Starts task `name` in a new process and returns it (a `multiprocessing.Process`),
        once its readers are attached."""
        if name not in self._task_specs:
            raise KeyError(f"'{name}' is not a registered task. Registered tasks: "
                           f"{list(self._task_specs)}")
        spec: Any = self._task_specs[name]
        attached = self._ctx.Event()
        segments = {r: f"{self._prefix}.{r}" for r in spec.reading_rings + spec.writing_rings}
        target = _Bootstrap(spec, segments, self._events, attached)
        proc = self._ctx.Process(target=target, name=name, daemon=True)
        proc.start()
        self._processes[name] = proc
        deadline = time.monotonic() + ATTACH_PATIENCE_S
        while not attached.wait(0.05):
            if not proc.is_alive() or time.monotonic() > deadline:
                raise errors.PipelineFailedError(
                    f"task {name!r} (pid {proc.pid}) did not attach to its rings "
                    f"(exit code {proc.exitcode})")
        return proc

    def stop(self, name: str) -> None:
        """Sends SIGTERM to task `name`'s process (`SystemExit` in its function)."""
        proc = self._processes.get(name)
        if proc is not None and proc.is_alive():
            proc.terminate()

    def join(self, name: str, timeout: Optional[float] = 5.0) -> None:
        """Waits up to `timeout` seconds for task `name`'s process to end."""
        proc = self._processes.get(name)
        if proc is not None:
            proc.join(timeout=timeout)

    def stop_all(self) -> None:
        """`stop()` every task."""
        for name in list(self._processes):
            self.stop(name)

    def join_all(self, timeout: Optional[float] = 5.0) -> None:
        """`join()` every task, each up to `timeout` seconds."""
        for name in list(self._processes):
            self.join(name, timeout=timeout)

    def start_monitor(self, interval_s: float = 0.01) -> None:
        """Samples every task's process every `interval_s` seconds (`get_metrics`), and logs
        the stall warning when a ring stays over 90 % full for over 1 s."""
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._monitor_loop, args=(interval_s,),
                                             daemon=True, name="pythusa_monitor")
            self._monitor.start()

    def _monitor_loop(self, interval_s: float) -> None:
        from .._pipeline_reports import proc_sample
        from ._pipeline import log

        high_since: Dict[str, float] = {}
        last: Dict[int, Tuple[float, float]] = {}
        while not self._monitor_stop.wait(max(interval_s, 0.001)):
            now = time.perf_counter()
            pressure: Dict[str, int] = {}
            for rname, stream in list(self._rings.items()):
                try:
                    pressure[rname] = int(round(stream.stats().fill * 100))
                except errors.ShmlineError:
                    continue
                if pressure[rname] > 90:
                    since = high_since.setdefault(rname, now)
                    if now - since > 1.0:
                        log.warning("Ring '%s' has been at %d%% pressure for %.1fs  reader may "
                                    "be stalled.", rname, pressure[rname], now - since)
                else:
                    high_since.pop(rname, None)
            for name, proc in list(self._processes.items()):
                sample = proc_sample(proc.pid) if proc.is_alive() else None
                if sample is None:
                    continue
                cpu, rss, _age = sample
                t0, cpu0 = last.get(proc.pid, (now, cpu))
                last[proc.pid] = (now, cpu)
                try:
                    nice = os.getpriority(os.PRIO_PROCESS, proc.pid)
                except OSError:
                    continue
                spec: Any = self._task_specs[name]
                rings = spec.reading_rings + spec.writing_rings
                self._metrics[name] = ProcessMetrics(
                    name, proc.pid, 100.0 * (cpu - cpu0) / max(now - t0, 1e-9),
                    rss / (1024 * 1024), nice, {r: pressure[r] for r in rings if r in pressure},
                    now)

    def get_metrics(self, name: str) -> Optional[ProcessMetrics]:
        """The latest sample of task `name`, or None before the first."""
        return self._metrics.get(name)

    def close(self) -> None:
        """Stops the monitor and removes every ring and event this manager created."""
        monitor, self._monitor = self._monitor, None
        stop_monitor(self._monitor_stop, monitor)
        _remove(self._rings, self._events)

    def __enter__(self) -> "Manager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()
        self.join_all()
        self.close()

    def __repr__(self) -> str:
        return (f"<Manager tasks={list(self._task_specs)} processes={list(self._processes)} "
                f"rings={list(self._ring_specs)} events={list(self._events)}>")
