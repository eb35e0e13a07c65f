//! The whole installation: which bootloader for which disk, and what goes where.
//!
//! The caller describes the disk ([`Disk`](crate::request::Disk): is there an ESP, an
//! XBOOTLDR, a BIOS stage, which
//! filesystem is mounted at `/boot`) and the filesystems' identifiers; [`plan`] reads the
//! toplevel's bootspec, checks it against the closure and returns the files for each
//! filesystem and the BIOS sectors to write once the partition table is on the disk.
//!
//! Selection (`--bootloader`, make-disk-image's `installBootLoader = true` is `auto`):
//!
//! | disk | auto | systemd-boot | grub |
//! |---|---|---|---|
//! | ESP (efi, efixbootldr) | systemd-boot if the closure has it, else GRUB EFI | systemd-boot | GRUB EFI (removable) |
//! | BIOS (legacy, legacy+boot, legacy+gpt) | GRUB BIOS | error | GRUB BIOS |
//! | both (hybrid) | EFI side as above + GRUB BIOS | systemd-boot + GRUB BIOS | GRUB EFI + GRUB BIOS |
//! | neither (none) | nothing | error | error |
//!
//! GRUB's files live where NixOS keeps them, in the filesystem mounted at `/boot`: the ESP
//! (efi, hybrid), XBOOTLDR (efixbootldr), the FAT boot partition (legacy+boot), else the root
//! filesystem's `/boot`. When `/boot` is not the root filesystem the kernels and initrds are
//! copied to `/boot/kernels/` (install-grub.pl's `copyKernels`, forced in that case).

use crate::bootspec::Generation;
use crate::request::{Bootloader, EfiLoader, Plan, Request};
use crate::{Error, ErrorKind, Result, systemd_boot};

/// Decides and plans the installation.
///
/// # Errors
/// `Missing` (no bootspec, no systemd-boot for an explicit `systemd-boot`, no GRUB modules),
/// `InvalidInput` (a bootspec naming files outside the closure; a bootloader the disk cannot
/// boot), `Unsupported`, `Tool`, `Io`.
pub fn plan(req: &Request<'_>) -> Result<Plan> {
    let disk = req.disk;
    if req.bootloader == Bootloader::Extlinux {
        return plan_extlinux(req);
    }
    if req.bootloader == Bootloader::None
        || (req.bootloader == Bootloader::Auto && !disk.esp && disk.bios.is_none())
    {
        return Ok(Plan::default());
    }
    if !disk.esp && disk.bios.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "--bootloader {}: a disk with no partition table has no place for a \
                 bootloader (use a table type, or --bootloader none)",
                req.bootloader
            ),
        ));
    }
    if req.bootloader == Bootloader::SystemdBoot && !disk.esp {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--bootloader systemd-boot: the partition table has no ESP (use efi, efixbootldr \
             or hybrid, or --bootloader grub)",
        ));
    }
    if !req.closure.contains(req.toplevel) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the toplevel {} is not in the closure", req.toplevel),
        ));
    }
    // The toplevel and its boot.json are resolved inside the store root: a toplevel (or a
    // boot.json) that is a symlink out of the closure fails, naming where it leads.
    let top = req.closure.realpath(req.toplevel)?;
    let doc = format!("{top}/{}", crate::bootspec::FILE_NAME);
    let generation = if std::fs::symlink_metadata(req.closure.host(&doc)).is_ok() {
        let (_, host) = req.closure.file(&doc)?;
        Generation::load_file(&host)?
    } else {
        Generation::load(&req.closure.host(&top))?
    };
    generation.check_closure(req.closure.paths())?;

    let arch = crate::arch::Arch::from_system(&generation.bootspec.system)?;
    if disk.bios.is_some() && arch.grub_bios_platform().is_none() {
        return Err(crate::grub::install::no_bios(arch));
    }
    let mut out = Plan::default();
    if disk.esp {
        let (arch, _) = systemd_boot::efi_arch(&generation.bootspec.system)?;
        let binary = systemd_boot::find_binary(req.closure, req.toplevel, arch)?;
        let loader = match (req.bootloader, binary) {
            (Bootloader::Grub, _) => None,
            (_, Some(b)) => Some(b),
            (Bootloader::SystemdBoot, None) => {
                return Err(Error::new(
                    ErrorKind::Missing,
                    format!(
                        "--bootloader systemd-boot: no store path of the closure has \
                         lib/systemd/boot/efi/systemd-boot{arch}.efi"
                    ),
                ));
            }
            (_, None) => None,
        };
        if let Some(binary) = loader {
            let files = systemd_boot::install(
                &generation,
                req.closure,
                &binary,
                &systemd_boot::Options {
                    timeout: req.timeout,
                    xbootldr: disk.xbootldr,
                    timestamp: req.timestamp,
                    ..systemd_boot::Options::default()
                },
            )?;
            out.esp.extend(files.esp);
            out.boot.extend(files.xbootldr);
            out.efi = Some(EfiLoader::SystemdBoot);
        } else {
            out.efi = Some(EfiLoader::Grub);
        }
    }
    out.bios = disk.bios.is_some();
    if out.bios || out.efi == Some(EfiLoader::Grub) {
        crate::grub::install::install(req, &generation, &mut out)?;
    }
    for files in [&mut out.esp, &mut out.boot, &mut out.root] {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = files
            .windows(2)
            .find(|w| w[0].path == w[1].path && w[0].source != w[1].source)
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("two bootloader files want the same path {}", w[0].path),
            ));
        }
        files.dedup_by(|a, b| a.path == b.path);
    }
    Ok(out)
}

/// `--bootloader extlinux`: the generic-extlinux-compatible files in the root filesystem,
/// whatever the table (U-Boot reads them from any partition it scans).
fn plan_extlinux(req: &Request<'_>) -> Result<Plan> {
    if !req.closure.contains(req.toplevel) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the toplevel {} is not in the closure", req.toplevel),
        ));
    }
    let generation = Generation::load(&req.closure.host(req.toplevel))?;
    generation.check_closure(req.closure.paths())?;
    crate::arch::Arch::from_system(&generation.bootspec.system)?;
    Ok(Plan {
        root: crate::extlinux::install(&generation, req.closure, req.timeout)?,
        extlinux: true,
        ..Plan::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{BiosSite, BootMount, Disk, FsId};
    use crate::store::Closure;
    use std::os::unix::fs::symlink;

    /// A closure with a kernel, an initrd, systemd-boot for `efi` (`riscv64`) and a toplevel
    /// whose bootspec says `system`.
    fn closure(d: &std::path::Path, system: &str, efi: &str) -> Closure {
        let s = d.join("nix/store");
        for p in ["k1-linux", "i1-initrd", "t1-top", "sd-systemd"] {
            std::fs::create_dir_all(s.join(p)).unwrap();
        }
        std::fs::write(s.join("k1-linux/Image"), b"kernel").unwrap();
        std::fs::write(s.join("i1-initrd/initrd"), b"initrd").unwrap();
        symlink("/nix/store/sd-systemd", s.join("t1-top/systemd")).unwrap();
        let dir = s.join("sd-systemd/lib/systemd/boot/efi");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("systemd-boot{efi}.efi")), b"MZ").unwrap();
        let doc = serde_json::json!({ "org.nixos.bootspec.v1": {
            "init": "/nix/store/t1-top/init", "initrd": "/nix/store/i1-initrd/initrd",
            "kernel": "/nix/store/k1-linux/Image", "kernelParams": [],
            "label": "NixOS", "system": system, "toplevel": "/nix/store/t1-top" }});
        std::fs::write(s.join("t1-top/boot.json"), doc.to_string()).unwrap();
        Closure::new(
            d,
            ["k1-linux", "i1-initrd", "t1-top", "sd-systemd"]
                .iter()
                .map(|p| format!("/nix/store/{p}")),
        )
    }

    fn request<'a>(c: &'a Closure, bootloader: Bootloader, disk: Disk) -> Request<'a> {
        Request {
            bootloader,
            disk,
            closure: c,
            toplevel: "/nix/store/t1-top",
            root_fs: FsId {
                uuid: "44444444-4444-4444-8888-888888888888".into(),
            },
            esp_fs: Some(FsId {
                uuid: "ABCD-1234".into(),
            }),
            boot_fs: None,
            timeout: 5,
            timestamp: 0,
        }
    }

    const EFI: Disk = Disk {
        esp: true,
        xbootldr: false,
        bios: None,
        boot_mount: BootMount::Esp,
    };

    #[test]
    fn test_riscv64_and_aarch64_systemd_boot_names() {
        for (system, efi, fallback) in [
            ("riscv64-linux", "riscv64", "EFI/BOOT/BOOTRISCV64.EFI"),
            ("aarch64-linux", "aa64", "EFI/BOOT/BOOTAA64.EFI"),
        ] {
            let d = tempfile::tempdir().unwrap();
            let c = closure(d.path(), system, efi);
            let p = plan(&request(&c, Bootloader::Auto, EFI)).unwrap();
            assert_eq!(p.efi, Some(EfiLoader::SystemdBoot));
            let paths: Vec<&str> = p.esp.iter().map(|f| f.path.as_str()).collect();
            assert!(paths.contains(&fallback), "{system}: {paths:?}");
            let own = format!("EFI/systemd/systemd-boot{efi}.efi");
            assert!(paths.contains(&own.as_str()), "{system}: {paths:?}");
            assert!(!paths.iter().any(|p| p.contains("X64")), "{paths:?}");
        }
    }

    #[test]
    fn test_no_bios_stage_off_x86_and_unknown_systems_name_the_key() {
        let d = tempfile::tempdir().unwrap();
        let c = closure(d.path(), "riscv64-linux", "riscv64");
        let legacy = Disk {
            esp: false,
            xbootldr: false,
            bios: Some(BiosSite::MbrGap),
            boot_mount: BootMount::Root,
        };
        let e = plan(&request(&c, Bootloader::Auto, legacy)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("riscv64-linux"), "{e}");
        // GRUB for riscv64-efi is looked for under lib/grub/riscv64-efi.
        let e = plan(&request(&c, Bootloader::Grub, EFI)).unwrap_err();
        assert!(e.to_string().contains("riscv64-efi"), "{e}");

        let d = tempfile::tempdir().unwrap();
        let c = closure(d.path(), "mips64-linux", "x64");
        let e = plan(&request(&c, Bootloader::Auto, EFI)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("bootspec key \"system\""), "{e}");
    }

    #[test]
    fn test_extlinux_plan_puts_files_in_the_root() {
        let d = tempfile::tempdir().unwrap();
        let c = closure(d.path(), "aarch64-linux", "aa64");
        let none = Disk {
            esp: false,
            xbootldr: false,
            bios: None,
            boot_mount: BootMount::Root,
        };
        let p = plan(&request(&c, Bootloader::Extlinux, none)).unwrap();
        assert!(p.extlinux && p.esp.is_empty() && p.efi.is_none());
        let paths: Vec<&str> = p.root.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "boot/extlinux/extlinux.conf",
                "boot/nixos/i1-initrd-initrd",
                "boot/nixos/k1-linux-Image"
            ]
        );
        assert_eq!(p.describe(), "extlinux (U-Boot), 3 files");
    }
}
