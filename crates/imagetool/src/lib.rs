//! imagetool: NixOS disk images built natively.
//!
//! This is the facade crate: it re-exports the layers below it, so a Rust tool can depend on
//! `imagetool` alone.
//!
//! * [`blockio`]: positional I/O (sparse image files, in-memory images, partition windows).
//! * [`boot`]: bootspec, systemd-boot and GRUB installed with no VM.
//! * [`bootloader`]: the bootloader step of `build` (table type → boot disk, files, BIOS stage).
//! * [`fstree`]: the host-independent file tree the filesystem writers consume.
//! * [`ext4`]: the native ext4 writer.
//! * [`ptable`]: MBR/GPT tables and make-disk-image's layouts.
//! * [`fat`]: the FAT (ESP) writer.
//! * [`probe`]: `inspect`: the table and filesystems of an image.
//! * [`build`]: a NixOS closure to a disk image: the whole make-disk-image pipeline.
//! * [`disk`]: a partitioned raw disk assembled from filesystem blobs.
//! * [`nix`]: Nix base32, NAR hashing, store paths, reference scanning, closureInfo files.
//! * [`vdisk`]: container formats (qcow2, VDI, VHD, VHDX, VMDK) written from allocated extents.
#![deny(missing_docs)]

pub mod bootloader;
pub mod build;
pub mod disk;
pub mod probe;

pub use imagetool_blockio as blockio;
pub use imagetool_boot as boot;
pub use imagetool_ext4 as ext4;
pub use imagetool_fat as fat;
pub use imagetool_fstree as fstree;
pub use imagetool_nix as nix;
pub use imagetool_ptable as ptable;
pub use imagetool_vdisk as vdisk;
