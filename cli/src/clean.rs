//! `shmline clean`: removes the segments that dead processes left behind.

use crate::output::{JsonFormat, SCHEMA_VERSION};
use serde::Serialize;
use shmline::__private::shm::{file_name, inspect, list, Segment, SegmentKind};
use shmline::pipeline::{Cleanup, Registry};
use shmline::Usage;
use shmline::{Error, Event, Stream};
use std::collections::HashSet;
use std::process::ExitCode;

/// Remove segments whose owner is dead; never one that a live process uses.
///
/// A pipeline is removed (registry, streams and events) when its runner is dead. A stream is
/// removed when its creator, its writer and all its readers are dead; an event when its creator
/// is dead. Only finished shmline segments are ever removed: anything else under a shmline name
/// (a FIFO, a symbolic link, an empty file, a file of foreign bytes, a segment still being made)
/// is reported as "not a shmline segment: left alone", and a segment that cannot be read
/// (another layout version, damaged, no permission) is left alone and reported too. These are
/// the rules of `Stream::remove_stale` and `Event::remove_stale` (see the `shmline::stale`
/// module).
#[derive(clap::Args)]
pub struct CleanArgs {
    /// Only look at segments whose name (pipeline, stream or event name) starts with PREFIX.
    pub prefix: Option<String>,
    /// Only say what would be removed.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// With --json: {"schema_version", "dry_run", "removed", "kept", "skipped"}, each a list of
    /// {"segment", "reason"}.
    #[command(flatten)]
    pub format: JsonFormat,
}

/// What `clean --json` prints.
#[derive(Serialize)]
struct CleanJson {
    schema_version: u32,
    dry_run: bool,
    removed: Vec<Judged>,
    kept: Vec<Judged>,
    skipped: Vec<Judged>,
}

/// A segment and why it was removed, kept or skipped.
#[derive(Serialize)]
struct Judged {
    segment: String,
    reason: String,
}

/// What happened to each segment looked at.
#[derive(Default)]
struct Report {
    removed: Vec<(String, String)>,
    kept: Vec<(String, String)>,
    skipped: Vec<(String, String)>,
}

pub fn run(args: &CleanArgs) -> ExitCode {
    let mut report = Report::default();
    if let Err(e) = clean(
        args.dry_run,
        args.prefix.as_deref().unwrap_or(""),
        &mut report,
    ) {
        eprintln!("shmline clean: {e}");
        return ExitCode::from(1);
    }
    if args.format.json {
        let pairs = |list: &[(String, String)]| {
            list.iter()
                .map(|(segment, reason)| Judged {
                    segment: segment.clone(),
                    reason: reason.clone(),
                })
                .collect()
        };
        args.format.print(&CleanJson {
            schema_version: SCHEMA_VERSION,
            dry_run: args.dry_run,
            removed: pairs(&report.removed),
            kept: pairs(&report.kept),
            skipped: pairs(&report.skipped),
        });
        return ExitCode::SUCCESS;
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (segment, why) in &report.removed {
        outln!("{verb} /dev/shm/{segment} ({why})");
    }
    for (segment, why) in &report.skipped {
        outln!("skipped /dev/shm/{segment}: {why}");
    }
    outln!(
        "{verb} {} segment{}; kept {} in use{}",
        report.removed.len(),
        if report.removed.len() == 1 { "" } else { "s" },
        report.kept.len(),
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!("; skipped {} unreadable", report.skipped.len())
        }
    );
    ExitCode::SUCCESS
}

fn clean(dry_run: bool, prefix: &str, report: &mut Report) -> shmline::Result<()> {
    // Segments already accounted for (a dry run does not remove them, so they are listed again).
    let mut seen: HashSet<String> = HashSet::new();
    let mut remove = |report: &mut Report, kind: SegmentKind, name: &str, why: String| {
        let file = file_name(kind, name);
        if !seen.insert(file.clone()) {
            return;
        }
        // A dead pipeline names its segments; whatever holds such a name now is removed only if
        // it is a finished shmline segment.
        match inspect(kind, name) {
            Ok(()) => {}
            Err(Error::NotFound(_)) => return,
            Err(e) => return report.skipped.push((file, unreadable(e))),
        }
        if dry_run || Segment::unlink(kind, name).is_ok() {
            report.removed.push((file, why));
        }
    };

    for name in list(SegmentKind::Pipeline)?
        .into_iter()
        .filter(|n| n.starts_with(prefix))
    {
        let file = file_name(SegmentKind::Pipeline, &name);
        // The registry's own open waits for a runner still making it; a file that is not a
        // finished registry is not judged at all.
        match inspect(SegmentKind::Pipeline, &name).and_then(|()| Registry::check_dead(&name)) {
            Ok(Cleanup::Alive(runner)) => report
                .kept
                .push((file, format!("runner pid {} is alive", runner.pid))),
            Ok(Cleanup::Dead(stale)) => {
                for (kind, segment) in stale {
                    let why = format!("left by the dead runner of pipeline {name:?}");
                    remove(report, kind, &segment, why);
                }
            }
            Err(Error::NotFound(_)) => {}
            Err(e) => report.skipped.push((file, unreadable(e))),
        }
    }

    for kind in [SegmentKind::Stream, SegmentKind::Event] {
        for name in list(kind)?.into_iter().filter(|n| n.starts_with(prefix)) {
            let usage = match kind {
                SegmentKind::Stream => Stream::usage(&name),
                _ => Event::usage(&name),
            };
            match usage {
                Ok(Usage::InUse { pid, role }) => report
                    .kept
                    .push((file_name(kind, &name), format!("{role} pid {pid} is alive"))),
                Ok(Usage::Stale(why)) => remove(report, kind, &name, why),
                Err(Error::NotFound(_)) => {}
                Err(e) => report.skipped.push((file_name(kind, &name), unreadable(e))),
            }
        }
    }
    Ok(())
}

/// Why a segment was left alone.
fn unreadable(error: Error) -> String {
    match error {
        Error::NotShmline(why) => format!("not a shmline segment: left alone ({why})"),
        e => format!("cannot be read: left alone ({e})"),
    }
}
