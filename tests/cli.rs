//! The `shmline` command-line tool: its machine-readable output has the promised shape.
//!
//! No timing is asserted: `bench --quick` only proves the two-process bench runs, verifies its
//! frames and reports every case.

use serde_json::Value;
use std::process::Command;

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
        shmline::layout::MAX_CAPACITY
    );
    assert_eq!(
        info["limits"]["max_frame_size"],
        shmline::layout::MAX_FRAME_SIZE
    );
    assert_eq!(info["limits"]["max_readers"], shmline::layout::MAX_READERS);
    assert_eq!(
        info["limits"]["max_segment_size"],
        shmline::layout::MAX_SEGMENT_SIZE
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
            "shmline_version",
            "machine",
            "settings",
            "pinning",
            "memcpy",
            "throughput",
            "latency",
            "futex_baseline",
            "errors",
        ],
        "bench report",
    );
    assert_eq!(report["errors"], Value::Array(Vec::new()), "{report:#}");

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
            ],
            "throughput case",
        );
        assert!(case["frames_verified"].as_u64().unwrap() > 0, "{case:#}");
        assert_eq!(case["frames_verified"], case["frames_sent"], "{case:#}");
    }

    let waits: Vec<&str> = report["latency"]
        .as_array()
        .expect("latency is a list")
        .iter()
        .filter_map(|c| c["wait"].as_str())
        .collect();
    assert_eq!(waits, ["busy-spin", "block"]);
    for case in report["latency"].as_array().unwrap() {
        assert_keys(&case["one_way_ns"], &["p50", "p99", "p999"], "latency case");
        assert!(case["samples"].as_u64().unwrap() > 0, "{case:#}");
    }
    assert_keys(
        &report["futex_baseline"]["one_way_ns"],
        &["p50", "p99", "p999"],
        "futex baseline",
    );
    assert_eq!(report["memcpy"].as_array().map(Vec::len), Some(4));
}

#[test]
fn every_command_explains_itself_with_help() {
    let cases: [(&[&str], &str); 3] = [
        (&["--help"], "bench"),
        (&["info", "--help"], "layout version"),
        (&["bench", "--help"], "zero-copy"),
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
