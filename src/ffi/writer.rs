//! `shmline_writer`: the one writer of a stream (copy, batch and zero-copy writes).

use super::stream::shmline_stream;
use super::wait::strategy;
use super::{
    array, bytes, ffi_call, guard, handle, handle_mut, invalid, read_options, FfiResult,
    OptionsStruct, Out,
};
use crate::ring::{Writer, WriterOptions};
use crate::wait::Deadline;
use std::cell::Cell;
use std::ffi::c_void;
use std::time::Duration;

/// The writer of a stream. Made by `shmline_writer_open()`, freed by `shmline_writer_close()`,
/// which also ends the stream.
///
/// Not thread-safe: use a writer from one thread at a time (it may move between threads). It keeps
/// the stream's memory mapped, so it may outlive the `shmline_stream` it was opened from.
pub struct shmline_writer {
    writer: Writer,
}

/// Options of a writer, for `shmline_writer_open()`.
///
/// Always initialise with `shmline_writer_options_default()`, then change the fields you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmline_writer_options {
    /// `sizeof(shmline_writer_options)`, set by `shmline_writer_options_default()`.
    pub struct_size: u32,
    /// How the writer waits for space when the ring is full: `SHMLINE_WAIT_ADAPTIVE` (default),
    /// `SHMLINE_WAIT_BUSY_SPIN` or `SHMLINE_WAIT_BLOCK`.
    pub wait: u32,
}

// SAFETY: repr(C), starts with `struct_size: u32`, and every field is an integer.
unsafe impl OptionsStruct for shmline_writer_options {
    const NAME: &'static str = "shmline_writer_options";
    const MIN_SIZE: usize = size_of::<shmline_writer_options>();
    fn defaults() -> Self {
        shmline_writer_options {
            struct_size: size_of::<shmline_writer_options>() as u32,
            wait: WriterOptions::default().wait as u32,
        }
    }
}

/// The writer options a C caller's struct stands for.
pub(crate) fn writer_options(o: &shmline_writer_options) -> FfiResult<WriterOptions> {
    Ok(WriterOptions {
        wait: strategy(o.wait, "opts->wait")?,
        timeout: None,
    })
}

impl shmline_writer {
    /// A new handle owning `writer`, for the caller to free with `shmline_writer_close`.
    pub(crate) fn boxed(writer: Writer) -> *mut shmline_writer {
        Box::into_raw(Box::new(shmline_writer { writer }))
    }
}

/// Returns the default writer options (adaptive waiting), with `struct_size` set.
#[no_mangle]
pub extern "C" fn shmline_writer_options_default() -> shmline_writer_options {
    guard(
        shmline_writer_options::defaults(),
        shmline_writer_options::defaults,
    )
}

/// Opens the writer of `stream`. A stream has one writer for its whole life: a second one gets
/// `SHMLINE_WRITER_EXISTS` (also when the first died), and one after `shmline_writer_close()` gets
/// `SHMLINE_WRONG_STATE`. A multi-writer stream (`max_writers > 1`) takes up to `max_writers`
/// writers at once (`SHMLINE_TOO_MANY_WRITERS` beyond) until it ends: once its last writer closed
/// or every writer died, its readers are told `SHMLINE_END_OF_STREAM` or `SHMLINE_WRITER_DEAD`
/// for good and a new writer gets `SHMLINE_WRONG_STATE` (the message says which). `opts` may be
/// NULL for the defaults.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_writer_close()`; on failure `*out` is set to NULL. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (bad `struct_size`
/// or wait strategy), `SHMLINE_WRITER_EXISTS` (single-writer stream), `SHMLINE_TOO_MANY_WRITERS`
/// (multi-writer stream with `max_writers` live writers), `SHMLINE_WRONG_STATE` (the stream has
/// ended, or another process kept the stream's table lock for seconds), `SHMLINE_CORRUPT`,
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `stream` is NULL or an open stream handle; `opts` is NULL or initialised by
/// `shmline_writer_options_default()`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_open(
    stream: *const shmline_stream,
    opts: *const shmline_writer_options,
    out: *mut *mut shmline_writer,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `stream` is NULL or an open handle.
        let stream = unsafe { handle(stream, "stream") }?;
        // SAFETY: the caller guarantees `opts` is NULL or an initialised options struct.
        let options = writer_options(&unsafe { read_options(opts) }?)?;
        let writer = stream.stream().writer_with(&options)?;
        out.put(shmline_writer::boxed(writer));
        Ok(())
    })
}

/// Closes the writer and ends the stream: readers read the frames left, then get
/// `SHMLINE_END_OF_STREAM`. A reserved slot is dropped unpublished. NULL is allowed and does
/// nothing. Never blocks.
///
/// # Safety
/// `writer` is NULL or a handle from `shmline_writer_open()` that is not used again after this
/// call.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_close(writer: *mut shmline_writer) {
    guard((), || {
        if !writer.is_null() {
            // SAFETY: the caller passes ownership of a handle made by Box::into_raw.
            drop(unsafe { Box::from_raw(writer) });
        }
    })
}

/// Copies `len` bytes from `data` into the stream as one frame with application `flags` (readers
/// see them in `shmline_frame_info.flags`).
///
/// When the slowest lossless reader is a whole ring behind, waits for space according to
/// `timeout_ns` (see `SHMLINE_TIMEOUT_INFINITE`) if the stream's backpressure policy is
/// `SHMLINE_BACKPRESSURE_BLOCK`; under `_FAIL` returns `SHMLINE_FULL` at once, under
/// `_DROP_NEWEST` discards the frame, counts it and returns `SHMLINE_OK`. `data` may be NULL when
/// `len` is 0 (an empty frame).
///
/// Returns `SHMLINE_OK` (under `_DROP_NEWEST` also for a discarded frame), `SHMLINE_FULL`
/// (`timeout_ns` 0 or policy `_FAIL`, and no space), `SHMLINE_TIMEOUT`, `SHMLINE_NULL_POINTER`,
/// `SHMLINE_FRAME_TOO_LARGE`, `SHMLINE_INVALID_ARGUMENT` (`len` larger than any buffer can be, over
/// `PTRDIFF_MAX` bytes, such as `SIZE_MAX`), `SHMLINE_WRONG_STATE` (a slot is reserved),
/// `SHMLINE_CORRUPT` (a multi-writer stream's shared counters hold impossible values),
/// `SHMLINE_PANIC`. Nothing is written unless it returns `SHMLINE_OK`.
///
/// # Safety
/// `writer` is NULL or an open writer handle; `data` is NULL or has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_write(
    writer: *mut shmline_writer,
    data: *const c_void,
    len: usize,
    flags: u32,
    timeout_ns: i64,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `writer` is NULL or an open handle used by one thread.
        let w = unsafe { handle_mut(writer, "writer") }?;
        // SAFETY: the caller guarantees `data` has `len` readable bytes.
        let data = unsafe { bytes(data, len, "data") }?;
        Ok(w.writer
            .write_until(data, flags, Deadline::from_nanos(timeout_ns))?)
    })
}

/// Same as `shmline_writer_write()` with `timeout_ns` 0: writes the frame if there is space now,
/// returns `SHMLINE_FULL` otherwise. Never blocks.
///
/// # Safety
/// As for `shmline_writer_write()`.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_try_write(
    writer: *mut shmline_writer,
    data: *const c_void,
    len: usize,
    flags: u32,
) -> i32 {
    // SAFETY: the caller upholds shmline_writer_write's contract.
    unsafe { shmline_writer_write(writer, data, len, flags, 0) }
}

/// Writes `count` frames in order, all with application `flags`. Frame `i` is `lens[i]` bytes,
/// and the frames lie back to back in `data` (frame 0 at `data`, frame 1 right after it...).
///
/// Every length is checked before anything is written. Waits for space for the first frame
/// according to `timeout_ns`; once some frames are written and the deadline passes, stops and
/// reports how many in `*written`. One timestamp and one wake-up per run of frames, so a batch of
/// small frames costs far less than one call per frame.
///
/// Under `SHMLINE_BACKPRESSURE_DROP_NEWEST` the frames that do not fit are discarded and counted,
/// and `*written` is `count`.
///
/// Under `SHMLINE_BACKPRESSURE_FAIL` a full ring ends the batch at once: `SHMLINE_OK` with the
/// frames that fitted, or `SHMLINE_FULL` if none did, whatever `timeout_ns`.
///
/// Returns `SHMLINE_OK` with `*written` between 1 and `count` (0 only when `count` is 0),
/// `SHMLINE_FULL` or `SHMLINE_TIMEOUT` when no frame could be written (`*written` is 0),
/// `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (`count` values of `lens`, or the lengths
/// added up, more than any buffer holds, over `PTRDIFF_MAX` bytes), `SHMLINE_FRAME_TOO_LARGE`
/// (nothing written), `SHMLINE_WRONG_STATE` (a slot is reserved), `SHMLINE_CORRUPT` (as for
/// `shmline_writer_write()`), `SHMLINE_PANIC`.
///
/// # Safety
/// `writer` is NULL or an open writer handle; `lens` is NULL or has `count` values; `data` is NULL
/// or has as many readable bytes as the lengths add up to; `written` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_write_batch(
    writer: *mut shmline_writer,
    data: *const c_void,
    lens: *const usize,
    count: usize,
    flags: u32,
    timeout_ns: i64,
    written: *mut usize,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `written` is NULL or writable.
        let mut written = unsafe { Out::new(written, "written") }?;
        written.put(0);
        // SAFETY: the caller guarantees `writer` is NULL or an open handle used by one thread.
        let w = unsafe { handle_mut(writer, "writer") }?;
        // SAFETY: the caller guarantees `lens` has `count` values.
        let lens = unsafe { array(lens, count, "lens") }?;
        let total = lens
            .iter()
            .try_fold(0usize, |sum, &len| sum.checked_add(len))
            .ok_or_else(|| invalid("the frame lengths add up to more than memory holds".into()))?;
        // SAFETY: the caller guarantees `data` holds the sum of the lengths.
        let data = unsafe { bytes(data, total, "data") }?;
        // The core asks for frames by index, in order (once to check them, once to write them):
        // remember where the last one started so each lookup is O(1) without allocating.
        let cursor = Cell::new((0usize, 0usize));
        let frame = |i: usize| -> &[u8] {
            let (mut at, mut offset) = cursor.get();
            if i < at {
                (at, offset) = (0, 0);
            }
            while at < i {
                offset += lens[at];
                at += 1;
            }
            cursor.set((at, offset));
            &data[offset..offset + lens[i]]
        };
        let n =
            w.writer
                .write_batch_until(count, frame, flags, Deadline::from_nanos(timeout_ns))?;
        written.put(n);
        Ok(())
    })
}

/// Reserves the next slot for zero-copy writing: `*slot` receives a pointer to `*capacity` bytes
/// (the stream's maximum frame size) in shared memory. Fill them, then publish the first `len`
/// with `shmline_writer_commit()`, or drop them with `shmline_writer_abort()`.
///
/// Waits for space according to `timeout_ns` (only under `SHMLINE_BACKPRESSURE_BLOCK`: the other
/// policies return `SHMLINE_FULL` at once). The slot stays valid until commit, abort or
/// `shmline_writer_close()`; readers cannot see it before the commit. On failure `*slot` is set
/// to NULL and `*capacity` to 0.
///
/// Returns `SHMLINE_OK`, `SHMLINE_FULL` (no space, and `timeout_ns` 0 or a policy that never
/// waits: `_FAIL`, `_DROP_NEWEST`), `SHMLINE_TIMEOUT`, `SHMLINE_NULL_POINTER`,
/// `SHMLINE_WRONG_STATE` (a slot is already reserved), `SHMLINE_CORRUPT` (as for
/// `shmline_writer_write()`), `SHMLINE_PANIC`.
///
/// # Safety
/// `writer` is NULL or an open writer handle; `slot` and `capacity` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_reserve(
    writer: *mut shmline_writer,
    timeout_ns: i64,
    slot: *mut *mut c_void,
    capacity: *mut usize,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `slot` is NULL or writable.
        let mut slot = unsafe { Out::new(slot, "slot") }?;
        slot.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `capacity` is NULL or writable.
        let mut capacity = unsafe { Out::new(capacity, "capacity") }?;
        capacity.put(0);
        // SAFETY: the caller guarantees `writer` is NULL or an open handle used by one thread.
        let w = unsafe { handle_mut(writer, "writer") }?;
        let payload = w.writer.reserve_raw(Deadline::from_nanos(timeout_ns))?;
        slot.put(payload.cast());
        capacity.put(w.writer.max_frame_size());
        Ok(())
    })
}

/// Publishes the first `len` bytes of the reserved slot as a frame with application `flags`.
/// Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_WRONG_STATE` (nothing reserved),
/// `SHMLINE_FRAME_TOO_LARGE` (`len` exceeds the capacity; the slot stays reserved),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `writer` is NULL or an open writer handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_commit(
    writer: *mut shmline_writer,
    len: usize,
    flags: u32,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `writer` is NULL or an open handle used by one thread.
        let w = unsafe { handle_mut(writer, "writer") }?;
        Ok(w.writer.commit_raw(len, flags)?)
    })
}

/// Drops the reserved slot without publishing anything. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_WRONG_STATE` (nothing reserved),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `writer` is NULL or an open writer handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_abort(writer: *mut shmline_writer) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `writer` is NULL or an open handle used by one thread.
        let w = unsafe { handle_mut(writer, "writer") }?;
        if !w.writer.is_reserved() {
            return Err(crate::Error::WrongState(
                "abort without a reserved slot: call shmline_writer_reserve first".into(),
            )
            .into());
        }
        w.writer.abort_raw();
        Ok(())
    })
}

/// Waits until at least `count` readers are attached to the stream, according to `timeout_ns`
/// (0 checks once). Meant for start-up, so that no frame is written before the readers exist; it
/// polls every millisecond rather than sleeping on a futex.
///
/// Returns `SHMLINE_OK`, `SHMLINE_TIMEOUT`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `writer` is NULL or an open writer handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_wait_for_readers(
    writer: *const shmline_writer,
    count: usize,
    timeout_ns: i64,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `writer` is NULL or an open handle.
        let w = unsafe { handle(writer, "writer") }?;
        let timeout = u64::try_from(timeout_ns).map_or(Duration::MAX, Duration::from_nanos);
        Ok(w.writer.wait_for_readers(count, timeout)?)
    })
}

/// `*position` receives the sequence number the next frame will get, which is also the number of
/// frames written to the stream so far. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `writer` is NULL or an open writer handle; `position` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_position(
    writer: *const shmline_writer,
    position: *mut u64,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `writer` is NULL or an open handle.
        let w = unsafe { handle(writer, "writer") }?;
        // SAFETY: the caller guarantees `position` is NULL or writable.
        let mut position = unsafe { Out::new(position, "position") }?;
        position.put(w.writer.position());
        Ok(())
    })
}

/// Opens another handle to the stream this writer writes (the same mapping), for its name,
/// schema, geometry and statistics: a writer taken from a pipeline task
/// (`shmline_task_writer()`) comes without its stream. Never blocks.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_stream_close()`; on failure `*out` is set to NULL.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `writer` is NULL or an open writer handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_stream(
    writer: *const shmline_writer,
    out: *mut *mut shmline_stream,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `writer` is NULL or an open handle.
        let w = unsafe { handle(writer, "writer") }?;
        out.put(Box::into_raw(shmline_stream::new(w.writer.stream())));
        Ok(())
    })
}

/// `*dropped` receives the number of frames this writer discarded because the ring was full
/// (`SHMLINE_BACKPRESSURE_DROP_NEWEST`; always 0 under the other policies). Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `writer` is NULL or an open writer handle; `dropped` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_writer_frames_dropped(
    writer: *const shmline_writer,
    dropped: *mut u64,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `writer` is NULL or an open handle.
        let w = unsafe { handle(writer, "writer") }?;
        // SAFETY: the caller guarantees `dropped` is NULL or writable.
        let mut dropped = unsafe { Out::new(dropped, "dropped") }?;
        dropped.put(w.writer.frames_dropped());
        Ok(())
    })
}
