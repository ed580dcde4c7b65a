//! WaitSets: one thread waits on several readers and events at once.
//!
//! # Design
//!
//! Every member already has a sleep protocol of its own, with no lost wake-up: a reader
//! announces itself in its stream's `readers_waiting` count and the `ASLEEP` bit of its entry's
//! owner word, re-checks `head` and the writer, then sleeps on the stream's `data_futex`
//! (`ring::protocol::reader_prepare_sleep`, `docs/LAYOUT.md` 4.5 and 4.9); an event waiter
//! counts itself in the event's `waiters`, re-reads `value`, then sleeps on `value`
//! (`event.rs`). A writer publishing, a writer closing and a `set` each bump or change the word
//! and wake its sleepers when the count says somebody may be asleep.
//!
//! A WaitSet makes exactly those announcements on every member, checks every member once more
//! with the member's own non-blocking check (the very checks a blocking read or event wait makes
//! after announcing), and only then sleeps on all the words at once with `futex_waitv`
//! (Linux 5.16+, up to 128 words). Whatever happens after the announcements changes a word the
//! WaitSet sleeps on or is seen by the re-check, so no wake-up is lost, and the members' writers
//! need not know WaitSets exist. The announcements are withdrawn after every sleep. Nothing new is
//! stored in shared memory and no new atomic protocol is added (the layout and the loom models of
//! the members' protocols cover it), so the layout version is unchanged.
//!
//! Alternatives not taken: a WaitSet futex word in shared memory that every writer and `set`
//! would also bump (a layout change, and a cost on every publish for every stream); a thread per
//! member (threads, and a wake-up hop); polling (CPU while idle).
//!
//! Where `futex_waitv` is missing (kernels before 5.16: `ENOSYS`), or a set has more than 128
//! members, the WaitSet sleeps on its first member's word only, in slices of at most
//! [`FALLBACK_SLICE`] (5 ms): other members are then seen within 5 ms, at the cost of about 200
//! wake-ups a second while idle (still far below 1% of a core).
//!
//! Like the members' own waits, the sleep is cut into slices of at most 100 ms, after which the
//! readers look at their writers' liveness: a writer that dies (and so wakes nobody) is reported
//! within about 100 ms.
//!
//! Readiness is level-triggered: a member stays ready until its frame is read or its event
//! cleared (or taken). A ready reader is one whose next read returns at once: with a frame, or
//! with the end of the stream, the writer's death or an error. A member of a reader group may
//! claim frames when the WaitSet checks it, which its next read returns. A ready counting event
//! has a pending signal, which the WaitSet does not take: take it with `try_wait` (another
//! waiter may take it first).
//!
//! ```
//! use shmline::{Event, EventOptions, ReaderOptions, Stream, StreamOptions, WaitSet};
//! use std::time::Duration;
//! # let name = format!("doc-waitset-{}", std::process::id());
//! let stream = Stream::create(&name, &StreamOptions {
//!     max_frame_size: 8,
//!     unlink_on_close: true,
//!     ..Default::default()
//! })?;
//! let mut reader = stream.reader(&ReaderOptions::default())?;
//! let event = Event::create(&format!("{name}-stop"), &EventOptions {
//!     unlink_on_close: true,
//!     ..Default::default()
//! })?;
//! let mut writer = stream.writer()?;
//! writer.write(b"hello")?;
//!
//! let mut set = WaitSet::new();
//! let frames = set.add_reader(&mut reader);
//! let stop = set.add_event(&event);
//! assert_eq!(set.wait(Some(Duration::from_secs(5)))?, vec![frames]);
//! assert_eq!(set.reader(frames).unwrap().try_read()?.data, b"hello");
//! event.set();
//! assert_eq!(set.wait(Some(Duration::from_secs(5)))?, vec![stop]);
//! # Ok::<(), shmline::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::event::Event;
use crate::ring::Reader;
use crate::sync::AtomicU32;
use crate::wait::{Deadline, Step, WaitStrategy};
use std::time::{Duration, Instant};

/// Longest sleep when `futex_waitv` is unavailable (or the set is too large for it): members
/// other than the first are noticed within this time.
pub const FALLBACK_SLICE: Duration = Duration::from_millis(5);

/// Most words one `futex_waitv` call takes (the kernel's `FUTEX_WAITV_MAX`).
const WAITV_MAX: usize = 128;

/// One member of a wait: a reader (checked and announced through `&mut`) or an event.
pub(crate) enum Member<'a> {
    /// A reader of any kind: lossless, lossy or a group member, of any stream.
    Reader(&'a mut Reader),
    /// An event, flag or counting.
    Event(&'a Event),
}

impl Member<'_> {
    /// True if the member is ready now (see the module doc).
    fn ready(&mut self) -> bool {
        match self {
            Member::Reader(r) => r.poll_ready(),
            Member::Event(e) => e.is_set(),
        }
    }

    /// Announces the member as asleep; returns the value of [`Member::futex_word`] to sleep on.
    fn prepare_sleep(&self) -> u32 {
        match self {
            Member::Reader(r) => r.prepare_sleep(),
            Member::Event(e) => e.prepare_sleep(),
        }
    }

    /// The word the member's wakers change and wake.
    fn futex_word(&self) -> &AtomicU32 {
        match self {
            Member::Reader(r) => r.futex_word(),
            Member::Event(e) => e.futex_word(),
        }
    }

    /// Withdraws [`Member::prepare_sleep`].
    fn sleep_done(&self) {
        match self {
            Member::Reader(r) => r.sleep_done(),
            Member::Event(e) => e.sleep_done(),
        }
    }
}

/// A set of readers and events to wait on together: [`WaitSet::wait`] returns the keys of those
/// that are ready. Idle waiting uses no CPU (one wake-up per 100 ms to check the writers'
/// liveness); see the [module documentation](self) for how, and for what "ready" means.
///
/// The set borrows its readers mutably for its lifetime (checking a reader updates its view of
/// the stream, and may claim frames for a group member, as its own reads do), so read from them
/// through [`WaitSet::reader`]; events are shared, so any handle may be used meanwhile. The C,
/// C++ and Python bindings keep handles instead, under the rule that a reader is used from one
/// thread at a time.
#[derive(Default)]
pub struct WaitSet<'a> {
    /// Indexed by key; `None` once removed.
    members: Vec<Option<Member<'a>>>,
}

impl std::fmt::Debug for WaitSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitSet")
            .field("members", &self.len())
            .finish()
    }
}

impl<'a> WaitSet<'a> {
    /// An empty set.
    pub fn new() -> WaitSet<'a> {
        WaitSet::default()
    }

    /// Adds a reader (lossless, lossy or a group member, of any stream); returns its key: the
    /// number of members added before it (removed ones included).
    pub fn add_reader(&mut self, reader: &'a mut Reader) -> usize {
        self.members.push(Some(Member::Reader(reader)));
        self.members.len() - 1
    }

    /// Adds an event (flag or counting); returns its key: the number of members added before it
    /// (removed ones included).
    pub fn add_event(&mut self, event: &'a Event) -> usize {
        self.members.push(Some(Member::Event(event)));
        self.members.len() - 1
    }

    /// Removes the member of key `key` (e.g. a reader at the end of its stream, which would
    /// otherwise stay ready for ever); the other keys do not change. False if there was none.
    pub fn remove(&mut self, key: usize) -> bool {
        self.members.get_mut(key).and_then(Option::take).is_some()
    }

    /// The number of members (not counting removed ones).
    pub fn len(&self) -> usize {
        self.members.iter().flatten().count()
    }

    /// True if the set has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The reader of key `key` (`None` if the key is not a reader's, or was removed).
    pub fn reader(&mut self, key: usize) -> Option<&mut Reader> {
        match self.members.get_mut(key) {
            Some(Some(Member::Reader(r))) => Some(r),
            _ => None,
        }
    }

    /// Waits for ever until at least one member is ready, and returns the keys of every ready
    /// member in increasing order. [`Error::InvalidArgument`] for a set with no member.
    pub fn wait(&mut self) -> Result<Vec<usize>> {
        wait_members(&mut self.members, Deadline::Never)
    }

    /// The keys of the members ready now, without waiting; [`Error::Empty`] if none is.
    pub fn try_wait(&mut self) -> Result<Vec<usize>> {
        wait_members(&mut self.members, Deadline::Now)
    }

    /// As [`WaitSet::wait`], for at most `timeout`: [`Error::Timeout`] if no member became ready
    /// in time ([`Error::Empty`] for a zero `timeout`, as [`WaitSet::try_wait`]).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Vec<usize>> {
        wait_members(&mut self.members, Deadline::after(Some(timeout)))
    }

    /// As [`WaitSet::wait`], until `deadline` ([`Error::Timeout`]).
    pub fn wait_deadline(&mut self, deadline: Instant) -> Result<Vec<usize>> {
        wait_members(&mut self.members, Deadline::At(deadline))
    }
}

/// The wait loop of [`WaitSet::wait_deadline`], over members borrowed by the caller (the C ABI
/// builds them from its handles for each call), indexed by key (`None`: removed).
pub(crate) fn wait_members(
    members: &mut [Option<Member<'_>>],
    deadline: Deadline,
) -> Result<Vec<usize>> {
    if members.iter().all(Option::is_none) {
        return Err(Error::InvalidArgument(
            "wait on an empty WaitSet would wait for nothing: add a reader or an event first"
                .into(),
        ));
    }
    let mut polls = 0u32;
    let mut values: Vec<u32> = Vec::with_capacity(members.len());
    loop {
        let ready = ready_keys(members);
        if !ready.is_empty() {
            return Ok(ready);
        }
        if !deadline.may_wait() {
            return Err(Error::Empty);
        }
        // The adaptive strategy's few microseconds of polling first, as a single read would.
        let slice = match WaitStrategy::Adaptive.next_step(&mut polls, &deadline) {
            Step::Poll | Step::CheckLiveness => continue,
            Step::TimedOut => return Err(Error::Timeout),
            Step::Sleep(slice) => slice,
        };
        values.clear();
        values.extend(members.iter().flatten().map(Member::prepare_sleep));
        // After announcing: anything that happens now changes a word we sleep on.
        let ready = ready_keys(members);
        if ready.is_empty() {
            sleep(members, &values, slice, uses_futex_waitv());
        }
        members.iter().flatten().for_each(Member::sleep_done);
        if !ready.is_empty() {
            return Ok(ready);
        }
    }
}

/// The keys of the members ready now.
fn ready_keys(members: &mut [Option<Member<'_>>]) -> Vec<usize> {
    let mut ready = Vec::new();
    for (key, member) in members.iter_mut().enumerate() {
        if member.as_mut().is_some_and(Member::ready) {
            ready.push(key);
        }
    }
    ready
}

/// Sleeps until the futex word of a member differs from its value in `values` (one per member
/// present, in key order), a wake-up, or `slice` passes; with `waitv` false (or too many
/// members), on the first member's word only, for at most [`FALLBACK_SLICE`].
fn sleep(members: &[Option<Member<'_>>], values: &[u32], slice: Duration, waitv: bool) {
    if waitv && values.len() <= WAITV_MAX && futex_waitv(members, values, slice) {
        return;
    }
    if let Some(first) = members.iter().flatten().next() {
        crate::wait::futex_wait(first.futex_word(), values[0], slice.min(FALLBACK_SLICE));
    }
}

/// `futex_waitv` (syscall 449) on the members' shared (not process-private) 32-bit words.
/// Returns false only if the kernel does not have it (`ENOSYS`), which it remembers.
fn futex_waitv(members: &[Option<Member<'_>>], values: &[u32], slice: Duration) -> bool {
    #[cfg(not(loom))]
    {
        /// `struct futex_waitv` of `<linux/futex.h>`.
        #[repr(C)]
        struct FutexWaitv {
            val: u64,
            uaddr: u64,
            flags: u32,
            reserved: u32,
        }
        /// `FUTEX2_SIZE_U32`: a 32-bit word; without `FUTEX2_PRIVATE`, as the words are shared.
        const FUTEX2_SIZE_U32: u32 = 2;
        /// The same number on every architecture (the generic syscall table).
        const SYS_FUTEX_WAITV: libc::c_long = 449;
        // Duplicates (two readers of one stream) are waited on once.
        let mut waiters: Vec<FutexWaitv> = Vec::with_capacity(members.len());
        for (member, value) in members.iter().flatten().zip(values) {
            let uaddr = member.futex_word().as_ptr() as u64;
            if waiters.iter().all(|w| w.uaddr != uaddr) {
                waiters.push(FutexWaitv {
                    val: u64::from(*value),
                    uaddr,
                    flags: FUTEX2_SIZE_U32,
                    reserved: 0,
                });
            }
        }
        // futex_waitv takes an absolute timeout on the given clock.
        let until = crate::wait::monotonic_ns().saturating_add(slice.as_nanos() as u64);
        let ts = libc::timespec {
            tv_sec: (until / 1_000_000_000) as libc::time_t,
            tv_nsec: (until % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: `waiters` holds valid `futex_waitv` records whose addresses are aligned 32-bit
        // atomics that stay mapped for the call (the members borrow their mappings); the kernel
        // only reads them and `ts`.
        let rc = unsafe {
            libc::syscall(
                SYS_FUTEX_WAITV,
                waiters.as_ptr(),
                waiters.len() as libc::c_uint,
                0 as libc::c_uint,
                &ts as *const libc::timespec,
                libc::CLOCK_MONOTONIC,
            )
        };
        if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            // Relaxed: a cache of a fact about the kernel; a race only repeats the probe.
            WAITV.store(WAITV_MISSING, std::sync::atomic::Ordering::Relaxed);
            return false;
        }
        // Woken, timed out, interrupted, or a value already changed: the caller re-checks.
        true
    }
    #[cfg(loom)]
    {
        let _ = (members, values, slice);
        loom::thread::yield_now();
        true
    }
}

/// [`WAITV`] once the kernel said it has no `futex_waitv`.
const WAITV_MISSING: u8 = 1;
/// 0 until a `futex_waitv` call fails with `ENOSYS`, then [`WAITV_MISSING`].
static WAITV: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether this process sleeps on many words at once (`futex_waitv`), or falls back to sleeping
/// on one word in slices of [`FALLBACK_SLICE`] (known only after a first WaitSet sleep).
/// It may be used until a call says `ENOSYS`.
pub fn uses_futex_waitv() -> bool {
    // Relaxed: see `futex_waitv`.
    WAITV.load(std::sync::atomic::Ordering::Relaxed) != WAITV_MISSING
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventOptions;
    use std::time::Instant;

    fn event(what: &str) -> Event {
        let name = format!("t-waitset-{what}-{}", std::process::id());
        let options = EventOptions {
            unlink_on_close: true,
            ..Default::default()
        };
        Event::create(&name, &options).unwrap()
    }

    #[test]
    fn the_one_word_fallback_notices_a_second_member_within_its_slice() {
        let (first, second) = (event("fallback-a"), event("fallback-b"));
        let mut members = [Some(Member::Event(&first)), Some(Member::Event(&second))];
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                second.set();
            });
            // Sleep on the first word only, as without futex_waitv.
            while ready_keys(&mut members).is_empty() {
                let values: Vec<_> = members
                    .iter()
                    .flatten()
                    .map(Member::prepare_sleep)
                    .collect();
                sleep(&members, &values, crate::wait::LIVENESS_SLICE, false);
                members.iter().flatten().for_each(Member::sleep_done);
                assert!(started.elapsed() < Duration::from_secs(5));
            }
        });
        assert_eq!(ready_keys(&mut members), vec![1]);
    }

    #[test]
    fn futex_waitv_wakes_on_a_change_of_any_word() {
        let (first, second) = (event("waitv-a"), event("waitv-b"));
        let mut members = [Some(Member::Event(&first)), Some(Member::Event(&second))];
        let values: Vec<_> = members
            .iter()
            .flatten()
            .map(Member::prepare_sleep)
            .collect();
        second.set();
        let started = Instant::now();
        // The second word no longer holds its value: the call returns at once.
        sleep(&members, &values, Duration::from_secs(10), true);
        assert!(started.elapsed() < Duration::from_secs(5));
        members.iter().flatten().for_each(Member::sleep_done);
        assert_eq!(ready_keys(&mut members), vec![1]);
    }
}
