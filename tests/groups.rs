//! Reader groups in one process: members share the frames (each to exactly one member), while
//! plain readers and other groups still get every frame, and the writer waits for frames members
//! hold.

mod support;

use shmline::{
    Backpressure, Error, FrameInfo, ReaderOptions, Schema, StartPosition, Status, Stream,
    StreamOptions,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::unique;

fn options(capacity: u32) -> StreamOptions {
    StreamOptions {
        capacity,
        max_frame_size: 8,
        max_readers: 16,
        unlink_on_close: true,
        ..Default::default()
    }
}

fn stream_with(tag: &str, options: &StreamOptions) -> Stream {
    Stream::create(&unique(tag), options).unwrap()
}

fn stream(tag: &str, capacity: u32) -> Stream {
    stream_with(tag, &options(capacity))
}

fn member(group: &str) -> ReaderOptions {
    ReaderOptions {
        group: Some(group.into()),
        timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    }
}

fn value(data: &[u8]) -> u64 {
    u64::from_le_bytes(data[..8].try_into().unwrap())
}

/// Reads until the end of the stream, the way member number `style` does it (copy, zero-copy or
/// batch), checking each payload against its sequence number. Returns the sequence numbers.
fn drain(mut reader: shmline::Reader, style: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8 * 5];
    let mut infos = [FrameInfo::default(); 5];
    loop {
        let got = match style % 3 {
            0 => reader.read().map(|f| {
                assert_eq!(
                    value(&f.data),
                    f.info.seq,
                    "payload of frame {}",
                    f.info.seq
                );
                seen.push(f.info.seq);
            }),
            1 => reader.acquire().map(|g| {
                assert_eq!(value(&g), g.info().seq, "payload of frame {}", g.info().seq);
                seen.push(g.info().seq);
            }),
            _ => reader.read_batch(&mut buf, &mut infos).map(|n| {
                for (i, info) in infos[..n].iter().enumerate() {
                    assert_eq!(
                        value(&buf[i * 8..]),
                        info.seq,
                        "payload of frame {}",
                        info.seq
                    );
                    seen.push(info.seq);
                }
            }),
        };
        match got {
            Ok(()) => {}
            Err(Error::EndOfStream) => return seen,
            Err(e) => panic!("member reading frame after {:?}: {e}", seen.last()),
        }
    }
}

#[test]
fn each_frame_goes_to_exactly_one_member_while_plain_readers_and_other_groups_get_all() {
    const FRAMES: u64 = 20_000;
    let s = stream("share", 8);
    let workers: Vec<_> = (0..3)
        .map(|_| s.reader(&member("workers")).unwrap())
        .collect();
    let auditors: Vec<_> = (0..2)
        .map(|_| s.reader(&member("audit")).unwrap())
        .collect();
    let mut plain = s
        .reader(&ReaderOptions {
            timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        })
        .unwrap();
    let mut writer = s.writer().unwrap();
    let spawn = |readers: Vec<shmline::Reader>| -> Vec<_> {
        readers
            .into_iter()
            .enumerate()
            .map(|(i, r)| std::thread::spawn(move || drain(r, i)))
            .collect()
    };
    let workers = spawn(workers);
    let auditors = spawn(auditors);
    let plain_thread = std::thread::spawn(move || {
        let mut next = 0;
        loop {
            match plain.read() {
                Ok(f) => {
                    assert_eq!(
                        f.info.seq, next,
                        "the plain reader gets every frame in order"
                    );
                    assert_eq!(value(&f.data), next);
                    next += 1;
                }
                Err(Error::EndOfStream) => return next,
                Err(e) => panic!("plain reader: {e}"),
            }
        }
    });
    for i in 0..FRAMES {
        writer.write(&i.to_le_bytes()).unwrap();
    }
    writer.close();
    for (name, members) in [("workers", workers), ("audit", auditors)] {
        let mut all = Vec::new();
        for m in members {
            let seen = m.join().unwrap();
            assert!(
                seen.windows(2).all(|w| w[0] < w[1]),
                "a member of {name} sees frames in increasing order"
            );
            all.extend(seen);
        }
        all.sort_unstable();
        assert_eq!(all.len() as u64, FRAMES, "group {name}: each frame once");
        assert!(
            all.iter().copied().eq(0..FRAMES),
            "group {name}: every frame exactly once"
        );
    }
    assert_eq!(plain_thread.join().unwrap(), FRAMES);
}

#[test]
fn the_writer_waits_for_a_frame_a_member_holds_and_for_frames_the_group_has_not_handed_out() {
    let s = stream("hold", 4);
    let mut a = s.reader(&member("g")).unwrap();
    let mut b = s.reader(&member("g")).unwrap();
    let mut writer = s.writer().unwrap();
    for i in 0..4u64 {
        writer.write(&i.to_le_bytes()).unwrap();
    }
    // Nobody has taken anything: the group's next frame (0) holds the writer.
    assert!(matches!(writer.try_write(&[0; 8]), Err(Error::Full)));
    let held = a.try_acquire().unwrap();
    assert_eq!(held.info().seq, 0);
    for seq in 1..4 {
        assert_eq!(b.try_read().unwrap().info.seq, seq);
    }
    // Frames 1-3 are released, frame 0 is held by a member: still full.
    assert!(matches!(writer.try_write(&[0; 8]), Err(Error::Full)));
    assert_eq!(s.stats().fill(), 1.0);
    drop(held);
    writer.write(&4u64.to_le_bytes()).unwrap();
    assert_eq!(b.try_read().unwrap().info.seq, 4);
    assert!(matches!(a.try_read(), Err(Error::Empty)));
}

#[test]
fn a_member_sees_the_stream_sequence_numbers_with_gaps_for_other_members_frames() {
    let s = stream("gaps", 8);
    let mut a = s.reader(&member("g")).unwrap();
    let mut b = s.reader(&member("g")).unwrap();
    let mut writer = s.writer().unwrap();
    for i in 0..4u64 {
        writer.write(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(a.try_read().unwrap().info.seq, 0);
    assert_eq!(b.try_read().unwrap().info.seq, 1);
    let f = a.try_read().unwrap();
    assert_eq!(
        (f.info.seq, f.info.missed),
        (2, 0),
        "gaps are not missed frames"
    );
    assert_eq!(a.position(), 3);
}

#[test]
fn a_batch_read_claims_as_many_frames_as_it_has_room_for() {
    let s = stream("batch", 16);
    let mut a = s.reader(&member("g")).unwrap();
    let mut b = s.reader(&member("g")).unwrap();
    let mut writer = s.writer().unwrap();
    for i in 0..10u64 {
        writer.write(&i.to_le_bytes()).unwrap();
    }
    let mut buf = [0u8; 64];
    let mut infos = [FrameInfo::default(); 4];
    assert_eq!(a.try_read_batch(&mut buf, &mut infos).unwrap(), 4);
    let seqs: Vec<u64> = infos.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    assert_eq!(
        b.try_read().unwrap().info.seq,
        4,
        "a single read claims one"
    );
    assert_eq!(a.try_read_batch(&mut buf, &mut infos).unwrap(), 4);
    assert_eq!(infos[0].seq, 5);
}

#[test]
fn a_new_group_starts_where_its_first_member_asks_and_later_members_join_it_where_it_is() {
    let s = stream("start", 8);
    let mut writer = s.writer().unwrap();
    for i in 0..3u64 {
        writer.write(&i.to_le_bytes()).unwrap();
    }
    let mut first = s
        .reader(&ReaderOptions {
            start: StartPosition::Oldest,
            ..member("g")
        })
        .unwrap();
    let mut late = s
        .reader(&ReaderOptions {
            start: StartPosition::Next,
            ..member("g")
        })
        .unwrap();
    assert_eq!(first.try_read().unwrap().info.seq, 0);
    assert_eq!(
        late.try_read().unwrap().info.seq,
        1,
        "joins where the group is"
    );
    let mut newest = s
        .reader(&ReaderOptions {
            start: StartPosition::Newest,
            ..member("other")
        })
        .unwrap();
    assert_eq!(newest.try_read().unwrap().info.seq, 2);
}

#[test]
fn the_last_member_to_leave_ends_the_group_and_frees_the_writer() {
    let s = stream_with(
        "leave",
        &StreamOptions {
            max_groups: 1,
            ..options(2)
        },
    );
    let a = s.reader(&member("g")).unwrap();
    let b = s.reader(&member("g")).unwrap();
    let mut writer = s.writer().unwrap();
    writer.write(&[0; 8]).unwrap();
    writer.write(&[0; 8]).unwrap();
    assert!(matches!(writer.try_write(&[0; 8]), Err(Error::Full)));
    drop(a);
    assert_eq!(s.stats().groups[0].members, 1);
    drop(b);
    assert!(s.stats().groups.is_empty(), "{:?}", s.stats().groups);
    writer.try_write(&[0; 8]).unwrap();
    // The record is free again: the one group the stream allows can be made anew.
    let mut again = s.reader(&member("h")).unwrap();
    writer.try_write(&7u64.to_le_bytes()).unwrap();
    assert_eq!(again.try_read().unwrap().info.seq, 3);
}

#[test]
fn a_member_closing_with_frames_it_claimed_but_never_delivered_hands_them_on() {
    let s = stream("handover", 8);
    let mut a = s.reader(&member("g")).unwrap();
    let mut b = s.reader(&member("g")).unwrap();
    let mut writer = s.writer().unwrap();
    for i in 0..4u64 {
        writer.write(&i.to_le_bytes()).unwrap();
    }
    // Claims four, has room for two.
    let mut buf = [0u8; 16];
    let mut infos = [FrameInfo::default(); 4];
    assert_eq!(a.try_read_batch(&mut buf, &mut infos).unwrap(), 2);
    assert!(matches!(b.try_read(), Err(Error::Empty)));
    drop(a);
    assert_eq!(b.try_read().unwrap().info.seq, 2);
    assert_eq!(b.try_read().unwrap().info.seq, 3);
    assert!(matches!(b.try_read(), Err(Error::Empty)));
    assert_eq!(s.stats().groups[0].redelivered, 2);
}

#[test]
fn a_member_closing_while_another_process_keeps_the_table_lock_still_hands_on_its_undelivered_frames(
) {
    let s = stream("lockheld", 8);
    let mut a = s.reader(&member("g")).unwrap();
    let mut b = s.reader(&member("g")).unwrap();
    let mut writer = s.writer().unwrap();
    for i in 0..4u64 {
        writer.write(&i.to_le_bytes()).unwrap();
    }
    // Claims four, has room for two.
    let mut buf = [0u8; 16];
    let mut infos = [FrameInfo::default(); 4];
    assert_eq!(a.try_read_batch(&mut buf, &mut infos).unwrap(), 2);
    // A live process (this one, as far as `a` can tell) keeps the table lock: `a` gives up
    // waiting for it and leaves without it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/shmline.stream.{}", s.name()))
        .unwrap();
    let map = memmap2::MmapOptions::new().map_raw(&file).unwrap();
    // SAFETY: offset 604 lies inside the mapping (the header alone is 640 bytes).
    let at = unsafe { map.as_mut_ptr().add(604) };
    // SAFETY: `table_lock` is the aligned u32 at offset 604 of the header (LAYOUT.md 3.3), inside
    // the mapping, which outlives every use of the reference.
    let table_lock = unsafe { &*(at as *const AtomicU32) };
    // Relaxed: `a` only needs to see a holder that is not itself, whenever it looks.
    table_lock.store(std::process::id(), Ordering::Relaxed);
    drop(a);
    // Relaxed: as above; `b` takes the lock itself by a compare-and-swap.
    table_lock.store(0, Ordering::Relaxed);
    assert_eq!(b.try_read().unwrap().info.seq, 2);
    assert_eq!(b.try_read().unwrap().info.seq, 3);
    assert!(matches!(b.try_read(), Err(Error::Empty)));
    assert_eq!(s.stats().groups[0].redelivered, 2);
}

#[test]
fn stats_show_each_group_and_the_group_of_each_member() {
    let s = stream("stats", 8);
    let mut a = s.reader(&member("alpha")).unwrap();
    let _b = s.reader(&member("alpha")).unwrap();
    let _plain = s.reader(&ReaderOptions::default()).unwrap();
    let mut writer = s.writer().unwrap();
    for i in 0..3u64 {
        writer.write(&i.to_le_bytes()).unwrap();
    }
    let held = a.try_acquire().unwrap();
    assert_eq!(held.info().seq, 0);
    let stats = s.stats();
    assert_eq!(stats.max_groups, 4);
    assert_eq!(stats.groups.len(), 1);
    let g = &stats.groups[0];
    assert_eq!(
        (
            g.name.as_str(),
            g.members,
            g.next,
            g.frames_handed_out,
            g.lag
        ),
        ("alpha", 2, 1, 1, 2)
    );
    let members: Vec<_> = stats
        .readers
        .iter()
        .filter_map(|r| r.group.clone())
        .collect();
    assert_eq!(members, ["alpha", "alpha"]);
    let holder = stats
        .readers
        .iter()
        .find(|r| r.position == 0 && r.group.is_some());
    assert!(
        holder.is_some(),
        "the member holding frame 0 is at 0: {:?}",
        stats.readers
    );
    assert_eq!(
        stats.readers.iter().filter(|r| r.group.is_none()).count(),
        1
    );
    drop(held);
    assert_eq!(a.group(), Some("alpha"));
}

#[test]
fn end_of_stream_reaches_every_member() {
    let s = stream("eos", 8);
    let mut members: Vec<_> = (0..3).map(|_| s.reader(&member("g")).unwrap()).collect();
    let mut writer = s.writer().unwrap();
    writer.write(&[0; 8]).unwrap();
    writer.close();
    let mut frames = 0;
    for m in &mut members {
        loop {
            match m.try_read() {
                Ok(_) => frames += 1,
                Err(Error::EndOfStream) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert_eq!(frames, 1);
}

#[test]
fn a_group_shares_the_frames_of_a_multi_writer_stream() {
    const PER_WRITER: u64 = 5_000;
    let s = stream_with(
        "multi",
        &StreamOptions {
            max_writers: 2,
            ..options(8)
        },
    );
    let members: Vec<_> = (0..2).map(|_| s.reader(&member("g")).unwrap()).collect();
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let mut writer = s.writer().unwrap();
            std::thread::spawn(move || {
                for i in 0..PER_WRITER {
                    writer.write(&(w << 32 | i).to_le_bytes()).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = members
        .into_iter()
        .map(|mut r| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match r.read() {
                        Ok(f) => got.push(value(&f.data)),
                        Err(Error::EndOfStream) => return got,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let all: BTreeSet<u64> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    assert_eq!(all.len() as u64, 2 * PER_WRITER);
}

#[test]
fn group_names_are_checked() {
    let s = stream("names", 8);
    for bad in ["", "has space", ".dot", &"x".repeat(64), "slash/"] {
        let e = s.reader(&member(bad)).unwrap_err();
        assert_eq!(e.status(), Status::InvalidName, "{bad:?}: {e}");
        assert!(e.to_string().contains("group"), "{e}");
    }
    s.reader(&member(&"x".repeat(63))).unwrap();
}

#[test]
fn a_lossy_member_and_a_member_of_a_drop_oldest_stream_are_refused() {
    let s = stream("lossy", 8);
    let e = s
        .reader(&ReaderOptions {
            lossy: true,
            ..member("g")
        })
        .unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.to_string().contains("lossless"), "{e}");
    let s = stream_with(
        "dropoldest",
        &StreamOptions {
            backpressure: Backpressure::DropOldest,
            ..options(8)
        },
    );
    let e = s.reader(&member("g")).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.to_string().contains("drop_oldest"), "{e}");
}

#[test]
fn more_groups_than_max_groups_are_refused_naming_the_limit() {
    let s = stream_with(
        "maxgroups",
        &StreamOptions {
            max_groups: 2,
            ..options(8)
        },
    );
    let _a = s.reader(&member("a")).unwrap();
    let _b = s.reader(&member("b")).unwrap();
    let _b2 = s.reader(&member("b")).unwrap();
    let e = s.reader(&member("c")).unwrap_err();
    assert_eq!(e.status(), Status::TooManyReaders);
    assert!(
        e.to_string().contains("2 reader groups") && e.to_string().contains("max_groups"),
        "{e}"
    );
    let none = stream_with(
        "nogroups",
        &StreamOptions {
            max_groups: 0,
            ..options(8)
        },
    );
    let e = none.reader(&member("a")).unwrap_err();
    assert!(e.to_string().contains("max_groups"), "{e}");
    let e = Stream::create(
        "t-groups-toomany-unused",
        &StreamOptions {
            max_groups: 65,
            ..options(8)
        },
    )
    .unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
}

#[test]
fn a_member_counts_against_max_readers_and_is_refused_a_mismatched_schema() {
    let s = stream_with(
        "limits",
        &StreamOptions {
            max_readers: 2,
            schema: Some(Schema::new("<f4", &[2]).unwrap()),
            max_frame_size: 0,
            ..options(8)
        },
    );
    let e = s
        .reader(&ReaderOptions {
            require_schema: Some(Schema::new("<f8", &[2]).unwrap()),
            ..member("g")
        })
        .unwrap_err();
    assert_eq!(e.status(), Status::SchemaMismatch);
    let _a = s.reader(&member("g")).unwrap();
    let _b = s.reader(&member("g")).unwrap();
    let e = s.reader(&member("g")).unwrap_err();
    assert_eq!(e.status(), Status::TooManyReaders);
    assert!(e.to_string().contains("max_readers"), "{e}");
}
