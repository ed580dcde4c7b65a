"""shmline: move NumPy frames (or bytes) between processes through shared memory.

    import numpy as np, shmline

    with shmline.Stream.create("samples", shape=(8,), dtype=np.float32,
                               unlink_on_close=True) as stream:
        reader = stream.reader()
        writer = stream.writer()
        writer.write(np.arange(8, dtype=np.float32))
        print(reader.read())

The same streams and events are open to C, C++ and Rust programs: this package is a thin layer
over the C library (`include/shmline.h`), which it bundles.

- `Stream`: a ring of frames with one `Writer` and many `Reader`s (copy, batch and zero-copy
  calls; the zero-copy rules are in the docs of `shmline.stream`).
- `Event`: a process-shared flag or counter to set, clear and wait on.
- `Pipeline`: streams, events and tasks (Python functions or programs in any language), each
  task a process, with PYTHUSA's programming model; `Task`: how a program joins its pipeline.
- `WaitSet`, `select`: wait on several readers and events at once (fan-in) without polling.
- `shmline.pythusa`: PYTHUSA 0.1.6's API and semantics (`import shmline.pythusa as pythusa`).
- `errors`: one exception per C status code, under `ShmlineError`.
- `shmline.dsline`: dsline's `ShmChannel` API, across processes.

Typing (the package passes `mypy --strict`): a stream created with a `dtype` is a
`Stream[Array]`, whose readers (`ArrayReader`) return NumPy arrays; one created without is a
`Stream[bytes]`, whose readers (`BytesReader`) return `bytes`; a stream opened by name is a
`Stream[Any]` until annotated. Option strings are `Literal` types (`Wait`, `Start`,
`Backpressure`, `EventMode`); a value outside them raises `InvalidArgumentError`.
"""

from ._common import Array, Backpressure, DType, EventMode, FrameInfo, Start, Wait
from ._ffi import MODE as _MODE
from ._ffi import lib as _lib
from ._ffi import string as _string
from .errors import *  # noqa: F401,F403  (the exception classes are part of the API)
from .errors import __all__ as _errors_all
from .event import Event
from .pipeline import (
    Pipeline, PipelineMetrics, RunReport, StreamMetrics, TaskMetrics, TaskReport,
)
from .reader import Reader, ReadSlot
from .stream import ReaderStats, Stream, StreamInfo, StreamStats
from .task import Task
from .writer import Writer, WriteSlot
from .waitset import WaitSet, select

# The reader and writer of each kind of stream, for annotations (`def scale(samples:
# shmline.ArrayReader, doubled: shmline.ArrayWriter) -> None`).
#: A reader of a stream with a schema: its frames are `Array`s.
ArrayReader = Reader[Array]
#: A reader of a bytes stream: its frames are `bytes`.
BytesReader = Reader[bytes]
#: A writer of a stream with a schema.
ArrayWriter = Writer[Array]
#: A writer of a bytes stream.
BytesWriter = Writer[bytes]

__version__ = "0.1.0"

#: Version of the bundled C library ("major.minor.patch").
library_version: str = _string(_lib.shmline_version())
#: Shared-memory layout version the bundled library speaks (docs/LAYOUT.md).
layout_version: int = int(_lib.shmline_layout_version())
#: How the package calls the library: "api" (compiled cffi module) or "abi" (libffi).
cffi_mode: str = _MODE

__all__ = [
    "Stream", "Writer", "Reader", "WriteSlot", "ReadSlot", "Event", "FrameInfo", "StreamInfo",
    "StreamStats",
    "ReaderStats", "Pipeline", "Task", "RunReport", "TaskReport", "PipelineMetrics",
    "StreamMetrics", "TaskMetrics", "WaitSet", "select", "library_version", "layout_version",
    "cffi_mode", "Array", "ArrayReader", "BytesReader", "ArrayWriter", "BytesWriter", "DType",
    "Wait", "Start", "Backpressure", "EventMode",
    *_errors_all,
]
