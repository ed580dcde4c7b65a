//! Backpressure policies: what writers do when the ring is full (block, fail, drop_newest,
//! drop_oldest), and the counters that say what was lost.

mod support;

use shmline::{Backpressure, Error, ReaderOptions, Stream, StreamOptions};
use std::time::Duration;
use support::unique;

fn stream(tag: &str, capacity: u32, policy: Backpressure) -> Stream {
    let name = unique(tag);
    Stream::create(
        &name,
        &StreamOptions {
            capacity,
            max_frame_size: 16,
            unlink_on_close: true,
            backpressure: policy,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn the_policy_is_stored_in_the_stream_and_seen_by_every_process_that_opens_it() {
    let s = stream("stored", 4, Backpressure::DropNewest);
    let opened = Stream::open(s.name()).unwrap();
    assert_eq!(opened.info().backpressure, Backpressure::DropNewest);
    assert_eq!(opened.stats().backpressure, Backpressure::DropNewest);
    assert_eq!(
        opened.writer().unwrap().backpressure(),
        Backpressure::DropNewest
    );
    assert_eq!(
        stream("default", 4, Backpressure::default())
            .info()
            .backpressure,
        Backpressure::Block
    );
}

#[test]
fn a_block_stream_waits_for_space_up_to_the_timeout() {
    let s = stream("block", 2, Backpressure::Block);
    let _r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    w.write(b"0").unwrap();
    w.write(b"1").unwrap();
    assert!(matches!(w.try_write(b"2"), Err(Error::Full)));
    assert!(matches!(
        w.write_timeout(b"2", Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    assert_eq!(s.stats().frames_dropped, 0);
}

#[test]
fn a_fail_stream_reports_full_at_once_even_when_the_call_may_wait() {
    let s = stream("fail", 2, Backpressure::Fail);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    w.write(b"0").unwrap();
    w.write(b"1").unwrap();
    assert!(matches!(
        w.write_timeout(b"2", Duration::from_secs(60)),
        Err(Error::Full)
    ));
    // No timeout at all: still FULL, not a wait for ever.
    assert!(matches!(w.write(b"2"), Err(Error::Full)));
    assert!(matches!(w.reserve(), Err(Error::Full)));
    assert!(matches!(w.write_batch(&[b"2", b"3"]), Err(Error::Full)));
    assert_eq!(r.read().unwrap().data, b"0");
    // One slot free: a batch writes what fits and says so.
    assert_eq!(w.write_batch(&[b"2", b"3"]).unwrap(), 1);
    assert_eq!(
        s.stats().frames_dropped,
        0,
        "fail never drops: the caller keeps the frame"
    );
    assert_eq!(s.stats().writer_waits, 0, "fail never waits");
}

#[test]
fn a_drop_newest_stream_discards_and_counts_the_frames_that_do_not_fit() {
    let s = stream("newest", 2, Backpressure::DropNewest);
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    let mut w = s.writer().unwrap();
    for i in 0..5u8 {
        // Writes to a full ring succeed without waiting, even with no timeout.
        w.write(&[i]).unwrap();
    }
    assert_eq!(w.frames_dropped(), 3);
    assert_eq!(s.stats().frames_dropped, 3);
    assert_eq!(s.stats().frames_written, 2);
    // The frames already in the ring win: the reader sees the first two, in order, none missed.
    let first = r.read().unwrap();
    assert_eq!((first.data.as_slice(), first.info.missed), (&[0u8][..], 0));
    // A batch writes what fits and drops the rest; it reports every frame as handled.
    assert_eq!(w.write_batch(&[b"a", b"b", b"c"]).unwrap(), 3);
    assert_eq!(s.stats().frames_dropped, 5);
    // Zero-copy: there is no frame to drop before it is filled, so a full ring is FULL.
    assert!(matches!(w.reserve(), Err(Error::Full)));
    assert_eq!(r.read().unwrap().data, [1]);
    assert_eq!(r.read().unwrap().data, b"a");
    assert!(matches!(r.try_read(), Err(Error::Empty)));
    assert_eq!(s.stats().writer_waits, 0, "drop_newest never waits");
}

#[test]
fn a_drop_oldest_stream_never_waits_and_every_reader_is_told_what_it_missed() {
    let s = stream("oldest", 4, Backpressure::DropOldest);
    // A reader that asked to be lossless reads like a lossy one on this stream.
    let mut r = s.reader(&ReaderOptions::default()).unwrap();
    assert!(r.is_lossy());
    let mut w = s.writer().unwrap();
    for i in 0..10u8 {
        w.try_write(&[i]).unwrap();
    }
    w.reserve().unwrap().commit(0).unwrap();
    assert_eq!(s.stats().frames_written, 11);
    assert!(s.stats().readers[0].lossy);
    let first = r.read().unwrap();
    // The oldest frame still there comes first, with the count of the frames lost before it.
    assert!(first.info.seq >= 7, "{:?}", first.info);
    assert_eq!(first.info.missed, first.info.seq);
    let mut seen = 1;
    let mut missed = first.info.missed;
    while let Ok(f) = r.try_read() {
        missed += f.info.missed;
        seen += 1;
    }
    assert_eq!(seen + missed, 11, "every frame is read or reported missed");
    assert_eq!(s.stats().readers[0].missed, missed);
    assert!(matches!(r.acquire(), Err(Error::Unsupported(m)) if m.contains("drop_oldest")));
    assert_eq!(s.stats().writer_waits, 0, "drop_oldest never waits");
}
