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

/// Defines [`Status`] and its tables from one list, so that a status's number, name and
/// description are written once: `Variant = number, "NAME", "description";`, each with its doc,
/// inside what reads as the enum's declaration.
/// The C ABI's `SHMLINE_*` constants repeat the numbers as literals (cbindgen reads literals, not
/// macros); `tests/header.rs` checks them against this list, and holds the frozen numbers.
macro_rules! statuses {
    (@one $variant:ident) => {
        1
    };
    (
        $(#[doc = $enum_doc:literal])*
        pub enum Status {$(
            $(#[doc = $doc:literal])*
            $variant:ident = $number:literal, $name:literal, $describe:literal;
        )*}
    ) => {
        $(#[doc = $enum_doc])*
        #[repr(i32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Status {
            $($(#[doc = $doc])* $variant = $number,)*
        }

        impl Status {
            /// Every status, in declaration order.
            pub const ALL: [Status; 0 $(+ statuses!(@one $variant))*] = [$(Status::$variant),*];

            /// The status with this number, if any.
            pub fn from_code(code: i32) -> Option<Status> {
                match code {
                    $($number => Some(Status::$variant),)*
                    _ => None,
                }
            }

            /// A short, stable, upper-case name (`"END_OF_STREAM"`): the C constant without its
            /// `SHMLINE_` prefix.
            pub fn name(self) -> &'static str {
                match self {
                    $(Status::$variant => $name,)*
                }
            }

            /// One sentence saying what the status means.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Status::$variant => $describe,)*
                }
            }
        }
    };
}

statuses! {
    /// Stable status numbers shared by every language binding.
    ///
    /// `0` is success, positive values are flow-control outcomes, negative values are errors.
    pub enum Status {
        /// The call succeeded.
        Ok = 0, "OK", "success";
        /// The ring is full (a non-blocking write found no free slot).
        Full = 1, "FULL", "the ring is full";
        /// The ring is empty (a non-blocking read found no frame).
        Empty = 2, "EMPTY", "the ring is empty";
        /// A blocking call reached its timeout.
        Timeout = 3, "TIMEOUT", "the timeout expired";
        /// The writer closed the stream and every frame has been read.
        EndOfStream = 4, "END_OF_STREAM",
            "the writer closed the stream and every frame has been read";
        /// The writer process died without closing and every frame it published has been read.
        WriterDead = 5, "WRITER_DEAD", "the writer died and every frame it published has been read";
        /// An argument is out of range or inconsistent.
        InvalidArgument = -1, "INVALID_ARGUMENT", "an argument is invalid";
        /// A required pointer argument was NULL (C ABI only).
        NullPointer = -2, "NULL_POINTER", "a required pointer argument is NULL";
        /// A segment name is empty, too long or has a forbidden character.
        InvalidName = -3, "INVALID_NAME", "the name is invalid";
        /// Nothing of that name exists (segment, file, pipeline task or task parameter).
        NotFound = -4, "NOT_FOUND", "nothing of that name exists";
        /// A segment of that name already exists.
        AlreadyExists = -5, "ALREADY_EXISTS", "a segment of that name already exists";
        /// The operating system refused access to the segment.
        PermissionDenied = -6, "PERMISSION_DENIED", "permission denied";
        /// The segment exists but is not a shmline segment of the expected kind.
        NotShmline = -7, "NOT_SHMLINE", "not a shmline segment of the expected kind";
        /// The segment was made with another layout version.
        VersionMismatch = -8, "VERSION_MISMATCH", "the segment uses another layout version";
        /// A value read from shared memory is impossible: the segment is corrupt.
        Corrupt = -9, "CORRUPT", "the shared memory holds an impossible value";
        /// The stream's schema differs from the one the caller requires.
        SchemaMismatch = -10, "SCHEMA_MISMATCH", "the stream schema does not match";
        /// The stream already has a live writer (and is a single-writer stream).
        WriterExists = -11, "WRITER_EXISTS", "the stream already has a live writer";
        /// Every reader slot of the stream is taken by a live reader.
        TooManyReaders = -12, "TOO_MANY_READERS", "every reader slot is taken";
        /// A frame is longer than the stream's maximum frame size.
        FrameTooLarge = -13, "FRAME_TOO_LARGE", "the frame is larger than the stream allows";
        /// The caller's buffer is too small for the frame.
        BufferTooSmall = -14, "BUFFER_TOO_SMALL", "the buffer is too small for the frame";
        /// The handle is in the wrong state for the call (e.g. commit without reserve).
        WrongState = -15, "WRONG_STATE", "the handle is in the wrong state for this call";
        /// Not enough shared memory (`/dev/shm` is full or a limit was hit).
        NoSpace = -16, "NO_SPACE", "not enough shared memory";
        /// Another operating-system error.
        OsError = -17, "OS_ERROR", "operating-system error";
        /// A Rust panic was caught at the C boundary (a bug in shmline: please report it).
        Panic = -18, "PANIC", "internal panic caught at the C boundary";
        /// The call is not supported for this handle (e.g. zero-copy acquire on a lossy reader).
        Unsupported = -19, "UNSUPPORTED", "not supported for this handle";
        /// A pipeline could not run to the end: a task failed or never joined, or the runner died.
        PipelineFailed = -20, "PIPELINE_FAILED", "the pipeline failed";
        /// Every writer slot of a multi-writer stream is taken by a live writer.
        TooManyWriters = -21, "TOO_MANY_WRITERS", "every writer slot is taken";
    }
}

/// Everything a shmline call can report besides success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Outcome: a non-blocking write found the ring full.
    #[error("{}", Status::Full.describe())]
    Full,
    /// Outcome: a non-blocking read found no frame.
    #[error("{}", Status::Empty.describe())]
    Empty,
    /// Outcome: a blocking call reached its timeout.
    #[error("{}", Status::Timeout.describe())]
    Timeout,
    /// Outcome: the writer closed the stream and every frame has been read.
    #[error("{}", Status::EndOfStream.describe())]
    EndOfStream,
    /// Outcome: the writer died (pid and start time no longer match a live process) and every frame
    /// it published has been read.
    #[error("{}", Status::WriterDead.describe())]
    WriterDead,
    /// An argument is invalid; the text says which and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// A name is invalid; the text says what is wrong with it.
    #[error("{0}")]
    InvalidName(String),
    /// Nothing of that name exists (segment, file, pipeline task or task parameter); the text
    /// names what was looked for.
    #[error("{0}")]
    NotFound(String),
    /// A segment of that name already exists; the text names it.
    #[error("{0}: a segment of that name already exists")]
    AlreadyExists(String),
    /// The OS refused access; the text names the segment.
    #[error("{0}: permission denied (segments are owner-only unless created with a wider mode)")]
    PermissionDenied(String),
    /// The segment is not a shmline segment of the expected kind.
    #[error("{0}")]
    NotShmline(String),
    /// The segment was made with another layout version.
    #[error(
        "{name}: made with shmline layout version {found}, but this library speaks version \
         {expected}; use the same shmline release on both sides, or recreate the segment"
    )]
    VersionMismatch {
        /// Segment name.
        name: String,
        /// Version found in the segment.
        found: u32,
        /// Version this library implements.
        expected: u32,
    },
    /// A value read from shared memory is impossible; the text names the field and value.
    #[error("{0}")]
    Corrupt(String),
    /// The stream's schema is not the one required; the text shows both.
    #[error("{0}")]
    SchemaMismatch(String),
    /// The stream already has a live writer.
    #[error("{0}")]
    WriterExists(String),
    /// All reader slots are taken by live readers.
    #[error("{0}")]
    TooManyReaders(String),
    /// A frame is longer than the stream's maximum frame size.
    #[error("frame of {len} bytes is larger than the stream's maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// Length of the frame offered.
        len: usize,
        /// Maximum frame size of the stream.
        max: usize,
    },
    /// A buffer is too small for the frame; the frame was not consumed.
    #[error(
        "buffer of {available} bytes is too small for a frame of {needed} bytes (the frame was \
         not consumed)"
    )]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The handle is in the wrong state for the call; the text says what was expected.
    #[error("{0}")]
    WrongState(String),
    /// Not enough shared memory; the text says how much was asked for.
    #[error("{0}")]
    NoSpace(String),
    /// Another OS error, with what was being done.
    #[error("{context}: {source}")]
    OsError {
        /// What shmline was doing.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// The call is not supported for this handle; the text says why.
    #[error("{0}")]
    Unsupported(String),
    /// A pipeline could not run to the end; the text names the task and its exit status or
    /// signal, the tasks that never joined, or the runner that died.
    #[error("{0}")]
    PipelineFailed(String),
    /// Every writer slot of a multi-writer stream is taken by a live writer.
    #[error("{0}")]
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
    fn every_error_says_what_went_wrong_in_its_fixed_words() {
        let m = || "x".to_owned();
        let cases: Vec<(Error, &str)> = vec![
            (Error::Full, "the ring is full"),
            (Error::Empty, "the ring is empty"),
            (Error::Timeout, "the timeout expired"),
            (
                Error::EndOfStream,
                "the writer closed the stream and every frame has been read",
            ),
            (
                Error::WriterDead,
                "the writer died and every frame it published has been read",
            ),
            (Error::InvalidArgument(m()), "x"),
            (Error::InvalidName(m()), "x"),
            (Error::NotFound(m()), "x"),
            (
                Error::AlreadyExists(m()),
                "x: a segment of that name already exists",
            ),
            (
                Error::PermissionDenied(m()),
                "x: permission denied (segments are owner-only unless created with a wider mode)",
            ),
            (Error::NotShmline(m()), "x"),
            (
                Error::VersionMismatch {
                    name: m(),
                    found: 2,
                    expected: 3,
                },
                "x: made with shmline layout version 2, but this library speaks version 3; use \
                 the same shmline release on both sides, or recreate the segment",
            ),
            (Error::Corrupt(m()), "x"),
            (Error::SchemaMismatch(m()), "x"),
            (Error::WriterExists(m()), "x"),
            (Error::TooManyReaders(m()), "x"),
            (
                Error::FrameTooLarge { len: 9, max: 8 },
                "frame of 9 bytes is larger than the stream's maximum frame size of 8 bytes",
            ),
            (
                Error::BufferTooSmall {
                    needed: 9,
                    available: 8,
                },
                "buffer of 8 bytes is too small for a frame of 9 bytes (the frame was not \
                 consumed)",
            ),
            (Error::WrongState(m()), "x"),
            (Error::NoSpace(m()), "x"),
            (
                Error::OsError {
                    context: m(),
                    source: io::Error::other("boom"),
                },
                "x: boom",
            ),
            (Error::Unsupported(m()), "x"),
            (Error::PipelineFailed(m()), "x"),
            (Error::TooManyWriters(m()), "x"),
        ];
        for (error, message) in &cases {
            assert_eq!(error.to_string(), *message, "{error:?}");
        }
        // Only the OS error has a cause to chain to.
        use std::error::Error as _;
        for (error, _) in &cases {
            assert_eq!(
                error.source().is_some(),
                matches!(error, Error::OsError { .. }),
                "{error:?}"
            );
        }
    }

    #[test]
    fn enospc_maps_to_no_space_with_a_hint() {
        let e = Error::os("creating x", io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.status(), Status::NoSpace);
        assert!(e.to_string().contains("/dev/shm"));
    }
}
