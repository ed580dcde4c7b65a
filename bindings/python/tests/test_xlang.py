"""Frames across processes and languages: a writer in one process (Python, C or Rust) and
readers in others, every frame checked by its reader (contents, sequence number, flags), on
small rings so that backpressure is exercised, with checksums on. Python peers switch between
copy, zero-copy, batch and read_into paths every 100 frames (peers/py_peer.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

import shmline
from conftest import HERE, PATIENCE, finish
from frames import KINDS, PATTERN_MAX

FRAMES = 1200  # 12 chunks: every writer mode meets every reader mode
PY_PEER = HERE / "peers" / "py_peer.py"


def create(name: str, kind: str) -> shmline.Stream:
    dtype, shape = KINDS[kind]
    if dtype is None:
        return shmline.Stream.create(name, max_frame_size=PATTERN_MAX, capacity=16,
                                     checksum=True, unlink_on_close=True)
    return shmline.Stream.create(name, dtype=dtype, shape=shape, capacity=16, checksum=True,
                                 unlink_on_close=True)


def command(side: str, role: str, kind: str, name: str, peers_dir: Path, rust: Path) -> List[str]:
    if side == "python":
        return [sys.executable, str(PY_PEER), role, kind, name, str(FRAMES)]
    if side == "c" and kind == "pattern":
        return [str(peers_dir / f"c_{role}"), name, str(FRAMES)]
    if side == "c":
        return [str(peers_dir / "xlang_peer"), role, name, str(FRAMES)]
    return [str(rust), role, name, str(FRAMES)]


def expected(side: str, role: str) -> str:
    verb = "wrote" if role == "writer" else "read"
    return f"{verb} {FRAMES} frames"


def wait_for_readers(stream: shmline.Stream, count: int, children) -> None:
    deadline = time.monotonic() + PATIENCE
    while stream.stats().reader_count < count:
        for child in children:
            if child.poll() is not None:
                finish(child, "ready")  # fails with the child's output
        assert time.monotonic() < deadline, "the readers never attached"
        time.sleep(0.01)


def exchange(name: str, kind: str, writer: str, readers: List[str], peers_dir: Path = None,
             rust: Path = None) -> None:
    with create(name, kind) as stream:
        children = [subprocess.Popen(command(side, "reader", kind, name, peers_dir, rust),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for side in readers]
        try:
            wait_for_readers(stream, len(readers), children)
            writer_child = subprocess.Popen(command(writer, "writer", kind, name, peers_dir, rust),
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True)
            finish(writer_child, expected(writer, "writer"))
            for side, child in zip(readers, children):
                finish(child, expected(side, "reader"))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        stats = stream.stats()
        assert stats.frames_written == FRAMES and stats.writer_state == "closed"


@pytest.mark.parametrize("kind", ["numpy", "pattern"])
def test_a_python_writer_delivers_every_frame_in_order_to_a_python_reader_in_another_process(
        name, kind):
    exchange(name, kind, "python", ["python"])


def test_a_python_writer_delivers_every_numpy_frame_to_python_c_and_rust_readers_at_once(
        name, peers, rust_peer):
    exchange(name, "xlang", "python", ["python", "c", "rust"], peers, rust_peer)


def test_a_c_writer_delivers_every_numpy_frame_in_order_to_a_python_reader(name, peers):
    exchange(name, "xlang", "c", ["python"], peers)


def test_a_rust_writer_delivers_every_numpy_frame_in_order_to_a_python_reader(name, rust_peer):
    exchange(name, "xlang", "rust", ["python"], rust=rust_peer)


def test_a_c_writer_delivers_every_bytes_frame_in_order_to_a_python_reader(name, peers):
    exchange(name, "pattern", "c", ["python"], peers)


def test_a_python_writer_delivers_every_bytes_frame_in_order_to_a_c_reader(name, peers):
    exchange(name, "pattern", "python", ["c"], peers)
