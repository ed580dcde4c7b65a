//! Errors and flow-control outcomes, with the stable status numbers the C ABI exposes.
//!
//! Flow-control outcomes (`Full`, `Empty`, `Timeout`, `EndOfStream`, `WriterDead`) are not
//! failures: they tell the caller what the stream is doing. They share the [`Error`] type so that a
//! single `Result` carries every outcome, and [`Error::is_outcome`] tells them apart. Their status
//! numbers are positive; real errors are negative. The numbers are part of the public C contract
//! and are never reused.

use std::fmt;
use std::io;

/// Result alias used throughout shmline.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable status numbers shared by every language binding.
///
/// `0` is success, positive values are flow-control outcomes, negative values are errors.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// The ring is full (a non-blocking write found no free slot).
    Full = 1,
    /// The ring is empty (a non-blocking read found no frame).
    Empty = 2,
    /// A blocking call reached its timeout.
    Timeout = 3,
    /// The writer closed the stream and every frame has been read.
    EndOfStream = 4,
    /// The writer process died without closing and every frame it published has been read.
    WriterDead = 5,
    /// An argument is out of range or inconsistent.
    InvalidArgument = -1,
    /// A required pointer argument was NULL (C ABI only).
    NullPointer = -2,
    /// A segment name is empty, too long or has a forbidden character.
    InvalidName = -3,
    /// Nothing of that name exists (segment, file, pipeline task or task parameter).
    NotFound = -4,
    /// A segment of that name already exists.
    AlreadyExists = -5,
    /// The operating system refused access to the segment.
    PermissionDenied = -6,
    /// The segment exists but is not a shmline segment of the expected kind.
    NotShmline = -7,
    /// The segment was made with another layout version.
    VersionMismatch = -8,
    /// A value read from shared memory is impossible: the segment is corrupt.
    Corrupt = -9,
    /// The stream's schema differs from the one the caller requires.
    SchemaMismatch = -10,
    /// The stream already has a live writer (and is a single-writer stream).
    WriterExists = -11,
    /// Every reader slot of the stream is taken by a live reader.
    TooManyReaders = -12,
    /// A frame is longer than the stream's maximum frame size.
    FrameTooLarge = -13,
    /// The caller's buffer is too small for the frame.
    BufferTooSmall = -14,
    /// The handle is in the wrong state for the call (e.g. commit without reserve).
    WrongState = -15,
    /// Not enough shared memory (`/dev/shm` is full or a limit was hit).
    NoSpace = -16,
    /// Another operating-system error.
    OsError = -17,
    /// A Rust panic was caught at the C boundary (a bug in shmline: please report it).
    Panic = -18,
    /// The call is not supported for this handle (e.g. zero-copy acquire on a lossy reader).
    Unsupported = -19,
    /// A pipeline could not run to the end: a task failed or never joined, or the runner died.
    PipelineFailed = -20,
    /// Every writer slot of a multi-writer stream is taken by a live writer.
    TooManyWriters = -21,
}

impl Status {
    /// Every status, in declaration order.
    pub const ALL: [Status; 27] = [
        Status::Ok,
        Status::Full,
        Status::Empty,
        Status::Timeout,
        Status::EndOfStream,
        Status::WriterDead,
        Status::InvalidArgument,
        Status::NullPointer,
        Status::InvalidName,
        Status::NotFound,
        Status::AlreadyExists,
        Status::PermissionDenied,
        Status::NotShmline,
        Status::VersionMismatch,
        Status::Corrupt,
        Status::SchemaMismatch,
        Status::WriterExists,
        Status::TooManyReaders,
        Status::FrameTooLarge,
        Status::BufferTooSmall,
        Status::WrongState,
        Status::NoSpace,
        Status::OsError,
        Status::Panic,
        Status::Unsupported,
        Status::PipelineFailed,
        Status::TooManyWriters,
    ];

    /// The status with this number, if any.
    pub fn from_code(code: i32) -> Option<Status> {
        Status::ALL.iter().copied().find(|s| *s as i32 == code)
    }

    /// A short, stable, upper-case name (`"END_OF_STREAM"`).
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Full => "FULL",
            Status::Empty => "EMPTY",
            Status::Timeout => "TIMEOUT",
            Status::EndOfStream => "END_OF_STREAM",
            Status::WriterDead => "WRITER_DEAD",
            Status::InvalidArgument => "INVALID_ARGUMENT",
            Status::NullPointer => "NULL_POINTER",
            Status::InvalidName => "INVALID_NAME",
            Status::NotFound => "NOT_FOUND",
            Status::AlreadyExists => "ALREADY_EXISTS",
            Status::PermissionDenied => "PERMISSION_DENIED",
            Status::NotShmline => "NOT_SHMLINE",
            Status::VersionMismatch => "VERSION_MISMATCH",
            Status::Corrupt => "CORRUPT",
            Status::SchemaMismatch => "SCHEMA_MISMATCH",
            Status::WriterExists => "WRITER_EXISTS",
            Status::TooManyReaders => "TOO_MANY_READERS",
            Status::FrameTooLarge => "FRAME_TOO_LARGE",
            Status::BufferTooSmall => "BUFFER_TOO_SMALL",
            Status::WrongState => "WRONG_STATE",
            Status::NoSpace => "NO_SPACE",
            Status::OsError => "OS_ERROR",
            Status::Panic => "PANIC",
            Status::Unsupported => "UNSUPPORTED",
            Status::PipelineFailed => "PIPELINE_FAILED",
            Status::TooManyWriters => "TOO_MANY_WRITERS",
        }
    }

    /// One sentence saying what the status means.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Ok => "success",
            Status::Full => "the ring is full",
            Status::Empty => "the ring is empty",
            Status::Timeout => "the timeout expired",
            Status::EndOfStream => "the writer closed the stream and every frame has been read",
            Status::WriterDead => "the writer died and every frame it published has been read",
            Status::InvalidArgument => "an argument is invalid",
            Status::NullPointer => "a required pointer argument is NULL",
            Status::InvalidName => "the name is invalid",
            Status::NotFound => "nothing of that name exists",
            Status::AlreadyExists => "a segment of that name already exists",
            Status::PermissionDenied => "permission denied",
            Status::NotShmline => "not a shmline segment of the expected kind",
            Status::VersionMismatch => "the segment uses another layout version",
            Status::Corrupt => "the shared memory holds an impossible value",
            Status::SchemaMismatch => "the stream schema does not match",
            Status::WriterExists => "the stream already has a live writer",
            Status::TooManyReaders => "every reader slot is taken",
            Status::FrameTooLarge => "the frame is larger than the stream allows",
            Status::BufferTooSmall => "the buffer is too small for the frame",
            Status::WrongState => "the handle is in the wrong state for this call",
            Status::NoSpace => "not enough shared memory",
            Status::OsError => "operating-system error",
            Status::Panic => "internal panic caught at the C boundary",
            Status::Unsupported => "not supported for this handle",
            Status::PipelineFailed => "the pipeline failed",
            Status::TooManyWriters => "every writer slot is taken",
        }
    }
}

/// Everything a shmline call can report besides success.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Outcome: a non-blocking write found the ring full.
    Full,
    /// Outcome: a non-blocking read found no frame.
    Empty,
    /// Outcome: a blocking call reached its timeout.
    Timeout,
    /// Outcome: the writer closed the stream and every frame has been read.
    EndOfStream,
    /// Outcome: the writer died (pid and start time no longer match a live process) and every frame
    /// it published has been read.
    WriterDead,
    /// An argument is invalid; the text says which and why.
    InvalidArgument(String),
    /// A name is invalid; the text says what is wrong with it.
    InvalidName(String),
    /// Nothing of that name exists (segment, file, pipeline task or task parameter); the text
    /// names what was looked for.
    NotFound(String),
    /// A segment of that name already exists; the text names it.
    AlreadyExists(String),
    /// The OS refused access; the text names the segment.
    PermissionDenied(String),
    /// The segment is not a shmline segment of the expected kind.
    NotShmline(String),
    /// The segment was made with another layout version.
    VersionMismatch {
        /// Segment name.
        name: String,
        /// Version found in the segment.
        found: u32,
        /// Version this library implements.
        expected: u32,
    },
    /// A value read from shared memory is impossible; the text names the field and value.
    Corrupt(String),
    /// The stream's schema is not the one required; the text shows both.
    SchemaMismatch(String),
    /// The stream already has a live writer.
    WriterExists(String),
    /// All reader slots are taken by live readers.
    TooManyReaders(String),
    /// A frame is longer than the stream's maximum frame size.
    FrameTooLarge {
        /// Length of the frame offered.
        len: usize,
        /// Maximum frame size of the stream.
        max: usize,
    },
    /// A buffer is too small for the frame; the frame was not consumed.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The handle is in the wrong state for the call; the text says what was expected.
    WrongState(String),
    /// Not enough shared memory; the text says how much was asked for.
    NoSpace(String),
    /// Another OS error, with what was being done.
    OsError {
        /// What shmline was doing.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// The call is not supported for this handle; the text says why.
    Unsupported(String),
    /// A pipeline could not run to the end; the text names the task and its exit status or
    /// signal, the tasks that never joined, or the runner that died.
    PipelineFailed(String),
    /// Every writer slot of a multi-writer stream is taken by a live writer.
    TooManyWriters(String),
}

impl Error {
    /// The stable status number of this error.
    pub fn status(&self) -> Status {
        match self {
            Error::Full => Status::Full,
            Error::Empty => Status::Empty,
            Error::Timeout => Status::Timeout,
            Error::EndOfStream => Status::EndOfStream,
            Error::WriterDead => Status::WriterDead,
            Error::InvalidArgument(_) => Status::InvalidArgument,
            Error::InvalidName(_) => Status::InvalidName,
            Error::NotFound(_) => Status::NotFound,
            Error::AlreadyExists(_) => Status::AlreadyExists,
            Error::PermissionDenied(_) => Status::PermissionDenied,
            Error::NotShmline(_) => Status::NotShmline,
            Error::VersionMismatch { .. } => Status::VersionMismatch,
            Error::Corrupt(_) => Status::Corrupt,
            Error::SchemaMismatch(_) => Status::SchemaMismatch,
            Error::WriterExists(_) => Status::WriterExists,
            Error::TooManyReaders(_) => Status::TooManyReaders,
            Error::FrameTooLarge { .. } => Status::FrameTooLarge,
            Error::BufferTooSmall { .. } => Status::BufferTooSmall,
            Error::WrongState(_) => Status::WrongState,
            Error::NoSpace(_) => Status::NoSpace,
            Error::OsError { .. } => Status::OsError,
            Error::Unsupported(_) => Status::Unsupported,
            Error::PipelineFailed(_) => Status::PipelineFailed,
            Error::TooManyWriters(_) => Status::TooManyWriters,
        }
    }

    /// True for flow-control outcomes (full, empty, timeout, end of stream, writer dead), which
    /// are not failures.
    pub fn is_outcome(&self) -> bool {
        (self.status() as i32) > 0
    }

    /// Wraps an OS error with what shmline was doing, mapping the usual errno values to the
    /// specific kinds (`NotFound`, `AlreadyExists`, `PermissionDenied`, `NoSpace`).
    pub(crate) fn os(context: impl Into<String>, source: io::Error) -> Error {
        let context = context.into();
        match source.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound(format!("{context}: {source}")),
            Some(libc::EEXIST) => Error::AlreadyExists(context),
            Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied(context),
            Some(libc::ENOSPC) | Some(libc::ENOMEM) | Some(libc::EFBIG) => Error::NoSpace(format!(
                "{context}: {source} (is /dev/shm full? `df -h /dev/shm` shows its free space)"
            )),
            _ => Error::OsError { context, source },
        }
    }

    pub(crate) fn corrupt(what: impl fmt::Display) -> Error {
        Error::Corrupt(format!(
            "{what} (the shared memory was damaged by another process)"
        ))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Full
            | Error::Empty
            | Error::Timeout
            | Error::EndOfStream
            | Error::WriterDead => f.write_str(self.status().describe()),
            Error::InvalidArgument(m)
            | Error::InvalidName(m)
            | Error::Corrupt(m)
            | Error::SchemaMismatch(m)
            | Error::WriterExists(m)
            | Error::TooManyReaders(m)
            | Error::WrongState(m)
            | Error::NoSpace(m)
            | Error::NotShmline(m)
            | Error::Unsupported(m)
            | Error::PipelineFailed(m)
            | Error::TooManyWriters(m) => f.write_str(m),
            Error::NotFound(m) => f.write_str(m),
            Error::AlreadyExists(m) => write!(f, "{m}: a segment of that name already exists"),
            Error::PermissionDenied(m) => write!(
                f,
                "{m}: permission denied (segments are owner-only unless created with a wider mode)"
            ),
            Error::VersionMismatch {
                name,
                found,
                expected,
            } => write!(
                f,
                "{name}: made with shmline layout version {found}, but this library speaks version \
                 {expected}; use the same shmline release on both sides, or recreate the segment"
            ),
            Error::FrameTooLarge { len, max } => write!(
                f,
                "frame of {len} bytes is larger than the stream's maximum frame size of {max} bytes"
            ),
            Error::BufferTooSmall { needed, available } => write!(
                f,
                "buffer of {available} bytes is too small for a frame of {needed} bytes (the frame \
                 was not consumed)"
            ),
            Error::OsError { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::OsError { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_numbers_are_unique_and_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s as i32), Some(s));
        }
        let mut codes: Vec<i32> = Status::ALL.iter().map(|s| *s as i32).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Status::ALL.len());
    }

    #[test]
    fn outcomes_are_positive_and_errors_negative() {
        assert!(Error::Timeout.is_outcome());
        assert!(Error::EndOfStream.is_outcome());
        assert!(!Error::corrupt("x").is_outcome());
        assert_eq!(Error::corrupt("x").status() as i32, -9);
    }

    #[test]
    fn enospc_maps_to_no_space_with_a_hint() {
        let e = Error::os("creating x", io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.status(), Status::NoSpace);
        assert!(e.to_string().contains("/dev/shm"));
    }
}
