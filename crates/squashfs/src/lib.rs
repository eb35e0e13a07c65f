//! A native squashfs 4.0 writer: a [`Tree`] in, a filesystem image the Linux kernel and
//! `unsquashfs` read out, written into any positional target ([`WriteAt`]) or a file.
//!
//! ```text
//!   Tree ──► data   regular files in tree order, read once, cut into blocks; blocks compressed
//!    │              in parallel (rayon), written in a fixed order; identical files stored once;
//!    │              small files packed into fragment blocks; all-zero blocks stored as holes
//!    ├───► inodes + directories (post-order, sorted names), in 8 KiB metadata blocks
//!    └───► fragment, export, id and xattr tables, then the superblock
//! ```
//!
//! What it writes is what `mksquashfs` writes by default (fragments for files smaller than a
//! block, duplicate detection, an export table, xattrs when present, `-b`, `-comp` and
//! `-Xcompression-level`); the bytes are a function of the tree and the [`Options`] alone: the
//! thread count, the host's directory order and the clock change nothing. Memory holds the
//! metadata and one batch of file data (about 64 MiB), never a whole file.
//!
//! ```
//! use imagetool_blockio::MemImage;
//! use imagetool_fstree::{Meta, Source, Tree};
//! use imagetool_squashfs::{Compression, Options, write};
//!
//! let mut tree = Tree::new(Meta::dir(0o755));
//! tree.add_file(b"hello", Source::Bytes(b"hi\n".to_vec().into()), Meta::file(0o644)).unwrap();
//! let img = MemImage::new(1 << 20);
//! let mut opts = Options::default();
//! opts.compression = Compression::Zstd;
//! let report = write(&tree, &opts, &img).unwrap();
//! assert_eq!(report.size % 4096, 0);
//! assert_eq!(report.inodes, 2);
//! ```
#![deny(missing_docs)]

mod compress;
mod data;
mod inode;
mod meta;
mod xattr;

use std::path::Path;

pub use compress::{Compression, XzFilter};
pub use imagetool_blockio::WriteAt;
pub use imagetool_fstree::{Timestamp, Tree};

/// The superblock's size in bytes.
pub const SUPERBLOCK_SIZE: u64 = 96;
/// The squashfs magic, `hsqs`.
pub const MAGIC: u32 = 0x7371_7368;
/// mksquashfs' default block size, 128 KiB.
pub const DEFAULT_BLOCK_SIZE: u32 = 128 << 10;
/// The image is padded to a multiple of this (mksquashfs' default), for loop devices.
pub const PAD: u64 = 4096;

pub use imagetool_blockio::error::ErrorKind;

imagetool_blockio::layer_error!(
    /// An error writing a filesystem, with the path or table it concerns: `context: message`
    /// (the layers' shared shape, [`imagetool_blockio::error`]).
    new(kind, context, message)
);

impl Error {
    /// An I/O error `what` (a write the target refuses as out of range is `NoSpace`).
    pub(crate) fn io(context: impl std::fmt::Display, what: &str, e: std::io::Error) -> Self {
        let kind = if e.kind() == std::io::ErrorKind::InvalidInput && what.starts_with("writing") {
            ErrorKind::NoSpace
        } else {
            ErrorKind::Io
        };
        Self(
            imagetool_blockio::error::Error::new(kind, format!("{what}: {e}"))
                .with_context(context.to_string())
                .with_source(e),
        )
    }

    /// The path, file or table concerned.
    #[must_use]
    pub fn context(&self) -> &str {
        self.0.context().unwrap_or_default()
    }
}

/// How to write the filesystem (mksquashfs' defaults unless said otherwise).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The compressor (`-comp`); default gzip, as mksquashfs.
    pub compression: Compression,
    /// The compression level (`-Xcompression-level`; for xz the liblzma preset); `None`: the
    /// compressor's default ([`Compression::default_level`]).
    pub level: Option<u32>,
    /// xz only: branch filters tried besides none on every block (`-Xbcj x86`).
    pub xz_filters: Vec<XzFilter>,
    /// Data block size (`-b`): a power of two from 4 KiB to 1 MiB; default 128 KiB.
    pub block_size: u32,
    /// The superblock's creation time (`SOURCE_DATE_EPOCH`; whole seconds, clamped to the
    /// field's unsigned 32 bits, [`Timestamp::clamp_u32`]); inode times come from the tree.
    pub mkfs_time: Timestamp,
    /// Pack files smaller than a block into fragment blocks (mksquashfs' default; off is
    /// `-no-fragments`).
    pub fragments: bool,
    /// Pack the tails of larger files into fragments too (`-always-use-fragments`).
    pub always_fragments: bool,
    /// Store identical files once (off is `-no-duplicates`).
    pub dedup: bool,
    /// Names of one node share an inode (off is `-no-hardlinks`: one inode per name, the data
    /// still stored once).
    pub hard_links: bool,
    /// Write the export table (NFS export; off is `-no-exports`).
    pub exports: bool,
    /// Write the tree's extended attributes (off is `-no-xattrs`).
    pub xattrs: bool,
    /// Worker threads; 0: one per core. The bytes do not depend on it.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            compression: Compression::Gzip,
            level: None,
            xz_filters: Vec::new(),
            block_size: DEFAULT_BLOCK_SIZE,
            mkfs_time: Timestamp::EPOCH,
            fragments: true,
            always_fragments: false,
            dedup: true,
            hard_links: true,
            exports: true,
            xattrs: true,
            threads: 0,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The filesystem's bytes (the superblock's `bytes_used`).
    pub bytes_used: u64,
    /// The bytes written, `bytes_used` padded to 4 KiB: the image's size.
    pub size: u64,
    /// Inodes.
    pub inodes: u32,
    /// Regular files (inodes, not names).
    pub files: u64,
    /// Bytes of file data in the tree.
    pub file_bytes: u64,
    /// Data blocks stored (holes and duplicates not counted).
    pub data_blocks: u64,
    /// Fragment blocks.
    pub fragments: u32,
    /// Files stored as references to an identical earlier file.
    pub duplicates: u64,
}

/// Writes `tree` as a squashfs filesystem at offset 0 of `out` and returns what it wrote.
///
/// `out` should be fresh (reading as zeros) or is overwritten up to [`Report::size`]; when a
/// duplicate file is detected after its blocks were written, the bytes past the end that held
/// them are zeroed again, so nothing but the filesystem is left behind.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for bad options or a name over 256 bytes, naming the option or
/// path; [`ErrorKind::Io`] naming the source file that could not be read;
/// [`ErrorKind::NoSpace`] when `out` is too small; [`ErrorKind::Unsupported`] or
/// [`ErrorKind::Overflow`] for trees squashfs cannot hold.
pub fn write<W: WriteAt + ?Sized>(tree: &Tree, opts: &Options, out: &W) -> Result<Report> {
    if !(4096..=1 << 20).contains(&opts.block_size) || !opts.block_size.is_power_of_two() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "block size",
            format!(
                "{} is not a power of two from 4096 to 1048576",
                opts.block_size
            ),
        ));
    }
    let codec = compress::Codec::new(
        opts.compression,
        opts.level,
        &opts.xz_filters,
        opts.block_size,
    )?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| Error::new(ErrorKind::Io, "threads", e.to_string()))?;
    pool.install(|| write_in_pool(tree, opts, &codec, out))
}

fn write_in_pool<W: WriteAt + ?Sized>(
    tree: &Tree,
    opts: &Options,
    codec: &compress::Codec,
    out: &W,
) -> Result<Report> {
    let put = |bytes: &[u8], at: u64, what: &str| {
        out.write_all_at(bytes, at)
            .map_err(|e| Error::io("output", &format!("writing the {what}"), e))
    };
    let mut pos = SUPERBLOCK_SIZE;
    let comp_opts = codec.options();
    if let Some(o) = &comp_opts {
        // Stored as an uncompressed metadata block.
        let mut b = (o.len() as u16 | 0x8000).to_le_bytes().to_vec();
        b.extend_from_slice(o);
        put(&b, pos, "compressor options")?;
        pos += b.len() as u64;
    }
    let walk = tree.walk();
    let data = data::write_data(
        tree,
        &walk,
        codec,
        &data::DataOptions {
            block_size: opts.block_size,
            fragments: opts.fragments,
            always_fragments: opts.always_fragments,
            dedup: opts.dedup,
        },
        out,
        pos,
    )?;
    drop(walk);
    pos = data.end;

    let t = inode::write_tables(
        tree,
        &data.locs,
        codec,
        opts.hard_links,
        opts.xattrs,
        opts.block_size,
    )?;
    let at = put_tables(&put, codec, opts, &t, &data.fragments, pos)?;
    let bytes_used = at.bytes_used;
    let size = bytes_used.div_ceil(PAD) * PAD;
    // The padding, and whatever a taken-back duplicate left past the end, reads as zeros.
    let zero_to = size.max(data.high_water.min(out.capacity()));
    let zeros = vec![0u8; 1 << 16];
    let mut z = bytes_used;
    while z < zero_to {
        let n = (zero_to - z).min(zeros.len() as u64);
        put(&zeros[..n as usize], z, "padding")?;
        z += n;
    }
    let fragment_count = data.fragments.len() as u32;
    let sb = superblock(opts, codec, &t, fragment_count, &at)?;
    put(&sb, 0, "superblock")?;

    Ok(Report {
        bytes_used,
        size,
        inodes: t.inode_count,
        files: data.stats.files,
        file_bytes: data.stats.bytes,
        data_blocks: data.stats.blocks,
        fragments: fragment_count,
        duplicates: data.stats.duplicates,
    })
}

/// Writes `bytes` at an offset of the output, naming `what` in its error.
type Put<'a> = dyn Fn(&[u8], u64, &str) -> Result<()> + 'a;

/// Writes the tables from `pos` on (`put`: the output's writer): inodes, directories, the
/// fragment, export, id and xattr tables; returns where each went.
fn put_tables(
    put: &Put<'_>,
    codec: &compress::Codec,
    opts: &Options,
    t: &inode::Tables,
    fragments: &[data::Fragment],
    mut pos: u64,
) -> Result<TableOffsets> {
    let inode_table = pos;
    put(&t.inodes, pos, "inode table")?;
    pos += t.inodes.len() as u64;
    let dir_table = pos;
    put(&t.dirs, pos, "directory table")?;
    pos += t.dirs.len() as u64;

    let mut frags = Vec::with_capacity(fragments.len() * 16);
    for f in fragments {
        frags.extend_from_slice(&f.start.to_le_bytes());
        frags.extend_from_slice(&f.size.to_le_bytes());
        frags.extend_from_slice(&0u32.to_le_bytes());
    }
    let (bytes, frag_table) = meta::lookup_table(codec, &frags, pos)?;
    put(&bytes, pos, "fragment table")?;
    pos += bytes.len() as u64;

    let mut export_table = u64::MAX;
    if opts.exports {
        let entries: Vec<u8> = t.export.iter().flat_map(|r| r.to_le_bytes()).collect();
        let (bytes, at) = meta::lookup_table(codec, &entries, pos)?;
        put(&bytes, pos, "export table")?;
        pos += bytes.len() as u64;
        export_table = at;
    }

    let ids: Vec<u8> = t.ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    let (bytes, id_table) = meta::lookup_table(codec, &ids, pos)?;
    put(&bytes, pos, "id table")?;
    pos += bytes.len() as u64;

    let mut xattr_table = u64::MAX;
    if !t.xattr_sets.is_empty() {
        let (bytes, at) = xattr::xattr_table(codec, &t.xattr_sets, pos)?;
        put(&bytes, pos, "xattr table")?;
        pos += bytes.len() as u64;
        xattr_table = at;
    }

    Ok(TableOffsets {
        bytes_used: pos,
        id_table,
        xattr_table,
        inode_table,
        dir_table,
        frag_table,
        export_table,
    })
}

/// Where the tables went (byte offsets; `u64::MAX` for an absent one) and the bytes used.
struct TableOffsets {
    bytes_used: u64,
    id_table: u64,
    xattr_table: u64,
    inode_table: u64,
    dir_table: u64,
    frag_table: u64,
    export_table: u64,
}

/// The superblock: the counts, the flags of `opts` and the compressor, the tables' offsets.
fn superblock(
    opts: &Options,
    codec: &compress::Codec,
    t: &inode::Tables,
    fragment_count: u32,
    at: &TableOffsets,
) -> Result<Vec<u8>> {
    let mut flags: u16 = 0;
    if !opts.fragments {
        flags |= 0x0010;
    }
    if opts.always_fragments {
        flags |= 0x0020;
    }
    if opts.dedup {
        flags |= 0x0040;
    }
    if opts.exports {
        flags |= 0x0080;
    }
    if t.xattr_sets.is_empty() {
        flags |= 0x0200;
    }
    if codec.options().is_some() {
        flags |= 0x0400;
    }
    let id_count = u16::try_from(t.ids.len())
        .map_err(|_| Error::new(ErrorKind::Unsupported, "ids", "more than 65535 owner ids"))?;
    let mut sb = Vec::with_capacity(SUPERBLOCK_SIZE as usize);
    sb.extend_from_slice(&MAGIC.to_le_bytes());
    sb.extend_from_slice(&t.inode_count.to_le_bytes());
    sb.extend_from_slice(&opts.mkfs_time.clamp_u32().to_le_bytes());
    sb.extend_from_slice(&opts.block_size.to_le_bytes());
    sb.extend_from_slice(&fragment_count.to_le_bytes());
    sb.extend_from_slice(&codec.compression().id().to_le_bytes());
    sb.extend_from_slice(&(opts.block_size.trailing_zeros() as u16).to_le_bytes());
    sb.extend_from_slice(&flags.to_le_bytes());
    sb.extend_from_slice(&id_count.to_le_bytes());
    sb.extend_from_slice(&4u16.to_le_bytes());
    sb.extend_from_slice(&0u16.to_le_bytes());
    sb.extend_from_slice(&t.root_ref.to_le_bytes());
    sb.extend_from_slice(&at.bytes_used.to_le_bytes());
    sb.extend_from_slice(&at.id_table.to_le_bytes());
    sb.extend_from_slice(&at.xattr_table.to_le_bytes());
    sb.extend_from_slice(&at.inode_table.to_le_bytes());
    sb.extend_from_slice(&at.dir_table.to_le_bytes());
    sb.extend_from_slice(&at.frag_table.to_le_bytes());
    sb.extend_from_slice(&at.export_table.to_le_bytes());
    Ok(sb)
}

/// A host file that grows as it is written (the squashfs size is known only at the end).
struct GrowingFile<'f>(&'f std::fs::File);

impl WriteAt for GrowingFile<'_> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self.0, buf, offset)
    }

    fn capacity(&self) -> u64 {
        i64::MAX as u64
    }
}

/// Writes `tree` as a squashfs file at `path`: created under a temporary name beside it and
/// renamed when complete, so a failure leaves no file behind.
///
/// # Errors
/// As [`write()`], plus [`ErrorKind::Io`] naming `path` when it cannot be created, synced or
/// renamed.
pub fn write_file(tree: &Tree, opts: &Options, path: &Path) -> Result<Report> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| Error::io(path.display(), &what, e)
    };
    let atomic = imagetool_blockio::AtomicFile::create(path).map_err(io("create"))?;
    let report = write(tree, opts, &GrowingFile(atomic.file()))?;
    atomic.file().set_len(report.size).map_err(io("truncate"))?;
    atomic.file().sync_all().map_err(io("sync"))?;
    atomic.commit().map_err(io("rename"))?;
    Ok(report)
}
