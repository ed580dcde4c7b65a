//! The live state of a pipeline and its tasks as its registry records it: what the runner and the
//! tasks write while the pipeline runs, and what monitors read.

use super::layout::*;
use crate::liveness::ProcessId;
use std::fmt;
use std::time::Duration;

/// What a pipeline is doing, as its runner last recorded it.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipelineState {
    /// Starting tasks and waiting for every one to join.
    Starting = PIPELINE_STARTING,
    /// Every task joined; frames flow.
    Running = PIPELINE_RUNNING,
    /// Stopping the tasks after a failure, a signal or a request.
    Stopping = PIPELINE_STOPPING,
    /// Every task exited with status 0.
    Finished = PIPELINE_FINISHED,
    /// A task failed, could not start or never joined.
    Failed = PIPELINE_FAILED,
    /// Stopped on request.
    Stopped = PIPELINE_STOPPED,
}

impl PipelineState {
    /// The state with this number (as stored in the registry).
    pub fn from_u32(value: u32) -> Option<PipelineState> {
        Some(match value {
            PIPELINE_STARTING => PipelineState::Starting,
            PIPELINE_RUNNING => PipelineState::Running,
            PIPELINE_STOPPING => PipelineState::Stopping,
            PIPELINE_FINISHED => PipelineState::Finished,
            PIPELINE_FAILED => PipelineState::Failed,
            PIPELINE_STOPPED => PipelineState::Stopped,
            _ => return None,
        })
    }

    /// Lower-case name (`"running"`).
    pub fn name(self) -> &'static str {
        match self {
            PipelineState::Starting => "starting",
            PipelineState::Running => "running",
            PipelineState::Stopping => "stopping",
            PipelineState::Finished => "finished",
            PipelineState::Failed => "failed",
            PipelineState::Stopped => "stopped",
        }
    }

    /// True once the pipeline has ended (finished, failed or stopped).
    pub fn is_over(self) -> bool {
        matches!(
            self,
            PipelineState::Finished | PipelineState::Failed | PipelineState::Stopped
        )
    }
}

/// What a task is doing, as recorded in the registry.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Declared; its process is not started yet.
    Pending = TASK_PENDING,
    /// Its process is started but has not joined yet.
    Started = TASK_STARTED,
    /// A process joined as this task.
    Joined = TASK_JOINED,
    /// Its process exited (see [`TaskStatus::exit`]).
    Exited = TASK_EXITED,
    /// Its process could not be started.
    NotStarted = TASK_NOT_STARTED,
}

impl TaskState {
    /// The state with this number (as stored in the registry).
    pub fn from_u32(value: u32) -> Option<TaskState> {
        Some(match value {
            TASK_PENDING => TaskState::Pending,
            TASK_STARTED => TaskState::Started,
            TASK_JOINED => TaskState::Joined,
            TASK_EXITED => TaskState::Exited,
            TASK_NOT_STARTED => TaskState::NotStarted,
            _ => return None,
        })
    }

    /// Lower-case name (`"joined"`).
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Started => "started",
            TaskState::Joined => "joined",
            TaskState::Exited => "exited",
            TaskState::NotStarted => "not started",
        }
    }
}

/// How a task's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskExit {
    /// It exited with this status (0 is success).
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl TaskExit {
    /// True for exit status 0.
    pub fn success(self) -> bool {
        self == TaskExit::Code(0)
    }
}

impl fmt::Display for TaskExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TaskExit::Code(code) => write!(f, "exit status {code}"),
            TaskExit::Signal(sig) => match signal_name(sig) {
                Some(name) => write!(f, "signal {sig} ({name})"),
                None => write!(f, "signal {sig}"),
            },
        }
    }
}

/// The usual name of a signal number (`SIGKILL`), for messages.
pub(crate) fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

/// The live state of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    /// What it is doing.
    pub state: TaskState,
    /// The process the runner started (from [`TaskState::Started`] on).
    pub process: Option<ProcessId>,
    /// The process that joined as the task (from [`TaskState::Joined`] on; kept after it exits).
    pub joined: Option<ProcessId>,
    /// How it ended (in [`TaskState::Exited`]).
    pub exit: Option<TaskExit>,
    /// CPU time it used, known once it exited.
    pub cpu: Duration,
    /// When it was started, nanoseconds since the Unix epoch (0: not yet).
    pub started_unix_ns: u64,
    /// When it exited, nanoseconds since the Unix epoch (0: not yet).
    pub exited_unix_ns: u64,
}

impl TaskStatus {
    /// The process to watch for CPU and memory: the one that joined if any, else the one started.
    pub fn pid(&self) -> Option<u32> {
        self.joined.or(self.process).map(|p| p.pid)
    }
}
