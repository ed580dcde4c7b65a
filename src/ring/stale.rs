//! The stale rule of a stream: who still uses it, and removing it when nobody alive does (see
//! [`Usage`](crate::Usage) for what every kind shares).

use super::{Stream, WriterState};
use crate::error::Result;
use crate::shm::{inspect, SegmentKind};
use crate::stale::{remove_if_stale, Usage};

impl Stream {
    /// Removes stream `name` if nobody alive uses it (its creator, writer and readers are all
    /// dead), so the name can be created again.
    ///
    /// Returns true if it removed the stream, false if there was no such stream. Fails with
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) naming the live process if the stream is in use, with
    /// [`Error::NotShmline`](crate::Error::NotShmline) if the name holds something that is not a finished shmline stream
    /// (a FIFO, a link, an empty or foreign file), and with [`Error::VersionMismatch`](crate::Error::VersionMismatch) or
    /// [`Error::Corrupt`](crate::Error::Corrupt) if the segment cannot be judged; nothing is removed in those cases.
    /// Never waits for a creator still initialising. See [`Usage`](crate::Usage) for the rules and
    /// their limits.
    ///
    /// ```
    /// use shmline::{Stream, StreamOptions};
    /// # let name = format!("doc-remove-stale-{}", std::process::id());
    /// let options = StreamOptions { max_frame_size: 64, unlink_on_close: true, ..Default::default() };
    /// // After a crash, the stream of a dead process may still hold the name:
    /// Stream::remove_stale(&name)?;
    /// let stream = Stream::create(&name, &options)?;
    /// // A stream in use is never removed.
    /// assert!(Stream::remove_stale(&name).is_err());
    /// # Ok::<(), shmline::Error>(())
    /// ```
    pub fn remove_stale(name: &str) -> Result<bool> {
        remove_if_stale(SegmentKind::Stream, name, Stream::usage)
    }

    /// Who uses stream `name`: a live creator, writer or reader, or nobody (stale: see
    /// [`Usage`](crate::Usage)).
    ///
    /// Errors: [`Error::NotFound`](crate::Error::NotFound) if there is no such stream; [`Error::NotShmline`](crate::Error::NotShmline) for a file that
    /// is not a finished shmline stream (never stale, see [`Usage`](crate::Usage));
    /// [`Error::VersionMismatch`](crate::Error::VersionMismatch) and [`Error::Corrupt`](crate::Error::Corrupt) for a stream that cannot be judged.
    pub fn usage(name: &str) -> Result<Usage> {
        inspect(SegmentKind::Stream, name)?;
        let stream = Stream::open(name)?;
        let creator = stream.info().creator;
        // Running, not merely alive: a zombie (exited, not reaped) uses nothing any more.
        if creator.is_running() {
            return Ok(Usage::InUse {
                pid: creator.pid,
                role: "creator",
            });
        }
        let stats = stream.stats();
        if stats.writer_state == WriterState::Active
            && stats.writer_pid.is_none_or(crate::liveness::pid_running)
        {
            return Ok(Usage::InUse {
                pid: stats.writer_pid.unwrap_or(0),
                role: "writer",
            });
        }
        if let Some(reader) = stats
            .readers
            .iter()
            .find(|r| r.alive && crate::liveness::pid_running(r.pid))
        {
            return Ok(Usage::InUse {
                pid: reader.pid,
                role: "reader",
            });
        }
        Ok(Usage::Stale(format!(
            "its creator (pid {}), writer and readers are dead",
            creator.pid
        )))
    }
}
