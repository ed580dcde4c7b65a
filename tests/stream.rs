//! Single-process behaviour of streams: every rule a writer and its readers follow.

mod support;

use shmline::{
    Error, ReaderOptions, Schema, StartPosition, Status, Stream, StreamOptions, WaitStrategy,
};
use std::time::Duration;
use support::unique;

fn stream(tag: &str, capacity: u32, max_frame: u32) -> Stream {
    Stream::create(
        &unique(tag),
        &StreamOptions {
            capacity,
            max_frame_size: max_frame,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn a_reader_registered_before_the_first_write_sees_every_frame_in_order() {
    let s = stream("order", 8, 64);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    for round in 0..10u64 {
        for i in 0..8u64 {
            w.write(&(round * 8 + i).to_le_bytes()).unwrap();
        }
        for i in 0..8u64 {
            let f = r.read().unwrap();
            assert_eq!(f.info.seq, round * 8 + i);
            assert_eq!(f.data, (round * 8 + i).to_le_bytes());
        }
    }
}

#[test]
fn the_writer_reports_full_when_the_slowest_reader_is_a_ring_behind() {
    let s = stream("full", 4, 16);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    for i in 0..4u8 {
        w.try_write(&[i]).unwrap();
    }
    assert!(matches!(w.try_write(&[9]), Err(Error::Full)));
    assert!(matches!(
        w.write_timeout(&[9], Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert_eq!(r.read().unwrap().data, [0]);
    w.try_write(&[4]).unwrap();
    let stats = s.stats();
    assert_eq!(stats.frames_written, 5);
    assert!(stats.writer_waits >= 1);
}

#[test]
fn closing_the_writer_lets_readers_drain_then_reports_end_of_stream() {
    let s = stream("eos", 8, 16);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    w.write(b"a").unwrap();
    w.write(b"b").unwrap();
    drop(w);
    assert_eq!(r.read().unwrap().data, b"a");
    assert_eq!(r.read().unwrap().data, b"b");
    assert!(matches!(r.read(), Err(Error::EndOfStream)));
    assert!(matches!(r.try_read(), Err(Error::EndOfStream)));
}

#[test]
fn a_lossy_reader_never_holds_the_writer_back_and_counts_what_it_missed() {
    let s = stream("lossy", 4, 16);
    let mut r = s
        .reader(&ReaderOptions {
            lossy: true,
            ..Default::default()
        })
        .unwrap();
    let mut w = s.writer().unwrap();
    for i in 0..10u64 {
        w.try_write(&i.to_le_bytes()).unwrap();
    }
    let f = r.read().unwrap();
    assert!(f.info.missed > 0);
    assert_eq!(f.info.seq, f.info.missed);
    assert_eq!(f.data, f.info.seq.to_le_bytes());
    let mut last = f.info.seq;
    while let Ok(f) = r.try_read() {
        assert_eq!(f.info.seq, last + 1);
        last = f.info.seq;
    }
    assert_eq!(last, 9);
    assert!(matches!(r.acquire(), Err(e) if e.status() == Status::Unsupported));
}

#[test]
fn late_readers_start_at_the_newest_or_the_oldest_frame_as_asked() {
    let s = stream("late", 8, 16);
    let mut w = s.writer().unwrap();
    for i in 0..20u64 {
        w.write(&i.to_le_bytes()).unwrap();
    }
    let mut newest = s
        .reader(&ReaderOptions {
            start: StartPosition::Newest,
            ..Default::default()
        })
        .unwrap();
    let mut oldest = s
        .reader(&ReaderOptions {
            start: StartPosition::Oldest,
            ..Default::default()
        })
        .unwrap();
    let mut next = s.reader(&ReaderOptions::default()).unwrap();
    assert_eq!(newest.read().unwrap().info.seq, 19);
    let first_old = oldest.read().unwrap().info.seq;
    assert!(
        (12..=19).contains(&first_old),
        "oldest started at {first_old}"
    );
    assert!(matches!(next.try_read(), Err(Error::Empty)));
    w.write(&20u64.to_le_bytes()).unwrap();
    assert_eq!(next.read().unwrap().info.seq, 20);
}

#[test]
fn zero_copy_reserve_commit_and_acquire_release_round_trip() {
    let s = stream("zc", 4, 32);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    {
        let mut slot = w.reserve().unwrap();
        slot[..5].copy_from_slice(b"hello");
        slot.commit(5).unwrap();
    }
    {
        let slot = w.reserve().unwrap();
        drop(slot); // aborted: publishes nothing
    }
    {
        let frame = r.acquire().unwrap();
        assert_eq!(&*frame, b"hello");
        assert_eq!(frame.info().seq, 0);
    }
    assert!(matches!(r.try_read(), Err(Error::Empty)));
    assert!(matches!(w.commit_raw(1, 0), Err(Error::WrongState(_))));
    assert!(matches!(r.release_raw(), Err(Error::WrongState(_))));
}

#[test]
fn a_held_zero_copy_frame_is_never_overwritten() {
    let s = stream("hold", 2, 8);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    w.write(b"first").unwrap();
    w.write(b"second").unwrap();
    let frame = r.try_acquire().unwrap();
    assert!(matches!(w.try_write(b"third"), Err(Error::Full)));
    assert_eq!(&*frame, b"first");
    drop(frame);
    w.try_write(b"third").unwrap();
}

#[test]
fn batches_write_and_read_many_frames_per_call() {
    let s = stream("batch", 16, 8);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    let frames: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; (i % 8) as usize + 1]).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    assert_eq!(w.try_write_batch(&refs).unwrap(), 16);
    let mut buf = vec![0u8; 1024];
    let mut infos = vec![shmline::FrameInfo::default(); 32];
    let n = r.read_batch(&mut buf, &mut infos).unwrap();
    assert_eq!(n, 16);
    let mut off = 0;
    for (i, info) in infos[..n].iter().enumerate() {
        assert_eq!(info.seq, i as u64);
        assert_eq!(&buf[off..off + info.len as usize], frames[i].as_slice());
        off += info.len as usize;
    }
    assert_eq!(w.try_write_batch(&refs[16..]).unwrap(), 4);
}

#[test]
fn checksummed_frames_round_trip() {
    let name = unique("crc");
    let s = Stream::create(
        &name,
        &StreamOptions {
            max_frame_size: 1000,
            checksum: true,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    let data: Vec<u8> = (0..1000).map(|i| (i * 7) as u8).collect();
    w.write(&data).unwrap();
    assert_eq!(r.read().unwrap().data, data);
}

#[test]
fn a_reader_requiring_another_schema_is_refused_with_both_schemas_named() {
    let name = unique("schema");
    let s = Stream::create(
        &name,
        &StreamOptions {
            schema: Some(Schema::new("<f4", &[8]).unwrap()),
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let opened = Stream::open(&name).unwrap();
    assert_eq!(opened.schema().unwrap().dtype(), "<f4");
    let e = opened
        .reader(&ReaderOptions {
            require_schema: Some(Schema::new("<f8", &[8]).unwrap()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.status(), Status::SchemaMismatch);
    assert!(e.to_string().contains("<f4 (8,)") && e.to_string().contains("<f8 (8,)"));
    s.reader(&ReaderOptions {
        require_schema: Some(Schema::new("<f4", &[8]).unwrap()),
        ..Default::default()
    })
    .unwrap();
}

#[test]
fn bad_requests_get_errors_that_name_the_problem() {
    let s = stream("bad", 4, 8);
    let mut w = s.writer().unwrap();
    assert!(matches!(
        w.write(&[0; 9]),
        Err(Error::FrameTooLarge { len: 9, max: 8 })
    ));
    let e = s.writer().unwrap_err();
    assert_eq!(e.status(), Status::WriterExists);
    assert!(e.to_string().contains(&std::process::id().to_string()));
    let e = Stream::create(&unique("x"), &StreamOptions::default()).unwrap_err();
    assert!(e.to_string().contains("max_frame_size"));
    let e = Stream::create(
        &unique("x"),
        &StreamOptions {
            capacity: 3,
            max_frame_size: 8,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("power of two"));
    assert_eq!(
        Stream::open("no-such-stream-anywhere")
            .unwrap_err()
            .status(),
        Status::NotFound
    );
    let e = Stream::create("bad/name", &StreamOptions::default()).unwrap_err();
    assert_eq!(e.status(), Status::InvalidName);
}

#[test]
fn too_many_readers_is_refused() {
    let name = unique("many");
    let s = Stream::create(
        &name,
        &StreamOptions {
            max_frame_size: 8,
            max_readers: 2,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let _a = s.reader(&ReaderOptions::default()).unwrap();
    let b = s.reader(&ReaderOptions::default()).unwrap();
    assert_eq!(
        s.reader(&ReaderOptions::default()).unwrap_err().status(),
        Status::TooManyReaders
    );
    drop(b);
    s.reader(&ReaderOptions::default()).unwrap();
}

#[test]
fn threads_stream_a_million_frames_with_every_wait_strategy() {
    for wait in [
        WaitStrategy::Adaptive,
        WaitStrategy::Block,
        WaitStrategy::BusySpin,
    ] {
        let s = stream("threads", 64, 64);
        let mut r = s
            .reader(&ReaderOptions {
                wait,
                timeout: Some(Duration::from_secs(60)),
                ..Default::default()
            })
            .unwrap();
        let mut w = s
            .writer_with(&shmline::WriterOptions {
                wait,
                timeout: Some(Duration::from_secs(60)),
            })
            .unwrap();
        let n: u64 = if wait == WaitStrategy::Block {
            20_000
        } else {
            200_000
        };
        let t = std::thread::spawn(move || {
            for i in 0..n {
                w.write(&i.to_le_bytes()).unwrap();
            }
        });
        let mut buf = [0u8; 64];
        for i in 0..n {
            let info = r.read_into(&mut buf).unwrap();
            assert_eq!(info.seq, i);
            assert_eq!(buf[..8], i.to_le_bytes());
        }
        t.join().unwrap();
        assert!(matches!(r.read(), Err(Error::EndOfStream)));
    }
}

#[test]
fn every_blocking_call_has_timeout_and_deadline_forms_that_give_up_with_timeout() {
    use shmline::{Event, EventOptions, FrameInfo, WaitSet};
    use std::time::Instant;
    let short = Duration::from_millis(5);
    let soon = || Instant::now() + short;
    // For calls that must succeed: long enough for any loaded machine.
    let patience = Duration::from_secs(60);
    let timed_out = |what: &str, e: Error| assert!(matches!(e, Error::Timeout), "{what}: {e}");

    let s = stream("forms", 2, 8);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    // Nothing written: every read form waits, then gives up.
    let mut buf = [0u8; 8];
    let mut infos = [FrameInfo::default(); 2];
    timed_out("read_timeout", r.read_timeout(short).unwrap_err());
    timed_out("read_deadline", r.read_deadline(soon()).unwrap_err());
    timed_out(
        "read_into_timeout",
        r.read_into_timeout(&mut buf, short).unwrap_err(),
    );
    timed_out(
        "read_into_deadline",
        r.read_into_deadline(&mut buf, soon()).unwrap_err(),
    );
    let e = r
        .read_batch_timeout(&mut buf, &mut infos, short)
        .unwrap_err();
    timed_out("read_batch_timeout", e);
    let e = r
        .read_batch_deadline(&mut buf, &mut infos, soon())
        .unwrap_err();
    timed_out("read_batch_deadline", e);
    timed_out("acquire_timeout", r.acquire_timeout(short).unwrap_err());
    timed_out("acquire_deadline", r.acquire_deadline(soon()).unwrap_err());

    // A full ring (the reader holds both slots): every write form waits, then gives up.
    w.write_deadline(b"one", Instant::now() + patience).unwrap();
    w.write_batch_timeout(&[b"two"], patience).unwrap();
    timed_out("write_timeout", w.write_timeout(b"x", short).unwrap_err());
    timed_out(
        "write_deadline",
        w.write_deadline(b"x", soon()).unwrap_err(),
    );
    let e = w.write_batch_timeout(&[b"x"], short).unwrap_err();
    timed_out("write_batch_timeout", e);
    let e = w.write_batch_deadline(&[b"x"], soon()).unwrap_err();
    timed_out("write_batch_deadline", e);
    timed_out("reserve_timeout", w.reserve_timeout(short).unwrap_err());
    timed_out("reserve_deadline", w.reserve_deadline(soon()).unwrap_err());
    // The frames that did go in are read by the forms that gave up before.
    assert_eq!(
        r.read_deadline(Instant::now() + patience).unwrap().data,
        b"one"
    );
    assert_eq!(r.acquire_timeout(patience).unwrap().info().seq, 1);

    let event = Event::create(
        &unique("forms-event"),
        &EventOptions {
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    timed_out(
        "Event::wait_timeout",
        event.wait_timeout(short).unwrap_err(),
    );
    timed_out(
        "Event::wait_deadline",
        event.wait_deadline(soon()).unwrap_err(),
    );
    let mut set = WaitSet::new();
    let key = set.add_event(&event);
    assert!(matches!(set.try_wait(), Err(Error::Empty)));
    timed_out(
        "WaitSet::wait_timeout",
        set.wait_timeout(short).unwrap_err(),
    );
    timed_out(
        "WaitSet::wait_deadline",
        set.wait_deadline(soon()).unwrap_err(),
    );
    event.set();
    assert_eq!(
        set.wait_deadline(Instant::now() + patience).unwrap(),
        vec![key]
    );
}
