//! `shmline-bridge bench`: raw Zenoh and the bridge measured in the same run on loopback, so the
//! bridge's cost is read against the engine it rides on (docs/BENCHMARKS.md, section "Bridge").
//!
//! Raw Zenoh: two sessions in this process, one publishing and one subscribing, over TCP on
//! loopback. The bridge: an exporter and an importer (two processes of this program) between a
//! stream written and a stream read in this process. Figures: 64 KiB throughput, 64 B frames one
//! put per frame and many per put (batched), and one-way latency at 1000 frames/s.

use clap::Args;
use shmline::monotonic_ns;
use shmline::{Error, ReaderOptions, Stream, StreamOptions};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

/// Arguments of `shmline-bridge bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// 64 KiB frames per throughput run.
    #[arg(long, default_value_t = 20_000)]
    pub large_frames: u64,
    /// 64 B frames per throughput run.
    #[arg(long, default_value_t = 1_000_000)]
    pub small_frames: u64,
    /// 64 B frames put one per put (raw Zenoh), for the one-put-per-frame figure.
    #[arg(long, default_value_t = 200_000)]
    pub unbatched_frames: u64,
    /// Frames of the latency runs (sent at 1000 frames/s).
    #[arg(long, default_value_t = 3_000)]
    pub latency_frames: u64,
}

const LARGE: usize = 64 * 1024;
const SMALL: usize = 64;
/// Frames per put in the raw batched run: the bridge's default batch (64 KiB) of 64 B frames.
const PER_PUT: usize = 64 * 1024 / (SMALL + crate::wire::ENTRY);

/// Runs the benchmark; prints one line per figure and a summary.
pub fn run(args: &BenchArgs) -> Result<i32, String> {
    println!("# shmline-bridge bench on loopback (tcp), one run of each");
    let raw_large = raw_throughput(LARGE, 1, args.large_frames)?;
    report("raw zenoh 64 KiB", raw_large, LARGE);
    let raw_small = raw_throughput(SMALL, 1, args.unbatched_frames)?;
    report("raw zenoh 64 B, one put per frame", raw_small, SMALL);
    let raw_batched = raw_throughput(SMALL, PER_PUT, args.small_frames)?;
    report(
        &format!("raw zenoh 64 B, {PER_PUT} per put"),
        raw_batched,
        SMALL,
    );
    let raw_latency = raw_latency(args.latency_frames)?;
    println!(
        "raw zenoh latency at 1000 frames/s: {}",
        raw_latency.describe()
    );

    let bridge_large = bridge_throughput(LARGE, args.large_frames)?;
    report("bridge 64 KiB", bridge_large, LARGE);
    let bridge_small = bridge_throughput(SMALL, args.small_frames)?;
    report("bridge 64 B (batched)", bridge_small, SMALL);
    let bridge_latency = bridge_latency(args.latency_frames)?;
    println!(
        "bridge latency at 1000 frames/s: {}",
        bridge_latency.describe()
    );

    println!("# summary");
    println!(
        "64 KiB throughput: bridge / raw = {:.2}",
        bridge_large / raw_large
    );
    println!(
        "64 B: bridge / raw batched = {:.2}; bridge / raw one-put-per-frame = {:.1}",
        bridge_small / raw_batched,
        bridge_small / raw_small
    );
    println!(
        "added one-way latency (median): {:.1} us; p99: {:.1} us",
        (bridge_latency.median as f64 - raw_latency.median as f64) / 1e3,
        (bridge_latency.p99 as f64 - raw_latency.p99 as f64) / 1e3
    );
    Ok(0)
}

fn report(what: &str, frames_per_s: f64, len: usize) {
    println!(
        "{what}: {:.0} frames/s, {:.3} GB/s",
        frames_per_s,
        frames_per_s * len as f64 / 1e9
    );
}

/// One-way latencies in nanoseconds.
struct Latency {
    median: u64,
    p99: u64,
}

impl Latency {
    fn of(mut samples: Vec<u64>) -> Latency {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        Latency {
            median: at(0.5),
            p99: at(0.99),
        }
    }

    fn describe(&self) -> String {
        format!(
            "median {:.1} us, p99 {:.1} us",
            self.median as f64 / 1e3,
            self.p99 as f64 / 1e3
        )
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Two sessions joined on loopback: (publisher's, subscriber's).
fn session_pair() -> Result<(zenoh::Session, zenoh::Session), String> {
    let port = free_port()?;
    let open = |key: &str, ep: String| {
        let mut c = zenoh::Config::default();
        for (k, v) in [
            ("scouting/multicast/enabled", "false".to_owned()),
            ("listen/endpoints", "[]".to_owned()),
            (key, format!("[{ep:?}]")),
        ] {
            c.insert_json5(k, &v).map_err(|e| e.to_string())?;
        }
        zenoh::open(c).wait().map_err(|e| e.to_string())
    };
    let a = open("listen/endpoints", format!("tcp/127.0.0.1:{port}"))?;
    let b = open("connect/endpoints", format!("tcp/127.0.0.1:{port}"))?;
    Ok((a, b))
}

/// Raw Zenoh: `frames` frames of `len` bytes, `per_put` per message; frames per second.
fn raw_throughput(len: usize, per_put: usize, frames: u64) -> Result<f64, String> {
    let (a, b) = session_pair()?;
    let key = format!("bench/raw/{}", std::process::id());
    let got = Arc::new(AtomicU64::new(0));
    let g = Arc::clone(&got);
    let _sub = b
        .declare_subscriber(&key)
        .callback(move |s| {
            // Relaxed: a counter polled by the sender.
            g.fetch_add(s.payload().len() as u64, Ordering::Relaxed);
        })
        .wait()
        .map_err(|e| e.to_string())?;
    let publisher = a
        .declare_publisher(key.clone())
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(|e| e.to_string())?;
    // Warm up until the subscription has reached the publisher.
    while got.load(Ordering::Relaxed) == 0 {
        publisher
            .put(vec![0u8; 1])
            .wait()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    got.store(0, Ordering::Relaxed);
    let message = vec![7u8; len * per_put];
    let puts = frames.div_ceil(per_put as u64);
    let total = puts * message.len() as u64;
    let started = Instant::now();
    for _ in 0..puts {
        publisher
            .put(message.clone())
            .wait()
            .map_err(|e| e.to_string())?;
    }
    while got.load(Ordering::Relaxed) < total {
        if started.elapsed() > Duration::from_secs(300) {
            return Err("raw Zenoh lost messages in Block mode (timed out)".into());
        }
        std::thread::yield_now();
    }
    Ok((puts * per_put as u64) as f64 / started.elapsed().as_secs_f64())
}

/// Raw Zenoh: one-way latency of 64 B puts at 1000 per second.
fn raw_latency(frames: u64) -> Result<Latency, String> {
    let (a, b) = session_pair()?;
    let key = format!("bench/lat/{}", std::process::id());
    let samples = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&samples);
    let _sub = b
        .declare_subscriber(&key)
        .callback(move |s| {
            let bytes = s.payload().to_bytes();
            if bytes.len() >= 8 {
                let sent = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                s2.lock().unwrap().push(monotonic_ns().saturating_sub(sent));
            }
        })
        .wait()
        .map_err(|e| e.to_string())?;
    let publisher = a
        .declare_publisher(key.clone())
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(|e| e.to_string())?;
    while samples.lock().unwrap().is_empty() {
        publisher
            .put(monotonic_ns().to_le_bytes().to_vec())
            .wait()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(10));
    }
    samples.lock().unwrap().clear();
    let started = Instant::now();
    for i in 0..frames {
        sleep_until(started + Duration::from_millis(i));
        let mut payload = vec![0u8; SMALL];
        payload[..8].copy_from_slice(&monotonic_ns().to_le_bytes());
        publisher.put(payload).wait().map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_millis(200));
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    if samples.is_empty() {
        return Err("no latency sample arrived".into());
    }
    Ok(Latency::of(samples))
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// An exporter and an importer between two streams of this process, killed when dropped.
struct Pair {
    children: Vec<Child>,
    src: String,
    dst: String,
}

impl Pair {
    fn start(len: usize, capacity: u32) -> Result<(Pair, Stream, Stream), String> {
        let id = format!("{}-{}", std::process::id(), crate::epoch());
        let (src, dst, key) = (
            format!("bench-bridge-src-{id}"),
            format!("bench-bridge-dst-{id}"),
            format!("bench/bridge/{id}"),
        );
        let origin = Stream::create(
            &src,
            &StreamOptions {
                capacity,
                max_frame_size: len as u32,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let port = free_port()?.to_string();
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let spawn = |args: &[&str]| {
            Command::new(&exe)
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())
        };
        let listen = format!("tcp/127.0.0.1:{port}");
        let children = vec![
            spawn(&["export", &src, "--key", &key, "--listen", &listen])?,
            spawn(&["import", &key, &dst, "--connect", &listen])?,
        ];
        let pair = Pair {
            children,
            src,
            dst: dst.clone(),
        };
        let started = Instant::now();
        let imported = loop {
            if let Ok(s) = Stream::open(&dst) {
                break s;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the importer did not create its stream".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok((pair, origin, imported))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for child in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Stream::unlink(&self.src);
        let _ = Stream::unlink(&self.dst);
    }
}

/// The bridge: `frames` frames of `len` bytes from a writer here to a reader here; frames/s.
fn bridge_throughput(len: usize, frames: u64) -> Result<f64, String> {
    let capacity = if len >= 4096 { 64 } else { 4096 };
    let (_pair, origin, imported) = Pair::start(len, capacity)?;
    let mut reader = imported
        .reader(&ReaderOptions::default())
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let writer = std::thread::spawn(move || -> Result<(), String> {
        let mut writer = origin.writer().map_err(|e| e.to_string())?;
        let data = vec![5u8; len];
        if len < 4096 {
            let batch: Vec<&[u8]> = vec![&data[..]; 256];
            let mut left = frames;
            while left > 0 {
                let n = (left as usize).min(batch.len());
                left -= writer.write_batch(&batch[..n]).map_err(|e| e.to_string())? as u64;
            }
        } else {
            for _ in 0..frames {
                writer.write(&data).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    });
    let mut buf = vec![0u8; 1 << 20];
    let mut infos = vec![shmline::FrameInfo::default(); 4096];
    let mut got = 0;
    loop {
        match reader.read_batch(&mut buf, &mut infos) {
            Ok(n) => got += n as u64,
            Err(Error::EndOfStream) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    let elapsed = started.elapsed();
    writer.join().map_err(|_| "writer panicked")??;
    if got != frames {
        return Err(format!("the bridge delivered {got} of {frames} frames"));
    }
    Ok(frames as f64 / elapsed.as_secs_f64())
}

/// The bridge: one-way latency (origin commit to local read) of 64 B frames at 1000 per second.
fn bridge_latency(frames: u64) -> Result<Latency, String> {
    let (_pair, origin, imported) = Pair::start(SMALL, 1024)?;
    let mut reader = imported
        .reader(&ReaderOptions::default())
        .map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || -> Result<(), String> {
        let mut writer = origin.writer().map_err(|e| e.to_string())?;
        let started = Instant::now();
        for i in 0..frames {
            sleep_until(started + Duration::from_millis(i));
            writer.write(&[0u8; SMALL]).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    let mut samples = Vec::with_capacity(frames as usize);
    loop {
        match reader.read_into(&mut [0u8; SMALL]) {
            // The origin's commit time crossed with the frame (same host: same clock).
            Ok(info) => samples.push(monotonic_ns().saturating_sub(info.timestamp_ns)),
            Err(Error::EndOfStream) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    writer.join().map_err(|_| "writer panicked")??;
    if samples.is_empty() {
        return Err("no frame crossed".into());
    }
    Ok(Latency::of(samples))
}
