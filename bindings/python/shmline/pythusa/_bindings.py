"""The reader and writer bindings a PYTHUSA task function receives, over shmline's Reader and
Writer, with PYTHUSA's meaning: nothing blocks, `None`/`False` say "not now"."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import errors
from .._common import Array
from .._ffi import lib
from ..reader import ReadSlot, Reader
from ..stream import stream_of
from ..writer import Writer, WriteSlot

__all__ = ["StreamReader", "StreamWriter"]


def _byte_view(array: np.ndarray) -> memoryview:
    return memoryview(array).cast("B")  # type: ignore[arg-type,unused-ignore]


class _Binding:
    """What a reader and a writer binding share: the stream's name and frame schema."""

    def __init__(self, name: str, shape: Tuple[int, ...], dtype: Any) -> None:
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.frame_nbytes = int(self.dtype.itemsize * int(np.prod(self.shape, dtype=np.int64)))
        self._looked: Optional[memoryview] = None

    def _release_look(self) -> None:
        """Releases the view `look()` lent (arrays made from it keep the mapping alive, so they
        never see unmapped memory)."""
        looked, self._looked = self._looked, None
        if looked is not None:
            try:
                looked.release()
            except BufferError:
                pass


class StreamReader(_Binding):
    """A task's reader of one stream (PYTHUSA's `StreamReader`).

    - `read()`: the next frame as a new array, or None if no whole frame is there now. Never
      blocks. Unlike PYTHUSA's, the frame is copied *before* its slot is given back, so a frame
      is never torn by a writer reusing the slot. None also after the stream's end (the
      writing task returned): PYTHUSA has no end of stream, and a fan-in loop must go on
      reading its other inputs (`ended` tells the end apart). A writer that died raises
      `shmline.WriterDead` instead of looking like an empty ring.
    - `read_into(out)`: copies the next frame into `out` (the stream's shape and dtype) and
      returns True, or False if none is there.
    - `look()` / `increment()`: a read-only zero-copy memoryview of the next frame (None if none
      is there), then give it back. The slot is held until `increment()`, so the writer cannot
      overwrite it meanwhile (PYTHUSA's view could be overwritten while held). Frames never wrap
      the ring end here, so `look()` returns None only when no frame is there.
    - `set_blocking(False)`: this reader stops holding the writer back (a "latest frame" tap):
      it resumes at the newest frame and skips frames it is lapped on, counting them in
      `missed` (PYTHUSA counted nothing). `set_blocking(True)` rejoins at the writer's
      position, dropping the backlog, as PYTHUSA does.

    `raw` / `ring` is the shmline `Reader` underneath (see `shmline.pythusa.SharedRingBuffer`
    for PYTHUSA's raw ring calls).
    """

    def __init__(self, reader: Reader[Any], name: str, shape: Tuple[int, ...],
                 dtype: Any) -> None:
        super().__init__(name, shape, dtype)
        self._reader = reader
        self.frame_size = int(np.prod(self.shape, dtype=np.int64))
        self._slot: Optional[ReadSlot[Any]] = None
        self._blocking = True
        self._ended = False
        self._missed_before = 0

    @property
    def raw(self) -> "Any":
        """PYTHUSA's raw ring of this binding: a `SharedRingBuffer` facade over the reader."""
        from ._ring import SharedRingBuffer

        return SharedRingBuffer._of(self, reader=self.reader)

    ring = raw

    @property
    def reader(self) -> Reader[Any]:
        """The shmline `Reader` underneath (it changes on `set_blocking()`)."""
        return self._reader

    @property
    def ended(self) -> bool:
        """Whether a read found the stream ended (its writing task returned) with every frame
        read: `read()` will never return a frame again."""
        return self._ended

    @property
    def missed(self) -> int:
        """Frames this reader skipped while non-blocking (it was lapped)."""
        return self._missed_before + (self._reader.missed if not self._blocking else 0)

    def read(self) -> Optional[np.ndarray]:
        """The next frame (a new array), or None if no frame is there now. Never blocks."""
        if self._slot is not None:
            self._drop_look()
        try:
            frame: Optional[Array] = self._reader.read(timeout=0)
            return frame
        except errors.Timeout:
            return None
        except errors.EndOfStream:
            self._ended = True
            return None

    def read_into(self, out: np.ndarray) -> bool:
        """Copies the next frame into `out` (an array of the stream's shape and dtype) and
        returns True; False if no frame is there now. Never blocks."""
        if self._slot is not None:
            self._drop_look()
        out = _checked(out, self.shape, self.dtype)
        try:
            self._reader.read_into(out, timeout=0)
            return True
        except errors.Timeout:
            return False
        except errors.EndOfStream:
            self._ended = True
            return False

    def look(self) -> Optional[memoryview]:
        """A read-only zero-copy view (bytes) of the next frame, held until `increment()`;
        None if no frame is there now. Looking again before `increment()` gives the same
        frame."""
        if self._looked is not None:
            return self._looked
        if not self._blocking:
            # A lossy reader lends no slots: the view is of a copy, already consumed.
            frame = self.read()
            if frame is None:
                return None
            self._looked = _byte_view(frame).toreadonly()
            return self._looked
        try:
            self._slot = self._reader.acquire(timeout=0)
        except errors.Timeout:
            return None
        except errors.EndOfStream:
            self._ended = True
            return None
        self._looked = _byte_view(self._slot.view)
        return self._looked

    def increment(self) -> None:
        """Gives back the frame `look()` lent (the writer may reuse its slot). Without a
        `look()` first, skips the next frame if there is one, as PYTHUSA advances its cursor."""
        if self._looked is None:
            self.read()
            return
        self._drop_look()

    def _drop_look(self) -> None:
        self._release_look()
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()

    def set_blocking(self, blocking: bool) -> None:
        """False: stop holding the writer back (a lossy "latest frame" reader that resumes at
        the newest frame); True: rejoin at the writer's position, as a lossless reader."""
        blocking = bool(blocking)
        if blocking == self._blocking:
            return
        self._drop_look()
        old = self._reader
        new: Reader[Any]
        with stream_of(lib.shmline_reader_stream, old._h) as stream:
            if blocking:
                self._missed_before += old.missed
                new = stream.reader(start="next")
            else:
                # Resume at the newest frame, unless every frame was read (it would come twice).
                caught_up = old.position >= stream.stats().frames_written
                new = stream.reader(lossy=True, start="next" if caught_up else "newest")
        old.close()
        self._reader = new
        self._blocking = blocking

    def is_blocking(self) -> bool:
        """Whether this reader holds the writer back (True, the default)."""
        return self._blocking

    def close(self) -> None:
        """Leaves the stream (the writer is no longer held back by this reader)."""
        self._drop_look()
        self._reader.close()

    def __repr__(self) -> str:
        kind = "blocking" if self._blocking else "non-blocking"
        return f"<pythusa StreamReader {self.name!r} {self.shape} {self.dtype} {kind}>"


class StreamWriter(_Binding):
    """A task's writer of one stream (PYTHUSA's `StreamWriter`).

    - `write(arr)`: checks the shape and dtype (`ValueError`), copies the frame in and publishes
      it: True, or False if the ring is full (nothing written). Never blocks.
    - `look()` / `increment()`: a writable zero-copy memoryview of the next slot (None if the
      ring is full), then publish it. Do not keep the view after `increment()`.

    The writer is closed when the task function returns, which ends the stream for its readers
    (they drain it). `raw` / `ring` is PYTHUSA's raw ring facade over the shmline `Writer`.
    """

    def __init__(self, writer: Writer[Any], name: str, shape: Tuple[int, ...],
                 dtype: Any) -> None:
        super().__init__(name, shape, dtype)
        self._writer = writer
        self._slot: Optional[WriteSlot[Any]] = None

    @property
    def raw(self) -> Any:
        """PYTHUSA's raw ring of this binding: a `SharedRingBuffer` facade over the writer."""
        from ._ring import SharedRingBuffer

        return SharedRingBuffer._of(self, writer=self.writer)

    ring = raw

    @property
    def writer(self) -> Writer[Any]:
        """The shmline `Writer` underneath."""
        return self._writer

    def write(self, array: Any) -> bool:
        """Publishes one frame: True, or False if the ring is full now (nothing written)."""
        frame = _checked(array, self.shape, self.dtype)
        try:
            return self._writer.try_write(frame)
        except errors.Full:
            return False

    def look(self) -> Optional[memoryview]:
        """A writable zero-copy view (bytes) of the next slot, or None if the ring is full.
        Looking again before `increment()` gives the same slot."""
        if self._looked is not None:
            return self._looked
        try:
            self._slot = self._writer.reserve(timeout=0)
        except (errors.Timeout, errors.Full):
            return None
        self._looked = _byte_view(self._slot.view)
        return self._looked

    def increment(self) -> None:
        """Publishes the slot `look()` lent. Without a `look()` first it raises `RuntimeError`
        (PYTHUSA would publish whatever bytes the slot held)."""
        if self._slot is None:
            raise RuntimeError(f"stream {self.name!r}: increment() without look(): call look() "
                               "and fill the view first")
        self._release_look()
        slot, self._slot = self._slot, None
        slot.commit()

    def close(self) -> None:
        """Closes the writer: its readers read what is left, then the stream has ended."""
        if self._slot is not None:
            self._slot.abort()
            self._slot = self._looked = None
        self._writer.close()

    def __repr__(self) -> str:
        return f"<pythusa StreamWriter {self.name!r} {self.shape} {self.dtype}>"


def _checked(array: Any, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """`array` as a C-contiguous ndarray of `shape` and `dtype`; ValueError as PYTHUSA's."""
    frame = np.asarray(array)
    if tuple(frame.shape) != shape:
        raise ValueError(f"Expected frame with shape {shape}, got {tuple(frame.shape)}.")
    if frame.dtype != dtype:
        raise ValueError(f"Expected frame with dtype {dtype}, got {frame.dtype}.")
    if not frame.flags.c_contiguous:
        frame = np.ascontiguousarray(frame)
    return frame
