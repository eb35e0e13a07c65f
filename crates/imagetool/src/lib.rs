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
//! * [`spec`]: the build spec as data (make-disk-image's argument names in JSON, Nix structured
//!   attributes) and the builder methods of [`build::ImageSpec`].
//! * [`disk`]: a partitioned raw disk assembled from filesystem blobs.
//! * [`mkfs`]: `mkfs ext4 -d DIR` as a function (a standalone image, or into an image at an offset),
//!   and `mkfs squashfs` (`mksquashfs DIR OUT`).
//! * [`squashfs`]: the native squashfs writer (xz, zstd, gzip, lz4; parallel, deterministic).
//! * [`nix`]: Nix base32, NAR hashing, store paths, reference scanning, closureInfo files.
//! * [`tarball`]: the variants that are not disks: lxc, lxc-metadata, proxmox-lxc, docker
//!   (root-tree archives), netboot and kexec ([`netboot`]), the ISOs under their upstream names.
//! * [`vdisk`]: container formats (qcow2, VDI, VHD, VHDX, VMDK) written from allocated extents.
//!
//! # Example: an ext4 filesystem in memory, then a qcow2 of it
//!
//! Every writer takes a positional-write target, so a filesystem can go into a file, a
//! partition of a disk image ([`blockio::Window`]) or memory ([`blockio::MemImage`]):
//!
//! ```
//! use imagetool::blockio::{MemImage, ReadAt};
//! use imagetool::fstree::{Meta, Source, Timestamp, Tree};
//! use imagetool::{ext4, vdisk};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The tree: what the filesystem will hold. Times and owners are explicit: nothing is read
//! // from the clock or the host, so the same tree gives the same bytes.
//! let t = Timestamp::from_secs(315_532_800);
//! let mut tree = Tree::new(Meta::dir(0o755).at(t));
//! tree.add_dir(b"/etc", Meta::dir(0o755).at(t))?;
//! tree.add_file(
//!     b"/etc/hostname",
//!     Source::Bytes(b"nixos\n".as_slice().into()),
//!     Meta::file(0o644).at(t),
//! )?;
//! tree.add_symlink(b"/etc/localtime", b"/etc/zoneinfo/UTC", Meta::symlink().at(t))?;
//!
//! // Plan first (sizes, inode numbers, block placement), then write.
//! // Option structs are `#[non_exhaustive]`: start from the default and set fields.
//! let mut opts = ext4::Options::default();
//! opts.label = b"nixos".to_vec();
//! opts.uuid = Some([7; 16].into());
//! opts.timestamp = t;
//! let plan = ext4::plan(&tree, &opts)?;
//! let image = MemImage::new(plan.size_bytes());
//! plan.write(&tree, &image)?;
//!
//! // The ext4 superblock magic sits at byte 1024 + 0x38.
//! let mut magic = [0u8; 2];
//! image.read_exact_at(&mut magic, 1024 + 0x38)?;
//! assert_eq!(magic, [0x53, 0xEF]);
//!
//! // Any `ReadAt + Extents` converts to a container, reading only the allocated extents.
//! let dir = std::env::temp_dir().join(format!("imagetool-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let out = dir.join("fs.qcow2");
//! vdisk::convert(&image, vdisk::Format::Qcow2, &out, &vdisk::Options::default())?;
//! // Read it back through imagetool's own qcow2 reader: the same bytes as the memory image.
//! let back = vdisk::Qcow2Reader::open(&out)?;
//! let (mut a, mut b) = (vec![0u8; 8192], vec![0u8; 8192]);
//! back.read_exact_at(&mut a, 0)?;
//! image.read_exact_at(&mut b, 0)?;
//! assert_eq!(a, b);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod build;
mod classify;
pub mod disk;
#[doc(hidden)]
pub mod doc_support;
pub mod efi_vars;
mod error;
mod features;
pub mod iso;
pub mod manifest;
pub mod mkfs;
pub mod netboot;
pub mod probe;
pub mod sdcard;
mod serialize;
pub mod spec;
pub mod tarball;
mod tree_variant;
pub mod variant;

pub use build::bootloader;

pub use error::ErrorKind;
#[doc(inline)]
pub use imagetool_archive as archive;
#[doc(inline)]
pub use imagetool_blockio as blockio;
#[doc(inline)]
pub use imagetool_boot as boot;
#[doc(inline)]
pub use imagetool_ext4 as ext4;
#[doc(inline)]
pub use imagetool_fat as fat;
#[doc(inline)]
pub use imagetool_fstree as fstree;
pub use imagetool_fstree::{Timestamp, Uuid};
#[doc(inline)]
pub use imagetool_iso9660 as iso9660;
#[doc(inline)]
pub use imagetool_nix as nix;
#[doc(inline)]
pub use imagetool_ptable as ptable;
#[doc(inline)]
pub use imagetool_squashfs as squashfs;
#[doc(inline)]
pub use imagetool_vdisk as vdisk;
pub use serialize::role_name;
