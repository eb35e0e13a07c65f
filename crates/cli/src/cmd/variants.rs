//! `imagetool variants` (the list) and `build --variant` (one variant into a directory: a disk
//! through [`imagetool::variant`], the others through [`imagetool::tarball`]).

use std::path::Path;

use anyhow::{Context, Result};
use clap::Parser;
use imagetool::spec::Spec;
use imagetool::tarball::{TreeVariant, build_tree_variant};
use imagetool::variant::{Variant, build_variant};

use super::build_progress::{Bars, Json, Plain, ProgressMode, Quiet, emit};

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
    for v in TreeVariant::ALL {
        if a.json {
            emit(&serde_json::json!({
                "variant": v.name(),
                "module": v.module(),
                "files": v.file_names("<baseName>"),
            }));
        } else {
            println!("{:<20} {}", v.name(), v.describe());
        }
    }
    Ok(())
}

/// Builds `spec`'s variant when it is not a disk (lxc, docker, netboot, iso, …) into
/// `out_dir`; `false` for a disk variant.
fn run_tree_build(
    spec: &Spec,
    out_dir: &Path,
    mode: ProgressMode,
    manifest: Option<&Path>,
) -> Result<bool> {
    let Some(tb) = spec.resolve_tree_variant(out_dir, super::source_date_epoch()?)? else {
        return Ok(false);
    };
    if manifest.is_some() {
        anyhow::bail!(
            "--manifest describes disk images; the {} variant writes no disk",
            tb.variant
        );
    }
    super::cancel_on_signals()?;
    let cancel = super::cancel();
    let result = match mode {
        ProgressMode::Plain => build_tree_variant(&tb, &mut Plain::default(), cancel),
        ProgressMode::Bar => build_tree_variant(&tb, &mut Bars::default(), cancel),
        ProgressMode::Json => build_tree_variant(&tb, &mut Json, cancel),
        ProgressMode::None => build_tree_variant(&tb, &mut Quiet, cancel),
    };
    let report = result.with_context(|| format!("building the {} variant", tb.variant))?;
    if mode == ProgressMode::Json {
        emit(&serde_json::json!({
            "event": "done",
            "variant": tb.variant.name(),
            "artifact": report.files.first(),
            "files": report.files,
            "storePaths": report.store_paths,
        }));
    } else {
        for f in &report.files {
            println!("{}: {} variant", f.display(), tb.variant);
        }
    }
    Ok(true)
}

/// Builds `spec`'s variant into `out_dir`.
pub fn run_build(
    spec: &Spec,
    out_dir: &Path,
    mode: ProgressMode,
    manifest: Option<&Path>,
    json: bool,
) -> Result<()> {
    if run_tree_build(spec, out_dir, mode, manifest)? {
        return Ok(());
    }
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
