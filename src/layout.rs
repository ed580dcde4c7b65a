//! The byte-level format of every shared-memory object shmline makes.
//!
//! This module is the code form of `docs/LAYOUT.md`: every struct is `#[repr(C)]`, every field is
//! a fixed-width little-endian integer held in an atomic (so that concurrent access from other
//! processes is never a data race in Rust's model), and compile-time assertions pin every offset.
//! Changing anything here changes the cross-language contract and must bump [`LAYOUT_VERSION`].
//!
//! Every value read from these structs comes from memory another process can write, so it is
//! untrusted: callers copy geometry once at open time, validate it, and never re-read it.

use crate::sync::{AtomicU32, AtomicU64, AtomicU8};
use std::mem::size_of;

/// Version of the shared-memory layout described in `docs/LAYOUT.md`.
pub const LAYOUT_VERSION: u32 = 5;

/// Size of the blocks that keep independently written fields apart. 128 bytes rather than 64
/// because x86-64 prefetches cache lines in adjacent pairs.
pub const LINE: usize = 128;

/// `b"SHMLSTRM"` read as a little-endian `u64`: first 8 bytes of a stream segment.
pub const STREAM_MAGIC: u64 = u64::from_le_bytes(*b"SHMLSTRM");
/// `b"SHMLEVNT"` read as a little-endian `u64`: first 8 bytes of an event segment.
pub const EVENT_MAGIC: u64 = u64::from_le_bytes(*b"SHMLEVNT");
/// `b"SHMLPIPE"` read as a little-endian `u64`: first 8 bytes of a pipeline registry (whose
/// layout is in `pipeline::layout`; the magic numbers of every segment kind live here, with the
/// segment handling that checks them).
pub const PIPELINE_MAGIC: u64 = u64::from_le_bytes(*b"SHMLPIPE");
/// Size of a pipeline registry's header (`pipeline::layout::PipelineHeader`, which asserts it):
/// the smallest finished registry.
pub const PIPELINE_HEADER_SIZE: u64 = 256;

/// Stream flag: every frame carries a CRC32C of its payload, checked by readers.
pub const STREAM_FLAG_CHECKSUM: u32 = 1 << 0;
/// Stream flag: the schema block holds a dtype and shape.
pub const STREAM_FLAG_SCHEMA: u32 = 1 << 1;
/// Every stream flag this version understands; other bits are refused as corrupt.
pub const STREAM_FLAGS_KNOWN: u32 = STREAM_FLAG_CHECKSUM | STREAM_FLAG_SCHEMA;

/// Writer state: no writer has attached yet.
pub const WRITER_NONE: u32 = 0;
/// Writer state: a writer is attached (see `writer_pid`/`writer_start_time`).
pub const WRITER_ACTIVE: u32 = 1;
/// Writer state: the writer closed the stream; readers drain, then see end of stream.
pub const WRITER_CLOSED: u32 = 2;
/// Writer state bit: a process won the writer role and is recording its identity; the other 31
/// bits are its pid (`WRITER_CLAIMING | pid`, taken in one compare-and-swap from `WRITER_NONE`),
/// so a writer that dies while claiming is known, by its pid alone, from the first instant.
pub const WRITER_CLAIMING: u32 = 1 << 31;

/// Reader entry state: free.
pub const READER_FREE: u32 = 0;
/// Reader entry state: claimed by a joining reader that is not yet counted by the writer (its pid
/// is in the owner word; its start time may not be recorded yet).
pub const READER_CLAIMING: u32 = 1;
/// Reader entry state: active; a lossless active reader holds the writer back.
pub const READER_ACTIVE: u32 = 2;
/// Reader entry state: a reader-group member that died (or left) holding frames it had not
/// delivered; no process owns it, it still holds the writer back, and another member of its
/// group adopts it to deliver those frames again.
pub const READER_ORPHANED: u32 = 3;

/// Bits of a reader or writer entry's `owner` word holding the entry's state (`READER_*`,
/// `WRITER_ENTRY_*`).
pub const OWNER_STATE_MASK: u64 = 0b11;
/// Bit of a reader entry's `owner` word: its reader is counted in `readers_waiting` (asleep on
/// `data_futex`, or about to sleep). Whoever clears it decrements `readers_waiting`.
pub const OWNER_ASLEEP: u64 = 1 << 2;
/// Lowest bit of the generation in a reader or writer entry's `owner` word (bits 3-31):
/// incremented, wrapping, every time the entry is freed, so a compare-and-swap from a word read
/// earlier fails once the entry has been freed and claimed again.
pub const OWNER_GENERATION_SHIFT: u32 = 3;
/// Bits of a reader or writer entry's `owner` word holding the generation.
pub const OWNER_GENERATION_MASK: u64 = 0xFFFF_FFF8;
/// Lowest bit of the owner's pid in a reader or writer entry's `owner` word (bits 32-63; 0 while
/// free).
pub const OWNER_PID_SHIFT: u32 = 32;

/// `pos` of a reader-group member that holds no frame (it does not hold the writer back).
pub const POS_IDLE: u64 = u64::MAX;

/// Group record state: free.
pub const GROUP_FREE: u32 = 0;
/// Group record state: a reader group with members; its `next` holds the writer back.
pub const GROUP_ACTIVE: u32 = 2;

/// Writer entry state (multi-writer streams, in the entry's owner word): free.
pub const WRITER_ENTRY_FREE: u32 = 0;
/// Writer entry state: claimed by an attaching writer (its pid is in the owner word; its start
/// time may not be recorded yet), or held by a leaving one. Not counted in `writer_count`.
pub const WRITER_ENTRY_CLAIMING: u32 = 1;
/// Writer entry state: an attached writer.
pub const WRITER_ENTRY_ACTIVE: u32 = 2;
/// Bit of `writer_count` (multi-writer streams) set when the last attached writer closed: readers
/// drain, then see end of stream. Final: no writer may attach any more.
pub const WRITER_COUNT_CLOSED: u32 = 1 << 31;
/// Bit of `writer_count` (multi-writer streams) set when the last attached writer left by dying
/// (it was found dead and repaired while no other writer was attached): readers drain, then see
/// `WRITER_DEAD`. Final, as [`WRITER_COUNT_CLOSED`].
pub const WRITER_COUNT_DEAD: u32 = 1 << 30;

/// Frame status (`FrameHeader::status`, multi-writer streams): a frame.
pub const FRAME_STATUS_FRAME: u32 = 0;
/// Frame status: no frame; the sequence number was skipped (its writer died before publishing
/// it, or gave up a zero-copy reservation). Readers skip it and count it as missed.
pub const FRAME_STATUS_SKIPPED: u32 = 1;

/// Reader flag: the reader is lossy (never holds the writer back).
pub const READER_FLAG_LOSSY: u32 = 1 << 0;

/// Backpressure policy: a writer waits for space (the default).
pub const POLICY_BLOCK: u32 = 0;
/// Backpressure policy: a write to a full ring fails at once with `FULL`, even with a timeout.
pub const POLICY_FAIL: u32 = 1;
/// Backpressure policy: a write to a full ring is discarded and counted in `frames_dropped`.
pub const POLICY_DROP_NEWEST: u32 = 2;
/// Backpressure policy: the writer never waits for readers; it overwrites the oldest frames and
/// every reader reads like a lossy one.
pub const POLICY_DROP_OLDEST: u32 = 3;

/// Value of a slot's `seq` while the slot is empty or being (re)written.
pub const SEQ_EMPTY: u64 = u64::MAX;

/// Largest number of slots a ring may have.
pub const MAX_CAPACITY: u32 = 1 << 24;
/// Largest frame a stream may carry (1 GiB).
pub const MAX_FRAME_SIZE: u32 = 1 << 30;
/// Largest number of readers a stream may have.
pub const MAX_READERS: u32 = 1024;
/// Largest number of writers a stream may have at once.
pub const MAX_WRITERS: u32 = 64;
/// Largest number of reader groups a stream may have at once.
pub const MAX_GROUPS: u32 = 64;
/// Length of a group name field, including NUL padding (names are at most 63 bytes).
pub const GROUP_NAME_LEN: usize = 64;
/// Largest total size of one stream segment (64 GiB).
pub const MAX_SEGMENT_SIZE: u64 = 64 << 30;
/// Length of the dtype field of a schema, including NUL padding.
pub const DTYPE_LEN: usize = 32;
/// Largest number of dimensions of a schema shape.
pub const MAX_NDIM: usize = 8;

/// Offset of the reader table in a stream segment.
pub const READERS_OFFSET: u64 = size_of::<StreamHeader>() as u64;
/// Alignment of the first slot (a page, so big frames start page-aligned).
pub const SLOTS_ALIGN: u64 = 4096;
/// Slot sizes are multiples of this.
pub const SLOT_ALIGN: u64 = 64;

/// Header of a stream segment: five 128-byte lines at offset 0.
///
/// Line 0 and 1 are written once by the creator before it publishes `magic`; lines 2-4 are live.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct StreamHeader {
    // ---- line 0 (0..128): identity and geometry; written once by the creator ----
    /// [`STREAM_MAGIC`]; stored last (Release) by the creator, so a reader that sees it (Acquire)
    /// sees every other creator-written field.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`] of the creator.
    pub layout_version: AtomicU32,
    /// Size of this header in bytes (640).
    pub header_size: AtomicU32,
    /// Total size of the segment in bytes; must equal the size of the shared-memory object.
    pub segment_size: AtomicU64,
    /// Number of slots; a power of two in `1..=MAX_CAPACITY`.
    pub capacity: AtomicU32,
    /// Bytes per slot: `round_up(FRAME_HEADER_SIZE + max_frame, 64)`.
    pub slot_size: AtomicU32,
    /// Largest payload a frame may have, in bytes (`1..=MAX_FRAME_SIZE`).
    pub max_frame: AtomicU32,
    /// Number of entries in the reader table (`1..=MAX_READERS`).
    pub max_readers: AtomicU32,
    /// Number of writers allowed at once (`1..=MAX_WRITERS`). With more than one, the segment has
    /// a writer table and writers claim sequence numbers with `claim_seq`.
    pub max_writers: AtomicU32,
    /// `STREAM_FLAG_*` bits.
    pub flags: AtomicU32,
    /// Offset of the reader table ([`READERS_OFFSET`]).
    pub readers_offset: AtomicU64,
    /// Offset of slot 0: `round_up(readers_offset + max_readers * 128, 4096)`.
    pub slots_offset: AtomicU64,
    /// Pid of the creating process.
    pub creator_pid: AtomicU32,
    /// Reserved, zero.
    pub _pad0: AtomicU32,
    /// Start time of the creating process (see `liveness`).
    pub creator_start_time: AtomicU64,
    /// Creation time, nanoseconds since the Unix epoch (CLOCK_REALTIME).
    pub created_unix_ns: AtomicU64,
    /// Backpressure policy, `POLICY_*`: what a writer does when the ring is full.
    pub policy: AtomicU32,
    /// Number of records in the group table (`0..=MAX_GROUPS`).
    pub max_groups: AtomicU32,
    /// Offset of the writer table: `readers_offset + max_readers * 128`.
    pub writers_offset: AtomicU64,
    /// Offset of the group table: `writers_offset + writer entries * 128`.
    pub groups_offset: AtomicU64,
    /// Reserved, zero.
    pub _reserved0: [AtomicU64; 2],

    // ---- line 1 (128..256): schema; written once by the creator ----
    /// NumPy array-interface type string (e.g. `<f4`), ASCII, NUL-padded; empty if no schema.
    pub dtype: [AtomicU8; DTYPE_LEN],
    /// Number of dimensions of the frame shape (`0..=MAX_NDIM`).
    pub ndim: AtomicU32,
    /// Reserved, zero.
    pub _pad1: AtomicU32,
    /// Frame shape; entries past `ndim` are zero.
    pub shape: [AtomicU64; MAX_NDIM],
    /// Reserved, zero.
    pub _reserved1: [AtomicU64; 3],

    // ---- line 2 (256..384): publication; `head` written by the writer on every commit ----
    /// Number of frames published = sequence number of the next frame. Only grows. Stored with
    /// Release after the slot is complete.
    pub head: AtomicU64,
    /// Futex word readers sleep on; the writer increments it (and wakes) after publishing when
    /// `readers_waiting > 0`, and when it closes.
    pub data_futex: AtomicU32,
    /// Reserved, zero (`readers_waiting` up to layout version 4: see line 3).
    pub _pad2: AtomicU32,
    /// Multi-writer streams: the next sequence number a writer will claim (every number below it
    /// is claimed by a writer). Zero, and never written, in single-writer streams.
    pub claim_seq: AtomicU64,
    /// Reserved, zero.
    pub _reserved2: [AtomicU64; 13],

    // ---- line 3 (384..512): sleep announcements; read on every publish and release, written
    // only by a process about to sleep (or done sleeping) ----
    /// Futex word the writer sleeps on when the ring is full; readers increment it (and wake)
    /// after releasing frames when `writer_waiting > 0`, and when they leave.
    pub space_futex: AtomicU32,
    /// 1 while the writer is asleep (or about to sleep) on `space_futex`.
    pub writer_waiting: AtomicU32,
    /// While `writer_waiting`: the reader position at which the writer wants to be woken (a
    /// quarter of the ring past the first free slot, so a full ring does not cost one wake-up per
    /// freed slot). Readers compare their new position with it after releasing frames.
    pub space_wanted: AtomicU64,
    /// Number of readers asleep (or about to sleep) on `data_futex`: those whose entry has
    /// [`OWNER_ASLEEP`] set. The writer loads it after every publication: here, apart from `head`,
    /// that load does not wait for the line `head` was just stored to (layout version 5; it was
    /// next to `head` before, which cost about 15 ns of one-way latency, docs/BENCHMARKS.md).
    pub readers_waiting: AtomicU32,
    /// Reserved, zero.
    pub _pad3: AtomicU32,
    /// Reserved, zero.
    pub _reserved3: [AtomicU64; 13],

    // ---- line 4 (512..640): writer identity, flow control and counters ----
    /// `WRITER_NONE`, `WRITER_CLAIMING | pid`, `WRITER_ACTIVE` or `WRITER_CLOSED`.
    pub writer_state: AtomicU32,
    /// Pid of the attached writer (valid when `writer_state` is `WRITER_ACTIVE` or `WRITER_CLOSED`).
    pub writer_pid: AtomicU32,
    /// Start time of the attached writer process.
    pub writer_start_time: AtomicU64,
    /// Incremented by the writer before and after each scan of the reader table (odd = scanning).
    pub scan_seq: AtomicU64,
    /// Result of the writer's last scan: it may publish sequence numbers below this value
    /// (`min lossless reader position + capacity`) until its next scan.
    pub write_limit: AtomicU64,
    /// Payload bytes published so far.
    pub bytes_written: AtomicU64,
    /// Number of times the writer found the ring full and had to wait.
    pub wait_count: AtomicU64,
    /// Total nanoseconds the writer spent waiting for space.
    pub wait_ns: AtomicU64,
    /// Number of dead readers whose entries the writer reclaimed.
    pub readers_reclaimed: AtomicU64,
    /// Frames discarded because the ring was full (policy `POLICY_DROP_NEWEST`).
    pub frames_dropped: AtomicU64,
    /// Multi-writer streams: sequence numbers skipped (claimed by a writer that died before
    /// publishing them, or given up by an aborted reservation).
    pub frames_skipped: AtomicU64,
    /// Multi-writer streams: dead writers whose entries were freed.
    pub writers_reclaimed: AtomicU64,
    /// Multi-writer streams: number of attached writers, or [`WRITER_COUNT_CLOSED`] once the
    /// last one closed, or [`WRITER_COUNT_DEAD`] once the last one was found dead.
    pub writer_count: AtomicU32,
    /// Pid of the process holding the table lock, 0 when free. The lock serialises the rare
    /// changes to shared tables: reclaiming dead writers of a multi-writer stream; creating,
    /// joining, leaving and repairing reader groups.
    pub table_lock: AtomicU32,
    /// Start time of the process holding the table lock (stored just after taking it).
    pub table_lock_start: AtomicU64,
    /// Reserved, zero.
    pub _reserved4: [AtomicU64; 3],
}

/// One entry of a stream's reader table: 128 bytes, one per possible reader.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct ReaderEntry {
    /// Sequence number of the next frame this reader will read. Every frame below it has been
    /// released by this reader. Written by the reader (Release); read by the writer. A group
    /// member: the first frame it holds (claimed and not released), or [`POS_IDLE`].
    pub pos: AtomicU64,
    /// Who owns the entry, changed only by compare-and-swap: the state (`READER_FREE`,
    /// `READER_CLAIMING`, `READER_ACTIVE` or `READER_ORPHANED`, [`OWNER_STATE_MASK`]), the
    /// [`OWNER_ASLEEP`] bit, a generation ([`OWNER_GENERATION_MASK`]) and the owner's pid (the
    /// high 32 bits; 0 while free).
    pub owner: AtomicU64,
    /// `READER_FLAG_*` bits. Written before the entry becomes active.
    pub flags: AtomicU32,
    /// Index + 1 of the group record of the reader group this reader is a member of; 0 for a
    /// plain reader. Written before the entry becomes active.
    pub group: AtomicU32,
    /// Start time of the reader process (stored after the claim, before the entry becomes
    /// active; judged only once the entry is active).
    pub start_time: AtomicU64,
    /// Frames this reader has read.
    pub frames_read: AtomicU64,
    /// Payload bytes this reader has read.
    pub bytes_read: AtomicU64,
    /// Frames a lossy reader missed because the writer overwrote them first.
    pub missed: AtomicU64,
    /// Group members: end (exclusive) of the frames they claimed, `[pos, held_end)`. Stored
    /// before each claim, so a member that dies mid-claim is never thought to hold less.
    pub held_end: AtomicU64,
    /// Reserved, zero.
    pub _reserved: [AtomicU64; 8],
}

/// One record of a stream's group table: 128 bytes, one per possible reader group.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct GroupRecord {
    /// The next frame to hand to a member; every frame below it has been handed out. Members
    /// claim frames by compare-and-swap on it.
    pub next: AtomicU64,
    /// `GROUP_FREE` or `GROUP_ACTIVE`.
    pub state: AtomicU32,
    /// Number of orphaned entries of the group waiting for a member to take them over (a hint).
    pub orphans: AtomicU32,
    /// Frames handed to another member because the member holding them died (or left without
    /// delivering them).
    pub redelivered: AtomicU64,
    /// Position at which the group started (its first member's start); `next - first` frames
    /// have been handed out.
    pub first: AtomicU64,
    /// Reserved, zero.
    pub _reserved: [AtomicU64; 4],
    /// Group name, ASCII, NUL-padded (at most 63 bytes).
    pub name: [AtomicU8; GROUP_NAME_LEN],
}

/// One entry of a multi-writer stream's writer table: 128 bytes, one per possible writer.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct WriterEntry {
    /// The sequence number this writer claimed last, or is about to claim ([`SEQ_EMPTY`] before
    /// its first claim). Stored before every claim attempt, so the holder of a claimed but
    /// unpublished sequence number can always be found.
    pub claim: AtomicU64,
    /// Who owns the entry, changed only by compare-and-swap, exactly as a reader entry's
    /// [`ReaderEntry::owner`]: the state (`WRITER_ENTRY_FREE`, `WRITER_ENTRY_CLAIMING` or
    /// `WRITER_ENTRY_ACTIVE`, [`OWNER_STATE_MASK`]), a generation ([`OWNER_GENERATION_MASK`],
    /// bumped by every free) and the owner's pid (the high 32 bits; 0 while free). The
    /// [`OWNER_ASLEEP`] bit is never set.
    pub owner: AtomicU64,
    /// Reserved, zero (the writer's pid until layout version 3).
    pub _reserved0: AtomicU64,
    /// Start time of the writer process (stored after the claim, before the entry becomes
    /// active; judged only once the entry is active).
    pub start_time: AtomicU64,
    /// The even `scan_seq` value this writer last tried to move to odd (take the scan), or
    /// [`SEQ_EMPTY`]. Stored before the attempt, so the holder of a scan can always be found.
    pub scan: AtomicU64,
    /// Frames this writer has published (including skipped ones it gave up).
    pub frames_written: AtomicU64,
    /// Payload bytes this writer has published.
    pub bytes_written: AtomicU64,
    /// Reserved, zero.
    pub _reserved: [AtomicU64; 9],
}

/// Header at the start of every slot; the payload follows at offset [`FRAME_HEADER_SIZE`].
#[derive(Debug)]
#[repr(C)]
pub struct FrameHeader {
    /// Sequence number of the frame in this slot, or [`SEQ_EMPTY`] while empty or being written.
    pub seq: AtomicU64,
    /// Commit time, nanoseconds of CLOCK_MONOTONIC (comparable between processes of one boot).
    pub timestamp_ns: AtomicU64,
    /// Payload length in bytes (`0..=max_frame`).
    pub len: AtomicU32,
    /// Application-defined frame flags.
    pub flags: AtomicU32,
    /// CRC32C (Castagnoli) of the payload when the stream has `STREAM_FLAG_CHECKSUM`, else 0.
    pub crc32c: AtomicU32,
    /// Multi-writer streams: `FRAME_STATUS_FRAME` or `FRAME_STATUS_SKIPPED`. Never written (0)
    /// in single-writer streams.
    pub status: AtomicU32,
}

/// Marker for the layout structs, which may be viewed in place inside a mapped segment.
///
/// # Safety
/// Implementors must be `#[repr(C)]` and made only of atomics (or arrays of them), so every bit
/// pattern is a valid value and other processes may write them concurrently.
pub unsafe trait SharedStruct {}
// SAFETY: every field of these structs is an atomic or an array of atomics, and they are repr(C).
unsafe impl SharedStruct for StreamHeader {}
// SAFETY: as above.
unsafe impl SharedStruct for ReaderEntry {}
// SAFETY: as above.
unsafe impl SharedStruct for WriterEntry {}
// SAFETY: as above.
unsafe impl SharedStruct for GroupRecord {}
// SAFETY: as above.
unsafe impl SharedStruct for FrameHeader {}
// SAFETY: as above.
unsafe impl SharedStruct for EventHeader {}

/// Size of [`FrameHeader`]; the payload starts this many bytes into the slot.
pub const FRAME_HEADER_SIZE: usize = size_of::<FrameHeader>();

/// Event mode: a flag that stays set until cleared; `wait` does not consume it.
pub const EVENT_MODE_FLAG: u32 = 0;
/// Event mode: a counter; `set` adds one, `wait` takes one.
pub const EVENT_MODE_COUNTING: u32 = 1;

/// An event segment: two 128-byte lines.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct EventHeader {
    // ---- line 0 (0..128): identity; written once by the creator ----
    /// [`EVENT_MAGIC`]; stored last (Release) by the creator.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`] of the creator.
    pub layout_version: AtomicU32,
    /// `EVENT_MODE_FLAG` or `EVENT_MODE_COUNTING`.
    pub mode: AtomicU32,
    /// Total size of the segment in bytes (256).
    pub segment_size: AtomicU64,
    /// Pid of the creating process.
    pub creator_pid: AtomicU32,
    /// Reserved, zero.
    pub _pad0: AtomicU32,
    /// Start time of the creating process.
    pub creator_start_time: AtomicU64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: AtomicU64,
    /// Reserved, zero.
    pub _reserved0: [AtomicU64; 10],

    // ---- line 1 (128..256): live state ----
    /// The futex word. Flag mode: 0 clear, 1 set. Counting mode: number of pending signals.
    pub value: AtomicU32,
    /// Number of processes asleep (or about to sleep) on `value`.
    pub waiters: AtomicU32,
    /// Number of `set` calls so far (statistics).
    pub sets: AtomicU64,
    /// Reserved, zero.
    pub _reserved1: [AtomicU64; 14],
}

/// Total size of an event segment.
pub const EVENT_SEGMENT_SIZE: u64 = size_of::<EventHeader>() as u64;

// The layout is a public contract: pin every offset so an accidental change fails to compile.
#[cfg(not(loom))]
const _: () = {
    use std::mem::offset_of;
    assert!(size_of::<StreamHeader>() == 5 * LINE);
    assert!(offset_of!(StreamHeader, magic) == 0);
    assert!(offset_of!(StreamHeader, layout_version) == 8);
    assert!(offset_of!(StreamHeader, header_size) == 12);
    assert!(offset_of!(StreamHeader, segment_size) == 16);
    assert!(offset_of!(StreamHeader, capacity) == 24);
    assert!(offset_of!(StreamHeader, slot_size) == 28);
    assert!(offset_of!(StreamHeader, max_frame) == 32);
    assert!(offset_of!(StreamHeader, max_readers) == 36);
    assert!(offset_of!(StreamHeader, max_writers) == 40);
    assert!(offset_of!(StreamHeader, flags) == 44);
    assert!(offset_of!(StreamHeader, readers_offset) == 48);
    assert!(offset_of!(StreamHeader, slots_offset) == 56);
    assert!(offset_of!(StreamHeader, creator_pid) == 64);
    assert!(offset_of!(StreamHeader, creator_start_time) == 72);
    assert!(offset_of!(StreamHeader, created_unix_ns) == 80);
    assert!(offset_of!(StreamHeader, policy) == 88);
    assert!(offset_of!(StreamHeader, max_groups) == 92);
    assert!(offset_of!(StreamHeader, writers_offset) == 96);
    assert!(offset_of!(StreamHeader, groups_offset) == 104);
    assert!(offset_of!(StreamHeader, dtype) == 128);
    assert!(offset_of!(StreamHeader, ndim) == 160);
    assert!(offset_of!(StreamHeader, shape) == 168);
    assert!(offset_of!(StreamHeader, head) == 256);
    assert!(offset_of!(StreamHeader, data_futex) == 264);
    assert!(offset_of!(StreamHeader, claim_seq) == 272);
    assert!(offset_of!(StreamHeader, space_futex) == 384);
    assert!(offset_of!(StreamHeader, writer_waiting) == 388);
    assert!(offset_of!(StreamHeader, space_wanted) == 392);
    assert!(offset_of!(StreamHeader, readers_waiting) == 400);
    assert!(offset_of!(StreamHeader, writer_state) == 512);
    assert!(offset_of!(StreamHeader, writer_pid) == 516);
    assert!(offset_of!(StreamHeader, writer_start_time) == 520);
    assert!(offset_of!(StreamHeader, scan_seq) == 528);
    assert!(offset_of!(StreamHeader, write_limit) == 536);
    assert!(offset_of!(StreamHeader, bytes_written) == 544);
    assert!(offset_of!(StreamHeader, wait_count) == 552);
    assert!(offset_of!(StreamHeader, wait_ns) == 560);
    assert!(offset_of!(StreamHeader, readers_reclaimed) == 568);
    assert!(offset_of!(StreamHeader, frames_dropped) == 576);
    assert!(offset_of!(StreamHeader, frames_skipped) == 584);
    assert!(offset_of!(StreamHeader, writers_reclaimed) == 592);
    assert!(offset_of!(StreamHeader, writer_count) == 600);
    assert!(offset_of!(StreamHeader, table_lock) == 604);
    assert!(offset_of!(StreamHeader, table_lock_start) == 608);

    assert!(size_of::<WriterEntry>() == LINE);
    assert!(offset_of!(WriterEntry, claim) == 0);
    assert!(offset_of!(WriterEntry, owner) == 8);
    assert!(offset_of!(WriterEntry, _reserved0) == 16);
    assert!(offset_of!(WriterEntry, start_time) == 24);
    assert!(offset_of!(WriterEntry, scan) == 32);
    assert!(offset_of!(WriterEntry, frames_written) == 40);
    assert!(offset_of!(WriterEntry, bytes_written) == 48);

    assert!(size_of::<ReaderEntry>() == LINE);
    assert!(offset_of!(ReaderEntry, pos) == 0);
    assert!(offset_of!(ReaderEntry, owner) == 8);
    assert!(offset_of!(ReaderEntry, flags) == 16);
    assert!(offset_of!(ReaderEntry, group) == 20);
    assert!(offset_of!(ReaderEntry, start_time) == 24);
    assert!(offset_of!(ReaderEntry, frames_read) == 32);
    assert!(offset_of!(ReaderEntry, bytes_read) == 40);
    assert!(offset_of!(ReaderEntry, missed) == 48);
    assert!(offset_of!(ReaderEntry, held_end) == 56);

    assert!(size_of::<GroupRecord>() == LINE);
    assert!(offset_of!(GroupRecord, next) == 0);
    assert!(offset_of!(GroupRecord, state) == 8);
    assert!(offset_of!(GroupRecord, orphans) == 12);
    assert!(offset_of!(GroupRecord, redelivered) == 16);
    assert!(offset_of!(GroupRecord, first) == 24);
    assert!(offset_of!(GroupRecord, name) == 64);

    assert!(size_of::<FrameHeader>() == 32);
    assert!(offset_of!(FrameHeader, seq) == 0);
    assert!(offset_of!(FrameHeader, timestamp_ns) == 8);
    assert!(offset_of!(FrameHeader, len) == 16);
    assert!(offset_of!(FrameHeader, flags) == 20);
    assert!(offset_of!(FrameHeader, crc32c) == 24);
    assert!(offset_of!(FrameHeader, status) == 28);

    assert!(size_of::<EventHeader>() == 2 * LINE);
    assert!(offset_of!(EventHeader, magic) == 0);
    assert!(offset_of!(EventHeader, layout_version) == 8);
    assert!(offset_of!(EventHeader, mode) == 12);
    assert!(offset_of!(EventHeader, segment_size) == 16);
    assert!(offset_of!(EventHeader, creator_pid) == 24);
    assert!(offset_of!(EventHeader, creator_start_time) == 32);
    assert!(offset_of!(EventHeader, created_unix_ns) == 40);
    assert!(offset_of!(EventHeader, value) == 128);
    assert!(offset_of!(EventHeader, waiters) == 132);
    assert!(offset_of!(EventHeader, sets) == 136);
};

/// Geometry of a stream segment, computed from creation parameters or validated from a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamGeometry {
    /// Number of slots (a power of two).
    pub capacity: u32,
    /// Largest payload per frame.
    pub max_frame: u32,
    /// Bytes per slot.
    pub slot_size: u32,
    /// Entries in the reader table.
    pub max_readers: u32,
    /// Writers allowed at once.
    pub max_writers: u32,
    /// Entries in the writer table: `max_writers` for a multi-writer stream, 0 for a
    /// single-writer stream (whose writer is recorded in the header).
    pub writer_entries: u32,
    /// Offset of the writer table.
    pub writers_offset: u64,
    /// Records in the group table.
    pub max_groups: u32,
    /// Offset of the group table.
    pub groups_offset: u64,
    /// Offset of slot 0.
    pub slots_offset: u64,
    /// Total segment size.
    pub segment_size: u64,
}

impl StreamGeometry {
    /// Computes the geometry for the given parameters, or says which one is out of range.
    pub fn new(
        capacity: u32,
        max_frame: u32,
        max_readers: u32,
        max_writers: u32,
        max_groups: u32,
    ) -> Result<Self, String> {
        if capacity == 0 || capacity > MAX_CAPACITY || !capacity.is_power_of_two() {
            return Err(format!(
                "capacity {capacity} must be a power of two between 1 and {MAX_CAPACITY}"
            ));
        }
        if max_frame == 0 || max_frame > MAX_FRAME_SIZE {
            return Err(format!(
                "maximum frame size {max_frame} must be between 1 and {MAX_FRAME_SIZE} bytes"
            ));
        }
        if max_readers == 0 || max_readers > MAX_READERS {
            return Err(format!(
                "max readers {max_readers} must be between 1 and {MAX_READERS}"
            ));
        }
        if max_writers == 0 || max_writers > MAX_WRITERS {
            return Err(format!(
                "max writers {max_writers} must be between 1 and {MAX_WRITERS}"
            ));
        }
        if max_groups > MAX_GROUPS {
            return Err(format!(
                "max groups {max_groups} must be between 0 and {MAX_GROUPS}"
            ));
        }
        let writer_entries = if max_writers > 1 { max_writers } else { 0 };
        let slot_size = round_up(FRAME_HEADER_SIZE as u64 + max_frame as u64, SLOT_ALIGN);
        let writers_offset = READERS_OFFSET + max_readers as u64 * LINE as u64;
        let groups_offset = writers_offset + writer_entries as u64 * LINE as u64;
        let slots_offset = round_up(groups_offset + max_groups as u64 * LINE as u64, SLOTS_ALIGN);
        let segment_size = slots_offset + slot_size * capacity as u64;
        if segment_size > MAX_SEGMENT_SIZE {
            return Err(format!(
                "capacity {capacity} x frame size {max_frame} needs {segment_size} bytes of shared \
                 memory, more than the limit of {MAX_SEGMENT_SIZE}; use fewer or smaller slots"
            ));
        }
        Ok(StreamGeometry {
            capacity,
            max_frame,
            slot_size: slot_size as u32,
            max_readers,
            max_writers,
            writer_entries,
            writers_offset,
            max_groups,
            groups_offset,
            slots_offset,
            segment_size,
        })
    }

    /// Offset of the slot that holds sequence number `seq`.
    #[inline]
    pub fn slot_offset(&self, seq: u64) -> usize {
        debug_assert!(self.capacity.is_power_of_two());
        let index = seq & (self.capacity as u64 - 1);
        (self.slots_offset + index * self.slot_size as u64) as usize
    }

    /// Offset of reader entry `index`.
    #[inline]
    pub fn reader_offset(&self, index: u32) -> usize {
        debug_assert!(index < self.max_readers);
        READERS_OFFSET as usize + index as usize * LINE
    }

    /// Offset of group record `index`.
    #[inline]
    pub fn group_offset(&self, index: u32) -> usize {
        debug_assert!(index < self.max_groups);
        self.groups_offset as usize + index as usize * LINE
    }

    /// Offset of writer entry `index` (multi-writer streams).
    #[inline]
    pub fn writer_offset(&self, index: u32) -> usize {
        debug_assert!(index < self.writer_entries);
        self.writers_offset as usize + index as usize * LINE
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two).
#[inline]
pub const fn round_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_rounds_slots_and_aligns_the_slot_region() {
        let g = StreamGeometry::new(8, 100, 4, 1, 0).unwrap();
        assert_eq!(g.slot_size, 192); // 32 + 100 rounded up to 64
        assert_eq!(g.writers_offset, 1152); // 640 + 4 * 128
        assert_eq!(g.slots_offset, 4096); // 1152, no writer table, rounded to a page
        assert_eq!(g.segment_size, 4096 + 8 * 192);
        assert_eq!(g.slot_offset(9), 4096 + 192);
    }

    #[test]
    fn a_multi_writer_stream_has_a_writer_table_after_the_reader_table() {
        let g = StreamGeometry::new(8, 100, 4, 40, 2).unwrap();
        assert_eq!(g.writer_entries, 40);
        assert_eq!(g.writer_offset(1), 1152 + 128);
        // The group table follows: 1152 + 40 * 128 = 6272; + 2 * 128, rounded to a page.
        assert_eq!(g.group_offset(1), 6272 + 128);
        assert_eq!(g.slots_offset, 8192);
    }

    #[test]
    fn geometry_refuses_zero_absurd_and_non_power_of_two_sizes() {
        assert!(StreamGeometry::new(0, 64, 1, 1, 0)
            .unwrap_err()
            .contains("capacity"));
        assert!(StreamGeometry::new(3, 64, 1, 1, 0)
            .unwrap_err()
            .contains("power of two"));
        assert!(StreamGeometry::new(8, 0, 1, 1, 0)
            .unwrap_err()
            .contains("frame size"));
        assert!(StreamGeometry::new(8, 64, 0, 1, 0)
            .unwrap_err()
            .contains("readers"));
        assert!(StreamGeometry::new(8, 64, 1, 0, 0)
            .unwrap_err()
            .contains("writers"));
        assert!(StreamGeometry::new(8, 64, 1, 65, 0)
            .unwrap_err()
            .contains("writers"));
        assert!(StreamGeometry::new(8, 64, 1, 1, 65)
            .unwrap_err()
            .contains("groups"));
        assert!(StreamGeometry::new(1 << 24, 1 << 30, 1, 1, 0)
            .unwrap_err()
            .contains("limit"));
    }

    #[test]
    fn magics_spell_their_names_in_memory_order() {
        assert_eq!(&STREAM_MAGIC.to_le_bytes(), b"SHMLSTRM");
        assert_eq!(&EVENT_MAGIC.to_le_bytes(), b"SHMLEVNT");
    }
}
