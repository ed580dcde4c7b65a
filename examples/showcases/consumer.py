"""PYTHUSA's market-data replay, ported: the consumer of one symbol (Python + NumPy).

Reads the tick batches of its `ticks` parameter until the replay ends, keeps the symbol's VWAP
and traded volume, and tracks every frame's latency: the time from the replayer's commit (the
frame's `timestamp_ns`, CLOCK_MONOTONIC, stamped by the library) to the moment this consumer has
the frame (`time.monotonic_ns()`, the same clock). Checks sequence numbers are contiguous (a gap
is a lost frame) and prints one line; exits 1 if a frame was lost.
"""
import sys
import time

import numpy as np

import shmline


def main() -> None:
    task = shmline.Task.join()
    ticks = task.reader("ticks")
    name = task.name
    task.close()
    latencies = []
    frames = lost = 0
    next_seq = 0
    notional = volume = 0
    while True:
        try:
            batch = ticks.read_batch(16)  # (n, TICKS, 4) int64: time, price, size, side
        except shmline.EndOfStream:
            break
        now = time.monotonic_ns()
        info = ticks.batch_info
        latencies.append(now - info["timestamp_ns"].astype(np.int64))
        seq = info["seq"].astype(np.int64)
        lost += int(seq[0] - next_seq) + int(np.count_nonzero(np.diff(seq) != 1))
        next_seq = int(seq[-1]) + 1
        notional += int((batch[:, :, 1] * batch[:, :, 2]).sum())
        volume += int(batch[:, :, 2].sum())
        frames += len(batch)
    lat = np.concatenate(latencies) / 1000.0 if latencies else np.zeros(1)
    vwap = notional / volume / 10000.0 if volume else 0.0
    # One write per line: the consumers share the runner's standard output.
    sys.stdout.write(f"{name}: {frames} frames, VWAP {vwap:.4f}, volume {volume}, latency p50 "
                     f"{np.percentile(lat, 50):.1f} us p99 {np.percentile(lat, 99):.1f} us, "
                     f"lost {lost}\n")
    sys.stdout.flush()
    if lost:
        sys.exit(1)


if __name__ == "__main__":
    main()
