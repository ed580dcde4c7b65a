"""`SharedRingBuffer`: PYTHUSA's raw ring calls, over a shmline reader or writer.

PYTHUSA's raw ring is one byte ring whose cursors readers and writers move by hand. Here a
`SharedRingBuffer` is one process's end of a shmline stream: a writer's `write_array` and
`expose_writer_mem_view`/`inc_writer_pos` publish frames, and a reader's
`expose_reader_mem_view`/`simple_read`/`inc_reader_pos`/`read_array` consume bytes of the
frames it has received, in any amounts (a reader keeps a small private buffer). Safe where
PYTHUSA is not: a reader's bytes are copied out of shared memory before the slot is given back
(no torn reads, and `read_array` returns an owned array, not a released view), and views never
wrap (the second view of the tuple is always None).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import errors
from ..reader import Reader
from ..writer import Writer, WriteSlot

__all__ = ["RingSpec", "SharedRingBuffer"]

ViewTuple = Tuple[memoryview, None, int, bool]


class RingSpec:
    """PYTHUSA's frozen ring declaration for `Manager.create_ring()`: `size` bytes of ring
    (`size_bytes` is accepted too) shared by `num_readers` reading tasks. The other knobs
    (`cache_align`, `cache_size`, the reader-position refresh settings) are accepted and not
    needed."""

    def __init__(self, name: str, size: int = 0, num_readers: int = 1, cache_align: bool = True,
                 cache_size: int = 64, min_reader_pos_refresh_interval: int = 64,
                 min_reader_pos_refresh_s: float = 0.005, *, size_bytes: int = 0) -> None:
        size = size or size_bytes
        if size < 1:
            raise ValueError(f"RingSpec '{name}': size must be >= 1 byte")
        if num_readers < 1:
            raise ValueError(f"RingSpec '{name}': num_readers must be >= 1")
        self.__dict__.update(name=name, size=int(size), num_readers=int(num_readers),
                             cache_align=cache_align, cache_size=cache_size,
                             min_reader_pos_refresh_interval=min_reader_pos_refresh_interval,
                             min_reader_pos_refresh_s=min_reader_pos_refresh_s)

    @property
    def size_bytes(self) -> int:
        """The ring's size in bytes."""
        return self.size  # type: ignore[attr-defined,no-any-return]

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("RingSpec is frozen")

    def __reduce__(self) -> Tuple[Any, ...]:
        d = self.__dict__
        return (RingSpec, (d["name"], d["size"], d["num_readers"], d["cache_align"],
                           d["cache_size"], d["min_reader_pos_refresh_interval"],
                           d["min_reader_pos_refresh_s"]))

    def __repr__(self) -> str:
        return (f"RingSpec(name={self.name!r}, size={self.size}, "  # type: ignore[attr-defined]
                f"num_readers={self.num_readers})")  # type: ignore[attr-defined]


class SharedRingBuffer:
    """One process's end (reader or writer) of a stream, with PYTHUSA's raw ring calls."""

    def __init__(self, name: str, *, reader: Optional[Reader[Any]] = None,
                 writer: Optional[Writer[Any]] = None, binding: Any = None) -> None:
        # Made by the bindings' `.raw`, `get_reader()` and `get_writer()`.
        self.name = name
        self._reader = reader
        self._writer = writer
        self._binding = binding
        # Immutable, so views lent by expose_reader_mem_view stay valid while more frames come.
        self._pending = b""
        self._slot: Optional[WriteSlot[Any]] = None
        self._slot_view: Optional[memoryview] = None

    @classmethod
    def _of(cls, binding: Any, **handle: Any) -> "SharedRingBuffer":
        """The raw ring of a reader or writer binding (`reader=` or `writer=` its handle), made
        once."""
        raw = getattr(binding, "_raw", None)
        if raw is None:
            raw = binding._raw = cls(binding.name, binding=binding, **handle)
        return raw

    # -- Writing ----------------------------------------------------------------------------

    def write_array(self, array: Any) -> int:
        """Publishes the bytes of `array` as one frame: returns how many bytes (0 if the ring
        is full now; never blocks). On a stream with a schema the bytes must make exactly one
        frame of it (`SchemaMismatchError` otherwise), whatever `array`'s own dtype."""
        w = self._need_writer()
        frame = np.ascontiguousarray(array)
        if w._dtype is not None and (frame.dtype != w._dtype or frame.shape != w._shape):
            if frame.nbytes != w._frame_size:
                raise errors.SchemaMismatchError(
                    f"ring {self.name!r} takes frames of {w._frame_size} bytes, not "
                    f"{frame.nbytes}")
            frame = frame.reshape(-1).view(np.uint8).view(w._dtype).reshape(w._shape)
        try:
            return frame.nbytes if w.try_write(frame) else 0
        except errors.Full:
            return 0

    def expose_writer_mem_view(self, nbytes: int) -> ViewTuple:
        """A writable view of the next slot, `nbytes` long: `(view, None, nbytes, False)`, or
        an empty view and 0 if the ring is full. Fill it, then `inc_writer_pos(nbytes)`."""
        w = self._need_writer()
        if self._slot is None:
            try:
                if w._dtype is not None:
                    self._slot = w.reserve(timeout=0)
                    self._slot_view = memoryview(self._slot.view).cast("B")
                else:
                    self._slot = w.reserve(nbytes, timeout=0)
                    self._slot_view = self._slot.view
            except (errors.Timeout, errors.Full):
                return memoryview(b""), None, 0, False
        assert self._slot_view is not None
        size = min(nbytes, len(self._slot_view))
        return self._slot_view[:size], None, size, False

    def simple_write(self, view: ViewTuple, src: Any) -> None:
        """Copies `src` into the view `expose_writer_mem_view` gave."""
        # NumPy's stubs give ndarray the buffer protocol only from Python 3.12 on.
        array = np.ascontiguousarray(src)
        data = memoryview(array).cast("B")  # type: ignore[arg-type,unused-ignore]
        view[0][:len(data)] = data[:len(view[0])]

    def inc_writer_pos(self, nbytes: int) -> None:
        """Publishes the slot `expose_writer_mem_view` lent, `nbytes` long."""
        if self._slot is None:
            raise RuntimeError(f"ring {self.name!r}: inc_writer_pos() without "
                               "expose_writer_mem_view()")
        slot, self._slot, self._slot_view = self._slot, None, None
        if self._need_writer()._dtype is not None:
            slot.commit()
        else:
            slot.commit(nbytes)

    def compute_max_amount_writable(self) -> int:
        """Bytes that can be written now without waiting (whole free slots)."""
        return int(self.header[4])

    # -- Reading ----------------------------------------------------------------------------

    def _fill(self, nbytes: int) -> int:
        """Receives frames into the private buffer until `nbytes` are there or none is left."""
        r = self._need_reader()
        while len(self._pending) < nbytes:
            try:
                frame = r.read(timeout=0)
            except (errors.Timeout, errors.EndOfStream):
                break
            self._pending += frame if isinstance(frame, bytes) else frame.tobytes()
        return len(self._pending)

    def expose_reader_mem_view(self, nbytes: int) -> ViewTuple:
        """A read-only view of the next `nbytes` bytes received: `(view, None, readable,
        False)` where `readable` is how many bytes are there (check it against `nbytes`)."""
        have = self._fill(nbytes)
        size = min(have, nbytes)
        return memoryview(self._pending)[:size], None, have, False

    def simple_read(self, view: ViewTuple, dst: Any) -> None:
        """Copies the bytes of the view `expose_reader_mem_view` gave into `dst` (a writable
        buffer), as many as `dst` holds."""
        out = memoryview(dst).cast("B") if not isinstance(dst, memoryview) or dst.format != "B" \
            else dst
        n = min(len(out), len(view[0]))
        out[:n] = view[0][:n]

    def inc_reader_pos(self, nbytes: int) -> None:
        """Consumes `nbytes` bytes received."""
        self._fill(nbytes)
        self._pending = self._pending[nbytes:]

    def read_array(self, nbytes: int, dtype: Any = np.uint8) -> np.ndarray:
        """The next `nbytes` bytes as an owned array of `dtype` (consumed), or an empty array
        if fewer are there."""
        if self._fill(nbytes) < nbytes:
            return np.empty(0, dtype)
        out = np.frombuffer(bytes(self._pending[:nbytes]), dtype).copy()
        self._pending = self._pending[nbytes:]
        return out

    def jump_to_writer(self) -> None:
        """Drops every byte received and not consumed, and every frame published so far."""
        self._pending = b""
        r = self._need_reader()
        try:
            while True:
                r.read(timeout=0)
        except (errors.Timeout, errors.EndOfStream):
            pass

    def set_reader_active(self, active: bool) -> None:
        """Whether this reader holds the writer back (see `StreamReader.set_blocking`)."""
        if self._binding is None or not hasattr(self._binding, "set_blocking"):
            raise errors.UnsupportedError("only a task's stream reader can change activity")
        self._binding.set_blocking(active)
        self._reader = self._binding.reader

    def is_reader_active(self) -> bool:
        """Whether this reader holds the writer back."""
        if self._binding is not None and hasattr(self._binding, "is_blocking"):
            return bool(self._binding.is_blocking())
        return True

    def _stats(self) -> Any:
        """A snapshot of the stream's shared counters (`Stream.stats()`)."""
        h = self._reader if self._reader is not None else self._writer
        assert h is not None
        from .._ffi import lib
        from ..stream import stream_of

        get = lib.shmline_reader_stream if self._reader is not None else lib.shmline_writer_stream
        with stream_of(get, h._h) as stream:
            return stream.stats(), stream.max_frame_size

    def calculate_pressure(self) -> int:
        """How full the ring is for its slowest reader, in % (0-100)."""
        return int(round(self._stats()[0].fill * 100))

    @property
    def header(self) -> np.ndarray:
        """A read-only snapshot of PYTHUSA's header words, from the stream's shared counters:
        [0] ring size in bytes, [1] pressure %, [2] bytes dropped, [3] bytes written, [4] bytes
        writable now, [5] readers attached, then 3 words per attached reader: bytes read,
        active (1: a live reader holding the writer back, 0: a lossy one), frames behind. So
        PYTHUSA's idiom `header[6 + 3 * i + 1] != 0` counts active readers. Writing to it is
        refused: the real positions live in shmline's layout (docs/LAYOUT.md)."""
        stats, frame = self._stats()
        readers = [r for r in stats.readers if r.alive]
        words = [stats.capacity * frame, int(round(stats.fill * 100)),
                 stats.frames_dropped * frame, stats.bytes_written,
                 max(0, stats.capacity - int(round(stats.fill * stats.capacity))) * frame,
                 len(readers)]
        for r in readers:
            words += [r.bytes_read, 0 if r.lossy else 1, r.lag]
        header = np.array(words, np.uint64)
        header.flags.writeable = False
        return header

    def _need_writer(self) -> Writer[Any]:
        if self._writer is None:
            raise errors.WrongStateError(f"ring {self.name!r} is open for reading here")
        return self._writer

    def _need_reader(self) -> Reader[Any]:
        if self._reader is None:
            raise errors.WrongStateError(f"ring {self.name!r} is open for writing here")
        return self._reader

    def close(self) -> None:
        """Closes this end (a writer closing ends the stream)."""
        for h in (self._reader, self._writer):
            if h is not None:
                h.close()

    def __enter__(self) -> "SharedRingBuffer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        end = "reader" if self._reader is not None else "writer"
        return f"<pythusa SharedRingBuffer {self.name!r} ({end})>"
