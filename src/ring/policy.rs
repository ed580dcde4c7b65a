//! Backpressure policies: what a writer does when the ring is full.

use crate::layout::{POLICY_BLOCK, POLICY_DROP_NEWEST, POLICY_DROP_OLDEST, POLICY_FAIL};
use std::time::Duration;

/// What a writer does when the slowest lossless reader is a full ring behind. Chosen when the
/// stream is created and stored in its header, so every writer of the stream follows it.
///
/// The per-reader counterpart is [`ReaderOptions::lossy`](super::ReaderOptions::lossy): a lossy
/// reader is a reader with its own `DropOldest` policy (it never holds the writer back and is told
/// what it missed), a lossless one follows the stream's policy.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Backpressure {
    /// Wait for space: blocking calls wait up to their timeout, `try_` calls return
    /// [`Error::Full`](crate::Error::Full). Nothing is ever lost (the default).
    #[default]
    Block = POLICY_BLOCK,
    /// Never wait: every write to a full ring returns [`Error::Full`](crate::Error::Full) at once,
    /// even a blocking call with a timeout. The caller decides what to do with the frame.
    Fail = POLICY_FAIL,
    /// Never wait: a copy write to a full ring succeeds without writing anything; the frame is
    /// discarded and counted ([`Writer::frames_dropped`](super::Writer::frames_dropped),
    /// [`StreamStats::frames_dropped`](super::StreamStats::frames_dropped)). Frames already in the
    /// ring reach every reader. A zero-copy `reserve` on a full ring returns
    /// [`Error::Full`](crate::Error::Full) (there is no frame to drop yet).
    DropNewest = POLICY_DROP_NEWEST,
    /// Never wait: the writer always overwrites the oldest frame, so the newest frames win. Every
    /// reader reads like a lossy one: when the writer laps it, it skips forward to the oldest frame
    /// still there and [`FrameInfo::missed`](super::FrameInfo::missed) says how many it lost. Zero-copy
    /// `acquire` is not available (a frame could be overwritten while lent).
    DropOldest = POLICY_DROP_OLDEST,
}

impl Backpressure {
    /// The policy with this number (as stored in the stream header and passed through the C ABI).
    pub fn from_u32(value: u32) -> Option<Backpressure> {
        match value {
            POLICY_BLOCK => Some(Backpressure::Block),
            POLICY_FAIL => Some(Backpressure::Fail),
            POLICY_DROP_NEWEST => Some(Backpressure::DropNewest),
            POLICY_DROP_OLDEST => Some(Backpressure::DropOldest),
            _ => None,
        }
    }

    /// The policy's name in shmline's vocabulary: `block`, `fail`, `drop_newest`, `drop_oldest`.
    pub fn name(self) -> &'static str {
        match self {
            Backpressure::Block => "block",
            Backpressure::Fail => "fail",
            Backpressure::DropNewest => "drop_newest",
            Backpressure::DropOldest => "drop_oldest",
        }
    }

    /// The policy with this name (see [`Backpressure::name`]).
    pub fn from_name(name: &str) -> Option<Backpressure> {
        [
            Backpressure::Block,
            Backpressure::Fail,
            Backpressure::DropNewest,
            Backpressure::DropOldest,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    /// True if a writer may wait for space under this policy.
    pub(crate) fn waits(self) -> bool {
        self == Backpressure::Block
    }
}

impl std::fmt::Display for Backpressure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest sleep of a writer waiting for more than one free slot (see [`space_wanted`]).
const HYSTERESIS_SLICE: Duration = Duration::from_millis(1);

/// What a writer waiting for space asks to be woken for, and how long it may sleep, given `next`
/// (the sequence number it wants to write), the published `head` and its sleep `slice`.
///
/// Hysteresis: ask to be woken once a quarter of the ring is free, not at the first free slot, so
/// a ring kept full by a slow reader costs one wake-up per quarter ring rather than one per frame.
/// A reader that frees a slot and then pauses delays the writer by at most `HYSTERESIS_SLICE`: it
/// then takes whatever space there is.
pub(crate) fn space_wanted(
    next: u64,
    head: u64,
    capacity: u64,
    slice: Duration,
) -> (u64, Duration) {
    let first_free = (next + 1).saturating_sub(capacity);
    let wanted = (first_free + capacity / 4).min(head);
    let slice = if wanted > first_free {
        slice.min(HYSTERESIS_SLICE)
    } else {
        slice
    };
    (wanted, slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip_through_their_numbers_and_names() {
        for p in [
            Backpressure::Block,
            Backpressure::Fail,
            Backpressure::DropNewest,
            Backpressure::DropOldest,
        ] {
            assert_eq!(Backpressure::from_u32(p as u32), Some(p));
            assert_eq!(Backpressure::from_name(p.name()), Some(p));
        }
        assert_eq!(Backpressure::from_u32(4), None);
        assert_eq!(Backpressure::from_name("drop"), None);
    }
}
