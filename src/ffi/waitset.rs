//! `shmline_waitset`: waiting on several readers and events at once.

use super::event::shmline_event;
use super::reader::shmline_reader;
use super::{array_mut, ffi_call, handle, handle_mut, invalid, BoxedHandle, Out};
use crate::wait::Deadline;
use crate::waitset::{wait_members, Member};
use std::ptr::NonNull;

/// A set of readers and events to wait on together. Made by `shmline_waitset_create()`, freed by
/// `shmline_waitset_close()`.
///
/// `shmline_waitset_wait()` sleeps (no CPU) until at least one member is ready and says which:
/// a reader is ready when its next read returns at once (a frame, `SHMLINE_END_OF_STREAM`,
/// `SHMLINE_WRITER_DEAD` or an error); an event when it is on (flag) or has a pending signal
/// (counting; the set does not take it: take it with `shmline_event_wait(event, 0)`, which may
/// find that another waiter took it first). Readiness is level-triggered: a member stays ready
/// until read, cleared or taken, so remove a reader that reached its end with
/// `shmline_waitset_remove()`. A reader of a reader group may claim frames when the set checks
/// it; its next read returns them.
///
/// The set refers to its members' handles and owns none of them: remove a member (or close the
/// set) before closing its handle. Not thread-safe: use a set, and its readers, from one thread
/// at a time.
pub struct shmline_waitset {
    /// Indexed by key; `None` once removed.
    members: Vec<Option<Handle>>,
}

impl BoxedHandle for shmline_waitset {}

/// A member's handle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handle {
    Reader(NonNull<shmline_reader>),
    Event(NonNull<shmline_event>),
}

/// Creates an empty WaitSet.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_waitset_close()`; on failure `*out` is set to NULL.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_waitset_create(out: *mut *mut shmline_waitset) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(
            shmline_waitset {
                members: Vec::new(),
            }
            .into_raw(),
        );
        Ok(())
    })
}

/// Adds `reader` (lossless, lossy or a member of a reader group, of any stream) to the set and
/// stores its key in `*key`: the number of members added before it, removed ones included.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (the reader is in the
/// set already), `SHMLINE_PANIC`.
///
/// # Safety
/// `set` is NULL or an open WaitSet; `reader` is NULL or an open reader that stays open while it
/// is in the set; `key` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_waitset_add_reader(
    set: *mut shmline_waitset,
    reader: *mut shmline_reader,
    key: *mut usize,
) -> i32 {
    // SAFETY: the caller guarantees the pointers are NULL or valid as documented.
    ffi_call(|| unsafe { add(set, NonNull::new(reader).map(Handle::Reader), "reader", key) })
}

/// Adds `event` (flag or counting) to the set and stores its key in `*key`: the number of
/// members added before it, removed ones included.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (the event handle is
/// in the set already), `SHMLINE_PANIC`.
///
/// # Safety
/// `set` is NULL or an open WaitSet; `event` is NULL or an open event that stays open while it is
/// in the set; `key` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_waitset_add_event(
    set: *mut shmline_waitset,
    event: *const shmline_event,
    key: *mut usize,
) -> i32 {
    let event = NonNull::new(event.cast_mut()).map(Handle::Event);
    // SAFETY: the caller guarantees the pointers are NULL or valid as documented.
    ffi_call(|| unsafe { add(set, event, "event", key) })
}

/// The body of the two add functions.
///
/// # Safety
/// As theirs.
unsafe fn add(
    set: *mut shmline_waitset,
    member: Option<Handle>,
    what: &'static str,
    key: *mut usize,
) -> super::FfiResult {
    // SAFETY: the caller guarantees `key` is NULL or writable.
    let mut key = unsafe { Out::new(key, "key") }?;
    // SAFETY: the caller guarantees `set` is NULL or an open set used by this thread only.
    let set = unsafe { handle_mut(set, "set") }?;
    let member = member.ok_or(super::Failure::Null(what))?;
    // The same reader twice would be borrowed mutably twice by a wait.
    if set.members.contains(&Some(member)) {
        return Err(invalid(format!(
            "this {what} handle is in the WaitSet already"
        )));
    }
    set.members.push(Some(member));
    key.put(set.members.len() - 1);
    Ok(())
}

/// Removes the member of key `key` from the set (its handle is not closed); the other keys do
/// not change.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (no member has that
/// key, or it was removed already), `SHMLINE_PANIC`.
///
/// # Safety
/// `set` is NULL or an open WaitSet.
#[no_mangle]
pub unsafe extern "C" fn shmline_waitset_remove(set: *mut shmline_waitset, key: usize) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `set` is NULL or an open set used by this thread only.
        let set = unsafe { handle_mut(set, "set") }?;
        match set.members.get_mut(key).and_then(Option::take) {
            Some(_) => Ok(()),
            None => Err(invalid(format!("the WaitSet has no member of key {key}"))),
        }
    })
}

/// Waits until at least one member is ready (see `shmline_waitset`), and stores the keys of the
/// ready members, in increasing order, in `keys` (room for `cap` keys) and their number in
/// `*count`. If more than `cap` are ready, the first `cap` are stored; the others stay ready for
/// the next call.
///
/// Waits according to `timeout_ns` (see `SHMLINE_TIMEOUT_INFINITE`), sleeping on every member's
/// futex at once (`futex_waitv`, Linux 5.16+; older kernels sleep on one member in slices of at
/// most 5 ms), waking every 100 ms to check that the readers' writers are alive.
///
/// Returns `SHMLINE_OK`; `SHMLINE_EMPTY` (`timeout_ns` 0 and nothing ready), `SHMLINE_TIMEOUT`
/// (outcomes: `*count` is 0); `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (`cap` is 0, or
/// the set has no member), `SHMLINE_PANIC`.
///
/// # Safety
/// `set` is NULL or an open WaitSet whose members are open handles, none used by another thread
/// during the call; `keys` is NULL or has room for `cap` values; `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_waitset_wait(
    set: *mut shmline_waitset,
    timeout_ns: i64,
    keys: *mut usize,
    cap: usize,
    count: *mut usize,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `count` is NULL or writable.
        let mut count = unsafe { Out::new(count, "count") }?;
        count.put(0);
        // SAFETY: the caller guarantees `set` is NULL or an open set used by this thread only.
        let set = unsafe { handle(set, "set") }?;
        // SAFETY: the caller guarantees room for `cap` keys at `keys`.
        let keys = unsafe { array_mut(keys, cap, "keys") }?;
        if keys.is_empty() {
            return Err(invalid(
                "cap is 0: give room for at least one key".to_owned(),
            ));
        }
        let mut members: Vec<Option<Member<'_>>> = set
            .members
            .iter()
            .map(|m| {
                m.map(|m| match m {
                    // SAFETY: the caller guarantees every member is an open handle that no other
                    // thread uses during the call; `add` refused a second entry for one reader,
                    // so this is the only borrow of it.
                    Handle::Reader(r) => Member::Reader(unsafe { &mut (*r.as_ptr()).reader }),
                    // SAFETY: as above; events are shared, only read.
                    Handle::Event(e) => Member::Event(unsafe { &(*e.as_ptr()).event }),
                })
            })
            .collect();
        let ready = wait_members(&mut members, Deadline::from_nanos(timeout_ns))?;
        let n = ready.len().min(keys.len());
        keys[..n].copy_from_slice(&ready[..n]);
        count.put(n);
        Ok(())
    })
}

/// Closes the set (not its members' handles). NULL is allowed and does nothing.
///
/// # Safety
/// `set` is NULL or a handle from `shmline_waitset_create()` that is not used again after this
/// call.
#[no_mangle]
pub unsafe extern "C" fn shmline_waitset_close(set: *mut shmline_waitset) {
    // SAFETY: the caller passes NULL or a handle it owns and never uses again (this function's
    // contract), which is `free_box`'s.
    unsafe { shmline_waitset::free_box(set) }
}
