//! Declaring a pipeline: its streams (belts), events (switches) and tasks (machines), and which
//! parameter of each task is bound to which stream or event.
//!
//! A declaration is plain data with builder methods; nothing is checked until
//! [`Pipeline::validate`] (or `run`/`start`, which validate first), so every problem is reported
//! at once, naming the entry it is about. The same content can be written as a TOML manifest
//! (see `manifest.rs`).

use crate::event::EventMode;
use crate::ring::Backpressure;
use std::path::PathBuf;
use std::time::Duration;

/// Default time the runner gives every task to join, and a joined task waits for the others.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time between asking tasks to stop (stop event and SIGTERM) and killing them.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);
/// Default number of slots of a declared stream.
pub const DEFAULT_CAPACITY: u32 = 64;

/// A named set of streams, events and tasks: the factory.
///
/// ```
/// use shmline::pipeline::{Pipeline, StreamSpec, TaskSpec};
/// let pipeline = Pipeline::new("demo")
///     .stream("samples", StreamSpec::array("<f4", &[8]))
///     .stream("doubled", StreamSpec::array("<f4", &[8]))
///     .task("source", TaskSpec::command("./source").writes("samples", "samples"))
///     .task(
///         "scale",
///         TaskSpec::command("./scale").reads("samples", "samples").writes("doubled", "doubled"),
///     )
///     .task("sink", TaskSpec::command("./sink").reads("doubled", "doubled"));
/// pipeline.validate()?;
/// # Ok::<(), shmline::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The pipeline's name: its registry is `shmline.pipeline.NAME` and its streams and events
    /// are named `NAME.<stream>` and `NAME.<event>`, so two pipelines never collide.
    pub name: String,
    /// Declared streams, in declaration order.
    pub streams: Vec<StreamSpec>,
    /// Declared events, in declaration order.
    pub events: Vec<EventSpec>,
    /// Declared tasks, in declaration order.
    pub tasks: Vec<TaskSpec>,
    /// Accept streams that form a cycle between tasks (refused by default: a cycle of lossless
    /// streams deadlocks as soon as every ring on it is full).
    pub allow_cycles: bool,
    /// How long the runner waits for every task to join before it gives up, naming the tasks that
    /// did not (default 30 s).
    pub join_timeout: Duration,
    /// How long stopping tasks get between SIGTERM and SIGKILL (default 2 s).
    pub stop_grace: Duration,
}

/// A declared stream: the frames it carries and the size of its ring.
///
/// The runner creates it with room for every reader group its tasks join (`max_groups`: the
/// number of distinct groups reading it, and at least the library's default of 4, so monitors
/// and other consumers can form groups of their own while the pipeline runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Name within the pipeline (set by [`Pipeline::stream`]).
    pub name: String,
    /// NumPy dtype of every frame (e.g. `<f4`), with `shape`; `None` for raw bytes.
    pub dtype: Option<String>,
    /// Frame shape, with `dtype`.
    pub shape: Vec<u64>,
    /// Largest frame in bytes; 0 takes the size given by `dtype` and `shape`.
    pub max_frame_size: u32,
    /// Slots in the ring; a power of two (default 64).
    pub capacity: u32,
    /// Reader table size; 0 (the default) gives room for every reading binding (plain readers
    /// and group members alike) plus 4 extra readers (monitors, taps), and at least 8.
    pub max_readers: u32,
    /// Most writers attached at once; 0 (the default) allows one per writing task. A stream
    /// written by more than one task, or with `max_writers` above 1, is created as a multi-writer
    /// stream: frames are published in the order writers claimed them, and the stream ends when
    /// its last writer finishes. Fewer than the writing tasks is refused by validation.
    pub max_writers: u32,
    /// Store and check a CRC32C of every frame.
    pub checksum: bool,
    /// What the stream's writers do when the ring is full (default: wait for space).
    pub backpressure: Backpressure,
}

/// A declared event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// Name within the pipeline (set by [`Pipeline::event`]).
    pub name: String,
    /// Flag (a switch) or counting (a semaphore).
    pub mode: EventMode,
}

/// A declared task: a command to start, and what each of its parameters is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// Name within the pipeline (set by [`Pipeline::task`]); the task finds it in `SHMLINE_TASK`.
    pub name: String,
    /// Program to run: a path (relative ones are taken from `cwd`), or a bare name looked up in
    /// `PATH`.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Extra environment variables, on top of the runner's environment.
    pub env: Vec<(String, String)>,
    /// Working directory; `None` runs in the runner's.
    pub cwd: Option<PathBuf>,
    /// File the task's standard output is appended to (created if needed; relative paths are
    /// taken from `cwd`); `None` shares the runner's.
    pub stdout: Option<PathBuf>,
    /// File the task's standard error is appended to, like `stdout`; `None` shares the runner's.
    pub stderr: Option<PathBuf>,
    /// Reading parameters: parameter name -> stream name, and the reader group the reader joins,
    /// if any.
    pub reads: Vec<Binding>,
    /// Writing parameters: parameter name -> stream name.
    pub writes: Vec<Binding>,
    /// Event parameters: parameter name -> event name.
    pub events: Vec<Binding>,
}

/// One task parameter bound to a stream or event of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The name the task uses (`task.reader("samples")`).
    pub param: String,
    /// The stream or event it stands for.
    pub target: String,
    /// For a reading parameter: the reader group it joins (competing consumers: each frame of
    /// the stream goes to exactly one member of the group, while plain readers and other groups
    /// still get every frame). `None`: a plain reader. Only reads may have a group.
    pub group: Option<String>,
}

impl Pipeline {
    /// An empty pipeline named `name`.
    pub fn new(name: impl Into<String>) -> Pipeline {
        Pipeline {
            name: name.into(),
            streams: Vec::new(),
            events: Vec::new(),
            tasks: Vec::new(),
            allow_cycles: false,
            join_timeout: DEFAULT_JOIN_TIMEOUT,
            stop_grace: DEFAULT_STOP_GRACE,
        }
    }

    /// Declares stream `name`.
    pub fn stream(mut self, name: impl Into<String>, mut spec: StreamSpec) -> Pipeline {
        spec.name = name.into();
        self.streams.push(spec);
        self
    }

    /// Declares event `name`.
    pub fn event(mut self, name: impl Into<String>, mut spec: EventSpec) -> Pipeline {
        spec.name = name.into();
        self.events.push(spec);
        self
    }

    /// Declares task `name`.
    pub fn task(mut self, name: impl Into<String>, mut spec: TaskSpec) -> Pipeline {
        spec.name = name.into();
        self.tasks.push(spec);
        self
    }

    /// Accepts (or refuses, the default) cycles between tasks.
    pub fn allow_cycles(mut self, allow: bool) -> Pipeline {
        self.allow_cycles = allow;
        self
    }

    /// Sets how long tasks may take to join.
    pub fn join_timeout(mut self, timeout: Duration) -> Pipeline {
        self.join_timeout = timeout;
        self
    }

    /// Sets the time between SIGTERM and SIGKILL when stopping tasks.
    pub fn stop_grace(mut self, grace: Duration) -> Pipeline {
        self.stop_grace = grace;
        self
    }
}

impl StreamSpec {
    /// A stream of raw frames of up to `max_frame_size` bytes.
    pub fn bytes(max_frame_size: u32) -> StreamSpec {
        StreamSpec {
            name: String::new(),
            dtype: None,
            shape: Vec::new(),
            max_frame_size,
            capacity: DEFAULT_CAPACITY,
            max_readers: 0,
            max_writers: 0,
            checksum: false,
            backpressure: Backpressure::Block,
        }
    }

    /// A stream of arrays: every frame is `shape` elements of NumPy type `dtype`.
    pub fn array(dtype: impl Into<String>, shape: &[u64]) -> StreamSpec {
        StreamSpec {
            dtype: Some(dtype.into()),
            shape: shape.to_vec(),
            ..StreamSpec::bytes(0)
        }
    }

    /// Sets the number of slots (a power of two).
    pub fn capacity(mut self, capacity: u32) -> StreamSpec {
        self.capacity = capacity;
        self
    }

    /// Sets the reader table size (0: automatic).
    pub fn max_readers(mut self, max_readers: u32) -> StreamSpec {
        self.max_readers = max_readers;
        self
    }

    /// Sets the most writers attached at once (0: one per writing task).
    pub fn max_writers(mut self, max_writers: u32) -> StreamSpec {
        self.max_writers = max_writers;
        self
    }

    /// Turns per-frame CRC32C checksums on or off.
    pub fn checksum(mut self, checksum: bool) -> StreamSpec {
        self.checksum = checksum;
        self
    }

    /// Sets what the writers do when the ring is full (default [`Backpressure::Block`]).
    pub fn backpressure(mut self, backpressure: Backpressure) -> StreamSpec {
        self.backpressure = backpressure;
        self
    }
}

impl EventSpec {
    /// A flag event (a switch that stays on until cleared).
    pub fn flag() -> EventSpec {
        EventSpec {
            name: String::new(),
            mode: EventMode::Flag,
        }
    }

    /// A counting event (each set releases one wait).
    pub fn counting() -> EventSpec {
        EventSpec {
            name: String::new(),
            mode: EventMode::Counting,
        }
    }
}

impl TaskSpec {
    /// A task that runs `program`.
    pub fn command(program: impl Into<String>) -> TaskSpec {
        TaskSpec {
            name: String::new(),
            command: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdout: None,
            stderr: None,
            reads: Vec::new(),
            writes: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> TaskSpec {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> TaskSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the task.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> TaskSpec {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> TaskSpec {
        self.cwd = Some(dir.into());
        self
    }

    /// Appends the task's standard output to file `path` (`/dev/null` silences it).
    pub fn stdout(mut self, path: impl Into<PathBuf>) -> TaskSpec {
        self.stdout = Some(path.into());
        self
    }

    /// Appends the task's standard error to file `path`.
    pub fn stderr(mut self, path: impl Into<PathBuf>) -> TaskSpec {
        self.stderr = Some(path.into());
        self
    }

    /// Binds reading parameter `param` to stream `stream`.
    pub fn reads(mut self, param: impl Into<String>, stream: impl Into<String>) -> TaskSpec {
        self.reads.push(Binding::new(param, stream));
        self
    }

    /// Binds reading parameter `param` to stream `stream` as a member of reader group `group`:
    /// the members of a group (readers of the same stream with the same group name, usually in
    /// several tasks) share its frames, each frame going to exactly one of them.
    pub fn reads_group(
        mut self,
        param: impl Into<String>,
        stream: impl Into<String>,
        group: impl Into<String>,
    ) -> TaskSpec {
        self.reads.push(Binding::group(param, stream, group));
        self
    }

    /// Binds writing parameter `param` to stream `stream`. Several tasks may write one stream
    /// (it is then created as a multi-writer stream, see [`StreamSpec::max_writers`]).
    pub fn writes(mut self, param: impl Into<String>, stream: impl Into<String>) -> TaskSpec {
        self.writes.push(Binding::new(param, stream));
        self
    }

    /// Binds event parameter `param` to event `event`.
    pub fn event(mut self, param: impl Into<String>, event: impl Into<String>) -> TaskSpec {
        self.events.push(Binding::new(param, event));
        self
    }

    /// The command line, for messages and displays: the program and its arguments, separated by
    /// spaces (not quoted).
    pub fn command_line(&self) -> String {
        std::iter::once(self.command.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Binding {
    /// Parameter `param` bound to stream or event `target`.
    pub fn new(param: impl Into<String>, target: impl Into<String>) -> Binding {
        Binding {
            param: param.into(),
            target: target.into(),
            group: None,
        }
    }

    /// Reading parameter `param` bound to stream `stream` as a member of reader group `group`.
    pub fn group(
        param: impl Into<String>,
        stream: impl Into<String>,
        group: impl Into<String>,
    ) -> Binding {
        Binding {
            group: Some(group.into()),
            ..Binding::new(param, stream)
        }
    }
}
