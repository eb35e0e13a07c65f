//! `imagetool mkfs vfat`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use imagetool::disk::{mkfs_vfat, parse_size};
use imagetool::fat::{FatType, FormatOptions, Tree, derive_volume_id};

/// Arguments of `mkfs`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(subcommand)]
    fs: Fs,
}

#[derive(Debug, Subcommand)]
enum Fs {
    /// ext4 with mkfs.ext4's default features, written natively from a directory (a drop-in
    /// for `mkfs.ext4 -d`).
    Ext4(super::mkfs_ext4::Ext4Args),
    /// A FAT12/16/32 filesystem from a directory (type and cluster size as mkfs.fat picks them).
    Vfat(Vfat),
}

#[derive(Debug, Parser)]
struct Vfat {
    /// Directory whose contents become the filesystem.
    #[arg(long)]
    source: PathBuf,
    /// The image file to write.
    #[arg(long)]
    output: PathBuf,
    /// Size in bytes (K/M/G suffixes allowed); default: just large enough.
    #[arg(long)]
    size: Option<String>,
    /// Volume label (up to 11 characters).
    #[arg(long)]
    label: Option<String>,
    /// Volume ID as 8 hex digits; default: derived from the label and size.
    #[arg(long)]
    volume_id: Option<String>,
    /// Force the FAT type (12, 16 or 32).
    #[arg(long)]
    fat: Option<u8>,
    /// Hidden sectors (the start LBA of the partition the image is for).
    #[arg(long, default_value_t = 0)]
    hidden_sectors: u32,
}

pub fn run(a: Args) -> Result<()> {
    let v = match a.fs {
        Fs::Vfat(v) => v,
        Fs::Ext4(e) => return super::mkfs_ext4::run(e),
    };
    let size = v
        .size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--size: {e}"))?;
    let fat_type = match v.fat {
        None => None,
        Some(12) => Some(FatType::Fat12),
        Some(16) => Some(FatType::Fat16),
        Some(32) => Some(FatType::Fat32),
        Some(n) => bail!("--fat {n}: expected 12, 16 or 32"),
    };
    let volume_id = match v.volume_id.as_deref() {
        Some(h) => u32::from_str_radix(h.trim_start_matches("0x"), 16)
            .with_context(|| format!("--volume-id {h:?}: expected up to 8 hex digits"))?,
        None => {
            derive_volume_id(format!("{}/{size:?}", v.label.as_deref().unwrap_or("")).as_bytes())
        }
    };
    let tree = Tree::from_dir(&v.source)
        .with_context(|| format!("reading --source {}", v.source.display()))?;
    let opts = FormatOptions {
        label: v.label,
        volume_id,
        hidden_sectors: v.hidden_sectors,
        timestamp: super::source_date_epoch()?,
        fat_type,
        cluster_sectors: None,
    };
    let plan = mkfs_vfat(&tree, &v.output, size, &opts)
        .with_context(|| format!("making {}", v.output.display()))?;
    let p = plan.params();
    super::out(format_args!(
        "{}: FAT{}, {} bytes, {} clusters of {} bytes, {} used",
        v.output.display(),
        p.fat_type.bits(),
        u64::from(p.sectors) * 512,
        p.clusters,
        p.cluster_bytes(),
        plan.used_clusters()
    ))?;
    Ok(())
}
