//! Status codes, error messages and versions.
//!
//! The status numbers are the core's [`Status`] numbers (`src/error.rs`, their one list), written
//! out as literals so that cbindgen can copy them into the header; `tests/header.rs` checks every
//! `SHMLINE_*` status macro of the header against the core and against the frozen numbers.

use super::{guard, last_error_ptr};
use crate::error::Status;
use std::ffi::{c_char, CString};
use std::sync::OnceLock;

/// Success.
pub const SHMLINE_OK: i32 = 0;
/// Outcome, not an error: the ring is full (a write that was not allowed to wait found no free
/// slot). Nothing was written; try again later.
pub const SHMLINE_FULL: i32 = 1;
/// Outcome, not an error: the ring is empty (a read that was not allowed to wait found no frame),
/// or an event is not set (an event wait that was not allowed to wait).
pub const SHMLINE_EMPTY: i32 = 2;
/// Outcome, not an error: a blocking call reached its timeout.
pub const SHMLINE_TIMEOUT: i32 = 3;
/// Outcome, not an error: the writer closed the stream and this reader has read every frame.
/// Every later read returns it again.
pub const SHMLINE_END_OF_STREAM: i32 = 4;
/// Outcome, not an error: the writer process died without closing the stream and this reader has
/// read every frame it published. Every later read returns it again.
pub const SHMLINE_WRITER_DEAD: i32 = 5;
/// Error: an argument is out of range or inconsistent (the message says which).
pub const SHMLINE_INVALID_ARGUMENT: i32 = -1;
/// Error: a required pointer argument is NULL (the message names it).
pub const SHMLINE_NULL_POINTER: i32 = -2;
/// Error: a name is empty, longer than 200 bytes, or has a character other than `A-Z a-z 0-9 _ .
/// -`, or starts with `.` or `-`.
pub const SHMLINE_INVALID_NAME: i32 = -3;
/// Error: nothing of that name exists: no such stream, event or running pipeline, no such task in
/// a pipeline, no such task parameter, no such file (the message names what was looked for).
pub const SHMLINE_NOT_FOUND: i32 = -4;
/// Error: a stream or event of that name already exists.
pub const SHMLINE_ALREADY_EXISTS: i32 = -5;
/// Error: the operating system refused access to the segment.
pub const SHMLINE_PERMISSION_DENIED: i32 = -6;
/// Error: the segment exists but is not a shmline segment of the expected kind.
pub const SHMLINE_NOT_SHMLINE: i32 = -7;
/// Error: the segment was made by a shmline with another layout version.
pub const SHMLINE_VERSION_MISMATCH: i32 = -8;
/// Error: shared memory holds an impossible value (another process damaged it).
pub const SHMLINE_CORRUPT: i32 = -9;
/// Error: the stream's schema is not the one the reader requires.
pub const SHMLINE_SCHEMA_MISMATCH: i32 = -10;
/// Error: the stream already has a writer (one writer per stream, for the stream's whole life).
pub const SHMLINE_WRITER_EXISTS: i32 = -11;
/// Error: every reader slot of the stream is taken by a live reader.
pub const SHMLINE_TOO_MANY_READERS: i32 = -12;
/// Error: a frame is longer than the stream's maximum frame size.
pub const SHMLINE_FRAME_TOO_LARGE: i32 = -13;
/// Error: the caller's buffer is too small; nothing was consumed.
pub const SHMLINE_BUFFER_TOO_SMALL: i32 = -14;
/// Error: the handle is in the wrong state for the call (commit without reserve, release without
/// acquire, write while a slot is reserved, read while a frame is acquired, writing to a stream
/// whose writer has closed).
pub const SHMLINE_WRONG_STATE: i32 = -15;
/// Error: not enough shared memory (`/dev/shm` is full or a limit was hit).
pub const SHMLINE_NO_SPACE: i32 = -16;
/// Error: another operating-system error (the message has the details).
pub const SHMLINE_OS_ERROR: i32 = -17;
/// Error: a Rust panic was caught at the C boundary. This is a bug in shmline: please report it
/// with the message. The handle involved should be closed.
pub const SHMLINE_PANIC: i32 = -18;
/// Error: the call is not supported for this handle (zero-copy acquire on a lossy reader; a lossy
/// reader from a pipeline task).
pub const SHMLINE_UNSUPPORTED: i32 = -19;
/// Error: a pipeline task failed (the message names the task and its exit status or signal).
pub const SHMLINE_PIPELINE_FAILED: i32 = -20;
/// Error: every writer slot of a multi-writer stream is taken by a live writer (create the stream
/// with a larger `max_writers`).
pub const SHMLINE_TOO_MANY_WRITERS: i32 = -21;

/// Major version of this header. The shared library's SONAME is `libshmline.so.<major>`.
pub const SHMLINE_VERSION_MAJOR: u32 = 0;
/// Minor version of this header.
pub const SHMLINE_VERSION_MINOR: u32 = 1;
/// Patch version of this header.
pub const SHMLINE_VERSION_PATCH: u32 = 0;
/// Version of the shared-memory layout this header's library speaks (`docs/LAYOUT.md`). Processes
/// can share streams and events only if their libraries speak the same layout version.
pub const SHMLINE_LAYOUT_VERSION: u32 = 5;

/// Name and description of every status, NUL-terminated, in `Status::ALL` order.
fn texts() -> &'static [(CString, CString)] {
    static TEXTS: OnceLock<Vec<(CString, CString)>> = OnceLock::new();
    TEXTS.get_or_init(|| {
        Status::ALL
            .iter()
            .map(|s| {
                let c = |text: &str| CString::new(text).expect("status texts have no NUL");
                (c(s.name()), c(s.describe()))
            })
            .collect()
    })
}

/// The name and description of `status`, if it is a known status.
fn text(status: i32) -> Option<&'static (CString, CString)> {
    let index = Status::ALL.iter().position(|s| *s as i32 == status)?;
    texts().get(index)
}

/// The name of a status code, as in its macro without the `SHMLINE_` prefix: `"OK"`,
/// `"END_OF_STREAM"`, `"NULL_POINTER"`... `"UNKNOWN"` for a number that is not a status.
///
/// The string is static: never free it. Thread-safe; never blocks.
#[no_mangle]
pub extern "C" fn shmline_status_str(status: i32) -> *const c_char {
    guard(c"UNKNOWN".as_ptr(), || {
        text(status).map_or(c"UNKNOWN".as_ptr(), |(name, _)| name.as_ptr())
    })
}

/// One sentence saying what a status code means in general (`"the ring is full"`), or
/// `"unknown status"`. For what went wrong in a particular call, use
/// `shmline_last_error_message()`.
///
/// The string is static: never free it. Thread-safe; never blocks.
#[no_mangle]
pub extern "C" fn shmline_status_describe(status: i32) -> *const c_char {
    guard(c"unknown status".as_ptr(), || {
        text(status).map_or(c"unknown status".as_ptr(), |(_, describe)| {
            describe.as_ptr()
        })
    })
}

/// The message of the most recent call on this thread that returned a status other than
/// `SHMLINE_OK`, saying what failed and usually how to fix it (e.g. `"buffer of 16 bytes is too
/// small for a frame of 64 bytes (the frame was not consumed)"`). Calls that return `SHMLINE_OK`
/// leave it unchanged (like `errno`). `""` before any failure on this thread.
///
/// Never NULL. The string belongs to shmline: do not free it; it stays valid until the next
/// shmline call on the same thread, so copy it if you need it longer. Each thread has its own
/// message.
#[no_mangle]
pub extern "C" fn shmline_last_error_message() -> *const c_char {
    guard(c"".as_ptr(), last_error_ptr)
}

/// The version of the shmline library actually loaded, `"MAJOR.MINOR.PATCH"` (compare with the
/// `SHMLINE_VERSION_*` macros of the header you compiled against).
///
/// The string is static: never free it. Thread-safe.
#[no_mangle]
pub extern "C" fn shmline_version() -> *const c_char {
    const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => panic!("the package version has no NUL"),
    };
    guard(VERSION.as_ptr(), || VERSION.as_ptr())
}

/// The shared-memory layout version of the library actually loaded (compare with
/// `SHMLINE_LAYOUT_VERSION`). Thread-safe.
#[no_mangle]
pub extern "C" fn shmline_layout_version() -> u32 {
    guard(crate::layout::LAYOUT_VERSION, || {
        crate::layout::LAYOUT_VERSION
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_status_has_its_name_and_description_as_c_strings() {
        for status in Status::ALL {
            // SAFETY: shmline_status_str and shmline_status_describe return static
            // NUL-terminated strings.
            let (name, describe) = unsafe {
                (
                    CStr::from_ptr(shmline_status_str(status as i32)),
                    CStr::from_ptr(shmline_status_describe(status as i32)),
                )
            };
            assert_eq!(name.to_str().unwrap(), status.name());
            assert_eq!(describe.to_str().unwrap(), status.describe());
        }
    }

    #[test]
    fn unknown_status_numbers_have_a_name_too() {
        // SAFETY: static NUL-terminated strings.
        let (name, describe) = unsafe {
            (
                CStr::from_ptr(shmline_status_str(12345)),
                CStr::from_ptr(shmline_status_describe(-12345)),
            )
        };
        assert_eq!(name.to_bytes(), b"UNKNOWN");
        assert_eq!(describe.to_bytes(), b"unknown status");
    }

    #[test]
    fn version_macros_match_the_package_and_layout_versions() {
        let version =
            format!("{SHMLINE_VERSION_MAJOR}.{SHMLINE_VERSION_MINOR}.{SHMLINE_VERSION_PATCH}");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        // SAFETY: static NUL-terminated string.
        let loaded = unsafe { CStr::from_ptr(shmline_version()) };
        assert_eq!(loaded.to_str().unwrap(), version);
        assert_eq!(SHMLINE_LAYOUT_VERSION, crate::layout::LAYOUT_VERSION);
        assert_eq!(shmline_layout_version(), SHMLINE_LAYOUT_VERSION);
    }
}
