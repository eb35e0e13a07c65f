//! SD-card images (nixpkgs `sd-image.nix`): the firmware partition's files
//! (`populateFirmwareCommands` as a directory), raw bootloader blobs written at byte offsets
//! (`postBuildCommands`' `dd … seek=…` of U-Boot or an SPL), and the `.img.zst` output
//! (`compressImage`).
//!
//! The table is [`imagetool_ptable::TableType::SdCard`]; the bootloader is U-Boot's generic
//! extlinux ([`imagetool_boot::extlinux`]); the root filesystem's label is `NIXOS_SD`
//! (`rootVolumeLabel`) unless `label` says otherwise.

use std::path::{Path, PathBuf};

use imagetool_blockio::{ReadAt, WriteAt};
use imagetool_boot::{BootFile, FileSource};
use imagetool_ptable::DiskLayout;

use crate::build::BuildError;

/// sd-image.nix's `rootVolumeLabel`.
pub const ROOT_LABEL: &str = "NIXOS_SD";
/// sd-image.nix's `firmwarePartitionName`: the firmware FAT's label.
pub const FIRMWARE_LABEL: &str = "FIRMWARE";

/// A file written raw into the disk at a byte offset (`dd conv=notrunc seek=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawWrite {
    /// The host file (U-Boot, an SPL).
    pub file: PathBuf,
    /// The byte offset in the disk.
    pub offset: u64,
}

impl std::str::FromStr for RawWrite {
    type Err = String;

    /// `FILE@OFFSET` (`u-boot-sunxi-with-spl.bin@8192`).
    fn from_str(s: &str) -> Result<Self, String> {
        let (file, offset) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("{s:?}: expected FILE@OFFSET (bytes)"))?;
        let offset = offset
            .parse()
            .map_err(|_| format!("{s:?}: the offset {offset:?} is not a number of bytes"))?;
        if file.is_empty() {
            return Err(format!("{s:?}: no file before @"));
        }
        Ok(Self {
            file: PathBuf::from(file),
            offset,
        })
    }
}

/// The firmware partition's files: every regular file under `dir`, by relative path, in byte
/// order of the path (sd-image.nix copies them with `mcopy` in sorted order). Symlinks are
/// followed, as `mcopy` does.
///
/// ```
/// use imagetool::sdcard::firmware_files;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// // `dir`: bin/hello, etc/hostname, etc/localtime (a symlink, followed only if it resolves:
/// // here it does not), etc/os-release.
/// # let dir = scratch.tree("firmware")?;
/// # std::fs::remove_file(dir.join("etc/localtime"))?;
/// let files = firmware_files(&dir)?;
/// let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
/// assert_eq!(paths, ["bin/hello", "etc/hostname", "etc/os-release"]);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`BuildError::Io`] naming the directory or file that cannot be read.
pub fn firmware_files(dir: &Path) -> Result<Vec<BootFile>, BuildError> {
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<BootFile>) -> Result<(), BuildError> {
    let io = |source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::metadata(&p).map_err(|source| BuildError::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(&p, &rel, out)?;
        } else if meta.is_file() {
            out.push(BootFile {
                path: rel,
                source: FileSource::Host(p),
            });
        } else {
            return Err(BuildError::InvalidInput(format!(
                "firmware directory: {} is neither a file nor a directory",
                p.display()
            )));
        }
    }
    Ok(())
}

/// Checks that `writes` fit the disk and touch neither the partition table (bytes 440–511 of
/// sector 0: disk signature and entries) nor a partition, nor each other.
///
/// # Errors
/// [`BuildError::InvalidInput`] naming the file and the range it would overwrite;
/// [`BuildError::Io`] when a file cannot be read.
pub fn check_raw_writes(writes: &[RawWrite], layout: &DiskLayout) -> Result<(), BuildError> {
    let mut taken: Vec<(u64, u64, String)> = vec![(440, 512, "the partition table".into())];
    for p in &layout.partitions {
        let r = p.byte_range();
        taken.push((r.start, r.end, format!("partition {}", p.number)));
    }
    for w in writes {
        let len = std::fs::metadata(&w.file)
            .map_err(|source| BuildError::Io {
                path: w.file.clone(),
                source,
            })?
            .len();
        let end = w.offset.checked_add(len).ok_or_else(|| {
            BuildError::InvalidInput(format!("{}: offset overflows", w.file.display()))
        })?;
        if end > layout.disk_size {
            return Err(BuildError::InvalidInput(format!(
                "{} ({len} bytes at {}) runs past the {}-byte disk",
                w.file.display(),
                w.offset,
                layout.disk_size
            )));
        }
        if let Some((s, e, what)) = taken
            .iter()
            .find(|(s, e, _)| len > 0 && w.offset < *e && *s < end)
        {
            return Err(BuildError::InvalidInput(format!(
                "{} (bytes {}..{end}) would overwrite {what} (bytes {s}..{e})",
                w.file.display(),
                w.offset
            )));
        }
        taken.push((w.offset, end, w.file.display().to_string()));
    }
    Ok(())
}

/// Writes the blobs into `disk` (after the table).
///
/// ```
/// use imagetool::blockio::{MemImage, ReadAt};
/// use imagetool::sdcard::{RawWrite, write_raw};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// let spl = scratch.path("u-boot-spl.bin");
/// std::fs::write(&spl, b"SPL!")?;
/// let disk = MemImage::new(1 << 20);
/// let writes: Vec<RawWrite> = vec![format!("{}@8192", spl.display()).parse()?];
/// write_raw(&writes, &disk)?;
/// let mut got = [0u8; 4];
/// disk.read_exact_at(&mut got, 8192)?;
/// assert_eq!(&got, b"SPL!");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`BuildError::Io`] naming the file.
pub fn write_raw(writes: &[RawWrite], disk: &impl WriteAt) -> Result<(), BuildError> {
    for w in writes {
        let bytes = std::fs::read(&w.file).map_err(|source| BuildError::Io {
            path: w.file.clone(),
            source,
        })?;
        disk.write_all_at(&bytes, w.offset)
            .map_err(|source| BuildError::Io {
                path: w.file.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Which sd-card partition carries the MBR "bootable" flag. U-Boot's distro boot
/// (`scan_dev_for_boot_part`: `part list … -bootable`) looks for `extlinux/extlinux.conf`
/// only on the bootable partitions when there are any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootFlag {
    /// The FIRMWARE partition (current sd-image.nix).
    #[default]
    Firmware,
    /// The root partition (sd-image.nix before the flag moved; what U-Boot's distro boot
    /// needs to find `/boot/extlinux/extlinux.conf` on the root).
    Root,
}

impl std::str::FromStr for BootFlag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "firmware" => Ok(Self::Firmware),
            "root" => Ok(Self::Root),
            other => Err(format!("{other:?}: expected firmware or root")),
        }
    }
}

/// Moves the bootable flag of an sd-card layout to the partition `flag` names.
pub fn apply_boot_flag(layout: &mut DiskLayout, flag: BootFlag) {
    if layout.table != imagetool_ptable::TableType::SdCard {
        return;
    }
    for p in &mut layout.partitions {
        p.bootable = match flag {
            BootFlag::Firmware => p.role == imagetool_ptable::Role::Firmware,
            BootFlag::Root => p.role == imagetool_ptable::Role::Root,
        };
    }
}

/// True when `output` names a zstd-compressed image (`….zst`).
///
/// ```
/// use std::path::Path;
/// use imagetool::sdcard::wants_zstd;
///
/// assert!(wants_zstd(Path::new("nixos-sd-image.img.zst")));
/// assert!(!wants_zstd(Path::new("nixos-sd-image.img")));
/// ```
#[must_use]
pub fn wants_zstd(output: &Path) -> bool {
    output.extension().is_some_and(|e| e == "zst")
}

/// Compresses the disk `src` (read in order, holes as zeros) into `out` with zstd (level 3,
/// `threads` workers, or one per core for 0). zstd's multi-threaded output does not depend on
/// the worker count, so the result is the same on every machine. `name` is the output's path
/// for errors.
///
/// ```
/// use imagetool::blockio::MemImage;
/// use imagetool::sdcard::compress_zstd;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// let name = scratch.path("sd.img.zst");
/// let out = std::fs::File::create(&name)?;
/// compress_zstd(&MemImage::new(4 << 20), &out, &name, 0)?;
/// let z = std::fs::read(&name)?;
/// assert_eq!(&z[..4], &[0x28, 0xB5, 0x2F, 0xFD]); // a zstd frame
/// assert!(z.len() < 4096); // 4 MiB of zeros
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`BuildError::Io`] naming the output.
pub fn compress_zstd<S: ReadAt + ?Sized>(
    src: &S,
    out: &std::fs::File,
    name: &Path,
    threads: usize,
) -> Result<(), BuildError> {
    #[cfg(not(feature = "zstd"))]
    {
        let _ = (src, out, threads);
        Err(BuildError::InvalidInput(format!(
            "{}: a .zst output: imagetool was built without the `zstd` feature",
            name.display()
        )))
    }
    #[cfg(feature = "zstd")]
    compress_zstd_with(src, out, name, threads)
}

#[cfg(feature = "zstd")]
fn compress_zstd_with<S: ReadAt + ?Sized>(
    src: &S,
    out: &std::fs::File,
    name: &Path,
    threads: usize,
) -> Result<(), BuildError> {
    let io = |source| BuildError::Io {
        path: name.to_path_buf(),
        source,
    };
    let workers = if threads == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        threads
    };
    let mut enc = zstd::Encoder::new(out, 3).map_err(io)?;
    enc.multithread(u32::try_from(workers).unwrap_or(1))
        .map_err(io)?;
    enc.include_checksum(true).map_err(io)?;
    let size = src.size();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < size {
        let n = usize::try_from((size - pos).min(buf.len() as u64)).unwrap_or(buf.len());
        src.read_exact_at(&mut buf[..n], pos).map_err(io)?;
        std::io::Write::write_all(&mut enc, &buf[..n]).map_err(io)?;
        pos += n as u64;
    }
    enc.finish().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagetool_ptable::{DiskSize, LayoutOptions, Requirements, TableType, plan};

    #[test]
    fn test_raw_write_parse() {
        let w: RawWrite = "/x/u-boot.bin@8192".parse().unwrap();
        assert_eq!(w.offset, 8192);
        assert_eq!(w.file, PathBuf::from("/x/u-boot.bin"));
        assert!("u-boot.bin".parse::<RawWrite>().is_err());
        assert!("u-boot.bin@x".parse::<RawWrite>().is_err());
        assert!("@5".parse::<RawWrite>().is_err());
    }

    #[test]
    fn test_raw_writes_may_not_touch_the_table_or_partitions() {
        let layout = plan(
            &{
                let mut o = LayoutOptions::default();
                o.table = TableType::SdCard;
                o.disk_size = DiskSize::Mib(64);
                o
            },
            Requirements::default(),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let blob = tmp.path().join("spl.bin");
        std::fs::write(&blob, vec![7u8; 1024]).unwrap();
        let at = |offset| RawWrite {
            file: blob.clone(),
            offset,
        };
        check_raw_writes(&[at(8192)], &layout).unwrap();
        check_raw_writes(&[at(0)], &layout).unwrap_err();
        let e = check_raw_writes(&[at(8 * 1024 * 1024 - 512)], &layout).unwrap_err();
        assert!(e.to_string().contains("partition 1"), "{e}");
        let e = check_raw_writes(&[at(8192), at(8192 + 512)], &layout).unwrap_err();
        assert!(e.to_string().contains("spl.bin"), "{e}");
        let e = check_raw_writes(&[at(64 * 1024 * 1024)], &layout).unwrap_err();
        assert!(e.to_string().contains("past"), "{e}");
    }

    #[test]
    fn test_firmware_files_sorted_and_nested() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("overlays")).unwrap();
        std::fs::write(tmp.path().join("start4.elf"), b"a").unwrap();
        std::fs::write(tmp.path().join("config.txt"), b"b").unwrap();
        std::fs::write(tmp.path().join("overlays/x.dtbo"), b"c").unwrap();
        let f = firmware_files(tmp.path()).unwrap();
        let names: Vec<&str> = f.iter().map(|b| b.path.as_str()).collect();
        assert_eq!(names, ["config.txt", "overlays/x.dtbo", "start4.elf"]);
        assert!(firmware_files(&tmp.path().join("absent")).is_err());
    }
}
