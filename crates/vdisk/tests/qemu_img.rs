//! Oracle tests: every format checked, measured and compared by `qemu-img`.
//!
//! Oracles from the shared kit (imagetool-testutil): a missing qemu-img skips, or fails under
//! IMAGETOOL_REQUIRE_TOOLS=1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagetool_blockio::{SparseFile, WriteAt};
use imagetool_testutil::noise;
use imagetool_vdisk::{Compression, Format, Options, convert};

/// 256 MiB + 3.5 KiB: not a multiple of any cluster or block size.
const SIZE: u64 = (256 << 20) + 3584;

fn have_qemu_img() -> bool {
    imagetool_testutil::tools::require(&[imagetool_testutil::tools::QEMU_IMG])
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The test disk: text, noise, written zeros (allocated, all-zero clusters inside extents),
/// a 0xFF run, data in the last partial cluster, and big holes between.
fn test_disk(path: &Path) {
    let img = SparseFile::create(path, SIZE).unwrap();
    let text: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("line {i}: the quick brown fox {}\n", i * 7919 % 1000).into_bytes())
        .take(3 << 20)
        .collect();
    img.write_all_at(&text, (1 << 20) + 512).unwrap();
    img.write_all_at(&noise(7, 1 << 20), (40 << 20) + 4096)
        .unwrap();
    let mut mixed = vec![0u8; 3 << 20];
    mixed[(2 << 20) + 100..].copy_from_slice(&noise(9, (1 << 20) - 100));
    img.write_all_at(&mixed, 100 << 20).unwrap();
    img.write_all_at(&vec![0xff; 3 * 65536 + 100], 200 << 20)
        .unwrap();
    img.write_all_at(&noise(3, 5000), SIZE - 5000).unwrap();
    img.write_all_at(b"boot", 0).unwrap();
}

fn apparent(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Bytes in data extents (SEEK_DATA/SEEK_HOLE): what the file really stores, independent of
/// the host filesystem's own metadata blocks.
fn allocated(path: &Path) -> u64 {
    use imagetool_blockio::Extents;
    let f = SparseFile::open(path).unwrap();
    f.data_extents()
        .unwrap()
        .iter()
        .map(|r| r.end - r.start)
        .sum()
}

struct Case {
    format: Format,
    compression: Compression,
    /// `qemu-img convert` arguments producing the same kind of file.
    qemu_args: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let c = |format, qemu_args| Case {
        format,
        compression: Compression::Deflate,
        qemu_args,
    };
    vec![
        c(Format::Raw, &["-O", "raw"]),
        c(Format::Qcow2, &["-O", "qcow2"]),
        c(Format::Qcow2Compressed, &["-O", "qcow2", "-c"]),
        Case {
            format: Format::Qcow2Compressed,
            compression: Compression::Zstd,
            qemu_args: &["-O", "qcow2", "-c", "-o", "compression_type=zstd"],
        },
        c(Format::Vdi, &["-O", "vdi"]),
        c(Format::Vpc, &["-O", "vpc", "-o", "force_size"]),
        c(
            Format::VhdFixed,
            &["-O", "vpc", "-o", "subformat=fixed,force_size"],
        ),
        c(Format::Vhdx, &["-O", "vhdx"]),
        c(Format::Vmdk, &["-O", "vmdk"]),
        c(
            Format::VmdkStream,
            &["-O", "vmdk", "-o", "subformat=streamOptimized"],
        ),
    ]
}

fn out_name(case: &Case) -> String {
    let z = if case.compression == Compression::Zstd {
        "-zstd"
    } else {
        ""
    };
    format!("disk-{}{z}.{}", case.format, case.format.extension())
}

#[test]
fn test_every_format_passes_qemu_img_and_is_reproducible_and_small() {
    if !have_qemu_img() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    test_disk(&raw);
    // Azure's fixed VHD is a whole number of MiB: qemu gets the same padded input.
    let raw_mib = dir.path().join("disk-mib.raw");
    run(Command::new("cp")
        .args(["--sparse=always"])
        .arg(&raw)
        .arg(&raw_mib));
    run(Command::new("truncate")
        .arg(format!("--size={}", SIZE.div_ceil(1 << 20) << 20))
        .arg(&raw_mib));
    let src = imagetool_vdisk::open_raw(&raw).unwrap();
    let (a, b, q) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("q"),
    );
    for d in [&a, &b, &q] {
        std::fs::create_dir(d).unwrap();
    }
    let mut table = String::new();
    for case in cases() {
        let name = out_name(&case);
        let (pa, pb, pq): (PathBuf, PathBuf, PathBuf) =
            (a.join(&name), b.join(&name), q.join(&name));
        let opts = |threads| {
            let mut o = Options::default();
            o.compression = case.compression;
            o.threads = threads;
            o
        };
        let report = convert(&src, case.format, &pa, &opts(0)).unwrap();
        // A second conversion, single-threaded, must give the same bytes.
        convert(&src, case.format, &pb, &opts(1)).unwrap();
        assert!(
            std::fs::read(&pa).unwrap() == std::fs::read(&pb).unwrap(),
            "{name}: two conversions differ"
        );
        let qf = case.format.qemu_format();
        let want_size = if case.format == Format::VhdFixed {
            SIZE.div_ceil(1 << 20) << 20
        } else {
            SIZE
        };
        assert_eq!(report.virtual_size, want_size, "{name}");
        assert_eq!(report.file_size, apparent(&pa), "{name}");
        // qemu-img check (a no-op for the formats qemu cannot check: raw, vpc).
        imagetool_testutil::qemu_img::assert_check_clean(&pa, qf);
        let info = imagetool_testutil::qemu_img::info(&pa, Some(qf)).unwrap();
        assert_eq!(info.format, qf, "{name}");
        assert_eq!(info.virtual_size, want_size, "{name}");
        assert_ne!(info.dirty_flag, Some(true), "{name}: dirty");
        // qemu-img compare with the raw input (vhd-fixed: the MiB padding reads as zeros).
        let out = run(Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", qf])
            .arg(&raw)
            .arg(&pa));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Images are identical"),
            "{name}"
        );
        if case.format != Format::VhdFixed {
            imagetool_testutil::qemu_img::assert_identical(&raw, "raw", &pa, qf);
        }
        // The same conversion by qemu-img, for size.
        let input = if case.format == Format::VhdFixed {
            &raw_mib
        } else {
            &raw
        };
        run(Command::new("qemu-img")
            .args(["convert", "-f", "raw"])
            .args(case.qemu_args)
            .arg(input)
            .arg(&pq));
        let (ours, theirs) = (apparent(&pa), apparent(&pq));
        let (ours_alloc, theirs_alloc) = (allocated(&pa), allocated(&pq));
        table.push_str(&format!(
            "| {name} | {ours} | {theirs} | {} | {} |\n",
            ours_alloc / 1024,
            theirs_alloc / 1024
        ));
        assert!(ours <= theirs, "{name}: {ours} bytes, qemu-img {theirs}");
        assert!(
            ours_alloc <= theirs_alloc,
            "{name}: {ours_alloc} bytes allocated, qemu-img {theirs_alloc}"
        );
    }
    eprintln!(
        "| output | imagetool bytes | qemu-img bytes | imagetool KiB allocated | qemu-img KiB allocated |\n|---|---|---|---|---|\n{table}"
    );
}

#[test]
fn test_seed_changes_only_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    test_disk(&raw);
    let src = imagetool_vdisk::open_raw(&raw).unwrap();
    for f in [Format::Vdi, Format::Vpc, Format::Vhdx, Format::Vmdk] {
        let p1 = dir.path().join(format!("1.{}", f.extension()));
        let p2 = dir.path().join(format!("2/1.{}", f.extension()));
        std::fs::create_dir_all(p2.parent().unwrap()).unwrap();
        let mut seeded = Options::default();
        seeded.seed = Some([42; 16]);
        convert(&src, f, &p1, &Options::default()).unwrap();
        convert(&src, f, &p2, &seeded).unwrap();
        let (x, y) = (std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
        assert_eq!(x.len(), y.len(), "{f}");
        let differing = x.iter().zip(&y).filter(|(a, b)| a != b).count();
        assert!(
            differing > 0 && differing < 200,
            "{f}: {differing} bytes differ"
        );
    }
}

#[test]
fn test_bad_size_is_rejected_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("odd.raw");
    std::fs::write(&raw, vec![1u8; 1000]).unwrap();
    let err = imagetool_vdisk::open_raw(&raw).unwrap_err();
    assert_eq!(err.kind(), imagetool_vdisk::ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("odd.raw") && err.to_string().contains("512"),
        "{err}"
    );
    // Through the library with an in-memory source too.
    let mem = imagetool_blockio::MemImage::new(1000);
    let out = dir.path().join("o.qcow2");
    let err = convert(&mem, Format::Qcow2, &out, &Options::default()).unwrap_err();
    assert_eq!(err.kind(), imagetool_vdisk::ErrorKind::InvalidInput);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn test_qcow2_reader_round_trips_ours_and_qemus() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    test_disk(&raw);
    let want = std::fs::read(&raw).unwrap();
    let src = imagetool_vdisk::open_raw(&raw).unwrap();
    let mut inputs = Vec::new();
    for (name, compression, format) in [
        ("ours.qcow2", Compression::Deflate, Format::Qcow2),
        (
            "ours-c.qcow2",
            Compression::Deflate,
            Format::Qcow2Compressed,
        ),
        ("ours-z.qcow2", Compression::Zstd, Format::Qcow2Compressed),
    ] {
        let p = dir.path().join(name);
        let mut opts = Options::default();
        opts.compression = compression;
        convert(&src, format, &p, &opts).unwrap();
        inputs.push(p);
    }
    if have_qemu_img() {
        for (name, args) in [
            ("qemu-c.qcow2", &["-c"][..]),
            ("qemu-z.qcow2", &["-c", "-o", "compression_type=zstd"][..]),
        ] {
            let p = dir.path().join(name);
            run(Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "qcow2"])
                .args(args)
                .arg(&raw)
                .arg(&p));
            inputs.push(p);
        }
    }
    for p in inputs {
        let input = imagetool_vdisk::open_input(&p).unwrap();
        assert!(
            input.container() == imagetool_vdisk::Container::Qcow2,
            "{}",
            p.display()
        );
        let back = p.with_extension("img");
        let r = convert(&input, Format::Raw, &back, &Options::default()).unwrap();
        assert_eq!(r.virtual_size, SIZE);
        assert!(std::fs::read(&back).unwrap() == want, "{}", p.display());
    }
}

#[test]
fn test_qcow2_reader_rejects_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.qcow2");
    let mut h = vec![0u8; 4096];
    h[0..4].copy_from_slice(b"QFI\xfb");
    h[7] = 3;
    h[23] = 16;
    h[24..32].copy_from_slice(&(1u64 << 40).to_be_bytes());
    h[39] = 1; // l1_size 1: far too small for 1 TiB
    std::fs::write(&p, &h).unwrap();
    let err = imagetool_vdisk::open_input(&p).unwrap_err();
    assert_eq!(err.kind(), imagetool_vdisk::ErrorKind::Corrupt, "{err}");
    h[11] = 1; // a backing file
    std::fs::write(&p, &h).unwrap();
    let err = imagetool_vdisk::open_input(&p).unwrap_err();
    assert_eq!(err.kind(), imagetool_vdisk::ErrorKind::Unsupported, "{err}");
}
