//! Helpers of the bridge's tests: unique names, free loopback ports, bridge processes that are
//! killed when the test ends, and frames whose every field can be checked on the far side.

#![allow(dead_code)]

use shmline::{Stream, StreamOptions};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: the machine is small and busy, and a debug Zenoh is slow to start.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A name no other test (or run) uses.
pub fn unique(what: &str) -> String {
    format!("t-bridge-{what}-{}", std::process::id())
}

/// A loopback TCP port free right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().unwrap().port()
}

/// A bridge process, killed (SIGKILL) when dropped.
pub struct Bridge {
    pub child: Child,
    /// What it printed on stderr so far (also echoed to the test's stderr).
    log: Arc<Mutex<String>>,
}

impl Bridge {
    /// Starts `shmline-bridge ARGS...`.
    pub fn start(args: &[&str]) -> Bridge {
        Bridge::start_program(env!("CARGO_BIN_EXE_shmline-bridge"), args)
    }

    /// Starts `PROGRAM ARGS...` (a wrapper such as `nsenter` that runs the bridge).
    pub fn start_program(program: &str, args: &[&str]) -> Bridge {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start shmline-bridge");
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, sink) = (child.stderr.take().unwrap(), Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Bridge { child, log }
    }

    /// Whether it printed `text` on stderr so far.
    pub fn said(&self, text: &str) -> bool {
        self.log.lock().unwrap().contains(text)
    }

    /// Waits for it to exit (up to [`PATIENCE`]); its exit code.
    pub fn wait(&mut self) -> i32 {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(started.elapsed() < PATIENCE, "bridge did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An exporter of `stream` on `key`, listening on loopback `port`.
pub fn exporter(stream: &str, key: &str, port: u16, extra: &[&str]) -> Bridge {
    let listen = format!("tcp/127.0.0.1:{port}");
    let mut args = vec!["export", stream, "--key", key, "--listen", &listen];
    args.extend_from_slice(extra);
    Bridge::start(&args)
}

/// An importer of `key` into `stream`, connecting to loopback `port`.
pub fn importer(key: &str, stream: &str, port: u16, extra: &[&str]) -> Bridge {
    let connect = format!("tcp/127.0.0.1:{port}");
    let mut args = vec!["import", key, stream, "--connect", &connect];
    args.extend_from_slice(extra);
    Bridge::start(&args)
}

/// Removes the stream segment when dropped (created here or by an importer).
pub struct Unlink(pub String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Stream::unlink(&self.0);
    }
}

/// Creates the origin stream.
pub fn origin(name: &str, capacity: u32, max_frame_size: u32) -> (Stream, Unlink) {
    let _ = Stream::unlink(name);
    let options = StreamOptions {
        capacity,
        max_frame_size,
        ..Default::default()
    };
    let stream = Stream::create(name, &options).expect("create the origin stream");
    (stream, Unlink(name.to_owned()))
}

/// Waits for the importer to create (or open) the local stream.
pub fn wait_for_stream(name: &str) -> Stream {
    let started = Instant::now();
    loop {
        if let Ok(stream) = Stream::open(name) {
            return stream;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the importer did not create stream {name}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Payload of frame `seq`: `len` bytes derived from `seq` (at least 8: the number itself).
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[8..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    out
}

/// Timestamp the origin gives frame `seq` (so the far side can check it was kept).
pub fn stamp(seq: u64) -> u64 {
    1_000_000_007 + seq * 13
}

/// Flags the origin gives frame `seq`.
pub fn flags(seq: u64) -> u32 {
    (seq as u32).wrapping_mul(2_654_435_761) | 1
}
