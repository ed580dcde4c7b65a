//! What a process uses: CPU time and resident memory, as /proc says (read with the procfs crate).

use procfs::process::Process;

/// CPU time (user + system) of `pid`, in clock ticks (see [`ticks_per_second`]); `None` if the
/// process is gone or cannot be read.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()?;
    Some(stat.utime + stat.stime)
}

/// Resident memory of `pid` in bytes (`VmRSS`); `None` if the process is gone, cannot be read,
/// or is a zombie (which has none).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = Process::new(i32::try_from(pid).ok()?).ok()?.status().ok()?;
    Some(status.vmrss? * 1024)
}

/// Clock ticks per second of the CPU times in /proc.
pub fn ticks_per_second() -> f64 {
    procfs::ticks_per_second() as f64
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
        assert!(ticks_per_second() > 0.0);
    }
}
