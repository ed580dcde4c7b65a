"""PYTHUSA's round-robin FIR fan-out/fan-in (examples/fir128_scaling_pipeline.py there), rebuilt
on a reader group and a multi-writer stream:

    source --samples--> [ fir0 | fir1 | ... | firN-1 ]  (one reader group "fir")
                              \\      |          /
                               --- filtered ----        (one stream, N writers)  --> sink

PYTHUSA has neither work sharing nor several writers per stream, so its example hand-rolls a
round-robin splitter with one stream per worker and one back. Here the source writes every block
to ONE stream, the N FIR workers read it as ONE reader group (each block goes to exactly one of
them: whichever is free), and all of them write their filtered blocks into ONE stream, which ends
when the last worker is done. The sink puts the blocks back in order by block number, checks that
every block arrived exactly once and that the result equals a direct convolution of the whole
signal, and prints blocks/s and MB/s.

Each block carries its block number and, before its BLOCK new samples, the TAPS - 1 samples that
precede them (overlap-save), so any worker can filter any block on its own: the blocks together
are exactly the filtered signal, whichever worker took each one.

    target/pyenv/bin/python examples/fir/fir.py [--workers 4] [--blocks 4000] [--block 4096]

(`scripts/python-env` builds target/pyenv, with shmline and NumPy.) Every worker is a Python
process running NumPy's convolution, as in PYTHUSA.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

import shmline

HEADER = 2  # float32 slots holding the block number as one little-endian uint64
SEED = 7


def taps() -> np.ndarray:
    """The filter: TAPS coefficients of a windowed-sinc low-pass (cut-off at 1/8 of the sample
    rate), as float32."""
    n = int(os.environ["FIR_TAPS"])
    k = np.arange(n) - (n - 1) / 2
    h = np.sinc(k / 4) / 4 * np.hamming(n)
    return (h / h.sum()).astype(np.float32)


TONE_PERIOD = 100  # both tones repeat every 100 samples (0.01 and 0.3 cycles per sample)
NOISE_BLOCKS = 16  # distinct blocks of noise, used in turn


@functools.lru_cache(maxsize=4)
def _signal_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The tones over one block plus a period, and a pool of noise blocks: built once, so that
    making a block costs the source a slice and an addition, not a random generator and two
    sines (the source must outrun the workers for the group's sharing to show)."""
    t = np.arange(size + TONE_PERIOD, dtype=np.float64)
    tones = np.sin(2 * np.pi * 0.01 * t) + 0.5 * np.sin(2 * np.pi * 0.3 * t)
    noise = np.random.default_rng(SEED).standard_normal((NOISE_BLOCKS, size)) * 0.1
    return tones, noise


def signal_block(index: int, size: int) -> np.ndarray:
    """Block `index` of the input signal: two tones and noise, a function of the block number
    only, so the sink can rebuild the whole signal for its check."""
    tones, noise = _signal_tables(size)
    start = index * size % TONE_PERIOD
    return (tones[start:start + size] + noise[index % NOISE_BLOCKS]).astype(np.float32)


def settings() -> tuple[int, int, int]:
    return int(os.environ["FIR_BLOCKS"]), int(os.environ["FIR_BLOCK"]), int(os.environ["FIR_TAPS"])


# -- The tasks (each runs in a process of its own) ------------------------------------------------

def source(samples) -> None:
    """Writes every block, with the TAPS - 1 samples before it, then returns (which ends the
    stream once the workers have drained it)."""
    blocks, size, n_taps = settings()
    frame = np.zeros(HEADER + n_taps - 1 + size, np.float32)
    number = frame[:HEADER].view(np.uint64)
    history = frame[HEADER:HEADER + n_taps - 1]
    body = frame[HEADER + n_taps - 1:]
    for index in range(blocks):
        number[0] = index
        body[:] = signal_block(index, size)
        samples.write(frame)
        history[:] = body[size - (n_taps - 1):]


def fir(samples, filtered) -> None:
    """A worker of reader group "fir": filters whichever blocks it gets, until the samples end,
    and writes each filtered block, with its block number, to the shared `filtered` stream."""
    h = taps()
    count = 0
    for frame in samples:
        out = np.empty(len(frame) - len(h) + 1, np.float32)
        out[:HEADER] = frame[:HEADER]
        out[HEADER:] = np.convolve(frame[HEADER:], h, mode="valid")
        filtered.write(out)
        count += 1
    # One write(2) of the whole line, so the workers' lines never interleave.
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), f"{os.environ['SHMLINE_TASK']}: filtered {count} blocks\n".encode())


def sink(filtered) -> None:
    """Puts the blocks back in order, checks each arrived exactly once and the whole against a
    direct convolution, and prints the throughput."""
    blocks, size, n_taps = settings()
    result = np.empty((blocks, size), np.float32)
    arrived = np.zeros(blocks, np.int64)
    out_of_order = 0
    expected_next = 0
    started = None
    for frame in filtered:
        if started is None:
            started = time.perf_counter()
        index = int(frame[:HEADER].view(np.uint64)[0])
        if not 0 <= index < blocks:
            raise AssertionError(f"block number {index} is out of range (0 .. {blocks - 1})")
        arrived[index] += 1
        out_of_order += index != expected_next
        expected_next = index + 1
        result[index] = frame[HEADER:]
    elapsed = time.perf_counter() - (started or time.perf_counter())
    missing = np.flatnonzero(arrived == 0)
    repeated = np.flatnonzero(arrived > 1)
    if len(missing) or len(repeated):
        raise AssertionError(f"{len(missing)} blocks never arrived (first {missing[:5]}), "
                             f"{len(repeated)} arrived more than once (first {repeated[:5]})")

    # The reference: the whole signal convolved at once, in float64.
    signal = np.concatenate([signal_block(i, size) for i in range(blocks)]).astype(np.float64)
    reference = np.convolve(signal, taps().astype(np.float64))[:blocks * size]
    error = np.abs(result.reshape(-1) - reference).max()
    tolerance = 1e-4 * max(np.abs(reference).max(), 1.0)
    if not error <= tolerance:
        raise AssertionError(f"the filtered signal differs from a direct convolution by {error} "
                             f"(tolerance {tolerance})")
    megabytes = blocks * size * 4 / 1e6
    rate = blocks / elapsed if elapsed > 0 else float("inf")
    print(f"sink: {blocks} blocks of {size} samples through {n_taps}-tap FIR workers, every "
          f"block exactly once ({out_of_order} arrived out of order, put back in order)\n"
          f"  max error    : {error:.3g} against a direct convolution of the whole signal\n"
          f"  throughput   : {rate:,.0f} blocks/s, {megabytes / elapsed if elapsed > 0 else 0:,.1f}"
          f" MB/s of samples ({elapsed:.2f} s from first to last block)", flush=True)


# -- The pipeline -----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4, help="FIR worker tasks (default 4)")
    parser.add_argument("--blocks", type=int, default=4000, help="blocks to filter (4000)")
    parser.add_argument("--block", type=int, default=4096, help="samples per block (4096)")
    parser.add_argument("--taps", type=int, default=128, help="FIR taps (128, as PYTHUSA)")
    parser.add_argument("--capacity", type=int, default=64, help="slots per stream (64)")
    parser.add_argument("--name", default="fir", help="pipeline name (default fir)")
    args = parser.parse_args()
    if args.workers < 1 or args.blocks < 1 or args.taps < 1 or args.block < args.taps:
        parser.error("--workers, --blocks and --taps must be at least 1, --block at least --taps")
    env = {"FIR_BLOCKS": args.blocks, "FIR_BLOCK": args.block, "FIR_TAPS": args.taps}

    with shmline.Pipeline(args.name) as pipe:
        pipe.add_stream("samples", dtype=np.float32, shape=(HEADER + args.taps - 1 + args.block,),
                        capacity=args.capacity)
        pipe.add_stream("filtered", dtype=np.float32, shape=(HEADER + args.block,),
                        capacity=args.capacity)
        pipe.add_task("source", fn=source, writes={"samples": "samples"}, env=env)
        for w in range(args.workers):
            pipe.add_task(f"fir{w}", fn=fir, env=env,
                          reads={"samples": {"stream": "samples", "group": "fir"}},
                          writes={"filtered": "filtered"})
        pipe.add_task("sink", fn=sink, reads={"filtered": "filtered"}, env=env)
        report = pipe.run()
    print(f"pipeline {args.name!r} {report.outcome} in {report.duration_s:.2f} s with "
          f"{args.workers} FIR workers; {report.frames} frames, {report.bytes / 1e6:,.1f} MB "
          f"through shared memory")


if __name__ == "__main__":
    main()
