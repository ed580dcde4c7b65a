//! Writing frames that were committed elsewhere: a relay (such as the Zenoh bridge,
//! `shmline-bridge`) republishes another stream's frames with their origin timestamp and flags,
//! and publishes the origin's gaps so that local readers count them as missed.
//!
//! Built only on the writer's public reserve/commit steps, so the writer's hot path is untouched.

use super::Writer;
use crate::error::{Error, Result};
use crate::wait::Deadline;

impl Writer {
    /// Writes one frame whose commit time is `timestamp_ns` (nanoseconds, as the origin's
    /// [`FrameInfo::timestamp_ns`](super::FrameInfo::timestamp_ns)) with application `flags`,
    /// waiting for space until `deadline` ([`Error::Timeout`], or [`Error::Full`] for
    /// [`Deadline::Now`]). Nothing is published on error.
    ///
    /// ```
    /// use shmline::__private::Deadline;
    /// use shmline::{ReaderOptions, Stream, StreamOptions};
    /// # let name = format!("doc-write-at-{}", std::process::id());
    /// let stream = Stream::create(&name, &StreamOptions { max_frame_size: 8, unlink_on_close: true, ..Default::default() })?;
    /// let mut reader = stream.reader(&ReaderOptions::default())?;
    /// let mut writer = stream.writer()?;
    /// writer.write_at(b"hi", 7, 1234, Deadline::Now)?;
    /// let frame = reader.read()?;
    /// assert_eq!((frame.info.timestamp_ns, frame.info.flags, &frame.data[..]), (1234, 7, &b"hi"[..]));
    /// # Ok::<(), shmline::Error>(())
    /// ```
    pub fn write_at(
        &mut self,
        data: &[u8],
        flags: u32,
        timestamp_ns: u64,
        deadline: Deadline,
    ) -> Result<()> {
        if data.len() > self.max_frame_size() {
            return Err(Error::FrameTooLarge {
                len: data.len(),
                max: self.max_frame_size(),
            });
        }
        let payload = self.reserve_raw(deadline)?;
        // SAFETY: `reserve_raw` returned max_frame_size writable bytes of the reserved slot, which
        // only this writer touches until commit, and data.len() <= max_frame_size was checked.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), payload, data.len()) };
        self.commit_raw_at(data.len(), flags, timestamp_ns)
    }

    /// Publishes `count` sequence numbers as skipped, waiting for space until `deadline`: readers
    /// step over them and count them in [`FrameInfo::missed`](super::FrameInfo::missed), exactly
    /// as the frames a lossy reader lost. Returns how many were published (fewer than `count`
    /// only if the deadline passed after at least one; none gives the deadline's error).
    ///
    /// Only streams with a writer table can hold a skipped number (created with
    /// `max_writers >= 2`); a single-writer stream gives [`Error::WrongState`].
    ///
    /// ```
    /// use shmline::__private::Deadline;
    /// use shmline::{ReaderOptions, Stream, StreamOptions};
    /// # let name = format!("doc-skip-{}", std::process::id());
    /// let options = StreamOptions { max_frame_size: 8, max_writers: 2, unlink_on_close: true, ..Default::default() };
    /// let stream = Stream::create(&name, &options)?;
    /// let mut reader = stream.reader(&ReaderOptions::default())?;
    /// let mut writer = stream.writer()?;
    /// writer.skip(3, Deadline::Now)?;
    /// writer.write(b"x")?;
    /// let frame = reader.read()?;
    /// assert_eq!((frame.info.seq, frame.info.missed), (3, 3));
    /// # Ok::<(), shmline::Error>(())
    /// ```
    pub fn skip(&mut self, count: u64, deadline: Deadline) -> Result<u64> {
        if self.stream().info().max_writers < 2 {
            return Err(Error::WrongState(format!(
                "stream {:?} is a single-writer stream, which cannot hold a skipped sequence \
                 number: create it with max_writers >= 2 to publish gaps",
                self.stream_name()
            )));
        }
        for done in 0..count {
            match self.reserve_raw(deadline) {
                // A reserved number that is given back is published as skipped in a stream with
                // a writer table (see `Writer::abort_raw`).
                Ok(_) => self.abort_raw(),
                Err(Error::Timeout | Error::Full) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use crate::wait::Deadline;
    use crate::{Error, ReaderOptions, Stream, StreamOptions};

    fn stream(what: &str, max_writers: u32) -> Stream {
        let name = format!("t-relay-{what}-{}", std::process::id());
        let options = StreamOptions {
            max_frame_size: 8,
            capacity: 4,
            max_writers,
            unlink_on_close: true,
            ..Default::default()
        };
        Stream::create(&name, &options).unwrap()
    }

    #[test]
    fn a_frame_written_at_a_timestamp_keeps_it_and_its_flags() {
        let stream = stream("at", 1);
        let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
        let mut writer = stream.writer().unwrap();
        writer.write_at(b"abc", 5, 42, Deadline::Now).unwrap();
        let frame = reader.read().unwrap();
        assert_eq!(frame.data, b"abc");
        assert_eq!((frame.info.timestamp_ns, frame.info.flags), (42, 5));
    }

    #[test]
    fn a_frame_too_large_for_the_stream_is_refused_and_nothing_is_reserved() {
        let stream = stream("large", 1);
        let mut writer = stream.writer().unwrap();
        let err = writer.write_at(&[0; 9], 0, 1, Deadline::Now).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { len: 9, max: 8 }));
        assert!(!writer.is_reserved());
    }

    #[test]
    fn skipped_numbers_reach_readers_as_missed_and_the_next_frame_keeps_its_number() {
        let stream = stream("skip", 2);
        let mut reader = stream.reader(&ReaderOptions::default()).unwrap();
        let mut writer = stream.writer().unwrap();
        writer.write(b"a").unwrap();
        assert_eq!(writer.skip(2, Deadline::Now).unwrap(), 2);
        writer.write(b"b").unwrap();
        assert_eq!(reader.read().unwrap().info.missed, 0);
        let frame = reader.read().unwrap();
        assert_eq!(
            (frame.info.seq, frame.info.missed, &frame.data[..]),
            (3, 2, &b"b"[..])
        );
    }

    #[test]
    fn skipping_more_than_the_free_space_stops_at_the_full_ring() {
        let stream = stream("skip-full", 2);
        let _reader = stream.reader(&ReaderOptions::default()).unwrap();
        let mut writer = stream.writer().unwrap();
        assert_eq!(writer.skip(10, Deadline::Now).unwrap(), 4);
        assert!(matches!(writer.skip(1, Deadline::Now), Err(Error::Full)));
    }

    #[test]
    fn a_single_writer_stream_refuses_to_skip() {
        let stream = stream("skip-single", 1);
        let mut writer = stream.writer().unwrap();
        assert!(matches!(
            writer.skip(1, Deadline::Now),
            Err(Error::WrongState(_))
        ));
    }
}
