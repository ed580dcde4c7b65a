//! The bridge over a link that fails, and to several importers: a link cut and restored resumes
//! without a gap or a duplicate; the slowest of several lossless importers holds the exporter.

mod proxy;
mod support;

use shmline::__private::Deadline;
use shmline::{Error, ReaderOptions};
use std::time::Duration;
use support::*;

/// Reads until end of stream, checking every field of every frame and the pause `pause(seq)`
/// after reading it.
fn read_all(reader: &mut shmline::Reader, len: usize, mut pause: impl FnMut(u64)) -> u64 {
    let mut next = 0;
    loop {
        match reader.read() {
            Ok(frame) => {
                assert_eq!(frame.info.seq, next, "no gap and no duplicate");
                assert_eq!(frame.info.missed, 0);
                assert_eq!(frame.info.timestamp_ns, stamp(next));
                assert_eq!(frame.info.flags, flags(next));
                assert!(
                    frame.data == payload(next, len),
                    "frame {next} keeps its payload"
                );
                pause(next);
                next += 1;
            }
            Err(Error::EndOfStream) => return next,
            Err(e) => panic!("after frame {next}: {e}"),
        }
    }
}

#[test]
fn a_link_cut_and_restored_resumes_without_a_gap_or_a_duplicate() {
    let (src, dst, key) = (unique("cut-src"), unique("cut-dst"), unique("cut"));
    let (count, len) = (6_000u64, 256usize);
    let (stream, _u1) = origin(&src, 256, len as u32);
    let _u2 = Unlink(dst.clone());
    let port = free_port();
    let proxy = proxy::Proxy::start(port);
    let mut exporter = exporter(&src, &key, port, &["--lease", "60"]);
    // A small window keeps frames on the way when the link drops.
    let small = ["--lease", "60", "--window-bytes", "16384"];
    let mut importer = importer(&key, &dst, proxy.port, &small);
    let imported = wait_for_stream(&dst);
    let mut reader = imported.reader(&ReaderOptions::default()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut writer = stream.writer().unwrap();
            for seq in 0..count {
                writer
                    .write_at(&payload(seq, len), flags(seq), stamp(seq), Deadline::Never)
                    .unwrap();
                if seq % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(1)); // a stream, not a burst
                }
            }
        });
        let got = read_all(&mut reader, len, |seq| {
            if seq == 1_000 {
                proxy.cut();
                std::thread::sleep(Duration::from_secs(3));
                proxy.restore();
            }
        });
        assert_eq!(got, count, "every frame arrived once");
    });
    assert_eq!(exporter.wait(), 0);
    assert!(exporter.said("is back"), "the link was cut and came back");
    assert_eq!(importer.wait(), 0);
}

#[test]
fn two_lossless_importers_get_every_frame_and_the_slowest_holds_the_exporter_back() {
    let (src, key) = (unique("fan-src"), unique("fan"));
    let (a, b) = (unique("fan-a"), unique("fan-b"));
    let (count, len) = (5_000u64, 512usize);
    let (stream, _u1) = origin(&src, 64, len as u32);
    let (_ua, _ub) = (Unlink(a.clone()), Unlink(b.clone()));
    let port = free_port();
    let mut exporter = exporter(&src, &key, port, &["--wait-importers", "2"]);
    let small_window = ["--window-bytes", "32768"];
    let mut importer_a = importer(&key, &a, port, &small_window);
    let mut importer_b = importer(&key, &b, port, &small_window);
    let (stream_a, stream_b) = (wait_for_stream(&a), wait_for_stream(&b));
    let mut reader_a = stream_a.reader(&ReaderOptions::default()).unwrap();
    let mut reader_b = stream_b.reader(&ReaderOptions::default()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut writer = stream.writer().unwrap();
            for seq in 0..count {
                writer
                    .write_at(&payload(seq, len), flags(seq), stamp(seq), Deadline::Never)
                    .unwrap();
            }
        });
        let fast = s.spawn(|| read_all(&mut reader_a, len, |_| {}));
        let slow = read_all(&mut reader_b, len, |seq| {
            if seq == 10 {
                std::thread::sleep(Duration::from_secs(2)); // B's sink stalls
            }
        });
        assert_eq!(slow, count);
        assert_eq!(fast.join().unwrap(), count);
    });
    assert!(
        stream.stats().writer_waits > 0,
        "the origin writer waited for the slowest importer"
    );
    assert_eq!(exporter.wait(), 0);
    assert_eq!(importer_a.wait(), 0);
    assert_eq!(importer_b.wait(), 0);
}
