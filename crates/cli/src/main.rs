//! The `imagetool` command: argument parsing, progress rendering and exit codes only; all the
//! work is done by the `imagetool` library.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// Build NixOS disk images natively: no VM, no KVM, no root.
#[derive(Debug, Parser)]
#[command(name = "imagetool", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("imagetool: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
