//! FAT12/16/32 for imagetool: EFI system partitions written natively, deterministically.
//!
//! ```text
//!   Tree (host dir | in-memory files)          FormatOptions (label, volume id,
//!        │                                      hidden sectors, time, forced type)
//!        └───────────────plan()────────────────────┘
//!                          │  Params: FAT type + cluster size as mkfs.fat 4.2 picks them
//!                          ▼  every directory entry and cluster run decided here
//!                        Plan ──write()──▶ any WriteAt (a partition Window)
//!                                  metadata once, then file data in parallel at known offsets
//! ```
//!
//! Every file and directory gets one contiguous cluster run; directories are written in the
//! byte order of their names; names that are not upper-case 8.3 get long-name entries and a
//! deterministic `~N` alias; every timestamp is the one given. `fsck.fat -n` finds nothing to
//! fix. [`probe`] reads boot sectors back for `inspect`.
//!
//! ```
//! use imagetool_blockio::MemImage;
//! use imagetool_fat::{format, FormatOptions, Tree};
//!
//! let mut tree = Tree::new();
//! tree.add_bytes("EFI/BOOT/BOOTX64.EFI", b"MZ...".to_vec()).unwrap();
//! tree.add_bytes("loader/loader.conf", b"timeout 3\n".to_vec()).unwrap();
//! let esp = MemImage::new(64 << 20);
//! let mut opts = FormatOptions::default();
//! opts.label = Some("ESP".into());
//! let plan = format(&tree, &esp, &opts).unwrap();
//! assert_eq!(plan.params().fat_type, imagetool_fat::FatType::Fat16);
//! let info = imagetool_fat::probe::probe(&esp).unwrap();
//! assert_eq!(info.label, "ESP");
//! ```
#![deny(missing_docs)]

mod boot_sector;
mod date;
mod dir;
mod error;
mod format;
mod fsinfo;
pub mod name;
mod params;
pub mod probe;
mod table;
mod tree;

pub use boot_sector::label_bytes;
pub use date::{DOS_MAX, DOS_MIN, civil_date, dos_datetime};
pub use error::{Error, ErrorKind, Result};
pub use format::{FileJob, FormatOptions, Plan, derive_volume_id, format, plan};
pub use imagetool_fstree::Timestamp;
pub use params::{FatType, Params, SECTOR};
pub use tree::{Node, Source, Tree};
