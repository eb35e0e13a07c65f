//! Inodes (256 bytes, 32 bytes of extra fields) and extent trees.

use std::ops::Range;

use imagetool_fstree::Timestamp;

use crate::csum;
use crate::layout::INODE_SIZE;

/// `EXT4_EXTENTS_FL`.
pub const FLAG_EXTENTS: u32 = 0x0008_0000;
/// `EXT4_INDEX_FL` (hashed directory).
pub const FLAG_INDEX: u32 = 0x0000_1000;
/// The extra inode size we use (all of the 1.47 extra fields).
pub const EXTRA_ISIZE: u16 = 32;
/// Extent entries per tree block: (4096 - 12-byte header - 4-byte tail) / 12.
pub const EXTENTS_PER_BLOCK: usize = 340;
const EXTENT_MAGIC: u16 = 0xF30A;

/// One extent: `len` blocks from logical block `lblk` at physical block `pblk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First logical block.
    pub lblk: u32,
    /// Length in blocks (1..=32768).
    pub len: u16,
    /// First physical block.
    pub pblk: u64,
}

/// Everything an inode records.
#[derive(Debug, Clone)]
pub struct Fields {
    /// Type and permission bits.
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Hard link count.
    pub links: u16,
    /// Blocks in 512-byte units.
    pub blocks_512: u64,
    /// Inode flags.
    pub flags: u32,
    /// The 60-byte `i_block` area.
    pub iblock: [u8; 60],
    /// Xattr block.
    pub file_acl: u64,
    /// Access time.
    pub atime: Timestamp,
    /// Change time.
    pub ctime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Creation time.
    pub crtime: Timestamp,
    /// In-inode xattr area (bytes from 0xA0), when any.
    pub xattrs: Option<Vec<u8>>,
}

impl Default for Fields {
    fn default() -> Self {
        Self {
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            links: 0,
            blocks_512: 0,
            flags: 0,
            iblock: [0; 60],
            file_acl: 0,
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            mtime: Timestamp::default(),
            crtime: Timestamp::default(),
            xattrs: None,
        }
    }
}

/// `(low 32 bits, extra)` of a time: the extra word holds nanoseconds and 2 epoch bits, giving
/// the range 1901–2446.
pub fn encode_time(t: Timestamp) -> (u32, u32) {
    let lo = t.secs as i32;
    let epoch = ((t.secs - i64::from(lo)) >> 32) as u32 & 3;
    (lo as u32, (t.nanos.min(999_999_999) << 2) | epoch)
}

/// Encodes inode `ino` with its checksum.
pub fn encode(f: &Fields, ino: u32, fs_seed: u32) -> [u8; INODE_SIZE as usize] {
    let mut b = [0u8; INODE_SIZE as usize];
    let (at, atx) = encode_time(f.atime);
    let (ct, ctx) = encode_time(f.ctime);
    let (mt, mtx) = encode_time(f.mtime);
    let (cr, crx) = encode_time(f.crtime);
    put16(&mut b, 0x00, f.mode);
    put16(&mut b, 0x02, f.uid as u16);
    put32(&mut b, 0x04, f.size as u32);
    put32(&mut b, 0x08, at);
    put32(&mut b, 0x0C, ct);
    put32(&mut b, 0x10, mt);
    put16(&mut b, 0x18, f.gid as u16);
    put16(&mut b, 0x1A, f.links);
    put32(&mut b, 0x1C, f.blocks_512 as u32);
    put32(&mut b, 0x20, f.flags);
    b[0x28..0x64].copy_from_slice(&f.iblock);
    put32(&mut b, 0x68, f.file_acl as u32);
    put32(&mut b, 0x6C, (f.size >> 32) as u32);
    put16(&mut b, 0x74, (f.blocks_512 >> 32) as u16);
    put16(&mut b, 0x76, (f.file_acl >> 32) as u16);
    put16(&mut b, 0x78, (f.uid >> 16) as u16);
    put16(&mut b, 0x7A, (f.gid >> 16) as u16);
    put16(&mut b, 0x80, EXTRA_ISIZE);
    put32(&mut b, 0x84, ctx);
    put32(&mut b, 0x88, mtx);
    put32(&mut b, 0x8C, atx);
    put32(&mut b, 0x90, cr);
    put32(&mut b, 0x94, crx);
    if let Some(x) = &f.xattrs {
        b[0xA0..0xA0 + x.len()].copy_from_slice(x);
    }
    csum::set_inode(fs_seed, ino, &mut b);
    b
}

pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Splits block runs `(logical start, physical range)` into extents of at most 32768 blocks.
pub fn extents_of(runs: &[(u64, Range<u64>)]) -> Vec<Extent> {
    let mut out = Vec::new();
    for (lblk, phys) in runs {
        let mut l = *lblk;
        let mut p = phys.start;
        while p < phys.end {
            let len = (phys.end - p).min(crate::layout::MAX_EXTENT_LEN);
            out.push(Extent {
                lblk: l as u32,
                len: len as u16,
                pblk: p,
            });
            l += len;
            p += len;
        }
    }
    out
}

/// Tree blocks an extent list needs outside the inode.
pub fn tree_blocks(n_extents: usize) -> u64 {
    if n_extents <= 4 {
        return 0;
    }
    let mut level = n_extents.div_ceil(EXTENTS_PER_BLOCK);
    let mut total = level;
    while level > 4 {
        level = level.div_ceil(EXTENTS_PER_BLOCK);
        total += level;
    }
    total as u64
}

fn header(b: &mut [u8], entries: usize, max: usize, depth: u16) {
    put16(b, 0, EXTENT_MAGIC);
    put16(b, 2, entries as u16);
    put16(b, 4, max as u16);
    put16(b, 6, depth);
}

fn put_leaf(b: &mut [u8], off: usize, e: &Extent) {
    put32(b, off, e.lblk);
    put16(b, off + 4, e.len);
    put16(b, off + 6, (e.pblk >> 32) as u16);
    put32(b, off + 8, e.pblk as u32);
}

fn put_index(b: &mut [u8], off: usize, lblk: u32, child: u64) {
    put32(b, off, lblk);
    put32(b, off + 4, child as u32);
    put16(b, off + 8, (child >> 32) as u16);
}

/// Builds the extent tree: returns the 60-byte `i_block` root and emits every tree block
/// (`tree` lists their block numbers, leaves first, as [`tree_blocks`] counted).
///
/// # Errors
/// Whatever `out` returns.
pub fn build_tree<E>(
    extents: &[Extent],
    tree: &[u64],
    ino: u32,
    fs_seed: u32,
    mut out: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<[u8; 60], E> {
    let mut root = [0u8; 60];
    if extents.len() <= 4 {
        header(&mut root, extents.len(), 4, 0);
        for (k, e) in extents.iter().enumerate() {
            put_leaf(&mut root, 12 + 12 * k, e);
        }
        return Ok(root);
    }
    let mut blk = vec![0u8; crate::BLOCK_SIZE as usize];
    let mut next = tree.iter();
    // (first logical block, physical block) of each node on the current level.
    let mut level: Vec<(u32, u64)> = Vec::new();
    for chunk in extents.chunks(EXTENTS_PER_BLOCK) {
        blk.fill(0);
        header(&mut blk, chunk.len(), EXTENTS_PER_BLOCK, 0);
        for (k, e) in chunk.iter().enumerate() {
            put_leaf(&mut blk, 12 + 12 * k, e);
        }
        let at = *next.next().unwrap_or(&0);
        csum::set_extent_block(fs_seed, ino, &mut blk);
        out(at, &blk)?;
        level.push((chunk[0].lblk, at));
    }
    let mut depth = 1u16;
    while level.len() > 4 {
        let mut up = Vec::new();
        for chunk in level.chunks(EXTENTS_PER_BLOCK) {
            blk.fill(0);
            header(&mut blk, chunk.len(), EXTENTS_PER_BLOCK, depth);
            for (k, &(l, c)) in chunk.iter().enumerate() {
                put_index(&mut blk, 12 + 12 * k, l, c);
            }
            let at = *next.next().unwrap_or(&0);
            csum::set_extent_block(fs_seed, ino, &mut blk);
            out(at, &blk)?;
            up.push((chunk[0].0, at));
        }
        level = up;
        depth += 1;
    }
    header(&mut root, level.len(), 4, depth);
    for (k, &(l, c)) in level.iter().enumerate() {
        put_index(&mut root, 12 + 12 * k, l, c);
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_encode_time_post_2038_and_pre_1970() {
        assert_eq!(encode_time(Timestamp { secs: 1, nanos: 5 }), (1, 20));
        // 2^32 + 1: low word 1, epoch 1.
        assert_eq!(encode_time(Timestamp::from_secs((1 << 32) + 1)), (1, 1));
        // -1 is encoded as 0xFFFFFFFF with epoch 0.
        assert_eq!(encode_time(Timestamp::from_secs(-1)), (u32::MAX, 0));
        // 2040: above i32::MAX, so epoch 1 with a negative low word.
        let (lo, ex) = encode_time(Timestamp::from_secs(2_208_988_800));
        assert_eq!(
            (i64::from(lo as i32) + ((i64::from(ex & 3)) << 32)),
            2_208_988_800
        );
    }

    #[test]
    fn test_tree_blocks_depths() {
        assert_eq!(tree_blocks(4), 0);
        assert_eq!(tree_blocks(5), 1);
        assert_eq!(tree_blocks(340 * 4), 4);
        assert_eq!(tree_blocks(340 * 4 + 1), 6);
    }
}
