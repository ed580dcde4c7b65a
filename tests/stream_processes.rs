//! Streams between real processes: broadcast, backpressure, lossy taps, late joins, end of stream,
//! timeouts, processes killed with SIGKILL, idle CPU use, zero-copy and batch calls.
//!
//! The parent tests re-run this test binary as child processes (`--exact <role> --ignored`) with
//! their job (stream name, frame count, one role-specific number) in `SHMLINE_STREAM_CHILD`; the
//! role functions are ignored tests that do nothing unless that variable is set. The parent creates
//! every segment with `unlink_on_close`, so nothing is left in `/dev/shm` even if a test fails.
//!
//! Every frame's payload is derived from its sequence number (and its length varies with it), so
//! each side checks every byte of every frame and that sequence numbers are exactly as promised.

mod support;

use shmline::layout::{
    ReaderEntry, StreamHeader, OWNER_PID_SHIFT, READERS_OFFSET, READER_CLAIMING, WRITER_CLAIMING,
};
use shmline::{
    Error, Event, EventMode, EventOptions, FrameInfo, Reader, ReaderOptions, StartPosition, Stream,
    StreamOptions, WriterOptions, WriterState,
};
use std::mem::{offset_of, size_of};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use support::{thread_cpu_time, RoleProcess};

/// Environment variable carrying a child role's [`Job`].
const CHILD_ENV: &str = "SHMLINE_STREAM_CHILD";
/// How long any wait for another process may take on a loaded machine before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Frames: payload and length derived from the sequence number.

/// Length of frame `seq` on a stream of frames up to `max` bytes: from 8 to `max`, varying.
fn frame_len(seq: u64, max: usize) -> usize {
    8 + (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % (max - 7)
}

/// Byte `i` of frame `seq`: its sequence number (little-endian), then a pattern made from it.
fn frame_byte(seq: u64, i: usize) -> u8 {
    match i {
        0..=7 => seq.to_le_bytes()[i],
        _ => (seq as u8).wrapping_mul(31) ^ (i as u8),
    }
}

/// Writes frame `seq` into `buf` (at least `max` bytes) and returns its length.
fn fill_frame(seq: u64, max: usize, buf: &mut [u8]) -> usize {
    let len = frame_len(seq, max);
    for (i, b) in buf[..len].iter_mut().enumerate() {
        *b = frame_byte(seq, i);
    }
    len
}

/// Frame `seq` as owned bytes.
fn frame(seq: u64, max: usize) -> Vec<u8> {
    let mut buf = vec![0; max];
    let len = fill_frame(seq, max, &mut buf);
    buf.truncate(len);
    buf
}

/// Fails unless `data` is exactly frame `seq`.
fn check_frame(seq: u64, max: usize, data: &[u8]) {
    assert_eq!(data.len(), frame_len(seq, max), "length of frame {seq}");
    if let Some(i) = (0..data.len()).find(|&i| data[i] != frame_byte(seq, i)) {
        panic!(
            "frame {seq}: byte {i} is {:#04x}, expected {:#04x}",
            data[i],
            frame_byte(seq, i)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Parent side: segments, child processes, handshakes.

fn unique_name(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // Relaxed: only uniqueness matters.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t-sp-{what}-{}-{n}", std::process::id())
}

/// Creates a stream that is unlinked when the test drops it.
fn create_stream(what: &str, capacity: u32, max_frame_size: u32, checksum: bool) -> Stream {
    Stream::create(
        &unique_name(what),
        &StreamOptions {
            capacity,
            max_frame_size,
            checksum,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Counting event a child sets once it has attached to the stream.
fn ready_name(stream: &str) -> String {
    format!("{stream}.ready")
}

/// Flag event the parent sets to let an idle or stalled child finish.
fn done_name(stream: &str) -> String {
    format!("{stream}.done")
}

/// Flag event a stalling reader sets once it has stopped reading.
fn stalled_name(stream: &str) -> String {
    format!("{stream}.stalled")
}

fn create_event(name: &str, mode: EventMode) -> Event {
    let options = EventOptions {
        mode,
        unlink_on_close: true,
        ..Default::default()
    };
    Event::create(name, &options).unwrap()
}

/// Waits until `count` children have set `ready`.
fn wait_ready(ready: &Event, count: u32) {
    for i in 0..count {
        ready
            .wait_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("child {i} of {count} never got ready: {e}"));
    }
}

/// Polls `condition` every millisecond until it holds; fails the test after [`PATIENCE`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < PATIENCE, "gave up waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts this test binary running only the ignored test `role` on `stream`, with its job.
fn spawn_role(role: &str, stream: &Stream, frames: u64, extra: u64) -> RoleProcess {
    RoleProcess::spawn(
        role,
        CHILD_ENV,
        &format!("{} {frames} {extra}", stream.name()),
    )
}

/// Reads frames `first..end`, checking each one's sequence number and every byte.
fn read_range(reader: &mut Reader, first: u64, end: u64, max: usize) {
    let mut buf = vec![0u8; max];
    for seq in first..end {
        let info = reader
            .read_into_timeout(&mut buf, PATIENCE)
            .unwrap_or_else(|e| panic!("reading frame {seq}: {e}"));
        assert_eq!(info.seq, seq);
        assert_eq!(info.missed, 0);
        check_frame(seq, max, &buf[..info.len as usize]);
    }
}

// ---------------------------------------------------------------------------------------------
// Child side: the roles.

/// What a child role is told by its parent.
struct Job {
    stream: Stream,
    /// Frames the role writes or expects to read.
    frames: u64,
    /// A role-specific number (documented at each role).
    extra: u64,
    /// The stream's largest frame.
    max: usize,
}

impl Job {
    /// The job given to this process, if it runs as a child role.
    fn given() -> Option<Job> {
        let text = std::env::var(CHILD_ENV).ok()?;
        let mut parts = text.split_whitespace();
        let stream = Stream::open(parts.next().unwrap()).unwrap();
        let frames = parts.next().unwrap().parse().unwrap();
        let extra = parts.next().unwrap().parse().unwrap();
        let max = stream.info().max_frame_size as usize;
        Some(Job {
            stream,
            frames,
            extra,
            max,
        })
    }

    fn event(&self, name: fn(&str) -> String) -> Event {
        Event::open(&name(self.stream.name())).unwrap()
    }

    fn reader(&self, start: StartPosition, lossy: bool) -> Reader {
        self.stream
            .reader(&ReaderOptions {
                start,
                lossy,
                timeout: Some(PATIENCE),
                ..Default::default()
            })
            .unwrap()
    }

    fn writer(&self) -> shmline::Writer {
        self.stream
            .writer_with(&WriterOptions {
                timeout: Some(PATIENCE),
                ..Default::default()
            })
            .unwrap()
    }

    /// Attaches a lossless reader at the next frame and tells the parent.
    fn ready_reader(&self) -> Reader {
        let reader = self.reader(StartPosition::Next, false);
        self.event(ready_name).set();
        reader
    }
}

/// A slow consumer's processing of frame `seq`: checks it many times over. Real work rather than
/// yields or sleeps, so it costs about the same however loaded the machine is.
fn work_on_frame(seq: u64, max: usize, data: &[u8]) {
    for _ in 0..20 {
        check_frame(seq, max, std::hint::black_box(data));
    }
}

fn expect_end_of_stream(reader: &mut Reader) {
    let outcome = reader.read();
    assert!(matches!(outcome, Err(Error::EndOfStream)), "{outcome:?}");
}

#[test]
#[ignore = "child role: reads `frames` frames, then expects end of stream"]
fn child_reads_every_frame() {
    let Some(job) = Job::given() else { return };
    let mut reader = job.ready_reader();
    read_range(&mut reader, 0, job.frames, job.max);
    expect_end_of_stream(&mut reader);
}

#[test]
#[ignore = "child role: as child_reads_every_frame, but holds the writer up"]
fn child_reads_every_frame_slowly() {
    let Some(job) = Job::given() else { return };
    let mut reader = job.ready_reader();
    let capacity = job.stream.info().capacity as u64;
    // Let the writer fill the ring before the first read, then stay behind it.
    wait_until("the writer filled the ring", || {
        job.stream.stats().frames_written >= capacity
    });
    let mut buf = vec![0u8; job.max];
    for seq in 0..job.frames {
        let info = reader.read_into(&mut buf).unwrap();
        assert_eq!(info.seq, seq);
        work_on_frame(seq, job.max, &buf[..info.len as usize]);
    }
    expect_end_of_stream(&mut reader);
}

#[test]
#[ignore = "child role: a lossy reader of a stream of `frames` frames, lapped on purpose"]
fn child_reads_lossily() {
    let Some(job) = Job::given() else { return };
    let mut reader = job.reader(StartPosition::Next, true);
    job.event(ready_name).set();
    let capacity = job.stream.info().capacity as u64;
    // Fall far behind so the writer certainly laps us before the first read.
    wait_until("the writer lapped the lossy reader", || {
        job.stream.stats().frames_written >= 4 * capacity
    });
    let mut buf = vec![0u8; job.max];
    let (mut delivered, mut missed, mut next) = (0u64, 0u64, 0u64);
    loop {
        let info = match reader.read_into(&mut buf) {
            Ok(info) => info,
            Err(Error::EndOfStream) => break,
            Err(e) => panic!("lossy read after frame {next}: {e}"),
        };
        assert!(info.seq >= next, "frame {} came after {next}", info.seq);
        assert_eq!(
            info.missed,
            info.seq - next,
            "gap before frame {}",
            info.seq
        );
        work_on_frame(info.seq, job.max, &buf[..info.len as usize]);
        delivered += 1;
        missed += info.missed;
        next = info.seq + 1;
    }
    assert_eq!(next, job.frames, "the last frame is never lost");
    assert_eq!(delivered + missed, job.frames);
    assert_eq!(reader.missed(), missed);
    assert!(missed >= 2 * capacity, "missed only {missed}");
    eprintln!("lossy reader: {delivered} delivered, {missed} missed");
}

/// Frames a late reader finds and reads, from `start` (already joined) to the end of stream.
fn read_after_late_join(job: &Job, start: StartPosition) -> u64 {
    let mut reader = job.reader(start, false);
    job.event(ready_name).set();
    let first = reader.read().unwrap();
    check_frame(first.info.seq, job.max, &first.data);
    read_range(&mut reader, first.info.seq + 1, job.frames, job.max);
    expect_end_of_stream(&mut reader);
    eprintln!("{start:?} reader started at frame {}", first.info.seq);
    first.info.seq
}

#[test]
#[ignore = "child role: joins after `extra` frames were written, at the oldest frame"]
fn child_joins_late_at_the_oldest_frame() {
    let Some(job) = Job::given() else { return };
    let first = read_after_late_join(&job, StartPosition::Oldest);
    let capacity = job.stream.info().capacity as u64;
    // The oldest frame the writer still promises not to overwrite: at most a ring behind.
    assert!(
        (job.extra - capacity..job.extra).contains(&first),
        "started at {first} after {} frames",
        job.extra
    );
}

#[test]
#[ignore = "child role: joins after `extra` frames were written, at the newest frame"]
fn child_joins_late_at_the_newest_frame() {
    let Some(job) = Job::given() else { return };
    let first = read_after_late_join(&job, StartPosition::Newest);
    assert_eq!(first, job.extra - 1);
}

#[test]
#[ignore = "child role: a lossless reader that reads `extra` frames, then stops until told"]
fn child_stops_reading() {
    let Some(job) = Job::given() else { return };
    let mut reader = job.ready_reader();
    read_range(&mut reader, 0, job.extra, job.max);
    job.event(stalled_name).set();
    job.event(done_name).wait_timeout(PATIENCE).unwrap();
}

#[test]
#[ignore = "child role: opens and closes readers (some sleeping in short reads) until killed"]
fn child_opens_and_closes_readers_until_killed() {
    let Some(job) = Job::given() else { return };
    job.event(ready_name).set();
    for round in 0u64.. {
        let mut reader = job.reader(StartPosition::Next, round % 3 == 0);
        // An empty stream: the read spins, then sleeps for the rest of the millisecond.
        let outcome = reader.read_timeout(Duration::from_millis(1));
        assert!(matches!(outcome, Err(Error::Timeout)), "{outcome:?}");
        drop(reader);
    }
}

#[test]
#[ignore = "child role: writes `frames` frames with copy writes, then closes"]
fn child_writes_frames() {
    let Some(job) = Job::given() else { return };
    let mut writer = job.writer();
    let mut buf = vec![0u8; job.max];
    for seq in 0..job.frames {
        let len = fill_frame(seq, job.max, &mut buf);
        writer
            .write(&buf[..len])
            .unwrap_or_else(|e| panic!("writing frame {seq}: {e}"));
    }
}

#[test]
#[ignore = "child role: attaches the writer, then writes nothing until told to close"]
fn child_holds_an_idle_writer() {
    let Some(job) = Job::given() else { return };
    let _writer = job.writer();
    job.event(ready_name).set();
    job.event(done_name).wait_timeout(PATIENCE).unwrap();
}

#[test]
#[ignore = "child role: writes `frames` frames with reserve/commit, then closes"]
fn child_writes_zero_copy() {
    let Some(job) = Job::given() else { return };
    let mut writer = job.writer();
    for seq in 0..job.frames {
        let mut slot = writer.reserve().unwrap();
        assert_eq!(slot.seq(), seq);
        let len = fill_frame(seq, job.max, &mut slot);
        slot.commit(len).unwrap();
    }
}

#[test]
#[ignore = "child role: writes `frames` frames in batches of varying size, then closes"]
fn child_writes_batches() {
    let Some(job) = Job::given() else { return };
    let mut writer = job.writer();
    let mut seq = 0;
    while seq < job.frames {
        let count = (1 + seq % 37).min(job.frames - seq);
        let frames: Vec<Vec<u8>> = (seq..seq + count).map(|s| frame(s, job.max)).collect();
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let mut done = 0;
        while done < refs.len() {
            done += writer.write_batch(&refs[done..]).unwrap();
        }
        seq += count;
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn every_reader_process_sees_every_frame_a_writer_process_broadcasts() {
    const READERS: u32 = 3;
    const FRAMES: u64 = 200_000;
    let stream = create_stream("broadcast", 256, 32, false);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let readers: Vec<RoleProcess> = (0..READERS)
        .map(|_| spawn_role("child_reads_every_frame", &stream, FRAMES, 0))
        .collect();
    wait_ready(&ready, READERS);
    let writer = spawn_role("child_writes_frames", &stream, FRAMES, 0);
    writer.finish();
    readers.into_iter().for_each(RoleProcess::finish);
    let stats = stream.stats();
    assert_eq!(stats.frames_written, FRAMES);
    assert_eq!(stats.writer_state, WriterState::Closed);
}

#[test]
fn a_slow_reader_process_makes_the_writer_wait_and_neither_reader_loses_a_frame() {
    const FRAMES: u64 = 2_000;
    let stream = create_stream("slow", 16, 64, false);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let slow = spawn_role("child_reads_every_frame_slowly", &stream, FRAMES, 0);
    let fast = spawn_role("child_reads_every_frame", &stream, FRAMES, 0);
    wait_ready(&ready, 2);
    spawn_role("child_writes_frames", &stream, FRAMES, 0).finish();
    slow.finish();
    fast.finish();
    let stats = stream.stats();
    assert_eq!(stats.frames_written, FRAMES);
    assert!(stats.writer_waits > 0, "{stats:?}");
}

#[test]
fn a_lossy_reader_process_counts_exactly_the_frames_it_missed_while_a_lossless_one_misses_none() {
    const FRAMES: u64 = 10_000;
    let stream = create_stream("lossy", 16, 128, true);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let lossy = spawn_role("child_reads_lossily", &stream, FRAMES, 0);
    let lossless = spawn_role("child_reads_every_frame", &stream, FRAMES, 0);
    wait_ready(&ready, 2);
    let mut writer = stream.writer().unwrap();
    for seq in 0..FRAMES {
        writer.write_timeout(&frame(seq, 128), PATIENCE).unwrap();
    }
    drop(writer);
    lossy.finish();
    lossless.finish();
}

#[test]
fn reader_processes_joining_late_start_at_the_oldest_or_newest_frame_then_miss_nothing() {
    const CAPACITY: u32 = 16;
    const BEFORE: u64 = 3 * CAPACITY as u64 + 5;
    const FRAMES: u64 = BEFORE + 2_000;
    let stream = create_stream("late", CAPACITY, 48, false);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let mut writer = stream.writer().unwrap();
    for seq in 0..BEFORE {
        writer.try_write(&frame(seq, 48)).unwrap();
    }
    let oldest = spawn_role(
        "child_joins_late_at_the_oldest_frame",
        &stream,
        FRAMES,
        BEFORE,
    );
    let newest = spawn_role(
        "child_joins_late_at_the_newest_frame",
        &stream,
        FRAMES,
        BEFORE,
    );
    wait_ready(&ready, 2);
    for seq in BEFORE..FRAMES {
        writer.write_timeout(&frame(seq, 48), PATIENCE).unwrap();
    }
    drop(writer);
    oldest.finish();
    newest.finish();
}

#[test]
fn readers_drain_every_frame_after_the_writer_process_exits_then_get_end_of_stream() {
    const CAPACITY: u64 = 64;
    const FRAMES: u64 = 1_000;
    let stream = create_stream("eos", CAPACITY as u32, 100, false);
    let mut reader = stream
        .reader(&ReaderOptions {
            timeout: Some(PATIENCE),
            ..Default::default()
        })
        .unwrap();
    let writer = spawn_role("child_writes_frames", &stream, FRAMES, 0);
    // Read all but a ring's worth: the writer can then publish its last frames and exit.
    read_range(&mut reader, 0, FRAMES - CAPACITY, 100);
    writer.finish();
    let stats = stream.stats();
    assert_eq!(stats.writer_state, WriterState::Closed);
    assert_eq!(stats.frames_written, FRAMES);
    read_range(&mut reader, FRAMES - CAPACITY, FRAMES, 100);
    expect_end_of_stream(&mut reader);
    assert!(matches!(reader.try_read(), Err(Error::EndOfStream)));
}

/// Starts a child holding an idle writer on a new stream; returns once the writer is attached.
fn stream_with_an_idle_writer_process(what: &str) -> (Stream, Event, Event, RoleProcess) {
    let stream = create_stream(what, 16, 16, false);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let done = create_event(&done_name(stream.name()), EventMode::Flag);
    let writer = spawn_role("child_holds_an_idle_writer", &stream, 0, 0);
    wait_ready(&ready, 1);
    (stream, ready, done, writer)
}

#[test]
fn a_busy_spinning_reader_waiting_in_1_ms_slices_learns_its_writer_was_killed() {
    let (stream, _ready, _done, writer) = stream_with_an_idle_writer_process("wkill-short");
    let mut reader = stream
        .reader(&ReaderOptions {
            wait: shmline::WaitStrategy::BusySpin,
            ..Default::default()
        })
        .unwrap();
    let status = writer.kill();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let started = Instant::now();
    loop {
        match reader.read_timeout(Duration::from_millis(1)) {
            Err(Error::WriterDead) => break,
            Err(Error::Timeout) => {}
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < PATIENCE, "the reader never learnt");
    }
}

#[test]
fn a_read_from_an_empty_stream_with_a_live_writer_process_times_out() {
    let (stream, _ready, done, writer) = stream_with_an_idle_writer_process("rtimeout");
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    assert!(matches!(reader.try_read(), Err(Error::Empty)));
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let outcome = reader.read_timeout(timeout);
    let elapsed = started.elapsed();
    assert!(matches!(outcome, Err(Error::Timeout)), "{outcome:?}");
    assert!(elapsed >= timeout, "gave up after {elapsed:?}");
    assert_eq!(stream.stats().writer_state, WriterState::Active);
    done.set();
    writer.finish();
    let outcome = reader.read_timeout(PATIENCE);
    assert!(matches!(outcome, Err(Error::EndOfStream)), "{outcome:?}");
}

#[test]
fn a_write_to_a_ring_held_full_by_a_reader_process_times_out() {
    let stream = create_stream("wtimeout", 8, 16, false);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let done = create_event(&done_name(stream.name()), EventMode::Flag);
    let _stalled = create_event(&stalled_name(stream.name()), EventMode::Flag);
    let reader = spawn_role("child_stops_reading", &stream, 0, 0);
    wait_ready(&ready, 1);
    let mut writer = stream.writer().unwrap();
    for seq in 0..8 {
        writer.try_write(&frame(seq, 16)).unwrap();
    }
    assert!(matches!(writer.try_write(&frame(8, 16)), Err(Error::Full)));
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let outcome = writer.write_timeout(&frame(8, 16), timeout);
    let elapsed = started.elapsed();
    assert!(matches!(outcome, Err(Error::Timeout)), "{outcome:?}");
    assert!(elapsed >= timeout, "gave up after {elapsed:?}");
    // Once the reader leaves, nothing holds the writer back.
    done.set();
    reader.finish();
    writer.write_timeout(&frame(8, 16), PATIENCE).unwrap();
}

#[test]
fn a_writer_blocked_on_a_reader_killed_with_sigkill_reclaims_it_and_carries_on() {
    const CAPACITY: u64 = 16;
    const READ_BEFORE_STALLING: u64 = 3;
    const FRAMES: u64 = 5_000;
    let stream = create_stream("rkill", CAPACITY as u32, 64, false);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let _done = create_event(&done_name(stream.name()), EventMode::Flag);
    let stalled = create_event(&stalled_name(stream.name()), EventMode::Flag);
    let victim = spawn_role("child_stops_reading", &stream, 0, READ_BEFORE_STALLING);
    let survivor = spawn_role("child_reads_every_frame", &stream, FRAMES, 0);
    wait_ready(&ready, 2);
    let writer = spawn_role("child_writes_frames", &stream, FRAMES, 0);
    stalled.wait_timeout(PATIENCE).unwrap();
    wait_until(
        "the writer is a full ring ahead of the stalled reader",
        || stream.stats().frames_written == READ_BEFORE_STALLING + CAPACITY,
    );
    let status = victim.kill();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    writer.finish();
    survivor.finish();
    let stats = stream.stats();
    assert_eq!(stats.frames_written, FRAMES);
    assert!(stats.readers_reclaimed >= 1, "{stats:?}");
    assert!(stats.writer_waits >= 1, "{stats:?}");
}

/// A writer that fills the ring of a stream whose one lossless reader process stalled and was then
/// killed with SIGKILL; returns the stream (for its statistics) and the writer.
fn ring_held_full_by_a_killed_reader(what: &str) -> (Stream, shmline::Writer) {
    let (stream, writer, victim) = ring_held_full_by_a_stalled_reader(what);
    let status = victim.kill();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    (stream, writer)
}

/// A stream whose ring a live child reader holds full (it stopped reading), and its writer.
fn ring_held_full_by_a_stalled_reader(what: &str) -> (Stream, shmline::Writer, RoleProcess) {
    const CAPACITY: u64 = 8;
    let stream = create_stream(what, CAPACITY as u32, 16, false);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let _done = create_event(&done_name(stream.name()), EventMode::Flag);
    let stalled = create_event(&stalled_name(stream.name()), EventMode::Flag);
    let victim = spawn_role("child_stops_reading", &stream, 0, 0);
    wait_ready(&ready, 1);
    stalled.wait_timeout(PATIENCE).unwrap();
    let mut writer = stream.writer().unwrap();
    for seq in 0..CAPACITY {
        writer.try_write(&frame(seq, 16)).unwrap();
    }
    assert!(matches!(
        writer.try_write(&frame(CAPACITY, 16)),
        Err(Error::Full)
    ));
    (stream, writer, victim)
}

/// Calls `write` until it succeeds; fails the test after [`PATIENCE`], or on an outcome other
/// than `Timeout` / `Full`.
fn write_until_it_succeeds(mut write: impl FnMut() -> Result<(), Error>) -> Duration {
    let started = Instant::now();
    loop {
        match write() {
            Ok(()) => return started.elapsed(),
            Err(Error::Timeout | Error::Full) => {}
            Err(e) => panic!("write failed: {e}"),
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the writer is still held back by the dead reader"
        );
    }
}

#[test]
fn a_writer_waiting_in_1_ms_slices_gets_past_a_reader_killed_with_sigkill() {
    let (stream, mut writer) = ring_held_full_by_a_killed_reader("rkill-short");
    let took =
        write_until_it_succeeds(|| writer.write_timeout(&frame(8, 16), Duration::from_millis(1)));
    assert!(stream.stats().readers_reclaimed >= 1, "took {took:?}");
}

#[test]
fn a_writer_calling_try_write_in_a_loop_gets_past_a_reader_killed_with_sigkill() {
    let (stream, mut writer) = ring_held_full_by_a_killed_reader("rkill-try");
    let took = write_until_it_succeeds(|| {
        let outcome = writer.try_write(&frame(8, 16));
        std::thread::yield_now();
        outcome
    });
    assert!(stream.stats().readers_reclaimed >= 1, "took {took:?}");
}

#[test]
fn a_writer_gets_past_a_killed_reader_its_own_process_has_not_reaped_yet() {
    // A parent blocked writing to a child that died cannot reap it: the zombie must not hold it
    // for ever (it counts as alive only for a short grace, see `liveness::ZOMBIE_GRACE`).
    let (stream, mut writer, victim) = ring_held_full_by_a_stalled_reader("rkill-zombie");
    let mut zombie = victim.kill_without_reaping();
    writer
        .write_timeout(&frame(8, 16), PATIENCE)
        .expect("the writer is still held back by the unreaped dead reader");
    assert_eq!(stream.stats().readers_reclaimed, 1);
    zombie.wait().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The reader table and the writer role after crashes at the worst moments.

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// The stream's segment file, for writing fields as a crashed process would have left them.
fn segment(stream: &Stream) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/shmline.stream.{}", stream.name()))
        .unwrap()
}

fn poke_u64(file: &std::fs::File, offset: usize, value: u64) {
    file.write_all_at(&value.to_le_bytes(), offset as u64)
        .unwrap();
}

fn poke_u32(file: &std::fs::File, offset: usize, value: u32) {
    file.write_all_at(&value.to_le_bytes(), offset as u64)
        .unwrap();
}

fn peek_u32(file: &std::fs::File, offset: usize) -> u32 {
    let mut bytes = [0; 4];
    file.read_exact_at(&mut bytes, offset as u64).unwrap();
    u32::from_le_bytes(bytes)
}

/// Offset of the owner word of reader entry `index`.
fn owner_offset(index: usize) -> usize {
    READERS_OFFSET as usize + index * size_of::<ReaderEntry>() + offset_of!(ReaderEntry, owner)
}

fn stream_with_readers(what: &str, max_readers: u32) -> Stream {
    Stream::create(
        &unique_name(what),
        &StreamOptions {
            capacity: 4,
            max_frame_size: 16,
            max_readers,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn a_reader_killed_while_claiming_its_entry_does_not_cost_the_table_an_entry() {
    let stream = stream_with_readers("rclaim", 1);
    // What a reader killed just after winning the entry leaves: CLAIMING, generation 0, its pid.
    let owner = u64::from(dead_pid()) << OWNER_PID_SHIFT | u64::from(READER_CLAIMING);
    poke_u64(&segment(&stream), owner_offset(0), owner);
    let reader = stream.reader(&ReaderOptions::default());
    assert!(reader.is_ok(), "{reader:?}");
    assert_eq!(stream.stats().readers_reclaimed, 1);
}

#[test]
fn a_claimant_that_is_alive_keeps_its_entry() {
    let stream = stream_with_readers("rclaim-live", 1);
    let owner = u64::from(std::process::id()) << OWNER_PID_SHIFT | u64::from(READER_CLAIMING);
    poke_u64(&segment(&stream), owner_offset(0), owner);
    let e = stream.reader(&ReaderOptions::default()).unwrap_err();
    assert_eq!(e.status(), shmline::Status::TooManyReaders, "{e}");
}

#[test]
fn readers_of_a_stream_whose_writer_was_killed_while_claiming_the_role_get_writer_dead() {
    let stream = create_stream("wclaim", 4, 16, false);
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let pid = dead_pid();
    poke_u32(
        &segment(&stream),
        offset_of!(StreamHeader, writer_state),
        WRITER_CLAIMING | pid,
    );
    let outcome = reader.read_timeout(PATIENCE);
    assert!(matches!(outcome, Err(Error::WriterDead)), "{outcome:?}");
    let stats = stream.stats();
    assert_eq!(stats.writer_state, WriterState::Dead);
    assert_eq!(stats.writer_pid, Some(pid));
    let e = stream.writer().unwrap_err();
    assert!(e.to_string().contains("died"), "{e}");
}

#[test]
fn reclaiming_a_reader_killed_while_asleep_takes_it_out_of_readers_waiting() {
    let stream = stream_with_readers("rsleep", 1);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let file = segment(&stream);
    let waiting = || peek_u32(&file, offset_of!(StreamHeader, readers_waiting));
    // It reads one frame that never comes: it sleeps on the futex.
    let sleeper = spawn_role("child_reads_every_frame", &stream, 1, 0);
    wait_ready(&ready, 1);
    wait_until("the reader is asleep", || waiting() == 1);
    let status = sleeper.kill();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(
        waiting(),
        1,
        "a dead sleeper stays counted until it is reclaimed"
    );
    // The table is full: a new reader reclaims the dead one's entry.
    let reader = stream.reader(&ReaderOptions::default()).unwrap();
    assert_eq!(stream.stats().readers_reclaimed, 1);
    assert_eq!(waiting(), 0);
    drop(reader);
}

#[test]
fn readers_killed_at_random_while_opening_and_closing_never_leave_the_table_short() {
    const MAX_READERS: u32 = 4;
    const CHILDREN: usize = 3;
    let kills = support::env_u64("SHMLINE_TABLE_KILLS", 60);
    let stream = stream_with_readers("rstorm", MAX_READERS);
    let ready = create_event(&ready_name(stream.name()), EventMode::Counting);
    let spawn = || spawn_role("child_opens_and_closes_readers_until_killed", &stream, 0, 0);
    let mut children: Vec<RoleProcess> = (0..CHILDREN).map(|_| spawn()).collect();
    wait_ready(&ready, CHILDREN as u32);
    let seed = support::base_seed();
    eprintln!("SHMLINE_SEED={seed}");
    let mut rng = support::Rng::new(seed);
    for kill in 0..kills {
        std::thread::sleep(rng.duration(Duration::from_millis(5)));
        let victim = children.swap_remove(kill as usize % CHILDREN);
        victim.kill();
        children.push(spawn());
        wait_ready(&ready, 1);
    }
    for child in children {
        child.kill();
    }
    // Every child is dead: the whole table is for us (reclaiming what the dead left).
    let readers: Vec<Reader> = (0..MAX_READERS)
        .map(|i| {
            stream
                .reader(&ReaderOptions::default())
                .unwrap_or_else(|e| panic!("reader {i} of {MAX_READERS} refused: {e}"))
        })
        .collect();
    assert_eq!(readers.len(), MAX_READERS as usize);
    drop(readers);
    // Whatever the kills interrupted, nobody is left counted as asleep (a reader killed between
    // counting itself and marking its entry would be the one exception: two instructions).
    let waiting = peek_u32(&segment(&stream), offset_of!(StreamHeader, readers_waiting));
    assert!(waiting <= 1, "readers_waiting is {waiting}");
}

#[test]
fn a_reader_drains_what_a_writer_killed_with_sigkill_published_then_gets_writer_dead() {
    const CAPACITY: u64 = 32;
    const READ_BEFORE_KILL: u64 = 1_000;
    let stream = create_stream("wkill", CAPACITY as u32, 64, false);
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    // Many more frames than the test reads: the writer is killed long before it finishes.
    let writer = spawn_role("child_writes_frames", &stream, 1 << 40, 0);
    read_range(&mut reader, 0, READ_BEFORE_KILL, 64);
    let status = writer.kill();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let published = stream.stats().frames_written;
    assert!(published <= READ_BEFORE_KILL + CAPACITY);
    read_range(&mut reader, READ_BEFORE_KILL, published, 64);
    let outcome = reader.read_timeout(PATIENCE);
    assert!(matches!(outcome, Err(Error::WriterDead)), "{outcome:?}");
    assert_eq!(stream.stats().writer_state, WriterState::Dead);
}

#[test]
fn a_reader_blocked_on_an_idle_writer_process_uses_almost_no_cpu() {
    let (stream, _ready, done, writer) = stream_with_an_idle_writer_process("idle");
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let timeout = Duration::from_secs(1);
    // Measured on a thread of its own so that tests running in parallel are not counted.
    let (outcome, elapsed, cpu) = std::thread::scope(|s| {
        s.spawn(|| {
            let cpu_before = thread_cpu_time();
            let started = Instant::now();
            let outcome = reader.read_timeout(timeout);
            (outcome, started.elapsed(), thread_cpu_time() - cpu_before)
        })
        .join()
        .unwrap()
    });
    assert!(matches!(outcome, Err(Error::Timeout)), "{outcome:?}");
    assert!(elapsed >= timeout);
    assert!(
        cpu < Duration::from_millis(300),
        "waiting {elapsed:?} used {cpu:?} of CPU"
    );
    done.set();
    writer.finish();
}

#[test]
fn zero_copy_checksummed_frames_cross_processes_intact() {
    const FRAMES: u64 = 20_000;
    const MAX: usize = 256;
    let stream = create_stream("zerocopy", 32, MAX as u32, true);
    let mut reader = stream
        .reader(&ReaderOptions {
            timeout: Some(PATIENCE),
            ..Default::default()
        })
        .unwrap();
    let writer = spawn_role("child_writes_zero_copy", &stream, FRAMES, 0);
    for seq in 0..FRAMES {
        let frame = reader.acquire().unwrap();
        assert_eq!(frame.info().seq, seq);
        check_frame(seq, MAX, &frame);
    }
    assert!(matches!(reader.acquire(), Err(Error::EndOfStream)));
    writer.finish();
}

#[test]
fn batches_of_variable_sized_frames_cross_processes_intact() {
    const FRAMES: u64 = 30_000;
    const MAX: usize = 200;
    let stream = create_stream("batch", 64, MAX as u32, false);
    let mut reader = stream
        .reader(&ReaderOptions {
            timeout: Some(PATIENCE),
            ..Default::default()
        })
        .unwrap();
    let writer = spawn_role("child_writes_batches", &stream, FRAMES, 0);
    let mut buf = vec![0u8; 1024];
    let mut infos = vec![FrameInfo::default(); 48];
    let mut next = 0;
    let mut largest_batch = 0;
    while next < FRAMES {
        let count = reader.read_batch(&mut buf, &mut infos).unwrap();
        largest_batch = largest_batch.max(count);
        let mut offset = 0;
        for info in &infos[..count] {
            assert_eq!(info.seq, next);
            let len = info.len as usize;
            check_frame(next, MAX, &buf[offset..offset + len]);
            offset += len;
            next += 1;
        }
    }
    let outcome = reader.read_batch(&mut buf, &mut infos);
    assert!(matches!(outcome, Err(Error::EndOfStream)), "{outcome:?}");
    assert!(largest_batch > 1, "every batch held one frame");
    writer.finish();
}
