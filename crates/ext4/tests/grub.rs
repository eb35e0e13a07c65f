//! GRUB reads imagetool's ext4: `grub-fstest` (GRUB 2.06's own ext2 driver, run on the host)
//! lists an htree directory and compares files stored with an extent tree of depth 1, a fast
//! and a slow symlink (followed to their target), and small files with the source bytes.

use std::process::Command;
use std::sync::Arc;

use imagetool_blockio::SparseFile;
use imagetool_ext4::{Options, plan};
use imagetool_fstree::{Meta, Source, Tree};
use imagetool_testutil::{Tool, require_tools};

const GRUB_FSTEST: Tool = Tool::new("grub-fstest", "grub-common");

fn grub(img: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("grub-fstest")
        .arg(img)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "grub-fstest {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn test_grub_reads_extent_trees_htree_dirs_and_symlinks() {
    require_tools!(GRUB_FSTEST);
    let dir = tempfile::tempdir().unwrap();
    // 60 islands of 4 KiB, 1 MiB apart: 60 extents, so a depth-1 extent tree.
    let islands = dir.path().join("islands");
    let f = std::fs::File::create(&islands).unwrap();
    f.set_len(60 << 20).unwrap();
    for i in 0..60u64 {
        std::os::unix::fs::FileExt::write_all_at(&f, &[(i as u8) + 1; 4096], i << 20).unwrap();
    }
    let host = imagetool_fstree::Tree::from_host_dir(dir.path(), &Default::default()).unwrap();
    let mut tree = Tree::new(Meta::dir(0o755));
    let Some(id) = host.lookup(b"islands") else {
        panic!("islands missing")
    };
    tree.add(b"islands", host.node(id).clone()).unwrap();
    tree.add_dir(b"boot", Meta::dir(0o755)).unwrap();
    let kernel: Vec<u8> = (0..300_000u32).map(|k| (k * 7 % 251) as u8).collect();
    let kernel_path = dir.path().join("bzImage");
    std::fs::write(&kernel_path, &kernel).unwrap();
    tree.add_file(
        b"boot/bzImage",
        Source::Host(kernel_path.clone()),
        Meta::file(0o444),
    )
    .unwrap();
    tree.add_dir(b"many", Meta::dir(0o755)).unwrap();
    for i in 0..3000 {
        tree.add_file(
            format!("many/entry-{i:04}-{}", "z".repeat(60)).as_bytes(),
            Source::Bytes(Arc::from(&b"e"[..])),
            Meta::file(0o644),
        )
        .unwrap();
    }
    tree.add_symlink(b"fast", b"boot/bzImage", Meta::symlink())
        .unwrap();
    // Over 60 bytes, so stored in a block (a slow symlink), and still resolvable.
    let slow = format!("/boot/{}bzImage", "./".repeat(40));
    tree.add_symlink(b"slow", slow.as_bytes(), Meta::symlink())
        .unwrap();

    let img = dir.path().join("g.img");
    let p = plan(&tree, &Options::default()).unwrap();
    let out = SparseFile::create(&img, p.size_bytes()).unwrap();
    p.write(&tree, &out).unwrap();
    drop(out);

    let ls = grub(&img, &["ls", "/many"]);
    assert_eq!(
        ls.split_whitespace()
            .filter(|w| w.starts_with("entry-"))
            .count(),
        3000
    );
    grub(&img, &["cmp", "/islands", islands.to_str().unwrap()]);
    grub(
        &img,
        &["cmp", "/boot/bzImage", kernel_path.to_str().unwrap()],
    );
    // GRUB follows the fast symlink to the same bytes.
    grub(&img, &["cmp", "/fast", kernel_path.to_str().unwrap()]);
    grub(&img, &["cmp", "/slow", kernel_path.to_str().unwrap()]);
}
