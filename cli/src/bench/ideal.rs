//! The ideal ring: the least a single-producer single-consumer ring between two processes can
//! do, run in the same bench as shmline's cases so that every figure comes with its limit.
//!
//! It has what shmline's copy path must have and nothing more: the same number of slots, each
//! the frame size rounded up to a 64-byte line (no frame header), one copy in and one copy out
//! per frame, a `head` and a `tail` counter on lines of their own, each side keeping a private
//! copy of the other's counter and reloading it only when the ring looks full or empty, one
//! Release store per frame to publish (or release) it. No sleeping, no liveness checks, no
//! timestamps, no statistics. The reader verifies every frame exactly as shmline's copy reader
//! does, so the two cases differ only in the transport.
//!
//! Both sides poll: with `--wait busy_spin` with a CPU pause between polls and nothing else; with
//! the other strategies, 64 polls with a pause (shmline's adaptive waiter makes 512 before it
//! sleeps), then a `sched_yield` before each poll: the ideal ring never sleeps, and a pure
//! busy-poll collapses as soon as a neighbour shares a CPU, where the limit must stay comparable
//! with the case under that load. On an idle machine a yield returns at once.

use super::child::{ChildArgs, ChildProcess, Role};
use super::shared_map::SharedMap;
use super::throughput::{stamp, CaseResult, Stopper, Verifier, Window};
use super::{Amount, Plan, WaitStrategy};
use serde_json::Value;
use shmline::FrameInfo;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Offsets in the mapping: the writer's counter, the reader's, "the writer is done", "the reader
/// has started", each on a 128-byte line of its own (two lines: the adjacent-line prefetcher),
/// then the slots from the first page boundary.
const HEAD: usize = 0;
const TAIL: usize = 128;
const DONE: usize = 256;
const READY: usize = 384;
const SLOTS: usize = 4096;

/// Bytes between two slots for frames of `size` bytes.
fn stride(size: usize) -> usize {
    size.div_ceil(64) * 64
}

/// Bytes of the mapping for `capacity` slots of `size`-byte frames.
fn map_len(size: usize, capacity: u32) -> usize {
    SLOTS + stride(size) * capacity as usize
}

/// Runs the ideal ring for `size`-byte frames with the plan's slot count and amount: this
/// process writes, the child reads.
pub fn run_case(plan: &Plan, size: usize) -> Result<CaseResult, String> {
    let capacity = plan.capacity_for(size);
    let map = SharedMap::create(map_len(size, capacity))?;
    let mut args = ChildArgs::new(Role::ReadIdeal, plan.child_cpu);
    args.fd = Some(map.fd());
    args.size = size;
    args.capacity = Some(capacity);
    // Two laps, as in shmline's cases.
    args.warmup = 2 * capacity as u64;
    args.wait = plan.wait;
    let mut child = ChildProcess::spawn(&args)?;
    // Acquire: the child's mapping is set up before it says so.
    child.wait_until("the ideal ring's reader started", || {
        map.u32(READY).load(Ordering::Acquire) == 1
    })?;
    let started = Instant::now();
    let sent = write(&map, size, capacity, plan.amount, plan.wait);
    let writer_seconds = started.elapsed().as_secs_f64();
    // Release: a reader that sees DONE sees the last head.
    map.u32(DONE).store(1, Ordering::Release);
    let out = child.finish()?;
    Ok(CaseResult::from_reader(
        "ideal".into(),
        size,
        capacity,
        plan.wait,
        sent,
        writer_seconds,
        0,
        &out,
    ))
}

/// The writer: stamps each frame in a buffer, copies it into the next slot, publishes it.
fn write(map: &SharedMap, size: usize, capacity: u32, amount: Amount, wait: WaitStrategy) -> u64 {
    let (head_word, tail_word) = (map.u64(HEAD), map.u64(TAIL));
    let stride = stride(size);
    let slots = map.bytes(SLOTS, stride * capacity as usize);
    let (capacity, mask) = (capacity as u64, capacity as u64 - 1);
    let mut frame = vec![0xA5u8; size];
    let mut stop = Stopper::new(amount, size);
    let (mut head, mut tail) = (0u64, 0u64);
    while stop.next(head, 1) > 0 {
        let mut polls = 0;
        while head - tail >= capacity {
            // Acquire: the reader's copy out of the slot happens before we overwrite it.
            tail = tail_word.load(Ordering::Acquire);
            if head - tail >= capacity {
                pause(wait, &mut polls);
            }
        }
        stamp(&mut frame, head);
        // SAFETY: the slot is inside the mapping (index masked, `slots` spans every slot) and
        // the reader is done with it (checked above); `frame` is our own buffer.
        unsafe {
            let slot = slots.add((head & mask) as usize * stride);
            std::ptr::copy_nonoverlapping(frame.as_ptr(), slot, size);
        }
        head += 1;
        // Release: the reader that loads this head sees the payload.
        head_word.store(head, Ordering::Release);
    }
    head
}

/// Polls with a CPU pause hint only before the ideal ring starts yielding (shmline's adaptive
/// waiter made this many before it yielded, up to layout version 4's first release; it now
/// makes 512 and then sleeps, which the ideal ring never does).
const PAUSES: u32 = 64;

/// What a side does between two polls that found nothing: see the module's documentation.
#[inline]
fn pause(wait: WaitStrategy, polls: &mut u32) {
    if wait == WaitStrategy::BusySpin || *polls < PAUSES {
        *polls = polls.saturating_add(1);
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// The child's side: reads until the writer is done and the ring is empty, verifying every
/// frame as shmline's copy reader does.
pub fn read_side(args: &ChildArgs) -> Result<Value, String> {
    let fd = args.fd.ok_or("--fd is required")?;
    let capacity = args.capacity.ok_or("--capacity is required")?;
    let size = args.size;
    let map = SharedMap::map(fd, map_len(size, capacity))?;
    let (head_word, tail_word, done) = (map.u64(HEAD), map.u64(TAIL), map.u32(DONE));
    let stride = stride(size);
    let slots = map.bytes(SLOTS, stride * capacity as usize);
    let mask = capacity as u64 - 1;
    let mut buf = vec![0u8; size];
    let mut verifier = Verifier::new(size);
    let mut window = Window::new(args.warmup);
    // Release: pairs with the parent's Acquire load.
    map.u32(READY).store(1, Ordering::Release);
    let (mut head, mut tail) = (0u64, 0u64);
    let mut polls = 0;
    loop {
        if tail == head {
            // Acquire: the writer's payload stores happen before its head store.
            head = head_word.load(Ordering::Acquire);
            if tail == head {
                // Acquire: DONE is stored after the last head.
                if done.load(Ordering::Acquire) == 1 {
                    head = head_word.load(Ordering::Acquire);
                    if tail == head {
                        break;
                    }
                } else {
                    pause(args.wait, &mut polls);
                }
                continue;
            }
            polls = 0;
        }
        // SAFETY: the slot is inside the mapping (index masked) and published (tail < head);
        // the writer does not touch it until our tail store below.
        unsafe {
            let slot = slots.add((tail & mask) as usize * stride);
            std::ptr::copy_nonoverlapping(slot, buf.as_mut_ptr(), size);
        }
        let info = FrameInfo {
            seq: tail,
            len: size as u32,
            ..FrameInfo::default()
        };
        verifier.check(&info, &buf, None);
        tail += 1;
        // Release: our copy out happens before the writer reuses the slot.
        tail_word.store(tail, Ordering::Release);
        window.observe(verifier.good());
    }
    Ok(verifier.into_json(window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ideal_slots_are_whole_cache_lines_without_a_header() {
        assert_eq!(stride(64), 64);
        assert_eq!(stride(72), 128);
        assert_eq!(map_len(64, 1024), 4096 + 64 * 1024);
    }

    #[test]
    fn a_frame_budget_is_written_in_full_when_the_reader_keeps_up() {
        // One process: a capacity larger than the budget never fills.
        let map = SharedMap::create(map_len(64, 16)).unwrap();
        assert_eq!(
            write(&map, 64, 16, Amount::Frames(10), WaitStrategy::BusySpin),
            10
        );
        assert_eq!(map.u64(HEAD).load(Ordering::Relaxed), 10);
    }
}
