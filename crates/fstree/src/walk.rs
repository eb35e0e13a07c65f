//! Building a tree from a host directory.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::{
    Error, ErrorKind, FileData, Kind, Meta, Node, NodeId, Overrides, Source, Timestamp, Tree,
    apply_meta,
};

/// How a host directory is read.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Read extended attributes (`llistxattr`/`lgetxattr`).
    pub xattrs: bool,
    /// Find holes in sparse files with `SEEK_DATA`/`SEEK_HOLE`, so they stay holes.
    pub sparse: bool,
    /// Rewrites applied to every entry read.
    pub overrides: Overrides,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            xattrs: true,
            sparse: true,
            overrides: Overrides::default(),
        }
    }
}

pub(crate) struct Walker<'a> {
    opts: &'a HostOptions,
    inodes: HashMap<(u64, u64), NodeId>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(opts: &'a HostOptions) -> Self {
        Self {
            opts,
            inodes: HashMap::new(),
        }
    }

    pub(crate) fn meta(&self, path: &Path, st: &Metadata) -> crate::Result<Meta> {
        // Reading is not changing: atime moves when the source is read, ctime when it is
        // copied or chmod'ed; an image must depend on neither. Both are taken from mtime, as
        // tar and squashfs do (docs/formats.md).
        let mtime = Timestamp {
            secs: st.mtime(),
            nanos: st.mtime_nsec().clamp(0, 999_999_999) as u32,
        };
        let mut m = Meta {
            uid: st.uid(),
            gid: st.gid(),
            mode: (st.mode() & 0o7777) as u16,
            atime: mtime,
            mtime,
            ctime: mtime,
            xattrs: Default::default(),
        };
        if self.opts.xattrs {
            m.xattrs = read_xattrs(path)?;
        }
        apply_meta(&mut m, &self.opts.overrides);
        Ok(m)
    }

    pub(crate) fn walk_into(
        &mut self,
        tree: &mut Tree,
        dir_id: NodeId,
        dir: &Path,
    ) -> crate::Result<()> {
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "read directory", e))?;
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(dir, "read directory", e))?;
            names.push(ent.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let st = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, "stat", e))?;
            let key = (st.dev(), st.ino());
            let tree_path = path.as_os_str().as_bytes();
            if !st.is_dir()
                && st.nlink() > 1
                && let Some(&id) = self.inodes.get(&key)
            {
                tree.link_to(dir_id, name.as_bytes(), id, tree_path)?;
                continue;
            }
            let meta = self.meta(&path, &st)?;
            let ft = st.file_type();
            let kind = if ft.is_dir() {
                Kind::Dir(Default::default())
            } else if ft.is_file() {
                Kind::File(self.file_data(&path, &st)?)
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&path).map_err(|e| Error::io(&path, "read link", e))?;
                Kind::Symlink(t.as_os_str().as_bytes().to_vec())
            } else if ft.is_char_device() || ft.is_block_device() {
                let (major, minor) = split_dev(st.rdev());
                if ft.is_char_device() {
                    Kind::CharDev { major, minor }
                } else {
                    Kind::BlockDev { major, minor }
                }
            } else if ft.is_fifo() {
                Kind::Fifo
            } else if ft.is_socket() {
                Kind::Socket
            } else {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    path.display().to_string(),
                    "unknown file type",
                ));
            };
            let is_dir = matches!(kind, Kind::Dir(_));
            let id = tree.insert(dir_id, name.as_bytes(), Node { kind, meta }, tree_path)?;
            if is_dir {
                self.walk_into(tree, id, &path)?;
            } else if st.nlink() > 1 {
                self.inodes.insert(key, id);
            }
        }
        Ok(())
    }

    fn file_data(&self, path: &Path, st: &Metadata) -> crate::Result<FileData> {
        host_file_data(path, st, self.opts.sparse)
    }
}

/// The [`FileData`] of the regular host file `path` (`st` its metadata), its holes found with
/// `SEEK_DATA`/`SEEK_HOLE` when `sparse`.
///
/// # Errors
/// `Io` naming the path when it cannot be opened or its holes cannot be found.
pub fn host_file_data(path: &Path, st: &Metadata, sparse: bool) -> crate::Result<FileData> {
    let size = st.len();
    let mut data = None;
    // Only a file with fewer allocated bytes than its size can have holes.
    if sparse && size > 0 && st.blocks().saturating_mul(512) < size {
        let f = imagetool_blockio::open_regular(path).map_err(|e| Error::io(path, "open", e))?;
        data = Some(data_ranges(&f, size).map_err(|e| Error::io(path, "find holes", e))?);
    }
    Ok(FileData {
        source: Source::Host(path.to_path_buf()),
        size,
        data,
    })
}

/// The data ranges of `f` (size `size`) by `SEEK_DATA`/`SEEK_HOLE`.
fn data_ranges(f: &File, size: u64) -> std::io::Result<Vec<std::ops::Range<u64>>> {
    use rustix::fs::{SeekFrom, seek};
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(f, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = seek(f, SeekFrom::Hole(start))?.min(size);
        out.push(start..end);
        pos = end;
    }
    Ok(out)
}

/// Splits a Linux `dev_t` into (major, minor) as glibc encodes it.
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

fn read_xattrs(path: &Path) -> crate::Result<std::collections::BTreeMap<Vec<u8>, Vec<u8>>> {
    use rustix::io::Errno;
    let mut out = std::collections::BTreeMap::new();
    let n = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(out),
        Err(e) => return Err(Error::io(path, "list xattrs", e.into())),
    };
    if n == 0 {
        return Ok(out);
    }
    let mut names = vec![0u8; n];
    let n = rustix::fs::llistxattr(path, &mut names[..])
        .map_err(|e| Error::io(path, "list xattrs", e.into()))?;
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let cname = std::ffi::OsStr::from_bytes(name);
        let len = rustix::fs::lgetxattr_query(path, cname)
            .map_err(|e| Error::io(path, "read xattr", e.into()))?;
        let mut v = vec![0u8; len];
        let len = rustix::fs::lgetxattr(path, cname, &mut v[..])
            .map_err(|e| Error::io(path, "read xattr", e.into()))?;
        v.truncate(len);
        out.insert(name.to_vec(), v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn test_host_walk_finds_links_holes_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("b"), b"hello").unwrap();
        std::fs::hard_link(d.join("b"), d.join("a")).unwrap();
        let mut f = File::create(d.join("sparse")).unwrap();
        f.set_len(8 << 20).unwrap();
        f.write_all(b"x").unwrap();
        std::os::unix::fs::symlink("b", d.join("c")).unwrap();
        let t = Tree::from_host_dir(d, &HostOptions::default()).unwrap();
        let names: Vec<_> = t.children(NodeId::ROOT).map(|(n, _)| n.to_vec()).collect();
        assert_eq!(
            names,
            [
                b"a".to_vec(),
                b"b".to_vec(),
                b"c".to_vec(),
                b"sparse".to_vec()
            ]
        );
        assert_eq!(t.lookup(b"a"), t.lookup(b"b"));
        let Kind::File(fd) = &t.node(t.lookup(b"sparse").unwrap()).kind else {
            panic!()
        };
        let r = fd.data_ranges();
        assert!(
            r.len() == 1 && r[0].start == 0 && r[0].end < 1 << 20,
            "{r:?}"
        );
        assert_eq!(
            t.node(t.lookup(b"c").unwrap()).kind,
            Kind::Symlink(b"b".to_vec())
        );
    }

    #[test]
    fn test_host_walk_rejects_non_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        let e = Tree::from_host_dir(&dir.path().join("f"), &HostOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("not a directory"));
    }

    #[test]
    fn test_split_dev_matches_glibc() {
        assert_eq!(split_dev(0x0801), (8, 1));
        assert_eq!(
            split_dev((300u64 << 8) | 0x12 | (0x345u64 << 12 << 8)),
            (300, 0x34512)
        );
    }
}
