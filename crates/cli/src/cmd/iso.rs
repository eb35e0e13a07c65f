//! `imagetool build --format iso`: the NixOS live/installer ISO (iso-image.nix) through
//! [`imagetool::iso`]. Called from `build`; kept apart so the disk-image path stays as it was.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use imagetool::iso::{IsoSpec, StoreImage, build_iso};
use imagetool::nix::closure::ClosureInput;

/// What `build` passes on for an ISO.
pub struct IsoArgs {
    pub toplevel: Option<String>,
    pub closure_info: Option<PathBuf>,
    pub references_graph: Option<PathBuf>,
    pub store_root: PathBuf,
    pub output: Option<PathBuf>,
    pub volume_id: Option<String>,
    pub store_image: Option<PathBuf>,
    pub compression: Option<String>,
    pub timeout: Option<u32>,
}

pub fn run(a: IsoArgs) -> Result<()> {
    let closure = match (a.closure_info, a.references_graph) {
        (Some(c), _) => ClosureInput::ClosureInfo(c),
        (None, Some(r)) => ClosureInput::ReferencesGraph(r),
        (None, None) => bail!("--format iso: give --closure-info or --references-graph"),
    };
    let Some(toplevel) = a.toplevel else {
        bail!("--format iso: --toplevel is required (its bootspec gives the boot entries)");
    };
    let Some(output) = a.output else {
        bail!("--format iso: --output is required");
    };
    let Some(store_image) = a.store_image else {
        bail!(
            "--format iso: --store-image FILE is required (the nix-store.squashfs holding the \
             closure and nix-path-registration)"
        );
    };
    let compress = match a.compression.as_deref() {
        None => false,
        Some("zstd") => true,
        Some(other) => bail!("--compression {other}: an ISO is compressed with zstd or not at all"),
    };
    let spec = IsoSpec {
        closure,
        store_root: a.store_root,
        toplevel,
        output: output.clone(),
        volume_id: a.volume_id,
        store_image: StoreImage::File(store_image),
        epoch: super::source_date_epoch()?,
        timeout: a.timeout.unwrap_or(10),
        compress,
    };
    let r = build_iso(&spec).with_context(|| format!("building {}", output.display()))?;
    println!(
        "{}: ISO 9660 (El Torito BIOS + EFI, isohybrid), volume {}, {} MiB, {} store paths",
        r.output.display(),
        r.volume_id,
        r.iso_size >> 20,
        r.store_paths
    );
    Ok(())
}
