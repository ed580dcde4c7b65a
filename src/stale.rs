//! Stale segments: what every kind shares (the [`Usage`] verdict, removal, the message of a
//! refused create). Each kind's rule lives next to its type ([`crate::Stream::usage`],
//! [`crate::Event::usage`]); the rules are documented on [`Usage`].

use crate::error::{Error, Result};
use crate::shm::{file_name, Segment, SegmentKind};

/// Whether a live process still uses a segment: the verdict of the stale rules, which tell a
/// segment nobody alive uses from one in use, so that it may be removed.
///
/// Creation is exclusive, so a segment left behind by a process that died (`kill -9`, a crash, a
/// container stopped hard) keeps its name taken. Creating it again fails with
/// [`Error::AlreadyExists`], whose message says whether the segment is stale; removing it is an
/// explicit step ([`Stream::remove_stale`](crate::Stream::remove_stale),
/// [`Event::remove_stale`](crate::Event::remove_stale), or `shmline clean`), never a side effect
/// of `create`, so a process can never silently take a name over from a live one.
///
/// A segment is stale when no live process uses it through shmline:
/// - a stream: its creator, its writer and every reader in its reader table are dead
///   ([`Stream::usage`](crate::Stream::usage));
/// - an event: its creator is dead (an event records no other users: a process that opened it
///   keeps its mapping, but stops sharing it with processes that create the name again;
///   [`Event::usage`](crate::Event::usage)).
///
/// Only a segment that can be read and proven stale is ever removed. `/dev/shm` is writable by
/// every user, so a name may hold a file that is not a finished shmline segment: a symbolic link,
/// a FIFO, a file too small or without the magic (another program's file, or a segment whose
/// creator is still making it or died doing so), or a file of foreign bytes. Such a file is
/// never judged stale: [`Error::NotShmline`] says what it is, it is left alone, and its owner
/// deletes it by hand if it is theirs. Judging never waits for a creator still initialising
/// (see `shm::inspect`), so a planted file costs a few system calls.
///
/// Liveness is pid plus start time ([`ProcessId::is_alive`](crate::ProcessId::is_alive));
/// processes in another pid namespace cannot be judged and must not share segments. A segment of another layout version, or one
/// whose header is damaged, is never judged stale either: the error says why it cannot be read.
///
/// Removal checks, then unlinks: two processes recovering the same name at the same moment can
/// race (one may remove the other's fresh segment). Recover a name from one place (the process
/// that owns it, the pipeline runner, or `shmline clean`).
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

/// Removes segment `name` of `kind` if `usage` (its kind's rule, judged now) says it is stale.
/// `Ok(false)` if it does not exist; [`Error::AlreadyExists`] naming the live process if it is in
/// use.
pub(crate) fn remove_if_stale(
    kind: SegmentKind,
    name: &str,
    usage: impl FnOnce(&str) -> Result<Usage>,
) -> Result<bool> {
    crate::shm::validate_name(name)?;
    match usage(name) {
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

/// Turns the `AlreadyExists` of an exclusive create into one that says who holds the name and,
/// if nobody alive does (judged by `usage`, its kind's rule), how to recover it. Other errors
/// pass through.
pub(crate) fn explain_exists(
    kind: SegmentKind,
    name: &str,
    error: Error,
    usage: impl FnOnce(&str) -> Result<Usage>,
) -> Error {
    let Error::AlreadyExists(_) = error else {
        return error;
    };
    let usage = usage(name);
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
