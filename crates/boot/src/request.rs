//! What the caller asks for ([`Request`]: the bootloader, the disk, the closure) and what the
//! installation returns ([`Plan`]: the files for each filesystem and GRUB's BIOS stage).

use std::str::FromStr;

use imagetool_blockio::{ReadAt, WriteAt};

use crate::grub::{self, EmbedArea};
use crate::store::Closure;
use crate::{BootFile, Error, ErrorKind, Result};

/// `--bootloader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bootloader {
    /// By the disk and the closure (see the module documentation).
    #[default]
    Auto,
    /// systemd-boot on the EFI side (GRUB still serves a hybrid disk's BIOS side).
    SystemdBoot,
    /// GRUB for every firmware the disk supports.
    Grub,
    /// No bootloader.
    None,
    /// U-Boot's generic extlinux boot: `/boot/extlinux/extlinux.conf` and the kernels in
    /// the root filesystem (the `sd-card` table's default).
    Extlinux,
}

impl Bootloader {
    /// The option value (`auto`, `systemd-boot`, `grub`, `none`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::SystemdBoot => "systemd-boot",
            Self::Grub => "grub",
            Self::None => "none",
            Self::Extlinux => "extlinux",
        }
    }
}

impl FromStr for Bootloader {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "systemd-boot" => Ok(Self::SystemdBoot),
            "grub" => Ok(Self::Grub),
            "none" => Ok(Self::None),
            "extlinux" => Ok(Self::Extlinux),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--bootloader {other:?}: expected auto, systemd-boot, grub, extlinux or none"
                ),
            )),
        }
    }
}

impl std::fmt::Display for Bootloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The filesystem mounted at `/boot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMount {
    /// The ESP (`efi`, `hybrid`).
    Esp,
    /// A FAT partition of its own: XBOOTLDR (`efixbootldr`) or `legacy+boot`'s.
    BootPartition,
    /// The root filesystem's `/boot` directory.
    Root,
}

/// Where GRUB's BIOS core image is embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiosSite {
    /// An MBR disk: the gap between the MBR and the first partition.
    MbrGap,
    /// A GPT disk: the BIOS boot partition.
    BiosBootPartition,
}

/// What the disk offers the bootloader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    /// The disk has an ESP (EFI boot).
    pub esp: bool,
    /// The disk has an XBOOTLDR partition.
    pub xbootldr: bool,
    /// The disk boots from BIOS, with GRUB's core image there.
    pub bios: Option<BiosSite>,
    /// The filesystem at `/boot`.
    pub boot_mount: BootMount,
}

/// A filesystem's identity as the bootloaders search for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsId {
    /// The UUID as `blkid`/GRUB print it: `xxxxxxxx-xxxx-…` (ext4), `XXXX-XXXX` (FAT).
    pub uuid: String,
}

/// Everything [`plan`](crate::plan) needs.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The bootloader choice.
    pub bootloader: Bootloader,
    /// The disk.
    pub disk: Disk,
    /// The closure.
    pub closure: &'a Closure,
    /// The toplevel store path.
    pub toplevel: &'a str,
    /// The root filesystem.
    pub root_fs: FsId,
    /// The ESP's filesystem, when there is one.
    pub esp_fs: Option<FsId>,
    /// The boot partition's filesystem (XBOOTLDR or `legacy+boot`'s), when there is one.
    pub boot_fs: Option<FsId>,
    /// Menu timeout in seconds.
    pub timeout: u32,
    /// The build timestamp (`SOURCE_DATE_EPOCH`).
    pub timestamp: i64,
}

/// The EFI side's bootloader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EfiLoader {
    /// systemd-boot.
    SystemdBoot,
    /// GRUB, installed as removable (`EFI/BOOT/BOOTX64.EFI`).
    Grub,
}

/// What to install where.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The EFI bootloader, if any.
    pub efi: Option<EfiLoader>,
    /// Whether GRUB serves BIOS boot.
    pub bios: bool,
    /// Files for the ESP.
    pub esp: Vec<BootFile>,
    /// Files for the boot partition (XBOOTLDR or `legacy+boot`'s FAT).
    pub boot: Vec<BootFile>,
    /// Files for the root filesystem, paths relative to its root (`boot/grub/grub.cfg`).
    pub root: Vec<BootFile>,
    /// GRUB's BIOS stage: the sectors to write once the table is on the disk.
    pub bios_stage: Option<BiosStage>,
    /// U-Boot's extlinux files are in [`Plan::root`].
    pub extlinux: bool,
}

impl Plan {
    /// A one-line description (`systemd-boot (EFI) + GRUB (BIOS), 7 files`).
    #[must_use]
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.efi {
            Some(EfiLoader::SystemdBoot) => parts.push("systemd-boot (EFI)"),
            Some(EfiLoader::Grub) => parts.push("GRUB (EFI)"),
            None => {}
        }
        if self.bios {
            parts.push("GRUB (BIOS)");
        }
        if self.extlinux {
            parts.push("extlinux (U-Boot)");
        }
        if parts.is_empty() {
            return "no bootloader".into();
        }
        format!(
            "{}, {} files",
            parts.join(" + "),
            self.esp.len() + self.boot.len() + self.root.len()
        )
    }
}

/// GRUB's BIOS stage, written into the disk after the partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiosStage {
    /// Where the core image goes.
    pub site: BiosSite,
    /// `boot.img` (the MBR code, patched when written).
    pub boot_img: [u8; 512],
    /// `core.img` as assembled from the closure's GRUB modules.
    pub core_img: Vec<u8>,
}

impl BiosStage {
    /// Writes core.img at `first_lba` (`sectors` available: the MBR gap or the BIOS boot
    /// partition) and boot.img into sector 0, keeping the partition table there.
    ///
    /// # Errors
    /// `NoSpace` when core.img does not fit; `InvalidInput` when the area does not match the
    /// table; `Io`.
    pub fn write<D: ReadAt + WriteAt + ?Sized>(
        &self,
        disk: &D,
        first_lba: u64,
        sectors: u64,
    ) -> Result<grub::Embedded> {
        let area = match self.site {
            BiosSite::MbrGap => EmbedArea::MbrGap { sectors },
            BiosSite::BiosBootPartition => EmbedArea::BiosBootPartition { first_lba, sectors },
        };
        grub::embed_bios(disk, &self.boot_img, &self.core_img, area)
    }
}
