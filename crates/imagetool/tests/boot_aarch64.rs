//! aarch64 images built on this (x86_64) host from the aarch64 fixture closure (Debian's arm64
//! packages, never run here) and booted under `qemu-system-aarch64 -M virt -cpu max` (TCG) to
//! the fixture's stage-2 marker with the manifest hash the host predicts.
//!
//! One test per cell so nextest runs them side by side; they share one built fixture
//! (`imagetool_fixture::ensure_arch`, under a file lock). Each image is also checked by
//! fsck.fat/e2fsck and holds the aarch64 names (`BOOTAA64.EFI`, `systemd-bootaa64.efi`,
//! `arm64-efi`).

use std::path::Path;

use imagetool::boot::Bootloader;
use imagetool::build::{BuildReport, build};
use imagetool::ptable::{Role, TableType};
use imagetool::vdisk::Format;
use imagetool_fixture::Arch;
use imagetool_testutil::boot::{self, Firmware};
use imagetool_testutil::tools::{
    AAVMF_CODE, AAVMF_VARS, APT_GET, DEBUGFS, DPKG_DEB, E2FSCK, FSCK_FAT, MDIR, MTYPE,
    QEMU_SYSTEM_AARCH64, SFDISK, UBOOT_QEMU_ARM64, ZSTD,
};
use imagetool_testutil::{Target, ext4, fat, ptable, require_tools, run_ok};

mod common;

fn range(r: &BuildReport, role: Role) -> (u64, u64) {
    let p = r
        .layout
        .partition(role)
        .unwrap_or_else(|| panic!("no {role:?} partition"));
    let b = p.byte_range();
    (b.start, b.end - b.start)
}

/// Builds the aarch64 fixture as an `efi` image with `bootloader`, checks its filesystems and
/// that `esp_files` are on the ESP, boots it with `firmware` and checks the markers.
fn efi_cell(bootloader: Bootloader, esp_files: &[&str]) {
    require_tools!(
        QEMU_SYSTEM_AARCH64,
        AAVMF_CODE,
        AAVMF_VARS,
        APT_GET,
        DPKG_DEB,
        E2FSCK,
        FSCK_FAT,
        MDIR
    );
    let fx = imagetool_fixture::ensure_arch(Arch::Aarch64).unwrap();
    let expected = fx.expected_manifest_sha256().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("aarch64-efi.img");
    let spec = common::fixture_spec(&fx, TableType::Efi, bootloader, Format::Raw, &img);
    let report = build(&spec, &mut imagetool::build::NoProgress).unwrap();

    fat::assert_esp(&img, range(&report, Role::Esp), esp_files, &["BOOTX64.EFI"]);
    let (o, l) = range(&report, Role::Root);
    ext4::assert_clean(&Target::range(&img, o, l));

    boot_to_marker(&fx, &expected, Firmware::Aavmf, &img);
}

/// Boots `img` under `firmware` to the fixture's markers.
fn boot_to_marker(fx: &imagetool_fixture::Fixture, expected: &str, firmware: Firmware, img: &Path) {
    boot::boot_raw_to_markers(
        firmware,
        img,
        &fx.toplevel,
        expected,
        std::time::Duration::from_secs(540),
        "aarch64",
    );
}

#[test]
fn test_aarch64_efi_systemd_boot_boots_under_aavmf() {
    efi_cell(
        Bootloader::SystemdBoot,
        &[
            "EFI/BOOT/BOOTAA64.EFI",
            "EFI/systemd/systemd-bootaa64.efi",
            "loader/loader.conf",
            "loader/entries/nixos-generation-1.conf",
        ],
    );
}

#[test]
fn test_aarch64_efi_grub_boots_under_aavmf() {
    efi_cell(
        Bootloader::Grub,
        &[
            "EFI/BOOT/BOOTAA64.EFI",
            "grub/grub.cfg",
            "grub/arm64-efi/normal.mod",
        ],
    );
}

/// The sd-card image: sd-image.nix's MBR, a FIRMWARE partition filled from a directory, a raw
/// blob at 8 KiB, the extlinux files in the root, written as `.img.zst`; decompressed by the
/// zstd CLI, checked by sfdisk/fsck.fat/mtype/e2fsck/debugfs and booted by U-Boot's distro
/// boot (extlinux) on `-M virt`. The root's label is the fixture's `nixos` (its stage 1 looks
/// for it; sd-image.nix's default is NIXOS_SD).
#[test]
fn test_aarch64_sd_card_boots_through_uboot_extlinux() {
    require_tools!(
        QEMU_SYSTEM_AARCH64,
        UBOOT_QEMU_ARM64,
        APT_GET,
        DPKG_DEB,
        ZSTD,
        SFDISK,
        E2FSCK,
        DEBUGFS,
        FSCK_FAT,
        MTYPE
    );
    let fx = imagetool_fixture::ensure_arch(Arch::Aarch64).unwrap();
    let expected = fx.expected_manifest_sha256().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fw = tmp.path().join("firmware");
    std::fs::create_dir_all(fw.join("overlays")).unwrap();
    std::fs::write(fw.join("config.txt"), b"arm_64bit=1\n").unwrap();
    std::fs::write(fw.join("overlays/README"), b"overlays\n").unwrap();
    let blob = tmp.path().join("spl.bin");
    let blob_bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&blob, &blob_bytes).unwrap();

    let zst = tmp.path().join("sd.img.zst");
    let mut spec =
        common::fixture_spec(&fx, TableType::SdCard, Bootloader::Auto, Format::Raw, &zst)
            .label("nixos");
    spec.firmware_dir = Some(fw.clone());
    // Debian's U-Boot (2023.01) distro boot scans only the bootable partitions.
    spec.sd_boot_flag = imagetool::sdcard::BootFlag::Root;
    spec.raw_writes = vec![format!("{}@8192", blob.display()).parse().unwrap()];
    let report = build(&spec, &mut imagetool::build::NoProgress).unwrap();
    let img = tmp.path().join("sd.img");
    run_ok(
        ZSTD,
        &[
            "-d",
            "-q",
            zst.to_str().unwrap(),
            "-o",
            img.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::metadata(&img).unwrap().len(), report.disk_size);

    let t = ptable::read(&Target::whole(&img)).unwrap();
    assert_eq!(t.id.as_deref(), Some("0x2178694e"));
    let kinds: Vec<(&str, bool)> = t
        .partitions
        .iter()
        .map(|p| (p.kind.as_str(), p.bootable))
        .collect();
    assert_eq!(kinds, [("b", false), ("83", true)]);
    assert_eq!(t.partitions[0].start, 8 * 2048);
    assert_eq!(t.partitions[0].size, 30 * 2048);

    let data = std::fs::read(&img).unwrap();
    assert_eq!(&data[8192..8192 + blob_bytes.len()], blob_bytes.as_slice());

    let (o, l) = range(&report, Role::Firmware);
    let fat_part = Target::range(&img, o, l);
    fat::assert_clean(&fat_part);
    let expected_fw = fat::tree_from_dir(&fw).unwrap();
    fat::assert_tree_eq(&fat_part, &expected_fw);

    let (o, l) = range(&report, Role::Root);
    let root = Target::range(&img, o, l);
    ext4::assert_clean(&root);
    let conf =
        String::from_utf8(ext4::dump_file(&root, "/boot/extlinux/extlinux.conf").unwrap()).unwrap();
    let kernel_name = imagetool::boot::extlinux::clean_name(
        &std::fs::canonicalize(fx.kernel())
            .unwrap()
            .strip_prefix(&fx.store_root)
            .map(|p| format!("/{}", p.display()))
            .unwrap(),
    );
    assert!(
        conf.contains(&format!("  LINUX ../nixos/{kernel_name}\n")),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("  APPEND {}\n", fx.kernel_cmdline())),
        "{conf}"
    );
    assert_eq!(
        ext4::dump_file(&root, &format!("/boot/nixos/{kernel_name}")).unwrap(),
        std::fs::read(fx.kernel()).unwrap()
    );

    boot_to_marker(&fx, &expected, Firmware::UBootArm64, &img);
}
