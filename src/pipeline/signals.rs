//! Turning SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed) into a request to stop,
//! while a pipeline runs.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

/// The signals an [`InterruptGuard`] catches.
/// SIGHUP is among them because a closed terminal must not kill the runner before it has stopped
/// its tasks and removed the segments; a runner started under `nohup` (SIGHUP ignored) keeps
/// ignoring it.
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Number of the last signal caught, 0 if none since the first guard was installed.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// Live guards and the actions they replaced (restored when the last guard goes).
static INSTALLED: Mutex<(usize, Vec<libc::sigaction>)> = Mutex::new((0, Vec::new()));

extern "C" fn on_signal(sig: libc::c_int) {
    // Relaxed: a lone flag polled by the runner; an atomic store is async-signal-safe.
    CAUGHT.store(sig, Ordering::Relaxed);
}

/// While alive, SIGINT, SIGTERM and SIGHUP no longer terminate the process: they are recorded, and
/// [`InterruptGuard::caught`] reports them, so a runner can stop its tasks and clean up.
///
/// Guards may nest and overlap (across threads too); the process's previous actions for the
/// three signals are restored when the last guard is dropped. A signal the process ignores when
/// the first guard is installed (SIGHUP under `nohup`, say) stays ignored.
#[derive(Debug)]
pub struct InterruptGuard {
    _private: (),
}

impl InterruptGuard {
    /// Starts catching SIGINT, SIGTERM and SIGHUP (those the process does not ignore).
    pub fn install() -> Result<InterruptGuard> {
        let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        if installed.0 == 0 {
            // Relaxed: no guard exists, so nobody reads it concurrently in a way that matters.
            CAUGHT.store(0, Ordering::Relaxed);
            let mut saved = Vec::new();
            for sig in SIGNALS {
                // SAFETY: zeroed is valid for the out-parameter.
                let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
                // SAFETY: a null new action only reads the current one into `old`.
                if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
                    let err = std::io::Error::last_os_error();
                    restore(&saved);
                    return Err(Error::os("reading a signal's action", err));
                }
                if old.sa_sigaction == libc::SIG_IGN {
                    // Ignored on purpose by whoever started us (`nohup`, `trap '' INT`): keep it.
                    saved.push(old);
                    continue;
                }
                // SAFETY: an all-zero sigaction is a valid value (no handler, empty mask).
                let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
                new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                new.sa_flags = libc::SA_RESTART;
                // SAFETY: `new` and `old` are valid sigaction structs; the handler only performs
                // an atomic store, which is async-signal-safe.
                if unsafe { libc::sigaction(sig, &new, &mut old) } != 0 {
                    let err = std::io::Error::last_os_error();
                    restore(&saved);
                    return Err(Error::os("installing a signal handler", err));
                }
                saved.push(old);
            }
            installed.1 = saved;
        }
        installed.0 += 1;
        Ok(InterruptGuard { _private: () })
    }

    /// The last signal caught (SIGINT, SIGTERM or SIGHUP) since the first live guard was installed.
    pub fn caught(&self) -> Option<i32> {
        // Relaxed: a flag polled periodically.
        match CAUGHT.load(Ordering::Relaxed) {
            0 => None,
            sig => Some(sig),
        }
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        installed.0 -= 1;
        if installed.0 == 0 {
            let saved = std::mem::take(&mut installed.1);
            restore(&saved);
        }
    }
}

/// Puts back the actions saved for the first `saved.len()` signals.
fn restore(saved: &[libc::sigaction]) {
    for (sig, old) in SIGNALS.iter().zip(saved) {
        // SAFETY: `old` is the action the kernel gave us for this signal.
        unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
    }
}
