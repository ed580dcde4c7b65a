//! The bridge across a real link: two network namespaces (made with `unshare -rn`, no privilege
//! needed) joined by a veth pair. Every frame crosses checked; then the link is taken down and
//! brought back up mid-stream and the stream resumes with no gap and no duplicate.
//!
//! The outer test re-runs this binary inside a new user and network namespace, where the inner
//! test is root: it makes the pair, moves one end into a second network namespace (held by a
//! `sleep` process), runs the exporter here and the importer there (`nsenter`), and writes and
//! reads the streams itself (/dev/shm is shared: only the network is separate). Skipped, with a
//! message, where user namespaces are refused.

mod support;

use shmline::__private::Deadline;
use shmline::{Error, ReaderOptions};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// Zenoh's lease shortened to 1 s so that the 3 s outage closes its link (which then reconnects),
/// rather than TCP riding it out.
const ZENOH_LEASE: &str = "transport/link/tx/lease=1000";

fn sh(cmd: &str) -> Result<(), String> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{cmd}` failed: {status}"))
    }
}

#[test]
fn frames_cross_a_veth_link_between_namespaces_and_survive_it_going_down_and_up() {
    let probe = Command::new("unshare")
        .args([
            "-rn", "ip", "link", "add", "t0", "type", "veth", "peer", "name", "t1",
        ])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: this machine refuses `unshare -rn` with a veth pair");
        return;
    }
    let status = Command::new("unshare")
        .arg("-rn")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "inner_namespaces",
            "--nocapture",
            "--test-threads=1",
        ])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the test inside the namespaces failed: {status}"
    );
}

#[test]
#[ignore = "run inside `unshare -rn` by the test above"]
fn inner_namespaces() {
    // Host A is this namespace (10.231.0.1), host B a second one (10.231.0.2) held by `sleep`.
    let mut holder = Command::new("unshare")
        .args(["-n", "sleep", "600"])
        .spawn()
        .unwrap();
    let b = holder.id();
    std::thread::sleep(Duration::from_millis(200)); // `unshare` has exec'd sleep by then
    let setup = format!(
        "ip link set lo up && ip link add va type veth peer name vb && ip link set vb netns {b} && \
         ip addr add 10.231.0.1/24 dev va && ip link set va up && \
         nsenter -t {b} -n sh -c 'ip link set lo up && ip addr add 10.231.0.2/24 dev vb && \
         ip link set vb up'"
    );
    let result = std::panic::catch_unwind(|| {
        sh(&setup).unwrap();
        run_across(b);
    });
    let _ = holder.kill();
    let _ = holder.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn run_across(b: u32) {
    let (src, dst, key) = (unique("ns-src"), unique("ns-dst"), unique("ns"));
    let (count, len) = (20_000u64, 256usize);
    let (stream, _u1) = origin(&src, 256, len as u32);
    let _u2 = Unlink(dst.clone());
    let mut exporter = exporter_on(&src, &key);
    let bridge = env!("CARGO_BIN_EXE_shmline-bridge");
    let mut importer = Bridge::start_program(
        "nsenter",
        &[
            "-t",
            &b.to_string(),
            "-n",
            bridge,
            "import",
            &key,
            &dst,
            "--connect",
            "tcp/10.231.0.1:7447",
            "--lease",
            "60",
            "--window-bytes",
            "65536",
            "--zenoh",
            ZENOH_LEASE,
        ],
    );
    let imported = wait_for_stream(&dst);
    let mut reader = imported.reader(&ReaderOptions::default()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut writer = stream.writer().unwrap();
            for seq in 0..count {
                writer
                    .write_at(&payload(seq, len), flags(seq), stamp(seq), Deadline::Never)
                    .unwrap();
                if seq % 256 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut next = 0;
        loop {
            match reader.read() {
                Ok(frame) => {
                    assert_eq!(frame.info.seq, next, "no gap and no duplicate");
                    assert_eq!(frame.info.timestamp_ns, stamp(next));
                    assert_eq!(frame.info.flags, flags(next));
                    assert!(frame.data == payload(next, len));
                    if next == 5_000 {
                        sh("ip link set va down").unwrap();
                        std::thread::sleep(Duration::from_secs(3));
                        sh("ip link set va up").unwrap();
                    }
                    next += 1;
                }
                Err(Error::EndOfStream) => break,
                Err(e) => panic!("after frame {next}: {e}"),
            }
        }
        assert_eq!(next, count, "every frame crossed once");
    });
    assert_eq!(exporter.wait(), 0);
    assert_eq!(importer.wait(), 0);
}

/// An exporter listening on host A's veth address.
fn exporter_on(stream: &str, key: &str) -> Bridge {
    Bridge::start(&[
        "export",
        stream,
        "--key",
        key,
        "--listen",
        "tcp/10.231.0.1:7447",
        "--zenoh",
        ZENOH_LEASE,
    ])
}
