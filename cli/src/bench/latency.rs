//! Latency cases: ping-pong between this process and the child, one-way = half the round trip.
//!
//! - stream ping-pong: this process writes a 64-byte frame on stream `ping` and waits for it on
//!   stream `pong`; the child reads each frame from `ping`, checks it and writes it back on
//!   `pong`. Both readers use the wait strategy under test.
//! - cache-line ping-pong: the same exchange with two bare 32-bit words on lines of their own in
//!   a shared page, both sides busy-polling: what moving a cache line from one CPU to the other
//!   and back costs, the limit of a busy-spinning stream.
//! - ideal-ring ping-pong: 64-byte frames through two minimal rings (a head and a tail counter
//!   on lines of their own, slots without a header, one copy in and one out), both sides
//!   busy-polling: the least any ring whose publication counter is apart from its slots costs,
//!   a second limit of a busy-spinning stream.
//! - futex ping-pong: the same words, but each side sleeps (`FUTEX_WAIT`, through the library's
//!   own futex calls) until the other stores and wakes it: what waking a sleeping process on
//!   another CPU costs on this machine, the limit of a blocking stream.
//!
//! Each sample is the time from just before the write to just after the reply was read (two
//! clock reads of the monotonic clock, ~20 ns, included); the first samples are a warm-up.

use super::child::{ChildArgs, ChildProcess, Role};
use super::shared_map::SharedMap;
use super::throughput::stamp;
use super::{create_stream, Amount, Plan, WaitStrategy, SMALL_FRAME};
use serde::Serialize;
use serde_json::{json, Value};
use shmline::__private::{futex_wait, futex_wake};
use shmline::{Error, ReaderOptions, Stream, WriterOptions};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Slots of the ping and pong rings (the exchange keeps at most one frame in each).
const PING_CAPACITY: u32 = 64;
/// Round trips dropped at the start.
const WARMUP_SAMPLES: usize = 1000;
/// Value of the ping word that tells the child to stop.
const PING_STOP: u32 = u32::MAX;
/// Offsets of the ping-pong words in their page: one 128-byte line each.
const PING_WORD: usize = 0;
const PONG_WORD: usize = 128;
const READY_WORD: usize = 256;
const PING_PAGE: usize = 4096;
/// Longest single futex sleep of the futex ping-pong (it re-checks and sleeps again).
const FUTEX_SLICE: Duration = Duration::from_secs(1);

/// One-way latencies of a case, in nanoseconds (half a round trip).
#[derive(Debug, Serialize)]
pub struct OneWayNs {
    /// Fastest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// Round-trip samples of one latency case, as reported (`latency`, `cache_line_ping_pong` and
/// `futex_ping_pong` in the JSON).
#[derive(Debug, Serialize)]
pub struct LatencyResult {
    /// "busy_spin", "adaptive", "block" (a stream), or "cache-line" / "futex" / "ideal-ring" (a
    /// bare ping-pong).
    pub wait: &'static str,
    /// Payload bytes per frame (the cache-line and futex ping-pongs move one 32-bit word).
    pub size: usize,
    /// Round trips measured (after the warm-up).
    pub samples: usize,
    /// Percentiles of the one-way latency.
    pub one_way_ns: OneWayNs,
    /// The bare ping-pong this case is compared with ("cache-line" or "futex"), if any.
    pub baseline: Option<&'static str>,
    /// Median one-way latency of that baseline in the same run.
    pub baseline_p50_ns: Option<u64>,
    /// `one_way_ns.p50 / baseline_p50_ns`.
    pub ratio_to_baseline: Option<f64>,
    /// Busy-spin and adaptive stream cases: median one-way latency of the ideal-ring ping-pong
    /// of the same run (64-byte frames through two minimal rings), null otherwise. (Added within
    /// schema version 1.)
    pub ideal_ring_p50_ns: Option<u64>,
    /// `one_way_ns.p50 / ideal_ring_p50_ns`.
    pub ratio_to_ideal_ring: Option<f64>,
    /// Verification failures.
    pub errors: Vec<String>,
}

impl LatencyResult {
    fn new(wait: &'static str, mut round_trips: Vec<u64>, errors: Vec<String>) -> Self {
        round_trips.sort_unstable();
        // Exact percentiles from the sorted samples (at most a few million: a sort is cheap
        // next to the run itself, and nothing is binned).
        let one_way = |q: f64| -> u64 {
            if round_trips.is_empty() {
                return 0;
            }
            let n = round_trips.len();
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            round_trips[rank - 1] / 2
        };
        let mean = if round_trips.is_empty() {
            0.0
        } else {
            round_trips.iter().sum::<u64>() as f64 / round_trips.len() as f64 / 2.0
        };
        LatencyResult {
            wait,
            size: if wait == "cache-line" || wait == "futex" {
                4
            } else {
                SMALL_FRAME
            },
            samples: round_trips.len(),
            one_way_ns: OneWayNs {
                min: one_way(0.0),
                p50: one_way(0.5),
                p99: one_way(0.99),
                p999: one_way(0.999),
                max: one_way(1.0),
                mean,
            },
            baseline: None,
            baseline_p50_ns: None,
            ratio_to_baseline: None,
            ideal_ring_p50_ns: None,
            ratio_to_ideal_ring: None,
            errors,
        }
    }

    /// Records the ideal-ring ping-pong `ring` of the same run, a second limit of this case.
    pub fn compare_ring(&mut self, ring: &LatencyResult) {
        self.ideal_ring_p50_ns = Some(ring.one_way_ns.p50);
        self.ratio_to_ideal_ring = (ring.one_way_ns.p50 > 0)
            .then(|| self.one_way_ns.p50 as f64 / ring.one_way_ns.p50 as f64);
    }

    /// Records the bare ping-pong `baseline` of the same run this case is compared with.
    pub fn compare(&mut self, baseline: &LatencyResult) {
        self.baseline = Some(baseline.wait);
        self.baseline_p50_ns = Some(baseline.one_way_ns.p50);
        self.ratio_to_baseline = (baseline.one_way_ns.p50 > 0)
            .then(|| self.one_way_ns.p50 as f64 / baseline.one_way_ns.p50 as f64);
    }

    /// One line for progress output.
    pub fn summary(&self) -> String {
        format!(
            "one-way p50 {} ns, p99 {} ns, p99.9 {} ns ({} round trips)",
            self.one_way_ns.p50, self.one_way_ns.p99, self.one_way_ns.p999, self.samples
        )
    }
}

/// Collects round trips until the plan's amount is reached.
struct Samples {
    amount: Amount,
    deadline: Instant,
    round_trips: Vec<u64>,
}

impl Samples {
    fn new(amount: Amount) -> Samples {
        let (deadline, expected) = match amount {
            Amount::Frames(n) => (Instant::now(), n),
            // Room for round trips of ~250 ns without reallocating mid-run.
            Amount::Seconds(s) => (
                Instant::now() + Duration::from_secs_f64(s),
                (s * 4e6) as u64,
            ),
        };
        Samples {
            amount,
            deadline,
            round_trips: Vec::with_capacity(expected.min(1 << 24) as usize),
        }
    }

    /// Records the round trip `start..end`; returns false once enough were taken.
    #[inline]
    fn record(&mut self, start: Instant, end: Instant) -> bool {
        self.round_trips.push((end - start).as_nanos() as u64);
        match self.amount {
            Amount::Frames(n) => (self.round_trips.len() as u64) < n,
            Amount::Seconds(_) => end < self.deadline,
        }
    }

    /// The round trips after the warm-up (the first tenth, at most [`WARMUP_SAMPLES`]).
    fn into_measured(mut self) -> Vec<u64> {
        let warmup = (self.round_trips.len() / 10).min(WARMUP_SAMPLES);
        self.round_trips.drain(..warmup);
        self.round_trips
    }
}

/// Turns a library error into a message saying what failed.
fn err(what: &'static str) -> impl Fn(Error) -> String {
    move |e| format!("{what}: {e}")
}

/// Ping-pong over two streams with both readers waiting by `wait`.
pub fn run_stream(plan: &Plan, wait: WaitStrategy) -> Result<LatencyResult, String> {
    let ping = create_stream("ping", PING_CAPACITY, SMALL_FRAME, 1, 1)?;
    let pong = create_stream("pong", PING_CAPACITY, SMALL_FRAME, 1, 1)?;
    let mut replies = pong
        .reader(&ReaderOptions {
            wait,
            ..Default::default()
        })
        .map_err(err("attaching the pong reader"))?;
    let mut writer = ping
        .writer_with(&WriterOptions {
            wait,
            timeout: None,
        })
        .map_err(err("attaching the ping writer"))?;
    let mut args = ChildArgs::new(Role::Echo, plan.child_cpu);
    args.stream = Some(ping.name().to_owned());
    args.reply = Some(pong.name().to_owned());
    args.size = SMALL_FRAME;
    args.wait = wait;
    let mut child = ChildProcess::spawn(&args)?;
    // The child attaches as pong's writer before it joins ping as a reader.
    child.wait_until("the echo process attached", || {
        writer.wait_for_readers(1, Duration::ZERO).is_ok()
    })?;
    Stream::unlink(ping.name()).map_err(|e| e.to_string())?;
    Stream::unlink(pong.name()).map_err(|e| e.to_string())?;

    let mut frame = [0xA5u8; SMALL_FRAME];
    let mut reply = [0u8; SMALL_FRAME];
    let mut samples = Samples::new(plan.amount);
    let mut errors = Vec::new();
    for seq in 0u64.. {
        stamp(&mut frame, seq);
        let start = Instant::now();
        writer.write(&frame).map_err(err("writing a ping"))?;
        let info = replies
            .read_into(&mut reply)
            .map_err(err("reading a pong"))?;
        let end = Instant::now();
        if info.seq != seq || reply != frame {
            errors.push(format!(
                "round trip {seq}: the reply (seq {}) differs from the ping",
                info.seq
            ));
            break;
        }
        if !samples.record(start, end) {
            break;
        }
    }
    writer.close();
    match replies.read_into(&mut reply) {
        Err(Error::EndOfStream) => {}
        other => errors.push(format!("after the last round trip: {other:?}")),
    }
    errors.extend(echo_errors(&child.finish()?));
    Ok(LatencyResult::new(
        wait.name(),
        samples.into_measured(),
        errors,
    ))
}

/// The verification errors the echo child reported in its output `out`, each marked as its own.
fn echo_errors(out: &Value) -> Vec<String> {
    let errors = out["errors"].as_array().into_iter().flatten();
    errors
        .filter_map(|e| e.as_str().map(|e| format!("echo: {e}")))
        .collect()
}

/// The child's side of the stream ping-pong: echo every frame of `--stream` on `--reply`.
pub fn echo(args: &ChildArgs) -> Result<Value, String> {
    let open = |name: &Option<String>, flag: &str| -> Result<Stream, String> {
        let name = name.as_deref().ok_or(format!("{flag} is required"))?;
        Stream::open(name).map_err(|e| e.to_string())
    };
    let ping = open(&args.stream, "--stream")?;
    let pong = open(&args.reply, "--reply")?;
    let mut writer = pong
        .writer_with(&WriterOptions {
            wait: args.wait,
            timeout: None,
        })
        .map_err(|e| e.to_string())?;
    let mut reader = ping
        .reader(&ReaderOptions {
            wait: args.wait,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; args.size];
    let mut errors = Vec::new();
    let mut expected = 0u64;
    loop {
        let info = match reader.read_into(&mut buf) {
            Ok(info) => info,
            Err(Error::EndOfStream) => break,
            Err(e) => return Err(format!("reading ping {expected}: {e}")),
        };
        let data = &buf[..info.len as usize];
        let stamp = expected.to_le_bytes();
        if info.seq != expected || data.len() < 8 || data[..8] != stamp {
            errors.push(format!("ping {expected}: got seq {}", info.seq));
        }
        expected = info.seq + 1;
        writer
            .write(data)
            .map_err(|e| format!("writing pong {}: {e}", info.seq))?;
    }
    writer.close();
    Ok(json!({ "frames": expected, "errors": errors }))
}

/// How the two sides of a bare ping-pong wait for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PingPong {
    /// Busy-poll the other side's word: a cache line's round trip.
    CacheLine,
    /// Sleep on the other side's word until it stores and wakes us.
    Futex,
    /// 64-byte frames through two minimal rings (the throughput cases' ideal ring), both sides
    /// busy-polling: what any ring with a publication counter apart from its slots costs.
    IdealRing,
}

impl PingPong {
    /// The case's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            PingPong::CacheLine => "cache-line",
            PingPong::Futex => "futex",
            PingPong::IdealRing => "ideal-ring",
        }
    }

    /// Stores `value` in `word` and wakes the other side if it sleeps.
    #[inline]
    fn send(self, word: &std::sync::atomic::AtomicU32, value: u32) {
        // Release: the words carry no data; the ordering only keeps each exchange after the
        // previous one.
        word.store(value, Ordering::Release);
        if self == PingPong::Futex {
            futex_wake(word, 1);
        }
    }

    /// Waits until `word` differs from `last`, and returns its value.
    #[inline]
    fn receive(self, word: &std::sync::atomic::AtomicU32, last: u32) -> u32 {
        loop {
            // Acquire: as in `send`.
            let seen = word.load(Ordering::Acquire);
            if seen != last {
                return seen;
            }
            match self {
                // (The ideal ring never comes here: it has its own loop, `IdealRing::receive`.)
                PingPong::CacheLine | PingPong::IdealRing => std::hint::spin_loop(),
                PingPong::Futex => futex_wait(word, last, FUTEX_SLICE),
            }
        }
    }
}

/// A bare ping-pong between this process and the child: the round trip of one 32-bit word (or,
/// for [`PingPong::IdealRing`], of a 64-byte frame through two minimal rings).
pub fn run_ping_pong(plan: &Plan, kind: PingPong) -> Result<LatencyResult, String> {
    if kind == PingPong::IdealRing {
        return run_ideal_ring_ping_pong(plan);
    }
    let page = SharedMap::create(PING_PAGE)?;
    let mut args = ChildArgs::new(Role::PingPongEcho, plan.child_cpu);
    args.fd = Some(page.fd());
    args.ping_pong = Some(kind);
    let mut child = ChildProcess::spawn(&args)?;
    let (ping, pong) = (page.u32(PING_WORD), page.u32(PONG_WORD));
    // Acquire: the child's setup happens before it says it is ready.
    child.wait_until("the ping-pong echo process started", || {
        page.u32(READY_WORD).load(Ordering::Acquire) == 1
    })?;
    let mut samples = Samples::new(plan.amount);
    for round in 1u32..PING_STOP {
        let start = Instant::now();
        kind.send(ping, round);
        let mut seen = round - 1;
        while seen != round {
            seen = kind.receive(pong, seen);
        }
        if !samples.record(start, Instant::now()) {
            break;
        }
    }
    PingPong::Futex.send(ping, PING_STOP);
    child.finish()?;
    Ok(LatencyResult::new(
        kind.name(),
        samples.into_measured(),
        Vec::new(),
    ))
}

/// The child's side of a bare ping-pong: copy every new ping value to pong.
pub fn ping_pong_echo(args: &ChildArgs) -> Result<Value, String> {
    let fd = args.fd.ok_or("--fd is required")?;
    let kind = args.ping_pong.ok_or("--ping-pong is required")?;
    if kind == PingPong::IdealRing {
        return ideal_ring_echo(fd);
    }
    let page = SharedMap::map(fd, PING_PAGE)?;
    let (ping, pong) = (page.u32(PING_WORD), page.u32(PONG_WORD));
    // Release: pairs with the parent's Acquire load of the ready word.
    page.u32(READY_WORD).store(1, Ordering::Release);
    let mut last = 0;
    let mut rounds = 0u64;
    loop {
        let value = kind.receive(ping, last);
        if value == PING_STOP {
            break;
        }
        last = value;
        rounds += 1;
        kind.send(pong, value);
    }
    Ok(json!({ "frames": rounds }))
}

/// The ideal-ring ping-pong's mapping: two rings, ping (this process to the child) at 0 and pong
/// at [`RING_BYTES`]; in each, the writer's counter, the reader's counter and "ready" on 128-byte
/// lines of their own, then [`PING_CAPACITY`] slots of one 64-byte frame each (the slots of the
/// throughput cases' ideal ring: no header).
const RING_HEAD: usize = 0;
const RING_TAIL: usize = 128;
const RING_READY: usize = 256;
const RING_SLOTS: usize = 512;
const RING_BYTES: usize = 8192;

/// One direction of the ideal-ring ping-pong, as one side sees it.
struct IdealRing<'a> {
    map: &'a SharedMap,
    base: usize,
    /// This side's copy of its own counter (head when writing, tail when reading).
    count: u64,
}

impl<'a> IdealRing<'a> {
    fn at(map: &'a SharedMap, base: usize) -> Self {
        IdealRing {
            map,
            base,
            count: 0,
        }
    }

    fn slot(&self, seq: u64) -> *mut u8 {
        let index = (seq % PING_CAPACITY as u64) as usize;
        self.map
            .bytes(self.base + RING_SLOTS, SMALL_FRAME * PING_CAPACITY as usize)
            .wrapping_add(index * SMALL_FRAME)
    }

    /// Copies `frame` into the next slot and publishes it (one Release store). The exchange
    /// keeps at most one frame in the ring, so there is always room.
    #[inline]
    fn send(&mut self, frame: &[u8; SMALL_FRAME]) {
        // SAFETY: the slot is inside the mapping (index below PING_CAPACITY) and the reader is
        // done with it: it released it before it replied to the previous frame.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), self.slot(self.count), SMALL_FRAME)
        };
        self.count += 1;
        // Release: the reader that loads this head sees the frame.
        self.map
            .u64(self.base + RING_HEAD)
            .store(self.count, Ordering::Release);
    }

    /// Busy-polls until the next frame is published, copies it out and releases its slot (one
    /// Release store); `None` once `stop` says the other side is done and nothing came.
    #[inline]
    fn receive(&mut self, out: &mut [u8; SMALL_FRAME], stop: impl Fn() -> bool) -> Option<()> {
        // Acquire: the writer's copy into the slot happens before its head store.
        while self.map.u64(self.base + RING_HEAD).load(Ordering::Acquire) == self.count {
            if stop() {
                return None;
            }
            std::hint::spin_loop();
        }
        // SAFETY: the slot is inside the mapping and published (count < head); the writer does
        // not touch it again before we release it and reply.
        unsafe {
            std::ptr::copy_nonoverlapping(self.slot(self.count), out.as_mut_ptr(), SMALL_FRAME)
        };
        self.count += 1;
        // Release: our copy out happens before the writer reuses the slot.
        self.map
            .u64(self.base + RING_TAIL)
            .store(self.count, Ordering::Release);
        Some(())
    }
}

/// The ideal-ring ping-pong: 64-byte frames stamped with their number, sent on the ping ring,
/// echoed by the child on the pong ring, checked.
fn run_ideal_ring_ping_pong(plan: &Plan) -> Result<LatencyResult, String> {
    let map = SharedMap::create(2 * RING_BYTES)?;
    let mut args = ChildArgs::new(Role::PingPongEcho, plan.child_cpu);
    args.fd = Some(map.fd());
    args.ping_pong = Some(PingPong::IdealRing);
    let mut child = ChildProcess::spawn(&args)?;
    // Acquire: the child's setup happens before it says it is ready.
    child.wait_until("the ideal-ring echo process started", || {
        map.u32(RING_READY).load(Ordering::Acquire) == 1
    })?;
    let (mut ping, mut pong) = (IdealRing::at(&map, 0), IdealRing::at(&map, RING_BYTES));
    let mut frame = [0xA5u8; SMALL_FRAME];
    let mut reply = [0u8; SMALL_FRAME];
    let mut samples = Samples::new(plan.amount);
    let mut errors = Vec::new();
    for seq in 0u64.. {
        stamp(&mut frame, seq);
        let start = Instant::now();
        ping.send(&frame);
        if pong.receive(&mut reply, answer_overdue(start)).is_none() {
            errors.push(format!(
                "round trip {seq}: no reply within {} s: the echo process stopped answering",
                ECHO_PATIENCE.as_secs()
            ));
            break;
        }
        let end = Instant::now();
        if reply != frame {
            errors.push(format!("round trip {seq}: the reply differs from the ping"));
            break;
        }
        if !samples.record(start, end) {
            break;
        }
    }
    // Release: the child that sees "done" has seen every ping before it.
    map.u32(RING_BYTES + RING_READY).store(1, Ordering::Release);
    errors.extend(echo_errors(&child.finish()?));
    Ok(LatencyResult::new(
        PingPong::IdealRing.name(),
        samples.into_measured(),
        errors,
    ))
}

/// Longest wait for one reply of the ideal-ring ping-pong (generous: the machine may be loaded).
const ECHO_PATIENCE: Duration = Duration::from_secs(30);

/// A stop condition for a busy-polling wait for the reply to the ping sent at `start`: true once
/// [`ECHO_PATIENCE`] has passed (the clock is read every few thousand polls only).
fn answer_overdue(start: Instant) -> impl Fn() -> bool {
    let polls = std::cell::Cell::new(0u32);
    move || {
        polls.set(polls.get().wrapping_add(1));
        polls.get().is_multiple_of(4096) && start.elapsed() > ECHO_PATIENCE
    }
}

/// The child's side of the ideal-ring ping-pong: echo every ping frame on the pong ring, until
/// the parent says it is done (the pong ring's "ready" word).
fn ideal_ring_echo(fd: i32) -> Result<Value, String> {
    let map = SharedMap::map(fd, 2 * RING_BYTES)?;
    let (mut ping, mut pong) = (IdealRing::at(&map, 0), IdealRing::at(&map, RING_BYTES));
    // Release: pairs with the parent's Acquire load of the ready word.
    map.u32(RING_READY).store(1, Ordering::Release);
    let done = || map.u32(RING_BYTES + RING_READY).load(Ordering::Acquire) == 1;
    let mut frame = [0u8; SMALL_FRAME];
    let mut errors = Vec::new();
    let mut rounds = 0u64;
    while ping.receive(&mut frame, done).is_some() {
        let stamp = rounds.to_le_bytes();
        if frame[..8] != stamp || frame[SMALL_FRAME - 8..] != stamp {
            errors.push(format!("ping {rounds}: wrong stamp"));
        }
        rounds += 1;
        pong.send(&frame);
    }
    Ok(json!({ "frames": rounds, "errors": errors }))
}
