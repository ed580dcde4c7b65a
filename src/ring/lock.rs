//! The table lock: serialises the rare repairs of a stream's shared tables (reclaiming dead
//! writers of a multi-writer stream; creating, joining, leaving and repairing reader groups).
//!
//! A word in the stream header holds the pid of the holder (with its start time next to it), so a
//! holder that dies is detected and its lock broken: nothing stays locked for good.

use super::protocol::multi;
use super::Shared;
use crate::liveness::ProcessId;
use crate::sync::Ordering;
use std::time::{Duration, Instant};

/// How long a process waits for the table lock before it judges whether the holder died.
const LOCK_PATIENCE: Duration = Duration::from_millis(100);
/// How long a process waits for the table lock at most; a repair that cannot get it is retried
/// at the caller's next liveness check.
const LOCK_GIVE_UP: Duration = Duration::from_secs(5);

/// The table lock, held while the guard lives.
pub(crate) struct TableLock<'a> {
    shared: &'a Shared,
    pid: u32,
}

impl<'a> TableLock<'a> {
    /// Takes the lock, breaking it if its holder died; `None` if a live holder keeps it for
    /// [`LOCK_GIVE_UP`].
    pub(crate) fn take(shared: &'a Shared) -> Option<TableLock<'a>> {
        let hdr = shared.header();
        let me = ProcessId::current();
        let started = Instant::now();
        loop {
            if multi::try_lock_tables(hdr, me.pid, me.start_time) {
                return Some(TableLock {
                    shared,
                    pid: me.pid,
                });
            }
            let waited = started.elapsed();
            if waited >= LOCK_GIVE_UP {
                return None;
            }
            if waited >= LOCK_PATIENCE {
                // Relaxed: the holder stored them just after taking the lock, long ago.
                let holder =
                    ProcessId::load(&hdr.table_lock, &hdr.table_lock_start, Ordering::Relaxed);
                if holder.pid != 0 && holder.pid != me.pid && !holder.is_alive() {
                    multi::break_table_lock(hdr, holder.pid);
                    continue;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Drop for TableLock<'_> {
    fn drop(&mut self) {
        multi::unlock_tables(self.shared.header(), self.pid);
    }
}
