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
//! dtype = "<f4"
//! shape = [1024]
//! capacity = 64             # slots, a power of two (default 64)
//!
//! [streams.log]
//! max_frame_size = 256      # raw frames of up to 256 bytes
//! max_writers = 4           # default: one per writing task (several tasks may write a stream)
//!
//! [events.go]
//! mode = "flag"             # or "counting"
//!
//! # Streams that cross hosts (docs/BRIDGE.md): `export` publishes a stream of this pipeline on a
//! # Zenoh key, `import` feeds one from a key published on another host. Each becomes a task
//! # (`bridge-export-NAME`, `bridge-import-NAME`) running `shmline bridge ...`.
//! # [streams.remote_samples]
//! # import = "lab/samples"   # declare the origin's dtype/shape or max_frame_size too
//! # [bridge]
//! # connect = ["tcp/192.0.2.7:7447"]   # and/or listen = [...]; lossy = false; lease = 5.0
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
//! ```
//!
//! Unknown keys are refused. Syntax errors carry the line and column. Entries keep the order they
//! have in the file. Relative paths (`cwd`, `stdout`, `stderr`, and commands with a `/`) are relative to the
//! manifest's directory when it is read with [`Pipeline::load`], and a task runs in the
//! manifest's directory unless `cwd` says otherwise.

use super::spec::{Binding, EventSpec, Pipeline, StreamSpec, TaskSpec};
use super::spec::{DEFAULT_CAPACITY, DEFAULT_JOIN_TIMEOUT, DEFAULT_STOP_GRACE};
use crate::error::{Error, Result};
use crate::event::EventMode;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    pipeline: PipelineSection,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    streams: Ordered<StreamEntry>,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    events: Ordered<EventEntry>,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    tasks: Ordered<TaskEntry>,
    #[serde(default, skip_serializing)]
    bridge: BridgeSection,
}

/// Endpoints and mode of the bridge tasks (`export` / `import` streams).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeSection {
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default)]
    connect: Vec<String>,
    #[serde(default)]
    lossy: bool,
    #[serde(default)]
    lease: Option<f64>,
    #[serde(default)]
    config: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineSection {
    name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    allow_cycles: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    join_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop_grace: Option<f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dtype: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    shape: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_frame_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capacity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_readers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_writers: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    checksum: bool,
    /// Publish this stream on this Zenoh key (a bridge task reads it).
    #[serde(default, skip_serializing)]
    export: Option<String>,
    /// Feed this stream from this Zenoh key (a bridge task writes it).
    #[serde(default, skip_serializing)]
    import: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<Mode>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Flag,
    Counting,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskEntry {
    command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    env: Ordered<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cwd: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdout: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stderr: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    reads: Ordered<ReadEntry>,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    writes: Ordered<String>,
    #[serde(default, skip_serializing_if = "Ordered::is_empty")]
    events: Ordered<String>,
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

fn is_false(b: &bool) -> bool {
    !*b
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
    /// directory). The declaration is not validated yet (see [`Pipeline::validate`]).
    ///
    /// Errors are [`Error::InvalidArgument`] with the line and column of the problem.
    pub fn from_toml_str(text: &str) -> Result<Pipeline> {
        let file: File = toml::from_str(text)
            .map_err(|e| Error::InvalidArgument(format!("invalid pipeline manifest: {e}")))?;
        from_file(file)
    }

    /// Reads a manifest file. Relative paths in it are taken from the manifest's directory, which
    /// is also every task's default working directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Pipeline> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::os(format!("reading manifest {}", path.display()), e))?;
        let file: File = toml::from_str(&text).map_err(|e| {
            Error::InvalidArgument(format!("invalid pipeline manifest {}: {e}", path.display()))
        })?;
        let mut pipeline = from_file(file).map_err(|e| {
            Error::InvalidArgument(format!("invalid pipeline manifest {}: {e}", path.display()))
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

fn seconds(key: &str, value: Option<f64>, default: Duration) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(s) => Duration::try_from_secs_f64(s).map_err(|_| {
            Error::InvalidArgument(format!(
                "pipeline.{key}: {s} is not a number of seconds (it must be zero or more)"
            ))
        }),
    }
}

fn bindings(table: Ordered<String>) -> Vec<Binding> {
    table
        .0
        .into_iter()
        .map(|(param, target)| Binding::new(param, target))
        .collect()
}

fn read_bindings(table: Ordered<ReadEntry>) -> Vec<Binding> {
    table
        .0
        .into_iter()
        .map(|(param, read)| Binding {
            param,
            target: read.stream,
            group: read.group,
        })
        .collect()
}

fn from_file(file: File) -> Result<Pipeline> {
    let mut pipeline = Pipeline::new(file.pipeline.name);
    pipeline.allow_cycles = file.pipeline.allow_cycles;
    pipeline.join_timeout = seconds(
        "join_timeout",
        file.pipeline.join_timeout,
        DEFAULT_JOIN_TIMEOUT,
    )?;
    pipeline.stop_grace = seconds("stop_grace", file.pipeline.stop_grace, DEFAULT_STOP_GRACE)?;
    let mut bridge_tasks = Vec::new();
    for (name, s) in file.streams.0 {
        let mut max_writers = s.max_writers.unwrap_or(0);
        if let Some(key) = &s.export {
            bridge_tasks.push(bridge_task(&file.bridge, "export", &name, key));
        }
        if let Some(key) = &s.import {
            bridge_tasks.push(bridge_task(&file.bridge, "import", &name, key));
            // A writer table lets the importer publish the origin's gaps as missed frames.
            max_writers = max_writers.max(2);
        }
        pipeline.streams.push(StreamSpec {
            name,
            dtype: s.dtype,
            shape: s.shape,
            max_frame_size: s.max_frame_size.unwrap_or(0),
            capacity: s.capacity.unwrap_or(DEFAULT_CAPACITY),
            max_readers: s.max_readers.unwrap_or(0),
            max_writers,
            checksum: s.checksum,
        });
    }
    for (name, e) in file.events.0 {
        pipeline.events.push(EventSpec {
            name,
            mode: match e.mode {
                Some(Mode::Counting) => EventMode::Counting,
                Some(Mode::Flag) | None => EventMode::Flag,
            },
        });
    }
    for (name, t) in file.tasks.0 {
        pipeline.tasks.push(TaskSpec {
            name,
            command: t.command,
            args: t.args,
            env: t.env.0,
            cwd: t.cwd,
            stdout: t.stdout,
            stderr: t.stderr,
            reads: read_bindings(t.reads),
            writes: bindings(t.writes),
            events: bindings(t.events),
        });
    }
    pipeline.tasks.extend(bridge_tasks);
    Ok(pipeline)
}

/// Parameter through which a bridge task reads the stream it exports / writes the one it imports.
const BRIDGE_PARAM: &str = "stream";

/// The task that exports (`verb` = "export") or imports stream `stream` on Zenoh key `key`: the
/// `shmline` command's `bridge` subcommand, joined to the pipeline as any task is.
fn bridge_task(bridge: &BridgeSection, verb: &str, stream: &str, key: &str) -> TaskSpec {
    let mut args = vec!["bridge".to_owned(), verb.to_owned()];
    if verb == "export" {
        args.extend([BRIDGE_PARAM.to_owned(), "--key".into(), key.to_owned()]);
    } else {
        args.extend([key.to_owned(), BRIDGE_PARAM.to_owned()]);
    }
    args.push("--pipeline".into());
    for endpoint in &bridge.listen {
        args.extend(["--listen".into(), endpoint.clone()]);
    }
    for endpoint in &bridge.connect {
        args.extend(["--connect".into(), endpoint.clone()]);
    }
    if bridge.lossy {
        args.push("--lossy".into());
    }
    if let Some(lease) = bridge.lease {
        args.extend(["--lease".into(), lease.to_string()]);
    }
    if let Some(config) = &bridge.config {
        args.extend(["--config".into(), config.display().to_string()]);
    }
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
    File {
        pipeline: PipelineSection {
            name: p.name.clone(),
            allow_cycles: p.allow_cycles,
            join_timeout: (p.join_timeout != DEFAULT_JOIN_TIMEOUT)
                .then_some(p.join_timeout.as_secs_f64()),
            stop_grace: (p.stop_grace != DEFAULT_STOP_GRACE).then_some(p.stop_grace.as_secs_f64()),
        },
        streams: Ordered(
            p.streams
                .iter()
                .map(|s| {
                    let entry = StreamEntry {
                        dtype: s.dtype.clone(),
                        shape: s.shape.clone(),
                        max_frame_size: (s.max_frame_size != 0).then_some(s.max_frame_size),
                        capacity: (s.capacity != DEFAULT_CAPACITY).then_some(s.capacity),
                        max_readers: (s.max_readers != 0).then_some(s.max_readers),
                        max_writers: (s.max_writers != 0).then_some(s.max_writers),
                        checksum: s.checksum,
                        // Saved as the bridge tasks they became.
                        export: None,
                        import: None,
                    };
                    (s.name.clone(), entry)
                })
                .collect(),
        ),
        events: Ordered(
            p.events
                .iter()
                .map(|e| {
                    let mode = match e.mode {
                        EventMode::Flag => None,
                        EventMode::Counting => Some(Mode::Counting),
                    };
                    (e.name.clone(), EventEntry { mode })
                })
                .collect(),
        ),
        tasks: Ordered(
            p.tasks
                .iter()
                .map(|t| {
                    let entry = TaskEntry {
                        command: t.command.clone(),
                        args: t.args.clone(),
                        env: Ordered(t.env.clone()),
                        cwd: t.cwd.clone(),
                        stdout: t.stdout.clone(),
                        stderr: t.stderr.clone(),
                        reads: Ordered(
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
                        ),
                        writes: table(&t.writes),
                        events: table(&t.events),
                    };
                    (t.name.clone(), entry)
                })
                .collect(),
        ),
        bridge: BridgeSection::default(),
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
