//! `shmline ls`: the pipelines, streams and events on this machine.

use crate::display;
use crate::output::{JsonFormat, SCHEMA_VERSION};
use serde::Serialize;
use shmline::__private::shm::{inspect, list, SegmentKind};
use shmline::pipeline::Registry;
use shmline::{Event, EventMode, Stream, WriterState};
use std::process::ExitCode;

/// List pipelines, streams and events on this machine, with their owner and whether it is alive.
///
/// These are the shmline segments under /dev/shm.
/// A pipeline's owner is its runner; a stream's or event's owner is the process that created it.
/// Segments whose owner is dead are what `shmline clean` removes (a stream still used by a live
/// writer or reader is kept). A file under a shmline name that is not a finished segment (empty,
/// foreign bytes, a FIFO, a link, one still being made) is listed as unreadable, at once.
///
/// With --json: one object with "schema_version", "pipelines", "streams", "events" and
/// "unreadable" (every field is listed in docs/CLI.md).
#[derive(clap::Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub format: JsonFormat,
}

pub fn run(args: &LsArgs) -> ExitCode {
    let listing = match collect() {
        Ok(listing) => listing,
        Err(e) => {
            eprintln!("shmline ls: {e}");
            return ExitCode::from(1);
        }
    };
    if args.format.json {
        args.format.print(&listing);
    } else {
        out!("{}", text(&listing));
    }
    ExitCode::SUCCESS
}

/// Everything `ls` lists (`ls --json`).
#[derive(Serialize)]
struct Listing {
    schema_version: u32,
    pipelines: Vec<PipelineRow>,
    streams: Vec<StreamRow>,
    events: Vec<EventRow>,
    unreadable: Vec<Unreadable>,
}

/// A pipeline registry.
#[derive(Serialize)]
struct PipelineRow {
    name: String,
    state: &'static str,
    owner_pid: u32,
    alive: bool,
    streams: usize,
    events: usize,
    tasks: usize,
}

/// A stream segment.
#[derive(Serialize)]
struct StreamRow {
    name: String,
    owner_pid: u32,
    alive: bool,
    capacity: u32,
    max_frame_size: u32,
    schema: Option<String>,
    frames: u64,
    writer: &'static str,
    writer_pid: Option<u32>,
    max_writers: u32,
    writers: Vec<u32>,
    readers: usize,
}

/// An event segment.
#[derive(Serialize)]
struct EventRow {
    name: String,
    owner_pid: u32,
    alive: bool,
    mode: &'static str,
    value: u64,
}

/// A file under a shmline name that could not be read.
#[derive(Serialize)]
struct Unreadable {
    /// pipeline, stream or event.
    kind: &'static str,
    name: String,
    error: String,
}

fn collect() -> shmline::Result<Listing> {
    let mut unreadable = Vec::new();
    let mut failed = |kind: &'static str, name: String, e: shmline::Error| {
        unreadable.push(Unreadable {
            kind,
            name,
            error: e.to_string(),
        })
    };
    let mut pipelines = Vec::new();
    for name in list(SegmentKind::Pipeline)? {
        match look(SegmentKind::Pipeline, &name, Registry::open) {
            Ok(r) => {
                let info = r.info();
                pipelines.push(PipelineRow {
                    state: r.state().map_or("corrupt", |s| s.name()),
                    owner_pid: info.runner.pid,
                    alive: r.runner_alive(),
                    streams: info.streams.len(),
                    events: info.events.len(),
                    tasks: info.tasks.len(),
                    name,
                });
            }
            Err(e) => failed("pipeline", name, e),
        }
    }
    let mut streams = Vec::new();
    for name in list(SegmentKind::Stream)? {
        match look(SegmentKind::Stream, &name, Stream::open) {
            Ok(s) => {
                let info = s.info();
                let stats = s.stats();
                streams.push(StreamRow {
                    owner_pid: info.creator.pid,
                    alive: info.creator.is_alive(),
                    capacity: info.capacity,
                    max_frame_size: info.max_frame_size,
                    schema: info.schema.as_ref().map(|s| s.to_string()),
                    frames: stats.frames_written,
                    writer: writer_state(stats.writer_state),
                    writer_pid: stats.writer_pid,
                    max_writers: info.max_writers,
                    writers: stats.writers.iter().map(|w| w.pid).collect(),
                    readers: stats.readers.len(),
                    name,
                });
            }
            Err(e) => failed("stream", name, e),
        }
    }
    let mut events = Vec::new();
    for name in list(SegmentKind::Event)? {
        match look(SegmentKind::Event, &name, Event::open) {
            Ok(e) => {
                let creator = e.creator();
                events.push(EventRow {
                    owner_pid: creator.pid,
                    alive: creator.is_alive(),
                    mode: match e.mode() {
                        EventMode::Flag => "flag",
                        EventMode::Counting => "counting",
                    },
                    value: e.count() as u64,
                    name,
                });
            }
            Err(e) => failed("event", name, e),
        }
    }
    Ok(Listing {
        schema_version: SCHEMA_VERSION,
        pipelines,
        streams,
        events,
        unreadable,
    })
}

/// Opens segment `name` of `kind` with `open` for a monitor, which must never wait: a file that
/// is not a finished shmline segment (empty, foreign, a FIFO, still being made) is refused at
/// once by [`inspect`] instead of costing the open's wait for a creator still initialising.
pub fn look<T>(
    kind: SegmentKind,
    name: &str,
    open: impl FnOnce(&str) -> shmline::Result<T>,
) -> shmline::Result<T> {
    inspect(kind, name)?;
    open(name)
}

/// Lower-case name of a writer state.
pub fn writer_state(state: WriterState) -> &'static str {
    match state {
        WriterState::None => "none",
        WriterState::Active => "active",
        WriterState::Closed => "closed",
        WriterState::Dead => "dead",
    }
}

fn alive(pid: u32, alive: bool) -> String {
    format!("{pid} ({})", if alive { "alive" } else { "dead" })
}

fn text(listing: &Listing) -> String {
    let mut out = String::new();
    let section = |out: &mut String, title: &str, header: &[&str], rows: Vec<Vec<String>>| {
        if rows.is_empty() {
            out.push_str(&format!("no {title}\n"));
            return;
        }
        let mut all = vec![header.iter().map(|h| h.to_string()).collect()];
        all.extend(rows);
        out.push_str(&display::table(&all));
    };
    section(
        &mut out,
        "pipelines",
        &["PIPELINE", "STATE", "RUNNER", "STREAMS", "EVENTS", "TASKS"],
        listing
            .pipelines
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.state.to_string(),
                    alive(p.owner_pid, p.alive),
                    p.streams.to_string(),
                    p.events.to_string(),
                    p.tasks.to_string(),
                ]
            })
            .collect(),
    );
    out.push('\n');
    section(
        &mut out,
        "streams",
        &[
            "STREAM", "OWNER", "SLOTS", "FRAME", "FRAMES", "WRITER", "READERS",
        ],
        listing
            .streams
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    alive(s.owner_pid, s.alive),
                    s.capacity.to_string(),
                    match &s.schema {
                        Some(schema) => schema.clone(),
                        None => display::bytes(s.max_frame_size as u64),
                    },
                    s.frames.to_string(),
                    if s.max_writers > 1 {
                        format!("{} ({}/{})", s.writer, s.writers.len(), s.max_writers)
                    } else {
                        s.writer.to_string()
                    },
                    s.readers.to_string(),
                ]
            })
            .collect(),
    );
    out.push('\n');
    section(
        &mut out,
        "events",
        &["EVENT", "OWNER", "MODE", "VALUE"],
        listing
            .events
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    alive(e.owner_pid, e.alive),
                    e.mode.to_string(),
                    e.value.to_string(),
                ]
            })
            .collect(),
    );
    for u in &listing.unreadable {
        out.push_str(&format!(
            "\ncannot read {} {}: {}\n",
            u.kind, u.name, u.error
        ));
    }
    out
}
