//! `build` on the fixture closure, judged by independent tools: e2fsck, debugfs (extract the
//! root), Debian's Nix (`nix-store --verify --check-contents`, `-q --references/--requisites`
//! against the extracted root), sqlite3, byte equality of two builds, and a QEMU boot of the
//! image (direct kernel boot, the image as the root disk) to the stage-2 marker with the
//! manifest hash the host predicts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use imagetool::boot::Bootloader;
use imagetool::build::{ImageSpec, NoProgress, build};
use imagetool::nix::closure_info::parse_registration;
use imagetool::ptable::TableType;
use imagetool::vdisk::Format;
use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::tools::{DEBUGFS, E2FSCK, NIX_STORE, QEMU_SYSTEM, SEABIOS};
use imagetool_testutil::{Target, Tool, ext4, nix, require_tools};

mod common;

/// The fixture as a `table` image in `format`, with no bootloader.
fn spec(
    fx: &imagetool_fixture::Fixture,
    table: TableType,
    format: Format,
    out: &Path,
) -> ImageSpec {
    common::fixture_spec(fx, table, Bootloader::None, format, out)
}

const SQLITE3: Tool = Tool::new("sqlite3", "sqlite3");

/// `debugfs -R "rdump /DIR DEST"` for the image's top-level directories.
fn extract(image: &Path, dest: &Path) -> PathBuf {
    std::fs::create_dir_all(dest).unwrap();
    for dir in ["nix", "etc"] {
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(format!("rdump /{dir} {}", dest.display()))
            .arg(image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dest.to_path_buf()
}

fn nix_query(root: &Path, what: &str, path: &str) -> BTreeSet<String> {
    nix::query(root, what, path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn test_fixture_image_has_a_valid_nix_store() {
    require_tools!(E2FSCK, DEBUGFS, NIX_STORE, SQLITE3);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.img");
    build(
        &spec(&fx, TableType::None, Format::Raw, &img),
        &mut NoProgress,
    )
    .unwrap();
    ext4::assert_clean(&Target::whole(&img));

    let root = extract(&img, &tmp.path().join("root"));
    nix::assert_verified(&root);
    let db = root.join("nix/var/nix/db/db.sqlite");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("pragma integrity_check")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    assert_eq!(
        std::fs::read_to_string(root.join("nix/var/nix/db/schema")).unwrap(),
        "10"
    );
    assert!(!root.join("nix/var/nix/db/db.sqlite-wal").exists());
    assert!(root.join("etc/NIXOS").is_file() && !root.join("etc/machine-id").exists());
    assert_eq!(
        std::fs::read_link(root.join("nix/var/nix/profiles/system-1-link")).unwrap(),
        Path::new(&fx.toplevel)
    );

    // Every path's references, and the toplevel's requisites, as the registration says.
    let reg = std::fs::read_to_string(fx.dir.join("registration")).unwrap();
    let infos = parse_registration(&reg).unwrap();
    for i in &infos {
        let want: BTreeSet<String> = i.references.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            nix_query(&root, "--references", i.path.as_str()),
            want,
            "{}",
            i.path
        );
    }
    let all: BTreeSet<String> = infos.iter().map(|i| i.path.to_string()).collect();
    assert_eq!(nix_query(&root, "--requisites", &fx.toplevel), all);

    // The image's database, as Nix dumps it, is the registration, path for path.
    // (`--dump-db` prints the hash in hex: path, hash, size, deriver, count, references.)
    let dump = nix::dump_db(&root).unwrap();
    let mut lines = dump.lines();
    let mut dumped = Vec::new();
    while let Some(path) = lines.next() {
        let hash = lines
            .next()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        let size: u64 = lines.next().unwrap().parse().unwrap();
        let _deriver = lines.next().unwrap();
        let n: usize = lines.next().unwrap().parse().unwrap();
        let mut refs: Vec<String> = (0..n).map(|_| lines.next().unwrap().to_string()).collect();
        refs.sort();
        dumped.push((path.to_string(), hash, size, refs));
    }
    dumped.sort();
    let mut want: Vec<(String, String, u64, Vec<String>)> = infos
        .iter()
        .map(|i| {
            (
                i.path.to_string(),
                imagetool::nix::hex(&i.nar_hash),
                i.nar_size,
                i.references.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(dumped, want);
    // The grown fixture's shapes are there, as the registration says (nix-store --verify
    // above re-hashed each): stage 2 a single-file executable store path behind `init`.
    let init =
        std::fs::read_link(root.join(fx.toplevel.trim_start_matches('/')).join("init")).unwrap();
    let init = root.join(init.strip_prefix("/").unwrap());
    let meta = std::fs::symlink_metadata(&init).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert!(
        meta.is_file() && meta.permissions().mode() & 0o111 != 0,
        "{init:?}"
    );
}

#[test]
fn test_two_builds_are_byte_identical() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.img"), tmp.path().join("b.img"));
    build(
        &spec(&fx, TableType::Hybrid, Format::Raw, &a),
        &mut NoProgress,
    )
    .unwrap();
    let mut s = spec(&fx, TableType::Hybrid, Format::Raw, &b);
    s.threads = 1;
    build(&s, &mut NoProgress).unwrap();
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "images differ"
    );
    // Sparse: far fewer bytes allocated than the disk size.
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(&a).unwrap();
    assert!(
        md.blocks() * 512 < md.len() / 4,
        "{} of {}",
        md.blocks() * 512,
        md.len()
    );
}

#[test]
fn test_fixture_boots_from_the_built_image() {
    require_tools!(QEMU_SYSTEM, SEABIOS);
    let fx = imagetool_fixture::ensure().unwrap();
    let expected = fx.expected_manifest_sha256().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // A partitioned qcow2: stage 1 must find the root by its label inside the GPT.
    let img = tmp.path().join("a.qcow2");
    build(
        &spec(&fx, TableType::Hybrid, Format::Qcow2, &img),
        &mut NoProgress,
    )
    .unwrap();
    let cfg = BootConfig::new(Firmware::Kernel {
        kernel: fx.kernel(),
        initrd: Some(fx.initrd()),
        append: fx.kernel_cmdline(),
    })
    .drive(&img, DiskFormat::Qcow2);
    let r = boot::boot_and_expect(&cfg, &fx.toplevel, &expected).unwrap_or_else(|e| panic!("{e}"));
    println!("booted in {:.1?}", r.elapsed);
}

#[test]
fn test_fixture_boots_from_every_container_format() {
    require_tools!(QEMU_SYSTEM, SEABIOS);
    let fx = imagetool_fixture::ensure().unwrap();
    let expected = fx.expected_manifest_sha256().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let formats = [
        (Format::Qcow2Compressed, DiskFormat::Qcow2),
        (Format::Vdi, DiskFormat::Vdi),
        (Format::Vpc, DiskFormat::Vpc),
        (Format::VhdFixed, DiskFormat::Vpc),
        (Format::Vhdx, DiskFormat::Vhdx),
        (Format::Vmdk, DiskFormat::Vmdk),
        (Format::VmdkStream, DiskFormat::Vmdk),
    ];
    for (format, qemu) in formats {
        let img = tmp
            .path()
            .join(format!("nixos-{format}.{}", format.extension()));
        build(&spec(&fx, TableType::Hybrid, format, &img), &mut NoProgress).unwrap();
        let cfg = BootConfig::new(Firmware::Kernel {
            kernel: fx.kernel(),
            initrd: Some(fx.initrd()),
            append: fx.kernel_cmdline(),
        })
        .drive(&img, qemu);
        boot::boot_and_expect(&cfg, &fx.toplevel, &expected)
            .unwrap_or_else(|e| panic!("{format}: {e}"));
    }
}

#[test]
fn test_contents_channel_and_config_land_in_the_image() {
    require_tools!(E2FSCK, DEBUGFS);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(
        src.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(src.join("etc/group"), "root:x:0:\nusers:x:100:\n").unwrap();
    std::fs::create_dir_all(src.join("keys")).unwrap();
    std::fs::write(src.join("keys/a.pub"), "A").unwrap();
    std::fs::write(src.join("keys/b.pub"), "B").unwrap();
    let cfg = tmp.path().join("configuration.nix");
    std::fs::write(&cfg, "{ ... }: { }\n").unwrap();
    let img = tmp.path().join("c.img");
    let mut s = spec(&fx, TableType::None, Format::Raw, &img);
    let c = |t: &str| imagetool::nix::root::Content::parse(t).unwrap();
    s.contents = vec![
        c(&format!("{}:/etc/passwd", src.join("etc/passwd").display())),
        c(&format!("{}:/etc/group", src.join("etc/group").display())),
        c(&format!(
            "{}/*.pub:/home/alice/.ssh:0600:alice:users",
            src.join("keys").display()
        )),
    ];
    s.config_file = Some(cfg.clone());
    let busybox = fx
        .store_paths
        .iter()
        .find(|p| p.contains("busybox"))
        .unwrap()
        .clone();
    s.channel = Some(busybox.clone());
    build(&s, &mut NoProgress).unwrap();
    ext4::assert_clean(&Target::whole(&img));
    let stat = |p: &str| {
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(format!("stat {p}"))
            .arg(&img)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let key = stat("/home/alice/.ssh/a.pub");
    assert!(
        key.contains("User:  1000") && key.contains("Group:   100"),
        "{key}"
    );
    assert!(key.contains("Mode:  0600"), "{key}");
    assert!(stat("/home/alice/.ssh/b.pub").contains("Mode:  0600"));
    assert!(stat("/etc/nixos/configuration.nix").contains("Size: 13"));
    assert!(stat("/root/.nix-defexpr/channels").contains("Type: symlink"));
    let link = stat("/nix/var/nix/profiles/per-user/root/channels-1-link");
    assert!(link.contains(&busybox), "{link}");

    // onlyNixStore: the filesystem root is the store itself, labelled nix-store.
    let only = tmp.path().join("store.img");
    let mut s = spec(&fx, TableType::None, Format::Raw, &only);
    s.only_nix_store = true;
    build(&s, &mut NoProgress).unwrap();
    ext4::assert_clean(&Target::whole(&only));
    let sb = ext4::dumpe2fs(&Target::whole(&only)).unwrap();
    assert_eq!(sb.label(), Some("nix-store"));
    let base = fx.toplevel.trim_start_matches("/nix/store/");
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat /{base}/boot.json"))
        .arg(&only)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Mode:  0444"));
}
