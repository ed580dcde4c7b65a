//! `shmline`: the command-line tool of shmline.
//!
//! One file per command: `info.rs`, `bench.rs` (with its parts under `bench/`). Each command's
//! module exposes an `Args` struct (its options, parsed by clap), a `LONG_ABOUT` text for its
//! `--help`, and a `run` function that returns the process exit code, so adding a command is
//! adding a module and one variant in [`Command`].

mod bench;
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
                  This tool describes the library and its limits (`info`) and measures what it \
                  does on this machine (`bench`).",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the library version, layout version, features, limits and platform.
    #[command(long_about = info::LONG_ABOUT)]
    Info(info::Args),
    /// Measure throughput and latency between two processes on this machine.
    #[command(long_about = bench::LONG_ABOUT)]
    Bench(bench::Args),
    /// Internal: the second process of `shmline bench` (started by it, not by hand).
    #[command(name = "__bench-child", hide = true)]
    BenchChild(bench::ChildArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchChild(args) => bench::run_child(&args),
    }
}
