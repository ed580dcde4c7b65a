//! The TOML manifest: the same content as a [`Pipeline`] declared in code.
//!
//! ```toml
//! [pipeline]
//! name = "demo"
//! # allow_cycles = false
//! # join_timeout = 30.0     # seconds
//! # stop_grace = 2.0        # seconds
//!
//! [streams.samples]
//! dtype = "float32"         # a NumPy dtype name or type string ("<f4"), as Python accepts
//! shape = [1024]
//! capacity = 64             # slots, a power of two (default 64; `frames` is PYTHUSA's name)
//! backpressure = "block"    # when the ring is full: block, fail, drop_newest or drop_oldest
//! # checksum = true         # a CRC32C in every frame, checked by readers
//! # max_readers = 0         # reader table size (0: every reading task + 4 monitors)
//!
//! [streams.log]
//! max_frame_size = 256      # raw frames of up to 256 bytes
//! max_writers = 4           # default: one per writing task (several tasks may write a stream)
//!
//! [events.go]
//! mode = "flag"             # or "counting"
//!
//! [tasks.source]
//! command = "./source"
//! args = ["--rate", "1000"]
//! env = { SEED = "1" }
//! stdout = "logs/source.log"      # appended to; default: the runner's stdout
//! writes = { out = "samples" }    # parameter name = stream name
//!
//! [tasks.sink]
//! command = "python3"
//! args = ["sink.py"]
//! reads = { input = "samples" }
//! writes = { log = "log" }
//! events = { go = "go" }
//!
//! [tasks.worker]
//! command = "./worker"
//! # A member of reader group "workers" of stream samples: the members of a group (usually in
//! # several tasks) share its frames, each frame going to exactly one of them.
//! reads = { input = { stream = "samples", group = "workers" } }
//! writes = { log = "log" }         # a second writer of stream log
//!
//! # Streams that cross hosts (docs/BRIDGE.md): `export` publishes a stream of this pipeline on a
//! # Zenoh key, `import` feeds one from a key published on another host. Each becomes a task
//! # (`bridge-export-NAME`, `bridge-import-NAME`) running `shmline bridge ...`.
//! # [streams.remote_samples]
//! # import = "lab/samples"   # declare the origin's dtype/shape or max_frame_size too
//! # [bridge]
//! # connect = ["tcp/192.0.2.7:7447"]   # and/or listen = [...]; lossy = false; lease = 5.0
//! ```
//!
//! Unknown keys are refused. A syntax error is reported with its line and column; otherwise every
//! problem of the manifest is reported at once (wrong types, unknown keys, unknown dtypes or
//! policies, and what [`Pipeline::validate`] finds), each naming its table and key:
//! `[streams.raw] dtype: unknown dtype "flaot32" (did you mean "float32"? ...)`. Entries keep the
//! order they have in the file. Relative paths (`cwd`, `stdout`, `stderr`, and commands with a `/`) are relative to the
//! manifest's directory when it is read with [`Pipeline::load`], and a task runs in the
//! manifest's directory unless `cwd` says otherwise.

mod problems;
mod spelling;

use super::spec::{Binding, EventSpec, Pipeline, StreamSpec, TaskSpec};
use super::spec::{DEFAULT_CAPACITY, DEFAULT_JOIN_TIMEOUT, DEFAULT_STOP_GRACE};
use super::validate;
use crate::error::{Error, Result};
use crate::event::EventMode;
use crate::ring::Backpressure;
use problems::{line_of, locate, Found, SCHEMA_KEYS};
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use spelling::{resolve_dtype, unknown_policy};
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

// The structs below are the manifest's schema. Every value is a `Field`, which never fails to
// deserialise (a value of the wrong type is kept as a problem), and every table keeps its
// unknown keys in `Unknown`: reading a manifest therefore finds every problem in one pass.

#[derive(Serialize, Deserialize)]
struct File {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pipeline: Field<PipelineSection>,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    streams: Ordered<Field<StreamEntry>>,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    events: Ordered<Field<EventEntry>>,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    tasks: Ordered<Field<TaskEntry>>,
    #[serde(default, skip_serializing)]
    bridge: Field<BridgeSection>,
    #[serde(flatten)]
    unknown: Unknown,
}
const FILE_KEYS: &[&str] = &["pipeline", "streams", "events", "tasks", "bridge"];

/// Endpoints and mode of the bridge tasks (`export` / `import` streams, docs/BRIDGE.md).
#[derive(Default, Deserialize)]
struct BridgeSection {
    #[serde(default)]
    listen: Field<Vec<String>>,
    #[serde(default)]
    connect: Field<Vec<String>>,
    #[serde(default)]
    lossy: Field<bool>,
    #[serde(default)]
    lease: Field<f64>,
    #[serde(default)]
    config: Field<PathBuf>,
    #[serde(flatten)]
    unknown: Unknown,
}
const BRIDGE_KEYS: &[&str] = &["listen", "connect", "lossy", "lease", "config"];

#[derive(Serialize, Deserialize)]
struct PipelineSection {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    name: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    allow_cycles: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    join_timeout: Field<f64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    stop_grace: Field<f64>,
    #[serde(flatten)]
    unknown: Unknown,
}
const PIPELINE_KEYS: &[&str] = &["name", "allow_cycles", "join_timeout", "stop_grace"];

#[derive(Serialize, Deserialize)]
struct StreamEntry {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    dtype: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    shape: Field<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    max_frame_size: Field<u32>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    capacity: Field<u32>,
    /// PYTHUSA's name for `capacity` (Python's `add_stream(frames=...)`).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    frames: Field<u32>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    max_readers: Field<u32>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    max_writers: Field<u32>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    checksum: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    backpressure: Field<String>,
    /// Publish this stream on this Zenoh key (a bridge task reads it).
    #[serde(default, skip_serializing)]
    export: Field<String>,
    /// Feed this stream from this Zenoh key (a bridge task writes it).
    #[serde(default, skip_serializing)]
    import: Field<String>,
    #[serde(flatten)]
    unknown: Unknown,
}
const STREAM_KEYS: &[&str] = &[
    "export",
    "import",
    "dtype",
    "shape",
    "max_frame_size",
    "capacity",
    "frames",
    "max_readers",
    "max_writers",
    "checksum",
    "backpressure",
];

#[derive(Serialize, Deserialize)]
struct EventEntry {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    mode: Field<Mode>,
    #[serde(flatten)]
    unknown: Unknown,
}
const EVENT_KEYS: &[&str] = &["mode"];

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Flag,
    Counting,
}

#[derive(Serialize, Deserialize)]
struct TaskEntry {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    command: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    args: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    env: Field<Ordered<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    cwd: Field<PathBuf>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    stdout: Field<PathBuf>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    stderr: Field<PathBuf>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    reads: Field<Ordered<ReadEntry>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    writes: Field<Ordered<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    events: Field<Ordered<String>>,
    #[serde(flatten)]
    unknown: Unknown,
}
const TASK_KEYS: &[&str] = &[
    "command", "args", "env", "cwd", "stdout", "stderr", "reads", "writes", "events",
];

/// A manifest value read without failing: absent, given, or of the wrong type (kept as the
/// reason, to be reported with every other problem).
#[derive(Default)]
enum Field<T> {
    #[default]
    Absent,
    Given(T),
    Wrong(String),
}

impl<T> Field<T> {
    fn is_absent(&self) -> bool {
        !matches!(self, Field::Given(_))
    }

    /// `Some(value)` if given (`None` leaves the default), or the absent value's `None`.
    fn given(value: Option<T>) -> Field<T> {
        value.map_or(Field::Absent, Field::Given)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        Ok(match T::deserialize(value) {
            Ok(v) => Field::Given(v),
            Err(e) => Field::Wrong(e.message().trim().to_owned()),
        })
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Field::Given(v) => v.serialize(serializer),
            _ => serializer.serialize_none(),
        }
    }
}

/// The keys of a table that its struct does not know (each one is a problem).
#[derive(Default)]
struct Unknown(Vec<String>);

impl<'de> Deserialize<'de> for Unknown {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Unknown;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Unknown, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(Unknown(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

impl Serialize for Unknown {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_map(Some(0))?.end()
    }
}

/// The value of one `reads` parameter: a stream name, or `{ stream = "s", group = "g" }`.
struct ReadEntry {
    stream: String,
    group: Option<String>,
}

impl<'de> Deserialize<'de> for ReadEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct ReadVisitor;
        impl<'de> Visitor<'de> for ReadVisitor {
            type Value = ReadEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a stream name, or a table { stream = \"NAME\", group = \"GROUP\" } for a \
                     member of a reader group",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<ReadEntry, E> {
                Ok(ReadEntry {
                    stream: v.to_owned(),
                    group: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<ReadEntry, A::Error> {
                use serde::de::Error;
                let (mut stream, mut group) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    let field = match key.as_str() {
                        "stream" => &mut stream,
                        "group" => &mut group,
                        other => return Err(A::Error::unknown_field(other, &["stream", "group"])),
                    };
                    if field.is_some() {
                        return Err(A::Error::custom(format!("duplicate key `{key}`")));
                    }
                    *field = Some(map.next_value::<String>()?);
                }
                Ok(ReadEntry {
                    stream: stream.ok_or_else(|| A::Error::missing_field("stream"))?,
                    group,
                })
            }
        }
        deserializer.deserialize_any(ReadVisitor)
    }
}

impl Serialize for ReadEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match &self.group {
            None => serializer.serialize_str(&self.stream),
            Some(group) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("stream", &self.stream)?;
                map.serialize_entry("group", group)?;
                map.end()
            }
        }
    }
}

/// A TOML table kept in file order (so streams, events and tasks keep their declaration order).
struct Ordered<T>(Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<T> Ordered<T> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct OrderedVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Pipeline {
    /// Reads a manifest from TOML text. Relative paths stay relative (to the runner's working
    /// directory). A manifest that reads without problems is not validated yet (see
    /// [`Pipeline::validate`]).
    ///
    /// Errors are [`Error::InvalidArgument`]: a syntax error with its line and column, or else
    /// every problem found, each naming its table, key and line (and, since the manifest is
    /// refused anyway, what [`Pipeline::validate`] finds in the rest of it).
    pub fn from_toml_str(text: &str) -> Result<Pipeline> {
        read(text).map_err(|e| Error::InvalidArgument(format!("invalid pipeline manifest{e}")))
    }

    /// Reads a manifest file, as [`Pipeline::from_toml_str`] reads text. Relative paths in it are
    /// taken from the manifest's directory, which is also every task's default working
    /// directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Pipeline> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::os(format!("reading manifest {}", path.display()), e))?;
        let mut pipeline = read(&text).map_err(|e| {
            Error::InvalidArgument(format!("invalid pipeline manifest {}{e}", path.display()))
        })?;
        let dir = std::path::absolute(path)
            .map_err(|e| Error::os(format!("resolving {}", path.display()), e))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        for task in &mut pipeline.tasks {
            task.cwd = Some(match task.cwd.take() {
                Some(cwd) => dir.join(cwd),
                None => dir.clone(),
            });
        }
        Ok(pipeline)
    }

    /// The declaration as manifest text ([`Pipeline::from_toml_str`] reads it back).
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(&to_file(self))
            .map_err(|e| Error::InvalidArgument(format!("pipeline {:?}: {e}", self.name)))
    }

    /// Writes the declaration to a manifest file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_toml_string()?)
            .map_err(|e| Error::os(format!("writing manifest {}", path.display()), e))
    }
}

/// Reads manifest `text`; the error is the rest of a message that starts "invalid pipeline
/// manifest" (and the file's name): ": <syntax error>" or " (N problems):\n  - ...".
fn read(text: &str) -> std::result::Result<Pipeline, String> {
    let file: File = toml::from_str(text).map_err(|e| format!(": {e}"))?;
    let mut found = Found::default();
    let pipeline = from_file(file, &mut found);
    if found.problems.is_empty() {
        return Ok(pipeline);
    }
    // Refused anyway: add what validation finds, except what follows from a value that could
    // not be read (a stream whose dtype is unknown also "needs a dtype or a max_frame_size").
    for problem in validate::problems(&pipeline) {
        let (table, key) = locate(&pipeline, &problem.entry);
        let follows = found.problems.iter().any(|(t, k, _)| {
            *t == table
                && (key.is_empty()
                    || k.is_empty()
                    || *k == key
                    || k == "dtype" && SCHEMA_KEYS.contains(&key.as_str()))
        });
        if !follows {
            found.add(&table, &key, problem.message);
        }
    }
    let spans = toml::de::DeTable::parse(text).ok();
    let list: Vec<String> = found
        .problems
        .iter()
        .map(|(table, key, message)| {
            let line = spans
                .as_ref()
                .and_then(|t| line_of(text, t.get_ref(), table, key))
                .map_or(String::new(), |n| format!(" (line {n})"));
            match key.as_str() {
                "" => format!("  - [{table}]{line}: {message}"),
                key => format!("  - [{table}] {key}{line}: {message}"),
            }
        })
        .collect();
    Err(format!(
        " ({} problem{}):\n{}",
        list.len(),
        if list.len() == 1 { "" } else { "s" },
        list.join("\n")
    ))
}

fn from_file(file: File, found: &mut Found) -> Pipeline {
    found.unknown("top level", file.unknown, FILE_KEYS);
    let mut pipeline = Pipeline::new("");
    match file.pipeline {
        Field::Absent => found.add(
            "pipeline",
            "",
            "is missing: start the manifest with [pipeline] and its name = \"...\"",
        ),
        Field::Wrong(why) => found.add("pipeline", "", why),
        Field::Given(section) => {
            let t = "pipeline";
            found.unknown(t, section.unknown, PIPELINE_KEYS);
            match found.take(t, "name", section.name) {
                Some(name) => pipeline.name = name,
                None if !found.problems.iter().any(|p| p.0 == t && p.1 == "name") => {
                    found.add(t, "name", "is missing: every pipeline needs a name")
                }
                None => {}
            }
            pipeline.allow_cycles = found
                .take(t, "allow_cycles", section.allow_cycles)
                .unwrap_or(false);
            let mut seconds = |key: &str, field: Field<f64>, default: Duration| {
                let s = found.take(t, key, field)?;
                let d = Duration::try_from_secs_f64(s);
                if d.is_err() {
                    found.add(
                        t,
                        key,
                        format!("{s} is not a number of seconds (give 0 or more)"),
                    );
                }
                d.ok().or(Some(default))
            };
            if let Some(d) = seconds("join_timeout", section.join_timeout, DEFAULT_JOIN_TIMEOUT) {
                pipeline.join_timeout = d;
            }
            if let Some(d) = seconds("stop_grace", section.stop_grace, DEFAULT_STOP_GRACE) {
                pipeline.stop_grace = d;
            }
        }
    }
    // The `[bridge]` table as the arguments every bridge task is given.
    let mut bridge = Vec::new();
    if let Some(b) = found.take("bridge", "", file.bridge) {
        let t = "bridge";
        found.unknown(t, b.unknown, BRIDGE_KEYS);
        for (key, endpoints) in [("listen", b.listen), ("connect", b.connect)] {
            for endpoint in found.take(t, key, endpoints).unwrap_or_default() {
                bridge.extend([format!("--{key}"), endpoint]);
            }
        }
        if found.take(t, "lossy", b.lossy) == Some(true) {
            bridge.push("--lossy".into());
        }
        if let Some(lease) = found.take(t, "lease", b.lease) {
            if lease.is_finite() && lease > 0.0 {
                bridge.extend(["--lease".into(), lease.to_string()]);
            } else {
                found.add(
                    t,
                    "lease",
                    format!("{lease} is not a number of seconds (give more than 0)"),
                );
            }
        }
        if let Some(config) = found.take(t, "config", b.config) {
            bridge.extend(["--config".into(), config.display().to_string()]);
        }
    }
    let mut bridge_tasks = Vec::new();
    for (name, entry) in file.streams.0 {
        let t = format!("streams.{name}");
        let mut spec = StreamSpec::bytes(0);
        spec.name = name;
        if let Some(s) = found.take(&t, "", entry) {
            found.unknown(&t, s.unknown, STREAM_KEYS);
            if let Some(dtype) = found.take(&t, "dtype", s.dtype) {
                match resolve_dtype(&dtype) {
                    Ok(dtype) => spec.dtype = Some(dtype),
                    Err(why) => found.add(&t, "dtype", why),
                }
            }
            spec.shape = found.take(&t, "shape", s.shape).unwrap_or_default();
            spec.max_frame_size = found
                .take(&t, "max_frame_size", s.max_frame_size)
                .unwrap_or(0);
            let capacity = found.take(&t, "capacity", s.capacity);
            let frames = found.take(&t, "frames", s.frames);
            spec.capacity = match (capacity, frames) {
                (Some(c), Some(f)) if c != f => {
                    found.add(
                        &t,
                        "frames",
                        format!("is PYTHUSA's name for capacity, which says {c}: give one of them"),
                    );
                    c
                }
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => DEFAULT_CAPACITY,
            };
            spec.max_readers = found.take(&t, "max_readers", s.max_readers).unwrap_or(0);
            spec.max_writers = found.take(&t, "max_writers", s.max_writers).unwrap_or(0);
            spec.checksum = found.take(&t, "checksum", s.checksum).unwrap_or(false);
            if let Some(policy) = found.take(&t, "backpressure", s.backpressure) {
                match Backpressure::from_name(&policy) {
                    Some(p) => spec.backpressure = p,
                    None => found.add(&t, "backpressure", unknown_policy(&policy)),
                }
            }
            if let Some(key) = found.take(&t, "export", s.export) {
                bridge_tasks.push(bridge_task(&bridge, "export", &spec.name, &key));
            }
            if let Some(key) = found.take(&t, "import", s.import) {
                bridge_tasks.push(bridge_task(&bridge, "import", &spec.name, &key));
                // A writer table lets the importer publish the origin's gaps as missed frames.
                spec.max_writers = spec.max_writers.max(2);
            }
        }
        pipeline.streams.push(spec);
    }
    for (name, entry) in file.events.0 {
        let t = format!("events.{name}");
        let mut mode = EventMode::Flag;
        if let Some(e) = found.take(&t, "", entry) {
            found.unknown(&t, e.unknown, EVENT_KEYS);
            if let Some(Mode::Counting) = found.take(&t, "mode", e.mode) {
                mode = EventMode::Counting;
            }
        }
        pipeline.events.push(EventSpec { name, mode });
    }
    for (name, entry) in file.tasks.0 {
        let t = format!("tasks.{name}");
        let mut spec = TaskSpec::command("");
        spec.name = name;
        if let Some(e) = found.take(&t, "", entry) {
            found.unknown(&t, e.unknown, TASK_KEYS);
            match found.take(&t, "command", e.command) {
                Some(command) => spec.command = command,
                None if matches!(found.problems.last(), Some((x, k, _)) if *x == t && k == "command") =>
                    {}
                None => found.add(&t, "command", "is missing: give the program to run"),
            }
            spec.args = found.take(&t, "args", e.args).unwrap_or_default();
            spec.env = found.take(&t, "env", e.env).unwrap_or_default().0;
            spec.cwd = found.take(&t, "cwd", e.cwd);
            spec.stdout = found.take(&t, "stdout", e.stdout);
            spec.stderr = found.take(&t, "stderr", e.stderr);
            spec.reads = found
                .take(&t, "reads", e.reads)
                .unwrap_or_default()
                .0
                .into_iter()
                .map(|(param, read)| Binding {
                    param,
                    target: read.stream,
                    group: read.group,
                })
                .collect();
            let bindings = |table: Option<Ordered<String>>| -> Vec<Binding> {
                table
                    .unwrap_or_default()
                    .0
                    .into_iter()
                    .map(|(param, target)| Binding::new(param, target))
                    .collect()
            };
            spec.writes = bindings(found.take(&t, "writes", e.writes));
            spec.events = bindings(found.take(&t, "events", e.events));
        }
        pipeline.tasks.push(spec);
    }
    pipeline.tasks.extend(bridge_tasks);
    pipeline
}

/// Parameter through which a bridge task reads the stream it exports / writes the one it imports.
const BRIDGE_PARAM: &str = "stream";

/// The task that exports (`verb` = "export") or imports stream `stream` on Zenoh key `key`: the
/// `shmline` command's `bridge` subcommand, joined to the pipeline as any task is.
fn bridge_task(bridge: &[String], verb: &str, stream: &str, key: &str) -> TaskSpec {
    let mut args = vec!["bridge".to_owned(), verb.to_owned()];
    if verb == "export" {
        args.extend([BRIDGE_PARAM.to_owned(), "--key".into(), key.to_owned()]);
    } else {
        args.extend([key.to_owned(), BRIDGE_PARAM.to_owned()]);
    }
    args.push("--pipeline".into());
    args.extend_from_slice(bridge);
    let binding = vec![Binding::new(BRIDGE_PARAM, stream)];
    let (reads, writes) = if verb == "export" {
        (binding, Vec::new())
    } else {
        (Vec::new(), binding)
    };
    TaskSpec {
        name: format!("bridge-{verb}-{stream}"),
        command: shmline_command(),
        args,
        env: Vec::new(),
        cwd: None,
        stdout: None,
        stderr: None,
        reads,
        writes,
        events: Vec::new(),
    }
}

/// The `shmline` command that runs bridge tasks: this very program when it is `shmline` (so
/// `shmline run` uses itself, and finds `shmline-bridge` next to it), else `shmline` on `PATH`.
fn shmline_command() -> String {
    std::env::current_exe()
        .ok()
        .filter(|exe| exe.file_name().is_some_and(|n| n == "shmline"))
        .map_or_else(|| "shmline".to_owned(), |exe| exe.display().to_string())
}

fn to_file(p: &Pipeline) -> File {
    let table = |list: &[Binding]| {
        Ordered(
            list.iter()
                .map(|b| (b.param.clone(), b.target.clone()))
                .collect(),
        )
    };
    let nonempty = |t: Ordered<String>| Field::given((!t.is_empty()).then_some(t));
    File {
        pipeline: Field::Given(PipelineSection {
            name: Field::Given(p.name.clone()),
            allow_cycles: Field::given(p.allow_cycles.then_some(true)),
            join_timeout: Field::given(
                (p.join_timeout != DEFAULT_JOIN_TIMEOUT).then_some(p.join_timeout.as_secs_f64()),
            ),
            stop_grace: Field::given(
                (p.stop_grace != DEFAULT_STOP_GRACE).then_some(p.stop_grace.as_secs_f64()),
            ),
            unknown: Unknown::default(),
        }),
        streams: Ordered(
            p.streams
                .iter()
                .map(|s| {
                    let entry = StreamEntry {
                        dtype: Field::given(s.dtype.clone()),
                        shape: Field::given((!s.shape.is_empty()).then(|| s.shape.clone())),
                        max_frame_size: Field::given(
                            (s.max_frame_size != 0).then_some(s.max_frame_size),
                        ),
                        capacity: Field::given(
                            (s.capacity != DEFAULT_CAPACITY).then_some(s.capacity),
                        ),
                        frames: Field::Absent,
                        max_readers: Field::given((s.max_readers != 0).then_some(s.max_readers)),
                        max_writers: Field::given((s.max_writers != 0).then_some(s.max_writers)),
                        checksum: Field::given(s.checksum.then_some(true)),
                        backpressure: Field::given(
                            (s.backpressure != Backpressure::Block)
                                .then(|| s.backpressure.name().to_owned()),
                        ),
                        // Saved as the bridge tasks they became.
                        export: Field::Absent,
                        import: Field::Absent,
                        unknown: Unknown::default(),
                    };
                    (s.name.clone(), Field::Given(entry))
                })
                .collect(),
        ),
        events: Ordered(
            p.events
                .iter()
                .map(|e| {
                    let mode = match e.mode {
                        EventMode::Flag => Field::Absent,
                        EventMode::Counting => Field::Given(Mode::Counting),
                    };
                    let entry = EventEntry {
                        mode,
                        unknown: Unknown::default(),
                    };
                    (e.name.clone(), Field::Given(entry))
                })
                .collect(),
        ),
        tasks: Ordered(
            p.tasks
                .iter()
                .map(|t| {
                    let reads = Ordered(
                        t.reads
                            .iter()
                            .map(|b| {
                                let read = ReadEntry {
                                    stream: b.target.clone(),
                                    group: b.group.clone(),
                                };
                                (b.param.clone(), read)
                            })
                            .collect(),
                    );
                    let entry = TaskEntry {
                        command: Field::Given(t.command.clone()),
                        args: Field::given((!t.args.is_empty()).then(|| t.args.clone())),
                        env: nonempty(Ordered(t.env.clone())),
                        cwd: Field::given(t.cwd.clone()),
                        stdout: Field::given(t.stdout.clone()),
                        stderr: Field::given(t.stderr.clone()),
                        reads: Field::given((!reads.is_empty()).then_some(reads)),
                        writes: nonempty(table(&t.writes)),
                        events: nonempty(table(&t.events)),
                        unknown: Unknown::default(),
                    };
                    (t.name.clone(), Field::Given(entry))
                })
                .collect(),
        ),
        bridge: Field::Absent,
        unknown: Unknown::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streams_backpressure_reaches_the_options_it_is_created_with() {
        let text = "[pipeline]\nname = \"p\"\n[streams.s]\nmax_frame_size = 8\n\
                    backpressure = \"drop_newest\"\n[tasks.w]\ncommand = \"w\"\n\
                    writes = { out = \"s\" }\n[tasks.r]\ncommand = \"r\"\nreads = { i = \"s\" }\n";
        let plan = validate::check(&Pipeline::from_toml_str(text).unwrap()).unwrap();
        assert_eq!(
            plan.streams[0].options.backpressure,
            Backpressure::DropNewest
        );
    }
}

#[cfg(test)]
mod bridge_tests {
    use super::Pipeline;

    const MANIFEST: &str = r#"
        [pipeline]
        name = "p"
        [streams.local]
        max_frame_size = 8
        export = "lab/local"
        [streams.remote]
        max_frame_size = 8
        import = "lab/remote"
        [tasks.t]
        command = "t"
        reads = { a = "remote" }
        writes = { b = "local" }
        [bridge]
        connect = ["tcp/127.0.0.1:7447"]
        lossy = true
    "#;

    #[test]
    fn exported_and_imported_streams_become_bridge_tasks_with_the_bridge_endpoints() {
        let p = Pipeline::from_toml_str(MANIFEST).unwrap();
        let export = p
            .tasks
            .iter()
            .find(|t| t.name == "bridge-export-local")
            .unwrap();
        assert_eq!(export.reads[0].target, "local");
        assert_eq!(
            export.args,
            [
                "bridge",
                "export",
                "stream",
                "--key",
                "lab/local",
                "--pipeline",
                "--connect"
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(["tcp/127.0.0.1:7447".into(), "--lossy".into()])
            .collect::<Vec<_>>()
        );
        let import = p
            .tasks
            .iter()
            .find(|t| t.name == "bridge-import-remote")
            .unwrap();
        assert_eq!(import.writes[0].target, "remote");
        assert_eq!(
            &import.args[..4],
            ["bridge", "import", "lab/remote", "stream"]
        );
    }

    #[test]
    fn an_imported_stream_gets_a_writer_table_for_the_origin_gaps() {
        let p = Pipeline::from_toml_str(MANIFEST).unwrap();
        let remote = p.streams.iter().find(|s| s.name == "remote").unwrap();
        assert_eq!(remote.max_writers, 2);
        let local = p.streams.iter().find(|s| s.name == "local").unwrap();
        assert_eq!(local.max_writers, 0);
    }
}
