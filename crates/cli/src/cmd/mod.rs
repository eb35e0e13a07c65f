//! One module per subcommand; each adds one variant here and one arm in [`run`].

pub mod mkfs;

use anyhow::Result;
use clap::Subcommand;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a filesystem from a directory tree.
    #[command(subcommand)]
    Mkfs(mkfs::Mkfs),
}

/// Runs a parsed subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Mkfs(m) => mkfs::run(m),
    }
}
