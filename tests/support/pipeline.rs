//! Task programs and helpers of the pipeline test files (`pipeline`, `c_abi`, and the CLI's
//! `cli_pipeline` and `hostile_registry`): what a task of a test pipeline does.
//!
//! The tasks of a test pipeline are this same test binary, re-run as `--exact role_<name>
//! --ignored`: each test file wraps the `role_*` functions below in ignored tests of that name.
//! A role does nothing unless the runner started it (`SHMLINE_TASK` is set). Roles take their
//! parameters from environment variables the test puts in the task's declaration.

/// Declares the ignored `role_*` tests that run the task roles below, for a test file whose
/// pipelines use those roles (`task_roles!(source, scale, sink);`).
#[allow(unused_macros)] // only the test files whose pipelines run these roles use it
macro_rules! task_roles {
    ($($role:ident),* $(,)?) => {
        $(
            #[test]
            #[ignore = "task role"]
            fn $role() {
                support::pipeline::$role();
            }
        )*
    };
}

use super::{env_u64, role_args, wait_until, PATIENCE};
use shmline::pipeline::{Task, TaskSpec, ENV_TASK};
use shmline::Error;

/// Bytes per frame of the test streams.
pub const FRAME: usize = 64;

/// A task that runs role `role` of this test binary (its stdout, the test harness's chatter,
/// goes to /dev/null; its stderr, with any panic message, stays the test's).
pub fn role(role: &str) -> TaskSpec {
    let exe = std::env::current_exe().unwrap();
    TaskSpec::command(exe.to_str().unwrap())
        .args(role_args(role))
        .stdout("/dev/null")
}

/// Payload of frame `seq` as the source writes it.
pub fn payload(seq: u64) -> [u8; FRAME] {
    let mut frame = [0u8; FRAME];
    frame[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in frame[8..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    frame
}

/// What the scale stage makes of a frame.
pub fn scale(frame: &[u8]) -> Vec<u8> {
    frame.iter().map(|b| b.wrapping_mul(2)).collect()
}

/// Joins as the task the runner started, or returns `None` when run outside a pipeline.
fn join() -> Option<Task> {
    std::env::var(ENV_TASK).ok()?;
    Some(Task::join().unwrap())
}

/// Writes `FRAMES` frames (default 1000) to parameter `out`. With `EXIT_WITHOUT_CLOSE=1` it exits
/// without closing its writer, as a crashing-but-successful program would.
pub fn role_source() {
    let Some(mut task) = join() else { return };
    let mut out = task.writer("out").unwrap();
    for seq in 0..env_u64("FRAMES", 1000) {
        out.write(&payload(seq)).unwrap();
    }
    if env_u64("EXIT_WITHOUT_CLOSE", 0) == 1 {
        std::process::exit(0);
    }
}

/// Reads `input` to the end, writing each frame scaled to `out`.
pub fn role_scale() {
    let Some(mut task) = join() else { return };
    let mut input = task.reader("input").unwrap();
    let mut out = task.writer("out").unwrap();
    loop {
        match input.read() {
            Ok(frame) => out.write(&scale(&frame.data)).unwrap(),
            Err(Error::EndOfStream) => break,
            Err(e) => panic!("scale: {e}"),
        }
    }
}

/// Reads `input` to the end and checks every frame: `FRAMES` frames in order, each equal to the
/// source's payload (scaled `SCALED` times, default 1).
pub fn role_sink() {
    let Some(mut task) = join() else { return };
    let mut input = task.reader("input").unwrap();
    let scaled = env_u64("SCALED", 1);
    let mut count = 0u64;
    loop {
        match input.read() {
            Ok(frame) => {
                assert_eq!(frame.info.seq, count, "frames arrive in order, none lost");
                let mut expected = payload(count).to_vec();
                for _ in 0..scaled {
                    expected = scale(&expected);
                }
                assert_eq!(frame.data, expected, "frame {count} arrives intact");
                count += 1;
            }
            Err(Error::EndOfStream) => break,
            Err(e) => panic!("sink: {e}"),
        }
    }
    assert_eq!(count, env_u64("FRAMES", 1000), "every frame arrives");
    println!("sink verified {count} frames");
}

/// Joins, then exits with status `EXIT_CODE`.
pub fn role_exit() {
    let Some(_task) = join() else { return };
    std::process::exit(env_u64("EXIT_CODE", 3) as i32);
}

/// Reads parameter `input` to its end, printing a line on stdout and one on stderr per frame and
/// pausing `PAUSE_MS` (default 20) after each, so that a runner's progress line is redrawn in
/// between.
pub fn role_chatty() {
    let Some(mut task) = join() else { return };
    let mut input = task.reader("input").unwrap();
    let pause = std::time::Duration::from_millis(env_u64("PAUSE_MS", 20));
    loop {
        match input.read() {
            Ok(frame) => {
                println!("got frame {}", frame.info.seq);
                eprintln!("note {}", frame.info.seq);
                std::thread::sleep(pause);
            }
            Err(Error::EndOfStream) => break,
            Err(e) => panic!("chatty: {e}"),
        }
    }
}

/// Joins, then waits for the pipeline's stop event and exits 0.
pub fn role_idle() {
    let Some(task) = join() else { return };
    task.stop_event().wait().unwrap();
}

/// Starts (in this process) a pipeline named `PIPELINE_NAME` whose single task never joins,
/// prints "started", and waits to be killed: a runner that dies and leaves its segments behind.
pub fn role_doomed_runner() {
    let Ok(name) = std::env::var("PIPELINE_NAME") else {
        return;
    };
    let run = doomed_pipeline(&name).start().unwrap();
    println!("started {}", run.name());
    loop {
        std::thread::park();
    }
}

/// A pipeline whose task never joins (it sleeps), with a stream and an event.
pub fn doomed_pipeline(name: &str) -> shmline::pipeline::Pipeline {
    use shmline::pipeline::{EventSpec, Pipeline, StreamSpec};
    Pipeline::new(name)
        .join_timeout(PATIENCE * 10)
        .stream("s", StreamSpec::bytes(8))
        .event("e", EventSpec::flag())
        .task(
            "sleeper",
            TaskSpec::command("sleep")
                .arg("600")
                .writes("out", "s")
                .reads("in", "s")
                .event("e", "e"),
        )
        .allow_cycles(true)
}

/// Runs this test binary as `role_doomed_runner` for pipeline `name`, waits until its pipeline
/// has started, and kills it with SIGKILL: its segments stay behind with a dead creator.
pub fn leave_a_dead_pipeline(name: &str) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(role_args("role_doomed_runner"))
        .env("PIPELINE_NAME", name)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let started = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("started"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started, "the doomed runner did not start its pipeline");
}

/// Payload of frame `seq` of source `source` (a tagged source, for streams with several
/// writers): the source, the sequence number, then bytes derived from both.
pub fn tagged(source: u64, seq: u64) -> [u8; FRAME] {
    let mut frame = [0u8; FRAME];
    frame[..8].copy_from_slice(&source.to_le_bytes());
    frame[8..16].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in frame[16..].iter_mut().enumerate() {
        *b = (seq as u8)
            .wrapping_mul(31)
            .wrapping_add(source as u8)
            .wrapping_add(i as u8);
    }
    frame
}

/// Writes `FRAMES` frames tagged with source number `SOURCE` (default 0) to parameter `out`, as
/// one of several writers of a stream. With `EXIT_WITHOUT_CLOSE=1` it exits without closing its
/// writer.
pub fn role_tagged_source() {
    let Some(mut task) = join() else { return };
    let mut out = task.writer("out").unwrap();
    let source = env_u64("SOURCE", 0);
    for seq in 0..env_u64("FRAMES", 1000) {
        out.write(&tagged(source, seq)).unwrap();
    }
    if env_u64("EXIT_WITHOUT_CLOSE", 0) == 1 {
        std::process::exit(0);
    }
}

/// Reads `input` to the end, writing every frame unchanged to `out` (a worker of a reader group
/// when the pipeline says so), and prints how many it forwarded.
pub fn role_forward() {
    let Some(mut task) = join() else { return };
    let mut input = task.reader("input").unwrap();
    let mut out = task.writer("out").unwrap();
    let mut count = 0u64;
    loop {
        match input.read() {
            Ok(frame) => out.write(&frame.data).unwrap(),
            Err(Error::EndOfStream) => break,
            Err(e) => panic!("forward: {e}"),
        }
        count += 1;
    }
    println!("forwarded {count} frames");
}

/// Reads `input` to the end and checks that every frame of every tagged source arrived exactly
/// once and intact: `EXPECT` is `SOURCE:FRAMES,...` (default `0:1000`). With `ORDERED=1`, each
/// source's frames must also arrive in the order it wrote them.
pub fn role_merge_sink() {
    let Some(mut task) = join() else { return };
    let mut input = task.reader("input").unwrap();
    let expect: Vec<(u64, u64)> = std::env::var("EXPECT")
        .unwrap_or_else(|_| "0:1000".into())
        .split(',')
        .map(|pair| {
            let (s, n) = pair.split_once(':').unwrap();
            (s.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    let ordered = env_u64("ORDERED", 0) == 1;
    let mut seen: Vec<Vec<bool>> = expect
        .iter()
        .map(|&(_, n)| vec![false; n as usize])
        .collect();
    loop {
        match input.read() {
            Ok(frame) => {
                assert_eq!(frame.info.missed, 0, "no frame is skipped");
                let word =
                    |at: usize| u64::from_le_bytes(frame.data[at..at + 8].try_into().unwrap());
                let (source, seq) = (word(0), word(8));
                let index = expect
                    .iter()
                    .position(|&(s, _)| s == source)
                    .unwrap_or_else(|| panic!("frame of unexpected source {source}"));
                let flags = &mut seen[index];
                assert!(
                    (seq as usize) < flags.len(),
                    "source {source} seq {seq} too far"
                );
                assert!(
                    !flags[seq as usize],
                    "source {source} seq {seq} arrived twice"
                );
                if ordered {
                    assert!(
                        flags[..seq as usize].iter().all(|&f| f),
                        "source {source} seq {seq} arrived before an earlier frame"
                    );
                }
                flags[seq as usize] = true;
                assert_eq!(frame.data, tagged(source, seq), "frame arrives intact");
            }
            Err(Error::EndOfStream) => break,
            Err(e) => panic!("merge sink: {e}"),
        }
    }
    for (&(source, n), flags) in expect.iter().zip(&seen) {
        let got = flags.iter().filter(|&&f| f).count() as u64;
        assert_eq!(got, n, "every frame of source {source} arrives");
    }
    println!("merge sink verified {expect:?}");
}

/// Starts, in this process, a pipeline that runs until stopped.
pub fn endless_pipeline(name: &str) -> shmline::pipeline::PipelineRun {
    shmline::pipeline::Pipeline::new(name)
        .stream(
            "samples",
            shmline::pipeline::StreamSpec::bytes(FRAME as u32),
        )
        .task(
            "source",
            role("role_source")
                .env("FRAMES", u64::MAX.to_string())
                .writes("out", "samples"),
        )
        .task("idle", role("role_idle").reads("input", "samples"))
        .start()
        .unwrap()
}

/// Waits until pipeline `name` runs (every task joined) and returns its registry.
pub fn wait_until_running(name: &str) -> shmline::pipeline::Registry {
    let mut found = None;
    wait_until("the pipeline to run", || {
        found = shmline::pipeline::Registry::open(name)
            .ok()
            .filter(|r| r.state().ok() == Some(shmline::pipeline::PipelineState::Running));
        found.is_some()
    });
    found.unwrap()
}
