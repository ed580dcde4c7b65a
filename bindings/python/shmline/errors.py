"""Exceptions: one class per C status code, all under `ShmlineError`.

Every failing call of the C library returns a status code (`include/shmline.h`) and records a
message saying what went wrong and usually how to fix it; the binding raises the class of that
status with that message. Each class also derives from the closest built-in exception, so generic
handlers work: `Timeout` is a `TimeoutError`, `NotFoundError` a `FileNotFoundError`,
`PermissionDeniedError` a `PermissionError`, argument errors are `ValueError`s, and so on.

The outcomes that are not errors in C (`FULL`, `EMPTY`, `TIMEOUT`, `END_OF_STREAM`,
`WRITER_DEAD`) are exceptions here only where a call cannot return its usual value: a blocking
`read()` that times out raises `Timeout`; `try_read()` returns `None` instead of raising `Empty`.
"""

from __future__ import annotations

from typing import NoReturn, Optional

from ._ffi import lib, string

__all__ = [
    "ShmlineError",
    "Full",
    "Empty",
    "Timeout",
    "EndOfStream",
    "WriterDead",
    "InvalidArgumentError",
    "NullPointerError",
    "InvalidNameError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "NotShmlineError",
    "VersionMismatchError",
    "CorruptError",
    "SchemaMismatchError",
    "WriterExistsError",
    "TooManyReadersError",
    "FrameTooLargeError",
    "BufferTooSmallError",
    "WrongStateError",
    "NoSpaceError",
    "OsError",
    "PanicError",
    "UnsupportedError",
    "PipelineFailedError",
    "TooManyWritersError",
    "ClosedError",
]


class ShmlineError(Exception):
    """Base of every shmline exception.

    `status` is the C status code (`None` for errors found by the Python binding itself) and
    `status_name` its name in the C header without the `SHMLINE_` prefix. Every exception takes
    one argument, its message.
    """

    status: Optional[int] = None

    @property
    def status_name(self) -> str:
        if self.status is None:
            return ""
        return string(lib.shmline_status_str(self.status))


class Full(ShmlineError):
    """The ring is full and the call was not allowed to wait: the stream's backpressure policy
    is "fail" (or "drop_newest", for `Writer.reserve()`).

    `written` is set by `Writer.write_batch()`: how many of its frames were written before the
    ring filled (the rest were not).
    """

    status = lib.SHMLINE_FULL
    written: int = 0


class Empty(ShmlineError):
    """No frame is available (or an event is not set) and the call was not allowed to wait."""

    status = lib.SHMLINE_EMPTY


class Timeout(ShmlineError, TimeoutError):
    """A blocking call reached its timeout.

    `written` is set by `Writer.write_batch()`: how many of its frames were written before the
    timeout (the rest were not).
    """

    status = lib.SHMLINE_TIMEOUT
    written: int = 0


class EndOfStream(ShmlineError):
    """The writer closed the stream and this reader has read every frame."""

    status = lib.SHMLINE_END_OF_STREAM


class WriterDead(ShmlineError):
    """The writer's process died without closing the stream; this reader has read every frame it
    published."""

    status = lib.SHMLINE_WRITER_DEAD


class InvalidArgumentError(ShmlineError, ValueError):
    """An argument is out of range or inconsistent (the message says which)."""

    status = lib.SHMLINE_INVALID_ARGUMENT


class NullPointerError(ShmlineError, ValueError):
    """A required pointer was NULL: a bug in the binding, please report it."""

    status = lib.SHMLINE_NULL_POINTER


class InvalidNameError(ShmlineError, ValueError):
    """A stream or event name is empty, too long or has a character outside `A-Za-z0-9_.-`."""

    status = lib.SHMLINE_INVALID_NAME


class NotFoundError(ShmlineError, FileNotFoundError):
    """No stream or event of that name exists."""

    status = lib.SHMLINE_NOT_FOUND


class AlreadyExistsError(ShmlineError, FileExistsError):
    """A stream or event of that name already exists."""

    status = lib.SHMLINE_ALREADY_EXISTS


class PermissionDeniedError(ShmlineError, PermissionError):
    """The operating system refused access to the segment."""

    status = lib.SHMLINE_PERMISSION_DENIED


class NotShmlineError(ShmlineError):
    """The segment exists but is not a shmline segment of the expected kind."""

    status = lib.SHMLINE_NOT_SHMLINE


class VersionMismatchError(ShmlineError):
    """The segment was made by a shmline with another layout version."""

    status = lib.SHMLINE_VERSION_MISMATCH


class CorruptError(ShmlineError):
    """Shared memory holds an impossible value (another process damaged it), or a checksum
    failed."""

    status = lib.SHMLINE_CORRUPT


class SchemaMismatchError(ShmlineError, ValueError):
    """A frame, buffer or required schema does not match the stream's dtype and shape."""

    status = lib.SHMLINE_SCHEMA_MISMATCH


class WriterExistsError(ShmlineError):
    """The single-writer stream already has (or had) a writer: a stream created with
    `max_writers=1` (the default) has one writer for its whole life. Create it with a larger
    `max_writers` for several writers."""

    status = lib.SHMLINE_WRITER_EXISTS


class TooManyReadersError(ShmlineError):
    """Every reader slot of the stream is taken by a live reader."""

    status = lib.SHMLINE_TOO_MANY_READERS


class FrameTooLargeError(ShmlineError, ValueError):
    """A frame is longer than the stream's maximum frame size."""

    status = lib.SHMLINE_FRAME_TOO_LARGE


class BufferTooSmallError(ShmlineError, ValueError):
    """The buffer given to read into is too small for the frame; nothing was consumed."""

    status = lib.SHMLINE_BUFFER_TOO_SMALL


class WrongStateError(ShmlineError):
    """The handle is in the wrong state for the call (commit without reserve, reading while a
    frame is acquired, writing after the writer closed...)."""

    status = lib.SHMLINE_WRONG_STATE


class NoSpaceError(ShmlineError, OSError):
    """Not enough shared memory (`/dev/shm` is full or a limit was hit)."""

    status = lib.SHMLINE_NO_SPACE


class OsError(ShmlineError, OSError):
    """Another operating-system error (the message has the details)."""

    status = lib.SHMLINE_OS_ERROR


class PanicError(ShmlineError):
    """A bug in shmline's Rust core was caught at the C boundary: please report the message."""

    status = lib.SHMLINE_PANIC


class UnsupportedError(ShmlineError):
    """The call is not supported for this handle (zero-copy acquire on a lossy reader)."""

    status = lib.SHMLINE_UNSUPPORTED


class PipelineFailedError(ShmlineError):
    """A pipeline task failed; the message names the task and its exit status or signal."""

    status = lib.SHMLINE_PIPELINE_FAILED


class TooManyWritersError(ShmlineError):
    """Every writer slot of a multi-writer stream is taken by a live writer (create the stream
    with a larger `max_writers`)."""

    status = lib.SHMLINE_TOO_MANY_WRITERS


class ClosedError(ShmlineError, ValueError):
    """The stream, writer, reader or event was closed; this call needs it open."""


_BY_STATUS = {
    cls.status: cls
    for cls in [
        Full, Empty, Timeout, EndOfStream, WriterDead, InvalidArgumentError, NullPointerError,
        InvalidNameError, NotFoundError, AlreadyExistsError, PermissionDeniedError,
        NotShmlineError, VersionMismatchError, CorruptError, SchemaMismatchError,
        WriterExistsError, TooManyReadersError, FrameTooLargeError, BufferTooSmallError,
        WrongStateError, NoSpaceError, OsError, PanicError, UnsupportedError,
        PipelineFailedError, TooManyWritersError,
    ]
}


# The C functions the library's messages may name as the way out (e.g. of a stale name, in an
# `AlreadyExistsError`), with the call a Python caller makes instead.
_PYTHON_CALLS = {
    "shmline_stream_remove_stale": "shmline.Stream.remove_stale",
    "shmline_event_remove_stale": "shmline.Event.remove_stale",
}


def error_for(status: int) -> ShmlineError:
    """The exception for a status code the library just returned on this thread, carrying the
    library's message about that call (naming Python calls where it names C functions)."""
    message = string(lib.shmline_last_error_message())
    if not message:
        message = string(lib.shmline_status_describe(status))
    elif "shmline_" in message:
        for c_call, python_call in _PYTHON_CALLS.items():
            message = message.replace(c_call, python_call)
    cls = _BY_STATUS.get(status)
    if cls is None:
        error = ShmlineError(message)
        error.status = status
        return error
    return cls(message)


def raise_for(status: int) -> NoReturn:
    """Raises `error_for(status)`."""
    raise error_for(status)
