//! The build specification as data: make-disk-image's arguments in JSON, and the builder methods
//! of [`ImageSpec`].
//!
//! A [`Spec`] is what a user writes: one JSON object whose keys are make-disk-image's argument
//! names (`partitionTableType`, `format`, `diskSize`, `contents`, …), the closure inputs
//! (`toplevel`, `closureInfo`, `referencesGraph`, `storeRoot`) and imagetool's own settings
//! (`output`, `threads`, `bootloader`, `seed`, …). [`Spec::resolve`] checks it and turns it into
//! the [`ImageSpec`] that [`build`](crate::build::build) takes. The CLI flags of `imagetool build`
//! fill the very same [`Spec`], so flags and JSON with the same settings give byte-identical
//! images.
//!
//! Inside a Nix build with `__structuredAttrs = true`, [`StructuredAttrs::read`] takes the
//! derivation's `.attrs.json` (`$NIX_ATTRS_JSON_FILE`): the derivation's own attributes
//! (`builder`, `system`, `outputs`, `exportReferencesGraph`, …) are set aside, the rest is the
//! spec, the closure is the `exportReferencesGraph` entry, and the image goes to
//! `$out/<baseName>.<ext>` with `$out/nix-support/hydra-build-products`, as make-disk-image
//! writes them.
//!
//! ```
//! use imagetool::spec::Spec;
//!
//! let spec = Spec::from_json(r#"{ "partitionTableType": "efi", "format": "qcow2",
//!     "toplevel": "/nix/store/00000000000000000000000000000000-nixos-system",
//!     "closureInfo": "/nix/store/00000000000000000000000000000000-closure-info",
//!     "installBootLoader": false, "output": "nixos.qcow2" }"#).unwrap();
//! let image = spec.resolve(0).unwrap();
//! assert_eq!(image.format, imagetool::vdisk::Format::Qcow2);
//!
//! let err = Spec::from_json(r#"{ "partitionTabelType": "efi" }"#).unwrap_err();
//! assert!(err.to_string().contains("partitionTabelType"));
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use imagetool_nix::closure::ClosureInput;
use imagetool_nix::root::Content;
use imagetool_ptable::{BootSizeRounding, DiskSize, Guid, Identifiers, LayoutOptions, TableType};
use imagetool_vdisk::{self as vdisk, Compression, Format};
use serde::{Deserialize, Serialize};

use crate::build::ImageSpec;
use crate::disk::parse_size;

/// What kind of problem a spec has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A key is unknown, has the wrong type or a value out of range.
    InvalidInput,
    /// A make-disk-image argument imagetool cannot honour (`postVM`, `fsType`, …).
    Unsupported,
    /// The spec file could not be read or the output not written.
    Io,
}

/// A problem with a spec, naming the key (`contents[1].target`) or file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct Error {
    kind: ErrorKind,
    key: Option<String>,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    fn new(kind: ErrorKind, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            key: Some(key.into()),
            message: message.into(),
            source: None,
        }
    }

    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, key, message)
    }

    pub(crate) fn invalid_key(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(key, message)
    }

    fn io(path: &Path, what: &str, source: std::io::Error) -> Self {
        // The input checks (not a regular file, too large, not UTF-8) are the caller's fault.
        let kind = match source.kind() {
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                ErrorKind::InvalidInput
            }
            _ => ErrorKind::Io,
        };
        Self {
            kind,
            key: Some(path.display().to_string()),
            message: what.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// What kind of problem this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The key (a path such as `contents[1].target`) or file the error is about.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

type Result<T> = std::result::Result<T, Error>;

/// A size given as a JSON number or a string (`diskSize = 4096` or `"auto"`,
/// `additionalSpace = "512M"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// A number.
    Number(u64),
    /// A string.
    Text(String),
}

impl SizeValue {
    fn text(&self) -> String {
        match self {
            SizeValue::Number(n) => n.to_string(),
            SizeValue::Text(t) => t.clone(),
        }
    }
}

impl From<&str> for SizeValue {
    fn from(s: &str) -> Self {
        SizeValue::Text(s.to_string())
    }
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SizeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number or a string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<SizeValue, E> {
                Ok(SizeValue::Number(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<SizeValue, E> {
                u64::try_from(v)
                    .map(SizeValue::Number)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<SizeValue, E> {
                Ok(SizeValue::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One entry of `contents`: `{ source, target, mode?, user?, group? }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentSpec {
    /// The host file or directory (a `*` in its last component copies every match).
    pub source: PathBuf,
    /// The absolute path in the image.
    pub target: String,
    /// Octal permission bits (`"0644"`), applied to everything copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Owner (name or number); `group` must be given with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group (name or number); `user` must be given with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn default_table() -> String {
    "legacy".into()
}
fn default_format() -> String {
    "raw".into()
}
fn default_disk_size() -> SizeValue {
    "auto".into()
}
fn default_additional_space() -> SizeValue {
    "512M".into()
}
fn default_boot_size() -> SizeValue {
    "256M".into()
}
fn default_rounding() -> String {
    "upstream".into()
}
fn default_base_name() -> String {
    "nixos".into()
}
fn default_fs_type() -> String {
    "ext4".into()
}

/// A build specification: make-disk-image's arguments plus the closure and imagetool's own
/// settings. Every field has make-disk-image's default; unknown keys are errors.
///
/// Accepted and ignored, because they only concern the VM or the derivation: `name`,
/// `memSize`, `OVMF`, `efiFirmware`, `deterministic` (imagetool is always deterministic) and
/// `reproducible` (always bit-for-bit). Accepted only at their harmless values: `postVM`
/// (empty), `fsType` (`ext4`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    // ---- the closure ----
    /// The system toplevel store path (`config.system.build.toplevel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toplevel: Option<String>,
    /// A `closureInfo` output directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure_info: Option<PathBuf>,
    /// An `exportReferencesGraph` file (plain or structured-attrs JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references_graph: Option<PathBuf>,
    /// The directory holding `nix/store` (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_root: Option<PathBuf>,
    /// `additionalPaths`: extra store paths with everything they refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_paths: Vec<String>,
    /// Recompute every NAR hash of the closure.
    #[serde(default, skip_serializing_if = "is_false")]
    pub verify_closure: bool,
    /// Check every store path against its registration (NAR hash and size) while it is read,
    /// and that no file read changed before the image was complete (default `true`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub verify: bool,

    // ---- make-disk-image's arguments ----
    /// `partitionTableType`: legacy, legacy+boot, legacy+gpt, efi, efixbootldr, hybrid, none; or imagetool's `sd-card` (sd-image.nix).
    #[serde(default = "default_table")]
    pub partition_table_type: String,
    /// `format`: raw, qcow2, qcow2-compressed, vdi, vpc, vhd-fixed, vhdx, vmdk, vmdk-stream;
    /// comma-separated for several outputs from one plan.
    #[serde(default = "default_format")]
    pub format: String,
    /// `diskSize`: `"auto"` or MiB (number or numeric string).
    #[serde(default = "default_disk_size")]
    pub disk_size: SizeValue,
    /// `additionalSpace` (`numfmt --from=iec`), used with `diskSize = "auto"`.
    #[serde(default = "default_additional_space")]
    pub additional_space: SizeValue,
    /// `bootSize`: the end offset of the boot partition.
    #[serde(default = "default_boot_size")]
    pub boot_size: SizeValue,
    /// `label` of the root filesystem (default `nixos`, `nix-store` with `onlyNixStore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `contents`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<ContentSpec>,
    /// `configFile`: copied to `/etc/nixos/configuration.nix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
    /// `onlyNixStore`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub only_nix_store: bool,
    /// `installBootLoader`: `false` is `bootloader = "none"`, `true` is `"auto"`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub install_boot_loader: bool,
    /// `copyChannel`: put `channel` into root's channels profile (nothing without `channel`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub copy_channel: bool,
    /// The channel store path `copyChannel` copies (make-disk-image takes it from nixpkgs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `rootGPUID`: the root partition's GUID.
    #[serde(default, rename = "rootGPUID", skip_serializing_if = "Option::is_none")]
    pub root_gpuid: Option<String>,
    /// `rootFSUID`: the ext4 UUID (default `rootGPUID`).
    #[serde(default, rename = "rootFSUID", skip_serializing_if = "Option::is_none")]
    pub root_fsuid: Option<String>,
    /// `baseName`: the output file's stem inside a Nix build (`$out/<baseName>.<ext>`).
    #[serde(default = "default_base_name")]
    pub base_name: String,
    /// `deterministic`: accepted; imagetool is deterministic either way.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub deterministic: bool,
    /// `touchEFIVars`: also write the OVMF variable store `efi-vars.fd` beside the image, with
    /// the boot entry the bootloader's installer registers (tables hybrid, efi, efixbootldr,
    /// legacy+gpt).
    #[serde(default, rename = "touchEFIVars", skip_serializing_if = "is_false")]
    pub touch_efi_vars: bool,
    /// `fsType`: only `ext4`.
    #[serde(default = "default_fs_type")]
    pub fs_type: String,
    /// `name`: the derivation's name; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `memSize`: the VM's memory; ignored (no VM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_size: Option<u64>,
    /// `postVM`: only empty; run such commands after imagetool in your derivation.
    #[serde(default, rename = "postVM", skip_serializing_if = "String::is_empty")]
    pub post_vm: String,
    /// `OVMF`: firmware of the VM; ignored.
    #[serde(default, rename = "OVMF", skip_serializing_if = "Option::is_none")]
    pub ovmf: Option<String>,
    /// `efiFirmware`: ignored (no VM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efi_firmware: Option<String>,
    /// `efiVariables`: the OVMF variable file `touchEFIVars` starts from (default: an empty
    /// store of the OVMF 4 MiB layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efi_variables: Option<String>,
    /// `reproducible`: accepted; imagetool output is always bit-for-bit reproducible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproducible: Option<bool>,

    // ---- imagetool's own ----
    /// The bootloader: `auto`, `systemd-boot`, `grub`, `extlinux` or `none`; overrides
    /// `installBootLoader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootloader: Option<String>,
    /// How `bootSize` becomes a MiB boundary: `upstream` (256M ends at 257 MiB) or `exact`.
    #[serde(default = "default_rounding")]
    pub boot_size_rounding: String,
    /// Derive every identifier from this seed instead of make-disk-image's constants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// Codec of `qcow2-compressed`: `deflate` or `zstd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// The image file (outside a Nix build); `….zst`: a zstd-compressed raw image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    /// `sd-card`: a directory whose files go into the firmware partition
    /// (`populateFirmwareCommands`' `./firmware`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_dir: Option<PathBuf>,
    /// Files written raw into the disk, `FILE@OFFSET` (bytes): U-Boot or an SPL, as
    /// sd-image.nix's `postBuildCommands` `dd`s them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub raw_writes: Vec<String>,
    /// `sd-card`: the partition with the bootable flag, `firmware` (sd-image.nix's today) or
    /// `root` (where U-Boot's distro boot then finds `/boot/extlinux`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sd_bootable: Option<String>,
    /// Data-copy threads (0: one per core); never changes the output.
    #[serde(default)]
    pub threads: usize,
    /// Seconds since the epoch for every timestamp; `SOURCE_DATE_EPOCH` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<i64>,
    /// An image variant (`amazon`, `proxmox`, …, see [`crate::variant`]): its nixpkgs
    /// module's defaults fill the keys the spec leaves out, and `output` is a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The codec of a variant's compressed package (`gzip`, `bzip2`, `zstd`, `xz`), e.g.
    /// `bzip2` for digital-ocean's `compressionMethod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_compression: Option<String>,
}

impl Default for Spec {
    fn default() -> Self {
        // An empty object has every default; parsing it cannot fail.
        Self {
            toplevel: None,
            closure_info: None,
            references_graph: None,
            store_root: None,
            additional_paths: Vec::new(),
            verify_closure: false,
            verify: true,
            partition_table_type: default_table(),
            format: default_format(),
            disk_size: default_disk_size(),
            additional_space: default_additional_space(),
            boot_size: default_boot_size(),
            label: None,
            contents: Vec::new(),
            config_file: None,
            only_nix_store: false,
            install_boot_loader: true,
            copy_channel: true,
            channel: None,
            root_gpuid: None,
            root_fsuid: None,
            base_name: default_base_name(),
            deterministic: true,
            touch_efi_vars: false,
            fs_type: default_fs_type(),
            name: None,
            mem_size: None,
            post_vm: String::new(),
            ovmf: None,
            efi_firmware: None,
            efi_variables: None,
            reproducible: None,
            bootloader: None,
            boot_size_rounding: default_rounding(),
            seed: None,
            compression: None,
            output: None,
            firmware_dir: None,
            raw_writes: Vec::new(),
            sd_bootable: None,
            threads: 0,
            source_date_epoch: None,
            variant: None,
            archive_compression: None,
        }
    }
}

pub use imagetool_boot::Bootloader;

impl TryFrom<Spec> for ImageSpec {
    type Error = Error;

    /// [`Spec::resolve`] with `SOURCE_DATE_EPOCH` (else 1980-01-01) as the default timestamp.
    fn try_from(spec: Spec) -> Result<Self> {
        let epoch = crate::mkfs::source_date_epoch()
            .map_err(|e| Error::invalid("SOURCE_DATE_EPOCH", e))?
            .unwrap_or(crate::mkfs::DEFAULT_EPOCH);
        spec.resolve(epoch)
    }
}

/// Where a derivation's attribute names end and the spec begins.
const DERIVATION_KEYS: &[&str] = &[
    "builder",
    "args",
    "system",
    "outputs",
    "exportReferencesGraph",
    "requiredSystemFeatures",
    "preferLocalBuild",
    "allowSubstitutes",
    "allowedReferences",
    "allowedRequisites",
    "disallowedReferences",
    "disallowedRequisites",
    "outputChecks",
    "unsafeDiscardReferences",
    "impureEnvVars",
    "outputHash",
    "outputHashAlgo",
    "outputHashMode",
    "passAsFile",
    "env",
];

impl Spec {
    /// Parses a spec from JSON text.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming the key path of an unknown key, a wrong type or
    /// malformed JSON (with its line and column).
    pub fn from_json(text: &str) -> Result<Self> {
        // A variant's defaults fill the keys the spec leaves out (crate::variant).
        let filled = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(mut map)) if map.contains_key("variant") => {
                crate::variant::fill_defaults(&mut map)
                    .map_err(|e| Error::invalid("variant", e))?;
                Some(serde_json::Value::Object(map).to_string())
            }
            _ => None,
        };
        let text = filled.as_deref().unwrap_or(text);
        let de = &mut serde_json::Deserializer::from_str(text);
        let spec: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            Error::invalid(
                if path == "." { "spec".into() } else { path },
                inner.to_string(),
            )
        })?;
        Ok(spec)
    }

    /// Reads a spec file.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] naming the file; the errors of [`Spec::from_json`].
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_spec_text(path, "reading the spec")?;
        Self::from_json(&text).map_err(|e| e.in_file(path))
    }

    /// The spec as pretty JSON (with the defaults written out).
    #[must_use]
    pub fn to_json(&self) -> String {
        // A Spec holds only strings, numbers, booleans and lists: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The bootloader asked for: `bootloader`, else `installBootLoader`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an unknown `bootloader` name.
    pub fn bootloader(&self) -> Result<Bootloader> {
        match self.bootloader.as_deref() {
            None if self.install_boot_loader => Ok(Bootloader::Auto),
            None => Ok(Bootloader::None),
            Some("auto") => Ok(Bootloader::Auto),
            Some("systemd-boot") => Ok(Bootloader::SystemdBoot),
            Some("grub") => Ok(Bootloader::Grub),
            Some("none") => Ok(Bootloader::None),
            Some(o) => Err(Error::invalid(
                "bootloader",
                format!("{o:?}: expected auto, systemd-boot, grub, extlinux or none"),
            )),
        }
    }

    /// The output file name inside a Nix build: `<baseName>.<ext>` (make-disk-image's names:
    /// `img` for raw, `vhd` for vpc).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an unknown `format` or a `baseName` that is not a plain
    /// file name.
    pub fn file_name(&self) -> Result<String> {
        let format = self.parsed_format()?;
        let b = &self.base_name;
        if b.is_empty() || b.contains('/') || b == "." || b == ".." {
            return Err(Error::invalid(
                "baseName",
                format!("{b:?} is not a plain file name"),
            ));
        }
        Ok(format!("{b}.{}", format.extension()))
    }

    fn parsed_format(&self) -> Result<Format> {
        Ok(self.parsed_formats()?[0])
    }

    /// `format` as a list: `qcow2,vhdx` writes both from one plan (the first is the primary
    /// output; the others take its name with their own extension).
    fn parsed_formats(&self) -> Result<Vec<Format>> {
        let formats = self
            .format
            .split(',')
            .map(|f| {
                f.trim()
                    .parse()
                    .map_err(|e: vdisk::Error| Error::invalid("format", e.to_string()))
            })
            .collect::<Result<Vec<Format>>>()?;
        let mut exts: Vec<&str> = formats.iter().map(|f| f.extension()).collect();
        exts.sort_unstable();
        if exts.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::invalid(
                "format",
                format!(
                    "{:?}: two formats with the same file extension",
                    self.format
                ),
            ));
        }
        Ok(formats)
    }

    /// Checks every setting and makes the [`ImageSpec`] to build. `default_timestamp` is used
    /// when `sourceDateEpoch` is absent (the CLI passes `SOURCE_DATE_EPOCH`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming the key of a bad value, a missing closure or output,
    /// or a `contents` target outside the root; [`ErrorKind::Unsupported`] for make-disk-image
    /// arguments imagetool cannot honour (`postVM`, `fsType` other than ext4, `touchEFIVars`
    /// with a table make-disk-image refuses it for).
    pub fn resolve(&self, default_timestamp: i64) -> Result<ImageSpec> {
        let unsupported = |key: &str, why: &str| Error::new(ErrorKind::Unsupported, key, why);
        if !self.post_vm.trim().is_empty() {
            return Err(unsupported(
                "postVM",
                "there is no VM: run these commands after imagetool in your derivation",
            ));
        }
        if self.fs_type != "ext4" {
            return Err(unsupported(
                "fsType",
                &format!("{:?}: imagetool writes ext4 roots only", self.fs_type),
            ));
        }
        let bootloader = self.bootloader()?;
        let closure = match (&self.closure_info, &self.references_graph) {
            (Some(d), None) => ClosureInput::ClosureInfo(d.clone()),
            (None, Some(f)) => ClosureInput::ReferencesGraph(f.clone()),
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "closureInfo",
                    "give closureInfo or referencesGraph, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "closureInfo",
                    "no closure: give closureInfo or referencesGraph",
                ));
            }
        };
        let output = self
            .output
            .clone()
            .ok_or_else(|| Error::invalid("output", "no output file"))?;
        let format = self.parsed_format()?;
        let compression: Compression = match &self.compression {
            Some(c) => c
                .parse()
                .map_err(|e: vdisk::Error| Error::invalid("compression", e.to_string()))?,
            None => Compression::default(),
        };
        // A codec for a format that has none is a mistake, not something to ignore.
        if let Some(c) = &self.compression
            && !self.parsed_formats()?.contains(&Format::Qcow2Compressed)
        {
            return Err(Error::invalid(
                "compression",
                format!(
                    "{c:?} applies to qcow2-compressed only; format is {:?}",
                    self.format
                ),
            ));
        }
        let contents = self
            .contents
            .iter()
            .enumerate()
            .map(|(i, c)| c.resolve(i))
            .collect::<Result<Vec<_>>>()?;
        let mut spec = ImageSpec::new(self.toplevel.clone(), closure, output.clone())
            .store_root(
                self.store_root
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/")),
            )
            .additional_paths(self.additional_paths.clone())
            .verify_closure(self.verify_closure)
            .verify(self.verify)
            .layout(self.layout()?)
            .config_file(self.config_file.clone())
            .contents(contents)
            .channel(if self.copy_channel {
                self.channel.clone()
            } else {
                None
            })
            .only_nix_store(self.only_nix_store)
            .bootloader(bootloader)
            .format(format)
            .also_formats(
                self.parsed_formats()?[1..]
                    .iter()
                    .map(|f| (*f, output.with_extension(f.extension())))
                    .collect(),
            )
            .compression(compression)
            .threads(self.threads)
            .timestamp(self.source_date_epoch.unwrap_or(default_timestamp));
        spec.label = self.label.clone();
        spec.root_fs_uuid = self.root_fsuid.clone();
        spec.firmware_dir = self.firmware_dir.clone();
        spec.raw_writes = self
            .raw_writes
            .iter()
            .map(|w| {
                w.parse()
                    .map_err(|e: String| Error::invalid("rawWrites", e))
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(b) = &self.sd_bootable {
            spec.sd_boot_flag = b
                .parse()
                .map_err(|e: String| Error::invalid("sdBootable", e))?;
        }
        if self.touch_efi_vars {
            if let Some(why) = crate::efi_vars::refusal(spec.layout.table) {
                return Err(unsupported("touchEFIVars", &why));
            }
            spec.efi_vars = Some(crate::efi_vars::EfiVars {
                template: self.efi_variables.as_ref().map(PathBuf::from),
                output: output
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(crate::efi_vars::FILE_NAME),
            });
        }
        if spec.firmware_dir.is_some() && spec.layout.table != TableType::SdCard {
            return Err(Error::invalid(
                "firmwareDir",
                "only the sd-card table has a firmware partition",
            ));
        }
        Ok(spec)
    }

    fn layout(&self) -> Result<LayoutOptions> {
        let table: TableType =
            self.partition_table_type
                .parse()
                .map_err(|e: imagetool_ptable::Error| {
                    Error::invalid("partitionTableType", e.to_string())
                })?;
        let size =
            |key: &str, v: &SizeValue| parse_size(&v.text()).map_err(|e| Error::invalid(key, e));
        let disk_size = match &self.disk_size {
            SizeValue::Text(t) if t == "auto" => DiskSize::Auto {
                additional_space: size("additionalSpace", &self.additional_space)?,
            },
            SizeValue::Number(n) => DiskSize::Mib(*n),
            SizeValue::Text(t) => DiskSize::Mib(t.trim().parse().map_err(|_| {
                Error::invalid(
                    "diskSize",
                    format!("{t:?}: expected \"auto\" or a number of MiB"),
                )
            })?),
        };
        let boot_rounding = match self.boot_size_rounding.as_str() {
            "upstream" => BootSizeRounding::Upstream,
            "exact" => BootSizeRounding::Exact,
            o => {
                return Err(Error::invalid(
                    "bootSizeRounding",
                    format!("{o:?}: expected upstream or exact"),
                ));
            }
        };
        let ids = match (&self.seed, &self.root_gpuid) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("seed", "give seed or rootGPUID, not both"));
            }
            (Some(s), None) => Identifiers::Seeded(s.as_bytes().to_vec()),
            (None, Some(g)) => Identifiers::MakeDiskImage {
                root: g
                    .parse::<Guid>()
                    .map_err(|e| Error::invalid("rootGPUID", e.to_string()))?,
            },
            (None, None) => Identifiers::default(),
        };
        if let Some(u) = &self.root_fsuid {
            crate::build::parse_uuid(u).map_err(|e| Error::invalid("rootFSUID", e))?;
        }
        Ok(LayoutOptions {
            table,
            disk_size,
            boot_size: size("bootSize", &self.boot_size)?,
            boot_rounding,
            ids,
            mbr_signature: None,
        })
    }
}

impl Error {
    fn in_file(mut self, path: &Path) -> Self {
        self.message = format!("{} (in {})", self.message, path.display());
        self
    }
}

impl ContentSpec {
    fn resolve(&self, index: usize) -> Result<Content> {
        let key = |field: &str| format!("contents[{index}].{field}");
        if self.source.as_os_str().is_empty() {
            return Err(Error::invalid(key("source"), "empty source"));
        }
        let t = &self.target;
        if !t.starts_with('/') {
            return Err(Error::invalid(
                key("target"),
                format!("{t:?} must be an absolute path"),
            ));
        }
        if t.split('/').any(|c| c == ".." || c == ".") {
            return Err(Error::invalid(
                key("target"),
                format!("{t:?} leaves the root (`.` or `..`)"),
            ));
        }
        if t.trim_matches('/').is_empty() {
            return Err(Error::invalid(
                key("target"),
                format!("{t:?} must name something below /"),
            ));
        }
        let mode = match self.mode.as_deref() {
            None | Some("") => None,
            Some(m) => Some(
                u16::from_str_radix(m.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        Error::invalid(key("mode"), format!("{m:?}: expected octal, at most 7777"))
                    })?,
            ),
        };
        let owner = match (&self.user, &self.group) {
            (Some(u), Some(g)) => Some((u.clone(), g.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid(
                    key("group"),
                    "user and group must be given together",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    key("user"),
                    "user and group must be given together",
                ));
            }
        };
        Ok(Content {
            source: self.source.clone(),
            target: t.clone(),
            mode,
            owner,
        })
    }
}

/// A Nix build's structured attributes (`.attrs.json`), read as a spec.
#[derive(Debug, Clone)]
pub struct StructuredAttrs {
    /// The spec: every attribute that is not the derivation's own; the closure is the
    /// attributes file itself (its `exportReferencesGraph` entries) unless the spec names one.
    pub spec: Spec,
    /// `outputs.out`: the directory the image and `nix-support/` go to.
    pub out: PathBuf,
    /// The image file: `<out>/<baseName>.<ext>`.
    pub image: PathBuf,
}

impl StructuredAttrs {
    /// Reads `.attrs.json` (the file `$NIX_ATTRS_JSON_FILE` names).
    ///
    /// # Errors
    /// [`ErrorKind::Io`] naming the file; [`ErrorKind::InvalidInput`] naming the key for a
    /// missing `outputs.out`, an `exportReferencesGraph` whose entry is absent, an unknown
    /// attribute or a wrong type.
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_spec_text(path, "reading the structured attributes")?;
        Self::parse(&text, path).map_err(|e| e.in_file(path))
    }

    /// Parses the text of `.attrs.json`, found at `path`.
    ///
    /// # Errors
    /// As [`StructuredAttrs::read`].
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid("structured attributes", e.to_string()))?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(Error::invalid("structured attributes", "not a JSON object"));
        };
        let out = map
            .get("outputs")
            .and_then(|o| o.get("out"))
            .and_then(serde_json::Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| Error::invalid("outputs.out", "missing (is this an .attrs.json?)"))?;
        // The exportReferencesGraph names are keys of the attributes file, holding the graphs.
        let mut graphs = BTreeSet::new();
        if let Some(erg) = map.get("exportReferencesGraph") {
            let serde_json::Value::Object(erg) = erg else {
                return Err(Error::invalid(
                    "exportReferencesGraph",
                    "expected an attribute set",
                ));
            };
            for name in erg.keys() {
                match map.get(name) {
                    Some(serde_json::Value::Array(_)) => {
                        graphs.insert(name.clone());
                    }
                    _ => {
                        return Err(Error::invalid(
                            format!("exportReferencesGraph.{name}"),
                            format!("the closure entry {name:?} is missing from the attributes"),
                        ));
                    }
                }
            }
        }
        map.retain(|k, _| {
            !(DERIVATION_KEYS.contains(&k.as_str()) || k.starts_with("__") || graphs.contains(k))
        });
        let mut spec = Spec::from_json(&serde_json::Value::Object(map).to_string())?;
        if spec.closure_info.is_none() && spec.references_graph.is_none() {
            if graphs.is_empty() {
                return Err(Error::invalid(
                    "exportReferencesGraph",
                    "no closure: set exportReferencesGraph.closure = [ toplevel ] (or closureInfo)",
                ));
            }
            spec.references_graph = Some(path.to_path_buf());
        }
        let image = out.join(spec.file_name()?);
        spec.output = Some(image.clone());
        Ok(Self { spec, out, image })
    }

    /// Gets a Nix build ready: `threads` from `$NIX_BUILD_CORES` (the cores Nix grants) when
    /// the spec leaves it at 0 (the thread count never changes the output), and the `out`
    /// directory created.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] naming `out` when it cannot be created.
    pub fn prepare(&mut self) -> Result<()> {
        if self.spec.threads == 0
            && let Some(n) = std::env::var("NIX_BUILD_CORES")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        {
            self.spec.threads = n;
        }
        std::fs::create_dir_all(&self.out).map_err(|e| Error::io(&self.out, "creating", e))
    }

    /// Writes `<out>/nix-support/hydra-build-products` (`file <format>-image <image>`), as
    /// make-disk-image does.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] naming the file.
    pub fn write_build_products(&self) -> Result<()> {
        let dir = self.out.join("nix-support");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "creating", e))?;
        let file = dir.join("hydra-build-products");
        let mut line = String::new();
        for f in self.spec.format.split(',') {
            let f = f.trim();
            let image = match f.parse::<Format>() {
                Ok(fmt) => self.image.with_extension(fmt.extension()),
                Err(_) => self.image.clone(),
            };
            line.push_str(&format!("file {f}-image {}\n", image.display()));
        }
        // As every output: never through a planted symlink, never half-written.
        let out = imagetool_blockio::AtomicFile::create(&file)
            .map_err(|e| Error::io(&file, "writing", e))?;
        std::io::Write::write_all(&mut out.file(), line.as_bytes())
            .and_then(|()| out.commit())
            .map_err(|e| Error::io(&file, "writing", e))
    }
}

/// The structured-attributes file of the Nix build this process runs in, if any:
/// `$NIX_ATTRS_JSON_FILE`, or `$NIX_BUILD_TOP/.attrs.json`. The fallback matters: in a
/// sandboxed build, Nix 2.8 sets `NIX_ATTRS_JSON_FILE` to the build directory's path outside
/// the sandbox, which does not exist inside it.
#[must_use]
pub fn attrs_file_from_env() -> Option<PathBuf> {
    let named = std::env::var_os("NIX_ATTRS_JSON_FILE").map(PathBuf::from);
    let in_top =
        std::env::var_os("NIX_BUILD_TOP").map(|top| PathBuf::from(top).join(".attrs.json"));
    match (named, in_top) {
        (Some(n), _) if n.is_file() => Some(n),
        (_, Some(t)) if t.is_file() => Some(t),
        (named, _) => named,
    }
}

/// A spec file as `imagetool build --spec` reads it: a plain spec, or a Nix build's
/// structured attributes (recognised by their `outputs` attribute, which no spec has).
#[derive(Debug, Clone)]
pub enum SpecFile {
    /// A plain spec.
    Plain(Spec),
    /// A Nix build's `.attrs.json`.
    Attrs(StructuredAttrs),
}

impl SpecFile {
    /// Reads `path` as a spec or as structured attributes.
    ///
    /// # Errors
    /// The errors of [`Spec::read`] and [`StructuredAttrs::read`].
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_spec_text(path, "reading the spec")?;
        let is_attrs = serde_json::from_str::<serde_json::Value>(&text)
            .is_ok_and(|v| v.get("outputs").is_some_and(serde_json::Value::is_object));
        if is_attrs {
            StructuredAttrs::parse(&text, path)
                .map(SpecFile::Attrs)
                .map_err(|e| e.in_file(path))
        } else {
            Spec::from_json(&text)
                .map(SpecFile::Plain)
                .map_err(|e| e.in_file(path))
        }
    }
}

// ---- builder methods on ImageSpec ----

impl ImageSpec {
    /// A spec with make-disk-image's defaults (legacy table, raw, auto size, 512M additional
    /// space, 256M boot size, bootloader `auto`) for `toplevel` and `closure`, writing `output`.
    /// Timestamps default to 1980-01-01 (the earliest FAT time); see [`ImageSpec::timestamp`].
    #[must_use]
    pub fn new(toplevel: Option<String>, closure: ClosureInput, output: PathBuf) -> Self {
        Self {
            toplevel,
            closure,
            store_root: PathBuf::from("/"),
            additional_paths: Vec::new(),
            verify_closure: false,
            verify: true,
            layout: LayoutOptions::default(),
            label: None,
            root_fs_uuid: None,
            config_file: None,
            contents: Vec::new(),
            channel: None,
            only_nix_store: false,
            bootloader: Bootloader::Auto,
            format: Format::Raw,
            also: Vec::new(),
            format_options: vdisk::Options::default(),
            output,
            threads: 0,
            timestamp: 315_532_800,
            firmware_dir: None,
            raw_writes: Vec::new(),
            sd_boot_flag: crate::sdcard::BootFlag::default(),
            efi_vars: None,
        }
    }

    /// The directory holding `nix/store` (`storeRoot`).
    #[must_use]
    pub fn store_root(mut self, dir: PathBuf) -> Self {
        self.store_root = dir;
        self
    }

    /// `additionalPaths`.
    #[must_use]
    pub fn additional_paths(mut self, paths: Vec<String>) -> Self {
        self.additional_paths = paths;
        self
    }

    /// Recompute every NAR hash of the closure (`verifyClosure`).
    #[must_use]
    pub fn verify_closure(mut self, on: bool) -> Self {
        self.verify_closure = on;
        self
    }

    /// Check the store against the registration while reading it, and that nothing read
    /// changed before the output is complete (`verify`, on by default).
    #[must_use]
    pub fn verify(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// The whole layout (table type, sizes, identifiers).
    #[must_use]
    pub fn layout(mut self, layout: LayoutOptions) -> Self {
        self.layout = layout;
        self
    }

    /// `partitionTableType`.
    #[must_use]
    pub fn partition(mut self, table: TableType) -> Self {
        self.layout.table = table;
        self
    }

    /// `diskSize` (with `additionalSpace` inside [`DiskSize::Auto`]).
    #[must_use]
    pub fn disk_size(mut self, size: DiskSize) -> Self {
        self.layout.disk_size = size;
        self
    }

    /// `bootSize` in bytes.
    #[must_use]
    pub fn boot_size(mut self, bytes: u64) -> Self {
        self.layout.boot_size = bytes;
        self
    }

    /// Derive every GUID, the MBR signature and the FAT serials from `seed` instead of
    /// make-disk-image's fixed values (the spec's `seed`; replaces a `root_guid`).
    #[must_use]
    pub fn seed(mut self, seed: impl Into<Vec<u8>>) -> Self {
        self.layout.ids = Identifiers::Seeded(seed.into());
        self
    }

    /// `rootGPUID`.
    #[must_use]
    pub fn root_guid(mut self, guid: Guid) -> Self {
        self.layout.ids = Identifiers::MakeDiskImage { root: guid };
        self
    }

    /// `label` of the root filesystem.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// `rootFSUID` (canonical UUID text).
    #[must_use]
    pub fn root_fs_uuid(mut self, uuid: impl Into<String>) -> Self {
        self.root_fs_uuid = Some(uuid.into());
        self
    }

    /// `configFile`.
    #[must_use]
    pub fn config_file(mut self, file: Option<PathBuf>) -> Self {
        self.config_file = file;
        self
    }

    /// `contents`.
    #[must_use]
    pub fn contents(mut self, contents: Vec<Content>) -> Self {
        self.contents = contents;
        self
    }

    /// The channel store path (`copyChannel`).
    #[must_use]
    pub fn channel(mut self, channel: Option<String>) -> Self {
        self.channel = channel;
        self
    }

    /// `onlyNixStore`.
    #[must_use]
    pub fn only_nix_store(mut self, on: bool) -> Self {
        self.only_nix_store = on;
        self
    }

    /// The bootloader (`installBootLoader`; [`Bootloader::Auto`] by default, as upstream).
    #[must_use]
    pub fn bootloader(mut self, bootloader: Bootloader) -> Self {
        self.bootloader = bootloader;
        self
    }

    /// `format`.
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// More outputs written from the same plan: (format, file).
    #[must_use]
    pub fn also_formats(mut self, outputs: Vec<(Format, PathBuf)>) -> Self {
        self.also = outputs;
        self
    }

    /// The codec of `qcow2-compressed`.
    #[must_use]
    pub fn compression(mut self, compression: Compression) -> Self {
        self.format_options.compression = compression;
        self
    }

    /// Data-copy threads (0: one per core).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Seconds since the epoch for every timestamp (`SOURCE_DATE_EPOCH`).
    #[must_use]
    pub fn timestamp(mut self, seconds: i64) -> Self {
        self.timestamp = seconds;
        self
    }
}

/// Reads a spec or `.attrs.json`: a regular file (a FIFO is refused, not waited on) of at most
/// [`MAX_GRAPH_BYTES`](imagetool_fstree::input::MAX_GRAPH_BYTES) (structured attributes carry
/// the references graph).
fn read_spec_text(path: &Path, what: &str) -> Result<String> {
    imagetool_fstree::input::read_limited_string(path, imagetool_fstree::input::MAX_GRAPH_BYTES)
        .map_err(|e| Error::io(path, what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: &str = "/nix/store/00000000000000000000000000000000-nixos-system";

    /// One change to a valid spec.
    type Change = fn(&mut Spec);

    fn base() -> Spec {
        Spec {
            toplevel: Some(TOP.into()),
            closure_info: Some("/ci".into()),
            output: Some("/o/nixos.img".into()),
            install_boot_loader: false,
            ..Spec::default()
        }
    }

    fn err_of(json: &str) -> Error {
        Spec::from_json(json).unwrap_err()
    }

    #[test]
    fn test_empty_object_is_the_default() {
        assert_eq!(Spec::from_json("{}").unwrap(), Spec::default());
    }

    #[test]
    fn test_round_trip_through_json() {
        let mut s = base();
        s.partition_table_type = "hybrid".into();
        s.disk_size = SizeValue::Number(4096);
        s.contents.push(ContentSpec {
            source: "/a".into(),
            target: "/etc/a".into(),
            mode: Some("0600".into()),
            user: Some("root".into()),
            group: Some("wheel".into()),
        });
        s.root_gpuid = Some("11111111-2222-3333-4444-555555555555".into());
        assert_eq!(Spec::from_json(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn test_image_spec_deserializes_through_the_spec() {
        let json = format!(
            r#"{{"toplevel": "{TOP}", "closureInfo": "/ci", "output": "/o/x.qcow2",
                "partitionTableType": "efi", "format": "qcow2", "bootloader": "grub",
                "sourceDateEpoch": 42}}"#
        );
        let spec: ImageSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(spec.layout.table, TableType::Efi);
        assert_eq!(spec.format, Format::Qcow2);
        assert_eq!(spec.bootloader, Bootloader::Grub);
        assert_eq!(spec.timestamp, 42);
        // The same checks as `--spec`: a bad value fails deserialization, naming the key.
        let bad = json.replace("\"efi\"", "\"gpt\"");
        let e = serde_json::from_str::<ImageSpec>(&bad).unwrap_err();
        assert!(e.to_string().contains("partitionTableType"), "{e}");
    }

    #[test]
    fn test_unknown_key_is_named() {
        let e = err_of(r#"{"partitionTabelType": "efi"}"#);
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("partitionTabelType"), "{e}");
        let e = err_of(r#"{"contents": [{"source": "/a", "target": "/b", "modes": "1"}]}"#);
        assert!(e.to_string().contains("contents[0]"), "{e}");
        assert!(e.to_string().contains("modes"), "{e}");
    }

    #[test]
    fn test_wrong_type_is_named() {
        let e = err_of(r#"{"onlyNixStore": "yes"}"#);
        assert_eq!(e.key(), Some("onlyNixStore"), "{e}");
        let e = err_of(r#"{"contents": [{"source": "/a", "target": 7}]}"#);
        assert_eq!(e.key(), Some("contents[0].target"), "{e}");
        let e = err_of(r#"{"diskSize": true}"#);
        assert_eq!(e.key(), Some("diskSize"), "{e}");
        let e = err_of(r#"{"diskSize": -3}"#);
        assert_eq!(e.key(), Some("diskSize"), "{e}");
        assert!(err_of("{").to_string().contains("EOF"));
    }

    #[test]
    fn test_resolve_maps_every_setting() {
        let mut s = base();
        s.partition_table_type = "efi".into();
        s.format = "qcow2-compressed".into();
        s.compression = Some("zstd".into());
        s.disk_size = SizeValue::Text("2048".into());
        s.boot_size = SizeValue::Text("128M".into());
        s.label = Some("root".into());
        s.channel = Some(TOP.into());
        s.threads = 3;
        s.source_date_epoch = Some(42);
        let i = s.resolve(7).unwrap();
        assert_eq!(i.layout.table, TableType::Efi);
        assert_eq!(i.layout.disk_size, DiskSize::Mib(2048));
        assert_eq!(i.layout.boot_size, 128 << 20);
        assert_eq!(i.format, Format::Qcow2Compressed);
        assert_eq!(i.format_options.compression, Compression::Zstd);
        assert_eq!(i.label.as_deref(), Some("root"));
        assert_eq!(i.channel.as_deref(), Some(TOP));
        assert_eq!((i.threads, i.timestamp), (3, 42));
        s.copy_channel = false;
        s.source_date_epoch = None;
        let i = s.resolve(7).unwrap();
        assert_eq!((i.channel, i.timestamp), (None, 7));
        assert_eq!(
            base().resolve(0).unwrap().layout.disk_size,
            DiskSize::Auto {
                additional_space: 512 << 20
            }
        );
    }

    #[test]
    fn test_touch_efi_vars_writes_beside_the_image_for_efi_tables_only() {
        for (table, ok) in [
            ("efi", true),
            ("hybrid", true),
            ("efixbootldr", true),
            ("legacy+gpt", true),
            ("legacy", false),
            ("legacy+boot", false),
            ("none", false),
        ] {
            let s = Spec::from_json(&format!(
                r#"{{"toplevel": "{TOP}", "closureInfo": "/ci", "output": "/o/nixos.img",
                    "partitionTableType": "{table}", "touchEFIVars": true,
                    "efiVariables": "/fw/OVMF_VARS.fd"}}"#
            ))
            .unwrap();
            match s.resolve(0) {
                Ok(i) => {
                    assert!(ok, "{table}");
                    assert_eq!(
                        i.efi_vars,
                        Some(crate::efi_vars::EfiVars {
                            template: Some("/fw/OVMF_VARS.fd".into()),
                            output: "/o/efi-vars.fd".into(),
                        })
                    );
                }
                Err(e) => {
                    assert!(!ok, "{table}: {e}");
                    assert_eq!(e.key(), Some("touchEFIVars"), "{e}");
                    assert!(e.to_string().contains(table), "{e}");
                }
            }
        }
        // efiVariables alone changes nothing (make-disk-image reads it only with touchEFIVars).
        let mut s = base();
        s.efi_variables = Some("/fw/OVMF_VARS.fd".into());
        assert_eq!(s.resolve(0).unwrap().efi_vars, None);
    }

    #[test]
    fn test_unsupported_arguments_are_named() {
        let cases: [(Change, &str); 3] = [
            (|s| s.post_vm = "echo hi".into(), "postVM"),
            (|s| s.fs_type = "btrfs".into(), "fsType"),
            (
                |s| {
                    s.touch_efi_vars = true;
                    s.partition_table_type = "legacy".into();
                },
                "touchEFIVars",
            ),
        ];
        for (change, key) in cases {
            let mut s = base();
            change(&mut s);
            let e = s.resolve(0).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert_eq!(e.key(), Some(key), "{e}");
        }
        // installBootLoader and bootloader resolve to the bootloader to install.
        for (change, want) in [
            (
                (|s| s.install_boot_loader = true) as Change,
                Bootloader::Auto,
            ),
            (|s| s.install_boot_loader = false, Bootloader::None),
            (|s| s.bootloader = Some("grub".into()), Bootloader::Grub),
            (
                |s| s.bootloader = Some("systemd-boot".into()),
                Bootloader::SystemdBoot,
            ),
        ] {
            let mut s = base();
            change(&mut s);
            assert_eq!(s.resolve(0).unwrap().bootloader, want);
        }
        // Harmless upstream arguments pass.
        let mut s = base();
        s.name = Some("img".into());
        s.mem_size = Some(2048);
        s.deterministic = false;
        s.post_vm = "  \n".into();
        s.resolve(0).unwrap();
    }

    #[test]
    fn test_bad_values_are_named() {
        let cases: [(Change, &str); 10] = [
            (
                |s| s.partition_table_type = "gpt".into(),
                "partitionTableType",
            ),
            (|s| s.format = "iso".into(), "format"),
            (|s| s.disk_size = "big".into(), "diskSize"),
            (|s| s.additional_space = "lots".into(), "additionalSpace"),
            (|s| s.root_gpuid = Some("nope".into()), "rootGPUID"),
            (|s| s.root_fsuid = Some("nope".into()), "rootFSUID"),
            (|s| s.bootloader = Some("lilo".into()), "bootloader"),
            (|s| s.output = None, "output"),
            (|s| s.closure_info = None, "closureInfo"),
            (|s| s.compression = Some("lz4".into()), "compression"),
        ];
        for (change, key) in cases {
            let mut s = base();
            change(&mut s);
            let e = s.resolve(0).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert_eq!(e.key(), Some(key), "{e}");
        }
    }

    #[test]
    fn test_contents_targets_are_checked() {
        for (target, mode, user, group, key) in [
            ("/../etc/x", None, None, None::<&str>, "contents[0].target"),
            ("etc/x", None, None, None, "contents[0].target"),
            ("/", None, None, None, "contents[0].target"),
            ("/a/./b", None, None, None, "contents[0].target"),
            ("/x", Some("999"), None, None, "contents[0].mode"),
            ("/x", None, Some("root"), None, "contents[0].group"),
        ] {
            let mut s = base();
            s.contents.push(ContentSpec {
                source: "/src".into(),
                target: target.into(),
                mode: mode.map(Into::into),
                user: user.map(Into::into),
                group: group.map(Into::into),
            });
            let e = s.resolve(0).unwrap_err();
            assert_eq!(e.key(), Some(key), "{target}: {e}");
        }
    }

    #[test]
    fn test_file_names_follow_make_disk_image() {
        let mut s = Spec::default();
        for (format, name) in [
            ("raw", "nixos.img"),
            ("qcow2", "nixos.qcow2"),
            ("qcow2-compressed", "nixos.qcow2"),
            ("vpc", "nixos.vhd"),
            ("vdi", "nixos.vdi"),
        ] {
            s.format = format.into();
            assert_eq!(s.file_name().unwrap(), name);
        }
        s.base_name = "../x".into();
        assert_eq!(s.file_name().unwrap_err().key(), Some("baseName"));
    }

    fn attrs(extra: &str) -> String {
        format!(
            r#"{{"builder": "/nix/store/x-imagetool", "args": ["build"], "system": "x86_64-linux",
            "name": "nixos-disk-image", "__structuredAttrs": true,
            "outputs": {{"out": "/nix/store/11111111111111111111111111111111-nixos-disk-image"}},
            "exportReferencesGraph": {{"closure": ["{TOP}"]}},
            "closure": [{{"path": "{TOP}", "references": [], "narSize": 1,
              "narHash": "sha256:0000000000000000000000000000000000000000000000000000"}}],
            "toplevel": "{TOP}", "installBootLoader": false{extra}}}"#
        )
    }

    #[test]
    fn test_structured_attrs() {
        let a = StructuredAttrs::parse(
            &attrs(r#", "format": "qcow2", "baseName": "disk""#),
            Path::new("/b/.attrs.json"),
        )
        .unwrap();
        let out = "/nix/store/11111111111111111111111111111111-nixos-disk-image";
        assert_eq!(a.out, Path::new(out));
        assert_eq!(a.image, Path::new(out).join("disk.qcow2"));
        assert_eq!(
            a.spec.references_graph.as_deref(),
            Some(Path::new("/b/.attrs.json"))
        );
        assert_eq!(a.spec.name.as_deref(), Some("nixos-disk-image"));
        let i = a.spec.resolve(0).unwrap();
        assert_eq!(i.format, Format::Qcow2);
        assert_eq!(
            i.closure,
            ClosureInput::ReferencesGraph("/b/.attrs.json".into())
        );
    }

    #[test]
    fn test_structured_attrs_errors_name_the_key() {
        let p = Path::new("/b/.attrs.json");
        let e = StructuredAttrs::parse(&attrs(r#", "fromat": "qcow2""#), p).unwrap_err();
        assert!(e.to_string().contains("fromat"), "{e}");
        let e = StructuredAttrs::parse(&attrs(r#", "contents": {}"#), p).unwrap_err();
        assert_eq!(e.key(), Some("contents"), "{e}");
        let missing = attrs("").replace(r#""closure": [{"#, r#""other": [{"#);
        let e = StructuredAttrs::parse(&missing, p).unwrap_err();
        assert_eq!(e.key(), Some("exportReferencesGraph.closure"), "{e}");
        let e = StructuredAttrs::parse(r#"{"toplevel": "x"}"#, p).unwrap_err();
        assert_eq!(e.key(), Some("outputs.out"), "{e}");
    }
}
