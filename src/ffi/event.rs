//! `shmline_event`: process-shared switches (flags) and counters.

use super::{cstr, ffi_call, guard, handle, invalid, read_options, OptionsStruct, Out};
use crate::error::Error;
use crate::event::{Event, EventMode, EventOptions};
use crate::wait::Deadline;
use std::ffi::c_char;

/// `shmline_event_options.mode`: a switch. `shmline_event_set()` turns it on and it stays on until
/// `shmline_event_clear()`; waiting does not turn it off, so one set releases every waiter.
pub const SHMLINE_EVENT_FLAG: u32 = 0;
/// `shmline_event_options.mode`: a counter of pending signals (a semaphore). Each set adds one,
/// each successful wait takes one, so every set releases exactly one wait.
pub const SHMLINE_EVENT_COUNTING: u32 = 1;

/// A named, process-shared event. Made by `shmline_event_create()` or `shmline_event_open()`,
/// freed by `shmline_event_close()`.
///
/// Thread-safe: any number of threads and processes may set, clear and wait on one event at once,
/// through one handle or several.
pub struct shmline_event {
    pub(crate) event: Event,
}

impl shmline_event {
    /// A new handle owning `event`, for the caller to free with `shmline_event_close`.
    pub(crate) fn boxed(event: Event) -> *mut shmline_event {
        Box::into_raw(Box::new(shmline_event { event }))
    }
}

/// Options of a new event, for `shmline_event_create()`.
///
/// Always initialise with `shmline_event_options_default()`, then change the fields you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmline_event_options {
    /// `sizeof(shmline_event_options)`, set by `shmline_event_options_default()`.
    pub struct_size: u32,
    /// `SHMLINE_EVENT_FLAG` (default) or `SHMLINE_EVENT_COUNTING`.
    pub mode: u32,
    /// Permission bits of the segment (default 0600: owner only); must include 0600.
    pub permissions: u32,
    /// Non-zero: remove the event's name when this handle is closed. Default 0: the event
    /// outlives its creator until `shmline_event_unlink()`.
    pub unlink_on_close: u8,
}

// SAFETY: repr(C), starts with `struct_size: u32`, and every field is an integer.
unsafe impl OptionsStruct for shmline_event_options {
    const NAME: &'static str = "shmline_event_options";
    const MIN_SIZE: usize = size_of::<shmline_event_options>();
    fn defaults() -> Self {
        let d = EventOptions::default();
        shmline_event_options {
            struct_size: size_of::<shmline_event_options>() as u32,
            mode: d.mode as u32,
            permissions: d.permissions,
            unlink_on_close: d.unlink_on_close.into(),
        }
    }
}

/// Returns the default event options (flag mode, permissions 0600, no unlink on close), with
/// `struct_size` set.
#[no_mangle]
pub extern "C" fn shmline_event_options_default() -> shmline_event_options {
    guard(
        shmline_event_options::defaults(),
        shmline_event_options::defaults,
    )
}

/// Creates a new, clear event named `name` and opens it. Creation is exclusive
/// (`SHMLINE_ALREADY_EXISTS` if the name is taken); the segment is `/dev/shm/shmline.event.<name>`.
/// `opts` may be NULL for the defaults.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_event_close()`; on failure `*out` is set to NULL. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_NAME`,
/// `SHMLINE_INVALID_ARGUMENT` (bad `struct_size`, mode or permissions; non-UTF-8 name),
/// `SHMLINE_ALREADY_EXISTS`, `SHMLINE_PERMISSION_DENIED`, `SHMLINE_NO_SPACE`, `SHMLINE_OS_ERROR`,
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `opts` is NULL or initialised by
/// `shmline_event_options_default()`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_create(
    name: *const c_char,
    opts: *const shmline_event_options,
    out: *mut *mut shmline_event,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        // SAFETY: the caller guarantees `opts` is NULL or an initialised options struct.
        let o = unsafe { read_options(opts) }?;
        let mode = EventMode::from_u32(o.mode).ok_or_else(|| {
            invalid(format!(
                "opts->mode is {}, not an event mode: use SHMLINE_EVENT_FLAG (0) or \
                 SHMLINE_EVENT_COUNTING (1)",
                o.mode
            ))
        })?;
        let options = EventOptions {
            mode,
            permissions: o.permissions,
            unlink_on_close: o.unlink_on_close != 0,
        };
        let event = Event::create(name, &options)?;
        out.put(shmline_event::boxed(event));
        Ok(())
    })
}

/// Opens the existing event `name`, waiting up to a second for a creator that is still
/// initialising it.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_event_close()`; on failure `*out` is set to NULL.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_NAME`,
/// `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 name), `SHMLINE_NOT_FOUND`, `SHMLINE_PERMISSION_DENIED`,
/// `SHMLINE_NOT_SHMLINE`, `SHMLINE_VERSION_MISMATCH`, `SHMLINE_CORRUPT`, `SHMLINE_OS_ERROR`,
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_open(
    name: *const c_char,
    out: *mut *mut shmline_event,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        let event = Event::open(name)?;
        out.put(shmline_event::boxed(event));
        Ok(())
    })
}

/// Closes an event handle (removing the name if it was created with `unlink_on_close`). NULL is
/// allowed and does nothing. Never blocks.
///
/// # Safety
/// `event` is NULL or a handle from `shmline_event_create()`/`shmline_event_open()` that no thread
/// uses again after this call.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_close(event: *mut shmline_event) {
    guard((), || {
        if !event.is_null() {
            // SAFETY: the caller passes ownership of a handle made by Box::into_raw.
            drop(unsafe { Box::from_raw(event) });
        }
    })
}

/// Removes the name of event `name`; handles already open keep working, new opens get
/// `SHMLINE_NOT_FOUND`.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_NAME`,
/// `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 name), `SHMLINE_NOT_FOUND`, `SHMLINE_PERMISSION_DENIED`,
/// `SHMLINE_OS_ERROR`, `SHMLINE_PANIC`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_unlink(name: *const c_char) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        Ok(Event::unlink(name)?)
    })
}

/// Removes event `name` if its creator is dead. Use it to take a name back after a crash;
/// `shmline_event_create()` never does it by itself. Processes that still have the old event open
/// keep their own copy. A file under the name that is not a finished shmline event (empty, zeros,
/// foreign bytes, not a regular file) is never removed: `SHMLINE_NOT_SHMLINE`.
///
/// Returns `SHMLINE_OK` if it removed the event, `SHMLINE_NOT_FOUND` if there is no such event,
/// `SHMLINE_ALREADY_EXISTS` if its creator is alive (nothing is removed), `SHMLINE_NULL_POINTER`,
/// `SHMLINE_INVALID_NAME`, `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 name), `SHMLINE_NOT_SHMLINE`,
/// `SHMLINE_VERSION_MISMATCH` or `SHMLINE_CORRUPT` (the event cannot be judged),
/// `SHMLINE_PERMISSION_DENIED`, `SHMLINE_OS_ERROR`, `SHMLINE_PANIC`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_remove_stale(name: *const c_char) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        match Event::remove_stale(name)? {
            true => Ok(()),
            false => Err(Error::NotFound(format!("event {name:?}")).into()),
        }
    })
}

/// Signals the event. Flag mode: turns it on and wakes every waiter. Counting mode: adds one
/// pending signal (saturating at 2^32 - 1) and wakes one waiter. Whatever the caller wrote before
/// is visible to a waiter that returns because of it. Never blocks; makes a system call only when
/// a waiter may be asleep.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `event` is NULL or an open event handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_set(event: *const shmline_event) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `event` is NULL or an open handle.
        unsafe { handle(event, "event") }?.event.set();
        Ok(())
    })
}

/// Turns the event off (flag mode) or discards every pending signal (counting mode). Never
/// blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `event` is NULL or an open event handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_clear(event: *const shmline_event) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `event` is NULL or an open handle.
        unsafe { handle(event, "event") }?.event.clear();
        Ok(())
    })
}

/// `*out` receives whether the event is on (flag mode) or has a pending signal (counting mode)
/// right now, without taking it. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `event` is NULL or an open event handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_is_set(event: *const shmline_event, out: *mut bool) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `event` is NULL or an open handle.
        let e = unsafe { handle(event, "event") }?;
        // SAFETY: the caller guarantees `out` is NULL or writable.
        unsafe { Out::new(out, "out") }?.put(e.event.is_set());
        Ok(())
    })
}

/// `*out` receives the event's raw value: pending signals in counting mode, 0 or 1 in flag mode.
/// A snapshot for monitoring; it may change at once. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `event` is NULL or an open event handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_count(event: *const shmline_event, out: *mut u32) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `event` is NULL or an open handle.
        let e = unsafe { handle(event, "event") }?;
        // SAFETY: the caller guarantees `out` is NULL or writable.
        unsafe { Out::new(out, "out") }?.put(e.event.count());
        Ok(())
    })
}

/// `*out` receives the event's mode, `SHMLINE_EVENT_FLAG` or `SHMLINE_EVENT_COUNTING`, as chosen
/// by its creator. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `event` is NULL or an open event handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_mode(event: *const shmline_event, out: *mut u32) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `event` is NULL or an open handle.
        let e = unsafe { handle(event, "event") }?;
        // SAFETY: the caller guarantees `out` is NULL or writable.
        unsafe { Out::new(out, "out") }?.put(e.event.mode() as u32);
        Ok(())
    })
}

/// Waits until the event is on (flag mode; waiting does not turn it off) or takes one pending
/// signal (counting mode), according to `timeout_ns` (see `SHMLINE_TIMEOUT_INFINITE`).
///
/// Spins a few microseconds, then sleeps on a futex (no CPU while asleep). In flag mode a set
/// followed at once by a clear may go unseen by a waiter that had not looked yet; use counting
/// mode for pulses that must not be missed.
///
/// Returns `SHMLINE_OK`, `SHMLINE_EMPTY` (`timeout_ns` 0 and the event is not set),
/// `SHMLINE_TIMEOUT`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `event` is NULL or an open event handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_event_wait(event: *const shmline_event, timeout_ns: i64) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `event` is NULL or an open handle.
        let e = unsafe { handle(event, "event") }?;
        if timeout_ns == 0 {
            return Ok(e.event.try_wait()?);
        }
        Ok(e.event.wait_until(Deadline::from_nanos(timeout_ns))?)
    })
}
