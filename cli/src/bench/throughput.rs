//! Throughput cases: the writer (this process) sends frames for a while, the reader (the child)
//! verifies and counts them; plus the memcpy figure for scale.
//!
//! What each side touches, per frame of `size` bytes:
//! - copy: the writer stamps the frame's sequence number in the first and last 8 bytes of a
//!   buffer and `write`s it (one memcpy into the ring); the reader `read_into`s a buffer (one
//!   memcpy out of the ring) and checks the two stamps;
//! - zero-copy: the writer `reserve`s a slot, fills the whole payload in place (a memset of a
//!   byte derived from the sequence number, then the two stamps) and commits; the reader
//!   `acquire`s the frame, sums its 8-byte words (reading every byte once, in place), checks the
//!   sum and the stamps, and releases;
//! - batch: as copy, `--batch` frames per `write_batch` / `read_batch` call.

use super::child::{ChildArgs, ChildProcess, Role};
use super::{create_stream, Amount, Plan, WaitStrategy};
use serde::Serialize;
use serde_json::{json, Value};
use shmline::{Error, FrameInfo, ReaderOptions, Stream, WriterOptions};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Verification errors kept word for word (the rest are only counted).
pub(super) const ERRORS_KEPT: usize = 10;

/// A way of moving frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `write` / `read_into`.
    Copy,
    /// `reserve`+`commit` / `acquire`+`release`, payload written and read in place.
    ZeroCopy,
    /// `write_batch` / `read_batch`.
    Batch,
}

impl Path {
    /// The case's name in reports.
    pub fn name(self, plan: &Plan) -> String {
        match self {
            Path::Copy => "copy".into(),
            Path::ZeroCopy => "zero-copy".into(),
            Path::Batch => format!("batch-{}", plan.batch),
        }
    }

    fn role(self) -> Role {
        match self {
            Path::Copy => Role::ReadCopy,
            Path::ZeroCopy => Role::ReadZeroCopy,
            Path::Batch => Role::ReadBatch,
        }
    }
}

/// The outcome of one throughput case, as reported (`throughput` and `ideal` in the JSON).
#[derive(Debug, Serialize)]
pub struct CaseResult {
    /// "copy", "zero-copy", "batch-32" or "ideal".
    pub path: String,
    /// Payload bytes per frame.
    pub size: usize,
    /// Slots of the ring.
    pub capacity: u32,
    /// Wait strategy of both sides.
    pub wait: &'static str,
    /// Frames the writer sent.
    pub frames_sent: u64,
    /// Frames the reader verified.
    pub frames_verified: u64,
    /// Frames in the timed window (after the warm-up).
    pub window_frames: u64,
    /// Length of the timed window.
    pub window_seconds: f64,
    /// Time the writer spent writing.
    pub writer_seconds: f64,
    /// Times the writer found the ring full and waited.
    pub writer_waits: u64,
    /// Frames the reader delivered and verified per second, over the timed window.
    pub frames_per_s: f64,
    /// Payload GB (10^9 bytes) per second over the same window.
    pub gb_per_s: f64,
    /// Frames/s of the ideal ring of the same size in the same run (none for the ideal itself).
    pub ideal_frames_per_s: Option<f64>,
    /// `frames_per_s / ideal_frames_per_s`.
    pub ratio_to_ideal: Option<f64>,
    /// GB/s of a single-thread memcpy of one frame in the same run.
    pub memcpy_gb_per_s: Option<f64>,
    /// `gb_per_s / memcpy_gb_per_s`.
    pub ratio_to_memcpy: Option<f64>,
    /// Verification failures, each with a description.
    pub errors: Vec<String>,
    /// Why the child could not pin itself, if it could not.
    #[serde(skip)]
    pub child_pin_error: Option<String>,
}

impl CaseResult {
    /// The case from the reader child's output `out` and the writer's own figures.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn from_reader(
        path: String,
        size: usize,
        capacity: u32,
        wait: WaitStrategy,
        sent: u64,
        writer_seconds: f64,
        writer_waits: u64,
        out: &Value,
    ) -> CaseResult {
        let frames_verified = out["frames"].as_u64().unwrap_or(0);
        let window_frames = out["window_frames"].as_u64().unwrap_or(0);
        let window_seconds = out["window_ns"].as_u64().unwrap_or(0) as f64 / 1e9;
        let mut errors: Vec<String> = out["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let bad = out["bad_frames"].as_u64().unwrap_or(0);
        if bad as usize > errors.len() {
            errors.push(format!("... {bad} bad frames in all"));
        }
        if frames_verified + bad != sent {
            errors.push(format!(
                "the writer sent {sent} frames but the reader received {}",
                frames_verified + bad
            ));
        }
        let frames_per_s = if window_seconds > 0.0 {
            window_frames as f64 / window_seconds
        } else {
            0.0
        };
        CaseResult {
            path,
            size,
            capacity,
            wait: wait.name(),
            frames_sent: sent,
            frames_verified,
            window_frames,
            window_seconds,
            writer_seconds,
            writer_waits,
            frames_per_s,
            gb_per_s: frames_per_s * size as f64 / 1e9,
            ideal_frames_per_s: None,
            ratio_to_ideal: None,
            memcpy_gb_per_s: None,
            ratio_to_memcpy: None,
            errors,
            child_pin_error: out["pin_error"].as_str().map(str::to_owned),
        }
    }

    /// One line for progress output, with the ratio to the `ideal` frames/s when given.
    pub fn summary(&self, ideal: Option<f64>) -> String {
        format!(
            "{} frames/s, {:.2} GB/s{}{}",
            super::human_rate(self.frames_per_s),
            self.gb_per_s,
            ideal
                .filter(|&i| i > 0.0)
                .map_or(String::new(), |i| format!(
                    ", {:.2}x ideal",
                    self.frames_per_s / i
                )),
            super::error_note(&self.errors)
        )
    }

    /// Fills in the references of the same run: the ideal ring's frames/s and memcpy's GB/s.
    pub fn compare(&mut self, ideal_frames_per_s: Option<f64>, memcpy_gbps: Option<f64>) {
        self.ideal_frames_per_s = ideal_frames_per_s;
        self.ratio_to_ideal = ideal_frames_per_s
            .filter(|&i| i > 0.0)
            .map(|i| self.frames_per_s / i);
        self.memcpy_gb_per_s = memcpy_gbps;
        self.ratio_to_memcpy = memcpy_gbps.filter(|&m| m > 0.0).map(|m| self.gb_per_s / m);
    }
}

/// Runs one throughput case: a fresh stream, a reader process, and this process writing.
pub fn run_case(plan: &Plan, path: Path, size: usize) -> Result<CaseResult, String> {
    let batch = match path {
        Path::Batch => plan.batch as usize,
        _ => 1,
    };
    let capacity = plan.capacity_for(size);
    let stream = create_stream("tput", capacity, size, 1, 1)?;
    let mut writer = stream
        .writer_with(&WriterOptions {
            wait: plan.wait,
            timeout: None,
        })
        .map_err(|e| format!("attaching the writer: {e}"))?;
    let mut args = ChildArgs::new(path.role(), plan.child_cpu);
    args.stream = Some(stream.name().to_owned());
    args.size = size;
    args.batch = batch;
    // Two laps: every slot has been written and read once (pages mapped, caches warm).
    args.warmup = 2 * capacity as u64;
    args.wait = plan.wait;
    let mut child = ChildProcess::spawn(&args)?;
    child.wait_until("the reader attached", || {
        writer.wait_for_readers(1, Duration::ZERO).is_ok()
    })?;
    // Both processes have it mapped: remove the name now so nothing outlives a killed bench.
    Stream::unlink(stream.name()).map_err(|e| e.to_string())?;

    let started = Instant::now();
    let sent = match path {
        Path::Copy => write_copy(&mut writer, size, plan.amount),
        Path::ZeroCopy => write_zero_copy(&mut writer, size, plan.amount),
        Path::Batch => write_batch(&mut writer, size, batch, plan.amount),
    };
    let writer_seconds = started.elapsed().as_secs_f64();
    let writer_waits = stream.stats().writer_waits;
    writer.close();
    let sent = sent.map_err(|e| format!("writer: {e}"))?;
    let out = child.finish()?;
    Ok(CaseResult::from_reader(
        path.name(plan),
        size,
        capacity,
        plan.wait,
        sent,
        writer_seconds,
        writer_waits,
        &out,
    ))
}

/// Decides when the writer stops, reading the clock only every few frames.
pub(super) struct Stopper {
    amount: Amount,
    deadline: Instant,
    check_every: u64,
    next_check: u64,
}

impl Stopper {
    pub(super) fn new(amount: Amount, size: usize) -> Stopper {
        let seconds = match amount {
            Amount::Seconds(s) => s,
            Amount::Frames(_) => 0.0,
        };
        // About every 4 KiB of payload: a clock read costs ~35 ns here, a 64-byte frame ~100 ns.
        let check_every = (4096 / size as u64).max(1);
        Stopper {
            amount,
            deadline: Instant::now() + Duration::from_secs_f64(seconds),
            check_every,
            // The first frames go out whatever the clock says: a case never measures nothing.
            next_check: check_every,
        }
    }

    /// Frames to send in the next call, at most `max`, given `sent` so far; 0 means stop.
    #[inline]
    pub(super) fn next(&mut self, sent: u64, max: u64) -> u64 {
        match self.amount {
            Amount::Frames(n) => n.saturating_sub(sent).min(max),
            Amount::Seconds(_) => {
                if sent >= self.next_check {
                    if Instant::now() >= self.deadline {
                        return 0;
                    }
                    self.next_check = sent + self.check_every;
                }
                max
            }
        }
    }
}

/// The byte the zero-copy writer fills frame `seq` with (a memset, the fastest way to produce
/// data in place) before stamping it.
#[inline]
fn fill_byte(seq: u64) -> u8 {
    seq as u8
}

/// Wrapping sum of the 8-byte little-endian words of a zero-copy frame `seq` of `size` bytes.
fn zero_copy_sum(seq: u64, size: usize) -> u64 {
    let fill = u64::from_le_bytes([fill_byte(seq); 8]);
    let words = size as u64 / 8;
    seq.wrapping_mul(2)
        .wrapping_add(fill.wrapping_mul(words - 2))
}

/// Writes the sequence number into the first and last 8 bytes of a frame.
#[inline]
pub(super) fn stamp(frame: &mut [u8], seq: u64) {
    let n = frame.len();
    frame[..8].copy_from_slice(&seq.to_le_bytes());
    frame[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

fn write_copy(writer: &mut shmline::Writer, size: usize, amount: Amount) -> Result<u64, Error> {
    let mut frame = vec![0xA5u8; size];
    let mut stop = Stopper::new(amount, size);
    let mut seq = 0;
    while stop.next(seq, 1) > 0 {
        stamp(&mut frame, seq);
        writer.write(&frame)?;
        seq += 1;
    }
    Ok(seq)
}

fn write_zero_copy(
    writer: &mut shmline::Writer,
    size: usize,
    amount: Amount,
) -> Result<u64, Error> {
    let mut stop = Stopper::new(amount, size);
    let mut seq: u64 = 0;
    while stop.next(seq, 1) > 0 {
        let mut slot = writer.reserve()?;
        let frame = &mut slot[..size];
        frame.fill(fill_byte(seq));
        stamp(frame, seq);
        slot.commit(size)?;
        seq += 1;
    }
    Ok(seq)
}

fn write_batch(
    writer: &mut shmline::Writer,
    size: usize,
    batch: usize,
    amount: Amount,
) -> Result<u64, Error> {
    let mut frames = vec![0xA5u8; size * batch];
    let mut stop = Stopper::new(amount, size);
    let mut seq = 0;
    loop {
        let count = stop.next(seq, batch as u64) as usize;
        if count == 0 {
            return Ok(seq);
        }
        for (i, frame) in frames.chunks_exact_mut(size).take(count).enumerate() {
            stamp(frame, seq + i as u64);
        }
        // The writer waits for ever (its timeout is None), as a benchmark must.
        let batch: Vec<&[u8]> = frames.chunks_exact(size).take(count).collect();
        let written = writer.write_batch(&batch)?;
        seq += written as u64;
    }
}

/// Checks frames as the reader receives them and counts the good ones.
pub(super) struct Verifier {
    size: usize,
    expected: u64,
    good: u64,
    bad: u64,
    errors: Vec<String>,
}

impl Verifier {
    pub(super) fn new(size: usize) -> Verifier {
        Verifier {
            size,
            expected: 0,
            good: 0,
            bad: 0,
            errors: Vec::new(),
        }
    }

    /// Checks the frame's sequence number, length and stamps (and `sum`, when given: the
    /// wrapping sum of its 8-byte words); counts it as good or bad.
    #[inline]
    pub(super) fn check(&mut self, info: &FrameInfo, data: &[u8], sum: Option<u64>) {
        let seq = self.expected;
        self.expected = info.seq.wrapping_add(1);
        let n = data.len();
        let ok = info.seq == seq
            && info.len as usize == self.size
            && n == self.size
            && data[..8] == seq.to_le_bytes()
            && data[n - 8..] == seq.to_le_bytes()
            && sum.is_none_or(|s| s == zero_copy_sum(seq, self.size));
        if ok {
            self.good += 1;
        } else {
            self.fail(info, data, sum, seq);
        }
    }

    /// Frames verified good so far.
    #[inline]
    pub(super) fn good(&self) -> u64 {
        self.good
    }

    /// The reader child's output: frames good and bad, the errors kept, the timed window.
    pub(super) fn into_json(self, window: Window) -> Value {
        let (window_frames, window_ns) = window.finish(self.good);
        json!({
            "frames": self.good,
            "bad_frames": self.bad,
            "errors": self.errors,
            "window_frames": window_frames,
            "window_ns": window_ns,
        })
    }

    #[cold]
    fn fail(&mut self, info: &FrameInfo, data: &[u8], sum: Option<u64>, seq: u64) {
        self.bad += 1;
        if self.errors.len() < ERRORS_KEPT {
            let word = |b: &[u8]| b.try_into().map(u64::from_le_bytes).unwrap_or(u64::MAX);
            let n = data.len();
            self.errors.push(format!(
                "frame {seq}: got seq {}, len {} (expected {}), first word {}, last word {}{}",
                info.seq,
                info.len,
                self.size,
                if n >= 8 { word(&data[..8]) } else { u64::MAX },
                if n >= 8 {
                    word(&data[n - 8..])
                } else {
                    u64::MAX
                },
                sum.map_or(String::new(), |s| format!(", sum {s:#x}")),
            ));
        }
    }
}

/// The reader's clock: starts after `warmup` good frames (or at the first one if there are
/// fewer), stops at end of stream.
pub(super) struct Window {
    warmup: u64,
    first: Option<(Instant, u64)>,
    start: Option<(Instant, u64)>,
}

impl Window {
    /// A window that starts after `warmup` good frames.
    pub(super) fn new(warmup: u64) -> Window {
        Window {
            warmup,
            first: None,
            start: None,
        }
    }

    #[inline]
    pub(super) fn observe(&mut self, good: u64) {
        if self.start.is_none() {
            self.observe_slow(good);
        }
    }

    #[cold]
    fn observe_slow(&mut self, good: u64) {
        if self.first.is_none() && good > 0 {
            self.first = Some((Instant::now(), good));
        }
        if good >= self.warmup && good > 0 {
            self.start = Some((Instant::now(), good));
        }
    }

    /// (frames, nanoseconds) timed, given the final good count.
    fn finish(&self, good: u64) -> (u64, u64) {
        let end = Instant::now();
        match self.start.filter(|&(_, at)| good > at).or(self.first) {
            Some((t, at)) => (good - at, (end - t).as_nanos() as u64),
            None => (0, 0),
        }
    }
}

/// The child's side of a throughput case: reads until end of stream, verifying every frame.
pub fn read_side(args: &ChildArgs) -> Result<Value, String> {
    let name = args.stream.as_deref().ok_or("--stream is required")?;
    let stream = Stream::open(name).map_err(|e| e.to_string())?;
    let mut reader = stream
        .reader(&ReaderOptions {
            wait: args.wait,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    let size = args.size;
    let mut verifier = Verifier::new(size);
    let mut window = Window::new(args.warmup);
    let outcome = match args.role {
        Role::ReadCopy => {
            let mut buf = vec![0u8; size];
            loop {
                match reader.read_into(&mut buf) {
                    Ok(info) => verifier.check(&info, &buf[..info.len as usize], None),
                    Err(e) => break e,
                }
                window.observe(verifier.good);
            }
        }
        Role::ReadBatch => {
            let batch = args.batch.max(1);
            let mut buf = vec![0u8; size * batch];
            let mut infos = vec![FrameInfo::default(); batch];
            loop {
                match reader.read_batch(&mut buf, &mut infos) {
                    Ok(n) => {
                        let mut offset = 0;
                        for info in &infos[..n] {
                            let len = info.len as usize;
                            verifier.check(info, &buf[offset..offset + len], None);
                            offset += len;
                        }
                    }
                    Err(e) => break e,
                }
                window.observe(verifier.good);
            }
        }
        Role::ReadZeroCopy => loop {
            match reader.acquire() {
                Ok(frame) => {
                    let sum = frame.chunks_exact(8).fold(0u64, |acc, word| {
                        acc.wrapping_add(u64::from_le_bytes(word.try_into().expect("8 bytes")))
                    });
                    verifier.check(frame.info(), &frame, Some(sum));
                }
                Err(e) => break e,
            }
            window.observe(verifier.good);
        },
        role => return Err(format!("{role:?} is not a reader role")),
    };
    if !matches!(outcome, Error::EndOfStream) {
        return Err(format!("reading frame {}: {outcome}", verifier.expected));
    }
    Ok(verifier.into_json(window))
}

/// GB/s of a single-thread memcpy of `size` bytes between two buffers, for about `seconds`.
pub fn memcpy_gbps(size: usize, seconds: f64) -> f64 {
    let src = vec![0x5Au8; size];
    let mut dst = vec![0u8; size];
    // About 1 MiB per clock read.
    let reps = ((1 << 20) / size).max(1);
    let budget = Duration::from_secs_f64(seconds);
    dst.copy_from_slice(&src);
    let started = Instant::now();
    let mut copied = 0u64;
    loop {
        for _ in 0..reps {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        }
        copied += (reps * size) as u64;
        let elapsed = started.elapsed();
        if elapsed >= budget {
            return copied as f64 / elapsed.as_nanos() as f64;
        }
    }
}
