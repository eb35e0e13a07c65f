//! Planning a FAT filesystem (every cluster and directory entry decided up front) and writing
//! it: metadata once, then file data in parallel at known offsets. The on-disk structures
//! have a file each: `boot_sector`, `fsinfo`, `table` (the FAT), `dir` (entries and long
//! names, with `name`), `date`.

use imagetool_blockio::{WriteAt, write_skipping_zeros};
use imagetool_fstree::Timestamp;
use rayon::prelude::*;

use crate::boot_sector::{BACKUP_BOOT, NO_NAME, boot_sector, label_bytes};
use crate::date::{DOS_MAX, DOS_MIN, dos_datetime};
use crate::dir::{PDir, PKind, build_dir, dir_slot_count, encode_dirs, root_slot_count};
use crate::error::{Error, ErrorKind, Result};
use crate::fsinfo::fsinfo;
use crate::params::{FatType, Params, SECTOR};
use crate::table::encode_fat;
use crate::tree::{Source, Tree};

/// Options of the formatter.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOptions {
    /// Volume label (up to 11 ASCII characters; `None` for "NO NAME" and no label entry).
    pub label: Option<String>,
    /// Volume ID (serial number).
    pub volume_id: u32,
    /// Sectors before the filesystem on its disk: the partition's start LBA.
    pub hidden_sectors: u32,
    /// Every timestamp (seconds since the Unix epoch, UTC; [`plan`] refuses one outside
    /// 1980–2107, [`DOS_MIN`]..=[`DOS_MAX`]; whole seconds).
    pub timestamp: Timestamp,
    /// Force FAT12/16/32 instead of mkfs.fat's choice.
    pub fat_type: Option<FatType>,
    /// Force a cluster size in sectors instead of mkfs.fat's choice.
    pub cluster_sectors: Option<u32>,
}

impl Default for FormatOptions {
    fn default() -> Self {
        Self {
            label: None,
            volume_id: 0x1234_5678,
            hidden_sectors: 0,
            timestamp: Timestamp::from_secs(315_532_800), // 1980-01-01T00:00:00Z, the FAT epoch
            fat_type: None,
            cluster_sectors: None,
        }
    }
}

/// A volume ID derived from arbitrary bytes (FNV-1a), for callers without a seed of their own.
#[must_use]
pub fn derive_volume_id(seed: &[u8]) -> u32 {
    seed.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// One file's data: `len` bytes from `source` at byte `offset` of the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileJob {
    /// Byte offset in the filesystem (the start of the file's cluster run).
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Where the bytes come from.
    pub source: Source,
    /// The path in the tree (for error messages).
    pub path: String,
}

/// A fully planned FAT filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    params: Params,
    metadata: Vec<(u64, Vec<u8>)>,
    files: Vec<FileJob>,
    used_clusters: u32,
}

struct Alloc {
    next: u32,
    total: u32,
    cluster_bytes: u64,
    runs: Vec<(u32, u32)>,
}

impl Alloc {
    fn take(&mut self, bytes: u64) -> Result<(u32, u32)> {
        let n = bytes.div_ceil(self.cluster_bytes);
        if n == 0 {
            return Ok((0, 0));
        }
        let n = u32::try_from(n).map_err(|_| Error::new(ErrorKind::Overflow, "cluster count"))?;
        let first = self.next;
        // Keep counting past the end so the error can say how much is needed.
        self.next = self.next.saturating_add(n);
        if self.next - 2 <= self.total {
            self.runs.push((first, n));
        }
        Ok((first, n))
    }
}

impl Plan {
    /// The chosen parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Data clusters in use (directories and files).
    #[must_use]
    pub fn used_clusters(&self) -> u32 {
        self.used_clusters
    }

    /// The file data to copy, each a contiguous run at a known offset: they may be written in
    /// any order or in parallel.
    #[must_use]
    pub fn files(&self) -> &[FileJob] {
        &self.files
    }

    /// The metadata writes (boot sectors, FSInfo, FATs, directories) as (offset, bytes).
    #[must_use]
    pub fn metadata(&self) -> &[(u64, Vec<u8>)] {
        &self.metadata
    }

    /// Writes the filesystem into `dst` (a fresh, zeroed backing of at least the planned
    /// size): metadata first, then file data in parallel. All-zero blocks are not written, so
    /// a sparse backing stays sparse.
    ///
    /// # Errors
    /// `Io` naming the source file or the offset; `InvalidInput` when a host file changed
    /// length since it was planned or `dst` is too small.
    pub fn write(&self, dst: &impl WriteAt) -> Result<()> {
        let size = u64::from(self.params.sectors) * u64::from(SECTOR);
        if dst.capacity() < size {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the backing has {} bytes, the filesystem {size}",
                    dst.capacity()
                ),
            ));
        }
        for (off, bytes) in &self.metadata {
            write_skipping_zeros(dst, bytes, *off).map_err(|e| {
                Error::io(format!("cannot write FAT metadata at byte {off}"), None, e)
            })?;
        }
        self.files
            .par_iter()
            .try_for_each(|job| write_job(dst, job))
    }
}

fn write_job(dst: &impl WriteAt, job: &FileJob) -> Result<()> {
    match &job.source {
        Source::Bytes(b) => write_skipping_zeros(dst, b, job.offset)
            .map_err(|e| Error::io(format!("cannot write {}", job.path), None, e)),
        Source::File(p) => {
            let len = std::fs::metadata(p)
                .map_err(|e| Error::io("cannot read", Some(p), e))?
                .len();
            if len != job.len {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("{} changed size while the image was built", p.display()),
                ));
            }
            // By path: an Overlay target records a reference instead of holding the file open.
            dst.copy_from_path(p, 0, job.len, job.offset)
                .map_err(|e| Error::io("cannot copy", Some(p), e))
        }
    }
}

/// Plans a filesystem of `size` bytes holding `tree`.
///
/// # Errors
/// `NoSpace` ("contents need N bytes, the filesystem holds M") when the tree does not fit,
/// including a FAT12/16 root directory with too many entries; `InvalidInput` for names FAT
/// cannot store, case-insensitive name clashes, a bad label, or a size no FAT fits.
pub fn plan(tree: &Tree, size: u64, opts: &FormatOptions) -> Result<Plan> {
    let params = Params::choose(size, opts.fat_type, opts.cluster_sectors)?;
    let label = match &opts.label {
        Some(l) => label_bytes(l)?,
        None => NO_NAME,
    };
    let has_label = label != NO_NAME;
    if !opts.timestamp.within(DOS_MIN..=DOS_MAX) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "timestamp {} is outside what FAT stores ({DOS_MIN} to {DOS_MAX}: \
                 1980-01-01 to 2107-12-31)",
                opts.timestamp.secs
            ),
        ));
    }
    let (date, time) = dos_datetime(opts.timestamp.secs);
    let mut alloc = Alloc {
        next: 2,
        total: params.clusters,
        cluster_bytes: params.cluster_bytes(),
        runs: Vec::new(),
    };
    let mut root = build_dir(&tree.root, String::new(), true)?;
    let root_entries = root_slot_count(&root, has_label);
    if params.fat_type == FatType::Fat32 {
        let (first, n) = alloc.take(root_entries as u64 * 32)?;
        root.first_cluster = first;
        root.clusters = n;
    } else if root_entries > params.root_entries as usize {
        return Err(Error::new(
            ErrorKind::NoSpace,
            format!(
                "the root directory needs {root_entries} entries, a FAT{} root holds {}",
                params.fat_type.bits(),
                params.root_entries
            ),
        ));
    }
    let mut files = Vec::new();
    allocate(&mut root, &mut alloc, &params, &mut files)?;
    let used = alloc.next - 2;
    if used > params.clusters {
        let cb = params.cluster_bytes();
        return Err(Error::new(
            ErrorKind::NoSpace,
            format!(
                "FAT filesystem too small: the contents need {} bytes in {}-byte clusters, the {size}-byte filesystem holds {}",
                u64::from(used) * cb,
                cb,
                u64::from(params.clusters) * cb
            ),
        ));
    }
    let mut metadata = Vec::new();
    encode_dirs(
        &root,
        0,
        true,
        &params,
        &label,
        has_label,
        date,
        time,
        &mut metadata,
    )?;
    let fat = encode_fat(&params, &alloc.runs)?;
    let reserved_bytes = u64::from(params.reserved) * u64::from(SECTOR);
    let fat_bytes = u64::from(params.fat_sectors) * u64::from(SECTOR);
    metadata.push((reserved_bytes, fat.clone()));
    metadata.push((reserved_bytes + fat_bytes, fat));
    let boot = boot_sector(&params, &label, opts.volume_id, opts.hidden_sectors);
    if params.fat_type == FatType::Fat32 {
        let free = params.clusters - used;
        metadata.push((u64::from(SECTOR), fsinfo(free, alloc.next)));
        metadata.push((u64::from(BACKUP_BOOT) * u64::from(SECTOR), boot.clone()));
    }
    metadata.push((0, boot));
    metadata.sort_by_key(|(o, _)| *o);
    Ok(Plan {
        params,
        metadata,
        files,
        used_clusters: used,
    })
}

/// Plans and writes `tree` into `dst`, using all of its capacity.
///
/// # Errors
/// As for [`plan`] and [`Plan::write`].
pub fn format(tree: &Tree, dst: &impl WriteAt, opts: &FormatOptions) -> Result<Plan> {
    let p = plan(tree, dst.capacity(), opts)?;
    p.write(dst)?;
    Ok(p)
}

/// Depth-first, pre-order, in name order: a directory's own clusters, then its files, then its
/// subdirectories.
fn allocate(
    d: &mut PDir,
    alloc: &mut Alloc,
    params: &Params,
    files: &mut Vec<FileJob>,
) -> Result<()> {
    for e in &mut d.entries {
        if let PKind::Dir(sub) = &mut e.kind {
            let (first, n) = alloc.take(dir_slot_count(sub) as u64 * 32)?;
            sub.first_cluster = first;
            sub.clusters = n;
            e.first_cluster = first;
        }
    }
    for e in &mut d.entries {
        if let PKind::File { len, source } = &e.kind {
            let len = *len;
            let (first, _) = alloc.take(len)?;
            e.first_cluster = first;
            if first != 0 && first - 2 < params.clusters {
                files.push(FileJob {
                    offset: params.cluster_offset(first),
                    len,
                    source: source.clone(),
                    path: format!("{}/{}", d.path, e.name),
                });
            }
        }
    }
    for e in &mut d.entries {
        if let PKind::Dir(sub) = &mut e.kind {
            allocate(sub, alloc, params, files)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use imagetool_blockio::{MemImage, ReadAt};

    use super::*;

    #[test]
    fn test_too_much_content_is_no_space() {
        let mut t = Tree::new();
        t.add_bytes("big", vec![1u8; 3 << 20]).unwrap();
        let e = plan(&t, 2 << 20, &FormatOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        assert!(e.to_string().contains("contents need"), "{e}");
    }

    #[test]
    fn test_case_clash_is_rejected() {
        let mut t = Tree::new();
        t.add_bytes("EFI/a", vec![1]).unwrap();
        t.add_bytes("efi/b", vec![1]).unwrap();
        let e = plan(&t, 8 << 20, &FormatOptions::default()).unwrap_err();
        assert!(e.to_string().contains("clash"), "{e}");
    }

    #[test]
    fn test_small_image_layout_and_data_offsets() {
        let mut t = Tree::new();
        t.add_bytes("EFI/BOOT/BOOTX64.EFI", b"MZ-fake".to_vec())
            .unwrap();
        let img = MemImage::new(8 << 20);
        let p = format(&t, &img, &FormatOptions::default()).unwrap();
        assert_eq!(p.params().fat_type, FatType::Fat12);
        let job = &p.files()[0];
        let mut buf = [0u8; 7];
        img.read_exact_at(&mut buf, job.offset).unwrap();
        assert_eq!(&buf, b"MZ-fake");
    }
}
