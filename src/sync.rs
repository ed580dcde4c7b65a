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
