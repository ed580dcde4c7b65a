"""Handing a task's function to its process as spawn-context `multiprocessing` does.

The pipeline runner starts every task as a program, so a task function that cannot be named by
module and qualified name (`shmline.pythusa`'s tasks; a `functools.partial` or bound method in
`shmline.Pipeline`), and whatever it holds (a `functools.partial` with NumPy arrays, a
`multiprocessing.Queue`...), is pickled into FILE, as `multiprocessing` pickles a spawned
process's target. Objects that only pickle while a process is being spawned (queues, locks,
pipes) are let through the same way: `multiprocessing`'s spawning hook is set while pickling,
and each file descriptor they carry is duplicated as an inheritable descriptor, which the task
processes inherit under the same number (the runner starts them from this process). The script
run as `__main__` is loaded again in the worker under another name (its
`if __name__ == "__main__":` block does not run), so functions it defines unpickle there.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
from multiprocessing import context as mp_context
from multiprocessing.reduction import ForkingPickler
from typing import Any, Dict, List

__all__ = ["dump", "load"]


class _DupFd:
    """What a pickled file descriptor becomes (as in `multiprocessing.popen_spawn_posix`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def detach(self) -> int:
        return self.fd


class _Spawning:
    """Stands in for `multiprocessing`'s spawning Popen while a task's payload is pickled."""

    DupFd = _DupFd

    def __init__(self, fds: List[int]) -> None:
        self._fds = fds

    def duplicate_for_child(self, fd: int) -> int:
        new = os.dup(fd)
        os.set_inheritable(new, True)
        self._fds.append(new)
        return new


def main_info() -> Dict[str, Any]:
    """How a worker finds this process's `__main__`: a script path or a module name."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in (None, "__main__"):
        return {"module": spec.name}
    file = getattr(main, "__file__", None)
    if file and os.path.exists(file):
        return {"script": os.path.abspath(file)}
    return {}


def dump(payload: Any, fds: List[int]) -> bytes:
    """`payload` pickled for a worker, with `sys.path` and `__main__` in front; inheritable
    duplicates of the descriptors it carries are appended to `fds` (close them once the tasks
    have started)."""
    out = io.BytesIO()
    pickle.dump({"sys_path": list(sys.path), "main": main_info()}, out)
    previous = mp_context.get_spawning_popen()
    mp_context.set_spawning_popen(_Spawning(fds))  # type: ignore[arg-type]
    try:
        # multiprocessing's pickler knows how to reduce connections, locks and queues.
        ForkingPickler(out, pickle.HIGHEST_PROTOCOL).dump(payload)
    except Exception as e:
        raise ValueError(
            f"{type(e).__name__}: {e}. A task function, and what a functools.partial holds, "
            "must pickle (as for PYTHUSA's spawn-context processes): define functions with def "
            "at the top level of a module or of the script, not as lambdas or nested functions"
        ) from e
    finally:
        mp_context.set_spawning_popen(previous)
    return out.getvalue()


def load(data: bytes) -> Any:
    """The payload `dump()` pickled, in a worker: `sys.path` and `__main__` restored first."""
    stream = io.BytesIO(data)
    prep = pickle.load(stream)
    for path in reversed(prep["sys_path"]):
        if path not in sys.path:
            sys.path.insert(0, path)
    main = prep["main"]
    if "script" in main:
        module = _load_script(main["script"])
        sys.modules["__main__"] = sys.modules["__mp_main__"] = module
    elif "module" in main:
        import importlib

        module = importlib.import_module(main["module"])
        sys.modules["__main__"] = sys.modules["__mp_main__"] = module
    return pickle.load(stream)


def _load_script(path: str) -> Any:
    """Runs the script at `path` (any file name, as `runpy.run_path`) as module
    `__shmline_main__` and returns it; `Pipeline.start()` refuses to run meanwhile."""
    import importlib.machinery
    import importlib.util

    from . import _worker

    loader = importlib.machinery.SourceFileLoader(_worker.MAIN_ALIAS, path)
    spec = importlib.util.spec_from_file_location(_worker.MAIN_ALIAS, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_worker.MAIN_ALIAS] = module
    sys.path.insert(0, os.path.dirname(path))
    _worker.loading_main = True
    try:
        loader.exec_module(module)
    finally:
        _worker.loading_main = False
    return module
