"""Streams: rings of frames in shared memory, with one writer (or several) and many readers.

A stream has either a schema (a NumPy dtype and shape: every frame is one C-contiguous array of
it) or none (frames are bytes up to a maximum size). Frames move by copy (`Writer.write`,
`Reader.read`, `Reader.read_into`), in batches (`write_batch`, `read_batch`), or without a copy
(`Writer.reserve`, `Reader.acquire`), which lend a view of the slot in shared memory.

Blocking and Ctrl-C: every call that may wait takes `timeout` in seconds (`None`, like
`float('inf')` or any timeout too long to ever pass, waits for ever) and waits in slices of at
most 50 ms inside the C library, so that Python handles signals between slices: Ctrl-C raises
`KeyboardInterrupt` within about 50 ms, and the handle stays usable. A frame that completes at
the very instant of the interrupt may be consumed by the interrupted call without being returned
(as with any interrupted receive).

Zero-copy views, precisely:
- Memory safety: a view (and any array, slice or memoryview derived from it) keeps the stream's
  memory mapped for as long as it exists, even after the writer, reader and stream are closed;
  closing them detaches at once, but unmapping waits for the last view. So no view can ever touch
  unmapped memory.
- A reader's view is read-only (`writeable=False`): writing through it raises `ValueError`.
- After the `with` block (release, commit or abort) the slot belongs to the ring again:
  * bytes views (`memoryview`) are released: any use raises `ValueError`;
  * a writer's array view is made read-only, so a late write raises `ValueError` instead of
    corrupting a later frame (views you derived from it inside the block keep their own flag);
  * a reader's array view keeps pointing at the slot, which the writer refills: it reads whatever
    the slot holds by then, never unmapped memory. Copy the data (`frame.copy()`) inside the
    block to keep it. (It is the same array object each time its slot comes round: a reader
    makes one view per slot, not one per frame);
  * the slot object itself (what `reserve()`/`acquire()` return) raises `WrongStateError` if
    committed, aborted or released again before the next `reserve()`/`acquire()`; each writer
    and reader reuses one slot object, so after that it stands for the new reservation.
- Cost: a `with` block hands out a view (a new one for a writer) and retires it afterwards. With
  the compiled calls (API-mode builds; the wheels on CPython 3.11+) that is a few hundred ns a
  side (docs/BENCHMARKS_PYTHON.md): between two processes zero-copy then moves 64-byte frames
  about as fast as `write`/`read`, and faster from a few KiB up; one side alone, `write` and
  `read_into` of a 64-byte frame still cost less than a `with` block. Without them (the wheels
  on CPython 3.9 and 3.10) a block costs about a microsecond, and zero-copy pays from frames of
  some tens of KiB up.

Several writers: a stream created with `max_writers=N` (N > 1) takes up to N writers at once, in
any processes. Each frame gets the next sequence number when its writer claims a slot, and frames
are published in that order: every reader sees each frame exactly once, and each writer's frames
in the order it wrote them. The stream ends when every writer that opened has closed. A writer
that dies holding a claimed slot does not block the others: once its death is noticed the slot
is skipped, `StreamStats.frames_skipped` counts it and readers see it in `FrameInfo.missed`.

Reader groups (competing consumers): readers opened with the same `group=` name, in any
processes, share the work: each frame goes to one member of the group, while plain readers and
other groups still get every frame. A member sees its frames in increasing order, with gaps where
other members got frames (`FrameInfo.seq` is the stream's sequence number). The writer waits for a
group as for a lossless reader: for the lowest frame a member holds, or the next one the group
hands out. A stream has room for `max_groups` groups at once (`Stream.create`); the last member to
leave ends a group. Delivery is at-least-once within a group: a member that dies (SIGKILL) while
it holds frames (a zero-copy frame until its release, a copy read until the read returns) has
them delivered again to another member, counted in `StreamStats.frames_redelivered`.

Threads and processes: streams can be shared between threads; a writer or reader must be used
by one thread at a time (including `close()`). Handles do not survive `fork()`: open them in the
process that uses them (use the `spawn` start method of `multiprocessing`).
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING, Any, Callable, Generic, List, NamedTuple, Optional, Tuple, TypedDict, overload,
)

import numpy as np

from . import errors
from ._common import (
    BACKPRESSURES, BUFFER_TOO_SMALL, NOT_FOUND, NULL, OK, STARTS, WRITER_STATES, Array,
    Backpressure, DType, F, ShapeLike, Start, Wait, check, describe, name_bytes, option,
    schema_args, wait_strategy,
)
from ._ffi import ffi, lib, string
from ._handle import Handle
from ._views import StreamRef
from .reader import Reader
from .writer import Writer

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Stream", "StreamInfo", "StreamStats", "ReaderStats"]

_BACKPRESSURE_NAMES = {number: name for name, number in BACKPRESSURES.items()}


class ReaderStats(NamedTuple):
    """Counters of one attached reader (see `Stream.stats()`). `group` is the reader group it is
    a member of (None for a plain reader); a member's `position` is the first frame it holds, or
    its group's next frame while it holds none, and its `lag` is 0 while it holds none."""

    slot_index: int
    pid: int
    alive: bool
    lossy: bool
    position: int
    frames_read: int
    bytes_read: int
    missed: int
    lag: int
    group: Optional[str]


class StreamInfo(NamedTuple):
    """What a stream is, fixed at its creation (`Stream.info`): its geometry, limits and
    schema (`dtype`, `shape` and `frame_size` are None for a bytes stream), the size of its
    segment and the pid of the process that created it."""

    name: str
    capacity: int
    max_frame_size: int
    slot_size: int
    max_readers: int
    max_writers: int
    max_groups: int
    backpressure: str
    checksum: bool
    segment_size: int
    creator_pid: int
    dtype: Optional[np.dtype]
    shape: Optional[Tuple[int, ...]]
    frame_size: Optional[int]


class StreamStats(NamedTuple):
    """A snapshot of a stream's shared counters; `fill` is the ring's fill as seen by its slowest
    lossless reader (0.0 empty to 1.0 full); `writer_state` is "none", "active", "closed" or
    "dead" (of a multi-writer stream: of its writers as a whole).

    `writer_pid` is the writer of a single-writer stream (0 for a multi-writer stream, whose
    live writers number `writer_count`). `frames_dropped`: frames writers discarded because the
    ring was full (backpressure "drop_newest"). Multi-writer streams: `frames_skipped` counts
    sequence numbers claimed by a writer that died before publishing them (or given up by an
    aborted reservation; readers see them in `FrameInfo.missed`), `writers_reclaimed` the dead
    writers whose slots were freed. Reader groups: `group_count` is the number of groups with
    members now, `frames_redelivered` the frames delivered again, summed over the groups, because
    the member holding them died (at-least-once delivery within a group; a group's count goes
    with it when its last member leaves).
    """

    capacity: int
    writer_state: str
    writer_pid: int
    reader_count: int
    frames_written: int
    bytes_written: int
    writer_waits: int
    writer_wait_ns: int
    readers_reclaimed: int
    fill: float
    readers: List[ReaderStats]
    frames_dropped: int
    frames_skipped: int
    writer_count: int
    writers_reclaimed: int
    group_count: int
    frames_redelivered: int


class StreamOptions(TypedDict, total=False):
    """The options of `Stream.create()` other than `name` and `dtype`, for its typed
    overloads (documented there)."""

    shape: Optional[ShapeLike]
    max_frame_size: int
    capacity: int
    max_readers: int
    max_writers: int
    max_groups: int
    backpressure: Backpressure
    checksum: bool
    unlink_on_close: bool
    permissions: int


class Stream(Handle, Generic[F]):
    """An open stream: a mapping of the stream's shared memory into this process.

    Make one with `Stream.create()` or `Stream.open()`; open its writer with `writer()` and
    readers with `reader()`. Close it with `close()` or a `with` block; writers and readers
    opened from it stay usable after that, and keep the memory mapped until they are closed.

    `F` is the type of its frames, which its readers return and its writers take: `Array` for
    a stream created with a `dtype`, `bytes` for one without, `Any` for a stream opened by
    name (annotate it, e.g. `stream: Stream[Array] = Stream.open(name)`, to check its use).
    """

    def __init__(self, handle: Any) -> None:
        # Use create() or open().
        self._own(handle, lib.shmline_stream_close)
        self._name = string(lib.shmline_stream_name(self._h))
        info = ffi.new("shmline_stream_info *")
        check(lib.shmline_stream_get_info(self._h, info))
        dtype_c = ffi.new("char[]", lib.SHMLINE_DTYPE_LEN)
        shape_c = ffi.new("uint64_t[]", lib.SHMLINE_MAX_NDIM)
        ndim = ffi.new("uint32_t *")
        check(lib.shmline_stream_get_schema(
            self._h, dtype_c, lib.SHMLINE_DTYPE_LEN, shape_c, lib.SHMLINE_MAX_NDIM, ndim))
        dtype_str = ffi.string(dtype_c).decode()
        self._dtype: Optional[np.dtype] = np.dtype(dtype_str) if dtype_str else None
        self._shape: Optional[Tuple[int, ...]] = (
            tuple(int(shape_c[i]) for i in range(ndim[0])) if dtype_str else None
        )
        self._frame_size: Optional[int] = (
            int(self._dtype.itemsize * int(np.prod(self._shape, dtype=np.int64)))
            if self._dtype is not None and self._shape is not None else None
        )
        self._info = StreamInfo(
            self._name, int(info.capacity), int(info.max_frame_size), int(info.slot_size),
            int(info.max_readers), int(info.max_writers), int(info.max_groups),
            _BACKPRESSURE_NAMES.get(int(info.backpressure), "unknown"), bool(info.checksum),
            int(info.segment_size), int(info.creator_pid), self._dtype, self._shape,
            self._frame_size)

    @overload
    @classmethod
    def create(cls, name: str, *, dtype: None = None,
               **options: Unpack[StreamOptions]) -> Stream[bytes]: ...
    @overload
    @classmethod
    def create(cls, name: str, *, dtype: DType,
               **options: Unpack[StreamOptions]) -> Stream[Array]: ...
    @classmethod
    def create(
        cls,
        name: str,
        *,
        shape: Optional[ShapeLike] = None,
        dtype: Optional[DType] = None,
        max_frame_size: int = 0,
        capacity: int = 64,
        max_readers: int = 8,
        max_writers: int = 1,
        max_groups: int = 4,
        backpressure: Backpressure = "block",
        checksum: bool = False,
        unlink_on_close: bool = False,
        permissions: int = 0o600,
    ) -> Stream[Any]:
        """Creates the stream `name` (exclusively: `AlreadyExistsError` if it exists) and opens it.

        With `dtype` (and `shape`, default `()`: one scalar per frame) every frame is one
        C-contiguous array of that schema; without, frames are bytes of at most
        `max_frame_size`. `capacity` is the number of slots (a power of two): the writer runs at
        most that many frames ahead of its slowest lossless reader. `max_writers` (1 to 64) is
        how many writers may be attached at once: 1 (the default) makes a single-writer stream,
        which has one writer for its whole life; more lets that many processes write
        concurrently (see the module's documentation). `max_groups` (0 to 64, default 4) is how
        many reader groups may exist at once (`reader(group=...)`; a reader creating one more
        gets `TooManyReadersError`). `backpressure` is what writers do when
        the ring is full: "block" (wait, the default), "fail" (`Full` at once), "drop_newest"
        (discard the frame being written) or "drop_oldest" (overwrite: every reader becomes
        lossy). `checksum` adds a CRC32C to every frame, checked by readers. `unlink_on_close`
        removes the name when this handle, every writer and reader opened from it, and every
        view of its frames are gone; otherwise the stream lives until `Stream.unlink(name)`. The
        segment is `/dev/shm/shmline.stream.<name>`, readable and writable by `permissions`.
        """
        opts = ffi.new("shmline_stream_options *", lib.shmline_stream_options_default())
        dtype_c, ndim, shape_c, _keep = schema_args(dtype, shape)
        opts.capacity = capacity
        opts.max_frame_size = max_frame_size
        opts.max_readers = max_readers
        opts.max_writers = max_writers
        opts.max_groups = max_groups
        opts.backpressure = option(BACKPRESSURES, backpressure, "backpressure")
        opts.permissions = permissions
        opts.checksum = bool(checksum)
        opts.unlink_on_close = bool(unlink_on_close)
        opts.dtype = dtype_c
        opts.ndim = ndim
        opts.shape = shape_c
        out = ffi.new("shmline_stream **")
        check(lib.shmline_stream_create(name_bytes(name), opts, out))
        return cls(out[0])

    @classmethod
    def open(cls, name: str) -> Stream[Any]:
        """Opens the existing stream `name` (`NotFoundError` if there is none)."""
        out = ffi.new("shmline_stream **")
        check(lib.shmline_stream_open(name_bytes(name), out))
        return cls(out[0])

    @staticmethod
    def unlink(name: str) -> None:
        """Removes the name of stream `name`: processes that have it open keep using it, new opens
        fail with `NotFoundError`."""
        check(lib.shmline_stream_unlink(name_bytes(name)))

    @staticmethod
    def remove_stale(name: str) -> bool:
        """Removes stream `name` if nobody alive uses it (its creator, writer and readers are all
        dead), so that the name can be created again
        after a crash; `create()` never does that by itself. Returns True if it removed the
        stream, False if there was none.

        Raises `AlreadyExistsError` if a live process uses the stream (the message names it;
        nothing is removed), `VersionMismatchError` or `CorruptError` if the segment cannot be
        judged, `InvalidNameError` for a bad name, `TypeError` for a name that is not a `str`.
        """
        status = lib.shmline_stream_remove_stale(name_bytes(name))
        if status == NOT_FOUND:
            return False
        check(status)
        return True

    @staticmethod
    def list() -> List[str]:
        """The names of the streams that exist on this machine."""
        needed = ffi.new("size_t *")
        while True:
            status = lib.shmline_stream_list(NULL, 0, needed)
            if status not in (OK, BUFFER_TOO_SMALL):
                errors.raise_for(status)
            buf = ffi.new("char[]", max(1, needed[0]))
            status = lib.shmline_stream_list(buf, len(buf), needed)
            if status == OK:
                raw = ffi.buffer(buf, needed[0])[:]
                return [n.decode() for n in raw.split(b"\0") if n]
            if status != BUFFER_TOO_SMALL:
                errors.raise_for(status)

    @property
    def name(self) -> str:
        """The stream's name."""
        return self._name

    @property
    def info(self) -> StreamInfo:
        """What the stream is: geometry, limits, schema, segment size, creator."""
        return self._info

    @property
    def dtype(self) -> Optional[np.dtype]:
        """The dtype of every frame, or None for a bytes stream."""
        return self._dtype

    @property
    def shape(self) -> Optional[Tuple[int, ...]]:
        """The shape of every frame, or None for a bytes stream."""
        return self._shape

    @property
    def frame_size(self) -> Optional[int]:
        """Bytes of one frame of the schema, or None for a bytes stream."""
        return self._frame_size

    @property
    def max_frame_size(self) -> int:
        """The largest frame in bytes."""
        return self._info.max_frame_size

    @property
    def capacity(self) -> int:
        """The number of slots in the ring."""
        return self._info.capacity

    @property
    def max_readers(self) -> int:
        """The most readers attached at once."""
        return self._info.max_readers

    @property
    def max_writers(self) -> int:
        """The most writers attached at once (1: a single-writer stream)."""
        return self._info.max_writers

    @property
    def max_groups(self) -> int:
        """The most reader groups at once."""
        return self._info.max_groups

    @property
    def backpressure(self) -> str:
        """What writers do when the ring is full: "block", "fail", "drop_newest" or
        "drop_oldest"."""
        return self._info.backpressure

    @property
    def checksum(self) -> bool:
        """Whether frames carry a CRC32C that readers check."""
        return self._info.checksum

    @property
    def segment_size(self) -> int:
        """Bytes of shared memory the stream occupies."""
        return self._info.segment_size

    def writer(self, *, wait: Wait = "adaptive") -> Writer[F]:
        """Opens a writer of the stream. A single-writer stream (`max_writers=1`) has one writer
        for its whole life: `WriterExistsError` if it has or had one. A multi-writer stream
        takes up to `max_writers` live writers at once, from any processes
        (`TooManyWritersError` beyond that); `WrongStateError` once its last writer closed it.
        `wait` is how it waits for space: "adaptive" (spin briefly, then sleep), "busy_spin"
        (lowest latency, burns a core) or "block" (sleep at once)."""
        opts = writer_options(wait)
        out = ffi.new("shmline_writer **")
        self._call(lib.shmline_writer_open(self._h, opts, out))
        return Writer(self._ref(), out[0])

    def reader(
        self,
        *,
        lossy: bool = False,
        start: Start = "next",
        wait: Wait = "adaptive",
        require_dtype: Any = None,
        require_shape: Optional[ShapeLike] = None,
        group: Optional[str] = None,
    ) -> Reader[F]:
        """Opens a reader: it sees every frame published from `start` on, in order.

        `start`: "next" (frames published after it opened; a reader opened before the writer's
        first frame misses nothing), "newest" (the latest frame, then the rest) or "oldest" (the
        oldest frame still in the ring). `lossy` readers never hold the writer back, skip frames
        they were lapped on (`FrameInfo.missed` counts them) and cannot `acquire()`.
        `require_dtype`/`require_shape` refuse to open (`SchemaMismatchError`) unless the stream
        has exactly that schema. `wait` as for `writer()`.

        `group`: join the reader group of that name (competing consumers): each frame goes to
        exactly one member of the group, while plain readers and other groups still get every
        frame (see the module's documentation; delivery is at-least-once within a group if a
        member dies). None (the default) or "": a plain reader. A name is 1 to 63 bytes of
        `A-Za-z0-9_.-` (`InvalidNameError`). The first member creates the group at `start`;
        later members join it where it is. Members are lossless: `lossy=True` with a group, or a
        group on a "drop_oldest" stream, is `InvalidArgumentError`; a group beyond the stream's
        `max_groups` is `TooManyReadersError`.
        """
        opts, _keep = reader_options(wait, require_dtype, require_shape)
        opts.start = option(STARTS, start, "start")
        opts.lossy = bool(lossy)
        group_c = ffi.new("char[]", name_bytes(group, "group")) if group else NULL
        opts.group = group_c
        out = ffi.new("shmline_reader **")
        self._call(lib.shmline_reader_open(self._h, opts, out))
        return Reader(self._ref(), out[0], bool(lossy))

    def stats(self) -> StreamStats:
        """A snapshot of the stream's shared counters and of every attached reader. Only reads
        shared memory: it never disturbs the writer or the readers."""
        out = ffi.new("shmline_stream_stats *")
        readers = ffi.new("shmline_reader_stats[]", self._info.max_readers)
        self._call(lib.shmline_stream_get_stats(self._h, out, readers, self._info.max_readers))
        listed = [
            ReaderStats(int(r.index), int(r.pid), bool(r.alive), bool(r.lossy), int(r.position),
                        int(r.frames_read), int(r.bytes_read), int(r.missed), int(r.lag),
                        ffi.string(r.group).decode(errors="replace") or None)
            for r in readers[0:min(out.reader_count, self._info.max_readers)]
        ]
        return StreamStats(
            int(out.capacity), WRITER_STATES.get(out.writer_state, "unknown"),
            int(out.writer_pid), int(out.reader_count), int(out.frames_written),
            int(out.bytes_written), int(out.writer_waits), int(out.writer_wait_ns),
            int(out.readers_reclaimed), float(out.fill), listed, int(out.frames_dropped),
            int(out.frames_skipped), int(out.writer_count), int(out.writers_reclaimed),
            int(out.group_count), int(out.frames_redelivered),
        )

    def close(self) -> None:
        """Closes this handle. Writers, readers and views opened from it stay usable; the memory
        stays mapped until the last of them is gone. Closing twice does nothing."""
        # Not released: the writers and readers opened from it hold the same C handle (their
        # `StreamRef.pin`), which the garbage collector closes once nothing references it.
        self._h = NULL

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        writers = f" max_writers={self._info.max_writers}" if self._info.max_writers > 1 else ""
        return (f"<shmline.Stream {self._name!r} {describe(self._dtype, self._shape)} "
                f"capacity={self._info.capacity}{writers}{state}>")

    def _ref(self) -> StreamRef:
        return StreamRef(self._h, self._name, self._dtype, self._shape, self._frame_size,
                         self._info.max_frame_size, self._info.slot_size, self._info.capacity,
                         self._info.backpressure)

    def _what(self) -> str:
        return f"stream {self._name!r}"


def writer_options(wait: object) -> Any:
    """The C options of a new writer."""
    opts = ffi.new("shmline_writer_options *", lib.shmline_writer_options_default())
    opts.wait = wait_strategy(wait)
    return opts


def reader_options(wait: object, require_dtype: Any,
                   require_shape: Optional[ShapeLike]) -> Tuple[Any, Any]:
    """The C options of a new reader, and what must stay alive while the library reads them."""
    opts = ffi.new("shmline_reader_options *", lib.shmline_reader_options_default())
    opts.wait = wait_strategy(wait)
    if require_dtype is None and require_shape is not None:
        raise ValueError("require_shape needs require_dtype as well")
    dtype_c, ndim, shape_c, keep = schema_args(require_dtype, require_shape)
    opts.require_dtype = dtype_c
    opts.require_ndim = ndim
    opts.require_shape = shape_c
    return opts, keep


def stream_of(stream_call: Callable[[Any, Any], int], handle: Any) -> Stream[Any]:
    """A new handle of the stream that the C reader or writer `handle` belongs to
    (`stream_call`: `shmline_reader_stream` or `shmline_writer_stream`)."""
    out = ffi.new("shmline_stream **")
    check(stream_call(handle, out))
    return Stream(out[0])
