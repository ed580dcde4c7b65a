//! The pipeline registry: a shared-memory segment that describes a running pipeline (streams,
//! events, tasks, bindings) and holds its live state, so tasks in any language can join by name
//! and monitors (`shmline ls`, `shmline top`) can show it.
//!
//! The runner creates it (exclusively, owner-only) and removes it at the end. Everything written
//! once is validated and copied into a [`RegistryInfo`] when the registry is opened; the live
//! fields (pipeline state, task states, pids, exit statuses) are read on demand.

use super::layout::*;
use super::validate::{BindingKind, Plan};
use super::{segment_name, spec::Pipeline, STOP_EVENT};
use crate::error::{Error, Result};
use crate::event::{Event, EventMode};
use crate::layout::{
    DTYPE_LEN, MAX_NDIM, MAX_WRITERS, STREAM_FLAGS_KNOWN, STREAM_FLAG_CHECKSUM, STREAM_FLAG_SCHEMA,
};
use crate::liveness::ProcessId;
use crate::ring::Stream;
use crate::schema::Schema;
use crate::shm::{Segment, SegmentKind};
use crate::sync::{AtomicU8, Ordering};
use crate::wait::{futex_wait, futex_wake, realtime_ns};
use std::fmt;
use std::time::{Duration, Instant};

/// How long `open` waits for a runner that is still initialising the registry.
const INIT_WAIT: Duration = Duration::from_secs(1);

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

/// Everything a registry says once, copied out and validated when it was opened.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryInfo {
    /// Pipeline name.
    pub name: String,
    /// The runner process.
    pub runner: ProcessId,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Whether cycles were allowed.
    pub allow_cycles: bool,
    /// How long tasks may take to join.
    pub join_timeout: Duration,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub stop_grace: Duration,
    /// Declared streams.
    pub streams: Vec<StreamEntry>,
    /// Declared events.
    pub events: Vec<EventEntry>,
    /// Declared tasks.
    pub tasks: Vec<TaskEntry>,
    /// Every task parameter.
    pub bindings: Vec<BindingEntry>,
}

/// A stream of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// Name within the pipeline.
    pub name: String,
    /// Name of the stream segment (`<pipeline>.<name>`), for [`crate::Stream::open`].
    pub segment: String,
    /// Frame schema, if any.
    pub schema: Option<Schema>,
    /// Slots in the ring.
    pub capacity: u32,
    /// Largest frame in bytes.
    pub max_frame_size: u32,
    /// Reader table size.
    pub max_readers: u32,
    /// Writer table size (above 1: a multi-writer stream).
    pub max_writers: u32,
    /// Whether frames carry a CRC32C.
    pub checksum: bool,
    /// Index of the first writing task (the only one unless the stream is multi-writer), for
    /// displays that show one writer; every writing task is in `writer_tasks`.
    pub writer_task: Option<usize>,
    /// Index of the task of every writing binding, in binding order.
    pub writer_tasks: Vec<usize>,
    /// Index of the task of every reading binding (plain or group member), in binding order.
    pub reader_tasks: Vec<usize>,
}

/// An event of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEntry {
    /// Name within the pipeline.
    pub name: String,
    /// Name of the event segment (`<pipeline>.<name>`), for [`crate::Event::open`].
    pub segment: String,
    /// Flag or counting.
    pub mode: EventMode,
}

/// A task of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEntry {
    /// Task name.
    pub name: String,
    /// Command line, for display (possibly truncated).
    pub command: String,
}

/// One task parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingEntry {
    /// Index of the task.
    pub task: usize,
    /// Read, write or event.
    pub kind: BindingKind,
    /// The parameter name.
    pub param: String,
    /// Index of the stream or event.
    pub target: usize,
    /// The reader group a reading binding joins; `None` for a plain reader and other kinds.
    pub group: Option<String>,
}

/// What [`Registry::remove_if_dead`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// The runner is alive: nothing was removed.
    Alive(ProcessId),
    /// The runner is dead: these segments (kind and name) are, or were, left behind.
    Dead(Vec<(SegmentKind, String)>),
}

/// A pipeline registry segment mapped into this process.
pub struct Registry {
    seg: Segment,
    geo: RegistryGeometry,
    info: RegistryInfo,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.info.name)
            .finish()
    }
}

impl Registry {
    /// Creates the registry of a validated pipeline, in state `STARTING`, owned by this process.
    /// The segment is removed when the returned handle is dropped.
    pub(crate) fn create(pipeline: &Pipeline, plan: &Plan) -> Result<Registry> {
        let geo = RegistryGeometry::new(
            plan.streams.len() as u32,
            plan.events.len() as u32,
            pipeline.tasks.len() as u32,
            plan.bindings.len() as u32,
        )
        .map_err(|why| Error::InvalidArgument(format!("pipeline {:?}: {why}", pipeline.name)))?;
        let seg = Segment::create(
            SegmentKind::Pipeline,
            &pipeline.name,
            geo.segment_size,
            0o600,
        )
        .map_err(|e| match e {
            Error::AlreadyExists(_) => Error::AlreadyExists(format!(
                "pipeline {:?} is being started by another runner",
                pipeline.name
            )),
            e => e,
        })?;
        let me = ProcessId::current();
        let registry = Registry {
            info: RegistryInfo {
                name: pipeline.name.clone(),
                runner: me,
                created_unix_ns: realtime_ns(),
                allow_cycles: pipeline.allow_cycles,
                join_timeout: pipeline.join_timeout,
                stop_grace: pipeline.stop_grace,
                streams: Vec::new(),
                events: Vec::new(),
                tasks: Vec::new(),
                bindings: Vec::new(),
            },
            seg,
            geo,
        };
        // Relaxed stores: nobody reads these before `magic` is published with Release below.
        let r = Ordering::Relaxed;
        let hdr = registry.header();
        hdr.layout_version.store(REGISTRY_VERSION, r);
        hdr.header_size.store(PIPELINE_HEADER_SIZE as u32, r);
        hdr.segment_size.store(geo.segment_size, r);
        hdr.stream_count.store(geo.streams, r);
        hdr.event_count.store(geo.events, r);
        hdr.task_count.store(geo.tasks, r);
        hdr.binding_count.store(geo.bindings, r);
        hdr.streams_offset.store(geo.streams_offset, r);
        hdr.events_offset.store(geo.events_offset, r);
        hdr.tasks_offset.store(geo.tasks_offset, r);
        hdr.bindings_offset.store(geo.bindings_offset, r);
        hdr.runner_pid.store(me.pid, r);
        hdr.runner_start_time.store(me.start_time, r);
        hdr.created_unix_ns.store(registry.info.created_unix_ns, r);
        hdr.flags.store(
            if pipeline.allow_cycles {
                PIPELINE_FLAG_ALLOW_CYCLES
            } else {
                0
            },
            r,
        );
        hdr.join_timeout_ms.store(millis(pipeline.join_timeout), r);
        hdr.stop_grace_ms.store(millis(pipeline.stop_grace), r);
        hdr.state.store(PIPELINE_STARTING, r);
        for (i, s) in plan.streams.iter().enumerate() {
            let rec: &StreamRecord = registry.record(geo.stream(i as u32));
            store_str(&rec.name, &s.name);
            if let Some(schema) = &s.options.schema {
                store_str(&rec.dtype, schema.dtype());
                rec.ndim.store(schema.shape().len() as u32, r);
                for (dst, &d) in rec.shape.iter().zip(schema.shape()) {
                    dst.store(d, r);
                }
            }
            rec.capacity.store(s.options.capacity, r);
            rec.max_frame.store(s.options.max_frame_size, r);
            rec.max_readers.store(s.options.max_readers, r);
            rec.max_writers.store(s.options.max_writers, r);
            let mut flags = 0;
            if s.options.checksum {
                flags |= STREAM_FLAG_CHECKSUM;
            }
            if s.options.schema.is_some() {
                flags |= STREAM_FLAG_SCHEMA;
            }
            rec.flags.store(flags, r);
            rec.writer_count.store(s.writers.len() as u32, r);
            for (dst, &t) in rec.writer_tasks.iter().zip(&s.writers) {
                dst.store(t, r);
            }
            rec.reader_count.store(s.readers.len() as u32, r);
            for (dst, &t) in rec.reader_tasks.iter().zip(&s.readers) {
                dst.store(t, r);
            }
        }
        for (i, (name, mode)) in plan.events.iter().enumerate() {
            let rec: &EventRecord = registry.record(geo.event(i as u32));
            store_str(&rec.name, name);
            rec.mode.store(*mode as u32, r);
        }
        for (i, task) in pipeline.tasks.iter().enumerate() {
            let rec: &TaskRecord = registry.record(geo.task(i as u32));
            store_str(&rec.name, &task.name);
            store_str(&rec.command, &task.command_line());
            rec.state.store(TASK_PENDING, r);
        }
        for (i, b) in plan.bindings.iter().enumerate() {
            let rec: &BindingRecord = registry.record(geo.binding(i as u32));
            store_str(&rec.param, &b.param);
            rec.task.store(b.task, r);
            rec.kind.store(b.kind as u32, r);
            rec.target.store(b.target, r);
            store_str(&rec.group, b.group.as_deref().unwrap_or(""));
        }
        // Read back what we wrote, so the creator's info is exactly what others will see.
        let info = read_info(&registry.seg, &geo, &pipeline.name)?;
        // Release: publishes every field above to any process that loads `magic` with Acquire.
        registry
            .header()
            .magic
            .store(PIPELINE_MAGIC, Ordering::Release);
        Ok(Registry { info, ..registry })
    }

    /// Opens the registry of pipeline `name`, checking magic, layout version, every count,
    /// offset and size, every name and every index.
    pub fn open(name: &str) -> Result<Registry> {
        let started = Instant::now();
        let seg = Segment::open(SegmentKind::Pipeline, name, PIPELINE_HEADER_SIZE, INIT_WAIT)?;
        let what = format!("pipeline {name:?}");
        let hdr: &PipelineHeader = seg
            .at(0)
            .ok_or_else(|| Error::NotShmline(format!("{what}: too small for a header")))?;
        let magic = loop {
            // Acquire: pairs with the runner's Release store of `magic`.
            let magic = hdr.magic.load(Ordering::Acquire);
            if magic != 0 {
                break magic;
            }
            if started.elapsed() >= INIT_WAIT {
                return Err(Error::NotShmline(format!(
                    "{what}: its runner never finished initialising the registry (no magic \
                     after {} ms); `shmline clean` removes it if the runner is gone",
                    INIT_WAIT.as_millis()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if magic != PIPELINE_MAGIC {
            return Err(Error::NotShmline(format!(
                "{what}: starts with {:?}, not the pipeline magic \"SHMLPIPE\"",
                String::from_utf8_lossy(&magic.to_le_bytes())
            )));
        }
        // Relaxed below: everything was published by the Acquire load of `magic`.
        let r = Ordering::Relaxed;
        let version = hdr.layout_version.load(r);
        if version != REGISTRY_VERSION {
            return Err(Error::VersionMismatch {
                name: what,
                found: version,
                expected: REGISTRY_VERSION,
            });
        }
        let bad = |field: &str, value: u64, expected: String| {
            Error::corrupt(format!(
                "{what}: header field {field} is {value}, expected {expected}"
            ))
        };
        let header_size = hdr.header_size.load(r) as u64;
        if header_size != PIPELINE_HEADER_SIZE {
            return Err(bad(
                "header_size",
                header_size,
                PIPELINE_HEADER_SIZE.to_string(),
            ));
        }
        let geo = RegistryGeometry::new(
            hdr.stream_count.load(r),
            hdr.event_count.load(r),
            hdr.task_count.load(r),
            hdr.binding_count.load(r),
        )
        .map_err(|why| Error::corrupt(format!("{what}: {why}")))?;
        for (field, found, expected) in [
            (
                "streams_offset",
                hdr.streams_offset.load(r),
                geo.streams_offset,
            ),
            (
                "events_offset",
                hdr.events_offset.load(r),
                geo.events_offset,
            ),
            ("tasks_offset", hdr.tasks_offset.load(r), geo.tasks_offset),
            (
                "bindings_offset",
                hdr.bindings_offset.load(r),
                geo.bindings_offset,
            ),
            ("segment_size", hdr.segment_size.load(r), geo.segment_size),
        ] {
            if found != expected {
                return Err(bad(field, found, expected.to_string()));
            }
        }
        if seg.len() as u64 != geo.segment_size {
            return Err(bad(
                "segment_size",
                geo.segment_size,
                format!("the object's real size, {} bytes", seg.len()),
            ));
        }
        let flags = hdr.flags.load(r);
        if flags & !PIPELINE_FLAG_ALLOW_CYCLES != 0 {
            return Err(bad(
                "flags",
                flags as u64,
                format!("only bit {PIPELINE_FLAG_ALLOW_CYCLES:#x}"),
            ));
        }
        let info = read_info(&seg, &geo, name)?;
        Ok(Registry { seg, geo, info })
    }

    /// Names of the pipeline registries on this machine.
    pub fn list() -> Result<Vec<String>> {
        crate::shm::list(SegmentKind::Pipeline)
    }

    /// Removes the registry segment of pipeline `name` (not its streams and events).
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink(SegmentKind::Pipeline, name)
    }

    /// What [`Registry::remove_if_dead`] would do, without doing it: whether the runner of
    /// pipeline `name` is alive, and if not, the segments it left: the registry, and the streams
    /// and events it lists (and its stop event) that exist and were not created by another live
    /// process. A registry whose runner died before finishing it is stale too.
    ///
    /// Errors: [`Error::NotFound`] if there is no such registry; the open errors
    /// ([`Error::VersionMismatch`], [`Error::Corrupt`]) for a registry that cannot be read.
    pub fn check_dead(name: &str) -> Result<Cleanup> {
        let registry = match Registry::open(name) {
            Ok(registry) => registry,
            // A registry its runner died making: ours to remove only if it is a regular file of
            // our own user (anything else under the name was planted by someone: left alone).
            Err(Error::NotShmline(why)) => {
                return if crate::shm::is_own_regular_file(SegmentKind::Pipeline, name) {
                    Ok(Cleanup::Dead(vec![(
                        SegmentKind::Pipeline,
                        name.to_owned(),
                    )]))
                } else {
                    Err(Error::NotShmline(format!(
                        "{why}; not a shmline segment of this user: left alone (delete it by \
                         hand if it is yours)"
                    )))
                };
            }
            Err(e) => return Err(e),
        };
        if registry.runner_alive() {
            return Ok(Cleanup::Alive(registry.info.runner));
        }
        let info = &registry.info;
        let mut stale = Vec::new();
        for s in &info.streams {
            match Stream::open(&s.segment) {
                Ok(stream) if stream.info().creator.is_alive() => {}
                Err(Error::NotFound(_)) => {}
                _ => stale.push((SegmentKind::Stream, s.segment.clone())),
            }
        }
        let stop = segment_name(&info.name, STOP_EVENT);
        for segment in info.events.iter().map(|e| &e.segment).chain([&stop]) {
            match Event::open(segment) {
                Ok(event) if event.creator().is_alive() => {}
                Err(Error::NotFound(_)) => {}
                _ => stale.push((SegmentKind::Event, segment.clone())),
            }
        }
        stale.push((SegmentKind::Pipeline, name.to_owned()));
        Ok(Cleanup::Dead(stale))
    }

    /// Removes the segments [`Registry::check_dead`] lists for pipeline `name` if its runner is
    /// dead, and returns the ones it removed; removes nothing if the runner is alive.
    pub fn remove_if_dead(name: &str) -> Result<Cleanup> {
        match Registry::check_dead(name)? {
            Cleanup::Dead(stale) => Ok(Cleanup::Dead(
                stale
                    .into_iter()
                    .filter(|(kind, segment)| Segment::unlink(*kind, segment).is_ok())
                    .collect(),
            )),
            alive => Ok(alive),
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Everything written once: streams, events, tasks, bindings, runner, settings.
    pub fn info(&self) -> &RegistryInfo {
        &self.info
    }

    /// Index of task `name`, if declared.
    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.info.tasks.iter().position(|t| t.name == name)
    }

    /// Whether the runner process is still alive.
    pub fn runner_alive(&self) -> bool {
        self.info.runner.is_alive()
    }

    /// The pipeline's current state.
    pub fn state(&self) -> Result<PipelineState> {
        // Acquire: pairs with the runner's SeqCst store, so what it did before is visible.
        let raw = self.header().state.load(Ordering::Acquire);
        PipelineState::from_u32(raw).ok_or_else(|| {
            Error::corrupt(format!(
                "pipeline {:?}: state is {raw}, not a known state",
                self.info.name
            ))
        })
    }

    /// Index of the first task that failed, if one did.
    pub fn failed_task(&self) -> Option<usize> {
        // Relaxed: a snapshot; the value only names a task.
        let raw = self.header().failed_task.load(Ordering::Relaxed) as usize;
        (1..=self.info.tasks.len()).contains(&raw).then(|| raw - 1)
    }

    /// When the pipeline started running and when it ended, nanoseconds since the Unix epoch
    /// (0: not yet).
    pub fn run_times(&self) -> (u64, u64) {
        // Relaxed: timestamps for display.
        let hdr = self.header();
        (
            hdr.started_unix_ns.load(Ordering::Relaxed),
            hdr.ended_unix_ns.load(Ordering::Relaxed),
        )
    }

    /// The live state of task `index` (`index < info().tasks.len()`).
    pub fn task_status(&self, index: usize) -> Result<TaskStatus> {
        let rec = self.task_record(index);
        // Acquire: pairs with the Release of whoever set the state, so the fields it published
        // before (pids, exit status) are visible.
        let raw = rec.state.load(Ordering::Acquire);
        let state = TaskState::from_u32(raw).ok_or_else(|| {
            Error::corrupt(format!(
                "pipeline {:?}: task {:?} has state {raw}, not a known state",
                self.info.name, self.info.tasks[index].name
            ))
        })?;
        let r = Ordering::Relaxed;
        let pid =
            |pid, start_time| Some(ProcessId::load(pid, start_time, r)).filter(|p| p.pid != 0);
        let exit = (state == TaskState::Exited).then(|| match rec.exit_signal.load(r) {
            0 => TaskExit::Code(rec.exit_code.load(r) as i32),
            sig => TaskExit::Signal(sig as i32),
        });
        Ok(TaskStatus {
            state,
            process: pid(&rec.pid, &rec.start_time),
            joined: pid(&rec.joined_pid, &rec.joined_start_time),
            exit,
            cpu: Duration::from_nanos(rec.cpu_ns.load(r)),
            started_unix_ns: rec.started_unix_ns.load(r),
            exited_unix_ns: rec.exited_unix_ns.load(r),
        })
    }

    /// What task `index` (`index < info().tasks.len()`) said about its failure before it exited
    /// (a task that stopped on the end of one input while another still had frames:
    /// [`super::check_inputs_ended`]); `None` if it said nothing. Bytes that are not UTF-8 are
    /// replaced, so a note is only ever text to show.
    pub fn task_note(&self, index: usize) -> Option<String> {
        let bytes: Vec<u8> = self
            .task_record(index)
            .note
            .iter()
            // Relaxed: the task wrote it before exiting and the runner reads it after reaping
            // the process; a reader racing a live task at worst shows a partly written note.
            .map(|b| b.load(Ordering::Relaxed))
            .take_while(|&b| b != 0)
            .collect();
        (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
    }

    // ---- runner side ----

    /// Records the new pipeline state and wakes every task waiting for it.
    pub(crate) fn set_state(&self, state: PipelineState) {
        let hdr = self.header();
        let now = realtime_ns();
        // Relaxed: timestamps for display, published by the SeqCst store below.
        match state {
            PipelineState::Running => hdr.started_unix_ns.store(now, Ordering::Relaxed),
            s if s.is_over() => hdr.ended_unix_ns.store(now, Ordering::Relaxed),
            _ => {}
        }
        // SeqCst: a joining task registers nothing before sleeping, so the futex value check
        // alone protects it: it sleeps only while the word still reads STARTING.
        hdr.state.store(state as u32, Ordering::SeqCst);
        futex_wake(&hdr.state, i32::MAX);
    }

    /// Records the first failed task (later calls keep the first).
    pub(crate) fn set_failed_task(&self, index: usize) {
        // Relaxed: a name for display; CAS keeps the first one.
        let _ = self.header().failed_task.compare_exchange(
            0,
            index as u32 + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Records that task `index`'s process started.
    pub(crate) fn task_started(&self, index: usize, process: ProcessId) {
        let rec = self.task_record(index);
        // Relaxed: published by the Release in the compare-exchange below (or, if the task has
        // already joined, by the runner's later state changes; they are only for display).
        rec.pid.store(process.pid, Ordering::Relaxed);
        rec.start_time.store(process.start_time, Ordering::Relaxed);
        rec.started_unix_ns.store(realtime_ns(), Ordering::Relaxed);
        // Release: publishes the fields above. A task that already joined keeps JOINED.
        let _ = rec.state.compare_exchange(
            TASK_PENDING,
            TASK_STARTED,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    /// Records that task `index`'s process could not be started.
    pub(crate) fn task_not_started(&self, index: usize) {
        // Release: as for every state change.
        self.task_record(index)
            .state
            .store(TASK_NOT_STARTED, Ordering::Release);
    }

    /// Records how task `index`'s process ended.
    pub(crate) fn task_exited(&self, index: usize, exit: TaskExit, cpu: Duration) {
        let rec = self.task_record(index);
        let r = Ordering::Relaxed;
        // Relaxed: published by the Release store of the state.
        match exit {
            TaskExit::Code(code) => {
                rec.exit_code.store(code as u32, r);
                rec.exit_signal.store(0, r);
            }
            TaskExit::Signal(sig) => rec.exit_signal.store(sig as u32, r),
        }
        rec.cpu_ns
            .store(cpu.as_nanos().min(u64::MAX as u128) as u64, r);
        rec.exited_unix_ns.store(realtime_ns(), r);
        // Release: publishes the exit fields.
        rec.state.store(TASK_EXITED, Ordering::Release);
    }

    // ---- task side ----

    /// Marks task `index` as joined by this process. Fails if it already joined, exited or
    /// never started.
    pub(crate) fn task_join(&self, index: usize) -> Result<()> {
        let rec = self.task_record(index);
        let me = ProcessId::current();
        let name = &self.info.tasks[index].name;
        // Relaxed: published by the Release compare-exchange below.
        rec.joined_pid.store(me.pid, Ordering::Relaxed);
        rec.joined_start_time
            .store(me.start_time, Ordering::Relaxed);
        for from in [TASK_STARTED, TASK_PENDING] {
            // AcqRel: Release publishes our pid; Acquire reads the runner's fields on failure.
            match rec
                .state
                .compare_exchange(from, TASK_JOINED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(TASK_PENDING) | Err(TASK_STARTED) => continue,
                Err(_) => break,
            }
        }
        let status = self.task_status(index)?;
        Err(Error::WrongState(match status.state {
            TaskState::Joined => format!(
                "task {name:?} of pipeline {:?} has already been joined (by pid {}); each task \
                 is joined once",
                self.info.name,
                status.joined.map_or(0, |p| p.pid)
            ),
            state => format!(
                "task {name:?} of pipeline {:?} cannot be joined: it is {}",
                self.info.name,
                state.name()
            ),
        }))
    }

    /// Leaves `note` (why task `index` fails, truncated to [`NOTE_FIELD`] - 1 bytes at a
    /// character boundary) in its record, for the runner to add to the failure it reports.
    pub(crate) fn set_task_note(&self, index: usize, note: &str) {
        // Read by the runner after this process exits (see `task_note`).
        store_str(&self.task_record(index).note, note);
    }

    /// Sleeps until the pipeline state is no longer `state`, at most `timeout`.
    pub(crate) fn wait_state_change(&self, state: PipelineState, timeout: Duration) {
        futex_wait(&self.header().state, state as u32, timeout);
    }

    fn header(&self) -> &PipelineHeader {
        // Both constructors checked that the header fits in the mapping.
        self.seg.at(0).expect("header validated at open")
    }

    fn task_record(&self, index: usize) -> &TaskRecord {
        self.record(self.geo.task(index as u32))
    }

    fn record<T: crate::layout::SharedStruct>(&self, offset: usize) -> &T {
        // The geometry was checked against the mapping's size at create/open.
        self.seg.at(offset).expect("registry tables validated")
    }
}

fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}

/// Writes `s` into a NUL-padded field, truncated at a character boundary so a NUL always ends it.
fn store_str(field: &[AtomicU8], s: &str) {
    let mut end = s.len().min(field.len() - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    for (i, dst) in field.iter().enumerate() {
        // Relaxed: published by something later (the registry's magic, or for a task's note the
        // exit of its process, which the runner waits for before reading it).
        dst.store(
            s.as_bytes()
                .get(..end)
                .and_then(|b| b.get(i))
                .copied()
                .unwrap_or(0),
            Ordering::Relaxed,
        );
    }
}

/// Reads a NUL-terminated UTF-8 field.
fn load_str(field: &[AtomicU8]) -> std::result::Result<String, String> {
    let bytes: Vec<u8> = field
        .iter()
        // Relaxed: write-once fields published with the registry's magic.
        .map(|b| b.load(Ordering::Relaxed))
        .take_while(|&b| b != 0)
        .collect();
    if bytes.len() == field.len() {
        return Err("is not NUL-terminated".into());
    }
    String::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())
}

/// Reads and validates every write-once record.
fn read_info(seg: &Segment, geo: &RegistryGeometry, name: &str) -> Result<RegistryInfo> {
    let what = format!("pipeline {name:?}");
    let at = |offset: usize| -> &PipelineHeader { seg.at(offset).expect("header fits") };
    let hdr = at(0);
    let r = Ordering::Relaxed;
    let corrupt = |entry: String, why: String| Error::corrupt(format!("{what}: {entry} {why}"));
    let member = |field: &[AtomicU8], entry: String| -> Result<String> {
        let text = load_str(field).map_err(|why| corrupt(format!("{entry} name"), why))?;
        crate::shm::validate_name(&text)
            .map_err(|e| corrupt(format!("{entry} name"), format!("is invalid: {e}")))?;
        Ok(text)
    };
    let tasks_n = geo.tasks as usize;
    let task_index = |value: u32, entry: &str| -> Result<usize> {
        if (value as usize) < tasks_n {
            Ok(value as usize)
        } else {
            Err(corrupt(
                entry.to_string(),
                format!("names task {value}, but there are {tasks_n} tasks"),
            ))
        }
    };

    let mut tasks = Vec::new();
    for i in 0..geo.tasks {
        let rec: &TaskRecord = seg.at(geo.task(i)).expect("validated geometry");
        let task_name = member(&rec.name, format!("task {i}"))?;
        let command = load_str(&rec.command)
            .map_err(|why| corrupt(format!("task {task_name:?} command"), why))?;
        tasks.push(TaskEntry {
            name: task_name,
            command,
        });
    }

    let mut streams = Vec::new();
    for i in 0..geo.streams {
        let rec: &StreamRecord = seg.at(geo.stream(i)).expect("validated geometry");
        let stream_name = member(&rec.name, format!("stream {i}"))?;
        let entry = format!("stream {stream_name:?}");
        let flags = rec.flags.load(r);
        if flags & !STREAM_FLAGS_KNOWN != 0 {
            return Err(corrupt(entry, format!("has unknown flags {flags:#x}")));
        }
        let schema = if flags & STREAM_FLAG_SCHEMA != 0 {
            let dtype =
                load_str(&rec.dtype).map_err(|why| corrupt(format!("{entry} dtype"), why))?;
            let ndim = rec.ndim.load(r) as usize;
            if ndim > MAX_NDIM {
                return Err(corrupt(entry, format!("has {ndim} dimensions")));
            }
            let shape: Vec<u64> = rec.shape[..ndim].iter().map(|d| d.load(r)).collect();
            Some(
                Schema::new(&dtype, &shape)
                    .map_err(|e| corrupt(format!("{entry} schema"), e.to_string()))?,
            )
        } else {
            None
        };
        debug_assert_eq!(rec.dtype.len(), DTYPE_LEN);
        let max_writers = rec.max_writers.load(r);
        if !(1..=MAX_WRITERS).contains(&max_writers) {
            return Err(corrupt(entry, format!("has max_writers {max_writers}")));
        }
        let writer_count = rec.writer_count.load(r) as usize;
        if !(1..=MAX_STREAM_READER_TASKS).contains(&writer_count) {
            return Err(corrupt(entry, format!("has {writer_count} writer tasks")));
        }
        let writer_tasks = rec.writer_tasks[..writer_count]
            .iter()
            .map(|t| task_index(t.load(r), &format!("{entry} writer_tasks")))
            .collect::<Result<Vec<_>>>()?;
        let reader_count = rec.reader_count.load(r) as usize;
        if reader_count > MAX_STREAM_READER_TASKS {
            return Err(corrupt(entry, format!("has {reader_count} reader tasks")));
        }
        let reader_tasks = rec.reader_tasks[..reader_count]
            .iter()
            .map(|t| task_index(t.load(r), &format!("{entry} reader_tasks")))
            .collect::<Result<Vec<_>>>()?;
        streams.push(StreamEntry {
            segment: segment_name(name, &stream_name),
            name: stream_name,
            schema,
            capacity: rec.capacity.load(r),
            max_frame_size: rec.max_frame.load(r),
            max_readers: rec.max_readers.load(r),
            max_writers,
            checksum: flags & STREAM_FLAG_CHECKSUM != 0,
            writer_task: writer_tasks.first().copied(),
            writer_tasks,
            reader_tasks,
        });
    }

    let mut events = Vec::new();
    for i in 0..geo.events {
        let rec: &EventRecord = seg.at(geo.event(i)).expect("validated geometry");
        let event_name = member(&rec.name, format!("event {i}"))?;
        let raw = rec.mode.load(r);
        let mode = EventMode::from_u32(raw)
            .ok_or_else(|| corrupt(format!("event {event_name:?}"), format!("has mode {raw}")))?;
        events.push(EventEntry {
            segment: segment_name(name, &event_name),
            name: event_name,
            mode,
        });
    }

    let mut bindings = Vec::new();
    for i in 0..geo.bindings {
        let rec: &BindingRecord = seg.at(geo.binding(i)).expect("validated geometry");
        let entry = format!("binding {i}");
        let param = member(&rec.param, entry.clone())?;
        let task = task_index(rec.task.load(r), &entry)?;
        let raw = rec.kind.load(r);
        let kind = BindingKind::from_u32(raw)
            .ok_or_else(|| corrupt(entry.clone(), format!("has kind {raw}")))?;
        let target = rec.target.load(r) as usize;
        let targets = if kind == BindingKind::Event {
            events.len()
        } else {
            streams.len()
        };
        if target >= targets {
            return Err(corrupt(
                entry,
                format!("targets {target}, but there are {targets}"),
            ));
        }
        let group = load_str(&rec.group).map_err(|why| corrupt(format!("{entry} group"), why))?;
        let group = match group.as_str() {
            "" => None,
            _ if kind != BindingKind::Read => {
                return Err(corrupt(
                    entry,
                    format!("has a group ({group:?}) but is not a read"),
                ))
            }
            _ => {
                super::validate::group_name_problem(&group)
                    .map_err(|e| corrupt(format!("{entry} group"), format!("is invalid: {e}")))?;
                Some(group)
            }
        };
        bindings.push(BindingEntry {
            task,
            kind,
            param,
            target,
            group,
        });
    }

    Ok(RegistryInfo {
        name: name.to_owned(),
        runner: ProcessId::load(&hdr.runner_pid, &hdr.runner_start_time, r),
        created_unix_ns: hdr.created_unix_ns.load(r),
        allow_cycles: hdr.flags.load(r) & PIPELINE_FLAG_ALLOW_CYCLES != 0,
        join_timeout: Duration::from_millis(hdr.join_timeout_ms.load(r) as u64),
        stop_grace: Duration::from_millis(hdr.stop_grace_ms.load(r) as u64),
        streams,
        events,
        tasks,
        bindings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{EventSpec, StreamSpec, TaskSpec};
    use std::sync::atomic::AtomicU32;

    fn create(what: &str) -> Registry {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // Relaxed: only uniqueness matters.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pipeline = Pipeline::new(format!("t-registry-{what}-{}-{n}", std::process::id()))
            .stream("samples", StreamSpec::array("<f4", &[2, 3]).checksum(true))
            .event("go", EventSpec::counting())
            .task(
                "source",
                TaskSpec::command("src").arg("-v").writes("out", "samples"),
            )
            .task(
                "sink",
                TaskSpec::command("snk")
                    .reads("input", "samples")
                    .event("go", "go"),
            );
        let plan = crate::pipeline::validate::check(&pipeline).unwrap();
        Registry::create(&pipeline, &plan).unwrap()
    }

    fn open_error(registry: &Registry) -> Error {
        Registry::open(registry.name()).unwrap_err()
    }

    #[test]
    fn an_opened_registry_says_what_its_creator_wrote() {
        let created = create("roundtrip");
        let opened = Registry::open(created.name()).unwrap();
        assert_eq!(opened.info(), created.info());
        let info = opened.info();
        assert_eq!(info.runner, ProcessId::current());
        assert_eq!(
            info.streams[0].schema,
            Some(Schema::new("<f4", &[2, 3]).unwrap())
        );
        assert!(info.streams[0].checksum);
        assert_eq!(info.streams[0].max_frame_size, 24);
        assert_eq!(info.streams[0].writer_task, Some(0));
        assert_eq!(info.streams[0].writer_tasks, vec![0]);
        assert_eq!(info.streams[0].reader_tasks, vec![1]);
        assert_eq!(info.streams[0].max_writers, 1);
        assert!(info.bindings.iter().all(|b| b.group.is_none()));
        assert_eq!(info.events[0].mode, EventMode::Counting);
        assert_eq!(info.tasks[0].command, "src -v");
        let kinds: Vec<(usize, BindingKind, &str)> = info
            .bindings
            .iter()
            .map(|b| (b.task, b.kind, b.param.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (0, BindingKind::Write, "out"),
                (1, BindingKind::Read, "input"),
                (1, BindingKind::Event, "go")
            ]
        );
        assert_eq!(opened.state().unwrap(), PipelineState::Starting);
        assert_eq!(opened.task_status(1).unwrap().state, TaskState::Pending);
    }

    #[test]
    fn every_writer_task_and_every_reader_group_is_read_back() {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // Relaxed: only uniqueness matters.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pipeline = Pipeline::new(format!("t-registry-groups-{}-{n}", std::process::id()))
            .stream("samples", StreamSpec::bytes(8))
            .stream("merged", StreamSpec::bytes(8).max_writers(5))
            .task("source", TaskSpec::command("s").writes("out", "samples"))
            .task(
                "w0",
                TaskSpec::command("w")
                    .reads_group("input", "samples", "fir")
                    .writes("out", "merged"),
            )
            .task(
                "w1",
                TaskSpec::command("w")
                    .reads_group("input", "samples", "fir")
                    .writes("out", "merged"),
            )
            .task(
                "sink",
                TaskSpec::command("k")
                    .reads("input", "merged")
                    .reads("tap", "samples"),
            );
        let plan = crate::pipeline::validate::check(&pipeline).unwrap();
        let created = Registry::create(&pipeline, &plan).unwrap();
        let opened = Registry::open(created.name()).unwrap();
        assert_eq!(opened.info(), created.info());
        let merged = &opened.info().streams[1];
        assert_eq!(merged.writer_tasks, vec![1, 2]);
        assert_eq!(merged.writer_task, Some(1));
        assert_eq!(merged.max_writers, 5);
        assert_eq!(opened.info().streams[0].reader_tasks, vec![1, 2, 3]);
        assert_eq!(opened.info().streams[0].max_writers, 1);
        let groups: Vec<(usize, &str, Option<&str>)> = opened
            .info()
            .bindings
            .iter()
            .filter(|b| b.kind == BindingKind::Read)
            .map(|b| (b.task, b.param.as_str(), b.group.as_deref()))
            .collect();
        assert_eq!(
            groups,
            [
                (1, "input", Some("fir")),
                (2, "input", Some("fir")),
                (3, "input", None),
                (3, "tap", None)
            ]
        );
    }

    #[test]
    fn a_version_1_registry_is_refused_by_version() {
        let registry = create("version1");
        registry.header().layout_version.store(1, Ordering::Relaxed);
        assert!(matches!(
            open_error(&registry),
            Error::VersionMismatch {
                found: 1,
                expected: REGISTRY_VERSION,
                ..
            }
        ));
    }

    #[test]
    fn task_states_and_exits_are_recorded_and_read_back() {
        let registry = create("states");
        let me = ProcessId::current();
        registry.task_started(0, me);
        registry.task_join(1).unwrap();
        registry.task_started(1, me);
        let status = registry.task_status(1).unwrap();
        assert_eq!(
            status.state,
            TaskState::Joined,
            "a later start keeps JOINED"
        );
        assert_eq!(status.joined, Some(me));
        assert!(matches!(registry.task_join(1), Err(Error::WrongState(_))));
        registry.task_exited(0, TaskExit::Signal(libc::SIGKILL), Duration::from_millis(5));
        registry.set_failed_task(0);
        registry.set_failed_task(1);
        let opened = Registry::open(registry.name()).unwrap();
        let status = opened.task_status(0).unwrap();
        assert_eq!(status.exit, Some(TaskExit::Signal(libc::SIGKILL)));
        assert_eq!(status.cpu, Duration::from_millis(5));
        assert_eq!(opened.failed_task(), Some(0), "the first failure is kept");
        assert_eq!(
            TaskExit::Signal(libc::SIGKILL).to_string(),
            "signal 9 (SIGKILL)"
        );
    }

    #[test]
    fn a_registry_with_a_foreign_magic_is_not_shmline() {
        let registry = create("magic");
        registry.header().magic.store(7, Ordering::Relaxed);
        assert!(matches!(open_error(&registry), Error::NotShmline(_)));
    }

    #[test]
    fn a_registry_of_another_layout_version_is_refused() {
        let registry = create("version");
        registry
            .header()
            .layout_version
            .store(99, Ordering::Relaxed);
        assert!(matches!(
            open_error(&registry),
            Error::VersionMismatch { found: 99, .. }
        ));
    }

    #[test]
    fn counts_that_disagree_with_the_offsets_or_size_are_corrupt() {
        let registry = create("counts");
        registry.header().task_count.store(3, Ordering::Relaxed);
        let e = open_error(&registry);
        assert!(matches!(e, Error::Corrupt(_)), "{e}");
        registry
            .header()
            .task_count
            .store(100_000, Ordering::Relaxed);
        let e = open_error(&registry);
        assert!(e.to_string().contains("100000 tasks"), "{e}");
    }

    #[test]
    fn out_of_range_indexes_unknown_kinds_and_unterminated_names_are_corrupt() {
        let registry = create("records");
        let stream: &StreamRecord = registry.record(registry.geo.stream(0));
        stream.writer_tasks[0].store(2, Ordering::Relaxed);
        assert!(open_error(&registry).to_string().contains("writer_tasks"));
        stream.writer_tasks[0].store(0, Ordering::Relaxed);
        stream.writer_count.store(0, Ordering::Relaxed);
        assert!(open_error(&registry).to_string().contains("0 writer tasks"));
        stream.writer_count.store(1, Ordering::Relaxed);
        stream.max_writers.store(0, Ordering::Relaxed);
        assert!(open_error(&registry).to_string().contains("max_writers 0"));
        stream.max_writers.store(1, Ordering::Relaxed);

        let binding: &BindingRecord = registry.record(registry.geo.binding(2));
        binding.target.store(1, Ordering::Relaxed);
        assert!(open_error(&registry).to_string().contains("binding 2"));
        binding.target.store(0, Ordering::Relaxed);
        binding.kind.store(9, Ordering::Relaxed);
        assert!(open_error(&registry).to_string().contains("kind 9"));
        binding.kind.store(BINDING_EVENT, Ordering::Relaxed);
        store_str(&binding.group, "g");
        assert!(open_error(&registry).to_string().contains("not a read"));
        store_str(&binding.group, "");
        let read: &BindingRecord = registry.record(registry.geo.binding(1));
        store_str(&read.group, "bad/group");
        assert!(open_error(&registry)
            .to_string()
            .contains("group is invalid"));
        // A registry binding has room for 255 bytes, a reader group for 63.
        store_str(&read.group, &"g".repeat(64));
        assert!(open_error(&registry).to_string().contains("64 bytes"));
        store_str(&read.group, "");

        let task = registry.task_record(0);
        for b in task.name.iter() {
            b.store(b'a', Ordering::Relaxed);
        }
        let e = open_error(&registry);
        assert!(matches!(e, Error::Corrupt(_)), "{e}");
        assert!(e.to_string().contains("NUL"), "{e}");
    }

    #[test]
    fn an_unknown_live_state_is_corrupt_not_a_panic() {
        let registry = create("state");
        registry.header().state.store(77, Ordering::Relaxed);
        assert!(matches!(registry.state(), Err(Error::Corrupt(_))));
        registry.task_record(0).state.store(77, Ordering::Relaxed);
        assert!(matches!(registry.task_status(0), Err(Error::Corrupt(_))));
    }

    #[test]
    fn long_commands_are_truncated_at_a_character_boundary() {
        let field: Vec<AtomicU8> = (0..8).map(|_| AtomicU8::new(0xff)).collect();
        store_str(&field, "abcdé€xyz");
        assert_eq!(load_str(&field).unwrap(), "abcdé");
    }
}
