//! The reader table of a stream: claiming a free entry, freeing one, and reclaiming the entries
//! of readers that died. A leaf module: the reader and writer handles and the reader groups build
//! on it.

use super::Shared;
use crate::layout::{
    ReaderEntry, READER_ACTIVE, READER_CLAIMING, READER_FLAG_LOSSY, READER_FREE, READER_ORPHANED,
};
use crate::liveness::ProcessId;
use crate::sync::Ordering;

/// Claims a free entry of the table (state CLAIMING); `None` if none is free.
pub(crate) fn claim(shared: &Shared) -> Option<u32> {
    (0..shared.geo.max_readers).find(|&i| {
        // Acquire: the entry's previous owner is done with it.
        shared
            .entry(i)
            .state
            .compare_exchange(
                READER_FREE,
                READER_CLAIMING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    })
}

/// Frees the entries of processes that died: active ones (only lossless ones if
/// `lossless_only`), and half-claimed ones whose owner recorded its pid and died. Group members
/// are left to `group::repair`. Returns how many entries were freed.
pub(crate) fn reclaim_dead(shared: &Shared, lossless_only: bool) -> u64 {
    let hdr = shared.header();
    let mut freed = 0;
    for i in 0..shared.geo.max_readers {
        let entry = shared.entry(i);
        // Acquire: see the owner's identity.
        let state = entry.state.load(Ordering::Acquire);
        if state == READER_FREE
            || state == READER_ORPHANED
            || lossless_only
                && (state != READER_ACTIVE
                    || entry.flags.load(Ordering::Relaxed) & READER_FLAG_LOSSY != 0)
        {
            continue;
        }
        // Relaxed: stored before the entry became active (the Acquire above). Group members are
        // the groups' business.
        if state == READER_ACTIVE && entry.group.load(Ordering::Relaxed) != 0 {
            continue;
        }
        let owner = ProcessId {
            // Acquire: pairs with the owner's Release store of `pid` after its start time.
            pid: entry.pid.load(Ordering::Acquire),
            // Relaxed: made visible by the Acquire load of `pid` just above.
            start_time: entry.start_time.load(Ordering::Relaxed),
        };
        // A claimed entry reads pid 0 until its owner records itself: not evidence of death.
        if owner.pid == 0 || owner.is_alive() {
            continue;
        }
        if free(entry, state) {
            // Relaxed: a statistic.
            hdr.readers_reclaimed.fetch_add(1, Ordering::Relaxed);
            freed += 1;
        }
    }
    freed
}

/// Frees a reader entry that is in state `from`; false if its state changed meanwhile.
///
/// The entry passes through CLAIMING with its pid cleared, so a new owner never inherits a dead
/// pid that a concurrent reclaimer could mistake for its own death.
pub(crate) fn free(entry: &ReaderEntry, from: u32) -> bool {
    // AcqRel: exactly one process frees a given incarnation of the entry.
    if entry
        .state
        .compare_exchange(from, READER_CLAIMING, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    // Relaxed: ordered before the SeqCst store of FREE below, which claimants Acquire.
    entry.pid.store(0, Ordering::Relaxed);
    // SeqCst: leaving releases every frame the entry held, and is the store half of the
    // handshake with a writer that is about to sleep (it rescans after announcing).
    entry.state.store(READER_FREE, Ordering::SeqCst);
    true
}
