//! The ISO writer judged by independent readers: xorriso (libisofs) extracts the tree and
//! reports El Torito and the hybrid tables, genisoimage's isoinfo reads the volume descriptors
//! and lists the Rock Ridge and Joliet trees.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use imagetool_fstree::{HostOptions, Tree};
use imagetool_iso9660::{BiosBoot, Hybrid, Options, write_file};
use imagetool_testutil::iso;
use imagetool_testutil::require_tools;
use imagetool_testutil::tools::{ISOINFO, XORRISO};
use imagetool_testutil::tree::{CompareOptions, Tree as Expected};

const EPOCH: i64 = 1_700_000_000;

fn write(p: &Path, data: &[u8], mode: u32) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree shaped like real inputs: long and non-ASCII names, names that clash once mangled,
/// absolute, relative and very long symlink targets, setuid and executable files, an empty
/// file, a directory with enough entries to span several blocks, deep nesting.
fn source(dir: &Path) {
    write(&dir.join("version.txt"), b"25.11\n", 0o444);
    write(&dir.join("Version.txt"), b"other case\n", 0o644);
    write(&dir.join("boot/bzImage"), &vec![0x5a; 70_000], 0o444);
    write(&dir.join("boot/empty"), b"", 0o444);
    write(&dir.join("bin/su"), b"#!/bin/sh\n", 0o4755);
    let long = "l".repeat(200) + ".dat";
    write(&dir.join("store").join(&long), b"long name\n", 0o444);
    write(&dir.join("store/naïve-ünïcødé.txt"), b"utf8\n", 0o444);
    for i in 0..300 {
        write(
            &dir.join("store/many")
                .join(format!("{i:04}-a-fairly-long-store-path-name-{i}")),
            format!("{i}\n").as_bytes(),
            0o444,
        );
    }
    let mut deep = dir.join("deep");
    for i in 0..10 {
        deep = deep.join(format!("level{i}"));
    }
    write(&deep.join("leaf"), b"deep\n", 0o444);
    symlink("/nix/store/abc-foo/bin/foo", dir.join("bin/abs")).unwrap();
    symlink("../version.txt", dir.join("bin/rel")).unwrap();
    // (Rock Ridge cannot keep doubled or trailing slashes: readers normalise them.)
    symlink("./a/./b/../c/d", dir.join("bin/odd")).unwrap();
    // libisofs reads targets up to 1024 bytes; this one needs several SL entries and a
    // continuation area.
    let target = (0..23)
        .map(|i| format!("component{i:02}-{}", "x".repeat(30)))
        .collect::<Vec<_>>()
        .join("/");
    symlink(&target, dir.join("bin/longlink")).unwrap();
}

fn options() -> Options {
    let mut o = Options::new("nixos-25.11-x86_64", EPOCH);
    o.publisher = "nixos".into();
    o.application = "nixos".into();
    o
}

#[test]
fn test_rock_ridge_tree_matches_the_source_for_xorriso_and_isoinfo() {
    require_tools!(XORRISO, ISOINFO);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    source(&src);
    let tree = Tree::from_host_dir(&src, &HostOptions::default()).unwrap();
    let out = tmp.path().join("a.iso");
    write_file(&tree, &options(), &out).unwrap();

    let info = iso::volume_info(&out).unwrap();
    assert_eq!(info.volume_id, "nixos-25.11-x86_64", "{}", info.text);
    assert!(info.rock_ridge && info.joliet, "{}", info.text);
    assert_eq!(info.blocks * 2048, std::fs::metadata(&out).unwrap().len());

    // libisofs extracts every name, mode, owner, target and byte.
    let expected = Expected::from_dir(&src).unwrap();
    let actual = iso::extract(&out).unwrap();
    expected
        .compare(
            &actual,
            &CompareOptions {
                root: false,
                ..CompareOptions::default()
            },
            "xorriso extraction",
        )
        .unwrap();

    // genisoimage's reader sees the same names, modes and targets.
    let rr = iso::listing(&out, false).unwrap();
    // (isoinfo prints no setuid bit; the extraction above checked 04755.)
    assert_eq!(rr["/bin/su"].mode, "-rwxr-xr-x");
    assert_eq!(rr["/version.txt"].mode, "-r--r--r--");
    assert_eq!(
        rr["/bin/abs"].target.as_deref(),
        Some("/nix/store/abc-foo/bin/foo")
    );
    assert_eq!(rr["/bin/rel"].target.as_deref(), Some("../version.txt"));
    assert_eq!(rr["/boot/bzImage"].size, 70_000);
    assert!(rr.contains_key(&format!("/store/{}", "l".repeat(200) + ".dat")));
    let files = rr.keys().filter(|k| k.starts_with("/store/many/")).count();
    assert_eq!(files, 300);
    // Joliet names for Windows and readers without Rock Ridge.
    let j = iso::listing(&out, true).unwrap();
    assert!(
        j.contains_key("/boot/bzImage"),
        "{:?}",
        j.keys().take(5).collect::<Vec<_>>()
    );
    // (isoinfo converts Joliet names to Latin-1: the non-ASCII characters come back as one
    // byte each, so compare the shape.)
    let uni: Vec<&String> = j.keys().filter(|k| k.starts_with("/store/na")).collect();
    assert_eq!(uni.len(), 1, "{uni:?}");
    assert_eq!(
        uni[0].chars().count(),
        "/store/naïve-ünïcødé.txt".chars().count(),
        "{uni:?}"
    );
    assert!(!j.contains_key("/bin/abs"), "Joliet has no symlinks");
}

#[test]
fn test_hard_links_share_one_extent() {
    require_tools!(ISOINFO);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a/one"), b"shared bytes\n", 0o444);
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::hard_link(src.join("a/one"), src.join("b/two")).unwrap();
    let tree = Tree::from_host_dir(&src, &HostOptions::default()).unwrap();
    let out = tmp.path().join("h.iso");
    let plan = write_file(&tree, &options(), &out).unwrap();
    assert_eq!(plan.file_count(), 1);
    let rr = iso::listing(&out, false).unwrap();
    assert_eq!(rr["/a/one"].extent, rr["/b/two"].extent);
    assert_eq!((rr["/a/one"].nlink, rr["/b/two"].nlink), (2, 2));
}

/// A BIOS boot file, an EFI image and the hybrid MBR/GPT as xorriso reads them back, and a
/// second build byte-identical to the first.
#[test]
fn test_el_torito_and_isohybrid_as_xorriso_reports_them() {
    require_tools!(XORRISO, ISOINFO);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // A stand-in boot file: isolinux.bin's hybrid signature at 0x40 so xorriso calls it
    // isohybrid-suitable.
    let mut boot = vec![0u8; 8192];
    boot[0x40..0x44].copy_from_slice(&0x7078_c0fbu32.to_le_bytes());
    for (i, b) in boot.iter_mut().enumerate().skip(0x44) {
        *b = (i % 251) as u8;
    }
    write(&src.join("isolinux/isolinux.bin"), &boot, 0o444);
    write(&src.join("boot/efi.img"), &vec![0xe5; 1_474_560], 0o444);
    write(&src.join("version.txt"), b"x\n", 0o444);
    let tree = Tree::from_host_dir(&src, &HostOptions::default()).unwrap();
    let mut o = options();
    o.bios = Some(BiosBoot {
        path: b"isolinux/isolinux.bin".to_vec(),
        load_sectors: 4,
        info_table: true,
    });
    o.efi_image = Some(b"boot/efi.img".to_vec());
    o.catalog_path = b"isolinux/boot.cat".to_vec();
    let mut mbr = vec![0u8; 432];
    for (i, b) in mbr.iter_mut().enumerate() {
        *b = (i * 7 % 256) as u8;
    }
    o.hybrid = Some(Hybrid {
        mbr_code: mbr.clone(),
        gpt: true,
        disk_guid: "33221100-5544-7766-8899-aabbccddeeff".parse().unwrap(),
    });
    let out = tmp.path().join("b.iso");
    write_file(&tree, &o, &out).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes.len() % (1 << 20), 0, "cylinder-aligned");

    let r = iso::boot_report(&out).unwrap();
    assert_eq!(
        r.catalog_path.as_deref(),
        Some("/isolinux/boot.cat"),
        "{}",
        r.text
    );
    assert_eq!(r.images.len(), 2, "{}", r.text);
    let (b, e) = (&r.images[0], &r.images[1]);
    assert_eq!(
        (b.platform.as_str(), b.emulation.as_str(), b.load_size),
        ("BIOS", "none", 4)
    );
    assert_eq!(b.path.as_deref(), Some("/isolinux/isolinux.bin"));
    assert!(b.options.contains("boot-info-table"), "{}", r.text);
    assert_eq!((e.platform.as_str(), e.load_size), ("UEFI", 2880));
    assert_eq!(e.path.as_deref(), Some("/boot/efi.img"));
    assert!(r.system_area.contains("GPT"), "{}", r.text);
    let total = bytes.len() as u64 / 512;
    assert_eq!(
        r.mbr[0],
        (1, "0x80".into(), "0x00".into(), 0, total),
        "{}",
        r.text
    );
    assert_eq!(
        r.mbr[1],
        (2, "0x00".into(), "0xef".into(), e.lba * 4, 2880),
        "{}",
        r.text
    );
    assert_eq!(
        r.gpt[0],
        (1, "ISOHybrid".into(), 0, total - 64),
        "{}",
        r.text
    );
    assert_eq!(
        r.gpt[1],
        (2, "ISOHybrid1".into(), e.lba * 4, 2880),
        "{}",
        r.text
    );
    // The MBR code, and the boot file's position in 512-byte sectors at 432.
    assert_eq!(&bytes[..432], &mbr[..]);
    assert_eq!(
        u32::from_le_bytes(bytes[432..436].try_into().unwrap()),
        (b.lba * 4) as u32
    );

    // The boot info table: PVD at 16, the file's LBA and length, the checksum from byte 64.
    let f = &bytes[b.lba as usize * 2048..][..boot.len()];
    let word = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().unwrap());
    assert_eq!(
        (word(8), word(12), word(16)),
        (16, b.lba as u32, boot.len() as u32)
    );
    let sum = boot[64..].chunks(4).fold(0u32, |a, w| {
        a.wrapping_add(u32::from_le_bytes(w.try_into().unwrap()))
    });
    assert_eq!(word(20), sum);
    assert_eq!(&f[64..], &boot[64..]);
    let info = iso::volume_info(&out).unwrap();
    assert_eq!(
        info.boot_catalog,
        Some(r.images[0].lba.min(info.boot_catalog.unwrap()))
    );

    // Deterministic: a second build is byte-identical.
    let again = tmp.path().join("c.iso");
    write_file(&tree, &o, &again).unwrap();
    assert!(std::fs::read(&again).unwrap() == bytes, "two builds differ");
}

#[test]
fn test_bad_options_name_the_key() {
    let tree = Tree::new(imagetool_fstree::Meta::dir(0o755));
    let mut o = options();
    o.volume_id = "x".repeat(33);
    let e = imagetool_iso9660::plan(&tree, &o).unwrap_err();
    assert!(e.to_string().contains("volume_id"), "{e}");
    let mut o = options();
    o.bios = Some(BiosBoot {
        path: b"isolinux/isolinux.bin".to_vec(),
        load_sectors: 4,
        info_table: true,
    });
    let e = imagetool_iso9660::plan(&tree, &o).unwrap_err();
    assert!(e.to_string().contains("isolinux/isolinux.bin"), "{e}");
}
