//! The C ABI as C programs see it: `include/shmline.h` compiled as C99 and C++, the shared library's
//! SONAME and exports, every function of the API from C (`tests/c/test_api.c` and
//! `tests/c/test_pipeline.c`, also under valgrind, and linked statically), frames crossing
//! processes C → C, C → Rust and Rust → C with every byte checked, pipelines mixing C and Rust
//! tasks, and the C pipeline example.
//!
//! The C programs are compiled here with the system C compiler (`$CC`, default `cc`) against the
//! libraries `cargo test` builds next to this test binary. Rust roles of the cross-process tests
//! are ignored tests that this binary re-runs as a child process with the stream name in
//! `SHMLINE_C_ABI_CHILD`; the Rust tasks of the pipelines are the roles of `tests/common/mod.rs`.

#[macro_use]
mod common;

use shmline::pipeline::{Outcome, Pipeline, StreamSpec, TaskExit, TaskSpec};
use shmline::{FrameInfo, ReaderOptions, Stream, StreamOptions, WaitStrategy, WriterOptions};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Environment variable carrying `STREAM_NAME FRAME_COUNT` to a Rust child role.
const CHILD_ENV: &str = "SHMLINE_C_ABI_CHILD";
/// How long any wait for another process may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// Frames sent in each cross-process test (several laps of the ring, every API in turn).
const FRAMES: u64 = 10_000;
/// Frames sent when both processes run under valgrind, which is far slower.
const FRAMES_UNDER_VALGRIND: u64 = 1_000;
/// Slots of the cross-process streams: small, so that the writer waits for the reader often.
const CAPACITY: u32 = 16;
/// The system libraries a program linking `libshmline.a` needs, in the order rustc prints them
/// (`cargo rustc --lib --crate-type staticlib -- --print native-static-libs`). `docs/C_API.md`
/// documents the same list.
const STATIC_LIBS: &str = "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc";

// The frames of the cross-process tests: the same functions as tests/c/frames.h.
const FRAMES_MAX: usize = 256;
const FRAMES_CHUNK: u64 = 100;
const FRAMES_BATCH: u64 = 7;

fn frame_len(i: u64) -> usize {
    8 + (i.wrapping_mul(7919) % (FRAMES_MAX as u64 - 7)) as usize
}

fn frame_flags(i: u64) -> u32 {
    (i / FRAMES_CHUNK) as u32
}

fn frame(i: u64) -> Vec<u8> {
    (0..frame_len(i))
        .map(|j| {
            if j < 8 {
                (i >> (8 * j)) as u8
            } else {
                (i.wrapping_mul(31) as usize).wrapping_add(j * 7) as u8
            }
        })
        .collect()
}

fn assert_frame(expected: u64, info: &FrameInfo, data: &[u8]) {
    assert_eq!(info.seq, expected, "sequence number");
    assert_eq!(info.missed, 0, "frame {expected}: missed");
    assert_eq!(info.flags, frame_flags(expected), "frame {expected}: flags");
    assert_eq!(data, frame(expected), "frame {expected}: bytes");
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    // Relaxed: only uniqueness matters.
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("t-cabi-{tag}-{}-{n}", std::process::id())
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory where `cargo test` put the shared library and static archive built with this
/// test binary: the binary's own directory (`target/<profile>/deps`).
fn built_libraries() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().to_path_buf();
    for lib in ["libshmline.so", "libshmline.a"] {
        assert!(
            dir.join(lib).exists(),
            "{lib} not found in {}: cargo test builds it with the test binaries",
            dir.display()
        );
    }
    dir
}

/// Scratch directory for the compiled C programs.
fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-abi");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replaces `path` atomically with what `make` writes to a temporary path, so that test binaries
/// running at the same time never see a half-written file.
fn replace(path: &Path, make: impl FnOnce(&Path)) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    make(&tmp);
    std::fs::rename(&tmp, path).unwrap();
}

/// A directory laid out as an installation: `libshmline.so.0` (the SONAME programs record) and
/// the `libshmline.so` link the linker uses.
fn installed_lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = work_dir().join("lib");
        std::fs::create_dir_all(&dir).unwrap();
        let built = built_libraries().join("libshmline.so");
        replace(&dir.join("libshmline.so.0"), |tmp| {
            std::os::unix::fs::symlink(&built, tmp).unwrap()
        });
        replace(&dir.join("libshmline.so"), |tmp| {
            std::os::unix::fs::symlink("libshmline.so.0", tmp).unwrap()
        });
        dir
    })
}

fn compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Runs a command that must succeed, showing its output if it does not.
fn run_ok(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Compiles `tests/c/<name>.c` as strict C99 against the shared library (once per test binary).
fn c_program(name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap();
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let lib = installed_lib_dir();
    let out = work_dir().join(name);
    replace(&out, |tmp| {
        run_ok(
            Command::new(compiler())
                .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
                .arg("-I")
                .arg(root().join("include"))
                .arg(root().join(format!("tests/c/{name}.c")))
                .arg("-L")
                .arg(lib)
                .arg(format!("-Wl,-rpath,{}", lib.display()))
                .arg("-lshmline")
                .arg("-o")
                .arg(tmp),
        );
    });
    built.insert(name.into(), out.clone());
    out
}

/// Segments in /dev/shm whose name contains `prefix`.
fn leftover_segments(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(prefix))
        .collect()
}

/// Runs a C test program (optionally under a wrapper such as valgrind) with a name prefix of its
/// own and `args`, and checks that every check passed and nothing was left in /dev/shm.
fn run_c_test(wrapper: &[String], program: &Path, args: &[PathBuf]) {
    let prefix = unique("test");
    let mut command = match wrapper.split_first() {
        Some((tool, args)) => {
            let mut c = Command::new(tool);
            c.args(args).arg(program);
            c
        }
        None => Command::new(program),
    };
    let out = run_ok(command.arg(&prefix).args(args));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert_eq!(leftover_segments(&prefix), Vec::<String>::new());
}

/// Runs `tests/c/test_pipeline.c`, giving it the C task programs it runs pipelines of.
fn run_test_pipeline(wrapper: &[String]) {
    let tasks = ["task_source", "task_scale", "task_sink"].map(c_program);
    run_c_test(wrapper, &c_program("test_pipeline"), &tasks);
}

/// Whether valgrind can be run; in CI its absence is a failure, elsewhere a skip.
fn valgrind_available() -> bool {
    let found = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "valgrind is required in CI (apt-get install valgrind)"
        );
        eprintln!("valgrind not installed: skipping");
    }
    found
}

/// Valgrind and its arguments: any error or leak fails the program.
fn valgrind() -> Vec<String> {
    let suppressions = root().join("tests/c/valgrind.supp");
    [
        "valgrind",
        "--error-exitcode=1",
        "--leak-check=full",
        "--quiet",
        &format!("--suppressions={}", suppressions.display()),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn the_header_compiles_as_strict_c99_and_as_cpp() {
    let dir = work_dir();
    let source = "#include \"shmline.h\"\n#include \"shmline.h\"\n\
                  int main(void) { return SHMLINE_OK; }\n";
    for (tool, std, file) in [
        (compiler(), "-std=c99", "header_c99.c"),
        (
            std::env::var("CXX").unwrap_or_else(|_| "c++".into()),
            "-std=c++17",
            "header_cpp.cpp",
        ),
    ] {
        let path = dir.join(format!("{}-{file}", std::process::id()));
        std::fs::write(&path, source).unwrap();
        run_ok(
            Command::new(tool)
                .args([
                    std,
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                    "-fsyntax-only",
                ])
                .arg("-I")
                .arg(root().join("include"))
                .arg(&path),
        );
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn the_shared_library_is_libshmline_so_0_and_exports_exactly_the_header_functions() {
    let lib = built_libraries().join("libshmline.so");
    let dynamic = run_ok(Command::new("readelf").arg("-d").arg(&lib));
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic.contains("Library soname: [libshmline.so.0]"),
        "{dynamic}"
    );
    let symbols = run_ok(Command::new("nm").args(["-D", "--defined-only"]).arg(&lib));
    let exported: BTreeSet<String> = String::from_utf8_lossy(&symbols.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    let header = std::fs::read_to_string(root().join("include/shmline.h")).unwrap();
    let declared: BTreeSet<String> = header
        .lines()
        .filter(|line| !line.starts_with([' ', '/', '#', '}']))
        .filter_map(|line| {
            let name = line.split('(').next()?.rsplit([' ', '*']).next()?;
            (name.starts_with("shmline_") && line.contains('(')).then(|| name.to_owned())
        })
        .collect();
    assert!(declared.len() > 40, "parsed only {declared:?}");
    assert_eq!(exported, declared);
}

#[test]
fn every_c_api_function_behaves_as_documented_including_its_errors() {
    run_c_test(&[], &c_program("test_api"), &[]);
}

#[test]
fn the_c_api_test_runs_clean_under_valgrind() {
    if valgrind_available() {
        run_c_test(&valgrind(), &c_program("test_api"), &[]);
    }
}

#[test]
fn a_c_program_links_the_static_archive_with_the_documented_system_libraries() {
    let docs = std::fs::read_to_string(root().join("docs/C_API.md")).unwrap();
    assert!(
        docs.contains(STATIC_LIBS),
        "docs/C_API.md must list the static archive's system libraries: {STATIC_LIBS}"
    );
    let out = work_dir().join("test_api_static");
    replace(&out, |tmp| {
        run_ok(
            Command::new(compiler())
                .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
                .arg("-I")
                .arg(root().join("include"))
                .arg(root().join("tests/c/test_api.c"))
                .arg(built_libraries().join("libshmline.a"))
                .args(STATIC_LIBS.split(' '))
                .arg("-o")
                .arg(tmp),
        );
    });
    let needed = run_ok(Command::new("readelf").arg("-d").arg(&out));
    assert!(
        !String::from_utf8_lossy(&needed.stdout).contains("libshmline"),
        "the static build must not need the shared library"
    );
    run_c_test(&[], &out, &[]);
}

#[test]
fn every_c_pipeline_function_behaves_as_documented_including_its_errors() {
    run_test_pipeline(&[]);
}

#[test]
fn the_c_pipeline_test_runs_clean_under_valgrind() {
    if valgrind_available() {
        run_test_pipeline(&valgrind());
    }
}

/// Frames each stage of the mixed pipelines passes on.
const PIPELINE_FRAMES: u64 = 5_000;

/// A task running the C program built from `tests/c/<name>.c`.
fn c_task(name: &str) -> TaskSpec {
    TaskSpec::command(c_program(name).to_str().unwrap())
}

/// Runs source -> samples -> scale -> doubled -> sink with the given tasks (each C or Rust, all
/// with the same parameters and frames: `tests/c/pipeline_frames.h`, `tests/common/mod.rs`) and
/// checks that it ends by itself, every task succeeded (the sink checks every frame) and nothing
/// is left in /dev/shm.
fn run_mixed_pipeline(source: TaskSpec, scale: TaskSpec, sink: TaskSpec) {
    let name = unique("mixed");
    let frames = PIPELINE_FRAMES.to_string();
    let pipeline = Pipeline::new(&name)
        .stream(
            "samples",
            StreamSpec::bytes(common::FRAME as u32).capacity(16),
        )
        .stream(
            "doubled",
            StreamSpec::bytes(common::FRAME as u32)
                .capacity(16)
                .checksum(true),
        )
        .task(
            "source",
            source.env("FRAMES", &frames).writes("out", "samples"),
        )
        .task(
            "scale",
            scale.reads("input", "samples").writes("out", "doubled"),
        )
        .task(
            "sink",
            sink.env("FRAMES", &frames)
                .stdout("/dev/null")
                .reads("input", "doubled"),
        );
    let report = pipeline.run().unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    for stream in &report.streams {
        assert_eq!(stream.frames, PIPELINE_FRAMES, "{stream:?}");
        assert_eq!(
            stream.bytes,
            PIPELINE_FRAMES * common::FRAME as u64,
            "{stream:?}"
        );
    }
    for task in &report.tasks {
        assert_eq!(task.exit, Some(TaskExit::Code(0)), "{task:?}");
        assert!(!task.stopped, "{task:?}");
    }
    assert_eq!(leftover_segments(&name), Vec::<String>::new());
}

// The Rust stages of the mixed pipelines: this test binary, re-run in these roles.
task_roles!(role_source, role_scale, role_sink);

#[test]
fn a_c_source_a_rust_scale_and_a_c_sink_pass_every_frame_intact() {
    run_mixed_pipeline(
        c_task("task_source"),
        common::role("role_scale"),
        c_task("task_sink"),
    );
}

#[test]
fn a_rust_source_a_c_scale_and_a_rust_sink_pass_every_frame_intact() {
    run_mixed_pipeline(
        common::role("role_source"),
        c_task("task_scale"),
        common::role("role_sink"),
    );
}

#[test]
fn the_c_pipeline_example_builds_as_its_manifest_says_and_runs_to_the_end() {
    let example = root().join("examples/pipeline_c");
    let manifest = std::fs::read_to_string(example.join("pipeline.toml")).unwrap();
    assert!(
        manifest.contains(STATIC_LIBS),
        "the example's build instructions must list the static archive's system libraries"
    );
    // A copy of the example directory: the manifest with the programs in build/, built as its
    // opening comment says.
    let dir = work_dir().join(format!("pipeline_c-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("build")).unwrap();
    std::fs::copy(example.join("pipeline.toml"), dir.join("pipeline.toml")).unwrap();
    for task in ["source", "scale", "sink"] {
        run_ok(
            Command::new(compiler())
                .args([
                    "-std=c99",
                    "-O2",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                ])
                .arg("-I")
                .arg(root().join("include"))
                .arg(example.join(format!("{task}.c")))
                .arg(built_libraries().join("libshmline.a"))
                .args(STATIC_LIBS.split(' '))
                .arg("-o")
                .arg(dir.join("build").join(task)),
        );
    }
    let mut pipeline = Pipeline::load(dir.join("pipeline.toml")).unwrap();
    pipeline.name = unique("example");
    for task in &mut pipeline.tasks {
        task.stdout = Some("/dev/null".into());
        task.env.push(("FRAMES".into(), "2000".into()));
    }
    let report = pipeline.run().unwrap();
    assert_eq!(report.outcome, Outcome::Finished);
    let frames: Vec<u64> = report.streams.iter().map(|s| s.frames).collect();
    assert_eq!(frames, [2000, 2000]);
    assert_eq!(leftover_segments(&pipeline.name), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One side of a cross-process test.
enum Side {
    /// `tests/c/writer.c` or `tests/c/reader.c`, optionally under valgrind.
    C { valgrind: bool },
    /// The Rust child role of this test binary.
    Rust,
}

fn spawn(side: &Side, role: &str, name: &str, frames: u64) -> Child {
    let mut command = match side {
        Side::C { valgrind } => {
            let program = c_program(role);
            let mut c = if *valgrind {
                let wrapper = self::valgrind();
                let mut c = Command::new(&wrapper[0]);
                c.args(&wrapper[1..]).arg(program);
                c
            } else {
                Command::new(program)
            };
            c.arg(name).arg(frames.to_string());
            c
        }
        Side::Rust => {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args([
                "--exact",
                &format!("child_rust_{role}"),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{name} {frames}"));
            c
        }
    };
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child, what: &str, expect: &str) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(expect),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a stream, runs a writer and a reader process on it, and checks both saw every frame.
fn cross_process(writer: Side, reader: Side, frames: u64) {
    let name = unique("pair");
    let stream = Stream::create(
        &name,
        &StreamOptions {
            capacity: CAPACITY,
            max_frame_size: FRAMES_MAX as u32,
            checksum: true,
            unlink_on_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    let reader_child = spawn(&reader, "reader", &name, frames);
    let writer_child = spawn(&writer, "writer", &name, frames);
    let expect = |side: &Side, verb: &str| match side {
        Side::C { .. } => format!("{verb} {frames} frames"),
        Side::Rust => "1 passed".to_owned(),
    };
    finish(writer_child, "writer", &expect(&writer, "wrote"));
    finish(reader_child, "reader", &expect(&reader, "read"));
    let stats = stream.stats();
    assert_eq!(stats.frames_written, frames);
    assert_eq!(stats.writer_state, shmline::WriterState::Closed);
}

#[test]
fn a_c_writer_delivers_every_frame_in_order_to_a_c_reader() {
    cross_process(
        Side::C { valgrind: false },
        Side::C { valgrind: false },
        FRAMES,
    );
}

#[test]
fn a_c_writer_delivers_every_frame_in_order_to_a_rust_reader() {
    cross_process(Side::C { valgrind: false }, Side::Rust, FRAMES);
}

#[test]
fn a_rust_writer_delivers_every_frame_in_order_to_a_c_reader() {
    cross_process(Side::Rust, Side::C { valgrind: false }, FRAMES);
}

#[test]
fn a_c_writer_and_a_c_reader_run_clean_under_valgrind() {
    if valgrind_available() {
        cross_process(
            Side::C { valgrind: true },
            Side::C { valgrind: true },
            FRAMES_UNDER_VALGRIND,
        );
    }
}

/// The stream name and frame count given to this process, if it runs as a child role.
fn child_args() -> Option<(String, u64)> {
    let value = std::env::var(CHILD_ENV).ok()?;
    let (name, frames) = value.split_once(' ').unwrap();
    Some((name.to_owned(), frames.parse().unwrap()))
}

#[test]
#[ignore = "child role, started by the cross-process tests"]
fn child_rust_writer() {
    let Some((name, frames)) = child_args() else {
        return;
    };
    let stream = Stream::open(&name).unwrap();
    let mut writer = stream
        .writer_with(&WriterOptions {
            wait: WaitStrategy::Block,
            timeout: Some(PATIENCE),
        })
        .unwrap();
    drop(stream);
    writer.wait_for_readers(1, PATIENCE).unwrap();
    let mut i = 0;
    while i < frames {
        match (i / FRAMES_CHUNK) % 3 {
            0 => {
                writer.write_with_flags(&frame(i), frame_flags(i)).unwrap();
                i += 1;
            }
            1 => {
                let data = frame(i);
                let mut slot = writer.reserve().unwrap();
                slot[..data.len()].copy_from_slice(&data);
                slot.commit_with_flags(data.len(), frame_flags(i)).unwrap();
                i += 1;
            }
            _ => {
                let end = (i + FRAMES_BATCH)
                    .min((i / FRAMES_CHUNK + 1) * FRAMES_CHUNK)
                    .min(frames);
                let batch: Vec<Vec<u8>> = (i..end).map(frame).collect();
                let batch: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                let mut done = 0;
                while done < batch.len() {
                    done += writer
                        .write_batch_with_flags(&batch[done..], frame_flags(i))
                        .unwrap();
                }
                i = end;
            }
        }
    }
    assert_eq!(writer.position(), frames);
}

#[test]
#[ignore = "child role, started by the cross-process tests"]
fn child_rust_reader() {
    let Some((name, frames)) = child_args() else {
        return;
    };
    let stream = Stream::open(&name).unwrap();
    let mut reader = stream
        .reader(&ReaderOptions {
            wait: WaitStrategy::Block,
            timeout: Some(PATIENCE),
            ..Default::default()
        })
        .unwrap();
    let mut buf = vec![0u8; FRAMES_MAX * FRAMES_BATCH as usize];
    let mut infos = [FrameInfo::default(); FRAMES_BATCH as usize];
    let mut next = 0;
    while next < frames {
        match (next / FRAMES_CHUNK) % 3 {
            0 => {
                let info = reader.read_into(&mut buf).unwrap();
                assert_frame(next, &info, &buf[..info.len as usize]);
                next += 1;
            }
            1 => {
                let frame = reader.acquire().unwrap();
                assert_frame(next, frame.info(), &frame);
                next += 1;
            }
            _ => {
                let n = reader.read_batch(&mut buf, &mut infos).unwrap();
                let mut offset = 0;
                for info in &infos[..n] {
                    let len = info.len as usize;
                    assert_frame(next, info, &buf[offset..offset + len]);
                    offset += len;
                    next += 1;
                }
            }
        }
    }
    assert!(matches!(
        reader.read_into(&mut buf),
        Err(shmline::Error::EndOfStream)
    ));
}
