//! What the tasks of `shmline run` print: read from pipes and written line by line, each line
//! prefixed with its task's name, above the live progress line (which is cleared for the write
//! and drawn again after it, so the two never share a line).
//!
//! The runner gives a task's output to a file when the declaration names one (`stdout = "..."`).
//! A task without one is given the path `/dev/fd/N` of the writing end of a pipe this process
//! made: the runner opens that path as it would a log file, which on Linux opens the pipe itself,
//! so the task writes into the pipe and a thread here reads it. Our own copies of the writing
//! ends stay open until the run is over (the runner opens them from its own thread, while tasks
//! start), and are close-on-exec, so no task holds another's pipe open.

use indicatif::ProgressBar;
use shmline::pipeline::Pipeline;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long, after the last task ended, its output may take to drain (a task's own child that
/// still holds the pipe open is not waited for beyond this).
const DRAIN: Duration = Duration::from_secs(2);

/// The pipes of the tasks' output and the threads that print it.
pub struct TaskOutput {
    /// Our copies of the writing ends, closed by [`TaskOutput::finish`].
    write_ends: Vec<File>,
    /// Told when a reading thread is done.
    done: mpsc::Receiver<()>,
    threads: Vec<JoinHandle<()>>,
}

/// Which of our streams a pipe's lines go to.
#[derive(Clone, Copy)]
enum Sink {
    Stdout,
    Stderr,
}

impl TaskOutput {
    /// Gives every task of `pipeline` that has no file for its standard output or error a pipe
    /// instead, whose lines are printed to ours prefixed with the task's name, through `bar`.
    pub fn capture(pipeline: &mut Pipeline, bar: &ProgressBar) -> std::io::Result<TaskOutput> {
        let width = pipeline
            .tasks
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(0);
        let (tx, done) = mpsc::channel();
        let mut output = TaskOutput {
            write_ends: Vec::new(),
            done,
            threads: Vec::new(),
        };
        for task in &mut pipeline.tasks {
            let prefix = format!("{:<width$} | ", task.name);
            for (slot, sink) in [
                (&mut task.stdout, Sink::Stdout),
                (&mut task.stderr, Sink::Stderr),
            ] {
                if slot.is_some() {
                    continue;
                }
                let (read_end, write_end) = pipe()?;
                *slot = Some(PathBuf::from(format!("/dev/fd/{}", write_end.as_raw_fd())));
                output.write_ends.push(write_end);
                let (bar, prefix, tx) = (bar.clone(), prefix.clone(), tx.clone());
                let thread = std::thread::Builder::new()
                    .name(format!("output of {}", task.name))
                    .spawn(move || {
                        print_lines(read_end, sink, &prefix, &bar);
                        let _ = tx.send(());
                    })?;
                output.threads.push(thread);
            }
        }
        Ok(output)
    }

    /// Once every task has ended: closes our writing ends and waits (a little) for the last
    /// lines to be printed.
    pub fn finish(self) {
        drop(self.write_ends);
        let deadline = Instant::now() + DRAIN;
        for _ in 0..self.threads.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                // Something a task started still holds its pipe: leave its thread behind.
                return;
            }
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// A pipe whose two ends are closed on exec.
fn pipe() -> std::io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just made both descriptors; each File takes sole ownership of one.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Prints every line read from `pipe` to `sink`, after `prefix`, with the progress line out of
/// the way. A line that cannot be written (our output closed) is dropped: the run goes on.
fn print_lines(pipe: File, sink: Sink, prefix: &str, bar: &ProgressBar) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        bar.suspend(|| {
            let _ = match sink {
                Sink::Stdout => write_line(&mut std::io::stdout().lock(), prefix, &line),
                Sink::Stderr => write_line(&mut std::io::stderr().lock(), prefix, &line),
            };
        });
    }
}

fn write_line(out: &mut impl Write, prefix: &str, line: &[u8]) -> std::io::Result<()> {
    out.write_all(prefix.as_bytes())?;
    out.write_all(line)?;
    out.flush()
}
