//! Without external tools: every qcow2 variant read back by imagetool's own reader equals the
//! source, for sources with awkward sizes and all-zero clusters inside written ranges.

use imagetool_blockio::{MemImage, ReadAt, WriteAt};
use imagetool_vdisk::{Compression, Format, Options, Qcow2Reader, convert};

fn source(size: u64) -> MemImage {
    let img = MemImage::new(size);
    let text: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("{i} ").into_bytes())
        .collect();
    img.write_all_at(&text[..100_000], 70_000).unwrap();
    img.write_all_at(&vec![0u8; 200_000], 400_000).unwrap();
    let noise = imagetool_testutil::noise(5, 150_000);
    img.write_all_at(&noise, 900_000).unwrap();
    img.write_all_at(b"tail", size - 4).unwrap();
    img
}

#[test]
fn test_qcow2_variants_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for size in [1_100_288u64, 65536 * 20 + 512, (2 << 20) + 3584] {
        let src = source(size);
        let want = src.to_vec().unwrap();
        for (format, compression) in [
            (Format::Qcow2, Compression::Deflate),
            (Format::Qcow2Compressed, Compression::Deflate),
            (Format::Qcow2Compressed, Compression::Zstd),
        ] {
            let p = dir
                .path()
                .join(format!("{size}-{format}-{compression:?}.qcow2"));
            let mut opts = Options::default();
            opts.compression = compression;
            opts.threads = 2;
            let r = convert(&src, format, &p, &opts).unwrap();
            assert_eq!(r.file_size, std::fs::metadata(&p).unwrap().len());
            let back = Qcow2Reader::open(&p).unwrap();
            assert_eq!(back.size(), src.size());
            let mut got = vec![0u8; want.len()];
            back.read_exact_at(&mut got, 0).unwrap();
            assert!(got == want, "{}", p.display());
        }
    }
}

#[test]
fn test_bad_level_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let src = MemImage::new(1 << 20);
    let mut opts = Options::default();
    opts.level = Some(12);
    let p = dir.path().join("x.qcow2");
    let err = convert(&src, Format::Qcow2Compressed, &p, &opts).unwrap_err();
    assert_eq!(err.kind(), imagetool_vdisk::ErrorKind::InvalidInput);
    assert!(!p.exists());
}

#[test]
fn test_too_large_for_vhd_is_unsupported_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = MemImage::new(3 << 40);
    for f in [Format::Vpc, Format::VhdFixed] {
        let p = dir.path().join(format!("big.{f}"));
        let err = convert(&src, f, &p, &Options::default()).unwrap_err();
        assert_eq!(err.kind(), imagetool_vdisk::ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("VHD"), "{err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
