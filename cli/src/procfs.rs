//! What `/proc` says about a process: CPU time and resident memory.

/// CPU time (user + system) of `pid`, in clock ticks (see [`ticks_per_second`]).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (the command) is parenthesised and may hold spaces: count fields after the last ')'.
    let mut fields = text[text.rfind(')')? + 1..].split_ascii_whitespace();
    // After ')': field 3 is the state; utime is field 14 and stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of `pid` in bytes (`VmRSS` in `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Clock ticks per second of the CPU times in `/proc`.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time_and_resident_memory() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_some());
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(cpu_ticks(0).is_none());
    }
}
