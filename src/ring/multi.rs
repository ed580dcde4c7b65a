//! Multi-writer streams: the writer's side of the claim/publish protocol
//! ([`protocol::multi`](super::protocol::multi)), and the repair of writers that die.
//!
//! A [`Writer`](super::Writer) of a stream created with `max_writers > 1` delegates here. It owns
//! an entry of the stream's writer table, claimed by one compare-and-swap of the entry's owner
//! word that records its pid (see [`protocol::entry`]), so its death can be detected from the
//! first instant. It claims one sequence number per frame, stamps its slot when the frame is
//! complete, and moves `head` over every stamped slot it finds. Readers are unchanged but for two
//! things: they step over skipped sequence numbers, and they judge the end of the stream by
//! `writer_count`.
//!
//! A writer that dies holding a claimed but unpublished number would stop `head` (and so every
//! reader and, through the write limit, every writer) for good. Whoever notices that a writer died
//! — a reader finding no frame, a writer waiting for space or for a free entry — repairs the
//! stream under the table lock: the dead writer's number is stamped as skipped (readers are told
//! through `FrameInfo::missed`), a scan it held is ended, and its entry is freed by a
//! compare-and-swap from the exact owner word judged dead (a free bumps the entry's generation,
//! so a stale repairer never frees the entry's next owner).

use super::lock::TableLock;
use super::protocol::entry::{self, Owner};
use super::protocol::{self, multi};
use super::{group, policy, tables, Backpressure, Shared};
use crate::error::{Error, Result};
use crate::layout::{
    SEQ_EMPTY, WRITER_ACTIVE, WRITER_CLOSED, WRITER_COUNT_CLOSED, WRITER_COUNT_DEAD,
    WRITER_ENTRY_ACTIVE, WRITER_ENTRY_CLAIMING, WRITER_ENTRY_FREE, WRITER_NONE,
};
use crate::liveness::{Patience, ProcessId, PATIENCE};
use crate::sync::Ordering;
use crate::wait::{futex_wait, futex_wake, Deadline, Step, WaitStrategy};
use std::time::Instant;

/// Polls of `scan_seq` while another writer scans, before using the limit it had published.
const SCAN_POLLS: u32 = 256;

/// The state of one writer of a multi-writer stream.
#[derive(Debug)]
pub(crate) struct MultiWriter {
    /// Our entry in the writer table.
    index: u32,
    /// Our entry's owner word (active), from which we free it.
    owner: Owner,
    /// We may claim sequence numbers below this (from the last scan we saw).
    limit: u64,
    capacity: u64,
    /// Reader entries a scan looks at (none under `DropOldest`).
    scan_readers: u32,
    /// Group records a scan looks at (none under `DropOldest`).
    scan_groups: u32,
    frames_written: u64,
    /// When to check that the readers and writers holding us back are alive (see [`Patience`]).
    patience: Patience,
}

impl MultiWriter {
    /// Attaches a writer: takes a free entry of the writer table (reclaiming the entries of dead
    /// writers if none is free) and counts itself in `writer_count`.
    pub(crate) fn attach(
        shared: &Shared,
        scan_readers: u32,
        scan_groups: u32,
    ) -> Result<MultiWriter> {
        let hdr = shared.header();
        let name = shared.name();
        // Relaxed: a sanity check of values another process may have damaged.
        let (head, claimed) = (
            hdr.head.load(Ordering::Relaxed),
            hdr.claim_seq.load(Ordering::Relaxed),
        );
        if head > super::MAX_HEAD || claimed > super::MAX_HEAD {
            return Err(Error::corrupt(format!(
                "stream {name:?}: head {head} or claim_seq {claimed} is impossibly large"
            )));
        }
        let me = ProcessId::current();
        let (index, claimed) = claim_entry(shared, me.pid)?;
        let entry = shared.writer_entry(index);
        // Relaxed: published by the SeqCst activation below. Until then a repairer judges us by
        // the pid in our claimed owner word alone and ignores these fields.
        entry.claim.store(SEQ_EMPTY, Ordering::Relaxed);
        entry.scan.store(SEQ_EMPTY, Ordering::Relaxed);
        entry.frames_written.store(0, Ordering::Relaxed);
        entry.bytes_written.store(0, Ordering::Relaxed);
        entry.start_time.store(me.start_time, Ordering::Relaxed);
        if let Err(count) = multi::count_attach(hdr) {
            tables::free_writer(shared, index, claimed);
            let why = if count & WRITER_COUNT_CLOSED != 0 {
                "its last writer closed it: readers were told END_OF_STREAM"
            } else {
                "every writer it had died: readers were told WRITER_DEAD"
            };
            return Err(Error::WrongState(format!(
                "stream {name:?} has ended ({why}); an ended stream stays ended, create a new \
                 stream to write again"
            )));
        }
        entry::activate(entry, claimed);
        // SeqCst: the stream has (had) a writer: readers now tell "all writers died" from "none
        // came yet". Failure: another writer got there first.
        let _ = hdr.writer_state.compare_exchange(
            WRITER_NONE,
            WRITER_ACTIVE,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        Ok(MultiWriter {
            index,
            owner: claimed.moved(WRITER_ENTRY_ACTIVE),
            limit: 0,
            capacity: shared.geo.capacity as u64,
            scan_readers,
            scan_groups,
            frames_written: 0,
            patience: Patience::default(),
        })
    }

    /// Claims the next sequence number once the write limit allows it, waiting for space as the
    /// policy and `deadline` say.
    #[inline]
    pub(crate) fn claim(
        &mut self,
        shared: &Shared,
        deadline: Deadline,
        policy: Backpressure,
        wait: WaitStrategy,
    ) -> Result<u64> {
        let hdr = shared.header();
        let me = shared.writer_entry(self.index);
        let mut seq = multi::next_claim(hdr);
        loop {
            if seq < self.limit {
                match multi::try_claim(hdr, me, seq) {
                    Ok(()) => return Ok(seq),
                    // Another writer took it: try the next one.
                    Err(next) => {
                        seq = next;
                        continue;
                    }
                }
            }
            if !self.refresh(shared, seq)? {
                if !deadline.may_wait() || !policy.waits() {
                    // Held back all the same: dead peers must not hold a `try_` loop for ever.
                    if self.patience.due(seq) {
                        self.repair_peers(shared);
                        if self.refresh(shared, multi::next_claim(hdr))? {
                            seq = multi::next_claim(hdr);
                            continue;
                        }
                    }
                    return Err(Error::Full);
                }
                self.wait_for_space(shared, deadline, wait)?;
            }
            seq = multi::next_claim(hdr);
        }
    }

    /// Publishes what can be published after we stamped frames, waking sleepers, and updates our
    /// counters (`frames` more frames, `bytes_written` payload bytes in all).
    #[inline]
    pub(crate) fn publish(&mut self, shared: &Shared, frames: u64, bytes_written: u64) {
        publish_stamped(shared);
        self.frames_written += frames;
        let entry = shared.writer_entry(self.index);
        // Relaxed: statistics for monitors.
        entry
            .frames_written
            .store(self.frames_written, Ordering::Relaxed);
        entry.bytes_written.store(bytes_written, Ordering::Relaxed);
    }

    /// Gives up claimed sequence number `seq` (an aborted reservation): it cannot be handed back,
    /// so it is published as skipped.
    pub(crate) fn give_up(&mut self, shared: &Shared, seq: u64, bytes_written: u64) {
        // Relaxed: a statistic; counted before the stamp (a Release store), so a monitor that
        // sees `head` pass the number sees it counted.
        shared
            .header()
            .frames_skipped
            .fetch_add(1, Ordering::Relaxed);
        multi::skip(shared.slot(seq).0, seq);
        // Not a frame: our own count stays as it was.
        self.publish(shared, 0, bytes_written);
    }

    /// Leaves the stream; the last writer to leave ends it. Writers that died before us are
    /// repaired first, so that when we are the last live writer the stream ends with
    /// END_OF_STREAM rather than with a dead writer's WRITER_DEAD later.
    pub(crate) fn close(&mut self, shared: &Shared, bytes_written: u64) {
        repair(shared);
        let hdr = shared.header();
        let entry = shared.writer_entry(self.index);
        // No longer active before we take ourselves off `writer_count`: a repairer takes only
        // active entries off the count, so if we are killed anywhere below it never takes us off
        // a second time (which could end the stream under live writers); a count we leave
        // behind is ended by `end_abandoned`. If the entry is no longer ours (we were taken for
        // dead), whoever freed it already took us off the count and folded in our bytes.
        let leaving = self.owner.moved(WRITER_ENTRY_CLAIMING);
        if !entry::transition(hdr, entry, self.owner, WRITER_ENTRY_CLAIMING) {
            return;
        }
        // Our frames are published (see `advance_head`); fold our byte count into the stream's,
        // since our entry's counters go with it.
        // Relaxed: statistics.
        entry.bytes_written.store(0, Ordering::Relaxed);
        hdr.bytes_written
            .fetch_add(bytes_written, Ordering::Relaxed);
        // Counts left with every other entry free are those of writers killed while attaching
        // or leaving: they died before we closed, so we are the last to leave.
        let ended = multi::count_leave(hdr, true)
            || end_abandoned(shared, Some(self.index), WRITER_COUNT_CLOSED);
        tables::free_writer(shared, self.index, leaving);
        if ended {
            end_stream(shared);
        }
    }

    /// Refreshes our limit from the last scan, or scans; true if `seq` may now be claimed.
    fn refresh(&mut self, shared: &Shared, seq: u64) -> Result<bool> {
        let hdr = shared.header();
        let limit = multi::write_limit(hdr);
        if seq < limit && limit <= seq.saturating_add(self.capacity) {
            self.limit = limit;
            return Ok(true);
        }
        // `seq` may be stale (other writers claim and publish meanwhile), so the sanity check
        // reads `claim_seq` afresh between two loads of `head`: `head` never passes `claim_seq`,
        // and `claim_seq` never passes a ring beyond `head`, at every instant.
        let head_before = protocol::head(hdr);
        // SeqCst: ordered between the two loads of `head`.
        let claimed = hdr.claim_seq.load(Ordering::SeqCst);
        let head = protocol::head(hdr);
        if head > super::MAX_HEAD || claimed < head_before || claimed > head + self.capacity {
            return Err(Error::corrupt(format!(
                "stream {:?}: claim_seq {claimed} is not within a ring of head {head}",
                shared.name()
            )));
        }
        let groups = (0..self.scan_groups).map(|g| shared.group(g));
        let entries = (0..self.scan_readers).map(|i| shared.entry(i));
        let me = shared.writer_entry(self.index);
        self.limit = match multi::try_scan(hdr, me, groups, entries, self.capacity) {
            Some(scan) => scan.limit,
            None => {
                // Another writer is scanning (a few hundred nanoseconds): use its result.
                // SeqCst: as in the joining reader's wait.
                let busy = hdr.scan_seq.load(Ordering::SeqCst);
                for _ in 0..SCAN_POLLS {
                    if hdr.scan_seq.load(Ordering::SeqCst) != busy {
                        break;
                    }
                    crate::sync::spin_hint();
                }
                multi::write_limit(hdr)
            }
        };
        Ok(seq < self.limit)
    }

    #[cold]
    fn wait_for_space(
        &mut self,
        shared: &Shared,
        deadline: Deadline,
        wait: WaitStrategy,
    ) -> Result<()> {
        let started = Instant::now();
        let result = self.wait_for_space_inner(shared, deadline, wait);
        let hdr = shared.header();
        // Relaxed: statistics shared by every writer.
        hdr.wait_count.fetch_add(1, Ordering::Relaxed);
        hdr.wait_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result
    }

    /// Waits until the next sequence number to claim is below the write limit: readers release
    /// frames, or `head` moves (a slow writer publishes, or a dead one is repaired).
    fn wait_for_space_inner(
        &mut self,
        shared: &Shared,
        deadline: Deadline,
        wait: WaitStrategy,
    ) -> Result<()> {
        let hdr = shared.header();
        let mut spins = 0u32;
        loop {
            let seq = multi::next_claim(hdr);
            if self.refresh(shared, seq)? {
                return Ok(());
            }
            if self.patience.due(seq) {
                // Nothing moved for a while (in this call or earlier ones): dead readers or
                // writers may be in the way.
                self.repair_peers(shared);
                continue;
            }
            let slice = match wait.next_step(&mut spins, &deadline) {
                Step::Poll => continue,
                Step::CheckLiveness => {
                    self.repair_peers(shared);
                    continue;
                }
                Step::TimedOut => return Err(Error::Timeout),
                Step::Sleep(slice) => slice,
            };
            // Hysteresis as for a single writer: wake once a quarter of the ring is free.
            let (wanted, slice) =
                policy::space_wanted(seq, protocol::head(hdr), self.capacity, slice);
            let word = multi::writer_prepare_sleep(hdr, wanted);
            if self.refresh(shared, multi::next_claim(hdr))? {
                multi::writer_wake_done(hdr);
                return Ok(());
            }
            futex_wait(&hdr.space_futex, word, slice.min(PATIENCE));
            multi::writer_wake_done(hdr);
        }
    }

    /// Frees dead lossless readers and repairs dead writers.
    fn repair_peers(&self, shared: &Shared) {
        group::reclaim_dead_readers(shared, true);
        repair(shared);
    }
}

/// Moves `head` over the stamped slots at it and wakes whoever waits for that.
fn publish_stamped(shared: &Shared) {
    let hdr = shared.header();
    let capacity = shared.geo.capacity as u64;
    if let Some(advance) = multi::advance_head(hdr, capacity, |seq| shared.slot(seq).0) {
        if advance.wake_readers {
            super::wake_all_readers(hdr);
        }
        if advance.wake_writers {
            protocol::wake_writer(hdr);
            futex_wake(&hdr.space_futex, i32::MAX);
        }
    }
}

/// Marks the stream ended (after `count_leave` moved `writer_count` to closed) and wakes readers.
fn end_stream(shared: &Shared) {
    let hdr = shared.header();
    // SeqCst: after the last writer's publications and the count, as for a single writer.
    hdr.writer_state.store(WRITER_CLOSED, Ordering::SeqCst);
    super::wake_all_readers(hdr);
}

/// Takes a free writer entry for process `pid` (state CLAIMING, `pid` recorded in the same
/// compare-and-swap), reclaiming dead writers' entries if none is free.
fn claim_entry(shared: &Shared, pid: u32) -> Result<(u32, Owner)> {
    for pass in 0..2 {
        if let Some(found) = tables::claim_writer(shared, pid) {
            return Ok(found);
        }
        if pass == 0 {
            repair(shared);
        }
    }
    Err(Error::TooManyWriters(format!(
        "stream {:?} already has its maximum of {} live writers; create it with a larger \
         max_writers",
        shared.name(),
        shared.geo.max_writers
    )))
}

/// Repairs the damage of writers that died: stamps a sequence number a dead writer claimed but
/// never published as skipped, ends a scan it held, and frees its entry. Cheap when every writer
/// is alive (one look at `/proc` per attached writer, no lock). Returns true if it freed a writer
/// or ended the stream.
pub(crate) fn repair(shared: &Shared) -> bool {
    if !shared.multi_writer() {
        return false;
    }
    if !tables::writers(shared).iter().any(|w| !w.alive) {
        return end_abandoned(shared, None, WRITER_COUNT_DEAD);
    }
    let Some(_lock) = TableLock::take(shared) else {
        return false;
    };
    let hdr = shared.header();
    // Again under the lock: another process may have repaired them meanwhile.
    let seen = tables::writers(shared);
    // SeqCst: the loads that pair with the claimants' intents (see `multi::try_claim`).
    let head = hdr.head.load(Ordering::SeqCst);
    let claimed = hdr.claim_seq.load(Ordering::SeqCst);
    let scan_seq = hdr.scan_seq.load(Ordering::SeqCst);
    let mut freed = false;
    for dead in seen.iter().filter(|w| !w.alive) {
        if scan_seq % 2 == 1
            && dead.scan == scan_seq - 1
            && !seen.iter().any(|w| w.alive && w.scan == dead.scan)
        {
            multi::break_scan(hdr, dead.scan);
        }
        let c = dead.claim;
        // The number this writer claimed last may be unpublished.
        if head <= c && c < claimed && shared.slot(c).0.seq.load(Ordering::SeqCst) != c {
            if seen.iter().any(|w| w.alive && w.claim == c) {
                // A live writer has the same intent: it holds the number (and will publish it),
                // or it lost it to the dead one. Only its next intent tells which (a writer
                // clears a lost intent, see `multi::try_claim`), so the entry, and what it tells,
                // is kept for a later repair: freed now, the number could be lost for good.
                continue;
            }
            // Relaxed: a statistic, counted before the stamp (see `give_up`).
            hdr.frames_skipped.fetch_add(1, Ordering::Relaxed);
            multi::skip(shared.slot(c).0, c);
        }
        let entry = shared.writer_entry(dead.index);
        // Relaxed: statistics.
        let bytes = entry.bytes_written.swap(0, Ordering::Relaxed);
        hdr.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        // From exactly the word judged dead (nobody else frees a dead writer's entry while we
        // hold the lock, so this only fails on damage).
        if !tables::free_writer(shared, dead.index, dead.owner) {
            continue;
        }
        // Only an active entry is surely counted: an attaching writer counts itself just before
        // it becomes active, a leaving one takes itself off just after it stops being active
        // (one dying in between leaves a count nobody takes off: see `end_abandoned`).
        if dead.owner.state() == WRITER_ENTRY_ACTIVE {
            multi::count_leave(hdr, false);
        }
        // Relaxed: a statistic.
        hdr.writers_reclaimed.fetch_add(1, Ordering::Relaxed);
        freed = true;
    }
    publish_stamped(shared);
    if freed {
        // Readers asleep may now have frames, or learn that every writer died.
        super::wake_all_readers(hdr);
    }
    // A writer that died between counting itself and activating its entry was freed above
    // without being taken off the count.
    end_abandoned(shared, None, WRITER_COUNT_DEAD) || freed
}

/// Ends the stream (`writer_count` becomes `end`: `WRITER_COUNT_DEAD`, or `WRITER_COUNT_CLOSED`
/// for the closing writer whose entry is `ours`) if `writer_count` still counts writers although
/// every other writer entry is free: the count of a writer that died between counting itself and
/// activating its entry (or a damaged count). Without this its readers would wait for ever.
/// Returns true if it ended the stream. A `WRITER_COUNT_DEAD` end wakes the readers here; the
/// closing writer ends its stream itself (`end_stream`).
fn end_abandoned(shared: &Shared, ours: Option<u32>, end: u32) -> bool {
    let hdr = shared.header();
    // SeqCst: a writer claims its entry before it counts itself, so if we see its count we see
    // its entry taken; one that counts itself after this load makes the swap below fail.
    let count = hdr.writer_count.load(Ordering::SeqCst);
    if count == 0 || count & multi::WRITER_COUNT_ENDED != 0 {
        return false;
    }
    let taken = (0..shared.geo.writer_entries).any(|i| {
        // SeqCst: see above.
        Some(i) != ours
            && entry::owner(shared.writer_entry(i), Ordering::SeqCst).state() != WRITER_ENTRY_FREE
    });
    // SeqCst: see `multi::count_attach`.
    if taken
        || hdr
            .writer_count
            .compare_exchange(count, end, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
    {
        return false;
    }
    if end == WRITER_COUNT_DEAD {
        super::wake_all_readers(hdr);
    }
    true
}

/// Whether any writer of the multi-writer stream is alive, or none has attached yet.
pub(crate) fn any_writer_alive(shared: &Shared) -> bool {
    // Acquire: pairs with the first writer's SeqCst store of ACTIVE.
    shared.header().writer_state.load(Ordering::Acquire) == WRITER_NONE
        || tables::writers(shared).iter().any(|w| w.alive)
}

/// What a reader with no frame left is told about the writers of a multi-writer stream:
/// `EndOfStream` once the last writer closed, `WriterDead` once every writer that attached is gone
/// and the last one died, `None` while writers may still write. Both outcomes are final: the
/// count that records them never changes again (`multi::count_attach`).
pub(crate) fn writers_gone(shared: &Shared) -> Option<Error> {
    // SeqCst: after the last writer's publications (see `multi::count_leave`).
    let count = shared.header().writer_count.load(Ordering::SeqCst);
    if count & WRITER_COUNT_CLOSED != 0 {
        Some(Error::EndOfStream)
    } else if count & WRITER_COUNT_DEAD != 0 {
        Some(Error::WriterDead)
    } else {
        None
    }
}

/// Ends a multi-writer stream for writers that are gone: the writer whose process `exited` (it
/// exited cleanly without closing) counts as closed, dead writers are repaired, and if no writer is
/// left the stream ends (`END_OF_STREAM` for readers). Used by the pipeline runner when the last
/// writer task of a stream has exited. Returns true if it ended the stream.
pub(crate) fn close_abandoned(shared: &Shared, exited: Option<u32>) -> bool {
    repair(shared);
    if let Some(pid) = exited {
        if let Some(_lock) = TableLock::take(shared) {
            for w in tables::writers(shared) {
                if w.owner.pid() != pid {
                    continue;
                }
                let entry = shared.writer_entry(w.index);
                // A writer that exited holding a number never publishes it.
                let hdr = shared.header();
                // SeqCst: as in `repair`.
                let head = hdr.head.load(Ordering::SeqCst);
                let claimed = hdr.claim_seq.load(Ordering::SeqCst);
                if head <= w.claim
                    && w.claim < claimed
                    && shared.slot(w.claim).0.seq.load(Ordering::SeqCst) != w.claim
                {
                    // Relaxed: a statistic, counted before the stamp (see `give_up`).
                    hdr.frames_skipped.fetch_add(1, Ordering::Relaxed);
                    multi::skip(shared.slot(w.claim).0, w.claim);
                }
                // Relaxed: statistics.
                let bytes = entry.bytes_written.swap(0, Ordering::Relaxed);
                hdr.bytes_written.fetch_add(bytes, Ordering::Relaxed);
                let ended = tables::free_writer(shared, w.index, w.owner)
                    && w.owner.state() == WRITER_ENTRY_ACTIVE
                    && multi::count_leave(hdr, true);
                publish_stamped(shared);
                if ended {
                    end_stream(shared);
                    return true;
                }
            }
        }
    }
    if multi::count_close_empty(shared.header()) {
        end_stream(shared);
        return true;
    }
    false
}
