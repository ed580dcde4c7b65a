//! Whether a task that stopped at the end of one input may end normally: only when every one of
//! its inputs has ended too.
//!
//! A task that reads several streams and stops when one of them ends (PYTHUSA's merge: `a.read()`
//! then `b.read()` in one loop, until either says end of stream) would otherwise exit 0 and leave
//! the other input's frames unread, and the run would "finish" having delivered part of them.
//! [`Task::check_inputs_ended`] ([`check_inputs_ended`]; `shmline_task_check_inputs()` in C,
//! which a Python function task's worker calls when `EndOfStream` escapes the function) tells
//! such a task it must fail, naming each input that still had frames and how many, and leaves
//! that sentence in the pipeline's registry for the run's report.
//!
//! What counts, per input:
//! - a plain reader has ended when its stream's writer has ended (closed, or died) and it has read
//!   every frame published (`head - position` is 0). Frames published and unread are reported at
//!   once; an input with nothing unread whose writer has not ended yet is waited for up to the
//!   caller's patience (its writer may be closing right now), and reported as "had not ended"
//!   if it neither ends nor publishes meanwhile;
//! - a lossy reader (every reader of a `drop_oldest` stream) counts as ended: it never promised
//!   every frame, and a "latest value" input often outlives the data it annotates;
//! - a member of a reader group counts as ended while other members are attached (they read the
//!   rest of the group's frames); the last member is judged by the frames the group has not
//!   handed out yet, as a plain reader by its own.
//!
//! [`Task::check_inputs_ended`]: super::Task::check_inputs_ended

use super::registry::Registry;
use crate::error::{Error, Result};
use crate::ring::{Reader, WriterState};
use crate::wait::Deadline;
use std::time::Duration;

/// How long [`super::Task::check_inputs_ended`] waits for an input that has nothing unread but
/// whose writer has not ended yet (time for an upstream task that just wrote its last frame to
/// close its stream, or for the runner to close it after that task exited).
pub const END_PATIENCE: Duration = Duration::from_secs(5);

/// How often an input whose writer has not ended is looked at again while waiting. Polled, not
/// slept on a futex: it runs once, at a task's end, and waits for either of two things (a frame
/// or the end) on several streams at once.
const RECHECK: Duration = Duration::from_millis(2);

/// Where one input of a task stands at the task's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Every frame read and the writer ended (or the input cannot lose frames by being left).
    Ended,
    /// Frames published and not read yet (by this reader, or by its group).
    Unread(u64),
    /// Nothing unread, but the writer has not ended: more frames may come.
    NotEnded,
}

/// Where `reader` stands: see the module documentation.
fn standing(reader: &Reader) -> Standing {
    if reader.is_lossy() {
        return Standing::Ended;
    }
    let stats = reader.stream().stats();
    let ended = matches!(stats.writer_state, WriterState::Closed | WriterState::Dead);
    let unread = match reader.group() {
        Some(name) => match stats.groups.iter().find(|g| g.name == name) {
            Some(g) if g.members > 1 => return Standing::Ended,
            Some(g) => g.lag,
            None => 0,
        },
        // `head` counts every sequence number published, frames and numbers a multi-writer stream
        // skipped alike (the reader passes both).
        None => (stats.frames_written + stats.frames_skipped).saturating_sub(reader.position()),
    };
    match (unread, ended) {
        (0, true) => Standing::Ended,
        (0, false) => Standing::NotEnded,
        (n, _) => Standing::Unread(n),
    }
}

/// [`check_inputs_ended`] without the note in the registry.
fn check(task: &str, inputs: &[(&str, &Reader)], deadline: Deadline) -> Result<()> {
    loop {
        let standings: Vec<Standing> = inputs.iter().map(|(_, r)| standing(r)).collect();
        let unread = standings.iter().any(|s| matches!(s, Standing::Unread(_)));
        let waiting = standings.contains(&Standing::NotEnded);
        if !unread && !waiting {
            return Ok(());
        }
        // Frames left unread are final: no need to wait for the others.
        if unread || deadline.remaining(RECHECK).is_none() {
            return Err(Error::WrongState(message(task, inputs, &standings)));
        }
        std::thread::sleep(deadline.remaining(RECHECK).unwrap_or(RECHECK));
    }
}

/// The sentence that says which inputs ended and which did not.
fn message(task: &str, inputs: &[(&str, &Reader)], standings: &[Standing]) -> String {
    let quoted = |names: Vec<&str>| {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ended: Vec<&str> = inputs
        .iter()
        .zip(standings)
        .filter(|(_, s)| **s == Standing::Ended)
        .map(|((p, _), _)| *p)
        .collect();
    let open: Vec<String> = inputs
        .iter()
        .zip(standings)
        .filter_map(|((p, _), s)| match s {
            Standing::Ended => None,
            Standing::Unread(1) => Some(format!("{p:?} still had 1 frame unread")),
            Standing::Unread(n) => Some(format!("{p:?} still had {n} frames unread")),
            Standing::NotEnded => Some(format!("{p:?} had not ended")),
        })
        .collect();
    let on = if ended.is_empty() {
        "an end of stream".to_string()
    } else {
        format!("end of stream of {}", quoted(ended))
    };
    format!(
        "task {task:?} ended on {on} while {}: a task ends normally on end of stream only once \
         every input has ended (read each input to its end, or return instead)",
        join_and(&open)
    )
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// For task `task` of pipeline `pipeline`, which stopped on an end of stream: `Ok` if every input
/// in `inputs` (its parameter name and reader, still open) has ended, by the rules of this
/// module; otherwise [`Error::WrongState`] whose message names each input that still had frames
/// and how many (`task "merge" ended on end of stream of "a" while "b" still had 190 frames
/// unread`), and the same sentence is left in the task's record of the pipeline's registry, so
/// that the run's report gives it with the task's exit status. The task should then exit with a
/// non-zero status (it failed).
///
/// Waits up to `patience` for inputs that have nothing unread but whose writer has not ended
/// (zero: not at all); returns at once when an input has frames unread. Leaving the note is best
/// effort: a registry that cannot be opened only loses it.
///
/// [`super::Task::check_inputs_ended`] is this for a task that kept its `Task`.
pub fn check_inputs_ended(
    pipeline: &str,
    task: &str,
    inputs: &[(&str, &Reader)],
    patience: Duration,
) -> Result<()> {
    check_inputs_ended_until(pipeline, task, inputs, Deadline::after(Some(patience)))
}

/// [`check_inputs_ended`] waiting as `deadline` says (the C ABI's timeouts).
pub(crate) fn check_inputs_ended_until(
    pipeline: &str,
    task: &str,
    inputs: &[(&str, &Reader)],
    deadline: Deadline,
) -> Result<()> {
    let result = check(task, inputs, deadline);
    if let Err(Error::WrongState(message)) = &result {
        if let Ok(registry) = Registry::open(pipeline) {
            if let Some(index) = registry.task_index(task) {
                registry.set_task_note(index, message);
            }
        }
    }
    result
}
