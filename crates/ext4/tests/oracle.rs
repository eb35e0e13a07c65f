//! Oracle tests: images written by imagetool-ext4, checked by e2fsprogs (e2fsck, debugfs,
//! dumpe2fs, resize2fs). Tools come through the shared kit's `require_tools!`; the e2fsck check
//! here is stricter than the kit's (any line besides the pass lines and the summary fails).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imagetool_blockio::SparseFile;
use imagetool_ext4::{ErrorKind, Options, Plan, Size, plan};
use imagetool_fstree::{HostOptions, Kind, Meta, Node, Source, Timestamp, Tree};
use imagetool_testutil::tools::{DEBUGFS, DUMPE2FS, E2FSCK, RESIZE2FS};
use imagetool_testutil::{Target, require_tools};

fn write_image(tree: &Tree, opts: &Options, path: &Path) -> Plan {
    let p = plan(tree, opts).unwrap();
    let img = SparseFile::create(path, p.size_bytes()).unwrap();
    p.write(tree, &img).unwrap();
    p
}

/// e2fsck -fn through the kit: exit 0 and nothing but its pass lines and summary.
fn e2fsck_clean(img: &Path) {
    imagetool_testutil::ext4::assert_clean(&Target::whole(img));
}

/// A debugfs request's output (stdout), through the kit.
fn debugfs(img: &Path, req: &str) -> String {
    imagetool_testutil::run_ok(
        DEBUGFS,
        &[OsStr::new("-R"), OsStr::new(req), img.as_os_str()],
    )
    .stdout
}

/// `dumpe2fs -h` of the image, through the kit.
fn dumpe2fs_h(img: &Path) -> String {
    imagetool_testutil::run_ok(DUMPE2FS, &[OsStr::new("-h"), img.as_os_str()]).stdout
}

/// `resize2fs -f`, through the kit (it must succeed).
fn resize2fs(img: &Path) {
    imagetool_testutil::run_ok(RESIZE2FS, &[OsStr::new("-f"), img.as_os_str()]);
}

fn bytes(b: &[u8]) -> Source {
    Source::Bytes(Arc::from(b))
}

fn opts() -> Options {
    let mut o = Options::default();
    o.timestamp = 1_700_000_000.into();
    o.uuid = Some([7; 16].into());
    o
}

#[test]
fn test_empty_tree_is_e2fsck_clean_and_has_lost_found() {
    require_tools!(E2FSCK, DEBUGFS, DUMPE2FS, RESIZE2FS);
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("e.img");
    write_image(&Tree::new(Meta::dir(0o755)), &opts(), &img);
    e2fsck_clean(&img);
    let ls = debugfs(&img, "ls -l /");
    assert!(ls.contains("lost+found"), "{ls}");
    let sb = dumpe2fs_h(&img);
    for f in [
        "has_journal",
        "ext_attr",
        "resize_inode",
        "dir_index",
        "filetype",
        "extent",
        "64bit",
        "flex_bg",
        "sparse_super",
        "large_file",
        "huge_file",
        "dir_nlink",
        "extra_isize",
        "metadata_csum",
    ] {
        assert!(
            sb.lines()
                .any(|l| l.starts_with("Filesystem features:")
                    && l.split_whitespace().any(|w| w == f)),
            "{f} missing:\n{sb}"
        );
    }
    assert!(sb.contains("Total journal blocks:     1024"), "{sb}");
}

/// A NixOS-like store: many store paths, each a small tree with files, symlinks and
/// executables; canonical metadata (root-owned, mtime 1, mode 0444/0555).
fn store_tree(host: &Path, paths: usize) -> Tree {
    let mut t = Tree::new(Meta::dir(0o755));
    t.add_dir(b"nix", Meta::dir(0o755)).unwrap();
    t.add_dir(b"nix/store", Meta::dir(0o1775)).unwrap();
    let one = Timestamp::from_secs(1);
    let mut rng = imagetool_testutil::Xorshift64::new(0x1234_5678);
    let mut rnd = || rng.next_u64();
    for i in 0..paths {
        let sp = format!(
            "nix/store/{:032x}-pkg-{i}",
            u128::from(rnd()) << 64 | u128::from(rnd())
        );
        t.add_dir(sp.as_bytes(), Meta::dir(0o555).at(one)).unwrap();
        t.add_dir(format!("{sp}/bin").as_bytes(), Meta::dir(0o555).at(one))
            .unwrap();
        t.add_dir(format!("{sp}/lib").as_bytes(), Meta::dir(0o555).at(one))
            .unwrap();
        for f in 0..(rnd() % 12) {
            let size = match rnd() % 4 {
                0 => rnd() % 100,
                1 => rnd() % 9000,
                2 => rnd() % 70_000,
                _ => 4096,
            } as usize;
            let data: Vec<u8> = (0..size).map(|k| (k as u64 ^ rnd()) as u8).collect();
            if f % 3 == 0 {
                let hp = host.join(format!("f{i}-{f}"));
                std::fs::write(&hp, &data).unwrap();
                t.add_file(
                    format!("{sp}/lib/h{f}.so").as_bytes(),
                    Source::Host(hp),
                    Meta::file(0o444).at(one),
                )
                .unwrap();
            } else {
                t.add_file(
                    format!("{sp}/bin/p{f}").as_bytes(),
                    bytes(&data),
                    Meta::file(0o555).at(one),
                )
                .unwrap();
            }
        }
        t.add_symlink(
            format!("{sp}/lib/link").as_bytes(),
            format!("/{sp}/bin").as_bytes(),
            Meta::symlink().at(one),
        )
        .unwrap();
    }
    t.add_dir(b"nix/var", Meta::dir(0o755)).unwrap();
    t.add_dir(b"nix/var/nix", Meta::dir(0o755)).unwrap();
    t.add_dir(b"nix/var/nix/db", Meta::dir(0o755)).unwrap();
    t.add_file(
        b"nix/var/nix/db/db.sqlite",
        bytes(&[0x53; 20000]),
        Meta::file(0o644),
    )
    .unwrap();
    t
}

#[test]
fn test_store_like_tree_clean_readback_resize_and_deterministic() {
    require_tools!(E2FSCK, DEBUGFS, DUMPE2FS, RESIZE2FS);
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let tree = store_tree(&host, 1500);
    let img = dir.path().join("s.img");
    let mut o = opts();
    o.threads = 1;
    write_image(&tree, &o, &img);
    e2fsck_clean(&img);

    // Same tree, two threads: the same bytes.
    let img2 = dir.path().join("s2.img");
    write_image(
        &tree,
        &{
            let mut o = opts();
            o.threads = 2;
            o
        },
        &img2,
    );
    assert!(
        std::fs::read(&img).unwrap() == std::fs::read(&img2).unwrap(),
        "thread count changed the image"
    );

    // Read back every file with debugfs rdump and compare with the tree.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    debugfs(&img, &format!("rdump /nix {}", out.display()));
    let mut checked = 0;
    for (path, id) in tree.walk() {
        let Some(rel) = path.strip_prefix(b"nix/") else {
            continue;
        };
        let p = out.join("nix").join(std::str::from_utf8(rel).unwrap());
        let node = tree.node(id);
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        // debugfs rdump restores only the rwx bits of directories (setuid/sticky are checked
        // with `stat` in the edge-case test).
        let mask = if md.is_dir() { 0o777 } else { 0o7777 };
        assert_eq!(
            md.mode() & mask,
            u32::from(node.meta.mode) & mask,
            "{}",
            p.display()
        );
        match &node.kind {
            Kind::File(fd) => {
                let want = match &fd.source {
                    Source::Bytes(b) => b.to_vec(),
                    Source::Host(h) => std::fs::read(h).unwrap(),
                };
                assert!(
                    std::fs::read(&p).unwrap() == want,
                    "{} differs",
                    p.display()
                );
                assert_eq!(md.mtime(), node.meta.mtime.secs);
                checked += 1;
            }
            Kind::Symlink(t) => assert_eq!(
                std::fs::read_link(&p)
                    .unwrap()
                    .as_os_str()
                    .as_encoded_bytes(),
                &t[..]
            ),
            Kind::Dir(_) => assert!(md.is_dir()),
            _ => {}
        }
    }
    assert!(checked > 1000, "only {checked} files compared");

    // resize2fs grows it to 4x offline, and e2fsck stays clean.
    let len = std::fs::metadata(&img).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(len * 4)
        .unwrap();
    resize2fs(&img);
    e2fsck_clean(&img);
    let blocks = dumpe2fs_h(&img)
        .lines()
        .find_map(|l| {
            l.strip_prefix("Block count:")
                .map(|v| v.trim().parse::<u64>().unwrap())
        })
        .unwrap();
    assert_eq!(blocks * 4096, len * 4);
}

/// The edge-case tree of the issue. Big generated parts come through the caller API (fast, no
/// root needed); holes and hard links come from a host walk.
#[test]
fn test_edge_case_tree_clean_and_reads_back() {
    require_tools!(E2FSCK, DEBUGFS, DUMPE2FS, RESIZE2FS);
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("src");
    std::fs::create_dir(&host).unwrap();
    for s in [0usize, 1, 4095, 4096, 4097] {
        std::fs::write(host.join(format!("size{s}")), vec![0xA5u8; s]).unwrap();
    }
    // 600 MiB with a 4 KiB island every MiB: 600 extents, so the extent tree has depth 1.
    let f = std::fs::File::create(host.join("islands")).unwrap();
    f.set_len(600 << 20).unwrap();
    for i in 0..600u64 {
        use std::os::unix::fs::FileExt;
        f.write_all_at(&[(i % 251) as u8 + 1; 4096], i << 20)
            .unwrap();
    }
    let mut s = std::fs::File::create(host.join("sparse")).unwrap();
    s.set_len(1 << 30).unwrap();
    s.flush().unwrap();
    std::fs::hard_link(host.join("size4096"), host.join("hardlink")).unwrap();
    std::os::unix::fs::symlink("size1", host.join("fastlink")).unwrap();
    let mut tree = Tree::from_host_dir(&host, &HostOptions::default()).unwrap();

    let m = |mode| Meta::file(mode);
    tree.add_dir(b"big", Meta::dir(0o755)).unwrap();
    for i in 0..60_000 {
        let name = format!("big/{i:05}-{}", "x".repeat(200));
        tree.add_file(name.as_bytes(), bytes(b""), m(0o644))
            .unwrap();
    }
    tree.add_dir(b"many", Meta::dir(0o755)).unwrap();
    for i in 0..65_010 {
        tree.add_dir(format!("many/{i}").as_bytes(), Meta::dir(0o700))
            .unwrap();
    }
    let long = "n".repeat(255);
    tree.add_file(long.as_bytes(), bytes(b"long"), m(0o644))
        .unwrap();
    tree.add_file("ünïcødé-名前".as_bytes(), bytes(b"u"), m(0o644))
        .unwrap();
    tree.add_symlink(
        b"slowlink",
        format!("/{}", "a".repeat(4000)).as_bytes(),
        Meta::symlink(),
    )
    .unwrap();
    tree.add_hard_link(b"hardlink2", b"size4097").unwrap();
    for (name, kind) in [
        ("chr", Kind::CharDev { major: 1, minor: 3 }),
        (
            "blk",
            Kind::BlockDev {
                major: 259,
                minor: 70_000,
            },
        ),
        ("fifo", Kind::Fifo),
        ("sock", Kind::Socket),
    ] {
        tree.add(
            name.as_bytes(),
            Node {
                kind,
                meta: m(0o640),
            },
        )
        .unwrap();
    }
    tree.add_file(b"setuid", bytes(b"#!"), m(0o4755)).unwrap();
    tree.add_dir(b"sticky", Meta::dir(0o1777)).unwrap();
    let mut own = m(0o600);
    own.uid = 3_000_000_000;
    own.gid = 2_200_000_000;
    tree.add_file(b"owner", bytes(b"o"), own).unwrap();
    let future = Timestamp {
        secs: 4_102_444_800,
        nanos: 123_456_789,
    };
    tree.add_file(b"future", bytes(b"f"), m(0o644).at(future))
        .unwrap();
    let mut xa = m(0o644);
    let xattrs: BTreeMap<Vec<u8>, Vec<u8>> = [
        (b"user.small".to_vec(), b"v".to_vec()),
        (b"trusted.t".to_vec(), vec![b'x'; 30]),
        (
            b"security.capability".to_vec(),
            vec![
                1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        (b"user.big".to_vec(), vec![b'y'; 1500]),
    ]
    .into_iter()
    .collect();
    xa.xattrs = xattrs;
    tree.add_file(b"xa", bytes(b"x"), xa).unwrap();
    // A POSIX ACL (user::rw-, user:1000:r--, group::r--, mask::r--, other::---) in the
    // kernel's xattr form; ext4 stores it converted (version 1, short entries).
    let mut acl = m(0o640);
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 4, 1000),
        (4, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    acl.xattrs.insert(b"system.posix_acl_access".to_vec(), v);
    tree.add_file(b"acl", bytes(b"a"), acl).unwrap();

    let img = dir.path().join("edge.img");
    let p = write_image(&tree, &opts(), &img);
    e2fsck_clean(&img);

    let ino = |path: &str| p.inode_of(tree.lookup(path.as_bytes()).unwrap());
    let stat = |path: &str| debugfs(&img, &format!("stat \"{path}\""));
    // Two-level htree in the 60k directory.
    let ht = debugfs(&img, "htree big");
    assert!(
        ht.contains("Indirect levels: 1"),
        "{}",
        &ht[..ht.len().min(400)]
    );
    assert_eq!(
        debugfs(&img, "ls big")
            .split_whitespace()
            .filter(|w| w.ends_with(&"x".repeat(200)))
            .count(),
        60_000
    );
    // dir_nlink: more than 65,000 subdirectories gives the parent a link count of 1.
    assert!(stat("many").contains("Links: 1 "), "{}", stat("many"));
    // Extent tree depth >= 1 and holes kept.
    let st = stat("islands");
    assert!(st.contains("(ETB0)"), "no extent tree block");
    assert!(
        st.contains("Blockcount: 48") && st.contains("Size: 629145600"),
        "{}",
        &st[..600]
    );
    assert!(
        stat("sparse").contains("Blockcount: 0"),
        "{}",
        stat("sparse")
    );
    // Hard links share an inode; symlinks; devices; modes; owners; times; xattrs.
    assert_eq!(ino("hardlink"), ino("size4096"));
    assert_eq!(ino("hardlink2"), ino("size4097"));
    assert!(stat("size4096").contains("Links: 2"));
    assert!(!stat("slowlink").contains("Fast link dest"));
    assert!(debugfs(&img, "stat fastlink").contains("Fast link dest: \"size1\""));
    assert!(stat("blk").contains("259:70000"), "{}", stat("blk"));
    assert!(
        stat("chr").contains("Device major/minor number: 01:03"),
        "{}",
        stat("chr")
    );
    assert!(stat("fifo").contains("Type: FIFO"));
    assert!(stat("sock").contains("Type: socket"));
    assert!(stat("setuid").contains("Mode:  04755"));
    assert!(stat("sticky").contains("Mode:  01777"));
    assert!(
        stat("owner").contains("User: -1294967296   Group: -2094967296"),
        "{}",
        stat("owner")
    );
    assert!(
        stat("future").contains("mtime: 0xf4865700:1d6f3455"),
        "{}",
        stat("future")
    );
    let acl = debugfs(&img, "ea_list acl");
    assert!(
        acl.contains(
            "system.posix_acl_access (28) = 01 00 00 00 01 00 06 00 02 00 04 00 e8 03 00 00"
        ),
        "{acl}"
    );
    let ea = debugfs(&img, "ea_list xa");
    assert!(
        ea.contains("user.big (1500)")
            && ea.contains("security.capability (20)")
            && ea.contains("trusted.t (30)"),
        "{ea}"
    );
    assert!(
        !stat("xa").contains("File ACL: 0\n"),
        "xattr block expected"
    );
    // Contents, including the slow symlink target, 255-byte and non-ASCII names.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for name in [
        "size0",
        "size1",
        "size4095",
        "size4096",
        "size4097",
        "islands",
        &long,
        "ünïcødé-名前",
        "slowlink",
    ] {
        debugfs(&img, &format!("rdump \"{name}\" {}", out.display()));
    }
    for s in [0usize, 1, 4095, 4096, 4097] {
        assert_eq!(
            std::fs::read(out.join(format!("size{s}"))).unwrap(),
            vec![0xA5u8; s]
        );
    }
    assert!(
        std::fs::read(out.join("islands")).unwrap() == std::fs::read(host.join("islands")).unwrap()
    );
    assert_eq!(std::fs::read(out.join(&long)).unwrap(), b"long");
    assert_eq!(std::fs::read(out.join("ünïcødé-名前")).unwrap(), b"u");
    assert_eq!(
        std::fs::read_link(out.join("slowlink"))
            .unwrap()
            .as_os_str()
            .len(),
        4001
    );
}

#[test]
fn test_fixed_size_too_small_fails_before_writing() {
    let mut tree = Tree::new(Meta::dir(0o755));
    tree.add_file(b"f", bytes(&vec![1u8; 20 << 20]), Meta::file(0o644))
        .unwrap();
    let e = plan(&tree, &{
        let mut o = opts();
        o.size = Size::Fixed(16 << 20);
        o
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace);
    assert!(
        e.to_string().contains("needs ") && e.to_string().contains("given 16 MiB"),
        "{e}"
    );
}

#[test]
fn test_name_over_255_bytes_is_rejected_with_its_path() {
    let mut tree = Tree::new(Meta::dir(0o755));
    tree.add_dir(b"d", Meta::dir(0o755)).unwrap();
    tree.add_file(
        format!("d/{}", "z".repeat(256)).as_bytes(),
        bytes(b""),
        Meta::file(0o644),
    )
    .unwrap();
    let e = plan(&tree, &opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string().starts_with("d/zzz") && e.to_string().contains("255"),
        "{e}"
    );
}

#[test]
fn test_vanished_source_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("gone"), b"data").unwrap();
    let tree = Tree::from_host_dir(&src, &HostOptions::default()).unwrap();
    std::fs::remove_file(src.join("gone")).unwrap();
    let p = plan(&tree, &opts()).unwrap();
    let img = imagetool_blockio::MemImage::new(p.size_bytes());
    let e = p.write(&tree, &img).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string().contains(&*src.join("gone").to_string_lossy()),
        "{e}"
    );
}

#[test]
fn test_fixed_size_image_fills_the_window_and_is_clean() {
    require_tools!(E2FSCK, DEBUGFS, DUMPE2FS, RESIZE2FS);
    let dir = tempfile::tempdir().unwrap();
    let img: PathBuf = dir.path().join("fixed.img");
    let mut tree = Tree::new(Meta::dir(0o755));
    tree.add_file(b"a", bytes(b"abc"), Meta::file(0o644))
        .unwrap();
    // 300 MiB: 10 groups, several with backups, mke2fs's inode ratio.
    let p = write_image(
        &tree,
        &{
            let mut o = opts();
            o.size = Size::Fixed(300 << 20);
            o
        },
        &img,
    );
    assert_eq!(p.size_bytes(), 300 << 20);
    assert_eq!(p.inode_count(), (300 << 20) / 16384);
    e2fsck_clean(&img);
    // Ten groups with backups in 1, 3, 5, 7, 9: growing to 1.2 GiB uses the reserved GDT
    // blocks through the resize inode.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(1200 << 20)
        .unwrap();
    resize2fs(&img);
    e2fsck_clean(&img);
}

/// A large filesystem: its 1 GiB journal spans more extents than the inode holds (an extent
/// tree block, which the kernel must find), and the groups that hold nothing of their own are
/// BLOCK_UNINIT with no bitmap written, as mke2fs leaves them, so the sparse image stays small.
#[test]
fn test_64_gib_filesystem_journal_tree_and_uninit_groups() {
    require_tools!(E2FSCK, DEBUGFS, DUMPE2FS);
    let dir = tempfile::tempdir().unwrap();
    let img: PathBuf = dir.path().join("big.img");
    let mut tree = Tree::new(Meta::dir(0o755));
    tree.add_file(b"a", bytes(b"abc"), Meta::file(0o644))
        .unwrap();
    write_image(
        &tree,
        &{
            let mut o = opts();
            o.size = Size::Fixed(64 << 30);
            o
        },
        &img,
    );
    e2fsck_clean(&img);
    let stat = debugfs(&img, "stat <8>");
    assert!(
        stat.contains("(ETB0)"),
        "the journal has no extent tree block:\n{stat}"
    );
    let dump = imagetool_testutil::run_ok(DUMPE2FS, &[img.as_os_str()]).stdout;
    let groups = dump
        .lines()
        .filter(|l| {
            l.strip_prefix("Group ")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    let uninit = dump.matches("BLOCK_UNINIT").count();
    assert_eq!(groups, 512, "{dump}");
    assert!(
        uninit > groups * 3 / 4,
        "only {uninit} of {groups} groups are BLOCK_UNINIT"
    );
    let allocated = std::fs::metadata(&img).unwrap().blocks() * 512;
    assert!(
        allocated < 64 << 20,
        "{allocated} bytes allocated for a nearly empty 64 GiB filesystem"
    );
}
