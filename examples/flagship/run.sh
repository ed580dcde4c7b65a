#!/usr/bin/env bash
# Builds and runs shmline's flagship pipeline: a C++ signal generator -> a Python/NumPy FFT
# stage -> a Rust sink, launched by `shmline run examples/flagship/flagship.toml`.
#
# Usage: examples/flagship/run.sh [--frames N]     (N frames of 4096 samples; default 20000)
#        examples/flagship/run.sh --build-only     (builds, runs nothing: for examples/showcases)
#
# Needs a Rust toolchain, g++ and python3 (3.9+); the Python package and NumPy are installed into
# target/pyenv by scripts/python-env (the first time only: it takes a few minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"

frames=20000
build_only=false
while [ $# -gt 0 ]; do
    case $1 in
        --frames) frames=$2; shift 2 ;;
        --frames=*) frames=${1#--frames=}; shift ;;
        --build-only) build_only=true; shift ;;
        *) echo "usage: $0 [--frames N | --build-only]" >&2; exit 2 ;;
    esac
done

echo "flagship: building the library, the CLI and the Rust sink"
cargo build --release --quiet --lib --bin shmline --example flagship_sink

echo "flagship: building the C++ generator"
mkdir -p examples/flagship/build
# The library's SONAME is libshmline.so.0 (docs/C_API.md): the generator loads it from its own
# directory, through a link to the freshly built library.
ln -sf "$PWD/target/release/libshmline.so" examples/flagship/build/libshmline.so.0
if [ ! -x examples/flagship/build/generator ] ||
    [ -n "$(find examples/flagship/generator.cpp include bindings/cpp/include target/release/libshmline.so \
        -newer examples/flagship/build/generator 2>/dev/null | head -1)" ]; then
    "${CXX:-g++}" -std=c++17 -O2 -Wall -Wextra -I include -I bindings/cpp/include \
        examples/flagship/generator.cpp -L target/release -lshmline \
        -Wl,-rpath,'$ORIGIN' -o examples/flagship/build/generator
fi

echo "flagship: preparing the Python environment (target/pyenv)"
scripts/python-env --if-stale
$build_only && exit 0

echo "flagship: running $frames frames: generator (C++) -> fft (Python) -> sink (Rust)"
export FLAGSHIP_FRAMES=$frames
target/release/shmline run examples/flagship/flagship.toml
