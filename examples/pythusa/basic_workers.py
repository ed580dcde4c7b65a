"""PYTHUSA's raw runtime (Manager, RingSpec, TaskSpec, SharedRingBuffer), as in its
basic_workers example: a producer writes batches of float64 counters into a ring with
`write_array`, a consumer reads them back with `expose_reader_mem_view` / `simple_read` /
`inc_reader_pos`, each task finding its ring with `get_writer` / `get_reader`. Small sizes:
4 batches of 16 values, then both tasks return. Run: python examples/pythusa/basic_workers.py"""

from __future__ import annotations

import time

import numpy as np

import shmline.pythusa as pythusa

RING_NAME = "counter_stream"
DTYPE = np.float64
BATCH = 16
BATCHES = 4
NBYTES = BATCH * np.dtype(DTYPE).itemsize


def producer() -> None:
    writer = pythusa.get_writer(RING_NAME)
    for first in range(0, BATCH * BATCHES, BATCH):
        payload = np.arange(first, first + BATCH, dtype=DTYPE)
        while writer.write_array(payload) == 0:  # 0 bytes: the ring is full
            time.sleep(0.001)


def consumer() -> None:
    reader = pythusa.get_reader(RING_NAME)
    batch = np.empty(BATCH, dtype=DTYPE)
    batch_bytes = memoryview(batch).cast("B")
    total = 0.0
    for _ in range(BATCHES):
        while True:
            view = reader.expose_reader_mem_view(NBYTES)
            if view[2] >= NBYTES:
                break
            time.sleep(0.001)
        reader.simple_read(view, batch_bytes)
        reader.inc_reader_pos(NBYTES)
        total += float(batch.sum())
    print(f"basic_workers: {BATCH * BATCHES} values, checksum {total:.0f}", flush=True)


def main() -> None:
    with pythusa.Manager() as manager:
        manager.create_ring(pythusa.RingSpec(name=RING_NAME, size=NBYTES * 32, num_readers=1))
        manager.create_task(pythusa.TaskSpec(name="consumer", fn=consumer,
                                             reading_rings=(RING_NAME,)))
        manager.create_task(pythusa.TaskSpec(name="producer", fn=producer,
                                             writing_rings=(RING_NAME,)))
        manager.start("consumer")
        manager.start("producer")
        manager.join("consumer", timeout=60)
        manager.join("producer", timeout=60)


if __name__ == "__main__":
    main()
