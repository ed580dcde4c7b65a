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
    assert!(message.contains("[pipeline] join_timeout"), "{message}");
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
    assert_eq!(pipeline.tasks[2].reads[0].group.as_deref(), Some("workers"));
    assert_eq!(pipeline.tasks[2].writes[0].target, "log");
    // The excerpt's only problem: nothing reads the sink's log.
    let entries: Vec<String> = problems(&pipeline).into_iter().map(|p| p.entry).collect();
    assert_eq!(entries, ["streams.log"]);
}

// ---- Fan-in (several writing tasks) and work sharing (reader groups) ----

/// source -> samples -> (w0, w1 in group "fir") -> merged -> sink.
fn fan_out_fan_in() -> Pipeline {
    Pipeline::new("fir")
        .stream("samples", StreamSpec::array("<f4", &[64]))
        .stream("merged", StreamSpec::array("<f4", &[64]))
        .task(
            "source",
            TaskSpec::command("./source").writes("out", "samples"),
        )
        .task(
            "w0",
            TaskSpec::command("./worker")
                .reads_group("samples", "samples", "fir")
                .writes("out", "merged"),
        )
        .task(
            "w1",
            TaskSpec::command("./worker")
                .reads_group("samples", "samples", "fir")
                .writes("out", "merged"),
        )
        .task("sink", TaskSpec::command("./sink").reads("input", "merged"))
}

const FAN_MANIFEST: &str = r#"
[pipeline]
name = "fir"

[streams.samples]
dtype = "<f4"
shape = [64]

[streams.merged]
dtype = "<f4"
shape = [64]

[tasks.source]
command = "./source"
writes = { out = "samples" }

[tasks.w0]
command = "./worker"
reads = { samples = { stream = "samples", group = "fir" } }
writes = { out = "merged" }

[tasks.w1]
command = "./worker"
reads = { samples = { group = "fir", stream = "samples" } }
writes = { out = "merged" }

[tasks.sink]
command = "./sink"
reads = { input = "merged" }
"#;

#[test]
fn a_group_input_is_a_table_in_a_manifest_and_a_plain_string_still_reads() {
    let from_toml = Pipeline::from_toml_str(FAN_MANIFEST).unwrap();
    assert_eq!(from_toml, fan_out_fan_in());
    assert_eq!(from_toml.tasks[1].reads[0].group.as_deref(), Some("fir"));
    assert_eq!(from_toml.tasks[3].reads[0].group, None);
    assert!(
        problems(&from_toml).is_empty(),
        "{:#?}",
        problems(&from_toml)
    );
}

#[test]
fn group_inputs_and_max_writers_round_trip_through_save_and_load() {
    let dir = temp_dir("groups");
    let path = dir.join("fir.toml");
    let mut original = fan_out_fan_in();
    original.streams[1].max_writers = 3;
    original.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("max_writers = 3"), "{text}");
    assert!(text.contains("group = \"fir\""), "{text}");
    let mut loaded = Pipeline::load(&path).unwrap();
    for task in &mut loaded.tasks {
        task.cwd = None;
    }
    assert_eq!(loaded, original);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_group_input_with_an_unknown_key_is_refused_with_its_name_and_line() {
    let text = FAN_MANIFEST.replace("group = \"fir\", stream", "grop = \"fir\", stream");
    let message = Pipeline::from_toml_str(&text).unwrap_err().to_string();
    assert!(message.contains("grop"), "{message}");
    assert!(message.contains("line 24"), "{message}");
}

#[test]
fn a_group_input_without_a_stream_or_of_the_wrong_type_is_refused() {
    let text = FAN_MANIFEST.replace("stream = \"samples\", group", "group");
    let message = Pipeline::from_toml_str(&text).unwrap_err().to_string();
    assert!(message.contains("missing field `stream`"), "{message}");
    assert!(message.contains("line 19"), "{message}");
    let text = FAN_MANIFEST.replace("reads = { input = \"merged\" }", "reads = { input = 7 }");
    let message = Pipeline::from_toml_str(&text).unwrap_err().to_string();
    assert!(message.contains("a stream name, or a table"), "{message}");
}

#[test]
fn several_tasks_may_write_one_stream() {
    let p = fan_out_fan_in().task("late", TaskSpec::command("./late").writes("out", "merged"));
    assert!(problems(&p).is_empty(), "{:#?}", problems(&p));
}

#[test]
fn more_writing_tasks_than_an_explicit_max_writers_are_refused_naming_them() {
    let mut p = fan_out_fan_in();
    p.streams[1].max_writers = 1;
    assert_one_problem(
        &p,
        "streams.merged.max_writers",
        &["1 is fewer than the 2 tasks", "\"w0\"", "\"w1\""],
    );
    p.streams[1].max_writers = 2;
    assert!(problems(&p).is_empty());
    p.streams[1].max_writers = 65;
    assert_one_problem(&p, "streams.merged", &["max writers 65"]);
}

#[test]
fn a_bad_group_name_is_refused_naming_the_binding() {
    let mut p = fan_out_fan_in();
    p.tasks[1].reads[0].group = Some("a/b".into());
    assert_one_problem(&p, "tasks.w0.reads.samples.group", &["'/'"]);
    p.tasks[1].reads[0].group = Some(String::new());
    assert_one_problem(&p, "tasks.w0.reads.samples.group", &["group name"]);
    p.tasks[1].reads[0].group = Some("g".repeat(64));
    assert_one_problem(
        &p,
        "tasks.w0.reads.samples.group",
        &["64 bytes, the limit is 63"],
    );
}

#[test]
fn a_group_name_follows_the_library_rule_not_the_member_name_rule() {
    // Group names never become part of a segment name, so '.' and a leading "__" are fine, and
    // the longest name a reader can join (63 bytes) is accepted.
    let mut p = fan_out_fan_in();
    for name in ["fir.v2", "__monitors", &"g".repeat(63)] {
        p.tasks[1].reads[0].group = Some(name.to_owned());
        p.tasks[2].reads[0].group = Some(name.to_owned());
        assert!(problems(&p).is_empty(), "{name}: {:#?}", problems(&p));
    }
}

#[test]
fn a_group_on_a_writing_or_event_binding_is_refused() {
    let mut p = fan_out_fan_in();
    p.tasks[0].writes[0].group = Some("fir".into());
    assert_one_problem(
        &p,
        "tasks.source.writes.out",
        &["only a reading parameter can join a reader group"],
    );
}

#[test]
fn a_task_reading_the_same_stream_twice_is_refused() {
    let mut p = fan_out_fan_in();
    p.tasks[3]
        .reads
        .push(shmline::pipeline::Binding::new("again", "merged"));
    assert_one_problem(
        &p,
        "tasks.sink.reads.again",
        &["already reads stream \"merged\"", "parameter \"input\""],
    );
    let mut p = fan_out_fan_in();
    p.tasks[1]
        .reads
        .push(shmline::pipeline::Binding::group("more", "samples", "fir"));
    assert_one_problem(
        &p,
        "tasks.w0.reads.more",
        &["already reads stream \"samples\""],
    );
}

#[test]
fn a_group_with_a_single_reader_task_is_allowed() {
    let p = Pipeline::new("one")
        .stream("s", StreamSpec::bytes(8))
        .task("w", TaskSpec::command("w").writes("o", "s"))
        .task("r", TaskSpec::command("r").reads_group("i", "s", "solo"));
    assert!(problems(&p).is_empty(), "{:#?}", problems(&p));
}

#[test]
fn group_members_count_toward_max_readers() {
    let mut p = fan_out_fan_in();
    p.streams[0].max_readers = 1;
    assert_one_problem(
        &p,
        "streams.samples.max_readers",
        &["1 is fewer than the 2 tasks that read"],
    );
}

/// A one-stream manifest whose `[streams.s]` table holds `stream`.
fn one_stream(stream: &str) -> String {
    format!(
        "[pipeline]\nname = \"p\"\n\n[streams.s]\n{stream}\n\n[tasks.w]\ncommand = \"./w\"\n\
         writes = {{ out = \"s\" }}\n\n[tasks.r]\ncommand = \"./r\"\nreads = {{ input = \"s\" }}\n"
    )
}

#[test]
fn a_dtype_is_read_as_python_reads_it_by_numpy_name_or_type_string() {
    for (given, read) in [
        ("float32", "<f4"),
        ("float64", "<f8"),
        ("double", "<f8"),
        ("uint8", "|u1"),
        ("int16", "<i2"),
        ("bool", "|b1"),
        ("complex64", "<c8"),
        ("f", "<f4"),
        ("datetime64[ns]", "<M8[ns]"),
        ("<f4", "<f4"),
        ("f8", "<f8"),
        ("S16", "|S16"),
    ] {
        let text = one_stream(&format!("dtype = {given:?}\nshape = [4]"));
        let p = Pipeline::from_toml_str(&text).unwrap_or_else(|e| panic!("{given}: {e}"));
        assert_eq!(p.streams[0].dtype.as_deref(), Some(read), "{given}");
        p.validate().unwrap();
    }
}

#[test]
fn a_misspelt_dtype_is_named_with_its_table_and_the_likely_intent() {
    let text = one_stream("dtype = \"flaot32\"\nshape = [4]");
    let message = Pipeline::from_toml_str(&text).unwrap_err().to_string();
    assert!(
        message.contains("[streams.s] dtype (line 5): unknown dtype \"flaot32\""),
        "{message}"
    );
    assert!(message.contains("did you mean \"float32\"?"), "{message}");
    assert!(
        message.contains("(1 problem)"),
        "shape is not blamed too: {message}"
    );
}

#[test]
fn backpressure_frames_and_every_python_stream_option_are_read_and_saved_back() {
    let text = one_stream(
        "max_frame_size = 32\nframes = 16\nmax_readers = 9\nmax_writers = 2\nchecksum = true\n\
         backpressure = \"drop_oldest\"",
    );
    let p = Pipeline::from_toml_str(&text).unwrap();
    let s = &p.streams[0];
    assert_eq!(
        (
            s.max_frame_size,
            s.capacity,
            s.max_readers,
            s.max_writers,
            s.checksum
        ),
        (32, 16, 9, 2, true)
    );
    assert_eq!(s.backpressure, shmline::Backpressure::DropOldest);
    let again = Pipeline::from_toml_str(&p.to_toml_string().unwrap()).unwrap();
    assert_eq!(again, p);
    assert_eq!(
        Pipeline::from_toml_str(&one_stream("max_frame_size = 8"))
            .unwrap()
            .streams[0]
            .backpressure,
        shmline::Backpressure::Block
    );
}

#[test]
fn capacity_and_frames_that_disagree_are_refused() {
    let text = one_stream("max_frame_size = 8\ncapacity = 8\nframes = 16");
    let message = Pipeline::from_toml_str(&text).unwrap_err().to_string();
    assert!(message.contains("[streams.s] frames"), "{message}");
}

#[test]
fn every_problem_of_a_manifest_is_reported_at_once_naming_table_key_and_line() {
    let text = "[pipeline]\nname = \"p\"\njoin_timout = 3\n\n\
                [streams.raw]\ndtype = \"flaot32\"\ncapacity = \"lots\"\nbackpressure = \"drop_newst\"\n\n\
                [tasks.src]\ncommand = \"./src\"\nwrites = { out = \"raw\" }\n\n\
                [tasks.sink]\ncomand = \"./sink\"\nreads = { a = \"raw\", b = \"nope\" }\n";
    let message = Pipeline::from_toml_str(text).unwrap_err().to_string();
    for expected in [
        "(7 problems)",
        "[pipeline] join_timout (line 3): unknown key (did you mean \"join_timeout\"?",
        "[streams.raw] dtype (line 6): unknown dtype \"flaot32\"",
        "[streams.raw] capacity (line 7): invalid type: string \"lots\"",
        "[streams.raw] backpressure (line 8): unknown backpressure \"drop_newst\" (did you mean \"drop_newest\"?",
        "[tasks.sink] comand (line 15): unknown key (did you mean \"command\"?",
        "[tasks.sink] command (line 14): is missing",
        "[tasks.sink] reads.b (line 16): stream \"nope\" is not declared",
    ] {
        assert!(message.contains(expected), "{expected:?} not in:\n{message}");
    }
}
