//! Two processes, one stream: a writer streams 64 KiB frames of `f32` for a few seconds, a reader
//! in another process verifies every one and reports the rate live.
//!
//! ```text
//! cargo run --release --example demo                 # 3 seconds
//! cargo run --release --example demo -- --seconds 10
//! cargo run --release --example demo -- --frames 100000
//! ```
//!
//! The program is both processes: started normally it creates the stream, starts itself again
//! with `--reader NAME` as the reader, and writes. Both sides use the zero-copy calls: the writer
//! computes each frame directly in shared memory (`reserve` → fill → `commit`), the reader checks
//! it where it lies (`acquire` → check → release by dropping the slot). Nothing is left in
//! `/dev/shm`: the stream's name is removed as soon as both processes have it open.

use shmline::{Error, ReaderOptions, Schema, Stream, StreamOptions};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// Values per frame: 16384 x f32 = 64 KiB.
const VALUES: usize = 16 * 1024;
/// Slots in the ring (64 x 64 KiB = 4 MiB of shared memory).
const CAPACITY: u32 = 64;
/// How often the reader prints its rate.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Value `j` of frame `seq`: exact in `f32` (below 2^24), different in every frame and position.
fn value(seq: u64, j: usize) -> f32 {
    ((seq as u32).wrapping_mul(7).wrapping_add(j as u32) & 0xFF_FFFF) as f32
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, name] if flag == "--reader" => reader(name),
        [] => writer(Amount::Seconds(3.0)),
        [flag, n] if flag == "--seconds" => match n.parse::<f64>() {
            Ok(s) if s > 0.0 => writer(Amount::Seconds(s)),
            _ => Err(format!("--seconds needs a positive number, not {n:?}")),
        },
        [flag, n] if flag == "--frames" => match n.parse::<u64>() {
            Ok(n) if n > 0 => writer(Amount::Frames(n)),
            _ => Err(format!("--frames needs a positive integer, not {n:?}")),
        },
        _ => Err("usage: demo [--seconds S | --frames N]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How long the writer streams.
#[derive(Clone, Copy)]
enum Amount {
    Seconds(f64),
    Frames(u64),
}

fn writer(amount: Amount) -> Result<(), String> {
    let name = format!("demo-{}", std::process::id());
    let stream = Stream::create(
        &name,
        &StreamOptions {
            capacity: CAPACITY,
            schema: Some(Schema::new("<f4", &[VALUES as u64]).map_err(|e| e.to_string())?),
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .map_err(|e| format!("creating the stream: {e}"))?;
    let mut writer = stream.writer().map_err(|e| e.to_string())?;
    let frame_bytes = stream.info().max_frame_size as usize;
    println!(
        "demo: streaming {} KiB frames ({VALUES} x f32) {} through stream {name:?} \
         ({CAPACITY} slots, {:.1} MiB of shared memory)",
        frame_bytes / 1024,
        match amount {
            Amount::Seconds(s) => format!("for {s} s"),
            Amount::Frames(n) => format!("({n} frames)"),
        },
        stream.info().segment_size as f64 / (1 << 20) as f64,
    );

    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["--reader", &name])
        .spawn()
        .map_err(|e| format!("starting the reader process: {e}"))?;
    if let Err(e) = writer.wait_for_readers(1, Duration::from_secs(30)) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("the reader did not attach: {e}"));
    }
    // Both processes have the stream mapped: remove its name so nothing outlives us.
    Stream::unlink(&name).map_err(|e| e.to_string())?;

    let started = Instant::now();
    let deadline = match amount {
        Amount::Seconds(s) => Some(started + Duration::from_secs_f64(s)),
        Amount::Frames(_) => None,
    };
    let mut seq = 0u64;
    let outcome = loop {
        match amount {
            Amount::Frames(n) if seq >= n => break Ok(()),
            Amount::Seconds(_) if seq % 16 == 0 && Some(Instant::now()) >= deadline => break Ok(()),
            _ => {}
        }
        let mut slot = match writer.reserve() {
            Ok(slot) => slot,
            Err(e) => break Err(format!("reserving frame {seq}: {e}")),
        };
        for (j, bytes) in slot.chunks_exact_mut(4).enumerate() {
            bytes.copy_from_slice(&value(seq, j).to_le_bytes());
        }
        if let Err(e) = slot.commit(frame_bytes) {
            break Err(format!("committing frame {seq}: {e}"));
        }
        seq += 1;
    };
    let elapsed = started.elapsed().as_secs_f64();
    // Closing ends the stream: the reader drains what is left, then sees end of stream.
    writer.close();
    println!("writer: sent {seq} frames in {elapsed:.2} s");
    let status = child.wait().map_err(|e| e.to_string())?;
    outcome?;
    if !status.success() {
        return Err(format!("the reader failed ({status})"));
    }
    Ok(())
}

fn reader(name: &str) -> Result<(), String> {
    let stream = Stream::open(name).map_err(|e| format!("opening {name:?}: {e}"))?;
    let schema = Schema::new("<f4", &[VALUES as u64]).map_err(|e| e.to_string())?;
    let mut reader = stream
        .reader(&ReaderOptions {
            require_schema: Some(schema),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut errors = 0u64;
    let mut started: Option<Instant> = None;
    let mut last_report = (Instant::now(), 0u64, 0u64);
    let end = loop {
        let frame = match reader.acquire() {
            Ok(frame) => frame,
            Err(e) => break e,
        };
        let seq = frame.info().seq;
        // One value per 64-byte cache line, and the last: every line of the frame is read.
        let ok = seq == frames
            && frame.len() == VALUES * 4
            && (0..VALUES).step_by(16).chain([VALUES - 1]).all(|j| {
                let raw = frame[j * 4..j * 4 + 4].try_into().expect("4 bytes");
                f32::from_le_bytes(raw) == value(seq, j)
            });
        if ok {
            bytes += frame.len() as u64;
        } else {
            errors += 1;
            if errors <= 5 {
                eprintln!("reader: frame {frames} is wrong (seq {seq})");
            }
        }
        drop(frame);
        frames += 1;
        let now = Instant::now();
        let t0 = *started.get_or_insert(now);
        if now - last_report.0 >= REPORT_EVERY {
            let dt = (now - last_report.0).as_secs_f64();
            println!(
                "reader: {:5.1} s  {:8.1} k frames/s  {:6.2} GB/s  ({frames} frames verified)",
                (now - t0).as_secs_f64(),
                (frames - last_report.1) as f64 / dt / 1e3,
                (bytes - last_report.2) as f64 / dt / 1e9,
            );
            last_report = (now, frames, bytes);
        }
    };
    if !matches!(end, Error::EndOfStream) {
        return Err(format!("reader: after {frames} frames: {end}"));
    }
    let elapsed = started.map_or(0.0, |t| t.elapsed().as_secs_f64());
    println!(
        "reader: received {frames} frames ({:.2} GB) in {elapsed:.2} s: {:.1} k frames/s, \
         {:.2} GB/s; {errors} errors",
        bytes as f64 / 1e9,
        frames as f64 / elapsed.max(1e-9) / 1e3,
        bytes as f64 / elapsed.max(1e-9) / 1e9,
    );
    if errors > 0 {
        return Err(format!("{errors} frames failed verification"));
    }
    Ok(())
}
