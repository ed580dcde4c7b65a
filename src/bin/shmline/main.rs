//! `shmline`: run, list, watch and clean shmline pipelines, streams and events from a terminal.

mod clean;
mod display;
mod ls;
mod procfs;
mod run;
mod top;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Move frames between processes through shared memory: run, watch and clean pipelines.
#[derive(Parser)]
#[command(name = "shmline", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Ls(ls::LsArgs),
    Top(top::TopArgs),
    Clean(clean::CleanArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run::run(&args),
        Command::Ls(args) => ls::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Clean(args) => clean::run(&args),
    }
}
