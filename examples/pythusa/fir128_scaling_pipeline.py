"""Round-robin FIR fan-out / fan-in, as PYTHUSA's fir128_scaling_pipeline does it: a source makes
frames of an engine-like signal, a "split" task copies frame k into the stream of worker
k % N, each worker filters its frames with a 128-tap low-pass FIR (the taps reach it through a
functools.partial holding a NumPy array), and an aggregator reads the workers' outputs back in
round-robin order and checks each against a filter computed in place. Small sizes for CI:
3 workers, 48 frames of 2048 samples. Run: python examples/pythusa/fir128_scaling_pipeline.py
[workers] [frames]"""

from __future__ import annotations

import functools
import sys
import time

import numpy as np

import shmline.pythusa as pythusa

SAMPLES = 2048
TAPS = 128
RATE_HZ = 20_000.0


def engine_signal(index: int) -> np.ndarray:
    """Frame `index` of a firing-order tone with harmonics and noise (deterministic)."""
    t = (np.arange(SAMPLES) + index * SAMPLES) / RATE_HZ
    rpm = 1500.0 + 20.0 * index
    fundamental = rpm / 60.0 * 2.0  # a 4-cylinder engine fires twice per revolution
    rng = np.random.default_rng(index)
    signal = sum(np.sin(2 * np.pi * fundamental * h * t) / h for h in (1, 2, 3, 4))
    return (signal + 0.2 * rng.standard_normal(SAMPLES)).astype(np.float32)


def lowpass_taps() -> np.ndarray:
    """A 128-tap windowed-sinc low-pass at 1 kHz."""
    n = np.arange(TAPS) - (TAPS - 1) / 2
    cutoff = 1000.0 / RATE_HZ
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(TAPS)
    return (taps / taps.sum()).astype(np.float32)


def fir(frame: np.ndarray, taps: np.ndarray) -> np.ndarray:
    return np.convolve(frame, taps, mode="same").astype(np.float32)


def put(writer, frame) -> None:
    while not writer.write(frame):
        time.sleep(0.0005)


def get(reader) -> np.ndarray:
    while True:
        frame = reader.read()
        if frame is not None:
            return frame
        time.sleep(0.0005)


def source(raw, frames: int) -> None:
    for k in range(frames):
        put(raw, engine_signal(k))


def split(raw, frames: int, **lanes) -> None:
    outputs = [lanes[f"lane{i}"] for i in range(len(lanes))]
    for k in range(frames):
        put(outputs[k % len(outputs)], get(raw))


def worker(lane, filtered, taps: np.ndarray, frames: int) -> None:
    for _ in range(frames):
        put(filtered, fir(get(lane), taps))


def aggregate(frames: int, **outputs) -> None:
    lanes = [outputs[f"out{i}"] for i in range(len(outputs))]
    taps = lowpass_taps()
    worst = 0.0
    for k in range(frames):
        got = get(lanes[k % len(lanes)])
        worst = max(worst, float(np.max(np.abs(got - fir(engine_signal(k), taps)))))
    print(f"fir128_scaling_pipeline: {len(lanes)} workers, {frames} frames, max error "
          f"{worst:.3g}", flush=True)


def main(workers: int = 3, frames: int = 48) -> None:
    taps = lowpass_taps()
    with pythusa.Pipeline("fir128") as pipe:
        pipe.add_stream("raw", shape=(SAMPLES,), dtype=np.float32, frames=8)
        for i in range(workers):
            pipe.add_stream(f"lane{i}", shape=(SAMPLES,), dtype=np.float32, frames=8)
            pipe.add_stream(f"filtered{i}", shape=(SAMPLES,), dtype=np.float32, frames=8)
        pipe.add_task("source", fn=functools.partial(source, frames=frames),
                      writes={"raw": "raw"})
        pipe.add_task("split", fn=functools.partial(split, frames=frames),
                      reads={"raw": "raw"}, writes={f"lane{i}": f"lane{i}"
                                                    for i in range(workers)})
        for i in range(workers):
            share = len(range(i, frames, workers))
            pipe.add_task(f"fir{i}", fn=functools.partial(worker, taps=taps, frames=share),
                          reads={"lane": f"lane{i}"}, writes={"filtered": f"filtered{i}"})
        pipe.add_task("aggregate", fn=functools.partial(aggregate, frames=frames),
                      reads={f"out{i}": f"filtered{i}" for i in range(workers)})
        started = time.perf_counter()
        pipe.run()
        elapsed = time.perf_counter() - started
    print(f"{frames * SAMPLES / elapsed / 1e6:.2f} Msamples/s end to end, processes included")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
