"""Builds the shmline Python package: the Rust library (with cargo) and the cffi module over it.

`pip install ./bindings/python` runs this in place, inside the repository: it needs the crate at
`../../Cargo.toml` and the C header at `../../include/shmline.h`, plus a Rust toolchain (cargo)
and the C compiler that Rust already needs for linking. The wheel it makes bundles
`libshmline.so.0` and the `shmline` command (`shmline/bin/shmline`, run by the `shmline` script
and by `python -m shmline`), so the installed package needs no compiler at run time.

Two ways to call the library, chosen here at build time (README.md, "How the package is built"):
- API mode (the default): a small C extension compiled against `include/shmline.h` and linked to
  the bundled library. About 100 ns faster per call than ABI mode; needs the Python headers.
- ABI mode (the fallback, or `SHMLINE_CFFI_MODE=abi`): a pure-Python module of pre-parsed
  declarations that `dlopen`s the bundled library through libffi. Needs no Python headers.
Either way the declarations are the checked-in C header, so Python calls exactly the C ABI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HEADER = ROOT / "include" / "shmline.h"
MODULE = "shmline._shmline_cffi"
# The library's SONAME (build.rs): the API-mode extension records it as a dependency and finds the
# bundled copy next to itself through its $ORIGIN run path.
SONAME = "libshmline.so.0"


def header_to_cdef(text: str) -> str:
    """The declarations of a cbindgen C header, in the subset of C that cffi's cdef parses.

    Drops comments, the include guard, `#include`s and the `#ifdef __cplusplus` blocks; keeps
    `#define NAME VALUE` constants (cffi reads integer ones) and every declaration unchanged.
    """
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    kept: list[str] = []
    skipping: list[bool] = []  # one entry per open #if: whether that block is dropped
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            words = stripped[1:].split()
            directive = words[0] if words else ""
            if directive in ("if", "ifdef", "ifndef"):
                skipping.append(directive == "ifdef" and words[1:2] == ["__cplusplus"])
            elif directive == "endif":
                skipping.pop()
            elif directive == "define" and len(words) == 3 and not any(skipping):
                kept.append(f"#define {words[1]} {words[2]}")
            elif directive not in ("define", "include", "pragma"):
                raise RuntimeError(f"{HEADER}: unexpected preprocessor line {stripped!r}")
        elif not any(skipping) and stripped:
            kept.append(line)
    if skipping:
        raise RuntimeError(f"{HEADER}: unbalanced #if/#endif")
    return "\n".join(kept) + "\n"


def find_cargo() -> str:
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if cargo is None:
        home_cargo = Path.home() / ".cargo" / "bin" / "cargo"
        if home_cargo.exists():
            cargo = str(home_cargo)
    if cargo is None:
        raise RuntimeError(
            "building shmline needs a Rust toolchain: cargo was not found on PATH or in "
            "~/.cargo/bin (install it with rustup, or set CARGO to its path)"
        )
    return cargo


def cargo_build() -> "tuple[Path, Path]":
    """Builds the crate's shared library and the `shmline` command in release mode and returns
    their paths."""
    command = [
        find_cargo(), "build", "--release", "--lib", "--bin", "shmline",
        "--manifest-path", str(ROOT / "Cargo.toml"),
        "--message-format=json-render-diagnostics",
    ]
    print("shmline: " + " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cargo failed with exit status {done.returncode} (its errors are above)")
    library = command_line = None
    for line in done.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") != "compiler-artifact" or message["target"]["name"] != "shmline":
            continue
        if "cdylib" in message["target"]["kind"]:
            library = next((Path(f) for f in message["filenames"] if f.endswith(".so")), None)
        elif "bin" in message["target"]["kind"] and message.get("executable"):
            command_line = Path(message["executable"])
    if library is None:
        raise RuntimeError("cargo built no libshmline.so (is crate-type \"cdylib\" still in Cargo.toml?)")
    if command_line is None:
        raise RuntimeError("cargo built no shmline command (is cli/ still in the workspace?)")
    return library, command_line


def new_ffi():
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(header_to_cdef(HEADER.read_text()))
    return ffi


class BuildShmline(build_ext):
    """Builds the Rust library, bundles it, and builds the cffi module over it."""

    def build_extension(self, ext: Extension) -> None:
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        bundled = target.parent / SONAME
        library, command_line = cargo_build()
        shutil.copyfile(library, bundled)
        bundled.chmod(0o755)
        # The `shmline` command (ls, top, info, run, clean, bench), run by the `shmline` script
        # pip installs and by `python -m shmline` (shmline/_cli.py).
        cli = target.parent / "bin" / "shmline"
        cli.parent.mkdir(exist_ok=True)
        shutil.copyfile(command_line, cli)
        cli.chmod(0o755)
        # An earlier in-place build may have left the other mode's module, which would win.
        for stale in target.parent.glob("_shmline_cffi*"):
            stale.unlink()
        mode = os.environ.get("SHMLINE_CFFI_MODE", "api")
        if mode not in ("api", "abi"):
            raise RuntimeError(f"SHMLINE_CFFI_MODE is {mode!r}: use 'api' or 'abi'")
        if mode == "api":
            try:
                self.build_api_mode(ext, bundled)
                return
            except (CCompilerError, ExecError) as e:
                print(
                    f"shmline: WARNING: could not compile the API-mode cffi module ({e}); "
                    "falling back to ABI mode, which works the same but costs about 100 ns "
                    "more per call (install the Python development headers to avoid this)",
                    file=sys.stderr,
                )
        ffi = new_ffi()
        ffi.set_source(MODULE, None)
        ffi.emit_python_code(str(target.parent / "_shmline_cffi.py"))

    def build_api_mode(self, ext: Extension, bundled: Path) -> None:
        ffi = new_ffi()
        ffi.set_source(MODULE, '#include "shmline.h"')
        c_file = Path(self.build_temp) / "_shmline_cffi.c"
        c_file.parent.mkdir(parents=True, exist_ok=True)
        ffi.emit_c_code(str(c_file))
        ext.sources = [str(c_file)]
        ext.include_dirs = [str(ROOT / "include")]
        ext.extra_objects = [str(bundled)]
        ext.extra_link_args = ["-Wl,-rpath,$ORIGIN"]
        super().build_extension(ext)


setup(
    # Declared so that setuptools runs build_ext and tags the wheel for this platform; its sources
    # are generated by BuildShmline.
    ext_modules=[Extension(MODULE, sources=[])],
    cmdclass={"build_ext": BuildShmline},
)
