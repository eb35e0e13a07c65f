//! The builder methods of [`ImageSpec`]: make-disk-image's defaults, then one setting each.

use std::path::PathBuf;

use imagetool_nix::closure::ClosureInput;
use imagetool_nix::root::Content;
use imagetool_ptable::{DiskSize, Guid, Identifiers, LayoutOptions, TableType};
use imagetool_vdisk::{self as vdisk, Compression, Format};

use super::image::ImageSpec;
use imagetool_boot::Bootloader;

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
            timestamp: crate::mkfs::DEFAULT_EPOCH,
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

    /// `rootFSUID` (text parses into a [`Uuid`](crate::Uuid): `"…".parse()?`).
    #[must_use]
    pub fn root_fs_uuid(mut self, uuid: impl Into<crate::Uuid>) -> Self {
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

    /// The time of every timestamp (`SOURCE_DATE_EPOCH`): a [`Timestamp`](crate::Timestamp)
    /// or whole seconds since the epoch (`i64`).
    #[must_use]
    pub fn timestamp(mut self, time: impl Into<crate::Timestamp>) -> Self {
        self.timestamp = time.into();
        self
    }
}
