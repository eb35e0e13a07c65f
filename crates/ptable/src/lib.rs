//! Partition tables for imagetool: MBR and GPT, and make-disk-image's exact layouts.
//!
//! ```text
//!   LayoutOptions + Requirements ──plan()──▶ DiskLayout ──write_table()──▶ any WriteAt
//!        (table type, sizes, ids)            (partitions, byte ranges,      (sector 0, GPT
//!                                             GUIDs, MBR signature)          primary + backup)
//!   any ReadAt ──read_table()──▶ TableInfo   (for `inspect`; bounded, never panics)
//! ```
//!
//! The planner reproduces, sector for sector, the tables nixpkgs' `make-disk-image.nix` makes
//! with parted and sgdisk (`legacy`, `legacy+boot`, `legacy+gpt`, `efi`, `efixbootldr`,
//! `hybrid`, `none`), including its quirks: the BIOS boot partition of `hybrid` in sectors
//! 34–2048, the `bootSize` rounding that ends the boot partition at 257 MiB for `256M`, and the
//! disk GUID sgdisk really stores for make-disk-image's 35-character literal. GPT is written
//! with `gptman`; the MBR writer is in-house ([`mbr`]).
//!
//! ```
//! use imagetool_blockio::{MemImage, Window};
//! use imagetool_ptable::{plan, DiskSize, LayoutOptions, Requirements, Role, TableType};
//!
//! let mut opts = LayoutOptions::default();
//! opts.table = TableType::Efi;
//! opts.disk_size = DiskSize::Mib(512);
//! let layout = plan(&opts, Requirements { root_bytes: 64 << 20 }).unwrap();
//! let esp = layout.partition(Role::Esp).unwrap();
//! assert_eq!(esp.first_lba, 16384); // 8 MiB
//! assert_eq!(esp.byte_range().end, 257 << 20); // bootSize 256M rounds to 257 MiB upstream
//!
//! let disk = MemImage::new(layout.disk_size);
//! layout.write_table(&disk).unwrap();
//! let _root = Window::new(&disk, 257 << 20, layout.partition(Role::Root).unwrap().sectors() * 512);
//! let read = imagetool_ptable::read_table(&disk).unwrap();
//! assert_eq!(read.partitions.len(), 2);
//! ```
#![deny(missing_docs)]

mod error;
pub mod gpt;
mod guid;
mod layout;
pub mod mbr;

use imagetool_blockio::ReadAt;

pub use error::{Error, ErrorKind, Result};
pub use guid::Guid;
pub use imagetool_fstree::Uuid;
pub use layout::{
    BootSizeRounding, DEFAULT_ROOT_GUID, DiskLayout, DiskSize, Identifiers, LayoutOptions,
    MAX_DISK_BYTES, MDI_DISK_GUID, MDI_PART1_GUID, MDI_PART2_GUID, MIB, PartType, Partition,
    Requirements, Role, SD_FIRMWARE_ID, SD_FIRMWARE_OFFSET_MIB, SD_FIRMWARE_SIZE_MIB, TableType,
    plan,
};

/// The kind of table found on a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// A legacy MBR.
    Mbr,
    /// A GPT (behind a protective MBR).
    Gpt,
    /// Neither.
    None,
}

impl TableKind {
    /// `mbr`, `gpt` or `none`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Mbr => "mbr",
            TableKind::Gpt => "gpt",
            TableKind::None => "none",
        }
    }
}

/// A partition as read from a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number (1-based).
    pub number: u32,
    /// First sector.
    pub first_lba: u64,
    /// Number of sectors.
    pub sectors: u64,
    /// Type: a GUID (GPT) or a two-digit hex byte (MBR).
    pub type_id: String,
    /// GPT name (empty for MBR).
    pub name: String,
    /// GPT unique GUID.
    pub guid: Option<Guid>,
    /// MBR active flag, or GPT attribute bit 2 (legacy BIOS bootable).
    pub bootable: bool,
}

/// A partition table as read from a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// The kind.
    pub kind: TableKind,
    /// GPT disk GUID.
    pub disk_guid: Option<Guid>,
    /// MBR disk signature.
    pub mbr_signature: Option<u32>,
    /// Partitions in table order.
    pub partitions: Vec<PartitionInfo>,
}

/// Reads the partition table of a disk, if any. Safe on untrusted input: every size is checked
/// against the disk and the entry count is bounded.
///
/// # Errors
/// `Corrupt` for a protective MBR without a readable GPT; `Io` on read errors.
pub fn read_table(disk: &impl ReadAt) -> Result<TableInfo> {
    let none = TableInfo {
        kind: TableKind::None,
        disk_guid: None,
        mbr_signature: None,
        partitions: Vec::new(),
    };
    if disk.size() < 512 {
        return Ok(none);
    }
    let mut sector = [0u8; 512];
    disk.read_exact_at(&mut sector, 0)
        .map_err(|e| Error::io("cannot read sector 0", 0, e))?;
    let Ok(m) = mbr::Mbr::decode(&sector) else {
        return Ok(none);
    };
    if m.is_protective() {
        let t = gpt::read(disk)?;
        return Ok(TableInfo {
            kind: TableKind::Gpt,
            disk_guid: Some(t.disk_guid),
            mbr_signature: None,
            partitions: t
                .entries
                .into_iter()
                .map(|e| PartitionInfo {
                    number: e.number,
                    first_lba: e.first_lba,
                    sectors: e.last_lba.saturating_sub(e.first_lba).saturating_add(1),
                    type_id: e.type_guid.to_string(),
                    name: e.name,
                    guid: Some(e.guid),
                    bootable: e.attributes & 4 != 0,
                })
                .collect(),
        });
    }
    // A boot sector of a bare filesystem also ends in 55 AA: accept an MBR only when its entries
    // are sane (status 0 or 0x80, inside the disk, at least one used).
    let sectors = disk.size() / 512;
    let used: Vec<(usize, &mbr::MbrEntry)> = m
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.is_empty())
        .collect();
    let sane = !used.is_empty()
        && m.entries.iter().all(|e| e.status == 0 || e.status == 0x80)
        && used.iter().all(|(_, e)| {
            e.kind != 0
                && e.first_lba > 0
                && u64::from(e.first_lba) + u64::from(e.sectors) <= sectors
        });
    if !sane {
        return Ok(none);
    }
    Ok(TableInfo {
        kind: TableKind::Mbr,
        disk_guid: None,
        mbr_signature: Some(m.signature),
        partitions: used
            .into_iter()
            .map(|(i, e)| PartitionInfo {
                number: i as u32 + 1,
                first_lba: u64::from(e.first_lba),
                sectors: u64::from(e.sectors),
                type_id: format!("{:02x}", e.kind),
                name: String::new(),
                guid: None,
                bootable: e.status == 0x80,
            })
            .collect(),
    })
}
