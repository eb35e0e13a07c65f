//! `imagetool convert [-f IN_FMT] IN -O OUT_FMT -o OUT`, with qemu-img's meaning of `-f`
//! (the input's format) and `-O` (the output's).

use std::path::PathBuf;

use anyhow::{Context, Result};
use imagetool::blockio::{Cancellable, OutputMode};
use imagetool::vdisk::{self, Compression, Format, Options};

use super::usage;

/// Arguments of `convert`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  imagetool convert nixos.raw -O qcow2 -o nixos.qcow2
  imagetool convert -f qcow2 nixos.qcow2 -O vhdx -o nixos.vhdx
  imagetool convert nixos.raw -O qcow2-compressed --compression zstd --level 9 -o nixos.qcow2")]
pub struct Args {
    /// The input image: raw (its size a multiple of 512), qcow2, vdi, vpc, vhd-fixed, vhdx
    /// or vmdk.
    input: PathBuf,
    /// The input's format (qemu-img's -f); checked against the file's magic. Default:
    /// detected from the magic (no known magic: raw).
    #[arg(short = 'f', long = "input-format", value_name = "FMT")]
    input_format: Option<String>,
    /// Output format: raw, qcow2, qcow2-compressed, vdi, vpc, vhd-fixed, vhdx, vmdk,
    /// vmdk-stream (qemu-img's -O). `--format` is the old spelling, kept for one release.
    #[arg(
        short = 'O',
        long = "output-format",
        visible_alias = "format",
        value_name = "FMT"
    )]
    output_format: String,
    /// Output file (written atomically: nothing is left behind on failure). `-` (stdout) is
    /// refused: every container is written out of order.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Codec of qcow2-compressed clusters: deflate (default) or zstd. Only with
    /// `-O qcow2-compressed`.
    #[arg(long)]
    compression: Option<String>,
    /// Compression level (deflate 0-9, default 9; zstd 1-22, default 3). Only with
    /// `-O qcow2-compressed` or `-O vmdk-stream`.
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
    /// Print the report as JSON (schema docs/imagetool-output.schema.json).
    #[arg(long)]
    json: bool,
}

/// The checks that need no I/O: the formats, the codec and level against the format, the
/// output name.
fn check(args: &Args) -> Result<(Format, Compression)> {
    let format: Format = args
        .output_format
        .parse()
        .map_err(|e: vdisk::Error| usage!("-O/--output-format: {e}"))?;
    if let Some(f) = &args.input_format
        && !INPUT_FORMATS.contains(&f.as_str())
    {
        return Err(usage!(
            "-f/--input-format {f:?}: expected one of {}",
            INPUT_FORMATS.join(", ")
        ));
    }
    let compression: Compression = match &args.compression {
        Some(_) if format != Format::Qcow2Compressed => {
            return Err(usage!(
                "--compression applies to -O qcow2-compressed only (the output format is {format})"
            ));
        }
        Some(c) => c
            .parse()
            .map_err(|e: vdisk::Error| usage!("--compression: {e}"))?,
        None => Compression::default(),
    };
    if let Some(level) = args.level {
        let range = match (format, compression) {
            (Format::Qcow2Compressed, Compression::Zstd) => 1..=22,
            (Format::Qcow2Compressed | Format::VmdkStream, _) => 0..=9,
            _ => {
                return Err(usage!(
                    "--level applies to -O qcow2-compressed and vmdk-stream only (the output \
                     format is {format})"
                ));
            }
        };
        if !range.contains(&level) {
            return Err(usage!(
                "--level {level}: out of range for {format} ({}..={})",
                range.start(),
                range.end()
            ));
        }
    }
    if args.output.as_os_str() == "-" {
        return Err(usage!(
            "-o -: convert does not write to stdout (containers are written out of order); \
             name a file"
        ));
    }
    super::check_output_dir("-o/--output", &args.output)?;
    Ok((format, compression))
}

/// The names `-f` accepts (the containers the readers detect).
const INPUT_FORMATS: &[&str] = &["raw", "qcow2", "vdi", "vpc", "vhd-fixed", "vhdx", "vmdk"];

/// Runs `convert`.
pub fn run(args: &Args) -> Result<()> {
    let (format, compression) = check(args)?;
    let src = vdisk::open_input(&args.input)?;
    let found = src.container().name();
    if let Some(f) = &args.input_format
        && f != found
        // A VHD's fixed and dynamic forms are one format to qemu-img (`vpc`).
        && !(f == "vpc" && found == "vhd-fixed")
    {
        return Err(usage!(
            "-f {f}: {} is {found} (by its magic)",
            args.input.display()
        ));
    }
    let mut opts = Options::default();
    opts.compression = compression;
    opts.threads = args.threads;
    opts.level = args.level;
    opts.output_mode = if args.output_device {
        OutputMode::Device
    } else {
        OutputMode::Replace
    };
    super::cancel_on_signals()?;
    let cancel = super::cancel();
    let src = Cancellable::new(&src, cancel);
    let progress = super::progress::Meter::new("convert", &src)?;
    let metered = progress.wrap(&src);
    let report = vdisk::convert(&metered, format, &args.output, &opts)
        .with_context(|| format!("converting {} to {format}", args.input.display()))?;
    progress.finish(&format!("{} bytes written", report.file_size));
    if args.json {
        return super::json_out(
            "convert",
            serde_json::json!({
                "input": args.input,
                "inputFormat": found,
                "output": args.output,
                "format": report.format.name(),
                "virtualSize": report.virtual_size,
                "fileSize": report.file_size,
                "dataGrains": report.data_grains,
            }),
        );
    }
    super::out(format_args!(
        "{}: {} ({} bytes virtual, {} bytes written, {} data grains)",
        args.output.display(),
        report.format,
        report.virtual_size,
        report.file_size,
        report.data_grains
    ))
}
