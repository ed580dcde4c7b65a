"""The worker process of a Python-function task (`Pipeline.add_task(name, fn=...)`).

The pipeline runner starts programs, so a function task is the program

    python -m shmline._worker [--path DIR]... TARGET

where TARGET names the function: `package.module:qualname`, or `/path/to/script.py:qualname`
for a function of a script run as `__main__`; or `python -m shmline._worker --pickled FILE`
for a `functools.partial` or bound method that `Pipeline.add_task` pickled into FILE
(`shmline._spawn`) (the script is loaded under another name, so its
`if __name__ == "__main__":` block does not run again). Each `--path` goes first on `sys.path`
(the directory the function's module was imported from in the process that declared it).

The worker imports the function, joins the pipeline (`Task.join()`), takes a reader, writer or
event for each parameter of the function bound in the pipeline (by parameter name, as PYTHUSA
does), calls it, and exits:
- the function returns: its writers are closed, which ends their streams for the tasks
  downstream, and the worker exits with status 0;
- it lets `EndOfStream` out (a stream it reads ended): that is a normal end, as a return, only
  when every input of the task has ended (its writer ended and every frame was read). Otherwise
  the task fails: a function that reads several streams and stops at the end of one of them
  (PYTHUSA's merge) would leave the others' frames unread. The worker then says on standard error
  which inputs still had frames and how many (`task "merge" ended on end of stream of "a" while
  "b" still had 190 frames unread`; "had not ended" for an input with nothing unread whose
  writer went on, waited for up to 5 s), the run's failure names the task with that sentence,
  and the worker exits with status 1 as below. Lossy inputs, readers the function closed, and a
  reader group member while other members remain (they read the rest) count as ended
  (`shmline_task_check_inputs()`);
- it raises anything else: the traceback goes to standard error and the worker exits with
  status 1, without ending its streams cleanly, so the pipeline fails naming the task;
- the runner asks the tasks to stop (SIGTERM): the function is interrupted by `SystemExit` and
  the worker exits with status 143.
A function that cannot be imported, or whose parameters are not bound, exits with status 2 and
says why on standard error.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import signal
import sys
import traceback
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

#: True while a worker runs a script's top level to find a function in it: `Pipeline.start()`
#: refuses to run then (the script's pipeline code belongs under `if __name__ == "__main__":`).
loading_main = False

#: The name a script's module gets in a worker (as multiprocessing's `__mp_main__`).
MAIN_ALIAS = "__shmline_main__"

USAGE = ("usage: python -m shmline._worker [--path DIR]... MODULE:QUALNAME | /SCRIPT.py:QUALNAME"
         " | --pickled FILE")


class WorkerError(Exception):
    """Why a worker cannot call its function (printed, exit status 2)."""


def split_target(target: str) -> Tuple[str, str]:
    """(module or script path, qualname) of a worker target."""
    where, sep, qualname = target.rpartition(":")
    if not sep or not where or not qualname:
        raise WorkerError(f"bad function {target!r}: expected MODULE:QUALNAME or "
                          "/path/to/script.py:QUALNAME")
    return where, qualname


def attribute(owner: Any, qualname: str) -> Any:
    """`owner.a.b` for qualname "a.b"."""
    value = owner
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def load_script(path: str) -> Any:
    """Runs the script at `path` as module `__shmline_main__` and returns that module."""
    global loading_main
    spec = importlib.util.spec_from_file_location(MAIN_ALIAS, path)
    if spec is None or spec.loader is None:
        raise WorkerError(f"cannot load {path} as a Python script")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MAIN_ALIAS] = module
    # Python puts a script's directory first on sys.path; its own imports expect that.
    sys.path.insert(0, os.path.dirname(path))
    loading_main = True
    try:
        spec.loader.exec_module(module)
    finally:
        loading_main = False
    return module


def resolve(target: str) -> Callable[..., Any]:
    """The function a worker target names."""
    where, qualname = split_target(target)
    try:
        if "/" in where:
            module = load_script(where)
        else:
            module = importlib.import_module(where)
    except WorkerError:
        raise
    except Exception as e:
        raise WorkerError(
            f"cannot import {where!r} to find the task's function {qualname!r}: "
            f"{type(e).__name__}: {e}\n(the function must be importable by a new Python process "
            f"with sys.path {sys.path})") from e
    try:
        fn = attribute(module, qualname)
    except AttributeError:
        raise WorkerError(f"{where!r} has no attribute {qualname!r} (was the function renamed or "
                          "defined only under `if __name__ == '__main__':`?)") from None
    if not callable(fn):
        raise WorkerError(f"{where}:{qualname} is a {type(fn).__name__}, not a function")
    function: Callable[..., Any] = fn
    return function


def unpickle(path: str) -> Callable[..., Any]:
    """The function `Pipeline.add_task` pickled into `path` (a partial or bound method)."""
    from . import _spawn

    try:
        with open(path, "rb") as f:
            return _spawn.load(f.read())  # type: ignore[no-any-return]
    except Exception as e:
        raise WorkerError(f"cannot unpickle the task's function from {path}: "
                          f"{type(e).__name__}: {e}") from e


def take_handles(task: Any, fn: Callable[..., Any]) -> Dict[str, Any]:
    """A reader, writer or event for each parameter of `fn` that the task binds, by name."""
    from .errors import NotFoundError

    handles: Dict[str, Any] = {}
    missing: List[str] = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            continue
        for take in (task.reader, task.writer, task.event):
            try:
                handles[name] = take(name)
                break
            except NotFoundError:
                continue
        else:
            if param.default is param.empty:
                missing.append(name)
    if missing:
        raise WorkerError(
            f"parameter{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} of "
            f"{getattr(fn, '__qualname__', fn)} {'are' if len(missing) > 1 else 'is'} not bound "
            f"to a stream or event of task {task.name!r}: bind {'them' if len(missing) > 1 else 'it'} "
            "in the task's reads, writes or events (or give the parameter a default)")
    return handles


def close_all(handles: Dict[str, Any]) -> None:
    for handle in handles.values():
        handle.close()


#: How long (ns) an input with nothing unread but a writer not ended yet is waited for when
#: `EndOfStream` escapes the function (`shmline::pipeline::END_PATIENCE`).
END_PATIENCE_NS = 5_000_000_000


def inputs_ended(handles: Dict[str, Any]) -> Optional[str]:
    """None if every input (reader) of the task has ended, else why not (the sentence the library
    also leaves for the run's report)."""
    from ._ffi import ffi, lib, string
    from .reader import Reader

    readers = [(name, h) for name, h in handles.items()
               if isinstance(h, Reader) and not h.closed]
    names = [ffi.new("char[]", name.encode()) for name, _ in readers]
    status = lib.shmline_task_check_inputs(
        ffi.NULL, ffi.NULL, ffi.new("shmline_reader *[]", [h._h for _, h in readers]),
        ffi.new("char *[]", names), len(readers), END_PATIENCE_NS)
    if status == lib.SHMLINE_OK:
        return None
    return string(lib.shmline_last_error_message())


def terminate(signum: int, frame: Any) -> None:
    """SIGTERM from the runner (the pipeline is stopping): unwind the function."""
    raise SystemExit(128 + signum)


def fail(message: str) -> NoReturn:
    task = os.environ.get("SHMLINE_TASK", "?")
    print(f"shmline worker of task {task!r}: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def main(argv: List[str]) -> None:
    paths: List[str] = []
    args = list(argv)
    pickled = None
    while len(args) >= 2 and args[0] in ("--path", "--pickled"):
        if args[0] == "--path":
            paths.append(args[1])
        else:
            pickled = args[1]
        del args[:2]
    if len(args) != (0 if pickled else 1):
        fail(USAGE)
    # Before anything of the user's runs: the runner's stop request unwinds cleanly.
    signal.signal(signal.SIGTERM, terminate)
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        fn = resolve(args[0]) if pickled is None else unpickle(pickled)
    except WorkerError as e:
        fail(str(e))

    from .errors import EndOfStream
    from .task import Task

    with Task.join() as task:
        try:
            handles = take_handles(task, fn)
        except WorkerError as e:
            fail(str(e))
    try:
        fn(**handles)
    except EndOfStream:
        # A stream the function reads ended: done, if every other input has ended too.
        why = inputs_ended(handles)
        if why is not None:
            print(f"shmline worker: {why}", file=sys.stderr)
            die()
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        die()
    close_all(handles)


def die() -> NoReturn:
    """Exits with status 1 without closing the writers: their readers see the writer die, not a
    clean end of stream, and the runner reports this task as failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


if __name__ == "__main__":
    # Run as `python -m shmline._worker`, this file is `__main__`: call the real module's main,
    # so that `shmline._worker.loading_main` is the flag Pipeline.start() looks at.
    from shmline._worker import main as worker_main

    worker_main(sys.argv[1:])
