//! A file tree description (types, modes, owners, contents, symlink targets, hard-link groups,
//! xattrs) and its comparison.
//!
//! A [`Tree`] comes from a host directory ([`Tree::from_dir`]), from an ext4 image
//! ([`crate::ext4::read_tree`]), or is written by hand with the builder methods. [`Tree::diff`]
//! lists every difference, one line each, naming the path and both values.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, ErrorKind, Result, hex};

/// What an entry is, with what defines its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes whose contents hash to `sha256`.
    File {
        /// Size in bytes.
        size: u64,
        /// SHA-256 of the contents.
        sha256: [u8; 32],
    },
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// A character device.
    CharDev {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDev {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
}

impl Kind {
    /// A regular file with these contents.
    #[must_use]
    pub fn file(contents: &[u8]) -> Self {
        Self::File {
            size: contents.len() as u64,
            sha256: Sha256::digest(contents).into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Dir => "directory".into(),
            Self::File { size, sha256 } => {
                format!("file of {size} bytes, sha256 {}", hex(&sha256[..8]))
            }
            Self::Symlink(t) => format!("symlink to {:?}", String::from_utf8_lossy(t)),
            Self::CharDev { major, minor } => format!("char device {major}:{minor}"),
            Self::BlockDev { major, minor } => format!("block device {major}:{minor}"),
            Self::Fifo => "fifo".into(),
            Self::Socket => "socket".into(),
        }
    }
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Type and contents.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// The link count as recorded (for non-directories: the number of names of the inode).
    pub nlink: u32,
    /// An identity shared by the names of one inode (the inode number, or a builder id).
    pub inode: u64,
    /// Extended attributes.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// A file tree: absolute paths (`/`, `/a`, `/a/b`) in byte order → entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
    next_id: u64,
}

/// What [`Tree::diff`] compares.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Compare uid/gid.
    pub owners: bool,
    /// Compare permission bits.
    pub modes: bool,
    /// Compare extended attributes.
    pub xattrs: bool,
    /// Compare the root directory's own metadata.
    pub root: bool,
    /// Paths (and everything under them) left out on both sides, e.g. `/lost+found`.
    pub ignore: Vec<String>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            owners: true,
            modes: true,
            xattrs: false,
            root: true,
            ignore: vec!["/lost+found".into()],
        }
    }
}

impl Tree {
    /// An empty tree with a root directory (mode 0755, root:root).
    #[must_use]
    pub fn new() -> Self {
        let mut t = Self::default();
        t.insert("/", Kind::Dir, 0o755);
        t
    }

    /// The entries, in path order.
    #[must_use]
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// One entry.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Adds or replaces an entry (a fresh inode, owner root:root, link count 1 or 2 for dirs).
    pub fn insert(&mut self, path: &str, kind: Kind, mode: u32) -> &mut Entry {
        self.next_id += 1;
        let nlink = if kind == Kind::Dir { 2 } else { 1 };
        let entry = Entry {
            kind,
            mode,
            uid: 0,
            gid: 0,
            nlink,
            inode: self.next_id,
            xattrs: BTreeMap::new(),
        };
        match self.entries.entry(path.to_string()) {
            std::collections::btree_map::Entry::Occupied(mut o) => {
                o.insert(entry);
                o.into_mut()
            }
            std::collections::btree_map::Entry::Vacant(v) => v.insert(entry),
        }
    }

    /// Builder: a directory.
    #[must_use]
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.insert(path, Kind::Dir, mode);
        self
    }

    /// Builder: a regular file.
    #[must_use]
    pub fn file(mut self, path: &str, mode: u32, contents: &[u8]) -> Self {
        self.insert(path, Kind::file(contents), mode);
        self
    }

    /// Builder: a symlink (mode 0777).
    #[must_use]
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.insert(path, Kind::Symlink(target.as_bytes().to_vec()), 0o777);
        self
    }

    /// Builder: another name for the inode of `existing` (a hard link).
    ///
    /// # Panics
    /// When `existing` is not in the tree (a mistake in the test).
    #[must_use]
    pub fn hardlink(mut self, path: &str, existing: &str) -> Self {
        let Some(e) = self.entries.get(existing).cloned() else {
            panic!("hardlink {path}: {existing} is not in the tree");
        };
        let nlink = e.nlink + 1;
        for x in self.entries.values_mut().filter(|x| x.inode == e.inode) {
            x.nlink = nlink;
        }
        self.entries.insert(path.to_string(), Entry { nlink, ..e });
        self
    }

    /// Builder: sets the owner of an entry.
    ///
    /// # Panics
    /// When `path` is not in the tree (a mistake in the test).
    #[must_use]
    pub fn owner(mut self, path: &str, uid: u32, gid: u32) -> Self {
        let Some(e) = self.entries.get_mut(path) else {
            panic!("owner: {path} is not in the tree");
        };
        e.uid = uid;
        e.gid = gid;
        self
    }

    /// Reads a host directory tree (without following symlinks): contents are hashed, inode
    /// numbers give the hard-link groups, xattrs are read with `llistxattr`.
    ///
    /// # Errors
    /// `Io` naming the path that could not be read.
    pub fn from_dir(root: &Path) -> Result<Self> {
        let mut tree = Self::default();
        tree.add_host(root, "/")?;
        // Link counts of non-directories: the number of names inside the tree.
        let mut names: BTreeMap<u64, u32> = BTreeMap::new();
        for e in tree.entries.values().filter(|e| e.kind != Kind::Dir) {
            *names.entry(e.inode).or_default() += 1;
        }
        for e in tree.entries.values_mut().filter(|e| e.kind != Kind::Dir) {
            e.nlink = names[&e.inode];
        }
        Ok(tree)
    }

    fn add_host(&mut self, host: &Path, path: &str) -> Result<()> {
        let md = std::fs::symlink_metadata(host).map_err(|e| Error::io(host, e))?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            let (size, sha256) = hash_file(host)?;
            Kind::File { size, sha256 }
        } else if ft.is_symlink() {
            let t = std::fs::read_link(host).map_err(|e| Error::io(host, e))?;
            Kind::Symlink(t.as_os_str().as_bytes().to_vec())
        } else {
            use std::os::unix::fs::FileTypeExt;
            let (major, minor) = split_dev(md.rdev());
            if ft.is_char_device() {
                Kind::CharDev { major, minor }
            } else if ft.is_block_device() {
                Kind::BlockDev { major, minor }
            } else if ft.is_fifo() {
                Kind::Fifo
            } else {
                Kind::Socket
            }
        };
        let entry = Entry {
            kind: kind.clone(),
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            nlink: md.nlink() as u32,
            inode: md.ino(),
            xattrs: host_xattrs(host)?,
        };
        self.entries.insert(path.to_string(), entry);
        if kind == Kind::Dir {
            let mut children: Vec<_> = std::fs::read_dir(host)
                .map_err(|e| Error::io(host, e))?
                .map(|d| d.map(|d| d.file_name()))
                .collect::<std::io::Result<_>>()
                .map_err(|e| Error::io(host, e))?;
            children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for name in children {
                let child = join(path, &name.to_string_lossy());
                self.add_host(&host.join(&name), &child)?;
            }
        }
        Ok(())
    }

    /// Every difference between `self` (expected) and `actual`, one line each, in path order.
    #[must_use]
    pub fn diff(&self, actual: &Self, opts: &CompareOptions) -> Vec<String> {
        let ignored = |p: &str| {
            opts.ignore.iter().any(|i| {
                p == i
                    || p.strip_prefix(i.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
        };
        let mut out = Vec::new();
        let paths: BTreeSet<&String> = self.entries.keys().chain(actual.entries.keys()).collect();
        for p in paths.into_iter().filter(|p| !ignored(p)) {
            let (e, a) = match (self.entries.get(p), actual.entries.get(p)) {
                (Some(e), Some(a)) => (e, a),
                (Some(e), None) => {
                    out.push(format!("{p}: missing (expected {})", e.kind.describe()));
                    continue;
                }
                (None, Some(a)) => {
                    out.push(format!("{p}: unexpected {}", a.kind.describe()));
                    continue;
                }
                (None, None) => continue,
            };
            if e.kind != a.kind {
                out.push(format!(
                    "{p}: expected {}, found {}",
                    e.kind.describe(),
                    a.kind.describe()
                ));
            }
            if p == "/" && !opts.root {
                continue;
            }
            if opts.modes && e.mode != a.mode {
                out.push(format!(
                    "{p}: mode expected {:04o}, found {:04o}",
                    e.mode, a.mode
                ));
            }
            if opts.owners && (e.uid, e.gid) != (a.uid, a.gid) {
                out.push(format!(
                    "{p}: owner expected {}:{}, found {}:{}",
                    e.uid, e.gid, a.uid, a.gid
                ));
            }
            if e.kind != Kind::Dir && e.nlink != a.nlink {
                out.push(format!(
                    "{p}: link count expected {}, found {}",
                    e.nlink, a.nlink
                ));
            }
            if opts.xattrs && e.xattrs != a.xattrs {
                out.push(format!(
                    "{p}: xattrs expected {}, found {}",
                    show_xattrs(&e.xattrs),
                    show_xattrs(&a.xattrs)
                ));
            }
        }
        // Hard-link groups: for every name, the other names of its inode.
        let (eg, ag) = (self.link_groups(&ignored), actual.link_groups(&ignored));
        for (p, eset) in &eg {
            if let Some(aset) = ag.get(p)
                && eset != aset
            {
                out.push(format!(
                    "{p}: hard-link group expected {eset:?}, found {aset:?}"
                ));
            }
        }
        out
    }

    /// For every non-directory name, the sorted list of all names of its inode.
    fn link_groups(&self, ignored: &dyn Fn(&str) -> bool) -> BTreeMap<String, Vec<String>> {
        let mut by_inode: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for (p, e) in &self.entries {
            if e.kind != Kind::Dir && !ignored(p) {
                by_inode.entry(e.inode).or_default().push(p.clone());
            }
        }
        let mut out = BTreeMap::new();
        for names in by_inode.into_values() {
            for n in &names {
                out.insert(n.clone(), names.clone());
            }
        }
        out
    }

    /// `Ok` when [`Tree::diff`] finds nothing, else a `Mismatch` error listing every difference.
    ///
    /// # Errors
    /// `Mismatch` with one line per difference.
    pub fn compare(&self, actual: &Self, opts: &CompareOptions, what: &str) -> Result<()> {
        let d = self.diff(actual, opts);
        if d.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Mismatch,
                what,
                format!("{} difference(s):\n  {}", d.len(), d.join("\n  ")),
            ))
        }
    }
}

/// `parent` + `/` + `name`, for tree paths.
#[must_use]
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn show_xattrs(x: &BTreeMap<String, Vec<u8>>) -> String {
    let parts: Vec<String> = x
        .iter()
        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Size and SHA-256 of a host file.
///
/// # Errors
/// `Io` naming the file.
pub fn hash_file(path: &Path) -> Result<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, h.finalize().into()))
}

/// glibc's `major`/`minor` split of a `dev_t`.
#[must_use]
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

fn host_xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(out),
        Err(e) => return Err(Error::io(path, e.into())),
    };
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..])
            .map_err(|e| Error::io(path, e.into()))?;
        value.truncate(len);
        out.insert(name, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_diff_report_each_difference() {
        let expected = Tree::new()
            .dir("/d", 0o755)
            .file("/d/a", 0o644, b"hello")
            .hardlink("/h", "/d/a")
            .symlink("/l", "d/a");
        assert_eq!(expected.get("/h").unwrap().nlink, 2);
        assert_eq!(expected.get("/d/a").unwrap().nlink, 2);
        assert!(
            expected
                .diff(&expected, &CompareOptions::default())
                .is_empty()
        );

        let actual = Tree::new()
            .dir("/d", 0o700)
            .file("/d/a", 0o644, b"hellO")
            .file("/h", 0o644, b"hello")
            .symlink("/l", "d/b")
            .file("/extra", 0o600, b"")
            .owner("/extra", 1, 2);
        let d = expected.diff(&actual, &CompareOptions::default());
        let all = d.join("\n");
        assert!(all.contains("/d: mode expected 0755, found 0700"), "{all}");
        assert!(all.contains("/d/a: expected file of 5 bytes"), "{all}");
        assert!(
            all.contains("/l: expected symlink to \"d/a\", found symlink to \"d/b\""),
            "{all}"
        );
        assert!(all.contains("/extra: unexpected file"), "{all}");
        assert!(all.contains("/h: link count expected 2, found 1"), "{all}");
        assert!(all.contains("/h: hard-link group expected"), "{all}");
        let err = expected
            .compare(&actual, &CompareOptions::default(), "test")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Mismatch);
    }

    #[test]
    fn reads_a_host_directory() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::fs::write(r.join("sub/f"), b"data").unwrap();
        std::fs::hard_link(r.join("sub/f"), r.join("g")).unwrap();
        std::os::unix::fs::symlink("sub/f", r.join("s")).unwrap();
        let t = Tree::from_dir(r).unwrap();
        let f = t.get("/sub/f").unwrap();
        assert_eq!(f.kind, Kind::file(b"data"));
        assert_eq!(f.nlink, 2);
        assert_eq!(t.get("/g").unwrap().inode, f.inode);
        assert_eq!(t.get("/s").unwrap().kind, Kind::Symlink(b"sub/f".to_vec()));
        assert_eq!(t.get("/").unwrap().kind, Kind::Dir);
    }

    #[test]
    fn splits_device_numbers() {
        assert_eq!(split_dev(0x0103), (1, 3));
        assert_eq!(split_dev((259 << 8) | 0xff | (0x1_00 << 12)), (259, 0x1ff));
    }
}
