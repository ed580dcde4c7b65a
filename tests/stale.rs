//! Stale segments: what a process killed with SIGKILL leaves behind, how `create` reports it,
//! and how `remove_stale` and `shmline clean` recover the name without ever removing a segment
//! that a live process uses.
//!
//! The processes that die are this test binary re-run as one of the ignored `role_*` tests.

mod support;

use serde_json::Value;
use shmline::stale::{stream_usage, Usage};
use shmline::{
    Error, Event, EventOptions, ReaderOptions, Status, Stream, StreamOptions, WriterState,
};
use std::time::{Duration, Instant};
use support::*;

/// Parks the calling process for ever (until the test kills it).
fn park() -> ! {
    loop {
        std::thread::park();
    }
}

#[test]
#[ignore = "child role: creates stream and event STALE_NAME (kept after exit), writes a frame \
            unless STALE_NO_WRITER is set, then waits"]
fn role_creator() {
    let Ok(name) = std::env::var("STALE_NAME") else {
        return;
    };
    let stream = Stream::create(
        &name,
        &StreamOptions {
            max_frame_size: 64,
            ..Default::default()
        },
    )
    .unwrap();
    let _event = Event::create(&name, &EventOptions::default()).unwrap();
    let _writer = std::env::var_os("STALE_NO_WRITER").is_none().then(|| {
        let mut writer = stream.writer().unwrap();
        writer.write(b"before the crash").unwrap();
        writer
    });
    park();
}

#[test]
#[ignore = "child role: attaches the writer of stream STALE_NAME, then waits"]
fn role_writer() {
    let Ok(name) = std::env::var("STALE_NAME") else {
        return;
    };
    let stream = Stream::open(&name).unwrap();
    let _writer = stream.writer().unwrap();
    park();
}

/// Runs `role` for segment `name` (with `env` added) and waits until `ready` says it did its part.
fn start(role: &str, name: &str, env: &[(&str, String)], ready: impl FnMut() -> bool) -> Proc {
    let mut env = env.to_vec();
    env.push(("STALE_NAME", name.to_string()));
    let child = Proc::role(role, role, &env);
    wait_until(&format!("{role} is ready"), ready);
    child
}

/// A stream (whose writer wrote one frame, if `with_writer`) and an event named `name`, made by a
/// process that was then killed with SIGKILL.
fn left_behind(name: &str, with_writer: bool) {
    let env = if with_writer {
        vec![]
    } else {
        vec![("STALE_NO_WRITER", "1".to_string())]
    };
    let creator = start("role_creator", name, &env, || {
        Stream::open(name).is_ok_and(|s| !with_writer || s.stats().frames_written == 1)
            && Event::open(name).is_ok()
    });
    creator.kill();
}

/// Removes the segments of `name` whatever state the test left them in.
fn cleanup(name: &str) {
    let _ = Stream::unlink(name);
    let _ = Event::unlink(name);
}

#[test]
fn creating_a_stream_left_by_a_killed_process_says_how_to_recover_and_remove_stale_does() {
    let name = unique("stale-stream");
    left_behind(&name, true);
    let options = StreamOptions {
        max_frame_size: 64,
        unlink_on_close: true,
        ..Default::default()
    };
    let e = Stream::create(&name, &options).unwrap_err();
    assert_eq!(e.status(), Status::AlreadyExists, "{e}");
    let message = e.to_string();
    for hint in [
        "left behind",
        "dead",
        "Stream::remove_stale",
        "shmline clean",
    ] {
        assert!(message.contains(hint), "{hint:?} not in: {message}");
    }
    // Rust callers are told the Rust call; the C boundary renames it for C (and its bindings).
    assert!(
        !message.contains("shmline_stream_remove_stale"),
        "{message}"
    );
    // What the dead writer published is still there until the name is removed.
    let stale = Stream::open(&name).unwrap();
    assert_eq!(stale.stats().frames_written, 1);
    assert_eq!(stale.stats().writer_state, WriterState::Dead);

    assert!(Stream::remove_stale(&name).unwrap());
    assert!(
        !Stream::remove_stale(&name).unwrap(),
        "nothing left to remove"
    );
    let fresh = Stream::create(&name, &options).unwrap();
    assert_eq!(fresh.stats().frames_written, 0);
    // The old mapping still works for whoever holds it; it is just no longer reachable by name.
    assert_eq!(stale.stats().frames_written, 1);

    let e = Stream::remove_stale(&name).unwrap_err();
    assert_eq!(e.status(), Status::AlreadyExists);
    assert!(
        e.to_string()
            .contains(&format!("creator (pid {})", std::process::id())),
        "{e}"
    );
    let e = Stream::create(&name, &options).unwrap_err();
    assert!(e.to_string().contains("in use by its creator"), "{e}");
    cleanup(&name);
}

#[test]
fn a_stream_whose_creator_died_is_never_removed_while_a_live_reader_or_writer_uses_it() {
    let name = unique("stale-in-use");
    left_behind(&name, false);
    let stream = Stream::open(&name).unwrap();

    let reader = stream.reader(&ReaderOptions::default()).unwrap();
    let e = Stream::remove_stale(&name).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("reader (pid {})", std::process::id())),
        "{e}"
    );
    drop(reader);

    let writer = start("role_writer", &name, &[], || {
        stream.stats().writer_state == WriterState::Active
    });
    assert!(matches!(
        stream_usage(&name),
        Ok(Usage::InUse { role: "writer", .. })
    ));
    let e = Stream::remove_stale(&name).unwrap_err();
    assert!(e.to_string().contains("writer (pid"), "{e}");
    writer.kill();
    assert!(Stream::remove_stale(&name).unwrap());
    cleanup(&name);
}

#[test]
fn an_event_left_by_a_killed_process_is_recovered_and_a_live_ones_is_refused() {
    let name = unique("stale-event");
    left_behind(&name, false);
    Stream::remove_stale(&name).unwrap();
    let options = EventOptions {
        unlink_on_close: true,
        ..Default::default()
    };
    let e = Event::create(&name, &options).unwrap_err();
    assert!(e.to_string().contains("Event::remove_stale"), "{e}");
    assert!(Event::remove_stale(&name).unwrap());
    let _event = Event::create(&name, &options).unwrap();
    let e = Event::remove_stale(&name).unwrap_err();
    assert_eq!(e.status(), Status::AlreadyExists);
    assert!(Event::open(&name).is_ok(), "a live event is never removed");
    cleanup(&name);
}

#[test]
fn a_segment_whose_creator_never_finished_it_is_stale() {
    let name = unique("stale-unfinished");
    // A creator that died between shm_open and initialising the header leaves a file of zeros
    // (or one too small to be a stream).
    std::fs::write(format!("/dev/shm/shmline.stream.{name}"), [0u8; 100]).unwrap();
    let started = Instant::now();
    assert!(matches!(stream_usage(&name), Ok(Usage::Stale(_))));
    // Judging it means waiting for a creator that might still be initialising it.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(Stream::remove_stale(&name).unwrap());
    assert!(matches!(Stream::open(&name), Err(Error::NotFound(_))));
}

#[test]
fn shmline_clean_removes_only_the_segments_no_live_process_uses() {
    let base = unique("stale-clean");
    let dead = format!("{base}-dead");
    let live = format!("{base}-live");
    left_behind(&dead, true);
    let _stream = Stream::create(
        &live,
        &StreamOptions {
            max_frame_size: 8,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let _event = Event::create(
        &live,
        &EventOptions {
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(["clean", "--json", &base])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let segments = |key: &str| -> Vec<String> {
        let mut v: Vec<String> = report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["segment"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        segments("removed"),
        [
            format!("shmline.event.{dead}"),
            format!("shmline.stream.{dead}")
        ]
    );
    assert_eq!(
        segments("kept"),
        [
            format!("shmline.event.{live}"),
            format!("shmline.stream.{live}")
        ]
    );
    assert_eq!(
        segments_of(&base),
        [
            format!("shmline.event.{live}"),
            format!("shmline.stream.{live}")
        ]
    );
}
