//! `shmline_task`: the task side of a pipeline. A program started by a pipeline's runner joins
//! it by name and takes its readers, writers and events by the parameter names it was declared
//! with.

use super::event::shmline_event;
use super::reader::{reader_options, shmline_reader, shmline_reader_options};
use super::writer::{shmline_writer, shmline_writer_options, writer_options};
use super::{
    array, cstr, ffi_call, guard, handle, handle_mut, invalid, read_options, FfiResult, Out,
};
use crate::pipeline::{check_inputs_ended, Task, ENV_PIPELINE, ENV_TASK};
use crate::wait::Deadline;
use std::ffi::{c_char, CString};

/// A process's membership of a running pipeline, as one of its tasks. Made by
/// `shmline_task_join()`, freed by `shmline_task_close()`.
///
/// Holds the task's readers, writers and events until they are taken; those never taken are
/// closed by `shmline_task_close()` (a writer closing ends its stream).
///
/// Threads: `shmline_task_reader()`, `shmline_task_writer()`, `shmline_task_event()` and
/// `shmline_task_close()` must not run at the same time as any other call on the same task.
/// The other functions (`shmline_task_stop_requested()`, `shmline_task_wait_stop()`,
/// `shmline_task_name()`, `shmline_task_pipeline_name()`) may be called from any number of
/// threads at once. Handles taken from a task are independent of it and may outlive it.
pub struct shmline_task {
    task: Task,
    /// The task's name, NUL-terminated, for `shmline_task_name`.
    name: CString,
    /// The pipeline's name, NUL-terminated, for `shmline_task_pipeline_name`.
    pipeline: CString,
}

/// The name given by the caller, or the value of environment variable `key`.
///
/// # Safety
/// `arg` is NULL or a NUL-terminated string.
unsafe fn name_or_env(arg: *const c_char, what: &'static str, key: &str) -> FfiResult<String> {
    if !arg.is_null() {
        // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string.
        return Ok(unsafe { cstr(arg, what) }?.to_owned());
    }
    match std::env::var(key) {
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => Err(invalid(format!(
            "`{what}` is NULL and {key} is not set: start this program as a task of a pipeline \
             (`shmline run pipeline.toml`, or shmline_pipeline_run()), whose runner sets \
             SHMLINE_PIPELINE and SHMLINE_TASK, or pass the pipeline and task names to \
             shmline_task_join()"
        ))),
        Err(std::env::VarError::NotUnicode(value)) => Err(invalid(format!(
            "`{what}` is NULL and {key} is not valid UTF-8: {value:?}"
        ))),
    }
}

/// Joins task `task` of the running pipeline `pipeline`, and waits until every task of the
/// pipeline has joined.
///
/// A NULL `pipeline` (or `task`) takes the name from the environment variable `SHMLINE_PIPELINE`
/// (or `SHMLINE_TASK`), which the runner sets for every task it starts: a task program normally
/// calls `shmline_task_join(NULL, NULL, &task)`.
///
/// Joining attaches a reader for every parameter the task reads (joining its reader group when the
/// pipeline declared one, `shmline_pipeline_bind_group()`), a writer for every stream it writes
/// and every event it uses, then waits at the pipeline's start barrier. When it returns,
/// every reader of every task is attached, so no frame any writer publishes can be lost. This
/// blocks until the last task has joined: up to the pipeline's join timeout (30 s by default),
/// after which it fails with `SHMLINE_PIPELINE_FAILED`.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_task_close()`; on failure `*out` is set to NULL.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER` (`out`), `SHMLINE_INVALID_ARGUMENT` (a NULL name
/// whose environment variable is not set: the message says how to start the program; non-UTF-8
/// names), `SHMLINE_INVALID_NAME`, `SHMLINE_NOT_FOUND` (the pipeline is not running, or has no
/// such task: the message lists its tasks), `SHMLINE_WRONG_STATE` (the task has already joined,
/// or the pipeline is past its start), `SHMLINE_PIPELINE_FAILED` (the pipeline stopped, its
/// runner died, or not every task joined in time), the errors of opening its streams and events
/// (`SHMLINE_CORRUPT`, `SHMLINE_PERMISSION_DENIED`...), `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` and `task` are NULL or NUL-terminated strings; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_join(
    pipeline: *const c_char,
    task: *const c_char,
    out: *mut *mut shmline_task,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `pipeline` is NULL or NUL-terminated.
        let pipeline = unsafe { name_or_env(pipeline, "pipeline", ENV_PIPELINE) }?;
        // SAFETY: the caller guarantees `task` is NULL or NUL-terminated.
        let task = unsafe { name_or_env(task, "task", ENV_TASK) }?;
        let task = Task::join_as(&pipeline, &task)?;
        let c = |s: &str| CString::new(s).expect("validated names have no NUL");
        out.put(Box::into_raw(Box::new(shmline_task {
            name: c(task.name()),
            pipeline: c(task.pipeline()),
            task,
        })));
        Ok(())
    })
}

/// Closes a task handle: the readers, writers and events not taken are closed (each writer
/// closing ends its stream, so its readers drain it and then get `SHMLINE_END_OF_STREAM`).
/// Handles already taken stay open. NULL is allowed and does nothing. Never blocks.
///
/// Closing the task does not end the process's membership in the runner's eyes: the runner
/// watches the process, whose exit status is the task's result.
///
/// # Safety
/// `task` is NULL or a handle from `shmline_task_join()` that no thread uses after this call.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_close(task: *mut shmline_task) {
    guard((), || {
        if !task.is_null() {
            // SAFETY: the caller passes ownership of a handle made by Box::into_raw.
            drop(unsafe { Box::from_raw(task) });
        }
    })
}

/// Takes the reader bound to reading parameter `param`. Each reader can be taken once.
///
/// The reader was attached when the task joined, before any frame was written, so it reads every
/// frame of its stream whatever `opts->start` says. `opts` may be NULL for the defaults; from
/// `shmline_reader_options`, `wait` applies from now on, `require_*` is checked (on a mismatch
/// the reader stays available), `lossy` must be 0: a task's readers are lossless (for a
/// lossy tap, open the stream `PIPELINE.STREAM` with `shmline_stream_open()` and
/// `shmline_reader_open()`), and `group` must be NULL, "" or the reader group the pipeline
/// declared for `param` (the reader joined it when the task joined).
///
/// On success `*out` receives the reader, which the caller owns and frees with
/// `shmline_reader_close()` (it may outlive the task handle); on failure `*out` is set to NULL.
/// Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (bad options, a
/// `group` other than the declared one, non-UTF-8 `param`), `SHMLINE_NOT_FOUND` (no such reading parameter: the message lists the
/// task's reading parameters), `SHMLINE_WRONG_STATE` (already taken), `SHMLINE_SCHEMA_MISMATCH`,
/// `SHMLINE_UNSUPPORTED` (`lossy`), `SHMLINE_PANIC`.
///
/// # Safety
/// `task` is NULL or a task handle not used by another thread during the call; `param` is NULL
/// or a NUL-terminated string; `opts` is NULL or initialised by
/// `shmline_reader_options_default()` with valid `require_*` pointers; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_reader(
    task: *mut shmline_task,
    param: *const c_char,
    opts: *const shmline_reader_options,
    out: *mut *mut shmline_reader,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `task` is NULL or a handle used only by this thread.
        let t = unsafe { handle_mut(task, "task") }?;
        // SAFETY: the caller guarantees `param` is NULL or NUL-terminated.
        let param = unsafe { cstr(param, "param") }?;
        // SAFETY: the caller guarantees `opts` is NULL or an initialised options struct with
        // valid pointers.
        let options = unsafe { reader_options(&read_options(opts)?) }?;
        let reader = t.task.reader_with(param, &options)?;
        out.put(shmline_reader::boxed(reader));
        Ok(())
    })
}

/// Takes the writer bound to writing parameter `param`. Each writer can be taken once.
///
/// `opts` may be NULL for the defaults; its `wait` applies from now on. On success `*out`
/// receives the writer, which the caller owns and frees with `shmline_writer_close()` (that ends
/// the stream; it may outlive the task handle); on failure `*out` is set to NULL. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (bad options or
/// non-UTF-8 `param`), `SHMLINE_NOT_FOUND` (no such writing parameter: the message lists the
/// task's writing parameters), `SHMLINE_WRONG_STATE` (already taken), `SHMLINE_PANIC`.
///
/// # Safety
/// `task` is NULL or a task handle not used by another thread during the call; `param` is NULL
/// or a NUL-terminated string; `opts` is NULL or initialised by
/// `shmline_writer_options_default()`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_writer(
    task: *mut shmline_task,
    param: *const c_char,
    opts: *const shmline_writer_options,
    out: *mut *mut shmline_writer,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `task` is NULL or a handle used only by this thread.
        let t = unsafe { handle_mut(task, "task") }?;
        // SAFETY: the caller guarantees `param` is NULL or NUL-terminated.
        let param = unsafe { cstr(param, "param") }?;
        // SAFETY: the caller guarantees `opts` is NULL or an initialised options struct.
        let options = writer_options(&unsafe { read_options(opts) }?)?;
        let writer = t.task.writer_with(param, &options)?;
        out.put(shmline_writer::boxed(writer));
        Ok(())
    })
}

/// Takes the event bound to event parameter `param`. Each event can be taken once.
///
/// On success `*out` receives the event, which the caller owns and frees with
/// `shmline_event_close()` (it may outlive the task handle); on failure `*out` is set to NULL.
/// Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 `param`),
/// `SHMLINE_NOT_FOUND` (no such event parameter: the message lists the task's event
/// parameters), `SHMLINE_WRONG_STATE` (already taken), `SHMLINE_PANIC`.
///
/// # Safety
/// `task` is NULL or a task handle not used by another thread during the call; `param` is NULL
/// or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_event(
    task: *mut shmline_task,
    param: *const c_char,
    out: *mut *mut shmline_event,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `task` is NULL or a handle used only by this thread.
        let t = unsafe { handle_mut(task, "task") }?;
        // SAFETY: the caller guarantees `param` is NULL or NUL-terminated.
        let param = unsafe { cstr(param, "param") }?;
        let event = t.task.event(param)?;
        out.put(shmline_event::boxed(event));
        Ok(())
    })
}

/// For a task that stopped because one of its inputs reached its end of stream
/// (`SHMLINE_END_OF_STREAM`): checks that every input has ended too, so that the task may exit
/// with status 0. A task with several inputs that stops at the end of one of them and exits 0
/// without this check ends "normally" whatever its other inputs still hold: the runner sees only
/// exit statuses.
///
/// `readers[i]` is the task's open reader of reading parameter `params[i]`, for `i < count`.
/// An input has ended when its stream's writer has ended (closed, or died) and the reader has read
/// every frame published. A lossy reader counts as ended (it never promised every frame), and so
/// does a member of a reader group while other members are attached (they read the rest); the last
/// member is judged by the frames its group has not handed out yet.
///
/// Waits, according to `timeout_ns` (see `SHMLINE_TIMEOUT_INFINITE`; 0: not at all), for inputs
/// that have nothing unread but whose writer has not ended yet (it may be closing its stream right
/// now); returns at once when an input has frames unread. Sleeps in short slices while it waits.
///
/// A NULL `pipeline` (or `task`) takes the name from `SHMLINE_PIPELINE` (or `SHMLINE_TASK`), as
/// `shmline_task_join()` does; the task handle itself may have been closed already.
///
/// Returns `SHMLINE_OK` (every input ended: exit 0), `SHMLINE_WRONG_STATE` (the task must fail:
/// exit non-zero; the message, `shmline_last_error_message()`, names each input that still had
/// frames and how many, e.g. `task "merge" ended on end of stream of "a" while "b" still had 190
/// frames unread`, and the same sentence is left in the pipeline's registry so that the run's
/// report gives it after the task's exit status), `SHMLINE_NULL_POINTER` (`readers` or `params`
/// NULL with `count` > 0, or a NULL element), `SHMLINE_INVALID_ARGUMENT` (a NULL name whose
/// environment variable is not set, non-UTF-8 strings), `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` and `task` are NULL or NUL-terminated strings; `readers` and `params` are NULL or
/// point to `count` pointers, each NULL or (readers) an open reader handle not used by another
/// thread during the call, (params) a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_check_inputs(
    pipeline: *const c_char,
    task: *const c_char,
    readers: *const *const shmline_reader,
    params: *const *const c_char,
    count: usize,
    timeout_ns: i64,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or NUL-terminated.
        let pipeline = unsafe { name_or_env(pipeline, "pipeline", ENV_PIPELINE) }?;
        // SAFETY: the caller guarantees `task` is NULL or NUL-terminated.
        let task = unsafe { name_or_env(task, "task", ENV_TASK) }?;
        // SAFETY: the caller guarantees `count` pointers at `readers` when it is not NULL.
        let readers = unsafe { array(readers, count, "readers") }?;
        // SAFETY: as for `readers`.
        let params = unsafe { array(params, count, "params") }?;
        let mut inputs = Vec::with_capacity(count);
        for (&reader, &param) in readers.iter().zip(params) {
            // SAFETY: the caller guarantees each element is NULL or an open reader handle that no
            // other thread uses during the call.
            let reader = &unsafe { handle(reader, "readers[i]") }?.reader;
            // SAFETY: the caller guarantees each element is NULL or NUL-terminated.
            let param = unsafe { cstr(param, "params[i]") }?;
            inputs.push((param, reader));
        }
        check_inputs_ended(&pipeline, &task, &inputs, Deadline::from_nanos(timeout_ns))?;
        Ok(())
    })
}

/// `*out` receives whether the runner has asked the pipeline's tasks to stop (after a failure of
/// another task, a signal to the runner, or a stop request). A task that does not spend its time
/// blocked on a stream should check it regularly and exit cleanly (status 0) once it is true.
/// The runner also sends SIGTERM, and SIGKILL after the grace period. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `task` is NULL or an open task handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_stop_requested(
    task: *const shmline_task,
    out: *mut bool,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `task` is NULL or an open handle.
        let t = unsafe { handle(task, "task") }?;
        // SAFETY: the caller guarantees `out` is NULL or writable.
        unsafe { Out::new(out, "out") }?.put(t.task.stop_requested());
        Ok(())
    })
}

/// Waits until the runner asks the pipeline's tasks to stop, according to `timeout_ns` (see
/// `SHMLINE_TIMEOUT_INFINITE`). Sleeps on a futex while waiting (no CPU).
///
/// Returns `SHMLINE_OK` (stop requested), `SHMLINE_EMPTY` (`timeout_ns` 0 and no stop requested),
/// `SHMLINE_TIMEOUT`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `task` is NULL or an open task handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_wait_stop(task: *const shmline_task, timeout_ns: i64) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `task` is NULL or an open handle.
        let stop = unsafe { handle(task, "task") }?.task.stop_event();
        if timeout_ns == 0 {
            return Ok(stop.try_wait()?);
        }
        Ok(stop.wait_until(Deadline::from_nanos(timeout_ns))?)
    })
}

/// The task's name, NUL-terminated; NULL if `task` is NULL.
///
/// The string belongs to the handle: do not free it; it is valid until `shmline_task_close()`.
///
/// # Safety
/// `task` is NULL or an open task handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_name(task: *const shmline_task) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: the caller guarantees `task` is NULL or an open handle.
        unsafe { handle(task, "task") }.map_or(std::ptr::null(), |t| t.name.as_ptr())
    })
}

/// The name of the task's pipeline, NUL-terminated; NULL if `task` is NULL. Its streams are the
/// stream segments `PIPELINE.STREAM`, its events `PIPELINE.EVENT`.
///
/// The string belongs to the handle: do not free it; it is valid until `shmline_task_close()`.
///
/// # Safety
/// `task` is NULL or an open task handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_task_pipeline_name(task: *const shmline_task) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: the caller guarantees `task` is NULL or an open handle.
        unsafe { handle(task, "task") }.map_or(std::ptr::null(), |t| t.pipeline.as_ptr())
    })
}
