//! The owner word of a reader entry or a writer entry: who holds the entry, changed only by
//! compare-and-swap.
//!
//! The word packs the entry's state (`READER_*` or `WRITER_ENTRY_*`, whose free, claiming and
//! active values are the same), an "asleep" bit (reader entries only), a generation and the
//! owner's pid (see [`ReaderEntry::owner`], [`WriterEntry::owner`]). Because the claim is one
//! compare-and-swap that also writes the claimant's pid, a reader or writer that dies at any
//! instant after claiming is known by its pid; because every free bumps the generation, a process
//! that read the word earlier (a reclaimer that judged that owner dead) can never change a later
//! incarnation of the entry (no ABA); and because the asleep bit is cleared in the same step that
//! frees or orphans the entry, a reader that dies asleep is taken out of `readers_waiting` by
//! whoever reclaims its entry.

use crate::layout::{
    ReaderEntry, StreamHeader, WriterEntry, OWNER_ASLEEP, OWNER_GENERATION_MASK,
    OWNER_GENERATION_SHIFT, OWNER_PID_SHIFT, OWNER_STATE_MASK, READER_ACTIVE, READER_CLAIMING,
    READER_FREE, WRITER_ENTRY_ACTIVE, WRITER_ENTRY_CLAIMING, WRITER_ENTRY_FREE,
};
use crate::sync::{AtomicU64, Ordering};

// The writer table reuses the reader table's owner word, state values included.
const _: () = assert!(
    WRITER_ENTRY_FREE == READER_FREE
        && WRITER_ENTRY_CLAIMING == READER_CLAIMING
        && WRITER_ENTRY_ACTIVE == READER_ACTIVE
);

/// A table entry that carries an owner word: a [`ReaderEntry`] or a [`WriterEntry`].
pub trait OwnedEntry {
    /// The entry's owner word.
    fn owner_word(&self) -> &AtomicU64;
    /// The active owner's process start time (its pid is in the owner word).
    fn start_time_word(&self) -> &AtomicU64;
}

impl OwnedEntry for ReaderEntry {
    #[inline]
    fn owner_word(&self) -> &AtomicU64 {
        &self.owner
    }
    #[inline]
    fn start_time_word(&self) -> &AtomicU64 {
        &self.start_time
    }
}

impl OwnedEntry for WriterEntry {
    #[inline]
    fn owner_word(&self) -> &AtomicU64 {
        &self.owner
    }
    #[inline]
    fn start_time_word(&self) -> &AtomicU64 {
        &self.start_time
    }
}

/// An entry's owner word, decoded on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner(pub u64);

impl Owner {
    /// The entry's state, `READER_*` (or the same values, `WRITER_ENTRY_*`).
    #[inline]
    pub fn state(self) -> u32 {
        (self.0 & OWNER_STATE_MASK) as u32
    }

    /// The owner's pid (0 for a free entry).
    #[inline]
    pub fn pid(self) -> u32 {
        (self.0 >> OWNER_PID_SHIFT) as u32
    }

    /// Whether the owner is counted in `readers_waiting` (never set in a writer entry).
    #[inline]
    pub fn asleep(self) -> bool {
        self.0 & OWNER_ASLEEP != 0
    }

    /// The generation: how many times (modulo 2^29) the entry was freed.
    #[inline]
    pub fn generation(self) -> u32 {
        ((self.0 & OWNER_GENERATION_MASK) >> OWNER_GENERATION_SHIFT) as u32
    }

    /// This word moved to `state`, not asleep: the same generation and pid, except that a free
    /// clears the pid and bumps the generation.
    #[inline]
    pub fn moved(self, state: u32) -> Owner {
        debug_assert!(state as u64 <= OWNER_STATE_MASK);
        if state == READER_FREE {
            let generation =
                (self.0 & OWNER_GENERATION_MASK).wrapping_add(1 << OWNER_GENERATION_SHIFT);
            Owner(generation & OWNER_GENERATION_MASK | READER_FREE as u64)
        } else {
            Owner(self.0 & !(OWNER_STATE_MASK | OWNER_ASLEEP) | state as u64)
        }
    }
}

/// The entry's owner word, loaded with `order`.
#[inline]
pub fn owner(entry: &impl OwnedEntry, order: Ordering) -> Owner {
    Owner(entry.owner_word().load(order))
}

/// A joining reader or attaching writer (process `pid`): claims the entry if it is free. Returns
/// the claimed word (state `READER_CLAIMING`, the entry's generation, `pid`).
pub fn claim(entry: &impl OwnedEntry, pid: u32) -> Option<Owner> {
    // Acquire: the entry's previous owner (and whoever freed it) is done with it.
    let seen = owner(entry, Ordering::Acquire);
    if seen.state() != READER_FREE {
        return None;
    }
    let claimed = Owner(
        seen.0 & OWNER_GENERATION_MASK | (pid as u64) << OWNER_PID_SHIFT | READER_CLAIMING as u64,
    );
    // Acquire on success: as the load above; the claimant's later stores need no Release of
    // their own here (the activation publishes them). Failure: another claimant won.
    entry
        .owner_word()
        .compare_exchange(seen.0, claimed.0, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| claimed)
}

/// The claimant: makes its entry (claimed as `claimed`, every other field written) active.
/// Nobody else changes the word of a claimed entry whose owner is alive, so a store suffices.
#[inline]
pub fn activate(entry: &impl OwnedEntry, claimed: Owner) {
    // SeqCst: publishes the entry's fields (it includes Release), and is part of the join's
    // handshake with the writer's scan (see `protocol::join`) or, for a writer, ordered after its
    // count in `writer_count` for readers judging the end of the stream.
    entry
        .owner_word()
        .store(claimed.moved(READER_ACTIVE).0, Ordering::SeqCst);
}

/// Moves the entry from the incarnation `from` (as read earlier; its asleep bit may have changed
/// since, which only its owner does) to `state` (see [`Owner::moved`]). Returns false, changing
/// nothing, if that incarnation is gone: freed, claimed again, or moved by someone else first.
///
/// If the owner was counted in `readers_waiting`, the count is taken back: a reader reclaimed
/// while asleep no longer costs the writer a wake-up per publish.
pub fn transition(hdr: &StreamHeader, entry: &impl OwnedEntry, from: Owner, state: u32) -> bool {
    let mut seen = from;
    loop {
        // SeqCst: a free or an orphaning releases the frames the entry held (Release for the
        // owner's reads of them) and is the store half of the handshake with a writer that is
        // about to sleep (it rescans after announcing); in the writer table, it orders the
        // entry's leaving with `writer_count` and the SeqCst reads of a repair, as its
        // activation does. Failure Relaxed: only compared.
        match entry.owner_word().compare_exchange(
            seen.0,
            seen.moved(state).0,
            Ordering::SeqCst,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                if seen.asleep() {
                    // Relaxed: as in `reader_wake_done`.
                    hdr.readers_waiting.fetch_sub(1, Ordering::Relaxed);
                }
                return true;
            }
            Err(actual) if actual & !OWNER_ASLEEP == from.0 & !OWNER_ASLEEP => seen = Owner(actual),
            Err(_) => return false,
        }
    }
}

/// Moves the entry from `state` to `to` whatever its incarnation (for its own owner, and for
/// holders of the table lock moving entries only they may move); false if it is not in `state`.
pub fn transition_from_state(
    hdr: &StreamHeader,
    entry: &impl OwnedEntry,
    state: u32,
    to: u32,
) -> bool {
    // Acquire: as a reclaimer's look at the word.
    let seen = owner(entry, Ordering::Acquire);
    seen.state() == state && transition(hdr, entry, seen, to)
}

/// A reader: marks its entry asleep, after counting itself in `readers_waiting` (see
/// [`reader_prepare_sleep`](super::reader_prepare_sleep)). Counting first means a reader killed
/// between the two steps leaves one spare count (a spare wake-up per publish), never a missing
/// one.
#[inline]
pub(crate) fn mark_asleep(entry: &ReaderEntry) {
    // Relaxed: the mark only tells a reclaimer to take the count back; the handshake with the
    // writer is carried by `readers_waiting`.
    entry.owner.fetch_or(OWNER_ASLEEP, Ordering::Relaxed);
}

/// A reader that stops waiting: clears its asleep mark; true if it was still set (and so the
/// reader, not a reclaimer, must take its count out of `readers_waiting`).
#[inline]
pub(crate) fn clear_asleep(entry: &ReaderEntry) -> bool {
    // Relaxed: as in `mark_asleep`.
    entry.owner.fetch_and(!OWNER_ASLEEP, Ordering::Relaxed) & OWNER_ASLEEP != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::READER_ORPHANED;

    #[test]
    fn a_free_bumps_the_generation_and_clears_pid_and_asleep_bit() {
        let word = Owner(7u64 << OWNER_PID_SHIFT | 5 << OWNER_GENERATION_SHIFT | OWNER_ASLEEP)
            .moved(READER_ACTIVE);
        assert_eq!(
            (word.state(), word.pid(), word.generation()),
            (READER_ACTIVE, 7, 5)
        );
        assert!(!word.asleep());
        let freed = Owner(word.0 | OWNER_ASLEEP).moved(READER_FREE);
        assert_eq!(
            (freed.state(), freed.pid(), freed.generation()),
            (READER_FREE, 0, 6)
        );
        assert!(!freed.asleep());
        let orphan = word.moved(READER_ORPHANED);
        assert_eq!((orphan.pid(), orphan.generation()), (7, 5));
    }

    #[test]
    fn a_reclaimer_holding_an_old_word_cannot_free_the_next_owner_of_the_entry() {
        // SAFETY: both structs are made only of atomics, for which all-zero bytes are valid.
        let (hdr, entry) = unsafe {
            (
                std::mem::zeroed::<StreamHeader>(),
                std::mem::zeroed::<ReaderEntry>(),
            )
        };
        let first = claim(&entry, 100).unwrap();
        activate(&entry, first);
        // A reclaimer reads the word and judges pid 100 dead...
        let judged = owner(&entry, Ordering::Acquire);
        // ...meanwhile the entry is freed (by another reclaimer) and claimed by a new reader
        // whose pid happens to be the same.
        assert!(transition(&hdr, &entry, judged, READER_FREE));
        let second = claim(&entry, 100).unwrap();
        activate(&entry, second);
        assert_ne!(first.generation(), second.generation());
        // The first reclaimer's free fails: the new reader keeps its entry.
        assert!(!transition(&hdr, &entry, judged, READER_FREE));
        assert_eq!(owner(&entry, Ordering::Relaxed).state(), READER_ACTIVE);
        assert!(claim(&entry, 200).is_none(), "the entry is taken");
    }

    #[test]
    fn freeing_a_sleeping_reader_takes_it_out_of_readers_waiting() {
        // SAFETY: as above.
        let (hdr, entry) = unsafe {
            (
                std::mem::zeroed::<StreamHeader>(),
                std::mem::zeroed::<ReaderEntry>(),
            )
        };
        let claimed = claim(&entry, 100).unwrap();
        activate(&entry, claimed);
        let word = super::super::reader_prepare_sleep(&hdr, &entry);
        assert_eq!(word, 0);
        assert_eq!(hdr.readers_waiting.load(Ordering::Relaxed), 1);
        // The reader dies asleep; its entry is reclaimed.
        let judged = owner(&entry, Ordering::Acquire);
        assert!(judged.asleep());
        assert!(transition(&hdr, &entry, judged, READER_FREE));
        assert_eq!(hdr.readers_waiting.load(Ordering::Relaxed), 0);
        // A reader that wakes by itself takes its own count back, once.
        let claimed = claim(&entry, 101).unwrap();
        activate(&entry, claimed);
        super::super::reader_prepare_sleep(&hdr, &entry);
        super::super::reader_wake_done(&hdr, &entry);
        assert!(transition_from_state(
            &hdr,
            &entry,
            READER_ACTIVE,
            READER_FREE
        ));
        assert_eq!(hdr.readers_waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_writer_entry_is_claimed_and_freed_through_the_same_owner_word() {
        // SAFETY: both structs are made only of atomics, for which all-zero bytes are valid.
        let (hdr, entry) = unsafe {
            (
                std::mem::zeroed::<StreamHeader>(),
                std::mem::zeroed::<WriterEntry>(),
            )
        };
        let claimed = claim(&entry, 100).unwrap();
        assert_eq!(
            (claimed.state(), claimed.pid()),
            (WRITER_ENTRY_CLAIMING, 100)
        );
        assert!(claim(&entry, 200).is_none(), "the entry is taken");
        activate(&entry, claimed);
        // A repairer judges the writer dead and frees its entry; a new writer takes it.
        let judged = owner(&entry, Ordering::Acquire);
        assert_eq!(judged.state(), WRITER_ENTRY_ACTIVE);
        assert!(transition(&hdr, &entry, judged, WRITER_ENTRY_FREE));
        let next = claim(&entry, 100).unwrap();
        assert_eq!(next.generation(), claimed.generation() + 1);
        // A second repairer with the same (stale) judgement frees nothing.
        assert!(!transition(&hdr, &entry, judged, WRITER_ENTRY_FREE));
        assert_eq!(owner(&entry, Ordering::Relaxed), next);
        assert_eq!(hdr.readers_waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_generation_wraps_without_touching_state_or_pid() {
        let last = Owner(OWNER_GENERATION_MASK | READER_ACTIVE as u64 | 9 << OWNER_PID_SHIFT);
        assert_eq!(last.generation(), (1 << 29) - 1);
        let freed = last.moved(READER_FREE);
        assert_eq!((freed.0, freed.generation()), (0, 0));
    }
}
