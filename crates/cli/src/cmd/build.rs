//! `imagetool build`: a NixOS closure to a disk image (make-disk-image without the VM).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use imagetool::boot::Bootloader;
use imagetool::build::{ImageSpec, Phase, Progress, build};
use imagetool::nix::closure::ClosureInput;
use imagetool::nix::root::Content;
use imagetool::vdisk::{Compression, Format, Options};

/// Arguments of `build`.
#[derive(Debug, Parser)]
pub struct Args {
    /// The system toplevel store path (config.system.build.toplevel).
    #[arg(long)]
    toplevel: Option<String>,
    /// A closureInfo output directory (store-paths + registration).
    #[arg(
        long,
        required_unless_present = "references_graph",
        conflicts_with = "references_graph"
    )]
    closure_info: Option<PathBuf>,
    /// An exportReferencesGraph file (plain, or structured-attrs JSON).
    #[arg(long)]
    references_graph: Option<PathBuf>,
    /// The directory holding nix/store with the closure's contents.
    #[arg(long, default_value = "/")]
    store_root: PathBuf,
    /// An extra store path for the image, with everything it refers to (repeatable).
    #[arg(long = "additional-path")]
    additional_paths: Vec<String>,
    /// Recompute every NAR hash of the closure; fail on a mismatch.
    #[arg(long)]
    verify_closure: bool,
    #[command(flatten)]
    layout: super::layout_args::LayoutArgs,
    /// Root filesystem label (default nixos; nix-store with --only-nix-store).
    #[arg(long)]
    label: Option<String>,
    /// The ext4 UUID (make-disk-image's rootFSUID; default: the root partition GUID).
    #[arg(long)]
    root_fs_uuid: Option<String>,
    /// Copied to /etc/nixos/configuration.nix.
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// SOURCE:TARGET[:MODE[:USER:GROUP]] copied into the image (repeatable; `*` globs).
    #[arg(long = "contents")]
    contents: Vec<String>,
    /// A channel store path for root's channels profile.
    #[arg(long)]
    channel: Option<String>,
    /// The image is the contents of /nix/store only (label nix-store).
    #[arg(long)]
    only_nix_store: bool,
    /// Bootloader: auto (systemd-boot for EFI when the closure has it, else GRUB; GRUB for
    /// BIOS; none for --partition none), systemd-boot, grub or none.
    #[arg(long, default_value = "auto")]
    bootloader: String,
    /// raw, qcow2, qcow2-compressed, vdi, vpc, vhd-fixed, vhdx, vmdk, vmdk-stream.
    #[arg(long, default_value = "raw")]
    format: String,
    /// Codec of qcow2-compressed: deflate or zstd.
    #[arg(long)]
    compression: Option<String>,
    /// Data-copy and compression threads (0: one per core); never changes the output.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// The image file to write.
    #[arg(long)]
    output: PathBuf,
}

/// One line per phase on stderr: suits both a terminal and a Nix build log.
struct Lines;

impl Progress for Lines {
    fn finished(&mut self, phase: Phase, elapsed: Duration, detail: &str) {
        let _ = writeln!(
            std::io::stderr(),
            "imagetool: {:<10} {:>7.2}s  {detail}",
            phase.name(),
            elapsed.as_secs_f64()
        );
    }
}

pub fn run(a: Args) -> Result<()> {
    let bootloader: Bootloader = a.bootloader.parse()?;
    let format: Format = a.format.parse().context("--format")?;
    let compression: Compression = match &a.compression {
        Some(c) => c.parse().context("--compression")?,
        None => Compression::default(),
    };
    let closure = match (&a.closure_info, &a.references_graph) {
        (Some(d), _) => ClosureInput::ClosureInfo(d.clone()),
        (None, Some(f)) => ClosureInput::ReferencesGraph(f.clone()),
        (None, None) => return Err(anyhow!("give --closure-info or --references-graph")),
    };
    let contents = a
        .contents
        .iter()
        .map(|c| Content::parse(c).map_err(|e| anyhow!("{e}")))
        .collect::<Result<Vec<_>>>()?;
    let spec = ImageSpec {
        toplevel: a.toplevel.clone(),
        closure,
        store_root: a.store_root.clone(),
        additional_paths: a.additional_paths.clone(),
        verify_closure: a.verify_closure,
        layout: a.layout.options()?,
        label: a.label.clone(),
        root_fs_uuid: a.root_fs_uuid.clone(),
        config_file: a.config_file.clone(),
        contents,
        channel: a.channel.clone(),
        only_nix_store: a.only_nix_store,
        bootloader,
        format,
        format_options: Options {
            compression,
            ..Options::default()
        },
        output: a.output.clone(),
        threads: a.threads,
        timestamp: super::source_date_epoch()?,
    };
    let report =
        build(&spec, &mut Lines).with_context(|| format!("building {}", a.output.display()))?;
    println!(
        "{}: {} {} table, {} MiB, {} store paths",
        report.output.display(),
        report.format,
        report.layout.table,
        report.disk_size >> 20,
        report.store_paths
    );
    Ok(())
}
