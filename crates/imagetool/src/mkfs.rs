//! `mkfs ext4 -d DIR`: a host directory to a standalone ext4 image, or into an existing image at
//! an offset (a partition of a disk someone else partitioned).

use std::path::{Path, PathBuf};

use imagetool_blockio::{AtomicFile, Cancel, Cancellable, SparseFile, Window};
use imagetool_ext4::{self as ext4, Options};
use imagetool_fstree::{self as fstree, HostOptions, Overrides, Timestamp, Tree};

/// What went wrong while making a filesystem image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MkfsError {
    /// The source directory could not be read.
    #[error("reading the source tree {}", path.display())]
    Source {
        /// The source directory.
        path: PathBuf,
        /// The cause (naming the entry at fault).
        #[source]
        source: fstree::Error,
    },
    /// The filesystem could not be planned or written.
    #[error("ext4 filesystem")]
    Ext4(#[from] ext4::Error),
    /// The squashfs filesystem could not be written.
    #[error("squashfs filesystem")]
    Squashfs(#[from] imagetool_squashfs::Error),
    /// The output could not be created, opened or written.
    #[error("{}", path.display())]
    Io {
        /// The output file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The work was cancelled (a [`Cancel`], or SIGINT/SIGTERM in the CLI); no new output was
    /// committed (with an offset, the existing image may be partly written).
    #[error("cancelled: nothing was written")]
    Cancelled,
    /// `offset` leaves no room for the filesystem in the existing image.
    #[error("{}: the image has no room for {needed} bytes at offset {offset}", path.display())]
    NoRoom {
        /// The image.
        path: PathBuf,
        /// The requested offset.
        offset: u64,
        /// The filesystem size.
        needed: u64,
    },
}

/// A `mkfs ext4` job. Made with [`Ext4Job::new`], then fields set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Ext4Job {
    /// The directory whose contents become the filesystem root.
    pub source: PathBuf,
    /// The image file: created (atomically, sparse) unless `offset` is set, in which case the
    /// existing file is written into at that byte offset and keeps its length.
    pub output: PathBuf,
    /// Write into the existing `output` at this byte offset.
    pub offset: Option<u64>,
    /// Force every owner to root:root.
    pub root_owner: bool,
    /// `SOURCE_DATE_EPOCH`: later times in the tree are clamped to it, and the superblock's
    /// times are set to it (0 when `None`).
    pub epoch: Option<Timestamp>,
    /// Filesystem options (size, label, UUID, hash seed, reserve, threads); `timestamp` and
    /// `target_zeroed` are set from the fields above.
    pub options: Options,
}

impl Ext4Job {
    /// `mkfs.ext4 -d source output`: a new image, owners as in `source`, epoch 0, the
    /// default [`Options`] (size fitted to the contents).
    #[must_use]
    pub fn new(source: PathBuf, output: PathBuf) -> Self {
        Self {
            source,
            output,
            offset: None,
            root_owner: false,
            epoch: None,
            options: Options::default(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MkfsError + '_ {
    move |source| MkfsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the filesystem `job` describes; returns its plan (size, inode count).
///
/// ```
/// use imagetool::mkfs::{Ext4Job, mkfs_ext4};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let dir = scratch.tree("tree")?;
/// // `dir` holds etc/hostname, bin/hello and a symlink: `mkfs.ext4 -d dir`.
/// let output = scratch.path("root.img");
/// let mut job = Ext4Job::new(dir, output.clone());
/// job.root_owner = true;
/// job.epoch = Some(315_532_800.into());
/// job.options.label = b"nixos".to_vec();
/// let plan = mkfs_ext4(&job)?;
/// let img = std::fs::read(&output)?;
/// assert_eq!(img.len() as u64, plan.size_bytes());
/// assert_eq!(&img[1024 + 0x38..1024 + 0x3A], &[0x53, 0xEF]); // the superblock's magic
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`MkfsError::Source`] naming the unreadable entry, [`MkfsError::Ext4`] when the tree does
/// not fit a fixed size, [`MkfsError::NoRoom`] when the filesystem does not fit at `offset`,
/// [`MkfsError::Io`] naming the output. A new output is removed when anything fails.
pub fn mkfs_ext4(job: &Ext4Job) -> Result<ext4::Plan, MkfsError> {
    mkfs_ext4_cancellable(job, &Cancel::new())
}

/// [`mkfs_ext4`] that stops when `cancel` is raised (from another thread or a signal
/// handler): every write checks it, and a new output is not committed once it is raised.
///
/// # Errors
/// As [`mkfs_ext4`]; [`MkfsError::Cancelled`] when cancelled.
pub fn mkfs_ext4_cancellable(job: &Ext4Job, cancel: &Cancel) -> Result<ext4::Plan, MkfsError> {
    match mkfs_ext4_inner(job, cancel) {
        Err(_) if cancel.is_cancelled() => Err(MkfsError::Cancelled),
        r => r,
    }
}

fn mkfs_ext4_inner(job: &Ext4Job, cancel: &Cancel) -> Result<ext4::Plan, MkfsError> {
    let overrides = Overrides {
        owner: job.root_owner.then_some((0, 0)),
        clamp_time: job.epoch.map(|t| t.secs),
        ..Overrides::default()
    };
    let tree = Tree::from_host_dir(
        &job.source,
        &HostOptions {
            overrides,
            ..HostOptions::default()
        },
    )
    .map_err(|source| MkfsError::Source {
        path: job.source.clone(),
        source,
    })?;
    let mut opts = job.options.clone();
    opts.timestamp = job.epoch.unwrap_or(Timestamp::EPOCH);
    // A fresh sparse file reads as zeros; an existing image may hold anything.
    opts.target_zeroed = job.offset.is_none();
    let plan = ext4::plan(&tree, &opts)?;
    let out = &job.output;
    match job.offset {
        Some(offset) => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(out)
                .map_err(io(out))?;
            let len = file.metadata().map_err(io(out))?.len();
            let no_room = || MkfsError::NoRoom {
                path: out.clone(),
                offset,
                needed: plan.size_bytes(),
            };
            if offset
                .checked_add(plan.size_bytes())
                .is_none_or(|end| end > len)
            {
                return Err(no_room());
            }
            // Keeps the image's length: a window never grows the disk.
            let img = SparseFile::from_file(file, len).map_err(io(out))?;
            let win = Window::new(&img, offset, plan.size_bytes()).map_err(|_| no_room())?;
            plan.write(&tree, &Cancellable::new(&win, cancel))?;
            img.file().sync_all().map_err(io(out))?;
        }
        None => {
            let atomic = AtomicFile::create(out).map_err(io(out))?;
            let file = atomic.try_clone_file().map_err(io(out))?;
            let img = SparseFile::from_file(file, plan.size_bytes()).map_err(io(out))?;
            plan.write(&tree, &Cancellable::new(&img, cancel))?;
            img.file().sync_all().map_err(io(out))?;
            drop(img);
            cancel.check().map_err(io(out))?;
            atomic.commit().map_err(io(out))?;
        }
    }
    Ok(plan)
}

/// A `mkfs squashfs` job: a host directory to a squashfs image file, as
/// `mksquashfs DIR OUT -comp … -b … -Xcompression-level …`.
/// Made with [`SquashfsJob::new`], then fields set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SquashfsJob {
    /// The directory whose contents become the filesystem root.
    pub source: PathBuf,
    /// The image file (created atomically).
    pub output: PathBuf,
    /// Force every owner to root:root (`-all-root`).
    pub root_owner: bool,
    /// `SOURCE_DATE_EPOCH`: later times in the tree are clamped to it and the superblock's
    /// time is set to it ([`DEFAULT_EPOCH`] when `None`).
    pub epoch: Option<Timestamp>,
    /// Compressor, block size, level, threads and the mksquashfs switches;
    /// `mkfs_time` is set from `epoch`.
    pub options: imagetool_squashfs::Options,
}

impl SquashfsJob {
    /// `mksquashfs source output` with the default options (gzip, 128 KiB blocks), owners as
    /// in `source`, [`DEFAULT_EPOCH`].
    #[must_use]
    pub fn new(source: PathBuf, output: PathBuf) -> Self {
        Self {
            source,
            output,
            root_owner: false,
            epoch: None,
            options: imagetool_squashfs::Options::default(),
        }
    }
}

/// Makes the squashfs image `job` describes; returns what was written.
///
/// # Errors
/// [`MkfsError::Source`] naming the unreadable entry, [`MkfsError::Squashfs`] for bad options
/// or a tree squashfs cannot hold (naming the option or path) and for I/O errors naming the
/// output. A failed build leaves no output.
///
/// ```
/// use imagetool::mkfs::{SquashfsJob, mkfs_squashfs};
/// use imagetool::squashfs::Compression;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let dir = scratch.tree("tree")?;
/// let output = scratch.path("store.squashfs");
/// let mut job = SquashfsJob::new(dir, output.clone());
/// job.root_owner = true;
/// job.epoch = Some(315_532_800.into());
/// job.options.compression = Compression::Xz;
/// mkfs_squashfs(&job)?;
/// assert_eq!(&std::fs::read(&output)?[..4], b"hsqs");
/// # Ok(())
/// # }
/// ```
pub fn mkfs_squashfs(job: &SquashfsJob) -> Result<imagetool_squashfs::Report, MkfsError> {
    mkfs_squashfs_cancellable(job, &Cancel::new())
}

/// [`mkfs_squashfs`] that stops when `cancel` is raised: every write checks it, and the
/// output is not committed once it is raised.
///
/// # Errors
/// As [`mkfs_squashfs`]; [`MkfsError::Cancelled`] when cancelled.
pub fn mkfs_squashfs_cancellable(
    job: &SquashfsJob,
    cancel: &Cancel,
) -> Result<imagetool_squashfs::Report, MkfsError> {
    match mkfs_squashfs_inner(job, cancel) {
        Err(_) if cancel.is_cancelled() => Err(MkfsError::Cancelled),
        r => r,
    }
}

fn mkfs_squashfs_inner(
    job: &SquashfsJob,
    cancel: &Cancel,
) -> Result<imagetool_squashfs::Report, MkfsError> {
    let overrides = Overrides {
        owner: job.root_owner.then_some((0, 0)),
        clamp_time: job.epoch.map(|t| t.secs),
        ..Overrides::default()
    };
    let tree = Tree::from_host_dir(
        &job.source,
        &HostOptions {
            overrides,
            xattrs: job.options.xattrs,
            ..HostOptions::default()
        },
    )
    .map_err(|source| MkfsError::Source {
        path: job.source.clone(),
        source,
    })?;
    let epoch = job.epoch.unwrap_or(DEFAULT_EPOCH);
    let mut opts = job.options.clone();
    opts.mkfs_time = epoch;
    // `squashfs::write_file`, with every write checking `cancel` and a last check before the
    // rename.
    let out = &job.output;
    let atomic = AtomicFile::create(out).map_err(io(out))?;
    let report = imagetool_squashfs::write(
        &tree,
        &opts,
        &Cancellable::new(&Growing(atomic.file()), cancel),
    )?;
    atomic.file().set_len(report.size).map_err(io(out))?;
    atomic.file().sync_all().map_err(io(out))?;
    cancel.check().map_err(io(out))?;
    atomic.commit().map_err(io(out))?;
    Ok(report)
}

/// A growing host file as a squashfs target (its size is known only at the end).
struct Growing<'f>(&'f std::fs::File);

impl imagetool_blockio::WriteAt for Growing<'_> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self.0, buf, offset)
    }

    fn capacity(&self) -> u64 {
        i64::MAX as u64
    }
}

/// `SOURCE_DATE_EPOCH` from the environment: `Ok(None)` when unset.
///
/// ```
/// // Read once at start-up; a build passes the value on (`ImageSpec::timestamp`, `epoch`).
/// match imagetool::mkfs::source_date_epoch() {
///     Ok(Some(t)) => println!("SOURCE_DATE_EPOCH={}", t.secs),
///     Ok(None) => println!("unset: the default epoch applies"),
///     Err(e) => eprintln!("{e}"),
/// }
/// ```
///
/// # Errors
/// A message naming the variable and its value when it is not a whole number of seconds.
pub fn source_date_epoch() -> Result<Option<Timestamp>, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .map(|s| Some(Timestamp::from_secs(s)))
            .map_err(|_| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        Err(_) => Ok(None),
    }
}

/// The FAT epoch, 1980-01-01, the default timestamp of everything imagetool writes when
/// `SOURCE_DATE_EPOCH` is unset.
pub const DEFAULT_EPOCH: Timestamp = Timestamp::from_secs(315_532_800);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mkfs_ext4_errors_name_paths_and_leave_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.img");
        let job = Ext4Job {
            source: dir.path().join("missing"),
            output: out.clone(),
            offset: None,
            root_owner: false,
            epoch: None,
            options: Options::default(),
        };
        let e = mkfs_ext4(&job).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        assert!(!out.exists());

        // A filesystem that does not fit at the offset of a small existing image.
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/f"), b"x").unwrap();
        std::fs::write(&out, vec![0u8; 4096]).unwrap();
        let job = Ext4Job {
            source: dir.path().join("src"),
            offset: Some(1024),
            ..job
        };
        let e = mkfs_ext4(&job).unwrap_err();
        assert!(matches!(e, MkfsError::NoRoom { offset: 1024, .. }), "{e}");
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 4096);
    }
}
