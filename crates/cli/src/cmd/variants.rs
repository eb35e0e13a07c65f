//! `imagetool variants` (the list) and `build --variant` (one variant into a directory).

use std::path::Path;

use anyhow::{Context, Result};
use clap::Parser;
use imagetool::spec::Spec;
use imagetool::variant::{Variant, build_variant};

use super::build::{Bars, Json, Plain, ProgressMode, Quiet, emit};

/// Arguments of `variants`.
#[derive(Debug, Parser)]
pub struct Args {
    /// Print JSON (one object per variant) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Lists every variant with what it produces.
pub fn run(a: &Args) -> Result<()> {
    for v in Variant::ALL {
        let p = v.profile();
        if a.json {
            emit(&serde_json::json!({
                "variant": v.name(),
                "module": p.module,
                "partitionTableType": p.table,
                "format": p.format.name(),
                "diskSize": p.disk_size,
                "additionalSpace": p.additional_space,
                "bootSize": p.boot_size,
                "file": v.file_name("<baseName>", None),
            }));
        } else {
            super::out(format_args!("{:<20} {}", v.name(), v.describe()))?;
        }
    }
    Ok(())
}

/// Builds `spec`'s variant into `out_dir`.
pub fn run_build(
    spec: &Spec,
    out_dir: &Path,
    mode: ProgressMode,
    manifest: Option<&Path>,
    json: bool,
) -> Result<()> {
    let vb = spec
        .resolve_variant(out_dir, super::source_date_epoch()?)?
        .context("no variant")?;
    let result = match mode {
        ProgressMode::Plain => build_variant(&vb, &mut Plain::default()),
        ProgressMode::Bar => build_variant(&vb, &mut Bars::default()),
        ProgressMode::Json => build_variant(&vb, &mut Json),
        ProgressMode::None => build_variant(&vb, &mut Quiet),
    };
    let report = result.with_context(|| format!("building the {} variant", vb.variant))?;
    if let Some(path) = manifest {
        let m = imagetool::manifest::manifest(
            &report.disk,
            &[imagetool::manifest::Output {
                file: report.artifact.clone(),
                format: vb.variant.artifact_format(report.disk.format),
                variant: Some(vb.variant.name().to_string()),
            }],
        )?;
        std::fs::write(path, format!("{m:#}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        let mut v = report.disk.to_json();
        v["variant"] = serde_json::json!(vb.variant.name());
        v["artifact"] = serde_json::json!(report.artifact);
        v["files"] = serde_json::json!(report.files);
        super::json_out("build", v)?;
    } else if mode == ProgressMode::Json {
        emit(&serde_json::json!({
            "event": "done",
            "variant": vb.variant.name(),
            "artifact": report.artifact,
            "files": report.files,
            "format": report.disk.format.name(),
            "table": report.disk.layout.table.name(),
            "diskSize": report.disk.disk_size,
        }));
    } else {
        super::out(format_args!(
            "{}: {} variant, {} {} table, {} MiB",
            report.artifact.display(),
            vb.variant,
            report.disk.format,
            report.disk.layout.table,
            report.disk.disk_size >> 20
        ))?;
    }
    Ok(())
}
