//! The `shmline` command-line tool: its machine-readable output has the promised shape.
//!
//! No timing is asserted: `bench --quick` only proves the two-process bench runs, verifies its
//! frames and reports every case.

#[path = "../../tests/support/mod.rs"]
mod support;

use serde_json::json;
use serde_json::Value;
use shmline::{ReaderOptions, Stream, StreamOptions};
use std::process::{Command, Output};
use support::unique;

/// Runs `shmline ARGS` and returns what it did, whatever its exit status.
fn shmline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(args)
        .output()
        .expect("start shmline")
}

/// Runs `shmline ARGS`, requires success, and parses its stdout as one JSON value.
fn shmline_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(args)
        .output()
        .expect("start shmline");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "shmline {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("shmline {args:?} printed invalid JSON ({e}):\n{stdout}"))
}

fn assert_keys(value: &Value, keys: &[&str], what: &str) {
    for key in keys {
        assert!(
            value.get(key).is_some(),
            "{what} has no key {key:?}: {value:#}"
        );
    }
}

#[test]
fn info_json_reports_versions_features_limits_and_platform() {
    let info = shmline_json(&["info", "--json"]);
    assert_keys(
        &info,
        &[
            "version",
            "layout_version",
            "features",
            "limits",
            "platform",
        ],
        "info",
    );
    assert_eq!(info["version"], shmline::VERSION);
    assert_eq!(info["layout_version"], shmline::LAYOUT_VERSION);
    assert_eq!(info["features"]["checksum"], "crc32c");
    assert_eq!(
        info["limits"]["max_capacity"],
        shmline::__private::layout::MAX_CAPACITY
    );
    assert_eq!(
        info["limits"]["max_frame_size"],
        shmline::__private::layout::MAX_FRAME_SIZE
    );
    assert_eq!(
        info["limits"]["max_readers"],
        shmline::__private::layout::MAX_READERS
    );
    assert_eq!(
        info["limits"]["max_writers"],
        shmline::__private::layout::MAX_WRITERS
    );
    assert_eq!(
        info["limits"]["max_segment_size"],
        shmline::__private::layout::MAX_SEGMENT_SIZE
    );
    assert_keys(
        &info["platform"],
        &["os", "arch", "kernel", "cpu_model"],
        "platform",
    );
}

#[test]
fn a_quick_bench_runs_every_case_between_two_processes_without_errors() {
    let report = shmline_json(&["bench", "--quick", "--json"]);
    assert_keys(
        &report,
        &[
            "schema_version",
            "shmline_version",
            "machine",
            "settings",
            "pinning",
            "memcpy",
            "ideal",
            "throughput",
            "latency",
            "cache_line_ping_pong",
            "futex_ping_pong",
            "errors",
        ],
        "bench report",
    );
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["errors"], Value::Array(Vec::new()), "{report:#}");
    // The limit of every throughput case ran in the same run: one ideal ring per size.
    let ideal = report["ideal"].as_array().expect("ideal is a list");
    assert_eq!(ideal.len(), 4, "{report:#}");
    for case in ideal {
        assert!(case["frames_verified"].as_u64().unwrap() > 0, "{case:#}");
        assert_eq!(case["frames_verified"], case["frames_sent"], "{case:#}");
    }

    let cases = report["throughput"]
        .as_array()
        .expect("throughput is a list");
    let paths: Vec<&str> = cases.iter().filter_map(|c| c["path"].as_str()).collect();
    for path in ["copy", "zero-copy", "batch-32"] {
        assert!(paths.contains(&path), "no {path} case in {paths:?}");
    }
    // Four default sizes on two paths, plus one batch case.
    assert_eq!(cases.len(), 9, "{report:#}");
    for case in cases {
        assert_keys(
            case,
            &[
                "size",
                "capacity",
                "frames_per_s",
                "gb_per_s",
                "memcpy_gb_per_s",
                "ratio_to_memcpy",
                "ideal_frames_per_s",
                "ratio_to_ideal",
            ],
            "throughput case",
        );
        assert!(case["ratio_to_ideal"].is_number(), "{case:#}");
        assert!(case["frames_verified"].as_u64().unwrap() > 0, "{case:#}");
        assert_eq!(case["frames_verified"], case["frames_sent"], "{case:#}");
    }

    let waits: Vec<&str> = report["latency"]
        .as_array()
        .expect("latency is a list")
        .iter()
        .filter_map(|c| c["wait"].as_str())
        .collect();
    assert_eq!(waits, ["busy_spin", "adaptive", "block"]);
    for case in report["latency"].as_array().unwrap() {
        assert_keys(&case["one_way_ns"], &["p50", "p99", "p999"], "latency case");
        assert!(case["samples"].as_u64().unwrap() > 0, "{case:#}");
        // Each against its bare ping-pong of the same run.
        let baseline = if case["wait"] == "block" {
            "futex"
        } else {
            "cache-line"
        };
        assert_eq!(case["baseline"], baseline, "{case:#}");
        assert!(case["ratio_to_baseline"].is_number(), "{case:#}");
        // Busy-spin and adaptive are also compared with the ideal-ring ping-pong of the run.
        let vs_ring = &case["ratio_to_ideal_ring"];
        assert_eq!(vs_ring.is_number(), case["wait"] != "block", "{case:#}");
        assert_eq!(
            case["ideal_ring_p50_ns"].as_u64().is_some(),
            vs_ring.is_number(),
            "{case:#}"
        );
    }
    for baseline in [
        "cache_line_ping_pong",
        "ideal_ring_ping_pong",
        "futex_ping_pong",
    ] {
        assert_keys(
            &report[baseline]["one_way_ns"],
            &["p50", "p99", "p999"],
            baseline,
        );
        assert!(report[baseline]["samples"].as_u64().unwrap() > 0);
    }
    assert_eq!(report["memcpy"].as_array().map(Vec::len), Some(4));
}

#[test]
fn every_command_explains_itself_with_help() {
    let cases: [(&[&str], &str); 6] = [
        (&["--help"], "bench"),
        (&["info", "--help"], "layout version"),
        (&["info", "--help"], "max_writers"),
        (&["bench", "--help"], "zero-copy"),
        (&["bench", "--help"], "--writers"),
        (&["bench", "--help"], "bench shm --message-size"),
    ];
    for (command, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_shmline"))
            .args(command)
            .output()
            .expect("start shmline");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command:?}: {}", out.status);
        assert!(
            text.contains("Usage:") && text.contains(expected),
            "{command:?} printed:\n{text}"
        );
    }
}

#[test]
fn info_of_a_multi_writer_stream_lists_its_live_writers_with_pids_and_the_skipped_frames() {
    let stream = Stream::create(
        &unique("info-mw"),
        &StreamOptions {
            max_frame_size: 16,
            max_writers: 3,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let _reader = stream.reader(&Default::default()).unwrap();
    let mut a = stream.writer().unwrap();
    let mut b = stream.writer().unwrap();
    a.write(b"from a").unwrap();
    drop(b.reserve().unwrap()); // an aborted reservation: its sequence number is skipped
    b.write(b"from b").unwrap();

    let report = shmline_json(&["info", stream.name(), "--json"]);
    assert_keys(
        &report,
        &["name", "info", "stats", "writers", "readers"],
        "info STREAM",
    );
    assert_eq!(report["name"], stream.name());
    assert_eq!(report["info"]["max_writers"], 3);
    assert_eq!(report["stats"]["writer_state"], "active");
    assert_eq!(report["stats"]["frames_skipped"], 1);
    let writers = report["writers"].as_array().expect("writers is a list");
    assert_eq!(writers.len(), 2, "{report:#}");
    for w in writers {
        assert_eq!(w["pid"], std::process::id(), "{report:#}");
        assert_eq!(w["alive"], true);
    }
    assert_eq!(report["readers"].as_array().map(Vec::len), Some(1));

    let out = shmline(&["info", stream.name()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 writers at once (multi-writer)"), "{text}");
    assert!(text.contains("1 skipped"), "{text}");
    assert!(text.contains(&std::process::id().to_string()), "{text}");
}

#[test]
fn info_of_a_missing_stream_fails_naming_it() {
    let name = unique("missing");
    let out = shmline(&["info", &name]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&name), "{stderr}");
}

#[test]
fn bench_with_two_writers_verifies_the_fan_in_case_and_compares_it_with_one_writer() {
    let report = shmline_json(&[
        "bench",
        "--quick",
        "--json",
        "--only",
        "copy,fan-in",
        "--writers",
        "2",
        "--sizes",
        "64",
    ]);
    assert_eq!(report["errors"], Value::Array(Vec::new()), "{report:#}");
    let fan = report["fan"].as_array().expect("fan is a list");
    assert_eq!(fan.len(), 1, "{report:#}");
    let case = &fan[0];
    assert_eq!(case["path"], "fan-in 2->1");
    assert_eq!(case["writers"], 2);
    assert!(case["frames_verified"].as_u64().unwrap() > 0, "{case:#}");
    assert_eq!(case["frames_verified"], case["frames_sent"], "{case:#}");
    assert!(case["ratio_to_single"].is_number(), "{case:#}");
}

#[test]
fn bench_with_a_group_verifies_that_the_members_share_every_frame_once() {
    let report = shmline_json(&[
        "bench",
        "--quick",
        "--json",
        "--only",
        "copy,group",
        "--group",
        "2",
        "--sizes",
        "64",
    ]);
    assert_eq!(report["errors"], Value::Array(Vec::new()), "{report:#}");
    let fan = report["fan"].as_array().expect("fan is a list");
    assert_eq!(fan.len(), 1, "{report:#}");
    let case = &fan[0];
    assert_eq!(case["path"], "group 1->2");
    assert!(case["frames_verified"].as_u64().unwrap() > 0, "{case:#}");
    assert_eq!(case["frames_verified"], case["frames_sent"], "{case:#}");
    let shares = case["frames_per_reader"]
        .as_array()
        .expect("a share per member");
    assert_eq!(shares.len(), 2, "{case:#}");
    let total: u64 = shares.iter().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(json!(total), case["frames_sent"], "{case:#}");
    assert!(case["ratio_to_single"].is_number(), "{case:#}");
}

#[test]
fn bench_accepts_dslines_spelling_and_runs_only_the_copy_case_of_that_size_and_count() {
    let report = shmline_json(&[
        "bench",
        "shm",
        "--message-size",
        "64",
        "--count",
        "2000",
        "--capacity",
        "16",
        "--json",
    ]);
    assert_eq!(report["errors"], Value::Array(Vec::new()), "{report:#}");
    assert_eq!(report["settings"]["frames_per_case"], 2000, "{report:#}");
    let cases = report["throughput"]
        .as_array()
        .expect("throughput is a list");
    assert_eq!(cases.len(), 1, "only the copy case runs: {report:#}");
    let case = &cases[0];
    assert_eq!(case["path"], "copy", "{case:#}");
    assert_eq!(case["size"], 64, "{case:#}");
    assert_eq!(case["capacity"], 16, "{case:#}");
    assert!(case["frames_verified"].as_u64().unwrap() > 0, "{case:#}");
    assert_eq!(case["frames_verified"], case["frames_sent"], "{case:#}");
    assert!(case["frames_per_s"].as_f64().unwrap() > 0.0, "{case:#}");
    assert_eq!(report["latency"], Value::Array(Vec::new()), "{report:#}");
}

#[test]
fn info_of_a_stream_read_by_a_group_lists_the_group_and_each_readers_group() {
    let stream = Stream::create(
        &unique("info-group"),
        &StreamOptions {
            max_frame_size: 16,
            max_groups: 2,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let member = ReaderOptions {
        group: Some("workers".into()),
        ..Default::default()
    };
    let mut first = stream.reader(&member).unwrap();
    let _second = stream.reader(&member).unwrap();
    let _plain = stream.reader(&ReaderOptions::default()).unwrap();
    let mut writer = stream.writer().unwrap();
    for _ in 0..3 {
        writer.write(b"frame").unwrap();
    }
    first.read().unwrap(); // the group hands out frame 0: next 1, two frames left

    let report = shmline_json(&["info", stream.name(), "--json"]);
    assert_keys(
        &report,
        &["name", "info", "stats", "writers", "groups", "readers"],
        "info STREAM",
    );
    assert_eq!(report["info"]["max_groups"], 2);
    assert_eq!(report["stats"]["frames_redelivered"], 0);
    let groups = report["groups"].as_array().expect("groups is a list");
    assert_eq!(groups.len(), 1, "{report:#}");
    let g = &groups[0];
    assert_eq!(
        (
            &g["name"],
            &g["members"],
            &g["next"],
            &g["lag"],
            &g["redelivered"]
        ),
        (
            &json!("workers"),
            &json!(2),
            &json!(1),
            &json!(2),
            &json!(0)
        ),
        "{report:#}"
    );
    let mut of_readers: Vec<Value> = report["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["group"].clone())
        .collect();
    of_readers.sort_by_key(|g| g.to_string());
    assert_eq!(
        of_readers,
        [json!("workers"), json!("workers"), Value::Null]
    );

    let out = shmline(&["info", stream.name()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 reader groups"), "{text}");
    let header = text
        .lines()
        .find(|l| l.contains("GROUP") && l.contains("MEMBERS"));
    assert!(
        header.is_some_and(|h| h.contains("NEXT") && h.contains("REDELIVERED")),
        "{text}"
    );
    let row = text.lines().find(|l| l.trim_start().starts_with("workers"));
    let cells: Vec<&str> = row
        .expect("a row for the group")
        .split_whitespace()
        .collect();
    assert_eq!(cells[..4], ["workers", "2", "1", "2"], "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("READER") && l.contains("GROUP")),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("lossless") && l.contains(" workers "))
            .count(),
        2,
        "each member's row names its group:\n{text}"
    );
}

/// Plants, under shmline names starting with `base`, files that are not finished segments (as any
/// local user can in `/dev/shm`): per kind in `kinds`, empty files and files of foreign bytes,
/// `per_kind` in all. Returns their file names, sorted.
fn plant_junk(base: &str, kinds: &[&str], per_kind: usize) -> Vec<String> {
    let mut files = Vec::new();
    for kind in kinds {
        for i in 0..per_kind {
            let file = format!("shmline.{kind}.{base}-{i}");
            let contents: &[u8] = if i % 2 == 0 {
                b""
            } else {
                b"JUNKJUNK and more junk"
            };
            std::fs::write(format!("/dev/shm/{file}"), contents).unwrap();
            files.push(file);
        }
    }
    files.sort();
    files
}

/// Removes the files [`plant_junk`] planted.
fn remove_junk(files: &[String]) {
    for file in files {
        let _ = std::fs::remove_file(format!("/dev/shm/{file}"));
    }
}

/// The `kind name` pairs of the "unreadable" list of an `ls --json` or `top --json` view whose
/// name starts with `base`, as file names, sorted.
fn unreadable_of(view: &Value, base: &str) -> Vec<String> {
    let mut found: Vec<String> = view["unreadable"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"unreadable\" list in {view:#}"))
        .iter()
        .filter(|u| u["name"].as_str().is_some_and(|n| n.starts_with(base)))
        .map(|u| {
            format!(
                "shmline.{}.{}",
                u["kind"].as_str().unwrap(),
                u["name"].as_str().unwrap()
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn ls_lists_planted_empty_and_foreign_files_as_unreadable_without_waiting_for_them() {
    let base = unique("ls-junk");
    let files = plant_junk(&base, &["stream", "event", "pipeline"], 5);
    let started = std::time::Instant::now();
    let out = shmline(&["ls", "--json"]);
    let elapsed = started.elapsed();
    let text = shmline(&["ls"]);
    remove_junk(&files);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(unreadable_of(&view, &base), files);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("cannot read stream {base}-0: ")),
        "{text}"
    );
    // Each such file used to cost the open's wait for a creator still initialising it (1 to 2 s,
    // 20 s for these 15); looking at them must cost milliseconds.
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "ls with {} planted files took {elapsed:?}",
        files.len()
    );
}

#[test]
fn top_lists_planted_pipeline_files_as_unreadable_without_waiting_for_them() {
    let base = unique("top-junk");
    let files = plant_junk(&base, &["pipeline"], 5);
    let started = std::time::Instant::now();
    let out = shmline(&["top", "--once", "--json", "--interval", "0.05"]);
    let elapsed = started.elapsed();
    let text = shmline(&["top", "--once", "--interval", "0.05"]);
    remove_junk(&files);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let view: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(unreadable_of(&view, &base), files);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("cannot read pipeline {base}-1: ")),
        "{text}"
    );
    // Two looks at 5 files used to cost 10 s.
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "top --once with {} planted files took {elapsed:?}",
        files.len()
    );
}

#[test]
fn info_of_an_empty_stream_file_fails_at_once_saying_it_is_not_a_shmline_stream() {
    let base = unique("info-junk");
    let files = plant_junk(&base, &["stream"], 1);
    let started = std::time::Instant::now();
    let out = shmline(&["info", &format!("{base}-0")]);
    let elapsed = started.elapsed();
    remove_junk(&files);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("too small to be a shmline stream"),
        "{stderr}"
    );
    assert!(
        elapsed < std::time::Duration::from_millis(1500),
        "took {elapsed:?}"
    );
}

/// Runs `shmline ARGS` with its stdout a pipe whose reading end is already closed.
fn shmline_into_closed_pipe(args: &[&str]) -> Output {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fds[0] is the pipe's reading end, ours to close; nobody else uses it.
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is the writing end, open and owned by nothing else: the File takes it.
    let write_end = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
    Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(args)
        .stdout(write_end)
        .output()
        .expect("start shmline")
}

#[test]
fn every_command_ends_quietly_with_status_0_when_its_output_pipe_is_closed() {
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["info"],
        &["info", "--json", "--pretty"],
        &["top", "--json", "--interval", "0.05"],
        &["top", "--interval", "0.05"],
        &["top", "--once", "--interval", "0.05"],
        &["clean", "--dry-run", "t-rel-no-such-prefix"],
        &["completions", "bash"],
        &["man"],
        &["--help"],
    ] {
        let out = shmline_into_closed_pipe(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "shmline {args:?}: {stderr}");
        assert_eq!(stderr, "", "shmline {args:?} said something");
    }
}

#[test]
fn top_refuses_an_interval_that_is_not_a_sensible_number_of_seconds() {
    for bad in ["0", "-1", "NaN", "inf", "1e9", "0.001", "soon"] {
        let out = shmline(&["top", "--once", "--interval", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--interval {bad}: {stderr}");
        assert!(
            stderr.contains("from 0.05 to 3600"),
            "--interval {bad}: {stderr}"
        );
    }
}

#[test]
fn json_outputs_carry_a_schema_version_and_are_compact_unless_pretty() {
    for args in [&["ls", "--json"][..], &["info", "--json"]] {
        let out = shmline(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "{args:?} is one line: {stdout}");
        let value: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(value["schema_version"], 1, "{args:?}");
    }
    let top = shmline_json(&["top", "--once", "--json", "--interval", "0.05"]);
    assert_eq!(top["schema_version"], 1);
    let out = shmline(&["info", "--json", "--pretty"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().count() > 10, "{stdout}");
    let pretty: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pretty["schema_version"], 1);
    let out = shmline(&["info", "--pretty"]);
    assert_eq!(out.status.code(), Some(2), "--pretty needs --json");
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish_know_every_command() {
    for (shell, marker) in [
        ("bash", "complete -F _shmline"),
        ("zsh", "#compdef shmline"),
        ("fish", "complete -c shmline"),
    ] {
        let out = shmline(&["completions", shell]);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["run", "ls", "top", "clean", "info", "bench", "man"] {
            assert!(script.contains(command), "{shell} script lacks {command}");
        }
        assert!(
            script.contains("interval"),
            "{shell} script lacks top's options"
        );
        assert!(
            !script.contains("__bench-child"),
            "{shell}: the internal command is hidden"
        );
    }
    assert_eq!(shmline(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_prints_the_page_of_shmline_or_of_one_command_and_refuses_an_unknown_one() {
    let page = String::from_utf8_lossy(&shmline(&["man"]).stdout).into_owned();
    assert!(
        page.starts_with(".ie") && page.contains(".TH shmline 1"),
        "{page}"
    );
    assert!(page.contains("shmline\\-top(1)"), "{page}");
    let top = String::from_utf8_lossy(&shmline(&["man", "top"]).stdout).into_owned();
    assert!(top.contains(".TH shmline-top 1"), "{top}");
    assert!(top.contains("\\-\\-interval"), "{top}");
    let out = shmline(&["man", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run, ls, top"));
}

/// The manual pages checked in under docs/man/ (installed by cmake) are the ones `shmline man
/// --dir` writes; `SHMLINE_BLESS=1` rewrites them.
#[test]
fn the_manual_pages_in_docs_man_are_the_ones_the_command_generates() {
    let checked_in = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man");
    let fresh = std::env::temp_dir().join(format!("shmline-man-{}", std::process::id()));
    let out = shmline(&["man", "--dir", fresh.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages = |dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut pages: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "1"))
                    .map(|p| {
                        let name = p.file_name().unwrap().to_string_lossy().into_owned();
                        (name, std::fs::read(&p).unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        pages.sort();
        pages
    };
    let generated = pages(&fresh);
    if std::env::var_os("SHMLINE_BLESS").is_some() {
        for (name, _) in pages(&checked_in) {
            std::fs::remove_file(checked_in.join(name)).unwrap();
        }
        std::fs::create_dir_all(&checked_in).unwrap();
        for (name, text) in &generated {
            std::fs::write(checked_in.join(name), text).unwrap();
        }
    }
    std::fs::remove_dir_all(&fresh).unwrap();
    let names = |p: &[(String, Vec<u8>)]| p.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert!(names(&generated).contains(&"shmline-top.1".to_string()));
    assert_eq!(
        pages(&checked_in),
        generated,
        "docs/man is stale ({:?} checked in, {:?} generated): rerun this test with \
         SHMLINE_BLESS=1 to rewrite it",
        names(&pages(&checked_in)),
        names(&generated)
    );
}

#[test]
fn bench_json_is_one_line_and_pretty_json_is_the_same_report_indented() {
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_shmline"))
            .args([
                "bench", "--only", "memcpy", "--sizes", "64", "--quick", format,
            ])
            .output()
            .expect("start shmline");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let compact = run("--json");
    let pretty = run("--pretty");
    assert_eq!(compact.trim_end().lines().count(), 1, "{compact}");
    assert!(pretty.lines().count() > 10, "{pretty}");
    let (a, b): (Value, Value) = (
        serde_json::from_str(&compact).unwrap(),
        serde_json::from_str(&pretty).unwrap(),
    );
    assert_eq!(a["schema_version"], 1);
    assert_eq!(b["schema_version"], 1);
    assert_eq!(a["memcpy"].as_array().map(Vec::len), Some(1));
    assert_eq!(b["memcpy"].as_array().map(Vec::len), Some(1));
    // A section that did not run is there, as null.
    assert_eq!(a["neighbour"], Value::Null, "{a:#}");
}

#[test]
fn bench_runs_repeats_every_case_and_reports_medians_of_figures_and_of_ratios_taken_within_each_run(
) {
    let report = shmline_json(&[
        "bench",
        "--runs",
        "3",
        "--only",
        "copy,latency",
        "--sizes",
        "64",
        "--quick",
        "--json",
    ]);
    assert_eq!(report["errors"], Value::Array(Vec::new()), "{report:#}");
    // This object is run 1; runs 2 and 3 follow, each a whole report of the same shape.
    let later = report["later_runs"].as_array().expect("later_runs");
    assert_eq!(later.len(), 2, "{report:#}");
    for run in later {
        assert_eq!(
            run["throughput"].as_array().map(Vec::len),
            Some(1),
            "{run:#}"
        );
        assert_eq!(run["later_runs"], Value::Array(Vec::new()));
    }
    let medians = &report["medians"];
    assert_eq!(medians["runs"], 3, "{medians:#}");
    let rows = medians["rows"].as_array().expect("rows");
    let row = |case: &str| {
        rows.iter()
            .find(|r| r["case"] == case)
            .unwrap_or_else(|| panic!("no row {case}: {medians:#}"))
    };
    // The copy case: its ratio in each run is that run's own, and the median is the middle one.
    let copy = row("copy");
    assert_eq!(copy["section"], "throughput");
    assert_eq!(copy["ratio_to"], "ideal");
    let runs = std::iter::once(&report).chain(later);
    let own: Vec<f64> = runs
        .map(|r| {
            r["throughput"][0]["ratio_to_ideal"]
                .as_f64()
                .expect("a ratio")
        })
        .collect();
    let per_run: Vec<f64> = copy["ratios_per_run"]
        .as_array()
        .expect("ratios")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect();
    assert_eq!(per_run, own, "{copy:#}");
    let mut sorted = own.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(copy["median_ratio"].as_f64(), Some(sorted[1]), "{copy:#}");
    assert_eq!(copy["per_run"].as_array().map(Vec::len), Some(3));
    // The limits are rows of their own, without a ratio; stream latency is compared with them.
    assert_eq!(row("ideal")["ratio_to"], Value::Null);
    assert_eq!(row("cache-line")["figure"], "one-way p50 ns");
    assert_eq!(row("ideal-ring")["ratio_to"], Value::Null);
    assert_eq!(row("busy_spin")["ratio_to"], "cache-line");
    let vs_ring = rows
        .iter()
        .find(|r| r["case"] == "busy_spin" && r["section"] == "latency vs ring")
        .unwrap_or_else(|| panic!("no busy_spin row against the ideal ring: {medians:#}"));
    assert_eq!(vs_ring["ratio_to"], "ideal-ring");
    assert_eq!(vs_ring["ratios_per_run"].as_array().map(Vec::len), Some(3));
    assert_eq!(row("block")["ratio_to"], "futex");
}

#[test]
fn bench_runs_prints_one_table_of_medians() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args([
            "bench", "--runs", "2", "--only", "copy", "--sizes", "64", "--quick",
        ])
        .output()
        .expect("start shmline");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(text.contains("medians of 2 runs"), "{text}");
    let copy = text
        .lines()
        .find(|l| l.starts_with("copy "))
        .unwrap_or_else(|| panic!("no copy row: {text}"));
    // Its median ratio, what it is to, and the two runs' ratios.
    assert!(copy.contains(" ideal "), "{copy}");
    assert_eq!(
        copy.rsplit("ideal")
            .next()
            .map(|r| r.split_whitespace().count()),
        Some(2)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run 2 of 2"), "{stderr}");
}

#[test]
fn bench_neighbour_runs_each_case_quiet_and_next_to_a_busy_process_and_compares_the_two() {
    let report = shmline_json(&[
        "bench",
        "--neighbour",
        "--only",
        "neighbour",
        "--quick",
        "--json",
    ]);
    assert_eq!(report["errors"], Value::Array(Vec::new()), "{report:#}");
    // Only the section ran.
    assert_eq!(report["throughput"], Value::Array(Vec::new()), "{report:#}");
    assert_eq!(report["latency"], Value::Array(Vec::new()), "{report:#}");
    let section = &report["neighbour"];
    assert_eq!(section["pinned"], false, "{section:#}");
    let tput = section["throughput"].as_array().expect("a throughput list");
    let cases: Vec<(&str, &str)> = tput
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["wait"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cases,
        [
            ("ideal", "adaptive"),
            ("copy", "adaptive"),
            ("copy", "busy_spin")
        ]
    );
    for case in tput {
        assert_keys(
            case,
            &[
                "size",
                "quiet_frames_per_s",
                "frames_per_s",
                "ratio_to_quiet",
                "neighbour_cores",
            ],
            "neighbour throughput case",
        );
        assert_eq!(case["size"], 64, "{case:#}");
        assert!(case["ratio_to_quiet"].is_number(), "{case:#}");
        for run in [&case["quiet"], &case["loaded"]] {
            assert!(run["frames_verified"].as_u64().unwrap() > 0, "{case:#}");
            assert_eq!(run["frames_verified"], run["frames_sent"], "{case:#}");
        }
        assert_eq!(case["frames_per_s"], case["loaded"]["frames_per_s"]);
    }
    // The copy case of the same wait strategy is also compared with the ideal ring under the
    // same neighbour.
    assert!(
        tput[1]["loaded"]["ratio_to_ideal"].is_number(),
        "{:#}",
        tput[1]
    );
    let latency = section["latency"].as_array().expect("a latency list");
    let waits: Vec<&str> = latency
        .iter()
        .map(|c| c["wait"].as_str().unwrap())
        .collect();
    assert_eq!(waits, ["busy_spin", "adaptive"]);
    for case in latency {
        assert_keys(
            case,
            &[
                "quiet_p50_ns",
                "p50_ns",
                "ratio_to_quiet",
                "neighbour_cores",
            ],
            "neighbour latency case",
        );
        assert!(case["quiet"]["samples"].as_u64().unwrap() > 0, "{case:#}");
        assert!(case["loaded"]["samples"].as_u64().unwrap() > 0, "{case:#}");
        assert_eq!(case["p50_ns"], case["loaded"]["one_way_ns"]["p50"]);
    }
}

/// The process ids of the children of `parent` whose command line contains `word`.
fn children_running(parent: u32, word: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command name, which is in parentheses: state, then ppid.
        let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
        let ppid: Option<u32> = after.split(' ').nth(1).and_then(|p| p.parse().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains(word) {
            found.push(pid);
        }
    }
    found
}

/// Whether process `pid` is gone or a zombie (dead, waiting to be reaped by whoever adopted it).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[test]
fn the_neighbour_dies_with_a_bench_that_is_killed_while_it_runs() {
    use std::time::{Duration, Instant};
    let mut bench = Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(["bench", "--only", "neighbour", "--duration", "3", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start shmline bench");
    // The first neighbour starts after the quiet ideal ring (3 s) and runs for 3 s.
    let started = Instant::now();
    let neighbour = loop {
        if let Some(&pid) = children_running(bench.id(), "neighbour").first() {
            break pid;
        }
        if started.elapsed() > Duration::from_secs(60) || bench.try_wait().unwrap().is_some() {
            let _ = bench.kill();
            let _ = bench.wait();
            panic!("the bench never started its neighbour");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // SIGKILL: no destructor of the bench runs; only the kernel can stop the neighbour now.
    bench.kill().unwrap();
    bench.wait().unwrap();
    let killed = Instant::now();
    while !is_dead(neighbour) {
        if killed.elapsed() > Duration::from_secs(30) {
            // Not left spinning after the test, whatever it proved.
            // SAFETY: kill takes a pid and a signal and touches no memory.
            unsafe { libc::kill(neighbour as i32, libc::SIGKILL) };
            panic!("the neighbour (pid {neighbour}) still ran 30 s after its bench was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
