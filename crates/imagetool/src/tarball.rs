//! The variants that are not disks: a root tree in an archive (`lxc`, `lxc-metadata`,
//! `proxmox-lxc`, `docker`), a kernel and an initrd carrying the store (`netboot`, `kexec`,
//! see [`crate::netboot`]), and the live ISO under its upstream name (`iso`, `iso-installer`,
//! through [`crate::iso`]).
//!
//! ```text
//!  closure ──► root tree (nix::root, as `build`) ──► + the module's extra entries
//!                                                     (sbin/init, proc, sys, dev, …)
//!                 │                                        │
//!                 │                     one GNU tar writer (archive::tar): byte order,
//!                 │                     numeric owners, modes, symlinks, hard links,
//!                 │                     the tree's times ──► xz/zstd, multi-threaded
//!                 └──► store squashfs (as make-squashfs.nix) ──► netboot initrd, kexec tarball
//! ```
//!
//! Every archive is `tar --sort=name --numeric-owner` of the tree without a `./` prefix, as
//! nixpkgs' `make-system-tarball.sh` runs it (`tar -c *`); the tree is the one `build` writes
//! into ext4 (the same owners, modes and times: the store's canonical metadata, generated
//! entries at `SOURCE_DATE_EPOCH`), plus what the nixpkgs module adds. Every output is an
//! unnamed file until all of them are complete; with store verification (the default) they
//! appear only if no store file changed while it was read.

use std::path::{Path, PathBuf};
use std::time::Instant;

use imagetool_archive::{
    self as archive, Codec, Compression,
    tar::{Entry, Meta as TarMeta, TarWriter},
};
use imagetool_blockio::{AtomicFile, Cancel};
use imagetool_fstree::Tree;
use imagetool_nix::scan::Snapshot;

use crate::build::{BuildError, Phase, Progress};
use crate::spec::Spec;

/// A nixpkgs image variant that is not a disk.
use crate::tree_variant::*;
pub use crate::tree_variant::{
    TreeBuild, TreeError, TreeReport, TreeVariant, append_tree, lxc_metadata_yaml,
};

impl Spec {
    /// The tree-variant build this spec asks for (`variant` names a [`TreeVariant`]), with
    /// `out_dir` as `$out`; `None` for no variant or a disk variant.
    ///
    /// # Errors
    /// As [`Spec::resolve`]; `InvalidInput` for a bad `archiveCompression` or `baseName`.
    pub fn resolve_tree_variant(
        &self,
        out_dir: &Path,
        default_timestamp: impl Into<imagetool_fstree::Timestamp>,
    ) -> Result<Option<TreeBuild>, crate::spec::Error> {
        let Some(variant) = self.variant.as_deref().and_then(|n| n.parse().ok()) else {
            return Ok(None);
        };
        let variant: TreeVariant = variant;
        let mut s = self.clone();
        s.output = Some(out_dir.join(".imagetool-tree"));
        let image = s.resolve(default_timestamp)?;
        let base_name = if self.base_name == "nixos" {
            match crate::variant::system_identity(&image) {
                Some((label, system)) if variant.is_iso() => format!("nixos-{label}-{system}"),
                Some((label, system)) => format!("nixos-image-{label}-{system}"),
                None => "nixos".to_string(),
            }
        } else {
            self.file_name()?;
            self.base_name.clone()
        };
        let compression = match &self.archive_compression {
            Some(c) => Compression::new(c.parse().map_err(|e: archive::Error| {
                crate::spec::Error::invalid_key("archiveCompression", e.to_string())
            })?),
            None => Compression::new(Codec::Xz),
        };
        Ok(Some(TreeBuild {
            variant,
            image,
            out_dir: out_dir.to_path_buf(),
            base_name,
            compression,
        }))
    }
}

/// Builds the variant into `tb.out_dir`.
///
/// ```
/// use imagetool::blockio::Cancel;
/// use imagetool::build::NoProgress;
/// use imagetool::spec::Spec;
/// use imagetool::tarball::build_tree_variant;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let scratch = imagetool::doc_support::Scratch::new()?;
/// # let c = scratch.closure()?;
/// # let (toplevel, closure_info, store_root) = (c.path, c.closure_info, c.store_root);
/// # let out_dir = scratch.path("out");
/// let spec = Spec::from_json(&serde_json::json!({
///     "variant": "docker",
///     "toplevel": toplevel,
///     "closureInfo": closure_info,
///     "storeRoot": store_root,
/// }).to_string())?;
/// let tb = spec.resolve_tree_variant(&out_dir, 315_532_800)?.expect("a tree variant");
/// let report = build_tree_variant(&tb, &mut NoProgress, &Cancel::new())?;
/// assert_eq!(report.store_paths, 1);
/// assert!(report.files[0].exists());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`TreeError`] naming the option, file or store path at fault; `Cancelled` when `cancel`
/// fires. Nothing is left under any artifact's name unless every one succeeded.
pub fn build_tree_variant(
    tb: &TreeBuild,
    progress: &mut dyn Progress,
    cancel: &Cancel,
) -> Result<TreeReport, TreeError> {
    std::fs::create_dir_all(&tb.out_dir).map_err(io_err(&tb.out_dir))?;
    if tb.variant.is_iso() {
        return build_iso_variant(tb);
    }
    let loaded = load(tb, progress)?;
    let stop = || -> Result<(), TreeError> {
        cancel
            .check()
            .map_err(|_| TreeError::Build(BuildError::Cancelled))
    };
    stop()?;
    let names = tb
        .variant
        .file_names_for(&tb.base_name, tb.compression.codec);
    let mut paths: Vec<PathBuf> = names.iter().map(|n| tb.out_dir.join(n)).collect();
    let epoch = tb.image.timestamp.secs;
    let threads = tb.image.threads;
    let c = Compression {
        threads,
        ..tb.compression
    };
    let (outs, snapshot, entries) = match tb.variant {
        TreeVariant::Netboot | TreeVariant::Kexec => {
            let (outs, entries) =
                crate::netboot::write(tb, &loaded, &mut paths, c, progress, cancel)?;
            (outs, None, entries)
        }
        TreeVariant::LxcMetadata => {
            let out = lxc_metadata(tb, &loaded, &paths[0], c)?;
            (vec![out], None, 1)
        }
        TreeVariant::Lxc | TreeVariant::ProxmoxLxc | TreeVariant::Docker => {
            let (mut tree, snapshot) = root_tree(tb, &loaded, progress)?;
            add_module_entries(&mut tree, tb.variant, &loaded, epoch)?;
            stop()?;
            progress.started(Phase::Convert);
            let t0 = Instant::now();
            let mut entries = 0;
            let tar = packed(&paths[0], c, |w| {
                let mut t = TarWriter::new(w);
                entries = append_tree(&mut t, &tree, cancel)?;
                Ok(t.finish()?)
            })?;
            let mut outs = vec![tar];
            if tb.variant == TreeVariant::Lxc {
                stop()?;
                outs.push(lxc_squashfs(&tree, &paths[1], epoch, threads)?);
            }
            progress.finished(
                Phase::Convert,
                t0.elapsed(),
                &format!("{entries} entries, {}", c.codec),
            );
            (outs, Some(snapshot), entries)
        }
        TreeVariant::Iso | TreeVariant::IsoInstaller => unreachable_iso()?,
    };
    stop()?;
    if let Some(s) = snapshot
        && tb.image.verify
    {
        // The store's NAR hashes (deferred by root_tree_checked), then the re-check.
        s.verify_hashes(&std::sync::atomic::AtomicBool::new(false))?;
        s.check()?;
    }
    let mut files = paths.clone();
    // hydra-build-products, as make-system-tarball.sh (and the netboot outputs) name them.
    let support = tb.out_dir.join("nix-support");
    std::fs::create_dir_all(&support).map_err(io_err(&support))?;
    let products = support.join("hydra-build-products");
    let kind = match tb.variant {
        TreeVariant::Netboot => "file",
        _ => "file system-tarball",
    };
    let text: String = paths
        .iter()
        .map(|p| format!("{kind} {}\n", p.display()))
        .collect();
    AtomicFile::commit_all(outs).map_err(io_err(&paths[0]))?;
    std::fs::write(&products, text).map_err(io_err(&products))?;
    files.push(products);
    Ok(TreeReport {
        variant: tb.variant,
        files,
        store_paths: loaded.closure.len(),
        entries,
    })
}

/// lxc-container.nix's metadata tarball: metadata.yaml naming the system (its bootspec's
/// system, the image's label, the build time and os-release's distribution names).
fn lxc_metadata(
    tb: &TreeBuild,
    loaded: &Loaded,
    dest: &Path,
    c: Compression,
) -> Result<AtomicFile, TreeError> {
    let epoch = tb.image.timestamp.secs;
    let (store, generation) = loaded.generation(&tb.image.store_root)?;
    // distroName, distroId and codeName, from the system's os-release when it has one.
    let os_release = store
        .file(&format!("{}/etc/os-release", loaded.toplevel))
        .ok()
        .and_then(|(_, host)| std::fs::read_to_string(host).ok())
        .unwrap_or_default();
    let label = crate::variant::system_identity(&tb.image)
        .map(|(l, _)| l)
        .unwrap_or_default();
    let yaml = lxc_metadata_yaml(&generation.bootspec.system, &label, epoch, &os_release);
    let meta = TarMeta {
        mtime: u64::try_from(epoch).unwrap_or(0),
        uname: String::new(),
        gname: String::new(),
        ..TarMeta::file(0o644)
    };
    packed(dest, c, |w| {
        let mut t = TarWriter::new(w);
        t.append(&Entry::bytes("metadata.yaml", meta, yaml.as_bytes()))?;
        Ok(t.finish()?)
    })
}

fn unreachable_iso() -> Result<(Vec<AtomicFile>, Option<Snapshot>, usize), TreeError> {
    Err(invalid("the ISO variants are built by crate::iso"))
}

/// lxc-container.nix's squashfs form of the root tree (`make-squashfs.nix`, zstd), with hard
/// links kept.
fn lxc_squashfs(
    tree: &Tree,
    dest: &Path,
    epoch: i64,
    threads: usize,
) -> Result<AtomicFile, TreeError> {
    let mut opts = crate::iso::native_options(crate::squashfs::Compression::Zstd, Some(19));
    opts.hard_links = true;
    opts.threads = threads;
    opts.mkfs_time = imagetool_fstree::Timestamp::from_secs(epoch);
    let out = AtomicFile::create(dest).map_err(io_err(dest))?;
    let report = crate::squashfs::write(tree, &opts, &Growing(out.file()))?;
    out.file().set_len(report.size).map_err(io_err(dest))?;
    Ok(out)
}

/// `iso` / `iso-installer`: the ISO `build --format iso` writes, as `iso/<baseName>.iso`.
fn build_iso_variant(tb: &TreeBuild) -> Result<TreeReport, TreeError> {
    let Some(toplevel) = tb.image.toplevel.clone() else {
        return Err(invalid(format!(
            "the {} variant needs the system's toplevel (--toplevel)",
            tb.variant
        )));
    };
    let name = &tb.variant.file_names(&tb.base_name)[0];
    let output = tb.out_dir.join(name);
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let r = crate::iso::build_iso(&crate::iso::IsoSpec {
        closure: tb.image.closure.clone(),
        store_root: tb.image.store_root.clone(),
        toplevel,
        output: output.clone(),
        volume_id: None,
        store_image: crate::iso::StoreImage::native_default(),
        epoch: tb.image.timestamp,
        timeout: 10,
        compress: false,
    })?;
    let support = tb.out_dir.join("nix-support");
    std::fs::create_dir_all(&support).map_err(io_err(&support))?;
    let products = support.join("hydra-build-products");
    std::fs::write(&products, format!("file iso {}\n", output.display()))
        .map_err(io_err(&products))?;
    Ok(TreeReport {
        variant: tb.variant,
        files: vec![output, products],
        store_paths: r.store_paths,
        entries: 0,
    })
}
