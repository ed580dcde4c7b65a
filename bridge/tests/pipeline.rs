//! Pipelines across hosts: a manifest exports a stream, another imports it, and `shmline run`
//! runs the bridge tasks like any task. Needs the `shmline` command built next to
//! `shmline-bridge` (`cargo build -p shmline-cli`).

mod support;

use shmline::__private::Deadline;
use shmline::pipeline::Task;
use shmline::Error;
use std::path::PathBuf;
use std::process::Command;
use support::*;

const FRAMES: u64 = 5_000;
const LEN: usize = 64;

/// The `shmline` command next to the bridge under test.
fn shmline() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_shmline-bridge")).with_file_name("shmline");
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build -p shmline-cli`",
        path.display()
    );
    path
}

/// A task of this test binary: runs the ignored test `name` in a process of its own.
fn task_command(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    format!(
        "command = {:?}\nargs = [\"--ignored\", \"--exact\", {name:?}, \"--nocapture\", \
         \"--test-threads=1\"]\n",
        exe.display().to_string()
    )
}

#[test]
#[ignore = "a task of two_hosts_run_one_pipeline_each_joined_by_an_exported_stream"]
fn producer_task() {
    let mut task = Task::join().unwrap();
    let mut out = task.writer("out").unwrap();
    for seq in 0..FRAMES {
        out.write_at(&payload(seq, LEN), flags(seq), stamp(seq), Deadline::Never)
            .unwrap();
    }
}

#[test]
#[ignore = "a task of two_hosts_run_one_pipeline_each_joined_by_an_exported_stream"]
fn consumer_task() {
    let mut task = Task::join().unwrap();
    let mut input = task.reader("input").unwrap();
    let mut next = 0;
    loop {
        match input.read() {
            Ok(frame) => {
                assert_eq!(frame.info.seq, next);
                assert_eq!(frame.info.timestamp_ns, stamp(next));
                assert_eq!(frame.info.flags, flags(next));
                assert!(frame.data == payload(next, LEN));
                next += 1;
            }
            Err(Error::EndOfStream) => break,
            Err(e) => panic!("after frame {next}: {e}"),
        }
    }
    assert_eq!(next, FRAMES, "every frame crossed");
}

#[test]
fn two_hosts_run_one_pipeline_each_joined_by_an_exported_stream() {
    let shmline = shmline();
    let (key, port) = (unique("two-hosts"), free_port());
    let dir = std::env::temp_dir().join(unique("two-hosts-manifests"));
    std::fs::create_dir_all(&dir).unwrap();
    let host_a = format!(
        "[pipeline]\nname = {:?}\n\n[streams.samples]\nmax_frame_size = {LEN}\nexport = {key:?}\n\n\
         [tasks.producer]\n{}writes = {{ out = \"samples\" }}\n\n[bridge]\nlisten = [\"tcp/127.0.0.1:{port}\"]\n",
        unique("host-a"),
        task_command("producer_task"),
    );
    let host_b = format!(
        "[pipeline]\nname = {:?}\n\n[streams.samples]\nmax_frame_size = {LEN}\nimport = {key:?}\n\n\
         [tasks.consumer]\n{}reads = {{ input = \"samples\" }}\n\n[bridge]\nconnect = [\"tcp/127.0.0.1:{port}\"]\n",
        unique("host-b"),
        task_command("consumer_task"),
    );
    let (a, b) = (dir.join("a.toml"), dir.join("b.toml"));
    std::fs::write(&a, host_a).unwrap();
    std::fs::write(&b, host_b).unwrap();
    let mut run_b = Command::new(&shmline).arg("run").arg(&b).spawn().unwrap();
    let status_a = Command::new(&shmline).arg("run").arg(&a).status().unwrap();
    let status_b = run_b.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(status_a.success(), "host A's run: {status_a}");
    assert!(status_b.success(), "host B's run: {status_b}");
}
