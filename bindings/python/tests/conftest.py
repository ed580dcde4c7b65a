"""Shared fixtures: unique segment names, a check that no test leaves a segment in /dev/shm,
child processes, and the peer programs in C and Rust (the frames they exchange: frames.py)."""

from __future__ import annotations

import gc
import itertools
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

import shmline

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
# How long any wait for another process may take before a test fails (a loaded 2-core machine).
PATIENCE = 60.0

_counter = itertools.count()


def leftovers(tag: str) -> List[str]:
    return [n for n in os.listdir("/dev/shm") if tag in n]


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A segment name no other test or run uses; the test fails if a segment whose name contains
    it is left in /dev/shm afterwards (those are removed, so one failure does not cascade)."""
    tag = f"pytest-{os.getpid()}-{next(_counter)}"
    yield tag
    gc.collect()  # views and handles caught in reference cycles
    left = leftovers(tag)
    for n in left:
        os.unlink(f"/dev/shm/{n}")
    assert not left, f"the test left segments in /dev/shm: {left}"


def start(target, *args) -> multiprocessing.process.BaseProcess:
    """Starts `target(*args)` in a new (spawned) process."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    return process


def reap(processes: List[multiprocessing.process.BaseProcess]) -> None:
    """Waits for every process; kills those still running after PATIENCE (a failed test)."""
    for p in processes:
        p.join(PATIENCE)
        if p.is_alive():
            p.kill()
            p.join()


def run_python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    """Starts a Python child running `code` with `args` in sys.argv[1:]."""
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def finish(child: subprocess.Popen, expect: str) -> str:
    """Waits for a child and checks it succeeded and printed `expect`."""
    try:
        out, err = child.communicate(timeout=PATIENCE * 2)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"child {child.args[:2]} hung:\n{out}\n{err}")
    assert child.returncode == 0 and expect in out, (
        f"child failed with {child.returncode}:\nstdout: {out}\nstderr: {err}")
    return out


@pytest.fixture(scope="session")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the C peers (tests/c/reader.c and writer.c of the crate, and
    tests/peers/xlang_peer.c) compiled against include/shmline.h and linked to the library
    bundled in the installed package."""
    return compile_c({"c_reader": ROOT / "tests/c/reader.c", "c_writer": ROOT / "tests/c/writer.c",
                      "xlang_peer": HERE / "peers/xlang_peer.c"}, tmp_path_factory.mktemp("peers"))


def compile_c(sources: dict, out: Path) -> Path:
    """Compiles each C program of `sources` (name: path) into `out` against include/shmline.h,
    linked to the library bundled in the installed package."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    libdir = Path(shmline.__file__).parent
    for program, source in sources.items():
        subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-O1", "-I", str(ROOT / "include"),
                        str(source), str(libdir / "libshmline.so.0"), f"-Wl,-rpath,{libdir}",
                        "-o", str(out / program)], check=True)
    return out


def cargo_example(example: str) -> Path:
    """The crate's example `example`, built (release) with cargo."""
    cargo = os.environ.get("CARGO") or shutil.which("cargo") or str(Path.home() / ".cargo/bin/cargo")
    if not Path(cargo).exists() and shutil.which(cargo) is None:
        pytest.skip("no cargo")
    done = subprocess.run([cargo, "build", "--release", "--example", example,
                           "--message-format=json-render-diagnostics",
                           "--manifest-path", str(ROOT / "Cargo.toml")],
                          stdout=subprocess.PIPE, text=True, check=True)
    for line in done.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] == example:
            return Path(message["executable"])
    pytest.fail(f"cargo built no {example} executable")


@pytest.fixture(scope="session")
def rust_peer() -> Path:
    """examples/xlang_peer.rs, built with cargo."""
    return cargo_example("xlang_peer")


@pytest.fixture(scope="session")
def rust_task() -> Path:
    """examples/pipeline_task.rs, built with cargo: PYTHUSA's quick start stages (source, scale,
    sink of float32 x 8 frames) as a pipeline task program taking its role as argument."""
    return cargo_example("pipeline_task")


@pytest.fixture(scope="session")
def c_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the crate's C pipeline task programs (tests/c/task_source.c,
    task_scale.c, task_sink.c) built as task_source, task_scale and task_sink."""
    return compile_c({f"task_{role}": ROOT / f"tests/c/task_{role}.c"
                      for role in ("source", "scale", "sink")},
                     tmp_path_factory.mktemp("c_tasks"))
