//! Standard output as a command-line tool should treat it: when the reader goes away
//! (`shmline ls | head -1`), the command ends quietly with status 0, as `ls` and `cat` do,
//! instead of panicking with "failed printing to stdout: Broken pipe".
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe returns `EPIPE`; [`print`] turns that into
//! a quiet exit. Every command prints through [`out!`](crate::out) and
//! [`outln!`](crate::outln), never `print!`/`println!`.

use std::io::{ErrorKind, Write};

/// Writes `args` to standard output; exits with status 0 if its reader has gone away, and with
/// status 1 (saying why on stderr) on any other write error.
pub fn print(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("shmline: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `print!` that ends the command quietly when standard output is a closed pipe.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::print(format_args!($($arg)*))
    };
}

/// `println!` that ends the command quietly when standard output is a closed pipe.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// The `schema_version` every JSON document of the command carries. It grows when a field
/// changes meaning or goes away (adding a field does not change it); see docs/CLI.md.
pub const SCHEMA_VERSION: u32 = 1;

/// The `--json` and `--pretty` options every command with a JSON output takes.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct JsonFormat {
    /// Print JSON instead of text (compact: one document per line; fields in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// With --json: indent the JSON for people (a document then spans several lines).
    #[arg(long, requires = "json")]
    pub pretty: bool,
}

impl JsonFormat {
    /// Prints `document` as JSON on standard output, compact (one line) or pretty.
    pub fn print<T: serde::Serialize>(&self, document: &T) {
        let text = if self.pretty {
            serde_json::to_string_pretty(document)
        } else {
            serde_json::to_string(document)
        };
        // Serialising plain structs of numbers and strings cannot fail.
        outln!("{}", text.expect("a JSON document serialises"));
    }
}
