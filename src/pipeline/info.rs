//! What a pipeline registry says once (its streams, events, tasks and parameters), read from
//! shared memory and validated when a registry is opened, and the NUL-padded string fields it is
//! written in.

use super::layout::*;
use super::segment_name;
use super::validate::BindingKind;
use crate::error::{Error, Result};
use crate::event::EventMode;
use crate::layout::{
    DTYPE_LEN, MAX_NDIM, MAX_WRITERS, STREAM_FLAGS_KNOWN, STREAM_FLAG_CHECKSUM, STREAM_FLAG_SCHEMA,
};
use crate::liveness::ProcessId;
use crate::schema::Schema;
use crate::shm::Segment;
use crate::sync::{AtomicU8, Ordering};
use std::time::Duration;

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

/// Writes `s` into a NUL-padded field, truncated at a character boundary so a NUL always ends it.
pub(super) fn store_str(field: &[AtomicU8], s: &str) {
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
pub(super) fn load_str(field: &[AtomicU8]) -> std::result::Result<String, String> {
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
pub(super) fn read_info(seg: &Segment, geo: &RegistryGeometry, name: &str) -> Result<RegistryInfo> {
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

    #[test]
    fn long_commands_are_truncated_at_a_character_boundary() {
        let field: Vec<AtomicU8> = (0..8).map(|_| AtomicU8::new(0xff)).collect();
        store_str(&field, "abcdé€xyz");
        assert_eq!(load_str(&field).unwrap(), "abcdé");
    }
}
