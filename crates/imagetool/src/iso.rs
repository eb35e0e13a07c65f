//! `--format iso`: the NixOS live/installer ISO (`iso-image.nix` + `make-iso9660-image.sh`)
//! written natively.
//!
//! ```text
//!   /                         ISO 9660 + Rock Ridge + Joliet, volume ID nixos-<release>-<arch>
//!   ├── .boot.cat             El Torito catalog: BIOS isolinux.bin, EFI boot/efi.img
//!   ├── boot/bzImage, initrd  the bootspec's kernel and initrd
//!   ├── boot/efi.img          FAT image: EFI/boot/bootx64.efi (GRUB) + EFI/boot/grub.cfg
//!   ├── boot/grub/loopback.cfg
//!   ├── EFI/boot/             bootx64.efi, grub.cfg; EFI/nixos-installer-image (GRUB's marker)
//!   ├── isolinux/             the closure's syslinux (share/syslinux) + isolinux.cfg
//!   ├── nix-store.squashfs    the closure's store paths and nix-path-registration
//!   └── version.txt           the system's nixos-version
//! ```
//!
//! The BIOS side is isolinux from the closure's syslinux, as upstream; the EFI side is GRUB
//! from the closure, built with the modules upstream builds in (via [`boot::grub`]'s tools).
//! Menu entries come from the bootspec: `init=<init>` and its `kernelParams`, plus
//! `root=LABEL=<volume ID>` and `boot.shell_on_fail` (what `iso-image.nix` adds) when absent;
//! GRUB adds `findiso=` when booted from a loopback file. The image is isohybrid (MBR and GPT
//! as xorriso's `-isohybrid-mbr`/`-isohybrid-gpt-basdat`), so it boots from a USB stick too.
//! Files outside the squashfs get `mkisofs -r`'s rationalised modes (0444, or 0555 with any
//! execute bit), owner root and `SOURCE_DATE_EPOCH` as every date (`-volume_date
//! all_file_dates`).
//!
//! The store image is written natively by default ([`StoreImage::Native`], as
//! `make-squashfs.nix` lays it out) into an unnamed temporary file beside the output, and
//! copied into the ISO from there; [`StoreImage::File`] takes one made elsewhere.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use imagetool_blockio::Cancel;
use imagetool_boot as boot;
use imagetool_fat as fat;
use imagetool_fstree::{Meta, Source, Timestamp, Tree};
use imagetool_iso9660 as iso9660;
use imagetool_nix as nix;
use nix::closure::{ClosureInput, LoadOptions};
use nix::{StorePath, closure_info};

/// How the store image (`/nix-store.squashfs`) is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreImage {
    /// A squashfs image made elsewhere, holding the closure's store paths and
    /// `nix-path-registration` at its root (what `make-squashfs.nix` makes).
    File(PathBuf),
    /// Written by [`crate::squashfs`] with these options, laid out as `make-squashfs.nix`
    /// lays it out: a root directory (mode 0755, owner 0) holding `nix-path-registration`
    /// (0444) and one entry per store path of the closure, with the store's canonical
    /// metadata, every owner 0 and hard links as copies (`-all-root -no-hardlinks
    /// -keep-as-directory`). `mkfs_time` is set to [`IsoSpec::epoch`]; `hard_links` is
    /// forced off.
    Native(crate::squashfs::Options),
}

impl StoreImage {
    /// Upstream's default `isoImage.squashfsCompression`, `zstd -Xcompression-level 19`,
    /// with `make-squashfs.nix`'s 1 MiB blocks.
    #[must_use]
    pub fn native_default() -> Self {
        StoreImage::Native(native_options(crate::squashfs::Compression::Zstd, Some(19)))
    }
}

/// `make-squashfs.nix`'s squashfs options (`-b 1048576 -no-hardlinks`) with `compression` at
/// `level` (`None`: the compressor's default). xz gets `-Xbcj x86`, as upstream's x86 ISOs
/// had it.
///
/// ```
/// use imagetool::iso::native_options;
/// use imagetool::squashfs::Compression;
///
/// let o = native_options(Compression::Xz, None);
/// assert_eq!((o.compression, o.block_size), (Compression::Xz, 1 << 20));
/// ```
#[must_use]
pub fn native_options(
    compression: crate::squashfs::Compression,
    level: Option<u32>,
) -> crate::squashfs::Options {
    use crate::squashfs::{Compression, XzFilter};
    {
        let mut o = crate::squashfs::Options::default();
        o.compression = compression;
        o.level = level;
        o.xz_filters = if compression == Compression::Xz {
            vec![XzFilter::X86]
        } else {
            Vec::new()
        };
        o.block_size = 1 << 20;
        o.hard_links = false;
        o
    }
}

/// What `--format iso` builds. Made with [`IsoSpec::new`], then fields set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IsoSpec {
    /// Where the closure comes from.
    pub closure: ClosureInput,
    /// The directory holding `nix/store` with the closure's contents.
    pub store_root: PathBuf,
    /// The system toplevel (its bootspec gives the kernel, initrd and parameters).
    pub toplevel: String,
    /// The output file (`.iso`, or `.iso.zst` with `compress`).
    pub output: PathBuf,
    /// `isoImage.volumeID` (default `nixos-<release>-<arch>` from the toplevel).
    pub volume_id: Option<String>,
    /// The store image.
    pub store_image: StoreImage,
    /// `SOURCE_DATE_EPOCH`: every date in the image.
    pub epoch: Timestamp,
    /// `boot.loader.timeout` in seconds (upstream's ISO: 10; 0 boots the default at once).
    pub timeout: u32,
    /// `isoImage.compressImage`: zstd the finished image.
    pub compress: bool,
}

impl IsoSpec {
    /// The ISO of `toplevel` from `closure`, written to `output`, with upstream's defaults:
    /// the host's store (`store_root` `/`), the default volume ID, a native zstd store image
    /// ([`StoreImage::native_default`]), the 1980-01-01 epoch, a 10 s menu, not compressed.
    #[must_use]
    pub fn new(toplevel: String, closure: ClosureInput, output: PathBuf) -> Self {
        Self {
            closure,
            store_root: PathBuf::from("/"),
            toplevel,
            output,
            volume_id: None,
            store_image: StoreImage::native_default(),
            epoch: crate::mkfs::DEFAULT_EPOCH,
            timeout: 10,
            compress: false,
        }
    }
}

/// What was built.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IsoReport {
    /// The file written.
    pub output: PathBuf,
    /// The volume ID (the label stage 1 looks for).
    pub volume_id: String,
    /// The ISO's size in bytes (before compression).
    pub iso_size: u64,
    /// Store paths in the closure.
    pub store_paths: usize,
    /// The kernel command line of the default entry (after `init=`).
    pub kernel_params: String,
}

/// Why an ISO build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IsoError {
    /// An option or the closure does not suit an ISO (names what).
    #[error("{0}")]
    InvalidInput(String),
    /// Reading the closure failed.
    #[error("closure")]
    Nix(#[from] nix::Error),
    /// The bootspec or the bootloaders in the closure.
    #[error("bootloader")]
    Boot(#[from] boot::Error),
    /// The EFI boot image.
    #[error("EFI boot image")]
    Fat(#[from] fat::Error),
    /// The ISO writer.
    #[error("ISO 9660")]
    Iso(#[from] iso9660::Error),
    /// The tree of the ISO.
    #[error("ISO tree")]
    Tree(#[from] imagetool_fstree::Error),
    /// The native store image.
    #[error("store image (nix-store.squashfs)")]
    Squashfs(#[from] crate::squashfs::Error),
    /// The build was cancelled (a [`Cancel`], or SIGINT/SIGTERM in the CLI); nothing was
    /// written.
    #[error("cancelled: nothing was written")]
    Cancelled,
    /// An I/O error on a file.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl IsoError {
    /// The facade's error category.
    #[must_use]
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            IsoError::InvalidInput(_) => crate::ErrorKind::InvalidInput,
            IsoError::Io { source, .. } => {
                crate::ErrorKind::of(source).unwrap_or(crate::ErrorKind::Io)
            }
            IsoError::Nix(e) => e.kind().into(),
            IsoError::Boot(e) => e.kind().into(),
            IsoError::Fat(e) => e.kind().into(),
            IsoError::Iso(e) => e.kind().into(),
            IsoError::Tree(e) => e.kind().into(),
            IsoError::Squashfs(e) => e.kind().into(),
            IsoError::Cancelled => crate::ErrorKind::Interrupted,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IsoError + '_ {
    move |source| IsoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The modules upstream builds into the ISO's GRUB EFI image (those this GRUB has).
const GRUB_EFI_MODULES: &[&str] = &[
    "fat",
    "iso9660",
    "part_gpt",
    "part_msdos",
    "normal",
    "boot",
    "linux",
    "configfile",
    "loopback",
    "chain",
    "halt",
    "efifwsetup",
    "efi_gop",
    "ls",
    "search",
    "search_label",
    "search_fs_uuid",
    "search_fs_file",
    "test",
    "all_video",
    "loadenv",
    "echo",
    "serial",
    "terminal",
    "efi_uga",
];

/// The menu variants upstream offers: (isolinux label, menu suffix, extra parameters).
const VARIANTS: &[(&str, &str, &str)] = &[
    ("boot", "", ""),
    ("boot-nomodeset", " (nomodeset)", "nomodeset"),
    ("boot-copytoram", " (copytoram)", "copytoram"),
    ("boot-debug", " (debug)", "loglevel=7"),
    (
        "boot-serial",
        " (serial console=ttyS0,115200n8)",
        "console=ttyS0,115200n8",
    ),
];

/// Builds the ISO `spec` describes.
///
/// # Errors
/// [`IsoError`] naming the option, file or store path at fault; nothing is left at
/// `spec.output` unless the build succeeded.
pub fn build_iso(spec: &IsoSpec) -> Result<IsoReport, IsoError> {
    build_iso_cancellable(spec, &Cancel::new())
}

/// [`build_iso`] that stops when `cancel` is cancelled (from another thread or a signal
/// handler): every write checks it, and nothing is committed once it is raised.
///
/// # Errors
/// As [`build_iso`]; [`IsoError::Cancelled`] when cancelled.
pub fn build_iso_cancellable(spec: &IsoSpec, cancel: &Cancel) -> Result<IsoReport, IsoError> {
    match build_iso_inner(spec, cancel) {
        Err(_) if cancel.is_cancelled() => Err(IsoError::Cancelled),
        r => r,
    }
}

fn build_iso_inner(spec: &IsoSpec, cancel: &Cancel) -> Result<IsoReport, IsoError> {
    if spec.compress && !cfg!(feature = "zstd") {
        return Err(no_zstd(&spec.output));
    }
    let toplevel = StorePath::parse(&spec.toplevel)
        .map_err(|e| IsoError::InvalidInput(format!("toplevel: {e}")))?;
    let closure = nix::closure::load(&spec.closure, &{
        let mut o = LoadOptions::default();
        o.store_root = spec.store_root.clone();
        o.roots = vec![toplevel.clone()];
        o.additional_paths = Vec::new();
        o.verify = false;
        o
    })?;
    let paths: Vec<String> = closure
        .infos()
        .map(|i| i.path.as_str().to_string())
        .collect();
    let store = boot::Closure::new(&spec.store_root, paths.clone());
    let top_host = store.host(toplevel.as_str());
    let generation = boot::bootspec::Generation::load(&top_host)?;
    let bs = &generation.bootspec;

    let read_top = |name: &str| std::fs::read_to_string(top_host.join(name)).ok();
    let release = read_top("nixos-version")
        .unwrap_or_default()
        .trim()
        .to_string();
    let volume_id = match &spec.volume_id {
        Some(v) => v.clone(),
        None => default_volume_id(&release, &bs.system),
    };
    if volume_id.len() > 32 {
        return Err(IsoError::InvalidInput(format!(
            "volume ID {volume_id:?} is {} characters; ISO 9660 allows 32",
            volume_id.len()
        )));
    }

    // The kernel command line, as iso-image.nix's boot.kernelParams make it.
    let mut params: Vec<String> = bs.kernel_params.clone();
    let root_param = format!("root=LABEL={volume_id}");
    if !params.iter().any(|p| p.starts_with("root=")) {
        params.insert(0, root_param);
    }
    if !params.iter().any(|p| p == "boot.shell_on_fail") {
        params.insert(1.min(params.len()), "boot.shell_on_fail".into());
    }
    let cmdline = format!("init={} {}", bs.init, params.join(" "));
    let menu_label = format!("NixOS {release}");

    let (_, kernel) = store.file(&bs.kernel)?;
    let initrd = match &bs.initrd {
        Some(i) => store.file(i)?.1,
        None => {
            return Err(IsoError::InvalidInput(format!(
                "{}: the bootspec names no initrd; the live ISO's stage 1 needs one",
                generation.file.display()
            )));
        }
    };
    let host_paths: Vec<PathBuf> = paths.iter().map(|p| store.host(p)).collect();
    let syslinux = host_paths
        .iter()
        .map(|p| p.join("share/syslinux"))
        .find(|p| p.join("isolinux.bin").is_file() && p.join("isohdpfx.bin").is_file())
        .ok_or_else(|| {
            IsoError::InvalidInput(format!(
                "no syslinux in the closure of {toplevel} (a store path with \
                 share/syslinux/isolinux.bin and isohdpfx.bin): iso-image.nix adds pkgs.syslinux \
                 to environment.systemPackages for BIOS boot"
            ))
        })?;
    let grub = boot::grub::GrubTools::find(boot::grub::Platform::X86_64Efi, &host_paths)?;

    let t = spec.epoch.whole_secs();
    let dir_meta = Meta::dir(0o555).at(t);
    let mut tree = Tree::new(dir_meta.clone());
    for d in ["boot", "boot/grub", "EFI", "EFI/boot", "isolinux"] {
        tree.add_dir(d.as_bytes(), dir_meta.clone())?;
    }
    tree.add_file(b"boot/bzImage", Source::Host(kernel), file_meta(t, false))?;
    tree.add_file(b"boot/initrd", Source::Host(initrd), file_meta(t, false))?;
    tree.add_file(
        b"boot/grub/loopback.cfg",
        text("source /EFI/boot/grub.cfg\n".into()),
        file_meta(t, false),
    )?;
    tree.add_file(b"version.txt", text(release.clone()), file_meta(t, false))?;
    // Held until the ISO is written: the native store image lives in an unnamed temporary.
    let _store_tmp = add_store_image(&mut tree, &closure, spec, t, cancel)?;

    // BIOS: the closure's syslinux as /isolinux, and isolinux.cfg.
    let mbr_code = add_isolinux(&mut tree, &syslinux, t, &menu_label, &cmdline, spec.timeout)?;
    // EFI: GRUB with its modules built in, finding the ISO by the date-based UUID GRUB gives
    // ISO 9660 volumes, and grub.cfg under /EFI/boot.
    add_efi(&mut tree, &grub, t, spec, &menu_label, &cmdline)?;
    let opts = iso_options(&volume_id, spec, &toplevel, mbr_code);
    let plan = if spec.compress {
        let tmp = spec.output.with_extension("iso.tmp-uncompressed");
        let plan = write_iso(&tree, &opts, &tmp, cancel)?;
        let r = compress(&tmp, &spec.output, cancel);
        let _ = std::fs::remove_file(&tmp);
        r?;
        plan
    } else {
        write_iso(&tree, &opts, &spec.output, cancel)?
    };
    Ok(IsoReport {
        output: spec.output.clone(),
        volume_id,
        iso_size: plan.size(),
        store_paths: closure.len(),
        kernel_params: cmdline,
    })
}

/// Adds /nix-store.squashfs: the spec's file, or the native store image of `closure`
/// (returned: it lives in an unnamed temporary, to be held until the ISO is written).
fn add_store_image(
    tree: &mut Tree,
    closure: &nix::closure::Closure,
    spec: &IsoSpec,
    t: Timestamp,
    cancel: &Cancel,
) -> Result<Option<imagetool_blockio::AtomicFile>, IsoError> {
    Ok(match &spec.store_image {
        StoreImage::File(squashfs) => {
            if !squashfs.is_file() {
                return Err(IsoError::InvalidInput(format!(
                    "store image {}: not a file",
                    squashfs.display()
                )));
            }
            tree.add_file(
                b"nix-store.squashfs",
                Source::Host(squashfs.clone()),
                file_meta(t, false),
            )?;
            None
        }
        StoreImage::Native(opts) => {
            let (tmp, host, size) = native_store_image(closure, spec, opts, cancel)?;
            tree.add(
                b"nix-store.squashfs",
                imagetool_fstree::Node {
                    kind: imagetool_fstree::Kind::File(imagetool_fstree::FileData {
                        source: Source::Host(host),
                        size,
                        data: None,
                    }),
                    meta: file_meta(t, false),
                },
            )?;
            Some(tmp)
        }
    })
}

/// BIOS: the closure's `syslinux` directory as /isolinux and isolinux.cfg (entries at `t`);
/// returns the isohybrid MBR code (isohdpfx.bin).
fn add_isolinux(
    tree: &mut Tree,
    syslinux: &Path,
    t: Timestamp,
    menu_label: &str,
    cmdline: &str,
    timeout: u32,
) -> Result<Vec<u8>, IsoError> {
    let mut entries: Vec<_> = std::fs::read_dir(syslinux)
        .map_err(io(syslinux))?
        .collect::<Result<_, _>>()
        .map_err(io(syslinux))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let p = e.path();
        let md = std::fs::metadata(&p).map_err(io(&p))?;
        if !md.is_file() {
            continue;
        }
        let name = format!("isolinux/{}", e.file_name().to_string_lossy());
        use std::os::unix::fs::PermissionsExt;
        tree.add_file(
            name.as_bytes(),
            Source::Host(p.clone()),
            file_meta(t, md.permissions().mode() & 0o111 != 0),
        )?;
    }
    let mbr_path = syslinux.join("isohdpfx.bin");
    let mbr_code = std::fs::read(&mbr_path).map_err(io(&mbr_path))?;
    if mbr_code.len() < 432 {
        return Err(IsoError::InvalidInput(format!(
            "{}: {} bytes, an isohybrid MBR has 432 bytes of code",
            mbr_path.display(),
            mbr_code.len()
        )));
    }
    let has_menu = syslinux.join("menu.c32").is_file();
    tree.add_file(
        b"isolinux/isolinux.cfg",
        text(isolinux_cfg(menu_label, cmdline, timeout, has_menu)),
        file_meta(t, false),
    )?;

    Ok(mbr_code)
}

/// EFI: GRUB with its modules built in, finding the ISO by the date-based UUID GRUB gives
/// ISO 9660 volumes, grub.cfg under /EFI/boot, and the El Torito EFI image (entries at `t`).
fn add_efi(
    tree: &mut Tree,
    grub: &boot::grub::GrubTools,
    t: Timestamp,
    spec: &IsoSpec,
    menu_label: &str,
    cmdline: &str,
) -> Result<(), IsoError> {
    let mut image_opts =
        boot::grub::ImageOptions::new(&iso9660::grub_uuid(spec.epoch.secs), "/EFI/boot");
    image_opts.extra_modules = GRUB_EFI_MODULES
        .iter()
        .filter(|m| grub.moddir().join(format!("{m}.mod")).is_file())
        .map(|m| (*m).to_string())
        .collect();
    let grub_efi = grub.efi_image(&image_opts)?;
    let grub_cfg = grub_cfg(menu_label, cmdline, spec.timeout);
    tree.add_file(
        b"EFI/boot/bootx64.efi",
        Source::Bytes(Arc::from(grub_efi.clone())),
        file_meta(t, false),
    )?;
    tree.add_file(
        b"EFI/boot/grub.cfg",
        text(grub_cfg.clone()),
        file_meta(t, false),
    )?;
    tree.add_file(
        b"EFI/nixos-installer-image",
        text(String::new()),
        file_meta(t, false),
    )?;
    let efi_img = efi_image(&grub_efi, grub_cfg.as_bytes())?;
    tree.add_file(
        b"boot/efi.img",
        Source::Bytes(Arc::from(efi_img)),
        file_meta(t, false),
    )?;

    Ok(())
}

/// The ISO's options: iso-image.nix's publisher and application, isolinux (with a boot info
/// table) for BIOS, boot/efi.img for EFI, and an isohybrid MBR with `mbr_code` and a GPT whose
/// disk GUID derives from the volume ID, the epoch and the toplevel.
fn iso_options(
    volume_id: &str,
    spec: &IsoSpec,
    toplevel: &StorePath,
    mbr_code: Vec<u8>,
) -> iso9660::Options {
    let mut opts = iso9660::Options::new(volume_id, spec.epoch.secs);
    opts.publisher = "nixos".into();
    opts.application = "nixos".into();
    opts.bios = Some(iso9660::BiosBoot {
        path: b"isolinux/isolinux.bin".to_vec(),
        load_sectors: 4,
        info_table: true,
    });
    opts.efi_image = Some(b"boot/efi.img".to_vec());
    opts.catalog_path = b".boot.cat".to_vec();
    let seed = format!("{volume_id}\0{}\0{}", spec.epoch.secs, toplevel.as_str());
    let h = nix::sha256(seed.as_bytes());
    let mut guid = [0u8; 16];
    guid.copy_from_slice(&h[..16]);
    guid[7] = (guid[7] & 0x0f) | 0x50; // version 5 (mixed-endian field 3, high byte)
    guid[8] = (guid[8] & 0x3f) | 0x80;
    opts.hybrid = Some(iso9660::Hybrid {
        mbr_code,
        gpt: true,
        // The bytes above are GPT's on-disk (mixed-endian) form.
        disk_guid: imagetool_ptable::Guid::from_disk_bytes(guid).uuid(),
    });

    opts
}

/// A regular file's metadata at `t`: read-only, executable when `exec`.
fn file_meta(t: Timestamp, exec: bool) -> Meta {
    Meta::file(if exec { 0o555 } else { 0o444 }).at(t)
}

/// `s`'s bytes as a file's source.
fn text(s: String) -> Source {
    Source::Bytes(Arc::from(s.into_bytes()))
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

/// The tree of the store image, as `make-squashfs.nix` lays it out: the closure's store paths
/// and `nix-path-registration` (0444) under a root directory (0755, owner 0), generated
/// entries at `epoch`. The ISO and the netboot initrd carry it.
pub(crate) fn store_tree(closure: &nix::closure::Closure, epoch: i64) -> Result<Tree, IsoError> {
    let mut tree = nix::root::root_tree(closure, &{
        let mut o = nix::root::RootOptions::default();
        o.timestamp = epoch;
        o.only_nix_store = true;
        o
    })?;
    let t = Timestamp::from_secs(epoch);
    let root = tree.meta_mut(imagetool_fstree::NodeId::ROOT);
    *root = Meta::dir(0o755).at(t);
    let infos: Vec<closure_info::PathInfo> = closure.infos().cloned().collect();
    let reg = closure_info::write_registration(&infos);
    tree.add_file(
        b"nix-path-registration",
        Source::Bytes(Arc::from(reg.into_bytes())),
        Meta::file(0o444).at(t),
    )?;
    Ok(tree)
}

/// Writes the closure's store image (as `make-squashfs.nix` lays it out) into an unnamed
/// temporary file in the output's directory, returning it (removed when dropped), a path that
/// reads it (`/proc/self/fd/N`) and its size.
fn native_store_image(
    closure: &nix::closure::Closure,
    spec: &IsoSpec,
    opts: &crate::squashfs::Options,
    cancel: &Cancel,
) -> Result<(imagetool_blockio::AtomicFile, PathBuf, u64), IsoError> {
    use std::os::fd::AsRawFd;
    let tree = store_tree(closure, spec.epoch.secs)?;
    let mut opts = opts.clone();
    opts.hard_links = false;
    opts.mkfs_time = spec.epoch.whole_secs();

    let name = spec
        .output
        .file_name()
        .map(|n| format!(".{}.nix-store.squashfs", n.to_string_lossy()))
        .unwrap_or_else(|| ".nix-store.squashfs".into());
    let tmp_path = spec.output.with_file_name(name);
    let tmp = imagetool_blockio::AtomicFile::create(&tmp_path).map_err(io(&tmp_path))?;
    let report = crate::squashfs::write(
        &tree,
        &opts,
        &imagetool_blockio::Cancellable::new(&Growing(tmp.file()), cancel),
    )?;
    tmp.file().set_len(report.size).map_err(io(&tmp_path))?;
    let host = PathBuf::from(format!("/proc/self/fd/{}", tmp.file().as_raw_fd()));
    Ok((tmp, host, report.size))
}

/// The closure's `registration` (closureInfo format), the `nix-path-registration` file the
/// squashfs holds at its root for `nix-store --load-db`.
///
/// # Errors
/// As [`nix::closure::load`].
///
/// ```
/// use imagetool::iso::registration;
/// use imagetool::nix::closure::ClosureInput;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let c = scratch.closure()?;
/// let text = registration(&ClosureInput::ClosureInfo(c.closure_info), &c.store_root, &c.path)?;
/// // Per path: the path, its NAR hash, NAR size, deriver, reference count, references.
/// assert!(text.starts_with(&format!("{}\n", c.path)));
/// # Ok(())
/// # }
/// ```
pub fn registration(
    closure: &ClosureInput,
    store_root: &Path,
    toplevel: &str,
) -> Result<String, IsoError> {
    let top =
        StorePath::parse(toplevel).map_err(|e| IsoError::InvalidInput(format!("toplevel: {e}")))?;
    let c = nix::closure::load(closure, &{
        let mut o = LoadOptions::default();
        o.store_root = store_root.to_path_buf();
        o.roots = vec![top];
        o.additional_paths = Vec::new();
        o.verify = false;
        o
    })?;
    let infos: Vec<closure_info::PathInfo> = c.infos().cloned().collect();
    Ok(closure_info::write_registration(&infos))
}

/// `nixos-<release>-<arch>`: upstream's `isoImage.volumeID` without an edition.
///
/// ```
/// use imagetool::iso::default_volume_id;
///
/// assert_eq!(default_volume_id("25.11.19700101.abcdef", "aarch64-linux"), "nixos-25.11-aarch64");
/// ```
#[must_use]
pub fn default_volume_id(nixos_version: &str, system: &str) -> String {
    // config.system.nixos.release is the version's first two fields (25.11).
    let release: Vec<&str> = nixos_version.split('.').take(2).collect();
    let arch = system.split('-').next().unwrap_or("x86_64");
    let mut v = format!("nixos-{}-{arch}", release.join("."));
    v.truncate(32);
    v
}

fn isolinux_cfg(label: &str, cmdline: &str, timeout: u32, menu: bool) -> String {
    let mut s = String::from("SERIAL 0 115200\n");
    if timeout == 0 || !menu {
        // No menu: boot the default entry at once (TIMEOUT 0 would wait for ever).
        s.push_str("PROMPT 0\n");
        s.push_str(&format!("TIMEOUT {}\n", (timeout * 10).max(1)));
    } else {
        s.push_str(&format!(
            "TIMEOUT {}\nUI menu.c32\nMENU TITLE NixOS\n",
            timeout * 10
        ));
    }
    s.push_str("DEFAULT boot\n");
    for (name, suffix, extra) in VARIANTS {
        s.push_str(&format!(
            "\nLABEL {name}\nMENU LABEL {label}{suffix}\nLINUX /boot/bzImage\nAPPEND {cmdline}{}{extra}\nINITRD /boot/initrd\n",
            if extra.is_empty() { "" } else { " " }
        ));
    }
    s
}

fn grub_cfg(label: &str, cmdline: &str, timeout: u32) -> String {
    let quoted = label.replace('\'', "'\\''");
    let mut s = format!(
        "serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\n\
         set timeout={timeout}\n\n\
         # Search using a \"marker file\"\nsearch --set=root --file /EFI/nixos-installer-image\n\n\
         # Booted from a loopback file (boot/grub/loopback.cfg): tell stage 1 where the ISO is.\n\
         if [ \"${{iso_path}}\" ] ; then\n  set isoboot=\"findiso=${{iso_path}}\"\nfi\n"
    );
    for (_, suffix, extra) in VARIANTS {
        s.push_str(&format!(
            "\nmenuentry '{quoted}{suffix}' --class installer {{\n  linux /boot/bzImage ${{isoboot}} {cmdline}{}{extra}\n  initrd /boot/initrd\n}}\n",
            if extra.is_empty() { "" } else { " " }
        ));
    }
    s.push_str(
        "\nmenuentry 'Firmware Setup' --class settings {\n  fwsetup\n}\n\
         menuentry 'Shutdown' --class shutdown {\n  halt\n}\n",
    );
    s
}

/// The El Torito EFI image: a FAT filesystem with `EFI/boot/bootx64.efi` and `grub.cfg`,
/// sized as iso-image.nix sizes it (the contents rounded up to MiB, +10 %, +1 MiB), label
/// `EFIBOOT`, volume ID 0x12345678, every date 2000-01-01.
fn efi_image(efi: &[u8], cfg: &[u8]) -> Result<Vec<u8>, IsoError> {
    const MIB: u64 = 1 << 20;
    let mut t = fat::Tree::new();
    t.add_bytes("EFI/boot/bootx64.efi", efi.to_vec())?;
    t.add_bytes("EFI/boot/grub.cfg", cfg.to_vec())?;
    let usage = (efi.len() as u64 + cfg.len() as u64).div_ceil(MIB) * MIB;
    let size = (usage * 110 / 100 / MIB + 1) * MIB;
    let img = imagetool_blockio::MemImage::new(size);
    let mut opts = fat::FormatOptions::default();
    opts.label = Some("EFIBOOT".into());
    opts.volume_id = 0x1234_5678;
    opts.timestamp = Timestamp::from_secs(946_684_800);
    fat::format(&t, &img, &opts)?;
    img.to_vec().map_err(io(Path::new("(EFI boot image)")))
}

/// `iso9660::write_file` with every write checking `cancel`, and a last check before the
/// image is committed.
fn write_iso(
    tree: &Tree,
    opts: &iso9660::Options,
    output: &Path,
    cancel: &Cancel,
) -> Result<iso9660::Plan, IsoError> {
    let p = iso9660::plan(tree, opts)?;
    let out = imagetool_blockio::AtomicFile::create(output).map_err(io(output))?;
    let f = out.try_clone_file().map_err(io(output))?;
    let sparse = imagetool_blockio::SparseFile::from_file(f, p.size()).map_err(io(output))?;
    p.write(&imagetool_blockio::Cancellable::new(&sparse, cancel))?;
    cancel.check().map_err(io(output))?;
    out.commit().map_err(io(output))?;
    Ok(p)
}

/// A reader that fails with `Interrupted` once `cancel` is raised.
#[cfg(feature = "zstd")]
struct CancelRead<'a, R>(R, &'a Cancel);

#[cfg(feature = "zstd")]
impl<R: std::io::Read> std::io::Read for CancelRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.1.check()?;
        self.0.read(buf)
    }
}

/// A compressed ISO asked of a build without the `zstd` feature.
fn no_zstd(output: &Path) -> IsoError {
    IsoError::InvalidInput(format!(
        "{}: compressImage (a zstd-compressed ISO): imagetool was built without the `zstd` \
         feature",
        output.display()
    ))
}

#[cfg(not(feature = "zstd"))]
fn compress(_src: &Path, dst: &Path, _cancel: &Cancel) -> Result<(), IsoError> {
    Err(no_zstd(dst))
}

#[cfg(feature = "zstd")]
fn compress(src: &Path, dst: &Path, cancel: &Cancel) -> Result<(), IsoError> {
    let out = imagetool_blockio::AtomicFile::create(dst).map_err(io(dst))?;
    let input = CancelRead(std::fs::File::open(src).map_err(io(src))?, cancel);
    let f = out.try_clone_file().map_err(io(dst))?;
    let mut enc = zstd::stream::Encoder::new(std::io::BufWriter::new(f), 3).map_err(io(dst))?;
    enc.include_checksum(true).map_err(io(dst))?;
    std::io::copy(&mut std::io::BufReader::new(input), &mut enc).map_err(io(dst))?;
    let mut w = enc.finish().map_err(io(dst))?;
    std::io::Write::flush(&mut w).map_err(io(dst))?;
    drop(w);
    cancel.check().map_err(io(dst))?;
    out.commit().map_err(io(dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_default_volume_id_is_upstreams() {
        assert_eq!(
            default_volume_id("25.11.19700101.imagetool", "x86_64-linux"),
            "nixos-25.11-x86_64"
        );
        assert_eq!(
            default_volume_id("24.05pre", "aarch64-linux"),
            "nixos-24.05pre-aarch64"
        );
    }

    #[test]
    fn test_menus_boot_the_default_with_the_cmdline() {
        let c = isolinux_cfg("NixOS 25.11", "init=/x root=LABEL=v", 0, true);
        assert!(c.contains("PROMPT 0\n") && !c.contains("UI "), "{c}");
        assert!(c.contains("LABEL boot\nMENU LABEL NixOS 25.11\nLINUX /boot/bzImage\nAPPEND init=/x root=LABEL=v\n"), "{c}");
        assert!(c.contains("APPEND init=/x root=LABEL=v nomodeset\n"), "{c}");
        let c = isolinux_cfg("NixOS", "init=/x", 10, true);
        assert!(c.contains("TIMEOUT 100\nUI menu.c32\n"), "{c}");
        let g = grub_cfg("NixOS 'q'", "init=/x", 10);
        assert!(
            g.contains("linux /boot/bzImage ${isoboot} init=/x\n"),
            "{g}"
        );
        assert!(g.contains("set timeout=10\n"), "{g}");
        assert!(
            g.contains("menuentry 'NixOS '\\''q'\\''' --class installer"),
            "{g}"
        );
    }
}
