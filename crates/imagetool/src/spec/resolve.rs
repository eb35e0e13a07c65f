//! Checking a [`Spec`] and resolving it into an [`ImageSpec`].

use std::path::{Path, PathBuf};

use imagetool_fstree::Timestamp;
use imagetool_nix::closure::ClosureInput;
use imagetool_nix::root::Content;
use imagetool_ptable::{BootSizeRounding, DiskSize, Guid, Identifiers, LayoutOptions, TableType};
use imagetool_vdisk::{self as vdisk, Compression, Format};

use super::error::read_spec_text;
use super::error::{Error, ErrorKind, Result};
use super::image::ImageSpec;
use super::schema::{ContentSpec, SizeValue, Spec};
use crate::disk::parse_size;
use imagetool_boot::Bootloader;

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
    pub fn resolve(&self, default_timestamp: impl Into<Timestamp>) -> Result<ImageSpec> {
        let default_timestamp = default_timestamp.into();
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
            .timestamp(
                self.source_date_epoch
                    .map_or(default_timestamp, Timestamp::from_secs),
            );
        spec.label = self.label.clone();
        spec.root_fs_uuid = self
            .root_fsuid
            .as_deref()
            .map(super::image::parse_uuid)
            .transpose()
            .map_err(|e| Error::invalid("rootFSUID", e))?;
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
            super::image::parse_uuid(u).map_err(|e| Error::invalid("rootFSUID", e))?;
        }
        Ok({
            let mut o = LayoutOptions::default();
            o.table = table;
            o.disk_size = disk_size;
            o.boot_size = size("bootSize", &self.boot_size)?;
            o.boot_rounding = boot_rounding;
            o.ids = ids;
            o.mbr_signature = None;
            o
        })
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
