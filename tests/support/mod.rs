//! Helpers shared by the multi-process tests (`event`, `stream_processes`, and the reliability
//! tests `kill_storm`, `soak`, `hostile_registry`, `permissions`, `limits`, `stale`): seeded
//! randomness, self-checking frames, child processes that are killed and reaped if a test fails,
//! what `/proc` says about a process, and the CPU time of a thread.
//!
//! Child processes are this same test binary re-run as one ignored test (`--exact <role>
//! --ignored`), as in `tests/stream_processes.rs`; a role reads its job from the environment and
//! does nothing when run without one. A role reports what it saw on one line of stdout starting
//! with `RESULT ` followed by `key=value` pairs (see [`result_of`]).

#![allow(dead_code)] // each test file uses only some of the helpers

#[macro_use]
pub mod pipeline;

use shmline::{Error, Event, FrameInfo, Reader, WaitStrategy, Writer};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long anything a test waits for may take on a loaded machine before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Randomness: SplitMix64, seeded from SHMLINE_SEED or the clock, the seed always printed.

/// A small, fast, seedable generator (SplitMix64): the same seed replays the same choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`, chosen uniformly.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A duration in `0..max`, uniformly.
    pub fn duration(&mut self, max: Duration) -> Duration {
        Duration::from_nanos(self.below(max.as_nanos() as u64))
    }

    /// An independent generator for a sub-task (a thread, an iteration, a child process).
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// SplitMix64's finaliser: a bijective scramble of 64 bits.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of this run: `SHMLINE_SEED` (decimal, or hex with `0x`) if set, else from the clock.
pub fn base_seed() -> u64 {
    match std::env::var("SHMLINE_SEED") {
        Ok(text) => {
            let text = text.trim();
            match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            }
            .unwrap_or_else(|e| panic!("SHMLINE_SEED={text:?}: {e}"))
        }
        Err(_) => mix(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            ^ std::process::id() as u64),
    }
}

/// The unsigned integer in environment variable `key`, or `default`.
pub fn env_u64(key: &str, default: u64) -> u64 {
    match std::env::var(key) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{key}={v:?}: {e}")),
        Err(_) => default,
    }
}

/// Busy-waits for `d`: sub-millisecond random delays that a sleep would round up. Used to pick
/// random moments, never to wait for another process.
pub fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------------
// Frames that check themselves: sequence number, a pattern made from it, and a CRC32C of both.

/// Smallest frame: an 8-byte sequence number and a 4-byte checksum.
pub const MIN_FRAME: usize = 12;

/// Length of frame `seq` on a stream of frames up to `max` bytes: from 12 to `max`, varying.
pub fn frame_len(seq: u64, max: usize) -> usize {
    assert!(max >= MIN_FRAME, "frames need at least {MIN_FRAME} bytes");
    MIN_FRAME + (mix(seq ^ 0x5EED) % (max - MIN_FRAME + 1) as u64) as usize
}

/// Writes the pattern bytes of frame `seq` (everything between the sequence number and the
/// checksum) into `body`.
fn fill_pattern(seq: u64, body: &mut [u8]) {
    for (k, chunk) in body.chunks_mut(8).enumerate() {
        let word = mix(seq.wrapping_mul(0x100_0000_01B3) ^ k as u64).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// Writes frame `seq` into `buf` (at least `max` bytes) and returns its length. Frame `seq` is
/// always the same bytes: its sequence number (little-endian), a pattern derived from it, and the
/// CRC32C of all that in its last 4 bytes.
pub fn fill_frame(seq: u64, max: usize, buf: &mut [u8]) -> usize {
    let len = frame_len(seq, max);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    fill_pattern(seq, &mut buf[8..len - 4]);
    let crc = crc32c::crc32c(&buf[..len - 4]);
    buf[len - 4..len].copy_from_slice(&crc.to_le_bytes());
    len
}

/// Frame `seq` as owned bytes.
pub fn frame(seq: u64, max: usize) -> Vec<u8> {
    let mut buf = vec![0; max];
    let len = fill_frame(seq, max, &mut buf);
    buf.truncate(len);
    buf
}

/// What a reader made of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The frame is intact and is the one expected.
    Good,
    /// The frame is intact but is frame `found`, not the one expected (a duplicate if lower,
    /// frames lost in between if higher).
    Sequence {
        /// The frame's own sequence number.
        found: u64,
    },
    /// The frame's bytes are not a frame the writer wrote (torn, or damaged): the reason.
    Torn(String),
}

/// Checks that `data` is exactly frame `expected` of a stream of frames up to `max` bytes.
pub fn check_frame(expected: u64, max: usize, data: &[u8]) -> Verdict {
    if data.len() < MIN_FRAME {
        return Verdict::Torn(format!("{} bytes, shorter than any frame", data.len()));
    }
    let found = u64::from_le_bytes(data[..8].try_into().unwrap());
    let crc = u32::from_le_bytes(data[data.len() - 4..].try_into().unwrap());
    if crc32c::crc32c(&data[..data.len() - 4]) != crc {
        return Verdict::Torn(format!(
            "frame claiming seq {found} ({} bytes) fails its checksum",
            data.len()
        ));
    }
    if data.len() != frame_len(found, max) {
        return Verdict::Torn(format!(
            "frame {found} is {} bytes, expected {}",
            data.len(),
            frame_len(found, max)
        ));
    }
    let mut pattern = vec![0; data.len() - MIN_FRAME];
    fill_pattern(found, &mut pattern);
    if data[8..data.len() - 4] != pattern[..] {
        return Verdict::Torn(format!("frame {found}: pattern bytes differ"));
    }
    if found != expected {
        return Verdict::Sequence { found };
    }
    Verdict::Good
}

/// Tally of what a lossless reader saw, frame by frame, against the sequence it expects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Frames read.
    pub frames: u64,
    /// Sequence number of the next frame expected (every lower one was seen once).
    pub next: u64,
    /// Frames seen again (a sequence number below `next`).
    pub duplicated: u64,
    /// Frames skipped (gaps in the sequence).
    pub lost: u64,
    /// Frames whose bytes were not what the writer wrote.
    pub torn: u64,
    /// The first problem, for the report.
    pub first_problem: Option<String>,
}

impl Tally {
    /// Records one frame `data` that the library said is frame `info_seq`.
    pub fn record(&mut self, info_seq: u64, max: usize, data: &[u8]) {
        self.frames += 1;
        let problem = match check_frame(self.next, max, data) {
            Verdict::Good if info_seq == self.next => None,
            Verdict::Good => Some(format!(
                "frame {} arrived labelled seq {info_seq}",
                self.next
            )),
            Verdict::Sequence { found } if found < self.next => {
                self.duplicated += 1;
                Some(format!("frame {found} again, expected {}", self.next))
            }
            Verdict::Sequence { found } => {
                self.lost += found - self.next;
                let problem = format!("frame {found} after {}: frames lost", self.next);
                self.next = found + 1;
                self.first_problem.get_or_insert(problem);
                return;
            }
            Verdict::Torn(why) => {
                self.torn += 1;
                Some(why)
            }
        };
        if let Some(problem) = problem {
            self.first_problem.get_or_insert(problem);
        }
        self.next += 1;
    }

    /// Faults of any kind.
    pub fn faults(&self) -> u64 {
        self.duplicated + self.lost + self.torn
    }

    /// The `key=value` pairs of a `RESULT` line.
    pub fn fields(&self) -> String {
        format!(
            "frames={} next={} duplicated={} lost={} torn={} problem={}",
            self.frames,
            self.next,
            self.duplicated,
            self.lost,
            self.torn,
            quoted(self.first_problem.as_deref().unwrap_or("none"))
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Names and segments.

/// A segment (or pipeline) name no other test uses: `t-<test file>-<what>-<pid>-<n>`. The `t-`
/// prefix lets the test driver flag any left behind; the test file (from this binary's name)
/// says whose it is.
pub fn unique(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // Relaxed: only uniqueness matters.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let exe = std::env::current_exe().unwrap();
    let stem = exe.file_stem().unwrap().to_string_lossy();
    // Cargo names a test binary `<file>-<hash>`.
    let file = stem.rsplit_once('-').map_or(&*stem, |(file, _)| file);
    format!("t-{file}-{what}-{}-{n}", std::process::id())
}

/// Where everything lies in the segment of `stream` (for tests that read or damage its bytes).
pub fn geometry(stream: &shmline::Stream) -> shmline::__private::layout::StreamGeometry {
    let info = stream.info();
    shmline::__private::layout::StreamGeometry::new(
        info.capacity,
        info.max_frame_size,
        info.max_readers,
        info.max_writers,
        info.max_groups,
    )
    .unwrap()
}

/// The segment files under /dev/shm whose name mentions `name`, sorted.
pub fn segments_of(name: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.starts_with("shmline.") && f.contains(name))
        .collect();
    found.sort();
    found
}

/// Polls `condition` every millisecond until it holds; fails the test after [`PATIENCE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < PATIENCE, "gave up waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes.

/// The arguments that make this test binary run only the ignored test `role`.
pub fn role_args(role: &str) -> Vec<String> {
    [
        "--exact",
        role,
        "--ignored",
        "--quiet",
        "--test-threads=1",
        "--nocapture",
    ]
    .map(String::from)
    .to_vec()
}

/// A command running role `role` of this test binary.
pub fn role_command(role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(role_args(role)).stdin(Stdio::null());
    command
}

/// A child process, killed and reaped when dropped (so a failing test leaves no process behind).
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub what: String,
    child: Option<Child>,
}

impl Proc {
    /// Starts `command` with stdout and stderr captured.
    pub fn spawn(what: impl Into<String>, mut command: Command) -> Proc {
        let what = what.into();
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Proc {
            what,
            child: Some(child),
        }
    }

    /// Starts role `role` of this test binary with `env` added to its environment.
    pub fn role(what: impl Into<String>, role: &str, env: &[(&str, String)]) -> Proc {
        let mut command = role_command(role);
        for (key, value) in env {
            command.env(key, value);
        }
        Proc::spawn(what, command)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` (the process must not have been reaped).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child, so it
        // cannot have been reused.
        unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
    }

    /// Kills the process with SIGKILL and reaps it; returns how it ended (it may have exited by
    /// itself just before).
    pub fn kill(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        // `Child::kill` sends SIGKILL on Unix.
        let _ = child.kill();
        child.wait_with_output().unwrap()
    }

    /// Waits for the process to exit, at most [`PATIENCE`]; kills it and returns an error naming
    /// it if it does not.
    pub fn wait(mut self) -> Result<Output, String> {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return Ok(child.wait_with_output().unwrap());
            }
            if started.elapsed() > PATIENCE {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                return Err(format!(
                    "{} hung: still running after {PATIENCE:?}\n{}",
                    self.what,
                    describe(&out)
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits as [`Proc::wait`] and requires exit status 0 and a `RESULT` line, which it returns.
    pub fn result(self) -> Result<HashMap<String, String>, String> {
        let what = self.what.clone();
        let out = self.wait()?;
        if !out.status.success() {
            return Err(format!("{what} failed\n{}", describe(&out)));
        }
        result_of(&out).ok_or_else(|| format!("{what} printed no RESULT line\n{}", describe(&out)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a process ended and what it printed, for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        exit_text(out.status),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// "exit status N" or "signal N".
pub fn exit_text(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (_, Some(sig)) => format!("signal {sig}"),
        _ => status.to_string(),
    }
}

/// The `key=value` pairs of the last `RESULT ` line of a process's stdout. Values are single
/// words, or Rust-quoted strings (`problem="..."`).
pub fn result_of(out: &Output) -> Option<HashMap<String, String>> {
    result_in(&String::from_utf8_lossy(&out.stdout))
}

/// The `key=value` pairs of the last `RESULT ` line of `text` (a process's output or log file).
pub fn result_in(text: &str) -> Option<HashMap<String, String>> {
    let line = text.lines().rev().find(|l| l.starts_with("RESULT "))?;
    Some(parse_fields(&line["RESULT ".len()..]))
}

/// `text` in double quotes, as one RESULT field value (inner double quotes become single ones).
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "'").replace('\n', " "))
}

/// Parses `key=value key2="quoted value"` pairs.
pub fn parse_fields(text: &str) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    let mut rest = text.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().to_string();
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            value = quoted[..end].to_string();
            rest = quoted.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = rest[..end].to_string();
            rest = &rest[end..];
        }
        fields.insert(key, value);
        rest = rest.trim_start();
    }
    fields
}

/// Field `key` of a RESULT line as a number.
pub fn field(fields: &HashMap<String, String>, key: &str) -> u64 {
    fields
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("RESULT has no number {key}: {fields:?}"))
}

// ---------------------------------------------------------------------------------------------
// What /proc says.

/// State letter of process `pid` (`R`, `S`, `Z`...), if it exists.
pub fn process_state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..].trim_start().chars().next()
}

/// True once process `pid` has exited (gone, or a zombie waiting to be reaped).
pub fn process_gone(pid: u32) -> bool {
    matches!(process_state(pid), None | Some('Z') | Some('X'))
}

/// Resident memory of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_ascii_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Number of open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Number of shared-memory mappings (`/dev/shm` files) of `pid`.
pub fn shm_mappings(pid: u32) -> Option<usize> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    Some(maps.lines().filter(|l| l.contains("/dev/shm/")).count())
}

/// The live processes whose environment holds `key=value` (e.g. the tasks of a pipeline, which
/// carry `SHMLINE_PIPELINE=<name>`); zombies are left out.
pub fn processes_with_env(key: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{key}={value}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| !process_gone(pid))
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|kv| kv == wanted.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Writing and reading self-checking frames through shmline (used by the child roles).

/// Writes frames `position()..limit` (copy writes, batches and zero-copy reservations mixed at
/// random) until `stop` says so. `held` is set while a reserved slot is being filled, and the
/// filling takes up to `hold` more (a producer computing into the slot), so the test can kill the
/// writer in that state and tell. Returns the number of frames written in all.
pub fn write_frames(
    writer: &mut Writer,
    limit: u64,
    rng: &mut Rng,
    (held, hold): (Option<&Event>, Duration),
    stop: impl Fn() -> bool,
) -> Result<u64, Error> {
    let max = writer.max_frame_size();
    let mut buf = vec![0u8; max];
    while writer.position() < limit && !stop() {
        let seq = writer.position();
        match rng.below(10) {
            0..=3 => {
                let len = fill_frame(seq, max, &mut buf);
                writer.write(&buf[..len])?;
            }
            4..=5 => {
                let count = (1 + rng.below(8)).min(limit - seq);
                let frames: Vec<Vec<u8>> = (seq..seq + count).map(|s| frame(s, max)).collect();
                let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
                let mut done = 0;
                while done < refs.len() {
                    done += writer.write_batch(&refs[done..])?;
                }
            }
            _ => {
                let mut slot = writer.reserve()?;
                if let Some(held) = held {
                    held.set();
                }
                let len = fill_frame(seq, max, &mut slot);
                spin_for(rng.duration(hold));
                if let Some(held) = held {
                    held.clear();
                }
                slot.commit(len)?;
            }
        }
    }
    Ok(writer.position())
}

/// How a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `read_into`, one frame at a time.
    Copy,
    /// `read_batch`, up to 16 frames at a time.
    Batch,
    /// `acquire`, the frame lent in place.
    ZeroCopy,
    /// A lossy reader with `read_into`.
    Lossy,
}

impl Kind {
    /// The kind's name, as passed in environment variables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Copy => "copy",
            Kind::Batch => "batch",
            Kind::ZeroCopy => "zerocopy",
            Kind::Lossy => "lossy",
        }
    }

    /// The kind named `text`.
    pub fn parse(text: &str) -> Kind {
        match text {
            "copy" => Kind::Copy,
            "batch" => Kind::Batch,
            "zerocopy" => Kind::ZeroCopy,
            "lossy" => Kind::Lossy,
            other => panic!("unknown reader kind {other:?}"),
        }
    }
}

/// What a reader saw until the stream ended for it.
pub struct Reading {
    /// What was read.
    pub tally: Tally,
    /// Frames a lossy reader was told it missed.
    pub missed: u64,
    /// The outcome that ended the reading (END_OF_STREAM, WRITER_DEAD, or an error).
    pub outcome: Error,
}

/// Reads and checks every frame until the stream ends for this reader. A zero-copy reader sets
/// `view` while it holds a frame and keeps it for `hold` (so the test can kill it holding one).
/// `forward` is given every good frame (the relay task writes it on).
pub fn read_frames(
    reader: &mut Reader,
    kind: Kind,
    max: usize,
    view: Option<&Event>,
    hold: Duration,
    mut forward: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Reading {
    let mut tally = Tally::default();
    let mut missed = 0;
    let mut buf = vec![0u8; max * 16];
    let mut infos = vec![FrameInfo::default(); 16];
    let outcome = loop {
        let step = match kind {
            Kind::Copy => reader.read_into(&mut buf).and_then(|info| {
                tally.record(info.seq, max, &buf[..info.len as usize]);
                forward(&buf[..info.len as usize])
            }),
            Kind::Batch => reader.read_batch(&mut buf, &mut infos).and_then(|count| {
                let mut offset = 0;
                for info in &infos[..count] {
                    let data = &buf[offset..offset + info.len as usize];
                    tally.record(info.seq, max, data);
                    forward(data)?;
                    offset += info.len as usize;
                }
                Ok(())
            }),
            Kind::ZeroCopy => reader.acquire().and_then(|frame| {
                if let Some(view) = view {
                    view.set();
                }
                tally.record(frame.info().seq, max, &frame);
                let forwarded = forward(&frame);
                spin_for(hold);
                if let Some(view) = view {
                    view.clear();
                }
                forwarded
            }),
            Kind::Lossy => reader.read_into(&mut buf).map(|info| {
                // A lossy reader skips frames, but says exactly how many before each one.
                if info.seq < tally.next || info.seq - tally.next != info.missed {
                    tally.duplicated += 1;
                    tally.first_problem.get_or_insert(format!(
                        "lossy reader got frame {} after {} with missed {}",
                        info.seq, tally.next, info.missed
                    ));
                }
                missed += info.missed;
                tally.next = info.seq;
                tally.record(info.seq, max, &buf[..info.len as usize]);
            }),
        };
        if let Err(e) = step {
            break e;
        }
    };
    Reading {
        tally,
        missed,
        outcome,
    }
}

/// The RESULT line of a reader.
pub fn report(reading: &Reading, extra: &str) {
    println!(
        "RESULT outcome={} missed={} {} {extra}",
        outcome_name(&reading.outcome),
        reading.missed,
        reading.tally.fields()
    );
}

/// The status name of an outcome, or the error text (quoted) for a real error.
pub fn outcome_name(e: &Error) -> String {
    if e.is_outcome() {
        e.status().name().to_string()
    } else {
        quoted(&format!("{}: {e}", e.status().name()))
    }
}

/// A wait strategy chosen at random (busy-spinning rarely: it eats a core).
pub fn wait_strategy(rng: &mut Rng) -> WaitStrategy {
    match rng.below(10) {
        0 => WaitStrategy::BusySpin,
        1..=3 => WaitStrategy::Block,
        _ => WaitStrategy::Adaptive,
    }
}

// ---------------------------------------------------------------------------------------------
// One role in a child process with its job in one environment variable, and thread CPU time.

/// A child process running one role: this test binary re-run as `--exact <role> --ignored`,
/// with the role's job in an environment variable. Killed and reaped if the test fails before
/// finishing it.
pub struct RoleProcess {
    role: String,
    child: Option<Child>,
}

impl RoleProcess {
    /// Starts this test binary running only the ignored test `role`, with `env=job` set.
    pub fn spawn(role: &str, env: &str, job: &str) -> RoleProcess {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                role,
                "--nocapture",
                "--ignored",
                "--test-threads=1",
            ])
            .env(env, job)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        RoleProcess {
            role: role.to_owned(),
            child: Some(child),
        }
    }

    /// Waits for the child and fails unless it ran its role (exactly one test) successfully, so
    /// a misspelt role cannot pass by running nothing.
    pub fn finish(mut self) {
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed;"),
            "child {} failed ({}):\n{stdout}\n{}",
            self.role,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        // `Child::kill` sends SIGKILL on Unix.
        child.kill().unwrap();
        child.wait().unwrap()
    }

    /// Kills the child with SIGKILL and waits until it has exited, without reaping it: it stays a
    /// zombie until the returned handle is waited for, as the child of a parent busy elsewhere.
    pub fn kill_without_reaping(mut self) -> std::process::Child {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        // SAFETY: an all-zero siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child to exit, leaving it unreaped (WNOWAIT).
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id(),
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(rc, 0, "waitid: {}", std::io::Error::last_os_error());
        child
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time (user + system) the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value (plain integers and timevals).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid out-pointer for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let as_duration = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    as_duration(usage.ru_utime) + as_duration(usage.ru_stime)
}
