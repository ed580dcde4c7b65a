"""The process of a PYTHUSA task: `python -m shmline.pythusa._worker PAYLOAD`.

The pipeline runner starts it; it reads the task's pickled payload (`_spawn`), joins the
pipeline (`shmline.Task.join()`: every reader of every task is attached before anyone writes,
so PYTHUSA's startup race cannot happen), wraps each reader and writer in PYTHUSA's binding,
opens the task's events, fills the `get_reader`/`get_writer`/`get_event` registry, and calls the
function once with every binding by keyword (under a switch or toggle loop for controlled
tasks). When it returns, the writers are closed (their streams end) and the process exits 0. An
exception prints its traceback and exits 1 without ending the streams cleanly, so the pipeline
fails naming the task. SIGTERM (a stop) raises `SystemExit` in the function, as in PYTHUSA.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from typing import Any, Callable, Dict, NoReturn, Optional

from . import _context
from ._bindings import StreamReader, StreamWriter


def run_controlled(fn: Callable[..., Any], mode: Optional[str], activate_on: Optional[str],
                   kwargs: Dict[str, Any]) -> Any:
    """Calls `fn` once, or under PYTHUSA's switch (wait, call, for ever) or toggle (wait, take
    one activation, call, for ever) loop; the control event is not passed to `fn`."""
    if mode is None:
        return fn(**kwargs)
    event = kwargs[activate_on]  # type: ignore[index]
    call = {k: v for k, v in kwargs.items() if k != activate_on}
    while True:
        event.wait()
        if mode == "toggleable":
            event.reset()
        fn(**call)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(path: str) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    from .. import _spawn

    with open(path, "rb") as f:
        payload = _spawn.load(f.read())
    from ..task import Task

    kwargs: Dict[str, Any] = {}
    readers: Dict[str, Any] = {}
    writers: Dict[str, Any] = {}
    with Task.join() as task:
        for param, (stream, shape, dtype) in payload["reads"].items():
            kwargs[param] = readers[stream] = StreamReader(task.reader(param), stream, shape,
                                                           dtype)
        for param, (stream, shape, dtype) in payload["writes"].items():
            kwargs[param] = writers[stream] = StreamWriter(task.writer(param), stream, shape,
                                                           dtype)
    events = payload["events"]  # param -> WorkerEvent (opened by name when unpickled)
    kwargs.update(events)
    _context.install(readers, writers, {e.name: e for e in events.values()})
    try:
        run_controlled(payload["fn"], payload["mode"], payload["activate_on"], kwargs)
    except SystemExit as e:
        if e.code in (0, None):  # the function's own clean exit: end its streams
            for binding in list(writers.values()) + list(readers.values()):
                binding.close()
        raise
    except BaseException:
        traceback.print_exc()
        die()
    for binding in list(writers.values()) + list(readers.values()):
        binding.close()


def die() -> NoReturn:
    """Exits with status 1 without closing the writers: their readers see the writer die, and
    the runner reports this task as failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m shmline.pythusa._worker PAYLOAD", file=sys.stderr)
        sys.exit(2)
    from shmline.pythusa._worker import main as worker_main

    worker_main(sys.argv[1])
