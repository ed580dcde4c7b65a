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
    /// The process recorded in a pair of shared-memory words, loaded with `order`: the one
    /// reader of every recorded identity (stream creator and writer, table lock holder, event
    /// creator, table entries). The two loads are not one atomic step; a torn pair names no
    /// live process and so only ever reads as dead, which nobody acts on without a
    /// compare-and-swap of the state that recorded it.
    #[inline]
    pub fn load(
        pid: &crate::sync::AtomicU32,
        start_time: &crate::sync::AtomicU64,
        order: crate::sync::Ordering,
    ) -> ProcessId {
        ProcessId {
            pid: pid.load(order),
            start_time: start_time.load(order),
        }
    }

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

    /// Whether this process still runs: [`ProcessId::is_alive`] without the zombie grace (an
    /// exited process counts as gone at once, reaped or not: the question of whether its segments
    /// may be removed).
    pub fn is_running(&self) -> bool {
        read_stat(self.pid).is_some_and(|(state, start)| start == self.start_time && runs(state))
    }

    /// Whether this process is still running (the same process, not a reuse of its pid).
    ///
    /// A pid of 0 is never alive. A zombie (exited, not yet reaped by its parent) counts as alive
    /// for `ZOMBIE_GRACE` (1 s) after this process first saw it exited: its parent may be deciding how
    /// the exit is reported (the pipeline runner closes the streams of a task that exited 0
    /// before reaping it, within milliseconds, so its readers see end of stream rather than a
    /// dead writer). After that it is dead, even if never reaped: a parent blocked writing to (or
    /// reading from) a child that died must not wait for ever because it has not reaped it yet.
    pub fn is_alive(&self) -> bool {
        read_stat(self.pid).is_some_and(|(state, start)| {
            start == self.start_time && state_alive(self.pid, state, start)
        })
    }
}

/// How long a zombie (a process that exited and has not been reaped) still counts as alive,
/// from the moment this process first saw it exited.
pub const ZOMBIE_GRACE: Duration = Duration::from_secs(1);

/// The zombies this process has seen, and when it first saw each (pid, start time). Only
/// processes that died and were not reaped are ever in it; it is kept short by dropping entries
/// older than the grace period's use (a zombie that is still there is found dead at once anyway).
static ZOMBIES: std::sync::Mutex<Vec<(u32, u64, Instant)>> = std::sync::Mutex::new(Vec::new());

/// Whether zombie (`pid`, `start`) was first seen more than [`ZOMBIE_GRACE`] ago (recording it
/// as first seen now if it is new).
fn zombie_grace_over(pid: u32, start: u64) -> bool {
    let now = Instant::now();
    // A poisoned lock only means another thread panicked while holding it: the list is still
    // a valid list.
    let mut seen = ZOMBIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, _, first)) = seen.iter().find(|z| z.0 == pid && z.1 == start) {
        return now.duration_since(first) >= ZOMBIE_GRACE;
    }
    // Forget zombies first seen long ago: reaped since, or already judged dead.
    seen.retain(|z| now.duration_since(z.2) < 60 * ZOMBIE_GRACE);
    seen.push((pid, start, now));
    false
}

/// Whether a process with this pid exists (a zombie counts for a while, as in
/// [`ProcessId::is_alive`]), for a
/// process known only by its pid: one that died before recording its start time, or is recording
/// it now. A recycled pid reads as alive.
pub fn pid_alive(pid: u32) -> bool {
    read_stat(pid).is_some_and(|(state, start)| state_alive(pid, state, start))
}

/// Whether a process with this pid runs and has not exited: unlike [`pid_alive`], a zombie
/// counts as gone at once. This is the staleness question ("may its segments be removed?"): an
/// exited process uses no segment any more, however long its parent takes to reap it (and when
/// the parent died too, init may take its time). The grace of [`ZOMBIE_GRACE`] only protects how
/// a live peer reports an exit, which removing a segment does not change.
pub fn pid_running(pid: u32) -> bool {
    read_stat(pid).is_some_and(|(state, _)| runs(state))
}

/// Whether a process found in `/proc` in `state` has not exited (neither a zombie nor dead).
fn runs(state: char) -> bool {
    !matches!(state, 'Z' | 'X')
}

/// Whether process (`pid`, `start`), found in `/proc` in `state`, counts as alive: not dead
/// (`X`), and not a zombie (`Z`) past its [`ZOMBIE_GRACE`].
fn state_alive(pid: u32, state: char, start: u64) -> bool {
    match state {
        'X' => false,
        'Z' => !zombie_grace_over(pid, start),
        _ => true,
    }
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
    // 0 and numbers beyond `pid_t` name no process: never alive, and not worth a `/proc` read.
    if pid == 0 || pid > i32::MAX as u32 {
        return None;
    }
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
    fn an_exited_child_is_alive_for_the_zombie_grace_then_dead_reaped_or_not() {
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
        let zombie = ProcessId { pid, start_time };
        let first_seen = Instant::now();
        assert!(zombie.is_alive(), "a zombie just seen is alive");
        assert!(pid_alive(pid), "and so is its pid");
        // Not reaped, it turns dead once the grace has passed (generous bound for a loaded
        // machine; the rule itself is ZOMBIE_GRACE).
        while zombie.is_alive() {
            assert!(
                first_seen.elapsed() < 20 * ZOMBIE_GRACE,
                "the zombie never turned dead"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            first_seen.elapsed() >= ZOMBIE_GRACE,
            "dead before the grace was over"
        );
        assert!(!pid_alive(pid), "its pid is dead too");
        child.wait().unwrap();
        assert!(!zombie.is_alive(), "a reaped child is dead");
    }
}
