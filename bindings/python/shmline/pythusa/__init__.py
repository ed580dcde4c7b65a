"""PYTHUSA 0.1.6's public API over shmline: `import shmline.pythusa as pythusa` is the only
change a PYTHUSA program needs.

    import numpy as np
    import shmline.pythusa as pythusa

    def source(samples):
        samples.write(np.arange(8, dtype=np.float32))

    def sink(samples):
        while (frame := samples.read()) is None:
            time.sleep(0.001)
        print(frame)

    if __name__ == "__main__":
        with pythusa.Pipeline("demo") as pipe:
            pipe.add_stream("samples", shape=(8,), dtype=np.float32)
            pipe.add_task("source", fn=source, writes={"samples": "samples"})
            pipe.add_task("sink", fn=sink, reads={"samples": "samples"})
            pipe.run()

The bindings keep PYTHUSA's meaning (nothing blocks: `read()` returns None and `write()`
returns False when they cannot act now), over shmline's streams, events and runner. Where
PYTHUSA is unsafe, shmline's behaviour is kept and the docstrings say so: frames are copied
before their slot is released (no torn reads), every task joins before any runs (no startup
race), a non-blocking reader that is lapped counts what it missed, a failed task stops the
pipeline and is named. `bindings/python/README.md` ("Coming from PYTHUSA") lists every
difference.

- `Pipeline`: declarations, `compile`/`start`/`run`/`stop`/`join`/`close`, `save`/
  `reconstruct`, `start_monitor`/`metrics` (`ProcessMetrics`).
- `WorkerEvent` / `EventSpec`: counted activation events.
- The imperative layer: `Manager`, `RingSpec`, `TaskSpec`, `SharedRingBuffer`, and inside a
  task `get_reader`/`get_writer`/`get_event`.
"""

from ._context import get_event, get_reader, get_writer
from ._events import EventSpec, WorkerEvent
from ._manager import Manager, TaskSpec, Worker
from ._pipeline import Pipeline, ProcessMetrics
from ._ring import RingSpec, SharedRingBuffer

#: The PYTHUSA release whose API this module follows.
PYTHUSA_VERSION = "0.1.6"
__version__ = PYTHUSA_VERSION

__all__ = [
    "Pipeline", "ProcessMetrics", "WorkerEvent", "EventSpec", "Manager", "RingSpec", "TaskSpec",
    "Worker", "SharedRingBuffer", "get_reader", "get_writer", "get_event", "PYTHUSA_VERSION",
]
