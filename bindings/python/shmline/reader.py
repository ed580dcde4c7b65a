"""Readers of a stream: copy, batch and zero-copy reads, and iteration to the end of the stream
(see `shmline.stream` for the rules every blocking call and zero-copy view follows)."""

# The frames come from the C library through cffi, which mypy sees as Any: the hot paths return
# them as the reader's frame type without a cast() call per frame.
# mypy: disable-error-code="no-any-return"

from __future__ import annotations

from typing import (
    TYPE_CHECKING, Any, Callable, Dict, Generic, Iterator, List, Optional, Tuple, overload,
)

import numpy as np

from . import errors
from ._common import (
    INFO_DTYPE, NULL, OK, WRONG_STATE, Array, F, FrameInfo, describe,
    first_slice, given, wait_for,
)
from ._ffi import ffi, lib
from ._handle import Handle
from ._hot import ReaderCore, ReadSlotBase, address, nothing
from ._views import Ring, StreamRef, retire
from .errors import SchemaMismatchError, WrongStateError

__all__ = ["Reader", "ReadSlot"]

_read = lib.shmline_reader_read
_read_batch = lib.shmline_reader_read_batch
_acquire = lib.shmline_reader_acquire
_release = lib.shmline_reader_release
_from_buffer = ffi.from_buffer
_unpack = ffi.unpack
_ndarray = np.ndarray
_empty = np.empty

# Frames up to this many bytes are read by read() into a reused array and copied out: a copy
# of a small array costs less than a new array plus a new C view of it; above, the second copy
# costs more.
SMALL_FRAME = 4096


class Reader(Handle, Generic[F]):
    """A reader of a stream (`Stream.reader()`): it sees every frame in order (a lossy reader:
    every frame it was not lapped on). Iterating over it yields frames until end of stream. Use
    it from one thread at a time.

    `F` is the type of its frames: `Array` (`ArrayReader`) for a stream with a schema, `bytes`
    (`BytesReader`) for one without."""

    def __init__(self, stream: StreamRef, handle: Any, lossy: bool) -> None:
        # Use Stream.reader().
        self._own(handle, lib.shmline_reader_close)
        self._stream = stream
        self._name = stream.name
        self._lossy = lossy
        self._dtype = stream.dtype
        # () and 0 for bytes streams, whose code paths never use them.
        self._shape: Tuple[int, ...] = stream.shape or ()
        self._frame_size: int = stream.frame_size or 0
        self._max_frame_size = stream.max_frame_size
        # The one slot object every acquire re-arms (one frame at a time): no object to
        # allocate, and for the garbage collector to track, per frame. It holds the reader only
        # while armed (a frame is acquired), so an idle reader is in no reference cycle.
        self._spare: ReadSlot[F] = ReadSlot(self, None)
        self._spare._reader = None
        self._ring: Optional[Ring] = None
        # The array view of each slot, by the address of its payload (`acquire`).
        self._views: Dict[int, Any] = {}
        self._info = ffi.new("shmline_frame_info *")
        self._data_out = ffi.new("uintptr_t *")  # acquire's `const void **data`, as an integer
        self._data_pp = ffi.cast("const void **", self._data_out)
        self._count = ffi.new("size_t *")
        self._infos = ffi.new("shmline_frame_info[]", 0)
        self._infos_np = np.zeros(0, INFO_DTYPE)  # a NumPy view of _infos
        # The `len` words of _infos as 32-bit words, and the bytes they hold when every frame
        # of a batch has the schema's size.
        self._lens_words = memoryview(b"").cast("I")
        self._lens_expected = b""
        self._batch_count = 0
        self._bytes_buf: Any = None  # scratch buffer of bytes reads, made on first use
        # The last arrays read_into() and read_batch_into() filled, their C views and sizes.
        self._cached_out: Any = None
        self._cached_c: Any = None
        self._cached_cap = 0
        self._cached_batch: Any = None
        self._cached_batch_c: Any = None
        self._cached_batch_cap = 0
        # read() of small frames reads into this array and returns a copy of it.
        self._scratch: Any = None
        self._scratch_c: Any = None
        if self._dtype is not None and self._frame_size <= SMALL_FRAME:
            self._scratch = np.empty(self._shape, self._dtype)
            self._scratch_c = _from_buffer(self._scratch)
        # The compiled calls of this handle (`_hot`): read(), read_into() and acquire() try
        # them first.
        self._core: Any = None
        self._fast_read: Callable[[], Any] = nothing
        self._fast_read_into: Callable[[Any], Optional[int]] = nothing
        self._fast_acquire_slot: Callable[..., Optional[ReadSlot[F]]] = nothing
        self._fast_acquire: Callable[[], Optional[int]] = nothing
        if ReaderCore is not None:
            self._core = ReaderCore(address(handle), np.ndarray, self._dtype, self._shape,
                                    self._frame_size, self._max_frame_size, address(self._info),
                                    self._scratch, self._spare, self._views)
            self._fast_read = self._core.read
            self._fast_read_into = self._core.read_into
            self._fast_acquire_slot = self._core.acquire_slot
            self._fast_acquire = self._core.acquire
            self._release_now = self._core.release  # type: ignore[method-assign]

    @property
    def name(self) -> str:
        """The stream's name."""
        return self._name

    @property
    def lossy(self) -> bool:
        """Whether the reader is lossy."""
        return self._lossy

    @property
    def info(self) -> FrameInfo:
        """The metadata of the last frame read or acquired (of a batch: of its last frame)."""
        i = self._info
        return FrameInfo(int(i.seq), int(i.timestamp_ns), int(i.len), int(i.flags),
                         int(i.missed))

    @property
    def batch_info(self) -> Array:
        """The metadata of every frame of the last batch read: a structured array (a copy) with
        fields seq, timestamp_ns, len, flags and missed."""
        return self._infos_np[: self._batch_count].copy()

    @property
    def position(self) -> int:
        """The sequence number of the next frame this reader will read."""
        out = ffi.new("uint64_t *")
        self._call(lib.shmline_reader_position(self._h, out))
        return int(out[0])

    @property
    def missed(self) -> int:
        """How many frames this reader has missed in all: frames a lossy reader was lapped on,
        and sequence numbers of a multi-writer stream that were skipped (claimed by a writer
        that died before publishing them). 0 for a lossless reader of a single-writer stream."""
        out = ffi.new("uint64_t *")
        self._call(lib.shmline_reader_missed(self._h, out))
        return int(out[0])

    def read(self, *, timeout: Optional[float] = None) -> F:
        """The next frame: a new array of the schema, or `bytes` for a bytes stream. Waits up to
        `timeout` seconds for it (None: for ever).

        Raises `Timeout`; `EndOfStream` once the writer closed the stream and every frame was
        read; `WriterDead` once the writer died without closing it and every frame was read;
        `SchemaMismatchError` for a frame whose size is not the schema's (a foreign writer that
        ignores the schema).
        """
        # The compiled call reads a frame that is there now; then nothing else runs.
        if timeout is None or timeout >= 0:
            frame = self._fast_read()
            if frame is not None:
                if frame is False:
                    self._wrong_size()
                return frame
        # Every cffi path first tries the library without waiting (no deadline, no clock read),
        # and waits only when no frame is there.
        if timeout is not None and not timeout >= 0:
            first_slice(timeout)  # raises ValueError
        info = self._info
        scratch = self._scratch
        if scratch is not None:
            # Small frames: read into a reused array and return a copy of it, cheaper than a new
            # array and a new C view of it per frame.
            c = self._scratch_c
            status = _read(self._h, c, self._frame_size, 0, info)
            if status != OK:
                self._wait_read(status, c, self._frame_size, timeout)
            if info.len != self._frame_size:
                self._wrong_size()
            return scratch.copy()
        if self._dtype is None:
            buf = self._bytes_buf
            if buf is None:
                buf = self._bytes_buf = ffi.new("char[]", max(1, self._max_frame_size))
            status = _read(self._h, buf, self._max_frame_size, 0, info)
            if status != OK:
                self._wait_read(status, buf, self._max_frame_size, timeout)
            return _unpack(buf, info.len)
        out: Any = _empty(self._shape, self._dtype)
        c = _from_buffer(out)
        status = _read(self._h, c, self._frame_size, 0, info)
        if status != OK:
            self._wait_read(status, c, self._frame_size, timeout)
        if info.len != self._frame_size:
            self._wrong_size()
        return out

    def try_read(self) -> Optional[F]:
        """The next frame if there is one now, else None. Raises as `read()` does."""
        try:
            return self.read(timeout=0)
        except errors.Timeout:
            return None

    def read_into(self, out: Any, *, timeout: Optional[float] = None) -> int:
        """Reads the next frame into `out` and returns its length in bytes. Waits and raises as
        `read()` does.

        Schema streams need an ndarray of exactly the schema's dtype and shape, writable and
        C-contiguous. Bytes streams take any writable buffer (`BufferTooSmallError` if the frame
        does not fit; it stays unread).
        """
        # The compiled call reads a frame that is there now; then nothing else runs.
        if timeout is None or timeout >= 0:
            length = self._fast_read_into(out)
            if length is not None:
                if length < 0:
                    self._wrong_size()
                return length
        # The last array read into keeps its C view, unless it was reshaped or retyped in place.
        if out is self._cached_out and (self._dtype is None or (
                out.dtype is self._dtype and out.shape == self._shape)):
            c = self._cached_c
            cap = self._cached_cap
        else:
            c = self._destination(out)
            cap = self._cached_cap
        if timeout is not None and not timeout >= 0:
            first_slice(timeout)  # raises ValueError
        info = self._info
        status = _read(self._h, c, cap, 0, info)
        if status != OK:
            self._wait_read(status, c, cap, timeout)
        n: int = info.len
        if n != self._frame_size and self._dtype is not None:
            self._wrong_size()
        return n

    def _destination(self, out: Any) -> Any:
        """A C view of the writable buffer `out`, after checking it against the schema."""
        if self._dtype is not None:
            if type(out) is not np.ndarray:
                raise TypeError(f"read_into needs a NumPy array, not {type(out).__name__}")
            dt = out.dtype
            if (dt is not self._dtype and dt != self._dtype) or out.shape != self._shape:
                raise SchemaMismatchError(
                    f"stream {self._name!r} has frames of {describe(self._dtype, self._shape)}, "
                    f"not {given(out)} like the array to read into")
        try:
            c = _from_buffer(out, require_writable=True)
        except (TypeError, ValueError, BufferError) as e:
            raise ValueError(f"read_into needs a writable, C-contiguous buffer ({e})") from None
        self._cached_out, self._cached_c, self._cached_cap = out, c, len(c)
        return c

    def _wait_frame(self, attempt: Callable[[int], int], status: int,
                    timeout: Optional[float]) -> None:
        """The slow path of a call that found no frame (`status`, of a first `attempt` made
        without waiting): waits until a frame comes (`Timeout` after `timeout` s) and raises
        the exception of any other outcome (end of stream, a dead writer, an error)."""
        if status == WRONG_STATE and self._recover():
            status = attempt(0)
        self._call(wait_for(attempt, timeout, f"no frame came on stream {self._name!r}", status))

    def _wait_read(self, status: int, c: Any, cap: int, timeout: Optional[float]) -> None:
        """The slow path of a read that found no frame."""
        h, info = self._h, self._info
        self._wait_frame(lambda ns: _read(h, c, cap, ns, info), status, timeout)

    def _wrong_size(self) -> None:
        raise SchemaMismatchError(
            f"frame {self._info.seq} of stream {self._name!r} is {self._info.len} bytes, but the "
            f"stream's schema ({describe(self._dtype, self._shape)}) makes frames of "
            f"{self._frame_size} bytes: its writer does not follow the schema")

    @overload
    def read_batch(self: Reader[Array], max_frames: int, *,
                   timeout: Optional[float] = None) -> Array: ...
    @overload
    def read_batch(self: Reader[bytes], max_frames: int, *,
                   timeout: Optional[float] = None) -> List[bytes]: ...
    def read_batch(self, max_frames: int, *, timeout: Optional[float] = None) -> Any:
        """Up to `max_frames` frames in one call: waits for the first as `read()` does, then
        takes only those already published. Schema streams give an array of shape
        `(count, *shape)` (a view of one allocated for `max_frames`); bytes streams a list of
        `bytes`. `batch_info` has the metadata of each frame."""
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, not {max_frames}")
        if self._dtype is not None:
            out = _empty((max_frames,) + self._shape, self._dtype)
            return out[: self.read_batch_into(out, timeout=timeout)]
        size = max_frames * self._max_frame_size
        buf = self._bytes_buf
        if buf is None or len(buf) < size:
            buf = self._bytes_buf = ffi.new("char[]", max(1, size))
        count = self._read_batch(buf, size, max_frames, timeout)
        frames = []
        offset = 0
        for n in self._infos_np["len"][:count].tolist():
            frames.append(_unpack(buf + offset, n))
            offset += n
        return frames

    def read_batch_into(self, out: Array, *, timeout: Optional[float] = None) -> int:
        """Reads up to `len(out)` frames into `out`, a writable C-contiguous array of the
        schema's dtype and shape `(n, *shape)`, and returns how many. Waits and raises as
        `read()` does. Schema streams only (bytes streams: `read_batch()`)."""
        if self._dtype is None:
            raise TypeError("read_batch_into is for schema streams: use read_batch for bytes")
        if out is self._cached_batch:
            c = self._cached_batch_c
        else:
            if type(out) is not np.ndarray:
                raise TypeError(f"read_batch_into needs a NumPy array, not {type(out).__name__}")
            if (out.ndim != len(self._shape) + 1 or out.dtype != self._dtype
                    or out.shape[1:] != self._shape or out.shape[0] < 1):
                raise SchemaMismatchError(
                    f"stream {self._name!r} has frames of {describe(self._dtype, self._shape)}: "
                    f"read_batch_into needs an array of dtype {self._dtype.str} and shape "
                    f"(n >= 1, *{self._shape}), not {given(out)}")
            try:
                c = _from_buffer(out, require_writable=True)
            except (TypeError, ValueError, BufferError) as e:
                raise ValueError(f"read_batch_into needs a writable, C-contiguous array ({e})") \
                    from None
            self._cached_batch, self._cached_batch_c = out, c
            self._cached_batch_cap = len(c)
        count = self._read_batch(c, self._cached_batch_cap, out.shape[0], timeout)
        if count == 1:
            if self._info.len != self._frame_size:
                self._wrong_size()
        # Every frame's length at once: the `len` words of the infos, compared as bytes with
        # the schema's frame size repeated (far cheaper than NumPy calls on a few frames).
        elif self._lens_words[4:4 + 8 * count:8].tobytes() != self._lens_expected[:4 * count]:
            lens = self._infos_np["len"][:count]
            self._info[0] = self._infos[int(np.flatnonzero(lens != self._frame_size)[0])]
            self._wrong_size()
        return count

    def _read_batch(self, c: Any, cap: int, max_frames: int, timeout: Optional[float]) -> int:
        infos = self._infos
        if len(infos) < max_frames:
            infos = self._infos = ffi.new("shmline_frame_info[]", max_frames)
            self._infos_np = np.frombuffer(ffi.buffer(infos), INFO_DTYPE)
            self._lens_words = memoryview(ffi.buffer(infos)).cast("I")
            self._lens_expected = np.full(max_frames, self._frame_size, np.uint32).tobytes()
        if timeout is not None and not timeout >= 0:
            first_slice(timeout)  # raises ValueError
        count = self._count
        status = _read_batch(self._h, c, cap, infos, max_frames, 0, count)
        if status != OK:
            h = self._h
            try:
                self._wait_frame(lambda ns: _read_batch(h, c, cap, infos, max_frames, ns, count),
                                 status, timeout)
            except errors.BufferTooSmallError:
                self._info[0] = infos[0]  # the frame that does not fit, for `info`
                raise
        n = self._batch_count = count[0]
        self._info[0] = infos[n - 1]
        return n

    def acquire(self, *, timeout: Optional[float] = None) -> ReadSlot[F]:
        """Lends the next frame without a copy. Use it as a context manager:

            with reader.acquire() as frame:   # a read-only ndarray view of the slot
                total += frame.sum()
            # released here: the writer may reuse the slot

        Schema streams give a read-only ndarray of the schema, bytes streams a read-only
        memoryview. The writer cannot reuse the slot before the release, so release soon, and
        copy what you keep (module docs of `shmline.stream`). Lossless readers only
        (`UnsupportedError`). Waits and raises as `read()` does.
        """
        # The compiled call lends a frame there now and re-arms the slot object (schema streams,
        # no frame acquired, a valid timeout); then nothing else runs.
        slot = self._fast_acquire_slot(self, timeout)
        if slot is not None:
            return slot
        return self._acquire(timeout)

    def _acquire(self, timeout: Optional[float]) -> ReadSlot[F]:
        """`acquire()` in full: checks, waits, raises, any stream. (Apart from `acquire()`, so
        that its first line runs without the cells of this one's closures.)"""
        if self._spare._reader is not None:
            raise WrongStateError("a frame is already acquired: leave its with block (or call "
                                  "its release()) first")
        if timeout is not None and not timeout >= 0:
            first_slice(timeout)  # raises ValueError
        info = self._info
        # The compiled call lends a frame there now (address 0: one not of the schema's size).
        address = self._fast_acquire()
        if address is None:
            status = _acquire(self._h, 0, self._data_pp, info)
            if status != OK:
                h, data_pp = self._h, self._data_pp
                self._wait_frame(lambda ns: _acquire(h, ns, data_pp, info), status, timeout)
            address = self._data_out[0]
            if self._dtype is not None and info.len != self._frame_size:
                address = 0
        if self._dtype is not None:
            if not address:
                _release(self._h)
                self._wrong_size()
            # Array views of the slots are read-only and keep pointing at their slot after the
            # release anyway (module docs of `shmline.stream`), so one per slot serves every
            # frame that comes through it: found by the address the library lent, which was
            # checked against the layout when the view was made.
            view: Any = self._views.get(address)
            if view is None:
                view = self._view_at(address)
        else:
            ring = self._ring_at(address)
            offset = ring.offset(address, info.seq)
            view = ring.readonly[offset:offset + info.len]
        frame = self._spare
        frame.view = view
        frame._reader = self
        return frame

    def _ring_at(self, address: int) -> Ring:
        """The ring buffer views are made in, built from the first frame lent (at `address`)."""
        ring = self._ring
        if ring is None:
            ring = self._ring = Ring(self._stream, address, self._info.seq)
        return ring

    def _view_at(self, address: int) -> Any:
        """The read-only array view of the slot at `address` (of the frame just acquired),
        after checking that the layout puts a slot there; kept for the next frames of that
        slot."""
        ring = self._ring_at(address)
        offset = ring.offset(address, self._info.seq)
        view = self._views[address] = _ndarray(self._shape, self._dtype, ring.readonly, offset)
        return view

    def _recover(self) -> bool:
        """After WRONG_STATE with no frame acquired from Python: an acquire interrupted (Ctrl-C)
        just after the library lent a frame left it acquired; release it (that frame is
        skipped). Returns whether it did (if not, the WRONG_STATE had another cause)."""
        if self._spare._reader is not None or self._h == NULL:
            return False
        return bool(_release(self._h) == OK)

    def _release_now(self) -> int:
        """Gives the acquired frame back through cffi (a build without the compiled calls):
        the library's status."""
        return int(_release(self._h))

    def _check_release(self, status: int) -> None:
        """Raises the exception of a release's `status` unless it is OK or the reader was
        closed meanwhile (closing released the frame already)."""
        if status != OK and self._h != NULL:
            self._call(status)

    def __iter__(self) -> Iterator[F]:
        return self

    def __next__(self) -> F:
        """The next frame; stops at end of stream (a dead writer raises `WriterDead`)."""
        try:
            return self.read()
        except errors.EndOfStream:
            raise StopIteration from None

    def close(self) -> None:
        """Closes the reader: it leaves the stream and no longer holds the writer back. A frame
        still acquired is released. Closing twice does nothing."""
        if self._core is not None:
            self._core.detach()  # before the handle goes: it must not be used after
        super().close()
        self._cached_out = self._cached_c = self._cached_batch = self._cached_batch_c = None
        self._scratch = self._scratch_c = None
        # Views hold the mapping by themselves; this handle no longer needs the stream.
        self._ring = None
        self._views = {}
        self._stream.pin = NULL
        if self._spare._reader is not None:
            self._spare._finish()
        self._spare.view = None  # its last view must not pin the mapping

    def __repr__(self) -> str:
        kind = "lossy reader" if self._lossy else "reader"
        return f"<shmline.Reader ({kind}) of {self._name!r}{' closed' if self.closed else ''}>"

    def _what(self) -> str:
        return f"the reader of stream {self._name!r}"


class _PySlot:
    """The `with` protocol of `ReadSlot` in Python, for builds without the compiled one
    (`_fastpath.ReadSlotBase`, which does the same in C)."""

    __slots__ = ("_reader", "view")

    _reader: Optional[Reader[Any]]
    view: Any

    def __enter__(self) -> Any:
        return self.view

    def __exit__(self, *exc: Any) -> None:
        reader = self._reader
        if reader is None:
            return  # released inside the block
        # release(), inlined: the end of every zero-copy read.
        try:
            status = reader._release_now()
        finally:
            self._finish()
        reader._check_release(status)

    if TYPE_CHECKING:  # ReadSlot's
        def _finish(self) -> None: ...


# The base of ReadSlot: its `with` protocol, compiled when this build has it.
if TYPE_CHECKING or ReadSlotBase is None:
    _SlotBase = _PySlot
else:
    _SlotBase = ReadSlotBase


class ReadSlot(_SlotBase, Generic[F]):
    """An acquired frame (`Reader.acquire()`): a context manager whose `with` gives the
    read-only view (an `Array`, or a `memoryview` for a bytes stream), released when the block
    ends. A reader reuses one such object for its frames, which it lends one at a time: once
    released, it stands for the reader's next frame."""

    __slots__ = ()

    def __init__(self, reader: Reader[F], view: Any) -> None:
        self._reader = reader
        #: The read-only view of the frame in shared memory.
        self.view = view

    if TYPE_CHECKING:  # the view's type; at run time, the base's __enter__
        @overload
        def __enter__(self: ReadSlot[Array]) -> Array: ...
        @overload
        def __enter__(self: ReadSlot[bytes]) -> memoryview: ...
        def __enter__(self) -> Any: ...

    def release(self) -> None:
        """Gives the slot back to the writer."""
        reader = self._reader
        if reader is None:
            raise WrongStateError("this frame was already released")
        try:
            status = reader._release_now()
        finally:
            self._finish()
        reader._check_release(status)

    def _finish(self) -> None:
        self._reader = None
        if type(self.view) is memoryview:  # array views are read-only already
            retire(self.view)
