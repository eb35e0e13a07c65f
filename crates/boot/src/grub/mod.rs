//! GRUB 2 without `grub-install`: core images, the BIOS boot sectors, the module files and
//! `grub.cfg`.
//!
//! `grub-install` does four jobs, and this module does each of them as data:
//!
//! | grub-install | here |
//! |---|---|
//! | find the GRUB of the platform, run `grub-mkimage` | [`GrubTools::find`]; [`GrubTools::core_image`], [`GrubTools::efi_image`] assemble the images natively ([`mkimage`]) |
//! | copy `<platform>/*.mod`, `*.lst`, … under the prefix | [`GrubTools::module_files`], [`grubenv`] |
//! | `grub-bios-setup`: boot.img into the MBR, core.img into the MBR gap or BIOS boot partition | [`embed_bios`] |
//! | (install-grub.pl) write `grub.cfg` | [`grub_cfg`] |
//!
//! No program runs: not `grub-mkimage`, neither the host's nor the closure's (a closure is
//! data). [`mkimage`] lays out GRUB's ELF kernel and modules as `grub-mkimage` does; the EFI
//! images are byte-identical to its output, the BIOS `core.img` differs only in the
//! encoding of its LZMA stream (the decompressed kernel and modules are identical; see
//! [`mkimage::lzma`]).
//!
//! The core image finds the filesystem holding GRUB's directory by its UUID
//! (`search.fs_uuid <uuid> root`, then `set prefix=($root)<dir>`), so one recipe works
//! whichever partition holds it: the root ext4 (`/boot/grub`), a FAT `/boot` or the ESP
//! (`/grub`).
//!
//! ```no_run
//! # fn main() -> imagetool_boot::Result<()> {
//! use std::path::PathBuf;
//! use imagetool_boot::grub::{GrubTools, ImageOptions, Platform};
//!
//! let closure = vec![PathBuf::from("/nix/store/…-grub-2.12")];
//! let grub = GrubTools::find(Platform::I386Pc, &closure)?;
//! let core = grub.core_image(&ImageOptions::new("0ccc2a4e-6b2c-4b7c-9f3b-4b1d7a8e3f10", "/boot/grub"))?;
//! let boot_img = grub.boot_img()?;
//! let files = grub.module_files("boot/grub")?;
//! # let _ = (core, boot_img, files);
//! # Ok(()) }
//! ```

mod bios;
mod cfg;
pub(crate) mod install;
pub mod mkimage;
mod tools;

pub use bios::{
    BIOS_BOOT_GUID, EmbedArea, Embedded, MAX_CORE_SECTORS, embed_bios, patch_boot_img,
    patch_core_img,
};
pub use cfg::{GrubConfig, MenuEntry, copied_kernel_name, grub_cfg};
pub use tools::{GrubTools, ImageOptions, Platform, grubenv};
