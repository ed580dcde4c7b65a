//! `shmline-bridge`: bridges shmline streams between hosts over Zenoh (docs/BRIDGE.md).
//!
//! `shmline-bridge export STREAM --key KEY` publishes a local stream; `shmline-bridge import KEY
//! STREAM` feeds a local stream from it on another host. Lossless by default (credit-based flow
//! control end to end), lossy with `--lossy`. The `shmline` command runs this program for
//! `shmline bridge ...`.

mod bench;
mod export;
mod import;
mod session;
mod wire;

use clap::{Parser, Subcommand};

/// Exit code of an exporter whose origin writer died, and of an importer that abandoned its
/// local writer (its readers get WRITER_DEAD).
pub const EXIT_WRITER_DEAD: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "shmline-bridge",
    version,
    about = "Bridge shmline streams between hosts over Zenoh, lossless end to end"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish a local stream on a Zenoh key.
    Export(export::ExportArgs),
    /// Feed a local stream (created like the origin if absent) from a Zenoh key.
    Import(import::ImportArgs),
    /// Measure raw Zenoh and the bridge in the same run on loopback.
    Bench(bench::BenchArgs),
}

/// A number that differs between runs of the bridge, telling one exporter or importer
/// incarnation from another.
pub fn epoch() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
    nanos ^ std::process::id().rotate_left(16)
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Export(args) => export::run(args),
        Command::Import(args) => import::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(message) => {
            eprintln!("shmline-bridge: {message}");
            std::process::exit(1);
        }
    }
}
