//! Readers of a stream: copy reads, batch reads, zero-copy acquire/release, lossy taps.

use super::protocol::{self, entry::Owner};
use super::{group, peers, tables, Shared};
use crate::error::{Error, Result};
use crate::layout::{
    FrameHeader, FRAME_STATUS_SKIPPED, POS_IDLE, READER_ACTIVE, READER_CLAIMING, READER_FLAG_LOSSY,
    WRITER_ACTIVE, WRITER_CLAIMING, WRITER_CLOSED, WRITER_NONE,
};
use crate::liveness::ProcessId;
use crate::schema::Schema;
use crate::sync::{fence, Ordering};
use crate::wait::{futex_wait, futex_wake, Deadline, Step, WaitStrategy};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a new reader starts.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartPosition {
    /// Only frames published after the reader joined (the default). A reader that joins before
    /// the first write misses nothing.
    #[default]
    Next = 0,
    /// The most recently published frame, then everything after it.
    Newest = 1,
    /// The oldest frame still guaranteed to be in the ring, then everything after it.
    Oldest = 2,
}

impl StartPosition {
    /// The start position with this number (as passed through the C ABI).
    pub fn from_u32(value: u32) -> Option<StartPosition> {
        match value {
            0 => Some(StartPosition::Next),
            1 => Some(StartPosition::Newest),
            2 => Some(StartPosition::Oldest),
            _ => None,
        }
    }
}

/// Options of a reader handle.
#[derive(Debug, Clone, Default)]
pub struct ReaderOptions {
    /// Where to start reading.
    pub start: StartPosition,
    /// A lossy reader never holds the writer back; when the writer laps it, it skips ahead and
    /// [`FrameInfo::missed`] says how many frames it lost: a reader with its own `drop_oldest`
    /// policy (see [`Backpressure`](super::Backpressure)). Lossy readers cannot use zero-copy
    /// [`Reader::acquire`]. On a stream whose policy is `DropOldest` every reader is lossy.
    pub lossy: bool,
    /// How the reader waits for frames.
    pub wait: WaitStrategy,
    /// Timeout of the blocking calls; `None` (the default) waits for ever.
    pub timeout: Option<Duration>,
    /// Refuse to attach ([`Error::SchemaMismatch`]) unless the stream has exactly this schema.
    pub require_schema: Option<Schema>,
    /// Join the reader group of this name (competing consumers): each frame goes to exactly one
    /// member of the group, while plain readers and other groups still get every frame. `None`
    /// (the default): a plain reader.
    ///
    /// A name is 1 to 63 bytes of letters, digits, `_`, `.` and `-` ([`Error::InvalidName`]
    /// otherwise). The first member creates the group at `start`; later members join it where it
    /// is (their `start` is ignored). A stream has room for `max_groups` groups at once
    /// ([`StreamOptions::max_groups`](super::StreamOptions::max_groups)); the last member to
    /// leave ends the group. Members are lossless (`lossy` with a group is
    /// [`Error::InvalidArgument`], and so is a group on a `DropOldest` stream).
    ///
    /// What a member sees: frames in increasing order but not consecutive ([`FrameInfo::seq`]
    /// stays the stream's sequence number, so the gaps are the frames other members got); copy,
    /// batch and zero-copy reads all work; a batch read claims up to as many frames as it has
    /// room for at once, a single read one. The writer waits for the group as for a lossless
    /// reader: for the lowest frame a member holds (claimed and not yet released), or the next
    /// one the group will hand out. End of stream and the writer's death reach every member.
    ///
    /// **Delivery is at-least-once within the group.** Each frame is delivered to exactly one
    /// member, unless that member dies (SIGKILL) while it holds the frame (claimed, and not yet
    /// released: a zero-copy frame until its release, a copy read until the read returns): then
    /// the frames it held are delivered again to another member that is still reading, and
    /// counted in the group's `redelivered` statistic. A member told [`Error::EndOfStream`] that
    /// reads again is still reading: it first takes the frames of members that died since. Frames
    /// held by a member that dies after every other member stopped reading are not delivered
    /// again. A member that closes normally releases what it read; frames it claimed but never
    /// delivered (after an error) go to another member. Frames held by a member whose whole group
    /// died are released, as a dead reader's are.
    ///
    /// ```
    /// use shmline::{Error, ReaderOptions, Stream, StreamOptions};
    /// # let name = format!("doc-group-{}", std::process::id());
    /// let stream = Stream::create(&name, &StreamOptions {
    ///     max_frame_size: 8,
    ///     unlink_on_close: true,
    ///     ..Default::default()
    /// })?;
    /// let member = ReaderOptions { group: Some("workers".into()), ..Default::default() };
    /// let (mut a, mut b) = (stream.reader(&member)?, stream.reader(&member)?);
    /// let mut plain = stream.reader(&ReaderOptions::default())?;
    /// let mut writer = stream.writer()?;
    /// writer.write(b"one")?;
    /// writer.write(b"two")?;
    /// assert_eq!(a.try_read()?.data, b"one");
    /// assert_eq!(b.try_read()?.data, b"two");
    /// assert!(matches!(a.try_read(), Err(Error::Empty))); // the group has had both
    /// assert_eq!(plain.try_read()?.data, b"one"); // a plain reader gets every frame
    /// # Ok::<(), shmline::Error>(())
    /// ```
    pub group: Option<String>,
}

/// Metadata of one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FrameInfo {
    /// Sequence number (0 for the stream's first frame; consecutive for a lossless reader).
    pub seq: u64,
    /// Commit time, nanoseconds of CLOCK_MONOTONIC.
    pub timestamp_ns: u64,
    /// Payload length in bytes.
    pub len: u32,
    /// Application flags given by the writer.
    pub flags: u32,
    /// Frames this reader missed just before this one: frames a lossy reader lost because the
    /// writer overwrote them, and sequence numbers of a multi-writer stream that were skipped
    /// (claimed by a writer that died before publishing them). Always 0 for a lossless reader of
    /// a single-writer stream.
    pub missed: u64,
}

/// A frame copied out of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    /// The frame's metadata.
    pub info: FrameInfo,
    /// The payload.
    pub data: Vec<u8>,
}

/// A reader of a stream. Each reader sees every frame in order (a lossy one: every frame the
/// writer has not overwritten first; a member of a reader group: its share of them, see
/// [`ReaderOptions::group`]). Dropping it leaves the stream, so it no longer holds the writer
/// back.
pub struct Reader {
    shared: Arc<Shared>,
    index: u32,
    /// Next sequence number to read; every frame below it has been released.
    pos: u64,
    /// Last value of `head` we loaded (frames below it are published).
    head: u64,
    capacity: u64,
    lossy: bool,
    frames_read: u64,
    bytes_read: u64,
    missed: u64,
    /// Missed frames not yet reported in a FrameInfo.
    missed_pending: u64,
    /// Info of the frame handed out by `acquire`, if any.
    acquired: Option<FrameInfo>,
    wait: WaitStrategy,
    timeout: Option<Duration>,
    /// When we last read `/proc` to see whether the writer is alive (`None`: never).
    liveness_checked: Option<Instant>,
    /// Set once the writer was found dead (pid + start time no longer alive): final.
    writer_dead: bool,
    /// Set once a wait ended with the end of the stream or the writer's death: later calls that
    /// find no frame look at the writer state at once instead of polling first.
    gone: bool,
    /// Whether the stream has several writers (skipped frames, a writer table to judge).
    multi: bool,
    /// The reader group this reader is a member of (`None`: a plain reader). A member's `head`
    /// is the end of the frames it claimed, not the stream's head: it may read `pos..head`.
    member: Option<Member>,
    /// How many sleeping writers a release wakes: the one writer, or every writer of a
    /// multi-writer stream.
    writer_wakes: i32,
}

/// What a reader needs to know of the group it is a member of.
#[derive(Debug)]
struct Member {
    /// Index of the group's record in the group table.
    group: u32,
    /// How many frames the next claim asks for (1 for single reads, the room of a batch read).
    want: u64,
    /// The group's name.
    name: String,
    /// When we last looked for dead members of the group (`None`: never).
    peers_checked: Option<Instant>,
    /// The deadline of the current read: adopting a dead member's frames waits no longer.
    deadline: Deadline,
}

/// A spinning reader looks at the writer's state (end of stream) once every this many polls.
const STATE_CHECK_POLLS: u32 = 256;

/// Polls of `head` alone, without a pause, by a reader that found its next frame complete in its
/// slot (`seq` is stored just before `head`): enough to see `head` follow by many times, few
/// enough (a few microseconds) to fall back soon to the normal wait, with its checks of the
/// writer's state, when the writer died between the two stores.
const HEAD_FOLLOWS_POLLS: u32 = 128;

/// Least time between two checks of the writer's liveness. Each check reads `/proc` (several
/// microseconds), and a reader that keeps up with its writer finds the ring empty on almost every
/// call: checking each time would put a file read on the path of every frame. A dead writer is
/// still reported within this interval (or one futex sleep slice, whichever is longer).
const LIVENESS_CHECK_INTERVAL: Duration = Duration::from_millis(10);

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("stream", &self.shared.name())
            .field("index", &self.index)
            .field("pos", &self.pos)
            .field("lossy", &self.lossy)
            .finish()
    }
}

impl Reader {
    pub(crate) fn attach(shared: Arc<Shared>, options: &ReaderOptions) -> Result<Reader> {
        // Register for light fences now (once per process; it may take a scheduler round trip
        // in a multi-threaded process), not in the first publication or release.
        crate::sync::light_fences();
        if let Some(required) = &options.require_schema {
            check_schema(&shared, required)?;
        }
        // Under drop_oldest the writer never waits for anyone: every reader reads like a lossy one.
        let lossy = options.lossy || shared.info.backpressure == super::Backpressure::DropOldest;
        if let Some(name) = &options.group {
            group::validate_name(name)?;
            if options.lossy {
                return Err(Error::InvalidArgument(format!(
                    "cannot join reader group {name:?} as a lossy reader: group members share \
                     every frame between them and are lossless; drop lossy, or read as a plain \
                     lossy reader without a group"
                )));
            }
            if lossy {
                return Err(Error::InvalidArgument(format!(
                    "cannot join reader group {name:?}: stream {:?} has policy drop_oldest, so \
                     every reader is lossy, and group members must be lossless",
                    shared.name()
                )));
            }
        }
        let me = ProcessId::current();
        // The claim records our pid: until the entry is active, reclaimers judge us by it alone.
        let (index, claimed) = claim_entry(&shared, me.pid)?;
        let entry = shared.entry(index);
        // Relaxed: this and the fields below are published by the SeqCst activation (in
        // `protocol::join` or `group::join`), before which nobody reads them.
        entry.start_time.store(me.start_time, Ordering::Relaxed);
        entry
            .flags
            .store(if lossy { READER_FLAG_LOSSY } else { 0 }, Ordering::Relaxed);
        entry.frames_read.store(0, Ordering::Relaxed);
        entry.bytes_read.store(0, Ordering::Relaxed);
        entry.missed.store(0, Ordering::Relaxed);
        let hdr = shared.header();
        let capacity = shared.geo.capacity as u64;
        let head = protocol::head(hdr);
        if head > super::MAX_HEAD {
            tables::free_reader(&shared, index, READER_CLAIMING);
            return Err(Error::corrupt(format!(
                "stream {:?}: head {head} is impossibly large",
                shared.name()
            )));
        }
        let start = |head: u64| match options.start {
            StartPosition::Next => head,
            StartPosition::Newest => head.saturating_sub(1),
            StartPosition::Oldest => head.saturating_sub(capacity),
        };
        if let Some(name) = &options.group {
            let mut scan = ScanWait::new(&shared, Deadline::Never);
            let g = match group::join(&shared, index, claimed, name, start, || scan.poll()) {
                Ok(g) => g,
                Err(e) => {
                    tables::free_reader(&shared, index, READER_CLAIMING);
                    return Err(e);
                }
            };
            let stuck = scan.check();
            let reader = Reader::new(
                shared,
                index,
                0,
                0,
                false,
                options,
                Some(Member {
                    group: g,
                    want: 1,
                    name: name.clone(),
                    peers_checked: None,
                    deadline: Deadline::Never,
                }),
            );
            // On failure, dropping the reader leaves the group.
            stuck?;
            return Ok(reader);
        }
        // Relaxed: published by the SeqCst activation in `protocol::join`.
        entry.group.store(0, Ordering::Relaxed);
        let mut scan = ScanWait::new(&shared, Deadline::Never);
        let pos = protocol::join(hdr, entry, claimed, start(head), capacity, || scan.poll());
        if let Err(e) = scan.check() {
            tables::free_reader(&shared, index, READER_ACTIVE);
            return Err(e);
        }
        // The limit may run ahead of `head` by a whole batch the writer has not published yet,
        // so only an absurd one can be told from a real one.
        if pos > super::MAX_HEAD {
            tables::free_reader(&shared, index, READER_ACTIVE);
            return Err(Error::corrupt(format!(
                "stream {:?}: write_limit puts a joining reader at impossible position {pos}",
                shared.name()
            )));
        }
        Ok(Reader::new(shared, index, pos, head, lossy, options, None))
    }

    fn new(
        shared: Arc<Shared>,
        index: u32,
        pos: u64,
        head: u64,
        lossy: bool,
        options: &ReaderOptions,
        member: Option<Member>,
    ) -> Reader {
        Reader {
            index,
            pos,
            head,
            capacity: shared.geo.capacity as u64,
            lossy,
            frames_read: 0,
            bytes_read: 0,
            missed: 0,
            missed_pending: 0,
            acquired: None,
            wait: options.wait,
            timeout: options.timeout,
            liveness_checked: None,
            writer_dead: false,
            gone: false,
            multi: shared.multi_writer(),
            writer_wakes: if shared.multi_writer() { i32::MAX } else { 1 },
            member,
            shared,
        }
    }

    /// The name of the reader group this reader is a member of, if any.
    pub fn group(&self) -> Option<&str> {
        self.member.as_ref().map(|m| m.name.as_str())
    }

    /// Sequence number of the next frame this reader will read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Total frames this (lossy) reader has missed.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Whether this reader is lossy (asked for, or forced by a `drop_oldest` stream).
    pub fn is_lossy(&self) -> bool {
        self.lossy
    }

    /// The stream's maximum frame size in bytes.
    pub fn max_frame_size(&self) -> usize {
        self.shared.geo.max_frame as usize
    }

    /// Name of the stream.
    pub fn stream_name(&self) -> &str {
        self.shared.name()
    }

    /// Another handle to the stream this reader reads: the same mapping, so its schema,
    /// geometry and statistics (useful for a reader taken from a pipeline task, which comes
    /// without its stream).
    pub fn stream(&self) -> super::Stream {
        super::Stream {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The stream's schema, if any.
    pub fn schema(&self) -> Option<&Schema> {
        self.shared.info.schema.as_ref()
    }

    /// [`Error::SchemaMismatch`] unless the stream has exactly the schema `required` (what
    /// [`ReaderOptions::require_schema`] checks at attach time, for a reader attached earlier).
    pub(crate) fn check_schema(&self, required: &Schema) -> Result<()> {
        check_schema(&self.shared, required)
    }

    /// Changes how the blocking calls wait, and their timeout (the options given at attach time).
    pub(crate) fn set_waiting(&mut self, wait: WaitStrategy, timeout: Option<Duration>) {
        self.wait = wait;
        self.timeout = timeout;
    }

    /// Reads the next frame as owned bytes, waiting up to the handle's timeout.
    pub fn read(&mut self) -> Result<OwnedFrame> {
        self.read_owned(Deadline::after(self.timeout))
    }

    /// Reads the next frame if there is one now; [`Error::Empty`] otherwise.
    pub fn try_read(&mut self) -> Result<OwnedFrame> {
        self.read_owned(Deadline::Now)
    }

    /// Reads the next frame, waiting at most `timeout` ([`Error::Timeout`]).
    pub fn read_timeout(&mut self, timeout: Duration) -> Result<OwnedFrame> {
        self.read_owned(Deadline::after(Some(timeout)))
    }

    /// Reads the next frame, waiting until `deadline` ([`Error::Timeout`]).
    pub fn read_deadline(&mut self, deadline: Instant) -> Result<OwnedFrame> {
        self.read_owned(Deadline::At(deadline))
    }

    fn read_owned(&mut self, deadline: Deadline) -> Result<OwnedFrame> {
        let mut data = vec![0u8; self.max_frame_size()];
        let info = self.read_into_until(&mut data, deadline)?;
        data.truncate(info.len as usize);
        Ok(OwnedFrame { info, data })
    }

    /// Copies the next frame into `buf`, waiting up to the handle's timeout.
    /// [`Error::BufferTooSmall`] leaves the frame unread.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<FrameInfo> {
        self.read_into_until(buf, Deadline::after(self.timeout))
    }

    /// Copies the next frame into `buf` if there is one now; [`Error::Empty`] otherwise.
    pub fn try_read_into(&mut self, buf: &mut [u8]) -> Result<FrameInfo> {
        self.read_into_until(buf, Deadline::Now)
    }

    /// Copies the next frame into `buf`, waiting at most `timeout` ([`Error::Timeout`]).
    pub fn read_into_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<FrameInfo> {
        self.read_into_until(buf, Deadline::after(Some(timeout)))
    }

    /// Copies the next frame into `buf`, waiting until `deadline` ([`Error::Timeout`]).
    pub fn read_into_deadline(&mut self, buf: &mut [u8], deadline: Instant) -> Result<FrameInfo> {
        self.read_into_until(buf, Deadline::At(deadline))
    }

    /// Copies the next frame into `buf`, waiting as `deadline` says (the C ABI's timeouts).
    pub(crate) fn read_into_until(
        &mut self,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<FrameInfo> {
        self.check_idle()?;
        loop {
            self.wait_for_frame(deadline, true)?;
            let mut info = FrameInfo::default();
            if self.copy_frame(self.pos, buf, &mut info)? {
                self.advance(1, info.len as u64);
                return Ok(self.report(info));
            }
        }
    }

    /// Copies up to `infos.len()` available frames back to back into `buf`, waiting up to the
    /// handle's timeout for the first. Returns the number read; frame `i` is
    /// `buf[offset_i..offset_i + infos[i].len]` where `offset_i` is the sum of the earlier lengths.
    /// Stops early at a frame that does not fit (it stays unread).
    pub fn read_batch(&mut self, buf: &mut [u8], infos: &mut [FrameInfo]) -> Result<usize> {
        self.read_batch_until(buf, infos, Deadline::after(self.timeout))
    }

    /// As [`Reader::read_batch`] without waiting ([`Error::Empty`] if no frame is available).
    pub fn try_read_batch(&mut self, buf: &mut [u8], infos: &mut [FrameInfo]) -> Result<usize> {
        self.read_batch_until(buf, infos, Deadline::Now)
    }

    /// As [`Reader::read_batch`], waiting at most `timeout` for the first frame.
    pub fn read_batch_timeout(
        &mut self,
        buf: &mut [u8],
        infos: &mut [FrameInfo],
        timeout: Duration,
    ) -> Result<usize> {
        self.read_batch_until(buf, infos, Deadline::after(Some(timeout)))
    }

    /// As [`Reader::read_batch`], waiting until `deadline` for the first frame.
    pub fn read_batch_deadline(
        &mut self,
        buf: &mut [u8],
        infos: &mut [FrameInfo],
        deadline: Instant,
    ) -> Result<usize> {
        self.read_batch_until(buf, infos, Deadline::At(deadline))
    }

    /// As [`Reader::read_batch`], waiting as `deadline` says (the C ABI's timeouts).
    pub(crate) fn read_batch_until(
        &mut self,
        buf: &mut [u8],
        infos: &mut [FrameInfo],
        deadline: Deadline,
    ) -> Result<usize> {
        let Some(member) = self.member.as_mut() else {
            return self.read_batch_inner(buf, infos, deadline);
        };
        // A member claims frames for the whole batch at once.
        member.want = infos.len().max(1) as u64;
        let result = self.read_batch_inner(buf, infos, deadline);
        if let Some(member) = self.member.as_mut() {
            member.want = 1;
        }
        result
    }

    fn read_batch_inner(
        &mut self,
        buf: &mut [u8],
        infos: &mut [FrameInfo],
        deadline: Deadline,
    ) -> Result<usize> {
        self.check_idle()?;
        if infos.is_empty() {
            return Err(Error::InvalidArgument(
                "read_batch needs room for at least one frame".into(),
            ));
        }
        let mut count = 0;
        let mut offset = 0;
        let mut bytes = 0u64;
        while count < infos.len() {
            // Lossless readers release the whole batch at the end; lossy ones frame by frame.
            let seq = if self.lossy {
                self.pos
            } else {
                self.pos + count as u64
            };
            if seq >= self.head {
                if count > 0 {
                    // Our copy of `head` may be older than the frames already published: look
                    // once more before stopping short (an error here is the next call's to report).
                    if self.refresh_head().is_err() || seq >= self.head {
                        break;
                    }
                    continue;
                }
                // Waits on `head` alone: a batch wants the frames a publication brings, and
                // watching the slot that the writer is filling would only slow it down.
                self.wait_for_frame(deadline, false)?;
                continue;
            }
            let mut info = FrameInfo::default();
            match self.copy_frame(seq, &mut buf[offset..], &mut info) {
                Ok(true) => {
                    offset += info.len as usize;
                    infos[count] = self.report(info);
                    count += 1;
                    if self.lossy {
                        self.advance(1, info.len as u64);
                    } else {
                        bytes += info.len as u64;
                    }
                }
                // A skipped frame after frames not yet released: release those first.
                Ok(false) if !self.lossy && seq != self.pos => break,
                Ok(false) => {}
                Err(Error::BufferTooSmall { .. }) if count > 0 => break,
                Err(e) => {
                    if !self.lossy {
                        self.advance(count as u64, bytes);
                    }
                    return Err(e);
                }
            }
        }
        if !self.lossy {
            self.advance(count as u64, bytes);
        }
        Ok(count)
    }

    /// Waits (up to the handle's timeout) for the next frame and lends it in place, without a
    /// copy. The frame is released when the slot is dropped. Lossless readers only.
    pub fn acquire(&mut self) -> Result<ReadSlot<'_>> {
        self.acquire_until(Deadline::after(self.timeout))
    }

    /// Lends the next frame in place if there is one now; [`Error::Empty`] otherwise.
    pub fn try_acquire(&mut self) -> Result<ReadSlot<'_>> {
        self.acquire_until(Deadline::Now)
    }

    /// As [`Reader::acquire`], waiting at most `timeout` ([`Error::Timeout`]).
    pub fn acquire_timeout(&mut self, timeout: Duration) -> Result<ReadSlot<'_>> {
        self.acquire_until(Deadline::after(Some(timeout)))
    }

    /// As [`Reader::acquire`], waiting until `deadline` ([`Error::Timeout`]).
    pub fn acquire_deadline(&mut self, deadline: Instant) -> Result<ReadSlot<'_>> {
        self.acquire_until(Deadline::At(deadline))
    }

    fn acquire_until(&mut self, deadline: Deadline) -> Result<ReadSlot<'_>> {
        self.acquire_frame(deadline)?;
        Ok(ReadSlot { reader: self })
    }

    /// Lends the next frame in place, for callers (the C ABI) that cannot hold a slot: returns a
    /// pointer to its `info.len` bytes, valid until [`Reader::release_raw`]. The writer never
    /// reuses the slot before then.
    pub fn acquire_raw(&mut self, deadline: Deadline) -> Result<(*const u8, FrameInfo)> {
        let payload = self.acquire_frame(deadline)?;
        let info = self
            .acquired
            .expect("acquire_frame records the frame it lends");
        Ok((payload, info))
    }

    /// Waits for the next frame, records it as lent (`self.acquired`) and returns a pointer to its
    /// payload. The caller keeps nothing else: a lent frame's metadata is read back from the
    /// reader, so the result stays one word (a larger one is copied through the stack with loads
    /// wider than its stores, a stall on every frame).
    #[inline(always)]
    fn acquire_frame(&mut self, deadline: Deadline) -> Result<*const u8> {
        if self.lossy {
            return Err(self.acquire_unsupported());
        }
        self.check_idle()?;
        let (frame, payload, info) = loop {
            self.wait_for_frame(deadline, true)?;
            let (frame, payload) = self.shared.slot(self.pos);
            let len = self.validate(frame, self.pos)?;
            if !self.skipped(frame) {
                break (frame, payload, frame_info(frame, self.pos, len));
            }
            self.skip_one();
        };
        if self.shared.checksum() {
            // SAFETY: `payload` points to max_frame bytes of the mapping; len <= max_frame was
            // validated; the slot cannot be rewritten while our position is at it.
            let data = unsafe { std::slice::from_raw_parts(payload, info.len as usize) };
            self.check_crc(frame, data, info.seq)?;
        }
        // Skipped numbers stepped over above are reported with this frame, as a copy read does.
        self.acquired = Some(self.report(info));
        Ok(payload)
    }

    /// The error of a lossy reader asked to lend a frame in place.
    #[cold]
    #[inline(never)]
    fn acquire_unsupported(&self) -> Error {
        let why = if self.shared.info.backpressure == super::Backpressure::DropOldest {
            "the stream's policy is drop_oldest, so every reader is lossy"
        } else {
            "this reader is lossy"
        };
        Error::Unsupported(format!(
            "zero-copy acquire needs a lossless reader and {why}: the writer may overwrite the \
             frame while it is lent; use read or read_into"
        ))
    }

    /// Releases the frame lent by [`Reader::acquire_raw`]; [`Error::WrongState`] if none is.
    pub fn release_raw(&mut self) -> Result<()> {
        let info = self.acquired.take().ok_or_else(|| {
            Error::WrongState("release without an acquired frame: call acquire first".into())
        })?;
        self.advance(1, info.len as u64);
        Ok(())
    }

    /// True while a frame is lent by `acquire` and not yet released.
    pub fn is_acquired(&self) -> bool {
        self.acquired.is_some()
    }

    fn check_idle(&self) -> Result<()> {
        if self.acquired.is_some() {
            return Err(Error::WrongState(
                "a frame is acquired: release it before reading again".into(),
            ));
        }
        Ok(())
    }

    /// Attaches pending missed counts to the info handed to the caller.
    fn report(&mut self, mut info: FrameInfo) -> FrameInfo {
        info.missed = std::mem::take(&mut self.missed_pending);
        info
    }

    /// Checks the header of the slot that must hold `seq` and returns the frame's length.
    ///
    /// On the path of every frame: inlined, with the messages of a damaged slot built out of
    /// line ([`Reader::bad_slot`]). The rest of the metadata is loaded by [`frame_info`] once the
    /// payload is copied, so it is not kept (spilled to the stack) across the copy.
    #[inline(always)]
    fn validate(&self, frame: &FrameHeader, seq: u64) -> Result<u32> {
        // Acquire: pairs with the writer's Release store of `seq` (already implied by our Acquire
        // of `head` for lossless readers; needed for lossy ones).
        let found = frame.seq.load(Ordering::Acquire);
        let len = frame.len.load(Ordering::Relaxed);
        if found != seq || len > self.shared.geo.max_frame {
            return Err(self.bad_slot(seq, found, len));
        }
        Ok(len)
    }

    /// The error for a slot that should hold frame `seq` but holds sequence number `found` and a
    /// length of `len` bytes (see [`Reader::validate`]).
    #[cold]
    #[inline(never)]
    fn bad_slot(&self, seq: u64, found: u64, len: u32) -> Error {
        if found != seq {
            return Error::corrupt(format!(
                "stream {:?}: slot for frame {seq} holds sequence number {found}",
                self.shared.name()
            ));
        }
        Error::corrupt(format!(
            "stream {:?}: frame {seq} claims {len} bytes, more than the maximum of {}",
            self.shared.name(),
            self.shared.geo.max_frame
        ))
    }

    fn check_crc(&self, frame: &FrameHeader, data: &[u8], seq: u64) -> Result<()> {
        let stored = frame.crc32c.load(Ordering::Relaxed);
        let actual = crc32c::crc32c(data);
        if stored != actual {
            return Err(Error::corrupt(format!(
                "stream {:?}: frame {seq} fails its checksum (stored {stored:#010x}, computed \
                 {actual:#010x})",
                self.shared.name()
            )));
        }
        Ok(())
    }

    /// Copies frame `seq` into `buf` and its metadata into `info`. Returns false if a lossy
    /// reader found it overwritten, or the sequence number was skipped (its position and missed
    /// count were updated, unless a lossless reader has frames before `seq` to release first: try
    /// again at `self.pos`).
    ///
    /// The metadata goes out through `info` rather than in the result: an enum holding it is
    /// copied through the stack with loads wider than its stores, a stall of a dozen cycles on
    /// every frame.
    #[inline(always)]
    fn copy_frame(&mut self, seq: u64, buf: &mut [u8], info: &mut FrameInfo) -> Result<bool> {
        if self.lossy {
            return Ok(match self.copy_lossy(seq, buf)? {
                Some(found) => {
                    *info = found;
                    true
                }
                None => false,
            });
        }
        let (frame, payload) = self.shared.slot(seq);
        let len = self.validate(frame, seq)? as usize;
        if self.skipped(frame) {
            if seq == self.pos {
                self.skip_one();
            }
            return Ok(false);
        }
        if len > buf.len() {
            return Err(buffer_too_small(len, buf.len()));
        }
        // SAFETY: `payload` points to max_frame bytes of the mapping and len <= max_frame; the
        // writer does not touch the slot while our position is at or below `seq`; `buf` holds
        // at least len bytes and cannot overlap the mapping (it is a `&mut` we were given).
        unsafe { std::ptr::copy_nonoverlapping(payload, buf.as_mut_ptr(), len) };
        if self.shared.checksum() {
            self.check_crc(frame, &buf[..len], seq)?;
        }
        *info = frame_info(frame, seq, len as u32);
        Ok(true)
    }

    /// Seqlock-style copy for lossy readers: copy, then check the slot still holds `seq`.
    #[inline(never)]
    fn copy_lossy(&mut self, seq: u64, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        let shared = Arc::clone(&self.shared);
        let (frame, payload) = shared.slot(seq);
        // Acquire: pairs with the writer's Release store of `seq`.
        let found = frame.seq.load(Ordering::Acquire);
        if found != seq {
            return self.overrun(seq, found);
        }
        let len = frame.len.load(Ordering::Relaxed);
        if len as usize > buf.len() || len > self.shared.geo.max_frame {
            // Check the slot was not rewritten under us before blaming the length.
            fence(Ordering::Acquire);
            if frame.seq.load(Ordering::Relaxed) != seq {
                return self.overrun(seq, SEQ_OVERWRITTEN);
            }
            if len > self.shared.geo.max_frame {
                return Err(Error::corrupt(format!(
                    "stream {:?}: frame {seq} claims {len} bytes, more than the maximum of {}",
                    self.shared.name(),
                    self.shared.geo.max_frame
                )));
            }
            return Err(Error::BufferTooSmall {
                needed: len as usize,
                available: buf.len(),
            });
        }
        let info = frame_info(frame, seq, len);
        let crc = frame.crc32c.load(Ordering::Relaxed);
        let skipped = self.skipped(frame);
        // SAFETY: `payload` points to max_frame bytes of the mapping and len <= max_frame; `buf`
        // holds at least len bytes. The writer may be rewriting the slot concurrently: the bytes
        // copied may then be torn, which the `seq` re-check below detects and discards.
        unsafe { std::ptr::copy_nonoverlapping(payload, buf.as_mut_ptr(), len as usize) };
        // Acquire fence: if the copy saw any byte of a newer frame, the re-load below sees the
        // writer's SEQ_EMPTY (stored before its Release fence) or a later value.
        fence(Ordering::Acquire);
        if frame.seq.load(Ordering::Relaxed) != seq {
            return self.overrun(seq, SEQ_OVERWRITTEN);
        }
        if skipped {
            self.skip_one();
            return Ok(None);
        }
        if self.shared.checksum() && crc32c::crc32c(&buf[..len as usize]) != crc {
            return Err(Error::corrupt(format!(
                "stream {:?}: frame {seq} fails its checksum",
                self.shared.name()
            )));
        }
        Ok(Some(info))
    }

    /// Whether the slot (whose `seq` was just checked) holds a skipped sequence number of a
    /// multi-writer stream rather than a frame.
    #[inline]
    fn skipped(&self, frame: &FrameHeader) -> bool {
        // Relaxed: ordered by the Acquire load of `seq` (or `head`) the caller made.
        self.multi && frame.status.load(Ordering::Relaxed) == FRAME_STATUS_SKIPPED
    }

    /// Steps over the skipped sequence number at `self.pos`, counting it as missed.
    #[cold]
    fn skip_one(&mut self) {
        self.missed += 1;
        self.missed_pending += 1;
        // Relaxed: a statistic.
        self.shared
            .entry(self.index)
            .missed
            .store(self.missed, Ordering::Relaxed);
        if self.lossy {
            self.pos += 1;
            // Relaxed: a lossy reader's position holds nobody back.
            self.shared
                .entry(self.index)
                .pos
                .store(self.pos, Ordering::Relaxed);
        } else {
            self.release_to(self.pos + 1);
        }
    }

    /// A lossy reader found frame `seq` gone: skip to the oldest frame that may still be there.
    fn overrun(&mut self, seq: u64, found: u64) -> Result<Option<FrameInfo>> {
        // The slot of a published frame holds that frame, a newer one, or SEQ_EMPTY while being
        // rewritten; an older sequence number is impossible.
        if found != SEQ_OVERWRITTEN && found != crate::layout::SEQ_EMPTY && found < seq {
            return Err(Error::corrupt(format!(
                "stream {:?}: slot for frame {seq} holds older sequence number {found}",
                self.shared.name()
            )));
        }
        self.refresh_head()?;
        // The writer is at or past `seq + capacity`; the oldest frame not yet overwritten is at
        // least `head - capacity + 1` (the writer may be rewriting `head - capacity` right now).
        let resume = (self.head + 1).saturating_sub(self.capacity).max(seq + 1);
        let skipped = resume - self.pos;
        self.missed += skipped;
        self.missed_pending += skipped;
        self.pos = resume;
        let entry = self.shared.entry(self.index);
        // Relaxed: statistics and a position nobody waits on (lossy readers never hold the writer).
        entry.pos.store(resume, Ordering::Relaxed);
        entry.missed.store(self.missed, Ordering::Relaxed);
        Ok(None)
    }

    /// Releases the next `count` frames (`bytes` payload bytes in all).
    #[inline]
    fn advance(&mut self, count: u64, bytes: u64) {
        if count == 0 {
            return;
        }
        self.frames_read += count;
        self.bytes_read += bytes;
        let entry = self.shared.entry(self.index);
        // Relaxed: statistics read by monitors.
        entry.frames_read.store(self.frames_read, Ordering::Relaxed);
        entry.bytes_read.store(self.bytes_read, Ordering::Relaxed);
        self.release_to(self.pos + count);
    }

    /// Releases every frame below `pos` (our new position), waking a writer waiting for it.
    #[inline]
    fn release_to(&mut self, pos: u64) {
        self.pos = pos;
        // A member that released every frame it claimed holds none.
        let held = if self.member.is_some() && pos >= self.head {
            POS_IDLE
        } else {
            pos
        };
        let hdr = self.shared.header();
        if protocol::release(hdr, self.shared.entry(self.index), held) {
            protocol::wake_writer(hdr);
            futex_wake(&hdr.space_futex, self.writer_wakes);
        }
    }

    /// For [`crate::WaitSet`]: true if a read would return at once (a frame, the end of the
    /// stream, the writer's death, or an error to report), by the checks a waiting read makes;
    /// a group member may claim frames here, which its next read returns.
    pub(crate) fn poll_ready(&mut self) -> bool {
        if self.acquired.is_some() || self.pos < self.head {
            return true;
        }
        if !matches!(self.refresh_head(), Ok(false)) {
            return true;
        }
        !matches!(self.writer_gone(true), Ok(None))
    }

    /// For [`crate::WaitSet`]: announces this reader as asleep on its stream's `data_futex`
    /// ([`Reader::futex_word`]), as a waiting read does; returns the value to sleep on. Withdraw
    /// with [`Reader::sleep_done`].
    pub(crate) fn prepare_sleep(&self) -> u32 {
        protocol::reader_prepare_sleep(self.shared.header(), self.shared.entry(self.index))
    }

    /// For [`crate::WaitSet`]: the futex word a waiting read sleeps on.
    pub(crate) fn futex_word(&self) -> &crate::sync::AtomicU32 {
        &self.shared.header().data_futex
    }

    /// For [`crate::WaitSet`]: withdraws [`Reader::prepare_sleep`].
    pub(crate) fn sleep_done(&self) {
        protocol::reader_wake_done(self.shared.header(), self.shared.entry(self.index));
    }

    /// Returns once frame `self.pos` is published, or with the outcome that prevents it. With
    /// `watch_slot`, a call that waits also polls the frame's slot (see [`Reader::slot_ready`]).
    #[inline]
    fn wait_for_frame(&mut self, deadline: Deadline, watch_slot: bool) -> Result<()> {
        if let Some(member) = self.member.as_mut() {
            member.deadline = deadline;
        }
        if self.pos < self.head || self.refresh_head()? {
            return Ok(());
        }
        self.wait_for_frame_slow(deadline, watch_slot)
    }

    /// For a waiting lossless reader of a single-writer stream: true if frame `self.pos` is
    /// complete in its slot (`seq == pos`, loaded with Acquire), although `head` may not show it
    /// yet. A hint, never a reason to take the frame (LAYOUT.md 4.5).
    ///
    /// A reader polling the slot as well as `head` has the lines that carry the frame on their
    /// way while it learns of the frame from `head`, instead of asking for them only once `head`
    /// shows it: the two transfers overlap instead of following each other. It also asks for the
    /// slot's second line (the rest of a small payload) for the same reason.
    #[inline(always)]
    fn slot_ready(&self) -> bool {
        if self.lossy || self.multi || self.member.is_some() {
            // A lossy reader can be lapped, a multi-writer stream stamps frames before they are
            // published in order, and a member's `pos` is where its last claim ended.
            return false;
        }
        let (frame, payload) = self.shared.slot(self.pos);
        // The slot's second 64-byte line: a prefetch never faults, and the slot has room for at
        // least the 32-byte header and one payload byte, so this is inside it or just past it.
        crate::sync::prefetch_read(payload.wrapping_add(32));
        protocol::frame_ready(frame, self.pos)
    }

    /// Reloads `head`; returns true if frame `self.pos` is published. A group member claims
    /// frames instead, if it holds none: true if frame `self.pos` is one it holds.
    #[inline(always)]
    fn refresh_head(&mut self) -> Result<bool> {
        if self.member.is_some() {
            return self.claim();
        }
        let head = protocol::head(self.shared.header());
        if head < self.head
            || head > super::MAX_HEAD
            || (!self.lossy && head > self.pos + self.capacity)
        {
            return Err(self.bad_head(head));
        }
        self.head = head;
        Ok(self.pos < head)
    }

    /// The error for a `head` that [`Reader::refresh_head`] cannot believe.
    #[cold]
    #[inline(never)]
    fn bad_head(&self, head: u64) -> Error {
        Error::corrupt(format!(
            "stream {:?}: head moved from {} to {head} (reader at {})",
            self.shared.name(),
            self.head,
            self.pos
        ))
    }

    /// End-of-stream and (if `liveness`, and not done recently) writer-death checks, made only
    /// when no frame is available.
    fn writer_gone(&mut self, liveness: bool) -> Result<Option<Error>> {
        let outcome = if self.member.is_some() {
            self.member_gone(liveness)
        } else {
            self.stream_gone(liveness)
        };
        if matches!(outcome, Ok(Some(_))) {
            self.gone = true;
        }
        outcome
    }

    /// [`Reader::writer_gone`] for a plain reader, and a member's look at the writers.
    fn stream_gone(&mut self, liveness: bool) -> Result<Option<Error>> {
        if self.multi {
            return self.writers_gone(liveness);
        }
        let hdr = self.shared.header();
        // SeqCst: pairs with the writer's SeqCst store of WRITER_CLOSED after its last publish;
        // if we see CLOSED, the head we reload next includes every frame.
        let state = hdr.writer_state.load(Ordering::SeqCst);
        // A writer that died while claiming the role never becomes active: it is dead as well.
        let attached = state == WRITER_ACTIVE || state & WRITER_CLAIMING != 0;
        let outcome = match state {
            WRITER_CLOSED => Error::EndOfStream,
            // A writer found dead stays dead: no need to wait for the next liveness check.
            _ if attached && self.writer_dead => Error::WriterDead,
            _ if attached
                && liveness
                && self.liveness_check_due()
                && !peers::writer_alive(&self.shared) =>
            {
                self.writer_dead = true;
                Error::WriterDead
            }
            WRITER_NONE | WRITER_ACTIVE => return Ok(None),
            // A live claimant (`WRITER_CLAIMING | pid`) is about to become the writer.
            s if s & WRITER_CLAIMING != 0 => return Ok(None),
            // Waiting for a value no writer ever stores would be waiting for ever.
            _ => {
                return Err(Error::corrupt(format!(
                    "stream {:?}: writer_state is {state}, not a known state",
                    self.shared.name()
                )))
            }
        };
        if self.refresh_head()? {
            return Ok(None);
        }
        Ok(Some(outcome))
    }

    /// [`Reader::writer_gone`] for a group member. Frames of dead members of the group come
    /// before the end of the stream: it looks for them at most every [`LIVENESS_CHECK_INTERVAL`]
    /// while it waits, and always before reporting the end or the writer's death.
    fn member_gone(&mut self, liveness: bool) -> Result<Option<Error>> {
        let outcome = self.stream_gone(liveness)?;
        if self.pos < self.head {
            return Ok(None);
        }
        let due = match self.member.as_mut() {
            Some(member) if liveness => {
                let now = Instant::now();
                let due = !matches!(member.peers_checked,
                    Some(at) if now.duration_since(at) < LIVENESS_CHECK_INTERVAL);
                if due {
                    member.peers_checked = Some(now);
                }
                due
            }
            _ => false,
        };
        if (outcome.is_some() || due) && self.rescue() {
            return Ok(None);
        }
        Ok(outcome)
    }

    /// A member that holds no frame claims more: first the frames of dead members of its group
    /// if it has orphans, else published frames the group has not handed out. True if it holds
    /// frame `self.pos` now.
    fn claim(&mut self) -> Result<bool> {
        if self.pos < self.head {
            return Ok(true);
        }
        let Some(member) = self.member.as_ref() else {
            return Ok(false);
        };
        let (g, want) = (member.group, member.want);
        // Relaxed: a hint, on the line we are about to claim from anyway; an orphan we miss is
        // found at the next liveness check.
        if self.shared.group(g).orphans.load(Ordering::Relaxed) != 0 && self.rescue() {
            return Ok(true);
        }
        let claimed = group::claim(
            &self.shared,
            self.shared.group(g),
            self.shared.entry(self.index),
            want,
        )?;
        Ok(match claimed {
            Some((start, end)) => {
                self.pos = start;
                self.head = end;
                true
            }
            None => false,
        })
    }

    /// A member that holds no frame adopts the frames of a dead member of its group, if there
    /// are any. True if it holds frames now.
    #[cold]
    fn rescue(&mut self) -> bool {
        let Some(member) = self.member.as_ref() else {
            return false;
        };
        if self.pos < self.head {
            return true;
        }
        let shared = Arc::clone(&self.shared);
        // Giving up early is safe here: the orphan's entry holds its frames until we hold them.
        let mut scan = ScanWait::new(&shared, member.deadline);
        match group::rescue(&shared, self.index, member.group, || scan.poll()) {
            Some((start, end)) => {
                self.pos = start;
                self.head = end;
                true
            }
            None => false,
        }
    }

    /// [`Reader::writer_gone`] for a multi-writer stream: repairs the damage of dead writers (at
    /// most every [`LIVENESS_CHECK_INTERVAL`]), which may publish frames, then reports the end of
    /// the stream or the death of every writer.
    fn writers_gone(&mut self, liveness: bool) -> Result<Option<Error>> {
        if liveness && self.liveness_check_due() && super::multi::repair(&self.shared) {
            // Repairs publish what the dead writers left behind them.
            if self.refresh_head()? {
                return Ok(None);
            }
        }
        let Some(outcome) = super::multi::writers_gone(&self.shared) else {
            return Ok(None);
        };
        if self.refresh_head()? {
            return Ok(None);
        }
        Ok(Some(outcome))
    }

    /// True (and the check recorded) if the writer's liveness has not been checked for
    /// [`LIVENESS_CHECK_INTERVAL`].
    fn liveness_check_due(&mut self) -> bool {
        let now = Instant::now();
        match self.liveness_checked {
            Some(at) if now.duration_since(at) < LIVENESS_CHECK_INTERVAL => false,
            _ => {
                self.liveness_checked = Some(now);
                true
            }
        }
    }

    #[cold]
    fn wait_for_frame_slow(&mut self, deadline: Deadline, watch_slot: bool) -> Result<()> {
        // A reader that keeps up with its writer comes here for nearly every frame, so a caller
        // about to wait polls `head` alone (one cache line, the one the writer publishes on)
        // and looks at the writer's state (another line, which the writer's statistics keep
        // dirty) only every few hundred polls, before it sleeps, or once the stream has ended.
        if !deadline.may_wait() || self.gone {
            if let Some(outcome) = self.writer_gone(!deadline.may_wait())? {
                return Err(outcome);
            }
            if !deadline.may_wait() {
                return Err(Error::Empty);
            }
        }
        let mut spins = 0u32;
        loop {
            if self.refresh_head()? {
                return Ok(());
            }
            if watch_slot && self.slot_ready() {
                // The frame is complete in its slot and `head` is the writer's very next store:
                // poll `head` alone, without pausing, for a bounded while. The frame is taken
                // only once `head` shows it: a writer killed between its two stores leaves a
                // frame that no reader may deliver (readers that poll `head` alone never would).
                for _ in 0..HEAD_FOLLOWS_POLLS {
                    if self.refresh_head()? {
                        return Ok(());
                    }
                }
            }
            let slice = match self.wait.next_step(&mut spins, &deadline) {
                Step::Poll if !spins.is_multiple_of(STATE_CHECK_POLLS) => continue,
                Step::Poll => {
                    // A busy-spinning reader learns of the end of the stream within this many
                    // polls (liveness, which reads /proc, stays at its own pace).
                    if let Some(outcome) = self.writer_gone(false)? {
                        return Err(outcome);
                    }
                    continue;
                }
                Step::CheckLiveness => {
                    if let Some(outcome) = self.writer_gone(true)? {
                        return Err(outcome);
                    }
                    continue;
                }
                Step::TimedOut => {
                    // A caller waiting in short slices may never reach a sleep or a busy-spin
                    // liveness check: look (at most every LIVENESS_CHECK_INTERVAL) before giving up.
                    if let Some(outcome) = self.writer_gone(true)? {
                        return Err(outcome);
                    }
                    return Err(Error::Timeout);
                }
                Step::Sleep(slice) => slice,
            };
            let shared = Arc::clone(&self.shared);
            let hdr = shared.header();
            let me = shared.entry(self.index);
            let word = protocol::reader_prepare_sleep(hdr, me);
            let ready = self.refresh_head();
            if !matches!(ready, Ok(false)) {
                protocol::reader_wake_done(hdr, me);
                return ready.map(|_| ());
            }
            match self.writer_gone(true) {
                Ok(None) => {}
                other => {
                    protocol::reader_wake_done(hdr, me);
                    return match other {
                        Ok(Some(outcome)) => Err(outcome),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    };
                }
            }
            futex_wait(&hdr.data_futex, word, slice);
            protocol::reader_wake_done(hdr, me);
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(member) = &self.member {
            // A frame lent by `acquire` was delivered: leaving releases it with the ones read.
            let delivered = self.pos + u64::from(self.acquired.is_some());
            let undelivered = (delivered < self.head).then_some(delivered);
            group::leave(&self.shared, self.index, member.group, undelivered);
            return;
        }
        let hdr = self.shared.header();
        // Leaving frees every frame we held; the writer may be asleep waiting for us.
        if tables::free_reader(&self.shared, self.index, READER_ACTIVE)
            && hdr.writer_waiting.load(Ordering::SeqCst) != 0
        {
            protocol::wake_writer(hdr);
            futex_wake(&hdr.space_futex, self.writer_wakes);
        }
    }
}

/// Marker for "the slot's sequence number changed while we copied it".
const SEQ_OVERWRITTEN: u64 = u64::MAX - 1;

/// A frame lent in place by [`Reader::acquire`]; released when dropped.
#[derive(Debug)]
pub struct ReadSlot<'r> {
    /// The reader, which records the lent frame (so that this handle is one word).
    reader: &'r mut Reader,
}

impl ReadSlot<'_> {
    /// The frame's metadata.
    pub fn info(&self) -> &FrameInfo {
        self.reader
            .acquired
            .as_ref()
            .expect("a read slot exists only while a frame is acquired")
    }
}

impl std::ops::Deref for ReadSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let info = self.info();
        let (_, payload) = self.reader.shared.slot(info.seq);
        // SAFETY: the slot of the acquired frame holds `info.len` validated bytes of the mapping,
        // which the reader's Arc keeps alive; the writer does not reuse the slot until this slot
        // releases it.
        unsafe { std::slice::from_raw_parts(payload, info.len as usize) }
    }
}

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        // Cannot fail: the slot exists only while a frame is acquired.
        let _ = self.reader.release_raw();
    }
}

/// Longest a joining reader waits for a live writer to finish its scan of the reader table
/// (`scan_seq` odd). A scan takes microseconds; a `scan_seq` that stays odd this long is damaged
/// (or its writer is stopped), and opening a reader reports it as [`Error::Corrupt`] rather than
/// waiting (`docs/LAYOUT.md` section 4.6).
const SCAN_WAIT_LIMIT: Duration = Duration::from_secs(1);

/// What a joining reader (or adopting member) does while the writer's scan counter is odd (see
/// [`protocol::join`]): yields, and gives up if the writer died mid-scan, if no writer ever
/// attached (nobody can be scanning: the value is damaged), or at `until`.
struct ScanWait<'a> {
    shared: &'a Shared,
    started: Instant,
    /// Give up here: at most [`SCAN_WAIT_LIMIT`] from the start, earlier for a caller's deadline.
    until: Instant,
    /// Set if it gave up on a scan that no dead or closed writer explains: the value it saw, and
    /// why it stopped waiting.
    stuck: Option<(u64, &'static str)>,
}

impl<'a> ScanWait<'a> {
    /// A wait bounded by [`SCAN_WAIT_LIMIT`] and by `deadline`.
    fn new(shared: &'a Shared, deadline: Deadline) -> ScanWait<'a> {
        let started = Instant::now();
        let until = started
            + deadline
                .remaining(SCAN_WAIT_LIMIT)
                .unwrap_or(Duration::ZERO);
        ScanWait {
            shared,
            started,
            until,
            stuck: None,
        }
    }

    /// One step of the wait; false to give up.
    fn poll(&mut self) -> bool {
        // Acquire: a scan in flight was started after its writer attached (and before it closed),
        // so seeing it odd we see that writer's attachment too.
        match self.shared.header().writer_state.load(Ordering::Acquire) {
            // Nobody can be scanning: the value is damaged.
            WRITER_NONE => return self.give_up(NO_WRITER),
            s if s & WRITER_CLAIMING != 0 && !self.shared.multi_writer() => {
                return self.give_up(NO_WRITER)
            }
            // The stream's last writer closed after its last scan: no limit changes any more.
            WRITER_CLOSED => return false,
            _ => {}
        }
        std::thread::yield_now();
        let waited = self.started.elapsed();
        if waited > Duration::from_millis(100) {
            if self.shared.multi_writer() {
                // A writer of a multi-writer stream may have died holding the scan.
                super::multi::repair(self.shared);
            }
            if !peers::writer_alive(self.shared) {
                // A dead writer finishes no scan, and starts no other: its last limit holds.
                return false;
            }
        }
        Instant::now() < self.until
            || self.give_up(
                "it stayed odd far longer than a scan takes (microseconds) while the writer is \
                 alive: a damaged value, or a stopped writer",
            )
    }

    /// Stops waiting, recording `why` if `scan_seq` is still odd.
    fn give_up(&mut self, why: &'static str) -> bool {
        // SeqCst: as the join's own loads of `scan_seq`.
        let seen = self.shared.header().scan_seq.load(Ordering::SeqCst);
        if seen % 2 == 1 {
            self.stuck = Some((seen, why));
        }
        false
    }

    /// [`Error::Corrupt`] naming `scan_seq` if the wait gave up on a scan nobody finished.
    fn check(&self) -> Result<()> {
        match self.stuck {
            None => Ok(()),
            Some((seen, why)) => Err(Error::corrupt(format!(
                "stream {:?}: scan_seq {seen} is odd (a scan of the reader table in progress), but \
                 {why}",
                self.shared.name()
            ))),
        }
    }
}

/// Why an odd `scan_seq` cannot be a scan in progress when no writer has attached.
const NO_WRITER: &str = "no writer has attached, so nobody can be scanning";

/// Claims a free reader entry for process `pid`, reclaiming entries of dead processes (and
/// repairing the reader groups, whose dead members may hold entries) if none is free.
fn claim_entry(shared: &Shared, pid: u32) -> Result<(u32, Owner)> {
    if let Some(claimed) = tables::claim_reader(shared, pid) {
        return Ok(claimed);
    }
    group::reclaim_dead_readers(shared, false);
    tables::claim_reader(shared, pid).ok_or_else(|| {
        Error::TooManyReaders(format!(
            "stream {:?} already has its maximum of {} live readers; create it with a larger \
             max_readers",
            shared.name(),
            shared.geo.max_readers
        ))
    })
}

/// The metadata of frame `seq`, `len` bytes, from the header of its slot (already validated: the
/// slot holds `seq`).
#[inline(always)]
fn frame_info(frame: &FrameHeader, seq: u64, len: u32) -> FrameInfo {
    FrameInfo {
        seq,
        // Relaxed: ordered by the Acquire load of `seq` (or `head`) that validated the slot.
        timestamp_ns: frame.timestamp_ns.load(Ordering::Relaxed),
        len,
        // Relaxed: as above.
        flags: frame.flags.load(Ordering::Relaxed),
        missed: 0,
    }
}

/// [`Error::BufferTooSmall`] for a frame of `needed` bytes and a buffer of `available`, built
/// off the path of every frame.
#[cold]
#[inline(never)]
fn buffer_too_small(needed: usize, available: usize) -> Error {
    Error::BufferTooSmall { needed, available }
}

/// [`Error::SchemaMismatch`] unless stream `shared` has exactly the schema `required`.
fn check_schema(shared: &Shared, required: &Schema) -> Result<()> {
    let name = shared.name();
    match &shared.info.schema {
        Some(actual) if actual == required => Ok(()),
        Some(actual) => Err(Error::SchemaMismatch(format!(
            "stream {name:?} carries {actual}, but the reader requires {required}"
        ))),
        None => Err(Error::SchemaMismatch(format!(
            "stream {name:?} has no schema (raw bytes up to {} per frame), but the reader \
             requires {required}",
            shared.geo.max_frame
        ))),
    }
}
