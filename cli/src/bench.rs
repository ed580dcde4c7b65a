//! `shmline bench`: throughput and latency between two real processes.
//!
//! The command re-executes itself (`shmline __bench-child ...`) so writer and reader are separate
//! processes, as they are in a pipeline, and pins them to different CPUs when it can. Each case
//! runs in a fresh stream whose name is removed from `/dev/shm` as soon as both processes have
//! it mapped, so nothing is left behind even if the bench is killed.
//!
//! - `throughput`: frames/s and GB/s per frame size on the copy path, the zero-copy path and
//!   (for the smallest size) the batch calls, measured by the reader over the frames it verified;
//! - `latency`: one-way latency by ping-pong over two streams (half the round trip), per wait
//!   strategy, next to a raw futex ping-pong between two processes (the machine's wake-up cost);
//! - `memcpy`: a single-thread memcpy of each frame size in this process, for scale;
//! - `fan-in` (`--writers N`) and `group` (`--group N`): several writer processes into one
//!   reader, one writer into a reader group, per frame size, next to the copy case's figure.

mod child;
mod fan;
mod latency;
mod throughput;

use crate::platform;
use serde_json::{json, Value};
use shmline::{Stream, StreamOptions, WaitStrategy};
use std::process::ExitCode;
use std::time::Duration;

/// Frame size of the batch and latency cases.
const SMALL_FRAME: usize = 64;
/// Shared memory the automatic capacity aims at per stream (it rounds down to a power of two).
const AUTO_RING_BYTES: u64 = 16 << 20;
/// Automatic capacity bounds.
const AUTO_CAPACITY_MIN: u32 = 4;
const AUTO_CAPACITY_MAX: u32 = 1024;
/// Seconds per case with `--quick`.
const QUICK_SECONDS: f64 = 0.05;

/// What `shmline bench --help` says about the command.
pub const LONG_ABOUT: &str = "Measure shmline between two processes on this machine.\n\n\
    The bench starts a second copy of itself so the writer and the reader are separate \
    processes, pins them to two different CPUs when possible, and runs these cases:\n\n\
    \x20 copy       Writer::write from a buffer, Reader::read_into into a buffer (one copy in, one \
    out), for every --sizes.\n\
    \x20 zero-copy  Writer::reserve, the writer fills the whole payload in place (a memset, then \
    the stamps), commit; Reader::acquire, the reader sums every 8-byte word in place, release.\n\
    \x20 batch      write_batch / read_batch of --batch frames of 64 bytes.\n\
    \x20 latency    ping-pong of 64-byte frames over two streams; one-way = half the round \
    trip; once with busy-spin and once with block (futex) waiting.\n\
    \x20 futex      the same ping-pong with a bare futex word between two processes: the \
    machine's wake-up cost, for comparison with block.\n\
    \x20 memcpy     a single-thread memcpy of each frame size between two buffers, for scale.\n\
    \x20 fan-in     with --writers N (N > 1): N writer processes write to one multi-writer \
    stream, one reader process reads it (copy path), for every --sizes.\n\
    \x20 group      with --group N: one writer process, N reader processes sharing the frames \
    as one reader group (copy path), for every --sizes.\n\n\
    Fan-in and group cases run in processes of their own, not pinned (there are more processes \
    than the two CPUs of the other cases); their readers check each writer's frames arrive in its \
    order, the group's members together receive every frame once, and the ratio_to_single \
    column compares them with the copy case of the same size in the same run (run `--only \
    copy,fan-in --writers 2` to get both). Busy-spin figures of these cases collapse when the \
    processes outnumber the idle CPUs.\n\n\
    The reader verifies every frame (sequence numbers contiguous, length, the sequence number \
    stamped in the first and last 8 bytes; on the zero-copy path also the sum of every word) and only \
    verified frames are counted. Throughput is timed by the reader after a warm-up of two laps \
    of the ring. GB/s are 10^9 bytes of payload per second. Any verification error makes the \
    exit code 1.\n\n\
    Progress goes to stderr; the results (a table, or one JSON object with --json) to stdout.\n\n\
    Coming from dsline: `shmline bench shm --message-size 4096 --count 100000 --json` is accepted \
    and is `shmline bench --only copy --sizes 4096 --frames 100000 --json`: the copy case between \
    two processes (dsline 0.0.1 measured send/recv in one process). --capacity means the same \
    (slots per ring, a power of two here); dsline's --backend has no equivalent (the Python \
    package's bench/ compares multiprocessing.Queue and others). Message sizes are multiples \
    of 8, at least 16, because every frame is stamped and verified. dsline's defaults (4096 \
    bytes, 100000 messages) are not assumed: without --message-size and --count, `bench shm` \
    runs every default size for --duration each.";

/// Options of `shmline bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// `shm`: dsline's spelling, for `dsline bench shm` users: runs only the copy case (unless
    /// --only says otherwise); dsline's --message-size and --count are aliases of --sizes and
    /// --frames.
    #[arg(value_enum, value_name = "SUITE")]
    suite: Option<Suite>,
    /// Frame sizes in bytes for the copy and zero-copy cases (K = 1024, M = 1024 * 1024);
    /// multiples of 8, at least 16.
    #[arg(
        long,
        visible_alias = "message-size",
        value_delimiter = ',',
        value_parser = parse_size,
        default_value = "64,4K,64K,1M"
    )]
    sizes: Vec<usize>,
    /// Seconds per case.
    #[arg(long, default_value_t = 1.0, value_parser = parse_seconds, conflicts_with = "frames")]
    duration: f64,
    /// Frames per throughput case (and round trips per latency case) instead of a duration.
    #[arg(long, visible_alias = "count", value_parser = clap::value_parser!(u64).range(1..))]
    frames: Option<u64>,
    /// Slots per ring. Default: as many as fit in 16 MiB, between 4 and 1024 (a power of two).
    #[arg(long)]
    capacity: Option<u32>,
    /// Frames per call in the batch case.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: u32,
    /// Wait strategy of the throughput cases (latency is measured with busy-spin and block).
    #[arg(long, value_enum, default_value_t = Wait::Adaptive)]
    wait: Wait,
    /// Cases to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Case>,
    /// Do not pin the two processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Very short cases (0.05 s each): proves the bench runs, measures little.
    #[arg(long)]
    quick: bool,
    /// Print one machine-readable JSON object with every case instead of a table.
    #[arg(long)]
    json: bool,
    /// Add the fan-in case: this many writer processes (2 to 64) into one reader.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=64))]
    writers: Option<u32>,
    /// Add the group case: one writer into a reader group of this many members (1 to 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    group: Option<u32>,
}

/// How a process waits in a case (a [`WaitStrategy`] by its command-line name).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Spin briefly, then sleep on a futex.
    Adaptive,
    /// Never sleep.
    Spin,
    /// Sleep on a futex at once.
    Block,
}

impl Wait {
    fn strategy(self) -> WaitStrategy {
        match self {
            Wait::Adaptive => WaitStrategy::Adaptive,
            Wait::Spin => WaitStrategy::BusySpin,
            Wait::Block => WaitStrategy::Block,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Wait::Adaptive => "adaptive",
            Wait::Spin => "busy-spin",
            Wait::Block => "block",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Wait::Adaptive => "adaptive",
            Wait::Spin => "spin",
            Wait::Block => "block",
        }
    }
}

/// The positional suite name dsline's bench takes (`dsline bench shm`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    /// dsline's SPSC bytes bench: shmline's copy case, one writer process, one reader process.
    Shm,
}

/// The groups of cases `--only` selects.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Copy,
    ZeroCopy,
    Batch,
    Latency,
    Futex,
    Memcpy,
    /// The `--writers` case.
    FanIn,
    /// The `--group` case.
    Group,
}

/// How long each case runs.
#[derive(Debug, Clone, Copy)]
enum Amount {
    Seconds(f64),
    Frames(u64),
}

/// What the cases of one run share.
struct Plan {
    amount: Amount,
    capacity: Option<u32>,
    batch: u32,
    wait: Wait,
    /// CPU of the child process, if pinning succeeded in this one.
    child_cpu: Option<usize>,
}

impl Plan {
    fn capacity_for(&self, frame_size: usize) -> u32 {
        self.capacity.unwrap_or_else(|| auto_capacity(frame_size))
    }
}

/// Runs `shmline bench`.
pub fn run(args: &Args) -> ExitCode {
    let amount = match (args.frames, args.quick) {
        (Some(n), _) => Amount::Frames(n),
        (None, true) => Amount::Seconds(QUICK_SECONDS),
        (None, false) => Amount::Seconds(args.duration),
    };
    // `bench shm` (dsline's spelling) is the copy case unless --only names others.
    let only = match (args.suite, args.only.is_empty()) {
        (Some(Suite::Shm), true) => vec![Case::Copy],
        _ => args.only.clone(),
    };
    let wanted = |case: Case| only.is_empty() || only.contains(&case);
    // Before pinning, so that the CPUs allowed are the machine's, not the one we pin to.
    let machine = platform::describe();
    let pinning = pin_self(args.no_pin);
    let plan = Plan {
        amount,
        capacity: args.capacity,
        batch: args.batch,
        wait: args.wait,
        child_cpu: pinning.child_cpu,
    };
    let mut errors: Vec<String> = Vec::new();
    let mut throughput_cases = Vec::new();
    let mut memcpy = Vec::new();
    let mut latency_cases = Vec::new();
    let mut futex = Value::Null;
    let mut fan_cases = Vec::new();
    let mut child_pin_errors = Vec::new();
    progress(&format!(
        "shmline {} bench: {}; {}",
        shmline::VERSION,
        describe_amount(amount),
        pinning.summary()
    ));

    let memcpy_seconds = match amount {
        Amount::Seconds(s) => (s / 4.0).clamp(0.01, 0.25),
        Amount::Frames(_) => 0.1,
    };
    let mut memcpy_of = std::collections::BTreeMap::new();
    if wanted(Case::Memcpy) || wanted(Case::Copy) || wanted(Case::ZeroCopy) {
        let mut sizes = args.sizes.clone();
        sizes.sort_unstable();
        sizes.dedup();
        for &size in &sizes {
            let gbps = throughput::memcpy_gbps(size, memcpy_seconds);
            progress(&format!("memcpy {:>8}: {:.2} GB/s", human_size(size), gbps));
            memcpy_of.insert(size, gbps);
            memcpy.push(json!({ "size": size, "gb_per_s": gbps }));
        }
    }

    let mut throughput_plan: Vec<(throughput::Path, usize)> = Vec::new();
    for &size in &args.sizes {
        if wanted(Case::Copy) {
            throughput_plan.push((throughput::Path::Copy, size));
        }
        if wanted(Case::ZeroCopy) {
            throughput_plan.push((throughput::Path::ZeroCopy, size));
        }
    }
    if wanted(Case::Batch) {
        throughput_plan.push((throughput::Path::Batch, SMALL_FRAME));
    }
    for (path, size) in throughput_plan {
        let label = format!("{} {}", path.name(&plan), human_size(size));
        progress(&format!("{label}: running"));
        match throughput::run_case(&plan, path, size) {
            Ok(mut result) => {
                if let Some(e) = result.child_pin_error.take() {
                    child_pin_errors.push(e);
                }
                let memcpy_gbps = memcpy_of.get(&size).copied();
                progress(&format!(
                    "{label}: {} frames/s, {:.2} GB/s{}",
                    human_rate(result.frames_per_s),
                    result.gb_per_s,
                    if result.errors.is_empty() {
                        String::new()
                    } else {
                        format!(", {} ERRORS", result.errors.len())
                    }
                ));
                for e in &result.errors {
                    errors.push(format!("{label}: {e}"));
                }
                throughput_cases.push(result.to_json(memcpy_gbps));
            }
            Err(e) => {
                progress(&format!("{label}: FAILED: {e}"));
                errors.push(format!("{label}: {e}"));
            }
        }
    }

    let mut fans = Vec::new();
    if let Some(writers) = args.writers.filter(|_| wanted(Case::FanIn)) {
        fans.push(fan::Fan {
            writers,
            group: None,
        });
    }
    if let Some(members) = args.group.filter(|_| wanted(Case::Group)) {
        fans.push(fan::Fan {
            writers: 1,
            group: Some(members),
        });
    }
    for shape in fans {
        for &size in &args.sizes {
            let label = format!("{} {}", shape.name(), human_size(size));
            progress(&format!("{label}: running"));
            match fan::run_case(&plan, shape, size) {
                Ok(result) => {
                    progress(&format!(
                        "{label}: {} frames/s, {:.2} GB/s{}",
                        human_rate(result.frames_per_s),
                        result.gb_per_s,
                        if result.errors.is_empty() {
                            String::new()
                        } else {
                            format!(", {} ERRORS", result.errors.len())
                        }
                    ));
                    for e in &result.errors {
                        errors.push(format!("{label}: {e}"));
                    }
                    let single = throughput_cases
                        .iter()
                        .find(|c| c["path"] == "copy" && c["size"] == size)
                        .and_then(|c| c["gb_per_s"].as_f64());
                    fan_cases.push(result.to_json(memcpy_of.get(&size).copied(), single));
                }
                Err(e) => {
                    progress(&format!("{label}: FAILED: {e}"));
                    errors.push(format!("{label}: {e}"));
                }
            }
        }
    }

    if wanted(Case::Latency) {
        for wait in [Wait::Spin, Wait::Block] {
            let label = format!("latency {} 64 B", wait.name());
            progress(&format!("{label}: running"));
            match latency::run_stream(&plan, wait) {
                Ok(result) => {
                    progress(&format!("{label}: {}", result.summary()));
                    for e in &result.errors {
                        errors.push(format!("{label}: {e}"));
                    }
                    latency_cases.push(result.to_json());
                }
                Err(e) => {
                    progress(&format!("{label}: FAILED: {e}"));
                    errors.push(format!("{label}: {e}"));
                }
            }
        }
    }
    if wanted(Case::Futex) {
        let label = "futex baseline";
        progress(&format!("{label}: running"));
        match latency::run_futex(&plan) {
            Ok(result) => {
                progress(&format!("{label}: {}", result.summary()));
                futex = result.to_json();
            }
            Err(e) => {
                progress(&format!("{label}: FAILED: {e}"));
                errors.push(format!("{label}: {e}"));
            }
        }
    }

    let mut pin_json = pinning.to_json();
    if let Some(e) = child_pin_errors.first() {
        pin_json["ok"] = json!(false);
        pin_json["child_error"] = json!(e);
    }
    let report = json!({
        "shmline_version": shmline::VERSION,
        "layout_version": shmline::LAYOUT_VERSION,
        "machine": machine,
        "settings": {
            "seconds_per_case": match amount { Amount::Seconds(s) => json!(s), Amount::Frames(_) => Value::Null },
            "frames_per_case": match amount { Amount::Frames(n) => json!(n), Amount::Seconds(_) => Value::Null },
            "capacity": plan.capacity.map_or(json!("auto"), |c| json!(c)),
            "batch": plan.batch,
            "wait": plan.wait.name(),
            "quick": args.quick,
            "gb": "10^9 bytes of payload",
        },
        "pinning": pin_json,
        "memcpy": memcpy,
        "throughput": throughput_cases,
        "fan": fan_cases,
        "latency": latency_cases,
        "futex_baseline": futex,
        "errors": errors,
    });
    if args.json {
        println!("{report:#}");
    } else {
        print_table(&report);
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("shmline bench: {} error(s):", errors.len());
        for e in &errors {
            eprintln!("  {e}");
        }
        ExitCode::FAILURE
    }
}

/// Options of the hidden child role (`shmline __bench-child`); see [`child`].
pub use child::{run_child, ChildArgs};

/// Where the two processes run.
struct Pinning {
    parent_cpu: Option<usize>,
    child_cpu: Option<usize>,
    detail: String,
}

impl Pinning {
    fn summary(&self) -> String {
        match (self.parent_cpu, self.child_cpu) {
            (Some(p), Some(c)) => format!("writer pinned to CPU {p}, reader to CPU {c}"),
            _ => format!("not pinned ({})", self.detail),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "ok": self.parent_cpu.is_some() && self.child_cpu.is_some(),
            "parent_cpu": self.parent_cpu,
            "child_cpu": self.child_cpu,
            "detail": self.detail,
        })
    }
}

/// Pins this process to the first allowed CPU and picks the second for the child.
fn pin_self(disabled: bool) -> Pinning {
    let unpinned = |detail: String| Pinning {
        parent_cpu: None,
        child_cpu: None,
        detail,
    };
    if disabled {
        return unpinned("--no-pin".into());
    }
    let cpus = platform::allowed_cpus();
    if cpus.len() < 2 {
        return unpinned(format!(
            "only {} CPU allowed; writer and reader share it",
            cpus.len()
        ));
    }
    match platform::pin_to(cpus[0]) {
        Ok(()) => Pinning {
            parent_cpu: Some(cpus[0]),
            child_cpu: Some(cpus[1]),
            detail: "sched_setaffinity".into(),
        },
        Err(e) => unpinned(e),
    }
}

/// Ring capacity used for `frame_size` when `--capacity` is not given.
fn auto_capacity(frame_size: usize) -> u32 {
    let slot = shmline::__private::layout::round_up(
        (shmline::__private::layout::FRAME_HEADER_SIZE + frame_size) as u64,
        shmline::__private::layout::SLOT_ALIGN,
    );
    let fit = (AUTO_RING_BYTES / slot).max(1);
    let pow2 = 1u64 << (63 - fit.leading_zeros());
    (pow2 as u32).clamp(AUTO_CAPACITY_MIN, AUTO_CAPACITY_MAX)
}

/// Creates a bench stream with a name unique to this process and case.
fn create_stream(
    tag: &str,
    capacity: u32,
    max_frame: usize,
    max_writers: u32,
    max_readers: u32,
) -> Result<Stream, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // Relaxed: only uniqueness matters.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("bench-{}-{n}-{tag}", std::process::id());
    Stream::create(
        &name,
        &StreamOptions {
            capacity,
            max_frame_size: max_frame as u32,
            max_readers,
            max_writers,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .map_err(|e| format!("creating stream {name}: {e}"))
}

/// Longest wait for the child process to attach (generous: the machine may be loaded).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

fn progress(line: &str) {
    eprintln!("bench: {line}");
}

fn describe_amount(amount: Amount) -> String {
    match amount {
        Amount::Seconds(s) => format!("{s} s per case"),
        Amount::Frames(n) => format!("{n} frames per case"),
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64, 4K or 1M"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        _ => return Err(format!("unknown unit in {text:?}; use K or M")),
    };
    let size = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if size < 16 || size % 8 != 0 {
        return Err(format!(
            "frame size {size} must be a multiple of 8 and at least 16 (the bench stamps the \
             sequence number in the first and last 8 bytes)"
        ));
    }
    if size > 64 << 20 {
        return Err(format!(
            "frame size {size} is over the bench's limit of 64M"
        ));
    }
    Ok(size)
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let s: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(s > 0.0 && s <= 3600.0) {
        return Err("the duration must be between 0 and 3600 seconds".into());
    }
    Ok(s)
}

/// `bytes` as "64 B", "4 KiB", "1 MiB" (or plain bytes when not a round number).
fn human_size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// A rate as "12.3 M", "456 k" or "789".
fn human_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

fn print_table(r: &Value) {
    let m = &r["machine"];
    let s = &r["settings"];
    let p = &r["pinning"];
    println!(
        "shmline {} bench on {} ({} CPUs online), kernel {}",
        r["shmline_version"].as_str().unwrap_or("?"),
        m["cpu_model"].as_str().unwrap_or("?"),
        m["cpus_online"],
        m["kernel"].as_str().unwrap_or("?")
    );
    let per_case = if s["frames_per_case"].is_null() {
        format!("{} s per case", s["seconds_per_case"])
    } else {
        format!("{} frames per case", s["frames_per_case"])
    };
    let pinned = if p["ok"].as_bool() == Some(true) {
        format!(
            "writer on CPU {}, reader on CPU {}",
            p["parent_cpu"], p["child_cpu"]
        )
    } else {
        format!(
            "not pinned: {}",
            p["child_error"]
                .as_str()
                .or(p["detail"].as_str())
                .unwrap_or("?")
        )
    };
    println!(
        "{per_case}; throughput wait strategy {}; {pinned}",
        s["wait"].as_str().unwrap_or("?")
    );
    println!();
    print_cases(
        &r["throughput"],
        "throughput",
        "memcpy",
        "memcpy_gb_per_s",
        1,
        "ratio_to_memcpy",
    );
    print_cases(
        &r["fan"],
        "fan",
        "1->1",
        "single_gb_per_s",
        2,
        "ratio_to_single",
    );
    let latency_row = |name: &str, c: &Value| {
        let ns = &c["one_way_ns"];
        println!(
            "{:<22} {:>8} {:>8} {:>8} {:>8} {:>10}",
            name, ns["p50"], ns["p99"], ns["p999"], ns["max"], c["samples"]
        );
    };
    let latency = r["latency"].as_array().cloned().unwrap_or_default();
    if !latency.is_empty() || !r["futex_baseline"].is_null() {
        println!(
            "{:<22} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "one-way latency (ns)", "p50", "p99", "p999", "max", "samples"
        );
        for c in &latency {
            latency_row(&format!("64 B {}", c["wait"].as_str().unwrap_or("?")), c);
        }
        if !r["futex_baseline"].is_null() {
            latency_row("raw futex ping-pong", &r["futex_baseline"]);
        }
        println!();
    }
    if let Some(errors) = r["errors"].as_array().filter(|e| !e.is_empty()) {
        println!("ERRORS");
        for e in errors {
            println!("  {}", e.as_str().unwrap_or("?"));
        }
    }
}

/// Prints one table of throughput-like cases (nothing if there are none): path, size, slots,
/// frames/s, GB/s, then the reference column `reference` (key `reference_key`, printed with
/// `reference_prec` decimals) and the ratio to it (key `ratio_key`), then the error count.
fn print_cases(
    cases: &Value,
    title: &str,
    reference: &str,
    reference_key: &str,
    reference_prec: usize,
    ratio_key: &str,
) {
    let Some(cases) = cases.as_array().filter(|c| !c.is_empty()) else {
        return;
    };
    println!(
        "{:<14} {:>8} {:>6} {:>12} {:>8} {:>8} {:>7} {:>7}",
        title, "size", "slots", "frames/s", "GB/s", reference, "ratio", "errors"
    );
    let opt = |v: &Value, prec: usize| {
        v.as_f64()
            .map_or("-".to_string(), |x| format!("{x:.prec$}"))
    };
    for c in cases {
        println!(
            "{:<14} {:>8} {:>6} {:>12} {:>8} {:>8} {:>7} {:>7}",
            c["path"].as_str().unwrap_or("?"),
            human_size(c["size"].as_u64().unwrap_or(0) as usize),
            c["capacity"],
            human_rate(c["frames_per_s"].as_f64().unwrap_or(0.0)),
            opt(&c["gb_per_s"], 2),
            opt(&c[reference_key], reference_prec),
            opt(&c[ratio_key], 3),
            c["errors"].as_array().map_or(0, Vec::len),
        );
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_suffixes_and_refuse_unstampable_frames() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("8").is_err());
        assert!(parse_size("100").is_err());
        assert!(parse_size("4X").is_err());
    }

    #[test]
    fn automatic_capacity_keeps_rings_near_16_mib() {
        assert_eq!(auto_capacity(64), 1024);
        assert_eq!(auto_capacity(64 << 10), 128);
        assert_eq!(auto_capacity(1 << 20), 8);
        assert_eq!(auto_capacity(64 << 20), 4);
    }
}
