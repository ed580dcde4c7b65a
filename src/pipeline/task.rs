//! The task side: a process joins its pipeline by name and gets its readers, writers and events
//! by the parameter names it was declared with.

use super::registry::Registry;
use super::status::PipelineState;
use super::validate::BindingKind;
use super::{segment_name, ENV_PIPELINE, ENV_TASK, STOP_EVENT};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::ring::{Reader, ReaderOptions, Stream, Writer, WriterOptions};
use crate::wait::LIVENESS_SLICE;
use std::time::{Duration, Instant};

/// Extra time a joined task waits for the start barrier beyond the pipeline's join timeout, so
/// that the runner, not the task, reports tasks that never joined.
const BARRIER_MARGIN: Duration = Duration::from_secs(5);

/// A process's membership of a pipeline, as one of its tasks.
///
/// [`Task::join`] attaches a reader for every `reads` parameter (a member of its reader group
/// when the binding names one), a writer for every `writes` parameter and every event, marks the
/// task as joined, and waits until every task of the pipeline has joined. When it returns, every reader of every stream is attached: nothing a
/// writer publishes can be lost. Take the handles with [`Task::reader`], [`Task::writer`] and
/// [`Task::event`]; handles not taken are closed when the `Task` is dropped (a writer closing
/// ends its stream, or, on a stream several tasks write, leaves it to end with the last of them:
/// readers drain it and then see end of stream).
///
/// A task that does not use a reader must still drop it (or take it and drop it), or it holds the
/// stream's writer back once the ring is full.
///
/// ```no_run
/// use shmline::pipeline::Task;
/// let mut task = Task::join()?; // SHMLINE_PIPELINE and SHMLINE_TASK, set by the runner
/// let mut samples = task.reader("samples")?;
/// let mut doubled = task.writer("doubled")?;
/// loop {
///     match samples.read() {
///         Ok(frame) => doubled.write(&frame.data)?,
///         Err(shmline::Error::EndOfStream) => break,
///         Err(e) => return Err(e),
///     }
/// }
/// # Ok::<(), shmline::Error>(())
/// ```
pub struct Task {
    registry: Registry,
    index: usize,
    readers: Vec<(String, Option<Reader>)>,
    writers: Vec<(String, Option<Writer>)>,
    events: Vec<(String, Option<Event>)>,
    stop: Event,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("pipeline", &self.pipeline())
            .field("name", &self.name())
            .finish()
    }
}

impl Task {
    /// Joins the pipeline and task named by the `SHMLINE_PIPELINE` and `SHMLINE_TASK` environment
    /// variables (set by the runner), waiting until every task has joined.
    pub fn join() -> Result<Task> {
        let var = |key: &str| {
            std::env::var(key).map_err(|_| {
                Error::InvalidArgument(format!(
                    "{key} is not set: start this program as a task of a pipeline (`shmline run \
                     pipeline.toml`), or name the pipeline and task explicitly (Task::join_as)"
                ))
            })
        };
        Task::join_as(&var(ENV_PIPELINE)?, &var(ENV_TASK)?)
    }

    /// Joins task `task` of pipeline `pipeline`, waiting until every task has joined.
    ///
    /// Fails with [`Error::NotFound`] if the pipeline does not run or has no such task,
    /// [`Error::WrongState`] if the task has already been joined or the pipeline is past its
    /// start, and [`Error::PipelineFailed`] if the pipeline stops, its runner dies or it does not
    /// start within its join timeout while this task waits.
    pub fn join_as(pipeline: &str, task: &str) -> Result<Task> {
        let registry = Registry::open(pipeline).map_err(|e| match e {
            Error::NotFound(m) => Error::NotFound(format!(
                "{m}: pipeline {pipeline:?} is not running. Tasks are started by the pipeline's \
                 runner (`shmline run pipeline.toml`, Pipeline::run or shmline_pipeline_run()), \
                 which names the pipeline and task in SHMLINE_PIPELINE and SHMLINE_TASK"
            )),
            e => e,
        })?;
        let index = registry.task_index(task).ok_or_else(|| {
            let names: Vec<&str> = registry
                .info()
                .tasks
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            Error::NotFound(format!(
                "pipeline {pipeline:?} has no task {task:?}; its tasks are: {}",
                names.join(", ")
            ))
        })?;
        match registry.state()? {
            PipelineState::Starting => {}
            state => {
                return Err(Error::WrongState(format!(
                    "pipeline {pipeline:?} is {}: tasks join only while it starts",
                    state.name()
                )))
            }
        }
        let info = registry.info().clone();
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        let mut events = Vec::new();
        // Readers first: they must be attached before this task can let any writer publish.
        for b in info.bindings.iter().filter(|b| b.task == index) {
            let context = |e: Error| {
                in_context(
                    e,
                    &format!(
                        "task {task:?} of pipeline {pipeline:?}, parameter {:?}",
                        b.param
                    ),
                )
            };
            match b.kind {
                BindingKind::Read => {
                    let stream = Stream::open(&info.streams[b.target].segment).map_err(context)?;
                    let options = ReaderOptions {
                        group: b.group.clone(),
                        ..Default::default()
                    };
                    let reader = stream.reader(&options).map_err(context)?;
                    readers.push((b.param.clone(), Some(reader)));
                }
                BindingKind::Write => {
                    let stream = Stream::open(&info.streams[b.target].segment).map_err(context)?;
                    writers.push((b.param.clone(), Some(stream.writer().map_err(context)?)));
                }
                BindingKind::Event => {
                    let event = Event::open(&info.events[b.target].segment).map_err(context)?;
                    events.push((b.param.clone(), Some(event)));
                }
            }
        }
        let stop = Event::open(&segment_name(pipeline, STOP_EVENT))?;
        registry.task_join(index)?;
        let task = Task {
            registry,
            index,
            readers,
            writers,
            events,
            stop,
        };
        task.wait_for_start()?;
        Ok(task)
    }

    /// Waits at the start barrier until the runner says every task has joined.
    fn wait_for_start(&self) -> Result<()> {
        let info = self.registry.info();
        let patience = info.join_timeout + BARRIER_MARGIN;
        let started = Instant::now();
        loop {
            match self.registry.state()? {
                PipelineState::Running => return Ok(()),
                PipelineState::Starting => {}
                state => {
                    let why = match self.registry.failed_task() {
                        Some(t) => format!(" after task {:?} failed", info.tasks[t].name),
                        None => String::new(),
                    };
                    return Err(Error::PipelineFailed(format!(
                        "pipeline {:?} is {}{why} before it started running",
                        info.name,
                        state.name()
                    )));
                }
            }
            if !self.registry.runner_alive() {
                return Err(Error::PipelineFailed(format!(
                    "the runner of pipeline {:?} (pid {}) died before the pipeline started",
                    info.name, info.runner.pid
                )));
            }
            let waited = started.elapsed();
            if waited >= patience {
                return Err(Error::PipelineFailed(format!(
                    "task {:?} joined pipeline {:?}, but the pipeline did not start within {:.1} \
                     s (some task never joined)",
                    self.name(),
                    info.name,
                    patience.as_secs_f64()
                )));
            }
            self.registry.wait_state_change(
                PipelineState::Starting,
                LIVENESS_SLICE.min(patience - waited),
            );
        }
    }

    /// Takes the reader bound to reading parameter `param`. Each reader can be taken once.
    ///
    /// Fails with [`Error::NotFound`] (naming the declared parameters) if the task has no such
    /// reading parameter, and [`Error::WrongState`] if it has already been taken.
    pub fn reader(&mut self, param: &str) -> Result<Reader> {
        slot(
            &mut self.readers,
            param,
            "reads",
            self.index,
            &self.registry,
        )?
        .take()
        .ok_or_else(|| taken(param, "reads", self.index, &self.registry))
    }

    /// Like [`Task::reader`], applying `options` to the reader.
    ///
    /// The reader was attached when the task joined, before any frame was written, so it reads
    /// every frame of the stream whatever `options.start` says. `options.wait` and
    /// `options.timeout` apply from now on. `options.require_schema` is checked
    /// ([`Error::SchemaMismatch`], and the reader stays available). A task's readers are
    /// lossless: `options.lossy` is [`Error::Unsupported`] (a lossy tap opens the stream
    /// `PIPELINE.STREAM` itself). The reader's group is the one the pipeline declared for
    /// `param`: `options.group` must be `None` or that group ([`Error::InvalidArgument`]).
    pub fn reader_with(&mut self, param: &str, options: &ReaderOptions) -> Result<Reader> {
        let declared = self.reader_group(param);
        if options.group.is_some() && options.group.as_deref() != declared {
            return Err(Error::InvalidArgument(format!(
                "the reads parameter {param:?} of task {:?} is {}, joined when the task joined; \
                 options.group ({:?}) must be None or that group",
                self.name(),
                match declared {
                    Some(group) => format!("a member of reader group {group:?}"),
                    None => "a plain reader".to_string(),
                },
                options.group.as_deref().unwrap_or_default()
            )));
        }
        let slot = slot(
            &mut self.readers,
            param,
            "reads",
            self.index,
            &self.registry,
        )?;
        let Some(reader) = slot else {
            return Err(taken(param, "reads", self.index, &self.registry));
        };
        if options.lossy {
            return Err(Error::Unsupported(format!(
                "the reads parameter {param:?} of task {:?} is a lossless reader, attached when \
                 the task joined; for a lossy tap, open stream {:?} and attach a lossy reader",
                self.registry.info().tasks[self.index].name,
                reader.stream_name()
            )));
        }
        if let Some(required) = &options.require_schema {
            reader.check_schema(required)?;
        }
        let mut reader = slot.take().expect("checked above");
        reader.set_waiting(options.wait, options.timeout);
        Ok(reader)
    }

    /// The reader group reading parameter `param` was declared to join; `None` for a plain
    /// reader and for a name that is not a reading parameter of this task.
    pub fn reader_group(&self, param: &str) -> Option<&str> {
        self.registry
            .info()
            .bindings
            .iter()
            .find(|b| b.task == self.index && b.kind == BindingKind::Read && b.param == param)
            .and_then(|b| b.group.as_deref())
    }

    /// Takes the writer bound to writing parameter `param`. Each writer can be taken once.
    ///
    /// Fails with [`Error::NotFound`] (naming the declared parameters) if the task has no such
    /// writing parameter, and [`Error::WrongState`] if it has already been taken.
    pub fn writer(&mut self, param: &str) -> Result<Writer> {
        slot(
            &mut self.writers,
            param,
            "writes",
            self.index,
            &self.registry,
        )?
        .take()
        .ok_or_else(|| taken(param, "writes", self.index, &self.registry))
    }

    /// Like [`Task::writer`], applying `options` (wait strategy and timeout) to the writer.
    pub fn writer_with(&mut self, param: &str, options: &WriterOptions) -> Result<Writer> {
        let mut writer = self.writer(param)?;
        writer.set_waiting(options.wait, options.timeout);
        Ok(writer)
    }

    /// Takes the event bound to event parameter `param`. Each event can be taken once.
    ///
    /// Fails with [`Error::NotFound`] (naming the declared parameters) if the task has no such
    /// event parameter, and [`Error::WrongState`] if it has already been taken.
    pub fn event(&mut self, param: &str) -> Result<Event> {
        slot(
            &mut self.events,
            param,
            "events",
            self.index,
            &self.registry,
        )?
        .take()
        .ok_or_else(|| taken(param, "events", self.index, &self.registry))
    }

    /// For a task that stopped because one of its inputs reached its end of stream: `Ok` if
    /// every input in `inputs` (parameter name and reader, still open) has ended too, so the task
    /// may exit with status 0; otherwise [`Error::WrongState`] naming each input that still had
    /// frames and how many (`task "merge" ended on end of stream of "a" while "b" still had 190
    /// frames unread`), a sentence the run's report also gives: the task should then exit with a
    /// non-zero status. Waits up to [`END_PATIENCE`] for an input that has nothing unread but
    /// whose writer has not ended yet. Lossy inputs count as ended, and so does a reader group
    /// member while other members are attached (see [`check_inputs_ended`]).
    ///
    /// A task with one input needs no check: its end of stream is the end of its only input. The
    /// runner sees only a task's exit status, so a program that stops on the end of one input and
    /// exits 0 without this check ends "normally", whatever its other inputs still hold.
    ///
    /// ```no_run
    /// use shmline::pipeline::Task;
    /// let mut task = Task::join()?;
    /// let (mut a, mut b) = (task.reader("a")?, task.reader("b")?);
    /// let mut out = task.writer("out")?;
    /// let ended = loop {
    ///     // A zip: one frame of each input per output frame.
    ///     let (fa, fb) = match (a.read(), b.read()) {
    ///         (Ok(fa), Ok(fb)) => (fa, fb),
    ///         (Err(shmline::Error::EndOfStream), _) | (_, Err(shmline::Error::EndOfStream)) => {
    ///             break task.check_inputs_ended(&[("a", &a), ("b", &b)]);
    ///         }
    ///         (Err(e), _) | (_, Err(e)) => return Err(e),
    ///     };
    ///     out.write(&[fa.data, fb.data].concat())?;
    /// };
    /// if let Err(e) = ended {
    ///     eprintln!("{e}");
    ///     std::process::exit(1);
    /// }
    /// # Ok::<(), shmline::Error>(())
    /// ```
    ///
    /// [`END_PATIENCE`]: super::END_PATIENCE
    /// [`check_inputs_ended`]: super::check_inputs_ended
    pub fn check_inputs_ended(&self, inputs: &[(&str, &Reader)]) -> Result<()> {
        super::check_inputs_ended(self.pipeline(), self.name(), inputs, super::END_PATIENCE)
    }

    /// The pipeline's stop event, set by the runner when it stops the tasks (after a failure, a
    /// signal or a request). Long-running tasks that do not block on a stream can poll
    /// [`Task::stop_requested`] or wait on this event to finish cleanly.
    pub fn stop_event(&self) -> &Event {
        &self.stop
    }

    /// Whether the runner has asked the tasks to stop.
    pub fn stop_requested(&self) -> bool {
        self.stop.is_set()
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.registry.info().tasks[self.index].name
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        self.registry.name()
    }

    /// The pipeline's registry (streams, events, tasks and their states).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Prefixes the message of `e` with `context`, keeping its kind (and so its status code).
fn in_context(e: Error, context: &str) -> Error {
    let with = |m: String| format!("{context}: {m}");
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(with(m)),
        Error::NotFound(m) => Error::NotFound(with(m)),
        Error::PermissionDenied(m) => Error::PermissionDenied(with(m)),
        Error::NotShmline(m) => Error::NotShmline(with(m)),
        Error::Corrupt(m) => Error::Corrupt(with(m)),
        Error::WriterExists(m) => Error::WriterExists(with(m)),
        Error::TooManyReaders(m) => Error::TooManyReaders(with(m)),
        Error::WrongState(m) => Error::WrongState(with(m)),
        e => e,
    }
}

/// The slot of parameter `param` in `list` (its `key` parameters: `reads`, `writes` or
/// `events`), or [`Error::NotFound`] naming the declared ones.
fn slot<'a, T>(
    list: &'a mut [(String, Option<T>)],
    param: &str,
    key: &str,
    index: usize,
    registry: &Registry,
) -> Result<&'a mut Option<T>> {
    if let Some(i) = list.iter().position(|(name, _)| name == param) {
        return Ok(&mut list[i].1);
    }
    let names: Vec<&str> = list.iter().map(|(name, _)| name.as_str()).collect();
    Err(Error::NotFound(format!(
        "task {:?} has no {key} parameter {param:?}; its {key} parameters are: {}",
        registry.info().tasks[index].name,
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    )))
}

/// The error for taking parameter `param` a second time.
fn taken(param: &str, key: &str, index: usize, registry: &Registry) -> Error {
    Error::WrongState(format!(
        "the {key} parameter {param:?} of task {:?} has already been taken",
        registry.info().tasks[index].name
    ))
}
