//! Hostile shared memory beyond streams: event segments and pipeline registries with every field
//! overwritten (boundary values, values next to the real ones, random bytes, wrong sizes), and
//! the `shmline` command (`ls`, `top`, `clean`) run on them, and on the segments of a running
//! pipeline mutated under its feet. Nothing may panic or crash: a damaged segment is refused
//! (NOT_SHMLINE, VERSION_MISMATCH or CORRUPT) or used without harm.
//!
//! Also what a process with write access *can* do, pinned down so the documentation stays true:
//! shrinking a segment makes the processes using it die of SIGBUS.
//!
//! The mutations are seeded (`SHMLINE_SEED` replays a run; the seed is printed). Set
//! `SHMLINE_CLI_WRAPPER="valgrind -q --error-exitcode=99"` to run every `shmline` command under
//! valgrind (slow: minutes).

#[path = "../../tests/support/mod.rs"]
mod support;

use serde_json::Value;
use shmline::pipeline::{Pipeline, Registry, StreamSpec};
use shmline::{Error, Event, EventMode, EventOptions, Status, Stream, StreamOptions};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::time::Duration;
use support::*;

#[test]
#[ignore = "task role"]
fn role_source() {
    support::pipeline::role_source();
}

#[test]
#[ignore = "task role"]
fn role_idle() {
    support::pipeline::role_idle();
}

#[test]
#[ignore = "task role"]
fn role_doomed_runner() {
    support::pipeline::role_doomed_runner();
}

/// A segment file under /dev/shm, written to behind shmline's back, with its original bytes.
struct Raw {
    file: File,
    pristine: Vec<u8>,
}

impl Raw {
    fn open(file_name: &str) -> Raw {
        let path = format!("/dev/shm/{file_name}");
        let pristine = std::fs::read(&path).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        Raw { file, pristine }
    }

    fn len(&self) -> usize {
        self.pristine.len()
    }

    fn write(&self, offset: usize, bytes: &[u8]) {
        let end = (offset + bytes.len()).min(self.len());
        self.file
            .write_all_at(&bytes[..end - offset], offset as u64)
            .unwrap();
    }

    fn word(&self, offset: usize, width: usize) -> u64 {
        let mut bytes = [0u8; 8];
        bytes[..width].copy_from_slice(&self.pristine[offset..offset + width]);
        u64::from_le_bytes(bytes)
    }

    /// Puts back the original size and bytes.
    fn restore(&self) {
        self.file.set_len(self.len() as u64).unwrap();
        self.file.write_all_at(&self.pristine, 0).unwrap();
    }
}

/// One way of damaging a segment.
#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite `width` bytes at `offset` with `value` (little-endian).
    Word {
        offset: usize,
        width: usize,
        value: u64,
    },
    /// Overwrite single bytes.
    Bytes(Vec<(usize, u8)>),
    /// Change the size of the object.
    Size(u64),
}

impl Mutation {
    fn apply(&self, raw: &Raw) {
        match self {
            Mutation::Word {
                offset,
                width,
                value,
            } => raw.write(*offset, &value.to_le_bytes()[..*width]),
            Mutation::Bytes(bytes) => {
                for &(offset, b) in bytes {
                    raw.write(offset, &[b]);
                }
            }
            Mutation::Size(size) => raw.file.set_len(*size).unwrap(),
        }
    }

    /// True if opening the mutated segment waits for a creator that never finishes (about a
    /// second): a zero magic, or an object too small.
    fn is_slow(&self, header: usize) -> bool {
        match self {
            Mutation::Word {
                offset: 0,
                width: 8,
                value: 0,
            } => true,
            Mutation::Size(size) => *size < header as u64,
            _ => false,
        }
    }
}

/// Every aligned 4-byte and 8-byte word of the segment set to boundary values and to values next
/// to its real one, single bytes flipped, random bursts, and wrong sizes.
fn mutations(raw: &Raw, rng: &mut Rng, random: usize) -> Vec<Mutation> {
    let mut out = Vec::new();
    for offset in (0..raw.len()).step_by(4) {
        let real = raw.word(offset, 4);
        for value in [
            0,
            1,
            2,
            255,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fffe,
            0xffff_ffff,
            real.wrapping_add(1) & 0xffff_ffff,
            real.wrapping_sub(1) & 0xffff_ffff,
            (real << 1) & 0xffff_ffff,
        ] {
            out.push(Mutation::Word {
                offset,
                width: 4,
                value,
            });
        }
    }
    for offset in (0..raw.len()).step_by(8) {
        let real = raw.word(offset, 8);
        for value in [
            0,
            1,
            1 << 32,
            i64::MAX as u64,
            1 << 63,
            u64::MAX,
            real.wrapping_add(1),
            real.wrapping_sub(1),
            real.wrapping_add(1 << 40),
            real.wrapping_sub(1 << 40),
        ] {
            out.push(Mutation::Word {
                offset,
                width: 8,
                value,
            });
        }
    }
    for _ in 0..random {
        let burst = if rng.percent(70) { 1 } else { 16 };
        let count = 1 + rng.below(burst) as usize;
        out.push(Mutation::Bytes(
            (0..count)
                .map(|_| (rng.below(raw.len() as u64) as usize, rng.next_u64() as u8))
                .collect(),
        ));
    }
    for size in [
        0,
        1,
        100,
        raw.len() as u64 - 1,
        raw.len() as u64 + 1,
        1 << 20,
    ] {
        out.push(Mutation::Size(size));
    }
    out
}

/// The errors a damaged segment may give; anything else is a bug.
fn refusal(e: &Error) -> &'static str {
    match e.status() {
        Status::NotShmline => "not shmline",
        Status::VersionMismatch => "version mismatch",
        Status::Corrupt => "corrupt",
        _ => panic!("a damaged segment gave an unexpected error: {e}"),
    }
}

/// Counts of what the opens of damaged segments did.
#[derive(Debug, Default)]
struct Outcomes {
    mutations: u64,
    opened: u64,
    not_shmline: u64,
    version: u64,
    corrupt: u64,
    cli_runs: u64,
}

impl Outcomes {
    fn refused(&mut self, e: &Error) {
        match refusal(e) {
            "not shmline" => self.not_shmline += 1,
            "version mismatch" => self.version += 1,
            _ => self.corrupt += 1,
        }
    }

    fn print(&self, what: &str, seed: u64) {
        let _ = writeln!(
            std::io::stderr(),
            "{what} (seed {seed:#x}): {} mutations: {} opened and used, refused {} as not \
             shmline, {} as another version, {} as corrupt; {} shmline command runs; no panic, no \
             crash",
            self.mutations,
            self.opened,
            self.not_shmline,
            self.version,
            self.corrupt,
            self.cli_runs
        );
    }
}

#[test]
fn event_segments_with_any_field_damaged_are_refused_or_used_without_harm() {
    let seed = base_seed();
    let mut rng = Rng::new(seed);
    let mut outcomes = Outcomes::default();
    for mode in [EventMode::Flag, EventMode::Counting] {
        let name = unique("hostile-event");
        let event = Event::create(
            &name,
            &EventOptions {
                mode,
                unlink_on_close: true,
                ..Default::default()
            },
        )
        .unwrap();
        let raw = Raw::open(&format!("shmline.event.{name}"));
        let mut slow = 0;
        for mutation in mutations(&raw, &mut rng, 2000) {
            if mutation.is_slow(256) {
                slow += 1;
                if slow > 2 {
                    continue;
                }
            }
            raw.restore();
            mutation.apply(&raw);
            outcomes.mutations += 1;
            match Event::open(&name) {
                Ok(opened) => {
                    outcomes.opened += 1;
                    opened.creator();
                    opened.count();
                    opened.set();
                    let _ = opened.try_wait();
                    let _ = opened.wait_timeout(Duration::from_micros(100));
                    opened.clear();
                }
                Err(e) => outcomes.refused(&e),
            }
            // The handle opened before the damage keeps working on whatever it finds (unless the
            // object shrank under it: that is the SIGBUS case, tested on its own).
            if !matches!(mutation, Mutation::Size(s) if s < 256) {
                event.set();
                let _ = event.try_wait();
                let _ = event.wait_timeout(Duration::from_micros(100));
                event.count();
            }
        }
        raw.restore();
    }
    outcomes.print("damaged events", seed);
    assert!(outcomes.opened > 0 && outcomes.corrupt > 0 && outcomes.not_shmline > 0);
}

/// Runs `shmline ARGS`, under the command in `SHMLINE_CLI_WRAPPER` if set (e.g.
/// `valgrind -q --error-exitcode=99`, whose errors then fail the test).
fn shmline(args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_shmline");
    let wrapper = std::env::var("SHMLINE_CLI_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(bin);
            command
        }
        None => Command::new(bin),
    };
    command.args(args).output().unwrap()
}

/// Runs `shmline ARGS` and fails unless it ended by itself with status 0 or 1, without a panic,
/// with JSON on stdout when it succeeded.
fn shmline_survives(args: &[&str], context: &dyn std::fmt::Display) {
    let out = shmline(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)) && !stderr.contains("panicked"),
        "shmline {args:?} on {context}: {}",
        describe(&out)
    );
    if out.status.success() && args.contains(&"--json") {
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines().filter(|l| !l.is_empty()) {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("shmline {args:?}: {e}: {line}"));
        }
    } else if !out.status.success() {
        assert!(stderr.starts_with("shmline "), "no clear message: {stderr}");
    }
}

/// Runs the commands that read a pipeline's registry (and its streams and events).
fn cli_survives(name: &str, context: &dyn std::fmt::Display) {
    shmline_survives(&["ls", "--json"], context);
    shmline_survives(&["ls"], context);
    shmline_survives(
        &["top", name, "--once", "--json", "--interval", "0.05"],
        context,
    );
    shmline_survives(&["top", "--once", "--interval", "0.05"], context);
    shmline_survives(&["clean", "--dry-run", "--json", name], context);
}

/// Reads everything a registry offers.
fn use_registry(registry: &Registry) {
    let info = registry.info();
    let _ = registry.state();
    let _ = registry.failed_task();
    let _ = registry.run_times();
    let _ = registry.runner_alive();
    for i in 0..info.tasks.len() {
        if let Ok(status) = registry.task_status(i) {
            let _ = status.pid();
        }
    }
    for b in &info.bindings {
        assert!(b.task < info.tasks.len());
    }
}

#[test]
fn pipeline_registries_with_any_field_damaged_are_refused_or_read_without_harm() {
    let seed = base_seed();
    let mut rng = Rng::new(seed);
    let name = unique("hostile-registry");
    support::pipeline::leave_a_dead_pipeline(&name);
    let raw = Raw::open(&format!("shmline.pipeline.{name}"));
    let mut outcomes = Outcomes::default();
    let all = mutations(&raw, &mut rng, 3000);
    // The shmline command on a sample of them: every field of the header, and a spread of the
    // rest.
    let cli_every = all.len() / 30;
    let mut slow = 0;
    for (i, mutation) in all.iter().enumerate() {
        if mutation.is_slow(256) {
            slow += 1;
            if slow > 2 {
                continue;
            }
        }
        raw.restore();
        mutation.apply(&raw);
        outcomes.mutations += 1;
        match Registry::open(&name) {
            Ok(registry) => {
                outcomes.opened += 1;
                use_registry(&registry);
            }
            Err(e) => outcomes.refused(&e),
        }
        match Registry::check_dead(&name) {
            Ok(_) => {}
            Err(e) => {
                refusal(&e);
            }
        }
        let header_field = matches!(mutation, Mutation::Word { offset, width: 8, value: u64::MAX } if *offset < 256);
        if header_field || i % cli_every == 0 {
            outcomes.cli_runs += 5;
            cli_survives(&name, &format_args!("a registry damaged by {mutation:?}"));
        }
    }
    raw.restore();
    outcomes.print("damaged pipeline registries", seed);
    assert!(outcomes.opened > 0 && outcomes.corrupt > 0 && outcomes.not_shmline > 0);
    let out = shmline(&["clean", &name]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

/// The live byte ranges of a segment of kind `kind` (what its users write while it runs):
/// registry state and the live half of every task record, stream cursors, reader table and
/// slots, event value and waiters. Everything else is written once, before the magic.
fn live_ranges(kind: &str, raw: &Raw) -> Vec<std::ops::Range<usize>> {
    match kind {
        "pipeline" => {
            let tasks_offset = raw.word(56, 8) as usize;
            let tasks = raw.word(32, 4) as usize;
            std::iter::once(128..256)
                .chain((0..tasks).map(|i| {
                    // A task record is 1152 bytes; from its state (512) on it is live, the
                    // task's note (640..1152) included.
                    let record = tasks_offset + i * 1152;
                    record + 512..record + 1152
                }))
                .collect()
        }
        "stream" => {
            let max_readers = raw.word(36, 4) as usize;
            let slots_offset = raw.word(56, 8) as usize;
            vec![
                256..640,
                640..640 + max_readers * 128,
                slots_offset..raw.len(),
            ]
        }
        _ => std::iter::once(128..256).collect(),
    }
}

/// Puts back the write-once bytes of a segment, leaving its live ranges as they are.
fn restore_write_once(kind: &str, raw: &Raw) {
    let live = live_ranges(kind, raw);
    let mut start = 0;
    let mut ranges = live.clone();
    ranges.sort_by_key(|r| r.start);
    for range in ranges.iter().chain([&(raw.len()..raw.len())]) {
        if range.start > start {
            raw.write(start, &raw.pristine[start..range.start]);
        }
        start = start.max(range.end);
    }
}

#[test]
fn top_and_ls_survive_the_segments_of_a_running_pipeline_being_damaged_under_them() {
    let seed = base_seed();
    let mut rng = Rng::new(seed);
    let name = unique("hostile-live");
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("pipeline.toml");
    Pipeline::new(&name)
        .stream("samples", StreamSpec::bytes(64).capacity(8))
        .task(
            "source",
            support::pipeline::role("role_source")
                .env("FRAMES", u64::MAX.to_string())
                .writes("out", "samples"),
        )
        .task(
            "idle",
            support::pipeline::role("role_idle").reads("input", "samples"),
        )
        .save(&manifest)
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_shmline"));
    command.args(["run", "--quiet", manifest.to_str().unwrap()]);
    let runner = Proc::spawn("shmline run", command);
    wait_until("the pipeline runs", || {
        Registry::open(&name)
            .is_ok_and(|r| r.state().ok() == Some(shmline::pipeline::PipelineState::Running))
    });
    let mut outcomes = Outcomes::default();
    let segments: Vec<(String, Raw)> = segments_of(&name)
        .into_iter()
        .map(|f| {
            let kind = f.split('.').nth(1).unwrap().to_string();
            let raw = Raw::open(&f);
            (kind, raw)
        })
        .collect();
    assert_eq!(segments.len(), 3, "registry, stream and stop event");
    for round in 0..40 {
        for (kind, raw) in &segments {
            for _ in 0..1 + rng.below(6) {
                let ranges = live_ranges(kind, raw);
                let range = &ranges[rng.below(ranges.len() as u64) as usize];
                // Mostly live fields; now and then a write-once one, which the commands must
                // refuse to trust.
                let offset = if rng.percent(90) && range.end > range.start {
                    range.start + rng.below((range.end - range.start) as u64) as usize
                } else {
                    rng.below(raw.len() as u64) as usize
                } & !3;
                let (random, small) = (rng.next_u64(), rng.below(1 << 20));
                let value = rng.pick(&[0, 1, u64::MAX, random, small]);
                let width = rng.pick(&[4usize, 8]);
                raw.write(offset, &value.to_le_bytes()[..width]);
                outcomes.mutations += 1;
            }
        }
        outcomes.cli_runs += 2;
        let context = format_args!("round {round} of live damage");
        shmline_survives(
            &["top", &name, "--once", "--json", "--interval", "0.05"],
            &context,
        );
        shmline_survives(&["ls", "--json"], &context);
        if round % 10 == 9 {
            // Put the write-once parts back so the next rounds see a readable pipeline again.
            for (kind, raw) in &segments {
                restore_write_once(kind, raw);
            }
        }
    }
    outcomes.print("a running pipeline damaged live", seed);
    // The runner survives too: stopped with SIGINT, it ends by itself and removes everything.
    runner.signal(libc::SIGINT);
    let out = runner.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.signal().is_none() && !stderr.contains("panicked"),
        "{}",
        describe(&out)
    );
    assert_eq!(segments_of(&name), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "child role: opens stream HOSTILE_NAME, waits for event HOSTILE_NAME, reads its stats"]
fn role_use_after_shrink() {
    let Ok(name) = std::env::var("HOSTILE_NAME") else {
        return;
    };
    let stream = Stream::open(&name).unwrap();
    let go = Event::open(&name).unwrap();
    println!("opened");
    go.wait_timeout(PATIENCE).unwrap();
    // The stream's object was truncated to nothing: this touches a page past its end.
    let stats = stream.stats();
    println!("RESULT survived=1 frames={}", stats.frames_written);
}

#[test]
fn a_process_that_shrinks_a_segment_makes_the_processes_using_it_die_of_sigbus() {
    // A documented limit of the security model: any process that can open a segment can also
    // truncate it, and then every access to the lost pages raises SIGBUS in its users. (Sealing
    // needs memfd segments passed over a socket, which named POSIX shared memory cannot do.)
    let name = unique("hostile-shrink");
    let _stream = Stream::create(
        &name,
        &StreamOptions {
            max_frame_size: 64,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let go = Event::create(
        &name,
        &EventOptions {
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let user = Proc::role(
        "a stream user",
        "role_use_after_shrink",
        &[("HOSTILE_NAME", name.clone())],
    );
    wait_until("the user opened the stream", || {
        std::fs::read_to_string(format!("/proc/{}/maps", user.pid()))
            .is_ok_and(|m| m.contains(&format!("shmline.stream.{name}")))
    });
    Raw::open(&format!("shmline.stream.{name}"))
        .file
        .set_len(0)
        .unwrap();
    go.set();
    let out = user.wait().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{}",
        describe(&out)
    );
}
