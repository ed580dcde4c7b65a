//! Permissions: segments are owner-only (0600) unless their creator asks for a wider mode, and a
//! process of another user cannot open, read, join or remove them.
//!
//! The other user is this test binary re-run as `nobody`, with its uid, gid and supplementary
//! groups all dropped (root bypasses file permissions, so all three must go). Switching users
//! needs root: run as another user, the tests say so and skip (CI runs them as root).

mod support;

use shmline::{Event, EventOptions, ReaderOptions, Stream, StreamOptions};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use support::*;

/// The uid and gid of user `nobody`.
fn nobody() -> (libc::uid_t, libc::gid_t) {
    // SAFETY: getpwnam takes a NUL-terminated name and returns NULL or a pointer to a static
    // record, read at once (no other thread of this test calls getpw*).
    let entry = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    assert!(!entry.is_null(), "this system has no user `nobody`");
    // SAFETY: `entry` is non-null and points to a valid passwd record.
    let entry = unsafe { &*entry };
    (entry.pw_uid, entry.pw_gid)
}

/// Whether this process can switch users; if not, says why the test is skipped.
fn can_switch_users(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let _ = writeln!(
        std::io::stderr(),
        "{test}: SKIPPED: not running as root, so no process of another user can be made"
    );
    false
}

/// Runs role `role_other_user` as `nobody` against stream and event `name`; returns its RESULT.
fn as_nobody(name: &str, expect: &str) -> HashMap<String, String> {
    let (uid, gid) = nobody();
    let mut command = role_command("role_other_user");
    command.env("PERM_NAME", name).env("PERM_EXPECT", expect);
    // Groups first, then the gid, then the uid (after which nothing else may be changed).
    let become_nobody = move || {
        // SAFETY: setgroups(0, NULL) reads no memory: it clears the supplementary groups.
        let groups = unsafe { libc::setgroups(0, std::ptr::null()) };
        // SAFETY: setgid and setuid take plain ids.
        if groups != 0 || unsafe { libc::setgid(gid) } != 0 || unsafe { libc::setuid(uid) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure runs in the child between fork and exec and only makes async-signal-
    // safe system calls.
    unsafe { command.pre_exec(become_nobody) };
    Proc::spawn("a process of user nobody", command)
        .result()
        .unwrap()
}

/// The status name of an outcome, and its message.
fn status_of<T>(result: shmline::Result<T>) -> (String, String) {
    match result {
        Ok(_) => ("OK".into(), String::new()),
        Err(e) => (e.status().name().into(), e.to_string()),
    }
}

#[test]
#[ignore = "child role: run as another user, tries stream and event PERM_NAME"]
fn role_other_user() {
    let Ok(name) = std::env::var("PERM_NAME") else {
        return;
    };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    // SAFETY: getgid has no preconditions.
    let gid = unsafe { libc::getgid() };
    // SAFETY: getgroups(0, NULL) only counts the groups; it writes nothing.
    let groups = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let (stream, stream_message) = status_of(Stream::open(&name));
    let (event, _) = status_of(Event::open(&name));
    let mut fields = format!(
        "uid={uid} gid={gid} groups={groups} stream={stream} event={event} message={}",
        quoted(&stream_message)
    );
    if std::env::var("PERM_EXPECT").as_deref() == Ok("allowed") {
        // Read the frames the owner writes once we are attached, and signal the event.
        let stream = Stream::open(&name).unwrap();
        let mut reader = stream
            .reader(&ReaderOptions {
                timeout: Some(PATIENCE),
                ..Default::default()
            })
            .unwrap();
        let event = Event::open(&name).unwrap();
        event.set();
        let mut tally = Tally::default();
        let outcome = loop {
            match reader.read() {
                Ok(frame) => tally.record(frame.info.seq, 64, &frame.data),
                Err(e) => break e.status().name(),
            }
        };
        fields.push_str(&format!(" outcome={outcome} {}", tally.fields()));
    } else {
        let (unlink, _) = status_of(Stream::unlink(&name));
        let (remove, _) = status_of(Stream::remove_stale(&name));
        fields.push_str(&format!(" unlink={unlink} remove_stale={remove}"));
    }
    println!("RESULT {fields}");
}

fn stream(name: &str, permissions: u32) -> Stream {
    Stream::create(
        name,
        &StreamOptions {
            max_frame_size: 64,
            permissions,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap()
}

fn event(name: &str, permissions: u32) -> Event {
    Event::create(
        name,
        &EventOptions {
            permissions,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap()
}

/// The permission bits of segment file `file` under /dev/shm.
fn mode_of(file: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(format!("/dev/shm/{file}"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn another_user_can_neither_open_nor_remove_an_owner_only_stream_or_event() {
    if !can_switch_users("another_user_can_neither_open_nor_remove...") {
        return;
    }
    let name = unique("perm-private");
    let _stream = stream(&name, 0o600);
    let _event = event(&name, 0o600);
    assert_eq!(mode_of(&format!("shmline.stream.{name}")), 0o600);
    assert_eq!(mode_of(&format!("shmline.event.{name}")), 0o600);
    let r = as_nobody(&name, "denied");
    let (uid, gid) = nobody();
    assert_eq!(
        (field(&r, "uid"), field(&r, "gid"), field(&r, "groups")),
        (uid as u64, gid as u64, 0),
        "the child really is nobody, without root's groups"
    );
    assert_eq!(r["stream"], "PERMISSION_DENIED", "{r:?}");
    assert_eq!(r["event"], "PERMISSION_DENIED", "{r:?}");
    assert!(r["message"].contains(&name), "{r:?}");
    assert!(r["message"].contains("permission denied"), "{r:?}");
    // /dev/shm is sticky: only the owner may remove a name.
    assert_eq!(r["unlink"], "PERMISSION_DENIED", "{r:?}");
    assert_eq!(r["remove_stale"], "PERMISSION_DENIED", "{r:?}");
    assert!(Stream::open(&name).is_ok());
}

#[test]
fn read_only_access_is_not_enough_to_open_a_stream_or_event() {
    if !can_switch_users("read_only_access_is_not_enough...") {
        return;
    }
    // Readers record their position in the segment, and event waiters register in it: every
    // user of a segment needs read and write access.
    let name = unique("perm-readonly");
    let _stream = stream(&name, 0o644);
    let _event = event(&name, 0o644);
    let r = as_nobody(&name, "denied");
    assert_eq!(r["stream"], "PERMISSION_DENIED", "{r:?}");
    assert_eq!(r["event"], "PERMISSION_DENIED", "{r:?}");
}

#[test]
fn another_user_reads_every_frame_of_a_stream_created_with_mode_0666() {
    if !can_switch_users("another_user_reads_every_frame...") {
        return;
    }
    const FRAMES: u64 = 1000;
    let name = unique("perm-shared");
    let stream = stream(&name, 0o666);
    let event = event(&name, 0o666);
    assert_eq!(mode_of(&format!("shmline.stream.{name}")), 0o666);
    let (uid, gid) = nobody();
    let mut command = role_command("role_other_user");
    command
        .env("PERM_NAME", &name)
        .env("PERM_EXPECT", "allowed")
        .uid(uid)
        .gid(gid);
    // std drops the supplementary groups too when root changes the uid; checked below.
    let child = Proc::spawn("a process of user nobody", command);
    // The child sets the event once its reader is attached.
    event.wait_timeout(PATIENCE).unwrap();
    let mut writer = stream.writer().unwrap();
    for seq in 0..FRAMES {
        writer.write(&frame(seq, 64)).unwrap();
    }
    drop(writer);
    let r = child.result().unwrap();
    assert_eq!(field(&r, "groups"), 0, "{r:?}");
    assert_eq!(r["stream"], "OK", "{r:?}");
    assert_eq!(r["outcome"], "END_OF_STREAM", "{r:?}");
    assert_eq!(field(&r, "frames"), FRAMES, "{r:?}");
    assert_eq!(field(&r, "next"), FRAMES, "{r:?}");
    assert_eq!(
        field(&r, "lost") + field(&r, "duplicated") + field(&r, "torn"),
        0
    );
}
