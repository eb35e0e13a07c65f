//! The shared pieces of the non-disk variants (`crate::tarball`, `crate::netboot`): the
//! variant names, the request and report, the error, loading the closure, the root tree with
//! the module's entries, and the GNU tar writer over it. Kept apart from the orchestration in
//! `tarball` so that module dependencies stay one-way (`tarball` → `netboot` → here).

use std::collections::HashMap;
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use imagetool_archive::{
    self as archive, Codec, Compression,
    tar::{Data, Entry, Kind as TarKind, Meta as TarMeta, TarWriter},
};
use imagetool_blockio::{AtomicFile, Cancel};
use imagetool_fstree::{Kind, Meta, NodeId, Source, Timestamp, Tree};
use imagetool_nix::closure::{Closure, LoadOptions};
use imagetool_nix::root::RootOptions;
use imagetool_nix::scan::Snapshot;
use imagetool_nix::{self as nix, StorePath, closure_info};

use crate::build::{BuildError, ImageSpec, Phase, Progress};
use crate::iso::IsoError;

/// A nixpkgs image variant that is not a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TreeVariant {
    /// LXC/Incus root filesystem (`virtualisation/lxc-container.nix`): `.tar.xz` and squashfs.
    Lxc,
    /// LXC/Incus image metadata (`virtualisation/lxc-image-metadata.nix`): `metadata.yaml`.
    LxcMetadata,
    /// A Proxmox VE container template (`virtualisation/proxmox-lxc.nix`).
    ProxmoxLxc,
    /// A root tarball for `docker import` (nixos-generators' `docker`, `docker-image.nix`).
    Docker,
    /// Netboot (`installer/netboot/netboot.nix`): kernel, initrd with the store, iPXE script.
    Netboot,
    /// A kexec tarball with `kexec_nixos` (nixos-generators' `kexec`).
    Kexec,
    /// The live ISO (`installer/cd-dvd/iso-image.nix`).
    Iso,
    /// The installer ISO (`installer/cd-dvd/installation-cd-base.nix`): the same ISO builder.
    IsoInstaller,
}

impl TreeVariant {
    /// Every one, in `imagetool variants` order.
    pub const ALL: [TreeVariant; 8] = [
        TreeVariant::Iso,
        TreeVariant::IsoInstaller,
        TreeVariant::Lxc,
        TreeVariant::LxcMetadata,
        TreeVariant::ProxmoxLxc,
        TreeVariant::Docker,
        TreeVariant::Netboot,
        TreeVariant::Kexec,
    ];

    /// The name nixpkgs gives it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            TreeVariant::Lxc => "lxc",
            TreeVariant::LxcMetadata => "lxc-metadata",
            TreeVariant::ProxmoxLxc => "proxmox-lxc",
            TreeVariant::Docker => "docker",
            TreeVariant::Netboot => "netboot",
            TreeVariant::Kexec => "kexec",
            TreeVariant::Iso => "iso",
            TreeVariant::IsoInstaller => "iso-installer",
        }
    }

    /// The nixpkgs (or nixos-generators) module it follows.
    #[must_use]
    pub fn module(self) -> &'static str {
        match self {
            TreeVariant::Lxc => "nixos/modules/virtualisation/lxc-container.nix",
            TreeVariant::LxcMetadata => "nixos/modules/virtualisation/lxc-image-metadata.nix",
            TreeVariant::ProxmoxLxc => "nixos/modules/virtualisation/proxmox-lxc.nix",
            TreeVariant::Docker => "nixos-generators formats/docker.nix (docker-image.nix)",
            TreeVariant::Netboot => "nixos/modules/installer/netboot/netboot.nix",
            TreeVariant::Kexec => "nixos-generators formats/kexec.nix",
            TreeVariant::Iso => "nixos/modules/installer/cd-dvd/iso-image.nix",
            TreeVariant::IsoInstaller => "nixos/modules/installer/cd-dvd/installation-cd-base.nix",
        }
    }

    /// The files it writes under `$out`, for `base` (`image.baseName`), with the default
    /// (xz) tarballs.
    #[must_use]
    pub fn file_names(self, base: &str) -> Vec<String> {
        self.file_names_for(base, Codec::Xz)
    }

    /// The files it writes under `$out`, for `base`, its tarballs compressed with `codec`
    /// (`.tar.xz`, `.tar.zst`, `.tar.gz`, `.tar.bz2`).
    #[must_use]
    pub fn file_names_for(self, base: &str, codec: Codec) -> Vec<String> {
        let tarball = format!("tarball/{base}.tar.{}", codec.extension());
        match self {
            TreeVariant::Lxc => vec![tarball, format!("tarball/{base}.squashfs")],
            TreeVariant::LxcMetadata
            | TreeVariant::ProxmoxLxc
            | TreeVariant::Docker
            | TreeVariant::Kexec => vec![tarball],
            TreeVariant::Netboot => vec!["bzImage".into(), "initrd".into(), "netboot.ipxe".into()],
            TreeVariant::Iso | TreeVariant::IsoInstaller => vec![format!("iso/{base}.iso")],
        }
    }

    /// What it produces, for `imagetool variants`.
    #[must_use]
    pub fn describe(self) -> String {
        let what = match self {
            TreeVariant::Lxc => "root tree, tar.xz + squashfs (lxc image import META ROOT)",
            TreeVariant::LxcMetadata => "metadata.yaml (+ templates), tar.xz",
            TreeVariant::ProxmoxLxc => "root tree, tar.xz (pct create … TEMPLATE)",
            TreeVariant::Docker => "root tree, tar.xz (docker import / podman import)",
            TreeVariant::Netboot => "kernel, initrd + store squashfs, netboot.ipxe",
            TreeVariant::Kexec => "kexec_nixos + kernel + initrd with the store, tar.xz",
            TreeVariant::Iso | TreeVariant::IsoInstaller => {
                "ISO 9660 (El Torito BIOS + EFI, isohybrid), squashfs store"
            }
        };
        let base = match self {
            TreeVariant::Iso | TreeVariant::IsoInstaller => "nixos-<label>-<system>",
            _ => "<base>",
        };
        format!("{what}: {}", self.file_names(base).join(", "))
    }

    /// Whether it builds the ISO.
    #[must_use]
    pub fn is_iso(self) -> bool {
        matches!(self, TreeVariant::Iso | TreeVariant::IsoInstaller)
    }
}

impl fmt::Display for TreeVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TreeVariant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let alias = match s {
            "proxmox-lxc-template" => "proxmox-lxc",
            "kexec-bundle" => "kexec",
            o => o,
        };
        TreeVariant::ALL
            .into_iter()
            .find(|v| v.name() == alias)
            .ok_or_else(|| format!("unknown variant {s:?}"))
    }
}

/// A resolved build of a [`TreeVariant`].
#[derive(Debug, Clone)]
pub struct TreeBuild {
    /// The variant.
    pub variant: TreeVariant,
    /// The closure, the store, the times and threads (its `output` and disk settings unused).
    pub image: ImageSpec,
    /// The output directory (`$out`).
    pub out_dir: PathBuf,
    /// `image.baseName`: `nixos-image-<label>-<system>` (`nixos-<label>-<system>` for the
    /// ISOs) unless the spec's `baseName` is set.
    pub base_name: String,
    /// The archives' compression (`archiveCompression`; xz by default, as upstream).
    pub compression: Compression,
}

/// What a [`TreeVariant`] build wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TreeReport {
    /// The variant.
    pub variant: TreeVariant,
    /// Every file written (artifacts first, then `nix-support/…`).
    pub files: Vec<PathBuf>,
    /// Store paths in the closure.
    pub store_paths: usize,
    /// Entries in the main archive or store image.
    pub entries: usize,
}

/// Why a [`TreeVariant`] build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The closure, root tree, archive or output.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The ISO builder (`iso`, `iso-installer`).
    #[error(transparent)]
    Iso(#[from] IsoError),
    /// The squashfs writer (the store image, lxc's squashfs).
    #[error("squashfs")]
    Squashfs(#[from] crate::squashfs::Error),
}

impl TreeError {
    /// What went wrong, whichever layer it came from.
    #[must_use]
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            TreeError::Build(e) => e.kind(),
            TreeError::Iso(e) => e.kind(),
            TreeError::Squashfs(e) => e.kind().into(),
        }
    }
}

impl From<archive::Error> for TreeError {
    fn from(e: archive::Error) -> Self {
        TreeError::Build(archive_err(e))
    }
}

impl From<nix::Error> for TreeError {
    fn from(e: nix::Error) -> Self {
        TreeError::Build(BuildError::Nix(e))
    }
}

impl From<imagetool_boot::Error> for TreeError {
    fn from(e: imagetool_boot::Error) -> Self {
        TreeError::Build(BuildError::Boot(e))
    }
}

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TreeError + '_ {
    move |source| {
        TreeError::Build(BuildError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

pub(crate) fn archive_err(e: archive::Error) -> BuildError {
    match e.kind() {
        archive::ErrorKind::InvalidInput => BuildError::InvalidInput(e.to_string()),
        _ => BuildError::Io {
            path: PathBuf::from(e.context()),
            source: std::io::Error::other(e.to_string()),
        },
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> TreeError {
    TreeError::Build(BuildError::InvalidInput(msg.into()))
}

/// The closure and the parsed toplevel of a tree build.
pub(crate) struct Loaded {
    pub closure: Closure,
    pub toplevel: StorePath,
}

impl Loaded {
    /// The closure as the boot crate reads it (under `store_root`), and the toplevel's
    /// generation (its bootspec).
    pub(crate) fn generation(
        &self,
        store_root: &Path,
    ) -> Result<
        (
            imagetool_boot::Closure,
            imagetool_boot::bootspec::Generation,
        ),
        TreeError,
    > {
        let paths: Vec<String> = self
            .closure
            .infos()
            .map(|i| i.path.as_str().to_string())
            .collect();
        let store = imagetool_boot::Closure::new(store_root, paths);
        let top_host = store.host(self.toplevel.as_str());
        let generation = imagetool_boot::bootspec::Generation::load(&top_host)?;
        Ok((store, generation))
    }
}

/// Loads the closure (reporting [`Phase::Closure`]).
pub(crate) fn load(tb: &TreeBuild, progress: &mut dyn Progress) -> Result<Loaded, TreeError> {
    let spec = &tb.image;
    let parse =
        |p: &str, what: &str| StorePath::parse(p).map_err(|e| invalid(format!("{what}: {e}")));
    let Some(top) = spec.toplevel.as_deref() else {
        return Err(invalid(format!(
            "the {} variant needs the system's toplevel (--toplevel)",
            tb.variant
        )));
    };
    let toplevel = parse(top, "--toplevel")?;
    let channel = spec
        .channel
        .as_deref()
        .map(|c| parse(c, "--channel"))
        .transpose()?;
    let mut roots: Vec<StorePath> = std::iter::once(toplevel.clone()).chain(channel).collect();
    roots.sort();
    let additional = spec
        .additional_paths
        .iter()
        .map(|p| parse(p, "--additional-path"))
        .collect::<Result<Vec<_>, _>>()?;
    progress.started(Phase::Closure);
    let t0 = Instant::now();
    let closure = nix::closure::load(&spec.closure, &{
        let mut o = LoadOptions::default();
        o.store_root = spec.store_root.clone();
        o.roots = roots;
        o.additional_paths = additional;
        o.verify = spec.verify_closure;
        o
    })?;
    progress.finished(
        Phase::Closure,
        t0.elapsed(),
        &format!(
            "{} store paths, {} NAR bytes",
            closure.len(),
            closure.total_nar_size()
        ),
    );
    Ok(Loaded { closure, toplevel })
}

/// The image's root tree, as `build` makes it (reporting [`Phase::RootTree`]).
pub(crate) fn root_tree(
    tb: &TreeBuild,
    loaded: &Loaded,
    progress: &mut dyn Progress,
) -> Result<(Tree, Snapshot), TreeError> {
    let spec = &tb.image;
    let channel = spec
        .channel
        .as_deref()
        .map(StorePath::parse)
        .transpose()
        .map_err(|e| invalid(format!("--channel: {e}")))?;
    progress.started(Phase::RootTree);
    let t0 = Instant::now();
    let r = nix::root::root_tree_checked(&loaded.closure, &{
        let mut o = RootOptions::default();
        o.toplevel = Some(loaded.toplevel.clone());
        o.timestamp = spec.timestamp.secs;
        o.config_file = spec.config_file.clone();
        o.channel = channel;
        o.contents = spec.contents.clone();
        o.only_nix_store = false;
        o.verify = spec.verify;
        o
    })?;
    progress.finished(
        Phase::RootTree,
        t0.elapsed(),
        &format!("{} entries", r.0.len()),
    );
    Ok(r)
}

/// Adds what `make-system-tarball.nix`'s callers add to the root tree: `/sbin/init` (a
/// symlink to the toplevel's `init`, what the activation script keeps it as),
/// `/nix-path-registration`, and the module's `extraCommands` directories.
pub(crate) fn add_module_entries(
    tree: &mut Tree,
    variant: TreeVariant,
    loaded: &Loaded,
    epoch: i64,
) -> Result<(), TreeError> {
    let when = Timestamp::from_secs(epoch);
    let t = |e: imagetool_fstree::Error| invalid(e.to_string());
    let mkdir_p = |tree: &mut Tree, path: &[u8]| -> Result<(), TreeError> {
        let mut at = Vec::new();
        for c in path.split(|b| *b == b'/') {
            if !at.is_empty() {
                at.push(b'/');
            }
            at.extend_from_slice(c);
            if tree.lookup(&at).is_none() {
                tree.add_dir(&at, Meta::dir(0o755).at(when)).map_err(t)?;
            }
        }
        Ok(())
    };
    mkdir_p(tree, b"sbin")?;
    let init = format!("{}/init", loaded.toplevel);
    if tree.lookup(b"sbin/init").is_none() {
        tree.add_symlink(b"sbin/init", init.as_bytes(), Meta::symlink().at(when))
            .map_err(t)?;
    }
    if variant == TreeVariant::Docker && tree.lookup(b"init").is_none() {
        // docker-image.nix copies the toplevel's entries to the root: `docker run IMAGE /init`.
        tree.add_symlink(b"init", init.as_bytes(), Meta::symlink().at(when))
            .map_err(t)?;
    }
    let infos: Vec<closure_info::PathInfo> = loaded.closure.infos().cloned().collect();
    if tree.lookup(b"nix-path-registration").is_none() {
        tree.add_file(
            b"nix-path-registration",
            Source::Bytes(Arc::from(
                closure_info::write_registration(&infos).into_bytes(),
            )),
            Meta::file(0o644).at(when),
        )
        .map_err(t)?;
    }
    let dirs: &[&[u8]] = match variant {
        TreeVariant::ProxmoxLxc => &[b"root", b"etc/systemd/network"],
        _ => &[b"proc", b"sys", b"dev"],
    };
    for d in dirs {
        mkdir_p(tree, d)?;
    }
    Ok(())
}

/// Appends every entry of `tree` below its root (`tar --sort=name -c *`): directories before
/// their entries, names in byte order, a node's second name as a hard link to its first.
/// Returns the number of entries.
///
/// ```
/// use imagetool::archive::tar::TarWriter;
/// use imagetool::blockio::Cancel;
/// use imagetool::fstree::{Meta, Source, Tree};
/// use imagetool::tarball::append_tree;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut tree = Tree::new(Meta::dir(0o755));
/// tree.add_dir(b"/etc", Meta::dir(0o755))?;
/// tree.add_file(b"/etc/hostname", Source::Bytes(b"nixos\n".as_slice().into()), Meta::file(0o644))?;
/// let mut tar = TarWriter::new(Vec::new());
/// let entries = append_tree(&mut tar, &tree, &Cancel::new())?;
/// let bytes = tar.finish()?;
/// assert_eq!(entries, 2); // below the root: etc, then etc/hostname
/// assert_eq!(&bytes[257..262], b"ustar");
/// assert!(bytes.starts_with(b"etc"));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// `InvalidInput` naming a path or symlink target that is not UTF-8, or a device node, FIFO or
/// socket (none of the formats here keep them); the writer's errors; `Cancelled`.
pub fn append_tree<W: Write>(
    tar: &mut TarWriter<W>,
    tree: &Tree,
    cancel: &Cancel,
) -> Result<usize, TreeError> {
    let mut first: HashMap<u32, String> = HashMap::new();
    let mut stack: Vec<(Vec<u8>, NodeId)> = Vec::new();
    let push_children = |stack: &mut Vec<(Vec<u8>, NodeId)>, path: &[u8], id: NodeId| {
        let kids: Vec<_> = tree.children(id).collect();
        for (name, child) in kids.into_iter().rev() {
            let mut p = path.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(name);
            stack.push((p, child));
        }
    };
    push_children(&mut stack, b"", NodeId::ROOT);
    let mut n = 0usize;
    while let Some((raw, id)) = stack.pop() {
        if cancel.is_cancelled() {
            return Err(TreeError::Build(BuildError::Cancelled));
        }
        let path = String::from_utf8(raw.clone()).map_err(|_| {
            invalid(format!(
                "{}: a tar entry name must be UTF-8",
                String::from_utf8_lossy(&raw)
            ))
        })?;
        let node = tree.node(id);
        let meta = tar_meta(&node.meta);
        let kind = match &node.kind {
            Kind::Dir(_) => {
                tar.append(&Entry {
                    path,
                    kind: TarKind::Dir,
                    meta,
                })?;
                n += 1;
                push_children(&mut stack, &raw, id);
                continue;
            }
            _ if first.contains_key(&id.0) => TarKind::HardLink(first[&id.0].clone()),
            Kind::File(f) => match &f.source {
                Source::Host(p) => TarKind::File(Data::Host(p.clone())),
                Source::Bytes(b) => TarKind::File(Data::Bytes(b)),
            },
            Kind::Symlink(target) => {
                TarKind::Symlink(String::from_utf8(target.clone()).map_err(|_| {
                    invalid(format!("{path}: a symlink target in a tar must be UTF-8"))
                })?)
            }
            _ => {
                return Err(invalid(format!(
                    "{path}: device nodes, FIFOs and sockets are not written to archives"
                )));
            }
        };
        if !matches!(kind, TarKind::HardLink(_)) {
            first.insert(id.0, path.clone());
        }
        tar.append(&Entry { path, kind, meta })?;
        n += 1;
    }
    Ok(n)
}

/// An entry's tar metadata: permission bits, numeric owner (no names), modification time.
pub(crate) fn tar_meta(m: &Meta) -> TarMeta {
    TarMeta {
        mode: u32::from(m.mode) & 0o7777,
        uid: u64::from(m.uid),
        gid: u64::from(m.gid),
        uname: String::new(),
        gname: String::new(),
        mtime: u64::try_from(m.mtime.secs).unwrap_or(0),
    }
}

/// An unnamed output in `dest`'s directory, written through `c`; returns it uncommitted.
pub(crate) fn packed(
    dest: &Path,
    c: Compression,
    body: impl FnOnce(
        archive::Encoder<BufWriter<std::fs::File>>,
    ) -> Result<archive::Encoder<BufWriter<std::fs::File>>, TreeError>,
) -> Result<AtomicFile, TreeError> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let out = AtomicFile::create(dest).map_err(io_err(dest))?;
    let file = out.try_clone_file().map_err(io_err(dest))?;
    let enc = c.encoder(BufWriter::with_capacity(1 << 20, file))?;
    let enc = body(enc)?;
    let buf = enc.finish().map_err(io_err(dest))?;
    buf.into_inner().map_err(|e| io_err(dest)(e.into_error()))?;
    Ok(out)
}

/// A growing host file as a squashfs target.
pub(crate) struct Growing<'f>(pub &'f std::fs::File);

impl imagetool_blockio::WriteAt for Growing<'_> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self.0, buf, offset)
    }

    fn capacity(&self) -> u64 {
        i64::MAX as u64
    }
}

/// `metadata.yaml` as lxc-image-metadata.nix writes it: `lib.generators.toYAML` is JSON (a
/// YAML subset), keys in attribute order; `creation_date` is `SOURCE_DATE_EPOCH` (upstream
/// writes 1), `architecture` the system's CPU (`x86_64` of `x86_64-linux`), no templates.
///
/// ```
/// use imagetool::tarball::lxc_metadata_yaml;
///
/// let os_release = "NAME=NixOS\nID=nixos\nVERSION_CODENAME=xantusia\n";
/// let y = lxc_metadata_yaml("x86_64-linux", "25.11", 315_532_800, os_release);
/// let v: serde_json::Value = serde_json::from_str(&y).unwrap(); // YAML's JSON subset
/// assert_eq!(v["architecture"], "x86_64");
/// assert_eq!(v["properties"]["description"], "NixOS xantusia 25.11 x86_64-linux");
/// ```
#[must_use]
pub fn lxc_metadata_yaml(system: &str, label: &str, epoch: i64, os_release: &str) -> String {
    let field = |k: &str| {
        os_release.lines().find_map(|l| {
            l.strip_prefix(k)
                .and_then(|r| r.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    let distro_name = field("NAME").unwrap_or_else(|| "NixOS".into());
    let distro_id = field("ID").unwrap_or_else(|| "nixos".into());
    let code_name = field("VERSION_CODENAME").unwrap_or_default();
    let arch = system.split('-').next().unwrap_or(system);
    let description = [distro_name.as_str(), code_name.as_str(), label, system]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let v = serde_json::json!({
        "architecture": arch,
        "creation_date": epoch.max(0),
        "properties": {
            "description": description,
            "os": distro_id,
            "release": code_name,
        },
        "templates": {},
    });
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_parse_and_files_follow_the_modules() {
        for v in TreeVariant::ALL {
            assert_eq!(v.name().parse::<TreeVariant>().unwrap(), v);
            assert!(!v.describe().is_empty());
            assert!("qemu".parse::<TreeVariant>().is_err());
        }
        assert_eq!(
            TreeVariant::Lxc.file_names("b"),
            ["tarball/b.tar.xz", "tarball/b.squashfs"]
        );
        assert_eq!(
            TreeVariant::Iso.file_names("nixos-1-x"),
            ["iso/nixos-1-x.iso"]
        );
        assert_eq!(
            TreeVariant::Docker.file_names_for("b", Codec::Zstd),
            ["tarball/b.tar.zst"]
        );
        assert_eq!(
            TreeVariant::Netboot.file_names("b"),
            ["bzImage", "initrd", "netboot.ipxe"]
        );
    }

    #[test]
    fn test_metadata_yaml_has_lxds_fields() {
        let y = lxc_metadata_yaml(
            "x86_64-linux",
            "25.11.1",
            1_700_000_000,
            "NAME=NixOS\nID=nixos\nVERSION_CODENAME=xantusia\n",
        );
        let v: serde_json::Value = serde_json::from_str(&y).unwrap();
        assert_eq!(v["architecture"], "x86_64");
        assert_eq!(v["creation_date"], 1_700_000_000);
        assert_eq!(
            v["properties"]["description"],
            "NixOS xantusia 25.11.1 x86_64-linux"
        );
        assert_eq!(v["properties"]["release"], "xantusia");
        assert_eq!(v["templates"], serde_json::json!({}));
    }
}
