//! The `imagetool` command: argument parsing, progress rendering and exit statuses only; all
//! the work is done by the `imagetool` library.

mod cmd;
mod size;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// The exit statuses, shown at the end of `--help` and in docs/user-guide.md.
const EXIT_STATUSES: &str = "\
Exit status (the same for every subcommand):
  0    success
  1    reading or writing failed (I/O), a tool failed, or an internal error
  2    usage error or invalid input: a bad flag or value, a malformed or unsupported input
       file, contents that do not fit the size asked for
  130  interrupted by SIGINT or SIGTERM: nothing was written";

const EXAMPLES: &str = "\
Examples:
  imagetool build --toplevel /nix/store/…-nixos-system --closure-info ./closure \\
      --partition efi --format qcow2 --output nixos.qcow2
  imagetool build --variant amazon --toplevel … --closure-info ./closure --output out/
  imagetool inspect nixos.qcow2
  imagetool convert nixos.raw -O vhdx -o nixos.vhdx
  imagetool mkfs ext4 -d ./root -o root.img --size 2G -L nixos";

/// `--version`'s detail: version, git revision (when built from a checkout), target.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("IMAGETOOL_GIT_REV"),
    ", ",
    env!("IMAGETOOL_TARGET"),
    ")"
);

/// Build NixOS disk images natively: no VM, no KVM, no root.
#[derive(Debug, Parser)]
#[command(
    name = "imagetool",
    version,
    long_version = LONG_VERSION,
    about,
    long_about = None,
    after_help = format!("{EXAMPLES}\n\n{EXIT_STATUSES}"),
)]
pub struct Cli {
    /// Print no progress (errors are still printed).
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print more: each cause of an error on its own line, and plain progress lines even on
    /// a terminal.
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: cmd::Command,
}

/// The clap command (for completions and man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

fn main() -> ExitCode {
    // First of all: a SIGINT/SIGTERM from here on cancels the work (status 130, nothing
    // committed) instead of killing the process wherever it is.
    if let Err(e) = cmd::cancel_on_signals() {
        eprintln!("imagetool: error: {e:#}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    cmd::set_verbosity(if cli.quiet {
        cmd::Verbosity::Quiet
    } else if cli.verbose {
        cmd::Verbosity::Verbose
    } else {
        cmd::Verbosity::Normal
    });
    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // Cancelled by SIGINT/SIGTERM: whatever the error says, nothing was committed.
        Err(_) if cmd::cancel().is_cancelled() => {
            eprintln!("imagetool: interrupted: nothing was written");
            ExitCode::from(130)
        }
        Err(err) => {
            if cmd::verbosity() == cmd::Verbosity::Verbose {
                eprintln!("imagetool: error: {err}");
                for cause in err.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            } else {
                eprintln!("imagetool: error: {}", cmd::one_line(&err));
            }
            ExitCode::from(cmd::exit_status(&err))
        }
    }
}
