"""Task functions of the PYTHUSA compatibility tests (test_pythusa.py), written as PYTHUSA users
write them: bindings by keyword, polling reads, results sent back through a spawn-context
`multiprocessing.Queue` held by a `functools.partial`."""

from __future__ import annotations

import time

import numpy as np

PATIENCE = 60.0


def wait_read(reader, patience: float = PATIENCE):
    """The next frame of a PYTHUSA reader, polling as PYTHUSA code does."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        frame = reader.read()
        if frame is not None:
            return frame
        time.sleep(0.001)
    raise TimeoutError(f"no frame on {reader.name!r}")


def wait_write(writer, frame, patience: float = PATIENCE) -> None:
    deadline = time.monotonic() + patience
    while not writer.write(frame):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{writer.name!r} stayed full")
        time.sleep(0.001)


def count_source(out, n: int = 10) -> None:
    for i in range(n):
        wait_write(out, np.full(4, i, np.int64))


def collect(results, inp, n: int = 10) -> None:
    results.put([int(wait_read(inp)[0]) for _ in range(n)])


def gated_source(out, go) -> None:
    assert go.wait(PATIENCE)
    count_source(out)


def bindings_report(results, inp, go) -> None:
    """What the bindings say before frames come (the source waits for `go`) and after, sent
    as a dict."""
    report = {"empty_read": inp.read(), "blocking": inp.is_blocking(),
              "empty_look": inp.look()}
    out = np.empty(4, np.int64)
    report["empty_read_into"] = inp.read_into(out)
    go.signal()
    frame = wait_read(inp)
    report["first"] = int(frame[0])
    deadline = time.monotonic() + PATIENCE
    while not inp.read_into(out):
        assert time.monotonic() < deadline
    report["second"] = int(out[0])
    view = None
    while view is None:
        view = inp.look()
    report["look_again_same"] = inp.look() is view
    report["looked"] = int(np.frombuffer(view, np.int64)[0])
    report["readonly"] = view.readonly
    inp.increment()
    report["after_increment"] = int(wait_read(inp)[0])
    inp.set_blocking(False)
    report["non_blocking"] = not inp.is_blocking()
    results.put(report)


def full_writer(results, out, go) -> None:
    """Fills a ring nobody drains (its reader waits on `go`), and reports what write() and
    look() say when it is full."""
    written = 0
    while out.write(np.full(4, written, np.int64)):
        written += 1
    view = out.look()
    results.put({"written": written, "look_full": view is None})
    go.signal()


def slow_reader(results, inp, go) -> None:
    go.wait(PATIENCE)
    results.put([int(wait_read(inp)[0]) for _ in range(8)])


def zero_copy_writer(out, n: int = 5) -> None:
    for i in range(n):
        deadline = time.monotonic() + PATIENCE
        view = out.look()
        while view is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
            view = out.look()
        np.frombuffer(view, np.int64)[:] = i * 10
        out.increment()


def pulse(results, trigger, done) -> None:
    """Signals `trigger` three times, waiting for the toggled task each time."""
    for _ in range(3):
        trigger.signal()
        assert done.wait(PATIENCE)
        done.reset()
    results.put("pulsed")


def toggled(results, done) -> None:
    results.put("ran")
    done.signal()


def switched(results, out) -> None:
    results.put("on")
    time.sleep(0.01)


def failing(inp) -> None:
    raise RuntimeError("task failed on purpose")


def forever(inp) -> None:
    while True:
        inp.read()
        time.sleep(0.005)


def passthrough(inp, out, n: int = 10) -> None:
    for _ in range(n):
        wait_write(out, wait_read(inp))


def merge(results, a, b, expect: int) -> None:
    """PYTHUSA's fan-in: polls two inputs until `expect` frames came from both together."""
    seen = []
    deadline = time.monotonic() + PATIENCE
    while len(seen) < expect and time.monotonic() < deadline:
        got = False
        for reader in (a, b):
            frame = reader.read()
            if frame is not None:
                seen.append(int(frame[0]))
                got = True
        if not got:
            time.sleep(0.001)
    results.put(sorted(seen))


def merge_select(results, a, b) -> None:
    """The same fan-in without polling: `shmline.select` over the PYTHUSA bindings, until both
    inputs have ended."""
    import shmline

    results.put(sorted(int(frame[0]) for _, frame in shmline.select(a=a, b=b)))


def scale_by(inp, out, weights, n: int = 10) -> None:
    for _ in range(n):
        wait_write(out, (wait_read(inp) * weights).astype(np.int64))


def stalled_sink(inp, release) -> None:
    release.wait(PATIENCE)


def kwargs_task(results, **bindings) -> None:
    results.put(sorted(bindings))
    for binding in bindings.values():
        if hasattr(binding, "write"):
            binding.write(np.zeros(4, np.int64))


def lapped_reader(results, inp, ready, written) -> None:
    """Leaves backpressure, lets the writer lap it, then reports what it reads and missed."""
    inp.set_blocking(False)
    ready.signal()
    assert written.wait(PATIENCE)
    seen = []
    while (frame := inp.read()) is not None:
        seen.append(int(frame[0]))
    results.put({"seen": seen, "missed": inp.missed, "blocking": inp.is_blocking()})


def lapping_writer(out, ready, written, n: int = 64) -> None:
    assert ready.wait(PATIENCE)
    for i in range(n):
        assert out.write(np.full(4, i, np.int64))  # a lossy reader never fills the ring
    written.signal()


def raw_writer(out) -> None:
    """PYTHUSA's raw ring calls through `.raw` and get_writer()."""
    import shmline.pythusa as pythusa

    assert pythusa.get_writer("numbers") is out.raw
    for i in range(3):
        while out.raw.write_array(np.full(4, i, np.int64)) == 0:
            time.sleep(0.001)


def raw_reader(results, inp) -> None:
    import shmline.pythusa as pythusa

    ring = pythusa.get_reader("numbers")
    got = []
    deadline = time.monotonic() + PATIENCE
    while len(got) < 3 and time.monotonic() < deadline:
        array = ring.read_array(32, dtype=np.int64)
        if array.size == 0:
            time.sleep(0.001)
            continue
        got.append(array.tolist())
    results.put({"got": got, "active": ring.is_reader_active()})


def manager_producer(count) -> None:
    import shmline.pythusa as pythusa

    ring = pythusa.get_writer("bytes")
    for i in range(count):
        while ring.write_array(np.arange(i, i + 3, dtype=np.int32)) == 0:
            time.sleep(0.001)
    pythusa.get_event("done").signal()


def manager_consumer(results, count) -> None:
    import shmline.pythusa as pythusa

    ring = pythusa.get_reader("bytes")
    done = pythusa.get_event("done")
    assert done.wait(PATIENCE)
    total = 0
    for _ in range(count * 2):  # 12-byte frames read 6 bytes at a time
        view = ring.expose_reader_mem_view(6)
        assert view[2] >= 6 and view[1] is None
        out = bytearray(6)
        ring.simple_read(view, out)
        ring.inc_reader_pos(6)
        total += len(out)
    results.put(total)


def _release(ring_view) -> None:
    ring_view[0].release()
    if ring_view[1] is not None:
        ring_view[1].release()


def _active_readers(ring) -> int:
    return sum(int(ring.header[slot + 1] != 0) for slot in range(6, len(ring.header), 3))


def raw_view_writer(frames, **unused) -> None:
    """PYTHUSA's raw idiom: wait until the header shows an active reader, then write each frame
    through expose_writer_mem_view / simple_write / inc_writer_pos, releasing every view."""
    ring = frames.raw
    deadline = time.monotonic() + PATIENCE
    while _active_readers(ring) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    for i in range(5):
        src = memoryview(np.full(8, i, np.float32)).cast("B")
        while True:
            view = ring.expose_writer_mem_view(32)
            try:
                if view[2] < 32:
                    time.sleep(0.001)
                    continue
                ring.simple_write(view, src)
                ring.inc_writer_pos(32)
                break
            finally:
                _release(view)


def raw_view_reader(results, frames) -> None:
    ring = frames.raw
    frame = np.empty(8, np.float32)
    dst = memoryview(frame).cast("B")
    got = []
    deadline = time.monotonic() + PATIENCE
    while len(got) < 5 and time.monotonic() < deadline:
        view = ring.expose_reader_mem_view(32)
        try:
            if view[2] < 32:
                time.sleep(0.001)
                continue
            ring.simple_read(view, dst)
            ring.inc_reader_pos(32)
            got.append(float(frame[0]))
        finally:
            _release(view)
    results.put({"got": got, "active": _active_readers(ring),
                 "size": int(ring.header[0]), "pressure": ring.calculate_pressure()})


def native_sink(results, samples) -> None:
    """A task of a native shmline.Pipeline: blocking reads until the stream ends."""
    results.put([int(frame[0]) for frame in samples])


class Scaler:
    """A bound method as a native task function."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def run(self, samples, scaled) -> None:
        for frame in samples:
            scaled.write(frame * self.factor)
