//! The bench's second process: how the parent starts it, and what it does when started.
//!
//! The parent runs `shmline __bench-child --role ROLE ...` (the same executable) and reads one
//! JSON object from the child's stdout when it exits; the child's stderr goes to the terminal.

use super::latency::PingPong;
use super::{
    fan, ideal, latency, neighbour, parse_wait, platform, throughput, WaitStrategy, ATTACH_TIMEOUT,
};
use serde_json::{json, Value};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// What the child process does.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read `--stream` with `read_into` and verify every frame.
    ReadCopy,
    /// Read `--stream` with `read_batch` and verify every frame.
    ReadBatch,
    /// Read `--stream` with `acquire`/`release`, summing and verifying every frame.
    ReadZeroCopy,
    /// Read `--stream` and write every frame back on `--reply`.
    Echo,
    /// Answer a bare `--ping-pong` on the shared memory file descriptor `--fd`.
    PingPongEcho,
    /// Read the ideal ring on the shared memory file descriptor `--fd` and verify every frame.
    ReadIdeal,
    /// Write stamped frames to the multi-writer `--stream` as writer `--writer-id` of
    /// `--writers`, once all of them attached.
    WriteFan,
    /// Read `--stream` (as a member of `--group`, if given) and verify every writer's frames.
    ReadFan,
    /// Keep one CPU busy until told to stop on the shared memory file descriptor `--fd`.
    Neighbour,
}

/// Options of `shmline __bench-child`, the second process of `shmline bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChildArgs {
    /// What to do.
    #[arg(long, value_enum)]
    pub role: Role,
    /// The stream to read.
    #[arg(long)]
    pub stream: Option<String>,
    /// The stream to write replies on (echo).
    #[arg(long)]
    pub reply: Option<String>,
    /// Inherited file descriptor of the shared memory (ping-pong-echo, read-ideal).
    #[arg(long)]
    pub fd: Option<i32>,
    /// Slots of the ideal ring (read-ideal).
    #[arg(long)]
    pub capacity: Option<u32>,
    /// Which bare ping-pong to answer (ping-pong-echo).
    #[arg(long, value_enum)]
    pub ping_pong: Option<PingPong>,
    /// Frame size the writer sends.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Frames per read_batch call.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Frames to read before the throughput clock starts.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// How to wait for frames.
    #[arg(long, value_parser = parse_wait, default_value = "adaptive")]
    pub wait: WaitStrategy,
    /// CPU to pin this process to.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// CPUs this process may run on when it is not pinned (the parent's own list before it pinned
    /// itself, which a child would otherwise inherit).
    #[arg(long, value_delimiter = ',', conflicts_with = "cpu")]
    pub cpus: Vec<usize>,
    /// Process id of the bench that started this child: the child dies with it.
    #[arg(long)]
    pub parent: Option<u32>,
    /// Writers of the stream (write-fan, read-fan).
    #[arg(long, default_value_t = 1)]
    pub writers: u32,
    /// This writer's number, 0 to `--writers` - 1 (write-fan).
    #[arg(long, default_value_t = 0)]
    pub writer_id: u32,
    /// The reader group to join (read-fan).
    #[arg(long)]
    pub group: Option<String>,
    /// Frames to write (write-fan).
    #[arg(long, conflicts_with = "seconds")]
    pub frames: Option<u64>,
    /// Seconds to write for (write-fan).
    #[arg(long)]
    pub seconds: Option<f64>,
}

impl ChildArgs {
    /// Arguments for a child that plays `role`, to be completed by the caller.
    pub fn new(role: Role, cpu: Option<usize>) -> ChildArgs {
        ChildArgs {
            role,
            stream: None,
            reply: None,
            fd: None,
            capacity: None,
            ping_pong: None,
            size: 64,
            batch: 1,
            warmup: 0,
            wait: WaitStrategy::Adaptive,
            cpu,
            cpus: Vec::new(),
            parent: Some(std::process::id()),
            writers: 1,
            writer_id: 0,
            group: None,
            frames: None,
            seconds: None,
        }
    }

    fn to_argv(&self) -> Vec<String> {
        let role = clap::ValueEnum::to_possible_value(&self.role)
            .expect("every role has a name")
            .get_name()
            .to_owned();
        let mut argv = vec![
            "__bench-child".to_owned(),
            "--role".into(),
            role,
            "--size".into(),
            self.size.to_string(),
            "--batch".into(),
            self.batch.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
            "--wait".into(),
            self.wait.name().to_owned(),
            "--writers".into(),
            self.writers.to_string(),
            "--writer-id".into(),
            self.writer_id.to_string(),
        ];
        let optional = [
            ("--stream", self.stream.clone()),
            ("--reply", self.reply.clone()),
            ("--fd", self.fd.map(|fd| fd.to_string())),
            ("--capacity", self.capacity.map(|c| c.to_string())),
            (
                "--ping-pong",
                self.ping_pong.and_then(|p| {
                    clap::ValueEnum::to_possible_value(&p).map(|v| v.get_name().to_owned())
                }),
            ),
            ("--cpu", self.cpu.map(|c| c.to_string())),
            (
                "--cpus",
                (self.cpu.is_none() && !self.cpus.is_empty()).then(|| {
                    let cpus: Vec<String> = self.cpus.iter().map(usize::to_string).collect();
                    cpus.join(",")
                }),
            ),
            ("--parent", self.parent.map(|p| p.to_string())),
            ("--group", self.group.clone()),
            ("--frames", self.frames.map(|n| n.to_string())),
            ("--seconds", self.seconds.map(|s| s.to_string())),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                argv.push(flag.into());
                argv.push(value);
            }
        }
        argv
    }
}

/// Runs the child role and prints its result as one JSON line.
pub fn run_child(args: &ChildArgs) -> ExitCode {
    if let Some(parent) = args.parent {
        die_with(parent);
    }
    let pin_error = match (args.cpu, args.cpus.is_empty()) {
        (Some(cpu), _) => platform::pin_to(cpu).err(),
        (None, false) => platform::allow_cpus(&args.cpus).err(),
        (None, true) => None,
    };
    let result = match args.role {
        Role::ReadCopy | Role::ReadBatch | Role::ReadZeroCopy => throughput::read_side(args),
        Role::Echo => latency::echo(args),
        Role::PingPongEcho => latency::ping_pong_echo(args),
        Role::ReadIdeal => ideal::read_side(args),
        Role::WriteFan => fan::write_side(args),
        Role::ReadFan => fan::read_side(args),
        Role::Neighbour => neighbour::neighbour_side(args),
    };
    let (mut out, code) = match result {
        Ok(value) => (value, ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("shmline bench child ({:?}): {e}", args.role);
            (json!({ "fatal": e }), ExitCode::FAILURE)
        }
    };
    out["pin_error"] = json!(pin_error);
    println!("{out}");
    code
}

/// Makes the kernel kill this process when `parent` (the bench) ends, however it ends (a
/// SIGKILL too, which runs no destructor): a child that polls shared memory, or the neighbour,
/// would otherwise spin for ever once its bench is gone.
fn die_with(parent: u32) {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // The bench may have ended before the call above: then this process already has another
    // parent, and no signal will come.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } as u32 != parent {
        eprintln!("shmline bench child: the bench (pid {parent}) has ended; exiting");
        std::process::exit(1);
    }
}

/// A running child process. Killed if dropped before [`ChildProcess::finish`].
pub struct ChildProcess {
    child: Option<Child>,
}

impl ChildProcess {
    /// Starts this executable as a child with `args`.
    pub fn spawn(args: &ChildArgs) -> Result<ChildProcess, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("finding this executable to start the reader: {e}"))?;
        let child = Command::new(&exe)
            .args(args.to_argv())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", exe.display()))?;
        Ok(ChildProcess { child: Some(child) })
    }

    /// Polls `ready` until it returns true; fails if the child exits first or takes too long.
    pub fn wait_until(
        &mut self,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let started = Instant::now();
        let child = self.child.as_mut().expect("running");
        loop {
            if ready() {
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Its last line says why, when it could say it.
                let mut out = String::new();
                if let Some(stdout) = child.stdout.as_mut() {
                    let _ = std::io::Read::read_to_string(stdout, &mut out);
                }
                let reason = out
                    .lines()
                    .last()
                    .and_then(|line| serde_json::from_str::<Value>(line).ok())
                    .and_then(|v| v["fatal"].as_str().map(|f| format!(": {f}")))
                    .unwrap_or_default();
                return Err(format!(
                    "the child process exited ({status}) before {what}{reason}"
                ));
            }
            if started.elapsed() > ATTACH_TIMEOUT {
                return Err(format!(
                    "timed out after {ATTACH_TIMEOUT:?} waiting until {what}"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the child to exit and returns the JSON object it printed.
    pub fn finish(mut self) -> Result<Value, String> {
        let child = self.child.take().expect("running");
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for the child process: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let value: Value = text
            .lines()
            .last()
            .and_then(|line| serde_json::from_str(line).ok())
            .ok_or_else(|| {
                format!(
                    "the child process ({}) printed no result: {text:?}",
                    out.status
                )
            })?;
        if let Some(fatal) = value["fatal"].as_str() {
            return Err(format!("child process: {fatal}"));
        }
        if !out.status.success() {
            return Err(format!("the child process failed ({})", out.status));
        }
        Ok(value)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
