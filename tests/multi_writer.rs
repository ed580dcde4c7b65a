//! Multi-writer streams in one process: writers claim sequence numbers concurrently, frames are
//! published in claim order, and every reader sees each frame exactly once.

mod support;

use shmline::{Error, ReaderOptions, Stream, StreamOptions, WriterState};
use std::time::Duration;
use support::unique;

fn stream(tag: &str, capacity: u32, max_writers: u32) -> Stream {
    Stream::create(
        &unique(tag),
        &StreamOptions {
            capacity,
            max_frame_size: 16,
            max_writers,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Frame `i` of writer `w`: the writer's number and the frame's number in its own order.
fn frame(w: u64, i: u64) -> [u8; 16] {
    let mut f = [0u8; 16];
    f[..8].copy_from_slice(&w.to_le_bytes());
    f[8..].copy_from_slice(&i.to_le_bytes());
    f
}

fn parse(data: &[u8]) -> (u64, u64) {
    (
        u64::from_le_bytes(data[..8].try_into().unwrap()),
        u64::from_le_bytes(data[8..16].try_into().unwrap()),
    )
}

#[test]
fn threads_writing_one_stream_deliver_every_frame_once_in_each_writers_order() {
    const WRITERS: u64 = 4;
    const FRAMES: u64 = 20_000;
    let s = stream("threads", 8, WRITERS as u32);
    let mut readers: Vec<_> = (0..2)
        .map(|_| s.reader(&ReaderOptions::default()).unwrap())
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mut writer = s.writer().unwrap();
            std::thread::spawn(move || {
                for i in 0..FRAMES {
                    match i % 3 {
                        0 => writer.write(&frame(w, i)).unwrap(),
                        1 => {
                            let mut g = writer.reserve().unwrap();
                            g[..16].copy_from_slice(&frame(w, i));
                            g.commit(16).unwrap();
                        }
                        _ => assert_eq!(writer.write_batch(&[&frame(w, i)]).unwrap(), 1),
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = readers
        .drain(..)
        .map(|mut r| {
            std::thread::spawn(move || {
                let mut next = [0u64; WRITERS as usize];
                let mut seq = 0;
                loop {
                    match r.read_timeout(Duration::from_secs(60)) {
                        Ok(f) => {
                            assert_eq!(f.info.seq, seq, "published in claim order, no gap");
                            assert_eq!(f.info.missed, 0);
                            let (w, i) = parse(&f.data);
                            assert_eq!(i, next[w as usize], "writer {w}'s frames in its order");
                            next[w as usize] += 1;
                            seq += 1;
                        }
                        Err(Error::EndOfStream) => return (seq, next),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for c in consumers {
        let (seen, per_writer) = c.join().unwrap();
        assert_eq!(seen, WRITERS * FRAMES);
        assert_eq!(per_writer, [FRAMES; WRITERS as usize]);
    }
    let stats = s.stats();
    assert_eq!(stats.frames_written, WRITERS * FRAMES);
    assert_eq!(stats.bytes_written, WRITERS * FRAMES * 16);
    assert_eq!(stats.writer_state, WriterState::Closed);
    assert_eq!(stats.frames_skipped, 0);
}

#[test]
fn the_stream_ends_when_the_last_writer_that_attached_closes() {
    let s = stream("end", 4, 2);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut first = s.writer().unwrap();
    let mut second = s.writer().unwrap();
    first.write(b"a").unwrap();
    drop(first);
    assert_eq!(r.read().unwrap().data, b"a");
    // One writer left: no end of stream yet.
    assert!(matches!(r.try_read(), Err(Error::Empty)));
    assert_eq!(s.stats().writer_state, WriterState::Active);
    assert_eq!(s.stats().writers.len(), 1);
    second.write(b"b").unwrap();
    // A writer may come while another is attached.
    let third = s.writer().unwrap();
    drop(second);
    drop(third);
    assert_eq!(r.read().unwrap().data, b"b");
    assert!(matches!(r.read(), Err(Error::EndOfStream)));
    assert!(matches!(s.writer(), Err(Error::WrongState(m)) if m.contains("ended")));
}

#[test]
fn more_writers_than_the_stream_allows_are_refused_by_name() {
    let s = stream("limit", 4, 2);
    let _a = s.writer().unwrap();
    let b = s.writer().unwrap();
    let e = s.writer().unwrap_err();
    assert!(
        matches!(&e, Error::TooManyWriters(m) if m.contains("max_writers")),
        "{e}"
    );
    drop(b);
    let _c = s.writer().unwrap();
}

#[test]
fn a_second_writer_on_a_single_writer_stream_is_refused() {
    let s = stream("single", 4, 1);
    let _w = s.writer().unwrap();
    let e = s.writer().unwrap_err();
    assert!(
        matches!(&e, Error::WriterExists(m) if m.contains("max_writers")),
        "{e}"
    );
}

#[test]
fn an_aborted_reservation_is_skipped_and_readers_are_told() {
    let s = stream("abort", 4, 2);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    w.write(b"0").unwrap();
    drop(w.reserve().unwrap());
    w.write(b"2").unwrap();
    let f = r.read().unwrap();
    assert_eq!((f.info.seq, f.info.missed), (0, 0));
    let f = r.read().unwrap();
    assert_eq!(
        (f.info.seq, f.info.missed, f.data.as_slice()),
        (2, 1, &b"2"[..])
    );
    assert_eq!(r.missed(), 1);
    let stats = s.stats();
    assert_eq!(stats.frames_skipped, 1);
    // Three sequence numbers, two frames: the skipped number is not counted as written, by the
    // stream or by the writer that gave it up.
    assert_eq!(stats.frames_written, 2);
    assert_eq!(stats.writers[0].frames_written, 2);
}

#[test]
fn a_zero_copy_read_reports_a_skipped_number_in_missed_exactly_as_a_copy_read_does() {
    let s = stream("acquire-missed", 8, 2);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    w.write(b"0").unwrap();
    drop(w.reserve().unwrap());
    w.write(b"2").unwrap();
    w.write(b"3").unwrap();
    assert_eq!(r.read().unwrap().info.missed, 0);
    {
        let f = r.acquire().unwrap();
        assert_eq!((f.info().seq, f.info().missed, &f[..]), (2, 1, &b"2"[..]));
    }
    // Reported once: the next read, copy or zero-copy, has nothing pending.
    let f = r.read().unwrap();
    assert_eq!((f.info.seq, f.info.missed), (3, 0));
    assert_eq!(r.missed(), 1);
}

#[test]
fn a_full_ring_holds_every_writer_back_until_readers_release() {
    let s = stream("full", 2, 2);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut a = s.writer().unwrap();
    let mut b = s.writer().unwrap();
    a.write(b"a").unwrap();
    b.write(b"b").unwrap();
    assert!(matches!(a.try_write(b"x"), Err(Error::Full)));
    assert!(matches!(
        b.write_timeout(b"x", Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    assert_eq!(r.read().unwrap().data, b"a");
    b.try_write(b"c").unwrap();
    assert!(matches!(a.try_write(b"x"), Err(Error::Full)));
}
