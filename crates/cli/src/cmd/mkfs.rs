//! `imagetool mkfs vfat`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use imagetool::disk::mkfs_vfat_cancellable;
use imagetool::fat::{FatType, FormatOptions, Tree, derive_volume_id};

use super::usage;

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
    /// squashfs 4.0 from a directory, compressed in parallel (a drop-in for `mksquashfs DIR OUT`).
    Squashfs(super::mkfs_squashfs::SquashfsArgs),
}

#[derive(Debug, Parser)]
struct Vfat {
    /// Directory whose contents become the filesystem.
    #[arg(long)]
    source: PathBuf,
    /// The image file to write.
    #[arg(long)]
    output: PathBuf,
    /// `auto` (just large enough: the smallest whole MiB that holds the contents) or a size:
    /// bytes, 512M, 1.5GiB, 2MB (powers of 1000) [default: auto].
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
    /// Print the report as JSON (schema docs/imagetool-output.schema.json).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let v = match a.fs {
        Fs::Vfat(v) => v,
        Fs::Ext4(e) => return super::mkfs_ext4::run(e),
        Fs::Squashfs(s) => return super::mkfs_squashfs::run(s),
    };
    let size = match v.size.as_deref() {
        None => None,
        Some(t) => crate::size::parse_auto("--size", t).map_err(|e| usage!("{e}"))?,
    };
    let fat_type = match v.fat {
        None => None,
        Some(12) => Some(FatType::Fat12),
        Some(16) => Some(FatType::Fat16),
        Some(32) => Some(FatType::Fat32),
        Some(n) => return Err(usage!("--fat {n}: expected 12, 16 or 32")),
    };
    if let Some(l) = &v.label
        && l.len() > 11
    {
        return Err(usage!(
            "--label {l:?}: {} bytes; a FAT label has at most 11",
            l.len()
        ));
    }
    super::check_output_dir("--output", &v.output)?;
    let volume_id = match v.volume_id.as_deref() {
        Some(h) => u32::from_str_radix(h.trim_start_matches("0x"), 16)
            .map_err(|_| usage!("--volume-id {h:?}: expected up to 8 hex digits"))?,
        None => {
            derive_volume_id(format!("{}/{size:?}", v.label.as_deref().unwrap_or("")).as_bytes())
        }
    };
    let tree = Tree::from_dir(&v.source)
        .with_context(|| format!("reading --source {}", v.source.display()))?;
    let mut opts = FormatOptions::default();
    opts.label = v.label;
    opts.volume_id = volume_id;
    opts.hidden_sectors = v.hidden_sectors;
    opts.timestamp = super::source_date_epoch()?;
    opts.fat_type = fat_type;
    opts.cluster_sectors = None;
    super::cancel_on_signals()?;
    let meter = super::progress::Meter::spinner("mkfs vfat");
    let plan = mkfs_vfat_cancellable(&tree, &v.output, size, &opts, super::cancel())
        .with_context(|| format!("making {}", v.output.display()))?;
    let p = plan.params();
    let bytes = u64::from(p.sectors) * 512;
    meter.finish(&format!("{bytes} bytes"));
    if v.json {
        return super::json_out(
            "mkfs",
            serde_json::json!({
                "filesystem": "vfat",
                "output": v.output,
                "size": bytes,
                "fatType": p.fat_type.bits(),
                "clusters": p.clusters,
                "clusterBytes": p.cluster_bytes(),
                "usedClusters": plan.used_clusters(),
            }),
        );
    }
    super::out(format_args!(
        "{}: FAT{}, {} bytes, {} clusters of {} bytes, {} used",
        v.output.display(),
        p.fat_type.bits(),
        bytes,
        p.clusters,
        p.cluster_bytes(),
        plan.used_clusters()
    ))?;
    Ok(())
}
