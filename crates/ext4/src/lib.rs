//! A native ext4 writer: plan a complete filesystem for a [`Tree`], then write it into any
//! positional target ([`WriteAt`]): a whole image file or one partition's [`Window`].
//!
//! ```text
//!   Tree ──plan()──► Plan (geometry, inode numbers, every extent, dir/htree sizes, exact size)
//!                     │
//!                     └─write()──► superblocks + GDTs, bitmaps, inode tables, directories,
//!                                  extent/xattr blocks, journal (once, in order)
//!                                  file data (in parallel, copy_file_range / pwrite)
//! ```
//!
//! The filesystem has the feature set of e2fsprogs 1.47's `mkfs.ext4` (has_journal, ext_attr,
//! dir_index, filetype, extent, 64bit, flex_bg, sparse_super, large_file, huge_file, dir_nlink,
//! extra_isize, metadata_csum; resize_inode with reserved GDT blocks), 4 KiB blocks and 256-byte
//! inodes. Every byte is a function of the tree and the [`Options`]: thread count and host
//! directory order change nothing.
//!
//! [`Window`]: imagetool_blockio::Window
//!
//! ```
//! use imagetool_blockio::MemImage;
//! use imagetool_ext4::{Options, plan};
//! use imagetool_fstree::{Meta, Source, Tree};
//!
//! let mut tree = Tree::new(Meta::dir(0o755));
//! tree.add_file(b"hello", Source::Bytes(b"hi\n".to_vec().into()), Meta::file(0o644)).unwrap();
//! let plan = plan(&tree, &Options::default()).unwrap();
//! let img = MemImage::new(plan.size_bytes());
//! plan.write(&tree, &img).unwrap();
//! ```
#![deny(missing_docs)]

mod csum;
mod dir;
mod hash;
mod inode;
mod journal;
mod layout;
mod plan;
mod superblock;
mod write;
mod xattr;

use std::path::PathBuf;

pub use imagetool_blockio::WriteAt;
pub use imagetool_fstree::{Timestamp, Tree, Uuid};
pub use plan::{MAX_TIMESTAMP, Plan, plan};

/// The block size: 4 KiB, as mkfs.ext4 uses for every filesystem over 512 MiB.
pub const BLOCK_SIZE: u64 = 4096;

pub use imagetool_blockio::error::ErrorKind;

imagetool_blockio::layer_error!(
    /// An error planning or writing a filesystem, with the path or byte offset it concerns:
    /// `context: message` (the layers' shared shape, [`imagetool_blockio::error`]).
    new(kind, context, message)
);

impl Error {
    pub(crate) fn io(context: impl Into<String>, what: &str, source: std::io::Error) -> Self {
        Self(imagetool_blockio::error::Error::io(what, source).with_context(context))
    }

    /// The path (inside the tree or on the host) or offset the error concerns.
    #[must_use]
    pub fn context(&self) -> &str {
        self.0.context().unwrap_or_default()
    }
}

/// How big the filesystem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// The smallest size holding the tree plus `reserve` free bytes (rounded up to 1 MiB).
    Auto {
        /// Free space to leave, in bytes.
        reserve: u64,
    },
    /// Exactly this many bytes (rounded down to whole blocks).
    Fixed(u64),
}

/// Filesystem options. Every field has a deterministic default.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Options {
    /// Size of the filesystem.
    pub size: Size,
    /// Volume label (at most 16 bytes).
    pub label: Vec<u8>,
    /// Filesystem UUID; `None` derives one from the label and the tree size.
    pub uuid: Option<Uuid>,
    /// Directory hash seed (16 bytes that tune2fs and dumpe2fs show as a UUID); `None` derives
    /// it from the UUID.
    pub hash_seed: Option<Uuid>,
    /// Superblock times (creation, last write, last check) and the root's, `lost+found`'s
    /// and the journal's inode times: `SOURCE_DATE_EPOCH`, whole seconds, 0 to
    /// [`MAX_TIMESTAMP`].
    pub timestamp: Timestamp,
    /// Percentage of blocks reserved for root (mke2fs `-m`).
    pub reserved_percent: u8,
    /// Inodes to leave free beyond the tree's own; `None` picks a small headroom (and, with
    /// [`Size::Fixed`], mke2fs's one inode per 16 KiB when that is more).
    pub extra_inodes: Option<u64>,
    /// Data-copy threads; 0 uses rayon's default. Never changes the output.
    pub threads: usize,
    /// The target reads as zeros where nothing is written (a fresh sparse file). When false,
    /// the writer also zeroes the unused parts of inode tables, the journal and block tails.
    pub target_zeroed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            size: Size::Auto { reserve: 0 },
            label: Vec::new(),
            uuid: None,
            hash_seed: None,
            timestamp: Timestamp::EPOCH,
            reserved_percent: 5,
            extra_inodes: None,
            threads: 0,
            target_zeroed: true,
        }
    }
}

/// Where a source file's bytes were expected.
pub(crate) fn host_path(p: &std::path::Path) -> String {
    PathBuf::from(p).display().to_string()
}
