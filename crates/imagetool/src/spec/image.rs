//! [`ImageSpec`]: everything a build needs, resolved and checked.

use std::path::PathBuf;

use imagetool_boot::Bootloader;
use imagetool_fstree::{Timestamp, Uuid};
use imagetool_nix::closure::ClosureInput;
use imagetool_nix::root::Content;
use imagetool_ptable::LayoutOptions;
use imagetool_vdisk::{self as vdisk, Format};

/// make-disk-image's default `rootGPUID` (also the default `rootFSUID` of an ext4 root).
pub const DEFAULT_ROOT_GUID: &str = "F222513B-DED1-49FA-B591-20CE86A2FE7F";

/// Everything a build needs. Field names follow make-disk-image's arguments.
///
/// It deserializes from the JSON spec (make-disk-image's argument names, see
/// [`crate::spec::Spec`]): `serde_json::from_str::<ImageSpec>(text)` checks and resolves it as
/// `imagetool build --spec` does, with `SOURCE_DATE_EPOCH` (else 1980-01-01) as the timestamp
/// when the spec has no `sourceDateEpoch`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "crate::spec::Spec")]
pub struct ImageSpec {
    /// The system toplevel store path.
    pub toplevel: Option<String>,
    /// Where the closure comes from.
    pub closure: ClosureInput,
    /// The directory holding `nix/store` with the closure's contents (`/` by default).
    pub store_root: PathBuf,
    /// `additionalPaths`: extra store paths, closed under their references.
    pub additional_paths: Vec<String>,
    /// Recompute every NAR hash of the closure and fail on a mismatch.
    pub verify_closure: bool,
    /// Check every store path's NAR hash and size while it is read, and that no file read
    /// changed before the output is complete (on by default; `--no-verify`).
    pub verify: bool,
    /// `partitionTableType` and the sizes and identifiers of the layout.
    pub layout: LayoutOptions,
    /// `label` of the root filesystem (`nixos`, or `nix-store` with `only_nix_store`).
    pub label: Option<String>,
    /// `rootFSUID`: the ext4 UUID; `rootGPUID`'s value by default.
    pub root_fs_uuid: Option<Uuid>,
    /// `configFile`, copied to `/etc/nixos/configuration.nix`.
    pub config_file: Option<PathBuf>,
    /// `contents`.
    pub contents: Vec<Content>,
    /// A channel store path for the root profile (`copyChannel`).
    pub channel: Option<String>,
    /// `onlyNixStore`.
    pub only_nix_store: bool,
    /// The bootloader (`installBootLoader`: `true` is [`Bootloader::Auto`]).
    pub bootloader: Bootloader,
    /// `format`.
    pub format: Format,
    /// More outputs written from the same plan and the same in-memory disk: (format, file).
    /// All are written in parallel; on failure none is left.
    pub also: Vec<(Format, PathBuf)>,
    /// Options of the container writer (compression, seed).
    pub format_options: vdisk::Options,
    /// The output file.
    pub output: PathBuf,
    /// Data-copy threads (0: one per core). Never changes the output.
    pub threads: usize,
    /// `SOURCE_DATE_EPOCH`: registration times, superblock and FAT times, generated files
    /// (whole seconds).
    pub timestamp: Timestamp,
    /// `sd-card`: the firmware partition's files (`populateFirmwareCommands`' directory).
    pub firmware_dir: Option<PathBuf>,
    /// Files written raw at byte offsets after the table (U-Boot, an SPL).
    pub raw_writes: Vec<crate::sdcard::RawWrite>,
    /// `sd-card`: which partition is marked bootable.
    pub sd_boot_flag: crate::sdcard::BootFlag,
    /// `touchEFIVars`: also write the OVMF variable store with the bootloader's boot entry.
    pub efi_vars: Option<crate::efi_vars::EfiVars>,
}

/// Parses a canonical UUID text (either case) into a [`Uuid`]; `text.parse::<Uuid>()` with the
/// error as its message.
///
/// # Errors
/// A message naming the text.
///
/// ```
/// use imagetool::spec::parse_uuid;
///
/// let u = parse_uuid("12345678-9ABC-def0-0001-020304050607")?;
/// assert_eq!(u.to_string(), "12345678-9abc-def0-0001-020304050607");
/// assert!(parse_uuid("12345678").unwrap_err().contains("\"12345678\" is not a UUID"));
/// # Ok::<(), String>(())
/// ```
pub fn parse_uuid(text: &str) -> Result<Uuid, String> {
    text.parse::<Uuid>().map_err(|e| e.to_string())
}
