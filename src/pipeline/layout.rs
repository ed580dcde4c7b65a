//! The byte-level format of a pipeline registry segment (`/dev/shm/shmline.pipeline.NAME`).
//!
//! A registry is a [`PipelineHeader`] followed by four tables of fixed-size records, in this order:
//! streams ([`StreamRecord`]), events ([`EventRecord`]), tasks ([`TaskRecord`]) and bindings
//! ([`BindingRecord`]). Every record size is a multiple of 128 bytes, so every table starts on a
//! 128-byte boundary. The runner writes everything except the fields marked "task" before it
//! publishes `magic`; after that only the live fields change. Section 9 of `docs/LAYOUT.md` is the
//! prose form of this file.
//!
//! Like every shared-memory struct, these are `#[repr(C)]`, made only of atomics, and every value
//! read from them is untrusted: `registry.rs` validates counts, offsets, names and indexes once at
//! open time and copies them out.

use crate::layout::{SharedStruct, DTYPE_LEN, MAX_NDIM};
use crate::sync::{AtomicU32, AtomicU64, AtomicU8};
use std::mem::size_of;

pub use crate::layout::{PIPELINE_HEADER_SIZE, PIPELINE_MAGIC};

/// Version of the registry layout (this file and section 9 of `docs/LAYOUT.md`), stored in
/// [`PipelineHeader::layout_version`]. It is the registry's own: it changes with the registry's
/// bytes, independently of the stream and event [`crate::LAYOUT_VERSION`]. Version 1 had one
/// writing task per stream and no reader groups; version 2 lists every writing task of a stream
/// and the reader group of every reading binding; version 3 adds the task's `note`.
pub const REGISTRY_VERSION: u32 = 3;

/// Bytes of every name field: a name of at most 200 bytes, NUL-padded (so always NUL-terminated).
pub const NAME_FIELD: usize = 256;
/// Bytes of a task's note field: why it failed, truncated to 511 bytes, NUL-padded.
pub const NOTE_FIELD: usize = 512;
/// Bytes of a task's command field: the command line, truncated, NUL-padded.
pub const COMMAND_FIELD: usize = 256;

/// Most streams one pipeline may declare.
pub const MAX_PIPELINE_STREAMS: u32 = 1024;
/// Most events one pipeline may declare.
pub const MAX_PIPELINE_EVENTS: u32 = 1024;
/// Most tasks one pipeline may declare.
pub const MAX_PIPELINE_TASKS: u32 = 1024;
/// Most bindings (task parameters) one pipeline may declare, all tasks together.
pub const MAX_PIPELINE_BINDINGS: u32 = 8192;
/// Most reading bindings one stream may have (the size of [`StreamRecord::reader_tasks`]), and
/// most writing bindings (the size of [`StreamRecord::writer_tasks`]).
pub const MAX_STREAM_READER_TASKS: usize = 32;

/// Pipeline state: the runner is creating streams, starting tasks and waiting for them to join.
pub const PIPELINE_STARTING: u32 = 1;
/// Pipeline state: every task has joined; writers may publish.
pub const PIPELINE_RUNNING: u32 = 2;
/// Pipeline state: the runner is stopping the tasks (failure, signal or request).
pub const PIPELINE_STOPPING: u32 = 3;
/// Pipeline state: every task exited with status 0.
pub const PIPELINE_FINISHED: u32 = 4;
/// Pipeline state: a task failed, could not start or never joined.
pub const PIPELINE_FAILED: u32 = 5;
/// Pipeline state: stopped on request (a signal to the runner, or its owner asked).
pub const PIPELINE_STOPPED: u32 = 6;

/// Pipeline flag: the declaration allowed cycles between tasks.
pub const PIPELINE_FLAG_ALLOW_CYCLES: u32 = 1 << 0;

/// Task state: declared, process not started yet.
pub const TASK_PENDING: u32 = 0;
/// Task state: process started (`pid`, `start_time` valid), not joined yet.
pub const TASK_STARTED: u32 = 1;
/// Task state: a process joined as this task (`joined_pid`, `joined_start_time` valid).
pub const TASK_JOINED: u32 = 2;
/// Task state: the process exited (`exit_code` or `exit_signal` valid).
pub const TASK_EXITED: u32 = 3;
/// Task state: the process could not be started (e.g. the command does not exist).
pub const TASK_NOT_STARTED: u32 = 4;

/// Binding kind: the parameter is a reader of stream `target`.
pub const BINDING_READ: u32 = 1;
/// Binding kind: the parameter is a writer of stream `target`.
pub const BINDING_WRITE: u32 = 2;
/// Binding kind: the parameter is event `target`.
pub const BINDING_EVENT: u32 = 3;

/// Header of a pipeline registry: two 128-byte lines at offset 0.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct PipelineHeader {
    // ---- line 0 (0..128): identity and geometry; written once by the runner ----
    /// [`PIPELINE_MAGIC`]; stored last (Release) by the runner, so a process that sees it
    /// (Acquire) sees every record and every other runner-written field.
    pub magic: AtomicU64,
    /// [`REGISTRY_VERSION`] of the runner.
    pub layout_version: AtomicU32,
    /// Size of this header in bytes (256).
    pub header_size: AtomicU32,
    /// Total size of the segment; equals the size of the shared-memory object and
    /// `bindings_offset + binding_count * 640`.
    pub segment_size: AtomicU64,
    /// Number of stream records (`0..=MAX_PIPELINE_STREAMS`).
    pub stream_count: AtomicU32,
    /// Number of event records (`0..=MAX_PIPELINE_EVENTS`).
    pub event_count: AtomicU32,
    /// Number of task records (`1..=MAX_PIPELINE_TASKS`).
    pub task_count: AtomicU32,
    /// Number of binding records (`0..=MAX_PIPELINE_BINDINGS`).
    pub binding_count: AtomicU32,
    /// Offset of the stream table: 256 (right after the header).
    pub streams_offset: AtomicU64,
    /// Offset of the event table: `streams_offset + stream_count * 640`.
    pub events_offset: AtomicU64,
    /// Offset of the task table: `events_offset + event_count * 384`.
    pub tasks_offset: AtomicU64,
    /// Offset of the binding table: `tasks_offset + task_count * 640`.
    pub bindings_offset: AtomicU64,
    /// Pid of the runner (the process that created the registry and starts the tasks).
    pub runner_pid: AtomicU32,
    /// `PIPELINE_FLAG_*` bits.
    pub flags: AtomicU32,
    /// Start time of the runner process (see `liveness`).
    pub runner_start_time: AtomicU64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: AtomicU64,
    /// How long tasks may take to join, in milliseconds; a joining task waits this long for the
    /// start barrier too.
    pub join_timeout_ms: AtomicU32,
    /// How long the runner waits after SIGTERM before SIGKILL, in milliseconds.
    pub stop_grace_ms: AtomicU32,
    /// Reserved, zero.
    pub _reserved0: [AtomicU64; 3],

    // ---- line 1 (128..256): live state; written by the runner ----
    /// `PIPELINE_*` state; also the futex word joining tasks sleep on while it is
    /// `PIPELINE_STARTING`. The runner wakes every sleeper after each change.
    pub state: AtomicU32,
    /// Index + 1 of the first task that failed (0: none).
    pub failed_task: AtomicU32,
    /// When the pipeline became `RUNNING`, nanoseconds since the Unix epoch (0: not yet).
    pub started_unix_ns: AtomicU64,
    /// When the pipeline ended (finished, failed or stopped), nanoseconds since the Unix epoch.
    pub ended_unix_ns: AtomicU64,
    /// Reserved, zero.
    pub _reserved1: [AtomicU64; 13],
}

/// One declared stream: 640 bytes. Written once by the runner.
///
/// The stream itself is the stream segment named `<pipeline>.<name>`.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct StreamRecord {
    /// The stream's name within the pipeline, NUL-padded.
    pub name: [AtomicU8; NAME_FIELD],
    /// NumPy dtype string, NUL-padded; empty without a schema (as in the stream header).
    pub dtype: [AtomicU8; DTYPE_LEN],
    /// Frame shape; entries past `ndim` are zero.
    pub shape: [AtomicU64; MAX_NDIM],
    /// Number of dimensions (`0..=MAX_NDIM`).
    pub ndim: AtomicU32,
    /// Slots in the ring.
    pub capacity: AtomicU32,
    /// Largest frame in bytes.
    pub max_frame: AtomicU32,
    /// Reader table entries of the stream segment.
    pub max_readers: AtomicU32,
    /// `STREAM_FLAG_*` bits of the stream segment (checksum, schema).
    pub flags: AtomicU32,
    /// Number of valid entries in `writer_tasks` (`1..=MAX_STREAM_READER_TASKS`).
    pub writer_count: AtomicU32,
    /// Number of valid entries in `reader_tasks` (`0..=MAX_STREAM_READER_TASKS`).
    pub reader_count: AtomicU32,
    /// Writer table size of the stream segment (`1..=MAX_WRITERS`; above 1: a multi-writer
    /// stream).
    pub max_writers: AtomicU32,
    /// Index of the task of each reading binding, in binding order (plain and group readers).
    pub reader_tasks: [AtomicU32; MAX_STREAM_READER_TASKS],
    /// Index of the task of each writing binding, in binding order.
    pub writer_tasks: [AtomicU32; MAX_STREAM_READER_TASKS],
}

/// One declared event: 384 bytes. Written once by the runner.
///
/// The event itself is the event segment named `<pipeline>.<name>`.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct EventRecord {
    /// The event's name within the pipeline, NUL-padded.
    pub name: [AtomicU8; NAME_FIELD],
    /// `EVENT_MODE_FLAG` or `EVENT_MODE_COUNTING`.
    pub mode: AtomicU32,
    /// Reserved, zero.
    pub _pad0: AtomicU32,
    /// Reserved, zero.
    pub _reserved: [AtomicU64; 15],
}

/// One declared task: 1152 bytes.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct TaskRecord {
    /// The task's name, NUL-padded. Written once by the runner.
    pub name: [AtomicU8; NAME_FIELD],
    /// Command line for display (program and arguments separated by spaces), truncated to 255
    /// bytes at a character boundary, NUL-padded. Written once by the runner.
    pub command: [AtomicU8; COMMAND_FIELD],
    /// `TASK_*` state. The runner moves it PENDING -> STARTED (compare-exchange), any -> EXITED
    /// or NOT_STARTED; the joining task moves PENDING or STARTED -> JOINED (compare-exchange).
    pub state: AtomicU32,
    /// Pid of the process the runner started (runner; valid from STARTED on).
    pub pid: AtomicU32,
    /// Start time of that process (runner).
    pub start_time: AtomicU64,
    /// Pid of the process that joined as this task (task; valid from JOINED on). Usually `pid`,
    /// but a wrapper script's child or a process started by hand may join instead.
    pub joined_pid: AtomicU32,
    /// Exit code when the process exited normally (runner; valid in EXITED with `exit_signal` 0).
    pub exit_code: AtomicU32,
    /// Start time of the joined process (task).
    pub joined_start_time: AtomicU64,
    /// Number of the signal that killed the process, 0 if it exited normally (runner).
    pub exit_signal: AtomicU32,
    /// Reserved, zero.
    pub _pad0: AtomicU32,
    /// When the runner started the process, nanoseconds since the Unix epoch (runner).
    pub started_unix_ns: AtomicU64,
    /// When the process exited, nanoseconds since the Unix epoch (runner).
    pub exited_unix_ns: AtomicU64,
    /// CPU time (user + system) of the process and its waited-for children, in nanoseconds, as
    /// reported when it exited (runner).
    pub cpu_ns: AtomicU64,
    /// Reserved, zero.
    pub _reserved: [AtomicU64; 8],
    /// Why the task failed, in its own words, NUL-padded UTF-8 (empty: nothing said). Written by
    /// the task before it exits (today: a task that stopped on the end of one input while another
    /// still had frames); the runner reads it once the process has exited and adds it to the
    /// failure it reports.
    pub note: [AtomicU8; NOTE_FIELD],
}

/// One parameter of one task, bound to a stream or an event: 640 bytes. Written once by the
/// runner. Bindings are stored in task order, and within a task as reads, writes, events.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct BindingRecord {
    /// The parameter name the task asks for (`reader("samples")`), NUL-padded.
    pub param: [AtomicU8; NAME_FIELD],
    /// Index of the task.
    pub task: AtomicU32,
    /// `BINDING_READ`, `BINDING_WRITE` or `BINDING_EVENT`.
    pub kind: AtomicU32,
    /// Index of the stream (read, write) or event (event) in its table.
    pub target: AtomicU32,
    /// Reserved, zero.
    pub _pad0: AtomicU32,
    /// Reserved, zero.
    pub _reserved: [AtomicU64; 14],
    /// For a `BINDING_READ`: the reader group the reader joins, NUL-padded; empty (all zero) for
    /// a plain reader, and for every other kind.
    pub group: [AtomicU8; NAME_FIELD],
}

// SAFETY: every field of these structs is an atomic or an array of atomics, and they are repr(C).
unsafe impl SharedStruct for PipelineHeader {}
// SAFETY: as above.
unsafe impl SharedStruct for StreamRecord {}
// SAFETY: as above.
unsafe impl SharedStruct for EventRecord {}
// SAFETY: as above.
unsafe impl SharedStruct for TaskRecord {}
// SAFETY: as above.
unsafe impl SharedStruct for BindingRecord {}

/// Size of a [`StreamRecord`].
pub const STREAM_RECORD_SIZE: u64 = size_of::<StreamRecord>() as u64;
/// Size of an [`EventRecord`].
pub const EVENT_RECORD_SIZE: u64 = size_of::<EventRecord>() as u64;
/// Size of a [`TaskRecord`].
pub const TASK_RECORD_SIZE: u64 = size_of::<TaskRecord>() as u64;
/// Size of a [`BindingRecord`].
pub const BINDING_RECORD_SIZE: u64 = size_of::<BindingRecord>() as u64;

/// Where each table of a registry starts, computed from the record counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryGeometry {
    /// Number of streams.
    pub streams: u32,
    /// Number of events.
    pub events: u32,
    /// Number of tasks.
    pub tasks: u32,
    /// Number of bindings.
    pub bindings: u32,
    /// Offset of the stream table.
    pub streams_offset: u64,
    /// Offset of the event table.
    pub events_offset: u64,
    /// Offset of the task table.
    pub tasks_offset: u64,
    /// Offset of the binding table.
    pub bindings_offset: u64,
    /// Total size of the segment.
    pub segment_size: u64,
}

impl RegistryGeometry {
    /// The geometry for these counts, or which count is out of range.
    pub fn new(streams: u32, events: u32, tasks: u32, bindings: u32) -> Result<Self, String> {
        let check = |what: &str, n: u32, min: u32, max: u32| {
            if n < min || n > max {
                Err(format!("{n} {what}: between {min} and {max} are allowed"))
            } else {
                Ok(())
            }
        };
        check("streams", streams, 0, MAX_PIPELINE_STREAMS)?;
        check("events", events, 0, MAX_PIPELINE_EVENTS)?;
        check("tasks", tasks, 1, MAX_PIPELINE_TASKS)?;
        check("bindings", bindings, 0, MAX_PIPELINE_BINDINGS)?;
        // No overflow: every count is bounded above, so the total is a few megabytes at most.
        let streams_offset = PIPELINE_HEADER_SIZE;
        let events_offset = streams_offset + streams as u64 * STREAM_RECORD_SIZE;
        let tasks_offset = events_offset + events as u64 * EVENT_RECORD_SIZE;
        let bindings_offset = tasks_offset + tasks as u64 * TASK_RECORD_SIZE;
        let segment_size = bindings_offset + bindings as u64 * BINDING_RECORD_SIZE;
        Ok(RegistryGeometry {
            streams,
            events,
            tasks,
            bindings,
            streams_offset,
            events_offset,
            tasks_offset,
            bindings_offset,
            segment_size,
        })
    }

    /// Offset of stream record `i` (`i < streams`).
    pub fn stream(&self, i: u32) -> usize {
        debug_assert!(i < self.streams);
        (self.streams_offset + i as u64 * STREAM_RECORD_SIZE) as usize
    }

    /// Offset of event record `i` (`i < events`).
    pub fn event(&self, i: u32) -> usize {
        debug_assert!(i < self.events);
        (self.events_offset + i as u64 * EVENT_RECORD_SIZE) as usize
    }

    /// Offset of task record `i` (`i < tasks`).
    pub fn task(&self, i: u32) -> usize {
        debug_assert!(i < self.tasks);
        (self.tasks_offset + i as u64 * TASK_RECORD_SIZE) as usize
    }

    /// Offset of binding record `i` (`i < bindings`).
    pub fn binding(&self, i: u32) -> usize {
        debug_assert!(i < self.bindings);
        (self.bindings_offset + i as u64 * BINDING_RECORD_SIZE) as usize
    }
}

// The registry layout is part of the cross-language contract: pin every offset.
#[cfg(not(loom))]
const _: () = {
    use crate::layout::LINE;
    use std::mem::offset_of;
    assert!(size_of::<PipelineHeader>() == 2 * LINE);
    assert!(size_of::<PipelineHeader>() as u64 == PIPELINE_HEADER_SIZE);
    assert!(offset_of!(PipelineHeader, magic) == 0);
    assert!(offset_of!(PipelineHeader, layout_version) == 8);
    assert!(offset_of!(PipelineHeader, header_size) == 12);
    assert!(offset_of!(PipelineHeader, segment_size) == 16);
    assert!(offset_of!(PipelineHeader, stream_count) == 24);
    assert!(offset_of!(PipelineHeader, event_count) == 28);
    assert!(offset_of!(PipelineHeader, task_count) == 32);
    assert!(offset_of!(PipelineHeader, binding_count) == 36);
    assert!(offset_of!(PipelineHeader, streams_offset) == 40);
    assert!(offset_of!(PipelineHeader, events_offset) == 48);
    assert!(offset_of!(PipelineHeader, tasks_offset) == 56);
    assert!(offset_of!(PipelineHeader, bindings_offset) == 64);
    assert!(offset_of!(PipelineHeader, runner_pid) == 72);
    assert!(offset_of!(PipelineHeader, flags) == 76);
    assert!(offset_of!(PipelineHeader, runner_start_time) == 80);
    assert!(offset_of!(PipelineHeader, created_unix_ns) == 88);
    assert!(offset_of!(PipelineHeader, join_timeout_ms) == 96);
    assert!(offset_of!(PipelineHeader, stop_grace_ms) == 100);
    assert!(offset_of!(PipelineHeader, state) == 128);
    assert!(offset_of!(PipelineHeader, failed_task) == 132);
    assert!(offset_of!(PipelineHeader, started_unix_ns) == 136);
    assert!(offset_of!(PipelineHeader, ended_unix_ns) == 144);

    assert!(size_of::<StreamRecord>() == 5 * LINE);
    assert!(offset_of!(StreamRecord, name) == 0);
    assert!(offset_of!(StreamRecord, dtype) == 256);
    assert!(offset_of!(StreamRecord, shape) == 288);
    assert!(offset_of!(StreamRecord, ndim) == 352);
    assert!(offset_of!(StreamRecord, capacity) == 356);
    assert!(offset_of!(StreamRecord, max_frame) == 360);
    assert!(offset_of!(StreamRecord, max_readers) == 364);
    assert!(offset_of!(StreamRecord, flags) == 368);
    assert!(offset_of!(StreamRecord, writer_count) == 372);
    assert!(offset_of!(StreamRecord, reader_count) == 376);
    assert!(offset_of!(StreamRecord, max_writers) == 380);
    assert!(offset_of!(StreamRecord, reader_tasks) == 384);
    assert!(offset_of!(StreamRecord, writer_tasks) == 512);

    assert!(size_of::<EventRecord>() == 3 * LINE);
    assert!(offset_of!(EventRecord, name) == 0);
    assert!(offset_of!(EventRecord, mode) == 256);

    assert!(size_of::<TaskRecord>() == 9 * LINE);
    assert!(offset_of!(TaskRecord, name) == 0);
    assert!(offset_of!(TaskRecord, command) == 256);
    assert!(offset_of!(TaskRecord, state) == 512);
    assert!(offset_of!(TaskRecord, pid) == 516);
    assert!(offset_of!(TaskRecord, start_time) == 520);
    assert!(offset_of!(TaskRecord, joined_pid) == 528);
    assert!(offset_of!(TaskRecord, exit_code) == 532);
    assert!(offset_of!(TaskRecord, joined_start_time) == 536);
    assert!(offset_of!(TaskRecord, exit_signal) == 544);
    assert!(offset_of!(TaskRecord, started_unix_ns) == 552);
    assert!(offset_of!(TaskRecord, exited_unix_ns) == 560);
    assert!(offset_of!(TaskRecord, cpu_ns) == 568);
    assert!(offset_of!(TaskRecord, note) == 640);

    assert!(size_of::<BindingRecord>() == 5 * LINE);
    assert!(offset_of!(BindingRecord, param) == 0);
    assert!(offset_of!(BindingRecord, task) == 256);
    assert!(offset_of!(BindingRecord, kind) == 260);
    assert!(offset_of!(BindingRecord, target) == 264);
    assert!(offset_of!(BindingRecord, group) == 384);
};
