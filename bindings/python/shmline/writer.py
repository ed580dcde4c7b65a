"""The writer of a stream: copy, batch and zero-copy writes (see `shmline.stream` for the rules
every blocking call and zero-copy view follows)."""

from __future__ import annotations

from itertools import accumulate
from typing import (
    TYPE_CHECKING, Any, Callable, Dict, Generic, List, Optional, Tuple, overload,
)

import numpy as np

from . import errors
from ._common import (
    FULL, NULL, OK, WRONG_STATE, Array, F, describe, first_slice, given, wait_for,
)
from ._ffi import ffi, lib
from ._handle import Handle
from ._hot import WriteSlotBase, WriterCore, address, nothing
from ._views import Ring, StreamRef, retire
from .errors import SchemaMismatchError, WrongStateError

__all__ = ["Writer", "WriteSlot"]

_write = lib.shmline_writer_write
_write_batch = lib.shmline_writer_write_batch
_reserve = lib.shmline_writer_reserve
_commit = lib.shmline_writer_commit
_abort = lib.shmline_writer_abort
_from_buffer = ffi.from_buffer
_ndarray = np.ndarray


class Writer(Handle, Generic[F]):
    """A writer of a stream (`Stream.writer()`). Closing it ends the stream (of a multi-writer
    stream: closing its last writer does): readers read what is left, then get end of stream.
    Use it from one thread at a time.

    `F` is the type of the stream's frames: `Array` (`ArrayWriter`) for a stream with a schema,
    `bytes` (`BytesWriter`) for one without."""

    def __init__(self, stream: StreamRef, handle: Any) -> None:
        # Use Stream.writer().
        self._own(handle, lib.shmline_writer_close)
        self._stream = stream
        self._name = stream.name
        self._dtype = stream.dtype
        # () and 0 for bytes streams, whose code paths never use them.
        self._shape: Tuple[int, ...] = stream.shape or ()
        self._frame_size: int = stream.frame_size or 0
        # What write()'s hot path compares an array's dtype with, by identity (NumPy's builtin
        # dtypes are singletons): the schema's, or for bytes streams an object no dtype is.
        self._fast_dtype: Any = stream.dtype if stream.dtype is not None else object()
        # The one slot object every reservation re-arms (one reservation at a time): no object
        # to allocate, and for the garbage collector to track, per frame. It holds the writer
        # only while armed (a slot is reserved), so an idle writer is in no reference cycle.
        self._spare: WriteSlot[F] = WriteSlot(self, None, 0, 0)
        self._spare._writer = None
        self._ring: Optional[Ring] = None
        # The array of each slot, by the address of its payload (`reserve`).
        self._arrays: Dict[int, Any] = {}
        # The last array written and its C view: writing the same array again skips from_buffer.
        self._cached_frame: Any = None
        self._cached_c: Any = None
        self._cached_batch: Any = None  # the same for write_batch()
        self._cached_batch_c: Any = None
        self._lens = ffi.new("size_t[]", 0)  # frame lengths of batches of equal frames
        self._written = ffi.new("size_t *")
        self._slot_out = ffi.new("uintptr_t *")  # reserve's `void **slot`, read as an integer
        self._slot_pp = ffi.cast("void **", self._slot_out)
        self._capacity_out = ffi.new("size_t *")
        # The stream's backpressure policy: only "block" waits for space; under the others a
        # full ring is answered at once (FULL under "fail", and for reserve under "drop_newest",
        # whose copy writes discard the frame and return OK).
        self._policy: str = stream.backpressure
        self._waits = self._policy == "block"
        self._drops = self._policy == "drop_newest"
        self._dropped = ffi.new("uint64_t *")  # frames_dropped before the last write
        # The compiled calls of this handle (`_hot`): write() and reserve() try them first.
        self._core: Any = None
        self._fast_write: Callable[[Any, int], Any] = nothing
        self._fast_reserve_slot: Callable[..., Optional[WriteSlot[F]]] = nothing
        self._fast_reserve: Callable[[], Optional[int]] = nothing
        if WriterCore is not None:
            self._core = WriterCore(address(handle), np.ndarray, self._dtype, self._shape,
                                    self._frame_size, not self._drops, self._spare,
                                    self._arrays)
            self._fast_write = self._core.write
            self._fast_reserve_slot = self._core.reserve_slot
            self._fast_reserve = self._core.reserve
            self._commit_now = self._core.commit  # type: ignore[method-assign]

    @property
    def name(self) -> str:
        """The stream's name."""
        return self._name

    @property
    def position(self) -> int:
        """The sequence number the next frame will get: the number of frames written so far."""
        out = ffi.new("uint64_t *")
        self._call(lib.shmline_writer_position(self._h, out))
        return int(out[0])

    @property
    def frames_dropped(self) -> int:
        """Frames this writer discarded because the ring was full (backpressure "drop_newest";
        always 0 under the other policies)."""
        out = ffi.new("uint64_t *")
        self._call(lib.shmline_writer_frames_dropped(self._h, out))
        return int(out[0])

    def wait_for_readers(self, count: int = 1, timeout: Optional[float] = None) -> None:
        """Waits until at least `count` readers are attached (`Timeout` after `timeout` s), so
        that no frame is written before its readers exist."""
        h = self._h
        self._call(wait_for(lambda ns: lib.shmline_writer_wait_for_readers(h, count, ns), timeout,
                            f"{count} readers did not attach to stream {self._name!r}"))

    def write(self, frame: Any, *, timeout: Optional[float] = None, flags: int = 0) -> bool:
        """Copies `frame` into the stream as one frame and returns True once it is written.

        When the slowest lossless reader is a whole ring behind, what happens is the stream's
        backpressure policy: "block" waits for space (`Timeout` after `timeout` s; None waits
        for ever); "fail" raises `Full` at once, writing nothing, whatever the timeout;
        "drop_newest" discards the frame, counts it in `frames_dropped` and returns False (the
        only case that returns False, so `while not w.write(f): sleep()` retries exactly the
        frames that were not written); "drop_oldest" never finds the ring full.

        Schema streams take an array of exactly the stream's dtype and shape
        (`SchemaMismatchError` otherwise; other array-likes go through `np.asarray` first, with
        no conversion of dtype); a non-contiguous array is copied to a contiguous one first.
        Bytes streams take any bytes-like object. `flags` (32 bits) reach readers in
        `FrameInfo.flags`.
        """
        # The compiled call writes a frame of the schema (any bytes-like one on a bytes stream)
        # when there is space now; then nothing else runs.
        if (timeout is None or timeout >= 0) and self._fast_write(frame, flags):
            return True
        # The cffi path, for an array of the schema: one C call that does not wait (so no
        # deadline or clock), the C view of the array reused when it is the last one written.
        if type(frame) is _ndarray and frame.dtype is self._fast_dtype \
                and frame.shape == self._shape:
            if frame is self._cached_frame:
                c = self._cached_c
            else:
                c = self._view_of(frame)
            n = self._frame_size
        else:
            c = self._source(frame)
            n = len(c)
        if timeout is not None and not timeout >= 0:
            first_slice(timeout)  # raises ValueError
        if self._drops:
            return self._write_or_drop(c, n, flags)
        status = _write(self._h, c, n, flags, 0)
        if status != OK:
            self._wait_write(status, c, n, flags, timeout)
        return True

    def _view_of(self, frame: Array) -> Any:
        """The C view of an array of the schema (a contiguous copy's for a non-contiguous one),
        remembered for the next write of the same array."""
        try:
            c = _from_buffer(frame)
        except ValueError:  # not C-contiguous: write a contiguous copy
            frame = np.ascontiguousarray(frame)
            c = _from_buffer(frame)
        self._cached_frame, self._cached_c = frame, c
        return c

    def _write_or_drop(self, c: Any, n: int, flags: int) -> bool:
        """A write under "drop_newest", which never waits: True if the frame was written,
        False if the library discarded it because the ring was full (its drop count grew)."""
        dropped = self._dropped
        self._call(lib.shmline_writer_frames_dropped(self._h, dropped))
        before = dropped[0]
        status = _write(self._h, c, n, flags, 0)
        if status != OK:
            if status == WRONG_STATE and self._recover():
                return self._write_or_drop(c, n, flags)
            self._call(status)
        self._call(lib.shmline_writer_frames_dropped(self._h, dropped))
        return bool(dropped[0] == before)

    def _full(self, what: str) -> errors.Full:
        """The `Full` raised when a policy other than "block" finds the ring full."""
        return errors.Full(
            f"stream {self._name!r} is full and its backpressure policy is {self._policy!r}: "
            f"{what} (try again once readers have caught up, or create the stream with "
            f"backpressure=\"block\" to wait for space)")

    def _wait_space(self, attempt: Callable[[int], int], status: int,
                    timeout: Optional[float], what: str) -> None:
        """The slow path of a call that found the ring full (`status`, of a first `attempt`
        made without waiting): waits for space while the stream's policy is "block" (`Timeout`
        after `timeout` s), raises `Full` (saying `what` was not done) at once otherwise."""

        def settled(ns: int) -> int:
            status = attempt(ns)
            if status == FULL and not self._waits:
                raise self._full(what)
            if status == WRONG_STATE and self._recover():
                status = attempt(0)
            return status

        if status == FULL and not self._waits:
            raise self._full(what)
        if status == WRONG_STATE and self._recover():
            status = settled(0)
        self._call(wait_for(settled, timeout, f"stream {self._name!r} stayed full", status))

    def _wait_write(self, status: int, c: Any, n: int, flags: int,
                    timeout: Optional[float]) -> None:
        """The slow path of a write that found the ring full."""
        h = self._h
        self._wait_space(lambda ns: _write(h, c, n, flags, ns), status, timeout,
                         "the frame was not written")

    def try_write(self, frame: Any, *, flags: int = 0) -> bool:
        """Writes `frame` if there is space now and returns True; returns False, writing
        nothing, if the ring is full (under every policy; "drop_newest" also counts the frame
        in `frames_dropped`). Checks `frame` as `write()` does."""
        if self._fast_write(frame, flags):
            return True
        c = self._source(frame)
        if self._drops:
            return self._write_or_drop(c, len(c), flags)
        status = _write(self._h, c, len(c), flags, 0)
        if status == OK:
            return True
        if status == FULL:
            return False
        if status == WRONG_STATE and self._recover():
            return self.try_write(frame, flags=flags)
        self._call(status)
        return False  # not reached: _call raised

    def _source(self, frame: Any) -> Any:
        """A C view of `frame`'s bytes, after checking `frame` against the schema."""
        if self._dtype is None:
            if frame is self._cached_frame:
                return self._cached_c
            try:
                c = _from_buffer(frame)
            except (TypeError, ValueError, BufferError):
                if not isinstance(frame, (memoryview, np.ndarray)):
                    raise TypeError(
                        f"stream {self._name!r} carries bytes: write a bytes-like object "
                        f"(bytes, bytearray, memoryview, NumPy array), not {type(frame).__name__}"
                    ) from None
                frame = np.ascontiguousarray(frame)
                c = _from_buffer(frame)
            if type(frame) is np.ndarray:  # immutable size: safe to reuse the view
                self._cached_frame, self._cached_c = frame, c
            return c
        if type(frame) is not np.ndarray:
            frame = np.asarray(frame)
        dt = frame.dtype
        if (dt is not self._dtype and dt != self._dtype) or frame.shape != self._shape:
            raise SchemaMismatchError(
                f"stream {self._name!r} takes frames of {describe(self._dtype, self._shape)}, "
                f"not {given(frame)}"
                + (" (convert it with .astype())" if frame.shape == self._shape else "")
            )
        if frame is self._cached_frame:
            return self._cached_c
        return self._view_of(frame)

    def write_batch(self, frames: Any, *, timeout: Optional[float] = None,
                    flags: int = 0) -> None:
        """Writes many frames in order, with far less overhead per frame than `write()`: one
        call into the library for as many frames as the ring has room for.

        Schema streams take one array of shape `(n, *stream.shape)`: frame `i` is `frames[i]`.
        Bytes streams take a sequence of bytes-like objects, or an array whose rows are the
        frames. A full ring is handled as by `write()`: "block" waits for space, and if
        `timeout` passes first raises `Timeout`; "fail" raises `Full` at once; in both cases the
        exception's `written` says how many frames (the first ones) were written. "drop_newest"
        discards (and counts in `frames_dropped`) the frames that do not fit.
        """
        if type(frames) is _ndarray and frames is self._cached_batch and \
                frames.dtype is self._fast_dtype and frames.shape[1:] == self._shape:
            # The same array as the last batch (its shape may have changed in place).
            data, count, frame_len, lens_list = self._cached_batch_c, frames.shape[0], \
                self._frame_size, None
        else:
            data, count, frame_len, lens_list = self._batch_source(frames)
        if count == 0:
            return
        if lens_list is None:
            lens = self._lens
            if len(lens) < count or lens[0] != frame_len:
                lens = self._lens = ffi.new("size_t[]", [frame_len] * count)
            starts: Optional[List[int]] = None
        else:
            lens = ffi.new("size_t[]", lens_list)
            starts = [0, *accumulate(lens_list)]
        if timeout is not None:
            first_slice(timeout)  # raises ValueError for a negative timeout
        written = self._written
        # First as many frames as fit now, without waiting (no clock read); then wait.
        status = _write_batch(self._h, data, lens, count, flags, 0, written)
        if status == OK and written[0] == count:
            return
        h = self._h
        done = written[0] if status == OK else 0

        def attempt(ns: int) -> int:
            """Writes the frames not written yet: "not yet" (FULL) until every one is."""
            nonlocal done
            offset = done * frame_len if starts is None else starts[done]
            status: int = _write_batch(h, data + offset, lens + done, count - done, flags, ns,
                                       written)
            if status != OK:
                return status
            done += written[0]
            return OK if done == count else FULL

        try:
            self._wait_space(attempt, FULL if status == OK else status, timeout,
                             "not every frame was written")
        except (errors.Full, errors.Timeout) as e:
            e.written = done
            e.args = (f"{e.args[0]} ({done} of {count} frames were written)",)
            raise

    def _batch_source(self, frames: Any) -> Tuple[Any, int, int, Optional[List[int]]]:
        """(C data, frame count, frame length, None) for a batch of equal frames, or
        (C data, frame count, 0, frame lengths) for bytes frames of different lengths."""
        if self._dtype is not None:
            if type(frames) is not np.ndarray:
                frames = np.asarray(frames)
            dt = frames.dtype
            if (frames.ndim != len(self._shape) + 1
                    or (dt is not self._dtype and dt != self._dtype)
                    or frames.shape[1:] != self._shape):
                raise SchemaMismatchError(
                    f"stream {self._name!r} takes batches of dtype {self._dtype.str} "
                    f"({self._dtype.name}) shape (n, *{self._shape}), not {given(frames)}")
            frames = np.ascontiguousarray(frames)
            c = _from_buffer(frames)
            self._cached_batch, self._cached_batch_c = frames, c
            return c, frames.shape[0], self._frame_size, None
        if isinstance(frames, np.ndarray):
            if frames.ndim < 1:
                raise ValueError("a batch array needs one row per frame: it has no dimension")
            frames = np.ascontiguousarray(frames)
            count = frames.shape[0]
            return _from_buffer(frames), count, (frames.nbytes // count if count else 0), None
        parts = [f if isinstance(f, bytes) else bytes(f) for f in frames]
        return _from_buffer(b"".join(parts)), len(parts), 0, [len(p) for p in parts]

    def reserve(self, nbytes: Optional[int] = None, *, timeout: Optional[float] = None,
                flags: int = 0) -> WriteSlot[F]:
        """Reserves the next slot to fill in place, without a copy. Use it as a context manager:

            with writer.reserve() as frame:   # a writable ndarray view of the slot
                np.multiply(a, b, out=frame)
            # committed here; aborted (nothing published) if the block raised

        Schema streams give an ndarray of the schema; bytes streams a writable memoryview of
        `nbytes` bytes (default: the maximum frame size), committed at that length, or at the
        length given to `WriteSlot.commit()`. Waits for space as `write()` does under "block";
        under "fail" and "drop_newest" a full ring raises `Full` at once (there is no frame to
        drop yet), as the C `shmline_writer_reserve` returns `SHMLINE_FULL`. After the block the
        view is read-only (module docs of `shmline.stream`).
        """
        # The compiled call reserves a slot free now and re-arms the slot object (schema
        # streams, no slot reserved, valid arguments); then nothing else runs.
        slot = self._fast_reserve_slot(self, nbytes, timeout, flags)
        if slot is not None:
            return slot
        return self._reserve(nbytes, timeout, flags)

    def _reserve(self, nbytes: Optional[int], timeout: Optional[float],
                 flags: int) -> WriteSlot[F]:
        """`reserve()` in full: checks, waits, raises, any stream. (Apart from `reserve()`, so
        that its first line runs without the cells of this one's closures.)"""
        if self._spare._writer is not None:
            raise WrongStateError("a slot is already reserved: commit or abort it first")
        max_frame = self._stream.max_frame_size
        if nbytes is not None:
            if self._dtype is not None:
                raise ValueError("nbytes is for bytes streams: a schema fixes the frame size")
            if not 0 <= nbytes <= max_frame:
                raise errors.FrameTooLargeError(
                    f"nbytes {nbytes} is outside 0..{max_frame}, the stream's frame sizes")
        if timeout is not None:
            first_slice(timeout)  # raises ValueError for a negative timeout
        address = self._fast_reserve()  # the compiled call: a slot free now
        if address is None:
            status = _reserve(self._h, 0, self._slot_pp, self._capacity_out)
            if status != OK:
                h, slot_pp, capacity_out = self._h, self._slot_pp, self._capacity_out
                self._wait_space(lambda ns: _reserve(h, ns, slot_pp, capacity_out), status,
                                 timeout, "no slot was reserved")
            address = self._slot_out[0]
        if self._dtype is not None:
            # A new view per reservation (made read-only after it), of an array of the slot
            # made once: far cheaper than an array over the ring buffer each time.
            array = self._arrays.get(address)
            if array is None:
                array = self._array_at(address)
            view: Any = array.view()
            length = self._frame_size
        else:
            ring, offset = self._slot_at(address)
            length = max_frame if nbytes is None else nbytes
            view = ring.writable[offset:offset + length]
        slot = self._spare
        slot.view = view
        slot._length = length
        slot._flags = flags
        slot._writer = self
        return slot

    def _slot_at(self, address: int) -> Tuple[Ring, int]:
        """The ring buffer (built on the first reservation) and the offset in it of the slot
        the library reserved at `address`, checked against the layout."""
        ring = self._ring
        if ring is None:
            ring = self._ring = Ring(self._stream, address, self.position)
        offset = address - ring.base
        if not 0 <= offset < ring.length or offset % ring.slot_size:
            offset = ring.offset(address, self.position)  # raises: not where the layout says
        return ring, offset

    def _array_at(self, address: int) -> Any:
        """The writable array of the schema over the slot at `address`, kept for the next
        reservations of that slot."""
        ring, offset = self._slot_at(address)
        array = self._arrays[address] = _ndarray(self._shape, self._dtype, ring.buffer, offset)
        return array

    def _recover(self) -> bool:
        """After WRONG_STATE with no slot reserved from Python: a reserve interrupted (Ctrl-C)
        just after the library reserved a slot left it reserved; abort it. Returns whether it
        did (if not, the WRONG_STATE had another cause)."""
        if self._spare._writer is not None or self._h == NULL:
            return False
        return bool(_abort(self._h) == OK)

    def _commit_now(self, nbytes: int, flags: int) -> int:
        """Publishes the reserved slot through cffi (a build without the compiled calls): the
        library's status."""
        return int(_commit(self._h, nbytes, flags))

    def close(self) -> None:
        """Closes the writer and ends the stream: readers read the frames left, then get end of
        stream. A reserved slot is dropped unpublished. Closing twice does nothing."""
        if self._core is not None:
            self._core.detach()  # before the handle goes: it must not be used after
        super().close()
        self._cached_frame = self._cached_c = None
        self._cached_batch = self._cached_batch_c = None
        # Views hold the mapping by themselves; this handle no longer needs the stream.
        self._ring = None
        self._arrays = {}
        self._stream.pin = NULL
        if self._spare._writer is not None:
            self._spare._finish()
        self._spare.view = None  # its last view must not pin the mapping

    def __repr__(self) -> str:
        return f"<shmline.Writer of {self._name!r}{' closed' if self.closed else ''}>"

    def _what(self) -> str:
        return f"the writer of stream {self._name!r}"


class _PySlot:
    """The `with` protocol of `WriteSlot` in Python, for builds without the compiled one
    (`_fastpath.WriteSlotBase`, which does the same in C)."""

    __slots__ = ("_writer", "view", "_length", "_flags")

    _writer: Optional[Writer[Any]]
    view: Any
    _length: int
    _flags: int

    def __enter__(self) -> Any:
        return self.view

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        writer = self._writer
        if writer is None:
            return  # committed or aborted inside the block
        if exc_type is None:
            # commit() with its defaults, inlined: the end of every zero-copy write.
            try:
                status = writer._commit_now(self._length, self._flags)
            finally:
                self._finish()
            if status != OK:
                writer._call(status)
        else:
            self.abort()

    if TYPE_CHECKING:  # WriteSlot's
        def abort(self) -> None: ...
        def _finish(self) -> None: ...


# The base of WriteSlot: its `with` protocol, compiled when this build has it.
if TYPE_CHECKING or WriteSlotBase is None:
    _SlotBase = _PySlot
else:
    _SlotBase = WriteSlotBase


class WriteSlot(_SlotBase, Generic[F]):
    """A reserved slot (`Writer.reserve()`): a context manager whose `with` gives the writable
    view (an `Array`, or a `memoryview` for a bytes stream), committed when the block ends
    normally and aborted when it raises. A writer reuses one such object for its reservations,
    which come one at a time: once committed or aborted, it stands for the writer's next
    reservation."""

    __slots__ = ()

    def __init__(self, writer: Writer[F], view: Any, length: int, flags: int) -> None:
        self._writer = writer
        #: The writable view of the slot in shared memory.
        self.view = view
        self._length = length
        self._flags = flags

    if TYPE_CHECKING:  # the view's type; at run time, the base's __enter__
        @overload
        def __enter__(self: WriteSlot[Array]) -> Array: ...
        @overload
        def __enter__(self: WriteSlot[bytes]) -> memoryview: ...
        def __enter__(self) -> Any: ...

    def commit(self, nbytes: Optional[int] = None, *, flags: Optional[int] = None) -> None:
        """Publishes the slot: its first `nbytes` bytes (default: the frame size of the schema,
        or the length reserved for a bytes stream), with `flags` (default: those given to
        `reserve()`)."""
        writer = self._writer
        if writer is None:
            raise WrongStateError("this slot was already committed or aborted")
        if nbytes is not None and nbytes != self._length:
            if writer._dtype is not None:
                raise SchemaMismatchError(
                    f"a frame of stream {writer._name!r} is {self._length} bytes, not {nbytes}")
            if not 0 <= nbytes <= self._length:
                raise errors.FrameTooLargeError(
                    f"cannot commit {nbytes} bytes of a slot reserved for {self._length} (the "
                    "slot is still reserved)")
        try:
            status = writer._commit_now(self._length if nbytes is None else nbytes,
                                        self._flags if flags is None else flags)
        finally:
            self._finish()
        if status != OK:
            writer._call(status)

    def abort(self) -> None:
        """Drops the slot without publishing anything."""
        writer = self._writer
        if writer is None:
            raise WrongStateError("this slot was already committed or aborted")
        try:
            status = _abort(writer._h)
        finally:
            self._finish()
        if writer._h != NULL:
            writer._call(status)

    def _finish(self) -> None:
        self._writer = None
        view = self.view
        if type(view) is memoryview:
            retire(view)
        else:  # an array: later writes raise ValueError instead of changing a later frame
            view.setflags(write=False)
