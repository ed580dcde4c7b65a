//! Property tests of streams: any mix of write and read calls, on any ring geometry, delivers
//! every frame intact, once, in order.
//!
//! One thread drives a writer and a lossless reader through a random sequence of calls. A model
//! (the frames written and not yet read) predicts every outcome, so blocking calls are made only
//! when they cannot block, and every non-blocking call's `Full`/`Empty` is checked too.

mod support;

use proptest::collection::vec;
use proptest::prelude::*;
use shmline::{Error, FrameInfo, Reader, ReaderOptions, Stream, StreamOptions, Writer};
use std::collections::VecDeque;
use support::unique;

/// A frame length drawn so that 0 and the maximum come up often: `pick % 8 == 0` is empty,
/// `== 1` is full size, anything else is spread over `0..=max`.
fn frame_len(pick: u32, max: u32) -> usize {
    match pick % 8 {
        0 => 0,
        1 => max as usize,
        _ => ((pick / 8) % (max + 1)) as usize,
    }
}

/// The payload of frame `seq`: recognisable bytes, different for every frame and offset.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(131) as usize + i * 7 + (i >> 8)) as u8)
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    /// Blocking `write` (made only when a slot is free) or `try_write`.
    Write { pick: u32, blocking: bool },
    /// `write` of a frame one byte over the maximum: refused, nothing published.
    WriteTooLarge,
    /// Blocking `write_batch` (only of as many frames as fit) or `try_write_batch`.
    WriteBatch { picks: Vec<u32>, blocking: bool },
    /// `reserve`/`try_reserve`, fill, then commit (or drop the guard without committing).
    Reserve {
        pick: u32,
        blocking: bool,
        commit: bool,
    },
    /// Blocking `read` (only when a frame is there) or `try_read`.
    Read { blocking: bool },
    /// `try_read_into` with a buffer of the maximum frame size.
    ReadInto,
    /// Blocking `read_batch` (only when a frame is there) or `try_read_batch`, with room for
    /// `count` frames in a buffer of `bytes` bytes.
    ReadBatch {
        count: usize,
        bytes: usize,
        blocking: bool,
    },
    /// Blocking `acquire` (only when a frame is there) or `try_acquire`, then release.
    Acquire { blocking: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u32>(), any::<bool>()).prop_map(|(pick, blocking)| Op::Write { pick, blocking }),
        1 => Just(Op::WriteTooLarge),
        2 => (vec(any::<u32>(), 1..8), any::<bool>())
            .prop_map(|(picks, blocking)| Op::WriteBatch { picks, blocking }),
        2 => (any::<u32>(), any::<bool>(), prop::bool::weighted(0.8))
            .prop_map(|(pick, blocking, commit)| Op::Reserve { pick, blocking, commit }),
        4 => any::<bool>().prop_map(|blocking| Op::Read { blocking }),
        1 => Just(Op::ReadInto),
        2 => (1usize..8, 0usize..2048, any::<bool>())
            .prop_map(|(count, bytes, blocking)| Op::ReadBatch { count, bytes, blocking }),
        2 => any::<bool>().prop_map(|blocking| Op::Acquire { blocking }),
    ]
}

/// The writer, the reader and what the model expects of them.
struct Harness {
    writer: Writer,
    reader: Reader,
    max: u32,
    capacity: usize,
    /// Sequence number of the next frame to write.
    next_write: u64,
    /// Frames written and not yet read, oldest first.
    unread: VecDeque<Vec<u8>>,
    /// Sequence number of the next frame to read.
    next_read: u64,
}

impl Harness {
    fn free(&self) -> usize {
        self.capacity - self.unread.len()
    }

    fn wrote(&mut self, data: Vec<u8>) {
        self.next_write += 1;
        self.unread.push_back(data);
    }

    /// Checks a frame the reader returned against the oldest unread one.
    fn check_read(&mut self, info: &FrameInfo, data: &[u8]) {
        let expected = self
            .unread
            .pop_front()
            .expect("read a frame that was never written");
        assert_eq!(info.seq, self.next_read, "sequence numbers are contiguous");
        assert_eq!(
            info.len as usize,
            expected.len(),
            "length of frame {}",
            info.seq
        );
        assert_eq!(data, expected.as_slice(), "payload of frame {}", info.seq);
        assert_eq!(info.missed, 0, "a lossless reader misses nothing");
        self.next_read += 1;
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Write { pick, blocking } => {
                let data = payload(self.next_write, frame_len(*pick, self.max));
                if *blocking && self.free() > 0 {
                    self.writer.write(&data).unwrap();
                    self.wrote(data);
                } else {
                    match self.writer.try_write(&data) {
                        Ok(()) => {
                            assert!(self.free() > 0, "try_write succeeded on a full ring");
                            self.wrote(data);
                        }
                        Err(Error::Full) => assert_eq!(self.free(), 0, "Full with free slots"),
                        Err(e) => panic!("try_write: {e}"),
                    }
                }
            }
            Op::WriteTooLarge => {
                let data = vec![0u8; self.max as usize + 1];
                let e = self.writer.try_write(&data).unwrap_err();
                assert!(matches!(e, Error::FrameTooLarge { .. }), "{e}");
            }
            Op::WriteBatch { picks, blocking } => {
                let first = self.next_write;
                let frames: Vec<Vec<u8>> = picks
                    .iter()
                    .enumerate()
                    .map(|(i, &pick)| payload(first + i as u64, frame_len(pick, self.max)))
                    .collect();
                let free = self.free();
                let written = if *blocking && free > 0 {
                    let fit: Vec<&[u8]> = frames.iter().take(free).map(|f| &f[..]).collect();
                    let n = self.writer.write_batch(&fit).unwrap();
                    assert_eq!(n, fit.len(), "a blocking batch that fits is written whole");
                    n
                } else {
                    let all: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
                    match self.writer.try_write_batch(&all) {
                        Ok(n) => {
                            assert_eq!(n, free.min(all.len()), "try_write_batch fills the ring");
                            n
                        }
                        Err(Error::Full) => {
                            assert_eq!(free, 0, "Full with free slots");
                            0
                        }
                        Err(e) => panic!("try_write_batch: {e}"),
                    }
                };
                for data in frames.into_iter().take(written) {
                    self.wrote(data);
                }
            }
            Op::Reserve {
                pick,
                blocking,
                commit,
            } => {
                let data = payload(self.next_write, frame_len(*pick, self.max));
                let (free, seq, max) = (self.free(), self.next_write, self.max as usize);
                let committed = match if *blocking && free > 0 {
                    self.writer.reserve()
                } else {
                    self.writer.try_reserve()
                } {
                    Ok(mut guard) => {
                        assert!(free > 0, "reserved a slot of a full ring");
                        assert_eq!(guard.len(), max);
                        assert_eq!(guard.seq(), seq);
                        guard[..data.len()].copy_from_slice(&data);
                        if *commit {
                            guard.commit(data.len()).unwrap();
                        }
                        *commit
                    }
                    Err(Error::Full) => {
                        assert_eq!(free, 0, "Full with free slots");
                        false
                    }
                    Err(e) => panic!("reserve: {e}"),
                };
                if committed {
                    self.wrote(data);
                }
            }
            Op::Read { blocking } => {
                let result = if *blocking && !self.unread.is_empty() {
                    self.reader.read()
                } else {
                    self.reader.try_read()
                };
                match result {
                    Ok(frame) => self.check_read(&frame.info, &frame.data),
                    Err(Error::Empty) => assert!(self.unread.is_empty(), "Empty with frames"),
                    Err(e) => panic!("read: {e}"),
                }
            }
            Op::ReadInto => {
                let mut buf = vec![0u8; self.max as usize];
                match self.reader.try_read_into(&mut buf) {
                    Ok(info) => self.check_read(&info, &buf[..info.len as usize]),
                    Err(Error::Empty) => assert!(self.unread.is_empty(), "Empty with frames"),
                    Err(e) => panic!("read_into: {e}"),
                }
            }
            Op::ReadBatch {
                count,
                bytes,
                blocking,
            } => {
                let mut buf = vec![0u8; *bytes];
                let mut infos = vec![FrameInfo::default(); *count];
                let result = if *blocking && !self.unread.is_empty() {
                    self.reader.read_batch(&mut buf, &mut infos)
                } else {
                    self.reader.try_read_batch(&mut buf, &mut infos)
                };
                match result {
                    Ok(n) => {
                        // Exactly the frames that fit, in order, back to back.
                        let mut fit = 0;
                        let mut room = *bytes;
                        for frame in self.unread.iter().take(*count) {
                            if frame.len() > room {
                                break;
                            }
                            room -= frame.len();
                            fit += 1;
                        }
                        assert_eq!(n, fit, "read_batch reads every frame that fits");
                        let mut offset = 0;
                        for info in &infos[..n] {
                            let len = info.len as usize;
                            self.check_read(info, &buf[offset..offset + len]);
                            offset += len;
                        }
                    }
                    Err(Error::Empty) => assert!(self.unread.is_empty(), "Empty with frames"),
                    Err(Error::BufferTooSmall { needed, available }) => {
                        let next = self.unread.front().expect("BufferTooSmall without a frame");
                        assert_eq!((needed, available), (next.len(), *bytes));
                    }
                    Err(e) => panic!("read_batch: {e}"),
                }
            }
            Op::Acquire { blocking } => {
                let empty = self.unread.is_empty();
                let frame = {
                    let result = if *blocking && !empty {
                        self.reader.acquire()
                    } else {
                        self.reader.try_acquire()
                    };
                    match result {
                        Ok(guard) => Some((*guard.info(), guard.to_vec())),
                        Err(Error::Empty) => {
                            assert!(empty, "Empty with frames");
                            None
                        }
                        Err(e) => panic!("acquire: {e}"),
                    }
                };
                if let Some((info, data)) = frame {
                    self.check_read(&info, &data);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_mix_of_write_and_read_calls_delivers_every_frame_intact_once_and_in_order(
        capacity_log2 in 0u32..=6,
        max in prop_oneof![1u32..=16, 17u32..=600],
        checksum in any::<bool>(),
        ops in vec(op(), 1..150),
    ) {
        let capacity = 1u32 << capacity_log2;
        let stream = Stream::create(
            &unique("props"),
            &StreamOptions {
                capacity,
                max_frame_size: max,
                checksum,
                unlink_on_close: true,
                ..Default::default()
            },
        )
        .unwrap();
        let reader = stream.reader(&ReaderOptions::default()).unwrap();
        let writer = stream.writer().unwrap();
        let mut h = Harness {
            writer,
            reader,
            max,
            capacity: capacity as usize,
            next_write: 0,
            unread: VecDeque::new(),
            next_read: 0,
        };
        for op in &ops {
            h.run(op);
        }
        // Drain: whatever is left comes out in order, then the ring is empty.
        while !h.unread.is_empty() {
            let frame = h.reader.try_read().unwrap();
            h.check_read(&frame.info, &frame.data);
        }
        prop_assert!(matches!(h.reader.try_read(), Err(Error::Empty)));
        prop_assert_eq!(h.next_read, h.next_write);
    }
}
