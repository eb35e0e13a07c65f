//! The real proof: disks built with imagetool's own libraries (partition table, ext4, FAT)
//! and GRUB installed by `boot::grub` (core image from the fixture closure's GRUB, embedded
//! natively, modules and install-grub.pl's grub.cfg) boot the fixture closure in QEMU to its
//! stage-2 marker, with the store manifest hash the host predicts:
//!
//! | layout | firmware | GRUB's directory | core image |
//! |---|---|---|---|
//! | `legacy` (MBR) | SeaBIOS | root ext4 `/boot/grub` | MBR gap, LBA 1 |
//! | `legacy+boot` (MBR) | SeaBIOS | FAT `/boot` `/grub`, kernels copied to `/kernels` | MBR gap, LBA 1 |
//! | `legacy+gpt` | SeaBIOS | root ext4 `/boot/grub` | BIOS boot partition, LBA 2048 |
//! | `hybrid` | SeaBIOS | ESP (FAT) `/grub` | BIOS boot partition, LBA 34 |
//! | `efi` | OVMF | ESP (FAT) `/grub` | `EFI/BOOT/BOOTX64.EFI` |
//!
//! In each, GRUB finds its directory by filesystem UUID (the early config), then grub.cfg
//! finds the kernel and initrd in `/nix/store` on the root ext4 (`($drive2)`), or (legacy+boot,
//! install-grub.pl's `copyKernels`) in `/kernels` on the FAT `/boot` (`($drive1)`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use imagetool_blockio::{SparseFile, Window};
use imagetool_boot::grub::{
    self, EmbedArea, GrubConfig, GrubTools, ImageOptions, MenuEntry, Platform,
};
use imagetool_boot::{BootFile, FileSource};
use imagetool_ext4::{Options, plan};
use imagetool_fixture::Fixture;
use imagetool_fstree::{HostOptions, Meta, Source, Tree};
use imagetool_ptable::{DiskSize, LayoutOptions, Requirements, Role, TableType};
use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::tools::{APT_GET, DPKG_DEB};
use imagetool_testutil::tools::{OVMF_CODE, OVMF_VARS, QEMU_SYSTEM, SEABIOS, SFDISK};
use imagetool_testutil::{require_tools, run_ok};

const ROOT_UUID: [u8; 16] = [
    0x5a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x40, 0x61, 0x82, 0x93, 0xa4, 0xb5, 0xc6, 0xd7, 0xe8, 0xf9,
];
const ESP_ID: u32 = 0x1234_abcd;

fn uuid_string(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    )
}

/// A FAT volume id as blkid (and install-grub.pl) writes it: `1234-ABCD`.
fn fat_uuid(id: u32) -> String {
    format!("{:04X}-{:04X}", id >> 16, id & 0xffff)
}

/// The default entry for the fixture's toplevel, kernels read from the store on `drive2`.
fn entry(fx: &Fixture) -> MenuEntry {
    let link = |name: &str| {
        let l = std::fs::read_link(fx.host_path(&format!("{}/{name}", fx.toplevel))).unwrap();
        l.to_string_lossy().into_owned()
    };
    let params =
        std::fs::read_to_string(fx.host_path(&format!("{}/kernel-params", fx.toplevel))).unwrap();
    MenuEntry {
        title: "NixOS - Default".into(),
        kernel: GrubConfig::store_file(&link("kernel")),
        initrds: vec![GrubConfig::store_file(&link("initrd"))],
        init: format!("{}/init", fx.toplevel),
        params,
    }
}

/// Adds `files` to an fstree tree, creating parent directories.
fn add_to_tree(tree: &mut Tree, files: &[BootFile]) {
    for f in files {
        let comps: Vec<&str> = f.path.split('/').collect();
        for i in 1..comps.len() {
            let dir = comps[..i].join("/");
            if tree.lookup(dir.as_bytes()).is_none() {
                tree.add_dir(dir.as_bytes(), Meta::dir(0o755)).unwrap();
            }
        }
        let source = match &f.source {
            FileSource::Host(p) => Source::Host(p.clone()),
            FileSource::Bytes(b) => Source::Bytes(Arc::from(b.as_slice())),
        };
        tree.add_file(f.path.as_bytes(), source, Meta::file(0o644))
            .unwrap();
    }
}

fn add_to_fat(tree: &mut imagetool_fat::Tree, files: &[BootFile]) {
    for f in files {
        match &f.source {
            FileSource::Host(p) => tree.add_host_file(&f.path, p).unwrap(),
            FileSource::Bytes(b) => tree.add_bytes(&f.path, b.clone()).unwrap(),
        }
    }
}

/// GRUB's directory files: modules, grub.cfg, grubenv.
fn grub_dir(tools: &GrubTools, dir: &str, cfg: &GrubConfig) -> Vec<BootFile> {
    let mut files = tools.module_files(dir).unwrap();
    files.push(BootFile {
        path: format!("{dir}/grub.cfg"),
        source: FileSource::Bytes(grub::grub_cfg(cfg).unwrap().into_bytes()),
    });
    files.push(BootFile {
        path: format!("{dir}/grubenv"),
        source: FileSource::Bytes(grub::grubenv()),
    });
    files
}

/// Builds `table`'s disk at `out` with GRUB for `platform` and returns it.
fn build(fx: &Fixture, table: TableType, platform: Platform, out: &Path) -> PathBuf {
    let paths: Vec<PathBuf> = fx.store_paths.iter().map(|p| fx.host_path(p)).collect();
    let tools = GrubTools::find(platform, &paths).unwrap();
    let root_uuid = uuid_string(&ROOT_UUID);
    let on_fat = matches!(
        table,
        TableType::Hybrid | TableType::Efi | TableType::LegacyBoot
    );
    let (boot_uuid, dir, prefix) = if on_fat {
        (fat_uuid(ESP_ID), "grub", "/grub")
    } else {
        (root_uuid.clone(), "boot/grub", "/boot/grub")
    };
    let mut default = entry(fx);
    let mut kernels = Vec::new();
    let mut cfg = if table == TableType::LegacyBoot {
        // /boot is its own filesystem: install-grub.pl copies the kernels there
        // (`copyKernels`) and writes no store search.
        for f in std::iter::once(&mut default.kernel).chain(default.initrds.iter_mut()) {
            let store = f.trim_start_matches("($drive2)").to_string();
            let name = grub::copied_kernel_name(&store).unwrap();
            kernels.push(BootFile {
                path: format!("kernels/{name}"),
                source: FileSource::Host(fx.host_path(&store)),
            });
            *f = format!("($drive1)//kernels/{name}");
        }
        GrubConfig::new(&boot_uuid, None, default)
    } else {
        GrubConfig::new(&boot_uuid, Some(&root_uuid), default)
    };
    cfg.timeout = Some(0);
    let mut gfiles = grub_dir(&tools, dir, &cfg);
    gfiles.extend(kernels);

    let mut tree = Tree::from_host_dir(&fx.store_root, &HostOptions::default()).unwrap();
    if !on_fat {
        add_to_tree(&mut tree, &gfiles);
    }
    let mut opts = Options::default();
    opts.label = b"nixos".to_vec();
    opts.uuid = Some(ROOT_UUID.into());
    opts.timestamp = 1.into();
    let p = plan(&tree, &opts).unwrap();
    let layout = imagetool_ptable::plan(
        &{
            let mut o = LayoutOptions::default();
            o.table = table;
            o.disk_size = DiskSize::Auto {
                additional_space: 0,
            };
            o.boot_size = 64 << 20;
            o
        },
        Requirements {
            root_bytes: p.size_bytes(),
        },
    )
    .unwrap();
    let disk = out.join(format!("{}.img", table.name().replace('+', "-")));
    let img = SparseFile::create(&disk, layout.disk_size).unwrap();
    layout.write_table(&img).unwrap();
    let root = layout.partition(Role::Root).unwrap().byte_range();
    p.write(
        &tree,
        &Window::new(&img, root.start, root.end - root.start).unwrap(),
    )
    .unwrap();

    let image_opts = ImageOptions::new(&boot_uuid, prefix);
    if let Some(esp) = layout
        .partition(Role::Esp)
        .or_else(|| layout.partition(Role::Boot))
    {
        let mut fat = imagetool_fat::Tree::new();
        if platform == Platform::X86_64Efi {
            gfiles.push(BootFile {
                path: "EFI/BOOT/BOOTX64.EFI".into(),
                source: FileSource::Bytes(tools.efi_image(&image_opts).unwrap()),
            });
        }
        add_to_fat(&mut fat, &gfiles);
        let r = esp.byte_range();
        let mut fopts = imagetool_fat::FormatOptions::default();
        fopts.label = Some(
            if table == TableType::LegacyBoot {
                "BOOT"
            } else {
                "ESP"
            }
            .into(),
        );
        fopts.volume_id = ESP_ID;
        fopts.hidden_sectors = esp.first_lba as u32;
        imagetool_fat::format(
            &fat,
            &Window::new(&img, r.start, r.end - r.start).unwrap(),
            &fopts,
        )
        .unwrap();
    }
    if platform == Platform::I386Pc {
        let area = match layout.partition(Role::BiosBoot) {
            Some(b) => EmbedArea::BiosBootPartition {
                first_lba: b.first_lba,
                sectors: b.sectors(),
            },
            None => EmbedArea::MbrGap {
                sectors: layout.partitions[0].first_lba - 1,
            },
        };
        let core = tools.core_image(&image_opts).unwrap();
        let r = grub::embed_bios(&img, &tools.boot_img().unwrap(), &core, area).unwrap();
        println!(
            "{table}: core.img {} sectors at LBA {} in an area of {}",
            r.core_sectors, r.core_lba, r.area_sectors
        );
    }
    drop(img);
    // The table is still what sfdisk reads: the boot code did not damage it.
    run_ok(SFDISK, &["--dump".as_ref(), disk.as_os_str()]);
    disk
}

fn boot_cell(table: TableType, platform: Platform, firmware: Firmware) {
    require_tools!(QEMU_SYSTEM, SFDISK, APT_GET, DPKG_DEB);
    match firmware {
        Firmware::Ovmf => require_tools!(OVMF_CODE, OVMF_VARS),
        _ => require_tools!(SEABIOS),
    }
    let fx = imagetool_fixture::ensure().unwrap_or_else(|e| panic!("fixture: {e}"));
    let expected = fx.expected_manifest_sha256().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let disk = build(&fx, table, platform, tmp.path());
    // Deterministic: a second build gives the same bytes.
    let again = tempfile::tempdir().unwrap();
    let disk2 = build(&fx, table, platform, again.path());
    assert!(
        std::fs::read(&disk).unwrap() == std::fs::read(&disk2).unwrap(),
        "{table}: two builds differ"
    );
    drop(again);
    let cfg = BootConfig::new(firmware).drive(&disk, DiskFormat::Raw);
    let r = boot::boot_and_expect(&cfg, &fx.toplevel, &expected)
        .unwrap_or_else(|e| panic!("{table} with GRUB {platform}: {e}"));
    println!(
        "{table} with GRUB {platform}: boot to manifest {:.1?} ({:?})",
        r.elapsed, r.accel
    );
}

#[test]
fn test_legacy_mbr_gap_boots_under_seabios() {
    boot_cell(TableType::Legacy, Platform::I386Pc, Firmware::SeaBios);
}

#[test]
fn test_legacy_boot_fat_boot_partition_with_copied_kernels_boots_under_seabios() {
    boot_cell(TableType::LegacyBoot, Platform::I386Pc, Firmware::SeaBios);
}

#[test]
fn test_legacy_gpt_bios_boot_partition_boots_under_seabios() {
    boot_cell(TableType::LegacyGpt, Platform::I386Pc, Firmware::SeaBios);
}

#[test]
fn test_hybrid_grub_on_the_esp_boots_under_seabios() {
    boot_cell(TableType::Hybrid, Platform::I386Pc, Firmware::SeaBios);
}

#[test]
fn test_efi_removable_grub_boots_under_ovmf() {
    boot_cell(TableType::Efi, Platform::X86_64Efi, Firmware::Ovmf);
}
