"""Builds the shmline Python package: the Rust library (with cargo) and the cffi module over it.

It builds from the crate it finds: in the repository, the workspace two directories up
(`pip install ./bindings/python`, `pip install -e bindings/python`); in a source distribution, the
copy of the crate that `sdist` put in `rust/` (with a manifest trimmed to the library and the
command, see `ShmlineSdist`). Either way it needs a Rust toolchain (cargo) and the C compiler
that Rust already needs for linking. The wheel it makes bundles `libshmline.so.0` and the
`shmline` command (`shmline/bin/shmline`, run by the `shmline` script and by `python -m
shmline`), both built with the crate's `dist` profile (no debug information, no symbol table),
so the installed package needs no compiler at run time.

Two ways to call the library, chosen here at build time (README.md, "How the package is built"):
- API mode (the default): a small C extension compiled against `include/shmline.h` and linked to
  the bundled library. About 100 ns faster per call than ABI mode; needs the Python headers.
- ABI mode (the fallback, or `SHMLINE_CFFI_MODE=abi`): a pure-Python module of pre-parsed
  declarations that `dlopen`s the bundled library through libffi. Needs no Python headers, and
  its wheel fits every CPython 3.9+ (tag `py3-none-<platform>`, see `ShmlineWheel`). Built by a
  CPython 3.11+ with its headers, it also holds the compiled per-frame calls against the limited
  API (`_fastpath.abi3.so`), which CPython 3.11 and later use and older versions leave alone.
Either way the declarations are the checked-in C header, so Python calls exactly the C ABI.

Environment variables (scripts/build-wheels sets them to build the portable wheels):
- SHMLINE_CFFI_MODE      `api` (default) or `abi`.
- SHMLINE_CARGO_PROFILE  cargo profile to build with (default `dist`; `release` reuses a
                         `cargo build --release`, debug information included).
- SHMLINE_CARGO_BUILD    cargo subcommand that builds (default `build`; `zigbuild` for
                         cargo-zigbuild, which links against an old glibc).
- SHMLINE_CARGO_TARGET   `--target` for that subcommand (e.g. `x86_64-unknown-linux-gnu.2.28`).
- SHMLINE_WHEEL_PLATFORM the wheel's platform tag (e.g. `manylinux_2_28_x86_64`;
                         scripts/build-wheels checks the claim with `auditwheel show`).
- CARGO_TARGET_DIR       where cargo builds (cargo's own variable), to reuse a build.
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

from setuptools.command.sdist import sdist

try:  # setuptools 70.1 and later
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
MODULE = "shmline._shmline_cffi"
# The compiled per-frame calls, built beside the API-mode cffi module (BuildShmline.build_fastpath).
FASTPATH = "shmline._fastpath"
# The limited API an ABI-mode build compiles `_fastpath` against (build_fastpath): CPython 3.11's,
# the first with the buffer protocol in it.
LIMITED_API = "0x030B0000"
LIMITED_API_PYTHON = (3, 11)
# Where an sdist carries the crate (ShmlineSdist writes it).
SDIST_CRATE = "rust"


def find_crate() -> Path:
    """The crate to build: the sdist's copy, else the repository's workspace two levels up."""
    for root in (HERE / SDIST_CRATE, HERE.parent.parent):
        if (root / "Cargo.toml").is_file() and (root / "include" / "shmline.h").is_file():
            return root
    raise RuntimeError(
        f"the shmline crate is neither in {HERE / SDIST_CRATE} (a source distribution) nor two "
        f"directories above {HERE} (the repository): build from a complete source tree or an "
        "sdist made by `python -m build --sdist bindings/python`"
    )


CRATE = find_crate()
HEADER = CRATE / "include" / "shmline.h"
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
    """Builds the crate's shared library and the `shmline` command (profile, subcommand and target
    from the environment, see the module's docstring) and returns their paths."""
    profile = os.environ.get("SHMLINE_CARGO_PROFILE", "dist")
    command = [
        find_cargo(), os.environ.get("SHMLINE_CARGO_BUILD", "build"), "--profile", profile,
        # The two packages by name: the workspace may hold members the wheel does not need.
        "-p", "shmline", "--lib", "-p", "shmline-cli", "--bin", "shmline",
        "--manifest-path", str(CRATE / "Cargo.toml"),
        "--message-format=json-render-diagnostics",
    ]
    target = os.environ.get("SHMLINE_CARGO_TARGET")
    if target:
        command += ["--target", target]
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

    def initialize_options(self) -> None:
        super().initialize_options()
        # What build_extension wrote besides the extension itself (or instead of it, in ABI
        # mode): the library, the command and the ABI-mode module. An in-place build (`pip install
        # -e`) copies them into the source package too, or the imports there would not find them.
        self.shmline_outputs: "list[Path]" = []

    def build_extensions(self) -> None:
        # The interpreter's own link command (LDSHARED) may carry `-Wl,-rpath,<its lib dir>` (a
        # pyenv or source-built CPython does), which would leave a RUNPATH to a directory of the
        # build machine in every module. The modules find the bundled library through $ORIGIN
        # alone, which build_extension and build_fastpath add.
        self.compiler.linker_so = [
            arg for arg in self.compiler.linker_so
            if not arg.startswith("-Wl,-rpath,") or arg == "-Wl,-rpath,$ORIGIN"
        ]
        super().build_extensions()

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
        self.shmline_outputs = [bundled, cli]
        # An earlier in-place build may have left the other mode's module, which would win.
        for stale in [*target.parent.glob("_shmline_cffi*"), *target.parent.glob("_fastpath*")]:
            stale.unlink()
        mode = os.environ.get("SHMLINE_CFFI_MODE", "api")
        if mode not in ("api", "abi"):
            raise RuntimeError(f"SHMLINE_CFFI_MODE is {mode!r}: use 'api' or 'abi'")
        if mode == "api":
            try:
                self.build_api_mode(ext, bundled)
                self.distribution.shmline_cffi_mode = "api"
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
        module = target.parent / "_shmline_cffi.py"
        ffi.emit_python_code(str(module))
        self.shmline_outputs.append(module)
        self.distribution.shmline_cffi_mode = "abi"
        if sys.implementation.name != "cpython" or sys.version_info < LIMITED_API_PYTHON:
            print(f"shmline: WARNING: {FASTPATH} is built for ABI mode by CPython "
                  f"{'.'.join(map(str, LIMITED_API_PYTHON))} or later (its limited API); "
                  "this build goes without it", file=sys.stderr)
            return
        self.build_fastpath(bundled, limited=True)

    def build_api_mode(self, ext: Extension, bundled: Path) -> None:
        ffi = new_ffi()
        ffi.set_source(MODULE, '#include "shmline.h"')
        c_file = Path(self.build_temp) / "_shmline_cffi.c"
        c_file.parent.mkdir(parents=True, exist_ok=True)
        ffi.emit_c_code(str(c_file))
        ext.sources = [str(c_file)]
        ext.include_dirs = [str(CRATE / "include")]
        ext.extra_objects = [str(bundled)]
        ext.extra_link_args = ["-Wl,-rpath,$ORIGIN"]
        super().build_extension(ext)
        self.build_fastpath(bundled)

    def build_fastpath(self, bundled: Path, limited: bool = False) -> None:
        """Builds `shmline._fastpath` (csrc/fastpath.c): the per-frame calls of writers and
        readers against the CPython API, which skip cffi's per-call argument conversion and GIL
        release (shmline/_hot.py). Optional: without it the package uses its cffi paths.

        `limited` (ABI mode): against the limited API of CPython 3.11, as `_fastpath.abi3.so`,
        which every CPython from 3.11 loads; linked to the bundled library as in API mode (in
        ABI mode cffi opens that same file, so both use one copy of the library)."""
        fast = Extension(FASTPATH, sources=[str(HERE / "csrc" / "fastpath.c")],
                         include_dirs=[str(CRATE / "include")], extra_objects=[str(bundled)],
                         extra_link_args=["-Wl,-rpath,$ORIGIN"], py_limited_api=limited,
                         define_macros=[("Py_LIMITED_API", LIMITED_API)] if limited else [])
        # What setuptools' finalize_options sets on the extensions it was given (and ext_map, by
        # full and by last name, which its file naming reads: `.abi3.so` for a limited-API one).
        fast._full_name, fast._links_to_dynamic, fast._needs_stub = FASTPATH, False, False
        self.ext_map[FASTPATH] = self.ext_map[FASTPATH.rsplit(".", 1)[1]] = fast
        try:
            super().build_extension(fast)
        except (CCompilerError, ExecError) as e:
            print(f"shmline: WARNING: could not compile {FASTPATH} ({e}); the package works "
                  "without it, at a few hundred ns more per frame", file=sys.stderr)
            return
        self.shmline_outputs.append(Path(self.get_ext_fullpath(FASTPATH)))

    def copy_extensions_to_source(self) -> None:
        """In place (`pip install -e`): the package directory gets what the build wrote."""
        package_dir = Path(self.get_finalized_command("build_py").get_package_dir("shmline"))
        built_package = Path(os.path.abspath(self.build_lib)) / "shmline"
        for stale in [*package_dir.glob("_shmline_cffi*"), *package_dir.glob("_fastpath*")]:
            stale.unlink()
        for built in self.shmline_outputs:
            copy = package_dir / Path(os.path.abspath(built)).relative_to(built_package)
            copy.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(built), str(copy), level=self.verbose)
        if getattr(self.distribution, "shmline_cffi_mode", "api") == "api":
            super().copy_extensions_to_source()
        else:
            self.copy_file(str(built_package / "_shmline_cffi.py"),
                           str(package_dir / "_shmline_cffi.py"), level=self.verbose)

    def get_outputs(self) -> "list[str]":
        return super().get_outputs() + [str(p) for p in self.shmline_outputs]


class ShmlineWheel(bdist_wheel):
    """Tags the wheel for what it holds.

    API mode compiles a CPython extension module: setuptools' default tag (`cp311-cp311-linux_...`)
    is right. An ABI-mode wheel needs no extension module: its Python code is pure and its native
    code (`libshmline.so.0`, opened with `dlopen` through cffi's backend, and the `shmline`
    command) never links libpython, so it runs on every CPython (3.9+, from `requires-python`) and
    the correct tag is `py3-none-<platform>`, one wheel per platform. The one extension module it
    may hold, `_fastpath.abi3.so` (limited API of 3.11), is optional: shmline/_hot.py imports it
    on CPython 3.11 and later only, and older versions run the cffi paths. (`cp311-abi3` would
    shut 3.9 and 3.10 out for an optional part.) The platform is the build machine's unless
    SHMLINE_WHEEL_PLATFORM names one, e.g. a manylinux tag for a library linked against an old
    glibc by cargo-zigbuild: pip installs `py3-none-manylinux_2_28_x86_64` on any glibc 2.28+
    x86_64 Linux.
    """

    def get_tag(self) -> "tuple[str, str, str]":
        python, abi, platform = super().get_tag()
        platform = os.environ.get("SHMLINE_WHEEL_PLATFORM") or platform
        if getattr(self.distribution, "shmline_cffi_mode", "api") == "abi":
            python, abi = "py3", "none"
        return python, abi, platform


def trimmed_manifest(text: str, members: "list[str]") -> str:
    """A Cargo.toml for the sdist: the workspace lists only `members`, and the test, example and
    benchmark targets (whose sources the sdist leaves out) are dropped, so cargo finds every file
    the manifest names."""
    listed = "[" + ", ".join(f'"{m}"' for m in members) + "]"
    text = re.sub(r"(?ms)^(default-)?members\s*=\s*\[.*?\]", lambda m: f"{m.group(1) or ''}members = {listed}", text)
    kept: list[str] = []
    dropping = False
    for line in text.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("["):
            dropping = header in ("[[test]]", "[[example]]", "[[bench]]")
        if not dropping:
            kept.append(line)
    return "".join(kept)


class ShmlineSdist(sdist):
    """Puts the crate in the source distribution (`rust/`), so that it builds anywhere with Rust.

    The crate is the library package and the `shmline` command (`cli/`): their sources, build
    script, lock file, C header and cbindgen configuration, under a root manifest trimmed to those
    two members (the repository's workspace has others, which the package does not need). Tests,
    examples, docs and the other bindings stay out.
    """

    CRATE_FILES = ["Cargo.lock", "build.rs", "cbindgen.toml", "README.md", "LICENSE-MIT",
                   "LICENSE-APACHE", "include/shmline.h"]
    CRATE_TREES = ["src", "cli/src"]

    def make_release_tree(self, base_dir: str, files: "list[str]") -> None:
        # An ABI-mode in-place build (`pip install -e`) leaves its generated module among the
        # package's sources: the sdist generates its own.
        files = [f for f in files if not Path(f).name.startswith("_shmline_cffi")]
        super().make_release_tree(base_dir, files)
        crate = Path(base_dir) / SDIST_CRATE
        if CRATE == HERE / SDIST_CRATE:  # an sdist made from an sdist: copy its crate as it is
            shutil.copytree(CRATE, crate, ignore=shutil.ignore_patterns("target"))
            return
        # Every file keeps its modification time (copy2, and utime for the manifests), so that
        # cargo, building the same unpacked sdist again (scripts/build-wheels), sees nothing new.
        for name in self.CRATE_FILES:
            (crate / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(CRATE / name, crate / name)
        for tree in self.CRATE_TREES:
            shutil.copytree(CRATE / tree, crate / tree,
                            ignore=shutil.ignore_patterns("__pycache__", "*.orig", "*.rej"))
        members = [".", "cli"]
        for manifest in ("Cargo.toml", "cli/Cargo.toml"):
            (crate / manifest).write_text(trimmed_manifest((CRATE / manifest).read_text(), members))
            shutil.copystat(CRATE / manifest, crate / manifest)
        # The licences at the sdist's root are links into the repository: make them files.
        for name in ("LICENSE-MIT", "LICENSE-APACHE"):
            licence = Path(base_dir) / name
            if licence.is_symlink() or not licence.exists():
                licence.unlink(missing_ok=True)
                shutil.copyfile(CRATE / name, licence)


setup(
    # Declared so that setuptools runs build_ext and makes a platform wheel; its sources are
    # generated by BuildShmline.
    ext_modules=[Extension(MODULE, sources=[])],
    cmdclass={"build_ext": BuildShmline, "bdist_wheel": ShmlineWheel, "sdist": ShmlineSdist},
)
