//! The native `grub-mkimage` ([`imagetool_boot::grub::mkimage`]) against GRUB's own, for the
//! same module directory, modules, prefix and early config: EFI images and `core.img` (its
//! LZMA stream included) byte for byte.
//!
//! Module directories: the fixture's (`i386-pc`, `x86_64-efi`) and Debian's `grub-pc-bin`,
//! `grub-efi-ia32-bin` and `grub-efi-arm64-bin:arm64` (downloaded and unpacked; none of their
//! code runs; the host's grub-mkimage targets any platform with `-d`).

use std::path::{Path, PathBuf};

use imagetool_boot::grub::mkimage::{self, Format, Request, lzma};
use imagetool_testutil::grub as oracle;
use imagetool_testutil::require_tools;
use imagetool_testutil::tools::{APT_GET, DPKG_DEB, GRUB_MKIMAGE};

const CONFIG: &[u8] =
    b"search.fs_uuid 44444444-4444-4444-8888-888888888888 root\nset prefix=($root)'/boot/grub'\n";

fn fixture_moddir(platform: &str) -> PathBuf {
    let fx = imagetool_fixture::ensure().unwrap_or_else(|e| panic!("fixture: {e}"));
    fx.store_paths
        .iter()
        .map(|p| fx.host_path(p).join("lib/grub").join(platform))
        .find(|d| d.join("kernel.img").is_file())
        .unwrap_or_else(|| panic!("no {platform} GRUB in the fixture"))
}

fn debian_moddir(package: &str, platform: &str) -> PathBuf {
    let root =
        imagetool_fixture::debian_package(package).unwrap_or_else(|e| panic!("{package}: {e}"));
    root.join("usr/lib/grub").join(platform)
}

/// The module sets compared: what imagetool builds in, and a large set that exercises many
/// more relocation kinds (normal, linux, crypto, video …).
const SMALL: &[&str] = &["part_msdos", "part_gpt", "ext2", "fat", "search_fs_uuid"];
const LARGE: &[&str] = &[
    "part_msdos",
    "part_gpt",
    "ext2",
    "fat",
    "search_fs_uuid",
    "normal",
    "linux",
    "echo",
    "configfile",
    "gzio",
    "xzio",
    "lvm",
    "btrfs",
    "xfs",
    "iso9660",
    "squash4",
    "gcry_sha256",
    "regexp",
    "test",
    "loadenv",
    "all_video",
    "png",
    "chain",
    "reboot",
    "halt",
];

fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).position(|(x, y)| x != y);
    format!(
        "native {} bytes, grub-mkimage {} bytes, first difference at {:?}",
        a.len(),
        b.len(),
        at.map(|o| format!("{o:#x}"))
    )
}

fn compare_efi(
    format: Format,
    moddir: &Path,
    modules: &[&str],
    prefix: Option<&str>,
    config: Option<&[u8]>,
) {
    let native = mkimage::mkimage(&Request {
        format,
        moddir,
        modules,
        prefix,
        config,
    })
    .unwrap_or_else(|e| panic!("{format}: {e}"));
    let theirs = oracle::mkimage(format.name(), moddir, prefix, config, modules)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        native == theirs,
        "{format} with {} modules: {}",
        modules.len(),
        first_difference(&native, &theirs)
    );
    println!(
        "{format}: {} modules, {} bytes identical",
        modules.len(),
        native.len()
    );
}

#[test]
fn test_x86_64_efi_equals_grub_mkimage() {
    require_tools!(GRUB_MKIMAGE, APT_GET, DPKG_DEB);
    let d = fixture_moddir("x86_64-efi");
    compare_efi(
        Format::X86_64Efi,
        &d,
        SMALL,
        Some("/boot/grub"),
        Some(CONFIG),
    );
    compare_efi(Format::X86_64Efi, &d, LARGE, Some("/grub"), Some(CONFIG));
    compare_efi(Format::X86_64Efi, &d, &["fat"], Some("/"), None);
}

#[test]
fn test_i386_efi_equals_grub_mkimage() {
    require_tools!(GRUB_MKIMAGE, APT_GET, DPKG_DEB);
    let d = debian_moddir("grub-efi-ia32-bin", "i386-efi");
    compare_efi(Format::I386Efi, &d, SMALL, Some("/boot/grub"), Some(CONFIG));
    compare_efi(Format::I386Efi, &d, LARGE, Some("/grub"), Some(CONFIG));
}

#[test]
fn test_arm64_efi_equals_grub_mkimage() {
    require_tools!(GRUB_MKIMAGE, APT_GET, DPKG_DEB);
    let d = debian_moddir("grub-efi-arm64-bin:arm64", "arm64-efi");
    compare_efi(
        Format::Arm64Efi,
        &d,
        SMALL,
        Some("/boot/grub"),
        Some(CONFIG),
    );
    compare_efi(Format::Arm64Efi, &d, LARGE, Some("/grub"), Some(CONFIG));
}

fn compare_pc(format: Format, moddir: &Path, modules: &[&str], prefix: &str) {
    let native = mkimage::mkimage(&Request {
        format,
        moddir,
        modules,
        prefix: Some(prefix),
        config: Some(CONFIG),
    })
    .unwrap_or_else(|e| panic!("{format}: {e}"));
    let theirs = oracle::mkimage(format.name(), moddir, Some(prefix), Some(CONFIG), modules)
        .unwrap_or_else(|e| panic!("{e}"));
    if native != theirs {
        // Say where: diskboot.img, the decompressor's size fields, or the LZMA stream (and
        // whether the payloads still agree).
        let skip = if format == Format::I386PcEltorito {
            std::fs::metadata(moddir.join("cdboot.img")).unwrap().len() as usize
        } else {
            0
        };
        let dlen = std::fs::metadata(moddir.join("lzma_decompress.img"))
            .unwrap()
            .len() as usize;
        let payload = |img: &[u8]| {
            let d = &img[skip + 512..skip + 512 + dlen];
            let size = u32::from_le_bytes(d[0xc..0x10].try_into().unwrap()) as usize;
            lzma::decompress(&img[skip + 512 + dlen..], size).unwrap()
        };
        panic!(
            "{format} with {} modules: {}; stream starts at {:#x}; payloads {}",
            modules.len(),
            first_difference(&native, &theirs),
            skip + 512 + dlen,
            if payload(&native) == payload(&theirs) {
                "identical"
            } else {
                "differ"
            }
        );
    }
    println!(
        "{format}: {} modules, {} bytes identical",
        modules.len(),
        native.len()
    );
}

#[test]
fn test_i386_pc_core_img_equals_grub_mkimage() {
    require_tools!(GRUB_MKIMAGE, APT_GET, DPKG_DEB);
    let mut small = vec!["biosdisk"];
    small.extend_from_slice(SMALL);
    let mut large = vec!["biosdisk"];
    large.extend_from_slice(LARGE);
    for d in [
        fixture_moddir("i386-pc"),
        debian_moddir("grub-pc-bin", "i386-pc"),
    ] {
        compare_pc(Format::I386Pc, &d, &small, "/boot/grub");
        compare_pc(Format::I386Pc, &d, &large, "/grub");
        compare_pc(Format::I386PcEltorito, &d, &small, "/boot/grub");
    }
}

#[test]
fn test_images_are_deterministic_across_threads() {
    require_tools!(APT_GET, DPKG_DEB);
    for (format, platform) in [
        (Format::I386Pc, "i386-pc"),
        (Format::X86_64Efi, "x86_64-efi"),
    ] {
        let d = fixture_moddir(platform);
        let make = || {
            mkimage::mkimage(&Request {
                format,
                moddir: &d,
                modules: SMALL,
                prefix: Some("/grub"),
                config: Some(CONFIG),
            })
            .unwrap()
        };
        let first = make();
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..3).map(|_| make()).collect::<Vec<_>>()))
                .collect();
            for h in hs {
                for img in h.join().unwrap() {
                    assert!(img == first, "{format}: {}", first_difference(&img, &first));
                }
            }
        });
    }
}
