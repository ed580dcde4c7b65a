//! The tables of a stream: its reader table, its writer table (multi-writer streams) and the
//! single writer recorded in its header. Claiming a free entry, freeing one, reclaiming the
//! entries of processes that died, and reading an owner's identity. A leaf module: the reader
//! groups, the multi-writer protocol and the reader and writer handles build on it.
//!
//! Every change of an entry's owner goes through its owner word ([`protocol::entry`]): a claim
//! records the claimant's pid in the same compare-and-swap, so a reader or writer killed at any
//! point is known by its pid; a free bumps the generation, so a reclaimer only ever frees the
//! incarnation it judged dead; and freeing a reader that died asleep takes it out of
//! `readers_waiting`.

use super::protocol::entry::{self, OwnedEntry, Owner};
use super::Shared;
use crate::layout::{
    ReaderEntry, StreamHeader, READER_ACTIVE, READER_CLAIMING, READER_FLAG_LOSSY, READER_FREE,
    SEQ_EMPTY, WRITER_CLAIMING, WRITER_ENTRY_ACTIVE, WRITER_ENTRY_CLAIMING, WRITER_ENTRY_FREE,
};
use crate::liveness::{pid_alive, ProcessId};
use crate::sync::Ordering;

/// The identity of an entry's active owner: the pid of its owner word `owner` and the start time
/// it recorded before activating the entry.
///
/// Relaxed: the caller loaded `owner` with Acquire (or only reads statistics), which made the
/// start time stored before the entry became active visible.
#[inline]
pub(crate) fn identity(entry: &impl OwnedEntry, owner: Owner) -> ProcessId {
    ProcessId {
        pid: owner.pid(),
        start_time: entry.start_time_word().load(Ordering::Relaxed),
    }
}

/// Whether the owner `owner` of `entry` is alive: a claimant by its pid alone (its start time may
/// not be recorded yet), an active owner by pid and start time. Free and orphaned entries have no
/// owner to judge: `None`.
fn owner_alive(entry: &impl OwnedEntry, owner: Owner) -> Option<bool> {
    match owner.state() {
        READER_CLAIMING => Some(pid_alive(owner.pid())),
        READER_ACTIVE => Some(identity(entry, owner).is_alive()),
        _ => None,
    }
}

// ---- The reader table ----

/// Claims a free reader entry for process `pid` (state CLAIMING); `None` if none is free.
pub(crate) fn claim_reader(shared: &Shared, pid: u32) -> Option<(u32, Owner)> {
    (0..shared.geo.max_readers)
        .find_map(|i| entry::claim(shared.entry(i), pid).map(|claimed| (i, claimed)))
}

/// The entry's owner word if its owner is dead: a claimant (known by its pid alone until the
/// entry is active: its start time may not be recorded yet) or an active reader (pid and start
/// time) whose process is gone. `None` for a live owner, and for free and orphaned entries.
pub(crate) fn dead_reader(entry: &ReaderEntry) -> Option<Owner> {
    // Acquire: see the start time the owner stored before activating (SeqCst) the entry.
    let owner = entry::owner(entry, Ordering::Acquire);
    let alive = owner_alive(entry, owner)?;
    (!alive).then_some(owner)
}

/// Frees the reader entries of processes that died: active ones (only lossless ones if
/// `lossless_only`), and claimed ones whose claimant died before activating them. Group members
/// are left to `group::repair`. Returns how many entries were freed.
pub(crate) fn reclaim_dead_readers(shared: &Shared, lossless_only: bool) -> u64 {
    let hdr = shared.header();
    let mut freed = 0;
    for i in 0..shared.geo.max_readers {
        let entry = shared.entry(i);
        // Relaxed: a first look; `dead_reader` loads the word again with Acquire.
        let state = entry::owner(entry, Ordering::Relaxed).state();
        if state != READER_ACTIVE && (state != READER_CLAIMING || lossless_only) {
            continue;
        }
        let Some(dead) = dead_reader(entry) else {
            continue;
        };
        if dead.state() == READER_ACTIVE {
            // Relaxed: stored before the entry became active (the Acquire in `dead_reader`).
            // Lossy readers hold nobody back; group members are the groups' business.
            let lossy = entry.flags.load(Ordering::Relaxed) & READER_FLAG_LOSSY != 0;
            if lossy && lossless_only || entry.group.load(Ordering::Relaxed) != 0 {
                continue;
            }
        }
        // From exactly the word judged dead: if the entry was freed and claimed again since,
        // the generation differs and the new owner keeps it.
        if entry::transition(hdr, entry, dead, READER_FREE) {
            // Relaxed: a statistic.
            hdr.readers_reclaimed.fetch_add(1, Ordering::Relaxed);
            freed += 1;
        }
    }
    freed
}

/// Frees reader entry `index` if it is in state `from` (its owner leaving, or a holder of the
/// table lock letting an orphan go); false if it is not.
pub(crate) fn free_reader(shared: &Shared, index: u32, from: u32) -> bool {
    entry::transition_from_state(shared.header(), shared.entry(index), from, READER_FREE)
}

// ---- The writer table (multi-writer streams) ----

/// Claims a free writer entry for process `pid` (state CLAIMING, `pid` recorded in the same
/// compare-and-swap); `None` if none is free.
pub(crate) fn claim_writer(shared: &Shared, pid: u32) -> Option<(u32, Owner)> {
    (0..shared.geo.writer_entries)
        .find_map(|i| entry::claim(shared.writer_entry(i), pid).map(|claimed| (i, claimed)))
}

/// Frees writer entry `index` (ours, or a dead writer's under the table lock) from the exact
/// owner word `from`: one compare-and-swap that bumps the entry's generation, so a free cannot be
/// half done, and a word read before the entry changed hands frees nothing. False if the entry
/// is no longer in `from`.
pub(crate) fn free_writer(shared: &Shared, index: u32, from: Owner) -> bool {
    entry::transition(
        shared.header(),
        shared.writer_entry(index),
        from,
        WRITER_ENTRY_FREE,
    )
}

/// A taken writer entry as a repair sees it.
pub(crate) struct SeenWriter {
    pub(crate) index: u32,
    /// The owner word it was judged by: state `WRITER_ENTRY_ACTIVE` (counted in `writer_count`)
    /// or `WRITER_ENTRY_CLAIMING`.
    pub(crate) owner: Owner,
    pub(crate) alive: bool,
    /// The writer's intent ([`SEQ_EMPTY`] for a claimant: it has claimed nothing yet).
    pub(crate) claim: u64,
    /// The writer's scan intent ([`SEQ_EMPTY`] for a claimant).
    pub(crate) scan: u64,
}

/// The taken writer entries: active ones (judged by pid and start time) and claimed ones
/// (judged by the claimant's pid alone: its start time may not be recorded yet).
pub(crate) fn writers(shared: &Shared) -> Vec<SeenWriter> {
    (0..shared.geo.writer_entries)
        .filter_map(|index| {
            let entry = shared.writer_entry(index);
            // Acquire: see the fields the owner stored before activating (SeqCst) the entry.
            let owner = entry::owner(entry, Ordering::Acquire);
            let alive = owner_alive(entry, owner)?;
            let (claim, scan) = match owner.state() {
                // SeqCst: see `multi::repair`.
                WRITER_ENTRY_ACTIVE => (
                    entry.claim.load(Ordering::SeqCst),
                    entry.scan.load(Ordering::SeqCst),
                ),
                // A claimant has claimed no number and taken no scan (it does so only once
                // active); its entry's intents may still be its predecessor's.
                WRITER_ENTRY_CLAIMING => (SEQ_EMPTY, SEQ_EMPTY),
                _ => return None,
            };
            Some(SeenWriter {
                index,
                owner,
                alive,
                claim,
                scan,
            })
        })
        .collect()
}

// ---- The single writer (recorded in the stream header) ----

/// The single writer recorded in a stream header whose `writer_state` is `state` (not NONE).
pub(crate) struct ClaimedWriter {
    pub(crate) pid: u32,
    pub(crate) alive: bool,
}

/// Who holds (or held) the writer role of a single-writer stream in `state`, and whether it is
/// alive: a claimant by its pid alone (its start time may not be recorded yet), an attached or
/// closed writer by pid and start time.
pub(crate) fn claimed_writer(hdr: &StreamHeader, state: u32) -> ClaimedWriter {
    if state & WRITER_CLAIMING != 0 {
        let pid = state & !WRITER_CLAIMING;
        return ClaimedWriter {
            pid,
            alive: pid_alive(pid),
        };
    }
    // Relaxed: identity fields published before ACTIVE (Release, which the caller's load of the
    // state paired with); a torn pair only reads as dead or alive, and nobody acts on "dead"
    // without a compare-and-swap of the state.
    let owner = ProcessId::load(&hdr.writer_pid, &hdr.writer_start_time, Ordering::Relaxed);
    ClaimedWriter {
        pid: owner.pid,
        alive: owner.is_alive(),
    }
}
