//! The flagship's sink (Rust): reads the spectra of `examples/flagship/flagship.toml` until the
//! stream ends, checks them, and prints the run's summary.
//!
//! ```text
//! examples/flagship/run.sh            # builds this and the other tasks, then runs the pipeline
//! ```
//!
//! Each spectrum frame is a 16-byte header (the source frame's commit timestamp and sequence
//! number, two little-endian `u64`, carried forward by the FFT stage) and 2048 `f32`
//! magnitudes. For every frame the sink:
//! - checks the spectrum stream's sequence numbers and the carried source sequence numbers are
//!   contiguous (a gap is a lost frame; there must be none);
//! - checks the loudest bin is the one the generator put in that source frame (so the frame is
//!   the right one, intact);
//! - takes end-to-end latency = CLOCK_MONOTONIC now − the source frame's commit timestamp (the
//!   same clock in every process of the machine).
//!
//! It exits 1 if a frame was lost or wrong, or fewer than `FLAGSHIP_FRAMES` arrived.

use shmline::monotonic_ns;
use shmline::pipeline::Task;
use shmline::Error;

const HEADER: usize = 16;
const BINS: usize = 2048;
const PATTERNS: u64 = 16;

/// The FFT bin of source frame `k`'s loudest tone, as `generator.cpp` makes it.
fn dominant_bin(k: u64) -> usize {
    (64 + 97 * (k % PATTERNS)) as usize
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

fn main() -> Result<(), Error> {
    let expected: u64 = std::env::var("FLAGSHIP_FRAMES").map_or(20_000, |v| v.parse().unwrap());
    let mut task = Task::join()?;
    let mut spectrum = task.reader("spectrum")?;
    let name = task.name().to_owned();
    drop(task);

    let mut buf = vec![0u8; HEADER + BINS * 4];
    let mut latencies = Vec::with_capacity(expected as usize);
    let (mut frames, mut lost, mut wrong) = (0u64, 0u64, 0u64);
    let (mut next_seq, mut next_src) = (0u64, 0u64);
    let mut power_sum = 0.0f64;
    let mut peak_counts = [0u64; PATTERNS as usize];
    loop {
        let info = match spectrum.read_into(&mut buf) {
            Ok(info) => info,
            Err(Error::EndOfStream) => break,
            Err(e) => return Err(e),
        };
        let now = monotonic_ns();
        let src_ts = u64::from_le_bytes(buf[0..8].try_into().unwrap());
        let src_seq = u64::from_le_bytes(buf[8..16].try_into().unwrap());
        latencies.push(now.saturating_sub(src_ts));
        // Gaps in either numbering are lost frames (a lossless pipeline has none).
        lost += info.seq - next_seq + src_seq.saturating_sub(next_src);
        next_seq = info.seq + 1;
        next_src = src_seq + 1;

        let mags = buf[HEADER..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()));
        let (mut peak, mut peak_mag, mut power) = (0usize, f32::MIN, 0.0f64);
        for (bin, m) in mags.enumerate() {
            power += f64::from(m) * f64::from(m);
            if m > peak_mag {
                (peak, peak_mag) = (bin, m);
            }
        }
        power_sum += power / BINS as f64;
        if peak == dominant_bin(src_seq) {
            peak_counts[(src_seq % PATTERNS) as usize] += 1;
        } else {
            wrong += 1;
        }
        frames += 1;
    }
    lost += expected.saturating_sub(next_src);

    latencies.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    // One write for the whole summary: several sinks may share the runner's standard output.
    let mut summary = format!("{name}: {frames} spectra received of {expected} frames generated\n");
    summary += &format!(
        "  peak bins    : {} (the generator's loudest tone in each frame; {wrong} wrong)\n",
        (0..PATTERNS)
            .map(|k| dominant_bin(k).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    summary += &format!(
        "  mean power   : {:.4e} (squared magnitude, averaged over bins and frames)\n",
        power_sum / frames.max(1) as f64
    );
    summary += &format!(
        "  latency      : p50 {:.1} us, p99 {:.1} us, max {:.1} us (generator commit -> sink read)\n",
        us(percentile(&latencies, 50.0)),
        us(percentile(&latencies, 99.0)),
        us(latencies.last().copied().unwrap_or(0))
    );
    summary += &format!("  frames lost  : {lost}\n");
    print!("{summary}");
    if lost > 0 || wrong > 0 || frames == 0 {
        eprintln!("{name}: FAILED ({lost} lost, {wrong} wrong)");
        std::process::exit(1);
    }
    Ok(())
}
