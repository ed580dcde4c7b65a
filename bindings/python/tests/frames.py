"""The frames of the cross-process tests: frame i is a function of i, so a reader in any language
checks every byte, sequence number and flag without being told what was written.

- "numpy" frames (Python to Python): dtype <f8, shape (16,); element k of frame i is
  i * 1000 + k.
- "xlang" frames (Python, C, Rust): dtype <u4, shape (4, 6); element k (flat) of frame i is
  i * 1000003 + k * 7 mod 2^32 (tests/peers/xlang_peer.c, examples/xlang_peer.rs).
- "pattern" frames (Python, C): bytes of 8 to 256 bytes as tests/c/frames.h of the crate defines.

Every kind has flags i // 100: the chunk of 100 frames it belongs to. Writers and readers switch
API every chunk (copy, zero-copy, batch...) so that every path meets every other.
"""

from __future__ import annotations

import numpy as np

CHUNK = 100
BATCH = 7
PATTERN_MAX = 256

KINDS = {
    "numpy": (np.dtype("<f8"), (16,)),
    "xlang": (np.dtype("<u4"), (4, 6)),
    "pattern": (None, None),
}


def flags(i: int) -> int:
    return i // CHUNK


def frame(kind: str, i: int):
    """Frame i of a kind: an ndarray, or bytes for "pattern"."""
    if kind == "numpy":
        return np.arange(16, dtype=np.float64) + i * 1000.0
    if kind == "xlang":
        k = np.arange(24, dtype=np.uint64)
        return ((i * 1000003 + k * 7) % 2**32).astype(np.uint32).reshape(4, 6)
    n = 8 + (i * 7919) % (PATTERN_MAX - 7)
    j = np.arange(8, n, dtype=np.uint64)
    return (i % 2**64).to_bytes(8, "little") + ((i * 31 + j * 7) % 256).astype(np.uint8).tobytes()


def same(kind: str, got, i: int) -> bool:
    expected = frame(kind, i)
    if kind == "pattern":
        return bytes(got) == expected
    return got.dtype == expected.dtype and got.shape == expected.shape and \
        bool(np.array_equal(got, expected))
