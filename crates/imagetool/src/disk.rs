//! Assembling a partitioned raw disk from filesystem blobs (a root filesystem image, ESP and
//! BOOT contents), sparse, through an atomic output.

use std::ops::Range;
use std::path::{Path, PathBuf};

use imagetool_blockio::{
    AtomicFile, Cancel, Cancellable, Extents, SparseFile, Tracked, Window, WriteAt,
};
use imagetool_fat::{self as fat, FormatOptions, Timestamp, Tree};
use imagetool_ptable::{
    self as ptable, DiskLayout, Identifiers, LayoutOptions, Requirements, Role,
};

/// What went wrong while building a disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The layout could not be planned or written.
    #[error("partition layout")]
    Layout(#[from] ptable::Error),
    /// A FAT filesystem could not be planned or written.
    #[error("{what} filesystem")]
    Fat {
        /// `ESP` or `BOOT`.
        what: &'static str,
        /// The cause.
        #[source]
        source: fat::Error,
    },
    /// Reading an input or writing the output failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Contents were given for a partition the layout does not have.
    #[error("the {table} layout has no {what} partition for the {what} contents")]
    NoSuchPartition {
        /// `ESP` or `BOOT`.
        what: &'static str,
        /// The table type.
        table: ptable::TableType,
    },
    /// The work was cancelled (a [`Cancel`], or SIGINT/SIGTERM in the CLI); nothing was
    /// written.
    #[error("cancelled: nothing was written")]
    Cancelled,
    /// The root filesystem image does not fit its partition.
    #[error("the root filesystem image {} has {size} bytes, its partition {partition}", path.display())]
    RootTooBig {
        /// The image.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The partition size.
        partition: u64,
    },
}

/// What to build. Made with [`DiskSpec::new`], then fields set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiskSpec {
    /// Table type, sizes and identifiers.
    pub layout: LayoutOptions,
    /// The root filesystem image, copied into the root partition (or the whole disk for `none`).
    pub root_fs: PathBuf,
    /// Contents of the ESP (`efi`, `efixbootldr`, `hybrid`); empty when `None`.
    pub esp: Option<Tree>,
    /// Contents of the BOOT partition (`efixbootldr`, `legacy+boot`); empty when `None`.
    pub boot: Option<Tree>,
    /// Timestamp for FAT entries (whole seconds).
    pub timestamp: Timestamp,
    /// The output file.
    pub output: PathBuf,
}

impl DiskSpec {
    /// `root_fs` in the default layout ([`LayoutOptions::default`]: make-disk-image's legacy
    /// table, auto size), empty FAT partitions, FAT times at 1980-01-01, written to `output`.
    #[must_use]
    pub fn new(root_fs: PathBuf, output: PathBuf) -> Self {
        Self {
            layout: LayoutOptions::default(),
            root_fs,
            esp: None,
            boot: None,
            timestamp: crate::mkfs::DEFAULT_EPOCH,
            output,
        }
    }
}

/// What was built.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiskReport {
    /// The layout written.
    pub layout: DiskLayout,
    /// The byte ranges written (the image's allocated extents, for the container writers).
    pub written: Vec<Range<u64>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The FAT volume ID of a partition role, derived from the layout's identifier source.
///
/// ```
/// use imagetool::disk::volume_id;
/// use imagetool::ptable::Identifiers;
///
/// let ids = Identifiers::Seeded(b"my-image".to_vec());
/// // Same seed and role, same ID; another role, another ID.
/// assert_eq!(volume_id(&ids, "esp"), volume_id(&ids, "esp"));
/// assert_ne!(volume_id(&ids, "esp"), volume_id(&ids, "boot"));
/// ```
#[must_use]
pub fn volume_id(ids: &Identifiers, role: &str) -> u32 {
    let mut seed = match ids {
        Identifiers::MakeDiskImage { root } => root.disk_bytes().to_vec(),
        Identifiers::Seeded(s) => s.clone(),
    };
    seed.extend_from_slice(b"/fat-volume-id/");
    seed.extend_from_slice(role.as_bytes());
    fat::derive_volume_id(&seed)
}

/// Plans everything, then writes the disk: table, root filesystem copy, FAT filesystems. The
/// output appears only when all of it succeeded; nothing is written when planning fails.
///
/// ```
/// use imagetool::disk::{DiskSpec, build_disk, mkfs_vfat};
/// use imagetool::fat::{FormatOptions, Tree};
/// use imagetool::ptable::{LayoutOptions, TableType};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// // Any filesystem image serves as the root: a small FAT one here.
/// let root_fs = scratch.path("root.img");
/// mkfs_vfat(&Tree::new(), &root_fs, Some(8 << 20), &FormatOptions::default())?;
///
/// let mut esp = Tree::new();
/// esp.add_bytes("/EFI/BOOT/README.TXT", b"hello".as_slice())?;
/// let mut layout = LayoutOptions::default();
/// layout.table = TableType::Efi;
/// let mut spec = DiskSpec::new(root_fs, scratch.path("disk.img"));
/// spec.layout = layout;
/// spec.esp = Some(esp);
/// let report = build_disk(&spec)?;
/// assert_eq!(report.layout.partitions.len(), 2); // ESP and root
/// // A GPT: the protective MBR's signature, then "EFI PART" at LBA 1.
/// let mut disk = [0u8; 520];
/// std::io::Read::read_exact(&mut std::fs::File::open(scratch.path("disk.img"))?, &mut disk)?;
/// assert_eq!(&disk[510..512], &[0x55, 0xAA]);
/// assert_eq!(&disk[512..520], b"EFI PART");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Layout errors (disk too small, `bootSize` beyond the disk), FAT errors (contents larger
/// than the ESP), I/O errors naming the file.
pub fn build_disk(spec: &DiskSpec) -> Result<DiskReport, DiskError> {
    build_disk_cancellable(spec, &Cancel::new())
}

/// [`build_disk`] that stops when `cancel` is raised (from another thread or a signal
/// handler): every write checks it, and the output is not committed once it is raised.
///
/// # Errors
/// As [`build_disk`]; [`DiskError::Cancelled`] when cancelled.
pub fn build_disk_cancellable(spec: &DiskSpec, cancel: &Cancel) -> Result<DiskReport, DiskError> {
    match build_disk_inner(spec, cancel) {
        Err(_) if cancel.is_cancelled() => Err(DiskError::Cancelled),
        r => r,
    }
}

fn build_disk_inner(spec: &DiskSpec, cancel: &Cancel) -> Result<DiskReport, DiskError> {
    // A regular file only: a FIFO would block forever, a device is not an image file.
    let src = imagetool_fstree::input::open_regular(&spec.root_fs).map_err(io(&spec.root_fs))?;
    let root_len = src.metadata().map_err(io(&spec.root_fs))?.len();
    let layout = ptable::plan(
        &spec.layout,
        Requirements {
            root_bytes: root_len,
        },
    )?;
    let root = layout
        .partition(Role::Root)
        .ok_or_else(|| ptable_internal("no root partition"))?;
    let root_range = root.byte_range();
    if root_len > root_range.end - root_range.start {
        return Err(DiskError::RootTooBig {
            path: spec.root_fs.clone(),
            size: root_len,
            partition: root_range.end - root_range.start,
        });
    }
    // Plan the FAT filesystems before creating the output.
    let mut fats = Vec::new();
    for (role, what, contents) in [
        (Role::Esp, "ESP", &spec.esp),
        (Role::Boot, "BOOT", &spec.boot),
    ] {
        let Some(p) = layout.partition(role) else {
            if contents.is_some() {
                return Err(DiskError::NoSuchPartition {
                    what,
                    table: layout.table,
                });
            }
            continue;
        };
        let r = p.byte_range();
        let mut opts = FormatOptions::default();
        opts.label = Some(what.to_string());
        opts.volume_id = volume_id(&spec.layout.ids, what);
        opts.hidden_sectors = u32::try_from(p.first_lba).unwrap_or(u32::MAX);
        opts.timestamp = spec.timestamp;
        let empty = Tree::new();
        let tree = contents.as_ref().unwrap_or(&empty);
        let plan = fat::plan(tree, r.end - r.start, &opts)
            .map_err(|source| DiskError::Fat { what, source })?;
        fats.push((r, what, plan));
    }
    let out = AtomicFile::create(&spec.output).map_err(io(&spec.output))?;
    let file = out.try_clone_file().map_err(io(&spec.output))?;
    let disk = SparseFile::from_file(file, layout.disk_size).map_err(io(&spec.output))?;
    let cancellable = Cancellable::new(&disk, cancel);
    let tracked = Tracked::new(&cancellable);
    layout.write_table(&tracked)?;
    let win = Window::new(
        &tracked,
        root_range.start,
        root_range.end - root_range.start,
    )
    .map_err(io(&spec.output))?;
    win.copy_from_file(&src, 0, root_len, 0)
        .map_err(io(&spec.root_fs))?;
    for (r, what, plan) in &fats {
        let w = Window::new(&tracked, r.start, r.end - r.start).map_err(io(&spec.output))?;
        plan.write(&w)
            .map_err(|source| DiskError::Fat { what, source })?;
    }
    let written = tracked.data_extents().map_err(io(&spec.output))?;
    drop(tracked);
    disk.file().sync_all().map_err(io(&spec.output))?;
    cancel.check().map_err(io(&spec.output))?;
    out.commit().map_err(io(&spec.output))?;
    Ok(DiskReport { layout, written })
}

fn ptable_internal(what: &str) -> DiskError {
    DiskError::Io {
        path: PathBuf::new(),
        source: std::io::Error::other(what.to_string()),
    }
}

/// Parses a size the way make-disk-image's `numfmt --from=iec` does: a number with an optional
/// `K`, `M`, `G`, `T` suffix (powers of 1024; a trailing `iB`/`B` is accepted).
///
/// ```
/// use imagetool::disk::parse_size;
///
/// assert_eq!(parse_size("512M"), Ok(512 << 20));
/// assert_eq!(parse_size("2GiB"), Ok(2 << 30));
/// assert_eq!(parse_size("4096"), Ok(4096));
/// assert!(parse_size("1.5G").unwrap_err().contains("1.5G"));
/// ```
///
/// # Errors
/// A message naming the text when it is not a size or overflows.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        Some('T' | 't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid size {text:?} (expected a number with an optional K/M/G/T suffix)")
    })?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Formats `source` as a standalone FAT filesystem image at `output` (sparse, atomic). With
/// `size` `None` the image is made just large enough: the smallest whole MiB that holds the
/// contents, as found by planning.
///
/// ```
/// use imagetool::disk::mkfs_vfat;
/// use imagetool::fat::{FormatOptions, Tree};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// let mut tree = Tree::new();
/// tree.add_bytes("/loader/loader.conf", b"timeout 3\n".as_slice())?;
/// let mut opts = FormatOptions::default();
/// opts.label = Some("ESP".into());
/// let out = scratch.path("esp.img");
/// mkfs_vfat(&tree, &out, None, &opts)?; // None: the smallest whole MiB that holds it
/// let img = std::fs::read(&out)?;
/// assert_eq!(img.len() % (1 << 20), 0);
/// assert_eq!(&img[510..512], &[0x55, 0xAA]); // the boot sector's signature
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// FAT errors (contents too large for `size`, bad names or label), I/O errors naming the file.
pub fn mkfs_vfat(
    tree: &Tree,
    output: &Path,
    size: Option<u64>,
    opts: &FormatOptions,
) -> Result<fat::Plan, DiskError> {
    mkfs_vfat_cancellable(tree, output, size, opts, &Cancel::new())
}

/// [`mkfs_vfat`] that stops when `cancel` is raised: every write checks it, and the output is
/// not committed once it is raised.
///
/// # Errors
/// As [`mkfs_vfat`]; [`DiskError::Cancelled`] when cancelled.
pub fn mkfs_vfat_cancellable(
    tree: &Tree,
    output: &Path,
    size: Option<u64>,
    opts: &FormatOptions,
    cancel: &Cancel,
) -> Result<fat::Plan, DiskError> {
    match mkfs_vfat_inner(tree, output, size, opts, cancel) {
        Err(_) if cancel.is_cancelled() => Err(DiskError::Cancelled),
        r => r,
    }
}

fn mkfs_vfat_inner(
    tree: &Tree,
    output: &Path,
    size: Option<u64>,
    opts: &FormatOptions,
    cancel: &Cancel,
) -> Result<fat::Plan, DiskError> {
    let fat_err = |source| DiskError::Fat {
        what: "FAT",
        source,
    };
    let plan = match size {
        Some(s) => fat::plan(tree, s, opts).map_err(fat_err)?,
        None => {
            let mut mib = 1u64;
            loop {
                match fat::plan(tree, mib << 20, opts) {
                    Ok(p) => break p,
                    // Too small (contents, or no valid FAT of the forced type): grow by 1/8.
                    Err(e) if mib < (64 << 10) && e.kind() == fat::ErrorKind::NoSpace => {
                        mib = mib + mib.div_ceil(8);
                    }
                    Err(e) => return Err(fat_err(e)),
                }
            }
        }
    };
    let size = u64::from(plan.params().sectors) * u64::from(fat::SECTOR);
    let out = AtomicFile::create(output).map_err(io(output))?;
    let file = out.try_clone_file().map_err(io(output))?;
    let img = SparseFile::from_file(file, size).map_err(io(output))?;
    plan.write(&Cancellable::new(&img, cancel))
        .map_err(fat_err)?;
    img.file().sync_all().map_err(io(output))?;
    cancel.check().map_err(io(output))?;
    out.commit().map_err(io(output))?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_size_like_numfmt_iec() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
