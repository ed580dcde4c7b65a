//! Waiting: futexes on shared memory, deadlines, clocks and the per-handle wait strategy.
//!
//! A waiter spins briefly (adaptive), then sleeps on a 32-bit futex word in shared memory. The
//! other side only calls `FUTEX_WAKE` when a "waiting" counter says somebody may be asleep, so a
//! busy stream makes no system call per frame.

use crate::sync::AtomicU32;
use std::time::{Duration, Instant};

/// How a handle waits when it cannot proceed.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitStrategy {
    /// Spin for a few microseconds, then sleep on a futex. Low latency while busy, ~0% CPU idle.
    #[default]
    Adaptive = 0,
    /// Never sleep: poll continuously. Lowest latency; burns a whole core while waiting.
    BusySpin = 1,
    /// Sleep on the futex at once. Least CPU; adds the wake-up cost of the OS to every wait.
    Block = 2,
}

impl WaitStrategy {
    /// The strategy with this number (as passed through the C ABI).
    pub fn from_u32(value: u32) -> Option<WaitStrategy> {
        match value {
            0 => Some(WaitStrategy::Adaptive),
            1 => Some(WaitStrategy::BusySpin),
            2 => Some(WaitStrategy::Block),
            _ => None,
        }
    }

    /// Every strategy, in the order of their numbers.
    pub const ALL: [WaitStrategy; 3] = [
        WaitStrategy::Adaptive,
        WaitStrategy::BusySpin,
        WaitStrategy::Block,
    ];

    /// The strategy's name in every binding's options, manifests and the command line:
    /// `"adaptive"`, `"busy_spin"` or `"block"` (docs/VOCABULARY.md).
    pub fn name(self) -> &'static str {
        match self {
            WaitStrategy::Adaptive => "adaptive",
            WaitStrategy::BusySpin => "busy_spin",
            WaitStrategy::Block => "block",
        }
    }

    /// The strategy named `name` (see [`WaitStrategy::name`]).
    pub fn from_name(name: &str) -> Option<WaitStrategy> {
        WaitStrategy::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Number of polls before sleeping (`None` = never sleep). Each poll is followed by a CPU
    /// pause ([`crate::sync::spin_hint`]).
    pub(crate) fn spins(self) -> Option<u32> {
        match self {
            WaitStrategy::Adaptive => Some(ADAPTIVE_PAUSES),
            WaitStrategy::BusySpin => None,
            WaitStrategy::Block => Some(0),
        }
    }
}

/// What a waiter that just found nothing to do does next (see [`WaitStrategy::next_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Poll again.
    Poll,
    /// Check that the peer is alive, then poll again (a busy-spinning waiter, every 65536 polls).
    CheckLiveness,
    /// Announce, re-check, then sleep on the futex for at most this long.
    Sleep(Duration),
    /// The deadline has passed.
    TimedOut,
}

impl WaitStrategy {
    /// The next step of a waiter that has polled `*polls` times without success (counts this
    /// poll): spin with a CPU pause until the strategy's polls are used up, then sleep in slices
    /// of at most [`LIVENESS_SLICE`]; a busy-spinning waiter never sleeps and checks liveness
    /// every 65536 polls instead. Shared by every wait loop of the rings.
    #[inline]
    pub(crate) fn next_step(self, polls: &mut u32, deadline: &Deadline) -> Step {
        match self.spins() {
            None => {
                if deadline.remaining(LIVENESS_SLICE).is_none() {
                    return Step::TimedOut;
                }
                *polls = polls.wrapping_add(1);
                crate::sync::spin_hint();
                if (*polls).is_multiple_of(1 << 16) {
                    Step::CheckLiveness
                } else {
                    Step::Poll
                }
            }
            Some(limit) if *polls < limit => {
                crate::sync::spin_hint();
                *polls += 1;
                Step::Poll
            }
            Some(_) => match deadline.remaining(LIVENESS_SLICE) {
                Some(slice) => Step::Sleep(slice),
                None => Step::TimedOut,
            },
        }
    }
}

/// Polls an adaptive waiter makes, with a CPU pause between them (about 25 ns each here, so about
/// 13 microseconds in all), before it sleeps: enough to catch a peer that is running on the other
/// core, and to ride out its short stalls (an interrupt, a page fault) without paying for a
/// futex wake-up.
///
/// It never gives the CPU away with `sched_yield` between polls (it did up to layout version 4's
/// first release, 32 times after 64 pauses): next to a process that keeps a CPU busy, a yield
/// hands that process a whole time slice (2 ms here) on every wait, and a ping-pong's one-way
/// latency went from 95 ns to 2 ms (`shmline bench --only neighbour`, docs/BENCHMARKS.md). A futex
/// sleep gives the CPU away too, and the wake-up puts the sleeper back at once.
const ADAPTIVE_PAUSES: u32 = 512;

/// Longest single futex sleep of a process that cannot issue `membarrier` (see [`futex_wait`]).
#[cfg(not(loom))]
const UNFENCED_SLICE: Duration = Duration::from_millis(1);

/// Longest single futex sleep: waiters wake this often to check that their peer is alive.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(100);

/// When a blocking call gives up.
#[derive(Debug, Clone, Copy)]
pub enum Deadline {
    /// Do not wait at all.
    Now,
    /// Wait until this instant.
    At(Instant),
    /// Wait for ever.
    Never,
}

impl Deadline {
    /// A deadline `timeout` from now; `None` waits for ever.
    pub fn after(timeout: Option<Duration>) -> Deadline {
        match timeout {
            None => Deadline::Never,
            Some(d) if d.is_zero() => Deadline::Now,
            Some(d) => Instant::now()
                .checked_add(d)
                .map_or(Deadline::Never, Deadline::At),
        }
    }

    /// From a C-style timeout in nanoseconds: negative = for ever, 0 = do not wait.
    pub fn from_nanos(timeout_ns: i64) -> Deadline {
        if timeout_ns < 0 {
            Deadline::Never
        } else {
            Deadline::after(Some(Duration::from_nanos(timeout_ns as u64)))
        }
    }

    /// Time left, capped at `cap`; `None` once the deadline has passed.
    pub(crate) fn remaining(&self, cap: Duration) -> Option<Duration> {
        match self {
            Deadline::Now => None,
            Deadline::Never => Some(cap),
            Deadline::At(t) => {
                let left = t.checked_duration_since(Instant::now())?;
                if left.is_zero() {
                    None
                } else {
                    Some(left.min(cap))
                }
            }
        }
    }

    /// True if waiting is allowed at all.
    pub(crate) fn may_wait(&self) -> bool {
        !matches!(self, Deadline::Now)
    }
}

/// Sleeps while `*word == expected`, for at most `timeout`. Returns on wake-up, timeout, signal
/// or a changed value: the caller re-checks its condition in every case.
///
/// Not part of the API: public for `shmline bench`, whose futex ping-pong must use the very
/// calls the streams use.
#[doc(hidden)]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    #[cfg(not(loom))]
    {
        // A process whose membarrier calls fail cannot make a light-fenced publisher see that it
        // sleeps (`sync::heavy_fence`): it sleeps in short slices instead, so such a lost wake-up
        // costs at most one slice.
        let timeout = if crate::sync::heavy_fences_failed() {
            timeout.min(UNFENCED_SLICE)
        } else {
            timeout
        };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `word` is a valid, aligned 32-bit atomic that stays mapped for the call; the
        // kernel only reads it. FUTEX_WAIT (not _PRIVATE) because the word is in shared memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                &ts as *const libc::timespec,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
    #[cfg(loom)]
    {
        let _ = (word, expected, timeout);
        loom::thread::yield_now();
    }
}

/// Wakes up to `count` processes sleeping on `word`.
///
/// Not part of the API: public for `shmline bench`, as [`futex_wait`].
#[doc(hidden)]
pub fn futex_wake(word: &AtomicU32, count: i32) {
    #[cfg(not(loom))]
    // SAFETY: `word` is a valid, aligned 32-bit atomic; FUTEX_WAKE does not access its value.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
    #[cfg(loom)]
    let _ = (word, count);
}

/// Nanoseconds of CLOCK_MONOTONIC: the frame timestamp clock, comparable across the processes of
/// one boot (Python: `time.monotonic_ns()`, C: `clock_gettime(CLOCK_MONOTONIC)`).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The writer's clock for frame timestamps: `CLOCK_MONOTONIC` nanoseconds, as [`monotonic_ns`],
/// for about a third of the cost per frame where the CPU's time-stamp counter allows it.
///
/// `clock_gettime` costs ~25 ns even through the vDSO (it reads the TSC *and* the kernel's
/// conversion data, with a retry loop), a third of what a 64-byte frame costs altogether. When
/// the kernel's own clock source is the TSC and the CPU says the TSC is invariant (`constant_tsc`
/// and `nonstop_tsc`), this clock reads `clock_gettime` at most once per millisecond and, in
/// between, extends it with the TSC (`rdtsc`, ~10 ns) at a rate measured between two such reads
/// at least a millisecond apart. The result stays within a microsecond or so of `CLOCK_MONOTONIC`
/// (the kernel itself converts the same counter; NTP slews its rate by at most 500 ppm) and never
/// goes backwards. Elsewhere it is `clock_gettime` on every call.
#[derive(Debug, Default)]
pub(crate) struct FrameClock {
    /// TSC and `CLOCK_MONOTONIC` at the last `clock_gettime`.
    base_tsc: u64,
    base_ns: u64,
    /// Nanoseconds per TSC tick in 32.32 fixed point; 0 until measured.
    mult: u64,
    /// TSC value after which the next call reads `clock_gettime` again.
    resync_tsc: u64,
    /// The last timestamp handed out (timestamps never go backwards).
    last: u64,
}

/// TSC ticks between two `clock_gettime` reads of a [`FrameClock`] at most (set at the first
/// calibration to about a millisecond); also the least span a rate is measured over.
const FRAME_CLOCK_SYNC_NS: u64 = 1_000_000;

impl FrameClock {
    /// Nanoseconds of `CLOCK_MONOTONIC` now (see the type's documentation).
    #[inline]
    pub(crate) fn now(&mut self) -> u64 {
        let Some(tsc) = read_tsc() else {
            return monotonic_ns();
        };
        if self.mult != 0 && tsc >= self.base_tsc && tsc < self.resync_tsc {
            let ns =
                self.base_ns + (((tsc - self.base_tsc) as u128 * self.mult as u128) >> 32) as u64;
            self.last = self.last.max(ns);
            return self.last;
        }
        self.resync(tsc)
    }

    #[cold]
    fn resync(&mut self, tsc: u64) -> u64 {
        let ns = monotonic_ns();
        let (span_tsc, span_ns) = (
            tsc.wrapping_sub(self.base_tsc),
            ns.wrapping_sub(self.base_ns),
        );
        if self.base_ns != 0 && tsc > self.base_tsc && span_ns >= FRAME_CLOCK_SYNC_NS {
            // A rate measured over at least a millisecond: the TSC read and the clock read are a
            // few nanoseconds apart, a relative error of at most a few 10^-6.
            self.mult = ((span_ns as u128) << 32)
                .checked_div(span_tsc as u128)
                .unwrap_or(0) as u64;
        }
        if self.mult == 0 && self.base_ns != 0 && span_ns < FRAME_CLOCK_SYNC_NS {
            // Not calibrated yet: keep the first base until a millisecond has passed.
            self.last = self.last.max(ns);
            return self.last;
        }
        self.base_tsc = tsc;
        self.base_ns = ns;
        self.resync_tsc = match self.mult {
            0 => tsc,
            mult => tsc.saturating_add(
                ((FRAME_CLOCK_SYNC_NS as u128) << 32)
                    .div_ceil(mult as u128)
                    .min(u64::MAX as u128) as u64,
            ),
        };
        self.last = self.last.max(ns);
        self.last
    }
}

/// The CPU's time-stamp counter, if it can stand in for `CLOCK_MONOTONIC` here (see
/// [`FrameClock`]).
#[inline]
fn read_tsc() -> Option<u64> {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    {
        if tsc_usable() {
            // SAFETY: RDTSC has no memory operands and exists on every x86-64 CPU.
            return Some(unsafe { core::arch::x86_64::_rdtsc() });
        }
    }
    None
}

/// True if the kernel's clock source is the TSC and the CPU's TSC is invariant (checked once).
#[cfg(all(target_arch = "x86_64", not(loom)))]
fn tsc_usable() -> bool {
    static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USABLE.get_or_init(|| {
        let source = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .unwrap_or_default();
        let flags = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("flags"))
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
        source.trim() == "tsc" && has("constant_tsc") && has("nonstop_tsc")
    })
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME).
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_from_c_timeouts() {
        assert!(matches!(Deadline::from_nanos(-1), Deadline::Never));
        assert!(matches!(Deadline::from_nanos(0), Deadline::Now));
        assert!(Deadline::from_nanos(5_000_000_000)
            .remaining(Duration::from_millis(100))
            .is_some());
        assert!(Deadline::Now.remaining(Duration::from_secs(1)).is_none());
    }

    #[test]
    fn futex_wait_returns_at_once_when_the_value_differs() {
        let w = AtomicU32::new(1);
        let t = Instant::now();
        futex_wait(&w, 0, Duration::from_secs(10));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_frame_clock_follows_clock_monotonic_and_never_goes_backwards() {
        let mut clock = FrameClock::default();
        let mut last = 0;
        let started = Instant::now();
        // Long enough to calibrate (a millisecond) and to run on the TSC for a while.
        while started.elapsed() < Duration::from_millis(20) {
            let before = monotonic_ns();
            let t = clock.now();
            let after = monotonic_ns();
            assert!(t >= last, "went backwards: {t} after {last}");
            // Within 50 us of the real clock (the interpolation is within ~1 us; the slack is
            // for a preemption between the reads on a loaded machine).
            assert!(
                t + 50_000 >= before && t <= after + 50_000,
                "{before} <= {t} <= {after}"
            );
            last = t;
        }
    }

    #[test]
    fn wait_strategies_round_trip_through_integers() {
        for s in [
            WaitStrategy::Adaptive,
            WaitStrategy::BusySpin,
            WaitStrategy::Block,
        ] {
            assert_eq!(WaitStrategy::from_u32(s as u32), Some(s));
        }
        assert_eq!(WaitStrategy::from_u32(3), None);
    }
}
