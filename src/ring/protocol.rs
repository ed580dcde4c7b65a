//! The cursor and publication protocol of a stream, as small steps over the shared header.
//!
//! These functions hold every atomic operation the writer and readers perform on each other's
//! fields, so the protocol can be model-checked with loom (`tests/loom_ring.rs`, run with
//! `RUSTFLAGS="--cfg loom"`) on headers that live on the heap. Waiting and payload copies are
//! left to the callers.
//!
//! Positions are 64-bit counters that only grow; a slot index is `position & (capacity - 1)`.
//! The writer may publish sequence number `s` only while `s < limit`, where
//! `limit = min(lossless reader positions and reader groups' next frames, clamped to
//! [head - capacity, head]) + capacity` as computed by its last [`scan`]. A slot is therefore
//! never reused while a lossless reader (or a reader group) still needs it (a zero-copy reader's
//! position only moves on release).

use crate::layout::{
    FrameHeader, GroupRecord, ReaderEntry, StreamHeader, GROUP_ACTIVE, POS_IDLE, READER_ACTIVE,
    READER_FLAG_LOSSY, READER_ORPHANED, SEQ_EMPTY,
};
use crate::sync::{
    fence, heavy_fence, light_fence, light_fences, seqcst_store_load, AtomicU64, Ordering,
};

pub mod entry;
pub mod group;
pub mod multi;

/// Result of a writer's scan of the reader table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Lowest position of an active lossless reader or reader group (clamped), or `head` if there
    /// is none.
    pub min: u64,
    /// The writer may publish sequence numbers below this.
    pub limit: u64,
}

/// Writer: scans the reader groups and the active lossless readers and publishes the resulting
/// limit.
///
/// Brackets the scan with increments of `scan_seq` (odd while scanning) so a joining reader can
/// tell whether a scan that may have missed it is still in flight (see [`join`]).
pub fn scan<'a, 'g>(
    hdr: &StreamHeader,
    groups: impl Iterator<Item = &'g GroupRecord>,
    entries: impl Iterator<Item = &'a ReaderEntry>,
    head: u64,
    capacity: u64,
) -> Scan {
    // SeqCst: this increment, the entry loads below, and a joining reader's entry stores and
    // `scan_seq` load form one total order, so either this scan sees the reader or the reader
    // sees this scan in progress (or its result).
    hdr.scan_seq.fetch_add(1, Ordering::SeqCst);
    seqcst_store_load();
    let min = lowest_position(groups, entries, head, capacity);
    let limit = min + capacity;
    // SeqCst: a joining reader that sees `scan_seq` even reads this limit or a later one.
    hdr.write_limit.store(limit, Ordering::SeqCst);
    hdr.scan_seq.fetch_add(1, Ordering::SeqCst);
    Scan { min, limit }
}

/// The body of a scan: the lowest `next` of an active reader group and position of an active
/// (or orphaned) lossless reader, clamped to `[head - capacity, head]`, or `head` if there is
/// none.
///
/// The groups are read first: a member claims frames by storing its position and then moving
/// its group's `next` past them (see [`group::try_claim`]), so a scan that sees the moved `next`
/// then sees the member's position (SeqCst, later in the total order than its store).
pub(crate) fn lowest_position<'a, 'g>(
    groups: impl Iterator<Item = &'g GroupRecord>,
    entries: impl Iterator<Item = &'a ReaderEntry>,
    head: u64,
    capacity: u64,
) -> u64 {
    let floor = head.saturating_sub(capacity);
    let mut min = head;
    for group in groups {
        // SeqCst: as for the entries below; a group joins like a reader (`group::join`).
        if group.state.load(Ordering::SeqCst) != GROUP_ACTIVE {
            continue;
        }
        // SeqCst: see the function's comment; clamped as a reader position is.
        let next = group.next.load(Ordering::SeqCst);
        min = min.min(next.clamp(floor, head));
    }
    for entry in entries {
        // SeqCst: see above.
        let state = entry::owner(entry, Ordering::SeqCst).state();
        if state != READER_ACTIVE && state != READER_ORPHANED
            || entry.flags.load(Ordering::Relaxed) & READER_FLAG_LOSSY != 0
        {
            continue;
        }
        // SeqCst: see above; it also orders the reader's earlier reads of the slots it releases
        // before our reuse of them (the reader stores `pos` with SeqCst, which includes Release).
        let pos = entry.pos.load(Ordering::SeqCst);
        if pos == POS_IDLE {
            // A group member that holds no frame.
            continue;
        }
        // A position behind `head - capacity` is a joining reader whose start frames are already
        // gone, or a corrupt value; one ahead of `head` is corrupt. Clamping both keeps the
        // writer's promise (nothing at or above the clamped position is overwritten) without
        // trusting the value.
        min = min.min(pos.clamp(floor, head));
    }
    min
}

/// Writer: marks the slot of `frame` as being written, before its payload is touched.
///
/// A lossy reader that copied the payload meanwhile sees `seq` change and discards the copy.
#[inline]
pub fn begin_write(frame: &FrameHeader) {
    // Relaxed + Release fence: the fence orders this store before the payload stores that follow,
    // for any reader whose Acquire fence follows a load of one of those payload bytes.
    frame.seq.store(SEQ_EMPTY, Ordering::Relaxed);
    fence(Ordering::Release);
}

/// Writer: completes the slot header of frame `seq` (its payload already written).
#[inline]
pub fn end_write(frame: &FrameHeader, seq: u64, len: u32, flags: u32, crc: u32, timestamp: u64) {
    // Relaxed: made visible by the Release store of `seq` below.
    frame.timestamp_ns.store(timestamp, Ordering::Relaxed);
    frame.len.store(len, Ordering::Relaxed);
    frame.flags.store(flags, Ordering::Relaxed);
    frame.crc32c.store(crc, Ordering::Relaxed);
    // Release: a reader that loads `seq` (or `head`) with Acquire sees the payload and fields.
    frame.seq.store(seq, Ordering::Release);
}

/// Writer: publishes every frame below `new_head`. Returns true if a reader may be asleep and
/// must be woken with [`wake_readers`].
///
/// The store half of the Dekker handshake with a reader that increments `readers_waiting` and
/// then re-reads `head` before sleeping: either it sees the new head, or we see its increment.
/// Normally one plain store and one plain load (no locked instruction): the store-to-load order
/// comes from the sleeper's [`heavy_fence`] (`membarrier`) paired with our [`light_fence`]. The
/// load is of another line than the store (`readers_waiting` sits with `writer_waiting`, not with
/// `head`, since layout version 5), so it does not wait for `head`'s line to come back from a
/// reader polling it. Without membarrier, a SeqCst swap as in layout version 3.
#[inline(always)]
pub fn publish(hdr: &StreamHeader, new_head: u64) -> bool {
    if light_fences() {
        // Release: a reader that loads this head with Acquire sees the frames below it.
        hdr.head.store(new_head, Ordering::Release);
        light_fence();
        // Relaxed: ordered after the store by the asymmetric fence pair; it only gates wakes.
        return hdr.readers_waiting.load(Ordering::Relaxed) != 0;
    }
    // SeqCst swap (a single locked instruction on x86-64): Release for the frames, and the store
    // half of the handshake by itself.
    hdr.head.swap(new_head, Ordering::SeqCst);
    seqcst_store_load();
    hdr.readers_waiting.load(Ordering::SeqCst) != 0
}

/// Writer: bumps the readers' futex word; the caller then calls `futex_wake` on it.
#[inline]
pub fn wake_readers(hdr: &StreamHeader) {
    // Release: the wake-up carries nothing of its own; the sleeper re-reads `head` with Acquire.
    hdr.data_futex.fetch_add(1, Ordering::Release);
}

/// Reader (of entry `me`): announces that it is about to sleep on `data_futex`, returning the
/// futex value to sleep on. The caller must re-check `head` (and the writer state) with [`head`]
/// afterwards and call [`reader_wake_done`] when it stops waiting.
///
/// The announcement is counted in `readers_waiting` and marked in the entry's owner word, so
/// that whoever reclaims the entry of a reader that died asleep takes the count back.
#[inline]
pub fn reader_prepare_sleep(hdr: &StreamHeader, me: &ReaderEntry) -> u32 {
    // Acquire: read the futex word before announcing, so a wake after our announcement changes it.
    let word = hdr.data_futex.load(Ordering::Acquire);
    // SeqCst: the load half of the handshake in `publish`.
    hdr.readers_waiting.fetch_add(1, Ordering::SeqCst);
    entry::mark_asleep(me);
    // The heavy half of the asymmetric fence: a writer that published with a plain store has
    // either made it visible to our re-check of `head`, or will see our increment.
    heavy_fence();
    word
}

/// Reader: withdraws the announcement made by [`reader_prepare_sleep`] (unless a reclaimer took
/// it back already).
#[inline]
pub fn reader_wake_done(hdr: &StreamHeader, me: &ReaderEntry) {
    if entry::clear_asleep(me) {
        // Relaxed: the counter only gates wake-ups; a late decrement costs at most one spare wake.
        hdr.readers_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Lossless reader of a single-writer stream, waiting for frame `seq` (its position): true if the
/// frame is complete in `frame`, its slot, though `head` may not show it yet.
///
/// The writer stores `seq` last (Release, [`end_write`]), after the payload and the other header
/// fields and before it publishes `head`. A hint only: the reader still takes the frame once
/// `head` shows it (LAYOUT.md 4.5: a writer killed between the two stores leaves a frame that
/// readers polling `head` alone never deliver, so none may).
#[inline]
pub fn frame_ready(frame: &FrameHeader, seq: u64) -> bool {
    // Acquire: pairs with the writer's Release store of `seq`: we see the payload and fields.
    frame.seq.load(Ordering::Acquire) == seq
}

/// Reader: the number of frames published.
#[inline]
pub fn head(hdr: &StreamHeader) -> u64 {
    // SeqCst (a plain load on x86-64): Acquire for the frames, and part of the sleep handshake.
    hdr.head.load(Ordering::SeqCst)
}

/// Reader: releases every frame below `new_pos`. Returns true if the writer may be asleep waiting
/// for this much space and must be woken with [`wake_writer`].
///
/// The store half of the handshake with a writer that sets `writer_waiting` and then rescans
/// before sleeping; as in [`publish`], one plain store and one plain load when membarrier is
/// there, a SeqCst swap otherwise.
#[inline]
pub fn release(hdr: &StreamHeader, entry: &ReaderEntry, new_pos: u64) -> bool {
    if light_fences() {
        // Release: our reads of the released slots happen before the writer, which reuses them
        // only after loading this position, overwrites them.
        entry.pos.store(new_pos, Ordering::Release);
        light_fence();
        // Acquire for `writer_waiting` (a plain load on x86-64): a writer's announcement carries
        // its `space_wanted` store; the order after our store comes from the fence pair.
        return hdr.writer_waiting.load(Ordering::Acquire) != 0
            && new_pos >= hdr.space_wanted.load(Ordering::Relaxed);
    }
    // SeqCst swap: Release for our reads of the released slots, and the store half of the
    // handshake by itself.
    entry.pos.swap(new_pos, Ordering::SeqCst);
    seqcst_store_load();
    // Relaxed for `space_wanted`: the writer stores it before its SeqCst announcement, which our
    // SeqCst load of `writer_waiting` synchronises with.
    hdr.writer_waiting.load(Ordering::SeqCst) != 0
        && new_pos >= hdr.space_wanted.load(Ordering::Relaxed)
}

/// Reader (or anyone freeing space): bumps the writer's futex word; then call `futex_wake`.
#[inline]
pub fn wake_writer(hdr: &StreamHeader) {
    // Release: as in `wake_readers`.
    hdr.space_futex.fetch_add(1, Ordering::Release);
}

/// Writer: announces that it is about to sleep on `space_futex` until a reader releases frames up
/// to position `wanted` (at most `head`, so every reader can get there); returns the value to
/// sleep on. The caller must rescan afterwards and call [`writer_wake_done`] when it stops
/// waiting.
#[inline]
pub fn writer_prepare_sleep(hdr: &StreamHeader, wanted: u64) -> u32 {
    // Relaxed: published by the SeqCst swap of `writer_waiting` below.
    hdr.space_wanted.store(wanted, Ordering::Relaxed);
    // Acquire: as in `reader_prepare_sleep`.
    let word = hdr.space_futex.load(Ordering::Acquire);
    // SeqCst: the load half of the handshake in `release`.
    hdr.writer_waiting.swap(1, Ordering::SeqCst);
    // The heavy half of the asymmetric fence, as in `reader_prepare_sleep`.
    heavy_fence();
    word
}

/// Writer: withdraws the announcement made by [`writer_prepare_sleep`].
#[inline]
pub fn writer_wake_done(hdr: &StreamHeader) {
    // Relaxed: only gates wake-ups.
    hdr.writer_waiting.store(0, Ordering::Relaxed);
}

/// Reader: joins the stream at `start` with an entry it has claimed (as `claimed`) and filled in,
/// making sure the writer will not overwrite any frame at or after the returned position before
/// the reader has released it. Returns the position to start reading from (`>= start`).
///
/// `scan_in_flight` is called while the writer's scan counter is odd; it may wait a little and
/// returns false to give up waiting (e.g. the writer died mid-scan), in which case the last
/// published limit is used.
pub fn join(
    hdr: &StreamHeader,
    entry: &ReaderEntry,
    claimed: entry::Owner,
    start: u64,
    capacity: u64,
    scan_in_flight: impl FnMut() -> bool,
) -> u64 {
    join_cursor(
        hdr,
        &entry.pos,
        || entry::activate(entry, claimed),
        start,
        capacity,
        scan_in_flight,
    )
}

/// [`join`] for any cursor a scan reads: stores the cursor `pos` at `start`, calls `activate`
/// (a SeqCst store or read-modify-write that makes the scan count the cursor), then moves `pos`
/// past whatever the last scan that missed it let the writer overwrite.
fn join_cursor(
    hdr: &StreamHeader,
    entry_pos: &AtomicU64,
    activate: impl FnOnce(),
    start: u64,
    capacity: u64,
    mut scan_in_flight: impl FnMut() -> bool,
) -> u64 {
    let mut pos = start;
    // SeqCst: see `scan`: our cursor stores precede our `scan_seq` load in the total order.
    entry_pos.store(pos, Ordering::SeqCst);
    activate();
    seqcst_store_load();
    loop {
        // SeqCst: see `scan`.
        while hdr.scan_seq.load(Ordering::SeqCst) % 2 == 1 {
            if !scan_in_flight() {
                break;
            }
        }
        // Every scan that starts after this point sees our entry. A scan that missed us has
        // finished and published its limit; if that limit lets the writer overwrite frames at or
        // after `pos`, those frames are not ours to read: move to the first safe position.
        let limit = hdr.write_limit.load(Ordering::SeqCst);
        // Saturating: an adopting member's `pos` comes from another entry (see `group::adopt`).
        if limit <= pos.saturating_add(capacity) {
            return pos;
        }
        pos = limit - capacity;
        // SeqCst: as the first store; a scan that sees the old, lower position is only more
        // cautious.
        entry_pos.store(pos, Ordering::SeqCst);
    }
}
