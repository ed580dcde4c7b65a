//! The neighbour section (`--neighbour`): a few cases run twice, back to back, first on their
//! own and then while a neighbour process keeps one CPU busy, each reported with its figure under
//! the neighbour over its quiet figure. Issue 14 asks that the adaptive default stay within 2x of
//! its quiet figure under such a neighbour, where a busy-spin collapses by 25-80x.
//!
//! The neighbour is a child (`shmline __bench-child --role neighbour`) that spins on register
//! arithmetic (no memory traffic, no system call) until the bench stores a stop word in a shared
//! page, then reports the CPU time it got. It is not pinned: it may run on every CPU the bench
//! was allowed before it pinned itself, so the scheduler places it as it would any other busy
//! process, next to the writer or the reader. It runs at the bench's own priority (a `nice`
//! given to the bench applies to it too). One neighbour is started for each case and stopped as
//! soon as that case ends; if the bench fails, its handle kills and reaps it, and if the bench
//! dies the kernel kills it (`PR_SET_PDEATHSIG`, set by every bench child). It maps no stream:
//! nothing of it is left in `/dev/shm`.

use super::child::{ChildArgs, ChildProcess, Role};
use super::latency::{self, LatencyResult};
use super::shared_map::SharedMap;
use super::throughput::{self, CaseResult, Path};
use super::{human_rate, ideal, progress, Plan, WaitStrategy, SMALL_FRAME};
use serde::Serialize;
use serde_json::{json, Value};
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Offsets in the neighbour's page: "it is spinning", "stop", on lines of their own.
const READY: usize = 0;
const STOP: usize = 128;
const PAGE: usize = 4096;
/// Rounds of arithmetic between two looks at the stop word (a few microseconds).
const SPIN_ROUNDS: u32 = 4096;

/// What the neighbour is, as the report says it.
const WHAT: &str = "one process spinning on register arithmetic (one CPU's worth of work), not \
    pinned, at the bench's priority, started for each case run with it and stopped after it";

/// A running neighbour process; killed and reaped if dropped before [`Neighbour::stop`].
struct Neighbour {
    page: SharedMap,
    child: ChildProcess,
}

impl Neighbour {
    /// Starts the neighbour on every CPU the plan allows and waits until it spins.
    fn start(plan: &Plan) -> Result<Neighbour, String> {
        let page = SharedMap::create(PAGE)?;
        let mut args = ChildArgs::new(Role::Neighbour, None);
        args.cpus = plan.free_cpus.clone();
        args.fd = Some(page.fd());
        let mut child = ChildProcess::spawn(&args)?;
        // Acquire: pairs with the neighbour's Release store of READY (nothing else is shared).
        child.wait_until("the neighbour started", || {
            page.u32(READY).load(Ordering::Acquire) == 1
        })?;
        Ok(Neighbour { page, child })
    }

    /// Stops the neighbour; returns the CPUs' worth of time it got while it ran (1.0: a whole
    /// CPU all along).
    fn stop(self) -> Result<f64, String> {
        // Relaxed: the word carries no data; the neighbour only needs to see it eventually.
        self.page.u32(STOP).store(1, Ordering::Relaxed);
        let out = self.child.finish()?;
        let cpu = out["cpu_seconds"].as_f64().unwrap_or(0.0);
        let wall = out["wall_seconds"].as_f64().unwrap_or(0.0);
        Ok(if wall > 0.0 { cpu / wall } else { 0.0 })
    }
}

/// The child's side: spins until the stop word is set, then reports its CPU and wall time.
pub fn neighbour_side(args: &ChildArgs) -> Result<Value, String> {
    let fd = args.fd.ok_or("--fd is required")?;
    let page = SharedMap::map(fd, PAGE)?;
    let (ready, stop) = (page.u32(READY), page.u32(STOP));
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    // Release: pairs with the bench's Acquire load.
    ready.store(1, Ordering::Release);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    // Relaxed: see `Neighbour::stop`.
    while stop.load(Ordering::Relaxed) == 0 {
        for _ in 0..SPIN_ROUNDS {
            // xorshift64: a dependent chain the compiler cannot fold away (black_box).
            x = black_box(x);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    black_box(x);
    Ok(json!({
        "cpu_seconds": process_cpu_seconds() - cpu_before,
        "wall_seconds": started.elapsed().as_secs_f64(),
    }))
}

/// CPU time this process has used, user and system.
fn process_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock id is a constant the kernel knows.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The neighbour section of the report (`neighbour` in the JSON).
#[derive(Debug, Serialize)]
pub struct NeighbourReport {
    /// What the neighbour is.
    pub what: &'static str,
    /// Whether the neighbour was pinned to a CPU (it never is).
    pub pinned: bool,
    /// CPUs the neighbour could run on.
    pub cpus: Vec<usize>,
    /// Throughput cases at 64 bytes, each without and with the neighbour.
    pub throughput: Vec<ThroughputPair>,
    /// Latency cases at 64 bytes, each without and with the neighbour.
    pub latency: Vec<LatencyPair>,
}

/// One throughput case run quiet and then under the neighbour.
#[derive(Debug, Serialize)]
pub struct ThroughputPair {
    /// "ideal" or "copy".
    pub path: String,
    /// Payload bytes per frame.
    pub size: usize,
    /// Wait strategy of both sides.
    pub wait: &'static str,
    /// Frames/s without the neighbour, measured just before.
    pub quiet_frames_per_s: f64,
    /// Frames/s with the neighbour.
    pub frames_per_s: f64,
    /// `frames_per_s / quiet_frames_per_s`: 1 is unaffected, 0.5 half as fast.
    pub ratio_to_quiet: Option<f64>,
    /// CPUs' worth of time the neighbour got during the case (1.0: a whole CPU).
    pub neighbour_cores: f64,
    /// The whole quiet case.
    pub quiet: CaseResult,
    /// The whole case under the neighbour (its `ratio_to_ideal` is to the ideal ring under the
    /// neighbour).
    pub loaded: CaseResult,
}

/// One latency case run quiet and then under the neighbour.
#[derive(Debug, Serialize)]
pub struct LatencyPair {
    /// Wait strategy of both sides.
    pub wait: &'static str,
    /// Payload bytes per frame.
    pub size: usize,
    /// Median one-way latency without the neighbour, measured just before.
    pub quiet_p50_ns: u64,
    /// Median one-way latency with the neighbour.
    pub p50_ns: u64,
    /// `p50_ns / quiet_p50_ns`: 1 is unaffected, 2 twice as slow.
    pub ratio_to_quiet: Option<f64>,
    /// CPUs' worth of time the neighbour got during the case.
    pub neighbour_cores: f64,
    /// The whole quiet case.
    pub quiet: LatencyResult,
    /// The whole case under the neighbour.
    pub loaded: LatencyResult,
}

/// Runs `case` without, then with a neighbour; `None` (and the reason in `errors`) if either
/// failed.
fn quiet_then_loaded<T>(
    plan: &Plan,
    label: &str,
    errors: &mut Vec<String>,
    case: impl Fn() -> Result<T, String>,
) -> Option<(T, T, f64)> {
    let mut fail = |when: &str, e: String| {
        progress(&format!("{label} {when}: FAILED: {e}"));
        errors.push(format!("{label} {when}: {e}"));
    };
    progress(&format!("{label}: running quiet, then with the neighbour"));
    let quiet = case().map_err(|e| fail("quiet", e)).ok()?;
    let neighbour = Neighbour::start(plan)
        .map_err(|e| fail("starting the neighbour", e))
        .ok()?;
    // On failure the neighbour is dropped here: killed and reaped.
    let loaded = case().map_err(|e| fail("with the neighbour", e)).ok()?;
    let cores = neighbour
        .stop()
        .map_err(|e| fail("stopping the neighbour", e))
        .ok()?;
    Some((quiet, loaded, cores))
}

/// Runs the section: the ideal ring and the copy case at 64 bytes with the plan's wait strategy
/// (and the copy case with busy_spin, for contrast, if that is not the plan's), then the
/// busy_spin and adaptive latency cases; each quiet, then under a neighbour. Verification
/// errors and failures go to `errors`, the children's pinning errors to `pin_errors`.
pub fn run(plan: &Plan, errors: &mut Vec<String>, pin_errors: &mut Vec<String>) -> NeighbourReport {
    let size = SMALL_FRAME;
    let mut report = NeighbourReport {
        what: WHAT,
        pinned: false,
        cpus: plan.free_cpus.clone(),
        throughput: Vec::new(),
        latency: Vec::new(),
    };
    let mut tput_cases: Vec<(Path, WaitStrategy)> = vec![(Path::Copy, plan.wait)];
    if plan.wait != WaitStrategy::BusySpin {
        tput_cases.push((Path::Copy, WaitStrategy::BusySpin));
    }
    // The ideal ring of the plan's wait strategy, pair by pair: the limit under the same load.
    let label = format!("neighbour: ideal {size} B {}", plan.wait.name());
    let ideal = quiet_then_loaded(plan, &label, errors, || ideal::run_case(plan, size));
    let mut ideal_pair = None;
    if let Some((quiet, loaded, cores)) = ideal {
        let pair = throughput_pair(&label, quiet, loaded, cores, errors, pin_errors);
        ideal_pair = Some((pair.quiet_frames_per_s, pair.frames_per_s));
        report.throughput.push(pair);
    }
    for (path, wait) in tput_cases {
        let case_plan = Plan {
            wait,
            ..plan.clone()
        };
        let label = format!("neighbour: {} {size} B {}", path.name(plan), wait.name());
        let run = || throughput::run_case(&case_plan, path, size);
        if let Some((mut quiet, mut loaded, cores)) = quiet_then_loaded(plan, &label, errors, run) {
            // Against the ideal ring only when it waited the same way.
            if let Some((q, l)) = ideal_pair.filter(|_| wait == plan.wait) {
                quiet.compare(Some(q), None);
                loaded.compare(Some(l), None);
            }
            let pair = throughput_pair(&label, quiet, loaded, cores, errors, pin_errors);
            report.throughput.push(pair);
        }
    }
    for wait in [WaitStrategy::BusySpin, WaitStrategy::Adaptive] {
        let label = format!("neighbour: latency {} {size} B", wait.name());
        let run = || latency::run_stream(plan, wait);
        if let Some((quiet, loaded, cores)) = quiet_then_loaded(plan, &label, errors, run) {
            for (when, case) in [("quiet", &quiet), ("with the neighbour", &loaded)] {
                errors.extend(case.errors.iter().map(|e| format!("{label} {when}: {e}")));
            }
            let (q, l) = (quiet.one_way_ns.p50, loaded.one_way_ns.p50);
            let ratio = (q > 0).then(|| l as f64 / q as f64);
            progress(&format!(
                "{label}: one-way p50 {q} ns quiet, {l} ns with the neighbour{} (it got {cores:.2} \
                 CPUs)",
                ratio.map_or(String::new(), |r| format!(", {r:.2}x quiet"))
            ));
            report.latency.push(LatencyPair {
                wait: wait.name(),
                size,
                quiet_p50_ns: q,
                p50_ns: l,
                ratio_to_quiet: ratio,
                neighbour_cores: cores,
                quiet,
                loaded,
            });
        }
    }
    report
}

/// Pairs a quiet and a loaded throughput case, reports it on stderr and collects its errors.
fn throughput_pair(
    label: &str,
    mut quiet: CaseResult,
    mut loaded: CaseResult,
    cores: f64,
    errors: &mut Vec<String>,
    pin_errors: &mut Vec<String>,
) -> ThroughputPair {
    for (when, case) in [("quiet", &mut quiet), ("with the neighbour", &mut loaded)] {
        pin_errors.extend(case.child_pin_error.take());
        errors.extend(case.errors.iter().map(|e| format!("{label} {when}: {e}")));
    }
    let ratio = (quiet.frames_per_s > 0.0).then(|| loaded.frames_per_s / quiet.frames_per_s);
    progress(&format!(
        "{label}: {} frames/s quiet, {} frames/s with the neighbour{} (it got {cores:.2} CPUs)",
        human_rate(quiet.frames_per_s),
        human_rate(loaded.frames_per_s),
        ratio.map_or(String::new(), |r| format!(", {r:.2}x quiet"))
    ));
    ThroughputPair {
        path: quiet.path.clone(),
        size: quiet.size,
        wait: quiet.wait,
        quiet_frames_per_s: quiet.frames_per_s,
        frames_per_s: loaded.frames_per_s,
        ratio_to_quiet: ratio,
        neighbour_cores: cores,
        quiet,
        loaded,
    }
}
