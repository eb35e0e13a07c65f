//! The image's CPU architecture, from the bootspec's `system`, and what follows from it: the
//! UEFI file names (`BOOTAA64.EFI`, `systemd-bootaa64.efi`), GRUB's platforms and whether a
//! BIOS stage exists.
//!
//! Nothing here runs code of the target architecture: an aarch64 image is bytes like any
//! other, so a build on x86_64 for aarch64 copies files and writes tables as it does for x86_64.
//!
//! | `system` | EFI name | fallback | systemd-boot | GRUB EFI | GRUB BIOS |
//! |---|---|---|---|---|---|
//! | `x86_64-linux` | `x64` | `BOOTX64.EFI` | `systemd-bootx64.efi` | `x86_64-efi` | `i386-pc` |
//! | `i686-linux` | `ia32` | `BOOTIA32.EFI` | `systemd-bootia32.efi` | `i386-efi` | `i386-pc` |
//! | `aarch64-linux` | `aa64` | `BOOTAA64.EFI` | `systemd-bootaa64.efi` | `arm64-efi` | — |
//! | `riscv64-linux` | `riscv64` | `BOOTRISCV64.EFI` | `systemd-bootriscv64.efi` | `riscv64-efi` | — |
//!
//! The names are the UEFI specification's removable-media paths (§3.5.1.1) and systemd's
//! `EFI_MACHINE_TYPE_NAME`; the GRUB platforms are the `-O` targets of `grub-mkimage`.
//!
//! Partition types do not follow the architecture on the make-disk-image layouts: nixpkgs'
//! make-disk-image gives the root partition the generic Linux filesystem type
//! (`0FC63DAF-8483-4772-8E79-3D69D8477DE4`, parted's default) on every architecture, and
//! sd-image.nix uses MBR type `83`; imagetool keeps those byte-identical. (Only
//! systemd-repart's Discoverable Partitions use per-architecture root types, and imagetool
//! has no repart layout.)

use std::fmt;

use crate::grub::Platform;
use crate::{Error, ErrorKind, Result};

/// A CPU architecture NixOS images are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `x86_64-linux`.
    X86_64,
    /// `i686-linux` (32-bit x86; UEFI IA32 or BIOS).
    I686,
    /// `aarch64-linux` (64-bit Arm).
    Aarch64,
    /// `riscv64-linux`.
    Riscv64,
}

impl Arch {
    /// Every architecture.
    pub const ALL: [Arch; 4] = [Arch::X86_64, Arch::I686, Arch::Aarch64, Arch::Riscv64];

    /// The architecture of a bootspec `system` (`aarch64-linux`).
    ///
    /// # Errors
    /// `Unsupported` for any other system, naming the bootspec key.
    pub fn from_system(system: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.system() == system)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "bootspec key \"system\" is {system:?}: imagetool builds images for \
                         x86_64-linux, i686-linux, aarch64-linux and riscv64-linux"
                    ),
                )
            })
    }

    /// The Nix system name (`aarch64-linux`).
    #[must_use]
    pub fn system(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux",
            Arch::I686 => "i686-linux",
            Arch::Aarch64 => "aarch64-linux",
            Arch::Riscv64 => "riscv64-linux",
        }
    }

    /// The UEFI machine type name in lower case (`x64`, `ia32`, `aa64`, `riscv64`).
    #[must_use]
    pub fn efi_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x64",
            Arch::I686 => "ia32",
            Arch::Aarch64 => "aa64",
            Arch::Riscv64 => "riscv64",
        }
    }

    /// The removable-media boot path on the ESP (`EFI/BOOT/BOOTAA64.EFI`).
    #[must_use]
    pub fn efi_fallback_path(self) -> String {
        format!("EFI/BOOT/BOOT{}.EFI", self.efi_name().to_ascii_uppercase())
    }

    /// systemd-boot's file name (`systemd-bootaa64.efi`).
    #[must_use]
    pub fn systemd_boot_name(self) -> String {
        format!("systemd-boot{}.efi", self.efi_name())
    }

    /// GRUB's UEFI platform (`arm64-efi`).
    #[must_use]
    pub fn grub_efi_platform(self) -> Platform {
        match self {
            Arch::X86_64 => Platform::X86_64Efi,
            Arch::I686 => Platform::I386Efi,
            Arch::Aarch64 => Platform::Arm64Efi,
            Arch::Riscv64 => Platform::Riscv64Efi,
        }
    }

    /// GRUB's BIOS platform (`i386-pc`), on x86 only.
    #[must_use]
    pub fn grub_bios_platform(self) -> Option<Platform> {
        match self {
            Arch::X86_64 | Arch::I686 => Some(Platform::I386Pc),
            Arch::Aarch64 | Arch::Riscv64 => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.system())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row<'a> = (String, &'a str, String, String, &'a str, Option<&'a str>);

    #[test]
    fn test_names_per_system() {
        let rows: Vec<Row<'_>> = Arch::ALL
            .iter()
            .map(|a| {
                (
                    a.system().to_string(),
                    a.efi_name(),
                    a.efi_fallback_path(),
                    a.systemd_boot_name(),
                    a.grub_efi_platform().name(),
                    a.grub_bios_platform().map(Platform::name),
                )
            })
            .collect();
        let want = [
            (
                "x86_64-linux",
                "x64",
                "EFI/BOOT/BOOTX64.EFI",
                "systemd-bootx64.efi",
                "x86_64-efi",
                Some("i386-pc"),
            ),
            (
                "i686-linux",
                "ia32",
                "EFI/BOOT/BOOTIA32.EFI",
                "systemd-bootia32.efi",
                "i386-efi",
                Some("i386-pc"),
            ),
            (
                "aarch64-linux",
                "aa64",
                "EFI/BOOT/BOOTAA64.EFI",
                "systemd-bootaa64.efi",
                "arm64-efi",
                None,
            ),
            (
                "riscv64-linux",
                "riscv64",
                "EFI/BOOT/BOOTRISCV64.EFI",
                "systemd-bootriscv64.efi",
                "riscv64-efi",
                None,
            ),
        ];
        assert_eq!(rows.len(), want.len());
        for (got, w) in rows.iter().zip(want) {
            assert_eq!(
                (
                    got.0.as_str(),
                    got.1,
                    got.2.as_str(),
                    got.3.as_str(),
                    got.4,
                    got.5
                ),
                w
            );
        }
    }

    #[test]
    fn test_from_system_round_trips_and_rejects_unknown() {
        for a in Arch::ALL {
            assert_eq!(Arch::from_system(a.system()).unwrap(), a);
        }
        for bad in ["aarch64-darwin", "x86_64", "", "armv7l-linux"] {
            let e = Arch::from_system(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert!(e.to_string().contains("bootspec key \"system\""), "{e}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }
}
