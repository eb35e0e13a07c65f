//! The variants that are not disks, from the fixture closure, judged by the platform's tools:
//! GNU tar lists and extracts every tarball, and the extracted root tree equals the ext4 image
//! of the same closure as debugfs reads it (plus exactly the entries the nixpkgs module adds);
//! lxc's squashfs (unsquashfs) holds the same tree; PyYAML reads lxc's `metadata.yaml`;
//! `kexec_nixos` passes `sh -n` and, run against a stand-in `kexec`, loads the files it ships;
//! GNU cpio reads the store image appended to the netboot initrd, and the fixture boots from the
//! netboot kernel and initrd (QEMU direct kernel boot, SeaBIOS, TCG) with its store from there;
//! `--variant iso` is the `--format iso` image under iso-image.nix's name. Two builds (with
//! different thread counts) are byte-identical.

use std::path::{Path, PathBuf};
use std::process::Command;

use imagetool::blockio::Cancel;
use imagetool::boot::Bootloader;
use imagetool::build::{NoProgress, build};
use imagetool::iso::{IsoSpec, StoreImage, build_iso, registration};
use imagetool::nix::closure::ClosureInput;
use imagetool::ptable::TableType;
use imagetool::spec::Spec;
use imagetool::tarball::{TreeReport, TreeVariant, build_tree_variant};
use imagetool::vdisk::Format;
use imagetool_testutil::boot::{self, BootConfig, Firmware};
use imagetool_testutil::tools::{
    CPIO, DEBUGFS, PYTHON3_YAML, QEMU_SYSTEM, SEABIOS, SH, TAR, UNSQUASHFS, XZ, ZSTD,
};
use imagetool_testutil::tree::{CompareOptions, Kind, Tree};
use imagetool_testutil::{Target, command_ok, ext4, require_tools, squashfs};

mod common;

const EPOCH: i64 = 1_700_000_000;

fn spec(fx: &imagetool_fixture::Fixture, variant: TreeVariant, threads: usize) -> Spec {
    spec_with(fx, variant, threads, "")
}

fn spec_with(
    fx: &imagetool_fixture::Fixture,
    variant: TreeVariant,
    threads: usize,
    extra: &str,
) -> Spec {
    Spec::from_json(&format!(
        r#"{{"variant": "{v}", "toplevel": "{top}", "closureInfo": "{ci}", "storeRoot": "{sr}",
            "sourceDateEpoch": {EPOCH}, "threads": {threads}{extra}}}"#,
        v = variant.name(),
        top = fx.toplevel,
        ci = fx.dir.display(),
        sr = fx.store_root.display(),
    ))
    .unwrap()
}

/// Builds `variant` into `dir`; checks that only its files (and nix-support) are left.
fn build_into(
    fx: &imagetool_fixture::Fixture,
    variant: TreeVariant,
    dir: &Path,
    threads: usize,
) -> TreeReport {
    build_with(fx, variant, dir, threads, "")
}

fn build_with(
    fx: &imagetool_fixture::Fixture,
    variant: TreeVariant,
    dir: &Path,
    threads: usize,
    extra: &str,
) -> TreeReport {
    let tb = spec_with(fx, variant, threads, extra)
        .resolve_tree_variant(dir, 0)
        .unwrap()
        .unwrap();
    let r = build_tree_variant(&tb, &mut NoProgress, &Cancel::new()).unwrap();
    let mut left: Vec<String> = Vec::new();
    for e in walkdir(dir) {
        left.push(e.strip_prefix(dir).unwrap().display().to_string());
    }
    left.sort();
    let mut want: Vec<String> = r
        .files
        .iter()
        .map(|f| f.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    want.sort();
    assert_eq!(left, want, "{variant}: only the artifacts are left");
    r
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn tar(args: &[&std::ffi::OsStr]) -> String {
    let out = command_ok(Command::new("tar").args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Extracts `archive` with GNU tar (as root: numeric owners and modes kept; the compressor
/// detected by tar from the magic) into `dest`.
fn extract(archive: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    tar(&[
        "--numeric-owner".as_ref(),
        "--same-permissions".as_ref(),
        "-xf".as_ref(),
        archive.as_os_str(),
        "-C".as_ref(),
        dest.as_os_str(),
    ]);
}

/// The ext4 image of the same closure (no table, no bootloader), read back with debugfs.
fn ext4_tree(fx: &imagetool_fixture::Fixture, dir: &Path) -> Tree {
    let img = dir.join("root.img");
    let spec = common::fixture_spec(fx, TableType::None, Bootloader::None, Format::Raw, &img);
    build(&spec, &mut NoProgress).unwrap();
    ext4::read_tree(&Target::whole(&img)).unwrap()
}

#[test]
fn test_root_tarballs_are_the_ext4_root_tree_plus_the_modules_entries() {
    require_tools!(TAR, XZ, ZSTD, DEBUGFS, UNSQUASHFS);
    if !is_root() {
        eprintln!("skipped: extracting owners needs root");
        return;
    }
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let disk = ext4_tree(&fx, tmp.path());
    let registration_file = std::fs::read(fx.dir.join("registration")).unwrap();
    let init = format!("{}/init", fx.toplevel);
    // lxc as upstream (xz); docker and proxmox-lxc with zstd (archiveCompression), which
    // also keeps this test's compression time down.
    let zstd = r#", "archiveCompression": "zstd""#;
    for (variant, extra, ext, added) in [
        (
            TreeVariant::Lxc,
            "",
            "xz",
            &["/sbin", "/proc", "/sys", "/dev", "/nix-path-registration"][..],
        ),
        (
            TreeVariant::Docker,
            zstd,
            "zst",
            &[
                "/sbin",
                "/proc",
                "/sys",
                "/dev",
                "/nix-path-registration",
                "/init",
            ][..],
        ),
        (
            TreeVariant::ProxmoxLxc,
            zstd,
            "zst",
            &["/sbin", "/etc/systemd", "/nix-path-registration"][..],
        ),
    ] {
        let out = tmp.path().join(variant.name());
        let r = build_with(&fx, variant, &out, 2, extra);
        let archive = &r.files[0];
        assert!(
            archive.ends_with(format!(
                "tarball/nixos-image-{}-x86_64-linux.tar.{ext}",
                std::fs::read_to_string(fx.host_path(&fx.toplevel).join("nixos-version"))
                    .unwrap()
                    .trim()
            )),
            "{}",
            archive.display()
        );
        // GNU tar's listing: no ./ prefix, numeric owners, sorted names.
        let list = tar(&[
            "--numeric-owner".as_ref(),
            "-tvf".as_ref(),
            archive.as_os_str(),
        ]);
        assert!(list.contains(&format!("sbin/init -> {init}")), "{variant}");
        let names: Vec<&str> = list
            .lines()
            .map(|l| l.split_whitespace().nth(5).unwrap_or(""))
            .collect();
        assert!(names.iter().all(|n| !n.starts_with("./") && !n.is_empty()));
        assert!(
            list.contains(" 0/30000 "),
            "the store's group, numeric: {variant}"
        );
        let x = tmp.path().join(format!("{}-x", variant.name()));
        extract(archive, &x);
        let got = Tree::from_dir(&x).unwrap();
        let mut ignore: Vec<String> = added.iter().map(|s| (*s).to_string()).collect();
        ignore.push("/lost+found".into());
        let opts = CompareOptions {
            root: false,
            ignore,
            ..CompareOptions::default()
        };
        disk.compare(&got, &opts, &format!("{variant} tarball vs the ext4 image"))
            .unwrap();
        // What the module adds, exactly.
        let e = |p: &str| got.get(p).unwrap_or_else(|| panic!("{variant}: no {p}"));
        assert_eq!(
            e("/sbin/init").kind,
            Kind::Symlink(init.clone().into_bytes())
        );
        assert_eq!(
            e("/nix-path-registration").kind,
            Kind::file(&registration_file),
            "{variant}: the closureInfo's registration"
        );
        for d in added
            .iter()
            .filter(|d| ["/proc", "/sys", "/dev"].contains(d))
        {
            assert_eq!((e(d).kind.clone(), e(d).mode), (Kind::Dir, 0o755), "{d}");
        }
        if variant == TreeVariant::ProxmoxLxc {
            assert_eq!(e("/etc/systemd/network").kind, Kind::Dir);
        }
        if variant == TreeVariant::Docker {
            assert_eq!(e("/init").kind, Kind::Symlink(init.clone().into_bytes()));
        }
        let mtime = std::fs::symlink_metadata(x.join("etc/NIXOS"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            mtime
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            EPOCH as u64
        );

        if variant == TreeVariant::Lxc {
            // The squashfs form holds the same tree.
            let sq = squashfs::read_tree(&r.files[1]).unwrap();
            got.compare(
                &sq,
                &CompareOptions {
                    root: false,
                    ..CompareOptions::default()
                },
                "lxc squashfs vs tarball",
            )
            .unwrap();
            // Byte-identical with another thread count.
            let again = build_into(&fx, variant, &tmp.path().join("lxc-again"), 1);
            for (a, b) in r.files.iter().zip(&again.files).take(2) {
                assert!(
                    std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
                    "{} differs between builds",
                    a.display()
                );
            }
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

#[test]
fn test_lxc_metadata_is_yaml_with_the_fields_lxc_image_import_reads() {
    require_tools!(TAR, XZ, PYTHON3_YAML);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let r = build_into(&fx, TreeVariant::LxcMetadata, &tmp.path().join("m"), 2);
    let list = tar(&["-tJf".as_ref(), r.files[0].as_os_str()]);
    assert_eq!(list, "metadata.yaml\n");
    let x = tmp.path().join("x");
    extract(&r.files[0], &x);
    let py = "import json, sys, yaml\n\
              d = yaml.safe_load(open(sys.argv[1]))\n\
              print(json.dumps(d))\n";
    let out = command_ok(
        Command::new("python3")
            .args(["-c", py])
            .arg(x.join("metadata.yaml")),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["architecture"], "x86_64", "{v}");
    assert_eq!(v["creation_date"], EPOCH, "{v}");
    let label = std::fs::read_to_string(fx.host_path(&fx.toplevel).join("nixos-version")).unwrap();
    let desc = v["properties"]["description"].as_str().unwrap();
    assert!(
        desc.contains(label.trim()) && desc.contains("x86_64-linux"),
        "{v}"
    );
    assert_eq!(v["properties"]["os"], "nixos", "{v}");
    assert!(v["properties"]["release"].is_string(), "{v}");
    assert!(v["templates"].as_object().unwrap().is_empty(), "{v}");
}

/// The store image appended to `initrd` (after `original`, padded to 4 bytes), extracted with
/// GNU cpio into `dest`.
fn appended_store(initrd: &Path, original: &[u8], dest: &Path) -> PathBuf {
    let bytes = std::fs::read(initrd).unwrap();
    assert!(
        bytes.starts_with(original),
        "the system's initrd comes first"
    );
    let at = original.len().div_ceil(4) * 4;
    assert!(bytes[original.len()..at].iter().all(|b| *b == 0));
    std::fs::create_dir_all(dest).unwrap();
    let cpio = dest.join("appended.cpio");
    std::fs::write(&cpio, &bytes[at..]).unwrap();
    let out = command_ok(
        Command::new("cpio")
            .args(["-idv", "--no-absolute-filenames", "-F"])
            .arg(&cpio)
            .current_dir(dest),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("nix-store.squashfs")
    );
    dest.join("nix-store.squashfs")
}

#[test]
fn test_netboot_and_kexec_carry_the_store_and_boot_the_fixture() {
    require_tools!(TAR, XZ, CPIO, SH, UNSQUASHFS, QEMU_SYSTEM, SEABIOS);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let net = build_into(&fx, TreeVariant::Netboot, &tmp.path().join("net"), 2);
    let [kernel, initrd, ipxe] = [&net.files[0], &net.files[1], &net.files[2]];
    assert!(kernel.ends_with("bzImage") && initrd.ends_with("initrd"));
    // The toplevel's kernel and initrd links point into the store (on the host: its root).
    let top = fx.host_path(&fx.toplevel);
    let linked = |name: &str| {
        let target = std::fs::read_link(top.join(name)).unwrap();
        std::fs::read(fx.host_path(&target.to_string_lossy())).unwrap()
    };
    assert!(std::fs::read(kernel).unwrap() == linked("kernel"));
    let original = linked("initrd");

    // The store image: what the registration lists, and nix-path-registration.
    let sq = appended_store(initrd, &original, &tmp.path().join("cpio"));
    let listed = squashfs::read_tree(&sq).unwrap();
    for p in &fx.store_paths {
        let name = format!("/{}", p.trim_start_matches("/nix/store/"));
        assert!(listed.get(&name).is_some(), "{name} in the store image");
    }
    let reg = registration(
        &ClosureInput::ClosureInfo(fx.dir.clone()),
        &fx.store_root,
        &fx.toplevel,
    )
    .unwrap();
    assert_eq!(
        listed.get("/nix-path-registration").unwrap().kind,
        Kind::file(reg.as_bytes())
    );

    // netboot.ipxe as netboot.nix writes it.
    let script = std::fs::read_to_string(ipxe).unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(lines[0], "#!ipxe");
    let kline = lines.iter().find(|l| l.starts_with("kernel ")).unwrap();
    let words: Vec<&str> = kline.split_whitespace().collect();
    assert_eq!(words[1], "bzImage");
    assert_eq!(words[2], format!("init={}/init", fx.toplevel));
    assert!(words.contains(&"initrd=initrd") && words.last() == Some(&"${cmdline}"));
    assert!(lines.contains(&"initrd initrd") && lines.last() == Some(&"boot"));

    // kexec: the tarball, its script, and the files the script loads.
    let kx = build_into(&fx, TreeVariant::Kexec, &tmp.path().join("kexec"), 1);
    let list = tar(&["-tJf".as_ref(), kx.files[0].as_os_str()]);
    assert_eq!(
        list,
        "kexec\nkexec/bzImage\nkexec/cmdline\nkexec/initrd\nkexec_nixos\n"
    );
    let x = tmp.path().join("kexec-x");
    extract(&kx.files[0], &x);
    command_ok(Command::new("sh").arg("-n").arg(x.join("kexec_nixos")));
    // Two builds (netboot's with 2 threads, kexec's with 1) give the same initrd.
    assert!(
        std::fs::read(x.join("kexec/initrd")).unwrap() == std::fs::read(initrd).unwrap(),
        "kexec's initrd is netboot's"
    );
    // Run it with a stand-in kexec that records what it was asked to load.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = tmp.path().join("kexec.log");
    std::fs::write(
        bin.join("kexec"),
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> {}\necho -- >> {}\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("kexec"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command_ok(
        Command::new("sh")
            .arg(x.join("kexec_nixos"))
            .env("PATH", path),
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    let cmdline = std::fs::read_to_string(x.join("kexec/cmdline")).unwrap();
    let x_abs = x.canonicalize().unwrap();
    let want = format!(
        "--load\n{k}\n--initrd={i}\n--command-line={c}\n--\n-e\n--\n",
        k = x_abs.join("kexec/bzImage").display(),
        i = x_abs.join("kexec/initrd").display(),
        c = cmdline.trim_end()
    );
    assert_eq!(calls, want);
    assert!(cmdline.starts_with(&format!("init={}/init", fx.toplevel)));

    // The fixture boots from the netboot kernel and initrd: no disk, the store from the
    // squashfs inside the initrd.
    let append: Vec<&str> = words[2..]
        .iter()
        .filter(|w| **w != "initrd=initrd" && **w != "${cmdline}")
        .copied()
        .collect();
    let mut cfg = BootConfig::new(Firmware::Kernel {
        kernel: kernel.clone(),
        initrd: Some(initrd.clone()),
        append: append.join(" "),
    });
    cfg.memory_mib = 1024;
    let expected = imagetool_fixture::store_manifest_sha256_with(
        &fx.store_root,
        &[("nix-path-registration", reg.as_bytes(), 0o444)],
    )
    .unwrap();
    let r = boot::boot_and_expect(&cfg, &fx.toplevel, &expected).unwrap();
    assert!(
        r.log
            .contains("netboot, the store from /nix-store.squashfs"),
        "{}",
        r.log
    );
    eprintln!("netboot: marker after {:.0?}", r.elapsed);
}

#[test]
fn test_iso_variant_is_the_format_iso_image_under_its_upstream_name() {
    require_tools!(UNSQUASHFS);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let label = std::fs::read_to_string(fx.host_path(&fx.toplevel).join("nixos-version")).unwrap();
    let r = build_into(&fx, TreeVariant::Iso, &tmp.path().join("v"), 2);
    let want = format!("iso/nixos-{}-x86_64-linux.iso", label.trim());
    assert!(r.files[0].ends_with(&want), "{}", r.files[0].display());
    let direct = tmp.path().join("direct.iso");
    let mut spec = IsoSpec::new(
        fx.toplevel.clone(),
        ClosureInput::ClosureInfo(fx.dir.clone()),
        direct.clone(),
    );
    spec.store_root = fx.store_root.clone();
    spec.store_image = StoreImage::native_default();
    spec.epoch = EPOCH.into();
    spec.timeout = 10;
    build_iso(&spec).unwrap();
    assert!(std::fs::read(&r.files[0]).unwrap() == std::fs::read(&direct).unwrap());
}

#[test]
fn test_bad_inputs_name_what_is_wrong_and_leave_nothing() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // No toplevel.
    let mut s = spec(&fx, TreeVariant::Lxc, 1);
    s.toplevel = None;
    let out = tmp.path().join("a");
    let tb = s.resolve_tree_variant(&out, 0).unwrap().unwrap();
    let e = build_tree_variant(&tb, &mut NoProgress, &Cancel::new()).unwrap_err();
    assert!(e.to_string().contains("toplevel"), "{e}");
    assert_eq!(e.kind(), imagetool::ErrorKind::InvalidInput);
    // A bad archive compression is named.
    let mut s = spec(&fx, TreeVariant::Docker, 1);
    s.archive_compression = Some("lz5".into());
    let e = s.resolve_tree_variant(&out, 0).unwrap_err();
    assert!(e.to_string().contains("archiveCompression"), "{e}");
    // Cancelled before it starts: nothing is left.
    let tb = spec(&fx, TreeVariant::Docker, 1)
        .resolve_tree_variant(&out, 0)
        .unwrap()
        .unwrap();
    let c = Cancel::new();
    c.cancel();
    let e = build_tree_variant(&tb, &mut NoProgress, &c).unwrap_err();
    assert_eq!(e.kind(), imagetool::ErrorKind::Interrupted, "{e}");
    assert!(walkdir(&out).is_empty(), "{:?}", walkdir(&out));
}
