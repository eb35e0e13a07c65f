//! Executing a plan: metadata written once, in order; file data copied in parallel.

use imagetool_blockio::{WriteAt, write_skipping_zeros};
use imagetool_fstree::{Kind, Node, NodeId, Source, Timestamp, Tree};
use rayon::prelude::*;

use crate::inode::{self, Extent, FLAG_EXTENTS, FLAG_INDEX, Fields};
use crate::layout::{BLOCKS_PER_GROUP, INODE_SIZE, INODES_PER_BLOCK, has_super};
use crate::plan::{InodePlan, Plan, Role, dir_entries};
use crate::{BLOCK_SIZE, Error, ErrorKind, Result, csum, dir, journal, superblock, xattr};

const BS: usize = BLOCK_SIZE as usize;

fn put(t: &impl WriteAt, off: u64, buf: &[u8]) -> Result<()> {
    t.write_all_at(buf, off)
        .map_err(|e| Error::io(format!("offset {off}"), "write", e))
}

fn put_block(t: &impl WriteAt, blk: u64, buf: &[u8]) -> Result<()> {
    put(t, blk * BLOCK_SIZE, buf)
}

fn zero_blocks(t: &impl WriteAt, start: u64, n: u64) -> Result<()> {
    let z = vec![0u8; 256 * BS];
    let mut done = 0;
    while done < n {
        let k = (n - done).min(256);
        put_block(t, start + done, &z[..(k as usize) * BS])?;
        done += k;
    }
    Ok(())
}

/// The physical block of logical block `l`.
fn phys(extents: &[Extent], l: u64) -> u64 {
    for e in extents {
        let s = u64::from(e.lblk);
        if l >= s && l < s + u64::from(e.len) {
            return e.pblk + (l - s);
        }
    }
    0
}

impl Plan {
    /// Writes the filesystem into `target` (which must hold [`Plan::size_bytes`] bytes),
    /// reading file data from `tree`, the tree this plan was made for.
    ///
    /// # Errors
    /// `InvalidInput` when the target is too small; `Io` naming the host file that cannot be
    /// read (or has shrunk), or the offset that cannot be written.
    pub fn write<W: WriteAt>(&self, tree: &Tree, target: &W) -> Result<()> {
        if target.capacity() < self.size_bytes() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "target",
                format!(
                    "holds {} bytes, the filesystem needs {}",
                    target.capacity(),
                    self.size_bytes()
                ),
            ));
        }
        if !self.target_zeroed {
            for gi in &self.groups {
                if gi.flags & 0x1 == 0 {
                    zero_blocks(target, gi.inode_table, self.geo.itb)?;
                }
            }
            let j = &self.inodes[7];
            for e in &j.extents {
                zero_blocks(target, e.pblk, u64::from(e.len))?;
            }
            // The reserved GDT blocks of the backup groups (resize2fs copies into them).
            for g in (1..self.geo.groups).filter(|&g| has_super(g)) {
                zero_blocks(
                    target,
                    g * BLOCKS_PER_GROUP + 1 + self.geo.gdt_blocks,
                    self.geo.rgdt_blocks,
                )?;
            }
        }
        self.write_inodes(tree, target)?;
        self.write_groups(target)?;
        self.copy_data(tree, target)
    }

    fn fields(
        &self,
        tree: &Tree,
        ino: u32,
        ip: &InodePlan,
        blocks: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<Option<Fields>> {
        let now = Timestamp::from_secs(self.timestamp);
        let base = Fields {
            atime: now,
            ctime: now,
            mtime: now,
            crtime: now,
            links: 1,
            ..Fields::default()
        };
        let blocks_512 =
            (ip.data_blocks + ip.tree.len() as u64 + u64::from(ip.xattr_block.is_some())) * 8;
        let f = match ip.role {
            Role::Reserved => return Ok(None),
            Role::Resize => {
                let backups = (1..self.geo.groups).filter(|&g| has_super(g)).count() as u64;
                let mut iblock = [0u8; 60];
                iblock[52..56].copy_from_slice(&(self.resize_dind as u32).to_le_bytes());
                Fields {
                    mode: 0o100_600,
                    size: (1024 * 1024 + 1024 + 12) * BLOCK_SIZE,
                    blocks_512: (1 + self.geo.rgdt_blocks * (1 + backups)) * 8,
                    iblock,
                    ..base
                }
            }
            Role::Journal => Fields {
                mode: 0o100_600,
                size: self.geo.journal_blocks * BLOCK_SIZE,
                blocks_512,
                flags: FLAG_EXTENTS,
                // A journal of more than four extents (filesystems over ~32 GiB: a 1 GiB
                // journal) needs an extent tree block: queued here like every other inode's.
                iblock: self.extent_root(ino, ip, None, blocks),
                ..base
            },
            Role::LostFound => Fields {
                mode: 0o040_700,
                size: ip.data_blocks * BLOCK_SIZE,
                links: 2,
                blocks_512,
                flags: FLAG_EXTENTS,
                iblock: self.extent_root(ino, ip, None, blocks),
                ..base
            },
            Role::Node(id) => self.node_fields(tree, id, ino, ip, blocks_512, blocks),
        };
        Ok(Some(f))
    }

    /// The inode fields of tree node `id` (inode `ino`, `blocks_512` sectors allocated);
    /// queues its extent tree blocks in `blocks`.
    fn node_fields(
        &self,
        tree: &Tree,
        id: NodeId,
        ino: u32,
        ip: &InodePlan,
        blocks_512: u64,
        blocks: &mut Vec<(u64, Vec<u8>)>,
    ) -> Fields {
        let node: &Node = tree.node(id);
        let m = &node.meta;
        let mut f = Fields {
            uid: m.uid,
            gid: m.gid,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
            crtime: m.ctime,
            links: ip.links.min(u32::from(u16::MAX)) as u16,
            blocks_512,
            file_acl: ip.xattr_block.unwrap_or(0),
            xattrs: xattr::inode_area(&ip.xattrs.inode),
            ..Fields::default()
        };
        let perm = m.mode & 0o7777;
        match &node.kind {
            Kind::File(fd) => {
                f.mode = 0o100_000 | perm;
                f.size = fd.size;
                f.flags = FLAG_EXTENTS;
                f.iblock = self.extent_root(ino, ip, None, blocks);
            }
            Kind::Dir(_) => {
                f.mode = 0o040_000 | perm;
                f.size = ip.data_blocks * BLOCK_SIZE;
                f.flags = FLAG_EXTENTS;
                if matches!(ip.shape, Some(dir::Shape::Htree { .. })) {
                    f.flags |= FLAG_INDEX;
                }
                f.iblock = self.extent_root(ino, ip, None, blocks);
            }
            Kind::Symlink(t) => {
                f.mode = 0o120_000 | perm;
                f.size = t.len() as u64;
                if t.len() < 60 {
                    f.iblock[..t.len()].copy_from_slice(t);
                } else {
                    f.flags = FLAG_EXTENTS;
                    f.iblock = self.extent_root(ino, ip, Some(t), blocks);
                }
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                f.mode = if matches!(node.kind, Kind::CharDev { .. }) {
                    0o020_000
                } else {
                    0o060_000
                } | perm;
                let (major, minor) = (*major, *minor);
                if major < 256 && minor < 256 {
                    f.iblock[0..4].copy_from_slice(&((major << 8) | minor).to_le_bytes());
                } else {
                    let v = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
                    f.iblock[4..8].copy_from_slice(&v.to_le_bytes());
                }
            }
            Kind::Fifo => f.mode = 0o010_000 | perm,
            Kind::Socket => f.mode = 0o140_000 | perm,
        }
        f
    }

    /// The extent root; queues the tree blocks (and a slow symlink's block) in `blocks`.
    fn extent_root(
        &self,
        ino: u32,
        ip: &InodePlan,
        symlink: Option<&[u8]>,
        blocks: &mut Vec<(u64, Vec<u8>)>,
    ) -> [u8; 60] {
        if let (Some(t), Some(e)) = (symlink, ip.extents.first()) {
            let mut b = vec![0u8; BS];
            b[..t.len()].copy_from_slice(t);
            blocks.push((e.pblk, b));
        }
        let built = inode::build_tree(&ip.extents, &ip.tree, ino, self.fs_seed, |blk, b| {
            blocks.push((blk, b.to_vec()));
            Ok::<(), std::convert::Infallible>(())
        });
        match built {
            Ok(root) => root,
            Err(never) => match never {},
        }
    }

    fn write_inodes<W: WriteAt>(&self, tree: &Tree, t: &W) -> Result<()> {
        let ipg = self.geo.ipg;
        let mut buf = vec![0u8; BS];
        let mut cur_block: Option<u64> = None;
        let mut blocks = Vec::new();
        for (k, ip) in self.inodes.iter().enumerate() {
            let ino = k as u32 + 1;
            let g = u64::from(ino - 1) / ipg;
            let idx = u64::from(ino - 1) % ipg;
            let blk = self.groups[g as usize].inode_table + idx / INODES_PER_BLOCK;
            if cur_block != Some(blk) {
                if let Some(b) = cur_block {
                    put_block(t, b, &buf)?;
                }
                buf.fill(0);
                cur_block = Some(blk);
            }
            if let Some(f) = self.fields(tree, ino, ip, &mut blocks)? {
                let raw = inode::encode(&f, ino, self.fs_seed);
                let off = (idx % INODES_PER_BLOCK * INODE_SIZE) as usize;
                buf[off..off + INODE_SIZE as usize].copy_from_slice(&raw);
            }
            // Directory blocks.
            if let Some(shape) = &ip.shape {
                let entries = match ip.role {
                    Role::Node(id) => dir_entries(
                        tree,
                        id,
                        &self.ino_of,
                        id.0 == 0 && self.inodes[10].role == Role::LostFound,
                    ),
                    _ => Vec::new(),
                };
                dir::build(shape, &entries, ino, ip.parent, self.fs_seed, |l, b| {
                    put_block(t, phys(&ip.extents, l), b)
                })?;
            }
            if let Some(xb) = ip.xattr_block {
                put_block(t, xb, &xattr::block(&ip.xattrs.block, xb, self.fs_seed))?;
            }
            for (blk, b) in blocks.drain(..) {
                put_block(t, blk, &b)?;
            }
        }
        if let Some(b) = cur_block {
            put_block(t, b, &buf)?;
        }
        // Journal superblock.
        if let Some(e) = self.inodes[7].extents.first() {
            put_block(
                t,
                e.pblk,
                &journal::superblock(self.geo.journal_blocks, &self.uuid),
            )?;
        }
        // Resize inode: the double-indirect block lists the reserved GDT blocks of group 0;
        // each of those lists its copies in the backup groups.
        let rg = self.geo.rgdt_blocks;
        if rg > 0 {
            let mut dind = vec![0u8; BS];
            let backups: Vec<u64> = (1..self.geo.groups).filter(|&g| has_super(g)).collect();
            for i in 0..rg {
                let blk = 1 + self.geo.gdt_blocks + i;
                let slot = ((self.geo.gdt_blocks + i) % (BLOCK_SIZE / 4)) as usize;
                dind[slot * 4..slot * 4 + 4].copy_from_slice(&(blk as u32).to_le_bytes());
                let mut ind = vec![0u8; BS];
                for (k, g) in backups.iter().enumerate().take(BS / 4) {
                    let b = g * BLOCKS_PER_GROUP + blk;
                    ind[k * 4..k * 4 + 4].copy_from_slice(&(b as u32).to_le_bytes());
                }
                put_block(t, blk, &ind)?;
            }
            put_block(t, self.resize_dind, &dind)?;
        }
        Ok(())
    }

    /// The block bitmap the kernel computes for group `g` when it is BLOCK_UNINIT
    /// (`ext4_init_block_bitmap`): the superblock copy, GDT and reserved GDT if the group has
    /// them, the group's own bitmaps and inode table where they lie inside it, the padding.
    fn uninit_block_bitmap(&self, g: u64) -> Vec<u8> {
        let mut bb = vec![0u8; BS];
        let (gs, glen) = (g * BLOCKS_PER_GROUP, self.geo.group_len(g));
        let mut mark = |b: u64| {
            if (gs..gs + glen).contains(&b) {
                let bit = (b - gs) as usize;
                bb[bit / 8] |= 1 << (bit % 8);
            }
        };
        if let Some(r) = self.geo.backup_range(g) {
            r.for_each(&mut mark);
        }
        let gi = &self.groups[g as usize];
        mark(gi.block_bitmap);
        mark(gi.inode_bitmap);
        (gi.inode_table..gi.inode_table + self.geo.itb).for_each(&mut mark);
        for bit in glen as usize..BS * 8 {
            bb[bit / 8] |= 1 << (bit % 8);
        }
        bb
    }

    fn write_groups<W: WriteAt>(&self, t: &W) -> Result<()> {
        let mut gdt = vec![0u8; (self.geo.gdt_blocks * BLOCK_SIZE) as usize];
        let mut ri = 0;
        let mut last_ino = self.inodes.len() as u64;
        for (g, gi) in self.groups.iter().enumerate() {
            let g = g as u64;
            // Block bitmap.
            let mut bb = vec![0u8; BS];
            let (gs, glen) = (g * BLOCKS_PER_GROUP, self.geo.group_len(g));
            while ri < self.used.len() && self.used[ri].end <= gs {
                ri += 1;
            }
            let mut j = ri;
            while j < self.used.len() && self.used[j].start < gs + glen {
                let r = &self.used[j];
                for b in r.start.max(gs)..r.end.min(gs + glen) {
                    let bit = (b - gs) as usize;
                    bb[bit / 8] |= 1 << (bit % 8);
                }
                j += 1;
            }
            for bit in glen as usize..BS * 8 {
                bb[bit / 8] |= 1 << (bit % 8);
            }
            // A group whose bitmap is exactly what the kernel computes for an uninitialised
            // one (its own superblock copy and metadata, the padding) is left BLOCK_UNINIT and
            // its bitmap is not written, as mke2fs does: a 16 TiB disk would otherwise carry
            // 512 MiB of such bitmaps. Never the last group (mke2fs does not either).
            let block_uninit = g + 1 < self.geo.groups && bb == self.uninit_block_bitmap(g);
            if !block_uninit {
                put_block(t, gi.block_bitmap, &bb)?;
            }
            let bcs = csum::bitmap(self.fs_seed, &bb);
            // Inode bitmap.
            let mut ib = vec![0u8; BS];
            let n = last_ino.min(self.geo.ipg) as usize;
            last_ino -= n as u64;
            for bit in 0..n {
                ib[bit / 8] |= 1 << (bit % 8);
            }
            for bit in self.geo.ipg as usize..BS * 8 {
                ib[bit / 8] |= 1 << (bit % 8);
            }
            // An INODE_UNINIT group's inode bitmap is not read by the kernel or e2fsck.
            if gi.flags & crate::plan::BG_INODE_UNINIT == 0 {
                put_block(t, gi.inode_bitmap, &ib)?;
            }
            let ics = csum::bitmap(self.fs_seed, &ib[..(self.geo.ipg / 8) as usize]);
            let flags = if block_uninit {
                crate::plan::BG_BLOCK_UNINIT
            } else {
                0
            };
            let d = superblock::group_desc(self, g, bcs, ics, flags);
            gdt[(g * 64) as usize..(g * 64 + 64) as usize].copy_from_slice(&d);
        }
        // One copy of the GDT, written to every group that holds one (an Overlay keeps it
        // once: 24 copies of 8 MiB on a 16 TiB disk).
        let gdt: std::sync::Arc<[u8]> = gdt.into();
        for g in (0..self.geo.groups).filter(|&g| has_super(g)) {
            let start = g * BLOCKS_PER_GROUP;
            let sb = superblock::encode(self, g);
            put(t, if g == 0 { 1024 } else { start * BLOCK_SIZE }, &sb)?;
            let off = (start + 1) * BLOCK_SIZE;
            t.write_shared_at(&gdt, off)
                .map_err(|e| Error::io(format!("offset {off}"), "write", e))?;
        }
        Ok(())
    }

    fn copy_data<W: WriteAt>(&self, tree: &Tree, t: &W) -> Result<()> {
        let jobs: Vec<(&InodePlan, &imagetool_fstree::FileData)> = self
            .inodes
            .iter()
            .filter_map(|ip| match ip.role {
                Role::Node(id) => match &tree.node(id).kind {
                    Kind::File(fd) if !ip.extents.is_empty() => Some((ip, fd)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let run = || {
            jobs.par_iter().try_for_each(|(ip, fd)| {
                for e in &ip.extents {
                    let off = u64::from(e.lblk) * BLOCK_SIZE;
                    let len = (u64::from(e.len) * BLOCK_SIZE).min(fd.size.saturating_sub(off));
                    if len == 0 {
                        continue;
                    }
                    let dst = e.pblk * BLOCK_SIZE;
                    match &fd.source {
                        // By path: a backing that reads lazily (blockio's Overlay) records
                        // the reference instead of copying.
                        Source::Host(p) => t
                            .copy_from_path(p, off, len, dst)
                            .map_err(|err| Error::io(crate::host_path(p), "read", err))?,
                        Source::Bytes(b) => {
                            let s = usize::try_from(off).unwrap_or(usize::MAX).min(b.len());
                            let e2 = usize::try_from(off + len)
                                .unwrap_or(usize::MAX)
                                .min(b.len());
                            write_skipping_zeros(t, &b[s..e2], dst)
                                .map_err(|err| Error::io(format!("offset {dst}"), "write", err))?;
                        }
                    }
                }
                Ok(())
            })
        };
        match rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
        {
            Ok(pool) => pool.install(run),
            Err(_) => run(),
        }
    }
}
