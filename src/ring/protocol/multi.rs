//! The claim and publication protocol of multi-writer streams (`docs/LAYOUT.md` section 4.14).
//!
//! Writers claim sequence numbers one at a time by compare-and-swap on `claim_seq`, bounded by the
//! write limit, after recording the number in their writer entry (so the holder of a claimed but
//! unpublished number can always be found). Each fills its slot and stamps it with its sequence
//! number; then whoever finds stamped slots at `head` moves `head` over all of them with a
//! compare-and-swap. Frames are therefore published in claim order, and readers are unchanged:
//! they wait on `head` exactly as in a single-writer stream.
//!
//! Scans of the reader table are serialised: a writer takes the scan by moving `scan_seq` from
//! even to odd with a compare-and-swap, so the join protocol of readers (which waits while
//! `scan_seq` is odd) holds as with one writer.

use super::lowest_position;
use crate::layout::{
    FrameHeader, GroupRecord, ReaderEntry, StreamHeader, WriterEntry, FRAME_STATUS_FRAME,
    FRAME_STATUS_SKIPPED, SEQ_EMPTY, WRITER_COUNT_CLOSED, WRITER_COUNT_DEAD,
};
use crate::sync::{heavy_fence, seqcst_store_load, Ordering};

/// Writer: tries to claim sequence number `seq`, the value it last read from `claim_seq` (and
/// found below its write limit). Records `seq` in its entry first, and clears it again
/// ([`SEQ_EMPTY`]) if it lost the number. `Ok` if it won the number, else the current
/// `claim_seq` to try next.
#[inline]
pub fn try_claim(hdr: &StreamHeader, me: &WriterEntry, seq: u64) -> Result<(), u64> {
    // SeqCst: the intent precedes the claim in the total order, so anyone who sees `claim_seq`
    // past `seq` and then reads the writer table finds the holder's intent (or its stamp, which
    // it stores before any later intent).
    me.claim.store(seq, Ordering::SeqCst);
    seqcst_store_load();
    // SeqCst: as above; Relaxed on failure (the value is only the next guess).
    let won = hdr
        .claim_seq
        .compare_exchange(seq, seq + 1, Ordering::SeqCst, Ordering::Relaxed);
    if won.is_err() {
        // Relaxed: only tells a repairer that we do not hold `seq` (a writer that dies holding
        // it has the same intent, and its repairer waits while ours may be the holder's); one
        // that still sees `seq` waits for a later look.
        me.claim.store(SEQ_EMPTY, Ordering::Relaxed);
    }
    won.map(|_| ())
}

/// Writer: the next sequence number to claim.
#[inline]
pub fn next_claim(hdr: &StreamHeader) -> u64 {
    // Relaxed: only a guess for `try_claim`, whose compare-and-swap decides.
    hdr.claim_seq.load(Ordering::Relaxed)
}

/// Writer: completes the slot of claimed frame `seq` (payload already written) and stamps it.
#[inline]
pub fn stamp(frame: &FrameHeader, seq: u64, len: u32, flags: u32, crc: u32, timestamp: u64) {
    // Relaxed: made visible by the stamp below.
    frame.timestamp_ns.store(timestamp, Ordering::Relaxed);
    frame.len.store(len, Ordering::Relaxed);
    frame.flags.store(flags, Ordering::Relaxed);
    frame.crc32c.store(crc, Ordering::Relaxed);
    frame.status.store(FRAME_STATUS_FRAME, Ordering::Relaxed);
    seal(frame, seq);
}

/// Stamps the slot of unpublished sequence number `seq` as skipped: a zero-length entry with
/// status `FRAME_STATUS_SKIPPED` that readers step over and count as missed. Called by a writer
/// giving up its own reservation, or under the table lock for a dead writer's number (which
/// nobody else can write until it is published).
pub fn skip(frame: &FrameHeader, seq: u64) {
    // Relaxed: made visible by the stamp.
    frame.len.store(0, Ordering::Relaxed);
    frame.flags.store(0, Ordering::Relaxed);
    frame.crc32c.store(0, Ordering::Relaxed);
    frame.status.store(FRAME_STATUS_SKIPPED, Ordering::Relaxed);
    seal(frame, seq);
}

#[inline]
fn seal(frame: &FrameHeader, seq: u64) {
    // SeqCst: Release for the payload and fields (readers Acquire them through `head`, publishers
    // through this stamp), and the store half of the handshake with another writer's
    // `advance_head`: of two writers that stamp and then look at each other's slots, at least one
    // sees both stamps, so no stamped slot is left unpublished.
    frame.seq.store(seq, Ordering::SeqCst);
    seqcst_store_load();
}

/// What a successful [`advance_head`] moved, and who must be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    /// The new `head`.
    pub head: u64,
    /// A reader may be asleep waiting for frames: wake them (`wake_readers`).
    pub wake_readers: bool,
    /// A writer may be asleep waiting for `head` to move: wake them (`wake_writer`).
    pub wake_writers: bool,
}

/// Anyone: publishes every stamped slot from `head` on, in order. Returns what it published, or
/// `None` if `head` was not at a stamped slot (whoever stamps that slot publishes ours too).
///
/// `slot(s)` is the header of the slot holding sequence number `s`.
pub fn advance_head<'a>(
    hdr: &StreamHeader,
    capacity: u64,
    slot: impl Fn(u64) -> &'a FrameHeader,
) -> Option<Advance> {
    // SeqCst: the load half of the handshake in `seal`.
    let mut head = hdr.head.load(Ordering::SeqCst);
    loop {
        let mut end = head;
        // A claim is at most a ring ahead of `head`, so no stamped run is longer; an old stamp
        // of the same slot (`end - capacity`) never equals `end`.
        // SeqCst: see `seal`; it is also Acquire for the stamped slots we publish.
        while end < head + capacity && slot(end).seq.load(Ordering::SeqCst) == end {
            end += 1;
        }
        if end == head {
            return None;
        }
        // SeqCst: Release for the frames (readers Acquire `head`), and the store half of the
        // readers' (and waiting writers') sleep handshake.
        match hdr
            .head
            .compare_exchange(head, end, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {
                seqcst_store_load();
                return Some(Advance {
                    head: end,
                    // SeqCst: the load halves of the sleep handshakes.
                    wake_readers: hdr.readers_waiting.load(Ordering::SeqCst) != 0,
                    wake_writers: hdr.writer_waiting.load(Ordering::SeqCst) != 0,
                });
            }
            // `head` only grows; a smaller value is damage: leave it to the readers to report.
            Err(now) if now < head => return None,
            // Someone else published part of it: go on from where they stopped.
            Err(now) => head = now,
        }
    }
}

/// Writer: takes the scan (if nobody holds it), scans the reader groups and lossless readers
/// against the published
/// `head` and publishes the new limit. `None` if another writer is scanning: its limit will be in
/// `write_limit` when it is done.
pub fn try_scan<'a, 'g>(
    hdr: &StreamHeader,
    me: &WriterEntry,
    groups: impl Iterator<Item = &'g GroupRecord>,
    entries: impl Iterator<Item = &'a ReaderEntry>,
    capacity: u64,
) -> Option<super::Scan> {
    // SeqCst: as in the single-writer `scan`.
    let even = hdr.scan_seq.load(Ordering::SeqCst);
    if even % 2 == 1 {
        return None;
    }
    // SeqCst: the intent precedes taking the scan, so a writer that dies holding it can be found.
    me.scan.store(even, Ordering::SeqCst);
    seqcst_store_load();
    // SeqCst: the scan's total order with joining readers (see the single-writer `scan`).
    if hdr
        .scan_seq
        .compare_exchange(even, even + 1, Ordering::SeqCst, Ordering::Relaxed)
        .is_err()
    {
        return None;
    }
    seqcst_store_load();
    // SeqCst: Acquire for the published slots: a slot is reused only once the frame that held
    // it is published (and, through the reader positions, released).
    let head = hdr.head.load(Ordering::SeqCst);
    let min = lowest_position(groups, entries, head, capacity);
    let limit = min + capacity;
    // SeqCst: as in the single-writer `scan`.
    hdr.write_limit.store(limit, Ordering::SeqCst);
    // SeqCst: ends the scan. A compare-and-swap, so that a scan broken by `break_scan` (we were
    // taken for dead) is not ended twice.
    let _ = hdr
        .scan_seq
        .compare_exchange(even + 1, even + 2, Ordering::SeqCst, Ordering::Relaxed);
    Some(super::Scan { min, limit })
}

/// Anyone (under the table lock): ends a scan whose holder died, started from `even`. False if
/// the scan ended meanwhile.
pub fn break_scan(hdr: &StreamHeader, even: u64) -> bool {
    // SeqCst: as `try_scan`'s end.
    hdr.scan_seq
        .compare_exchange(even + 1, even + 2, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok()
}

/// Writer: the limit of the last finished scan.
#[inline]
pub fn write_limit(hdr: &StreamHeader) -> u64 {
    // SeqCst: Acquire for what the scanner saw (reader releases, published slots).
    hdr.write_limit.load(Ordering::SeqCst)
}

/// Writer: announces that it is about to sleep on `space_futex` until readers release frames up
/// to `wanted` or `head` moves; returns the value to sleep on. Several writers may sleep at once:
/// `writer_waiting` counts them. The caller rescans afterwards and calls [`writer_wake_done`].
#[inline]
pub fn writer_prepare_sleep(hdr: &StreamHeader, wanted: u64) -> u32 {
    // Relaxed: published by the SeqCst increment below (the last sleeper's wish wins; the others
    // sleep at most one short slice longer).
    hdr.space_wanted.store(wanted, Ordering::Relaxed);
    // Acquire: as in the single-writer `writer_prepare_sleep`.
    let word = hdr.space_futex.load(Ordering::Acquire);
    // SeqCst: the load half of the handshakes in `release` and `advance_head`.
    hdr.writer_waiting.fetch_add(1, Ordering::SeqCst);
    // The heavy half of the asymmetric fence with readers that release with a plain store
    // (`protocol::release`).
    heavy_fence();
    word
}

/// Writer: withdraws the announcement made by [`writer_prepare_sleep`].
#[inline]
pub fn writer_wake_done(hdr: &StreamHeader) {
    // Relaxed: only gates wake-ups.
    hdr.writer_waiting.fetch_sub(1, Ordering::Relaxed);
}

/// Writer: counts itself in `writer_count` as it attaches. Fails, with the count it found, once
/// the stream has ended (`WRITER_COUNT_CLOSED` or `WRITER_COUNT_DEAD` is set): an ended stream is
/// ended for good, so a reader told so is never handed frames again.
pub fn count_attach(hdr: &StreamHeader) -> Result<(), u32> {
    // SeqCst throughout: the count, the stream's end and `head` are read in one order by readers
    // (the last writer's publications come before the end it stores).
    let mut count = hdr.writer_count.load(Ordering::SeqCst);
    loop {
        if count & WRITER_COUNT_ENDED != 0 {
            return Err(count);
        }
        match hdr.writer_count.compare_exchange(
            count,
            count.wrapping_add(1),
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => return Ok(()),
            Err(now) => count = now,
        }
    }
}

/// Either bit that ends a multi-writer stream for good.
pub const WRITER_COUNT_ENDED: u32 = WRITER_COUNT_CLOSED | WRITER_COUNT_DEAD;

/// A writer leaves (`closing`: it closed; otherwise it died and was repaired): takes one off
/// `writer_count`. When the last one leaves, the stream ends: the count becomes
/// `WRITER_COUNT_CLOSED` if it closed (returns true, and the caller stores `writer_state = CLOSED`
/// and wakes the readers) or `WRITER_COUNT_DEAD` if it died (readers report that the writers
/// died).
pub fn count_leave(hdr: &StreamHeader, closing: bool) -> bool {
    // SeqCst: see `count_attach`.
    let mut count = hdr.writer_count.load(Ordering::SeqCst);
    loop {
        let live = count & !WRITER_COUNT_ENDED;
        if count & WRITER_COUNT_ENDED != 0 || live == 0 {
            // Damaged, or already ended: nothing to take off.
            return false;
        }
        let next = match (live, closing) {
            (1, true) => WRITER_COUNT_CLOSED,
            (1, false) => WRITER_COUNT_DEAD,
            _ => count - 1,
        };
        match hdr
            .writer_count
            .compare_exchange(count, next, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => return next == WRITER_COUNT_CLOSED,
            Err(now) => count = now,
        }
    }
}

/// Ends a stream whose writers are all gone (or never came) on their behalf: moves
/// `writer_count` from 0 to `WRITER_COUNT_CLOSED`. True if it did.
pub fn count_close_empty(hdr: &StreamHeader) -> bool {
    // SeqCst: see `count_attach`.
    hdr.writer_count
        .compare_exchange(0, WRITER_COUNT_CLOSED, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

/// Tries to take the table lock for the process `pid`. True if it did.
pub fn try_lock_tables(hdr: &StreamHeader, pid: u32, start_time: u64) -> bool {
    // Acquire: everything the previous holder did under the lock happens before our work.
    if hdr
        .table_lock
        .compare_exchange(0, pid, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    // Relaxed: read only to judge whether the holder died, long after it was stored.
    hdr.table_lock_start.store(start_time, Ordering::Relaxed);
    true
}

/// Releases the table lock taken by [`try_lock_tables`].
pub fn unlock_tables(hdr: &StreamHeader, pid: u32) {
    // Release: our work under the lock happens before the next holder's.
    let _ = hdr
        .table_lock
        .compare_exchange(pid, 0, Ordering::Release, Ordering::Relaxed);
}

/// Frees the table lock of a holder found dead (its pid is `pid`). False if it changed hands.
pub fn break_table_lock(hdr: &StreamHeader, pid: u32) -> bool {
    // AcqRel: as a release by the dead holder followed by our own acquisition attempt.
    hdr.table_lock
        .compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}
