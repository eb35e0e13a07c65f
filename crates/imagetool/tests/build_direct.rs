//! `build` writes every format straight from the plans (blockio's Overlay), with no raw
//! intermediate: each container must be byte-identical to the raw build converted by
//! `vdisk::convert` from the file on disk, for every format and thread count; the output
//! directory holds only the output; a build that fails while the output is written leaves
//! nothing. `qemu-img compare` against the raw image is the independent check (and build.rs's
//! unit test compares the Overlay with the same parts written straight into a host file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use imagetool::boot::Bootloader;
use imagetool::build::{BuildError, ImageSpec, NoProgress, Phase, Progress, build};
use imagetool::ptable::TableType;
use imagetool::vdisk::{self, Format};
use imagetool_testutil::tools::QEMU_IMG;
use imagetool_testutil::{qemu_img, require_tools};

mod common;

/// The fixture as a hybrid image in `format` (the bootloader is set per test).
fn spec(fx: &imagetool_fixture::Fixture, format: Format, out: &Path) -> ImageSpec {
    common::fixture_spec(fx, TableType::Hybrid, Bootloader::None, format, out)
}

/// GRUB (BIOS, embedded after the table is written) and systemd-boot, so the overlay also
/// takes the boot code's writes over the table.
fn bootloader() -> Bootloader {
    Bootloader::Auto
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn test_direct_container_builds_equal_raw_then_convert() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("disk.img");
    let mut s = spec(&fx, Format::Raw, &raw);
    s.config_file = Some(fx.dir.join("registration"));
    s.bootloader = bootloader();
    build(&s, &mut NoProgress).unwrap();
    let src = vdisk::open_raw(&raw).unwrap();
    for format in Format::ALL.into_iter().filter(|f| *f != Format::Raw) {
        for threads in [0, 1] {
            if threads == 1 && !matches!(format, Format::Qcow2Compressed | Format::Vhdx) {
                continue;
            }
            let dir = tmp.path().join(format!("{format}-{threads}"));
            std::fs::create_dir(&dir).unwrap();
            let direct = dir.join(format!("nixos.{}", format.extension()));
            let mut s = spec(&fx, format, &direct);
            s.config_file = Some(fx.dir.join("registration"));
            s.bootloader = bootloader();
            s.threads = threads;
            let report = build(&s, &mut NoProgress).unwrap();
            assert!(report.timings.iter().any(|(p, _)| *p == Phase::Convert));
            // Only the output: no `.nixos.qcow2.raw` or temporary left beside it.
            assert_eq!(listing(&dir), vec![direct.clone()], "{format}");

            // The same file name (VMDK's descriptor names its own file).
            let converted = tmp
                .path()
                .join("converted")
                .join(direct.file_name().unwrap());
            std::fs::create_dir_all(converted.parent().unwrap()).unwrap();
            // The build puts the spec's timestamp in the container headers (VHD's footer).
            let mut opts = vdisk::Options::default();
            opts.threads = threads;
            opts.source_date_epoch = Some(s.timestamp);
            vdisk::convert(&src, format, &converted, &opts).unwrap();
            let (a, b) = (
                std::fs::read(&direct).unwrap(),
                std::fs::read(&converted).unwrap(),
            );
            assert!(
                a == b,
                "{format} threads {threads}: direct build ({} bytes) differs from raw + convert ({} bytes)",
                a.len(),
                b.len()
            );
            std::fs::remove_file(&converted).unwrap();
        }
    }
}

#[test]
fn test_direct_qcow2_compares_equal_to_the_raw_image() {
    require_tools!(QEMU_IMG);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("disk.img");
    build(&spec(&fx, Format::Raw, &raw), &mut NoProgress).unwrap();
    for format in [Format::Qcow2Compressed, Format::Vmdk] {
        let out = tmp.path().join(format!("disk.{format}"));
        build(&spec(&fx, format, &out), &mut NoProgress).unwrap();
        qemu_img::assert_identical(&out, format.qemu_format(), &raw, "raw");
        qemu_img::assert_check_clean(&out, format.qemu_format());
    }
}

/// Truncates a host file when the container phase begins: the file data is read only then.
struct ShrinkAt {
    phase: Phase,
    file: PathBuf,
}

impl Progress for ShrinkAt {
    fn started(&mut self, phase: Phase) {
        if phase == self.phase {
            std::fs::write(&self.file, b"short").unwrap();
        }
    }
    fn finished(&mut self, _: Phase, _: Duration, _: &str) {}
}

#[test]
fn test_a_source_that_changes_during_the_build_fails_it_and_leaves_nothing() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("configuration.nix");
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for (format, phase) in [
        (Format::Qcow2Compressed, Phase::Convert),
        (Format::Vdi, Phase::Convert),
        (Format::Raw, Phase::Write),
    ] {
        std::fs::write(&cfg, "{ ... }: { }\n".repeat(2000)).unwrap();
        let out = out_dir.join(format!("nixos.{}", format.extension()));
        let mut s = spec(&fx, format, &out);
        s.config_file = Some(cfg.clone());
        let err = build(
            &s,
            &mut ShrinkAt {
                phase,
                file: cfg.clone(),
            },
        )
        .unwrap_err();
        let chain = {
            let mut v = vec![err.to_string()];
            let mut e: &dyn std::error::Error = &err;
            while let Some(next) = e.source() {
                v.push(next.to_string());
                e = next;
            }
            v.join(": ")
        };
        assert!(
            chain.contains("configuration.nix"),
            "{format}: the error names the file: {chain}"
        );
        assert!(
            matches!(err, BuildError::Format(_) | BuildError::Ext4(_)),
            "{err:?}"
        );
        assert!(
            listing(&out_dir).is_empty(),
            "{format}: {:?}",
            listing(&out_dir)
        );
    }
}
