//! `shmline bridge ...`: runs `shmline-bridge`, the separate program that bridges streams between
//! hosts over Zenoh, so that this command (and the library) never link Zenoh.

use clap::Args;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// Name of the bridge program.
const PROGRAM: &str = "shmline-bridge";

/// Arguments of `shmline bridge`: everything is passed on to `shmline-bridge`.
#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct BridgeArgs {
    /// `export STREAM --key KEY ...` or `import KEY STREAM ...` (see `shmline bridge --help`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// Help shown by `shmline help bridge`.
pub const LONG_ABOUT: &str = "Bridge a stream to other hosts over Zenoh (docs/BRIDGE.md).\n\n\
    shmline bridge export STREAM --key KEY [--listen EP]... [--connect EP]... [--lossy]\n\
    shmline bridge import KEY STREAM [--listen EP]... [--connect EP]... [--lossy]\n\n\
    Runs the `shmline-bridge` program found next to this one, else on PATH; build it with \
    `cargo build --release -p shmline-bridge` or install it with `cargo install --path bridge`.";

/// Where `shmline-bridge` is: next to this executable, else the bare name for a PATH search.
pub fn program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(PROGRAM)))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(PROGRAM))
}

/// Replaces this process by `shmline-bridge ARGS...`; returns only if that fails.
pub fn run(args: &BridgeArgs) -> ExitCode {
    let program = program();
    let err = Command::new(&program).args(&args.args).exec();
    if err.kind() == std::io::ErrorKind::NotFound {
        eprintln!(
            "shmline bridge: the {PROGRAM} program is not installed (looked next to shmline and \
             on PATH); it is a separate program so that shmline never links Zenoh: install it \
             with `cargo install --path bridge` from the shmline sources, or build it with \
             `cargo build --release -p shmline-bridge` and put it next to shmline"
        );
    } else {
        eprintln!("shmline bridge: cannot run {}: {err}", program.display());
    }
    ExitCode::from(127)
}
