//! `imagetool build --format iso`: the NixOS live/installer ISO (iso-image.nix) through
//! [`imagetool::iso`]. Called from `build`; kept apart so the disk-image path stays as it was.

use std::path::PathBuf;

use anyhow::{Context, Result};
use imagetool::iso::{IsoSpec, StoreImage, build_iso_cancellable, native_options};
use imagetool::nix::closure::ClosureInput;
use imagetool::squashfs::Compression;

use super::usage;

/// What `build` passes on for an ISO.
pub struct IsoArgs {
    pub toplevel: Option<String>,
    pub closure_info: Option<PathBuf>,
    pub references_graph: Option<PathBuf>,
    pub store_root: PathBuf,
    pub output: Option<PathBuf>,
    pub volume_id: Option<String>,
    pub store_image: Option<PathBuf>,
    pub squashfs_comp: Option<String>,
    pub squashfs_level: Option<u32>,
    pub compression: Option<String>,
    pub timeout: Option<u32>,
    pub json: bool,
}

pub fn run(a: IsoArgs) -> Result<()> {
    let closure = match (a.closure_info, a.references_graph) {
        (Some(c), _) => ClosureInput::ClosureInfo(c),
        (None, Some(r)) => ClosureInput::ReferencesGraph(r),
        (None, None) => {
            return Err(usage!(
                "--format iso: give --closure-info or --references-graph"
            ));
        }
    };
    let Some(toplevel) = a.toplevel else {
        return Err(usage!(
            "--format iso: --toplevel is required (its bootspec gives the boot entries)"
        ));
    };
    let Some(output) = a.output else {
        return Err(usage!("--format iso: --output is required"));
    };
    let store_image = match a.store_image {
        Some(f) => {
            if a.squashfs_comp.is_some() || a.squashfs_level.is_some() {
                return Err(usage!(
                    "--squashfs-comp/--squashfs-level set how imagetool writes the store image; \
                     --store-image {} gives one made elsewhere: use one or the other",
                    f.display()
                ));
            }
            StoreImage::File(f)
        }
        None => match (a.squashfs_comp.as_deref(), a.squashfs_level) {
            (None, None) => StoreImage::native_default(),
            (comp, level) => {
                let comp: Compression = comp
                    .unwrap_or("zstd")
                    .parse()
                    .map_err(|e| usage!("--squashfs-comp: {e}"))?;
                // Upstream's level 19 for zstd; the compressor's own default otherwise.
                let level = level.or((comp == Compression::Zstd).then_some(19));
                StoreImage::Native(native_options(comp, level))
            }
        },
    };
    let compress = match a.compression.as_deref() {
        None => false,
        Some("zstd") => true,
        Some(other) => {
            return Err(usage!(
                "--compression {other}: an ISO is compressed with zstd or not at all"
            ));
        }
    };
    if let Some(v) = &a.volume_id
        && v.len() > 32
    {
        return Err(usage!(
            "--volume-id {v:?}: {} characters; ISO 9660 allows 32",
            v.len()
        ));
    }
    super::check_output_dir("--output", &output)?;
    let mut spec = IsoSpec::new(toplevel, closure, output.clone());
    spec.store_root = a.store_root;
    spec.volume_id = a.volume_id;
    spec.store_image = store_image;
    spec.epoch = super::source_date_epoch()?;
    spec.timeout = a.timeout.unwrap_or(10);
    spec.compress = compress;
    super::cancel_on_signals()?;
    let meter = super::progress::Meter::spinner("iso");
    let r = build_iso_cancellable(&spec, super::cancel())
        .with_context(|| format!("building {}", output.display()))?;
    meter.finish(&format!("{} bytes", r.iso_size));
    if a.json {
        return super::json_out(
            "build",
            serde_json::json!({
                "output": r.output,
                "format": if spec.compress { "iso.zst" } else { "iso" },
                "volumeId": r.volume_id,
                "isoSize": r.iso_size,
                "storePaths": r.store_paths,
                "kernelParams": r.kernel_params,
            }),
        );
    }
    super::out(format_args!(
        "{}: ISO 9660 (El Torito BIOS + EFI, isohybrid), volume {}, {} MiB, {} store paths",
        r.output.display(),
        r.volume_id,
        r.iso_size >> 20,
        r.store_paths
    ))
}
