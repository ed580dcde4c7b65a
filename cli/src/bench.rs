//! `shmline bench`: throughput and latency between two real processes.
//!
//! The command re-executes itself (`shmline __bench-child ...`) so writer and reader are separate
//! processes, as they are in a pipeline, and pins them to different CPUs when it can. Each case
//! runs in a fresh stream whose name is removed from `/dev/shm` as soon as both processes have
//! it mapped, so nothing is left behind even if the bench is killed.
//!
//! - `throughput`: frames/s and GB/s per frame size on the copy path, the zero-copy path and
//!   (for the smallest size) the batch calls, measured by the reader over the frames it verified,
//!   each size just after its limit, the `ideal` ring (a minimal SPSC ring between the same two
//!   pinned processes), and reported as a ratio to it;
//! - `latency`: one-way latency by ping-pong over two streams (half the round trip), per wait
//!   strategy, each as a ratio to its limit measured just before it: a bare cache-line
//!   ping-pong (busy-spin, adaptive) or a bare futex ping-pong (block);
//! - `memcpy`: a single-thread memcpy of each frame size in this process, for scale;
//! - `fan-in` (`--writers N`) and `group` (`--group N`): several writer processes into one
//!   reader, one writer into a reader group, per frame size, next to the copy case's figure;
//! - `neighbour` (`--neighbour`): the 64-byte ideal ring, copy and latency cases again, each
//!   quiet and then while a neighbour process keeps one CPU busy, as a ratio to its quiet figure.

mod child;
mod fan;
mod ideal;
mod latency;
mod neighbour;
mod shared_map;
mod throughput;

use crate::platform;
use serde::Serialize;
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
    \x20 ideal      the limit of the throughput cases, run just before them for each size: a \
    minimal SPSC ring between the same two pinned processes (same slot count, slots of the frame \
    size rounded up to 64 bytes, one copy in and one copy out per frame, one store to publish \
    and one to release, no header, timestamp or liveness check), polling as --wait says (pure \
    busy-poll with busy_spin; otherwise 64 polls with a CPU pause (shmline's adaptive waiter \
    makes 512 before it sleeps), then a sched_yield before each poll: the ideal ring never sleeps, \
    and a pure busy-poll collapses under any neighbour). Every throughput figure is also given as ratio_to_ideal.\n\
    \x20 copy       Writer::write from a buffer, Reader::read_into into a buffer (one copy in, one \
    out), for every --sizes.\n\
    \x20 zero-copy  Writer::reserve, the writer fills the whole payload in place (a memset, then \
    the stamps), commit; Reader::acquire, the reader sums every 8-byte word in place, release.\n\
    \x20 batch      write_batch / read_batch of --batch frames of 64 bytes.\n\
    \x20 latency    ping-pong of 64-byte frames over two streams; one-way = half the round \
    trip; with busy_spin, adaptive and block waiting, each with ratio_to_baseline: its p50 over \
    the p50 of the bare ping-pong below run just before it (cache-line for busy_spin and \
    adaptive, futex for block).\n\
    \x20 cache-line the same ping-pong with a bare 32-bit word on its own cache line per side, \
    both busy-polling: the round trip of a cache line between the two CPUs.\n\
    \x20 ideal-ring the same ping-pong of 64-byte frames through two minimal rings (the ideal \
    ring's slots, a head and a tail counter each on a line of its own, one copy in and one out, \
    both sides busy-polling): what a ring whose publication counter is apart from its slots \
    costs, one line for the counter and one for the frame. busy_spin and adaptive latency are \
    also given as ratio_to_ideal_ring.\n\
    \x20 futex      the same with the library's futex wait and wake: the machine's wake-up \
    cost.\n\
    \x20 memcpy     a single-thread memcpy of each frame size between two buffers, for scale.\n\
    \x20 fan-in     with --writers N (N > 1): N writer processes write to one multi-writer \
    stream, one reader process reads it (copy path), for every --sizes.\n\
    \x20 group      with --group N: one writer process, N reader processes sharing the frames \
    as one reader group (copy path), for every --sizes.\n\
    \x20 neighbour  with --neighbour (or --only neighbour), after the other cases: the 64-byte \
    ideal ring and copy case (with --wait; the copy case also with busy_spin, for contrast) and \
    the busy_spin and adaptive latency cases, each run twice back to back: on its own, then \
    while a neighbour process keeps one CPU busy. The neighbour is a child of the bench that \
    spins on register arithmetic (one CPU's worth of work, no memory traffic), is not pinned (it \
    may run on every CPU the bench was allowed, so the scheduler puts it next to the writer or \
    the reader), and has the bench's priority (a nice given to the bench applies to it). It is \
    started for each case and stopped after it, killed if the bench fails and, through \
    PR_SET_PDEATHSIG, if the bench dies. Each case is reported with ratio_to_quiet: its \
    frames/s (or one-way p50) with the neighbour over the same figure without it, and with \
    neighbour_cores: the CPUs' worth of time the neighbour got (below 1 when the machine is \
    busier still). Issue 14's goal: the adaptive default within 2x of its quiet figure \
    (ratio_to_quiet >= 0.5 for frames/s, <= 2 for latency).\n\n\
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
    With --runs N, everything runs N times and the table gives, per case, the median of its \
    figure and of its ratio to its limit (each ratio taken within its run, next to the limit \
    measured just before it) and each run's ratio; in the JSON, \"medians\" holds the same \
    and \"later_runs\" the objects of runs 2 to N (the object itself is run 1).\n\n\
    Progress goes to stderr; the results (a table, or one JSON object with --json, indented \
    with --pretty; its \"schema_version\" says which shape, and keys are only ever added within \
    a version: \"neighbour\" is null unless that section ran) to stdout.\n\n\
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
    /// Wait strategy of the throughput cases: adaptive (spin briefly, then sleep on a futex),
    /// busy_spin (never sleep) or block (sleep at once). Latency is measured with each.
    #[arg(long, value_parser = parse_wait, default_value = "adaptive")]
    wait: WaitStrategy,
    /// Cases to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Case>,
    /// Do not pin the two processes to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Very short cases (0.05 s each): proves the bench runs, measures little.
    #[arg(long)]
    quick: bool,
    /// Print one machine-readable JSON object (on one line) with every case instead of a table.
    #[arg(long)]
    json: bool,
    /// As --json, indented for people.
    #[arg(long)]
    pretty: bool,
    /// Add the fan-in case: this many writer processes (2 to 64) into one reader.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=64))]
    writers: Option<u32>,
    /// Add the group case: one writer into a reader group of this many members (1 to 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    group: Option<u32>,
    /// Add the neighbour section: the 64-byte ideal, copy and latency cases again, each quiet
    /// and then next to a process that keeps one CPU busy (not pinned), as ratio_to_quiet.
    #[arg(long, visible_alias = "neighbor")]
    neighbour: bool,
    /// Run everything this many times, one run after the other, and report the median of
    /// every figure and of every ratio (each ratio taken within its run, so a machine that
    /// changes speed between runs moves both sides of it), with each run's values. On a shared
    /// or virtual machine one run can be far off: 5 is a good number.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
}

/// Parses a wait strategy by the name every binding uses (`adaptive`, `busy_spin`, `block`).
pub fn parse_wait(name: &str) -> Result<WaitStrategy, String> {
    WaitStrategy::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = WaitStrategy::ALL.iter().map(|w| w.name()).collect();
        format!(
            "unknown wait strategy {name:?} (expected one of: {})",
            names.join(", ")
        )
    })
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
    /// The ideal ring alone (it also runs before every throughput case).
    Ideal,
    Latency,
    /// The bare cache-line ping-pong alone (it also runs before the stream latency cases).
    CacheLine,
    /// The ideal-ring ping-pong alone (it also runs before the stream latency cases).
    IdealRing,
    /// The bare futex ping-pong alone (it also runs before the blocking latency case).
    Futex,
    Memcpy,
    /// The `--writers` case.
    FanIn,
    /// The `--group` case.
    Group,
    /// The `--neighbour` section alone (naming it is enough; it is not part of the default).
    Neighbour,
}

/// How long each case runs.
#[derive(Debug, Clone, Copy)]
enum Amount {
    Seconds(f64),
    Frames(u64),
}

/// What the cases of one run share.
#[derive(Clone)]
struct Plan {
    amount: Amount,
    capacity: Option<u32>,
    batch: u32,
    wait: WaitStrategy,
    /// CPU of the child process, if pinning succeeded in this one.
    child_cpu: Option<usize>,
    /// The CPUs this process was allowed before it pinned itself: where the children that are
    /// not pinned (fan cases, the neighbour) may run.
    free_cpus: Vec<usize>,
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
    // Before pinning, so that the CPUs allowed are the machine's, not the one we pin to.
    let machine = platform::describe();
    let free_cpus = platform::allowed_cpus();
    let pinning = pin_self(args.no_pin);
    let plan = Plan {
        amount,
        capacity: args.capacity,
        batch: args.batch,
        wait: args.wait,
        child_cpu: pinning.child_cpu,
        free_cpus,
    };
    let runs = args.runs as usize;
    let mut reports = Vec::with_capacity(runs);
    for i in 0..runs {
        if runs > 1 {
            progress(&format!("run {} of {runs}", i + 1));
        }
        reports.push(run_once(args, &only, &plan, &pinning, machine.clone()));
    }
    let mut report = reports.remove(0);
    if runs > 1 {
        report.medians = Some(Medians::of(std::iter::once(&report).chain(&reports)));
        report.later_runs = reports;
    }
    if args.json || args.pretty {
        let text = if args.pretty {
            serde_json::to_string_pretty(&report)
        } else {
            serde_json::to_string(&report)
        };
        println!(
            "{}",
            text.expect("the report has no map with non-string keys")
        );
    } else {
        print_table(&report);
    }
    let errors = report.all_errors();
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("shmline bench: {} error(s):", errors.len());
        for e in errors {
            eprintln!("  {e}");
        }
        ExitCode::FAILURE
    }
}

/// One run of every case `only` selects (all when empty), as one report.
fn run_once(
    args: &Args,
    only: &[Case],
    plan: &Plan,
    pinning: &Pinning,
    machine: serde_json::Value,
) -> Report {
    let amount = plan.amount;
    let wanted = |case: Case| only.is_empty() || only.contains(&case);
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        shmline_version: shmline::VERSION,
        layout_version: shmline::LAYOUT_VERSION,
        machine,
        settings: Settings {
            seconds_per_case: match amount {
                Amount::Seconds(s) => Some(s),
                Amount::Frames(_) => None,
            },
            frames_per_case: match amount {
                Amount::Frames(n) => Some(n),
                Amount::Seconds(_) => None,
            },
            capacity: plan.capacity,
            batch: plan.batch,
            wait: plan.wait.name(),
            quick: args.quick,
            gb: "10^9 bytes of payload",
        },
        pinning: pinning.report(),
        memcpy: Vec::new(),
        ideal: Vec::new(),
        throughput: Vec::new(),
        fan: Vec::new(),
        latency: Vec::new(),
        cache_line_ping_pong: None,
        ideal_ring_ping_pong: None,
        futex_ping_pong: None,
        neighbour: None,
        errors: Vec::new(),
        medians: None,
        later_runs: Vec::new(),
    };
    let mut child_pin_errors = Vec::new();
    progress(&format!(
        "shmline {} bench: {}; {}",
        shmline::VERSION,
        describe_amount(amount),
        pinning.summary()
    ));

    // The throughput cases per frame size, each size's ideal ring first (interleaved: the
    // shmline cases and their limit run back to back, under the same load).
    let mut sizes: Vec<usize> = Vec::new();
    let mut plan_of: std::collections::BTreeMap<usize, Vec<throughput::Path>> = Default::default();
    for &size in &args.sizes {
        let paths = plan_of.entry(size).or_default();
        if wanted(Case::Copy) && !paths.contains(&throughput::Path::Copy) {
            paths.push(throughput::Path::Copy);
        }
        if wanted(Case::ZeroCopy) && !paths.contains(&throughput::Path::ZeroCopy) {
            paths.push(throughput::Path::ZeroCopy);
        }
        if !sizes.contains(&size) {
            sizes.push(size);
        }
    }
    if wanted(Case::Batch) {
        plan_of
            .entry(SMALL_FRAME)
            .or_default()
            .push(throughput::Path::Batch);
        if !sizes.contains(&SMALL_FRAME) {
            sizes.push(SMALL_FRAME);
        }
    }
    let fan_sizes: Vec<usize> = if (args.writers.is_some() && wanted(Case::FanIn))
        || (args.group.is_some() && wanted(Case::Group))
    {
        args.sizes.clone()
    } else {
        Vec::new()
    };

    let memcpy_seconds = match amount {
        Amount::Seconds(s) => (s / 4.0).clamp(0.01, 0.25),
        Amount::Frames(_) => 0.1,
    };
    let mut memcpy_of = std::collections::BTreeMap::new();
    if wanted(Case::Memcpy) || !plan_of.values().all(Vec::is_empty) {
        let mut sizes = sizes.clone();
        sizes.sort_unstable();
        for &size in &sizes {
            let gbps = throughput::memcpy_gbps(size, memcpy_seconds);
            progress(&format!("memcpy {:>8}: {:.2} GB/s", human_size(size), gbps));
            memcpy_of.insert(size, gbps);
            report.memcpy.push(MemcpyCase {
                size,
                gb_per_s: gbps,
            });
        }
    }

    let mut ideal_of = std::collections::BTreeMap::new();
    for &size in &sizes {
        let paths = plan_of.get(&size).cloned().unwrap_or_default();
        if !paths.is_empty() || wanted(Case::Ideal) || fan_sizes.contains(&size) {
            let label = format!("ideal {}", human_size(size));
            progress(&format!("{label}: running"));
            match ideal::run_case(plan, size) {
                Ok(mut result) => {
                    if let Some(e) = result.child_pin_error.take() {
                        child_pin_errors.push(e);
                    }
                    progress(&format!("{label}: {}", result.summary(None)));
                    report
                        .errors
                        .extend(result.errors.iter().map(|e| format!("{label}: {e}")));
                    result.compare(None, memcpy_of.get(&size).copied());
                    ideal_of.insert(size, result.frames_per_s);
                    report.ideal.push(result);
                }
                Err(e) => {
                    progress(&format!("{label}: FAILED: {e}"));
                    report.errors.push(format!("{label}: {e}"));
                }
            }
        }
        for path in paths {
            let label = format!("{} {}", path.name(plan), human_size(size));
            progress(&format!("{label}: running"));
            match throughput::run_case(plan, path, size) {
                Ok(mut result) => {
                    if let Some(e) = result.child_pin_error.take() {
                        child_pin_errors.push(e);
                    }
                    let ideal = ideal_of.get(&size).copied();
                    result.compare(ideal, memcpy_of.get(&size).copied());
                    progress(&format!("{label}: {}", result.summary(ideal)));
                    report
                        .errors
                        .extend(result.errors.iter().map(|e| format!("{label}: {e}")));
                    report.throughput.push(result);
                }
                Err(e) => {
                    progress(&format!("{label}: FAILED: {e}"));
                    report.errors.push(format!("{label}: {e}"));
                }
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
        for &size in &fan_sizes {
            let label = format!("{} {}", shape.name(), human_size(size));
            progress(&format!("{label}: running"));
            match fan::run_case(plan, shape, size) {
                Ok(mut result) => {
                    let single = report
                        .throughput
                        .iter()
                        .find(|c| c.path == "copy" && c.size == size)
                        .map(|c| c.gb_per_s);
                    result.compare(ideal_of.get(&size).copied(), single);
                    progress(&format!(
                        "{label}: {} frames/s, {:.2} GB/s{}",
                        human_rate(result.frames_per_s),
                        result.gb_per_s,
                        error_note(&result.errors)
                    ));
                    report
                        .errors
                        .extend(result.errors.iter().map(|e| format!("{label}: {e}")));
                    report.fan.push(result);
                }
                Err(e) => {
                    progress(&format!("{label}: FAILED: {e}"));
                    report.errors.push(format!("{label}: {e}"));
                }
            }
        }
    }

    // Latency: each bare ping-pong just before the stream cases it is the limit of.
    let run_ping_pong = |kind: latency::PingPong, report: &mut Report| {
        let label = format!("{} ping-pong", kind.name());
        progress(&format!("{label}: running"));
        match latency::run_ping_pong(plan, kind) {
            Ok(result) => {
                progress(&format!("{label}: {}", result.summary()));
                report
                    .errors
                    .extend(result.errors.iter().map(|e| format!("{label}: {e}")));
                Some(result)
            }
            Err(e) => {
                progress(&format!("{label}: FAILED: {e}"));
                report.errors.push(format!("{label}: {e}"));
                None
            }
        }
    };
    if wanted(Case::Latency) || wanted(Case::CacheLine) {
        report.cache_line_ping_pong = run_ping_pong(latency::PingPong::CacheLine, &mut report);
    }
    if wanted(Case::Latency) || wanted(Case::IdealRing) {
        report.ideal_ring_ping_pong = run_ping_pong(latency::PingPong::IdealRing, &mut report);
    }
    let stream_latency = |wait: WaitStrategy, report: &mut Report| {
        let label = format!("latency {} 64 B", wait.name());
        progress(&format!("{label}: running"));
        match latency::run_stream(plan, wait) {
            Ok(mut result) => {
                let baseline = match wait {
                    WaitStrategy::Block => &report.futex_ping_pong,
                    _ => &report.cache_line_ping_pong,
                };
                if let Some(baseline) = baseline {
                    result.compare(baseline);
                }
                if wait != WaitStrategy::Block {
                    if let Some(ring) = &report.ideal_ring_ping_pong {
                        result.compare_ring(ring);
                    }
                }
                progress(&format!(
                    "{label}: {}{}",
                    result.summary(),
                    result
                        .ratio_to_baseline
                        .map_or(String::new(), |r| format!(", {r:.2}x the bare ping-pong"))
                ));
                report
                    .errors
                    .extend(result.errors.iter().map(|e| format!("{label}: {e}")));
                report.latency.push(result);
            }
            Err(e) => {
                progress(&format!("{label}: FAILED: {e}"));
                report.errors.push(format!("{label}: {e}"));
            }
        }
    };
    if wanted(Case::Latency) {
        stream_latency(WaitStrategy::BusySpin, &mut report);
        stream_latency(WaitStrategy::Adaptive, &mut report);
    }
    if wanted(Case::Latency) || wanted(Case::Futex) {
        report.futex_ping_pong = run_ping_pong(latency::PingPong::Futex, &mut report);
    }
    if wanted(Case::Latency) {
        stream_latency(WaitStrategy::Block, &mut report);
    }

    // Last: the section reruns cases that may also have run above, and its neighbour must not
    // overlap any other case.
    if args.neighbour || only.contains(&Case::Neighbour) {
        report.neighbour = Some(neighbour::run(
            plan,
            &mut report.errors,
            &mut child_pin_errors,
        ));
    }

    if let Some(e) = child_pin_errors.into_iter().next() {
        report.pinning.ok = false;
        report.pinning.child_error = Some(e);
    }
    report
}

/// ", N ERRORS" when there are verification errors.
fn error_note(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(", {} ERRORS", errors.len())
    }
}

/// Version of the JSON report's shape: bumped when a field changes meaning or disappears.
const SCHEMA_VERSION: u32 = 1;

/// Everything `shmline bench --json` prints: one object.
#[derive(Debug, Serialize)]
struct Report {
    /// [`SCHEMA_VERSION`].
    schema_version: u32,
    shmline_version: &'static str,
    layout_version: u32,
    /// Machine facts (see `platform::describe`).
    machine: serde_json::Value,
    settings: Settings,
    pinning: PinningReport,
    /// Single-thread memcpy per frame size, for scale.
    memcpy: Vec<MemcpyCase>,
    /// The ideal ring per frame size: the limit of the throughput cases.
    ideal: Vec<throughput::CaseResult>,
    throughput: Vec<throughput::CaseResult>,
    fan: Vec<fan::FanResult>,
    latency: Vec<latency::LatencyResult>,
    /// The limit of busy-spin and adaptive latency.
    cache_line_ping_pong: Option<latency::LatencyResult>,
    /// 64-byte frames through two minimal rings, busy-polling: what a ring whose publication
    /// counter is apart from its slots costs. (Added within schema version 1.)
    ideal_ring_ping_pong: Option<latency::LatencyResult>,
    /// The limit of blocking latency.
    futex_ping_pong: Option<latency::LatencyResult>,
    /// The neighbour section (`--neighbour`), null when it did not run: added within schema
    /// version 1, as every key is.
    neighbour: Option<neighbour::NeighbourReport>,
    errors: Vec<String>,
    /// With `--runs N` (N > 1): the median of every figure and ratio over the N runs; null
    /// otherwise. (Added within schema version 1.)
    medians: Option<Medians>,
    /// With `--runs N`: runs 2 to N, each an object of this shape (this object is run 1);
    /// empty otherwise. (Added within schema version 1.)
    later_runs: Vec<Report>,
}

impl Report {
    /// The errors of this run and of the later ones (`--runs`).
    fn all_errors(&self) -> Vec<&String> {
        let runs = std::iter::once(self).chain(&self.later_runs);
        runs.flat_map(|r| &r.errors).collect()
    }
}

/// The medians of several runs (`--runs`).
#[derive(Debug, Serialize)]
struct Medians {
    /// Runs the medians are taken over.
    runs: usize,
    /// One row per case, in the order the cases ran.
    rows: Vec<MedianRow>,
}

/// One case over several runs: its figure and its ratio to its limit, per run and as a median.
#[derive(Debug, Serialize)]
struct MedianRow {
    /// "throughput", "fan", "latency", "latency vs ring" (a stream's latency against the
    /// ideal-ring ping-pong), "neighbour throughput" or "neighbour latency".
    section: &'static str,
    /// The case: "copy", "zero-copy", "batch-32", "ideal", "busy_spin", "cache-line", ...
    case: String,
    /// Payload bytes per frame.
    size: usize,
    /// Wait strategy.
    wait: &'static str,
    /// What `median` and `per_run` are: "frames/s" or "one-way p50 ns".
    figure: &'static str,
    median: f64,
    /// The figure in each run that had the case, in run order.
    per_run: Vec<f64>,
    /// What the ratios compare with: "ideal", "cache-line", "futex" (the bare ping-pongs) or
    /// "quiet" (the same case without the neighbour); null for the limits themselves.
    ratio_to: Option<&'static str>,
    /// Median of `ratios_per_run`.
    median_ratio: Option<f64>,
    /// The ratio within each run that had one, in run order.
    ratios_per_run: Vec<f64>,
}

/// What a run's figure is compared with, and that ratio in the run (`None`: the run had none).
type Ratio = Option<(&'static str, Option<f64>)>;

/// The rows of [`Medians`] while the runs are read, one per case.
#[derive(Default)]
struct Rows(Vec<MedianRow>);

impl Rows {
    /// Adds one run's frames/s of a throughput case, and its ratio.
    fn rate(
        &mut self,
        section: &'static str,
        case: &str,
        size: usize,
        wait: &'static str,
        value: f64,
        ratio: Ratio,
    ) {
        self.add((section, case, size, wait, "frames/s"), value, ratio);
    }

    /// Adds one run's one-way p50 of a latency case (named by its wait), and its ratio.
    fn p50(&mut self, section: &'static str, wait: &'static str, size: usize, ns: u64, r: Ratio) {
        self.add((section, wait, size, wait, "one-way p50 ns"), ns as f64, r);
    }

    /// Adds `value` (and the ratio, if the run had one) to the row of the case `key` (section,
    /// case, size, wait, figure), made on the case's first run.
    fn add(
        &mut self,
        key: (&'static str, &str, usize, &'static str, &'static str),
        value: f64,
        ratio: Ratio,
    ) {
        let (section, case, size, wait, figure) = key;
        let found = self.0.iter().position(|row| {
            row.section == section && row.case == case && row.size == size && row.wait == wait
        });
        let index = found.unwrap_or_else(|| {
            self.0.push(MedianRow {
                section,
                case: case.to_string(),
                size,
                wait,
                figure,
                median: 0.0,
                per_run: Vec::new(),
                ratio_to: ratio.map(|(to, _)| to),
                median_ratio: None,
                ratios_per_run: Vec::new(),
            });
            self.0.len() - 1
        });
        let row = &mut self.0[index];
        row.per_run.push(value);
        if let Some((_, Some(x))) = ratio {
            row.ratios_per_run.push(x);
        }
    }
}

impl Medians {
    /// The medians over `reports`, one row per case in the order of the first run that had it.
    fn of<'a>(reports: impl Iterator<Item = &'a Report>) -> Medians {
        let mut rows = Rows::default();
        let mut runs = 0;
        for r in reports {
            runs += 1;
            for c in &r.ideal {
                rows.rate("throughput", &c.path, c.size, c.wait, c.frames_per_s, None);
            }
            for c in &r.throughput {
                let ratio = Some(("ideal", c.ratio_to_ideal));
                rows.rate("throughput", &c.path, c.size, c.wait, c.frames_per_s, ratio);
            }
            for c in &r.fan {
                let ratio = Some(("ideal", c.ratio_to_ideal));
                rows.rate("fan", &c.path, c.size, c.wait, c.frames_per_s, ratio);
            }
            let limits = [
                &r.cache_line_ping_pong,
                &r.ideal_ring_ping_pong,
                &r.futex_ping_pong,
            ];
            for c in limits.into_iter().flatten() {
                rows.p50("latency", c.wait, c.size, c.one_way_ns.p50, None);
            }
            for c in &r.latency {
                let ratio = c.baseline.map(|b| (b, c.ratio_to_baseline));
                rows.p50("latency", c.wait, c.size, c.one_way_ns.p50, ratio);
                if c.ideal_ring_p50_ns.is_some() {
                    let ratio = Some(("ideal-ring", c.ratio_to_ideal_ring));
                    rows.p50("latency vs ring", c.wait, c.size, c.one_way_ns.p50, ratio);
                }
            }
            if let Some(n) = &r.neighbour {
                for c in &n.throughput {
                    let ratio = Some(("quiet", c.ratio_to_quiet));
                    let section = "neighbour throughput";
                    rows.rate(section, &c.path, c.size, c.wait, c.frames_per_s, ratio);
                }
                for c in &n.latency {
                    let ratio = Some(("quiet", c.ratio_to_quiet));
                    rows.p50("neighbour latency", c.wait, c.size, c.p50_ns, ratio);
                }
            }
        }
        let mut rows = rows.0;
        for row in &mut rows {
            row.median = median(&row.per_run).unwrap_or(0.0);
            row.median_ratio = median(&row.ratios_per_run);
        }
        Medians { runs, rows }
    }
}

/// The median of `values` (the mean of the two middle ones for an even count); `None` if empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// How the cases were run.
#[derive(Debug, Serialize)]
struct Settings {
    seconds_per_case: Option<f64>,
    frames_per_case: Option<u64>,
    /// `None`: automatic (as many slots as fit in 16 MiB, 4 to 1024).
    capacity: Option<u32>,
    batch: u32,
    wait: &'static str,
    quick: bool,
    gb: &'static str,
}

/// Where the two processes ran.
#[derive(Debug, Serialize)]
struct PinningReport {
    ok: bool,
    parent_cpu: Option<usize>,
    child_cpu: Option<usize>,
    detail: String,
    child_error: Option<String>,
}

/// A single-thread memcpy of one frame.
#[derive(Debug, Serialize)]
struct MemcpyCase {
    size: usize,
    gb_per_s: f64,
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

    fn report(&self) -> PinningReport {
        PinningReport {
            ok: self.parent_cpu.is_some() && self.child_cpu.is_some(),
            parent_cpu: self.parent_cpu,
            child_cpu: self.child_cpu,
            detail: self.detail.clone(),
            child_error: None,
        }
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

fn print_table(r: &Report) {
    let m = &r.machine;
    println!(
        "shmline {} bench on {} ({} CPUs online), kernel {}",
        r.shmline_version,
        m["cpu_model"].as_str().unwrap_or("?"),
        m["cpus_online"],
        m["kernel"].as_str().unwrap_or("?")
    );
    let per_case = match (r.settings.seconds_per_case, r.settings.frames_per_case) {
        (_, Some(n)) => format!("{n} frames per case"),
        (Some(s), None) => format!("{s} s per case"),
        (None, None) => "?".into(),
    };
    let p = &r.pinning;
    let pinned = match (p.ok, p.parent_cpu, p.child_cpu) {
        (true, Some(w), Some(c)) => format!("writer on CPU {w}, reader on CPU {c}"),
        _ => format!(
            "not pinned: {}",
            p.child_error.as_deref().unwrap_or(&p.detail)
        ),
    };
    println!(
        "{per_case}; throughput wait strategy {}; {pinned}",
        r.settings.wait
    );
    println!();
    if let Some(m) = &r.medians {
        print_medians(m);
        let errors = r.all_errors();
        if !errors.is_empty() {
            println!("ERRORS");
            for e in errors {
                println!("  {e}");
            }
        }
        return;
    }
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |x| format!("{x:.prec$}"));
    if !r.throughput.is_empty() || !r.ideal.is_empty() {
        println!(
            "{:<14} {:>8} {:>6} {:>10} {:>7} {:>10} {:>7} {:>7} {:>8} {:>6}",
            "throughput",
            "size",
            "slots",
            "frames/s",
            "GB/s",
            "ideal/s",
            "x ideal",
            "memcpy",
            "x memcpy",
            "errors"
        );
        // Each size's ideal ring, then its cases, as they ran.
        let mut rows: Vec<&throughput::CaseResult> = Vec::new();
        for ideal in &r.ideal {
            rows.push(ideal);
            rows.extend(r.throughput.iter().filter(|c| c.size == ideal.size));
        }
        rows.extend(
            r.throughput
                .iter()
                .filter(|c| !r.ideal.iter().any(|i| i.size == c.size)),
        );
        for c in rows {
            println!(
                "{:<14} {:>8} {:>6} {:>10} {:>7.2} {:>10} {:>7} {:>7} {:>8} {:>6}",
                c.path,
                human_size(c.size),
                c.capacity,
                human_rate(c.frames_per_s),
                c.gb_per_s,
                c.ideal_frames_per_s.map_or("-".into(), human_rate),
                opt(c.ratio_to_ideal, 2),
                opt(c.memcpy_gb_per_s, 1),
                opt(c.ratio_to_memcpy, 3),
                c.errors.len(),
            );
        }
        println!();
    }
    if !r.fan.is_empty() {
        println!(
            "{:<14} {:>8} {:>6} {:>10} {:>7} {:>7} {:>7} {:>6}",
            "fan", "size", "slots", "frames/s", "GB/s", "x ideal", "x 1->1", "errors"
        );
        for c in &r.fan {
            println!(
                "{:<14} {:>8} {:>6} {:>10} {:>7.2} {:>7} {:>7} {:>6}",
                c.path,
                human_size(c.size),
                c.capacity,
                human_rate(c.frames_per_s),
                c.gb_per_s,
                opt(c.ratio_to_ideal, 2),
                opt(c.ratio_to_single, 2),
                c.errors.len(),
            );
        }
        println!();
    }
    let mut latency: Vec<(String, &latency::LatencyResult)> = Vec::new();
    if let Some(c) = &r.cache_line_ping_pong {
        latency.push(("cache-line ping-pong".into(), c));
    }
    if let Some(c) = &r.ideal_ring_ping_pong {
        latency.push(("ideal-ring ping-pong".into(), c));
    }
    if let Some(c) = &r.futex_ping_pong {
        latency.push(("futex ping-pong".into(), c));
    }
    for c in &r.latency {
        latency.push((format!("64 B {}", c.wait), c));
    }
    if !latency.is_empty() {
        println!(
            "{:<22} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10}",
            "one-way latency (ns)", "p50", "p99", "p999", "max", "x bare", "x ring", "samples"
        );
        for (name, c) in latency {
            let ns = &c.one_way_ns;
            println!(
                "{:<22} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10}",
                name,
                ns.p50,
                ns.p99,
                ns.p999,
                ns.max,
                opt(c.ratio_to_baseline, 2),
                opt(c.ratio_to_ideal_ring, 2),
                c.samples
            );
        }
        println!();
    }
    if let Some(n) = &r.neighbour {
        print_neighbour(n);
    }
    if !r.errors.is_empty() {
        println!("ERRORS");
        for e in &r.errors {
            println!("  {e}");
        }
    }
}

/// The table of `--runs`: per case its median figure and median ratio, and each run's ratio.
fn print_medians(m: &Medians) {
    println!(
        "medians of {} runs       {:>6} {:>10} {:>12} {:>9} {:>11}  ratio in each run",
        m.runs, "size", "wait", "median", "ratio", "to"
    );
    for row in &m.rows {
        let figure = if row.figure == "frames/s" {
            format!("{}/s", human_rate(row.median))
        } else {
            format!("{:.0} ns", row.median)
        };
        // The `to` column tells a stream case's two latency rows apart; neighbour rows say so.
        let case = if row.section.starts_with("neighbour") {
            format!("neighbour {}", row.case)
        } else {
            row.case.clone()
        };
        let ratios: Vec<String> = row
            .ratios_per_run
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect();
        println!(
            "{:<24} {:>6} {:>10} {:>12} {:>9} {:>11}  {}",
            case,
            human_size(row.size),
            row.wait,
            figure,
            row.median_ratio.map_or("-".into(), |x| format!("{x:.2}")),
            row.ratio_to.unwrap_or("-"),
            ratios.join(" ")
        );
    }
    println!();
}

/// The neighbour section of the table: each case quiet, with the neighbour, and the ratio.
fn print_neighbour(n: &neighbour::NeighbourReport) {
    println!(
        "{:<22} {:>6} {:>10} {:>10} {:>10} {:>8} {:>7} {:>6}",
        "with a neighbour", "size", "wait", "quiet", "neighbour", "x quiet", "its CPU", "errors"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    for c in &n.throughput {
        println!(
            "{:<22} {:>6} {:>10} {:>10} {:>10} {:>8} {:>7.2} {:>6}",
            format!("{} (frames/s)", c.path),
            human_size(c.size),
            c.wait,
            human_rate(c.quiet_frames_per_s),
            human_rate(c.frames_per_s),
            opt(c.ratio_to_quiet),
            c.neighbour_cores,
            c.quiet.errors.len() + c.loaded.errors.len(),
        );
    }
    for c in &n.latency {
        println!(
            "{:<22} {:>6} {:>10} {:>10} {:>10} {:>8} {:>7.2} {:>6}",
            "latency p50 (ns)",
            human_size(c.size),
            c.wait,
            c.quiet_p50_ns,
            c.p50_ns,
            opt(c.ratio_to_quiet),
            c.neighbour_cores,
            c.quiet.errors.len() + c.loaded.errors.len(),
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
