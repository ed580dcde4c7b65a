"""A PYTHUSA-style DSP pipeline over an engine vibration signal, headless (PYTHUSA's
engine_dsp_pipeline plots; this one prints): a sensor task writes blocks of samples, a
"window" task applies a Hann window and computes the spectrum (rfft magnitude), a "bands"
task sums the power in three bands, and a logger prints the dominant frequency. An event opens
the sensor (a switchable task gated by "armed"), and the monitor samples every task. Small
sizes for CI: 48 blocks of 1024 samples. Run: python examples/pythusa/engine_dsp_pipeline.py"""

from __future__ import annotations

import time

import numpy as np

import shmline.pythusa as pythusa

BLOCK = 1024
BLOCKS = 48
RATE_HZ = 8192.0
BINS = BLOCK // 2 + 1
FREQS = np.fft.rfftfreq(BLOCK, 1.0 / RATE_HZ)
BANDS = ((0.0, 200.0), (200.0, 1000.0), (1000.0, RATE_HZ / 2))


def put(writer, frame) -> None:
    while not writer.write(frame):
        time.sleep(0.0005)


def get(reader) -> np.ndarray:
    while True:
        frame = reader.read()
        if frame is not None:
            return frame
        time.sleep(0.0005)


def sensor(samples) -> None:
    """Blocks of a 100 Hz firing tone (3000 rpm, two fires per revolution) with harmonics."""
    rng = np.random.default_rng(7)
    for k in range(BLOCKS):
        t = (np.arange(BLOCK) + k * BLOCK) / RATE_HZ
        block = (np.sin(2 * np.pi * 100.0 * t) + 0.5 * np.sin(2 * np.pi * 300.0 * t)
                 + 0.1 * rng.standard_normal(BLOCK))
        put(samples, block.astype(np.float32))
    raise SystemExit(0)  # leave the switch loop: the sensor's job is done


def window(samples, spectrum) -> None:
    hann = np.hanning(BLOCK).astype(np.float32)
    for _ in range(BLOCKS):
        put(spectrum, np.abs(np.fft.rfft(get(samples) * hann)).astype(np.float32))


def bands(spectrum, power, peaks) -> None:
    for _ in range(BLOCKS):
        mag = get(spectrum)
        put(power, np.array([float((mag[(FREQS >= lo) & (FREQS < hi)] ** 2).sum())
                             for lo, hi in BANDS], np.float64))
        put(peaks, np.array([FREQS[int(np.argmax(mag))]], np.float64))


def logger(power, peaks) -> None:
    totals = np.zeros(len(BANDS))
    found = []
    for _ in range(BLOCKS):
        totals += get(power)
        found.append(float(get(peaks)[0]))
    share = 100.0 * totals / totals.sum()
    print(f"engine_dsp_pipeline: {BLOCKS} blocks, dominant {np.median(found):.0f} Hz, band power "
          f"{share[0]:.0f}% / {share[1]:.0f}% / {share[2]:.0f}%", flush=True)


def main() -> None:
    with pythusa.Pipeline("engine_dsp") as pipe:
        pipe.add_stream("samples", shape=(BLOCK,), dtype=np.float32, frames=16)
        pipe.add_stream("spectrum", shape=(BINS,), dtype=np.float32, frames=16)
        pipe.add_stream("power", shape=(len(BANDS),), dtype=np.float64, frames=16)
        pipe.add_stream("peaks", shape=(1,), dtype=np.float64, frames=16)
        pipe.add_event("armed", initial_state=True)
        pipe.add_task.switchable("sensor", activate_on="armed", fn=sensor,
                                 writes={"samples": "samples"}, events={"armed": "armed"})
        pipe.add_task("window", fn=window, reads={"samples": "samples"},
                      writes={"spectrum": "spectrum"})
        pipe.add_task("bands", fn=bands, reads={"spectrum": "spectrum"},
                      writes={"power": "power", "peaks": "peaks"})
        pipe.add_task("logger", fn=logger, reads={"power": "power", "peaks": "peaks"})
        pipe.start()
        pipe.start_monitor(interval_s=0.02)
        pipe.join()
        for name, metrics in pipe.metrics().items():
            if metrics is not None:
                print(f"  {name}: pid {metrics.pid}, {metrics.memory_rss_mb:.0f} MB, "
                      f"pressure {metrics.ring_pressure}")


if __name__ == "__main__":
    main()
