//! Process identity that survives pid reuse: a pid plus the process start time.
//!
//! The start time is field 22 of `/proc/<pid>/stat` (clock ticks since boot). A process is alive
//! when a process with that pid exists *and* started at the recorded time, so a recycled pid is
//! never mistaken for the process that died.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A process as recorded in shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    /// Operating-system process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_time: u64,
}

/// Cache of (pid << 64 | start) for the current process; refreshed after a fork changes the pid.
static SELF_CACHE: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

impl ProcessId {
    /// The calling process.
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        // Relaxed: the cache only saves a /proc read; a stale or torn pair is detected by the pid
        // comparison and simply recomputed.
        if SELF_CACHE[0].load(Ordering::Relaxed) == pid as u64 {
            let start_time = SELF_CACHE[1].load(Ordering::Relaxed);
            if start_time != 0 && SELF_CACHE[0].load(Ordering::Relaxed) == pid as u64 {
                return ProcessId { pid, start_time };
            }
        }
        let start_time = start_time_of(pid).unwrap_or(0);
        SELF_CACHE[1].store(start_time, Ordering::Relaxed);
        SELF_CACHE[0].store(pid as u64, Ordering::Relaxed);
        ProcessId { pid, start_time }
    }

    /// Whether this process is still running (the same process, not a reuse of its pid).
    ///
    /// A pid of 0 is never alive. A zombie (exited, not yet reaped by its parent) still counts as
    /// alive: its parent may be deciding how the exit is reported (the pipeline runner closes the
    /// streams of a task that exited 0 before reaping it, so its readers see end of stream rather
    /// than a dead writer). Once reaped, or if its parent is gone (init reaps at once), it is dead.
    pub fn is_alive(&self) -> bool {
        if self.pid == 0 || self.pid > i32::MAX as u32 {
            return false;
        }
        match read_stat(self.pid) {
            Some((state, start)) => state != 'X' && start == self.start_time,
            None => false,
        }
    }
}

/// Whether a process with this pid exists (a zombie counts, as in [`ProcessId::is_alive`]), for a
/// process known only by its pid: one that died before recording its start time, or is recording
/// it now. A recycled pid reads as alive.
pub fn pid_alive(pid: u32) -> bool {
    pid != 0 && pid <= i32::MAX as u32 && read_stat(pid).is_some_and(|(state, _)| state != 'X')
}

/// How long a waiter is held back at one position before it checks that the peers holding it
/// there are alive, and the least time between two such checks of one handle.
pub(crate) const PATIENCE: Duration = Duration::from_millis(50);

/// When a waiter held back by peers (readers that release nothing, writers that publish nothing)
/// checks their liveness: once it has been held back at the same position for [`PATIENCE`],
/// however it waits (one long call, many short ones, `try_` calls that never wait), and then at
/// most once per [`PATIENCE`]. Kept in the handle, so the time adds up across calls: a dead peer
/// is found within about `2 * PATIENCE` of holding the waiter back, while a waiter that keeps
/// moving never reads `/proc`.
#[derive(Debug, Default)]
pub(crate) struct Patience {
    /// The position the waiter was last held back at, and since when.
    held: Option<(u64, Instant)>,
    /// When the last check was made.
    checked: Option<Instant>,
}

impl Patience {
    /// Records that the waiter is held back at `pos` now; true (and the check recorded) if the
    /// peers' liveness should be checked now.
    pub(crate) fn due(&mut self, pos: u64) -> bool {
        let now = Instant::now();
        let since = match self.held {
            Some((held, since)) if held == pos => since,
            _ => {
                self.held = Some((pos, now));
                now
            }
        };
        let rested = self
            .checked
            .is_none_or(|at| now.duration_since(at) >= PATIENCE);
        if now.duration_since(since) < PATIENCE || !rested {
            return false;
        }
        self.checked = Some(now);
        true
    }
}

/// Start time of `pid` in clock ticks since boot, if the process exists.
pub fn start_time_of(pid: u32) -> Option<u64> {
    read_stat(pid).map(|(_, start)| start)
}

/// Reads (state, starttime) from `/proc/<pid>/stat`.
fn read_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces or ')': split after the
    // last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); starttime is field 22, i.e. 19 fields after state.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patience_is_due_after_being_held_at_one_position_and_then_at_most_once_per_interval() {
        let mut patience = Patience::default();
        assert!(!patience.due(7), "held back only just now");
        // Pretend the waiter has been held at 7 for a whole interval.
        patience.held = Some((7, Instant::now() - PATIENCE));
        assert!(patience.due(7));
        assert!(!patience.due(7), "checked just now");
        patience.checked = Some(Instant::now() - PATIENCE);
        assert!(patience.due(7), "another interval at the same position");
        assert!(!patience.due(8), "a new position starts a new wait");
    }

    #[test]
    fn the_current_process_is_alive_and_has_a_start_time() {
        let me = ProcessId::current();
        assert!(me.start_time > 0);
        assert!(me.is_alive());
    }

    #[test]
    fn a_reused_pid_with_another_start_time_is_dead() {
        let me = ProcessId::current();
        let impostor = ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert!(!impostor.is_alive());
        assert!(!ProcessId {
            pid: 0,
            start_time: 0
        }
        .is_alive());
    }

    #[test]
    fn an_exited_child_is_alive_until_reaped_then_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // The child cannot be reaped before we wait for it, so its /proc entry exists.
        let start_time = start_time_of(pid).expect("an unreaped child has a /proc entry");
        // SAFETY: an all-zero siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child to exit without reaping it (WNOWAIT).
        let rc =
            unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        assert_eq!(rc, 0);
        assert!(
            ProcessId { pid, start_time }.is_alive(),
            "a zombie is alive"
        );
        child.wait().unwrap();
        assert!(
            !ProcessId { pid, start_time }.is_alive(),
            "a reaped child is dead"
        );
    }
}
