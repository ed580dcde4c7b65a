//! Events shared between real processes.
//!
//! The parent tests re-run this test binary as a child process (`--exact <role> --ignored`) with
//! the event's name in `SHMLINE_EVENT_CHILD`; the role functions are ignored tests that do nothing
//! unless that variable is set.

mod support;

use shmline::{Error, Event, EventMode, EventOptions};
use std::time::{Duration, Instant};
use support::unique;
use support::{thread_cpu_time, RoleProcess};

/// Environment variable carrying the event name to a child role.
const CHILD_ENV: &str = "SHMLINE_EVENT_CHILD";
/// How long any wait for another process may take on a loaded machine before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// Signals sent by the counting test.
const SIGNALS: u32 = 1000;
/// Child processes in the wake-every-waiter test.
const WAITERS: u32 = 3;

fn create(name: &str, mode: EventMode) -> Event {
    let options = EventOptions {
        mode,
        unlink_on_close: true,
        ..Default::default()
    };
    Event::create(name, &options).unwrap()
}

/// Name of the counting event a waiting child sets once it is about to wait on `name`.
fn ready_name(name: &str) -> String {
    format!("{name}.ready")
}

/// Starts this test binary running only the ignored test `role`, on the event `name`.
fn spawn_role(role: &str, name: &str) -> RoleProcess {
    RoleProcess::spawn(role, CHILD_ENV, name)
}

/// The event name given to this process, if it runs as a child role.
fn child_event_name() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

#[test]
#[ignore = "child role, started by a_set_in_another_process_wakes_a_waiter"]
fn child_sets_the_event() {
    let Some(name) = child_event_name() else {
        return;
    };
    Event::open(&name).unwrap().set();
}

#[test]
#[ignore = "child role, started by every_signal_from_another_process_is_taken_exactly_once"]
fn child_signals_the_event_many_times() {
    let Some(name) = child_event_name() else {
        return;
    };
    let event = Event::open(&name).unwrap();
    for _ in 0..SIGNALS {
        event.set();
    }
}

#[test]
#[ignore = "child role, started by a_flag_set_wakes_every_waiting_process"]
fn child_waits_for_the_event() {
    let Some(name) = child_event_name() else {
        return;
    };
    let event = Event::open(&name).unwrap();
    Event::open(&ready_name(&name)).unwrap().set();
    event.wait_timeout(PATIENCE).unwrap();
}

#[test]
fn a_set_in_another_process_wakes_a_waiter() {
    let name = unique("wake");
    let event = create(&name, EventMode::Flag);
    let child = spawn_role("child_sets_the_event", &name);
    event.wait_timeout(PATIENCE).unwrap();
    assert!(event.is_set());
    child.finish();
}

#[test]
fn every_signal_from_another_process_is_taken_exactly_once() {
    let name = unique("count");
    let event = create(&name, EventMode::Counting);
    let child = spawn_role("child_signals_the_event_many_times", &name);
    for taken in 0..SIGNALS {
        event
            .wait_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("wait for signal {taken} failed: {e}"));
    }
    child.finish();
    assert!(matches!(event.try_wait(), Err(Error::Empty)));
    assert_eq!(event.count(), 0);
}

#[test]
fn a_flag_set_wakes_every_waiting_process() {
    let name = unique("all");
    let event = create(&name, EventMode::Flag);
    let ready = create(&ready_name(&name), EventMode::Counting);
    let children: Vec<RoleProcess> = (0..WAITERS)
        .map(|_| spawn_role("child_waits_for_the_event", &name))
        .collect();
    for _ in 0..WAITERS {
        ready.wait_timeout(PATIENCE).unwrap();
    }
    event.set();
    children.into_iter().for_each(RoleProcess::finish);
}

#[test]
fn a_waiter_blocked_for_a_second_uses_almost_no_cpu() {
    let event = create(&unique("idle"), EventMode::Flag);
    let timeout = Duration::from_secs(1);
    // Measured on a thread of its own so that tests running in parallel are not counted.
    let (outcome, elapsed, cpu) = std::thread::scope(|s| {
        s.spawn(|| {
            let cpu_before = thread_cpu_time();
            let started = Instant::now();
            let outcome = event.wait_timeout(timeout);
            (outcome, started.elapsed(), thread_cpu_time() - cpu_before)
        })
        .join()
        .unwrap()
    });
    assert!(matches!(outcome, Err(Error::Timeout)), "{outcome:?}");
    assert!(elapsed >= timeout);
    assert!(
        cpu < Duration::from_millis(500),
        "waiting {elapsed:?} used {cpu:?} of CPU"
    );
}

#[test]
fn an_event_is_listed_by_name_while_it_exists() {
    let name = unique("listed");
    let event = create(&name, EventMode::Flag);
    assert!(Event::list().unwrap().contains(&name));
    drop(event);
    assert!(!Event::list().unwrap().contains(&name));
}
