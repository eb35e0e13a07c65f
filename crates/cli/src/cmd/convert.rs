//! `imagetool convert IN --format F --output OUT`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use imagetool::blockio::{Cancellable, OutputMode};
use imagetool::vdisk::{self, Compression, Format, Options};

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The input image: raw (its size a multiple of 512) or qcow2.
    input: PathBuf,
    /// Output format: raw, qcow2, qcow2-compressed, vdi, vpc, vhd-fixed, vhdx, vmdk, vmdk-stream.
    #[arg(long, short = 'f')]
    format: String,
    /// Output file (written atomically: nothing is left behind on failure).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Codec of qcow2-compressed clusters: deflate (default) or zstd.
    #[arg(long)]
    compression: Option<String>,
    /// Compression level (deflate 0-9, default 9; zstd 1-22, default 3).
    #[arg(long)]
    level: Option<u32>,
    /// Worker threads (default: one per core); never changes the output.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// --output names an existing block or character device to write in place (raw only; a
    /// failed or interrupted write leaves it partly written). Without it, an existing output
    /// that is not a regular file is refused.
    #[arg(long)]
    output_device: bool,
}

/// Runs `convert`.
pub fn run(args: &Args) -> Result<()> {
    let format: Format = args.format.parse()?;
    let compression: Compression = match &args.compression {
        Some(c) => c.parse()?,
        None => Compression::default(),
    };
    let src = vdisk::open_input(&args.input)?;
    let opts = Options {
        compression,
        threads: args.threads,
        level: args.level,
        output_mode: if args.output_device {
            OutputMode::Device
        } else {
            OutputMode::Replace
        },
        ..Options::default()
    };
    super::cancel_on_signals()?;
    let cancel = super::cancel();
    let src = Cancellable::new(&src, cancel);
    let report = vdisk::convert(&src, format, &args.output, &opts)
        .with_context(|| format!("converting {} to {format}", args.input.display()))?;
    super::out(format_args!(
        "{}: {} ({} bytes virtual, {} bytes written, {} data grains)",
        args.output.display(),
        report.format,
        report.virtual_size,
        report.file_size,
        report.data_grains
    ))
}
