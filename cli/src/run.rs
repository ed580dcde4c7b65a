//! `shmline run`: runs a pipeline manifest with a live progress line and a summary.

mod task_output;

use crate::display;
use crate::output::{JsonFormat, SCHEMA_VERSION};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use shmline::pipeline::{
    InterruptGuard, Outcome, Pipeline, PipelineRun, Registry, RunReport, TaskExit, TaskState,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use task_output::TaskOutput;

/// Run a pipeline manifest (TOML) to its end, with live progress and a summary.
///
/// Starts every task, releases them together once all have joined, shows frames/s per stream,
/// ends a stream when its writer exits, stops everything on the first failure or Ctrl-C, and
/// prints per stream frames, bytes and throughput and per task exit status and CPU time.
///
/// What a task prints (unless its manifest entry sends it to a file) comes out on shmline's own
/// stdout and stderr, each line prefixed with the task's name (`sink   | ...`). On a terminal
/// the live progress line stays below that output, on a line of its own; when stderr is not a
/// terminal there is no progress line.
///
/// Exit status: 0 when every task exited with status 0; 1 when a task failed, could not start or
/// never joined; 2 when the manifest is invalid; 128 + N when signal N (Ctrl-C: SIGINT) stopped
/// the run. Every shared-memory segment of the pipeline is removed before it exits.
#[derive(clap::Args)]
#[command(after_help = "Example manifest:

  [pipeline]
  name = \"demo\"

  [streams.samples]
  dtype = \"<f4\"
  shape = [1024]

  [tasks.source]
  command = \"./source\"
  writes = { out = \"samples\" }

  [tasks.sink]
  command = \"python3\"
  args = [\"sink.py\"]
  reads = { input = \"samples\" }")]
pub struct RunArgs {
    /// The pipeline manifest (TOML).
    pub manifest: PathBuf,
    /// Run under this pipeline name instead of the manifest's (to run two copies at once).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds between SIGTERM and SIGKILL when stopping tasks (overrides the manifest).
    #[arg(long, value_name = "SECONDS")]
    pub stop_grace: Option<f64>,
    /// Seconds every task may take to join (overrides the manifest).
    #[arg(long, value_name = "SECONDS")]
    pub join_timeout: Option<f64>,
    /// No progress line (the summary is still printed).
    #[arg(long, short)]
    pub quiet: bool,
    /// With --json: the summary as JSON on stdout instead of a table on stderr.
    #[command(flatten)]
    pub format: JsonFormat,
}

/// How often the progress line is redrawn on a terminal.
const REDRAW: Duration = Duration::from_millis(500);

pub fn run(args: &RunArgs) -> ExitCode {
    let mut pipeline = match load(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("shmline run: {e}");
            return ExitCode::from(2);
        }
    };
    // The live progress line, on stderr when it is a terminal (hidden otherwise, and with
    // --quiet): task output and messages are printed above it, never on its line.
    let bar = if args.quiet || !display::stderr_is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{wide_msg}").expect("a valid template"));
        bar
    };
    let output = match TaskOutput::capture(&mut pipeline, &bar) {
        Ok(output) => output,
        Err(e) => {
            eprintln!("shmline run: cannot make pipes for the tasks' output: {e}");
            return ExitCode::from(1);
        }
    };
    let guard = match InterruptGuard::install() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("shmline run: {e}");
            return ExitCode::from(1);
        }
    };
    let mut run = match pipeline.start() {
        Ok(run) => run,
        Err(e) => {
            eprintln!("shmline run: {e}");
            return ExitCode::from(1);
        }
    };
    let registry = Registry::open(&pipeline.name).ok();
    let mut progress = Progress::new(&run);
    let mut stopping = false;
    while !run.wait_timeout(Duration::from_millis(50)) {
        if let Some(sig) = guard.caught() {
            run.interrupt(sig);
            if !stopping {
                stopping = true;
                bar.finish_and_clear();
                eprintln!("shmline run: stopping pipeline {:?}", pipeline.name);
            }
        }
        if !stopping && !bar.is_hidden() && progress.due(REDRAW) {
            bar.set_message(progress.line(&run, registry.as_ref()));
        }
    }
    bar.finish_and_clear();
    let report = run.wait();
    // Every task has ended: print the last of their output before the summary.
    output.finish();
    if args.format.json {
        args.format.print(&json(&report));
    } else {
        eprint!("{}", summary(&report));
    }
    match &report.outcome {
        Outcome::Finished | Outcome::Stopped { signal: None } => ExitCode::SUCCESS,
        Outcome::Failed(message) => {
            eprintln!("shmline run: {message}");
            ExitCode::from(1)
        }
        Outcome::Stopped { signal: Some(sig) } => ExitCode::from((128 + sig).min(255) as u8),
    }
}

fn load(args: &RunArgs) -> shmline::Result<Pipeline> {
    let mut pipeline = Pipeline::load(&args.manifest)?;
    if let Some(name) = &args.name {
        pipeline.name = name.clone();
    }
    let seconds = |what: &str, s: f64| {
        Duration::try_from_secs_f64(s).map_err(|_| {
            shmline::Error::InvalidArgument(format!("--{what} {s}: give a number of seconds"))
        })
    };
    if let Some(s) = args.stop_grace {
        pipeline.stop_grace = seconds("stop-grace", s)?;
    }
    if let Some(s) = args.join_timeout {
        pipeline.join_timeout = seconds("join-timeout", s)?;
    }
    pipeline.validate()?;
    Ok(pipeline)
}

/// Frames per second of every stream between two redraws.
struct Progress {
    started: Instant,
    last: Instant,
    frames: Vec<u64>,
}

impl Progress {
    fn new(run: &PipelineRun) -> Progress {
        let now = Instant::now();
        Progress {
            started: now,
            // Due at once.
            last: now.checked_sub(REDRAW).unwrap_or(now),
            frames: run.streams().iter().map(|_| 0).collect(),
        }
    }

    fn due(&self, every: Duration) -> bool {
        self.last.elapsed() >= every
    }

    fn line(&mut self, run: &PipelineRun, registry: Option<&Registry>) -> String {
        let dt = self.last.elapsed().as_secs_f64().max(1e-3);
        self.last = Instant::now();
        let mut line = format!("{} ", run.name());
        if let Some(registry) = registry {
            let states: Vec<TaskState> = (0..registry.info().tasks.len())
                .filter_map(|i| registry.task_status(i).ok().map(|s| s.state))
                .collect();
            let count = |s: TaskState| states.iter().filter(|&&x| x == s).count();
            let state = registry.state().map_or("?", |s| s.name());
            line.push_str(&format!(
                "{state}: {} joined, {} exited of {} tasks",
                count(TaskState::Joined),
                count(TaskState::Exited),
                states.len()
            ));
        }
        line.push_str(&format!(", {}", display::seconds(self.started.elapsed())));
        for ((name, stream), last) in run.streams().iter().zip(&mut self.frames) {
            let frames = stream.stats().frames_written;
            let rate = frames.saturating_sub(*last) as f64 / dt;
            *last = frames;
            line.push_str(&format!(" | {name} {}f/s", display::si(rate)));
        }
        line
    }
}

fn summary(report: &RunReport) -> String {
    let how = match &report.outcome {
        Outcome::Finished => "finished".to_string(),
        Outcome::Failed(_) => "failed".to_string(),
        Outcome::Stopped { signal: Some(sig) } => format!("was stopped by signal {sig}"),
        Outcome::Stopped { signal: None } => "was stopped".to_string(),
    };
    let mut out = format!(
        "pipeline {:?} {how} after {} ({} running)\n",
        report.name,
        display::seconds(report.duration),
        display::seconds(report.running)
    );
    let secs = report.running.as_secs_f64().max(1e-9);
    let mut rows = vec![vec![
        "  stream".into(),
        "frames".into(),
        "bytes".into(),
        "frames/s".into(),
        "GB/s".into(),
        "writer waited".into(),
    ]];
    for s in &report.streams {
        rows.push(vec![
            format!("  {}", s.name),
            s.frames.to_string(),
            display::bytes(s.bytes),
            display::si(s.frames as f64 / secs),
            format!("{:.3}", s.bytes as f64 / secs / 1e9),
            format!(
                "{} times, {}",
                s.writer_waits,
                display::seconds(s.writer_wait)
            ),
        ]);
    }
    if !report.streams.is_empty() {
        out.push_str(&display::table(&rows));
    }
    let mut rows = vec![vec![
        "  task".into(),
        "pid".into(),
        "cpu".into(),
        "ended".into(),
    ]];
    for t in &report.tasks {
        let ended = match (t.exit, t.stopped) {
            (None, _) => "not started".to_string(),
            (Some(exit), true) => format!("stopped: {exit}"),
            (Some(exit), false) => exit.to_string(),
        };
        rows.push(vec![
            format!("  {}", t.name),
            t.pid.map_or("-".into(), |p| p.to_string()),
            display::seconds(t.cpu),
            ended,
        ]);
    }
    out.push_str(&display::table(&rows));
    out
}

/// What `run --json` prints when the pipeline is over.
#[derive(Serialize)]
struct RunJson {
    schema_version: u32,
    pipeline: String,
    /// finished, failed or stopped.
    outcome: &'static str,
    /// Why it failed.
    message: Option<String>,
    /// The signal that stopped it.
    signal: Option<i32>,
    duration_s: f64,
    running_s: f64,
    streams: Vec<StreamJson>,
    tasks: Vec<TaskJson>,
}

/// A stream's totals over the run.
#[derive(Serialize)]
struct StreamJson {
    name: String,
    frames: u64,
    bytes: u64,
    writer_waits: u64,
    writer_wait_s: f64,
}

/// How a task ended.
#[derive(Serialize)]
struct TaskJson {
    name: String,
    pid: Option<u32>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    started: bool,
    stopped: bool,
    cpu_s: f64,
}

fn json(report: &RunReport) -> RunJson {
    let (outcome, message, signal) = match &report.outcome {
        Outcome::Finished => ("finished", None, None),
        Outcome::Failed(m) => ("failed", Some(m.clone()), None),
        Outcome::Stopped { signal } => ("stopped", None, *signal),
    };
    RunJson {
        schema_version: SCHEMA_VERSION,
        pipeline: report.name.clone(),
        outcome,
        message,
        signal,
        duration_s: report.duration.as_secs_f64(),
        running_s: report.running.as_secs_f64(),
        streams: report
            .streams
            .iter()
            .map(|s| StreamJson {
                name: s.name.clone(),
                frames: s.frames,
                bytes: s.bytes,
                writer_waits: s.writer_waits,
                writer_wait_s: s.writer_wait.as_secs_f64(),
            })
            .collect(),
        tasks: report
            .tasks
            .iter()
            .map(|t| TaskJson {
                name: t.name.clone(),
                pid: t.pid,
                exit_code: match t.exit {
                    Some(TaskExit::Code(c)) => Some(c),
                    _ => None,
                },
                signal: match t.exit {
                    Some(TaskExit::Signal(s)) => Some(s),
                    _ => None,
                },
                started: t.exit.is_some(),
                stopped: t.stopped,
                cpu_s: t.cpu.as_secs_f64(),
            })
            .collect(),
    }
}
