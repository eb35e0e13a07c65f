//! `imagetool mkfs ext4`: a drop-in for `mkfs.ext4 -d DIR`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use imagetool::build::parse_uuid;
use imagetool::ext4::{Options, Size};
use imagetool::mkfs::{Ext4Job, mkfs_ext4_cancellable, source_date_epoch};

use super::usage;

/// `imagetool mkfs ext4` arguments.
#[derive(Debug, Args)]
pub struct Ext4Args {
    /// The directory whose contents become the filesystem root.
    #[arg(long, short = 'd')]
    source: PathBuf,
    /// The image file to write (created atomically, or written into with --offset).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// `auto` (smallest that fits plus --reserve) or a size: bytes, 512M, 2G, 1.5GiB, 2GB
    /// (powers of 1000).
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
    /// Free space to leave with --size auto (a size, as --size).
    #[arg(long, default_value = "0")]
    reserve: String,
    /// Percentage of blocks reserved for root.
    #[arg(long, short = 'm', default_value_t = 5)]
    reserved_percent: u8,
    /// Data-copy threads (0: one per core). The output does not depend on it.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Write into an existing image at this offset (a size, as --size) instead of creating
    /// --output.
    #[arg(long)]
    offset: Option<String>,
    /// Force every file's owner to root:root.
    #[arg(long)]
    root_owner: bool,
    /// Print the report as JSON (schema docs/imagetool-output.schema.json).
    #[arg(long)]
    json: bool,
}

fn bytes(flag: &str, text: &str) -> Result<u64> {
    crate::size::parse(flag, text).map_err(|e| usage!("{e}"))
}

fn uuid(flag: &str, text: Option<&str>) -> Result<Option<imagetool::Uuid>> {
    text.map(parse_uuid)
        .transpose()
        .map_err(|e| usage!("{flag}: {e}"))
}

/// Runs `mkfs ext4`.
pub fn run(a: Ext4Args) -> Result<()> {
    let size = match crate::size::parse_auto("--size", &a.size).map_err(|e| usage!("{e}"))? {
        None => Size::Auto {
            reserve: bytes("--reserve", &a.reserve)?,
        },
        Some(b) => Size::Fixed(b),
    };
    if a.label.len() > 16 {
        return Err(usage!(
            "--label {:?}: {} bytes; an ext4 label has at most 16",
            a.label,
            a.label.len()
        ));
    }
    if a.offset.is_none() {
        super::check_output_dir("--output", &a.output)?;
    }
    let mut job = Ext4Job::new(a.source, a.output);
    job.offset = a
        .offset
        .as_deref()
        .map(|o| bytes("--offset", o))
        .transpose()?;
    job.root_owner = a.root_owner;
    job.epoch = source_date_epoch().map_err(|e| usage!("{e}"))?;
    job.options = {
        let mut o = Options::default();
        o.size = size;
        o.label = a.label.into_bytes();
        o.uuid = uuid("--uuid", a.uuid.as_deref())?;
        o.hash_seed = uuid("--hash-seed", a.hash_seed.as_deref())?;
        o.reserved_percent = a.reserved_percent;
        o.threads = a.threads;
        o
    };
    super::cancel_on_signals()?;
    let meter = super::progress::Meter::spinner("mkfs ext4");
    let plan = mkfs_ext4_cancellable(&job, super::cancel())?;
    meter.finish(&format!("{} bytes", plan.size_bytes()));
    if a.json {
        return super::json_out(
            "mkfs",
            serde_json::json!({
                "filesystem": "ext4",
                "output": job.output,
                "size": plan.size_bytes(),
                "inodes": plan.inode_count(),
            }),
        );
    }
    super::out(format_args!(
        "{}: ext4, {} MiB, {} inodes",
        job.output.display(),
        plan.size_bytes() >> 20,
        plan.inode_count()
    ))?;
    Ok(())
}
