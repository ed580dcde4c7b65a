//! Task processes: starting them in their own process group, reaping them with their CPU time,
//! and signalling them (with everything they started).

use super::spec::TaskSpec;
use super::status::TaskExit;
use super::{ENV_PIPELINE, ENV_TASK};
use crate::liveness::{start_time_of, ProcessId};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A started task process, not yet reaped.
#[derive(Debug)]
pub(crate) struct Child {
    /// The process; also its process group id.
    pub process: ProcessId,
}

/// Starts `task` of pipeline `pipeline`. The process gets its own process group (so a terminal's
/// Ctrl-C reaches only the runner, which then stops the tasks in order), is killed if the runner
/// dies, reads nothing from stdin, and shares the runner's stdout and stderr.
///
/// The error message names the task and the command.
pub(crate) fn spawn(task: &TaskSpec, pipeline: &str) -> Result<Child, String> {
    let program = resolve(task);
    let mut command = Command::new(&program);
    command
        .args(&task.args)
        .envs(task.env.iter().map(|(k, v)| (k, v)))
        .env(ENV_PIPELINE, pipeline)
        .env(ENV_TASK, &task.name)
        .stdin(Stdio::null());
    if let Some(cwd) = &task.cwd {
        command.current_dir(cwd);
    }
    let fail = |why: String| {
        format!(
            "task {:?} could not start command {:?}: {why}",
            task.name,
            program.display().to_string()
        )
    };
    if let Some(path) = &task.stdout {
        command.stdout(log_file(task, path).map_err(fail)?);
    }
    if let Some(path) = &task.stderr {
        command.stderr(log_file(task, path).map_err(fail)?);
    }
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    let runner = unsafe { libc::getpid() };
    // Runs in the child between fork and exec: async-signal-safe system calls only, no allocation.
    let in_child = move || {
        // SAFETY: setpgid has no memory preconditions; (0, 0) names the calling process.
        if unsafe { libc::setpgid(0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Die with the runner (strictly: with the runner thread that started us, which lives
        // until every task has been reaped).
        // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The runner may have died before prctl took effect.
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != runner {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: `in_child` only makes async-signal-safe system calls (setpgid, prctl, getppid)
    // and allocates nothing, as code between fork and exec must.
    unsafe { command.pre_exec(in_child) };
    match command.spawn() {
        Ok(child) => {
            let pid = child.id();
            // The child is ours and unreaped, so its /proc entry exists (if only as a zombie).
            let start_time = start_time_of(pid).unwrap_or(0);
            Ok(Child {
                process: ProcessId { pid, start_time },
            })
        }
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "command not found ({e}){}",
                    if program.as_os_str().to_string_lossy().contains('/') {
                        String::new()
                    } else {
                        " in PATH".to_string()
                    }
                ),
                std::io::ErrorKind::PermissionDenied => format!("not executable ({e})"),
                _ => e.to_string(),
            };
            Err(fail(why))
        }
    }
}

/// Opens (creating, appending) the file a task's output goes to; relative to the task's `cwd`.
fn log_file(task: &TaskSpec, path: &std::path::Path) -> Result<std::fs::File, String> {
    let path = match &task.cwd {
        Some(cwd) => cwd.join(path),
        None => path.to_path_buf(),
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot open {} for its output: {e}", path.display()))
}

/// The program to execute: a relative path with a `/` is taken from the task's working directory
/// (so it means the same whatever the runner's own directory is); a bare name is looked up in
/// `PATH`.
fn resolve(task: &TaskSpec) -> PathBuf {
    let program = PathBuf::from(&task.command);
    match &task.cwd {
        Some(cwd) if program.is_relative() && task.command.contains('/') => cwd.join(program),
        _ => program,
    }
}

impl Child {
    /// How the process ended, if it has exited, *without* reaping it: until it is reaped it still
    /// counts as alive to shmline's liveness checks, so the runner can first close the streams of
    /// a task that succeeded (its readers then see end of stream, never a dead writer).
    pub(crate) fn exited(&self) -> Option<TaskExit> {
        // SAFETY: an all-zero siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; the pid is our own child, not reaped yet, so it
        // cannot have been reused; WNOWAIT leaves it waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.process.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (or left it zeroed: si_pid 0 means "not exited yet").
        let pid = unsafe { info.si_pid() };
        // SAFETY: as above; si_status is valid for the CLD_* codes waitid reports.
        let status = unsafe { info.si_status() };
        let code = info.si_code;
        if rc != 0 {
            // ECHILD: somebody else reaped it; `try_wait` reports that.
            return Some(TaskExit::Code(-1));
        }
        if pid == 0 {
            return None;
        }
        Some(if code == libc::CLD_EXITED {
            TaskExit::Code(status)
        } else {
            TaskExit::Signal(status)
        })
    }

    /// Reaps the process if it has exited: how it ended, and the CPU time it and its reaped
    /// children used.
    pub(crate) fn try_wait(&self) -> Option<(TaskExit, Duration)> {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for the out-parameter.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid out-pointers; the pid is our own child, not
        // reaped yet, so it cannot have been reused.
        let rc = unsafe {
            libc::wait4(
                self.process.pid as libc::pid_t,
                &mut status,
                libc::WNOHANG,
                &mut usage,
            )
        };
        if rc == 0 {
            return None;
        }
        if rc < 0 {
            // ECHILD: somebody else reaped it (e.g. a SIGCHLD handler set to SIG_IGN in this
            // process). It is gone, but how it ended is lost.
            return Some((TaskExit::Code(-1), Duration::ZERO));
        }
        let exit = if libc::WIFSIGNALED(status) {
            TaskExit::Signal(libc::WTERMSIG(status))
        } else {
            TaskExit::Code(libc::WEXITSTATUS(status))
        };
        let cpu = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Some((exit, cpu(usage.ru_utime) + cpu(usage.ru_stime)))
    }

    /// Sends `signal` to the task's process group (the task and whatever it started that stayed
    /// in its group). Must only be called before the process is reaped.
    pub(crate) fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions. The process group is ours: the child
        // made itself its leader, and it is not reaped, so the id cannot have been reused.
        unsafe { libc::kill(-(self.process.pid as libc::pid_t), signal) };
    }
}
