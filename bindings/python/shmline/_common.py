"""What the stream, writer and reader modules share: status constants, the hot-path C functions,
timeouts cut into signal-friendly slices, handle destructors, and schema helpers."""

from __future__ import annotations

import os
import time
from typing import (
    Any, Callable, Dict, Literal, Mapping, NamedTuple, Optional, Sequence, Tuple, TypeVar, Union,
    get_args,
)

import numpy as np
import numpy.typing as npt

from . import errors
from ._ffi import ffi, lib

ShapeLike = Union[int, Sequence[int]]
#: A frame of a schema stream: a NumPy array of the stream's dtype and shape.
Array = npt.NDArray[Any]
#: A dtype a schema can be given as: a NumPy dtype, a scalar type (`np.float32`) or a string
#: ("<f4", "float32").
DType = Union["np.dtype[Any]", type, str]
#: The type of a stream's frames: `Array` for a stream with a schema, `bytes` for one without.
#: `Stream.create` picks it from `dtype`; a stream opened by name is `Stream[Any]`.
F = TypeVar("F")

# The longest single wait inside the C library. Python runs signal handlers (Ctrl-C) only
# between C calls, so a blocking call waits in slices of at most this.
SLICE_NS = 50_000_000

OK: int = lib.SHMLINE_OK
FULL: int = lib.SHMLINE_FULL
EMPTY: int = lib.SHMLINE_EMPTY
TIMEOUT: int = lib.SHMLINE_TIMEOUT
WRONG_STATE: int = lib.SHMLINE_WRONG_STATE
NOT_FOUND: int = lib.SHMLINE_NOT_FOUND
BUFFER_TOO_SMALL: int = lib.SHMLINE_BUFFER_TOO_SMALL
NULL = ffi.NULL

# The state of a stream's writer (of a multi-writer stream: of its writers as a whole).
WRITER_STATES: Dict[int, str] = {
    lib.SHMLINE_WRITER_STATE_NONE: "none",
    lib.SHMLINE_WRITER_STATE_ACTIVE: "active",
    lib.SHMLINE_WRITER_STATE_CLOSED: "closed",
    lib.SHMLINE_WRITER_STATE_DEAD: "dead",
}

#: How a reader or writer waits: spin briefly then sleep, spin only (lowest latency, burns a
#: core), or sleep at once.
Wait = Literal["adaptive", "busy_spin", "block"]
#: Where a new reader starts: frames published after it opened, the newest frame, or the oldest
#: still in the ring.
Start = Literal["next", "newest", "oldest"]
#: What writers do when the ring is full.
Backpressure = Literal["block", "fail", "drop_newest", "drop_oldest"]
#: An event is a switch ("flag") or a counter of signals ("counting").
EventMode = Literal["flag", "counting"]

# The C value of each option string, in the order of the Literal types above.
WAITS: Dict[str, int] = dict(zip(get_args(Wait), (
    lib.SHMLINE_WAIT_ADAPTIVE, lib.SHMLINE_WAIT_BUSY_SPIN, lib.SHMLINE_WAIT_BLOCK)))
STARTS: Dict[str, int] = dict(zip(get_args(Start), (
    lib.SHMLINE_START_NEXT, lib.SHMLINE_START_NEWEST, lib.SHMLINE_START_OLDEST)))
BACKPRESSURES: Dict[str, int] = dict(zip(get_args(Backpressure), (
    lib.SHMLINE_BACKPRESSURE_BLOCK, lib.SHMLINE_BACKPRESSURE_FAIL,
    lib.SHMLINE_BACKPRESSURE_DROP_NEWEST, lib.SHMLINE_BACKPRESSURE_DROP_OLDEST)))
EVENT_MODES: Dict[str, int] = dict(zip(get_args(EventMode), (
    lib.SHMLINE_EVENT_FLAG, lib.SHMLINE_EVENT_COUNTING)))

monotonic = time.monotonic


class FrameInfo(NamedTuple):
    """Metadata of a frame: sequence number (0 for the stream's first frame, consecutive for a
    lossless reader), commit time (`CLOCK_MONOTONIC` ns, comparable across processes), payload
    length in bytes, the writer's application flags, and how many frames a lossy reader missed
    just before it."""

    seq: int
    timestamp_ns: int
    len: int
    flags: int
    missed: int


# The layout of shmline_frame_info, to look at a batch's infos as one NumPy array.
INFO_DTYPE = np.dtype(
    [("seq", "<u8"), ("timestamp_ns", "<u8"), ("len", "<u4"), ("flags", "<u4"), ("missed", "<u8")]
)
assert ffi.sizeof("shmline_frame_info") == INFO_DTYPE.itemsize


def first_slice(timeout: Optional[float]) -> int:
    """The first wait slice, in ns, of a call given `timeout` seconds (None: for ever; so is
    any timeout too long to ever pass, up to `float('inf')`)."""
    if timeout is None:
        return SLICE_NS
    if not timeout >= 0:  # negative or NaN
        raise ValueError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}")
    return slice_of(timeout)


def slice_of(seconds: float) -> int:
    """The wait slice, in ns, for `seconds` (>= 0) left: at most `SLICE_NS`. Clamped before the
    conversion, so an infinite or huge timeout gives a full slice, never an
    `OverflowError` (nor an int too large for a float)."""
    return SLICE_NS if seconds >= SLICE_NS / 1e9 else int(seconds * 1e9)


def name_bytes(name: Any, what: str = "name") -> bytes:
    """`name` (a `str`) as the library takes names: `TypeError` naming the argument `what` for
    anything else (the library checks the characters and the length)."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, not {type(name).__name__} ({name!r})")
    return name.encode()


# Timeouts of at least this many seconds (about 31 million years) never pass: they wait for ever
# like None, whatever their size (`float('inf')`, `1e300`, `10**400`).
FOREVER_S = 1e15


def deadline_of(timeout: Optional[float]) -> Optional[float]:
    """The `monotonic()` time a call given `timeout` seconds must end by (None: never)."""
    return None if timeout is None or timeout >= FOREVER_S else monotonic() + timeout


def next_slice(deadline: Optional[float], timeout: Optional[float], what: str) -> int:
    """The next wait slice in ns before `deadline`; raises `Timeout` (saying `what` did not
    happen) once it has passed."""
    if deadline is None:
        return SLICE_NS
    left = deadline - monotonic()
    if left <= 0:
        raise errors.Timeout(f"{what} within the timeout of {timeout} s")
    return slice_of(left)


def wait_for(attempt: Callable[[int], int], timeout: Optional[float], what: str,
             status: Optional[int] = None) -> int:
    """The package's one wait loop. Calls `attempt(ns)`, a library call that waits at most `ns`
    nanoseconds, slice by slice (so that Python handles Ctrl-C between slices) while it returns
    TIMEOUT, EMPTY or FULL ("not yet"), and returns the first other status. Raises `Timeout`
    saying `what` did not happen once `timeout` seconds have passed (None: waits for ever).

    `status` is what a first attempt made without waiting returned, if the caller made one (the
    hot paths do, so that no clock is read when a frame or slot is there at once; they check the
    timeout before it); otherwise the first attempt waits the first slice.
    """
    deadline = deadline_of(timeout)
    if status is None:
        status = attempt(first_slice(timeout))  # raises ValueError for a bad timeout
    while status == TIMEOUT or status == EMPTY or status == FULL:
        status = attempt(next_slice(deadline, timeout, what))
    return status


def closer(close: Any) -> Any:
    """A destructor for `ffi.gc` that closes a handle only in the process that opened it: a
    forked child must not close (and so end) its parent's writer or reader."""
    pid = os.getpid()

    def destroy(handle: Any) -> None:
        if os.getpid() == pid:
            close(handle)

    return destroy


def check(status: int) -> None:
    """Raises the exception of `status` unless it is OK."""
    if status != OK:
        errors.raise_for(status)


def option(table: Mapping[str, int], value: object, what: str) -> int:
    """The C value of option `what` given as the string `value`; `InvalidArgumentError` (a
    `ValueError`) naming the bad value and the accepted ones otherwise."""
    try:
        return table[value]  # type: ignore[index]
    except (KeyError, TypeError):  # TypeError: unhashable
        accepted = ", ".join(map(repr, table))
        raise errors.InvalidArgumentError(
            f"{what} must be one of {accepted}, not {value!r}") from None


def wait_strategy(wait: object) -> int:
    """The C wait strategy of `wait` (see `Wait`)."""
    return option(WAITS, wait, "wait")


def normalise_shape(shape: Optional[ShapeLike]) -> Tuple[int, ...]:
    if shape is None:
        return ()
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def normalise_dtype(dtype: Any) -> np.dtype[Any]:
    dt: np.dtype[Any] = np.dtype(dtype)
    if dt.fields is not None or dt.subdtype is not None or dt.hasobject:
        raise ValueError(
            f"dtype {dt} cannot be a stream schema: use a plain numeric, bool, bytes (S), str (U) "
            "or datetime dtype (structured, sub-array and object dtypes are not supported: send "
            "them as bytes, or as a plain array of their fields)"
        )
    return dt


def schema_args(dtype: Any, shape: Optional[ShapeLike]) -> Tuple[Any, int, Any, Any]:
    """(dtype, ndim, shape, keep-alive) of a schema for the C options structs; NULLs for none."""
    if dtype is None:
        if shape is not None:
            raise ValueError("a shape needs a dtype: pass dtype= as well (or neither, for bytes)")
        return NULL, 0, NULL, None
    dims = normalise_shape(shape)
    dtype_c = ffi.new("char[]", normalise_dtype(dtype).str.encode())
    shape_c = ffi.new("uint64_t[]", list(dims)) if dims else NULL
    return dtype_c, len(dims), shape_c, (dtype_c, shape_c)


def describe(dtype: Optional[np.dtype], shape: Optional[Tuple[int, ...]]) -> str:
    """A schema in words, for messages."""
    if dtype is None:
        return "bytes (no schema)"
    return f"dtype {dtype.str} ({dtype.name}) shape {shape}"


def given(array: np.ndarray) -> str:
    """An array's dtype and shape in words, for messages."""
    return f"dtype {array.dtype.str} ({array.dtype.name}) shape {array.shape}"
