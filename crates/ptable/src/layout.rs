//! The layout planner: make-disk-image's partition tables, computed without touching a disk.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use imagetool_blockio::WriteAt;

use crate::error::{Error, ErrorKind, Result, overflow};
use crate::gpt::{self, GptEntry, SECTOR, types};
use crate::guid::{Guid, derive_bytes};
use crate::mbr::{self, Geometry, Mbr, MbrEntry};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// The largest disk imagetool builds: 64 TiB (VHDX's limit and the largest virtual size the
/// container readers accept). [`plan`] refuses a larger `diskSize` or `additionalSpace` before
/// anything is allocated.
pub const MAX_DISK_BYTES: u64 = 64 << 40;
const MIB_SECTORS: u64 = MIB / SECTOR;

/// make-disk-image's `partitionTableType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableType {
    /// MBR, one Linux partition from 1 MiB to the end.
    Legacy,
    /// MBR, a bootable FAT32 (0x0c) BOOT partition from 1 MiB to `bootSize`, then Linux.
    LegacyBoot,
    /// GPT, a BIOS boot partition at 1–2 MiB, then Linux.
    LegacyGpt,
    /// GPT, an ESP from 8 MiB to `bootSize`, then Linux.
    Efi,
    /// GPT, an ESP at 8–100 MiB, an XBOOTLDR partition to `bootSize`, then Linux.
    EfiXbootldr,
    /// GPT, an ESP from 8 MiB to `bootSize`, a BIOS boot partition in sectors 34–2048, then
    /// Linux.
    Hybrid,
    /// No table: the disk is the root filesystem.
    None,
    /// nixpkgs' `sd-image.nix`: MBR (disk signature `firmwarePartitionID`), a bootable
    /// `W95 FAT32` (0x0b) firmware partition of `firmwareSize` (30 MiB) at
    /// `firmwarePartitionOffset` (8 MiB), then Linux to the end. Not a make-disk-image type
    /// (not in [`TableType::ALL`]).
    SdCard,
}

impl TableType {
    /// Every type, in make-disk-image's documentation order.
    pub const ALL: [TableType; 7] = [
        TableType::Legacy,
        TableType::LegacyBoot,
        TableType::LegacyGpt,
        TableType::Efi,
        TableType::EfiXbootldr,
        TableType::Hybrid,
        TableType::None,
    ];

    /// The name make-disk-image uses.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            TableType::Legacy => "legacy",
            TableType::LegacyBoot => "legacy+boot",
            TableType::LegacyGpt => "legacy+gpt",
            TableType::Efi => "efi",
            TableType::EfiXbootldr => "efixbootldr",
            TableType::Hybrid => "hybrid",
            TableType::None => "none",
            TableType::SdCard => "sd-card",
        }
    }

    /// True for the GPT types.
    #[must_use]
    pub fn is_gpt(self) -> bool {
        matches!(
            self,
            TableType::LegacyGpt | TableType::Efi | TableType::EfiXbootldr | TableType::Hybrid
        )
    }

    /// True for the types with a partition ending at `bootSize`.
    #[must_use]
    pub fn uses_boot_size(self) -> bool {
        matches!(
            self,
            TableType::LegacyBoot | TableType::Efi | TableType::EfiXbootldr | TableType::Hybrid
        )
    }
}

impl fmt::Display for TableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TableType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TableType::ALL
            .into_iter()
            .chain([TableType::SdCard])
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TableType::ALL
                    .iter()
                    .chain(&[TableType::SdCard])
                    .map(|t| t.name())
                    .collect();
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "unknown partition table type {s:?} (expected one of: {})",
                        names.join(", ")
                    ),
                )
            })
    }
}

/// How `bootSize` (the end offset of the boot partition) becomes a MiB boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootSizeRounding {
    /// Current make-disk-image: `round_to_nearest` computes `(bootSize / 1MiB + 1) MiB`, so the
    /// default `256M` ends the boot partition at 257 MiB.
    #[default]
    Upstream,
    /// The end offset asked for, rounded up to a whole MiB (`256M` ends at 256 MiB).
    Exact,
}

/// The disk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSize {
    /// As small as the filesystems allow, plus `additional_space` bytes for the root, rounded
    /// up to whole MiB.
    Auto {
        /// Extra bytes for the root partition (make-disk-image's `additionalSpace`).
        additional_space: u64,
    },
    /// A fixed size in MiB (make-disk-image's numeric `diskSize`).
    Mib(u64),
}

/// Where the partition GUIDs, disk GUID and MBR signature come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifiers {
    /// The constants make-disk-image's `deterministic = true` writes, with the root partition's
    /// GUID (`rootGPUID`) settable. The disk GUID is the value sgdisk actually stores for the
    /// 35-character literal. The MBR signature (random upstream) is derived from `root`.
    MakeDiskImage {
        /// The root partition's unique GUID (`rootGPUID`).
        root: Guid,
    },
    /// Every identifier derived from a seed (SHA-256 of the seed and a role name).
    Seeded(Vec<u8>),
}

impl Default for Identifiers {
    fn default() -> Self {
        Identifiers::MakeDiskImage {
            root: DEFAULT_ROOT_GUID,
        }
    }
}

/// make-disk-image's default `rootGPUID`.
pub const DEFAULT_ROOT_GUID: Guid = Guid::from_str_const("F222513B-DED1-49FA-B591-20CE86A2FE7F");
/// The disk GUID sgdisk writes for make-disk-image's `--disk-guid=97FD5997-D90B-4AA3-8D16-C1723AEA73C`
/// (35 characters: gptfdisk parses it in its "no separators" layout).
pub const MDI_DISK_GUID: Guid = Guid::from_str_const("97FD5997-F390-0B4A-A3F8-D106C1723AEA");
/// make-disk-image's `--partition-guid=1:…`.
pub const MDI_PART1_GUID: Guid = Guid::from_str_const("1C06F03B-704E-4657-B9CD-681A087A2FDC");
/// sd-image.nix's `firmwarePartitionOffset`: the firmware partition's start, in MiB.
pub const SD_FIRMWARE_OFFSET_MIB: u64 = 8;
/// sd-image.nix's `firmwareSize`: the firmware partition's size, in MiB.
pub const SD_FIRMWARE_SIZE_MIB: u64 = 30;
/// sd-image.nix's `firmwarePartitionID`: the MBR disk signature and the firmware FAT's volume
/// ID.
pub const SD_FIRMWARE_ID: u32 = 0x2178_694e;

/// make-disk-image's `--partition-guid=2:…` (all types but `efi`).
pub const MDI_PART2_GUID: Guid = Guid::from_str_const("970C694F-AFD0-4B99-B750-CDB7A329AB6F");

/// Options of the planner, with make-disk-image's defaults.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutOptions {
    /// The table type.
    pub table: TableType,
    /// The disk size.
    pub disk_size: DiskSize,
    /// `bootSize` in bytes: the end offset of the boot partition.
    pub boot_size: u64,
    /// How `boot_size` is rounded.
    pub boot_rounding: BootSizeRounding,
    /// Identifier source.
    pub ids: Identifiers,
    /// An explicit MBR disk signature (legacy types), overriding the derived one.
    pub mbr_signature: Option<u32>,
}

impl Default for LayoutOptions {
    fn default() -> Self {
        Self {
            table: TableType::Legacy,
            disk_size: DiskSize::Auto {
                additional_space: 512 * MIB,
            },
            boot_size: 256 * MIB,
            boot_rounding: BootSizeRounding::Upstream,
            ids: Identifiers::default(),
            mbr_signature: None,
        }
    }
}

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The EFI system partition (FAT, label `ESP`).
    Esp,
    /// The `/boot` partition of `efixbootldr` (XBOOTLDR) and `legacy+boot` (FAT, label `BOOT`).
    Boot,
    /// The BIOS boot partition GRUB embeds its core image in.
    BiosBoot,
    /// The root filesystem.
    Root,
    /// The sd-card firmware partition (FAT, label `FIRMWARE`), mounted at `/boot/firmware`.
    Firmware,
}

impl Role {
    fn seed_label(self) -> &'static str {
        match self {
            Role::Esp => "partition-esp",
            Role::Boot => "partition-boot",
            Role::BiosBoot => "partition-bios-boot",
            Role::Root => "partition-root",
            Role::Firmware => "partition-firmware",
        }
    }
}

/// The type of a planned partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartType {
    /// A GPT type GUID.
    Gpt(Guid),
    /// An MBR type byte.
    Mbr(u8),
    /// No table (`none`).
    Whole,
}

/// One planned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Partition number (1-based; 0 for the whole disk of `none`).
    pub number: u32,
    /// What it is for.
    pub role: Role,
    /// First sector.
    pub first_lba: u64,
    /// Last sector, inclusive.
    pub last_lba: u64,
    /// Type.
    pub kind: PartType,
    /// GPT name (empty for MBR).
    pub name: String,
    /// GPT unique GUID.
    pub guid: Option<Guid>,
    /// MBR active flag.
    pub bootable: bool,
}

impl Partition {
    /// Number of sectors.
    #[must_use]
    pub fn sectors(&self) -> u64 {
        self.last_lba - self.first_lba + 1
    }

    /// The byte range in the disk: give a filesystem writer `Window::new(disk, r.start, r.end - r.start)`.
    #[must_use]
    pub fn byte_range(&self) -> Range<u64> {
        self.first_lba * SECTOR..(self.last_lba + 1) * SECTOR
    }
}

/// A complete disk layout: size, partitions, identifiers and the table bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLayout {
    /// The table type.
    pub table: TableType,
    /// Disk size in bytes (a multiple of 1 MiB).
    pub disk_size: u64,
    /// Partitions in table order.
    pub partitions: Vec<Partition>,
    /// GPT disk GUID.
    pub disk_guid: Option<Guid>,
    /// MBR disk signature (legacy types).
    pub mbr_signature: Option<u32>,
}

/// The sizes of what goes into the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Requirements {
    /// Bytes the root filesystem needs at least.
    pub root_bytes: u64,
}

struct Spec {
    role: Role,
    first: u64,
    /// Last sector, or `None` for "to the end" (`100%`).
    last: Option<u64>,
    kind: PartType,
    name: &'static str,
    bootable: bool,
}

fn mib_ceil(bytes: u64) -> Result<u64> {
    bytes
        .checked_add(MIB - 1)
        .map(|b| b / MIB)
        .ok_or_else(|| overflow("size"))
}

/// Plans a disk.
///
/// # Errors
/// `InvalidInput` for a `bootSize` that leaves no room (below the partition it ends, or beyond
/// the disk); `NoSpace` when a fixed disk size is too small ("needs N MiB, given M MiB");
/// `Overflow` for sizes past 2 TiB on MBR or past u64.
pub fn plan(opts: &LayoutOptions, req: Requirements) -> Result<DiskLayout> {
    let t = opts.table;
    let boot_mib = match opts.boot_rounding {
        BootSizeRounding::Upstream => (opts.boot_size / MIB)
            .checked_add(1)
            .ok_or_else(|| overflow("bootSize"))?,
        BootSizeRounding::Exact => mib_ceil(opts.boot_size)?,
    };
    let boot_end = boot_mib
        .checked_mul(MIB_SECTORS)
        .ok_or_else(|| overflow("bootSize"))?;
    let specs = specs(t, boot_end);
    for s in &specs {
        if let Some(last) = s.last
            && last < s.first
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "bootSize {} bytes ends the {} partition at {boot_mib} MiB, before it starts at {} MiB",
                    opts.boot_size,
                    s.name,
                    s.first / MIB_SECTORS
                ),
            ));
        }
    }
    let root_first = specs.last().map_or(0, |s| s.first);
    // GPT: "100%" ends the root on the last MiB boundary before the backup table, i.e. the
    // last MiB of the disk holds the backup; MBR: the root runs to the last sector.
    let tail_mib = u64::from(t.is_gpt());
    let root_need_mib = mib_ceil(req.root_bytes)?;
    let min_mib = (root_first / MIB_SECTORS)
        .checked_add(root_need_mib.max(1))
        .and_then(|m| m.checked_add(tail_mib))
        .ok_or_else(|| overflow("disk size"))?;
    let disk_mib = match opts.disk_size {
        DiskSize::Auto { additional_space } => {
            let extra = mib_ceil(
                req.root_bytes
                    .checked_add(additional_space)
                    .ok_or_else(|| overflow("additionalSpace"))?,
            )?;
            (root_first / MIB_SECTORS)
                .checked_add(extra.max(1))
                .and_then(|m| m.checked_add(tail_mib))
                .ok_or_else(|| overflow("disk size"))?
        }
        DiskSize::Mib(m) => {
            if t.uses_boot_size() && boot_mib.saturating_add(tail_mib) >= m {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "bootSize ends the boot partition at {boot_mib} MiB, beyond the {m} MiB disk"
                    ),
                ));
            }
            if m < min_mib {
                return Err(Error::new(
                    ErrorKind::NoSpace,
                    format!("disk too small: the {t} layout needs {min_mib} MiB, given {m} MiB"),
                ));
            }
            m
        }
    };
    if disk_mib > MAX_DISK_BYTES / MIB {
        let option = match opts.disk_size {
            DiskSize::Auto { .. } => "additionalSpace (--additional-space)",
            DiskSize::Mib(_) => "diskSize (--disk-size)",
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{option}: a {disk_mib} MiB disk is larger than the {} MiB (64 TiB) imagetool builds",
                MAX_DISK_BYTES / MIB
            ),
        ));
    }
    let disk_sectors = disk_mib
        .checked_mul(MIB_SECTORS)
        .ok_or_else(|| overflow("disk size"))?;
    if !t.is_gpt() && t != TableType::None && disk_sectors > u64::from(u32::MAX) + 1 {
        return Err(Error::new(
            ErrorKind::Overflow,
            format!("an MBR cannot address a {disk_mib} MiB disk (2 TiB at most)"),
        ));
    }
    let root_last = if t.is_gpt() {
        // last usable = disk - 34; round its end down to a MiB boundary.
        (disk_sectors - 33) / MIB_SECTORS * MIB_SECTORS - 1
    } else {
        disk_sectors - 1
    };
    let (disk_guid, mbr_signature, guids) = identifiers(opts, t);
    let partitions = specs
        .iter()
        .enumerate()
        .map(|(i, s)| Partition {
            number: if t == TableType::None {
                0
            } else {
                i as u32 + 1
            },
            role: s.role,
            first_lba: s.first,
            last_lba: s.last.unwrap_or(root_last),
            kind: s.kind,
            name: s.name.to_string(),
            guid: guids.get(i).copied(),
            bootable: s.bootable,
        })
        .collect();
    Ok(DiskLayout {
        table: t,
        disk_size: disk_sectors * SECTOR,
        partitions,
        disk_guid,
        mbr_signature,
    })
}

fn specs(t: TableType, boot_end: u64) -> Vec<Spec> {
    let gpt = |role, first, last, ty, name| Spec {
        role,
        first,
        last,
        kind: PartType::Gpt(ty),
        name,
        bootable: false,
    };
    let m = MIB_SECTORS;
    let boot_last = boot_end.saturating_sub(1);
    match t {
        TableType::Legacy => vec![Spec {
            role: Role::Root,
            first: m,
            last: None,
            kind: PartType::Mbr(mbr::TYPE_LINUX),
            name: "primary",
            bootable: false,
        }],
        TableType::LegacyBoot => vec![
            Spec {
                role: Role::Boot,
                first: m,
                last: Some(boot_last),
                kind: PartType::Mbr(mbr::TYPE_FAT32_LBA),
                name: "BOOT",
                bootable: true,
            },
            Spec {
                role: Role::Root,
                first: boot_end,
                last: None,
                kind: PartType::Mbr(mbr::TYPE_LINUX),
                name: "primary",
                bootable: false,
            },
        ],
        TableType::LegacyGpt => vec![
            gpt(
                Role::BiosBoot,
                m,
                Some(2 * m - 1),
                types::BIOS_BOOT,
                "no-fs",
            ),
            gpt(Role::Root, 2 * m, None, types::LINUX_DATA, "primary"),
        ],
        TableType::Efi => vec![
            gpt(Role::Esp, 8 * m, Some(boot_last), types::ESP, "ESP"),
            gpt(Role::Root, boot_end, None, types::LINUX_DATA, "primary"),
        ],
        TableType::EfiXbootldr => vec![
            gpt(Role::Esp, 8 * m, Some(100 * m - 1), types::ESP, "ESP"),
            gpt(
                Role::Boot,
                100 * m,
                Some(boot_last),
                types::XBOOTLDR,
                "BOOT",
            ),
            gpt(Role::Root, boot_end, None, types::LINUX_DATA, "ROOT"),
        ],
        TableType::Hybrid => vec![
            gpt(Role::Esp, 8 * m, Some(boot_last), types::ESP, "ESP"),
            // parted's `mkpart no-fs 0 1024KiB` snaps to the first usable sector (34) and ends
            // on sector 2048: 2015 sectors, not aligned.
            gpt(Role::BiosBoot, 34, Some(m), types::BIOS_BOOT, "no-fs"),
            gpt(Role::Root, boot_end, None, types::LINUX_DATA, "primary"),
        ],
        TableType::None => vec![Spec {
            role: Role::Root,
            first: 0,
            last: None,
            kind: PartType::Whole,
            name: "",
            bootable: false,
        }],
        TableType::SdCard => vec![
            Spec {
                role: Role::Firmware,
                first: SD_FIRMWARE_OFFSET_MIB * m,
                last: Some((SD_FIRMWARE_OFFSET_MIB + SD_FIRMWARE_SIZE_MIB) * m - 1),
                kind: PartType::Mbr(mbr::TYPE_FAT32),
                name: "FIRMWARE",
                bootable: true,
            },
            Spec {
                role: Role::Root,
                first: (SD_FIRMWARE_OFFSET_MIB + SD_FIRMWARE_SIZE_MIB) * m,
                last: None,
                kind: PartType::Mbr(mbr::TYPE_LINUX),
                name: "primary",
                bootable: false,
            },
        ],
    }
}

fn identifiers(opts: &LayoutOptions, t: TableType) -> (Option<Guid>, Option<u32>, Vec<Guid>) {
    let roles: Vec<Role> = specs(t, MIB_SECTORS * 2).iter().map(|s| s.role).collect();
    let (disk, sig, guids) = match &opts.ids {
        Identifiers::MakeDiskImage { root } => {
            // sgdisk --partition-guid=1:P1 --partition-guid=2:P2|rootGPUID --partition-guid=3:rootGPUID
            // by partition number, whatever the partition is; legacy+gpt has no partition 3.
            let guids = (1..=roles.len())
                .map(|n| match (n, t) {
                    (1, _) => MDI_PART1_GUID,
                    (2, TableType::Efi) => *root,
                    (2, _) => MDI_PART2_GUID,
                    _ => *root,
                })
                .collect();
            let d = derive_bytes(&root.disk_bytes(), "mbr-signature");
            (
                MDI_DISK_GUID,
                u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
                guids,
            )
        }
        Identifiers::Seeded(seed) => {
            let d = derive_bytes(seed, "mbr-signature");
            (
                Guid::derive(seed, "disk"),
                u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
                roles
                    .iter()
                    .map(|r| Guid::derive(seed, r.seed_label()))
                    .collect(),
            )
        }
    };
    let sig = match (&opts.ids, t) {
        (Identifiers::MakeDiskImage { .. }, TableType::SdCard) => SD_FIRMWARE_ID,
        _ => sig,
    };
    let sig = opts.mbr_signature.unwrap_or(sig);
    match t {
        TableType::None => (None, None, Vec::new()),
        TableType::Legacy | TableType::LegacyBoot | TableType::SdCard => {
            (None, Some(sig), Vec::new())
        }
        _ => (Some(disk), None, guids),
    }
}

impl DiskLayout {
    /// The first partition with `role`.
    #[must_use]
    pub fn partition(&self, role: Role) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.role == role)
    }

    /// The disk size in sectors.
    #[must_use]
    pub fn sectors(&self) -> u64 {
        self.disk_size / SECTOR
    }

    /// The bytes of the partition table, as (byte offset, bytes) runs: sector 0 and, for GPT,
    /// the primary and backup headers and entry arrays. Empty for `none`.
    ///
    /// # Errors
    /// `InvalidInput` when the partitions are inconsistent (only for hand-edited layouts).
    pub fn table_bytes(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let n = self.sectors();
        if self.table == TableType::None {
            return Ok(Vec::new());
        }
        let mut m = Mbr::default();
        if self.table.is_gpt() {
            m.entries[0] = MbrEntry::protective(n);
            let entries: Vec<GptEntry> = self
                .partitions
                .iter()
                .map(|p| GptEntry {
                    number: p.number,
                    type_guid: match p.kind {
                        PartType::Gpt(g) => g,
                        _ => Guid::NIL,
                    },
                    guid: p.guid.unwrap_or(Guid::NIL),
                    first_lba: p.first_lba,
                    last_lba: p.last_lba,
                    attributes: 0,
                    name: p.name.clone(),
                })
                .collect();
            let mut out = vec![(0, m.encode().to_vec())];
            out.extend(gpt::encode(
                n,
                self.disk_guid.unwrap_or(Guid::NIL),
                &entries,
            )?);
            return Ok(out);
        }
        m.signature = self.mbr_signature.unwrap_or(0);
        for (slot, p) in m.entries.iter_mut().zip(&self.partitions) {
            let kind = match p.kind {
                PartType::Mbr(k) => k,
                _ => 0,
            };
            let first = u32::try_from(p.first_lba).map_err(|_| overflow("MBR start"))?;
            let count = u32::try_from(p.sectors()).map_err(|_| overflow("MBR size"))?;
            // make-disk-image's tables come from parted, sd-image.nix's from sfdisk.
            let geometry = if self.table == TableType::SdCard {
                Geometry::SFDISK_FILE
            } else {
                Geometry::PARTED_FILE
            };
            *slot = MbrEntry::new(kind, first, count, p.bootable, geometry);
        }
        Ok(vec![(0, m.encode().to_vec())])
    }

    /// Writes the partition table into `disk` (which must be at least [`DiskLayout::disk_size`]).
    ///
    /// # Errors
    /// `InvalidInput` when `disk` is smaller than the layout; `Io` on write errors.
    pub fn write_table(&self, disk: &impl WriteAt) -> Result<()> {
        if disk.capacity() < self.disk_size {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the disk backing has {} bytes, the layout needs {}",
                    disk.capacity(),
                    self.disk_size
                ),
            ));
        }
        for (off, bytes) in self.table_bytes()? {
            disk.write_all_at(&bytes, off)
                .map_err(|e| Error::io("cannot write the partition table", off, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: TableType, mib: u64) -> DiskLayout {
        plan(
            &LayoutOptions {
                table: t,
                disk_size: DiskSize::Mib(mib),
                ..LayoutOptions::default()
            },
            Requirements::default(),
        )
        .unwrap()
    }

    fn ranges(l: &DiskLayout) -> Vec<(u64, u64)> {
        l.partitions
            .iter()
            .map(|p| (p.first_lba, p.sectors()))
            .collect()
    }

    #[test]
    fn test_layouts_match_parted_at_2048_mib() {
        // sfdisk --dump of parted 3.5 + sgdisk 1.0.9 running make-disk-image's commands.
        assert_eq!(ranges(&at(TableType::Legacy, 2048)), [(2048, 4_192_256)]);
        assert_eq!(
            ranges(&at(TableType::LegacyBoot, 2048)),
            [(2048, 524_288), (526_336, 3_667_968)]
        );
        assert_eq!(
            ranges(&at(TableType::LegacyGpt, 2048)),
            [(2048, 2048), (4096, 4_188_160)]
        );
        assert_eq!(
            ranges(&at(TableType::Efi, 2048)),
            [(16384, 509_952), (526_336, 3_665_920)]
        );
        assert_eq!(
            ranges(&at(TableType::EfiXbootldr, 2048)),
            [(16384, 188_416), (204_800, 321_536), (526_336, 3_665_920)]
        );
        assert_eq!(
            ranges(&at(TableType::Hybrid, 2048)),
            [(16384, 509_952), (34, 2015), (526_336, 3_665_920)]
        );
        assert_eq!(ranges(&at(TableType::None, 2048)), [(0, 4_194_304)]);
    }

    #[test]
    fn test_largest_disk_is_checked_up_front_naming_the_option() {
        let max = MAX_DISK_BYTES / MIB;
        assert_eq!(at(TableType::Efi, max).disk_size, MAX_DISK_BYTES);
        for (size, option) in [
            (DiskSize::Mib(max + 1), "--disk-size"),
            (DiskSize::Mib(256 << 20), "--disk-size"),
            (
                DiskSize::Auto {
                    additional_space: 1_000_000 << 40,
                },
                "--additional-space",
            ),
        ] {
            let err = plan(
                &LayoutOptions {
                    table: TableType::Efi,
                    disk_size: size,
                    ..LayoutOptions::default()
                },
                Requirements::default(),
            )
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert!(err.to_string().contains(option), "{err}");
            assert!(err.to_string().contains("64 TiB"), "{err}");
        }
    }

    #[test]
    fn test_mdi_guids_follow_partition_numbers() {
        let root: Vec<_> = [TableType::LegacyGpt, TableType::Efi, TableType::Hybrid]
            .map(|t| at(t, 2048).partition(Role::Root).unwrap().guid.unwrap())
            .into();
        assert_eq!(root, [MDI_PART2_GUID, DEFAULT_ROOT_GUID, DEFAULT_ROOT_GUID]);
        assert_eq!(at(TableType::Efi, 2048).disk_guid, Some(MDI_DISK_GUID));
    }

    #[test]
    fn test_exact_rounding_ends_boot_at_256_mib() {
        let l = plan(
            &LayoutOptions {
                table: TableType::Efi,
                disk_size: DiskSize::Mib(2048),
                boot_rounding: BootSizeRounding::Exact,
                ..LayoutOptions::default()
            },
            Requirements::default(),
        )
        .unwrap();
        assert_eq!(l.partitions[0].last_lba, 256 * 2048 - 1);
    }

    #[test]
    fn test_auto_size_fits_root_exactly() {
        for t in TableType::ALL {
            let l = plan(
                &LayoutOptions {
                    table: t,
                    disk_size: DiskSize::Auto {
                        additional_space: 0,
                    },
                    ..LayoutOptions::default()
                },
                Requirements {
                    root_bytes: 100 * MIB + 1,
                },
            )
            .unwrap();
            let root = l.partition(Role::Root).unwrap();
            let bytes = root.byte_range().end - root.byte_range().start;
            assert_eq!(bytes, 101 * MIB, "{t}");
        }
    }

    #[test]
    fn test_too_small_disk_is_no_space() {
        let e = plan(
            &LayoutOptions {
                table: TableType::Efi,
                disk_size: DiskSize::Mib(300),
                ..LayoutOptions::default()
            },
            Requirements {
                root_bytes: 100 * MIB,
            },
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        assert!(
            e.to_string().contains("needs 358 MiB, given 300 MiB"),
            "{e}"
        );
    }

    #[test]
    fn test_boot_size_beyond_disk_is_invalid() {
        let e = plan(
            &LayoutOptions {
                table: TableType::Hybrid,
                disk_size: DiskSize::Mib(200),
                ..LayoutOptions::default()
            },
            Requirements::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("beyond the 200 MiB disk"), "{e}");
        let e = plan(
            &LayoutOptions {
                table: TableType::EfiXbootldr,
                disk_size: DiskSize::Mib(2000),
                boot_size: 50 * MIB,
                ..LayoutOptions::default()
            },
            Requirements::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("before it starts"), "{e}");
    }

    #[test]
    fn test_unknown_table_type() {
        let e = "gpt".parse::<TableType>().unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown partition table type \"gpt\"")
        );
        assert_eq!(
            "legacy+boot".parse::<TableType>().unwrap(),
            TableType::LegacyBoot
        );
    }

    #[test]
    fn test_seeded_ids_differ_by_seed() {
        let mk = |s: &[u8]| {
            plan(
                &LayoutOptions {
                    table: TableType::Hybrid,
                    disk_size: DiskSize::Mib(1024),
                    ids: Identifiers::Seeded(s.to_vec()),
                    ..LayoutOptions::default()
                },
                Requirements::default(),
            )
            .unwrap()
        };
        assert_eq!(mk(b"a"), mk(b"a"));
        assert_ne!(mk(b"a").disk_guid, mk(b"b").disk_guid);
        let l = mk(b"a");
        let g: Vec<_> = l.partitions.iter().map(|p| p.guid).collect();
        assert_ne!(g[0], g[1]);
    }
}
