//! The runner: creates a pipeline's registry, streams and events, starts its tasks, releases them
//! together once all have joined, watches them, and removes everything at the end.
//!
//! - A task that exits with status 0 ends the streams it writes (if it did not close them
//!   itself), so the tasks downstream drain them and finish: a pipeline ends by itself. A stream
//!   written by several tasks ends when the last of them is done.
//! - The first failure (a non-zero exit, a signal, a command that cannot start, a task that never
//!   joins) stops the pipeline: the stop event is set, every task's process group gets SIGTERM,
//!   and SIGKILL after the grace period. The report names the task and how it ended, followed by
//!   the task's own note if it left one (a task that stopped on the end of one input while
//!   another still had frames: [`super::Task::check_inputs_ended`]).
//! - [`PipelineRun::stop`] (and SIGINT, SIGTERM or SIGHUP during [`Pipeline::run`]) stops it the
//!   same way.
//! - Every segment is removed at the end, whatever happened.

use super::child::{self, Child};
use super::recovery::Cleanup;
use super::registry::Registry;
use super::signals::InterruptGuard;
use super::spec::Pipeline;
use super::status::{signal_name, PipelineState, TaskExit, TaskState};
use super::validate::{self, Plan};
use super::{segment_name, STOP_EVENT};
use crate::error::{Error, Result};
use crate::event::{Event, EventOptions};
use crate::ring::Stream;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the runner looks at its tasks (exits, joins, stop requests).
const POLL: Duration = Duration::from_millis(10);

/// Value of the stop flag when [`PipelineRun::stop`] was called (signals are positive).
const STOP_REQUESTED: i32 = -1;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every task exited with status 0.
    Finished,
    /// A task failed, could not start or never joined; the message names it and says how.
    Failed(String),
    /// Stopped on request: by [`PipelineRun::stop`] (`signal: None`) or by a signal to the runner.
    Stopped {
        /// The signal that asked for the stop, if one did.
        signal: Option<i32>,
    },
}

/// What a stream carried during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    /// Stream name within the pipeline.
    pub name: String,
    /// Frames written.
    pub frames: u64,
    /// Payload bytes written.
    pub bytes: u64,
    /// Times the writer found the ring full and waited.
    pub writer_waits: u64,
    /// Total time the writer spent waiting for space.
    pub writer_wait: Duration,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    /// Task name.
    pub name: String,
    /// Pid of the process the runner started, if it started.
    pub pid: Option<u32>,
    /// How the process ended; `None` if it never started.
    pub exit: Option<TaskExit>,
    /// CPU time (user + system) of the process and its waited-for children.
    pub cpu: Duration,
    /// True if the runner asked it to stop (so its exit status is not a failure of its own).
    pub stopped: bool,
}

/// The summary of a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Pipeline name.
    pub name: String,
    /// How the run ended.
    pub outcome: Outcome,
    /// Wall time from start to end.
    pub duration: Duration,
    /// Wall time from the moment every task had joined to the end (zero if that never happened).
    pub running: Duration,
    /// Every stream, in declaration order.
    pub streams: Vec<StreamReport>,
    /// Every task, in declaration order.
    pub tasks: Vec<TaskReport>,
}

impl RunReport {
    /// `Ok` if the run finished or was stopped by [`PipelineRun::stop`]; otherwise
    /// [`Error::PipelineFailed`] naming the failed task and its exit status or signal, or the
    /// signal that stopped the run.
    pub fn into_result(self) -> Result<RunReport> {
        match &self.outcome {
            Outcome::Finished | Outcome::Stopped { signal: None } => Ok(self),
            Outcome::Failed(message) => Err(Error::PipelineFailed(message.clone())),
            Outcome::Stopped { signal: Some(sig) } => Err(Error::PipelineFailed(format!(
                "pipeline {:?} was stopped by {}",
                self.name,
                signal_name(*sig).unwrap_or("a signal")
            ))),
        }
    }
}

/// A pipeline started by [`Pipeline::start`]. Dropping it stops the pipeline and waits for the
/// cleanup.
pub struct PipelineRun {
    name: String,
    stop: Arc<AtomicI32>,
    streams: Vec<(String, Stream)>,
    done: mpsc::Receiver<RunReport>,
    report: Option<RunReport>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PipelineRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineRun")
            .field("name", &self.name)
            .finish()
    }
}

impl Pipeline {
    /// Runs the pipeline to its end: validates it, creates its segments, starts every task,
    /// and waits. SIGINT (Ctrl-C), SIGTERM and SIGHUP (terminal closed) stop it cleanly while it
    /// runs.
    ///
    /// Returns the report if every task exited with status 0, and
    /// [`Error::PipelineFailed`] naming the task and its exit status or signal otherwise (or the
    /// signal that stopped the run). Every segment is removed before it returns.
    pub fn run(&self) -> Result<RunReport> {
        self.run_to_end()?.into_result()
    }

    /// Like [`Pipeline::run`], but returns the report however the run ended (finished, failed
    /// or stopped): the error cases are only those of [`Pipeline::start`].
    pub fn run_to_end(&self) -> Result<RunReport> {
        let guard = InterruptGuard::install()?;
        let mut run = self.start()?;
        while !run.wait_timeout(Duration::from_millis(50)) {
            if let Some(sig) = guard.caught() {
                run.interrupt(sig);
            }
        }
        Ok(run.wait())
    }

    /// Starts the pipeline and returns at once; [`PipelineRun::wait`] waits for its end.
    ///
    /// Fails if the declaration is invalid, if a live runner already runs a pipeline of this
    /// name ([`Error::AlreadyExists`]), or if a segment cannot be created. Segments left by a
    /// dead runner of the same name are removed first. Once started, failures of tasks
    /// (including commands that cannot start) are reported by the [`RunReport`].
    pub fn start(&self) -> Result<PipelineRun> {
        let plan = validate::check(self)?;
        recover(&self.name)?;
        let cannot_start = |e: Error| match e {
            Error::AlreadyExists(m) => {
                Error::AlreadyExists(format!("pipeline {:?} cannot start: {m}", self.name))
            }
            e => e,
        };
        // Streams and events first, the registry last: a task or monitor that can open the
        // registry can open everything it lists.
        let mut segments = Segments {
            registry: None,
            streams: Vec::new(),
            events: Vec::new(),
            stop: None,
        };
        for s in &plan.streams {
            let name = segment_name(&self.name, &s.name);
            let stream = create_fresh(
                &name,
                || Stream::create(&name, &s.options),
                |n| Stream::open(n).map(|s| s.info().creator),
                Stream::unlink,
            )
            .map_err(cannot_start)?;
            segments.streams.push((s.name.clone(), stream));
        }
        let create_event = |event: &str, mode| {
            let name = segment_name(&self.name, event);
            let options = EventOptions {
                mode,
                ..Default::default()
            };
            create_fresh(
                &name,
                || Event::create(&name, &options),
                |n| Event::open(n).map(|e| e.creator()),
                Event::unlink,
            )
            .map_err(cannot_start)
        };
        for (event, mode) in &plan.events {
            segments.events.push(create_event(event, *mode)?);
        }
        segments.stop = Some(create_event(STOP_EVENT, crate::EventMode::Flag)?);
        segments.registry = Some(Registry::create(self, &plan)?);
        let stop = Arc::new(AtomicI32::new(0));
        let (tx, done) = mpsc::channel();
        let streams = segments.streams.clone();
        let supervisor = Supervisor {
            pipeline: self.clone(),
            plan,
            segments,
            stop: Arc::clone(&stop),
            started: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("shmline-run-{}", self.name))
            .spawn(move || {
                let report = supervisor.run();
                let _ = tx.send(report);
            })
            .map_err(|e| Error::os("starting the runner thread", e))?;
        Ok(PipelineRun {
            name: self.name.clone(),
            stop,
            streams,
            done,
            report: None,
            thread: Some(thread),
        })
    }
}

impl PipelineRun {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pipeline's streams (name within the pipeline, and a handle for statistics).
    pub fn streams(&self) -> &[(String, Stream)] {
        &self.streams
    }

    /// Asks the pipeline to stop: the stop event, then SIGTERM, then SIGKILL after the grace
    /// period. Returns at once; [`PipelineRun::wait`] waits for the end.
    pub fn stop(&self) {
        // Relaxed: a flag polled by the runner thread; keeps an earlier signal number.
        let _ = self
            .stop
            .compare_exchange(0, STOP_REQUESTED, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Like [`PipelineRun::stop`], recording that `signal` asked for it (the report's outcome
    /// names it).
    pub fn interrupt(&self, signal: i32) {
        // Relaxed: as in `stop`.
        let _ = self
            .stop
            .compare_exchange(0, signal, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Waits up to `timeout` for the run to end; true once it has ended (then
    /// [`PipelineRun::wait`] returns at once).
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        if self.report.is_none() {
            self.report = match self.done.recv_timeout(timeout) {
                Ok(report) => Some(report),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(self.panicked()),
            };
        }
        self.report.is_some()
    }

    /// The report, once [`PipelineRun::wait_timeout`] has returned true.
    pub fn report(&self) -> Option<&RunReport> {
        self.report.as_ref()
    }

    /// Waits for the run to end (every task reaped, every segment removed) and returns its report.
    pub fn wait(mut self) -> RunReport {
        self.finish()
    }

    fn finish(&mut self) -> RunReport {
        let report = match self.report.take() {
            Some(report) => report,
            None => self.done.recv().unwrap_or_else(|_| self.panicked()),
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        report
    }
}

impl PipelineRun {
    /// The report of a runner thread that died without sending one (a bug in shmline).
    fn panicked(&self) -> RunReport {
        RunReport {
            name: self.name.clone(),
            outcome: Outcome::Failed(format!(
                "the runner thread of pipeline {:?} panicked (a bug in shmline: please report it)",
                self.name
            )),
            duration: Duration::ZERO,
            running: Duration::ZERO,
            streams: Vec::new(),
            tasks: Vec::new(),
        }
    }
}

impl Drop for PipelineRun {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
            self.finish();
        }
    }
}

/// Removes what a dead runner of pipeline `name` left; refuses if a live runner has it.
fn recover(name: &str) -> Result<()> {
    match Registry::remove_if_dead(name) {
        Ok(Cleanup::Alive(runner)) => Err(Error::AlreadyExists(format!(
            "pipeline {name:?} is already running (runner pid {}); choose another name or stop \
             it first",
            runner.pid
        ))),
        Ok(Cleanup::Dead(_)) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn remove_quietly(result: Result<()>) {
    // An error here is NotFound (somebody removed it first, which is what we wanted) or a
    // permission problem that the next create reports with the segment's name.
    let _ = result;
}

/// Creates a segment, first removing a stale one of the same name whose creator is dead.
fn create_fresh<T>(
    name: &str,
    create: impl Fn() -> Result<T>,
    creator: impl Fn(&str) -> Result<crate::liveness::ProcessId>,
    unlink: impl Fn(&str) -> Result<()>,
) -> Result<T> {
    match create() {
        Err(Error::AlreadyExists(m)) => match creator(name) {
            Ok(owner) if owner.is_alive() => Err(Error::AlreadyExists(format!(
                "{m}; it belongs to live process {}",
                owner.pid
            ))),
            _ => {
                remove_quietly(unlink(name));
                create()
            }
        },
        other => other,
    }
}

/// Every segment of a run, removed when dropped (whatever path the run took).
struct Segments {
    /// Created last, removed first (it unlinks itself when dropped).
    registry: Option<Registry>,
    streams: Vec<(String, Stream)>,
    events: Vec<Event>,
    /// The pipeline's stop event.
    stop: Option<Event>,
}

impl Drop for Segments {
    fn drop(&mut self) {
        self.registry.take();
        for (_, stream) in &self.streams {
            remove_quietly(Stream::unlink(stream.name()));
        }
        for event in self.events.iter().chain(&self.stop) {
            remove_quietly(Event::unlink(event.name()));
        }
    }
}

/// The runner thread's state.
struct Supervisor {
    pipeline: Pipeline,
    plan: Plan,
    segments: Segments,
    stop: Arc<AtomicI32>,
    started: Instant,
}

/// What the supervisor knows about one task.
#[derive(Default)]
struct Tracked {
    child: Option<Child>,
    exit: Option<(TaskExit, Duration)>,
    /// Done with: exited or never started.
    over: bool,
    /// Still running when the runner began stopping the pipeline.
    asked_to_stop: bool,
}

impl Supervisor {
    fn registry(&self) -> &Registry {
        self.segments.registry.as_ref().expect("held until the end")
    }

    fn run(self) -> RunReport {
        let n = self.pipeline.tasks.len();
        let mut tasks: Vec<Tracked> = (0..n).map(|_| Tracked::default()).collect();
        let mut failure: Option<String> = None;
        let mut stop_signal: Option<i32> = None;
        let mut stopping: Option<Instant> = None;
        let mut killed = false;
        let mut running_since: Option<Instant> = None;

        for (i, spec) in self.pipeline.tasks.iter().enumerate() {
            match child::spawn(spec, &self.pipeline.name) {
                Ok(c) => {
                    self.registry().task_started(i, c.process);
                    tasks[i].child = Some(c);
                }
                Err(message) => {
                    self.registry().task_not_started(i);
                    self.registry().set_failed_task(i);
                    tasks[i].over = true;
                    failure = Some(message);
                    break;
                }
            }
        }
        // Tasks after a failed start are never started.
        for t in tasks.iter_mut().filter(|t| t.child.is_none()) {
            t.over = true;
        }

        let join_deadline = Instant::now() + self.pipeline.join_timeout;
        loop {
            // A stop request is looked at before exits, so tasks dying of the same Ctrl-C are
            // counted as stopped rather than failed.
            // Relaxed: a flag; see `PipelineRun::stop`.
            let flag = self.stop.load(Ordering::Relaxed);
            if flag != 0 && stopping.is_none() && failure.is_none() {
                stop_signal = (flag > 0).then_some(flag);
                stopping = Some(self.begin_stop(&mut tasks));
            }
            let running = running_since.is_some();
            for i in 0..tasks.len() {
                let Some(child) = &tasks[i].child else {
                    continue;
                };
                // Close a successful writer's streams while it is still a zombie, so its readers
                // never take it for dead; only then reap it.
                match child.exited() {
                    None => continue,
                    Some(exit) if exit.success() => {
                        self.close_streams_of(i, Some(child.process.pid), &tasks, running)
                    }
                    Some(_) => {}
                }
                let Some((exit, cpu)) = child.try_wait() else {
                    continue;
                };
                self.registry().task_exited(i, exit, cpu);
                let t = &mut tasks[i];
                t.exit = Some((exit, cpu));
                t.child = None;
                t.over = true;
                if exit.success() {
                    // Already closed above, unless somebody else reaped the task first.
                    self.close_streams_of(i, None, &tasks, running);
                } else if stopping.is_none() && failure.is_none() {
                    self.registry().set_failed_task(i);
                    // What the task said before exiting (why it failed), if anything.
                    let note = self
                        .registry()
                        .task_note(i)
                        .map_or(String::new(), |note| format!(": {note}"));
                    failure = Some(format!(
                        "task {:?} of pipeline {:?} failed: {exit}{note}",
                        self.pipeline.tasks[i].name, self.pipeline.name
                    ));
                }
            }
            if failure.is_some() && stopping.is_none() {
                stopping = Some(self.begin_stop(&mut tasks));
            }
            if tasks.iter().all(|t| t.over) {
                break;
            }
            match stopping {
                Some(since) if !killed && since.elapsed() >= self.pipeline.stop_grace => {
                    for child in tasks.iter().filter_map(|t| t.child.as_ref()) {
                        child.signal(libc::SIGKILL);
                    }
                    killed = true;
                }
                Some(_) => {}
                None if running_since.is_none() => {
                    if self.all_joined(&tasks) {
                        self.registry().set_state(PipelineState::Running);
                        running_since = Some(Instant::now());
                    } else if Instant::now() >= join_deadline {
                        failure = Some(self.never_joined(&tasks));
                        stopping = Some(self.begin_stop(&mut tasks));
                    }
                }
                None => {}
            }
            std::thread::sleep(POLL);
        }

        let outcome = match (failure, stopping) {
            (Some(message), _) => Outcome::Failed(message),
            (None, Some(_)) => Outcome::Stopped {
                signal: stop_signal,
            },
            (None, None) => Outcome::Finished,
        };
        self.registry().set_state(match outcome {
            Outcome::Finished => PipelineState::Finished,
            Outcome::Failed(_) => PipelineState::Failed,
            Outcome::Stopped { .. } => PipelineState::Stopped,
        });
        let report = RunReport {
            name: self.pipeline.name.clone(),
            duration: self.started.elapsed(),
            running: running_since.map_or(Duration::ZERO, |t| t.elapsed()),
            streams: self
                .segments
                .streams
                .iter()
                .map(|(name, stream)| {
                    let stats = stream.stats();
                    StreamReport {
                        name: name.clone(),
                        frames: stats.frames_written,
                        bytes: stats.bytes_written,
                        writer_waits: stats.writer_waits,
                        writer_wait: Duration::from_nanos(stats.writer_wait_ns),
                    }
                })
                .collect(),
            tasks: self
                .pipeline
                .tasks
                .iter()
                .zip(&tasks)
                .enumerate()
                .map(|(i, (spec, t))| {
                    let status = self.registry().task_status(i).ok();
                    TaskReport {
                        name: spec.name.clone(),
                        pid: status.and_then(|s| s.process).map(|p| p.pid),
                        exit: t.exit.map(|(e, _)| e),
                        cpu: t.exit.map_or(Duration::ZERO, |(_, cpu)| cpu),
                        stopped: t.asked_to_stop,
                    }
                })
                .collect(),
            outcome,
        };
        // Dropping `self` removes every segment.
        report
    }

    /// Sets the stop event and sends SIGTERM to every live task; returns when that happened.
    fn begin_stop(&self, tasks: &mut [Tracked]) -> Instant {
        self.registry().set_state(PipelineState::Stopping);
        if let Some(stop) = &self.segments.stop {
            stop.set();
        }
        for t in tasks.iter_mut() {
            if let Some(child) = &t.child {
                child.signal(libc::SIGTERM);
                t.asked_to_stop = true;
            }
        }
        Instant::now()
    }

    /// True once every task has joined, or exited with status 0 without needing to.
    fn all_joined(&self, tasks: &[Tracked]) -> bool {
        tasks.iter().enumerate().all(|(i, t)| {
            if t.over {
                return t.exit.is_some_and(|(e, _)| e.success());
            }
            matches!(
                self.registry().task_status(i).map(|s| s.state),
                Ok(TaskState::Joined)
            )
        })
    }

    fn never_joined(&self, tasks: &[Tracked]) -> String {
        let missing: Vec<String> = tasks
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                !t.over
                    && !matches!(
                        self.registry().task_status(*i).map(|s| s.state),
                        Ok(TaskState::Joined)
                    )
            })
            .map(|(i, t)| {
                let pid = t.child.as_ref().map_or(0, |c| c.process.pid);
                format!("{:?} (pid {pid})", self.pipeline.tasks[i].name)
            })
            .collect();
        format!(
            "pipeline {:?}: task{} {} never joined within {:.1} s (does the program join as a \
             task, e.g. shmline_task_join() or Task::join()?)",
            self.pipeline.name,
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            self.pipeline.join_timeout.as_secs_f64()
        )
    }

    /// Ends the streams task `index` writes, for a writer that exited without closing them.
    /// `exited` is the task's pid when it has exited but is not reaped yet.
    ///
    /// A stream with several writing tasks ends when the last of them is done: the core counts
    /// the writers attached, so closing this task's writer ends the stream only if no other is
    /// attached. That count is complete once the pipeline runs (every task has attached its
    /// writers, or exited without joining); before that (`running` false), a writer task that
    /// has not attached yet would be missed, so the stream is left alone until every other
    /// writing task is over.
    fn close_streams_of(
        &self,
        index: usize,
        exited: Option<u32>,
        tasks: &[Tracked],
        running: bool,
    ) {
        for (planned, (_, stream)) in self.plan.streams.iter().zip(&self.segments.streams) {
            if !planned.writers.contains(&(index as u32)) {
                continue;
            }
            let others_over = planned
                .writers
                .iter()
                .all(|&w| w as usize == index || tasks[w as usize].over);
            if running || others_over {
                stream.close_abandoned_writer(exited);
            }
        }
    }
}
