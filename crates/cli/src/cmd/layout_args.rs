//! The partition-layout flags `disk` and `build` share (make-disk-image's arguments).

use anyhow::Result;
use clap::Args;
use imagetool::ptable::{BootSizeRounding, DiskSize, Identifiers, LayoutOptions, TableType};
use imagetool::spec::Spec;

use super::usage;

/// Table type, sizes and identifiers.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// make-disk-image's partitionTableType: legacy, legacy+boot, legacy+gpt, efi,
    /// efixbootldr, hybrid, none; or sd-card (sd-image.nix).
    /// [default: legacy, or the variant's]
    #[arg(long = "partition", visible_alias = "partition-table")]
    partition: Option<String>,
    /// `auto` or a whole number of MiB: 2G, 1.5GiB, 4096M, or a bare number of MiB as
    /// make-disk-image's diskSize [default: auto, or the variant's].
    #[arg(long)]
    disk_size: Option<String>,
    /// Extra space for the root with `--disk-size auto` (make-disk-image's additionalSpace;
    /// a size: bytes, 512M, 1.5G) [default: 512M, or the variant's].
    #[arg(long)]
    additional_space: Option<String>,
    /// End offset of the boot partition (make-disk-image's bootSize; a size: 256M, 0.5G)
    /// [default: 256M, or the variant's].
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
    ///
    /// # Errors
    /// A usage error naming the flag when a size is not in the CLI's size syntax.
    pub fn fill_spec(&self, spec: &mut Spec) -> Result<()> {
        if let Some(p) = &self.partition {
            spec.partition_table_type = p.clone();
        }
        // Sizes go into the spec in the keys' own units (diskSize in MiB, the others in
        // bytes), so the spec never sees the CLI's syntax.
        if let Some(d) = &self.disk_size {
            spec.disk_size = match disk_size_mib(d)? {
                None => "auto".into(),
                Some(mib) => imagetool::spec::SizeValue::Number(mib),
            };
        }
        if let Some(a) = &self.additional_space {
            spec.additional_space =
                imagetool::spec::SizeValue::Number(bytes("--additional-space", a)?);
        }
        if let Some(b) = &self.boot_size {
            spec.boot_size = imagetool::spec::SizeValue::Number(bytes("--boot-size", b)?);
        }
        spec.boot_size_rounding = self.boot_size_rounding.clone();
        spec.root_gpuid = self.root_guid.clone();
        spec.seed = self.seed.clone();
        Ok(())
    }

    /// The layout options these flags describe.
    pub fn options(&self) -> Result<LayoutOptions> {
        let partition = self.partition.as_deref().unwrap_or("legacy");
        let disk_size = self.disk_size.as_deref().unwrap_or("auto");
        let additional_space = self.additional_space.as_deref().unwrap_or("512M");
        let table: TableType = partition
            .parse()
            .map_err(|e| usage!("--partition {partition:?}: {e}"))?;
        let disk_size = match disk_size_mib(disk_size)? {
            None => DiskSize::Auto {
                additional_space: bytes("--additional-space", additional_space)?,
            },
            Some(mib) => DiskSize::Mib(mib),
        };
        let boot_rounding = match self.boot_size_rounding.as_str() {
            "upstream" => BootSizeRounding::Upstream,
            "exact" => BootSizeRounding::Exact,
            o => {
                return Err(usage!(
                    "--boot-size-rounding {o:?}: expected upstream or exact"
                ));
            }
        };
        let ids = match (&self.seed, &self.root_guid) {
            (Some(s), _) => Identifiers::Seeded(s.as_bytes().to_vec()),
            (None, Some(g)) => Identifiers::MakeDiskImage {
                root: g.parse().map_err(|e| usage!("--root-guid {g:?}: {e}"))?,
            },
            (None, None) => Identifiers::default(),
        };
        Ok({
            let mut o = LayoutOptions::default();
            o.table = table;
            o.disk_size = disk_size;
            o.boot_size = bytes("--boot-size", self.boot_size.as_deref().unwrap_or("256M"))?;
            o.boot_rounding = boot_rounding;
            o.ids = ids;
            o.mbr_signature = None;
            o
        })
    }
}

/// A size flag in the CLI's syntax, in bytes.
fn bytes(flag: &str, text: &str) -> Result<u64> {
    crate::size::parse(flag, text).map_err(|e| usage!("{e}"))
}

/// `--disk-size`: `auto` (`None`) or a whole number of MiB; a bare number is MiB, as
/// make-disk-image's diskSize.
fn disk_size_mib(text: &str) -> Result<Option<u64>> {
    if text.trim() == "auto" {
        return Ok(None);
    }
    let b =
        crate::size::parse_with_unit("--disk-size", text, 1 << 20).map_err(|e| usage!("{e}"))?;
    if !b.is_multiple_of(1 << 20) {
        return Err(usage!(
            "--disk-size {text:?}: not a whole number of MiB (make-disk-image sizes disks in MiB)"
        ));
    }
    Ok(Some(b >> 20))
}
