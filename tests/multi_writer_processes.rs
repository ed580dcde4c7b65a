//! Multi-writer streams between real processes: several writer processes feeding one stream, and
//! writers killed with SIGKILL while they hold a claimed but unpublished sequence number.
//!
//! The parent re-runs this test binary as child processes (`--exact <role> --ignored`) with their
//! job in `SHMLINE_MULTI_CHILD`: `stream event writer_id frames`. The parent creates every segment
//! with `unlink_on_close`, so nothing is left in `/dev/shm` even if a test fails.

mod support;

use shmline::__private::layout::{
    StreamHeader, WriterEntry, OWNER_GENERATION_SHIFT, OWNER_PID_SHIFT, OWNER_STATE_MASK,
    SEQ_EMPTY, WRITER_ENTRY_ACTIVE, WRITER_ENTRY_CLAIMING,
};
use shmline::{
    Error, Event, EventMode, EventOptions, ReaderOptions, Stream, StreamOptions, WriterState,
};
use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};
use support::{geometry, unique};
use support::{Rng, RoleProcess};

/// Environment variable carrying a child role's job.
const CHILD_ENV: &str = "SHMLINE_MULTI_CHILD";
/// How long any wait for another process may take on a loaded machine before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// Bytes per frame: writer id, then the frame's number in that writer's own order.
const FRAME: usize = 16;

fn frame(writer: u64, i: u64) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[..8].copy_from_slice(&writer.to_le_bytes());
    f[8..].copy_from_slice(&i.to_le_bytes());
    f
}

fn parse(data: &[u8]) -> (u64, u64) {
    assert_eq!(data.len(), FRAME);
    (
        u64::from_le_bytes(data[..8].try_into().unwrap()),
        u64::from_le_bytes(data[8..].try_into().unwrap()),
    )
}

fn create(tag: &str, capacity: u32, max_writers: u32) -> Stream {
    Stream::create(
        &unique(tag),
        &StreamOptions {
            capacity,
            max_frame_size: FRAME as u32,
            max_writers,
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

/// The job of a child role, from the environment; `None` when this process is not a child.
fn job() -> Option<(String, String, u64, u64)> {
    let job = std::env::var(CHILD_ENV).ok()?;
    let words: Vec<&str> = job.split(' ').collect();
    Some((
        words[0].to_owned(),
        words[1].to_owned(),
        words[2].parse().unwrap(),
        words[3].parse().unwrap(),
    ))
}

/// Child: attaches a writer, writes `frames` frames, then reserves a slot (claiming the next
/// sequence number without publishing it), signals the event, and waits to be killed.
#[test]
#[ignore = "child role"]
fn role_holder() {
    let Some((stream, event, id, frames)) = job() else {
        return;
    };
    let stream = Stream::open(&stream).unwrap();
    let mut writer = stream.writer().unwrap();
    for i in 0..frames {
        writer.write(&frame(id, i)).unwrap();
    }
    let _held = writer.reserve().unwrap();
    Event::open(&event).unwrap().set();
    std::thread::sleep(PATIENCE * 2);
    panic!("the holder was not killed");
}

/// Child: attaches a writer, signals the event, writes `frames` frames and closes.
#[test]
#[ignore = "child role"]
fn role_writer() {
    let Some((stream, event, id, frames)) = job() else {
        return;
    };
    let stream = Stream::open(&stream).unwrap();
    let mut writer = stream.writer().unwrap();
    Event::open(&event).unwrap().set();
    for i in 0..frames {
        writer.write(&frame(id, i)).unwrap();
    }
}

/// Child: signals the event, then attaches a writer, tries to write one frame and closes, over
/// and over until it is killed (or, if nobody kills it, for twice [`PATIENCE`]).
#[test]
#[ignore = "child role"]
fn role_churner() {
    let Some((stream, event, id, _)) = job() else {
        return;
    };
    let stream = Stream::open(&stream).unwrap();
    Event::open(&event).unwrap().set();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < PATIENCE * 2 {
        match stream.writer() {
            Ok(mut writer) => {
                // Full is fine: a killed churner's number may hold `head` until a repair.
                match writer.try_write(&frame(id, i)) {
                    Ok(()) | Err(Error::Full) => i += 1,
                    Err(e) => panic!("churner write: {e}"),
                }
            }
            // Every entry taken by live churners (or by dead ones not repaired yet).
            Err(Error::TooManyWriters(_)) => {}
            Err(e) => panic!("churner attach: {e}"),
        }
    }
}

fn spawn(role: &str, stream: &Stream, event: &Event, id: u64, frames: u64) -> RoleProcess {
    RoleProcess::spawn(
        role,
        CHILD_ENV,
        &format!("{} {} {id} {frames}", stream.name(), event.name()),
    )
}

#[test]
fn writer_processes_feeding_one_stream_deliver_every_frame_once_in_each_writers_order() {
    const WRITERS: u64 = 3;
    const FRAMES: u64 = 30_000;
    let stream = create("fanin", 64, WRITERS as u32);
    let started = event("fanin-started");
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let children: Vec<_> = (0..WRITERS)
        .map(|id| spawn("role_writer", &stream, &started, id, FRAMES))
        .collect();
    // Every writer attaches before any can finish (they fill the ring and wait for us), so the
    // stream cannot end before the last one attached.
    for _ in 0..WRITERS {
        started.wait_timeout(PATIENCE).unwrap();
    }
    let mut next = [0u64; WRITERS as usize];
    let mut seq = 0;
    loop {
        match reader.read_timeout(PATIENCE) {
            Ok(f) => {
                assert_eq!((f.info.seq, f.info.missed), (seq, 0));
                let (id, i) = parse(&f.data);
                assert_eq!(i, next[id as usize], "writer {id}'s frames in its order");
                next[id as usize] += 1;
                seq += 1;
            }
            Err(Error::EndOfStream) => break,
            Err(e) => panic!("reader: {e}"),
        }
    }
    for child in children {
        child.finish();
    }
    assert_eq!(next, [FRAMES; WRITERS as usize]);
    let stats = stream.stats();
    assert_eq!(stats.writer_state, WriterState::Closed);
    assert_eq!(stats.frames_written, WRITERS * FRAMES);
    assert_eq!(stats.bytes_written, WRITERS * FRAMES * FRAME as u64);
}

#[test]
fn a_writer_killed_holding_a_claimed_number_is_skipped_and_the_stream_goes_on() {
    let stream = create("killed", 16, 3);
    let ready = event("killed-ready");
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let holder = spawn("role_holder", &stream, &ready, 7, 2);
    ready.wait_timeout(PATIENCE).unwrap();
    // The holder published 0 and 1 and holds 2. Ours are 3..6, stamped but stuck behind 2.
    let mut writer = stream.writer().unwrap();
    for i in 0..4 {
        writer.write(&frame(1, i)).unwrap();
    }
    for i in 0..2 {
        let f = reader.read_timeout(PATIENCE).unwrap();
        assert_eq!(parse(&f.data), (7, i));
    }
    assert!(matches!(reader.try_read(), Err(Error::Empty)));
    holder.kill();
    // The reader, finding nothing, notices the dead writer, skips its number and goes on.
    let f = reader.read_timeout(PATIENCE).unwrap();
    assert_eq!(
        (f.info.seq, f.info.missed),
        (3, 1),
        "told about the skipped number"
    );
    assert_eq!(parse(&f.data), (1, 0));
    for i in 1..4 {
        let f = reader.read_timeout(PATIENCE).unwrap();
        assert_eq!((parse(&f.data), f.info.missed), ((1, i), 0));
    }
    let stats = stream.stats();
    assert_eq!((stats.frames_skipped, stats.writers_reclaimed), (1, 1));
    assert_eq!(stats.writers.len(), 1, "{stats:?}");
    // The dead writer no longer counts: the stream ends when the live one closes.
    drop(writer);
    assert!(matches!(
        reader.read_timeout(PATIENCE),
        Err(Error::EndOfStream)
    ));
}

#[test]
fn when_the_last_writer_dies_readers_are_told_the_writers_died() {
    let stream = create("alldead", 16, 2);
    let ready = event("alldead-ready");
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let holder = spawn("role_holder", &stream, &ready, 3, 1);
    ready.wait_timeout(PATIENCE).unwrap();
    assert_eq!(parse(&reader.read_timeout(PATIENCE).unwrap().data), (3, 0));
    holder.kill();
    assert!(matches!(
        reader.read_timeout(PATIENCE),
        Err(Error::WriterDead)
    ));
    assert_eq!(stream.stats().writer_state, WriterState::Dead);
}

#[test]
fn after_every_writer_died_the_stream_stays_ended_and_a_new_writer_is_refused() {
    let stream = create("deadfinal", 16, 2);
    let ready = event("deadfinal-ready");
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let holder = spawn("role_holder", &stream, &ready, 3, 1);
    ready.wait_timeout(PATIENCE).unwrap();
    assert_eq!(parse(&reader.read_timeout(PATIENCE).unwrap().data), (3, 0));
    holder.kill();
    assert!(matches!(
        reader.read_timeout(PATIENCE),
        Err(Error::WriterDead)
    ));
    match stream.writer() {
        Err(Error::WrongState(why)) => assert!(why.contains("died"), "{why}"),
        other => panic!("a writer attached to a stream whose writers died: {other:?}"),
    }
    assert!(matches!(reader.try_read(), Err(Error::WriterDead)));
    assert_eq!(stream.stats().writer_state, WriterState::Dead);
}

#[test]
fn a_killed_writer_and_a_clean_close_by_the_other_end_the_stream_with_end_of_stream() {
    let stream = create("killclose", 16, 3);
    let ready = event("killclose-ready");
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let holder = spawn("role_holder", &stream, &ready, 7, 1);
    ready.wait_timeout(PATIENCE).unwrap();
    holder.kill();
    // Nobody has noticed the death yet: the live writer's close must.
    let mut writer = stream.writer().unwrap();
    writer.write(&frame(1, 0)).unwrap();
    drop(writer);
    assert_eq!(parse(&reader.read_timeout(PATIENCE).unwrap().data), (7, 0));
    let f = reader.read_timeout(PATIENCE).unwrap();
    assert_eq!((parse(&f.data), f.info.missed), ((1, 0), 1));
    assert!(matches!(
        reader.read_timeout(PATIENCE),
        Err(Error::EndOfStream)
    ));
    assert_eq!(stream.stats().writer_state, WriterState::Closed);
    match stream.writer() {
        Err(Error::WrongState(why)) => assert!(why.contains("closed"), "{why}"),
        other => panic!("a writer attached to an ended stream: {other:?}"),
    }
}

#[test]
fn a_dead_writer_whose_number_blocks_a_full_ring_is_repaired_and_writing_goes_on() {
    // Capacity 4: the dead holder's number stops `head`, so the ring fills behind it and the
    // live writer waits for space that only a repair can give.
    let stream = create("blocked", 4, 2);
    let ready = event("blocked-ready");
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let holder = spawn("role_holder", &stream, &ready, 5, 0);
    ready.wait_timeout(PATIENCE).unwrap();
    holder.kill();
    let mut writer = stream.writer().unwrap();
    let writing = std::thread::spawn(move || {
        for i in 0..20 {
            writer.write(&frame(1, i)).unwrap();
        }
    });
    let mut got = Vec::new();
    let mut missed = 0;
    while got.len() < 20 {
        let f = reader.read_timeout(PATIENCE).unwrap();
        missed += f.info.missed;
        got.push(parse(&f.data).1);
    }
    writing.join().unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(missed, 1);
}

// ---- the writer table: an entry per live writer, whenever writers die ----

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// The stream's segment file, for reading and writing fields as a killed process left them.
fn segment(stream: &Stream) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/shmline.stream.{}", stream.name()))
        .unwrap()
}

/// Offset of writer entry `index`'s owner word in the segment.
fn writer_owner_offset(stream: &Stream, index: u32) -> u64 {
    writer_entry_offset(stream, index) + offset_of!(WriterEntry, owner) as u64
}

/// Offset of writer entry `index` in the segment.
fn writer_entry_offset(stream: &Stream, index: u32) -> u64 {
    let geo = geometry(stream);
    geo.writer_offset(index) as u64
}

fn peek_u64(stream: &Stream, offset: u64) -> u64 {
    let mut bytes = [0; 8];
    segment(stream).read_exact_at(&mut bytes, offset).unwrap();
    u64::from_le_bytes(bytes)
}

fn poke_u64(stream: &Stream, offset: u64, value: u64) {
    segment(stream)
        .write_all_at(&value.to_le_bytes(), offset)
        .unwrap();
}

/// Adds one to `writer_count`, as a writer that counted itself in did.
fn count_one_more_writer(stream: &Stream) {
    let count = offset_of!(StreamHeader, writer_count) as u64;
    let mut bytes = [0; 4];
    segment(stream).read_exact_at(&mut bytes, count).unwrap();
    let counted = u32::from_le_bytes(bytes) + 1;
    segment(stream)
        .write_all_at(&counted.to_le_bytes(), count)
        .unwrap();
}

/// The owner word an attaching writer (process `pid`) leaves if it is killed right after its
/// claim of a never-used entry: CLAIMING, generation 0, its pid; nothing else recorded.
fn claimed_word(pid: u32) -> u64 {
    u64::from(pid) << OWNER_PID_SHIFT | u64::from(WRITER_ENTRY_CLAIMING)
}

#[test]
fn a_writer_killed_while_claiming_its_entry_does_not_cost_the_table_an_entry() {
    let stream = create("wclaim", 16, 2);
    let _first = stream.writer().unwrap();
    let owner = writer_owner_offset(&stream, 1);
    poke_u64(&stream, owner, claimed_word(dead_pid()));
    let second = stream.writer();
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(stream.stats().writers_reclaimed, 1);
    // The dead claimant's entry was freed (its generation bumped) and is ours now.
    let word = peek_u64(&stream, owner);
    assert_eq!(word & OWNER_STATE_MASK, u64::from(WRITER_ENTRY_ACTIVE));
    assert_eq!(word >> OWNER_PID_SHIFT, u64::from(std::process::id()));
    assert_eq!((word & 0xFFFF_FFFF) >> OWNER_GENERATION_SHIFT, 1);
}

#[test]
fn a_writer_entry_whose_claimant_is_alive_is_left_to_it() {
    let stream = create("wclaim-live", 16, 2);
    let _first = stream.writer().unwrap();
    let owner = writer_owner_offset(&stream, 1);
    poke_u64(&stream, owner, claimed_word(std::process::id()));
    match stream.writer() {
        Err(Error::TooManyWriters(_)) => {}
        other => panic!("a live claimant's entry was taken: {other:?}"),
    }
    assert_eq!(stream.stats().writers_reclaimed, 0);
}

#[test]
fn a_writer_killed_between_counting_itself_and_activating_costs_no_entry_nor_the_clean_end() {
    let stream = create("wcount", 16, 2);
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let mut first = stream.writer().unwrap();
    // Killed after its claim and its count in `writer_count`, before its entry became active.
    poke_u64(
        &stream,
        writer_owner_offset(&stream, 1),
        claimed_word(dead_pid()),
    );
    count_one_more_writer(&stream);
    let mut second = stream.writer().unwrap();
    first.write(&frame(1, 0)).unwrap();
    second.write(&frame(2, 0)).unwrap();
    drop(first);
    drop(second);
    assert_eq!(parse(&reader.read_timeout(PATIENCE).unwrap().data), (1, 0));
    assert_eq!(parse(&reader.read_timeout(PATIENCE).unwrap().data), (2, 0));
    assert!(matches!(
        reader.read_timeout(PATIENCE),
        Err(Error::EndOfStream)
    ));
    assert_eq!(stream.stats().writer_state, WriterState::Closed);
}

#[test]
fn a_dead_writers_number_that_a_live_writers_lost_intent_shadows_is_skipped_once_the_intent_clears()
{
    let stream = create("shadow", 16, 2);
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let mut live = stream.writer().unwrap();
    // A writer (entry 1), now dead, claimed number 0 and published nothing; the live writer
    // (entry 0) tried for 0 too, lost, and has not cleared its intent yet.
    let dead = writer_entry_offset(&stream, 1);
    let active = u64::from(dead_pid()) << OWNER_PID_SHIFT | u64::from(WRITER_ENTRY_ACTIVE);
    poke_u64(
        &stream,
        dead + offset_of!(WriterEntry, owner) as u64,
        active,
    );
    poke_u64(&stream, dead + offset_of!(WriterEntry, claim) as u64, 0);
    poke_u64(
        &stream,
        dead + offset_of!(WriterEntry, scan) as u64,
        SEQ_EMPTY,
    );
    let live_intent = writer_entry_offset(&stream, 0) + offset_of!(WriterEntry, claim) as u64;
    poke_u64(&stream, live_intent, 0);
    poke_u64(&stream, offset_of!(StreamHeader, claim_seq) as u64, 1);
    count_one_more_writer(&stream);
    // The reader's repairs cannot tell which of the two holds 0: they leave both alone (freeing
    // the dead one would lose number 0, and `head` with it, for good).
    let outcome = reader.read_timeout(Duration::from_millis(300));
    assert!(matches!(outcome, Err(Error::Timeout)), "{outcome:?}");
    let stats = stream.stats();
    assert_eq!((stats.frames_skipped, stats.writers_reclaimed), (0, 0));
    // The live writer's next claim replaces its intent: the next repair skips the dead one's.
    live.write(&frame(1, 0)).unwrap();
    let f = reader.read_timeout(PATIENCE).unwrap();
    assert_eq!((parse(&f.data), f.info.missed), ((1, 0), 1));
    let stats = stream.stats();
    assert_eq!((stats.frames_skipped, stats.writers_reclaimed), (1, 1));
    drop(live);
    assert!(matches!(
        reader.read_timeout(PATIENCE),
        Err(Error::EndOfStream)
    ));
}

#[test]
fn writers_killed_while_attaching_writing_and_closing_never_cost_the_table_an_entry() {
    const MAX_WRITERS: u32 = 3;
    let rounds = support::env_u64("SHMLINE_CHURN_ROUNDS", 15);
    let seed = support::base_seed();
    let mut rng = Rng::new(seed);
    let stream = create("churn", 16, MAX_WRITERS);
    // Ours keeps the stream from ending while the others come and go.
    let mut ours = stream.writer().unwrap();
    let started = event("churn-started");
    for round in 0..rounds {
        let churners: Vec<_> = (0..u64::from(MAX_WRITERS) - 1)
            .map(|id| spawn("role_churner", &stream, &started, 10 + id, 0))
            .collect();
        for _ in &churners {
            started.wait_timeout(PATIENCE).unwrap();
        }
        // Not a synchronisation: a random point in the churners' loops to kill them at.
        std::thread::sleep(rng.duration(Duration::from_millis(20)));
        for churner in churners {
            churner.kill();
        }
        // Every other entry's owner is dead: the table has room for that many writers again.
        let writers: Vec<_> = (1..MAX_WRITERS)
            .map(|_| stream.writer())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("round {round} (SHMLINE_SEED={seed}): {e}"));
        drop(writers);
    }
    let stats = stream.stats();
    eprintln!(
        "{rounds} rounds: {} writers reclaimed, {} numbers skipped",
        stats.writers_reclaimed, stats.frames_skipped
    );
    // And the stream still ends cleanly: what the dead left unpublished is skipped.
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    ours.write(&frame(1, 0)).unwrap();
    drop(ours);
    let f = reader.read_timeout(PATIENCE).unwrap();
    assert_eq!(parse(&f.data), (1, 0));
    assert!(matches!(
        reader.read_timeout(PATIENCE),
        Err(Error::EndOfStream)
    ));
}
