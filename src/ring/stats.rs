//! Snapshots of a stream's counters, read from shared memory without disturbing anyone.

use super::{Backpressure, Shared};
use crate::layout::{READER_ACTIVE, READER_FLAG_LOSSY, WRITER_ACTIVE, WRITER_CLOSED, WRITER_NONE};
use crate::liveness::ProcessId;
use crate::sync::Ordering;

/// What the stream's writer is doing.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterState {
    /// No writer has attached yet.
    None = 0,
    /// A writer is attached.
    Active = 1,
    /// The writer closed the stream (end of stream).
    Closed = 2,
    /// The recorded writer process is no longer alive.
    Dead = 3,
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
    /// Frames published that it has not read yet.
    pub lag: u64,
}

/// A snapshot of a stream's shared counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// Number of slots.
    pub capacity: u32,
    /// Frames published so far.
    pub frames_written: u64,
    /// Payload bytes published so far.
    pub bytes_written: u64,
    /// Times the writer found the ring full and waited.
    pub writer_waits: u64,
    /// Total nanoseconds the writer spent waiting for space.
    pub writer_wait_ns: u64,
    /// What the writer is doing.
    pub writer_state: WriterState,
    /// Pid of the writer, if one attached.
    pub writer_pid: Option<u32>,
    /// Dead readers whose entries were reclaimed.
    pub readers_reclaimed: u64,
    /// The stream's backpressure policy.
    pub backpressure: Backpressure,
    /// Frames writers discarded because the ring was full (policy `DropNewest`). Frames lost by
    /// lossy readers (and by every reader under `DropOldest`) are each reader's
    /// [`ReaderStats::missed`].
    pub frames_dropped: u64,
    /// Every attached reader.
    pub readers: Vec<ReaderStats>,
}

impl StreamStats {
    /// Fill of the ring as seen by its slowest lossless reader, from 0.0 (empty) to 1.0 (full).
    pub fn fill(&self) -> f64 {
        let lag = self
            .readers
            .iter()
            .filter(|r| !r.lossy)
            .map(|r| r.lag)
            .max()
            .unwrap_or(0);
        (lag as f64 / self.capacity.max(1) as f64).min(1.0)
    }
}

pub(super) fn snapshot(shared: &Shared) -> StreamStats {
    let hdr = shared.header();
    // Relaxed throughout: a monitor's snapshot need not be consistent across fields, only free of
    // side effects on the stream; every value is untrusted and only reported.
    let r = Ordering::Relaxed;
    let head = hdr.head.load(r);
    let pid = hdr.writer_pid.load(r);
    let writer_state = match hdr.writer_state.load(r) {
        WRITER_NONE => WriterState::None,
        WRITER_CLOSED => WriterState::Closed,
        WRITER_ACTIVE
            if ProcessId {
                pid,
                start_time: hdr.writer_start_time.load(r),
            }
            .is_alive() =>
        {
            WriterState::Active
        }
        WRITER_ACTIVE => WriterState::Dead,
        _ => WriterState::None,
    };
    let readers = (0..shared.geo.max_readers)
        .filter_map(|index| {
            let e = shared.entry(index);
            if e.state.load(r) != READER_ACTIVE {
                return None;
            }
            let pid = e.pid.load(r);
            let position = e.pos.load(r);
            Some(ReaderStats {
                index,
                pid,
                alive: ProcessId {
                    pid,
                    start_time: e.start_time.load(r),
                }
                .is_alive(),
                lossy: e.flags.load(r) & READER_FLAG_LOSSY != 0,
                position,
                frames_read: e.frames_read.load(r),
                bytes_read: e.bytes_read.load(r),
                missed: e.missed.load(r),
                lag: head.saturating_sub(position),
            })
        })
        .collect();
    StreamStats {
        capacity: shared.geo.capacity,
        frames_written: head,
        bytes_written: hdr.bytes_written.load(r),
        writer_waits: hdr.wait_count.load(r),
        writer_wait_ns: hdr.wait_ns.load(r),
        writer_state,
        writer_pid: (writer_state != WriterState::None).then_some(pid),
        readers_reclaimed: hdr.readers_reclaimed.load(r),
        backpressure: shared.info.backpressure,
        frames_dropped: hdr.frames_dropped.load(r),
        readers,
    }
}
