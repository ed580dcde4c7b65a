//! Writers of a stream: copy writes, batch writes and zero-copy reserve/commit.
//!
//! A single-writer stream's writer keeps `head` privately and publishes with one swap; a writer
//! of a multi-writer stream delegates claiming and publishing to [`MultiWriter`].

use super::multi::MultiWriter;
use super::protocol;
use super::{group, policy, tables, Backpressure, Shared};
use crate::error::{Error, Result};
use crate::layout::{READER_ACTIVE, WRITER_ACTIVE, WRITER_CLAIMING, WRITER_CLOSED, WRITER_NONE};
use crate::liveness::{Patience, ProcessId, PATIENCE};
use crate::sync::Ordering;
use crate::wait::{futex_wait, Deadline, FrameClock, Step, WaitStrategy};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of a writer handle.
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    /// How the writer waits for space when the ring is full.
    pub wait: WaitStrategy,
    /// Timeout of the blocking calls ([`Writer::write`], [`Writer::reserve`], ...); `None` (the
    /// default) waits for ever.
    pub timeout: Option<Duration>,
}

/// A writer of a stream. Dropping it (or [`Writer::close`]) ends the stream: readers drain
/// what is left and then get [`Error::EndOfStream`]. In a multi-writer stream (created with
/// `max_writers > 1`) the stream ends when every writer that attached has closed.
///
/// Never allocates after construction. When the slowest lossless reader is a full ring behind,
/// what happens depends on the stream's [`Backpressure`] policy: by default blocking calls wait
/// and `try_` calls return [`Error::Full`].
pub struct Writer {
    shared: Arc<Shared>,
    /// Sequence number of the next frame (our copy of `head`: we are its only writer).
    head: u64,
    /// We may publish sequence numbers below this (from the last scan).
    limit: u64,
    capacity: u64,
    bytes_written: u64,
    /// Sequence number of the slot handed out by `reserve`, if any.
    reserved: Option<u64>,
    wait: WaitStrategy,
    timeout: Option<Duration>,
    closed: bool,
    /// The stream's backpressure policy.
    policy: Backpressure,
    /// Reader entries a scan looks at: all of them, or none under `DropOldest`.
    scan_readers: u32,
    /// Group records a scan looks at: all of them, or none under `DropOldest`.
    scan_groups: u32,
    /// Frames this handle discarded (policy `DropNewest`).
    frames_dropped: u64,
    /// The claim/publish state of a writer of a multi-writer stream (`None`: the single writer).
    multi: Option<MultiWriter>,
    /// When to check that the readers holding us back are alive (time held back adds up across
    /// calls, so short timeouts and `try_` loops reclaim dead readers too).
    patience: Patience,
    /// The clock of the frame timestamps.
    clock: FrameClock,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("stream", &self.shared.name())
            .field("head", &self.head)
            .finish()
    }
}

impl Writer {
    pub(crate) fn attach(shared: Arc<Shared>, options: &WriterOptions) -> Result<Writer> {
        // Register for light fences now (once per process; it may take a scheduler round trip
        // in a multi-threaded process), not in the first publication or release.
        crate::sync::light_fences();
        let policy = shared.info.backpressure;
        let (scan_readers, scan_groups) = if policy == Backpressure::DropOldest {
            (0, 0)
        } else {
            (shared.geo.max_readers, shared.geo.max_groups)
        };
        if shared.multi_writer() {
            let multi = MultiWriter::attach(&shared, scan_readers, scan_groups)?;
            return Ok(Writer {
                head: 0,
                limit: 0,
                capacity: shared.geo.capacity as u64,
                bytes_written: 0,
                reserved: None,
                wait: options.wait,
                timeout: options.timeout,
                closed: false,
                policy,
                scan_readers,
                scan_groups,
                frames_dropped: 0,
                multi: Some(multi),
                patience: Patience::default(),
                clock: FrameClock::default(),
                shared,
            });
        }
        let hdr = shared.header();
        let name = shared.name().to_owned();
        // Everything that can fail or take time happens before the claim below: a failure after
        // it would leave the stream in WRITER_CLAIMING for good.
        let me = ProcessId::current();
        // Acquire: we continue from whatever head a previous incarnation left (0 for a new stream).
        let head = hdr.head.load(Ordering::Acquire);
        if head > super::MAX_HEAD {
            return Err(Error::corrupt(format!(
                "stream {name:?}: head {head} is impossibly large"
            )));
        }
        // AcqRel: winning the claim must happen before our identity stores; a lost claim must see
        // the identity the writer that holds (or held) the role published before its state. A
        // single-writer stream has one writer in its life (the claim succeeds only from NONE, and
        // nothing returns the state to NONE). The claim carries our pid, so a writer killed
        // before it records its start time is still known (by its pid alone).
        if let Err(state) = hdr.writer_state.compare_exchange(
            WRITER_NONE,
            WRITER_CLAIMING | me.pid,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            let owner = tables::claimed_writer(hdr, state);
            return Err(match state {
                WRITER_CLOSED => Error::WrongState(format!(
                    "stream {name:?} was closed by its writer (end of stream); create a new \
                     stream to write again"
                )),
                _ if owner.alive => Error::WriterExists(format!(
                    "stream {name:?} already has a writer (pid {}); it is a single-writer stream \
                     (create it with max_writers > 1 for several writers)",
                    owner.pid
                )),
                _ => Error::WriterExists(format!(
                    "stream {name:?} had a writer (pid {}) that died; its readers are told \
                     WRITER_DEAD; create a new stream to write again",
                    owner.pid
                )),
            });
        }
        // Relaxed: published by the Release store of WRITER_ACTIVE below.
        hdr.writer_pid.store(me.pid, Ordering::Relaxed);
        hdr.writer_start_time
            .store(me.start_time, Ordering::Relaxed);
        let capacity = shared.geo.capacity as u64;
        let bytes_written = hdr.bytes_written.load(Ordering::Relaxed);
        // Release: readers that see ACTIVE see our pid and start time.
        hdr.writer_state.store(WRITER_ACTIVE, Ordering::Release);
        let mut writer = Writer {
            shared,
            head,
            limit: 0,
            capacity,
            bytes_written,
            reserved: None,
            wait: options.wait,
            timeout: options.timeout,
            closed: false,
            policy,
            scan_readers,
            scan_groups,
            frames_dropped: 0,
            multi: None,
            patience: Patience::default(),
            clock: FrameClock::default(),
        };
        writer.rescan();
        Ok(writer)
    }

    /// The stream's maximum frame size in bytes.
    pub fn max_frame_size(&self) -> usize {
        self.shared.geo.max_frame as usize
    }

    /// Sequence number the next frame will get (= frames written so far). In a multi-writer
    /// stream: the next sequence number any writer will claim (= frames claimed so far by all).
    pub fn position(&self) -> u64 {
        if self.multi.is_some() {
            return protocol::multi::next_claim(self.shared.header());
        }
        self.head
    }

    /// Name of the stream.
    pub fn stream_name(&self) -> &str {
        self.shared.name()
    }

    /// Another handle to the stream this writer writes: the same mapping, so its schema,
    /// geometry and statistics (useful for a writer taken from a pipeline task, which comes
    /// without its stream).
    pub fn stream(&self) -> super::Stream {
        super::Stream {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The stream's backpressure policy.
    pub fn backpressure(&self) -> Backpressure {
        self.policy
    }

    /// Frames this writer discarded because the ring was full (policy
    /// [`Backpressure::DropNewest`]; always 0 under the other policies).
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped
    }

    /// Changes how the blocking calls wait, and their timeout (the options given at attach time).
    pub(crate) fn set_waiting(&mut self, wait: WaitStrategy, timeout: Option<Duration>) {
        self.wait = wait;
        self.timeout = timeout;
    }

    /// Writes one frame, waiting for space up to the handle's timeout.
    #[inline]
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.write_until(data, 0, Deadline::after(self.timeout))
    }

    /// Writes one frame if there is space now; [`Error::Full`] otherwise.
    pub fn try_write(&mut self, data: &[u8]) -> Result<()> {
        self.write_until(data, 0, Deadline::Now)
    }

    /// Writes one frame, waiting for space at most `timeout` ([`Error::Timeout`]).
    pub fn write_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        self.write_until(data, 0, Deadline::after(Some(timeout)))
    }

    /// Writes one frame, waiting for space until `deadline` ([`Error::Timeout`]).
    pub fn write_deadline(&mut self, data: &[u8], deadline: Instant) -> Result<()> {
        self.write_until(data, 0, Deadline::At(deadline))
    }

    /// Writes one frame carrying application `flags` (see [`FrameInfo::flags`](super::FrameInfo)),
    /// waiting for space up to the handle's timeout, as [`Writer::write`].
    pub fn write_with_flags(&mut self, data: &[u8], flags: u32) -> Result<()> {
        self.write_until(data, flags, Deadline::after(self.timeout))
    }

    /// Writes one frame with application `flags`, waiting as `deadline` says (if the stream's
    /// policy waits at all; under [`Backpressure::DropNewest`] a frame that does not fit is
    /// discarded, counted, and the call returns `Ok`). Always inlined into its callers (the public
    /// writes and the C ABI's), so that a frame costs no call of its own: see [`Writer::publish`].
    #[inline(always)]
    pub(crate) fn write_until(
        &mut self,
        data: &[u8],
        flags: u32,
        deadline: Deadline,
    ) -> Result<()> {
        self.check_idle()?;
        self.check_len(data.len())?;
        let seq = match self.claim(deadline) {
            Ok(seq) => seq,
            Err(Error::Full) if self.policy == Backpressure::DropNewest => {
                self.drop_frames(1);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let (frame, payload) = self.shared.slot(seq);
        // Read before the copy rather than after it: the clock's `rdtsc` then runs alongside the
        // copy instead of holding up the stores that complete the slot (3 ns of 30 per 64-byte
        // frame, measured in one process).
        let timestamp = self.clock.now();
        protocol::begin_write(frame);
        // SAFETY: `payload` points to max_frame writable bytes of the mapping (see Shared::slot),
        // data.len() <= max_frame was checked, and the slot is ours: no lossless reader reads it
        // (seq < limit) and lossy readers detect the overwrite through `seq`.
        unsafe { copy_frame_in(data, payload) };
        let crc = self.crc(data);
        self.end_write(frame, seq, data.len() as u32, flags, crc, timestamp);
        self.bytes_written += data.len() as u64;
        self.publish(seq + 1, 1);
        Ok(())
    }

    /// Writes frames in order, waiting for space up to the handle's timeout. Returns how many
    /// were written: all of them, or fewer if the timeout expired after at least one (if none
    /// could be written: [`Error::Timeout`]). One timestamp and one publication per run of
    /// frames that fit, so small frames cost far less than one call each. Under
    /// [`Backpressure::DropNewest`] the frames that do not fit are discarded and counted, and the
    /// call returns the number of frames given.
    pub fn write_batch(&mut self, frames: &[&[u8]]) -> Result<usize> {
        self.write_batch_until(
            frames.len(),
            |i| frames[i],
            0,
            Deadline::after(self.timeout),
        )
    }

    /// Writes as many of `frames` as fit now; [`Error::Full`] if none fits.
    pub fn try_write_batch(&mut self, frames: &[&[u8]]) -> Result<usize> {
        self.write_batch_until(frames.len(), |i| frames[i], 0, Deadline::Now)
    }

    /// As [`Writer::write_batch`], waiting for space at most `timeout`.
    pub fn write_batch_timeout(&mut self, frames: &[&[u8]], timeout: Duration) -> Result<usize> {
        self.write_batch_until(
            frames.len(),
            |i| frames[i],
            0,
            Deadline::after(Some(timeout)),
        )
    }

    /// As [`Writer::write_batch`], waiting for space until `deadline`.
    pub fn write_batch_deadline(&mut self, frames: &[&[u8]], deadline: Instant) -> Result<usize> {
        self.write_batch_until(frames.len(), |i| frames[i], 0, Deadline::At(deadline))
    }

    /// Writes `frames`, all carrying application `flags`, waiting for space up to the handle's
    /// timeout, as [`Writer::write_batch`].
    pub fn write_batch_with_flags(&mut self, frames: &[&[u8]], flags: u32) -> Result<usize> {
        self.write_batch_until(
            frames.len(),
            |i| frames[i],
            flags,
            Deadline::after(self.timeout),
        )
    }

    /// Writes `count` frames given by `frame(i)`, all carrying application `flags`, waiting as
    /// `deadline` says; see [`Writer::write_batch`]. Every frame is checked against the maximum
    /// frame size before any is written.
    pub(crate) fn write_batch_until<'a>(
        &mut self,
        count: usize,
        frame: impl Fn(usize) -> &'a [u8],
        flags: u32,
        deadline: Deadline,
    ) -> Result<usize> {
        self.check_idle()?;
        for i in 0..count {
            self.check_len(frame(i).len())?;
        }
        let timestamp = self.clock.now();
        let mut written = 0;
        // Frames written but not yet published.
        let mut pending = 0;
        while written < count {
            let seq = match self.claim(if written == 0 {
                deadline
            } else {
                Deadline::Now
            }) {
                Ok(seq) => seq,
                Err(Error::Full) if self.policy == Backpressure::DropNewest => {
                    self.drop_frames((count - written) as u64);
                    break;
                }
                Err(Error::Full) if written > 0 => {
                    // Publish what we have so readers can free space, then wait for more.
                    self.publish(self.head, pending);
                    pending = 0;
                    match self.claim(deadline) {
                        Ok(seq) => seq,
                        Err(Error::Timeout | Error::Full) => return Ok(written),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            let data = frame(written);
            let (slot, payload) = self.shared.slot(seq);
            protocol::begin_write(slot);
            // SAFETY: as in `write_until`.
            unsafe { copy_frame_in(data, payload) };
            let crc = self.crc(data);
            self.end_write(slot, seq, data.len() as u32, flags, crc, timestamp);
            self.bytes_written += data.len() as u64;
            // Claimed but not yet published: `claim` hands out head, so advance our copy.
            self.head = seq + 1;
            written += 1;
            pending += 1;
        }
        self.publish(self.head, pending);
        Ok(count)
    }

    /// Reserves the next slot for zero-copy writing, waiting up to the handle's timeout (under a
    /// policy that never waits, a full ring gives [`Error::Full`] at once). Fill the slot's bytes,
    /// then [`WriteSlot::commit`]; dropping the slot without committing publishes nothing.
    #[inline]
    pub fn reserve(&mut self) -> Result<WriteSlot<'_>> {
        self.reserve_until(Deadline::after(self.timeout))
    }

    /// Reserves the next slot if there is space now; [`Error::Full`] otherwise.
    pub fn try_reserve(&mut self) -> Result<WriteSlot<'_>> {
        self.reserve_until(Deadline::Now)
    }

    /// As [`Writer::reserve`], waiting for space at most `timeout` ([`Error::Timeout`]).
    pub fn reserve_timeout(&mut self, timeout: Duration) -> Result<WriteSlot<'_>> {
        self.reserve_until(Deadline::after(Some(timeout)))
    }

    /// As [`Writer::reserve`], waiting for space until `deadline` ([`Error::Timeout`]).
    pub fn reserve_deadline(&mut self, deadline: Instant) -> Result<WriteSlot<'_>> {
        self.reserve_until(Deadline::At(deadline))
    }

    #[inline]
    fn reserve_until(&mut self, deadline: Deadline) -> Result<WriteSlot<'_>> {
        self.reserve_raw(deadline)?;
        Ok(WriteSlot { writer: self })
    }

    /// Reserves the next slot and returns a pointer to its `max_frame_size` bytes, for callers
    /// (the C ABI) that cannot hold a slot. Follow with [`Writer::commit_raw`] or
    /// [`Writer::abort_raw`].
    #[inline(always)]
    pub fn reserve_raw(&mut self, deadline: Deadline) -> Result<*mut u8> {
        self.check_idle()?;
        let seq = self.claim(deadline)?;
        let (frame, payload) = self.shared.slot(seq);
        protocol::begin_write(frame);
        self.reserved = Some(seq);
        Ok(payload)
    }

    /// Publishes the reserved slot as a frame of `len` bytes with application `flags`.
    /// [`Error::FrameTooLarge`] leaves the reservation in place; [`Error::WrongState`] if nothing
    /// is reserved.
    #[inline(always)]
    pub fn commit_raw(&mut self, len: usize, flags: u32) -> Result<()> {
        let timestamp = self.clock.now();
        self.commit_raw_at(len, flags, timestamp)
    }

    /// [`Writer::commit_raw`] with the frame's commit time given (nanoseconds; a relay such as the
    /// Zenoh bridge passes the origin's timestamp so that it survives the hop).
    #[inline(always)]
    pub fn commit_raw_at(&mut self, len: usize, flags: u32, timestamp_ns: u64) -> Result<()> {
        let seq = self.reserved.ok_or_else(|| {
            Error::WrongState("commit without a reserved slot: call reserve first".into())
        })?;
        self.check_len(len)?;
        let (frame, payload) = self.shared.slot(seq);
        let crc = if self.shared.checksum() {
            // SAFETY: `payload` points to max_frame bytes of the mapping and len <= max_frame.
            crc32c::crc32c(unsafe { std::slice::from_raw_parts(payload, len) })
        } else {
            0
        };
        self.end_write(frame, seq, len as u32, flags, crc, timestamp_ns);
        self.reserved = None;
        self.bytes_written += len as u64;
        self.publish(seq + 1, 1);
        Ok(())
    }

    /// Gives back the reserved slot without publishing anything. No effect if nothing is reserved.
    /// In a multi-writer stream the sequence number was already claimed and cannot be handed back:
    /// it is published as skipped, and readers count it as missed.
    pub fn abort_raw(&mut self) {
        if let (Some(seq), Some(multi)) = (self.reserved.take(), self.multi.as_mut()) {
            multi.give_up(&self.shared, seq, self.bytes_written);
        }
    }

    /// True while a slot is reserved and not yet committed or aborted.
    pub fn is_reserved(&self) -> bool {
        self.reserved.is_some()
    }

    /// Waits until at least `count` readers are attached, up to `timeout` (polls every
    /// millisecond; meant for start-up, not the hot path). Returns [`Error::Timeout`] otherwise.
    pub fn wait_for_readers(&self, count: usize, timeout: Duration) -> Result<()> {
        let deadline = Deadline::after(Some(timeout));
        loop {
            let attached = (0..self.shared.geo.max_readers)
                // Acquire: pairs with the reader's SeqCst store of ACTIVE.
                .filter(|&i| {
                    let entry = self.shared.entry(i);
                    protocol::entry::owner(entry, Ordering::Acquire).state() == READER_ACTIVE
                })
                .count();
            if attached >= count {
                return Ok(());
            }
            let Some(left) = deadline.remaining(Duration::from_millis(1)) else {
                return Err(Error::Timeout);
            };
            std::thread::sleep(left);
        }
    }

    /// Ends the stream: readers drain the frames left and then get [`Error::EndOfStream`].
    /// Dropping the writer does the same.
    pub fn close(mut self) {
        self.close_inner();
    }

    fn close_inner(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.abort_raw();
        if let Some(multi) = self.multi.as_mut() {
            multi.close(&self.shared, self.bytes_written);
            return;
        }
        let hdr = self.shared.header();
        // SeqCst: readers check the state after announcing sleep; see `Reader::wait_for_frame`.
        hdr.writer_state.store(WRITER_CLOSED, Ordering::SeqCst);
        super::wake_all_readers(hdr);
    }

    fn check_idle(&self) -> Result<()> {
        if self.reserved.is_some() {
            return Err(Error::WrongState(
                "a slot is reserved: commit or abort it before writing again".into(),
            ));
        }
        Ok(())
    }

    fn check_len(&self, len: usize) -> Result<()> {
        let max = self.max_frame_size();
        if len > max {
            return Err(Error::FrameTooLarge { len, max });
        }
        Ok(())
    }

    /// Counts `count` frames discarded under [`Backpressure::DropNewest`].
    #[cold]
    fn drop_frames(&mut self, count: u64) {
        self.frames_dropped += count;
        // Relaxed: a statistic for monitors.
        self.shared
            .header()
            .frames_dropped
            .fetch_add(count, Ordering::Relaxed);
    }

    fn crc(&self, data: &[u8]) -> u32 {
        if self.shared.checksum() {
            crc32c::crc32c(data)
        } else {
            0
        }
    }

    /// Completes the slot of claimed frame `seq`, its payload written.
    #[inline]
    fn end_write(
        &self,
        frame: &crate::layout::FrameHeader,
        seq: u64,
        len: u32,
        flags: u32,
        crc: u32,
        timestamp: u64,
    ) {
        if self.multi.is_some() {
            protocol::multi::stamp(frame, seq, len, flags, crc, timestamp);
        } else {
            protocol::end_write(frame, seq, len, flags, crc, timestamp);
        }
    }

    /// Publishes frames below `new_head` (`frames` of them completed since the last call) and wakes
    /// sleeping readers if there are any.
    ///
    /// Always inlined, with everything but the single writer's store of `head` out of line: on
    /// the small-frame path every store the writer makes, its own stack's included (a call's
    /// return address, the registers it saves), waits in the store buffer behind the stores into
    /// slots whose lines are still coming back from the reader's core (docs/BENCHMARKS.md).
    #[inline(always)]
    fn publish(&mut self, new_head: u64, frames: u64) {
        if self.multi.is_some() {
            self.publish_multi(frames);
            return;
        }
        self.head = new_head;
        let hdr = self.shared.header();
        if protocol::publish(hdr, new_head) {
            super::wake_all_readers(hdr);
        }
        // Relaxed: a statistic for monitors.
        hdr.bytes_written
            .store(self.bytes_written, Ordering::Relaxed);
    }

    /// [`Writer::publish`] in a multi-writer stream.
    #[inline(never)]
    fn publish_multi(&mut self, frames: u64) {
        if let Some(multi) = self.multi.as_mut() {
            multi.publish(&self.shared, frames, self.bytes_written);
        }
    }

    /// Returns the sequence number of the next slot once it may be written.
    ///
    /// Always inlined, with the single writer's common case (the slot is free by its last scan)
    /// alone in line, for the reason given at [`Writer::publish`]; the result then stays in
    /// registers instead of going through memory.
    #[inline(always)]
    fn claim(&mut self, deadline: Deadline) -> Result<u64> {
        if self.multi.is_none() && self.head < self.limit {
            return Ok(self.head);
        }
        self.claim_slow(deadline)
    }

    /// [`Writer::claim`] when the last scan does not already allow the next slot, or in a
    /// multi-writer stream.
    #[inline(never)]
    fn claim_slow(&mut self, deadline: Deadline) -> Result<u64> {
        if let Some(multi) = self.multi.as_mut() {
            return multi.claim(&self.shared, deadline, self.policy, self.wait);
        }
        // `claim` found the slot taken by its last scan: scan again before waiting.
        if self.rescan() {
            return Ok(self.head);
        }
        self.wait_for_space(deadline)?;
        Ok(self.head)
    }

    /// Scans the readers; returns true if the next slot may be written.
    fn rescan(&mut self) -> bool {
        let shared = &*self.shared;
        let groups = (0..self.scan_groups).map(|g| shared.group(g));
        let entries = (0..self.scan_readers).map(|i| shared.entry(i));
        let scan = protocol::scan(shared.header(), groups, entries, self.head, self.capacity);
        self.limit = scan.limit;
        self.head < self.limit
    }

    #[cold]
    fn wait_for_space(&mut self, deadline: Deadline) -> Result<()> {
        if !deadline.may_wait() || !self.policy.waits() {
            // A caller that never waits is held back all the same: a dead reader must not hold
            // a `try_write` loop (or a `fail` stream) for ever.
            if self.patience.due(self.head) {
                self.reclaim_dead_readers();
                if self.rescan() {
                    return Ok(());
                }
            }
            return Err(Error::Full);
        }
        let started = Instant::now();
        let result = self.wait_for_space_inner(deadline);
        let hdr = self.shared.header();
        // Relaxed: statistics; we are the only writer of these counters. Wrapping: shared memory
        // is untrusted, and a damaged counter must not make a debug build panic on overflow.
        hdr.wait_count.store(
            hdr.wait_count.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        hdr.wait_ns.store(
            hdr.wait_ns
                .load(Ordering::Relaxed)
                .wrapping_add(started.elapsed().as_nanos() as u64),
            Ordering::Relaxed,
        );
        result
    }

    fn wait_for_space_inner(&mut self, deadline: Deadline) -> Result<()> {
        let mut spins = 0u32;
        loop {
            if self.rescan() {
                return Ok(());
            }
            if self.patience.due(self.head) {
                // Held back at this frame for a while (in this call or earlier ones): make sure
                // the laggards are alive.
                self.reclaim_dead_readers();
                continue;
            }
            let slice = match self.wait.next_step(&mut spins, &deadline) {
                Step::Poll => continue,
                Step::CheckLiveness => {
                    self.reclaim_dead_readers();
                    continue;
                }
                Step::TimedOut => return Err(Error::Timeout),
                Step::Sleep(slice) => slice,
            };
            let (wanted, slice) = policy::space_wanted(self.head, self.head, self.capacity, slice);
            let shared = Arc::clone(&self.shared);
            let hdr = shared.header();
            let word = protocol::writer_prepare_sleep(hdr, wanted);
            if self.rescan() {
                protocol::writer_wake_done(hdr);
                return Ok(());
            }
            futex_wait(&hdr.space_futex, word, slice.min(PATIENCE));
            protocol::writer_wake_done(hdr);
        }
    }

    /// Frees the entries of lossless readers that died, so they cannot hold the writer for ever,
    /// and hands the frames of dead group members to live ones.
    fn reclaim_dead_readers(&mut self) {
        group::reclaim_dead_readers(&self.shared, true);
    }
}

/// Copies `data` into a slot's payload. Frames of 16 to 64 bytes are copied inline in 16-byte
/// pieces (overlapping for lengths between multiples of 16), the rest by `memcpy`.
///
/// # Safety
/// `payload` has room for `data.len()` bytes and does not overlap `data`.
#[inline(always)]
unsafe fn copy_frame_in(data: &[u8], payload: *mut u8) {
    let len = data.len();
    if (16..=64).contains(&len) {
        let piece = |at: usize| {
            let bytes: [u8; 16] = data[at..at + 16].try_into().expect("16 bytes");
            // SAFETY: at + 16 <= len, and the caller guarantees `len` writable bytes at `payload`.
            let dst = unsafe { payload.add(at) }.cast::<[u8; 16]>();
            // SAFETY: as above; an unaligned write of plain bytes, apart from `data`.
            unsafe { dst.write_unaligned(bytes) };
        };
        piece(0);
        if len > 32 {
            piece(16);
            piece(len - 32);
        }
        piece(len - 16);
    } else {
        // SAFETY: as the caller guarantees.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), payload, len) };
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close_inner();
    }
}

/// A reserved slot of a stream, filled in place and published by [`WriteSlot::commit`].
/// Dropping it without committing publishes nothing.
#[derive(Debug)]
pub struct WriteSlot<'w> {
    writer: &'w mut Writer,
}

impl WriteSlot<'_> {
    /// Publishes the first `len` bytes of the slot as a frame.
    #[inline]
    pub fn commit(self, len: usize) -> Result<()> {
        self.commit_with_flags(len, 0)
    }

    /// Publishes the first `len` bytes of the slot as a frame with application `flags`.
    #[inline]
    pub fn commit_with_flags(self, len: usize, flags: u32) -> Result<()> {
        let result = self.writer.commit_raw(len, flags);
        // On error the reservation is dropped with the slot (nothing published).
        result
    }

    /// Sequence number the frame will have.
    pub fn seq(&self) -> u64 {
        self.writer.reserved.expect("a slot holds a reservation")
    }
}

impl std::ops::Deref for WriteSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let seq = self.writer.reserved.expect("a slot holds a reservation");
        let (_, payload) = self.writer.shared.slot(seq);
        // SAFETY: the reserved slot's payload is max_frame bytes inside the mapping, which the
        // writer's Arc keeps alive; only this slot accesses it until commit or drop.
        unsafe { std::slice::from_raw_parts(payload, self.writer.max_frame_size()) }
    }
}

impl std::ops::DerefMut for WriteSlot<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let seq = self.writer.reserved.expect("a slot holds a reservation");
        let (_, payload) = self.writer.shared.slot(seq);
        // SAFETY: as in `deref`; the slot borrows the writer mutably, so this is the only access.
        unsafe { std::slice::from_raw_parts_mut(payload, self.writer.max_frame_size()) }
    }
}

impl Drop for WriteSlot<'_> {
    fn drop(&mut self) {
        self.writer.abort_raw();
    }
}

#[cfg(test)]
mod tests {
    use crate::{Error, ReaderOptions, Stream, StreamOptions};

    fn stream(what: &str) -> Stream {
        let name = format!("t-writer-{what}-{}", std::process::id());
        let options = StreamOptions {
            max_frame_size: 8,
            unlink_on_close: true,
            ..Default::default()
        };
        Stream::create(&name, &options).unwrap()
    }

    #[test]
    fn a_frame_is_copied_into_its_slot_exactly_at_every_small_length() {
        for len in 0..=130 {
            let data: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(7).wrapping_add(1))
                .collect();
            // Guards of 0xEE on both sides of the payload must stay untouched.
            let mut slot = vec![0xEEu8; len + 64];
            let payload = slot[32..].as_mut_ptr();
            // SAFETY: the payload at offset 32 has room for `len` bytes; `data` is apart.
            unsafe { super::copy_frame_in(&data, payload) };
            assert_eq!(&slot[32..32 + len], &data[..], "length {len}");
            assert!(
                slot[..32].iter().all(|&b| b == 0xEE),
                "length {len}: before"
            );
            assert!(
                slot[32 + len..].iter().all(|&b| b == 0xEE),
                "length {len}: after"
            );
        }
    }

    #[test]
    fn closing_a_stream_that_never_had_a_writer_ends_it_for_readers() {
        let stream = stream("abandoned-none");
        let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
        assert!(stream.close_abandoned_writer(None));
        assert!(matches!(reader.read(), Err(Error::EndOfStream)));
        assert!(!stream.close_abandoned_writer(None), "already closed");
    }

    #[test]
    fn a_stream_with_a_live_writer_is_not_closed_for_it() {
        let stream = stream("abandoned-live");
        let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
        let mut writer = stream.writer().unwrap();
        assert!(!stream.close_abandoned_writer(None));
        writer.write(b"x").unwrap();
        assert_eq!(reader.read().unwrap().data, b"x");
    }
}
