//! `shmline_reader`: readers of a stream (copy, batch and zero-copy reads, lossy taps).

use super::stream::{schema_arg, shmline_stream};
use super::wait::strategy;
use super::{
    array_mut, bytes_mut, ffi_call, guard, handle, handle_mut, invalid, optional_str, read_options,
    FfiResult, OptionsStruct, Out,
};
use crate::error::Error;
use crate::ring::{FrameInfo, Reader, ReaderOptions, StartPosition};
use crate::wait::Deadline;
use std::ffi::{c_char, c_void};
use std::mem::offset_of;

/// `shmline_reader_options.start`: only frames published after the reader opened (the default).
/// A reader opened before the writer's first frame misses nothing.
pub const SHMLINE_START_NEXT: u32 = 0;
/// `shmline_reader_options.start`: the most recently published frame, then everything after it.
pub const SHMLINE_START_NEWEST: u32 = 1;
/// `shmline_reader_options.start`: the oldest frame still guaranteed to be in the ring, then
/// everything after it.
pub const SHMLINE_START_OLDEST: u32 = 2;

/// A reader of a stream. Made by `shmline_reader_open()`, freed by `shmline_reader_close()`.
///
/// Each reader sees every frame in order (a lossy reader: every frame the writer has not
/// overwritten before it got there). Not thread-safe: use a reader from one thread at a time (it
/// may move between threads). It keeps the stream's memory mapped, so it may outlive the
/// `shmline_stream` it was opened from.
pub struct shmline_reader {
    pub(crate) reader: Reader,
}

/// Options of a reader, for `shmline_reader_open()`.
///
/// Always initialise with `shmline_reader_options_default()`, then change the fields you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmline_reader_options {
    /// `sizeof(shmline_reader_options)`, set by `shmline_reader_options_default()`.
    pub struct_size: u32,
    /// Where to start: `SHMLINE_START_NEXT` (default), `SHMLINE_START_NEWEST` or
    /// `SHMLINE_START_OLDEST`.
    pub start: u32,
    /// How the reader waits for frames: `SHMLINE_WAIT_ADAPTIVE` (default),
    /// `SHMLINE_WAIT_BUSY_SPIN` or `SHMLINE_WAIT_BLOCK`.
    pub wait: u32,
    /// Non-zero: a lossy reader, which never holds the writer back; when the writer laps it, it
    /// skips ahead and `shmline_frame_info.missed` says how many frames it lost. Lossy readers
    /// cannot use `shmline_reader_acquire()`. Default 0 (lossless).
    pub lossy: u8,
    /// Required schema: refuse to open (`SHMLINE_SCHEMA_MISMATCH`) unless the stream has exactly
    /// this dtype and shape. NULL (the default): no requirement.
    pub require_dtype: *const c_char,
    /// Required schema: number of dimensions (0 to `SHMLINE_MAX_NDIM`); 0 when `require_dtype` is
    /// NULL.
    pub require_ndim: u32,
    /// Required schema: `require_ndim` dimensions; may be NULL when `require_ndim` is 0.
    pub require_shape: *const u64,
    /// Name of the reader group to join (competing consumers: each frame goes to exactly one
    /// member of the group; plain readers and other groups still get every frame). NULL or ""
    /// (the default): a plain reader. A name is 1 to 63 bytes of letters, digits, `_`, `.` and
    /// `-`. The first member creates the group at `start`; later ones join it where it is.
    /// Members are lossless, and see frames with gaps in `seq` (the frames other members got).
    /// Delivery is at-least-once: the frames a member holds when it dies (claimed, not yet
    /// released) are delivered again to another member, counted in
    /// `shmline_stream_stats.frames_redelivered`. Copied during the call.
    pub group: *const c_char,
}

// SAFETY: repr(C), starts with `struct_size: u32`, and every field is an integer or a raw pointer.
unsafe impl OptionsStruct for shmline_reader_options {
    const NAME: &'static str = "shmline_reader_options";
    const MIN_SIZE: usize = size_of::<shmline_reader_options>();
    fn defaults() -> Self {
        let d = ReaderOptions::default();
        shmline_reader_options {
            struct_size: size_of::<shmline_reader_options>() as u32,
            start: d.start as u32,
            wait: d.wait as u32,
            lossy: d.lossy.into(),
            require_dtype: std::ptr::null(),
            require_ndim: 0,
            require_shape: std::ptr::null(),
            group: std::ptr::null(),
        }
    }
}

/// The reader options a C caller's struct stands for.
///
/// # Safety
/// The `require_*` pointers of `o` are NULL or valid (as `shmline_reader_options` documents).
pub(crate) unsafe fn reader_options(o: &shmline_reader_options) -> FfiResult<ReaderOptions> {
    let start = StartPosition::from_u32(o.start).ok_or_else(|| {
        invalid(format!(
            "opts->start is {}, not a start position: use SHMLINE_START_NEXT (0), \
             SHMLINE_START_NEWEST (1) or SHMLINE_START_OLDEST (2)",
            o.start
        ))
    })?;
    Ok(ReaderOptions {
        start,
        lossy: o.lossy != 0,
        wait: strategy(o.wait, "opts->wait")?,
        timeout: None,
        // SAFETY: the caller guarantees the pointers are NULL or valid.
        require_schema: unsafe {
            schema_arg(
                o.require_dtype,
                o.require_ndim,
                o.require_shape,
                "opts->require_",
            )
        }?,
        // SAFETY: the caller guarantees `group` is NULL or NUL-terminated.
        group: unsafe { optional_str(o.group, "opts->group") }?,
    })
}

impl shmline_reader {
    /// A new handle owning `reader`, for the caller to free with `shmline_reader_close`.
    pub(crate) fn boxed(reader: Reader) -> *mut shmline_reader {
        Box::into_raw(Box::new(shmline_reader { reader }))
    }
}

/// Metadata of one frame, filled by the read and acquire calls.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shmline_frame_info {
    /// Sequence number: 0 for the stream's first frame, then consecutive (a lossless reader sees
    /// every number).
    pub seq: u64,
    /// When the writer committed the frame, in nanoseconds of `CLOCK_MONOTONIC` (comparable with
    /// `clock_gettime(CLOCK_MONOTONIC)` in any process of this machine).
    pub timestamp_ns: u64,
    /// Payload length in bytes.
    pub len: u32,
    /// Application flags given by the writer.
    pub flags: u32,
    /// Frames this lossy reader missed just before this one; always 0 for lossless readers.
    pub missed: u64,
}

// `shmline_reader_read_batch` lends the caller's array of infos to the core as `FrameInfo`s.
const _: () = {
    assert!(size_of::<shmline_frame_info>() == size_of::<FrameInfo>());
    assert!(align_of::<shmline_frame_info>() == align_of::<FrameInfo>());
    assert!(offset_of!(shmline_frame_info, seq) == offset_of!(FrameInfo, seq));
    assert!(offset_of!(shmline_frame_info, timestamp_ns) == offset_of!(FrameInfo, timestamp_ns));
    assert!(offset_of!(shmline_frame_info, len) == offset_of!(FrameInfo, len));
    assert!(offset_of!(shmline_frame_info, flags) == offset_of!(FrameInfo, flags));
    assert!(offset_of!(shmline_frame_info, missed) == offset_of!(FrameInfo, missed));
};

impl From<FrameInfo> for shmline_frame_info {
    fn from(i: FrameInfo) -> shmline_frame_info {
        shmline_frame_info {
            seq: i.seq,
            timestamp_ns: i.timestamp_ns,
            len: i.len,
            flags: i.flags,
            missed: i.missed,
        }
    }
}

/// The frame info reported with `SHMLINE_BUFFER_TOO_SMALL`: only the length of the frame.
fn needed_info(error: &Error) -> Option<shmline_frame_info> {
    match error {
        Error::BufferTooSmall { needed, .. } => Some(shmline_frame_info {
            len: *needed as u32,
            ..Default::default()
        }),
        _ => None,
    }
}

/// Returns the default reader options (start at the next frame, adaptive waiting, lossless, no
/// required schema), with `struct_size` set.
#[no_mangle]
pub extern "C" fn shmline_reader_options_default() -> shmline_reader_options {
    guard(
        shmline_reader_options::defaults(),
        shmline_reader_options::defaults,
    )
}

/// Opens a reader of `stream`. `opts` may be NULL for the defaults.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_reader_close()`; on failure `*out` is set to NULL. Never blocks for long (it may wait
/// a few microseconds for a writer in the middle of a step).
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (bad `struct_size`,
/// start position, wait strategy or required schema; `lossy` with a `group`, or a `group` on a
/// `SHMLINE_BACKPRESSURE_DROP_OLDEST` stream), `SHMLINE_INVALID_NAME` (a bad `group` name),
/// `SHMLINE_SCHEMA_MISMATCH`, `SHMLINE_TOO_MANY_READERS` (every reader slot taken, or a new group
/// beyond the stream's `max_groups`), `SHMLINE_WRONG_STATE` (another process kept the stream's
/// table lock for seconds), `SHMLINE_CORRUPT` (the stream's shared positions hold impossible
/// values), `SHMLINE_PANIC`.
///
/// # Safety
/// `stream` is NULL or an open stream handle; `opts` is NULL or initialised by
/// `shmline_reader_options_default()` with valid `require_*` pointers; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_open(
    stream: *const shmline_stream,
    opts: *const shmline_reader_options,
    out: *mut *mut shmline_reader,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `stream` is NULL or an open handle.
        let stream = unsafe { handle(stream, "stream") }?;
        // SAFETY: the caller guarantees `opts` is NULL or an initialised options struct with
        // valid pointers.
        let options = unsafe { reader_options(&read_options(opts)?) }?;
        let reader = stream.stream().reader(&options)?;
        out.put(shmline_reader::boxed(reader));
        Ok(())
    })
}

/// Closes the reader: it leaves the stream and no longer holds the writer back. A frame still
/// acquired is released. NULL is allowed and does nothing. Never blocks.
///
/// # Safety
/// `reader` is NULL or a handle from `shmline_reader_open()` that is not used again after this
/// call; pointers from `shmline_reader_acquire()` are invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_close(reader: *mut shmline_reader) {
    guard((), || {
        if !reader.is_null() {
            // SAFETY: the caller passes ownership of a handle made by Box::into_raw.
            drop(unsafe { Box::from_raw(reader) });
        }
    })
}

/// Copies the next frame into `buf` (room for `cap` bytes) and its metadata into `*info`.
///
/// Waits for a frame according to `timeout_ns` (see `SHMLINE_TIMEOUT_INFINITE`). `buf` may be NULL
/// when `cap` is 0. `shmline_stream_info.max_frame_size` bytes are always enough.
///
/// Returns `SHMLINE_OK`; `SHMLINE_EMPTY` (`timeout_ns` 0 and no frame), `SHMLINE_TIMEOUT`,
/// `SHMLINE_END_OF_STREAM`, `SHMLINE_WRITER_DEAD` (outcomes: nothing read);
/// `SHMLINE_BUFFER_TOO_SMALL` (the frame stays unread, `info->len` is its length and the other
/// fields of `*info` are 0); `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (`cap` larger than
/// any buffer can be, over `PTRDIFF_MAX` bytes), `SHMLINE_WRONG_STATE` (a frame is acquired),
/// `SHMLINE_CORRUPT` (including a checksum mismatch), `SHMLINE_PANIC`.
///
/// # Safety
/// `reader` is NULL or an open reader handle; `buf` is NULL or has `cap` writable bytes; `info` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_read(
    reader: *mut shmline_reader,
    buf: *mut c_void,
    cap: usize,
    timeout_ns: i64,
    info: *mut shmline_frame_info,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `info` is NULL or writable.
        let mut info = unsafe { Out::new(info, "info") }?;
        // SAFETY: the caller guarantees `reader` is NULL or an open handle used by one thread.
        let r = unsafe { handle_mut(reader, "reader") }?;
        // SAFETY: the caller guarantees `buf` has `cap` writable bytes.
        let buf = unsafe { bytes_mut(buf, cap, "buf") }?;
        match r
            .reader
            .read_into_until(buf, Deadline::from_nanos(timeout_ns))
        {
            Ok(frame) => {
                info.put(frame.into());
                Ok(())
            }
            Err(e) => {
                if let Some(needed) = needed_info(&e) {
                    info.put(needed);
                }
                Err(e.into())
            }
        }
    })
}

/// Same as `shmline_reader_read()` with `timeout_ns` 0: reads the next frame if there is one now,
/// returns `SHMLINE_EMPTY` otherwise. Never blocks.
///
/// # Safety
/// As for `shmline_reader_read()`.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_try_read(
    reader: *mut shmline_reader,
    buf: *mut c_void,
    cap: usize,
    info: *mut shmline_frame_info,
) -> i32 {
    // SAFETY: the caller upholds shmline_reader_read's contract.
    unsafe { shmline_reader_read(reader, buf, cap, 0, info) }
}

/// Copies up to `max_frames` available frames back to back into `buf` (room for `cap` bytes) and
/// their metadata into `infos[0 .. *count]`. Frame `i` starts at `buf` plus the sum of the
/// earlier `infos[j].len`.
///
/// Waits for the first frame according to `timeout_ns`, then takes only the frames already
/// published, stopping early at a frame that does not fit in what is left of `buf` (it stays
/// unread). Lossless readers release the whole batch at once, so a batch costs about as much as
/// one read.
///
/// Returns `SHMLINE_OK` with `*count` between 1 and `max_frames`; `SHMLINE_EMPTY`,
/// `SHMLINE_TIMEOUT`, `SHMLINE_END_OF_STREAM`, `SHMLINE_WRITER_DEAD` (outcomes, `*count` 0);
/// `SHMLINE_BUFFER_TOO_SMALL` (the first frame does not fit in `cap`: it stays unread and
/// `infos[0].len` is its length); `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (`max_frames`
/// is 0, or `cap` or `max_frames` infos larger than any buffer can be, over `PTRDIFF_MAX` bytes),
/// `SHMLINE_WRONG_STATE` (a frame is acquired), `SHMLINE_CORRUPT`, `SHMLINE_PANIC`.
///
/// # Safety
/// `reader` is NULL or an open reader handle; `buf` is NULL or has `cap` writable bytes; `infos` is
/// NULL or has room for `max_frames` structs; `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_read_batch(
    reader: *mut shmline_reader,
    buf: *mut c_void,
    cap: usize,
    infos: *mut shmline_frame_info,
    max_frames: usize,
    timeout_ns: i64,
    count: *mut usize,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `count` is NULL or writable.
        let mut count = unsafe { Out::new(count, "count") }?;
        count.put(0);
        // SAFETY: the caller guarantees `reader` is NULL or an open handle used by one thread.
        let r = unsafe { handle_mut(reader, "reader") }?;
        if max_frames == 0 {
            return Err(invalid(
                "max_frames is 0: a batch needs room for at least one frame".into(),
            ));
        }
        // SAFETY: the caller guarantees `buf` has `cap` writable bytes.
        let buf = unsafe { bytes_mut(buf, cap, "buf") }?;
        // SAFETY: the caller guarantees room for `max_frames` infos; FrameInfo has the layout of
        // shmline_frame_info (asserted above) and is plain old data.
        let infos = unsafe { array_mut(infos.cast::<FrameInfo>(), max_frames, "infos") }?;
        match r
            .reader
            .read_batch_until(buf, infos, Deadline::from_nanos(timeout_ns))
        {
            Ok(n) => {
                count.put(n);
                Ok(())
            }
            Err(e) => {
                if let Error::BufferTooSmall { needed, .. } = e {
                    infos[0] = FrameInfo {
                        len: needed as u32,
                        ..Default::default()
                    };
                }
                Err(e.into())
            }
        }
    })
}

/// Lends the next frame in place, without a copy: `*data` receives a pointer to its `info->len`
/// bytes in shared memory, valid until `shmline_reader_release()` (or `shmline_reader_close()`).
/// The writer never reuses the slot before then, so a frame held too long holds the writer back.
///
/// Waits for a frame according to `timeout_ns`. Lossless readers only. Do not write through the
/// pointer. On failure `*data` is set to NULL.
///
/// Returns `SHMLINE_OK`; `SHMLINE_EMPTY`, `SHMLINE_TIMEOUT`, `SHMLINE_END_OF_STREAM`,
/// `SHMLINE_WRITER_DEAD` (outcomes: nothing acquired); `SHMLINE_NULL_POINTER`,
/// `SHMLINE_WRONG_STATE` (a frame is already acquired), `SHMLINE_UNSUPPORTED` (lossy reader),
/// `SHMLINE_CORRUPT`, `SHMLINE_PANIC`.
///
/// # Safety
/// `reader` is NULL or an open reader handle; `data` and `info` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_acquire(
    reader: *mut shmline_reader,
    timeout_ns: i64,
    data: *mut *const c_void,
    info: *mut shmline_frame_info,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `data` is NULL or writable.
        let mut data = unsafe { Out::new(data, "data") }?;
        data.put(std::ptr::null());
        // SAFETY: the caller guarantees `info` is NULL or writable.
        let mut info = unsafe { Out::new(info, "info") }?;
        // SAFETY: the caller guarantees `reader` is NULL or an open handle used by one thread.
        let r = unsafe { handle_mut(reader, "reader") }?;
        let (payload, frame) = r.reader.acquire_raw(Deadline::from_nanos(timeout_ns))?;
        data.put(payload.cast());
        info.put(frame.into());
        Ok(())
    })
}

/// Releases the frame lent by `shmline_reader_acquire()`; its pointer is invalid afterwards.
/// Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_WRONG_STATE` (nothing acquired),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `reader` is NULL or an open reader handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_release(reader: *mut shmline_reader) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `reader` is NULL or an open handle used by one thread.
        let r = unsafe { handle_mut(reader, "reader") }?;
        Ok(r.reader.release_raw()?)
    })
}

/// Reads one counter of a reader into `*out`.
///
/// # Safety
/// `reader` is NULL or an open reader handle; `out` is NULL or writable.
unsafe fn counter(
    reader: *const shmline_reader,
    out: *mut u64,
    get: impl FnOnce(&Reader) -> u64,
) -> FfiResult {
    // SAFETY: the caller guarantees `reader` is NULL or an open handle.
    let r = unsafe { handle(reader, "reader") }?;
    // SAFETY: the caller guarantees `out` is NULL or writable.
    let mut out = unsafe { Out::new(out, "out") }?;
    out.put(get(&r.reader));
    Ok(())
}

/// `*out` receives the total number of frames this (lossy) reader has missed; always 0 for a
/// lossless reader. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `reader` is NULL or an open reader handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_missed(
    reader: *const shmline_reader,
    out: *mut u64,
) -> i32 {
    // SAFETY: the caller upholds `counter`'s contract.
    ffi_call(|| unsafe { counter(reader, out, Reader::missed) })
}

/// `*out` receives the sequence number of the next frame this reader will read. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `reader` is NULL or an open reader handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_position(
    reader: *const shmline_reader,
    out: *mut u64,
) -> i32 {
    // SAFETY: the caller upholds `counter`'s contract.
    ffi_call(|| unsafe { counter(reader, out, Reader::position) })
}

/// Opens another handle to the stream this reader reads (the same mapping), for its name,
/// schema, geometry and statistics: a reader taken from a pipeline task
/// (`shmline_task_reader()`) comes without its stream. Never blocks.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_stream_close()`; on failure `*out` is set to NULL.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `reader` is NULL or an open reader handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_reader_stream(
    reader: *const shmline_reader,
    out: *mut *mut shmline_stream,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `reader` is NULL or an open handle.
        let r = unsafe { handle(reader, "reader") }?;
        out.put(Box::into_raw(shmline_stream::new(r.reader.stream())));
        Ok(())
    })
}
