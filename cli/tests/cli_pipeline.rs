//! The `shmline` command line on real pipelines: run, ls, top and clean.
//!
//! Task programs are this test binary re-run as one of the `role_*` ignored tests (see
//! `tests/support/pipeline.rs`).

#[macro_use]
#[path = "../../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use shmline::pipeline::{Pipeline, StreamSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::pipeline::*;
use support::*;

task_roles!(
    role_source,
    role_scale,
    role_sink,
    role_exit,
    role_idle,
    role_doomed_runner,
    role_tagged_source,
    role_forward,
    role_merge_sink,
);

fn shmline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one line of `stdout` that is a JSON document (task output shares stdout).
fn json_line(stdout: &[u8]) -> Value {
    let out = text(stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in:\n{out}"));
    serde_json::from_str(line).unwrap()
}

/// A TOML task table running role `role` of this test binary, its stdout in `<name>.log` next
/// to the manifest.
fn task_toml(name: &str, role: &str, extra: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let args: Vec<String> = role_args(role).iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[tasks.{name}]\ncommand = {:?}\nargs = [{}]\nstdout = \"{name}.log\"\n{extra}\n",
        exe.to_str().unwrap(),
        args.join(", ")
    )
}

/// Writes manifest `body` for pipeline `name` into a fresh directory; returns its path.
fn manifest(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shmline-cli-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, format!("[pipeline]\nname = {name:?}\n\n{body}")).unwrap();
    path
}

fn remove_manifest(path: &Path) {
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// A pipeline whose source writes until stopped into a stream its idle reader never reads.
fn endless_toml() -> String {
    format!(
        "[streams.samples]\nmax_frame_size = 64\n\n{}{}",
        task_toml(
            "source",
            "role_source",
            &format!(
                "env = {{ FRAMES = \"{}\" }}\nwrites = {{ out = \"samples\" }}",
                u64::MAX
            )
        ),
        task_toml("idle", "role_idle", "reads = { input = \"samples\" }")
    )
}

#[test]
fn shmline_run_runs_a_manifest_to_completion_and_summarises_it() {
    let name = unique("run");
    let body = format!(
        "[streams.samples]\nmax_frame_size = 64\ncapacity = 8\n\n[streams.doubled]\nmax_frame_size = 64\n\n{}{}{}",
        task_toml("source", "role_source", "env = { FRAMES = \"5000\" }\nwrites = { out = \"samples\" }"),
        task_toml("scale", "role_scale", "reads = { input = \"samples\" }\nwrites = { out = \"doubled\" }"),
        task_toml("sink", "role_sink", "env = { FRAMES = \"5000\" }\nreads = { input = \"doubled\" }"),
    );
    let path = manifest(&name, &body);
    let out = shmline(&["run", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("pipeline {name:?} finished")),
        "{stderr}"
    );
    for word in ["samples", "doubled", "GB/s", "exit status 0"] {
        assert!(stderr.contains(word), "{word:?} not in:\n{stderr}");
    }
    let sink_log = std::fs::read_to_string(path.with_file_name("sink.log")).unwrap();
    assert!(sink_log.contains("sink verified 5000 frames"), "{sink_log}");
    assert_eq!(segments_of(&name), Vec::<String>::new());

    let out = shmline(&["run", "--json", "--quiet", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = json_line(&out.stdout);
    assert_eq!(summary["outcome"], "finished");
    assert_eq!(summary["streams"][1]["frames"], 5000);
    assert_eq!(summary["tasks"][2]["exit_code"], 0);
    remove_manifest(&path);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn shmline_run_names_a_failing_task_and_exits_1() {
    let name = unique("fail");
    let body = format!(
        "{}{}",
        endless_toml(),
        task_toml("failing", "role_exit", "env = { EXIT_CODE = \"3\" }")
    );
    let path = manifest(&name, &body);
    let out = shmline(&["run", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("task \"failing\""), "{stderr}");
    assert!(stderr.contains("exit status 3"), "{stderr}");
    assert!(stderr.contains("stopped: signal"), "{stderr}");
    remove_manifest(&path);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn shmline_run_refuses_bad_manifests_with_the_place_of_the_problem() {
    let name = unique("bad");
    let path = manifest(&name, "[streams.s]\nmax_frame_size = = 4\n");
    let out = shmline(&["run", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 5"), "{stderr}");
    assert!(stderr.contains("pipeline.toml"), "{stderr}");
    remove_manifest(&path);

    let path = manifest(
        &name,
        &task_toml("t", "role_idle", "reads = { input = \"nowhere\" }"),
    );
    let out = shmline(&["run", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tasks.t.reads.input"), "{stderr}");
    assert!(stderr.contains("\"nowhere\""), "{stderr}");
    remove_manifest(&path);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn shmline_run_runs_two_writer_tasks_into_one_stream_until_both_finish() {
    let name = unique("fanin");
    let body = format!(
        "[streams.merged]\nmax_frame_size = 64\ncapacity = 8\n\n{}{}{}",
        task_toml(
            "a",
            "role_tagged_source",
            "env = { SOURCE = \"0\", FRAMES = \"4000\" }\nwrites = { out = \"merged\" }"
        ),
        task_toml(
            "b",
            "role_tagged_source",
            "env = { SOURCE = \"1\", FRAMES = \"100\" }\nwrites = { out = \"merged\" }"
        ),
        task_toml(
            "sink",
            "role_merge_sink",
            "env = { EXPECT = \"0:4000,1:100\", ORDERED = \"1\" }\nreads = { input = \"merged\" }"
        ),
    );
    let path = manifest(&name, &body);
    let out = shmline(&["run", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("4100"),
        "the summary counts both writers:\n{stderr}"
    );
    let sink_log = std::fs::read_to_string(path.with_file_name("sink.log")).unwrap();
    assert!(sink_log.contains("merge sink verified"), "{sink_log}");
    remove_manifest(&path);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn shmline_run_refuses_bad_group_inputs_and_writer_limits_naming_the_entry() {
    let name = unique("badgroup");
    let body = format!(
        "[streams.s]\nmax_frame_size = 64\nmax_writers = 1\n\n{}{}{}",
        task_toml("w0", "role_idle", "writes = { out = \"s\" }"),
        task_toml("w1", "role_idle", "writes = { out = \"s\" }"),
        task_toml(
            "r",
            "role_idle",
            "reads = { a = { stream = \"s\", group = \"no/slash\" }, b = \"s\" }"
        ),
    );
    let path = manifest(&name, &body);
    let out = shmline(&["run", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for entry in [
        "streams.s.max_writers",
        "tasks.r.reads.a.group",
        "tasks.r.reads.b: task \"r\" already reads stream \"s\"",
    ] {
        assert!(stderr.contains(entry), "{entry:?} not in:\n{stderr}");
    }
    remove_manifest(&path);

    let path = manifest(
        &name,
        &task_toml(
            "t",
            "role_idle",
            "reads = { a = { stream = \"s\", team = \"x\" } }",
        ),
    );
    let out = shmline(&["run", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("team"), "{stderr}");
    assert!(stderr.contains("line 8"), "{stderr}");
    remove_manifest(&path);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn shmline_run_shares_a_stream_between_a_group_of_workers_and_merges_their_output() {
    let name = unique("groupcli");
    let group = "reads = { input = { stream = \"samples\", group = \"workers\" } }\nwrites = { out = \"merged\" }";
    let body = format!(
        "[streams.samples]\nmax_frame_size = 64\ncapacity = 8\n\n[streams.merged]\nmax_frame_size = 64\n\n{}{}{}{}",
        task_toml(
            "source",
            "role_tagged_source",
            "env = { FRAMES = \"5000\" }\nwrites = { out = \"samples\" }"
        ),
        task_toml("w0", "role_forward", group),
        task_toml("w1", "role_forward", group),
        task_toml(
            "sink",
            "role_merge_sink",
            "env = { EXPECT = \"0:5000\" }\nreads = { input = \"merged\" }"
        ),
    );
    let path = manifest(&name, &body);
    let out = shmline(&["run", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let forwarded: u64 = ["w0.log", "w1.log"]
        .iter()
        .map(|log| {
            let text = std::fs::read_to_string(path.with_file_name(log)).unwrap();
            let line = text.lines().find(|l| l.starts_with("forwarded")).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(forwarded, 5000, "the workers shared the frames, each once");
    remove_manifest(&path);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn sigint_to_shmline_run_stops_every_task_and_removes_every_segment() {
    signal_stops_shmline_run_cleanly(libc::SIGINT, "sigint");
}

#[test]
fn sighup_to_shmline_run_as_when_its_terminal_closes_stops_every_task_and_removes_every_segment() {
    signal_stops_shmline_run_cleanly(libc::SIGHUP, "sighup");
}

/// Sends `sig` to a running `shmline run` and checks it stops every task, removes every segment
/// and exits with 128 + `sig`.
fn signal_stops_shmline_run_cleanly(sig: libc::c_int, label: &str) {
    let name = unique(label);
    let path = manifest(&name, &endless_toml());
    let child = Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(["run", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let registry = wait_until_running(&name);
    let tasks: Vec<_> = (0..2)
        .map(|i| registry.task_status(i).unwrap().process.unwrap())
        .collect();
    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + sig), "{stderr}");
    assert!(stderr.contains("stopping pipeline"), "{stderr}");
    assert!(
        stderr.contains(&format!("was stopped by signal {sig}")),
        "{stderr}"
    );
    for task in tasks {
        assert!(!task.is_alive(), "task pid {} survived", task.pid);
    }
    remove_manifest(&path);
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn top_shows_a_reader_group_its_members_and_every_writer_task_of_a_shared_stream() {
    let name = unique("topgroup");
    // Two idle members of group "workers" hold the source back; both write "merged".
    let member = || {
        role("role_idle")
            .reads_group("input", "samples", "workers")
            .writes("out", "merged")
    };
    let run = Pipeline::new(&name)
        .stream("samples", StreamSpec::bytes(FRAME as u32).capacity(8))
        .stream("merged", StreamSpec::bytes(FRAME as u32))
        .task(
            "source",
            role("role_source")
                .env("FRAMES", u64::MAX.to_string())
                .writes("out", "samples"),
        )
        .task("w0", member())
        .task("w1", member())
        .task("sink", role("role_idle").reads("input", "merged"))
        .start()
        .unwrap();
    wait_until_running(&name);
    let samples = shmline::Stream::open(&format!("{name}.samples")).unwrap();
    wait_until("the source to fill the ring", || {
        samples.stats().groups.first().is_some_and(|g| g.lag == 8)
    });

    let out = shmline(&["top", &name, "--once", "--json", "--interval", "0.05"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let view = json_line(&out.stdout);
    let streams = &view["pipelines"][0]["streams"];
    let (samples_view, merged) = (&streams[0], &streams[1]);
    let groups = samples_view["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{samples_view}");
    assert_eq!(groups[0]["name"], "workers");
    assert_eq!(groups[0]["members"], 2);
    assert_eq!(groups[0]["next"], 0, "nobody took a frame");
    assert_eq!(groups[0]["lag"], 8);
    assert_eq!(groups[0]["redelivered"], 0);
    let mut members: Vec<(String, Value)> = samples_view["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["task"].as_str().unwrap().to_owned(), r["group"].clone()))
        .collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        members,
        [
            ("w0".to_owned(), json!("workers")),
            ("w1".to_owned(), json!("workers"))
        ]
    );
    assert_eq!(merged["writer_tasks"], json!(["w0", "w1"]));
    assert_eq!(
        merged["writers"].as_array().map(Vec::len),
        Some(2),
        "{merged}"
    );

    let out = shmline(&["top", &name, "--once", "--interval", "0.05"]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(table.contains("w0@workers:"), "{table}");
    assert!(table.contains("w0 w1 (active, 2/2 writers)"), "{table}");
    let header = table.lines().find(|l| l.trim_start().starts_with("GROUP"));
    assert!(
        header.is_some_and(|h| h.contains("MEMBERS") && h.contains("REDELIVERED")),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("workers"))
        .expect("a row for the group");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["workers", "samples", "2", "0", "8", "0"], "{table}");

    drop(samples);
    run.stop();
    run.wait();
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn top_and_ls_describe_a_running_pipeline() {
    let name = unique("top");
    let run = endless_pipeline(&name);
    wait_until_running(&name);
    let samples = shmline::Stream::open(&format!("{name}.samples")).unwrap();
    wait_until("the source to write", || samples.stats().frames_written > 0);

    let out = shmline(&["top", &name, "--once", "--json", "--interval", "0.2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let view = json_line(&out.stdout);
    let pipeline = &view["pipelines"][0];
    assert_eq!(pipeline["name"], name.as_str());
    assert_eq!(pipeline["state"], "running");
    assert_eq!(pipeline["runner_pid"], std::process::id());
    let stream = &pipeline["streams"][0];
    assert_eq!(stream["name"], "samples");
    assert_eq!(stream["writer_tasks"], json!(["source"]));
    assert_eq!(stream["readers"][0]["task"], "idle");
    assert_eq!(stream["readers"][0]["group"], Value::Null);
    assert_eq!(stream["groups"], json!([]));
    assert!(stream["fill"].as_f64().unwrap() > 0.0, "{stream}");
    assert!(stream["frames_per_s"].is_number(), "{stream}");
    assert_eq!(stream["backpressure"], "block", "{stream}");
    assert_eq!(stream["frames_dropped"], 0, "{stream}");
    assert_eq!(stream["readers"][0]["missed"], 0, "{stream}");
    let tasks = pipeline["tasks"].as_array().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["source", "idle"]);
    for task in tasks {
        assert_eq!(task["state"], "running", "{task}");
        assert!(task["pid"].is_u64(), "{task}");
        assert!(task["rss_bytes"].as_u64().unwrap() > 0, "{task}");
        assert!(task["cpu_percent"].is_number(), "{task}");
    }

    let out = shmline(&["top", &name, "--once", "--interval", "0.05"]);
    let table = text(&out.stdout);
    assert!(
        table.contains("samples") && table.contains("idle:") && table.contains("DROPPED"),
        "{table}"
    );

    let out = shmline(&["ls", "--json"]);
    let listing = json_line(&out.stdout);
    let find = |key: &str, segment: &str| {
        listing[key]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == segment)
            .cloned()
            .unwrap_or_else(|| panic!("{segment} not in {listing}"))
    };
    let p = find("pipelines", &name);
    assert_eq!(
        (p["alive"].clone(), p["tasks"].clone()),
        (true.into(), 2.into())
    );
    let s = find("streams", &format!("{name}.samples"));
    assert_eq!(s["owner_pid"], std::process::id());
    assert_eq!(s["writer"], "active");
    assert_eq!(find("events", &format!("{name}.__stop"))["alive"], true);
    let table = text(&shmline(&["ls"]).stdout);
    assert!(table.contains(&format!("{name}.samples")), "{table}");

    run.stop();
    run.wait();
    assert_eq!(segments_of(&name), Vec::<String>::new());
    let out = shmline(&["top", &name, "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no pipeline named"));
}

#[test]
fn clean_removes_a_dead_pipelines_segments_and_keeps_a_live_ones() {
    let base = unique("clean");
    let dead = format!("{base}-dead");
    let live = format!("{base}-live");
    leave_a_dead_pipeline(&dead);
    let dead_segments = segments_of(&dead);
    assert_eq!(dead_segments.len(), 4, "{dead_segments:?}");
    let run = endless_pipeline(&live);
    wait_until_running(&live);
    let live_segments = segments_of(&live);

    let out = shmline(&["clean", "--dry-run", "--json", &base]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = json_line(&out.stdout);
    let files = |key: &str| -> Vec<String> {
        let mut v: Vec<String> = report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["segment"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(files("removed"), dead_segments);
    assert_eq!(files("kept"), live_segments);
    assert_eq!(
        segments_of(&dead),
        dead_segments,
        "a dry run removes nothing"
    );

    let out = shmline(&["clean", &base]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("removed 4 segments"), "{said}");
    assert_eq!(segments_of(&dead), Vec::<String>::new());
    assert_eq!(segments_of(&live), live_segments);

    run.stop();
    run.wait();
    assert_eq!(segments_of(&base), Vec::<String>::new());
}

#[test]
fn every_command_explains_itself_with_help() {
    for command in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["ls", "--help"],
        vec!["top", "--help"],
        vec!["clean", "--help"],
    ] {
        let out = shmline(&command);
        let help = text(&out.stdout);
        assert!(out.status.success(), "{command:?}");
        assert!(help.contains("Usage: shmline"), "{command:?}: {help}");
    }
    let out = shmline(&["frobnicate"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("frobnicate"));
}

#[test]
fn top_json_of_a_pipeline_that_ends_prints_its_final_state_and_exits_0() {
    use std::io::BufRead;
    let name = unique("top-end");
    let run = endless_pipeline(&name);
    wait_until_running(&name);
    let mut top = Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(["top", &name, "--json", "--interval", "0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(top.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["pipelines"][0]["state"], "running", "{first}");

    run.stop();
    run.wait();
    let rest: Vec<String> = stdout.lines().map(Result::unwrap).collect();
    let out = top.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("has ended"),
        "{}",
        text(&out.stderr)
    );
    let last: Value = serde_json::from_str(rest.last().expect("a final view")).unwrap();
    let pipeline = &last["pipelines"][0];
    assert_eq!(pipeline["name"], name.as_str());
    assert_eq!(pipeline["state"], "stopped", "{last}");
    for task in pipeline["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "exited", "{task}");
    }
    assert_eq!(pipeline["streams"][0]["name"], "samples");
    assert_eq!(segments_of(&name), Vec::<String>::new());
}
