//! The partition-layout flags `disk` and `build` share (make-disk-image's arguments).

use anyhow::{Context, Result, anyhow};
use clap::Args;
use imagetool::disk::parse_size;
use imagetool::ptable::{BootSizeRounding, DiskSize, Identifiers, LayoutOptions, TableType};
use imagetool::spec::Spec;

/// Table type, sizes and identifiers.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// make-disk-image's partitionTableType: legacy, legacy+boot, legacy+gpt, efi,
    /// efixbootldr, hybrid, none; or sd-card (sd-image.nix).
    /// [default: legacy, or the variant's]
    #[arg(long = "partition", visible_alias = "partition-table")]
    partition: Option<String>,
    /// `auto` or a size in MiB [default: auto, or the variant's].
    #[arg(long)]
    disk_size: Option<String>,
    /// Extra space for the root with `--disk-size auto` (make-disk-image's additionalSpace)
    /// [default: 512M, or the variant's].
    #[arg(long)]
    additional_space: Option<String>,
    /// End offset of the boot partition (make-disk-image's bootSize) [default: 256M, or the
    /// variant's].
    #[arg(long)]
    boot_size: Option<String>,
    /// `upstream` (256M ends at 257 MiB, as make-disk-image does today) or `exact`.
    #[arg(long, default_value = "upstream")]
    boot_size_rounding: String,
    /// The root partition's GUID (make-disk-image's rootGPUID).
    #[arg(long)]
    root_guid: Option<String>,
    /// Derive every GUID, the MBR signature and FAT serials from this seed instead.
    #[arg(long, conflicts_with = "root_guid")]
    seed: Option<String>,
}

impl LayoutArgs {
    /// Puts these flags into a build spec (its make-disk-image keys), unparsed: the spec
    /// checks them as it checks JSON.
    /// Flags not given keep the spec's value (make-disk-image's default, or a variant's).
    pub fn fill_spec(&self, spec: &mut Spec) {
        if let Some(p) = &self.partition {
            spec.partition_table_type = p.clone();
        }
        if let Some(d) = &self.disk_size {
            spec.disk_size = d.as_str().into();
        }
        if let Some(a) = &self.additional_space {
            spec.additional_space = a.as_str().into();
        }
        if let Some(b) = &self.boot_size {
            spec.boot_size = b.as_str().into();
        }
        spec.boot_size_rounding = self.boot_size_rounding.clone();
        spec.root_gpuid = self.root_guid.clone();
        spec.seed = self.seed.clone();
    }

    /// The layout options these flags describe.
    pub fn options(&self) -> Result<LayoutOptions> {
        let partition = self.partition.as_deref().unwrap_or("legacy");
        let disk_size = self.disk_size.as_deref().unwrap_or("auto");
        let additional_space = self.additional_space.as_deref().unwrap_or("512M");
        let table: TableType = partition.parse().context("--partition")?;
        let disk_size = if disk_size == "auto" {
            DiskSize::Auto {
                additional_space: parse_size(additional_space)
                    .map_err(|e| anyhow!("--additional-space: {e}"))?,
            }
        } else {
            DiskSize::Mib(disk_size.parse().map_err(|_| {
                anyhow!("--disk-size {disk_size:?}: expected `auto` or a number of MiB")
            })?)
        };
        let boot_rounding = match self.boot_size_rounding.as_str() {
            "upstream" => BootSizeRounding::Upstream,
            "exact" => BootSizeRounding::Exact,
            o => {
                return Err(anyhow!(
                    "--boot-size-rounding {o:?}: expected upstream or exact"
                ));
            }
        };
        let ids = match (&self.seed, &self.root_guid) {
            (Some(s), _) => Identifiers::Seeded(s.as_bytes().to_vec()),
            (None, Some(g)) => Identifiers::MakeDiskImage {
                root: g.parse().context("--root-guid")?,
            },
            (None, None) => Identifiers::default(),
        };
        Ok(LayoutOptions {
            table,
            disk_size,
            boot_size: parse_size(self.boot_size.as_deref().unwrap_or("256M"))
                .map_err(|e| anyhow!("--boot-size: {e}"))?,
            boot_rounding,
            ids,
            mbr_signature: None,
        })
    }
}
