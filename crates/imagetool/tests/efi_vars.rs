//! `touchEFIVars`: the `efi-vars.fd` imagetool writes beside the image, judged by
//! `virt-fw-vars` (python3-virt-firmware, an independent edk2 varstore reader) and by OVMF
//! itself: an `efi` image whose removable-media fallback loader was deleted boots to the
//! fixture's marker only through the `Boot0000` entry in our variable store.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use imagetool::boot::Bootloader;
use imagetool::build::{BuildReport, ImageSpec, NoProgress, build};
use imagetool::efi_vars::EfiVars;
use imagetool::ptable::{Role, TableType};
use imagetool::vdisk::Format;
use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::tools::{MDEL, MDIR, OVMF_CODE, OVMF_VARS, QEMU_SYSTEM, VIRT_FW_VARS};
use imagetool_testutil::{Target, fat, ptable, require_tools};

mod common;

const TEMPLATE: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

fn spec(
    fx: &imagetool_fixture::Fixture,
    table: TableType,
    bootloader: Bootloader,
    out: &Path,
    template: Option<&Path>,
) -> ImageSpec {
    let mut s = common::fixture_spec(fx, table, bootloader, Format::Raw, out);
    s.efi_vars = Some(EfiVars {
        template: template.map(Path::to_path_buf),
        output: out.with_file_name("efi-vars.fd"),
    });
    s
}

/// `virt-fw-vars -i FILE --output-json`: the variables as the tool reads them,
/// `(name, guid, attributes, data hex)`.
fn virt_fw_vars(file: &Path) -> Vec<(String, String, u64, String)> {
    let json = file.with_extension("json");
    let out = Command::new(VIRT_FW_VARS.name)
        .arg("-i")
        .arg(file)
        .arg("--output-json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "virt-fw-vars: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    v["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["guid"].as_str().unwrap().to_string(),
                v["attr"].as_u64().unwrap(),
                v["data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The `EFI_LOAD_OPTION` bytes virt-firmware's own encoder makes for an active entry `title`
/// → `HD(nr, start, size, guid, GPT)/File(path)/End` (Debian's python3 with
/// python3-virt-firmware).
fn virt_fw_boot_entry(
    title: &str,
    nr: usize,
    start: u64,
    size: u64,
    guid: &str,
    path: &str,
) -> String {
    let script = r#"
import sys
from virt.firmware.efi import bootentry, devpath, ucs16
title, nr, start, size, guid, path = sys.argv[1:]
hd = devpath.DevicePathElem()
hd.set_gpt(int(nr), int(start), int(size), guid)
fp = devpath.DevicePathElem()
fp.set_filepath(path)
dp = devpath.DevicePath()
dp.append(hd)
dp.append(fp)
e = bootentry.BootEntry(attr=bootentry.LOAD_OPTION_ACTIVE, title=ucs16.from_string(title), devicepath=dp)
print(bytes(e).hex())
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, title])
        .args([nr.to_string(), start.to_string(), size.to_string()])
        .args([guid, path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3 virt.firmware: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn esp(r: &BuildReport) -> (u64, u64) {
    let p = r.layout.partition(Role::Esp).unwrap();
    let b = p.byte_range();
    (b.start, b.end - b.start)
}

#[test]
fn test_efi_vars_hold_bootctls_entry_as_virt_fw_vars_reads_it() {
    require_tools!(VIRT_FW_VARS, OVMF_VARS);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let template = Path::new(TEMPLATE);
    for (table, bootloader) in [
        (TableType::Efi, Bootloader::SystemdBoot),
        (TableType::Hybrid, Bootloader::SystemdBoot),
        (TableType::EfiXbootldr, Bootloader::SystemdBoot),
        (TableType::Efi, Bootloader::Grub),
        (TableType::LegacyGpt, Bootloader::Grub),
    ] {
        let dir = tmp.path().join(format!("{}-{bootloader}", table.name()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("nixos.img");
        let r = build(
            &spec(&fx, table, bootloader, &img, Some(template)),
            &mut NoProgress,
        )
        .unwrap();
        let vars_file = dir.join("efi-vars.fd");
        let meta = std::fs::metadata(&vars_file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644, "{table}");
        assert_eq!(meta.len(), std::fs::metadata(template).unwrap().len());
        if (table, bootloader) == (TableType::Efi, Bootloader::SystemdBoot) {
            // Without a template: the built-in empty store is Debian's OVMF_VARS_4M.fd, so
            // the result is the same file; and a second build is byte-identical.
            let again = dir.join("again");
            std::fs::create_dir_all(&again).unwrap();
            let img2 = again.join("nixos.img");
            build(&spec(&fx, table, bootloader, &img2, None), &mut NoProgress).unwrap();
            assert!(
                std::fs::read(again.join("efi-vars.fd")).unwrap()
                    == std::fs::read(&vars_file).unwrap(),
                "efi-vars.fd differs between builds (or from the built-in template)"
            );
        }
        let vars = virt_fw_vars(&vars_file);
        if bootloader == Bootloader::Grub {
            // GRUB is installed as removable (efiInstallAsRemovable): no variables, as
            // grub-install --removable writes none; the store is the template's.
            assert!(vars.is_empty(), "{table}/{bootloader}: {vars:?}");
            assert_eq!(
                std::fs::read(&vars_file).unwrap(),
                std::fs::read(template).unwrap()
            );
            continue;
        }
        let names: Vec<&str> = vars.iter().map(|v| v.0.as_str()).collect();
        assert_eq!(names, ["Boot0000", "BootOrder"], "{table}");
        for (_, guid, attr, _) in &vars {
            assert_eq!(guid, "8be4df61-93ca-11d2-aa0d-00e098032b8c");
            assert_eq!(*attr, 7, "NV+BS+RT");
        }
        assert_eq!(vars[1].3, "0000", "BootOrder = [0]");
        // The entry is what virt-firmware's encoder makes from the ESP as sfdisk reads the
        // table: its number, first sector, sectors and unique GUID, and bootctl's loader path.
        let table_seen = ptable::read(&Target::whole(&img)).unwrap();
        let (start, size) = esp(&r);
        let (i, part) = table_seen
            .partitions
            .iter()
            .enumerate()
            .find(|(_, p)| p.start * 512 == start)
            .unwrap_or_else(|| panic!("sfdisk: no partition at {start}"));
        assert_eq!(part.size * 512, size);
        let want = virt_fw_boot_entry(
            "Linux Boot Manager",
            i + 1,
            part.start,
            part.size,
            part.uuid.as_deref().unwrap(),
            "\\EFI\\systemd\\systemd-bootx64.efi",
        );
        assert_eq!(vars[0].3, want, "{table}: Boot0000");
    }
}

/// OVMF boots the fixture through our `Boot0000` alone: the image's removable-media loader
/// (`EFI/BOOT/BOOTX64.EFI`) is deleted, so with the firmware's own empty variable store it
/// finds nothing to boot and starts its shell (checked first), and with `efi-vars.fd` its boot
/// manager starts `Boot0000 "Linux Boot Manager"` and the guest reaches the marker.
#[test]
fn test_ovmf_boots_through_our_boot_entry_with_no_fallback_loader() {
    require_tools!(QEMU_SYSTEM, OVMF_CODE, OVMF_VARS, MDEL, MDIR);
    let fx = imagetool_fixture::ensure().unwrap();
    let expected = fx.expected_manifest_sha256().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("nixos.img");
    let r = build(
        &spec(
            &fx,
            TableType::Efi,
            Bootloader::SystemdBoot,
            &img,
            Some(Path::new(TEMPLATE)),
        ),
        &mut NoProgress,
    )
    .unwrap();
    let vars: PathBuf = tmp.path().join("efi-vars.fd");
    assert!(vars.is_file());
    let (offset, len) = esp(&r);
    let out = Command::new(MDEL.name)
        .arg("-i")
        .arg(format!("{}@@{offset}", img.display()))
        .arg("::/EFI/BOOT/BOOTX64.EFI")
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("MTOOLSRC", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mdel: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = fat::list(&Target::range(&img, offset, len)).unwrap();
    assert!(!files.contains_key("/EFI/BOOT/BOOTX64.EFI"), "{files:?}");
    assert!(
        files.contains_key("/EFI/systemd/systemd-bootx64.efi"),
        "{files:?}"
    );

    let markers = boot::markers(&fx.toplevel, &expected);
    // The control: no boot entry, no fallback loader: OVMF has nothing to boot.
    let mut cfg = BootConfig::new(Firmware::Ovmf).drive(&img, DiskFormat::Raw);
    cfg.stop_when.extend(markers.iter().cloned());
    cfg.timeout = cfg.timeout.min(std::time::Duration::from_secs(120));
    cfg.fail_when
        .extend(NOTHING_TO_BOOT.iter().map(|s| s.to_string()));
    let res = boot::boot(&cfg).unwrap();
    assert!(
        boot::expect_markers(&res, &fx.toplevel, &expected).is_err(),
        "booted without our variables: the fallback loader was not the only way\n{}",
        imagetool_testutil::tail(&res.log, 40)
    );
    eprintln!(
        "control (no entry): {:.1}s, stopped early: {}\n{}",
        res.elapsed.as_secs_f64(),
        res.stopped,
        imagetool_testutil::tail(&res.log, 15)
    );
    // Our variable store: systemd-boot through Boot0000, to the fixture's marker.
    let mut cfg = BootConfig::new(Firmware::Ovmf)
        .drive(&img, DiskFormat::Raw)
        .vars(&vars);
    cfg.stop_when.extend(markers.iter().cloned());
    let res = boot::boot(&cfg).unwrap();
    eprintln!("with efi-vars.fd: {:.1}s", res.elapsed.as_secs_f64());
    boot::expect_markers(&res, &fx.toplevel, &expected).unwrap_or_else(|e| {
        panic!(
            "{e}\n--- serial log (tail) ---\n{}\n--- qemu stderr ---\n{}",
            imagetool_testutil::tail(&res.log, 40),
            res.qemu_stderr
        )
    });
    // OVMF's boot manager says which option it started: ours.
    assert!(
        res.log
            .contains("BdsDxe: starting Boot0000 \"Linux Boot Manager\""),
        "{}",
        imagetool_testutil::tail(&res.log, 60)
    );
}

/// What OVMF prints when it falls back to its built-in shell (no boot option worked).
const NOTHING_TO_BOOT: &[&str] = &["\"EFI Internal Shell\"", "Shell>"];
