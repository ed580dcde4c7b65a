//! `shmline info`: what this build of shmline is, can do, and refuses; or, given a stream's
//! name, everything about that stream.

use crate::display;
use crate::ls::writer_state;
use crate::platform;
use serde_json::{json, Value};
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
                  With --json, print one JSON object: without STREAM, with the keys version, \
                  layout_version, features, limits and platform; with STREAM, with the keys \
                  name, info, stats, writers, groups and readers.";

/// Options of `shmline info`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Describe this stream (a name as `shmline ls` lists it) instead of the library.
    stream: Option<String>,
    /// Print one machine-readable JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `shmline info`.
pub fn run(args: &Args) -> ExitCode {
    if let Some(name) = &args.stream {
        return run_stream(name, args.json);
    }
    let report = describe();
    if args.json {
        println!("{report:#}");
    } else {
        print_text(&report);
    }
    ExitCode::SUCCESS
}

/// Everything `info` reports, as the JSON object `--json` prints.
fn describe() -> Value {
    json!({
        "version": shmline::VERSION,
        "layout_version": shmline::LAYOUT_VERSION,
        "features": {
            "checksum": "crc32c",
            "wait_strategies": ["adaptive", "busy-spin", "block"],
            "default_wait_strategy": "adaptive",
            "futex": cfg!(target_os = "linux"),
            "events": ["flag", "counting"],
            "readers": ["lossless", "lossy", "reader groups (max_groups)"],
            "writers": ["single", "multiple (max_writers)"],
            "backpressure": ["block", "fail", "drop_newest", "drop_oldest"],
            "zero_copy": ["reserve/commit", "acquire/release"],
            "batch": ["write_batch", "read_batch"],
            "schemas": "numpy dtype + shape",
        },
        "limits": {
            "max_capacity": layout::MAX_CAPACITY,
            "capacity_rule": "a power of two",
            "max_frame_size": layout::MAX_FRAME_SIZE,
            "max_readers": layout::MAX_READERS,
            "max_writers": layout::MAX_WRITERS,
            "max_groups": layout::MAX_GROUPS,
            "group_name_rule": "1 to 63 bytes of A-Z a-z 0-9 _ . -, not starting with '.' or '-'",
            "max_segment_size": layout::MAX_SEGMENT_SIZE,
            "max_name_len": MAX_NAME_LEN,
            "name_rule": "1 to 200 characters of A-Z a-z 0-9 _ . -, not starting with '.' or '-'",
            "max_ndim": layout::MAX_NDIM,
            "dtype_len": layout::DTYPE_LEN,
            "frame_header_size": layout::FRAME_HEADER_SIZE,
            "stream_header_size": layout::READERS_OFFSET,
            "slot_align": layout::SLOT_ALIGN,
            "shm_dir": SHM_DIR,
        },
        "platform": platform::describe(),
    })
}

fn print_text(r: &Value) {
    let f = &r["features"];
    let l = &r["limits"];
    let p = &r["platform"];
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!("shmline {}", r["version"].as_str().unwrap_or("?"));
    println!("layout version     {}", r["layout_version"]);
    println!();
    println!("features");
    println!(
        "  checksum         {} (optional, per stream)",
        f["checksum"].as_str().unwrap_or("?")
    );
    println!(
        "  wait strategies  {} (default {}; futex sleep: {})",
        list(&f["wait_strategies"]),
        f["default_wait_strategy"].as_str().unwrap_or("?"),
        if f["futex"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        }
    );
    println!("  events           {}", list(&f["events"]));
    println!("  readers          {}", list(&f["readers"]));
    println!("  writers          {} (per stream)", list(&f["writers"]));
    println!(
        "  backpressure     {} (per stream)",
        list(&f["backpressure"])
    );
    println!("  zero-copy        {}", list(&f["zero_copy"]));
    println!("  batch calls      {}", list(&f["batch"]));
    println!(
        "  schemas          {}",
        f["schemas"].as_str().unwrap_or("?")
    );
    println!();
    println!("limits");
    println!(
        "  capacity         1 to {} slots, {}",
        l["max_capacity"],
        l["capacity_rule"].as_str().unwrap_or("?")
    );
    println!(
        "  frame size       1 to {} bytes ({})",
        l["max_frame_size"],
        human_bytes(l["max_frame_size"].as_u64().unwrap_or(0))
    );
    println!(
        "  readers          1 to {} per stream; writers 1 to {}; reader groups 0 to {}",
        l["max_readers"], l["max_writers"], l["max_groups"]
    );
    println!(
        "  segment size     up to {} bytes ({})",
        l["max_segment_size"],
        human_bytes(l["max_segment_size"].as_u64().unwrap_or(0))
    );
    println!(
        "  names            {}",
        l["name_rule"].as_str().unwrap_or("?")
    );
    println!(
        "  group names      {}",
        l["group_name_rule"].as_str().unwrap_or("?")
    );
    println!(
        "  schema           up to {} dimensions, dtype up to {} bytes",
        l["max_ndim"], l["dtype_len"]
    );
    println!(
        "  overhead         {}-byte frame header per slot, slots rounded to {} bytes, {}-byte \
         stream header",
        l["frame_header_size"], l["slot_align"], l["stream_header_size"]
    );
    println!(
        "  segments in      {}",
        l["shm_dir"].as_str().unwrap_or("?")
    );
    println!();
    println!("platform");
    println!(
        "  system           {} {}, kernel {}",
        p["os"].as_str().unwrap_or("?"),
        p["arch"].as_str().unwrap_or("?"),
        p["kernel"].as_str().unwrap_or("?")
    );
    println!(
        "  cpu              {} ({} online)",
        p["cpu_model"].as_str().unwrap_or("?"),
        p["cpus_online"]
    );
    println!(
        "  page size        {} bytes; clock source {}",
        p["page_size"],
        p["clocksource"].as_str().unwrap_or("?")
    );
}

/// `bytes` in the largest binary unit that divides it, e.g. "1 GiB".
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024 && value % 1024 == 0 && unit + 1 < UNITS.len() {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

/// Runs `shmline info STREAM`.
fn run_stream(name: &str, json: bool) -> ExitCode {
    let stream = match crate::ls::look(
        shmline::__private::shm::SegmentKind::Stream,
        name,
        Stream::open,
    ) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("shmline info: {e}");
            return ExitCode::from(1);
        }
    };
    let report = describe_stream(&stream);
    if json {
        println!("{report:#}");
    } else {
        print!("{}", stream_text(&report));
    }
    ExitCode::SUCCESS
}

/// Everything `info STREAM` reports, as the JSON object `--json` prints.
fn describe_stream(stream: &Stream) -> Value {
    let info = stream.info();
    let stats = stream.stats();
    // A single-writer stream has no writer table: its writer is the header's pid.
    let writers: Vec<Value> = if info.max_writers > 1 {
        stats
            .writers
            .iter()
            .map(|w| {
                json!({
                    "index": w.index,
                    "pid": w.pid,
                    "alive": w.alive,
                    "frames_written": w.frames_written,
                    "bytes_written": w.bytes_written,
                })
            })
            .collect()
    } else {
        stats
            .writer_pid
            .filter(|_| stats.writer_state == shmline::WriterState::Active)
            .map(|pid| {
                json!({
                    "index": 0,
                    "pid": pid,
                    "alive": true,
                    "frames_written": stats.frames_written,
                    "bytes_written": stats.bytes_written,
                })
            })
            .into_iter()
            .collect()
    };
    json!({
        "name": info.name,
        "info": {
            "capacity": info.capacity,
            "max_frame_size": info.max_frame_size,
            "slot_size": info.slot_size,
            "schema": info.schema.as_ref().map(|s| s.to_string()),
            "checksum": info.checksum,
            "backpressure": info.backpressure.name(),
            "max_readers": info.max_readers,
            "max_writers": info.max_writers,
            "max_groups": info.max_groups,
            "segment_size": info.segment_size,
            "creator_pid": info.creator.pid,
            "creator_alive": info.creator.is_alive(),
        },
        "stats": {
            "writer_state": writer_state(stats.writer_state),
            "frames_written": stats.frames_written,
            "bytes_written": stats.bytes_written,
            "writer_waits": stats.writer_waits,
            "writer_wait_ns": stats.writer_wait_ns,
            "fill": stats.fill(),
            "frames_dropped": stats.frames_dropped,
            "frames_skipped": stats.frames_skipped,
            "writers_reclaimed": stats.writers_reclaimed,
            "readers_reclaimed": stats.readers_reclaimed,
            "frames_redelivered": stats.frames_redelivered(),
        },
        "writers": writers,
        "groups": stats.groups.iter().map(display::group_json).collect::<Vec<_>>(),
        "readers": stats.readers.iter().map(|r| json!({
            "index": r.index,
            "pid": r.pid,
            "alive": r.alive,
            "lossy": r.lossy,
            "position": r.position,
            "frames_read": r.frames_read,
            "lag": r.lag,
            "missed": r.missed,
            "group": r.group,
        })).collect::<Vec<_>>(),
    })
}

fn stream_text(r: &Value) -> String {
    let i = &r["info"];
    let s = &r["stats"];
    let str_of = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let alive = |v: &Value| {
        if v.as_bool() == Some(true) {
            "alive"
        } else {
            "dead"
        }
    };
    let mut out = format!("stream {}\n", str_of(&r["name"]));
    out.push_str(&format!(
        "  slots            {} of {} bytes ({} per slot), {}\n",
        i["capacity"],
        i["max_frame_size"],
        i["slot_size"],
        match i["schema"].as_str() {
            Some(schema) => format!("schema {schema}"),
            None => "raw bytes".to_string(),
        }
    ));
    out.push_str(&format!(
        "  backpressure     {}; checksum {}\n",
        str_of(&i["backpressure"]),
        if i["checksum"] == json!(true) {
            "crc32c"
        } else {
            "off"
        }
    ));
    let writers = i["max_writers"].as_u64().unwrap_or(1);
    out.push_str(&format!(
        "  limits           {} readers, {}, {} reader groups\n",
        i["max_readers"],
        if writers > 1 {
            format!("{writers} writers at once (multi-writer)")
        } else {
            "1 writer (single-writer)".to_string()
        },
        i["max_groups"]
    ));
    out.push_str(&format!(
        "  creator          pid {} ({})\n",
        i["creator_pid"],
        alive(&i["creator_alive"])
    ));
    out.push_str(&format!(
        "  frames           {} written ({}), fill {:.0}%\n",
        s["frames_written"],
        display::bytes(s["bytes_written"].as_u64().unwrap_or(0)),
        s["fill"].as_f64().unwrap_or(0.0) * 100.0
    ));
    out.push_str(&format!(
        "  lost             {} dropped (full ring), {} skipped (dead writers, aborted \
         reservations); reclaimed {} writers, {} readers\n",
        s["frames_dropped"], s["frames_skipped"], s["writers_reclaimed"], s["readers_reclaimed"]
    ));
    out.push_str(&format!(
        "  redelivered      {} (frames of group members that died holding them)\n",
        s["frames_redelivered"]
    ));
    out.push_str(&format!(
        "  writer state     {}\n",
        str_of(&s["writer_state"])
    ));
    let mut rows = vec![["  WRITER", "PID", "STATE", "FRAMES", "BYTES"]
        .map(String::from)
        .to_vec()];
    for w in r["writers"].as_array().into_iter().flatten() {
        rows.push(vec![
            format!("  {}", w["index"]),
            w["pid"].to_string(),
            alive(&w["alive"]).to_string(),
            w["frames_written"].to_string(),
            display::bytes(w["bytes_written"].as_u64().unwrap_or(0)),
        ]);
    }
    out.push('\n');
    if rows.len() > 1 {
        out.push_str(&display::table(&rows));
    } else {
        out.push_str("  no writer attached\n");
    }
    let groups = r["groups"].as_array().map_or(&[][..], Vec::as_slice);
    if !groups.is_empty() {
        let mut rows = vec![[
            "  GROUP",
            "MEMBERS",
            "NEXT",
            "LAG",
            "HANDED OUT",
            "REDELIVERED",
        ]
        .map(String::from)
        .to_vec()];
        for g in groups {
            let orphans = g["orphans"].as_u64().unwrap_or(0);
            rows.push(vec![
                format!("  {}", str_of(&g["name"])),
                if orphans > 0 {
                    format!("{} (+{orphans} dead)", g["members"])
                } else {
                    g["members"].to_string()
                },
                g["next"].to_string(),
                g["lag"].to_string(),
                g["frames_handed_out"].to_string(),
                g["redelivered"].to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&display::table(&rows));
    }
    let mut rows = vec![[
        "  READER", "PID", "STATE", "KIND", "GROUP", "POSITION", "LAG", "MISSED",
    ]
    .map(String::from)
    .to_vec()];
    for rd in r["readers"].as_array().into_iter().flatten() {
        rows.push(vec![
            format!("  {}", rd["index"]),
            rd["pid"].to_string(),
            alive(&rd["alive"]).to_string(),
            if rd["lossy"] == json!(true) {
                "lossy"
            } else {
                "lossless"
            }
            .to_string(),
            rd["group"].as_str().unwrap_or("-").to_string(),
            rd["position"].to_string(),
            rd["lag"].to_string(),
            rd["missed"].to_string(),
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
