//! Inspecting an image: its partition table and the filesystem in each partition.
//!
//! Reads untrusted files: every offset is checked against the image, nothing loops on input
//! values, and a malformed structure becomes "unknown" or an error, never a panic.

use std::path::{Path, PathBuf};

use imagetool_blockio::{ReadAt, Window};
use imagetool_fat::probe as fatprobe;
use imagetool_ptable::{self as ptable, Guid, TableKind};

/// The kind of filesystem [`probe_fs`] recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FsKind {
    /// ext2: no journal, no extents.
    Ext2,
    /// ext3: a journal, no ext4 features.
    Ext3,
    /// ext4: extents, 64-bit or flex_bg.
    Ext4,
    /// FAT12/16/32.
    Vfat,
    /// Nothing recognised.
    Unknown,
}

impl FsKind {
    /// The name blkid gives it (`ext4`, `vfat`, …; `unknown`), also its JSON form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Vfat => "vfat",
            FsKind::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for FsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was found in one filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsInfo {
    /// The filesystem's kind.
    pub kind: FsKind,
    /// The label (empty when none).
    pub label: String,
    /// The ext UUID or the FAT serial as blkid prints them (empty when unknown).
    pub uuid: String,
    /// Size in bytes as the filesystem records it (0 when unknown).
    pub size: u64,
}

impl FsInfo {
    fn unknown() -> Self {
        Self {
            kind: FsKind::Unknown,
            label: String::new(),
            uuid: String::new(),
            size: 0,
        }
    }
}

/// One partition of an inspected image.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionReport {
    /// The table entry.
    pub entry: ptable::PartitionInfo,
    /// A readable name of the type (`EFI System`, `Linux filesystem`, …).
    pub type_name: &'static str,
    /// The filesystem inside.
    pub fs: FsInfo,
}

/// The result of [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// Image size in bytes.
    pub size: u64,
    /// `mbr`, `gpt` or `none`.
    pub table: TableKind,
    /// GPT disk GUID.
    pub disk_guid: Option<Guid>,
    /// MBR disk signature.
    pub mbr_signature: Option<u32>,
    /// Partitions in table order.
    pub partitions: Vec<PartitionReport>,
    /// The filesystem of the whole image, when there is no table.
    pub whole: Option<FsInfo>,
}

/// Why an image file could not be inspected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The file could not be opened or read.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file cannot be read as an image: not a regular file, a container this reader
    /// refuses (by name) or cannot read (damaged header or tables, beyond a limit).
    #[error("{}", path.display())]
    Container {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: imagetool_vdisk::Error,
    },
    /// The partition table is unreadable (both GPT headers damaged).
    #[error("{}", path.display())]
    Table {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ptable::Error,
    },
}

/// Inspects the image file at `path`: raw, or any container `imagetool_vdisk::open_image`
/// reads (qcow2, VDI, VHD, VHDX, VMDK; detected by magic, so `imagetool build` output of any
/// format can be inspected without converting it). Non-regular files (a FIFO, a device) and
/// containers that are not read are refused by name. Returns the container's name and what
/// [`inspect`] finds in the disk it holds.
///
/// ```
/// use imagetool::disk::{DiskSpec, build_disk, mkfs_vfat};
/// use imagetool::fat::{FormatOptions, Tree};
/// use imagetool::probe::inspect_file;
/// use imagetool::ptable::{LayoutOptions, TableKind, TableType};
/// use imagetool::vdisk::{self, Format};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let root_fs = scratch.path("root.img");
/// # mkfs_vfat(&Tree::new(), &root_fs, Some(8 << 20), &FormatOptions::default())?;
/// # let mut layout = LayoutOptions::default();
/// # layout.table = TableType::Efi;
/// # let raw = scratch.path("disk.img");
/// # let mut spec = DiskSpec::new(root_fs, raw.clone());
/// # (spec.layout, spec.esp) = (layout, Some(Tree::new()));
/// # build_disk(&spec)?;
/// // `disk.qcow2`: a GPT disk with an ESP and a FAT root, in a qcow2 container.
/// # let qcow2 = scratch.path("disk.qcow2");
/// # vdisk::convert(&vdisk::open_raw(&raw)?, Format::Qcow2, &qcow2, &vdisk::Options::default())?;
/// let (container, found) = inspect_file(&qcow2)?;
/// assert_eq!(container, "qcow2");
/// assert_eq!(found.table, TableKind::Gpt);
/// assert_eq!(found.partitions[0].type_name, "EFI System");
/// assert_eq!(found.partitions[1].fs.kind.as_str(), "vfat");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`InspectError`] naming the file: it cannot be read, it is not a regular file, it is a
/// container the readers refuse, or its partition table is unreadable.
pub fn inspect_file(path: &Path) -> Result<(&'static str, Inspection), InspectError> {
    let container = |source| InspectError::Container {
        path: path.to_path_buf(),
        source,
    };
    let table = |source| InspectError::Table {
        path: path.to_path_buf(),
        source,
    };
    let img = imagetool_vdisk::open_image(path, false).map_err(container)?;
    Ok((img.container().name(), inspect(&img).map_err(table)?))
}

/// Reads the table of `img` and probes each partition.
///
/// ```
/// use imagetool::blockio::SparseFile;
/// use imagetool::disk::mkfs_vfat;
/// use imagetool::fat::{FormatOptions, Tree};
/// use imagetool::probe::{FsKind, inspect};
/// use imagetool::ptable::TableKind;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// let mut opts = FormatOptions::default();
/// opts.label = Some("ESP".into());
/// let path = scratch.path("esp.img");
/// mkfs_vfat(&Tree::new(), &path, Some(4 << 20), &opts)?;
/// // Any `ReadAt`: a file, a partition `Window`, a `MemImage`, a container reader.
/// let found = inspect(&SparseFile::open(&path)?)?;
/// assert_eq!(found.table, TableKind::None);
/// let fs = found.whole.expect("a filesystem on the whole image");
/// assert_eq!((fs.kind, fs.label.as_str(), fs.size), (FsKind::Vfat, "ESP", 4 << 20));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Read errors, and a GPT whose headers are both damaged (`Corrupt`).
pub fn inspect(img: &impl ReadAt) -> Result<Inspection, ptable::Error> {
    let t = ptable::read_table(img)?;
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let fs = p
                .first_lba
                .checked_mul(512)
                .zip(p.sectors.checked_mul(512))
                .filter(|(s, l)| s.checked_add(*l).is_some_and(|e| e <= img.size()))
                .and_then(|(s, l)| Window::new(img, s, l).ok())
                .map_or_else(FsInfo::unknown, |w| probe_fs(&w));
            PartitionReport {
                type_name: type_name(&p.type_id),
                entry: p.clone(),
                fs,
            }
        })
        .collect();
    let whole = (t.kind == TableKind::None).then(|| probe_fs(img));
    Ok(Inspection {
        size: img.size(),
        table: t.kind,
        disk_guid: t.disk_guid,
        mbr_signature: t.mbr_signature,
        partitions,
        whole,
    })
}

/// A readable name for a GPT type GUID or MBR type byte.
///
/// ```
/// use imagetool::probe::type_name;
///
/// assert_eq!(type_name("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"), "EFI System");
/// assert_eq!(type_name("ef"), "EFI System");
/// assert_eq!(type_name("not a type"), "unknown");
/// ```
#[must_use]
pub fn type_name(type_id: &str) -> &'static str {
    match type_id {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" | "ef" => "EFI System",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" | "ea" => "Linux extended boot",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" | "83" => "Linux filesystem",
        "0c" => "W95 FAT32 (LBA)",
        "0b" => "W95 FAT32",
        "0e" => "W95 FAT16 (LBA)",
        "ee" => "GPT protective",
        _ => "unknown",
    }
}

/// Probes the filesystem at offset 0 of `dev`: ext2/3/4 superblock or FAT boot sector.
///
/// ```
/// use imagetool::blockio::MemImage;
/// use imagetool::fstree::{Meta, Tree};
/// use imagetool::ext4;
/// use imagetool::probe::{FsKind, probe_fs};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tree = Tree::new(Meta::dir(0o755));
/// let mut opts = ext4::Options::default();
/// opts.label = b"nixos".to_vec();
/// opts.uuid = Some([0x11; 16].into());
/// let plan = ext4::plan(&tree, &opts)?;
/// let image = MemImage::new(plan.size_bytes());
/// plan.write(&tree, &image)?;
/// let fs = probe_fs(&image);
/// assert_eq!((fs.kind, fs.label.as_str()), (FsKind::Ext4, "nixos"));
/// assert_eq!(fs.uuid, "11111111-1111-1111-1111-111111111111");
/// assert_eq!(probe_fs(&MemImage::new(1 << 20)).kind, FsKind::Unknown);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn probe_fs(dev: &impl ReadAt) -> FsInfo {
    if let Some(e) = probe_ext(dev) {
        return e;
    }
    if let Some(f) = fatprobe::probe(dev) {
        return FsInfo {
            kind: FsKind::Vfat,
            label: f.label,
            uuid: format!("{:04X}-{:04X}", f.volume_id >> 16, f.volume_id & 0xffff),
            size: f.size,
        };
    }
    FsInfo::unknown()
}

const EXT_MAGIC: u16 = 0xef53;

fn probe_ext(dev: &impl ReadAt) -> Option<FsInfo> {
    if dev.size() < 2048 {
        return None;
    }
    let mut sb = [0u8; 1024];
    dev.read_exact_at(&mut sb, 1024).ok()?;
    let u32at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != EXT_MAGIC {
        return None;
    }
    let log = u32at(0x18);
    if log > 6 {
        return None;
    }
    let block = 1024u64 << log;
    let compat = u32at(0x5c);
    let incompat = u32at(0x60);
    let mut blocks = u64::from(u32at(0x04));
    if incompat & 0x80 != 0 {
        blocks |= u64::from(u32at(0x150)) << 32;
    }
    let kind = if incompat & 0x40 != 0 || incompat & 0x80 != 0 || incompat & 0x200 != 0 {
        FsKind::Ext4
    } else if compat & 0x4 != 0 {
        FsKind::Ext3
    } else {
        FsKind::Ext2
    };
    let u = &sb[0x68..0x78];
    let uuid = format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u[0],
        u[1],
        u[2],
        u[3],
        u[4],
        u[5],
        u[6],
        u[7],
        u[8],
        u[9],
        u[10],
        u[11],
        u[12],
        u[13],
        u[14],
        u[15]
    );
    let label_raw = &sb[0x78..0x88];
    let end = label_raw.iter().position(|&c| c == 0).unwrap_or(16);
    Some(FsInfo {
        kind,
        label: String::from_utf8_lossy(&label_raw[..end]).into_owned(),
        uuid,
        size: blocks.saturating_mul(block),
    })
}

#[cfg(test)]
mod tests {
    use imagetool_blockio::{MemImage, WriteAt};

    use super::*;

    #[test]
    fn test_random_and_corrupted_inputs_never_panic() {
        // A small deterministic generator: the test must not depend on a seed from outside.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // A valid GPT disk to corrupt.
        let layout = ptable::plan(
            &{
                let mut o = ptable::LayoutOptions::default();
                o.table = ptable::TableType::Hybrid;
                o.disk_size = ptable::DiskSize::Mib(300);
                o
            },
            ptable::Requirements::default(),
        )
        .unwrap();
        let runs = layout.table_bytes().unwrap();
        for round in 0..400 {
            let size = [512u64, 1024, 4096, 1 << 20, 300 << 20][round % 5];
            let img = MemImage::new(size);
            if round % 2 == 0 {
                for (off, b) in &runs {
                    if off + b.len() as u64 <= size {
                        img.write_all_at(b, *off).unwrap();
                    }
                }
            }
            for _ in 0..(next() % 64) {
                let off = next() % size;
                let v = [next() as u8];
                img.write_all_at(&v, off).unwrap();
            }
            // Sometimes a plausible FAT or ext header at a partition start.
            if round % 3 == 0 && size > 4096 {
                let mut bs = [0u8; 512];
                for b in bs.iter_mut() {
                    *b = next() as u8;
                }
                bs[0] = 0xeb;
                bs[510] = 0x55;
                bs[511] = 0xaa;
                img.write_all_at(&bs, 0).unwrap();
                img.write_all_at(&EXT_MAGIC.to_le_bytes(), 1024 + 0x38)
                    .unwrap();
            }
            let _ = inspect(&img);
        }
    }
}
