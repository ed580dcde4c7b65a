//! `shmline top`: a live view of running pipelines.

use crate::display;
use crate::ls::{look, writer_state};
use crate::procfs;
use serde_json::{json, Value};
use shmline::__private::shm::SegmentKind;
use shmline::pipeline::{PipelineState, Registry, TaskExit, TaskState};
use shmline::{Stream, StreamStats};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Watch running pipelines live: streams (fill, rates, lag, writer wait, drops) and tasks (CPU,
/// memory).
///
/// Per stream: the ring fill, frames/s, MB/s, each reader's lag (and frames it missed), the share
/// of time the writer waited for space, the backpressure policy and the frames dropped by it; for
/// a multi-writer stream, every writing task (and any other writer, by pid) with how many of
/// max_writers are attached, and the frames skipped because a writer died holding them; each
/// reader's group, and per reader group: its members, next frame, lag and the frames delivered
/// again because a member died holding them. Per task: its state, pid, CPU % and resident
/// memory.
///
/// A registry that cannot be read (damaged, or a file under a pipeline's name that is not a
/// finished shmline registry) is listed as unreadable, at once: top never waits for it.
///
/// The view is redrawn in place every --interval seconds until Ctrl-C (or until the named
/// pipeline ends). Rates are measured between two looks, so --once waits one interval before it
/// prints.
#[derive(clap::Args)]
pub struct TopArgs {
    /// Show only this pipeline (default: every pipeline on this machine).
    pub pipeline: Option<String>,
    /// Print one view and exit.
    #[arg(long)]
    pub once: bool,
    /// Print JSON instead of a table: one object per view, one per line.
    #[arg(long)]
    pub json: bool,
    /// Seconds between views (and over which rates are measured).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub interval: f64,
}

pub fn run(args: &TopArgs) -> ExitCode {
    let Ok(interval) = Duration::try_from_secs_f64(args.interval) else {
        eprintln!(
            "shmline top: --interval {}: give a number of seconds",
            args.interval
        );
        return ExitCode::from(2);
    };
    let mut previous = match sample(args.pipeline.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shmline top: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(name) = &args.pipeline {
        if previous.pipelines.is_empty() {
            eprintln!(
                "shmline top: no pipeline named {name:?} runs here (`shmline ls` lists them)"
            );
            return ExitCode::from(1);
        }
    }
    let clear = !args.json && !args.once && display::stdout_is_terminal();
    loop {
        std::thread::sleep(interval);
        let current = match sample(args.pipeline.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("shmline top: {e}");
                return ExitCode::from(1);
            }
        };
        let view = view(&previous, &current);
        let mut out = std::io::stdout().lock();
        if args.json {
            let _ = writeln!(out, "{view}");
        } else {
            if clear {
                let _ = write!(out, "\x1b[H\x1b[2J");
            }
            let _ = write!(out, "{}", text(&view));
            if !clear && !args.once {
                let _ = writeln!(out);
            }
        }
        let _ = out.flush();
        if args.once {
            return ExitCode::SUCCESS;
        }
        if let Some(name) = &args.pipeline {
            if current.pipelines.is_empty() {
                eprintln!("shmline top: pipeline {name:?} has ended");
                return ExitCode::SUCCESS;
            }
        }
        previous = current;
    }
}

/// One look at every pipeline.
struct Sample {
    at: Instant,
    pipelines: Vec<PipelineSample>,
    /// Registries that could not be read: (name, why).
    unreadable: Vec<(String, String)>,
}

struct PipelineSample {
    registry: Registry,
    streams: Vec<Option<StreamStats>>,
    /// Per task: CPU ticks and resident bytes of its process.
    usage: Vec<(Option<u64>, Option<u64>)>,
}

fn sample(only: Option<&str>) -> shmline::Result<Sample> {
    let names = match only {
        Some(name) => vec![name.to_string()],
        None => Registry::list()?,
    };
    let mut pipelines = Vec::new();
    let mut unreadable = Vec::new();
    for name in names {
        let registry = match look(SegmentKind::Pipeline, &name, Registry::open) {
            Ok(r) => r,
            Err(shmline::Error::NotFound(_)) => continue,
            Err(e) if only.is_some() => return Err(e),
            // Another pipeline's registry may be half-made, damaged or not a registry at all:
            // say so and show the others.
            Err(e) => {
                unreadable.push((name, e.to_string()));
                continue;
            }
        };
        let streams = registry
            .info()
            .streams
            .iter()
            .map(|s| {
                look(SegmentKind::Stream, &s.segment, Stream::open)
                    .ok()
                    .map(|s| s.stats())
            })
            .collect();
        let usage = (0..registry.info().tasks.len())
            .map(|i| {
                let pid = registry
                    .task_status(i)
                    .ok()
                    .and_then(|s| (s.state != TaskState::Exited).then(|| s.pid()).flatten());
                (
                    pid.and_then(procfs::cpu_ticks),
                    pid.and_then(procfs::rss_bytes),
                )
            })
            .collect();
        pipelines.push(PipelineSample {
            registry,
            streams,
            usage,
        });
    }
    Ok(Sample {
        at: Instant::now(),
        pipelines,
        unreadable,
    })
}

/// The view of `current`, with rates measured since `previous`.
fn view(previous: &Sample, current: &Sample) -> Value {
    let dt = current.at.duration_since(previous.at).as_secs_f64();
    let rate = |now: u64, before: Option<u64>| -> Value {
        match before {
            Some(b) if dt > 0.0 => json!(now.saturating_sub(b) as f64 / dt),
            _ => Value::Null,
        }
    };
    let pipelines: Vec<Value> = current
        .pipelines
        .iter()
        .map(|p| {
            let info = p.registry.info();
            let before = previous
                .pipelines
                .iter()
                .find(|q| q.registry.name() == p.registry.name());
            let state = p.registry.state().ok();
            let statuses: Vec<_> = (0..info.tasks.len())
                .map(|i| p.registry.task_status(i).ok())
                .collect();
            let task_of_pid = |pid: u32| {
                statuses
                    .iter()
                    .position(|s| s.as_ref().and_then(|s| s.joined).is_some_and(|j| j.pid == pid))
                    .map(|i| info.tasks[i].name.clone())
            };
            let streams: Vec<Value> = info
                .streams
                .iter()
                .zip(&p.streams)
                .enumerate()
                .map(|(i, (entry, stats))| {
                    let old = before.and_then(|b| b.streams.get(i)).and_then(Option::as_ref);
                    let Some(stats) = stats else {
                        return json!({"name": entry.name, "segment": entry.segment, "missing": true});
                    };
                    let wait = match old {
                        Some(o) if dt > 0.0 => json!(
                            (stats.writer_wait_ns.saturating_sub(o.writer_wait_ns) as f64
                                / 1e9
                                / dt
                                * 100.0)
                                .min(100.0)
                        ),
                        _ => Value::Null,
                    };
                    json!({
                        "name": entry.name,
                        "segment": entry.segment,
                        "capacity": stats.capacity,
                        "fill": stats.fill(),
                        "frames": stats.frames_written,
                        "bytes": stats.bytes_written,
                        "frames_per_s": rate(stats.frames_written, old.map(|o| o.frames_written)),
                        "mb_per_s": rate(stats.bytes_written, old.map(|o| o.bytes_written))
                            .as_f64().map(|b| b / 1e6),
                        "writer_wait_percent": wait,
                        "backpressure": stats.backpressure.name(),
                        "frames_dropped": stats.frames_dropped,
                        "frames_skipped": stats.frames_skipped,
                        "frames_redelivered": stats.frames_redelivered(),
                        "max_writers": stats.max_writers,
                        "writers": stats.writers.iter().map(|w| json!({
                            "task": task_of_pid(w.pid),
                            "pid": w.pid,
                            "alive": w.alive,
                            "frames_written": w.frames_written,
                        })).collect::<Vec<_>>(),
                        "frames_missed": stats.readers.iter().map(|r| r.missed).sum::<u64>(),
                        "writer": writer_state(stats.writer_state),
                        "writer_tasks": entry
                            .writer_tasks
                            .iter()
                            .map(|&t| info.tasks[t].name.clone())
                            .collect::<Vec<_>>(),
                        "readers": stats.readers.iter().map(|r| json!({
                            "task": task_of_pid(r.pid),
                            "pid": r.pid,
                            "alive": r.alive,
                            "lossy": r.lossy,
                            "group": r.group,
                            "lag": r.lag,
                            "frames_read": r.frames_read,
                            "missed": r.missed,
                        })).collect::<Vec<_>>(),
                        "groups": stats.groups.iter().map(display::group_json).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let ticks = procfs::ticks_per_second();
            let tasks: Vec<Value> = info
                .tasks
                .iter()
                .enumerate()
                .map(|(i, task)| {
                    let status = statuses[i].as_ref();
                    let (cpu, rss) = p.usage[i];
                    let old_cpu = before.and_then(|b| b.usage.get(i)).and_then(|u| u.0);
                    let cpu_percent = match (cpu, old_cpu) {
                        (Some(now), Some(then)) if dt > 0.0 => {
                            json!(now.saturating_sub(then) as f64 / ticks / dt * 100.0)
                        }
                        _ => Value::Null,
                    };
                    let state = match (status.map(|s| s.state), state) {
                        (Some(TaskState::Joined), Some(PipelineState::Running)) => "running",
                        (Some(s), _) => s.name(),
                        (None, _) => "corrupt",
                    };
                    let exit = status.and_then(|s| s.exit);
                    json!({
                        "name": task.name,
                        "state": state,
                        "pid": status.and_then(|s| s.pid()),
                        "cpu_percent": cpu_percent,
                        "rss_bytes": rss,
                        "exit_code": match exit { Some(TaskExit::Code(c)) => Some(c), _ => None },
                        "signal": match exit { Some(TaskExit::Signal(s)) => Some(s), _ => None },
                        "command": task.command,
                    })
                })
                .collect();
            let (started, _) = p.registry.run_times();
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            json!({
                "name": info.name,
                "state": state.map_or("corrupt", |s| s.name()),
                "runner_pid": info.runner.pid,
                "runner_alive": p.registry.runner_alive(),
                "uptime_s": now_ns.saturating_sub(info.created_unix_ns) as f64 / 1e9,
                "running_s": if started == 0 { Value::Null } else { json!(now_ns.saturating_sub(started) as f64 / 1e9) },
                "streams": streams,
                "tasks": tasks,
            })
        })
        .collect();
    let unreadable: Vec<Value> = current
        .unreadable
        .iter()
        .map(|(name, error)| json!({"kind": "pipeline", "name": name, "error": error}))
        .collect();
    json!({ "pipelines": pipelines, "unreadable": unreadable })
}

/// The WRITER cell of a stream: its writer task and state; for a multi-writer stream, every
/// writing task (marked when its writer is not attached, or attached and dead), then any other
/// attached writer by pid, and how many of max_writers are attached.
fn writer_cell(s: &Value) -> String {
    let state = s["writer"].as_str().unwrap_or("?");
    let max_writers = s["max_writers"].as_u64().unwrap_or(1);
    let tasks: Vec<&str> = s["writer_tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if max_writers <= 1 {
        return format!("{} ({state})", tasks.first().unwrap_or(&"-"));
    }
    let attached = s["writers"].as_array().map_or(&[][..], Vec::as_slice);
    let dead = |w: &Value| w["alive"] == json!(false);
    let mut cells: Vec<String> = tasks
        .iter()
        .map(
            |&task| match attached.iter().find(|w| w["task"].as_str() == Some(task)) {
                Some(w) if dead(w) => format!("{task} (dead)"),
                Some(_) => task.to_string(),
                None => format!("{task} (not attached)"),
            },
        )
        .collect();
    for w in attached {
        if w["task"].as_str().is_some_and(|t| tasks.contains(&t)) {
            continue;
        }
        let who = w["task"]
            .as_str()
            .map_or_else(|| format!("pid {}", w["pid"]), str::to_owned);
        cells.push(if dead(w) {
            format!("{who} (dead)")
        } else {
            who
        });
    }
    format!(
        "{} ({state}, {}/{max_writers} writers)",
        if cells.is_empty() {
            "-".to_string()
        } else {
            cells.join(" ")
        },
        attached.len()
    )
}

/// One reader in the READERS cell: its task (or pid), its group after an `@`, its lag, and the
/// frames it missed if any.
fn reader_cell(r: &Value) -> String {
    let mut who = r["task"]
        .as_str()
        .map_or_else(|| format!("pid {}", r["pid"]), str::to_owned);
    if let Some(group) = r["group"].as_str() {
        who = format!("{who}@{group}");
    }
    match r["missed"].as_u64() {
        Some(missed) if missed > 0 => format!("{who}:{} (missed {missed})", r["lag"]),
        _ => format!("{who}:{}", r["lag"]),
    }
}

fn text(view: &Value) -> String {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let str_of = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let number = |v: &Value, f: &dyn Fn(f64) -> String| v.as_f64().map_or("-".to_string(), f);
    let pipelines = list(&view["pipelines"]);
    let mut out = String::new();
    if pipelines.is_empty() {
        out.push_str("no pipeline is running\n");
    }
    for p in pipelines {
        out.push_str(&format!(
            "pipeline {}  {}  runner {} ({})  up {}\n",
            str_of(&p["name"]),
            str_of(&p["state"]),
            p["runner_pid"],
            if p["runner_alive"] == json!(true) {
                "alive"
            } else {
                "dead"
            },
            number(&p["uptime_s"], &|s| display::seconds(
                Duration::from_secs_f64(s)
            )),
        ));
        let mut rows = vec![[
            "  STREAM",
            "FILL",
            "FRAMES/S",
            "MB/S",
            "WRITER WAIT",
            "POLICY",
            "DROPPED",
            "WRITER",
            "READERS (LAG)",
        ]
        .map(String::from)
        .to_vec()];
        for s in list(&p["streams"]) {
            if s["missing"] == json!(true) {
                rows.push(vec![format!("  {}", str_of(&s["name"])), "(gone)".into()]);
                continue;
            }
            let readers: Vec<String> = list(&s["readers"]).iter().map(reader_cell).collect();
            rows.push(vec![
                format!("  {}", str_of(&s["name"])),
                number(&s["fill"], &|f| format!("{:.0}%", f * 100.0)),
                number(&s["frames_per_s"], &display::si),
                number(&s["mb_per_s"], &|m| format!("{m:.1}")),
                number(&s["writer_wait_percent"], &|w| format!("{w:.0}%")),
                str_of(&s["backpressure"]),
                match s["frames_skipped"].as_u64() {
                    Some(skipped) if skipped > 0 => {
                        format!("{} (skipped {skipped})", s["frames_dropped"])
                    }
                    _ => s["frames_dropped"].to_string(),
                },
                writer_cell(&s),
                readers.join(" "),
            ]);
        }
        out.push_str(&display::table(&rows));
        let mut groups = vec![
            ["  GROUP", "STREAM", "MEMBERS", "NEXT", "LAG", "REDELIVERED"]
                .map(String::from)
                .to_vec(),
        ];
        for s in list(&p["streams"]) {
            for g in list(&s["groups"]) {
                let orphans = g["orphans"].as_u64().unwrap_or(0);
                groups.push(vec![
                    format!("  {}", str_of(&g["name"])),
                    str_of(&s["name"]),
                    if orphans > 0 {
                        format!("{} (+{orphans} dead)", g["members"])
                    } else {
                        g["members"].to_string()
                    },
                    g["next"].to_string(),
                    g["lag"].to_string(),
                    g["redelivered"].to_string(),
                ]);
            }
        }
        if groups.len() > 1 {
            out.push_str(&display::table(&groups));
        }
        let mut rows = vec![["  TASK", "STATE", "PID", "CPU%", "RSS", "COMMAND"]
            .map(String::from)
            .to_vec()];
        for t in list(&p["tasks"]) {
            let state = match (&t["exit_code"], &t["signal"]) {
                (c, _) if c.is_number() => format!("exited {c}"),
                (_, s) if s.is_number() => format!("killed by signal {s}"),
                _ => str_of(&t["state"]),
            };
            rows.push(vec![
                format!("  {}", str_of(&t["name"])),
                state,
                t["pid"].as_u64().map_or("-".into(), |p| p.to_string()),
                number(&t["cpu_percent"], &|c| format!("{c:.1}")),
                t["rss_bytes"].as_u64().map_or("-".into(), display::bytes),
                str_of(&t["command"]),
            ]);
        }
        out.push_str(&display::table(&rows));
        out.push('\n');
    }
    for u in list(&view["unreadable"]) {
        out.push_str(&format!(
            "cannot read pipeline {}: {}\n",
            str_of(&u["name"]),
            str_of(&u["error"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_writer_stream_shows_every_writer_task_and_other_writers_by_pid() {
        let stream = json!({
            "writer": "active",
            "writer_tasks": ["source-a", "source-b", "source-c"],
            "max_writers": 4,
            "writers": [
                {"task": "source-a", "pid": 11, "alive": true},
                {"task": null, "pid": 12, "alive": false},
                {"task": "source-c", "pid": 13, "alive": false},
            ],
        });
        assert_eq!(
            writer_cell(&stream),
            "source-a source-b (not attached) source-c (dead) pid 12 (dead) (active, 3/4 writers)"
        );
    }

    #[test]
    fn a_single_writer_stream_shows_its_writer_task_and_state() {
        let stream = json!({"writer": "closed", "writer_tasks": ["source"], "max_writers": 1});
        assert_eq!(writer_cell(&stream), "source (closed)");
        let orphan = json!({"writer": "none", "writer_tasks": [], "max_writers": 1});
        assert_eq!(writer_cell(&orphan), "- (none)");
    }

    #[test]
    fn a_group_member_shows_its_group_after_its_task_and_a_plain_reader_does_not() {
        let member = json!({"task": "w0", "pid": 5, "group": "fir", "lag": 3, "missed": 0});
        assert_eq!(reader_cell(&member), "w0@fir:3");
        let plain = json!({"task": null, "pid": 6, "group": null, "lag": 0, "missed": 2});
        assert_eq!(reader_cell(&plain), "pid 6:0 (missed 2)");
    }
}
