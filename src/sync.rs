//! Atomics used by the shared-memory protocol.
//!
//! Normally these are `std`'s atomics. Under `--cfg loom` they are loom's, so the protocol in
//! `ring::protocol` can be model-checked on headers that live on the heap (loom atomics cannot live
//! in a memory map, and their size differs, so the layout size assertions are skipped under loom).

#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Hint to the CPU that we are spinning (a `pause` on x86-64); yields under loom.
#[inline]
pub fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Hint to the CPU to bring the cache line holding `at` into this core's caches, for reading. No
/// memory is accessed (any address will do: a prefetch never faults) and nothing is ordered; a
/// no-op where there is no such instruction, and under loom.
#[inline(always)]
pub fn prefetch_read(at: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: PREFETCHT0 (SSE, part of the x86-64 baseline) only hints the cache; it does not
    // dereference the pointer and cannot fault, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(at as *const i8)
    };
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = at;
}

/// Keeps a SeqCst store before a later SeqCst load of another location, as the single total order
/// of SeqCst operations does: the two halves of every store-then-load handshake in
/// `ring::protocol` (Dekker style: "I announce, then I look at what you announced").
///
/// Normally a no-op, because the SeqCst accesses already give this order. loom models SeqCst
/// accesses as only AcqRel (its README: "Unsupported features"), which would let both sides miss
/// each other and report impossible lost wake-ups; it does model SeqCst fences, so under loom this
/// is one.
#[inline(always)]
pub fn seqcst_store_load() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// The light half of an asymmetric fence: keeps this thread's earlier store before its later load
/// of another location, *provided* every thread that needs that order from the other side runs
/// [`heavy_fence`] between its own store and load (the "asymmetric fence" pattern: P1202 for C++,
/// folly's `asymmetric_thread_fence_light/heavy`, liburcu's membarrier flavour).
///
/// Only valid after [`light_fences`] returned true in this process: then it costs nothing at run
/// time (a compiler barrier; no instruction), because the heavy side's `membarrier` makes every
/// CPU running a registered process execute a full barrier, which is all our store-then-load
/// needed. Under loom it is a SeqCst fence: the model checks the protocol with both halves as full
/// fences, which is what the pair guarantees.
#[inline(always)]
pub fn light_fence() {
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// The heavy half of an asymmetric fence (see [`light_fence`]): a SeqCst fence here, and
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which makes every CPU that runs a process
/// registered by [`light_fences`] pass a full memory barrier before it returns. It costs a few
/// microseconds (inter-processor interrupts), so only the side about to sleep pays it.
///
/// If the call fails (a kernel without it, or a seccomp filter that forbids it), the process
/// cannot rely on it: [`heavy_fences_failed`] then turns true and sleeps are kept short (see
/// `wait::futex_wait`), so a wake-up lost to a light-fenced publisher costs at most that sleep.
#[inline]
pub fn heavy_fence() {
    fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    {
        // SAFETY: membarrier takes no pointers; an unsupported command only returns an error.
        let r =
            unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) };
        if r != 0 {
            // Relaxed: a sticky hint for this process's own sleeps.
            HEAVY_FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// True once a [`heavy_fence`] of this process failed to reach the other processes.
#[inline]
pub fn heavy_fences_failed() -> bool {
    #[cfg(not(loom))]
    {
        // Relaxed: see `heavy_fence`.
        HEAVY_FAILED.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(loom)]
    false
}

/// True if this process may use [`light_fence`]: on the first call it registers the process for
/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (once; again in a forked child, at its first call after
/// the fork; `exec` starts afresh anyway). False on a kernel without it, or when the
/// environment variable `SHMLINE_LOCKED_PUBLISH` is set to `1` (benchmarks compare the two
/// protocols in one build with it); callers then use a SeqCst read-modify-write instead.
#[inline(always)]
pub fn light_fences() -> bool {
    #[cfg(not(loom))]
    {
        // Relaxed: the state only moves from unknown to a final value, and registering twice
        // (two threads racing on the first call) is harmless.
        match LIGHT_STATE.load(std::sync::atomic::Ordering::Relaxed) {
            LIGHT_YES => true,
            LIGHT_NO => false,
            _ => register_light_fences(),
        }
    }
    #[cfg(loom)]
    true
}

#[cfg(not(loom))]
#[cold]
fn register_light_fences() -> bool {
    let wanted = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
    let forced_off = std::env::var_os("SHMLINE_LOCKED_PUBLISH").is_some_and(|v| v == "1");
    // SAFETY: membarrier takes no pointers; QUERY returns the supported commands or an error.
    let supported = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) };
    let ok = !forced_off
        && supported >= 0
        && supported & wanted == wanted
        // SAFETY: as above; registering only changes this process's membarrier state.
        && unsafe {
            libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0)
        } == 0;
    // Relaxed: see `light_fences`.
    LIGHT_STATE.store(
        if ok { LIGHT_YES } else { LIGHT_NO },
        std::sync::atomic::Ordering::Relaxed,
    );
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| {
        // A forked child registers again at its next publication: whether the kernel carries
        // the registration across fork is not something to rely on.
        extern "C" fn forget_registration() {
            // Relaxed: the child is single-threaded here.
            LIGHT_STATE.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        // SAFETY: registers a handler that only stores to an atomic (async-signal-safe); the
        // other two handlers are none.
        unsafe { libc::pthread_atfork(None, None, Some(forget_registration)) };
    });
    ok
}

/// `membarrier(2)` commands (linux/membarrier.h).
#[cfg(not(loom))]
const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
#[cfg(not(loom))]
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
#[cfg(not(loom))]
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

#[cfg(not(loom))]
const LIGHT_YES: u8 = 1;
#[cfg(not(loom))]
const LIGHT_NO: u8 = 2;
/// 0 until [`light_fences`] registered (or failed to): then `LIGHT_YES` or `LIGHT_NO`.
#[cfg(not(loom))]
static LIGHT_STATE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
#[cfg(not(loom))]
static HEAVY_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_heavy_fence_reaches_registered_processes_on_this_kernel() {
        // The machines we run on (Linux >= 4.16) have it; if this fails, the light path is off
        // and every publication pays a locked instruction again.
        if std::env::var_os("SHMLINE_LOCKED_PUBLISH").is_none() {
            assert!(
                light_fences(),
                "membarrier GLOBAL_EXPEDITED is not available"
            );
        }
        heavy_fence();
        assert!(!heavy_fences_failed());
    }
}
