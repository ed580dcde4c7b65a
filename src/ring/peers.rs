//! The liveness of a stream's writers as its readers and the pipeline runner see it: whether a
//! writer is alive, and ending a stream whose writers are gone. Shared by the reader and writer
//! handles above it; built on the tables and the multi-writer repair below it.

use super::{multi, tables, Shared};
use crate::layout::{WRITER_ACTIVE, WRITER_CLAIMING, WRITER_CLOSED, WRITER_NONE};
use crate::sync::Ordering;

/// Whether the stream's writer process is alive (true while no writer has attached yet); for a
/// multi-writer stream, whether any of its writers is.
pub(crate) fn writer_alive(shared: &Shared) -> bool {
    if shared.multi_writer() {
        return multi::any_writer_alive(shared);
    }
    let hdr = shared.header();
    // Acquire: pairs with the writer's Release store of WRITER_ACTIVE after its identity.
    let state = hdr.writer_state.load(Ordering::Acquire);
    if state != WRITER_ACTIVE && state & WRITER_CLAIMING == 0 {
        return true;
    }
    tables::claimed_writer(hdr, state).alive
}

/// Ends the stream on behalf of a writer that is gone (never attached, or its process died without
/// closing), so readers drain what was published and then get [`Error::EndOfStream`] instead of
/// waiting for ever or seeing [`Error::WriterDead`]. Leaves a stream with a live writer, or already
/// closed, alone. Returns true if it closed the stream.
///
/// `exited` is the pid of a process the caller knows has exited (its parent, which has seen the
/// exit but not reaped it yet): a writer with that pid counts as gone even though, unreaped, it
/// still looks alive.
///
/// Safe to call from any process at any time: it only moves `writer_state` to `WRITER_CLOSED` with
/// a compare-exchange and wakes sleeping readers, exactly as a closing writer would.
pub(crate) fn close_abandoned(shared: &Shared, exited: Option<u32>) -> bool {
    if shared.multi_writer() {
        return multi::close_abandoned(shared, exited);
    }
    let hdr = shared.header();
    loop {
        // SeqCst: the same order as the writer's own close, which readers pair with.
        let state = hdr.writer_state.load(Ordering::SeqCst);
        if state == WRITER_CLOSED {
            return false;
        }
        if state != WRITER_NONE {
            let owner = tables::claimed_writer(hdr, state);
            if exited != Some(owner.pid) && owner.alive {
                return false;
            }
        }
        // SeqCst: as the writer's close (readers re-check the state after announcing sleep).
        if hdr
            .writer_state
            .compare_exchange(state, WRITER_CLOSED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            super::wake_all_readers(hdr);
            return true;
        }
    }
}
