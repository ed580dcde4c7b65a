//! Pipeline declarations and manifests: parsing, saving, and every validation rule. No process is
//! started here (see `tests/pipeline.rs`).

use shmline::pipeline::{problems, EventSpec, Pipeline, StreamSpec, TaskSpec};
use shmline::{Error, EventMode};
use std::path::PathBuf;
use std::time::Duration;

/// A valid three-stage pipeline: source -> samples -> scale -> doubled -> sink.
fn demo() -> Pipeline {
    Pipeline::new("demo")
        .stream("samples", StreamSpec::array("<f4", &[8]))
        .stream("doubled", StreamSpec::array("<f4", &[8]).capacity(16))
        .event("go", EventSpec::counting())
        .task(
            "source",
            TaskSpec::command("./source")
                .args(["--frames", "10"])
                .env("SEED", "1")
                .writes("out", "samples"),
        )
        .task(
            "scale",
            TaskSpec::command("./scale")
                .reads("input", "samples")
                .writes("out", "doubled")
                .event("go", "go"),
        )
        .task(
            "sink",
            TaskSpec::command("./sink").reads("input", "doubled"),
        )
}

/// The messages of every problem of `pipeline`.
fn messages(pipeline: &Pipeline) -> Vec<String> {
    problems(pipeline).iter().map(ToString::to_string).collect()
}

/// Asserts that exactly one problem is reported, for `entry`, containing every one of `words`.
fn assert_one_problem(pipeline: &Pipeline, entry: &str, words: &[&str]) {
    let found = problems(pipeline);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].entry, entry, "{found:#?}");
    for word in words {
        assert!(
            found[0].message.contains(word),
            "{word:?} not in {}",
            found[0]
        );
    }
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shmline-manifest-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const MANIFEST: &str = r#"
[pipeline]
name = "demo"
join_timeout = 5

[streams.samples]
dtype = "<f4"
shape = [8]

[streams.doubled]
dtype = "<f4"
shape = [8]
capacity = 16

[events.go]
mode = "counting"

[tasks.source]
command = "./source"
args = ["--frames", "10"]
env = { SEED = "1" }
writes = { out = "samples" }

[tasks.scale]
command = "./scale"
reads = { input = "samples" }
writes = { out = "doubled" }
events = { go = "go" }

[tasks.sink]
command = "./sink"
reads = { input = "doubled" }
"#;

#[test]
fn a_valid_declaration_has_no_problem() {
    assert_eq!(messages(&demo()), Vec::<String>::new());
    demo().validate().unwrap();
}

#[test]
fn a_manifest_reads_into_the_same_declaration_as_the_code() {
    let from_toml = Pipeline::from_toml_str(MANIFEST).unwrap();
    assert_eq!(from_toml, demo().join_timeout(Duration::from_secs(5)));
}

#[test]
fn manifest_entries_keep_their_order_in_the_file() {
    let text =
        "[pipeline]\nname = \"p\"\n[tasks.zeta]\ncommand = \"z\"\n[tasks.alpha]\ncommand = \"a\"\n";
    let pipeline = Pipeline::from_toml_str(text).unwrap();
    let names: Vec<&str> = pipeline.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha"]);
}

#[test]
fn a_declaration_round_trips_through_save_and_load() {
    let dir = temp_dir("roundtrip");
    let path = dir.join("demo.toml");
    let original = demo()
        .allow_cycles(true)
        .stop_grace(Duration::from_millis(500))
        .stream("raw", StreamSpec::bytes(100).checksum(true).max_readers(9))
        .task(
            "tap",
            TaskSpec::command("/bin/tap")
                .cwd("/tmp")
                .reads("raw", "raw"),
        );
    original.save(&path).unwrap();
    let loaded = Pipeline::load(&path).unwrap();
    // `load` anchors working directories at the manifest's directory.
    let mut expected = original.clone();
    for task in &mut expected.tasks {
        task.cwd = Some(match &task.cwd {
            Some(cwd) => dir.join(cwd),
            None => dir.clone(),
        });
    }
    assert_eq!(loaded, expected);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn relative_paths_in_a_manifest_are_taken_from_its_directory() {
    let dir = temp_dir("relative");
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        "[pipeline]\nname = \"p\"\n[tasks.a]\ncommand = \"./a\"\ncwd = \"sub\"\n[tasks.b]\ncommand = \"b\"\n",
    )
    .unwrap();
    let pipeline = Pipeline::load(&path).unwrap();
    assert_eq!(
        pipeline.tasks[0].cwd.as_deref(),
        Some(dir.join("sub").as_path())
    );
    assert_eq!(pipeline.tasks[1].cwd.as_deref(), Some(dir.as_path()));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_malformed_manifest_is_refused_with_line_and_column() {
    let text = "[pipeline]\nname = \"demo\"\n\n[streams.samples]\ncapacity = = 4\n";
    let e = Pipeline::from_toml_str(text).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let message = e.to_string();
    assert!(message.contains("line 5"), "{message}");
    assert!(message.contains("column"), "{message}");
}

#[test]
fn a_manifest_file_error_names_the_file() {
    let dir = temp_dir("badfile");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[pipeline]\nname = 3\n").unwrap();
    let message = Pipeline::load(&path).unwrap_err().to_string();
    assert!(message.contains("bad.toml"), "{message}");
    assert!(message.contains("line 2"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unknown_key_is_refused_with_its_name_and_place() {
    let text = MANIFEST.replace("capacity = 16", "capacty = 16");
    let message = Pipeline::from_toml_str(&text).unwrap_err().to_string();
    assert!(message.contains("capacty"), "{message}");
    assert!(message.contains("line 13"), "{message}");
}

#[test]
fn an_unknown_event_mode_is_refused() {
    let text = MANIFEST.replace("mode = \"counting\"", "mode = \"sometimes\"");
    let message = Pipeline::from_toml_str(&text).unwrap_err().to_string();
    assert!(message.contains("sometimes"), "{message}");
}

#[test]
fn a_name_declared_twice_in_a_manifest_is_refused_by_the_parser() {
    let text = format!("{MANIFEST}\n[tasks.sink]\ncommand = \"again\"\n");
    let message = Pipeline::from_toml_str(&text).unwrap_err().to_string();
    assert!(message.contains("sink"), "{message}");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn a_negative_timeout_is_refused() {
    let text = MANIFEST.replace("join_timeout = 5", "join_timeout = -1");
    let message = Pipeline::from_toml_str(&text).unwrap_err().to_string();
    assert!(message.contains("pipeline.join_timeout"), "{message}");
}

#[test]
fn a_binding_to_an_undeclared_stream_names_the_task_parameter_and_stream() {
    let mut p = demo();
    p.tasks[2].reads[0].target = "dubled".into();
    let found = problems(&p);
    assert!(
        found.iter().any(|f| f.entry == "tasks.sink.reads.input"
            && f.message.contains("\"dubled\"")
            && f.message.contains("declared streams: samples, doubled")),
        "{found:#?}"
    );
}

#[test]
fn a_binding_to_an_undeclared_event_is_refused() {
    let mut p = demo();
    p.tasks[1].events[0].target = "stop".into();
    assert_one_problem(
        &p,
        "tasks.scale.events.go",
        &["event \"stop\"", "not declared"],
    );
}

#[test]
fn a_stream_without_a_writer_is_refused() {
    let mut p = demo();
    p.tasks[0].writes.clear();
    assert_one_problem(&p, "streams.samples", &["no task writes"]);
}

#[test]
fn a_stream_without_a_reader_is_refused() {
    let p = demo()
        .stream("unread", StreamSpec::bytes(8))
        .task("writer", TaskSpec::command("x").writes("out", "unread"));
    assert_one_problem(&p, "streams.unread", &["no task reads"]);
}

#[test]
fn names_declared_twice_are_refused() {
    let p = demo().stream("samples", StreamSpec::bytes(8));
    let found = messages(&p);
    assert!(
        found
            .iter()
            .any(|m| m.starts_with("streams.samples:") && m.contains("declared twice")),
        "{found:#?}"
    );
    let p = demo().task("sink", TaskSpec::command("y"));
    assert!(messages(&p)
        .iter()
        .any(|m| m.contains("tasks \"sink\" is declared twice")));
    let p = demo().event("go", EventSpec::flag());
    assert!(messages(&p)
        .iter()
        .any(|m| m.contains("events \"go\" is declared twice")));
}

#[test]
fn a_parameter_bound_twice_in_one_task_is_refused() {
    let mut p = demo();
    p.tasks[1].events[0].param = "input".into();
    assert_one_problem(
        &p,
        "tasks.scale.events.input",
        &["already bound in tasks.scale.reads"],
    );
}

#[test]
fn invalid_and_reserved_names_are_refused() {
    let p = Pipeline::new("bad/name").task("t", TaskSpec::command("x"));
    assert_one_problem(&p, "pipeline.name", &["'/'"]);
    let p = demo().event("__stop", EventSpec::flag());
    assert!(messages(&p).iter().any(|m| m.starts_with("events.__stop:")));
    let p = demo()
        .stream("a.b", StreamSpec::bytes(8))
        .task("w", TaskSpec::command("x").writes("o", "a.b"));
    assert!(messages(&p)
        .iter()
        .any(|m| m.starts_with("streams.a.b:") && m.contains("'.'")));
    let long = "x".repeat(150);
    let p = Pipeline::new(long.clone())
        .stream(long.clone(), StreamSpec::bytes(8))
        .task("w", TaskSpec::command("x").writes("o", long.clone()))
        .task("r", TaskSpec::command("x").reads("i", long.clone()));
    assert!(messages(&p).iter().any(|m| m.contains("longer than 200")));
}

#[test]
fn a_cycle_is_refused_naming_its_tasks_unless_allowed() {
    let mut p = demo().stream("feedback", StreamSpec::bytes(8));
    p.tasks[2]
        .writes
        .push(shmline::pipeline::Binding::new("back", "feedback"));
    p.tasks[1]
        .reads
        .push(shmline::pipeline::Binding::new("back", "feedback"));
    assert_one_problem(
        &p,
        "tasks.scale",
        &["cycle", "scale -> sink -> scale", "allow_cycles"],
    );
    assert!(problems(&p.allow_cycles(true)).is_empty());
}

#[test]
fn a_task_reading_its_own_stream_is_a_cycle() {
    let p = Pipeline::new("loop")
        .stream("s", StreamSpec::bytes(8))
        .task("t", TaskSpec::command("x").writes("o", "s").reads("i", "s"));
    assert_one_problem(&p, "tasks.t", &["t -> t"]);
}

#[test]
fn stream_geometry_and_schema_problems_name_the_stream() {
    let p = demo().stream("bad", StreamSpec::array("<f3", &[2]));
    assert!(messages(&p)
        .iter()
        .any(|m| m.starts_with("streams.bad.dtype:")));
    let mut p = demo();
    p.streams[0].capacity = 3;
    assert_one_problem(&p, "streams.samples", &["power of two"]);
    let mut p = demo();
    p.streams[0].dtype = None;
    assert_one_problem(&p, "streams.samples.shape", &["dtype"]);
    let mut p = demo();
    p.streams[0].max_readers = 0;
    p.streams[0].shape.clear();
    p.streams[0].dtype = None;
    assert_one_problem(&p, "streams.samples", &["max_frame_size"]);
}

#[test]
fn an_empty_pipeline_and_reserved_environment_variables_are_refused() {
    assert_one_problem(&Pipeline::new("empty"), "tasks", &["no task"]);
    let mut p = demo();
    p.tasks[0].env.push(("SHMLINE_TASK".into(), "other".into()));
    assert_one_problem(&p, "tasks.source.env.SHMLINE_TASK", &["set by the runner"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut p = demo();
    p.tasks[0].writes.clear();
    p.tasks[2].reads[0].target = "nowhere".into();
    let e = p.validate().unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    let message = e.to_string();
    assert!(message.contains("3 problems"), "{message}");
    assert!(message.contains("streams.samples"), "{message}");
    assert!(message.contains("streams.doubled"), "{message}");
    assert!(message.contains("tasks.sink.reads.input"), "{message}");
}

#[test]
fn event_specs_keep_their_mode() {
    let p = Pipeline::from_toml_str(MANIFEST).unwrap();
    assert_eq!(p.events[0].mode, EventMode::Counting);
}

#[test]
fn the_manifest_format_shown_in_the_c_api_docs_reads_as_described() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/C_API.md")).unwrap();
    let section = &docs[docs.find("### Manifest format").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let text = &section[start..start + section[start..].find("```").unwrap()];
    let pipeline = Pipeline::from_toml_str(text).unwrap();
    let names = |list: Vec<&String>| list.into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(pipeline.streams.iter().map(|s| &s.name).collect()),
        ["samples", "log"]
    );
    assert_eq!(pipeline.streams[0].shape, [1024]);
    assert_eq!(pipeline.streams[1].max_frame_size, 256);
    assert_eq!(pipeline.events[0].mode, EventMode::Flag);
    assert_eq!(pipeline.tasks[0].stdout, Some("logs/source.log".into()));
    assert_eq!(pipeline.tasks[1].events[0].target, "go");
    // The excerpt's only problem: nothing reads the sink's log.
    let entries: Vec<String> = problems(&pipeline).into_iter().map(|p| p.entry).collect();
    assert_eq!(entries, ["streams.log"]);
}
