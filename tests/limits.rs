//! Limits: absurd sizes, a full `/dev/shm`, too many readers, oversized frames and pipelines too
//! big to register all get a specific error that names the problem, and leave nothing half-made
//! behind in `/dev/shm`.

mod support;

use shmline::pipeline::{Pipeline, StreamSpec, TaskSpec};
use shmline::{
    Error, Event, EventOptions, FrameInfo, ReaderOptions, Schema, Status, Stream, StreamOptions,
};
use std::io::Write;
use std::os::unix::process::CommandExt;
use support::*;

fn options(capacity: u32, max_frame_size: u32, max_readers: u32) -> StreamOptions {
    StreamOptions {
        capacity,
        max_frame_size,
        max_readers,
        unlink_on_close: true,
        ..Default::default()
    }
}

/// Creates stream `name` with `options`, expecting error `status` whose message contains `words`,
/// and nothing left in /dev/shm.
fn refused(name: &str, options: &StreamOptions, status: Status, words: &str) -> Error {
    let e = Stream::create(name, options).unwrap_err();
    assert_eq!(e.status(), status, "{options:?}: {e}");
    assert!(
        e.to_string().contains(words),
        "{options:?}: {words:?} not in: {e}"
    );
    assert_eq!(segments_of(name), Vec::<String>::new(), "{options:?}");
    e
}

#[test]
fn absurd_stream_sizes_are_refused_naming_the_parameter_and_leave_nothing_behind() {
    let name = unique("absurd");
    let invalid = Status::InvalidArgument;
    for (capacity, frame, readers, words) in [
        (0, 64, 8, "capacity 0"),
        (3, 64, 8, "power of two"),
        (1 << 25, 64, 8, "capacity 33554432"),
        (u32::MAX, 64, 8, "capacity 4294967295"),
        (64, 0, 8, "max_frame_size"),
        (64, (1 << 30) + 1, 8, "frame size 1073741825"),
        (64, u32::MAX, 8, "frame size 4294967295"),
        (64, 64, 0, "max readers 0"),
        (64, 64, 1025, "max readers 1025"),
        (1 << 24, 1 << 30, 1, "more than the limit"),
        (1 << 16, 1 << 20, 1, "more than the limit"),
    ] {
        refused(&name, &options(capacity, frame, readers), invalid, words);
    }
    for (permissions, words) in [(0o7777, "0o7777"), (0o400, "owner"), (0o044, "owner")] {
        let mut o = options(8, 8, 1);
        o.permissions = permissions;
        refused(&name, &o, invalid, words);
    }
    let mut o = options(8, 0, 1);
    o.schema = Some(Schema::new("<f8", &[1 << 20]).unwrap());
    o.max_frame_size = 16;
    refused(&name, &o, invalid, "smaller than a frame");
    for (dtype, shape, words) in [
        ("<f8", vec![u64::MAX, 2], "absurdly large"),
        ("<f4", vec![1 << 20, 1 << 20], "absurdly large"),
        ("<f4", vec![1; 9], "dimensions"),
        ("<z4", vec![4], "z4"),
    ] {
        let e = Schema::new(dtype, &shape).unwrap_err();
        assert_eq!(e.status(), invalid, "{e}");
        assert!(e.to_string().contains(words), "{words:?} not in: {e}");
    }
    let long = "n".repeat(201);
    refused(&long, &options(8, 8, 1), Status::InvalidName, "200");
    let e = Event::create(&long, &EventOptions::default()).unwrap_err();
    assert_eq!(e.status(), Status::InvalidName);
}

/// Total size of the tmpfs mounted on /dev/shm in bytes, if it is a tmpfs with a size limit.
fn dev_shm_size() -> Option<u64> {
    // SAFETY: an all-zero statfs is a valid out-parameter.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the path is NUL-terminated and `fs` a valid out-pointer.
    if unsafe { libc::statfs(c"/dev/shm".as_ptr(), &mut fs) } != 0 {
        return None;
    }
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    (fs.f_type as i64 == TMPFS_MAGIC && fs.f_blocks > 0).then(|| fs.f_blocks * fs.f_bsize as u64)
}

fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "{test}: SKIPPED: {why}");
}

#[test]
fn a_stream_larger_than_dev_shm_fails_with_no_space_at_creation_and_leaves_nothing_behind() {
    const TEST: &str = "a_stream_larger_than_dev_shm_fails_with_no_space";
    // Asking for more than the whole tmpfs fails at once, before a single page is allocated
    // (Linux refuses such an fallocate up front "to avoid a swapstorm"); asking for a size
    // between the free space and the total would really fill /dev/shm first, so never do that.
    let Some(total) = dev_shm_size() else {
        return skip(TEST, "/dev/shm is not a tmpfs with a size limit");
    };
    let frame = 1u32 << 30;
    let slot = (32 + frame as u64).div_ceil(64) * 64;
    let capacity = (total / slot + 1).next_power_of_two();
    let size = capacity * slot + 4096;
    if size > 64 << 30 || capacity > u32::MAX as u64 {
        return skip(
            TEST,
            &format!("/dev/shm ({total} bytes) is larger than the largest stream (64 GiB)"),
        );
    }
    let name = unique("nospace");
    let before = free_bytes();
    let e = refused(
        &name,
        &options(capacity as u32, frame, 1),
        Status::NoSpace,
        "df -h /dev/shm",
    );
    assert!(e.to_string().contains(&size.to_string()), "{e}");
    // Nothing was allocated on the way.
    assert!(free_bytes() + (64 << 20) >= before, "/dev/shm lost space");
}

/// Free bytes of /dev/shm.
fn free_bytes() -> u64 {
    // SAFETY: as in `dev_shm_size`.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as in `dev_shm_size`.
    assert_eq!(unsafe { libc::statfs(c"/dev/shm".as_ptr(), &mut fs) }, 0);
    fs.f_bfree * fs.f_bsize as u64
}

#[test]
#[ignore = "child role: creates stream LIMIT_NAME of 1 MiB under a 64 KiB file size limit"]
fn role_create_under_a_file_size_limit() {
    let Ok(name) = std::env::var("LIMIT_NAME") else {
        return;
    };
    let e = Stream::create(&name, &options(16, 65536 - 32, 1)).unwrap_err();
    println!(
        "RESULT status={} message={}",
        e.status().name(),
        quoted(&e.to_string())
    );
}

#[test]
fn a_stream_beyond_a_resource_limit_fails_with_no_space_and_leaves_nothing_behind() {
    let name = unique("rlimit");
    let mut command = role_command("role_create_under_a_file_size_limit");
    command.env("LIMIT_NAME", &name);
    // SIGXFSZ is ignored so that the limit shows as an error (EFBIG) instead of killing.
    let limit_file_size = || {
        let limit = libc::rlimit {
            rlim_cur: 64 << 10,
            rlim_max: 64 << 10,
        };
        // SAFETY: `limit` is a valid rlimit that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: SIG_IGN installs no handler of ours.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls.
    unsafe { command.pre_exec(limit_file_size) };
    let r = Proc::spawn("a process with a 64 KiB file size limit", command)
        .result()
        .unwrap();
    assert_eq!(r["status"], "NO_SPACE", "{r:?}");
    assert!(r["message"].contains("reserving"), "{r:?}");
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
#[ignore = "child role: attaches LIMIT_READERS readers to stream LIMIT_NAME, then waits"]
fn role_hold_readers() {
    let Ok(name) = std::env::var("LIMIT_NAME") else {
        return;
    };
    let stream = Stream::open(&name).unwrap();
    let count = env_u64("LIMIT_READERS", 1);
    let _readers: Vec<_> = (0..count)
        .map(|_| stream.reader(&ReaderOptions::default()).unwrap())
        .collect();
    loop {
        std::thread::park();
    }
}

#[test]
fn a_full_reader_table_is_refused_until_the_entries_of_dead_readers_are_reclaimed() {
    let name = unique("readers");
    let stream = Stream::create(&name, &options(8, 8, 2)).unwrap();
    let holder = Proc::role(
        "a process holding two readers",
        "role_hold_readers",
        &[("LIMIT_NAME", name.clone()), ("LIMIT_READERS", "2".into())],
    );
    wait_until("the other process attached its readers", || {
        stream.stats().readers.len() == 2
    });
    let e = stream.reader(&ReaderOptions::default()).unwrap_err();
    assert_eq!(e.status(), Status::TooManyReaders);
    assert!(e.to_string().contains("maximum of 2 live readers"), "{e}");
    assert!(e.to_string().contains("max_readers"), "{e}");
    // A refused attach leaves the table as it was.
    assert_eq!(stream.stats().readers.len(), 2);
    assert_eq!(stream.stats().readers_reclaimed, 0);

    holder.kill();
    let _a = stream.reader(&ReaderOptions::default()).unwrap();
    let _b = stream.reader(&ReaderOptions::default()).unwrap();
    let stats = stream.stats();
    assert_eq!(stats.readers_reclaimed, 2, "{stats:?}");
    assert!(stats.readers.iter().all(|r| r.alive), "{stats:?}");
    assert_eq!(
        stream
            .reader(&ReaderOptions::default())
            .unwrap_err()
            .status(),
        Status::TooManyReaders
    );
}

#[test]
fn oversized_frames_are_refused_before_anything_is_published() {
    let name = unique("oversized");
    let stream = Stream::create(&name, &options(8, 16, 1)).unwrap();
    let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
    let mut writer = stream.writer().unwrap();
    assert!(matches!(
        writer.write(&[7; 17]),
        Err(Error::FrameTooLarge { len: 17, max: 16 })
    ));
    // A batch is checked whole before any of it is written.
    let frames: [&[u8]; 3] = [&[1; 4], &[2; 17], &[3; 4]];
    assert!(matches!(
        writer.write_batch(&frames),
        Err(Error::FrameTooLarge { len: 17, .. })
    ));
    // A commit longer than the slot keeps the reservation, so a correct commit can follow.
    let mut slot = writer.reserve().unwrap();
    slot[..4].copy_from_slice(b"slot");
    drop(slot);
    writer
        .reserve_raw(shmline::__private::Deadline::Now)
        .unwrap();
    assert!(matches!(
        writer.commit_raw(usize::MAX, 0),
        Err(Error::FrameTooLarge { .. })
    ));
    assert!(writer.is_reserved());
    writer.abort_raw();
    assert_eq!(stream.stats().frames_written, 0);
    assert!(matches!(reader.try_read(), Err(Error::Empty)));

    writer.write(&[9; 16]).unwrap();
    let mut small = [0u8; 15];
    assert!(matches!(
        reader.try_read_into(&mut small),
        Err(Error::BufferTooSmall {
            needed: 16,
            available: 15
        })
    ));
    let mut infos = [FrameInfo::default(); 2];
    assert!(matches!(
        reader.try_read_batch(&mut small, &mut infos),
        Err(Error::BufferTooSmall { .. })
    ));
    // The frame that did not fit was not consumed.
    assert_eq!(reader.try_read().unwrap().data, [9; 16]);
}

/// `count` tasks that each only run `true`.
fn many_tasks(mut pipeline: Pipeline, count: usize) -> Pipeline {
    for i in 0..count {
        pipeline = pipeline.task(format!("t{i}"), TaskSpec::command("true"));
    }
    pipeline
}

#[test]
fn a_pipeline_too_big_to_register_fails_before_starting_and_leaves_nothing_behind() {
    let name = unique("pipe-too-many");
    let pipeline = many_tasks(
        Pipeline::new(&name)
            .stream("s", StreamSpec::bytes(8))
            .task(
                "w",
                TaskSpec::command("true")
                    .writes("out", "s")
                    .reads("in", "s"),
            )
            .allow_cycles(true),
        1024,
    );
    let e = pipeline.start().unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument, "{e}");
    assert!(e.to_string().contains("1025 tasks"), "{e}");
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn a_pipeline_whose_second_stream_cannot_be_made_removes_the_first() {
    let Some(total) = dev_shm_size() else {
        return skip(
            "a_pipeline_whose_second_stream_cannot_be_made",
            "/dev/shm is not a tmpfs with a size limit",
        );
    };
    let frame = 1u32 << 30;
    let capacity = (total / (frame as u64 + 64) + 1).next_power_of_two();
    if capacity * (frame as u64 + 64) > 63 << 30 {
        return skip(
            "a_pipeline_whose_second_stream_cannot_be_made",
            "/dev/shm is larger than the largest stream",
        );
    }
    let name = unique("pipe-nospace");
    let pipeline = Pipeline::new(&name)
        .stream("small", StreamSpec::bytes(8))
        .stream("huge", StreamSpec::bytes(frame).capacity(capacity as u32))
        .task(
            "t",
            TaskSpec::command("true")
                .writes("a", "small")
                .reads("b", "small")
                .writes("c", "huge")
                .reads("d", "huge"),
        )
        .allow_cycles(true);
    let e = pipeline.start().unwrap_err();
    assert_eq!(e.status(), Status::NoSpace, "{e}");
    assert!(e.to_string().contains(&format!("{name}.huge")), "{e}");
    assert_eq!(segments_of(&name), Vec::<String>::new());
}
