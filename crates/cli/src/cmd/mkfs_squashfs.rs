//! `imagetool mkfs squashfs`: a drop-in for `mksquashfs DIR OUT -comp … -b …`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use imagetool::mkfs::{SquashfsJob, mkfs_squashfs_cancellable, source_date_epoch};
use imagetool::squashfs::{Compression, Options, XzFilter};

use super::usage;

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
    /// Data block size, a power of two from 4K to 1M (mksquashfs' -b); a size (bytes, 128K,
    /// 1MiB).
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
    /// Print the report as JSON (schema docs/imagetool-output.schema.json).
    #[arg(long)]
    json: bool,
}

/// Runs `mkfs squashfs`.
pub fn run(a: SquashfsArgs) -> Result<()> {
    let compression: Compression = a.comp.parse().map_err(|e| usage!("--comp: {e}"))?;
    let block_size =
        crate::size::parse("--block-size", &a.block_size).map_err(|e| usage!("{e}"))?;
    if !(4096..=1 << 20).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(usage!(
            "--block-size {}: expected a power of two from 4K to 1M",
            a.block_size
        ));
    }
    let block_size = block_size as u32;
    if let Some(level) = a.level {
        let range = match compression {
            Compression::Gzip => Some(1..=9),
            Compression::Xz => Some(0..=9),
            Compression::Zstd => Some(1..=22),
            _ => None,
        };
        match range {
            Some(r) if !r.contains(&level) => {
                return Err(usage!(
                    "--level {level}: out of range for {compression} ({}..={})",
                    r.start(),
                    r.end()
                ));
            }
            None => return Err(usage!("--level: {compression} has no compression level")),
            Some(_) => {}
        }
    }
    let xz_filters = a
        .xz_bcj
        .iter()
        .map(|f| f.parse::<XzFilter>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage!("--xz-bcj: {e}"))?;
    if !xz_filters.is_empty() && compression != Compression::Xz {
        return Err(usage!("--xz-bcj applies to --comp xz only"));
    }
    super::check_output_dir("OUTPUT", &a.output)?;
    let mut job = SquashfsJob::new(a.source, a.output);
    job.root_owner = a.all_root;
    job.epoch = source_date_epoch().map_err(|e| usage!("{e}"))?;
    job.options = {
        let mut o = Options::default();
        o.compression = compression;
        o.level = a.level;
        o.xz_filters = xz_filters;
        o.block_size = block_size;
        o.fragments = !a.no_fragments;
        o.always_fragments = a.always_use_fragments;
        o.dedup = !a.no_duplicates;
        o.hard_links = !a.no_hardlinks;
        o.exports = !a.no_exports;
        o.xattrs = !a.no_xattrs;
        o.threads = a.threads;
        o
    };
    super::cancel_on_signals()?;
    let meter = super::progress::Meter::spinner("mkfs squashfs");
    let r = mkfs_squashfs_cancellable(&job, super::cancel())?;
    meter.finish(&format!("{} bytes", r.size));
    if a.json {
        return super::json_out(
            "mkfs",
            serde_json::json!({
                "filesystem": "squashfs",
                "output": job.output,
                "compression": compression.to_string(),
                "size": r.size,
                "inodes": r.inodes,
                "files": r.files,
                "fileBytes": r.file_bytes,
                "duplicates": r.duplicates,
                "dataBlocks": r.data_blocks,
                "fragments": r.fragments,
            }),
        );
    }
    super::out(format_args!(
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
    ))
}
