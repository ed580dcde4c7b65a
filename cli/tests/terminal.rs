//! `shmline top` and `shmline run` on a real terminal: driven in a tmux pane (a pseudo-terminal
//! with a screen we can read), on pipelines these tests run; and `run` with its output in pipes.
//!
//! tmux is installed by scripts/install-deps. Without it the test says so and passes, except
//! in CI (`CI` set), where a missing tmux fails it.

#[macro_use]
#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};
use support::pipeline::*;
use support::*;

task_roles!(role_source, role_idle, role_chatty);

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
    /// Where the shell in the pane writes the command's exit status.
    status_file: std::path::PathBuf,
}

impl Tmux {
    /// Starts a server running `command` in session `top`, `width` x `height` cells; the shell
    /// in the pane then writes its exit status to a file and stays. `None` if tmux is missing.
    fn start(socket: &str, command: &str, width: u16, height: u16) -> Option<Tmux> {
        let tmux = Tmux {
            socket: socket.to_string(),
            status_file: std::env::temp_dir().join(format!("{socket}.status")),
        };
        let command = format!(
            "{command}; echo $? > {}; sleep 600",
            tmux.status_file.display()
        );
        let (w, h) = (width.to_string(), height.to_string());
        let started = Command::new("tmux")
            .args([
                "-L",
                socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "top",
            ])
            .args(["-x", &w, "-y", &h, &command])
            .output();
        match started {
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!(
                    "skipped: tmux cannot be started ({e}); scripts/install-deps installs it"
                );
                None
            }
            Err(e) => {
                panic!("tmux cannot be started in CI ({e}): scripts/install-deps installs it")
            }
            Ok(out) => {
                assert!(out.status.success(), "tmux: {}", text(&out));
                Some(tmux)
            }
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(out.status.success(), "tmux {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the pane shows now.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// Everything the pane showed, scrolled-off lines included.
    fn history(&self) -> String {
        self.run(&["capture-pane", "-p", "-S", "-", "-t", "top"])
    }

    /// Waits until the screen shows `what` (with the screen, for the message when it never does).
    fn wait_for(&self, what: &str) -> String {
        let mut screen = String::new();
        poll(&format!("the screen to show {what:?}"), || {
            screen = self.screen();
            screen.contains(what)
        });
        screen
    }

    fn resize(&self, width: u16, height: u16) {
        self.run(&[
            "resize-window",
            "-t",
            "top",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
    }

    /// Waits until the command in the pane has exited; returns its exit status.
    fn exit_status(&self) -> i32 {
        let started = std::time::Instant::now();
        loop {
            let status = std::fs::read_to_string(&self.status_file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if let Some(status) = status {
                return status;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the command in the pane did not exit; the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        let _ = std::fs::remove_file(&self.status_file);
    }
}

/// Waits until `condition` holds, looking every 20 ms (each look at the screen starts a tmux
/// client: polling faster would only load the machine).
fn poll(what: &str, mut condition: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(started.elapsed() < PATIENCE, "gave up waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn top_on_a_terminal_shows_the_streams_fits_every_size_keeps_the_final_state_and_quits_on_q() {
    let name = unique("tty");
    let run = endless_pipeline(&name);
    wait_until_running(&name);
    let command = format!(
        "{} top {name} --interval 0.2",
        env!("CARGO_BIN_EXE_shmline")
    );
    let Some(tmux) = Tmux::start(&name, &command, 120, 30) else {
        run.stop();
        run.wait();
        return;
    };

    let screen = tmux.wait_for("idle:");
    assert!(screen.contains(&format!("pipeline {name}")), "{screen}");
    assert!(
        screen.contains("samples") && screen.contains("running"),
        "{screen}"
    );
    assert!(screen.contains("q quit"), "{screen}");

    // Narrower and shorter: every row is cut to the width (never wrapped onto a second line),
    // the status line stays at the bottom.
    tmux.resize(40, 8);
    let mut screen = String::new();
    poll("the view to be redrawn for 40 columns", || {
        screen = tmux.screen();
        let lines: Vec<&str> = screen.lines().collect();
        lines.len() == 8 && lines[7].starts_with("shmline top") && lines[1].contains("STREAM")
    });
    for line in screen.lines() {
        assert!(line.chars().count() <= 40, "{line:?} in\n{screen}");
    }
    assert!(
        screen.lines().nth(2).unwrap().contains("samples"),
        "{screen}"
    );
    tmux.resize(120, 30);

    // The pipeline ends: its final state stays on screen, with a line saying so.
    run.stop();
    run.wait();
    let screen = tmux.wait_for("has ended");
    assert!(
        screen.contains("samples") && screen.contains("stopped"),
        "{screen}"
    );
    assert!(!screen.contains("running"), "{screen}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        tmux.screen().contains("has ended"),
        "the view stays until q"
    );

    tmux.run(&["send-keys", "-t", "top", "q"]);
    assert_eq!(tmux.exit_status(), 0, "{}", tmux.screen());
    // The terminal is given back as it was: the view was on the alternate screen.
    let screen = tmux.screen();
    assert!(!screen.contains("has ended"), "{screen}");
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

/// A manifest in a fresh directory: a source of `frames` frames read by the chatty task, which
/// prints a line on stdout and one on stderr per frame.
fn chatty_manifest(name: &str, frames: u64) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let task = |task: &str, role: &str, extra: &str| {
        let args: Vec<String> = role_args(role).iter().map(|a| format!("{a:?}")).collect();
        format!(
            "[tasks.{task}]\ncommand = {:?}\nargs = [{}]\n{extra}\n",
            exe.to_str().unwrap(),
            args.join(", ")
        )
    };
    let dir = std::env::temp_dir().join(format!("shmline-cli-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pipeline.toml");
    let text = format!(
        "[pipeline]\nname = {name:?}\n\n[streams.samples]\nmax_frame_size = {FRAME}\n\n{}{}",
        // The source's own output (the test harness's chatter) goes to a file.
        task(
            "source",
            "role_source",
            &format!(
                "stdout = \"source.log\"\nenv = {{ FRAMES = \"{frames}\" }}\n\
                 writes = {{ out = \"samples\" }}"
            )
        ),
        task("chatty", "role_chatty", "reads = { input = \"samples\" }"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_on_a_terminal_prints_task_output_prefixed_and_never_on_the_progress_line() {
    let name = unique("run-tty");
    let manifest = chatty_manifest(&name, 100);
    let command = format!(
        "{} run {}",
        env!("CARGO_BIN_EXE_shmline"),
        manifest.display()
    );
    let Some(tmux) = Tmux::start(&name, &command, 150, 50) else {
        std::fs::remove_dir_all(manifest.parent().unwrap()).unwrap();
        return;
    };
    // While it runs, the progress line is at the bottom, alone on its line.
    let screen = tmux.wait_for(&format!("{name} running:"));
    let progress = screen.lines().find(|l| l.contains("running:")).unwrap();
    assert!(progress.starts_with(&name), "{screen}");
    assert_eq!(tmux.exit_status(), 0, "{}", tmux.history());
    let screen = tmux.history();
    std::fs::remove_dir_all(manifest.parent().unwrap()).unwrap();
    assert!(
        screen.contains(&format!("pipeline {name:?} finished")),
        "{screen}"
    );
    let mut got = 0;
    for line in screen.lines() {
        if line.contains("got frame") || line.contains("note ") {
            assert!(line.starts_with("chatty | "), "{line:?} in\n{screen}");
            assert!(!line.contains("f/s"), "a progress line shares {line:?}");
        }
        if line.contains("got frame") {
            got += 1;
        }
    }
    assert_eq!(got, 100, "one line per frame:\n{screen}");
    assert_eq!(segments_of(&name), Vec::<String>::new());
}

#[test]
fn run_into_pipes_prints_task_output_prefixed_with_the_task_name_and_no_progress_line() {
    let name = unique("run-pipe");
    let manifest = chatty_manifest(&name, 5);
    let out = Command::new(env!("CARGO_BIN_EXE_shmline"))
        .args(["run", manifest.to_str().unwrap()])
        .env("PAUSE_MS", "0")
        .output()
        .unwrap();
    std::fs::remove_dir_all(manifest.parent().unwrap()).unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let frames: Vec<&str> = stdout.lines().filter(|l| l.contains("got frame")).collect();
    let expected: Vec<String> = (0..5).map(|i| format!("chatty | got frame {i}")).collect();
    assert_eq!(frames, expected, "{stdout}");
    let notes = stderr
        .lines()
        .filter(|l| l.starts_with("chatty | note "))
        .count();
    assert_eq!(notes, 5, "{stderr}");
    assert!(!stderr.contains("f/s |"), "no progress line: {stderr}");
    assert!(!stderr.contains('\r'), "{stderr}");
}

#[test]
fn top_on_a_terminal_quits_on_ctrl_c_and_on_escape_with_status_0() {
    for (i, key) in ["C-c", "Escape"].into_iter().enumerate() {
        let socket = format!("{}-{i}", unique("tty-keys"));
        let command = format!("{} top --interval 0.2", env!("CARGO_BIN_EXE_shmline"));
        let Some(tmux) = Tmux::start(&socket, &command, 100, 20) else {
            return;
        };
        tmux.wait_for("q quit");
        tmux.run(&["send-keys", "-t", "top", key]);
        assert_eq!(tmux.exit_status(), 0, "{key}: {}", tmux.screen());
    }
}
