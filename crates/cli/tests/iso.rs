//! `imagetool build --format iso`: the fixture's ISO and its `.iso.zst`, and the errors that
//! name a missing option.

use std::path::Path;
use std::process::{Command, Output};

use imagetool_testutil::tools::{GRUB_MKIMAGE, MKSQUASHFS, XORRISO};
use imagetool_testutil::{iso, require_tools};

fn imagetool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagetool"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run imagetool")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn test_format_iso_plain_and_zstd_hold_the_same_image() {
    require_tools!(MKSQUASHFS, GRUB_MKIMAGE, XORRISO);
    let fx = imagetool_fixture::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let squashfs = dir.path().join("store.squashfs");
    let reg = dir.path().join("nix-path-registration");
    std::fs::copy(fx.dir.join("registration"), &reg).unwrap();
    let mut sources = vec![reg];
    sources.extend(fx.store_paths.iter().map(|s| fx.host_path(s)));
    iso::mksquashfs(&sources, &squashfs).unwrap();
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
            "--store-image",
            p(&squashfs),
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
}

#[test]
fn test_format_iso_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.iso");
    let o = imagetool(&[
        "build",
        "--format",
        "iso",
        "--toplevel",
        "/nix/store/00000000000000000000000000000000-x",
        "--closure-info",
        p(dir.path()),
        "--output",
        p(&out),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--store-image"), "{err}");
    assert!(!out.exists());
}
