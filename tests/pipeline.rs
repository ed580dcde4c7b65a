//! Pipelines of real processes: the runner, the task side and the registry.
//!
//! The tasks are this test binary re-run as one of the `role_*` ignored tests (see
//! `tests/support/pipeline.rs`).

#[macro_use]
mod support;

use shmline::__private::shm::SegmentKind;
use shmline::pipeline::{
    Cleanup, EventSpec, Outcome, Pipeline, PipelineState, Registry, StreamSpec, Task, TaskExit,
    TaskSpec, TaskState,
};
use shmline::Usage;
use shmline::{Error, ReaderOptions, Schema, StartPosition, Stream, WaitStrategy, WriterOptions};
use std::time::Duration;
use support::pipeline::*;
use support::*;

task_roles!(
    role_source,
    role_scale,
    role_sink,
    role_exit,
    role_idle,
    role_doomed_runner,
    role_tagged_source,
    role_forward,
    role_merge_sink,
);

/// source -> samples -> scale -> doubled -> sink, `frames` frames.
fn three_stages(name: &str, frames: u64) -> Pipeline {
    let frames = frames.to_string();
    Pipeline::new(name)
        .stream("samples", StreamSpec::bytes(FRAME as u32).capacity(16))
        .stream(
            "doubled",
            StreamSpec::bytes(FRAME as u32).capacity(16).checksum(true),
        )
        .task(
            "source",
            role("role_source")
                .env("FRAMES", &frames)
                .writes("out", "samples"),
        )
        .task(
            "scale",
            role("role_scale")
                .reads("input", "samples")
                .writes("out", "doubled"),
        )
        .task(
            "sink",
            role("role_sink")
                .env("FRAMES", &frames)
                .reads("input", "doubled"),
        )
}

#[test]
fn a_three_stage_pipeline_delivers_every_frame_and_ends_by_itself() {
    let name = unique("three");
    let report = three_stages(&name, 20_000).run().unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    for stream in &report.streams {
        assert_eq!(stream.frames, 20_000, "{stream:?}");
        assert_eq!(stream.bytes, 20_000 * FRAME as u64, "{stream:?}");
    }
    for task in &report.tasks {
        assert_eq!(task.exit, Some(TaskExit::Code(0)), "{task:?}");
        assert!(!task.stopped, "{task:?}");
    }
    assert!(report.running > Duration::ZERO);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_writer_that_exits_without_closing_still_ends_its_stream() {
    let name = unique("noclose");
    let mut pipeline = three_stages(&name, 500);
    pipeline.tasks[0]
        .env
        .push(("EXIT_WITHOUT_CLOSE".into(), "1".into()));
    let report = pipeline.run().unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_task_that_exits_3_fails_the_run_by_name_and_the_others_are_stopped() {
    let name = unique("exit3");
    // The source writes for ever (until stopped); the idle task waits for the stop event.
    let pipeline = Pipeline::new(&name)
        .stream("samples", StreamSpec::bytes(FRAME as u32))
        .task(
            "source",
            role("role_source")
                .env("FRAMES", u64::MAX.to_string())
                .writes("out", "samples"),
        )
        .task(
            "failing",
            role("role_exit")
                .env("EXIT_CODE", "3")
                .reads("input", "samples"),
        )
        .task("idle", role("role_idle"));
    let e = pipeline.run().unwrap_err();
    assert!(matches!(e, Error::PipelineFailed(_)), "{e}");
    let message = e.to_string();
    assert!(message.contains("\"failing\""), "{message}");
    assert!(message.contains("exit status 3"), "{message}");
    assert_eq!(segments_of(&name), Vec::<String>::new());

    // The report says the same and shows the others were stopped.
    let report = pipeline.start().unwrap().wait();
    let Outcome::Failed(message) = &report.outcome else {
        panic!("{report:?}")
    };
    assert!(message.contains("\"failing\""), "{message}");
    let by_name = |n: &str| report.tasks.iter().find(|t| t.name == n).unwrap();
    assert_eq!(by_name("failing").exit, Some(TaskExit::Code(3)));
    assert!(!by_name("failing").stopped);
    assert!(by_name("source").stopped);
    assert!(by_name("idle").stopped);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

/// PYTHUSA's merge as a Rust task program: waits until `WAIT_FOR_B` frames are in `b` (when
/// set), then reads one frame of `a` and one of `b` per round until either ends, and ends as
/// `Task::check_inputs_ended` says: status 0, or its message on stderr and status 1.
#[test]
#[ignore = "task role"]
fn role_zip_merge() {
    if std::env::var(shmline::pipeline::ENV_TASK).is_err() {
        return;
    }
    let mut task = Task::join().unwrap();
    let mut a = task.reader("a").unwrap();
    let mut b = task.reader("b").unwrap();
    if let Ok(n) = std::env::var("WAIT_FOR_B") {
        let n: u64 = n.parse().unwrap();
        wait_until("every frame of b", || {
            b.stream().stats().frames_written == n
        });
    }
    'merge: loop {
        for (input, reader) in [("a", &mut a), ("b", &mut b)] {
            match reader.read() {
                Ok(_) => {}
                Err(Error::EndOfStream) => break 'merge,
                Err(e) => panic!("merge: reading {input}: {e}"),
            }
        }
    }
    if let Err(e) = task.check_inputs_ended(&[("a", &a), ("b", &b)]) {
        eprintln!("merge: {e}");
        std::process::exit(1);
    }
}

/// source_a (`frames_a` frames) and source_b (`frames_b`, or idle: never writing nor ending)
/// feed the zip merge, which starts once all of b is written if `b_first` (b's ring has room for
/// 256 frames).
fn zip(name: &str, frames_a: u64, frames_b: Option<u64>, b_first: bool) -> Pipeline {
    let source_b = match frames_b {
        Some(n) => role("role_source").env("FRAMES", n.to_string()),
        None => role("role_idle"),
    };
    let mut merge = role("role_zip_merge").reads("a", "a").reads("b", "b");
    if let (Some(n), true) = (frames_b, b_first) {
        merge = merge.env("WAIT_FOR_B", n.to_string());
    }
    Pipeline::new(name)
        .stream("a", StreamSpec::bytes(FRAME as u32).capacity(16))
        .stream("b", StreamSpec::bytes(FRAME as u32).capacity(256))
        .task("merge", merge)
        .task(
            "source_a",
            role("role_source")
                .env("FRAMES", frames_a.to_string())
                .writes("out", "a"),
        )
        .task("source_b", source_b.writes("out", "b"))
}

#[test]
fn a_task_that_stops_at_one_inputs_end_while_another_has_frames_fails_saying_how_many() {
    let name = unique("zip-unread");
    let report = zip(&name, 20, Some(210), true).run_to_end().unwrap();
    let Outcome::Failed(message) = &report.outcome else {
        panic!("{report:?}")
    };
    assert!(message.contains("task \"merge\" of pipeline"), "{message}");
    assert!(message.contains("exit status 1"), "{message}");
    assert!(
        message.contains(
            "task \"merge\" ended on end of stream of \"a\" while \"b\" still had 190 frames \
             unread"
        ),
        "{message}"
    );
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_task_that_stops_at_one_inputs_end_while_another_goes_on_fails_saying_it_had_not_ended() {
    let name = unique("zip-open");
    let report = zip(&name, 0, None, false).run_to_end().unwrap();
    let Outcome::Failed(message) = &report.outcome else {
        panic!("{report:?}")
    };
    assert!(
        message.contains("ended on end of stream of \"a\" while \"b\" had not ended"),
        "{message}"
    );
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_task_that_stops_at_one_inputs_end_when_every_input_has_ended_finishes() {
    let name = unique("zip-even");
    let report = zip(&name, 300, Some(300), false).run().unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert!(report
        .tasks
        .iter()
        .all(|t| t.exit == Some(TaskExit::Code(0))));
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn lossy_inputs_and_group_members_with_company_count_as_ended_and_plain_readers_do_not() {
    use shmline::pipeline::check_inputs_ended;
    let stream = Stream::create(
        &unique("ending"),
        &shmline::StreamOptions {
            capacity: 8,
            max_frame_size: 8,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let lossy = ReaderOptions {
        lossy: true,
        ..Default::default()
    };
    let member = ReaderOptions {
        group: Some("g".into()),
        ..Default::default()
    };
    let tap = stream.reader(&lossy).unwrap();
    let work = stream.reader(&member).unwrap();
    let other_member = stream.reader(&member).unwrap();
    let mut plain = stream.reader(&ReaderOptions::default()).unwrap();
    let mut writer = stream.writer().unwrap();
    for seq in 0..3u64 {
        writer.write(&seq.to_le_bytes()).unwrap();
    }
    // No such pipeline: the verdict is the same, only the note in the registry is lost.
    let check = |inputs: &[(&str, &shmline::Reader)]| {
        check_inputs_ended("no-such-pipeline", "t", inputs, Duration::ZERO)
    };
    check(&[("tap", &tap)]).unwrap();
    check(&[("work", &work)]).unwrap(); // the other member reads the group's frames
    drop(other_member);
    let e = check(&[("tap", &tap), ("work", &work), ("plain", &plain)]).unwrap_err();
    assert!(matches!(e, Error::WrongState(_)), "{e}");
    assert!(
        e.to_string().contains(
            "task \"t\" ended on end of stream of \"tap\" while \"work\" still had 3 frames \
             unread and \"plain\" still had 3 frames unread"
        ),
        "{e}"
    );
    for _ in 0..3 {
        plain.read().unwrap();
    }
    let e = check(&[("plain", &plain)]).unwrap_err();
    assert!(e.to_string().contains("\"plain\" had not ended"), "{e}");
    drop(writer);
    check(&[("plain", &plain)]).unwrap();
    let e = check(&[("plain", &plain), ("work", &work)]).unwrap_err();
    assert!(
        e.to_string()
            .contains("end of stream of \"plain\" while \"work\" still had 3 frames unread"),
        "{e}"
    );
}

#[test]
fn a_command_that_does_not_exist_is_reported_with_the_task_and_the_command() {
    let name = unique("nocmd");
    let pipeline = Pipeline::new(&name).task("idle", role("role_idle")).task(
        "ghost",
        TaskSpec::command("/nonexistent/shmline-no-such-program"),
    );
    let e = pipeline.run().unwrap_err();
    let message = e.to_string();
    assert!(message.contains("\"ghost\""), "{message}");
    assert!(
        message.contains("/nonexistent/shmline-no-such-program"),
        "{message}"
    );
    assert!(message.contains("not found"), "{message}");
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_task_that_never_joins_times_out_naming_it() {
    let name = unique("nojoin");
    let pipeline = Pipeline::new(&name)
        .join_timeout(Duration::from_secs(1))
        .stream("s", StreamSpec::bytes(8))
        .task(
            "sleeper",
            TaskSpec::command("sleep").arg("600").writes("out", "s"),
        )
        .task("sink", role("role_sink").reads("input", "s"));
    let e = pipeline.run().unwrap_err();
    assert!(matches!(e, Error::PipelineFailed(_)), "{e}");
    let message = e.to_string();
    assert!(message.contains("\"sleeper\""), "{message}");
    assert!(message.contains("never joined"), "{message}");
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_name_used_by_a_live_pipeline_is_refused() {
    let name = unique("live");
    let first = doomed_pipeline(&name).start().unwrap();
    let e = doomed_pipeline(&name).start().unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    assert!(e.to_string().contains("already running"), "{e}");
    let report = first.wait_after_stop();
    assert_eq!(report.outcome, Outcome::Stopped { signal: None });
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

/// Stops a run and waits for it.
trait StopAndWait {
    fn wait_after_stop(self) -> shmline::pipeline::RunReport;
}

impl StopAndWait for shmline::pipeline::PipelineRun {
    fn wait_after_stop(self) -> shmline::pipeline::RunReport {
        self.stop();
        self.wait()
    }
}

#[test]
fn segments_left_by_a_dead_runner_are_recovered_by_the_next_run() {
    let name = unique("dead");
    leave_a_dead_pipeline(&name);
    let left = segments_of(&name);
    assert!(
        left.contains(&format!("shmline.pipeline.{name}")) && left.len() == 4,
        "{left:?}"
    );
    let run = doomed_pipeline(&name).start().unwrap();
    assert_eq!(
        run.wait_after_stop().outcome,
        Outcome::Stopped { signal: None }
    );
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_stream_a_live_reader_still_uses_is_not_stale_though_its_runner_died() {
    let name = unique("deaduse");
    leave_a_dead_pipeline(&name);
    let segment = format!("{name}.s");
    let stream = Stream::open(&segment).unwrap();
    let reader = stream.reader(&ReaderOptions::default()).unwrap();
    let Cleanup::Dead(stale) = Registry::check_dead(&name).unwrap() else {
        panic!("the runner was killed, yet its registry says it is alive");
    };
    let kinds = |kind| {
        stale
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
    };
    // The registry and both events (the declared one and the stop event) are the dead runner's
    // alone; the stream has a live reader (this process).
    assert_eq!(kinds(SegmentKind::Pipeline), [name.as_str()]);
    assert_eq!(kinds(SegmentKind::Event).len(), 2, "{stale:?}");
    assert_eq!(kinds(SegmentKind::Stream), Vec::<&str>::new(), "{stale:?}");
    assert!(matches!(
        Stream::usage(&segment),
        Ok(Usage::InUse { role: "reader", .. })
    ));

    // Once its last user is gone the stream is stale too, and the dead pipeline is recovered whole.
    drop(reader);
    drop(stream);
    let Cleanup::Dead(removed) = Registry::remove_if_dead(&name).unwrap() else {
        panic!("the runner was killed, yet its registry says it is alive");
    };
    assert!(
        removed.contains(&(SegmentKind::Stream, segment)),
        "{removed:?}"
    );
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_task_joins_by_name_and_gets_its_handles_by_parameter() {
    let name = unique("joinas");
    // Task "me" is this test process: the runner starts `sleep` for it, and we join in its place.
    let pipeline = Pipeline::new(&name)
        .stream("samples", StreamSpec::bytes(FRAME as u32))
        .event("go", EventSpec::counting())
        .task(
            "me",
            TaskSpec::command("sleep")
                .arg("600")
                .writes("out", "samples")
                .event("go", "go"),
        )
        .task(
            "peer",
            role("role_sink")
                .env("FRAMES", "3")
                .env("SCALED", "0")
                .reads("input", "samples"),
        );
    let run = pipeline.start().unwrap();
    let mut task = Task::join_as(&name, "me").unwrap();
    assert_eq!(task.name(), "me");
    assert_eq!(task.pipeline(), name);

    let e = task.reader("out").unwrap_err();
    assert!(e.to_string().contains("no reads parameter \"out\""), "{e}");
    let e = task.writer("nope").unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(
        e.to_string().contains("its writes parameters are: out"),
        "{e}"
    );
    let go = task.event("go").unwrap();
    assert!(matches!(task.event("go"), Err(Error::WrongState(_))));
    go.set();
    assert!(!task.stop_requested());

    // The registry describes the pipeline while it runs.
    let registry = Registry::open(&name).unwrap();
    assert_eq!(registry.state().unwrap(), PipelineState::Running);
    assert!(registry.runner_alive());
    let info = registry.info();
    assert_eq!(info.streams[0].segment, format!("{name}.samples"));
    assert_eq!(info.streams[0].writer_task, Some(0));
    assert_eq!(info.streams[0].reader_tasks, vec![1]);
    assert_eq!(info.events[0].name, "go");
    assert!(info.tasks[0].command.starts_with("sleep 600"));
    let me = registry.task_status(0).unwrap();
    assert_eq!(me.state, TaskState::Joined);
    assert_eq!(me.joined.unwrap().pid, std::process::id());
    assert_ne!(me.process.unwrap().pid, std::process::id());
    assert!(matches!(
        Task::join_as(&name, "me"),
        Err(Error::WrongState(_))
    ));
    let e = Task::join_as(&name, "nobody").unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(e.to_string().contains("its tasks are: me, peer"), "{e}");

    // Frames we write reach the peer, which finishes once we close the stream. The writer was
    // attached at join; options given when taking it apply from then on.
    let options = WriterOptions {
        wait: WaitStrategy::Block,
        timeout: Some(PATIENCE),
    };
    let mut out = task.writer_with("out", &options).unwrap();
    assert!(matches!(
        task.writer_with("out", &options),
        Err(Error::WrongState(_))
    ));
    for seq in 0..3 {
        out.write(&payload(seq)).unwrap();
    }
    drop(out);
    wait_until("the peer to finish", || {
        registry.task_status(1).unwrap().exit.is_some()
    });
    assert_eq!(
        registry.task_status(1).unwrap().exit,
        Some(TaskExit::Code(0))
    );

    // Stopping sets the stop event the tasks can watch.
    let report = run.wait_after_stop();
    assert!(task.stop_requested());
    assert_eq!(report.outcome, Outcome::Stopped { signal: None });
    let peer = &report.tasks[1];
    assert_eq!((peer.exit, peer.stopped), (Some(TaskExit::Code(0)), false));
    assert!(report.tasks[0].stopped);
    drop(task);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn reader_options_given_when_a_task_takes_its_reader_are_checked_and_applied() {
    let name = unique("ropts");
    // Task "me" is this test process (the runner starts `sleep` for it); "peer" writes 3 frames.
    let pipeline = Pipeline::new(&name)
        .stream("samples", StreamSpec::array("|u1", &[FRAME as u64]))
        .task(
            "me",
            TaskSpec::command("sleep")
                .arg("600")
                .reads("input", "samples"),
        )
        .task(
            "peer",
            role("role_source")
                .env("FRAMES", "3")
                .writes("out", "samples"),
        );
    let run = pipeline.start().unwrap();
    let mut task = Task::join_as(&name, "me").unwrap();
    let lossy = ReaderOptions {
        lossy: true,
        ..Default::default()
    };
    let e = task.reader_with("input", &lossy).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    let wrong = ReaderOptions {
        require_schema: Some(Schema::new("<f4", &[FRAME as u64]).unwrap()),
        ..Default::default()
    };
    let e = task.reader_with("input", &wrong).unwrap_err();
    assert!(matches!(e, Error::SchemaMismatch(_)), "{e}");
    let e = task.reader_with("nope", &wrong).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    // Refused twice, the reader is still there; it was attached at join, so it starts at the
    // first frame whatever `start` says, and the timeout applies.
    let right = ReaderOptions {
        require_schema: Some(Schema::new("|u1", &[FRAME as u64]).unwrap()),
        start: StartPosition::Newest,
        wait: WaitStrategy::Block,
        timeout: Some(PATIENCE),
        ..Default::default()
    };
    let mut input = task.reader_with("input", &right).unwrap();
    for seq in 0..3 {
        let frame = input.read().unwrap();
        assert_eq!(frame.info.seq, seq);
        assert_eq!(frame.data, payload(seq));
    }
    assert!(matches!(input.read(), Err(Error::EndOfStream)));
    assert!(matches!(
        task.reader_with("input", &right),
        Err(Error::WrongState(_))
    ));
    let report = run.wait_after_stop();
    assert_eq!(report.outcome, Outcome::Stopped { signal: None });
    drop((input, task));
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_task_outside_a_pipeline_is_told_how_to_join() {
    let e = Task::join_as(&unique("absent"), "t").unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(e.to_string().contains("is not running"), "{e}");
    if std::env::var(shmline::pipeline::ENV_PIPELINE).is_err() {
        let e = Task::join().unwrap_err();
        assert!(e.to_string().contains("SHMLINE_PIPELINE"), "{e}");
    }
}

#[test]
fn the_streams_of_a_running_pipeline_can_be_watched() {
    let name = unique("watch");
    let mut run = three_stages(&name, 2000).start().unwrap();
    let names: Vec<&str> = run.streams().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["samples", "doubled"]);
    let opened = Stream::open(&format!("{name}.doubled")).unwrap();
    assert_eq!(opened.info().capacity, 16);
    while !run.wait_timeout(Duration::from_millis(10)) {}
    let report = run.wait();
    assert_eq!(report.outcome, Outcome::Finished);
    assert_eq!(opened.stats().frames_written, 2000);
}

// ---- Fan-in (several writing tasks) and work sharing (reader groups) ----

/// Two tagged sources (`frames_a` and `frames_b` frames) writing stream "merged", read by a sink
/// that checks every frame of both arrived once and in each source's order.
fn two_writers(name: &str, frames_a: u64, frames_b: u64) -> Pipeline {
    Pipeline::new(name)
        .stream("merged", StreamSpec::bytes(FRAME as u32).capacity(16))
        .task(
            "a",
            role("role_tagged_source")
                .env("SOURCE", "0")
                .env("FRAMES", frames_a.to_string())
                .writes("out", "merged"),
        )
        .task(
            "b",
            role("role_tagged_source")
                .env("SOURCE", "1")
                .env("FRAMES", frames_b.to_string())
                .writes("out", "merged"),
        )
        .task(
            "sink",
            role("role_merge_sink")
                .env("EXPECT", format!("0:{frames_a},1:{frames_b}"))
                .env("ORDERED", "1")
                .reads("input", "merged"),
        )
}

#[test]
fn two_writer_tasks_feed_one_sink_that_sees_every_frame_of_both() {
    let name = unique("twowriters");
    // b finishes long before a: the stream must not end with it.
    let report = two_writers(&name, 20_000, 300).run().unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert_eq!(report.streams[0].frames, 20_300, "{:?}", report.streams);
    assert_eq!(report.streams[0].bytes, 20_300 * FRAME as u64);
    assert!(report
        .tasks
        .iter()
        .all(|t| t.exit == Some(TaskExit::Code(0))));
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_stream_of_several_writer_tasks_ends_after_the_last_even_if_none_closed() {
    let name = unique("twonoclose");
    let mut pipeline = two_writers(&name, 3000, 200);
    for task in &mut pipeline.tasks[..2] {
        task.env.push(("EXIT_WITHOUT_CLOSE".into(), "1".into()));
    }
    let report = pipeline.run().unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    assert_eq!(report.streams[0].frames, 3200);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn the_registry_lists_every_writer_task_and_the_group_of_every_reader() {
    let name = unique("groupreg");
    // Nobody joins (the tasks sleep): the registry is read while the pipeline starts.
    let sleeper = || TaskSpec::command("sleep").arg("600");
    let pipeline = Pipeline::new(&name)
        .join_timeout(PATIENCE * 10)
        .stream("samples", StreamSpec::bytes(8))
        .stream("merged", StreamSpec::bytes(8))
        .task("source", sleeper().writes("out", "samples"))
        .task(
            "w0",
            sleeper()
                .reads_group("input", "samples", "workers")
                .writes("out", "merged"),
        )
        .task(
            "w1",
            sleeper()
                .reads_group("input", "samples", "workers")
                .writes("out", "merged"),
        )
        .task(
            "sink",
            sleeper().reads("input", "merged").reads("tap", "samples"),
        );
    let run = pipeline.start().unwrap();
    let registry = Registry::open(&name).unwrap();
    let info = registry.info();
    assert_eq!(info.streams[1].writer_tasks, vec![1, 2]);
    assert_eq!(info.streams[1].max_writers, 2);
    assert_eq!(info.streams[0].writer_tasks, vec![0]);
    assert_eq!(info.streams[0].max_writers, 1);
    assert_eq!(info.streams[0].reader_tasks, vec![1, 2, 3]);
    let reads: Vec<(usize, &str, Option<&str>)> = info
        .bindings
        .iter()
        .filter(|b| b.kind == shmline::pipeline::BindingKind::Read)
        .map(|b| (b.task, b.param.as_str(), b.group.as_deref()))
        .collect();
    assert_eq!(
        reads,
        [
            (1, "input", Some("workers")),
            (2, "input", Some("workers")),
            (3, "input", None),
            (3, "tap", None),
        ]
    );
    // The stream segment was created for both writers.
    let merged = Stream::open(&format!("{name}.merged")).unwrap();
    assert_eq!(merged.info().max_writers, 2);
    drop(merged);
    assert_eq!(
        run.wait_after_stop().outcome,
        Outcome::Stopped { signal: None }
    );
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn each_stream_has_room_for_every_group_reading_it_and_at_least_the_default_four() {
    let name = unique("maxgroups");
    // Nobody joins (the tasks sleep): the streams exist from the start.
    let sleeper = || TaskSpec::command("sleep").arg("600");
    let mut pipeline = Pipeline::new(&name)
        .join_timeout(PATIENCE * 10)
        .stream("samples", StreamSpec::bytes(8))
        .stream("merged", StreamSpec::bytes(8))
        .task("source", sleeper().writes("out", "samples"))
        .task("sink", sleeper().reads("input", "merged"));
    // Six groups of one task each read samples; no group reads merged.
    for g in 0..6 {
        pipeline = pipeline.task(
            format!("w{g}"),
            sleeper()
                .reads_group("input", "samples", format!("g{g}"))
                .writes("out", "merged"),
        );
    }
    let run = pipeline.start().unwrap();
    let max_groups = |stream: &str| {
        Stream::open(&format!("{name}.{stream}"))
            .unwrap()
            .info()
            .max_groups
    };
    assert_eq!(max_groups("samples"), 6);
    assert_eq!(
        max_groups("merged"),
        4,
        "no group declared: the library default"
    );
    assert_eq!(
        run.wait_after_stop().outcome,
        Outcome::Stopped { signal: None }
    );
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_group_of_two_tasks_shares_the_frames_each_exactly_once() {
    let name = unique("group2");
    let frames = 20_000u64;
    let pipeline = Pipeline::new(&name)
        .stream("samples", StreamSpec::bytes(FRAME as u32).capacity(16))
        .stream("merged", StreamSpec::bytes(FRAME as u32).capacity(16))
        .task(
            "source",
            role("role_tagged_source")
                .env("FRAMES", frames.to_string())
                .writes("out", "samples"),
        )
        .task(
            "w0",
            role("role_forward")
                .reads_group("input", "samples", "workers")
                .writes("out", "merged"),
        )
        .task(
            "w1",
            role("role_forward")
                .reads_group("input", "samples", "workers")
                .writes("out", "merged"),
        )
        // Each frame once through the group, in any order...
        .task(
            "sink",
            role("role_merge_sink")
                .env("EXPECT", format!("0:{frames}"))
                .reads("input", "merged"),
        )
        // ...while a plain reader of the same stream still gets every frame, in order.
        .task(
            "tap",
            role("role_merge_sink")
                .env("EXPECT", format!("0:{frames}"))
                .env("ORDERED", "1")
                .reads("input", "samples"),
        );
    let report = pipeline.run().unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    let frames_of = |stream: &str| {
        report
            .streams
            .iter()
            .find(|s| s.name == stream)
            .unwrap()
            .frames
    };
    assert_eq!(frames_of("samples"), frames);
    assert_eq!(frames_of("merged"), frames, "each frame through one member");
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_task_joining_by_name_gets_a_group_reader_of_its_declared_group() {
    let name = unique("groupjoin");
    // Task "me" is this test process, the group's only member; "peer" writes 3 frames.
    let pipeline = Pipeline::new(&name)
        .stream("samples", StreamSpec::bytes(FRAME as u32))
        .task(
            "me",
            TaskSpec::command("sleep")
                .arg("600")
                .reads_group("input", "samples", "workers"),
        )
        .task(
            "peer",
            role("role_source")
                .env("FRAMES", "3")
                .writes("out", "samples"),
        );
    let run = pipeline.start().unwrap();
    let mut task = Task::join_as(&name, "me").unwrap();
    assert_eq!(task.reader_group("input"), Some("workers"));
    assert_eq!(task.reader_group("nope"), None);
    let other = ReaderOptions {
        group: Some("others".into()),
        ..Default::default()
    };
    let e = task.reader_with("input", &other).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("reader group \"workers\""), "{e}");
    let same = ReaderOptions {
        group: Some("workers".into()),
        wait: WaitStrategy::Block,
        timeout: Some(PATIENCE),
        ..Default::default()
    };
    let mut input = task.reader_with("input", &same).unwrap();
    for seq in 0..3 {
        assert_eq!(input.read().unwrap().data, payload(seq));
    }
    assert!(matches!(input.read(), Err(Error::EndOfStream)));
    assert_eq!(
        run.wait_after_stop().outcome,
        Outcome::Stopped { signal: None }
    );
    drop((input, task));
    assert_eq!(segments_of(&name), Vec::<String>::new());
}
