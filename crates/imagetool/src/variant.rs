//! Image variants: the artifacts of `nixos-rebuild build-image --image-variant NAME`
//! (nixpkgs' `system.build.images.<variant>`), built with no VM.
//!
//! A [`Variant`] is a set of defaults, taken from its nixpkgs module: the partition table, the
//! disk format, the sizes, the file name and the packaging (gzip, a sparse tar, a VMA, an OVA).
//! Every default is only a default: a spec key or flag the user gives wins. [`build_variant`]
//! writes the artifact into a directory under the module's file name, as `$out` in a Nix build,
//! with `nix-support/hydra-build-products` (and `nix-support/image-info.json` for `amazon`).
//!
//! The disk inside every package is the image `build` writes for the same settings: unpacked
//! with the platform's tools (GNU tar, gzip, zstd, a VMA reader, the OVF's VMDK) it is
//! byte-identical to `--format raw`.
//!
//! ```
//! use imagetool::variant::Variant;
//!
//! let v: Variant = "digital-ocean".parse().unwrap();
//! assert_eq!(v.profile().table, "legacy");
//! assert_eq!(v.file_name("nixos", None), "nixos.qcow2.gz");
//! assert!("amazon-ec2".parse::<Variant>().is_err());
//! ```

use std::fmt;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use imagetool_archive::{
    self as archive, Codec, Compression,
    tar::{Entry, Kind, Meta, TarWriter},
};
use imagetool_blockio::{AtomicFile, SparseFile};
use imagetool_vdisk::{Format, ovf, vma};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::build::{BuildError, BuildReport, ImageSpec, Progress, build};
use crate::spec::Spec;

/// A nixpkgs image variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Variant {
    /// Amazon EC2 (`maintainers/scripts/ec2/amazon-image.nix`).
    Amazon,
    /// Microsoft Azure (`virtualisation/azure-image.nix`).
    Azure,
    /// DigitalOcean (`virtualisation/digital-ocean-image.nix`).
    DigitalOcean,
    /// Google Compute Engine (`virtualisation/google-compute-image.nix`).
    GoogleCompute,
    /// Hyper-V (`virtualisation/hyperv-image.nix`).
    Hyperv,
    /// Linode (`virtualisation/linode-image.nix`).
    Linode,
    /// Oracle Cloud Infrastructure (`virtualisation/oci-image.nix`).
    Oci,
    /// OpenStack (`maintainers/scripts/openstack/openstack-image.nix`).
    Openstack,
    /// CloudStack (`maintainers/scripts/cloudstack/cloudstack-image.nix`).
    Cloudstack,
    /// KubeVirt (`virtualisation/kubevirt.nix`).
    Kubevirt,
    /// A QEMU qcow2 disk, BIOS (`virtualisation/disk-image.nix`).
    Qemu,
    /// A QEMU qcow2 disk, EFI.
    QemuEfi,
    /// A raw disk, BIOS.
    Raw,
    /// A raw disk, EFI.
    RawEfi,
    /// Proxmox VE (`virtualisation/proxmox-image.nix`): a VMA backup, zstd.
    Proxmox,
    /// VirtualBox (`virtualisation/virtualbox-image.nix`): an OVA.
    Virtualbox,
    /// Vagrant with VirtualBox (`virtualisation/vagrant-virtualbox-image.nix`): a box.
    VagrantVirtualbox,
    /// VMware (`virtualisation/vmware-image.nix`): a VMDK.
    Vmware,
}

/// How a variant packages the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// The disk file itself.
    Disk,
    /// The disk file, compressed (`.gz`, `.bz2`, …).
    Compressed(Codec),
    /// A GNU sparse tar holding `disk.raw`, gzip (`.raw.tar.gz`, GCE).
    SparseTarGz,
    /// A Proxmox VMA with `qemu-server.conf`, zstd (`vzdump-qemu-<name>.vma.zst`).
    VmaZst,
    /// An OVA: OVF descriptor, streamOptimized VMDK, SHA-256 manifest.
    Ova,
    /// A Vagrant box: tar.gz of `metadata.json`, `Vagrantfile`, `box.ovf`, the VMDK, `box.mf`.
    VagrantBox,
}

/// A variant's defaults, from its nixpkgs module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// `partitionTableType`.
    pub table: &'static str,
    /// The disk format inside the package.
    pub format: Format,
    /// `diskSize` (`auto` or MiB).
    pub disk_size: &'static str,
    /// `additionalSpace`.
    pub additional_space: &'static str,
    /// `bootSize`.
    pub boot_size: &'static str,
    /// The packaging.
    pub packaging: Packaging,
    /// The nixpkgs module.
    pub module: &'static str,
}

impl Variant {
    /// Every variant, in `imagetool variants` order.
    pub const ALL: [Variant; 18] = [
        Variant::Amazon,
        Variant::Azure,
        Variant::DigitalOcean,
        Variant::GoogleCompute,
        Variant::Hyperv,
        Variant::Linode,
        Variant::Oci,
        Variant::Openstack,
        Variant::Cloudstack,
        Variant::Kubevirt,
        Variant::Qemu,
        Variant::QemuEfi,
        Variant::Raw,
        Variant::RawEfi,
        Variant::Proxmox,
        Variant::Virtualbox,
        Variant::VagrantVirtualbox,
        Variant::Vmware,
    ];

    /// The name nixpkgs gives it (`system.build.images.<name>`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Variant::Amazon => "amazon",
            Variant::Azure => "azure",
            Variant::DigitalOcean => "digital-ocean",
            Variant::GoogleCompute => "google-compute",
            Variant::Hyperv => "hyperv",
            Variant::Linode => "linode",
            Variant::Oci => "oci",
            Variant::Openstack => "openstack",
            Variant::Cloudstack => "cloudstack",
            Variant::Kubevirt => "kubevirt",
            Variant::Qemu => "qemu",
            Variant::QemuEfi => "qemu-efi",
            Variant::Raw => "raw",
            Variant::RawEfi => "raw-efi",
            Variant::Proxmox => "proxmox",
            Variant::Virtualbox => "virtualbox",
            Variant::VagrantVirtualbox => "vagrant-virtualbox",
            Variant::Vmware => "vmware",
        }
    }

    /// The defaults of the variant's nixpkgs module.
    ///
    /// Checked against nixpkgs' modules (NixOS 25.05/unstable, `nixos/modules/image/images.nix`
    /// maps variant → module): every module without its own `virtualisation.diskSize` override
    /// gets disk-size-option.nix's `"auto"` (make-disk-image's `additionalSpace = "512M"`,
    /// `bootSize = "256M"`); azure v1 is `legacy`, google-compute and proxmox `legacy` unless
    /// their EFI options are set, qemu/raw `legacy` and qemu-efi/raw-efi/vmware `efi`
    /// (disk-image.nix's `efiSupport`, vmware-image.nix), kubevirt and cloudstack leave the
    /// table at make-disk-image's `legacy`.
    #[must_use]
    pub fn profile(self) -> Profile {
        let p = |table, format, packaging, module| Profile {
            table,
            format,
            disk_size: "auto",
            additional_space: "512M",
            boot_size: "256M",
            packaging,
            module,
        };
        match self {
            // amazon-image.nix: `config.virtualisation.diskSize = lib.mkOverride 1490 (4 * 1024)`,
            // `partitionTableType = if config.ec2.efi then "efi" else "legacy+gpt"`, format "vpc".
            Variant::Amazon => Profile {
                disk_size: "4096",
                ..p(
                    "legacy+gpt",
                    Format::Vpc,
                    Packaging::Disk,
                    "nixos/maintainers/scripts/ec2/amazon-image.nix",
                )
            },
            Variant::Azure => p(
                "legacy",
                Format::VhdFixed,
                Packaging::Disk,
                "nixos/modules/virtualisation/azure-image.nix",
            ),
            Variant::DigitalOcean => p(
                "legacy",
                Format::Qcow2,
                Packaging::Compressed(Codec::Gzip),
                "nixos/modules/virtualisation/digital-ocean-image.nix",
            ),
            Variant::GoogleCompute => p(
                "legacy",
                Format::Raw,
                Packaging::SparseTarGz,
                "nixos/modules/virtualisation/google-compute-image.nix",
            ),
            // hyperv-image.nix: `virtualisation.diskSize = lib.mkOverride 1490 (4 * 1024)`,
            // `partitionTableType = "efi"`, raw converted with `subformat=dynamic -O vhdx`.
            Variant::Hyperv => Profile {
                disk_size: "4096",
                ..p(
                    "efi",
                    Format::Vhdx,
                    Packaging::Disk,
                    "nixos/modules/virtualisation/hyperv-image.nix",
                )
            },
            Variant::Linode => p(
                "none",
                Format::Raw,
                Packaging::Compressed(Codec::Gzip),
                "nixos/modules/virtualisation/linode-image.nix",
            ),
            // oci-image.nix: `virtualisation.diskSize = lib.mkOverride 1490 (8 * 1024)`,
            // `format = "qcow2"`, `partitionTableType = if cfg.efi then "efi" else "legacy"`
            // (oci.efi defaults to aarch64 only).
            Variant::Oci => Profile {
                disk_size: "8192",
                ..p(
                    "legacy",
                    Format::Qcow2,
                    Packaging::Disk,
                    "nixos/modules/virtualisation/oci-image.nix",
                )
            },
            // openstack-image.nix: `additionalSpace = "1024M"`, `format = "qcow2"`, no diskSize
            // (make-disk-image's "auto"), no partitionTableType ("legacy").
            Variant::Openstack => Profile {
                additional_space: "1024M",
                ..p(
                    "legacy",
                    Format::Qcow2,
                    Packaging::Disk,
                    "nixos/maintainers/scripts/openstack/openstack-image.nix",
                )
            },
            Variant::Cloudstack => p(
                "legacy",
                Format::Qcow2,
                Packaging::Disk,
                "nixos/maintainers/scripts/cloudstack/cloudstack-image.nix",
            ),
            Variant::Kubevirt => p(
                "legacy",
                Format::Qcow2,
                Packaging::Disk,
                "nixos/modules/virtualisation/kubevirt.nix",
            ),
            Variant::Qemu => p(
                "legacy",
                Format::Qcow2,
                Packaging::Disk,
                "nixos/modules/virtualisation/disk-image.nix",
            ),
            Variant::QemuEfi => p(
                "efi",
                Format::Qcow2,
                Packaging::Disk,
                "nixos/modules/virtualisation/disk-image.nix",
            ),
            Variant::Raw => p(
                "legacy",
                Format::Raw,
                Packaging::Disk,
                "nixos/modules/virtualisation/disk-image.nix",
            ),
            Variant::RawEfi => p(
                "efi",
                Format::Raw,
                Packaging::Disk,
                "nixos/modules/virtualisation/disk-image.nix",
            ),
            Variant::Proxmox => p(
                "legacy",
                Format::Raw,
                Packaging::VmaZst,
                "nixos/modules/virtualisation/proxmox-image.nix",
            ),
            // virtualbox-image.nix: `virtualisation.diskSize = lib.mkOverride 1490 (50 * 1024)`,
            // `additionalSpace = "${toString cfg.baseImageFreeSpace}M"` (default 30 * 1024),
            // `partitionTableType = "legacy"`; vagrant-virtualbox-image.nix imports it.
            Variant::Virtualbox => Profile {
                disk_size: "51200",
                additional_space: "30720M",
                ..p(
                    "legacy",
                    Format::VmdkStream,
                    Packaging::Ova,
                    "nixos/modules/virtualisation/virtualbox-image.nix",
                )
            },
            Variant::VagrantVirtualbox => Profile {
                disk_size: "51200",
                additional_space: "30720M",
                ..p(
                    "legacy",
                    Format::VmdkStream,
                    Packaging::VagrantBox,
                    "nixos/modules/virtualisation/vagrant-virtualbox-image.nix",
                )
            },
            Variant::Vmware => p(
                "efi",
                Format::Vmdk,
                Packaging::Disk,
                "nixos/modules/virtualisation/vmware-image.nix",
            ),
        }
    }

    /// The spec keys this variant sets by default (make-disk-image's names).
    #[must_use]
    pub fn spec_defaults(self) -> Map<String, Value> {
        let p = self.profile();
        let mut m = Map::new();
        m.insert("partitionTableType".into(), p.table.into());
        m.insert("format".into(), p.format.name().into());
        m.insert("diskSize".into(), p.disk_size.into());
        m.insert("additionalSpace".into(), p.additional_space.into());
        m.insert("bootSize".into(), p.boot_size.into());
        m
    }

    /// The artifact's file name for `base` (nixpkgs' `image.baseName`), given the disk format
    /// actually used (`None`: the variant's).
    #[must_use]
    pub fn file_name(self, base: &str, format: Option<Format>) -> String {
        let p = self.profile();
        let format = format.unwrap_or(p.format);
        match p.packaging {
            Packaging::Disk => format!("{base}.{}", format.extension()),
            Packaging::Compressed(c) => {
                format!("{base}.{}.{}", format.extension(), c.extension())
            }
            Packaging::SparseTarGz => format!("{base}.raw.tar.gz"),
            Packaging::VmaZst => format!("vzdump-qemu-{base}.vma.zst"),
            Packaging::Ova => format!("{base}.ova"),
            Packaging::VagrantBox => format!("{base}.box"),
        }
    }

    /// The artifact's format name for manifests (`qcow2.gz`, `raw.tar.gz`, `vma.zst`, `ova`,
    /// or the disk format), given the disk format used.
    #[must_use]
    pub fn artifact_format(self, format: Format) -> String {
        match self.profile().packaging {
            Packaging::Disk => format.name().to_string(),
            Packaging::Compressed(c) => format!("{}.{}", format.name(), c.extension()),
            Packaging::SparseTarGz => "raw.tar.gz".into(),
            Packaging::VmaZst => "vma.zst".into(),
            Packaging::Ova => "ova".into(),
            Packaging::VagrantBox => "box".into(),
        }
    }

    /// What the variant produces, for `imagetool variants`.
    #[must_use]
    pub fn describe(self) -> String {
        let p = self.profile();
        let what = match p.packaging {
            Packaging::Disk => format!("{} disk", p.format),
            Packaging::Compressed(c) => format!("{} disk, {c}", p.format),
            Packaging::SparseTarGz => "raw disk as disk.raw in a sparse GNU tar, gzip".into(),
            Packaging::VmaZst => "Proxmox VMA (raw disk + qemu-server.conf), zstd".into(),
            Packaging::Ova => "OVA: OVF, streamOptimized VMDK, SHA-256 manifest".into(),
            Packaging::VagrantBox => {
                "Vagrant box: metadata.json, Vagrantfile, box.ovf, VMDK, tar.gz".into()
            }
        };
        format!(
            "{} table, {what}, disk size {}: {}",
            p.table,
            p.disk_size,
            self.file_name("<base>", None)
        )
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let alias = match s {
            "kube-virt" => "kubevirt",
            "do" => "digital-ocean",
            "gce" => "google-compute",
            "vagrant" => "vagrant-virtualbox",
            o => o,
        };
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == alias)
            .ok_or_else(|| {
                let names: Vec<&str> = Variant::ALL
                    .iter()
                    .map(|v| v.name())
                    .chain(
                        crate::tree_variant::TreeVariant::ALL
                            .iter()
                            .map(|v| v.name()),
                    )
                    .collect();
                format!(
                    "unknown variant {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Fills the variant's defaults into a JSON spec object for keys it does not set.
///
/// # Errors
/// A message naming the bad `variant` value.
///
/// ```
/// use imagetool::variant::fill_defaults;
///
/// let mut spec = serde_json::json!({ "variant": "qemu", "diskSize": 8192 });
/// let obj = spec.as_object_mut().unwrap();
/// fill_defaults(obj)?;
/// assert_eq!(obj["format"], "qcow2"); // the variant's default
/// assert_eq!(obj["diskSize"], 8192); // a key the spec sets stays
/// assert!(fill_defaults(serde_json::json!({ "variant": "floppy" }).as_object_mut().unwrap()).is_err());
/// # Ok::<(), String>(())
/// ```
pub fn fill_defaults(obj: &mut Map<String, Value>) -> Result<(), String> {
    let Some(v) = obj.get("variant") else {
        return Ok(());
    };
    let Some(name) = v.as_str() else {
        return Err("expected a string".into());
    };
    // The variants that are not disks (crate::tarball) take no disk defaults.
    if name.parse::<crate::tree_variant::TreeVariant>().is_ok() {
        return Ok(());
    }
    let variant: Variant = name.parse()?;
    for (k, v) in variant.spec_defaults() {
        obj.entry(k).or_insert(v);
    }
    Ok(())
}

/// A resolved variant build: the image to build and how to package it.
#[derive(Debug, Clone)]
pub struct VariantBuild {
    /// The variant.
    pub variant: Variant,
    /// The disk image (its `output` is set by [`build_variant`]).
    pub image: ImageSpec,
    /// The output directory (`$out`).
    pub out_dir: PathBuf,
    /// `image.baseName`: `nixos-image-<label>-<system>` unless the spec's `baseName` is set.
    pub base_name: String,
    /// The compression of compressed packages (the variant's codec unless overridden).
    pub compression: Option<Compression>,
}

/// What a variant build produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VariantReport {
    /// The disk build's report (its `output` is the disk before packaging).
    pub disk: BuildReport,
    /// The artifact.
    pub artifact: PathBuf,
    /// Every file written, artifact first (then `nix-support/…`).
    pub files: Vec<PathBuf>,
}

/// `config.system.nixos.label` and the system double, read from the toplevel
/// (`nixos-version`, `system`), when there is one.
pub(crate) fn system_identity(image: &ImageSpec) -> Option<(String, String)> {
    let top = image.toplevel.as_deref()?;
    let dir = image.store_root.join(top.trim_start_matches('/'));
    let label = std::fs::read_to_string(dir.join("nixos-version")).ok()?;
    let system = std::fs::read_to_string(dir.join("system")).ok()?;
    let clean = |s: &str| {
        s.trim()
            .chars()
            .filter(|c| !c.is_control() && *c != '/')
            .collect::<String>()
    };
    Some((clean(&label), clean(&system)))
}

impl Spec {
    /// The variant build this spec asks for (`variant` set), with `out_dir` as `$out`; `None`
    /// without a variant.
    ///
    /// # Errors
    /// As [`Spec::resolve`]; `InvalidInput` for an unknown variant or `archiveCompression`.
    pub fn resolve_variant(
        &self,
        out_dir: &Path,
        default_timestamp: impl Into<imagetool_fstree::Timestamp>,
    ) -> Result<Option<VariantBuild>, crate::spec::Error> {
        let Some(name) = &self.variant else {
            return Ok(None);
        };
        let variant: Variant = name
            .parse()
            .map_err(|e: String| crate::spec::Error::invalid_key("variant", e))?;
        let mut s = self.clone();
        s.output = Some(out_dir.join(".imagetool-disk"));
        let mut image = s.resolve(default_timestamp)?;
        if let Some(e) = &mut image.efi_vars {
            // Beside the artifact, not in the scratch directory of a packaged disk.
            e.output = out_dir.join(crate::efi_vars::FILE_NAME);
        }
        let base_name = if self.base_name == "nixos" {
            match system_identity(&image) {
                Some((label, system)) => format!("nixos-image-{label}-{system}"),
                None => "nixos".to_string(),
            }
        } else {
            self.file_name()?;
            self.base_name.clone()
        };
        let compression = match (&self.archive_compression, variant.profile().packaging) {
            (Some(c), _) => Some(Compression::new(c.parse().map_err(
                |e: archive::Error| {
                    crate::spec::Error::invalid_key("archiveCompression", e.to_string())
                },
            )?)),
            (None, Packaging::Compressed(c)) => Some(Compression::new(c)),
            (None, _) => None,
        };
        Ok(Some(VariantBuild {
            variant,
            image,
            out_dir: out_dir.to_path_buf(),
            base_name,
            compression,
        }))
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn archive_err(e: archive::Error) -> BuildError {
    match e.kind() {
        archive::ErrorKind::InvalidInput => BuildError::InvalidInput(e.to_string()),
        _ => BuildError::Io {
            path: PathBuf::from(e.context()),
            source: std::io::Error::other(e.to_string()),
        },
    }
}

/// A temporary directory inside the output directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(out_dir: &Path, tag: &str) -> Result<Self, BuildError> {
        let p = out_dir.join(format!(".imagetool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).map_err(io_err(&p))?;
        Ok(Self(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds the variant: the disk, then its packaging, into `vb.out_dir`.
///
/// ```
/// use imagetool::build::NoProgress;
/// use imagetool::spec::Spec;
/// use imagetool::variant::build_variant;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let c = scratch.closure()?;
/// # let (toplevel, closure_info, store_root) = (c.path, c.closure_info, c.store_root);
/// # let out_dir = scratch.path("out");
/// // nixpkgs' `images.qemu`, from a spec as `imagetool build --spec` reads it.
/// let spec = Spec::from_json(&serde_json::json!({
///     "variant": "qemu",
///     "toplevel": toplevel,
///     "closureInfo": closure_info,
///     "storeRoot": store_root,
///     "bootloader": "none",
/// }).to_string())?;
/// let vb = spec.resolve_variant(&out_dir, 315_532_800)?.expect("a disk variant");
/// let report = build_variant(&vb, &mut NoProgress)?;
/// assert_eq!(report.artifact.extension().unwrap(), "qcow2");
/// assert_eq!(&std::fs::read(&report.artifact)?[..4], b"QFI\xfb");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The errors of [`build`]; `Io` naming the file for packaging failures. Nothing is left
/// under the artifact's name unless everything succeeded.
pub fn build_variant(
    vb: &VariantBuild,
    progress: &mut dyn Progress,
) -> Result<VariantReport, BuildError> {
    std::fs::create_dir_all(&vb.out_dir).map_err(io_err(&vb.out_dir))?;
    let profile = vb.variant.profile();
    let format = vb.image.format;
    let mut name = vb.variant.file_name(&vb.base_name, Some(format));
    if let (Packaging::Compressed(_), Some(c)) = (profile.packaging, vb.compression) {
        name = format!(
            "{}.{}.{}",
            vb.base_name,
            format.extension(),
            c.codec.extension()
        );
    }
    if profile.packaging == Packaging::VmaZst {
        name = format!("vzdump-qemu-{}.vma.zst", proxmox_name(vb));
    }
    let artifact = vb.out_dir.join(&name);
    let scratch = Scratch::new(&vb.out_dir, vb.variant.name())?;
    let mut image = vb.image.clone();
    image.output = if profile.packaging == Packaging::Disk {
        artifact.clone()
    } else {
        scratch.0.join(format!("disk.{}", format.extension()))
    };
    let disk = build(&image, progress)?;
    let threads = vb.image.threads;
    let epoch = vb.image.timestamp.to_u64().unwrap_or(0);
    match profile.packaging {
        Packaging::Disk => {}
        Packaging::Compressed(codec) => {
            let c = vb.compression.unwrap_or(Compression::new(codec));
            let c = Compression { threads, ..c };
            archive::compress_file(&image.output, &artifact, &c).map_err(archive_err)?;
        }
        Packaging::SparseTarGz => {
            let src = SparseFile::open(&image.output).map_err(io_err(&image.output))?;
            let c = vb.compression.unwrap_or(Compression::new(Codec::Gzip));
            write_packed(&artifact, Compression { threads, ..c }, |w| {
                let mut t = TarWriter::new(w);
                let meta = Meta {
                    mtime: epoch,
                    ..Meta::file(0o644)
                };
                t.append_sparse("disk.raw", &meta, &src)?;
                t.finish()
            })?;
        }
        Packaging::VmaZst => {
            let src = SparseFile::open(&image.output).map_err(io_err(&image.output))?;
            let opts = vma::VmaOptions {
                uuid: vma_uuid(&disk),
                ctime: epoch,
                configs: vec![("qemu-server.conf".into(), qemu_server_conf(vb).into_bytes())],
                device: "drive-virtio0".into(),
            };
            let c = vb.compression.unwrap_or(Compression::new(Codec::Zstd));
            let out = AtomicFile::create(&artifact).map_err(io_err(&artifact))?;
            let file = out.try_clone_file().map_err(io_err(&artifact))?;
            let mut enc = Compression { threads, ..c }
                .encoder(BufWriter::with_capacity(1 << 20, file))
                .map_err(archive_err)?;
            vma::write(&src, &mut enc, &opts, &artifact.display().to_string())?;
            let buf = enc.finish().map_err(io_err(&artifact))?;
            buf.into_inner()
                .map_err(|e| io_err(&artifact)(e.into_error()))?;
            out.commit().map_err(io_err(&artifact))?;
        }
        Packaging::Ova | Packaging::VagrantBox => {
            write_ova(vb, &image, &disk, &artifact, profile.packaging)?;
        }
    }
    drop(scratch);
    let mut files = vec![artifact.clone()];
    files.extend(write_nix_support(vb, &disk, &artifact)?);
    Ok(VariantReport {
        disk,
        artifact,
        files,
    })
}

/// Writes `dest` through a compressor, atomically.
fn write_packed(
    dest: &Path,
    c: Compression,
    body: impl FnOnce(
        archive::Encoder<BufWriter<std::fs::File>>,
    ) -> archive::Result<archive::Encoder<BufWriter<std::fs::File>>>,
) -> Result<(), BuildError> {
    let out = AtomicFile::create(dest).map_err(io_err(dest))?;
    let file = out.try_clone_file().map_err(io_err(dest))?;
    let enc = c
        .encoder(BufWriter::with_capacity(1 << 20, file))
        .map_err(archive_err)?;
    let enc = body(enc).map_err(archive_err)?;
    let buf = enc.finish().map_err(io_err(dest))?;
    buf.into_inner().map_err(|e| io_err(dest)(e.into_error()))?;
    out.commit().map_err(io_err(dest))
}

/// The VMA's UUID: from the disk's identity (root filesystem UUID and size).
fn vma_uuid(disk: &BuildReport) -> crate::Uuid {
    let mut h = Sha256::new();
    h.update(b"imagetool-vma");
    h.update(disk.root_fs_uuid.as_bytes());
    h.update(disk.disk_size.to_le_bytes());
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    crate::Uuid::from_bytes(u)
}

/// `proxmox.qemuConf.name`'s default: `nixos-<label>`.
fn proxmox_name(vb: &VariantBuild) -> String {
    match system_identity(&vb.image) {
        Some((label, _)) if vb.base_name.starts_with("nixos-image-") => format!("nixos-{label}"),
        _ => vb.base_name.clone(),
    }
}

/// `qemu-server.conf` as proxmox-image.nix writes it with its defaults: every `qemuConf`
/// attribute (and the cloud-init drive of `qemuExtraConf`) as `name: value`, in attribute
/// order, then the disk map line.
#[must_use]
pub fn qemu_server_conf_for(name: &str, efi: bool, lp: &Profile) -> String {
    let bios = if efi { "ovmf" } else { "seabios" };
    let mut attrs: Vec<(&str, String)> = vec![
        ("additionalSpace", lp.additional_space.to_string()),
        ("agent", "1".into()),
        ("bios", bios.into()),
        ("boot", String::new()),
        ("bootSize", lp.boot_size.to_string()),
        ("cores", "1".into()),
        ("diskSize", lp.disk_size.to_string()),
        ("ide2", "local-lvm:vm-9999-cloudinit,media=cdrom".into()),
        ("memory", "1024".into()),
        ("name", name.into()),
        (
            "net0",
            "virtio=00:00:00:00:00:00,bridge=vmbr0,firewall=1".into(),
        ),
        ("ostype", "l26".into()),
        ("scsihw", "virtio-scsi-single".into()),
        ("serial0", "socket".into()),
        ("virtio0", "local-lvm:vm-9999-disk-0".into()),
    ];
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    let mut s = String::from("# generated by NixOS\n");
    for (k, v) in attrs {
        s.push_str(&format!("{k}: {v}\n"));
    }
    s.push_str("\n#qmdump#map:virtio0:drive-virtio0:local-lvm:raw:\n");
    s
}

fn qemu_server_conf(vb: &VariantBuild) -> String {
    let efi = crate::bootloader::disk_for(vb.image.layout.table).esp;
    qemu_server_conf_for(&proxmox_name(vb), efi, &vb.variant.profile())
}

fn sha256_file(path: &Path) -> Result<([u8; 32], u64), BuildError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io_err(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finalize().into(), n))
}

/// The OVA (ustar: descriptor, VMDK, manifest) or the Vagrant box around it.
fn write_ova(
    vb: &VariantBuild,
    image: &ImageSpec,
    disk: &BuildReport,
    artifact: &Path,
    packaging: Packaging,
) -> Result<(), BuildError> {
    let (stem, vm_name) = match packaging {
        Packaging::VagrantBox => ("box".to_string(), "nixos".to_string()),
        _ => (
            vb.base_name.clone(),
            match system_identity(image) {
                Some((label, system)) => format!("NixOS {label} ({system})"),
                None => vb.base_name.clone(),
            },
        ),
    };
    let vmdk_name = format!("{stem}-disk001.vmdk");
    let (vmdk_sum, vmdk_size) = sha256_file(&image.output)?;
    let efi = crate::bootloader::disk_for(image.layout.table).esp;
    let machine = ovf::Machine {
        name: vm_name,
        cpus: 1,
        memory_mib: 1536,
        firmware: if efi {
            ovf::Firmware::Efi
        } else {
            ovf::Firmware::Bios
        },
        os_id: 101,
        os_description: "Linux26_64".into(),
    };
    let descriptor = ovf::descriptor(
        &machine,
        &ovf::DiskFile {
            href: vmdk_name.clone(),
            size: vmdk_size,
            capacity: disk.disk_size,
            format: if image.format == Format::VmdkStream {
                ovf::VMDK_STREAM_FORMAT.into()
            } else {
                format!(
                    "http://www.vmware.com/interfaces/specifications/vmdk.html#{}",
                    image.format
                )
            },
        },
    );
    let ovf_name = format!("{stem}.ovf");
    let ovf_sum: [u8; 32] = Sha256::digest(descriptor.as_bytes()).into();
    let mf = ovf::manifest(&[(ovf_name.clone(), ovf_sum), (vmdk_name.clone(), vmdk_sum)]);
    let epoch = image.timestamp.to_u64().unwrap_or(0);
    let meta = Meta {
        mtime: epoch,
        ..Meta::file(0o644)
    };
    let entries = |t: &mut dyn FnMut(Entry<'_>) -> archive::Result<()>| -> archive::Result<()> {
        t(Entry::bytes(
            ovf_name.clone(),
            meta.clone(),
            descriptor.as_bytes(),
        ))?;
        t(Entry {
            path: vmdk_name.clone(),
            kind: Kind::File(archive::tar::Data::Host(image.output.clone())),
            meta: meta.clone(),
        })?;
        t(Entry::bytes(
            format!("{stem}.mf"),
            meta.clone(),
            mf.as_bytes(),
        ))
    };
    match packaging {
        Packaging::VagrantBox => {
            let metadata = "{\"provider\":\"virtualbox\"}\n";
            let vagrantfile = "Vagrant.configure(\"2\") do |config|\n  config.vm.base_mac = \"0800275F0936\"\nend\n";
            let c = vb.compression.unwrap_or(Compression::new(Codec::Gzip));
            write_packed(
                artifact,
                Compression {
                    threads: image.threads,
                    ..c
                },
                |w| {
                    let mut t = TarWriter::new(w);
                    t.append(&Entry::bytes(
                        "Vagrantfile",
                        meta.clone(),
                        vagrantfile.as_bytes(),
                    ))?;
                    entries(&mut |e| t.append(&e))?;
                    t.append(&Entry::bytes(
                        "metadata.json",
                        meta.clone(),
                        metadata.as_bytes(),
                    ))?;
                    t.finish()
                },
            )
        }
        _ => {
            let out = AtomicFile::create(artifact).map_err(io_err(artifact))?;
            let file = out.try_clone_file().map_err(io_err(artifact))?;
            let mut t = TarWriter::ustar(BufWriter::with_capacity(1 << 20, file));
            entries(&mut |e| t.append(&e)).map_err(archive_err)?;
            let mut w = t.finish().map_err(archive_err)?;
            w.flush().map_err(io_err(artifact))?;
            drop(w);
            out.commit().map_err(io_err(artifact))
        }
    }
}

/// `nix-support/hydra-build-products` (and `image-info.json` for amazon).
fn write_nix_support(
    vb: &VariantBuild,
    disk: &BuildReport,
    artifact: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let dir = vb.out_dir.join("nix-support");
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let kind = match vb.variant {
        Variant::Amazon => vb.image.format.name().to_string(),
        Variant::Proxmox => "vma".to_string(),
        _ => format!("{}-image", vb.image.format),
    };
    let products = dir.join("hydra-build-products");
    std::fs::write(&products, format!("file {kind} {}\n", artifact.display()))
        .map_err(io_err(&products))?;
    let mut files = vec![products];
    if vb.variant == Variant::Amazon {
        let info = dir.join("image-info.json");
        std::fs::write(
            &info,
            amazon_image_info(vb, disk, artifact).to_string() + "\n",
        )
        .map_err(io_err(&info))?;
        files.push(info);
    }
    Ok(files)
}

/// amazon-image.nix's `image-info.json`: `label`, `boot_mode`, `system`, `logical_bytes`
/// (a string, as `jq --arg` makes it), `file`, `disks.root.{logical_bytes,file}`.
#[must_use]
pub fn amazon_image_info(vb: &VariantBuild, disk: &BuildReport, artifact: &Path) -> Value {
    let (label, system) = system_identity(&vb.image).unwrap_or_default();
    let efi = crate::bootloader::disk_for(vb.image.layout.table).esp;
    let bytes = disk.disk_size.to_string();
    json!({
        "label": label,
        "boot_mode": if efi { "uefi" } else { "legacy-bios" },
        "system": system,
        "logical_bytes": bytes,
        "file": artifact,
        "disks": { "root": { "logical_bytes": bytes, "file": artifact } },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_round_trip_and_aliases() {
        for v in Variant::ALL {
            assert_eq!(v.name().parse::<Variant>().unwrap(), v);
            assert!(!v.describe().is_empty());
        }
        assert_eq!("kube-virt".parse::<Variant>().unwrap(), Variant::Kubevirt);
        let e = "ec2".parse::<Variant>().unwrap_err();
        assert!(e.contains("ec2") && e.contains("amazon"), "{e}");
    }

    #[test]
    fn test_file_names_follow_the_modules() {
        for (v, want) in [
            (Variant::Amazon, "b.vhd"),
            (Variant::Azure, "b.vhd"),
            (Variant::DigitalOcean, "b.qcow2.gz"),
            (Variant::GoogleCompute, "b.raw.tar.gz"),
            (Variant::Hyperv, "b.vhdx"),
            (Variant::Linode, "b.img.gz"),
            (Variant::Proxmox, "vzdump-qemu-b.vma.zst"),
            (Variant::Virtualbox, "b.ova"),
            (Variant::VagrantVirtualbox, "b.box"),
            (Variant::Vmware, "b.vmdk"),
            (Variant::QemuEfi, "b.qcow2"),
            (Variant::Raw, "b.img"),
        ] {
            assert_eq!(v.file_name("b", None), want, "{v}");
        }
    }

    #[test]
    fn test_defaults_fill_only_missing_keys() {
        let mut m: Map<String, Value> =
            serde_json::from_str(r#"{"variant": "hyperv", "format": "qcow2"}"#).unwrap();
        fill_defaults(&mut m).unwrap();
        assert_eq!(m["format"], "qcow2");
        assert_eq!(m["partitionTableType"], "efi");
        assert_eq!(m["diskSize"], "4096");
        let mut bad: Map<String, Value> = serde_json::from_str(r#"{"variant": "x"}"#).unwrap();
        assert!(fill_defaults(&mut bad).unwrap_err().contains("\"x\""));
    }

    #[test]
    fn test_qemu_server_conf_is_the_modules() {
        let c = qemu_server_conf_for("nixos-1", false, &Variant::Proxmox.profile());
        assert!(c.starts_with("# generated by NixOS\nadditionalSpace: 512M\nagent: 1\nbios: seabios\nboot: \nbootSize: 256M\n"), "{c}");
        assert!(c.ends_with("virtio0: local-lvm:vm-9999-disk-0\n\n#qmdump#map:virtio0:drive-virtio0:local-lvm:raw:\n"), "{c}");
    }
}
