//! Soak: a four-task pipeline (source -> stage1 -> stage2 -> sink, three streams) runs under
//! `shmline run` for `SHMLINE_SOAK_SECS` seconds (default 60) while the test stops and resumes
//! its tasks and its runner at random (SIGSTOP/SIGCONT) and the stages stall themselves now and
//! then. At the end every frame must have arrived intact and in order at every stage, and no
//! process may have leaked memory, file descriptors or mappings, nor the pipeline any segment.
//!
//! The figures are printed at the end. A longer run:
//! `SHMLINE_SOAK_SECS=3600 cargo test --release --test soak -- --ignored --nocapture`.

#[path = "../../tests/support/mod.rs"]
mod support;

use shmline::pipeline::{Pipeline, PipelineState, Registry, StreamSpec, Task, TaskSpec};
use shmline::ProcessId;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

// ---------------------------------------------------------------------------------------------
// Task roles.

/// Resident memory, open file descriptors and shared-memory mappings of this process.
fn usage() -> (u64, usize, usize) {
    let pid = std::process::id();
    (
        rss_bytes(pid).unwrap_or(0),
        fd_count(pid).unwrap_or(0),
        shm_mappings(pid).unwrap_or(0),
    )
}

/// Takes the "start" usage sample once a tenth of the run has passed (rings and buffers are all
/// touched by then), so growth after it is a leak.
struct Sampler {
    joined: Instant,
    warm_up: Duration,
    start: Option<(u64, usize, usize)>,
}

impl Sampler {
    fn new() -> Sampler {
        Sampler {
            joined: Instant::now(),
            warm_up: Duration::from_secs(env_u64("SOAK_SECS", 60)) / 10,
            start: None,
        }
    }

    fn tick(&mut self) {
        if self.start.is_none() && self.joined.elapsed() >= self.warm_up {
            self.start = Some(usage());
        }
    }

    /// The RESULT fields: usage at the start and now.
    fn fields(&self) -> String {
        let end = usage();
        let start = self.start.unwrap_or(end);
        format!(
            "rss_start={} rss_end={} fds_start={} fds_end={} maps_start={} maps_end={}",
            start.0, end.0, start.1, end.1, start.2, end.2
        )
    }
}

fn join() -> Option<Task> {
    std::env::var(shmline::pipeline::ENV_TASK).ok()?;
    Some(Task::join().unwrap())
}

#[test]
#[ignore = "pipeline task: writes frames to `out` for SOAK_SECS seconds"]
fn soak_source() {
    let Some(mut task) = join() else { return };
    let mut rng = Rng::new(env_u64("SOAK_SEED", 0));
    let mut out = task.writer("out").unwrap();
    let run_for = Duration::from_secs(env_u64("SOAK_SECS", 60));
    let mut sampler = Sampler::new();
    while sampler.joined.elapsed() < run_for {
        let upto = out.position() + 64;
        write_frames(&mut out, upto, &mut rng, (None, Duration::ZERO), || false).unwrap();
        sampler.tick();
    }
    let fields = sampler.fields();
    println!("RESULT written={} {fields}", out.position());
}

/// Reads `input` to its end with a reader of kind SOAK_KIND, checking every frame, forwarding it
/// to `out` if the task has one, and stalling itself for up to 20 ms about every 5000 frames.
fn soak_reader(forward: bool) {
    let Some(mut task) = join() else { return };
    let mut rng = Rng::new(env_u64("SOAK_SEED", 0));
    let kind = Kind::parse(&std::env::var("SOAK_KIND").unwrap());
    let mut input = task.reader("input").unwrap();
    let mut out = forward.then(|| task.writer("out").unwrap());
    let max = input.max_frame_size();
    let mut sampler = Sampler::new();
    let reading = read_frames(&mut input, kind, max, None, Duration::ZERO, |data| {
        sampler.tick();
        if rng.below(5000) == 0 {
            std::thread::sleep(rng.duration(Duration::from_millis(20)));
        }
        match &mut out {
            Some(out) => out.write(data),
            None => Ok(()),
        }
    });
    let fields = sampler.fields();
    drop(out);
    report(&reading, &fields);
}

#[test]
#[ignore = "pipeline task: forwards `input` to `out`, checking every frame"]
fn soak_stage() {
    soak_reader(true);
}

#[test]
#[ignore = "pipeline task: reads `input` to its end, checking every frame"]
fn soak_sink() {
    soak_reader(false);
}

// ---------------------------------------------------------------------------------------------
// The test.

const TASKS: [&str; 4] = ["source", "stage1", "stage2", "sink"];

fn soak_pipeline(rng: &mut Rng, name: &str, secs: u64, dir: &Path) -> Pipeline {
    // One frame size for all: a frame's length is a function of its stream's maximum.
    let max = rng.pick(&[256, 4096]);
    let stream = |rng: &mut Rng| {
        StreamSpec::bytes(max)
            .capacity(rng.pick(&[8, 64]))
            .checksum(rng.percent(50))
    };
    let task = |rng: &mut Rng, task: &str, role: &str| {
        let exe = std::env::current_exe().unwrap();
        TaskSpec::command(exe.to_str().unwrap())
            .args(role_args(role))
            .env("SOAK_SECS", secs.to_string())
            .env("SOAK_SEED", rng.next_u64().to_string())
            .env(
                "SOAK_KIND",
                rng.pick(&[Kind::Copy, Kind::Batch, Kind::ZeroCopy]).name(),
            )
            .stdout(dir.join(format!("{task}.log")))
            .stderr(dir.join(format!("{task}.err")))
    };
    Pipeline::new(name)
        .stream("a", stream(rng))
        .stream("b", stream(rng))
        .stream("c", stream(rng))
        .task(
            "source",
            task(rng, "source", "soak_source").writes("out", "a"),
        )
        .task(
            "stage1",
            task(rng, "stage1", "soak_stage")
                .reads("input", "a")
                .writes("out", "b"),
        )
        .task(
            "stage2",
            task(rng, "stage2", "soak_stage")
                .reads("input", "b")
                .writes("out", "c"),
        )
        .task("sink", task(rng, "sink", "soak_sink").reads("input", "c"))
        .join_timeout(PATIENCE)
}

fn task_result(dir: &Path, task: &str) -> HashMap<String, String> {
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{task}.{ext}")));
    result_in(&read("log").unwrap_or_default()).unwrap_or_else(|| {
        panic!(
            "task {task} reported nothing\nstdout:\n{}\nstderr:\n{}",
            read("log").unwrap_or_default(),
            read("err").unwrap_or_default()
        )
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Memory a process may gain between the two samples before it counts as a leak.
const RSS_SLACK: u64 = 16 << 20;

#[test]
#[ignore = "slow (SHMLINE_SOAK_SECS, default 60 s): run by `scripts/test` (suite reliability) or \
            with --ignored"]
fn a_pipeline_stalled_at_random_delivers_every_frame_and_leaks_nothing() {
    let secs = env_u64("SHMLINE_SOAK_SECS", 60);
    let seed = base_seed();
    let mut rng = Rng::new(seed);
    let name = unique("soak");
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("pipeline.toml");
    soak_pipeline(&mut rng, &name, secs, &dir)
        .save(&manifest)
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_shmline"));
    command.args(["run", "--json", "--quiet", manifest.to_str().unwrap()]);
    let runner = Proc::spawn("shmline run", command);
    let runner_pid = runner.pid();

    let mut registry = None;
    wait_until("the pipeline runs", || {
        registry = Registry::open(&name)
            .ok()
            .filter(|r| r.state().ok() == Some(PipelineState::Running));
        registry.is_some()
    });
    let registry = registry.unwrap();
    let tasks: Vec<ProcessId> = (0..TASKS.len())
        .map(|i| {
            let status = registry.task_status(i).unwrap();
            status.joined.or(status.process).unwrap()
        })
        .collect();
    drop(registry);

    // Stall a random process (a task, or now and then the runner) for up to 300 ms, every
    // 0-700 ms, until the pipeline ends by itself.
    let started = Instant::now();
    let (mut stalls, mut stalled) = (0u64, Duration::ZERO);
    let mut runner_start: Option<(u64, usize)> = None;
    let mut runner_end = (0, 0);
    while !process_gone(runner_pid) {
        assert!(
            started.elapsed() < Duration::from_secs(secs) + PATIENCE,
            "the pipeline did not end within {PATIENCE:?} of its {secs} s"
        );
        if let (Some(rss), Some(fds)) = (rss_bytes(runner_pid), fd_count(runner_pid)) {
            if runner_start.is_none() && started.elapsed() >= Duration::from_secs(secs) / 10 {
                runner_start = Some((rss, fds));
            }
            runner_end = (rss, fds);
        }
        // A task still running (same pid and start time: not a recycled pid), or our unreaped
        // child, the runner.
        let pid = if rng.percent(10) {
            Some(runner_pid)
        } else {
            let task = tasks[rng.below(TASKS.len() as u64) as usize];
            (task.is_alive() && !process_gone(task.pid)).then_some(task.pid)
        };
        if let Some(pid) = pid.filter(|&pid| !process_gone(pid)) {
            let stall = rng.duration(Duration::from_millis(300));
            // SAFETY: kill has no memory-safety preconditions; the pid was checked just above.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
            std::thread::sleep(stall);
            // SAFETY: as above.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
            stalls += 1;
            stalled += stall;
        }
        std::thread::sleep(rng.duration(Duration::from_millis(700)));
    }
    let out = runner.wait().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["outcome"], "finished", "{summary}");

    let results: Vec<HashMap<String, String>> =
        TASKS.iter().map(|t| task_result(&dir, t)).collect();
    let frames = field(&results[0], "written");
    assert!(frames > 0);
    for (task, r) in TASKS.iter().zip(&results).skip(1) {
        assert_eq!(r["outcome"], "END_OF_STREAM", "{task}: {r:?}");
        assert_eq!(
            (field(r, "frames"), field(r, "next")),
            (frames, frames),
            "{task}: {r:?}"
        );
        assert_eq!(
            field(r, "lost") + field(r, "duplicated") + field(r, "torn"),
            0,
            "{task}: {r:?}"
        );
    }
    for stream in summary["streams"].as_array().unwrap() {
        assert_eq!(stream["frames"], frames, "{stream}");
    }
    let mut lines = vec![format!(
        "soak {} s (seed {seed:#x}): {frames} frames through 3 streams and 4 tasks, every one \
         verified at each of 3 stages; {stalls} stalls (SIGSTOP) totalling {:.1} s; lost 0, \
         duplicated 0, torn 0",
        started.elapsed().as_secs(),
        stalled.as_secs_f64()
    )];
    for (task, r) in TASKS.iter().zip(&results) {
        let (rss0, rss1) = (field(r, "rss_start"), field(r, "rss_end"));
        let (fds0, fds1) = (field(r, "fds_start"), field(r, "fds_end"));
        let (maps0, maps1) = (field(r, "maps_start"), field(r, "maps_end"));
        lines.push(format!(
            "  {task:<7} rss {:.1} -> {:.1} MiB, fds {fds0} -> {fds1}, shm mappings {maps0} -> \
             {maps1}",
            mib(rss0),
            mib(rss1)
        ));
        assert!(rss1 <= rss0 + RSS_SLACK, "{task} grew: {r:?}");
        assert_eq!(fds1, fds0, "{task} leaked file descriptors: {r:?}");
        assert_eq!(maps1, maps0, "{task} leaked mappings: {r:?}");
    }
    let (rss0, fds0) = runner_start.expect("the runner was sampled");
    let (rss1, fds1) = runner_end;
    lines.push(format!(
        "  runner  rss {:.1} -> {:.1} MiB, fds {fds0} -> {fds1}",
        mib(rss0),
        mib(rss1)
    ));
    assert!(rss1 <= rss0 + RSS_SLACK, "the runner grew");
    assert_eq!(fds1, fds0, "the runner leaked file descriptors");
    let left = segments_of(&name);
    lines.push(format!("  segments left in /dev/shm: {}", left.len()));
    let _ = writeln!(std::io::stderr(), "{}", lines.join("\n"));
    assert_eq!(left, Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}
