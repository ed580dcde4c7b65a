//! Fan-in and work-sharing cases: several writer processes into one reader (`--writers N`), and
//! one writer into a reader group of several members (`--group N`).
//!
//! Every process here is a child (`shmline __bench-child`): this process only creates the
//! stream, starts the readers, then the writers, and adds up what they report. Each writer
//! stamps its frames with its id and its own frame counter (first and last 8 bytes), so a reader
//! checks that it got each writer's frames in the order that writer wrote them; a plain reader
//! also checks that sequence numbers are contiguous (every frame once), and the frames the
//! members of a group verified must add up to the frames the writers sent (each frame to one
//! member). Throughput is every reader's frames after its warm-up over the span from the first
//! reader's warm-up end to the last reader's end of stream.
//!
//! The processes are not pinned: there are more of them than the two CPUs the copy case uses. They
//! may run on every CPU the bench was allowed before it pinned itself (a child would otherwise
//! inherit the bench's own pin).

use super::child::{ChildArgs, ChildProcess, Role};
use super::throughput::{Stopper, ERRORS_KEPT};
use super::{create_stream, Amount, Plan, ATTACH_TIMEOUT};
use serde::Serialize;
use serde_json::{json, Value};
use shmline::monotonic_ns;
use shmline::{Error, ReaderOptions, Stream, WriterOptions, WriterState};
use std::time::{Duration, Instant};

/// The group the readers of a `--group` case join.
const GROUP: &str = "bench";
/// Bits of a stamp that hold the writer's frame counter; the writer's id is above them.
const COUNTER_BITS: u32 = 40;

/// The shape of a case: how many writer processes, and how many readers in a group (`None`: one
/// plain reader).
#[derive(Debug, Clone, Copy)]
pub struct Fan {
    /// Writer processes.
    pub writers: u32,
    /// Members of the reader group; `None` for one plain reader.
    pub group: Option<u32>,
}

impl Fan {
    /// The case's name in reports: "fan-in 2->1" or "group 1->2".
    pub fn name(self) -> String {
        match self.group {
            Some(members) => format!("group {}->{members}", self.writers),
            None => format!("fan-in {}->1", self.writers),
        }
    }

    fn readers(self) -> u32 {
        self.group.unwrap_or(1)
    }
}

/// The outcome of one fan case, as reported (`fan` in the JSON).
#[derive(Debug, Serialize)]
pub struct FanResult {
    /// "fan-in N->1" or "group 1->N".
    pub path: String,
    /// Writer processes.
    pub writers: u32,
    /// Reader processes.
    pub readers: u32,
    /// True if the readers are members of one reader group.
    pub group: bool,
    /// Payload bytes per frame.
    pub size: usize,
    /// Slots of the ring.
    pub capacity: u32,
    /// Wait strategy of every process.
    pub wait: &'static str,
    /// Always false: these processes are not pinned.
    pub pinned: bool,
    /// Frames the writers sent.
    pub frames_sent: u64,
    /// Frames the readers verified.
    pub frames_verified: u64,
    /// Frames each reader verified.
    pub frames_per_reader: Vec<u64>,
    /// Frames in the timed window.
    pub window_frames: u64,
    /// Length of the timed window.
    pub window_seconds: f64,
    /// Times a writer found the ring full and waited.
    pub writer_waits: u64,
    /// Frames all readers delivered and verified per second, over the timed span.
    pub frames_per_s: f64,
    /// Payload GB (10^9 bytes) per second over the same span.
    pub gb_per_s: f64,
    /// Frames/s of the ideal ring of the same size in the same run.
    pub ideal_frames_per_s: Option<f64>,
    /// `frames_per_s / ideal_frames_per_s`.
    pub ratio_to_ideal: Option<f64>,
    /// GB/s of the single-writer, single-reader copy case of the same size in the same run.
    pub single_gb_per_s: Option<f64>,
    /// `gb_per_s / single_gb_per_s`.
    pub ratio_to_single: Option<f64>,
    /// Verification failures, each with a description.
    pub errors: Vec<String>,
}

impl FanResult {
    /// Fills in the references of the same run: the ideal ring's frames/s and the single-writer
    /// copy case's GB/s.
    pub fn compare(&mut self, ideal_frames_per_s: Option<f64>, single_gbps: Option<f64>) {
        self.ideal_frames_per_s = ideal_frames_per_s;
        self.ratio_to_ideal = ideal_frames_per_s
            .filter(|&i| i > 0.0)
            .map(|i| self.frames_per_s / i);
        self.single_gb_per_s = single_gbps;
        self.ratio_to_single = single_gbps.filter(|&s| s > 0.0).map(|s| self.gb_per_s / s);
    }
}

/// Runs one fan case of `size`-byte frames: a fresh stream, its reader processes, its writer
/// processes.
pub fn run_case(plan: &Plan, fan: Fan, size: usize) -> Result<FanResult, String> {
    let capacity = plan.capacity_for(size);
    let readers = fan.readers();
    let stream = create_stream("fan", capacity, size, fan.writers, readers)?;
    let mut args = ChildArgs::new(Role::ReadFan, None);
    args.cpus = plan.free_cpus.clone();
    args.stream = Some(stream.name().to_owned());
    args.size = size;
    args.writers = fan.writers;
    args.group = fan.group.map(|_| GROUP.to_owned());
    args.warmup = 2 * capacity as u64 / readers as u64;
    args.wait = plan.wait;
    // Readers first, so that no frame is published before every one attached.
    let mut reader_children = Vec::new();
    for n in 1..=readers as usize {
        let mut child = ChildProcess::spawn(&args)?;
        child.wait_until("the reader attached", || stream.stats().readers.len() >= n)?;
        reader_children.push(child);
    }
    let mut writer_children = Vec::new();
    for id in 0..fan.writers {
        let mut args = ChildArgs::new(Role::WriteFan, None);
        args.cpus = plan.free_cpus.clone();
        args.stream = Some(stream.name().to_owned());
        args.size = size;
        args.writers = fan.writers;
        args.writer_id = id;
        args.wait = plan.wait;
        (args.frames, args.seconds) = match plan.amount {
            Amount::Frames(n) => {
                let share =
                    n / fan.writers as u64 + u64::from((id as u64) < n % fan.writers as u64);
                (Some(share), None)
            }
            Amount::Seconds(s) => (None, Some(s)),
        };
        writer_children.push(ChildProcess::spawn(&args)?);
    }
    for child in &mut writer_children {
        child.wait_until("every writer attached", || {
            writers_attached(&stream) >= fan.writers as usize
        })?;
    }
    // Every process has it mapped: remove the name now so nothing outlives a killed bench.
    Stream::unlink(stream.name()).map_err(|e| e.to_string())?;

    let mut sent = 0;
    for child in writer_children {
        sent += child.finish()?["sent"].as_u64().unwrap_or(0);
    }
    let mut errors = Vec::new();
    let (mut verified, mut bad, mut window_frames) = (0, 0, 0);
    let (mut start, mut end) = (u64::MAX, 0);
    let mut per_reader = Vec::new();
    for child in reader_children {
        let out = child.finish()?;
        let frames = out["frames"].as_u64().unwrap_or(0);
        per_reader.push(frames);
        verified += frames;
        bad += out["bad_frames"].as_u64().unwrap_or(0);
        errors.extend(
            out["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_owned)),
        );
        if out["window_frames"].as_u64().unwrap_or(0) > 0 {
            window_frames += out["window_frames"].as_u64().unwrap_or(0);
            start = start.min(out["window_start_ns"].as_u64().unwrap_or(u64::MAX));
            end = end.max(out["window_end_ns"].as_u64().unwrap_or(0));
        }
    }
    if bad as usize > errors.len() {
        errors.push(format!("... {bad} bad frames in all"));
    }
    if verified + bad != sent {
        errors.push(format!(
            "the writers sent {sent} frames but the readers received {}",
            verified + bad
        ));
    }
    let stats = stream.stats();
    if stats.frames_skipped > 0 {
        errors.push(format!(
            "{} sequence numbers were skipped (a writer died or aborted)",
            stats.frames_skipped
        ));
    }
    let window_seconds = end.saturating_sub(start) as f64 / 1e9;
    let frames_per_s = if window_seconds > 0.0 {
        window_frames as f64 / window_seconds
    } else {
        0.0
    };
    Ok(FanResult {
        path: fan.name(),
        writers: fan.writers,
        readers,
        group: fan.group.is_some(),
        size,
        capacity,
        wait: plan.wait.name(),
        pinned: false,
        frames_sent: sent,
        frames_verified: verified,
        frames_per_reader: per_reader,
        window_frames,
        window_seconds,
        writer_waits: stats.writer_waits,
        frames_per_s,
        gb_per_s: frames_per_s * size as f64 / 1e9,
        ideal_frames_per_s: None,
        ratio_to_ideal: None,
        single_gb_per_s: None,
        ratio_to_single: None,
        errors,
    })
}

/// Writers that attached to `stream`: the live entries of a multi-writer stream's writer table;
/// for a single-writer stream (a `--group` case with one writer), which has no table, 1 once its
/// writer attached (even if it has already closed).
fn writers_attached(stream: &Stream) -> usize {
    let stats = stream.stats();
    if stats.max_writers > 1 {
        stats.writers.len()
    } else {
        usize::from(stats.writer_state != WriterState::None)
    }
}

/// The stamp of frame `i` of writer `id`.
fn stamp_of(id: u32, i: u64) -> u64 {
    (u64::from(id) << COUNTER_BITS) | i
}

/// The writer child: attaches, waits until every writer attached (the stream ends when the last
/// one closes, so none may finish before the others came), then writes its frames.
pub fn write_side(args: &ChildArgs) -> Result<Value, String> {
    let name = args.stream.as_deref().ok_or("--stream is required")?;
    let stream = Stream::open(name).map_err(|e| e.to_string())?;
    let mut writer = stream
        .writer_with(&WriterOptions {
            wait: args.wait,
            timeout: None,
        })
        .map_err(|e| format!("attaching writer {}: {e}", args.writer_id))?;
    let started = Instant::now();
    while writers_attached(&stream) < args.writers as usize {
        if started.elapsed() > ATTACH_TIMEOUT {
            return Err(format!(
                "timed out after {ATTACH_TIMEOUT:?} waiting for {} writers to attach",
                args.writers
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let amount = match (args.frames, args.seconds) {
        (Some(n), _) => Amount::Frames(n),
        (None, Some(s)) => Amount::Seconds(s),
        (None, None) => return Err("--frames or --seconds is required".into()),
    };
    let size = args.size;
    let mut frame = vec![0xA5u8; size];
    let mut stop = Stopper::new(amount, size);
    let mut i = 0;
    while stop.next(i, 1) > 0 {
        let stamp = stamp_of(args.writer_id, i).to_le_bytes();
        frame[..8].copy_from_slice(&stamp);
        frame[size - 8..].copy_from_slice(&stamp);
        writer
            .write(&frame)
            .map_err(|e| format!("writer {}: {e}", args.writer_id))?;
        i += 1;
    }
    Ok(json!({ "sent": i }))
}

/// Checks frames from several writers as one reader (or group member) receives them.
struct FanVerifier {
    size: usize,
    /// A group member gets only some frames: sequence numbers and counters only increase.
    member: bool,
    next_seq: u64,
    next: Vec<u64>,
    good: u64,
    bad: u64,
    errors: Vec<String>,
}

impl FanVerifier {
    #[inline]
    fn check(&mut self, info: &shmline::FrameInfo, data: &[u8]) {
        let n = data.len();
        let stamp = (n == self.size && n >= 16)
            .then(|| u64::from_le_bytes(data[..8].try_into().expect("8 bytes")))
            .filter(|&s| data[n - 8..] == s.to_le_bytes());
        let (id, i) = match stamp {
            Some(s) => ((s >> COUNTER_BITS) as usize, s & ((1 << COUNTER_BITS) - 1)),
            None => (usize::MAX, 0),
        };
        let in_order = if self.member {
            info.seq >= self.next_seq && id < self.next.len() && i >= self.next[id]
        } else {
            info.seq == self.next_seq
                && info.missed == 0
                && id < self.next.len()
                && i == self.next[id]
        };
        if in_order {
            self.good += 1;
            self.next[id] = i + 1;
        } else {
            self.fail(info, id, i);
        }
        self.next_seq = info.seq.wrapping_add(1);
    }

    #[cold]
    fn fail(&mut self, info: &shmline::FrameInfo, id: usize, i: u64) {
        self.bad += 1;
        if self.errors.len() < ERRORS_KEPT {
            self.errors.push(format!(
                "frame seq {} (expected {}{}), missed {}, len {}: writer {}, counter {i} \
                 (expected {})",
                info.seq,
                if self.member { "at least " } else { "" },
                self.next_seq,
                info.missed,
                info.len,
                if id == usize::MAX {
                    "? (bad stamps)".to_string()
                } else {
                    id.to_string()
                },
                self.next.get(id).map_or("?".to_string(), u64::to_string),
            ));
        }
    }
}

/// The reader child: reads until end of stream, verifying every frame, and reports its timed
/// window in absolute CLOCK_MONOTONIC nanoseconds (the parent spans every reader's window).
pub fn read_side(args: &ChildArgs) -> Result<Value, String> {
    let name = args.stream.as_deref().ok_or("--stream is required")?;
    let stream = Stream::open(name).map_err(|e| e.to_string())?;
    let mut reader = stream
        .reader(&ReaderOptions {
            wait: args.wait,
            group: args.group.clone(),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    let mut verifier = FanVerifier {
        size: args.size,
        member: args.group.is_some(),
        next_seq: 0,
        next: vec![0; args.writers as usize],
        good: 0,
        bad: 0,
        errors: Vec::new(),
    };
    let mut buf = vec![0u8; args.size];
    let mut start: Option<(u64, u64)> = None;
    let outcome = loop {
        match reader.read_into(&mut buf) {
            Ok(info) => verifier.check(&info, &buf[..(info.len as usize).min(buf.len())]),
            Err(e) => break e,
        }
        if start.is_none() && verifier.good >= args.warmup.max(1) {
            start = Some((monotonic_ns(), verifier.good));
        }
    };
    let end = monotonic_ns();
    if !matches!(outcome, Error::EndOfStream) {
        return Err(format!("reading after frame {}: {outcome}", verifier.good));
    }
    let (window_start_ns, window_frames) = match start {
        Some((at, good)) => (at, verifier.good - good),
        None => (end, 0),
    };
    Ok(json!({
        "frames": verifier.good,
        "bad_frames": verifier.bad,
        "errors": verifier.errors,
        "window_frames": window_frames,
        "window_start_ns": window_start_ns,
        "window_end_ns": end,
    }))
}
