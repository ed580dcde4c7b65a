//! `shmline info`: what this build of shmline is, can do, and refuses.

use crate::platform;
use serde_json::{json, Value};
use shmline::layout;
use shmline::shm::{MAX_NAME_LEN, SHM_DIR};
use std::process::ExitCode;

/// What `shmline info --help` says about the command.
pub const LONG_ABOUT: &str =
    "Show the library version, the shared-memory layout version (processes must \
                  agree on it to share a stream), the features compiled in, the limits every \
                  stream and name must respect, and the platform.\n\n\
                  With --json, print one JSON object with the keys version, layout_version, \
                  features, limits and platform.";

/// Options of `shmline info`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one machine-readable JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `shmline info`.
pub fn run(args: &Args) -> ExitCode {
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
            "readers": ["lossless", "lossy"],
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
            "max_writers": 1,
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
        "  readers          1 to {} per stream; writers: {}",
        l["max_readers"], l["max_writers"]
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
