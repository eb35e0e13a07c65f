//! GRUB's own tools judge what `boot::grub` makes from the fixture closure's GRUB packages:
//! the modules are found with their version, the natively assembled images are identical run
//! to run (i386-pc core and x86_64-efi PE, whose COFF timestamp is GRUB's constant
//! 2015-01-01), `grub-editenv` makes the same grubenv, `grub-script-check` accepts the
//! grub.cfg. (tests/grub_mkimage.rs compares the images with `grub-mkimage`'s.)

use std::path::PathBuf;

use imagetool_blockio::{MemImage, ReadAt, WriteAt};
use imagetool_boot::ErrorKind;
use imagetool_boot::grub::{
    self, EmbedArea, GrubConfig, GrubTools, ImageOptions, MenuEntry, Platform,
};
use imagetool_testutil::tools::{APT_GET, DPKG_DEB, GRUB_SCRIPT_CHECK};
use imagetool_testutil::{Tool, require_tools, run_ok, run_text};

const GRUB_EDITENV: Tool = Tool::new("grub-editenv", "grub-common");

fn closure() -> Vec<PathBuf> {
    let fx = imagetool_fixture::ensure().unwrap_or_else(|e| panic!("fixture: {e}"));
    fx.store_paths.iter().map(|p| fx.host_path(p)).collect()
}

const UUID: &str = "44444444-4444-4444-8888-888888888888";

#[test]
fn test_grub_is_found_in_the_closure() {
    require_tools!(APT_GET, DPKG_DEB);
    let paths = closure();
    for platform in [Platform::I386Pc, Platform::X86_64Efi] {
        let t = GrubTools::find(platform, &paths).unwrap();
        assert!(t.moddir().ends_with(format!("lib/grub/{platform}")));
        assert_eq!(t.modules_version(), Some("2.06"), "{platform}");
    }
    // Only the GRUB for the other platform: a clear Missing error.
    let efi_only: Vec<PathBuf> = paths
        .iter()
        .filter(|p| !p.to_string_lossy().contains("grub-pc-bin"))
        .cloned()
        .collect();
    let e = GrubTools::find(Platform::I386Pc, &efi_only).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Missing);
    assert!(e.to_string().contains("lib/grub/i386-pc"), "{e}");
}

#[test]
fn test_images_are_deterministic_and_well_formed() {
    require_tools!(APT_GET, DPKG_DEB);
    let paths = closure();
    let pc = GrubTools::find(Platform::I386Pc, &paths).unwrap();
    let opts = ImageOptions::new(UUID, "/boot/grub");
    let a = pc.core_image(&opts).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = pc.core_image(&opts).unwrap();
    assert_eq!(a, b, "core.img differs between two runs");
    let sectors = a.len().div_ceil(512);
    assert!(sectors < 1900, "core.img of {sectors} sectors");
    // diskboot.img's blocklist: the rest of the image from LBA 2, sectors − 1 of them.
    assert_eq!(u64::from_le_bytes(a[0x1F4..0x1FC].try_into().unwrap()), 2);
    assert_eq!(
        usize::from(u16::from_le_bytes([a[0x1FC], a[0x1FD]])),
        sectors - 1
    );
    let other = pc
        .core_image(&ImageOptions::new("ABCD-1234", "/grub"))
        .unwrap();
    assert_ne!(a, other, "the UUID and prefix change the image");
    println!("i386-pc core.img: {} bytes, {sectors} sectors", a.len());

    let efi = GrubTools::find(Platform::X86_64Efi, &paths).unwrap();
    let x = efi.efi_image(&opts).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let y = efi.efi_image(&opts).unwrap();
    assert_eq!(x, y, "BOOTX64.EFI differs between two runs");
    let pe = u32::from_le_bytes(x[0x3C..0x40].try_into().unwrap()) as usize;
    assert_eq!(&x[pe..pe + 4], b"PE\0\0");
    assert_eq!(
        u16::from_le_bytes([x[pe + 4], x[pe + 5]]),
        0x8664,
        "x86-64 machine"
    );
    let stamp = u32::from_le_bytes(x[pe + 8..pe + 12].try_into().unwrap());
    // GRUB stamps a constant, not the time: STABLE_EMBEDDING_TIMESTAMP (2015-01-01).
    assert_eq!(stamp, 1_420_070_400, "COFF TimeDateStamp");
    // The EFI image is not compressed: the early config is in it verbatim.
    let early = opts.early_config().unwrap();
    assert!(
        x.windows(early.len()).any(|w| w == early.as_bytes()),
        "early config embedded in the EFI image"
    );
    println!("x86_64-efi image: {} bytes", x.len());

    // Wrong platform for the image kind.
    assert_eq!(
        pc.efi_image(&opts).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    // A module that does not exist.
    let mut bad = opts.clone();
    bad.extra_modules.push("no_such_module".into());
    let e = pc.core_image(&bad).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Missing);
    assert!(e.to_string().contains("no_such_module.mod"), "{e}");
}

#[test]
fn test_module_files_are_the_platform_directory() {
    require_tools!(APT_GET, DPKG_DEB);
    let paths = closure();
    let pc = GrubTools::find(Platform::I386Pc, &paths).unwrap();
    let files = pc.module_files("boot/grub").unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for must in [
        "boot/grub/i386-pc/normal.mod",
        "boot/grub/i386-pc/linux.mod",
        "boot/grub/i386-pc/search.mod",
        "boot/grub/i386-pc/command.lst",
        "boot/grub/i386-pc/moddep.lst",
        "boot/grub/i386-pc/modinfo.sh",
        "boot/grub/i386-pc/boot.img",
    ] {
        assert!(names.contains(&must), "{must} missing");
    }
    let mods = std::fs::read_dir(pc.moddir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".mod")
        })
        .count();
    assert_eq!(names.iter().filter(|n| n.ends_with(".mod")).count(), mods);
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    println!("{} files under boot/grub/i386-pc", files.len());
}

#[test]
fn test_grubenv_equals_grub_editenv_create() {
    require_tools!(GRUB_EDITENV);
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("grubenv");
    run_ok(GRUB_EDITENV, &[p.as_os_str(), "create".as_ref()]);
    assert_eq!(std::fs::read(&p).unwrap(), grub::grubenv());
}

#[test]
fn test_grub_script_check_accepts_the_grub_cfg() {
    require_tools!(GRUB_SCRIPT_CHECK);
    let entry = |title: &str| MenuEntry {
        title: title.into(),
        kernel: GrubConfig::store_file("/nix/store/aaaa-linux-6.6/bzImage"),
        initrds: vec![GrubConfig::store_file("/nix/store/bbbb-initrd/initrd")],
        init: "/nix/store/cccc-nixos-system-x/init".into(),
        params: "console=ttyS0 panic=-1 loglevel=4".into(),
    };
    let mut cfg = GrubConfig::new(UUID, Some(UUID), entry("NixOS - Default"));
    cfg.specialisations.push(entry("NixOS - debug \"x\" $y"));
    cfg.configurations
        .push(entry("NixOS - Configuration 1 (1970-01-01 - 25.11)"));
    let text = grub::grub_cfg(&cfg).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("grub.cfg");
    std::fs::write(&p, &text).unwrap();
    let (ok, out) = run_text(GRUB_SCRIPT_CHECK, &[p.as_os_str()]);
    assert!(ok, "grub-script-check: {out}\n{text}");
    // A broken file is refused by the same oracle (the check can fail).
    std::fs::write(&p, text.replace("}\n\nsubmenu", "\nsubmenu")).unwrap();
    let (ok, _) = run_text(GRUB_SCRIPT_CHECK, &[p.as_os_str()]);
    assert!(!ok, "grub-script-check accepted an unbalanced file");
}

#[test]
fn test_embedding_the_real_core_image_into_a_mbr_disk() {
    require_tools!(APT_GET, DPKG_DEB);
    let paths = closure();
    let pc = GrubTools::find(Platform::I386Pc, &paths).unwrap();
    let core = pc
        .core_image(&ImageOptions::new(UUID, "/boot/grub"))
        .unwrap();
    let boot = pc.boot_img().unwrap();
    let disk = MemImage::new(8 << 20);
    let mut mbr = [0u8; 512];
    mbr[0x1BE + 4] = 0x83;
    mbr[0x1BE + 8..0x1BE + 12].copy_from_slice(&2048u32.to_le_bytes());
    mbr[0x1BE + 12..0x1BE + 16].copy_from_slice(&14336u32.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    disk.write_all_at(&mbr, 0).unwrap();
    let r = grub::embed_bios(&disk, &boot, &core, EmbedArea::MbrGap { sectors: 2047 }).unwrap();
    assert_eq!(r.core_lba, 1);
    let mut s0 = [0u8; 512];
    disk.read_exact_at(&mut s0, 0).unwrap();
    assert_eq!(&s0[..3], &boot[..3]);
    assert_eq!(&s0[0x1B8..], &mbr[0x1B8..]);
    let mut back = vec![0u8; core.len()];
    disk.read_exact_at(&mut back, 512).unwrap();
    // At LBA 1 the blocklist diskboot.img carries (start 2) is already right: bytes unchanged.
    assert_eq!(back, core);
}
