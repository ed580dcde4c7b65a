//! Snapshots of a stream's counters, read from shared memory without disturbing anyone.

use super::{Backpressure, Shared};
use crate::layout::{
    GROUP_ACTIVE, POS_IDLE, READER_ACTIVE, READER_FLAG_LOSSY, READER_ORPHANED, WRITER_ACTIVE,
    WRITER_CLAIMING, WRITER_CLOSED, WRITER_COUNT_CLOSED, WRITER_COUNT_DEAD, WRITER_ENTRY_ACTIVE,
    WRITER_NONE,
};
use crate::sync::Ordering;

/// What the stream's writer (or, in a multi-writer stream, its writers as a whole) is doing.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterState {
    /// No writer has attached yet.
    None = 0,
    /// A writer is attached (multi-writer: at least one).
    Active = 1,
    /// The writer closed the stream (multi-writer: the last one did): end of stream.
    Closed = 2,
    /// The recorded writer process is no longer alive (multi-writer: every writer that attached
    /// is gone, and the last one died).
    Dead = 3,
}

/// Counters of one attached writer of a multi-writer stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterStats {
    /// Index of the writer's entry in the writer table.
    pub index: u32,
    /// Pid of the writer process.
    pub pid: u32,
    /// Whether that process is still alive.
    pub alive: bool,
    /// Frames it has published.
    pub frames_written: u64,
    /// Payload bytes it has published.
    pub bytes_written: u64,
}

/// Counters of one attached reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderStats {
    /// Index of the reader's entry in the reader table.
    pub index: u32,
    /// Pid of the reader process.
    pub pid: u32,
    /// Whether that process is still alive.
    pub alive: bool,
    /// Whether the reader is lossy.
    pub lossy: bool,
    /// Sequence number of the next frame it will read.
    pub position: u64,
    /// Frames it has read.
    pub frames_read: u64,
    /// Payload bytes it has read.
    pub bytes_read: u64,
    /// Frames it missed (lossy readers, and every reader of a `drop_oldest` stream).
    pub missed: u64,
    /// Sequence numbers published that it has not read yet (frames, and numbers a multi-writer
    /// stream skipped). A group member: frames it holds (claimed and
    /// not yet released) plus those published after them; 0 while it holds none (the group's
    /// [`GroupStats::lag`] is what waits for the group).
    pub lag: u64,
    /// The reader group it is a member of, if any. A member's `position` is the first frame it
    /// holds, or the group's next frame while it holds none.
    pub group: Option<String>,
}

/// Counters of one reader group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// Index of the group's record in the group table.
    pub index: u32,
    /// The group's name.
    pub name: String,
    /// Members attached now.
    pub members: u32,
    /// Entries of members that died holding frames, waiting for a live member to adopt them.
    pub orphans: u32,
    /// The next frame the group will hand to a member.
    pub next: u64,
    /// Frames the group has handed to its members (each once; redeliveries not counted).
    pub frames_handed_out: u64,
    /// Frames delivered again to another member because the member holding them died.
    pub redelivered: u64,
    /// Frames published that the group has not handed out yet.
    pub lag: u64,
}

/// A snapshot of a stream's shared counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// Number of slots.
    pub capacity: u32,
    /// Frames published so far (sequence numbers a multi-writer stream skipped are not frames:
    /// they are counted in `frames_skipped`).
    pub frames_written: u64,
    /// Payload bytes published so far.
    pub bytes_written: u64,
    /// Times the writer found the ring full and waited.
    pub writer_waits: u64,
    /// Total nanoseconds the writer spent waiting for space.
    pub writer_wait_ns: u64,
    /// What the writer is doing.
    pub writer_state: WriterState,
    /// Pid of the writer of a single-writer stream, if one attached.
    pub writer_pid: Option<u32>,
    /// Dead readers whose entries were reclaimed.
    pub readers_reclaimed: u64,
    /// The stream's backpressure policy.
    pub backpressure: Backpressure,
    /// Most writers at once (1: a single-writer stream).
    pub max_writers: u32,
    /// The attached writers of a multi-writer stream (empty for a single-writer stream, whose
    /// writer is `writer_pid`).
    pub writers: Vec<WriterStats>,
    /// Sequence numbers of a multi-writer stream that were skipped: claimed by a writer that
    /// died before publishing them (or given up by an aborted reservation). Readers count them in
    /// their `missed`.
    pub frames_skipped: u64,
    /// Dead writers of a multi-writer stream whose entries were reclaimed.
    pub writers_reclaimed: u64,
    /// Frames writers discarded because the ring was full (policy `DropNewest`). Frames lost by
    /// lossy readers (and by every reader under `DropOldest`) are each reader's
    /// [`ReaderStats::missed`].
    pub frames_dropped: u64,
    /// Every attached reader.
    pub readers: Vec<ReaderStats>,
    /// Most reader groups at once.
    pub max_groups: u32,
    /// Every reader group.
    pub groups: Vec<GroupStats>,
}

impl StreamStats {
    /// Fill of the ring as seen by its slowest lossless reader or reader group, from 0.0 (empty)
    /// to 1.0 (full).
    pub fn fill(&self) -> f64 {
        let lag = self
            .readers
            .iter()
            .filter(|r| !r.lossy)
            .map(|r| r.lag)
            .chain(self.groups.iter().map(|g| g.lag))
            .max()
            .unwrap_or(0);
        (lag as f64 / self.capacity.max(1) as f64).min(1.0)
    }

    /// Frames delivered again within reader groups because the member holding them died (the sum
    /// of every group's [`GroupStats::redelivered`]).
    pub fn frames_redelivered(&self) -> u64 {
        self.groups.iter().map(|g| g.redelivered).sum()
    }
}

pub(super) fn snapshot(shared: &Shared) -> StreamStats {
    let hdr = shared.header();
    // Relaxed throughout: a monitor's snapshot need not be consistent across fields, only free of
    // side effects on the stream; every value is untrusted and only reported.
    let r = Ordering::Relaxed;
    // Acquire: the counts of skipped numbers below `head` (see `frames_written` below).
    let head = hdr.head.load(Ordering::Acquire);
    let state = hdr.writer_state.load(r);
    let pid = if state & WRITER_CLAIMING != 0 {
        state & !WRITER_CLAIMING
    } else {
        hdr.writer_pid.load(r)
    };
    let writers: Vec<WriterStats> = (0..shared.geo.writer_entries)
        .filter_map(|index| {
            let e = shared.writer_entry(index);
            let owner = super::protocol::entry::owner(e, r);
            if owner.state() != WRITER_ENTRY_ACTIVE {
                return None;
            }
            let pid = owner.pid();
            Some(WriterStats {
                index,
                pid,
                alive: super::tables::identity(e, owner).is_alive(),
                frames_written: e.frames_written.load(r),
                bytes_written: e.bytes_written.load(r),
            })
        })
        .collect();
    let count = hdr.writer_count.load(r);
    let writer_state = match state {
        _ if shared.multi_writer() && count & WRITER_COUNT_CLOSED != 0 => WriterState::Closed,
        _ if shared.multi_writer() && count & WRITER_COUNT_DEAD != 0 => WriterState::Dead,
        WRITER_ACTIVE if shared.multi_writer() && writers.iter().any(|w| w.alive) => {
            WriterState::Active
        }
        WRITER_ACTIVE if shared.multi_writer() => WriterState::Dead,
        WRITER_NONE => WriterState::None,
        WRITER_CLOSED => WriterState::Closed,
        // An attached writer, or one claiming the role (known by its pid alone until it records
        // its start time).
        s if s == WRITER_ACTIVE || s & WRITER_CLAIMING != 0 && !shared.multi_writer() => {
            if super::tables::claimed_writer(hdr, s).alive {
                WriterState::Active
            } else {
                WriterState::Dead
            }
        }
        _ => WriterState::None,
    };
    let groups: Vec<GroupStats> = (0..shared.geo.max_groups)
        .filter_map(|index| {
            let g = shared.group(index);
            if g.state.load(r) != GROUP_ACTIVE {
                return None;
            }
            let next = g.next.load(r);
            Some(GroupStats {
                index,
                name: super::group::record_name(g),
                members: 0,
                orphans: 0,
                next,
                frames_handed_out: next.saturating_sub(g.first.load(r)),
                redelivered: g.redelivered.load(r),
                lag: head.saturating_sub(next),
            })
        })
        .collect();
    let mut groups = groups;
    let group_of = |e: &crate::layout::ReaderEntry| {
        let g = e.group.load(r);
        groups.iter().position(|s| g != 0 && s.index == g - 1)
    };
    let mut counts = Vec::new();
    let readers = (0..shared.geo.max_readers)
        .filter_map(|index| {
            let e = shared.entry(index);
            let owner = super::protocol::entry::owner(e, r);
            let state = owner.state();
            if state == READER_ORPHANED {
                counts.push((group_of(e), false));
                return None;
            }
            if state != READER_ACTIVE {
                return None;
            }
            let pid = owner.pid();
            let member = group_of(e);
            if member.is_some() {
                counts.push((member, true));
            }
            let held = e.pos.load(r);
            let position = match member {
                Some(m) if held == POS_IDLE => groups[m].next,
                _ => held,
            };
            Some(ReaderStats {
                index,
                pid,
                alive: super::tables::identity(e, owner).is_alive(),
                lossy: e.flags.load(r) & READER_FLAG_LOSSY != 0,
                position,
                frames_read: e.frames_read.load(r),
                bytes_read: e.bytes_read.load(r),
                missed: e.missed.load(r),
                lag: if held == POS_IDLE {
                    0
                } else {
                    head.saturating_sub(position)
                },
                group: member.map(|m| groups[m].name.clone()),
            })
        })
        .collect();
    for (group, active) in counts {
        if let Some(g) = group {
            if active {
                groups[g].members += 1;
            } else {
                groups[g].orphans += 1;
            }
        }
    }
    StreamStats {
        capacity: shared.geo.capacity,
        // Skipped numbers are counted before they are stamped, and `head` passes them only after
        // that (loaded with Acquire above), so this never counts a skipped number as a frame.
        frames_written: head.saturating_sub(hdr.frames_skipped.load(r)),
        // A multi-writer stream's writers count their own bytes until they leave.
        bytes_written: hdr.bytes_written.load(r)
            + writers.iter().map(|w| w.bytes_written).sum::<u64>(),
        writer_waits: hdr.wait_count.load(r),
        writer_wait_ns: hdr.wait_ns.load(r),
        writer_state,
        writer_pid: (writer_state != WriterState::None && !shared.multi_writer()).then_some(pid),
        readers_reclaimed: hdr.readers_reclaimed.load(r),
        backpressure: shared.info.backpressure,
        max_writers: shared.geo.max_writers,
        writers,
        frames_skipped: hdr.frames_skipped.load(r),
        writers_reclaimed: hdr.writers_reclaimed.load(r),
        frames_dropped: hdr.frames_dropped.load(r),
        readers,
        max_groups: shared.geo.max_groups,
        groups,
    }
}
