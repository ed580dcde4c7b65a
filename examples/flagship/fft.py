"""The flagship's FFT stage (Python + NumPy): reads frames of 4096 float32 samples from its
`signal` parameter and writes their magnitude spectra to `spectrum`, until the signal ends.

Each spectrum frame is 2052 float32 values (8208 bytes): a 16-byte header, then the magnitudes
of FFT bins 0 .. 2047 (np.fft.rfft gives 2049; the Nyquist bin is dropped). The header, read as
two little-endian uint64: the source frame's commit timestamp (`FrameInfo.timestamp_ns`,
CLOCK_MONOTONIC, stamped by the library when the generator committed it) and its sequence
number. Carrying them forward lets the sink measure end-to-end latency and check that no
source frame was lost.

Frames are taken in batches of whatever is available (up to 64): one library call and one
vectorised FFT per batch, so Python's per-call overhead is paid per batch, not per frame.
"""
import numpy as np

import shmline

BATCH = 64
BINS = 2048
HEADER_FLOATS = 4  # 16 bytes: uint64 timestamp_ns, uint64 seq


def main() -> None:
    task = shmline.Task.join()  # the runner names the pipeline and the task in the environment
    signal = task.reader("signal")
    spectrum = task.writer("spectrum")
    task.close()
    out = np.empty((BATCH, HEADER_FLOATS + BINS), np.float32)
    header = out.view(np.uint64)  # (BATCH, 1026): columns 0 and 1 are the header
    while True:
        try:
            x = signal.read_batch(BATCH)
        except shmline.EndOfStream:
            break
        n = len(x)
        info = signal.batch_info
        np.abs(np.fft.rfft(x, axis=1)[:, :BINS], out=out[:n, HEADER_FLOATS:])
        header[:n, 0] = info["timestamp_ns"]
        header[:n, 1] = info["seq"]
        spectrum.write_batch(out[:n])
    spectrum.close()  # ends the spectrum stream: the sink drains it and ends


if __name__ == "__main__":
    main()
