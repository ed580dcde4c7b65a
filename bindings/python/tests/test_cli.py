"""The `shmline` command comes with the package: the `shmline` script pip installs and
`python -m shmline` run the bundled Rust binary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import shmline
from shmline._cli import command_path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def test_the_package_bundles_the_shmline_command():
    path = command_path()
    assert path.is_file() and os.access(path, os.X_OK)
    assert path.parent.parent == Path(shmline.__file__).resolve().parent


def test_python_dash_m_shmline_runs_the_command_and_passes_its_exit_status():
    done = run(sys.executable, "-m", "shmline", "--help")
    assert done.returncode == 0, done.stderr
    for command in ("ls", "top", "info", "run", "clean", "bench"):
        assert command in done.stdout
    bad = run(sys.executable, "-m", "shmline", "info", "no-such-stream-anywhere")
    assert bad.returncode != 0
    assert "no-such-stream-anywhere" in bad.stderr


def test_the_installed_shmline_script_shows_a_live_stream(name):
    script = Path(sys.executable).parent / "shmline"
    assert script.is_file(), f"pip installed no shmline script next to {sys.executable}"
    with shmline.Stream.create(name, shape=(4,), dtype=np.float32, unlink_on_close=True) as s:
        with s.writer() as w:
            w.write(np.zeros(4, dtype=np.float32))
            done = run(str(script), "info", name)
            assert done.returncode == 0, done.stderr
            assert name in done.stdout
