//! Every image variant built from the fixture closure: the artifact has its nixpkgs module's
//! name and extension; unpacked with the platform's own tools (GNU tar, gzip, bzip2, zstd, a
//! VMA reader written here from Proxmox's `vma_spec.txt`, the OVF's VMDK through qemu-img)
//! the disk inside is byte-identical to the `--format raw` image of the same settings; a
//! second build is byte-identical; the OVF is well-formed XML whose file sizes and manifest
//! digests match; azure's VHD is a whole number of MiB; amazon's image-info.json has every
//! field nixpkgs writes. Boots (TCG, one at a time): azure generation 1 (SeaBIOS) and 2
//! (OVMF), hyperv's VHDX (OVMF) and virtualbox's VMDK (SeaBIOS), to the fixture's marker.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use imagetool::build::{NoProgress, build};
use imagetool::spec::Spec;
use imagetool::variant::{Packaging, Variant, build_variant};
use imagetool::vdisk::Format;
use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::tools::{
    BZIP2, GZIP, OVMF_CODE, QEMU_IMG, QEMU_SYSTEM, SEABIOS, TAR, XMLLINT, ZSTD,
};
use imagetool_testutil::{command_ok, qemu_img, require_tools, run_ok};
use sha2::{Digest, Sha256};

/// The fixture spec for `variant` with small additional space (the variant's fixed sizes stay).
fn spec_json(fx: &imagetool_fixture::Fixture, variant: Variant, extra: &str) -> String {
    format!(
        r#"{{"variant": "{v}", "toplevel": "{top}", "closureInfo": "{ci}", "storeRoot": "{sr}",
            "additionalSpace": "16M", "sourceDateEpoch": 1700000000, "threads": 2{extra}}}"#,
        v = variant.name(),
        top = fx.toplevel,
        ci = fx.dir.display(),
        sr = fx.store_root.display(),
    )
}

/// Builds the variant into `dir`; returns the artifact.
fn build_into(fx: &imagetool_fixture::Fixture, variant: Variant, dir: &Path) -> PathBuf {
    let spec = Spec::from_json(&spec_json(fx, variant, "")).unwrap();
    let vb = spec.resolve_variant(dir, 0).unwrap().unwrap();
    let r = build_variant(&vb, &mut NoProgress).unwrap();
    // Nothing but the artifact and nix-support is left in the directory.
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let art = r
        .artifact
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut want = vec![art, "nix-support".to_string()];
    want.sort();
    assert_eq!(names, want, "{variant}");
    r.artifact
}

/// The same settings as `variant`, as a plain raw image (the reference disk).
fn build_raw(fx: &imagetool_fixture::Fixture, variant: Variant, out: &Path) {
    let mut m: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&spec_json(fx, variant, "")).unwrap();
    imagetool::variant::fill_defaults(&mut m).unwrap();
    m.remove("variant");
    m.insert("format".into(), "raw".into());
    m.insert("output".into(), out.display().to_string().into());
    let spec = Spec::from_json(&serde_json::Value::Object(m).to_string()).unwrap();
    build(&spec.resolve(0).unwrap(), &mut NoProgress).unwrap();
}

fn same_files(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut x).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut y[..n]).unwrap();
        if x[..n] != y[..n] {
            return false;
        }
    }
}

fn sha256_hex(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `tool -dc file > out`.
fn decompress(tool: &str, file: &Path, out: &Path) {
    let o = command_ok(Command::new(tool).arg("-dc").arg(file));
    std::fs::write(out, o.stdout).unwrap();
}

// ---- a VMA reader written from vma_spec.txt (no code shared with the writer) ----

struct VmaDevice {
    name: String,
    size: u64,
}

struct Vma {
    configs: BTreeMap<String, Vec<u8>>,
    devices: BTreeMap<u8, VmaDevice>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn md5_zeroed(b: &[u8], at: usize) -> [u8; 16] {
    use md5::Digest as _;
    let mut c = b.to_vec();
    c[at..at + 16].fill(0);
    md5::Md5::digest(&c).into()
}

/// Reads a whole VMA, writing device 1's clusters into `out` (a file of the device's size),
/// and checking every header checksum and that each cluster appears exactly once.
fn read_vma(vma: &[u8], out: &Path) -> Vma {
    assert_eq!(&vma[0..4], b"VMA\0", "magic");
    assert_eq!(be32(vma, 4), 1, "version");
    let uuid = &vma[8..24];
    let blob_off = be32(vma, 48) as usize;
    let blob_size = be32(vma, 52) as usize;
    let header_size = be32(vma, 56) as usize;
    assert_eq!(header_size % 512, 0);
    assert_eq!(blob_off + blob_size, header_size);
    let head = &vma[..header_size];
    assert_eq!(md5_zeroed(head, 32), head[32..48], "header md5");
    let blob = |ptr: u32| -> Vec<u8> {
        let p = blob_off + ptr as usize;
        let len = u16::from_le_bytes([vma[p], vma[p + 1]]) as usize;
        vma[p + 2..p + 2 + len].to_vec()
    };
    let cstr = |ptr: u32| {
        let mut b = blob(ptr);
        assert_eq!(b.pop(), Some(0), "NUL-terminated name");
        String::from_utf8(b).unwrap()
    };
    let mut configs = BTreeMap::new();
    for i in 0..256 {
        let (n, d) = (be32(head, 2044 + 4 * i), be32(head, 3068 + 4 * i));
        if n != 0 {
            configs.insert(cstr(n), blob(d));
        }
    }
    let mut devices = BTreeMap::new();
    for id in 1..256usize {
        let at = 4096 + 32 * id;
        let name_ptr = be32(head, at);
        if name_ptr != 0 {
            devices.insert(
                id as u8,
                VmaDevice {
                    name: cstr(name_ptr),
                    size: be64(head, at + 8),
                },
            );
        }
    }
    assert_eq!(devices.len(), 1, "one device");
    let dev_size = devices[&1].size;
    let f = std::fs::File::create(out).unwrap();
    f.set_len(dev_size).unwrap();
    let clusters = dev_size.div_ceil(65536);
    let mut seen = vec![false; clusters as usize];
    let mut pos = header_size;
    while pos < vma.len() {
        let ext = &vma[pos..pos + 512];
        assert_eq!(&ext[0..4], b"VMAE", "extent magic at {pos}");
        assert_eq!(&ext[8..24], uuid, "extent uuid");
        assert_eq!(md5_zeroed(ext, 24), ext[24..40], "extent md5 at {pos}");
        let block_count = u16::from_be_bytes([ext[6], ext[7]]) as usize;
        let mut data = pos + 512;
        let mut blocks = 0;
        for i in 0..59 {
            let info = &ext[40 + 8 * i..48 + 8 * i];
            let mask = u16::from_be_bytes([info[0], info[1]]);
            let dev = info[3];
            let cluster = be32(info, 4) as u64;
            if dev == 0 {
                continue;
            }
            assert_eq!(dev, 1);
            assert!(!seen[cluster as usize], "cluster {cluster} twice");
            seen[cluster as usize] = true;
            for b in 0..16u64 {
                if mask & (1 << b) != 0 {
                    let off = cluster * 65536 + b * 4096;
                    let n = 4096.min(dev_size - off) as usize;
                    std::os::unix::fs::FileExt::write_all_at(&f, &vma[data..data + n], off)
                        .unwrap();
                    data += 4096;
                    blocks += 1;
                }
            }
        }
        assert_eq!(blocks, block_count, "block_count at {pos}");
        pos = data;
    }
    assert_eq!(pos, vma.len());
    assert!(seen.iter().all(|s| *s), "every cluster is listed");
    Vma { configs, devices }
}

/// Checks an unpacked OVA/box directory: descriptor sizes, manifest digests, XML, the VMDK.
fn check_ovf(dir: &Path, stem: &str, raw: &Path) {
    let ovf = dir.join(format!("{stem}.ovf"));
    let vmdk = dir.join(format!("{stem}-disk001.vmdk"));
    let mf = std::fs::read_to_string(dir.join(format!("{stem}.mf"))).unwrap();
    for file in [&ovf, &vmdk] {
        let name = file.file_name().unwrap().to_string_lossy();
        let line = format!("SHA256({name})= {}", sha256_hex(file));
        assert!(mf.lines().any(|l| l == line), "{line} in {mf}");
    }
    let xml = std::fs::read_to_string(&ovf).unwrap();
    let size = std::fs::metadata(&vmdk).unwrap().len();
    assert!(
        xml.contains(&format!(
            "ovf:href=\"{stem}-disk001.vmdk\" ovf:size=\"{size}\""
        )),
        "{xml}"
    );
    let virtual_size = std::fs::metadata(raw).unwrap().len();
    assert!(xml.contains(&format!("ovf:capacity=\"{virtual_size}\"")));
    // Valid against the DMTF OVF envelope schema (vendored; crates/vdisk/tests/ovf-schema).
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vdisk/tests/ovf-schema/ovf.xsd");
    run_ok(
        XMLLINT,
        &[
            "--noout".as_ref(),
            "--nonet".as_ref(),
            "--schema".as_ref(),
            schema.as_os_str(),
            ovf.as_os_str(),
        ],
    );
    qemu_img::assert_check_clean(&vmdk, "vmdk");
    qemu_img::assert_identical(raw, "raw", &vmdk, "vmdk");
}

/// Unpacks `artifact` by the platform's rules and compares the disk inside with `raw`.
fn check_artifact(variant: Variant, artifact: &Path, raw: &Path, work: &Path) {
    let p = variant.profile();
    match p.packaging {
        Packaging::Disk => {
            let f = p.format.qemu_format();
            if f != "vpc" {
                qemu_img::assert_check_clean(artifact, f);
            }
            qemu_img::assert_identical(raw, "raw", artifact, f);
        }
        Packaging::Compressed(codec) => {
            let out = work.join("unpacked");
            let tool = match codec {
                imagetool::archive::Codec::Gzip => "gzip",
                imagetool::archive::Codec::Bzip2 => "bzip2",
                imagetool::archive::Codec::Zstd => "zstd",
                imagetool::archive::Codec::Xz => "xz",
            };
            decompress(tool, artifact, &out);
            if p.format == Format::Raw {
                assert!(same_files(raw, &out), "{variant}: unpacked differs");
            } else {
                qemu_img::assert_identical(raw, "raw", &out, p.format.qemu_format());
            }
        }
        Packaging::SparseTarGz => {
            let list = run_ok(TAR, &["-tzf".as_ref(), artifact.as_os_str()]);
            assert_eq!(list.stdout, "disk.raw\n", "{list}");
            let x = work.join("x");
            std::fs::create_dir_all(&x).unwrap();
            run_ok(
                TAR,
                &[
                    "-xSzf".as_ref(),
                    artifact.as_os_str(),
                    "-C".as_ref(),
                    x.as_os_str(),
                ],
            );
            assert!(same_files(raw, &x.join("disk.raw")), "{variant}");
        }
        Packaging::VmaZst => {
            let vma = work.join("a.vma");
            decompress("zstd", artifact, &vma);
            let bytes = std::fs::read(&vma).unwrap();
            let out = work.join("vma.raw");
            let v = read_vma(&bytes, &out);
            assert_eq!(v.devices[&1].name, "drive-virtio0");
            let conf = String::from_utf8(v.configs["qemu-server.conf"].clone()).unwrap();
            assert!(conf.starts_with("# generated by NixOS\n"), "{conf}");
            assert!(conf.contains("\nbios: seabios\n"), "{conf}");
            assert!(
                conf.ends_with("#qmdump#map:virtio0:drive-virtio0:local-lvm:raw:\n"),
                "{conf}"
            );
            assert!(same_files(raw, &out), "{variant}: VMA disk differs");
        }
        Packaging::Ova => {
            let list = run_ok(TAR, &["-tf".as_ref(), artifact.as_os_str()]);
            let names: Vec<&str> = list.stdout.lines().collect();
            let stem = artifact.file_stem().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                names,
                [
                    format!("{stem}.ovf"),
                    format!("{stem}-disk001.vmdk"),
                    format!("{stem}.mf")
                ],
                "the descriptor comes first"
            );
            let x = work.join("x");
            std::fs::create_dir_all(&x).unwrap();
            run_ok(
                TAR,
                &[
                    "-xf".as_ref(),
                    artifact.as_os_str(),
                    "-C".as_ref(),
                    x.as_os_str(),
                ],
            );
            check_ovf(&x, &stem, raw);
        }
        Packaging::VagrantBox => {
            let x = work.join("x");
            std::fs::create_dir_all(&x).unwrap();
            run_ok(
                TAR,
                &[
                    "-xzf".as_ref(),
                    artifact.as_os_str(),
                    "-C".as_ref(),
                    x.as_os_str(),
                ],
            );
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(x.join("metadata.json")).unwrap())
                    .unwrap();
            assert_eq!(meta["provider"], "virtualbox");
            assert!(x.join("Vagrantfile").is_file());
            check_ovf(&x, "box", raw);
        }
    }
}

#[test]
fn test_every_variant_unpacks_to_the_raw_disk_and_rebuilds_identically() {
    require_tools!(QEMU_IMG, TAR, GZIP, BZIP2, ZSTD, XMLLINT);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for variant in Variant::ALL {
        let work = tmp.path().join(variant.name());
        let (a, b) = (work.join("a"), work.join("b"));
        let art_a = build_into(&fx, variant, &a);
        let art_b = build_into(&fx, variant, &b);
        let name = art_a.file_name().unwrap().to_string_lossy().into_owned();
        let base = format!(
            "nixos-image-{}-x86_64-linux",
            std::fs::read_to_string(fx.host_path(&fx.toplevel).join("nixos-version"))
                .unwrap()
                .trim()
        );
        let want = variant.file_name(&base, None);
        let want = if variant == Variant::Proxmox {
            want.replace(
                &base,
                &base
                    .replace("nixos-image-", "nixos-")
                    .replace("-x86_64-linux", ""),
            )
        } else {
            want
        };
        if name != want {
            failures.push(format!("{variant}: artifact {name}, want {want}"));
        }
        if !same_files(&art_a, &art_b) {
            failures.push(format!("{variant}: two builds differ"));
        }
        let raw = work.join("ref.img");
        build_raw(&fx, variant, &raw);
        check_artifact(variant, &art_a, &raw, &work);
        let products = std::fs::read_to_string(a.join("nix-support/hydra-build-products")).unwrap();
        assert!(
            products.starts_with("file ")
                && products.trim_end().ends_with(&*art_a.to_string_lossy()),
            "{products}"
        );
        match variant {
            Variant::Azure => {
                let len = std::fs::metadata(&art_a).unwrap().len();
                assert_eq!((len - 512) % (1 << 20), 0, "azure: {len} bytes");
                let info = qemu_img::info(&art_a, Some("vpc")).unwrap();
                assert_eq!(info.virtual_size % (1 << 20), 0);
            }
            Variant::Amazon => {
                let info: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(a.join("nix-support/image-info.json")).unwrap(),
                )
                .unwrap();
                let bytes = (4096u64 << 20).to_string();
                let file = art_a.display().to_string();
                assert_eq!(
                    info["label"],
                    base.trim_start_matches("nixos-image-")
                        .trim_end_matches("-x86_64-linux")
                );
                assert_eq!(info["system"], "x86_64-linux");
                assert_eq!(info["boot_mode"], "legacy-bios");
                assert_eq!(info["logical_bytes"], bytes.as_str());
                assert_eq!(info["file"], file.as_str());
                assert_eq!(info["disks"]["root"]["logical_bytes"], bytes.as_str());
                assert_eq!(info["disks"]["root"]["file"], file.as_str());
            }
            _ => {}
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn test_overrides_win_over_the_variant_and_errors_name_the_key() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // azure generation 2: the efi table; digital-ocean's bzip2 compressionMethod.
    let spec = Spec::from_json(&spec_json(
        &fx,
        Variant::Azure,
        r#", "partitionTableType": "efi""#,
    ))
    .unwrap();
    let vb = spec.resolve_variant(tmp.path(), 0).unwrap().unwrap();
    assert_eq!(vb.image.layout.table.name(), "efi");
    assert_eq!(vb.image.format, Format::VhdFixed);
    let spec = Spec::from_json(&spec_json(
        &fx,
        Variant::DigitalOcean,
        r#", "archiveCompression": "bzip2""#,
    ))
    .unwrap();
    let vb = spec.resolve_variant(tmp.path(), 0).unwrap().unwrap();
    let r = build_variant(&vb, &mut NoProgress).unwrap();
    assert!(
        r.artifact.to_string_lossy().ends_with(".qcow2.bz2"),
        "{r:?}"
    );
    let e = Spec::from_json(r#"{"variant": "ec2"}"#).unwrap_err();
    assert_eq!(e.key(), Some("variant"), "{e}");
    let e = Spec::from_json(&spec_json(
        &fx,
        Variant::Linode,
        r#", "archiveCompression": "lz4""#,
    ))
    .unwrap()
    .resolve_variant(tmp.path(), 0)
    .unwrap_err();
    assert_eq!(e.key(), Some("archiveCompression"), "{e}");
}

#[test]
fn test_variant_disks_boot_to_the_marker() {
    require_tools!(QEMU_SYSTEM, SEABIOS, OVMF_CODE, QEMU_IMG, TAR);
    let fx = imagetool_fixture::ensure().unwrap();
    let manifest = fx.expected_manifest_sha256().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(Variant, &str, Firmware, DiskFormat); 4] = [
        (Variant::Azure, "", Firmware::SeaBios, DiskFormat::Vpc),
        (
            Variant::Azure,
            r#", "partitionTableType": "efi""#,
            Firmware::Ovmf,
            DiskFormat::Vpc,
        ),
        (Variant::Hyperv, "", Firmware::Ovmf, DiskFormat::Vhdx),
        (Variant::Virtualbox, "", Firmware::SeaBios, DiskFormat::Vmdk),
    ];
    let mut failures = Vec::new();
    for (i, (variant, extra, fw, fmt)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("{i}"));
        let spec = Spec::from_json(&spec_json(&fx, variant, extra)).unwrap();
        let vb = spec.resolve_variant(&dir, 0).unwrap().unwrap();
        let r = build_variant(&vb, &mut NoProgress).unwrap();
        let disk = if variant == Variant::Virtualbox {
            let x = dir.join("x");
            std::fs::create_dir_all(&x).unwrap();
            run_ok(
                TAR,
                &[
                    "-xf".as_ref(),
                    r.artifact.as_os_str(),
                    "-C".as_ref(),
                    x.as_os_str(),
                ],
            );
            let stem = r
                .artifact
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            x.join(format!("{stem}-disk001.vmdk"))
        } else {
            r.artifact.clone()
        };
        let cfg = BootConfig::new(fw).drive(&disk, fmt);
        if let Err(e) = boot::boot_and_expect(&cfg, &fx.toplevel, &manifest) {
            failures.push(format!("{variant}{extra}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn test_several_formats_from_one_plan_equal_separate_builds_and_fail_together() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let json = |format: &str, out: &Path| {
        format!(
            r#"{{"toplevel": "{top}", "closureInfo": "{ci}", "storeRoot": "{sr}",
                "additionalSpace": "16M", "sourceDateEpoch": 1700000000, "threads": 2,
                "format": "{format}", "output": "{out}"}}"#,
            top = fx.toplevel,
            ci = fx.dir.display(),
            sr = fx.store_root.display(),
            out = out.display(),
        )
    };
    let many = tmp.path().join("many");
    std::fs::create_dir(&many).unwrap();
    let spec = Spec::from_json(&json("qcow2,vhdx,vmdk", &many.join("nixos.qcow2"))).unwrap();
    let image = spec.resolve(0).unwrap();
    assert_eq!(image.also.len(), 2);
    let report = build(&image, &mut NoProgress).unwrap();
    // The manifest names every output with its digest, sizes and the partitions' identities.
    let outputs: Vec<imagetool::manifest::Output> = ["qcow2", "vhdx", "vmdk"]
        .iter()
        .map(|f| imagetool::manifest::Output {
            file: many.join(format!("nixos.{f}")),
            format: (*f).to_string(),
            variant: None,
        })
        .collect();
    let m = imagetool::manifest::manifest(&report, &outputs).unwrap();
    for (o, out) in outputs.iter().zip(m["outputs"].as_array().unwrap()) {
        assert_eq!(out["sha256"], sha256_hex(&o.file).as_str());
        assert_eq!(out["size"], std::fs::metadata(&o.file).unwrap().len());
        let info = qemu_img::info(&o.file, Some(o.format.as_str())).unwrap();
        assert_eq!(out["virtualSize"], info.virtual_size);
    }
    assert_eq!(m["table"], "legacy");
    assert_eq!(m["partitions"][0]["role"], "root");
    assert_eq!(
        m["partitions"][0]["start"],
        report.layout.partitions[0].first_lba * 512
    );
    assert_eq!(m["rootFsUuid"], "f222513b-ded1-49fa-b591-20ce86a2fe7f");
    for (format, ext) in [("qcow2", "qcow2"), ("vhdx", "vhdx"), ("vmdk", "vmdk")] {
        // The same file name (a VMDK descriptor names its own file).
        let dir = tmp.path().join(format!("one-{ext}"));
        std::fs::create_dir(&dir).unwrap();
        let one = dir.join(format!("nixos.{ext}"));
        let spec = Spec::from_json(&json(format, &one)).unwrap();
        build(&spec.resolve(0).unwrap(), &mut NoProgress).unwrap();
        assert!(
            same_files(&one, &many.join(format!("nixos.{ext}"))),
            "{format}: one plan and a separate build differ"
        );
    }
    // Two formats with one extension are refused, naming the key.
    let e = Spec::from_json(&json("vmdk,vmdk-stream", &many.join("x.vmdk")))
        .unwrap()
        .resolve(0)
        .unwrap_err();
    assert_eq!(e.key(), Some("format"), "{e}");
    // One output that cannot be written: none of them is left.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(bad.join("nixos.vhdx/blocker")).unwrap();
    let spec = Spec::from_json(&json("qcow2,vhdx", &bad.join("nixos.qcow2"))).unwrap();
    assert!(build(&spec.resolve(0).unwrap(), &mut NoProgress).is_err());
    assert!(
        !bad.join("nixos.qcow2").exists(),
        "the qcow2 was left behind"
    );
}
