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

use std::path::Path;
use std::sync::atomic::AtomicU64;

use imagetool_blockio::{Cancel, Cancellable, Overlay, ReadAt, Tracked, Window, WriteAt};
use imagetool_boot::{self as boot, Bootloader};
use imagetool_ext4 as ext4;
use imagetool_fat as fat;
use imagetool_fstree::Uuid;
use imagetool_nix::closure::LoadOptions;
use imagetool_nix::root::RootOptions;
use imagetool_nix::{self as nix, StorePath};
use imagetool_ptable::{
    self as ptable, DiskLayout, Guid, LayoutOptions, Requirements, Role, TableType,
};
use imagetool_vdisk::{self as vdisk, Format};

pub mod bootloader;
mod dry_run;
mod error;
mod meter;
mod outputs;
mod progress;

pub use crate::spec::{DEFAULT_ROOT_GUID, ImageSpec, parse_uuid};
pub use dry_run::{BuildPlan, FatFsPlan, RootFsPlan};
pub use error::BuildError;
use error::io;
use meter::{Counted, timed, timed_bytes};
pub use progress::{BuildReport, NoProgress, Phase, Progress};

/// Builds the image `spec` describes.
///
/// ```
/// use imagetool::boot::Bootloader;
/// use imagetool::build::{ImageSpec, NoProgress, build};
/// use imagetool::nix::closure::ClosureInput;
/// use imagetool::ptable::TableType;
/// use imagetool::vdisk::Format;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let closure = scratch.closure()?;
/// # let (toplevel, closure_info, store_root) =
/// #     (closure.path, closure.closure_info, closure.store_root);
/// # let output = scratch.path("nixos.qcow2");
/// // `closure_info` is a closureInfo output (`store-paths`, `registration`); `store_root`
/// // the directory holding its `nix/store` (`/` for the host's store).
/// let spec = ImageSpec::new(Some(toplevel), ClosureInput::ClosureInfo(closure_info), output)
///     .store_root(store_root)
///     .partition(TableType::Efi)
///     .bootloader(Bootloader::None)
///     .format(Format::Qcow2)
///     .label("nixos");
/// let report = build(&spec, &mut NoProgress)?;
/// assert_eq!(report.store_paths, 1);
/// assert!(report.output.exists());
/// # Ok(())
/// # }
/// ```
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
/// ```
/// use imagetool::blockio::Cancel;
/// use imagetool::build::{BuildError, ImageSpec, NoProgress, build_cancellable};
/// use imagetool::nix::closure::ClosureInput;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let closure = scratch.closure()?;
/// # let output = scratch.path("nixos.img");
/// let spec = ImageSpec::new(
///     Some(closure.path),
///     ClosureInput::ClosureInfo(closure.closure_info),
///     output.clone(),
/// )
/// .store_root(closure.store_root);
/// let cancel = Cancel::new();
/// cancel.cancel(); // as a Ctrl-C handler would, from another thread
/// let err = build_cancellable(&spec, &mut NoProgress, &cancel).unwrap_err();
/// assert!(matches!(err, BuildError::Cancelled));
/// assert!(!output.exists()); // nothing committed
/// # Ok(())
/// # }
/// ```
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

/// Plans the image `spec` describes and writes nothing: the closure is read, the root tree
/// listed, the bootloader, the root filesystem, the partition table and the FAT filesystems
/// planned exactly as [`build`] plans them, and the plan returned (`imagetool build
/// --dry-run`). No output is created (their names are checked), and the store is not hashed:
/// a store whose contents differ from the registration fails [`build`], not this.
///
/// ```
/// use imagetool::boot::Bootloader;
/// use imagetool::build::{ImageSpec, NoProgress, plan};
/// use imagetool::nix::closure::ClosureInput;
/// use imagetool::ptable::{Role, TableType};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let c = scratch.closure()?;
/// let output = scratch.path("nixos.img");
/// let spec = ImageSpec::new(Some(c.path), ClosureInput::ClosureInfo(c.closure_info), output.clone())
///     .store_root(c.store_root)
///     .partition(TableType::Efi)
///     .bootloader(Bootloader::None);
/// let p = plan(&spec, &mut NoProgress)?;
/// assert_eq!(p.store_paths, 1);
/// assert!(p.layout.partition(Role::Esp).is_some());
/// assert!(!output.exists()); // nothing written
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`BuildError`] naming the option, file or store path at fault, as [`build`] would before
/// writing.
pub fn plan(spec: &ImageSpec, progress: &mut dyn Progress) -> Result<BuildPlan, BuildError> {
    // 1. The outputs' names, and touchEFIVars' table (nothing is created).
    let outputs: Vec<(Format, std::path::PathBuf)> =
        std::iter::once((spec.format, spec.output.clone()))
            .chain(spec.also.iter().cloned())
            .collect();
    for (format, path) in &outputs {
        vdisk::check_output_name(*format, path)?;
    }
    if spec.efi_vars.is_some() {
        crate::efi_vars::check_table(spec.layout.table)?;
    }
    // 2.–5. As `build_inner`, with the store listed but not hashed.
    let spec = &ImageSpec {
        verify: false,
        ..spec.clone()
    };
    let roots = Roots::parse(spec)?;
    let cancel = Cancel::new();
    let mut run = Pipeline {
        spec,
        progress,
        cancel: &cancel,
        timings: Vec::new(),
    };
    let closure = run.closure(&roots)?;
    let (mut tree, _) = run.root_tree(&closure, &roots)?;
    let (root_uuid, ext4_opts) = root_fs_options(spec)?;
    let label = String::from_utf8_lossy(&ext4_opts.label).into_owned();
    let plan = run.plan(
        &closure,
        roots.toplevel.as_ref(),
        &mut tree,
        ext4_opts,
        &root_uuid,
    )?;
    let fs = &plan.fs_plan;
    let fats = plan
        .fats
        .iter()
        .map(|(r, role, what, p)| FatFsPlan {
            role: *role,
            label: (*what).to_string(),
            fat_type: format!("FAT{}", p.params().fat_type.bits()),
            size: r.end - r.start,
            used: u64::from(p.used_clusters()).saturating_mul(p.params().cluster_bytes()),
            files: p.files().iter().map(|f| (f.path.clone(), f.len)).collect(),
        })
        .collect();
    Ok(BuildPlan {
        outputs,
        root: RootFsPlan {
            role: Role::Root,
            size: fs.size_bytes(),
            used: fs
                .size_bytes()
                .saturating_sub(fs.free_blocks().saturating_mul(ext4::BLOCK_SIZE)),
            inodes: fs.inode_count(),
            entries: tree.len(),
            label,
            uuid: root_uuid,
        },
        fats,
        bootloader: plan.boot.describe(),
        store_paths: closure.len(),
        nar_size: closure.total_nar_size(),
        layout: plan.layout,
    })
}

fn build_inner(
    spec: &ImageSpec,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<BuildReport, BuildError> {
    let stop = || cancel.check().map_err(|_| BuildError::Cancelled);
    crate::features::check_build(spec)?;
    // 1. The outputs, before any work.
    let outs = Outputs::create(spec)?;
    // 2. The store paths the spec names.
    let roots = Roots::parse(spec)?;
    let mut run = Pipeline {
        spec,
        progress,
        cancel,
        timings: Vec::new(),
    };
    // 3. The closure.
    let closure = run.closure(&roots)?;
    stop()?;
    // 4. The root tree.
    let (mut tree, snapshot) = run.root_tree(&closure, &roots)?;
    // Verification hashes the store's bytes as the container writers read them into the
    // image (one read: nix::scan::Witness) and is settled before any output is committed.
    let snapshot = std::sync::Arc::new(snapshot);
    // The store's files are asked into the page cache while the image is planned and written,
    // so the container writers' reads rarely wait for the disk.
    let prefetch = Prefetch::start(&snapshot);
    let witness = if spec.verify {
        Some(std::sync::Arc::new(nix::scan::Witness::start(
            snapshot.clone(),
        )?))
    } else {
        None
    };
    // 5. The plan: bootloader, root filesystem, layout, FAT filesystems.
    let (root_uuid, ext4_opts) = root_fs_options(spec)?;
    stop()?;
    let plan = run.plan(
        &closure,
        roots.toplevel.as_ref(),
        &mut tree,
        ext4_opts,
        &root_uuid,
    )?;
    let efi_vars = spec
        .efi_vars
        .as_ref()
        .map(|e| crate::efi_vars::store_bytes(e, &plan.layout, &plan.boot))
        .transpose()?;
    // 6. Write: every part into an Overlay (metadata in memory, file data as references to
    // the closure's files).
    stop()?;
    let overlay = match &witness {
        Some(w) => Overlay::with_tap(plan.layout.disk_size, w.clone()),
        None => Overlay::new(plan.layout.disk_size),
    };
    // Every worker's read and write checks `cancel`.
    let disk = Cancellable::new(&overlay, cancel);
    let allocated = run.write(&plan, &tree, &overlay, &disk)?;
    // 7. Convert: the container writers (raw included) read the disk from the Overlay.
    stop()?;
    run.convert(&outs.images, &disk, allocated, witness.as_deref())?;
    drop(prefetch);
    // The last moment to stop: after this the images are in place.
    stop()?;
    // 8. Commit. The outputs appear only if no store file read changed meanwhile (a same-size
    // overwrite included: its ctime moves).
    if witness.is_some() {
        snapshot.check()?;
    }
    outs.commit(efi_vars.as_deref(), &spec.output)?;
    Ok(BuildReport {
        output: spec.output.clone(),
        format: spec.format,
        disk_size: plan.layout.disk_size,
        layout: plan.layout,
        root_fs_uuid: root_uuid,
        store_paths: closure.len(),
        allocated,
        timings: run.timings,
    })
}

/// The build's outputs, created (unnamed) before any work and committed together at the end.
struct Outputs {
    /// Every image format with its output (the spec's, then `also`'s).
    images: Vec<(Format, imagetool_blockio::AtomicFile)>,
    /// `touchEFIVars`' efi-vars.fd, committed with the images.
    efi_vars: Option<imagetool_blockio::AtomicFile>,
}

impl Outputs {
    /// Creates every output: a name that cannot be written, or a device, FIFO or directory in
    /// its place, fails before any work. Until commit an output has no name (or a random
    /// hidden one).
    fn create(spec: &ImageSpec) -> Result<Self, BuildError> {
        let jobs =
            std::iter::once((spec.format, spec.output.clone())).chain(spec.also.iter().cloned());
        let mut images = Vec::with_capacity(1 + spec.also.len());
        for (format, path) in jobs {
            vdisk::check_output_name(format, &path)?;
            images.push((format, vdisk::create_output(&path, &spec.format_options)?));
        }
        let efi_vars = match &spec.efi_vars {
            Some(e) => {
                crate::efi_vars::check_table(spec.layout.table)?;
                Some(imagetool_blockio::AtomicFile::create(&e.output).map_err(io(&e.output))?)
            }
            None => None,
        };
        Ok(Self { images, efi_vars })
    }

    /// Writes efi-vars.fd (`efi_vars`: its bytes) and links every output into place.
    fn commit(self, efi_vars: Option<&[u8]>, output: &Path) -> Result<(), BuildError> {
        let mut outs: Vec<_> = self.images.into_iter().map(|(_, o)| o).collect();
        if let (Some(out), Some(bytes)) = (self.efi_vars, efi_vars) {
            crate::efi_vars::write(out.file(), bytes).map_err(io(out.dest()))?;
            outs.push(out);
        }
        imagetool_blockio::AtomicFile::commit_all(outs).map_err(io(output))
    }
}

/// The store paths the spec names: the toplevel, the channel and `additionalPaths`.
struct Roots {
    toplevel: Option<StorePath>,
    channel: Option<StorePath>,
    additional: Vec<StorePath>,
}

impl Roots {
    /// Parses them, naming the key of a malformed one; refuses `onlyNixStore` with a table.
    fn parse(spec: &ImageSpec) -> Result<Self, BuildError> {
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
        let additional = spec
            .additional_paths
            .iter()
            .map(|p| parse(p, "additionalPaths"))
            .collect::<Result<Vec<_>, _>>()?;
        if spec.only_nix_store && spec.layout.table != TableType::None {
            return Err(BuildError::InvalidInput(
                "onlyNixStore images have no partition table: set partitionTableType to none"
                    .into(),
            ));
        }
        Ok(Self {
            toplevel,
            channel,
            additional,
        })
    }

    /// The closure's roots, sorted: the toplevel and the channel.
    fn closure_roots(&self) -> Vec<StorePath> {
        let mut roots: Vec<StorePath> = self
            .toplevel
            .iter()
            .chain(self.channel.iter())
            .cloned()
            .collect();
        roots.sort();
        roots
    }
}

/// The root filesystem's UUID (`rootFSUID`, or its default) and its ext4 options before
/// sizing: the label (`label`, or the image kind's) and the spec's timestamp and threads.
fn root_fs_options(spec: &ImageSpec) -> Result<(Uuid, ext4::Options), BuildError> {
    let root_uuid = spec
        .root_fs_uuid
        .unwrap_or_else(|| default_fs_uuid(&spec.layout));
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
    let mut opts = ext4::Options::default();
    opts.size = ext4::Size::Auto { reserve: 0 };
    opts.label = label.into_bytes();
    opts.uuid = Some(root_uuid);
    opts.hash_seed = Some(root_uuid);
    opts.timestamp = spec.timestamp;
    opts.threads = spec.threads;
    Ok((root_uuid, opts))
}

/// A FAT filesystem of the disk: its byte range, its partition's role, its label (for errors) and
/// its plan.
type FatPart = (std::ops::Range<u64>, Role, &'static str, fat::Plan);

/// The plan of the whole disk.
struct DiskPlan {
    layout: DiskLayout,
    fs_plan: ext4::Plan,
    fats: Vec<FatPart>,
    boot: boot::Plan,
}

/// One build's phases: each reports to `progress` and records its duration in `timings`.
struct Pipeline<'a> {
    spec: &'a ImageSpec,
    progress: &'a mut dyn Progress,
    cancel: &'a Cancel,
    timings: Vec<(Phase, std::time::Duration)>,
}

impl Pipeline<'_> {
    /// The closure phase: the registration read (and checked, with `verify_closure`) from
    /// the roots and `additionalPaths`.
    fn closure(&mut self, roots: &Roots) -> Result<nix::closure::Closure, BuildError> {
        let spec = self.spec;
        timed(self.progress, &mut self.timings, Phase::Closure, || {
            let c = nix::closure::load(&spec.closure, &{
                let mut o = LoadOptions::default();
                o.store_root = spec.store_root.clone();
                o.roots = roots.closure_roots();
                o.additional_paths = roots.additional.clone();
                o.verify = spec.verify_closure;
                o
            })?;
            let detail = format!("{} store paths, {} NAR bytes", c.len(), c.total_nar_size());
            Ok((c, detail))
        })
    }

    /// The root tree phase: the NixOS root tree of the closure, and the snapshot of the store
    /// files it reads (for the verification).
    fn root_tree(
        &mut self,
        closure: &nix::closure::Closure,
        roots: &Roots,
    ) -> Result<(ext4::Tree, nix::scan::Snapshot), BuildError> {
        let spec = self.spec;
        timed(self.progress, &mut self.timings, Phase::RootTree, || {
            let t = nix::root::root_tree_checked(closure, &{
                let mut o = RootOptions::default();
                o.toplevel = roots.toplevel.clone();
                o.timestamp = spec.timestamp.secs;
                o.config_file = spec.config_file.clone();
                o.channel = roots.channel.clone();
                o.contents = spec.contents.clone();
                o.only_nix_store = spec.only_nix_store;
                o.verify = spec.verify;
                o
            })?;
            let detail = format!(
                "{} entries{}",
                t.0.len(),
                if spec.verify {
                    ", the store's NAR hashes taken from the image writers' read"
                } else {
                    ""
                }
            );
            Ok((t, detail))
        })
    }

    /// The plan phase: the smallest root filesystem, the layout around it, then the
    /// filesystem of the root partition's full size (mkfs formats the whole partition, as
    /// upstream) and the FAT filesystems. The bootloader comes first: its files under /boot
    /// count for the root's size.
    fn plan(
        &mut self,
        closure: &nix::closure::Closure,
        toplevel: Option<&StorePath>,
        tree: &mut ext4::Tree,
        mut ext4_opts: ext4::Options,
        root_uuid: &Uuid,
    ) -> Result<DiskPlan, BuildError> {
        let spec = self.spec;
        timed(self.progress, &mut self.timings, Phase::Plan, || {
            let boot_plan = plan_bootloader(spec, closure, toplevel, root_uuid)?;
            bootloader::add_to_root(tree, &boot_plan.root, spec.timestamp.secs)?;
            let minimal = ext4::plan(tree, &ext4_opts)?;
            let mut layout = ptable::plan(
                &spec.layout,
                Requirements {
                    root_bytes: minimal.size_bytes(),
                },
            )?;
            crate::sdcard::apply_boot_flag(&mut layout, spec.sd_boot_flag);
            let root = layout.partition(Role::Root).ok_or_else(|| {
                BuildError::InvalidInput("the layout has no root partition".into())
            })?;
            let r = root.byte_range();
            ext4_opts.size = ext4::Size::Fixed(r.end - r.start);
            let fs_plan = ext4::plan(tree, &ext4_opts)?;
            let fats = plan_fats(spec, &layout, &boot_plan)?;
            let detail = format!(
                "{} table, disk {} MiB, root filesystem {} MiB ({} inodes), {}",
                layout.table,
                layout.disk_size >> 20,
                fs_plan.size_bytes() >> 20,
                fs_plan.inode_count(),
                boot_plan.describe()
            );
            let plan = DiskPlan {
                layout,
                fs_plan,
                fats,
                boot: boot_plan,
            };
            Ok((plan, detail))
        })
    }

    /// The write phase: every part of `plan` into `disk` (a cancellable view of `overlay`);
    /// returns the bytes allocated.
    fn write<D: ReadAt + WriteAt + Sync>(
        &mut self,
        plan: &DiskPlan,
        tree: &ext4::Tree,
        overlay: &Overlay,
        disk: &D,
    ) -> Result<u64, BuildError> {
        let parts = Parts {
            layout: &plan.layout,
            tree,
            fs_plan: &plan.fs_plan,
            fats: &plan.fats,
            boot: &plan.boot,
            raw_writes: &self.spec.raw_writes,
        };
        let used = plan
            .fs_plan
            .size_bytes()
            .saturating_sub(plan.fs_plan.free_blocks().saturating_mul(ext4::BLOCK_SIZE));
        let output = &self.spec.output;
        timed_bytes(
            self.progress,
            &mut self.timings,
            Phase::Write,
            used,
            self.cancel,
            |count| {
                let allocated = parts.write(disk, count, output)?;
                let st = overlay.stats();
                let detail = format!(
                    "{} MiB allocated: {} MiB of metadata in memory, {} MiB of file data to read",
                    allocated >> 20,
                    st.memory >> 20,
                    st.referenced >> 20
                );
                Ok((allocated, detail))
            },
        )
    }

    /// The convert phase: every output's container writer reads the disk (`allocated` bytes
    /// of it are data); a single `.zst` output is the raw image compressed as it is read.
    /// No raw intermediate exists, and the closure's bytes are read once; for raw output this
    /// one path is also faster than copy_file_range into the image (docs/performance.md).
    fn convert<D: ReadAt + imagetool_blockio::Extents + Sync>(
        &mut self,
        outs: &[(Format, imagetool_blockio::AtomicFile)],
        disk: &D,
        allocated: u64,
        witness: Option<&nix::scan::Witness>,
    ) -> Result<(), BuildError> {
        let spec = self.spec;
        let cancel = self.cancel;
        let total = allocated.saturating_mul(outs.len() as u64);
        timed_bytes(
            self.progress,
            &mut self.timings,
            Phase::Convert,
            total,
            self.cancel,
            |count| {
                let mut opts = spec.format_options.clone();
                opts.threads = spec.threads;
                // The spec's timestamp, not the environment's, in the container headers (VHD).
                if opts.source_date_epoch.is_none() {
                    opts.source_date_epoch = Some(spec.timestamp);
                }
                let src = Counted::new(disk, count);
                let mut detail = if let [(format, out)] = outs
                    && crate::sdcard::wants_zstd(&spec.output)
                {
                    if *format != Format::Raw {
                        return Err(BuildError::InvalidInput(format!(
                            "{}: a .zst output is a zstd-compressed raw image; the format is {format}",
                            spec.output.display(),
                        )));
                    }
                    crate::sdcard::compress_zstd(&src, out.file(), &spec.output, spec.threads)?;
                    format!("raw, zstd-compressed ({})", spec.output.display())
                } else {
                    outputs::convert_all(&src, outs, &opts)?
                };
                if let Some(w) = witness {
                    let r = w.finish(&cancel.flag())?;
                    detail.push_str(&format!(
                        "; store verified: {} paths hashed as the image read them, {} read again",
                        r.witnessed, r.reread
                    ));
                }
                Ok(((), detail))
            },
        )
    }
}

/// The FAT filesystems of the layout's ESP, BOOT and firmware partitions (those it has):
/// the boot plan's files (the firmware directory's for firmware), each planned for its
/// partition. Also checks the raw writes against the layout.
fn plan_fats(
    spec: &ImageSpec,
    layout: &DiskLayout,
    boot_plan: &boot::Plan,
) -> Result<Vec<FatPart>, BuildError> {
    let mut fats = Vec::new();
    let firmware = match &spec.firmware_dir {
        Some(d) => crate::sdcard::firmware_files(d)?,
        None => Vec::new(),
    };
    crate::sdcard::check_raw_writes(&spec.raw_writes, layout)?;
    for (role, what, files) in [
        (Role::Esp, "ESP", &boot_plan.esp),
        (Role::Boot, "BOOT", &boot_plan.boot),
        (Role::Firmware, crate::sdcard::FIRMWARE_LABEL, &firmware),
    ] {
        let Some(p) = layout.partition(role) else {
            continue;
        };
        let fat_tree = bootloader::fat_tree(files, what)?;
        let r = p.byte_range();
        let mut opts = fat::FormatOptions::default();
        opts.label = Some(what.to_string());
        opts.volume_id = match (&spec.layout.ids, role) {
            (ptable::Identifiers::MakeDiskImage { .. }, Role::Firmware) => ptable::SD_FIRMWARE_ID,
            _ => crate::disk::volume_id(&spec.layout.ids, what),
        };
        opts.hidden_sectors = u32::try_from(p.first_lba).unwrap_or(u32::MAX);
        opts.timestamp = spec.timestamp;
        let plan = fat::plan(&fat_tree, r.end - r.start, &opts)
            .map_err(|source| BuildError::Fat { what, source })?;
        fats.push((r, role, what, plan));
    }
    Ok(fats)
}

/// [`nix::scan::Snapshot::prefetch`] on a thread of its own; dropped, it stops the thread and
/// waits for it, so no thread outlives the build.
struct Prefetch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Prefetch {
    /// Starts it (or nothing, when no thread can be started: it only saves time).
    fn start(snapshot: &std::sync::Arc<nix::scan::Snapshot>) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (snapshot.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("imagetool-prefetch".into())
            .spawn(move || s.prefetch(&st))
            .ok();
        Self { stop, handle }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
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
    fats: &'a [FatPart],
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
        bootloader::write_bios(self.boot, self.layout, &counted)?;
        crate::sdcard::write_raw(self.raw_writes, &counted)?;
        let r = self
            .layout
            .partition(Role::Root)
            .map(|p| p.byte_range())
            .unwrap_or(0..self.layout.disk_size);
        let win = Window::new(&counted, r.start, r.end - r.start).map_err(io(name))?;
        self.fs_plan.write(self.tree, &win)?;
        for (r, _, what, plan) in self.fats {
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
    root_uuid: &Uuid,
) -> Result<boot::Plan, BuildError> {
    let disk = bootloader::disk_for(spec.layout.table);
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
            uuid: bootloader::fat_uuid(crate::disk::volume_id(&spec.layout.ids, what)),
        })
    };
    let req = boot::Request {
        bootloader,
        disk,
        closure: &store,
        toplevel: toplevel.as_str(),
        root_fs: boot::FsId {
            uuid: root_uuid.to_string(),
        },
        esp_fs: fat_id(disk.esp, "ESP"),
        boot_fs: fat_id(has_boot, "BOOT"),
        timeout: 5,
        timestamp: spec.timestamp.secs,
    };
    Ok(boot::plan(&req)?)
}

/// `rootFSUID`'s default: `rootGPUID` (make-disk-image), or the seeded root GUID.
fn default_fs_uuid(layout: &LayoutOptions) -> Uuid {
    match &layout.ids {
        ptable::Identifiers::MakeDiskImage { root } => root.uuid(),
        ptable::Identifiers::Seeded(seed) => Guid::derive(seed, "root-fs-uuid").uuid(),
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
        let mut opts = ext4::Options::default();
        opts.size = ext4::Size::Auto { reserve: 0 };
        opts.timestamp = 1.into();
        let minimal = ext4::plan(&tree, &opts).unwrap();
        let layout = ptable::plan(
            &{
                let mut o = LayoutOptions::default();
                o.table = TableType::Hybrid;
                o.disk_size = ptable::DiskSize::Auto {
                    additional_space: 1 << 20,
                };
                o.boot_size = 8 << 20;
                o
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
        let fats = vec![(esp, Role::Esp, "ESP", fat_plan)];
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
        assert_eq!(u.as_bytes()[0], 0xF2);
        assert_eq!(u.as_bytes()[15], 0x7F);
        assert!(parse_uuid("F222513B-DED1-49FA-B591-20CE86A2FE7").is_err());
        assert!(parse_uuid("F222513BDED149FAB59120CE86A2FE7F").is_err());
    }
}
