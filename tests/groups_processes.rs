//! Reader groups between real processes: member processes sharing a stream's frames, members
//! killed with SIGKILL while they hold frames (which another member then delivers again), and a
//! group reading a multi-writer stream whose writer is killed.
//!
//! The parent re-runs this test binary as child processes (`--exact <role> --ignored`) with their
//! job in `SHMLINE_GROUP_CHILD`: `stream results event_a event_b id`. Members report each frame
//! they processed by writing its sequence number (and their id) to the multi-writer `results`
//! stream. The parent creates every segment with `unlink_on_close`, so nothing is left in
//! `/dev/shm` even if a test fails.

mod support;

use shmline::{
    Error, Event, EventMode, EventOptions, ReaderOptions, Stream, StreamOptions, WriterState,
};
use std::collections::BTreeMap;
use std::time::Duration;
use support::unique;
use support::RoleProcess;

/// Environment variable carrying a child role's job.
const CHILD_ENV: &str = "SHMLINE_GROUP_CHILD";
/// How long any wait for another process may take on a loaded machine before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// The group every member joins.
const GROUP: &str = "workers";

fn create(tag: &str, capacity: u32, max_writers: u32) -> Stream {
    Stream::create(
        &unique(tag),
        &StreamOptions {
            capacity,
            max_frame_size: 16,
            max_writers,
            max_readers: 8,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap()
}

fn event(tag: &str) -> Event {
    let options = EventOptions {
        mode: EventMode::Counting,
        unlink_on_close: true,
        ..Default::default()
    };
    Event::create(&unique(tag), &options).unwrap()
}

fn member() -> ReaderOptions {
    ReaderOptions {
        group: Some(GROUP.into()),
        timeout: Some(PATIENCE),
        ..Default::default()
    }
}

/// A result: the member's id and the sequence number of the frame it processed.
fn result(id: u64, seq: u64) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[..8].copy_from_slice(&id.to_le_bytes());
    r[8..].copy_from_slice(&seq.to_le_bytes());
    r
}

fn parse(data: &[u8]) -> (u64, u64) {
    (
        u64::from_le_bytes(data[..8].try_into().unwrap()),
        u64::from_le_bytes(data[8..16].try_into().unwrap()),
    )
}

/// The job of a child role, from the environment; `None` when this process is not a child.
struct Job {
    stream: Stream,
    results: String,
    a: Event,
    b: Event,
    id: u64,
}

fn job() -> Option<Job> {
    let job = std::env::var(CHILD_ENV).ok()?;
    let words: Vec<&str> = job.split(' ').collect();
    Some(Job {
        stream: Stream::open(words[0]).unwrap(),
        results: words[1].to_owned(),
        a: Event::open(words[2]).unwrap(),
        b: Event::open(words[3]).unwrap(),
        id: words[4].parse().unwrap(),
    })
}

/// Child: joins the group and a writer of `results`, signals event a, then processes frames
/// until the end of the stream: lends each in place, works on it for 50 µs, reports it, releases
/// it (so a frame is released only once processed).
#[test]
#[ignore = "child role"]
fn role_member() {
    let Some(job) = job() else {
        return;
    };
    let mut reader = job.stream.reader(&member()).unwrap();
    let mut results = Stream::open(&job.results).unwrap().writer().unwrap();
    job.a.set();
    loop {
        match reader.acquire() {
            Ok(frame) => {
                let seq = u64::from_le_bytes(frame[..8].try_into().unwrap());
                assert_eq!(seq, frame.info().seq, "payload of frame {seq}");
                // Work on it a little, so members (not the writer) are the bottleneck and a
                // member killed mid-stream is likely to hold a frame.
                let began = std::time::Instant::now();
                while began.elapsed() < Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
                results.write(&result(job.id, seq)).unwrap();
            }
            Err(Error::EndOfStream) => return,
            Err(e) => panic!("member {}: {e}", job.id),
        }
    }
}

/// Child: joins the group, signals event a, lends the first frame it gets in place, signals
/// event b, and waits to be killed holding it.
#[test]
#[ignore = "child role"]
fn role_holder() {
    let Some(job) = job() else {
        return;
    };
    let mut reader = job.stream.reader(&member()).unwrap();
    job.a.set();
    let _held = reader.acquire().unwrap();
    job.b.set();
    std::thread::sleep(PATIENCE * 2);
    panic!("the holder was not killed");
}

/// Child: a writer of a multi-writer stream: signals event a, writes frames `id << 32 | i` for
/// `i` in `0..frames` (`frames` given in the results word), then reserves a slot (a claimed,
/// unpublished number), signals event b and waits to be killed.
#[test]
#[ignore = "child role"]
fn role_dying_writer() {
    let Some(job) = job() else {
        return;
    };
    let frames: u64 = job.results.parse().unwrap();
    let mut writer = job.stream.writer().unwrap();
    job.a.set();
    for i in 0..frames {
        writer.write(&result(job.id << 32 | i, 0)).unwrap();
    }
    let _held = writer.reserve().unwrap();
    job.b.set();
    std::thread::sleep(PATIENCE * 2);
    panic!("the writer was not killed");
}

fn spawn(role: &str, stream: &Stream, results: &str, a: &Event, b: &Event, id: u64) -> RoleProcess {
    RoleProcess::spawn(
        role,
        CHILD_ENV,
        &format!("{} {results} {} {} {id}", stream.name(), a.name(), b.name()),
    )
}

/// Every result in `results` (the members have finished writing): how many times each frame was
/// processed, and by whom.
fn collect(results: &Stream, reader: &mut shmline::Reader) -> BTreeMap<u64, Vec<u64>> {
    let mut processed: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    loop {
        match reader.try_read() {
            Ok(f) => {
                let (id, seq) = parse(&f.data);
                processed.entry(seq).or_default().push(id);
            }
            // A member killed while it was a writer of `results` may be its last to leave.
            Err(Error::Empty | Error::EndOfStream | Error::WriterDead) => return processed,
            Err(e) => panic!("results of {}: {e}", results.name()),
        }
    }
}

/// Writes frames `from..to` (payload: the sequence number) in a thread, then closes the stream.
fn write_all(mut writer: shmline::Writer, from: u64, to: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for seq in from..to {
            writer
                .write_timeout(&result(seq, 0), PATIENCE)
                .unwrap_or_else(|e| panic!("writing frame {seq}: {e}"));
        }
    })
}

/// Asserts that every frame `0..frames` was processed, and returns how many were processed more
/// than once.
fn every_frame_processed(processed: &BTreeMap<u64, Vec<u64>>, frames: u64) -> usize {
    let missing: Vec<u64> = (0..frames).filter(|s| !processed.contains_key(s)).collect();
    assert!(missing.is_empty(), "frames never processed: {missing:?}");
    assert_eq!(processed.len() as u64, frames, "no frame beyond the last");
    processed.values().filter(|by| by.len() > 1).count()
}

#[test]
fn member_processes_share_every_frame_exactly_once() {
    const MEMBERS: u64 = 3;
    const FRAMES: u64 = 3_000;
    let stream = create("share", 16, 1);
    let results = create("share-results", 4096, MEMBERS as u32);
    let mut collected = results.reader(&ReaderOptions::default()).unwrap();
    let started = event("share-started");
    let unused = event("share-unused");
    let children: Vec<_> = (0..MEMBERS)
        .map(|id| {
            spawn(
                "role_member",
                &stream,
                results.name(),
                &started,
                &unused,
                id,
            )
        })
        .collect();
    for _ in 0..MEMBERS {
        started.wait_timeout(PATIENCE).unwrap();
    }
    write_all(stream.writer().unwrap(), 0, FRAMES)
        .join()
        .unwrap();
    for child in children {
        child.finish();
    }
    let processed = collect(&results, &mut collected);
    assert_eq!(
        every_frame_processed(&processed, FRAMES),
        0,
        "each frame once"
    );
    assert_eq!(stream.stats().frames_redelivered(), 0);
}

#[test]
fn a_member_killed_holding_a_frame_has_it_delivered_to_another_member() {
    const FRAMES: u64 = 200;
    // Capacity 8: the frame the dead member holds stops the writer after 8 frames, until a live
    // member (or the waiting writer) notices the death and the frame is handed over.
    let stream = create("holder", 8, 1);
    let results = create("holder-results", 1024, 2);
    let mut collected = results.reader(&ReaderOptions::default()).unwrap();
    let joined = event("holder-joined");
    let holding = event("holder-holding");
    // The holder is the group's only member when frame 0 comes: it holds frame 0.
    let holder = spawn("role_holder", &stream, results.name(), &joined, &holding, 9);
    joined.wait_timeout(PATIENCE).unwrap();
    let mut writer = stream.writer().unwrap();
    writer.write(&result(0, 0)).unwrap();
    holding.wait_timeout(PATIENCE).unwrap();
    // A member of our own that never reads keeps the group (and its statistics) alive to the end.
    let _keeper = stream.reader(&member()).unwrap();
    let started = event("holder-started");
    let members: Vec<_> = (0..2)
        .map(|id| {
            spawn(
                "role_member",
                &stream,
                results.name(),
                &started,
                &holding,
                id,
            )
        })
        .collect();
    for _ in 0..2 {
        started.wait_timeout(PATIENCE).unwrap();
    }
    let writing = write_all(writer, 1, FRAMES);
    holder.kill();
    writing.join().unwrap();
    for child in members {
        child.finish();
    }
    let processed = collect(&results, &mut collected);
    assert_eq!(
        every_frame_processed(&processed, FRAMES),
        0,
        "each frame once"
    );
    let stats = stream.stats();
    assert_eq!(stats.groups.len(), 1, "{stats:?}");
    assert_eq!(stats.groups[0].redelivered, 1, "{:?}", stats.groups);
    assert_eq!(stats.groups[0].orphans, 0);
    assert_eq!(stats.frames_redelivered(), 1);
    assert!(stats.readers_reclaimed >= 1);
}

#[test]
fn a_member_told_the_end_of_the_stream_still_gets_the_frame_of_a_member_killed_afterwards() {
    const FRAMES: u64 = 5;
    let stream = create("late", 8, 1);
    let joined = event("late-joined");
    let holding = event("late-holding");
    // The holder is the group's only member when frame 0 comes: it holds frame 0.
    let holder = spawn("role_holder", &stream, "unused", &joined, &holding, 9);
    joined.wait_timeout(PATIENCE).unwrap();
    let mut writer = stream.writer().unwrap();
    writer.write(&result(0, 0)).unwrap();
    holding.wait_timeout(PATIENCE).unwrap();
    let mut member = stream.reader(&member()).unwrap();
    for seq in 1..FRAMES {
        writer.write(&result(seq, 0)).unwrap();
    }
    drop(writer);
    let mut got: Vec<u64> = (1..FRAMES)
        .map(|_| parse(&member.read().unwrap().data).0)
        .collect();
    // The holder is alive and may still deliver frame 0: the end is all there is for us now.
    assert!(matches!(member.read(), Err(Error::EndOfStream)));
    // Killed after we were told the end: frame 0 is ours, as long as we are still reading.
    holder.kill();
    got.push(parse(&member.read().unwrap().data).0);
    assert!(matches!(member.read(), Err(Error::EndOfStream)));
    got.sort_unstable();
    assert_eq!(got, (0..FRAMES).collect::<Vec<_>>());
    let stats = stream.stats();
    assert_eq!(stats.frames_redelivered(), 1, "{:?}", stats.groups);
    assert_eq!(stats.groups[0].orphans, 0);
}

#[test]
fn members_killed_while_processing_leave_no_frame_unprocessed() {
    const MEMBERS: u64 = 4;
    const KILLED: u64 = 2;
    const FRAMES: u64 = 4_000;
    let stream = create("storm", 16, 1);
    // A member of our own that never reads keeps the group (and its statistics) alive to the end.
    let _keeper = stream.reader(&member()).unwrap();
    let results = create("storm-results", 8192, MEMBERS as u32);
    let mut collected = results.reader(&ReaderOptions::default()).unwrap();
    let started = event("storm-started");
    let unused = event("storm-unused");
    let mut children: Vec<_> = (0..MEMBERS)
        .map(|id| {
            Some(spawn(
                "role_member",
                &stream,
                results.name(),
                &started,
                &unused,
                id,
            ))
        })
        .collect();
    for _ in 0..MEMBERS {
        started.wait_timeout(PATIENCE).unwrap();
    }
    let writing = write_all(stream.writer().unwrap(), 0, FRAMES);
    // Kill members 0 and 1 once the stream is well under way (whatever they hold then).
    let mut killed = 0;
    while killed < KILLED {
        let frames = stream.stats().frames_written;
        if frames >= FRAMES / 4 * (killed + 1) || frames == FRAMES {
            children[killed as usize].take().unwrap().kill();
            killed += 1;
        }
        std::thread::yield_now();
    }
    writing.join().unwrap();
    for child in children.into_iter().flatten() {
        child.finish();
    }
    let processed = collect(&results, &mut collected);
    let again = every_frame_processed(&processed, FRAMES);
    // A killed member holds at most the one frame it was processing: if it reported it before
    // dying, that frame is processed twice (at-least-once).
    assert!(again as u64 <= KILLED, "{again} frames processed twice");
    let redelivered = stream.stats().frames_redelivered();
    assert!(redelivered <= KILLED, "redelivered {redelivered}");
}

#[test]
fn a_group_reading_a_multi_writer_stream_gets_every_frame_once_when_a_writer_is_killed() {
    const FRAMES: u64 = 500;
    let stream = create("mw", 8, 2);
    let members: Vec<_> = (0..2).map(|_| stream.reader(&member()).unwrap()).collect();
    let readers: Vec<_> = members
        .into_iter()
        .map(|mut r| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match r.read() {
                        Ok(f) => got.push(parse(&f.data).0),
                        // The member's total, not the sum of `FrameInfo::missed`: that reports a
                        // skipped number with the member's next frame, and the member that met
                        // it may get no frame after it when the other one takes the rest.
                        Err(Error::EndOfStream) => return (got, r.missed()),
                        Err(e) => panic!("member: {e}"),
                    }
                }
            })
        })
        .collect();
    let attached = event("mw-attached");
    let holding = event("mw-holding");
    // The dying writer publishes 10 frames, then dies holding a claimed number.
    let dying = spawn("role_dying_writer", &stream, "10", &attached, &holding, 7);
    attached.wait_timeout(PATIENCE).unwrap();
    let mut writer = stream.writer().unwrap();
    holding.wait_timeout(PATIENCE).unwrap();
    dying.kill();
    for i in 0..FRAMES {
        writer
            .write_timeout(&result(1 << 32 | i, 0), PATIENCE)
            .unwrap();
    }
    drop(writer);
    let mut all = Vec::new();
    let mut missed = 0;
    for r in readers {
        let (got, m) = r.join().unwrap();
        all.extend(got);
        missed += m;
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..10)
        .map(|i| 7 << 32 | i)
        .chain((0..FRAMES).map(|i| 1 << 32 | i))
        .collect();
    let mut expected = expected;
    expected.sort_unstable();
    assert_eq!(all, expected, "every published frame once");
    assert_eq!(
        missed, 1,
        "the dead writer's number, skipped, told to one member"
    );
    let stats = stream.stats();
    assert_eq!(stats.frames_skipped, 1);
    assert_eq!(stats.writer_state, WriterState::Closed);
}
