//! One module per subcommand; each adds one variant here and one arm in [`run`].

mod build;
mod convert;
mod disk;
mod inspect;
mod iso;
mod layout_args;
mod mkfs;
mod mkfs_ext4;

use anyhow::Result;
use clap::Subcommand;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a NixOS disk image from a system closure (make-disk-image without a VM).
    Build(Box<build::Args>),
    /// Make a filesystem image (ext4, FAT).
    Mkfs(mkfs::Args),
    /// Show an image's partition table and the filesystems in it.
    Inspect(inspect::Args),
    /// Assemble a partitioned raw disk from a root filesystem image and ESP contents.
    Disk(disk::Args),
    /// Convert a raw disk image to a container format (qcow2, vdi, vhd, vhdx, vmdk).
    Convert(convert::Args),
}

/// Runs a parsed subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Build(a) => build::run(*a),
        Command::Convert(args) => convert::run(&args),
        Command::Mkfs(a) => mkfs::run(a),
        Command::Inspect(a) => inspect::run(&a),
        Command::Disk(a) => disk::run(a),
    }
}

/// `SOURCE_DATE_EPOCH` when set (and valid), else the FAT epoch 1980-01-01.
pub fn source_date_epoch() -> Result<i64> {
    Ok(imagetool::mkfs::source_date_epoch()
        .map_err(anyhow::Error::msg)?
        .unwrap_or(imagetool::mkfs::DEFAULT_EPOCH))
}
