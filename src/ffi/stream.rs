//! `shmline_stream`: create, open, describe and monitor streams.

use super::{
    array, array_mut, bytes_mut, cstr, ffi_call, guard, handle, invalid, read_options, too_small,
    BoxedHandle, Failure, FfiResult, OptionsStruct, Out,
};
use crate::error::Error;
use crate::ring::{Backpressure, Stream, StreamOptions, StreamStats, WriterState};
use crate::schema::Schema;
use std::ffi::{c_char, CString};

/// Size of a buffer that holds any dtype string with its terminating NUL.
pub const SHMLINE_DTYPE_LEN: u32 = 32;
/// Most dimensions a schema's shape may have.
pub const SHMLINE_MAX_NDIM: u32 = 8;

/// Backpressure policy (`shmline_stream_options.backpressure`): a writer waits for space when the
/// ring is full; nothing is lost. The default.
pub const SHMLINE_BACKPRESSURE_BLOCK: u32 = 0;
/// Backpressure policy: a write to a full ring returns `SHMLINE_FULL` at once, even when the call
/// was given a timeout.
pub const SHMLINE_BACKPRESSURE_FAIL: u32 = 1;
/// Backpressure policy: a copy write to a full ring returns `SHMLINE_OK` without writing; the
/// frame is discarded and counted (`shmline_stream_stats.frames_dropped`,
/// `shmline_writer_frames_dropped()`). `shmline_writer_reserve()` on a full ring returns
/// `SHMLINE_FULL` at once.
pub const SHMLINE_BACKPRESSURE_DROP_NEWEST: u32 = 2;
/// Backpressure policy: the writer never waits and overwrites the oldest frames; every reader
/// reads like a lossy one (`shmline_frame_info.missed` counts what it lost) and
/// `shmline_reader_acquire()` returns `SHMLINE_UNSUPPORTED`.
pub const SHMLINE_BACKPRESSURE_DROP_OLDEST: u32 = 3;

/// `shmline_stream_stats.writer_state`: no writer has opened the stream yet.
pub const SHMLINE_WRITER_STATE_NONE: u32 = 0;
/// `shmline_stream_stats.writer_state`: a live writer is attached.
pub const SHMLINE_WRITER_STATE_ACTIVE: u32 = 1;
/// `shmline_stream_stats.writer_state`: the writer closed the stream (end of stream).
pub const SHMLINE_WRITER_STATE_CLOSED: u32 = 2;
/// `shmline_stream_stats.writer_state`: the writer's process died without closing the stream.
pub const SHMLINE_WRITER_STATE_DEAD: u32 = 3;

/// An open stream: a mapping of a stream segment into this process.
///
/// Made by `shmline_stream_create()` or `shmline_stream_open()`, freed by `shmline_stream_close()`.
/// Every function taking a `const shmline_stream *` may be called from any number of threads at
/// once. Writers and readers opened from a stream keep its memory mapped, so the stream handle may
/// be closed before them.
pub struct shmline_stream {
    stream: Stream,
    /// The name, NUL-terminated, for `shmline_stream_name`.
    name: CString,
}

impl BoxedHandle for shmline_stream {}

impl shmline_stream {
    /// A new handle owning `stream`, for the caller to free with `shmline_stream_close`.
    pub(crate) fn boxed(stream: Stream) -> *mut shmline_stream {
        let name = CString::new(stream.name()).expect("validated names have no NUL");
        shmline_stream { stream, name }.into_raw()
    }

    /// The Rust stream behind the handle.
    pub(crate) fn stream(&self) -> &Stream {
        &self.stream
    }
}

/// Parameters of a new stream, for `shmline_stream_create()`.
///
/// Always initialise with `shmline_stream_options_default()`, then change the fields you need:
/// that sets `struct_size`, which lets later versions append fields without breaking your
/// program.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmline_stream_options {
    /// `sizeof(shmline_stream_options)`, set by `shmline_stream_options_default()`.
    pub struct_size: u32,
    /// Number of slots in the ring: a power of two from 1 to 16777216 (default 64). A writer runs
    /// at most this many frames ahead of its slowest lossless reader.
    pub capacity: u32,
    /// Largest frame in bytes, at most 1 GiB. 0 (the default) takes the frame size of the schema;
    /// a stream without a schema needs a non-zero value.
    pub max_frame_size: u32,
    /// Most readers attached at once, 1 to 1024 (default 8).
    pub max_readers: u32,
    /// Permission bits of the segment (default 0600: owner only); must include 0600.
    pub permissions: u32,
    /// Non-zero: every frame carries a CRC32C that readers check (`SHMLINE_CORRUPT` on a
    /// mismatch). Default 0.
    pub checksum: u8,
    /// Non-zero: remove the stream's name when this stream handle and every writer and reader
    /// opened from it are closed. Default 0: the stream outlives its creator until
    /// `shmline_stream_unlink()`.
    pub unlink_on_close: u8,
    /// Schema: NumPy array-interface type string of the elements (`"<f4"`, `"|u1"`, `"<c8"`...),
    /// or NULL (the default) for raw bytes without a schema. Copied during the call.
    pub dtype: *const c_char,
    /// Schema: number of dimensions, 0 to `SHMLINE_MAX_NDIM` (0 with a dtype: one scalar per
    /// frame). Must be 0 when `dtype` is NULL.
    pub ndim: u32,
    /// Schema: `ndim` dimensions, none of them 0; may be NULL when `ndim` is 0. Copied during the
    /// call.
    pub shape: *const u64,
    /// What writers do when the ring is full: `SHMLINE_BACKPRESSURE_BLOCK` (default),
    /// `SHMLINE_BACKPRESSURE_FAIL`, `SHMLINE_BACKPRESSURE_DROP_NEWEST` or
    /// `SHMLINE_BACKPRESSURE_DROP_OLDEST`.
    pub backpressure: u32,
    /// Most writers attached at once, 1 to 64 (default 1). With more than one, any number of
    /// writer processes up to this limit open writers and write concurrently; frames are published
    /// in the order the writers claimed them, and the stream ends when every writer that opened
    /// has closed.
    pub max_writers: u32,
    /// Most reader groups at once, 0 to 64 (default 4). Readers that open with the same
    /// `shmline_reader_options.group` share the work: each frame goes to exactly one of them.
    pub max_groups: u32,
}

// SAFETY: repr(C), starts with `struct_size: u32`, and every field is an integer or a raw pointer.
unsafe impl OptionsStruct for shmline_stream_options {
    const NAME: &'static str = "shmline_stream_options";
    const MIN_SIZE: usize = size_of::<shmline_stream_options>();
    fn defaults() -> Self {
        let d = StreamOptions::default();
        shmline_stream_options {
            struct_size: size_of::<shmline_stream_options>() as u32,
            capacity: d.capacity,
            max_frame_size: d.max_frame_size,
            max_readers: d.max_readers,
            permissions: d.permissions,
            checksum: d.checksum.into(),
            unlink_on_close: d.unlink_on_close.into(),
            dtype: std::ptr::null(),
            ndim: 0,
            shape: std::ptr::null(),
            backpressure: d.backpressure as u32,
            max_writers: d.max_writers,
            max_groups: d.max_groups,
        }
    }
}

/// Fixed facts about a stream, filled by `shmline_stream_get_info()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmline_stream_info {
    /// Number of slots in the ring.
    pub capacity: u32,
    /// Largest frame in bytes.
    pub max_frame_size: u32,
    /// Bytes per slot in shared memory (frame header and payload, rounded up).
    pub slot_size: u32,
    /// Most readers attached at once.
    pub max_readers: u32,
    /// Process id of the stream's creator.
    pub creator_pid: u32,
    /// Whether frames carry a CRC32C checked by readers.
    pub checksum: bool,
    /// Whether the stream has a schema (see `shmline_stream_get_schema()`).
    pub has_schema: bool,
    /// Total bytes of shared memory the stream occupies.
    pub segment_size: u64,
    /// Start time of the creator process, in clock ticks since boot (with `creator_pid`, tells the
    /// creator from a later process that reuses its pid).
    pub creator_start_time: u64,
    /// The stream's backpressure policy (`SHMLINE_BACKPRESSURE_*`).
    pub backpressure: u32,
    /// Most writers attached at once (1: a single-writer stream).
    pub max_writers: u32,
    /// Most reader groups at once.
    pub max_groups: u32,
}

/// A snapshot of a stream's shared counters, filled by `shmline_stream_get_stats()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmline_stream_stats {
    /// Number of slots in the ring.
    pub capacity: u32,
    /// What the writer is doing: `SHMLINE_WRITER_STATE_NONE`, `_ACTIVE`, `_CLOSED`
    /// or `_DEAD`.
    pub writer_state: u32,
    /// Process id of the writer of a single-writer stream; 0 if no writer has attached, and for a
    /// multi-writer stream (see `writer_count`).
    pub writer_pid: u32,
    /// Number of readers attached (may exceed the `readers_cap` passed to
    /// `shmline_stream_get_stats()`).
    pub reader_count: u32,
    /// Frames published so far.
    pub frames_written: u64,
    /// Payload bytes published so far.
    pub bytes_written: u64,
    /// Times the writer found the ring full and waited.
    pub writer_waits: u64,
    /// Total nanoseconds the writer spent waiting for space.
    pub writer_wait_ns: u64,
    /// Readers that died and whose slots were reclaimed.
    pub readers_reclaimed: u64,
    /// Fill of the ring as seen by its slowest lossless reader, 0.0 (empty) to 1.0 (full).
    pub fill: f64,
    /// Frames writers discarded because the ring was full (`SHMLINE_BACKPRESSURE_DROP_NEWEST`).
    /// Frames a lossy reader lost are its `shmline_reader_stats.missed`.
    pub frames_dropped: u64,
    /// Multi-writer streams: sequence numbers skipped because their writer died before
    /// publishing them (or aborted a reservation); readers count them in their `missed`.
    pub frames_skipped: u64,
    /// Multi-writer streams: number of writers attached now.
    pub writer_count: u32,
    /// Multi-writer streams: dead writers whose slots were reclaimed.
    pub writers_reclaimed: u64,
    /// Number of reader groups with members now.
    pub group_count: u32,
    /// Frames delivered again within reader groups because the member holding them died (at-least-
    /// once delivery within a group), summed over the groups.
    pub frames_redelivered: u64,
}

/// Counters of one attached reader, filled by `shmline_stream_get_stats()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmline_reader_stats {
    /// Index of the reader's slot in the stream's reader table.
    pub index: u32,
    /// Process id of the reader.
    pub pid: u32,
    /// Whether that process is still alive.
    pub alive: bool,
    /// Whether the reader is lossy.
    pub lossy: bool,
    /// Sequence number of the next frame it will read.
    pub position: u64,
    /// Frames it has read.
    pub frames_read: u64,
    /// Payload bytes it has read.
    pub bytes_read: u64,
    /// Frames it missed, as `shmline_reader_missed()` counts them: frames a lossy reader (every
    /// reader of a `SHMLINE_BACKPRESSURE_DROP_OLDEST` stream) lost because the writer overwrote
    /// them, and skipped sequence numbers of a multi-writer stream.
    pub missed: u64,
    /// Frames published that it has not read yet (a group member: 0 while it holds no frame).
    pub lag: u64,
    /// Name of the reader group it is a member of, NUL-terminated; empty (`""`) for a plain
    /// reader.
    pub group: [c_char; SHMLINE_GROUP_NAME_LEN],
}

/// Size of `shmline_reader_stats.group`: a group name is at most 63 bytes, plus the NUL.
pub const SHMLINE_GROUP_NAME_LEN: usize = 64;
const _: () = assert!(SHMLINE_GROUP_NAME_LEN == crate::layout::GROUP_NAME_LEN);

impl From<&StreamStats> for shmline_stream_stats {
    fn from(stats: &StreamStats) -> shmline_stream_stats {
        shmline_stream_stats {
            capacity: stats.capacity,
            writer_state: match stats.writer_state {
                WriterState::None => SHMLINE_WRITER_STATE_NONE,
                WriterState::Active => SHMLINE_WRITER_STATE_ACTIVE,
                WriterState::Closed => SHMLINE_WRITER_STATE_CLOSED,
                WriterState::Dead => SHMLINE_WRITER_STATE_DEAD,
            },
            writer_pid: stats.writer_pid.unwrap_or(0),
            reader_count: stats.readers.len() as u32,
            frames_written: stats.frames_written,
            bytes_written: stats.bytes_written,
            writer_waits: stats.writer_waits,
            writer_wait_ns: stats.writer_wait_ns,
            readers_reclaimed: stats.readers_reclaimed,
            fill: stats.fill(),
            frames_dropped: stats.frames_dropped,
            frames_skipped: stats.frames_skipped,
            writer_count: stats.writers.len() as u32,
            writers_reclaimed: stats.writers_reclaimed,
            group_count: stats.groups.len() as u32,
            frames_redelivered: stats.frames_redelivered(),
        }
    }
}

/// Reads a schema given as C arguments: `dtype` NULL means none.
///
/// # Safety
/// `dtype` is NULL or a NUL-terminated string; `shape` is NULL or points to `ndim` `uint64_t`s.
pub(crate) unsafe fn schema_arg(
    dtype: *const c_char,
    ndim: u32,
    shape: *const u64,
    prefix: &str,
) -> FfiResult<Option<Schema>> {
    if dtype.is_null() {
        if ndim != 0 {
            return Err(invalid(format!(
                "{prefix}ndim is {ndim} but {prefix}dtype is NULL: a shape needs a dtype"
            )));
        }
        return Ok(None);
    }
    if ndim > SHMLINE_MAX_NDIM {
        return Err(invalid(format!(
            "{prefix}ndim is {ndim}; at most {SHMLINE_MAX_NDIM} dimensions are supported"
        )));
    }
    // SAFETY: the caller guarantees a non-NULL dtype is NUL-terminated.
    let dtype = unsafe { cstr(dtype, "dtype") }?;
    // SAFETY: the caller guarantees `shape` points to `ndim` values (ndim <= 8 was checked).
    let shape = unsafe { array(shape, ndim as usize, "shape") }?;
    Ok(Some(Schema::new(dtype, shape)?))
}

/// Returns the default stream options: capacity 64, no maximum frame size (set one, or a schema), 8
/// readers, 1 writer, 4 reader groups, permissions 0600, no checksum, no unlink on close, no
/// schema, backpressure `SHMLINE_BACKPRESSURE_BLOCK`; `struct_size` set.
#[no_mangle]
pub extern "C" fn shmline_stream_options_default() -> shmline_stream_options {
    guard(
        shmline_stream_options::defaults(),
        shmline_stream_options::defaults,
    )
}

/// Creates a new stream named `name` and opens it.
///
/// Creation is exclusive: `SHMLINE_ALREADY_EXISTS` if the name is taken. The segment is
/// `/dev/shm/shmline.stream.<name>`, fully initialised before any other process can open it.
/// `opts` may be NULL for the defaults, which have no maximum frame size, so a stream needs at
/// least `max_frame_size` or a schema.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_stream_close()`. On failure `*out` is set to NULL. Never blocks for long.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER` (`name` or `out`, or `opts->shape` when `opts->ndim
/// > 0`), `SHMLINE_INVALID_NAME`, `SHMLINE_INVALID_ARGUMENT` (bad `struct_size`, capacity, sizes,
/// permissions, dtype, shape or backpressure; non-UTF-8 name), `SHMLINE_ALREADY_EXISTS`,
/// `SHMLINE_PERMISSION_DENIED`, `SHMLINE_NO_SPACE`, `SHMLINE_OS_ERROR`, `SHMLINE_PANIC`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `opts` is NULL or a struct initialised by
/// `shmline_stream_options_default()` whose `dtype`/`shape` pointers are NULL or valid; `out` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_create(
    name: *const c_char,
    opts: *const shmline_stream_options,
    out: *mut *mut shmline_stream,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        // SAFETY: the caller guarantees `opts` is NULL or an initialised options struct.
        let o = unsafe { read_options(opts) }?;
        // SAFETY: read_options copied the caller's pointers, which the caller guarantees valid.
        let schema = unsafe { schema_arg(o.dtype, o.ndim, o.shape, "opts->") }?;
        let backpressure = Backpressure::from_u32(o.backpressure).ok_or_else(|| {
            invalid(format!(
                "opts->backpressure is {}, not a policy: use SHMLINE_BACKPRESSURE_BLOCK (0), \
                 _FAIL (1), _DROP_NEWEST (2) or _DROP_OLDEST (3)",
                o.backpressure
            ))
        })?;
        let options = StreamOptions {
            backpressure,
            capacity: o.capacity,
            max_frame_size: o.max_frame_size,
            max_readers: o.max_readers,
            max_writers: o.max_writers,
            max_groups: o.max_groups,
            schema,
            checksum: o.checksum != 0,
            permissions: o.permissions,
            unlink_on_close: o.unlink_on_close != 0,
        };
        let stream = Stream::create(name, &options)?;
        out.put(shmline_stream::boxed(stream));
        Ok(())
    })
}

/// Opens the existing stream `name`.
///
/// Checks the segment's magic, layout version and every size against the real segment; waits up
/// to 2 seconds for a creator that is still initialising it. On success `*out` receives a new
/// handle, which the caller owns and frees with `shmline_stream_close()`; on failure `*out` is set
/// to NULL.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_NAME`,
/// `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 name), `SHMLINE_NOT_FOUND`, `SHMLINE_PERMISSION_DENIED`,
/// `SHMLINE_NOT_SHMLINE`, `SHMLINE_VERSION_MISMATCH`, `SHMLINE_CORRUPT`, `SHMLINE_OS_ERROR`,
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_open(
    name: *const c_char,
    out: *mut *mut shmline_stream,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        let stream = Stream::open(name)?;
        out.put(shmline_stream::boxed(stream));
        Ok(())
    })
}

/// Closes a stream handle. NULL is allowed and does nothing.
///
/// Writers and readers opened from it stay usable until they are closed themselves. If the
/// stream was created with `unlink_on_close`, its name is removed once this handle and all of them
/// are closed. Closing does not end the stream for readers: only `shmline_writer_close()` does.
///
/// # Safety
/// `stream` is NULL or a handle from `shmline_stream_create()`/`shmline_stream_open()` that is
/// not used again (by any thread) after this call.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_close(stream: *mut shmline_stream) {
    // SAFETY: the caller passes NULL or a handle it owns and never uses again (this function's
    // contract), which is `free_box`'s.
    unsafe { shmline_stream::free_box(stream) }
}

/// Removes the name of stream `name` from the system. Processes that have it open keep using it;
/// new `shmline_stream_open()` calls fail with `SHMLINE_NOT_FOUND`.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_NAME`,
/// `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 name), `SHMLINE_NOT_FOUND`, `SHMLINE_PERMISSION_DENIED`,
/// `SHMLINE_OS_ERROR`, `SHMLINE_PANIC`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_unlink(name: *const c_char) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        Ok(Stream::unlink(name)?)
    })
}

/// Removes stream `name` if nobody alive uses it: its creator, its writer and every reader are
/// dead. Use it to take a name back after a crash; `shmline_stream_create()` never does it by
/// itself. A file under the name that is not a finished shmline stream (empty, zeros, foreign
/// bytes, not a regular file: also what a creator that died while making it leaves) is never
/// removed: `SHMLINE_NOT_SHMLINE`, whose message says what it is; delete it by hand if it is yours.
///
/// Returns `SHMLINE_OK` if it removed the stream, `SHMLINE_NOT_FOUND` if there is no such stream,
/// `SHMLINE_ALREADY_EXISTS` if a live process uses it (the message names it; nothing is removed),
/// `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_NAME`, `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 name),
/// `SHMLINE_NOT_SHMLINE`, `SHMLINE_VERSION_MISMATCH` or `SHMLINE_CORRUPT` (the stream cannot be
/// judged; nothing is removed), `SHMLINE_PERMISSION_DENIED`, `SHMLINE_OS_ERROR`, `SHMLINE_PANIC`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_remove_stale(name: *const c_char) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        match Stream::remove_stale(name)? {
            true => Ok(()),
            false => Err(Error::NotFound(format!("stream {name:?}")).into()),
        }
    })
}

/// The stream's name, NUL-terminated; NULL if `stream` is NULL.
///
/// The string belongs to the handle: do not free it; it is valid until `shmline_stream_close()`.
///
/// # Safety
/// `stream` is NULL or an open stream handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_name(stream: *const shmline_stream) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: the caller guarantees `stream` is NULL or an open handle.
        unsafe { handle(stream, "stream") }.map_or(std::ptr::null(), |s| s.name.as_ptr())
    })
}

/// Fills `*out` with the stream's fixed facts (read once when it was opened; never blocks).
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `stream` is NULL or an open stream handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_get_info(
    stream: *const shmline_stream,
    out: *mut shmline_stream_info,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `stream` is NULL or an open handle.
        let stream = unsafe { handle(stream, "stream") }?;
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        let info = stream.stream.info();
        out.put(shmline_stream_info {
            capacity: info.capacity,
            max_frame_size: info.max_frame_size,
            slot_size: info.slot_size,
            max_readers: info.max_readers,
            creator_pid: info.creator.pid,
            checksum: info.checksum,
            has_schema: info.schema.is_some(),
            segment_size: info.segment_size,
            creator_start_time: info.creator.start_time,
            backpressure: info.backpressure as u32,
            max_writers: info.max_writers,
            max_groups: info.max_groups,
        });
        Ok(())
    })
}

/// Copies the stream's schema out: its dtype as a NUL-terminated string into `dtype` (room for
/// `dtype_cap` bytes; `SHMLINE_DTYPE_LEN` is always enough), its dimensions into `shape` (room for
/// `shape_cap` values; `SHMLINE_MAX_NDIM` is always enough) and their number into `*ndim`.
///
/// A stream without a schema gives an empty dtype (`""`) and `*ndim = 0`; a stream whose frames
/// are one scalar gives a dtype and `*ndim = 0`. `shape` may be NULL when `shape_cap` is 0.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_BUFFER_TOO_SMALL` (nothing written),
/// `SHMLINE_INVALID_ARGUMENT` (`dtype_cap` or `shape_cap` larger than any buffer can be),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `stream` is NULL or an open stream handle; `dtype` is NULL or has `dtype_cap` writable bytes;
/// `shape` is NULL or has room for `shape_cap` values; `ndim` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_get_schema(
    stream: *const shmline_stream,
    dtype: *mut c_char,
    dtype_cap: usize,
    shape: *mut u64,
    shape_cap: usize,
    ndim: *mut u32,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `stream` is NULL or an open handle.
        let stream = unsafe { handle(stream, "stream") }?;
        if dtype.is_null() {
            return Err(Failure::Null("dtype"));
        }
        // SAFETY: the caller guarantees `dtype` has `dtype_cap` writable bytes.
        let dtype = unsafe { bytes_mut(dtype.cast(), dtype_cap, "dtype") }?;
        // SAFETY: the caller guarantees `shape` is NULL or has room for `shape_cap` values.
        let shape = unsafe { array_mut(shape, shape_cap, "shape") }?;
        // SAFETY: the caller guarantees `ndim` is NULL or writable.
        let mut ndim = unsafe { Out::new(ndim, "ndim") }?;
        let (text, dims) = stream
            .stream
            .schema()
            .map_or(("", &[][..]), |s| (s.dtype(), s.shape()));
        if text.len() >= dtype.len() {
            return Err(too_small(format!(
                "dtype_cap is {} but the dtype {text:?} needs {} bytes with its NUL \
                 (SHMLINE_DTYPE_LEN is always enough)",
                dtype.len(),
                text.len() + 1
            )));
        }
        if dims.len() > shape.len() {
            return Err(too_small(format!(
                "shape_cap is {} but the schema has {} dimensions (SHMLINE_MAX_NDIM is always \
                 enough)",
                shape.len(),
                dims.len()
            )));
        }
        dtype[..text.len()].copy_from_slice(text.as_bytes());
        dtype[text.len()] = 0;
        shape[..dims.len()].copy_from_slice(dims);
        ndim.put(dims.len() as u32);
        Ok(())
    })
}

/// Takes a snapshot of the stream's shared counters into `*out`, and of up to `readers_cap`
/// attached readers into `readers[0 .. min(readers_cap, out->reader_count)]`.
///
/// Only reads shared memory: never disturbs the writer or the readers, never blocks. The counters
/// are read one by one while the stream runs, so they need not be consistent with each other.
/// `readers` may be NULL when `readers_cap` is 0. If `out->reader_count > readers_cap`, only the
/// first `readers_cap` readers were written; `shmline_stream_get_info()`'s `max_readers` is always
/// enough.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `stream` is NULL or an open stream handle; `out` is NULL or writable; `readers` is NULL or has
/// room for `readers_cap` structs.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_get_stats(
    stream: *const shmline_stream,
    out: *mut shmline_stream_stats,
    readers: *mut shmline_reader_stats,
    readers_cap: usize,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `stream` is NULL or an open handle.
        let stream = unsafe { handle(stream, "stream") }?;
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        if readers.is_null() && readers_cap > 0 {
            return Err(Failure::Null("readers"));
        }
        let stats = stream.stream.stats();
        out.put((&stats).into());
        for (i, r) in stats.readers.iter().take(readers_cap).enumerate() {
            // SAFETY: `readers` is non-NULL (checked) with room for readers_cap structs, and
            // i < readers_cap; the bytes are written, never read (they may hold garbage).
            let mut slot = unsafe { Out::new(readers.add(i), "readers") }?;
            slot.put(shmline_reader_stats {
                index: r.index,
                pid: r.pid,
                alive: r.alive,
                lossy: r.lossy,
                position: r.position,
                frames_read: r.frames_read,
                bytes_read: r.bytes_read,
                missed: r.missed,
                lag: r.lag,
                group: group_name(r.group.as_deref()),
            });
        }
        Ok(())
    })
}

/// A group name as a NUL-padded C array (names are at most 63 bytes, so one NUL always fits).
fn group_name(name: Option<&str>) -> [c_char; SHMLINE_GROUP_NAME_LEN] {
    let mut out = [0 as c_char; SHMLINE_GROUP_NAME_LEN];
    let bytes = name.unwrap_or("").as_bytes();
    for (dst, &src) in out.iter_mut().zip(bytes).take(SHMLINE_GROUP_NAME_LEN - 1) {
        *dst = src as c_char;
    }
    out
}

/// Lists the streams that exist on this machine: every name NUL-terminated, back to back, then one
/// more NUL (an empty name ends the list), into `names` (room for `cap` bytes). `*len` receives
/// the bytes the whole list needs, also when it does not fit.
///
/// Call with `names = NULL, cap = 0` to learn the size; streams may appear meanwhile, so repeat
/// while the call returns `SHMLINE_BUFFER_TOO_SMALL` (nothing is written then). Walk the list with
/// `for (const char *n = names; *n; n += strlen(n) + 1)`.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_BUFFER_TOO_SMALL`,
/// `SHMLINE_INVALID_ARGUMENT` (`cap` larger than any buffer can be, over `PTRDIFF_MAX` bytes),
/// `SHMLINE_OS_ERROR`, `SHMLINE_PANIC`.
///
/// # Safety
/// `names` is NULL or has `cap` writable bytes; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_stream_list(
    names: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `len` is NULL or writable.
        let mut len = unsafe { Out::new(len, "len") }?;
        // SAFETY: the caller guarantees `names` is NULL or has `cap` writable bytes.
        let buf = unsafe { bytes_mut(names.cast(), cap, "names") }?;
        let list = Stream::list()?;
        let needed = list.iter().map(|n| n.len() + 1).sum::<usize>() + 1;
        len.put(needed);
        if needed > buf.len() {
            return Err(too_small(format!(
                "the list of streams needs {needed} bytes but cap is {}",
                buf.len()
            )));
        }
        let mut at = 0;
        for name in &list {
            buf[at..at + name.len()].copy_from_slice(name.as_bytes());
            buf[at + name.len()] = 0;
            at += name.len() + 1;
        }
        buf[at] = 0;
        Ok(())
    })
}
