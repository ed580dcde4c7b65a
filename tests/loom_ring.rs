//! Model checks of the stream protocol (`shmline::__private::protocol`) with loom.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --profile loom --test loom_ring
//! ```
//!
//! Under `--cfg loom` the layout structs are built from loom's atomics (see `src/sync.rs`), so the
//! very functions the real writer and readers call run here on headers that live on the heap,
//! and loom explores every interleaving (and every value a weak memory model lets a load see)
//! within a preemption bound.
//!
//! Payloads are `loom::cell::UnsafeCell`s rather than atomics: the real ring copies payloads with
//! plain `memcpy`, and loom reports any write to a cell that is not ordered after every earlier
//! read of it (and any read not ordered after the last write). So "the writer never overwrites a
//! frame a lossless reader still needs" is checked as a data race, on top of the value checks.
//!
//! Sleeping is modelled with a loom mutex and condition variable standing in for the kernel's
//! futex queue (see [`Futex`]): a lost wake-up leaves a thread blocked for ever, which loom
//! reports as a deadlock.
//!
//! Each test has its own preemption bound, chosen so the file runs in well under a minute in
//! release; `LOOM_MAX_PREEMPTIONS` overrides them all for a deeper (slower) search.
//!
//! loom treats SeqCst loads and stores as only AcqRel, so the protocol's store-then-load
//! handshakes would fail here although they are correct; `shmline::__private::sync::seqcst_store_load`
//! inserts, under loom only, the SeqCst fence that gives loom the same ordering.
//!
//! Since layout version 4 the publisher's side of the sleep handshakes (`protocol::publish`,
//! `protocol::release`) is a plain Release store, the *light* half of an asymmetric fence (no
//! instruction at run time) and a plain load; the sleeper pays the *heavy* half (`membarrier`)
//! after its announcement (`shmline::sync::{light_fence, heavy_fence}`). The pair guarantees what
//! two SeqCst fences would, and that is how loom sees them: under loom both halves are SeqCst
//! fences and `light_fences()` is true, so every test here checks the version 4 protocol (the
//! SeqCst-swap fallback for a process without membarrier is the version 3 protocol these tests
//! checked before).
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use shmline::__private::layout::{
    FrameHeader, GroupRecord, ReaderEntry, StreamHeader, WriterEntry, FRAME_STATUS_SKIPPED,
    GROUP_ACTIVE, OWNER_ASLEEP, OWNER_PID_SHIFT, POS_IDLE, READER_ACTIVE, READER_FREE,
    READER_ORPHANED, SEQ_EMPTY, WRITER_CLOSED,
};
use shmline::__private::protocol;
use shmline::__private::protocol::group::Claim;
use std::sync::atomic::Ordering;

/// A slot: the shared frame header and a payload of one `u64`.
struct Slot {
    frame: FrameHeader,
    payload: UnsafeCell<u64>,
}

/// A ring on the heap: header, reader table and slots, as one segment would hold them, plus the
/// kernel's side of the two futex words.
struct Ring {
    hdr: StreamHeader,
    groups: Vec<GroupRecord>,
    entries: Vec<ReaderEntry>,
    slots: Vec<Slot>,
    capacity: u64,
    data_sleepers: Futex,
    space_sleepers: Futex,
}

/// The kernel's wait queue of one futex word: `wait` checks the word and goes to sleep as one
/// step (the lock), `wake` wakes every sleeper. A waiter nobody wakes is a deadlock, which loom
/// reports with the blocked threads. (The real waits also end after a time slice; the model
/// proves the protocol never needs that.)
struct Futex {
    queue: Mutex<()>,
    wakeups: Condvar,
}

impl Futex {
    fn new() -> Futex {
        Futex {
            queue: Mutex::new(()),
            wakeups: Condvar::new(),
        }
    }

    /// `futex_wait(word, expected)` without a timeout.
    fn wait(&self, word: &AtomicU32, expected: u32) {
        let mut queued = self.queue.lock().unwrap();
        // Relaxed: the queue lock orders this load after the waker's bump, as the kernel's
        // futex hash-bucket lock does.
        while word.load(Ordering::Relaxed) == expected {
            queued = self.wakeups.wait(queued).unwrap();
        }
    }

    /// `futex_wake(word, all)`.
    fn wake(&self) {
        let _queued = self.queue.lock().unwrap();
        self.wakeups.notify_all();
    }
}

// SAFETY: every field but the payload cells is an atomic; the cells are accessed only as the
// protocol allows, and loom checks exactly that (it panics on an unordered access).
unsafe impl Sync for Ring {}

fn u64s<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

fn header() -> StreamHeader {
    StreamHeader {
        magic: AtomicU64::new(0),
        layout_version: AtomicU32::new(0),
        header_size: AtomicU32::new(0),
        segment_size: AtomicU64::new(0),
        capacity: AtomicU32::new(0),
        slot_size: AtomicU32::new(0),
        max_frame: AtomicU32::new(0),
        max_readers: AtomicU32::new(0),
        max_writers: AtomicU32::new(0),
        flags: AtomicU32::new(0),
        readers_offset: AtomicU64::new(0),
        slots_offset: AtomicU64::new(0),
        creator_pid: AtomicU32::new(0),
        _pad0: AtomicU32::new(0),
        creator_start_time: AtomicU64::new(0),
        created_unix_ns: AtomicU64::new(0),
        policy: AtomicU32::new(0),
        max_groups: AtomicU32::new(0),
        writers_offset: AtomicU64::new(0),
        groups_offset: AtomicU64::new(0),
        _reserved0: u64s(),
        dtype: std::array::from_fn(|_| AtomicU8::new(0)),
        ndim: AtomicU32::new(0),
        _pad1: AtomicU32::new(0),
        shape: u64s(),
        _reserved1: u64s(),
        head: AtomicU64::new(0),
        data_futex: AtomicU32::new(0),
        _pad2: AtomicU32::new(0),
        claim_seq: AtomicU64::new(0),
        _reserved2: u64s(),
        space_futex: AtomicU32::new(0),
        writer_waiting: AtomicU32::new(0),
        space_wanted: AtomicU64::new(0),
        readers_waiting: AtomicU32::new(0),
        _pad3: AtomicU32::new(0),
        _reserved3: u64s(),
        writer_state: AtomicU32::new(0),
        writer_pid: AtomicU32::new(0),
        writer_start_time: AtomicU64::new(0),
        scan_seq: AtomicU64::new(0),
        write_limit: AtomicU64::new(0),
        bytes_written: AtomicU64::new(0),
        wait_count: AtomicU64::new(0),
        wait_ns: AtomicU64::new(0),
        readers_reclaimed: AtomicU64::new(0),
        frames_dropped: AtomicU64::new(0),
        frames_skipped: AtomicU64::new(0),
        writers_reclaimed: AtomicU64::new(0),
        writer_count: AtomicU32::new(0),
        table_lock: AtomicU32::new(0),
        table_lock_start: AtomicU64::new(0),
        _reserved4: u64s(),
    }
}

/// A reader entry; `active` ones are lossless readers already joined at position 0.
fn entry(active: bool) -> ReaderEntry {
    ReaderEntry {
        pos: AtomicU64::new(0),
        owner: AtomicU64::new(if active { READER_ACTIVE as u64 } else { 0 }),
        flags: AtomicU32::new(0),
        group: AtomicU32::new(0),
        start_time: AtomicU64::new(0),
        frames_read: AtomicU64::new(0),
        bytes_read: AtomicU64::new(0),
        missed: AtomicU64::new(0),
        held_end: AtomicU64::new(0),
        _reserved: u64s(),
    }
}

fn slot() -> Slot {
    Slot {
        frame: FrameHeader {
            seq: AtomicU64::new(SEQ_EMPTY),
            timestamp_ns: AtomicU64::new(0),
            len: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            crc32c: AtomicU32::new(0),
            status: AtomicU32::new(0),
        },
        payload: UnsafeCell::new(0),
    }
}

impl Ring {
    fn new(capacity: u64, entries: Vec<ReaderEntry>) -> Arc<Ring> {
        Ring::with_groups(capacity, vec![], entries)
    }

    fn with_groups(
        capacity: u64,
        groups: Vec<GroupRecord>,
        entries: Vec<ReaderEntry>,
    ) -> Arc<Ring> {
        Arc::new(Ring {
            hdr: header(),
            groups,
            entries,
            slots: (0..capacity).map(|_| slot()).collect(),
            capacity,
            data_sleepers: Futex::new(),
            space_sleepers: Futex::new(),
        })
    }

    fn slot(&self, seq: u64) -> &Slot {
        &self.slots[(seq % self.capacity) as usize]
    }

    /// The writer's loop for one frame, as `Writer::write` does it: claim (rescanning while the
    /// ring is full: waiting by sleeping has its own tests), mark the slot, fill it, complete it,
    /// publish, wake sleepers if told to.
    /// `before_fill` sees the sequence number about to be written (for extra assertions).
    fn write(&self, head: &mut u64, limit: &mut u64, before_fill: impl Fn(u64)) {
        let seq = *head;
        while seq >= *limit {
            *limit = protocol::scan(
                &self.hdr,
                self.groups.iter(),
                self.entries.iter(),
                seq,
                self.capacity,
            )
            .limit;
            if seq >= *limit {
                thread::yield_now();
            }
        }
        let slot = self.slot(seq);
        protocol::begin_write(&slot.frame);
        before_fill(seq);
        // SAFETY: the protocol gives the writer this slot; loom checks the claim.
        slot.payload.with_mut(|p| unsafe { *p = payload_of(seq) });
        protocol::end_write(&slot.frame, seq, 8, 0, 0, 0);
        *head = seq + 1;
        if protocol::publish(&self.hdr, seq + 1) {
            protocol::wake_readers(&self.hdr);
            self.data_sleepers.wake();
        }
    }

    /// A lossless reader reads frame `pos` once it is published, checks it, and releases it.
    /// `before_release` runs after the payload has been read.
    fn read(&self, entry: &ReaderEntry, pos: u64, before_release: impl Fn()) -> u64 {
        let head = loop {
            let head = protocol::head(&self.hdr);
            if head > pos {
                break head;
            }
            thread::yield_now();
        };
        assert!(
            head <= pos + self.capacity,
            "head {head} is more than a ring ahead of lossless reader at {pos}"
        );
        let slot = self.slot(pos);
        // Acquire as `Reader::validate` loads it.
        assert_eq!(slot.frame.seq.load(Ordering::Acquire), pos, "slot seq");
        // Relaxed as `Reader::validate` loads it.
        assert_eq!(slot.frame.len.load(Ordering::Relaxed), 8, "slot len");
        // SAFETY: the frame is published and not yet released; loom checks the claim.
        let payload = slot.payload.with(|p| unsafe { *p });
        assert_eq!(payload, payload_of(pos), "payload of frame {pos}");
        before_release();
        if protocol::release(&self.hdr, entry, pos + 1) {
            protocol::wake_writer(&self.hdr);
            self.space_sleepers.wake();
        }
        payload
    }
}

fn payload_of(seq: u64) -> u64 {
    1000 + seq
}

/// A model checker that explores every interleaving with at most `preemptions` preemptions
/// (`LOOM_MAX_PREEMPTIONS` overrides it; loom's other `LOOM_*` variables apply too).
fn bounded(preemptions: usize) -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(preemptions);
    builder
}

/// [`bounded`] for a model of a protocol that the current layout version did not change: with
/// `SHMLINE_LOOM_SAMPLE` set (CI's suite), one preemption fewer, a bounded sample that still runs
/// every model but costs a fraction of the full search; unset, the full bound.
/// Changed in layout version 4 (always full): publishing and releasing without a locked
/// instruction, and the sleep handshakes that pay for it (the first, third and fourth models).
fn unchanged(preemptions: usize) -> loom::model::Builder {
    let sample = std::env::var_os("SHMLINE_LOOM_SAMPLE").is_some();
    bounded(if sample {
        preemptions.saturating_sub(1).max(1)
    } else {
        preemptions
    })
}

#[test]
fn a_lossless_reader_reads_every_frame_once_in_order_and_is_never_overwritten() {
    const FRAMES: u64 = 4;
    bounded(7).check(|| {
        let ring = Ring::new(2, vec![entry(true)]);
        // What the reader has finished reading, in loom's execution order (a std atomic: it is an
        // observer of the model, not part of it). Set before the release that frees the slot.
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = {
            let (ring, done) = (ring.clone(), done.clone());
            thread::spawn(move || {
                let (mut head, mut limit) = (0, 0);
                for _ in 0..FRAMES {
                    ring.write(&mut head, &mut limit, |seq| {
                        let done = done.load(Ordering::Relaxed);
                        assert!(
                            seq < done + ring.capacity,
                            "writer overwrites frame {} which the reader has not released \
                             (it finished {done})",
                            seq - ring.capacity
                        );
                    });
                }
            })
        };
        let mut seen = Vec::new();
        for pos in 0..FRAMES {
            seen.push(ring.read(&ring.entries[0], pos, || {
                done.store(pos + 1, Ordering::Relaxed)
            }));
        }
        writer.join().unwrap();
        assert_eq!(seen, (0..FRAMES).map(payload_of).collect::<Vec<_>>());
    });
}

#[test]
fn a_reader_joining_while_the_writer_writes_is_never_lapped_after_join() {
    const FRAMES: u64 = 4;
    unchanged(6).check(|| {
        // The entry starts free: the reader claims it by joining.
        let ring = Ring::new(2, vec![entry(false)]);
        let writer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let (mut head, mut limit) = (0, 0);
                for _ in 0..FRAMES {
                    ring.write(&mut head, &mut limit, |_| {});
                }
            })
        };
        let entry = &ring.entries[0];
        let claimed = protocol::entry::claim(entry, 1).expect("a free entry");
        let start = protocol::head(&ring.hdr);
        let mut pos = protocol::join(&ring.hdr, entry, claimed, start, ring.capacity, || {
            thread::yield_now();
            true
        });
        assert!(
            pos >= start,
            "join moved the reader back from {start} to {pos}"
        );
        while pos < FRAMES {
            ring.read(entry, pos, || {});
            pos += 1;
        }
        writer.join().unwrap();
    });
}

#[test]
fn readers_about_to_sleep_are_always_woken_or_see_the_new_head() {
    bounded(3).check(|| {
        let ring = Ring::new(2, vec![]);
        let writer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let (mut head, mut limit) = (0, 0);
                for _ in 0..2 {
                    ring.write(&mut head, &mut limit, |_| {});
                }
            })
        };
        let reader = |want: u64| {
            let ring = ring.clone();
            // `Reader::wait_for_frame_slow`: check, announce, re-check, sleep on the word; again
            // after every wake-up (the first frame wakes a reader that waits for the second).
            // (Its entry is outside the ring's table: only its asleep mark is used.)
            move || {
                let me = entry(true);
                loop {
                    if protocol::head(&ring.hdr) > want {
                        return;
                    }
                    let word = protocol::reader_prepare_sleep(&ring.hdr, &me);
                    if protocol::head(&ring.hdr) <= want {
                        ring.data_sleepers.wait(&ring.hdr.data_futex, word);
                    }
                    protocol::reader_wake_done(&ring.hdr, &me);
                }
            }
        };
        let first = thread::spawn(reader(0));
        reader(1)();
        first.join().unwrap();
        writer.join().unwrap();
    });
}

#[test]
fn a_writer_about_to_sleep_is_always_woken_or_sees_the_released_space() {
    bounded(4).check(|| {
        let ring = Ring::new(1, vec![entry(true), entry(true)]);
        // One frame written and unread by both readers: the ring is full.
        let (mut head, mut limit) = (0, 0);
        ring.write(&mut head, &mut limit, |_| {});
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let ring = ring.clone();
                thread::spawn(move || {
                    ring.read(&ring.entries[i], 0, || {});
                })
            })
            .collect();
        // `Writer::wait_for_space_inner`: rescan, announce, rescan, sleep on the word; again after
        // every wake-up (the first reader's release wakes a writer that still waits for the other).
        let space = |ring: &Ring| {
            protocol::scan(
                &ring.hdr,
                ring.groups.iter(),
                ring.entries.iter(),
                head,
                ring.capacity,
            )
            .limit
                > head
        };
        while !space(&ring) {
            // Wake at the first free slot (the writer's hysteresis only raises this threshold).
            let wanted = (head + 1).saturating_sub(ring.capacity);
            let word = protocol::writer_prepare_sleep(&ring.hdr, wanted);
            if !space(&ring) {
                ring.space_sleepers.wait(&ring.hdr.space_futex, word);
            }
            protocol::writer_wake_done(&ring.hdr);
        }
        for reader in readers {
            reader.join().unwrap();
        }
    });
}

// ---- multi-writer streams: the claim/publish protocol (`protocol::multi`) ----

/// A writer table entry of a writer that is attached and has claimed nothing yet.
fn writer_entry() -> WriterEntry {
    WriterEntry {
        claim: AtomicU64::new(SEQ_EMPTY),
        owner: AtomicU64::new(0),
        _reserved0: AtomicU64::new(0),
        start_time: AtomicU64::new(0),
        scan: AtomicU64::new(SEQ_EMPTY),
        frames_written: AtomicU64::new(0),
        bytes_written: AtomicU64::new(0),
        _reserved: u64s(),
    }
}

impl Ring {
    /// One writer of a multi-writer stream writes one frame holding `value`, as
    /// `MultiWriter::claim` and `Writer::write` do it: claim below the limit (refreshing it from
    /// `write_limit` or by taking the scan, and sleeping while the ring is full, as
    /// `MultiWriter::wait_for_space` does), fill, stamp, publish what is stamped. Returns the
    /// sequence number it got.
    fn write_multi(&self, me: &WriterEntry, limit: &mut u64, value: u64) -> u64 {
        let mut seq = protocol::multi::next_claim(&self.hdr);
        let seq = loop {
            if seq < *limit {
                match protocol::multi::try_claim(&self.hdr, me, seq) {
                    Ok(()) => break seq,
                    Err(next) => {
                        seq = next;
                        continue;
                    }
                }
            }
            if !self.refresh_multi(me, limit, seq) {
                // Announce, re-check, sleep (wake at the first free slot: `wanted` 0).
                let word = protocol::multi::writer_prepare_sleep(&self.hdr, 0);
                if !self.refresh_multi(me, limit, protocol::multi::next_claim(&self.hdr)) {
                    self.space_sleepers.wait(&self.hdr.space_futex, word);
                }
                protocol::multi::writer_wake_done(&self.hdr);
            }
            seq = protocol::multi::next_claim(&self.hdr);
        };
        let slot = self.slot(seq);
        protocol::begin_write(&slot.frame);
        // SAFETY: the claim gives this writer the slot; loom checks the claim.
        slot.payload.with_mut(|p| unsafe { *p = value });
        protocol::multi::stamp(&slot.frame, seq, 8, 0, 0, 0);
        self.publish_multi();
        seq
    }

    /// `MultiWriter::refresh`: the last published limit, or a scan of our own (or, while another
    /// writer scans, the limit it had published). True if `seq` may be claimed.
    fn refresh_multi(&self, me: &WriterEntry, limit: &mut u64, seq: u64) -> bool {
        let published = protocol::multi::write_limit(&self.hdr);
        *limit = if seq < published {
            published
        } else {
            match protocol::multi::try_scan(
                &self.hdr,
                me,
                self.groups.iter(),
                self.entries.iter(),
                self.capacity,
            ) {
                Some(scan) => scan.limit,
                None => protocol::multi::write_limit(&self.hdr),
            }
        };
        seq < *limit
    }

    /// Publishes what is stamped and wakes sleepers, as `multi::publish_stamped` does.
    fn publish_multi(&self) {
        let published =
            protocol::multi::advance_head(&self.hdr, self.capacity, |s| &self.slot(s).frame);
        if let Some(p) = published {
            if p.wake_readers {
                protocol::wake_readers(&self.hdr);
                self.data_sleepers.wake();
            }
            if p.wake_writers {
                protocol::wake_writer(&self.hdr);
                self.space_sleepers.wake();
            }
        }
    }

    /// A lossless reader takes frame `pos` once published (sleeping until then, as
    /// `Reader::wait_for_frame_slow` does): its payload, or `None` if it was skipped. Then
    /// releases it, waking sleeping writers.
    fn read_multi(&self, entry: &ReaderEntry, pos: u64) -> Option<u64> {
        while protocol::head(&self.hdr) <= pos {
            let word = protocol::reader_prepare_sleep(&self.hdr, entry);
            if protocol::head(&self.hdr) <= pos {
                self.data_sleepers.wait(&self.hdr.data_futex, word);
            }
            protocol::reader_wake_done(&self.hdr, entry);
        }
        let slot = self.slot(pos);
        // Acquire as `Reader::validate` loads it.
        assert_eq!(slot.frame.seq.load(Ordering::Acquire), pos, "slot seq");
        // Relaxed as `Reader::skipped` loads it.
        let value = if slot.frame.status.load(Ordering::Relaxed) == FRAME_STATUS_SKIPPED {
            None
        } else {
            // SAFETY: published and not yet released; loom checks the claim.
            Some(slot.payload.with(|p| unsafe { *p }))
        };
        if protocol::release(&self.hdr, entry, pos + 1) {
            protocol::wake_writer(&self.hdr);
            self.space_sleepers.wake();
        }
        value
    }
}

#[test]
fn two_writers_publish_in_claim_order_and_a_reader_gets_every_frame_once() {
    unchanged(3).check(|| {
        // One slot for two frames: the second claim waits for the reader, then reuses the slot
        // the other writer filled.
        let ring = Ring::new(1, vec![entry(true)]);
        let table = Arc::new([writer_entry(), writer_entry()]);
        // Which writer wrote which sequence number (observers of the model, not part of it).
        let wrote = Arc::new(std::sync::Mutex::new(vec![None; 2]));
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let (ring, table, wrote) = (ring.clone(), table.clone(), wrote.clone());
                thread::spawn(move || {
                    let mut limit = 0;
                    let value = 100 + w;
                    let seq = ring.write_multi(&table[w as usize], &mut limit, value);
                    wrote.lock().unwrap()[seq as usize] = Some(value);
                })
            })
            .collect();
        let seen: Vec<u64> = (0..2)
            .map(|pos| {
                ring.read_multi(&ring.entries[0], pos)
                    .expect("nothing is skipped")
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let wrote: Vec<u64> = wrote.lock().unwrap().iter().map(|v| v.unwrap()).collect();
        assert_eq!(
            seen, wrote,
            "each frame as its claimer wrote it, in claim order"
        );
        let mut values = seen;
        values.sort();
        assert_eq!(values, [100, 101], "every frame exactly once");
    });
}

#[test]
fn a_frame_stamped_behind_a_gap_is_published_by_whoever_fills_the_gap() {
    unchanged(4).check(|| {
        let ring = Ring::new(2, vec![]);
        let table = Arc::new([writer_entry(), writer_entry()]);
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let (ring, table) = (ring.clone(), table.clone());
                thread::spawn(move || {
                    let mut limit = 0;
                    ring.write_multi(&table[w as usize], &mut limit, w);
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        // Both stamped and left: nobody is left to publish, so it must all be out.
        assert_eq!(
            protocol::head(&ring.hdr),
            2,
            "a stamped frame was never published"
        );
    });
}

#[test]
fn a_number_claimed_by_a_dead_writer_is_skipped_and_what_follows_is_published() {
    unchanged(4).check(|| {
        let ring = Ring::new(4, vec![entry(true)]);
        let table = Arc::new([writer_entry(), writer_entry()]);
        // The writer that dies: claims 0 and never writes it.
        protocol::multi::try_scan(
            &ring.hdr,
            &table[0],
            ring.groups.iter(),
            ring.entries.iter(),
            4,
        )
        .unwrap();
        assert_eq!(protocol::multi::try_claim(&ring.hdr, &table[0], 0), Ok(()));
        let survivor = {
            let (ring, table) = (ring.clone(), table.clone());
            thread::spawn(move || {
                let mut limit = 0;
                ring.write_multi(&table[1], &mut limit, 7)
            })
        };
        // The repair (`multi::repair`, under the table lock): 0 is claimed and unstamped, its
        // holder is dead: skip it and publish.
        protocol::multi::skip(&ring.slot(0).frame, 0);
        ring.publish_multi();
        assert_eq!(ring.read_multi(&ring.entries[0], 0), None, "0 was skipped");
        assert_eq!(ring.read_multi(&ring.entries[0], 1), Some(7));
        assert_eq!(survivor.join().unwrap(), 1);
    });
}

// ---- reader groups: the group-claim protocol (`protocol::group`) ----

/// An active group record whose next frame to hand out is 0.
fn group_record() -> GroupRecord {
    GroupRecord {
        next: AtomicU64::new(0),
        state: AtomicU32::new(GROUP_ACTIVE),
        orphans: AtomicU32::new(0),
        redelivered: AtomicU64::new(0),
        first: AtomicU64::new(0),
        _reserved: u64s(),
        name: std::array::from_fn(|_| AtomicU8::new(0)),
    }
}

/// An active member of group 0 that holds no frame.
fn member_entry() -> ReaderEntry {
    let e = entry(true);
    e.group.store(1, Ordering::Relaxed);
    e.pos.store(POS_IDLE, Ordering::Relaxed);
    e.held_end.store(POS_IDLE, Ordering::Relaxed);
    e
}

impl Ring {
    /// The writer's loop for one frame, sleeping while the ring is full as
    /// `Writer::wait_for_space_inner` does (rescan, announce, rescan, sleep).
    fn write_sleeping(&self, head: &mut u64) {
        let seq = *head;
        let space = |ring: &Ring| {
            protocol::scan(
                &ring.hdr,
                ring.groups.iter(),
                ring.entries.iter(),
                seq,
                ring.capacity,
            )
            .limit
                > seq
        };
        while !space(self) {
            let wanted = (seq + 1).saturating_sub(self.capacity);
            let word = protocol::writer_prepare_sleep(&self.hdr, wanted);
            if !space(self) {
                self.space_sleepers.wait(&self.hdr.space_futex, word);
            }
            protocol::writer_wake_done(&self.hdr);
        }
        let slot = self.slot(seq);
        protocol::begin_write(&slot.frame);
        // SAFETY: the scan gives the writer this slot; loom checks the claim.
        slot.payload.with_mut(|p| unsafe { *p = payload_of(seq) });
        protocol::end_write(&slot.frame, seq, 8, 0, 0, 0);
        *head = seq + 1;
        if protocol::publish(&self.hdr, seq + 1) {
            protocol::wake_readers(&self.hdr);
            self.data_sleepers.wake();
        }
    }

    /// The writer closes the stream, as `Writer::close` does: readers drain, then stop.
    fn close(&self) {
        self.hdr.writer_state.store(WRITER_CLOSED, Ordering::SeqCst);
        protocol::wake_readers(&self.hdr);
        self.data_sleepers.wake();
    }

    /// A member with no frame claims one frame of group 0 without waiting, waking the writer if
    /// told to (see `group::claim`).
    fn claim_one(&self, me: &ReaderEntry) -> Claim {
        let (claim, wake) =
            protocol::group::try_claim(&self.hdr, &self.groups[0], me, 1, self.capacity);
        if wake {
            protocol::wake_writer(&self.hdr);
            self.space_sleepers.wake();
        }
        claim
    }

    /// A member with no frame claims one, sleeping while there is none (`Reader::claim` and
    /// `Reader::wait_for_frame_slow`: claim, announce, claim again, check the writer, sleep).
    /// `None` at the end of the stream.
    fn member_claim(&self, me: &ReaderEntry) -> Option<u64> {
        let claim = || match self.claim_one(me) {
            Claim::Got { start, end } => {
                assert_eq!(end, start + 1, "one frame asked for");
                Some(start)
            }
            Claim::Empty => None,
            Claim::Corrupt { next, head } => panic!("group next {next} vs head {head}"),
        };
        loop {
            if let Some(seq) = claim() {
                return Some(seq);
            }
            let word = protocol::reader_prepare_sleep(&self.hdr, me);
            // The writer's state before the claim: closed, and nothing left after, is the end.
            let closed = self.hdr.writer_state.load(Ordering::SeqCst) == WRITER_CLOSED;
            let claimed = claim();
            if claimed.is_some() || closed {
                protocol::reader_wake_done(&self.hdr, me);
                return claimed;
            }
            self.data_sleepers.wait(&self.hdr.data_futex, word);
            protocol::reader_wake_done(&self.hdr, me);
        }
    }

    /// A member reads frame `seq` it holds (checking it), as `Reader::copy_frame` does.
    fn read_held(&self, seq: u64) -> u64 {
        let slot = self.slot(seq);
        // Acquire as `Reader::validate` loads it.
        assert_eq!(slot.frame.seq.load(Ordering::Acquire), seq, "slot seq");
        // SAFETY: the member holds the frame; loom checks the claim.
        let payload = slot.payload.with(|p| unsafe { *p });
        assert_eq!(payload, payload_of(seq), "payload of frame {seq}");
        payload
    }

    /// A member releases every frame it holds (its position goes idle), waking the writer if
    /// told to, as `Reader::release_to` does.
    fn release_all(&self, me: &ReaderEntry) {
        if protocol::release(&self.hdr, me, POS_IDLE) {
            protocol::wake_writer(&self.hdr);
            self.space_sleepers.wake();
        }
    }
}

/// The writer of the group models: writes `frames` frames, sleeping while the ring is full, and
/// closes the stream.
fn group_writer(ring: &Arc<Ring>, frames: u64) -> thread::JoinHandle<()> {
    let ring = ring.clone();
    thread::spawn(move || {
        let mut head = 0;
        for _ in 0..frames {
            ring.write_sleeping(&mut head);
        }
        ring.close();
    })
}

#[test]
fn two_members_share_each_frame_exactly_once_and_the_writer_never_overwrites_a_held_one() {
    const FRAMES: u64 = 2;
    unchanged(2).check(|| {
        // One slot: every frame after the first reuses the slot a member may still hold.
        let ring = Ring::with_groups(
            1,
            vec![group_record()],
            vec![member_entry(), member_entry()],
        );
        let writer = group_writer(&ring, FRAMES);
        let member = |i: usize| {
            let ring = ring.clone();
            move || {
                let me = &ring.entries[i];
                let mut taken = Vec::new();
                while let Some(seq) = ring.member_claim(me) {
                    ring.read_held(seq);
                    ring.release_all(me);
                    taken.push(seq);
                }
                taken
            }
        };
        let other = thread::spawn(member(1));
        let mut taken = member(0)();
        taken.extend(other.join().unwrap());
        writer.join().unwrap();
        taken.sort();
        assert_eq!(
            taken,
            (0..FRAMES).collect::<Vec<_>>(),
            "each frame exactly once"
        );
    });
}

/// Where the doomed member of [`dead_member_model`] dies.
#[derive(Clone, Copy, PartialEq)]
enum Death {
    /// After it claimed a frame and read it (its result is lost).
    HoldingAFrame,
    /// Between recording the intent of its first claim (`held_end`, then `pos`) and the
    /// compare-and-swap of the group's `next` that would have won it.
    BetweenIntentAndClaim,
}

#[test]
fn frames_held_by_a_dead_member_are_adopted_by_another_member_and_nothing_is_lost() {
    dead_member_model(Death::HoldingAFrame);
}

#[test]
fn a_member_killed_between_its_claim_intent_and_its_claim_loses_nothing_and_overwrites_nothing() {
    dead_member_model(Death::BetweenIntentAndClaim);
}

/// Member 0 dies at `death`; member 1 processes frames and adopts member 0's when it notices the
/// death. Every frame is processed by member 1; only the frame of a lost intent may be processed
/// twice (another member may have got it), and no frame is read after the writer overwrote it.
fn dead_member_model(death: Death) {
    const FRAMES: u64 = 3;
    unchanged(2).check(move || {
        let ring = Ring::with_groups(
            2,
            vec![group_record()],
            vec![member_entry(), member_entry()],
        );
        let writer = group_writer(&ring, FRAMES);
        // Observers of the model: member 0 is gone; the frame of its intent (if any).
        let dead = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let intent = Arc::new(std::sync::atomic::AtomicU64::new(POS_IDLE));
        let doomed = {
            let (ring, dead, intent) = (ring.clone(), dead.clone(), intent.clone());
            thread::spawn(move || {
                let me = &ring.entries[0];
                match death {
                    Death::HoldingAFrame => {
                        if let Some(seq) = ring.member_claim(me) {
                            ring.read_held(seq);
                        }
                    }
                    // What `protocol::group::try_claim` has stored when the kill comes: its loads
                    // and its first intent, for one frame.
                    Death::BetweenIntentAndClaim => {
                        let n = ring.groups[0].next.load(Ordering::SeqCst);
                        if n < ring.hdr.head.load(Ordering::SeqCst) {
                            me.held_end.store(n + 1, Ordering::Relaxed);
                            me.pos.store(n, Ordering::Relaxed);
                            intent.store(n, Ordering::Relaxed);
                        }
                    }
                }
                dead.store(true, Ordering::Relaxed);
            })
        };
        // Member 1 processes frames; with none to claim, it checks whether member 0 died (loom's
        // join stands for the kernel's word that the process is gone) and adopts its frames, as
        // `group::rescue` does under the table lock. (It polls rather than sleeps: the real
        // member's sleeps end after a slice, to check for dead members.)
        let me = &ring.entries[1];
        let orphan = &ring.entries[0];
        let mut doomed = Some(doomed);
        let mut done = Vec::new();
        loop {
            // The writer's state before the claim: closed, and nothing left after, is the end.
            let closed = ring.hdr.writer_state.load(Ordering::SeqCst) == WRITER_CLOSED;
            match ring.claim_one(me) {
                Claim::Got { start, .. } => {
                    ring.read_held(start);
                    ring.release_all(me);
                    done.push(start);
                    continue;
                }
                Claim::Empty => {}
                Claim::Corrupt { next, head } => panic!("group next {next} vs head {head}"),
            }
            if doomed.is_some() && dead.load(Ordering::Relaxed) {
                doomed.take().unwrap().join().unwrap();
                let orphaned = protocol::entry::transition_from_state(
                    &ring.hdr,
                    orphan,
                    READER_ACTIVE,
                    READER_ORPHANED,
                );
                assert!(orphaned);
                let (start, end) =
                    protocol::group::adopt(&ring.hdr, &ring.groups[0], me, orphan, 2, || {
                        thread::yield_now();
                        true
                    });
                // The orphan lets go once the adopter holds its frames (`readers::free`).
                assert!(protocol::entry::transition_from_state(
                    &ring.hdr,
                    orphan,
                    READER_ORPHANED,
                    READER_FREE,
                ));
                for seq in start..end {
                    ring.read_held(seq);
                    done.push(seq);
                }
                ring.release_all(me);
                continue;
            }
            if doomed.is_none() && closed {
                break;
            }
            thread::yield_now();
        }
        writer.join().unwrap();
        done.sort();
        let intent = intent.load(Ordering::Relaxed);
        if let Some(i) = done.windows(2).position(|w| w[0] == w[1]) {
            assert_eq!(
                done[i], intent,
                "only the frame of a lost intent goes twice: {done:?}"
            );
            done.remove(i);
        }
        assert_eq!(
            done,
            (0..FRAMES).collect::<Vec<_>>(),
            "the survivor processed every frame once, the dead member's frame again"
        );
    });
}

/// A dead reader's entry (active, asleep: counted in `readers_waiting`) that two reclaimers judged
/// dead from the owner word they read, while a new reader with the same (recycled) pid claims
/// the entry as soon as it is free, sleeps once, and leaves.
#[test]
fn a_stale_reclaimer_never_frees_the_next_owner_of_an_entry_and_a_dead_sleeper_is_uncounted_once() {
    const PID: u64 = 7;
    unchanged(3).check(|| {
        let ring = Ring::new(2, vec![entry(false)]);
        let dead = &ring.entries[0];
        dead.owner.store(
            PID << OWNER_PID_SHIFT | OWNER_ASLEEP | READER_ACTIVE as u64,
            Ordering::Relaxed,
        );
        ring.hdr.readers_waiting.store(1, Ordering::Relaxed);
        let reclaimer = || {
            let ring = ring.clone();
            thread::spawn(move || {
                let entry = &ring.entries[0];
                // `readers::dead_owner`: the word, judged by its pid (and, for an active entry,
                // the start time: here the first owner's, so only its incarnation is "dead").
                let seen = protocol::entry::owner(entry, Ordering::Acquire);
                let judged_dead = seen.state() == READER_ACTIVE && seen.generation() == 0;
                judged_dead && protocol::entry::transition(&ring.hdr, entry, seen, READER_FREE)
            })
        };
        let (a, b) = (reclaimer(), reclaimer());
        // The new reader (same pid) claims the entry once it is free, joins, sleeps, leaves.
        let entry = &ring.entries[0];
        let claimed = loop {
            if let Some(claimed) = protocol::entry::claim(entry, PID as u32) {
                break claimed;
            }
            thread::yield_now();
        };
        protocol::entry::activate(entry, claimed);
        protocol::reader_prepare_sleep(&ring.hdr, entry);
        protocol::reader_wake_done(&ring.hdr, entry);
        let left =
            protocol::entry::transition_from_state(&ring.hdr, entry, READER_ACTIVE, READER_FREE);
        let freed = [a.join().unwrap(), b.join().unwrap()];
        assert!(left, "a reclaimer freed the new reader's entry under it");
        assert_eq!(
            freed.iter().filter(|&&f| f).count(),
            1,
            "the dead reader is freed once"
        );
        let end = protocol::entry::owner(entry, Ordering::Relaxed);
        assert_eq!(
            (end.state(), end.pid(), end.generation()),
            (READER_FREE, 0, 2)
        );
        assert_eq!(
            ring.hdr.readers_waiting.load(Ordering::Relaxed),
            0,
            "the dead sleeper is uncounted exactly once"
        );
    });
}
