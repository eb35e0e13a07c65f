//! The boot matrix: every make-disk-image table type built from the fixture closure with its
//! bootloader installed natively, booted in QEMU by its own firmware (SeaBIOS, OVMF; direct
//! kernel boot for `none`) to the fixture's stage-2 marker, the manifest hash equal to the
//! one the host predicts. Every image also passes e2fsck (root), fsck.fat (ESP, BOOT),
//! sfdisk --json and sgdisk -v (tables), holds the bootloader files where they belong (mdir,
//! debugfs), and a second build is byte-identical.
//!
//! Cells run in a few threads (each QEMU is one TCG thread); a failing cell does not hide
//! the others: the test reports every failure at the end.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use imagetool::boot::Bootloader;
use imagetool::build::{BuildReport, ImageSpec, NoProgress, build};
use imagetool::ptable::{Role, TableType};
use imagetool::vdisk::Format;
use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::same_bytes;
use imagetool_testutil::tools::GRUB_SCRIPT_CHECK;
use imagetool_testutil::tools::{
    BLKID, DEBUGFS, E2FSCK, FSCK_FAT, MDIR, OVMF_CODE, QEMU_SYSTEM, SEABIOS, SFDISK, SGDISK,
};
use imagetool_testutil::{Target, ext4, fat, ptable, require_tools};

mod common;

/// The fixture as a raw `table` image with `bootloader`.
fn spec(
    fx: &imagetool_fixture::Fixture,
    table: TableType,
    bootloader: Bootloader,
    out: &Path,
) -> ImageSpec {
    common::fixture_spec(fx, table, bootloader, Format::Raw, out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fw {
    SeaBios,
    Ovmf,
    Kernel,
}

struct Cell {
    table: TableType,
    bootloader: Bootloader,
    firmwares: &'static [Fw],
    /// (partition role, path) that must exist: on a FAT partition (mdir) or, for `Root`, in the
    /// ext4 root (debugfs).
    files: &'static [(Role, &'static str)],
}

const SD_ESP: &[(Role, &str)] = &[
    (Role::Esp, "EFI/BOOT/BOOTX64.EFI"),
    (Role::Esp, "EFI/systemd/systemd-bootx64.efi"),
    (Role::Esp, "loader/loader.conf"),
    (Role::Esp, "loader/entries/nixos-generation-1.conf"),
];

fn cells() -> Vec<Cell> {
    vec![
        Cell {
            table: TableType::Legacy,
            bootloader: Bootloader::Auto,
            firmwares: &[Fw::SeaBios],
            files: &[
                (Role::Root, "boot/grub/grub.cfg"),
                (Role::Root, "boot/grub/i386-pc/normal.mod"),
            ],
        },
        Cell {
            table: TableType::LegacyBoot,
            bootloader: Bootloader::Auto,
            firmwares: &[Fw::SeaBios],
            files: &[(Role::Boot, "grub/grub.cfg"), (Role::Boot, "grub/grubenv")],
        },
        Cell {
            table: TableType::LegacyGpt,
            bootloader: Bootloader::Grub,
            firmwares: &[Fw::SeaBios],
            files: &[(Role::Root, "boot/grub/grub.cfg")],
        },
        Cell {
            table: TableType::Efi,
            bootloader: Bootloader::SystemdBoot,
            firmwares: &[Fw::Ovmf],
            files: SD_ESP,
        },
        Cell {
            table: TableType::Efi,
            bootloader: Bootloader::Grub,
            firmwares: &[Fw::Ovmf],
            files: &[
                (Role::Esp, "EFI/BOOT/BOOTX64.EFI"),
                (Role::Esp, "grub/grub.cfg"),
                (Role::Esp, "grub/x86_64-efi/normal.mod"),
            ],
        },
        Cell {
            table: TableType::EfiXbootldr,
            bootloader: Bootloader::Auto,
            firmwares: &[Fw::Ovmf],
            files: &[
                (Role::Esp, "EFI/BOOT/BOOTX64.EFI"),
                (Role::Esp, "loader/loader.conf"),
                (Role::Boot, "loader/entries/nixos-generation-1.conf"),
            ],
        },
        Cell {
            table: TableType::EfiXbootldr,
            bootloader: Bootloader::Grub,
            firmwares: &[Fw::Ovmf],
            files: &[
                (Role::Esp, "EFI/BOOT/BOOTX64.EFI"),
                (Role::Boot, "grub/grub.cfg"),
            ],
        },
        Cell {
            table: TableType::Hybrid,
            bootloader: Bootloader::Auto,
            firmwares: &[Fw::Ovmf, Fw::SeaBios],
            files: &[
                (Role::Esp, "loader/entries/nixos-generation-1.conf"),
                (Role::Esp, "grub/grub.cfg"),
                (Role::Esp, "grub/i386-pc/normal.mod"),
            ],
        },
        Cell {
            table: TableType::Hybrid,
            bootloader: Bootloader::Grub,
            firmwares: &[Fw::Ovmf],
            files: &[
                (Role::Esp, "EFI/BOOT/BOOTX64.EFI"),
                (Role::Esp, "grub/i386-pc/normal.mod"),
                (Role::Esp, "grub/x86_64-efi/normal.mod"),
            ],
        },
        Cell {
            table: TableType::None,
            bootloader: Bootloader::Auto,
            firmwares: &[Fw::Kernel],
            files: &[],
        },
    ]
}

fn name(c: &Cell) -> String {
    format!("{}/{}", c.table.name(), c.bootloader)
}

fn range(r: &BuildReport, role: Role) -> Option<(u64, u64)> {
    r.layout.partition(role).map(|p| {
        let b = p.byte_range();
        (b.start, b.end - b.start)
    })
}

fn check_files(img: &Path, r: &BuildReport, cell: &Cell) -> Result<(), String> {
    for (role, path) in cell.files {
        if *role == Role::Root {
            let (o, l) = range(r, Role::Root).ok_or("no root partition")?;
            let mat = Target::range(img, o, l)
                .materialize()
                .map_err(|e| e.to_string())?;
            let out = Command::new("debugfs")
                .arg("-R")
                .arg(format!("stat /{path}"))
                .arg(mat.path())
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.contains("Type: regular") {
                return Err(format!(
                    "root: /{path} missing: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        } else {
            let (o, l) = range(r, *role).ok_or(format!("no {role:?} partition"))?;
            let list = fat::list(&Target::range(img, o, l)).map_err(|e| e.to_string())?;
            let found = list.keys().any(|k| k.trim_start_matches('/') == *path);
            if !found {
                return Err(format!("{role:?}: {path} missing; have {:?}", list.keys()));
            }
        }
    }
    Ok(())
}

fn oracles(img: &Path, r: &BuildReport) -> Result<(), String> {
    let e = |e: imagetool_testutil::Error| e.to_string();
    if r.layout.table != TableType::None {
        let t = ptable::read(&Target::whole(img)).map_err(e)?;
        if t.partitions.len() != r.layout.partitions.len() {
            return Err(format!("sfdisk sees {} partitions", t.partitions.len()));
        }
        if r.layout.table == TableType::Hybrid {
            // hybrid's BIOS boot partition (sectors 34..=2048, make-disk-image's layout) draws
            // sgdisk's "doesn't end on a 2-sector boundary" caution: only that is allowed.
            let out = Command::new("sgdisk")
                .arg("-v")
                .arg(img)
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout);
            let cautions = text.matches("Caution").count();
            let expected = text.contains("Caution: Partition 2 doesn't end on a 2-sector");
            if !out.status.success()
                || !text.contains("No problems found")
                || cautions != usize::from(expected)
            {
                return Err(format!("sgdisk -v: {text}"));
            }
        } else if r.layout.table.is_gpt() {
            ptable::sgdisk_verify(&Target::whole(img)).map_err(e)?;
        }
    }
    let (o, l) = range(r, Role::Root).unwrap_or((0, r.disk_size));
    ext4::fsck(&Target::range(img, o, l)).map_err(e)?;
    for role in [Role::Esp, Role::Boot] {
        if let Some((o, l)) = range(r, role) {
            fat::fsck(&Target::range(img, o, l)).map_err(e)?;
        }
    }
    Ok(())
}

fn run_cell(
    fx: &imagetool_fixture::Fixture,
    expected: &str,
    dir: &Path,
    cell: &Cell,
) -> Result<String, String> {
    let file = name(cell).replace(['/', '+'], "-");
    let img = dir.join(format!("{file}.img"));
    let again = dir.join(format!("{file}.again.img"));
    let r = build(
        &spec(fx, cell.table, cell.bootloader, &img),
        &mut NoProgress,
    )
    .map_err(|e| format!("build: {e:?}"))?;
    build(
        &spec(fx, cell.table, cell.bootloader, &again),
        &mut NoProgress,
    )
    .map_err(|e| format!("second build: {e:?}"))?;
    same_bytes(&img, &again)?;
    std::fs::remove_file(&again).map_err(|e| e.to_string())?;
    oracles(&img, &r)?;
    check_files(&img, &r, cell)?;
    let mut log = String::new();
    for fw in cell.firmwares {
        let firmware = match fw {
            Fw::SeaBios => Firmware::SeaBios,
            Fw::Ovmf => Firmware::Ovmf,
            Fw::Kernel => Firmware::Kernel {
                kernel: fx.kernel(),
                initrd: Some(fx.initrd()),
                append: fx.kernel_cmdline(),
            },
        };
        let cfg = BootConfig::new(firmware).drive(&img, DiskFormat::Raw);
        let mut cfg = cfg;
        cfg.stop_when.extend(boot::markers(&fx.toplevel, expected));
        let res = boot::boot(&cfg).map_err(|e| format!("{fw:?} boot: {e}"))?;
        boot::expect_markers(&res, &fx.toplevel, expected).map_err(|e| {
            format!(
                "{fw:?} boot: {e}\n--- serial log (tail) ---\n{}\n--- qemu stderr ---\n{}",
                imagetool_testutil::tail(&res.log, 40),
                res.qemu_stderr
            )
        })?;
        log.push_str(&format!(
            "{fw:?} {:.1}s ({:?}) ",
            res.elapsed.as_secs_f64(),
            res.accel
        ));
    }
    std::fs::remove_file(&img).map_err(|e| e.to_string())?;
    Ok(log)
}

#[test]
fn test_every_layout_boots_with_its_bootloader() {
    require_tools!(
        QEMU_SYSTEM,
        SEABIOS,
        OVMF_CODE,
        E2FSCK,
        DEBUGFS,
        FSCK_FAT,
        MDIR,
        SFDISK,
        SGDISK
    );
    let fx = imagetool_fixture::ensure().unwrap();
    let expected = fx.expected_manifest_sha256().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // IMAGETOOL_BOOT_CELLS=legacy/auto,hybrid/grub boots only the named cells (local runs).
    let only = std::env::var("IMAGETOOL_BOOT_CELLS").ok();
    let cells: Vec<Cell> = cells()
        .into_iter()
        .filter(|c| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == name(c)))
        })
        .collect();
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<(String, Result<String, String>)>> = Mutex::new(Vec::new());
    let threads: usize = std::env::var("IMAGETOOL_BOOT_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(cell) = cells.get(i) else { break };
                    let r = run_cell(&fx, &expected, tmp.path(), cell);
                    results.lock().unwrap().push((name(cell), r));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut failed = Vec::new();
    for (n, r) in &results {
        match r {
            Ok(log) => eprintln!("boot matrix: {n:<28} ok   {log}"),
            Err(e) => {
                eprintln!("boot matrix: {n:<28} FAIL {e}");
                failed.push(n.clone());
            }
        }
    }
    assert_eq!(results.len(), cells.len());
    assert!(failed.is_empty(), "failed cells: {failed:?}");
}

/// A copy of the fixture's store whose toplevel bootspec gains a specialisation `debug` (same
/// kernel and initrd, one more kernel parameter, its own sort key). Not NAR-hash consistent any
/// more: the build turns the store check off (`verify: false`).
fn store_with_specialisation(fx: &imagetool_fixture::Fixture, dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join("store");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&fx.store_root)
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let top = root.join(fx.toplevel.trim_start_matches('/'));
    std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = top.join("boot.json");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let mut child = serde_json::json!({
        "org.nixos.bootspec.v1": doc["org.nixos.bootspec.v1"].clone(),
        "org.nixos.systemd-boot": { "sortKey": "zz" },
    });
    child["org.nixos.bootspec.v1"]["kernelParams"]
        .as_array_mut()
        .unwrap()
        .push("debug".into());
    doc["org.nixos.specialisation.v1"] = serde_json::json!({ "debug": child });
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    root
}

#[test]
fn test_specialisation_entries_for_systemd_boot_and_grub() {
    require_tools!(MDIR, FSCK_FAT, BLKID, GRUB_SCRIPT_CHECK);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_specialisation(&fx, tmp.path());
    let img = tmp.path().join("hybrid.img");
    let mut s = spec(&fx, TableType::Hybrid, Bootloader::Auto, &img);
    s.store_root = store;
    s.verify = false;
    let r = build(&s, &mut NoProgress).unwrap();
    let (o, l) = range(&r, Role::Esp).unwrap();
    let esp = Target::range(&img, o, l);
    fat::assert_clean(&esp);
    let tree: std::collections::BTreeMap<String, Option<Vec<u8>>> = fat::read_tree(&esp)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches('/').to_string(), v))
        .collect();
    let text = |p: &str| {
        String::from_utf8(
            tree.get(p)
                .unwrap_or_else(|| panic!("{p} missing"))
                .clone()
                .unwrap(),
        )
        .unwrap()
    };
    let kernel = std::fs::read(fx.kernel()).unwrap();
    let initrd = std::fs::read(fx.initrd()).unwrap();

    // systemd-boot: both entries, each naming a kernel and initrd that are on the ESP.
    let main = text("loader/entries/nixos-generation-1.conf");
    let debug = text("loader/entries/nixos-generation-1-specialisation-debug.conf");
    assert!(main.starts_with("title NixOS\nsort-key nixos\n"), "{main}");
    assert!(
        debug.starts_with("title NixOS (debug)\nsort-key zz\n"),
        "{debug}"
    );
    let params = fx.kernel_cmdline();
    assert!(main.contains(&format!("\noptions {params}\n")), "{main}");
    assert!(debug.ends_with(" debug\n"), "{debug}");
    for entry in [&main, &debug] {
        for (key, want) in [("linux", &kernel), ("initrd", &initrd)] {
            let path = entry
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key} /")))
                .unwrap();
            assert_eq!(tree[path].as_deref(), Some(want.as_slice()), "{key} {path}");
        }
    }
    assert!(text("loader/loader.conf").contains("default nixos-generation-1.conf\n"));

    // GRUB (hybrid's BIOS side, on the ESP): grub-script-check accepts grub.cfg; the default,
    // the specialisation and the configurations submenu all boot copied kernels on the ESP.
    let cfg = text("grub/grub.cfg");
    let cfg_file = tmp.path().join("grub.cfg");
    std::fs::write(&cfg_file, &cfg).unwrap();
    let out = Command::new("grub-script-check")
        .arg(&cfg_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cfg.contains("menuentry \"NixOS - Default\""), "{cfg}");
    assert!(
        cfg.contains("menuentry \"NixOS - (debug - 2023-11-14 - 25.11.19700101.imagetool)\""),
        "{cfg}"
    );
    assert!(
        cfg.contains("submenu \"NixOS - All configurations\""),
        "{cfg}"
    );
    let linux: Vec<&str> = cfg
        .lines()
        .filter_map(|l| l.trim().strip_prefix("linux "))
        .collect();
    assert_eq!(linux.len(), 3, "{cfg}");
    assert!(linux[1].ends_with(" debug"), "{cfg}");
    for l in &linux {
        // `<kernel> init=<toplevel>/init console=ttyS0 …`: the fixture's own command line.
        assert!(l.contains(&format!(" {params}")), "{l}");
        let k = l.split(' ').next().unwrap();
        let p = k.strip_prefix("($drive1)/").unwrap();
        assert_eq!(tree[p].as_deref(), Some(kernel.as_slice()), "{k}");
    }
    for l in cfg.lines().filter_map(|l| l.trim().strip_prefix("initrd ")) {
        let p = l.strip_prefix("($drive1)/").unwrap();
        assert_eq!(tree[p].as_deref(), Some(initrd.as_slice()), "{l}");
    }
    // The filesystem GRUB searches for is the ESP, by the UUID blkid reads from it.
    let out = Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "UUID", "-O", &o.to_string()])
        .arg(&img)
        .output()
        .unwrap();
    let uuid = String::from_utf8(out.stdout).unwrap();
    assert!(
        cfg.contains(&format!("search --set=drive1 --fs-uuid {}\n", uuid.trim())),
        "{uuid}: {cfg}"
    );
}
