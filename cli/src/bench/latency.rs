//! Latency cases: ping-pong between this process and the child, one-way = half the round trip.
//!
//! - stream ping-pong: this process writes a 64-byte frame on stream `ping` and waits for it on
//!   stream `pong`; the child reads each frame from `ping`, checks it and writes it back on
//!   `pong`. Both readers use the wait strategy under test.
//! - futex baseline: the same exchange with two bare 32-bit futex words in a shared page (store,
//!   `FUTEX_WAKE`; the other side `FUTEX_WAIT`s until the value changes): what waking a sleeping
//!   process on another CPU costs on this machine, with nothing of shmline in the way.
//!
//! Each sample is the time from just before the write to just after the reply was read (two
//! clock reads of the monotonic clock, ~20 ns, included); the first samples are a warm-up.

use super::child::{ChildArgs, ChildProcess, Role};
use super::{create_stream, Amount, Plan, Wait, SMALL_FRAME};
use serde_json::{json, Value};
use shmline::{Error, ReaderOptions, Stream, WriterOptions};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Slots of the ping and pong rings (the exchange keeps at most one frame in each).
const PING_CAPACITY: u32 = 64;
/// Round trips dropped at the start.
const WARMUP_SAMPLES: usize = 1000;
/// Value of the futex ping word that tells the child to stop.
const FUTEX_STOP: u32 = u32::MAX;
/// Offsets of the futex words in their page: one 128-byte line each.
const PING_WORD: usize = 0;
const PONG_WORD: usize = 128;
const READY_WORD: usize = 256;
const FUTEX_PAGE: usize = 4096;

/// Round-trip samples of one latency case.
pub struct LatencyResult {
    wait: Option<Wait>,
    /// Round trips in nanoseconds, sorted.
    round_trips: Vec<u64>,
    /// Verification failures.
    pub errors: Vec<String>,
}

impl LatencyResult {
    fn new(wait: Option<Wait>, mut round_trips: Vec<u64>, errors: Vec<String>) -> Self {
        round_trips.sort_unstable();
        LatencyResult {
            wait,
            round_trips,
            errors,
        }
    }

    /// One-way latency at quantile `q` (half the round trip), in nanoseconds.
    fn one_way(&self, q: f64) -> u64 {
        if self.round_trips.is_empty() {
            return 0;
        }
        let n = self.round_trips.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.round_trips[rank - 1] / 2
    }

    /// One line for progress output.
    pub fn summary(&self) -> String {
        format!(
            "one-way p50 {} ns, p99 {} ns, p99.9 {} ns ({} round trips)",
            self.one_way(0.5),
            self.one_way(0.99),
            self.one_way(0.999),
            self.round_trips.len()
        )
    }

    /// The case as a JSON object.
    pub fn to_json(&self) -> Value {
        let mean = if self.round_trips.is_empty() {
            0.0
        } else {
            self.round_trips.iter().sum::<u64>() as f64 / self.round_trips.len() as f64 / 2.0
        };
        json!({
            "wait": self.wait.map_or("raw-futex", Wait::name),
            "size": SMALL_FRAME,
            "samples": self.round_trips.len(),
            "one_way_ns": {
                "min": self.one_way(0.0),
                "p50": self.one_way(0.5),
                "p99": self.one_way(0.99),
                "p999": self.one_way(0.999),
                "max": self.one_way(1.0),
                "mean": mean,
            },
            "errors": self.errors,
        })
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
pub fn run_stream(plan: &Plan, wait: Wait) -> Result<LatencyResult, String> {
    let ping = create_stream("ping", PING_CAPACITY, SMALL_FRAME, 1, 1)?;
    let pong = create_stream("pong", PING_CAPACITY, SMALL_FRAME, 1, 1)?;
    let mut replies = pong
        .reader(&ReaderOptions {
            wait: wait.strategy(),
            ..Default::default()
        })
        .map_err(err("attaching the pong reader"))?;
    let mut writer = ping
        .writer_with(&WriterOptions {
            wait: wait.strategy(),
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
        frame[..8].copy_from_slice(&seq.to_le_bytes());
        frame[SMALL_FRAME - 8..].copy_from_slice(&seq.to_le_bytes());
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
    let out = child.finish()?;
    errors.extend(
        out["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(|e| format!("echo: {e}"))),
    );
    Ok(LatencyResult::new(
        Some(wait),
        samples.into_measured(),
        errors,
    ))
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
            wait: args.wait.strategy(),
            timeout: None,
        })
        .map_err(|e| e.to_string())?;
    let mut reader = ping
        .reader(&ReaderOptions {
            wait: args.wait.strategy(),
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

/// A page of shared memory without a name (a memfd), inherited by the child across `exec`.
struct FutexPage {
    fd: i32,
    base: *mut u8,
}

impl FutexPage {
    fn create() -> Result<FutexPage, String> {
        // SAFETY: the name is a valid NUL-terminated string. No MFD_CLOEXEC: the child inherits
        // the descriptor.
        let fd = unsafe { libc::memfd_create(c"shmline-bench-futex".as_ptr(), 0) };
        if fd < 0 {
            return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is the memfd just created.
        if unsafe { libc::ftruncate(fd, FUTEX_PAGE as libc::off_t) } != 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: `fd` is ours and not used after this.
            unsafe { libc::close(fd) };
            return Err(format!("ftruncate: {e}"));
        }
        FutexPage::map(fd)
    }

    fn map(fd: i32) -> Result<FutexPage, String> {
        // SAFETY: mapping FUTEX_PAGE bytes of a descriptor that is at least that long (the
        // parent sized it); the kernel picks the address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FUTEX_PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "mmap of the futex page: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(FutexPage {
            fd,
            base: base as *mut u8,
        })
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + 4 <= FUTEX_PAGE && offset.is_multiple_of(4));
        // SAFETY: the offset is inside the live, page-aligned mapping and 4-aligned; AtomicU32
        // has no invalid bit patterns and may be shared between processes.
        unsafe { &*(self.base.add(offset) as *const AtomicU32) }
    }
}

impl Drop for FutexPage {
    fn drop(&mut self) {
        // SAFETY: `base` is our mapping of FUTEX_PAGE bytes and `fd` our descriptor; neither is
        // used after this.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, FUTEX_PAGE);
            libc::close(self.fd);
        }
    }
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a valid aligned u32 in a mapping that outlives the call; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid aligned u32; FUTEX_WAKE does not access it.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// Ping-pong with bare futex words between this process and the child.
pub fn run_futex(plan: &Plan) -> Result<LatencyResult, String> {
    let page = FutexPage::create()?;
    let mut args = ChildArgs::new(Role::FutexEcho, plan.child_cpu);
    args.fd = Some(page.fd);
    let mut child = ChildProcess::spawn(&args)?;
    let (ping, pong) = (page.word(PING_WORD), page.word(PONG_WORD));
    // Acquire: the child's setup happens before it says it is ready.
    child.wait_until("the futex echo process started", || {
        page.word(READY_WORD).load(Ordering::Acquire) == 1
    })?;
    let mut samples = Samples::new(plan.amount);
    for round in 1u32..FUTEX_STOP {
        let start = Instant::now();
        // Release/Acquire: the words carry no data; the orderings only keep each exchange
        // after the previous one.
        ping.store(round, Ordering::Release);
        futex_wake(ping);
        loop {
            let seen = pong.load(Ordering::Acquire);
            if seen == round {
                break;
            }
            futex_wait(pong, seen);
        }
        if !samples.record(start, Instant::now()) {
            break;
        }
    }
    // Release: as above.
    ping.store(FUTEX_STOP, Ordering::Release);
    futex_wake(ping);
    child.finish()?;
    Ok(LatencyResult::new(
        None,
        samples.into_measured(),
        Vec::new(),
    ))
}

/// The child's side of the futex baseline: copy every new ping value to pong, waking the parent.
pub fn futex_echo(args: &ChildArgs) -> Result<Value, String> {
    let fd = args.fd.ok_or("--fd is required")?;
    let page = FutexPage::map(fd)?;
    let (ping, pong) = (page.word(PING_WORD), page.word(PONG_WORD));
    // Release: pairs with the parent's Acquire load of the ready word.
    page.word(READY_WORD).store(1, Ordering::Release);
    let mut last = 0;
    let mut rounds = 0u64;
    loop {
        // Acquire/Release: as in `run_futex`.
        let value = ping.load(Ordering::Acquire);
        if value == last {
            futex_wait(ping, last);
            continue;
        }
        if value == FUTEX_STOP {
            break;
        }
        last = value;
        rounds += 1;
        pong.store(value, Ordering::Release);
        futex_wake(pong);
    }
    Ok(json!({ "frames": rounds }))
}
