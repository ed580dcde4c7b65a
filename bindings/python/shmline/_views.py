"""The memory behind zero-copy views, and what keeps it mapped.

Every view `Writer.reserve()` or `Reader.acquire()` lends is a NumPy array or memoryview over one
`Ring` buffer per writer or reader. The buffer holds a reference to the C stream handle, whose
destructor unmaps the stream: so as long as any view, or anything derived from it (slices,
`np.asarray`, memoryviews), is alive, the memory it points to stays mapped, whatever was closed.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import errors
from ._common import NULL
from ._ffi import ffi


class StreamRef:
    """What a writer or reader keeps of its stream: the C stream handle, which pins the mapping
    for zero-copy views, and the stream's name, schema and geometry, without keeping the Python
    `Stream` object open."""

    __slots__ = ("pin", "name", "dtype", "shape", "frame_size", "max_frame_size", "slot_size",
                 "capacity", "backpressure")

    def __init__(self, pin: Any, name: str, dtype: Optional[np.dtype],
                 shape: Optional[Tuple[int, ...]], frame_size: Optional[int],
                 max_frame_size: int, slot_size: int, capacity: int,
                 backpressure: str) -> None:
        if pin == NULL:
            raise errors.ClosedError(f"stream {name!r} is closed")
        self.pin = pin
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.frame_size = frame_size
        self.max_frame_size = max_frame_size
        self.slot_size = slot_size
        self.capacity = capacity
        self.backpressure = backpressure


class Ring:
    """The slots of a stream as one Python buffer, the base of every zero-copy view.

    Built on the first reserve or acquire from the payload address the library returned, the
    frame's sequence number and the layout (`docs/LAYOUT.md`: the slot of frame `s` is
    `s & (capacity - 1)`, slots are `slot_size` apart): it spans from slot 0's payload to the end
    of the last slot's payload, all inside the stream's mapping.
    """

    __slots__ = ("base", "buffer", "writable", "readonly", "capacity_mask", "slot_size", "length")

    def __init__(self, stream: StreamRef, address: int, seq: int) -> None:
        self.slot_size = stream.slot_size
        self.capacity_mask = stream.capacity - 1
        self.base = address - (seq & self.capacity_mask) * self.slot_size
        self.length = self.capacity_mask * self.slot_size + stream.max_frame_size
        handle = stream.pin

        def keep_mapped(_: Any, _handle: Any = handle) -> None:
            """Holds the stream handle, and so the mapping, until the buffer is gone."""

        pinned = ffi.gc(ffi.cast("char *", self.base), keep_mapped)
        self.buffer = ffi.buffer(pinned, self.length)
        self.writable = memoryview(self.buffer)
        self.readonly = self.writable.toreadonly()

    def offset(self, address: int, seq: int) -> int:
        """The offset in the buffer of the payload of frame `seq`, which the library lent at
        `address`; checked against the layout."""
        offset = (seq & self.capacity_mask) * self.slot_size
        if address - self.base != offset:
            raise errors.CorruptError(
                f"slot address {address:#x} of frame {seq} is not where the layout puts slot "
                f"{seq & self.capacity_mask} (base {self.base:#x}): a shmline bug, please report it"
            )
        return offset


def retire(view: memoryview) -> None:
    """Makes a bytes view that leaves its `with` block unusable: released, so any later use
    raises ValueError. (Array views cannot be revoked for reading: they keep the memory mapped
    instead; a writer's is made read-only.)"""
    try:
        view.release()
    except BufferError:
        pass  # something still uses its buffer: that keeps the mapping alive
