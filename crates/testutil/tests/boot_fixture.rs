//! Boots the fixture closure: its kernel and initrd directly, with a root disk made by
//! `mkfs.ext4 -L nixos -d` from the fixture's store root. Passes only when stage 2 prints the
//! toplevel and the manifest hash the host predicts. This proves the fixture and the boot
//! runner before imagetool writes any image. One QEMU run.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::tools::{APT_GET, DPKG_DEB};
use imagetool_testutil::tools::{E2FSCK, MKFS_EXT4, QEMU_SYSTEM, SEABIOS};
use imagetool_testutil::{Target, ext4, require_tools, run};

/// Bytes the tree needs on ext4 with 4 KiB blocks: every file rounded up to a block, plus one
/// block per entry for inodes and directories.
fn tree_bytes(p: &Path) -> u64 {
    let md = std::fs::symlink_metadata(p).unwrap();
    let own = md.size().div_ceil(4096) * 4096 + 4096;
    if md.is_dir() {
        own + std::fs::read_dir(p)
            .unwrap()
            .map(|e| tree_bytes(&e.unwrap().path()))
            .sum::<u64>()
    } else {
        own
    }
}

#[test]
fn fixture_boots_from_an_ext4_root() {
    require_tools!(QEMU_SYSTEM, SEABIOS, MKFS_EXT4, E2FSCK, APT_GET, DPKG_DEB);
    let t0 = Instant::now();
    let fx = imagetool_fixture::ensure().unwrap_or_else(|e| panic!("fixture: {e}"));
    let fixture_time = t0.elapsed();
    let expected = fx
        .expected_manifest_sha256()
        .unwrap_or_else(|e| panic!("manifest: {e}"));

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root.img");
    let need = tree_bytes(&fx.store_root);
    let size = (need + need / 5 + (64 << 20)).div_ceil(1 << 20) << 20;
    std::fs::File::create(&root).unwrap().set_len(size).unwrap();
    let t1 = Instant::now();
    let out = run(
        MKFS_EXT4,
        &[
            "-q",
            "-F",
            "-L",
            "nixos",
            "-U",
            "44444444-4444-4444-8888-888888888888",
            "-d",
            fx.store_root.to_str().unwrap(),
            root.to_str().unwrap(),
        ],
        &[("E2FSPROGS_FAKE_TIME", "1")],
    )
    .unwrap();
    assert!(out.status.success(), "{out}");
    let mkfs_time = t1.elapsed();
    ext4::assert_clean(&Target::whole(&root));

    let cfg = BootConfig::new(Firmware::Kernel {
        kernel: fx.kernel(),
        initrd: Some(fx.initrd()),
        append: fx.kernel_cmdline(),
    })
    .drive(&root, DiskFormat::Raw);
    let r = boot::boot_and_expect(&cfg, &fx.toplevel, &expected).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "fixture: {} store paths, {} MiB tree; fixture ready in {:.1?}, mkfs.ext4 -d {:.1?} \
         ({} MiB image), boot to manifest {:.1?} ({:?})",
        fx.store_paths.len(),
        need >> 20,
        fixture_time,
        mkfs_time,
        size >> 20,
        r.elapsed,
        r.accel
    );
}
