//! The bootloader step of [`crate::build`]: the table type → what the disk offers
//! ([`boot::Disk`]), the plan's files placed into the ESP, boot partition and root trees, and
//! GRUB's BIOS sectors written after the partition table.

use imagetool_blockio::{ReadAt, WriteAt};
use imagetool_boot::{self as boot, BiosSite, BootFile, BootMount, FileSource};
use imagetool_fat as fat;
use imagetool_fstree::{self as fstree, Meta, Timestamp};
use imagetool_ptable::{DiskLayout, Role, TableType};

use crate::build::BuildError;

/// What a make-disk-image table type offers the bootloader, and where `/boot` is.
///
/// ```
/// use imagetool::bootloader::disk_for;
/// use imagetool::ptable::TableType;
///
/// let d = disk_for(TableType::Hybrid);
/// assert!(d.esp && d.bios.is_some()); // an ESP and a BIOS boot partition
/// assert!(!disk_for(TableType::Legacy).esp);
/// ```
#[must_use]
pub fn disk_for(table: TableType) -> boot::Disk {
    let (esp, xbootldr, bios, boot_mount) = match table {
        TableType::Legacy => (false, false, Some(BiosSite::MbrGap), BootMount::Root),
        TableType::LegacyBoot => (
            false,
            false,
            Some(BiosSite::MbrGap),
            BootMount::BootPartition,
        ),
        TableType::LegacyGpt => (
            false,
            false,
            Some(BiosSite::BiosBootPartition),
            BootMount::Root,
        ),
        TableType::Efi => (true, false, None, BootMount::Esp),
        TableType::EfiXbootldr => (true, true, None, BootMount::BootPartition),
        TableType::Hybrid => (
            true,
            false,
            Some(BiosSite::BiosBootPartition),
            BootMount::Esp,
        ),
        TableType::None | TableType::SdCard => (false, false, None, BootMount::Root),
    };
    boot::Disk {
        esp,
        xbootldr,
        bios,
        boot_mount,
    }
}

/// A FAT volume id as blkid and GRUB print it (`1234-ABCD`).
///
/// ```
/// assert_eq!(imagetool::bootloader::fat_uuid(0x1234_abcd), "1234-ABCD");
/// ```
#[must_use]
pub fn fat_uuid(volume_id: u32) -> String {
    format!("{:04X}-{:04X}", volume_id >> 16, volume_id & 0xffff)
}

/// The files of one FAT filesystem.
///
/// ```
/// use imagetool::boot::{BootFile, FileSource};
/// use imagetool::bootloader::fat_tree;
///
/// let files = [BootFile {
///     path: "loader/loader.conf".into(),
///     source: FileSource::Bytes(b"timeout 3\n".to_vec()),
/// }];
/// let tree = fat_tree(&files, "ESP")?; // ready for `disk::mkfs_vfat` or `fat::plan`
/// # let _ = tree;
/// # Ok::<(), imagetool::build::BuildError>(())
/// ```
///
/// # Errors
/// The FAT tree's errors (a bad name, a file where a directory must be).
pub fn fat_tree(files: &[BootFile], what: &'static str) -> Result<fat::Tree, BuildError> {
    let mut t = fat::Tree::new();
    for f in files {
        match &f.source {
            FileSource::Host(p) => t.add_host_file(&f.path, p),
            FileSource::Bytes(b) => t.add_bytes(&f.path, b.clone()),
        }
        .map_err(|source| BuildError::Fat { what, source })?;
    }
    Ok(t)
}

/// Adds the root filesystem's bootloader files (`boot/grub/…`) to the root tree: directories
/// 0755, files 0644, root-owned, at the build timestamp.
///
/// ```
/// use imagetool::boot::{BootFile, FileSource};
/// use imagetool::bootloader::add_to_root;
/// use imagetool::fstree::{Meta, Tree};
///
/// let mut root = Tree::new(Meta::dir(0o755));
/// let files = [BootFile {
///     path: "boot/grub/grub.cfg".into(),
///     source: FileSource::Bytes(b"set timeout=5\n".to_vec()),
/// }];
/// add_to_root(&mut root, &files, 315_532_800)?;
/// assert!(root.lookup(b"boot/grub").is_some());
/// assert!(root.lookup(b"boot/grub/grub.cfg").is_some());
/// # Ok::<(), imagetool::build::BuildError>(())
/// ```
///
/// # Errors
/// `InvalidInput` when a path collides with the tree (a `contents` entry at `/boot/grub`).
pub fn add_to_root(
    tree: &mut fstree::Tree,
    files: &[BootFile],
    timestamp: i64,
) -> Result<(), BuildError> {
    let t = Timestamp::from_secs(timestamp);
    let err = |e: fstree::Error| {
        BuildError::InvalidInput(format!("bootloader file in the root filesystem: {e}"))
    };
    for f in files {
        let parts: Vec<&str> = f.path.split('/').collect();
        for i in 1..parts.len() {
            let dir = parts[..i].join("/");
            if tree.lookup(dir.as_bytes()).is_none() {
                tree.add_dir(dir.as_bytes(), Meta::dir(0o755).at(t))
                    .map_err(err)?;
            }
        }
        let source = match &f.source {
            FileSource::Host(p) => fstree::Source::Host(p.clone()),
            FileSource::Bytes(b) => fstree::Source::Bytes(b.clone().into()),
        };
        tree.add_file(f.path.as_bytes(), source, Meta::file(0o644).at(t))
            .map_err(err)?;
    }
    Ok(())
}

/// Writes GRUB's BIOS stage (after the partition table): the core image goes into the MBR gap
/// (up to the first partition) or into the BIOS boot partition.
///
/// # Errors
/// [`BuildError::Boot`] when the core image does not fit or writing fails.
pub fn write_bios(
    plan: &boot::Plan,
    layout: &DiskLayout,
    disk: &(impl ReadAt + WriteAt),
) -> Result<(), BuildError> {
    let Some(stage) = &plan.bios_stage else {
        return Ok(());
    };
    let (lba, room) = match stage.site {
        BiosSite::MbrGap => {
            let first = layout
                .partitions
                .iter()
                .map(|p| p.first_lba)
                .min()
                .unwrap_or(1);
            (1, first.saturating_sub(1))
        }
        BiosSite::BiosBootPartition => {
            let p = layout.partition(Role::BiosBoot).ok_or_else(|| {
                BuildError::InvalidInput("the layout has no BIOS boot partition".into())
            })?;
            (p.first_lba, p.sectors())
        }
    };
    stage.write(disk, lba, room)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ids_text() {
        assert_eq!(fat_uuid(0x1234_abcd), "1234-ABCD");
        let u = crate::build::parse_uuid("F222513B-DED1-49FA-B591-20CE86A2FE7F").unwrap();
        assert_eq!(u.to_string(), "f222513b-ded1-49fa-b591-20ce86a2fe7f");
    }

    #[test]
    fn test_every_table_maps() {
        for t in TableType::ALL {
            let d = disk_for(t);
            assert_eq!(d.esp, t.is_gpt() && t != TableType::LegacyGpt, "{t:?}");
            assert_eq!(d.xbootldr, t == TableType::EfiXbootldr);
        }
    }
}
