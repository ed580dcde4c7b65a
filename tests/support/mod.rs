//! Helpers shared by the multi-process test files: child processes running one role of the same
//! test binary, and the CPU time of a thread.

#![allow(dead_code)] // each test file uses only some of the helpers

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A child process running one role: this test binary re-run as `--exact <role> --ignored`,
/// with the role's job in an environment variable. Killed and reaped if the test fails before
/// finishing it.
pub struct RoleProcess {
    role: String,
    child: Option<Child>,
}

impl RoleProcess {
    /// Starts this test binary running only the ignored test `role`, with `env=job` set.
    pub fn spawn(role: &str, env: &str, job: &str) -> RoleProcess {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                role,
                "--nocapture",
                "--ignored",
                "--test-threads=1",
            ])
            .env(env, job)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        RoleProcess {
            role: role.to_owned(),
            child: Some(child),
        }
    }

    /// Waits for the child and fails unless it ran its role (exactly one test) successfully, so
    /// a misspelt role cannot pass by running nothing.
    pub fn finish(mut self) {
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed;"),
            "child {} failed ({}):\n{stdout}\n{}",
            self.role,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        // `Child::kill` sends SIGKILL on Unix.
        child.kill().unwrap();
        child.wait().unwrap()
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time (user + system) the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value (plain integers and timevals).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid out-pointer for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let as_duration = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    as_duration(usage.ru_utime) + as_duration(usage.ru_stime)
}
