//! The schema: [`Spec`], make-disk-image's arguments as JSON keys, with their defaults.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    pub(super) fn text(&self) -> String {
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
