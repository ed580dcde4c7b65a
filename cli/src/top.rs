//! `shmline top`: a live view of running pipelines.
//!
//! `sample` takes one look at the pipelines (the registry, each stream's counters, each task's
//! /proc figures), `view` turns two looks into what is shown (rates are measured between
//! them), and the view is printed (`--once`, `--json`, or standard output not a terminal) or
//! drawn full-screen by `tui`.

mod sample;
mod tui;
mod view;

use crate::display;
use crate::output::JsonFormat;
use sample::Sample;
use std::process::ExitCode;
use std::time::Duration;
use view::View;

/// Shortest --interval: faster views cost CPU and show nothing a person can read.
const MIN_INTERVAL_S: f64 = 0.05;
/// Longest --interval: an hour between views is no longer a live view.
const MAX_INTERVAL_S: f64 = 3600.0;

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
/// On a terminal the view fills the screen and is redrawn every --interval seconds and whenever
/// the terminal is resized; rows longer than the screen is wide are cut, ↑/↓ (or j/k), PgUp/PgDn,
/// Home/End scroll, and q, Esc or Ctrl-C quit. When the named pipeline ends, its final state
/// stays on screen until q. Otherwise (--once, --json, or output to a file or pipe) each view is
/// printed in turn. Rates are measured between two looks, so --once waits one interval before it
/// prints.
#[derive(clap::Args)]
pub struct TopArgs {
    /// Show only this pipeline (default: every pipeline on this machine).
    pub pipeline: Option<String>,
    /// Print one view and exit.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub format: JsonFormat,
    /// Seconds between views (and over which rates are measured), from 0.05 to 3600.
    #[arg(
        long,
        default_value = "1",
        value_name = "SECONDS",
        value_parser = parse_interval,
        allow_hyphen_values = true
    )]
    pub interval: Duration,
}

/// Reads --interval: a finite number of seconds from [`MIN_INTERVAL_S`] to [`MAX_INTERVAL_S`].
fn parse_interval(text: &str) -> Result<Duration, String> {
    let range = format!("give a number of seconds from {MIN_INTERVAL_S} to {MAX_INTERVAL_S}");
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number: {range}, e.g. 0.5"))?;
    if !seconds.is_finite() || !(MIN_INTERVAL_S..=MAX_INTERVAL_S).contains(&seconds) {
        return Err(format!("{text} is out of range: {range}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Runs `shmline top`.
pub fn run(args: &TopArgs) -> ExitCode {
    let watch = match Watch::start(args.pipeline.clone()) {
        Ok(watch) => watch,
        Err(e) => {
            eprintln!("shmline top: {e}");
            return ExitCode::from(1);
        }
    };
    if args.once || args.format.json || !display::stdout_is_terminal() {
        return print_views(args, watch);
    }
    match tui::run(args, watch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmline top: the terminal failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Prints a view every interval (one with --once) until the named pipeline ends.
fn print_views(args: &TopArgs, mut watch: Watch) -> ExitCode {
    loop {
        std::thread::sleep(args.interval);
        let step = match watch.next() {
            Ok(step) => step,
            Err(e) => {
                eprintln!("shmline top: {e}");
                return ExitCode::from(1);
            }
        };
        if args.format.json {
            args.format.print(&step.view);
        } else {
            out!("{}", view::text(&step.view));
            if !args.once {
                outln!();
            }
        }
        if args.once {
            return ExitCode::SUCCESS;
        }
        if step.ended {
            let name = args.pipeline.as_deref().unwrap_or_default();
            eprintln!("shmline top: pipeline {name:?} has ended");
            return ExitCode::SUCCESS;
        }
    }
}

/// The looks taken so far at the pipelines watched.
struct Watch {
    /// The one pipeline watched, if named.
    only: Option<String>,
    previous: Sample,
}

/// What one more look shows.
struct Step {
    view: View,
    /// The named pipeline has ended: `view` is its final state, and there is nothing more to see.
    ended: bool,
}

impl Watch {
    /// Takes the first look; fails if the named pipeline does not exist.
    fn start(only: Option<String>) -> shmline::Result<Watch> {
        let first = Sample::take(only.as_deref())?;
        if let Some(name) = &only {
            if first.pipelines.is_empty() {
                return Err(shmline::Error::NotFound(format!(
                    "no pipeline named {name:?} runs here (`shmline ls` lists them)"
                )));
            }
        }
        Ok(Watch {
            only,
            previous: first,
        })
    }

    /// The view of the first look alone (no rates yet), to show something at once.
    fn first_view(&self) -> View {
        view::build(&self.previous, &self.previous)
    }

    /// Takes another look and returns what it shows. When the named pipeline is gone, the
    /// handles kept from the previous look (still mapped after the runner removed the segments)
    /// give its final state: states and exit codes of the tasks, last counters of the streams.
    fn next(&mut self) -> shmline::Result<Step> {
        let current = Sample::take(self.only.as_deref())?;
        let ended = self.only.is_some() && current.pipelines.is_empty();
        let current = if ended {
            self.previous.again()
        } else {
            current
        };
        let view = view::build(&self.previous, &current);
        self.previous = current;
        Ok(Step { view, ended })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_must_be_a_finite_number_of_seconds_within_bounds() {
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("3600"), Ok(Duration::from_secs(3600)));
        for bad in ["0", "-1", "NaN", "inf", "-inf", "1e9", "0.01", "soon", ""] {
            let error = parse_interval(bad).unwrap_err();
            assert!(error.contains("from 0.05 to 3600"), "{bad}: {error}");
        }
    }
}
