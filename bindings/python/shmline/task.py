"""Tasks: a process's membership of a running pipeline.

A program that the pipeline runner starts (`Pipeline.add_task(cmd=[...])`, `shmline run
pipeline.toml`, or a Python function's worker process) joins its pipeline with `Task.join()` and
takes its readers, writers and events by the parameter names it was declared with:

    import shmline

    with shmline.Task.join() as task:       # SHMLINE_PIPELINE and SHMLINE_TASK, set by the runner
        samples = task.reader("samples")
        doubled = task.writer("doubled")
    for frame in samples:                   # until the writer upstream ends the stream
        doubled.write(frame * 2)
    doubled.close()                         # ends the stream for the tasks downstream

When `join()` returns, every reader of every task is attached, so nothing any writer publishes
is lost. Exiting with status 0 ends the streams the task writes (if it did not close them); any
other exit status, or a signal, fails the pipeline.
"""

from __future__ import annotations

from typing import Any, Optional

from . import errors
from ._common import NULL, OK, Wait, name_bytes
from ._ffi import ffi, lib, string
from ._handle import Handle
from .event import Event
from .reader import Reader
from .stream import reader_options, stream_of, writer_options
from .writer import Writer

__all__ = ["Task"]


class Task(Handle):
    """This process as task `name` of running pipeline `pipeline` (`Task.join()`).

    It holds the task's readers, writers and events until they are taken with `reader()`,
    `writer()` and `event()`; those never taken are closed by `close()` (a writer closing ends
    its stream). Handles taken are independent of the task and stay open after `close()`. A
    task that does not use a reader must still close it, or it holds the stream's writer back
    once the ring is full.
    """

    def __init__(self, handle: Any) -> None:
        # Use Task.join().
        self._own(handle, lib.shmline_task_close)
        self._name = string(lib.shmline_task_name(self._h))
        self._pipeline = string(lib.shmline_task_pipeline_name(self._h))

    @classmethod
    def join(cls, pipeline: Optional[str] = None, task: Optional[str] = None) -> "Task":
        """Joins task `task` of the running pipeline `pipeline` (default: the names the runner
        puts in the environment variables `SHMLINE_PIPELINE` and `SHMLINE_TASK`), then waits
        until every task of the pipeline has joined: up to the pipeline's join timeout (30 s by
        default), inside the library (Ctrl-C is handled when it returns).

        Raises `InvalidArgumentError` outside a pipeline (the message says how to start the
        program), `NotFoundError` if the pipeline is not running or has no such task,
        `WrongStateError` if the task already joined, `PipelineFailedError` if the pipeline
        stopped or not every task joined in time.
        """
        out = ffi.new("shmline_task **")
        status = lib.shmline_task_join(
            NULL if pipeline is None else name_bytes(pipeline, "pipeline"),
            NULL if task is None else name_bytes(task, "task"), out)
        if status != OK:
            errors.raise_for(status)
        return cls(out[0])

    @property
    def name(self) -> str:
        """The task's name."""
        return self._name

    @property
    def pipeline(self) -> str:
        """The pipeline's name (its streams are the stream segments `PIPELINE.STREAM`)."""
        return self._pipeline

    def reader(self, param: str, *, wait: Wait = "adaptive", require_dtype: Any = None,
               require_shape: Any = None) -> Reader[Any]:
        """Takes the reader of reading parameter `param` (once: `WrongStateError` the second
        time; `NotFoundError`, listing the task's reading parameters, if there is none). It was
        attached when the task joined, so it reads every frame of its stream, or, when the
        pipeline declared the parameter a member of a reader group, its share of them (each
        frame goes to exactly one member of the group). `wait` and
        `require_dtype`/`require_shape` as for `Stream.reader()` (on a schema mismatch the
        reader stays available)."""
        opts, _keep = reader_options(wait, require_dtype, require_shape)
        out = ffi.new("shmline_reader **")
        self._call(lib.shmline_task_reader(self._h, name_bytes(param, "param"), opts, out))
        handle = out[0]
        try:
            stream = stream_of(lib.shmline_reader_stream, handle)
        except errors.ShmlineError:
            lib.shmline_reader_close(handle)
            raise
        with stream:
            return Reader(stream._ref(), handle, False)

    def writer(self, param: str, *, wait: Wait = "adaptive") -> Writer[Any]:
        """Takes the writer of writing parameter `param` (once: `WrongStateError` the second
        time; `NotFoundError`, listing the task's writing parameters, if there is none).
        Closing it ends the stream; so does this process exiting with status 0. `wait` as for
        `Stream.writer()`."""
        out = ffi.new("shmline_writer **")
        self._call(lib.shmline_task_writer(self._h, name_bytes(param, "param"),
                                           writer_options(wait), out))
        handle = out[0]
        # On failure the handle is dropped without closing: a writer closing here would end the
        # stream.
        with stream_of(lib.shmline_writer_stream, handle) as stream:
            return Writer(stream._ref(), handle)

    def event(self, param: str) -> Event:
        """Takes the event of event parameter `param` (once: `WrongStateError` the second time;
        `NotFoundError`, listing the task's event parameters, if there is none). Its `name` is
        the parameter's."""
        out = ffi.new("shmline_event **")
        self._call(lib.shmline_task_event(self._h, name_bytes(param, "param"), out))
        event = Event(out[0])
        event._name = param
        return event

    def stop_requested(self) -> bool:
        """Whether the runner has asked the pipeline's tasks to stop (another task failed, the
        runner was interrupted, or `Pipeline.stop()`). A task that does not spend its time
        blocked on a stream should check it regularly and return once it is true. Never
        blocks."""
        out = ffi.new("bool *")
        self._call(lib.shmline_task_stop_requested(self._h, out))
        return bool(out[0])

    def wait_stop(self, timeout: Optional[float] = None) -> bool:
        """Waits until the runner asks the tasks to stop: True then, False if `timeout` seconds
        passed first (None: wait for ever; 0: just check). Sleeps (no CPU); Ctrl-C interrupts it
        within about 50 ms."""
        return self._waited(lib.shmline_task_wait_stop, timeout)

    def close(self) -> None:
        """Closes the readers, writers and events not taken (each writer closing ends its
        stream). Handles already taken stay open. Closing twice does nothing. The process stays
        a task of the pipeline until it exits: its exit status is the task's result."""
        super().close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<shmline.Task {self._name!r} of pipeline {self._pipeline!r}{state}>"

    def _what(self) -> str:
        return f"task {self._name!r}"
