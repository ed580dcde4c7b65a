//! Wait strategies and timeouts, as every blocking call of the C ABI takes them.

use super::{invalid, FfiResult};
use crate::wait::WaitStrategy;

/// Wait strategy: spin a few microseconds, then sleep on a futex. Low latency while busy, about
/// 0% CPU while idle. The default.
pub const SHMLINE_WAIT_ADAPTIVE: u32 = 0;
/// Wait strategy: never sleep, poll continuously. Lowest latency; burns a whole core while
/// waiting.
pub const SHMLINE_WAIT_BUSY_SPIN: u32 = 1;
/// Wait strategy: sleep on a futex at once. Least CPU; adds the operating system's wake-up time to
/// every wait.
pub const SHMLINE_WAIT_BLOCK: u32 = 2;

/// A `timeout_ns` that waits for ever. Any negative value does the same.
///
/// Every blocking call takes `int64_t timeout_ns`: negative waits for ever; `0` never blocks (the
/// call reports `SHMLINE_FULL` or `SHMLINE_EMPTY` at once instead of waiting); a positive value
/// waits at most that many nanoseconds of `CLOCK_MONOTONIC` and then returns `SHMLINE_TIMEOUT`.
/// Waiting sleeps on a futex (no CPU) unless the handle's wait strategy says to spin.
pub const SHMLINE_TIMEOUT_INFINITE: i64 = -1;

/// The wait strategy numbered `value`, or an `INVALID_ARGUMENT` naming the field.
pub(crate) fn strategy(value: u32, field: &str) -> FfiResult<WaitStrategy> {
    WaitStrategy::from_u32(value).ok_or_else(|| {
        invalid(format!(
            "{field} is {value}, not a wait strategy: use SHMLINE_WAIT_ADAPTIVE (0), \
             SHMLINE_WAIT_BUSY_SPIN (1) or SHMLINE_WAIT_BLOCK (2)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_strategy_numbers_are_the_core_numbers() {
        assert_eq!(SHMLINE_WAIT_ADAPTIVE, WaitStrategy::Adaptive as u32);
        assert_eq!(SHMLINE_WAIT_BUSY_SPIN, WaitStrategy::BusySpin as u32);
        assert_eq!(SHMLINE_WAIT_BLOCK, WaitStrategy::Block as u32);
        assert!(strategy(3, "opts.wait").is_err());
    }
}
