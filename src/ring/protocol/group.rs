//! The claim protocol of reader groups (`docs/LAYOUT.md` section 4.15).
//!
//! The members of a group share one cursor, the group record's `next`: every frame below it has
//! been handed to a member. A member that holds no frame claims the frames `[next, end)` by
//! recording them in its reader entry (`held_end`, then `pos`) and then moving `next` from `next`
//! to `end` with a compare-and-swap; it releases them as a plain reader does, by moving its `pos`
//! (to [`POS_IDLE`] once it holds nothing). The writer's scan reads the group's `next` before the
//! members' positions (see `lowest_position`), so every frame is held
//! back either by `next` (not handed out yet) or by the position of the member holding it.
//!
//! A member that dies holding frames is *orphaned* (under the table lock): its entry keeps holding
//! the writer back until another member of the group [`adopt`]s its frames and delivers them again.

use super::join_cursor;
use crate::layout::{GroupRecord, ReaderEntry, StreamHeader, GROUP_ACTIVE, POS_IDLE};
use crate::sync::Ordering;

/// Outcome of [`try_claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The member now holds frames `start..end` (all published).
    Got {
        /// First frame claimed.
        start: u64,
        /// One past the last frame claimed.
        end: u64,
    },
    /// Every published frame has been handed out.
    Empty,
    /// The group's `next` is impossible: beyond `head`, or more than a ring behind it.
    Corrupt {
        /// The value of `next` found.
        next: u64,
        /// The value of `head` it was compared with.
        head: u64,
    },
}

/// Member: claims up to `want` (at least 1) published frames of its group. The member must hold
/// no frame (its entry's `pos` is [`POS_IDLE`]); on [`Claim::Empty`] it still holds none.
///
/// Also returns whether the writer may be asleep waiting for a position the member recorded and
/// then gave up (a claim lost to another member): the caller must then wake it with
/// [`wake_writer`](super::wake_writer), as after a release.
pub fn try_claim(
    hdr: &StreamHeader,
    group: &GroupRecord,
    me: &ReaderEntry,
    want: u64,
    capacity: u64,
) -> (Claim, bool) {
    debug_assert!(want >= 1);
    // SeqCst: loaded before `head`, so a `next` beyond the `head` loaded after it is damage (and,
    // as Acquire, it carries the `head` the member that moved it had seen).
    let mut next = group.next.load(Ordering::SeqCst);
    let mut intent = false;
    let mut wake = false;
    loop {
        // SeqCst: Acquire for the frames we are about to claim.
        let head = hdr.head.load(Ordering::SeqCst);
        if next >= head {
            if intent {
                // Withdraw the intent of a claim we lost, so we do not hold the writer: a release
                // (the writer may have gone to sleep because of it).
                wake |= super::release(hdr, me, POS_IDLE);
            }
            let claim = if next > head {
                Claim::Corrupt { next, head }
            } else {
                Claim::Empty
            };
            return (claim, wake);
        }
        let end = next + want.min(head - next);
        // The intent precedes the claim: a scan whose load of `next` sees the claim (or a later
        // claim, which continues its release sequence) synchronises with it, so its later load
        // of our position sees the intent. `held_end` is read only by a member adopting our
        // frames after we died or left, which our later SeqCst stores (or our death) precede:
        // Relaxed. Its order with `pos` decides what a death between the two leaves for
        // adoption, `[pos, held_end)`, which must never span frames we did not try to claim.
        if intent {
            // A later intent moves our position up past frames we lost (a release), before the
            // new end: dying in between leaves `[next, old end)`, part of the intent we lost (at
            // most `want - 1` frames other members got), not the whole way from the old intent
            // to the new end.
            wake |= super::release(hdr, me, next);
            me.held_end.store(end, Ordering::Relaxed);
        } else {
            // The end first: dying in between leaves `pos == IDLE`, nothing to adopt (whereas a
            // position with the `held_end` of our join or last claim could span frames we never
            // tried to claim).
            me.held_end.store(end, Ordering::Relaxed);
            // Relaxed: published by the compare-and-swap (Release) below, as said above.
            me.pos.store(next, Ordering::Relaxed);
        }
        intent = true;
        // SeqCst: see above; on failure, as the first load of `next`.
        match group
            .next
            .compare_exchange(next, end, Ordering::SeqCst, Ordering::SeqCst)
        {
            // `next` did not move between our load of `head` and the claim, and the writer never
            // gets more than a ring ahead of it: a larger gap is damage.
            Ok(_) if head - next > capacity => return (Claim::Corrupt { next, head }, wake),
            Ok(_) => return (Claim::Got { start: next, end }, wake),
            // Another member claimed from there: try again from where it stopped.
            Err(now) => next = now,
        }
    }
}

/// Member (under the table lock): takes over the frames an orphaned entry of its group holds.
/// The member must hold no frame. Returns the frames it now holds (`start..end`, possibly empty);
/// the caller then frees the orphaned entry, which no longer holds anything the member does not.
///
/// The orphan's `[pos, held_end)` is clipped to `next` (frames past it were never handed out) and
/// to `head`, and `start` is moved past any frame the writer may already have overwritten: a
/// member that died between recording a claim and winning it left an *intent* for frames another
/// member got, which nothing protected before the intent was stored. Frames a member won are
/// never overwritten (see [`try_claim`]), so they are all adopted. `scan_in_flight` is as for
/// [`join`](super::join).
pub fn adopt(
    hdr: &StreamHeader,
    group: &GroupRecord,
    me: &ReaderEntry,
    orphan: &ReaderEntry,
    capacity: u64,
    scan_in_flight: impl FnMut() -> bool,
) -> (u64, u64) {
    // SeqCst: the orphan was stored by its owner before it died or left; `next` and `head` after
    // it, so the clipping bounds are at least as recent.
    let start = orphan.pos.load(Ordering::SeqCst);
    // Relaxed: see `try_claim`.
    let held_end = orphan.held_end.load(Ordering::Relaxed);
    // SeqCst: as in `try_claim`.
    let next = group.next.load(Ordering::SeqCst);
    let head = hdr.head.load(Ordering::SeqCst);
    let end = held_end.min(next).min(head);
    if start >= end {
        return (end, end);
    }
    // Relaxed: as in `try_claim`.
    me.held_end.store(end, Ordering::Relaxed);
    // Hold the frames ourselves (the orphan still holds them too) and move past any the writer
    // was allowed to overwrite before anyone held them.
    // The member is active already: a SeqCst read-modify-write of its owner word that changes
    // nothing stands where a joining reader's activation stands.
    let start = join_cursor(
        hdr,
        &me.pos,
        || {
            // SeqCst: see `join_cursor`.
            me.owner.fetch_or(0, Ordering::SeqCst);
        },
        start,
        capacity,
        scan_in_flight,
    );
    if start >= end {
        // As the withdrawal in `try_claim`; the caller (under the table lock) wakes the writer in
        // any case.
        super::release(hdr, me, POS_IDLE);
        return (end, end);
    }
    (start, end)
}

/// First member (under the table lock): activates the group record at `start` (its other fields
/// already written) as a reader joins (see [`join`](super::join)), so the writer never overwrites
/// a frame at or after the returned position before the group has handed it out.
pub fn join(
    hdr: &StreamHeader,
    group: &GroupRecord,
    start: u64,
    capacity: u64,
    scan_in_flight: impl FnMut() -> bool,
) -> u64 {
    join_cursor(
        hdr,
        &group.next,
        || {
            // SeqCst: see `join_cursor`.
            group.state.store(GROUP_ACTIVE, Ordering::SeqCst)
        },
        start,
        capacity,
        scan_in_flight,
    )
}
