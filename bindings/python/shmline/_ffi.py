"""Loads the C library bundled with the package and exposes it as cffi's `ffi` and `lib`.

The package is built in one of two cffi modes (setup.py): API mode, a compiled module whose `lib`
is linked to the bundled `libshmline.so.0`, or ABI mode, a pure-Python module of declarations
whose library is opened here with `dlopen`. Everything else in the package uses `ffi` and `lib`
and does not care which.
"""

from __future__ import annotations

import os
from typing import Any

try:
    from . import _shmline_cffi  # type: ignore[attr-defined]
except ImportError as e:  # pragma: no cover
    raise ImportError(
        f"shmline's compiled part is missing from {os.path.dirname(__file__)}: this is probably "
        "the source tree, not an installed package. Install it with `pip install "
        "./bindings/python` and import it from another directory (`python -m pytest` puts the "
        "current directory first on sys.path: run `pytest` instead)"
    ) from e

ffi: Any = _shmline_cffi.ffi
lib: Any
if hasattr(_shmline_cffi, "lib"):
    lib = _shmline_cffi.lib
    MODE = "api"
else:
    lib = ffi.dlopen(os.path.join(os.path.dirname(os.path.abspath(__file__)), "libshmline.so.0"))
    MODE = "abi"

if lib.shmline_layout_version() != lib.SHMLINE_LAYOUT_VERSION:  # pragma: no cover
    raise ImportError(
        f"the bundled libshmline speaks layout version {lib.shmline_layout_version()}, but the "
        f"package was built for {lib.SHMLINE_LAYOUT_VERSION}: reinstall shmline"
    )


def string(ptr: Any) -> str:
    """A NUL-terminated C string returned by the library, as `str` ('' for NULL)."""
    return "" if ptr == ffi.NULL else ffi.string(ptr).decode("utf-8", "replace")
