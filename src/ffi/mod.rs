//! The C ABI: `shmline_<noun>_<verb>` functions over opaque handles, declared in
//! `include/shmline.h` (generated from this module by cbindgen; `tests/header.rs` fails when the
//! checked-in header is stale).
//!
//! One file per C noun: [`status`] (status codes, messages, versions), [`wait`] (wait strategies
//! and timeouts), [`stream`], [`writer`], [`reader`], [`event`], [`pipeline`] (declaring and
//! running a pipeline), [`run`] (a started pipeline), [`task`] (a program joining a pipeline as
//! one of its tasks) and [`waitset`] (waiting on several readers and events at once).
//!
//! The boundary rules, enforced here once for every export:
//! - every export runs inside `ffi_call` (or `guard`), which catches Rust panics so that none
//!   unwinds into C: a panic becomes `SHMLINE_PANIC`;
//! - every failure returns a stable status number and records a message in a thread-local buffer,
//!   read back with `shmline_last_error_message()`;
//! - every pointer argument is checked for NULL before use (`SHMLINE_NULL_POINTER`), through the
//!   small helpers below (`handle`, `cstr`, `bytes`, `array`, `Out`...), the only code that
//!   dereferences a caller's pointer besides `BoxedHandle::free_box`, the body of every close function;
//! - options structs start with `struct_size`, and only the bytes the caller declares are read
//!   (`read_options`), so fields can be appended without breaking old callers.
#![allow(non_camel_case_types)]

// In the order the header declares them (cbindgen follows this order; rustfmt keeps each
// declaration in its own group).
pub mod status;

pub mod wait;

pub mod stream;

pub mod writer;

pub mod reader;

pub mod event;

pub mod pipeline;

pub mod run;

pub mod task;

pub mod waitset;

use crate::error::{Error, Status};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
use std::fmt;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

/// Why an exported call failed: a core error, or a NULL argument (which only the C ABI can see).
#[derive(Debug)]
pub(crate) enum Failure {
    /// An error or flow-control outcome from the core.
    Shmline(Error),
    /// The named pointer argument was NULL.
    Null(&'static str),
    /// A caller's buffer (other than a frame buffer) is too small; the text says which and how
    /// much is needed.
    TooSmall(String),
}

impl Failure {
    fn status(&self) -> Status {
        match self {
            Failure::Shmline(e) => e.status(),
            Failure::Null(_) => Status::NullPointer,
            Failure::TooSmall(_) => Status::BufferTooSmall,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Shmline(e)
    }
}

/// The Rust calls the core's messages may name, with the C function a C caller uses instead.
/// Each binding over the C API renames these C functions to its own calls in the same way
/// (Python `shmline/errors.py`, C++ `shmline::detail::raise`), so every caller is told its own
/// recovery call.
pub(crate) const C_CALLS: [(&str, &str); 2] = [
    ("Stream::remove_stale", "shmline_stream_remove_stale"),
    ("Event::remove_stale", "shmline_event_remove_stale"),
];

/// `message` with the Rust calls it names replaced by their C functions ([`C_CALLS`]).
fn in_c_terms(message: String) -> String {
    C_CALLS.iter().fold(message, |m, (rust, c)| {
        if m.contains(rust) {
            m.replace(rust, c)
        } else {
            m
        }
    })
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Outcomes have fixed texts naming no call: keep them allocation-free for polling
            // loops.
            Failure::Shmline(e) if e.is_outcome() => e.fmt(f),
            Failure::Shmline(e) => f.write_str(&in_c_terms(e.to_string())),
            Failure::Null(what) => write!(f, "argument `{what}` is NULL"),
            Failure::TooSmall(message) => f.write_str(message),
        }
    }
}

/// What every fallible export returns inside [`ffi_call`].
pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

/// Shorthand for an `InvalidArgument` failure.
pub(crate) fn invalid(message: String) -> Failure {
    Failure::Shmline(Error::InvalidArgument(message))
}

/// Shorthand for a `BufferTooSmall` failure about a buffer that does not hold a frame.
pub(crate) fn too_small(message: String) -> Failure {
    Failure::TooSmall(message)
}

thread_local! {
    /// The NUL-terminated message of the last failure on this thread (empty before any). Reused,
    /// so a polling loop that keeps getting `SHMLINE_EMPTY` does not allocate.
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Records `message` as this thread's last error message.
fn record(message: &dyn fmt::Display) {
    // `try_with`/`try_borrow_mut`: during thread teardown, or if formatting re-entered us, the
    // message is dropped rather than panicking. This runs outside the exports' catch_unwind, so a
    // panic while formatting is caught here (AssertUnwindSafe: the buffer is reset below).
    let _ = LAST_ERROR.try_with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            buf.clear();
            if catch_unwind(AssertUnwindSafe(|| write!(buf, "{message}"))).is_err() {
                buf.clear();
                buf.extend_from_slice(b"(the error message could not be formatted)");
            }
            // C reads up to the first NUL: keep the whole message by replacing interior ones.
            buf.iter_mut().filter(|b| **b == 0).for_each(|b| *b = b'?');
            buf.push(0);
        }
    });
}

/// Pointer to this thread's last error message, valid until the next failure on this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|cell| match cell.try_borrow() {
            Ok(buf) if !buf.is_empty() => buf.as_ptr().cast(),
            _ => c"".as_ptr(),
        })
        .unwrap_or(c"".as_ptr())
}

/// Text of a caught panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs the body of a status-returning export: `SHMLINE_OK` on success; otherwise records the
/// message and returns the failure's status. A panic becomes `SHMLINE_PANIC` and never unwinds
/// into C.
pub(crate) fn ffi_call(body: impl FnOnce() -> FfiResult) -> i32 {
    // AssertUnwindSafe: after a panic the caller only gets a status; a handle whose method
    // panicked may be inconsistent, which the PANIC status documents ("a bug: please report it").
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => Status::Ok as i32,
        Ok(Err(failure)) => {
            record(&failure);
            failure.status() as i32
        }
        Err(payload) => {
            record(&format_args!(
                "internal panic caught at the C boundary (a bug in shmline: please report it): {}",
                panic_text(&*payload)
            ));
            Status::Panic as i32
        }
    }
}

/// Runs the body of an export that returns a value rather than a status (or nothing), returning
/// `fallback` if it panics. The panic message is recorded as the last error.
pub(crate) fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    // AssertUnwindSafe: as in `ffi_call`.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        record(&format_args!(
            "internal panic caught at the C boundary (a bug in shmline: please report it): {}",
            panic_text(&*payload)
        ));
        fallback
    })
}

/// A C handle type: a Rust struct that C sees only as an opaque pointer, owned by the caller from
/// the call that makes it (`*_create`, `*_open`, `*_new`, `*_join`...) until its `*_close`
/// function (rustls-ffi's `Castable` idea, for boxed handles). Handles are handed out with
/// [`BoxedHandle::into_raw`], borrowed with [`handle`]/[`handle_mut`] and freed with
/// [`BoxedHandle::free_box`], so the `Box` conversions and the NULL checks are written once.
pub(crate) trait BoxedHandle: Sized {
    /// Moves the handle to the heap and hands it to the C caller, who owns it until its `*_close`.
    fn into_raw(self) -> *mut Self {
        Box::into_raw(Box::new(self))
    }

    /// The whole of every `*_close` function: frees a handle made by [`BoxedHandle::into_raw`]; NULL
    /// is allowed and does nothing. Never unwinds into C (a panic while dropping is recorded).
    ///
    /// # Safety
    /// `ptr` is NULL or a handle made by [`BoxedHandle::into_raw`] that no thread uses after this call.
    unsafe fn free_box(ptr: *mut Self) {
        guard((), || {
            if !ptr.is_null() {
                // SAFETY: the caller passes back ownership of a handle made by `into_raw`
                // (`Box::into_raw`), and never uses it again.
                drop(unsafe { Box::from_raw(ptr) });
            }
        })
    }
}

/// Borrows the object behind a handle argument.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that nobody mutates for `'a`.
pub(crate) unsafe fn handle<'a, T: BoxedHandle>(
    ptr: *const T,
    what: &'static str,
) -> FfiResult<&'a T> {
    // SAFETY: the caller guarantees a non-NULL `ptr` points to a live `T` not mutated for 'a.
    unsafe { ptr.as_ref() }.ok_or(Failure::Null(what))
}

/// Borrows the object behind a handle argument mutably.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` that nothing else accesses for `'a`.
pub(crate) unsafe fn handle_mut<'a, T: BoxedHandle>(
    ptr: *mut T,
    what: &'static str,
) -> FfiResult<&'a mut T> {
    // SAFETY: the caller guarantees a non-NULL `ptr` points to a live `T` used only through this
    // borrow for 'a (the C contract: one thread at a time per writer or reader handle).
    unsafe { ptr.as_mut() }.ok_or(Failure::Null(what))
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays unchanged for `'a`.
pub(crate) unsafe fn cstr<'a>(ptr: *const c_char, what: &'static str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(Failure::Null(what));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string valid for 'a.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map_err(|_| invalid(format!("argument `{what}` is not valid UTF-8: {bytes:?}")))
}

/// Reads an optional NUL-terminated UTF-8 string argument: NULL and "" mean none.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays unchanged while it is read.
pub(crate) unsafe fn optional_str(
    ptr: *const c_char,
    what: &'static str,
) -> FfiResult<Option<String>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string.
    let s = unsafe { cstr(ptr, what) }?;
    Ok((!s.is_empty()).then(|| s.to_owned()))
}

/// Borrows `len` bytes at `ptr`; `ptr` may be NULL only when `len` is 0.
///
/// # Safety
/// When `len > 0`, `ptr` is NULL or points to `len` readable bytes that nobody writes for `'a`.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const c_void,
    len: usize,
    what: &'static str,
) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::Null(what));
    }
    check_len(len, what)?;
    // SAFETY: non-NULL, len fits an isize, and the caller guarantees `len` readable bytes that
    // are not written for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast(), len) })
}

/// Borrows `len` writable bytes at `ptr`; `ptr` may be NULL only when `len` is 0.
///
/// The bytes may be uninitialised C memory: the slice is only ever written through.
///
/// # Safety
/// When `len > 0`, `ptr` is NULL or points to `len` writable bytes that nothing else accesses for
/// `'a`.
pub(crate) unsafe fn bytes_mut<'a>(
    ptr: *mut c_void,
    len: usize,
    what: &'static str,
) -> FfiResult<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Failure::Null(what));
    }
    check_len(len, what)?;
    // SAFETY: non-NULL, len fits an isize, and the caller guarantees `len` writable bytes used
    // only through this slice for 'a.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast(), len) })
}

/// Borrows an array of `len` values of `T` at `ptr`; `ptr` may be NULL only when `len` is 0.
///
/// # Safety
/// When `len > 0`, `ptr` is NULL or points to `len` initialised, aligned `T`s not written for `'a`.
pub(crate) unsafe fn array<'a, T>(
    ptr: *const T,
    len: usize,
    what: &'static str,
) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::Null(what));
    }
    check_len(len.saturating_mul(size_of::<T>()), what)?;
    // SAFETY: non-NULL, the byte length fits an isize, and the caller guarantees `len`
    // initialised, aligned values not written for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows an array of `len` writable `T`s at `ptr` (only written through); `ptr` may be NULL
/// only when `len` is 0.
///
/// # Safety
/// When `len > 0`, `ptr` is NULL or points to `len` aligned, writable `T`s that nothing else
/// accesses for `'a`; `T` is plain old data (any bit pattern is a valid `T`).
pub(crate) unsafe fn array_mut<'a, T>(
    ptr: *mut T,
    len: usize,
    what: &'static str,
) -> FfiResult<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Failure::Null(what));
    }
    check_len(len.saturating_mul(size_of::<T>()), what)?;
    // SAFETY: non-NULL, the byte length fits an isize, and the caller guarantees `len` aligned,
    // writable values used only through this slice; `T` is plain old data, so whatever the
    // memory held is a valid `T`.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Refuses lengths no real buffer can have (Rust slices are limited to `isize::MAX` bytes).
fn check_len(len: usize, what: &'static str) -> FfiResult {
    if len > isize::MAX as usize {
        return Err(invalid(format!(
            "argument `{what}` claims {len} bytes, more than any buffer can hold"
        )));
    }
    Ok(())
}

/// An out-pointer argument checked for NULL, written once the call has succeeded.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Checks an out-pointer argument.
    ///
    /// # Safety
    /// `ptr` is NULL or points to writable, aligned memory for a `T` that stays valid until
    /// [`Out::put`] and is not otherwise accessed meanwhile.
    pub(crate) unsafe fn new(ptr: *mut T, what: &'static str) -> FfiResult<Out<T>> {
        NonNull::new(ptr).map(Out).ok_or(Failure::Null(what))
    }

    /// Stores the result (without reading or dropping what the memory held before).
    pub(crate) fn put(&mut self, value: T) {
        // SAFETY: `Out::new`'s contract: writable, aligned memory for a `T`, valid until now.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// An options struct read through [`read_options`].
///
/// # Safety
/// The type is `#[repr(C)]`, starts with a `u32` `struct_size`, and every field is an integer or
/// a raw pointer, so that any bytes a caller supplies form a valid value.
pub(crate) unsafe trait OptionsStruct: Copy {
    /// The C name, for messages.
    const NAME: &'static str;
    /// `sizeof` the first published version of the struct: the smallest `struct_size` accepted.
    /// When fields are appended, this stays at the old size.
    const MIN_SIZE: usize;
    /// The defaults, with `struct_size` set to the current size.
    fn defaults() -> Self;
}

/// Largest `struct_size` believed: anything larger is an uninitialised struct, not a newer one.
const MAX_STRUCT_SIZE: u32 = 4096;

/// Reads a caller's options struct: the defaults if `ptr` is NULL; otherwise the first
/// `struct_size` bytes of the caller's struct over the defaults (an older caller's struct is
/// shorter, and the fields it does not know keep their defaults; a newer caller's extra fields are
/// ignored).
///
/// # Safety
/// `ptr` is NULL or points to a readable struct whose first `u32` is the number of readable bytes.
pub(crate) unsafe fn read_options<T: OptionsStruct>(ptr: *const T) -> FfiResult<T> {
    let mut options = T::defaults();
    if ptr.is_null() {
        return Ok(options);
    }
    // SAFETY: non-NULL; the caller guarantees at least the leading `u32` is readable (every
    // options struct starts with it).
    let size = unsafe { ptr.cast::<u32>().read_unaligned() };
    if (size as usize) < T::MIN_SIZE || size > MAX_STRUCT_SIZE {
        return Err(invalid(format!(
            "{name}.struct_size is {size}, expected sizeof({name}) = {current}: initialise the \
             struct with {name}_default()",
            name = T::NAME,
            current = size_of::<T>(),
        )));
    }
    let len = (size as usize).min(size_of::<T>());
    // SAFETY: the caller guarantees `size` readable bytes at `ptr`, and len <= size; `options` is
    // a local of size_of::<T>() >= len bytes; every bit pattern is a valid T (OptionsStruct).
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&mut options as *mut T).cast::<u8>(), len)
    };
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_an_export_becomes_the_panic_status_and_a_message() {
        let status = ffi_call(|| panic!("boom"));
        assert_eq!(status, Status::Panic as i32);
        // SAFETY: the pointer is this thread's NUL-terminated message buffer.
        let message = unsafe { CStr::from_ptr(last_error_ptr()) };
        let message = message.to_str().unwrap();
        assert!(
            message.contains("boom") && message.contains("report"),
            "{message}"
        );
        assert_eq!(guard(7, || panic!("again")), 7);
    }

    #[test]
    fn each_thread_has_its_own_last_error_message() {
        ffi_call(|| Err(invalid("on the main thread".into())));
        std::thread::spawn(|| {
            // SAFETY: this thread's NUL-terminated message buffer (or a static "").
            let message = unsafe { CStr::from_ptr(last_error_ptr()) };
            assert_eq!(message.to_bytes(), b"");
        })
        .join()
        .unwrap();
        // SAFETY: as above.
        let message = unsafe { CStr::from_ptr(last_error_ptr()) };
        assert_eq!(message.to_bytes(), b"on the main thread");
    }

    #[test]
    fn messages_with_interior_nuls_survive_whole() {
        let status = ffi_call(|| Err(invalid("a\0b".into())));
        assert_eq!(status, Status::InvalidArgument as i32);
        // SAFETY: as above.
        let message = unsafe { CStr::from_ptr(last_error_ptr()) };
        assert_eq!(message.to_bytes(), b"a?b");
    }

    #[test]
    fn a_core_message_naming_a_rust_call_tells_a_c_caller_the_c_function() {
        let status = ffi_call(|| {
            Err(Error::AlreadyExists(
                "stream \"s\" was left behind; remove it with Stream::remove_stale, or event \"e\" \
                 with Event::remove_stale"
                    .into(),
            )
            .into())
        });
        assert_eq!(status, Status::AlreadyExists as i32);
        // SAFETY: as above.
        let message = unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_str()
            .unwrap();
        assert!(
            message.contains("with shmline_stream_remove_stale, or")
                && message.contains("with shmline_event_remove_stale")
                && !message.contains("::"),
            "{message}"
        );
    }
}
