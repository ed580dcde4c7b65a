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
