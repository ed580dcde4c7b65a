//! The reader table of a stream: claiming a free entry, freeing one, reclaiming the entries of
//! readers that died, and judging whether an entry's owner is alive. A leaf module: the reader
//! and writer handles and the reader groups build on it.
//!
//! Every change of an entry's owner goes through its owner word ([`protocol::entry`]): a claim
//! records the claimant's pid in the same compare-and-swap, so a reader killed at any point is
//! known by its pid; a free bumps the generation, so a reclaimer only ever frees the incarnation
//! it judged dead; and freeing a reader that died asleep takes it out of `readers_waiting`.

use super::protocol::entry::{self, Owner};
use super::Shared;
use crate::layout::{ReaderEntry, READER_ACTIVE, READER_CLAIMING, READER_FLAG_LOSSY};
use crate::liveness::{pid_alive, ProcessId};
use crate::sync::Ordering;

/// Claims a free entry of the table for process `pid` (state CLAIMING); `None` if none is free.
pub(crate) fn claim(shared: &Shared, pid: u32) -> Option<(u32, Owner)> {
    (0..shared.geo.max_readers)
        .find_map(|i| entry::claim(shared.entry(i), pid).map(|claimed| (i, claimed)))
}

/// The entry's owner word if its owner is dead: a claimant (known by its pid alone until the
/// entry is active: its start time may not be recorded yet) or an active reader (pid and start
/// time) whose process is gone. `None` for a live owner, and for free and orphaned entries.
pub(crate) fn dead_owner(entry: &ReaderEntry) -> Option<Owner> {
    // Acquire: see the start time the owner stored before activating (SeqCst) the entry.
    let owner = entry::owner(entry, Ordering::Acquire);
    let alive = match owner.state() {
        READER_CLAIMING => pid_alive(owner.pid()),
        READER_ACTIVE => ProcessId {
            pid: owner.pid(),
            // Relaxed: made visible by the Acquire load of the word (see above).
            start_time: entry.start_time.load(Ordering::Relaxed),
        }
        .is_alive(),
        _ => return None,
    };
    (!alive).then_some(owner)
}

/// Frees the entries of processes that died: active ones (only lossless ones if
/// `lossless_only`), and claimed ones whose claimant died before activating them. Group members
/// are left to `group::repair`. Returns how many entries were freed.
pub(crate) fn reclaim_dead(shared: &Shared, lossless_only: bool) -> u64 {
    let hdr = shared.header();
    let mut freed = 0;
    for i in 0..shared.geo.max_readers {
        let entry = shared.entry(i);
        // Relaxed: a first look; `dead_owner` loads the word again with Acquire.
        let state = entry::owner(entry, Ordering::Relaxed).state();
        if state != READER_ACTIVE && (state != READER_CLAIMING || lossless_only) {
            continue;
        }
        let Some(dead) = dead_owner(entry) else {
            continue;
        };
        if dead.state() == READER_ACTIVE {
            // Relaxed: stored before the entry became active (the Acquire in `dead_owner`).
            // Lossy readers hold nobody back; group members are the groups' business.
            let lossy = entry.flags.load(Ordering::Relaxed) & READER_FLAG_LOSSY != 0;
            if lossy && lossless_only || entry.group.load(Ordering::Relaxed) != 0 {
                continue;
            }
        }
        // From exactly the word judged dead: if the entry was freed and claimed again since,
        // the generation differs and the new owner keeps it.
        if entry::transition(hdr, entry, dead, crate::layout::READER_FREE) {
            // Relaxed: a statistic.
            hdr.readers_reclaimed.fetch_add(1, Ordering::Relaxed);
            freed += 1;
        }
    }
    freed
}

/// Frees entry `index` if it is in state `from` (its owner leaving, or a holder of the table
/// lock letting an orphan go); false if it is not.
pub(crate) fn free(shared: &Shared, index: u32, from: u32) -> bool {
    entry::transition_from_state(
        shared.header(),
        shared.entry(index),
        from,
        crate::layout::READER_FREE,
    )
}
