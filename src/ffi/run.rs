//! `shmline_run`: a pipeline started by `shmline_pipeline_start()`: waiting for its end,
//! stopping it, and what it did.

use super::stream::shmline_stream_stats;
use super::{ffi_call, guard, handle, invalid, BoxedHandle, Failure, FfiResult, Out};
use crate::error::Error;
use crate::pipeline::{Outcome, PipelineRun, RunReport, TaskExit};
use crate::wait::Deadline;
use std::ffi::{c_char, CString};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// `shmline_run_report.outcome`: every task exited with status 0.
pub const SHMLINE_RUN_FINISHED: u32 = 0;
/// `shmline_run_report.outcome`: a task failed (non-zero exit status or a signal), could not
/// start, or never joined.
pub const SHMLINE_RUN_FAILED: u32 = 1;
/// `shmline_run_report.outcome`: stopped on request (`shmline_run_stop()`, or a signal to the
/// process running `shmline_pipeline_run()`).
pub const SHMLINE_RUN_STOPPED: u32 = 2;

/// `shmline_task_report.exit_kind`: the task's process never started, or was not reaped.
pub const SHMLINE_EXIT_NONE: u32 = 0;
/// `shmline_task_report.exit_kind`: the process exited; `exit_value` is its exit status.
pub const SHMLINE_EXIT_CODE: u32 = 1;
/// `shmline_task_report.exit_kind`: a signal killed the process; `exit_value` is its number.
pub const SHMLINE_EXIT_SIGNAL: u32 = 2;

/// How long one wait holds the run's lock, so that `shmline_run_stop()` from another thread is
/// never held up longer.
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// A running (or ended) pipeline, made by `shmline_pipeline_start()`, freed by
/// `shmline_run_close()`.
///
/// Thread-safe: every function but `shmline_run_close()` may be called from any number of
/// threads at once (for example `shmline_run_stop()` while another thread waits).
pub struct shmline_run {
    run: Mutex<PipelineRun>,
    /// The streams' names within the pipeline, NUL-terminated, for `shmline_run_stream_name`.
    stream_names: Vec<CString>,
}

impl BoxedHandle for shmline_run {}

impl shmline_run {
    /// A new handle owning `run`, for the caller to free with `shmline_run_close`.
    pub(crate) fn boxed(run: PipelineRun) -> *mut shmline_run {
        let stream_names = run
            .streams()
            .iter()
            .map(|(name, _)| CString::new(name.as_str()).expect("validated names have no NUL"))
            .collect();
        shmline_run {
            run: Mutex::new(run),
            stream_names,
        }
        .into_raw()
    }

    fn lock(&self) -> MutexGuard<'_, PipelineRun> {
        // A panic while the lock was held (reported as SHMLINE_PANIC) leaves the run usable: its
        // state lives in the runner thread, not behind the lock.
        self.run
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How a pipeline run ended, filled by `shmline_pipeline_run()` and `shmline_run_wait()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmline_run_report {
    /// `SHMLINE_RUN_FINISHED`, `SHMLINE_RUN_FAILED` or `SHMLINE_RUN_STOPPED`.
    pub outcome: u32,
    /// With `SHMLINE_RUN_STOPPED`: the signal that asked for the stop, or 0 for
    /// `shmline_run_stop()`. Otherwise 0.
    pub signal: i32,
    /// Wall time from the start to the end, in nanoseconds.
    pub duration_ns: u64,
    /// Wall time from the moment every task had joined to the end, in nanoseconds (0 if that
    /// never happened).
    pub running_ns: u64,
    /// Number of streams (`shmline_run_stream_stats()` takes an index below it).
    pub stream_count: u32,
    /// Number of tasks (`shmline_run_task_report()` takes an index below it).
    pub task_count: u32,
    /// Frames written, all streams together.
    pub frames: u64,
    /// Payload bytes written, all streams together.
    pub bytes: u64,
}

impl From<&RunReport> for shmline_run_report {
    fn from(r: &RunReport) -> shmline_run_report {
        let (outcome, signal) = match r.outcome {
            Outcome::Finished => (SHMLINE_RUN_FINISHED, 0),
            Outcome::Failed(_) => (SHMLINE_RUN_FAILED, 0),
            Outcome::Stopped { signal } => (SHMLINE_RUN_STOPPED, signal.unwrap_or(0)),
        };
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        shmline_run_report {
            outcome,
            signal,
            duration_ns: nanos(r.duration),
            running_ns: nanos(r.running),
            stream_count: r.streams.len() as u32,
            task_count: r.tasks.len() as u32,
            frames: r.streams.iter().map(|s| s.frames).sum(),
            bytes: r.streams.iter().map(|s| s.bytes).sum(),
        }
    }
}

/// How one task of an ended run ended, filled by `shmline_run_task_report()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmline_task_report {
    /// Process id the runner started it as; 0 if it never started.
    pub pid: u32,
    /// `SHMLINE_EXIT_NONE`, `SHMLINE_EXIT_CODE` or `SHMLINE_EXIT_SIGNAL`.
    pub exit_kind: u32,
    /// The exit status (`SHMLINE_EXIT_CODE`) or signal number (`SHMLINE_EXIT_SIGNAL`); else 0.
    pub exit_value: i32,
    /// True if the runner asked it to stop (after another task failed, or on request), so that
    /// its exit is not a failure of its own.
    pub stopped: bool,
    /// CPU time (user + system) of the process and its waited-for children, in nanoseconds.
    pub cpu_ns: u64,
}

/// Waits for the run to end, according to `timeout_ns` (see `SHMLINE_TIMEOUT_INFINITE`). Once it
/// has ended (every task reaped and every segment removed), fills `*report` if `report` is not
/// NULL, and returns the same status every time it is called again.
///
/// Returns `SHMLINE_OK` (every task exited with status 0, or the run was stopped by
/// `shmline_run_stop()`); `SHMLINE_PIPELINE_FAILED` (a task failed, could not start or never
/// joined: the message names the task and its exit status or signal); `SHMLINE_TIMEOUT` (still
/// running; also when `timeout_ns` is 0: nothing is written to `*report`);
/// `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `run` is NULL or an open run handle; `report` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_run_wait(
    run: *const shmline_run,
    timeout_ns: i64,
    report: *mut shmline_run_report,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `run` is NULL or an open handle.
        let r = unsafe { handle(run, "run") }?;
        let deadline = Deadline::from_nanos(timeout_ns);
        loop {
            let slice = deadline.remaining(WAIT_SLICE).unwrap_or(Duration::ZERO);
            let mut guard = r.lock();
            if guard.wait_timeout(slice) {
                let ended = guard.report().expect("wait_timeout returned true").clone();
                if !report.is_null() {
                    // SAFETY: non-NULL, and the caller guarantees it is writable.
                    unsafe { Out::new(report, "report") }?.put((&ended).into());
                }
                return ended.into_result().map(|_| ()).map_err(Failure::from);
            }
            drop(guard);
            if deadline.remaining(WAIT_SLICE).is_none() {
                return Err(Error::Timeout.into());
            }
        }
    })
}

/// Asks the pipeline to stop: the stop event is set, then every task gets SIGTERM, then SIGKILL
/// after the grace period. Returns at once; `shmline_run_wait()` waits for the end (its outcome
/// is then `SHMLINE_RUN_STOPPED`, unless the run had already ended or failed). Calling it again,
/// or after the end, does nothing.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_PANIC`.
///
/// # Safety
/// `run` is NULL or an open run handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_run_stop(run: *const shmline_run) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `run` is NULL or an open handle.
        unsafe { handle(run, "run") }?.lock().stop();
        Ok(())
    })
}

/// Closes a run handle. If the run is still going, it is stopped first (as by
/// `shmline_run_stop()`), and this blocks until every task has been reaped and every segment
/// removed (at most the grace period plus the time the tasks take to die). NULL is allowed and
/// does nothing.
///
/// # Safety
/// `run` is NULL or a handle from `shmline_pipeline_start()` that no thread uses during or after
/// this call.
#[no_mangle]
pub unsafe extern "C" fn shmline_run_close(run: *mut shmline_run) {
    // SAFETY: the caller passes NULL or a handle it owns and never uses again (this function's
    // contract), which is `free_box`'s.
    unsafe { shmline_run::free_box(run) }
}

/// The index of a stream or task, or `INVALID_ARGUMENT` if it is not below `count`.
fn index_arg(index: usize, count: usize, what: &str) -> FfiResult<usize> {
    if index < count {
        Ok(index)
    } else {
        Err(invalid(format!(
            "index {index} is out of range: the pipeline has {count} {what}"
        )))
    }
}

/// The name (within the pipeline) of stream number `index`, in declaration order; NULL if `run`
/// is NULL or `index` is out of range. The stream segment is `PIPELINE.NAME`.
///
/// The string belongs to the handle: do not free it; it is valid until `shmline_run_close()`.
///
/// # Safety
/// `run` is NULL or an open run handle.
#[no_mangle]
pub unsafe extern "C" fn shmline_run_stream_name(
    run: *const shmline_run,
    index: usize,
) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: the caller guarantees `run` is NULL or an open handle.
        unsafe { handle(run, "run") }
            .ok()
            .and_then(|r| r.stream_names.get(index))
            .map_or(std::ptr::null(), |name| name.as_ptr())
    })
}

/// Takes a snapshot of the shared counters of stream number `index` (declaration order) into
/// `*out`, as `shmline_stream_get_stats()` does: while the run goes (frames and bytes written,
/// writer waits, fill) and after it ended (the final counts). Never blocks for long.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (`index` out of
/// range), `SHMLINE_PANIC`.
///
/// # Safety
/// `run` is NULL or an open run handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_run_stream_stats(
    run: *const shmline_run,
    index: usize,
    out: *mut shmline_stream_stats,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `run` is NULL or an open handle.
        let r = unsafe { handle(run, "run") }?;
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        let guard = r.lock();
        let streams = guard.streams();
        let (_, stream) = &streams[index_arg(index, streams.len(), "streams")?];
        out.put((&stream.stats()).into());
        Ok(())
    })
}

/// Fills `*out` with how task number `index` (declaration order) ended, once the run has ended.
///
/// Returns `SHMLINE_OK`, `SHMLINE_NULL_POINTER`, `SHMLINE_INVALID_ARGUMENT` (`index` out of
/// range), `SHMLINE_WRONG_STATE` (the run has not ended: `shmline_run_wait()` first),
/// `SHMLINE_PANIC`.
///
/// # Safety
/// `run` is NULL or an open run handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn shmline_run_task_report(
    run: *const shmline_run,
    index: usize,
    out: *mut shmline_task_report,
) -> i32 {
    ffi_call(|| {
        // SAFETY: the caller guarantees `run` is NULL or an open handle.
        let r = unsafe { handle(run, "run") }?;
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let mut out = unsafe { Out::new(out, "out") }?;
        let guard = r.lock();
        let report = guard.report().ok_or_else(|| {
            Failure::from(Error::WrongState(
                "the run has not ended yet: wait for it with shmline_run_wait() first".into(),
            ))
        })?;
        let task = &report.tasks[index_arg(index, report.tasks.len(), "tasks")?];
        let (exit_kind, exit_value) = match task.exit {
            None => (SHMLINE_EXIT_NONE, 0),
            Some(TaskExit::Code(code)) => (SHMLINE_EXIT_CODE, code),
            Some(TaskExit::Signal(sig)) => (SHMLINE_EXIT_SIGNAL, sig),
        };
        out.put(shmline_task_report {
            pid: task.pid.unwrap_or(0),
            exit_kind,
            exit_value,
            stopped: task.stopped,
            cpu_ns: u64::try_from(task.cpu.as_nanos()).unwrap_or(u64::MAX),
        });
        Ok(())
    })
}
