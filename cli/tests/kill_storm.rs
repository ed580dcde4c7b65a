//! Kill storms: real processes killed with SIGKILL at random points, many times over, while every
//! survivor checks every frame it receives.
//!
//! Seven storms run at once, each a loop of "set up, run, kill one process at a random moment,
//! check":
//! - **writer**: a writer process (copy, batch and zero-copy writes mixed, sometimes killed while
//!   it holds a reserved slot half filled) is killed mid-stream; its lossless readers (copy, batch
//!   and zero-copy) must drain exactly the frames it published, then get WRITER_DEAD; a lossy
//!   reader must account for every one as delivered or missed.
//! - **reader**: reader processes (some holding a zero-copy view for a while) are killed while a
//!   writer streams a known number of frames; the writer must reclaim their entries and finish,
//!   and the surviving readers must get every frame, then END_OF_STREAM.
//! - **task**: a task of a running three-stage pipeline (source -> relay -> sink) is killed; the
//!   runner must report that task and its signal, the other tasks must drain what reached them,
//!   and every segment must be gone at the end.
//! - **runner**: `shmline run` itself is killed; its tasks must die with it, `shmline clean` (or the
//!   next run of the same pipeline) must recover the segments left behind, and the re-run must
//!   deliver every frame.
//! - **multi**: writer processes of a multi-writer stream (copy, batch and zero-copy writes, some
//!   killed holding a reserved slot) are killed at random, then the others close; every reader
//!   must get each writer's frames once and in order, a skipped number only where a killed writer
//!   held a claim, then END_OF_STREAM (WRITER_DEAD if every writer was killed).
//! - **group**: members of a reader group (each reports a frame before releasing it) are killed
//!   at random; at-least-once: no frame unreported, and each frame reported twice is explained
//!   by a kill.
//! - **churn**: processes opening and closing readers in a tight loop are killed, some while
//!   claiming or freeing their reader entry; a new reader must then open whenever the table has
//!   room for it (0 refused readers with free capacity).
//!
//! Every frame carries its sequence number, a pattern made from it and a CRC32C of both
//! (`support::fill_frame`), so a reader tells a torn, duplicated or missing frame from a good one
//! on its own. Figures are printed at the end: kills, frames verified, lost/duplicated/torn (which
//! must all be 0).
//!
//! Knobs: `SHMLINE_KILLS` (default 200; the storms kill 35, 30, 20, 15, 15, 15 and 40 % of it, in
//! the order above), `SHMLINE_STORMS` (a comma list of storm names: run only those, e.g.
//! `SHMLINE_STORMS=multi,group`) and `SHMLINE_SEED` (replays a run; the seed is always printed).
//! A long run:
//! `SHMLINE_KILLS=5000 cargo test --release --test kill_storm -- --ignored --nocapture`.

#[path = "../../tests/support/mod.rs"]
mod support;

use shmline::pipeline::{
    segment_name, Outcome, Pipeline, PipelineState, Registry, StreamSpec, Task, TaskExit, TaskSpec,
};
use shmline::{
    Error, Event, EventMode, EventOptions, FrameInfo, ReaderOptions, Stream, StreamOptions,
    WriterOptions, WriterState,
};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is not set"))
}

// ---------------------------------------------------------------------------------------------
// Child roles: this test binary re-run as one of these ignored tests.

#[test]
#[ignore = "child role: writes frames to KS_STREAM until killed (or KS_FRAMES are written)"]
fn storm_writer() {
    let Ok(name) = std::env::var("KS_STREAM") else {
        return;
    };
    let mut rng = Rng::new(env_u64("KS_SEED", 0));
    let stream = Stream::open(&name).unwrap();
    let held = Event::open(&env("KS_HELD")).unwrap();
    let mut writer = stream
        .writer_with(&WriterOptions {
            wait: wait_strategy(&mut rng),
            timeout: Some(PATIENCE),
        })
        .unwrap();
    let limit = env_u64("KS_FRAMES", u64::MAX);
    let written = write_frames(
        &mut writer,
        limit,
        &mut rng,
        (Some(&held), Duration::from_micros(200)),
        || false,
    )
    .unwrap();
    println!("RESULT written={written}");
}

#[test]
#[ignore = "child role: reads KS_STREAM as a KS_KIND reader to its end, checking every frame"]
fn storm_reader() {
    let Ok(name) = std::env::var("KS_STREAM") else {
        return;
    };
    let mut rng = Rng::new(env_u64("KS_SEED", 0));
    let kind = Kind::parse(&env("KS_KIND"));
    let stream = Stream::open(&name).unwrap();
    let mut reader = stream
        .reader(&ReaderOptions {
            lossy: kind == Kind::Lossy,
            wait: wait_strategy(&mut rng),
            timeout: Some(PATIENCE),
            ..Default::default()
        })
        .unwrap();
    let view = std::env::var("KS_VIEW")
        .ok()
        .map(|v| Event::open(&v).unwrap());
    let hold = Duration::from_micros(env_u64("KS_HOLD_US", 0));
    Event::open(&format!("{name}.ready")).unwrap().set();
    let max = stream.info().max_frame_size as usize;
    let reading = read_frames(&mut reader, kind, max, view.as_ref(), hold, |_| Ok(()));
    report(&reading, "");
}

/// Makes the task finish its work when the runner asks the pipeline to stop: the source stops on
/// the stop event, the others drain their input, so every frame can be accounted for.
fn ignore_sigterm() {
    // SAFETY: installing SIG_IGN for SIGTERM has no memory-safety preconditions.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
}

/// Joins as the task the runner started; `None` outside a pipeline or if joining failed (the
/// pipeline failed before it ran: reported as `joined=0`).
fn join_task() -> Option<Task> {
    std::env::var(shmline::pipeline::ENV_TASK).ok()?;
    ignore_sigterm();
    match Task::join() {
        Ok(task) => Some(task),
        Err(e) => {
            println!("RESULT joined=0 error={}", quoted(&e.to_string()));
            None
        }
    }
}

/// Frames published on stream `stream` of the task's pipeline (final once its writer is gone).
fn published(task: &Task, stream: &str) -> u64 {
    Stream::open(&segment_name(task.pipeline(), stream))
        .map(|s| s.stats().frames_written)
        .unwrap_or(u64::MAX)
}

#[test]
#[ignore = "pipeline task: writes frames to `out` until the pipeline stops (or KS_FRAMES)"]
fn storm_task_source() {
    let Some(mut task) = join_task() else { return };
    let mut rng = Rng::new(env_u64("KS_SEED", 0));
    let mut out = task.writer("out").unwrap();
    let limit = env_u64("KS_FRAMES", u64::MAX);
    let result = write_frames(&mut out, limit, &mut rng, (None, Duration::ZERO), || {
        task.stop_requested()
    });
    drop(out);
    match result {
        Ok(written) => println!("RESULT joined=1 written={written}"),
        Err(e) => panic!("source: {e}"),
    }
}

#[test]
#[ignore = "pipeline task: copies `input` to `out` until `input` ends, checking every frame"]
fn storm_task_relay() {
    let Some(mut task) = join_task() else { return };
    let kind = Kind::parse(&env("KS_KIND"));
    let mut input = task.reader("input").unwrap();
    let mut out = task.writer("out").unwrap();
    let max = input.max_frame_size();
    let reading = read_frames(&mut input, kind, max, None, Duration::ZERO, |data| {
        out.write(data)
    });
    drop(out);
    let head = published(&task, "a");
    report(&reading, &format!("joined=1 head={head}"));
}

#[test]
#[ignore = "pipeline task: reads `input` until it ends, checking every frame"]
fn storm_task_sink() {
    let Some(mut task) = join_task() else { return };
    let kind = Kind::parse(&env("KS_KIND"));
    let mut input = task.reader("input").unwrap();
    let max = input.max_frame_size();
    let reading = read_frames(&mut input, kind, max, None, Duration::ZERO, |_| Ok(()));
    let head = published(&task, "b");
    report(&reading, &format!("joined=1 head={head}"));
}

// Roles of the multi-writer, reader-group and reader-churn storms.

/// The key of frame `i` of multi-writer `id` (its sequence number in `support::fill_frame`): the
/// writer in the high 32 bits, the frame's number in that writer's own order below.
fn multi_key(id: u64, i: u64) -> u64 {
    debug_assert!(i < 1 << 32);
    id << 32 | i
}

#[test]
#[ignore = "child role: writer KS_ID of multi-writer stream KS_STREAM: writes KS_FRAMES frames, \
            then closes once KS_CLOSE is set (unless killed first)"]
fn storm_multi_writer() {
    let Ok(name) = std::env::var("KS_STREAM") else {
        return;
    };
    let mut rng = Rng::new(env_u64("KS_SEED", 0));
    let id = env_u64("KS_ID", 0);
    let frames = env_u64("KS_FRAMES", 0);
    let stream = Stream::open(&name).unwrap();
    let held = Event::open(&env("KS_HELD")).unwrap();
    let mut writer = stream
        .writer_with(&WriterOptions {
            wait: wait_strategy(&mut rng),
            timeout: Some(PATIENCE),
        })
        .unwrap();
    Event::open(&format!("{name}.attached")).unwrap().set();
    let max = writer.max_frame_size();
    let mut buf = vec![0u8; max];
    let mut i = 0;
    while i < frames {
        match rng.below(10) {
            0..=3 => {
                let len = fill_frame(multi_key(id, i), max, &mut buf);
                writer.write(&buf[..len]).unwrap();
                i += 1;
            }
            4..=5 => {
                let count = (1 + rng.below(8)).min(frames - i);
                let batch: Vec<Vec<u8>> = (i..i + count)
                    .map(|k| frame(multi_key(id, k), max))
                    .collect();
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                let mut done = 0;
                while done < refs.len() {
                    done += writer.write_batch(&refs[done..]).unwrap();
                }
                i += count;
            }
            _ => {
                let mut slot = writer.reserve().unwrap();
                held.set();
                let len = fill_frame(multi_key(id, i), max, &mut slot);
                spin_for(rng.duration(Duration::from_micros(200)));
                held.clear();
                slot.commit(len).unwrap();
                i += 1;
            }
        }
    }
    // Stay attached until every victim has been killed, so the stream's end is decided by the
    // last writers to leave, which close cleanly.
    Event::open(&env("KS_CLOSE"))
        .unwrap()
        .wait_timeout(PATIENCE)
        .unwrap();
    drop(writer);
    println!("RESULT written={frames}");
}

#[test]
#[ignore = "child role: reads multi-writer stream KS_STREAM as a KS_KIND reader to its end, \
            checking that every writer's frames arrive once and in that writer's order"]
fn storm_multi_reader() {
    let Ok(name) = std::env::var("KS_STREAM") else {
        return;
    };
    let mut rng = Rng::new(env_u64("KS_SEED", 0));
    let kind = Kind::parse(&env("KS_KIND"));
    let stream = Stream::open(&name).unwrap();
    let mut reader = stream
        .reader(&ReaderOptions {
            wait: wait_strategy(&mut rng),
            timeout: Some(PATIENCE),
            ..Default::default()
        })
        .unwrap();
    Event::open(&format!("{name}.ready")).unwrap().set();
    let max = stream.info().max_frame_size as usize;
    let mut tally = MultiTally::default();
    let mut buf = vec![0u8; max * 16];
    let mut infos = vec![FrameInfo::default(); 16];
    let outcome = loop {
        let step = match kind {
            Kind::Batch => reader.read_batch(&mut buf, &mut infos).map(|count| {
                let mut offset = 0;
                for info in &infos[..count] {
                    tally.record(info.missed, max, &buf[offset..offset + info.len as usize]);
                    offset += info.len as usize;
                }
            }),
            Kind::ZeroCopy => reader
                .acquire()
                .map(|frame| tally.record(frame.info().missed, max, &frame)),
            _ => reader
                .read_into(&mut buf)
                .map(|info| tally.record(info.missed, max, &buf[..info.len as usize])),
        };
        if let Err(e) = step {
            break e;
        }
    };
    let per_writer: Vec<String> = tally
        .next
        .iter()
        .map(|(id, n)| format!("{id}:{n}"))
        .collect();
    println!(
        "RESULT outcome={} frames={} missed={} duplicated={} lost={} torn={} per_writer={} \
         problem={}",
        outcome_name(&outcome),
        tally.frames,
        tally.missed,
        tally.duplicated,
        tally.lost,
        tally.torn,
        if per_writer.is_empty() {
            "-".to_string()
        } else {
            per_writer.join(",")
        },
        quoted(tally.problem.as_deref().unwrap_or("none"))
    );
}

/// What a reader of a multi-writer stream saw: per writer, the next frame expected.
#[derive(Default)]
struct MultiTally {
    next: std::collections::BTreeMap<u64, u64>,
    frames: u64,
    missed: u64,
    duplicated: u64,
    lost: u64,
    torn: u64,
    problem: Option<String>,
}

impl MultiTally {
    /// Records one frame, told that `missed` numbers were skipped before it.
    fn record(&mut self, missed: u64, max: usize, data: &[u8]) {
        self.frames += 1;
        self.missed += missed;
        let key = data
            .get(..8)
            .map_or(u64::MAX, |k| u64::from_le_bytes(k.try_into().unwrap()));
        if let Verdict::Torn(why) = check_frame(key, max, data) {
            self.torn += 1;
            self.problem.get_or_insert(why);
            return;
        }
        let (id, i) = (key >> 32, key & 0xFFFF_FFFF);
        let next = self.next.entry(id).or_default();
        if i < *next {
            self.duplicated += 1;
            self.problem
                .get_or_insert(format!("writer {id}'s frame {i} again, expected {next}"));
        } else if i > *next {
            self.lost += i - *next;
            self.problem.get_or_insert(format!(
                "writer {id}'s frame {i} after {}: frames lost",
                *next
            ));
        }
        *next = (*next).max(i + 1);
    }
}

/// Bytes of a reader-group result: member id, sequence number, and 1 if the frame was torn.
const RESULT_BYTES: usize = 24;

#[test]
#[ignore = "child role: member KS_ID of reader group `g` of KS_STREAM: lends each frame (KS_VIEW \
            set meanwhile), checks it, reports it on KS_RESULTS, then releases it, until the \
            stream ends and KS_DONE is set"]
fn storm_member() {
    let Ok(name) = std::env::var("KS_STREAM") else {
        return;
    };
    let mut rng = Rng::new(env_u64("KS_SEED", 0));
    let id = env_u64("KS_ID", 0);
    let stream = Stream::open(&name).unwrap();
    let mut reader = stream
        .reader(&ReaderOptions {
            group: Some("g".into()),
            wait: wait_strategy(&mut rng),
            timeout: Some(PATIENCE),
            ..Default::default()
        })
        .unwrap();
    let mut results = Stream::open(&env("KS_RESULTS"))
        .unwrap()
        .writer_with(&WriterOptions {
            wait: wait_strategy(&mut rng),
            timeout: Some(PATIENCE),
        })
        .unwrap();
    let view = Event::open(&env("KS_VIEW")).unwrap();
    let done = Event::open(&env("KS_DONE")).unwrap();
    Event::open(&format!("{name}.ready")).unwrap().set();
    let max = stream.info().max_frame_size as usize;
    let work = Duration::from_micros(rng.below(200));
    let mut processed = 0u64;
    loop {
        match reader.acquire() {
            Ok(frame) => {
                view.set();
                let seq = frame.info().seq;
                let torn = check_frame(seq, max, &frame) != Verdict::Good;
                // Work on it (members, not the writer, are the bottleneck, so a member killed
                // mid-stream is likely to hold a frame), report it, and only then release it.
                spin_for(rng.duration(work));
                let mut result = [0u8; RESULT_BYTES];
                result[..8].copy_from_slice(&id.to_le_bytes());
                result[8..16].copy_from_slice(&seq.to_le_bytes());
                result[16] = torn as u8;
                results.write(&result).unwrap();
                processed += 1;
                drop(frame);
                view.clear();
            }
            // Frames of a member killed from now on go only to a member still reading (the
            // group's promise): stay until the parent has killed its victims, then look once
            // more (a member adopts the frames of dead members before it reports the end).
            Err(Error::EndOfStream) if done.is_set() => break,
            Err(Error::EndOfStream) => done
                .wait_timeout(PATIENCE)
                .unwrap_or_else(|e| panic!("member {id}: the kills never ended: {e}")),
            Err(e) => panic!("member {id}: {e}"),
        }
    }
    println!("RESULT processed={processed}");
}

#[test]
#[ignore = "child role: opens and closes readers of KS_STREAM in a tight loop until killed"]
fn storm_churner() {
    let Ok(name) = std::env::var("KS_STREAM") else {
        return;
    };
    let mut rng = Rng::new(env_u64("KS_SEED", 0));
    let stream = Stream::open(&name).unwrap();
    let going = Event::open(&format!("{name}.going")).unwrap();
    let mut first = true;
    loop {
        let choice = rng.below(10);
        let options = ReaderOptions {
            lossy: choice < 3,
            group: (3..5).contains(&choice).then(|| "g".to_string()),
            ..Default::default()
        };
        // A refusal is the parent's to judge (it knows how many readers are alive).
        drop(stream.reader(&options));
        if first {
            going.set();
            first = false;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The storms.

/// What a storm did and found.
#[derive(Debug, Default)]
struct Summary {
    /// Rounds run (set up, run, kill, check).
    rounds: u64,
    kills: u64,
    /// Kills of a writer holding a reserved slot, or a reader holding a zero-copy view.
    holding: u64,
    frames: u64,
    lost: u64,
    duplicated: u64,
    torn: u64,
    /// Reader entries the writers reclaimed from killed readers.
    reclaimed: u64,
    /// Segments a killed runner left behind (all recovered).
    stale_segments: u64,
    /// Multi-writer sequence numbers skipped because the writer holding them was killed.
    skipped: u64,
    /// Reader-group frames reported twice, each explained by a member killed holding it.
    redelivered: u64,
    /// Reader-group frames adopted from killed members and delivered again (the groups'
    /// `redelivered` statistic).
    adopted: u64,
    /// New readers refused although fewer than `max_readers` live readers were attached.
    refused: u64,
    /// Processes (or reads) that hung until the test's patience ran out.
    hangs: u64,
    /// Multi-writer readers told the wrong end (WRITER_DEAD after a clean close, or the reverse).
    wrong_ends: u64,
    problems: Vec<String>,
}

impl Summary {
    /// Adds a reader's tally; returns an error if it found anything wrong.
    fn add(&mut self, what: &str, r: &HashMap<String, String>) -> Result<(), String> {
        self.frames += field(r, "frames");
        self.lost += field(r, "lost");
        self.duplicated += field(r, "duplicated");
        self.torn += field(r, "torn");
        if field(r, "lost") + field(r, "duplicated") + field(r, "torn") > 0 {
            return Err(format!("{what} found faults: {r:?}"));
        }
        Ok(())
    }

    /// Checks that a lossless reader got exactly frames `0..published` and then `outcome`.
    fn lossless(
        &mut self,
        what: &str,
        r: &HashMap<String, String>,
        published: u64,
        outcome: &str,
    ) -> Result<(), String> {
        self.add(what, r)?;
        let next = field(r, "next");
        if next < published {
            self.lost += published - next;
        }
        if r["outcome"] != outcome || next != published || field(r, "frames") != published {
            return Err(format!(
                "{what}: expected {published} frames then {outcome}, got {r:?}"
            ));
        }
        Ok(())
    }
}

fn event(name: &str, mode: EventMode) -> Event {
    Event::create(
        name,
        &EventOptions {
            mode,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Polls `condition` until it holds, failing after [`PATIENCE`] or as soon as `alive` says the
/// process being waited on has died.
fn wait_for(
    what: &str,
    mut alive: impl FnMut() -> bool,
    mut condition: impl FnMut() -> bool,
) -> Result<(), String> {
    let started = Instant::now();
    while !condition() {
        if !alive() {
            return Err(format!("gave up waiting until {what}: the process ended"));
        }
        if started.elapsed() > PATIENCE {
            return Err(format!("gave up waiting until {what} after {PATIENCE:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

fn stream_for_storm(rng: &mut Rng, what: &str, frames_min: usize) -> (Stream, usize) {
    let capacity = rng.pick(&[4u32, 16, 64, 256]);
    let max = rng.pick(&[16usize, 256, 4096, 16384]).max(frames_min);
    let stream = Stream::create(
        &unique(what),
        &StreamOptions {
            capacity,
            max_frame_size: max as u32,
            checksum: rng.percent(50),
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    (stream, max)
}

fn reader_proc(
    rng: &mut Rng,
    stream: &Stream,
    kind: Kind,
    view: Option<&str>,
    hold_us: u64,
) -> Proc {
    let mut env = vec![
        ("KS_STREAM", stream.name().to_string()),
        ("KS_KIND", kind.name().to_string()),
        ("KS_SEED", rng.next_u64().to_string()),
        ("KS_HOLD_US", hold_us.to_string()),
    ];
    if let Some(view) = view {
        env.push(("KS_VIEW", view.to_string()));
    }
    Proc::role(format!("{} reader", kind.name()), "storm_reader", &env)
}

fn writer_proc(rng: &mut Rng, stream: &Stream, held: &Event, frames: u64) -> Proc {
    Proc::role(
        "writer",
        "storm_writer",
        &[
            ("KS_STREAM", stream.name().to_string()),
            ("KS_HELD", held.name().to_string()),
            ("KS_SEED", rng.next_u64().to_string()),
            ("KS_FRAMES", frames.to_string()),
        ],
    )
}

fn wait_ready(ready: &Event, count: usize) -> Result<(), String> {
    for _ in 0..count {
        ready
            .wait_timeout(PATIENCE)
            .map_err(|e| format!("a reader never got ready: {e}"))?;
    }
    Ok(())
}

/// One writer kill: readers attached, a writer streaming, killed at a random frame.
fn writer_kill(rng: &mut Rng, sum: &mut Summary) -> Result<(), String> {
    let (stream, _) = stream_for_storm(rng, "w", 16);
    let name = stream.name().to_string();
    let ready = event(&format!("{name}.ready"), EventMode::Counting);
    let held = event(&format!("{name}.held"), EventMode::Flag);
    let mut kinds = vec![rng.pick(&[Kind::Copy, Kind::Batch]), Kind::ZeroCopy];
    if rng.percent(50) {
        kinds.push(Kind::Lossy);
    }
    let readers: Vec<Proc> = kinds
        .iter()
        .map(|&k| {
            let hold_us = rng.below(50);
            reader_proc(rng, &stream, k, None, hold_us)
        })
        .collect();
    wait_ready(&ready, readers.len())?;
    let writer = writer_proc(rng, &stream, &held, u64::MAX);
    let writer_pid = writer.pid();
    let alive = || !process_gone(writer_pid);
    wait_for("the writer attached", alive, || {
        stream.stats().writer_state == WriterState::Active
    })?;
    let target = rng.below(3000);
    wait_for("the writer reached its kill point", alive, || {
        stream.stats().frames_written >= target
    })?;
    spin_for(rng.duration(Duration::from_millis(2)));
    let out = writer.kill();
    if out.status.signal() != Some(libc::SIGKILL) {
        return Err(format!(
            "the writer ended before the kill\n{}",
            describe(&out)
        ));
    }
    sum.kills += 1;
    if held.is_set() {
        sum.holding += 1;
    }
    let stats = stream.stats();
    let published = stats.frames_written;
    if stats.writer_state != WriterState::Dead {
        return Err(format!(
            "writer state {:?} after the kill",
            stats.writer_state
        ));
    }
    match stream.writer() {
        Err(Error::WriterExists(m)) if m.contains("died") => {}
        other => return Err(format!("a new writer on the dead stream got {other:?}")),
    }
    for (kind, reader) in kinds.iter().zip(readers) {
        let what = format!("{} reader", kind.name());
        let r = reader.result()?;
        if *kind == Kind::Lossy {
            sum.add(&what, &r)?;
            let seen = field(&r, "frames") + field(&r, "missed");
            let done = published == 0 || field(&r, "next") == published;
            if r["outcome"] != "WRITER_DEAD" || seen != published || !done {
                return Err(format!(
                    "{what}: expected {published} frames delivered or missed, then WRITER_DEAD: \
                     {r:?}"
                ));
            }
        } else {
            sum.lossless(&what, &r, published, "WRITER_DEAD")?;
        }
    }
    Ok(())
}

/// One reader kill round: a writer streams a known number of frames to surviving readers while
/// one or two victims (some holding zero-copy views) are killed at random frames.
fn reader_kill(rng: &mut Rng, sum: &mut Summary) -> Result<(), String> {
    let (stream, _) = stream_for_storm(rng, "r", 16);
    let name = stream.name().to_string();
    let frames = 2 * stream.info().capacity as u64 + rng.below(3000);
    let ready = event(&format!("{name}.ready"), EventMode::Counting);
    let held = event(&format!("{name}.held"), EventMode::Flag);
    let survivors: Vec<(Kind, Proc)> = (0..1 + rng.below(2))
        .map(|_| {
            let kind = rng.pick(&[Kind::Copy, Kind::Batch, Kind::ZeroCopy]);
            (kind, reader_proc(rng, &stream, kind, None, 0))
        })
        .collect();
    let mut views = Vec::new();
    let victims: Vec<Proc> = (0..1 + rng.below(2))
        .map(|i| {
            let kind = rng.pick(&[Kind::ZeroCopy, Kind::ZeroCopy, Kind::Copy, Kind::Batch]);
            let view = event(&format!("{name}.view{i}"), EventMode::Flag);
            let hold_us = rng.below(300);
            let victim = reader_proc(rng, &stream, kind, Some(view.name()), hold_us);
            views.push(view);
            victim
        })
        .collect();
    wait_ready(&ready, survivors.len() + victims.len())?;
    let writer = writer_proc(rng, &stream, &held, frames);
    for (victim, view) in victims.into_iter().zip(&views) {
        let pid = victim.pid();
        let target = rng.below(frames);
        wait_for(
            "the victim reached its kill point",
            || !process_gone(pid),
            || {
                stream
                    .stats()
                    .readers
                    .iter()
                    .find(|r| r.pid == pid)
                    .is_none_or(|r| r.frames_read >= target)
            },
        )
        .ok();
        spin_for(rng.duration(Duration::from_millis(1)));
        let out = victim.kill();
        if out.status.signal() == Some(libc::SIGKILL) {
            sum.kills += 1;
            if view.is_set() {
                sum.holding += 1;
            }
        }
    }
    let out = writer.wait()?;
    if !out.status.success() {
        return Err(format!(
            "the writer did not carry on past the killed readers\n{}",
            describe(&out)
        ));
    }
    for (kind, reader) in survivors {
        let r = reader.result()?;
        sum.lossless(
            &format!("surviving {} reader", kind.name()),
            &r,
            frames,
            "END_OF_STREAM",
        )?;
    }
    sum.reclaimed += stream.stats().readers_reclaimed;
    Ok(())
}

const TASKS: [&str; 3] = ["source", "relay", "sink"];

/// source -> a -> relay -> b -> sink, with task logs in `dir`; the source writes `frames` frames
/// (or until stopped).
fn storm_pipeline(rng: &mut Rng, name: &str, frames: u64, dir: &Path, tag: &str) -> Pipeline {
    let capacity = rng.pick(&[4u32, 16, 64]);
    let max = rng.pick(&[16u32, 256, 4096]);
    let stream = |rng: &mut Rng| {
        StreamSpec::bytes(max)
            .capacity(capacity)
            .checksum(rng.percent(50))
    };
    let task = |rng: &mut Rng, task: &str| {
        let exe = std::env::current_exe().unwrap();
        let log = |ext: &str| dir.join(format!("{name}-{tag}-{task}.{ext}"));
        TaskSpec::command(exe.to_str().unwrap())
            .args(role_args(&format!("storm_task_{task}")))
            .env("KS_SEED", rng.next_u64().to_string())
            .env(
                "KS_KIND",
                rng.pick(&[Kind::Copy, Kind::Batch, Kind::ZeroCopy]).name(),
            )
            .env("KS_FRAMES", frames.to_string())
            .stdout(log("log"))
            .stderr(log("err"))
    };
    Pipeline::new(name)
        .stream("a", stream(rng))
        .stream("b", stream(rng))
        .task("source", task(rng, "source").writes("out", "a"))
        .task(
            "relay",
            task(rng, "relay").reads("input", "a").writes("out", "b"),
        )
        .task("sink", task(rng, "sink").reads("input", "b"))
        .join_timeout(PATIENCE)
        .stop_grace(PATIENCE)
}

/// The RESULT line task `task` wrote to its log, and its stderr.
fn task_result(
    dir: &Path,
    name: &str,
    tag: &str,
    task: &str,
) -> Result<HashMap<String, String>, String> {
    let read = |ext: &str| {
        std::fs::read_to_string(dir.join(format!("{name}-{tag}-{task}.{ext}"))).unwrap_or_default()
    };
    result_in(&read("log")).ok_or_else(|| {
        format!(
            "task {task} wrote no RESULT line\nstdout:\n{}\nstderr:\n{}",
            read("log"),
            read("err")
        )
    })
}

/// Checks what the relay and the sink read (unless they are `silent`: the killed task, or tasks
/// stopped before they joined): every frame their writer published, then END_OF_STREAM, or
/// WRITER_DEAD if their writer is the killed task (the first of `silent`).
fn check_readers(
    sum: &mut Summary,
    dir: &Path,
    name: &str,
    tag: &str,
    silent: &[&str],
) -> Result<(), String> {
    let victim = silent.first().copied();
    for (task, writer) in [("relay", "source"), ("sink", "relay")] {
        if silent.contains(&task) {
            continue;
        }
        let r = task_result(dir, name, tag, task)?;
        if r.get("joined").map(String::as_str) != Some("1") {
            // Killed before the pipeline ran: nothing was read, nothing to check.
            continue;
        }
        let outcome = if victim == Some(writer) {
            "WRITER_DEAD"
        } else {
            "END_OF_STREAM"
        };
        let head = field(&r, "head");
        sum.lossless(task, &r, head, outcome)?;
    }
    Ok(())
}

fn registry_when(name: &str, mut ok: impl FnMut(&Registry) -> bool) -> Result<Registry, String> {
    let started = Instant::now();
    loop {
        if let Ok(registry) = Registry::open(name) {
            if ok(&registry) {
                return Ok(registry);
            }
        }
        if started.elapsed() > PATIENCE {
            return Err(format!("pipeline {name} never got there"));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Waits until the head of stream `stream` of pipeline `name` reaches `target`, or the pipeline
/// is no longer running.
fn wait_for_frames(registry: &Registry, name: &str, stream: &str, target: u64) {
    if let Ok(s) = Stream::open(&segment_name(name, stream)) {
        let _ = wait_for(
            "the source reached the kill point",
            || registry.state().ok() == Some(PipelineState::Running),
            || s.stats().frames_written >= target,
        );
    }
}

/// One task kill: a running pipeline loses a random task at a random moment.
fn task_kill(rng: &mut Rng, sum: &mut Summary, dir: &Path) -> Result<(), String> {
    let name = unique("t");
    let mut run = storm_pipeline(rng, &name, u64::MAX, dir, "run")
        .start()
        .map_err(|e| format!("starting: {e}"))?;
    let victim = rng.below(3) as usize;
    let early = rng.percent(15);
    let registry = registry_when(&name, |r| {
        r.task_status(victim).is_ok_and(|s| s.process.is_some())
            && (early || r.state().ok() == Some(PipelineState::Running))
    })?;
    if !early {
        wait_for_frames(&registry, &name, "a", rng.below(2000));
        spin_for(rng.duration(Duration::from_millis(1)));
    }
    let pid = registry.task_status(victim).unwrap().process.unwrap().pid;
    // SAFETY: kill has no memory-safety preconditions. The pid is a task of our own runner that
    // cannot have been reaped: it never exits by itself before the pipeline stops.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    sum.kills += 1;
    if !run.wait_timeout(PATIENCE) {
        return Err("the runner did not end the pipeline in time".into());
    }
    let report = run.wait();
    let expected = format!("task {:?}", TASKS[victim]);
    match &report.outcome {
        Outcome::Failed(m) if m.contains(&expected) && m.contains("SIGKILL") => {}
        other => {
            return Err(format!(
                "outcome {other:?}, expected a failure of {expected} by SIGKILL"
            ))
        }
    }
    let mut silent = vec![TASKS[victim]];
    for (i, t) in report.tasks.iter().enumerate() {
        match t.exit {
            _ if i == victim => {}
            Some(TaskExit::Code(0)) => {}
            // A task the runner stopped before it had even set SIGTERM aside (killed so early
            // that it had not joined): it has nothing to report.
            Some(TaskExit::Signal(libc::SIGTERM)) if early && t.stopped => silent.push(TASKS[i]),
            other => return Err(format!("surviving task {} ended with {other:?}", t.name)),
        }
    }
    check_readers(sum, dir, &name, "run", &silent)?;
    let left = segments_of(&name);
    if !left.is_empty() {
        return Err(format!("segments left behind: {left:?}"));
    }
    Ok(())
}

fn shmline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shmline"));
    command.stdin(std::process::Stdio::null());
    command
}

/// One runner kill: `shmline run` is killed while starting or running; its tasks must die with it,
/// and cleaning (or simply running again) must recover.
fn runner_kill(rng: &mut Rng, sum: &mut Summary, dir: &Path, round: u64) -> Result<(), String> {
    // A name that is no other name's prefix (`shmline clean` takes a prefix).
    let name = format!("{}-run", unique("k"));
    let manifest = dir.join(format!("{name}.toml"));
    storm_pipeline(rng, &name, u64::MAX, dir, "killed")
        .save(&manifest)
        .map_err(|e| e.to_string())?;
    let mut command = shmline();
    command.args(["run", "--quiet", manifest.to_str().unwrap()]);
    let runner = Proc::spawn("shmline run", command);
    let runner_pid = runner.pid();
    let early = rng.percent(25);
    registry_when(&name, |_| true)?;
    if early {
        spin_for(rng.duration(Duration::from_millis(20)));
    } else {
        let registry = registry_when(&name, |r| r.state().ok() == Some(PipelineState::Running))?;
        wait_for_frames(&registry, &name, "a", rng.below(2000));
        spin_for(rng.duration(Duration::from_millis(1)));
    }
    let out = runner.kill();
    if out.status.signal() != Some(libc::SIGKILL) {
        return Err(format!(
            "shmline run ended before the kill\n{}",
            describe(&out)
        ));
    }
    sum.kills += 1;
    wait_for(
        "the tasks died with their runner",
        || true,
        || processes_with_env(shmline::pipeline::ENV_PIPELINE, &name).is_empty(),
    )
    .map_err(|e| {
        format!(
            "{e}: {:?} (runner was {runner_pid})",
            processes_with_env(shmline::pipeline::ENV_PIPELINE, &name)
        )
    })?;
    let left = segments_of(&name);
    sum.stale_segments += left.len() as u64;
    if round.is_multiple_of(2) {
        let out = shmline().args(["clean", "--json", &name]).output().unwrap();
        let still = segments_of(&name);
        if !out.status.success() || !still.is_empty() {
            return Err(format!(
                "shmline clean left {still:?} of {left:?}\n{}",
                describe(&out)
            ));
        }
    }
    // Running the same pipeline again recovers whatever is left and delivers every frame.
    let frames = 500 + rng.below(1500);
    let manifest = dir.join(format!("{name}-again.toml"));
    storm_pipeline(rng, &name, frames, dir, "again")
        .save(&manifest)
        .map_err(|e| e.to_string())?;
    let mut command = shmline();
    command.args(["run", "--quiet", manifest.to_str().unwrap()]);
    let out = Proc::spawn("shmline run (again)", command).wait()?;
    if !out.status.success() {
        return Err(format!(
            "running the pipeline again after the kill failed\n{}",
            describe(&out)
        ));
    }
    check_readers(sum, dir, &name, "again", &[])?;
    let source = task_result(dir, &name, "again", "source")?;
    if field(&source, "written") != frames {
        return Err(format!("the re-run source wrote {source:?}, not {frames}"));
    }
    let left = segments_of(&name);
    if !left.is_empty() {
        return Err(format!("segments left behind after the re-run: {left:?}"));
    }
    Ok(())
}

/// Counts a process that had to be killed because it hung (its error says so), then passes the
/// error on.
fn note_hang(sum: &mut Summary, error: String) -> String {
    if error.contains(" hung: ") || error.contains("TIMEOUT") {
        sum.hangs += 1;
    }
    error
}

/// One multi-writer round: two to four writer processes feed one stream (copy, batch and
/// zero-copy writes mixed) to one or two lossless readers; one of them, several, or all are
/// killed at random frames (some holding a reserved slot), then the others close. Every reader
/// must get every writer's frames once, in that writer's order, a skipped number only where a
/// killed writer held a claim, then END_OF_STREAM, or WRITER_DEAD if every writer was killed.
fn multi_writer_kill(rng: &mut Rng, sum: &mut Summary) -> Result<(), String> {
    let writers = 2 + rng.below(3);
    let max = rng.pick(&[16usize, 256, 4096]);
    let stream = Stream::create(
        &unique("mw"),
        &StreamOptions {
            capacity: rng.pick(&[4u32, 16, 64, 256]),
            max_frame_size: max as u32,
            max_writers: writers as u32,
            checksum: rng.percent(50),
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let name = stream.name().to_string();
    let ready = event(&format!("{name}.ready"), EventMode::Counting);
    let attached = event(&format!("{name}.attached"), EventMode::Counting);
    let close = event(&format!("{name}.close"), EventMode::Flag);
    let kinds: Vec<Kind> = (0..1 + rng.below(2))
        .map(|_| rng.pick(&[Kind::Copy, Kind::Batch, Kind::ZeroCopy]))
        .collect();
    let readers: Vec<Proc> = kinds
        .iter()
        .map(|kind| {
            let env = [
                ("KS_STREAM", name.clone()),
                ("KS_KIND", kind.name().to_string()),
                ("KS_SEED", rng.next_u64().to_string()),
            ];
            Proc::role(
                format!("{} reader", kind.name()),
                "storm_multi_reader",
                &env,
            )
        })
        .collect();
    wait_ready(&ready, readers.len())?;
    let held: Vec<Event> = (0..writers)
        .map(|id| event(&format!("{name}.held{id}"), EventMode::Flag))
        .collect();
    let frames: Vec<u64> = (0..writers).map(|_| 1 + rng.below(3000)).collect();
    let mut procs: Vec<Proc> = (0..writers)
        .map(|id| {
            let env = [
                ("KS_STREAM", name.clone()),
                ("KS_HELD", held[id as usize].name().to_string()),
                ("KS_CLOSE", close.name().to_string()),
                ("KS_ID", id.to_string()),
                ("KS_FRAMES", frames[id as usize].to_string()),
                ("KS_SEED", rng.next_u64().to_string()),
            ];
            Proc::role(format!("writer {id}"), "storm_multi_writer", &env)
        })
        .collect();
    for _ in 0..writers {
        attached
            .wait_timeout(PATIENCE)
            .map_err(|e| format!("a writer never attached: {e}"))?;
    }
    // The first `victims` writers die; one round in five, all of them.
    let victims = if rng.percent(20) {
        writers
    } else {
        1 + rng.below(writers - 1)
    };
    let survivors = procs.split_off(victims as usize);
    for (id, victim) in procs.into_iter().enumerate() {
        let pid = victim.pid();
        let target = rng.below(frames[id] + 1);
        wait_for(
            "the writer reached its kill point",
            || !process_gone(pid),
            || {
                stream
                    .stats()
                    .writers
                    .iter()
                    .find(|w| w.pid == pid)
                    .is_none_or(|w| w.frames_written >= target)
            },
        )?;
        spin_for(rng.duration(Duration::from_millis(2)));
        let holding = held[id].is_set();
        let out = victim.kill();
        if out.status.signal() != Some(libc::SIGKILL) {
            return Err(format!(
                "writer {id} ended before the kill\n{}",
                describe(&out)
            ));
        }
        sum.kills += 1;
        sum.holding += holding as u64;
    }
    close.set();
    for (id, survivor) in (victims..).zip(survivors) {
        let r = survivor.result().map_err(|e| note_hang(sum, e))?;
        if field(&r, "written") != frames[id as usize] {
            return Err(format!("writer {id}: {r:?}"));
        }
    }
    let expected = if victims == writers {
        "WRITER_DEAD"
    } else {
        "END_OF_STREAM"
    };
    let mut seen: Option<String> = None;
    let mut wrong_end = None;
    for (kind, reader) in kinds.iter().zip(readers) {
        let what = format!("{} reader", kind.name());
        let r = reader.result().map_err(|e| note_hang(sum, e))?;
        if r["outcome"] == "TIMEOUT" {
            sum.hangs += 1;
        }
        sum.add(&what, &r)?;
        let stats = stream.stats();
        let counts: HashMap<u64, u64> = r["per_writer"]
            .split(',')
            .filter_map(|p| p.split_once(':'))
            .map(|(id, n)| (id.parse().unwrap(), n.parse().unwrap()))
            .collect();
        let short: Vec<u64> = (victims..writers)
            .filter(|&id| counts.get(&id).copied().unwrap_or(0) != frames[id as usize])
            .collect();
        if r["outcome"] != expected {
            wrong_end.get_or_insert(format!(
                "{what} ended with {} but expected {expected}: {victims} of {writers} writers \
                 were killed, the others closed cleanly after the kills; {r:?}",
                r["outcome"]
            ));
        }
        // A killed writer's last claim may lie past the end, where no reader is told about it.
        if field(&r, "frames") != stats.frames_written
            || field(&r, "missed") > stats.frames_skipped
            || !short.is_empty()
        {
            return Err(format!(
                "{what}: expected every frame of writers {victims}..{writers} ({frames:?}), \
                 {} frames in all and at most {} skipped; got {r:?}",
                stats.frames_written, stats.frames_skipped
            ));
        }
        // Every reader saw the same frames of the killed writers too.
        if seen.get_or_insert_with(|| r["per_writer"].clone()) != &r["per_writer"] {
            return Err(format!("readers disagree: {seen:?} and {r:?}"));
        }
    }
    // A killed writer holds at most one claim, of up to 8 numbers (a batch).
    let skipped = stream.stats().frames_skipped;
    sum.skipped += skipped;
    if skipped > 8 * victims {
        return Err(format!(
            "{skipped} numbers skipped, but only {victims} writers were killed"
        ));
    }
    // A wrong end fails the storm; the count of such rounds is a figure, so the storm goes on.
    if let Some(problem) = wrong_end {
        sum.wrong_ends += 1;
        if sum.wrong_ends == 1 {
            return Err(problem);
        }
    }
    Ok(())
}

/// One reader-group round: two to four member processes share a stream (each lends a frame,
/// checks it, reports it on a results stream, then releases it) while all but one are killed at
/// random frames. At-least-once: every frame must be reported, and each frame reported twice
/// must be explained by a kill (a member killed after reporting, before releasing). The group
/// promises a dead member's frames to a member *still reading*, so members stay until every
/// victim is killed (event `done`): a victim killed holding a frame after the others were told
/// the end of the stream is then adopted too, instead of being lost with nobody left to take it.
fn group_kill(rng: &mut Rng, sum: &mut Summary) -> Result<(), String> {
    let members = 2 + rng.below(3);
    let frames = 100 + rng.below(2000);
    let max = rng.pick(&[16usize, 256, 1024]);
    let stream = Stream::create(
        &unique("grp"),
        &StreamOptions {
            capacity: rng.pick(&[4u32, 16, 64]),
            max_frame_size: max as u32,
            checksum: rng.percent(50),
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let name = stream.name().to_string();
    // A member of our own that never reads: the group (and its statistics) outlives the member
    // processes, and an orphan nobody adopted is still there to be seen at the end.
    let _keeper = stream
        .reader(&ReaderOptions {
            group: Some("g".into()),
            ..Default::default()
        })
        .unwrap();
    let results = Stream::create(
        &unique("grp-results"),
        &StreamOptions {
            capacity: 4096,
            max_frame_size: RESULT_BYTES as u32,
            max_writers: members as u32,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut collected = results
        .reader(&ReaderOptions {
            timeout: Some(PATIENCE),
            ..Default::default()
        })
        .unwrap();
    let ready = event(&format!("{name}.ready"), EventMode::Counting);
    let views: Vec<Event> = (0..members)
        .map(|id| event(&format!("{name}.view{id}"), EventMode::Flag))
        .collect();
    // Set once every victim is killed: members stay (reading) until then, so a frame held by a
    // victim killed after the stream ended still has a member to go to.
    let done = event(&format!("{name}.done"), EventMode::Flag);
    let mut procs: Vec<Proc> = (0..members)
        .map(|id| {
            let env = [
                ("KS_STREAM", name.clone()),
                ("KS_VIEW", views[id as usize].name().to_string()),
                ("KS_RESULTS", results.name().to_string()),
                ("KS_DONE", done.name().to_string()),
                ("KS_ID", id.to_string()),
                ("KS_SEED", rng.next_u64().to_string()),
            ];
            Proc::role(format!("member {id}"), "storm_member", &env)
        })
        .collect();
    wait_ready(&ready, procs.len())?;
    let mut writer = stream
        .writer_with(&WriterOptions {
            wait: wait_strategy(rng),
            timeout: Some(PATIENCE),
        })
        .unwrap();
    let writing = std::thread::spawn(move || -> Result<(), String> {
        let mut buf = vec![0u8; max];
        for seq in 0..frames {
            let len = fill_frame(seq, max, &mut buf);
            writer
                .write(&buf[..len])
                .map_err(|e| format!("writing frame {seq}: {e}"))?;
        }
        Ok(())
    });
    let victims = 1 + rng.below(members - 1);
    let survivors = procs.split_off(victims as usize);
    let mut killed = 0;
    for (victim, view) in procs.into_iter().zip(&views) {
        let target = rng.below(frames);
        wait_for(
            "the stream reached the kill point",
            || !writing.is_finished(),
            || stream.stats().frames_written >= target,
        )
        .ok();
        spin_for(rng.duration(Duration::from_millis(1)));
        let holding = view.is_set();
        let out = victim.kill();
        if out.status.signal() == Some(libc::SIGKILL) {
            killed += 1;
            sum.holding += holding as u64;
        }
    }
    sum.kills += killed;
    done.set();
    writing
        .join()
        .unwrap()
        .map_err(|e| format!("the writer did not carry on past the killed members: {e}"))?;
    for survivor in survivors {
        survivor.result().map_err(|e| note_hang(sum, e))?;
    }
    // Every member has left the results stream (closed, or killed): read it to its end.
    let mut processed: HashMap<u64, u64> = HashMap::new();
    let mut torn = 0;
    loop {
        match collected.read() {
            Ok(f) => {
                let seq = u64::from_le_bytes(f.data[8..16].try_into().unwrap());
                *processed.entry(seq).or_default() += 1;
                torn += (f.data[16] != 0) as u64;
            }
            Err(Error::EndOfStream | Error::WriterDead) => break,
            Err(e) => {
                return Err(note_hang(
                    sum,
                    format!("reading the results: {}", outcome_name(&e)),
                ))
            }
        }
    }
    let reported: u64 = processed.values().sum();
    let lost = (0..frames).filter(|s| !processed.contains_key(s)).count() as u64;
    let twice: u64 = processed.values().map(|n| n - 1).sum();
    let beyond = processed.keys().filter(|&&s| s >= frames).count() as u64;
    sum.frames += reported;
    sum.lost += lost;
    sum.torn += torn + beyond;
    sum.redelivered += twice;
    let unexplained = twice.saturating_sub(killed);
    sum.duplicated += unexplained;
    let stats = stream.stats();
    let redelivered = stats.frames_redelivered();
    let orphans: u32 = stats.groups.iter().map(|g| g.orphans).sum();
    sum.adopted += redelivered;
    if lost + torn + beyond + unexplained + u64::from(orphans) > 0 || redelivered > killed {
        return Err(format!(
            "{frames} frames, {killed} members killed: {lost} never reported, {twice} reported \
             twice, {torn} torn, {beyond} unknown, {redelivered} redelivered, {orphans} orphans \
             left"
        ));
    }
    Ok(())
}

/// One reader-churn round on the storm's stream (and its event `going`, which a churner sets once
/// it has opened and closed a reader): one or two processes open and close
/// readers (plain, lossy and group members) in a tight loop and are killed at random moments,
/// some while claiming or freeing their entry. Afterwards a new reader must be able to open
/// whenever fewer live readers than `max_readers` are attached.
fn churn_kill(
    rng: &mut Rng,
    sum: &mut Summary,
    (stream, going): &(Stream, Event),
) -> Result<(), String> {
    let name = stream.name();
    going.clear();
    let churners: Vec<Proc> = (0..1 + rng.below(2))
        .map(|_| {
            let env = [
                ("KS_STREAM", name.to_string()),
                ("KS_SEED", rng.next_u64().to_string()),
            ];
            Proc::role("churner", "storm_churner", &env)
        })
        .collect();
    let first = churners[0].pid();
    wait_for(
        "a churner got going",
        || !process_gone(first),
        || going.is_set(),
    )?;
    for churner in churners {
        spin_for(rng.duration(Duration::from_millis(3)));
        let out = churner.kill();
        if out.status.signal() != Some(libc::SIGKILL) {
            return Err(format!("a churner ended by itself\n{}", describe(&out)));
        }
        sum.kills += 1;
    }
    let live = stream.stats().readers.iter().filter(|r| r.alive).count() as u32;
    if live < stream.info().max_readers {
        match stream.reader(&ReaderOptions::default()) {
            Ok(reader) => drop(reader),
            Err(Error::TooManyReaders(m)) => {
                sum.refused += 1;
                // Once is enough to fail the storm; the count says how often it happened.
                if sum.refused == 1 {
                    let entries: Vec<String> = stream
                        .stats()
                        .readers
                        .iter()
                        .map(|r| format!("#{} pid {} alive {}", r.index, r.pid, r.alive))
                        .collect();
                    return Err(format!(
                        "a new reader was refused with {live} live readers of {} (entries in \
                         use: {entries:?}): {m}",
                        stream.info().max_readers
                    ));
                }
            }
            Err(e) => return Err(format!("a new reader failed: {e}")),
        }
    }
    Ok(())
}

/// The stream of the reader-churn storm (few reader entries, so entries lost to kills show soon)
/// and its `going` event.
fn churn_stream() -> (Stream, Event) {
    let stream = Stream::create(
        &unique("churn"),
        &StreamOptions {
            capacity: 16,
            max_frame_size: 64,
            max_readers: 4,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let going = event(&format!("{}.going", stream.name()), EventMode::Flag);
    (stream, going)
}

/// Runs `kill` until `kills` processes were killed (or too many problems), catching panics.
fn storm(
    kills: u64,
    mut rng: Rng,
    mut kill: impl FnMut(&mut Rng, &mut Summary, u64) -> Result<(), String>,
) -> Summary {
    let mut sum = Summary::default();
    let mut round = 0;
    while sum.kills < kills && sum.problems.len() < 5 {
        let mut round_rng = rng.fork();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            kill(&mut round_rng, &mut sum, round)
        }));
        let problem = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(problem)) => Some(problem),
            Err(panic) => Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()),
            ),
        };
        if let Some(problem) = problem {
            sum.problems.push(format!("round {round}: {problem}"));
        }
        round += 1;
    }
    sum.rounds = round;
    sum
}

#[test]
#[ignore = "slow (a few minutes): run by `scripts/test` (suite reliability) or with --ignored"]
fn sigkill_storms_never_lose_duplicate_or_tear_a_committed_frame() {
    let total = env_u64("SHMLINE_KILLS", 200);
    let seed = base_seed();
    let dir = std::env::temp_dir().join(unique("storm-logs"));
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let share = |percent: u64| (total * percent).div_ceil(100).max(1);
    // SHMLINE_STORMS=multi,churn runs only the storms named.
    let only = std::env::var("SHMLINE_STORMS").ok();
    let plan: Vec<(&str, u64)> = [
        ("writer", share(35)),
        ("reader", share(30)),
        ("task", share(20)),
        ("runner", share(15)),
        ("multi", share(15)),
        ("group", share(15)),
        ("churn", share(40)),
    ]
    .into_iter()
    .filter(|(what, _)| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|w| w == *what))
    })
    .collect();
    let rngs: Vec<Rng> = plan.iter().map(|_| rng.fork()).collect();
    let summaries: Vec<Summary> = std::thread::scope(|s| {
        let dir: &PathBuf = &dir;
        let handles: Vec<_> = plan
            .iter()
            .zip(rngs)
            .map(|(&(what, kills), rng)| {
                s.spawn(move || match what {
                    "writer" => storm(kills, rng, |rng, sum, _| writer_kill(rng, sum)),
                    "reader" => storm(kills, rng, |rng, sum, _| reader_kill(rng, sum)),
                    "task" => storm(kills, rng, |rng, sum, _| task_kill(rng, sum, dir)),
                    "multi" => storm(kills, rng, |rng, sum, _| multi_writer_kill(rng, sum)),
                    "group" => storm(kills, rng, |rng, sum, _| group_kill(rng, sum)),
                    "churn" => {
                        let churned = churn_stream();
                        storm(kills, rng, |rng, sum, _| churn_kill(rng, sum, &churned))
                    }
                    _ => storm(kills, rng, |rng, sum, round| {
                        runner_kill(rng, sum, dir, round)
                    }),
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();

    let mut total_sum = Summary::default();
    let mut lines = vec![format!(
        "kill storm, seed {seed:#x} (replay: SHMLINE_SEED={seed:#x} SHMLINE_KILLS={total}), {:.1} s",
        elapsed.as_secs_f64()
    )];
    for ((what, _), sum) in plan.iter().zip(&summaries) {
        let holding = match *what {
            "writer" => format!(", {} holding a reserved slot", sum.holding),
            "reader" => format!(
                ", {} holding a zero-copy view; {} entries reclaimed",
                sum.holding, sum.reclaimed
            ),
            "runner" => format!(", {} stale segments recovered", sum.stale_segments),
            "multi" => format!(
                ", {} holding a reserved slot; {} numbers skipped; {} rounds ended wrongly",
                sum.holding, sum.skipped, sum.wrong_ends
            ),
            "group" => format!(
                ", {} holding a frame; {} frames redelivered, {} reported twice, each after a kill",
                sum.holding, sum.adopted, sum.redelivered
            ),
            "churn" => format!("; {} refused readers with free capacity", sum.refused),
            _ => String::new(),
        };
        lines.push(format!(
            "  {what:<6} kills {:>5} in {} rounds{holding}; frames verified {}; lost {}, \
             duplicated {}, torn {}, hangs {}",
            sum.kills, sum.rounds, sum.frames, sum.lost, sum.duplicated, sum.torn, sum.hangs
        ));
        total_sum.kills += sum.kills;
        total_sum.hangs += sum.hangs;
        total_sum.refused += sum.refused;
        total_sum.wrong_ends += sum.wrong_ends;
        total_sum.frames += sum.frames;
        total_sum.lost += sum.lost;
        total_sum.duplicated += sum.duplicated;
        total_sum.torn += sum.torn;
        total_sum
            .problems
            .extend(sum.problems.iter().map(|p| format!("{what} storm, {p}")));
    }
    lines.push(format!(
        "  total  kills {:>5}; frames verified {}; lost {}, duplicated {}, torn {}, hangs {}, \
         refused readers with free capacity {}",
        total_sum.kills,
        total_sum.frames,
        total_sum.lost,
        total_sum.duplicated,
        total_sum.torn,
        total_sum.hangs,
        total_sum.refused
    ));
    // Straight to stderr, past the test harness's capture: the figures belong in every log.
    let _ = writeln!(std::io::stderr(), "{}", lines.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);

    assert!(
        total_sum.problems.is_empty(),
        "{}",
        total_sum.problems.join("\n\n")
    );
    assert_eq!(
        (
            total_sum.lost,
            total_sum.duplicated,
            total_sum.torn,
            total_sum.hangs,
            total_sum.refused,
            total_sum.wrong_ends
        ),
        (0, 0, 0, 0, 0, 0),
        "lost, duplicated, torn, hangs, refused readers, multi-writer rounds ended wrongly"
    );
    for ((what, kills), sum) in plan.iter().zip(&summaries) {
        assert!(
            sum.kills >= *kills,
            "{what} storm killed only {}",
            sum.kills
        );
    }
    // Every storm but churn checks frames.
    assert!(total_sum.frames > 0 || plan.iter().all(|&(what, _)| what == "churn"));
}
