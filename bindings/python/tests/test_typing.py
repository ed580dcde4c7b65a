"""Static typing: the package and the Python examples of the READMEs pass `mypy --strict`, and a
read returns what the stream's schema says (an array or bytes) to the type checker.

mypy runs once for the whole module (about a minute cold). Without mypy installed the tests are
skipped, unless SHMLINE_REQUIRE_MYPY=1 (the CI suite `mypy` sets it), which makes them fail.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import ROOT

PACKAGE = ROOT / "bindings" / "python"
READMES = [ROOT / "README.md", PACKAGE / "README.md"]

# What the README fragments use without defining it (they continue one another).
PRELUDE = '''\
from typing import List
import numpy as np
import shmline
writer: shmline.ArrayWriter
reader: shmline.ArrayReader
reader_a: shmline.ArrayReader
reader_b: shmline.ArrayReader
stop_event: shmline.Event
a: shmline.Array
b: shmline.Array
total = 0.0
jobs: List[bytes]
def handle(name: str, frame: shmline.Array) -> None: ...
'''

# What the checker must infer for each kind of stream.
REVEAL = '''\
import numpy as np
import shmline
arrays = shmline.Stream.create("a", shape=(4,), dtype=np.float32)
blobs = shmline.Stream.create("b", max_frame_size=64)
opened = shmline.Stream.open("c")
reveal_type(arrays.reader().read())
reveal_type(blobs.reader().read())
reveal_type(arrays.reader().read_batch(8))
reveal_type(blobs.reader().read_batch(8))
with arrays.reader().acquire() as view:
    reveal_type(view)
with blobs.writer().reserve() as slot:
    reveal_type(slot)
reveal_type(opened.reader().read())
'''

# An error the checker must find: a bytes stream's frame used as an array.
WRONG = '''\
import shmline
blobs = shmline.Stream.create("b", max_frame_size=64)
total: float = blobs.reader().read().sum()
'''


def python_blocks(readme: Path) -> List[str]:
    """The ```python blocks of a Markdown file."""
    return re.findall(r"^```python\n(.*?)^```", readme.read_text(), re.S | re.M)


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, List[str]]:
    """mypy --strict's messages on the package and on each file checked, by file name."""
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("SHMLINE_REQUIRE_MYPY") == "1":
            pytest.fail("mypy is not installed (pip install mypy)")
        pytest.skip("mypy is not installed (SHMLINE_REQUIRE_MYPY=1 makes this a failure)")
    where = tmp_path_factory.mktemp("typing")
    files: List[Path] = []
    for readme in READMES:
        for i, block in enumerate(python_blocks(readme)):
            path = where / f"readme_{readme.parent.name}_{i}.py"
            path.write_text(PRELUDE + block)
            files.append(path)
    assert len(files) >= 8, f"the READMEs lost their Python examples: {files}"
    (where / "reveal.py").write_text(REVEAL)
    (where / "wrong.py").write_text(WRONG)
    # From the package's source directory, so that `shmline` is the source tree checked.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes",
         "--cache-dir", str(ROOT / "target" / "mypy-cache"), "shmline",
         *map(str, files), str(where / "reveal.py"), str(where / "wrong.py")],
        cwd=PACKAGE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    report: Dict[str, List[str]] = {}
    for line in done.stdout.splitlines():
        report.setdefault(Path(line.split(":", 1)[0]).name, []).append(line)
    return report


def test_the_package_passes_mypy_strict(mypy_report):
    problems = [line for name, lines in mypy_report.items() for line in lines
                if not name.startswith(("readme_", "reveal", "wrong"))]
    assert not problems, "\n".join(problems)


def test_the_readme_examples_pass_mypy_strict(mypy_report):
    problems = [line for name, lines in mypy_report.items() for line in lines
                if name.startswith("readme_")]
    assert not problems, "\n".join(problems)


def test_a_read_is_an_array_on_a_schema_stream_and_bytes_on_a_bytes_stream(mypy_report):
    # mypy and NumPy versions spell builtins and ndarray's parameters differently: compare
    # without the module prefix, and any ndarray as "array".
    revealed = [re.sub(r".*Revealed type is ", "", line).replace("builtins.", "")
                for line in mypy_report["reveal.py"]]
    kinds = ["array" if r.startswith('"numpy.ndarray[') else r for r in revealed]
    assert kinds == ["array", '"bytes"', "array", '"list[bytes]"', "array", '"memoryview[int]"',
                     '"Any"'], revealed


def test_using_a_bytes_frame_as_an_array_is_a_type_error(mypy_report):
    assert any('"bytes" has no attribute "sum"' in line for line in mypy_report["wrong.py"]), \
        mypy_report.get("wrong.py")
