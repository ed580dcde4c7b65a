//! Stale segments: telling a segment nobody alive uses from one in use, and removing it.
//!
//! Creation is exclusive, so a segment left behind by a process that died (`kill -9`, a crash, a
//! container stopped hard) keeps its name taken. Creating it again fails with
//! [`Error::AlreadyExists`], whose message says whether the segment is stale; removing it is an
//! explicit step ([`Stream::remove_stale`], [`Event::remove_stale`], or `shmline clean`), never a
//! side effect of `create`, so a process can never silently take a name over from a live one.
//!
//! A segment is stale when no live process uses it through shmline:
//! - a stream: its creator, its writer and every reader in its reader table are dead;
//! - an event: its creator is dead (an event records no other users: a process that opened it
//!   keeps its mapping, but stops sharing it with processes that create the name again).
//!
//! Only a segment that can be read and proven stale is ever removed. `/dev/shm` is writable by
//! every user, so a name may hold a file that is not a finished shmline segment: a symbolic link,
//! a FIFO, a file too small or without the magic (another program's file, or a segment whose
//! creator is still making it or died doing so), or a file of foreign bytes. Such a file is
//! never judged stale: [`Error::NotShmline`] says what it is, it is left alone, and its owner
//! deletes it by hand if it is theirs. Judging never waits for a creator still initialising
//! (see [`crate::shm::inspect`]), so a planted file costs a few system calls.
//!
//! Liveness is pid plus start time (see [`crate::liveness`]); processes in another pid namespace
//! cannot be judged and must not share segments. A segment of another layout version, or one
//! whose header is damaged, is never judged stale either: the error says why it cannot be read.
//!
//! Removal checks, then unlinks: two processes recovering the same name at the same moment can
//! race (one may remove the other's fresh segment). Recover a name from one place (the process
//! that owns it, the pipeline runner, or `shmline clean`).

use crate::error::{Error, Result};
use crate::event::Event;
use crate::ring::{Stream, WriterState};
use crate::shm::{file_name, inspect, Segment, SegmentKind};

/// Whether a live process still uses a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// A live process uses the segment.
    InUse {
        /// Its pid.
        pid: u32,
        /// What it is to the segment: `"creator"`, `"writer"` or `"reader"`.
        role: &'static str,
    },
    /// Nobody alive uses it; the text says why it is stale.
    Stale(String),
}

/// Who uses stream `name`, by the rules in the module documentation.
///
/// Errors: [`Error::NotFound`] if there is no such stream; [`Error::NotShmline`] for a file that
/// is not a finished shmline stream (never stale, see the module documentation);
/// [`Error::VersionMismatch`] and [`Error::Corrupt`] for a stream that cannot be judged.
pub fn stream_usage(name: &str) -> Result<Usage> {
    inspect(SegmentKind::Stream, name)?;
    let stream = Stream::open(name)?;
    let creator = stream.info().creator;
    if creator.is_alive() {
        return Ok(Usage::InUse {
            pid: creator.pid,
            role: "creator",
        });
    }
    let stats = stream.stats();
    if stats.writer_state == WriterState::Active {
        return Ok(Usage::InUse {
            pid: stats.writer_pid.unwrap_or(0),
            role: "writer",
        });
    }
    if let Some(reader) = stats.readers.iter().find(|r| r.alive) {
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

/// Who uses event `name`, by the rules in the module documentation.
///
/// Errors: as [`stream_usage`].
pub fn event_usage(name: &str) -> Result<Usage> {
    inspect(SegmentKind::Event, name)?;
    let event = Event::open(name)?;
    let creator = event.creator();
    if creator.is_alive() {
        return Ok(Usage::InUse {
            pid: creator.pid,
            role: "creator",
        });
    }
    Ok(Usage::Stale(format!(
        "its creator (pid {}) is dead",
        creator.pid
    )))
}

/// Removes segment `name` of `kind` if `usage` says it is stale. `Ok(false)` if it does not
/// exist; [`Error::AlreadyExists`] naming the live process if it is in use.
fn remove_if_stale(kind: SegmentKind, name: &str, usage: Result<Usage>) -> Result<bool> {
    match usage {
        Ok(Usage::Stale(_)) => match Segment::unlink(kind, name) {
            Ok(()) => Ok(true),
            // Somebody removed it first, which is what we wanted.
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        },
        Ok(Usage::InUse { pid, role }) => Err(Error::AlreadyExists(format!(
            "{} {name:?} is in use by its {role} (pid {pid}), so it was not removed",
            kind.noun()
        ))),
        Err(Error::NotFound(_)) => Ok(false),
        Err(Error::NotShmline(why)) => Err(Error::NotShmline(format!(
            "{why}; not a shmline segment: left alone (delete it by hand if it is yours)"
        ))),
        Err(e) => Err(e),
    }
}

impl Stream {
    /// Removes stream `name` if nobody alive uses it (its creator, writer and readers are all
    /// dead), so the name can be created again.
    ///
    /// Returns true if it removed the stream, false if there was no such stream. Fails with
    /// [`Error::AlreadyExists`] naming the live process if the stream is in use, with
    /// [`Error::NotShmline`] if the name holds something that is not a finished shmline stream
    /// (a FIFO, a link, an empty or foreign file), and with [`Error::VersionMismatch`] or
    /// [`Error::Corrupt`] if the segment cannot be judged; nothing is removed in those cases.
    /// Never waits for a creator still initialising. See [`crate::stale`] for the rules and
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
        crate::shm::validate_name(name)?;
        remove_if_stale(SegmentKind::Stream, name, stream_usage(name))
    }
}

impl Event {
    /// Removes event `name` if its creator is dead, so the name can be created again. Processes that still have it open keep their (now private) copy.
    ///
    /// Returns and fails as [`Stream::remove_stale`].
    pub fn remove_stale(name: &str) -> Result<bool> {
        crate::shm::validate_name(name)?;
        remove_if_stale(SegmentKind::Event, name, event_usage(name))
    }
}

/// Turns the `AlreadyExists` of an exclusive create into one that says who holds the name and,
/// if nobody alive does, how to recover it. Other errors pass through.
pub(crate) fn explain_exists(kind: SegmentKind, name: &str, error: Error) -> Error {
    let Error::AlreadyExists(_) = error else {
        return error;
    };
    let usage = match kind {
        SegmentKind::Stream => stream_usage(name),
        SegmentKind::Event => event_usage(name),
        SegmentKind::Pipeline => return error,
    };
    let (noun, call) = match kind {
        SegmentKind::Stream => ("stream", "Stream::remove_stale"),
        _ => ("event", "Event::remove_stale"),
    };
    let file = file_name(kind, name);
    Error::AlreadyExists(match usage {
        Ok(Usage::InUse { pid, role }) => {
            format!("{noun} {name:?} (/dev/shm/{file}) is in use by its {role} (pid {pid})")
        }
        Ok(Usage::Stale(why)) => format!(
            "{noun} {name:?} (/dev/shm/{file}) was left behind: {why}; remove it with {call} \
             or `shmline clean {name}`, then create it again"
        ),
        Err(Error::NotFound(_)) => {
            format!("{noun} {name:?} (/dev/shm/{file}) existed, and was removed meanwhile")
        }
        Err(Error::NotShmline(why)) => format!(
            "/dev/shm/{file} exists but is not a finished shmline {noun} ({why}); shmline never \
             removes such a file: if a creator is still making it, open it instead; if it is a \
             leftover of yours, delete it by hand, then create {name:?} again"
        ),
        Err(e) => format!("{noun} {name:?} (/dev/shm/{file}) exists but cannot be judged: {e}"),
    })
}
