//! `shmline info`: what this build of shmline is, can do, and refuses; or, given a stream's
//! name, everything about that stream.

use crate::display::{self, GroupView};
use crate::ls::writer_state;
use crate::output::{JsonFormat, SCHEMA_VERSION};
use crate::platform::Platform;
use serde::Serialize;
use shmline::__private::layout;
use shmline::__private::shm::{MAX_NAME_LEN, SHM_DIR};
use shmline::Stream;
use std::process::ExitCode;

/// What `shmline info --help` says about the command.
pub const LONG_ABOUT: &str =
    "Show the library version, the shared-memory layout version (processes must \
                  agree on it to share a stream), the features compiled in, the limits every \
                  stream and name must respect, and the platform.\n\n\
                  With a STREAM name, describe that stream instead: its fixed facts (capacity, \
                  frame size, schema, backpressure policy, max_readers, max_writers, \
                  max_groups) and a snapshot of its counters: frames written, dropped, skipped \
                  and redelivered, every live writer (with its pid), every reader group \
                  (members, next frame, lag, frames redelivered) and every reader (pid, group, \
                  lag, frames missed).\n\n\
                  With --json, print one JSON object (compact; indented with --pretty): without \
                  STREAM, with the keys schema_version, version, layout_version, features, \
                  limits and platform; with STREAM, with the keys schema_version, name, info, \
                  stats, writers, groups and readers (every field is listed in docs/CLI.md).";

/// Options of `shmline info`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Describe this stream (a name as `shmline ls` lists it) instead of the library.
    stream: Option<String>,
    #[command(flatten)]
    format: JsonFormat,
}

/// Runs `shmline info`.
pub fn run(args: &Args) -> ExitCode {
    if let Some(name) = &args.stream {
        return run_stream(name, args.format);
    }
    let report = describe();
    if args.format.json {
        args.format.print(&report);
    } else {
        out!("{}", text(&report));
    }
    ExitCode::SUCCESS
}

/// What `info` reports about the library and this machine (`info --json`).
#[derive(Serialize)]
struct Report {
    schema_version: u32,
    version: &'static str,
    layout_version: u32,
    features: Features,
    limits: Limits,
    platform: Platform,
}

/// What this build can do.
#[derive(Serialize)]
struct Features {
    checksum: &'static str,
    wait_strategies: [&'static str; 3],
    default_wait_strategy: &'static str,
    futex: bool,
    events: [&'static str; 2],
    readers: [&'static str; 3],
    writers: [&'static str; 2],
    backpressure: [&'static str; 4],
    zero_copy: [&'static str; 2],
    batch: [&'static str; 2],
    schemas: &'static str,
}

/// What every stream and name must respect.
#[derive(Serialize)]
struct Limits {
    max_capacity: u32,
    capacity_rule: &'static str,
    max_frame_size: u32,
    max_readers: u32,
    max_writers: u32,
    max_groups: u32,
    group_name_rule: &'static str,
    max_segment_size: u64,
    max_name_len: usize,
    name_rule: &'static str,
    max_ndim: usize,
    dtype_len: usize,
    frame_header_size: usize,
    stream_header_size: u64,
    slot_align: u64,
    shm_dir: &'static str,
}

fn describe() -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        version: shmline::VERSION,
        layout_version: shmline::LAYOUT_VERSION,
        features: Features {
            checksum: "crc32c",
            wait_strategies: shmline::WaitStrategy::ALL.map(shmline::WaitStrategy::name),
            default_wait_strategy: "adaptive",
            futex: cfg!(target_os = "linux"),
            events: ["flag", "counting"],
            readers: ["lossless", "lossy", "reader groups (max_groups)"],
            writers: ["single", "multiple (max_writers)"],
            backpressure: ["block", "fail", "drop_newest", "drop_oldest"],
            zero_copy: ["reserve/commit", "acquire/release"],
            batch: ["write_batch", "read_batch"],
            schemas: "numpy dtype + shape",
        },
        limits: Limits {
            max_capacity: layout::MAX_CAPACITY,
            capacity_rule: "a power of two",
            max_frame_size: layout::MAX_FRAME_SIZE,
            max_readers: layout::MAX_READERS,
            max_writers: layout::MAX_WRITERS,
            max_groups: layout::MAX_GROUPS,
            group_name_rule: "1 to 63 bytes of A-Z a-z 0-9 _ . -, not starting with '.' or '-'",
            max_segment_size: layout::MAX_SEGMENT_SIZE,
            max_name_len: MAX_NAME_LEN,
            name_rule: "1 to 200 characters of A-Z a-z 0-9 _ . -, not starting with '.' or '-'",
            max_ndim: layout::MAX_NDIM,
            dtype_len: layout::DTYPE_LEN,
            frame_header_size: layout::FRAME_HEADER_SIZE,
            stream_header_size: layout::READERS_OFFSET,
            slot_align: layout::SLOT_ALIGN,
            shm_dir: SHM_DIR,
        },
        platform: Platform::now(),
    }
}

fn text(r: &Report) -> String {
    let (f, l, p) = (&r.features, &r.limits, &r.platform);
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("shmline {}", r.version));
    line(format!("layout version     {}", r.layout_version));
    line(String::new());
    line("features".into());
    line(format!(
        "  checksum         {} (optional, per stream)",
        f.checksum
    ));
    line(format!(
        "  wait strategies  {} (default {}; futex sleep: {})",
        f.wait_strategies.join(", "),
        f.default_wait_strategy,
        if f.futex { "yes" } else { "no" }
    ));
    line(format!("  events           {}", f.events.join(", ")));
    line(format!("  readers          {}", f.readers.join(", ")));
    line(format!(
        "  writers          {} (per stream)",
        f.writers.join(", ")
    ));
    line(format!(
        "  backpressure     {} (per stream)",
        f.backpressure.join(", ")
    ));
    line(format!("  zero-copy        {}", f.zero_copy.join(", ")));
    line(format!("  batch calls      {}", f.batch.join(", ")));
    line(format!("  schemas          {}", f.schemas));
    line(String::new());
    line("limits".into());
    line(format!(
        "  capacity         1 to {} slots, {}",
        l.max_capacity, l.capacity_rule
    ));
    line(format!(
        "  frame size       1 to {} bytes ({})",
        l.max_frame_size,
        human_bytes(l.max_frame_size as u64)
    ));
    line(format!(
        "  readers          1 to {} per stream; writers 1 to {}; reader groups 0 to {}",
        l.max_readers, l.max_writers, l.max_groups
    ));
    line(format!(
        "  segment size     up to {} bytes ({})",
        l.max_segment_size,
        human_bytes(l.max_segment_size)
    ));
    line(format!("  names            {}", l.name_rule));
    line(format!("  group names      {}", l.group_name_rule));
    line(format!(
        "  schema           up to {} dimensions, dtype up to {} bytes",
        l.max_ndim, l.dtype_len
    ));
    line(format!(
        "  overhead         {}-byte frame header per slot, slots rounded to {} bytes, {}-byte \
         stream header",
        l.frame_header_size, l.slot_align, l.stream_header_size
    ));
    line(format!("  segments in      {}", l.shm_dir));
    line(String::new());
    line("platform".into());
    line(format!(
        "  system           {} {}, kernel {}",
        p.os, p.arch, p.kernel
    ));
    line(format!(
        "  cpu              {} ({} online)",
        p.cpu_model, p.cpus_online
    ));
    line(format!(
        "  page size        {} bytes; clock source {}",
        p.page_size, p.clocksource
    ));
    out
}

/// `bytes` in the largest binary unit that divides it, e.g. "1 GiB".
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024 && value.is_multiple_of(1024) && unit + 1 < UNITS.len() {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

/// Runs `shmline info STREAM`.
fn run_stream(name: &str, format: JsonFormat) -> ExitCode {
    let stream = match crate::ls::look(shmline::SegmentKind::Stream, name, Stream::open) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("shmline info: {e}");
            return ExitCode::from(1);
        }
    };
    let report = describe_stream(&stream);
    if format.json {
        format.print(&report);
    } else {
        out!("{}", stream_text(&report));
    }
    ExitCode::SUCCESS
}

/// What `info STREAM` reports (`info STREAM --json`).
#[derive(Serialize)]
struct StreamReport {
    schema_version: u32,
    name: String,
    info: StreamFacts,
    stats: StreamCounters,
    writers: Vec<WriterReport>,
    groups: Vec<GroupView>,
    readers: Vec<ReaderReport>,
}

/// A stream's fixed facts.
#[derive(Serialize)]
struct StreamFacts {
    capacity: u32,
    max_frame_size: u32,
    slot_size: u32,
    schema: Option<String>,
    checksum: bool,
    backpressure: &'static str,
    max_readers: u32,
    max_writers: u32,
    max_groups: u32,
    segment_size: u64,
    creator_pid: u32,
    creator_alive: bool,
}

/// A snapshot of a stream's counters.
#[derive(Serialize)]
struct StreamCounters {
    writer_state: &'static str,
    frames_written: u64,
    bytes_written: u64,
    writer_waits: u64,
    writer_wait_ns: u64,
    fill: f64,
    frames_dropped: u64,
    frames_skipped: u64,
    writers_reclaimed: u64,
    readers_reclaimed: u64,
    frames_redelivered: u64,
}

/// A live writer.
#[derive(Serialize)]
struct WriterReport {
    index: u32,
    pid: u32,
    alive: bool,
    frames_written: u64,
    bytes_written: u64,
}

/// An attached reader.
#[derive(Serialize)]
struct ReaderReport {
    index: u32,
    pid: u32,
    alive: bool,
    lossy: bool,
    position: u64,
    frames_read: u64,
    lag: u64,
    missed: u64,
    group: Option<String>,
}

fn describe_stream(stream: &Stream) -> StreamReport {
    let info = stream.info();
    let stats = stream.stats();
    // A single-writer stream has no writer table: its writer is the header's pid.
    let writers: Vec<WriterReport> = if info.max_writers > 1 {
        stats
            .writers
            .iter()
            .map(|w| WriterReport {
                index: w.index,
                pid: w.pid,
                alive: w.alive,
                frames_written: w.frames_written,
                bytes_written: w.bytes_written,
            })
            .collect()
    } else {
        stats
            .writer_pid
            .filter(|_| stats.writer_state == shmline::WriterState::Active)
            .map(|pid| WriterReport {
                index: 0,
                pid,
                alive: true,
                frames_written: stats.frames_written,
                bytes_written: stats.bytes_written,
            })
            .into_iter()
            .collect()
    };
    StreamReport {
        schema_version: SCHEMA_VERSION,
        name: info.name.clone(),
        info: StreamFacts {
            capacity: info.capacity,
            max_frame_size: info.max_frame_size,
            slot_size: info.slot_size,
            schema: info.schema.as_ref().map(|s| s.to_string()),
            checksum: info.checksum,
            backpressure: info.backpressure.name(),
            max_readers: info.max_readers,
            max_writers: info.max_writers,
            max_groups: info.max_groups,
            segment_size: info.segment_size,
            creator_pid: info.creator.pid,
            creator_alive: info.creator.is_alive(),
        },
        stats: StreamCounters {
            writer_state: writer_state(stats.writer_state),
            frames_written: stats.frames_written,
            bytes_written: stats.bytes_written,
            writer_waits: stats.writer_waits,
            writer_wait_ns: stats.writer_wait_ns,
            fill: stats.fill(),
            frames_dropped: stats.frames_dropped,
            frames_skipped: stats.frames_skipped,
            writers_reclaimed: stats.writers_reclaimed,
            readers_reclaimed: stats.readers_reclaimed,
            frames_redelivered: stats.frames_redelivered(),
        },
        writers,
        groups: stats.groups.iter().map(GroupView::from).collect(),
        readers: stats
            .readers
            .iter()
            .map(|r| ReaderReport {
                index: r.index,
                pid: r.pid,
                alive: r.alive,
                lossy: r.lossy,
                position: r.position,
                frames_read: r.frames_read,
                lag: r.lag,
                missed: r.missed,
                group: r.group.clone(),
            })
            .collect(),
    }
}

fn stream_text(r: &StreamReport) -> String {
    let (i, s) = (&r.info, &r.stats);
    let alive = |a: bool| if a { "alive" } else { "dead" };
    let mut out = format!("stream {}\n", r.name);
    out.push_str(&format!(
        "  slots            {} of {} bytes ({} per slot), {}\n",
        i.capacity,
        i.max_frame_size,
        i.slot_size,
        match &i.schema {
            Some(schema) => format!("schema {schema}"),
            None => "raw bytes".to_string(),
        }
    ));
    out.push_str(&format!(
        "  backpressure     {}; checksum {}\n",
        i.backpressure,
        if i.checksum { "crc32c" } else { "off" }
    ));
    out.push_str(&format!(
        "  limits           {} readers, {}, {} reader groups\n",
        i.max_readers,
        if i.max_writers > 1 {
            format!("{} writers at once (multi-writer)", i.max_writers)
        } else {
            "1 writer (single-writer)".to_string()
        },
        i.max_groups
    ));
    out.push_str(&format!(
        "  creator          pid {} ({})\n",
        i.creator_pid,
        alive(i.creator_alive)
    ));
    out.push_str(&format!(
        "  frames           {} written ({}), fill {:.0}%\n",
        s.frames_written,
        display::bytes(s.bytes_written),
        s.fill * 100.0
    ));
    out.push_str(&format!(
        "  lost             {} dropped (full ring), {} skipped (dead writers, aborted \
         reservations); reclaimed {} writers, {} readers\n",
        s.frames_dropped, s.frames_skipped, s.writers_reclaimed, s.readers_reclaimed
    ));
    out.push_str(&format!(
        "  redelivered      {} (frames of group members that died holding them)\n",
        s.frames_redelivered
    ));
    out.push_str(&format!("  writer state     {}\n", s.writer_state));
    let mut rows = vec![header(&["  WRITER", "PID", "STATE", "FRAMES", "BYTES"])];
    for w in &r.writers {
        rows.push(vec![
            format!("  {}", w.index),
            w.pid.to_string(),
            alive(w.alive).to_string(),
            w.frames_written.to_string(),
            display::bytes(w.bytes_written),
        ]);
    }
    out.push('\n');
    if rows.len() > 1 {
        out.push_str(&display::table(&rows));
    } else {
        out.push_str("  no writer attached\n");
    }
    if !r.groups.is_empty() {
        let mut rows = vec![header(&[
            "  GROUP",
            "MEMBERS",
            "NEXT",
            "LAG",
            "HANDED OUT",
            "REDELIVERED",
        ])];
        for g in &r.groups {
            rows.push(vec![
                format!("  {}", g.name),
                g.members_cell(),
                g.next.to_string(),
                g.lag.to_string(),
                g.frames_handed_out.to_string(),
                g.redelivered.to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&display::table(&rows));
    }
    let mut rows = vec![header(&[
        "  READER", "PID", "STATE", "KIND", "GROUP", "POSITION", "LAG", "MISSED",
    ])];
    for rd in &r.readers {
        rows.push(vec![
            format!("  {}", rd.index),
            rd.pid.to_string(),
            alive(rd.alive).to_string(),
            if rd.lossy { "lossy" } else { "lossless" }.to_string(),
            rd.group.clone().unwrap_or_else(|| "-".into()),
            rd.position.to_string(),
            rd.lag.to_string(),
            rd.missed.to_string(),
        ]);
    }
    out.push('\n');
    if rows.len() > 1 {
        out.push_str(&display::table(&rows));
    } else {
        out.push_str("  no reader attached\n");
    }
    out
}

fn header(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}
