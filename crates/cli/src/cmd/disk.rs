//! `imagetool disk`: a partitioned raw disk from filesystem blobs.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use imagetool::disk::{DiskSpec, build_disk, parse_size};
use imagetool::fat::Tree;
use imagetool::ptable::{BootSizeRounding, DiskSize, Identifiers, LayoutOptions, TableType};

/// Arguments of `disk`.
#[derive(Debug, Parser)]
pub struct Args {
    /// make-disk-image's partitionTableType: legacy, legacy+boot, legacy+gpt, efi,
    /// efixbootldr, hybrid, none.
    #[arg(long)]
    partition_table: String,
    /// `auto` or a size in MiB.
    #[arg(long, default_value = "auto")]
    disk_size: String,
    /// Extra space for the root with `--disk-size auto` (make-disk-image's additionalSpace).
    #[arg(long, default_value = "512M")]
    additional_space: String,
    /// End offset of the boot partition (make-disk-image's bootSize).
    #[arg(long, default_value = "256M")]
    boot_size: String,
    /// `upstream` (256M ends at 257 MiB, as make-disk-image does today) or `exact`.
    #[arg(long, default_value = "upstream")]
    boot_size_rounding: String,
    /// The root filesystem image.
    #[arg(long)]
    root_fs: PathBuf,
    /// Directory copied into the ESP.
    #[arg(long)]
    esp_dir: Option<PathBuf>,
    /// Directory copied into the BOOT partition (efixbootldr, legacy+boot).
    #[arg(long)]
    boot_dir: Option<PathBuf>,
    /// The root partition's GUID (make-disk-image's rootGPUID).
    #[arg(long)]
    root_guid: Option<String>,
    /// Derive every GUID, the MBR signature and FAT serials from this seed instead.
    #[arg(long, conflicts_with = "root_guid")]
    seed: Option<String>,
    /// The raw image to write.
    #[arg(long)]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let table: TableType = a.partition_table.parse().context("--partition-table")?;
    let disk_size = if a.disk_size == "auto" {
        DiskSize::Auto {
            additional_space: parse_size(&a.additional_space)
                .map_err(|e| anyhow!("--additional-space: {e}"))?,
        }
    } else {
        DiskSize::Mib(a.disk_size.parse().map_err(|_| {
            anyhow!(
                "--disk-size {:?}: expected `auto` or a number of MiB",
                a.disk_size
            )
        })?)
    };
    let boot_rounding = match a.boot_size_rounding.as_str() {
        "upstream" => BootSizeRounding::Upstream,
        "exact" => BootSizeRounding::Exact,
        o => {
            return Err(anyhow!(
                "--boot-size-rounding {o:?}: expected upstream or exact"
            ));
        }
    };
    let ids = match (&a.seed, &a.root_guid) {
        (Some(s), _) => Identifiers::Seeded(s.as_bytes().to_vec()),
        (None, Some(g)) => Identifiers::MakeDiskImage {
            root: g.parse().context("--root-guid")?,
        },
        (None, None) => Identifiers::default(),
    };
    let tree = |d: &Option<PathBuf>, opt: &str| -> Result<Option<Tree>> {
        d.as_ref()
            .map(|p| Tree::from_dir(p).with_context(|| format!("{opt} {}", p.display())))
            .transpose()
    };
    let spec = DiskSpec {
        layout: LayoutOptions {
            table,
            disk_size,
            boot_size: parse_size(&a.boot_size).map_err(|e| anyhow!("--boot-size: {e}"))?,
            boot_rounding,
            ids,
            mbr_signature: None,
        },
        root_fs: a.root_fs.clone(),
        esp: tree(&a.esp_dir, "--esp-dir")?,
        boot: tree(&a.boot_dir, "--boot-dir")?,
        timestamp: super::source_date_epoch()?,
        output: a.output.clone(),
    };
    let report = build_disk(&spec).with_context(|| format!("building {}", a.output.display()))?;
    let l = &report.layout;
    println!(
        "{}: {} table, {} bytes",
        a.output.display(),
        l.table,
        l.disk_size
    );
    for p in &l.partitions {
        println!(
            "  {} {:?}: sectors {}..={} ({} bytes){}",
            p.number,
            p.role,
            p.first_lba,
            p.last_lba,
            p.sectors() * 512,
            p.guid.map_or(String::new(), |g| format!(" GUID {g}"))
        );
    }
    let written: u64 = report.written.iter().map(|r| r.end - r.start).sum();
    println!(
        "  {written} bytes allocated in {} extents",
        report.written.len()
    );
    Ok(())
}
