//! `shmline_pipeline`: declaring a pipeline (streams, events, tasks and their bindings) in code or
//! from a TOML manifest, validating it, saving it, and running it.

use super::run::{shmline_run, shmline_run_report};
use super::stream::{schema_arg, shmline_stream_options};
use super::{
    array, cstr, ffi_call, guard, handle, handle_mut, invalid, optional_str, read_options,
    BoxedHandle, FfiResult,
};
use super::{Failure, Out};
use crate::error::Error;
use crate::event::EventMode;
use crate::pipeline::{Binding, BindingKind, EventSpec, Pipeline, StreamSpec, TaskSpec};
use crate::ring::{Backpressure, StreamOptions};
use std::ffi::{c_char, CString};
use std::time::Duration;

/// `shmline_pipeline_bind()` kind: the parameter is a reader of a stream.
pub const SHMLINE_BINDING_READ: u32 = 1;
/// `shmline_pipeline_bind()` kind: the parameter is a writer of a stream.
pub const SHMLINE_BINDING_WRITE: u32 = 2;
/// `shmline_pipeline_bind()` kind: the parameter is an event.
pub const SHMLINE_BINDING_EVENT: u32 = 3;

/// The declaration of a pipeline: a named set of streams (belts), events (switches) and tasks
/// (machines: programs started as processes), and which parameter of each task is bound to which
/// stream or event. Made by `shmline_pipeline_new()`, `shmline_pipeline_load()` or
/// `shmline_pipeline_parse()`, freed by `shmline_pipeline_close()`.
///
/// The `shmline_pipeline_add_*`, `shmline_pipeline_task_set_*`, `shmline_pipeline_bind()` and
/// `shmline_pipeline_set_*` calls only record the declaration; they check their own arguments but
/// not how the entries fit together (names that clash, streams without a writer, bindings to
/// undeclared streams...). `shmline_pipeline_validate()` checks that and reports every problem at
/// once; `shmline_pipeline_run()`, `shmline_pipeline_start()` and `shmline_pipeline_save()`
/// validate first.
///
/// Not thread-safe: use a declaration from one thread at a time.
pub struct shmline_pipeline {
    pipeline: Pipeline,
    /// The pipeline's name, NUL-terminated, for `shmline_pipeline_name`.
    name: CString,
}

impl BoxedHandle for shmline_pipeline {}

impl shmline_pipeline {
    fn boxed(pipeline: Pipeline) -> FfiResult<*mut shmline_pipeline> {
        let name = CString::new(pipeline.name.as_str()).map_err(|_| {
            invalid(format!(
                "pipeline name {:?} contains a NUL byte",
                pipeline.name
            ))
        })?;
        Ok(shmline_pipeline { pipeline, name }.into_raw())
    }

    /// The task declared last with name `name`, or `NOT_FOUND` listing the declared tasks.
    fn task(&mut self, name: &str) -> FfiResult<&mut TaskSpec> {
        let tasks = &mut self.pipeline.tasks;
        match tasks.iter().rposition(|t| t.name == name) {
            Some(i) => Ok(&mut tasks[i]),
            None => {
                let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
                Err(Error::NotFound(format!(
                    "pipeline {:?} has no task {name:?} (declare it with \
                     shmline_pipeline_add_task() first); its tasks are: {}",
                    self.pipeline.name,
                    if names.is_empty() {
                        "(none)".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
                .into())
            }
        }
    }
}

/// A duration given in nanoseconds, which must not be negative.
fn duration_arg(ns: i64, what: &str) -> FfiResult<Duration> {
    u64::try_from(ns)
        .map(Duration::from_nanos)
        .map_err(|_| invalid(format!("{what} is {ns} ns: it must be zero or more")))
}

/// Creates an empty pipeline declaration named `name`.
///
/// The name becomes the prefix of every segment the pipeline creates (registry
/// `shmline.pipeline.NAME`, streams and events `NAME.MEMBER`); it is checked by
/// `shmline_pipeline_validate()`. On success `*out` receives a new handle, which the caller owns
/// and frees with `shmline_pipeline_close()`; on failure `*out` is set to NULL.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 name),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_new(
    name: *const c_char,
    out: *mut *mut shmline_pipeline,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        out.put(shmline_pipeline::boxed(Pipeline::new(name))?);
        Ok(())
    })
}

/// Reads a pipeline declaration from the TOML manifest file at `path` (the format `shmline run`
/// reads, described in `docs/C_API.md`).
///
/// Relative paths in the manifest (`cwd`, `stdout`, `stderr`, commands with a `/`) are taken from
/// the manifest's directory, which is also every task's default working directory. The
/// declaration is not validated yet. On success `*out` receives a new handle, which the caller
/// owns and frees with `shmline_pipeline_close()`; on failure `*out` is set to NULL.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (malformed manifest:
/// the message has the line and column; non-UTF-8 path), `SHMLINE_NOT_FOUND` (no such file),
/// `SHMLINE_PERMISSION_DENIED`, `SHMLINE_OS_ERROR`, `SHMLINE_PANIC`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_load(
    path: *const c_char,
    out: *mut *mut shmline_pipeline,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `path` is NULL or NUL-terminated.
        let path = unsafe { cstr(path, "path") }?;
        out.put(shmline_pipeline::boxed(Pipeline::load(path)?)?);
        Ok(())
    })
}

/// Reads a pipeline declaration from TOML manifest text, as `shmline_pipeline_load()` does from a
/// file, except that relative paths stay relative to the working directory of the process that
/// runs it.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_pipeline_close()`; on failure `*out` is set to NULL.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (malformed manifest:
/// the message has the line and column; non-UTF-8 text), `SHMLINE_PANIC`.
///
/// # Safety
/// `toml` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_parse(
    toml: *const c_char,
    out: *mut *mut shmline_pipeline,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `toml` is NULL or NUL-terminated.
        let text = unsafe { cstr(toml, "toml") }?;
        out.put(shmline_pipeline::boxed(Pipeline::from_toml_str(text)?)?);
        Ok(())
    })
}

/// Frees a pipeline declaration. NULL is allowed and does nothing. A run started from it is not
/// affected (it has its own copy). Never blocks.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle that is not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_close(pipeline: *mut shmline_pipeline) {
    // SAFETY: the caller passes NULL or a handle it owns and never uses again (this function's
    // contract), which is `free_box`'s.
    unsafe { shmline_pipeline::free_box(pipeline) }
}

/// The pipeline's name, NUL-terminated; NULL if `pipeline` is NULL.
///
/// The string belongs to the handle: do not free it; it is valid until
/// `shmline_pipeline_close()`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_name(pipeline: *const shmline_pipeline) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: the caller guarantees `pipeline` is NULL or a live handle.
        unsafe { handle(pipeline, "pipeline") }.map_or(std::ptr::null(), |p| p.name.as_ptr())
    })
}

/// Declares stream `name`. The runner creates it as the stream segment `PIPELINE.NAME`.
///
/// `opts` may be NULL for the defaults, but a stream needs a `max_frame_size` or a schema. From
/// `shmline_stream_options` it takes `capacity`, `max_frame_size`, `checksum`, the schema
/// (`dtype`, `ndim`, `shape`, copied during the call), `max_readers`, where 0 means enough
/// for every reading binding (plain readers and group members) plus 4 monitors (at least 8), and
/// `max_writers`, where 0 and 1 (the default) mean one writer per writing task: a stream that
/// several tasks write (several `SHMLINE_BINDING_WRITE` bindings) is created as a multi-writer
/// stream, which ends when the last of them is done; a larger value is the limit (no fewer than
/// the writing tasks, or `shmline_pipeline_validate()` refuses it), and `backpressure` (what the
/// writers do when the ring is full). `permissions` must stay 0600 (a
/// pipeline's segments are always owner-only: its tasks run as the runner's user), and
/// `unlink_on_close` is ignored (the runner removes every segment at the end).
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (bad `struct_size`,
/// dtype, shape or backpressure, permissions other than 0600, non-UTF-8 name), `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread; `name` is NULL or a
/// NUL-terminated string; `opts` is NULL or initialised by `shmline_stream_options_default()`
/// whose `dtype`/`shape` pointers are NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_add_stream(
    pipeline: *mut shmline_pipeline,
    name: *const c_char,
    opts: *const shmline_stream_options,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        // SAFETY: the caller guarantees `opts` is NULL or an initialised options struct.
        let o = unsafe { read_options(opts) }?;
        let owner_only = StreamOptions::default().permissions;
        if o.permissions != owner_only {
            return Err(invalid(format!(
                "opts->permissions is {:o}: a pipeline's segments are always created \
                 owner-only ({owner_only:o}), since its tasks run as the runner's user; \
                 leave the default",
                o.permissions
            )));
        }
        // SAFETY: read_options copied the caller's pointers, which the caller guarantees
        // valid.
        let schema = unsafe { schema_arg(o.dtype, o.ndim, o.shape, "opts->") }?;
        let backpressure = Backpressure::from_u32(o.backpressure).ok_or_else(|| {
            invalid(format!(
                "opts->backpressure is {}, not a policy: use SHMLINE_BACKPRESSURE_BLOCK (0), \
                 _FAIL (1), _DROP_NEWEST (2) or _DROP_OLDEST (3)",
                o.backpressure
            ))
        })?;
        p.pipeline.streams.push(StreamSpec {
            name: name.to_owned(),
            dtype: schema.as_ref().map(|s| s.dtype().to_owned()),
            shape: schema.as_ref().map_or(Vec::new(), |s| s.shape().to_vec()),
            max_frame_size: o.max_frame_size,
            capacity: o.capacity,
            max_readers: o.max_readers,
            // 0 and 1 (the default): one writer per writing task.
            max_writers: if o.max_writers <= 1 { 0 } else { o.max_writers },
            checksum: o.checksum != 0,
            backpressure,
        });
        Ok(())
    })
}

/// Declares event `name`, in mode `SHMLINE_EVENT_FLAG` (a switch) or `SHMLINE_EVENT_COUNTING`
/// (a semaphore). The runner creates it as the event segment `PIPELINE.NAME`.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (unknown mode,
/// non-UTF-8 name), `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread; `name` is NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_add_event(
    pipeline: *mut shmline_pipeline,
    name: *const c_char,
    mode: u32,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        let mode = EventMode::from_u32(mode).ok_or_else(|| {
            invalid(format!(
                "mode is {mode}, not an event mode: use SHMLINE_EVENT_FLAG (0) or \
                 SHMLINE_EVENT_COUNTING (1)"
            ))
        })?;
        p.pipeline.events.push(EventSpec {
            name: name.to_owned(),
            mode,
        });
        Ok(())
    })
}

/// Declares task `name`, which runs the program `argv[0]` with the arguments `argv[1 ..
/// argc]` (strings copied during the call). The program is a path (relative ones are taken from
/// the task's working directory) or a bare name looked up in `PATH`.
///
/// The runner starts it in its own process group, with its standard input closed, sharing the
/// runner's standard output and error (see `shmline_pipeline_task_set_output()`), with
/// `SHMLINE_PIPELINE` and `SHMLINE_TASK` in its environment so that it can join with
/// `shmline_task_join(NULL, NULL, &task)`. Bind its parameters with `shmline_pipeline_bind()`.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER` (also for a NULL `argv[i]`),
/// `SHMLINE_INVALID_ARGUMENT` (`argc` 0, non-UTF-8 strings), `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread; `name` is NULL or a
/// NUL-terminated string; `argv` is NULL or points to `argc` pointers, each NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_add_task(
    pipeline: *mut shmline_pipeline,
    name: *const c_char,
    argv: *const *const c_char,
    argc: usize,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        // SAFETY: the caller guarantees `name` is NULL or NUL-terminated.
        let name = unsafe { cstr(name, "name") }?;
        if argc == 0 {
            return Err(invalid(format!(
                "task {name:?}: argc is 0, but argv[0] must name the program to run"
            )));
        }
        // SAFETY: the caller guarantees `argv` is NULL or points to `argc` pointers.
        let argv = unsafe { array(argv, argc, "argv") }?;
        let mut words = Vec::with_capacity(argc);
        for &arg in argv {
            // SAFETY: the caller guarantees each pointer is NULL or NUL-terminated.
            words.push(unsafe { cstr(arg, "argv[i]") }?.to_owned());
        }
        let mut spec = TaskSpec::command(words.remove(0)).args(words);
        spec.name = name.to_owned();
        p.pipeline.tasks.push(spec);
        Ok(())
    })
}

/// Sets the working directory of task `task` (the last declared with that name): a path,
/// relative to the working directory of the process that runs the pipeline unless absolute.
/// Relative program paths and output files of the task are taken from it.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (non-UTF-8
/// strings), `SHMLINE_NOT_FOUND` (no such task: the message lists the declared tasks),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread; `task` and `dir` are NULL
/// or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_task_set_cwd(
    pipeline: *mut shmline_pipeline,
    task: *const c_char,
    dir: *const c_char,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        // SAFETY: the caller guarantees both strings are NULL or NUL-terminated.
        let (task, dir) = unsafe { (cstr(task, "task")?, cstr(dir, "dir")?) };
        p.task(task)?.cwd = Some(dir.into());
        Ok(())
    })
}

/// Adds environment variable `key` = `value` to task `task` (the last declared with that name),
/// on top of the runner's environment. Setting a key twice keeps the last value.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (empty key or one
/// with `=`, non-UTF-8 strings), `SHMLINE_NOT_FOUND` (no such task), `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread; `task`, `key` and `value`
/// are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_task_set_env(
    pipeline: *mut shmline_pipeline,
    task: *const c_char,
    key: *const c_char,
    value: *const c_char,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        // SAFETY: the caller guarantees the strings are NULL or NUL-terminated.
        let (task, key, value) = unsafe {
            (
                cstr(task, "task")?,
                cstr(key, "key")?,
                cstr(value, "value")?,
            )
        };
        if key.is_empty() || key.contains('=') {
            return Err(invalid(format!(
                "task {task:?}: {key:?} is not an environment variable name (it must be \
                 non-empty, without '=')"
            )));
        }
        let spec = p.task(task)?;
        spec.env.retain(|(k, _)| k != key);
        spec.env.push((key.to_owned(), value.to_owned()));
        Ok(())
    })
}

/// Sends the standard output and standard error of task `task` (the last declared with that
/// name) to files, appended to and created if needed (relative paths are taken from the task's
/// working directory; `"/dev/null"` silences it). NULL keeps the runner's own stream.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER` (`pipeline` or `task`),
/// `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 strings), `SHMLINE_NOT_FOUND` (no such task),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread; `task`, `stdout_path`
/// and `stderr_path` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_task_set_output(
    pipeline: *mut shmline_pipeline,
    task: *const c_char,
    stdout_path: *const c_char,
    stderr_path: *const c_char,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        // SAFETY: the caller guarantees the strings are NULL or NUL-terminated.
        let task = unsafe { cstr(task, "task") }?;
        let path = |ptr: *const c_char, what| -> FfiResult<_> {
            if ptr.is_null() {
                return Ok(None);
            }
            // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string.
            Ok(Some(unsafe { cstr(ptr, what) }?.into()))
        };
        let (stdout, stderr) = (
            path(stdout_path, "stdout_path")?,
            path(stderr_path, "stderr_path")?,
        );
        let spec = p.task(task)?;
        spec.stdout = stdout;
        spec.stderr = stderr;
        Ok(())
    })
}

/// Binds parameter `param` of task `task` (the last declared with that name) to stream or event
/// `target`: `kind` is `SHMLINE_BINDING_READ` (the task reads stream `target`: it takes the
/// reader with `shmline_task_reader(task, param, ...)`; `shmline_pipeline_bind_group()` binds a
/// member of a reader group), `SHMLINE_BINDING_WRITE` (it writes stream `target`:
/// `shmline_task_writer()`; several tasks may write one stream) or `SHMLINE_BINDING_EVENT` (it
/// uses event `target`: `shmline_task_event()`).
///
/// `target` need not be declared yet; `shmline_pipeline_validate()` checks that it is.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (unknown kind,
/// non-UTF-8 strings), `SHMLINE_NOT_FOUND` (no such task: the message lists the declared tasks),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread; `task`, `param` and
/// `target` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_bind(
    pipeline: *mut shmline_pipeline,
    task: *const c_char,
    kind: u32,
    param: *const c_char,
    target: *const c_char,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        // SAFETY: the caller guarantees the strings are NULL or NUL-terminated.
        let (task, param, target) = unsafe {
            (
                cstr(task, "task")?,
                cstr(param, "param")?,
                cstr(target, "target")?,
            )
        };
        let kind = BindingKind::from_u32(kind).ok_or_else(|| {
            invalid(format!(
                "kind is {kind}, not a binding kind: use SHMLINE_BINDING_READ (1), \
                 SHMLINE_BINDING_WRITE (2) or SHMLINE_BINDING_EVENT (3)"
            ))
        })?;
        let spec = p.task(task)?;
        let list = match kind {
            BindingKind::Read => &mut spec.reads,
            BindingKind::Write => &mut spec.writes,
            BindingKind::Event => &mut spec.events,
        };
        list.push(Binding::new(param, target));
        Ok(())
    })
}

/// Binds reading parameter `param` of task `task` (the last declared with that name) to stream
/// `stream` as a member of reader group `group`: the members of a group (readers of one stream
/// joining with the same group name, usually in several tasks) share its frames, each frame going
/// to exactly one of them, while plain readers and other groups still get every frame. The task
/// takes the reader with `shmline_task_reader(task, param, ...)` as any other; it joined the
/// group when the task joined. A NULL or empty `group` binds a plain reader, as
/// `shmline_pipeline_bind(pipeline, task, SHMLINE_BINDING_READ, param, stream)` does.
///
/// `stream` need not be declared yet, and the group name is checked (the rule of
/// `shmline_reader_options.group`: 1 to 63 bytes of letters, digits, `_`, `.` and `-`) by
/// `shmline_pipeline_validate()`, as is the rule that a task reads a stream through one parameter
/// at most. The runner creates each stream with room for every group that reads it (and at least
/// the default 4 groups).
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER` (`pipeline`, `task`, `param` or `stream`),
/// `SHMLINE_INVALID_ARGUMENT` (non-UTF-8 strings), `SHMLINE_NOT_FOUND` (no such task: the message
/// lists the declared tasks), `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread; `task`, `param`,
/// `stream` and `group` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_bind_group(
    pipeline: *mut shmline_pipeline,
    task: *const c_char,
    param: *const c_char,
    stream: *const c_char,
    group: *const c_char,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        // SAFETY: the caller guarantees the strings are NULL or NUL-terminated.
        let (task, param, stream, group) = unsafe {
            (
                cstr(task, "task")?,
                cstr(param, "param")?,
                cstr(stream, "stream")?,
                optional_str(group, "group")?,
            )
        };
        let binding = match group {
            Some(group) => Binding::group(param, stream, group),
            None => Binding::new(param, stream),
        };
        p.task(task)?.reads.push(binding);
        Ok(())
    })
}

/// Accepts (`allow` non-zero) or refuses (0, the default) streams that form a cycle between
/// tasks. A cycle of lossless streams deadlocks as soon as every ring on it is full, so only allow
/// one whose tasks never fill it.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_set_allow_cycles(
    pipeline: *mut shmline_pipeline,
    allow: u8,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        p.pipeline.allow_cycles = allow != 0;
        Ok(())
    })
}

/// Sets how long the runner waits for every task to join before it fails the run, naming the
/// tasks that did not (default 30 s; must be more than 0).
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (negative),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_set_join_timeout(
    pipeline: *mut shmline_pipeline,
    timeout_ns: i64,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        p.pipeline.join_timeout = duration_arg(timeout_ns, "timeout_ns")?;
        Ok(())
    })
}

/// Sets how long tasks asked to stop (stop event and SIGTERM) get before SIGKILL (default 2 s).
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (negative),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle used only by this thread.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_set_stop_grace(
    pipeline: *mut shmline_pipeline,
    grace_ns: i64,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a handle used only by this thread.
        let p = unsafe { handle_mut(pipeline, "pipeline") }?;
        p.pipeline.stop_grace = duration_arg(grace_ns, "grace_ns")?;
        Ok(())
    })
}

/// Checks the declaration, as a compiler would: names valid and unique; every stream has at least
/// one writing task (no more than its `max_writers`) and at least one reading task; every binding
/// names a declared stream or event; reader group names are valid; no task reads a stream through
/// two parameters; no cycle between tasks unless allowed. Never blocks.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (the message lists
/// every problem, one per line, each naming its entry as in a manifest:
/// `tasks.scale.reads.input: ...`), `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle that no thread changes during the call.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_validate(pipeline: *const shmline_pipeline) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a live handle not changed meanwhile.
        Ok(unsafe { handle(pipeline, "pipeline") }?
            .pipeline
            .validate()?)
    })
}

/// Writes the declaration to the TOML manifest file `path` (replacing it), after validating it;
/// `shmline_pipeline_load()` and `shmline run` read it back.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (invalid
/// declaration: every problem listed; non-UTF-8 path), `SHMLINE_NOT_FOUND` (the directory does
/// not exist), `SHMLINE_PERMISSION_DENIED`, `SHMLINE_NO_SPACE`, `SHMLINE_OS_ERROR`,
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle that no thread changes during the call; `path` is NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_save(
    pipeline: *const shmline_pipeline,
    path: *const c_char,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a live handle not changed meanwhile.
        let p = unsafe { handle(pipeline, "pipeline") }?;
        // SAFETY: the caller guarantees `path` is NULL or NUL-terminated.
        let path = unsafe { cstr(path, "path") }?;
        p.pipeline.validate()?;
        Ok(p.pipeline.save(path)?)
    })
}

/// Runs the pipeline to its end, blocking the calling thread: validates it, creates its streams
/// and events, starts every task, waits until all have joined and releases them together, then
/// waits for them. A task that exits with status 0 ends the streams it writes, so the tasks
/// downstream drain them and finish: a pipeline ends by itself.
///
/// The first failure (a task exiting non-zero or killed by a signal, a program that cannot start,
/// a task that does not join in time) stops the pipeline: the other tasks are asked to stop (the
/// stop event, SIGTERM, then SIGKILL after the grace period). While it runs, SIGINT (Ctrl-C) and
/// SIGTERM sent to this process stop the pipeline the same way instead of killing the process
/// (the previous signal actions are restored before it returns). Every segment is removed before
/// it returns, whatever happened.
///
/// `report` may be NULL. Once the pipeline has started, `*report` is filled however the run ended
/// (also with `SHMLINE_PIPELINE_FAILED`); when it could not start, `*report` is left untouched.
///
/// Returns `SHMLINE_OK` (every task exited with status 0); `SHMLINE_PIPELINE_FAILED` (a task
/// failed, could not start or never joined, or a signal stopped the run: the message names the
/// task and its exit status or signal); `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT`
/// (invalid declaration: every problem listed), `SHMLINE_ALREADY_EXISTS` (a live process runs a
/// pipeline of this name; segments left by a dead one are removed and reused),
/// `SHMLINE_NO_SPACE`, `SHMLINE_PERMISSION_DENIED`, `SHMLINE_OS_ERROR`, `SHMLINE_PANIC`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle that no thread changes during the call; `report` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_run(
    pipeline: *const shmline_pipeline,
    report: *mut shmline_run_report,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `pipeline` is NULL or a live handle not changed meanwhile.
        let p = unsafe { handle(pipeline, "pipeline") }?;
        let ended = p.pipeline.run_to_end()?;
        if !report.is_null() {
            // SAFETY: non-NULL, and the caller guarantees it is writable.
            unsafe { Out::new(report, "report") }?.put(shmline_run_report::from(&ended));
        }
        ended.into_result().map(|_| ()).map_err(Failure::from)
    })
}

/// Starts the pipeline and returns without waiting for it: validates it, creates its streams and
/// events, and starts its tasks from a thread of this process, which watches them as
/// `shmline_pipeline_run()` does. Follow it with `shmline_run_wait()`, `shmline_run_stop()`,
/// `shmline_run_stream_stats()`...
///
/// Unlike `shmline_pipeline_run()`, it does not catch SIGINT or SIGTERM: if they kill this
/// process, its tasks are killed too (they die with the runner), and the segments left behind
/// are removed by the next run of the same name or by `shmline clean`. Call `shmline_run_stop()`
/// to stop cleanly.
///
/// On success `*out` receives a new handle, which the caller owns and frees with
/// `shmline_run_close()` (which stops the run if it is still going); on failure `*out` is set to
/// NULL. The declaration may be changed or closed meanwhile: the run has its own copy.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (invalid
/// declaration: every problem listed), `SHMLINE_ALREADY_EXISTS` (a live process runs a pipeline
/// of this name), `SHMLINE_NO_SPACE`, `SHMLINE_PERMISSION_DENIED`, `SHMLINE_OS_ERROR`,
/// `SHMLINE_PANIC`. A task that fails, cannot start or never joins is reported by
/// `shmline_run_wait()`.
///
/// # Safety
/// `pipeline` is NULL or a declaration handle that no thread changes during the call; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_pipeline_start(
    pipeline: *const shmline_pipeline,
    out: *mut *mut shmline_run,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        out.put(std::ptr::null_mut());
        // SAFETY: the caller guarantees `pipeline` is NULL or a live handle not changed meanwhile.
        let p = unsafe { handle(pipeline, "pipeline") }?;
        out.put(shmline_run::boxed(p.pipeline.start()?));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::layout::{BINDING_EVENT, BINDING_READ, BINDING_WRITE};

    #[test]
    fn binding_kind_numbers_are_the_registry_numbers() {
        assert_eq!(SHMLINE_BINDING_READ, BINDING_READ);
        assert_eq!(SHMLINE_BINDING_WRITE, BINDING_WRITE);
        assert_eq!(SHMLINE_BINDING_EVENT, BINDING_EVENT);
    }
}
