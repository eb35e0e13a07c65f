//! The live ISO of the fixture closure (`imagetool::iso`): its layout as xorriso and isoinfo
//! read it, byte-identical rebuilds, and boots to the fixture's marker from a CD-ROM and from a
//! USB stick under SeaBIOS and OVMF, the manifest hash proving the store inside the squashfs
//! complete.
//!
//! The store squashfs is imagetool's own (`StoreImage::native_default`, zstd 19 with 1 MiB
//! blocks); Debian's mksquashfs makes the same closure's image only as the oracle its listing
//! is compared with.

use std::path::{Path, PathBuf};

use imagetool::iso::{IsoSpec, StoreImage, build_iso, registration};
use imagetool::nix::closure::ClosureInput;
use imagetool_testutil::boot::{self, BootConfig, Firmware, Media};
use imagetool_testutil::tools::{
    GRUB_MKIMAGE, GRUB_SCRIPT_CHECK, ISOINFO, MKSQUASHFS, OVMF_CODE, QEMU_SYSTEM, SEABIOS,
    UNSQUASHFS, XORRISO,
};
use imagetool_testutil::tree::{CompareOptions, Tree};
use imagetool_testutil::{iso, squashfs};
use imagetool_testutil::{require_tools, run_text};

const EPOCH: i64 = 1_700_000_000;
const VOLUME: &str = "nixos-25.11-x86_64";

struct Built {
    fx: imagetool_fixture::Fixture,
    iso: PathBuf,
    registration: String,
}

/// The fixture's ISO in `dir`, with the native store image.
fn build(dir: &Path, name: &str) -> Built {
    let fx = imagetool_fixture::ensure().unwrap();
    let closure = ClosureInput::ClosureInfo(fx.dir.clone());
    let reg = registration(&closure, &fx.store_root, &fx.toplevel).unwrap();
    let out = dir.join(name);
    let mut spec = IsoSpec::new(fx.toplevel.clone(), closure, out.clone());
    spec.store_root = fx.store_root.clone();
    spec.store_image = StoreImage::native_default();
    spec.epoch = EPOCH.into();
    spec.timeout = 0;
    let report = build_iso(&spec).unwrap();
    assert_eq!(report.volume_id, VOLUME);
    Built {
        fx,
        iso: out,
        registration: reg,
    }
}

/// The oracle: Debian's mksquashfs image of the closure, as make-squashfs.nix makes it.
fn mksquashfs_store(dir: &Path, b: &Built) -> PathBuf {
    let squashfs = dir.join("mksquashfs.squashfs");
    let reg_file = dir.join("nix-path-registration");
    std::fs::write(&reg_file, &b.registration).unwrap();
    // As make-squashfs.nix copies it out of the read-only closureInfo.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&reg_file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mut sources = vec![reg_file];
    sources.extend(b.fx.store_paths.iter().map(|p| b.fx.host_path(p)));
    iso::mksquashfs(&sources, &squashfs).unwrap();
    squashfs
}

#[test]
fn test_fixture_iso_layout_as_xorriso_and_isoinfo_read_it_and_rebuilds_identically() {
    require_tools!(
        XORRISO,
        ISOINFO,
        MKSQUASHFS,
        UNSQUASHFS,
        GRUB_MKIMAGE,
        GRUB_SCRIPT_CHECK
    );
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path(), "a.iso");

    let v = iso::volume_info(&b.iso).unwrap();
    assert_eq!(v.volume_id, VOLUME, "{}", v.text);
    assert!(v.rock_ridge && v.joliet, "{}", v.text);

    let r = iso::boot_report(&b.iso).unwrap();
    assert_eq!(r.catalog_path.as_deref(), Some("/.boot.cat"), "{}", r.text);
    assert_eq!(r.images.len(), 2, "{}", r.text);
    assert_eq!(r.images[0].platform, "BIOS");
    assert_eq!(r.images[0].path.as_deref(), Some("/isolinux/isolinux.bin"));
    assert_eq!(r.images[0].load_size, 4);
    assert_eq!(
        r.images[0].options, "boot-info-table isohybrid-suitable",
        "{}",
        r.text
    );
    assert_eq!(r.images[1].platform, "UEFI");
    assert_eq!(r.images[1].path.as_deref(), Some("/boot/efi.img"));
    assert_eq!(
        r.system_area, "MBR isohybrid cyl-align-on GPT",
        "{}",
        r.text
    );
    let size = std::fs::metadata(&b.iso).unwrap().len() / 512;
    assert_eq!(
        (r.mbr[0].2.as_str(), r.mbr[0].3, r.mbr[0].4),
        ("0x00", 0, size),
        "{}",
        r.text
    );
    assert_eq!(r.mbr[1].2, "0xef", "{}", r.text);
    assert_eq!(
        r.gpt.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(),
        ["ISOHybrid", "ISOHybrid1"]
    );

    // Every file as libisofs extracts it.
    let t = iso::extract(&b.iso).unwrap();
    let kernel = Tree::new().file("/k", 0o444, &std::fs::read(b.fx.kernel()).unwrap());
    assert_eq!(
        t.get("/boot/bzImage").unwrap().kind,
        kernel.get("/k").unwrap().kind
    );
    let initrd = Tree::new().file("/i", 0o444, &std::fs::read(b.fx.initrd()).unwrap());
    assert_eq!(
        t.get("/boot/initrd").unwrap().kind,
        initrd.get("/i").unwrap().kind
    );
    assert_eq!(t.get("/nix-store.squashfs").unwrap().mode, 0o444);
    for p in [
        "/isolinux/isolinux.bin",
        "/isolinux/ldlinux.c32",
        "/isolinux/isolinux.cfg",
        "/EFI/boot/bootx64.efi",
        "/EFI/boot/grub.cfg",
        "/EFI/nixos-installer-image",
        "/boot/efi.img",
        "/boot/grub/loopback.cfg",
        "/version.txt",
    ] {
        let e = t.get(p).unwrap_or_else(|| panic!("{p} missing"));
        assert_eq!(e.mode, 0o444, "{p}");
    }
    assert_eq!(t.get("/boot").unwrap().mode, 0o555);

    // The loader configurations: the bootspec's init and parameters plus the live ISO's.
    let extracted = tmp.path().join("cfg");
    std::fs::create_dir_all(&extracted).unwrap();
    let listing = iso::listing(&b.iso, false).unwrap();
    assert!(listing.contains_key("/isolinux/isolinux.cfg"));
    let bytes = std::fs::read(&b.iso).unwrap();
    let file = |p: &str| {
        let l = &listing[p];
        let start = l.extent.unwrap() as usize * 2048;
        String::from_utf8(bytes[start..start + l.size as usize].to_vec()).unwrap()
    };
    let cmdline = format!(
        "init={}/init root=LABEL={VOLUME} boot.shell_on_fail {}",
        b.fx.toplevel,
        imagetool_fixture::KERNEL_PARAMS.join(" ")
    );
    let isolinux = file("/isolinux/isolinux.cfg");
    assert!(
        isolinux.contains(&format!("APPEND {cmdline}\n")),
        "{isolinux}"
    );
    let grub = file("/EFI/boot/grub.cfg");
    assert!(
        grub.contains(&format!("linux /boot/bzImage ${{isoboot}} {cmdline}\n")),
        "{grub}"
    );
    let cfg = tmp.path().join("grub.cfg");
    std::fs::write(&cfg, &grub).unwrap();
    let (ok, out) = run_text(GRUB_SCRIPT_CHECK, &[cfg.as_os_str()]);
    assert!(ok, "{out}");

    // The store image inside the ISO: unsquashfs lists and extracts the closure.
    let inner = tmp.path().join("inner.squashfs");
    let l = &listing["/nix-store.squashfs"];
    let start = l.extent.unwrap() as usize * 2048;
    std::fs::write(&inner, &bytes[start..start + l.size as usize]).unwrap();
    let lls = iso::unsquash_lls(&inner).unwrap();
    assert!(
        lls.contains_key("/nix-path-registration"),
        "{:?}",
        lls.keys().take(3).collect::<Vec<_>>()
    );
    // Its superblock: upstream's isoImage.squashfsCompression and make-squashfs.nix's blocks.
    let st = squashfs::stat(&inner).unwrap();
    assert_eq!(st.compression(), Some("zstd"), "{}", st.text);
    assert_eq!(st.block_size().unwrap(), 1 << 20, "{}", st.text);
    assert_eq!(st.mkfs_time, EPOCH as u64, "{}", st.text);
    // Entry by entry (types, modes, owners, sizes, targets) as mksquashfs lays out the same
    // closure with make-squashfs.nix's -all-root -keep-as-directory; the root as -root-mode
    // 0755 makes it.
    // A directory's size is its encoded listing (header runs follow the inode blocks, which
    // differ with mksquashfs keeping the host's hard links): not compared.
    let no_dir_size = |mut l: std::collections::BTreeMap<String, squashfs::Listed>| {
        for e in l.values_mut().filter(|e| e.kind == 'd') {
            e.size = 0;
        }
        l
    };
    let ours = no_dir_size(squashfs::listing(&inner).unwrap());
    let mut theirs = no_dir_size(squashfs::listing(&mksquashfs_store(tmp.path(), &b)).unwrap());
    let root = &ours["/"];
    assert_eq!(
        (root.kind, root.mode, root.uid, root.gid),
        ('d', 0o755, 0, 0)
    );
    theirs.insert("/".into(), root.clone());
    assert_eq!(ours.len(), theirs.len());
    for (path, l) in &theirs {
        assert_eq!(ours.get(path), Some(l), "{path}");
    }
    assert_eq!(
        ours.keys().filter(|k| k.matches('/').count() == 1).count(),
        b.fx.store_paths.len() + 2,
        "the root holds one entry per store path and nix-path-registration"
    );
    let store = iso::unsquash(&inner).unwrap();
    // -no-hardlinks: the host store's hard links are separate files (link count 1) inside.
    let mut expected = Tree::new();
    for (p, e) in Tree::from_dir(&b.fx.store_root.join("nix/store"))
        .unwrap()
        .entries()
    {
        if p != "/" {
            expected.insert(p, e.kind.clone(), e.mode);
        }
    }
    expected.insert(
        "/nix-path-registration",
        imagetool_testutil::tree::Kind::file(b.registration.as_bytes()),
        0o444,
    );
    let opts = CompareOptions {
        root: false,
        owners: false,
        ..CompareOptions::default()
    };
    expected
        .compare(&store, &opts, "the squashfs store")
        .unwrap();

    // Deterministic: a second build is byte-identical.
    let again = build(tmp.path(), "b.iso");
    assert!(
        std::fs::read(&again.iso).unwrap() == bytes,
        "two builds differ"
    );
}

/// Four boots of one image: CD-ROM and USB stick, SeaBIOS (isolinux) and OVMF (GRUB).
#[test]
fn test_fixture_iso_boots_from_cdrom_and_usb_under_seabios_and_ovmf() {
    require_tools!(QEMU_SYSTEM, SEABIOS, OVMF_CODE, GRUB_MKIMAGE);
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path(), "live.iso");
    let expected = imagetool_fixture::store_manifest_sha256_with(
        &b.fx.store_root,
        &[("nix-path-registration", b.registration.as_bytes(), 0o444)],
    )
    .unwrap();
    let mut failures = Vec::new();
    for (fw, media, what) in [
        (Firmware::SeaBios, Media::Cdrom, "SeaBIOS CD-ROM"),
        (Firmware::Ovmf, Media::Cdrom, "OVMF CD-ROM"),
        (Firmware::SeaBios, Media::UsbStick, "SeaBIOS USB stick"),
        (Firmware::Ovmf, Media::UsbStick, "OVMF USB stick"),
    ] {
        let mut cfg = BootConfig::new(fw).medium(&b.iso, media);
        cfg.memory_mib = 1024;
        match boot::boot_and_expect(&cfg, &b.fx.toplevel, &expected) {
            Ok(r) => eprintln!("{what}: marker after {:.0?}", r.elapsed),
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
