//! Pipelines: PYTHUSA's factory line as a capability of the library, for tasks in any language.
//!
//! - [`Pipeline`] declares streams (belts), events (switches) and tasks (machines: commands
//!   started as processes), in code or as a TOML manifest ([`Pipeline::load`]);
//!   [`Pipeline::validate`] is the compile step;
//! - [`Pipeline::run`] (or [`Pipeline::start`]) creates a [`Registry`] segment describing the
//!   pipeline, the streams and events, starts every task, waits until all have joined, releases
//!   them together, watches them, ends streams whose writers finished, stops everything on the
//!   first failure or on Ctrl-C, and removes every segment at the end;
//! - a task process calls [`Task::join`] and gets its readers, writers and events by the
//!   parameter names it was declared with. Its readers are attached before it joins, and no task
//!   gets past `join` until every task has joined, so no writer publishes before every reader is
//!   in place: no frame is lost at start-up.
//!
//! Fan-in and work sharing: several tasks may write one stream (it is created as a multi-writer
//! stream and ends when the last of them is done), and a reading binding may join a reader group
//! ([`TaskSpec::reads_group`], `reads = { p = { stream = "s", group = "g" } }` in a manifest): the
//! tasks of one group share the stream's frames, each frame going to exactly one of them.
//!
//! Segment names: the registry is `shmline.pipeline.NAME`; stream `s` is the stream segment
//! `NAME.s`, event `e` the event segment `NAME.e`, and every pipeline has a flag event
//! `NAME.__stop` that the runner sets when it stops the tasks.

mod child;
mod ending;
mod info;
pub(crate) mod layout;
mod manifest;
mod recovery;
mod registry;
mod runner;
mod signals;
mod spec;
mod status;
mod task;
mod validate;

pub(crate) use ending::check_inputs_ended_until;
pub use ending::{check_inputs_ended, END_PATIENCE};
pub use info::{BindingEntry, EventEntry, RegistryInfo, StreamEntry, TaskEntry};
pub use recovery::Cleanup;
pub use registry::Registry;
pub use runner::{Outcome, PipelineRun, RunReport, StreamReport, TaskReport};
pub use signals::InterruptGuard;
pub use spec::{
    Binding, EventSpec, Pipeline, StreamSpec, TaskSpec, DEFAULT_CAPACITY, DEFAULT_JOIN_TIMEOUT,
    DEFAULT_STOP_GRACE,
};
pub use status::{PipelineState, TaskExit, TaskState, TaskStatus};
pub use task::Task;
pub use validate::{problems, BindingKind, Problem};

/// Environment variable holding the pipeline name, set by the runner for every task.
pub const ENV_PIPELINE: &str = "SHMLINE_PIPELINE";
/// Environment variable holding the task name, set by the runner for every task.
pub const ENV_TASK: &str = "SHMLINE_TASK";
/// Name of every pipeline's built-in stop event (segment `<pipeline>.__stop`).
pub const STOP_EVENT: &str = "__stop";

/// The stream or event segment name of member `member` of pipeline `pipeline`.
pub fn segment_name(pipeline: &str, member: &str) -> String {
    format!("{pipeline}.{member}")
}

impl Pipeline {
    /// Checks the declaration (names, at least one writing task and one reading binding per
    /// stream and no more writing tasks than its `max_writers`, reader group names, no task
    /// reading a stream twice, bindings to declared streams and events, no cycle unless allowed).
    /// The error lists every problem, each naming its entry; [`problems`] returns them as data.
    pub fn validate(&self) -> crate::Result<()> {
        validate::check(self).map(|_| ())
    }
}
