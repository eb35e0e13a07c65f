//! GRUB for a NixOS generation: bootspec → grub.cfg in install-grub.pl's format, the module
//! files, the EFI removable image and the BIOS stage, through [`crate::grub`]'s plain-data API.
//!
//! GRUB's directory is `grub/` on the filesystem mounted at `/boot` (the ESP, XBOOTLDR or
//! `legacy+boot`'s FAT partition), with the kernels and initrds copied to `kernels/` beside it
//! (install-grub.pl's `copyKernels`, forced when `/boot` is not the store's filesystem); or
//! `boot/grub/` on the root filesystem, where grub.cfg names the kernels in `/nix/store`.

use std::path::PathBuf;

use crate::arch::Arch;
use crate::bootspec::{BootSpec, Generation};
use crate::grub::{self, GrubConfig, GrubTools, ImageOptions, MenuEntry};
use crate::request::{BiosSite, BiosStage, BootMount, EfiLoader, Plan, Request};
use crate::systemd_boot::iso_date;
use crate::{BootFile, Error, ErrorKind, FileSource, Result};

/// Where GRUB's files go: the target list, the directory inside that filesystem, the
/// filesystem's UUID and whether kernels are copied.
struct Place {
    dir: &'static str,
    fs_uuid: String,
    copy_kernels: bool,
}

fn place(req: &Request<'_>) -> Result<Place> {
    let need = |id: &Option<crate::FsId>, what: &str| {
        id.as_ref().map(|i| i.uuid.clone()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("GRUB: /boot is the {what}, but its filesystem UUID was not given"),
            )
        })
    };
    Ok(match req.disk.boot_mount {
        BootMount::Root => Place {
            dir: "boot/grub",
            fs_uuid: req.root_fs.uuid.clone(),
            copy_kernels: false,
        },
        BootMount::Esp => Place {
            dir: "grub",
            fs_uuid: need(&req.esp_fs, "ESP")?,
            copy_kernels: true,
        },
        BootMount::BootPartition => Place {
            dir: "grub",
            fs_uuid: need(&req.boot_fs, "boot partition")?,
            copy_kernels: true,
        },
    })
}

/// Adds GRUB's files (and BIOS stage) to `out` for the EFI side when `out.efi` is GRUB and
/// for the BIOS side when `out.bios`.
pub(crate) fn install(req: &Request<'_>, generation: &Generation, out: &mut Plan) -> Result<()> {
    let place = place(req)?;
    let host_paths: Vec<PathBuf> = req
        .closure
        .paths()
        .iter()
        .map(|p| req.closure.host(p))
        .collect();
    let prefix = format!("/{}", place.dir);
    let image_opts = ImageOptions::new(&place.fs_uuid, &prefix);
    let mut files: Vec<BootFile> = Vec::new();

    let arch = Arch::from_system(&generation.bootspec.system)?;
    if out.bios {
        let platform = arch.grub_bios_platform().ok_or_else(|| no_bios(arch))?;
        let tools = GrubTools::find(platform, &host_paths).map_err(for_bios)?;
        let core_img = tools.core_image(&image_opts)?;
        let boot_img = tools.boot_img()?;
        files.extend(tools.module_files(place.dir)?);
        out.bios_stage = Some(BiosStage {
            site: req.disk.bios.unwrap_or(BiosSite::MbrGap),
            boot_img,
            core_img,
        });
    }
    if out.efi == Some(EfiLoader::Grub) {
        let tools = GrubTools::find(arch.grub_efi_platform(), &host_paths)?;
        out.esp.push(BootFile {
            path: arch.efi_fallback_path(),
            source: FileSource::Bytes(tools.efi_image(&image_opts)?),
        });
        files.extend(tools.module_files(place.dir)?);
    }

    let mut kernels: Vec<BootFile> = Vec::new();
    let mut entry = |title: String, doc: &BootSpec| -> Result<MenuEntry> {
        let mut file = |path: &str| -> Result<String> {
            let (real, host) = req.closure.file(path)?;
            if place.copy_kernels {
                let name = grub::copied_kernel_name(&real).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidInput, format!("{real}: not a store file"))
                })?;
                kernels.push(BootFile {
                    path: format!("kernels/{name}"),
                    source: FileSource::Host(host),
                });
                Ok(format!("($drive1)/kernels/{name}"))
            } else {
                Ok(GrubConfig::store_file(&real))
            }
        };
        let kernel = file(&doc.kernel)?;
        let initrd = doc.initrd.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("GRUB: {title:?} has no initrd (NixOS's GRUB entries always have one)"),
            )
        })?;
        let initrds = vec![file(initrd)?];
        if doc.initrd_secrets.is_some() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "initrdSecrets: appending secrets to the initrd would run a script of the \
                 closure on the build host and store the secrets in the image; not supported",
            ));
        }
        Ok(MenuEntry {
            title,
            kernel,
            initrds,
            init: doc.init.clone(),
            params: doc.kernel_params.join(" "),
        })
    };
    let date = iso_date(req.timestamp);
    let version = |doc: &BootSpec| {
        std::fs::read_to_string(req.closure.host(&format!("{}/nixos-version", doc.toplevel)))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let main = &generation.bootspec;
    let default_entry = entry("NixOS - Default".into(), main)?;
    let mut specialisations = Vec::new();
    for (name, doc) in &generation.specialisations {
        let title = std::fs::read_to_string(
            req.closure
                .host(&format!("{}/configuration-name", doc.toplevel)),
        )
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|_| format!("({name} - {date} - {})", version(doc)));
        specialisations.push(entry(format!("NixOS - {title}"), doc)?);
    }
    let configuration = entry(
        format!("NixOS - Configuration 1 ({date} - {})", version(main)),
        main,
    )?;
    let store_uuid = (!place.copy_kernels).then(|| req.root_fs.uuid.clone());
    let mut cfg = GrubConfig::new(&place.fs_uuid, store_uuid.as_deref(), default_entry);
    cfg.timeout = Some(req.timeout);
    cfg.specialisations = specialisations;
    cfg.configurations = vec![configuration];
    files.push(BootFile {
        path: format!("{}/grub.cfg", place.dir),
        source: FileSource::Bytes(grub::grub_cfg(&cfg)?.into_bytes()),
    });
    files.push(BootFile {
        path: format!("{}/grubenv", place.dir),
        source: FileSource::Bytes(grub::grubenv()),
    });
    files.extend(kernels);
    let target = match req.disk.boot_mount {
        BootMount::Root => &mut out.root,
        BootMount::Esp => &mut out.esp,
        BootMount::BootPartition => &mut out.boot,
    };
    target.extend(files);
    Ok(())
}

/// A BIOS stage asked of an architecture that has no BIOS.
pub(crate) fn no_bios(arch: Arch) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "the bootspec's system is {arch}, which has no BIOS boot: use an EFI partition table \
             (efi, efixbootldr) or sd-card, or --bootloader none"
        ),
    )
}

fn for_bios(e: Error) -> Error {
    if e.kind() == ErrorKind::Missing {
        Error::new(
            ErrorKind::Missing,
            format!("GRUB for BIOS is needed by this partition table: {e}"),
        )
    } else {
        e
    }
}
