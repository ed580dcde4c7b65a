//! The compile step: checks a [`Pipeline`] declaration and turns it into a [`Plan`] of indexes the
//! registry and the runner use.
//!
//! Rules (as in PYTHUSA's compile step, plus fan-in and work sharing): names are valid and unique;
//! every stream has at least one writing task (several make it a multi-writer stream, within its
//! `max_writers`) and at least one reading binding; every binding names a declared stream or
//! event; a reading binding may join a reader group (a valid group name: the rule the library
//! applies when a reader joins, so a bad name is reported here and not when the task starts), and
//! a task reads a stream through one binding only; a stream has room for every group reading it; tasks do not form a cycle unless `allow_cycles` is set. Every problem
//! names its entry with the dotted key it has in a manifest (`tasks.scale.reads.input`), and all
//! of them are reported at once.

use super::layout::{BINDING_EVENT, BINDING_READ, BINDING_WRITE, MAX_STREAM_READER_TASKS};
use super::spec::{Binding, Pipeline};
use super::{ENV_PIPELINE, ENV_TASK, STOP_EVENT};
use crate::error::{Error, Result};
use crate::event::EventMode;
use crate::layout::{StreamGeometry, MAX_READERS, MAX_WRITERS};
use crate::ring::StreamOptions;
use crate::schema::Schema;
use std::collections::HashMap;
use std::fmt;

/// One thing wrong with a declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The offending entry, as the dotted key it has in a manifest: `pipeline.name`,
    /// `streams.samples`, `tasks.scale.reads.input`, ...
    pub entry: String,
    /// What is wrong, and usually how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.entry, self.message)
    }
}

/// What a task parameter is bound to.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindingKind {
    /// A reader of a stream.
    Read = BINDING_READ,
    /// A writer of a stream.
    Write = BINDING_WRITE,
    /// An event.
    Event = BINDING_EVENT,
}

impl BindingKind {
    /// The kind with this number (as stored in a registry).
    pub fn from_u32(value: u32) -> Option<BindingKind> {
        match value {
            BINDING_READ => Some(BindingKind::Read),
            BINDING_WRITE => Some(BindingKind::Write),
            BINDING_EVENT => Some(BindingKind::Event),
            _ => None,
        }
    }

    /// The manifest key of this kind of binding: `reads`, `writes` or `events`.
    pub fn key(self) -> &'static str {
        match self {
            BindingKind::Read => "reads",
            BindingKind::Write => "writes",
            BindingKind::Event => "events",
        }
    }
}

/// A validated declaration, with every name resolved to an index.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub streams: Vec<PlannedStream>,
    pub events: Vec<(String, EventMode)>,
    pub bindings: Vec<PlannedBinding>,
}

/// A stream ready to be created.
#[derive(Debug, Clone)]
pub(crate) struct PlannedStream {
    pub name: String,
    pub options: StreamOptions,
    /// The task of every writing binding, in binding order (at least one).
    pub writers: Vec<u32>,
    /// The task of every reading binding (plain or group), in binding order.
    pub readers: Vec<u32>,
}

/// A binding with its task and target resolved to indexes.
#[derive(Debug, Clone)]
pub(crate) struct PlannedBinding {
    pub task: u32,
    pub kind: BindingKind,
    pub param: String,
    pub target: u32,
    /// The reader group of a reading binding.
    pub group: Option<String>,
}

/// Every problem of `pipeline`, in declaration order (empty if it is valid).
pub fn problems(pipeline: &Pipeline) -> Vec<Problem> {
    match plan(pipeline) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

/// Checks `pipeline`, returning one [`Error::InvalidArgument`] that lists every problem.
pub(crate) fn check(pipeline: &Pipeline) -> Result<Plan> {
    plan(pipeline).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        Error::InvalidArgument(format!(
            "pipeline {:?} is invalid ({} problem{}):\n{}",
            pipeline.name,
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            list.join("\n")
        ))
    })
}

fn plan(p: &Pipeline) -> std::result::Result<Plan, Vec<Problem>> {
    let mut out = Problems::default();
    if let Err(e) = crate::shm::validate_name(&p.name) {
        out.add("pipeline.name", e.to_string());
    }
    if p.join_timeout.is_zero() {
        out.add(
            "pipeline.join_timeout",
            "must be more than zero: tasks need time to start and join",
        );
    }
    if p.tasks.is_empty() {
        out.add(
            "tasks",
            "the pipeline declares no task: there is nothing to run",
        );
    }

    let stream_index = index_names(p, "streams", p.streams.iter().map(|s| &s.name), &mut out);
    let event_index = index_names(p, "events", p.events.iter().map(|e| &e.name), &mut out);
    index_names(p, "tasks", p.tasks.iter().map(|t| &t.name), &mut out);

    // Who writes and reads each stream, and every binding resolved.
    let mut writers: Vec<Vec<u32>> = vec![Vec::new(); p.streams.len()];
    let mut readers: Vec<Vec<u32>> = vec![Vec::new(); p.streams.len()];
    // The distinct reader groups reading each stream, in first-seen order.
    let mut groups_of: Vec<Vec<&str>> = vec![Vec::new(); p.streams.len()];
    let mut bindings = Vec::new();
    for (t, task) in p.tasks.iter().enumerate() {
        let entry = format!("tasks.{}", task.name);
        check_command(&entry, task, &mut out);
        let mut params: HashMap<&str, BindingKind> = HashMap::new();
        // Stream index -> the parameter that reads it, for "reads the same stream twice".
        let mut read_streams: HashMap<u32, &str> = HashMap::new();
        let groups = [
            (BindingKind::Read, &task.reads),
            (BindingKind::Write, &task.writes),
            (BindingKind::Event, &task.events),
        ];
        for (kind, list) in groups {
            for Binding {
                param,
                target,
                group,
            } in list
            {
                let key = format!("{entry}.{}.{param}", kind.key());
                if let Some(group) = group {
                    if kind != BindingKind::Read {
                        out.add(
                            &key,
                            format!(
                                "only a reading parameter can join a reader group (group \
                                 {group:?}); bind it in `reads`",
                            ),
                        );
                    } else if let Err(why) = group_name_problem(group) {
                        out.add(format!("{key}.group"), format!("group name: {why}"));
                    }
                }
                if let Err(why) = member_name_problem(param) {
                    out.add(&key, format!("parameter name: {why}"));
                }
                if let Some(first) = params.insert(param, kind) {
                    out.add(
                        &key,
                        format!(
                            "parameter {param:?} is already bound in {entry}.{}; a task's \
                             parameter names must be unique",
                            first.key()
                        ),
                    );
                }
                let (index, noun, declared) = match kind {
                    BindingKind::Event => (&event_index, "event", &p.events.len()),
                    _ => (&stream_index, "stream", &p.streams.len()),
                };
                let Some(&target_index) = index.get(target.as_str()) else {
                    out.add(
                        &key,
                        format!(
                            "{noun} {target:?} is not declared ({})",
                            declared_list(p, kind, *declared)
                        ),
                    );
                    continue;
                };
                if kind == BindingKind::Read {
                    if let Some(first) = read_streams.insert(target_index, param) {
                        out.add(
                            &key,
                            format!(
                                "task {:?} already reads stream {target:?} (parameter {first:?}); \
                                 a task reads a stream once: to share its frames between \
                                 readers, give each its own task with the same group",
                                task.name
                            ),
                        );
                    }
                }
                if let (BindingKind::Read, Some(group)) = (kind, group) {
                    let known = &mut groups_of[target_index as usize];
                    if !known.contains(&group.as_str()) {
                        known.push(group);
                    }
                }
                match kind {
                    BindingKind::Read => readers[target_index as usize].push(t as u32),
                    BindingKind::Write => writers[target_index as usize].push(t as u32),
                    BindingKind::Event => {}
                }
                bindings.push(PlannedBinding {
                    task: t as u32,
                    kind,
                    param: param.clone(),
                    target: target_index,
                    group: group.clone().filter(|_| kind == BindingKind::Read),
                });
            }
        }
    }

    let mut streams = Vec::new();
    for (s, spec) in p.streams.iter().enumerate() {
        let entry = format!("streams.{}", spec.name);
        let task_names = |list: &[u32]| {
            list.iter()
                .map(|&t| format!("{:?}", p.tasks[t as usize].name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if writers[s].is_empty() {
            out.add(
                &entry,
                "no task writes this stream: bind it in some task's `writes`",
            );
        }
        if spec.max_writers != 0 && (spec.max_writers as usize) < writers[s].len() {
            out.add(
                format!("{entry}.max_writers"),
                format!(
                    "{} is fewer than the {} tasks that write this stream ({}); raise it, or \
                     leave it out to allow one writer per writing task",
                    spec.max_writers,
                    writers[s].len(),
                    task_names(&writers[s])
                ),
            );
        }
        if writers[s].len() > MAX_STREAM_READER_TASKS {
            out.add(
                &entry,
                format!(
                    "{} writing bindings; at most {MAX_STREAM_READER_TASKS} are supported",
                    writers[s].len()
                ),
            );
        }
        if readers[s].is_empty() {
            out.add(
                &entry,
                "no task reads this stream: bind it in some task's `reads`, or remove it",
            );
        }
        if readers[s].len() > MAX_STREAM_READER_TASKS {
            out.add(
                &entry,
                format!(
                    "{} reading bindings; at most {MAX_STREAM_READER_TASKS} are supported",
                    readers[s].len()
                ),
            );
        }
        let counts = Counts {
            readers: readers[s].len() as u32,
            writers: writers[s].len() as u32,
            groups: groups_of[s].len() as u32,
        };
        if let Some(options) = stream_options(&entry, spec, counts, &mut out) {
            streams.push(PlannedStream {
                name: spec.name.clone(),
                options,
                writers: writers[s].clone(),
                readers: readers[s].clone(),
            });
        }
    }

    if !p.allow_cycles {
        if let Some(cycle) = find_cycle(p, &writers, &readers) {
            out.add(
                format!("tasks.{}", p.tasks[cycle[0] as usize].name),
                format!(
                    "the tasks form a cycle: {}; a cycle of streams deadlocks once its rings are \
                     full; set allow_cycles = true if the tasks are written for it",
                    cycle
                        .iter()
                        .map(|&t| p.tasks[t as usize].name.as_str())
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ),
            );
        }
    }

    if out.0.is_empty() {
        Ok(Plan {
            streams,
            events: p.events.iter().map(|e| (e.name.clone(), e.mode)).collect(),
            bindings,
        })
    } else {
        Err(out.0)
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, entry: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            entry: entry.into(),
            message: message.into(),
        });
    }
}

/// Why `name` cannot name a stream, event, task or parameter, if it cannot.
fn member_name_problem(name: &str) -> std::result::Result<(), String> {
    crate::shm::validate_name(name).map_err(|e| e.to_string())?;
    if name.contains('.') {
        return Err(format!(
            "{name:?} contains '.', which separates the pipeline name from member names in \
             segment names; use '_' or '-'"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "{name:?} starts with \"__\", which is reserved for shmline's own names"
        ));
    }
    Ok(())
}

/// Why `name` cannot name a reader group, if it cannot: the library's rule for a group a reader
/// joins (`ReaderOptions::group`): 1 to 63 bytes of the characters a stream name may use.
/// Group names are not part of segment names, so unlike member names they may contain '.'.
pub(crate) fn group_name_problem(name: &str) -> std::result::Result<(), String> {
    crate::ring::validate_group_name(name).map_err(|e| e.to_string())
}

/// Checks the names of one section and maps each valid, first-seen name to its index.
fn index_names<'a>(
    p: &Pipeline,
    section: &str,
    names: impl Iterator<Item = &'a String>,
    out: &mut Problems,
) -> HashMap<&'a str, u32> {
    let mut index = HashMap::new();
    for (i, name) in names.enumerate() {
        let entry = format!("{section}.{name}");
        if let Err(why) = member_name_problem(name) {
            out.add(&entry, why);
            continue;
        }
        if section != "tasks" {
            let segment = format!("{}.{name}", p.name);
            if crate::shm::validate_name(&segment).is_err() && !p.name.is_empty() {
                out.add(
                    &entry,
                    format!(
                        "its segment name {segment:?} is longer than {} characters; use shorter \
                         names",
                        crate::shm::MAX_NAME_LEN
                    ),
                );
            }
        }
        if index.insert(name.as_str(), i as u32).is_some() {
            out.add(&entry, format!("{section} {name:?} is declared twice"));
        }
    }
    if section == "events" && index.contains_key(STOP_EVENT) {
        out.add(
            format!("events.{STOP_EVENT}"),
            "this name is reserved for the pipeline's stop event",
        );
    }
    index
}

fn check_command(entry: &str, task: &super::spec::TaskSpec, out: &mut Problems) {
    if task.command.is_empty() {
        out.add(format!("{entry}.command"), "the command is empty");
    }
    if task.command.contains('\0') || task.args.iter().any(|a| a.contains('\0')) {
        out.add(
            format!("{entry}.command"),
            "the command or an argument contains a NUL byte",
        );
    }
    for (key, value) in &task.env {
        let env_entry = format!("{entry}.env.{key}");
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            out.add(
                &env_entry,
                "an environment variable name must be non-empty without '=' or NUL, and its \
                 value without NUL",
            );
        }
        if key == ENV_PIPELINE || key == ENV_TASK {
            out.add(
                &env_entry,
                format!("{key} is set by the runner and cannot be overridden"),
            );
        }
    }
}

fn declared_list(p: &Pipeline, kind: BindingKind, count: usize) -> String {
    let names: Vec<&str> = match kind {
        BindingKind::Event => p.events.iter().map(|e| e.name.as_str()).collect(),
        _ => p.streams.iter().map(|s| s.name.as_str()).collect(),
    };
    let noun = if kind == BindingKind::Event {
        "events"
    } else {
        "streams"
    };
    if count == 0 {
        format!("the pipeline declares no {noun}")
    } else {
        format!("declared {noun}: {}", names.join(", "))
    }
}

/// How many tasks read and write a stream, and how many reader groups its readers join.
struct Counts {
    readers: u32,
    writers: u32,
    groups: u32,
}

/// Reader groups a pipeline stream has room for when `declared` groups read it: every declared
/// group, and at least the library's default (4) so that monitors and ad-hoc consumers can still
/// form groups of their own while the pipeline runs. A stream has at most
/// [`MAX_STREAM_READER_TASKS`] reading bindings, fewer than [`MAX_GROUPS`](crate::layout::MAX_GROUPS),
/// so every declared group fits.
fn max_groups(declared: u32) -> u32 {
    declared.max(StreamOptions::default().max_groups)
}

/// Resolves a stream's schema and geometry for its readers, writers and groups, reporting what
/// is out of range.
fn stream_options(
    entry: &str,
    spec: &super::spec::StreamSpec,
    counts: Counts,
    out: &mut Problems,
) -> Option<StreamOptions> {
    let Counts {
        readers: reader_count,
        writers: writer_count,
        groups: group_count,
    } = counts;
    let schema = match &spec.dtype {
        Some(dtype) => match Schema::new(dtype, &spec.shape) {
            Ok(schema) => Some(schema),
            Err(e) => {
                out.add(format!("{entry}.dtype"), e.to_string());
                return None;
            }
        },
        None if !spec.shape.is_empty() => {
            out.add(
                format!("{entry}.shape"),
                "a shape needs a dtype (e.g. dtype = \"<f4\")",
            );
            return None;
        }
        None => None,
    };
    let max_frame = match (&schema, spec.max_frame_size) {
        (None, 0) => {
            out.add(
                entry,
                "give the stream a max_frame_size (bytes), or a dtype and shape",
            );
            return None;
        }
        (Some(schema), 0) => schema.frame_size() as u32,
        (Some(schema), n) if (n as u64) < schema.frame_size() => {
            out.add(
                format!("{entry}.max_frame_size"),
                format!(
                    "{n} is smaller than a frame of {schema} ({} bytes)",
                    schema.frame_size()
                ),
            );
            return None;
        }
        (_, n) => n,
    };
    let max_readers = match spec.max_readers {
        0 => (reader_count + 4).clamp(8, MAX_READERS),
        n if n < reader_count => {
            out.add(
                format!("{entry}.max_readers"),
                format!("{n} is fewer than the {reader_count} tasks that read this stream"),
            );
            return None;
        }
        n => n,
    };
    // Already reported (fewer than the writing tasks) when non-zero and below the count.
    let max_writers = match spec.max_writers {
        0 => writer_count.clamp(1, MAX_WRITERS),
        n => n,
    };
    let max_groups = max_groups(group_count);
    if let Err(why) = StreamGeometry::new(
        spec.capacity,
        max_frame,
        max_readers,
        max_writers,
        max_groups,
    ) {
        out.add(entry, why);
        return None;
    }
    Some(StreamOptions {
        capacity: spec.capacity,
        max_frame_size: max_frame,
        max_readers,
        max_writers,
        max_groups,
        schema,
        checksum: spec.checksum,
        backpressure: spec.backpressure,
        ..Default::default()
    })
}

/// A cycle of tasks (first task repeated at the end), if the streams form one.
fn find_cycle(p: &Pipeline, writers: &[Vec<u32>], readers: &[Vec<u32>]) -> Option<Vec<u32>> {
    let n = p.tasks.len();
    let mut next: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (w, r) in writers.iter().zip(readers) {
        for &from in w {
            next[from as usize].extend(r.iter().copied());
        }
    }
    // Iterative depth-first search; colour 1 = on the current path, 2 = done.
    let mut colour = vec![0u8; n];
    for root in 0..n {
        if colour[root] != 0 {
            continue;
        }
        let mut path: Vec<(u32, usize)> = vec![(root as u32, 0)];
        colour[root] = 1;
        while let Some(&mut (node, ref mut edge)) = path.last_mut() {
            if let Some(&succ) = next[node as usize].get(*edge) {
                *edge += 1;
                match colour[succ as usize] {
                    0 => {
                        colour[succ as usize] = 1;
                        path.push((succ, 0));
                    }
                    1 => {
                        let start = path.iter().position(|&(t, _)| t == succ)?;
                        let mut cycle: Vec<u32> = path[start..].iter().map(|&(t, _)| t).collect();
                        cycle.push(succ);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                colour[node as usize] = 2;
                path.pop();
            }
        }
    }
    None
}
