//! Micro-benchmarks of imagetool's hot paths, with divan: `cargo bench -p imagetool-benches`
//! (one group: `cargo bench -p imagetool-benches -- ext4`). Each measures one step in memory
//! on generated inputs; the end-to-end comparisons with mkfs.ext4, qemu-img and mksquashfs are
//! `cargo xtask bench …` (docs/performance.md has the figures of both).

use std::sync::LazyLock;

use divan::{Bencher, black_box};
use imagetool_benches::{Noise, store_like_tree};
use imagetool_blockio::MemImage;
use imagetool_fstree::Tree;

fn main() {
    divan::main();
}

/// 100,000 entries: about a NixOS closure's file count.
static TREE_100K: LazyLock<Tree> = LazyLock::new(|| store_like_tree(100_000));

/// ext4 planning (inodes, directories, htrees, extents, bitmaps) of 100k entries, no writing.
#[divan::bench(sample_count = 10)]
fn ext4_plan_100k(b: Bencher<'_, '_>) {
    let tree = &*TREE_100K;
    let opts = imagetool_ext4::Options::default();
    b.bench(|| imagetool_ext4::plan(black_box(tree), &opts).expect("plan"));
}

/// FAT planning (directories, 8.3 and long names, clusters) of an ESP-like tree of 2,000
/// entries in a 256 MiB volume.
#[divan::bench(sample_count = 20)]
fn fat_plan_2k(b: Bencher<'_, '_>) {
    let mut tree = imagetool_fat::Tree::new();
    let mut noise = Noise::new(7);
    for d in 0..100 {
        tree.add_dir(&format!("EFI/nixos/gen{d:03}")).expect("dir");
        for f in 0..19 {
            let len = (noise.next_u64() % 4096) as usize;
            tree.add_bytes(
                &format!("EFI/nixos/gen{d:03}/file-{f:02}.efi"),
                noise.bytes(len),
            )
            .expect("file");
        }
    }
    let opts = imagetool_fat::FormatOptions::default();
    b.bench(|| imagetool_fat::plan(black_box(&tree), 256 << 20, &opts).expect("plan"));
}

/// NAR serialisation and SHA-256 of a 32 MiB store path (64 files of 512 KiB).
#[divan::bench(sample_count = 10)]
fn nar_hash_32mib(b: Bencher<'_, '_>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut noise = Noise::new(3);
    for i in 0..64 {
        std::fs::write(dir.path().join(format!("f{i:02}")), noise.bytes(512 << 10)).expect("write");
    }
    b.counter(divan::counter::BytesCount::new(32usize << 20))
        .bench(|| imagetool_nix::nar::hash_path(black_box(dir.path())).expect("hash"));
}

/// qcow2 with compressed clusters (deflate, 64 KiB clusters) of a 16 MiB disk, half data.
#[divan::bench(sample_count = 10, args = ["deflate", "zstd"])]
fn qcow2_compress_16mib(b: Bencher<'_, '_>, compression: &str) {
    let size = 16u64 << 20;
    let disk = MemImage::new(size);
    let mut noise = Noise::new(11);
    for off in (0..size).step_by(128 << 10) {
        imagetool_blockio::WriteAt::write_all_at(&disk, &noise.bytes(64 << 10), off).expect("fill");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("out.qcow2");
    let mut opts = imagetool_vdisk::Options::default();
    opts.compression = compression.parse().expect("compression");
    opts.threads = 1;
    b.counter(divan::counter::BytesCount::new(size / 2))
        .bench(|| {
            imagetool_vdisk::convert(
                &disk,
                imagetool_vdisk::Format::Qcow2Compressed,
                &dest,
                &opts,
            )
            .expect("convert")
        });
}

/// squashfs data blocks and metadata of 2,000 entries (about 8 MiB), zstd level 3, one thread.
#[divan::bench(sample_count = 10)]
fn squashfs_write_2k(b: Bencher<'_, '_>) {
    let tree = store_like_tree(2_000);
    let mut opts = imagetool_squashfs::Options::default();
    opts.compression = imagetool_squashfs::Compression::Zstd;
    opts.level = Some(3);
    opts.threads = 1;
    b.bench(|| {
        let out = MemImage::new(64 << 20);
        imagetool_squashfs::write(black_box(&tree), &opts, &out).expect("write")
    });
}
