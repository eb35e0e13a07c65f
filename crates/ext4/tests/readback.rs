//! Read-back through the shared oracle kit: an image written from a host directory holds
//! exactly that directory (types, modes, owners, contents, symlink targets, hard-link groups,
//! xattrs, device numbers), as `debugfs` reads it. Special files and foreign owners need root
//! to create on the host; without root those parts are left out (the edge-case test in
//! `oracle.rs` covers them through the fstree API).

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use imagetool_blockio::SparseFile;
use imagetool_ext4::{Options, plan};
use imagetool_fstree::{HostOptions, Tree};
use imagetool_testutil::is_root;
use imagetool_testutil::tools::{DEBUGFS, E2FSCK};
use imagetool_testutil::tree::CompareOptions;
use imagetool_testutil::{Target, ext4, require_tools};

fn populate(d: &Path) {
    for s in [0usize, 1, 4095, 4096, 4097, 100_000] {
        std::fs::write(
            d.join(format!("size{s}")),
            (0..s).map(|k| (k % 251) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
    }
    let f = std::fs::File::create(d.join("sparse")).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all_at(b"island", 40 << 20).unwrap();
    std::fs::create_dir_all(d.join("dir/sub")).unwrap();
    std::fs::write(d.join("dir/sub/a"), b"a").unwrap();
    std::fs::hard_link(d.join("dir/sub/a"), d.join("link-a")).unwrap();
    std::fs::hard_link(d.join("dir/sub/a"), d.join("dir/link-a2")).unwrap();
    std::os::unix::fs::symlink("size1", d.join("fast")).unwrap();
    std::os::unix::fs::symlink("x".repeat(3000), d.join("slow")).unwrap();
    std::fs::write(d.join("ünïcødé"), b"u").unwrap();
    std::fs::write(d.join("n".repeat(255)), b"n").unwrap();
    std::fs::write(d.join("setuid"), b"#!").unwrap();
    std::fs::set_permissions(d.join("setuid"), std::fs::Permissions::from_mode(0o4711)).unwrap();
    std::fs::create_dir(d.join("sticky")).unwrap();
    std::fs::set_permissions(d.join("sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    for i in 0..3000 {
        std::fs::write(
            d.join(format!("dir/{i:04}-{}", "y".repeat(100))),
            i.to_string(),
        )
        .unwrap();
    }
    let x = d.join("xattrs");
    std::fs::write(&x, b"x").unwrap();
    rustix::fs::setxattr(&x, "user.one", b"1", rustix::fs::XattrFlags::empty()).unwrap();
    // Enough short values to spill from the inode into an xattr block (the kit parses only
    // the values debugfs prints in full, so each stays short).
    for k in 0..6u8 {
        let name = format!("user.v{k}");
        rustix::fs::setxattr(
            &x,
            name.as_str(),
            &[b'a' + k; 30],
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    if is_root() {
        rustix::fs::setxattr(&x, "trusted.t", b"tt", rustix::fs::XattrFlags::empty()).unwrap();
        rustix::fs::setxattr(
            &x,
            "security.capability",
            &[
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        use rustix::fs::{FileType, Mode, makedev, mknodat};
        let cwd = rustix::fs::CWD;
        let m = Mode::from_raw_mode(0o640);
        // An old-style (8-bit) and a new-style (minor above 255) device number.
        mknodat(
            cwd,
            d.join("chr"),
            FileType::CharacterDevice,
            m,
            makedev(1, 3),
        )
        .unwrap();
        mknodat(
            cwd,
            d.join("blk"),
            FileType::BlockDevice,
            m,
            makedev(259, 70_000),
        )
        .unwrap();
        mknodat(cwd, d.join("fifo"), FileType::Fifo, m, 0).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        // Owners at and above 2^31 (debugfs prints them negative).
        std::fs::write(d.join("owner"), b"o").unwrap();
        std::os::unix::fs::lchown(d.join("owner"), Some(3_000_000_000), Some(u32::MAX - 1))
            .unwrap();
        std::os::unix::fs::lchown(d.join("fast"), Some(1000), Some(100)).unwrap();
    }
}

#[test]
fn test_host_tree_reads_back_identically() {
    require_tools!(E2FSCK, DEBUGFS);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    populate(&src);
    let tree = Tree::from_host_dir(&src, &HostOptions::default()).unwrap();
    let p = plan(&tree, &Options::default()).unwrap();
    let img_path = dir.path().join("r.img");
    let img = SparseFile::create(&img_path, p.size_bytes()).unwrap();
    p.write(&tree, &img).unwrap();
    drop(img);
    let t = Target::whole(&img_path);
    ext4::assert_clean(&t);
    let opts = CompareOptions {
        xattrs: true,
        ..CompareOptions::default()
    };
    ext4::compare_with_dir(&t, &src, &opts).unwrap_or_else(|e| panic!("{e}"));
}
