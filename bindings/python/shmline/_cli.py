"""The `shmline` command that comes with the package: `shmline ls`, `top`, `info`, `run`, `clean`,
`bench` (the same program as the Rust crate's `shmline` binary, bundled in the wheel).

pip installs a `shmline` script that calls `main()`, and `python -m shmline ...` does the same.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["main", "command_path"]


def command_path() -> Path:
    """Where the bundled `shmline` command is (it may be missing from a source tree that was
    never built: `FileNotFoundError` then says how to get it)."""
    path = Path(__file__).resolve().parent / "bin" / "shmline"
    if not path.is_file():
        raise FileNotFoundError(
            f"the shmline command is not bundled at {path}: install the package with pip "
            "(pip install ./bindings/python builds it), or run the Rust crate's binary "
            "(cargo run --release --bin shmline -- ...)")
    return path


def main() -> None:
    """Runs the bundled `shmline` command with this process's arguments, in place of Python (its
    exit status is the command's)."""
    try:
        path = command_path()
    except FileNotFoundError as e:
        print(f"shmline: {e}", file=sys.stderr)
        raise SystemExit(127) from None
    os.execv(path, ["shmline", *sys.argv[1:]])


if __name__ == "__main__":
    main()
