//! The kernel reads imagetool's ext4: the fixture closure boots from a root filesystem written
//! by `imagetool-ext4` (instead of `mkfs.ext4 -d`, as in testutil's `boot_fixture`), and stage 2
//! prints the toplevel and the store manifest hash the host predicts. One QEMU run.

use std::time::Instant;

use imagetool_blockio::SparseFile;
use imagetool_ext4::{Options, plan};
use imagetool_fstree::{HostOptions, Tree};
use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::tools::{APT_GET, DPKG_DEB};
use imagetool_testutil::tools::{E2FSCK, QEMU_SYSTEM, SEABIOS};
use imagetool_testutil::{Target, ext4, require_tools};

#[test]
fn test_fixture_boots_from_an_imagetool_ext4_root() {
    require_tools!(QEMU_SYSTEM, SEABIOS, E2FSCK, APT_GET, DPKG_DEB);
    let fx = imagetool_fixture::ensure().unwrap_or_else(|e| panic!("fixture: {e}"));
    let expected = fx
        .expected_manifest_sha256()
        .unwrap_or_else(|e| panic!("manifest: {e}"));

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root.img");
    let t0 = Instant::now();
    let tree = Tree::from_host_dir(&fx.store_root, &HostOptions::default()).unwrap();
    let mut opts = Options::default();
    opts.label = b"nixos".to_vec();
    opts.uuid = Some(
        [
            0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88,
            0x88, 0x88,
        ]
        .into(),
    );
    opts.timestamp = 1.into();
    let p = plan(&tree, &opts).unwrap();
    let img = SparseFile::create(&root, p.size_bytes()).unwrap();
    p.write(&tree, &img).unwrap();
    drop(img);
    let write_time = t0.elapsed();
    ext4::assert_clean(&Target::whole(&root));

    let cfg = BootConfig::new(Firmware::Kernel {
        kernel: fx.kernel(),
        initrd: Some(fx.initrd()),
        append: fx.kernel_cmdline(),
    })
    .drive(&root, DiskFormat::Raw);
    let r = boot::boot_and_expect(&cfg, &fx.toplevel, &expected).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "imagetool ext4 root: {} MiB written in {write_time:.1?}; boot to manifest {:.1?} ({:?})",
        p.size_bytes() >> 20,
        r.elapsed,
        r.accel
    );
}
