//! `shmline man` and `shmline completions`: the manual pages and the shell completion scripts,
//! generated from the same clap definitions as the command line itself, so they never drift.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;
use std::process::ExitCode;

/// Print the manual page of shmline (troff, for `man -l -`), or of one of its commands.
///
/// `shmline man | man -l -` reads it; `shmline man --dir DIR` writes every page (shmline.1,
/// shmline-run.1, ...) into DIR, which is how docs/man/ in the repository is made (a test keeps
/// it up to date) and what a package installs into share/man/man1.
#[derive(clap::Args)]
pub struct ManArgs {
    /// The command whose page to print (run, ls, top...); default: shmline's own page.
    pub command: Option<String>,
    /// Write every page into this directory instead of printing one.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<PathBuf>,
}

/// Print a completion script for a shell.
///
/// Bash: `shmline completions bash > ~/.local/share/bash-completion/completions/shmline`.
/// Zsh: `shmline completions zsh > "${fpath[1]}/_shmline"`.
/// Fish: `shmline completions fish > ~/.config/fish/completions/shmline.fish`.
#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: Shell,
}

/// Runs `shmline man`.
pub fn run_man(args: &ManArgs) -> ExitCode {
    if let Some(dir) = &args.dir {
        return match write_pages(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("shmline man: writing pages into {}: {e}", dir.display());
                ExitCode::from(1)
            }
        };
    }
    let mut command = crate::Cli::command();
    command.build();
    let page = match &args.command {
        None => command,
        Some(name) => match documented(&command).find(|c| c.get_name() == name) {
            Some(sub) => page_of(sub),
            None => {
                eprintln!(
                    "shmline man: no command {name:?} (the commands are: {})",
                    visible(&command).collect::<Vec<_>>().join(", ")
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut text = Vec::new();
    // Rendering into memory cannot fail.
    clap_mangen::Man::new(page)
        .render(&mut text)
        .expect("rendering into memory");
    out!("{}", String::from_utf8_lossy(&text));
    ExitCode::SUCCESS
}

/// Runs `shmline completions`.
pub fn run_completions(args: &CompletionsArgs) -> ExitCode {
    // clap_complete offers hidden commands too: complete a copy of the command without them.
    let full = crate::Cli::command();
    let mut command = clap::Command::new("shmline")
        .version(shmline::VERSION)
        .subcommand_required(true)
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "shmline", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    ExitCode::SUCCESS
}

/// The commands a user may call and read a page about (not clap's own `help`).
fn documented(command: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    command
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
}

/// The names of the [`documented`] commands.
fn visible(command: &clap::Command) -> impl Iterator<Item = &str> {
    documented(command).map(|c| c.get_name())
}

/// A subcommand as a page of its own: `shmline-run`, with the version of shmline.
fn page_of(sub: &clap::Command) -> clap::Command {
    let name = format!("shmline-{}", sub.get_name());
    sub.clone()
        .name(name.clone())
        .bin_name(format!("shmline {}", sub.get_name()))
        .display_name(name)
        .version(shmline::VERSION)
}

/// Writes shmline.1 and shmline-COMMAND.1 for every visible command into `dir`.
fn write_pages(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut command = crate::Cli::command();
    command.build();
    let mut pages = vec![("shmline".to_string(), command.clone())];
    for sub in documented(&command) {
        pages.push((format!("shmline-{}", sub.get_name()), page_of(sub)));
    }
    for (name, page) in pages {
        let mut text = Vec::new();
        clap_mangen::Man::new(page).render(&mut text)?;
        std::fs::write(dir.join(format!("{name}.1")), text)?;
    }
    Ok(())
}
