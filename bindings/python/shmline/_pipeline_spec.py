"""Declaring a pipeline: what the Python side checks, with messages that say what to fix, before
the library validates the whole declaration (`shmline_pipeline_validate`): bindings of task
parameters to streams and events, Python functions as tasks (importable by a new process, with
parameters that match their bindings), and the names a manifest declares."""

from __future__ import annotations

import collections.abc
import difflib
import functools
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ._ffi import lib

PathLike = Union[str, "os.PathLike[str]"]
#: What a `reads` parameter is bound to: a stream name, or {"stream": name, "group": group} for a
#: member of a reader group.
ReadTarget = Union[str, Mapping[str, str]]

KINDS = {"reads": lib.SHMLINE_BINDING_READ, "writes": lib.SHMLINE_BINDING_WRITE,
          "events": lib.SHMLINE_BINDING_EVENT}


def read_group(task: str, param: str, target: Any) -> Tuple[Any, Optional[str]]:
    """(stream, group or None) of a `reads` value: a stream name, or {"stream": ..., "group":
    ...}. Raises TypeError for anything else (other types are left to `_check_bindings`)."""
    if not isinstance(target, collections.abc.Mapping):
        return target, None
    unknown = set(target) - {"stream", "group"}
    if unknown or "stream" not in target:
        raise TypeError(f"task {task!r}: reads[{param!r}] is {dict(target)!r}; a reads value is a "
                        "stream name, or {'stream': name, 'group': group} for a member of a "
                        "reader group")
    group = target.get("group")
    if group is not None and not isinstance(group, str):
        raise TypeError(f"task {task!r}: the group of reads[{param!r}] is a str, not "
                        f"{type(group).__name__}")
    return target["stream"], group


def duration_ns(seconds: float, what: str) -> int:
    if not seconds >= 0:
        raise ValueError(f"{what} must be a number of seconds >= 0, not {seconds!r}")
    # Clamped before the conversion, so that float('inf') or 1e300 mean "as long as the library
    # allows" rather than raising OverflowError.
    longest = 2**63 - 1
    return longest if seconds >= longest / 1e9 else int(seconds * 1e9)


def worker_args(task: str, fn: Callable[..., Any], bindings: Dict[str, Dict[str, str]]) \
        -> List[str]:
    """The arguments of `python -m shmline._worker` that run `fn`; raises ValueError saying what
    to change when a new process could not import `fn` or its parameters do not match the
    bindings."""
    where = f"task {task!r}: fn={fn!r}"
    if not callable(fn):
        raise TypeError(f"{where} is not callable")
    if isinstance(fn, functools.partial) or inspect.ismethod(fn):
        # Pickled by the caller (`_pickled_args`), as spawn-context multiprocessing does.
        check_signature(task, fn, bindings)
        return []
    qualname = getattr(fn, "__qualname__", None)
    module_name = getattr(fn, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module_name, str):
        raise ValueError(f"{where} has no module and qualified name, so a worker process cannot "
                         "import it: use a function defined with def at the top level of a "
                         "module")
    if "<lambda>" in qualname:
        raise ValueError(f"{where} is a lambda, which a worker process cannot import: define it "
                         "with def at the top level of a module (or of the script)")
    if "<locals>" in qualname:
        raise ValueError(f"{where} is defined inside another function, which a worker process "
                         "cannot import: move it to the top level of a module (or of the "
                         "script), and pass what it used from the enclosing function through "
                         "streams, events or env=")
    from . import _worker  # see Pipeline.start()

    module = sys.modules.get(module_name)
    try:
        found = _worker.attribute(module, qualname) if module is not None else None
    except AttributeError:
        found = None
    if found is not fn:
        raise ValueError(f"{where} is not what {module_name}.{qualname} names now (was it "
                         "decorated, renamed or replaced?), so a worker process would import "
                         "something else: pass the function that module defines")
    args: List[str] = []
    if module_name == "__main__":
        spec = getattr(module, "__spec__", None)
        file = getattr(module, "__file__", None)
        if spec is not None and spec.name not in (None, "__main__"):
            # `python -m package.module`: import it by its real name.
            target = f"{spec.name}:{qualname}"
            root = import_root(spec.origin, spec.name)
        elif file:
            target = f"{os.path.abspath(file)}:{qualname}"
            root = None
        else:
            raise ValueError(f"{where} is defined in an interactive session or `python -c`, "
                             "whose code a worker process cannot import: put the function in a "
                             "module or script file")
    else:
        target = f"{module_name}:{qualname}"
        root = import_root(getattr(module, "__file__", None), module_name)
    if root is not None:
        args += ["--path", root]
    check_signature(task, fn, bindings)
    return args + [target]


def import_root(file: Optional[str], module_name: str) -> Optional[str]:
    """The sys.path entry from which `module_name` was imported as `file`, if it can be told."""
    if not file:
        return None
    directory = os.path.dirname(os.path.abspath(file))
    parts = module_name.split(".")
    if os.path.basename(file).startswith("__init__."):
        package = parts
    else:
        package = parts[:-1]
    for part in reversed(package):
        if os.path.basename(directory) != part:
            return None
        directory = os.path.dirname(directory)
    return directory


def check_signature(task: str, fn: Callable[..., Any],
                     bindings: Dict[str, Dict[str, str]]) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # nothing to check against (a builtin): the worker reports a mismatch
    named = {n: p for n, p in sig.parameters.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    bound = [param for table in bindings.values() for param in table]
    label = f"{getattr(fn, '__qualname__', fn)}{sig}"
    unknown = [p for p in bound if p not in named]
    if unknown:
        raise ValueError(
            f"task {task!r}: {label} has no parameter named {', '.join(map(repr, unknown))}: each "
            "stream and event is passed by its parameter name (the keys of reads, writes and "
            "events), so rename the parameter or the key")
    required = [p.name for p in sig.parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                and p.name not in bound]
    if required:
        raise ValueError(
            f"task {task!r}: parameter{'s' if len(required) > 1 else ''} "
            f"{', '.join(map(repr, required))} of {label} "
            f"{'are' if len(required) > 1 else 'is'} bound to nothing: add "
            f"{'them' if len(required) > 1 else 'it'} to reads, writes or events (or give "
            f"{'them' if len(required) > 1 else 'it'} a default)")


def check_bindings(task: str, bindings: Dict[str, Dict[str, str]],
               streams: Optional[Dict[str, str]], events: Optional[Dict[str, str]]) -> None:
    """Refuses bindings to undeclared streams or events and parameters bound twice, saying
    what to fix (when the declared names are known: `streams` and `events`, None if not)."""
    seen: Dict[str, str] = {}
    for kind, table in bindings.items():
        for param, target in table.items():
            if not isinstance(param, str) or not isinstance(target, str):
                raise TypeError(f"task {task!r}: {kind} maps parameter names to "
                                f"{'event' if kind == 'events' else 'stream'} names (both "
                                f"str), not {param!r}: {target!r}")
            if param in seen:
                raise ValueError(f"task {task!r}: parameter {param!r} is bound twice (in "
                                 f"{seen[param]} and {kind}); each parameter gets one handle")
            seen[param] = kind
            declared = events if kind == "events" else streams
            if declared is None or target in declared:
                continue
            what = "event" if kind == "events" else "stream"
            other = streams if kind == "events" else events
            hint = ""
            if other is not None and target in other:
                hint = (f" ({target!r} is {'a stream' if kind == 'events' else 'an event'}: "
                        f"bind it in {'reads or writes' if kind == 'events' else 'events'})")
            else:
                close = difflib.get_close_matches(target, list(declared), n=1)
                if close:
                    hint = f" (did you mean {close[0]!r}?)"
            names = ", ".join(map(repr, declared)) or "none yet"
            adder = "add_event" if kind == "events" else "add_stream"
            raise ValueError(
                f"task {task!r} {kind[:-1]}s {what} {target!r} (parameter {param!r}), which "
                f"is not declared{hint}: declare it with {adder}({target!r}, ...) before the "
                f"task, or fix the name. Declared {what}s: {names}")


def manifest_names(path: Path) -> Tuple[Optional[Dict[str, str]], Optional[Dict[str, str]],
                                         List[str]]:
    """The stream, event and task names a manifest declares, in order (the library has read it
    already; this is for the early checks and the names of metrics). None when unknown."""
    try:
        text = path.read_text()
    except OSError:
        return None, None, []
    parser: Any = None
    try:
        import tomllib as parser  # Python 3.11+
    except ImportError:
        try:
            import tomli as parser  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:
            pass
    if parser is not None:
        try:
            data = parser.loads(text)
            return ({n: "" for n in data.get("streams", {})},
                    {n: "" for n in data.get("events", {})}, list(data.get("tasks", {})))
        except Exception:
            return None, None, []
    # Without a TOML parser: the table headers shmline_pipeline_save() writes.
    found: Dict[str, List[str]] = {"streams": [], "events": [], "tasks": []}
    for kind, name in re.findall(r'^\[(streams|events|tasks)\.("?)([^"\]]+)\2\]', text, re.M):
        found[kind].append(name)
    return ({n: "" for n in found["streams"]}, {n: "" for n in found["events"]}, found["tasks"])
