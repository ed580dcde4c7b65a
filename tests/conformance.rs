//! The conformance matrix: frames and events cross between every pair of the four languages
//! (C, C++, Rust, Python), each side a separate process running its language's peer program.
//! The peers share one command line, one set of frames and one digest
//! (`tests/conformance/README.md`).
//!
//! This test builds the peers first: C and C++ against the library cargo built with this test,
//! the Rust peer (`examples/conformance_peer.rs`) with cargo, and the Python package into
//! `target/pyenv` with `scripts/python-env --if-stale` (only when a source changed since its
//! last build). Each matrix prints its table on stderr, also when it passes (for CI logs), then
//! fails if any run failed, with both peers' output.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use support::unique;

/// Frames per stream run: 125 laps of the peers' 16-slot ring.
const FRAMES: u64 = 2000;
/// Signals per event run: a counting event must deliver each one, a flag event holds them as one.
const SIGNALS: u64 = 3;
/// How long one run (two processes) may take before both are killed and the run fails. Every
/// blocking call inside the peers gives up after 60 s by itself.
const RUN_PATIENCE: Duration = Duration::from_secs(120);
/// Runs in flight at once, each of two processes: enough to keep two cores busy while peers
/// start up, few enough that a loaded machine is not swamped.
const WORKERS: usize = 2;

#[derive(Clone, Copy)]
enum Language {
    C,
    Cpp,
    Rust,
    Python,
}

impl Language {
    fn name(self) -> &'static str {
        match self {
            Language::C => "C",
            Language::Cpp => "C++",
            Language::Rust => "Rust",
            Language::Python => "Python",
        }
    }
}

const LANGUAGES: [Language; 4] = [Language::C, Language::Cpp, Language::Rust, Language::Python];
/// The kinds of frames and the paths of the streams (`tests/conformance/README.md`).
const KINDS: [&str; 2] = ["f32", "bytes"];
const PATHS: [&str; 2] = ["copy", "zero"];
/// The modes of the events.
const EVENT_MODES: [&str; 2] = ["flag", "counting"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Scratch directory for the compiled peers.
fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- Building the peers ----

/// The program (and first arguments) that starts each language's peer.
struct Peers {
    c: PathBuf,
    cpp: PathBuf,
    rust: PathBuf,
    python: PathBuf,
}

impl Peers {
    fn command(&self, language: Language) -> Command {
        match language {
            Language::C => Command::new(&self.c),
            Language::Cpp => Command::new(&self.cpp),
            Language::Rust => Command::new(&self.rust),
            Language::Python => {
                let mut command = Command::new(&self.python);
                command.arg(root().join("tests/conformance/peer.py"));
                command
            }
        }
    }
}

/// Every peer, built once per test binary.
fn peers() -> &'static Peers {
    static PEERS: OnceLock<Peers> = OnceLock::new();
    PEERS.get_or_init(|| Peers {
        c: compile("peer.c", "CC", "cc", "-std=c99"),
        cpp: compile("peer.cpp", "CXX", "c++", "-std=c++17"),
        rust: build_rust_peer(),
        python: python_with_package(),
    })
}

/// Runs a command that must succeed, showing its output if it does not.
fn run_ok(command: &mut Command) -> std::process::Output {
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

/// A directory laid out as an installation of the library cargo built with this test binary
/// (`target/<profile>/deps/libshmline.so`): `libshmline.so.0`, the SONAME programs record.
fn library_dir() -> PathBuf {
    let built = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("libshmline.so");
    assert!(
        built.exists(),
        "{} not found: cargo test builds it with the test binaries",
        built.display()
    );
    let dir = work_dir().join("lib");
    std::fs::create_dir_all(&dir).unwrap();
    // Made under a name of our own and renamed into place, so that a concurrent run never
    // sees the link missing.
    let tmp = dir.join(format!("libshmline.so.0.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&built, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("libshmline.so.0")).unwrap();
    dir
}

/// Compiles `tests/conformance/<source>` with the compiler in `$<compiler_var>` (default
/// `default`) against `include/shmline.h`, the C++ binding's headers and the library.
fn compile(source: &str, compiler_var: &str, default: &str, standard: &str) -> PathBuf {
    let compiler = std::env::var(compiler_var).unwrap_or_else(|_| default.into());
    let lib = library_dir();
    let out = work_dir().join(source.replace('.', "_"));
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    run_ok(
        Command::new(compiler)
            .args([
                standard,
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-O1",
                "-g",
            ])
            .arg("-I")
            .arg(root().join("include"))
            .arg("-I")
            .arg(root().join("bindings/cpp/include"))
            .arg(root().join("tests/conformance").join(source))
            .arg(lib.join("libshmline.so.0"))
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-o")
            .arg(&tmp),
    );
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// Builds `examples/conformance_peer.rs` with the cargo running this test.
fn build_rust_peer() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run_ok(
        Command::new(cargo)
            .args(["build", "--example", "conformance_peer"])
            .arg("--message-format=json-render-diagnostics")
            .arg("--manifest-path")
            .arg(root().join("Cargo.toml")),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "conformance_peer")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo built no conformance_peer executable")
}

/// The Python of `target/pyenv` (or `$SHMLINE_PYENV`), with the shmline package built from the
/// current sources.
fn python_with_package() -> PathBuf {
    let script = root().join("scripts/python-env");
    let status = Command::new(&script)
        .arg("--if-stale")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        status.success(),
        "scripts/python-env --if-stale failed ({status}; its output is above): the Python peer \
         needs the shmline package built into target/pyenv. It needs python3 with venv, pip \
         access to PyPI (cffi, numpy) and a C compiler; run scripts/python-env to retry."
    );
    let venv = std::env::var_os("SHMLINE_PYENV").map_or_else(
        || root().join("target/pyenv"),
        |dir| root().join(dir), // a relative path is relative to the repository, as for the script
    );
    venv.join("bin/python")
}

// ---- Running peers ----

/// A peer process whose stdout lines arrive on a channel (so that waiting for one can time out)
/// and whose stderr is collected by a thread.
struct Peer {
    label: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: JoinHandle<String>,
}

/// A peer that has exited (or was killed).
struct Finished {
    label: String,
    /// Exit status, or why there is none.
    status: Result<std::process::ExitStatus, String>,
    stdout: Vec<String>,
    stderr: String,
}

impl Peer {
    fn start(language: Language, role: &str, args: &[String]) -> Peer {
        let label = format!("{} {role}", language.name());
        let mut child = peers()
            .command(language)
            .arg(role)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {label} peer: {e}"));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Peer {
            label,
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// Waits until the peer prints `ready`; false if it exits or `deadline` passes first.
    fn ready(&mut self, deadline: Instant) -> bool {
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.stdout.push(line);
            if self.stdout.last().unwrap() == "ready" {
                return true;
            }
        }
        false
    }

    /// Waits until the peer closes its stdout (it exits), killing it if `deadline` passes first
    /// (`why` then says why it was killed).
    fn finish(mut self, deadline: Instant, why: &str) -> Finished {
        let mut killed = false;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.stdout.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    killed = true;
                    break;
                }
            }
        }
        let status = match self.child.wait() {
            Ok(_) if killed => Err(format!("killed: {why}")),
            Ok(status) => Ok(status),
            Err(e) => Err(format!("cannot wait for it: {e}")),
        };
        Finished {
            label: self.label,
            status,
            stdout: self.stdout,
            stderr: self.stderr.join().unwrap_or_default(),
        }
    }
}

impl Finished {
    fn succeeded(&self) -> bool {
        self.status.as_ref().is_ok_and(|s| s.success())
    }

    fn last_line(&self) -> &str {
        self.stdout.last().map_or("", String::as_str)
    }

    fn report(&self) -> String {
        let status = match &self.status {
            Ok(status) => status.to_string(),
            Err(why) => why.clone(),
        };
        format!(
            "  {} ({status})\n    stdout: {:?}\n    stderr: {}",
            self.label,
            self.stdout,
            self.stderr.trim_end().replace('\n', "\n            ")
        )
    }
}

/// Runs `first` (which creates the segment and prints `ready`), then `second`, and returns both
/// once they have exited. `second` is not started if `first` never gets ready; `first` is
/// killed at once if `second` fails, rather than left waiting for it.
fn run_pair(
    first: (Language, &str),
    second: (Language, &str),
    args: &[String],
) -> (Finished, Option<Finished>) {
    let deadline = Instant::now() + RUN_PATIENCE;
    let late = format!("it had not finished after {} s", RUN_PATIENCE.as_secs());
    let mut creator = Peer::start(first.0, first.1, args);
    if !creator.ready(deadline) {
        return (creator.finish(Instant::now(), &late), None);
    }
    let other = Peer::start(second.0, second.1, args).finish(deadline, &late);
    let creator = if other.succeeded() {
        creator.finish(deadline, &late)
    } else {
        creator.finish(Instant::now(), &format!("{} failed", other.label))
    };
    (creator, Some(other))
}

/// What went wrong in a run: a summary and every peer's output.
fn failure(summary: &str, peers: &[&Finished]) -> String {
    let reports: Vec<String> = peers.iter().map(|p| p.report()).collect();
    format!("{summary}\n{}", reports.join("\n"))
}

/// Checks that both peers of a run succeeded and printed what `check` accepts.
fn judge(
    (first, second): (Finished, Option<Finished>),
    check: impl FnOnce(&str, &str) -> Result<(), String>,
) -> Result<(), String> {
    let Some(second) = second else {
        return Err(failure(
            &format!("{} never got ready", first.label),
            &[&first],
        ));
    };
    // The second first: when it fails, the first is killed, which is not the first's fault.
    for peer in [&second, &first] {
        if !peer.succeeded() {
            return Err(failure(
                &format!("{} failed", peer.label),
                &[&first, &second],
            ));
        }
    }
    check(first.last_line(), second.last_line()).map_err(|why| failure(&why, &[&first, &second]))
}

/// Removes a segment a run left behind, and says so.
fn leftover(removed: shmline::Result<()>, what: &str) -> Result<(), String> {
    match removed {
        Ok(()) => Err(format!("{what} was left in /dev/shm (removed now)")),
        Err(_) => Ok(()),
    }
}

// ---- The matrices ----

/// Runs `run` on every case, `WORKERS` at a time, and returns the results in the cases' order.
fn run_all<C: Sync>(
    cases: &[C],
    run: impl Fn(&C) -> Result<(), String> + Sync,
) -> Vec<Result<(), String>> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new((0..cases.len()).map(|_| None).collect::<Vec<_>>());
    thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                // Relaxed: the counter only hands out indices; the scope's join publishes results.
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let result = run(case);
                results.lock().unwrap()[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

/// Prints a matrix on stderr, bypassing the test harness's capture so that it shows in the log
/// of a passing run too: one row per `rows` label, one column per language, cells PASS or FAIL.
fn print_matrix(
    title: &str,
    row_header: &str,
    rows: &[String],
    results: &[Result<(), String>],
    elapsed: Duration,
) {
    let cell = |text: &str| format!("{text:<8}");
    let mut lines = vec![
        String::new(),
        title.to_owned(),
        format!(
            "{row_header:<24}{}",
            LANGUAGES.map(|l| cell(l.name())).concat()
        ),
    ];
    for (row, results) in rows.iter().zip(results.chunks(LANGUAGES.len())) {
        let marks = results
            .iter()
            .map(|r| cell(if r.is_ok() { "PASS" } else { "FAIL" }));
        lines.push(format!("{row:<24}{}", marks.collect::<String>()));
    }
    let failed = results.iter().filter(|r| r.is_err()).count();
    lines.push(format!(
        "{} runs: {} passed, {failed} failed, in {:.1} s",
        results.len(),
        results.len() - failed,
        elapsed.as_secs_f64()
    ));
    let table: String = lines
        .iter()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    std::io::stderr().write_all(table.as_bytes()).unwrap();
}

/// Fails the test with every failed run's story.
fn assert_all_passed(labels: &[String], results: &[Result<(), String>]) {
    let failures: Vec<String> = labels
        .iter()
        .zip(results)
        .filter_map(|(label, result)| result.as_ref().err().map(|e| format!("{label}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}

struct StreamRun {
    writer: Language,
    reader: Language,
    kind: &'static str,
    path: &'static str,
}

impl StreamRun {
    fn label(&self) -> String {
        format!(
            "{} writer -> {} reader, {} frames, {} path",
            self.writer.name(),
            self.reader.name(),
            self.kind,
            self.path
        )
    }

    fn run(&self) -> Result<(), String> {
        let name = unique("stream");
        let args = [
            "--stream",
            &name,
            "--kind",
            self.kind,
            "--path",
            self.path,
            "--frames",
            &FRAMES.to_string(),
        ]
        .map(String::from);
        let peers = run_pair((self.writer, "write"), (self.reader, "read"), &args);
        let outcome = judge(peers, |wrote, read| {
            let written = wrote.strip_prefix(&format!("wrote {FRAMES} frames digest "));
            let seen = read.strip_prefix(&format!("read {FRAMES} frames digest "));
            match (written, seen) {
                (Some(w), Some(r)) if w == r => Ok(()),
                (Some(_), Some(_)) => Err("the reader's digest is not the writer's".into()),
                _ => Err("a peer did not report the frames it moved".into()),
            }
        });
        // Removed whatever the outcome, so that a failed run leaves nothing either.
        let left = leftover(shmline::Stream::unlink(&name), &format!("stream {name}"));
        outcome.and(left)
    }
}

struct EventRun {
    setter: Language,
    waiter: Language,
    mode: &'static str,
}

impl EventRun {
    fn label(&self) -> String {
        format!(
            "{} setter -> {} waiter, {} event",
            self.setter.name(),
            self.waiter.name(),
            self.mode
        )
    }

    fn run(&self) -> Result<(), String> {
        let name = unique("event");
        let args = [
            "--event",
            &name,
            "--mode",
            self.mode,
            "--count",
            &SIGNALS.to_string(),
        ]
        .map(String::from);
        let peers = run_pair(
            (self.waiter, "wait-event"),
            (self.setter, "set-event"),
            &args,
        );
        let outcome = judge(peers, |waited, set| {
            if waited == "waited" && set == format!("set {SIGNALS}") {
                Ok(())
            } else {
                Err("a peer did not report its signals".into())
            }
        });
        // Removed whatever the outcome, so that a failed run leaves nothing either.
        let left = leftover(shmline::Event::unlink(&name), &format!("event {name}"));
        outcome.and(left)
    }
}

#[test]
fn every_language_reads_every_frame_every_language_writes_by_copy_and_in_place() {
    peers(); // built before the clock starts
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    for writer in LANGUAGES {
        for kind in KINDS {
            for path in PATHS {
                rows.push(format!("{:<8}{kind:<8}{path}", writer.name()));
                for reader in LANGUAGES {
                    runs.push(StreamRun {
                        writer,
                        reader,
                        kind,
                        path,
                    });
                }
            }
        }
    }
    let started = Instant::now();
    let results = run_all(&runs, StreamRun::run);
    print_matrix(
        &format!("conformance: streams of {FRAMES} frames, every byte and sequence number checked; columns: reader"),
        "writer  kind    path",
        &rows,
        &results,
        started.elapsed(),
    );
    let labels: Vec<String> = runs.iter().map(StreamRun::label).collect();
    assert_all_passed(&labels, &results);
}

#[test]
fn every_language_wakes_on_events_every_language_sets() {
    peers(); // built before the clock starts
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    for setter in LANGUAGES {
        for mode in EVENT_MODES {
            rows.push(format!("{:<8}{mode}", setter.name()));
            for waiter in LANGUAGES {
                runs.push(EventRun {
                    setter,
                    waiter,
                    mode,
                });
            }
        }
    }
    let started = Instant::now();
    let results = run_all(&runs, EventRun::run);
    print_matrix(
        &format!("conformance: events set {SIGNALS} times; columns: waiter"),
        "setter  mode",
        &rows,
        &results,
        started.elapsed(),
    );
    let labels: Vec<String> = runs.iter().map(EventRun::label).collect();
    assert_all_passed(&labels, &results);
}
