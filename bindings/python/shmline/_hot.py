"""The compiled per-frame calls (`shmline._fastpath`, bindings/python/csrc/fastpath.c), when this
build has them and they read NumPy arrays right.

API-mode builds compile them beside the cffi module; ABI-mode wheels carry them compiled against
the limited API of CPython 3.11 (`_fastpath.abi3.so`), used on CPython 3.11 and later. Other
builds and versions (and any build where the check below fails) have `WriterCore`,
`ReaderCore`, `WriteSlotBase` and `ReadSlotBase` None, and writers and readers then use their
cffi paths and the Python `with` protocol of their slots only. Either way the Python methods
keep every check, message and wait: the compiled calls only do the common case sooner, and say
when they did nothing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Optional

import numpy as np

from ._ffi import ffi

WriterCore: Optional[Any] = None
ReaderCore: Optional[Any] = None
WriteSlotBase: Optional[Any] = None
ReadSlotBase: Optional[Any] = None


def _reads_numpy_right(fastpath: Any) -> bool:
    """Whether the compiled module's reading of NumPy's array struct matches what NumPy says of
    a few arrays (contiguous, strided, read-only, 0-d, of different dtypes), and its writing of
    the flags (a writer's view made read-only after its block) is what NumPy then reports and
    enforces, leaving the array it views writable."""
    base = np.zeros((4, 6), np.float32)
    readonly = np.arange(5, dtype=np.int64)
    readonly.setflags(write=False)
    for a in (base, base[:, 1:4], readonly, np.array(3, np.uint8), np.empty((2, 3, 4), "<U3")):
        expected = (a.__array_interface__["data"][0], a.ndim, a.shape, a.dtype,
                    bool(a.flags.c_contiguous), bool(a.flags.writeable))
        got = fastpath.facts(a)
        if got[:3] != expected[:3] or got[3] is not expected[3] or got[4:] != expected[4:]:
            return False
    view = base.view()
    fastpath.seal(view, np.ndarray)
    if view.flags.writeable or not base.flags.writeable or not view.flags.c_contiguous:
        return False
    try:
        view[0, 0] = 1
    except ValueError:
        return fastpath.facts(view)[5] is False
    return False


def _loadable() -> bool:
    """Whether this interpreter may load this build's compiled module: an API-mode build's is
    built for it; an ABI-mode wheel's (`_fastpath.abi3.so`, limited API of CPython 3.11) needs
    CPython 3.11 or later, and the wheel also installs on 3.9 and 3.10, which go without it."""
    spec = importlib.util.find_spec(f"{__package__}._fastpath")
    if spec is None or spec.origin is None:
        return False  # a build without it
    if ".abi3." in os.path.basename(spec.origin):
        return sys.implementation.name == "cpython" and sys.version_info >= (3, 11)
    return True


def _load() -> Optional[Any]:
    """The compiled module, if this interpreter may load it, it loads and it reads NumPy arrays
    right; else None."""
    if not _loadable():
        return None
    try:
        from . import _fastpath  # type: ignore[attr-defined]
    except ImportError:  # a module this interpreter cannot load after all
        return None
    return _fastpath if _reads_numpy_right(_fastpath) else None


_fastpath_module = _load()
if _fastpath_module is not None:
    WriterCore, ReaderCore = _fastpath_module.WriterCore, _fastpath_module.ReaderCore
    WriteSlotBase, ReadSlotBase = _fastpath_module.WriteSlotBase, _fastpath_module.ReadSlotBase


def address(pointer: Any) -> int:
    """The address a cffi pointer holds, as the compiled calls take handles."""
    return int(ffi.cast("uintptr_t", pointer))


def nothing(*_: Any) -> None:
    """What a missing compiled call does: nothing (None; falsy, so callers take their cffi
    path)."""
    return None
