//! Events: process-shared switches (flags) and counters that tasks set, clear and wait on.
//!
//! An event is a 256-byte segment ([`EventHeader`]) whose `value` word is also the futex waiters
//! sleep on. A waiter spins a few microseconds, then registers in `waiters` and sleeps; `set` only
//! makes the wake-up system call when `waiters` says somebody may be asleep, so setting an event
//! nobody waits on costs one atomic read-modify-write.
//!
//! Every field is shared with other processes and therefore untrusted: any `value` or `waiters`
//! another process writes is handled without panicking (at worst a waiter re-checks a little late).

use crate::error::{Error, Result};
use crate::layout::{
    EventHeader, EVENT_MAGIC, EVENT_MODE_COUNTING, EVENT_MODE_FLAG, EVENT_SEGMENT_SIZE,
    LAYOUT_VERSION,
};
use crate::liveness::ProcessId;
use crate::shm::{file_name, inspect, Segment, SegmentKind};
use crate::stale::{remove_if_stale, Usage};
use crate::sync::Ordering;
use crate::wait::{futex_wait, futex_wake, realtime_ns, Deadline, WaitStrategy, LIVENESS_SLICE};
use std::time::{Duration, Instant};

/// How long [`Event::open`] waits for a creator that is still initialising the segment.
const INIT_WAIT: Duration = Duration::from_secs(1);

/// What `set` and `wait` mean for an event.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventMode {
    /// A switch: `set` turns it on and it stays on until `clear`; `wait` returns while it is on
    /// and does not turn it off, so one `set` releases every waiter.
    #[default]
    Flag = EVENT_MODE_FLAG,
    /// A counter of pending signals (a semaphore): `set` adds one, each successful `wait` takes
    /// one, so every `set` releases exactly one wait.
    Counting = EVENT_MODE_COUNTING,
}

impl EventMode {
    /// The mode with this number (as stored in shared memory and passed through the C ABI).
    pub fn from_u32(value: u32) -> Option<EventMode> {
        match value {
            EVENT_MODE_FLAG => Some(EventMode::Flag),
            EVENT_MODE_COUNTING => Some(EventMode::Counting),
            _ => None,
        }
    }
}

/// How [`Event::create`] makes an event.
#[derive(Debug, Clone)]
pub struct EventOptions {
    /// Flag or counting semantics; [`EventMode::Flag`] by default.
    pub mode: EventMode,
    /// Permission bits of the segment; must include owner read and write. `0o600` (owner only) by
    /// default.
    pub permissions: u32,
    /// Remove the event's name when this handle is dropped; `false` by default, so the event
    /// outlives its creator until [`Event::unlink`] (or `shmline clean`) removes it.
    pub unlink_on_close: bool,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions {
            mode: EventMode::Flag,
            permissions: 0o600,
            unlink_on_close: false,
        }
    }
}

/// A handle to a named, process-shared event.
///
/// Handles are `Send + Sync`: any number of threads and processes may set, clear and wait on the
/// same event at once. Dropping a handle unmaps the event; it removes the name only if it was
/// created with [`EventOptions::unlink_on_close`].
///
/// ```
/// use shmline::{Event, EventOptions};
/// let name = format!("doc-event-{}", std::process::id());
/// let options = EventOptions { unlink_on_close: true, ..Default::default() };
/// let event = Event::create(&name, &options)?;
/// let other = Event::open(&name)?; // usually in another process
/// other.set();
/// event.wait_timeout(std::time::Duration::from_secs(5))?;
/// assert!(event.is_set()); // flag mode: waiting does not clear
/// # Ok::<(), shmline::Error>(())
/// ```
pub struct Event {
    segment: Segment,
    /// Copied from the header once, when validated; never re-read.
    mode: EventMode,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name())
            .field("mode", &self.mode)
            .finish()
    }
}

impl Event {
    /// Creates a new, clear event named `name`.
    ///
    /// Creation is exclusive ([`Error::AlreadyExists`] if the name is taken, saying whether its
    /// creator is alive or [`Event::remove_stale`] recovers the name). The event is fully
    /// initialised before any [`Event::open`] can accept it; if creation fails half-way nothing
    /// is left in `/dev/shm`.
    pub fn create(name: &str, options: &EventOptions) -> Result<Event> {
        let mut segment = Segment::create(
            SegmentKind::Event,
            name,
            EVENT_SEGMENT_SIZE,
            options.permissions,
        )
        .map_err(|e| crate::stale::explain_exists(SegmentKind::Event, name, e, Event::usage))?;
        let header = segment.at::<EventHeader>(0).ok_or_else(|| {
            Error::corrupt(format!(
                "event {name:?}: the mapping is too small for its header"
            ))
        })?;
        initialise(header, options.mode);
        segment.set_unlink_on_drop(options.unlink_on_close);
        Ok(Event {
            segment,
            mode: options.mode,
        })
    }

    /// Opens the existing event `name`.
    ///
    /// Waits up to about a second for a creator that is still initialising it. Refuses a segment
    /// that is not a shmline event ([`Error::NotShmline`]), was made by another layout version
    /// ([`Error::VersionMismatch`]) or holds an impossible size or mode ([`Error::Corrupt`]).
    pub fn open(name: &str) -> Result<Event> {
        let started = Instant::now();
        let segment = Segment::open(SegmentKind::Event, name, EVENT_SEGMENT_SIZE, INIT_WAIT)?;
        let what = format!("event {name:?}");
        let header = segment.at::<EventHeader>(0).ok_or_else(|| {
            Error::corrupt(format!("{what}: the mapping is too small for its header"))
        })?;
        let magic = loop {
            // Acquire: pairs with the creator's Release store of `magic`, so every identity field
            // read below is the creator's.
            let magic = header.magic.load(Ordering::Acquire);
            if magic != 0 {
                break magic;
            }
            if started.elapsed() >= INIT_WAIT {
                return Err(Error::NotShmline(format!(
                    "{what}: its creator never finished initialising it (no magic after {} ms); \
                     remove it with `shmline clean` if the creator is gone",
                    INIT_WAIT.as_millis()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if magic != EVENT_MAGIC {
            return Err(Error::NotShmline(format!(
                "{what}: /dev/shm/{} starts with {:?}, not the event magic {:?}",
                file_name(SegmentKind::Event, name),
                String::from_utf8_lossy(&magic.to_le_bytes()),
                String::from_utf8_lossy(&EVENT_MAGIC.to_le_bytes()),
            )));
        }
        // Relaxed for the identity fields: they were published by the Acquire load of `magic`.
        let version = header.layout_version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(Error::VersionMismatch {
                name: what,
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        let segment_size = header.segment_size.load(Ordering::Relaxed);
        if segment_size != EVENT_SEGMENT_SIZE {
            return Err(Error::corrupt(format!(
                "{what}: segment_size is {segment_size}, but an event segment is \
                 {EVENT_SEGMENT_SIZE} bytes"
            )));
        }
        if segment.len() as u64 != segment_size {
            return Err(Error::corrupt(format!(
                "{what}: segment_size is {segment_size}, but the shared-memory object is {} bytes",
                segment.len()
            )));
        }
        let raw_mode = header.mode.load(Ordering::Relaxed);
        let mode = EventMode::from_u32(raw_mode).ok_or_else(|| {
            Error::corrupt(format!(
                "{what}: mode is {raw_mode}, not {EVENT_MODE_FLAG} (flag) or \
                 {EVENT_MODE_COUNTING} (counting)"
            ))
        })?;
        Ok(Event { segment, mode })
    }

    /// Removes the name `name`; handles already open keep working, new opens fail with
    /// [`Error::NotFound`].
    pub fn unlink(name: &str) -> Result<()> {
        Segment::unlink(SegmentKind::Event, name)
    }

    /// Names of the events that exist on this machine.
    pub fn list() -> Result<Vec<String>> {
        crate::shm::list(SegmentKind::Event)
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        self.segment.name()
    }

    /// The event's mode, as chosen by its creator.
    pub fn mode(&self) -> EventMode {
        self.mode
    }

    /// The process that created the event, as recorded in its header (for finding stale events).
    pub fn creator(&self) -> ProcessId {
        let header = self.header();
        // Relaxed: written once before `magic` was published, which this handle has observed.
        ProcessId::load(
            &header.creator_pid,
            &header.creator_start_time,
            Ordering::Relaxed,
        )
    }

    /// Signals the event.
    ///
    /// Flag mode: turns the event on and wakes every waiter. Counting mode: adds one pending
    /// signal (saturating at `u32::MAX`) and wakes one waiter. Everything the caller wrote before
    /// `set` is visible to a waiter that returns because of it. Never blocks; makes a system call
    /// only when a waiter may be asleep.
    pub fn set(&self) {
        let header = self.header();
        // SeqCst on this write and on the `waiters` load below, against the waiter's SeqCst
        // increment of `waiters` and load of `value` (a Dekker pattern): in the single total order
        // either we see its registration and wake it, or it sees our value and does not sleep.
        let wake_count = match self.mode {
            EventMode::Flag => {
                header.value.swap(1, Ordering::SeqCst);
                i32::MAX
            }
            EventMode::Counting => {
                // The closure always returns Some, so the update always succeeds; Relaxed on the
                // failed compare-exchanges because they only lead to a retry.
                let _ = header
                    .value
                    .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |pending| {
                        Some(pending.saturating_add(1))
                    });
                1
            }
        };
        // SeqCst: the second half of the Dekker pattern described above.
        if header.waiters.load(Ordering::SeqCst) != 0 {
            futex_wake(&header.value, wake_count);
        }
        // Relaxed: a statistic that orders nothing.
        header.sets.fetch_add(1, Ordering::Relaxed);
    }

    /// Turns the event off (flag mode) or discards every pending signal (counting mode).
    pub fn clear(&self) {
        // Release: whoever later reads the cleared value with Acquire also sees what the caller
        // wrote before clearing.
        self.header().value.store(0, Ordering::Release);
    }

    /// Whether the event is on (flag mode) or has a pending signal (counting mode), right now.
    pub fn is_set(&self) -> bool {
        // Acquire: pairs with `set`, so a `true` here makes the setter's earlier writes visible.
        self.header().value.load(Ordering::Acquire) != 0
    }

    /// The raw value: pending signals in counting mode, 0 or 1 in flag mode. A snapshot for
    /// monitoring; it may change at once.
    pub fn count(&self) -> u32 {
        // Relaxed: a snapshot that synchronises with nothing.
        self.header().value.load(Ordering::Relaxed)
    }

    /// Waits for ever until the event is set (flag mode) or takes one signal (counting mode).
    pub fn wait(&self) -> Result<()> {
        self.wait_until(Deadline::Never)
    }

    /// Like [`Event::wait`], but gives up with [`Error::Timeout`] after `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_until(Deadline::after(Some(timeout)))
    }

    /// Never blocks: succeeds (taking a signal in counting mode) if the event is set right now,
    /// else returns [`Error::Empty`].
    pub fn try_wait(&self) -> Result<()> {
        match self.wait_until(Deadline::Now) {
            Err(Error::Timeout) => Err(Error::Empty),
            other => other,
        }
    }

    /// Waits until the event is set (flag mode, without clearing it) or takes one signal
    /// (counting mode), or until `deadline` passes ([`Error::Timeout`]).
    ///
    /// Spins a few microseconds, then sleeps on a futex (no CPU while asleep), waking at least
    /// every 100 ms to re-check. In flag mode, a `set` followed at once by `clear` may go unseen by
    /// a waiter that had not yet looked at the event; use counting mode for pulses that must not
    /// be missed.
    pub fn wait_deadline(&self, deadline: Instant) -> Result<()> {
        self.wait_until(Deadline::At(deadline))
    }

    /// [`Event::wait_deadline`] as `deadline` says (the C ABI's timeouts).
    pub(crate) fn wait_until(&self, deadline: Deadline) -> Result<()> {
        if self.take() {
            return Ok(());
        }
        if deadline.may_wait() {
            // Events always wait adaptively: poll a few microseconds before paying for a sleep
            // (the adaptive strategy always has a spin limit).
            for _ in 0..WaitStrategy::Adaptive.spins().unwrap_or(0) {
                crate::sync::spin_hint();
                if self.take() {
                    return Ok(());
                }
            }
        }
        loop {
            let slice = deadline.remaining(LIVENESS_SLICE).ok_or(Error::Timeout)?;
            if self.prepare_sleep() == 0 {
                // Returns on a wake-up, a changed value, a signal or the end of the slice.
                futex_wait(self.futex_word(), 0, slice);
            }
            self.sleep_done();
            if self.take() {
                return Ok(());
            }
        }
    }

    /// Registers as a waiter (for [`Event::wait_deadline`] and [`crate::WaitSet`]) and returns
    /// the value of the futex word ([`Event::futex_word`]) seen after registering (non-zero: set
    /// already). Withdraw with [`Event::sleep_done`].
    pub(crate) fn prepare_sleep(&self) -> u32 {
        let header = self.header();
        // SeqCst on the registration and on the value load: the waiter's half of the Dekker
        // pattern described in `set`. Wrapping arithmetic, so garbage in `waiters` is harmless.
        header.waiters.fetch_add(1, Ordering::SeqCst);
        // SeqCst: as above.
        header.value.load(Ordering::SeqCst)
    }

    /// The futex word waiters sleep on.
    pub(crate) fn futex_word(&self) -> &crate::sync::AtomicU32 {
        &self.header().value
    }

    /// Withdraws [`Event::prepare_sleep`].
    pub(crate) fn sleep_done(&self) {
        // SeqCst like the registration: this is off the fast path, and one total order over
        // every `waiters` access is simpler to reason about than a weaker ordering.
        self.header().waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Checks (flag mode) or takes one signal (counting mode) without waiting.
    fn take(&self) -> bool {
        let value = &self.header().value;
        match self.mode {
            // Acquire: pairs with the setter's SeqCst write, so its earlier writes are visible.
            EventMode::Flag => value.load(Ordering::Acquire) != 0,
            // Acquire on success, as above; Relaxed on failure, which only leads to a retry.
            EventMode::Counting => value
                .fetch_update(Ordering::Acquire, Ordering::Relaxed, |pending| {
                    pending.checked_sub(1)
                })
                .is_ok(),
        }
    }

    fn header(&self) -> &EventHeader {
        // Both constructors checked that the mapping holds a whole header at offset 0.
        self.segment
            .at::<EventHeader>(0)
            .expect("an event mapping holds its header")
    }
}

/// Writes a fresh event's identity and live fields, publishing `magic` last.
fn initialise(header: &EventHeader, mode: EventMode) {
    let creator = ProcessId::current();
    // Relaxed: nobody may read these before seeing `magic`, which is stored with Release below.
    header
        .layout_version
        .store(LAYOUT_VERSION, Ordering::Relaxed);
    header.mode.store(mode as u32, Ordering::Relaxed);
    header
        .segment_size
        .store(EVENT_SEGMENT_SIZE, Ordering::Relaxed);
    header.creator_pid.store(creator.pid, Ordering::Relaxed);
    header
        .creator_start_time
        .store(creator.start_time, Ordering::Relaxed);
    header
        .created_unix_ns
        .store(realtime_ns(), Ordering::Relaxed);
    // Release: an opener that loads `magic` with Acquire sees every field written above.
    header.magic.store(EVENT_MAGIC, Ordering::Release);
}

impl Event {
    /// Removes event `name` if its creator is dead, so the name can be created again. Processes
    /// that still have it open keep their (now private) copy.
    ///
    /// Returns and fails as [`Stream::remove_stale`](crate::Stream::remove_stale).
    pub fn remove_stale(name: &str) -> Result<bool> {
        remove_if_stale(SegmentKind::Event, name, Event::usage)
    }

    /// Who uses event `name`: its creator while alive, else nobody (stale: see [`Usage`](crate::Usage)).
    ///
    /// Errors: as [`Stream::usage`](crate::Stream::usage).
    pub fn usage(name: &str) -> Result<Usage> {
        inspect(SegmentKind::Event, name)?;
        let event = Event::open(name)?;
        let creator = event.creator();
        // Running, not merely alive: a zombie (exited, not reaped) uses nothing any more.
        if creator.is_running() {
            return Ok(Usage::InUse {
                pid: creator.pid,
                role: "creator",
            });
        }
        Ok(Usage::Stale(format!(
            "its creator (pid {}) is dead",
            creator.pid
        )))
    }
}

#[cfg(test)]
mod tests {
    //! Tests damage headers with Relaxed stores: the set-up is single-threaded and the opener
    //! reads the segment only after the system calls of `Event::open`.
    use super::*;
    use crate::sync::AtomicU32;

    static COUNTER: AtomicU32 = AtomicU32::new(0);

    fn unique_name(what: &str) -> String {
        // Relaxed: only uniqueness matters.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("t-event-{what}-{}-{n}", std::process::id())
    }

    fn create(mode: EventMode) -> Event {
        let options = EventOptions {
            mode,
            unlink_on_close: true,
            ..Default::default()
        };
        Event::create(&unique_name("unit"), &options).unwrap()
    }

    #[test]
    fn a_flag_stays_set_through_waits_until_cleared() {
        let event = create(EventMode::Flag);
        assert!(!event.is_set());
        assert!(matches!(event.try_wait(), Err(Error::Empty)));
        event.set();
        event.set();
        assert!(event.is_set());
        assert_eq!(event.count(), 1);
        event.wait().unwrap();
        event.try_wait().unwrap();
        assert!(event.is_set());
        event.clear();
        assert!(!event.is_set());
        assert!(matches!(event.try_wait(), Err(Error::Empty)));
    }

    #[test]
    fn a_counting_event_releases_one_wait_per_set() {
        let event = create(EventMode::Counting);
        for _ in 0..3 {
            event.set();
        }
        assert_eq!(event.count(), 3);
        event.wait().unwrap();
        event.try_wait().unwrap();
        event.wait_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(event.count(), 0);
        assert!(matches!(event.try_wait(), Err(Error::Empty)));
    }

    #[test]
    fn clearing_a_counting_event_discards_pending_signals() {
        let event = create(EventMode::Counting);
        event.set();
        event.set();
        event.clear();
        assert_eq!(event.count(), 0);
        assert!(matches!(event.try_wait(), Err(Error::Empty)));
    }

    #[test]
    fn waiting_on_an_unset_event_times_out_after_the_timeout() {
        let event = create(EventMode::Flag);
        let timeout = Duration::from_millis(200);
        let started = Instant::now();
        assert!(matches!(event.wait_timeout(timeout), Err(Error::Timeout)));
        assert!(started.elapsed() >= timeout);
    }

    #[test]
    fn a_set_from_another_thread_wakes_a_sleeping_waiter() {
        let event = create(EventMode::Flag);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| event.wait_timeout(Duration::from_secs(30)));
            event.set();
            waiter.join().unwrap().unwrap();
        });
    }

    #[test]
    fn an_opened_event_has_the_creators_mode_and_identity() {
        let name = unique_name("open");
        let options = EventOptions {
            mode: EventMode::Counting,
            unlink_on_close: true,
            ..Default::default()
        };
        let created = Event::create(&name, &options).unwrap();
        let opened = Event::open(&name).unwrap();
        assert_eq!(opened.name(), name);
        assert_eq!(opened.mode(), EventMode::Counting);
        assert_eq!(opened.creator(), ProcessId::current());
        opened.set();
        assert_eq!(created.count(), 1);
    }

    #[test]
    fn creating_an_existing_event_fails_with_already_exists() {
        let event = create(EventMode::Flag);
        let e = Event::create(event.name(), &EventOptions::default()).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    }

    #[test]
    fn an_unlinked_event_can_no_longer_be_opened_but_still_works() {
        let name = unique_name("unlink");
        let event = Event::create(&name, &EventOptions::default()).unwrap();
        Event::unlink(&name).unwrap();
        assert!(matches!(Event::open(&name), Err(Error::NotFound(_))));
        event.set();
        assert!(event.is_set());
    }

    #[test]
    fn opening_a_missing_event_fails_with_not_found() {
        let e = Event::open(&unique_name("missing")).unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
    }

    #[test]
    fn an_event_with_a_foreign_magic_is_not_shmline() {
        let event = create(EventMode::Flag);
        event
            .header()
            .magic
            .store(0x0123_4567_89ab_cdef, Ordering::Relaxed);
        let e = Event::open(event.name()).unwrap_err();
        assert!(matches!(e, Error::NotShmline(_)), "{e}");
        assert!(e.to_string().contains("magic"), "{e}");
    }

    #[test]
    fn an_event_whose_creator_never_finished_is_not_shmline_after_a_second() {
        let name = unique_name("uninit");
        let _segment =
            Segment::create(SegmentKind::Event, &name, EVENT_SEGMENT_SIZE, 0o600).unwrap();
        let started = Instant::now();
        let e = Event::open(&name).unwrap_err();
        assert!(matches!(e, Error::NotShmline(_)), "{e}");
        assert!(started.elapsed() >= INIT_WAIT);
    }

    #[test]
    fn an_event_from_another_layout_version_is_refused_with_both_versions() {
        let event = create(EventMode::Flag);
        event.header().layout_version.store(99, Ordering::Relaxed);
        match Event::open(event.name()).unwrap_err() {
            Error::VersionMismatch {
                found, expected, ..
            } => assert_eq!((found, expected), (99, LAYOUT_VERSION)),
            e => panic!("expected a version mismatch, got {e}"),
        }
    }

    #[test]
    fn a_wrong_segment_size_field_is_corrupt_and_named() {
        let event = create(EventMode::Flag);
        event.header().segment_size.store(4096, Ordering::Relaxed);
        let e = Event::open(event.name()).unwrap_err();
        assert!(matches!(e, Error::Corrupt(_)), "{e}");
        assert!(e.to_string().contains("segment_size"), "{e}");
    }

    #[test]
    fn an_object_larger_than_its_segment_size_field_is_corrupt() {
        let name = unique_name("big");
        let segment = Segment::create(SegmentKind::Event, &name, 4096, 0o600).unwrap();
        initialise(segment.at(0).unwrap(), EventMode::Flag);
        let e = Event::open(&name).unwrap_err();
        assert!(matches!(e, Error::Corrupt(_)), "{e}");
        assert!(e.to_string().contains("4096"), "{e}");
    }

    #[test]
    fn an_unknown_mode_is_corrupt() {
        let event = create(EventMode::Flag);
        event.header().mode.store(7, Ordering::Relaxed);
        let e = Event::open(event.name()).unwrap_err();
        assert!(matches!(e, Error::Corrupt(_)), "{e}");
        assert!(e.to_string().contains("mode"), "{e}");
    }

    #[test]
    fn garbage_in_the_live_fields_never_panics() {
        let counting = create(EventMode::Counting);
        counting.header().value.store(u32::MAX, Ordering::Relaxed);
        counting.header().waiters.store(u32::MAX, Ordering::Relaxed);
        counting.set();
        assert_eq!(counting.count(), u32::MAX);
        counting.wait_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(counting.count(), u32::MAX - 1);

        let flag = create(EventMode::Flag);
        flag.header().value.store(12345, Ordering::Relaxed);
        flag.header().waiters.store(u32::MAX, Ordering::Relaxed);
        assert!(flag.is_set());
        flag.wait().unwrap();
        flag.set();
        assert_eq!(flag.count(), 1);
    }

    #[test]
    fn modes_round_trip_through_integers() {
        for mode in [EventMode::Flag, EventMode::Counting] {
            assert_eq!(EventMode::from_u32(mode as u32), Some(mode));
        }
        assert_eq!(EventMode::from_u32(2), None);
        assert_eq!(EventMode::default(), EventMode::Flag);
    }
}
