//! The FAT writer against dosfstools, mtools and blkid.

use imagetool_testutil::tools::{BLKID, FSCK_FAT, MDIR, MKFS_VFAT, MTYPE};
use imagetool_testutil::{require, run_text};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

use imagetool_blockio::SparseFile;
use imagetool_fat::{FatType, FormatOptions, Params, Tree, format};

fn have_all() -> bool {
    require(&[FSCK_FAT]) && require(&[MKFS_VFAT]) && require(&[MDIR]) && require(&[BLKID])
}

/// A tree with the edge cases: many files, deep directories, long and unicode names, empty
/// files, files of exactly one and two clusters, alias collisions, 8.3 names, dot files.
fn edge_tree(cluster: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert(
        "EFI/BOOT/BOOTX64.EFI".to_string(),
        b"MZ\x90\x00fake".to_vec(),
    );
    files.insert(
        "loader/loader.conf".to_string(),
        b"timeout 3\ndefault nixos-*\n".to_vec(),
    );
    files.insert(
        "loader/entries/nixos-generation-1.conf".to_string(),
        b"title NixOS\n".to_vec(),
    );
    files.insert("empty".to_string(), Vec::new());
    files.insert("exact-one-cluster.bin".to_string(), vec![0xa5; cluster]);
    files.insert(
        "exact-two-clusters.bin".to_string(),
        vec![0x5a; 2 * cluster],
    );
    files.insert("one-more-than-cluster".to_string(), vec![7; cluster + 1]);
    files.insert("zeros-then-data".to_string(), {
        let mut v = vec![0u8; 3 * cluster];
        v.push(1);
        v
    });
    files.insert(".hidden".to_string(), b"dot".to_vec());
    files.insert(
        "ünïcødé – 名前 ✓.txt".to_string(),
        "unicode".as_bytes().to_vec(),
    );
    files.insert(
        format!("{}.txt", "a-very-long-name".repeat(14)),
        b"long".to_vec(),
    );
    for i in 0..12 {
        files.insert(
            format!("collide/longfilename{i}.text"),
            format!("{i}").into_bytes(),
        );
    }
    for i in 0..1500 {
        files.insert(
            format!("many/f{i:05}.dat"),
            format!("file {i}\n").into_bytes(),
        );
    }
    let deep: String = (0..30).map(|i| format!("d{i}/")).collect();
    files.insert(format!("{deep}leaf.txt"), b"deep".to_vec());
    files.insert("Mixed.Case.Name".to_string(), b"mixed".to_vec());
    files
}

fn tree_of(files: &BTreeMap<String, Vec<u8>>) -> Tree {
    let mut t = Tree::new();
    for (p, d) in files {
        t.add_bytes(p, d.clone()).unwrap();
    }
    t.add_dir("empty-dir").unwrap();
    t
}

fn build(path: &Path, files: &BTreeMap<String, Vec<u8>>, size: u64, opts: &FormatOptions) {
    let img = SparseFile::create(path, size).unwrap();
    format(&tree_of(files), &img, opts).unwrap();
}

fn esp_opts() -> FormatOptions {
    let mut o = FormatOptions::default();
    o.label = Some("ESP".into());
    o.volume_id = 0x2f6a_91c4;
    o.timestamp = 1_700_000_000.into();
    o
}

fn check_image(img: &Path, files: &BTreeMap<String, Vec<u8>>, label: &str) {
    let p = img.to_str().unwrap();
    let (ok, out) = run_text(FSCK_FAT, &["-n", "-V", p]);
    assert!(ok, "fsck.fat -n failed:\n{out}");
    let findings: Vec<&str> = out
        .lines()
        .filter(|l| {
            !(l.starts_with("fsck.fat ")
                || l.starts_with("Checking")
                || l.starts_with("Starting")
                || l.contains(" files, ")
                || l.trim().is_empty())
        })
        .collect();
    assert!(findings.is_empty(), "fsck.fat -n reports:\n{out}");
    // mtools lists every file (recursively) with its full path.
    let (ok, listing) = run_text(MDIR, &["-/", "-b", "-i", p, "::"]);
    assert!(ok, "mdir failed: {listing}");
    let listed: std::collections::BTreeSet<String> = listing
        .lines()
        .map(|l| l.trim_start_matches("::/").to_string())
        .collect();
    for path in files.keys() {
        assert!(listed.contains(path), "mdir does not list {path:?}");
    }
    // Contents: every file outside the bulk directory, and a sample of it.
    for (path, data) in files
        .iter()
        .filter(|(p, _)| !p.starts_with("many/") || p.ends_with("7.dat"))
    {
        // mtype once, keeping the raw bytes (binary contents are not text).
        let mtype = MTYPE.path().unwrap_or_else(|e| panic!("{e}"));
        let o = std::process::Command::new(mtype)
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i", p, &format!("::/{path}")])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mtype {path}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(&o.stdout, data, "contents of {path}");
    }
    let (ok, out) = run_text(BLKID, &["-p", "-o", "export", p]);
    assert!(ok, "blkid: {out}");
    assert!(out.contains(&format!("LABEL={label}\n")), "{out}");
    assert!(out.contains("TYPE=vfat"), "{out}");
}

#[test]
fn test_esp_fat16_is_fsck_clean_and_readable() {
    if !have_all() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("esp.img");
    // make-disk-image's default ESP: 8 MiB .. 257 MiB.
    let size = 249 << 20;
    let files = edge_tree(4096);
    build(&img, &files, size, &esp_opts());
    let params = Params::choose(size, None, None).unwrap();
    assert_eq!(params.fat_type, FatType::Fat16);
    check_image(&img, &files, "ESP");
    // Deterministic: a second build is byte-identical.
    let img2 = dir.path().join("esp2.img");
    build(&img2, &files, size, &esp_opts());
    assert!(std::fs::read(&img).unwrap() == std::fs::read(&img2).unwrap());
    // Sparse: far less allocated than the size.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&img).unwrap();
    assert!(
        m.blocks() * 512 < 16 << 20,
        "{} bytes allocated",
        m.blocks() * 512
    );
}

#[test]
fn test_fat32_forced_and_auto_are_fsck_clean() {
    if !have_all() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (size, forced) in [(300u64 << 20, Some(FatType::Fat32)), (600 << 20, None)] {
        let img = dir.path().join(format!("esp32-{size}.img"));
        let p = Params::choose(size, forced, None).unwrap();
        assert_eq!(p.fat_type, FatType::Fat32);
        let files = edge_tree(p.cluster_bytes() as usize);
        let mut opts = esp_opts();
        opts.fat_type = forced;
        opts.label = Some("BOOT".into());
        build(&img, &files, size, &opts);
        check_image(&img, &files, "BOOT");
    }
}

#[test]
fn test_fat12_small_is_fsck_clean() {
    if !have_all() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("small.img");
    let mut files = BTreeMap::new();
    files.insert("a/b/c.txt".to_string(), b"c".to_vec());
    files.insert("long name here.txt".to_string(), vec![3; 5000]);
    build(&img, &files, 4 << 20, &esp_opts());
    assert_eq!(
        Params::choose(4 << 20, None, None).unwrap().fat_type,
        FatType::Fat12
    );
    check_image(&img, &files, "ESP");
}

/// mkfs.fat 4.2's own choices, read from the boot sectors it writes. (The CHS geometry fields
/// are not compared: mkfs.fat invents one for image files, and LBA readers ignore them.)
#[test]
fn test_params_match_mkfs_fat() {
    if !require(&[MKFS_VFAT]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sizes_mib: [u64; 16] = [
        1, 2, 5, 8, 16, 33, 64, 92, 100, 248, 249, 256, 300, 511, 512, 2048,
    ];
    for (i, mib) in sizes_mib.into_iter().enumerate() {
        for (extra, forced) in [(0u64, None), (512, None), (0, Some(FatType::Fat32))] {
            let size = (mib << 20) + extra;
            if forced.is_some() && mib < 260 {
                continue;
            }
            let img = dir.path().join(format!("m{i}-{extra}.img"));
            std::fs::File::create(&img).unwrap().set_len(size).unwrap();
            let mut args = vec!["-n", "ESP", "-i", "1234abcd"];
            if forced.is_some() {
                args.extend(["-F", "32"]);
            }
            args.push(img.to_str().unwrap());
            let (ok, out) = run_text(MKFS_VFAT, &args);
            assert!(ok, "{out}");
            let f = std::fs::File::open(&img).unwrap();
            let mut b = [0u8; 512];
            f.read_exact_at(&mut b, 0).unwrap();
            let ours = Params::choose(size, forced, None).unwrap();
            let le16 = |o: usize| u32::from(u16::from_le_bytes([b[o], b[o + 1]]));
            let fat_len = if le16(22) == 0 {
                u32::from_le_bytes([b[36], b[37], b[38], b[39]])
            } else {
                le16(22)
            };
            let theirs = (
                imagetool_fat::probe::parse(&b).unwrap().fat_type,
                u32::from(b[13]),
                le16(14),
                fat_len,
                le16(17),
            );
            assert_eq!(
                (
                    ours.fat_type,
                    ours.cluster_sectors,
                    ours.reserved,
                    ours.fat_sectors,
                    ours.root_entries,
                ),
                theirs,
                "{mib} MiB + {extra}"
            );
        }
    }
}
