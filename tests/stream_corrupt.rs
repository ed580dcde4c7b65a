//! Streams treat shared memory as untrusted: whatever another process writes into a segment, a
//! writer, reader or monitor never panics, hangs or touches memory outside the segment. Impossible
//! values are reported as `Corrupt` (or `NotShmline` / `VersionMismatch` for the identity fields),
//! naming the field where there is one.
//!
//! The tests play the hostile process with a second, raw mapping of `/dev/shm/shmline.stream.NAME`
//! and write through atomics at the offsets of `shmline::__private::layout`.

mod support;

use memmap2::{MmapOptions, MmapRaw};
use shmline::__private::layout::{
    FrameHeader, GroupRecord, ReaderEntry, StreamHeader, WriterEntry, READERS_OFFSET,
    READER_ORPHANED, SEQ_EMPTY, STREAM_FLAG_SCHEMA, WRITER_ENTRY_FREE,
};
use shmline::{
    Error, FrameInfo, ReaderOptions, Schema, StartPosition, Status, Stream, StreamOptions,
    WriterState,
};
use std::mem::{align_of, offset_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{geometry, unique};

/// Offset of a `StreamHeader` field.
macro_rules! hdr {
    ($field:ident) => {
        offset_of!(StreamHeader, $field)
    };
}

/// The hostile process's view of a stream segment: a separate mapping written through atomics.
///
/// Stores are Relaxed: the point is what the victim does with the values, whenever it sees them.
struct Raw {
    map: MmapRaw,
    path: String,
}

impl Raw {
    fn map(name: &str) -> Raw {
        let path = format!("/dev/shm/shmline.stream.{name}");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        Raw {
            map: MmapOptions::new().map_raw(&file).unwrap(),
            path,
        }
    }

    /// Truncates or extends the segment's file (this mapping keeps its length: touch nothing
    /// past the new end).
    fn set_file_len(&self, len: u64) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn at<T>(&self, offset: usize) -> &T {
        assert!(
            offset + size_of::<T>() <= self.map.len() && offset.is_multiple_of(align_of::<T>())
        );
        // SAFETY: `offset` lies inside the mapping (checked above).
        let at = unsafe { self.map.as_mut_ptr().add(offset) };
        // SAFETY: in bounds and aligned (checked above); `T` is an atomic, valid for any bits,
        // and the mapping lives as long as `self`. No `&[u8]` of the mapping is ever formed.
        unsafe { &*(at as *const T) }
    }

    fn u8(&self, offset: usize, value: u8) {
        self.at::<AtomicU8>(offset).store(value, Ordering::Relaxed);
    }

    fn u32(&self, offset: usize, value: u32) {
        self.at::<AtomicU32>(offset).store(value, Ordering::Relaxed);
    }

    fn u64(&self, offset: usize, value: u64) {
        self.at::<AtomicU64>(offset).store(value, Ordering::Relaxed);
    }

    fn get_u32(&self, offset: usize) -> u32 {
        self.at::<AtomicU32>(offset).load(Ordering::Relaxed)
    }

    fn get_u64(&self, offset: usize) -> u64 {
        self.at::<AtomicU64>(offset).load(Ordering::Relaxed)
    }
}

/// Offset of field `field` (from `offset_of!(ReaderEntry, ..)`) of reader entry `index`.
fn entry_field(index: usize, field: usize) -> usize {
    READERS_OFFSET as usize + index * size_of::<ReaderEntry>() + field
}

/// Offset of field `field` (from `offset_of!(FrameHeader, ..)`) of the slot holding `seq`.
fn slot_field(stream: &Stream, seq: u64, field: usize) -> usize {
    let geo = geometry(stream);
    geo.slot_offset(seq) + field
}

/// Offset of field `field` (from `offset_of!(GroupRecord, ..)`) of group record `index`.
fn group_field(stream: &Stream, index: u32, field: usize) -> usize {
    let geo = geometry(stream);
    geo.group_offset(index) + field
}

/// Offset of field `field` (from `offset_of!(WriterEntry, ..)`) of writer entry `index`.
fn writer_entry_field(stream: &Stream, index: u32, field: usize) -> usize {
    let geo = geometry(stream);
    geo.writer_offset(index) + field
}

fn member(group: &str) -> ReaderOptions {
    ReaderOptions {
        group: Some(group.into()),
        ..Default::default()
    }
}

fn options(capacity: u32, max_frame: u32) -> StreamOptions {
    StreamOptions {
        capacity,
        max_frame_size: max_frame,
        max_readers: 4,
        unlink_on_close: true,
        ..Default::default()
    }
}

/// Creates a stream, lets `damage` write into it, and returns what `Stream::open` says.
fn open_damaged(options: &StreamOptions, damage: impl FnOnce(&Raw)) -> Error {
    let name = unique("open");
    let creator = Stream::create(&name, options).unwrap();
    damage(&Raw::map(&name));
    let result = Stream::open(&name);
    drop(creator);
    match result {
        Ok(_) => panic!("a damaged stream was opened"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, Error>, names: &str) {
    match result {
        Err(e) => {
            assert_eq!(e.status(), Status::Corrupt, "{e}");
            assert!(e.to_string().contains(names), "{e:?} should name {names:?}");
        }
        Ok(v) => panic!("expected a Corrupt error naming {names:?}, got Ok({v:?})"),
    }
}

// ---- opening ----

#[test]
fn opening_a_segment_with_a_foreign_magic_says_it_is_not_a_stream() {
    let e = open_damaged(&options(4, 64), |raw| {
        raw.u64(hdr!(magic), u64::from_le_bytes(*b"NOTASTRM"))
    });
    assert_eq!(e.status(), Status::NotShmline, "{e}");
    assert!(e.to_string().contains("NOTASTRM"), "{e}");
}

#[test]
fn opening_a_segment_of_another_layout_version_is_a_version_mismatch() {
    let e = open_damaged(&options(4, 64), |raw| raw.u32(hdr!(layout_version), 99));
    assert_eq!(e.status(), Status::VersionMismatch, "{e}");
    assert!(e.to_string().contains("99"), "{e}");
}

#[test]
fn opening_refuses_every_impossible_geometry_field_and_names_it() {
    // (field offset, 4 or 8 bytes wide, value, what the message must name)
    let cases: &[(usize, usize, u64, &str)] = &[
        (hdr!(capacity), 4, 0, "capacity"),
        (hdr!(capacity), 4, 3, "power of two"),
        (hdr!(capacity), 4, u32::MAX as u64, "capacity"),
        (hdr!(capacity), 4, 1 << 24, "segment_size"),
        (hdr!(capacity), 4, 8, "segment_size"),
        (hdr!(slot_size), 4, 0, "slot_size"),
        (hdr!(slot_size), 4, 1 << 30, "slot_size"),
        (hdr!(max_frame), 4, 0, "frame size"),
        (hdr!(max_frame), 4, u32::MAX as u64, "frame size"),
        (hdr!(max_frame), 4, 97, "slot_size"),
        (hdr!(max_frame), 4, 4096, "slot_size"),
        (hdr!(max_readers), 4, 0, "readers"),
        (hdr!(max_readers), 4, u32::MAX as u64, "readers"),
        (hdr!(max_readers), 4, 64, "writers_offset"),
        (hdr!(readers_offset), 8, 0, "readers_offset"),
        (hdr!(readers_offset), 8, u64::MAX, "readers_offset"),
        (hdr!(slots_offset), 8, 0, "slots_offset"),
        (hdr!(slots_offset), 8, u64::MAX, "slots_offset"),
        (hdr!(segment_size), 8, 0, "segment_size"),
        (hdr!(segment_size), 8, u64::MAX, "segment_size"),
        (hdr!(header_size), 4, 0, "header_size"),
        (hdr!(header_size), 4, u32::MAX as u64, "header_size"),
        (hdr!(max_writers), 4, 0, "writers"),
        (hdr!(max_writers), 4, 65, "writers"),
        (hdr!(max_writers), 4, 64, "groups_offset"),
        (hdr!(max_groups), 4, 65, "groups"),
        (hdr!(max_groups), 4, u32::MAX as u64, "groups"),
        (hdr!(max_groups), 4, 64, "slots_offset"),
        (hdr!(groups_offset), 8, 0, "groups_offset"),
        (hdr!(groups_offset), 8, u64::MAX, "groups_offset"),
        (hdr!(writers_offset), 8, 0, "writers_offset"),
        (hdr!(writers_offset), 8, u64::MAX, "writers_offset"),
        (hdr!(policy), 4, 4, "policy"),
        (hdr!(policy), 4, u32::MAX as u64, "policy"),
        (hdr!(flags), 4, 1 << 7, "flags"),
        (hdr!(flags), 4, u32::MAX as u64, "flags"),
    ];
    for &(offset, width, value, names) in cases {
        let e = open_damaged(&options(4, 64), |raw| match width {
            4 => raw.u32(offset, value as u32),
            _ => raw.u64(offset, value),
        });
        assert_eq!(
            e.status(),
            Status::Corrupt,
            "offset {offset} = {value}: {e}"
        );
        assert!(
            e.to_string().contains(names),
            "offset {offset} = {value}: {e} should name {names:?}"
        );
    }
}

#[test]
fn opening_refuses_a_garbage_schema_block() {
    let with_schema = StreamOptions {
        schema: Some(Schema::new("<f4", &[4, 4]).unwrap()),
        ..options(4, 0)
    };
    let dtype = hdr!(dtype);
    let shape = hdr!(shape);
    type Damage = Box<dyn Fn(&Raw)>;
    let cases: Vec<(&str, StreamOptions, Damage)> = vec![
        (
            "ASCII",
            with_schema.clone(),
            Box::new(move |raw| raw.u8(dtype + 1, 0xFF)),
        ),
        (
            "schema",
            with_schema.clone(),
            // Valid UTF-8 ("<é"), but no dtype.
            Box::new(move |raw| {
                raw.u8(dtype + 1, 0xC3);
                raw.u8(dtype + 2, 0xA9);
            }),
        ),
        (
            "NUL",
            with_schema.clone(),
            Box::new(move |raw| (0..32).for_each(|i| raw.u8(dtype + i, b'f'))),
        ),
        (
            "ndim",
            with_schema.clone(),
            Box::new(|raw| raw.u32(hdr!(ndim), 200)),
        ),
        (
            "ndim",
            with_schema.clone(),
            Box::new(|raw| raw.u32(hdr!(ndim), u32::MAX)),
        ),
        (
            "larger than max_frame",
            with_schema.clone(),
            Box::new(move |raw| raw.u64(shape, 5)),
        ),
        (
            "schema",
            with_schema.clone(),
            Box::new(move |raw| raw.u64(shape, u64::MAX)),
        ),
        (
            "schema",
            with_schema.clone(),
            Box::new(move |raw| raw.u64(shape + 8, 0)),
        ),
        (
            // A schema flag on a stream whose schema block is empty.
            "schema",
            options(4, 64),
            Box::new(|raw| raw.u32(hdr!(flags), STREAM_FLAG_SCHEMA)),
        ),
    ];
    for (names, options, damage) in cases {
        let e = open_damaged(&options, damage);
        assert_eq!(e.status(), Status::Corrupt, "{e}");
        assert!(e.to_string().contains(names), "{e} should name {names:?}");
    }
}

#[test]
fn opening_refuses_a_segment_whose_real_size_differs_from_its_header() {
    for delta in [4096i64, 64, 1, -1, -64] {
        let e = open_damaged(&options(4, 64), |raw| {
            raw.set_file_len((raw.len() as i64 + delta) as u64)
        });
        assert_eq!(e.status(), Status::Corrupt, "{e}");
        assert!(e.to_string().contains("real size"), "{e}");
    }
}

#[test]
fn opening_a_segment_truncated_below_a_header_says_it_is_not_a_stream() {
    let e = open_damaged(&options(4, 64), |raw| raw.set_file_len(100));
    assert_eq!(e.status(), Status::NotShmline, "{e}");
}

// ---- a live stream ----

/// A new stream (removed when dropped) and the hostile mapping of it.
struct Live {
    stream: Stream,
    raw: Raw,
}

fn live(tag: &str, opts: StreamOptions) -> Live {
    let name = unique(tag);
    let stream = Stream::create(&name, &opts).unwrap();
    let raw = Raw::map(&name);
    Live { stream, raw }
}

#[test]
fn a_reader_reports_corrupt_when_head_moves_backwards() {
    let l = live("back", options(8, 16));
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut w = l.stream.writer().unwrap();
    for i in 0..3u8 {
        w.write(&[i]).unwrap();
    }
    assert_eq!(r.try_read().unwrap().data, [0]);
    l.raw.u64(hdr!(head), 1);
    // Frames below the head the reader already saw may still be read; then the step back shows.
    let outcome = (0..3).map(|_| r.try_read()).find(|r| r.is_err()).unwrap();
    assert_corrupt(outcome, "head moved");
    // The writer keeps its own count: the next publication repairs `head`.
    w.write(&[3]).unwrap();
    assert_eq!(l.raw.get_u64(hdr!(head)), 4);
}

#[test]
fn a_frame_complete_in_its_slot_is_delivered_only_once_head_shows_it() {
    // LAYOUT.md 4.5: a waiting reader may poll its next slot, but takes a frame only once `head`
    // shows it. A writer killed between its store of `seq` and its store of `head` leaves a frame
    // that readers polling `head` alone never deliver, so no reader may. Here `head` is held back
    // by hand, as if the writer had died between the two stores.
    let l = live("lagging-head", options(8, 16));
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"zero").unwrap();
    assert_eq!(r.try_read().unwrap().data, b"zero");
    for frame in [&b"one"[..], b"two", b"three"] {
        w.write(frame).unwrap();
    }
    l.raw.u64(hdr!(head), 1);
    let short = Duration::from_millis(20);
    assert!(matches!(r.try_read(), Err(Error::Empty)));
    assert!(matches!(r.read_timeout(short), Err(Error::Timeout)));
    assert!(matches!(r.acquire_timeout(short), Err(Error::Timeout)));
    let mut buf = [0u8; 64];
    let mut infos = [FrameInfo::default(); 4];
    assert!(matches!(
        r.read_batch_timeout(&mut buf, &mut infos, short),
        Err(Error::Timeout)
    ));
    // The writer keeps its own count: the next publication repairs `head`, and every frame
    // arrives once, in order.
    w.write(b"four").unwrap();
    assert_eq!(l.raw.get_u64(hdr!(head)), 5);
    let wait = Duration::from_secs(10);
    assert_eq!(r.read_timeout(wait).unwrap().data, b"one");
    let lent = r.acquire_timeout(wait).unwrap();
    assert_eq!((lent.info().seq, &*lent), (2, &b"two"[..]));
    drop(lent);
    assert_eq!(r.read_batch_timeout(&mut buf, &mut infos, wait).unwrap(), 2);
    assert_eq!((infos[0].seq, &buf[..5]), (3, &b"three"[..]));
    assert_eq!((infos[1].seq, &buf[5..9]), (4, &b"four"[..]));
}

#[test]
fn a_lossless_reader_reports_corrupt_when_head_jumps_more_than_a_ring_ahead() {
    let l = live("ahead", options(4, 16));
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"x").unwrap();
    l.raw.u64(hdr!(head), 4 + 2);
    assert_corrupt(r.try_read(), "head moved");
    assert_corrupt(r.try_acquire().map(|g| *g.info()), "head moved");
    let mut buf = [0u8; 64];
    let mut infos = [FrameInfo::default(); 4];
    assert_corrupt(r.try_read_batch(&mut buf, &mut infos), "head moved");
}

#[test]
fn an_absurd_head_is_refused_by_new_writers_and_readers_and_panics_nobody() {
    for head in [u64::MAX, u64::MAX - 1, u64::MAX / 2, SEQ_EMPTY - 3] {
        let l = live("absurd", options(4, 16));
        let mut lossless = l.stream.reader(&ReaderOptions::default()).unwrap();
        let mut lossy = l
            .stream
            .reader(&ReaderOptions {
                lossy: true,
                ..Default::default()
            })
            .unwrap();
        l.raw.u64(hdr!(head), head);
        assert_corrupt(l.stream.writer().map(|_| ()), "head");
        assert_eq!(
            l.raw
                .at::<AtomicU32>(hdr!(writer_state))
                .load(Ordering::Relaxed),
            0,
            "a refused writer gives the role back"
        );
        for start in [
            StartPosition::Next,
            StartPosition::Newest,
            StartPosition::Oldest,
        ] {
            for lossy in [false, true] {
                let reader = l.stream.reader(&ReaderOptions {
                    start,
                    lossy,
                    ..Default::default()
                });
                assert_corrupt(reader.map(|_| ()), "head");
            }
        }
        assert_corrupt(lossless.try_read(), "head");
        assert_corrupt(lossy.try_read(), "head");
        let _ = l.stream.stats();
    }
}

#[test]
fn a_slot_holding_the_wrong_sequence_number_is_corrupt() {
    let l = live("seq", options(4, 16));
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut lossy = l
        .stream
        .reader(&ReaderOptions {
            lossy: true,
            ..Default::default()
        })
        .unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"a").unwrap();
    w.write(b"b").unwrap();
    let seq = slot_field(&l.stream, 1, offset_of!(FrameHeader, seq));
    assert_eq!(r.try_read().unwrap().data, b"a");
    assert_eq!(lossy.try_read().unwrap().data, b"a");
    for bad in [0u64, 5, SEQ_EMPTY, u64::MAX - 1] {
        l.raw.u64(seq, bad);
        assert_corrupt(r.try_read(), "sequence number");
        assert_corrupt(r.try_acquire().map(|g| *g.info()), "sequence number");
    }
    // A lossy reader takes a newer number for an overwrite it lost, an older one for corruption.
    l.raw.u64(seq, 0);
    assert_corrupt(lossy.try_read(), "older sequence number");
    assert_eq!(r.position(), 1, "a refused frame stays unread");
}

#[test]
fn a_slot_claiming_more_than_max_frame_bytes_is_corrupt() {
    let l = live("len", options(4, 16));
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut lossy = l
        .stream
        .reader(&ReaderOptions {
            lossy: true,
            ..Default::default()
        })
        .unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"abc").unwrap();
    let len = slot_field(&l.stream, 0, offset_of!(FrameHeader, len));
    for bad in [17u32, 4096, u32::MAX] {
        l.raw.u32(len, bad);
        assert_corrupt(r.try_read(), "more than the maximum");
        let mut big = vec![0u8; 1 << 16];
        assert_corrupt(r.try_read_into(&mut big), "more than the maximum");
        assert_corrupt(r.try_acquire().map(|g| *g.info()), "more than the maximum");
        let mut infos = [FrameInfo::default(); 2];
        assert_corrupt(
            r.try_read_batch(&mut big, &mut infos),
            "more than the maximum",
        );
        assert_corrupt(lossy.try_read(), "more than the maximum");
    }
    l.raw.u32(len, 3);
    assert_eq!(r.try_read().unwrap().data, b"abc");
}

#[test]
fn a_checksum_mismatch_is_corrupt_for_copy_and_zero_copy_reads() {
    let l = live(
        "crc",
        StreamOptions {
            checksum: true,
            ..options(4, 16)
        },
    );
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut lossy = l
        .stream
        .reader(&ReaderOptions {
            lossy: true,
            ..Default::default()
        })
        .unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"payload").unwrap();
    let payload = slot_field(&l.stream, 0, size_of::<FrameHeader>());
    l.raw.u8(payload + 3, b'X');
    assert_corrupt(r.try_read(), "checksum");
    assert_corrupt(r.try_acquire().map(|g| *g.info()), "checksum");
    assert_corrupt(lossy.try_read(), "checksum");
    l.raw.u8(payload + 3, b'l');
    let crc = slot_field(&l.stream, 0, offset_of!(FrameHeader, crc32c));
    l.raw.u32(crc, 0xDEAD_BEEF);
    assert_corrupt(r.try_read(), "checksum");
}

#[test]
fn a_reader_position_far_ahead_lets_the_writer_go_on() {
    for bad in [5, 1 << 40, u64::MAX] {
        let l = live("ahead", options(4, 16));
        let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
        let mut w = l.stream.writer().unwrap();
        for i in 0..4u8 {
            w.write(&[i]).unwrap();
        }
        assert!(matches!(w.try_write(b"full"), Err(Error::Full)));
        l.raw.u64(entry_field(0, offset_of!(ReaderEntry, pos)), bad);
        // Clamped to head: the reader no longer holds the writer back.
        w.try_write(b"go").unwrap();
        // The reader was lapped; it says so (its own position is what it trusts).
        assert_corrupt(r.try_read(), "head moved");
        let _ = l.stream.stats();
    }
}

#[test]
fn a_reader_position_far_behind_holds_the_writer_back_only_like_a_stalled_reader() {
    let l = live("behind", options(4, 16));
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut w = l.stream.writer().unwrap();
    for i in 0..8u8 {
        w.write(&[i]).unwrap();
        assert_eq!(r.try_read().unwrap().data, [i]);
    }
    for i in 8..12u8 {
        w.write(&[i]).unwrap();
    }
    assert!(matches!(w.try_write(b"x"), Err(Error::Full)));
    assert_eq!(r.try_read().unwrap().data, [8]);
    // Far behind `head - capacity`: clamped there, as if the reader had not released frame 8.
    // Backpressure, not a hang: the writer's timeouts still apply.
    l.raw.u64(entry_field(0, offset_of!(ReaderEntry, pos)), 0);
    assert!(matches!(w.try_write(b"x"), Err(Error::Full)));
    assert!(matches!(
        w.write_timeout(b"x", Duration::from_millis(1)),
        Err(Error::Timeout)
    ));
    // The reader's next release stores its own position again and frees the writer.
    assert_eq!(r.try_read().unwrap().data, [9]);
    w.try_write(&[12]).unwrap();
    w.try_write(&[13]).unwrap();
    assert!(matches!(w.try_write(b"x"), Err(Error::Full)));
}

#[test]
fn a_garbage_writer_state_is_corrupt_for_a_reader_with_no_frame_left_never_a_wait() {
    let l = live("wstate", options(4, 16));
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"one").unwrap();
    l.raw.u32(hdr!(writer_state), 0xBAD);
    // Published frames come first; then the value no writer stores is reported, not waited on.
    assert_eq!(r.try_read().unwrap().data, b"one");
    assert_corrupt(r.try_read(), "writer_state");
    let started = Instant::now();
    assert_corrupt(r.read_timeout(Duration::from_secs(60)), "writer_state");
    assert!(started.elapsed() < Duration::from_secs(30), "it waited");
    assert_eq!(l.stream.stats().writer_state, WriterState::None);
    let second = l.stream.writer().unwrap_err();
    assert_eq!(second.status(), Status::WriterExists, "{second}");
    w.write(b"two").unwrap();
    assert_eq!(r.try_read().unwrap().data, b"two");
}

#[test]
fn garbage_sleeper_counts_only_cost_spare_wake_ups() {
    let l = live("sleepers", options(2, 16));
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut w = l.stream.writer().unwrap();
    l.raw.u32(hdr!(readers_waiting), u32::MAX);
    l.raw.u32(hdr!(writer_waiting), u32::MAX);
    l.raw.u32(hdr!(data_futex), u32::MAX);
    l.raw.u32(hdr!(space_futex), u32::MAX);
    // Both sides go through their sleep paths (which wrap the counters) and still deliver.
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..20 {
            got.push(r.read_timeout(Duration::from_secs(60)).unwrap().data[0]);
        }
        got
    });
    for i in 0..20u8 {
        w.write_timeout(&[i], Duration::from_secs(60)).unwrap();
    }
    assert_eq!(reader.join().unwrap(), (0..20).collect::<Vec<u8>>());
}

#[test]
fn a_reader_entry_with_a_garbage_state_is_ignored_and_never_panics() {
    let l = live(
        "rstate",
        StreamOptions {
            max_readers: 1,
            ..options(2, 16)
        },
    );
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"a").unwrap();
    w.write(b"b").unwrap();
    assert!(matches!(w.try_write(b"c"), Err(Error::Full)));
    l.raw
        .u32(entry_field(0, offset_of!(ReaderEntry, owner)), 0xBAD);
    l.raw
        .u32(entry_field(0, offset_of!(ReaderEntry, flags)), u32::MAX);
    // Not an active reader: the writer no longer waits for it...
    w.try_write(b"c").unwrap();
    w.try_write(b"d").unwrap();
    // ...and its owner finds its frames gone (or intact), never a panic.
    for _ in 0..4 {
        if let Err(e) = r.try_read() {
            assert!(matches!(e.status(), Status::Corrupt | Status::Empty), "{e}");
        }
    }
    // The entry is not free, and its owner is alive: no room for another reader.
    let e = l.stream.reader(&ReaderOptions::default()).unwrap_err();
    assert_eq!(e.status(), Status::TooManyReaders, "{e}");
    let _ = l.stream.stats();
    drop(r);
}

#[test]
fn a_group_next_beyond_head_or_more_than_a_ring_behind_it_is_corrupt_for_its_members() {
    let l = live("gnext", options(4, 16));
    let mut m = l.stream.reader(&member("g")).unwrap();
    let mut w = l.stream.writer().unwrap();
    let next = group_field(&l.stream, 0, offset_of!(GroupRecord, next));
    w.write(b"a").unwrap();
    l.raw.u64(next, 100);
    assert_corrupt(m.try_read(), "reader group \"g\"");
    assert_corrupt(m.try_acquire().map(|g| *g.info()), "reader group");
    let mut buf = [0u8; 64];
    let mut infos = [FrameInfo::default(); 4];
    assert_corrupt(m.try_read_batch(&mut buf, &mut infos), "reader group");
    // Repaired, reading goes on; then the writer laps a `next` set back by a ring and more.
    l.raw.u64(next, 0);
    assert_eq!(m.try_read().unwrap().data, b"a");
    for i in 0..4u8 {
        w.write(&[i]).unwrap();
    }
    for _ in 0..4 {
        m.try_read().unwrap();
    }
    w.write(b"z").unwrap();
    l.raw.u64(next, 0);
    assert_corrupt(m.try_read(), "not within a ring");
    let _ = l.stream.stats();
}

#[test]
fn garbage_in_the_group_table_and_member_entries_never_panics_or_hangs() {
    let l = live(
        "gtable",
        StreamOptions {
            max_readers: 4,
            max_groups: 2,
            ..options(4, 16)
        },
    );
    let mut a = l.stream.reader(&member("g")).unwrap();
    let mut b = l.stream.reader(&member("g")).unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"x").unwrap();
    let g = |field| group_field(&l.stream, 0, field);
    // A hint of orphans that are not there, a name that is not UTF-8, a garbage group index in a
    // member's entry, an orphan whose frames are out of any range.
    l.raw.u32(g(offset_of!(GroupRecord, orphans)), u32::MAX);
    for i in 0..64 {
        l.raw.u8(g(offset_of!(GroupRecord, name)) + i, 0xFF);
    }
    l.raw
        .u32(entry_field(1, offset_of!(ReaderEntry, group)), u32::MAX);
    let stats = l.stream.stats();
    assert_eq!(stats.groups.len(), 1);
    assert!(stats
        .readers
        .iter()
        .all(|r| r.group.as_deref() != Some("g")));
    // The members go on reading: each frame once.
    assert_eq!(a.try_read().unwrap().data, b"x");
    assert!(matches!(b.try_read(), Err(Error::Empty)));
    assert_eq!(
        l.raw.get_u32(g(offset_of!(GroupRecord, orphans))),
        0,
        "a stale hint heals"
    );
    // A new member of that name starts a new group: the damaged name no longer matches.
    let c = l.stream.reader(&member("g")).unwrap();
    assert_eq!(l.stream.stats().groups.len(), 2);
    drop(c);
    // An orphaned entry whose frames lie far outside the ring is adopted as nothing.
    l.raw.u32(entry_field(1, offset_of!(ReaderEntry, group)), 1);
    l.raw
        .u64(entry_field(1, offset_of!(ReaderEntry, pos)), u64::MAX - 5);
    l.raw
        .u64(entry_field(1, offset_of!(ReaderEntry, held_end)), u64::MAX);
    l.raw.u32(
        entry_field(1, offset_of!(ReaderEntry, owner)),
        READER_ORPHANED,
    );
    l.raw.u32(g(offset_of!(GroupRecord, orphans)), 1);
    w.write(b"y").unwrap();
    assert_eq!(a.try_read().unwrap().data, b"y");
    assert!(matches!(a.try_read(), Err(Error::Empty)));
    let _ = l.stream.stats();
    drop(b);
}

#[test]
fn an_absurd_write_limit_is_refused_by_a_joining_reader() {
    for limit in [u64::MAX, u64::MAX - 3, u64::MAX / 2] {
        let l = live("limit", options(4, 16));
        let mut w = l.stream.writer().unwrap();
        w.write(b"a").unwrap();
        // Left as the writer's last scan published it until its next scan.
        l.raw.u64(hdr!(write_limit), limit);
        assert_corrupt(
            l.stream.reader(&ReaderOptions::default()).map(|_| ()),
            "write_limit",
        );
        // The refused reader gave its entry back.
        l.raw.u64(hdr!(write_limit), 0);
        let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
        w.write(b"b").unwrap();
        assert_eq!(r.try_read().unwrap().data, b"b");
    }
}

#[test]
fn an_odd_scan_seq_on_a_stream_no_writer_attached_to_makes_opening_a_reader_corrupt_at_once() {
    let l = live("scan-none", options(4, 16));
    l.raw.u64(hdr!(scan_seq), 1);
    let started = Instant::now();
    assert_corrupt(
        l.stream.reader(&ReaderOptions::default()).map(|_| ()),
        "scan_seq",
    );
    assert_corrupt(l.stream.reader(&member("g")).map(|_| ()), "scan_seq");
    // Nobody can be scanning: no reason to wait (the bound for a live writer is a second).
    assert!(started.elapsed() < Duration::from_millis(900), "it waited");
    // The refused readers gave their entries and the group back.
    l.raw.u64(hdr!(scan_seq), 2);
    let readers: Vec<_> = (0..4)
        .map(|_| l.stream.reader(&ReaderOptions::default()).unwrap())
        .collect();
    assert_eq!(l.stream.stats().groups.len(), 0);
    drop(readers);
}

#[test]
fn an_odd_scan_seq_that_a_live_writer_never_ends_costs_a_reader_open_a_bounded_wait() {
    let l = live("scan-live", options(4, 16));
    let mut w = l.stream.writer().unwrap();
    w.write(b"a").unwrap();
    let seq = l.raw.get_u64(hdr!(scan_seq));
    l.raw.u64(hdr!(scan_seq), seq | 1);
    let started = Instant::now();
    assert_corrupt(
        l.stream.reader(&ReaderOptions::default()).map(|_| ()),
        "scan_seq",
    );
    // About a second (the documented bound), not the 30 s it once was.
    assert!(started.elapsed() < Duration::from_secs(10), "it waited");
    drop(w);
}

#[test]
fn an_odd_scan_seq_on_a_closed_stream_costs_a_reader_open_nothing() {
    let l = live("scan-closed", options(4, 16));
    let mut w = l.stream.writer().unwrap();
    w.write(b"a").unwrap();
    w.close();
    let seq = l.raw.get_u64(hdr!(scan_seq));
    l.raw.u64(hdr!(scan_seq), seq | 1);
    let started = Instant::now();
    // No writer will scan again, so nothing can overwrite what the reader joins at.
    let mut r = l
        .stream
        .reader(&ReaderOptions {
            start: StartPosition::Oldest,
            ..Default::default()
        })
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(900), "it waited");
    assert_eq!(r.try_read().unwrap().data, b"a");
    assert!(matches!(r.try_read(), Err(Error::EndOfStream)));
}

#[test]
fn a_group_member_acquiring_with_timeout_zero_never_waits_on_an_odd_scan_seq() {
    let l = live(
        "scan-member",
        StreamOptions {
            max_readers: 4,
            max_groups: 2,
            ..options(4, 16)
        },
    );
    let mut a = l.stream.reader(&member("g")).unwrap();
    let b = l.stream.reader(&member("g")).unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"x").unwrap();
    w.write(b"y").unwrap();
    // Member b (entry 1) "died" holding frame 0, and a scan never ends.
    let g = |field| group_field(&l.stream, 0, field);
    l.raw.u64(g(offset_of!(GroupRecord, next)), 1);
    l.raw.u64(entry_field(1, offset_of!(ReaderEntry, pos)), 0);
    l.raw
        .u64(entry_field(1, offset_of!(ReaderEntry, held_end)), 1);
    l.raw.u32(
        entry_field(1, offset_of!(ReaderEntry, owner)),
        READER_ORPHANED,
    );
    l.raw.u32(g(offset_of!(GroupRecord, orphans)), 1);
    let seq = l.raw.get_u64(hdr!(scan_seq));
    l.raw.u64(hdr!(scan_seq), seq | 1);
    let started = Instant::now();
    let outcome = a.try_acquire().map(|f| f.to_vec());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "try_acquire waited {:?}",
        started.elapsed()
    );
    match outcome {
        Ok(data) => assert!(data == b"x" || data == b"y", "{data:?}"),
        Err(e) => assert!(e.is_outcome() || e.status() == Status::Corrupt, "{e}"),
    }
    l.raw.u64(hdr!(scan_seq), (seq | 1) + 1);
    drop(b);
}

fn multi(tag: &str) -> Live {
    live(
        tag,
        StreamOptions {
            max_writers: 2,
            ..options(4, 16)
        },
    )
}

#[test]
fn a_writer_count_above_the_writers_attached_lets_the_last_live_writer_end_the_stream() {
    // A writer killed between counting itself and activating its entry leaves such a count.
    let l = multi("wcount-close");
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"x").unwrap();
    let count = l.raw.get_u32(hdr!(writer_count));
    l.raw.u32(hdr!(writer_count), count + 1);
    drop(w);
    assert_eq!(r.read_timeout(Duration::from_secs(60)).unwrap().data, b"x");
    assert!(matches!(
        r.read_timeout(Duration::from_secs(60)),
        Err(Error::EndOfStream)
    ));
    assert_eq!(l.stream.stats().writer_state, WriterState::Closed);
}

#[test]
fn a_writer_count_that_no_writer_entry_backs_ends_in_writer_dead_not_a_wait_for_ever() {
    let l = multi("wcount-dead");
    let mut r = l.stream.reader(&ReaderOptions::default()).unwrap();
    let mut w = l.stream.writer().unwrap();
    w.write(b"x").unwrap();
    // The count says one writer; the table says none.
    l.raw.u64(
        writer_entry_field(&l.stream, 0, offset_of!(WriterEntry, owner)),
        WRITER_ENTRY_FREE as u64,
    );
    assert_eq!(r.read_timeout(Duration::from_secs(60)).unwrap().data, b"x");
    assert!(matches!(
        r.read_timeout(Duration::from_secs(60)),
        Err(Error::WriterDead)
    ));
    assert_eq!(l.stream.stats().writer_state, WriterState::Dead);
    let refused = l.stream.writer().unwrap_err();
    assert_eq!(refused.status(), Status::WrongState, "{refused}");
    // The stream stays ended, whatever the writer that lost its entry does now.
    drop(w);
    assert!(matches!(r.try_read(), Err(Error::WriterDead)));
}

// ---- everything at once ----

/// xorshift64*: a tiny deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the fuzzed operations returned: Ok, a flow-control outcome, Corrupt, another error, or a
/// panic; and how many operations ran.
#[derive(Default)]
struct Tally {
    counts: [AtomicU64; 5],
    ops: AtomicU64,
}

impl Tally {
    const PANIC: usize = 4;

    /// Runs `op`, counting its result, and a panic instead of unwinding.
    fn run(&self, op: impl FnOnce() -> Result<(), Error>) {
        let kind = match catch_unwind(AssertUnwindSafe(op)) {
            Ok(Ok(())) => 0,
            Ok(Err(e)) if e.is_outcome() => 1,
            Ok(Err(e)) if e.status() == Status::Corrupt => 2,
            Ok(Err(_)) => 3,
            Err(_) => Tally::PANIC,
        };
        // Relaxed: counters, read after the threads are joined (or only to see progress).
        self.counts[kind].fetch_add(1, Ordering::Relaxed);
        self.ops.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until `n` more operations have run (the workers never block, so they do).
    fn wait_for_ops(&self, n: u64) {
        let target = self.ops.load(Ordering::Relaxed) + n;
        while self.ops.load(Ordering::Relaxed) < target {
            std::thread::yield_now();
        }
    }

    fn get(&self, kind: usize) -> u64 {
        self.counts[kind].load(Ordering::Relaxed)
    }
}

#[test]
fn random_bytes_written_into_a_live_stream_never_panic_its_writer_or_readers() {
    let seed = std::env::var("SHMLINE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| shmline::monotonic_ns() | 1);
    println!("seed {seed} (replay with SHMLINE_FUZZ_SEED={seed})");
    for round in 0..6 {
        let checksum = round % 3 == 1;
        let l = live(
            "fuzz",
            StreamOptions {
                checksum,
                max_readers: 4,
                ..options(8, 48)
            },
        );
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let mut threads = Vec::new();
        let mut w = l.stream.writer().unwrap();
        {
            let (stop, tally) = (stop.clone(), tally.clone());
            threads.push(std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let data = [n as u8; 48];
                    let len = (n % 49) as usize;
                    tally.run(|| match n % 4 {
                        0 => w.try_write(&data[..len]),
                        1 => w.try_write_batch(&[&data[..len], &data[..1]]).map(|_| ()),
                        2 => w.try_reserve().and_then(|mut g| {
                            g[..len].copy_from_slice(&data[..len]);
                            g.commit(len)
                        }),
                        _ => w.try_reserve().map(drop),
                    });
                    std::thread::yield_now();
                }
            }));
        }
        // A lossless reader, a lossy one, and a member of a reader group.
        for kind in 0..3 {
            let lossy = kind == 1;
            let mut r = l
                .stream
                .reader(&ReaderOptions {
                    lossy,
                    group: (kind == 2).then(|| "fuzz".to_owned()),
                    ..Default::default()
                })
                .unwrap();
            let (stop, tally) = (stop.clone(), tally.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 256];
                let mut infos = [FrameInfo::default(); 4];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    tally.run(|| match n % 4 {
                        0 => r.try_read().map(|_| ()),
                        1 => r.try_read_into(&mut buf).map(|_| ()),
                        2 => r.try_read_batch(&mut buf, &mut infos).map(|_| ()),
                        _ if lossy => r.try_read().map(|_| ()),
                        _ => r.try_acquire().map(|g| {
                            std::hint::black_box(g.iter().map(|&b| b as u64).sum::<u64>());
                        }),
                    });
                    std::thread::yield_now();
                }
            }));
        }
        let mut rng = Rng(seed ^ (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // The header (identity, geometry and schema are only read by `open`; the rest is live),
        // the reader table, the group's record, and the slots.
        let identity = 0..hdr!(head);
        let live_fields = hdr!(head)..READERS_OFFSET as usize;
        let table = READERS_OFFSET as usize..READERS_OFFSET as usize + 3 * 128;
        let group = group_field(&l.stream, 0, 0)..group_field(&l.stream, 1, 0);
        let slots = slot_field(&l.stream, 0, 0)..l.raw.len();
        for i in 0..3000u64 {
            let region = match rng.below(5) {
                0 => live_fields.clone(),
                1 if round % 2 == 1 => identity.clone(),
                1 => table.clone(),
                2 => group.clone(),
                _ => slots.clone(),
            };
            let offset = region.start + rng.below(region.len() as u64) as usize;
            match rng.below(4) {
                // A random byte anywhere.
                0 | 1 => l.raw.u8(offset, rng.next() as u8),
                // A whole aligned word of a nasty kind: huge, small, or off by little.
                _ => {
                    let offset = offset & !7;
                    let value = match rng.below(4) {
                        0 => u64::MAX - rng.below(4),
                        1 => rng.below(16),
                        2 => l
                            .raw
                            .get_u64(offset)
                            .wrapping_add(rng.below(9))
                            .wrapping_sub(4),
                        _ => rng.next(),
                    };
                    l.raw.u64(offset, value);
                }
            }
            // Let the victims run into the damage before doing more.
            tally.wait_for_ops(3);
            if i % 64 == 0 {
                tally.run(|| {
                    std::hint::black_box(l.stream.stats().fill());
                    // A zero magic is a segment still being created: `open` waits for it.
                    if l.raw.get_u64(hdr!(magic)) == 0 {
                        return Ok(());
                    }
                    let opened = Stream::open(l.stream.name())?;
                    std::hint::black_box(opened.stats().fill());
                    Ok(())
                });
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join()
                .expect("a worker thread panicked outside an operation");
        }
        println!(
            "round {round}: {} ok, {} outcomes, {} corrupt, {} other errors, {} panics",
            tally.get(0),
            tally.get(1),
            tally.get(2),
            tally.get(3),
            tally.get(Tally::PANIC)
        );
        assert_eq!(
            tally.get(Tally::PANIC),
            0,
            "operations panicked on a corrupted stream (seed {seed}, round {round})"
        );
    }
}
