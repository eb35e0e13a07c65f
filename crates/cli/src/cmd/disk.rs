//! `imagetool disk`: a partitioned raw disk from filesystem blobs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use imagetool::disk::{DiskSpec, build_disk_cancellable};
use imagetool::fat::Tree;

/// Arguments of `disk`.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(flatten)]
    layout: super::layout_args::LayoutArgs,
    /// The root filesystem image.
    #[arg(long)]
    root_fs: PathBuf,
    /// Directory copied into the ESP.
    #[arg(long)]
    esp_dir: Option<PathBuf>,
    /// Directory copied into the BOOT partition (efixbootldr, legacy+boot).
    #[arg(long)]
    boot_dir: Option<PathBuf>,
    /// The raw image to write.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Print the report as JSON (schema docs/imagetool-output.schema.json).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let tree = |d: &Option<PathBuf>, opt: &str| -> Result<Option<Tree>> {
        d.as_ref()
            .map(|p| Tree::from_dir(p).with_context(|| format!("{opt} {}", p.display())))
            .transpose()
    };
    let layout = a.layout.options()?;
    super::check_output_dir("--output", &a.output)?;
    let mut spec = DiskSpec::new(a.root_fs.clone(), a.output.clone());
    spec.layout = layout;
    spec.esp = tree(&a.esp_dir, "--esp-dir")?;
    spec.boot = tree(&a.boot_dir, "--boot-dir")?;
    spec.timestamp = super::source_date_epoch()?;
    super::cancel_on_signals()?;
    let meter = super::progress::Meter::spinner("disk");
    let report = build_disk_cancellable(&spec, super::cancel())
        .with_context(|| format!("building {}", a.output.display()))?;
    let l = &report.layout;
    meter.finish(&format!("{} bytes", l.disk_size));
    let written: u64 = report.written.iter().map(|r| r.end - r.start).sum();
    if a.json {
        let mut v = report.to_json();
        v["output"] = serde_json::json!(a.output);
        return super::json_out("disk", v);
    }
    super::out(format_args!(
        "{}: {} table, {} bytes",
        a.output.display(),
        l.table,
        l.disk_size
    ))?;
    for p in &l.partitions {
        super::out(format_args!(
            "  {} {:?}: sectors {}..={} ({} bytes){}",
            p.number,
            p.role,
            p.first_lba,
            p.last_lba,
            p.sectors() * 512,
            p.guid.map_or(String::new(), |g| format!(" GUID {g}"))
        ))?;
    }
    super::out(format_args!(
        "  {written} bytes allocated in {} extents",
        report.written.len()
    ))?;
    Ok(())
}
