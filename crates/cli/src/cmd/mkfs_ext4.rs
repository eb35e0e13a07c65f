//! `imagetool mkfs ext4`: a drop-in for `mkfs.ext4 -d DIR`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use imagetool::build::parse_uuid;
use imagetool::disk::parse_size;
use imagetool::ext4::{Options, Size};
use imagetool::mkfs::{Ext4Job, mkfs_ext4, source_date_epoch};

/// `imagetool mkfs ext4` arguments.
#[derive(Debug, Args)]
pub struct Ext4Args {
    /// The directory whose contents become the filesystem root.
    #[arg(long, short = 'd')]
    source: PathBuf,
    /// The image file to write (created atomically, or written into with --offset).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// `auto` (smallest that fits plus --reserve), or a size in bytes, or with a K/M/G/T suffix.
    #[arg(long, default_value = "auto")]
    size: String,
    /// Volume label (at most 16 bytes).
    #[arg(long, short = 'L', default_value = "")]
    label: String,
    /// Filesystem UUID (default: derived from the label and tree).
    #[arg(long, short = 'U')]
    uuid: Option<String>,
    /// Directory hash seed UUID (default: derived from the filesystem UUID).
    #[arg(long)]
    hash_seed: Option<String>,
    /// Free space to leave with --size auto (bytes, or K/M/G suffix).
    #[arg(long, default_value = "0")]
    reserve: String,
    /// Percentage of blocks reserved for root.
    #[arg(long, short = 'm', default_value_t = 5)]
    reserved_percent: u8,
    /// Data-copy threads (0: one per core). The output does not depend on it.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Write into an existing image at this byte offset instead of creating --output.
    #[arg(long)]
    offset: Option<String>,
    /// Force every file's owner to root:root.
    #[arg(long)]
    root_owner: bool,
}

fn bytes(flag: &str, text: &str) -> Result<u64> {
    parse_size(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

fn uuid(flag: &str, text: Option<&str>) -> Result<Option<[u8; 16]>> {
    text.map(parse_uuid)
        .transpose()
        .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// Runs `mkfs ext4`.
pub fn run(a: Ext4Args) -> Result<()> {
    let size = if a.size == "auto" {
        Size::Auto {
            reserve: bytes("--reserve", &a.reserve)?,
        }
    } else {
        Size::Fixed(bytes("--size", &a.size)?)
    };
    let job = Ext4Job {
        offset: a
            .offset
            .as_deref()
            .map(|o| bytes("--offset", o))
            .transpose()?,
        root_owner: a.root_owner,
        epoch: source_date_epoch().map_err(anyhow::Error::msg)?,
        options: Options {
            size,
            label: a.label.into_bytes(),
            uuid: uuid("--uuid", a.uuid.as_deref())?,
            hash_seed: uuid("--hash-seed", a.hash_seed.as_deref())?,
            reserved_percent: a.reserved_percent,
            threads: a.threads,
            ..Options::default()
        },
        source: a.source,
        output: a.output,
    };
    let plan = mkfs_ext4(&job)?;
    super::out(format_args!(
        "{}: ext4, {} MiB, {} inodes",
        job.output.display(),
        plan.size_bytes() >> 20,
        plan.inode_count()
    ))?;
    Ok(())
}
