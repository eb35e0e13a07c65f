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

/// Writes one line of a command's report to stdout. A closed pipe (`imagetool … | head`) is
/// not an error worth a message; any other failure (stdout on a full device) is reported, never
/// a panic. The output is already in place when this runs.
///
/// # Errors
/// The write error, naming stdout.
pub fn out(line: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing the report to stdout"))
        }
        _ => Ok(()),
    }
}

/// The cancel handle of this process: raised by SIGINT or SIGTERM once
/// [`cancel_on_signals`] has run.
pub fn cancel() -> &'static imagetool::blockio::Cancel {
    static CANCEL: std::sync::OnceLock<imagetool::blockio::Cancel> = std::sync::OnceLock::new();
    CANCEL.get_or_init(imagetool::blockio::Cancel::new)
}

/// Makes SIGINT and SIGTERM cancel the work cleanly (every reader and writer stops, nothing
/// is committed, exit status 130); a second signal exits at once (status 130), which still
/// leaves nothing where the output is an unnamed file.
///
/// # Errors
/// When a handler cannot be installed.
pub fn cancel_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = cancel().flag();
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it runs when the flag is already raised: the second signal.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` when set (and valid), else the FAT epoch 1980-01-01.
pub fn source_date_epoch() -> Result<i64> {
    Ok(imagetool::mkfs::source_date_epoch()
        .map_err(anyhow::Error::msg)?
        .unwrap_or(imagetool::mkfs::DEFAULT_EPOCH))
}
