//! The native `grub-mkimage` ([`imagetool_boot::grub::mkimage`]) against GRUB's own, for the
//! same module directory, modules, prefix and early config: EFI images byte for byte;
//! `core.img` byte for byte outside its LZMA stream (and the two compressed-size fields that
//! follow from it), with both streams decompressing to the same kernel and modules.
//!
//! Module directories: the fixture's (`i386-pc`, `x86_64-efi`) and Debian's
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

/// `(diskboot, decompressor, stream)` of an i386-pc image after `skip` bytes (cdboot.img).
fn split_pc(img: &[u8], skip: usize, decomp_len: usize) -> (&[u8], &[u8], &[u8]) {
    let img = &img[skip..];
    (
        &img[..512],
        &img[512..512 + decomp_len],
        &img[512 + decomp_len..],
    )
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
    let skip = if format == Format::I386PcEltorito {
        let cd = std::fs::read(moddir.join("cdboot.img")).unwrap();
        assert_eq!(native[..cd.len()], cd[..], "cdboot.img first");
        assert_eq!(theirs[..cd.len()], cd[..]);
        cd.len()
    } else {
        0
    };
    let dlen = std::fs::metadata(moddir.join("lzma_decompress.img"))
        .unwrap()
        .len() as usize;
    let (nb, nd, ns) = split_pc(&native, skip, dlen);
    let (tb, td, ts) = split_pc(&theirs, skip, dlen);
    let u32at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    // The decompressor's fields: compressed size (each its own stream's), uncompressed size.
    assert_eq!(u32at(nd, 8) as usize, ns.len());
    assert_eq!(u32at(td, 8) as usize, ts.len());
    assert_eq!(u32at(nd, 0xc), u32at(td, 0xc), "uncompressed size");
    assert_eq!(nd[..8], td[..8]);
    assert_eq!(
        nd[0x10..],
        td[0x10..],
        "decompressor beyond the patched fields"
    );
    // diskboot.img: identical but for the sector count, which is each image's own.
    assert_eq!(nb[..508], tb[..508]);
    assert_eq!(nb[510..], tb[510..]);
    let sectors = |b: &[u8]| usize::from(u16::from_le_bytes([b[508], b[509]]));
    assert_eq!(sectors(nb), (nd.len() + ns.len()).div_ceil(512));
    assert_eq!(sectors(tb), (td.len() + ts.len()).div_ceil(512));
    // The payloads: kernel + modules + config + prefix, byte for byte.
    let size = u32at(td, 0xc) as usize;
    let ours = lzma::decompress(ns, size).unwrap();
    let gnu = lzma::decompress(ts, size).unwrap();
    assert!(ours == gnu, "payload: {}", first_difference(&ours, &gnu));
    println!(
        "{format}: {} modules, payload {size} bytes identical; stream {} bytes here, {} from grub-mkimage{}",
        modules.len(),
        ns.len(),
        ts.len(),
        if ns == ts { " (identical)" } else { "" }
    );
}

#[test]
fn test_i386_pc_core_img_decompresses_to_grub_mkimage_payload() {
    require_tools!(GRUB_MKIMAGE, APT_GET, DPKG_DEB);
    let d = fixture_moddir("i386-pc");
    let mut small = vec!["biosdisk"];
    small.extend_from_slice(SMALL);
    compare_pc(Format::I386Pc, &d, &small, "/boot/grub");
    let mut large = vec!["biosdisk"];
    large.extend_from_slice(LARGE);
    compare_pc(Format::I386Pc, &d, &large, "/grub");
    compare_pc(Format::I386PcEltorito, &d, &small, "/boot/grub");
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
