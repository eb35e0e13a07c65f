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
use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::tools::{
    AAVMF_CODE, AAVMF_VARS, APT_GET, DPKG_DEB, E2FSCK, FSCK_FAT, MDIR, QEMU_SYSTEM_AARCH64,
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

    let (o, l) = range(&report, Role::Esp);
    let esp = Target::range(&img, o, l);
    fat::assert_clean(&esp);
    let list = fat::list(&esp).unwrap();
    for f in esp_files {
        assert!(
            list.keys().any(|k| k.trim_start_matches('/') == *f),
            "{f} missing from the ESP: {:?}",
            list.keys()
        );
    }
    assert!(
        !list.keys().any(|k| k.ends_with("BOOTX64.EFI")),
        "an x86 loader on an aarch64 ESP: {:?}",
        list.keys()
    );
    let (o, l) = range(&report, Role::Root);
    ext4::assert_clean(&Target::range(&img, o, l));

    boot_to_marker(&fx, &expected, Firmware::Aavmf, &img);
}

fn boot_to_marker(fx: &imagetool_fixture::Fixture, expected: &str, firmware: Firmware, img: &Path) {
    let mut cfg = BootConfig::new(firmware).drive(img, DiskFormat::Raw);
    cfg.cpus = 2;
    cfg.stop_when = boot::markers(&fx.toplevel, expected).to_vec();
    cfg.timeout = cfg.timeout.max(std::time::Duration::from_secs(540));
    let res = boot::boot(&cfg).unwrap();
    eprintln!(
        "aarch64 boot: {:.1} s ({:?})",
        res.elapsed.as_secs_f64(),
        res.accel
    );
    boot::expect_markers(&res, &fx.toplevel, expected).unwrap_or_else(|e| panic!("{e}"));
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
