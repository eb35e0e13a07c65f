//! The root tree of a NixOS image: what `nixos-install --no-bootloader` leaves in the target
//! (store, database, profiles, `/etc/NIXOS`), plus `configuration.nix`, a channel and extra
//! contents, as make-disk-image assembles it, deterministically.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use imagetool_fstree::{FileData, HostOptions, Kind, Meta, Node, NodeId, Source, Timestamp, Tree};

use crate::closure::Closure;
use crate::db::SCHEMA_VERSION;
use crate::scan::{self, Entry, EntryKind, Snapshot};
use crate::{Error, ErrorKind, PathInfo, Result, StorePath};

/// The group NixOS gives `/nix/store` (`nixbld`, gid 30000) with mode 1775; NixOS resets both
/// at boot, so this only matters before first boot.
pub const NIXBLD_GID: u32 = 30000;

/// One `contents` entry of make-disk-image: copy `source` to `target`, optionally with a mode
/// and an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The host file or directory; a `*` in its last component copies every match into
    /// `target`.
    pub source: PathBuf,
    /// The absolute path in the image.
    pub target: String,
    /// Permission bits for everything copied (rsync `--chmod`), when given.
    pub mode: Option<u16>,
    /// Owner and group, numeric or names looked up in the image's `/etc/passwd` and
    /// `/etc/group` (from the contents themselves). Root when absent.
    pub owner: Option<(String, String)>,
}

impl Content {
    /// Parses `SOURCE:TARGET[:MODE[:USER:GROUP]]`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming the text for a malformed entry.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("--contents {text:?}: {why}"),
            )
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode, owner) = match parts.as_slice() {
            [s, t] => (*s, *t, None, None),
            [s, t, m] => (*s, *t, Some(*m), None),
            [s, t, m, u, g] => (*s, *t, Some(*m), Some((u.to_string(), g.to_string()))),
            [_, _, _, _] => return Err(bad("user and group must be given together")),
            _ => return Err(bad("expected SOURCE:TARGET[:MODE[:USER:GROUP]]")),
        };
        if source.is_empty() {
            return Err(bad("empty source"));
        }
        if !target.starts_with('/') {
            return Err(bad("the target must be an absolute path"));
        }
        if target.split('/').any(|c| c == ".." || c == ".") {
            return Err(bad(
                "the target must not contain `.` or `..` (it would leave the root)",
            ));
        }
        if target.trim_matches('/').is_empty() {
            return Err(bad("the target must name something below /"));
        }
        let mode = match mode {
            None | Some("") => None,
            Some(m) => Some(
                u16::from_str_radix(m.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| bad("the mode must be octal, at most 7777"))?,
            ),
        };
        Ok(Self {
            source: PathBuf::from(source),
            target: target.to_string(),
            mode,
            owner,
        })
    }
}

/// What goes into the root tree besides the closure.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct RootOptions {
    /// The system toplevel (the profile `system-1-link` points at it).
    pub toplevel: Option<StorePath>,
    /// `registrationTime` of every path, and the time of every generated entry
    /// (`SOURCE_DATE_EPOCH`).
    pub timestamp: i64,
    /// Copied to `/etc/nixos/configuration.nix`.
    pub config_file: Option<PathBuf>,
    /// A channel store path: the root channel profile and `/root/.nix-defexpr/channels`.
    pub channel: Option<StorePath>,
    /// Extra files and directories.
    pub contents: Vec<Content>,
    /// The tree is the contents of `/nix/store` only (make-disk-image `onlyNixStore`).
    pub only_nix_store: bool,
    /// Check every store path's NAR hash and size against the registration (paths hashed while
    /// loading the closure are not hashed twice): [`root_tree`] does it before it returns,
    /// [`root_tree_checked`] leaves it to the caller: [`crate::scan::Witness`] hashes the
    /// bytes an image writer reads (one read), [`Snapshot::verify_hashes`] reads them itself.
    pub verify: bool,
}

/// Builds the image's root tree from `closure` (its store paths read from the closure's store
/// root) and `opts`. The database is generated into memory.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a toplevel or channel outside the closure, a duplicate or
/// clashing contents target, an unknown user or group; [`ErrorKind::Io`] naming the host path
/// that cannot be read; with [`RootOptions::verify`], [`ErrorKind::Corrupt`] naming a store
/// path whose contents do not match its registration.
pub fn root_tree(closure: &Closure, opts: &RootOptions) -> Result<Tree> {
    let (tree, snapshot) = root_tree_checked(closure, opts)?;
    snapshot.verify_hashes(&std::sync::atomic::AtomicBool::new(false))?;
    Ok(tree)
}

/// As [`root_tree`], also returning the [`Snapshot`] of every store file read: check it when
/// the image is written, to prove that no file changed in between. With
/// [`RootOptions::verify`], the NAR hashes are not compared yet: call
/// [`crate::scan::Witness::finish`] (a build hashes what its container writers read) or
/// [`Snapshot::verify_hashes`] before using the tree's output.
///
/// # Errors
/// As [`root_tree`], but for the hash comparison; [`ErrorKind::Unsupported`] naming a device
/// node, FIFO or socket in a store path (always).
pub fn root_tree_checked(closure: &Closure, opts: &RootOptions) -> Result<(Tree, Snapshot)> {
    let mut snapshot = Snapshot::default();
    for (what, p) in [("toplevel", &opts.toplevel), ("channel", &opts.channel)] {
        if let Some(p) = p
            && closure.get(p).is_none()
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("the {what} {p} is not in the closure"),
            ));
        }
    }
    let when = Timestamp::from_secs(opts.timestamp);
    let dir = |mode: u16| Meta::dir(mode).at(when);

    if opts.only_nix_store {
        if !opts.contents.is_empty() || opts.config_file.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "onlyNixStore images hold only the store: no contents or configuration file",
            ));
        }
        let mut tree = Tree::new(Meta::dir(0o1775).at(when));
        tree.meta_mut(NodeId::ROOT).gid = NIXBLD_GID;
        add_store(&mut tree, closure, b"", opts.verify, &mut snapshot)?;
        return Ok((tree, snapshot));
    }

    let mut tree = Tree::new(dir(0o755));
    let t = tree_err;
    for d in [&b"nix"[..], b"nix/var", b"nix/var/nix", b"nix/var/nix/db"] {
        tree.add_dir(d, dir(0o755)).map_err(t)?;
    }
    let store = tree.add_dir(b"nix/store", dir(0o1775)).map_err(t)?;
    tree.meta_mut(store).gid = NIXBLD_GID;
    add_store(
        &mut tree,
        closure,
        b"nix/store/",
        opts.verify,
        &mut snapshot,
    )?;

    add_db_and_profiles(&mut tree, closure, opts)?;
    add_etc_and_root(&mut tree, opts)?;
    add_contents(&mut tree, &opts.contents, when)?;
    Ok((tree, snapshot))
}

/// An fstree error building the root tree, as this crate's.
fn tree_err(e: imagetool_fstree::Error) -> Error {
    Error::new(ErrorKind::InvalidInput, e.to_string())
}

/// The Nix database (generated through a temporary file, held in memory), its schema version
/// and the profiles: what nixos-install leaves under /nix/var/nix.
fn add_db_and_profiles(tree: &mut Tree, closure: &Closure, opts: &RootOptions) -> Result<()> {
    let when = Timestamp::from_secs(opts.timestamp);
    let dir = |mode: u16| Meta::dir(mode).at(when);
    let file = |mode: u16| Meta::file(mode).at(when);
    let link = || Meta::symlink().at(when);
    let t = tree_err;
    let infos: Vec<PathInfo> = closure.infos().cloned().collect();
    let db = generate_db(&infos, opts.timestamp)?;
    tree.add_file(
        b"nix/var/nix/db/db.sqlite",
        Source::Bytes(db.into()),
        file(0o644),
    )
    .map_err(t)?;
    tree.add_file(
        b"nix/var/nix/db/schema",
        Source::Bytes(SCHEMA_VERSION.to_string().into_bytes().into()),
        file(0o644),
    )
    .map_err(t)?;
    for d in [
        &b"nix/var/nix/gcroots"[..],
        b"nix/var/nix/profiles",
        b"nix/var/nix/profiles/per-user",
        b"nix/var/nix/profiles/per-user/root",
    ] {
        tree.add_dir(d, dir(0o755)).map_err(t)?;
    }
    if let Some(top) = &opts.toplevel {
        tree.add_symlink(b"nix/var/nix/profiles/system", b"system-1-link", link())
            .map_err(t)?;
        tree.add_symlink(
            b"nix/var/nix/profiles/system-1-link",
            top.as_str().as_bytes(),
            link(),
        )
        .map_err(t)?;
    }
    Ok(())
}

/// /etc/NIXOS, /etc/nixos/configuration.nix when given, /root and the channel's links.
fn add_etc_and_root(tree: &mut Tree, opts: &RootOptions) -> Result<()> {
    let when = Timestamp::from_secs(opts.timestamp);
    let dir = |mode: u16| Meta::dir(mode).at(when);
    let file = |mode: u16| Meta::file(mode).at(when);
    let link = || Meta::symlink().at(when);
    let t = tree_err;
    tree.add_dir(b"etc", dir(0o755)).map_err(t)?;
    tree.add_file(b"etc/NIXOS", Source::Bytes(Vec::new().into()), file(0o644))
        .map_err(t)?;
    if let Some(cfg) = &opts.config_file {
        let meta = std::fs::metadata(cfg).map_err(|e| Error::io(cfg, e))?;
        if !meta.is_file() {
            return Err(Error::new(ErrorKind::InvalidInput, "not a regular file").with_path(cfg));
        }
        tree.add_dir(b"etc/nixos", dir(0o755)).map_err(t)?;
        tree.add_file(
            b"etc/nixos/configuration.nix",
            Source::Host(cfg.clone()),
            file(0o644),
        )
        .map_err(t)?;
    }
    tree.add_dir(b"root", dir(0o700)).map_err(t)?;
    if let Some(channel) = &opts.channel {
        let profiles = b"nix/var/nix/profiles/per-user/root/";
        tree.add_symlink(
            &[&profiles[..], b"channels"].concat(),
            b"channels-1-link",
            link(),
        )
        .map_err(t)?;
        tree.add_symlink(
            &[&profiles[..], b"channels-1-link"].concat(),
            channel.as_str().as_bytes(),
            link(),
        )
        .map_err(t)?;
        tree.add_dir(b"root/.nix-defexpr", dir(0o700)).map_err(t)?;
        tree.add_symlink(
            b"root/.nix-defexpr/channels",
            b"/nix/var/nix/profiles/per-user/root/channels",
            link(),
        )
        .map_err(t)?;
    }
    Ok(())
}

/// Adds every store path of `closure` under `prefix` as its NAR describes it ([`crate::scan`]):
/// directories, regular files (executable or not) and symlinks, whatever the store path's own
/// type, with Nix's canonical metadata (owner root, mode 0555 for directories and executable
/// files, 0444 for other files, all times 1). Hard links of the host store (what
/// `nix-store --optimise` leaves) become copies, as `nixos-install` writes them
/// (docs/formats.md). With `verify`, every path's NAR hash and size (unless computed while
/// loading) are checked against the registration; the stamps of every file read go to
/// `snapshot`.
fn add_store(
    tree: &mut Tree,
    closure: &Closure,
    prefix: &[u8],
    verify: bool,
    snapshot: &mut Snapshot,
) -> Result<()> {
    use rayon::prelude::*;
    let infos: Vec<&PathInfo> = closure.infos().collect();
    let scanned: Vec<Vec<Entry>> = infos
        .par_iter()
        .map(|info| {
            let host = closure.host_path(&info.path);
            scan::scan(&host)
        })
        .collect::<Result<_>>()?;
    let t = tree_err;
    let one = Timestamp::from_secs(1);
    for (info, entries) in infos.iter().zip(scanned) {
        let base = [prefix, info.path.base_name().as_bytes()].concat();
        for e in &entries {
            let dest = if e.rel.is_empty() {
                base.clone()
            } else {
                [&base[..], b"/", &e.rel[..]].concat()
            };
            match &e.kind {
                EntryKind::Dir => {
                    tree.add_dir(&dest, Meta::dir(0o555).at(one)).map_err(t)?;
                }
                EntryKind::File { executable, size } => {
                    let mode = if *executable { 0o555 } else { 0o444 };
                    tree.add(
                        &dest,
                        Node {
                            kind: Kind::File(FileData {
                                source: Source::Host(e.host.clone()),
                                size: *size,
                                data: None,
                            }),
                            meta: Meta::file(mode).at(one),
                        },
                    )
                    .map_err(t)?;
                }
                EntryKind::Symlink(target) => {
                    tree.add_symlink(&dest, target, Meta::symlink().at(one))
                        .map_err(t)?;
                }
            }
        }
        snapshot.extend(&entries);
        // The NAR hash is compared from the bytes the image's writers read (`scan::Witness`),
        // before any output is committed; a path hashed while the closure loaded was compared
        // then.
        if verify && !closure.was_hashed(&info.path) {
            snapshot.defer_hash(
                info.path.as_str(),
                &closure.host_path(&info.path),
                info.nar_hash,
                info.nar_size,
                entries,
            );
        }
    }
    Ok(())
}

fn generate_db(infos: &[PathInfo], timestamp: i64) -> Result<Vec<u8>> {
    // Built in memory: no scratch file or directory that an interrupted build could leave.
    crate::db::db_bytes(infos, timestamp)
}

fn add_contents(tree: &mut Tree, contents: &[Content], when: Timestamp) -> Result<()> {
    let t = tree_err;
    // Expand globs first, so duplicate targets are found whatever the order.
    let mut items: Vec<(PathBuf, String, &Content)> = Vec::new();
    for c in contents {
        for (src, target) in expand(c)? {
            items.push((src, target, c));
        }
    }
    let mut seen = BTreeSet::new();
    for (_, target, _) in &items {
        if !seen.insert(target.clone()) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("--contents: the target {target} is given twice"),
            ));
        }
    }
    let ids = Ids::from_contents(&items)?;
    for (src, target, c) in &items {
        let dest = target.trim_start_matches('/').as_bytes().to_vec();
        // Parents that do not exist yet are created root-owned, 0755, like rsync's mkdir -p.
        let comps: Vec<&[u8]> = dest
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        for n in 1..comps.len() {
            let parent = comps[..n].join(&b'/');
            if tree.lookup(&parent).is_none() {
                tree.add_dir(&parent, Meta::dir(0o755).at(when))
                    .map_err(t)?;
            }
        }
        let meta = std::fs::symlink_metadata(src).map_err(|e| Error::io(src, e))?;
        refuse_pseudo_fs(src)?;
        let first = tree.len();
        if meta.is_dir() {
            let opts = HostOptions {
                xattrs: false,
                ..HostOptions::default()
            };
            let top = tree.add_host_dir(&dest, src, &opts).map_err(t)?;
            if let Some(bad) = find_special(tree, top, src) {
                return Err(special_error(&bad));
            }
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(src).map_err(|e| Error::io(src, e))?;
            tree.add_symlink(
                &dest,
                target.as_os_str().as_bytes(),
                Meta::symlink().at(when),
            )
            .map_err(t)?;
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = (meta.permissions().mode() & 0o7777) as u16;
            // Holes stay holes (SEEK_DATA/SEEK_HOLE).
            let data = imagetool_fstree::host_file_data(src, &meta, true).map_err(t)?;
            tree.add(
                &dest,
                Node {
                    kind: Kind::File(data),
                    meta: Meta::file(mode).at(when),
                },
            )
            .map_err(t)?;
        } else {
            return Err(special_error(src));
        }
        let (uid, gid) = match &c.owner {
            Some((u, g)) => (ids.user(u)?, ids.group(g)?),
            None => (0, 0),
        };
        let Some(top) = tree.lookup(&dest) else {
            continue;
        };
        for id in std::iter::once(top).chain((first..tree.len()).map(|i| NodeId(i as u32))) {
            let is_link = matches!(tree.node(id).kind, Kind::Symlink(_));
            let m = tree.meta_mut(id);
            m.uid = uid;
            m.gid = gid;
            if let Some(mode) = c.mode
                && !is_link
            {
                m.mode = mode;
            }
            // Host mtimes are kept but clamped to SOURCE_DATE_EPOCH, as mke2fs -d does; atime
            // and ctime are the mtime (reading or copying the source changes nothing).
            if m.mtime > when {
                m.mtime = when;
            }
            m.atime = m.mtime;
            m.ctime = m.mtime;
        }
    }
    Ok(())
}

/// A FIFO, device node or socket as (or inside) a `--contents` source: refused, since an
/// image cannot hold what it would read from it.
fn special_error(path: &Path) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "--contents: a FIFO, device node or socket cannot be copied into an image",
    )
    .with_path(path)
}

/// The host path of the first FIFO, device node or socket below `id` (added from `host`).
fn find_special(tree: &Tree, id: NodeId, host: &Path) -> Option<PathBuf> {
    match &tree.node(id).kind {
        Kind::Dir(_) => tree.children(id).find_map(|(name, child)| {
            find_special(tree, child, &host.join(std::ffi::OsStr::from_bytes(name)))
        }),
        Kind::File(_) | Kind::Symlink(_) => None,
        _ => Some(host.to_path_buf()),
    }
}

/// Files of /proc and /sys report sizes that are not their contents (usually 0): refused.
fn refuse_pseudo_fs(src: &Path) -> Result<()> {
    const PROC_SUPER_MAGIC: u64 = 0x9fa0;
    const SYSFS_MAGIC: u64 = 0x6265_6572;
    let Ok(st) = rustix::fs::statfs(src) else {
        return Ok(());
    };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let fs_type = st.f_type as u64;
    if fs_type == PROC_SUPER_MAGIC || fs_type == SYSFS_MAGIC {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "--contents: files of /proc and /sys are not what their sizes say; copy them to a \
             regular file first",
        )
        .with_path(src));
    }
    Ok(())
}

/// Expands a `*` in the last component of the source: every match is copied into the target
/// directory under its own name.
fn expand(c: &Content) -> Result<Vec<(PathBuf, String)>> {
    let name = c
        .source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains('*') {
        return Ok(vec![(c.source.clone(), c.target.clone())]);
    }
    let dir = c
        .source
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if glob_match(&name, &n) {
            out.push((
                entry.path(),
                format!("{}/{n}", c.target.trim_end_matches('/')),
            ));
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--contents: the glob matches nothing",
        )
        .with_path(&c.source));
    }
    Ok(out)
}

/// `*` matches any run of characters (shell-style, no `/`); a leading dot must be explicit.
fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(x) => x,
        None => return name.is_empty(),
    };
    let Some(mut tail) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return tail.is_empty();
    };
    for m in middle {
        match tail.find(m) {
            Some(i) => tail = &tail[i + m.len()..],
            None => return false,
        }
    }
    tail.len() >= last.len() && tail.ends_with(last)
}

/// User and group names from the `/etc/passwd` and `/etc/group` among the contents.
struct Ids {
    users: BTreeMap<String, u32>,
    groups: BTreeMap<String, u32>,
}

impl Ids {
    fn from_contents(items: &[(PathBuf, String, &Content)]) -> Result<Self> {
        let read = |target: &str, id_field: usize| -> Result<BTreeMap<String, u32>> {
            let mut map = BTreeMap::from([("root".to_string(), 0)]);
            if let Some((src, _, _)) = items.iter().find(|(_, t, _)| t == target) {
                let text = std::fs::read_to_string(src).map_err(|e| Error::io(src, e))?;
                for line in text.lines() {
                    let f: Vec<&str> = line.split(':').collect();
                    if let (Some(name), Some(id)) = (f.first(), f.get(id_field))
                        && let Ok(id) = id.parse()
                    {
                        map.insert((*name).to_string(), id);
                    }
                }
            }
            Ok(map)
        };
        Ok(Self {
            users: read("/etc/passwd", 2)?,
            groups: read("/etc/group", 2)?,
        })
    }

    fn user(&self, u: &str) -> Result<u32> {
        Self::resolve(&self.users, u, "user", "/etc/passwd")
    }

    fn group(&self, g: &str) -> Result<u32> {
        Self::resolve(&self.groups, g, "group", "/etc/group")
    }

    fn resolve(map: &BTreeMap<String, u32>, name: &str, what: &str, file: &str) -> Result<u32> {
        if let Ok(id) = name.parse() {
            return Ok(id);
        }
        map.get(name).copied().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--contents: unknown {what} {name:?} (give a number, or include {file} in \
                     the contents)"
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_content_parse_forms() {
        let c = Content::parse("/a:/b").unwrap();
        assert_eq!((c.mode, c.owner), (None, None));
        let c = Content::parse("/a:/b:0600:alice:users").unwrap();
        assert_eq!(c.mode, Some(0o600));
        assert_eq!(c.owner, Some(("alice".into(), "users".into())));
        for bad in [
            "/a",
            "/a:b",
            "/a:/b:999",
            "/a:/b:0644:alice",
            ":/b",
            "/a:/../x",
            "/a:/",
        ] {
            assert!(Content::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_glob_match() {
        assert!(glob_match("*", "abc"));
        assert!(!glob_match("*", ".hidden"));
        assert!(glob_match("*.conf", "a.conf"));
        assert!(!glob_match("*.conf", "a.confx"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXc"));
        assert!(glob_match("abc", "abc"));
    }
}
