//! The qemu-img oracles on containers made by `qemu-img convert`.

mod common;

use std::path::Path;

use common::{patch, read, sparse};
use imagetool_testutil::tools::QEMU_IMG;
use imagetool_testutil::{ErrorKind, qemu_img, require_tools};

fn be64(path: &Path, offset: u64) -> u64 {
    u64::from_be_bytes(read(path, offset, 8).try_into().unwrap())
}

/// A 16 MiB raw disk with data scattered over it (and holes).
fn raw_disk(path: &Path) {
    sparse(path, 16 << 20);
    for (i, off) in [0u64, 70_000, 1 << 20, 5 << 20, (16 << 20) - 4096]
        .into_iter()
        .enumerate()
    {
        let block: Vec<u8> = (0..4096u32).map(|j| (j as u8) ^ (i as u8 * 37)).collect();
        patch(path, off, &block);
    }
}

fn convert(raw: &Path, out: &Path, format: &str, opts: &[&str]) {
    let mut args = vec!["convert", "-f", "raw", "-O", format];
    args.extend_from_slice(opts);
    args.extend([raw.to_str().unwrap(), out.to_str().unwrap()]);
    common::must(QEMU_IMG, &args);
}

#[test]
fn converted_containers_check_clean_and_compare_identical() {
    require_tools!(QEMU_IMG);
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("disk.raw");
    raw_disk(&raw);
    for (format, opts) in [
        ("qcow2", &[][..]),
        ("vdi", &[][..]),
        ("vhdx", &[][..]),
        ("vmdk", &["-o", "subformat=streamOptimized"][..]),
        ("vpc", &["-o", "subformat=dynamic,force_size=on"][..]),
    ] {
        let img = tmp.path().join(format!("disk.{format}"));
        convert(&raw, &img, format, opts);
        qemu_img::assert_check_clean(&img, format);
        let info = qemu_img::info(&img, Some(format)).unwrap();
        assert_eq!(info.format, format);
        assert_eq!(info.virtual_size, 16 << 20, "{format}");
        qemu_img::assert_identical(&raw, "raw", &img, format);
    }
    // raw has no checks: reported as such, not as clean output.
    assert!(qemu_img::check(&raw, "raw").unwrap().is_none());
    let info = qemu_img::info(&tmp.path().join("disk.qcow2"), None).unwrap();
    assert_eq!(
        (info.format.as_str(), info.cluster_size),
        ("qcow2", Some(65536))
    );
}

#[test]
fn one_different_byte_fails_compare() {
    require_tools!(QEMU_IMG);
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("disk.raw");
    raw_disk(&raw);
    let qcow = tmp.path().join("disk.qcow2");
    convert(&raw, &qcow, "qcow2", &[]);
    let other = tmp.path().join("other.raw");
    std::fs::copy(&raw, &other).unwrap();
    patch(&other, (9 << 20) + 3, &[1]);
    let e = qemu_img::compare(&other, "raw", &qcow, "qcow2").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Mismatch);
    // qemu-img names the first differing sector.
    assert!(
        e.message().contains("Content mismatch at offset 9437184"),
        "{e}"
    );
    // A different size is a difference too (strict mode).
    let longer = tmp.path().join("longer.raw");
    std::fs::copy(&raw, &longer).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&longer)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    assert!(qemu_img::compare(&longer, "raw", &raw, "raw").is_err());
}

#[test]
fn corrupted_qcow2_metadata_fails_check() {
    require_tools!(QEMU_IMG);
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("disk.raw");
    raw_disk(&raw);
    let qcow = tmp.path().join("disk.qcow2");
    convert(&raw, &qcow, "qcow2", &[]);
    let clean = std::fs::read(&qcow).unwrap();

    // Refcount of the header cluster (first 16-bit entry of the first refcount block) = 0.
    let rt = be64(&qcow, 48);
    let rb = be64(&qcow, rt);
    patch(&qcow, rb, &[0, 0]);
    let e = qemu_img::check(&qcow, "qcow2").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    assert!(e.message().contains("refcount=0"), "{e}");

    // L1 entry 0 points to an L2 table in the middle of the header cluster.
    std::fs::write(&qcow, &clean).unwrap();
    let l1 = be64(&qcow, 40);
    patch(&qcow, l1, &(0x8000_0000_0000_0000u64 | 0x200).to_be_bytes());
    let e = qemu_img::check(&qcow, "qcow2").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    println!("L1: {e}");
}
