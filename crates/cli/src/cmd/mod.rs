//! One module per subcommand; each adds one variant here and one arm in [`run`].

mod convert;

use anyhow::Result;
use clap::Subcommand;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert a raw disk image to a container format (qcow2, vdi, vhd, vhdx, vmdk).
    Convert(convert::Args),
}

/// Runs a parsed subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Convert(args) => convert::run(&args),
    }
}
