//! `shmline`: the command-line tool of shmline: run, list, watch and clean pipelines, streams and
//! events, describe the library and measure it.
//!
//! One file per command (`run.rs`, `ls.rs`, `top.rs`, `clean.rs`, `info.rs`, `bench.rs` with its
//! parts under `bench/`). Each exposes its clap `Args` and a `run` function returning the process
//! exit code, so adding a command is adding a module and one variant in [`Command`].

#[macro_use]
mod output;

mod bench;
mod bridge;
mod clean;
mod display;
mod info;
mod ls;
mod man;
mod platform;
mod run;
mod top;
mod usage;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Move frames between processes through shared memory: run, watch and clean pipelines.
#[derive(Parser)]
#[command(
    name = "shmline",
    version = shmline::VERSION,
    about,
    long_about = "Move frames between processes through shared memory, from any language.\n\n\
                  Run pipelines from a manifest (`run`), see what exists on this machine (`ls`), \
                  watch it live (`top`), remove what dead processes left (`clean`), describe the \
                  library and its limits (`info`), measure it on this machine (`bench`) and \
                  bridge streams to other hosts (`bridge`).",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Ls(ls::LsArgs),
    Top(top::TopArgs),
    Clean(clean::CleanArgs),
    /// Show the library version, layout version, features, limits and platform.
    #[command(long_about = info::LONG_ABOUT)]
    Info(info::Args),
    /// Measure throughput and latency between two processes on this machine.
    #[command(long_about = bench::LONG_ABOUT)]
    Bench(bench::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(long_about = None)]
    Completions(man::CompletionsArgs),
    /// Print the manual page of shmline or of one of its commands.
    #[command(long_about = None)]
    Man(man::ManArgs),
    /// Bridge a stream to other hosts over Zenoh (runs the separate `shmline-bridge` program).
    #[command(long_about = bridge::LONG_ABOUT)]
    Bridge(bridge::BridgeArgs),
    /// Internal: the second process of `shmline bench` (started by it, not by hand).
    #[command(name = "__bench-child", hide = true)]
    BenchChild(bench::ChildArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run::run(&args),
        Command::Ls(args) => ls::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Clean(args) => clean::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Completions(args) => man::run_completions(&args),
        Command::Man(args) => man::run_man(&args),
        Command::Bridge(args) => bridge::run(&args),
        Command::BenchChild(args) => bench::run_child(&args),
    }
}
