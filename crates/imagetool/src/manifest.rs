//! What a build made, as JSON (`imagetool build --manifest FILE`): every output file with its
//! format, variant, virtual and allocated size and SHA-256, and the disk's partitions with
//! their GUIDs and the root filesystem's UUID.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use imagetool_ptable::Role;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::build::{BuildError, BuildReport};

/// One output file: the file, its format (`qcow2`, `vma.zst`, …) and the variant it is for.
#[derive(Debug, Clone)]
pub struct Output {
    /// The file.
    pub file: PathBuf,
    /// Its format name.
    pub format: String,
    /// The variant, if any.
    pub variant: Option<String>,
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Esp => "esp",
        Role::Boot => "boot",
        Role::BiosBoot => "bios-boot",
        Role::Root => "root",
        Role::Firmware => "firmware",
    }
}

fn sha256_hex(path: &Path) -> Result<String, BuildError> {
    let io = |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The manifest of `outputs`, all made from the disk `report` describes.
///
/// ```
/// use imagetool::build::{ImageSpec, NoProgress, build};
/// use imagetool::manifest::{Output, manifest};
/// use imagetool::nix::closure::ClosureInput;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let c = scratch.closure()?;
/// # let output = scratch.path("nixos.img");
/// let spec = ImageSpec::new(Some(c.path), ClosureInput::ClosureInfo(c.closure_info), output)
///     .store_root(c.store_root)
///     .bootloader(imagetool::boot::Bootloader::None);
/// let report = build(&spec, &mut NoProgress)?;
/// let outputs = [Output { file: report.output.clone(), format: "raw".into(), variant: None }];
/// let m = manifest(&report, &outputs)?;
/// assert_eq!(m["outputs"][0]["virtualSize"], report.disk_size);
/// assert_eq!(m["outputs"][0]["sha256"].as_str().map(str::len), Some(64));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// `Io` naming an output that cannot be read.
pub fn manifest(report: &BuildReport, outputs: &[Output]) -> Result<Value, BuildError> {
    let mut files = Vec::new();
    for o in outputs {
        let md = std::fs::metadata(&o.file).map_err(|source| BuildError::Io {
            path: o.file.clone(),
            source,
        })?;
        files.push(json!({
            "file": o.file,
            "format": o.format,
            "variant": o.variant,
            "virtualSize": report.disk_size,
            "size": md.len(),
            "allocated": md.blocks() * 512,
            "sha256": sha256_hex(&o.file)?,
        }));
    }
    let l = &report.layout;
    let partitions: Vec<Value> = l
        .partitions
        .iter()
        .map(|p| {
            let r = p.byte_range();
            json!({
                "number": p.number,
                "role": role_name(p.role),
                "start": r.start,
                "size": r.end - r.start,
                "name": p.name,
                "guid": p.guid.map(|g| g.to_string()),
                "bootable": p.bootable,
            })
        })
        .collect();
    Ok(json!({
        "outputs": files,
        "table": l.table.name(),
        "diskGuid": l.disk_guid.map(|g| g.to_string()),
        "mbrSignature": l.mbr_signature.map(|s| format!("{s:08x}")),
        "rootFsUuid": report.root_fs_uuid.to_string(),
        "partitions": partitions,
        "storePaths": report.store_paths,
    }))
}
