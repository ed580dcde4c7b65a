//! `shmline ls`: the pipelines, streams and events on this machine.

use crate::display;
use serde_json::{json, Value};
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
#[derive(clap::Args)]
pub struct LsArgs {
    /// Print JSON (one object with "pipelines", "streams", "events" and "unreadable") instead of
    /// tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &LsArgs) -> ExitCode {
    let listing = match collect() {
        Ok(listing) => listing,
        Err(e) => {
            eprintln!("shmline ls: {e}");
            return ExitCode::from(1);
        }
    };
    if args.json {
        println!("{listing}");
    } else {
        print!("{}", text(&listing));
    }
    ExitCode::SUCCESS
}

fn collect() -> shmline::Result<Value> {
    let mut unreadable = Vec::new();
    let mut pipelines = Vec::new();
    for name in list(SegmentKind::Pipeline)? {
        match look(SegmentKind::Pipeline, &name, Registry::open) {
            Ok(r) => {
                let info = r.info();
                pipelines.push(json!({
                    "name": name,
                    "state": r.state().map_or("corrupt", |s| s.name()),
                    "owner_pid": info.runner.pid,
                    "alive": r.runner_alive(),
                    "streams": info.streams.len(),
                    "events": info.events.len(),
                    "tasks": info.tasks.len(),
                }));
            }
            Err(e) => {
                unreadable.push(json!({"kind": "pipeline", "name": name, "error": e.to_string()}))
            }
        }
    }
    let mut streams = Vec::new();
    for name in list(SegmentKind::Stream)? {
        match look(SegmentKind::Stream, &name, Stream::open) {
            Ok(s) => {
                let info = s.info();
                let stats = s.stats();
                streams.push(json!({
                    "name": name,
                    "owner_pid": info.creator.pid,
                    "alive": info.creator.is_alive(),
                    "capacity": info.capacity,
                    "max_frame_size": info.max_frame_size,
                    "schema": info.schema.as_ref().map(|s| s.to_string()),
                    "frames": stats.frames_written,
                    "writer": writer_state(stats.writer_state),
                    "writer_pid": stats.writer_pid,
                    "max_writers": info.max_writers,
                    "writers": stats.writers.iter().map(|w| w.pid).collect::<Vec<_>>(),
                    "readers": stats.readers.len(),
                }));
            }
            Err(e) => {
                unreadable.push(json!({"kind": "stream", "name": name, "error": e.to_string()}))
            }
        }
    }
    let mut events = Vec::new();
    for name in list(SegmentKind::Event)? {
        match look(SegmentKind::Event, &name, Event::open) {
            Ok(e) => {
                let creator = e.creator();
                events.push(json!({
                    "name": name,
                    "owner_pid": creator.pid,
                    "alive": creator.is_alive(),
                    "mode": match e.mode() { EventMode::Flag => "flag", EventMode::Counting => "counting" },
                    "value": e.count(),
                }));
            }
            Err(e) => {
                unreadable.push(json!({"kind": "event", "name": name, "error": e.to_string()}))
            }
        }
    }
    Ok(json!({
        "pipelines": pipelines,
        "streams": streams,
        "events": events,
        "unreadable": unreadable,
    }))
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

fn alive(v: &Value) -> String {
    format!(
        "{} ({})",
        v["owner_pid"],
        if v["alive"].as_bool() == Some(true) {
            "alive"
        } else {
            "dead"
        }
    )
}

fn text(listing: &Value) -> String {
    let items = |key: &str| listing[key].as_array().cloned().unwrap_or_default();
    let str_of = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
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
        items("pipelines")
            .iter()
            .map(|p| {
                vec![
                    str_of(&p["name"]),
                    str_of(&p["state"]),
                    alive(p),
                    p["streams"].to_string(),
                    p["events"].to_string(),
                    p["tasks"].to_string(),
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
        items("streams")
            .iter()
            .map(|s| {
                vec![
                    str_of(&s["name"]),
                    alive(s),
                    s["capacity"].to_string(),
                    match s["schema"].as_str() {
                        Some(schema) => schema.to_string(),
                        None => display::bytes(s["max_frame_size"].as_u64().unwrap_or(0)),
                    },
                    s["frames"].to_string(),
                    match s["max_writers"].as_u64() {
                        Some(max) if max > 1 => format!(
                            "{} ({}/{max})",
                            str_of(&s["writer"]),
                            s["writers"].as_array().map_or(0, Vec::len)
                        ),
                        _ => str_of(&s["writer"]),
                    },
                    s["readers"].to_string(),
                ]
            })
            .collect(),
    );
    out.push('\n');
    section(
        &mut out,
        "events",
        &["EVENT", "OWNER", "MODE", "VALUE"],
        items("events")
            .iter()
            .map(|e| {
                vec![
                    str_of(&e["name"]),
                    alive(e),
                    str_of(&e["mode"]),
                    e["value"].to_string(),
                ]
            })
            .collect(),
    );
    for u in items("unreadable") {
        out.push_str(&format!(
            "\ncannot read {} {}: {}\n",
            str_of(&u["kind"]),
            str_of(&u["name"]),
            str_of(&u["error"])
        ));
    }
    out
}
