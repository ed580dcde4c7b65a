//! What `top` shows: the typed view (printed as JSON by `--json`) and its rows of text.

use super::sample::Sample;
use crate::display::{self, GroupView};
use crate::ls::writer_state;
use crate::output::SCHEMA_VERSION;
use crate::usage;
use serde::Serialize;
use shmline::pipeline::{PipelineState, TaskExit, TaskState};
use std::time::Duration;

/// One view of the pipelines watched (`top --json` prints one per line).
#[derive(Serialize, Debug)]
pub struct View {
    /// Version of this document's shape (see docs/CLI.md).
    pub schema_version: u32,
    /// Pipelines, in the order of their registries' names.
    pub pipelines: Vec<PipelineView>,
    /// Registries that could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// A registry that could not be read.
#[derive(Serialize, Debug)]
pub struct Unreadable {
    /// Always `"pipeline"`.
    pub kind: &'static str,
    /// The pipeline's name.
    pub name: String,
    /// Why it could not be read.
    pub error: String,
}

/// One pipeline.
#[derive(Serialize, Debug)]
pub struct PipelineView {
    /// The pipeline's name.
    pub name: String,
    /// starting, running, stopping, finished, failed, stopped, or corrupt.
    pub state: &'static str,
    /// The runner's process id.
    pub runner_pid: u32,
    /// Whether the runner is alive.
    pub runner_alive: bool,
    /// Seconds since the registry was created.
    pub uptime_s: f64,
    /// Seconds since the tasks were released, if they were.
    pub running_s: Option<f64>,
    /// Its streams, in declaration order.
    pub streams: Vec<StreamView>,
    /// Its tasks, in declaration order.
    pub tasks: Vec<TaskView>,
}

/// One stream of a pipeline.
#[derive(Serialize, Debug)]
pub struct StreamView {
    /// Its name in the pipeline.
    pub name: String,
    /// Its segment name (`PIPELINE.NAME`).
    pub segment: String,
    /// The stream could not be opened: the fields below are absent.
    pub missing: bool,
    #[serde(flatten)]
    pub live: Option<StreamFigures>,
}

/// The counters and rates of a stream that could be opened.
#[derive(Serialize, Debug)]
pub struct StreamFigures {
    /// Slots in the ring.
    pub capacity: u32,
    /// Share of the ring in use, 0 to 1.
    pub fill: f64,
    /// Frames written so far.
    pub frames: u64,
    /// Bytes written so far.
    pub bytes: u64,
    /// Rates since the previous view; null in the first.
    pub frames_per_s: Option<f64>,
    /// Megabytes (10^6 bytes) written per second since the previous view.
    pub mb_per_s: Option<f64>,
    /// Share of the time since the previous view the writer waited for space, 0 to 100.
    pub writer_wait_percent: Option<f64>,
    /// The stream's policy when full: block, fail, drop_newest or drop_oldest.
    pub backpressure: &'static str,
    /// Frames dropped by a drop_newest policy.
    pub frames_dropped: u64,
    /// Frames skipped because a writer died holding them (or aborted them).
    pub frames_skipped: u64,
    /// Frames handed out again because a group member died holding them.
    pub frames_redelivered: u64,
    /// Most writers attached at once.
    pub max_writers: u32,
    /// The attached writers of a multi-writer stream.
    pub writers: Vec<WriterView>,
    /// Frames lossy readers missed, in total.
    pub frames_missed: u64,
    /// none, active, closed or dead.
    pub writer: &'static str,
    /// The tasks declared to write the stream.
    pub writer_tasks: Vec<String>,
    /// The attached readers.
    pub readers: Vec<ReaderView>,
    /// The reader groups.
    pub groups: Vec<GroupView>,
}

/// An attached writer of a multi-writer stream.
#[derive(Serialize, Debug)]
pub struct WriterView {
    /// The task whose process it is, if any.
    pub task: Option<String>,
    /// Its process id.
    pub pid: u32,
    /// Whether its process is alive.
    pub alive: bool,
    /// Frames it wrote.
    pub frames_written: u64,
}

/// An attached reader.
#[derive(Serialize, Debug)]
pub struct ReaderView {
    /// The task whose process it is, if any.
    pub task: Option<String>,
    /// Its process id.
    pub pid: u32,
    /// Whether its process is alive.
    pub alive: bool,
    /// A lossy reader never holds the writer back, and misses frames instead.
    pub lossy: bool,
    /// The reader group it is a member of.
    pub group: Option<String>,
    /// Frames written that it has not read yet.
    pub lag: u64,
    /// Frames it read.
    pub frames_read: u64,
    /// Frames it missed (lossy readers only).
    pub missed: u64,
}

/// One task of a pipeline.
#[derive(Serialize, Debug)]
pub struct TaskView {
    /// The task's name.
    pub name: String,
    /// A task state (starting, joined, running, exited...) or corrupt.
    pub state: &'static str,
    /// Its process id, once started.
    pub pid: Option<u32>,
    /// CPU use since the previous view, in % of one CPU; null in the first.
    pub cpu_percent: Option<f64>,
    /// Resident memory of its process.
    pub rss_bytes: Option<u64>,
    /// Its exit status, once exited normally.
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// The command it runs.
    pub command: String,
}

/// The view of `current`, with rates measured since `previous`.
pub fn build(previous: &Sample, current: &Sample) -> View {
    let dt = current.at.duration_since(previous.at).as_secs_f64();
    let rate = |now: u64, before: Option<u64>| -> Option<f64> {
        before
            .filter(|_| dt > 0.0)
            .map(|b| now.saturating_sub(b) as f64 / dt)
    };
    let ticks = usage::ticks_per_second();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let pipelines = current
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
                    .position(|s| {
                        s.as_ref()
                            .and_then(|s| s.joined)
                            .is_some_and(|j| j.pid == pid)
                    })
                    .map(|i| info.tasks[i].name.clone())
            };
            let streams = info
                .streams
                .iter()
                .zip(&p.streams)
                .enumerate()
                .map(|(i, (entry, stats))| {
                    let old = before
                        .and_then(|b| b.streams.get(i))
                        .and_then(Option::as_ref);
                    let live = stats.as_ref().map(|stats| StreamFigures {
                        capacity: stats.capacity,
                        fill: stats.fill(),
                        frames: stats.frames_written,
                        bytes: stats.bytes_written,
                        frames_per_s: rate(stats.frames_written, old.map(|o| o.frames_written)),
                        mb_per_s: rate(stats.bytes_written, old.map(|o| o.bytes_written))
                            .map(|b| b / 1e6),
                        writer_wait_percent: rate(
                            stats.writer_wait_ns,
                            old.map(|o| o.writer_wait_ns),
                        )
                        .map(|ns| (ns / 1e9 * 100.0).min(100.0)),
                        backpressure: stats.backpressure.name(),
                        frames_dropped: stats.frames_dropped,
                        frames_skipped: stats.frames_skipped,
                        frames_redelivered: stats.frames_redelivered(),
                        max_writers: stats.max_writers,
                        writers: stats
                            .writers
                            .iter()
                            .map(|w| WriterView {
                                task: task_of_pid(w.pid),
                                pid: w.pid,
                                alive: w.alive,
                                frames_written: w.frames_written,
                            })
                            .collect(),
                        frames_missed: stats.readers.iter().map(|r| r.missed).sum(),
                        writer: writer_state(stats.writer_state),
                        writer_tasks: entry
                            .writer_tasks
                            .iter()
                            .map(|&t| info.tasks[t].name.clone())
                            .collect(),
                        readers: stats
                            .readers
                            .iter()
                            .map(|r| ReaderView {
                                task: task_of_pid(r.pid),
                                pid: r.pid,
                                alive: r.alive,
                                lossy: r.lossy,
                                group: r.group.clone(),
                                lag: r.lag,
                                frames_read: r.frames_read,
                                missed: r.missed,
                            })
                            .collect(),
                        groups: stats.groups.iter().map(GroupView::from).collect(),
                    });
                    StreamView {
                        name: entry.name.clone(),
                        segment: entry.segment.clone(),
                        missing: live.is_none(),
                        live,
                    }
                })
                .collect();
            let tasks = info
                .tasks
                .iter()
                .enumerate()
                .map(|(i, task)| {
                    let status = statuses[i].as_ref();
                    let (cpu, rss) = p.usage[i];
                    let old_cpu = before.and_then(|b| b.usage.get(i)).and_then(|u| u.0);
                    let exit = status.and_then(|s| s.exit);
                    TaskView {
                        name: task.name.clone(),
                        state: match (status.map(|s| s.state), state) {
                            (Some(TaskState::Joined), Some(PipelineState::Running)) => "running",
                            (Some(s), _) => s.name(),
                            (None, _) => "corrupt",
                        },
                        pid: status.and_then(|s| s.pid()),
                        cpu_percent: cpu
                            .and_then(|now| rate(now, old_cpu))
                            .map(|t| t / ticks * 100.0),
                        rss_bytes: rss,
                        exit_code: match exit {
                            Some(TaskExit::Code(c)) => Some(c),
                            _ => None,
                        },
                        signal: match exit {
                            Some(TaskExit::Signal(s)) => Some(s),
                            _ => None,
                        },
                        command: task.command.clone(),
                    }
                })
                .collect();
            let (started, _) = p.registry.run_times();
            PipelineView {
                name: info.name.clone(),
                state: state.map_or("corrupt", |s| s.name()),
                runner_pid: info.runner.pid,
                runner_alive: p.registry.runner_alive(),
                uptime_s: now_ns.saturating_sub(info.created_unix_ns) as f64 / 1e9,
                running_s: (started != 0).then(|| now_ns.saturating_sub(started) as f64 / 1e9),
                streams,
                tasks,
            }
        })
        .collect();
    View {
        schema_version: SCHEMA_VERSION,
        pipelines,
        unreadable: current
            .unreadable
            .iter()
            .map(|(name, error)| Unreadable {
                kind: "pipeline",
                name: name.clone(),
                error: error.clone(),
            })
            .collect(),
    }
}

/// What a line of the text view is, for the terminal to style it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A pipeline's title line.
    Title,
    /// The header row of a table.
    Header,
    /// Anything else.
    Plain,
}

/// The view as lines of text, each with its kind.
pub fn lines(view: &View) -> Vec<(LineKind, String)> {
    let mut out = Vec::new();
    if view.pipelines.is_empty() {
        out.push((LineKind::Plain, "no pipeline is running".to_string()));
    }
    let number = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    let table = |out: &mut Vec<(LineKind, String)>, rows: Vec<Vec<String>>| {
        for (i, line) in display::table(&rows).lines().enumerate() {
            let kind = if i == 0 {
                LineKind::Header
            } else {
                LineKind::Plain
            };
            out.push((kind, line.to_string()));
        }
    };
    for p in &view.pipelines {
        out.push((
            LineKind::Title,
            format!(
                "pipeline {}  {}  runner {} ({})  up {}",
                p.name,
                p.state,
                p.runner_pid,
                if p.runner_alive { "alive" } else { "dead" },
                display::seconds(Duration::from_secs_f64(p.uptime_s)),
            ),
        ));
        let mut rows = vec![header(&[
            "  STREAM",
            "FILL",
            "FRAMES/S",
            "MB/S",
            "WRITER WAIT",
            "POLICY",
            "DROPPED",
            "WRITER",
            "READERS (LAG)",
        ])];
        for s in &p.streams {
            let Some(f) = &s.live else {
                rows.push(vec![format!("  {}", s.name), "(gone)".into()]);
                continue;
            };
            let readers: Vec<String> = f.readers.iter().map(reader_cell).collect();
            rows.push(vec![
                format!("  {}", s.name),
                format!("{:.0}%", f.fill * 100.0),
                number(f.frames_per_s, &display::si),
                number(f.mb_per_s, &|m| format!("{m:.1}")),
                number(f.writer_wait_percent, &|w| format!("{w:.0}%")),
                f.backpressure.to_string(),
                if f.frames_skipped > 0 {
                    format!("{} (skipped {})", f.frames_dropped, f.frames_skipped)
                } else {
                    f.frames_dropped.to_string()
                },
                writer_cell(f),
                readers.join(" "),
            ]);
        }
        table(&mut out, rows);
        let mut groups = vec![header(&[
            "  GROUP",
            "STREAM",
            "MEMBERS",
            "NEXT",
            "LAG",
            "REDELIVERED",
        ])];
        for s in &p.streams {
            for g in s.live.iter().flat_map(|f| &f.groups) {
                groups.push(vec![
                    format!("  {}", g.name),
                    s.name.clone(),
                    g.members_cell(),
                    g.next.to_string(),
                    g.lag.to_string(),
                    g.redelivered.to_string(),
                ]);
            }
        }
        if groups.len() > 1 {
            table(&mut out, groups);
        }
        let mut rows = vec![header(&[
            "  TASK", "STATE", "PID", "CPU%", "RSS", "COMMAND",
        ])];
        for t in &p.tasks {
            let state = match (t.exit_code, t.signal) {
                (Some(c), _) => format!("exited {c}"),
                (_, Some(s)) => format!("killed by signal {s}"),
                _ => t.state.to_string(),
            };
            rows.push(vec![
                format!("  {}", t.name),
                state,
                t.pid.map_or("-".into(), |p| p.to_string()),
                number(t.cpu_percent, &|c| format!("{c:.1}")),
                t.rss_bytes.map_or("-".into(), display::bytes),
                t.command.clone(),
            ]);
        }
        table(&mut out, rows);
        out.push((LineKind::Plain, String::new()));
    }
    for u in &view.unreadable {
        out.push((
            LineKind::Plain,
            format!("cannot read pipeline {}: {}", u.name, u.error),
        ));
    }
    out
}

/// The view as text, one line per row.
pub fn text(view: &View) -> String {
    lines(view)
        .into_iter()
        .map(|(_, line)| line + "\n")
        .collect()
}

fn header(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// The WRITER cell of a stream: its writer task and state; for a multi-writer stream, every
/// writing task (marked when its writer is not attached, or attached and dead), then any other
/// attached writer by pid, and how many of max_writers are attached.
fn writer_cell(s: &StreamFigures) -> String {
    if s.max_writers <= 1 {
        let task = s.writer_tasks.first().map_or("-", String::as_str);
        return format!("{task} ({})", s.writer);
    }
    let mut cells: Vec<String> = s
        .writer_tasks
        .iter()
        .map(
            |task| match s.writers.iter().find(|w| w.task.as_ref() == Some(task)) {
                Some(w) if !w.alive => format!("{task} (dead)"),
                Some(_) => task.clone(),
                None => format!("{task} (not attached)"),
            },
        )
        .collect();
    for w in &s.writers {
        if w.task.as_ref().is_some_and(|t| s.writer_tasks.contains(t)) {
            continue;
        }
        let who = w.task.clone().unwrap_or_else(|| format!("pid {}", w.pid));
        cells.push(if w.alive {
            who
        } else {
            format!("{who} (dead)")
        });
    }
    format!(
        "{} ({}, {}/{} writers)",
        if cells.is_empty() {
            "-".to_string()
        } else {
            cells.join(" ")
        },
        s.writer,
        s.writers.len(),
        s.max_writers
    )
}

/// One reader in the READERS cell: its task (or pid), its group after an `@`, its lag, and the
/// frames it missed if any.
fn reader_cell(r: &ReaderView) -> String {
    let mut who = r.task.clone().unwrap_or_else(|| format!("pid {}", r.pid));
    if let Some(group) = &r.group {
        who = format!("{who}@{group}");
    }
    if r.missed > 0 {
        format!("{who}:{} (missed {})", r.lag, r.missed)
    } else {
        format!("{who}:{}", r.lag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(writer: &'static str, tasks: &[&str], max_writers: u32) -> StreamFigures {
        StreamFigures {
            capacity: 8,
            fill: 0.0,
            frames: 0,
            bytes: 0,
            frames_per_s: None,
            mb_per_s: None,
            writer_wait_percent: None,
            backpressure: "block",
            frames_dropped: 0,
            frames_skipped: 0,
            frames_redelivered: 0,
            max_writers,
            writers: Vec::new(),
            frames_missed: 0,
            writer,
            writer_tasks: tasks.iter().map(|t| t.to_string()).collect(),
            readers: Vec::new(),
            groups: Vec::new(),
        }
    }

    fn writer(task: Option<&str>, pid: u32, alive: bool) -> WriterView {
        WriterView {
            task: task.map(str::to_owned),
            pid,
            alive,
            frames_written: 0,
        }
    }

    fn reader(
        task: Option<&str>,
        pid: u32,
        group: Option<&str>,
        lag: u64,
        missed: u64,
    ) -> ReaderView {
        ReaderView {
            task: task.map(str::to_owned),
            pid,
            alive: true,
            lossy: false,
            group: group.map(str::to_owned),
            lag,
            frames_read: 0,
            missed,
        }
    }

    #[test]
    fn a_multi_writer_stream_shows_every_writer_task_and_other_writers_by_pid() {
        let mut s = stream("active", &["source-a", "source-b", "source-c"], 4);
        s.writers = vec![
            writer(Some("source-a"), 11, true),
            writer(None, 12, false),
            writer(Some("source-c"), 13, false),
        ];
        assert_eq!(
            writer_cell(&s),
            "source-a source-b (not attached) source-c (dead) pid 12 (dead) (active, 3/4 writers)"
        );
    }

    #[test]
    fn a_single_writer_stream_shows_its_writer_task_and_state() {
        assert_eq!(
            writer_cell(&stream("closed", &["source"], 1)),
            "source (closed)"
        );
        assert_eq!(writer_cell(&stream("none", &[], 1)), "- (none)");
    }

    #[test]
    fn a_group_member_shows_its_group_after_its_task_and_a_plain_reader_does_not() {
        assert_eq!(
            reader_cell(&reader(Some("w0"), 5, Some("fir"), 3, 0)),
            "w0@fir:3"
        );
        assert_eq!(
            reader_cell(&reader(None, 6, None, 0, 2)),
            "pid 6:0 (missed 2)"
        );
    }

    #[test]
    fn a_view_in_json_carries_its_schema_version_and_leaves_out_a_missing_streams_figures() {
        let view = View {
            schema_version: SCHEMA_VERSION,
            pipelines: Vec::new(),
            unreadable: Vec::new(),
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["schema_version"], 1);
        let gone = StreamView {
            name: "s".into(),
            segment: "p.s".into(),
            missing: true,
            live: None,
        };
        let json = serde_json::to_value(&gone).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "s", "segment": "p.s", "missing": true})
        );
    }
}
