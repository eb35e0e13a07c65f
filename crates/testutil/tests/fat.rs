//! The FAT oracles on filesystems made by `mkfs.vfat` + `mcopy`, whole and inside a partition.

mod common;

use std::path::{Path, PathBuf};

use common::{must, patch, place, read, sparse};
use imagetool_testutil::tools::{FSCK_FAT, MCOPY, MDIR, MKFS_VFAT, MMD};
use imagetool_testutil::{ErrorKind, Target, fat, require_tools};

/// An ESP-like tree on the host.
fn make_tree(root: &Path) {
    let w = |p: &str, data: &[u8]| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    };
    let efi: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    w("EFI/BOOT/BOOTX64.EFI", &efi);
    w("loader/loader.conf", b"timeout 0\ndefault nixos.conf\n");
    w(
        "loader/entries/nixos-generation-1.conf",
        b"title NixOS\nlinux /kernel\n",
    );
    w("Long File Name.txt", b"long\n");
    w("empty", b"");
    std::fs::create_dir_all(root.join("emptydir")).unwrap();
}

/// `mkfs.vfat` a 16 MiB image with a fixed volume id, then `mcopy -s` the tree into it.
fn make_fat(img: &Path, src: &Path) {
    let i = img.to_str().unwrap();
    must(
        MKFS_VFAT,
        &["-i", "12345678", "-n", "ESP", "-C", i, "16384"],
    );
    for entry in std::fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        must(MCOPY, &["-s", "-i", i, p.to_str().unwrap(), "::/"]);
    }
    must(MMD, &["-i", i, "::/made-by-mmd"]);
}

/// The ESP-like tree under `dir/src` and its `mkfs.vfat` + `mcopy` image `dir/esp.img`.
fn made_fat(dir: &Path) -> (PathBuf, PathBuf) {
    let src = dir.join("src");
    make_tree(&src);
    let img = dir.join("esp.img");
    make_fat(&img, &src);
    (src, img)
}

fn expected(src: &Path) -> fat::FatTree {
    let mut t = fat::tree_from_dir(src).unwrap();
    t.insert("/made-by-mmd".into(), None);
    t
}

#[test]
fn clean_fat_passes_fsck_and_listing() {
    require_tools!(MKFS_VFAT, MCOPY, MMD, MDIR, FSCK_FAT);
    let tmp = tempfile::tempdir().unwrap();
    let (src, img) = made_fat(tmp.path());
    let t = Target::whole(&img);
    fat::assert_clean(&t);
    let listing = fat::list(&t).unwrap();
    assert_eq!(listing.get("/EFI/BOOT"), Some(&true));
    assert_eq!(listing.get("/Long File Name.txt"), Some(&false));
    fat::assert_tree_eq(&t, &expected(&src));

    // An empty filesystem lists as empty (mdir says "not found" for an empty root).
    let empty = tmp.path().join("empty.img");
    must(MKFS_VFAT, &["-C", empty.to_str().unwrap(), "4096"]);
    fat::assert_clean(&Target::whole(&empty));
    assert!(fat::read_tree(&Target::whole(&empty)).unwrap().is_empty());
}

#[test]
fn fat_inside_a_partition_range() {
    require_tools!(MKFS_VFAT, MCOPY, MMD, MDIR, FSCK_FAT);
    let tmp = tempfile::tempdir().unwrap();
    let (src, esp) = made_fat(tmp.path());
    let disk = tmp.path().join("disk.img");
    sparse(&disk, 20 << 20);
    patch(&disk, 0, &[0xEE; 512]);
    place(&esp, &disk, 2 << 20);
    let t = Target::range(&disk, 2 << 20, 16 << 20);
    fat::assert_clean(&t);
    fat::assert_tree_eq(&t, &expected(&src));
    // The same byte range without the offset is not a filesystem.
    assert!(fat::fsck(&Target::range(&disk, 0, 16 << 20)).is_err());
}

#[test]
fn corrupted_boot_sector_or_fat_fails_fsck() {
    require_tools!(MKFS_VFAT, MCOPY, MMD, MDIR, FSCK_FAT);
    let tmp = tempfile::tempdir().unwrap();
    let (_, img) = made_fat(tmp.path());
    let clean = std::fs::read(&img).unwrap();

    // Boot sector: sectors per cluster = 3 (not a power of two).
    patch(&img, 13, &[3]);
    let e = fat::fsck(&Target::whole(&img)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    println!("boot sector: {e}");

    // First FAT: the entry of cluster 3 (a file's chain) becomes free; the copies differ and a
    // chain is cut.
    std::fs::write(&img, &clean).unwrap();
    let reserved = u16::from_le_bytes(read(&img, 14, 2).try_into().unwrap());
    let fat16 = read(&img, 54, 5) == b"FAT16";
    let entry = if fat16 { 3 * 2 } else { 3 * 3 / 2 };
    patch(&img, u64::from(reserved) * 512 + entry, &[0, 0]);
    let e = fat::fsck(&Target::whole(&img)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    println!("FAT: {e}");
}

#[test]
fn different_expected_files_fail_the_comparison() {
    require_tools!(MKFS_VFAT, MCOPY, MMD, MDIR, FSCK_FAT);
    let tmp = tempfile::tempdir().unwrap();
    let (src, img) = made_fat(tmp.path());
    let t = Target::whole(&img);
    let mut exp = expected(&src);
    exp.insert(
        "/loader/loader.conf".into(),
        Some(b"timeout 5\ndefault nixos.conf\n".to_vec()),
    );
    exp.remove("/empty");
    exp.insert("/EFI/BOOT/BOOTIA32.EFI".into(), Some(vec![1]));
    let e = fat::compare(&t, &exp).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Mismatch);
    let m = e.message();
    assert!(
        m.contains(
            "/loader/loader.conf: contents differ (29 vs 29 bytes, first difference at byte 8)"
        ),
        "{m}"
    );
    assert!(m.contains("/empty: unexpected file of 0 bytes"), "{m}");
    assert!(m.contains("/EFI/BOOT/BOOTIA32.EFI: missing"), "{m}");
    assert!(m.contains("3 difference(s)"), "{m}");
}
