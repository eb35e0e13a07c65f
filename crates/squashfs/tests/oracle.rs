//! The squashfs writer judged by squashfs-tools (`unsquashfs -s`, `-lln`, `-d`), by mksquashfs'
//! listing of the same tree, and by the Linux kernel (a read-only loop mount).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use imagetool_fstree::{HostOptions, Kind, Meta, Node, Source, Timestamp, Tree};
use imagetool_squashfs::{Compression, ErrorKind, Options, XzFilter, write_file};
use imagetool_testutil::tools::{MKSQUASHFS, UNSQUASHFS};
use imagetool_testutil::tree::{CompareOptions, Tree as Expected};
use imagetool_testutil::{ErrorKind as OracleKind, require_tools, run, squashfs};

const T0: i64 = 1_700_000_000;

/// A small deterministic pseudo-random generator for file contents.
fn bytes(seed: u64, n: usize, compressible: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if compressible && i % 4 != 0 {
                b'a' + (i % 7) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

/// The edge cases real trees have, as a host directory.
fn edge_dir(root: &Path) {
    let w = |p: &str, data: &[u8]| std::fs::write(root.join(p), data).unwrap();
    let bs = 128 * 1024;
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::create_dir_all(root.join("d/e/f/g")).unwrap();
    w("empty", b"");
    w("one-block", &bytes(1, bs, true));
    w("one-block-plus-1", &bytes(2, bs + 1, true));
    w("block-minus-1", &bytes(3, bs - 1, false));
    w("random-3.5-blocks", &bytes(4, bs * 7 / 2, false));
    w("zero-block-data", &vec![0u8; 2 * bs + 10]);
    // Holes: data, two hole blocks, data, a hole to the end.
    {
        let mut f = std::fs::File::create(root.join("sparse")).unwrap();
        f.write_all(&bytes(5, 1000, true)).unwrap();
        f.set_len(5 * bs as u64 + 77).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&bytes(6, 3000, true), 3 * bs as u64)
            .unwrap();
    }
    // Identical files (whole-block and fragment-sized), and hard links.
    w("dup-a", &bytes(7, 3 * bs + 5, true));
    w("d/dup-b", &bytes(7, 3 * bs + 5, true));
    w("small-a", b"identical small file\n");
    w("d/e/small-b", b"identical small file\n");
    w("linked", b"hard linked\n");
    std::fs::hard_link(root.join("linked"), root.join("d/linked-2")).unwrap();
    std::fs::hard_link(root.join("linked"), root.join("d/e/linked-3")).unwrap();
    std::fs::hard_link(root.join("one-block"), root.join("d/one-block-link")).unwrap();
    // Names: the longest Linux allows, UTF-8, spaces and odd bytes.
    w(&"n".repeat(255), b"long name\n");
    w("grüße-日本語-🦀", b"utf-8\n");
    w("with space", b"space\n");
    w("d/.hidden", b"dot\n");
    // Symlinks: relative, absolute, dangling, a chain, a long target.
    let ln = |t: &str, p: &str| std::os::unix::fs::symlink(t, root.join(p)).unwrap();
    ln("one-block", "sym-rel");
    ln("/nix/store/abc-foo/bin/foo", "sym-abs");
    ln("does/not/exist", "sym-dangling");
    ln("sym-rel", "sym-chain-1");
    ln("sym-chain-1", "sym-chain-2");
    ln("../../../../sym-chain-2", "d/e/f/g/sym-deep");
    ln(&"x/".repeat(1900), "sym-long");
    // Modes.
    use std::os::unix::fs::PermissionsExt;
    w("setuid", b"#!/bin/sh\n");
    std::fs::set_permissions(root.join("setuid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::create_dir(root.join("sticky")).unwrap();
    std::fs::set_permissions(root.join("sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(root.join("empty"), std::fs::Permissions::from_mode(0o400)).unwrap();
}

/// The name of entry `i` of the 60,000-entry directory: varied lengths, so directory headers
/// and index entries fall everywhere.
fn big_name(i: u32) -> String {
    format!("entry-{i:05}-{}", "z".repeat((i % 40) as usize))
}

/// The fstree of `dir`, with times fixed at T0 and a few owners, devices, a fifo and xattrs
/// added through the API (and with `big_dir` a 60,000-entry directory); and the expected tree
/// for the oracles.
fn trees(dir: &Path, big_dir: bool) -> (Tree, Expected) {
    let mut tree = Tree::from_host_dir(
        dir,
        &HostOptions {
            xattrs: false,
            ..HostOptions::default()
        },
    )
    .unwrap();
    let mut expected = Expected::from_dir(dir).unwrap();
    for (_, id) in tree.walk() {
        let m = tree.meta_mut(id);
        *m = Meta {
            uid: 0,
            gid: 0,
            ..m.clone().at(Timestamp::from_secs(T0))
        };
    }
    let set_owner = |tree: &mut Tree, exp: &mut Expected, p: &str, uid, gid| {
        let id = tree.lookup(p.as_bytes()).unwrap();
        tree.meta_mut(id).uid = uid;
        tree.meta_mut(id).gid = gid;
        let e = exp.get(&format!("/{p}")).unwrap().clone();
        let n = exp.insert(&format!("/{p}"), e.kind.clone(), e.mode);
        *n = imagetool_testutil::tree::Entry { uid, gid, ..e };
    };
    // Everything root-owned first (the host walk took the test's owner).
    let paths: Vec<String> = expected.entries().keys().cloned().collect();
    for p in paths {
        let e = expected.get(&p).unwrap().clone();
        let n = expected.insert(&p, e.kind.clone(), e.mode);
        *n = imagetool_testutil::tree::Entry {
            uid: 0,
            gid: 0,
            ..e
        };
    }
    set_owner(&mut tree, &mut expected, "setuid", 1000, 100);
    set_owner(&mut tree, &mut expected, "d/e", 65534, 65534);
    set_owner(&mut tree, &mut expected, "sym-abs", 30001, 30000);
    let meta = |mode| Meta::with_mode(mode).at(Timestamp::from_secs(T0));
    let node = |kind, mode| Node {
        kind,
        meta: meta(mode),
    };
    tree.add(b"d/null", node(Kind::CharDev { major: 1, minor: 3 }, 0o666))
        .unwrap();
    tree.add(
        b"d/sda1",
        node(
            Kind::BlockDev {
                major: 259,
                minor: 0x12345,
            },
            0o660,
        ),
    )
    .unwrap();
    tree.add(b"d/fifo", node(Kind::Fifo, 0o644)).unwrap();
    use imagetool_testutil::tree::Kind as EK;
    expected.insert("/d/null", EK::CharDev { major: 1, minor: 3 }, 0o666);
    expected.insert(
        "/d/sda1",
        EK::BlockDev {
            major: 259,
            minor: 0x12345,
        },
        0o660,
    );
    expected.insert("/d/fifo", EK::Fifo, 0o644);
    // Extended attributes (user. and security.).
    let x = tree.lookup(b"with space").unwrap();
    let xa: BTreeMap<Vec<u8>, Vec<u8>> = [
        (b"user.comment".to_vec(), b"hello".to_vec()),
        (b"user.empty".to_vec(), Vec::new()),
        // VFS_CAP_REVISION_2, effective, permitted cap_net_bind_service.
        (
            b"security.capability".to_vec(),
            [1, 0, 0, 2, 0, 4, 0, 0]
                .into_iter()
                .chain([0; 12])
                .collect(),
        ),
    ]
    .into();
    tree.meta_mut(x).xattrs = xa.clone();
    if big_dir {
        tree.add_dir(b"big", meta(0o755)).unwrap();
        expected.insert("/big", EK::Dir, 0o755);
        for i in 0..60_000u32 {
            let data = i.to_le_bytes();
            let name = big_name(i);
            tree.add_file(
                format!("big/{name}").as_bytes(),
                Source::Bytes(data.as_slice().into()),
                meta(0o644),
            )
            .unwrap();
            expected.insert(&format!("/big/{name}"), EK::file(&data), 0o644);
        }
    }
    let e = expected.get("/with space").unwrap().clone();
    let n = expected.insert("/with space", e.kind.clone(), e.mode);
    *n = imagetool_testutil::tree::Entry {
        xattrs: xa
            .iter()
            .map(|(k, v)| (String::from_utf8(k.clone()).unwrap(), v.clone()))
            .collect(),
        ..e
    };
    (tree, expected)
}

fn compare(expected: &Expected, actual: &Expected, what: &str) {
    let opts = CompareOptions {
        root: true,
        ..CompareOptions::default()
    };
    if let Err(e) = expected.compare(actual, &opts, what) {
        panic!("{e}");
    }
}

fn opts(c: Compression) -> Options {
    let mut o = Options::default();
    o.compression = c;
    o.mkfs_time = 1_234_567_890.into();
    o
}

/// Every compressor: unsquashfs' superblock facts, listing and extraction agree with the
/// source tree (names, types, modes, owners, targets, bytes, hard links, devices, xattrs).
#[test]
fn test_every_compressor_reads_back_through_unsquashfs() {
    require_tools!(UNSQUASHFS);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    edge_dir(&src);
    let (tree, expected) = trees(&src, false);
    for (c, name, extra) in [
        (Compression::Gzip, "gzip", Options::default()),
        (Compression::Xz, "xz", {
            let mut o = Options::default();
            o.xz_filters = vec![XzFilter::X86];
            o
        }),
        (Compression::Lz4, "lz4", Options::default()),
        (Compression::Zstd, "zstd", {
            let mut o = Options::default();
            o.level = Some(19);
            o.block_size = 1 << 20;
            o
        }),
    ] {
        let mut o = opts(c);
        o.xz_filters = extra.xz_filters;
        o.level = extra.level;
        o.block_size = extra.block_size;
        let img = tmp.path().join(format!("{name}.sqfs"));
        let r = write_file(&tree, &o, &img).unwrap();
        assert_eq!(std::fs::metadata(&img).unwrap().len(), r.size);
        let st = squashfs::stat(&img).unwrap();
        assert_eq!(st.compression(), Some(name), "{}", st.text);
        assert_eq!(st.block_size().unwrap(), u64::from(o.block_size));
        assert_eq!(st.bytes_used().unwrap(), r.bytes_used);
        assert_eq!(st.inodes().unwrap(), u64::from(r.inodes));
        assert_eq!(st.fragments().unwrap(), u64::from(r.fragments));
        assert_eq!(st.mkfs_time, 1_234_567_890);
        // root, 1000, 100, 65534, 30001, 30000
        assert_eq!(st.ids().unwrap(), 6, "{}", st.text);
        for line in [
            "Filesystem is exportable via NFS",
            "Duplicates are removed",
            "Xattrs are compressed",
            "Fragments are compressed",
        ] {
            assert!(st.says(line), "{name}: no {line:?} in\n{}", st.text);
        }
        // Inodes: every name but the extra hard links (3 names of "linked", 2 of one-block).
        assert_eq!(
            u64::from(r.inodes),
            expected.entries().len() as u64 - 3,
            "{name}"
        );
        // dup-a/d/dup-b and small-a/small-b are stored once.
        assert_eq!(r.duplicates, 2, "{name}");
        let actual = squashfs::read_tree(&img).unwrap();
        compare(&expected, &actual, &format!("unsquashfs {name}"));
        // Times come from the tree.
        let tmp2 = tempfile::tempdir().unwrap();
        let ex = tmp2.path().join("x");
        squashfs::extract(&img, &ex).unwrap();
        for p in ["one-block", "d/e", "empty-dir", "setuid"] {
            assert_eq!(
                std::fs::symlink_metadata(ex.join(p)).unwrap().mtime(),
                T0,
                "{name} {p}"
            );
        }
    }
}

/// The same host directory through mksquashfs: `unsquashfs -lln` lists both images alike.
#[test]
fn test_listing_matches_mksquashfs() {
    require_tools!(UNSQUASHFS, MKSQUASHFS);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    edge_dir(&src);
    let tree = Tree::from_host_dir(&src, &HostOptions::default()).unwrap();
    let ours = tmp.path().join("ours.sqfs");
    write_file(&tree, &opts(Compression::Zstd), &ours).unwrap();
    let theirs = tmp.path().join("theirs.sqfs");
    let out = run(
        MKSQUASHFS,
        &[
            src.as_os_str(),
            theirs.as_os_str(),
            "-comp".as_ref(),
            "zstd".as_ref(),
            "-noappend".as_ref(),
            "-no-progress".as_ref(),
            "-quiet".as_ref(),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(out.code(), Some(0), "{out}");
    let a = squashfs::listing(&ours).unwrap();
    let b = squashfs::listing(&theirs).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (p, e) in &a {
        assert_eq!(Some(e), b.get(p), "{p}");
    }
    // And the same inode count (hard links kept as one inode by both).
    let (sa, sb) = (
        squashfs::stat(&ours).unwrap(),
        squashfs::stat(&theirs).unwrap(),
    );
    assert_eq!(sa.inodes().unwrap(), sb.inodes().unwrap());
}

/// The kernel reads it: a 60,000-entry directory (looked up through the directory index),
/// every edge case, contents and times, through a read-only loop mount; unsquashfs agrees.
#[test]
fn test_kernel_reads_large_directory_and_edge_cases() {
    require_tools!(UNSQUASHFS);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    edge_dir(&src);
    let (tree, expected) = trees(&src, true);
    let img = tmp.path().join("big.sqfs");
    let mut o = opts(Compression::Xz);
    o.xz_filters = vec![XzFilter::X86];
    write_file(&tree, &o, &img).unwrap();
    let actual = squashfs::read_tree(&img).unwrap();
    compare(&expected, &actual, "unsquashfs, 60k-entry directory");
    let kernel = squashfs::with_mount(&img, |mnt| {
        // Lookups by name (not readdir order) go through the directory index.
        for i in (0..60_000u32).step_by(997).chain([59_999]) {
            let name = big_name(i);
            let got = std::fs::read(mnt.join("big").join(&name))
                .map_err(|e| imagetool_testutil::Error::io(&mnt.join(&name), e))?;
            assert_eq!(got, i.to_le_bytes(), "{name}");
        }
        let m = std::fs::symlink_metadata(mnt.join("d/e")).unwrap();
        assert_eq!((m.mtime(), m.uid(), m.gid()), (T0, 65534, 65534));
        // empty-dir, d, sticky, big
        assert_eq!(std::fs::symlink_metadata(mnt).unwrap().nlink(), 2 + 4);
        Expected::from_dir(mnt)
    });
    match kernel {
        Ok(k) => compare(&expected, &k, "kernel loop mount"),
        Err(e) if e.kind() == OracleKind::ToolMissing && !imagetool_testutil::tools::required() => {
            eprintln!("skipped the kernel check: {e}");
        }
        Err(e) => panic!("{e}"),
    }
}

/// Two builds are byte-identical, and so are builds with 1 and 2 threads, on a tree larger
/// than one batch with a duplicate large file that spans batches (its blocks are written,
/// then taken back).
#[test]
fn test_deterministic_across_builds_and_threads() {
    require_tools!(UNSQUASHFS);
    let t = Timestamp::from_secs(T0);
    let mut tree = Tree::new(Meta::dir(0o755).at(t));
    let big_bytes = bytes(11, 40 << 20, true);
    let big: std::sync::Arc<[u8]> = big_bytes.clone().into();
    tree.add_file(
        b"a-big",
        Source::Bytes(big.clone()),
        Meta::file(0o644).at(t),
    )
    .unwrap();
    for i in 0..300u32 {
        let data: std::sync::Arc<[u8]> = bytes(u64::from(i), (i as usize * 37) % 5000, true).into();
        tree.add_file(
            format!("b-small-{i}").as_bytes(),
            Source::Bytes(data),
            Meta::file(0o644).at(t),
        )
        .unwrap();
    }
    tree.add_file(b"c-big-copy", Source::Bytes(big), Meta::file(0o755).at(t))
        .unwrap();
    tree.add_file(
        b"d-after",
        Source::Bytes(bytes(99, 300_000, false).into()),
        Meta::file(0o644).at(t),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let build = |name: &str, threads| {
        let p = tmp.path().join(name);
        let mut o = opts(Compression::Lz4);
        o.threads = threads;
        let r = write_file(&tree, &o, &p).unwrap();
        (std::fs::read(&p).unwrap(), r)
    };
    let (a, ra) = build("a.sqfs", 2);
    let (b, _) = build("b.sqfs", 2);
    let (c, _) = build("c.sqfs", 1);
    assert!(a == b, "two builds differ");
    assert!(a == c, "1 and 2 threads differ");
    assert_eq!(ra.duplicates, 1);
    // The copy shares the first's blocks: the image holds the big file once.
    assert!(ra.size < (40 << 20) + (4 << 20), "{ra:?}");
    let got = squashfs::read_tree(&tmp.path().join("a.sqfs")).unwrap();
    let e = got.get("/c-big-copy").unwrap();
    assert_eq!(e.kind, imagetool_testutil::tree::Kind::file(&big_bytes));
    assert_eq!(e.mode, 0o755);
    assert_eq!(
        got.get("/d-after").unwrap().kind,
        imagetool_testutil::tree::Kind::file(&bytes(99, 300_000, false))
    );
}

/// Bad input: errors name the option or path, and no output is left behind.
#[test]
fn test_errors_name_the_problem_and_leave_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.sqfs");
    let t = Timestamp::from_secs(T0);
    let mut tree = Tree::new(Meta::dir(0o755).at(t));
    tree.add_file(
        b"ok",
        Source::Bytes(b"x".as_slice().into()),
        Meta::file(0o644),
    )
    .unwrap();

    let e = write_file(
        &tree,
        &{
            let mut o = Options::default();
            o.block_size = 3000;
            o
        },
        &out,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("block size"), "{e}");
    let e = write_file(
        &tree,
        &{
            let mut o = Options::default();
            o.compression = Compression::Zstd;
            o.level = Some(30);
            o
        },
        &out,
    )
    .unwrap_err();
    assert!(e.to_string().contains("level 30"), "{e}");

    let mut long = tree.clone();
    long.add_dir(b"d", Meta::dir(0o755)).unwrap();
    let name = format!("d/{}", "n".repeat(300));
    long.add_file(
        name.as_bytes(),
        Source::Bytes(b"".as_slice().into()),
        Meta::file(0o644),
    )
    .unwrap();
    let e = write_file(&long, &Options::default(), &out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.context().starts_with("/d/nnnn"), "{e}");

    let mut x = tree.clone();
    let id = x.lookup(b"ok").unwrap();
    x.meta_mut(id)
        .xattrs
        .insert(b"system.posix_acl_access".to_vec(), vec![2, 0]);
    let e = write_file(&x, &Options::default(), &out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("system.posix_acl_access"), "{e}");

    // A host file that vanished after the walk.
    let gone = tmp.path().join("gone");
    std::fs::write(&gone, b"soon gone").unwrap();
    let mut h = tree.clone();
    h.add_file(b"gone", Source::Host(gone.clone()), Meta::file(0o644))
        .unwrap();
    std::fs::remove_file(&gone).unwrap();
    let e = write_file(&h, &Options::default(), &out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("gone"), "{e}");

    // A target too small for the filesystem.
    let small = imagetool_blockio::MemImage::new(4096);
    let mut big = tree.clone();
    big.add_file(
        b"random",
        Source::Bytes(bytes(3, 20_000, false).into()),
        Meta::file(0o644),
    )
    .unwrap();
    let e = imagetool_squashfs::write(&big, &Options::default(), &small).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");

    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "left output behind"
    );
}
