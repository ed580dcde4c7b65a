//! `shmline`: the command-line tool of shmline.
//!
//! One file per command (`info.rs`, ...). Each command's
//! module exposes an `Args` struct (its options, parsed by clap) and a `run` function that returns
//! the process exit code, so adding a command is adding a module and one line in [`Command`].

mod info;
mod platform;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Move frames between processes through shared memory: inspect, measure and manage shmline.
#[derive(Parser, Debug)]
#[command(
    name = "shmline",
    version = shmline::VERSION,
    about,
    long_about = "Move frames between processes through shared memory, from any language.\n\n\
                  This tool describes the library and its limits (`info`).",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the library version, layout version, features, limits and platform.
    Info(info::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Info(args) => info::run(&args),
    }
}
