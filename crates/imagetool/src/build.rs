//! `build`: a NixOS closure to a disk image, the whole make-disk-image pipeline with no VM.
//!
//! ```text
//!  closure ──► root tree ──► ext4 plan ──► partition layout ──► write (table, ext4, FAT)
//!  (nix)       (nix::root)   (ext4)        (ptable)               │
//!                                                 into an Overlay (metadata in memory,
//!                                                 file data as references to the closure)
//!                                                                 │
//!        output (vdisk: raw or any container) reads it ◄──────────┘
//! ```
//!
//! No raw intermediate file is ever written: the closure's file data is copied once, when the
//! output writer reads that range of the disk. With store verification (the default), the root
//! tree step has hashed every store path before (docs/formats.md), and the output is renamed
//! into place only if no file read changed in between.
//!
//! Every step before `write` is pure planning, so a size that does not fit, a missing store
//! path or a malformed input fails before anything is written; the output is an unnamed file
//! in its directory until everything succeeded, then linked into place.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use imagetool_blockio::{Cancel, Cancellable, Overlay, ReadAt, Tracked, Window, WriteAt};
use imagetool_boot::{self as boot, Bootloader};
use imagetool_ext4 as ext4;
use imagetool_fat as fat;
use imagetool_nix::closure::{ClosureInput, LoadOptions};
use imagetool_nix::root::{Content, RootOptions};
use imagetool_nix::{self as nix, StorePath};
use imagetool_ptable::{
    self as ptable, DiskLayout, Guid, LayoutOptions, Requirements, Role, TableType,
};
use imagetool_vdisk::{self as vdisk, Format};

use crate::meter::{self, Counted};

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
    /// `rootFSUID`: the ext4 UUID (canonical text); `rootGPUID`'s value by default.
    pub root_fs_uuid: Option<String>,
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
    /// `SOURCE_DATE_EPOCH`: registration times, superblock and FAT times, generated files.
    pub timestamp: i64,
    /// `sd-card`: the firmware partition's files (`populateFirmwareCommands`' directory).
    pub firmware_dir: Option<PathBuf>,
    /// Files written raw at byte offsets after the table (U-Boot, an SPL).
    pub raw_writes: Vec<crate::sdcard::RawWrite>,
    /// `sd-card`: which partition is marked bootable.
    pub sd_boot_flag: crate::sdcard::BootFlag,
    /// `touchEFIVars`: also write the OVMF variable store with the bootloader's boot entry.
    pub efi_vars: Option<crate::efi_vars::EfiVars>,
}

/// A phase of a build, reported to a [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Reading the closure (and hashing what must be hashed).
    Closure,
    /// Assembling the root tree.
    RootTree,
    /// Planning the filesystems and the partition layout.
    Plan,
    /// Writing the table and the filesystems into the in-memory disk (file data as references).
    Write,
    /// Writing the output file in its format, reading the file data from the closure.
    Convert,
}

impl Phase {
    /// The phase's name as the CLI prints it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Phase::Closure => "closure",
            Phase::RootTree => "root tree",
            Phase::Plan => "plan",
            Phase::Write => "write",
            Phase::Convert => "convert",
        }
    }
}

/// Receives a build's progress. The library never prints.
pub trait Progress {
    /// A phase begins.
    fn started(&mut self, _phase: Phase) {}
    /// A phase ended after `elapsed`; `detail` says what it did.
    fn finished(&mut self, _phase: Phase, _elapsed: Duration, _detail: &str) {}
    /// `done` of `total` bytes of a long phase ([`Phase::Write`], [`Phase::Convert`]) are
    /// through: 0 first, then a few times a second, then `total` when the phase succeeded.
    /// Always called on the thread that called [`build`], between `started` and `finished`.
    /// For `Write`, `total` is the root filesystem's used bytes and `done` the bytes written;
    /// for `Convert`, the raw image's allocated bytes and the bytes read from it.
    fn bytes(&mut self, _phase: Phase, _done: u64, _total: u64) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The image file.
    pub output: PathBuf,
    /// Its format.
    pub format: Format,
    /// The virtual disk size in bytes.
    pub disk_size: u64,
    /// The partition layout (a single whole-disk root for `none`).
    pub layout: DiskLayout,
    /// The root filesystem's UUID.
    pub root_fs_uuid: [u8; 16],
    /// Store paths in the image.
    pub store_paths: usize,
    /// Bytes allocated in the raw image.
    pub allocated: u64,
    /// How long each phase took.
    pub timings: Vec<(Phase, Duration)>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An option is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// Reading the closure or building the root tree failed.
    #[error("closure")]
    Nix(#[from] nix::Error),
    /// The root filesystem could not be planned or written.
    #[error("root filesystem")]
    Ext4(#[from] ext4::Error),
    /// The partition layout could not be planned or written.
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
    /// The bootloader could not be installed.
    #[error("bootloader")]
    Boot(#[from] boot::Error),
    /// The container format could not be written.
    #[error("image format")]
    Format(#[from] vdisk::Error),
    /// The build was cancelled ([`Cancel`], or a panicking [`Progress`]); nothing was
    /// committed.
    #[error("cancelled: nothing was written")]
    Cancelled,
    /// An I/O error on the output.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Parses a canonical UUID text into its 16 bytes (RFC 4122 order, as ext4 stores it).
///
/// # Errors
/// A message naming the text.
pub fn parse_uuid(text: &str) -> Result<[u8; 16], String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let groups: Vec<usize> = text.split('-').map(str::len).collect();
    if hex.len() != 32 || groups != [8, 4, 4, 4, 12] {
        return Err(format!(
            "{text:?} is not a UUID (XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)"
        ));
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("{text:?} is not a UUID"))?;
    }
    Ok(out)
}

fn timed<T>(
    progress: &mut dyn Progress,
    timings: &mut Vec<(Phase, Duration)>,
    phase: Phase,
    f: impl FnOnce() -> Result<(T, String), BuildError>,
) -> Result<T, BuildError> {
    progress.started(phase);
    let t0 = Instant::now();
    let (v, detail) = f()?;
    let dt = t0.elapsed();
    timings.push((phase, dt));
    progress.finished(phase, dt, &detail);
    Ok(v)
}

/// [`timed`] for a long phase whose `work` counts its bytes for [`Progress::bytes`].
fn timed_bytes<T: Send>(
    progress: &mut dyn Progress,
    timings: &mut Vec<(Phase, Duration)>,
    phase: Phase,
    total: u64,
    cancel: &Cancel,
    work: impl FnOnce(&AtomicU64) -> Result<(T, String), BuildError> + Send,
) -> Result<T, BuildError> {
    progress.started(phase);
    let t0 = Instant::now();
    let (v, detail) = meter::run(progress, phase, total, cancel, work)?;
    let dt = t0.elapsed();
    timings.push((phase, dt));
    progress.finished(phase, dt, &detail);
    Ok(v)
}

/// Builds the image `spec` describes.
///
/// # Errors
/// [`BuildError`] naming the option, file or store path at fault; nothing is left at
/// `spec.output` unless the build succeeded.
pub fn build(spec: &ImageSpec, progress: &mut dyn Progress) -> Result<BuildReport, BuildError> {
    build_cancellable(spec, progress, &Cancel::new())
}

/// [`build`] that stops when `cancel` is cancelled (from any thread, or a signal handler):
/// every reader and writer checks it, so the build ends within one chunk of I/O and returns
/// [`BuildError::Cancelled`], committing nothing. A [`Progress`] method that panics cancels
/// the build too (the panic then continues to the caller).
///
/// The output is an unnamed file in its directory until the build succeeded (see
/// [`AtomicFile`](imagetool_blockio::AtomicFile)); an existing output that is not a regular
/// file is refused before any work unless `spec.format_options.output_mode` is
/// [`OutputMode::Device`](imagetool_blockio::OutputMode::Device).
///
/// # Errors
/// As [`build`]; [`BuildError::Cancelled`] when cancelled.
pub fn build_cancellable(
    spec: &ImageSpec,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<BuildReport, BuildError> {
    match build_inner(spec, progress, cancel) {
        Err(_) if cancel.is_cancelled() => Err(BuildError::Cancelled),
        r => r,
    }
}

fn build_inner(
    spec: &ImageSpec,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<BuildReport, BuildError> {
    let stop = || cancel.check().map_err(|_| BuildError::Cancelled);
    // The output first: a name that cannot be written, or a device, FIFO or directory in its
    // place, fails before any work. Until commit it has no name (or a random hidden one).
    // With `also` (several formats from one plan) every output is created now and all are
    // committed together at the end.
    let jobs: Vec<(vdisk::Format, std::path::PathBuf)> =
        std::iter::once((spec.format, spec.output.clone()))
            .chain(spec.also.iter().cloned())
            .collect();
    let mut outs = Vec::with_capacity(jobs.len());
    for (format, path) in &jobs {
        vdisk::check_output_name(*format, path)?;
        outs.push((*format, vdisk::create_output(path, &spec.format_options)?));
    }
    // touchEFIVars: efi-vars.fd is created now too and committed with the image.
    let efi_vars_out = match &spec.efi_vars {
        Some(e) => {
            crate::efi_vars::check_table(spec.layout.table)?;
            Some(imagetool_blockio::AtomicFile::create(&e.output).map_err(io(&e.output))?)
        }
        None => None,
    };
    let mut timings = Vec::new();
    let parse = |p: &str, what: &str| {
        StorePath::parse(p).map_err(|e| BuildError::InvalidInput(format!("{what}: {e}")))
    };
    let toplevel = spec
        .toplevel
        .as_deref()
        .map(|t| parse(t, "toplevel"))
        .transpose()?;
    let channel = spec
        .channel
        .as_deref()
        .map(|c| parse(c, "channel"))
        .transpose()?;
    let mut roots: Vec<StorePath> = toplevel.iter().chain(channel.iter()).cloned().collect();
    roots.sort();
    let additional = spec
        .additional_paths
        .iter()
        .map(|p| parse(p, "additionalPaths"))
        .collect::<Result<Vec<_>, _>>()?;
    if spec.only_nix_store && spec.layout.table != TableType::None {
        return Err(BuildError::InvalidInput(
            "onlyNixStore images have no partition table: set partitionTableType to none".into(),
        ));
    }

    let closure = timed(progress, &mut timings, Phase::Closure, || {
        let c = nix::closure::load(
            &spec.closure,
            &LoadOptions {
                store_root: spec.store_root.clone(),
                roots,
                additional_paths: additional,
                verify: spec.verify_closure,
            },
        )?;
        let detail = format!("{} store paths, {} NAR bytes", c.len(), c.total_nar_size());
        Ok((c, detail))
    })?;

    stop()?;
    let (mut tree, snapshot) = timed(progress, &mut timings, Phase::RootTree, || {
        let t = nix::root::root_tree_checked(
            &closure,
            &RootOptions {
                toplevel: toplevel.clone(),
                timestamp: spec.timestamp,
                config_file: spec.config_file.clone(),
                channel: channel.clone(),
                contents: spec.contents.clone(),
                only_nix_store: spec.only_nix_store,
                verify: spec.verify,
            },
        )?;
        let detail = format!(
            "{} entries{}",
            t.0.len(),
            if spec.verify {
                ", the store's NAR hashes compared while the image is written"
            } else {
                ""
            }
        );
        Ok((t, detail))
    })?;
    // Verification runs beside planning and writing (the store is read while the page cache
    // still holds it, and the hashing overlaps the write) and is joined before any output is
    // committed.
    let snapshot = std::sync::Arc::new(snapshot);
    let verifier = if spec.verify {
        Some(Verifier::start(&snapshot, &spec.output)?)
    } else {
        None
    };

    // Plan: the smallest root filesystem, the layout around it, then the filesystem of the
    // root partition's full size (mkfs formats the whole partition, as upstream).
    let root_uuid = parse_uuid(
        spec.root_fs_uuid
            .as_deref()
            .unwrap_or(&default_fs_uuid(&spec.layout)),
    )
    .map_err(|e| BuildError::InvalidInput(format!("rootFSUID: {e}")))?;
    let label = spec.label.clone().unwrap_or_else(|| {
        if spec.only_nix_store {
            "nix-store"
        } else if spec.layout.table == TableType::SdCard {
            crate::sdcard::ROOT_LABEL
        } else {
            "nixos"
        }
        .to_string()
    });
    let mut ext4_opts = ext4::Options {
        size: ext4::Size::Auto { reserve: 0 },
        label: label.into_bytes(),
        uuid: Some(root_uuid),
        hash_seed: Some(root_uuid),
        timestamp: spec.timestamp,
        threads: spec.threads,
        ..ext4::Options::default()
    };
    stop()?;
    let (layout, fs_plan, fats, boot_plan) = timed(progress, &mut timings, Phase::Plan, || {
        // The bootloader first: its files under /boot count for the root's size.
        let boot_plan = plan_bootloader(spec, &closure, toplevel.as_ref(), &root_uuid)?;
        crate::bootloader::add_to_root(&mut tree, &boot_plan.root, spec.timestamp)?;
        let minimal = ext4::plan(&tree, &ext4_opts)?;
        let mut layout = ptable::plan(
            &spec.layout,
            Requirements {
                root_bytes: minimal.size_bytes(),
            },
        )?;
        crate::sdcard::apply_boot_flag(&mut layout, spec.sd_boot_flag);
        let root = layout
            .partition(Role::Root)
            .ok_or_else(|| BuildError::InvalidInput("the layout has no root partition".into()))?;
        let r = root.byte_range();
        ext4_opts.size = ext4::Size::Fixed(r.end - r.start);
        let fs_plan = ext4::plan(&tree, &ext4_opts)?;
        let mut fats = Vec::new();
        let firmware = match &spec.firmware_dir {
            Some(d) => crate::sdcard::firmware_files(d)?,
            None => Vec::new(),
        };
        crate::sdcard::check_raw_writes(&spec.raw_writes, &layout)?;
        for (role, what, files) in [
            (Role::Esp, "ESP", &boot_plan.esp),
            (Role::Boot, "BOOT", &boot_plan.boot),
            (Role::Firmware, crate::sdcard::FIRMWARE_LABEL, &firmware),
        ] {
            let Some(p) = layout.partition(role) else {
                continue;
            };
            let fat_tree = crate::bootloader::fat_tree(files, what)?;
            let r = p.byte_range();
            let opts = fat::FormatOptions {
                label: Some(what.to_string()),
                volume_id: match (&spec.layout.ids, role) {
                    (ptable::Identifiers::MakeDiskImage { .. }, Role::Firmware) => {
                        ptable::SD_FIRMWARE_ID
                    }
                    _ => crate::disk::volume_id(&spec.layout.ids, what),
                },
                hidden_sectors: u32::try_from(p.first_lba).unwrap_or(u32::MAX),
                timestamp: spec.timestamp,
                ..fat::FormatOptions::default()
            };
            let plan = fat::plan(&fat_tree, r.end - r.start, &opts)
                .map_err(|source| BuildError::Fat { what, source })?;
            fats.push((r, what, plan));
        }
        let detail = format!(
            "{} table, disk {} MiB, root filesystem {} MiB ({} inodes), {}",
            layout.table,
            layout.disk_size >> 20,
            fs_plan.size_bytes() >> 20,
            fs_plan.inode_count(),
            boot_plan.describe()
        );
        Ok(((layout, fs_plan, fats, boot_plan), detail))
    })?;

    let efi_vars = spec
        .efi_vars
        .as_ref()
        .map(|e| crate::efi_vars::store_bytes(e, &layout, &boot_plan))
        .transpose()?;

    // Write: every part into an Overlay (metadata in memory, file data as references to the
    // closure's files). Convert: the container writer (raw included) reads the disk from it, so
    // no raw intermediate exists and the closure's bytes are read once. For raw output this
    // one path is also faster than copy_file_range into the image (docs/performance.md).
    let parts = Parts {
        layout: &layout,
        tree: &tree,
        fs_plan: &fs_plan,
        fats: &fats,
        boot: &boot_plan,
        raw_writes: &spec.raw_writes,
    };
    let used = fs_plan
        .size_bytes()
        .saturating_sub(fs_plan.free_blocks().saturating_mul(ext4::BLOCK_SIZE));
    stop()?;
    let overlay = Overlay::new(layout.disk_size);
    // Every worker's read and write checks `cancel`.
    let disk = Cancellable::new(&overlay, cancel);
    let allocated = timed_bytes(
        progress,
        &mut timings,
        Phase::Write,
        used,
        cancel,
        |count| {
            let allocated = parts.write(&disk, count, &spec.output)?;
            let st = overlay.stats();
            let detail = format!(
                "{} MiB allocated: {} MiB of metadata in memory, {} MiB of file data to read",
                allocated >> 20,
                st.memory >> 20,
                st.referenced >> 20
            );
            Ok((allocated, detail))
        },
    )?;
    stop()?;
    let total = allocated.saturating_mul(outs.len() as u64);
    timed_bytes(
        progress,
        &mut timings,
        Phase::Convert,
        total,
        cancel,
        |count| {
            let mut opts = spec.format_options.clone();
            opts.threads = spec.threads;
            // The spec's timestamp, not the environment's, in the container headers (VHD).
            if opts.source_date_epoch.is_none() {
                opts.source_date_epoch = Some(u64::try_from(spec.timestamp).unwrap_or(0));
            }
            let src = Counted::new(&disk, count);
            if let [(format, out)] = outs.as_slice()
                && crate::sdcard::wants_zstd(&spec.output)
            {
                // A .zst output is the raw image compressed as it is read: no raw file.
                if *format != Format::Raw {
                    return Err(BuildError::InvalidInput(format!(
                        "{}: a .zst output is a zstd-compressed raw image; the format is {format}",
                        spec.output.display(),
                    )));
                }
                crate::sdcard::compress_zstd(&src, out.file(), &spec.output, spec.threads)?;
                return Ok((
                    (),
                    format!("raw, zstd-compressed ({})", spec.output.display()),
                ));
            }
            let detail = crate::outputs::convert_all(&src, &outs, &opts)?;
            Ok(((), detail))
        },
    )?;
    // The last moment to stop: after this the images are in place.
    stop()?;
    // The outputs appear only if no store file read changed meanwhile (a same-size overwrite
    // included: its ctime moves).
    if let Some(v) = verifier {
        v.finish()?;
        snapshot.check()?;
    }
    let mut outs: Vec<_> = outs.into_iter().map(|(_, o)| o).collect();
    if let (Some(out), Some(bytes)) = (efi_vars_out, &efi_vars) {
        crate::efi_vars::write(out.file(), bytes).map_err(io(out.dest()))?;
        outs.push(out);
    }
    imagetool_blockio::AtomicFile::commit_all(outs).map_err(io(&spec.output))?;
    Ok(BuildReport {
        output: spec.output.clone(),
        format: spec.format,
        disk_size: layout.disk_size,
        layout,
        root_fs_uuid: root_uuid,
        store_paths: closure.len(),
        allocated,
        timings,
    })
}

/// The store's NAR hashes compared with the registration on a thread of their own, while the
/// image is planned and written. Dropped unfinished (the build failed or was cancelled), it
/// tells the thread to stop and waits for it, so no thread outlives the build.
struct Verifier {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<nix::Result<()>>>,
    output: PathBuf,
}

impl Verifier {
    fn start(
        snapshot: &std::sync::Arc<nix::scan::Snapshot>,
        output: &Path,
    ) -> Result<Self, BuildError> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (snapshot.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("imagetool-verify".into())
            .spawn(move || s.verify_hashes(&st))
            .map_err(|e| BuildError::Io {
                path: output.to_owned(),
                source: std::io::Error::other(format!("starting the store verification: {e}")),
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
            output: output.to_owned(),
        })
    }

    /// Waits for the comparison and returns its verdict.
    fn finish(mut self) -> Result<(), BuildError> {
        match self.handle.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => Ok(r?),
            Some(Err(_)) => Err(BuildError::Io {
                path: self.output.clone(),
                source: std::io::Error::other("the store verification thread panicked"),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = h.join();
        }
    }
}

/// Everything the write phase writes: the partition table, the BIOS boot code, the root
/// filesystem, the FAT filesystems.
struct Parts<'a> {
    layout: &'a DiskLayout,
    tree: &'a ext4::Tree,
    fs_plan: &'a ext4::Plan,
    fats: &'a [(std::ops::Range<u64>, &'static str, fat::Plan)],
    boot: &'a boot::Plan,
    raw_writes: &'a [crate::sdcard::RawWrite],
}

impl Parts<'_> {
    /// Writes the whole disk into `disk`, adding the bytes written to `count`; returns the
    /// bytes allocated (`name`: the output, for errors). The disk is read too: the BIOS boot
    /// code is embedded around the table written before it.
    fn write<W: ReadAt + WriteAt>(
        &self,
        disk: &W,
        count: &AtomicU64,
        name: &Path,
    ) -> Result<u64, BuildError> {
        let tracked = Tracked::new(disk);
        let counted = Counted::new(&tracked, count);
        self.layout.write_table(&counted)?;
        crate::bootloader::write_bios(self.boot, self.layout, &counted)?;
        crate::sdcard::write_raw(self.raw_writes, &counted)?;
        let r = self
            .layout
            .partition(Role::Root)
            .map(|p| p.byte_range())
            .unwrap_or(0..self.layout.disk_size);
        let win = Window::new(&counted, r.start, r.end - r.start).map_err(io(name))?;
        self.fs_plan.write(self.tree, &win)?;
        for (r, what, plan) in self.fats {
            let w = Window::new(&counted, r.start, r.end - r.start).map_err(io(name))?;
            plan.write(&w)
                .map_err(|source| BuildError::Fat { what, source })?;
        }
        Ok(tracked.written().iter().map(|r| r.end - r.start).sum())
    }
}

/// The bootloader plan for the spec's table type (nothing for `--bootloader none`).
fn plan_bootloader(
    spec: &ImageSpec,
    closure: &nix::closure::Closure,
    toplevel: Option<&StorePath>,
    root_uuid: &[u8; 16],
) -> Result<boot::Plan, BuildError> {
    let disk = crate::bootloader::disk_for(spec.layout.table);
    let bootloader = match (spec.bootloader, spec.layout.table) {
        (Bootloader::Auto, TableType::SdCard) => Bootloader::Extlinux,
        (b, _) => b,
    };
    let wanted = match bootloader {
        Bootloader::None => false,
        Bootloader::Auto => disk.esp || disk.bios.is_some(),
        Bootloader::SystemdBoot | Bootloader::Grub | Bootloader::Extlinux => true,
    };
    if !wanted {
        return Ok(boot::Plan::default());
    }
    let Some(toplevel) = toplevel else {
        return Err(BuildError::InvalidInput(format!(
            "bootloader {}: installing a bootloader needs a toplevel (or bootloader none)",
            spec.bootloader
        )));
    };
    let paths = closure.infos().map(|i| i.path.as_str().to_string());
    let store = boot::Closure::new(&spec.store_root, paths);
    let has_boot = matches!(
        spec.layout.table,
        TableType::EfiXbootldr | TableType::LegacyBoot
    );
    let fat_id = |present: bool, what: &str| {
        present.then(|| boot::FsId {
            uuid: crate::bootloader::fat_uuid(crate::disk::volume_id(&spec.layout.ids, what)),
        })
    };
    let req = boot::Request {
        bootloader,
        disk,
        closure: &store,
        toplevel: toplevel.as_str(),
        root_fs: boot::FsId {
            uuid: crate::bootloader::uuid_text(root_uuid),
        },
        esp_fs: fat_id(disk.esp, "ESP"),
        boot_fs: fat_id(has_boot, "BOOT"),
        timeout: 5,
        timestamp: spec.timestamp,
    };
    Ok(boot::plan(&req)?)
}

/// `rootFSUID`'s default: `rootGPUID` (make-disk-image), or the seeded root GUID.
fn default_fs_uuid(layout: &LayoutOptions) -> String {
    match &layout.ids {
        ptable::Identifiers::MakeDiskImage { root } => root.to_string(),
        ptable::Identifiers::Seeded(seed) => Guid::derive(seed, "root-fs-uuid").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagetool_blockio::SparseFile;
    use imagetool_fstree::{Meta, Source};

    /// Reads two backings in 1 MiB chunks and asserts they are equal.
    fn assert_same(a: &impl ReadAt, b: &impl ReadAt) {
        assert_eq!(a.size(), b.size());
        let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut off = 0;
        while off < a.size() {
            let n = (a.size() - off).min(1 << 20) as usize;
            a.read_exact_at(&mut x[..n], off).unwrap();
            b.read_exact_at(&mut y[..n], off).unwrap();
            assert!(x[..n] == y[..n], "differ in the MiB at {off}");
            off += n as u64;
        }
    }

    #[test]
    fn test_the_overlay_holds_what_a_sparse_file_given_the_same_writes_holds() {
        // The independent path: the same parts written straight into a host file
        // (copy_file_range for file data); the Overlay must read back the same bytes, and the
        // raw output written from it must equal that file.
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| {
                if i % 70_000 < 9000 {
                    0
                } else {
                    (i % 251) as u8
                }
            })
            .collect();
        std::fs::write(dir.path().join("big"), &big).unwrap();
        std::fs::write(dir.path().join("small"), b"0123456789").unwrap();
        let mut tree = ext4::Tree::new(Meta::dir(0o755));
        tree.add_dir(b"d", Meta::dir(0o755)).unwrap();
        for (name, host) in [(&b"d/big"[..], "big"), (b"d/small", "small")] {
            let src = Source::Host(dir.path().join(host));
            tree.add_file(name, src, Meta::file(0o644)).unwrap();
        }
        tree.add_file(
            b"gen",
            Source::Bytes(vec![7u8; 5000].into()),
            Meta::file(0o600),
        )
        .unwrap();
        let mut opts = ext4::Options {
            size: ext4::Size::Auto { reserve: 0 },
            timestamp: 1,
            ..ext4::Options::default()
        };
        let minimal = ext4::plan(&tree, &opts).unwrap();
        let layout = ptable::plan(
            &LayoutOptions {
                table: TableType::Hybrid,
                disk_size: ptable::DiskSize::Auto {
                    additional_space: 1 << 20,
                },
                boot_size: 8 << 20,
                ..LayoutOptions::default()
            },
            Requirements {
                root_bytes: minimal.size_bytes(),
            },
        )
        .unwrap();
        let r = layout.partition(Role::Root).unwrap().byte_range();
        opts.size = ext4::Size::Fixed(r.end - r.start);
        let fs_plan = ext4::plan(&tree, &opts).unwrap();
        let esp = layout.partition(Role::Esp).unwrap().byte_range();
        let mut fat_tree = fat::Tree::new();
        fat_tree
            .add_host_file("BIG.BIN", &dir.path().join("big"))
            .unwrap();
        let fat_plan = fat::plan(
            &fat_tree,
            esp.end - esp.start,
            &fat::FormatOptions::default(),
        )
        .unwrap();
        let fats = vec![(esp, "ESP", fat_plan)];
        let boot = boot::Plan::default();
        let parts = Parts {
            layout: &layout,
            tree: &tree,
            fs_plan: &fs_plan,
            fats: &fats,
            boot: &boot,
            raw_writes: &[],
        };
        let file = dir.path().join("direct.img");
        let direct = SparseFile::create(&file, layout.disk_size).unwrap();
        let (ca, cb) = (AtomicU64::new(0), AtomicU64::new(0));
        let a = parts.write(&direct, &ca, &file).unwrap();
        let overlay = Overlay::new(layout.disk_size);
        let b = parts.write(&overlay, &cb, &file).unwrap();
        assert_eq!(a, b);
        assert_eq!(ca.into_inner(), cb.into_inner());
        assert!(overlay.stats().referenced >= 2 * 300_000);
        assert_same(&direct, &overlay);
        let out = dir.path().join("out.img");
        vdisk::convert(&overlay, Format::Raw, &out, &vdisk::Options::default()).unwrap();
        assert_same(&direct, &SparseFile::open(&out).unwrap());
    }

    #[test]
    fn test_parse_uuid_canonical_order() {
        let u = parse_uuid(DEFAULT_ROOT_GUID).unwrap();
        assert_eq!(u[0], 0xF2);
        assert_eq!(u[15], 0x7F);
        assert!(parse_uuid("F222513B-DED1-49FA-B591-20CE86A2FE7").is_err());
        assert!(parse_uuid("F222513BDED149FAB59120CE86A2FE7F").is_err());
    }
}
