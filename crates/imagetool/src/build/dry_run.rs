//! What a build would write, planned and not written: [`BuildPlan`], the report of
//! [`plan`](super::plan) and of `imagetool build --dry-run` (its JSON is in `serialize.rs`).

use std::path::PathBuf;

use imagetool_ptable::{DiskLayout, Role};
use imagetool_vdisk::Format;

/// The plan of an image: every output, the partition table, what each partition will hold.
/// Nothing was written, and the store was not hashed (a dry run only lists it).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuildPlan {
    /// Every output file with its format (the spec's output first, then `also`).
    pub outputs: Vec<(Format, PathBuf)>,
    /// The partition layout.
    pub layout: DiskLayout,
    /// The root filesystem (ext4).
    pub root: RootFsPlan,
    /// The FAT filesystems (ESP, XBOOTLDR/boot, SD-card firmware), in partition order.
    pub fats: Vec<FatFsPlan>,
    /// The bootloader (`systemd-boot (EFI) + GRUB (BIOS), 7 files`).
    pub bootloader: String,
    /// Store paths in the image.
    pub store_paths: usize,
    /// Their registered NAR size in bytes.
    pub nar_size: u64,
}

/// The root filesystem of a [`BuildPlan`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RootFsPlan {
    /// The partition's role (always [`Role::Root`]).
    pub role: Role,
    /// Its size in bytes (the whole partition, as mkfs formats it).
    pub size: u64,
    /// Bytes in use: metadata and file data.
    pub used: u64,
    /// Inodes it will have.
    pub inodes: u64,
    /// Entries of the tree (files, directories, symlinks).
    pub entries: usize,
    /// The volume label.
    pub label: String,
    /// The filesystem UUID.
    pub uuid: crate::Uuid,
}

/// A FAT filesystem of a [`BuildPlan`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FatFsPlan {
    /// The partition's role.
    pub role: Role,
    /// The volume label (`ESP`, `BOOT`, `FIRMWARE`).
    pub label: String,
    /// `FAT12`, `FAT16` or `FAT32`.
    pub fat_type: String,
    /// Its size in bytes (the partition's).
    pub size: u64,
    /// Bytes in use (clusters of directories and files).
    pub used: u64,
    /// The files with data, path and length, in the order they are placed.
    pub files: Vec<(String, u64)>,
}
