//! `imagetool build --format iso`: the fixture's ISO (native store image) and its `.iso.zst`,
//! `--store-image` and `--squashfs-comp`, and the errors that name a bad option.

use std::path::Path;
use std::process::Output;

use imagetool_testutil::Imagetool;
use imagetool_testutil::tools::{GRUB_MKIMAGE, UNSQUASHFS, XORRISO};
use imagetool_testutil::{iso, require_tools, squashfs};

fn imagetool(args: &[&str]) -> Output {
    Imagetool::new(env!("CARGO_BIN_EXE_imagetool"))
        .epoch(1_700_000_000)
        .run(args)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn test_format_iso_plain_and_zstd_hold_the_same_image() {
    require_tools!(GRUB_MKIMAGE, XORRISO, UNSQUASHFS);
    let fx = imagetool_fixture::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let iso_out = dir.path().join("nixos.iso");
    let zst_out = dir.path().join("nixos.iso.zst");
    for (out, extra) in [(&iso_out, None), (&zst_out, Some("zstd"))] {
        let mut args = vec![
            "build",
            "--format",
            "iso",
            "--toplevel",
            &fx.toplevel,
            "--closure-info",
            p(&fx.dir),
            "--store-root",
            p(&fx.store_root),
            "--output",
            p(out),
        ];
        if let Some(c) = extra {
            args.extend(["--compression", c]);
        }
        let o = imagetool(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains("volume nixos-25.11-x86_64"), "{stdout}");
    }
    let plain = std::fs::read(&iso_out).unwrap();
    let unpacked = zstd::decode_all(std::fs::File::open(&zst_out).unwrap()).unwrap();
    assert!(plain == unpacked, "the .iso.zst holds another image");
    let r = iso::boot_report(&iso_out).unwrap();
    assert_eq!(r.images.len(), 2, "{}", r.text);
    // Nothing but the outputs is left beside them (the store image's temporary is gone).
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["nixos.iso", "nixos.iso.zst"]);

    // The store image inside, and --squashfs-comp: an lz4 one (fast), then that image given back
    // with --store-image lands in the ISO byte for byte.
    let inner = |iso_path: &Path| {
        let l = &iso::listing(iso_path, false).unwrap()["/nix-store.squashfs"];
        let start = l.extent.unwrap() as usize * 2048;
        std::fs::read(iso_path).unwrap()[start..start + l.size as usize].to_vec()
    };
    let sq = dir.path().join("store.squashfs");
    std::fs::write(&sq, inner(&iso_out)).unwrap();
    assert_eq!(squashfs::stat(&sq).unwrap().compression(), Some("zstd"));
    let lz4_out = dir.path().join("lz4.iso");
    let given_out = dir.path().join("given.iso");
    let base = [
        "build",
        "--format",
        "iso",
        "--toplevel",
        &fx.toplevel,
        "--closure-info",
        p(&fx.dir),
        "--store-root",
        p(&fx.store_root),
    ];
    let o = imagetool(
        &[
            &base[..],
            &["--squashfs-comp", "lz4", "--output", p(&lz4_out)],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lz4 = dir.path().join("lz4.squashfs");
    std::fs::write(&lz4, inner(&lz4_out)).unwrap();
    let st = squashfs::stat(&lz4).unwrap();
    assert_eq!(st.compression(), Some("lz4"), "{}", st.text);
    assert!(squashfs::listing(&lz4).unwrap() == squashfs::listing(&sq).unwrap());
    let o = imagetool(
        &[
            &base[..],
            &["--store-image", p(&lz4), "--output", p(&given_out)],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(inner(&given_out) == std::fs::read(&lz4).unwrap());
}

#[test]
fn test_format_iso_names_a_bad_store_image_option() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.iso");
    let base = [
        "build",
        "--format",
        "iso",
        "--toplevel",
        "/nix/store/00000000000000000000000000000000-x",
        "--closure-info",
        p(dir.path()),
        "--output",
        p(&out),
    ];
    for (extra, needle) in [
        (&["--squashfs-comp", "lzo"][..], "--squashfs-comp"),
        (
            &["--store-image", "/nonexistent", "--squashfs-level", "3"][..],
            "--store-image",
        ),
    ] {
        let o = imagetool(&[&base[..], extra].concat());
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{err}");
        assert!(!out.exists());
    }
    let o = imagetool(&base);
    assert!(!o.status.success());
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
