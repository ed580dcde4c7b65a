//! Stale segments: what a process killed with SIGKILL leaves behind, how `create` reports it,
//! and how `remove_stale` and `shmline clean` recover the name without ever removing a segment
//! that a live process uses.
//!
//! The processes that die are this test binary re-run as one of the ignored `role_*` tests.

#[path = "../../tests/support/mod.rs"]
mod support;

use serde_json::Value;
use shmline::Usage;
use shmline::{Event, EventOptions, ReaderOptions, Status, Stream, StreamOptions, WriterState};
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
        Stream::usage(&name),
        Ok(Usage::InUse { role: "writer", .. })
    ));
    let e = Stream::remove_stale(&name).unwrap_err();
    assert!(e.to_string().contains("writer (pid"), "{e}");
    writer.kill();
    assert!(Stream::remove_stale(&name).unwrap());
    cleanup(&name);
}

/// Waits until child `pid` has exited, without reaping it (it stays a zombie).
fn wait_exited_unreaped(pid: u32) {
    // SAFETY: an all-zero siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child; WNOWAIT leaves it unreaped, so the Proc that owns it still
    // reaps it when dropped; `info` is a valid siginfo_t.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(rc, 0, "waitid: {}", std::io::Error::last_os_error());
}

#[test]
fn segments_whose_users_exited_are_stale_at_once_even_before_anyone_reaps_them() {
    let name = unique("stale-zombie");
    let creator = start("role_creator", &name, &[], || {
        Stream::open(&name).is_ok_and(|s| s.stats().frames_written == 1)
            && Event::open(&name).is_ok()
    });
    creator.signal(libc::SIGKILL);
    wait_exited_unreaped(creator.pid());
    // The creator (and writer) is a zombie now: it uses nothing any more, whoever reaps it and
    // whenever (when its parent died too, init may take its time), so `shmline clean` may go.
    assert!(
        matches!(Stream::usage(&name), Ok(Usage::Stale(_))),
        "{:?}",
        Stream::usage(&name)
    );
    assert!(
        matches!(Event::usage(&name), Ok(Usage::Stale(_))),
        "{:?}",
        Event::usage(&name)
    );
    creator.kill();
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

/// Files that anyone can plant under shmline names and that are not finished shmline segments:
/// a file of foreign bytes, a FIFO, an empty file, a file of zeros (a creator that died before
/// publishing its magic) and a symbolic link. Returns the stream names used, each `base-KIND`.
fn plant_foreign_files(base: &str) -> Vec<String> {
    let path = |kind: &str| format!("/dev/shm/shmline.stream.{base}-{kind}");
    let mut foreign = vec![0u8; 4096];
    let mut rng = Rng::new(base_seed());
    for chunk in foreign.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    // A foreign magic that is never 0 nor the stream magic.
    foreign[..8].copy_from_slice(b"NOTSHMLN");
    std::fs::write(path("random"), &foreign).unwrap();
    mkfifo(&path("fifo"));
    std::fs::write(path("empty"), b"").unwrap();
    std::fs::write(path("zeros"), vec![0u8; 64 * 1024]).unwrap();
    std::fs::write(format!("/tmp/{base}-target"), &foreign).unwrap();
    std::os::unix::fs::symlink(format!("/tmp/{base}-target"), path("link")).unwrap();
    ["random", "fifo", "empty", "zeros", "link"]
        .iter()
        .map(|kind| format!("{base}-{kind}"))
        .collect()
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &str) {
    let path = std::ffi::CString::new(path).unwrap();
    // SAFETY: `path` is a valid NUL-terminated string.
    let rc = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// Removes what [`plant_foreign_files`] planted.
fn remove_foreign_files(base: &str) {
    for name in segments_of(base) {
        let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    }
    let _ = std::fs::remove_file(format!("/tmp/{base}-target"));
}

#[test]
fn remove_stale_leaves_a_foreign_file_a_fifo_an_empty_file_and_a_link_alone_and_says_why() {
    let base = unique("stale-foreign");
    let names = plant_foreign_files(&base);
    let started = Instant::now();
    for name in &names {
        let e = Stream::usage(name).unwrap_err();
        assert_eq!(e.status(), Status::NotShmline, "{name}: {e}");
        let e = Stream::remove_stale(name).unwrap_err();
        assert_eq!(e.status(), Status::NotShmline, "{name}: {e}");
        assert!(
            e.to_string().contains("not a shmline segment: left alone"),
            "{name}: {e}"
        );
    }
    // Judging never waits for a creator that might still be initialising (the open waits 2 s).
    let elapsed = started.elapsed();
    let left = segments_of(&base);
    remove_foreign_files(&base);
    assert_eq!(
        left.len(),
        names.len(),
        "every planted file is still there: {left:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1500),
        "judging {} planted files took {elapsed:?}",
        names.len()
    );
}

#[test]
fn opening_a_fifo_or_a_link_under_a_stream_name_fails_at_once_instead_of_blocking() {
    let base = unique("stale-open-fifo");
    let names = plant_foreign_files(&base);
    let outcomes: Vec<_> = names
        .iter()
        .filter(|n| n.ends_with("-fifo") || n.ends_with("-link"))
        .map(|n| {
            (
                n.clone(),
                Stream::open(n).map(|_| ()),
                Event::open(n).map(|_| ()),
            )
        })
        .collect();
    remove_foreign_files(&base);
    for (name, stream, _) in &outcomes {
        let e = stream.as_ref().unwrap_err();
        assert_eq!(e.status(), Status::NotShmline, "{name}: {e}");
        let what = if name.ends_with("-fifo") {
            "FIFO"
        } else {
            "symbolic link"
        };
        assert!(e.to_string().contains(what), "{name}: {e}");
    }
    assert_eq!(outcomes.len(), 2);
}

#[test]
fn creating_over_a_foreign_file_says_it_is_left_alone_and_how_to_recover() {
    let base = unique("stale-create-foreign");
    let names = plant_foreign_files(&base);
    let e = Stream::create(
        &names[0],
        &StreamOptions {
            max_frame_size: 8,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    remove_foreign_files(&base);
    assert_eq!(e.status(), Status::AlreadyExists, "{e}");
    for hint in ["not a finished shmline stream", "delete it by hand"] {
        assert!(e.to_string().contains(hint), "{hint:?} not in: {e}");
    }
}

#[test]
fn shmline_clean_leaves_files_that_are_not_shmline_segments_alone_and_reports_each() {
    let base = unique("stale-clean-foreign");
    let names = plant_foreign_files(&base);
    // Events and pipeline registries are looked at the same way.
    mkfifo(&format!("/dev/shm/shmline.event.{base}-fifo"));
    std::fs::write(
        format!("/dev/shm/shmline.pipeline.{base}-random"),
        [0x5a; 4096],
    )
    .unwrap();
    let dead = format!("{base}-dead");
    left_behind(&dead, false);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(["clean", "--json", &base])
        .output()
        .unwrap();
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(["clean", "--dry-run", &base])
        .output()
        .unwrap();
    let left = segments_of(&base);
    remove_foreign_files(&base);
    cleanup(&dead);
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut skipped: Vec<(String, String)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["segment"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    skipped.sort();
    let mut expected: Vec<String> = names
        .iter()
        .map(|n| format!("shmline.stream.{n}"))
        .chain([
            format!("shmline.event.{base}-fifo"),
            format!("shmline.pipeline.{base}-random"),
        ])
        .collect();
    expected.sort();
    assert_eq!(
        skipped.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        expected
    );
    for (segment, reason) in &skipped {
        assert!(
            reason.starts_with("not a shmline segment: left alone ("),
            "{segment}: {reason}"
        );
    }
    // The real stale segments of a dead creator are still removed.
    let mut removed: Vec<&str> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["segment"].as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            format!("shmline.event.{dead}"),
            format!("shmline.stream.{dead}")
        ]
    );
    assert_eq!(left, expected, "only the planted files are left");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "skipped /dev/shm/shmline.stream.{base}-fifo: not a shmline segment: left alone"
        )),
        "{text}"
    );
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
