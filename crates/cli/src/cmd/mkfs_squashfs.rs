//! `imagetool mkfs squashfs`: a drop-in for `mksquashfs DIR OUT -comp … -b …`.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;
use imagetool::disk::parse_size;
use imagetool::mkfs::{SquashfsJob, mkfs_squashfs, source_date_epoch};
use imagetool::squashfs::{Compression, Options, XzFilter};

/// `imagetool mkfs squashfs` arguments.
#[derive(Debug, Args)]
pub struct SquashfsArgs {
    /// The directory whose contents become the filesystem root.
    #[arg(long, short = 'd')]
    source: PathBuf,
    /// The image file to write (created atomically).
    output: PathBuf,
    /// Compressor: gzip, xz, zstd or lz4 (mksquashfs' -comp).
    #[arg(long, default_value = "gzip")]
    comp: String,
    /// Data block size, a power of two from 4K to 1M (mksquashfs' -b); K/M suffixes allowed.
    #[arg(long, short = 'b', default_value = "128K")]
    block_size: String,
    /// Compression level (-Xcompression-level; the liblzma preset for xz). Default: the
    /// compressor's (gzip 9, xz 6, zstd 15; lz4 has none).
    #[arg(long)]
    level: Option<u32>,
    /// xz branch filters tried besides none, comma separated (-Xbcj x86,arm).
    #[arg(long, value_delimiter = ',')]
    xz_bcj: Vec<String>,
    /// Force every owner to root:root (-all-root).
    #[arg(long)]
    all_root: bool,
    /// One inode per name: hard links become separate files sharing their data (-no-hardlinks).
    #[arg(long)]
    no_hardlinks: bool,
    /// Store every file's blocks, even when identical to an earlier file's (-no-duplicates).
    #[arg(long)]
    no_duplicates: bool,
    /// No fragment blocks (-no-fragments).
    #[arg(long)]
    no_fragments: bool,
    /// Pack the tails of large files into fragments too (-always-use-fragments).
    #[arg(long)]
    always_use_fragments: bool,
    /// No export table (-no-exports).
    #[arg(long)]
    no_exports: bool,
    /// Leave extended attributes out (-no-xattrs).
    #[arg(long)]
    no_xattrs: bool,
    /// Worker threads (0: one per core). The output does not depend on it.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Runs `mkfs squashfs`.
pub fn run(a: SquashfsArgs) -> Result<()> {
    let compression: Compression = a.comp.parse().map_err(|e| anyhow!("--comp: {e}"))?;
    let block_size = parse_size(&a.block_size).map_err(|e| anyhow!("--block-size: {e}"))?;
    let block_size = u32::try_from(block_size)
        .map_err(|_| anyhow!("--block-size {}: larger than 1M", a.block_size))?;
    let xz_filters = a
        .xz_bcj
        .iter()
        .map(|f| f.parse::<XzFilter>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("--xz-bcj: {e}"))?;
    let job = SquashfsJob {
        source: a.source,
        output: a.output,
        root_owner: a.all_root,
        epoch: source_date_epoch().map_err(anyhow::Error::msg)?,
        options: Options {
            compression,
            level: a.level,
            xz_filters,
            block_size,
            fragments: !a.no_fragments,
            always_fragments: a.always_use_fragments,
            dedup: !a.no_duplicates,
            hard_links: !a.no_hardlinks,
            exports: !a.no_exports,
            xattrs: !a.no_xattrs,
            threads: a.threads,
            ..Options::default()
        },
    };
    let r = mkfs_squashfs(&job)?;
    println!(
        "{}: squashfs {}, {} bytes, {} inodes, {} files ({} bytes, {} duplicates), {} blocks, {} fragments",
        job.output.display(),
        compression,
        r.size,
        r.inodes,
        r.files,
        r.file_bytes,
        r.duplicates,
        r.data_blocks,
        r.fragments
    );
    Ok(())
}
