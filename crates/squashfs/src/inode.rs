//! Inodes and directories: the post-order pass that writes the inode and directory tables.

use std::collections::{BTreeMap, HashMap};

use imagetool_fstree::{Kind, Meta, NodeId, Tree};

use crate::compress::Codec;
use crate::data::FileLoc;
use crate::meta::{META_SIZE, MetaWriter};
use crate::{Error, ErrorKind, Result};

pub(crate) const DIR: u16 = 1;
const FILE: u16 = 2;
const SYMLINK: u16 = 3;
const BLKDEV: u16 = 4;
const CHRDEV: u16 = 5;
const FIFO: u16 = 6;
const SOCKET: u16 = 7;
/// Extended types are the basic ones plus 7.
const EXT: u16 = 7;
const NO_XATTR: u32 = u32::MAX;
const NO_FRAGMENT: u32 = u32::MAX;
const NAME_MAX: usize = 256;

/// What the pass produced.
pub(crate) struct Tables {
    pub inodes: Vec<u8>,
    pub dirs: Vec<u8>,
    pub root_ref: u64,
    pub inode_count: u32,
    /// Inode reference by inode number - 1 (the export table).
    pub export: Vec<u64>,
    pub ids: Vec<u32>,
    /// Distinct xattr sets, in the order of their ids.
    pub xattr_sets: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
}

struct Entry<'t> {
    name: &'t [u8],
    iref: u64,
    ino: u32,
    typ: u16,
}

struct Frame<'t> {
    dir: NodeId,
    ino: u32,
    path: Vec<u8>,
    kids: Vec<(&'t [u8], NodeId)>,
    numbers: Vec<u32>,
    next: usize,
    entries: Vec<Entry<'t>>,
    subdirs: u32,
}

struct Ctx<'t> {
    tree: &'t Tree,
    locs: &'t [Option<FileLoc>],
    inodes: MetaWriter<'t>,
    dirs: MetaWriter<'t>,
    export: Vec<u64>,
    ids: Vec<u32>,
    id_index: HashMap<u32, u16>,
    xattr_sets: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
    xattr_index: HashMap<BTreeMap<Vec<u8>, Vec<u8>>, u32>,
    xattrs: bool,
    block_size: u32,
}

/// Writes every inode and directory of `tree`. `hard_links`: names of one node share one
/// inode (else each name gets its own, as `mksquashfs -no-hardlinks`).
pub(crate) fn write_tables<'t>(
    tree: &'t Tree,
    locs: &'t [Option<FileLoc>],
    codec: &'t Codec,
    hard_links: bool,
    xattrs: bool,
    block_size: u32,
) -> Result<Tables> {
    // Inode numbers: the root is 1, then each directory's entries in order, directories
    // breadth first, so that the entries of one directory have neighbouring numbers.
    let mut numbers: Vec<Vec<u32>> = vec![Vec::new(); tree.len()];
    let mut node_no = vec![0u32; tree.len()];
    let mut links = vec![0u32; tree.len()];
    let mut next: u32 = 1;
    node_no[0] = 1;
    let mut queue = std::collections::VecDeque::from([NodeId::ROOT]);
    while let Some(d) = queue.pop_front() {
        let mut nums = Vec::new();
        for (_, child) in tree.children(d) {
            let i = child.0 as usize;
            links[i] = links[i].saturating_add(1);
            let is_dir = matches!(tree.node(child).kind, Kind::Dir(_));
            if is_dir || !hard_links || node_no[i] == 0 {
                next = next.checked_add(1).ok_or_else(|| {
                    Error::new(ErrorKind::Overflow, "inodes", "more than 2^32 inodes")
                })?;
                node_no[i] = next;
                if is_dir {
                    queue.push_back(child);
                }
            }
            nums.push(node_no[i]);
        }
        numbers[d.0 as usize] = nums;
    }
    let inode_count = next;

    let mut cx = Ctx {
        tree,
        locs,
        inodes: MetaWriter::new(codec),
        dirs: MetaWriter::new(codec),
        export: vec![0; inode_count as usize],
        ids: Vec::new(),
        id_index: HashMap::new(),
        xattr_sets: Vec::new(),
        xattr_index: HashMap::new(),
        xattrs,
        block_size,
    };
    let mut written: Vec<Option<u64>> = vec![None; if hard_links { tree.len() } else { 0 }];
    let frame = |dir: NodeId, ino: u32, path: Vec<u8>, numbers: &mut Vec<Vec<u32>>| Frame {
        dir,
        ino,
        path,
        kids: tree.children(dir).collect(),
        numbers: std::mem::take(&mut numbers[dir.0 as usize]),
        next: 0,
        entries: Vec::new(),
        subdirs: 0,
    };
    let mut stack = vec![frame(NodeId::ROOT, 1, Vec::new(), &mut numbers)];
    let mut root_ref = 0;
    while let Some(top) = stack.last_mut() {
        if top.next < top.kids.len() {
            let (name, child) = top.kids[top.next];
            let ino = top.numbers[top.next];
            top.next += 1;
            if name.len() > NAME_MAX {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    path_of(&top.path, name),
                    format!("name of {} bytes (squashfs allows {NAME_MAX})", name.len()),
                ));
            }
            let node = tree.node(child);
            if let Kind::Dir(_) = node.kind {
                top.subdirs += 1;
                let p = join(&top.path, name);
                stack.push(frame(child, ino, p, &mut numbers));
                continue;
            }
            let i = child.0 as usize;
            let nlink = if hard_links { links[i] } else { 1 };
            let (iref, typ) = match written.get(i).copied().flatten() {
                Some(r) => (r, basic_type(&node.kind)),
                None => {
                    let path = join(&top.path, name);
                    let r = cx.non_dir(child, ino, nlink, &path)?;
                    if hard_links {
                        written[i] = Some(r);
                    }
                    (r, basic_type(&node.kind))
                }
            };
            top.entries.push(Entry {
                name,
                iref,
                ino,
                typ,
            });
        } else {
            let Some(done) = stack.pop() else { break };
            // The root's parent is one past the last inode, as mksquashfs writes it.
            let parent_ino = stack.last().map_or(inode_count + 1, |p| p.ino);
            let ino = done.ino;
            let iref = cx.dir(&done, ino, parent_ino)?;
            match stack.last_mut() {
                Some(p) => {
                    let name = p.kids[p.next - 1].0;
                    p.entries.push(Entry {
                        name,
                        iref,
                        ino,
                        typ: DIR,
                    });
                }
                None => root_ref = iref,
            }
        }
    }
    let (inodes, _) = cx.inodes.finish()?;
    let (dirs, _) = cx.dirs.finish()?;
    Ok(Tables {
        inodes,
        dirs,
        root_ref,
        inode_count,
        export: cx.export,
        ids: cx.ids,
        xattr_sets: cx.xattr_sets,
    })
}

fn basic_type(k: &Kind) -> u16 {
    match k {
        Kind::Dir(_) => DIR,
        Kind::File(_) => FILE,
        Kind::Symlink(_) => SYMLINK,
        Kind::BlockDev { .. } => BLKDEV,
        Kind::CharDev { .. } => CHRDEV,
        Kind::Fifo => FIFO,
        Kind::Socket => SOCKET,
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn path_of(dir: &[u8], name: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(&join(dir, name)))
}

fn shown(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

impl Ctx<'_> {
    fn id(&mut self, id: u32, path: &[u8]) -> Result<u16> {
        if let Some(&i) = self.id_index.get(&id) {
            return Ok(i);
        }
        let i = u16::try_from(self.ids.len()).map_err(|_| {
            Error::new(
                ErrorKind::Unsupported,
                shown(path),
                "more than 65536 distinct owner ids",
            )
        })?;
        self.ids.push(id);
        self.id_index.insert(id, i);
        Ok(i)
    }

    fn xattr(&mut self, meta: &Meta, path: &[u8]) -> Result<u32> {
        if !self.xattrs || meta.xattrs.is_empty() {
            return Ok(NO_XATTR);
        }
        for name in meta.xattrs.keys() {
            if crate::xattr::prefix(name).is_none() {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    shown(path),
                    format!(
                        "extended attribute {:?}: squashfs keeps only user., trusted. and \
                         security. attributes",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
        }
        if let Some(&i) = self.xattr_index.get(&meta.xattrs) {
            return Ok(i);
        }
        let i = self.xattr_sets.len() as u32;
        self.xattr_sets.push(meta.xattrs.clone());
        self.xattr_index.insert(meta.xattrs.clone(), i);
        Ok(i)
    }

    fn header(&mut self, typ: u16, meta: &Meta, ino: u32, path: &[u8]) -> Result<Vec<u8>> {
        let uid = self.id(meta.uid, path)?;
        let gid = self.id(meta.gid, path)?;
        let mtime = meta.mtime.secs.clamp(0, i64::from(u32::MAX)) as u32;
        let mut h = Vec::with_capacity(64);
        h.extend_from_slice(&typ.to_le_bytes());
        h.extend_from_slice(&(meta.mode & 0o7777).to_le_bytes());
        h.extend_from_slice(&uid.to_le_bytes());
        h.extend_from_slice(&gid.to_le_bytes());
        h.extend_from_slice(&mtime.to_le_bytes());
        h.extend_from_slice(&ino.to_le_bytes());
        Ok(h)
    }

    fn put(&mut self, ino: u32, bytes: &[u8]) -> Result<u64> {
        let (block, off) = self.inodes.pos();
        let r = (block << 16) | u64::from(off);
        self.export[(ino - 1) as usize] = r;
        self.inodes.push(bytes)?;
        Ok(r)
    }

    fn non_dir(&mut self, id: NodeId, ino: u32, nlink: u32, path: &[u8]) -> Result<u64> {
        let node = self.tree.node(id);
        let xattr = self.xattr(&node.meta, path)?;
        let ext = xattr != NO_XATTR;
        let b = match &node.kind {
            Kind::File(data) => {
                let loc = self.locs[id.0 as usize].as_ref().ok_or_else(|| {
                    Error::new(ErrorKind::InvalidInput, shown(path), "file data missing")
                })?;
                let (frag, frag_off) = loc.fragment.unwrap_or((NO_FRAGMENT, 0));
                let sparse = if loc.sparse > 0 && loc.sparse >= data.size {
                    data.size - 1
                } else {
                    loc.sparse
                };
                let long = ext
                    || nlink > 1
                    || loc.start > u64::from(u32::MAX)
                    || data.size > u64::from(u32::MAX)
                    || sparse != 0;
                let mut b =
                    self.header(if long { FILE + EXT } else { FILE }, &node.meta, ino, path)?;
                if long {
                    b.extend_from_slice(&loc.start.to_le_bytes());
                    b.extend_from_slice(&data.size.to_le_bytes());
                    b.extend_from_slice(&sparse.to_le_bytes());
                    b.extend_from_slice(&nlink.to_le_bytes());
                    b.extend_from_slice(&frag.to_le_bytes());
                    b.extend_from_slice(&frag_off.to_le_bytes());
                    b.extend_from_slice(&xattr.to_le_bytes());
                } else {
                    b.extend_from_slice(&(loc.start as u32).to_le_bytes());
                    b.extend_from_slice(&frag.to_le_bytes());
                    b.extend_from_slice(&frag_off.to_le_bytes());
                    b.extend_from_slice(&(data.size as u32).to_le_bytes());
                }
                debug_assert_eq!(
                    loc.blocks.len() as u64,
                    if loc.fragment.is_some() {
                        data.size / u64::from(self.block_size)
                    } else {
                        data.size.div_ceil(u64::from(self.block_size))
                    }
                );
                for s in &loc.blocks {
                    b.extend_from_slice(&s.to_le_bytes());
                }
                b
            }
            Kind::Symlink(target) => {
                let t = if ext { SYMLINK + EXT } else { SYMLINK };
                let mut b = self.header(t, &node.meta, ino, path)?;
                let len = u32::try_from(target.len()).map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        shown(path),
                        "symlink target too long",
                    )
                })?;
                b.extend_from_slice(&nlink.to_le_bytes());
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(target);
                if ext {
                    b.extend_from_slice(&xattr.to_le_bytes());
                }
                b
            }
            Kind::BlockDev { major, minor } | Kind::CharDev { major, minor } => {
                let basic = basic_type(&node.kind);
                if *major > 0xfff || *minor > 0xfffff {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        shown(path),
                        format!("device {major}:{minor} does not fit squashfs' 32-bit number"),
                    ));
                }
                let rdev = (major << 8) | (minor & 0xff) | ((minor & !0xff) << 12);
                let mut b =
                    self.header(if ext { basic + EXT } else { basic }, &node.meta, ino, path)?;
                b.extend_from_slice(&nlink.to_le_bytes());
                b.extend_from_slice(&rdev.to_le_bytes());
                if ext {
                    b.extend_from_slice(&xattr.to_le_bytes());
                }
                b
            }
            Kind::Fifo | Kind::Socket => {
                let basic = basic_type(&node.kind);
                let mut b =
                    self.header(if ext { basic + EXT } else { basic }, &node.meta, ino, path)?;
                b.extend_from_slice(&nlink.to_le_bytes());
                if ext {
                    b.extend_from_slice(&xattr.to_le_bytes());
                }
                b
            }
            Kind::Dir(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    shown(path),
                    "directory where a non-directory was expected",
                ));
            }
        };
        self.put(ino, &b)
    }

    /// Writes the listing of `f`'s directory, then its inode.
    fn dir(&mut self, f: &Frame<'_>, ino: u32, parent: u32) -> Result<u64> {
        let (listing, index) = listing(&f.entries);
        let (start, offset) = self.dirs.pos();
        let base = self.dirs.uncompressed_len();
        self.dirs.push(&listing)?;
        let node = self.tree.node(f.dir);
        let xattr = self.xattr(&node.meta, &f.path)?;
        let nlink = f.subdirs.saturating_add(2);
        let size = listing.len() as u64 + 3;
        let mut b;
        if index.is_empty() && xattr == NO_XATTR && size < 1 << 16 && start <= u64::from(u32::MAX) {
            b = self.header(DIR, &node.meta, ino, &f.path)?;
            b.extend_from_slice(&(start as u32).to_le_bytes());
            b.extend_from_slice(&nlink.to_le_bytes());
            b.extend_from_slice(&(size as u16).to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            b.extend_from_slice(&parent.to_le_bytes());
        } else {
            let too_big = || {
                Error::new(
                    ErrorKind::Unsupported,
                    shown(&f.path),
                    "directory table larger than 4 GiB",
                )
            };
            let size = u32::try_from(size).map_err(|_| too_big())?;
            let start32 = u32::try_from(start).map_err(|_| too_big())?;
            b = self.header(DIR + EXT, &node.meta, ino, &f.path)?;
            b.extend_from_slice(&nlink.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&start32.to_le_bytes());
            b.extend_from_slice(&parent.to_le_bytes());
            b.extend_from_slice(&(index.len() as u16).to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            b.extend_from_slice(&xattr.to_le_bytes());
            for (at, name) in &index {
                let block = self
                    .dirs
                    .block_start_of(base + u64::from(*at))
                    .and_then(|s| u32::try_from(s).ok())
                    .ok_or_else(too_big)?;
                b.extend_from_slice(&at.to_le_bytes());
                b.extend_from_slice(&block.to_le_bytes());
                b.extend_from_slice(&(name.len() as u32 - 1).to_le_bytes());
                b.extend_from_slice(name);
            }
        }
        self.put(ino, &b)
    }
}

/// A directory's listing (headers and entries) and its index: (offset of a header in the
/// listing, the name of its first entry), one whenever the listing has grown by a metadata
/// block since the last, as mksquashfs places them.
fn listing<'t>(entries: &[Entry<'t>]) -> (Vec<u8>, Vec<(u32, &'t [u8])>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut index = Vec::new();
    let mut header_at: Option<usize> = None;
    let mut count = 0u32;
    let mut start_block = 0u32;
    let mut base = 0u32;
    let mut index_from = 0usize;
    let patch = |buf: &mut Vec<u8>, at: usize, count: u32, start: u32, base: u32| {
        buf[at..at + 4].copy_from_slice(&(count - 1).to_le_bytes());
        buf[at + 4..at + 8].copy_from_slice(&start.to_le_bytes());
        buf[at + 8..at + 12].copy_from_slice(&base.to_le_bytes());
    };
    for e in entries {
        let block = (e.iref >> 16) as u32;
        let offset = (e.iref & 0xffff) as u16;
        let diff = i64::from(e.ino) - i64::from(base);
        let overflows =
            header_at.is_some() && buf.len() + 8 + e.name.len() - index_from > META_SIZE;
        if header_at.is_none()
            || count == 256
            || block != start_block
            || overflows
            || !(-32768..=32767).contains(&diff)
        {
            if let Some(at) = header_at {
                if overflows {
                    index.push((buf.len() as u32, e.name));
                    index_from = buf.len();
                }
                patch(&mut buf, at, count, start_block, base);
            }
            header_at = Some(buf.len());
            buf.extend_from_slice(&[0; 12]);
            count = 0;
            start_block = block;
            base = e.ino;
        }
        let diff = (i64::from(e.ino) - i64::from(base)) as i16;
        buf.extend_from_slice(&offset.to_le_bytes());
        buf.extend_from_slice(&diff.to_le_bytes());
        buf.extend_from_slice(&e.typ.to_le_bytes());
        buf.extend_from_slice(&(e.name.len() as u16 - 1).to_le_bytes());
        buf.extend_from_slice(e.name);
        count += 1;
    }
    if let Some(at) = header_at {
        patch(&mut buf, at, count, start_block, base);
    }
    (buf, index)
}
