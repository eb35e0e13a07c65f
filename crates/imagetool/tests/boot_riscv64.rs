//! riscv64 images built on this (x86_64) host from the riscv64 fixture closure (Debian 13's
//! riscv64 packages: Debian 12 has no riscv64 port; never run here) and booted under
//! `qemu-system-riscv64 -M virt -cpu max` (TCG; OpenSBI, then EDK II) to the fixture's
//! stage-2 marker with the manifest hash the host predicts: systemd-boot, and GRUB assembled
//! natively for riscv64-efi.
//!
//! Skips locally when the tools are missing (qemu-system-misc from bookworm-backports,
//! Debian 13's qemu-efi-riscv64, and riscv64 packages reachable through apt: `cargo xtask
//! deps`); fails in CI.

use imagetool::boot::Bootloader;
use imagetool::build::{BuildReport, build};
use imagetool::ptable::{Role, TableType};
use imagetool::vdisk::Format;
use imagetool_fixture::Arch;
use imagetool_testutil::boot::{self, Firmware};
use imagetool_testutil::tools::{
    APT_GET, DPKG_DEB, E2FSCK, FSCK_FAT, MDIR, QEMU_SYSTEM_RISCV64, RISCV64_EDK2_CODE,
    RISCV64_EDK2_VARS,
};
use imagetool_testutil::{Target, ext4, fat, require_tools};

mod common;

fn range(r: &BuildReport, role: Role) -> (u64, u64) {
    let p = r
        .layout
        .partition(role)
        .unwrap_or_else(|| panic!("no {role:?} partition"));
    let b = p.byte_range();
    (b.start, b.end - b.start)
}

/// Builds the riscv64 fixture as an `efi` image with `bootloader`, checks its filesystems and
/// that `esp_files` are on the ESP, boots it under EDK II and checks the markers.
fn efi_cell(bootloader: Bootloader, esp_files: &[&str]) {
    require_tools!(
        QEMU_SYSTEM_RISCV64,
        RISCV64_EDK2_CODE,
        RISCV64_EDK2_VARS,
        APT_GET,
        DPKG_DEB,
        E2FSCK,
        FSCK_FAT,
        MDIR
    );
    let fx = imagetool_fixture::ensure_arch(Arch::Riscv64).unwrap();
    let expected = fx.expected_manifest_sha256().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("riscv64-efi.img");
    let spec = common::fixture_spec(&fx, TableType::Efi, bootloader, Format::Raw, &img);
    let report = build(&spec, &mut imagetool::build::NoProgress).unwrap();

    fat::assert_esp(
        &img,
        range(&report, Role::Esp),
        esp_files,
        &["BOOTX64.EFI", "BOOTAA64.EFI"],
    );
    let (o, l) = range(&report, Role::Root);
    ext4::assert_clean(&Target::range(&img, o, l));
    boot::boot_raw_to_markers(
        Firmware::Riscv64Edk2,
        &img,
        &fx.toplevel,
        &expected,
        std::time::Duration::from_secs(600),
        "riscv64",
    );
}

#[test]
fn test_riscv64_efi_systemd_boot_boots_under_edk2() {
    efi_cell(
        Bootloader::SystemdBoot,
        &[
            "EFI/BOOT/BOOTRISCV64.EFI",
            "EFI/systemd/systemd-bootriscv64.efi",
            "loader/loader.conf",
            "loader/entries/nixos-generation-1.conf",
        ],
    );
}

/// GRUB's riscv64-efi image assembled natively from Debian 13's GRUB 2.12 modules (its RISC-V
/// relocations are otherwise only unit-tested: no grub-mkimage here targets riscv64).
#[test]
fn test_riscv64_efi_grub_boots_under_edk2() {
    efi_cell(
        Bootloader::Grub,
        &[
            "EFI/BOOT/BOOTRISCV64.EFI",
            "grub/grub.cfg",
            "grub/riscv64-efi/normal.mod",
        ],
    );
}
