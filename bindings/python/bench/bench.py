"""Throughput and latency of shmline from Python, side by side with what Python users pick instead.

Two processes per measurement: a producer and a consumer of NumPy frames (dtype uint64) of 64 B,
4 KiB, 64 KiB and 1 MiB (--sizes), through:
- shmline, copy: the producer `write`s one reused array, stamped in place; the consumer
  `read`s (a new array per frame);
- shmline, read_into: the same producer; the consumer `read_into`s one reused array;
- shmline, zero-copy: the producer, `with reserve() as f`, writes only the two stamps into the
  slot (the rest of the payload keeps what the slot held); the consumer, `with acquire() as f`,
  reads only the two stamps. Its frames/s is the per-frame cost of the zero-copy calls; its
  GB/s counts payload handed over in place, not bytes moved, and compares with no other path;
- shmline, batch (64 B only): `write_batch` of a (256, 8) array / `read_batch_into` a reused one;
- multiprocessing.Queue(maxsize=64): `put(frame.copy())` (pickled by the queue's feeder thread)
  / `get()`;
- multiprocessing.Pipe: `send_bytes(frame)` / `recv_bytes_into(reused array)`;
- pyzmq PUSH/PULL over ipc://, high-water marks of 64 messages on each side: `send(frame)` (a
  copy: the array is reused) / `recv(copy=False)` viewed with `np.frombuffer`;
- a hand-made single-producer single-consumer ring on multiprocessing.shared_memory (busy
  polling, `np.copyto` in and out, as a careful user would write it);
- PYTHUSA's SharedRingBuffer (`write_array` / `read_array`) with its tuned settings
  (min_reader_pos_refresh_s=0, min_reader_pos_refresh_interval=1), in its own interpreter
  (`--pythusa-python`), since it pins numpy<2.3.

Every frame carries its sequence number in its first and last 8 bytes; the producer writes them
(in place for zero-copy), the consumer checks them, and only frames that arrive intact and in
order count. The rings have 64 slots (PYTHUSA 64 frames' worth of bytes; --capacity changes
every 64 above; an mp.Pipe holds what the OS pipe buffer holds). The consumer counts frames over
a 1 s window that starts 0.3 s after its first frames, then tells the producer to stop; the
producer then ends the stream its transport's way, and the pyzmq producer keeps its connection
open until the consumer has read that end (closed at once, it lost the last frames in flight).

Per-call costs: one process calls write/read/... in a loop (`micro`), to show the binding's
overhead over the raw C calls.

One-way latency: a ping-pong of 64 B frames carrying the sender's clock; one way is half of each
round trip; a warm-up of 2000 round trips or 0.5 s, whichever ends first, then 20000 round trips
or 5 s, whichever ends first (`samples` says how many were measured), so that a run always ends;
busy polling where the transport can (shmline readers with wait="busy_spin", the hand-made
ring, PYTHUSA), blocking receives elsewhere.

Usage (from the repository root, after scripts/python-test built target/pyenv):
    target/pyenv/bin/python -m pip install pyzmq matplotlib
    python3 -m venv target/bench-pythusa
    target/bench-pythusa/bin/pip install --ignore-requires-python pythusa "numpy<2.3"
    target/pyenv/bin/python bindings/python/bench/bench.py --runs 3 \\
        --pythusa-python target/bench-pythusa/bin/python \\
        --json target/bench-python.json --plots docs/img
    # The table and plots again from that report, measuring nothing:
    target/pyenv/bin/python bindings/python/bench/bench.py --replot \\
        --json target/bench-python.json --plots docs/img

A benchmark, never a test: it prints a table and writes JSON (medians over --runs) and, with
--plots, two PNG plots.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import shared_memory
from typing import Callable, Dict, List, Optional

import numpy as np

SIZES = [64, 4096, 65536, 1 << 20]
# Slots of every ring (frames' worth of buffer for the byte-oriented transports): --capacity,
# passed to each measurement's processes through the environment.
CAPACITY = int(os.environ.get("BENCH_CAPACITY", "64"))
BATCH = 256
WARMUP_S = 0.3
WINDOW_S = 1.0
# The ping-pong: a warm-up of PING_WARMUP round trips or PING_WARMUP_S seconds, whichever ends
# first, then PINGS round trips or PING_S seconds, whichever ends first (two busy-polling
# processes on a loaded machine can take milliseconds per round trip: unbounded, the 22000 round
# trips took over 300 s).
PINGS = 20000
PING_WARMUP = 2000
PING_WARMUP_S = 0.5
PING_S = 5.0

# Each measurement runs in a fresh process (`--one`) under the interpreter its transport needs;
# that process is the consumer (or the pinger) and starts the producer (or the echoer) with
# multiprocessing's spawn method.
THROUGHPUT = [
    ("shmline", "copy"), ("shmline", "read_into"), ("shmline", "zero-copy"),
    ("shmline", "batch"), ("mp.Queue", "copy"), ("mp.Pipe", "copy"), ("pyzmq", "copy"),
    ("shm ring", "copy"), ("pythusa", "copy"),
]
LATENCY = ["shmline", "mp.Queue", "mp.Pipe", "pyzmq", "shm ring", "pythusa"]
# What --only and --kinds accept.
TRANSPORTS = list(dict.fromkeys([t for t, _ in THROUGHPUT] + LATENCY))
KINDS = ["throughput", "latency", "micro"]


def frame_shape(size: int):
    return (size // 8,)


class Stop:
    """A flag in shared memory the consumer raises when it has measured enough; the producer
    looks at it every 256 frames (an mp.Event per frame would cost more than a 64 B frame). The
    consumer raises it further once it has received the producer's end of stream, for a
    producer that must keep its connection open until then (pyzmq)."""

    def __init__(self, name: Optional[str] = None) -> None:
        self.shm = shared_memory.SharedMemory(name=name, create=name is None, size=8)
        self.flag = np.ndarray((1,), np.uint64, self.shm.buf)
        if name is None:
            self.flag[0] = 0

    def set(self) -> None:
        self.flag[0] = 1

    def is_set(self) -> bool:
        return bool(self.flag[0])

    def set_received_all(self) -> None:
        self.flag[0] = 2

    def wait_received_all(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.flag[0] != 2:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def close(self, unlink: bool = False) -> None:
        del self.flag
        self.shm.close()
        if unlink:
            self.shm.unlink()


class Counter:
    """Counts intact frames over the measurement window, then tells the producer to stop."""

    def __init__(self, stop: Stop, size: int) -> None:
        self.stop = stop
        self.size = size
        self.start: Optional[float] = None  # the first call: frames are arriving
        self.t0 = None
        self.n0 = 0
        self.result = None
        self.bad = 0

    def tick(self, count: int) -> bool:
        """Called now and then with the intact frames so far; True once the window is over."""
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        if self.t0 is None:
            if now - self.start >= WARMUP_S:
                self.t0, self.n0 = now, count
            return False
        if now - self.t0 >= WINDOW_S:
            frames = count - self.n0
            seconds = now - self.t0
            self.result = {"frames_per_s": frames / seconds,
                           "bytes_per_s": frames * self.size / seconds, "bad": self.bad}
            self.stop.set()
            return True
        return False


# ---------------------------------------------------------------------------------------------
# Producers (run in the spawned process). Each writes frames 0, 1, 2... stamped with their
# sequence number until the stop flag is up, then ends the stream its transport's way.

def produce(transport: str, mode: str, size: int, stop_name: str, endpoint) -> None:
    stop = Stop(stop_name)
    frame = np.zeros(frame_shape(size), np.uint64)
    i = 0
    if transport == "shmline":
        import shmline
        writer = shmline.Stream.open(endpoint).writer(wait=os.environ.get("BENCH_WAIT", "adaptive"))
        writer.wait_for_readers(1, timeout=60)
        if mode == "batch":
            batch = np.zeros((BATCH,) + frame_shape(size), np.uint64)
            seqs = np.arange(BATCH, dtype=np.uint64)
            while not stop.is_set():
                batch[:, 0] = seqs + i
                batch[:, -1] = batch[:, 0]
                writer.write_batch(batch)
                i += BATCH
        elif mode == "zero-copy":
            reserve = writer.reserve
            while not stop.is_set():
                for _ in range(256):
                    with reserve() as f:
                        f[0] = i
                        f[-1] = i
                    i += 1
        else:
            write = writer.write
            while not stop.is_set():
                for _ in range(256):
                    frame[0] = i
                    frame[-1] = i
                    write(frame)
                    i += 1
        writer.close()
    elif transport == "mp.Queue":
        while not stop.is_set():
            for _ in range(256):
                frame[0] = i
                frame[-1] = i
                endpoint.put(frame.copy())  # put() pickles later, in a thread
                i += 1
        endpoint.put(None)
    elif transport == "mp.Pipe":
        send = endpoint.send_bytes
        while not stop.is_set():
            for _ in range(256):
                frame[0] = i
                frame[-1] = i
                send(frame)
                i += 1
        send(b"")
    elif transport == "pyzmq":
        import zmq
        ctx = zmq.Context()
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, CAPACITY)
        sock.connect(endpoint)
        while not stop.is_set():
            for _ in range(256):
                frame[0] = i
                frame[-1] = i
                sock.send(frame)
                i += 1
        sock.send(b"")
        # Keep the connection open until the consumer has read the end of stream. Closing it
        # at once lost the last frames (and the end) whenever the consumer lagged behind: at
        # 64 B under load the producer had sent 220160 frames, the consumer got 218233, then
        # nothing until its recv timed out; linger only hands the frames to the kernel.
        stop.wait_received_all(60)
        sock.close(linger=-1)
        ctx.term()
    elif transport == "shm ring":
        ring = HandRing(size, endpoint)
        while not stop.is_set():
            for _ in range(256):
                frame[0] = i
                frame[-1] = i
                ring.put(frame, stop)
                i += 1
        frame[0] = frame[-1] = np.uint64(2**64 - 1)
        ring.put(frame, None)
        ring.close()
    elif transport == "pythusa":
        import pythusa
        ring = pythusa.SharedRingBuffer(
            name=endpoint, create=False, size=CAPACITY * size, num_readers=1,
            reader=pythusa.SharedRingBuffer._NO_READER, min_reader_pos_refresh_s=0,
            min_reader_pos_refresh_interval=1)
        write = ring.write_array
        while not stop.is_set():
            for _ in range(256):
                frame[0] = i
                frame[-1] = i
                while not write(frame):
                    if stop.is_set():
                        break
                i += 1
        frame[0] = frame[-1] = np.uint64(2**64 - 1)
        while not write(frame):
            pass
        ring.close()
    stop.close()


class HandRing:
    """A single-producer single-consumer ring on multiprocessing.shared_memory: `CAPACITY`
    slots, a head and a tail counter on their own cache lines, busy polling. (x86 keeps stores
    in order, which this relies on.)"""

    def __init__(self, size: int, name: Optional[str] = None) -> None:
        total = 128 + CAPACITY * size
        self.shm = shared_memory.SharedMemory(name=name, create=name is None, size=total)
        self.counters = np.ndarray((16,), np.int64, self.shm.buf)
        if name is None:
            self.counters[:] = 0
        self.slots = [np.ndarray(frame_shape(size), np.uint64, self.shm.buf, 128 + k * size)
                      for k in range(CAPACITY)]
        self.head = int(self.counters[0])
        self.tail = int(self.counters[8])

    def put(self, frame: np.ndarray, stop: Optional[Stop]) -> None:
        while self.head - self.tail >= CAPACITY:
            self.tail = int(self.counters[8])
        np.copyto(self.slots[self.head % CAPACITY], frame)
        self.head += 1
        self.counters[0] = self.head

    def get_into(self, out: np.ndarray) -> None:
        while self.tail == self.head:
            self.head = int(self.counters[0])
        np.copyto(out, self.slots[self.tail % CAPACITY])
        self.tail += 1
        self.counters[8] = self.tail

    def close(self, unlink: bool = False) -> None:
        del self.counters, self.slots
        self.shm.close()
        if unlink:
            self.shm.unlink()


# ---------------------------------------------------------------------------------------------
# Consumers: count intact frames (first and last 8 bytes equal to the next sequence number).

def consume(transport: str, mode: str, size: int) -> dict:
    ctx = mp.get_context("spawn")
    stop = Stop()
    counter = Counter(stop, size)
    expected = 0  # the next sequence number due
    seen = 0  # frames received, intact or not
    tag = f"bench-{os.getpid()}"
    producer_args: List = []
    cleanup: Callable[[], None] = lambda: None
    if transport == "shmline":
        import shmline
        stream = shmline.Stream.create(tag, dtype=np.uint64, shape=frame_shape(size),
                                       capacity=CAPACITY, unlink_on_close=True)
        reader = stream.reader(wait=os.environ.get("BENCH_WAIT", "adaptive"))
        producer_args = [tag]
    elif transport == "mp.Queue":
        queue = ctx.Queue(maxsize=CAPACITY)
        producer_args = [queue]
    elif transport == "mp.Pipe":
        recv_end, send_end = ctx.Pipe(duplex=False)
        producer_args = [send_end]
    elif transport == "pyzmq":
        import zmq
        path = os.path.join(tempfile.mkdtemp(), "bench.ipc")
        zctx = zmq.Context()
        sock = zctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, CAPACITY)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)  # a dead producer fails the measurement
        sock.bind(f"ipc://{path}")
        producer_args = [f"ipc://{path}"]
    elif transport == "shm ring":
        ring = HandRing(size)
        producer_args = [ring.shm.name]
    elif transport == "pythusa":
        import pythusa
        pring = pythusa.SharedRingBuffer(
            name=tag, create=True, size=CAPACITY * size, num_readers=1, reader=0,
            min_reader_pos_refresh_s=0, min_reader_pos_refresh_interval=1)
        pring.set_reader_active(True)
        producer_args = [tag]
    producer = ctx.Process(target=produce,
                           args=(transport, mode, size, stop.shm.name, *producer_args))
    producer.start()
    try:
        if transport == "shmline":
            if mode == "batch":
                out = np.empty((BATCH,) + frame_shape(size), np.uint64)
                read = reader.read_batch_into
                while True:
                    try:
                        n = read(out)
                    except shmline.EndOfStream:
                        break
                    heads = out[:n, 0]
                    good = heads[0] == expected and heads[-1] == expected + n - 1 and \
                        np.array_equal(heads, out[:n, -1])
                    if good:
                        expected += n
                    else:
                        counter.bad += n
                        expected = int(out[n - 1, 0]) + 1
                    counter.tick(expected)
            elif mode == "zero-copy":
                acquire = reader.acquire
                while True:
                    try:
                        with acquire() as f:
                            if f.item(0) == expected and f.item(-1) == expected:
                                expected += 1
                            else:
                                counter.bad += 1
                    except shmline.EndOfStream:
                        break
                    seen += 1
                    if seen & 255 == 0:
                        counter.tick(expected)
            else:
                read = reader.read
                out = np.empty(frame_shape(size), np.uint64)
                read_into = reader.read_into
                while True:
                    try:
                        if mode == "copy":
                            f = read()
                        else:
                            read_into(out)
                            f = out
                    except shmline.EndOfStream:
                        break
                    if f.item(0) == expected and f.item(-1) == expected:
                        expected += 1
                    else:
                        counter.bad += 1
                    seen += 1
                    if seen & 255 == 0:
                        counter.tick(expected)
            reader.close()
            stream.close()
        elif transport == "mp.Queue":
            get = lambda: queue.get(timeout=60)  # noqa: E731
            while True:
                f = get()
                if f is None:
                    break
                if f.item(0) == expected and f.item(-1) == expected:
                    expected += 1
                else:
                    counter.bad += 1
                    expected = f.item(0) + 1
                seen += 1
                if seen & 255 == 0:
                    counter.tick(expected)
        elif transport == "mp.Pipe":
            out = np.empty(frame_shape(size), np.uint64)
            recv_into = recv_end.recv_bytes_into
            while recv_into(out):
                if out.item(0) == expected and out.item(-1) == expected:
                    expected += 1
                else:
                    counter.bad += 1
                    expected = out.item(0) + 1
                seen += 1
                if seen & 255 == 0:
                    counter.tick(expected)
        elif transport == "pyzmq":
            recv = sock.recv
            frombuffer = np.frombuffer
            while True:
                msg = recv(copy=False)
                if len(msg) == 0:
                    stop.set_received_all()
                    break
                f = frombuffer(msg, np.uint64)
                if f.item(0) == expected and f.item(-1) == expected:
                    expected += 1
                else:
                    counter.bad += 1
                    expected = f.item(0) + 1
                seen += 1
                if seen & 255 == 0:
                    counter.tick(expected)
            sock.close()
            zctx.term()
        elif transport == "shm ring":
            out = np.empty(frame_shape(size), np.uint64)
            end = 2**64 - 1
            while True:
                ring.get_into(out)
                head = out.item(0)
                if head == end:
                    break
                if head == expected and out.item(-1) == expected:
                    expected += 1
                else:
                    counter.bad += 1
                    expected = head + 1
                seen += 1
                if seen & 255 == 0:
                    counter.tick(expected)
            cleanup = lambda: ring.close(unlink=True)  # noqa: E731
        elif transport == "pythusa":
            read = pring.read_array
            dt = np.dtype(np.uint64)
            end = 2**64 - 1
            while True:
                f = read(size, dt)
                if f.size == 0:
                    continue
                head = f.item(0)
                if head == end:
                    break
                # read_array hands out a view of the ring and frees the space at once: the writer
                # may be overwriting it already. Count only what is still intact now.
                if head == expected and f.item(-1) == expected:
                    expected += 1
                else:
                    counter.bad += 1
                    expected = head + 1
                seen += 1
                if seen & 255 == 0:
                    counter.tick(expected)
            del f
            cleanup = lambda: (pring.close(), pring.unlink())  # noqa: E731
        producer.join(60)
    finally:
        if producer.is_alive():
            producer.kill()
        cleanup()
        stop.close(unlink=True)
    return counter.result or {"frames_per_s": 0.0, "bytes_per_s": 0.0, "bad": counter.bad}


# ---------------------------------------------------------------------------------------------
# Latency: the pinger sends a 64 B frame holding its clock, the echoer sends it back.

def echo(transport: str, a, b) -> None:
    """Echoes frames from `a` to `b` until a frame whose first word is 0."""
    frame = np.empty(8, np.uint64)
    if transport == "shmline":
        import shmline
        reader = shmline.Stream.open(a).reader(wait="busy_spin")
        writer = shmline.Stream.open(b).writer()
        while True:
            f = reader.read()
            writer.write(f)
            if f.item(0) == 0:
                break
        writer.close()
    elif transport == "mp.Queue":
        while True:
            f = a.get()
            b.put(f)
            if f.item(0) == 0:
                break
    elif transport == "mp.Pipe":
        while True:
            a.recv_bytes_into(frame)
            b.send_bytes(frame)
            if frame.item(0) == 0:
                break
    elif transport == "pyzmq":
        import zmq
        ctx = zmq.Context()
        rx, tx = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        rx.connect(a)
        tx.connect(b)
        while True:
            msg = rx.recv()
            tx.send(msg)
            if np.frombuffer(msg, np.uint64).item(0) == 0:
                break
        rx.close()
        tx.close(linger=-1)
        ctx.term()
    elif transport == "shm ring":
        rx, tx = HandRing(64, a), HandRing(64, b)
        while True:
            rx.get_into(frame)
            tx.put(frame, None)
            if frame.item(0) == 0:
                break
        rx.close()
        tx.close()
    elif transport == "pythusa":
        import pythusa
        kw = dict(create=False, size=CAPACITY * 64, num_readers=1, min_reader_pos_refresh_s=0,
                  min_reader_pos_refresh_interval=1)
        rx = pythusa.SharedRingBuffer(name=a, reader=0, **kw)
        rx.set_reader_active(True)
        tx = pythusa.SharedRingBuffer(name=b, reader=pythusa.SharedRingBuffer._NO_READER, **kw)
        dt = np.dtype(np.uint64)
        while True:
            f = rx.read_array(64, dt)
            if f.size == 0:
                continue
            np.copyto(frame, f)
            while not tx.write_array(frame):
                pass
            if frame.item(0) == 0:
                break
        del f
        rx.close()
        tx.close()


def ping(transport: str) -> dict:
    ctx = mp.get_context("spawn")
    tag = f"bench-{os.getpid()}"
    frame = np.zeros(8, np.uint64)
    out = np.empty(8, np.uint64)
    clock = time.perf_counter_ns
    if transport == "shmline":
        import shmline
        s_ping = shmline.Stream.create(tag + "-ping", dtype=np.uint64, shape=(8,),
                                       capacity=CAPACITY, unlink_on_close=True)
        s_pong = shmline.Stream.create(tag + "-pong", dtype=np.uint64, shape=(8,),
                                       capacity=CAPACITY, unlink_on_close=True)
        pong_reader = s_pong.reader(wait="busy_spin")
        args = [tag + "-ping", tag + "-pong"]
    elif transport == "mp.Queue":
        q1, q2 = ctx.Queue(), ctx.Queue()
        args = [q1, q2]
    elif transport == "mp.Pipe":
        r1, w1 = ctx.Pipe(duplex=False)
        r2, w2 = ctx.Pipe(duplex=False)
        args = [r1, w2]
    elif transport == "pyzmq":
        import zmq
        d = tempfile.mkdtemp()
        zctx = zmq.Context()
        tx, rx = zctx.socket(zmq.PUSH), zctx.socket(zmq.PULL)
        tx.bind(f"ipc://{d}/ping")
        rx.bind(f"ipc://{d}/pong")
        args = [f"ipc://{d}/ping", f"ipc://{d}/pong"]
    elif transport == "shm ring":
        r_ping, r_pong = HandRing(64), HandRing(64)
        args = [r_ping.shm.name, r_pong.shm.name]
    elif transport == "pythusa":
        import pythusa
        kw = dict(size=CAPACITY * 64, num_readers=1, min_reader_pos_refresh_s=0,
                  min_reader_pos_refresh_interval=1)
        p_ping = pythusa.SharedRingBuffer(name=tag + "-ping", create=True,
                                          reader=pythusa.SharedRingBuffer._NO_READER, **kw)
        p_pong = pythusa.SharedRingBuffer(name=tag + "-pong", create=True, reader=0, **kw)
        p_pong.set_reader_active(True)
        args = [tag + "-ping", tag + "-pong"]
    echoer = ctx.Process(target=echo, args=(transport, *args))
    echoer.start()
    if transport == "shmline":
        writer = s_ping.writer()
        writer.wait_for_readers(1, timeout=60)
        send = writer.write
        recv = pong_reader.read_into
    elif transport == "mp.Queue":
        send, recv = q1.put, (lambda o: np.copyto(o, q2.get()))
    elif transport == "mp.Pipe":
        send, recv = w1.send_bytes, r2.recv_bytes_into
    elif transport == "pyzmq":
        send = tx.send
        recv = (lambda o: np.copyto(o, np.frombuffer(rx.recv(), np.uint64)))
    elif transport == "shm ring":
        send = (lambda f: r_ping.put(f, None))
        recv = r_pong.get_into
    elif transport == "pythusa":
        def send(f):
            while not p_ping.write_array(f):
                pass

        def recv(o):
            while True:
                f = p_pong.read_array(64, np.dtype(np.uint64))
                if f.size:
                    np.copyto(o, f)
                    return
    one_way = []
    try:
        for phase, rounds, seconds in (("warm-up", PING_WARMUP, PING_WARMUP_S),
                                       ("measure", PINGS, PING_S)):
            deadline = clock() + int(seconds * 1e9)
            for _ in range(rounds):
                t = clock()
                frame[0] = t
                send(frame)
                recv(out)
                end = clock()
                if phase == "measure":
                    one_way.append((end - t) / 2)
                if end > deadline:
                    break
        frame[0] = 0
        send(frame)
        echoer.join(60)
    finally:
        if echoer.is_alive():
            echoer.kill()
        if transport == "shmline":
            writer.close()
            pong_reader.close()
            s_ping.close()
            s_pong.close()
        elif transport == "pyzmq":
            tx.close(linger=0)
            rx.close()
            zctx.term()
        elif transport == "shm ring":
            r_ping.close(unlink=True)
            r_pong.close(unlink=True)
        elif transport == "pythusa":
            for r in (p_ping, p_pong):
                r.close()
                r.unlink()
    one_way.sort()
    return {"p50_us": one_way[len(one_way) // 2] / 1e3,
            "p99_us": one_way[int(len(one_way) * 0.99)] / 1e3, "samples": len(one_way)}


# ---------------------------------------------------------------------------------------------
# Per-call costs in one process (no other process, no cache-line transfers): where the time of a
# call goes, to compare the binding's overhead with the C call underneath it.

def micro() -> dict:
    import timeit

    import shmline
    from shmline._ffi import ffi, lib

    n = 20000
    tag = f"bench-micro-{os.getpid()}"
    stream = shmline.Stream.create(tag, dtype=np.uint64, shape=(8,), capacity=1 << 16,
                                   unlink_on_close=True)
    reader, writer = stream.reader(), stream.writer()
    frame = np.zeros(8, np.uint64)
    out = np.empty(8, np.uint64)
    c_frame, c_out = ffi.from_buffer(frame), ffi.from_buffer(out)
    info = ffi.new("shmline_frame_info *")
    wh, rh = writer._h, reader._h

    def per_call(statement: Callable[[], object], calls: int = 1) -> float:
        best = min(timeit.repeat(statement, number=n, repeat=5))
        return best / n / calls * 1e9

    def write_then(read: Callable[[], object]) -> Callable[[], None]:
        def both() -> None:
            for _ in range(64):
                writer.write(frame)
            for _ in range(64):
                read()
        return both

    def raw_pair() -> None:
        for _ in range(64):
            lib.shmline_writer_write(wh, c_frame, 64, 0, 0)
        for _ in range(64):
            lib.shmline_reader_read(rh, c_out, 64, 0, info)

    def zero_copy() -> None:
        for _ in range(64):
            with writer.reserve() as f:
                f[0] = 1
        for _ in range(64):
            with reader.acquire() as f:
                f.item(0)

    result = {
        "cffi call (shmline_layout_version)": per_call(lib.shmline_layout_version),
        "ffi.from_buffer(64 B array)": per_call(lambda: ffi.from_buffer(frame)),
        "np.empty((8,), uint64)": per_call(lambda: np.empty((8,), np.uint64)),
        "C write + C read (raw cffi)": per_call(raw_pair, 64),
        "write + read_into": per_call(write_then(lambda: reader.read_into(out)), 64),
        "write + read": per_call(write_then(reader.read), 64),
        "reserve/commit + acquire/release": per_call(zero_copy, 64),
    }
    batch = np.zeros((256, 8), np.uint64)
    batch_out = np.empty((256, 8), np.uint64)
    result["write_batch + read_batch_into, per frame (256)"] = per_call(
        lambda: (writer.write_batch(batch), reader.read_batch_into(batch_out)), 256)
    reader.close()
    writer.close()
    stream.close()
    for size in (64, 4096):
        result.update(one_side(size, per_call))
    return result


def one_side(size: int, per_call: Callable[..., float]) -> Dict[str, float]:
    """The per-call cost of each side alone, frames of `size` bytes, 256 slots, every slot
    used before timing. The producer side writes to a stream without readers (it never waits);
    the consumer side reads frames put there by one `write_batch` of 64, whose cost (timed on a
    stream without readers) is subtracted."""
    import shmline

    shape = (size // 8,)
    tag = f"bench-side-{os.getpid()}-{size}"
    lone = shmline.Stream.create(tag + "-w", dtype=np.uint64, shape=shape, capacity=256,
                                 unlink_on_close=True)
    stream = shmline.Stream.create(tag, dtype=np.uint64, shape=shape, capacity=256,
                                   unlink_on_close=True)
    lone_writer, reader, writer = lone.writer(), stream.reader(), stream.writer()
    frame, out = np.zeros(shape, np.uint64), np.empty(shape, np.uint64)
    batch = np.zeros((64,) + shape, np.uint64)

    def write() -> None:
        for i in range(64):
            frame[0] = i
            frame[-1] = i
            lone_writer.write(frame)

    def reserve() -> None:
        for i in range(64):
            with lone_writer.reserve() as f:
                f[0] = i
                f[-1] = i

    def fill() -> None:
        lone_writer.write_batch(batch)

    def reading(read: Callable[[], object]) -> Callable[[], None]:
        def both() -> None:
            writer.write_batch(batch)
            for _ in range(64):
                read()
        return both

    def acquire() -> None:
        with reader.acquire() as f:
            f.item(0)
            f.item(-1)

    def read() -> None:
        f = reader.read()
        f.item(0)
        f.item(-1)

    def read_into() -> None:
        reader.read_into(out)
        out.item(0)
        out.item(-1)

    for _ in range(8):  # every slot's array and view made
        reserve()
        reading(acquire)()
    fill_cost = per_call(fill, 64)
    label = f"{size} B one side: "
    result = {label + "write (2 stamps)": per_call(write, 64),
              label + "with reserve() (2 stamps)": per_call(reserve, 64)}
    for name, call in (("read", read), ("read_into", read_into), ("with acquire()", acquire)):
        result[label + name + " (2 item)"] = per_call(reading(call), 64) - fill_cost
    for handle in (lone_writer, reader, writer, lone, stream):
        handle.close()
    return result


# ---------------------------------------------------------------------------------------------
# Orchestration.

def run_one(python: str, spec: dict) -> Optional[dict]:
    try:
        done = subprocess.run([python, os.path.abspath(__file__), "--one", json.dumps(spec)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    except subprocess.TimeoutExpired:
        # Every measurement is bounded in time (the window, the ping-pong's budget): one that
        # runs this long hangs (a peer that died), and costs a missing figure, not the run.
        print(f"  {spec}: no result within 300 s", file=sys.stderr)
        return None
    if done.returncode != 0:
        print(f"  {spec}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    import shmline
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "kernel": platform.release(),
            "shmline": shmline.library_version, "cffi_mode": shmline.cffi_mode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3,
                        help="times every measurement runs; the table gives medians (default 3)")
    parser.add_argument("--pythusa-python",
                        help="interpreter with pythusa installed (PYTHUSA pins an older NumPy, so "
                             "it lives in a virtual environment of its own); without it PYTHUSA "
                             "is left out")
    parser.add_argument("--only",
                        help="comma-separated transports to run, of: "
                             + ", ".join(TRANSPORTS) + " (default: all)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma-separated kinds of measurement to run, of: "
                             + ", ".join(KINDS) + " (default: all)")
    parser.add_argument("--json", default="target/bench-python.json",
                        help="where the report goes (default target/bench-python.json)")
    parser.add_argument("--plots", help="directory for the PNG plots")
    parser.add_argument("--replot", action="store_true",
                        help="measure nothing: read the report --json names, print its table "
                             "and (with --plots) draw its plots again")
    parser.add_argument("--wait", default="adaptive", choices=["adaptive", "busy_spin", "block"],
                        help="wait strategy of shmline's throughput readers and writers")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated frame sizes in bytes of the throughput cases")
    parser.add_argument("--capacity", type=int, default=64,
                        help="slots per ring (frames' worth of buffer for byte rings, high-water "
                             "marks for queues), for every transport (default 64)")
    args = parser.parse_args()
    if args.one:
        spec = json.loads(args.one)
        if spec["kind"] == "latency":
            result = ping(spec["transport"])
        elif spec["kind"] == "micro":
            result = micro()
        else:
            result = consume(spec["transport"], spec["mode"], spec["size"])
        print(json.dumps(result))
        return
    if args.replot:
        with open(args.json) as f:
            report = json.load(f)
        print_table(report)
        if args.plots:
            plot(report, args.plots)
        return
    if args.runs < 1:
        parser.error(f"--runs: {args.runs} runs measure nothing; give 1 or more")
    only = set(args.only.split(",")) if args.only else None
    unknown = sorted((only or set()) - set(TRANSPORTS))
    if unknown:
        parser.error(f"--only: no transport {', '.join(map(repr, unknown))}; "
                     f"the transports are {', '.join(TRANSPORTS)}")
    kinds = set(args.kinds.split(","))
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        parser.error(f"--kinds: no kind {', '.join(map(repr, unknown))}; "
                     f"the kinds are {', '.join(KINDS)}")
    os.environ["BENCH_WAIT"] = args.wait  # inherited by every measurement's processes
    os.environ["BENCH_CAPACITY"] = str(args.capacity)
    specs = []
    sizes = [int(size) for size in args.sizes.split(",")]
    for transport, mode in THROUGHPUT:
        for size in sizes:
            if mode == "batch" and size != 64:
                continue
            specs.append({"kind": "throughput", "transport": transport, "mode": mode,
                          "size": size})
    specs += [{"kind": "latency", "transport": t, "mode": "ping-pong", "size": 64}
              for t in LATENCY]
    specs.append({"kind": "micro", "transport": "shmline", "mode": "one process", "size": 64})
    specs = [s for s in specs
             if (only is None or s["transport"] in only) and s["kind"] in kinds]
    if not args.pythusa_python:
        specs = [s for s in specs if s["transport"] != "pythusa"]
    samples: Dict[str, List[dict]] = {}
    load_before = os.getloadavg()
    for run in range(args.runs):
        print(f"run {run + 1} of {args.runs}", file=sys.stderr)
        for spec in specs:
            python = args.pythusa_python if spec["transport"] == "pythusa" else sys.executable
            result = run_one(python, spec)
            if result is not None:
                key = json.dumps({k: spec[k] for k in ("kind", "transport", "mode", "size")})
                samples.setdefault(key, []).append(result)
    rows = []
    for key, results in samples.items():
        row = json.loads(key)
        for field in results[0]:
            row[field] = statistics.median(r[field] for r in results)
        row["runs"] = len(results)
        rows.append(row)
    report = {"machine": machine(), "command": " ".join(sys.argv), "runs": args.runs,
              "shmline_wait": args.wait, "capacity": args.capacity,
              "load_average_before": load_before, "load_average": os.getloadavg(),
              "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print_table(report)
    if args.plots:
        plot(report, args.plots)


def human_size(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB" if size >= 1024 \
        else f"{size} B"


def print_table(report: dict) -> None:
    print(f"machine: {report['machine']}")
    print(f"{report.get('capacity', 64)} slots per ring; load average before "
          f"{report.get('load_average_before')}, after {report['load_average']}")
    print(f"{'transport':<10} {'mode':<10} {'frame':>7} {'frames/s':>12} {'GB/s':>8} {'bad':>6}")
    for r in report["rows"]:
        if r["kind"] == "throughput":
            print(f"{r['transport']:<10} {r['mode']:<10} {human_size(r['size']):>7} "
                  f"{r['frames_per_s']:>12,.0f} {r['bytes_per_s'] / 1e9:>8.2f} {r['bad']:>6.0f}")
    for r in report["rows"]:
        if r["kind"] == "micro":
            print("\nper call, one process (ns):")
            for k, v in r.items():
                if isinstance(v, float):
                    print(f"  {k:<48} {v:>8.0f}")
    print(f"\n{'transport':<10} {'one-way p50 (us)':>17} {'p99 (us)':>10} {'samples':>8}")
    for r in report["rows"]:
        if r["kind"] == "latency":
            print(f"{r['transport']:<10} {r['p50_us']:>17.2f} {r['p99_us']:>10.2f} "
                  f"{r.get('samples', '-'):>8}")


def plot(report: dict, directory: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    rows = [r for r in report["rows"] if r["kind"] == "throughput"]
    # The sizes this report measured (--sizes), not the default ones.
    sizes = sorted({r["size"] for r in rows})
    series = sorted({(r["transport"], r["mode"]) for r in rows if r["mode"] != "batch"},
                    key=lambda s: (s[0] != "shmline", s))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, field, label, scale in [(axes[0], "frames_per_s", "million frames/s", 1e6),
                                    (axes[1], "bytes_per_s", "GB/s", 1e9)]:
        width = 0.8 / len(series)
        for k, (transport, mode) in enumerate(series):
            values = [next((r[field] / scale for r in rows if r["transport"] == transport and
                            r["mode"] == mode and r["size"] == size), 0) for size in sizes]
            ax.bar([x + k * width for x in range(len(sizes))], values, width,
                   label=transport if mode == "copy" else f"{transport} {mode}")
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(sizes))])
        ax.set_xticklabels([human_size(s) for s in sizes])
        ax.set_xlabel("frame size")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Python, two processes: frames delivered intact (higher is better)")
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "python_throughput.png"), dpi=110)
    plt.close(fig)

    lat = [r for r in report["rows"] if r["kind"] == "latency"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [r["transport"] for r in lat]
    ax.bar(range(len(lat)), [r["p50_us"] for r in lat], label="p50")
    ax.scatter(range(len(lat)), [r["p99_us"] for r in lat], color="black", zorder=3, label="p99")
    ax.set_xticks(range(len(lat)))
    ax.set_xticklabels(names)
    ax.set_yscale("log")
    ax.set_ylabel("one-way latency (us), 64 B")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax.set_title("Python, two processes: one-way latency (lower is better)")
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "python_latency.png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
