//! The ext4 oracles on filesystems made by `mkfs.ext4 -d`: clean ones pass, corrupted or
//! changed ones fail.

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::{flip, must, patch, place, sparse};
use imagetool_testutil::tools::{DEBUGFS, DUMPE2FS, E2FSCK, MKFS_EXT4};
use imagetool_testutil::tree::{CompareOptions, Kind, Tree};
use imagetool_testutil::{ErrorKind, Target, Tool, ext4, require_tools};

const UUID: &str = "0b5e1a2c-3d4e-4f60-8172-8394a5b6c7d8";
const SEED: &str = "6a1f7e2d-1c3b-4a59-8e7d-6c5b4a392817";
const MKFIFO: Tool = Tool::new("mkfifo", "coreutils");

/// A small tree with every kind of entry `mkfs.ext4 -d` copies. Returns whether xattrs could be
/// set on the host filesystem.
fn make_tree(root: &Path) -> bool {
    let w = |p: &str, data: &[u8], mode: u32| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    w("etc/conf", b"key=value\n", 0o640);
    let tool: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
    w("bin/tool", &tool, 0o755);
    w("secret", b"s3cr3t", 0o600);
    w("setuid", b"#!/bin/sh\n", 0o4755);
    w("empty", b"", 0o644);
    w("dir/nested/deep file", b"deep\n", 0o444);
    std::fs::create_dir(root.join("emptydir")).unwrap();
    std::fs::set_permissions(
        root.join("emptydir"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    let sp = root.join("sparse");
    sparse(&sp, 4 << 20);
    patch(&sp, 0, b"head");
    patch(&sp, 3 << 20, b"middle");
    symlink("etc/conf", root.join("link")).unwrap();
    symlink("x".repeat(100), root.join("longlink")).unwrap();
    std::fs::hard_link(root.join("bin/tool"), root.join("hard")).unwrap();
    must(MKFIFO, &[root.join("fifo").to_str().unwrap()]);
    if imagetool_testutil::is_root() {
        std::os::unix::fs::chown(root.join("etc/conf"), Some(1000), Some(100)).unwrap();
        std::os::unix::fs::lchown(root.join("link"), Some(7), Some(8)).unwrap();
    }
    rustix::fs::lsetxattr(
        root.join("etc/conf"),
        "user.imagetool",
        b"v1",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok()
}

fn mkfs(img: &Path, src: &Path) {
    sparse(img, 32 << 20);
    must(
        MKFS_EXT4,
        &[
            "-q",
            "-F",
            "-b",
            "4096",
            "-L",
            "oracle",
            "-U",
            UUID,
            "-E",
            &format!("hash_seed={SEED}"),
            "-d",
            src.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
}

/// The byte offset of an inode in the image, from `debugfs imap`.
fn inode_offset(img: &Path, ino: u64) -> u64 {
    let out = must(
        DEBUGFS,
        &["-R", &format!("imap <{ino}>"), img.to_str().unwrap()],
    );
    // "Inode 12 is part of block group 0\n\tlocated at block 35, offset 0x0b00"
    let block: u64 = out
        .split("located at block ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let off = out.split("offset 0x").nth(1).unwrap().trim();
    block * 4096 + u64::from_str_radix(off, 16).unwrap()
}

#[test]
fn clean_image_passes_every_ext4_oracle() {
    require_tools!(MKFS_EXT4, E2FSCK, DEBUGFS, DUMPE2FS, MKFIFO);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let xattrs = make_tree(&src);
    let img = tmp.path().join("fs.img");
    mkfs(&img, &src);
    let t = Target::whole(&img);

    ext4::assert_clean(&t);
    let sb = ext4::dumpe2fs(&t).unwrap();
    assert_eq!(sb.label(), Some("oracle"));
    assert_eq!(sb.uuid().unwrap(), UUID);
    assert_eq!(sb.hash_seed().unwrap(), SEED);
    assert_eq!(sb.block_size().unwrap(), 4096);
    assert_eq!(sb.block_count().unwrap(), 8192);
    assert!(
        sb.has_feature("extent") && sb.has_feature("metadata_csum"),
        "{:?}",
        sb.features()
    );
    assert!(sb.inode_count().unwrap() > 0 && sb.free_blocks().unwrap() < 8192);

    let opts = CompareOptions {
        xattrs,
        ..CompareOptions::default()
    };
    ext4::compare_with_dir(&t, &src, &opts).unwrap();

    // The same tree, written by hand, also matches (independent of the host reader).
    let tree = ext4::read_tree(&t).unwrap();
    assert_eq!(tree.get("/fifo").unwrap().kind, Kind::Fifo);
    assert_eq!(
        tree.get("/hard").unwrap().inode,
        tree.get("/bin/tool").unwrap().inode
    );
    assert_eq!(tree.get("/hard").unwrap().nlink, 2);
    assert_eq!(
        tree.get("/longlink").unwrap().kind,
        Kind::Symlink(vec![b'x'; 100])
    );
    assert_eq!(tree.get("/setuid").unwrap().mode, 0o4755);
    assert_eq!(tree.get("/emptydir").unwrap().mode, 0o1777);
    let mut sp = vec![0u8; 4 << 20];
    sp[..4].copy_from_slice(b"head");
    sp[3 << 20..(3 << 20) + 6].copy_from_slice(b"middle");
    assert_eq!(tree.get("/sparse").unwrap().kind, Kind::file(&sp));
    if xattrs {
        assert_eq!(
            tree.get("/etc/conf").unwrap().xattrs["user.imagetool"],
            b"v1"
        );
    }
    let expected = Tree::new()
        .dir("/etc", 0o755)
        .file("/etc/conf", 0o640, b"key=value\n")
        .symlink("/link", "etc/conf")
        .file("/secret", 0o600, b"s3cr3t");
    let partial = CompareOptions {
        owners: false,
        root: false,
        ignore: [
            "/lost+found",
            "/bin",
            "/hard",
            "/setuid",
            "/empty",
            "/dir",
            "/emptydir",
            "/sparse",
            "/longlink",
            "/fifo",
        ]
        .map(String::from)
        .to_vec(),
        ..CompareOptions::default()
    };
    expected
        .compare(&tree, &partial, "hand-written tree")
        .unwrap();
}

#[test]
fn filesystem_inside_a_partition_range() {
    require_tools!(MKFS_EXT4, E2FSCK, DEBUGFS, DUMPE2FS, MKFIFO);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let fs = tmp.path().join("fs.img");
    mkfs(&fs, &src);
    let disk = tmp.path().join("disk.img");
    sparse(&disk, 40 << 20);
    place(&fs, &disk, 1 << 20);
    patch(&disk, 0, b"not a filesystem");
    let t = Target::range(&disk, 1 << 20, 32 << 20);
    ext4::assert_clean(&t);
    assert_eq!(ext4::dumpe2fs(&t).unwrap().label(), Some("oracle"));
    ext4::assert_tree_eq_dir(&t, &src);
    // A range smaller than the filesystem is a finding even though e2fsck sees a longer file.
    let short = Target::range(&disk, 1 << 20, 16 << 20);
    let e = ext4::fsck(&short).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    assert!(e.to_string().contains("does not fit"), "{e}");
    // The wrong offset has no filesystem at all.
    assert!(ext4::fsck(&Target::range(&disk, 2 << 20, 32 << 20)).is_err());
}

#[test]
fn corrupted_metadata_fails_e2fsck() {
    require_tools!(MKFS_EXT4, E2FSCK, DEBUGFS, MKFIFO);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let img = tmp.path().join("fs.img");
    mkfs(&img, &src);
    let clean = std::fs::read(&img).unwrap();

    // One byte of the superblock's free-blocks count (its checksum no longer matches).
    flip(&img, 1024 + 0x0c);
    let e = ext4::fsck(&Target::whole(&img)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    println!("superblock corruption: {e}");

    // One byte (i_blocks_lo) of the first non-reserved inode: its checksum no longer matches.
    std::fs::write(&img, &clean).unwrap();
    let off = inode_offset(&img, 12);
    flip(&img, off + 0x1c);
    let e = ext4::fsck(&Target::whole(&img)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    assert!(e.message().contains("e2fsck"), "{e}");
}

#[test]
fn changed_file_fails_the_tree_comparison() {
    require_tools!(MKFS_EXT4, E2FSCK, DEBUGFS, MKFIFO);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let img = tmp.path().join("fs.img");
    mkfs(&img, &src);
    let t = Target::whole(&img);

    // The source changes after mkfs: contents, mode, a new file, a broken hard link.
    std::fs::write(src.join("etc/conf"), b"key=other\n").unwrap();
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(src.join("new"), b"").unwrap();
    std::fs::remove_file(src.join("hard")).unwrap();
    std::fs::copy(src.join("bin/tool"), src.join("hard")).unwrap();
    let e = ext4::compare_with_dir(&t, &src, &CompareOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Mismatch);
    let m = e.message();
    assert!(m.contains("/etc/conf: expected file of 10 bytes"), "{m}");
    assert!(m.contains("/secret: mode expected 0644, found 0600"), "{m}");
    assert!(m.contains("/new: missing"), "{m}");
    assert!(m.contains("/hard: link count expected 1, found 2"), "{m}");
    assert!(m.contains("/hard: hard-link group expected"), "{m}");

    // A byte changed in a file's data block: e2fsck cannot see it, the tree comparison does.
    let src2 = tmp.path().join("src2");
    make_tree(&src2);
    let img2 = tmp.path().join("fs2.img");
    mkfs(&img2, &src2);
    let out = must(DEBUGFS, &["-R", "blocks /secret", img2.to_str().unwrap()]);
    let block: u64 = out.split_whitespace().next().unwrap().parse().unwrap();
    patch(&img2, block * 4096, b"S");
    let t2 = Target::whole(&img2);
    ext4::assert_clean(&t2);
    let e = ext4::compare_with_dir(&t2, &src2, &CompareOptions::default()).unwrap_err();
    assert!(
        e.message().contains("/secret: expected file of 6 bytes"),
        "{e}"
    );
    assert!(!e.message().contains("/etc"), "{e}");
}
