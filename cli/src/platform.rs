//! Facts about the machine and CPU pinning, shared by `info` and `bench`.

use serde::Serialize;

/// The CPU model name from `/proc/cpuinfo`, or "unknown".
pub fn cpu_model() -> String {
    use procfs::Current;
    procfs::CpuInfo::current()
        .ok()
        .and_then(|info| info.model_name(0).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// The kernel release (`uname -r`), or "unknown".
pub fn kernel_release() -> String {
    // SAFETY: an all-zero `utsname` is valid (arrays of C chars).
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid out-pointer for the duration of the call.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown".into();
    }
    // SAFETY: uname NUL-terminates `release` inside its fixed-size array.
    unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Number of CPUs online.
pub fn cpus_online() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}

/// Size of a memory page in bytes.
pub fn page_size() -> usize {
    procfs::page_size() as usize
}

/// The clock source the kernel reads time from (`tsc` makes `clock_gettime` a few nanoseconds).
pub fn clocksource() -> String {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPUs this process may run on, in increasing order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the capacity of `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
pub fn pin_to(cpu: usize) -> Result<(), String> {
    allow_cpus(&[cpu])
}

/// Lets the calling thread (and the threads it starts later) run on `cpus` only: one CPU pins
/// it; the machine's whole list undoes a pin the process inherited from its parent.
pub fn allow_cpus(cpus: &[usize]) -> Result<(), String> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(format!("CPU {cpu} is out of range"));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(format!(
            "sched_setaffinity to CPUs {cpus:?}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Facts about this machine, as `info --json` and the bench report show them.
#[derive(Serialize, Debug, Clone)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: &'static str,
    /// CPU architecture (`x86_64`, `aarch64`).
    pub arch: &'static str,
    /// Kernel release.
    pub kernel: String,
    /// CPU model name.
    pub cpu_model: String,
    /// CPUs online.
    pub cpus_online: usize,
    /// CPUs this process may run on.
    pub cpus_allowed: Vec<usize>,
    /// Memory page size in bytes.
    pub page_size: usize,
    /// The kernel's clock source.
    pub clocksource: String,
}

impl Platform {
    /// Looks at this machine.
    pub fn now() -> Platform {
        Platform {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            kernel: kernel_release(),
            cpu_model: cpu_model(),
            cpus_online: cpus_online(),
            cpus_allowed: allowed_cpus(),
            page_size: page_size(),
            clocksource: clocksource(),
        }
    }
}

/// The machine facts as a JSON value (for the bench report, which embeds them).
pub fn describe() -> serde_json::Value {
    serde_json::to_value(Platform::now()).expect("plain data serialises")
}
